//! The toy guests on the real model, created through the real builder from xl.cfg
//! text: boot, run, oracle checks at several stops (memory by PFN and console), the
//! suspend protocol exactly as stream.md §5 (ack, `SHUTDOWN_suspend` with rdx =
//! start_info's MFN, store/console MFNs converted to PFNs, shared_info unmapped),
//! resume in place (suspend returns 1) and a full save → restore into a new domain
//! (suspend returns 0: shared_info re-mapped, p2m frame list rebuilt, channels re-bound,
//! watches re-registered), each followed by more running with the oracle holding.
//!
//! The oracles are `guest-model`'s: they predict memory and console from the step
//! counter alone, independently of the model and the toolstack.

use guest_model::guests::pingpong::{Counts, PingpongOracle};
use guest_model::{OracleError, Status, Stop, ToyError, ToyParams};
use hypervisor::abi::domctl::{self as dc};
use hypervisor::abi::mm::{PTE_ADDR_MASK, PTE_PRESENT};
use hypervisor::abi::sched::{SHUTDOWN_POWEROFF, SHUTDOWN_SUSPEND};
use hypervisor::abi::shared::{SharedInfo, StartInfo};
use hypervisor::model::{Model, ModelConfig};
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Mfn, Pfn, Xen, XS_NO_TX};
use toolstack::build::toys::{oracle_pfns, read_status, GuestPages};
use toolstack::build::{
    self, BuildOptions, CreateError, Layout, LoadKernelError, OracleCheck, Verdict,
};
use toolstack::config::DomainConfig;
use toolstack::restore::{restore, RestoreOptions};
use toolstack::save::{save, xc, AfterSave, SaveError, SaveOptions};
use toolstack::suspend;
use zerocopy::FromBytes;

/// Instructions per `Model::run` slice between checks.
const SLICE: u64 = 200_000;
/// Most instructions any wait may take.
const BUDGET: u64 = 60_000_000;

fn model() -> Model {
    Model::new(ModelConfig {
        machine_frames: 16384,
    })
}

fn free_pages(m: &mut Model) -> u64 {
    use hypervisor::abi::sysctl::{self as sc, SysctlPhysinfo, XenSysctl};
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO);
    m.sysctl(&mut s, &mut []).unwrap();
    let p: SysctlPhysinfo = s.payload();
    p.free_pages
}

fn cfg_text(name: &str, guest: &str, extra: &str) -> String {
    format!(
        "# a toy guest\nname = \"{name}\"\nmemory = 4\nvcpus = 1\nkernel = \"toy:{guest}\"\nextra = \"{extra}\"\n"
    )
}

fn cfg(name: &str, guest: &str, extra: &str) -> DomainConfig {
    DomainConfig::parse(&cfg_text(name, guest, extra), "test.cfg").expect("config parses")
}

/// A toy guest as the tests follow it across domains.
struct G {
    dom: DomId,
    p2m: Vec<Mfn>,
    layout: Layout,
    params: ToyParams,
    /// Console output of the guest's earlier domains.
    earlier: String,
    /// Where the guest's name starts its console lines.
    name: &'static str,
}

impl G {
    fn create(m: &mut Model, c: &DomainConfig) -> G {
        let params = build::toy_params(c).expect("params").expect("a toy");
        let d = build::create(m, c, &BuildOptions::default())
            .unwrap_or_else(|e| panic!("create {}: {e}", c.name));
        m.check_invariants().expect("invariants after build");
        G {
            dom: d.domid,
            p2m: d.p2m,
            layout: d.layout,
            name: params.guest.name(),
            params,
            earlier: String::new(),
        }
    }

    fn console(&self, m: &Model) -> String {
        let now = String::from_utf8(m.console_output(self.dom)).expect("console is UTF-8");
        format!("{}{now}", self.earlier)
    }

    fn mfn(&self, pfn: Pfn) -> Mfn {
        self.p2m[pfn.index()]
    }

    fn status(&self, m: &mut Model) -> Status {
        read_status(m, self.dom, &self.p2m)
            .expect("readable")
            .unwrap_or_default()
    }

    fn dump(&self, m: &mut Model) -> String {
        let info = xc::domain_info(m, self.dom).ok();
        format!(
            "d{} status {:?}\ndomain flags {:#x?}\nconsole:\n{}",
            self.dom,
            self.status(m),
            info.map(|i| i.flags),
            self.console(m)
        )
    }

    /// The console ring page, by PFN, agrees with the console backend's transcript:
    /// the last bytes the backend consumed (up to the ring's size) are the transcript's
    /// tail.
    fn check_console_ring(&self, m: &mut Model) {
        use hypervisor::abi::console::{
            XENCONS_OUT, XENCONS_OUT_CONS, XENCONS_OUT_PROD, XENCONS_OUT_SIZE,
        };
        let pfn = self.layout.console.pfn;
        let ring = self.pages(m, [pfn]).pages.remove(&pfn).unwrap();
        let idx = |off: usize| u32::from_le_bytes(ring[off..off + 4].try_into().unwrap());
        let (cons, prod) = (idx(XENCONS_OUT_CONS), idx(XENCONS_OUT_PROD));
        assert!(
            prod.wrapping_sub(cons) as usize <= XENCONS_OUT_SIZE,
            "{cons} {prod}"
        );
        let ours = m.console_output(self.dom);
        let n = ours.len().min(XENCONS_OUT_SIZE).min(cons as usize);
        let from_ring: Vec<u8> = (cons - n as u32..cons)
            .map(|i| ring[XENCONS_OUT + (i as usize % XENCONS_OUT_SIZE)])
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&from_ring),
            String::from_utf8_lossy(&ours[ours.len() - n..]),
            "console ring vs transcript"
        );
    }

    /// The oracle's verdict with the full console transcript.
    fn check(&self, m: &mut Model, stop: Stop) -> Status {
        self.check_console_ring(m);
        let c = self.console(m);
        let v = build::check_oracle(
            m,
            self.dom,
            &self.params,
            &OracleCheck {
                stop,
                p2m: Some(&self.p2m),
                console: Some(&c),
            },
        )
        .expect("memory readable");
        match v {
            Verdict::Holds(s) => s,
            Verdict::Fails(e) => panic!("oracle fails: {e}\n{}", self.dump(m)),
        }
    }

    /// Runs the model until `pred` holds (checked every slice).
    fn run_until(&self, m: &mut Model, what: &str, mut pred: impl FnMut(&mut Model) -> bool) {
        let mut done = 0;
        while !pred(m) {
            assert!(
                done < BUDGET,
                "timed out waiting for {what}\n{}",
                self.dump(m)
            );
            m.run(SLICE);
            done += SLICE;
        }
        m.check_invariants().expect("invariants after running");
    }

    fn run_steps(&self, m: &mut Model, more: u64) {
        let target = self.status(m).steps + more;
        self.run_until(m, &format!("{target} steps"), |m| {
            self.status(m).steps >= target
        });
    }

    fn start_info(&self, m: &mut Model) -> StartInfo {
        let pages = self.pages(m, [self.layout.start_info.pfn]);
        StartInfo::read_from_prefix(&pages.pages[&self.layout.start_info.pfn][..])
            .expect("start_info")
            .0
    }

    fn pages(&self, m: &mut Model, pfns: impl IntoIterator<Item = Pfn>) -> GuestPages {
        build::read_guest_pages(m, self.dom, &self.p2m, pfns).expect("pages readable")
    }

    fn shared_info_mfn(&self, m: &mut Model) -> Mfn {
        Mfn::new(
            xc::domain_info(m, self.dom)
                .expect("domain info")
                .shared_info_frame,
        )
    }

    /// PTEs in the bootstrap page tables that map `mfn`.
    fn mappings_of(&self, m: &mut Model, mfn: Mfn) -> usize {
        let pages = self.pages(m, self.layout.page_tables.pfns());
        pages
            .pages
            .values()
            .flat_map(|p| p.chunks(8))
            .map(|e| u64::from_le_bytes(e.try_into().unwrap()))
            .filter(|e| e & PTE_PRESENT != 0 && (e & PTE_ADDR_MASK) >> 12 == mfn.get())
            .count()
    }

    fn shutdown_node(&self) -> String {
        format!("/local/domain/{}/control/shutdown", self.dom.get())
    }

    /// Asks the guest to suspend through xenstore and checks every visible step of the
    /// guest's side of the protocol; returns its status at the safe point.
    fn suspend(&self, m: &mut Model) -> Status {
        let before = self.status(m);
        let shinfo = self.shared_info_mfn(m);
        assert_eq!(self.mappings_of(m, shinfo), 1, "shared_info mapped once");
        suspend::suspend(m, self.dom, suspend::DEFAULT_TIMEOUT_NS)
            .unwrap_or_else(|e| panic!("suspend: {e}\n{}", self.dump(m)));
        let info = xc::domain_info(m, self.dom).unwrap();
        assert_ne!(info.flags & dc::XEN_DOMINF_SHUTDOWN, 0);
        assert_eq!(dc::xen_dominf_shutdown_reason(info.flags), SHUTDOWN_SUSPEND);
        // The ack: the guest emptied control/shutdown.
        assert_eq!(m.xs_read(XS_NO_TX, &self.shutdown_node()).unwrap(), b"");
        // SCHEDOP_shutdown(SHUTDOWN_suspend) with rdx = start_info's MFN.
        let ctx = xc::get_vcpu_context(m, self.dom, 0).unwrap();
        assert_eq!(
            ctx.user_regs.rdx,
            self.mfn(self.layout.start_info.pfn).get(),
            "rdx = start_info MFN"
        );
        // start_info's store and console MFNs are PFNs now.
        let si = self.start_info(m);
        assert_eq!(si.store_mfn, self.layout.xenstore.pfn.get());
        assert_eq!(si.console_mfn, self.layout.console.pfn.get());
        // No mapping of shared_info (not a guest frame) is left.
        assert_eq!(self.mappings_of(m, shinfo), 0, "shared_info unmapped");
        let st = self.check(m, Stop::SafePoint);
        assert_eq!(st.suspends, before.suspends + 1);
        assert!(
            self.console(m)
                .ends_with(&format!("{}: suspending\n", self.name)),
            "{}",
            self.dump(m)
        );
        st
    }

    /// After a resume (either kind), once the guest ran again: start_info holds MFNs
    /// again and shared_info is mapped.
    fn check_resumed_state(&self, m: &mut Model) {
        let si = self.start_info(m);
        assert_eq!(si.store_mfn, self.mfn(self.layout.xenstore.pfn).get());
        assert_eq!(si.console_mfn, self.mfn(self.layout.console.pfn).get());
        let shinfo = self.shared_info_mfn(m);
        assert_eq!(si.shared_info, shinfo.get() << 12);
        assert_eq!(self.mappings_of(m, shinfo), 1, "shared_info re-mapped");
        // The p2m frame list list is (re)built: a saver finds the same P2M.
        let found = build::guest_p2m(m, self.dom).expect("guest p2m");
        assert_eq!(found[..self.p2m.len()], self.p2m[..]);
    }

    /// Resume in place (`xl save -c` semantics): the suspend returns 1.
    fn resume_in_place(&self, m: &mut Model) {
        let before = self.check(m, Stop::SafePoint);
        suspend::resume_cooperative(m, self.dom).expect("resume");
        self.run_steps(m, 20);
        let st = self.check(m, Stop::Anywhere);
        assert_eq!(st.cancels, before.cancels + 1);
        assert_eq!(st.resumes, before.resumes);
        assert!(self.console(m).contains(&format!(
            "{}: suspend cancelled {}\n",
            self.name, st.cancels
        )));
        self.check_resumed_state(m);
    }

    /// Saves the suspended guest, restores it into a new domain, checks its memory by
    /// PFN is what it was, unpauses it and lets it run: the suspend returns 0.
    fn save_restore(self, m: &mut Model) -> G {
        let before = self.check(m, Stop::SafePoint);
        let pfns = oracle_pfns(&self.params);
        let mem_before = self.pages(m, pfns.iter().copied());
        let console = self.console(m);
        let mut stream = Vec::new();
        save(
            m,
            self.dom,
            &mut stream,
            SaveOptions {
                already_suspended: true,
                ..SaveOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("save: {e}"));
        m.check_invariants().expect("invariants after save");
        assert!(
            xc::domain_info(m, self.dom).is_err(),
            "saved domain destroyed"
        );
        let r = restore(m, &stream[..], RestoreOptions::default())
            .unwrap_or_else(|e| panic!("restore: {e}"));
        m.check_invariants().expect("invariants after restore");
        assert_ne!(r.domid, self.dom);
        let g = G {
            dom: r.domid,
            p2m: r.p2m,
            earlier: console,
            ..self
        };
        // Memory by PFN survived (different MFNs).
        let mem_after = g.pages(m, pfns.iter().copied());
        assert_eq!(mem_before, mem_after, "oracle pages by PFN");
        xc::unpause(m, g.dom).unwrap();
        g.run_steps(m, 20);
        let st = g.check(m, Stop::Anywhere);
        assert_eq!(st.resumes, before.resumes + 1);
        assert_eq!(st.cancels, before.cancels);
        assert!(g
            .console(m)
            .contains(&format!("{}: resumed {}\n", g.name, st.resumes)));
        g.check_resumed_state(m);
        // Channels re-bound: the store ring's port is the new domain's.
        let si = g.start_info(m);
        assert_eq!(si.store_evtchn, r.store.1.get());
        assert_eq!(si.console_evtchn, r.console.1.get());
        g
    }
}

/// Boot, several stops, suspend + resume in place, suspend + save/restore, then a
/// second suspend in the new domain (its watch was re-registered) and another resume
/// in place there.
fn full_cycle(guest: &str, extra: &str, steps_per_stop: u64) -> (Model, G) {
    let mut m = model();
    let g = G::create(&mut m, &cfg(guest, guest, extra));
    let mut last = 0;
    for _ in 0..3 {
        g.run_steps(&mut m, steps_per_stop);
        let st = g.check(&mut m, Stop::Anywhere);
        assert!(st.steps > last);
        last = st.steps;
    }
    g.suspend(&mut m);
    g.resume_in_place(&mut m);
    g.suspend(&mut m);
    let g = g.save_restore(&mut m);
    g.run_steps(&mut m, steps_per_stop);
    g.suspend(&mut m);
    g.resume_in_place(&mut m);
    g.run_steps(&mut m, steps_per_stop);
    let st = g.check(&mut m, Stop::Anywhere);
    assert_eq!((st.suspends, st.resumes, st.cancels), (3, 1, 2));
    (m, g)
}

#[test]
fn counter_full_cycle() {
    let (mut m, g) = full_cycle("counter", "pages=16 report=50", 60);
    // Once more, from the restored domain into a third one.
    g.suspend(&mut m);
    let g = g.save_restore(&mut m);
    g.run_steps(&mut m, 60);
    g.suspend(&mut m);
    let st = g.check(&mut m, Stop::SafePoint);
    assert_eq!((st.suspends, st.resumes, st.cancels), (5, 2, 2));
    g.resume_in_place(&mut m);
    // Bytes monotone with exactly one step down, by hand from the raw pages.
    let st = g.check(&mut m, Stop::Anywhere);
    let region = guest_model::guests::Oracle::region(&g.params);
    let pfns: Vec<Pfn> = (region.start.get()..region.end.get())
        .map(Pfn::new)
        .collect();
    let pages = g.pages(&mut m, pfns.iter().copied());
    let bytes: Vec<u8> = pfns.iter().map(|p| pages.pages[p][0]).collect();
    let downs = bytes.windows(2).filter(|w| w[1] != w[0]).count();
    assert!(downs <= 1, "{bytes:?}");
    // By hand: after s steps over n pages, page i was incremented s/n times, plus
    // once more for i < s % n (mod 256); mid-step the guest may be one ahead.
    let by_hand = |s: u64| -> Vec<u8> {
        let n = pfns.len() as u64;
        (0..n)
            .map(|i| (s / n + u64::from(i < s % n)) as u8)
            .collect()
    };
    assert!(
        bytes == by_hand(st.steps) || bytes == by_hand(st.steps + 1),
        "{bytes:?} after {} steps",
        st.steps
    );
}

#[test]
fn epoch_full_cycle() {
    full_cycle(
        "epoch",
        "pages=16 writes=5 seed=7 period_ns=20000 report=4",
        5,
    );
}

#[test]
fn checksum_full_cycle() {
    let (mut m, g) = full_cycle("checksum", "pages=4 seed=9 report=500", 700);
    // It verified its memory once, after the one resume in a new domain, and said so.
    let st = g.check(&mut m, Stop::Anywhere);
    assert_eq!((st.guest[2], st.guest[3]), (1, 0));
    assert_eq!(g.console(&m).matches("checksum: verify ok\n").count(), 1);
}

#[test]
fn pagetable_full_cycle() {
    full_cycle("pagetable", "report=5", 3);
}

#[test]
fn counter_stops_after_steps_and_powers_off() {
    let mut m = model();
    let g = G::create(&mut m, &cfg("c", "counter", "pages=5 report=7 steps=40"));
    g.run_until(&mut m, "poweroff", |m| {
        xc::domain_info(m, g.dom).unwrap().flags & dc::XEN_DOMINF_SHUTDOWN != 0
    });
    let info = xc::domain_info(&mut m, g.dom).unwrap();
    assert_eq!(
        dc::xen_dominf_shutdown_reason(info.flags),
        SHUTDOWN_POWEROFF
    );
    let st = g.check(&mut m, Stop::SafePoint);
    assert_eq!(st.steps, 40);
    // The whole console, exactly.
    assert_eq!(
        g.console(&m),
        "counter: start steps=40 report=7 pages=5\ncounter: step 7\ncounter: step 14\n\
         counter: step 21\ncounter: step 28\ncounter: step 35\ncounter: done 40\n"
    );
    // And the bytes, by hand: 40 steps over 5 pages = 8 laps.
    let region = guest_model::guests::Oracle::region(&g.params);
    let pages = g.pages(&mut m, (region.start.get()..region.end.get()).map(Pfn::new));
    assert!(pages
        .pages
        .values()
        .all(|p| p[0] == 8 && p[1..].iter().all(|&b| b == 0)));
}

#[test]
fn epoch_advances_on_virtual_time() {
    let mut m = model();
    let period = 50_000u64;
    let g = G::create(
        &mut m,
        &cfg(
            "e",
            "epoch",
            &format!("pages=8 writes=3 period_ns={period} report=0"),
        ),
    );
    g.run_steps(&mut m, 2);
    let (t0, s0) = (m.now_ns(), g.status(&mut m));
    g.run_steps(&mut m, 20);
    let (t1, s1) = (m.now_ns(), g.status(&mut m));
    let epochs = s1.steps - s0.steps;
    // Each epoch waits for a singleshot timer `period` after the previous one ended:
    // at most elapsed/period + 1 epochs, and the time between them is not much more.
    assert!(
        epochs <= (t1 - t0) / period + 1,
        "{epochs} epochs in {} ns",
        t1 - t0
    );
    assert!(
        t1 - t0 <= (epochs + 1) * period * 2,
        "{epochs} epochs took {} ns",
        t1 - t0
    );
    // Timer events (status counter 0) drove them.
    assert!(s1.guest[0] - s0.guest[0] >= epochs - 1, "{s0:?} {s1:?}");
    // Running with no time passing (no instructions) changes nothing.
    g.check(&mut m, Stop::Anywhere);
}

/// shadow_op CLEAN: the dirty PFNs since the last clean.
fn logdirty_clean(m: &mut Model, dom: DomId, nr: u64) -> std::collections::BTreeSet<Pfn> {
    let mut d = dc::XenDomctl::new(dc::XEN_DOMCTL_SHADOW_OP, dom.get());
    d.set_payload(&dc::DomctlShadowOp {
        op: dc::XEN_DOMCTL_SHADOW_OP_CLEAN,
        pages: nr,
        ..Default::default()
    });
    let mut bitmap = vec![0u8; nr.div_ceil(8) as usize];
    m.domctl(&mut d, &mut bitmap).expect("shadow_op clean");
    (0..nr)
        .filter(|&i| bitmap[(i / 8) as usize] & (1 << (i % 8)) != 0)
        .map(Pfn::new)
        .collect()
}

#[test]
fn epoch_pages_written_since_a_clean_are_all_in_the_dirty_log() {
    // The KVM dirty-log test: every region page holding an epoch newer than the clean
    // must be reported dirty.
    use guest_model::guests::epoch::EpochOracle;
    let mut m = model();
    let g = G::create(
        &mut m,
        &cfg(
            "e",
            "epoch",
            "pages=64 writes=6 seed=11 period_ns=20000 report=0",
        ),
    );
    let o = EpochOracle::new(&g.params);
    let nr = g.p2m.len() as u64;
    g.run_steps(&mut m, 3);
    let mut d = dc::XenDomctl::new(dc::XEN_DOMCTL_SHADOW_OP, g.dom.get());
    d.set_payload(&dc::DomctlShadowOp {
        op: dc::XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
        ..Default::default()
    });
    m.domctl(&mut d, &mut []).expect("enable log-dirty");
    for round in 0..4 {
        xc::pause(&mut m, g.dom).unwrap();
        logdirty_clean(&mut m, g.dom, nr);
        // An epoch in flight at the clean may have written some pages before it: only
        // epochs after it are certainly written after the clean.
        let cleaned_at = g.status(&mut m).steps + 1;
        xc::unpause(&mut m, g.dom).unwrap();
        g.run_steps(&mut m, 4 + round);
        xc::pause(&mut m, g.dom).unwrap();
        let dirty = logdirty_clean(&mut m, g.dom, nr);
        let st = g.check(&mut m, Stop::Anywhere);
        let mem = g.pages(&mut m, oracle_pfns(&g.params));
        o.check_dirty_log(&mem, cleaned_at, st.steps + 1, &dirty)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // The check can fail: drop one page written since the clean from the log.
        let values = o.read_values(&mem).unwrap();
        let written = (0..64u64)
            .find(|&i| values[i as usize] > cleaned_at)
            .expect("some page written since the clean");
        let mut short = dirty.clone();
        short.remove(&o.pfn(written));
        assert!(o
            .check_dirty_log(&mem, cleaned_at, st.steps + 1, &short)
            .is_err());
        xc::unpause(&mut m, g.dom).unwrap();
    }
    m.check_invariants().unwrap();
}

#[test]
fn pagetable_pins_switches_and_runs_user_code() {
    let mut m = model();
    let g = G::create(&mut m, &cfg("p", "pagetable", "report=0"));
    let boot_cr3 = xc::get_vcpu_context(&mut m, g.dom, 0).unwrap().ctrlreg[3];
    // T4, T3, T2, T1 are the region pages after the results page.
    let first = guest_model::guests::Oracle::region(&g.params).start.get();
    let tables: Vec<Mfn> = (1..=4).map(|i| g.mfn(Pfn::new(first + i))).collect();
    let want = [
        dc::XEN_DOMCTL_PFINFO_L4TAB,
        dc::XEN_DOMCTL_PFINFO_L3TAB,
        dc::XEN_DOMCTL_PFINFO_L2TAB,
        dc::XEN_DOMCTL_PFINFO_L1TAB,
    ];
    let (mut pinned, mut unpinned, mut switched, mut user) = (0, 0, 0, 0);
    let mut done = 0;
    while done < 20_000_000 && g.status(&mut m).steps < 6 {
        m.run(37);
        done += 37;
        let types = xc::page_types(&mut m, g.dom, &tables).unwrap();
        let all_pinned = types.iter().zip(want).all(|(&t, w)| {
            t & dc::XEN_DOMCTL_PFINFO_LTABTYPE_MASK == w && t & dc::XEN_DOMCTL_PFINFO_LPINTAB != 0
        });
        if all_pinned {
            pinned += 1;
        } else if types.iter().all(|&t| t == dc::XEN_DOMCTL_PFINFO_NOTAB) {
            unpinned += 1;
        }
        let ctx = xc::get_vcpu_context(&mut m, g.dom, 0).unwrap();
        if ctx.ctrlreg[3] != boot_cr3 {
            assert_eq!(
                ctx.ctrlreg[3],
                hypervisor::abi::vcpu::xen_pfn_to_cr3(tables[0].get())
            );
            switched += 1;
        }
        if ctx.user_regs.cs & 3 == 3 && ctx.flags & hypervisor::abi::vcpu::VGCF_IN_KERNEL == 0 {
            user += 1;
        }
    }
    m.check_invariants().unwrap();
    let st = g.check(&mut m, Stop::Anywhere);
    assert!(st.steps >= 6, "{}", g.dump(&mut m));
    assert!(
        pinned > 0 && unpinned > 0,
        "pinned {pinned} unpinned {unpinned}"
    );
    assert!(switched > 0, "never saw the guest on its own L4");
    assert!(user > 0, "never saw the guest in user mode");
}

#[test]
fn pingpong_pair_survives_save_restore_of_each_side() {
    let mut m = model();
    let ping = G::create(&mut m, &cfg("ping", "pingpong", "role=ping report=50"));
    let pong = G::create(
        &mut m,
        &cfg(
            "pong",
            "pingpong",
            &format!("role=pong peer={} report=50", ping.dom.get()),
        ),
    );
    let counts = |m: &mut Model, g: &G| Counts::from_status(&g.status(m));
    let both = |m: &mut Model, a: &G, b: &G, n: u64| {
        counts(m, a).received >= n && counts(m, b).received >= n
    };
    ping.run_until(&mut m, "120 exchanges", |m| both(m, &ping, &pong, 120));
    let (ca, cb) = (counts(&mut m, &ping), counts(&mut m, &pong));
    PingpongOracle::check_pair(&ca, &cb).unwrap();
    assert_eq!((ca.channels, cb.channels), (1, 1));
    ping.check(&mut m, Stop::Anywhere);
    pong.check(&mut m, Stop::Anywhere);
    // The channel is a real inter-domain one between the two.
    let port = m
        .xs_read(
            XS_NO_TX,
            &format!("/local/domain/{}/data/pingpong-port", ping.dom.get()),
        )
        .unwrap();
    // The channel is a real inter-domain one between the two.
    let port: u32 = String::from_utf8(port)
        .unwrap()
        .parse()
        .expect("a port number");
    let mut es = hypervisor::abi::evtchn::EvtchnStatus {
        dom: ping.dom.get(),
        port,
        ..Default::default()
    };
    m.event_channel_op(
        hypervisor::abi::evtchn::EVTCHNOP_STATUS as u32,
        zerocopy::IntoBytes::as_mut_bytes(&mut es),
    )
    .expect("evtchn status");
    assert_eq!(es.status, hypervisor::abi::evtchn::EVTCHNSTAT_INTERDOMAIN);
    assert_eq!(
        es.u[0] & 0xffff,
        u32::from(pong.dom.get()),
        "bound by the pong"
    );

    // Save/restore the pong: the ping learns its new id and re-offers a channel.
    pong.suspend(&mut m);
    let pong = pong.save_restore(&mut m);
    let base = counts(&mut m, &ping).received;
    ping.run_until(&mut m, "exchanges with the new pong", |m| {
        counts(m, &ping).received >= base + 100
    });
    PingpongOracle::check_pair(&counts(&mut m, &ping), &counts(&mut m, &pong)).unwrap();

    // Now the ping, and resume the pong in place once.
    ping.suspend(&mut m);
    let ping = ping.save_restore(&mut m);
    let base = counts(&mut m, &pong).received;
    pong.run_until(&mut m, "exchanges with the new ping", |m| {
        counts(m, &pong).received >= base + 100
    });
    pong.suspend(&mut m);
    pong.resume_in_place(&mut m);
    let base = counts(&mut m, &ping).received;
    ping.run_until(&mut m, "exchanges after the cancel", |m| {
        counts(m, &ping).received >= base + 50
    });
    let (ca, cb) = (counts(&mut m, &ping), counts(&mut m, &pong));
    PingpongOracle::check_pair(&ca, &cb).unwrap();
    ping.check(&mut m, Stop::Anywhere);
    pong.check(&mut m, Stop::Anywhere);
}

#[test]
fn a_guest_that_cannot_ack_times_out_in_virtual_time() {
    // A paused guest never answers: the toolstack gives up after its timeout in the
    // model's time, withdraws the request and reports it; the guest, unpaused, goes on
    // as if nothing happened.
    let mut m = model();
    let g = G::create(&mut m, &cfg("c", "counter", "pages=8 report=0"));
    g.run_steps(&mut m, 30);
    xc::pause(&mut m, g.dom).unwrap();
    let t0 = m.now_ns();
    let e = suspend::suspend(&mut m, g.dom, 2_000_000_000).expect_err("no ack");
    assert!(
        matches!(e, suspend::SuspendError::NoAck { dom, .. } if dom == g.dom),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("d{}", g.dom)), "{e}");
    // (suspend counts its 10 ms polls, and the first returns at once with the watch
    // event its registration fires, so up to one poll less than the timeout passes.)
    assert!(
        m.now_ns() - t0 >= 2_000_000_000 - 10_000_000,
        "waited in virtual time: {} ns",
        m.now_ns() - t0
    );
    assert_eq!(m.xs_read(XS_NO_TX, &g.shutdown_node()).unwrap(), b"");
    xc::unpause(&mut m, g.dom).unwrap();
    g.run_steps(&mut m, 30);
    let st = g.check(&mut m, Stop::Anywhere);
    assert_eq!(st.suspends, 0);
    // And it still suspends when asked properly.
    g.suspend(&mut m);
    g.resume_in_place(&mut m);
}

#[test]
fn a_guest_that_keeps_a_foreign_mapping_is_refused_by_the_saver() {
    // Built to suspend without dropping its shared_info mapping: the saver finds the
    // foreign frame in a page table, names the table's PFN, the entry and the MFN, and
    // resumes the guest in place (its suspend returns 1), which carries on.
    let mut m = model();
    let g = G::create(
        &mut m,
        &cfg("h", "counter", "pages=8 report=0 hostile=keep-shinfo"),
    );
    g.run_steps(&mut m, 30);
    let shinfo = g.shared_info_mfn(&mut m);
    let mut out = Vec::new();
    let e = save(&mut m, g.dom, &mut out, SaveOptions::default()).expect_err("refused");
    // The bootstrap L1 that maps the guest's shared_info slot, and the slot.
    let l = &g.layout;
    let va = l.va_of(Pfn::new(guest_model::layout::PG_SHINFO)).get();
    let upper = l.tables.l4 + l.tables.l3 + l.tables.l2;
    let l1_pfn = l.page_tables.pfn.get() + upper + ((va >> 21) - (l.virt_base.get() >> 21));
    match &e {
        SaveError::ForeignPte {
            dom,
            pfn,
            level,
            index,
            mfn,
        } => {
            assert_eq!(*dom, g.dom);
            assert_eq!((*pfn, *level), (l1_pfn, 1), "{e}");
            assert_eq!(*index as u64, (va >> 12) & 511);
            assert_eq!(*mfn, shinfo.get());
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains(&format!("{l1_pfn:#x}")), "{e}");
    // The guest had suspended (its protocol otherwise followed) and runs again.
    g.run_steps(&mut m, 30);
    let st = g.check(&mut m, Stop::Anywhere);
    assert_eq!((st.suspends, st.resumes, st.cancels), (1, 0, 1));
    assert!(g
        .console(&m)
        .contains("counter: start steps=0 report=0 hostile=keep-shinfo pages=8\n"));
}

#[test]
fn checkpoint_save_resumes_in_place_with_1() {
    let mut m = model();
    let g = G::create(&mut m, &cfg("c", "counter", "pages=8 report=0"));
    g.run_steps(&mut m, 30);
    let mut out = Vec::new();
    save(
        &mut m,
        g.dom,
        &mut out,
        SaveOptions {
            after: AfterSave::Checkpoint,
            ..SaveOptions::default()
        },
    )
    .expect("save -c");
    g.run_steps(&mut m, 30);
    let st = g.check(&mut m, Stop::Anywhere);
    assert_eq!((st.suspends, st.resumes, st.cancels), (1, 0, 1));
    g.check_resumed_state(&mut m);
    // And the checkpoint restores into a domain that resumes with 0 (under a name of
    // its own: the source still runs under the saved one).
    let opts = RestoreOptions {
        name: Some("c-copy".into()),
        ..RestoreOptions::default()
    };
    let r = restore(&mut m, &out[..], opts).expect("restore");
    xc::unpause(&mut m, r.domid).unwrap();
    let g2 = G {
        dom: r.domid,
        p2m: r.p2m,
        layout: g.layout.clone(),
        params: g.params.clone(),
        earlier: String::new(),
        name: g.name,
    };
    g2.run_until(&mut m, "the restored copy to run", |m| {
        g2.status(m).resumes == 1
    });
}

// ---------------------------------------------------------------------------------
// Bad parameters and oracles that must fail.

#[test]
fn bad_toy_parameters_are_clear_errors() {
    let cases: [(&str, &str, &str); 9] = [
        ("counter", "pages=0", "pages"),
        ("counter", "pages=9000", "pages"),
        ("counter", "seed=3", "seed"),
        ("epoch", "period_ns=5", "period_ns"),
        ("epoch", "writes=lots", "writes"),
        ("pagetable", "pages=3", "pages"),
        ("pingpong", "report=1", "role"),
        ("pingpong", "role=pong", "peer"),
        ("checksum", "pages=9000", "pages"),
    ];
    for (guest, extra, key) in cases {
        let c = cfg("bad", guest, extra);
        let e = build::toy_params(&c).expect_err(extra);
        assert!(e.to_string().contains(key), "{guest} {extra}: {e}");
        let mut m = model();
        let free = free_pages(&mut m);
        match build::create(&mut m, &c, &BuildOptions::default()) {
            Err(CreateError::Kernel {
                name,
                source: LoadKernelError::Toy { name: toy, what },
            }) => {
                assert_eq!((name.as_str(), toy.as_str()), ("bad", guest));
                assert!(what.contains(key), "{what}");
            }
            other => panic!("{guest} {extra}: {other:?}"),
        }
        assert_eq!(free_pages(&mut m), free, "nothing allocated");
    }
    let c = cfg("bad", "countr", "");
    assert!(matches!(
        build::toy_params(&c),
        Err(ToyError::UnknownGuest { .. })
    ));
    let e = build::create(&mut model(), &c, &BuildOptions::default()).unwrap_err();
    assert!(e.to_string().contains("countr"), "{e}");
}

/// Corrupts one byte of `pfn` at `off` through foreign memory.
fn corrupt(m: &mut Model, g: &G, pfn: Pfn, off: usize) {
    let mut page = g.pages(m, [pfn]).pages.remove(&pfn).unwrap();
    page[off] ^= 0x40;
    xc::write_frames(m, g.dom, &[g.mfn(pfn)], &page)
        .unwrap()
        .unwrap();
}

fn verdict(m: &mut Model, g: &G, stop: Stop) -> Verdict {
    let c = g.console(m);
    build::check_oracle(
        m,
        g.dom,
        &g.params,
        &OracleCheck {
            stop,
            p2m: Some(&g.p2m),
            console: Some(&c),
        },
    )
    .unwrap()
}

#[test]
fn oracles_detect_a_corrupted_byte() {
    for (guest, extra, steps) in [
        ("counter", "pages=16 report=5", 40),
        (
            "epoch",
            "pages=16 writes=5 seed=3 period_ns=20000 report=1",
            4,
        ),
        ("pagetable", "report=1", 3),
        ("checksum", "pages=4 seed=2 report=100", 300),
    ] {
        let mut m = model();
        let g = G::create(&mut m, &cfg(guest, guest, extra));
        g.run_steps(&mut m, steps);
        // At a safe point the oracle predicts every byte of its pages.
        g.suspend(&mut m);
        assert!(verdict(&mut m, &g, Stop::SafePoint).holds());
        let expected =
            guest_model::guests::Oracle::new(&g.params).expected_pages(g.status(&mut m).steps);
        let region = guest_model::guests::Oracle::region(&g.params);
        for pfn in (region.start.get()..region.end.get()).map(Pfn::new) {
            // A byte that holds data if there is one, and one in the middle.
            let data = expected
                .get(&pfn)
                .and_then(|p| p.iter().position(|&b| b != 0))
                .unwrap_or(0);
            for off in [data, 2049] {
                corrupt(&mut m, &g, pfn, off);
                match verdict(&mut m, &g, Stop::SafePoint) {
                    Verdict::Fails(_) => {}
                    Verdict::Holds(_) => {
                        panic!("{guest}: corrupting pfn {pfn}+{off:#x} went unseen")
                    }
                }
                corrupt(&mut m, &g, pfn, off);
                assert!(verdict(&mut m, &g, Stop::SafePoint).holds());
            }
        }
        // The status block too.
        corrupt(&mut m, &g, Status::PFN, 0);
        assert!(matches!(
            verdict(&mut m, &g, Stop::SafePoint),
            Verdict::Fails(OracleError::BadMagic { .. })
        ));
        corrupt(&mut m, &g, Status::PFN, 0);
        // A console line the guest did not print.
        let c = format!("{}{guest}: step 999999\n", g.console(&m));
        let v = build::check_oracle(
            &mut m,
            g.dom,
            &g.params,
            &OracleCheck {
                stop: Stop::SafePoint,
                p2m: Some(&g.p2m),
                console: Some(&c),
            },
        )
        .unwrap();
        assert!(
            matches!(v, Verdict::Fails(OracleError::Console { .. })),
            "{v:?}"
        );
        // A wrong expectation: parameters other than the guest runs with.
        let c = g.console(&m);
        let mut others = vec![];
        let mut p = g.params.clone();
        p.report += 1;
        others.push(p);
        if guest != "pagetable" {
            let mut p = g.params.clone();
            p.pages -= 1;
            others.push(p);
        }
        if guest == "epoch" || guest == "checksum" {
            let mut p = g.params.clone();
            p.seed += 1;
            others.push(p);
        }
        for other in others {
            let v = build::check_oracle(
                &mut m,
                g.dom,
                &other,
                &OracleCheck {
                    stop: Stop::SafePoint,
                    p2m: Some(&g.p2m),
                    console: Some(&c),
                },
            )
            .unwrap();
            assert!(!v.holds(), "{guest}: wrong parameters {other:?} accepted");
        }
    }
}

#[test]
fn pingpong_oracle_detects_impossible_counts() {
    let mut m = model();
    let ping = G::create(&mut m, &cfg("ping", "pingpong", "role=ping report=0"));
    let pong = G::create(
        &mut m,
        &cfg(
            "pong",
            "pingpong",
            &format!("role=pong peer={} report=0", ping.dom.get()),
        ),
    );
    let counts = |m: &mut Model, g: &G| Counts::from_status(&g.status(m));
    ping.run_until(&mut m, "exchanges", |m| counts(m, &pong).received >= 20);
    xc::pause(&mut m, ping.dom).unwrap();
    xc::pause(&mut m, pong.dom).unwrap();
    PingpongOracle::check_pair(&counts(&mut m, &ping), &counts(&mut m, &pong)).unwrap();
    // Bump the ping's received counter by 3 (status steps, byte 0 of the u64).
    let mut page = ping
        .pages(&mut m, [Status::PFN])
        .pages
        .remove(&Status::PFN)
        .unwrap();
    page[guest_model::layout::ST_STEPS as usize] =
        page[guest_model::layout::ST_STEPS as usize].wrapping_add(3);
    xc::write_frames(&mut m, ping.dom, &[ping.mfn(Status::PFN)], &page)
        .unwrap()
        .unwrap();
    assert!(PingpongOracle::check_pair(&counts(&mut m, &ping), &counts(&mut m, &pong)).is_err());
}

#[test]
fn saved_pages_match_the_suspended_guest_by_pfn() {
    // Guest memory across a round trip, page by page, over the whole guest (not just
    // the oracle region), except the pages Xen and the toolstack legitimately change.
    let mut m = model();
    let g = G::create(&mut m, &cfg("c", "counter", "pages=16 report=0"));
    g.run_steps(&mut m, 50);
    g.suspend(&mut m);
    let all: Vec<Pfn> = (0..g.p2m.len() as u64).map(Pfn::new).collect();
    let before = g.pages(&mut m, all.iter().copied());
    let mut out = Vec::new();
    save(
        &mut m,
        g.dom,
        &mut out,
        SaveOptions {
            already_suspended: true,
            ..SaveOptions::default()
        },
    )
    .unwrap();
    let r = restore(&mut m, &out[..], RestoreOptions::default()).unwrap();
    let after = build::read_guest_pages(&mut m, r.domid, &r.p2m, all.iter().copied()).unwrap();
    let l = &g.layout;
    for pfn in &all {
        let (a, b) = (&before.pages[pfn], &after.pages[pfn]);
        if a == b {
            continue;
        }
        // Page tables hold MFNs, the p2m list too; start_info is rewritten by restore;
        // the rings belong to xenstored/xenconsoled.
        let moved = l.page_tables.contains(*pfn)
            || l.p2m.contains(*pfn)
            || *pfn == l.start_info.pfn
            || *pfn == l.xenstore.pfn
            || *pfn == l.console.pfn
            || pfn.get() == guest_model::layout::PG_FL
            || pfn.get() == guest_model::layout::PG_FLL;
        assert!(moved, "pfn {pfn} changed across save/restore");
        let _ = PAGE_SIZE;
    }
    let frame = Mfn::new(xc::domain_info(&mut m, r.domid).unwrap().shared_info_frame);
    let sh = xc::read_frames(&mut m, r.domid, &[frame]).unwrap().unwrap();
    let sh = SharedInfo::read_from_prefix(&sh[..]).unwrap().0;
    assert!(sh.evtchn_mask.iter().all(|&w| w == u64::MAX));
}

#[test]
fn same_config_same_bytes() {
    // Two hosts, the same guests, the same instruction counts: identical memory by PFN,
    // console, vCPU registers and virtual time — including across a save/restore.
    let run = || {
        let mut m = model();
        let g = G::create(
            &mut m,
            &cfg(
                "e",
                "epoch",
                "pages=16 writes=4 seed=5 period_ns=30000 report=2",
            ),
        );
        m.run(3_000_000);
        g.suspend(&mut m);
        let g = g.save_restore(&mut m);
        m.run(1_000_000);
        let all: Vec<Pfn> = (0..g.p2m.len() as u64).map(Pfn::new).collect();
        let mem = g.pages(&mut m, all);
        let ctx = xc::get_vcpu_context(&mut m, g.dom, 0).unwrap();
        (mem, g.console(&m), ctx.user_regs.rip, m.now_ns())
    };
    let (a, b) = (run(), run());
    assert_eq!(a.1, b.1, "console");
    assert_eq!((a.2, a.3), (b.2, b.3), "rip and time");
    assert!(a.0 == b.0, "memory by PFN differs");
}

#[test]
fn checksum_guest_notices_memory_changed_behind_its_back() {
    let mut m = model();
    let g = G::create(&mut m, &cfg("c", "checksum", "pages=2 seed=4 report=0"));
    g.run_steps(&mut m, 100);
    g.suspend(&mut m);
    // Change a word it wrote while it is suspended, then save and restore it.
    corrupt(&mut m, &g, Pfn::new(guest_model::layout::PG_GUEST), 8);
    let mut out = Vec::new();
    save(
        &mut m,
        g.dom,
        &mut out,
        SaveOptions {
            already_suspended: true,
            ..SaveOptions::default()
        },
    )
    .unwrap();
    let r = restore(&mut m, &out[..], RestoreOptions::default()).unwrap();
    let earlier = g.console(&m);
    let g = G {
        dom: r.domid,
        p2m: r.p2m,
        earlier,
        ..g
    };
    xc::unpause(&mut m, g.dom).unwrap();
    g.run_until(&mut m, "the verification", |m| g.status(m).guest[2] == 1);
    g.run_steps(&mut m, 10);
    let st = g.status(&mut m);
    assert_eq!(st.guest[3], 1, "the guest saw the change");
    assert!(g.console(&m).contains("checksum: verify BAD\n"));
    assert!(!verdict(&mut m, &g, Stop::Anywhere).holds());
}
