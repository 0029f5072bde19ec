//! Unit tests: one per rule, failure cases with Xen's errno.

use super::testutil::*;
use super::*;
use crate::abi::domctl::{
    XEN_DOMCTL_PFINFO_L1TAB, XEN_DOMCTL_PFINFO_L2TAB, XEN_DOMCTL_PFINFO_L4TAB,
};
use crate::abi::mm::{
    MmuUpdate, MMU_MACHPHYS_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, PTE_ACCESSED, PTE_DIRTY, PTE_GLOBAL,
    PTE_GNTTAB, PTE_PCD, PTE_PRESENT, PTE_PSE, PTE_PWT, PTE_RW,
};

fn ok(m: &Memory) {
    m.check_invariants(&[], &LIVE).unwrap();
}

fn info(m: &Memory, mfn: Mfn) -> FrameInfo {
    *m.frame(mfn).unwrap()
}

// ---------------------------------------------------------------------------------
// Machine layout, allocation, memory_op.

#[test]
fn m2p_lives_in_xen_frames_at_the_bottom() {
    let mut m = machine();
    assert_eq!(m.m2p_frames(), 512);
    assert_eq!(m.maximum_ram_page(), 2048);
    let mut list = [7u64; 4];
    assert_eq!(m.machphys_mfn_list(&mut list), 1);
    assert_eq!(list[0], 0);
    assert_eq!(m.machphys_mfn_list(&mut []), 0);
    let f = info(&m, Mfn::new(0));
    assert_eq!(
        (f.owner, f.kind, f.ty, f.type_count),
        (Some(DomId::XEN), FrameKind::Xen, PageType::None, 1)
    );
    // populate writes M2P entries straight into the M2P frames' bytes.
    let mfns = populate(&mut m, D1, 0x40, 2);
    assert_eq!(mfns, [Mfn::new(512), Mfn::new(513)]);
    assert_eq!(m.m2p(mfns[1]), Pfn::new(0x41));
    assert_eq!(m.read_u64(Mfn::new(1), (513 * 8) % 4096).unwrap(), 0x41);
    assert_eq!(m.m2p(Mfn::new(600)), Pfn::INVALID);
    // The toolstack may read the M2P as DOMID_XEN, never write it.
    assert_eq!(m.foreign_read_check(DomId::XEN, Mfn::new(0)), Ok(()));
    assert_eq!(
        m.foreign_write_check(DomId::XEN, Mfn::new(0)),
        Err(Errno::EBUSY)
    );
    assert_eq!(m.foreign_read_check(D1, Mfn::new(0)), Err(Errno::EBUSY));
    ok(&m);
}

#[test]
fn allocation_is_lowest_first_and_scrubbed() {
    let mut m = machine();
    let a = populate(&mut m, D1, 0, 3);
    assert_eq!(a, [Mfn::new(512), Mfn::new(513), Mfn::new(514)]);
    m.guest_write(a[1], 100, b"secret").unwrap();
    assert_eq!(m.decrease_reservation(D1, &[a[1].get()], 0), Ok(1));
    assert_eq!(m.frame(a[1]).unwrap().owner, None);
    assert_eq!(m.m2p(a[1]), Pfn::INVALID);
    let b = populate(&mut m, D2, 0, 1);
    assert_eq!(b, [a[1]]);
    assert!(m.page(b[0]).unwrap().iter().all(|&x| x == 0), "scrubbed");
    ok(&m);
}

#[test]
fn max_pages_stops_allocation_with_a_partial_count() {
    let mut m = machine();
    m.set_max_pages(D1, 3);
    let mut v = vec![0u64, 1, 2, 3, 4];
    assert_eq!(m.populate_physmap(D1, &mut v, 0), Ok(3));
    assert_eq!(m.tot_pages(D1), 3);
    assert_eq!(m.increase_reservation(D1, &mut [0; 2], 0), Ok(0));
    assert_eq!(
        m.populate_physmap(DomId::new(9), &mut [0], 0),
        Err(Errno::ESRCH)
    );
    ok(&m);
}

#[test]
fn increase_reservation_leaves_the_m2p_alone() {
    let mut m = machine();
    let mut e = [0u64; 2];
    assert_eq!(m.increase_reservation(D1, &mut e, 0), Ok(2));
    assert_eq!(e, [512, 513]);
    assert_eq!(m.m2p(Mfn::new(512)), Pfn::INVALID);
    assert_eq!(m.p2m(D1, Pfn::new(0)), None);
    // The guest names the PFN itself with MMU_MACHPHYS_UPDATE.
    let mut done = 0;
    m.mmu_update(
        D1,
        false,
        &[MmuUpdate {
            ptr: (512 << 12) | MMU_MACHPHYS_UPDATE,
            val: 7,
        }],
        SELF_FD,
        &mut done,
    )
    .unwrap();
    assert_eq!(m.m2p(Mfn::new(512)), Pfn::new(7));
    assert_eq!(m.p2m(D1, Pfn::new(7)), Some(Mfn::new(512)));
    ok(&m);
}

#[test]
fn superpage_extents_are_aligned() {
    let mut m = Memory::new(4096);
    m.add_domain(D1).unwrap();
    m.set_max_pages(D1, 2000);
    populate(&mut m, D1, 0, 1); // 512 taken: the next 2 MiB run starts at 1024
    let mut v = [0x200u64];
    assert_eq!(m.populate_physmap(D1, &mut v, 9), Ok(1));
    assert_eq!(v[0], 1024);
    assert_eq!(m.m2p(Mfn::new(1024 + 5)), Pfn::new(0x205));
    assert_eq!(m.tot_pages(D1), 513);
    assert_eq!(
        m.populate_physmap(D1, &mut [0], 10),
        Ok(0),
        "order above MAX_ORDER"
    );
    assert_eq!(m.decrease_reservation(D1, &[1024], 9), Ok(1));
    assert_eq!(m.tot_pages(D1), 1);
    m.check_invariants(&[], &[D1]).unwrap();
}

#[test]
fn decrease_reservation_follows_guest_remove_page() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 2);
    let other = populate(&mut m, D2, 0, 1);
    let before = m.tot_pages(D1);
    // A data page nobody else holds goes... except it is mapped by the L1: it lingers.
    assert_eq!(m.decrease_reservation(D1, &[s.data[0].get()], 0), Ok(1));
    let f = info(&m, s.data[0]);
    assert_eq!((f.owner, f.allocated, f.count), (Some(D1), false, 1));
    assert_eq!(m.tot_pages(D1), before, "a lingering frame still counts");
    assert_eq!(m.p2m(D1, Pfn::new(4)), None);
    ok(&m);
    // Unmapping drops the last reference: freed.
    upd(&mut m, D1, s.l1, 0, 0).unwrap();
    assert_eq!(info(&m, s.data[0]).owner, None);
    assert_eq!(m.tot_pages(D1), before - 1);
    // Decreasing it again, or another domain's frame, or non-RAM, stops the batch.
    assert_eq!(
        m.decrease_reservation(D1, &[s.data[1].get(), s.data[0].get()], 0),
        Ok(1)
    );
    assert_eq!(m.decrease_reservation(D1, &[other[0].get()], 0), Ok(0));
    assert_eq!(m.decrease_reservation(D1, &[1 << 40], 0), Ok(0));
    // The pinned L4 lingers until unpinned.
    assert_eq!(m.decrease_reservation(D1, &[s.l4.get()], 0), Ok(1));
    assert_eq!(info(&m, s.l4).owner, Some(D1));
    ok(&m);
    m.unpin(D1, false, DomId::SELF, s.l4).unwrap();
    assert_eq!(info(&m, s.l4).owner, None);
    ok(&m);
}

// ---------------------------------------------------------------------------------
// Type rules.

#[test]
fn pinning_validates_the_hierarchy_and_takes_the_references() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 2);
    let l4 = info(&m, s.l4);
    assert_eq!(
        (l4.ty, l4.type_count, l4.pinned, l4.validated),
        (PageType::L4, 1, true, true)
    );
    // alloc + pin + the L1's read-only mapping of it.
    assert_eq!(l4.count, 3);
    for (tab, ty) in [
        (s.l3, PageType::L3),
        (s.l2, PageType::L2),
        (s.l1, PageType::L1),
    ] {
        let f = info(&m, tab);
        assert_eq!(
            (f.ty, f.type_count, f.count, f.pinned),
            (ty, 1, 3, false),
            "{ty:?}"
        );
    }
    for &d in &s.data {
        let f = info(&m, d);
        assert_eq!((f.ty, f.type_count, f.count), (PageType::Writable, 1, 2));
    }
    ok(&m);
    // Unpinning tears it all down again.
    m.unpin(D1, false, DomId::SELF, s.l4).unwrap();
    for tab in s.tables() {
        let f = info(&m, tab);
        assert_eq!((f.type_count, f.validated, f.count), (0, false, 1));
    }
    assert_eq!(info(&m, s.data[0]).type_count, 0);
    ok(&m);
}

#[test]
fn pins_do_not_nest() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 1);
    let before = info(&m, s.l4);
    assert_eq!(
        m.pin(D1, false, DomId::SELF, s.l4, PageType::L4),
        Err(Errno::EINVAL)
    );
    assert_eq!(info(&m, s.l4), before);
    ok(&m);
}

#[test]
fn unpin_of_an_unpinned_frame_fails() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 1);
    assert_eq!(m.unpin(D1, false, DomId::SELF, s.l3), Err(Errno::EINVAL));
    assert_eq!(
        m.unpin(D1, false, DomId::SELF, s.data[0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.unpin(D1, false, DomId::SELF, Mfn::new(1 << 30)),
        Err(Errno::EINVAL)
    );
    ok(&m);
}

#[test]
fn page_tables_never_get_writable_mappings() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 1);
    for (t, tab) in s.tables().into_iter().enumerate() {
        let slot = s.table_slot(t);
        let before = get(&m, s.l1, slot);
        // Turning the read-only mapping of any table writable: "could_not_pin".
        assert_eq!(
            upd(&mut m, D1, s.l1, slot, pte(tab, PRW)),
            Err(Errno::EBUSY),
            "table {t}"
        );
        assert_eq!(get(&m, s.l1, slot), before);
        // And through update_va_mapping.
        let va = Space::va(slot);
        assert_eq!(
            m.update_va_mapping(D1, s.l4, va, pte(tab, PRW)),
            Err(Errno::EBUSY)
        );
    }
    ok(&m);
    // Pinning a frame that is mapped writable: its type is in use as writable.
    assert_eq!(
        m.pin(D1, false, DomId::SELF, s.data[0], PageType::L1),
        Err(Errno::EINVAL)
    );
    let spare = populate(&mut m, D1, 100, 1)[0];
    upd(&mut m, D1, s.l1, 10, pte(spare, PRW)).unwrap();
    assert_eq!(
        m.pin(D1, false, DomId::SELF, spare, PageType::L1),
        Err(Errno::EINVAL)
    );
    // Once unmapped (type count 0) the type may change.
    upd(&mut m, D1, s.l1, 10, 0).unwrap();
    m.pin(D1, false, DomId::SELF, spare, PageType::L1).unwrap();
    ok(&m);
}

#[test]
fn a_type_changes_only_when_unreferenced() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 1);
    assert_eq!(
        m.pin(D1, false, DomId::SELF, s.l1, PageType::L2),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.pin(D1, false, DomId::SELF, s.l2, PageType::L3),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.get_page_and_type(s.l3, D1, PageType::L4),
        Err(Errno::EINVAL)
    );
    // Same type: fine (pin an L1 that is already referenced).
    m.pin(D1, false, DomId::SELF, s.l1, PageType::L1).unwrap();
    assert_eq!(info(&m, s.l1).type_count, 2);
    ok(&m);
}

#[test]
fn only_the_owners_frames_may_be_mapped() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 1);
    let theirs = populate(&mut m, D2, 0, 1)[0];
    // FD = self: the frame is not ours.
    assert_eq!(
        upd(&mut m, D1, s.l1, 20, pte(theirs, PRO)),
        Err(Errno::EBUSY)
    );
    // Naming the other domain as FD needs privilege.
    let fd = u32::from(D2.get());
    assert_eq!(
        upd_cmd(&mut m, D1, false, s.l1, 20, pte(theirs, PRO), 0, fd),
        Err(Errno::EPERM)
    );
    // Naming yourself by id is refused.
    assert_eq!(
        upd_cmd(
            &mut m,
            D1,
            false,
            s.l1,
            20,
            pte(theirs, PRO),
            0,
            u32::from(D1.get())
        ),
        Err(Errno::ESRCH)
    );
    // Unknown FD / PFD.
    assert_eq!(
        upd_cmd(&mut m, D1, false, s.l1, 20, 0, 0, 77),
        Err(Errno::ESRCH)
    );
    assert_eq!(
        upd_cmd(&mut m, D1, false, s.l1, 20, 0, 0, 78 << 16 | SELF_FD),
        Err(Errno::ESRCH)
    );
    // A free frame or a non-RAM frame.
    assert_eq!(
        upd(&mut m, D1, s.l1, 20, pte(Mfn::new(2000), PRO)),
        Err(Errno::EBUSY)
    );
    assert_eq!(
        upd(&mut m, D1, s.l1, 20, pte(Mfn::new(1 << 20), PRO)),
        Err(Errno::EPERM)
    );
    // A PT update into another domain's table: EPERM (XSM on PFD) for the guest.
    assert_eq!(
        upd_cmd(
            &mut m,
            D2,
            false,
            s.l1,
            20,
            0,
            0,
            (u32::from(D1.get()) + 1) << 16 | SELF_FD
        ),
        Err(Errno::EPERM)
    );
    // ... and EINVAL when the table frame is not the PT owner's.
    assert_eq!(upd(&mut m, D2, s.l1, 20, 0), Err(Errno::EINVAL));
    ok(&m);
}

#[test]
fn the_privileged_toolstack_maps_foreign_frames_only_as_fd() {
    let mut m = machine();
    let tool = pinned_space(&mut m, D0, 0, 1);
    let g = pinned_space(&mut m, D2, 0, 1);
    let fd = u32::from(D2.get());
    // dom0, FD = domU: allowed, RW takes a writable reference on the guest's frame.
    upd_cmd(&mut m, D0, true, tool.l1, 30, pte(g.data[0], PRW), 0, fd).unwrap();
    assert_eq!(info(&m, g.data[0]).type_count, 2);
    // ...but never a writable mapping of the guest's page tables.
    assert_eq!(
        upd_cmd(&mut m, D0, true, tool.l1, 31, pte(g.l1, PRW), 0, fd),
        Err(Errno::EBUSY)
    );
    upd_cmd(&mut m, D0, true, tool.l1, 31, pte(g.l1, PRO), 0, fd).unwrap();
    // dom0 with FD = self naming the guest's frame: refused like anyone else.
    assert_eq!(
        upd(&mut m, D0, tool.l1, 32, pte(g.data[0], PRO)),
        Err(Errno::EBUSY)
    );
    // FD = DOMID_XEN: the M2P, read-only.
    let xen = u32::from(DomId::XEN.get());
    upd_cmd(&mut m, D0, true, tool.l1, 33, pte(Mfn::new(3), PRO), 0, xen).unwrap();
    assert_eq!(
        upd_cmd(&mut m, D0, true, tool.l1, 34, pte(Mfn::new(3), PRW), 0, xen),
        Err(Errno::EBUSY)
    );
    assert_eq!(
        upd_cmd(&mut m, D1, false, tool.l1, 34, 0, 0, xen),
        Err(Errno::EPERM)
    );
    // Writing the guest's own tables as PFD: the domain builder's path.
    let pfd = (u32::from(D2.get()) + 1) << 16 | fd;
    let spare = populate(&mut m, D2, 50, 1)[0];
    upd_cmd(&mut m, D0, true, g.l1, 40, pte(spare, PRW), 0, pfd).unwrap();
    // FD != PFD is refused for L2..L4 updates.
    assert_eq!(
        upd_cmd(
            &mut m,
            D0,
            true,
            g.l2,
            5,
            0,
            0,
            (u32::from(D2.get()) + 1) << 16 | SELF_FD
        ),
        Err(Errno::EINVAL)
    );
    ok(&m);
    // Destroying the guest leaves the frames dom0 maps lingering, then they go.
    let free = m.free_frames();
    assert!(m.destroy_domain(D2) > 0);
    assert!(m.domain_dying(D2));
    m.check_invariants(&[], &[D0, D1]).unwrap();
    for slot in [30, 31, 33] {
        upd(&mut m, D0, tool.l1, slot, 0).unwrap();
    }
    assert!(!m.domain_dying(D2));
    assert!(m.free_frames() > free);
    m.check_invariants(&[], &[D0, D1]).unwrap();
}

#[test]
fn xen_l4_slots_belong_to_xen() {
    let mut m = machine();
    let s = build_space(&mut m, D1, 0, 1);
    // Whatever the guest left in 256..=271 is ignored by validation and zeroed.
    set(&mut m, s.l4, 256, pte(s.data[0], PRW));
    set(&mut m, s.l4, 271, 0xdead_beef_0000_0007);
    m.pin(D1, false, DomId::SELF, s.l4, PageType::L4).unwrap();
    assert_eq!(get(&m, s.l4, 256), 0);
    assert_eq!(get(&m, s.l4, 271), 0);
    assert_eq!(
        info(&m, s.data[0]).type_count,
        1,
        "slot 256 took no reference"
    );
    for slot in [256, 260, 271] {
        assert_eq!(
            upd(&mut m, D1, s.l4, slot, pte(s.l3, PRO)),
            Err(Errno::EINVAL)
        );
        assert_eq!(upd(&mut m, D1, s.l4, slot, 0), Err(Errno::EINVAL));
        assert_eq!(
            upd(&mut m, D0, s.l4, slot, 0),
            Err(Errno::EINVAL),
            "not even dom0 as PFD"
        );
    }
    upd(&mut m, D1, s.l4, 255, 0).unwrap();
    upd(&mut m, D1, s.l4, 272, 0).unwrap();
    ok(&m);
}

#[test]
fn pse_and_disallowed_flags_are_refused() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 2);
    let spare_l1 = populate(&mut m, D1, 100, 1)[0];
    for (tab, slot, target) in [(s.l2, 1, spare_l1), (s.l3, 2, s.l2), (s.l4, 3, s.l3)] {
        for bad in [PTE_PSE, PTE_PWT, PTE_PCD, PTE_GLOBAL] {
            assert_eq!(
                upd(&mut m, D1, tab, slot, pte(target, PRO | bad)),
                Err(Errno::EINVAL),
                "{bad:#x}"
            );
        }
    }
    for bad in [PTE_PWT, PTE_PCD, PTE_PSE /* PAT */] {
        assert_eq!(
            upd(&mut m, D1, s.l1, 0, pte(s.data[0], PRW | bad)),
            Err(Errno::EINVAL)
        );
    }
    // G, NX, the software bits and bit 62 are fine in an L1.
    upd(
        &mut m,
        D1,
        s.l1,
        0,
        pte(
            s.data[0],
            PRW | PTE_GLOBAL | PTE_GNTTAB | crate::abi::mm::PTE_NX | 0xe00,
        ),
    )
    .unwrap();
    // A bad entry found by validation fails the pin with EINVAL too.
    let t = populate(&mut m, D1, 101, 1)[0];
    set(&mut m, t, 0, pte(spare_l1, PRO | PTE_PSE));
    assert_eq!(
        m.pin(D1, false, DomId::SELF, t, PageType::L2),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        info(&m, t).ty,
        PageType::None,
        "failed validation leaves the frame untyped"
    );
    assert_eq!(info(&m, spare_l1).type_count, 0);
    ok(&m);
}

#[test]
fn failed_validation_is_undone() {
    let mut m = machine();
    let s = build_space(&mut m, D1, 0, 3);
    let theirs = populate(&mut m, D2, 0, 1)[0];
    set(&mut m, s.l1, 40, pte(theirs, PRO)); // the last entry is bad
    assert_eq!(
        m.pin(D1, false, DomId::SELF, s.l4, PageType::L4),
        Err(Errno::EBUSY)
    );
    for tab in s.tables() {
        assert_eq!(info(&m, tab).type_count, 0);
        assert_eq!(info(&m, tab).count, 1);
    }
    for &d in &s.data {
        assert_eq!((info(&m, d).type_count, info(&m, d).count), (0, 1));
    }
    ok(&m);
}

#[test]
fn linear_page_tables_only_read_only() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 1);
    // A read-only self-map is fine and takes no reference.
    let before = info(&m, s.l4);
    upd(&mut m, D1, s.l4, 300, pte(s.l4, PRO)).unwrap();
    assert_eq!(info(&m, s.l4).count, before.count);
    assert_eq!(info(&m, s.l4).type_count, before.type_count);
    // A writable one would give the guest its own PTEs.
    assert_eq!(
        upd(&mut m, D1, s.l4, 301, pte(s.l4, PRW)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        upd(&mut m, D1, s.l2, 100, pte(s.l2, PRW)),
        Err(Errno::EINVAL)
    );
    upd(&mut m, D1, s.l2, 100, pte(s.l2, PRO)).unwrap();
    ok(&m);
    // Linear to another validated L2: RO takes general + L2 references.
    let s2 = pinned_space(&mut m, D1, 50, 1);
    upd(&mut m, D1, s.l2, 101, pte(s2.l2, PRO)).unwrap();
    let f = info(&m, s2.l2);
    assert_eq!((f.type_count, f.linear), (2, -1));
    assert_eq!(info(&m, s.l2).linear, 1);
    ok(&m);
    // s2's L2 is now a linear target: it may not hold linear entries of its own.
    assert_eq!(
        upd(&mut m, D1, s2.l2, 102, pte(s.l2, PRO)),
        Err(Errno::EINVAL)
    );
    // An unvalidated same-level frame is not accepted.
    let raw = populate(&mut m, D1, 90, 1)[0];
    assert_eq!(
        upd(&mut m, D1, s.l2, 103, pte(raw, PRO)).map(|()| info(&m, raw).ty),
        Ok(PageType::L1)
    );
    upd(&mut m, D1, s.l2, 103, 0).unwrap();
    upd(&mut m, D1, s.l2, 101, 0).unwrap();
    assert_eq!(info(&m, s2.l2).linear, 0);
    ok(&m);
}

#[test]
fn preserve_ad_keeps_accessed_and_dirty() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 2);
    upd(
        &mut m,
        D1,
        s.l1,
        0,
        pte(s.data[0], PRW | PTE_ACCESSED | PTE_DIRTY),
    )
    .unwrap();
    upd_cmd(
        &mut m,
        D1,
        false,
        s.l1,
        0,
        pte(s.data[0], PRW),
        MMU_PT_UPDATE_PRESERVE_AD,
        SELF_FD,
    )
    .unwrap();
    assert_eq!(
        get(&m, s.l1, 0),
        pte(s.data[0], PRW | PTE_ACCESSED | PTE_DIRTY)
    );
    upd(&mut m, D1, s.l1, 0, pte(s.data[0], PRW)).unwrap();
    assert_eq!(get(&m, s.l1, 0), pte(s.data[0], PRW));
    // Remapping to another frame with PRESERVE_AD also keeps the old A/D.
    upd(&mut m, D1, s.l1, 0, pte(s.data[0], PRO | PTE_ACCESSED)).unwrap();
    upd_cmd(
        &mut m,
        D1,
        false,
        s.l1,
        0,
        pte(s.data[1], PRO),
        MMU_PT_UPDATE_PRESERVE_AD,
        SELF_FD,
    )
    .unwrap();
    assert_eq!(get(&m, s.l1, 0), pte(s.data[1], PRO | PTE_ACCESSED));
    ok(&m);
}

#[test]
fn machphys_update_only_for_the_callers_frames() {
    let mut m = machine();
    let mine = populate(&mut m, D1, 0, 1)[0];
    let theirs = populate(&mut m, D2, 0, 1)[0];
    let req = |mfn: Mfn, pfn: u64| {
        [MmuUpdate {
            ptr: mfn.to_addr() | MMU_MACHPHYS_UPDATE,
            val: pfn,
        }]
    };
    let mut done = 0;
    m.mmu_update(D1, false, &req(mine, 9), SELF_FD, &mut done)
        .unwrap();
    assert_eq!(
        (m.m2p(mine), m.p2m(D1, Pfn::new(9)), m.p2m(D1, Pfn::new(0))),
        (Pfn::new(9), Some(mine), None)
    );
    assert_eq!(
        m.mmu_update(D1, false, &req(theirs, 9), SELF_FD, &mut done),
        Err(Errno::EINVAL)
    );
    assert_eq!(done, 0);
    assert_eq!(m.set_m2p(D1, theirs, Pfn::new(3)), Err(Errno::EINVAL));
    assert_eq!(
        m.mmu_update(D1, false, &req(theirs, 9), u32::from(D2.get()), &mut done),
        Err(Errno::EPERM)
    );
    // With a foreign PFD: EPERM even for dom0.
    assert_eq!(
        m.mmu_update(
            D0,
            true,
            &req(theirs, 9),
            (u32::from(D2.get()) + 1) << 16 | u32::from(D2.get()),
            &mut done
        ),
        Err(Errno::EPERM)
    );
    // dom0 as FD: fine.
    m.mmu_update(D0, true, &req(theirs, 5), u32::from(D2.get()), &mut done)
        .unwrap();
    assert_eq!(m.p2m(D2, Pfn::new(5)), Some(theirs));
    // Unknown commands.
    assert_eq!(
        m.mmu_update(
            D1,
            false,
            &[MmuUpdate {
                ptr: mine.to_addr() | 5,
                val: 0
            }],
            SELF_FD,
            &mut done
        ),
        Err(Errno::ENOSYS)
    );
    ok(&m);
}

#[test]
fn mmu_update_batches_stop_at_the_first_failure() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 1);
    let reqs = [
        MmuUpdate {
            ptr: s.l1.to_addr() + 8 * 50,
            val: pte(s.data[0], PRO),
        },
        MmuUpdate {
            ptr: s.l1.to_addr() + 8 * 51,
            val: pte(s.l1, PRW),
        },
        MmuUpdate {
            ptr: s.l1.to_addr() + 8 * 52,
            val: pte(s.data[0], PRO),
        },
    ];
    let mut done = 0;
    assert_eq!(
        m.mmu_update(D1, false, &reqs, SELF_FD, &mut done),
        Err(Errno::EBUSY)
    );
    assert_eq!(done, 1);
    assert_ne!(get(&m, s.l1, 50), 0);
    assert_eq!(get(&m, s.l1, 52), 0);
    ok(&m);
}

#[test]
fn pt_updates_to_plain_and_descriptor_pages() {
    let mut m = machine();
    let f = populate(&mut m, D1, 0, 2);
    // An untyped frame: a plain store through a temporary writable reference.
    upd(&mut m, D1, f[0], 3, 0x1234_5678).unwrap();
    assert_eq!(get(&m, f[0], 3), 0x1234_5678);
    assert_eq!(info(&m, f[0]).type_count, 0);
    // A GDT page in use: refused.
    m.get_page_and_type(f[1], D1, PageType::SegDesc).unwrap();
    assert_eq!(upd(&mut m, D1, f[1], 0, 0), Err(Errno::EINVAL));
    m.check_invariants(&[(f[1], PageType::SegDesc)], &LIVE)
        .unwrap();
    m.put_page_and_type(f[1]);
    ok(&m);
}

#[test]
fn descriptor_pages_are_checked() {
    let mut m = machine();
    let f = populate(&mut m, D1, 0, 1)[0];
    // A flat 64-bit code segment and a call gate pass; a present TSS does not.
    set(&mut m, f, 0, 0x00af_fa00_0000_ffff);
    set(&mut m, f, 1, 0x0000_ec00_e033_0000);
    m.get_page_and_type(f, D1, PageType::SegDesc).unwrap();
    m.put_page_and_type(f);
    // Unused, the page stays validated (Xen keeps PGT_validated on descriptor pages),
    // but any store to it (here through mmu_update's writable path) forgets that.
    assert!(info(&m, f).validated);
    upd(&mut m, D1, f, 2, 0x0000_8900_0000_0067).unwrap();
    assert_eq!(
        m.get_page_and_type(f, D1, PageType::SegDesc),
        Err(Errno::EINVAL)
    );
    // A raw guest store (e.g. a toolstack foreign write) does too.
    set(&mut m, f, 2, 0);
    m.get_page_and_type(f, D1, PageType::SegDesc).unwrap();
    m.put_page_and_type(f);
    set(&mut m, f, 2, 0x0000_8900_0000_0067);
    assert_eq!(
        m.get_page_and_type(f, D1, PageType::SegDesc),
        Err(Errno::EINVAL)
    );
    ok(&m);
}

#[test]
fn roots_held_by_the_model() {
    let mut m = machine();
    let s = build_space(&mut m, D1, 0, 1);
    // NEW_BASEPTR on an unpinned L4 validates it.
    m.get_page_and_type(s.l4, D1, PageType::L4).unwrap();
    assert_eq!(info(&m, s.l3).ty, PageType::L3);
    assert!(
        m.check_invariants(&[], &LIVE).is_err(),
        "the root reference must be declared"
    );
    m.check_invariants(&[(s.l4, PageType::L4)], &LIVE).unwrap();
    assert_eq!(
        m.get_page_and_type(s.l4, D2, PageType::L4),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.get_page_and_type(s.data[0], D1, PageType::L4),
        Err(Errno::EINVAL)
    );
    m.put_page_and_type(s.l4);
    assert_eq!(info(&m, s.l3).type_count, 0);
    m.put_page_and_type(s.l4); // misuse: ignored
    ok(&m);
    m.get_page(s.l1, D1).unwrap();
    m.check_invariants(&[(s.l1, PageType::None)], &LIVE)
        .unwrap();
    m.put_page(s.l1).unwrap();
    ok(&m);
}

#[test]
fn update_va_mapping_needs_an_l1() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 2);
    m.update_va_mapping(D1, s.l4, Space::va(0), pte(s.data[1], PRO))
        .unwrap();
    assert_eq!(get(&m, s.l1, 0), pte(s.data[1], PRO));
    assert_eq!(info(&m, s.data[0]).type_count, 0);
    // No L2 entry for this VA / Xen's range / non-canonical.
    assert_eq!(
        m.update_va_mapping(D1, s.l4, 0x8000_0000, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.update_va_mapping(D1, s.l4, 0xffff_8000_0000_0000, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.update_va_mapping(D1, s.l4, 0x8000_0000_0000, 0),
        Err(Errno::EINVAL)
    );
    // Another domain's CR3 / frame.
    assert_eq!(
        m.update_va_mapping(D2, s.l4, Space::va(0), 0),
        Err(Errno::EINVAL)
    );
    let theirs = populate(&mut m, D2, 0, 1)[0];
    assert_eq!(
        m.update_va_mapping(D1, s.l4, Space::va(0), pte(theirs, PRO)),
        Err(Errno::EBUSY)
    );
    assert_eq!(
        m.update_va_mapping_otherdomain(D1, false, s.l4, Space::va(0), pte(theirs, PRO), D2),
        Err(Errno::EPERM)
    );
    // An L1 reached through the tables but not validated as one.
    let s2 = build_space(&mut m, D1, 100, 1);
    assert_eq!(
        m.update_va_mapping(D1, s2.l4, Space::va(0), 0),
        Err(Errno::EINVAL)
    );
    ok(&m);
}

#[test]
fn clear_and_copy_page_need_a_writable_type() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 2);
    m.guest_write(s.data[0], 0, b"hello").unwrap();
    m.copy_page(D1, s.data[1], s.data[0]).unwrap();
    assert_eq!(&m.page(s.data[1]).unwrap()[..5], b"hello");
    m.clear_page(D1, s.data[0]).unwrap();
    assert_eq!(&m.page(s.data[0]).unwrap()[..5], &[0; 5]);
    assert_eq!(m.clear_page(D1, s.l1), Err(Errno::EINVAL));
    assert_eq!(m.copy_page(D1, s.l2, s.data[1]), Err(Errno::EINVAL));
    // The source may be a page table (it is only read).
    m.copy_page(D1, s.data[0], s.l1).unwrap();
    let theirs = populate(&mut m, D2, 0, 1)[0];
    assert_eq!(m.clear_page(D1, theirs), Err(Errno::EINVAL));
    assert_eq!(m.copy_page(D1, s.data[0], theirs), Err(Errno::EINVAL));
    ok(&m);
}

#[test]
fn mmuext_owner_rules() {
    let mut m = machine();
    let g = build_space(&mut m, D2, 0, 1);
    assert_eq!(m.pin(D1, false, D2, g.l4, PageType::L4), Err(Errno::EPERM));
    assert_eq!(
        m.pin(D1, false, DomId::new(42), g.l4, PageType::L4),
        Err(Errno::ESRCH)
    );
    assert_eq!(
        m.pin(D1, false, DomId::SELF, g.l4, PageType::L4),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.pin(D0, true, D2, g.l4, PageType::Writable),
        Err(Errno::EINVAL)
    );
    m.pin(D0, true, D2, g.l4, PageType::L4).unwrap();
    assert_eq!(
        m.mmuext_pg_owner(D1, false, u32::from(D1.get())),
        Err(Errno::ESRCH)
    );
    assert_eq!(m.mmuext_pg_owner(D1, false, SELF_FD), Ok(D1));
    assert_eq!(
        m.mmuext_pg_owner(D1, false, u32::from(D2.get())),
        Err(Errno::EPERM)
    );
    assert_eq!(m.mmuext_pg_owner(D0, true, u32::from(D2.get())), Ok(D2));
    m.unpin(D0, true, D2, g.l4).unwrap();
    ok(&m);
}

#[test]
fn page_type_info_words() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 1);
    assert_eq!(
        m.page_type_info(D1, s.l4),
        XEN_DOMCTL_PFINFO_L4TAB | XEN_DOMCTL_PFINFO_LPINTAB
    );
    assert_eq!(m.page_type_info(D1, s.l2), XEN_DOMCTL_PFINFO_L2TAB);
    assert_eq!(m.page_type_info(D1, s.l1), XEN_DOMCTL_PFINFO_L1TAB);
    assert_eq!(m.page_type_info(D1, s.data[0]), XEN_DOMCTL_PFINFO_NOTAB);
    assert_eq!(m.page_type_info(D2, s.l4), XEN_DOMCTL_PFINFO_XTAB);
    assert_eq!(m.page_type_info(D1, Mfn::new(5000)), XEN_DOMCTL_PFINFO_XTAB);
    assert_eq!(m.page_type_info(D1, Mfn::new(2000)), XEN_DOMCTL_PFINFO_XTAB);
    let shinfo = m.alloc_xen_page(D1).unwrap();
    assert_eq!(m.page_type_info(D1, shinfo), XEN_DOMCTL_PFINFO_XTAB);
    // An unpinned, devalidated table reads NOTAB (its type is still L1).
    m.unpin(D1, false, DomId::SELF, s.l4).unwrap();
    assert_eq!(info(&m, s.l1).ty, PageType::L1);
    assert_eq!(m.page_type_info(D1, s.l1), XEN_DOMCTL_PFINFO_NOTAB);
    ok(&m);
}

#[test]
fn xen_heap_pages() {
    let mut m = machine();
    let free = m.free_frames();
    let si = m.alloc_xen_page(D1).unwrap();
    assert_eq!(m.tot_pages(D1), 0);
    assert_eq!(m.domain_frames(D1).collect::<Vec<_>>(), [si]);
    let s = pinned_space(&mut m, D1, 0, 1);
    // The guest may map its shared_info writable; it can never become a page table.
    upd(&mut m, D1, s.l1, 60, pte(si, PRW)).unwrap();
    assert_eq!(
        m.pin(D1, false, DomId::SELF, si, PageType::L1),
        Err(Errno::EINVAL)
    );
    assert_eq!(m.foreign_write_check(D1, si), Ok(()));
    ok(&m);
    m.unpin(D1, false, DomId::SELF, s.l4).unwrap();
    assert_eq!(m.destroy_domain(D1), 0);
    assert_eq!(m.free_frames(), free);
    m.check_invariants(&[], &[D0, D2]).unwrap();
}

// ---------------------------------------------------------------------------------
// Destruction.

#[test]
fn destroy_frees_everything() {
    let mut m = machine();
    let free = m.free_frames();
    let s = pinned_space(&mut m, D1, 0, 5);
    let s2 = pinned_space(&mut m, D1, 20, 3);
    // Some extra shape: a pinned L1 of its own, a linear entry, an RO self-map, a GDT.
    m.pin(D1, false, DomId::SELF, s2.l1, PageType::L1).unwrap();
    upd(&mut m, D1, s.l2, 100, pte(s2.l2, PRO)).unwrap();
    upd(&mut m, D1, s.l4, 300, pte(s.l4, PRO)).unwrap();
    m.alloc_xen_page(D1).unwrap();
    m.logdirty_enable(D1).unwrap();
    let gdt = populate(&mut m, D1, 40, 1)[0];
    m.get_page_and_type(gdt, D1, PageType::SegDesc).unwrap();
    m.get_page_and_type(s2.l4, D1, PageType::L4).unwrap();
    m.check_invariants(&[(gdt, PageType::SegDesc), (s2.l4, PageType::L4)], &LIVE)
        .unwrap();
    // The model drops its own references first, as Xen's vcpu_destroy_pagetables.
    m.put_page_and_type(gdt);
    m.put_page_and_type(s2.l4);
    assert_eq!(m.destroy_domain(D1), 0);
    assert!(!m.domain_exists(D1));
    assert_eq!(m.free_frames(), free);
    assert_eq!(m.domain_frames(D1).count(), 0);
    m.check_invariants(&[], &[D0, D2]).unwrap();
    // The id may be reused.
    m.add_domain(D1).unwrap();
}

#[test]
fn destroy_with_roots_still_held_lingers_until_they_go() {
    let mut m = machine();
    let free = m.free_frames();
    let s = pinned_space(&mut m, D1, 0, 2);
    m.get_page_and_type(s.l4, D1, PageType::L4).unwrap();
    let left = m.destroy_domain(D1);
    assert_eq!(left, 1, "only the CR3 frame is still referenced");
    assert!(m.domain_dying(D1));
    m.check_invariants(&[(s.l4, PageType::L4)], &[D0, D2])
        .unwrap();
    assert_eq!(
        m.get_page_and_type(s.l4, D1, PageType::L4),
        Err(Errno::EINVAL)
    );
    m.put_page_and_type(s.l4);
    assert!(!m.domain_dying(D1));
    assert_eq!(m.free_frames(), free);
    m.check_invariants(&[], &[D0, D2]).unwrap();
}

// ---------------------------------------------------------------------------------
// Stores, log-dirty, generations.

fn peek(m: &mut Memory, dom: DomId, pages: u64) -> (Vec<u64>, LogDirtyStats) {
    let mut bm = vec![0u8; pages.div_ceil(8) as usize];
    let mut p = pages;
    let st = m.logdirty_peek(dom, Some(&mut bm), &mut p).unwrap();
    assert_eq!(p, pages);
    let set = (0..pages)
        .filter(|&i| bm[(i / 8) as usize] & (1 << (i % 8)) != 0)
        .collect();
    (set, st)
}

#[test]
fn logdirty_marks_exactly_the_written_pfns() {
    let mut m = machine();
    let f = populate(&mut m, D1, 0, 8);
    m.guest_write(f[1], 0, b"x").unwrap(); // before enabling: not recorded
    m.logdirty_enable(D1).unwrap();
    assert_eq!(m.logdirty_enable(D1), Err(Errno::EINVAL));
    m.guest_write(f[3], 10, b"x").unwrap();
    m.guest_write(f[3], 20, b"y").unwrap();
    m.guest_write(f[6], 0, b"z").unwrap();
    let (set, st) = peek(&mut m, D1, 16);
    assert_eq!(set, [3, 6]);
    assert_eq!(
        st,
        LogDirtyStats {
            fault_count: 2,
            dirty_count: 2
        }
    );
    // PEEK does not clear.
    assert_eq!(peek(&mut m, D1, 16).0, [3, 6]);
    // CLEAN reports then clears.
    let mut bm = [0u8; 2];
    let mut p = 16;
    let st = m.logdirty_clean(D1, Some(&mut bm), &mut p, false).unwrap();
    assert_eq!((bm, st.dirty_count), ([0b0100_1000, 0], 2));
    assert_eq!(peek(&mut m, D1, 16), (vec![], LogDirtyStats::default()));
    // Writes after CLEAN are recorded again (the per-frame cache is per epoch).
    m.guest_write(f[3], 0, b"again").unwrap();
    assert_eq!(peek(&mut m, D1, 16).0, [3]);
    // A frame without a valid M2P entry is not recorded; MACHPHYS marks the new PFN.
    m.set_m2p(D1, f[5], Pfn::INVALID).unwrap();
    m.guest_write(f[5], 0, b"q").unwrap();
    assert_eq!(peek(&mut m, D1, 16).0, [3]);
    m.set_m2p(D1, f[5], Pfn::new(12)).unwrap();
    assert_eq!(peek(&mut m, D1, 16).0, [3, 12]);
    // Other domains' writes do not appear; a short bitmap is EFAULT; null only counts.
    let g = populate(&mut m, D2, 0, 1)[0];
    m.guest_write(g, 0, b"other").unwrap();
    assert_eq!(peek(&mut m, D1, 16).0, [3, 12]);
    let mut p = 17;
    assert_eq!(
        m.logdirty_peek(D1, Some(&mut [0u8; 2]), &mut p),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        m.logdirty_peek(D1, None, &mut p).map(|s| s.dirty_count),
        Ok(2)
    );
    m.logdirty_disable(D1);
    assert_eq!(peek(&mut m, D1, 16).0, Vec::<u64>::new());
    ok(&m);
}

#[test]
fn logdirty_sees_page_table_and_pin_activity() {
    let mut m = machine();
    let s = build_space(&mut m, D1, 0, 1);
    m.logdirty_enable(D1).unwrap();
    m.pin(D1, false, DomId::SELF, s.l4, PageType::L4).unwrap();
    // Validation dirties every table, the pin dirties the L4.
    assert_eq!(peek(&mut m, D1, 8).0, [0, 1, 2, 3]);
    let mut p = 8;
    m.logdirty_clean(D1, None, &mut p, false).unwrap();
    upd(&mut m, D1, s.l1, 9, 0).unwrap();
    m.clear_page(D1, s.data[0]).unwrap();
    assert_eq!(peek(&mut m, D1, 8).0, [3, 4]);
    ok(&m);
}

#[test]
fn clean_clears_whole_leaves_it_visits() {
    let mut m = machine();
    let f = populate(&mut m, D1, 0, 2)[0];
    m.logdirty_enable(D1).unwrap();
    for pfn in [5u64, 40_000, 70_000] {
        m.set_m2p(D1, f, Pfn::new(pfn)).unwrap();
    }
    // pages = 10: only leaf 0 (PFNs 0..32768) is visited and cleared.
    let mut bm = [0u8; 2];
    let mut p = 10;
    m.logdirty_clean(D1, Some(&mut bm), &mut p, false).unwrap();
    assert_eq!(bm, [1 << 5, 0]);
    let mut bm = vec![0u8; 80_000 / 8];
    let mut p = 80_000;
    m.logdirty_peek(D1, Some(&mut bm), &mut p).unwrap();
    assert_eq!(bm[40_000 / 8], 1, "leaf 1 kept");
    assert_eq!(bm[70_000 / 8], 1, "leaf 2 kept");
    assert_eq!(bm[0], 0);
}

#[test]
fn guest_write_checks_and_generations() {
    let mut m = machine();
    let f = populate(&mut m, D1, 0, 1)[0];
    assert_eq!(m.guest_write(f, 4090, &[0; 7]), Err(Errno::EINVAL));
    assert_eq!(
        m.guest_write(Mfn::new(1 << 40), 0, &[0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.guest_write(Mfn::new(2000), 0, &[0]),
        Err(Errno::EINVAL),
        "free frame"
    );
    let g0 = m.frame_gen(f);
    m.guest_write(f, 0, &[1]).unwrap();
    assert_eq!(m.frame_gen(f), g0, "not code: no bump");
    m.mark_code(f);
    m.guest_write(f, 0, &[2]).unwrap();
    assert_eq!(m.frame_gen(f), g0 + 1);
    m.guest_write(f, 0, &[3]).unwrap();
    assert_eq!(m.frame_gen(f), g0 + 1, "once per mark");
    m.mark_code(f);
    m.page_mut_raw(f).unwrap()[0] = 4;
    assert_eq!(m.frame_gen(f), g0 + 2, "Xen's own stores count too");
    m.mark_code(f);
    assert_eq!(m.decrease_reservation(D1, &[f.get()], 0), Ok(1));
    assert_eq!(m.frame_gen(f), g0 + 3, "freeing changes the contents");
}

#[test]
fn foreign_write_check_refuses_page_tables_in_use() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 1);
    for t in s.tables() {
        assert_eq!(m.foreign_write_check(D1, t), Err(Errno::EBUSY));
        assert_eq!(m.foreign_read_check(D1, t), Ok(()));
    }
    assert_eq!(m.foreign_write_check(D1, s.data[0]), Ok(()));
    assert_eq!(m.foreign_write_check(D2, s.data[0]), Err(Errno::EBUSY));
    assert_eq!(
        m.foreign_read_check(D1, Mfn::new(1 << 30)),
        Err(Errno::EPERM)
    );
    // Unpinned (type count 0): the restore path writes tables before pinning them.
    m.unpin(D1, false, DomId::SELF, s.l4).unwrap();
    assert_eq!(m.foreign_write_check(D1, s.l4), Ok(()));
}

#[test]
fn l1_entries_for_non_present_and_fast_path() {
    let mut m = machine();
    let s = pinned_space(&mut m, D1, 0, 1);
    // Non-present entries may hold anything (no references).
    upd(&mut m, D1, s.l1, 70, 0xffff_ffff_ffff_fffe).unwrap();
    // Fast path: flipping A/D/US/NX keeps the references untouched.
    let before = info(&m, s.data[0]);
    upd(
        &mut m,
        D1,
        s.l1,
        0,
        pte(
            s.data[0],
            PTE_PRESENT | PTE_RW | PTE_DIRTY | crate::abi::mm::PTE_NX,
        ),
    )
    .unwrap();
    assert_eq!(info(&m, s.data[0]), before);
    // RW → RO drops the writable reference.
    upd(&mut m, D1, s.l1, 0, pte(s.data[0], PRO)).unwrap();
    assert_eq!(info(&m, s.data[0]).type_count, 0);
    assert_eq!(get(&m, s.l1, 0) & PTE_RW, 0);
    ok(&m);
}
