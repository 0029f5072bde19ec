//! Save and restore against the model, through the `Xen` trait: the counter toy guest
//! built by `toolstack::build`, saved, restored into a new domain and run further;
//! failure paths (a writer that fails, a guest that never suspends) and corrupted
//! streams (truncations, bit flips) that must fail cleanly and leak nothing.

use hypervisor::abi::domctl::{self as dc};
use hypervisor::abi::shared::SharedInfo;
use hypervisor::abi::sysctl::{self as sc, SysctlGetDomainInfoList, SysctlPhysinfo, XenSysctl};
use hypervisor::model::{Model, ModelConfig};
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Mfn, Xen, XS_NO_TX};
use toolstack::build::{build, BuildOptions, BuiltDomain, KernelImage};
use toolstack::config::{DomainConfig, KernelSpec};
use toolstack::p2m;
use toolstack::restore::{restore, RestoreError, RestoreOptions};
use toolstack::save::{save, save_to_file, xc, AfterSave, SaveError, SaveOptions};
use toolstack::stream::{read_all, Item, LibxcRecord, ReaderOptions};
use toolstack::suspend::{self, SuspendError};
use zerocopy::FromBytes;

const PG_GLOBALS: u64 = 9;
const ST_STEPS: usize = 0x08;
const ST_RESUMES: usize = 0x10;
const ST_CANCELS: usize = 0x18;
const ST_STATE: usize = 0x28;

fn model() -> Model {
    Model::new(ModelConfig {
        machine_frames: 16384,
    })
}

fn counter(m: &mut Model, name: &str) -> BuiltDomain {
    let toy = guest_model::toy("counter", "pages=16 report=0").expect("toy");
    let image = KernelImage::from_flat(toy.bytes.clone(), toy.virt_base, toy.entry)
        .and_then(|i| i.with_hypercall_page(toy.hypercall_page))
        .expect("image");
    let mut cfg = DomainConfig::new(name, 4, KernelSpec::Toy("counter".into()));
    cfg.extra = Some("pages=16 report=0".into());
    build(m, &cfg, &image, &BuildOptions::default(), None).expect("build")
}

fn spinner(m: &mut Model) -> BuiltDomain {
    let image = KernelImage::from_flat(vec![0xeb, 0xfe], 0x40_0000, 0x40_0000).expect("image");
    build(
        m,
        &DomainConfig::new("spin", 4, KernelSpec::Toy("spin".into())),
        &image,
        &BuildOptions::default(),
        None,
    )
    .expect("build")
}

fn status(m: &mut Model, dom: DomId, p2m: &[Mfn], off: usize) -> u64 {
    let page = xc::read_frames(m, dom, &[p2m[PG_GLOBALS as usize]])
        .unwrap()
        .unwrap();
    xc::le64(&page, off)
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

fn running_counter(m: &mut Model) -> BuiltDomain {
    let d = counter(m, "counter");
    m.run(3_000_000);
    let steps = status(m, d.domid, &d.p2m, ST_STEPS);
    assert!(steps > 0, "the counter runs");
    d
}

fn saved_stream(m: &mut Model, d: &BuiltDomain) -> Vec<u8> {
    let mut out = Vec::new();
    save(m, d.domid, &mut out, SaveOptions::default()).expect("save");
    out
}

#[test]
fn counter_keeps_counting_in_the_new_domain() {
    let mut m = model();
    let d = running_counter(&mut m);
    let before = status(&mut m, d.domid, &d.p2m, ST_STEPS);
    let mut progress = Vec::new();
    let mut cb = |p: toolstack::save::Progress| progress.push(p);
    let mut out = Vec::new();
    let summary = save(
        &mut m,
        d.domid,
        &mut out,
        SaveOptions {
            progress: Some(&mut cb),
            ..SaveOptions::default()
        },
    )
    .expect("save");
    assert!(!progress.is_empty());
    assert_eq!(summary.bytes, out.len() as u64);
    assert_eq!(summary.vcpus, 1);
    assert!(
        !domains(&mut m).contains(&d.domid.get()),
        "destroyed after save"
    );
    m.check_invariants().expect("invariants after save");

    // The stream is what xi's reader (and Xen's checks) accept.
    let items = read_all(
        &out[..],
        ReaderOptions {
            require_zero_padding: true,
            ..ReaderOptions::default()
        },
    )
    .expect("stream reads back");
    assert!(items
        .iter()
        .any(|i| matches!(i.item, Item::Libxc(LibxcRecord::SharedInfo(_)))));

    let r = restore(&mut m, &out[..], RestoreOptions::default()).expect("restore");
    m.check_invariants().expect("invariants after restore");
    let info = xc::domain_info(&mut m, r.domid).unwrap();
    assert_ne!(info.flags & dc::XEN_DOMINF_PAUSED, 0, "left paused");
    assert_eq!(info.flags & dc::XEN_DOMINF_SHUTDOWN, 0, "not shut down");
    // Every event channel masked, nothing pending.
    let sh = xc::read_frames(&mut m, r.domid, &[Mfn::new(info.shared_info_frame)])
        .unwrap()
        .unwrap();
    let sh = SharedInfo::read_from_prefix(&sh[..]).unwrap().0;
    assert!(sh.evtchn_mask.iter().all(|&w| w == u64::MAX));
    // Nothing pending but what xenstored/xenconsoled signalled on the new ports.
    let mut pending = sh.evtchn_pending;
    for port in [r.store.1.get(), r.console.1.get()] {
        pending[port as usize / 64] &= !(1u64 << (port % 64));
    }
    assert!(pending.iter().all(|&w| w == 0), "pending {pending:x?}");
    assert_eq!(sh.arch.pfn_to_mfn_frame_list_list, 0);
    // Memory by PFN: the steps counter is what it was at the suspend.
    let at_restore = status(&mut m, r.domid, &r.p2m, ST_STEPS);
    assert!(at_restore >= before);
    assert_eq!(
        m.xs_read(XS_NO_TX, &format!("/local/domain/{}/name", r.domid.get()))
            .unwrap(),
        b"counter"
    );

    xc::unpause(&mut m, r.domid).unwrap();
    m.run(3_000_000);
    m.check_invariants()
        .expect("invariants after running the restored guest");
    let after = status(&mut m, r.domid, &r.p2m, ST_STEPS);
    let state = status(&mut m, r.domid, &r.p2m, ST_STATE);
    let console = String::from_utf8_lossy(&m.console_output(r.domid)).into_owned();
    assert_eq!(
        status(&mut m, r.domid, &r.p2m, ST_RESUMES),
        1,
        "suspend returned 0 once; console: {console}"
    );
    assert!(
        after > at_restore,
        "the counter keeps counting ({at_restore} -> {after}), state {state}; console: {console}"
    );

    // Save the restored domain again: same shape of stream.
    let again = saved_stream(
        &mut m,
        &BuiltDomain {
            domid: r.domid,
            p2m: r.p2m.clone(),
            ..d.clone()
        },
    );
    let kinds = |s: &[u8]| -> Vec<&'static str> {
        read_all(s, ReaderOptions::default())
            .unwrap()
            .iter()
            .map(|i| match &i.item {
                Item::Libxc(r) => r.name(),
                _ => "hdr",
            })
            .collect()
    };
    assert_eq!(kinds(&out), kinds(&again));
    let file = std::env::temp_dir().join(format!("xi-save-restore-{}.xl", std::process::id()));
    std::fs::write(&file, &out).unwrap();
    if let Ok(keep) = std::env::var("XI_SAVE_RESTORE_OUT") {
        std::fs::write(keep, &out).unwrap();
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/verify-stream.sh");
    if script.exists() {
        let st = std::process::Command::new("bash")
            .arg(&script)
            .arg(&file)
            .output()
            .expect("run verify-stream");
        assert!(
            st.status.success() || st.status.code() == Some(77),
            "verify-stream-v2 rejected the stream: {}{}",
            String::from_utf8_lossy(&st.stdout),
            String::from_utf8_lossy(&st.stderr)
        );
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn checkpoint_resumes_the_same_domain_with_suspend_returning_1() {
    let mut m = model();
    let d = running_counter(&mut m);
    let mut out = Vec::new();
    save(
        &mut m,
        d.domid,
        &mut out,
        SaveOptions {
            after: AfterSave::Checkpoint,
            ..SaveOptions::default()
        },
    )
    .expect("save -c");
    let before = status(&mut m, d.domid, &d.p2m, ST_STEPS);
    m.run(3_000_000);
    assert_eq!(status(&mut m, d.domid, &d.p2m, ST_CANCELS), 1);
    assert!(status(&mut m, d.domid, &d.p2m, ST_STEPS) > before);
    m.check_invariants().unwrap();
}

#[test]
fn leave_paused_keeps_the_domain_paused() {
    let mut m = model();
    let d = running_counter(&mut m);
    save(
        &mut m,
        d.domid,
        std::io::sink(),
        SaveOptions {
            after: AfterSave::LeavePaused,
            ..SaveOptions::default()
        },
    )
    .expect("save -p");
    let info = xc::domain_info(&mut m, d.domid).unwrap();
    assert_ne!(info.flags & dc::XEN_DOMINF_PAUSED, 0);
    assert_eq!(info.flags & dc::XEN_DOMINF_SHUTDOWN, 0);
    xc::unpause(&mut m, d.domid).unwrap();
    m.run(2_000_000);
    assert_eq!(status(&mut m, d.domid, &d.p2m, ST_CANCELS), 1);
}

/// A writer that fails after `left` bytes.
struct Failing {
    left: usize,
}
impl std::io::Write for Failing {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("disk full"));
        }
        let n = b.len().min(self.left);
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_writer_leaves_the_domain_running() {
    let mut m = model();
    let d = running_counter(&mut m);
    let e = save(
        &mut m,
        d.domid,
        Failing { left: 100_000 },
        SaveOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, SaveError::Stream { .. }), "{e}");
    let info = xc::domain_info(&mut m, d.domid).unwrap();
    assert_eq!(info.flags & dc::XEN_DOMINF_SHUTDOWN, 0, "resumed");
    let before = status(&mut m, d.domid, &d.p2m, ST_STEPS);
    m.run(2_000_000);
    assert_eq!(status(&mut m, d.domid, &d.p2m, ST_CANCELS), 1);
    assert!(status(&mut m, d.domid, &d.p2m, ST_STEPS) > before);
}

#[test]
fn save_to_file_is_atomic() {
    let mut m = model();
    let d = running_counter(&mut m);
    let dir = std::env::temp_dir().join(format!("xi-sr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A path whose rename must fail (a directory is in the way).
    let blocked = dir.join("blocked.xl");
    std::fs::create_dir_all(blocked.join("x")).unwrap();
    let e = save_to_file(&mut m, d.domid, &blocked, SaveOptions::default()).unwrap_err();
    assert!(matches!(e, SaveError::File { .. }), "{e}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left"
    );
    assert!(
        domains(&mut m).contains(&d.domid.get()),
        "the domain still exists"
    );
    m.run(1_000_000);
    let good = dir.join("good.xl");
    let s = save_to_file(&mut m, d.domid, &good, SaveOptions::default()).expect("save to file");
    assert_eq!(std::fs::metadata(&good).unwrap().len(), s.bytes);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_guest_that_never_suspends_times_out_and_keeps_running() {
    let mut m = model();
    let d = spinner(&mut m);
    let e = save(
        &mut m,
        d.domid,
        std::io::sink(),
        SaveOptions {
            suspend_timeout_ns: 1_000_000_000,
            ..SaveOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, SaveError::Suspend(SuspendError::NoAck { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("never acknowledged"), "{e}");
    let info = xc::domain_info(&mut m, d.domid).unwrap();
    assert_eq!(
        info.flags & (dc::XEN_DOMINF_SHUTDOWN | dc::XEN_DOMINF_PAUSED),
        0
    );
    let node = m
        .xs_read(
            XS_NO_TX,
            &format!("/local/domain/{}/control/shutdown", d.domid.get()),
        )
        .unwrap();
    assert_eq!(node, b"", "request withdrawn");
    assert!(!suspend::is_suspended(&info));
}

#[test]
fn the_m2p_and_p2m_agree() {
    let mut m = model();
    let d = running_counter(&mut m);
    let m2p = p2m::read_m2p(&mut m).unwrap();
    let info = xc::domain_info(&mut m, d.domid).unwrap();
    let sh = xc::read_frames(&mut m, d.domid, &[Mfn::new(info.shared_info_frame)])
        .unwrap()
        .unwrap();
    let sh = SharedInfo::read_from_prefix(&sh[..]).unwrap().0;
    let p = p2m::read_p2m(&mut m, d.domid, &sh, &m2p).unwrap();
    assert_eq!(p.entries, d.p2m);
    for (pfn, mfn) in d.p2m.iter().enumerate() {
        assert_eq!(p.pfn_of(&m2p, *mfn).map(|p| p.get()), Some(pfn as u64));
    }
}

fn check_no_leak(m: &mut Model, doms: &[u16], free: u64, what: &str) {
    assert_eq!(domains(m), doms, "{what}: domains");
    assert_eq!(free_pages(m), free, "{what}: free pages");
    m.check_invariants()
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
}

fn restore_corrupt(m: &mut Model, bytes: &[u8], doms: &[u16], free: u64, what: &str) {
    match restore(m, bytes, RestoreOptions::default()) {
        Ok(r) => {
            m.check_invariants()
                .unwrap_or_else(|e| panic!("{what}: restored but {e:?}"));
            xc::destroy(m, r.domid).unwrap();
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(
                !matches!(e, RestoreError::CleanupFailed { .. }),
                "{what}: {e}"
            );
        }
    }
    check_no_leak(m, doms, free, what);
}

#[test]
fn truncated_and_corrupted_streams_fail_cleanly() {
    let mut m = model();
    let d = running_counter(&mut m);
    let out = saved_stream(&mut m, &d);
    let doms = domains(&mut m);
    let free = free_pages(&mut m);
    let items = read_all(&out[..], ReaderOptions::default()).unwrap();
    let mut cuts: Vec<usize> = items.iter().map(|i| i.offset as usize).collect();
    cuts.extend([1, 47, 60, out.len() - 1]);
    for i in &items {
        cuts.push(i.offset as usize + 12);
    }
    for cut in cuts {
        if cut >= out.len() {
            continue;
        }
        let e = restore(&mut m, &out[..cut], RestoreOptions::default()).unwrap_err();
        let _ = e.to_string();
        check_no_leak(&mut m, &doms, free, &format!("truncated at {cut}"));
    }
    // Bit flips: every record header, and a deterministic spread over the body.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut positions: Vec<usize> = items
        .iter()
        .flat_map(|i| (0..16).map(move |k| i.offset as usize + k))
        .collect();
    for _ in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        positions.push((seed % out.len() as u64) as usize);
    }
    for (n, pos) in positions.into_iter().enumerate() {
        if pos >= out.len() {
            continue;
        }
        let mut bad = out.clone();
        bad[pos] ^= 1 << (n % 8);
        restore_corrupt(
            &mut m,
            &bad,
            &doms,
            free,
            &format!("bit {} of byte {pos} flipped", n % 8),
        );
    }
}

#[test]
fn a_pfn_outside_the_guest_is_named() {
    let mut m = model();
    let d = running_counter(&mut m);
    let out = saved_stream(&mut m, &d);
    let items = read_all(&out[..], ReaderOptions::default()).unwrap();
    // Point the first present entry of the first L1 table at a huge pfn.
    let mut bad = out.clone();
    let mut done = false;
    for i in &items {
        if let Item::Libxc(LibxcRecord::PageData(pd)) = &i.item {
            let base = i.offset as usize + 8 + 8 + 8 * pd.entries.len();
            let mut k = 0;
            for e in &pd.entries {
                if !e.ty.has_data() {
                    continue;
                }
                if e.ty.level() == Some(1) && !done {
                    let page = base + k * PAGE_SIZE;
                    for j in 0..512 {
                        let o = page + j * 8;
                        let pte = u64::from_le_bytes(bad[o..o + 8].try_into().unwrap());
                        if pte & 1 != 0 {
                            let new = (pte & 0xfff) | (0xfff_ffffu64 << 12);
                            bad[o..o + 8].copy_from_slice(&new.to_le_bytes());
                            done = true;
                            break;
                        }
                    }
                }
                k += 1;
            }
        }
    }
    assert!(done);
    let doms = domains(&mut m);
    let free = free_pages(&mut m);
    let e = restore(&mut m, &bad[..], RestoreOptions::default()).unwrap_err();
    let s = e.to_string();
    assert!(
        matches!(e, RestoreError::Invalid { pfn: Some(_), .. }),
        "{s}"
    );
    assert!(
        s.contains("PAGE_DATA") && s.contains("offset") && s.contains("outside the guest"),
        "{s}"
    );
    check_no_leak(&mut m, &doms, free, "bad pte");
}

#[test]
fn a_stream_claiming_a_huge_guest_is_refused_before_allocating_it() {
    use toolstack::stream::{
        DomainHeader, ImageHeader, LibxlHeader, LibxlRecord, StreamWriter, X86PvInfo,
        X86PvP2mFrames, XlHeader,
    };
    let mut m = model();
    let doms = domains(&mut m);
    let free = free_pages(&mut m);
    // 2^28 pfns (a 1 TiB guest): restore's own p2m would be 2 GiB. The record itself
    // is well formed (its 2^19 frame pfns are really in the file), as is the config.
    let end_pfn = (1u32 << 28) - 1;
    let frames = X86PvP2mFrames::frames_needed(0, end_pfn, 8);
    let mut w = StreamWriter::new(Vec::new());
    let config = r#"{"c_info":{"type":"pv","name":"huge"},"b_info":{"max_vcpus":1,"max_memkb":1073741824,"target_memkb":1073741824}}"#;
    w.write_xl_header(&XlHeader::with_json_config(config))
        .unwrap();
    w.write_libxl_header(&LibxlHeader::default()).unwrap();
    w.write_libxl_record(&LibxlRecord::LibxcContext).unwrap();
    w.write_image_header(&ImageHeader::default()).unwrap();
    w.write_domain_header(&DomainHeader::x86_pv(4, 17)).unwrap();
    w.write_libxc_record(&LibxcRecord::X86PvInfo(X86PvInfo::X86_64))
        .unwrap();
    w.write_libxc_record(&LibxcRecord::StaticDataEnd).unwrap();
    w.write_libxc_record(&LibxcRecord::X86PvP2mFrames(X86PvP2mFrames {
        start_pfn: 0,
        end_pfn,
        frames: (0..frames).map(hypervisor::Pfn::new).collect(),
    }))
    .unwrap();
    let bytes = w.into_inner();
    let e = restore(&mut m, &bytes[..], RestoreOptions::default()).unwrap_err();
    let s = e.to_string();
    assert!(
        matches!(
            e,
            RestoreError::Invalid {
                record: "X86_PV_P2M_FRAMES",
                ..
            }
        ) && s.contains("more than the host has"),
        "{s}"
    );
    check_no_leak(&mut m, &doms, free, "huge p2m");
}
