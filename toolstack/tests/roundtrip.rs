//! Save/restore round trips of every toy guest on the model, checked against
//! independent oracles: the guest's own oracle (`guest_model`), the source domain's
//! memory and vCPU state captured at the suspend, and the hypervisor's M2P.
//!
//! For each guest (counter, epoch, pagetable, pingpong with its peer) and a few seeds:
//! run a seeded number of instructions, suspend, capture memory by PFN and vCPU 0's
//! context, save, restore into a new domain, compare before it runs, unpause, run
//! more, and check the oracle, the console transcript and the event channels.
//!
//! What may differ between the source at its suspend and the restored domain before it
//! runs (stream.md §4, §5.3), and nothing else:
//!
//! | where | field | restored value |
//! |---|---|---|
//! | page tables (L1–L4) | frame of every present entry | the new MFN of the same PFN (flags unchanged) |
//! | page tables (L4) | Xen's slots 256–271 | whatever Xen puts there (not compared) |
//! | start_info | `store_mfn`, `console.domU.mfn` | the new MFNs of the PFNs the guest left there |
//! | start_info | `store_evtchn`, `console.domU.evtchn` | the new ports |
//! | start_info | `nr_pages` | max_pfn + 1 |
//! | start_info | `shared_info` | the new shared_info frame's machine address |
//! | start_info | `flags` | 0 |
//! | xenstore ring | `req_cons`, `req_prod`, `rsp_cons`, `rsp_prod` | unchanged, or 0 (xenstored resets the ring on introduce) |
//! | the guest's p2m list | entries `0..nr_pages` | the new MFNs (the rest of its pages unchanged) |
//! | vCPU 0 | `rdx` (start_info), `cr3`, `cr1` (if set), GDT frames `0..⌈gdt_ents/512⌉` | the new MFN of the same PFN |
//! | vCPU 0 | `flags` | `VGCF_online` set |
//! | shared_info (not guest memory) | `evtchn_mask` all ones, `evtchn_pending` and every `evtchn_pending_sel` 0, `frame_list_list` 0 | |

use std::collections::BTreeMap;

use guest_model::guests::Oracle;
use guest_model::{Status, Stop, ToyImage};
use hypervisor::abi::domctl as dc;
use hypervisor::abi::mm::MmuextOp;
use hypervisor::abi::mm::{MmuUpdate, MMU_NORMAL_PT_UPDATE, PTE_ADDR_MASK, PTE_PRESENT};
use hypervisor::abi::shared::{SharedInfo, StartInfo};
use hypervisor::abi::sysctl::{self as sc, SysctlPhysinfo, XenSysctl};
use hypervisor::abi::vcpu::{xen_cr3_to_pfn, xen_pfn_to_cr3, VcpuGuestContext, VGCF_ONLINE};
use hypervisor::model::evtchn::EvtchnState;
use hypervisor::model::{Model, ModelConfig};
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Mfn, Port, Xen, XenError, XsPerm, XsTxId, XsWatchEvent};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use toolstack::build::{build, BuildOptions, BuiltDomain, KernelImage};
use toolstack::config::{DomainConfig, KernelSpec};
use toolstack::p2m;
use toolstack::restore::{restore, RestoreError, RestoreOptions, Restored};
use toolstack::save::{save, xc, AfterSave, SaveError, SaveOptions};
use toolstack::suspend;
use zerocopy::{FromBytes, IntoBytes};

const MEMORY_MIB: u64 = 4;
/// `req_cons`, `req_prod`, `rsp_cons`, `rsp_prod` of `struct xenstore_domain_interface`.
const XS_RING_INDICES: usize = 2048;
const SUSPEND_TIMEOUT_NS: u64 = 5_000_000_000;

fn model() -> Model {
    Model::new(ModelConfig {
        machine_frames: 16384,
    })
}

fn image_of(toy: &ToyImage) -> KernelImage {
    KernelImage::from_flat(toy.bytes.clone(), toy.virt_base, toy.entry)
        .and_then(|i| i.with_hypercall_page(toy.hypercall_page))
        .expect("toy image")
}

/// A toy guest built on the model, with what its oracle needs.
struct Guest {
    toy: ToyImage,
    built: BuiltDomain,
}

fn boot(m: &mut Model, name: &str, kind: &str, extra: &str) -> Guest {
    let toy = guest_model::toy(kind, extra).expect("toy");
    let mut cfg = DomainConfig::new(name, MEMORY_MIB, KernelSpec::Toy(kind.into()));
    cfg.extra = Some(extra.into());
    let built = build(m, &cfg, &image_of(&toy), &BuildOptions::default(), None).expect("build");
    Guest { toy, built }
}

/// Every page of `dom` by PFN, read through the Xen trait.
fn memory(m: &mut Model, dom: DomId, p2m: &[Mfn]) -> Vec<Vec<u8>> {
    let bytes = xc::read_frames(m, dom, p2m)
        .expect("foreign read")
        .expect("every page readable");
    bytes.chunks_exact(PAGE_SIZE).map(<[u8]>::to_vec).collect()
}

fn page_types(m: &mut Model, dom: DomId, p2m: &[Mfn]) -> Vec<u32> {
    xc::page_types(m, dom, p2m).expect("getpageframeinfo3")
}

fn level_of(pfinfo: u32) -> Option<u8> {
    match (pfinfo >> dc::XEN_DOMCTL_PFINFO_LTAB_SHIFT) & 0x7 {
        l @ 1..=4 => Some(l as u8),
        _ => None,
    }
}

fn le64(page: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(page[off..off + 8].try_into().unwrap())
}

fn free_pages(m: &mut Model) -> u64 {
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO);
    m.sysctl(&mut s, &mut []).unwrap();
    let p: SysctlPhysinfo = s.payload();
    p.free_pages
}

fn shared_info(m: &mut Model, dom: DomId) -> SharedInfo {
    let info = xc::domain_info(m, dom).unwrap();
    let page = xc::read_frames(m, dom, &[Mfn::new(info.shared_info_frame)])
        .unwrap()
        .unwrap();
    SharedInfo::read_from_prefix(&page[..]).unwrap().0
}

fn console(m: &Model, dom: DomId) -> String {
    String::from_utf8_lossy(&m.console_output(dom)).into_owned()
}

/// The source domain at its suspend.
struct Snapshot {
    mem: Vec<Vec<u8>>,
    types: Vec<u32>,
    vcpu0: VcpuGuestContext,
    console: String,
    status: Status,
}

fn suspend_and_capture(m: &mut Model, g: &Guest) -> Snapshot {
    let dom = g.built.domid;
    suspend::suspend(m, dom, SUSPEND_TIMEOUT_NS)
        .unwrap_or_else(|e| panic!("{}: {e}; console: {}", g.toy.name, console(m, dom)));
    let mem = memory(m, dom, &g.built.p2m);
    let console = console(m, dom);
    let oracle = Oracle::new(&g.toy.params);
    let status = oracle
        .check_all(&mem, &console, Stop::SafePoint)
        .unwrap_or_else(|e| panic!("{} at its suspend: {e}; console:\n{console}", g.toy.name));
    assert_eq!(status.suspends, status.resumes + status.cancels + 1);
    Snapshot {
        types: page_types(m, dom, &g.built.p2m),
        vcpu0: xc::get_vcpu_context(m, dom, 0).unwrap(),
        mem,
        console,
        status,
    }
}

/// Checks the restored domain's P2M against Xen's M2P and ownership: every PFN's
/// frame maps back to it and is readable as the new domain's.
fn check_new_p2m(m: &mut Model, r: &Restored, nr: usize) {
    assert_eq!(r.p2m.len(), nr, "p2m size");
    let m2p = p2m::read_m2p(m).unwrap();
    for (pfn, &mfn) in r.p2m.iter().enumerate() {
        assert_eq!(
            m2p.get(mfn).map(|p| p.get()),
            Some(pfn as u64),
            "M2P of the new mfn {mfn:?} of pfn {pfn:#x}"
        );
    }
    // Readable means owned by the new domain.
    let _ = memory(m, r.domid, &r.p2m);
}

/// Compares the source at its suspend with the restored domain before it runs; the
/// only differences allowed are those in the table at the top of this file.
fn compare_memory(m: &mut Model, g: &Guest, snap: &Snapshot, r: &Restored) {
    let name = g.toy.name;
    let dst = memory(m, r.domid, &r.p2m);
    let dst_types = page_types(m, r.domid, &r.p2m);
    let src_pfn: BTreeMap<u64, u64> = g
        .built
        .p2m
        .iter()
        .enumerate()
        .map(|(p, m)| (m.get(), p as u64))
        .collect();
    let dst_pfn: BTreeMap<u64, u64> = r
        .p2m
        .iter()
        .enumerate()
        .map(|(p, m)| (m.get(), p as u64))
        .collect();
    let layout = &g.built.layout;
    let si_pfn = layout.start_info.pfn.get();
    let info = xc::domain_info(m, r.domid).unwrap();
    let mut tables = 0;
    for pfn in 0..snap.mem.len() {
        let (a, b) = (&snap.mem[pfn], &dst[pfn]);
        let ty = snap.types[pfn];
        // Page types (and pins) survive.
        assert_eq!(
            ty & dc::XEN_DOMCTL_PFINFO_LTAB_MASK,
            dst_types[pfn] & dc::XEN_DOMCTL_PFINFO_LTAB_MASK,
            "{name}: type of pfn {pfn:#x}"
        );
        if let Some(level) = level_of(ty) {
            tables += 1;
            for i in 0..512 {
                if level == 4 && (256..=271).contains(&i) {
                    continue;
                }
                let (x, y) = (le64(a, i * 8), le64(b, i * 8));
                if x & PTE_PRESENT == 0 {
                    assert_eq!(
                        x, y,
                        "{name}: L{level} pfn {pfn:#x} entry {i} (not present)"
                    );
                    continue;
                }
                assert_eq!(
                    x & !PTE_ADDR_MASK,
                    y & !PTE_ADDR_MASK,
                    "{name}: L{level} pfn {pfn:#x} entry {i} flags"
                );
                let (fx, fy) = ((x & PTE_ADDR_MASK) >> 12, (y & PTE_ADDR_MASK) >> 12);
                assert_eq!(
                    src_pfn.get(&fx),
                    dst_pfn.get(&fy),
                    "{name}: L{level} pfn {pfn:#x} entry {i} maps another pfn"
                );
                assert!(
                    src_pfn.contains_key(&fx),
                    "{name}: source maps a non-guest frame"
                );
            }
        } else if pfn as u64 == si_pfn {
            let (s, d) = (
                StartInfo::read_from_prefix(&a[..]).unwrap().0,
                StartInfo::read_from_prefix(&b[..]).unwrap().0,
            );
            assert_eq!(
                d.store_mfn,
                r.p2m[s.store_mfn as usize].get(),
                "{name}: store_mfn"
            );
            assert_eq!(
                d.console_mfn,
                r.p2m[s.console_mfn as usize].get(),
                "{name}: console mfn"
            );
            assert_eq!(d.store_evtchn, r.store.1.get(), "{name}: store_evtchn");
            assert_eq!(
                d.console_evtchn,
                r.console.1.get(),
                "{name}: console evtchn"
            );
            assert_eq!(d.nr_pages, snap.mem.len() as u64, "{name}: nr_pages");
            assert_eq!(
                d.shared_info,
                info.shared_info_frame << 12,
                "{name}: shared_info"
            );
            assert_eq!(d.flags, 0, "{name}: flags");
            let mut expect = s;
            expect.store_mfn = d.store_mfn;
            expect.console_mfn = d.console_mfn;
            expect.store_evtchn = d.store_evtchn;
            expect.console_evtchn = d.console_evtchn;
            expect.nr_pages = d.nr_pages;
            expect.shared_info = d.shared_info;
            expect.flags = 0;
            let n = core::mem::size_of::<StartInfo>();
            assert_eq!(expect.as_bytes(), &b[..n], "{name}: start_info");
            assert_eq!(a[n..], b[n..], "{name}: start_info page tail");
        } else if pfn as u64 == layout.xenstore.pfn.get() {
            // xenstored may reset the ring indices when the domain is introduced.
            let (idx, end) = (XS_RING_INDICES, XS_RING_INDICES + 16);
            assert!(
                a[..idx] == b[..idx] && a[end..] == b[end..],
                "{name}: xenstore ring"
            );
            assert!(
                a[idx..end] == b[idx..end] || b[idx..end].iter().all(|&x| x == 0),
                "{name}: xenstore ring indices {:x?} -> {:x?}",
                &a[idx..end],
                &b[idx..end]
            );
        } else if layout.p2m.contains(hypervisor::Pfn::new(pfn as u64)) {
            let first = (pfn as u64 - layout.p2m.pfn.get()) as usize * 512;
            for i in 0..512 {
                let (x, y) = (le64(a, i * 8), le64(b, i * 8));
                match r.p2m.get(first + i) {
                    Some(new) => assert_eq!(y, new.get(), "{name}: p2m entry {}", first + i),
                    None => assert_eq!(x, y, "{name}: p2m list tail at {}", first + i),
                }
            }
        } else {
            let diff: Vec<(usize, u8, u8)> = (0..PAGE_SIZE)
                .filter(|&i| a[i] != b[i])
                .map(|i| (i, a[i], b[i]))
                .take(16)
                .collect();
            assert!(
                diff.is_empty(),
                "{name}: pfn {pfn:#x} differs after restore: {diff:x?}"
            );
        }
    }
    assert!(tables >= 4, "{name}: the guest has page tables");
}

fn compare_vcpu0(m: &mut Model, g: &Guest, snap: &Snapshot, r: &Restored) {
    let name = g.toy.name;
    let src_pfn = |mfn: u64| {
        g.built
            .p2m
            .iter()
            .position(|m| m.get() == mfn)
            .unwrap_or_else(|| panic!("{name}: vCPU 0 names mfn {mfn:#x}, not the guest's"))
    };
    let new = |mfn: u64| r.p2m[src_pfn(mfn)].get();
    let mut expect = snap.vcpu0;
    expect.user_regs.rdx = new(expect.user_regs.rdx);
    expect.ctrlreg[3] = xen_pfn_to_cr3(new(xen_cr3_to_pfn(expect.ctrlreg[3])));
    // getvcpucontext reports the user L4 as `mfn << 12` (the stream's `1 | pfn << 12`
    // is the saver's encoding only).
    if expect.ctrlreg[1] != 0 {
        expect.ctrlreg[1] = (expect.ctrlreg[1] & 0xfff) | (new(expect.ctrlreg[1] >> 12) << 12);
    }
    for i in 0..expect.gdt_ents.div_ceil(512) as usize {
        expect.gdt_frames[i] = new(expect.gdt_frames[i]);
    }
    expect.flags |= VGCF_ONLINE;
    let got = xc::get_vcpu_context(m, r.domid, 0).unwrap();
    assert_eq!(
        expect.user_regs.rdx,
        r.p2m[g.built.start_info_pfn.index()].get(),
        "{name}: rdx names start_info"
    );
    assert_eq!(expect.flags, got.flags, "{name}: vCPU 0 flags");
    assert_eq!(expect.user_regs, got.user_regs, "{name}: vCPU 0 registers");
    assert_eq!(
        expect.ctrlreg, got.ctrlreg,
        "{name}: vCPU 0 control registers"
    );
    assert_eq!(
        expect.gdt_frames, got.gdt_frames,
        "{name}: vCPU 0 GDT frames"
    );
    assert!(
        expect.as_bytes() == got.as_bytes(),
        "{name}: vCPU 0 context differs after restore (fpu, traps, callbacks, ...)"
    );
}

fn check_masked(m: &mut Model, r: &Restored) {
    let sh = shared_info(m, r.domid);
    assert!(sh.evtchn_mask.iter().all(|&w| w == u64::MAX), "all masked");
    let mut pending = sh.evtchn_pending;
    // xenstored/xenconsoled may already have signalled the new ports.
    for port in [r.store.1.get(), r.console.1.get()] {
        pending[port as usize / 64] &= !(1u64 << (port % 64));
    }
    assert!(pending.iter().all(|&w| w == 0), "pending {pending:x?}");
    assert!(sh.vcpu_info.iter().all(|v| v.evtchn_pending_sel == 0));
    assert_eq!(sh.arch.pfn_to_mfn_frame_list_list, 0);
}

fn is_masked(sh: &SharedInfo, port: u32) -> bool {
    sh.evtchn_mask[port as usize / 64] & (1 << (port % 64)) != 0
}

/// After running: the guest has unmasked the new store/console ports and re-bound
/// (and unmasked) its own channels.
fn check_rebound(m: &mut Model, name: &str, r: &Restored, want: impl Fn(&EvtchnState) -> bool) {
    let sh = shared_info(m, r.domid);
    for port in [r.store.1.get(), r.console.1.get()] {
        assert!(!is_masked(&sh, port), "{name}: port {port} still masked");
    }
    let ports = m.evtchn_ports(r.domid);
    let own: Vec<_> = ports.iter().filter(|(_, s)| want(s)).collect();
    assert!(!own.is_empty(), "{name}: no re-bound channel in {ports:?}");
    for (p, _) in own {
        assert!(
            !is_masked(&sh, p.get()),
            "{name}: re-bound port {p:?} masked"
        );
    }
}

struct RoundTrip {
    snap: Snapshot,
    restored: Restored,
}

/// Suspends `g`, captures it, saves it, restores it and compares.
fn save_and_restore(m: &mut Model, g: &Guest) -> RoundTrip {
    let snap = suspend_and_capture(m, g);
    let mut stream = Vec::new();
    let s = save(
        m,
        g.built.domid,
        &mut stream,
        SaveOptions {
            already_suspended: true,
            ..SaveOptions::default()
        },
    )
    .expect("save");
    assert_eq!(s.bytes, stream.len() as u64);
    assert!(
        xc::domain_info(m, g.built.domid).is_err(),
        "destroyed after save"
    );
    m.check_invariants().expect("invariants after save");
    let r = restore(m, &stream[..], RestoreOptions::default()).expect("restore");
    m.check_invariants().expect("invariants after restore");
    let info = xc::domain_info(m, r.domid).unwrap();
    assert_ne!(info.flags & dc::XEN_DOMINF_PAUSED, 0, "left paused");
    check_new_p2m(m, &r, snap.mem.len());
    compare_memory(m, g, &snap, &r);
    compare_vcpu0(m, g, &snap, &r);
    check_masked(m, &r);
    RoundTrip { snap, restored: r }
}

/// Runs the restored guest and checks its oracle over the whole transcript.
fn run_restored(m: &mut Model, g: &Guest, rt: &RoundTrip, insns: u64) -> Status {
    let r = &rt.restored;
    xc::unpause(m, r.domid).unwrap();
    m.run(insns);
    m.check_invariants().expect("invariants after running");
    let mem = memory(m, r.domid, &r.p2m);
    let transcript = format!("{}{}", rt.snap.console, console(m, r.domid));
    let st = Oracle::new(&g.toy.params)
        .check_all(&mem, &transcript, Stop::Anywhere)
        .unwrap_or_else(|e| panic!("{} after restore: {e}; console:\n{transcript}", g.toy.name));
    assert_eq!(
        st.resumes,
        rt.snap.status.resumes + 1,
        "suspend returned 0 once"
    );
    assert_eq!(st.cancels, rt.snap.status.cancels);
    st
}

fn seeds() -> impl Iterator<Item = u64> {
    [1u64, 2, 3].into_iter()
}

fn insns(rng: &mut ChaCha8Rng) -> u64 {
    rng.gen_range(1_000_000..3_000_000)
}

fn single_guest_round_trip(kind: &str, extra: &str, rebound: impl Fn(&EvtchnState) -> bool) {
    for seed in seeds() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut m = model();
        let g = boot(&mut m, kind, kind, extra);
        m.run(insns(&mut rng));
        let rt = save_and_restore(&mut m, &g);
        let st = run_restored(&mut m, &g, &rt, insns(&mut rng));
        assert!(
            st.steps > rt.snap.status.steps,
            "{kind} seed {seed}: no progress after restore ({} -> {})",
            rt.snap.status.steps,
            st.steps
        );
        check_rebound(&mut m, kind, &rt.restored, &rebound);
    }
}

/// The store and console channels (the only ones counter and pagetable have).
fn to_dom0(s: &EvtchnState) -> bool {
    matches!(s, EvtchnState::Interdomain { remote, .. } if *remote == DomId::DOM0)
}

#[test]
fn counter_round_trip() {
    single_guest_round_trip("counter", "pages=32 report=64", to_dom0);
}

#[test]
fn epoch_round_trip() {
    single_guest_round_trip("epoch", "pages=32 seed=7 writes=8 period_ns=200000", |s| {
        matches!(
            s,
            EvtchnState::Virq {
                virq: hypervisor::abi::evtchn::VIRQ_TIMER,
                ..
            }
        )
    });
}

#[test]
fn pagetable_round_trip() {
    single_guest_round_trip("pagetable", "", to_dom0);
}

#[test]
fn pingpong_round_trip_with_its_peer() {
    for seed in seeds() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut m = model();
        let ping = boot(&mut m, "ping", "pingpong", "role=ping report=50");
        let pong = boot(
            &mut m,
            "pong",
            "pingpong",
            &format!("role=pong peer={} report=50", ping.built.domid.get()),
        );
        m.run(insns(&mut rng));
        let pong_before = memory(&mut m, pong.built.domid, &pong.built.p2m);
        let pong_before = Status::read(&pong_before).unwrap();
        let rt = save_and_restore(&mut m, &ping);
        assert!(
            rt.snap.status.steps > 0,
            "seed {seed}: the pair exchanged notifications"
        );
        let st = run_restored(&mut m, &ping, &rt, insns(&mut rng));
        let pong_mem = memory(&mut m, pong.built.domid, &pong.built.p2m);
        let pong_after = Status::read(&pong_mem).unwrap();
        assert!(
            st.steps > rt.snap.status.steps && pong_after.steps > pong_before.steps,
            "seed {seed}: the exchange continues after restore (ping {} -> {}, pong {} -> {})",
            rt.snap.status.steps,
            st.steps,
            pong_before.steps,
            pong_after.steps
        );
        let counts = guest_model::guests::pingpong::Counts::from_status;
        guest_model::guests::pingpong::PingpongOracle::check_pair(
            &counts(&st),
            &counts(&pong_after),
        )
        .unwrap();
        let peer = pong.built.domid;
        check_rebound(
            &mut m,
            "pingpong",
            &rt.restored,
            |s| matches!(s, EvtchnState::Interdomain { remote, .. } if *remote == peer),
        );
    }
}

#[test]
fn checkpoint_continues_the_same_domain_with_suspend_returning_1() {
    let mut m = model();
    let g = boot(&mut m, "counter", "counter", "pages=32 report=64");
    m.run(2_000_000);
    let snap = suspend_and_capture(&mut m, &g);
    let mut stream = Vec::new();
    save(
        &mut m,
        g.built.domid,
        &mut stream,
        SaveOptions {
            already_suspended: true,
            after: AfterSave::Checkpoint,
            ..SaveOptions::default()
        },
    )
    .expect("save -c");
    // Same domain, same frames; rax = 1 is what the guest sees.
    let c = xc::get_vcpu_context(&mut m, g.built.domid, 0).unwrap();
    assert_eq!(c.user_regs.rax, 1, "suspend returns 1");
    m.run(2_000_000);
    let mem = memory(&mut m, g.built.domid, &g.built.p2m);
    let st = Oracle::new(&g.toy.params)
        .check_all(&mem, &console(&m, g.built.domid), Stop::Anywhere)
        .unwrap();
    assert_eq!(st.cancels, snap.status.cancels + 1);
    assert_eq!(st.resumes, snap.status.resumes);
    assert!(st.steps > snap.status.steps);
    // The stream is complete and restores too (as a copy with a name of its own).
    let opts = RestoreOptions {
        name: Some("counter-copy".into()),
        ..RestoreOptions::default()
    };
    let r = restore(&mut m, &stream[..], opts).expect("restore");
    m.check_invariants().unwrap();
    xc::destroy(&mut m, r.domid).unwrap();
}

/// Installs, on behalf of `dom`, a read-only mapping of `frame` (owned by `owner`) in
/// the first free entry of one of `dom`'s L1 tables; returns that table's PFN.
fn map_foreign(m: &mut Model, g: &Guest, owner: DomId, frame: Mfn) -> u64 {
    let dom = g.built.domid;
    let types = page_types(m, dom, &g.built.p2m);
    let mem = memory(m, dom, &g.built.p2m);
    let pfn = (0..types.len())
        .find(|&p| level_of(types[p]) == Some(1))
        .expect("an L1 table");
    let slot = (0..512)
        .rev()
        .find(|&i| le64(&mem[pfn], i * 8) & PTE_PRESENT == 0)
        .expect("a free slot");
    let req = MmuUpdate {
        ptr: ((g.built.p2m[pfn].get() << 12) + slot as u64 * 8) | MMU_NORMAL_PT_UPDATE,
        val: (frame.get() << 12) | PTE_PRESENT | 0x20,
    };
    let mut done = 0;
    let foreigndom = ((u32::from(dom.get()) + 1) << 16) | u32::from(owner.get());
    m.mmu_update(&[req], &mut done, foreigndom)
        .expect("map the foreign frame");
    assert_eq!(done, 1);
    pfn as u64
}

#[test]
fn a_foreign_mapping_fails_the_save_naming_the_pfn_and_the_guest_keeps_running() {
    let mut m = model();
    let g = boot(&mut m, "counter", "counter", "pages=32 report=64");
    let other = boot(&mut m, "other", "counter", "pages=8 report=0");
    m.run(2_000_000);
    let dom = g.built.domid;
    suspend::suspend(&mut m, dom, SUSPEND_TIMEOUT_NS).unwrap();
    let before = Status::read(&memory(&mut m, dom, &g.built.p2m)).unwrap();
    let foreign = other.built.p2m[other.built.p2m.len() - 1];
    let table = map_foreign(&mut m, &g, other.built.domid, foreign);
    let free = free_pages(&mut m);
    let e = save(
        &mut m,
        dom,
        std::io::sink(),
        SaveOptions {
            already_suspended: true,
            ..SaveOptions::default()
        },
    )
    .unwrap_err();
    match &e {
        SaveError::ForeignPte {
            pfn, level, mfn, ..
        } => {
            assert_eq!(*pfn, table, "{e}");
            assert_eq!(*level, 1);
            assert_eq!(*mfn, foreign.get());
        }
        _ => panic!("expected ForeignPte, got {e}"),
    }
    let text = e.to_string();
    assert!(text.contains(&format!("pfn {table:#x}")), "{text}");
    // Resumed in place: running again, suspend returned 1.
    let info = xc::domain_info(&mut m, dom).unwrap();
    assert_eq!(info.flags & dc::XEN_DOMINF_SHUTDOWN, 0, "resumed");
    assert_eq!(free_pages(&mut m), free, "nothing allocated or lost");
    m.run(2_000_000);
    let st = Status::read(&memory(&mut m, dom, &g.built.p2m)).unwrap();
    assert_eq!(st.cancels, before.cancels + 1);
    assert!(st.steps > before.steps, "the guest keeps running");
    m.check_invariants().unwrap();
}

#[test]
fn a_failed_restore_leaves_nothing_behind() {
    let mut m = model();
    let g = boot(&mut m, "counter", "counter", "pages=32 report=64");
    m.run(1_000_000);
    let mut stream = Vec::new();
    save(&mut m, g.built.domid, &mut stream, SaveOptions::default()).unwrap();
    let free = free_pages(&mut m);
    let doms = m.domain_ids();
    // Fail at the very end (libxl END missing), after every page was populated and
    // the vCPUs set up: the domain must go, with all its frames.
    let cut = stream.len() - 8;
    let e = restore(&mut m, &stream[..cut], RestoreOptions::default()).unwrap_err();
    assert!(!matches!(e, RestoreError::CleanupFailed { .. }), "{e}");
    assert_eq!(m.domain_ids(), doms, "{e}");
    assert_eq!(free_pages(&mut m), free, "{e}");
    m.check_invariants().unwrap();
}

/// Splits every PAGE_DATA record of `stream` in two: first the page tables, then the
/// other pages, so each table arrives before the pages it maps.
fn tables_first(stream: &[u8]) -> Vec<u8> {
    use toolstack::stream::{read_all, Item, LibxcRecord, PageData, ReaderOptions, StreamWriter};
    let items = read_all(stream, ReaderOptions::default()).unwrap();
    let mut w = StreamWriter::new(Vec::new());
    for located in items {
        match located.item {
            Item::Libxc(LibxcRecord::PageData(pd)) => {
                let mut parts = [PageData::default(), PageData::default()];
                for (e, data) in pd.pages() {
                    let part = &mut parts[usize::from(e.ty.level().is_none())];
                    part.entries.push(e);
                    if let Some(d) = data {
                        part.data.extend_from_slice(d);
                    }
                }
                for part in parts {
                    if !part.entries.is_empty() {
                        w.write_item(&Item::Libxc(LibxcRecord::PageData(part)))
                            .unwrap();
                    }
                }
            }
            item => w.write_item(&item).unwrap(),
        }
    }
    w.into_inner()
}

#[test]
fn page_tables_arriving_before_the_pages_they_map_restore_the_same_guest() {
    let mut m = model();
    let g = boot(&mut m, "counter", "counter", "pages=32 report=64");
    m.run(1_500_000);
    let snap = suspend_and_capture(&mut m, &g);
    let mut stream = Vec::new();
    save(
        &mut m,
        g.built.domid,
        &mut stream,
        SaveOptions {
            already_suspended: true,
            ..SaveOptions::default()
        },
    )
    .unwrap();
    let reordered = tables_first(&stream);
    assert_ne!(reordered, stream);
    let r = restore(&mut m, &reordered[..], RestoreOptions::default()).expect("restore");
    m.check_invariants().unwrap();
    check_new_p2m(&mut m, &r, snap.mem.len());
    compare_memory(&mut m, &g, &snap, &r);
    compare_vcpu0(&mut m, &g, &snap, &r);
    let rt = RoundTrip { snap, restored: r };
    let st = run_restored(&mut m, &g, &rt, 1_500_000);
    assert!(st.steps > rt.snap.status.steps);
}

#[test]
fn the_linear_p2m_gives_the_same_map_as_the_frame_list_tree() {
    let mut m = model();
    let g = boot(&mut m, "counter", "counter", "pages=32 report=64");
    m.run(1_000_000);
    let dom = g.built.domid;
    let m2p = p2m::read_m2p(&mut m).unwrap();
    let sh = shared_info(&mut m, dom);
    let tree = p2m::read_p2m(&mut m, dom, &sh, &m2p).unwrap();
    assert!(!tree.linear);
    assert_eq!(tree.entries, g.built.p2m);
    // The same p2m list, announced as a linear p2m at its VA in the kernel's tables
    // (and no frame list list, so the tree cannot be used).
    let mut linear = sh;
    linear.arch.pfn_to_mfn_frame_list_list = 0;
    linear.arch.p2m_cr3 = xc::get_vcpu_context(&mut m, dom, 0).unwrap().ctrlreg[3];
    linear.arch.p2m_vaddr = g.built.layout.p2m.va.get();
    let found = p2m::read_p2m(&mut m, dom, &linear, &m2p).unwrap();
    assert!(found.linear);
    assert_eq!(found.entries, g.built.p2m);
    let list: Vec<Mfn> = g
        .built
        .layout
        .p2m
        .pfns()
        .map(|p| g.built.p2m[p.index()])
        .collect();
    assert_eq!(found.frames, list);
    assert_eq!(found.frames, tree.frames);
    // An unmapped VA is named.
    linear.arch.p2m_vaddr = 0x7f00_0000_0000;
    let e = p2m::read_p2m(&mut m, dom, &linear, &m2p).unwrap_err();
    assert!(
        matches!(
            e,
            p2m::P2mError::LinearUnmapped {
                va: 0x7f00_0000_0000,
                ..
            }
        ),
        "{e}"
    );
}

/// The model, with the two vCPU-state domctls it does not implement
/// (setvcpuextstate, set_vcpu_msrs) accepted and recorded, so the restore path that
/// applies saved XSAVE and MSR records can be checked byte for byte.
struct ExtState<'m> {
    m: &'m mut Model,
    /// `(cmd, vcpu, payload size or count, buffer)` of every intercepted call.
    calls: Vec<(u32, u32, u64, Vec<u8>)>,
}

impl Xen for ExtState<'_> {
    fn domctl(
        &mut self,
        domctl: &mut hypervisor::abi::domctl::XenDomctl,
        buf: &mut [u8],
    ) -> Result<i64, hypervisor::XenError> {
        match domctl.cmd {
            dc::XEN_DOMCTL_SETVCPUEXTSTATE => {
                let p: dc::DomctlVcpuExtState = domctl.payload();
                self.calls.push((domctl.cmd, p.vcpu, p.size, buf.to_vec()));
                Ok(0)
            }
            dc::XEN_DOMCTL_SET_VCPU_MSRS => {
                let p: dc::DomctlVcpuMsrs = domctl.payload();
                self.calls
                    .push((domctl.cmd, p.vcpu, u64::from(p.msr_count), buf.to_vec()));
                Ok(0)
            }
            _ => Xen::domctl(self.m, domctl, buf),
        }
    }
    fn backend_name(&self) -> &'static str {
        Xen::backend_name(self.m)
    }
    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        Xen::xen_version(self.m, cmd, arg)
    }
    fn sysctl(&mut self, sysctl: &mut XenSysctl, buf: &mut [u8]) -> Result<i64, XenError> {
        Xen::sysctl(self.m, sysctl, buf)
    }
    fn memory_op(&mut self, cmd: u32, arg: &mut [u8], buf: &mut [u8]) -> Result<i64, XenError> {
        Xen::memory_op(self.m, cmd, arg, buf)
    }
    fn mmu_update(
        &mut self,
        reqs: &[MmuUpdate],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        Xen::mmu_update(self.m, reqs, done, foreigndom)
    }
    fn mmuext_op(
        &mut self,
        ops: &[MmuextOp],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        Xen::mmuext_op(self.m, ops, done, foreigndom)
    }
    fn event_channel_op(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        Xen::event_channel_op(self.m, cmd, arg)
    }
    fn foreign_read(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &mut [u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        Xen::foreign_read(self.m, dom, mfns, buf, errs)
    }
    fn foreign_write(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &[u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        Xen::foreign_write(self.m, dom, mfns, buf, errs)
    }
    fn resource_read(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        buf: &mut [u8],
    ) -> Result<(), XenError> {
        Xen::resource_read(self.m, dom, type_, id, frame, buf)
    }
    fn resource_write(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        data: &[u8],
    ) -> Result<(), XenError> {
        Xen::resource_write(self.m, dom, type_, id, frame, data)
    }
    fn evtchn_bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Port, XenError> {
        Xen::evtchn_bind_interdomain(self.m, remote, remote_port)
    }
    fn evtchn_bind_unbound_port(&mut self, remote: DomId) -> Result<Port, XenError> {
        Xen::evtchn_bind_unbound_port(self.m, remote)
    }
    fn evtchn_bind_virq(&mut self, virq: u32) -> Result<Port, XenError> {
        Xen::evtchn_bind_virq(self.m, virq)
    }
    fn evtchn_unbind(&mut self, port: Port) -> Result<(), XenError> {
        Xen::evtchn_unbind(self.m, port)
    }
    fn evtchn_notify(&mut self, port: Port) -> Result<(), XenError> {
        Xen::evtchn_notify(self.m, port)
    }
    fn evtchn_wait(&mut self, timeout_ns: u64) -> Result<Option<Port>, XenError> {
        Xen::evtchn_wait(self.m, timeout_ns)
    }
    fn evtchn_unmask(&mut self, port: Port) -> Result<(), XenError> {
        Xen::evtchn_unmask(self.m, port)
    }
    fn xs_read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError> {
        Xen::xs_read(self.m, tx, path)
    }
    fn xs_write(&mut self, tx: XsTxId, path: &str, value: &[u8]) -> Result<(), XenError> {
        Xen::xs_write(self.m, tx, path, value)
    }
    fn xs_mkdir(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        Xen::xs_mkdir(self.m, tx, path)
    }
    fn xs_rm(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        Xen::xs_rm(self.m, tx, path)
    }
    fn xs_directory(&mut self, tx: XsTxId, path: &str) -> Result<Vec<String>, XenError> {
        Xen::xs_directory(self.m, tx, path)
    }
    fn xs_get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError> {
        Xen::xs_get_perms(self.m, tx, path)
    }
    fn xs_set_perms(&mut self, tx: XsTxId, path: &str, perms: &[XsPerm]) -> Result<(), XenError> {
        Xen::xs_set_perms(self.m, tx, path, perms)
    }
    fn xs_watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        Xen::xs_watch(self.m, path, token)
    }
    fn xs_unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        Xen::xs_unwatch(self.m, path, token)
    }
    fn xs_read_watch(&mut self, timeout_ns: u64) -> Result<Option<XsWatchEvent>, XenError> {
        Xen::xs_read_watch(self.m, timeout_ns)
    }
    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError> {
        Xen::xs_transaction_start(self.m)
    }
    fn xs_transaction_end(&mut self, tx: XsTxId, commit: bool) -> Result<(), XenError> {
        Xen::xs_transaction_end(self.m, tx, commit)
    }
    fn xs_introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> Result<(), XenError> {
        Xen::xs_introduce(self.m, dom, mfn, port)
    }
    fn xs_release(&mut self, dom: DomId) -> Result<(), XenError> {
        Xen::xs_release(self.m, dom)
    }
    fn xs_get_domain_path(&mut self, dom: DomId) -> Result<String, XenError> {
        Xen::xs_get_domain_path(self.m, dom)
    }
}

#[test]
fn saved_xsave_and_msr_records_are_applied_on_restore() {
    use toolstack::stream::{read_all, Item, LibxcRecord, ReaderOptions, StreamWriter};
    use toolstack::stream::{VcpuBlob, VcpuMsr, VcpuMsrs};
    let mut m = model();
    let g = boot(&mut m, "counter", "counter", "pages=32 report=64");
    m.run(1_000_000);
    let mut stream = Vec::new();
    save(&mut m, g.built.domid, &mut stream, SaveOptions::default()).unwrap();
    // The model has no XSAVE or MSR state to save; add what real Xen would.
    let mut xsave = vec![0u8; 16 + 576];
    xsave[..8].copy_from_slice(&7u64.to_le_bytes());
    xsave[8..16].copy_from_slice(&7u64.to_le_bytes());
    for (i, b) in xsave[16..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let msrs = vec![
        VcpuMsr {
            index: 0xc000_0103,
            reserved: 0,
            value: 0x1234,
        },
        VcpuMsr {
            index: 0x10,
            reserved: 0,
            value: 0xdead_beef,
        },
    ];
    let mut w = StreamWriter::new(Vec::new());
    for located in read_all(&stream[..], ReaderOptions::default()).unwrap() {
        if matches!(located.item, Item::Libxc(LibxcRecord::End)) {
            w.write_item(&Item::Libxc(LibxcRecord::X86PvVcpuXsave(VcpuBlob {
                vcpu_id: 0,
                context: xsave.clone(),
            })))
            .unwrap();
            w.write_item(&Item::Libxc(LibxcRecord::X86PvVcpuMsrs(VcpuMsrs {
                vcpu_id: 0,
                msrs: msrs.clone(),
            })))
            .unwrap();
        }
        w.write_item(&located.item).unwrap();
    }
    let extended = w.into_inner();
    // On the model itself the calls fail (ENOSYS) and the restore is undone.
    let free = free_pages(&mut m);
    let doms = m.domain_ids();
    let e = restore(&mut m, &extended[..], RestoreOptions::default()).unwrap_err();
    assert!(e.to_string().contains("setvcpuextstate"), "{e}");
    assert_eq!((free_pages(&mut m), m.domain_ids()), (free, doms));
    // With them accepted, each is issued once for vCPU 0 with the saved bytes.
    let mut x = ExtState {
        m: &mut m,
        calls: Vec::new(),
    };
    let r = restore(&mut x, &extended[..], RestoreOptions::default()).expect("restore");
    let mut msr_bytes = Vec::new();
    for e in &msrs {
        msr_bytes.extend_from_slice(&e.index.to_le_bytes());
        msr_bytes.extend_from_slice(&e.reserved.to_le_bytes());
        msr_bytes.extend_from_slice(&e.value.to_le_bytes());
    }
    assert_eq!(
        x.calls,
        vec![
            (
                dc::XEN_DOMCTL_SETVCPUEXTSTATE,
                0,
                xsave.len() as u64,
                xsave.clone()
            ),
            (dc::XEN_DOMCTL_SET_VCPU_MSRS, 0, 2, msr_bytes),
        ]
    );
    xc::destroy(&mut m, r.domid).unwrap();
    m.check_invariants().unwrap();
}
