//! Machine memory with Xen's PV page-type rules, enforced rather than assumed.
//!
//! [`Memory`] owns every machine frame of one simulated host: its bytes, its owner, its
//! general reference count, its PV type with type count, pin and validation state, plus
//! the per-domain bookkeeping Xen keeps next to it (tot/max pages, log-dirty bitmap)
//! and the one machine-to-phys table (M2P). It knows nothing about vCPUs: the model
//! holds vCPU state (CR3, GDT frames) and takes and drops references through
//! [`Memory::get_page_and_type`] / [`Memory::put_page_and_type`].
//!
//! # Layout of the machine
//!
//! - Frames `0 .. 512*k` hold the M2P (one little-endian u64 per MFN, the frame's PFN,
//!   `u64::MAX` = invalid), owned by `DOMID_XEN`, in `k` 2 MiB chunks of 512 frames, so
//!   `XENMEM_machphys_mfn_list` answers 0, 512, … and a toolstack that foreign-maps those
//!   frames from `DOMID_XEN` reads the M2P bytes directly. They carry Xen's permanent
//!   read-only share (type none, type count 1), so nobody can map them writable.
//!   A machine should have at least 1024 frames; smaller machines are all M2P.
//! - Every other frame starts free. Allocation is deterministic: the lowest free MFN
//!   (the lowest suitably aligned free run for order > 0). Frames are scrubbed to zero
//!   when allocated after having been used.
//!
//! # Reference counting (Xen's `count_info` / `type_info`, xen/arch/x86/mm.c)
//!
//! - `count` is the general reference count; it includes the allocation reference
//!   (`allocated`, Xen's `PGC_allocated`). When it drops to zero the frame is freed:
//!   owner cleared, M2P entry invalidated, counted out of the owner's `tot_pages`.
//! - `ty`/`type_count`: one type at a time; a reference of another type while
//!   `type_count > 0` fails with `EINVAL` (`_get_page_type`). The type only changes on
//!   the count's 0→1 transition, losing `validated`; page tables and GDT/LDT pages are
//!   then validated entry by entry (`promote_l*_table`, `validate_segdesc_page`), and a
//!   failed validation leaves the frame untyped with the error of the first bad entry.
//!   Writable (and none) frames need no validation.
//! - Validating an Ln table takes an L(n-1) type reference plus a general reference on
//!   every present entry's frame; an L1 entry takes a writable type reference when RW is
//!   set, only a general reference otherwise. The last type reference dropped on a
//!   table devalidates it: every entry's references are put again, recursively
//!   (`demote_l*_table`). Hence a page-table frame never has a writable mapping and
//!   a writable-mapped frame never becomes a page table.
//! - "Linear" entries (an Ln entry naming an Ln table) are accepted read-only only
//!   (`get_*_linear_pagetable`, `pv-linear-pt` on): a self-map takes no reference; an
//!   entry naming another, already validated Ln table takes a general and an Ln type
//!   reference, and `linear` (Xen's `linear_pt_count`) keeps a table from both having
//!   linear entries and being the target of one.
//! - L4 slots 256..=271 are Xen's (`is_guest_l4_slot`): validation ignores whatever the
//!   guest left there and then fills them (`init_xen_l4_slots`); the model fills them
//!   with zeros, so they read back as 0 (libxc zeroes them in saved streams anyway), and
//!   the walker serves slot 256's read-only M2P without any page-table frames.
//!   `mmu_update` to such a slot fails with `EINVAL` (`mod_l4_entry`).
//! - Entry flags are checked against Xen's disallow masks: PWT/PCD/PSE/G in L2–L4
//!   (`BASE_DISALLOW_MASK`), PWT/PCD/PAT in L1 (this model has no domain with I/O
//!   memory) → `EINVAL`. Bit 62 (`_PAGE_GNTTAB`) is refused only by debug builds of Xen;
//!   the model follows release builds and allows it.
//! - Changes that only touch A, D, US, G, NX and the software bits take the fast path of
//!   `mod_l*_entry`: the entry is rewritten without touching any reference.
//!
//! # Guest-visible writes
//!
//! [`Memory::guest_write`] is the one path every guest-visible store takes (interpreter
//! stores, copy-to-guest, toolstack foreign writes, A/D updates by the walker, PTE
//! writes). It marks log-dirty and, if the frame is marked as code
//! ([`Memory::mark_code`]), bumps its write generation ([`Memory::frame_gen`]) once and
//! clears the mark: a decoder that cached instructions from a frame re-marks it when it
//! decodes again, so stores to data frames cost nothing and stores to code frames
//! invalidate exactly once. [`Memory::page_mut_raw`] (Xen's own stores) also bumps the
//! generation of a code frame but does not mark dirty.
//!
//! # Log-dirty
//!
//! One bit per PFN (the frame's M2P entry at the time of the write; frames without a
//! valid M2P entry are not recorded), PFNs taken modulo 2^42 like Xen's four-level
//! bitmap. CLEAN and PEEK copy `ceil(pages/8)` bytes, LSB first; CLEAN then clears every
//! 32768-PFN leaf it visited and zeroes the counters (`paging_log_dirty_op`). Besides
//! guest writes, Xen marks a page when it is validated or devalidated as a page table,
//! pinned or unpinned, cleared or copied to, and the new PFN of an `MMU_MACHPHYS_UPDATE`.
//! `fault_count` counts the same events as `dirty_count` (each newly dirtied page costs
//! the guest one log-dirty fault under shadow paging).
//!
//! # P2M
//!
//! A PV domain's real P2M is the guest's own array; Xen only has the M2P. The model keeps
//! a per-domain P2M for its own use (tests, oracles): `populate_physmap` and
//! `MMU_MACHPHYS_UPDATE` of a frame the domain holds allocated record `pfn → mfn` (the
//! latest claim of a PFN wins), `decrease_reservation` and freeing remove it. Invariant:
//! every P2M entry names an allocated frame of the domain whose M2P entry is that PFN.
//!
//! # Entry points
//!
//! | what | function | Xen |
//! |---|---|---|
//! | domains | [`Memory::add_domain`], [`Memory::set_max_pages`], [`Memory::tot_pages`], [`Memory::max_pages`], [`Memory::domain_frames`], [`Memory::alloc_xen_page`], [`Memory::destroy_domain`] | `assign_pages`, `share_xen_page_with_guest`, `domain_relinquish_resources` |
//! | memory_op | [`Memory::increase_reservation`], [`Memory::decrease_reservation`], [`Memory::populate_physmap`], [`Memory::maximum_ram_page`], [`Memory::machphys_mfn_list`] | xen/common/memory.c |
//! | M2P / P2M | [`Memory::m2p`], [`Memory::set_m2p`], [`Memory::p2m`] | `set_gpfn_from_mfn` |
//! | mmu_update | [`Memory::mmu_update`] | `do_mmu_update` |
//! | mmuext_op | [`Memory::mmuext_pg_owner`], [`Memory::pin`], [`Memory::unpin`], [`Memory::clear_page`], [`Memory::copy_page`] | `do_mmuext_op` |
//! | references held by the model | [`Memory::get_page_and_type`], [`Memory::put_page_and_type`], [`Memory::get_page`], [`Memory::put_page`] | `get_page_and_type_from_mfn` |
//! | update_va_mapping | [`Memory::update_va_mapping`], [`Memory::update_va_mapping_otherdomain`] | `__do_update_va_mapping` |
//! | getpageframeinfo3 | [`Memory::page_type_info`] | arch_do_domctl |
//! | guest stores | [`Memory::guest_write`], [`Memory::foreign_map_check`] (`foreign_read_check`, `foreign_write_check`), [`Memory::mark_code`], [`Memory::frame_gen`] | `paging_mark_dirty`, `get_page_from_l1e` |
//! | log-dirty | [`Memory::logdirty_enable`], [`Memory::logdirty_disable`], [`Memory::logdirty_clean`], [`Memory::logdirty_peek`], [`Memory::logdirty_read`] | xen/arch/x86/mm/paging.c |
//! | guest-virtual access | `model::walk`: `translate`, `probe`, `copy_from_guest`, `copy_to_guest` | `guest_walk_tables`, `copy_{from,to}_user` |
//! | invariants | [`Memory::check_invariants`] (in `model::invariants`) | |
//!
//! # What the model simplifies
//!
//! - No preemption/continuations and no partial validation: a failed validation is
//!   undone at once (Xen defers some of it to `old_guest_table`).
//! - `adjust_guest_l*e` is not applied: entries keep exactly the bits the guest wrote
//!   (real Xen ORs `_PAGE_USER` into 64-bit PV entries); the walker instead treats
//!   every present entry as user-accessible.
//! - No MMIO, grant tables, superpage marking or shared (CoW) pages. Mapping a frame
//!   that is not RAM fails with `EPERM` for every domain.
//! - Segment-descriptor pages are checked like `check_descriptor` (present system
//!   descriptors other than call gates are refused), but DPL fix-ups are not written
//!   back.
//! - Dying domains are invisible to every operation (`ESRCH`) even while some of their
//!   frames linger because another domain still references them.
//! - `mmu_update` with a foreign PFD does not check that the PFD has a vCPU 0 (Xen's
//!   `EINVAL`); L1TF handling of non-present entries (`pv_l1tf_check_*`) is absent.
//! - The control domain (for `xsm_priv_mapping`) is dom0.

mod ops;
mod pt;

pub(crate) use ops::guest_addr_ok;
pub(crate) use pt::{descriptor_ok, guest_l4_slot, pte_mfn, BASE_DISALLOW, L1_DISALLOW};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::abi::domctl::{
    XEN_DOMCTL_PFINFO_L1TAB, XEN_DOMCTL_PFINFO_L2TAB, XEN_DOMCTL_PFINFO_L3TAB,
    XEN_DOMCTL_PFINFO_L4TAB, XEN_DOMCTL_PFINFO_LPINTAB, XEN_DOMCTL_PFINFO_NOTAB,
    XEN_DOMCTL_PFINFO_XTAB,
};
use crate::error::{Errno, XenResult};
use crate::types::{DomId, Mfn, Pfn, PAGE_SIZE};

/// One 4 KiB page of bytes.
pub type Page = [u8; PAGE_SIZE];

/// Entries per page-table page.
pub(crate) const ENTRIES: usize = 512;
/// Frames per M2P chunk (2 MiB).
pub(crate) const M2P_CHUNK_FRAMES: u64 = 512;
/// Largest extent order memory_op accepts (Xen's `CONFIG_DOMU_MAX_ORDER` on x86).
pub const MAX_ORDER: u32 = 9;
/// PFNs a log-dirty leaf covers (one page of bits), the granularity CLEAN clears at.
const LOGDIRTY_LEAF_PFNS: u64 = (PAGE_SIZE as u64) * 8;
/// PFN bits Xen's four-level log-dirty bitmap keeps (15 + 3 × 9).
const LOGDIRTY_PFN_BITS: u32 = 42;

/// A frame's PV type (`PGT_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageType {
    /// No type.
    #[default]
    None,
    /// L1 page table.
    L1,
    /// L2 page table.
    L2,
    /// L3 page table.
    L3,
    /// L4 page table.
    L4,
    /// GDT/LDT page.
    SegDesc,
    /// Writable (mapped RW somewhere).
    Writable,
}

impl PageType {
    /// The page-table level (1..=4), or 0 for the other types.
    #[must_use]
    pub const fn level(self) -> u32 {
        match self {
            PageType::L1 => 1,
            PageType::L2 => 2,
            PageType::L3 => 3,
            PageType::L4 => 4,
            _ => 0,
        }
    }

    /// The page-table type of `level` (1..=4).
    #[must_use]
    pub const fn from_level(level: u32) -> Option<PageType> {
        match level {
            1 => Some(PageType::L1),
            2 => Some(PageType::L2),
            3 => Some(PageType::L3),
            4 => Some(PageType::L4),
            _ => None,
        }
    }

    /// True for L1..L4.
    #[must_use]
    pub const fn is_pagetable(self) -> bool {
        self.level() != 0
    }

    /// True for the types whose contents Xen audits (L1..L4 and segment descriptors).
    #[must_use]
    pub const fn needs_validation(self) -> bool {
        self.is_pagetable() || matches!(self, PageType::SegDesc)
    }
}

/// What a frame is used for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrameKind {
    /// On the free list.
    #[default]
    Free,
    /// A domain's memory (domheap), counted in its `tot_pages`.
    Domain,
    /// A Xen-heap page shared writable with its owner (e.g. shared_info): not counted in
    /// `tot_pages`, never in the P2M, freed with the domain.
    XenHeap,
    /// Xen's own frames shared read-only with privileged domains (the M2P).
    Xen,
}

/// Bookkeeping for one machine frame (Xen's `struct page_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// Owning domain, or `None` when free.
    pub owner: Option<DomId>,
    /// General reference count (includes the allocation reference).
    pub count: u32,
    /// Current type.
    pub ty: PageType,
    /// Type reference count.
    pub type_count: u32,
    /// Pinned (`PGT_pinned`).
    pub pinned: bool,
    /// Validated as its current type (`PGT_validated`).
    pub validated: bool,
    /// Holds the allocation reference (`PGC_allocated`).
    pub allocated: bool,
    /// What the frame is used for.
    pub kind: FrameKind,
    /// Xen's `linear_pt_count`: > 0 = linear entries this table holds, < 0 = linear
    /// entries of other tables naming this one.
    pub linear: i32,
    /// Marked as holding decoded code (see [`Memory::mark_code`]).
    pub code: bool,
    /// Write generation (see [`Memory::frame_gen`]).
    pub gen: u64,
    /// Log-dirty fast path: the epoch and PFN this frame last marked.
    ld_epoch: u64,
    ld_pfn: u64,
    /// The bytes may be non-zero: scrub before the next allocation.
    needs_scrub: bool,
}

/// Statistics CLEAN/PEEK report (`xen_domctl_shadow_op_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogDirtyStats {
    /// Log-dirty faults since the last CLEAN.
    pub fault_count: u32,
    /// Pages newly marked dirty since the last CLEAN.
    pub dirty_count: u32,
}

/// One domain's log-dirty state.
#[derive(Clone, Debug, Default)]
pub(super) struct LogDirty {
    /// Dirty PFNs (already reduced modulo 2^42).
    pub(super) dirty: BTreeSet<u64>,
    /// Unique epoch; frames caching another epoch are re-checked.
    pub(super) epoch: u64,
    pub(super) fault_count: u64,
    pub(super) dirty_count: u64,
}

/// One domain's memory bookkeeping.
#[derive(Clone, Debug, Default)]
pub(crate) struct DomMem {
    pub(super) max_pages: u64,
    /// Domheap frames owned (allocated or lingering), Xen's `tot_pages`.
    pub(super) tot_pages: u64,
    /// Every frame owned: domheap and Xen-heap.
    pub(super) frames: BTreeSet<Mfn>,
    /// The model's P2M (see the module doc).
    pub(super) p2m: BTreeMap<Pfn, Mfn>,
    pub(super) logdirty: Option<LogDirty>,
    /// Destroyed; kept only while other domains still reference some of its frames.
    pub(super) dying: bool,
}

/// Machine memory: frame bookkeeping plus the bytes of every frame.
#[derive(Clone)]
pub struct Memory {
    pub(super) frames: Vec<FrameInfo>,
    pub(super) data: Vec<u8>,
    pub(super) free: BTreeSet<u64>,
    pub(super) doms: BTreeMap<DomId, DomMem>,
    /// Frames holding the M2P (0 .. m2p_frames).
    pub(super) m2p_frames: u64,
    /// Domains with log-dirty on (fast path for stores).
    nr_logdirty: usize,
    next_epoch: u64,
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memory")
            .field("nr_frames", &self.frames.len())
            .field("m2p_frames", &self.m2p_frames)
            .field("free", &self.free.len())
            .field("domains", &self.doms.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The control domain, for `xsm_priv_mapping` (see the module doc).
pub(crate) fn is_control(dom: DomId) -> bool {
    dom == DomId::DOM0
}

/// `VALID_M2P`: the top bit of a PFN stored in the M2P is clear.
pub(crate) const fn valid_m2p(pfn: u64) -> bool {
    pfn & (1 << 63) == 0
}

impl Memory {
    /// A machine with `nr_frames` frames: the M2P at the bottom (see the module doc),
    /// every other frame free and zero.
    ///
    /// # Panics
    /// If `nr_frames` does not fit the host's address space.
    #[must_use]
    pub fn new(nr_frames: u64) -> Self {
        let n = usize::try_from(nr_frames).expect("64-bit host");
        let bytes = n
            .checked_mul(PAGE_SIZE)
            .expect("machine size fits the host");
        let m2p_bytes = nr_frames * 8;
        let chunk_bytes = M2P_CHUNK_FRAMES * PAGE_SIZE as u64;
        let chunks = m2p_bytes.div_ceil(chunk_bytes);
        let m2p_frames = (chunks * M2P_CHUNK_FRAMES).min(nr_frames);
        let mut mem = Memory {
            frames: vec![FrameInfo::default(); n],
            data: vec![0; bytes],
            free: BTreeSet::new(),
            doms: BTreeMap::new(),
            m2p_frames,
            nr_logdirty: 0,
            next_epoch: 1,
        };
        let m2p_end = m2p_frames as usize * PAGE_SIZE;
        mem.data[..m2p_end].fill(0xff);
        for f in &mut mem.frames[..m2p_frames as usize] {
            // Xen's SHARE_ro: PGC_allocated | 1, type none | validated | 1.
            *f = FrameInfo {
                owner: Some(DomId::XEN),
                count: 1,
                ty: PageType::None,
                type_count: 1,
                validated: true,
                allocated: true,
                kind: FrameKind::Xen,
                ..FrameInfo::default()
            };
        }
        mem.free = (m2p_frames..nr_frames).collect();
        mem
    }

    /// Number of machine frames.
    #[must_use]
    pub fn nr_frames(&self) -> u64 {
        self.frames.len() as u64
    }

    /// Number of free frames.
    #[must_use]
    pub fn free_frames(&self) -> u64 {
        self.free.len() as u64
    }

    /// Number of frames holding the M2P (MFNs `0 .. m2p_frames`).
    #[must_use]
    pub fn m2p_frames(&self) -> u64 {
        self.m2p_frames
    }

    /// Bookkeeping of `mfn`, if it exists.
    #[must_use]
    pub fn frame(&self, mfn: Mfn) -> Option<&FrameInfo> {
        self.frames.get(usize::try_from(mfn.get()).ok()?)
    }

    /// The bytes of `mfn`.
    ///
    /// # Errors
    /// `EINVAL` if `mfn` is not a machine frame.
    pub fn page(&self, mfn: Mfn) -> XenResult<&Page> {
        let i = self.idx(mfn)?;
        Ok(self.data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]
            .try_into()
            .expect("page size"))
    }

    /// The bytes of `mfn`, for Xen's own writes (shared_info bits, ring pages Xen
    /// services). Does not mark the frame dirty; does bump the write generation of a
    /// frame marked as code.
    ///
    /// # Errors
    /// `EINVAL` if `mfn` is not a machine frame.
    pub fn page_mut_raw(&mut self, mfn: Mfn) -> XenResult<&mut Page> {
        let i = self.idx(mfn)?;
        self.bump_gen(i);
        self.forget_stale_validation(i);
        let f = &mut self.frames[i];
        if f.owner.is_none() {
            f.needs_scrub = true;
        }
        Ok((&mut self.data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE])
            .try_into()
            .expect("page size"))
    }

    pub(super) fn idx(&self, mfn: Mfn) -> XenResult<usize> {
        let i = usize::try_from(mfn.get()).map_err(|_| Errno::EINVAL)?;
        if i < self.frames.len() {
            Ok(i)
        } else {
            Err(Errno::EINVAL)
        }
    }

    /// `mfn` as an index if it is a machine frame.
    pub(super) fn valid_idx(&self, mfn: u64) -> Option<usize> {
        let i = usize::try_from(mfn).ok()?;
        (i < self.frames.len()).then_some(i)
    }

    // ------------------------------------------------------------------------------
    // Raw entry access (shared with the walker and the invariant checker).

    /// Entry `slot` of page-table frame `i`.
    pub(super) fn pte(&self, i: usize, slot: usize) -> u64 {
        let off = i * PAGE_SIZE + slot * 8;
        u64::from_le_bytes(self.data[off..off + 8].try_into().expect("8 bytes"))
    }

    /// Writes entry `slot` of frame `i` as a guest-visible store (dirty + generation).
    pub(super) fn write_pte(&mut self, i: usize, slot: usize, val: u64) {
        let off = i * PAGE_SIZE + slot * 8;
        self.data[off..off + 8].copy_from_slice(&val.to_le_bytes());
        self.mark_dirty(i);
        self.bump_gen(i);
    }

    // ------------------------------------------------------------------------------
    // M2P and P2M.

    fn m2p_raw(&self, i: usize) -> u64 {
        let off = i * 8;
        u64::from_le_bytes(self.data[off..off + 8].try_into().expect("8 bytes"))
    }

    fn set_m2p_raw(&mut self, i: usize, pfn: u64) {
        let off = i * 8;
        self.data[off..off + 8].copy_from_slice(&pfn.to_le_bytes());
    }

    /// M2P\[mfn\]: the PFN the frame's owner gave it ([`Pfn::INVALID`] if none, or if
    /// `mfn` is not a machine frame).
    #[must_use]
    pub fn m2p(&self, mfn: Mfn) -> Pfn {
        match self.valid_idx(mfn.get()) {
            Some(i) => Pfn::new(self.m2p_raw(i)),
            None => Pfn::INVALID,
        }
    }

    /// The model's P2M of `dom` (see the module doc).
    #[must_use]
    pub fn p2m(&self, dom: DomId, pfn: Pfn) -> Option<Mfn> {
        self.doms.get(&dom)?.p2m.get(&pfn).copied()
    }

    /// The whole P2M of `dom`, in PFN order.
    pub fn p2m_entries(&self, dom: DomId) -> impl Iterator<Item = (Pfn, Mfn)> + '_ {
        self.doms
            .get(&dom)
            .into_iter()
            .flat_map(|d| d.p2m.iter().map(|(p, m)| (*p, *m)))
    }

    /// MMU_MACHPHYS_UPDATE on behalf of `caller`: M2P\[mfn\] = pfn for a frame `caller`
    /// owns, marking the new PFN dirty (Xen: `do_mmu_update`).
    ///
    /// # Errors
    /// `EINVAL` if `mfn` is not a frame `caller` holds a reference-able ownership of.
    pub fn set_m2p(&mut self, caller: DomId, mfn: Mfn, pfn: Pfn) -> XenResult<()> {
        let i = self.valid_idx(mfn.get()).ok_or(Errno::EINVAL)?;
        let f = &self.frames[i];
        if f.owner != Some(caller) || f.count == 0 {
            return Err(Errno::EINVAL);
        }
        self.machphys_set(i, pfn.get());
        self.mark_pfn_dirty(caller, pfn.get());
        Ok(())
    }

    /// Sets M2P\[i\] and keeps the owner's P2M in step.
    pub(super) fn machphys_set(&mut self, i: usize, pfn: u64) {
        let old = self.m2p_raw(i);
        self.set_m2p_raw(i, pfn);
        let f = self.frames[i];
        let Some(owner) = f.owner else { return };
        let Some(dm) = self.doms.get_mut(&owner) else {
            return;
        };
        let mfn = Mfn::new(i as u64);
        if dm.p2m.get(&Pfn::new(old)) == Some(&mfn) {
            dm.p2m.remove(&Pfn::new(old));
        }
        if f.kind == FrameKind::Domain && f.allocated && valid_m2p(pfn) {
            dm.p2m.insert(Pfn::new(pfn), mfn);
        }
    }

    /// `XENMEM_maximum_ram_page`: Xen's `max_page`, one past the highest MFN.
    #[must_use]
    pub fn maximum_ram_page(&self) -> u64 {
        self.nr_frames()
    }

    /// `XENMEM_machphys_mfn_list`: the first MFN of every 2 MiB M2P chunk, as many as fit
    /// in `out`. Returns the number written (`nr_extents`).
    pub fn machphys_mfn_list(&self, out: &mut [u64]) -> usize {
        let chunks = self.m2p_frames.div_ceil(M2P_CHUNK_FRAMES) as usize;
        let n = chunks.min(out.len());
        for (k, o) in out[..n].iter_mut().enumerate() {
            *o = k as u64 * M2P_CHUNK_FRAMES;
        }
        n
    }

    // ------------------------------------------------------------------------------
    // Domains.

    fn live(&self, dom: DomId) -> Option<&DomMem> {
        self.doms.get(&dom).filter(|d| !d.dying)
    }

    /// True if `dom` is known and not destroyed.
    #[must_use]
    pub fn domain_exists(&self, dom: DomId) -> bool {
        self.live(dom).is_some()
    }

    /// True if `dom` was destroyed but some of its frames are still referenced by
    /// others (the frames go when the last reference does).
    #[must_use]
    pub fn domain_dying(&self, dom: DomId) -> bool {
        self.doms.get(&dom).is_some_and(|d| d.dying)
    }

    /// Registers a domain with no memory and `max_pages` 0.
    ///
    /// # Errors
    /// `EINVAL` for a reserved id, `EEXIST` if the id is known (also while dying).
    pub fn add_domain(&mut self, dom: DomId) -> XenResult<()> {
        if dom.is_reserved() {
            return Err(Errno::EINVAL);
        }
        if self.doms.contains_key(&dom) {
            return Err(Errno::EEXIST);
        }
        self.doms.insert(dom, DomMem::default());
        Ok(())
    }

    /// Sets the allocation limit (XEN_DOMCTL_max_mem, in pages). No-op for an unknown
    /// domain.
    pub fn set_max_pages(&mut self, dom: DomId, pages: u64) {
        if let Some(dm) = self.doms.get_mut(&dom).filter(|d| !d.dying) {
            dm.max_pages = pages;
        }
    }

    /// Domheap pages the domain owns (`tot_pages`; 0 if unknown).
    #[must_use]
    pub fn tot_pages(&self, dom: DomId) -> u64 {
        self.doms.get(&dom).map_or(0, |d| d.tot_pages)
    }

    /// The allocation limit (0 if unknown).
    #[must_use]
    pub fn max_pages(&self, dom: DomId) -> u64 {
        self.doms.get(&dom).map_or(0, |d| d.max_pages)
    }

    /// Every frame `dom` owns (domheap and Xen-heap), in MFN order.
    pub fn domain_frames(&self, dom: DomId) -> impl Iterator<Item = Mfn> + '_ {
        self.doms
            .get(&dom)
            .into_iter()
            .flat_map(|d| d.frames.iter().copied())
    }

    /// Lowest aligned run of `2^order` free frames.
    fn find_free_extent(&self, order: u32) -> Option<u64> {
        if order == 0 {
            return self.free.first().copied();
        }
        let n = 1u64 << order;
        let mut cursor = 0u64;
        loop {
            let first = *self.free.range(cursor..).next()?;
            let base = first.checked_next_multiple_of(n)?;
            let mut expect = base;
            for &f in self.free.range(base..base.checked_add(n)?) {
                if f != expect {
                    break;
                }
                expect += 1;
            }
            if expect == base + n {
                return Some(base);
            }
            // `expect` is not free: try after it.
            cursor = expect + 1;
        }
    }

    fn take_free(&mut self, i: usize, owner: DomId, kind: FrameKind) {
        self.free.remove(&(i as u64));
        if self.frames[i].needs_scrub {
            self.data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE].fill(0);
        }
        self.bump_gen(i);
        let f = &mut self.frames[i];
        *f = FrameInfo {
            owner: Some(owner),
            count: 1,
            allocated: true,
            kind,
            gen: f.gen,
            ..FrameInfo::default()
        };
    }

    /// `alloc_domheap_pages` + `assign_pages`: an extent of `2^order` frames for `dom`,
    /// or `None` (unknown/dying domain, over `max_pages`, out of memory, bad order).
    fn alloc_extent(&mut self, dom: DomId, order: u32) -> Option<u64> {
        if order > MAX_ORDER {
            return None;
        }
        let n = 1u64 << order;
        let dm = self.live(dom)?;
        if dm.tot_pages.checked_add(n)? > dm.max_pages {
            return None;
        }
        let base = self.find_free_extent(order)?;
        for f in base..base + n {
            self.take_free(f as usize, dom, FrameKind::Domain);
        }
        let dm = self.doms.get_mut(&dom)?;
        dm.tot_pages += n;
        dm.frames.extend((base..base + n).map(Mfn::new));
        Some(base)
    }

    /// `XENMEM_increase_reservation`: allocates `extents.len()` extents of `2^order`
    /// frames and writes each extent's first MFN back. The M2P is untouched (the new
    /// frames read INVALID). Returns the number of extents done; like Xen it stops early
    /// without an error when `max_pages` or free memory runs out, or for
    /// `order > MAX_ORDER` (0 done: the caller reports what it likes, Xen returns 0).
    ///
    /// # Errors
    /// `ESRCH` for an unknown or dying domain.
    pub fn increase_reservation(
        &mut self,
        dom: DomId,
        extents: &mut [u64],
        order: u32,
    ) -> XenResult<usize> {
        if !self.domain_exists(dom) {
            return Err(Errno::ESRCH);
        }
        for (n, e) in extents.iter_mut().enumerate() {
            match self.alloc_extent(dom, order) {
                Some(base) => *e = base,
                None => return Ok(n),
            }
        }
        Ok(extents.len())
    }

    /// `XENMEM_populate_physmap` for a PV domain: allocates one extent per entry of
    /// `gpfns`, sets M2P\[mfn + j\] = gpfn + j, records the P2M and writes the first MFN
    /// of each extent back into `gpfns`. Returns the number of extents done (see
    /// [`Memory::increase_reservation`] for when it stops).
    ///
    /// # Errors
    /// `ESRCH` for an unknown or dying domain.
    pub fn populate_physmap(
        &mut self,
        dom: DomId,
        gpfns: &mut [u64],
        order: u32,
    ) -> XenResult<usize> {
        if !self.domain_exists(dom) {
            return Err(Errno::ESRCH);
        }
        for (n, g) in gpfns.iter_mut().enumerate() {
            let Some(base) = self.alloc_extent(dom, order) else {
                return Ok(n);
            };
            for j in 0..1u64 << order {
                self.machphys_set((base + j) as usize, g.wrapping_add(j));
            }
            *g = base;
        }
        Ok(gpfns.len())
    }

    /// `XENMEM_decrease_reservation` for a PV domain (the GMFN is the MFN): for every
    /// frame of every extent, `guest_remove_page` — the frame must belong to `dom`; its
    /// allocation reference is dropped, so it is freed now unless something still
    /// references it (a pin, a mapping, a CR3), in which case it lingers, still owned
    /// and counted, until the last reference goes. Returns the number of extents done;
    /// it stops at the first frame that is not RAM (`EPERM` in Xen) or not `dom`'s
    /// (`ENXIO`), and does nothing for `order > MAX_ORDER`.
    ///
    /// # Errors
    /// `ESRCH` for an unknown or dying domain.
    pub fn decrease_reservation(
        &mut self,
        dom: DomId,
        gmfns: &[u64],
        order: u32,
    ) -> XenResult<usize> {
        if !self.domain_exists(dom) {
            return Err(Errno::ESRCH);
        }
        if order > MAX_ORDER {
            return Ok(0);
        }
        for (n, &g) in gmfns.iter().enumerate() {
            for j in 0..1u64 << order {
                let Some(m) = g.checked_add(j) else {
                    return Ok(n);
                };
                if self.guest_remove_page(dom, m).is_err() {
                    return Ok(n);
                }
            }
        }
        Ok(gmfns.len())
    }

    /// Xen's `guest_remove_page` for a PV domain.
    fn guest_remove_page(&mut self, dom: DomId, mfn: u64) -> XenResult<()> {
        let i = self.valid_idx(mfn).ok_or(Errno::EPERM)?;
        if !self.get_page_raw(i, dom) {
            return Err(Errno::ENXIO);
        }
        let pfn = self.m2p_raw(i);
        if let Some(dm) = self.doms.get_mut(&dom) {
            if dm.p2m.get(&Pfn::new(pfn)) == Some(&Mfn::new(mfn)) {
                dm.p2m.remove(&Pfn::new(pfn));
            }
        }
        if self.frames[i].allocated {
            self.frames[i].allocated = false;
            self.put_page_raw(i);
        }
        self.put_page_raw(i);
        Ok(())
    }

    /// A Xen-heap page shared writable with `dom` (shared_info and the like): owned by
    /// `dom` so the guest may map it, with Xen's permanent writable type reference, not
    /// counted in `tot_pages`, not in the P2M, freed when the domain is destroyed.
    ///
    /// # Errors
    /// `ESRCH` for an unknown domain, `ENOMEM` when no frame is free.
    pub fn alloc_xen_page(&mut self, dom: DomId) -> XenResult<Mfn> {
        if !self.domain_exists(dom) {
            return Err(Errno::ESRCH);
        }
        let f = self.find_free_extent(0).ok_or(Errno::ENOMEM)?;
        let i = f as usize;
        self.take_free(i, dom, FrameKind::XenHeap);
        let fr = &mut self.frames[i];
        fr.ty = PageType::Writable;
        fr.type_count = 1;
        fr.validated = true;
        if let Some(dm) = self.doms.get_mut(&dom) {
            dm.frames.insert(Mfn::new(f));
        }
        Ok(Mfn::new(f))
    }

    /// Destroys `dom`'s memory (`domain_relinquish_resources` for PV): drops every pin,
    /// every allocation reference, forcibly devalidates still-valid L4, then L3, then L2
    /// tables (which puts the references their entries hold, so the L1s and data frames
    /// follow), frees every frame nobody else references and clears their M2P entries.
    ///
    /// The model must first drop the references it holds itself (vCPU CR3s, GDT
    /// frames) as Xen does in `vcpu_destroy_pagetables`; frames still referenced — by
    /// those or by another domain's page tables — linger (owned, dying) until their last
    /// reference goes. Returns how many frames linger; 0 means nothing of the domain is
    /// left and the id may be reused. An unknown or already dying domain is left alone
    /// (returns its lingering count).
    pub fn destroy_domain(&mut self, dom: DomId) -> usize {
        let Some(dm) = self.doms.get_mut(&dom) else {
            return 0;
        };
        if dm.dying {
            return dm.frames.len();
        }
        dm.dying = true;
        dm.p2m.clear();
        if dm.logdirty.take().is_some() {
            self.nr_logdirty -= 1;
        }
        let frames: Vec<usize> = dm.frames.iter().map(|m| m.index()).collect();
        for pass in [PageType::L4, PageType::L3, PageType::L2] {
            let first = pass == PageType::L4;
            for &i in &frames {
                if self.frames[i].owner != Some(dom) {
                    continue; // freed meanwhile
                }
                if self.frames[i].count == 0 {
                    // A detached Xen-heap page: nothing holds it, free it now.
                    self.free_frame(i);
                    continue;
                }
                self.frames[i].count += 1; // hold it while we work
                if first {
                    if self.frames[i].pinned {
                        self.frames[i].pinned = false;
                        self.put_type(i, None);
                        self.put_page_raw(i);
                    }
                    if self.frames[i].allocated {
                        self.frames[i].allocated = false;
                        self.put_page_raw(i);
                    }
                    if self.frames[i].kind == FrameKind::XenHeap && self.frames[i].type_count > 0 {
                        // Xen's own writable type reference goes with the share.
                        self.frames[i].type_count -= 1;
                    }
                }
                if self.frames[i].ty == pass && self.frames[i].validated {
                    self.frames[i].validated = false;
                    self.devalidate(i, pass);
                }
                self.put_page_raw(i);
            }
        }
        let left = self.doms.get(&dom).map_or(0, |d| d.frames.len());
        if left == 0 {
            self.doms.remove(&dom);
        }
        left
    }

    /// Frees frame `i` whose general count reached zero.
    pub(super) fn free_frame(&mut self, i: usize) {
        let f = self.frames[i];
        let Some(owner) = f.owner else { return };
        match f.kind {
            FrameKind::Xen | FrameKind::Free => return,
            FrameKind::XenHeap => {
                // While the domain lives, a Xen-heap page whose count hits zero is only
                // detached (Xen frees the memory with the domain).
                if self.doms.get(&owner).is_some_and(|d| !d.dying) {
                    return;
                }
            }
            FrameKind::Domain => {}
        }
        let mfn = Mfn::new(i as u64);
        let pfn = self.m2p_raw(i);
        if let Some(dm) = self.doms.get_mut(&owner) {
            dm.frames.remove(&mfn);
            if f.kind == FrameKind::Domain {
                dm.tot_pages = dm.tot_pages.saturating_sub(1);
            }
            if dm.p2m.get(&Pfn::new(pfn)) == Some(&mfn) {
                dm.p2m.remove(&Pfn::new(pfn));
            }
            if dm.dying && dm.frames.is_empty() {
                self.doms.remove(&owner);
            }
        }
        self.set_m2p_raw(i, u64::MAX);
        self.bump_gen(i);
        let fr = &mut self.frames[i];
        *fr = FrameInfo {
            gen: fr.gen,
            needs_scrub: true,
            ..FrameInfo::default()
        };
        self.free.insert(i as u64);
    }

    // ------------------------------------------------------------------------------
    // Guest-visible stores, code generations.

    /// The one path every guest-visible store takes: writes `bytes` at `offset` of
    /// `mfn`, marks the frame dirty for its owner's log-dirty and bumps its write
    /// generation if it is marked as code. Performs no permission check: callers have
    /// translated through a writable mapping, or checked
    /// [`Memory::foreign_write_check`].
    ///
    /// # Errors
    /// `EINVAL` if `mfn` is not an allocated machine frame or the range leaves the page.
    pub fn guest_write(&mut self, mfn: Mfn, offset: usize, bytes: &[u8]) -> XenResult<()> {
        let i = self.idx(mfn)?;
        let end = offset.checked_add(bytes.len()).ok_or(Errno::EINVAL)?;
        if end > PAGE_SIZE || self.frames[i].owner.is_none() {
            return Err(Errno::EINVAL);
        }
        let base = i * PAGE_SIZE;
        self.data[base + offset..base + end].copy_from_slice(bytes);
        self.forget_stale_validation(i);
        self.mark_dirty(i);
        self.bump_gen(i);
        Ok(())
    }

    /// [`Memory::guest_write`] of one little-endian u64.
    ///
    /// # Errors
    /// As [`Memory::guest_write`].
    pub fn guest_write_u64(&mut self, mfn: Mfn, offset: usize, val: u64) -> XenResult<()> {
        self.guest_write(mfn, offset, &val.to_le_bytes())
    }

    /// Reads one little-endian u64 at `offset` of `mfn`.
    ///
    /// # Errors
    /// `EINVAL` if `mfn` is not a machine frame or the range leaves the page.
    pub fn read_u64(&self, mfn: Mfn, offset: usize) -> XenResult<u64> {
        let p = self.page(mfn)?;
        let end = offset.checked_add(8).ok_or(Errno::EINVAL)?;
        let b = p.get(offset..end).ok_or(Errno::EINVAL)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// Marks `mfn` as holding code a decoder has cached: the next store to it bumps
    /// [`Memory::frame_gen`] (once; re-mark after decoding again).
    pub fn mark_code(&mut self, mfn: Mfn) {
        if let Some(i) = self.valid_idx(mfn.get()) {
            self.frames[i].code = true;
        }
    }

    /// The write generation of `mfn` (0 for frames that are not machine frames). It
    /// changes whenever a frame marked as code is written, scrubbed or freed.
    #[must_use]
    pub fn frame_gen(&self, mfn: Mfn) -> u64 {
        self.frame(mfn).map_or(0, |f| f.gen)
    }

    /// A store to an unused descriptor page (which keeps `validated` at type count 0,
    /// like Xen) means it must be audited again: in Xen the store needed a writable
    /// type reference first, which cleared the validation.
    fn forget_stale_validation(&mut self, i: usize) {
        let f = &mut self.frames[i];
        if f.type_count == 0 && f.ty != PageType::Writable {
            f.validated = false;
        }
    }

    pub(super) fn bump_gen(&mut self, i: usize) {
        let f = &mut self.frames[i];
        if f.code {
            f.code = false;
            f.gen = f.gen.wrapping_add(1);
        }
    }

    /// Checks a toolstack foreign mapping of `mfn` as `dom`'s frame (privcmd with
    /// FD = `dom`, mirroring `get_page_from_l1e`): the frame must be RAM (`EPERM`),
    /// owned by `dom` and allocated (`EBUSY`), and for `write` able to take a writable
    /// type reference — a frame that is currently a page table or GDT/LDT page in use
    /// (type count > 0), or Xen's read-only M2P, gives `EBUSY`.
    ///
    /// # Errors
    /// As above.
    pub fn foreign_map_check(&self, dom: DomId, mfn: Mfn, write: bool) -> XenResult<()> {
        let Some(i) = self.valid_idx(mfn.get()) else {
            return Err(if mfn.get() == pt::PTE_ADDR_MASK >> 12 {
                Errno::EINVAL
            } else {
                Errno::EPERM
            });
        };
        let f = &self.frames[i];
        if f.count == 0 || f.owner != Some(dom) {
            return Err(Errno::EBUSY);
        }
        if write && f.type_count > 0 && (f.ty != PageType::Writable || !f.validated) {
            return Err(Errno::EBUSY);
        }
        Ok(())
    }

    /// [`Memory::foreign_map_check`] for a read.
    ///
    /// # Errors
    /// As [`Memory::foreign_map_check`].
    pub fn foreign_read_check(&self, dom: DomId, mfn: Mfn) -> XenResult<()> {
        self.foreign_map_check(dom, mfn, false)
    }

    /// [`Memory::foreign_map_check`] for a write.
    ///
    /// # Errors
    /// As [`Memory::foreign_map_check`].
    pub fn foreign_write_check(&self, dom: DomId, mfn: Mfn) -> XenResult<()> {
        self.foreign_map_check(dom, mfn, true)
    }

    /// The `XEN_DOMCTL_PFINFO_*` word getpageframeinfo3 reports for `mfn` as a frame
    /// of `dom`: XTAB for frames `dom` does not own (or Xen-heap pages), L1TAB..L4TAB
    /// for validated tables, `| LPINTAB` when pinned, NOTAB otherwise (a table that is
    /// neither pinned nor validated reads NOTAB).
    #[must_use]
    pub fn page_type_info(&self, dom: DomId, mfn: Mfn) -> u32 {
        let Some(f) = self.frame(mfn) else {
            return XEN_DOMCTL_PFINFO_XTAB;
        };
        if f.owner != Some(dom) || f.count == 0 || f.kind != FrameKind::Domain {
            return XEN_DOMCTL_PFINFO_XTAB;
        }
        let ty = match f.ty {
            PageType::L1 => XEN_DOMCTL_PFINFO_L1TAB,
            PageType::L2 => XEN_DOMCTL_PFINFO_L2TAB,
            PageType::L3 => XEN_DOMCTL_PFINFO_L3TAB,
            PageType::L4 => XEN_DOMCTL_PFINFO_L4TAB,
            _ => XEN_DOMCTL_PFINFO_NOTAB,
        };
        if f.pinned {
            ty | XEN_DOMCTL_PFINFO_LPINTAB
        } else if !f.validated {
            XEN_DOMCTL_PFINFO_NOTAB
        } else {
            ty
        }
    }

    // ------------------------------------------------------------------------------
    // Log-dirty.

    /// `paging_mark_dirty`: records frame `i`'s PFN in its owner's bitmap.
    pub(super) fn mark_dirty(&mut self, i: usize) {
        if self.nr_logdirty == 0 {
            return;
        }
        let Some(owner) = self.frames[i].owner else {
            return;
        };
        let pfn = self.m2p_raw(i);
        if !valid_m2p(pfn) {
            return;
        }
        let pfn = pfn & ((1 << LOGDIRTY_PFN_BITS) - 1);
        let Some(ld) = self.doms.get_mut(&owner).and_then(|d| d.logdirty.as_mut()) else {
            return;
        };
        let f = &mut self.frames[i];
        if f.ld_epoch == ld.epoch && f.ld_pfn == pfn {
            return;
        }
        if ld.dirty.insert(pfn) {
            ld.dirty_count += 1;
            ld.fault_count += 1;
        }
        f.ld_epoch = ld.epoch;
        f.ld_pfn = pfn;
    }

    /// `paging_mark_pfn_dirty`.
    pub(super) fn mark_pfn_dirty(&mut self, dom: DomId, pfn: u64) {
        if !valid_m2p(pfn) {
            return;
        }
        let pfn = pfn & ((1 << LOGDIRTY_PFN_BITS) - 1);
        if let Some(ld) = self.doms.get_mut(&dom).and_then(|d| d.logdirty.as_mut()) {
            if ld.dirty.insert(pfn) {
                ld.dirty_count += 1;
                ld.fault_count += 1;
            }
        }
    }

    /// True if log-dirty is on for `dom`.
    #[must_use]
    pub fn logdirty_enabled(&self, dom: DomId) -> bool {
        self.doms.get(&dom).is_some_and(|d| d.logdirty.is_some())
    }

    /// Turns log-dirty on with an empty bitmap (`paging_log_dirty_enable`).
    ///
    /// # Errors
    /// `ESRCH` for an unknown domain, `EINVAL` if log-dirty is already on.
    pub fn logdirty_enable(&mut self, dom: DomId) -> XenResult<()> {
        let epoch = self.next_epoch;
        let dm = self
            .doms
            .get_mut(&dom)
            .filter(|d| !d.dying)
            .ok_or(Errno::ESRCH)?;
        if dm.logdirty.is_some() {
            return Err(Errno::EINVAL);
        }
        dm.logdirty = Some(LogDirty {
            epoch,
            ..LogDirty::default()
        });
        self.next_epoch += 1;
        self.nr_logdirty += 1;
        Ok(())
    }

    /// Turns log-dirty off and frees the bitmap (no-op if it was off or the domain is
    /// unknown).
    pub fn logdirty_disable(&mut self, dom: DomId) {
        if let Some(dm) = self.doms.get_mut(&dom) {
            if dm.logdirty.take().is_some() {
                self.nr_logdirty -= 1;
            }
        }
    }

    /// CLEAN (`clean`) or PEEK into a non-null bitmap; returns `(fault_count,
    /// dirty_count)`. See [`Memory::logdirty_clean`] / [`Memory::logdirty_peek`].
    ///
    /// # Errors
    /// As [`Memory::logdirty_peek`].
    pub fn logdirty_read(
        &mut self,
        dom: DomId,
        bitmap: &mut [u8],
        pages: &mut u64,
        clean: bool,
    ) -> XenResult<(u32, u32)> {
        let s = self.logdirty_op(dom, Some(bitmap), pages, clean)?;
        Ok((s.fault_count, s.dirty_count))
    }

    /// SHADOW_OP_CLEAN: copies the bitmap like [`Memory::logdirty_peek`], then clears
    /// every 32768-PFN leaf it visited (all PFNs below `pages` rounded up to a leaf)
    /// and zeroes the counters. `final_` (LOGDIRTY_FINAL) only matters for HVM.
    ///
    /// # Errors
    /// As [`Memory::logdirty_peek`].
    pub fn logdirty_clean(
        &mut self,
        dom: DomId,
        bitmap: Option<&mut [u8]>,
        pages: &mut u64,
        final_: bool,
    ) -> XenResult<LogDirtyStats> {
        let _ = final_;
        self.logdirty_op(dom, bitmap, pages, true)
    }

    /// SHADOW_OP_PEEK: `pages` in = the bitmap size in bits, out = bits written (Xen
    /// writes whole bytes: `ceil(pages/8)` bytes, bit `pfn % 8` of byte `pfn / 8`).
    /// `bitmap: None` (a null handle) only reads the counters. With log-dirty off the
    /// bitmap reads all clear.
    ///
    /// # Errors
    /// `ESRCH` for an unknown domain; `EFAULT` if `bitmap` is shorter than
    /// `ceil(pages/8)` bytes (nothing is changed then).
    pub fn logdirty_peek(
        &mut self,
        dom: DomId,
        bitmap: Option<&mut [u8]>,
        pages: &mut u64,
    ) -> XenResult<LogDirtyStats> {
        self.logdirty_op(dom, bitmap, pages, false)
    }

    fn logdirty_op(
        &mut self,
        dom: DomId,
        bitmap: Option<&mut [u8]>,
        pages: &mut u64,
        clean: bool,
    ) -> XenResult<LogDirtyStats> {
        let epoch = self.next_epoch;
        let dm = self
            .doms
            .get_mut(&dom)
            .filter(|d| !d.dying)
            .ok_or(Errno::ESRCH)?;
        let want = (*pages).min(1 << LOGDIRTY_PFN_BITS);
        let bytes = usize::try_from(want.div_ceil(8)).map_err(|_| Errno::EFAULT)?;
        if let Some(bm) = bitmap.as_ref() {
            if bm.len() < bytes {
                return Err(Errno::EFAULT);
            }
        }
        let stats = dm
            .logdirty
            .as_ref()
            .map_or(LogDirtyStats::default(), |ld| LogDirtyStats {
                fault_count: ld.fault_count.min(u64::from(u32::MAX)) as u32,
                dirty_count: ld.dirty_count.min(u64::from(u32::MAX)) as u32,
            });
        if let Some(bm) = bitmap {
            let bm = &mut bm[..bytes];
            bm.fill(0);
            if let Some(ld) = &dm.logdirty {
                for &pfn in ld.dirty.range(..(bytes as u64) * 8) {
                    bm[(pfn / 8) as usize] |= 1 << (pfn % 8);
                }
            }
        }
        if clean {
            if let Some(ld) = dm.logdirty.as_mut() {
                let limit = want
                    .div_ceil(LOGDIRTY_LEAF_PFNS)
                    .saturating_mul(LOGDIRTY_LEAF_PFNS);
                ld.dirty = ld.dirty.split_off(&limit);
                ld.fault_count = 0;
                ld.dirty_count = 0;
                ld.epoch = epoch;
                self.next_epoch += 1;
            }
        }
        *pages = want;
        Ok(stats)
    }
}
