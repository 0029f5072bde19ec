//! The builder against the model, checked through the `Xen` trait (as a toolstack on
//! real Xen would see it) and the model's own inspection API.

use hypervisor::abi::domctl::{
    self as dc, DomctlGetDomainInfo, DomctlGetPageFrameInfo3, DomctlVcpuContext, XenDomctl,
};
use hypervisor::abi::evtchn::{EvtchnStatus, EVTCHNOP_STATUS, EVTCHNSTAT_INTERDOMAIN};
use hypervisor::abi::mm::{MmuUpdate, MmuextOp, PTE_RW};
use hypervisor::abi::shared::StartInfo;
use hypervisor::abi::sysctl::{self as sc, SysctlGetDomainInfoList, SysctlPhysinfo, XenSysctl};
use hypervisor::abi::vcpu::{self as vc, VcpuGuestContext};
use hypervisor::model::{Model, ModelConfig};
use hypervisor::types::PAGE_SIZE;
use hypervisor::{
    DomId, Errno, Mfn, Pfn, Port, Xen, XenError, XsAccess, XsPerm, XsTxId, XsWatchEvent, XS_NO_TX,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::image::{make_elf, note};
use super::*;
use crate::config::{DomainConfig, KernelSpec};

const BASE: u64 = 0x40_0000;

fn model(frames: u64) -> Model {
    Model::new(ModelConfig {
        machine_frames: frames,
    })
}

fn config(name: &str, mib: u64) -> DomainConfig {
    let mut c = DomainConfig::new(name, mib, KernelSpec::Toy("test".into()));
    c.extra = Some("seed=7 pages=64".into());
    c
}

/// `jmp .` — a kernel that spins.
fn spin_image() -> KernelImage {
    KernelImage::from_flat(vec![0xeb, 0xfe], BASE, BASE).expect("image")
}

fn read_pages<X: Xen>(x: &mut X, dom: DomId, mfns: &[Mfn]) -> Vec<u8> {
    let mut buf = vec![0u8; mfns.len() * PAGE_SIZE];
    let mut errs = vec![0i32; mfns.len()];
    x.foreign_read(dom, mfns, &mut buf, &mut errs)
        .expect("foreign_read");
    assert!(errs.iter().all(|&e| e == 0), "foreign_read errors {errs:?}");
    buf
}

fn domain_info<X: Xen>(x: &mut X, dom: DomId) -> DomctlGetDomainInfo {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, dom.get());
    x.domctl(&mut d, &mut []).expect("getdomaininfo");
    assert_eq!(d.domain, dom.get());
    d.payload()
}

fn domains<X: Xen>(x: &mut X) -> Vec<u16> {
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_GETDOMAININFOLIST);
    s.set_payload(&SysctlGetDomainInfoList {
        first_domain: 0,
        max_domains: 64,
        ..Default::default()
    });
    let mut buf = vec![0u8; 64 * 112];
    x.sysctl(&mut s, &mut buf).expect("getdomaininfolist");
    let n = s.payload::<SysctlGetDomainInfoList>().num_domains as usize;
    (0..n)
        .map(|i| {
            DomctlGetDomainInfo::read_from_bytes(&buf[i * 112..(i + 1) * 112])
                .expect("info")
                .domain
        })
        .collect()
}

fn free_pages<X: Xen>(x: &mut X) -> u64 {
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO);
    x.sysctl(&mut s, &mut []).expect("physinfo");
    s.payload::<SysctlPhysinfo>().free_pages
}

fn page_types<X: Xen>(x: &mut X, dom: DomId, mfns: &[Mfn]) -> Vec<u32> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETPAGEFRAMEINFO3, dom.get());
    d.set_payload(&DomctlGetPageFrameInfo3 {
        num: mfns.len() as u64,
        array: 0,
    });
    let mut arr: Vec<u64> = mfns.iter().map(|m| m.get()).collect();
    x.domctl(&mut d, arr.as_mut_bytes())
        .expect("getpageframeinfo3");
    arr.iter().map(|&w| w as u32).collect()
}

fn vcpu_context<X: Xen>(x: &mut X, dom: DomId) -> VcpuGuestContext {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETVCPUCONTEXT, dom.get());
    d.set_payload(&DomctlVcpuContext::default());
    let mut ctx = VcpuGuestContext::new_zeroed();
    x.domctl(&mut d, ctx.as_mut_bytes())
        .expect("getvcpucontext");
    ctx
}

fn evtchn_status<X: Xen>(x: &mut X, dom: DomId, port: Port) -> EvtchnStatus {
    let mut s = EvtchnStatus {
        dom: dom.get(),
        port: port.get(),
        ..Default::default()
    };
    x.event_channel_op(EVTCHNOP_STATUS as u32, s.as_mut_bytes())
        .expect("evtchn status");
    s
}

fn xs_str<X: Xen>(x: &mut X, path: &str) -> String {
    String::from_utf8(
        x.xs_read(XS_NO_TX, path)
            .unwrap_or_else(|e| panic!("{path}: {e}")),
    )
    .expect("utf-8")
}

fn u64_at(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(bytes[off..off + 8].try_into().expect("8 bytes"))
}

#[test]
fn a_flat_guest_is_built_as_the_layout_says() {
    let mut m = model(16384);
    let free_before = free_pages(&mut m);
    let cfg = config("flat", 16);
    let image = spin_image();
    let mut steps = Vec::new();
    let mut progress = |s: BuildStep| steps.push(s);
    let d = build(
        &mut m,
        &cfg,
        &image,
        &BuildOptions::default(),
        Some(&mut progress),
    )
    .expect("build");
    let l = d.layout.clone();
    let dom = d.domid;
    assert_eq!(dom, DomId::new(1));
    let want: Vec<BuildStep> = BuildStep::ALL
        .iter()
        .copied()
        .filter(|&s| s != BuildStep::HypercallPage)
        .collect();
    assert_eq!(steps, want);

    // The layout of a 16 MiB guest with a 1-page kernel at 4 MiB.
    assert_eq!(l.nr_pages, 4096);
    assert_eq!((l.kernel.pfn, l.kernel.pages), (Pfn::new(0), 1));
    assert_eq!((l.p2m.pfn, l.p2m.pages), (Pfn::new(1), 8));
    assert_eq!(l.start_info.pfn, Pfn::new(9));
    assert_eq!(l.xenstore.pfn, Pfn::new(10));
    assert_eq!(l.console.pfn, Pfn::new(11));
    assert_eq!((l.page_tables.pfn, l.page_tables.pages), (Pfn::new(12), 5));
    assert_eq!(
        l.tables,
        TableCounts {
            l4: 1,
            l3: 1,
            l2: 1,
            l1: 2
        }
    );
    assert_eq!(l.stack.pfn, Pfn::new(17));
    assert_eq!(l.mapped.pages, 1024);
    assert_eq!(d.start_info_pfn, l.start_info.pfn);

    // getdomaininfo: running, unpaused, all pages there, the handle from the name.
    let info = domain_info(&mut m, dom);
    assert_eq!(info.flags & dc::XEN_DOMINF_PAUSED, 0, "unpaused");
    assert_ne!(info.flags & dc::XEN_DOMINF_RUNNING, 0, "running");
    assert_eq!(
        info.flags & (dc::XEN_DOMINF_SHUTDOWN | dc::XEN_DOMINF_DYING),
        0
    );
    assert_eq!(info.tot_pages, 4096);
    assert_eq!(info.max_pages, (16 * 1024 + 1024) / 4);
    assert_eq!(info.nr_online_vcpus, 1);
    assert_eq!(info.shared_info_frame, d.shared_info_mfn.get());
    assert_eq!(info.handle, cfg.handle().0);
    let md = m.domain(dom).expect("model domain");
    assert_eq!(md.pause_count, 0);
    assert_eq!(md.handle, DomainUuid::from_name("flat").0);
    assert_eq!(
        free_before - free_pages(&mut m),
        4096 + 2,
        "guest pages + shared_info + grant frame 0 (Xen-heap pages)"
    );

    // The p2m: distinct MFNs, all the guest's, and the guest's own copy agrees.
    assert_eq!(d.p2m.len(), 4096);
    let mut sorted = d.p2m.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 4096, "distinct MFNs");
    let p2m_frames: Vec<Mfn> = l.p2m.pfns().map(|p| d.p2m[p.index()]).collect();
    let list = read_pages(&mut m, dom, &p2m_frames);
    for (pfn, mfn) in d.p2m.iter().enumerate() {
        assert_eq!(u64_at(&list, pfn * 8), mfn.get(), "mfn_list[{pfn}]");
    }
    assert!(list[4096 * 8..].iter().all(|&b| b == 0));

    // The kernel bytes are at the kernel's MFNs.
    let k = read_pages(&mut m, dom, &[d.p2m[0]]);
    assert_eq!(&k[..2], &[0xeb, 0xfe]);
    assert!(k[2..].iter().all(|&b| b == 0));

    // start_info.
    let si_page = read_pages(&mut m, dom, &[d.start_info_mfn]);
    let si = StartInfo::read_from_prefix(&si_page).expect("start_info").0;
    assert_eq!(&si.magic[..15], b"xen-3.0-x86_64\0");
    assert!(si.has_x86_64_magic());
    assert_eq!(si.nr_pages, 4096);
    assert_eq!(si.shared_info, d.shared_info_mfn.to_addr());
    assert_eq!(si.flags, 0);
    assert_eq!(si.store_mfn, d.store_mfn.get());
    assert_eq!(si.store_mfn, d.p2m[10].get());
    assert_eq!(si.store_evtchn, d.store_port.get());
    assert_eq!(si.console_mfn, d.console_mfn.get());
    assert_eq!(si.console_mfn, d.p2m[11].get());
    assert_eq!(si.console_evtchn, d.console_port.get());
    assert_ne!(d.store_port, d.console_port);
    assert_eq!(si.pt_base, BASE + 12 * 4096);
    assert_eq!(si.nr_pt_frames, 5);
    assert_eq!(si.mfn_list, BASE + 4096);
    assert_eq!((si.mod_start, si.mod_len), (0, 0));
    assert_eq!(&si.cmd_line[..16], b"seed=7 pages=64\0");
    assert_eq!((si.first_p2m_pfn, si.nr_p2m_frames), (0, 0));

    // The rings are zeroed pages of the guest.
    for mfn in [d.store_mfn, d.console_mfn] {
        let page = read_pages(&mut m, dom, &[mfn]);
        // xenstored may already have marked the store ring connected; nothing else.
        assert!(page[..2048].iter().all(|&b| b == 0));
    }

    // Page types: the L4 pinned, the other tables validated, data plain.
    let pt: Vec<Mfn> = l.page_tables.pfns().map(|p| d.p2m[p.index()]).collect();
    let types = page_types(&mut m, dom, &pt);
    assert_eq!(
        types[0],
        dc::XEN_DOMCTL_PFINFO_L4TAB | dc::XEN_DOMCTL_PFINFO_LPINTAB
    );
    assert_eq!(types[1], dc::XEN_DOMCTL_PFINFO_L3TAB);
    assert_eq!(types[2], dc::XEN_DOMCTL_PFINFO_L2TAB);
    assert_eq!(types[3], dc::XEN_DOMCTL_PFINFO_L1TAB);
    assert_eq!(types[4], dc::XEN_DOMCTL_PFINFO_L1TAB);
    let data = page_types(&mut m, dom, &[d.p2m[0], d.start_info_mfn, d.p2m[4095]]);
    assert_eq!(data, vec![dc::XEN_DOMCTL_PFINFO_NOTAB; 3]);

    // The two L1s map every page of the initial mapping, the page tables read-only.
    let l1 = read_pages(&mut m, dom, &pt[3..5]);
    for pfn in 0..1024u64 {
        let e = u64_at(&l1, pfn as usize * 8);
        assert_eq!(e & !0xfff, d.p2m[pfn as usize].to_addr(), "pfn {pfn}");
        let ro = (12..17).contains(&pfn);
        assert_eq!(e & PTE_RW == 0, ro, "pfn {pfn}: {e:#x}");
    }
    let l4 = read_pages(&mut m, dom, &pt[..1]);
    assert_eq!(u64_at(&l4, 0) & !0xfff, pt[1].to_addr());
    // …so the toolstack can no longer write them, while data pages stay writable.
    let mut errs = [0i32];
    m.foreign_write(dom, &pt[3..4], &[0u8; PAGE_SIZE], &mut errs)
        .expect("call");
    assert_eq!(errs[0], Errno::EBUSY.to_ret() as i32, "a live page table");

    // vCPU 0.
    let ctx = vcpu_context(&mut m, dom);
    assert_eq!(ctx.user_regs.rip, BASE);
    assert_eq!(ctx.user_regs.rsi, BASE + 9 * 4096);
    assert_eq!(ctx.user_regs.rsp, BASE + 18 * 4096);
    assert_eq!(ctx.kernel_sp, BASE + 18 * 4096);
    assert_eq!(ctx.kernel_ss, 0xe02b);
    assert_eq!(ctx.user_regs.ss, 0xe02b);
    assert_eq!(ctx.user_regs.cs, 0xe033);
    assert_ne!(ctx.user_regs.rflags & vc::RFLAGS_IF, 0);
    assert_eq!(ctx.ctrlreg[3], vc::xen_pfn_to_cr3(pt[0].get()));
    assert_eq!(
        ctx.flags & (vc::VGCF_IN_KERNEL | vc::VGCF_ONLINE),
        vc::VGCF_IN_KERNEL | vc::VGCF_ONLINE
    );
    assert_eq!((ctx.event_callback_eip, ctx.failsafe_callback_eip), (0, 0));
    assert_eq!((ctx.debugreg[6], ctx.debugreg[7]), (0xffff_0ff0, 0x400));

    // xenstore.
    let home = "/local/domain/1";
    assert_eq!(m.xs_get_domain_path(dom).expect("path"), home);
    assert_eq!(xs_str(&mut m, &format!("{home}/name")), "flat");
    assert_eq!(xs_str(&mut m, &format!("{home}/domid")), "1");
    assert_eq!(xs_str(&mut m, &format!("{home}/memory/target")), "16384");
    assert_eq!(
        xs_str(&mut m, &format!("{home}/memory/static-max")),
        "16384"
    );
    assert_eq!(
        xs_str(&mut m, &format!("{home}/store/ring-ref")),
        d.store_mfn.get().to_string()
    );
    assert_eq!(
        xs_str(&mut m, &format!("{home}/store/port")),
        d.store_port.get().to_string()
    );
    assert_eq!(
        xs_str(&mut m, &format!("{home}/console/ring-ref")),
        d.console_mfn.get().to_string()
    );
    assert_eq!(
        xs_str(&mut m, &format!("{home}/console/port")),
        d.console_port.get().to_string()
    );
    assert_eq!(
        xs_str(&mut m, &format!("{home}/cpu/0/availability")),
        "online"
    );
    assert_eq!(xs_str(&mut m, &format!("{home}/control/shutdown")), "");
    let guest_owned = vec![
        XsPerm {
            dom,
            access: XsAccess::None,
        },
        XsPerm {
            dom: DomId::DOM0,
            access: XsAccess::Read,
        },
    ];
    let read_only = vec![
        XsPerm {
            dom: DomId::DOM0,
            access: XsAccess::None,
        },
        XsPerm {
            dom,
            access: XsAccess::Read,
        },
    ];
    assert_eq!(m.xs_get_perms(XS_NO_TX, home).expect("perms"), guest_owned);
    assert_eq!(
        m.xs_get_perms(XS_NO_TX, &format!("{home}/control/shutdown"))
            .expect("perms"),
        guest_owned
    );
    assert_eq!(
        m.xs_get_perms(XS_NO_TX, &format!("{home}/name"))
            .expect("perms"),
        read_only
    );
    assert_eq!(
        m.xs_get_perms(XS_NO_TX, &format!("{home}/store/ring-ref"))
            .expect("perms"),
        read_only
    );

    // Introduced: xenstored (and xenconsoled) bound their ends of the channels, and a
    // second introduce is refused.
    for port in [d.store_port, d.console_port] {
        let s = evtchn_status(&mut m, dom, port);
        assert_eq!(s.status, EVTCHNSTAT_INTERDOMAIN, "{port:?}");
        assert_eq!(s.u[0] & 0xffff, 0, "bound by dom0");
    }
    let again = m
        .xs_introduce(dom, d.store_mfn, d.store_port)
        .expect_err("already introduced");
    assert_eq!(again.errno(), Some(Errno::EEXIST));

    m.check_invariants().expect("invariants");
}

/// A guest that reads start_info and stores what it saw, then powers off through its
/// hypercall page (PFN 1):
///
/// ```text
/// mov ebx, 0x400800 ; mov rax, [rsi+32] ; mov [rbx], rax ; mov [rbx+8], rsi
/// mov [rbx+0x18], rsp ; mov edi, 2 ; mov esi, 0x400810 ; mov dword [rsi], 0
/// mov eax, 0x4013a0 (hypercall page + 29*32: sched_op) ; call rax ; ud2
/// ```
fn poweroff_image() -> KernelImage {
    let code: &[u8] = &[
        0xbb, 0x00, 0x08, 0x40, 0x00, // mov ebx, 0x400800
        0x48, 0x8b, 0x46, 0x20, // mov rax, [rsi+0x20]
        0x48, 0x89, 0x03, // mov [rbx], rax
        0x48, 0x89, 0x73, 0x08, // mov [rbx+8], rsi
        0x48, 0x89, 0x63, 0x18, // mov [rbx+0x18], rsp
        0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi, SCHEDOP_shutdown
        0xbe, 0x10, 0x08, 0x40, 0x00, // mov esi, 0x400810
        0xc7, 0x06, 0x00, 0x00, 0x00, 0x00, // mov dword [rsi], SHUTDOWN_poweroff
        0xb8, 0xa0, 0x13, 0x40, 0x00, // mov eax, 0x4013a0
        0xff, 0xd0, // call rax
        0x0f, 0x0b, // ud2
    ];
    let mut bytes = code.to_vec();
    bytes.resize(2 * 4096, 0);
    KernelImage::from_flat(bytes, BASE, BASE)
        .and_then(|i| i.with_hypercall_page(BASE + 4096))
        .expect("image")
}

#[test]
fn the_guest_runs_from_its_entry_point_with_a_hypercall_page() {
    let mut m = model(16384);
    let mut steps = Vec::new();
    let mut progress = |s: BuildStep| steps.push(s);
    let d = build(
        &mut m,
        &config("runner", 8),
        &poweroff_image(),
        &BuildOptions::default(),
        Some(&mut progress),
    )
    .expect("build");
    assert!(steps.contains(&BuildStep::HypercallPage));
    assert_eq!(d.layout.hypercall_page, Some(Pfn::new(1)));
    // Xen wrote 128 stubs of 32 bytes: `push %rcx; push %r11; mov $nr,%eax; syscall …`.
    let hp = read_pages(&mut m, d.domid, &[d.p2m[1]]);
    assert_eq!(
        &hp[29 * 32..29 * 32 + 10],
        &[0x51, 0x41, 0x53, 0xb8, 29, 0, 0, 0, 0x0f, 0x05]
    );
    m.check_invariants().expect("invariants before running");

    m.run(100_000);
    let info = domain_info(&mut m, d.domid);
    assert_ne!(
        info.flags & dc::XEN_DOMINF_SHUTDOWN,
        0,
        "the guest shut down"
    );
    assert_eq!(dc::xen_dominf_shutdown_reason(info.flags), 0, "poweroff");
    let k = read_pages(&mut m, d.domid, &[d.p2m[0]]);
    assert_eq!(
        u64_at(&k, 0x800),
        2048,
        "start_info.nr_pages as the guest read it"
    );
    assert_eq!(
        u64_at(&k, 0x808),
        BASE + d.layout.start_info.pfn.get() * 4096,
        "rsi"
    );
    assert_eq!(u64_at(&k, 0x818), d.layout.stack_top().get(), "rsp");
    m.check_invariants().expect("invariants after running");
}

#[test]
fn a_paused_build_stays_paused() {
    let mut m = model(8192);
    let opts = BuildOptions {
        paused: true,
        ..BuildOptions::default()
    };
    let mut steps = Vec::new();
    let mut progress = |s: BuildStep| steps.push(s);
    let d = build(
        &mut m,
        &config("paused", 8),
        &spin_image(),
        &opts,
        Some(&mut progress),
    )
    .expect("build");
    assert!(d.paused);
    assert!(!steps.contains(&BuildStep::Unpause));
    let info = domain_info(&mut m, d.domid);
    assert_ne!(info.flags & dc::XEN_DOMINF_PAUSED, 0);
    let mut u = XenDomctl::new(dc::XEN_DOMCTL_UNPAUSEDOMAIN, d.domid.get());
    m.domctl(&mut u, &mut []).expect("unpause");
    assert_eq!(
        domain_info(&mut m, d.domid).flags & dc::XEN_DOMINF_PAUSED,
        0
    );
    m.check_invariants().expect("invariants");
}

#[test]
fn two_guests_get_their_own_ids_and_frames() {
    let mut m = model(16384);
    let a = build(
        &mut m,
        &config("a", 8),
        &spin_image(),
        &BuildOptions::default(),
        None,
    )
    .expect("a");
    let b = build(
        &mut m,
        &config("b", 8),
        &spin_image(),
        &BuildOptions::default(),
        None,
    )
    .expect("b");
    assert_ne!(a.domid, b.domid);
    assert!(a.p2m.iter().all(|m| !b.p2m.contains(m)));
    assert_ne!(a.handle, b.handle);
    assert_eq!(domains(&mut m), vec![0, a.domid.get(), b.domid.get()]);
    m.check_invariants().expect("invariants");
}

#[test]
fn an_elf_kernel_high_in_the_address_space() {
    let base = 0xffff_ffff_8000_0000u64;
    let file = make_elf(
        base + 0x2000,
        &[
            (0x2000, &[0xeb, 0xfe], 0x1800),
            (0x4000, &[0u8; 16], 0x1000),
        ],
        &[
            (note::VIRT_BASE, base.to_le_bytes().to_vec()),
            (note::PADDR_OFFSET, 0u64.to_le_bytes().to_vec()),
            (note::HYPERCALL_PAGE, (base + 0x4000).to_le_bytes().to_vec()),
            (note::GUEST_OS, b"xi\0".to_vec()),
        ],
    );
    let image = KernelImage::from_elf(&file).expect("elf");
    assert_eq!(
        (image.load_addr, image.entry),
        (base + 0x2000, base + 0x2000)
    );
    let mut m = model(16384);
    let d = build(
        &mut m,
        &config("elf", 16),
        &image,
        &BuildOptions::default(),
        None,
    )
    .expect("build");
    let l = &d.layout;
    assert_eq!((l.kernel.pfn, l.kernel.pages), (Pfn::new(2), 3));
    assert_eq!(l.hypercall_page, Some(Pfn::new(4)));
    let si = StartInfo::read_from_prefix(&read_pages(&mut m, d.domid, &[d.start_info_mfn]))
        .expect("si")
        .0;
    assert_eq!(si.pt_base, l.page_tables.va.get());
    assert_eq!(si.mfn_list, base + 5 * 4096);
    assert_eq!(vcpu_context(&mut m, d.domid).user_regs.rip, base + 0x2000);
    // L4 slot 511 → L3 slot 510 (−2 GiB) → L2 slot 0 → L1.
    let l4 = read_pages(&mut m, d.domid, &[d.p2m[l.l4_pfn().index()]]);
    assert_eq!(
        u64_at(&l4, 511 * 8) & !0xfff,
        d.p2m[l.l4_pfn().index() + 1].to_addr()
    );
    assert_eq!((0..511).filter(|&i| u64_at(&l4, i * 8) != 0).count(), 0);
    m.check_invariants().expect("invariants");
}

#[test]
fn a_kernel_that_does_not_fit_creates_nothing() {
    let mut m = model(8192);
    let big = KernelImage::from_flat(vec![0x90; 3 << 20], BASE, BASE).expect("image");
    let e = build(
        &mut m,
        &config("big", 2),
        &big,
        &BuildOptions::default(),
        None,
    )
    .expect_err("too small");
    assert!(
        matches!(e, BuildError::Layout(LayoutError::TooSmall { .. })),
        "{e}"
    );
    assert_eq!(e.step(), Some(BuildStep::Layout));
    assert_eq!(domains(&mut m), vec![0]);
}

#[test]
fn running_out_of_host_memory_leaves_nothing_behind() {
    // 8 MiB of host for a 16 MiB guest: populate_physmap stops short.
    let mut m = model(2048);
    let free = free_pages(&mut m);
    let before = m
        .xs_directory(XS_NO_TX, "/local/domain")
        .unwrap_or_default();
    let e = build(
        &mut m,
        &config("greedy", 16),
        &spin_image(),
        &BuildOptions::default(),
        None,
    )
    .expect_err("no memory");
    match &e {
        BuildError::ShortPopulate {
            domid,
            done,
            wanted,
        } => {
            assert_eq!(*domid, DomId::new(1));
            assert!(*done < 4096 && *done > 0, "{done}");
            assert_eq!(*wanted, 4096);
        }
        other => panic!("{other}"),
    }
    assert_eq!(e.step(), Some(BuildStep::PopulateMemory));
    assert!(e.to_string().contains("populate memory"), "{e}");
    assert_eq!(domains(&mut m), vec![0], "the half-built domain is gone");
    assert_eq!(free_pages(&mut m), free, "every frame came back");
    assert_eq!(
        m.xs_directory(XS_NO_TX, "/local/domain")
            .unwrap_or_default(),
        before
    );
    m.check_invariants().expect("invariants");
    // The host is still usable.
    build(
        &mut m,
        &config("small", 4),
        &spin_image(),
        &BuildOptions::default(),
        None,
    )
    .expect("a guest that fits");
}

/// A `Xen` that fails its `fail_at`-th call (counting from 0) with `EIO`.
struct Flaky<'a> {
    inner: &'a mut Model,
    calls: usize,
    fail_at: usize,
    failed: Option<&'static str>,
}

impl Flaky<'_> {
    fn go(&mut self, what: &'static str) -> Result<(), XenError> {
        let n = self.calls;
        self.calls += 1;
        if n == self.fail_at {
            self.failed = Some(what);
            return Err(XenError::xen("injected", Errno::EIO));
        }
        Ok(())
    }
}

impl Xen for Flaky<'_> {
    fn backend_name(&self) -> &'static str {
        "flaky"
    }
    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        self.go("xen_version")?;
        Xen::xen_version(&mut *self.inner, cmd, arg)
    }
    fn domctl(&mut self, domctl: &mut XenDomctl, buf: &mut [u8]) -> Result<i64, XenError> {
        self.go("domctl")?;
        Xen::domctl(&mut *self.inner, domctl, buf)
    }
    fn sysctl(&mut self, sysctl: &mut XenSysctl, buf: &mut [u8]) -> Result<i64, XenError> {
        self.go("sysctl")?;
        Xen::sysctl(&mut *self.inner, sysctl, buf)
    }
    fn memory_op(&mut self, cmd: u32, arg: &mut [u8], buf: &mut [u8]) -> Result<i64, XenError> {
        self.go("memory_op")?;
        Xen::memory_op(&mut *self.inner, cmd, arg, buf)
    }
    fn mmu_update(
        &mut self,
        reqs: &[MmuUpdate],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        self.go("mmu_update")?;
        Xen::mmu_update(&mut *self.inner, reqs, done, foreigndom)
    }
    fn mmuext_op(
        &mut self,
        ops: &[MmuextOp],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        self.go("mmuext_op")?;
        Xen::mmuext_op(&mut *self.inner, ops, done, foreigndom)
    }
    fn event_channel_op(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        self.go("event_channel_op")?;
        Xen::event_channel_op(&mut *self.inner, cmd, arg)
    }
    fn foreign_read(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &mut [u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        self.go("foreign_read")?;
        Xen::foreign_read(&mut *self.inner, dom, mfns, buf, errs)
    }
    fn foreign_write(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &[u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        self.go("foreign_write")?;
        Xen::foreign_write(&mut *self.inner, dom, mfns, buf, errs)
    }
    fn resource_read(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        buf: &mut [u8],
    ) -> Result<(), XenError> {
        self.go("resource_read")?;
        Xen::resource_read(&mut *self.inner, dom, type_, id, frame, buf)
    }
    fn resource_write(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        data: &[u8],
    ) -> Result<(), XenError> {
        self.go("resource_write")?;
        Xen::resource_write(&mut *self.inner, dom, type_, id, frame, data)
    }
    fn evtchn_bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Port, XenError> {
        self.go("evtchn_bind_interdomain")?;
        Xen::evtchn_bind_interdomain(&mut *self.inner, remote, remote_port)
    }
    fn evtchn_bind_unbound_port(&mut self, remote: DomId) -> Result<Port, XenError> {
        self.go("evtchn_bind_unbound_port")?;
        Xen::evtchn_bind_unbound_port(&mut *self.inner, remote)
    }
    fn evtchn_bind_virq(&mut self, virq: u32) -> Result<Port, XenError> {
        self.go("evtchn_bind_virq")?;
        Xen::evtchn_bind_virq(&mut *self.inner, virq)
    }
    fn evtchn_unbind(&mut self, port: Port) -> Result<(), XenError> {
        self.go("evtchn_unbind")?;
        Xen::evtchn_unbind(&mut *self.inner, port)
    }
    fn evtchn_notify(&mut self, port: Port) -> Result<(), XenError> {
        self.go("evtchn_notify")?;
        Xen::evtchn_notify(&mut *self.inner, port)
    }
    fn evtchn_wait(&mut self, timeout_ns: u64) -> Result<Option<Port>, XenError> {
        self.go("evtchn_wait")?;
        Xen::evtchn_wait(&mut *self.inner, timeout_ns)
    }
    fn evtchn_unmask(&mut self, port: Port) -> Result<(), XenError> {
        self.go("evtchn_unmask")?;
        Xen::evtchn_unmask(&mut *self.inner, port)
    }
    fn xs_read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError> {
        self.go("xs_read")?;
        Xen::xs_read(&mut *self.inner, tx, path)
    }
    fn xs_write(&mut self, tx: XsTxId, path: &str, value: &[u8]) -> Result<(), XenError> {
        self.go("xs_write")?;
        Xen::xs_write(&mut *self.inner, tx, path, value)
    }
    fn xs_mkdir(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        self.go("xs_mkdir")?;
        Xen::xs_mkdir(&mut *self.inner, tx, path)
    }
    fn xs_rm(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        self.go("xs_rm")?;
        Xen::xs_rm(&mut *self.inner, tx, path)
    }
    fn xs_directory(&mut self, tx: XsTxId, path: &str) -> Result<Vec<String>, XenError> {
        self.go("xs_directory")?;
        Xen::xs_directory(&mut *self.inner, tx, path)
    }
    fn xs_get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError> {
        self.go("xs_get_perms")?;
        Xen::xs_get_perms(&mut *self.inner, tx, path)
    }
    fn xs_set_perms(&mut self, tx: XsTxId, path: &str, perms: &[XsPerm]) -> Result<(), XenError> {
        self.go("xs_set_perms")?;
        Xen::xs_set_perms(&mut *self.inner, tx, path, perms)
    }
    fn xs_watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        self.go("xs_watch")?;
        Xen::xs_watch(&mut *self.inner, path, token)
    }
    fn xs_unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        self.go("xs_unwatch")?;
        Xen::xs_unwatch(&mut *self.inner, path, token)
    }
    fn xs_read_watch(&mut self, timeout_ns: u64) -> Result<Option<XsWatchEvent>, XenError> {
        self.go("xs_read_watch")?;
        Xen::xs_read_watch(&mut *self.inner, timeout_ns)
    }
    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError> {
        self.go("xs_transaction_start")?;
        Xen::xs_transaction_start(&mut *self.inner)
    }
    fn xs_transaction_end(&mut self, tx: XsTxId, commit: bool) -> Result<(), XenError> {
        self.go("xs_transaction_end")?;
        Xen::xs_transaction_end(&mut *self.inner, tx, commit)
    }
    fn xs_introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> Result<(), XenError> {
        self.go("xs_introduce")?;
        Xen::xs_introduce(&mut *self.inner, dom, mfn, port)
    }
    fn xs_release(&mut self, dom: DomId) -> Result<(), XenError> {
        self.go("xs_release")?;
        Xen::xs_release(&mut *self.inner, dom)
    }
    fn xs_get_domain_path(&mut self, dom: DomId) -> Result<String, XenError> {
        self.go("xs_get_domain_path")?;
        Xen::xs_get_domain_path(&mut *self.inner, dom)
    }
}

/// Every call of a build fails once, in turn: each failure is reported with the step
/// and errno, and leaves the host exactly as it was.
#[test]
fn a_failure_at_any_call_leaves_nothing_behind() {
    let mut m = model(8192);
    let free = free_pages(&mut m);
    let xs_before = m
        .xs_directory(XS_NO_TX, "/local/domain")
        .unwrap_or_default();
    let image = poweroff_image();
    let cfg = config("flaky", 8);
    let mut failed_steps = std::collections::BTreeSet::new();
    let mut fail_at = 0;
    loop {
        let mut f = Flaky {
            inner: &mut m,
            calls: 0,
            fail_at,
            failed: None,
        };
        let r = build(&mut f, &cfg, &image, &BuildOptions::default(), None);
        let failed = f.failed;
        match r {
            Ok(d) => {
                assert!(
                    failed.is_none(),
                    "call {fail_at} ({failed:?}) failed but the build succeeded"
                );
                assert!(fail_at > 30, "only {fail_at} calls?");
                assert_eq!(domains(&mut m), vec![0, d.domid.get()]);
                m.check_invariants().expect("invariants");
                break;
            }
            Err(e) => {
                let what = failed
                    .unwrap_or_else(|| panic!("call {fail_at}: {e} without an injected failure"));
                assert_eq!(e.errno(), Some(Errno::EIO), "call {fail_at} ({what}): {e}");
                let step = e
                    .step()
                    .unwrap_or_else(|| panic!("call {fail_at} ({what}): {e} has no step"));
                failed_steps.insert(step);
                assert!(!matches!(e, BuildError::CleanupFailed { .. }), "{e}");
                assert_eq!(
                    domains(&mut m),
                    vec![0],
                    "call {fail_at} ({what}) at `{step}`: a domain was left behind"
                );
                assert_eq!(
                    free_pages(&mut m),
                    free,
                    "call {fail_at} ({what}) at `{step}`: frames leaked"
                );
                assert_eq!(
                    m.xs_directory(XS_NO_TX, "/local/domain")
                        .unwrap_or_default(),
                    xs_before,
                    "call {fail_at} ({what}) at `{step}`: xenstore nodes left behind"
                );
                m.check_invariants()
                    .unwrap_or_else(|v| panic!("call {fail_at} ({what}) at `{step}`: {v}"));
            }
        }
        fail_at += 1;
    }
    let all: std::collections::BTreeSet<BuildStep> = BuildStep::ALL
        .iter()
        .copied()
        .filter(|&s| s != BuildStep::Layout)
        .collect();
    assert_eq!(
        failed_steps, all,
        "every step that talks to Xen was made to fail"
    );
}

struct OneToy;

impl ToyGuests for OneToy {
    fn toy_image(&self, name: &str, cmdline: &str) -> Result<KernelImage, String> {
        match name {
            "spin" if cmdline.starts_with("seed=") => Ok(spin_image()),
            "spin" => Err(format!("bad parameters `{cmdline}`")),
            _ => Err("no such toy guest".into()),
        }
    }
}

#[test]
fn kernels_from_toys_and_files() {
    let mut c = config("k", 8);
    c.kernel = KernelSpec::Toy("spin".into());
    assert_eq!(load_kernel(&c, &OneToy).expect("toy"), spin_image());
    c.kernel = KernelSpec::Toy("nope".into());
    let e = load_kernel(&c, &OneToy).expect_err("unknown toy");
    assert_eq!(e.to_string(), "toy guest `nope`: no such toy guest");

    let dir = std::env::temp_dir();
    let flat = dir.join(format!("xi-build-flat-{}.bin", std::process::id()));
    let elf = dir.join(format!("xi-build-elf-{}.bin", std::process::id()));
    let bad = dir.join(format!("xi-build-bad-{}.bin", std::process::id()));
    std::fs::write(&flat, [0xeb, 0xfe]).expect("write");
    std::fs::write(&elf, make_elf(0x60_0000, &[(0x60_0000, &[0xc3], 1)], &[])).expect("write");
    std::fs::write(&bad, &b"\x7fELF\x01"[..]).expect("write");
    let load = |p: &std::path::Path| {
        let mut c = config("k", 8);
        c.kernel = KernelSpec::File(p.display().to_string());
        load_kernel(&c, &OneToy)
    };
    let f = load(&flat).expect("flat");
    assert_eq!(
        (f.virt_base, f.load_addr, f.entry),
        (DEFAULT_FLAT_BASE, DEFAULT_FLAT_BASE, DEFAULT_FLAT_BASE)
    );
    let e = load(&elf).expect("elf");
    assert_eq!(
        (e.virt_base, e.load_addr, e.entry),
        (0, 0x60_0000, 0x60_0000)
    );
    let err = load(&bad).expect_err("truncated ELF");
    assert!(matches!(err, LoadKernelError::Image { .. }), "{err}");
    let err = load(&dir.join("xi-no-such-kernel")).expect_err("missing");
    assert!(matches!(err, LoadKernelError::Io { .. }), "{err}");
    for p in [flat, elf, bad] {
        let _ = std::fs::remove_file(p);
    }
    // An ELF kernel with virt_base 0 builds too (PFN 0 at VA 0, kernel at 6 MiB).
    let mut m = model(8192);
    let d = build(
        &mut m,
        &config("low", 16),
        &e,
        &BuildOptions::default(),
        None,
    )
    .expect("build");
    assert_eq!(d.layout.kernel.pfn, Pfn::new(0x600));
    m.check_invariants().expect("invariants");
}

/// The grant frame 0 of `dom`, read through the trait.
fn grant_frame0<X: Xen>(x: &mut X, dom: DomId) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE];
    x.resource_read(
        dom,
        hypervisor::XENMEM_RESOURCE_GRANT_TABLE,
        hypervisor::XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED,
        0,
        &mut page,
    )
    .expect("grant frame 0");
    page
}

/// The bytes libxc's `xc_dom_set_gnttab_entry` leaves in an entry, written out by hand:
/// flags GTF_permit_access (1), domid, frame — little endian.
fn entry_bytes(domid: u16, frame: u64) -> Vec<u8> {
    let mut b = vec![1u8, 0];
    b.extend_from_slice(&domid.to_le_bytes());
    b.extend_from_slice(&u32::try_from(frame).unwrap().to_le_bytes());
    b
}

#[test]
fn the_builder_seeds_grant_entries_0_and_1_as_libxc() {
    let mut m = model(8192);
    let d = build(
        &mut m,
        &config("seeded", 4),
        &spin_image(),
        &BuildOptions::default(),
        None,
    )
    .expect("build");
    let page = grant_frame0(&mut m, d.domid);
    assert_eq!(
        &page[0..8],
        &entry_bytes(0, d.console_mfn.get())[..],
        "console"
    );
    assert_eq!(
        &page[8..16],
        &entry_bytes(0, d.store_mfn.get())[..],
        "xenstore"
    );
    assert!(
        page[16..].iter().all(|&b| b == 0),
        "nothing else is granted"
    );
    m.check_invariants().expect("invariants");
}

#[test]
fn without_the_seed_step_introduce_fails_with_einval() {
    // A backend that drops resource writes: the builder's INTRODUCE then fails as it
    // does on Xen 4.17 without a seeded entry 1, and the half-built domain goes away.
    let mut m = model(8192);
    let free = free_pages(&mut m);
    let mut flaky = Flaky {
        inner: &mut m,
        calls: 0,
        fail_at: usize::MAX,
        failed: None,
    };
    let e = build(
        &mut Wrap(&mut flaky),
        &config("unseeded", 4),
        &spin_image(),
        &BuildOptions::default(),
        None,
    )
    .expect_err("introduce must fail");
    assert_eq!(e.step(), Some(BuildStep::Introduce), "{e}");
    assert_eq!(e.errno(), Some(Errno::EINVAL), "{e}");
    assert_eq!(domains(&mut m), vec![0], "the half-built domain is gone");
    assert_eq!(free_pages(&mut m), free, "every frame came back");
    m.check_invariants().expect("invariants");
}

/// Forwards everything but resource writes (which it swallows).
struct Wrap<'a, 'b>(&'a mut Flaky<'b>);

impl Xen for Wrap<'_, '_> {
    fn backend_name(&self) -> &'static str {
        "no-seed"
    }
    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        self.0.xen_version(cmd, arg)
    }
    fn domctl(&mut self, domctl: &mut XenDomctl, buf: &mut [u8]) -> Result<i64, XenError> {
        self.0.domctl(domctl, buf)
    }
    fn sysctl(&mut self, sysctl: &mut XenSysctl, buf: &mut [u8]) -> Result<i64, XenError> {
        self.0.sysctl(sysctl, buf)
    }
    fn memory_op(&mut self, cmd: u32, arg: &mut [u8], buf: &mut [u8]) -> Result<i64, XenError> {
        self.0.memory_op(cmd, arg, buf)
    }
    fn mmu_update(
        &mut self,
        reqs: &[MmuUpdate],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        self.0.mmu_update(reqs, done, foreigndom)
    }
    fn mmuext_op(
        &mut self,
        ops: &[MmuextOp],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        self.0.mmuext_op(ops, done, foreigndom)
    }
    fn event_channel_op(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        self.0.event_channel_op(cmd, arg)
    }
    fn foreign_read(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &mut [u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        self.0.foreign_read(dom, mfns, buf, errs)
    }
    fn foreign_write(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &[u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        self.0.foreign_write(dom, mfns, buf, errs)
    }
    fn resource_read(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        buf: &mut [u8],
    ) -> Result<(), XenError> {
        self.0.resource_read(dom, type_, id, frame, buf)
    }
    fn resource_write(
        &mut self,
        _dom: DomId,
        _type_: u16,
        _id: u32,
        _frame: u64,
        _data: &[u8],
    ) -> Result<(), XenError> {
        Ok(())
    }
    fn evtchn_bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Port, XenError> {
        self.0.evtchn_bind_interdomain(remote, remote_port)
    }
    fn evtchn_bind_unbound_port(&mut self, remote: DomId) -> Result<Port, XenError> {
        self.0.evtchn_bind_unbound_port(remote)
    }
    fn evtchn_bind_virq(&mut self, virq: u32) -> Result<Port, XenError> {
        self.0.evtchn_bind_virq(virq)
    }
    fn evtchn_unbind(&mut self, port: Port) -> Result<(), XenError> {
        self.0.evtchn_unbind(port)
    }
    fn evtchn_notify(&mut self, port: Port) -> Result<(), XenError> {
        self.0.evtchn_notify(port)
    }
    fn evtchn_wait(&mut self, timeout_ns: u64) -> Result<Option<Port>, XenError> {
        self.0.evtchn_wait(timeout_ns)
    }
    fn evtchn_unmask(&mut self, port: Port) -> Result<(), XenError> {
        self.0.evtchn_unmask(port)
    }
    fn xs_read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError> {
        self.0.xs_read(tx, path)
    }
    fn xs_write(&mut self, tx: XsTxId, path: &str, value: &[u8]) -> Result<(), XenError> {
        self.0.xs_write(tx, path, value)
    }
    fn xs_mkdir(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        self.0.xs_mkdir(tx, path)
    }
    fn xs_rm(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        self.0.xs_rm(tx, path)
    }
    fn xs_directory(&mut self, tx: XsTxId, path: &str) -> Result<Vec<String>, XenError> {
        self.0.xs_directory(tx, path)
    }
    fn xs_get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError> {
        self.0.xs_get_perms(tx, path)
    }
    fn xs_set_perms(&mut self, tx: XsTxId, path: &str, perms: &[XsPerm]) -> Result<(), XenError> {
        self.0.xs_set_perms(tx, path, perms)
    }
    fn xs_watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        self.0.xs_watch(path, token)
    }
    fn xs_unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        self.0.xs_unwatch(path, token)
    }
    fn xs_read_watch(&mut self, timeout_ns: u64) -> Result<Option<XsWatchEvent>, XenError> {
        self.0.xs_read_watch(timeout_ns)
    }
    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError> {
        self.0.xs_transaction_start()
    }
    fn xs_transaction_end(&mut self, tx: XsTxId, commit: bool) -> Result<(), XenError> {
        self.0.xs_transaction_end(tx, commit)
    }
    fn xs_introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> Result<(), XenError> {
        self.0.xs_introduce(dom, mfn, port)
    }
    fn xs_release(&mut self, dom: DomId) -> Result<(), XenError> {
        self.0.xs_release(dom)
    }
    fn xs_get_domain_path(&mut self, dom: DomId) -> Result<String, XenError> {
        self.0.xs_get_domain_path(dom)
    }
}

#[test]
fn a_name_in_use_is_refused_before_anything_is_allocated() {
    let mut m = model(8192);
    let first = build(
        &mut m,
        &config("twin", 4),
        &spin_image(),
        &BuildOptions::default(),
        None,
    )
    .expect("first");
    let free = free_pages(&mut m);
    let doms = domains(&mut m);
    let mut steps = Vec::new();
    let mut progress = |s: BuildStep| steps.push(s);
    let e = build(
        &mut m,
        &config("twin", 4),
        &spin_image(),
        &BuildOptions::default(),
        Some(&mut progress),
    )
    .expect_err("a second `twin`");
    assert!(
        matches!(&e, BuildError::NameInUse { name, domid } if name == "twin" && *domid == first.domid),
        "{e:?}"
    );
    // libxl's words (libxl__domain_rename).
    assert_eq!(e.to_string(), "Domain with name \"twin\" already exists.");
    assert_eq!(e.step(), None);
    assert!(!steps.contains(&BuildStep::CreateDomain), "{steps:?}");
    assert_eq!(domains(&mut m), doms, "no domain was created");
    assert_eq!(free_pages(&mut m), free, "no frame was allocated");
    // dom0's name is taken too; another name is fine.
    let e = build(
        &mut m,
        &config("Domain-0", 4),
        &spin_image(),
        &BuildOptions::default(),
        None,
    )
    .expect_err("dom0's name");
    assert!(matches!(e, BuildError::NameInUse { domid, .. } if domid == DomId::DOM0));
    build(
        &mut m,
        &config("twin2", 4),
        &spin_image(),
        &BuildOptions::default(),
        None,
    )
    .expect("another name");
    m.check_invariants().expect("invariants");
}
