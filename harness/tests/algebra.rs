//! Property 3, stream algebra.
//!
//! - read(write(x)) = x: arbitrary streams — the records of a real save with PAGE_DATA
//!   batches of arbitrary PFNs, types and contents, and arbitrary TSC info,
//!   shared_info and vCPU contents — written by `StreamWriter`, read back by the strict
//!   reader: the same items, and writing them again gives the same bytes.
//! - save(restore(save(d))) has the same libxc records as save(d) apart from the
//!   documented fields. The restored guest is unpaused so it can take the second suspend
//!   (a restored domain is not suspended), so what its workload writes differs too.
//!   Compared field by field:
//!
//!   | record | compared | not compared (why) |
//!   |---|---|---|
//!   | (all) | the sequence of record types | |
//!   | X86_PV_INFO | everything | |
//!   | X86_PV_P2M_FRAMES | start and end pfn, frame count | the frames' PFNs are where the guest rebuilt its frame list |
//!   | PAGE_DATA | every pfn and its type (raw entries), batch by batch | page contents (the guest ran between the saves) |
//!   | X86_TSC_INFO | mode, kHz | nsec (time), incarnation |
//!   | SHARED_INFO | `arch.max_pfn` | the rest (time, event state) |
//!   | X86_PV_VCPU_BASIC / EXTENDED | vCPU id, length | registers (the guest ran) |
//!   | END | present | |

mod common;

use std::sync::OnceLock;

use common::*;
use harness::{Runner, SaveMode, Step};
use hypervisor::abi::shared::SharedInfo;
use hypervisor::record::fnv1a;
use hypervisor::Pfn;
use proptest::prelude::*;
use toolstack::stream::{
    read_all, Item, LibxcRecord, PageData, PageDataEntry, PageType, ReaderOptions, StreamWriter,
    X86TscInfo,
};
use zerocopy::FromBytes;

fn saved(kind: &str, extra: &str) -> Vec<u8> {
    let mut r = Runner::new(1);
    boot(&mut r, "g", 0, kind, extra);
    r.hosts[0].model.run(500_000);
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
}

fn base_items() -> &'static [Item] {
    static S: OnceLock<Vec<Item>> = OnceLock::new();
    S.get_or_init(|| {
        read_all(
            &saved("pagetable", "report=5")[..],
            ReaderOptions::default(),
        )
        .unwrap()
        .into_iter()
        .map(|l| l.item)
        .collect()
    })
}

fn page_type() -> impl Strategy<Value = PageType> {
    prop::sample::select(vec![
        PageType::NoTab,
        PageType::L1Tab,
        PageType::L2Tab,
        PageType::L3Tab,
        PageType::L4Tab,
        PageType::L1Pinned,
        PageType::L2Pinned,
        PageType::L3Pinned,
        PageType::L4Pinned,
        PageType::Broken,
        PageType::XAlloc,
        PageType::XTab,
    ])
}

/// A PAGE_DATA batch: up to 24 distinct pfns below 1024 of arbitrary types, each page
/// with data filled from a seed (sparse pages and a few random words).
fn page_batch() -> impl Strategy<Value = PageData> {
    proptest::collection::btree_map(0u64..1024, (page_type(), any::<u64>()), 1..24).prop_map(|m| {
        let mut pd = PageData::default();
        for (pfn, (ty, seed)) in m {
            pd.entries.push(PageDataEntry::new(Pfn::new(pfn), ty));
            if ty.has_data() {
                let mut page = vec![0u8; 4096];
                let mut x = seed | 1;
                for _ in 0..(seed % 64) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (x % 512) as usize * 8;
                    page[at..at + 8].copy_from_slice(&x.to_le_bytes());
                }
                pd.data.extend(page);
            }
        }
        pd
    })
}

fn arbitrary_stream() -> impl Strategy<Value = Vec<Item>> {
    (
        proptest::collection::vec(page_batch(), 1..5),
        (any::<u32>(), any::<u32>(), any::<u64>(), any::<u32>()),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(batches, (mode, khz, nsec, incarnation), shinfo_seed, vcpu_seed)| {
                let mut out = Vec::new();
                let mut pages_done = false;
                for item in base_items() {
                    match item {
                        Item::Libxc(LibxcRecord::PageData(_)) => {
                            if !pages_done {
                                out.extend(
                                    batches
                                        .iter()
                                        .cloned()
                                        .map(|b| Item::Libxc(LibxcRecord::PageData(b))),
                                );
                                pages_done = true;
                            }
                        }
                        Item::Libxc(LibxcRecord::X86TscInfo(_)) => {
                            out.push(Item::Libxc(LibxcRecord::X86TscInfo(X86TscInfo {
                                mode: mode % 4,
                                khz,
                                nsec,
                                incarnation,
                            })));
                        }
                        Item::Libxc(LibxcRecord::SharedInfo(p)) => {
                            let mut p = p.clone();
                            p[..8].copy_from_slice(&shinfo_seed.to_le_bytes());
                            out.push(Item::Libxc(LibxcRecord::SharedInfo(p)));
                        }
                        Item::Libxc(LibxcRecord::X86PvVcpuBasic(b)) => {
                            let mut b = b.clone();
                            b.context[..8].copy_from_slice(&vcpu_seed.to_le_bytes());
                            out.push(Item::Libxc(LibxcRecord::X86PvVcpuBasic(b)));
                        }
                        other => out.push(other.clone()),
                    }
                }
                out
            },
        )
}

fn write(items: &[Item]) -> Vec<u8> {
    let mut w = StreamWriter::new(Vec::new());
    for i in items {
        w.write_item(i).expect("writes");
    }
    w.flush().expect("flush");
    w.into_inner()
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: persistence("algebra"), cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn read_of_write_is_the_identity(items in arbitrary_stream()) {
        let bytes = write(&items);
        let back: Vec<Item> = read_all(&bytes[..], ReaderOptions { require_zero_padding: true, ..ReaderOptions::default() })
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .into_iter()
            .map(|l| l.item)
            .collect();
        prop_assert!(back == items, "read back differs");
        prop_assert!(write(&back) == bytes, "rewritten bytes differ");
    }
}

#[test]
fn the_base_stream_round_trips_byte_for_byte() {
    let s = saved("counter", "pages=16 report=50");
    let items: Vec<Item> = read_all(&s[..], ReaderOptions::default())
        .unwrap()
        .into_iter()
        .map(|l| l.item)
        .collect();
    assert_eq!(write(&items), s);
}

/// What of a libxc record must survive save(restore(save(d))).
fn shape(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Libxc(r) => Some(r),
            _ => None,
        })
        .map(|r| match r {
            LibxcRecord::X86PvInfo(i) => format!("X86_PV_INFO {i:?}"),
            LibxcRecord::X86PvP2mFrames(f) => format!(
                "X86_PV_P2M_FRAMES {}..={} in {}",
                f.start_pfn,
                f.end_pfn,
                f.frames.len()
            ),
            LibxcRecord::PageData(pd) => {
                let e: Vec<u8> = pd
                    .entries
                    .iter()
                    .flat_map(|e| e.to_raw().to_le_bytes())
                    .collect();
                format!("PAGE_DATA {} entries #{:016x}", pd.entries.len(), fnv1a(&e))
            }
            LibxcRecord::X86TscInfo(t) => format!("X86_TSC_INFO mode {} khz {}", t.mode, t.khz),
            LibxcRecord::SharedInfo(p) => {
                let sh = SharedInfo::read_from_prefix(&p[..]).unwrap().0;
                format!("SHARED_INFO max_pfn {:#x}", sh.arch.max_pfn)
            }
            LibxcRecord::X86PvVcpuBasic(b)
            | LibxcRecord::X86PvVcpuExtended(b)
            | LibxcRecord::X86PvVcpuXsave(b) => {
                format!("{} vcpu {} len {}", r.name(), b.vcpu_id, b.context.len())
            }
            other => other.name().to_owned(),
        })
        .collect()
}

#[test]
fn save_of_restore_of_save_has_the_same_records() {
    for (kind, extra) in [
        ("counter", "pages=16 report=50"),
        ("epoch", "seed=3 pages=16 writes=4"),
        ("pagetable", "report=5"),
    ] {
        let mut r = Runner::new(1);
        boot(&mut r, "g", 0, kind, extra);
        r.hosts[0].model.run(500_000);
        for (i, step) in [
            Step::Save {
                guest: "g".into(),
                mode: SaveMode::Plain,
            },
            Step::Restore {
                stream: 0,
                host: 0,
                guest: "g".into(),
            },
            Step::Unpause { guest: "g".into() },
            Step::Save {
                guest: "g".into(),
                mode: SaveMode::Plain,
            },
        ]
        .iter()
        .enumerate()
        {
            r.step(i, step).unwrap();
            assert!(
                !r.log.last().unwrap().contains("error"),
                "{kind}: {:?}",
                r.log
            );
        }
        let items = |b: &[u8]| -> Vec<Item> {
            read_all(b, ReaderOptions::default())
                .unwrap()
                .into_iter()
                .map(|l| l.item)
                .collect()
        };
        let (a, b) = (
            shape(&items(&r.streams[0].bytes)),
            shape(&items(&r.streams[1].bytes)),
        );
        assert!(
            a.iter().any(|s| s.starts_with("SHARED_INFO max_pfn 0x400")),
            "{kind}: {a:?}"
        );
        assert_eq!(a, b, "{kind}");
    }
}
