//! # guest-model
//!
//! Toy PV guests written with iced-x86's assembler, each with an oracle saying what its
//! memory and console must hold. (Filled by the toy-guests issue.)
#![forbid(unsafe_code)]
