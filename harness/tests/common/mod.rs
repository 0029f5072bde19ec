//! Helpers shared by the harness's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use guest_model::guests::Oracle;
use guest_model::layout::STATE_DONE;
use guest_model::ToyParams;
use harness::observe;
use harness::scenario::GuestSlot;
use harness::{Runner, Step};
use hypervisor::DomId;
use toolstack::build;

/// Where a test file's proptest failures are kept: `harness/proptest-regressions/<name>.txt`
/// (committed, replayed first on every run).
pub fn persistence(name: &str) -> Option<Box<dyn proptest::test_runner::FailurePersistence>> {
    let path = format!(
        "{}/proptest-regressions/{name}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    Some(Box::new(
        proptest::test_runner::FileFailurePersistence::Direct(Box::leak(path.into_boxed_str())),
    ))
}

/// Proptest cases: `PROPTEST_CASES` if set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn boot(r: &mut Runner, label: &str, host: usize, kind: &str, extra: &str) {
    r.step(
        0,
        &Step::Boot {
            guest: label.to_owned(),
            host,
            kind: kind.to_owned(),
            extra: extra.to_owned(),
            peer: None,
        },
    )
    .expect("boot step");
    assert!(
        r.guests.get(label).and_then(|g| g.dom).is_some(),
        "boot failed: {:?}",
        r.log.last()
    );
}

pub fn slot<'a>(r: &'a Runner, label: &str) -> &'a GuestSlot {
    &r.guests[label]
}

pub fn dom(r: &Runner, label: &str) -> DomId {
    slot(r, label).dom.expect("guest has a domain")
}

/// Status block of a guest.
pub fn status(r: &mut Runner, label: &str) -> guest_model::Status {
    try_status(r, label).expect("status block")
}

/// Status block of a guest, `None` before the guest has written it.
pub fn try_status(r: &mut Runner, label: &str) -> Option<guest_model::Status> {
    let g = slot(r, label).clone();
    let d = g.dom.expect("live");
    build::toys::read_status(&mut r.hosts[g.host], d, &g.p2m)
        .expect("readable")
        .ok()
}

pub fn is_done(r: &mut Runner, label: &str) -> bool {
    try_status(r, label).is_some_and(|s| s.state == STATE_DONE)
}

/// Runs the host until `label`'s guest has finished its `steps=` (or `limit`
/// instructions have passed); returns whether it finished.
pub fn run_until_done(r: &mut Runner, label: &str, limit: u64) -> bool {
    let host = slot(r, label).host;
    let mut spent = 0;
    while spent < limit {
        if is_done(r, label) {
            return true;
        }
        let n = r.hosts[host].model.run(200_000);
        spent += 200_000;
        if n == 0 && !is_done(r, label) {
            return false;
        }
    }
    is_done(r, label)
}

/// The guest region (what the oracle predicts) by PFN.
pub fn region(r: &mut Runner, label: &str, params: &ToyParams) -> BTreeMap<u64, Vec<u8>> {
    let g = slot(r, label).clone();
    let d = g.dom.expect("live");
    let range = Oracle::region(params);
    let pages = observe::memory_pages(&mut r.hosts[g.host], d, &g.p2m).expect("memory");
    pages
        .into_iter()
        .filter(|(p, _)| (range.start.get()..range.end.get()).contains(p))
        .map(|(p, page)| (p, page.expect("page readable")))
        .collect()
}

/// The console without the suspend/resume protocol lines (and the checksum guest's
/// `verify ok`, which it prints after checking its memory on a resume).
pub fn workload_lines(console: &str, name: &str) -> Vec<String> {
    let verified = format!("{name}: verify ok");
    let suspending = format!("{name}: suspending");
    let resumed = format!("{name}: resumed ");
    let cancelled = format!("{name}: suspend cancelled ");
    console
        .lines()
        .filter(|l| {
            *l != suspending
                && *l != verified
                && !l.starts_with(&resumed)
                && !l.starts_with(&cancelled)
        })
        .map(str::to_owned)
        .collect()
}

/// A digest of everything of `label`'s domain another guest must not be able to touch:
/// memory by PFN, event channel ports and masks (pending bits are left out: a paused
/// domain's own timer still fires).
pub fn fingerprint(r: &mut Runner, label: &str) -> (BTreeMap<u64, u64>, Vec<String>, u64) {
    let g = slot(r, label).clone();
    let d = g.dom.expect("live");
    let h = &mut r.hosts[g.host];
    let mem = observe::memory_digests(h, d, &g.p2m).expect("memory");
    let ev = observe::event_channels(&mut h.model, d);
    (mem, ev.ports, ev.mask)
}
