//! # hypervisor
//!
//! Everything xi knows about Xen itself:
//!
//! - [`abi`]: Xen 4.17's public x86-64 PV interface as `#[repr(C)]` zerocopy types, with
//!   sizes and offsets asserted against `shared/xen/abi.md` / `abi-4.17.md`.
//! - [`types`]: newtypes for every number space (`Mfn`, `Pfn`, `DomId`, `VcpuId`, `Port`),
//!   deliberately without arithmetic operators.
//! - [`Xen`]: the privileged interface a dom0 toolstack has, carried as Xen's own layouts.
//! - [`model`]: a deterministic software Xen 4.17 that enforces Xen's PV rules.
//! - [`cpu`]: the x86-64 interpreter that runs PV guest kernels through the model.
//! - `privcmd` (feature `hw`): the same trait over the real Linux `/dev/xen/privcmd`.
//!
//! `unsafe` is forbidden here except in the `hw` backend and in test-only host-CPU
//! comparisons of the interpreter.
#![cfg_attr(not(any(feature = "hw", test)), forbid(unsafe_code))]

pub mod abi;
pub mod cpu;
pub mod error;
pub mod model;
pub mod record;
pub mod remote;
pub mod types;
mod xen;

#[cfg(feature = "hw")]
#[allow(unsafe_code)]
pub mod privcmd;

pub use error::{Errno, XenError, XenResult};
pub use types::{DomId, Gva, Mfn, Pfn, Port, VcpuId};
pub use xen::{
    resource_frames, GrantEntryV1, Xen, XsAccess, XsPerm, XsTxId, XsWatchEvent,
    GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE, GRANT_ENTRY_V1_SIZE, GTF_PERMIT_ACCESS,
    GTF_READONLY, XENMEM_RESOURCE_GRANT_TABLE, XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED,
    XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS, XS_NO_TX,
};
