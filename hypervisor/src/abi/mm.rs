//! `mmu_update`, `mmuext_op` and PTE bits (public/xen.h).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `struct mmu_update` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MmuUpdate {
    /// Machine address of the PTE, with the command in bits 1:0.
    pub ptr: u64,
    /// New value.
    pub val: u64,
}

/// `struct mmuext_op` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MmuextOp {
    /// `MMUEXT_*` command.
    pub cmd: u32,
    /// Padding.
    pub pad: u32,
    /// mfn or linear_addr.
    pub arg1: u64,
    /// nr_ents, vcpumask or src_mfn.
    pub arg2: u64,
}
