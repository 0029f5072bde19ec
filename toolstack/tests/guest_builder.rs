//! The builder from xl.cfg text on the real model, for kernels named by path (a toy
//! guest written as an ELF PV kernel, a flat binary) and for bad input: a missing
//! kernel file, a malformed ELF, too little memory, an unknown toy. A failed create
//! leaves no domain, no frame and no xenstore node behind.

use guest_model::guests::Oracle;
use guest_model::{Guest, Stop, ToyParams};
use hypervisor::abi::sysctl::{self as sc, SysctlGetDomainInfoList, SysctlPhysinfo, XenSysctl};
use hypervisor::model::{Model, ModelConfig};
use hypervisor::{DomId, Errno, Pfn, Xen, XS_NO_TX};
use toolstack::build::{
    self, BuildError, BuildOptions, CreateError, LayoutError, LoadKernelError, OracleCheck, Verdict,
};
use toolstack::config::DomainConfig;
use toolstack::save::xc;

fn model() -> Model {
    Model::new(ModelConfig {
        machine_frames: 16384,
    })
}

fn cfg(kernel: &str, memory: u64, extra: &str) -> DomainConfig {
    let text = format!(
        "name = \"k\"\nmemory = {memory}\nvcpus = 1\nkernel = \"{kernel}\"\nextra = \"{extra}\"\n"
    );
    DomainConfig::parse(&text, "k.cfg").expect("config parses")
}

fn domains(m: &mut Model) -> Vec<u16> {
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_GETDOMAININFOLIST);
    s.set_payload(&SysctlGetDomainInfoList {
        first_domain: 0,
        max_domains: 64,
        ..Default::default()
    });
    let mut buf = vec![0u8; 64 * 112];
    m.sysctl(&mut s, &mut buf).unwrap();
    let p: SysctlGetDomainInfoList = s.payload();
    (0..p.num_domains as usize)
        .map(|i| u16::from_le_bytes([buf[i * 112], buf[i * 112 + 1]]))
        .collect()
}

fn free_pages(m: &mut Model) -> u64 {
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO);
    m.sysctl(&mut s, &mut []).unwrap();
    let p: SysctlPhysinfo = s.payload();
    p.free_pages
}

#[test]
fn a_toy_guest_as_an_elf_file_boots_and_its_oracle_holds() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "pages=12 report=20";
    let toy = guest_model::toy("counter", extra).unwrap();
    let path = dir.path().join("counter.elf");
    std::fs::write(&path, toy.to_elf()).unwrap();
    let c = cfg(&path.display().to_string(), 4, extra);
    assert_eq!(build::toy_params(&c).unwrap(), None, "a file, not a toy");
    let mut m = model();
    let d = build::create(&mut m, &c, &BuildOptions::default()).expect("create from ELF");
    assert_eq!(d.layout.hypercall_page, Some(toy.hypercall_pfn()));
    assert_eq!(d.layout.kernel.pfn, Pfn::new(0));
    // The image is in the guest page by page (the hypercall page filled by Xen).
    let pages = build::read_guest_pages(
        &mut m,
        d.domid,
        &d.p2m,
        (0..guest_model::layout::PG_HYPERCALL).map(Pfn::new),
    )
    .unwrap();
    for (pfn, page) in &pages.pages {
        let at = pfn.index() * 4096;
        assert_eq!(&page[..], &toy.bytes[at..at + 4096], "pfn {pfn}");
    }
    let hc = build::read_guest_pages(&mut m, d.domid, &d.p2m, [toy.hypercall_pfn()]).unwrap();
    assert!(hc.pages[&toy.hypercall_pfn()].iter().any(|&b| b != 0));
    let params = ToyParams::parse(Guest::Counter, extra).unwrap();
    for _ in 0..3 {
        m.run(400_000);
        m.check_invariants().unwrap();
        let console = String::from_utf8(m.console_output(d.domid)).unwrap();
        let v = build::check_oracle(
            &mut m,
            d.domid,
            &params,
            &OracleCheck {
                stop: Stop::Anywhere,
                p2m: None,
                console: Some(&console),
            },
        )
        .unwrap();
        match v {
            Verdict::Holds(st) => assert!(st.steps > 0),
            Verdict::Fails(e) => panic!("{e}\n{console}"),
        }
    }
    // The guest's published p2m (found as a saver finds it) is the builder's.
    let found = build::guest_p2m(&mut m, d.domid).unwrap();
    assert_eq!(&found[..d.p2m.len()], &d.p2m[..]);
    // Oracle regions are what `Oracle::region` says for the parameters.
    assert_eq!(
        Oracle::region(&params).start,
        Pfn::new(guest_model::layout::PG_GUEST)
    );
}

#[test]
fn a_flat_binary_by_path_runs_at_4_mib() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spin.bin");
    // jmp $
    std::fs::write(&path, [0xeb, 0xfe]).unwrap();
    let mut m = model();
    let d = build::create(
        &mut m,
        &cfg(&path.display().to_string(), 4, ""),
        &BuildOptions::default(),
    )
    .expect("create");
    assert_eq!(d.layout.hypercall_page, None);
    m.run(10_000);
    let ctx = xc::get_vcpu_context(&mut m, d.domid, 0).unwrap();
    assert_eq!(ctx.user_regs.rip, build::DEFAULT_FLAT_BASE);
    let info = xc::domain_info(&mut m, d.domid).unwrap();
    assert_eq!(info.flags & hypervisor::abi::domctl::XEN_DOMINF_SHUTDOWN, 0);
    m.check_invariants().unwrap();
}

/// `create` fails as `check` says and leaves the host as it was.
fn fails_cleanly(c: &DomainConfig, check: impl FnOnce(&CreateError)) {
    let mut m = model();
    let free = free_pages(&mut m);
    let e = build::create(&mut m, c, &BuildOptions::default()).expect_err("must fail");
    assert!(e.to_string().contains("\"k\""), "names the domain: {e}");
    check(&e);
    assert_eq!(domains(&mut m), vec![0], "no domain left: {e}");
    assert_eq!(free_pages(&mut m), free, "no frame left: {e}");
    let r = m.xs_read(XS_NO_TX, "/local/domain/1");
    assert_eq!(
        r.unwrap_err().errno(),
        Some(Errno::ENOENT),
        "no xenstore home"
    );
    m.check_invariants().unwrap();
}

#[test]
fn bad_kernels_and_configs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // A kernel path that does not exist.
    let missing = dir.path().join("no-such-kernel");
    let missing_s = missing.display().to_string();
    fails_cleanly(&cfg(&missing_s, 4, ""), |e| {
        assert!(
            matches!(e, CreateError::Kernel { source: LoadKernelError::Io { path, .. }, .. } if *path == missing_s),
            "{e:?}"
        );
        let chain = format!("{e}: {}", std::error::Error::source(e).unwrap());
        assert!(chain.contains(&missing_s), "{chain}");
    });
    // Malformed ELFs: truncated header; a program header past the end of the file;
    // the toy ELF cut short inside its load segment.
    let good = guest_model::toy("counter", "pages=4").unwrap().to_elf();
    let mut past_end = good.clone();
    past_end[64 + 8..64 + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    for (name, bytes) in [
        ("short.elf", b"\x7fELF\x02\x01".to_vec()),
        ("past-end.elf", past_end),
        ("cut.elf", good[..4096 + 100].to_vec()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let ps = p.display().to_string();
        fails_cleanly(&cfg(&ps, 4, ""), |e| {
            assert!(
                matches!(e, CreateError::Kernel { source: LoadKernelError::Image { path, .. }, .. } if *path == ps),
                "{name}: {e:?}"
            );
        });
    }
    // Too little memory for the toy (8192 counter pages = 32 MiB in 1 MiB).
    fails_cleanly(&cfg("toy:counter", 1, "pages=8192"), |e| {
        assert!(
            matches!(
                e,
                CreateError::Build {
                    source: BuildError::Layout(LayoutError::TooSmall { .. }),
                    ..
                }
            ),
            "{e:?}"
        );
    });
    // An unknown toy, and bad toy parameters.
    fails_cleanly(&cfg("toy:countre", 4, ""), |e| {
        assert!(
            matches!(e, CreateError::Kernel { source: LoadKernelError::Toy { name, .. }, .. } if name == "countre"),
            "{e:?}"
        );
        assert!(format!("{e}").contains("countre"), "{e}");
    });
    fails_cleanly(&cfg("toy:epoch", 4, "writes=0"), |e| {
        assert!(format!("{e}").contains("writes"), "{e}");
    });
    // More guest memory than the host has.
    fails_cleanly(&cfg("toy:counter", 128, ""), |e| {
        assert!(matches!(e, CreateError::Build { .. }), "{e:?}");
    });
}

#[test]
fn every_guest_builds_from_config_text() {
    // Each toy with its parameters, and the xenstore home the guest relies on.
    let mut m = model();
    for (guest, extra) in [
        ("counter", "pages=3"),
        ("epoch", "seed=9"),
        ("pagetable", ""),
        ("pingpong", "role=ping"),
    ] {
        // Names are unique on a host (libxl refuses a second "k").
        let mut c = cfg(&format!("toy:{guest}"), 4, extra);
        c.name = format!("k-{guest}");
        let d = build::create(&mut m, &c, &BuildOptions::default()).expect(guest);
        let home = format!("/local/domain/{}", d.domid.get());
        assert_eq!(m.xs_get_domain_path(d.domid).unwrap(), home);
        let perms = m
            .xs_get_perms(XS_NO_TX, &format!("{home}/control/shutdown"))
            .unwrap();
        assert_eq!(perms[0].dom, d.domid, "the guest owns control/shutdown");
        let perms = m.xs_get_perms(XS_NO_TX, &format!("{home}/data")).unwrap();
        assert_eq!(perms[0].dom, d.domid, "the guest owns data/");
        let _ = DomId::DOM0;
    }
    m.run(2_000_000);
    m.check_invariants().unwrap();
}
