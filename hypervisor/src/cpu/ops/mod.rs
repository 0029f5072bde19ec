//! Instruction handlers, one file per family. Each handler is generic over the [`Bus`]
//! and, where it matters, the operand [`Width`]; it either returns how control continues or
//! a fault, in which case it has changed no architectural state.
//!
//! [`Bus`]: super::Bus
//! [`Width`]: super::flags::Width

pub(crate) mod alu;
pub(crate) mod bits;
pub(crate) mod branch;
pub(crate) mod mov;
pub(crate) mod muldiv;
pub(crate) mod shift;
pub(crate) mod stack;
pub(crate) mod string;
pub(crate) mod system;
