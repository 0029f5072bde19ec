//! The scenario runner: a scenario touching every kind of step runs the same twice,
//! byte for byte, and its verdicts are the guests' oracles'.

use harness::scenario::StopAt;
use harness::{Corruption, Runner, SaveMode, Scenario, Step};

fn s(x: &str) -> String {
    x.to_owned()
}

fn every_step() -> Scenario {
    let g = s("c");
    Scenario {
        hosts: 2,
        steps: vec![
            Step::Boot {
                guest: g.clone(),
                host: 0,
                kind: s("counter"),
                extra: s("pages=16 report=50"),
                peer: None,
            },
            Step::Boot {
                guest: s("e"),
                host: 1,
                kind: s("epoch"),
                extra: s("seed=7 pages=16 writes=4"),
                peer: None,
            },
            Step::Run {
                host: 0,
                insns: 300_000,
            },
            Step::Run {
                host: 1,
                insns: 300_000,
            },
            Step::Check {
                guest: g.clone(),
                stop: StopAt::Anywhere,
            },
            Step::Save {
                guest: g.clone(),
                mode: SaveMode::Plain,
            },
            Step::CheckInvariants { host: 0 },
            Step::Restore {
                stream: 0,
                host: 1,
                guest: g.clone(),
            },
            Step::Check {
                guest: g.clone(),
                stop: StopAt::SafePoint,
            },
            Step::Unpause { guest: g.clone() },
            Step::Run {
                host: 1,
                insns: 300_000,
            },
            Step::Check {
                guest: g.clone(),
                stop: StopAt::Anywhere,
            },
            Step::Save {
                guest: g.clone(),
                mode: SaveMode::Checkpoint,
            },
            Step::Run {
                host: 1,
                insns: 200_000,
            },
            Step::Save {
                guest: g.clone(),
                mode: SaveMode::LeavePaused,
            },
            Step::Unpause { guest: g.clone() },
            Step::Run {
                host: 1,
                insns: 200_000,
            },
            Step::Check {
                guest: g.clone(),
                stop: StopAt::Anywhere,
            },
            Step::Check {
                guest: s("e"),
                stop: StopAt::Anywhere,
            },
            Step::Corrupt {
                stream: 0,
                how: Corruption::Truncate { at: 5000 },
            },
            Step::Restore {
                stream: 3,
                host: 0,
                guest: s("broken"),
            },
            Step::Destroy { guest: s("e") },
            Step::CheckInvariants { host: 0 },
            Step::CheckInvariants { host: 1 },
        ],
    }
}

#[test]
fn the_same_scenario_gives_the_same_bytes() {
    let a = Runner::run_scenario(&every_step()).expect("runs");
    let b = Runner::run_scenario(&every_step()).expect("runs");
    assert_eq!(a.log, b.log);
    assert_eq!(a.to_bytes(), b.to_bytes());
    assert!(a.streams.len() == 4 && !a.streams[0].bytes.is_empty());
}

#[test]
fn every_step_does_what_it_says() {
    let o = Runner::run_scenario(&every_step()).expect("runs");
    let log = o.log.join("\n");
    for (i, l) in o.log.iter().enumerate() {
        if i == 20 {
            assert!(l.contains("restore slot 3 as broken: error"), "{l}");
        } else {
            assert!(
                !l.contains("error") && !l.contains("fails"),
                "step {i}: {l}\n{log}"
            );
        }
    }
    for i in [4, 8, 11, 17, 18] {
        assert!(o.log[i].contains(": holds: "), "{}", o.log[i]);
    }
    let c = &o.guests["c"];
    assert!(c.verdict.starts_with("holds"), "{}", c.verdict);
    assert_eq!(c.host, 1);
    // One resume in a new domain, then a checkpoint and a -p save resumed in place.
    for line in [
        "counter: resumed 1",
        "counter: suspend cancelled 1",
        "counter: suspend cancelled 2",
    ] {
        assert!(c.console.contains(line), "{line}: {}", c.console);
    }
    assert_eq!(c.console.matches("counter: suspending").count(), 3);
    assert!(c.steps.unwrap() > 0);
    assert_eq!(c.memory.len(), 1024, "4 MiB by PFN");
    assert_eq!(o.guests["e"].verdict, "gone");
    assert!(!o.guests.contains_key("broken"));
    assert_eq!(o.hosts[0].domains, [0]);
    assert_eq!(o.hosts[1].domains.len(), 2);
    assert!(o.hosts.iter().all(|h| h.invariants == "ok"));
}

#[test]
fn a_scenario_naming_nothing_is_an_error() {
    let bad = Scenario {
        hosts: 1,
        steps: vec![Step::Unpause { guest: s("nobody") }],
    };
    assert!(Runner::run_scenario(&bad).is_err());
}
