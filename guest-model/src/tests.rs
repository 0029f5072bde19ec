//! Crate-level tests: every guest assembles, deterministically, into the allowed subset;
//! parameter errors; oracles against hand-computed values. The guests' execution
//! (boot, workload, suspend, cancel, save and restore) is tested on the real model
//! through the real domain builder in `toolstack/tests/guests.rs`.

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
        ("checksum", ""),
        ("checksum", "pages=8192 seed=77 steps=9 report=2"),
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
