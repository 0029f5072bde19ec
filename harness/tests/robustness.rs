//! Property 4, robustness: any single corruption of a valid stream (truncation, bit
//! flip, record swap, duplicated or dropped record, unknown mandatory or optional
//! record, inflated length or count) makes restore fail with a typed error, or yields a
//! domain that passes the model's invariant checker — never a panic, never a leaked
//! domain or frame (domain list and free frames compared before and after), never a
//! write outside the new domain (a paused bystander guest's memory, event channels and
//! shared_info digested before and after).

mod common;

use std::sync::OnceLock;

use common::*;
use harness::{Corruption, Runner, SaveMode, Step};
use hypervisor::Xen;
use proptest::prelude::*;
use toolstack::restore::{restore, RestoreError, RestoreOptions};
use toolstack::save::xc;

/// A saved stream of each guest kind (made once).
fn streams() -> &'static [Vec<u8>] {
    static S: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    S.get_or_init(|| {
        [
            ("counter", "pages=16 report=50"),
            ("pagetable", "report=5"),
            ("epoch", "seed=5 pages=16 writes=4"),
        ]
        .iter()
        .map(|(kind, extra)| {
            let mut r = Runner::new(1);
            boot(&mut r, "g", 0, kind, extra);
            r.hosts[0].model.run(700_000);
            r.step(
                0,
                &Step::Save {
                    guest: "g".into(),
                    mode: SaveMode::Plain,
                },
            )
            .unwrap();
            assert!(!r.log.last().unwrap().contains("error"), "{:?}", r.log);
            r.streams.pop().unwrap().bytes
        })
        .collect()
    })
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        any::<u64>().prop_map(|at| Corruption::Truncate { at }),
        (any::<u64>(), any::<u8>()).prop_map(|(offset, bit)| Corruption::FlipBit { offset, bit }),
        any::<u32>().prop_map(|index| Corruption::SwapRecords { index }),
        any::<u32>().prop_map(|index| Corruption::DuplicateRecord { index }),
        any::<u32>().prop_map(|index| Corruption::DropRecord { index }),
        (any::<u32>(), any::<bool>())
            .prop_map(|(index, optional)| Corruption::InsertUnknown { index, optional }),
        (
            any::<u32>(),
            prop_oneof![1u32..16, 1u32..0x10000, any::<u32>()]
        )
            .prop_map(|(index, by)| Corruption::InflateLength { index, by }),
        (any::<u32>(), prop_oneof![1u32..4, 1u32..2000, any::<u32>()])
            .prop_map(|(index, by)| Corruption::InflateCount { index, by }),
    ]
}

/// The outcome class of one corrupted restore, for the coverage check.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    Refused,
    Restored,
    NotApplicable,
}

fn check(stream: &[u8], how: Corruption) -> Result<Class, TestCaseError> {
    let Some(bad) = how.apply(stream) else {
        return Ok(Class::NotApplicable);
    };
    let mut r = Runner::new(1);
    boot(&mut r, "bystander", 0, "counter", "pages=8 report=0");
    r.hosts[0].model.run(50_000);
    let by = dom(&r, "bystander");
    xc::pause(&mut r.hosts[0], by).unwrap();
    let before = fingerprint(&mut r, "bystander");
    let doms = harness::observe::domains(&mut r.hosts[0]).unwrap();
    let free = harness::observe::free_pages(&mut r.hosts[0]).unwrap();

    let class = match restore(&mut r.hosts[0], &bad[..], RestoreOptions::default()) {
        Ok(new) => {
            let inv = r.hosts[0].model.check_invariants();
            prop_assert!(inv.is_ok(), "{:?}: restored, but {:?}", how, inv);
            xc::destroy(&mut r.hosts[0], new.domid).unwrap();
            Class::Restored
        }
        Err(e) => {
            if std::env::var("XI_DEBUG").is_ok() {
                eprintln!("{how:?}: {e}");
            }
            // Typed and printable, and never a half-restored domain left behind.
            let _ = e.to_string();
            prop_assert!(
                !matches!(e, RestoreError::CleanupFailed { .. }),
                "{:?}: {}",
                how,
                e
            );
            Class::Refused
        }
    };
    prop_assert_eq!(
        harness::observe::domains(&mut r.hosts[0]).unwrap(),
        doms,
        "{:?}: domains",
        how
    );
    prop_assert_eq!(
        harness::observe::free_pages(&mut r.hosts[0]).unwrap(),
        free,
        "{:?}: frames",
        how
    );
    prop_assert!(r.hosts[0].model.check_invariants().is_ok(), "{:?}", how);
    prop_assert!(
        fingerprint(&mut r, "bystander") == before,
        "{:?}: the bystander changed",
        how
    );
    // The host still works: the bystander runs on.
    let _ = r.hosts[0].backend_name();
    Ok(class)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: persistence("robustness"), cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn any_single_corruption_fails_cleanly_or_restores_a_sound_domain(
        which in 0usize..3,
        how in corruption(),
    ) {
        check(&streams()[which], how)?;
    }
}

/// The corruptions that must be refused, whatever the stream: cut inside a record,
/// unknown mandatory record, and the END record missing or duplicated.
#[test]
fn mandatory_damage_is_refused() {
    for s in streams() {
        let spans = harness::corrupt::record_spans(s).unwrap();
        let n = spans.len() as u32;
        for how in [
            Corruption::Truncate {
                at: s.len() as u64 - 1,
            },
            Corruption::Truncate {
                at: spans[n as usize / 2].offset as u64 + 3,
            },
            Corruption::InsertUnknown {
                index: n / 2,
                optional: false,
            },
            Corruption::DropRecord { index: n - 1 },
            Corruption::DuplicateRecord { index: n - 1 },
            Corruption::InflateLength {
                index: n / 2,
                by: 1 << 30,
            },
        ] {
            let c = check(s, how).unwrap();
            assert_eq!(c, Class::Refused, "{how:?}");
        }
    }
}

/// An unknown optional (bit 31) libxc record must be skipped (libxc's
/// `process_record` ignores it; stream.md): the guest restores as if it were absent.
#[test]
fn an_unknown_optional_record_is_skipped() {
    for s in streams() {
        let n = harness::corrupt::record_spans(s).unwrap().len() as u32;
        let how = Corruption::InsertUnknown {
            index: n / 2,
            optional: true,
        };
        assert_eq!(check(s, how).unwrap(), Class::Restored, "{how:?}");
    }
}
