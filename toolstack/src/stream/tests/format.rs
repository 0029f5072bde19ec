//! Byte-exact checks against the numbers in shared/xen/stream.md (written from the spec,
//! not from the writer's output).

use super::*;

/// The minimal stream of `minimal_stream()`, byte by byte, as stream.md describes it.
fn minimal_stream_bytes() -> Vec<u8> {
    let mut b: Vec<u8> = Vec::new();
    // §2.1 xl header: 32-byte magic (27 chars, "\n", " ", NUL, " ", "\r").
    let magic = b"Xen saved domain, xl format\n \x00 \r";
    assert_eq!(magic.len(), 32);
    b.extend_from_slice(magic);
    b.extend_from_slice(&[0x04, 0x03, 0x02, 0x01]); // byteorder 0x01020304, LE
    b.extend_from_slice(&[0x03, 0, 0, 0]); // mandatory: JSON | STREAMv2
    b.extend_from_slice(&[0, 0, 0, 0]); // optional flags
    b.extend_from_slice(&[0x07, 0, 0, 0]); // optional_data_len = 4 + 3
    b.extend_from_slice(&[0x03, 0, 0, 0]); // config_len
    b.extend_from_slice(b"{}\x00"); // JSON with trailing NUL
    assert_eq!(b.len(), 55); // the libxl stream starts unaligned
                             // §2.2 libxl header, big-endian.
    b.extend_from_slice(&[0x4C, 0x69, 0x62, 0x78, 0x6C, 0x46, 0x6D, 0x74]); // "LibxlFmt"
    b.extend_from_slice(&[0, 0, 0, 2]); // version 2
    b.extend_from_slice(&[0, 0, 0, 0]); // options: LE
                                        // §2.3 LIBXC_CONTEXT (type 1, length 0).
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    // §1.1 image header, big-endian.
    b.extend_from_slice(&[0xFF; 8]); // marker
    b.extend_from_slice(&[0x58, 0x45, 0x4E, 0x46]); // "XENF"
    b.extend_from_slice(&[0, 0, 0, 3]); // version 3
    b.extend_from_slice(&[0, 0]); // options: LE
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // reserved
                                              // §1.2 domain header, LE.
    b.extend_from_slice(&[1, 0, 0, 0]); // x86 PV
    b.extend_from_slice(&[12, 0]); // page_shift
    b.extend_from_slice(&[0, 0]); // reserved
    b.extend_from_slice(&[4, 0, 0, 0, 17, 0, 0, 0]); // Xen 4.17
                                                     // X86_PV_INFO: width 8, levels 4.
    b.extend_from_slice(&[2, 0, 0, 0, 8, 0, 0, 0, 8, 4, 0, 0, 0, 0, 0, 0]);
    // STATIC_DATA_END.
    b.extend_from_slice(&[0x10, 0, 0, 0, 0, 0, 0, 0]);
    // X86_PV_P2M_FRAMES: start 0, end 1, one frame (pfn 1).
    b.extend_from_slice(&[3, 0, 0, 0, 16, 0, 0, 0]);
    b.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0]);
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    // PAGE_DATA: 2 pfns (pfn 0 normal with data, pfn 1 XTAB), length 8 + 16 + 4096.
    b.extend_from_slice(&[1, 0, 0, 0, 0x18, 0x10, 0, 0]);
    b.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x00]); // pfn 0, type 0x0
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0xF0]); // pfn 1, type 0xF
    b.extend_from_slice(&[0x5a; 4096]);
    // X86_PV_VCPU_BASIC: vcpu 0, 5168 bytes.
    b.extend_from_slice(&[4, 0, 0, 0]);
    b.extend_from_slice(&(8u32 + 5168).to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[0; 5168]);
    // libxc END, libxl END.
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[0; 8]);
    b
}

#[test]
fn minimal_stream_is_byte_exact() {
    let written = write_items(&minimal_stream());
    let expected = minimal_stream_bytes();
    assert_eq!(written.len(), expected.len());
    for (i, (w, e)) in written.iter().zip(&expected).enumerate() {
        assert_eq!(w, e, "byte {i:#x}");
    }
    assert_eq!(read_items(&expected).unwrap(), minimal_stream());
}

#[test]
fn header_offsets_in_the_minimal_stream() {
    let read = read_all(minimal_stream_bytes().as_slice(), ReaderOptions::default()).unwrap();
    let offsets: Vec<u64> = read.iter().map(|l| l.offset).collect();
    // xl 0; libxl 48+7; LIBXC_CONTEXT +16; image +8; domain +24; PV_INFO +16; ...
    assert_eq!(
        &offsets[..8],
        &[0, 55, 71, 79, 103, 119, 135, 143],
        "{offsets:?}"
    );
}

fn record_bytes(record: &LibxcRecord) -> Vec<u8> {
    let mut w = StreamWriter::new(Vec::new());
    w.write_libxc_record(record).unwrap();
    w.into_inner()
}

#[test]
fn page_data_entry_encoding() {
    // Type nibble in bits 60-63, pfn in bits 0-51 (stream.md §1.5).
    let e = PageDataEntry::new(Pfn::new(0x42), PageType::L4Pinned);
    assert_eq!(e.to_raw(), 0xC000_0000_0000_0042);
    let e = PageDataEntry::new(Pfn::new(0x000F_FFFF_FFFF_FFFF), PageType::L1Tab);
    assert_eq!(e.to_raw(), 0x1000_0000_0000_0000 | 0x000F_FFFF_FFFF_FFFF);
    assert_eq!(PageDataEntry::from_raw(0x0010_0000_0000_0000), None); // bit 52
    assert_eq!(PageDataEntry::from_raw(0x0800_0000_0000_0000), None); // bit 59
    assert_eq!(PageDataEntry::from_raw(0x8000_0000_0000_0001), None); // type 0x8
    assert_eq!(PageDataEntry::from_raw(0x5000_0000_0000_0001), None); // type 0x5
}

#[test]
fn tsc_info_layout() {
    let bytes = record_bytes(&LibxcRecord::X86TscInfo(X86TscInfo {
        mode: 1,
        khz: 0x0102_0304,
        nsec: 0x1122_3344_5566_7788,
        incarnation: 7,
    }));
    let mut expected = vec![8, 0, 0, 0, 24, 0, 0, 0];
    expected.extend_from_slice(&[1, 0, 0, 0, 4, 3, 2, 1]);
    expected.extend_from_slice(&[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    expected.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes, expected);
}

#[test]
fn padding_is_to_eight_bytes_and_excluded_from_length() {
    let bytes = record_bytes(&LibxcRecord::Unknown {
        type_: 0x8000_0123,
        body: vec![0xaa, 0xbb, 0xcc],
    });
    assert_eq!(
        bytes,
        [0x23, 0x01, 0x00, 0x80, 3, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0]
    );
    let mut w = StreamWriter::new(Vec::new());
    w.write_libxl_record(&LibxlRecord::CheckpointState(2))
        .unwrap();
    assert_eq!(
        w.into_inner(),
        [5, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
    );
    for len in 0..20u64 {
        assert_eq!((len + padding_for(len)) % 8, 0);
        assert!(padding_for(len) < 8);
    }
}

#[test]
fn vcpu_and_policy_layouts() {
    let bytes = record_bytes(&LibxcRecord::X86PvVcpuMsrs(VcpuMsrs {
        vcpu_id: 3,
        msrs: vec![VcpuMsr {
            index: 0xc000_0080,
            reserved: 0,
            value: 0x0d01,
        }],
    }));
    let mut expected = vec![0x0c, 0, 0, 0, 24, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0];
    expected.extend_from_slice(&[0x80, 0, 0, 0xc0, 0, 0, 0, 0, 0x01, 0x0d, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes, expected);

    let bytes = record_bytes(&LibxcRecord::X86CpuidPolicy(vec![CpuidLeaf {
        leaf: 7,
        subleaf: 0,
        a: 1,
        b: 2,
        c: 3,
        d: 4,
    }]));
    assert_eq!(&bytes[..8], &[0x11, 0, 0, 0, 24, 0, 0, 0]);
    assert_eq!(&bytes[8..16], &[7, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes.len(), 32);
}

#[test]
fn constants_match_the_spec() {
    assert_eq!(&XL_MAGIC[..27], b"Xen saved domain, xl format");
    assert_eq!(&XL_MAGIC[27..], &[b'\n', b' ', 0, b' ', b'\r']);
    assert_eq!(LIBXL_IDENT.to_be_bytes(), *b"LibxlFmt");
    assert_eq!(IHDR_ID.to_be_bytes(), *b"XENF");
    assert_eq!(REC_LENGTH_MAX, 128 * 1024 * 1024);
    assert_eq!(libxc_type::X86_MSR_POLICY, 0x12);
    assert_eq!(libxl_type::CHECKPOINT_STATE, 5);
    assert_eq!(
        core::mem::size_of::<VcpuGuestContext>(),
        VCPU_BASIC_SIZE_64,
        "BASIC blob is vcpu_guest_context"
    );
    assert_eq!(core::mem::size_of::<DomctlExtVcpuContext>(), 64);
}
