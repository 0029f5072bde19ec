//! `memory_op` (public/memory.h): command numbers, argument structs and the M2P
//! constants, x86-64 layouts (identical in 4.17 and the development head).
//!
//! The `cmd` argument of `memory_op` carries the op in its low 6 bits
//! ([`MEMOP_CMD_MASK`]); the bits above [`MEMOP_EXTENT_SHIFT`] are Xen's own
//! continuation index.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Allocate extents (out: MFNs).
pub const XENMEM_INCREASE_RESERVATION: u64 = 0;
/// Free extents (in: GMFNs).
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
/// Highest MFN of RAM (arg NULL; never fails).
pub const XENMEM_MAXIMUM_RAM_PAGE: u64 = 2;
/// Current reservation in pages ([`MemoryDomain`]).
pub const XENMEM_CURRENT_RESERVATION: u64 = 3;
/// Maximum reservation in pages ([`MemoryDomain`]).
pub const XENMEM_MAXIMUM_RESERVATION: u64 = 4;
/// MFNs of the 2 MiB M2P chunks ([`MachphysMfnList`]).
pub const XENMEM_MACHPHYS_MFN_LIST: u64 = 5;
/// Populate GPFNs with memory (in: GPFNs, out: GMFNs; updates the M2P).
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
/// Map a page of some space at a GPFN ([`AddToPhysmap`]; translated guests).
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
/// Obsolete (translate_gpfn_list).
pub const XENMEM_TRANSLATE_GPFN_LIST: u64 = 8;
/// The domain's pseudo-physical E820 map.
pub const XENMEM_MEMORY_MAP: u64 = 9;
/// The host's E820 map.
pub const XENMEM_MACHINE_MEMORY_MAP: u64 = 10;
/// Exchange extents atomically ([`MemoryExchange`]).
pub const XENMEM_EXCHANGE: u64 = 11;
/// Where the M2P is mapped ([`MachphysMapping`]).
pub const XENMEM_MACHPHYS_MAPPING: u64 = 12;
/// Set a domain's E820 map.
pub const XENMEM_SET_MEMORY_MAP: u64 = 13;
/// Highest GPFN of a domain ([`MemoryDomain`]).
pub const XENMEM_MAXIMUM_GPFN: u64 = 14;
/// Remove a GPFN from a translated guest's physmap.
pub const XENMEM_REMOVE_FROM_PHYSMAP: u64 = 15;
/// Set the populate-on-demand target.
pub const XENMEM_SET_POD_TARGET: u64 = 16;
/// Read the populate-on-demand target.
pub const XENMEM_GET_POD_TARGET: u64 = 17;
/// Pages freed by sharing.
pub const XENMEM_GET_SHARING_FREED_PAGES: u64 = 18;
/// Pages currently shared.
pub const XENMEM_GET_SHARING_SHARED_PAGES: u64 = 19;
/// Memory paging control.
pub const XENMEM_PAGING_OP: u64 = 20;
/// Memory access control.
pub const XENMEM_ACCESS_OP: u64 = 21;
/// Memory sharing control.
pub const XENMEM_SHARING_OP: u64 = 22;
/// Batched add_to_physmap.
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u64 = 23;
/// Claim pages for a future allocation.
pub const XENMEM_CLAIM_PAGES: u64 = 24;
/// M2P chunks of the compat (32-bit) M2P.
pub const XENMEM_MACHPHYS_COMPAT_MFN_LIST: u64 = 25;
/// Virtual NUMA layout.
pub const XENMEM_GET_VNUMAINFO: u64 = 26;
/// Reserved device memory regions.
pub const XENMEM_RESERVED_DEVICE_MEMORY_MAP: u64 = 27;
/// Map a resource's frames ([`MemAcquireResource`]).
pub const XENMEM_ACQUIRE_RESOURCE: u64 = 28;

/// Shift of Xen's continuation index inside the memory_op `cmd`.
pub const MEMOP_EXTENT_SHIFT: u32 = 6;
/// Mask of the op inside the memory_op `cmd`.
pub const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;

/// `mem_flags` bits 0..7: address width limit (0 = none).
pub const XENMEMF_ADDRESS_BITS_MASK: u32 = 0xff;
/// `mem_flags` bits 8..15: NUMA node + 1 (0 = any).
pub const XENMEMF_NODE_MASK: u32 = 0xff << 8;
/// `mem_flags`: populate on demand.
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// `mem_flags`: the node request is exact.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// `mem_flags`: the node is a virtual node.
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// `mem_flags` address-width field for `bits`.
#[must_use]
pub const fn xenmemf_address_bits(bits: u32) -> u32 {
    bits & XENMEMF_ADDRESS_BITS_MASK
}

/// `mem_flags` node field for `node`.
#[must_use]
pub const fn xenmemf_node(node: u32) -> u32 {
    ((node + 1) & 0xff) << 8
}

/// `struct xen_memory_reservation` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MemoryReservation {
    /// Handle to the `xen_pfn_t` extent array.
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// Each extent is 2^order pages.
    pub extent_order: u32,
    /// `XENMEMF_*` (the C field is `address_bits` in old headers).
    pub mem_flags: u32,
    /// Target domain (unprivileged callers: DOMID_SELF).
    pub domid: u16,
    /// Padding.
    pub pad: [u8; 6],
}

/// `xen_memory_domain`: the `domid_t` argument of current/maximum_reservation and
/// maximum_gpfn (2 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MemoryDomain {
    /// The domain.
    pub domid: u16,
}

/// `struct xen_machphys_mfn_list` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MachphysMfnList {
    /// Array capacity.
    pub max_extents: u32,
    /// Padding.
    pub pad: u32,
    /// Handle to the `xen_pfn_t` output array (one MFN per 2 MiB chunk; 0 = gap).
    pub extent_start: u64,
    /// Out: entries written.
    pub nr_extents: u32,
    /// Padding.
    pub pad2: u32,
}

/// add_to_physmap space: the shared_info page.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// add_to_physmap space: a grant-table frame.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// add_to_physmap space: a GMFN of the domain.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// add_to_physmap space: a range of GMFNs.
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// add_to_physmap space: a foreign GMFN (batch only).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// add_to_physmap space: device MMIO (Arm).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;

/// `struct xen_add_to_physmap` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct AddToPhysmap {
    /// Domain whose physmap changes.
    pub domid: u16,
    /// Number of pages for GMFN_RANGE.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index into the space.
    pub idx: u64,
    /// Where the page should appear.
    pub gpfn: u64,
}

/// `struct xen_memory_exchange` (72 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MemoryExchange {
    /// Extents to give up (GMFNs).
    pub in_: MemoryReservation,
    /// Extents to receive (in: GPFNs; out: GMFNs).
    pub out: MemoryReservation,
    /// Out: input extents exchanged; the caller must zero it.
    pub nr_exchanged: u64,
}

/// `struct xen_machphys_mapping` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MachphysMapping {
    /// Start of the M2P's virtual range.
    pub v_start: u64,
    /// End of the M2P's virtual range.
    pub v_end: u64,
    /// Highest MFN the table covers.
    pub max_mfn: u64,
}

/// acquire_resource type: an ioreq server's pages.
pub const XENMEM_RESOURCE_IOREQ_SERVER: u16 = 0;
/// acquire_resource type: grant-table frames.
pub const XENMEM_RESOURCE_GRANT_TABLE: u16 = 1;
/// acquire_resource type: processor-trace buffers.
pub const XENMEM_RESOURCE_VMTRACE_BUF: u16 = 2;

/// `struct xen_mem_acquire_resource` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MemAcquireResource {
    /// Owning domain.
    pub domid: u16,
    /// `XENMEM_RESOURCE_*`.
    pub type_: u16,
    /// Resource id (e.g. ioreq server id).
    pub id: u32,
    /// Frames wanted (0 with a NULL list queries the size).
    pub nr_frames: u32,
    /// Padding (must be 0).
    pub pad: u32,
    /// First frame index.
    pub frame: u64,
    /// Handle to the `xen_pfn_t` list.
    pub frame_list: u64,
}

/// M2P entry of a frame that belongs to no guest PFN (`~0`).
pub const INVALID_M2P_ENTRY: u64 = u64::MAX;
/// M2P entry of a shared (copy-on-write) frame (`~0 - 1`).
pub const SHARED_M2P_ENTRY: u64 = u64::MAX - 1;

/// Whether an M2P entry names a real PFN (top bit clear).
#[must_use]
pub const fn m2p_entry_is_valid(entry: u64) -> bool {
    entry >> 63 == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layouts() {
        assert_eq!(size_of::<MemoryReservation>(), 32);
        assert_eq!(offset_of!(MemoryReservation, nr_extents), 8);
        assert_eq!(offset_of!(MemoryReservation, extent_order), 16);
        assert_eq!(offset_of!(MemoryReservation, mem_flags), 20);
        assert_eq!(offset_of!(MemoryReservation, domid), 24);
        assert_eq!(size_of::<MemoryDomain>(), 2);
        assert_eq!(size_of::<MachphysMfnList>(), 24);
        assert_eq!(offset_of!(MachphysMfnList, extent_start), 8);
        assert_eq!(offset_of!(MachphysMfnList, nr_extents), 16);
        assert_eq!(size_of::<AddToPhysmap>(), 24);
        assert_eq!(offset_of!(AddToPhysmap, size), 2);
        assert_eq!(offset_of!(AddToPhysmap, space), 4);
        assert_eq!(offset_of!(AddToPhysmap, idx), 8);
        assert_eq!(offset_of!(AddToPhysmap, gpfn), 16);
        assert_eq!(size_of::<MemoryExchange>(), 72);
        assert_eq!(offset_of!(MemoryExchange, out), 32);
        assert_eq!(offset_of!(MemoryExchange, nr_exchanged), 64);
        assert_eq!(size_of::<MachphysMapping>(), 24);
        assert_eq!(offset_of!(MachphysMapping, v_end), 8);
        assert_eq!(offset_of!(MachphysMapping, max_mfn), 16);
        assert_eq!(size_of::<MemAcquireResource>(), 32);
        assert_eq!(offset_of!(MemAcquireResource, type_), 2);
        assert_eq!(offset_of!(MemAcquireResource, id), 4);
        assert_eq!(offset_of!(MemAcquireResource, nr_frames), 8);
        assert_eq!(offset_of!(MemAcquireResource, pad), 12);
        assert_eq!(offset_of!(MemAcquireResource, frame), 16);
        assert_eq!(offset_of!(MemAcquireResource, frame_list), 24);
    }

    #[test]
    fn constants() {
        assert_eq!(MEMOP_CMD_MASK, 0x3f);
        assert_eq!(xenmemf_node(0), 0x100);
        assert_eq!(xenmemf_address_bits(32), 32);
        assert!(!m2p_entry_is_valid(INVALID_M2P_ENTRY));
        assert!(!m2p_entry_is_valid(SHARED_M2P_ENTRY));
        assert!(m2p_entry_is_valid(0x1234));
    }
}
