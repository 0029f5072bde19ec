//! Model-level tests: domctl/sysctl through the `Xen` trait's ABI bytes, guest
//! hypercalls through guest memory, dom0 services, and a property test of random
//! hypercall sequences (well-behaved and hostile) with the invariant checker after
//! every step.

use zerocopy::{FromZeros, IntoBytes};

use crate::abi::domctl::{self as dc, XenDomctl};
use crate::abi::evtchn as ev;
use crate::abi::hypercall as hc;
use crate::abi::memory as xm;
use crate::abi::mm::{self as abimm, MmuUpdate, MmuextOp};
use crate::abi::sched as sch;
use crate::abi::sysctl::{self as sc, XenSysctl};
use crate::abi::vcpu::{self as vc, VcpuGuestContext};
use crate::error::Errno;
use crate::model::testkit::MiniGuest;
use crate::model::{HypercallOutcome, Model, ModelConfig};
use crate::types::{DomId, Mfn, Port, VcpuId};
use crate::xen::Xen;

fn host() -> Model {
    Model::new(ModelConfig {
        machine_frames: 8192,
    })
}

fn create(
    m: &mut Model,
    domid: u16,
    f: impl FnOnce(&mut dc::DomctlCreateDomain),
) -> Result<u16, Errno> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_CREATEDOMAIN, domid);
    let mut p = dc::DomctlCreateDomain::new_zeroed();
    p.max_vcpus = 1;
    p.grant_opts = 1;
    p.max_grant_frames = 32;
    p.max_evtchn_port = 1023;
    f(&mut p);
    d.set_payload(&p);
    m.domctl(&mut d, &mut [])
        .map_err(|e| e.errno().expect("errno"))?;
    Ok(d.domain)
}

fn domctl(
    m: &mut Model,
    cmd: u32,
    dom: u16,
    payload: &[u8],
    buf: &mut [u8],
) -> Result<XenDomctl, Errno> {
    let mut d = XenDomctl::new(cmd, dom);
    d.u.as_mut_bytes()[..payload.len()].copy_from_slice(payload);
    m.domctl(&mut d, buf)
        .map_err(|e| e.errno().expect("errno"))?;
    Ok(d)
}

fn info(m: &mut Model, dom: u16) -> Result<dc::DomctlGetDomainInfo, Errno> {
    let d = domctl(m, dc::XEN_DOMCTL_GETDOMAININFO, dom, &[], &mut [])?;
    Ok(d.payload())
}

/// Writes `bytes` into a guest's data page `pfn` at `off` (as the guest itself would).
fn poke(m: &mut Model, g: &MiniGuest, pfn: usize, off: usize, bytes: &[u8]) {
    m.mem.guest_write(g.data[pfn], off, bytes).unwrap();
}

fn peek(m: &Model, g: &MiniGuest, pfn: usize, off: usize, len: usize) -> Vec<u8> {
    m.mem.page(g.data[pfn]).expect("page")[off..off + len].to_vec()
}

fn hcall(m: &mut Model, g: &MiniGuest, nr: u64, args: [u64; 5]) -> i64 {
    match m.hypercall(g.dom, VcpuId::new(0), nr, args) {
        HypercallOutcome::Return(v) | HypercallOutcome::Preempt(v) => v,
        HypercallOutcome::NoReturn => panic!("unexpected NoReturn"),
    }
}

#[test]
fn createdomain_validates_as_4_17() {
    let mut m = host();
    assert_eq!(
        create(&mut m, 0, |p| p.flags = 1 << 9),
        Err(Errno::EINVAL),
        "unknown CDF bit"
    );
    assert_eq!(create(&mut m, 0, |p| p.max_vcpus = 0), Err(Errno::EINVAL));
    assert_eq!(create(&mut m, 0, |p| p.grant_opts = 0), Err(Errno::EINVAL));
    assert_eq!(
        create(&mut m, 0, |p| p.grant_opts = 1 | 0x10),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        create(&mut m, 0, |p| p.flags = dc::XEN_DOMCTL_CDF_HAP),
        Err(Errno::EINVAL),
        "hap without hvm"
    );
    assert_eq!(create(&mut m, 0, |p| p.iommu_opts = 1), Err(Errno::EINVAL));
    assert_eq!(
        create(&mut m, 0, |p| p.arch.misc_flags = 2),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        create(&mut m, 0, |p| p.flags = dc::XEN_DOMCTL_CDF_HVM),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        create(&mut m, 0, |p| p.arch.emulation_flags = 1),
        Err(Errno::EOPNOTSUPP)
    );
    // Automatic ids rotate from the last one handed out; exact ids are honoured.
    assert_eq!(create(&mut m, 0, |_| {}), Ok(1));
    assert_eq!(create(&mut m, 0x7FF0, |_| {}), Ok(2));
    assert_eq!(create(&mut m, 7, |_| {}), Ok(7));
    assert_eq!(create(&mut m, 7, |_| {}), Err(Errno::EEXIST));
    assert_eq!(create(&mut m, 0, |_| {}), Ok(8));
    m.check_invariants().unwrap();
}

#[test]
fn domctl_version_and_privilege_are_checked() {
    let mut m = host();
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, 0);
    d.interface_version = 0x18;
    assert_eq!(
        m.domctl(&mut d, &mut []).unwrap_err().errno(),
        Some(Errno::EACCES)
    );
    let mut d = XenDomctl::new(9999, 0);
    assert_eq!(
        m.domctl(&mut d, &mut []).unwrap_err().errno(),
        Some(Errno::ENOSYS)
    );
    // A guest issuing domctl is refused.
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_PAUSEDOMAIN, 0);
    assert_eq!(m.do_domctl(g.dom, &mut d, &mut []), Err(Errno::EPERM));
}

#[test]
fn getdomaininfo_returns_next_domain_at_or_above() {
    let mut m = host();
    let a = create(&mut m, 5, |_| {}).unwrap();
    let i = info(&mut m, 2).unwrap();
    assert_eq!(
        i.domain, a,
        "4.17 returns the first domain with id >= requested"
    );
    let d = domctl(&mut m, dc::XEN_DOMCTL_GETDOMAININFO, 2, &[], &mut []).unwrap();
    assert_eq!(d.domain, a, "and rewrites domctl.domain");
    assert_eq!(info(&mut m, 6), Err(Errno::ESRCH));
    assert_eq!(info(&mut m, 0x7FF0), Err(Errno::EINVAL));
    assert!(
        i.flags & dc::XEN_DOMINF_PAUSED != 0,
        "new domains start paused"
    );
    assert_eq!(i.max_vcpu_id, u32::MAX, "no vCPUs yet");
    let dom0 = info(&mut m, 0).unwrap();
    assert_eq!(dom0.domain, 0);
}

#[test]
fn pause_nests_and_unpause_of_unpaused_is_einval() {
    let mut m = host();
    let d = create(&mut m, 0, |_| {}).unwrap();
    domctl(&mut m, dc::XEN_DOMCTL_PAUSEDOMAIN, d, &[], &mut []).unwrap();
    domctl(&mut m, dc::XEN_DOMCTL_UNPAUSEDOMAIN, d, &[], &mut []).unwrap();
    assert!(
        info(&mut m, d).unwrap().flags & dc::XEN_DOMINF_PAUSED != 0,
        "still paused once"
    );
    domctl(&mut m, dc::XEN_DOMCTL_UNPAUSEDOMAIN, d, &[], &mut []).unwrap();
    assert!(info(&mut m, d).unwrap().flags & dc::XEN_DOMINF_PAUSED == 0);
    assert_eq!(
        domctl(&mut m, dc::XEN_DOMCTL_UNPAUSEDOMAIN, d, &[], &mut []).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        domctl(&mut m, dc::XEN_DOMCTL_PAUSEDOMAIN, 0, &[], &mut []).unwrap_err(),
        Errno::EINVAL,
        "dom0 itself"
    );
    assert_eq!(
        domctl(&mut m, dc::XEN_DOMCTL_PAUSEDOMAIN, 77, &[], &mut []).unwrap_err(),
        Errno::ESRCH
    );
}

#[test]
fn max_vcpus_must_match_createdomain() {
    let mut m = host();
    let d = create(&mut m, 0, |p| p.max_vcpus = 2).unwrap();
    let p = dc::DomctlMaxVcpus { max: 3 };
    assert_eq!(
        domctl(&mut m, dc::XEN_DOMCTL_MAX_VCPUS, d, p.as_bytes(), &mut []).unwrap_err(),
        Errno::EINVAL
    );
    let p = dc::DomctlMaxVcpus { max: 2 };
    domctl(&mut m, dc::XEN_DOMCTL_MAX_VCPUS, d, p.as_bytes(), &mut []).unwrap();
    assert_eq!(info(&mut m, d).unwrap().max_vcpu_id, 1);
}

#[test]
fn destroy_frees_every_frame() {
    let mut m = host();
    let free0 = m.mem.free_frames();
    let g = MiniGuest::build(&mut m, 32).unwrap();
    assert!(m.mem.free_frames() < free0);
    m.check_invariants().unwrap();
    domctl(
        &mut m,
        dc::XEN_DOMCTL_DESTROYDOMAIN,
        g.dom.get(),
        &[],
        &mut [],
    )
    .unwrap();
    assert_eq!(m.mem.free_frames(), free0, "nothing leaks");
    assert!(m.domain(g.dom).is_err());
    m.check_invariants().unwrap();
    assert_eq!(
        domctl(&mut m, dc::XEN_DOMCTL_DESTROYDOMAIN, 0, &[], &mut []).unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn vcpu_context_is_validated_and_round_trips() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 8).unwrap();
    let mut buf = vec![0u8; 5168];
    let p = dc::DomctlVcpuContext {
        vcpu: 0,
        pad: 0,
        ctxt: 0,
    };
    domctl(
        &mut m,
        dc::XEN_DOMCTL_GETVCPUCONTEXT,
        g.dom.get(),
        p.as_bytes(),
        &mut buf,
    )
    .unwrap();
    let (mut ctx, _) = <VcpuGuestContext as zerocopy::FromBytes>::read_from_prefix(&buf).unwrap();
    assert_eq!(vc::xen_cr3_to_pfn(ctx.ctrlreg[3]), g.tables[0].get());
    assert!(ctx.flags & vc::VGCF_ONLINE != 0 && ctx.flags & vc::VGCF_IN_KERNEL != 0);
    // Registers change freely on an initialised vCPU…
    ctx.user_regs.rax = 0x1234;
    ctx.user_regs.r15 = 0x5678;
    domctl(
        &mut m,
        dc::XEN_DOMCTL_SETVCPUCONTEXT,
        g.dom.get(),
        p.as_bytes(),
        &mut ctx.as_bytes().to_vec(),
    )
    .unwrap();
    domctl(
        &mut m,
        dc::XEN_DOMCTL_GETVCPUCONTEXT,
        g.dom.get(),
        p.as_bytes(),
        &mut buf,
    )
    .unwrap();
    let (back, _) = <VcpuGuestContext as zerocopy::FromBytes>::read_from_prefix(&buf).unwrap();
    assert_eq!((back.user_regs.rax, back.user_regs.r15), (0x1234, 0x5678));
    // …but its page-table root does not.
    let mut moved = back;
    moved.ctrlreg[3] = vc::xen_pfn_to_cr3(g.tables[1].get());
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_SETVCPUCONTEXT,
            g.dom.get(),
            p.as_bytes(),
            &mut moved.as_bytes().to_vec()
        )
        .unwrap_err(),
        Errno::EOPNOTSUPP
    );
    let mut bad = back;
    bad.user_regs.rip = 0x0000_8000_0000_0000;
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_SETVCPUCONTEXT,
            g.dom.get(),
            p.as_bytes(),
            &mut bad.as_bytes().to_vec()
        )
        .unwrap_err(),
        Errno::EINVAL,
        "non-canonical rip"
    );
    // Short buffer → EFAULT; bad vCPU → EINVAL.
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_GETVCPUCONTEXT,
            g.dom.get(),
            p.as_bytes(),
            &mut [0u8; 100]
        )
        .unwrap_err(),
        Errno::EFAULT
    );
    let p1 = dc::DomctlVcpuContext {
        vcpu: 1,
        pad: 0,
        ctxt: 0,
    };
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_GETVCPUCONTEXT,
            g.dom.get(),
            p1.as_bytes(),
            &mut buf
        )
        .unwrap_err(),
        Errno::EINVAL
    );
    m.check_invariants().unwrap();
}

#[test]
fn setvcpucontext_needs_an_l4_of_that_domain() {
    let mut m = host();
    let other = MiniGuest::build(&mut m, 4).unwrap();
    let d = create(&mut m, 0, |_| {}).unwrap();
    let p = dc::DomctlMaxVcpus { max: 1 };
    domctl(&mut m, dc::XEN_DOMCTL_MAX_VCPUS, d, p.as_bytes(), &mut []).unwrap();
    let vp = dc::DomctlVcpuContext {
        vcpu: 0,
        pad: 0,
        ctxt: 0,
    };
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_GETVCPUCONTEXT,
            d,
            vp.as_bytes(),
            &mut [0u8; 5168]
        )
        .unwrap_err(),
        Errno::ENODATA
    );
    let mut ctx = VcpuGuestContext::new_zeroed();
    ctx.flags = vc::VGCF_ONLINE | vc::VGCF_IN_KERNEL;
    ctx.ctrlreg[3] = vc::xen_pfn_to_cr3(other.tables[0].get());
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_SETVCPUCONTEXT,
            d,
            vp.as_bytes(),
            &mut ctx.as_bytes().to_vec()
        )
        .unwrap_err(),
        Errno::EINVAL,
        "another domain's L4"
    );
    ctx.ctrlreg[3] = 0;
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_SETVCPUCONTEXT,
            d,
            vp.as_bytes(),
            &mut ctx.as_bytes().to_vec()
        )
        .unwrap_err(),
        Errno::EINVAL,
        "no root"
    );
    m.check_invariants().unwrap();
}

#[test]
fn getpageframeinfo3_reports_types() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let other = MiniGuest::build(&mut m, 4).unwrap();
    let mfns = [
        g.tables[0].get(),
        g.tables[3].get(),
        g.data[0].get(),
        other.data[0].get(),
    ];
    let mut buf: Vec<u8> = mfns.iter().flat_map(|x| x.to_le_bytes()).collect();
    let p = dc::DomctlGetPageFrameInfo3 { num: 4, array: 0 };
    domctl(
        &mut m,
        dc::XEN_DOMCTL_GETPAGEFRAMEINFO3,
        g.dom.get(),
        p.as_bytes(),
        &mut buf,
    )
    .unwrap();
    let words: Vec<u64> = buf
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        words[0],
        u64::from(dc::XEN_DOMCTL_PFINFO_L4TAB | dc::XEN_DOMCTL_PFINFO_LPINTAB)
    );
    assert_eq!(
        words[1],
        u64::from(dc::XEN_DOMCTL_PFINFO_L1TAB),
        "validated, unpinned L1"
    );
    assert_eq!(words[2], u64::from(dc::XEN_DOMCTL_PFINFO_NOTAB));
    assert_eq!(
        words[3],
        u64::from(dc::XEN_DOMCTL_PFINFO_XTAB),
        "not this domain's frame"
    );
    let p = dc::DomctlGetPageFrameInfo3 {
        num: 1025,
        array: 0,
    };
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_GETPAGEFRAMEINFO3,
            g.dom.get(),
            p.as_bytes(),
            &mut vec![0; 1025 * 8]
        )
        .unwrap_err(),
        Errno::E2BIG
    );
}

#[test]
fn log_dirty_tracks_guest_writes() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 16).unwrap();
    let on = dc::DomctlShadowOp {
        op: dc::XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
        ..dc::DomctlShadowOp::new_zeroed()
    };
    domctl(
        &mut m,
        dc::XEN_DOMCTL_SHADOW_OP,
        g.dom.get(),
        on.as_bytes(),
        &mut [],
    )
    .unwrap();
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_SHADOW_OP,
            g.dom.get(),
            on.as_bytes(),
            &mut []
        )
        .unwrap_err(),
        Errno::EINVAL,
        "already on"
    );
    assert_eq!(
        domctl(&mut m, dc::XEN_DOMCTL_SHADOW_OP, 0, on.as_bytes(), &mut []).unwrap_err(),
        Errno::EINVAL,
        "own domain"
    );
    // Clean the start-of-day state, then a hypercall writes into PFN 3 (xen_version
    // copies out to the guest) and the guest stores into PFN 5.
    let clean = |m: &mut Model, op: u32| -> (Vec<u8>, dc::DomctlShadowOp) {
        let p = dc::DomctlShadowOp {
            op,
            pages: 16,
            ..dc::DomctlShadowOp::new_zeroed()
        };
        let mut bm = vec![0u8; 2];
        let d = domctl(
            m,
            dc::XEN_DOMCTL_SHADOW_OP,
            g.dom.get(),
            p.as_bytes(),
            &mut bm,
        )
        .unwrap();
        (bm, d.payload())
    };
    // The first access walks the page tables and sets their A/D bits (which log-dirty
    // sees as writes to the table frames); do it once before cleaning.
    assert_eq!(
        hcall(
            &mut m,
            &g,
            hc::HYPERVISOR_XEN_VERSION,
            [1, g.va(3), 0, 0, 0]
        ),
        0
    );
    clean(&mut m, dc::XEN_DOMCTL_SHADOW_OP_CLEAN);
    assert_eq!(
        hcall(
            &mut m,
            &g,
            hc::HYPERVISOR_XEN_VERSION,
            [1, g.va(3), 0, 0, 0]
        ),
        0
    );
    poke(&mut m, &g, 5, 100, &[1]);
    let (peeked, _) = clean(&mut m, dc::XEN_DOMCTL_SHADOW_OP_PEEK);
    assert_eq!(peeked, vec![0b0010_1000, 0]);
    let (cleaned, st) = clean(&mut m, dc::XEN_DOMCTL_SHADOW_OP_CLEAN);
    assert_eq!(cleaned, vec![0b0010_1000, 0], "PEEK left the bits");
    assert_eq!(st.stats.dirty_count, 2);
    let (after, _) = clean(&mut m, dc::XEN_DOMCTL_SHADOW_OP_PEEK);
    assert_eq!(after, vec![0, 0], "CLEAN cleared them");
}

#[test]
fn guest_mmu_update_goes_through_guest_memory() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 8).unwrap();
    // Remap data slot 1 to PFN 2's frame, read-only, via a request array in PFN 0.
    let req = MmuUpdate {
        ptr: g.l1e_maddr(1) | abimm::MMU_NORMAL_PT_UPDATE,
        val: g.data[2].to_addr() | 0x5,
    };
    poke(&mut m, &g, 0, 0, req.as_bytes());
    let done_va = g.va(0) + 512;
    assert_eq!(
        hcall(
            &mut m,
            &g,
            hc::HYPERVISOR_MMU_UPDATE,
            [g.va(0), 1, done_va, u64::from(DomId::SELF.get()), 0]
        ),
        0
    );
    assert_eq!(peek(&m, &g, 0, 512, 4), 1u32.to_le_bytes());
    m.check_invariants().unwrap();
    // A bad request pointer faults.
    assert_eq!(
        hcall(
            &mut m,
            &g,
            hc::HYPERVISOR_MMU_UPDATE,
            [0xdead_0000, 1, 0, u64::from(DomId::SELF.get()), 0]
        ),
        Errno::EFAULT.to_ret()
    );
}

#[test]
fn hostile_guest_requests_fail_with_xens_errno() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 8).unwrap();
    let other = MiniGuest::build(&mut m, 4).unwrap();
    let try_update = |m: &mut Model, ptr: u64, val: u64| -> i64 {
        let req = MmuUpdate { ptr, val };
        poke(m, &g, 0, 0, req.as_bytes());
        hcall(
            m,
            &g,
            hc::HYPERVISOR_MMU_UPDATE,
            [g.va(0), 1, 0, u64::from(DomId::SELF.get()), 0],
        )
    };
    // A writable mapping of its own L1 (Xen's get_page_from_l1e: "could not pin" → EBUSY).
    assert_eq!(
        try_update(&mut m, g.l1e_maddr(1), g.tables[3].to_addr() | 0x7),
        Errno::EBUSY.to_ret()
    );
    // A mapping of another domain's frame.
    assert!(try_update(&mut m, g.l1e_maddr(1), other.data[0].to_addr() | 0x5) < 0);
    // Xen's L4 slot 256.
    assert!(
        try_update(
            &mut m,
            g.tables[0].to_addr() + 256 * 8,
            g.tables[1].to_addr() | 0x5
        ) < 0
    );
    // A PTE write into a data page is a plain write only if the page is writable-typed;
    // into a frame of another domain it is refused.
    assert!(try_update(&mut m, other.tables[3].to_addr(), 0) < 0);
    // Pins don't nest.
    let op = MmuextOp {
        cmd: abimm::MMUEXT_PIN_L4_TABLE,
        pad: 0,
        arg1: g.tables[0].get(),
        arg2: 0,
    };
    poke(&mut m, &g, 0, 0, op.as_bytes());
    assert_eq!(
        hcall(
            &mut m,
            &g,
            hc::HYPERVISOR_MMUEXT_OP,
            [g.va(0), 1, 0, u64::from(DomId::SELF.get()), 0]
        ),
        Errno::EINVAL.to_ret()
    );
    // Acting for another domain needs privilege.
    assert_eq!(
        hcall(
            &mut m,
            &g,
            hc::HYPERVISOR_MMUEXT_OP,
            [g.va(0), 1, 0, u64::from(other.dom.get()), 0]
        ),
        Errno::EPERM.to_ret()
    );
    m.check_invariants().unwrap();
    // Untouched: the other guest's memory and the first guest's tables.
    assert_eq!(
        m.mem.frame(g.tables[3]).unwrap().ty,
        crate::model::mm::PageType::L1
    );
}

#[test]
fn unknown_hypercalls_are_enosys_and_never_panic() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 2).unwrap();
    for nr in [11u64, 27, 40, 99, u64::MAX] {
        assert_eq!(hcall(&mut m, &g, nr, [0; 5]), Errno::ENOSYS.to_ret());
    }
    assert_eq!(
        hcall(&mut m, &g, hc::HYPERVISOR_XEN_VERSION, [0, 0, 0, 0, 0]),
        (4 << 16) | 17
    );
    assert_eq!(
        hcall(&mut m, &g, hc::HYPERVISOR_CONSOLE_IO, [0, 0, 0, 0, 0]),
        Errno::EPERM.to_ret()
    );
    assert_eq!(
        hcall(
            &mut m,
            &g,
            hc::HYPERVISOR_XEN_VERSION,
            [1, 0xffff_ffff_ffff_0000, 0, 0, 0]
        ),
        Errno::EFAULT.to_ret()
    );
}

#[test]
fn event_channel_between_guest_and_toolstack() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    // The toolstack offers a port; the guest binds to it through guest memory.
    let dom0_port = m.evtchn_bind_unbound_port(g.dom).unwrap();
    let b = ev::EvtchnBindInterdomain {
        remote_dom: 0,
        pad: 0,
        remote_port: dom0_port.get(),
        local_port: 0,
    };
    poke(&mut m, &g, 1, 0, b.as_bytes());
    assert_eq!(
        hcall(
            &mut m,
            &g,
            hc::HYPERVISOR_EVENT_CHANNEL_OP,
            [ev::EVTCHNOP_BIND_INTERDOMAIN, g.va(1), 0, 0, 0]
        ),
        0
    );
    let local = u32::from_le_bytes(peek(&m, &g, 1, 8, 4).try_into().unwrap());
    assert!(local >= 1);
    assert!(
        m.evtchn_is_pending(g.dom, Port::new(local)),
        "bind marks the new port pending"
    );
    // Guest → toolstack.
    let s = ev::EvtchnSend { port: local };
    poke(&mut m, &g, 1, 64, s.as_bytes());
    assert_eq!(
        hcall(
            &mut m,
            &g,
            hc::HYPERVISOR_EVENT_CHANNEL_OP,
            [ev::EVTCHNOP_SEND, g.va(1) + 64, 0, 0, 0]
        ),
        0
    );
    assert_eq!(m.evtchn_wait(0).unwrap(), Some(dom0_port));
    // Delivered ports stay masked until unmasked.
    assert_eq!(
        hcall(
            &mut m,
            &g,
            hc::HYPERVISOR_EVENT_CHANNEL_OP,
            [ev::EVTCHNOP_SEND, g.va(1) + 64, 0, 0, 0]
        ),
        0
    );
    assert_eq!(m.evtchn_wait(0).unwrap(), None);
    Xen::evtchn_unmask(&mut m, dom0_port).unwrap();
    assert_eq!(m.evtchn_wait(0).unwrap(), Some(dom0_port));
    // Toolstack → guest.
    m.evtchn_notify(dom0_port).unwrap();
    assert!(m.evtchn_is_pending(g.dom, Port::new(local)));
    assert_eq!(
        m.evtchn_unbind(Port::new(999)).unwrap_err().errno(),
        Some(Errno::ENOTCONN)
    );
    m.check_invariants().unwrap();
}

#[test]
fn suspend_shutdown_records_start_info_and_notifies_dom0() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let virq = Xen::evtchn_bind_virq(&mut m, ev::VIRQ_DOM_EXC).unwrap();
    // xenstored only tracks domains introduced to it: give the guest a store ring.
    let store_port = m
        .evtchn_alloc_unbound(DomId::DOM0, g.dom, DomId::DOM0)
        .unwrap();
    crate::model::tests_grant::seed_store(&mut m, g.dom, g.data[3]);
    m.xs_introduce(g.dom, g.data[3], store_port).unwrap();
    m.xs_watch("@releaseDomain", "rel").unwrap();
    assert_eq!(
        m.xs_read_watch(0).unwrap().unwrap().path,
        "@releaseDomain",
        "initial fire"
    );
    let s = sch::SchedShutdown {
        reason: sch::SHUTDOWN_SUSPEND,
    };
    poke(&mut m, &g, 1, 0, s.as_bytes());
    let start_info = g.data[2].get();
    let r = m.hypercall(
        g.dom,
        VcpuId::new(0),
        hc::HYPERVISOR_SCHED_OP,
        [sch::SCHEDOP_SHUTDOWN, g.va(1), start_info, 0, 0],
    );
    assert_eq!(
        r,
        HypercallOutcome::Preempt(0),
        "Xen completes the hypercall with 0 before pausing"
    );
    let i = info(&mut m, g.dom.get()).unwrap();
    assert!(i.flags & dc::XEN_DOMINF_SHUTDOWN != 0);
    assert_eq!(
        (i.flags >> dc::XEN_DOMINF_SHUTDOWNSHIFT) & 0xff,
        sch::SHUTDOWN_SUSPEND
    );
    assert_eq!(
        m.domain(g.dom).unwrap().suspend_start_info,
        Some(Mfn::new(start_info))
    );
    assert!(!m.vcpu_runnable(g.dom, VcpuId::new(0)));
    assert_eq!(m.evtchn_wait(0).unwrap(), Some(virq));
    assert_eq!(m.xs_read_watch(0).unwrap().unwrap().path, "@releaseDomain");
    domctl(
        &mut m,
        dc::XEN_DOMCTL_RESUMEDOMAIN,
        g.dom.get(),
        &[],
        &mut [],
    )
    .unwrap();
    assert!(info(&mut m, g.dom.get()).unwrap().flags & dc::XEN_DOMINF_SHUTDOWN == 0);
    assert!(m.vcpu_runnable(g.dom, VcpuId::new(0)));
}

#[test]
fn block_sleeps_until_an_event_arrives() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let p = m.evtchn_bind_unbound_port(g.dom).unwrap();
    let local = m.evtchn_bind_interdomain(g.dom, DomId::DOM0, p).unwrap();
    // Binding left the port pending: clear it as the guest's handler would.
    crate::model::tests::clear_pending(&mut m, g.dom, local);
    assert_eq!(
        m.hypercall(
            g.dom,
            VcpuId::new(0),
            hc::HYPERVISOR_SCHED_OP,
            [sch::SCHEDOP_BLOCK, 0, 0, 0, 0]
        ),
        HypercallOutcome::Preempt(0)
    );
    assert!(!m.vcpu_runnable(g.dom, VcpuId::new(0)), "blocked");
    m.evtchn_notify(p).unwrap();
    assert!(m.vcpu_runnable(g.dom, VcpuId::new(0)), "woken by the event");
}

/// Clears a port's pending bit and the vCPU's upcall state in a guest's shared_info.
pub(crate) fn clear_pending(m: &mut Model, dom: DomId, port: Port) {
    let si = m.domain(dom).unwrap().shared_info;
    let page = m.mem.page_mut_raw(si).unwrap();
    let off = 2048 + port.index() / 64 * 8;
    let w =
        u64::from_le_bytes(page[off..off + 8].try_into().unwrap()) & !(1 << (port.index() % 64));
    page[off..off + 8].copy_from_slice(&w.to_le_bytes());
    page[0] = 0;
    page[8..16].fill(0);
}

#[test]
fn sysctl_lists_domains_and_physinfo() {
    let mut m = host();
    let a = create(&mut m, 0, |_| {}).unwrap();
    let b = create(&mut m, 0, |_| {}).unwrap();
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_GETDOMAININFOLIST);
    s.set_payload(&sc::SysctlGetDomainInfoList {
        first_domain: 1,
        pad: 0,
        max_domains: 10,
        buffer: 0,
        num_domains: 0,
        pad2: 0,
    });
    let mut buf = vec![0u8; 10 * 112];
    m.sysctl(&mut s, &mut buf).unwrap();
    let l: sc::SysctlGetDomainInfoList = s.payload();
    assert_eq!(l.num_domains, 2);
    assert_eq!(u16::from_le_bytes([buf[0], buf[1]]), a);
    assert_eq!(u16::from_le_bytes([buf[112], buf[113]]), b);
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO);
    m.sysctl(&mut s, &mut []).unwrap();
    let p: sc::SysctlPhysinfo = s.payload();
    assert_eq!(p.total_pages, 8192);
    assert!(p.free_pages < p.total_pages);
}

#[test]
fn memory_op_and_the_m2p_from_the_toolstack() {
    let mut m = host();
    let d = create(&mut m, 0, |_| {}).unwrap();
    let mm = dc::DomctlMaxMem { max_memkb: 16 };
    domctl(&mut m, dc::XEN_DOMCTL_MAX_MEM, d, mm.as_bytes(), &mut []).unwrap();
    let mut r = xm::MemoryReservation {
        extent_start: 0,
        nr_extents: 6,
        extent_order: 0,
        mem_flags: 0,
        domid: d,
        pad: [0; 6],
    };
    let mut ext: Vec<u8> = (0u64..6).flat_map(|p| p.to_le_bytes()).collect();
    let n = Xen::memory_op(
        &mut m,
        xm::XENMEM_POPULATE_PHYSMAP as u32,
        r.as_mut_bytes(),
        &mut ext,
    )
    .unwrap();
    assert_eq!(n, 4, "max_mem of 16 KiB allows 4 pages");
    let mfns: Vec<u64> = ext
        .chunks(8)
        .take(4)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    // The M2P, read as the toolstack maps it: chunk MFNs from machphys_mfn_list, then
    // a foreign read of those frames from DOMID_XEN.
    let max = Xen::memory_op(&mut m, xm::XENMEM_MAXIMUM_RAM_PAGE as u32, &mut [], &mut []).unwrap();
    assert_eq!(max, 8192, "Xen's max_page: one past the highest MFN");
    let mut l = xm::MachphysMfnList {
        max_extents: 4,
        pad: 0,
        extent_start: 0,
        nr_extents: 0,
        pad2: 0,
    };
    let mut chunks = vec![0u8; 32];
    Xen::memory_op(
        &mut m,
        xm::XENMEM_MACHPHYS_MFN_LIST as u32,
        l.as_mut_bytes(),
        &mut chunks,
    )
    .unwrap();
    assert_eq!(l.nr_extents, 1, "8192 frames × 8 bytes fit one 2 MiB chunk");
    let chunk0 = u64::from_le_bytes(chunks[..8].try_into().unwrap());
    for (pfn, &mfn) in mfns.iter().enumerate() {
        let frame = Mfn::new(chunk0 + mfn * 8 / 4096);
        let mut page = vec![0u8; 4096];
        let mut err = [0i32];
        m.foreign_read(DomId::XEN, &[frame], &mut page, &mut err)
            .unwrap();
        assert_eq!(err[0], 0);
        let off = (mfn * 8 % 4096) as usize;
        assert_eq!(
            u64::from_le_bytes(page[off..off + 8].try_into().unwrap()),
            pfn as u64
        );
    }
    m.check_invariants().unwrap();
}

#[test]
fn foreign_access_respects_ownership_and_types() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let other = MiniGuest::build(&mut m, 4).unwrap();
    let mut page = vec![0u8; 4096 * 3];
    let mut errs = [0i32; 3];
    m.foreign_read(
        g.dom,
        &[g.data[0], other.data[0], Mfn::new(1 << 40)],
        &mut page,
        &mut errs,
    )
    .unwrap();
    assert_eq!(errs[0], 0);
    assert!(errs[1] < 0 && errs[2] < 0, "{errs:?}");
    let mut errs = [0i32; 2];
    let data = vec![0xAAu8; 4096 * 2];
    m.foreign_write(g.dom, &[g.data[1], g.tables[3]], &data, &mut errs)
        .unwrap();
    assert_eq!(errs[0], 0);
    assert!(
        errs[1] < 0,
        "a live page table can't be written through a foreign mapping"
    );
    assert_eq!(peek(&m, &g, 1, 0, 2), vec![0xAA, 0xAA]);
    assert!(
        m.foreign_read(g.dom, &[g.data[0]], &mut [0u8; 10], &mut [0])
            .is_err(),
        "short buffer"
    );
    m.check_invariants().unwrap();
}

mod state_machine {
    //! Random hypercall sequences from scripted guests (well-behaved and hostile) and
    //! from the toolstack, with `check_invariants()` after every step.

    use super::*;
    use proptest::prelude::*;

    const PAGES: usize = 12;

    #[derive(Clone, Debug)]
    enum Op {
        /// Guest remaps one of its data slots to one of its data frames.
        Remap {
            g: usize,
            slot: usize,
            target: usize,
            rw: bool,
        },
        /// Guest clears a data slot.
        Unmap {
            g: usize,
            slot: usize,
        },
        /// update_va_mapping of a data slot.
        UpdateVa {
            g: usize,
            slot: usize,
            target: usize,
            rw: bool,
        },
        /// Guest pins / unpins one of its data frames as an L1.
        PinData {
            g: usize,
            pfn: usize,
        },
        /// Unpin a data frame.
        UnpinData {
            g: usize,
            pfn: usize,
        },
        /// Guest gives a data frame back.
        Decrease {
            g: usize,
            pfn: usize,
        },
        /// Hostile: writable mapping of one of its own page tables.
        RwOwnTable {
            g: usize,
            level: usize,
            slot: usize,
        },
        /// Hostile: map another guest's frame.
        MapForeign {
            g: usize,
            pfn: usize,
        },
        /// Hostile: write one of Xen's L4 slots.
        XenSlot {
            g: usize,
            slot: usize,
        },
        /// Hostile: pin its L4 again.
        PinTwice {
            g: usize,
        },
        /// Hostile: change another domain's page table.
        ForeignPte {
            g: usize,
        },
        /// Event channels.
        EvtAlloc {
            g: usize,
        },
        EvtBind {
            g: usize,
            port: u32,
        },
        EvtSend {
            g: usize,
            port: u32,
        },
        EvtClose {
            g: usize,
            port: u32,
        },
        EvtUnmask {
            g: usize,
            port: u32,
        },
        /// Toolstack.
        Pause {
            g: usize,
        },
        Unpause {
            g: usize,
        },
        Destroy {
            g: usize,
        },
        Rebuild {
            g: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let g = 0..2usize;
        let s = 0..PAGES;
        prop_oneof![
            (g.clone(), s.clone(), s.clone(), any::<bool>()).prop_map(|(g, slot, target, rw)| {
                Op::Remap {
                    g,
                    slot,
                    target,
                    rw,
                }
            }),
            (g.clone(), s.clone()).prop_map(|(g, slot)| Op::Unmap { g, slot }),
            (g.clone(), s.clone(), s.clone(), any::<bool>()).prop_map(|(g, slot, target, rw)| {
                Op::UpdateVa {
                    g,
                    slot,
                    target,
                    rw,
                }
            }),
            (g.clone(), s.clone()).prop_map(|(g, pfn)| Op::PinData { g, pfn }),
            (g.clone(), s.clone()).prop_map(|(g, pfn)| Op::UnpinData { g, pfn }),
            (g.clone(), s.clone()).prop_map(|(g, pfn)| Op::Decrease { g, pfn }),
            (g.clone(), 1..5usize, s.clone()).prop_map(|(g, level, slot)| Op::RwOwnTable {
                g,
                level,
                slot
            }),
            (g.clone(), s.clone()).prop_map(|(g, pfn)| Op::MapForeign { g, pfn }),
            (g.clone(), 256..272usize).prop_map(|(g, slot)| Op::XenSlot { g, slot }),
            g.clone().prop_map(|g| Op::PinTwice { g }),
            g.clone().prop_map(|g| Op::ForeignPte { g }),
            g.clone().prop_map(|g| Op::EvtAlloc { g }),
            (g.clone(), 0..8u32).prop_map(|(g, port)| Op::EvtBind { g, port }),
            (g.clone(), 0..8u32).prop_map(|(g, port)| Op::EvtSend { g, port }),
            (g.clone(), 0..8u32).prop_map(|(g, port)| Op::EvtClose { g, port }),
            (g.clone(), 0..8u32).prop_map(|(g, port)| Op::EvtUnmask { g, port }),
            g.clone().prop_map(|g| Op::Pause { g }),
            g.clone().prop_map(|g| Op::Unpause { g }),
            g.clone().prop_map(|g| Op::Destroy { g }),
            g.prop_map(|g| Op::Rebuild { g }),
        ]
    }

    /// Issues one mmu_update from guest `g` through its own memory (args in PFN 0,
    /// which stays mapped RW at slot 0 because no op touches slot 0's mapping).
    fn mmu(m: &mut Model, g: &MiniGuest, ptr: u64, val: u64) -> i64 {
        let req = MmuUpdate { ptr, val };
        m.mem.guest_write(g.data[0], 0, req.as_bytes()).unwrap();
        hcall(
            m,
            g,
            hc::HYPERVISOR_MMU_UPDATE,
            [g.va(0), 1, 0, u64::from(DomId::SELF.get()), 0],
        )
    }

    fn mmuext(m: &mut Model, g: &MiniGuest, cmd: u32, mfn: u64) -> i64 {
        let op = MmuextOp {
            cmd,
            pad: 0,
            arg1: mfn,
            arg2: 0,
        };
        m.mem.guest_write(g.data[0], 0, op.as_bytes()).unwrap();
        hcall(
            m,
            g,
            hc::HYPERVISOR_MMUEXT_OP,
            [g.va(0), 1, 0, u64::from(DomId::SELF.get()), 0],
        )
    }

    fn evt(m: &mut Model, g: &MiniGuest, cmd: u64, arg: &[u8]) -> (i64, Vec<u8>) {
        m.mem.guest_write(g.data[0], 0, arg).unwrap();
        let r = hcall(
            m,
            g,
            hc::HYPERVISOR_EVENT_CHANNEL_OP,
            [cmd, g.va(0), 0, 0, 0],
        );
        (r, m.mem.page(g.data[0]).unwrap()[..arg.len()].to_vec())
    }

    fn alive(m: &Model, g: &Option<MiniGuest>) -> Option<MiniGuest> {
        g.as_ref().filter(|g| m.domain(g.dom).is_ok()).cloned()
    }

    fn step(
        m: &mut Model,
        guests: &mut [Option<MiniGuest>; 2],
        op: &Op,
    ) -> Result<(), TestCaseError> {
        let other_of = |g: usize| 1 - g;
        match *op {
            Op::Rebuild { g } => {
                if alive(m, &guests[g]).is_none() {
                    guests[g] = Some(
                        MiniGuest::build(m, PAGES)
                            .map_err(|e| TestCaseError::fail(format!("rebuild: {e}")))?,
                    );
                }
                return Ok(());
            }
            Op::Destroy { g } => {
                if let Some(x) = alive(m, &guests[g]) {
                    let others: Vec<Mfn> = guests[other_of(g)]
                        .iter()
                        .flat_map(|o| o.data.clone())
                        .collect();
                    let before: Vec<Vec<u8>> = others
                        .iter()
                        .map(|&f| m.mem.page(f).unwrap().to_vec())
                        .collect();
                    m.destroy_domain(x.dom)
                        .map_err(|e| TestCaseError::fail(format!("destroy: {e}")))?;
                    let after: Vec<Vec<u8>> = others
                        .iter()
                        .map(|&f| m.mem.page(f).unwrap().to_vec())
                        .collect();
                    prop_assert_eq!(
                        before,
                        after,
                        "destroying one guest changed the other's memory"
                    );
                }
                return Ok(());
            }
            _ => {}
        }
        let gi = match *op {
            Op::Remap { g, .. }
            | Op::Unmap { g, .. }
            | Op::UpdateVa { g, .. }
            | Op::PinData { g, .. }
            | Op::UnpinData { g, .. }
            | Op::Decrease { g, .. }
            | Op::RwOwnTable { g, .. }
            | Op::MapForeign { g, .. }
            | Op::XenSlot { g, .. }
            | Op::PinTwice { g }
            | Op::ForeignPte { g }
            | Op::EvtAlloc { g }
            | Op::EvtBind { g, .. }
            | Op::EvtSend { g, .. }
            | Op::EvtClose { g, .. }
            | Op::EvtUnmask { g, .. }
            | Op::Pause { g }
            | Op::Unpause { g } => g,
            Op::Destroy { .. } | Op::Rebuild { .. } => unreachable!(),
        };
        let Some(x) = alive(m, &guests[gi]) else {
            return Ok(());
        };
        let other = alive(m, &guests[other_of(gi)]);
        match *op {
            Op::Remap {
                slot, target, rw, ..
            } => {
                if slot != 0 {
                    let flags = if rw { 0x7 } else { 0x5 };
                    mmu(
                        m,
                        &x,
                        x.l1e_maddr(slot) | abimm::MMU_NORMAL_PT_UPDATE,
                        x.data[target].to_addr() | flags,
                    );
                }
            }
            Op::Unmap { slot, .. } => {
                if slot != 0 {
                    mmu(m, &x, x.l1e_maddr(slot), 0);
                }
            }
            Op::UpdateVa {
                slot, target, rw, ..
            } => {
                if slot != 0 {
                    let flags = if rw { 0x7 } else { 0x5 };
                    hcall(
                        m,
                        &x,
                        hc::HYPERVISOR_UPDATE_VA_MAPPING,
                        [x.va(slot), x.data[target].to_addr() | flags, 0, 0, 0],
                    );
                }
            }
            Op::PinData { pfn, .. } => {
                if pfn != 0 {
                    mmuext(m, &x, abimm::MMUEXT_PIN_L1_TABLE, x.data[pfn].get());
                }
            }
            Op::UnpinData { pfn, .. } => {
                if pfn != 0 {
                    mmuext(m, &x, abimm::MMUEXT_UNPIN_TABLE, x.data[pfn].get());
                }
            }
            Op::Decrease { pfn, .. } => {
                if pfn != 0 {
                    let mfn = x.data[pfn].get();
                    m.mem
                        .guest_write(x.data[0], 64, &mfn.to_le_bytes())
                        .unwrap();
                    let r = xm::MemoryReservation {
                        extent_start: x.va(0) + 64,
                        nr_extents: 1,
                        extent_order: 0,
                        mem_flags: 0,
                        domid: DomId::SELF.get(),
                        pad: [0; 6],
                    };
                    m.mem.guest_write(x.data[0], 0, r.as_bytes()).unwrap();
                    hcall(
                        m,
                        &x,
                        hc::HYPERVISOR_MEMORY_OP,
                        [xm::XENMEM_DECREASE_RESERVATION, x.va(0), 0, 0, 0],
                    );
                }
            }
            Op::RwOwnTable { level, slot, .. } => {
                if slot != 0 {
                    let t = x.tables[4 - level];
                    let r = mmu(m, &x, x.l1e_maddr(slot), t.to_addr() | 0x7);
                    // Xen's get_page_from_l1e fails the writable type reference with EBUSY.
                    prop_assert_eq!(
                        r,
                        Errno::EBUSY.to_ret(),
                        "writable mapping of its own L{} was allowed",
                        level
                    );
                }
            }
            Op::MapForeign { pfn, .. } => {
                if let Some(o) = &other {
                    let r = mmu(m, &x, x.l1e_maddr(1), o.data[pfn].to_addr() | 0x5);
                    prop_assert!(r < 0, "mapping another domain's frame was allowed");
                }
            }
            Op::XenSlot { slot, .. } => {
                let r = mmu(
                    m,
                    &x,
                    x.tables[0].to_addr() + slot as u64 * 8,
                    x.tables[1].to_addr() | 0x5,
                );
                prop_assert!(r < 0, "write to Xen's L4 slot {} was allowed", slot);
            }
            Op::PinTwice { .. } => {
                let r = mmuext(m, &x, abimm::MMUEXT_PIN_L4_TABLE, x.tables[0].get());
                prop_assert_eq!(r, Errno::EINVAL.to_ret(), "pins nested");
            }
            Op::ForeignPte { .. } => {
                if let Some(o) = &other {
                    let before = m.mem.page(o.tables[3]).unwrap().to_vec();
                    let r = mmu(m, &x, o.l1e_maddr(1), o.data[2].to_addr() | 0x7);
                    prop_assert!(r < 0, "edited another domain's page table");
                    prop_assert_eq!(before, m.mem.page(o.tables[3]).unwrap().to_vec());
                }
            }
            Op::EvtAlloc { .. } => {
                let remote = other.as_ref().map_or(0, |o| o.dom.get());
                let a = ev::EvtchnAllocUnbound {
                    dom: DomId::SELF.get(),
                    remote_dom: remote,
                    port: 0,
                };
                evt(m, &x, ev::EVTCHNOP_ALLOC_UNBOUND, a.as_bytes());
            }
            Op::EvtBind { port, .. } => {
                if let Some(o) = &other {
                    let b = ev::EvtchnBindInterdomain {
                        remote_dom: o.dom.get(),
                        pad: 0,
                        remote_port: port,
                        local_port: 0,
                    };
                    evt(m, &x, ev::EVTCHNOP_BIND_INTERDOMAIN, b.as_bytes());
                }
            }
            Op::EvtSend { port, .. } => {
                evt(m, &x, ev::EVTCHNOP_SEND, ev::EvtchnSend { port }.as_bytes());
            }
            Op::EvtClose { port, .. } => {
                let (r, _) = evt(
                    m,
                    &x,
                    ev::EVTCHNOP_CLOSE,
                    ev::EvtchnClose { port }.as_bytes(),
                );
                if port == 0 {
                    prop_assert!(r < 0, "closed port 0");
                }
            }
            Op::EvtUnmask { port, .. } => {
                evt(
                    m,
                    &x,
                    ev::EVTCHNOP_UNMASK,
                    ev::EvtchnUnmask { port }.as_bytes(),
                );
            }
            Op::Pause { .. } => {
                let _ = m.pause_domain(x.dom);
            }
            Op::Unpause { .. } => {
                let _ = m.unpause_domain(x.dom);
            }
            Op::Destroy { .. } | Op::Rebuild { .. } => unreachable!(),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn random_hypercall_sequences_keep_invariants(ops in proptest::collection::vec(op(), 1..40)) {
            let mut m = Model::new(ModelConfig { machine_frames: 4096 });
            let free0 = m.mem.free_frames();
            let mut guests = [Some(MiniGuest::build(&mut m, PAGES).unwrap()), Some(MiniGuest::build(&mut m, PAGES).unwrap())];
            m.check_invariants().unwrap();
            for op in &ops {
                step(&mut m, &mut guests, op)?;
                if let Err(e) = m.check_invariants() {
                    return Err(TestCaseError::fail(format!("after {op:?}: {e}")));
                }
            }
            for g in guests.iter().flatten() {
                if m.domain(g.dom).is_ok() {
                    m.destroy_domain(g.dom).unwrap();
                }
            }
            m.check_invariants().unwrap();
            prop_assert_eq!(m.mem.free_frames(), free0, "frames leaked");
        }
    }
}

// ---------------------------------------------------------------------------------
// Extended vCPU state and MSRs, as Xen 4.17 answers them for a PV guest that never
// enabled XSAVE (what the lab's real Xen returned for xi's toy guests: a 16-byte
// all-zero XSAVE blob, an MSR count of 7 then no MSRs).

fn extstate(vcpu: u32, mask: u64, size: u64) -> Vec<u8> {
    dc::DomctlVcpuExtState {
        vcpu,
        xfeature_mask: mask,
        size,
        ..dc::DomctlVcpuExtState::default()
    }
    .as_bytes()
    .to_vec()
}

fn msrs(vcpu: u32, count: u32) -> Vec<u8> {
    dc::DomctlVcpuMsrs {
        vcpu,
        msr_count: count,
        msrs: 0,
    }
    .as_bytes()
    .to_vec()
}

fn msr_entry(index: u32, reserved: u32, value: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&index.to_le_bytes());
    b[4..8].copy_from_slice(&reserved.to_le_bytes());
    b[8..16].copy_from_slice(&value.to_le_bytes());
    b
}

#[test]
fn getvcpuextstate_queries_the_size_then_hands_back_the_header_only() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let dom = g.dom.get();
    // Size query: xfeature_mask and size both 0 (or no buffer).
    let d = domctl(
        &mut m,
        dc::XEN_DOMCTL_GETVCPUEXTSTATE,
        dom,
        &extstate(0, 0, 0),
        &mut [],
    )
    .unwrap();
    let q: dc::DomctlVcpuExtState = d.payload();
    assert_eq!(q.xfeature_mask & 3, 3, "x87 and SSE are always in the mask");
    // PV_XSAVE_SIZE: 16-byte header + 512-byte legacy area + 64-byte XSAVE header at
    // least.
    assert!(q.size >= 16 + 512 + 64, "{}", q.size);
    let mut buf = vec![0xaau8; q.size as usize];
    let d = domctl(
        &mut m,
        dc::XEN_DOMCTL_GETVCPUEXTSTATE,
        dom,
        &extstate(0, q.xfeature_mask, q.size),
        &mut buf,
    )
    .unwrap();
    let out: dc::DomctlVcpuExtState = d.payload();
    assert_eq!(out.size, 16, "xcr0_accum 0: only xcr0 and xcr0_accum");
    assert_eq!(&buf[..16], &[0u8; 16], "both zero");
    // A mask other than the host's, or a buffer smaller than the header: EINVAL.
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_GETVCPUEXTSTATE,
            dom,
            &extstate(0, 0x7, q.size),
            &mut buf
        )
        .unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_GETVCPUEXTSTATE,
            dom,
            &extstate(0, q.xfeature_mask, 8),
            &mut buf
        )
        .unwrap_err(),
        Errno::EINVAL
    );
    // No such vCPU: ESRCH.
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_GETVCPUEXTSTATE,
            dom,
            &extstate(5, 0, 0),
            &mut []
        )
        .unwrap_err(),
        Errno::ESRCH
    );
}

#[test]
fn setvcpuextstate_takes_an_empty_header_and_refuses_what_xen_refuses() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let dom = g.dom.get();
    let set = |m: &mut Model, size: u64, buf: &mut [u8]| {
        domctl(
            m,
            dc::XEN_DOMCTL_SETVCPUEXTSTATE,
            dom,
            &extstate(0, 0, size),
            buf,
        )
    };
    // What real Xen's stream carries for a guest that never used XSAVE.
    set(&mut m, 16, &mut [0u8; 16]).expect("nothing to restore");
    // Shorter than the header, or longer than the host could ever hand out.
    assert_eq!(set(&mut m, 8, &mut [0u8; 8]).unwrap_err(), Errno::EINVAL);
    assert_eq!(
        set(&mut m, 1 << 20, &mut vec![0u8; 1 << 20]).unwrap_err(),
        Errno::EINVAL
    );
    // xcr0 without xcr0_accum is not a state any vCPU can have.
    let mut b = [0u8; 16];
    b[0] = 1;
    assert_eq!(set(&mut m, 16, &mut b).unwrap_err(), Errno::EINVAL);
    // A header with xcr0_accum but no area: "can't be legitimate data".
    let mut b = vec![0u8; 16 + 100];
    b[0] = 3;
    b[8] = 3;
    assert_eq!(
        set(&mut m, b.len() as u64, &mut b).unwrap_err(),
        Errno::EINVAL
    );
    // xcr0 beyond xcr0_accum.
    let mut b = vec![0u8; 16 + 576];
    b[0] = 3;
    b[8] = 1;
    assert_eq!(
        set(&mut m, b.len() as u64, &mut b).unwrap_err(),
        Errno::EINVAL
    );
    // The buffer shorter than the size it claims: EFAULT.
    assert_eq!(set(&mut m, 16, &mut [0u8; 4]).unwrap_err(), Errno::EFAULT);
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_SETVCPUEXTSTATE,
            dom,
            &extstate(3, 0, 16),
            &mut [0u8; 16]
        )
        .unwrap_err(),
        Errno::ESRCH
    );
}

#[test]
fn vcpu_msrs_count_seven_send_none_and_load_only_zeroes() {
    let mut m = host();
    let g = MiniGuest::build(&mut m, 4).unwrap();
    let dom = g.dom.get();
    // NULL handle: the maximum count, 7 without DBEXT (abi-4.17.md).
    let d = domctl(
        &mut m,
        dc::XEN_DOMCTL_GET_VCPU_MSRS,
        dom,
        &msrs(0, 0),
        &mut [],
    )
    .unwrap();
    let q: dc::DomctlVcpuMsrs = d.payload();
    assert_eq!(q.msr_count, 7);
    // With a buffer: MSRs whose value is 0 are left out, and the model has no other.
    let mut buf = vec![0u8; 7 * 16];
    let d = domctl(
        &mut m,
        dc::XEN_DOMCTL_GET_VCPU_MSRS,
        dom,
        &msrs(0, 7),
        &mut buf,
    )
    .unwrap();
    assert_eq!(d.payload::<dc::DomctlVcpuMsrs>().msr_count, 0);
    // Loading: the migrated MSRs at 0 are fine (MSR_TSC_AUX, MSR_SPEC_CTRL).
    let mut ok = [msr_entry(0xc000_0103, 0, 0), msr_entry(0x48, 0, 0)].concat();
    domctl(
        &mut m,
        dc::XEN_DOMCTL_SET_VCPU_MSRS,
        dom,
        &msrs(0, 2),
        &mut ok,
    )
    .unwrap();
    // An MSR Xen does not migrate, a reserved field, a value the model's CPU cannot
    // hold, more entries than Xen sends: EINVAL.
    for bad in [
        vec![msr_entry(0x48, 0, 0), msr_entry(0x10, 0, 0)],
        vec![msr_entry(0x48, 1, 0)],
        vec![msr_entry(0xc000_0103, 0, 5)],
    ] {
        let mut b = bad.concat();
        let n = (b.len() / 16) as u32;
        let mut d = XenDomctl::new(dc::XEN_DOMCTL_SET_VCPU_MSRS, dom);
        d.set_payload(&dc::DomctlVcpuMsrs {
            vcpu: 0,
            msr_count: n,
            msrs: 0,
        });
        let e = m.domctl(&mut d, &mut b).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EINVAL));
    }
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_SET_VCPU_MSRS,
            dom,
            &msrs(0, 8),
            &mut [0u8; 8 * 16]
        )
        .unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_SET_VCPU_MSRS,
            dom,
            &msrs(0, 2),
            &mut msr_entry(0x48, 0, 0)
        )
        .unwrap_err(),
        Errno::EFAULT
    );
    assert_eq!(
        domctl(
            &mut m,
            dc::XEN_DOMCTL_GET_VCPU_MSRS,
            dom,
            &msrs(4, 0),
            &mut []
        )
        .unwrap_err(),
        Errno::ESRCH
    );
}
