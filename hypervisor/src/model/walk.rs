//! Guest-virtual translation through a PV guest's own page tables, for the model's
//! hypercalls and the interpreter, plus Xen's `copy_{from,to}_guest`.
//!
//! [`translate`] walks the four levels from a CR3 frame as an x86-64 CPU with
//! CR0.WP, EFER.NXE and a 46-bit physical address width does:
//!
//! - a non-canonical address is a #GP ([`WalkError::NonCanonical`]);
//! - a non-present entry is a #PF with P clear; an entry with reserved bits set (bits
//!   51:46, PS in an L4 entry) is a #PF with P and RSVD; the walk reads every level
//!   before it judges permissions;
//! - writes need RW at every level (supervisor writes too: WP is on); fetches need NX
//!   clear at every level; US is never enforced in the guest's slots: Xen ORs
//!   `_PAGE_USER` into every present entry of a 64-bit PV guest when it validates it
//!   (`adjust_guest_l1e` .. `adjust_guest_l4e`), so neither kernel nor user mode sees
//!   US faults there (the model keeps the bits the guest wrote and grants US in the
//!   walk instead; a 64-bit PV guest separates kernel and user only by the separate
//!   user page tables);
//! - the #PF error code has P (protection violation or reserved bit), W (write), U
//!   ([`Access::user`]), RSVD and I/D (fetch) as the hardware reports them, with U
//!   reflecting guest user mode as Xen's `pv_inject_event` re-sets it;
//! - superpages: Xen never lets PSE into a PV guest's L2/L3 entries, so the model's CPU
//!   treats PS at any level as a reserved bit;
//! - frames that are not RAM read as all ones, so walking through them is an RSVD fault
//!   (and a leaf naming one faults likewise).
//!
//! On success the walker sets A in every entry it used and D in the leaf for writes,
//! through [`Memory`]'s guest-store path (log-dirty sees the page-table frame written;
//! no reference changes: A/D are fast-path bits). Faulting walks set nothing, as Xen's
//! own `guest_walk_tables` does.
//!
//! L4 slot 256 needs no page-table frames: `MACH2PHYS_VIRT_START..` translates
//! read-only (NX, user-accessible: no `m2p_strict`) to the M2P frames; beyond the M2P's
//! frames it is not present. Slots 257..=271 are Xen's supervisor-only mappings: any
//! guest access is a protection #PF.
//!
//! [`copy_from_guest`] and [`copy_to_guest`] are Xen's checks: the address must pass
//! `__addr_ok` (below 2^47 or above Xen's range), every page must translate for a
//! supervisor access (writes need RW), any fault is `EFAULT`; copies may straddle pages
//! and a failing copy-to leaves the pages before the fault written (as Xen's
//! `__copy_to_user` does).

use crate::abi::mm::{
    L1_PAGETABLE_SHIFT, L2_PAGETABLE_SHIFT, L3_PAGETABLE_SHIFT, L4_PAGETABLE_SHIFT,
    MACH2PHYS_VIRT_START, ROOT_PAGETABLE_FIRST_XEN_SLOT, ROOT_PAGETABLE_LAST_XEN_SLOT,
};
use crate::error::{Errno, XenResult};
use crate::model::mm::Memory;
use crate::types::{Mfn, PAGE_SIZE};

/// #PF error code: the fault was a protection violation (or reserved bit), not a
/// non-present entry.
pub const PFEC_PRESENT: u32 = 1 << 0;
/// #PF error code: the access was a write.
pub const PFEC_WRITE: u32 = 1 << 1;
/// #PF error code: the access was from user mode.
pub const PFEC_USER: u32 = 1 << 2;
/// #PF error code: a reserved bit was set in a paging entry.
pub const PFEC_RSVD: u32 = 1 << 3;
/// #PF error code: the access was an instruction fetch.
pub const PFEC_INSN: u32 = 1 << 4;

const P: u64 = 1;
const RW: u64 = 1 << 1;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000F_FFFF_FFFF_F000;
/// Bits 51:46, above the model CPU's physical address width.
const RSVD_PHYS: u64 = 0x000F_C000_0000_0000;

/// What kind of access is being translated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Access {
    /// A store.
    pub write: bool,
    /// From guest user mode (U in the error code; Xen's slots refuse it).
    pub user: bool,
    /// An instruction fetch (enforces NX).
    pub fetch: bool,
}

impl Access {
    /// A supervisor read.
    pub const READ: Access = Access {
        write: false,
        user: false,
        fetch: false,
    };
    /// A supervisor write.
    pub const WRITE: Access = Access {
        write: true,
        user: false,
        fetch: false,
    };
    /// A supervisor instruction fetch.
    pub const FETCH: Access = Access {
        write: false,
        user: false,
        fetch: true,
    };

    fn error_code(self) -> u32 {
        let mut ec = 0;
        if self.write {
            ec |= PFEC_WRITE;
        }
        if self.user {
            ec |= PFEC_USER;
        }
        if self.fetch {
            ec |= PFEC_INSN;
        }
        ec
    }
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Translation {
    /// The frame `va` lies in.
    pub mfn: Mfn,
    /// RW at every level: a write would not fault.
    pub writable: bool,
    /// A user-mode access would not fault (always, in the guest's slots).
    pub user: bool,
    /// NX clear at every level: a fetch would not fault.
    pub executable: bool,
    /// The leaf's D bit is set (a cached translation may be written without a walk).
    pub dirty: bool,
}

/// A #PF: the error code and the faulting address (CR2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageFault {
    /// The hardware error code (`PFEC_*`).
    pub error_code: u32,
    /// The faulting linear address.
    pub cr2: u64,
}

/// Why a translation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalkError {
    /// A page fault.
    PageFault(PageFault),
    /// A non-canonical address: #GP(0), not a page fault.
    NonCanonical(u64),
}

impl WalkError {
    /// The page fault, if this is one.
    #[must_use]
    pub fn page_fault(self) -> Option<PageFault> {
        match self {
            WalkError::PageFault(pf) => Some(pf),
            WalkError::NonCanonical(_) => None,
        }
    }
}

/// True if bits 63:47 of `va` are all equal.
#[must_use]
pub const fn is_canonical(va: u64) -> bool {
    ((va as i64) << 16 >> 16) as u64 == va
}

fn pf(va: u64, acc: Access, extra: u32) -> WalkError {
    WalkError::PageFault(PageFault {
        error_code: acc.error_code() | extra,
        cr2: va,
    })
}

/// Walks `cr3` for `va` without setting A/D bits. `used` receives the (frame, slot) of
/// each entry used, L4 first; the second result is how many (0 for Xen's slots).
fn walk(
    mem: &Memory,
    cr3: Mfn,
    va: u64,
    acc: Access,
    used: &mut [(usize, usize); 4],
) -> Result<(Translation, usize), WalkError> {
    if !is_canonical(va) {
        return Err(WalkError::NonCanonical(va));
    }
    let l4_slot = ((va >> L4_PAGETABLE_SHIFT) & 511) as usize;
    if (ROOT_PAGETABLE_FIRST_XEN_SLOT..=ROOT_PAGETABLE_LAST_XEN_SLOT).contains(&l4_slot) {
        return xen_slot(mem, va, acc, l4_slot).map(|t| (t, 0));
    }
    let nr = mem.nr_frames();
    let mut table = cr3.get();
    let (mut rw, mut nx) = (true, false);
    let mut leaf = 0u64;
    for (k, shift) in [
        L4_PAGETABLE_SHIFT,
        L3_PAGETABLE_SHIFT,
        L2_PAGETABLE_SHIFT,
        L1_PAGETABLE_SHIFT,
    ]
    .into_iter()
    .enumerate()
    {
        if table >= nr {
            // Not RAM: reads as all ones.
            return Err(pf(va, acc, PFEC_PRESENT | PFEC_RSVD));
        }
        let slot = ((va >> shift) & 511) as usize;
        let e = mem.pte(table as usize, slot);
        if e & P == 0 {
            return Err(pf(va, acc, 0));
        }
        let rsvd = if shift == L1_PAGETABLE_SHIFT {
            RSVD_PHYS
        } else {
            RSVD_PHYS | PS
        };
        if e & rsvd != 0 {
            return Err(pf(va, acc, PFEC_PRESENT | PFEC_RSVD));
        }
        rw &= e & RW != 0;
        nx |= e & NX != 0;
        used[k] = (table as usize, slot);
        table = (e & ADDR) >> 12;
        leaf = e;
    }
    if table >= nr {
        return Err(pf(va, acc, PFEC_PRESENT | PFEC_RSVD));
    }
    // US: every present entry is user-accessible once Xen adjusted it.
    if (acc.write && !rw) || (acc.fetch && nx) {
        return Err(pf(va, acc, PFEC_PRESENT));
    }
    let t = Translation {
        mfn: Mfn::new(table),
        writable: rw,
        user: true,
        executable: !nx,
        dirty: leaf & D != 0,
    };
    Ok((t, 4))
}

/// L4 slots 256..=271.
fn xen_slot(mem: &Memory, va: u64, acc: Access, l4_slot: usize) -> Result<Translation, WalkError> {
    if l4_slot != ROOT_PAGETABLE_FIRST_XEN_SLOT {
        // Xen's own mappings: present, supervisor only.
        return Err(pf(va, acc, PFEC_PRESENT));
    }
    let frame = (va - MACH2PHYS_VIRT_START) >> 12;
    if frame >= mem.m2p_frames() {
        return Err(pf(va, acc, 0));
    }
    if acc.write || acc.fetch {
        return Err(pf(va, acc, PFEC_PRESENT));
    }
    Ok(Translation {
        mfn: Mfn::new(frame),
        writable: false,
        user: true,
        executable: false,
        dirty: false,
    })
}

/// Translates `va` under `cr3` for `acc`, setting A bits (and D for writes) on success.
///
/// # Errors
/// [`WalkError::PageFault`] with the hardware error code, or
/// [`WalkError::NonCanonical`].
pub fn translate(
    mem: &mut Memory,
    cr3: Mfn,
    va: u64,
    acc: Access,
) -> Result<Translation, WalkError> {
    let mut used = [(0usize, 0usize); 4];
    let (t, n) = walk(mem, cr3, va, acc, &mut used)?;
    for (k, &(table, slot)) in used[..n].iter().enumerate() {
        let e = mem.pte(table, slot);
        let want = if k == n - 1 && acc.write { A | D } else { A };
        if e & want != want {
            mem.write_pte(table, slot, e | want);
        }
    }
    Ok(Translation {
        dirty: t.dirty || acc.write,
        ..t
    })
}

/// [`translate`] without side effects (no A/D updates): for debuggers and checks.
///
/// # Errors
/// As [`translate`].
pub fn probe(mem: &Memory, cr3: Mfn, va: u64, acc: Access) -> Result<Translation, WalkError> {
    let mut used = [(0usize, 0usize); 4];
    walk(mem, cr3, va, acc, &mut used).map(|(t, _)| t)
}

/// Xen's `copy_from_guest` for a PV guest running on `cr3`: fills `buf` from `va`.
///
/// # Errors
/// `EFAULT` if the range starts in Xen's area or any page fails to translate.
pub fn copy_from_guest(mem: &mut Memory, cr3: Mfn, va: u64, buf: &mut [u8]) -> XenResult<()> {
    if buf.is_empty() {
        return Ok(());
    }
    if !crate::model::mm::guest_addr_ok(va) {
        return Err(Errno::EFAULT);
    }
    let mut done = 0usize;
    while done < buf.len() {
        let cur = va.wrapping_add(done as u64);
        let t = translate(mem, cr3, cur, Access::READ).map_err(|_| Errno::EFAULT)?;
        let off = (cur as usize) & (PAGE_SIZE - 1);
        let n = (PAGE_SIZE - off).min(buf.len() - done);
        let page = mem.page(t.mfn).map_err(|_| Errno::EFAULT)?;
        buf[done..done + n].copy_from_slice(&page[off..off + n]);
        done += n;
    }
    Ok(())
}

/// Xen's `copy_to_guest` for a PV guest running on `cr3`: writes `bytes` at `va`
/// through [`Memory::guest_write`] (log-dirty, code generations).
///
/// # Errors
/// `EFAULT` if the range starts in Xen's area or any page fails to translate for a
/// write; the pages before the faulting one have been written.
pub fn copy_to_guest(mem: &mut Memory, cr3: Mfn, va: u64, bytes: &[u8]) -> XenResult<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    if !crate::model::mm::guest_addr_ok(va) {
        return Err(Errno::EFAULT);
    }
    let mut done = 0usize;
    while done < bytes.len() {
        let cur = va.wrapping_add(done as u64);
        let t = translate(mem, cr3, cur, Access::WRITE).map_err(|_| Errno::EFAULT)?;
        let off = (cur as usize) & (PAGE_SIZE - 1);
        let n = (PAGE_SIZE - off).min(bytes.len() - done);
        mem.guest_write(t.mfn, off, &bytes[done..done + n])
            .map_err(|_| Errno::EFAULT)?;
        done += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::mm::{
        MACH2PHYS_VIRT_END, PTE_ACCESSED, PTE_DIRTY, PTE_NX, PTE_PRESENT, PTE_RW,
    };
    use crate::model::mm::testutil::*;
    use crate::model::mm::PageType;
    use crate::types::{DomId, Pfn};

    const R: Access = Access::READ;
    const W: Access = Access::WRITE;
    const UR: Access = Access {
        write: false,
        user: true,
        fetch: false,
    };
    const UW: Access = Access {
        write: true,
        user: true,
        fetch: false,
    };
    const UX: Access = Access {
        write: false,
        user: true,
        fetch: true,
    };

    fn fault(r: Result<Translation, WalkError>) -> u32 {
        r.unwrap_err()
            .page_fault()
            .expect("a page fault")
            .error_code
    }

    #[test]
    fn translates_and_sets_accessed_and_dirty() {
        let mut m = machine();
        let s = pinned_space(&mut m, D1, 0, 2);
        let t = translate(&mut m, s.l4, Space::va(1) + 0x123, R).unwrap();
        assert_eq!(t.mfn, s.data[1]);
        assert!(t.writable && t.user && t.executable && !t.dirty);
        assert_ne!(get(&m, s.l4, 0) & PTE_ACCESSED, 0);
        assert_ne!(get(&m, s.l3, 1) & PTE_ACCESSED, 0);
        assert_ne!(get(&m, s.l2, 0) & PTE_ACCESSED, 0);
        assert_eq!(get(&m, s.l1, 1) & (PTE_ACCESSED | PTE_DIRTY), PTE_ACCESSED);
        let t = translate(&mut m, s.l4, Space::va(1), W).unwrap();
        assert!(t.dirty);
        assert_eq!(get(&m, s.l1, 1) & PTE_DIRTY, PTE_DIRTY);
        assert_eq!(get(&m, s.l2, 0) & PTE_DIRTY, 0, "D only on the leaf");
        // probe has no side effects.
        assert!(probe(&m, s.l4, Space::va(0), W).is_ok());
        assert_eq!(get(&m, s.l1, 0) & PTE_ACCESSED, 0);
        // A/D updates change no reference.
        m.check_invariants(&[], &LIVE).unwrap();
    }

    #[test]
    fn a_d_updates_are_logged_dirty() {
        let mut m = machine();
        let s = pinned_space(&mut m, D1, 0, 1);
        m.logdirty_enable(D1).unwrap();
        translate(&mut m, s.l4, Space::va(0), R).unwrap();
        let mut bm = [0u8; 1];
        let mut pages = 8;
        m.logdirty_peek(D1, Some(&mut bm), &mut pages).unwrap();
        assert_eq!(bm[0], 0b1111, "the four tables' PFNs 0..=3");
        // Nothing new to set: no further writes.
        let mut pages = 8;
        m.logdirty_clean(D1, None, &mut pages, false).unwrap();
        translate(&mut m, s.l4, Space::va(0), R).unwrap();
        m.logdirty_peek(D1, Some(&mut bm), &mut pages).unwrap();
        assert_eq!(bm[0], 0);
    }

    #[test]
    fn fault_error_codes() {
        let mut m = machine();
        let s = pinned_space(&mut m, D1, 0, 2);
        // Not present: P clear, W/U/I as the access.
        let unmapped = Space::va(200);
        assert_eq!(fault(translate(&mut m, s.l4, unmapped, R)), 0);
        assert_eq!(
            fault(translate(&mut m, s.l4, unmapped, UW)),
            PFEC_WRITE | PFEC_USER
        );
        assert_eq!(
            fault(translate(&mut m, s.l4, 0x1_0000_0000, UX)),
            PFEC_USER | PFEC_INSN,
            "L3 slot missing"
        );
        let e = translate(&mut m, s.l4, unmapped, R).unwrap_err();
        assert_eq!(e.page_fault().unwrap().cr2, unmapped);
        // Write to a read-only page (the tables are mapped RO): P|W, kernel or user.
        let ro = Space::va(s.table_slot(3));
        assert_eq!(translate(&mut m, s.l4, ro, R).unwrap().mfn, s.l1);
        assert_eq!(
            fault(translate(&mut m, s.l4, ro, W)),
            PFEC_PRESENT | PFEC_WRITE
        );
        assert_eq!(
            fault(translate(&mut m, s.l4, ro, UW)),
            PFEC_PRESENT | PFEC_WRITE | PFEC_USER
        );
        // A mapping without US: Xen's adjust_guest_l1e makes it user-accessible, so
        // neither kernel nor user mode faults.
        upd(&mut m, D1, s.l1, 0, pte(s.data[0], PTE_PRESENT | PTE_RW)).unwrap();
        assert!(translate(&mut m, s.l4, Space::va(0), W).is_ok());
        assert!(translate(&mut m, s.l4, Space::va(0), UR).is_ok());
        assert!(translate(&mut m, s.l4, Space::va(0), UW).is_ok());
        // NX on fetch.
        upd(&mut m, D1, s.l1, 1, pte(s.data[1], PRW | PTE_NX)).unwrap();
        assert!(translate(&mut m, s.l4, Space::va(1), UR).is_ok());
        assert_eq!(
            fault(translate(&mut m, s.l4, Space::va(1), UX)),
            PFEC_PRESENT | PFEC_USER | PFEC_INSN
        );
        assert_eq!(
            fault(translate(&mut m, s.l4, Space::va(1), Access::FETCH)),
            PFEC_PRESENT | PFEC_INSN
        );
        // Faulting walks leave A clear.
        upd(&mut m, D1, s.l1, 50, pte(s.data[1], PRW | PTE_NX)).unwrap();
        assert!(translate(&mut m, s.l4, Space::va(50), Access::FETCH).is_err());
        assert_eq!(get(&m, s.l1, 50) & PTE_ACCESSED, 0);
        // Non-canonical: #GP, not #PF.
        assert_eq!(
            translate(&mut m, s.l4, 0x0000_8000_0000_0000, R),
            Err(WalkError::NonCanonical(0x0000_8000_0000_0000))
        );
    }

    #[test]
    fn reserved_bits_fault_with_rsvd() {
        let mut m = machine();
        // Hand-built (never validated) tables: the walker does not care about types.
        let s = build_space(&mut m, D1, 0, 2);
        set(&mut m, s.l1, 0, pte(s.data[0], PRW) | 1 << 51);
        assert_eq!(
            fault(translate(&mut m, s.l4, Space::va(0), W)),
            PFEC_PRESENT | PFEC_RSVD | PFEC_WRITE
        );
        set(&mut m, s.l2, 0, pte(s.l1, PRW) | crate::abi::mm::PTE_PSE);
        assert_eq!(
            fault(translate(&mut m, s.l4, Space::va(1), UR)),
            PFEC_PRESENT | PFEC_RSVD | PFEC_USER
        );
        // An entry naming memory that does not exist reads all ones: RSVD.
        set(&mut m, s.l2, 0, pte(Mfn::new(1 << 20), PRW));
        assert_eq!(
            fault(translate(&mut m, s.l4, Space::va(1), R)),
            PFEC_PRESENT | PFEC_RSVD
        );
        assert_eq!(
            fault(translate(&mut m, Mfn::new(1 << 20), Space::va(1), R)),
            PFEC_PRESENT | PFEC_RSVD
        );
    }

    #[test]
    fn the_m2p_range_is_read_only_without_page_tables() {
        let mut m = machine();
        let s = pinned_space(&mut m, D1, 0, 1);
        let mfn = s.data[0];
        let va = MACH2PHYS_VIRT_START + mfn.get() * 8;
        let t = translate(&mut m, s.l4, va, UR).unwrap();
        assert_eq!(t.mfn, Mfn::new(mfn.get() * 8 / 4096));
        assert!(!t.writable && !t.executable);
        let off = (va & 0xfff) as usize;
        assert_eq!(m.read_u64(t.mfn, off).unwrap(), 4, "M2P[data[0]] = PFN 4");
        assert_eq!(m.m2p(mfn), Pfn::new(4));
        assert_eq!(
            fault(translate(&mut m, s.l4, va, W)),
            PFEC_PRESENT | PFEC_WRITE
        );
        assert_eq!(
            fault(translate(&mut m, s.l4, va, Access::FETCH)),
            PFEC_PRESENT | PFEC_INSN
        );
        // Past the M2P's frames, and in the rest of slot 256: not present.
        assert_eq!(
            fault(translate(
                &mut m,
                s.l4,
                MACH2PHYS_VIRT_START + 512 * 4096,
                R
            )),
            0
        );
        assert_eq!(fault(translate(&mut m, s.l4, MACH2PHYS_VIRT_END, R)), 0);
        // Slots 257..=271: Xen's, supervisor-only.
        assert_eq!(
            fault(translate(&mut m, s.l4, 0xffff_8080_0000_0000, UR)),
            PFEC_PRESENT | PFEC_USER
        );
        assert_eq!(
            fault(translate(&mut m, s.l4, 0xffff_87ff_ffff_f000, R)),
            PFEC_PRESENT
        );
        // And the hypercall copy helpers refuse the whole Xen range.
        let mut b = [0u8; 8];
        assert_eq!(
            copy_from_guest(&mut m, s.l4, va, &mut b),
            Err(Errno::EFAULT)
        );
    }

    #[test]
    fn copies_straddle_pages_and_fault_with_efault() {
        let mut m = machine();
        let s = pinned_space(&mut m, D1, 0, 3);
        m.logdirty_enable(D1).unwrap();
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let va = Space::va(0) + 4000;
        copy_to_guest(&mut m, s.l4, va, &data).unwrap();
        assert_eq!(&m.page(s.data[0]).unwrap()[4000..], &data[..96]);
        assert_eq!(&m.page(s.data[1]).unwrap()[..4096], &data[96..4192]);
        assert_eq!(&m.page(s.data[2]).unwrap()[..808], &data[4192..]);
        let mut back = vec![0u8; 5000];
        copy_from_guest(&mut m, s.l4, va, &mut back).unwrap();
        assert_eq!(back, data);
        let mut bm = [0u8; 1];
        let mut pages = 8;
        m.logdirty_peek(D1, Some(&mut bm), &mut pages).unwrap();
        assert_eq!(bm[0] & 0b111_0000, 0b111_0000, "PFNs 4, 5, 6 written");
        // Writing a read-only page (a table) or an unmapped one: EFAULT; the pages
        // before the fault are written.
        let ro = Space::va(s.table_slot(0));
        assert_eq!(copy_to_guest(&mut m, s.l4, ro, &[1]), Err(Errno::EFAULT));
        assert_eq!(
            copy_to_guest(&mut m, s.l4, Space::va(2) + 4090, &[9; 20]),
            Err(Errno::EFAULT),
            "data[3] is a table"
        );
        assert_eq!(&m.page(s.data[2]).unwrap()[4090..], &[9; 6]);
        // Reads of a read-only page are fine; unmapped or non-canonical are EFAULT.
        let mut b = [0u8; 16];
        copy_from_guest(&mut m, s.l4, ro, &mut b).unwrap();
        assert_eq!(
            copy_from_guest(&mut m, s.l4, Space::va(300), &mut b),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            copy_from_guest(&mut m, s.l4, (1 << 47) - 8, &mut b),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            copy_to_guest(&mut m, s.l4, 0x8000_0000_0000_0000, &b),
            Err(Errno::EFAULT)
        );
        copy_from_guest(&mut m, s.l4, 0, &mut []).unwrap();
        m.check_invariants(&[], &LIVE).unwrap();
        let _ = (DomId::SELF, PageType::None);
    }
}
