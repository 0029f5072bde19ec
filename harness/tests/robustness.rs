//! Property 4, robustness: any single corruption of a valid stream (truncation, bit
//! flip, record swap or move, duplicated or dropped record, unknown mandatory or
//! optional record, inflated length or count) makes restore fail with a typed error, or
//! yields a domain that passes the model's invariant checker — before and after it runs
//! for a while — never a panic, never a leaked domain or frame (domain list and free
//! frames compared before and after), never a write outside the new domain (paused
//! bystander guests' memory, event channels and masks digested before and after).
//!
//! The streams are saves of every toy guest: `counter`, `pagetable`, `epoch`,
//! `checksum`, and the `pong` side of a `pingpong` pair. A pong's stream names its
//! partner's domain id, so its restores run on a host where the `ping` partner lives
//! under that same id (booted first, as on the saving host); the partner is a bystander
//! too. Every failure message starts with the guest and the corruption kind
//! ([`Corruption::kind`]), and `every_kind_hits_every_guest` tallies outcomes by kind.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::*;
use harness::{Corruption, Runner, SaveMode, Step};
use proptest::prelude::*;
use toolstack::restore::{restore, RestoreError, RestoreOptions};
use toolstack::save::xc;

/// One saved guest: its name, and the partner its restore needs on the host.
struct Saved {
    name: &'static str,
    partner: Option<(&'static str, &'static str)>,
    bytes: Vec<u8>,
}

/// The guests whose streams are corrupted: (name, kind, extra, partner kind+extra).
type GuestSpec = (
    &'static str,
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

const GUESTS: [GuestSpec; 5] = [
    ("counter", "counter", "pages=16 report=50", None),
    ("pagetable", "pagetable", "report=5", None),
    ("epoch", "epoch", "seed=5 pages=16 writes=4", None),
    ("checksum", "checksum", "pages=8 seed=3 report=100", None),
    (
        "pong",
        "pingpong",
        "role=pong report=10",
        Some(("pingpong", "role=ping report=10")),
    ),
];

/// Boots the partner (first, so it gets the same id on every host) as "partner".
fn boot_partner(r: &mut Runner, partner: Option<(&str, &str)>) {
    if let Some((kind, extra)) = partner {
        boot(r, "partner", 0, kind, extra);
    }
}

/// A saved stream of each guest (made once).
fn streams() -> &'static [Saved] {
    static S: OnceLock<Vec<Saved>> = OnceLock::new();
    S.get_or_init(|| {
        GUESTS
            .iter()
            .map(|&(name, kind, extra, partner)| {
                let mut r = Runner::new(1);
                boot_partner(&mut r, partner);
                r.step(
                    0,
                    &Step::Boot {
                        guest: "g".into(),
                        host: 0,
                        kind: kind.into(),
                        extra: extra.into(),
                        peer: partner.map(|_| "partner".into()),
                    },
                )
                .unwrap();
                assert!(
                    r.guests.get("g").and_then(|g| g.dom).is_some(),
                    "{name}: {:?}",
                    r.log
                );
                r.hosts[0].model.run(if partner.is_some() {
                    1_500_000
                } else {
                    700_000
                });
                if partner.is_some() {
                    assert!(
                        status(&mut r, "partner").steps > 0,
                        "the pair exchanges before the save: {}",
                        r.transcript("partner")
                    );
                }
                r.step(
                    0,
                    &Step::Save {
                        guest: "g".into(),
                        mode: SaveMode::Plain,
                    },
                )
                .unwrap();
                assert!(!r.log.last().unwrap().contains("error"), "{:?}", r.log);
                Saved {
                    name,
                    partner,
                    bytes: r.streams.pop().unwrap().bytes,
                }
            })
            .collect()
    })
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        any::<u64>().prop_map(|at| Corruption::Truncate { at }),
        (any::<u64>(), any::<u8>()).prop_map(|(offset, bit)| Corruption::FlipBit { offset, bit }),
        any::<u32>().prop_map(|index| Corruption::SwapRecords { index }),
        (any::<u32>(), any::<u32>()).prop_map(|(from, to)| Corruption::MoveRecord { from, to }),
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

/// The outcome class of one corrupted restore, for the coverage checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Refused,
    Restored,
    NotApplicable,
}

/// Instructions a restored (possibly damaged) domain runs before the last checks.
const RUN_RESTORED: u64 = 100_000;

fn check(saved: &Saved, how: Corruption) -> Result<Class, TestCaseError> {
    let Some(bad) = how.apply(&saved.bytes) else {
        return Ok(Class::NotApplicable);
    };
    let tag = format!("[{} {}] {how:?}", saved.name, how.kind());
    let mut r = Runner::new(1);
    boot_partner(&mut r, saved.partner);
    boot(&mut r, "bystander", 0, "counter", "pages=8 report=0");
    r.hosts[0].model.run(50_000);
    let mut bystanders = vec!["bystander"];
    if saved.partner.is_some() {
        bystanders.push("partner");
    }
    for b in &bystanders {
        let d = dom(&r, b);
        xc::pause(&mut r.hosts[0], d).unwrap();
    }
    let before: Vec<_> = bystanders.iter().map(|b| fingerprint(&mut r, b)).collect();
    let doms = harness::observe::domains(&mut r.hosts[0]).unwrap();
    let free = harness::observe::free_pages(&mut r.hosts[0]).unwrap();

    let class = match restore(&mut r.hosts[0], &bad[..], RestoreOptions::default()) {
        Ok(new) => {
            let inv = r.hosts[0].model.check_invariants();
            prop_assert!(inv.is_ok(), "{}: restored, but {:?}", tag, inv);
            // Nothing of the bystanders changed while the domain was built.
            for (b, was) in bystanders.iter().zip(&before) {
                prop_assert!(
                    fingerprint(&mut r, b) == *was,
                    "{}: restore changed {}",
                    tag,
                    b
                );
            }
            // Let the (possibly damaged) guest run: the host must stay sound.
            xc::unpause(&mut r.hosts[0], new.domid).unwrap();
            r.hosts[0].model.run(RUN_RESTORED);
            let inv = r.hosts[0].model.check_invariants();
            prop_assert!(inv.is_ok(), "{}: restored and ran, but {:?}", tag, inv);
            xc::destroy(&mut r.hosts[0], new.domid).unwrap();
            Class::Restored
        }
        Err(e) => {
            if std::env::var("XI_DEBUG").is_ok() {
                eprintln!("{tag}: {e}");
            }
            // Typed and printable, and never a half-restored domain left behind.
            prop_assert!(!e.to_string().is_empty(), "{}", tag);
            prop_assert!(
                !matches!(e, RestoreError::CleanupFailed { .. }),
                "{}: {}",
                tag,
                e
            );
            Class::Refused
        }
    };
    prop_assert_eq!(
        harness::observe::domains(&mut r.hosts[0]).unwrap(),
        doms,
        "{}: domains",
        tag
    );
    prop_assert_eq!(
        harness::observe::free_pages(&mut r.hosts[0]).unwrap(),
        free,
        "{}: frames",
        tag
    );
    let inv = r.hosts[0].model.check_invariants();
    prop_assert!(inv.is_ok(), "{}: {:?}", tag, inv);
    // The bystander's memory, ports and masks are as they were. The partner's memory
    // too; its ports may legitimately have been bound by the restored pong while it ran.
    prop_assert!(
        fingerprint(&mut r, "bystander") == before[0],
        "{}: the bystander changed",
        tag
    );
    if saved.partner.is_some() {
        prop_assert!(
            fingerprint(&mut r, "partner").0 == before[1].0,
            "{}: the partner's memory changed",
            tag
        );
    }
    Ok(class)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: persistence("robustness"), cases: cases(200), ..ProptestConfig::default() })]

    #[test]
    fn any_single_corruption_fails_cleanly_or_restores_a_sound_domain(
        which in 0usize..GUESTS.len(),
        how in corruption(),
    ) {
        check(&streams()[which], how)?;
    }
}

/// Every corruption kind, a few of each (fixed, spread over the stream), on every
/// guest's stream: each kind applies to every stream, and the tally of outcomes by kind
/// is printed (`--nocapture`). Damage no reader may accept is refused.
#[test]
fn every_kind_hits_every_guest() {
    let mut tally: BTreeMap<(&str, Class), u32> = BTreeMap::new();
    for s in streams() {
        let n = harness::corrupt::record_spans(&s.bytes).unwrap().len() as u32;
        let len = s.bytes.len() as u64;
        let picks = [1, n / 3, n / 2, n - 2];
        let mut hows = vec![];
        for (k, &i) in picks.iter().enumerate() {
            let off = len * u64::from(i) / u64::from(n);
            hows.extend([
                Corruption::Truncate { at: off + 5 },
                Corruption::FlipBit {
                    offset: off + 4,
                    bit: u8::try_from(i % 8).unwrap(),
                },
                Corruption::SwapRecords { index: i },
                Corruption::MoveRecord {
                    from: i,
                    to: (i + n / 2) % n,
                },
                Corruption::DuplicateRecord { index: i },
                Corruption::DropRecord { index: i },
                Corruption::InsertUnknown {
                    index: i,
                    optional: k % 2 == 0,
                },
                Corruption::InflateLength { index: i, by: 8 },
                Corruption::InflateCount { index: i, by: 1 },
            ]);
        }
        let mut applied: BTreeMap<&str, u32> = BTreeMap::new();
        for how in hows {
            let class = check(s, how).unwrap_or_else(|e| panic!("{e}"));
            *tally.entry((how.kind(), class)).or_default() += 1;
            if class != Class::NotApplicable {
                *applied.entry(how.kind()).or_default() += 1;
            }
        }
        for kind in Corruption::KINDS {
            assert!(
                applied.contains_key(kind),
                "{}: {kind} never applied",
                s.name
            );
        }
    }
    for kind in Corruption::KINDS {
        let n = |c| tally.get(&(kind, c)).copied().unwrap_or(0);
        println!(
            "{kind:>16}: refused {:>3}  restored {:>3}  n/a {:>3}",
            n(Class::Refused),
            n(Class::Restored),
            n(Class::NotApplicable)
        );
    }
}

/// The corruptions that must be refused, whatever the stream: cut inside a record,
/// unknown mandatory record, and the END record missing, duplicated or moved.
#[test]
fn mandatory_damage_is_refused() {
    for s in streams() {
        let spans = harness::corrupt::record_spans(&s.bytes).unwrap();
        let n = spans.len() as u32;
        for how in [
            Corruption::Truncate {
                at: s.bytes.len() as u64 - 1,
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
            Corruption::MoveRecord {
                from: n - 1,
                to: n / 2,
            },
            Corruption::InflateLength {
                index: n / 2,
                by: 1 << 30,
            },
        ] {
            let c = check(s, how).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c, Class::Refused, "{} {how:?}", s.name);
        }
    }
}

/// An unknown optional (bit 31) libxc record must be skipped (libxc's
/// `process_record` ignores it; stream.md): the guest restores as if it were absent.
#[test]
fn an_unknown_optional_record_is_skipped() {
    for s in streams() {
        let n = harness::corrupt::record_spans(&s.bytes).unwrap().len() as u32;
        let how = Corruption::InsertUnknown {
            index: n / 2,
            optional: true,
        };
        let c = check(s, how).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c, Class::Restored, "{} {how:?}", s.name);
    }
}

/// `MoveRecord` is a real reorder: the moved stream is the original's pieces (headers
/// and records) with one record taken out and put back in front of another, or at the
/// end (rebuilt here from the span list, independently of `apply`).
#[test]
fn move_record_moves_exactly_one_record() {
    let s = &streams()[0].bytes;
    let spans = harness::corrupt::record_spans(s).unwrap();
    let n = spans.len();
    // The stream as pieces: (record index or None for header bytes, bytes).
    let mut pieces: Vec<(Option<usize>, &[u8])> = vec![];
    let mut at = 0;
    for (i, sp) in spans.iter().enumerate() {
        if sp.offset > at {
            pieces.push((None, &s[at..sp.offset]));
        }
        pieces.push((Some(i), &s[sp.offset..sp.offset + sp.len]));
        at = sp.offset + sp.len;
    }
    assert_eq!(at, s.len(), "the libxl END record ends the stream");
    for (from, to) in [(1usize, 4usize), (4, 1), (2, n), (n - 1, 0), (0, n - 1)] {
        let bad = Corruption::MoveRecord {
            from: from as u32,
            to: to as u32,
        }
        .apply(s)
        .expect("applies");
        let moved = pieces.iter().find(|p| p.0 == Some(from)).unwrap().1;
        let mut want = Vec::new();
        for (idx, bytes) in &pieces {
            if *idx == Some(to) {
                want.extend_from_slice(moved);
            }
            if *idx != Some(from) {
                want.extend_from_slice(bytes);
            }
        }
        if to == n {
            want.extend_from_slice(moved);
        }
        assert!(bad == want, "move {from} to {to}");
        assert_ne!(bad, *s);
    }
    assert!(Corruption::MoveRecord { from: 3, to: 3 }.apply(s).is_none());
    assert!(Corruption::MoveRecord { from: 3, to: 4 }.apply(s).is_none());
}
