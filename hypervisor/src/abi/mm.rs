//! PV memory management ABI (public/xen.h, arch-x86/xen-x86_64.h): `mmu_update`,
//! `mmuext_op`, `multicall_entry`, x86-64 PTE bits, the masks Xen uses to vet guest
//! page-table entries, the Xen-owned part of the address space and the flat segment
//! selectors.

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

/// `struct multicall_entry` (64 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MultiCallEntry {
    /// Hypercall number.
    pub op: u64,
    /// Out: the hypercall's result.
    pub result: u64,
    /// Arguments.
    pub args: [u64; 6],
}

// ---------------------------------------------------------------------------------
// mmu_update commands (in `ptr[1:0]`).

/// Mask of the command bits in [`MmuUpdate::ptr`].
pub const MMU_UPDATE_CMD_MASK: u64 = 3;
/// mmu_update: checked write of `val` into the PTE at `ptr`.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// mmu_update: M2P\[mfn(ptr)\] = val.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// mmu_update: like NORMAL, but the A/D bits already in the PTE are kept.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// mmu_update: like NORMAL, but `val` is not translated through the p2m.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;

// ---------------------------------------------------------------------------------
// mmuext_op commands.

/// Pin an L1 table (arg1 = mfn).
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// Pin an L2 table (arg1 = mfn).
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// Pin an L3 table (arg1 = mfn).
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// Pin an L4 table (arg1 = mfn).
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// Unpin a table (arg1 = mfn).
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// Load a new kernel CR3 (arg1 = L4 mfn).
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// Flush this vcpu's TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// Invalidate one address on this vcpu (arg1 = linear_addr).
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// Flush the TLBs of a vcpu set (arg2 = vcpumask).
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// Invalidate one address on a vcpu set (arg1 = linear_addr, arg2 = vcpumask).
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// Flush every vcpu's TLB.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// Invalidate one address on every vcpu (arg1 = linear_addr).
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// Write back and invalidate caches.
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// Set the LDT (arg1 = page-aligned linear_addr, arg2 = nr_ents).
pub const MMUEXT_SET_LDT: u32 = 13;
/// Load a new user-mode CR3 (arg1 = L4 mfn; 64-bit only; kept in ctrlreg\[1\]).
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// Zero a page (arg1 = mfn).
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// Copy a page (arg1 = dst mfn, arg2 = src mfn).
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// Write back and invalidate caches on all CPUs.
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// Mark a superpage (arg1 = head mfn).
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// Unmark a superpage (arg1 = head mfn).
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

// ---------------------------------------------------------------------------------
// x86-64 PTE bits.

/// PTE: present.
pub const PTE_PRESENT: u64 = 1 << 0;
/// PTE: writable.
pub const PTE_RW: u64 = 1 << 1;
/// PTE: user-accessible.
pub const PTE_USER: u64 = 1 << 2;
/// PTE: write-through.
pub const PTE_PWT: u64 = 1 << 3;
/// PTE: cache disable.
pub const PTE_PCD: u64 = 1 << 4;
/// PTE: accessed.
pub const PTE_ACCESSED: u64 = 1 << 5;
/// PTE: dirty.
pub const PTE_DIRTY: u64 = 1 << 6;
/// PTE bit 7: page size in L2/L3 entries (PSE; never allowed for PV).
pub const PTE_PSE: u64 = 1 << 7;
/// PTE bit 7 in an L1 entry: PAT index bit.
pub const PTE_PAT: u64 = 1 << 7;
/// PTE: global.
pub const PTE_GLOBAL: u64 = 1 << 8;
/// PTE bits 9..11: free for software.
pub const PTE_AVAIL: u64 = 0x7 << 9;
/// PTE bits 52..62: also free for software (Xen lets PV guests use them, except
/// [`PTE_GNTTAB`] in L1 entries).
pub const PTE_AVAIL_HIGH: u64 = 0x7ff << 52;
/// PTE bit 62: Xen's marker for grant mappings; a PV guest may not set it in an L1
/// entry.
pub const PTE_GNTTAB: u64 = 1 << 62;
/// PTE: no-execute.
pub const PTE_NX: u64 = 1 << 63;
/// PTE: the frame address (bits 12..51).
pub const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// PTE: the cacheability bits (PWT, PCD, PAT).
pub const PTE_CACHE_ATTRS: u64 = PTE_PWT | PTE_PCD | PTE_PAT;

/// Flag bits (outside the address) a 64-bit PV guest may set in any page-table
/// entry: P, RW, US, A, D, AVAIL (9..11), AVAIL_HIGH (52..62) and NX.
///
/// This is the complement of Xen's `base_disallow_mask` from `arch_init_memory()`
/// in xen/arch/x86/mm.c, assuming the CPU has NX (without NX, Xen also refuses bit
/// 63).
pub const PTE_GUEST_ALLOWED: u64 = PTE_PRESENT
    | PTE_RW
    | PTE_USER
    | PTE_ACCESSED
    | PTE_DIRTY
    | PTE_AVAIL
    | PTE_AVAIL_HIGH
    | PTE_NX;

/// Flag bits Xen rejects in every level for a 64-bit PV guest: PWT, PCD, PSE/PAT and
/// G (the flag bits, 0..11 and 52..63, not in [`PTE_GUEST_ALLOWED`]).
pub const BASE_DISALLOW_MASK: u64 = !PTE_GUEST_ALLOWED & !PTE_ADDR_MASK;

/// Bits Xen rejects in an L2 entry of a 64-bit PV guest (= [`BASE_DISALLOW_MASK`];
/// PSE is refused, so superpages go through [`MMUEXT_MARK_SUPER`]).
pub const L2_DISALLOW_MASK: u64 = BASE_DISALLOW_MASK;
/// Bits Xen rejects in an L3 entry of a 64-bit PV guest (= [`BASE_DISALLOW_MASK`]).
pub const L3_DISALLOW_MASK: u64 = BASE_DISALLOW_MASK;
/// Bits Xen rejects in an L4 entry of a 64-bit PV guest (= [`BASE_DISALLOW_MASK`]).
pub const L4_DISALLOW_MASK: u64 = BASE_DISALLOW_MASK;

/// Bits Xen rejects in an L1 entry of an ordinary 64-bit PV domain (one with no I/O
/// memory, I/O ports or passthrough devices): the base mask plus [`PTE_GNTTAB`], minus
/// [`PTE_GLOBAL`] (global user mappings are allowed). So PWT, PCD, PAT and bit 62.
pub const L1_DISALLOW_MASK: u64 = (BASE_DISALLOW_MASK | PTE_GNTTAB) & !PTE_GLOBAL;

/// Bits Xen rejects in an L1 entry of a 64-bit PV domain that has I/O resources or
/// passthrough devices: such a domain may also choose cacheability
/// ([`PTE_CACHE_ATTRS`]), so only bit 62 is left.
pub const L1_DISALLOW_MASK_IO: u64 = L1_DISALLOW_MASK & !PTE_CACHE_ATTRS;

// ---------------------------------------------------------------------------------
// Paging geometry and the Xen-owned virtual range.

/// Page size.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;
/// Entries per page-table page.
pub const PAGETABLE_ENTRIES: usize = 512;
/// Shift of the L1 index in a virtual address.
pub const L1_PAGETABLE_SHIFT: u32 = 12;
/// Shift of the L2 index in a virtual address.
pub const L2_PAGETABLE_SHIFT: u32 = 21;
/// Shift of the L3 index in a virtual address.
pub const L3_PAGETABLE_SHIFT: u32 = 30;
/// Shift of the L4 index in a virtual address.
pub const L4_PAGETABLE_SHIFT: u32 = 39;

/// First L4 slot Xen owns in every 64-bit PV L4 table.
pub const ROOT_PAGETABLE_FIRST_XEN_SLOT: usize = 256;
/// Last L4 slot Xen owns in every 64-bit PV L4 table.
pub const ROOT_PAGETABLE_LAST_XEN_SLOT: usize = 271;
/// Start of the Xen-reserved virtual range (L4 slot 256).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the Xen-reserved virtual range (after L4 slot 271).
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Start of the read-only machine-to-phys table in every 64-bit PV guest.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the machine-to-phys table.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// log2 of an M2P entry's size.
pub const MACH2PHYS_SHIFT: u32 = 3;

/// Whether a 64-bit PV guest may write L4 slot `slot` (false for Xen's 256..=271).
#[must_use]
pub const fn is_guest_l4_slot(slot: usize) -> bool {
    slot < ROOT_PAGETABLE_FIRST_XEN_SLOT || slot > ROOT_PAGETABLE_LAST_XEN_SLOT
}

// ---------------------------------------------------------------------------------
// Segments.

/// Ring-3 32-bit code selector.
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// Ring-3 64-bit code selector.
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// Ring-3 32-bit data selector.
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// Ring-3 64-bit data selector (null).
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// Ring-3 32-bit stack selector.
pub const FLAT_RING3_SS32: u16 = 0xe02b;
/// Ring-3 64-bit stack selector.
pub const FLAT_RING3_SS64: u16 = 0xe02b;
/// 64-bit PV kernel code selector (the kernel runs in ring 3).
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
/// 64-bit PV kernel data selector.
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
/// 64-bit PV kernel stack selector.
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
/// 32-bit kernel data selector (compat).
pub const FLAT_KERNEL_DS32: u16 = FLAT_RING3_DS32;
/// 32-bit kernel code selector (compat).
pub const FLAT_KERNEL_CS32: u16 = FLAT_RING3_CS32;
/// 32-bit kernel stack selector (compat).
pub const FLAT_KERNEL_SS32: u16 = FLAT_RING3_SS32;
/// 64-bit PV user code selector.
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
/// 64-bit PV user data selector.
pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
/// 64-bit PV user stack selector.
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;
/// 32-bit user code selector.
pub const FLAT_USER_CS32: u16 = FLAT_RING3_CS32;
/// 32-bit user data selector.
pub const FLAT_USER_DS32: u16 = FLAT_RING3_DS32;
/// 32-bit user stack selector.
pub const FLAT_USER_SS32: u16 = FLAT_RING3_SS32;
/// Default kernel code selector for a 64-bit PV guest.
pub const FLAT_KERNEL_CS: u16 = FLAT_KERNEL_CS64;
/// Default kernel data selector for a 64-bit PV guest.
pub const FLAT_KERNEL_DS: u16 = FLAT_KERNEL_DS64;
/// Default kernel stack selector for a 64-bit PV guest.
pub const FLAT_KERNEL_SS: u16 = FLAT_KERNEL_SS64;
/// Default user code selector for a 64-bit PV guest.
pub const FLAT_USER_CS: u16 = FLAT_USER_CS64;
/// Default user data selector for a 64-bit PV guest.
pub const FLAT_USER_DS: u16 = FLAT_USER_DS64;
/// Default user stack selector for a 64-bit PV guest.
pub const FLAT_USER_SS: u16 = FLAT_USER_SS64;

/// First GDT page Xen reserves for itself (the guest's GDT may use pages 0..13).
pub const FIRST_RESERVED_GDT_PAGE: u64 = 14;
/// First GDT byte Xen reserves.
pub const FIRST_RESERVED_GDT_BYTE: u64 = FIRST_RESERVED_GDT_PAGE * 4096;
/// First GDT entry (8 bytes each) Xen reserves: 7168.
pub const FIRST_RESERVED_GDT_ENTRY: u64 = FIRST_RESERVED_GDT_BYTE / 8;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layouts() {
        assert_eq!(size_of::<MmuUpdate>(), 16);
        assert_eq!(offset_of!(MmuUpdate, val), 8);
        assert_eq!(size_of::<MmuextOp>(), 24);
        assert_eq!(offset_of!(MmuextOp, arg1), 8);
        assert_eq!(offset_of!(MmuextOp, arg2), 16);
        assert_eq!(size_of::<MultiCallEntry>(), 64);
        assert_eq!(offset_of!(MultiCallEntry, result), 8);
        assert_eq!(offset_of!(MultiCallEntry, args), 16);
    }

    #[test]
    fn masks() {
        assert_eq!(PTE_AVAIL, 0xe00);
        assert_eq!(BASE_DISALLOW_MASK, 0x198);
        assert_eq!(BASE_DISALLOW_MASK, PTE_PWT | PTE_PCD | PTE_PSE | PTE_GLOBAL);
        assert_eq!(L2_DISALLOW_MASK, 0x198);
        assert_eq!(L1_DISALLOW_MASK, 0x4000_0000_0000_0098);
        assert_eq!(L1_DISALLOW_MASK_IO, 0x4000_0000_0000_0000);
        assert_eq!(PTE_GUEST_ALLOWED & PTE_ADDR_MASK, 0);
        assert_eq!(
            PTE_ADDR_MASK | PTE_GUEST_ALLOWED | BASE_DISALLOW_MASK,
            u64::MAX
        );
    }

    #[test]
    fn xen_range() {
        assert_eq!(
            HYPERVISOR_VIRT_START,
            0xFFFF_0000_0000_0000 | ((ROOT_PAGETABLE_FIRST_XEN_SLOT as u64) << 39)
        );
        assert_eq!(
            HYPERVISOR_VIRT_END,
            0xFFFF_0000_0000_0000 | ((ROOT_PAGETABLE_LAST_XEN_SLOT as u64 + 1) << 39)
        );
        assert!(!is_guest_l4_slot(256) && !is_guest_l4_slot(271));
        assert!(is_guest_l4_slot(255) && is_guest_l4_slot(272));
        assert_eq!(
            (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> MACH2PHYS_SHIFT,
            1 << 35
        );
        assert_eq!(FIRST_RESERVED_GDT_ENTRY, 7168);
    }
}
