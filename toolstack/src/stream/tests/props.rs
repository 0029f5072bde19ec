//! Property tests: read(write(x)) == x for valid streams and for every record type, and
//! the reader never panics on random or mutated input.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::*;

fn arb_page_type() -> impl Strategy<Value = PageType> {
    proptest::sample::select(PageType::ALL.to_vec())
}

/// A page whose contents are derived from a seed (cheap, but not constant).
fn page(seed: u8) -> Vec<u8> {
    (0..PAGE_SIZE)
        .map(|i| seed.wrapping_add((i / 64) as u8))
        .collect()
}

fn arb_page_data(max_pfn: u64) -> impl Strategy<Value = PageData> {
    vec((0..=max_pfn, arb_page_type(), any::<u8>()), 1..=6).prop_map(|entries| {
        let mut p = PageData::default();
        for (pfn, ty, seed) in entries {
            p.entries.push(PageDataEntry::new(Pfn::new(pfn), ty));
            if ty.has_data() {
                p.data.extend_from_slice(&page(seed));
            }
        }
        p
    })
}

fn arb_cpuid_leaf() -> impl Strategy<Value = CpuidLeaf> {
    any::<[u32; 6]>().prop_map(|[leaf, subleaf, a, b, c, d]| CpuidLeaf {
        leaf,
        subleaf,
        a,
        b,
        c,
        d,
    })
}

fn arb_msr_entry() -> impl Strategy<Value = MsrEntry> {
    any::<(u32, u32, u64)>().prop_map(|(index, flags, value)| MsrEntry {
        index,
        flags,
        value,
    })
}

fn arb_vcpu_msr() -> impl Strategy<Value = VcpuMsr> {
    any::<(u32, u32, u64)>().prop_map(|(index, reserved, value)| VcpuMsr {
        index,
        reserved,
        value,
    })
}

fn arb_p2m() -> impl Strategy<Value = X86PvP2mFrames> {
    (0u32..3000)
        .prop_flat_map(|end| (0..=end, Just(end)))
        .prop_flat_map(|(start, end)| {
            let n = X86PvP2mFrames::frames_needed(start, end, 8) as usize;
            (Just(start), Just(end), vec(any::<u64>(), n..=n))
        })
        .prop_map(|(start_pfn, end_pfn, frames)| X86PvP2mFrames {
            start_pfn,
            end_pfn,
            frames: frames.into_iter().map(Pfn::new).collect(),
        })
}

fn arb_unknown() -> impl Strategy<Value = (u32, Vec<u8>)> {
    (0u32..0x7fff_ffff, vec(any::<u8>(), 0..24)).prop_map(|(t, b)| (t | REC_TYPE_OPTIONAL, b))
}

/// The end-of-checkpoint records after vCPU 0's BASIC (any order; all are allowed there).
fn arb_vcpu_extra() -> impl Strategy<Value = LibxcRecord> {
    prop_oneof![
        (0u32..4, vec(any::<u8>(), 0..=VCPU_EXTENDED_MAX)).prop_map(|(vcpu_id, context)| {
            LibxcRecord::X86PvVcpuExtended(VcpuBlob { vcpu_id, context })
        }),
        (0u32..4, prop_oneof![Just(0usize), 16usize..80], any::<u8>()).prop_map(
            |(vcpu_id, len, seed)| LibxcRecord::X86PvVcpuXsave(VcpuBlob {
                vcpu_id,
                context: vec![seed; len],
            })
        ),
        (0u32..4, vec(arb_vcpu_msr(), 0..4))
            .prop_map(|(vcpu_id, msrs)| LibxcRecord::X86PvVcpuMsrs(VcpuMsrs { vcpu_id, msrs })),
        (1u32..4, any::<bool>(), any::<u8>()).prop_map(|(vcpu_id, empty, seed)| {
            LibxcRecord::X86PvVcpuBasic(VcpuBlob {
                vcpu_id,
                context: if empty {
                    vec![]
                } else {
                    vec![seed; VCPU_BASIC_SIZE_64]
                },
            })
        }),
        any::<[u32; 4]>().prop_map(|[mode, khz, n, incarnation]| {
            LibxcRecord::X86TscInfo(X86TscInfo {
                mode,
                khz,
                nsec: u64::from(n) << 7,
                incarnation,
            })
        }),
        any::<u8>().prop_map(|seed| {
            let mut p = Box::new([0u8; PAGE_SIZE]);
            p.copy_from_slice(&page(seed));
            LibxcRecord::SharedInfo(p)
        }),
        arb_unknown().prop_map(|(type_, body)| LibxcRecord::Unknown { type_, body }),
    ]
}

/// Streams that respect every format and order rule.
pub(super) fn arb_stream() -> impl Strategy<Value = Vec<Item>> {
    let xl = (
        any::<bool>(),
        any::<u32>(),
        option::of(vec(any::<u8>(), 0..40)),
    )
        .prop_map(|(config_is_json, optional_flags, config)| XlHeader {
            config_is_json,
            optional_flags,
            config,
        });
    let statics = (
        prop_oneof![Just(2u32), Just(3u32)],
        option::of(vec(arb_cpuid_leaf(), 1..4)),
        option::of(vec(arb_msr_entry(), 1..3)),
        (1u32..10, 0u32..30),
    );
    let memory = arb_p2m().prop_flat_map(|p2m| {
        let max = u64::from(p2m.end_pfn);
        (
            Just(p2m),
            vec(arb_page_data(max), 1..4),
            option::of(vec(arb_page_data(max), 1..3)),
            vec(arb_unknown(), 0..2),
        )
    });
    let tail = (any::<u8>(), vec(arb_vcpu_extra(), 0..5));
    (
        xl,
        any::<bool>(),
        vec(arb_unknown(), 0..2),
        statics,
        memory,
        tail,
    )
        .prop_map(|(xl, legacy, libxl_unknown, statics, memory, tail)| {
            let (version, cpuid, msrs, (major, minor)) = statics;
            let (p2m, rounds, verify, unknown) = memory;
            let (seed, extra) = tail;
            let mut items = vec![
                Item::XlHeader(xl),
                Item::LibxlHeader(LibxlHeader { legacy }),
            ];
            for (type_, body) in libxl_unknown {
                items.push(Item::Libxl(LibxlRecord::Unknown { type_, body }));
            }
            items.extend([
                Item::Libxl(LibxlRecord::LibxcContext),
                Item::ImageHeader(ImageHeader { version }),
                Item::DomainHeader(DomainHeader::x86_pv(major, minor)),
                Item::Libxc(LibxcRecord::X86PvInfo(X86PvInfo::X86_64)),
            ]);
            if version >= 3 {
                if let Some(l) = cpuid {
                    items.push(Item::Libxc(LibxcRecord::X86CpuidPolicy(l)));
                }
                if let Some(m) = msrs {
                    items.push(Item::Libxc(LibxcRecord::X86MsrPolicy(m)));
                }
                items.push(Item::Libxc(LibxcRecord::StaticDataEnd));
            }
            items.push(Item::Libxc(LibxcRecord::X86PvP2mFrames(p2m)));
            for (type_, body) in unknown {
                items.push(Item::Libxc(LibxcRecord::Unknown { type_, body }));
            }
            items.extend(
                rounds
                    .into_iter()
                    .map(|p| Item::Libxc(LibxcRecord::PageData(p))),
            );
            if let Some(v) = verify {
                items.push(Item::Libxc(LibxcRecord::Verify));
                items.extend(v.into_iter().map(|p| Item::Libxc(LibxcRecord::PageData(p))));
            }
            items.push(Item::Libxc(LibxcRecord::X86PvVcpuBasic(VcpuBlob {
                vcpu_id: 0,
                context: vec![seed; VCPU_BASIC_SIZE_64],
            })));
            items.extend(extra.into_iter().map(Item::Libxc));
            items.push(Item::Libxc(LibxcRecord::End));
            items.push(Item::Libxl(LibxlRecord::End));
            items
        })
}

/// Every libxc record type, with arbitrary (format-valid) contents.
fn arb_libxc_record() -> impl Strategy<Value = LibxcRecord> {
    prop_oneof![
        Just(LibxcRecord::End),
        Just(LibxcRecord::Verify),
        Just(LibxcRecord::Checkpoint),
        Just(LibxcRecord::StaticDataEnd),
        arb_page_data(PAGE_DATA_PFN_MASK).prop_map(LibxcRecord::PageData),
        Just(LibxcRecord::X86PvInfo(X86PvInfo::X86_64)),
        Just(LibxcRecord::X86PvInfo(X86PvInfo {
            guest_width: 4,
            pt_levels: 3
        })),
        arb_p2m().prop_map(LibxcRecord::X86PvP2mFrames),
        arb_vcpu_extra(),
        vec(any::<u8>(), 1..64).prop_map(LibxcRecord::HvmContext),
        vec(any::<(u64, u64)>(), 0..5).prop_map(|v| LibxcRecord::HvmParams(
            v.into_iter()
                .map(|(index, value)| HvmParam { index, value })
                .collect()
        )),
        vec(any::<u8>(), 0..64).prop_map(LibxcRecord::Toolstack),
        vec(any::<u64>(), 0..8).prop_map(|v| LibxcRecord::CheckpointDirtyPfnList(
            v.into_iter().map(Pfn::new).collect()
        )),
        vec(arb_cpuid_leaf(), 1..5).prop_map(LibxcRecord::X86CpuidPolicy),
        vec(arb_msr_entry(), 1..5).prop_map(LibxcRecord::X86MsrPolicy),
    ]
}

fn arb_libxl_record() -> impl Strategy<Value = LibxlRecord> {
    let emu = (any::<u32>(), any::<u32>(), vec(any::<u8>(), 0..40)).prop_map(
        |(emulator_id, index, data)| EmulatorRecord {
            emulator_id,
            index,
            data,
        },
    );
    prop_oneof![
        Just(LibxlRecord::End),
        Just(LibxlRecord::LibxcContext),
        Just(LibxlRecord::CheckpointEnd),
        any::<u32>().prop_map(LibxlRecord::CheckpointState),
        emu.clone().prop_map(LibxlRecord::EmulatorXenstoreData),
        emu.prop_map(LibxlRecord::EmulatorContext),
        arb_unknown().prop_map(|(type_, body)| LibxlRecord::Unknown { type_, body }),
    ]
}

/// Splits one written record into (type, body), checking the framing.
fn split_record(bytes: &[u8]) -> (u32, &[u8]) {
    let ty = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), 8 + len + padding_for(len as u64) as usize);
    assert!(bytes[8 + len..].iter().all(|&b| b == 0), "zero padding");
    assert_eq!(bytes.len() % 8, 0);
    (ty, &bytes[8..8 + len])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn stream_round_trip(items in arb_stream()) {
        let mut w = StreamWriter::new(Vec::new());
        let mut offsets = Vec::new();
        for item in &items {
            offsets.push(w.offset());
            w.write_item(item).unwrap();
        }
        let bytes = w.into_inner();
        let read = read_all(bytes.as_slice(), ReaderOptions {
            require_zero_padding: true,
            ..ReaderOptions::default()
        }).unwrap();
        let read_offsets: Vec<u64> = read.iter().map(|l| l.offset).collect();
        prop_assert_eq!(read_offsets, offsets);
        for located in &read {
            let line = located.to_string();
            prop_assert!(!line.contains('\n'));
        }
        let read_items: Vec<Item> = read.into_iter().map(|l| l.item).collect();
        prop_assert_eq!(read_items, items);
    }

    #[test]
    fn every_libxc_record_type_round_trips(record in arb_libxc_record()) {
        let mut w = StreamWriter::new(Vec::new());
        w.write_libxc_record(&record).unwrap();
        let bytes = w.into_inner();
        let (ty, body) = split_record(&bytes);
        prop_assert_eq!(ty, record.type_());
        prop_assert_eq!(body.len() as u64, record.body_len());
        prop_assert_eq!(LibxcRecord::decode(ty, body).unwrap(), record.clone());
        let _ = record.to_string();
    }

    #[test]
    fn every_libxl_record_type_round_trips(record in arb_libxl_record()) {
        let mut w = StreamWriter::new(Vec::new());
        w.write_libxl_record(&record).unwrap();
        let bytes = w.into_inner();
        let (ty, body) = split_record(&bytes);
        prop_assert_eq!(ty, record.type_());
        prop_assert_eq!(LibxlRecord::decode(ty, body).unwrap(), record.clone());
        let _ = record.to_string();
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        for format in [StreamFormat::Xl, StreamFormat::Libxl, StreamFormat::Libxc] {
            let opts = ReaderOptions { format, checkpointed: true, ..ReaderOptions::default() };
            let _ = read_with(&bytes, opts);
        }
    }

    #[test]
    fn random_tails_after_valid_headers_never_panic(
        cut in 0usize..200,
        tail in vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = write_items(&minimal_stream());
        bytes.truncate(cut.min(bytes.len()));
        bytes.extend_from_slice(&tail);
        let _ = read_items(&bytes);
    }

    #[test]
    fn mutations_never_panic(
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        header_flips in vec((0usize..220, 0u8..8), 0..3),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = write_items(&minimal_stream());
        for (i, b) in mutations {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        // Bit flips in the headers and first record headers/lengths.
        for (i, bit) in header_flips {
            bytes[i] ^= 1 << bit;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        for checkpointed in [false, true] {
            let opts = ReaderOptions { checkpointed, require_zero_padding: true, ..ReaderOptions::default() };
            if let Ok(items) = read_all(bytes.as_slice(), opts) {
                for l in items {
                    let _ = l.to_string();
                }
            }
        }
    }

    #[test]
    fn mutated_random_streams_never_panic(
        items in arb_stream(),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..3),
    ) {
        let mut bytes = write_items(&items);
        for (i, b) in mutations {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let _ = read_items(&bytes);
    }
}
