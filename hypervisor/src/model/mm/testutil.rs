//! Helpers for memory tests (here, in `model::walk` and in `model::invariants`).

use super::{Memory, PageType};
use crate::abi::mm::{MmuUpdate, PTE_PRESENT, PTE_RW, PTE_USER};
use crate::error::XenResult;
use crate::types::{DomId, Mfn};

/// The privileged toolstack domain.
pub(crate) const D0: DomId = DomId::DOM0;
/// A guest.
pub(crate) const D1: DomId = DomId::new(1);
/// Another guest.
pub(crate) const D2: DomId = DomId::new(2);
/// `foreigndom` for "no foreign domain".
pub(crate) const SELF_FD: u32 = DomId::SELF.get() as u32;

/// P | RW | US.
pub(crate) const PRW: u64 = PTE_PRESENT | PTE_RW | PTE_USER;
/// P | US (read-only).
pub(crate) const PRO: u64 = PTE_PRESENT | PTE_USER;

/// A PTE naming `mfn` with `flags`.
pub(crate) fn pte(mfn: Mfn, flags: u64) -> u64 {
    mfn.to_addr() | flags
}

/// A 2048-frame machine (512 M2P frames) with dom0, dom1 and dom2, 256 pages each.
pub(crate) fn machine() -> Memory {
    let mut m = Memory::new(2048);
    for d in [D0, D1, D2] {
        m.add_domain(d).unwrap();
        m.set_max_pages(d, 256);
    }
    m
}

/// Populates PFNs `first .. first + n` of `dom`; returns their MFNs.
pub(crate) fn populate(m: &mut Memory, dom: DomId, first: u64, n: u64) -> Vec<Mfn> {
    let mut v: Vec<u64> = (first..first + n).collect();
    assert_eq!(m.populate_physmap(dom, &mut v, 0).unwrap(), n as usize);
    v.into_iter().map(Mfn::new).collect()
}

/// Raw store of entry `slot` of `table` (only valid while the frame is writable-typable).
pub(crate) fn set(m: &mut Memory, table: Mfn, slot: usize, val: u64) {
    m.guest_write_u64(table, slot * 8, val).unwrap();
}

/// Entry `slot` of `table`.
pub(crate) fn get(m: &Memory, table: Mfn, slot: usize) -> u64 {
    m.read_u64(table, slot * 8).unwrap()
}

/// One NORMAL_PT_UPDATE (or `cmd`) of `table[slot]` from `caller` with `foreigndom`.
pub(crate) fn upd_cmd(
    m: &mut Memory,
    caller: DomId,
    privileged: bool,
    table: Mfn,
    slot: usize,
    val: u64,
    cmd: u64,
    foreigndom: u32,
) -> XenResult<()> {
    let mut done = 0;
    let r = m.mmu_update(
        caller,
        privileged,
        &[MmuUpdate {
            ptr: table.to_addr() + slot as u64 * 8 + cmd,
            val,
        }],
        foreigndom,
        &mut done,
    );
    assert_eq!(done, u32::from(r.is_ok()));
    r
}

/// A guest's own NORMAL_PT_UPDATE.
pub(crate) fn upd(
    m: &mut Memory,
    caller: DomId,
    table: Mfn,
    slot: usize,
    val: u64,
) -> XenResult<()> {
    upd_cmd(m, caller, caller == D0, table, slot, val, 0, SELF_FD)
}

/// A small guest address space: VA `0x4000_0000 + k*4096` maps `data[k]` RW, and the
/// L1 also maps the four tables read-only right after the data.
#[derive(Clone, Debug)]
pub(crate) struct Space {
    pub(crate) l4: Mfn,
    pub(crate) l3: Mfn,
    pub(crate) l2: Mfn,
    pub(crate) l1: Mfn,
    pub(crate) data: Vec<Mfn>,
}

/// Base VA of a [`Space`]: L4[0] → L3[1] → L2[0] → L1.
pub(crate) const BASE_VA: u64 = 0x4000_0000;

impl Space {
    /// VA of data page `k`.
    pub(crate) fn va(k: usize) -> u64 {
        BASE_VA + (k as u64) * 4096
    }
    /// L1 slot where table `t` (0 = L4 .. 3 = L1) is mapped read-only.
    pub(crate) fn table_slot(&self, t: usize) -> usize {
        self.data.len() + t
    }
    /// The four tables, L4 first.
    pub(crate) fn tables(&self) -> [Mfn; 4] {
        [self.l4, self.l3, self.l2, self.l1]
    }
}

/// Builds (raw stores, no validation) a [`Space`] with `ndata` data pages for `dom` at
/// PFNs `pfn ..`.
pub(crate) fn build_space(m: &mut Memory, dom: DomId, pfn: u64, ndata: usize) -> Space {
    let f = populate(m, dom, pfn, ndata as u64 + 4);
    let s = Space {
        l4: f[0],
        l3: f[1],
        l2: f[2],
        l1: f[3],
        data: f[4..].to_vec(),
    };
    set(m, s.l4, 0, pte(s.l3, PRW));
    set(m, s.l3, 1, pte(s.l2, PRW));
    set(m, s.l2, 0, pte(s.l1, PRW));
    for (k, &d) in s.data.iter().enumerate() {
        set(m, s.l1, k, pte(d, PRW));
    }
    for (t, &tab) in s.tables().iter().enumerate() {
        set(m, s.l1, s.table_slot(t), pte(tab, PRO));
    }
    s
}

/// [`build_space`] and pin its L4 as the domain itself.
pub(crate) fn pinned_space(m: &mut Memory, dom: DomId, pfn: u64, ndata: usize) -> Space {
    let s = build_space(m, dom, pfn, ndata);
    m.pin(dom, dom == D0, DomId::SELF, s.l4, PageType::L4)
        .unwrap();
    s
}

/// The live domains of [`machine`].
pub(crate) const LIVE: [DomId; 3] = [D0, D1, D2];
