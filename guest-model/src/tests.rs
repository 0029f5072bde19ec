//! Crate-level tests: every guest assembles, deterministically, into the allowed subset.

use crate::isa::check_code;
use crate::{toy, ToyImage};

fn all_images() -> Vec<ToyImage> {
    vec![
        toy("counter", "").unwrap(),
        toy("counter", "pages=3 steps=10 report=2").unwrap(),
    ]
}

#[test]
fn images_assemble_and_decode_into_the_subset() {
    for img in all_images() {
        let used =
            check_code(img.code(), img.entry).unwrap_or_else(|e| panic!("{}: {e}", img.name));
        assert!(!used.is_empty());
        assert_eq!(img.bytes.len() as u64 % 4096, 0);
        eprintln!(
            "{}: {} code bytes, {} total, {} distinct codes",
            img.name,
            img.code_len,
            img.bytes.len(),
            used.len()
        );
    }
}

mod run {
    use crate::minixen::MiniXen;
    use crate::oracle::{check_console, Status, Stop};
    use crate::{toy, CounterOracle};

    fn dump(mx: &MiniXen, d: u16) -> String {
        let dom = &mx.doms[&d];
        format!(
            "console:\n{}\nlog: {:?}\nshutdown: {:?}\nhypercalls: {:?}\ninsns {}",
            dom.console,
            mx.log,
            dom.shutdown,
            mx.hypercalls.get(&d),
            dom.insns
        )
    }

    #[test]
    fn counter_runs_and_matches_its_oracle() {
        let img = toy("counter", "pages=5 report=7 steps=40").unwrap();
        let mut mx = MiniXen::new();
        let (d, _) = mx.build(&img, 512, "pages=5 report=7 steps=40");
        let done = mx.run_until(5_000_000, |m| m.doms[&d].shutdown.is_some());
        assert!(done, "{}", dump(&mx, d));
        assert_eq!(mx.doms[&d].shutdown, Some(0), "{}", dump(&mx, d));
        let mem = mx.pages(d);
        let o = CounterOracle::new(&img.params);
        let st = o
            .check(&mem, Stop::SafePoint)
            .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d)));
        assert_eq!(st.steps, 40);
        let exp = o.expected_console(40);
        check_console(
            "counter",
            &mx.doms[&d].console,
            &st,
            Stop::SafePoint,
            &exp,
            &exp,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d)));
        let _ = Status::PFN;
        eprintln!("{}", dump(&mx, d));
    }
}

mod suspend {
    use crate::minixen::MiniXen;
    use crate::oracle::{check_console, Status, Stop};
    use crate::{toy, CounterOracle};

    fn dump(mx: &MiniXen, d: u16) -> String {
        let dom = &mx.doms[&d];
        format!(
            "console:\n{}\nlog: {:?}\nshutdown: {:?}\ninsns {}",
            dom.console, mx.log, dom.shutdown, dom.insns
        )
    }

    fn steps(mx: &MiniXen, d: u16) -> u64 {
        Status::read_raw(&mx.pages(d)).map(|s| s.steps).unwrap_or(0)
    }

    #[test]
    fn counter_suspends_cancels_saves_and_restores() {
        let img = toy("counter", "pages=9 report=50").unwrap();
        let o = CounterOracle::new(&img.params);
        let mut mx = MiniXen::new();
        let (d, _) = mx.build(&img, 600, "");
        assert!(
            mx.run_until(2_000_000, |m| steps(m, d) >= 120),
            "{}",
            dump(&mx, d)
        );
        o.check(&mx.pages(d), Stop::Anywhere).unwrap();

        // Suspend, then cancel (checkpoint): continues in place.
        mx.request_suspend(d);
        assert!(
            mx.run_until(2_000_000, |m| m.doms[&d].shutdown.is_some()),
            "{}",
            dump(&mx, d)
        );
        assert_eq!(mx.doms[&d].shutdown, Some(2), "{}", dump(&mx, d));
        let st = o.check(&mx.pages(d), Stop::SafePoint).unwrap();
        assert_eq!((st.suspends, st.resumes, st.cancels), (1, 0, 0));
        let at = st.steps;
        mx.resume_fast(d);
        assert!(
            mx.run_until(2_000_000, |m| steps(m, d) >= at + 100),
            "{}",
            dump(&mx, d)
        );
        let st = o.check(&mx.pages(d), Stop::Anywhere).unwrap();
        assert_eq!((st.suspends, st.resumes, st.cancels), (1, 0, 1));
        assert!(
            mx.doms[&d]
                .console
                .contains("counter: suspend cancelled 1\n"),
            "{}",
            dump(&mx, d)
        );

        // Suspend again, save, restore into a new domain.
        mx.request_suspend(d);
        assert!(
            mx.run_until(2_000_000, |m| m.doms[&d].shutdown.is_some()),
            "{}",
            dump(&mx, d)
        );
        let before = o.check(&mx.pages(d), Stop::SafePoint).unwrap();
        let saved = mx.save(d).unwrap_or_else(|e| panic!("save: {e}"));
        let d2 = mx.restore(&saved);
        assert!(
            mx.run_until(3_000_000, |m| steps(m, d2) >= before.steps + 300),
            "{}",
            dump(&mx, d2)
        );
        let st = o
            .check(&mx.pages(d2), Stop::Anywhere)
            .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d2)));
        assert_eq!((st.suspends, st.resumes, st.cancels), (2, 1, 1));
        let con = mx.doms[&d2].console.clone();
        assert!(con.contains("counter: resumed 1\n"), "{}", dump(&mx, d2));
        // And once more from the restored domain, to a third one.
        mx.request_suspend(d2);
        assert!(
            mx.run_until(2_000_000, |m| m.doms[&d2].shutdown.is_some()),
            "{}",
            dump(&mx, d2)
        );
        let st = o.check(&mx.pages(d2), Stop::SafePoint).unwrap();
        let saved = mx.save(d2).unwrap_or_else(|e| panic!("save: {e}"));
        let d3 = mx.restore(&saved);
        assert!(
            mx.run_until(2_000_000, |m| steps(m, d3) >= st.steps + 50),
            "{}",
            dump(&mx, d3)
        );
        mx.request_suspend(d3);
        assert!(
            mx.run_until(2_000_000, |m| m.doms[&d3].shutdown.is_some()),
            "{}",
            dump(&mx, d3)
        );
        let st = o.check(&mx.pages(d3), Stop::SafePoint).unwrap();
        assert_eq!((st.suspends, st.resumes, st.cancels), (4, 2, 1));
        let exp = o.expected_console(st.steps);
        check_console(
            "counter",
            &mx.doms[&d3].console,
            &st,
            Stop::SafePoint,
            &exp,
            &exp,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d3)));
        assert!(mx.log.is_empty(), "{:?}", mx.log);
    }
}

mod epoch_run {
    use crate::guests::epoch::EpochOracle;
    use crate::minixen::MiniXen;
    use crate::oracle::{check_console, Status, Stop};
    use crate::toy;

    fn dump(mx: &MiniXen, d: u16) -> String {
        let dom = &mx.doms[&d];
        format!(
            "console:\n{}\nlog: {:?}\nshutdown: {:?}\ninsns {}",
            dom.console, mx.log, dom.shutdown, dom.insns
        )
    }

    fn steps(mx: &MiniXen, d: u16) -> u64 {
        Status::read_raw(&mx.pages(d)).map(|s| s.steps).unwrap_or(0)
    }

    #[test]
    fn epoch_runs_suspends_and_restores() {
        let img = toy("epoch", "pages=16 writes=5 seed=7 period_ns=20000 report=4").unwrap();
        let o = EpochOracle::new(&img.params);
        let mut mx = MiniXen::new();
        let (d, _) = mx.build(&img, 600, "");
        assert!(
            mx.run_until(5_000_000, |m| steps(m, d) >= 10),
            "{}",
            dump(&mx, d)
        );
        o.check(&mx.pages(d), Stop::Anywhere)
            .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d)));
        mx.request_suspend(d);
        assert!(
            mx.run_until(5_000_000, |m| m.doms[&d].shutdown.is_some()),
            "{}",
            dump(&mx, d)
        );
        assert_eq!(mx.doms[&d].shutdown, Some(2), "{}", dump(&mx, d));
        let st = o.check(&mx.pages(d), Stop::SafePoint).unwrap();
        let saved = mx.save(d).unwrap_or_else(|e| panic!("save: {e}"));
        let d2 = mx.restore(&saved);
        assert!(
            mx.run_until(5_000_000, |m| steps(m, d2) >= st.steps + 10),
            "{}",
            dump(&mx, d2)
        );
        mx.request_suspend(d2);
        assert!(
            mx.run_until(5_000_000, |m| m.doms[&d2].shutdown.is_some()),
            "{}",
            dump(&mx, d2)
        );
        let st = o
            .check(&mx.pages(d2), Stop::SafePoint)
            .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d2)));
        assert_eq!((st.suspends, st.resumes), (2, 1));
        let exp = o.expected_console(st.steps);
        check_console(
            "epoch",
            &mx.doms[&d2].console,
            &st,
            Stop::SafePoint,
            &exp,
            &exp,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d2)));
        eprintln!("{} timer events: {}", dump(&mx, d2), st.guest[0]);
        assert!(mx.log.is_empty(), "{:?}", mx.log);
    }
}

mod pagetable_run {
    use crate::guests::pagetable::PagetableOracle;
    use crate::minixen::MiniXen;
    use crate::oracle::{check_console, Status, Stop};
    use crate::toy;

    fn dump(mx: &MiniXen, d: u16) -> String {
        let dom = &mx.doms[&d];
        format!(
            "console:\n{}\nlog: {:?}\nshutdown: {:?}\ninsns {}",
            dom.console, mx.log, dom.shutdown, dom.insns
        )
    }

    fn steps(mx: &MiniXen, d: u16) -> u64 {
        Status::read_raw(&mx.pages(d)).map(|s| s.steps).unwrap_or(0)
    }

    #[test]
    fn pagetable_rounds_suspend_and_restore() {
        let img = toy("pagetable", "report=5").unwrap();
        let o = PagetableOracle::new(&img.params);
        let mut mx = MiniXen::new();
        let (d, _) = mx.build(&img, 600, "");
        assert!(
            mx.run_until(5_000_000, |m| steps(m, d) >= 3
                || m.doms[&d].shutdown.is_some()),
            "{}",
            dump(&mx, d)
        );
        o.check(&mx.pages(d), Stop::Anywhere)
            .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d)));
        mx.request_suspend(d);
        assert!(
            mx.run_until(5_000_000, |m| m.doms[&d].shutdown.is_some()),
            "{}",
            dump(&mx, d)
        );
        assert_eq!(mx.doms[&d].shutdown, Some(2), "{}", dump(&mx, d));
        let st = o
            .check(&mx.pages(d), Stop::SafePoint)
            .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d)));
        let saved = mx.save(d).unwrap_or_else(|e| panic!("save: {e}"));
        let d2 = mx.restore(&saved);
        assert!(
            mx.run_until(20_000_000, |m| steps(m, d2) >= st.steps + 40
                || m.doms[&d2].shutdown.is_some()),
            "{}",
            dump(&mx, d2)
        );
        mx.request_suspend(d2);
        assert!(
            mx.run_until(5_000_000, |m| m.doms[&d2].shutdown.is_some()),
            "{}",
            dump(&mx, d2)
        );
        let st = o
            .check(&mx.pages(d2), Stop::SafePoint)
            .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d2)));
        assert!(st.steps > 40);
        let exp = o.expected_console(st.steps);
        check_console(
            "pagetable",
            &mx.doms[&d2].console,
            &st,
            Stop::SafePoint,
            &exp,
            &exp,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d2)));
        assert!(mx.log.is_empty(), "{:?}", mx.log);
    }
}
