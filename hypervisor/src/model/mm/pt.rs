//! The page-type engine: general and type references, (de)validation of tables, and
//! checked entry updates (`mod_l*_entry`). Mirrors xen/arch/x86/mm.c of Xen 4.17; each
//! function names the Xen function it follows.

use super::{is_control, Memory, PageType, ENTRIES};
use crate::abi::mm as abi;
use crate::error::{Errno, XenResult};
use crate::types::DomId;

pub(crate) use abi::{
    PTE_ACCESSED, PTE_ADDR_MASK, PTE_DIRTY, PTE_NX, PTE_PRESENT, PTE_PSE, PTE_RW, PTE_USER,
};

/// Flag bits refused in L2..L4 entries (`base_disallow_mask`: PWT, PCD, PSE, G).
pub(crate) const BASE_DISALLOW: u64 = abi::BASE_DISALLOW_MASK;
/// Flag bits refused in L1 entries of a domain without I/O resources (PWT, PCD, PAT).
/// Xen's `L1_DISALLOW_MASK` adds `_PAGE_GNTTAB`, which is 0 in release builds
/// (asm/page.h undefines it under NDEBUG), so bit 62 is allowed here.
pub(crate) const L1_DISALLOW: u64 = abi::L1_DISALLOW_MASK & !abi::PTE_GNTTAB;
/// Flags a guest may change without revalidation (`FASTPATH_FLAG_WHITELIST`; with
/// linear page tables enabled the PDE whitelist is the same).
const FASTPATH_WHITELIST: u64 = PTE_NX
    | abi::PTE_AVAIL_HIGH
    | abi::PTE_AVAIL
    | abi::PTE_GLOBAL
    | PTE_DIRTY
    | PTE_ACCESSED
    | PTE_USER;
/// Flag positions of a PTE (outside the address bits).
const FLAG_BITS: u64 = !PTE_ADDR_MASK;

/// `l*e_has_changed(old, new, ~FASTPATH_FLAG_WHITELIST)`: the address or a flag outside
/// the whitelist differs.
const fn needs_revalidation(old: u64, new: u64) -> bool {
    (old ^ new) & (PTE_ADDR_MASK | (FLAG_BITS & !FASTPATH_WHITELIST)) != 0
}

/// The frame an entry names.
pub(crate) const fn pte_mfn(e: u64) -> u64 {
    (e & PTE_ADDR_MASK) >> 12
}

/// `is_guest_l4_slot` for a 64-bit PV guest.
pub(crate) const fn guest_l4_slot(slot: usize) -> bool {
    abi::is_guest_l4_slot(slot)
}

impl Memory {
    // ------------------------------------------------------------------------------
    // General references.

    /// `get_page`: a general reference on frame `i` if it is allocated (count > 0) and
    /// owned by `dom`.
    pub(super) fn get_page_raw(&mut self, i: usize, dom: DomId) -> bool {
        let f = &mut self.frames[i];
        if f.count == 0 || f.count == u32::MAX || f.owner != Some(dom) {
            return false;
        }
        f.count += 1;
        true
    }

    /// `put_page`: drops a general reference; the last one frees the frame.
    pub(super) fn put_page_raw(&mut self, i: usize) {
        let f = &mut self.frames[i];
        if f.count == 0 {
            return; // never underflow on corrupted state; the checker reports it
        }
        f.count -= 1;
        if f.count == 0 {
            self.free_frame(i);
        }
    }

    /// `get_page_and_type_from_mfn`: general + type reference on `mfn` as `dom`'s frame.
    pub(super) fn get_page_and_type_raw(
        &mut self,
        mfn: u64,
        dom: DomId,
        ty: PageType,
    ) -> XenResult<usize> {
        let i = self.valid_idx(mfn).ok_or(Errno::EINVAL)?;
        if !self.get_page_raw(i, dom) {
            return Err(Errno::EINVAL);
        }
        if let Err(e) = self.get_type(i, ty) {
            self.put_page_raw(i);
            return Err(e);
        }
        Ok(i)
    }

    // ------------------------------------------------------------------------------
    // Type references.

    /// `_get_page_type`: one type at a time; the type changes only on the count's 0→1
    /// transition, which then validates tables and descriptor pages. A failed
    /// validation leaves the frame untyped (`type_info = 0`).
    pub(super) fn get_type(&mut self, i: usize, ty: PageType) -> XenResult<()> {
        let f = &mut self.frames[i];
        if f.type_count == u32::MAX {
            return Err(Errno::EINVAL); // "Type count overflow"
        }
        if f.type_count > 0 {
            if f.ty != ty {
                return Err(Errno::EINVAL); // "Bad type"
            }
            if !f.validated {
                // Xen spins for a concurrent validator; in the model this is only a
                // dying domain's forcibly devalidated table.
                return Err(Errno::EINVAL);
            }
            f.type_count += 1;
            return Ok(());
        }
        if f.ty != ty {
            f.ty = ty;
            f.validated = false;
        }
        f.type_count = 1;
        if f.validated {
            return Ok(());
        }
        if !ty.needs_validation() {
            f.validated = true;
            return Ok(());
        }
        f.linear = 0;
        match self.validate(i, ty) {
            Ok(()) => {
                self.frames[i].validated = true;
                Ok(())
            }
            Err(e) => {
                let f = &mut self.frames[i];
                f.ty = PageType::None;
                f.type_count = 0;
                f.validated = false;
                Err(e)
            }
        }
    }

    /// `_put_page_type`: drops a type reference. The last one on a validated table
    /// devalidates it. `ptpg` is the table whose entry held the reference, if any; when
    /// it has the same type the reference was a linear one and the linear counts drop.
    pub(super) fn put_type(&mut self, i: usize, ptpg: Option<usize>) {
        let f = self.frames[i];
        if f.type_count == 0 {
            return; // corrupted state; the checker reports it
        }
        let linear = ptpg.is_some_and(|p| self.frames[p].ty == f.ty);
        if f.type_count == 1 && f.ty.is_pagetable() && f.validated {
            self.frames[i].validated = false;
            self.devalidate(i, f.ty);
        }
        if linear {
            if let Some(p) = ptpg {
                self.frames[i].linear += 1;
                self.frames[p].linear -= 1;
            }
        }
        self.frames[i].type_count -= 1;
    }

    // ------------------------------------------------------------------------------
    // (De)validation.

    /// `validate_page`: audits every entry of frame `i` as type `ty`, taking the
    /// references they imply; on the first bad entry everything taken is put back.
    fn validate(&mut self, i: usize, ty: PageType) -> XenResult<()> {
        let owner = self.frames[i].owner.unwrap_or(DomId::INVALID);
        // "A page table is dirtied when its type count becomes non-zero."
        self.mark_dirty(i);
        match ty {
            PageType::L1 => {
                for s in 0..ENTRIES {
                    let e = self.pte(i, s);
                    if e & PTE_PRESENT == 0 {
                        continue;
                    }
                    if let Err(err) = self.get_from_l1e(e, owner, owner) {
                        for u in (0..s).rev() {
                            let e = self.pte(i, u);
                            self.put_from_l1e(e);
                        }
                        return Err(err);
                    }
                }
                Ok(())
            }
            PageType::L2 | PageType::L3 | PageType::L4 => {
                let level = ty.level();
                for s in 0..ENTRIES {
                    if level == 4 && !guest_l4_slot(s) {
                        continue;
                    }
                    let e = self.pte(i, s);
                    if e & PTE_PRESENT == 0 {
                        continue;
                    }
                    if let Err(err) = self.get_from_lne(level, e, i, owner) {
                        for u in (0..s).rev() {
                            if level == 4 && !guest_l4_slot(u) {
                                continue;
                            }
                            let e = self.pte(i, u);
                            self.put_from_lne(e, i);
                        }
                        return Err(err);
                    }
                }
                if level == 4 {
                    // init_xen_l4_slots: Xen owns 256..=271; the model fills them with 0.
                    let base = i * crate::types::PAGE_SIZE;
                    let lo = base + abi::ROOT_PAGETABLE_FIRST_XEN_SLOT * 8;
                    let hi = base + (abi::ROOT_PAGETABLE_LAST_XEN_SLOT + 1) * 8;
                    self.data[lo..hi].fill(0);
                    self.bump_gen(i);
                }
                Ok(())
            }
            PageType::SegDesc => {
                for s in 0..ENTRIES {
                    if !descriptor_ok(self.pte(i, s)) {
                        return Err(Errno::EINVAL);
                    }
                }
                Ok(())
            }
            PageType::None | PageType::Writable => Ok(()),
        }
    }

    /// `devalidate_page` / `demote_l*_table`: puts the references every entry holds.
    pub(super) fn devalidate(&mut self, i: usize, ty: PageType) {
        // "A page table is dirtied when its type count becomes zero."
        self.mark_dirty(i);
        match ty {
            PageType::L1 => {
                for s in 0..ENTRIES {
                    let e = self.pte(i, s);
                    self.put_from_l1e(e);
                }
            }
            PageType::L2 | PageType::L3 | PageType::L4 => {
                for s in (0..ENTRIES).rev() {
                    if ty == PageType::L4 && !guest_l4_slot(s) {
                        continue;
                    }
                    let e = self.pte(i, s);
                    self.put_from_lne(e, i);
                }
            }
            _ => {}
        }
    }

    /// `get_page_from_l1e`: the references a present L1 entry takes. `l1e_owner` owns
    /// the table, `pg_owner` is the domain the data frame must belong to (FD).
    pub(super) fn get_from_l1e(
        &mut self,
        e: u64,
        l1e_owner: DomId,
        pg_owner: DomId,
    ) -> XenResult<()> {
        if e & L1_DISALLOW != 0 {
            return Err(Errno::EINVAL); // "Bad L1 flags"
        }
        let mfn = pte_mfn(e);
        let Some(t) = self.valid_idx(mfn) else {
            // Not RAM: MMIO, which no domain of the model may map.
            return Err(if mfn == PTE_ADDR_MASK >> 12 {
                Errno::EINVAL
            } else {
                Errno::EPERM
            });
        };
        let f = &self.frames[t];
        // page_get_owner_and_reference: an unallocated frame has no owner.
        let real = if f.count > 0 && f.count < u32::MAX {
            f.owner
        } else {
            None
        };
        if real != Some(pg_owner) {
            // Only a privileged FD may hand on the right to map its target's pages
            // (xsm_priv_mapping); naming yourself never does.
            match real {
                Some(_) if pg_owner != l1e_owner && is_control(pg_owner) => {}
                _ => return Err(Errno::EBUSY), // could_not_pin
            }
        }
        self.frames[t].count += 1;
        if e & PTE_RW != 0 && self.get_type(t, PageType::Writable).is_err() {
            self.put_page_raw(t);
            return Err(Errno::EBUSY); // "Could not get page type PGT_writable_page"
        }
        Ok(())
    }

    /// `put_page_from_l1e`.
    pub(super) fn put_from_l1e(&mut self, e: u64) {
        if e & PTE_PRESENT == 0 {
            return;
        }
        let Some(t) = self.valid_idx(pte_mfn(e)) else {
            return;
        };
        if e & PTE_RW != 0 {
            self.put_type(t, None);
        }
        self.put_page_raw(t);
    }

    /// `get_page_from_l{2,3,4}e`: an L(level-1) reference on the entry's frame, or a
    /// read-only linear reference (`get_*_linear_pagetable`).
    pub(super) fn get_from_lne(
        &mut self,
        level: u32,
        e: u64,
        table: usize,
        d: DomId,
    ) -> XenResult<()> {
        if e & BASE_DISALLOW != 0 {
            return Err(Errno::EINVAL); // "Bad L%d flags"
        }
        let lower = PageType::from_level(level - 1).ok_or(Errno::EINVAL)?;
        match self.get_page_and_type_raw(pte_mfn(e), d, lower) {
            Err(Errno::EINVAL) => {
                if self.get_linear(level, e, table, d) {
                    Ok(())
                } else {
                    Err(Errno::EINVAL)
                }
            }
            r => r.map(|_| ()),
        }
    }

    /// `get_l*_linear_pagetable`.
    fn get_linear(&mut self, level: u32, e: u64, table: usize, d: DomId) -> bool {
        if e & PTE_RW != 0 {
            return false; // "Attempt to create linear p.t. with write perms"
        }
        let mfn = pte_mfn(e);
        if mfn == table as u64 {
            return true; // a self-map takes no reference
        }
        if self.frames[table].owner != Some(d) {
            return false;
        }
        let Some(t) = self.valid_idx(mfn) else {
            return false;
        };
        if !self.get_page_raw(t, d) {
            return false;
        }
        // inc_linear_entries(table) / inc_linear_uses(t)
        if self.frames[table].linear < 0 || self.frames[table].linear == i32::from(i16::MAX) {
            self.put_page_raw(t);
            return false;
        }
        if self.frames[t].linear > 0 || self.frames[t].linear == i32::from(i16::MIN) {
            self.put_page_raw(t);
            return false;
        }
        let ty = PageType::from_level(level);
        let f = &self.frames[t];
        if Some(f.ty) != ty || !f.validated || f.type_count == 0 || f.type_count == u32::MAX {
            self.put_page_raw(t);
            return false;
        }
        self.frames[table].linear += 1;
        self.frames[t].linear -= 1;
        self.frames[t].type_count += 1;
        true
    }

    /// `put_page_from_l{2,3,4}e`: self-maps hold nothing.
    pub(super) fn put_from_lne(&mut self, e: u64, table: usize) {
        if e & PTE_PRESENT == 0 {
            return;
        }
        let mfn = pte_mfn(e);
        if mfn == table as u64 {
            return;
        }
        let Some(t) = self.valid_idx(mfn) else { return };
        self.put_type(t, Some(table));
        self.put_page_raw(t);
    }

    // ------------------------------------------------------------------------------
    // Checked entry updates.

    /// The store of an update: `preserve_ad` ORs in the A/D bits already there.
    fn store_entry(&mut self, i: usize, slot: usize, old: u64, new: u64, preserve_ad: bool) {
        let new = if preserve_ad {
            new | (old & (PTE_ACCESSED | PTE_DIRTY))
        } else {
            new
        };
        self.write_pte(i, slot, new);
    }

    /// `mod_l1_entry`: new references first, then the store, then the old entry's
    /// references are put.
    pub(super) fn mod_l1_entry(
        &mut self,
        table: usize,
        slot: usize,
        new: u64,
        preserve_ad: bool,
        pt_dom: DomId,
        pg_dom: DomId,
    ) -> XenResult<()> {
        let old = self.pte(table, slot);
        if new & PTE_PRESENT != 0 {
            if new & L1_DISALLOW != 0 {
                return Err(Errno::EINVAL);
            }
            if !needs_revalidation(old, new) {
                self.store_entry(table, slot, old, new, preserve_ad);
                return Ok(());
            }
            self.get_from_l1e(new, pt_dom, pg_dom)?;
        }
        self.store_entry(table, slot, old, new, preserve_ad);
        self.put_from_l1e(old);
        Ok(())
    }

    /// `mod_l{2,3,4}_entry`.
    pub(super) fn mod_ln_entry(
        &mut self,
        level: u32,
        table: usize,
        slot: usize,
        new: u64,
        preserve_ad: bool,
        d: DomId,
    ) -> XenResult<()> {
        if level == 4 && !guest_l4_slot(slot) {
            return Err(Errno::EINVAL); // "L4 update in Xen-private area"
        }
        let old = self.pte(table, slot);
        if new & PTE_PRESENT != 0 {
            if new & BASE_DISALLOW != 0 {
                return Err(Errno::EINVAL);
            }
            if !needs_revalidation(old, new) {
                self.store_entry(table, slot, old, new, preserve_ad);
                return Ok(());
            }
            self.get_from_lne(level, new, table, d)?;
        }
        self.store_entry(table, slot, old, new, preserve_ad);
        self.put_from_lne(old, table);
        Ok(())
    }
}

/// `check_descriptor` for a 64-bit PV guest, without the DPL fix-up: non-present
/// descriptors, code/data segments and the invalid type 0 are fine; of the system
/// descriptors only call gates with clear reserved bits pass.
pub(crate) const fn descriptor_ok(desc: u64) -> bool {
    let b = (desc >> 32) as u32;
    if b & (1 << 15) == 0 {
        return true; // not present
    }
    if b & (1 << 12) != 0 {
        return true; // code or data segment
    }
    match b & 0xf00 {
        0x000 => true,
        0xc00 => b & 0xff == 0,
        _ => false,
    }
}
