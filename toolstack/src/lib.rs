//! # toolstack
//!
//! Domain builder, suspend protocol, Xen-format streams, save, restore, live migration
//! and the `xi` CLI, all generic over [`hypervisor::Xen`].
#![forbid(unsafe_code)]
pub mod build;
pub mod cli;
pub mod config;
pub mod p2m;
pub mod restore;
pub mod save;
pub mod stream;
pub mod suspend;
