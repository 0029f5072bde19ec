//! Property 5, isolation: with two guests on one host, saving (plain, `-c`, `-p`) and
//! restoring one never changes the other's memory, event channels or shared_info
//! (the other is paused around each operation so its own work does not move them),
//! and the other's oracle holds at the end.

mod common;

use common::*;
use harness::{Runner, SaveMode, Step, StopAt};
use proptest::prelude::*;
use toolstack::save::xc;

fn mode() -> impl Strategy<Value = SaveMode> {
    prop_oneof![
        Just(SaveMode::Plain),
        Just(SaveMode::Checkpoint),
        Just(SaveMode::LeavePaused)
    ]
}

fn kind() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop_oneof![
        Just(("counter", "pages=16 report=100")),
        Just(("epoch", "seed=9 pages=16 writes=4 report=20")),
        Just(("pagetable", "report=5")),
        Just(("checksum", "pages=8 seed=3 report=100")),
    ]
}

fn check_isolation(
    (akind, aextra): (&str, &str),
    (bkind, bextra): (&str, &str),
    schedule: &[(u64, SaveMode)],
) -> Result<(), TestCaseError> {
    let mut r = Runner::new(1);
    boot(&mut r, "a", 0, akind, aextra);
    boot(&mut r, "b", 0, bkind, bextra);
    for (i, &(insns, mode)) in schedule.iter().enumerate() {
        r.hosts[0].model.run(insns);
        let b = dom(&r, "b");
        xc::pause(&mut r.hosts[0], b).unwrap();
        let before = fingerprint(&mut r, "b");
        r.step(
            i,
            &Step::Save {
                guest: "a".into(),
                mode,
            },
        )
        .unwrap();
        prop_assert!(!r.log.last().unwrap().contains("error"), "{:?}", r.log);
        match mode {
            SaveMode::Plain => {
                let stream = r.streams.len() - 1;
                r.step(
                    i,
                    &Step::Restore {
                        stream,
                        host: 0,
                        guest: "a".into(),
                    },
                )
                .unwrap();
                prop_assert!(!r.log.last().unwrap().contains("error"), "{:?}", r.log);
                r.step(i, &Step::Unpause { guest: "a".into() }).unwrap();
            }
            SaveMode::Checkpoint => {}
            SaveMode::LeavePaused => r.step(i, &Step::Unpause { guest: "a".into() }).unwrap(),
        }
        let after = fingerprint(&mut r, "b");
        prop_assert!(before.0 == after.0, "step {}: b's memory changed", i);
        prop_assert_eq!(
            &before.1,
            &after.1,
            "step {}: b's event channels changed",
            i
        );
        prop_assert_eq!(
            before.2,
            after.2,
            "step {}: b's event channel masks changed",
            i
        );
        xc::unpause(&mut r.hosts[0], b).unwrap();
    }
    r.hosts[0].model.run(300_000);
    for g in ["a", "b"] {
        r.step(
            0,
            &Step::Check {
                guest: g.into(),
                stop: StopAt::Anywhere,
            },
        )
        .unwrap();
        let line = r.log.last().unwrap();
        prop_assert!(line.contains("holds"), "{}", line);
    }
    prop_assert!(r.hosts[0].model.check_invariants().is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: persistence("isolation"), cases: cases(64), ..ProptestConfig::default() })]

    #[test]
    fn saving_one_guest_never_touches_the_other(
        a in kind(),
        b in kind(),
        schedule in proptest::collection::vec((1u64..400_000, mode()), 1..=3),
    ) {
        check_isolation(a, b, &schedule)?;
    }
}

/// A pingpong pair beside a counter: saving and restoring the counter leaves the pair's
/// memory and its inter-domain channel alone, and the pair keeps exchanging.
#[test]
fn a_pingpong_pair_is_not_disturbed() {
    let mut r = Runner::new(1);
    boot(&mut r, "c", 0, "counter", "pages=16 report=100");
    boot(&mut r, "ping", 0, "pingpong", "role=ping report=10");
    r.step(
        0,
        &Step::Boot {
            guest: "pong".into(),
            host: 0,
            kind: "pingpong".into(),
            extra: "role=pong report=10".into(),
            peer: Some("ping".into()),
        },
    )
    .unwrap();
    r.hosts[0].model.run(2_000_000);
    let exchanged = status(&mut r, "ping").steps;
    assert!(
        exchanged > 0,
        "the pair exchanges: {}",
        r.transcript("ping")
    );
    for (i, mode) in [SaveMode::Plain, SaveMode::Checkpoint, SaveMode::Plain]
        .into_iter()
        .enumerate()
    {
        let (ping, pong) = (dom(&r, "ping"), dom(&r, "pong"));
        xc::pause(&mut r.hosts[0], ping).unwrap();
        xc::pause(&mut r.hosts[0], pong).unwrap();
        let before = (fingerprint(&mut r, "ping"), fingerprint(&mut r, "pong"));
        r.step(
            i,
            &Step::Save {
                guest: "c".into(),
                mode,
            },
        )
        .unwrap();
        if mode == SaveMode::Plain {
            let stream = r.streams.len() - 1;
            r.step(
                i,
                &Step::Restore {
                    stream,
                    host: 0,
                    guest: "c".into(),
                },
            )
            .unwrap();
            r.step(i, &Step::Unpause { guest: "c".into() }).unwrap();
        }
        let after = (fingerprint(&mut r, "ping"), fingerprint(&mut r, "pong"));
        assert!(before == after, "cycle {i}: the pair changed; {:?}", r.log);
        xc::unpause(&mut r.hosts[0], ping).unwrap();
        xc::unpause(&mut r.hosts[0], pong).unwrap();
        r.hosts[0].model.run(500_000);
    }
    assert!(status(&mut r, "ping").steps > exchanged, "the pair goes on");
    for g in ["c", "ping", "pong"] {
        r.step(
            0,
            &Step::Check {
                guest: g.into(),
                stop: StopAt::Anywhere,
            },
        )
        .unwrap();
        assert!(r.log.last().unwrap().contains("holds"), "{:?}", r.log);
    }
}
