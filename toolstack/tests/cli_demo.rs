//! `xi demo` in-process for every toy guest it supports, with small step counts: the
//! verdict must be PASS and every step reported; bad options are errors.

use toolstack::cli::demo::{run, DemoArgs};

fn demo(guest: &str, steps: u64, seed: u64) -> (toolstack::cli::demo::DemoReport, String) {
    let mut out = Vec::new();
    let args = DemoArgs {
        guest: guest.into(),
        memory: 8,
        steps: Some(steps),
        seed,
        ..DemoArgs::default()
    };
    let r = run(&args, &mut out).unwrap_or_else(|e| panic!("demo {guest}: {e:#}"));
    (r, String::from_utf8(out).unwrap())
}

#[test]
fn every_guest_passes_the_round_trip() {
    for (guest, steps) in [("counter", 20_000), ("epoch", 200), ("pagetable", 60)] {
        for seed in [1, 7] {
            let (r, out) = demo(guest, steps, seed);
            assert!(r.passed, "{guest} seed {seed}: {:?}\n{out}", r.failure);
            assert!(r.saved_at > 0 && r.saved_at < steps, "{guest}: {r:?}");
            assert_ne!(r.domains.0, r.domains.1);
            assert!(
                r.file_bytes > 8 << 20,
                "an 8 MiB guest's file: {}",
                r.file_bytes
            );
            for step in [
                "1. boot",
                "2. run",
                "3. save",
                "4. restore",
                "5. start",
                "6. run",
                "7. check",
            ] {
                assert!(out.contains(step), "{guest}: no {step:?}\n{out}");
            }
            assert!(out.contains(&format!("{guest}: resumed 1")), "{out}");
            assert!(out.lines().last().unwrap().starts_with("PASS"), "{out}");
        }
    }
}

#[test]
fn bad_options_are_errors() {
    let mut out = Vec::new();
    for args in [
        DemoArgs {
            guest: "nosuch".into(),
            ..DemoArgs::default()
        },
        DemoArgs {
            guest: "pingpong".into(),
            ..DemoArgs::default()
        },
        DemoArgs {
            steps: Some(1),
            ..DemoArgs::default()
        },
        DemoArgs {
            memory: 1,
            ..DemoArgs::default()
        },
    ] {
        assert!(run(&args, &mut out).is_err(), "{args:?}");
    }
    // A budget too small to reach the save point fails with a message, not a hang.
    let e = run(
        &DemoArgs {
            memory: 8,
            max_insns: 10_000,
            ..DemoArgs::default()
        },
        &mut out,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("gave up"), "{e:#}");
}
