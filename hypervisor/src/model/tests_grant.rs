//! Grant tables, `XENMEM_acquire_resource`, xenstored's INTRODUCE through grant entry
//! 1, and getdomaininfo's shutdown-code bits, against Xen 4.17's behaviour.

use zerocopy::IntoBytes;

use crate::abi::domctl::{self as dc, XenDomctl};
use crate::abi::sched as sch;
use crate::error::Errno;
use crate::model::domain::CreateDomain;
use crate::model::testkit::MiniGuest;
use crate::model::{Model, ModelConfig};
use crate::types::{DomId, Mfn, Port, PAGE_SIZE};
use crate::xen::{
    GrantEntryV1, Xen, GNTTAB_RESERVED_XENSTORE, GTF_PERMIT_ACCESS, GTF_READONLY,
    XENMEM_RESOURCE_GRANT_TABLE as GT, XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED as SHARED,
    XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS as STATUS,
};

fn host() -> Model {
    Model::new(ModelConfig {
        machine_frames: 8192,
    })
}

/// Writes grant entry `index` of `dom`'s frame 0 through the toolstack's interface.
pub(crate) fn set_entry(m: &mut Model, dom: DomId, index: usize, e: GrantEntryV1) {
    let mut page = vec![0u8; PAGE_SIZE];
    m.resource_read(dom, GT, SHARED, 0, &mut page).unwrap();
    page[index * 8..index * 8 + 8].copy_from_slice(&e.to_bytes());
    m.resource_write(dom, GT, SHARED, 0, &page).unwrap();
}

/// Seeds entry 1 as libxc does: permit_access, dom0, the ring's MFN.
pub(crate) fn seed_store(m: &mut Model, dom: DomId, ring: Mfn) {
    set_entry(
        m,
        dom,
        GNTTAB_RESERVED_XENSTORE as usize,
        GrantEntryV1 {
            flags: GTF_PERMIT_ACCESS,
            domid: 0,
            frame: u32::try_from(ring.get()).unwrap(),
        },
    );
}

fn errno<T: std::fmt::Debug>(r: Result<T, crate::XenError>) -> Errno {
    r.unwrap_err().errno().expect("a Xen errno")
}

fn store_port(m: &mut Model, dom: DomId) -> Port {
    m.evtchn_alloc_unbound(dom, DomId::SELF, DomId::DOM0)
        .unwrap()
}

#[test]
fn a_new_domain_has_one_zeroed_grant_frame_and_grows_to_the_frame_asked_for() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let d = m.domain(g.dom).unwrap();
    // grant_table_init: INITIAL_NR_GRANT_FRAMES (1) allocated, max as created (32).
    assert_eq!(d.grant.frames.len(), 1);
    assert_eq!(d.grant.max_frames, 32);
    let mut page = vec![0xaau8; PAGE_SIZE];
    m.resource_read(g.dom, GT, SHARED, 0, &mut page).unwrap();
    assert!(
        page.iter().all(|&b| b == 0),
        "a fresh grant frame is zeroed"
    );
    // Acquiring frames 4..=5 grows the table to 6 frames (gnttab_grow_table).
    let free = m.mem.free_frames();
    let mut two = vec![0u8; 2 * PAGE_SIZE];
    m.resource_read(g.dom, GT, SHARED, 4, &mut two).unwrap();
    assert_eq!(m.domain(g.dom).unwrap().grant.frames.len(), 6);
    assert_eq!(
        m.mem.free_frames(),
        free - 5,
        "five Xen-heap frames allocated"
    );
    m.check_invariants().unwrap();
    // Frames are owned by the domain and come back when it is destroyed.
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_DESTROYDOMAIN, g.dom.get());
    m.domctl(&mut d, &mut []).unwrap();
    assert!(m.domain(g.dom).is_err());
    m.check_invariants().unwrap();
    let fresh = host();
    assert_eq!(
        m.mem.free_frames(),
        fresh.mem.free_frames(),
        "every frame, grant frames included, is free again"
    );
}

#[test]
fn resource_writes_land_in_the_grant_frame_and_read_back() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let mut page = vec![0u8; PAGE_SIZE];
    for (i, b) in page.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    m.resource_write(g.dom, GT, SHARED, 0, &page).unwrap();
    let mfn = m.domain(g.dom).unwrap().grant.frames[0];
    assert_eq!(&m.mem.page(mfn).unwrap()[..], &page[..], "the frame itself");
    let mut back = vec![0u8; PAGE_SIZE];
    m.resource_read(g.dom, GT, SHARED, 0, &mut back).unwrap();
    assert_eq!(back, page);
    m.check_invariants().unwrap();
}

#[test]
fn acquire_resource_fails_as_4_17_does() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let mut page = vec![0u8; PAGE_SIZE];
    let mut rd = |m: &mut Model, dom: u16, ty: u16, id: u32, frame: u64| {
        errno(m.resource_read(DomId::new(dom), ty, id, frame, &mut page))
    };
    // rcu_lock_remote_domain_by_id.
    assert_eq!(rd(&mut m, 77, GT, SHARED, 0), Errno::ESRCH);
    assert_eq!(
        rd(&mut m, 0, GT, SHARED, 0),
        Errno::EPERM,
        "dom0 is the caller"
    );
    let dom = g.dom.get();
    // Unknown type: a nonzero "max" (-EOPNOTSUPP as unsigned), then EOPNOTSUPP.
    assert_eq!(rd(&mut m, dom, 7, 0, 0), Errno::EOPNOTSUPP);
    // ioreq server and vmtrace buffers: none for a PV domain (max 0 → EINVAL).
    assert_eq!(rd(&mut m, dom, 0, 0, 0), Errno::EINVAL);
    assert_eq!(rd(&mut m, dom, 2, 0, 0), Errno::EINVAL);
    // Status frames need a v2 table; other ids are no resource at all.
    assert_eq!(rd(&mut m, dom, GT, STATUS, 0), Errno::EINVAL);
    assert_eq!(rd(&mut m, dom, GT, 2, 0), Errno::EINVAL);
    // Beyond max_grant_frames (32), and frame numbers that do not fit 32 bits.
    assert_eq!(rd(&mut m, dom, GT, SHARED, 32), Errno::EINVAL);
    assert_eq!(rd(&mut m, dom, GT, SHARED, 1 << 32), Errno::EINVAL);
    assert_eq!(
        rd(&mut m, dom, GT, SHARED, u64::from(u32::MAX)),
        Errno::EINVAL
    );
    // The last frame is fine (and grows the table to the maximum).
    m.resource_read(g.dom, GT, SHARED, 31, &mut page).unwrap();
    assert_eq!(m.domain(g.dom).unwrap().grant.frames.len(), 32);
    // A failed call allocated nothing.
    let free = m.mem.free_frames();
    let _ = m.resource_read(g.dom, GT, SHARED, 32, &mut page);
    assert_eq!(m.mem.free_frames(), free);
    // Buffers that are not whole pages are refused before reaching "Xen".
    assert!(matches!(
        m.resource_read(g.dom, GT, SHARED, 0, &mut []),
        Err(crate::XenError::BadArgument { .. })
    ));
    assert!(matches!(
        m.resource_write(g.dom, GT, SHARED, 0, &[0u8; 100]),
        Err(crate::XenError::BadArgument { .. })
    ));
    m.check_invariants().unwrap();
}

#[test]
fn createdomain_checks_grant_sizes_as_grant_table_init() {
    let mut m = host();
    let req = |grant: i32, maptrack: i32| CreateDomain {
        max_vcpus: 1,
        grant_opts: 1,
        max_evtchn_port: 1023,
        max_grant_frames: grant,
        max_maptrack_frames: maptrack,
        ..CreateDomain::default()
    };
    for (g, t) in [(0, 0), (65, 0), (1, 1025)] {
        assert_eq!(
            m.create_domain(&req(g, t)).unwrap_err(),
            Errno::EINVAL,
            "grant {g}, maptrack {t}"
        );
    }
    assert_eq!(m.domain_ids(), vec![DomId::DOM0], "nothing was created");
    let d = m.create_domain(&req(-1, -1)).unwrap();
    assert_eq!(
        m.domain(d).unwrap().grant.max_frames,
        64,
        "negative: gnttab_max_frames"
    );
    let d = m.create_domain(&req(1, 1024)).unwrap();
    assert_eq!(m.domain(d).unwrap().grant.max_frames, 1);
    m.check_invariants().unwrap();
}

#[test]
fn introduce_maps_the_ring_through_grant_entry_1() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let port = store_port(&mut m, g.dom);
    let ring = g.data[3];
    // Unseeded: xenstored's gntdev mapping fails, INTRODUCE answers EINVAL.
    assert_eq!(errno(m.xs_introduce(g.dom, ring, port)), Errno::EINVAL);
    let entry = |flags: u16, domid: u16, frame: u64| GrantEntryV1 {
        flags,
        domid,
        frame: frame as u32,
    };
    let slot = GNTTAB_RESERVED_XENSTORE as usize;
    for (e, why) in [
        (entry(0, 0, ring.get()), "no GTF_permit_access"),
        (
            entry(GTF_PERMIT_ACCESS, 5, ring.get()),
            "granted to another domain",
        ),
        (
            entry(GTF_PERMIT_ACCESS | GTF_READONLY, 0, ring.get()),
            "read-only",
        ),
        (
            entry(2, 0, ring.get()),
            "GTF_accept_transfer, not permit_access",
        ),
        (
            entry(GTF_PERMIT_ACCESS, 0, 1),
            "a frame the domain does not own",
        ),
    ] {
        set_entry(&mut m, g.dom, slot, e);
        assert_eq!(
            errno(m.xs_introduce(g.dom, ring, port)),
            Errno::EINVAL,
            "{why}"
        );
        assert!(!m.xenstore.is_introduced(g.dom), "{why}");
    }
    // Seeding entry 0 alone (the console) is not enough either.
    set_entry(&mut m, g.dom, slot, GrantEntryV1::default());
    set_entry(&mut m, g.dom, 0, entry(GTF_PERMIT_ACCESS, 0, ring.get()));
    assert_eq!(errno(m.xs_introduce(g.dom, ring, port)), Errno::EINVAL);
    // Seeded: INTRODUCE works, and xenstored serves the grant's frame — not the MFN
    // argument, which 4.17 ignores.
    seed_store(&mut m, g.dom, ring);
    m.xs_introduce(g.dom, g.data[0], port).unwrap();
    assert!(m.xenstore.is_introduced(g.dom));
    assert_eq!(m.services.store[&g.dom].0, ring);
    let served: Vec<_> = m
        .xenstore
        .introduced_domains()
        .into_iter()
        .filter(|&(d, ..)| d == g.dom)
        .collect();
    assert_eq!(served, vec![(g.dom, ring, port)]);
    m.check_invariants().unwrap();
}

#[test]
fn getdomaininfo_flags_carry_shutdown_code_invalid_until_a_shutdown() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let flags = |m: &mut Model| {
        let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, g.dom.get());
        m.domctl(&mut d, &mut []).unwrap();
        d.payload::<dc::DomctlGetDomainInfo>().flags
    };
    // Xen 4.17: shutdown_code = SHUTDOWN_CODE_INVALID (~0u) at creation and
    // getdomaininfo ORs in `shutdown_code << XEN_DOMINF_shutdownshift`.
    assert_eq!(flags(&mut m) & 0xffff_0000, 0xffff_0000);
    assert_eq!(flags(&mut m) & dc::XEN_DOMINF_SHUTDOWN, 0);
    // SCHEDOP_shutdown_code latches the code: the bits change before any shutdown.
    let s = sch::SchedShutdown {
        reason: sch::SHUTDOWN_SUSPEND,
    };
    m.mem.guest_write(g.data[1], 0, s.as_bytes()).unwrap();
    let r = m.hypercall(
        g.dom,
        MiniGuest::vcpu0(),
        crate::abi::hypercall::HYPERVISOR_SCHED_OP,
        [sch::SCHEDOP_SHUTDOWN_CODE, g.va(1), 0, 0, 0],
    );
    assert_eq!(r, crate::model::HypercallOutcome::Return(0));
    let f = flags(&mut m);
    assert_eq!(f >> dc::XEN_DOMINF_SHUTDOWNSHIFT, sch::SHUTDOWN_SUSPEND);
    assert_eq!(f & dc::XEN_DOMINF_SHUTDOWN, 0, "not shut down yet");
    // Shut down (poweroff asked, the latched code wins), then resumed: ~0 again.
    let s = sch::SchedShutdown {
        reason: sch::SHUTDOWN_POWEROFF,
    };
    m.mem.guest_write(g.data[1], 0, s.as_bytes()).unwrap();
    let _ = m.hypercall(
        g.dom,
        MiniGuest::vcpu0(),
        crate::abi::hypercall::HYPERVISOR_SCHED_OP,
        [sch::SCHEDOP_SHUTDOWN, g.va(1), 0, 0, 0],
    );
    let f = flags(&mut m);
    assert_ne!(f & dc::XEN_DOMINF_SHUTDOWN, 0);
    assert_eq!(f >> dc::XEN_DOMINF_SHUTDOWNSHIFT, sch::SHUTDOWN_SUSPEND);
    m.resume_domain(g.dom).unwrap();
    assert_eq!(flags(&mut m) & 0xffff_0000, 0xffff_0000);
}
