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
