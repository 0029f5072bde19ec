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
//!   clear at every level; US is only enforced when [`Access::user`] is set, i.e. the
//!   vCPU runs guest *user* mode — a 64-bit PV kernel also runs in ring 3, but Xen makes
//!   every guest mapping user-accessible (`adjust_guest_l*e`), so kernel-mode accesses
//!   never see US faults;
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
const US: u64 = 1 << 2;
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
    /// From guest user mode (enforces US).
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
    /// US at every level: a user-mode access would not fault.
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
    let (mut rw, mut us, mut nx) = (true, true, false);
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
        us &= e & US != 0;
        nx |= e & NX != 0;
        used[k] = (table as usize, slot);
        table = (e & ADDR) >> 12;
        leaf = e;
    }
    if table >= nr {
        return Err(pf(va, acc, PFEC_PRESENT | PFEC_RSVD));
    }
    if (acc.write && !rw) || (acc.user && !us) || (acc.fetch && nx) {
        return Err(pf(va, acc, PFEC_PRESENT));
    }
    let t = Translation {
        mfn: Mfn::new(table),
        writable: rw,
        user: us,
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
