//! Crate-level tests: every guest assembles, deterministically, into the allowed subset;
//! parameter errors; oracles against hand-computed values; and execution of every
//! guest on [`minixen`](crate::minixen) including suspend, cancel, save and restore.

use crate::isa::check_code;
use crate::{build, toy, Guest, ToyError, ToyImage, ToyParams};

fn all_images() -> Vec<ToyImage> {
    [
        ("counter", ""),
        ("counter", "pages=3 steps=10 report=2"),
        ("counter", "pages=8192 report=0"),
        ("epoch", ""),
        (
            "epoch",
            "seed=99 pages=300 writes=4096 period_ns=1000 steps=5",
        ),
        ("pagetable", ""),
        ("pagetable", "steps=3 report=1"),
        ("pingpong", "role=ping"),
        ("pingpong", "role=ping peer=7"),
        ("pingpong", "role=pong peer=3 steps=100 report=10"),
    ]
    .iter()
    .map(|(n, e)| toy(n, e).unwrap_or_else(|err| panic!("{n} {e}: {err}")))
    .collect()
}

#[test]
fn images_assemble_and_decode_into_the_subset() {
    for img in all_images() {
        let used =
            check_code(img.code(), img.entry).unwrap_or_else(|e| panic!("{}: {e}", img.name));
        assert!(!used.is_empty());
        assert_eq!(img.bytes.len() as u64 % 4096, 0);
        assert_eq!(img.entry, img.virt_base);
        assert!(img.bytes.len() as u64 >= crate::layout::PG_GUEST * 4096);
        // The hypercall page and everything after the code pages is zero.
        let code_end = (crate::layout::CODE_PAGES * 4096) as usize;
        assert!(
            img.bytes[code_end..].iter().all(|&b| b == 0),
            "{}",
            img.name
        );
        eprintln!(
            "{}: {} code bytes, {} total, {} distinct codes",
            img.name,
            img.code_len,
            img.bytes.len(),
            used.len()
        );
    }
}

#[test]
fn images_are_deterministic() {
    let a = all_images();
    let b = all_images();
    assert_eq!(a, b);
    // Different parameters, different bytes.
    assert_ne!(
        toy("counter", "pages=3").unwrap().bytes,
        toy("counter", "pages=4").unwrap().bytes
    );
    assert_ne!(
        toy("epoch", "seed=1").unwrap().bytes[..32768],
        toy("epoch", "seed=2").unwrap().bytes[..32768]
    );
    // Same parameters written differently: same image.
    assert_eq!(
        toy("epoch", "seed=3 pages=9").unwrap(),
        toy("epoch", "pages=9  seed=3").unwrap()
    );
    let p = ToyParams::parse(Guest::Counter, "pages=5").unwrap();
    assert_eq!(build(&p).unwrap(), toy("counter", "pages=5").unwrap());
}

#[test]
fn toy_rejects_bad_names_and_keys() {
    assert!(matches!(
        toy("countr", ""),
        Err(ToyError::UnknownGuest { .. })
    ));
    let e = toy("counter", "bogus=1").unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
    assert!(matches!(
        toy("pingpong", ""),
        Err(ToyError::MissingKey { key: "role", .. })
    ));
    assert!(matches!(
        toy("epoch", "period_ns=5"),
        Err(ToyError::BadValue { .. })
    ));
}

mod oracles {
    use std::collections::{BTreeMap, BTreeSet};

    use hypervisor::types::Pfn;

    use crate::guests::epoch::EpochOracle;
    use crate::guests::pagetable::{PagetableOracle, NEW_VA};
    use crate::guests::pingpong::{Counts, PingpongOracle};
    use crate::layout::*;
    use crate::oracle::{OracleError, Stop};
    use crate::{toy, CounterOracle};

    /// A guest memory with a status block saying `steps` and the given region pages.
    fn mem_with(steps: u64, region: BTreeMap<Pfn, Vec<u8>>) -> BTreeMap<Pfn, Vec<u8>> {
        let mut m = region;
        let mut g = vec![0u8; 4096];
        g[ST_MAGIC as usize..][..8].copy_from_slice(&STATUS_MAGIC.to_le_bytes());
        g[ST_STEPS as usize..][..8].copy_from_slice(&steps.to_le_bytes());
        g[ST_STATE as usize..][..8].copy_from_slice(&STATE_RUNNING.to_le_bytes());
        m.insert(Pfn::new(PG_GLOBALS), g);
        m
    }

    #[test]
    fn counter_by_hand() {
        let o = CounterOracle::new(&toy("counter", "pages=4").unwrap().params);
        assert_eq!(o.expected_bytes(0), [0, 0, 0, 0]);
        assert_eq!(o.expected_bytes(1), [1, 0, 0, 0]);
        assert_eq!(o.expected_bytes(6), [2, 2, 1, 1]);
        assert_eq!(o.expected_bytes(4 * 256 + 3), [1, 1, 1, 0]);
        assert_eq!(o.expected_bytes(4 * 255 + 2), [0, 0, 255, 255]);
        o.check_monotone(&[5, 5, 4, 4]).unwrap();
        o.check_monotone(&[0, 0, 255]).unwrap();
        o.check_monotone(&[7, 7, 7]).unwrap();
        assert!(matches!(
            o.check_monotone(&[5, 4, 3]),
            Err(OracleError::NotMonotone { .. })
        ));
        assert!(o.check_monotone(&[5, 6]).is_err());
        assert!(o.check_monotone(&[5, 3]).is_err());
        // Exact check with a status block.
        let good = mem_with(6, o.expected_pages(6));
        assert_eq!(o.check(&good, Stop::SafePoint).unwrap().steps, 6);
        // One step ahead is only fine anywhere.
        let ahead = mem_with(5, o.expected_pages(6));
        assert!(o.check(&ahead, Stop::SafePoint).is_err());
        o.check(&ahead, Stop::Anywhere).unwrap();
        // A crafted bad image: monotone, but what 5 steps give, not 6 (or 7).
        let mut bad = o.expected_pages(6);
        bad.get_mut(&o.pfn(1)).unwrap()[0] = 1;
        assert!(matches!(
            o.check(&mem_with(6, bad), Stop::Anywhere),
            Err(OracleError::Mismatch { .. })
        ));
        // Two steps down.
        let mut bad = o.expected_pages(6);
        bad.get_mut(&o.pfn(1)).unwrap()[0] = 1;
        bad.get_mut(&o.pfn(2)).unwrap()[0] = 0;
        bad.get_mut(&o.pfn(3)).unwrap()[0] = 0;
        assert!(matches!(
            o.check(&mem_with(6, bad), Stop::Anywhere),
            Err(OracleError::NotMonotone { .. })
        ));
        // Noise elsewhere in a region page.
        let mut bad = o.expected_pages(6);
        bad.get_mut(&o.pfn(0)).unwrap()[100] = 1;
        assert!(o.check(&mem_with(6, bad), Stop::Anywhere).is_err());
        assert_eq!(
            o.expected_console(5000),
            [
                "counter: start steps=0 report=4096 pages=4",
                "counter: step 4096"
            ]
        );
    }

    #[test]
    fn epoch_dirty_log() {
        let o = EpochOracle::new(&toy("epoch", "pages=8 writes=3 seed=5").unwrap().params);
        let mem = mem_with(4, o.expected_pages(4));
        o.check(&mem, Stop::SafePoint).unwrap();
        let written_after_2: BTreeSet<Pfn> =
            (3..=4).flat_map(|e| o.picks(e)).map(|i| o.pfn(i)).collect();
        o.check_dirty_log(&mem, 2, 4, &written_after_2).unwrap();
        // Missing one dirty page.
        let mut missing = written_after_2.clone();
        let first = *missing.iter().next().unwrap();
        missing.remove(&first);
        assert!(matches!(
            o.check_dirty_log(&mem, 2, 4, &missing),
            Err(OracleError::DirtyLog(_))
        ));
        // Extra dirty pages are fine.
        let all: BTreeSet<Pfn> = (0..8).map(|i| o.pfn(i)).collect();
        o.check_dirty_log(&mem, 2, 4, &all).unwrap();
        // An epoch from the future.
        assert!(o.check_dirty_log(&mem, 2, 3, &all).is_err());
        // In flight: epoch 5 partly written.
        let mut flight = o.expected_pages(4);
        let p5 = o.picks(5)[0];
        flight.get_mut(&o.pfn(p5)).unwrap()[..8].copy_from_slice(&5u64.to_le_bytes());
        let flight = mem_with(4, flight);
        assert!(
            o.check(&flight, Stop::SafePoint).is_err() || o.expected_values(4)[p5 as usize] == 5
        );
        o.check(&flight, Stop::Anywhere).unwrap();
    }

    #[test]
    fn pagetable_records_by_hand() {
        let o = PagetableOracle::new(&toy("pagetable", "").unwrap().params);
        let r = o.record(3);
        assert_eq!(r[0], 3);
        assert_eq!(r[1..7], [0; 6]);
        assert_eq!(r[7], 0x5a5a_0000_0003);
        assert_eq!(r[8], 9);
        assert_eq!(r[11] as i64, -16);
        assert_eq!(r[12], 0x5a5a_0000_0006);
        assert_eq!(r[13], 7);
        assert_eq!(r[14], NEW_VA + 0x1000);
        let pages = o.expected_pages(40);
        let res = &pages[&o.results_pfn()];
        // Round 40 is in record 7; rounds 9..=40 are kept, 1..=8 overwritten.
        assert_eq!(
            u64::from_le_bytes(res[7 * 128..7 * 128 + 8].try_into().unwrap()),
            40
        );
        assert_eq!(
            u64::from_le_bytes(res[8 * 128..8 * 128 + 8].try_into().unwrap()),
            9
        );
        let mem = mem_with(40, pages.clone());
        o.check(&mem, Stop::SafePoint).unwrap();
        let mut bad = pages;
        bad.get_mut(&o.results_pfn()).unwrap()[7 * 128 + 11 * 8] = 0;
        assert!(o.check(&mem_with(40, bad), Stop::SafePoint).is_err());
    }

    #[test]
    fn pingpong_pairs() {
        let c = |received, sent, channels| Counts {
            received,
            sent,
            channels,
            peer_changes: 0,
        };
        // Alternating: the pong opened, the ping answered, ...
        PingpongOracle::check_pair(&c(10, 10, 1), &c(10, 11, 1)).unwrap();
        PingpongOracle::check_pair(&c(11, 10, 1), &c(10, 11, 1)).unwrap();
        PingpongOracle::check_pair(&c(0, 0, 1), &c(0, 1, 1)).unwrap();
        assert!(PingpongOracle::check_pair(&c(12, 12, 1), &c(10, 11, 1)).is_err());
        assert!(PingpongOracle::check_pair(&c(10, 10, 1), &c(9, 12, 1)).is_err());
        assert!(PingpongOracle::check_pair(&c(13, 13, 2), &c(10, 11, 1)).is_err());
        PingpongOracle::check_pair(&c(20, 20, 2), &c(19, 21, 2)).unwrap();
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

mod pingpong_run {
    use crate::guests::pingpong::{Counts, PingpongOracle};
    use crate::minixen::MiniXen;
    use crate::oracle::{check_console, Status, Stop};
    use crate::toy;

    fn dump(mx: &MiniXen, d: u16) -> String {
        let dom = &mx.doms[&d];
        format!(
            "dom{d} console:\n{}\nlog: {:?}\nshutdown: {:?}\ninsns {}",
            dom.console, mx.log, dom.shutdown, dom.insns
        )
    }

    fn counts(mx: &MiniXen, d: u16) -> Counts {
        Counts::from_status(&Status::read_raw(&mx.pages(d)).unwrap_or_default())
    }

    #[test]
    fn pingpong_pair_exchanges_and_survives_restores() {
        let ping = toy("pingpong", "role=ping report=50").unwrap();
        let mut mx = MiniXen::new();
        let (a, _) = mx.build(&ping, 600, "");
        let pong = toy("pingpong", &format!("role=pong peer={a} report=50")).unwrap();
        let (b, _) = mx.build(&pong, 600, "");
        let both = |m: &MiniXen, n: u64| counts(m, a).received >= n && counts(m, b).received >= n;
        assert!(
            mx.run_until(20_000_000, |m| both(m, 120)),
            "{}\n{}",
            dump(&mx, a),
            dump(&mx, b)
        );
        let (ca, cb) = (counts(&mx, a), counts(&mx, b));
        PingpongOracle::check_pair(&ca, &cb).unwrap();
        assert_eq!((ca.channels, cb.channels), (1, 1));

        // Restore the pong into a new domain: the ping learns its new id and re-offers.
        mx.request_suspend(b);
        assert!(
            mx.run_until(5_000_000, |m| m.doms[&b].shutdown.is_some()),
            "{}",
            dump(&mx, b)
        );
        let saved = mx.save(b).unwrap_or_else(|e| panic!("save: {e}"));
        let b2 = mx.restore(&saved);
        let base = counts(&mx, a).received;
        assert!(
            mx.run_until(20_000_000, |m| counts(m, a).received >= base + 100),
            "{}\n{}",
            dump(&mx, a),
            dump(&mx, b2)
        );
        PingpongOracle::check_pair(&counts(&mx, a), &counts(&mx, b2)).unwrap();

        // Now the ping.
        mx.request_suspend(a);
        assert!(
            mx.run_until(5_000_000, |m| m.doms[&a].shutdown.is_some()),
            "{}",
            dump(&mx, a)
        );
        let saved = mx.save(a).unwrap_or_else(|e| panic!("save: {e}"));
        let a2 = mx.restore(&saved);
        let base = counts(&mx, b2).received;
        assert!(
            mx.run_until(20_000_000, |m| counts(m, b2).received >= base + 100),
            "{}\n{}",
            dump(&mx, a2),
            dump(&mx, b2)
        );
        let (ca, cb) = (counts(&mx, a2), counts(&mx, b2));
        PingpongOracle::check_pair(&ca, &cb).unwrap();
        eprintln!("{ca:?} {cb:?}\n{}\n{}", dump(&mx, a2), dump(&mx, b2));
        for (d, img) in [(a2, &ping), (b2, &pong)] {
            mx.request_suspend(d);
            assert!(
                mx.run_until(5_000_000, |m| m.doms[&d].shutdown.is_some()),
                "{}",
                dump(&mx, d)
            );
            let st = Status::read(&mx.pages(d)).unwrap();
            let o = PingpongOracle::new(&img.params);
            let exp = o.expected_console(st.steps);
            check_console(
                "pingpong",
                &mx.doms[&d].console,
                &st,
                Stop::SafePoint,
                &exp,
                &exp,
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", dump(&mx, d)));
        }
        assert!(mx.log.is_empty(), "{:?}", mx.log);
    }
}
