//! The cross-cutting invariant checker of machine memory.
//!
//! [`Memory::check_invariants`] recomputes from scratch, for every frame, the general
//! and type reference counts that the allocation reference, every present entry of
//! every validated table, every pin, Xen's permanent shares and the references the
//! model holds itself (`roots`) imply, and compares them with the stored counts. It
//! also checks that entries of validated tables obey the type rules (an RW L1 entry
//! names a writable-typed frame, an Ln entry an L(n-1) table or, read-only, an Ln table;
//! flags within the disallow masks; Xen's L4 slots zero), that linear-table counts
//! match, that P2M and M2P agree, that owners are live (or dying and still referenced),
//! that free frames are clean, and that `tot_pages` matches. It is O(frames + entries
//! of validated tables) with one pass over the frame array; free frames cost a few
//! comparisons each.

use std::fmt;

use crate::model::mm::{
    descriptor_ok, guest_l4_slot, pte_mfn, valid_m2p, FrameKind, Memory, PageType, BASE_DISALLOW,
    ENTRIES, L1_DISALLOW,
};
use crate::types::{DomId, Mfn, Pfn};

const P: u64 = 1;
const RW: u64 = 1 << 1;

/// What [`Memory::check_invariants`] found wrong: the frame (if one) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation {
    /// The frame concerned, if the violation is about one frame.
    pub mfn: Option<Mfn>,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mfn {
            Some(m) => write!(f, "mfn {m}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for InvariantViolation {}

fn bad(mfn: usize, what: impl Into<String>) -> InvariantViolation {
    InvariantViolation {
        mfn: Some(Mfn::new(mfn as u64)),
        what: what.into(),
    }
}

fn bad_global(what: impl Into<String>) -> InvariantViolation {
    InvariantViolation {
        mfn: None,
        what: what.into(),
    }
}

impl Memory {
    /// Checks every memory invariant (see the module doc of `model::invariants`).
    ///
    /// `roots` lists the references the model holds outside page tables, one element
    /// per reference: `(mfn, ty)` is a general plus a `ty` type reference (vCPU CR3s as
    /// `L4`, GDT/LDT frames as `SegDesc`), `(mfn, PageType::None)` a general reference
    /// only. `live_domains` are the domains the model considers alive.
    ///
    /// # Errors
    /// The first violation found.
    pub fn check_invariants(
        &self,
        roots: &[(Mfn, PageType)],
        live_domains: &[DomId],
    ) -> Result<(), InvariantViolation> {
        let n = self.frames.len();
        let mut count = vec![0u32; n];
        let mut tcount = vec![0u32; n];
        let mut lin_entries = vec![0i32; n];
        let mut lin_uses = vec![0i32; n];
        let mut free_seen = 0usize;
        let mut owned_listed = 0usize;
        let mut free_list = self.free.iter().copied().peekable();
        // The domain of the previous frame: consecutive frames mostly share an owner.
        let mut last: Option<(DomId, &crate::model::mm::DomMem)> = None;

        for (i, f) in self.frames.iter().enumerate() {
            let on_free_list = free_list.peek() == Some(&(i as u64));
            if on_free_list {
                free_list.next();
            }
            let Some(owner) = f.owner else {
                if f.count != 0
                    || f.type_count != 0
                    || f.pinned
                    || f.allocated
                    || f.kind != FrameKind::Free
                    || f.linear != 0
                {
                    return Err(bad(i, format!("free frame with state {f:?}")));
                }
                if !on_free_list {
                    return Err(bad(i, "unowned frame missing from the free list"));
                }
                if self.m2p(Mfn::new(i as u64)) != Pfn::INVALID {
                    return Err(bad(i, "free frame with a valid M2P entry"));
                }
                free_seen += 1;
                continue;
            };
            if on_free_list {
                return Err(bad(i, format!("owned by {owner:?} but on the free list")));
            }
            match f.kind {
                FrameKind::Free => {
                    return Err(bad(i, format!("owned by {owner:?} but marked free")))
                }
                FrameKind::Xen => {
                    if owner != DomId::XEN || i as u64 >= self.m2p_frames {
                        return Err(bad(
                            i,
                            format!("Xen frame owned by {owner:?} outside the M2P"),
                        ));
                    }
                    tcount[i] += 1; // SHARE_ro
                }
                FrameKind::Domain | FrameKind::XenHeap => {
                    let dm = match last {
                        Some((d, dm)) if d == owner => dm,
                        _ => {
                            let Some(dm) = self.doms.get(&owner) else {
                                return Err(bad(i, format!("owned by unknown domain {owner:?}")));
                            };
                            last = Some((owner, dm));
                            dm
                        }
                    };
                    owned_listed += 1;
                    if dm.dying {
                        if f.count == 0 && f.kind == FrameKind::Domain {
                            return Err(bad(i, format!("leaked frame of destroyed {owner:?}")));
                        }
                    } else if !live_domains.contains(&owner) {
                        return Err(bad(
                            i,
                            format!("owned by {owner:?}, which the model says is not live"),
                        ));
                    }
                    if f.kind == FrameKind::XenHeap && !dm.dying {
                        tcount[i] += 1; // Xen's writable share
                        if f.ty != PageType::Writable {
                            return Err(bad(i, format!("Xen-heap page of type {:?}", f.ty)));
                        }
                    }
                }
            }
            if f.allocated {
                count[i] += 1;
            }
            if f.pinned {
                if !f.ty.is_pagetable() {
                    return Err(bad(i, format!("pinned with type {:?}", f.ty)));
                }
                count[i] += 1;
                tcount[i] += 1;
            }
            if f.type_count == 0 && f.pinned {
                return Err(bad(i, "pinned with type count 0"));
            }
            if f.type_count > 0 && !f.validated {
                let dying = self.doms.get(&owner).is_some_and(|d| d.dying);
                if !(f.ty.is_pagetable() && dying) {
                    return Err(bad(i, format!("type {:?} in use but not validated", f.ty)));
                }
            }
            if f.ty.is_pagetable() && f.validated {
                if f.type_count == 0 {
                    return Err(bad(i, format!("{:?} validated with type count 0", f.ty)));
                }
                self.count_entries(
                    i,
                    f.ty,
                    &mut count,
                    &mut tcount,
                    &mut lin_entries,
                    &mut lin_uses,
                )?;
            }
            if f.ty == PageType::SegDesc && f.validated {
                for s in 0..ENTRIES {
                    if !descriptor_ok(self.pte(i, s)) {
                        return Err(bad(
                            i,
                            format!("validated descriptor page with a bad descriptor in slot {s}"),
                        ));
                    }
                }
            }
        }

        for &(m, ty) in roots {
            let Some(i) = self.valid_idx(m.get()) else {
                return Err(bad_global(format!("root {m:?} is not a machine frame")));
            };
            count[i] += 1;
            if ty != PageType::None {
                tcount[i] += 1;
                if self.frames[i].ty != ty {
                    return Err(bad(
                        i,
                        format!(
                            "root reference of type {ty:?} but the frame is {:?}",
                            self.frames[i].ty
                        ),
                    ));
                }
            }
        }

        for (i, f) in self.frames.iter().enumerate() {
            if f.count != count[i] {
                return Err(bad(
                    i,
                    format!(
                        "general count {} but {} references exist ({f:?})",
                        f.count, count[i]
                    ),
                ));
            }
            if f.type_count != tcount[i] {
                return Err(bad(
                    i,
                    format!(
                        "type count {} but {} {:?} references exist ({f:?})",
                        f.type_count, tcount[i], f.ty
                    ),
                ));
            }
            if lin_entries[i] != 0 && lin_uses[i] != 0 {
                return Err(bad(
                    i,
                    "table both holds linear entries and is the target of one",
                ));
            }
            if f.linear != lin_entries[i] - lin_uses[i] {
                return Err(bad(
                    i,
                    format!(
                        "linear count {} but {} entries / {} uses",
                        f.linear, lin_entries[i], lin_uses[i]
                    ),
                ));
            }
        }

        // Every domain's list holds only frames it owns (check_domains); with the totals
        // equal, every owned frame is on its owner's list.
        let listed: usize = self.doms.values().map(|d| d.frames.len()).sum();
        if listed != owned_listed {
            return Err(bad_global(format!(
                "domains list {listed} frames, {owned_listed} frames are owned by domains"
            )));
        }
        if free_seen != self.free.len() {
            return Err(bad_global(format!(
                "free list has {} frames, {} frames are unowned",
                self.free.len(),
                free_seen
            )));
        }
        self.check_domains(live_domains)
    }

    /// Adds the references the entries of validated table `i` hold.
    fn count_entries(
        &self,
        i: usize,
        ty: PageType,
        count: &mut [u32],
        tcount: &mut [u32],
        lin_entries: &mut [i32],
        lin_uses: &mut [i32],
    ) -> Result<(), InvariantViolation> {
        let level = ty.level();
        for s in 0..ENTRIES {
            let e = self.pte(i, s);
            if level == 4 && !guest_l4_slot(s) {
                if e != 0 {
                    return Err(bad(i, format!("Xen L4 slot {s} holds {e:#x}")));
                }
                continue;
            }
            if e & P == 0 {
                continue;
            }
            let t64 = pte_mfn(e);
            let Some(t) = self.valid_idx(t64) else {
                return Err(bad(
                    i,
                    format!("{ty:?} slot {s} names non-RAM frame {t64:#x}"),
                ));
            };
            if level == 1 {
                if e & L1_DISALLOW != 0 {
                    return Err(bad(i, format!("L1 slot {s} has disallowed flags {e:#x}")));
                }
                count[t] += 1;
                if e & RW != 0 {
                    tcount[t] += 1;
                    if self.frames[t].ty != PageType::Writable {
                        return Err(bad(
                            t,
                            format!(
                                "mapped writable by L1 {i:#x} slot {s} but typed {:?}",
                                self.frames[t].ty
                            ),
                        ));
                    }
                }
                continue;
            }
            if e & BASE_DISALLOW != 0 {
                return Err(bad(
                    i,
                    format!("{ty:?} slot {s} has disallowed flags {e:#x}"),
                ));
            }
            if t == i {
                if e & RW != 0 {
                    return Err(bad(i, format!("writable self-map in slot {s}")));
                }
                continue;
            }
            count[t] += 1;
            tcount[t] += 1;
            let tt = self.frames[t].ty;
            if tt == ty {
                if e & RW != 0 {
                    return Err(bad(
                        i,
                        format!("writable linear entry in slot {s} to {t:#x}"),
                    ));
                }
                lin_entries[i] += 1;
                lin_uses[t] += 1;
            } else if Some(tt) != PageType::from_level(level - 1) {
                return Err(bad(
                    t,
                    format!("named by {ty:?} {i:#x} slot {s} but typed {tt:?}"),
                ));
            }
            if self.frames[t].owner != self.frames[i].owner {
                return Err(bad(t, format!("named by {ty:?} {i:#x} of another domain")));
            }
        }
        Ok(())
    }

    fn check_domains(&self, live_domains: &[DomId]) -> Result<(), InvariantViolation> {
        for &d in live_domains {
            if !self.domain_exists(d) {
                return Err(bad_global(format!(
                    "the model says {d:?} is live but memory does not know it"
                )));
            }
        }
        for (&d, dm) in &self.doms {
            if !dm.dying && !live_domains.contains(&d) {
                return Err(bad_global(format!(
                    "memory knows {d:?} but the model does not"
                )));
            }
            let mut domheap = 0u64;
            for &m in &dm.frames {
                let Some(f) = self.frame(m) else {
                    return Err(bad_global(format!("{d:?} lists non-frame {m:?}")));
                };
                if f.owner != Some(d) {
                    return Err(InvariantViolation {
                        mfn: Some(m),
                        what: format!("in {d:?}'s list but owned by {:?}", f.owner),
                    });
                }
                if f.kind == FrameKind::Domain {
                    domheap += 1;
                }
            }
            if domheap != dm.tot_pages {
                return Err(bad_global(format!(
                    "{d:?}: tot_pages {} but owns {domheap} domheap frames",
                    dm.tot_pages
                )));
            }
            if dm.dying && (dm.frames.is_empty() || !dm.p2m.is_empty() || dm.logdirty.is_some()) {
                return Err(bad_global(format!(
                    "{d:?} is dying with {} frames, {} P2M entries",
                    dm.frames.len(),
                    dm.p2m.len()
                )));
            }
            for (&pfn, &mfn) in &dm.p2m {
                let Some(f) = self.frame(mfn) else {
                    return Err(bad_global(format!(
                        "{d:?}: P2M {pfn:?} names non-frame {mfn:?}"
                    )));
                };
                if f.owner != Some(d) || !f.allocated || f.kind != FrameKind::Domain {
                    return Err(InvariantViolation {
                        mfn: Some(mfn),
                        what: format!("{d:?}'s P2M maps {pfn:?} here, but the frame is {f:?}"),
                    });
                }
                if self.m2p(mfn) != pfn || !valid_m2p(pfn.get()) {
                    return Err(InvariantViolation {
                        mfn: Some(mfn),
                        what: format!(
                            "{d:?}'s P2M maps {pfn:?} here, but M2P says {:?}",
                            self.m2p(mfn)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::mm::testutil::*;
    use crate::types::PAGE_SIZE;

    fn err(m: &Memory, roots: &[(Mfn, PageType)]) -> InvariantViolation {
        m.check_invariants(roots, &LIVE).unwrap_err()
    }

    #[test]
    fn a_fresh_and_a_busy_machine_pass() {
        let mut m = machine();
        m.check_invariants(&[], &LIVE).unwrap();
        let s = pinned_space(&mut m, D1, 0, 4);
        let _ = pinned_space(&mut m, D2, 0, 2);
        upd(&mut m, D1, s.l4, 300, pte(s.l4, PRO)).unwrap();
        m.alloc_xen_page(D1).unwrap();
        m.check_invariants(&[], &LIVE).unwrap();
    }

    #[test]
    fn counts_that_do_not_add_up_are_found() {
        let mut m = machine();
        let s = pinned_space(&mut m, D1, 0, 2);
        m.frames[s.l2.index()].count += 1;
        let e = err(&m, &[]);
        assert_eq!(e.mfn, Some(s.l2));
        assert!(e.to_string().contains("general count 4 but 3"), "{e}");
        m.frames[s.l2.index()].count -= 1;
        m.frames[s.data[1].index()].type_count = 0;
        assert_eq!(err(&m, &[]).mfn, Some(s.data[1]));
    }

    #[test]
    fn writable_mapping_of_a_table_is_found() {
        let mut m = machine();
        let s = pinned_space(&mut m, D1, 0, 1);
        // Corrupt the L1 behind Xen's back: an RW entry naming the L2.
        let off = s.l1.index() * PAGE_SIZE + 8 * 9;
        m.data[off..off + 8].copy_from_slice(&pte(s.l2, PRW).to_le_bytes());
        let e = err(&m, &[]);
        assert_eq!(e.mfn, Some(s.l2));
        assert!(e.what.contains("mapped writable"), "{e}");
    }

    #[test]
    fn xen_slots_roots_owners_and_p2m_are_checked() {
        let mut m = machine();
        let s = pinned_space(&mut m, D1, 0, 1);
        let off = s.l4.index() * PAGE_SIZE + 8 * 256;
        m.data[off] = 1;
        assert!(err(&m, &[]).what.contains("Xen L4 slot 256"));
        m.data[off] = 0;
        // A root of the wrong type, and an undeclared one.
        assert!(err(&m, &[(s.l4, PageType::L3)])
            .what
            .contains("root reference"));
        m.get_page_and_type(s.l3, D1, PageType::L3).unwrap();
        assert_eq!(err(&m, &[]).mfn, Some(s.l3));
        m.check_invariants(&[(s.l3, PageType::L3)], &LIVE).unwrap();
        m.put_page_and_type(s.l3);
        // The model and memory disagree about who is alive.
        assert!(m.check_invariants(&[], &[D0, D1]).is_err());
        assert!(m
            .check_invariants(&[], &[D0, D1, D2, DomId::new(7)])
            .is_err());
        // P2M/M2P disagreement.
        let i = s.data[0].index();
        m.data[i * 8..i * 8 + 8].copy_from_slice(&99u64.to_le_bytes());
        assert!(err(&m, &[]).what.contains("M2P says"));
    }

    #[test]
    fn free_frames_must_be_clean() {
        let mut m = machine();
        m.frames[1500].count = 1;
        assert_eq!(err(&m, &[]).mfn, Some(Mfn::new(1500)));
        m.frames[1500].count = 0;
        m.free.remove(&1500);
        assert!(err(&m, &[]).what.contains("free list"));
    }
}
