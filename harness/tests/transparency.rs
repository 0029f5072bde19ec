//! Property 1, transparency: for any toy guest (counter, epoch, pagetable, checksum), seed, and schedule of up to three
//! save/restore (plain), checkpoint (`-c`) or `-p` cycles at arbitrary instruction
//! counts, the guest finishing its `steps=` leaves the same guest region (by PFN) and
//! the same console minus the suspend/resume lines as the same guest run without
//! interruption; and its own oracle holds over the whole transcript.

mod common;

use common::*;
use guest_model::{Guest, ToyParams};
use harness::{Runner, SaveMode, Step, StopAt};
use proptest::prelude::*;

/// Parameters per guest: enough steps for 1–2 M instructions of work.
fn extra(kind: &str, seed: u64) -> String {
    match kind {
        "counter" => format!("pages={} report=1000 steps=40000", 1 + seed % 32),
        "epoch" => format!("seed={seed} pages=16 writes=4 report=100 steps=4000"),
        "pagetable" => "report=20 steps=300".to_owned(),
        "checksum" => format!("pages=8 seed={seed} report=500 steps=3000"),
        _ => unreachable!(),
    }
}

const LIMIT: u64 = 40_000_000;

fn reference(
    kind: &str,
    extra: &str,
    params: &ToyParams,
) -> (Vec<String>, std::collections::BTreeMap<u64, Vec<u8>>) {
    let mut r = Runner::new(1);
    boot(&mut r, "g", 0, kind, extra);
    assert!(run_until_done(&mut r, "g", LIMIT), "reference run finishes");
    let console = r.transcript("g");
    (workload_lines(&console, kind), region(&mut r, "g", params))
}

fn mode() -> impl Strategy<Value = SaveMode> {
    prop_oneof![
        3 => Just(SaveMode::Plain),
        1 => Just(SaveMode::Checkpoint),
        1 => Just(SaveMode::LeavePaused),
    ]
}

fn check_transparency(
    kind: &str,
    seed: u64,
    schedule: &[(u64, SaveMode)],
) -> Result<(), TestCaseError> {
    let extra = extra(kind, seed);
    let params = ToyParams::parse(Guest::from_name(kind).unwrap(), &extra).unwrap();
    let mut r = Runner::new(2);
    boot(&mut r, "g", 0, kind, &extra);
    let mut cuts = 0;
    for (i, &(insns, mode)) in schedule.iter().enumerate() {
        let host = slot(&r, "g").host;
        r.hosts[host].model.run(insns);
        if is_done(&mut r, "g") {
            break;
        }
        let g = "g".to_owned();
        r.step(
            i,
            &Step::Save {
                guest: g.clone(),
                mode,
            },
        )
        .unwrap();
        let line = r.log.last().unwrap().clone();
        prop_assert!(!line.contains("error"), "{}", line);
        cuts += 1;
        match mode {
            SaveMode::Plain => {
                // Alternate hosts: a restore lands on the other machine.
                let to = 1 - host;
                let stream = r.streams.len() - 1;
                r.step(
                    i,
                    &Step::Restore {
                        stream,
                        host: to,
                        guest: g.clone(),
                    },
                )
                .unwrap();
                let line = r.log.last().unwrap().clone();
                prop_assert!(!line.contains("error"), "{}", line);
                r.step(
                    i,
                    &Step::Check {
                        guest: g.clone(),
                        stop: StopAt::SafePoint,
                    },
                )
                .unwrap();
                let line = r.log.last().unwrap().clone();
                prop_assert!(line.contains("holds"), "at the cut: {}", line);
                r.step(i, &Step::Unpause { guest: g }).unwrap();
            }
            SaveMode::Checkpoint => {}
            SaveMode::LeavePaused => r.step(i, &Step::Unpause { guest: g }).unwrap(),
        }
    }
    prop_assert!(
        run_until_done(&mut r, "g", LIMIT),
        "the interrupted run finishes; {:?}",
        r.log
    );
    let console = r.transcript("g");
    let v = r.verdict(0, "g", guest_model::Stop::SafePoint).unwrap();
    prop_assert!(v.starts_with("holds"), "oracle: {}\n{}", v, console);
    let (want_console, want_region) = reference(kind, &extra, &params);
    prop_assert_eq!(workload_lines(&console, kind), want_console);
    let got_region = region(&mut r, "g", &params);
    prop_assert!(
        got_region == want_region,
        "guest region differs from the uninterrupted run"
    );
    for h in &r.hosts {
        prop_assert!(h.model.check_invariants().is_ok());
    }
    let st = status(&mut r, "g");
    prop_assert_eq!(st.suspends, cuts);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: persistence("transparency"), cases: cases(96), ..ProptestConfig::default() })]

    #[test]
    fn a_round_trip_is_invisible_to_the_workload(
        kind in prop_oneof![Just("counter"), Just("epoch"), Just("pagetable"), Just("checksum")],
        seed in 0u64..1_000_000,
        schedule in proptest::collection::vec((1u64..450_000, mode()), 0..=3),
    ) {
        check_transparency(kind, seed, &schedule)?;
    }
}

/// One fixed case of each guest, so a plain `cargo test` always covers all three.
#[test]
fn each_guest_survives_three_cycles() {
    for kind in ["counter", "epoch", "pagetable", "checksum"] {
        check_transparency(
            kind,
            7,
            &[
                (123_457, SaveMode::Plain),
                (200_001, SaveMode::Checkpoint),
                (99_999, SaveMode::Plain),
            ],
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

// ---------------------------------------------------------------------------
// The pingpong pair: two guests on one host joined by an interdomain event channel.

/// Which side of the pair a cycle saves. (Saving both sides at once is out of the
/// toy's reach: the pong is told its peer's domain id at boot, and a restored ping has
/// a new one.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ping,
    Pong,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Ping => "ping",
            Side::Pong => "pong",
        }
    }
}

/// Boots the pair on host 0: the ping with `steps=`, the pong told the ping's id.
fn boot_pair(r: &mut Runner, steps: u64) {
    boot(
        r,
        "ping",
        0,
        "pingpong",
        &format!("role=ping report=250 steps={steps}"),
    );
    r.step(
        0,
        &Step::Boot {
            guest: "pong".into(),
            host: 0,
            kind: "pingpong".into(),
            extra: "role=pong report=250".into(),
            peer: Some("ping".into()),
        },
    )
    .unwrap();
    assert!(slot(r, "pong").dom.is_some(), "{:?}", r.log);
}

/// Runs until the ping is done, then a little longer so the pong has taken in all it
/// will ever get; each side's status block.
fn finish_pair(r: &mut Runner) -> Result<[guest_model::Status; 2], TestCaseError> {
    prop_assert!(
        run_until_done(r, "ping", LIMIT),
        "the ping finishes; {:?}",
        r.log
    );
    r.hosts[0].model.run(400_000);
    Ok([status(r, "ping"), status(r, "pong")])
}

/// Runs host 0 until each side of the pair has received a notification more than it
/// had (or the ping is done); false if that takes more than [`LIMIT`] instructions.
fn connect(r: &mut Runner) -> bool {
    let seen = |r: &mut Runner, g| try_status(r, g).map_or(0, |s| s.steps);
    let (ping0, pong0) = (seen(r, "ping"), seen(r, "pong"));
    let mut spent = 0;
    while !is_done(r, "ping") && (seen(r, "ping") <= ping0 || seen(r, "pong") <= pong0) {
        if spent >= LIMIT {
            return false;
        }
        r.hosts[0].model.run(10_000);
        spent += 10_000;
    }
    true
}

/// The pair, with one side saved (and restored, or kept running by `-c`, or left
/// paused and unpaused) at each cut, ends where the uninterrupted pair ends: the ping
/// received all its `steps=`, the pong's count is off by at most one per cut, both
/// oracles hold, and each side counted exactly its own suspends.
fn check_pair_transparency(
    steps: u64,
    schedule: &[(u64, Side, SaveMode)],
) -> Result<(), TestCaseError> {
    let mut r = Runner::new(1);
    boot_pair(&mut r, steps);
    let mut cuts = [0u64; 2];
    for (i, &(insns, side, mode)) in schedule.iter().enumerate() {
        // Every cut comes while the pair is connected: both sides have received a
        // notification since the last cut. A side cut while the pair reconnects may
        // not know its peer's current id — it learns it from the peer's announcement
        // in its own xenstore home, which a restore (like libxl's) does not carry
        // over — and then the two never find each other again: the toy's limit, not
        // the toolstack's.
        prop_assert!(connect(&mut r), "the pair reconnects; {:?}", r.log);
        r.hosts[0].model.run(insns);
        if is_done(&mut r, "ping") {
            break;
        }
        let g = side.label();
        r.step(
            i,
            &Step::Save {
                guest: g.into(),
                mode,
            },
        )
        .unwrap();
        let line = r.log.last().unwrap().clone();
        prop_assert!(!line.contains("error"), "{}", line);
        cuts[usize::from(side == Side::Pong)] += 1;
        match mode {
            SaveMode::Plain => {
                let stream = r.streams.len() - 1;
                r.step(
                    i,
                    &Step::Restore {
                        stream,
                        host: 0,
                        guest: g.into(),
                    },
                )
                .unwrap();
                let line = r.log.last().unwrap().clone();
                prop_assert!(!line.contains("error"), "{}", line);
                r.step(i, &Step::Unpause { guest: g.into() }).unwrap();
            }
            SaveMode::Checkpoint => {}
            SaveMode::LeavePaused => r.step(i, &Step::Unpause { guest: g.into() }).unwrap(),
        }
    }
    let got = finish_pair(&mut r)?;
    let mut want_r = Runner::new(1);
    boot_pair(&mut want_r, steps);
    let want = finish_pair(&mut want_r)?;
    // The ping receives exactly its `steps=`. The pong receives what the ping sent:
    // a cut of either side tears down the channel, so each cut can lose the one
    // notification then in flight, and the pong's rebind after it sends one of its own
    // (module docs of guest_model's pingpong) — at most one either way per cut.
    prop_assert_eq!(got[0].steps, want[0].steps, "ping steps; {:?}", r.log);
    let all_cuts = cuts[0] + cuts[1];
    prop_assert!(
        got[1].steps.abs_diff(want[1].steps) <= all_cuts,
        "pong received {} notifications, the uninterrupted pong {} ({} cuts); {:?}",
        got[1].steps,
        want[1].steps,
        all_cuts,
        r.log
    );
    for (k, g) in ["ping", "pong"].into_iter().enumerate() {
        prop_assert_eq!(got[k].state, want[k].state, "{} state", g);
        prop_assert_eq!(got[k].error, 0, "{} error", g);
        prop_assert_eq!(got[k].suspends, cuts[k], "{} suspends", g);
        let v = r.verdict(0, g, guest_model::Stop::Anywhere).unwrap();
        prop_assert!(v.starts_with("holds"), "{} oracle: {}", g, v);
    }
    prop_assert!(r.hosts[0].model.check_invariants().is_ok());
    Ok(())
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Ping), Just(Side::Pong)]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: persistence("transparency_pair"), cases: cases(32), ..ProptestConfig::default() })]

    #[test]
    fn a_round_trip_of_either_side_is_invisible_to_the_pair(
        steps in 1000u64..4000,
        schedule in proptest::collection::vec((1u64..450_000, side(), mode()), 0..=3),
    ) {
        check_pair_transparency(steps, &schedule)?;
    }
}

/// Fixed cases: each side with each kind of save.
#[test]
fn each_side_of_the_pair_survives_each_kind_of_save() {
    for sched in [
        vec![(300_000, Side::Pong, SaveMode::Plain)],
        vec![(300_000, Side::Ping, SaveMode::Plain)],
        vec![(300_000, Side::Pong, SaveMode::Checkpoint)],
        vec![(300_000, Side::Ping, SaveMode::LeavePaused)],
        vec![
            (123_457, Side::Pong, SaveMode::Plain),
            (200_001, Side::Ping, SaveMode::Plain),
            (99_999, Side::Ping, SaveMode::Checkpoint),
        ],
    ] {
        check_pair_transparency(4000, &sched).unwrap_or_else(|e| panic!("{sched:?}: {e}"));
    }
}
