//! Property 3, stream algebra.
//!
//! **Arbitrary record sequences.** A generator builds streams over every record type the
//! stream layer knows — libxc PAGE_DATA (arbitrary pfn/type lists, counts up to 1024,
//! page payloads), X86_PV_INFO, X86_PV_P2M_FRAMES, X86_PV_VCPU_BASIC/EXTENDED/XSAVE/MSRS,
//! SHARED_INFO, X86_TSC_INFO, HVM_CONTEXT, HVM_PARAMS, TOOLSTACK, VERIFY, CHECKPOINT,
//! CHECKPOINT_DIRTY_PFN_LIST, STATIC_DATA_END, the CPUID/MSR policies; libxl
//! EMULATOR_XENSTORE_DATA/CONTEXT, CHECKPOINT_STATE, CHECKPOINT_END; unknown types of
//! either layer with bit 31 set or clear; bodies of every legal length including 0 — in
//! the three framings the writer supports (xl file, libxl stream, bare libxc stream), v2
//! and v3, plain and checkpointed (CHECKPOINT … libxl records … CHECKPOINT_END rounds).
//! It starts from a well-ordered skeleton (written from the spec, stream.md §1–2) and
//! then, in about half the cases, inserts, drops, duplicates, swaps, moves or shuffles
//! records of a layer (records that switch layers — the ENDs, CHECKPOINT, LIBXC_CONTEXT,
//! CHECKPOINT_END — stay in place, so every byte is read in the layer it was written
//! for). Inserted records may be invalid by construction (the generator knows which).
//!
//! The test encodes every item itself from the spec (an oracle independent of
//! `StreamWriter`) and checks:
//!
//! - the writer accepts every valid item and writes exactly the oracle's bytes, and
//!   refuses (typed error at that record) exactly the first invalid one;
//! - the strict reader, given the oracle's bytes, returns the items at exactly their
//!   offsets up to the first record an order oracle (the spec's record-order rules and
//!   xi's documented stricter ones, written out in this file) or the generator's
//!   validity tag says must be refused, and refuses exactly that record — naming its
//!   layer, type and offset — for one of the rules the oracle says it breaks (or, for an
//!   invalid record, for its format); when nothing must be refused it returns exactly the
//!   items (read(write(x)) = x) and writing what it read gives the same bytes
//!   (write(read(b)) = b);
//! - an unperturbed skeleton is always accepted;
//! - single records (libxc and libxl, valid or not): the writer refuses a record iff the
//!   body decoder refuses the oracle's encoding of it, both naming the record type;
//! - write(read(b)) = b for every stream the reader accepts, also with layer-switching
//!   records inserted, moved or duplicated anywhere;
//! - non-zero record padding is read by default and refused by the strict reader;
//! - a cut at every offset of a generated stream is refused with a truncation error
//!   naming the header or record (layer, type, offset) it falls in and, inside page
//!   contents, the pfn and entry whose page was cut.
//!
//! **save(restore(save(d)))** has the same libxc records as save(d) apart from the
//! documented fields. The restored guest is unpaused so it can take the second suspend
//! (a restored domain is not suspended), so what its workload writes differs too.
//! Compared field by field:
//!
//! | record | compared | not compared (why) |
//! |---|---|---|
//! | (all) | the sequence of record types | |
//! | X86_PV_INFO | everything | |
//! | X86_PV_P2M_FRAMES | start and end pfn, frame count | the frames' PFNs are where the guest rebuilt its frame list |
//! | PAGE_DATA | every pfn and its type (raw entries), batch by batch | page contents (the guest ran between the saves) |
//! | X86_TSC_INFO | mode, kHz | nsec (time), incarnation |
//! | SHARED_INFO | `arch.max_pfn` | the rest (time, event state) |
//! | X86_PV_VCPU_BASIC / EXTENDED | vCPU id, length | registers (the guest ran) |
//! | END | present | |

mod common;

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use common::*;
use harness::{Runner, SaveMode, Step};
use hypervisor::abi::shared::SharedInfo;
use hypervisor::record::fnv1a;
use hypervisor::Pfn;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use toolstack::stream::{
    read_all, CpuidLeaf, DomainHeader, EmulatorRecord, HvmParam, ImageHeader, Item, Layer,
    LibxcRecord, LibxlHeader, LibxlRecord, Located, MsrEntry, OrderRule, PageData, PageDataEntry,
    PageType, Part, ReaderOptions, StreamError, StreamFormat, StreamReader, StreamWriter, VcpuBlob,
    VcpuMsr, VcpuMsrs, Where, X86PvInfo, X86PvP2mFrames, X86TscInfo, XlHeader,
};
use zerocopy::FromBytes;

const PAGE: usize = 4096;
/// vcpu_guest_context of a 64-bit PV guest (stream.md §1.4, measured).
const BASIC_64: usize = 5168;

// ------------------------------------------------------------------------------------
// The oracle: every header and record encoded from the spec (stream.md), by hand.
// ------------------------------------------------------------------------------------

fn u16le(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u32le(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u64le(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// The nibble of a PAGE_DATA entry type (XEN_DOMCTL_PFINFO_* >> 28), from the spec.
fn nibble(t: PageType) -> u64 {
    match t {
        PageType::NoTab => 0,
        PageType::L1Tab => 1,
        PageType::L2Tab => 2,
        PageType::L3Tab => 3,
        PageType::L4Tab => 4,
        PageType::L1Pinned => 9,
        PageType::L2Pinned => 0xa,
        PageType::L3Pinned => 0xb,
        PageType::L4Pinned => 0xc,
        PageType::Broken => 0xd,
        PageType::XAlloc => 0xe,
        PageType::XTab => 0xf,
    }
}

/// Whether 4096 bytes follow for the type (NOTAB and L1–L4, pinned or not).
fn carries_data(t: PageType) -> bool {
    nibble(t) <= 4 || (9..=0xc).contains(&nibble(t))
}

fn libxc_type(r: &LibxcRecord) -> u32 {
    match r {
        LibxcRecord::End => 0,
        LibxcRecord::PageData(_) => 1,
        LibxcRecord::X86PvInfo(_) => 2,
        LibxcRecord::X86PvP2mFrames(_) => 3,
        LibxcRecord::X86PvVcpuBasic(_) => 4,
        LibxcRecord::X86PvVcpuExtended(_) => 5,
        LibxcRecord::X86PvVcpuXsave(_) => 6,
        LibxcRecord::SharedInfo(_) => 7,
        LibxcRecord::X86TscInfo(_) => 8,
        LibxcRecord::HvmContext(_) => 9,
        LibxcRecord::HvmParams(_) => 0xa,
        LibxcRecord::Toolstack(_) => 0xb,
        LibxcRecord::X86PvVcpuMsrs(_) => 0xc,
        LibxcRecord::Verify => 0xd,
        LibxcRecord::Checkpoint => 0xe,
        LibxcRecord::CheckpointDirtyPfnList(_) => 0xf,
        LibxcRecord::StaticDataEnd => 0x10,
        LibxcRecord::X86CpuidPolicy(_) => 0x11,
        LibxcRecord::X86MsrPolicy(_) => 0x12,
        LibxcRecord::Unknown { type_, .. } => *type_,
    }
}

fn libxl_type(r: &LibxlRecord) -> u32 {
    match r {
        LibxlRecord::End => 0,
        LibxlRecord::LibxcContext => 1,
        LibxlRecord::EmulatorXenstoreData(_) => 2,
        LibxlRecord::EmulatorContext(_) => 3,
        LibxlRecord::CheckpointEnd => 4,
        LibxlRecord::CheckpointState(_) => 5,
        LibxlRecord::Unknown { type_, .. } => *type_,
    }
}

fn libxc_body(r: &LibxcRecord) -> Vec<u8> {
    let mut v = Vec::new();
    match r {
        LibxcRecord::End
        | LibxcRecord::Verify
        | LibxcRecord::Checkpoint
        | LibxcRecord::StaticDataEnd => {}
        LibxcRecord::PageData(p) => {
            u32le(&mut v, p.entries.len() as u32);
            u32le(&mut v, 0);
            for e in &p.entries {
                u64le(&mut v, nibble(e.ty) << 60 | e.pfn.get());
            }
            v.extend_from_slice(&p.data);
        }
        LibxcRecord::X86PvInfo(i) => {
            v.extend_from_slice(&[i.guest_width, i.pt_levels]);
            v.extend_from_slice(&[0; 6]);
        }
        LibxcRecord::X86PvP2mFrames(p) => {
            u32le(&mut v, p.start_pfn);
            u32le(&mut v, p.end_pfn);
            for f in &p.frames {
                u64le(&mut v, f.get());
            }
        }
        LibxcRecord::X86PvVcpuBasic(b)
        | LibxcRecord::X86PvVcpuExtended(b)
        | LibxcRecord::X86PvVcpuXsave(b) => {
            u32le(&mut v, b.vcpu_id);
            u32le(&mut v, 0);
            v.extend_from_slice(&b.context);
        }
        LibxcRecord::X86PvVcpuMsrs(m) => {
            u32le(&mut v, m.vcpu_id);
            u32le(&mut v, 0);
            for e in &m.msrs {
                u32le(&mut v, e.index);
                u32le(&mut v, e.reserved);
                u64le(&mut v, e.value);
            }
        }
        LibxcRecord::SharedInfo(p) => v.extend_from_slice(&p[..]),
        LibxcRecord::X86TscInfo(t) => {
            u32le(&mut v, t.mode);
            u32le(&mut v, t.khz);
            u64le(&mut v, t.nsec);
            u32le(&mut v, t.incarnation);
            u32le(&mut v, 0);
        }
        LibxcRecord::HvmContext(b) | LibxcRecord::Toolstack(b) => v.extend_from_slice(b),
        LibxcRecord::HvmParams(ps) => {
            u32le(&mut v, ps.len() as u32);
            u32le(&mut v, 0);
            for p in ps {
                u64le(&mut v, p.index);
                u64le(&mut v, p.value);
            }
        }
        LibxcRecord::CheckpointDirtyPfnList(pfns) => {
            for p in pfns {
                u64le(&mut v, p.get());
            }
        }
        LibxcRecord::X86CpuidPolicy(ls) => {
            for l in ls {
                for x in [l.leaf, l.subleaf, l.a, l.b, l.c, l.d] {
                    u32le(&mut v, x);
                }
            }
        }
        LibxcRecord::X86MsrPolicy(ms) => {
            for m in ms {
                u32le(&mut v, m.index);
                u32le(&mut v, m.flags);
                u64le(&mut v, m.value);
            }
        }
        LibxcRecord::Unknown { body, .. } => v.extend_from_slice(body),
    }
    v
}

fn libxl_body(r: &LibxlRecord) -> Vec<u8> {
    let mut v = Vec::new();
    match r {
        LibxlRecord::End | LibxlRecord::LibxcContext | LibxlRecord::CheckpointEnd => {}
        LibxlRecord::EmulatorXenstoreData(e) | LibxlRecord::EmulatorContext(e) => {
            u32le(&mut v, e.emulator_id);
            u32le(&mut v, e.index);
            v.extend_from_slice(&e.data);
        }
        LibxlRecord::CheckpointState(id) => u32le(&mut v, *id),
        LibxlRecord::Unknown { body, .. } => v.extend_from_slice(body),
    }
    v
}

/// `u32 type, u32 length, body, zeros to a multiple of 8`.
fn record(ty: u32, body: &[u8]) -> Vec<u8> {
    record_padded(ty, body, 0)
}

/// A record padded with `pad` bytes instead of zeros.
fn record_padded(ty: u32, body: &[u8], pad: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 16);
    u32le(&mut v, ty);
    u32le(&mut v, body.len() as u32);
    v.extend_from_slice(body);
    v.resize(v.len().next_multiple_of(8), pad);
    v
}

fn encode(item: &Item) -> Vec<u8> {
    let mut v = Vec::new();
    match item {
        Item::XlHeader(h) => {
            v.extend_from_slice(b"Xen saved domain, xl format\n \0 \r");
            u32le(&mut v, 0x0102_0304);
            u32le(&mut v, 2 | u32::from(h.config_is_json));
            u32le(&mut v, h.optional_flags);
            match &h.config {
                Some(c) => {
                    u32le(&mut v, 4 + c.len() as u32);
                    u32le(&mut v, c.len() as u32);
                    v.extend_from_slice(c);
                }
                None => u32le(&mut v, 0),
            }
        }
        Item::LibxlHeader(h) => {
            v.extend_from_slice(b"LibxlFmt");
            v.extend_from_slice(&2u32.to_be_bytes());
            v.extend_from_slice(&(if h.legacy { 2u32 } else { 0 }).to_be_bytes());
        }
        Item::ImageHeader(h) => {
            v.extend_from_slice(&u64::MAX.to_be_bytes());
            v.extend_from_slice(b"XENF");
            v.extend_from_slice(&h.version.to_be_bytes());
            v.extend_from_slice(&[0; 8]);
        }
        Item::DomainHeader(h) => {
            u32le(&mut v, 1);
            u16le(&mut v, 12);
            u16le(&mut v, 0);
            u32le(&mut v, h.xen_major);
            u32le(&mut v, h.xen_minor);
        }
        Item::Libxl(r) => v = record(libxl_type(r), &libxl_body(r)),
        Item::Libxc(r) => v = record(libxc_type(r), &libxc_body(r)),
    }
    v
}

/// The oracle's bytes of a whole item list, and each item's offset (plus the end).
fn encode_all(items: &[Item]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut offs = Vec::with_capacity(items.len() + 1);
    for i in items {
        offs.push(bytes.len());
        bytes.extend(encode(i));
    }
    offs.push(bytes.len());
    (bytes, offs)
}

// ------------------------------------------------------------------------------------
// Generators. Every record comes with "valid by construction?".
// ------------------------------------------------------------------------------------

type Xc = (LibxcRecord, bool);
type Xl = (LibxlRecord, bool);

/// A page from a seed: a few words set, the rest zero (cheap, never constant).
fn page(seed: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAGE];
    let mut x = seed | 1;
    for _ in 0..(1 + seed % 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % 512) as usize * 8;
        p[at..at + 8].copy_from_slice(&x.to_le_bytes());
    }
    p
}

fn page_type() -> impl Strategy<Value = PageType> {
    prop::sample::select(PageType::ALL.to_vec())
}

fn no_data_type() -> impl Strategy<Value = PageType> {
    prop::sample::select(vec![PageType::Broken, PageType::XAlloc, PageType::XTab])
}

fn batch_of(entries: Vec<(u64, PageType, u64)>) -> PageData {
    let mut pd = PageData::default();
    for (pfn, ty, seed) in entries {
        pd.entries.push(PageDataEntry::new(Pfn::new(pfn), ty));
        if carries_data(ty) {
            pd.data.extend(page(seed ^ pfn));
        }
    }
    pd
}

/// A valid PAGE_DATA batch with pfns up to `max_pfn` and at most `max_pages` pages of
/// data: a few entries of any type (pfns may repeat), or a long list (up to the limit,
/// 1024) of entries without data.
fn page_batch(max_pfn: u64, max_pages: usize) -> impl Strategy<Value = PageData> {
    prop_oneof![
        4 => vec((0..=max_pfn, page_type(), any::<u64>()), 1..=max_pages.max(1)).prop_map(
            move |mut e| {
                // Keep at most `max_pages` pages with data.
                let mut n = 0;
                for (_, ty, _) in &mut e {
                    if carries_data(*ty) {
                        n += 1;
                        if n > max_pages {
                            *ty = PageType::XTab;
                        }
                    }
                }
                batch_of(e)
            }
        ),
        1 => (1000usize..=1024, no_data_type(), 0..=max_pfn).prop_map(move |(n, ty, base)| {
            batch_of(
                (0..n as u64)
                    .map(|i| ((base + i) % (max_pfn + 1), ty, 0))
                    .collect(),
            )
        }),
    ]
}

/// PAGE_DATA that is invalid by construction: no entries, more than 1024, page data of
/// the wrong size, or an entry with reserved bits (52–59) set.
fn bad_page_batch() -> impl Strategy<Value = PageData> {
    prop_oneof![
        Just(PageData::default()),
        (1025usize..1100)
            .prop_map(|n| batch_of((0..n as u64).map(|i| (i, PageType::XTab, 0)).collect())),
        (
            vec((0u64..64, page_type(), any::<u64>()), 1..4),
            prop_oneof![
                Just(PAGE as i64),
                Just(-(PAGE as i64)),
                Just(100i64),
                Just(-1i64)
            ]
        )
            .prop_map(|(e, delta)| {
                let mut pd = batch_of(e);
                let len = (pd.data.len() as i64 + delta).max(0) as usize;
                pd.data.resize(len, 0xa5);
                pd
            })
            .prop_filter("size differs", |pd| pd.data.len()
                != pd.entries.iter().filter(|e| carries_data(e.ty)).count() * PAGE),
        (
            vec((0u64..64, page_type(), any::<u64>()), 1..4),
            any::<Index>(),
            52u32..60
        )
            .prop_map(|(e, which, bit)| {
                let mut pd = batch_of(e);
                let i = which.index(pd.entries.len());
                pd.entries[i].pfn = Pfn::new(pd.entries[i].pfn.get() | 1 << bit);
                pd
            }),
    ]
}

fn p2m(start: u32, end: u32, seed: u64) -> X86PvP2mFrames {
    let n = end / 512 - start / 512 + 1;
    X86PvP2mFrames {
        start_pfn: start,
        end_pfn: end,
        frames: (0..u64::from(n))
            .map(|i| Pfn::new(seed.wrapping_add(i)))
            .collect(),
    }
}

fn blob(vcpu_id: u32, len: usize, seed: u8) -> VcpuBlob {
    VcpuBlob {
        vcpu_id,
        context: (0..len).map(|i| seed.wrapping_add(i as u8)).collect(),
    }
}

fn shared_info(seed: u64) -> LibxcRecord {
    let mut p = Box::new([0u8; PAGE]);
    p.copy_from_slice(&page(seed));
    LibxcRecord::SharedInfo(p)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn optional_type() -> impl Strategy<Value = u32> {
    any::<u32>().prop_map(|t| t | 0x8000_0000)
}

/// Every libxc record except the layer switches (END, CHECKPOINT): valid ones of every
/// type, and invalid ones (bad lengths, ranges, pairs, counts; unknown mandatory types).
fn any_libxc(max_pfn: u64, max_pages: usize, invalid_weight: u32) -> impl Strategy<Value = Xc> {
    let valid = prop_oneof![
        page_batch(max_pfn, max_pages).prop_map(LibxcRecord::PageData),
        Just(LibxcRecord::X86PvInfo(X86PvInfo::X86_64)),
        (0u32..3000, 0u32..3000, any::<u64>())
            .prop_map(|(a, b, s)| LibxcRecord::X86PvP2mFrames(p2m(a.min(b), a.max(b), s))),
        (
            0u32..4,
            prop_oneof![Just(0usize), Just(BASIC_64)],
            any::<u8>()
        )
            .prop_map(|(id, len, s)| LibxcRecord::X86PvVcpuBasic(blob(id, len, s))),
        (0u32..4, 0usize..=128, any::<u8>())
            .prop_map(|(id, len, s)| LibxcRecord::X86PvVcpuExtended(blob(id, len, s))),
        (
            0u32..4,
            prop_oneof![Just(0usize), 16usize..200],
            any::<u8>()
        )
            .prop_map(|(id, len, s)| LibxcRecord::X86PvVcpuXsave(blob(id, len, s))),
        (0u32..4, vec(any::<(u32, u32, u64)>(), 0..4)).prop_map(|(vcpu_id, m)| {
            LibxcRecord::X86PvVcpuMsrs(VcpuMsrs {
                vcpu_id,
                msrs: m
                    .into_iter()
                    .map(|(index, reserved, value)| VcpuMsr {
                        index,
                        reserved,
                        value,
                    })
                    .collect(),
            })
        }),
        any::<u64>().prop_map(shared_info),
        any::<(u32, u32, u64, u32)>().prop_map(|(mode, khz, nsec, incarnation)| {
            LibxcRecord::X86TscInfo(X86TscInfo {
                mode,
                khz,
                nsec,
                incarnation,
            })
        }),
        vec(any::<u8>(), 1..64).prop_map(LibxcRecord::HvmContext),
        vec(any::<(u64, u64)>(), 0..4).prop_map(|v| LibxcRecord::HvmParams(
            v.into_iter()
                .map(|(index, value)| HvmParam { index, value })
                .collect()
        )),
        bytes(40).prop_map(LibxcRecord::Toolstack),
        Just(LibxcRecord::Verify),
        Just(LibxcRecord::StaticDataEnd),
        vec(any::<u64>(), 0..6).prop_map(|v| LibxcRecord::CheckpointDirtyPfnList(
            v.into_iter().map(Pfn::new).collect()
        )),
        vec(any::<[u32; 6]>(), 1..4).prop_map(|v| LibxcRecord::X86CpuidPolicy(
            v.into_iter()
                .map(|[leaf, subleaf, a, b, c, d]| CpuidLeaf {
                    leaf,
                    subleaf,
                    a,
                    b,
                    c,
                    d
                })
                .collect()
        )),
        vec(any::<(u32, u32, u64)>(), 1..4).prop_map(|v| LibxcRecord::X86MsrPolicy(
            v.into_iter()
                .map(|(index, flags, value)| MsrEntry {
                    index,
                    flags,
                    value
                })
                .collect()
        )),
        (optional_type(), bytes(40)).prop_map(|(type_, body)| LibxcRecord::Unknown { type_, body }),
    ];
    let invalid = prop_oneof![
        bad_page_batch().prop_map(LibxcRecord::PageData),
        (any::<u8>(), any::<u8>())
            .prop_filter("not a valid pair", |&(w, l)| !matches!(
                (w, l),
                (4, 3) | (8, 4)
            ))
            .prop_map(
                |(guest_width, pt_levels)| LibxcRecord::X86PvInfo(X86PvInfo {
                    guest_width,
                    pt_levels
                })
            ),
        (1u32..3000, 0u32..3000, any::<u64>()).prop_map(|(a, b, s)| {
            // start above end (frames for the swapped range).
            let (lo, hi) = (a.min(b), a.max(b) + 1);
            let mut p = p2m(lo, hi, s);
            p.start_pfn = hi;
            p.end_pfn = lo;
            LibxcRecord::X86PvP2mFrames(p)
        }),
        (
            0u32..3000,
            0u32..3000,
            any::<u64>(),
            prop_oneof![Just(1i32), Just(-1)]
        )
            .prop_map(|(a, b, s, d)| {
                let mut p = p2m(a.min(b), a.max(b), s);
                if d > 0 {
                    p.frames.push(Pfn::new(7));
                } else {
                    p.frames.pop();
                }
                LibxcRecord::X86PvP2mFrames(p)
            }),
        (
            0u32..4,
            (1usize..BASIC_64 + 8).prop_filter("not 5168", |&l| l != BASIC_64),
            any::<u8>()
        )
            .prop_map(|(id, len, s)| LibxcRecord::X86PvVcpuBasic(blob(id, len, s))),
        (0u32..4, 129usize..300, any::<u8>())
            .prop_map(|(id, len, s)| LibxcRecord::X86PvVcpuExtended(blob(id, len, s))),
        (0u32..4, 1usize..16, any::<u8>())
            .prop_map(|(id, len, s)| LibxcRecord::X86PvVcpuXsave(blob(id, len, s))),
        Just(LibxcRecord::HvmContext(vec![])),
        Just(LibxcRecord::X86CpuidPolicy(vec![])),
        Just(LibxcRecord::X86MsrPolicy(vec![])),
        (0x13u32..0x8000_0000, bytes(40))
            .prop_map(|(type_, body)| LibxcRecord::Unknown { type_, body }),
    ];
    prop_oneof![
        4 => valid.prop_map(|r| (r, true)),
        invalid_weight => invalid.prop_map(|r| (r, false)),
    ]
}

/// Every libxl record except the layer switches (END, LIBXC_CONTEXT, CHECKPOINT_END).
fn any_libxl() -> impl Strategy<Value = Xl> {
    let emu = || {
        (any::<u32>(), any::<u32>(), bytes(40)).prop_map(|(emulator_id, index, data)| {
            EmulatorRecord {
                emulator_id,
                index,
                data,
            }
        })
    };
    prop_oneof![
        1 => emu()
            .prop_map(|e| (LibxlRecord::EmulatorXenstoreData(e), true)),
        1 => emu().prop_map(|e| (LibxlRecord::EmulatorContext(e), true)),
        1 => any::<u32>().prop_map(|id| (LibxlRecord::CheckpointState(id), true)),
        2 => (optional_type(), bytes(40))
            .prop_map(|(type_, body)| (LibxlRecord::Unknown { type_, body }, true)),
        1 => (6u32..0x8000_0000, bytes(40))
            .prop_map(|(type_, body)| (LibxlRecord::Unknown { type_, body }, false)),
    ]
}

fn libxl_optional() -> impl Strategy<Value = Xl> {
    (optional_type(), bytes(24))
        .prop_map(|(type_, body)| (LibxlRecord::Unknown { type_, body }, true))
}

fn libxc_optional() -> impl Strategy<Value = Xc> {
    (optional_type(), bytes(24))
        .prop_map(|(type_, body)| (LibxcRecord::Unknown { type_, body }, true))
}

/// One checkpoint round's libxc records (and, but for the last, the libxl records
/// between CHECKPOINT and CHECKPOINT_END).
#[derive(Clone)]
struct Round {
    xc: Vec<Xc>,
    xl: Vec<Xl>,
}

/// A generated stream, by segment.
#[derive(Clone)]
struct Gen {
    format: StreamFormat,
    checkpointed: bool,
    xl: XlHeader,
    legacy: bool,
    pre: Vec<Xl>,
    version: u32,
    domain: DomainHeader,
    rounds: Vec<Round>,
    post: Vec<Xl>,
}

/// One line per item (type, length, validity; PAGE_DATA's entries), not page bytes:
/// what a failure report and the regression file show.
fn summary(item: &Item, valid: bool) -> String {
    let mark = if valid { "" } else { " (invalid)" };
    match item {
        Item::Libxc(LibxcRecord::PageData(pd)) => format!(
            "PAGE_DATA {:?} + {} data bytes{mark}",
            pd.entries
                .iter()
                .map(|e| format!("{:#x}:{}", e.pfn.get(), e.ty.short_name()))
                .collect::<Vec<_>>(),
            pd.data.len()
        ),
        Item::Libxc(r) => format!(
            "libxc {} {:#x} len {}{mark}",
            r.name(),
            libxc_type(r),
            libxc_body(r).len()
        ),
        Item::Libxl(r) => format!(
            "libxl {} {:#x} len {}{mark}",
            r.name(),
            libxl_type(r),
            libxl_body(r).len()
        ),
        other => format!("{other:?}"),
    }
}

impl std::fmt::Debug for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (r, ok) in &self.xc {
            writeln!(f, "  {}", summary(&Item::Libxc(r.clone()), *ok))?;
        }
        for (r, ok) in &self.xl {
            writeln!(f, "  {}", summary(&Item::Libxl(r.clone()), *ok))?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Gen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:?} checkpointed={} v{}:",
            self.format, self.checkpointed, self.version
        )?;
        for (i, (item, valid)) in self.items().iter().enumerate() {
            writeln!(f, "  {i:3} {}", summary(item, *valid))?;
        }
        Ok(())
    }
}

impl Gen {
    /// The items in file order, each with "valid by construction?".
    fn items(&self) -> Vec<(Item, bool)> {
        let mut v = Vec::new();
        let libxl = self.format != StreamFormat::Libxc;
        if self.format == StreamFormat::Xl {
            v.push((Item::XlHeader(self.xl.clone()), true));
        }
        if libxl {
            v.push((
                Item::LibxlHeader(LibxlHeader {
                    legacy: self.legacy,
                }),
                true,
            ));
            v.extend(self.pre.iter().map(|(r, ok)| (Item::Libxl(r.clone()), *ok)));
            v.push((Item::Libxl(LibxlRecord::LibxcContext), true));
        }
        v.push((
            Item::ImageHeader(ImageHeader {
                version: self.version,
            }),
            true,
        ));
        v.push((Item::DomainHeader(self.domain), true));
        for (i, round) in self.rounds.iter().enumerate() {
            v.extend(round.xc.iter().map(|(r, ok)| (Item::Libxc(r.clone()), *ok)));
            if i + 1 < self.rounds.len() {
                v.push((Item::Libxc(LibxcRecord::Checkpoint), true));
                if libxl {
                    v.extend(round.xl.iter().map(|(r, ok)| (Item::Libxl(r.clone()), *ok)));
                    v.push((Item::Libxl(LibxlRecord::CheckpointEnd), true));
                }
            }
        }
        v.push((Item::Libxc(LibxcRecord::End), true));
        if libxl {
            v.extend(
                self.post
                    .iter()
                    .map(|(r, ok)| (Item::Libxl(r.clone()), *ok)),
            );
            v.push((Item::Libxl(LibxlRecord::End), true));
        }
        v
    }

    fn options(&self) -> ReaderOptions {
        ReaderOptions {
            format: self.format,
            checkpointed: self.checkpointed,
            require_zero_padding: true,
        }
    }

    /// The record segments of one layer (for perturbations): libxl segments only in
    /// libxl framings.
    fn xl_segments(&mut self) -> Vec<&mut Vec<Xl>> {
        if self.format == StreamFormat::Libxc {
            return vec![];
        }
        let n = self.rounds.len();
        let mut s = vec![&mut self.pre, &mut self.post];
        s.extend(self.rounds[..n - 1].iter_mut().map(|r| &mut r.xl));
        s
    }
}

/// One checkpoint round in spec order: page batches (and maybe unknown optional records
/// and a VERIFY pass), then the end-of-checkpoint state — vCPU 0's BASIC first, then
/// any of the other vCPU records, SHARED_INFO, TSC info and unknown optional records.
fn round(max_pfn: u64, max_pages: usize) -> impl Strategy<Value = Round> {
    let tail = prop_oneof![
        (0u32..4, 0usize..=128, any::<u8>())
            .prop_map(|(id, len, s)| LibxcRecord::X86PvVcpuExtended(blob(id, len, s))),
        (
            0u32..4,
            prop_oneof![Just(0usize), 16usize..100],
            any::<u8>()
        )
            .prop_map(|(id, len, s)| LibxcRecord::X86PvVcpuXsave(blob(id, len, s))),
        (0u32..4, vec(any::<(u32, u32, u64)>(), 0..3)).prop_map(|(vcpu_id, m)| {
            LibxcRecord::X86PvVcpuMsrs(VcpuMsrs {
                vcpu_id,
                msrs: m
                    .into_iter()
                    .map(|(index, reserved, value)| VcpuMsr {
                        index,
                        reserved,
                        value,
                    })
                    .collect(),
            })
        }),
        (1u32..4, any::<bool>(), any::<u8>()).prop_map(|(id, empty, s)| {
            LibxcRecord::X86PvVcpuBasic(blob(id, if empty { 0 } else { BASIC_64 }, s))
        }),
        any::<u64>().prop_map(shared_info),
        any::<(u32, u32, u64, u32)>().prop_map(|(mode, khz, nsec, incarnation)| {
            LibxcRecord::X86TscInfo(X86TscInfo {
                mode,
                khz,
                nsec,
                incarnation,
            })
        }),
        (optional_type(), bytes(24)).prop_map(|(type_, body)| LibxcRecord::Unknown { type_, body }),
    ];
    (
        vec(page_batch(max_pfn, max_pages), 1..=2),
        vec(libxc_optional(), 0..2),
        prop::option::weighted(0.2, page_batch(max_pfn, 1)),
        any::<u8>(),
        vec(tail, 0..4),
        vec(libxl_optional(), 0..2),
    )
        .prop_map(|(batches, unknown, verify, seed, tail, xl)| {
            let mut xc: Vec<Xc> = unknown;
            xc.extend(
                batches
                    .into_iter()
                    .map(|b| (LibxcRecord::PageData(b), true)),
            );
            if let Some(b) = verify {
                xc.push((LibxcRecord::Verify, true));
                xc.push((LibxcRecord::PageData(b), true));
            }
            xc.push((LibxcRecord::X86PvVcpuBasic(blob(0, BASIC_64, seed)), true));
            xc.extend(tail.into_iter().map(|r| (r, true)));
            Round { xc, xl }
        })
}

/// A well-ordered stream: what the spec says a PV stream looks like.
fn skeleton(max_pages: usize, max_rounds: usize) -> impl Strategy<Value = Gen> {
    let xl = (any::<bool>(), any::<u32>(), prop::option::of(bytes(40))).prop_map(
        |(config_is_json, optional_flags, config)| XlHeader {
            config_is_json,
            optional_flags,
            config,
        },
    );
    let format = prop::sample::select(vec![
        StreamFormat::Xl,
        StreamFormat::Libxl,
        StreamFormat::Libxc,
    ]);
    (
        (format, any::<bool>(), xl, any::<bool>()),
        vec(libxl_optional(), 0..2),
        (prop_oneof![Just(2u32), Just(3u32)], any::<(u32, u32)>()),
        (any::<bool>(), any::<bool>(), any::<u64>()),
        (1023u32..3000, 0u32..3000),
        vec(round(1023, max_pages), 1..=max_rounds),
        vec(libxl_optional(), 0..2),
    )
        .prop_map(
            |(
                (format, checkpointed, xl, legacy),
                pre,
                (version, (major, minor)),
                policies,
                p2m_range,
                mut rounds,
                post,
            )| {
                let (cpuid, msrs, p2m_seed) = policies;
                let mut statics: Vec<Xc> = vec![(LibxcRecord::X86PvInfo(X86PvInfo::X86_64), true)];
                if version == 3 {
                    if cpuid {
                        statics.push((
                            LibxcRecord::X86CpuidPolicy(vec![CpuidLeaf {
                                leaf: 0xd,
                                subleaf: 1,
                                ..CpuidLeaf::default()
                            }]),
                            true,
                        ));
                    }
                    if msrs {
                        statics.push((
                            LibxcRecord::X86MsrPolicy(vec![MsrEntry {
                                index: 0xce,
                                ..MsrEntry::default()
                            }]),
                            true,
                        ));
                    }
                    statics.push((LibxcRecord::StaticDataEnd, true));
                }
                let (end, start) = p2m_range;
                statics.push((
                    LibxcRecord::X86PvP2mFrames(p2m(start.min(end), end, p2m_seed)),
                    true,
                ));
                if !checkpointed {
                    rounds.truncate(1);
                }
                statics.append(&mut rounds[0].xc);
                rounds[0].xc = statics;
                Gen {
                    format,
                    checkpointed,
                    xl,
                    legacy,
                    pre,
                    version,
                    domain: DomainHeader::x86_pv(major, minor),
                    rounds,
                    post,
                }
            },
        )
}

/// One change to a layer's records.
#[derive(Debug, Clone)]
enum Op {
    Insert(Index, Index, Xc, Xl),
    Drop(Index, Index),
    Duplicate(Index, Index),
    Swap(Index, Index),
    Move(Index, Index, Index),
    Shuffle(Index, u64),
}

fn op(max_pages: usize) -> impl Strategy<Value = (bool, Op)> {
    let i = any::<Index>;
    (
        any::<bool>(),
        prop_oneof![
            3 => (i(), i(), any_libxc(4000, max_pages, 2), any_libxl())
                .prop_map(|(s, p, xc, xl)| Op::Insert(s, p, xc, xl)),
            1 => (i(), i()).prop_map(|(s, p)| Op::Drop(s, p)),
            1 => (i(), i()).prop_map(|(s, p)| Op::Duplicate(s, p)),
            1 => (i(), i()).prop_map(|(s, p)| Op::Swap(s, p)),
            1 => (i(), i(), i()).prop_map(|(s, p, q)| Op::Move(s, p, q)),
            1 => (i(), any::<u64>()).prop_map(|(s, seed)| Op::Shuffle(s, seed)),
        ],
    )
}

fn apply_op<T: Clone>(seg: &mut Vec<T>, op: &Op, new: Option<T>) {
    let n = seg.len();
    match op {
        Op::Insert(_, p, ..) => {
            if let Some(new) = new {
                seg.insert(p.index(n + 1), new);
            }
        }
        Op::Drop(_, p) if n > 0 => {
            seg.remove(p.index(n));
        }
        Op::Duplicate(_, p) if n > 0 => {
            let p = p.index(n);
            seg.insert(p, seg[p].clone());
        }
        Op::Swap(_, p) if n > 1 => {
            let p = p.index(n - 1);
            seg.swap(p, p + 1);
        }
        Op::Move(_, p, q) if n > 1 => {
            let x = seg.remove(p.index(n));
            seg.insert(q.index(n), x);
        }
        Op::Shuffle(_, seed) => {
            // Fisher–Yates from a xorshift seed (deterministic).
            let mut x = seed | 1;
            for i in (1..n).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                seg.swap(i, (x % (i as u64 + 1)) as usize);
            }
        }
        _ => {}
    }
}

/// A skeleton, unchanged or with 1–4 changes to the records of one layer or the other,
/// and sometimes a checkpointed one read as a plain stream.
fn arbitrary(max_pages: usize) -> impl Strategy<Value = (Gen, bool)> {
    (
        skeleton(max_pages, 3),
        prop::option::weighted(0.5, vec(op(max_pages), 1..=4)),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(mut g, ops, plain)| {
            let mut perturbed = ops.is_some();
            if plain && g.checkpointed && g.rounds.len() > 1 {
                // Checkpoint rounds read as a plain stream: CHECKPOINT is refused
                // there before any layer switch.
                g.checkpointed = false;
                perturbed = true;
            }
            for (libxl, op) in ops.unwrap_or_default() {
                let seg = match &op {
                    Op::Insert(s, ..)
                    | Op::Drop(s, _)
                    | Op::Duplicate(s, _)
                    | Op::Swap(s, _)
                    | Op::Move(s, ..)
                    | Op::Shuffle(s, _) => *s,
                };
                let mut xl = g.xl_segments();
                if libxl && !xl.is_empty() {
                    let n = xl.len();
                    let new = match &op {
                        Op::Insert(_, _, _, r) => Some(r.clone()),
                        _ => None,
                    };
                    apply_op(xl[seg.index(n)], &op, new);
                } else {
                    let n = g.rounds.len();
                    let new = match &op {
                        Op::Insert(_, _, r, _) => Some(r.clone()),
                        _ => None,
                    };
                    apply_op(&mut g.rounds[seg.index(n)].xc, &op, new);
                }
            }
            (g, perturbed)
        })
}

// ------------------------------------------------------------------------------------
// The properties.
// ------------------------------------------------------------------------------------

fn item_where(item: &Item, offset: usize) -> Where {
    let (layer, ty) = match item {
        Item::Libxl(r) => (Layer::Libxl, libxl_type(r)),
        Item::Libxc(r) => (Layer::Libxc, libxc_type(r)),
        other => panic!("not a record: {other:?}"),
    };
    Where::record(layer, ty, offset as u64)
}

/// Reads `bytes` item by item: what came out, and the error that stopped it.
fn read_prefix(bytes: &[u8], opts: ReaderOptions) -> (Vec<Located<Item>>, Option<StreamError>) {
    let mut r = StreamReader::with_options(bytes, opts);
    let mut got = Vec::new();
    loop {
        match r.next_item() {
            Ok(Some(l)) => got.push(l),
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

fn write_items(items: &[Item]) -> Result<Vec<u8>, (usize, StreamError)> {
    let mut w = StreamWriter::new(Vec::new());
    for (i, item) in items.iter().enumerate() {
        w.write_item(item).map_err(|e| (i, e))?;
    }
    w.flush().map_err(|e| (items.len(), e))?;
    Ok(w.into_inner())
}

/// The record-order rules, from the spec (stream.md §1.6: PV_INFO before P2M_FRAMES
/// before PAGE_DATA before the vCPU records; SHARED_INFO after PV_INFO; STATIC_DATA_END
/// in v3 only, before memory and registers, inferred in v2 at the first P2M_FRAMES) and
/// xi's documented stricter ones (toolstack::stream module docs): no duplicated static
/// records, no PAGE_DATA after this checkpoint's end-of-checkpoint state, vCPU 0's BASIC
/// before END, no HVM or back-channel records, CHECKPOINT only when reading
/// checkpointed, the libxl records' rules. Walks the items as a reader would and says
/// where the first refusal must be: the item, the order rules it breaks, and whether it
/// names a pfn beyond the announced p2m.
#[derive(Debug)]
struct Verdict {
    at: usize,
    rules: Vec<OrderRule>,
    pfn_out_of_range: bool,
    invalid: bool,
}

fn order_oracle(g: &Gen, tagged: &[(Item, bool)]) -> Option<Verdict> {
    use OrderRule as O;
    let v3 = g.version >= 3;
    let (mut pv_info, mut cpuid, mut msr, mut sde) = (false, false, false, false);
    let (mut max_pfn, mut page_data, mut in_tail, mut vcpu0) = (None::<u64>, false, false, false);
    let (mut started, mut in_checkpoint) = (false, false);
    for (k, (item, valid)) in tagged.iter().enumerate() {
        let mut rules = vec![];
        let mut pfn_out_of_range = false;
        let mut infer_sde = false;
        match item {
            Item::Libxc(r) => match r {
                LibxcRecord::End if !vcpu0 => rules.push(O::MissingVcpu0Basic),
                LibxcRecord::X86PvInfo(_) => {
                    if pv_info {
                        rules.push(O::Duplicate);
                    }
                    if sde {
                        rules.push(O::AfterStaticDataEnd);
                    }
                }
                LibxcRecord::X86CpuidPolicy(_) | LibxcRecord::X86MsrPolicy(_) => {
                    let seen = if matches!(r, LibxcRecord::X86CpuidPolicy(_)) {
                        cpuid
                    } else {
                        msr
                    };
                    if !v3 {
                        rules.push(O::NotInV2);
                    }
                    if sde {
                        rules.push(O::AfterStaticDataEnd);
                    }
                    if seen {
                        rules.push(O::Duplicate);
                    }
                }
                LibxcRecord::StaticDataEnd => {
                    if !v3 {
                        rules.push(O::NotInV2);
                    }
                    if sde {
                        rules.push(O::Duplicate);
                    }
                }
                LibxcRecord::X86PvP2mFrames(_) => {
                    if !sde && v3 {
                        rules.push(O::NeedsStaticDataEnd);
                    }
                    if !pv_info {
                        rules.push(O::NeedsPvInfo);
                    }
                    infer_sde = !sde && !v3 && pv_info;
                }
                LibxcRecord::PageData(_) | LibxcRecord::Verify => {
                    if max_pfn.is_none() {
                        rules.push(O::NeedsP2mFrames);
                    }
                    if in_tail {
                        rules.push(O::AfterVcpuState);
                    }
                    if let (LibxcRecord::PageData(pd), Some(max)) = (r, max_pfn) {
                        pfn_out_of_range = pd.entries.iter().any(|e| e.pfn.get() > max);
                    }
                }
                LibxcRecord::X86PvVcpuBasic(_)
                | LibxcRecord::X86PvVcpuExtended(_)
                | LibxcRecord::X86PvVcpuXsave(_)
                | LibxcRecord::X86PvVcpuMsrs(_) => {
                    if !sde {
                        rules.push(O::NeedsStaticDataEnd);
                    }
                    if !page_data {
                        rules.push(O::NeedsPageData);
                    }
                }
                LibxcRecord::SharedInfo(_) | LibxcRecord::X86TscInfo(_) => {
                    if !pv_info && matches!(r, LibxcRecord::SharedInfo(_)) {
                        rules.push(O::NeedsPvInfo);
                    }
                    if !sde {
                        rules.push(O::NeedsStaticDataEnd);
                    }
                }
                LibxcRecord::HvmContext(_)
                | LibxcRecord::HvmParams(_)
                | LibxcRecord::Toolstack(_) => rules.push(O::NotForPv),
                LibxcRecord::CheckpointDirtyPfnList(_) => rules.push(O::BackChannelOnly),
                LibxcRecord::Checkpoint if !g.checkpointed => {
                    rules.push(O::CheckpointInPlainStream)
                }
                _ => {}
            },
            Item::Libxl(r) => match r {
                LibxlRecord::End if !started => rules.push(O::NoLibxcStream),
                LibxlRecord::LibxcContext if started => rules.push(O::Duplicate),
                LibxlRecord::EmulatorXenstoreData(_) | LibxlRecord::EmulatorContext(_) => {
                    rules.push(O::EmulatorRecordForPv)
                }
                LibxlRecord::CheckpointEnd if !in_checkpoint => {
                    rules.push(O::UnexpectedCheckpointEnd)
                }
                LibxlRecord::CheckpointState(_) => rules.push(O::UnexpectedCheckpointState),
                _ => {}
            },
            _ => {}
        }
        if !rules.is_empty() || pfn_out_of_range || !valid {
            return Some(Verdict {
                at: k,
                rules,
                pfn_out_of_range,
                invalid: !valid,
            });
        }
        // The record is read: what it changes.
        match item {
            Item::Libxc(r) => match r {
                LibxcRecord::X86PvInfo(_) => pv_info = true,
                LibxcRecord::X86CpuidPolicy(_) => cpuid = true,
                LibxcRecord::X86MsrPolicy(_) => msr = true,
                LibxcRecord::StaticDataEnd => sde = true,
                LibxcRecord::X86PvP2mFrames(p) => {
                    sde |= infer_sde;
                    let end = u64::from(p.end_pfn);
                    max_pfn = Some(max_pfn.map_or(end, |m| m.max(end)));
                }
                LibxcRecord::PageData(_) => page_data = true,
                LibxcRecord::X86PvVcpuBasic(b) => {
                    in_tail = true;
                    vcpu0 |= b.vcpu_id == 0 && !b.context.is_empty();
                }
                LibxcRecord::X86PvVcpuExtended(_)
                | LibxcRecord::X86PvVcpuXsave(_)
                | LibxcRecord::X86PvVcpuMsrs(_)
                | LibxcRecord::SharedInfo(_)
                | LibxcRecord::X86TscInfo(_) => in_tail = true,
                LibxcRecord::Checkpoint => {
                    in_tail = false;
                    in_checkpoint = g.format != StreamFormat::Libxc;
                }
                _ => {}
            },
            Item::Libxl(LibxlRecord::LibxcContext) => started = true,
            Item::Libxl(LibxlRecord::CheckpointEnd) => in_checkpoint = false,
            _ => {}
        }
    }
    None
}

/// Whether the reader's refusal `e` is the one the oracle predicts.
fn refusal_matches(v: &Verdict, e: &StreamError) -> bool {
    match e {
        StreamError::Order { rule, .. } => v.rules.contains(rule),
        StreamError::UnknownMandatoryRecord { .. } => v.invalid,
        StreamError::PfnOutOfRange { .. } => v.rules.is_empty() && v.pfn_out_of_range,
        // A format error of the record itself.
        _ => v.rules.is_empty() && v.invalid,
    }
}

static ACCEPTED: AtomicU32 = AtomicU32::new(0);
static REFUSED_ORDER: AtomicU32 = AtomicU32::new(0);
static REFUSED_INVALID: AtomicU32 = AtomicU32::new(0);

fn sequence_property(g: &Gen, perturbed: bool) -> Result<(), TestCaseError> {
    let tagged = g.items();
    let items: Vec<Item> = tagged.iter().map(|(i, _)| i.clone()).collect();
    let first_invalid = tagged.iter().position(|(_, ok)| !ok);
    let (oracle, offs) = encode_all(&items);

    // The writer: the oracle's bytes for valid items; refuses exactly the first invalid.
    match (write_items(&items), first_invalid) {
        (Ok(bytes), None) => prop_assert!(bytes == oracle, "writer bytes differ from the spec's"),
        (Err((i, e)), Some(k)) => {
            prop_assert_eq!(
                i,
                k,
                "writer refused item {} ({}), first invalid is {}",
                i,
                e,
                k
            );
            prop_assert_eq!(e.at(), item_where(&items[k], offs[k]), "{}", e);
            let before =
                write_items(&items[..k]).map_err(|(_, e)| TestCaseError::fail(e.to_string()))?;
            prop_assert!(
                before == oracle[..offs[k]],
                "writer bytes before the refusal"
            );
        }
        (Ok(_), Some(k)) => {
            return Err(TestCaseError::fail(format!(
                "writer accepted invalid item {k}: {:?}",
                items[k]
            )))
        }
        (Err((i, e)), None) => {
            return Err(TestCaseError::fail(format!(
                "writer refused valid item {i} ({e}): {:?}",
                items[i]
            )))
        }
    }

    // The reader on the oracle's bytes, against the order oracle.
    let verdict = order_oracle(g, &tagged);
    let (got, err) = read_prefix(&oracle, g.options());
    let r = got.len();
    prop_assert!(r <= items.len());
    for (k, l) in got.iter().enumerate() {
        prop_assert_eq!(l.offset, offs[k] as u64, "offset of item {}", k);
        prop_assert!(l.item == items[k], "item {} read back differs", k);
    }
    match (err, verdict) {
        (None, None) => {
            prop_assert_eq!(r, items.len(), "reader stopped early without an error");
            let back: Vec<Item> = got.into_iter().map(|l| l.item).collect();
            let rewritten =
                write_items(&back).map_err(|(_, e)| TestCaseError::fail(e.to_string()))?;
            prop_assert!(rewritten == oracle, "write(read(bytes)) != bytes");
            ACCEPTED.fetch_add(1, Relaxed);
        }
        (None, Some(v)) => {
            return Err(TestCaseError::fail(format!(
                "reader accepted; the oracle expects a refusal at item {} ({:?}): {v:?}",
                v.at, items[v.at]
            )))
        }
        (Some(e), None) => {
            return Err(TestCaseError::fail(format!(
                "reader refused item {r} ({:?}), the oracle accepts: {e}",
                items.get(r)
            )))
        }
        (Some(e), Some(v)) => {
            prop_assert!(perturbed, "an unperturbed skeleton was refused: {}", e);
            prop_assert_eq!(r, v.at, "refused at the wrong item: {} ({:?})", e, v);
            prop_assert_eq!(e.at(), item_where(&items[r], offs[r]), "{}", e);
            prop_assert!(
                refusal_matches(&v, &e),
                "refused for {} but expected {:?}",
                e,
                v
            );
            if let Some(k) = first_invalid {
                prop_assert!(r <= k, "read past invalid item {} to {}: {}", k, r, e);
            }
            if v.invalid {
                REFUSED_INVALID.fetch_add(1, Relaxed);
            } else {
                REFUSED_ORDER.fetch_add(1, Relaxed);
            }
        }
    }
    Ok(())
}

fn runner(name: &str, default_cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(default_cases),
        failure_persistence: persistence(name),
        ..Config::default()
    })
}

/// read(write(x)) = x, write(read(b)) = b and the writer/reader agreement over arbitrary
/// record sequences; with the outcome mix checked, so the property is not vacuous.
#[test]
fn arbitrary_record_sequences() {
    let mut r = runner("algebra", 1000);
    let cases = r.config().cases;
    r.run(&arbitrary(3), |(g, perturbed)| {
        sequence_property(&g, perturbed)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let (a, o, i) = (
        ACCEPTED.load(Relaxed),
        REFUSED_ORDER.load(Relaxed),
        REFUSED_INVALID.load(Relaxed),
    );
    println!("{cases} cases: accepted {a}, refused for order {o}, refused an invalid record {i}");
    // Unperturbed skeletons (about half) are all accepted; perturbations are refused
    // for order or for an invalid record (the latter rarer: an order error at an
    // earlier record often comes first). Checked only at a meaningful case count.
    if cases >= 100 {
        assert!(a >= cases / 4, "accepted only {a} of {cases}");
        assert!(o >= cases / 20, "refused for order only {o} of {cases}");
        assert!(i >= 1, "never refused an invalid record in {cases}");
    }
}

/// Single records, valid or invalid: the writer refuses one exactly when the body
/// decoder refuses the spec's encoding of it; both name the record type at offset 0;
/// when both accept, the bytes are the spec's and decoding gives the record back.
#[test]
fn writer_refuses_exactly_what_the_decoder_refuses() {
    let mut r = runner("algebra", 1024);
    let strategy = prop_oneof![
        12 => any_libxc(0x000f_ffff_ffff_ffff, 3, 4).prop_map(|(r, _)| Item::Libxc(r)),
        1 => Just(Item::Libxc(LibxcRecord::X86PvInfo(X86PvInfo {
            guest_width: 4,
            pt_levels: 3
        }))),
        1 => Just(Item::Libxc(LibxcRecord::End)),
        1 => Just(Item::Libxc(LibxcRecord::Checkpoint)),
        4 => any_libxl().prop_map(|(r, _)| Item::Libxl(r)),
        1 => Just(Item::Libxl(LibxlRecord::End)),
        1 => Just(Item::Libxl(LibxlRecord::LibxcContext)),
        1 => Just(Item::Libxl(LibxlRecord::CheckpointEnd)),
    ];
    r.run(&strategy, |item| {
        let oracle = encode(&item);
        let body = &oracle[8..8 + u32::from_le_bytes(oracle[4..8].try_into().unwrap()) as usize];
        let mut w = StreamWriter::new(Vec::new());
        let (written, decoded, ty, layer) = match &item {
            Item::Libxc(rec) => (
                w.write_libxc_record(rec),
                LibxcRecord::decode(libxc_type(rec), body).map(Item::Libxc),
                libxc_type(rec),
                Layer::Libxc,
            ),
            Item::Libxl(rec) => (
                w.write_libxl_record(rec),
                LibxlRecord::decode(libxl_type(rec), body).map(Item::Libxl),
                libxl_type(rec),
                Layer::Libxl,
            ),
            _ => unreachable!(),
        };
        let want = Where::record(layer, ty, 0);
        match (written, decoded) {
            (Ok(()), Ok(back)) => {
                prop_assert!(w.into_inner() == oracle, "bytes differ from the spec's");
                prop_assert!(back == item, "decoded differs");
            }
            (Err(we), Err(re)) => {
                prop_assert_eq!(we.at(), want, "writer: {}", we);
                prop_assert_eq!(re.at(), want, "decoder: {}", re);
                prop_assert!(
                    w.into_inner().is_empty(),
                    "the writer wrote part of a refused record"
                );
            }
            (Ok(()), Err(re)) => {
                return Err(TestCaseError::fail(format!(
                    "writer accepted, decoder refused: {re}"
                )))
            }
            (Err(we), Ok(_)) => {
                return Err(TestCaseError::fail(format!(
                    "decoder accepted, writer refused: {we}"
                )))
            }
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// What the reader must say for a stream cut at `cut`, which falls in item `k`.
fn expected_truncation(items: &[Item], offs: &[usize], k: usize, cut: usize) -> String {
    let off = offs[k];
    let header = |layer, part, offset: usize| {
        format!(
            "{:?}",
            Where {
                layer,
                part,
                offset: offset as u64
            }
        )
    };
    match &items[k] {
        Item::XlHeader(_) if cut < 48 => header(Layer::Xl, Part::XlHeader, 0),
        Item::XlHeader(_) => header(Layer::Xl, Part::XlOptionalData, 48),
        Item::LibxlHeader(_) => header(Layer::Libxl, Part::LibxlHeader, off),
        Item::ImageHeader(_) => header(Layer::Libxc, Part::ImageHeader, off),
        Item::DomainHeader(_) => header(Layer::Libxc, Part::DomainHeader, off),
        rec if cut < off + 8 => {
            let layer = if matches!(rec, Item::Libxl(_)) {
                Layer::Libxl
            } else {
                Layer::Libxc
            };
            header(layer, Part::RecordHeader, off)
        }
        Item::Libxc(LibxcRecord::PageData(pd)) if cut >= off + 16 + 8 * pd.entries.len() => {
            let data = off + 16 + 8 * pd.entries.len();
            let page = (cut - data) / PAGE;
            let (index, e) = pd
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| carries_data(e.ty))
                .nth(page)
                .unwrap();
            format!(
                "{:?} pfn {:#x} entry {index} needed {}",
                item_where(&items[k], off),
                e.pfn.get(),
                offs[k + 1] - cut
            )
        }
        rec => format!("{:?}", item_where(rec, off)),
    }
}

/// A cut at every offset of a generated (accepted) stream is refused with a truncation
/// error that names the header or record it falls in, with its layer and offset, and,
/// inside page contents, the pfn and entry of the page and the bytes missing.
#[test]
fn truncation_at_every_offset_names_record_offset_and_pfn() {
    let mut r = runner("algebra", 12);
    r.run(&skeleton(2, 2), |g| {
        let items: Vec<Item> = g.items().into_iter().map(|(i, _)| i).collect();
        let (bytes, offs) = encode_all(&items);
        let (_, err) = read_prefix(&bytes, g.options());
        prop_assert!(err.is_none(), "the whole stream is accepted: {:?}", err);
        let mut k = 0;
        for cut in 0..bytes.len() {
            while offs[k + 1] <= cut {
                k += 1;
            }
            let (got, err) = read_prefix(&bytes[..cut], g.options());
            let Some(e) = err else {
                return Err(TestCaseError::fail(format!("cut at {cut} accepted")));
            };
            prop_assert_eq!(got.len(), k, "cut {}: items before the cut", cut);
            let said = match &e {
                StreamError::Truncated { at, needed } if *needed > 0 => format!("{at:?}"),
                StreamError::PageDataTruncated {
                    at,
                    index,
                    pfn,
                    needed,
                } => {
                    format!("{at:?} pfn {pfn:#x} entry {index} needed {needed}")
                }
                other => return Err(TestCaseError::fail(format!("cut {cut}: {other}"))),
            };
            prop_assert_eq!(
                said,
                expected_truncation(&items, &offs, k, cut),
                "cut {}: {}",
                cut,
                e
            );
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Non-zero padding after one record: neither libxc nor libxl looks at it, so the
/// default reader returns the same items at the same offsets; the strict one (as
/// verify-stream-v2) refuses that record with `NonZeroPadding`; and the writer, which
/// always pads with zeros, writes the zero-padded stream back.
#[test]
fn non_zero_padding_is_read_by_default_and_refused_when_strict() {
    let mut r = runner("algebra", 64);
    r.run(
        &(skeleton(1, 2), any::<Index>(), 1u8..=255),
        |(g, which, pad)| {
            let mut items: Vec<Item> = g.items().into_iter().map(|(i, _)| i).collect();
            let is_padded = |i: &Item| {
                matches!(i, Item::Libxl(_) | Item::Libxc(_)) && encode(i).len() != 8 + body_len(i)
            };
            if !items.iter().any(is_padded) {
                // Make sure there is one: an optional libxc record of 5 bytes first.
                let at = 1 + items
                    .iter()
                    .position(|i| matches!(i, Item::DomainHeader(_)))
                    .unwrap();
                items.insert(
                    at,
                    Item::Libxc(LibxcRecord::Unknown {
                        type_: 0x8000_1234,
                        body: vec![1; 5],
                    }),
                );
            }
            let (zeroed, offs) = encode_all(&items);
            let padded: Vec<usize> = (0..items.len()).filter(|&k| is_padded(&items[k])).collect();
            let k = padded[which.index(padded.len())];
            let mut bytes = zeroed[..offs[k]].to_vec();
            bytes.extend(match &items[k] {
                Item::Libxl(rec) => record_padded(libxl_type(rec), &libxl_body(rec), pad),
                Item::Libxc(rec) => record_padded(libxc_type(rec), &libxc_body(rec), pad),
                _ => unreachable!(),
            });
            bytes.extend_from_slice(&zeroed[offs[k + 1]..]);
            prop_assert_eq!(bytes.len(), zeroed.len());

            let lax = ReaderOptions {
                require_zero_padding: false,
                ..g.options()
            };
            let (got, err) = read_prefix(&bytes, lax);
            prop_assert!(err.is_none(), "default reader: {:?}", err);
            let got: Vec<Item> = got.into_iter().map(|l| l.item).collect();
            prop_assert!(got == items, "default reader: items differ");
            let rewritten =
                write_items(&got).map_err(|(_, e)| TestCaseError::fail(e.to_string()))?;
            prop_assert!(rewritten == zeroed, "rewritten with zero padding");

            let (got, err) = read_prefix(&bytes, g.options());
            prop_assert_eq!(got.len(), k);
            match err {
                Some(StreamError::NonZeroPadding { at }) => {
                    prop_assert_eq!(at, item_where(&items[k], offs[k]));
                }
                other => return Err(TestCaseError::fail(format!("strict reader: {other:?}"))),
            }
            Ok(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The records that switch the reader between layers, or end one.
fn layer_switch() -> impl Strategy<Value = Item> {
    prop::sample::select(vec![
        Item::Libxc(LibxcRecord::End),
        Item::Libxc(LibxcRecord::Checkpoint),
        Item::Libxl(LibxlRecord::End),
        Item::Libxl(LibxlRecord::LibxcContext),
        Item::Libxl(LibxlRecord::CheckpointEnd),
    ])
}

static REWRITTEN: AtomicU32 = AtomicU32::new(0);

/// write(read(b)) = b for every stream the strict reader accepts, even when records
/// that switch layers are inserted, moved or duplicated anywhere after the headers (so
/// bytes written as one layer's record may be read as the other's): whatever the reader
/// makes of the bytes, writing it gives them back, and its items tile the stream.
/// Refusals name an offset inside the stream.
#[test]
fn any_accepted_stream_is_rewritten_byte_for_byte() {
    let mut r = runner("algebra", 400);
    let cases = r.config().cases;
    let ops = vec(
        (0u8..3, any::<Index>(), any::<Index>(), layer_switch()),
        1..=3,
    );
    r.run(&(arbitrary(1), ops), |((g, _), ops)| {
        let mut items: Vec<Item> = g.items().into_iter().map(|(i, _)| i).collect();
        let first = items
            .iter()
            .position(|i| matches!(i, Item::Libxl(_) | Item::Libxc(_)))
            .unwrap_or(items.len());
        for (op, a, b, new) in ops {
            let n = items.len() - first;
            match op {
                0 => items.insert(first + a.index(n + 1), new),
                1 if n > 1 => {
                    let x = items.remove(first + a.index(n));
                    items.insert(first + b.index(n), x);
                }
                _ if n > 0 => {
                    let at = first + a.index(n);
                    items.insert(at, items[at].clone());
                }
                _ => {}
            }
        }
        let (bytes, _) = encode_all(&items);
        for checkpointed in [false, true] {
            let opts = ReaderOptions {
                checkpointed,
                ..g.options()
            };
            match read_all(&bytes[..], opts) {
                Ok(read) => {
                    let mut at = 0;
                    for l in &read {
                        prop_assert_eq!(l.offset, at, "items tile the stream");
                        at += l.item.encoded_len();
                    }
                    prop_assert_eq!(at, bytes.len() as u64);
                    let back: Vec<Item> = read.into_iter().map(|l| l.item).collect();
                    let rewritten =
                        write_items(&back).map_err(|(_, e)| TestCaseError::fail(e.to_string()))?;
                    prop_assert!(rewritten == bytes, "write(read(bytes)) != bytes");
                    REWRITTEN.fetch_add(1, Relaxed);
                }
                Err(e) => prop_assert!(e.at().offset <= bytes.len() as u64, "{}", e),
            }
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let n = REWRITTEN.load(Relaxed);
    println!("{cases} cases: {n} readings accepted and rewritten");
    if cases >= 100 {
        assert!(n >= cases / 20, "only {n} accepted");
    }
}

fn body_len(item: &Item) -> usize {
    match item {
        Item::Libxl(r) => libxl_body(r).len(),
        Item::Libxc(r) => libxc_body(r).len(),
        _ => 0,
    }
}

// ------------------------------------------------------------------------------------
// Real saves.
// ------------------------------------------------------------------------------------

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

/// A real save is read and written back to the same bytes, which are also the spec's
/// encoding of what was read.
#[test]
fn the_base_stream_round_trips_byte_for_byte() {
    for (kind, extra) in [
        ("counter", "pages=16 report=50"),
        ("checksum", "pages=8 seed=3 report=100"),
    ] {
        let s = saved(kind, extra);
        let items: Vec<Item> = read_all(&s[..], ReaderOptions::default())
            .unwrap()
            .into_iter()
            .map(|l| l.item)
            .collect();
        assert!(write_items(&items).unwrap() == s, "{kind}: rewritten");
        assert!(encode_all(&items).0 == s, "{kind}: the spec's encoding");
    }
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

/// Every toy guest; the pingpong guest as the pong side of a pair, its partner (the
/// ping) running on the same host throughout.
#[test]
fn save_of_restore_of_save_has_the_same_records() {
    for (kind, extra) in [
        ("counter", "pages=16 report=50"),
        ("epoch", "seed=3 pages=16 writes=4"),
        ("pagetable", "report=5"),
        ("checksum", "pages=8 seed=3 report=100"),
        ("pingpong", "role=pong report=10"),
    ] {
        let mut r = Runner::new(1);
        let pair = kind == "pingpong";
        if pair {
            boot(&mut r, "partner", 0, "pingpong", "role=ping report=10");
        }
        r.step(
            0,
            &Step::Boot {
                guest: "g".into(),
                host: 0,
                kind: kind.into(),
                extra: extra.into(),
                peer: pair.then(|| "partner".into()),
            },
        )
        .unwrap();
        r.hosts[0].model.run(if pair { 1_500_000 } else { 500_000 });
        if pair {
            assert!(status(&mut r, "partner").steps > 0, "the pair exchanges");
        }
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
