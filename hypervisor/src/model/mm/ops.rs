//! Hypercall-level entry points: `mmu_update`, the page-table part of `mmuext_op`,
//! `update_va_mapping`, and the references the model holds outside page tables.
//!
//! Caller information is explicit: `caller` is the domain whose vCPU made the call,
//! `privileged` whether it is a control domain (Xen's default XSM policy,
//! `xsm_default_action(XSM_TARGET, …)`: a domain may act on itself; only a privileged
//! one on others).

use super::pt::{pte_mfn, PTE_PRESENT, PTE_PSE};
use super::{Memory, PageType, ENTRIES};
use crate::abi::mm::{
    MmuUpdate, HYPERVISOR_VIRT_END, L1_PAGETABLE_SHIFT, L2_PAGETABLE_SHIFT, L3_PAGETABLE_SHIFT,
    L4_PAGETABLE_SHIFT, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_NO_TRANSLATE,
    MMU_PT_UPDATE_PRESERVE_AD,
};
use crate::error::{Errno, XenResult};
use crate::types::{DomId, Mfn, PAGE_SIZE};

/// `mmu_update` takes the command from `ptr & (sizeof(l1_pgentry_t) - 1)`: three bits.
const MMU_CMD_BITS: u64 = 7;

/// Xen's default XSM policy for `XSM_TARGET` hooks.
fn xsm_target(caller: DomId, privileged: bool, target: DomId) -> XenResult<()> {
    if caller == target || privileged {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// `__addr_ok`: a guest virtual address outside Xen's range (and canonical).
pub(crate) const fn guest_addr_ok(va: u64) -> bool {
    va < (1 << 47) || va >= HYPERVISOR_VIRT_END
}

impl Memory {
    /// `get_pg_owner`: `DOMID_SELF` is the caller, naming yourself by id is refused,
    /// `DOMID_IO`/`DOMID_XEN` are Xen's pseudo-domains, anything else must be a live
    /// domain.
    fn pg_owner(&self, caller: DomId, id: u16) -> XenResult<DomId> {
        let id = DomId::new(id);
        if id == caller {
            return Err(Errno::ESRCH); // "Cannot specify itself as foreign domain"
        }
        match id {
            DomId::SELF => Ok(caller),
            DomId::IO | DomId::XEN => Ok(id),
            _ if self.domain_exists(id) => Ok(id),
            _ => Err(Errno::ESRCH),
        }
    }

    /// `get_page_from_gfn` for a PV domain: frame `mfn` if `dom` owns it and it is
    /// allocated; takes a general reference.
    fn get_page_from_gfn(&mut self, dom: DomId, mfn: u64) -> Option<usize> {
        let i = self.valid_idx(mfn)?;
        self.get_page_raw(i, dom).then_some(i)
    }

    /// `mmu_update(reqs, count, pdone, foreigndom)` (`do_mmu_update`).
    ///
    /// `foreigndom` bits 15:0 are FD, the owner of the frames being mapped
    /// (`DOMID_SELF` = the caller; `DOMID_XEN`/`DOMID_IO` for privileged callers), bits
    /// 31:16 are PFD + 1, the owner of the page tables (0 = the caller). `done` receives
    /// the number of requests completed; the first failing request stops the batch and
    /// its errno is returned.
    ///
    /// Errnos, as Xen: `ESRCH` unknown PFD/FD or FD naming the caller by id; `EPERM`
    /// when an unprivileged caller names another domain (XSM) or a MACHPHYS_UPDATE is
    /// issued for a foreign PFD; `EINVAL` when the PTE's frame is not the PT owner's,
    /// the page is a descriptor page, FD ≠ PFD for an L2–L4 update, a Xen L4 slot, a
    /// disallowed flag, or a type conflict at L2–L4; `EBUSY` when an L1 entry names a
    /// frame of another domain or a frame that cannot become writable (a page table in
    /// use, the M2P); `EPERM` for a frame that is not RAM; `ENOSYS` for an unknown
    /// command.
    ///
    /// # Errors
    /// As above.
    pub fn mmu_update(
        &mut self,
        caller: DomId,
        privileged: bool,
        reqs: &[MmuUpdate],
        foreigndom: u32,
        done: &mut u32,
    ) -> XenResult<()> {
        *done = 0;
        let pt_dom = foreigndom >> 16;
        let pt_owner = if pt_dom == 0 {
            caller
        } else {
            let id = DomId::new((pt_dom - 1) as u16);
            // rcu_lock_domain_by_id: real domains only, no DOMID_SELF.
            if !self.domain_exists(id) {
                return Err(Errno::ESRCH);
            }
            id
        };
        let pg_owner = self.pg_owner(caller, (foreigndom & 0xffff) as u16)?;
        for req in reqs {
            match req.ptr & MMU_CMD_BITS {
                MMU_NORMAL_PT_UPDATE | MMU_PT_UPDATE_PRESERVE_AD | MMU_PT_UPDATE_NO_TRANSLATE => {
                    self.pt_update(caller, privileged, pt_owner, pg_owner, req)?;
                }
                MMU_MACHPHYS_UPDATE => {
                    self.machphys_update(caller, privileged, pt_owner, pg_owner, req)?;
                }
                _ => return Err(Errno::ENOSYS),
            }
            *done += 1;
        }
        Ok(())
    }

    /// One NORMAL_PT_UPDATE / PT_UPDATE_PRESERVE_AD / PT_UPDATE_NO_TRANSLATE.
    fn pt_update(
        &mut self,
        caller: DomId,
        privileged: bool,
        pt_owner: DomId,
        pg_owner: DomId,
        req: &MmuUpdate,
    ) -> XenResult<()> {
        // xsm_mmu_update(d, pt_owner, pg_owner)
        if pg_owner != DomId::IO {
            xsm_target(caller, privileged, pg_owner)?;
        }
        xsm_target(caller, privileged, pt_owner)?;
        let cmd = req.ptr & MMU_CMD_BITS;
        let ptr = req.ptr & !MMU_CMD_BITS;
        let preserve_ad = cmd == MMU_PT_UPDATE_PRESERVE_AD;
        let i = self
            .get_page_from_gfn(pt_owner, ptr >> 12)
            .ok_or(Errno::EINVAL)?;
        let slot = (ptr as usize & (PAGE_SIZE - 1)) / 8;
        let f = self.frames[i];
        let rc = if f.validated && f.type_count > 0 {
            // page_lock succeeded: dispatch on the current type.
            match f.ty {
                PageType::L1 => {
                    self.mod_l1_entry(i, slot, req.val, preserve_ad, pt_owner, pg_owner)
                }
                PageType::L2 | PageType::L3 | PageType::L4 if pg_owner != pt_owner => {
                    Err(Errno::EINVAL)
                }
                PageType::L2 | PageType::L3 | PageType::L4 => {
                    self.mod_ln_entry(f.ty.level(), i, slot, req.val, preserve_ad, pt_owner)
                }
                PageType::Writable => {
                    self.write_pte(i, slot, req.val);
                    Ok(())
                }
                PageType::None | PageType::SegDesc => Err(Errno::EINVAL),
            }
        } else if self.get_type(i, PageType::Writable).is_ok() {
            self.write_pte(i, slot, req.val);
            self.put_type(i, None);
            Ok(())
        } else {
            Err(Errno::EINVAL)
        };
        self.put_page_raw(i);
        rc
    }

    /// One MMU_MACHPHYS_UPDATE.
    fn machphys_update(
        &mut self,
        caller: DomId,
        privileged: bool,
        pt_owner: DomId,
        pg_owner: DomId,
        req: &MmuUpdate,
    ) -> XenResult<()> {
        if caller != pt_owner {
            return Err(Errno::EPERM);
        }
        if pg_owner != DomId::IO {
            xsm_target(caller, privileged, pg_owner)?;
        }
        let i = self
            .get_page_from_gfn(pg_owner, req.ptr >> 12)
            .ok_or(Errno::EINVAL)?;
        self.machphys_set(i, req.val);
        self.mark_pfn_dirty(pg_owner, req.val);
        self.put_page_raw(i);
        Ok(())
    }

    /// The page owner of an mmuext_op from its raw `foreigndom`, exactly as Xen:
    /// `get_pg_owner` (`DOMID_SELF` = the caller, the caller's own id → `ESRCH`, unknown
    /// → `ESRCH`), then `xsm_mmuext_op` (`EPERM` for an unprivileged caller naming
    /// another domain).
    ///
    /// # Errors
    /// As above.
    pub fn mmuext_pg_owner(
        &self,
        caller: DomId,
        privileged: bool,
        foreigndom: u32,
    ) -> XenResult<DomId> {
        let pg_owner = self.pg_owner(caller, foreigndom as u16)?;
        xsm_target(caller, privileged, pg_owner)?;
        Ok(pg_owner)
    }

    /// The page owner for pin/unpin: `fd` is `DOMID_SELF`, the caller, or a domain
    /// already resolved by the model (see [`Memory::mmuext_pg_owner`] for Xen's exact
    /// rules on raw ids).
    fn mmuext_owner(&self, caller: DomId, privileged: bool, fd: DomId) -> XenResult<DomId> {
        if fd == DomId::SELF || fd == caller {
            return Ok(caller);
        }
        let pg_owner = self.pg_owner(caller, fd.get())?;
        xsm_target(caller, privileged, pg_owner)?;
        Ok(pg_owner)
    }

    /// MMUEXT_PIN_L{1,2,3,4}_TABLE: takes an `level` type reference (validating the
    /// table if needed) and a general reference, and sets the pin. `fd` is the page
    /// owner: `DomId::SELF`, the caller, or another domain (privileged callers only).
    ///
    /// # Errors
    /// `ESRCH`/`EPERM` for the owner as [`Memory::mmu_update`]; `EINVAL` if the frame is
    /// not the owner's, `level` is not a table type, the frame has another type in use,
    /// or it is already pinned (pins don't nest); a failing validation returns the
    /// errno of its first bad entry (`EINVAL`, `EBUSY`, `EPERM`).
    pub fn pin(
        &mut self,
        caller: DomId,
        privileged: bool,
        fd: DomId,
        mfn: Mfn,
        level: PageType,
    ) -> XenResult<()> {
        let pg_owner = self.mmuext_owner(caller, privileged, fd)?;
        if !level.is_pagetable() {
            return Err(Errno::EINVAL);
        }
        let i = self
            .get_page_from_gfn(pg_owner, mfn.get())
            .ok_or(Errno::EINVAL)?;
        if let Err(e) = self.get_type(i, level) {
            self.put_page_raw(i);
            return Err(e);
        }
        if self.frames[i].pinned {
            // "already pinned": the reference just taken is dropped again.
            self.put_type(i, None);
            self.put_page_raw(i);
            return Err(Errno::EINVAL);
        }
        self.frames[i].pinned = true;
        // "A page is dirtied when its pin status is set."
        self.mark_dirty(i);
        Ok(())
    }

    /// MMUEXT_UNPIN_TABLE: clears the pin and drops its type and general reference
    /// (the last type reference devalidates the table).
    ///
    /// # Errors
    /// Owner errors as [`Memory::pin`]; `EINVAL` if the frame is not the owner's or not
    /// pinned.
    pub fn unpin(&mut self, caller: DomId, privileged: bool, fd: DomId, mfn: Mfn) -> XenResult<()> {
        let pg_owner = self.mmuext_owner(caller, privileged, fd)?;
        let i = self
            .get_page_from_gfn(pg_owner, mfn.get())
            .ok_or(Errno::EINVAL)?;
        if !self.frames[i].pinned {
            self.put_page_raw(i);
            return Err(Errno::EINVAL); // "not pinned"
        }
        self.frames[i].pinned = false;
        self.put_type(i, None);
        self.put_page_raw(i);
        self.put_page_raw(i);
        // "A page is dirtied when its pin status is cleared." (A freed frame has no
        // M2P entry left, so nothing is recorded for it.)
        self.mark_dirty(i);
        Ok(())
    }

    /// MMUEXT_CLEAR_PAGE: zeroes a frame of `pg_owner` (the resolved page owner, see
    /// [`Memory::mmuext_pg_owner`]) that can take a writable type.
    ///
    /// # Errors
    /// `EINVAL` if the frame is not the owner's or is in use with another type.
    pub fn clear_page(&mut self, pg_owner: DomId, mfn: Mfn) -> XenResult<()> {
        let i = self
            .get_page_from_gfn(pg_owner, mfn.get())
            .ok_or(Errno::EINVAL)?;
        if self.get_type(i, PageType::Writable).is_err() {
            self.put_page_raw(i);
            return Err(Errno::EINVAL); // "Error clearing mfn"
        }
        self.mark_dirty(i);
        self.data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE].fill(0);
        self.bump_gen(i);
        self.put_type(i, None);
        self.put_page_raw(i);
        Ok(())
    }

    /// MMUEXT_COPY_PAGE: copies `src` (any frame of `pg_owner`, the resolved page
    /// owner) over `dst` (a frame of `pg_owner` that can take a writable type).
    ///
    /// # Errors
    /// `EINVAL` if either frame is not the owner's or `dst` is in use with another
    /// type.
    pub fn copy_page(&mut self, pg_owner: DomId, dst: Mfn, src: Mfn) -> XenResult<()> {
        let s = self
            .get_page_from_gfn(pg_owner, src.get())
            .ok_or(Errno::EINVAL)?;
        let Some(d) = self.get_page_from_gfn(pg_owner, dst.get()) else {
            self.put_page_raw(s);
            return Err(Errno::EINVAL);
        };
        if self.get_type(d, PageType::Writable).is_err() {
            self.put_page_raw(s);
            self.put_page_raw(d);
            return Err(Errno::EINVAL); // "Error copying to mfn"
        }
        self.mark_dirty(d);
        if s != d {
            self.data
                .copy_within(s * PAGE_SIZE..(s + 1) * PAGE_SIZE, d * PAGE_SIZE);
        }
        self.bump_gen(d);
        self.put_type(d, None);
        self.put_page_raw(d);
        self.put_page_raw(s);
        Ok(())
    }

    /// A general plus a `ty` type reference on `mfn` as `dom`'s frame, for references
    /// the model holds outside page tables: a vCPU's CR3 (`L4`, NEW_BASEPTR,
    /// NEW_USER_BASEPTR, setvcpucontext), GDT/LDT frames (`SegDesc`). Validates the
    /// frame if its type count was 0. (`get_page_and_type_from_mfn`.)
    ///
    /// # Errors
    /// `EINVAL` if `mfn` is not an allocated frame of `dom` or has another type in use;
    /// a failing validation returns the errno of its first bad entry.
    pub fn get_page_and_type(&mut self, mfn: Mfn, dom: DomId, ty: PageType) -> XenResult<()> {
        if self.domain_dying(dom) {
            return Err(Errno::EINVAL);
        }
        self.get_page_and_type_raw(mfn.get(), dom, ty).map(|_| ())
    }

    /// Drops a reference taken by [`Memory::get_page_and_type`]. The last type
    /// reference devalidates a table; the last general reference frees the frame. A
    /// frame holding no such reference is left alone (misuse shows up in
    /// [`Memory::check_invariants`], never as a panic).
    pub fn put_page_and_type(&mut self, mfn: Mfn) {
        let Some(i) = self.valid_idx(mfn.get()) else {
            return;
        };
        let f = &self.frames[i];
        if f.count == 0 || f.type_count == 0 {
            return;
        }
        self.put_type(i, None);
        self.put_page_raw(i);
    }

    /// A general reference only (`get_page`): keeps an allocated frame of `dom` from
    /// being freed.
    ///
    /// # Errors
    /// `EINVAL` if `mfn` is not an allocated frame of `dom`.
    pub fn get_page(&mut self, mfn: Mfn, dom: DomId) -> XenResult<()> {
        let i = self.valid_idx(mfn.get()).ok_or(Errno::EINVAL)?;
        if self.domain_dying(dom) || !self.get_page_raw(i, dom) {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// Drops a reference taken by [`Memory::get_page`].
    ///
    /// # Errors
    /// `EINVAL` if the frame has no reference.
    pub fn put_page(&mut self, mfn: Mfn) -> XenResult<()> {
        let i = self.valid_idx(mfn.get()).ok_or(Errno::EINVAL)?;
        if self.frames[i].count == 0 {
            return Err(Errno::EINVAL);
        }
        self.put_page_raw(i);
        Ok(())
    }

    /// `map_guest_l1e`: the L1 table and slot that map `va` under `cr3`, or `None` if
    /// `va` is in Xen's range or an upper level is not present (or a superpage).
    pub(crate) fn find_l1(&self, cr3: Mfn, va: u64) -> Option<(usize, usize)> {
        if !guest_addr_ok(va) {
            return None;
        }
        let mut t = self.valid_idx(cr3.get())?;
        for shift in [L4_PAGETABLE_SHIFT, L3_PAGETABLE_SHIFT, L2_PAGETABLE_SHIFT] {
            let e = self.pte(t, ((va >> shift) as usize) & (ENTRIES - 1));
            if e & PTE_PRESENT == 0 || (shift != L4_PAGETABLE_SHIFT && e & PTE_PSE != 0) {
                return None;
            }
            t = self.valid_idx(pte_mfn(e))?;
        }
        Some((t, ((va >> L1_PAGETABLE_SHIFT) as usize) & (ENTRIES - 1)))
    }

    /// `update_va_mapping(va, pte, flags)` from `caller` whose vCPU runs on `cr3`: a
    /// checked L1 update of the entry mapping `va`, the mapped frame belonging to
    /// `caller`. TLB flags are the model's business.
    ///
    /// # Errors
    /// `EINVAL` if no L1 maps `va` (Xen's range, non-present upper levels), the L1 is
    /// not the caller's validated L1 table, or the new entry is refused as in
    /// [`Memory::mmu_update`] (`EINVAL`, `EBUSY`, `EPERM`).
    pub fn update_va_mapping(
        &mut self,
        caller: DomId,
        cr3: Mfn,
        va: u64,
        pte: u64,
    ) -> XenResult<()> {
        self.do_update_va_mapping(caller, cr3, va, pte, caller)
    }

    /// `update_va_mapping_otherdomain`: as [`Memory::update_va_mapping`], but the mapped
    /// frame must belong to `domid` (FD semantics of [`Memory::mmu_update`]).
    ///
    /// # Errors
    /// `ESRCH` for an unknown `domid` (or the caller's own id), `EPERM` if an
    /// unprivileged caller names another domain; then as
    /// [`Memory::update_va_mapping`].
    pub fn update_va_mapping_otherdomain(
        &mut self,
        caller: DomId,
        privileged: bool,
        cr3: Mfn,
        va: u64,
        pte: u64,
        domid: DomId,
    ) -> XenResult<()> {
        let pg_owner = self.pg_owner(caller, domid.get())?;
        xsm_target(caller, privileged, pg_owner)?;
        self.do_update_va_mapping(caller, cr3, va, pte, pg_owner)
    }

    fn do_update_va_mapping(
        &mut self,
        caller: DomId,
        cr3: Mfn,
        va: u64,
        pte: u64,
        pg_owner: DomId,
    ) -> XenResult<()> {
        let (l1, slot) = self.find_l1(cr3, va).ok_or(Errno::EINVAL)?;
        if !self.get_page_raw(l1, caller) {
            return Err(Errno::EINVAL);
        }
        let f = self.frames[l1];
        let rc = if f.validated && f.type_count > 0 && f.ty == PageType::L1 {
            self.mod_l1_entry(l1, slot, pte, false, caller, pg_owner)
        } else {
            Err(Errno::EINVAL)
        };
        self.put_page_raw(l1);
        rc
    }
}
