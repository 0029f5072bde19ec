//! One negative test per reader (and writer) check, each naming the error it expects.

use std::time::{Duration, Instant};

use super::*;

// Indices into `minimal_stream()`.
const XL: usize = 0;
const LIBXL_HDR: usize = 1;
const IMAGE_HDR: usize = 3;
const DOMAIN_HDR: usize = 4;
const PV_INFO: usize = 5;
const SDE: usize = 6;
const P2M: usize = 7;
const PAGES: usize = 8;
const BASIC: usize = 9;
const XC_END: usize = 10;
const XL_END: usize = 11;

fn minimal_bytes() -> Vec<u8> {
    write_items(&minimal_stream())
}

/// Offset of item `index` of the minimal stream.
fn offset_of(index: usize) -> u64 {
    minimal_stream()[..index]
        .iter()
        .map(Item::encoded_len)
        .sum()
}

/// A writer that has written the first `n` items of the minimal stream.
fn prefix(n: usize) -> StreamWriter<Vec<u8>> {
    let mut w = StreamWriter::new(Vec::new());
    for item in &minimal_stream()[..n] {
        w.write_item(item).unwrap();
    }
    w
}

/// Writes a raw record (length = body length, zero padding).
fn raw(w: &mut StreamWriter<Vec<u8>>, layer: Layer, ty: u32, body: &[u8]) {
    let pad = vec![0u8; padding_for(body.len() as u64) as usize];
    w.write_raw_record(layer, ty, body.len() as u32, body, &pad)
        .unwrap();
}

/// The minimal stream's first `n` items, one raw libxc record, then the rest from `n`.
fn with_raw_libxc(n: usize, ty: u32, body: &[u8]) -> Vec<u8> {
    let mut w = prefix(n);
    raw(&mut w, Layer::Libxc, ty, body);
    for item in &minimal_stream()[n..] {
        w.write_item(item).unwrap();
    }
    w.into_inner()
}

/// The minimal stream with `extra` items inserted before item `n`.
fn with_items(n: usize, extra: &[Item]) -> Vec<u8> {
    let mut items = minimal_stream();
    items.splice(n..n, extra.iter().cloned());
    write_items(&items)
}

fn read_err(bytes: &[u8]) -> StreamError {
    read_items(bytes).expect_err("stream must be rejected")
}

fn patched(offset: u64, new: &[u8]) -> Vec<u8> {
    let mut b = minimal_bytes();
    let o = offset as usize;
    b[o..o + new.len()].copy_from_slice(new);
    b
}

fn order_rule(e: &StreamError) -> OrderRule {
    match e {
        StreamError::Order { rule, .. } => *rule,
        other => panic!("expected an order error, got {other:?}"),
    }
}

fn libxc(r: LibxcRecord) -> Item {
    Item::Libxc(r)
}

// ---- xl header ----

#[test]
fn xl_bad_magic() {
    let e = read_err(&patched(0, b"Y"));
    assert!(matches!(e, StreamError::XlBadMagic { at, .. } if at.part == Part::XlHeader));
    assert!(e
        .to_string()
        .starts_with("xl save-file header at offset 0x0: bad magic"));
}

#[test]
fn xl_big_endian_byte_order() {
    let e = read_err(&patched(32, &[1, 2, 3, 4]));
    assert!(matches!(
        e,
        StreamError::XlByteOrder {
            found: 0x0403_0201,
            ..
        }
    ));
    assert!(e.to_string().contains("big-endian host"), "{e}");
    let e = read_err(&patched(32, &[9, 9, 9, 9]));
    assert!(matches!(e, StreamError::XlByteOrder { .. }));
}

#[test]
fn xl_unknown_mandatory_flag() {
    let e = read_err(&patched(36, &[0x07]));
    assert!(
        matches!(e, StreamError::XlUnknownMandatoryFlags { flags: 4, .. }),
        "{e:?}"
    );
}

#[test]
fn xl_without_streamv2_is_legacy() {
    let e = read_err(&patched(36, &[0x01]));
    assert!(
        matches!(e, StreamError::XlLegacyStream { flags: 1, .. }),
        "{e:?}"
    );
}

#[test]
fn xl_optional_flags_are_ignored() {
    let items = read_items(&patched(40, &[0xff, 0, 0, 0])).unwrap();
    let Item::XlHeader(h) = &items[XL] else {
        panic!()
    };
    assert_eq!(h.optional_flags, 0xff);
}

#[test]
fn xl_optional_data_too_long() {
    let e = read_err(&patched(44, &(XL_OPTIONAL_DATA_MAX + 1).to_le_bytes()));
    assert!(
        matches!(e, StreamError::XlOptionalDataTooLong { at, .. } if at.part == Part::XlOptionalData)
    );
}

#[test]
fn xl_optional_data_too_short_for_config() {
    let e = read_err(&patched(44, &[2, 0, 0, 0]));
    assert!(
        matches!(
            e,
            StreamError::XlConfigLength {
                config_len: None,
                ..
            }
        ),
        "{e:?}"
    );
    let e = read_err(&patched(48, &[4, 0, 0, 0])); // config_len 4 > 7 - 4
    assert!(
        matches!(
            e,
            StreamError::XlConfigLength {
                config_len: Some(4),
                optional_data_len: 7,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn xl_optional_data_tail_is_skipped() {
    // optional_data_len 9: config (4 + 3) plus two bytes xi does not understand.
    let mut b = minimal_bytes();
    b[44] = 9;
    b.splice(55..55, [0xee, 0xee]);
    let items = read_items(&b).unwrap();
    assert_eq!(items, minimal_stream());
}

#[test]
fn xl_without_config() {
    let mut items = minimal_stream();
    items[XL] = Item::XlHeader(XlHeader::default());
    assert_eq!(read_items(&write_items(&items)).unwrap(), items);
}

// ---- libxl header ----

#[test]
fn libxl_bad_ident() {
    let e = read_err(&patched(offset_of(LIBXL_HDR), b"LibxlFmu"));
    assert!(
        matches!(e, StreamError::LibxlBadIdent { at, .. } if at.offset == 55),
        "{e:?}"
    );
}

#[test]
fn libxl_bad_version() {
    for v in [1u32, 3] {
        let e = read_err(&patched(offset_of(LIBXL_HDR) + 8, &v.to_be_bytes()));
        assert!(matches!(e, StreamError::LibxlBadVersion { found, .. } if found == v));
    }
}

#[test]
fn libxl_big_endian() {
    let e = read_err(&patched(offset_of(LIBXL_HDR) + 12, &1u32.to_be_bytes()));
    assert!(matches!(e, StreamError::BigEndian { at } if at.layer == Layer::Libxl));
}

#[test]
fn libxl_reserved_options() {
    let e = read_err(&patched(offset_of(LIBXL_HDR) + 12, &4u32.to_be_bytes()));
    assert!(matches!(e, StreamError::ReservedOptions { bits: 4, at } if at.layer == Layer::Libxl));
}

#[test]
fn libxl_legacy_option_is_accepted() {
    let items = read_items(&patched(offset_of(LIBXL_HDR) + 12, &2u32.to_be_bytes())).unwrap();
    assert_eq!(
        items[LIBXL_HDR],
        Item::LibxlHeader(LibxlHeader { legacy: true })
    );
}

// ---- libxc image header ----

#[test]
fn libxc_bad_marker_is_a_legacy_image() {
    // A legacy image starts with the p2m size.
    let e = read_err(&patched(offset_of(IMAGE_HDR), &0x20u64.to_le_bytes()));
    assert!(matches!(e, StreamError::LibxcBadMarker { .. }), "{e:?}");
    assert!(e.to_string().contains("legacy"), "{e}");
    let e = read_err(&patched(offset_of(IMAGE_HDR) + 7, &[0xfe]));
    assert!(matches!(
        e,
        StreamError::LibxcBadMarker {
            found: 0xffff_ffff_ffff_fffe,
            ..
        }
    ));
}

#[test]
fn libxc_bad_id() {
    let e = read_err(&patched(offset_of(IMAGE_HDR) + 8, b"XENG"));
    assert!(matches!(
        e,
        StreamError::LibxcBadId {
            found: 0x5845_4e47,
            ..
        }
    ));
}

#[test]
fn libxc_versions_1_and_4() {
    for v in [0u32, 1, 4, 0x0300_0000] {
        let e = read_err(&patched(offset_of(IMAGE_HDR) + 12, &v.to_be_bytes()));
        assert!(
            matches!(e, StreamError::LibxcBadVersion { found, .. } if found == v),
            "{e:?}"
        );
    }
}

#[test]
fn libxc_big_endian() {
    let e = read_err(&patched(offset_of(IMAGE_HDR) + 16, &1u16.to_be_bytes()));
    assert!(matches!(e, StreamError::BigEndian { at } if at.part == Part::ImageHeader));
}

#[test]
fn libxc_reserved_options_and_fields() {
    let e = read_err(&patched(offset_of(IMAGE_HDR) + 16, &2u16.to_be_bytes()));
    assert!(matches!(e, StreamError::ReservedOptions { bits: 2, .. }));
    let e = read_err(&patched(offset_of(IMAGE_HDR) + 18, &[0, 1]));
    assert!(matches!(e, StreamError::ReservedField { value: 1, .. }));
    let e = read_err(&patched(offset_of(IMAGE_HDR) + 23, &[1]));
    assert!(matches!(e, StreamError::ReservedField { value: 1, .. }));
}

// ---- libxc domain header ----

#[test]
fn hvm_domain_is_unsupported() {
    let e = read_err(&patched(offset_of(DOMAIN_HDR), &[2]));
    assert!(matches!(
        e,
        StreamError::UnsupportedDomainType { ty: 2, .. }
    ));
    assert!(e.to_string().contains("x86 HVM"), "{e}");
    for ty in [0u8, 3, 0xff] {
        let e = read_err(&patched(offset_of(DOMAIN_HDR), &[ty]));
        assert!(matches!(e, StreamError::UnsupportedDomainType { .. }));
    }
}

#[test]
fn page_shift_13() {
    let e = read_err(&patched(offset_of(DOMAIN_HDR) + 4, &[13]));
    assert!(matches!(e, StreamError::BadPageShift { found: 13, .. }));
}

#[test]
fn domain_header_reserved() {
    let e = read_err(&patched(offset_of(DOMAIN_HDR) + 6, &[1]));
    assert!(matches!(e, StreamError::ReservedField { at, .. } if at.part == Part::DomainHeader));
}

#[test]
fn legacy_converted_domain_header_is_accepted() {
    let mut items = minimal_stream();
    items[DOMAIN_HDR] = Item::DomainHeader(DomainHeader::x86_pv(0, 1));
    let read = read_items(&write_items(&items)).unwrap();
    assert_eq!(read, items);
    assert!(read[DOMAIN_HDR]
        .to_string()
        .contains("converted from legacy"));
}

// ---- record framing ----

#[test]
fn unknown_mandatory_libxc_record() {
    let e = read_err(&with_raw_libxc(PAGES, 0x13, &[]));
    assert!(
        matches!(e, StreamError::UnknownMandatoryRecord { ty: 0x13, at } if at.layer == Layer::Libxc)
    );
    assert_eq!(e.at().offset, offset_of(PAGES));
}

#[test]
fn unknown_optional_libxc_record_is_accepted() {
    let bytes = with_raw_libxc(PAGES, 0x8000_0013, b"hello");
    let items = read_items(&bytes).unwrap();
    assert_eq!(
        items[PAGES],
        libxc(LibxcRecord::Unknown {
            type_: 0x8000_0013,
            body: b"hello".to_vec()
        })
    );
    assert_eq!(items.len(), minimal_stream().len() + 1);
}

#[test]
fn unknown_libxl_records() {
    let mut w = prefix(2);
    raw(&mut w, Layer::Libxl, 6, &[]);
    let e = read_err(&w.into_inner());
    assert!(
        matches!(e, StreamError::UnknownMandatoryRecord { ty: 6, at } if at.layer == Layer::Libxl)
    );

    let items = minimal_stream();
    let mut w = prefix(2);
    raw(&mut w, Layer::Libxl, 0x8000_0006, &[1, 2, 3]);
    for item in &items[2..] {
        w.write_item(item).unwrap();
    }
    let read = read_items(&w.into_inner()).unwrap();
    assert_eq!(
        read[2],
        Item::Libxl(LibxlRecord::Unknown {
            type_: 0x8000_0006,
            body: vec![1, 2, 3]
        })
    );
}

#[test]
fn record_longer_than_rec_length_max() {
    for layer in [Layer::Libxc, Layer::Libxl] {
        let (n, ty) = if layer == Layer::Libxc {
            (PAGES, libxc_type::PAGE_DATA)
        } else {
            (2, 0x8000_0001)
        };
        let mut w = prefix(n);
        w.write_raw_record(layer, ty, REC_LENGTH_MAX + 1, &[], &[])
            .unwrap();
        let e = read_err(&w.into_inner());
        assert!(
            matches!(e, StreamError::RecordTooLong { length, .. } if length == u64::from(REC_LENGTH_MAX) + 1),
            "{e:?}"
        );
        assert_eq!(e.at().layer, layer);
    }
}

#[test]
fn nonzero_padding_accepted_unless_required() {
    // An optional record with 3 bytes of body and non-zero padding.
    let mut w = prefix(PAGES);
    w.write_raw_record(Layer::Libxc, 0x8000_0001, 3, b"abc", &[1, 0, 0, 0, 0])
        .unwrap();
    for item in &minimal_stream()[PAGES..] {
        w.write_item(item).unwrap();
    }
    let bytes = w.into_inner();
    assert!(read_items(&bytes).is_ok());
    let strict = ReaderOptions {
        require_zero_padding: true,
        ..ReaderOptions::default()
    };
    let e = read_with(&bytes, strict).unwrap_err();
    assert!(matches!(e, StreamError::NonZeroPadding { at } if at.offset == offset_of(PAGES)));
}

// ---- per-type length rules ----

fn assert_bad_length(bytes: &[u8], ty: u32) {
    let e = read_err(bytes);
    assert!(
        matches!(e, StreamError::BadLength { at, .. } if at.part == Part::Record(ty)),
        "type {ty:#x}: {e:?}"
    );
}

#[test]
fn empty_records_must_be_empty() {
    assert_bad_length(
        &with_raw_libxc(SDE, libxc_type::STATIC_DATA_END, &[0; 8]),
        0x10,
    );
    assert_bad_length(&with_raw_libxc(XC_END, libxc_type::END, &[0; 8]), 0);
    assert_bad_length(&with_raw_libxc(PAGES, libxc_type::VERIFY, &[0; 1]), 0x0d);
    let mut w = prefix(2);
    raw(&mut w, Layer::Libxl, libxl_type::LIBXC_CONTEXT, &[0; 8]);
    let e = read_err(&w.into_inner());
    assert!(matches!(e, StreamError::BadLength { at, .. } if at.layer == Layer::Libxl));
    let mut w = prefix(XL_END);
    raw(&mut w, Layer::Libxl, libxl_type::END, &[0; 4]);
    let e = read_err(&w.into_inner());
    assert!(matches!(e, StreamError::BadLength { at, .. } if at.layer == Layer::Libxl));
}

#[test]
fn pv_info_length() {
    for len in [0usize, 4, 16] {
        assert_bad_length(&with_raw_libxc(PV_INFO, 2, &vec![0; len]), 2);
    }
}

#[test]
fn tsc_info_length() {
    for len in [16usize, 32] {
        assert_bad_length(
            &with_raw_libxc(BASIC, libxc_type::X86_TSC_INFO, &vec![0; len]),
            8,
        );
    }
}

#[test]
fn shared_info_length() {
    for len in [0usize, 4088, 4104] {
        assert_bad_length(
            &with_raw_libxc(BASIC, libxc_type::SHARED_INFO, &vec![0; len]),
            7,
        );
    }
}

#[test]
fn vcpu_record_lengths() {
    let ty = libxc_type::X86_PV_VCPU_BASIC;
    for blob in [1usize, 100, VCPU_BASIC_SIZE_32, VCPU_BASIC_SIZE_64 + 8] {
        assert_bad_length(&with_raw_libxc(BASIC, ty, &vec![0; 8 + blob]), ty);
    }
    assert_bad_length(&with_raw_libxc(BASIC, ty, &[0; 4]), ty);
    let ty = libxc_type::X86_PV_VCPU_EXTENDED;
    assert_bad_length(&with_raw_libxc(XC_END, ty, &[0; 4]), ty);
    assert_bad_length(&with_raw_libxc(XC_END, ty, &[0; 8 + 136]), ty);
    let ty = libxc_type::X86_PV_VCPU_XSAVE;
    assert_bad_length(&with_raw_libxc(XC_END, ty, &[0; 8 + 8]), ty);
    let ty = libxc_type::X86_PV_VCPU_MSRS;
    assert_bad_length(&with_raw_libxc(XC_END, ty, &[0; 8 + 24]), ty);
}

#[test]
fn zero_content_vcpu_records_are_tolerated() {
    let extra: Vec<Item> = [
        libxc_type::X86_PV_VCPU_EXTENDED,
        libxc_type::X86_PV_VCPU_XSAVE,
        libxc_type::X86_PV_VCPU_MSRS,
    ]
    .iter()
    .map(|&ty| LibxcRecord::decode(ty, &[0; 8]).map(Item::Libxc).unwrap())
    .collect();
    let bytes = with_items(XC_END, &extra);
    let items = read_items(&bytes).unwrap();
    assert_eq!(&items[XC_END..XC_END + 3], &extra[..]);
    // An empty BASIC record is tolerated too (libxc skips it), but it does not count as
    // vCPU 0's state.
    let empty_basic = libxc(LibxcRecord::X86PvVcpuBasic(VcpuBlob::default()));
    assert!(read_items(&with_items(XC_END, std::slice::from_ref(&empty_basic))).is_ok());
    let mut items = minimal_stream();
    items[BASIC] = empty_basic;
    let e = read_err(&write_items(&items));
    assert_eq!(order_rule(&e), OrderRule::MissingVcpu0Basic);
}

#[test]
fn policy_lengths() {
    assert_bad_length(
        &with_raw_libxc(SDE, libxc_type::X86_CPUID_POLICY, &[0; 20]),
        0x11,
    );
    assert_bad_length(
        &with_raw_libxc(SDE, libxc_type::X86_CPUID_POLICY, &[]),
        0x11,
    );
    assert_bad_length(&with_raw_libxc(SDE, libxc_type::X86_MSR_POLICY, &[]), 0x12);
    assert_bad_length(
        &with_raw_libxc(SDE, libxc_type::X86_MSR_POLICY, &[0; 24]),
        0x12,
    );
}

fn p2m_body(start: u32, end: u32, frames: usize) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&start.to_le_bytes());
    b.extend_from_slice(&end.to_le_bytes());
    b.resize(8 + 8 * frames, 0);
    b
}

#[test]
fn p2m_frames_count_formula() {
    let ty = libxc_type::X86_PV_P2M_FRAMES;
    // end 1: one frame needed.
    assert_bad_length(&with_raw_libxc(P2M, ty, &p2m_body(0, 1, 2)), ty);
    assert_bad_length(&with_raw_libxc(P2M, ty, &p2m_body(0, 1, 0)), ty);
    assert_bad_length(&with_raw_libxc(P2M, ty, &[0; 12]), ty);
    // With 512 entries per frame, pfns 0..=512 need two frames, 511..=1023 two, and
    // 512..=1023 one.
    let mut items = minimal_stream();
    items.remove(P2M);
    let mut w = StreamWriter::new(Vec::new());
    for item in &items[..P2M] {
        w.write_item(item).unwrap();
    }
    raw(&mut w, Layer::Libxc, ty, &p2m_body(0, 512, 1));
    let e = read_err(&w.into_inner());
    assert!(
        matches!(
            e,
            StreamError::BadLength {
                rule: LengthRule::Exactly(24),
                ..
            }
        ),
        "{e:?}"
    );
    let ok = with_raw_libxc(P2M, ty, &p2m_body(512, 1023, 1));
    assert!(read_items(&ok).is_ok());
    let ok = with_raw_libxc(P2M, ty, &p2m_body(511, 1023, 2));
    assert!(read_items(&ok).is_ok());
    let e = read_err(&with_raw_libxc(P2M, ty, &p2m_body(2, 1, 1)));
    assert!(matches!(
        e,
        StreamError::P2mRange {
            start: 2,
            end: 1,
            ..
        }
    ));
}

// ---- PAGE_DATA ----

fn page_data_body(count: u32, entries: &[u64], pages: usize) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&count.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    for e in entries {
        b.extend_from_slice(&e.to_le_bytes());
    }
    b.resize(b.len() + pages * PAGE_SIZE, 0xab);
    b
}

#[test]
fn page_data_count_0_and_1025() {
    let ty = libxc_type::PAGE_DATA;
    let e = read_err(&with_raw_libxc(PAGES, ty, &page_data_body(0, &[0], 0)));
    assert!(
        matches!(e, StreamError::PageDataCount { count: 0, .. }),
        "{e:?}"
    );
    let entries = vec![0xF000_0000_0000_0000u64; 1025];
    let e = read_err(&with_raw_libxc(
        PAGES,
        ty,
        &page_data_body(1025, &entries, 0),
    ));
    assert!(
        matches!(e, StreamError::PageDataCount { count: 1025, .. }),
        "{e:?}"
    );
    // 1024 is fine (all XTAB, no data).
    let entries = vec![0xF000_0000_0000_0001u64; 1024];
    assert!(read_items(&with_raw_libxc(
        PAGES,
        ty,
        &page_data_body(1024, &entries, 0)
    ))
    .is_ok());
}

#[test]
fn page_data_lengths() {
    let ty = libxc_type::PAGE_DATA;
    // Too short for the header, for the pfns, for the data; too long for the data.
    assert_bad_length(&with_raw_libxc(PAGES, ty, &[1, 0, 0, 0, 0, 0, 0, 0]), ty);
    assert_bad_length(
        &with_raw_libxc(PAGES, ty, &page_data_body(2, &[0xF000_0000_0000_0000], 0)),
        ty,
    );
    assert_bad_length(&with_raw_libxc(PAGES, ty, &page_data_body(1, &[0], 0)), ty);
    assert_bad_length(&with_raw_libxc(PAGES, ty, &page_data_body(1, &[0], 2)), ty);
    assert_bad_length(
        &with_raw_libxc(PAGES, ty, &page_data_body(1, &[0xF000_0000_0000_0000], 1)),
        ty,
    );
    let mut body = page_data_body(1, &[0], 1);
    body.truncate(body.len() - 8);
    assert_bad_length(&with_raw_libxc(PAGES, ty, &body), ty);
}

#[test]
fn page_data_reserved_pfn_bits() {
    let ty = libxc_type::PAGE_DATA;
    let raw_entry = (0x3u64 << 52) | 0x42;
    let bytes = with_raw_libxc(PAGES, ty, &page_data_body(1, &[raw_entry | 0xF << 60], 0));
    let e = read_err(&bytes);
    assert!(
        matches!(
            e,
            StreamError::PfnReservedBits {
                pfn: 0x42,
                bits: 3,
                index: 0,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "libxc PAGE_DATA record at offset {:#x}: pfn 0x42 (entry 0) has reserved bits \
             0x3 set (bits 52-59)",
            offset_of(PAGES)
        )
    );
    for bit in 52..60 {
        let bytes = with_raw_libxc(PAGES, ty, &page_data_body(1, &[1u64 << bit | 1], 1));
        assert!(matches!(
            read_err(&bytes),
            StreamError::PfnReservedBits { .. }
        ));
    }
}

#[test]
fn page_data_invalid_type_nibbles() {
    let ty = libxc_type::PAGE_DATA;
    for nibble in 5u64..=8 {
        let entries = [0xF000_0000_0000_0000, (nibble << 60) | 1];
        let bytes = with_raw_libxc(PAGES, ty, &page_data_body(2, &entries, 1));
        let e = read_err(&bytes);
        assert!(
            matches!(e, StreamError::InvalidPageType { nibble: n, index: 1, pfn: 1, .. } if u64::from(n) == nibble),
            "{e:?}"
        );
    }
}

#[test]
fn page_data_reserved_header_field() {
    let mut body = page_data_body(1, &[0xF000_0000_0000_0001], 0);
    body[4] = 1;
    let e = read_err(&with_raw_libxc(PAGES, libxc_type::PAGE_DATA, &body));
    assert!(
        matches!(e, StreamError::ReservedField { value: 1, .. }),
        "{e:?}"
    );
}

#[test]
fn page_data_pfn_beyond_p2m() {
    // The minimal stream's p2m ends at pfn 1.
    let bytes = with_raw_libxc(
        PAGES,
        libxc_type::PAGE_DATA,
        &page_data_body(1, &[0xF000_0000_0000_0002], 0),
    );
    let e = read_err(&bytes);
    assert!(
        matches!(
            e,
            StreamError::PfnOutOfRange {
                pfn: 2,
                max_pfn: 1,
                ..
            }
        ),
        "{e:?}"
    );
}

// ---- other record contents ----

#[test]
fn pv_info_pairs() {
    for (w, l) in [(8u8, 3u8), (4, 4), (2, 2), (0, 0), (8, 5)] {
        let e = read_err(&with_raw_libxc(PV_INFO, 2, &[w, l, 0, 0, 0, 0, 0, 0]));
        assert!(
            matches!(e, StreamError::InvalidPvInfo { width, levels, .. } if (width, levels) == (w, l))
        );
    }
    let e = read_err(&with_raw_libxc(PV_INFO, 2, &[4, 3, 0, 0, 0, 0, 0, 0]));
    assert!(matches!(
        e,
        StreamError::UnsupportedPvInfo {
            width: 4,
            levels: 3,
            ..
        }
    ));
    assert!(e.to_string().contains("not supported"), "{e}");
    let e = read_err(&with_raw_libxc(PV_INFO, 2, &[8, 4, 0, 0, 0, 0, 0, 1]));
    assert!(matches!(e, StreamError::ReservedField { .. }), "{e:?}");
}

#[test]
fn reserved_fields_in_records() {
    let mut tsc = vec![0u8; 24];
    tsc[20] = 1;
    let e = read_err(&with_raw_libxc(BASIC, libxc_type::X86_TSC_INFO, &tsc));
    assert!(matches!(e, StreamError::ReservedField { .. }), "{e:?}");
    let mut basic = vec![0u8; 8 + VCPU_BASIC_SIZE_64];
    basic[4] = 1;
    let e = read_err(&with_raw_libxc(
        BASIC,
        libxc_type::X86_PV_VCPU_BASIC,
        &basic,
    ));
    assert!(matches!(e, StreamError::ReservedField { .. }), "{e:?}");
}

// ---- record order ----

#[test]
fn p2m_frames_needs_pv_info_and_static_data_end() {
    let mut items = minimal_stream();
    items.remove(PV_INFO);
    assert_eq!(
        order_rule(&read_err(&write_items(&items))),
        OrderRule::NeedsPvInfo
    );
    let mut items = minimal_stream();
    items.remove(SDE);
    assert_eq!(
        order_rule(&read_err(&write_items(&items))),
        OrderRule::NeedsStaticDataEnd
    );
}

#[test]
fn page_data_needs_p2m_frames() {
    let mut items = minimal_stream();
    items.remove(P2M);
    let e = read_err(&write_items(&items));
    assert_eq!(order_rule(&e), OrderRule::NeedsP2mFrames);
    assert_eq!(e.at().part, Part::Record(libxc_type::PAGE_DATA));
}

#[test]
fn vcpu_records_need_page_data_and_static_data_end() {
    let mut items = minimal_stream();
    items.remove(PAGES);
    assert_eq!(
        order_rule(&read_err(&write_items(&items))),
        OrderRule::NeedsPageData
    );
    let basic = minimal_stream()[BASIC].clone();
    let bytes = with_items(SDE, &[basic]);
    assert_eq!(order_rule(&read_err(&bytes)), OrderRule::NeedsStaticDataEnd);
}

#[test]
fn shared_info_needs_pv_info_and_tsc_needs_static_data_end() {
    let shinfo = libxc(LibxcRecord::SharedInfo(Box::new([0; PAGE_SIZE])));
    let bytes = with_items(PV_INFO, &[shinfo]);
    assert_eq!(order_rule(&read_err(&bytes)), OrderRule::NeedsPvInfo);
    let tsc = libxc(LibxcRecord::X86TscInfo(X86TscInfo::default()));
    let bytes = with_items(SDE, &[tsc]);
    assert_eq!(order_rule(&read_err(&bytes)), OrderRule::NeedsStaticDataEnd);
}

#[test]
fn static_records_once_and_before_static_data_end() {
    let info = libxc(LibxcRecord::X86PvInfo(X86PvInfo::X86_64));
    assert_eq!(
        order_rule(&read_err(&with_items(SDE, std::slice::from_ref(&info)))),
        OrderRule::Duplicate
    );
    let mut items = minimal_stream();
    items.swap(PV_INFO, SDE);
    assert_eq!(
        order_rule(&read_err(&write_items(&items))),
        OrderRule::AfterStaticDataEnd
    );
    let cpuid = libxc(LibxcRecord::X86CpuidPolicy(vec![CpuidLeaf::default()]));
    let msr = libxc(LibxcRecord::X86MsrPolicy(vec![MsrEntry::default()]));
    assert!(read_items(&with_items(SDE, &[cpuid.clone(), msr.clone()])).is_ok());
    assert_eq!(
        order_rule(&read_err(&with_items(P2M, std::slice::from_ref(&cpuid)))),
        OrderRule::AfterStaticDataEnd
    );
    assert_eq!(
        order_rule(&read_err(&with_items(SDE, &[cpuid.clone(), cpuid]))),
        OrderRule::Duplicate
    );
    assert_eq!(
        order_rule(&read_err(&with_items(SDE, &[msr.clone(), msr]))),
        OrderRule::Duplicate
    );
    let sde = libxc(LibxcRecord::StaticDataEnd);
    assert_eq!(
        order_rule(&read_err(&with_items(P2M, &[sde]))),
        OrderRule::Duplicate
    );
}

fn v2_minimal() -> Vec<Item> {
    let mut items = minimal_stream();
    items[IMAGE_HDR] = Item::ImageHeader(ImageHeader { version: 2 });
    items.remove(SDE);
    items
}

#[test]
fn v2_accepts_inferred_and_rejects_v3_records() {
    let items = v2_minimal();
    assert_eq!(read_items(&write_items(&items)).unwrap(), items);
    let mut with_sde = v2_minimal();
    with_sde.insert(SDE, libxc(LibxcRecord::StaticDataEnd));
    assert_eq!(
        order_rule(&read_err(&write_items(&with_sde))),
        OrderRule::NotInV2
    );
    let mut with_cpuid = v2_minimal();
    with_cpuid.insert(
        SDE,
        libxc(LibxcRecord::X86CpuidPolicy(vec![CpuidLeaf::default()])),
    );
    assert_eq!(
        order_rule(&read_err(&write_items(&with_cpuid))),
        OrderRule::NotInV2
    );
    // In v2, memory before P2M_FRAMES still fails.
    let mut items = v2_minimal();
    items.remove(P2M - 1); // v2_minimal has no STATIC_DATA_END
    assert_eq!(
        order_rule(&read_err(&write_items(&items))),
        OrderRule::NeedsP2mFrames
    );
}

#[test]
fn page_data_after_vcpu_state() {
    let pages = minimal_stream()[PAGES].clone();
    let e = read_err(&with_items(XC_END, &[pages]));
    assert_eq!(order_rule(&e), OrderRule::AfterVcpuState);
    let tsc = libxc(LibxcRecord::X86TscInfo(X86TscInfo::default()));
    let pages = minimal_stream()[PAGES].clone();
    let e = read_err(&with_items(BASIC, &[tsc, pages]));
    assert_eq!(order_rule(&e), OrderRule::AfterVcpuState);
    assert_eq!(
        order_rule(&read_err(&with_items(
            XC_END,
            &[libxc(LibxcRecord::Verify)]
        ))),
        OrderRule::AfterVcpuState
    );
}

#[test]
fn verify_record_then_pages() {
    let pages = minimal_stream()[PAGES].clone();
    let items = {
        let mut v = minimal_stream();
        v.splice(BASIC..BASIC, [libxc(LibxcRecord::Verify), pages]);
        v
    };
    assert_eq!(read_items(&write_items(&items)).unwrap(), items);
}

#[test]
fn records_not_for_pv() {
    for r in [
        LibxcRecord::HvmContext(vec![1]),
        LibxcRecord::HvmParams(vec![HvmParam::default()]),
        LibxcRecord::Toolstack(vec![1]),
    ] {
        let e = read_err(&with_items(PAGES, &[libxc(r)]));
        assert_eq!(order_rule(&e), OrderRule::NotForPv);
    }
    let dirty = libxc(LibxcRecord::CheckpointDirtyPfnList(vec![Pfn::new(1)]));
    assert_eq!(
        order_rule(&read_err(&with_items(PAGES, &[dirty]))),
        OrderRule::BackChannelOnly
    );
    let e = read_err(&with_items(XC_END, &[libxc(LibxcRecord::Checkpoint)]));
    assert_eq!(order_rule(&e), OrderRule::CheckpointInPlainStream);
}

#[test]
fn end_needs_vcpu0_basic() {
    let mut items = minimal_stream();
    items.remove(BASIC);
    let e = read_err(&write_items(&items));
    assert_eq!(order_rule(&e), OrderRule::MissingVcpu0Basic);
    let mut items = minimal_stream();
    items[BASIC] = libxc(LibxcRecord::X86PvVcpuBasic(VcpuBlob {
        vcpu_id: 1,
        context: vec![0; VCPU_BASIC_SIZE_64],
    }));
    assert_eq!(
        order_rule(&read_err(&write_items(&items))),
        OrderRule::MissingVcpu0Basic
    );
}

#[test]
fn libxl_order_rules() {
    // END with no libxc stream.
    let mut w = prefix(2);
    w.write_libxl_record(&LibxlRecord::End).unwrap();
    assert_eq!(
        order_rule(&read_err(&w.into_inner())),
        OrderRule::NoLibxcStream
    );
    // A second LIBXC_CONTEXT.
    let bytes = with_items(XL_END, &[Item::Libxl(LibxlRecord::LibxcContext)]);
    assert_eq!(order_rule(&read_err(&bytes)), OrderRule::Duplicate);
    // Emulator records (HVM only).
    let emu = Item::Libxl(LibxlRecord::EmulatorContext(EmulatorRecord::default()));
    assert_eq!(
        order_rule(&read_err(&with_items(XL_END, &[emu]))),
        OrderRule::EmulatorRecordForPv
    );
    let emu = Item::Libxl(LibxlRecord::EmulatorXenstoreData(EmulatorRecord::default()));
    assert_eq!(
        order_rule(&read_err(&with_items(2, &[emu]))),
        OrderRule::EmulatorRecordForPv
    );
    // Checkpoint records outside a checkpoint.
    let ce = Item::Libxl(LibxlRecord::CheckpointEnd);
    assert_eq!(
        order_rule(&read_err(&with_items(XL_END, &[ce]))),
        OrderRule::UnexpectedCheckpointEnd
    );
    let cs = Item::Libxl(LibxlRecord::CheckpointState(0));
    assert_eq!(
        order_rule(&read_err(&with_items(XL_END, &[cs]))),
        OrderRule::UnexpectedCheckpointState
    );
}

#[test]
fn checkpointed_stream() {
    let pages = minimal_stream()[PAGES].clone();
    let basic = minimal_stream()[BASIC].clone();
    let extra = [
        libxc(LibxcRecord::Checkpoint),
        Item::Libxl(LibxlRecord::CheckpointEnd),
        pages,
        basic,
    ];
    let mut items = minimal_stream();
    items.splice(XC_END..XC_END, extra);
    let bytes = write_items(&items);
    let opts = ReaderOptions {
        checkpointed: true,
        ..ReaderOptions::default()
    };
    assert_eq!(read_with(&bytes, opts).unwrap(), items);
    assert_eq!(
        order_rule(&read_err(&bytes)),
        OrderRule::CheckpointInPlainStream
    );
}

#[test]
fn data_after_end() {
    let mut bytes = minimal_bytes();
    let end = bytes.len() as u64;
    bytes.push(0);
    let e = read_err(&bytes);
    assert!(
        matches!(e, StreamError::DataAfterEnd { at } if at.offset == end && at.layer == Layer::Libxl)
    );
    // A bare libxc stream ends at its END.
    let items = minimal_stream();
    let mut libxc_only = write_items(&items[IMAGE_HDR..XL_END]);
    libxc_only.extend_from_slice(&[0; 8]);
    let opts = ReaderOptions {
        format: StreamFormat::Libxc,
        ..ReaderOptions::default()
    };
    let e = read_with(&libxc_only, opts).unwrap_err();
    assert!(matches!(e, StreamError::DataAfterEnd { at } if at.layer == Layer::Libxc));
}

#[test]
fn reader_stops_after_an_error() {
    let bytes = patched(offset_of(DOMAIN_HDR) + 4, &[13]);
    let mut r = StreamReader::new(bytes.as_slice());
    let mut n = 0;
    for item in r.by_ref() {
        if item.is_err() {
            break;
        }
        n += 1;
    }
    assert_eq!(n, DOMAIN_HDR);
    assert!(r.next_item().unwrap().is_none());
}

// ---- truncation and allocation bounds ----

#[test]
fn truncation_at_every_byte() {
    let bytes = minimal_bytes();
    // The page data of PAGE_DATA's one data-carrying entry (pfn 0, entry 0): the bytes
    // after the record header, count/reserved and two pfn entries.
    let pages = offset_of(PAGES) as usize + 8 + 8 + 16;
    for cut in 0..bytes.len() {
        match read_items(&bytes[..cut]) {
            Err(StreamError::Truncated { at, needed }) => {
                assert!(needed > 0);
                assert!(at.offset <= cut as u64, "cut {cut}: {at}");
                assert!(
                    !(pages..pages + PAGE_SIZE).contains(&cut),
                    "cut {cut} in page data: {at}"
                );
            }
            Err(StreamError::PageDataTruncated {
                at,
                index,
                pfn,
                needed,
            }) => {
                assert!((pages..pages + PAGE_SIZE).contains(&cut), "cut {cut}");
                assert_eq!((index, pfn), (0, 0), "cut {cut}");
                assert_eq!(needed, (pages + PAGE_SIZE - cut) as u64, "cut {cut}");
                assert_eq!(at.offset, offset_of(PAGES), "cut {cut}");
            }
            other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
        }
    }
    assert!(read_items(&bytes).is_ok());
}

#[test]
fn truncation_in_page_data_names_the_pfn() {
    // Three pages with data (pfns 7, 9, 3) around an XTAB entry: a cut in the second
    // page's bytes names pfn 9, entry 2.
    let mut items = minimal_stream();
    items[P2M] = Item::Libxc(LibxcRecord::X86PvP2mFrames(X86PvP2mFrames {
        start_pfn: 0,
        end_pfn: 15,
        frames: vec![Pfn::new(1)],
    }));
    items[PAGES] = Item::Libxc(LibxcRecord::PageData(PageData {
        entries: vec![
            PageDataEntry::new(Pfn::new(7), PageType::NoTab),
            PageDataEntry::new(Pfn::new(8), PageType::XTab),
            PageDataEntry::new(Pfn::new(9), PageType::L1Tab),
            PageDataEntry::new(Pfn::new(3), PageType::NoTab),
        ],
        data: vec![0; 3 * PAGE_SIZE],
    }));
    let bytes = write_items(&items);
    let data = offset_of(PAGES) as usize + 16 + 4 * 8;
    let cut = data + PAGE_SIZE + 100;
    let e = read_err(&bytes[..cut]);
    assert_eq!(
        e.to_string(),
        format!(
            "libxc PAGE_DATA record at offset {:#x}: stream truncated in the data of pfn 0x9 \
             (entry 2): {} more byte(s) needed",
            offset_of(PAGES),
            2 * PAGE_SIZE - 100
        )
    );
    let e = read_err(&bytes[..data + 2 * PAGE_SIZE]);
    assert!(
        matches!(
            e,
            StreamError::PageDataTruncated {
                index: 3,
                pfn: 3,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn truncation_names_the_record() {
    let bytes = minimal_bytes();
    let cut = offset_of(PAGES) as usize + 20;
    let e = read_err(&bytes[..cut]);
    assert_eq!(
        e.to_string(),
        format!(
            "libxc PAGE_DATA record at offset {:#x}: stream truncated: 12 more byte(s) needed",
            offset_of(PAGES)
        )
    );
    let e = read_err(&bytes[..offset_of(PAGES) as usize + 3]);
    assert!(matches!(e, StreamError::Truncated { at, needed: 5 } if at.part == Part::RecordHeader));
}

/// Reads `bytes`, expecting `Truncated` quickly and without a large reservation.
fn assert_bounded(bytes: &[u8]) {
    let start = Instant::now();
    let mut r = StreamReader::new(bytes);
    let err = loop {
        match r.next_item() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("stream accepted"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, StreamError::Truncated { .. }), "{err:?}");
    assert!(
        r.max_reserved() <= 64 << 10,
        "reserved {} bytes",
        r.max_reserved()
    );
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn huge_claims_do_not_allocate() {
    // An optional record claiming the maximum length.
    let mut w = prefix(PAGES);
    w.write_raw_record(Layer::Libxc, 0x8000_0001, REC_LENGTH_MAX, &[1; 100], &[])
        .unwrap();
    assert_bounded(&w.into_inner());
    // PAGE_DATA claiming 1024 pages of data, truncated in the pfn list.
    let mut w = prefix(PAGES);
    let len = 8 + 8 * 1024 + 4096 * 1024;
    let body = page_data_body(1024, &[0; 16], 0);
    w.write_raw_record(Layer::Libxc, libxc_type::PAGE_DATA, len, &body, &[])
        .unwrap();
    assert_bounded(&w.into_inner());
    // X86_PV_P2M_FRAMES for pfns 0..=u32::MAX (8M + 1 frames), truncated.
    let mut w = prefix(P2M);
    let frames = u64::from(u32::MAX) / 512 + 1;
    let len = (8 + 8 * frames) as u32;
    w.write_raw_record(
        Layer::Libxc,
        libxc_type::X86_PV_P2M_FRAMES,
        len,
        &p2m_body(0, u32::MAX, 2),
        &[],
    )
    .unwrap();
    assert_bounded(&w.into_inner());
    // A CPUID policy of 128 MiB, a vCPU XSAVE blob of 128 MiB.
    for (n, ty, len) in [
        (SDE, libxc_type::X86_CPUID_POLICY, 24 * 5_000_000),
        (XC_END, libxc_type::X86_PV_VCPU_XSAVE, REC_LENGTH_MAX - 16),
    ] {
        let mut w = prefix(n);
        w.write_raw_record(Layer::Libxc, ty, len, &[0; 64], &[])
            .unwrap();
        assert_bounded(&w.into_inner());
    }
    // An xl config claiming 16 MiB.
    let mut b = minimal_bytes();
    b[44..48].copy_from_slice(&XL_OPTIONAL_DATA_MAX.to_le_bytes());
    b[48..52].copy_from_slice(&(XL_OPTIONAL_DATA_MAX - 4).to_le_bytes());
    b.truncate(200);
    assert_bounded(&b);
}

// ---- writer checks ----

fn write_err(record: &LibxcRecord) -> StreamError {
    let mut w = StreamWriter::new(Vec::new());
    let e = w
        .write_libxc_record(record)
        .expect_err("writer must refuse");
    assert_eq!(w.offset(), 0);
    assert!(w.into_inner().is_empty(), "nothing written");
    e
}

#[test]
fn writer_refuses_bad_page_data() {
    let e = write_err(&LibxcRecord::PageData(PageData::default()));
    assert!(matches!(e, StreamError::PageDataCount { count: 0, .. }));
    let entries = vec![PageDataEntry::new(Pfn::new(0), PageType::XTab); 1025];
    let e = write_err(&LibxcRecord::PageData(PageData {
        entries,
        data: vec![],
    }));
    assert!(matches!(e, StreamError::PageDataCount { count: 1025, .. }));
    let e = write_err(&LibxcRecord::PageData(PageData {
        entries: vec![PageDataEntry::new(Pfn::new(0), PageType::NoTab)],
        data: vec![],
    }));
    assert!(matches!(
        e,
        StreamError::PageDataMismatch {
            with_data: 1,
            bytes: 0,
            ..
        }
    ));
    let e = write_err(&LibxcRecord::PageData(PageData {
        entries: vec![PageDataEntry::new(Pfn::new(0), PageType::XTab)],
        data: vec![0; PAGE_SIZE],
    }));
    assert!(matches!(
        e,
        StreamError::PageDataMismatch { with_data: 0, .. }
    ));
    let e = write_err(&LibxcRecord::PageData(PageData {
        entries: vec![PageDataEntry::new(Pfn::new(1 << 52), PageType::XTab)],
        data: vec![],
    }));
    assert!(matches!(
        e,
        StreamError::PfnTooLarge {
            pfn: 0x0010_0000_0000_0000,
            ..
        }
    ));
    let mut w = StreamWriter::new(Vec::new());
    let e = w.write_page_data(&[], &[]).unwrap_err();
    assert!(matches!(e, StreamError::PageDataCount { .. }));
}

#[test]
fn writer_refuses_other_bad_records() {
    let e = write_err(&LibxcRecord::X86PvInfo(X86PvInfo {
        guest_width: 8,
        pt_levels: 3,
    }));
    assert!(matches!(e, StreamError::InvalidPvInfo { .. }));
    let e = write_err(&LibxcRecord::X86PvP2mFrames(X86PvP2mFrames {
        start_pfn: 0,
        end_pfn: 512,
        frames: vec![Pfn::new(1)],
    }));
    assert!(matches!(
        e,
        StreamError::P2mFrameCount {
            frames: 1,
            expected: 2,
            ..
        }
    ));
    let e = write_err(&LibxcRecord::X86PvP2mFrames(X86PvP2mFrames {
        start_pfn: 3,
        end_pfn: 2,
        frames: vec![Pfn::new(1)],
    }));
    assert!(matches!(e, StreamError::P2mRange { .. }));
    let e = write_err(&LibxcRecord::X86PvVcpuBasic(VcpuBlob {
        vcpu_id: 0,
        context: vec![0; 100],
    }));
    assert!(matches!(e, StreamError::BadLength { .. }));
    let e = write_err(&LibxcRecord::X86PvVcpuExtended(VcpuBlob {
        vcpu_id: 0,
        context: vec![0; 129],
    }));
    assert!(matches!(e, StreamError::BadLength { .. }));
    let e = write_err(&LibxcRecord::X86PvVcpuXsave(VcpuBlob {
        vcpu_id: 0,
        context: vec![0; 15],
    }));
    assert!(matches!(e, StreamError::BadLength { .. }));
    let e = write_err(&LibxcRecord::X86CpuidPolicy(vec![]));
    assert!(matches!(e, StreamError::BadLength { .. }));
    let e = write_err(&LibxcRecord::HvmContext(vec![]));
    assert!(matches!(e, StreamError::BadLength { .. }));
    let e = write_err(&LibxcRecord::Unknown {
        type_: 0x13,
        body: vec![],
    });
    assert!(matches!(
        e,
        StreamError::UnknownMandatoryRecord { ty: 0x13, .. }
    ));
    // calloc'd, so no memory is touched.
    let e = write_err(&LibxcRecord::Toolstack(vec![
        0;
        REC_LENGTH_MAX as usize + 1
    ]));
    assert!(matches!(e, StreamError::RecordTooLong { .. }));
    let mut w = StreamWriter::new(Vec::new());
    let e = w
        .write_libxl_record(&LibxlRecord::Unknown {
            type_: 9,
            body: vec![],
        })
        .unwrap_err();
    assert!(
        matches!(e, StreamError::UnknownMandatoryRecord { at, .. } if at.layer == Layer::Libxl)
    );
    let e = w
        .write_image_header(&ImageHeader { version: 4 })
        .unwrap_err();
    assert!(matches!(e, StreamError::LibxcBadVersion { found: 4, .. }));
    let e = w
        .write_xl_header(&XlHeader {
            config: Some(vec![0; XL_OPTIONAL_DATA_MAX as usize]),
            ..XlHeader::default()
        })
        .unwrap_err();
    assert!(matches!(e, StreamError::XlOptionalDataTooLong { .. }));
    assert!(w.into_inner().is_empty());
}

#[test]
fn writer_uses_the_written_guest_width_for_p2m() {
    let mut w = StreamWriter::new(Vec::new());
    w.write_libxc_record(&LibxcRecord::X86PvInfo(X86PvInfo {
        guest_width: 4,
        pt_levels: 3,
    }))
    .unwrap();
    // 1024 entries per frame for a 32-bit guest: pfns 0..=1023 fit in one frame.
    w.write_libxc_record(&LibxcRecord::X86PvP2mFrames(X86PvP2mFrames {
        start_pfn: 0,
        end_pfn: 1023,
        frames: vec![Pfn::new(1)],
    }))
    .unwrap();
}
