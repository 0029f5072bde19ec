//! Tests of the stream module: byte-exact headers from the spec, a realistic synthetic PV
//! stream (checked by Xen's own `verify-stream-v2`), one negative test per reader check,
//! round-trip and fuzz property tests.

mod format;
mod negative;
mod props;
mod verify;

use hypervisor::abi::domctl::DomctlExtVcpuContext;
use hypervisor::abi::shared::{SharedInfo, StartInfo, START_INFO_MAGIC_X86_64};
use hypervisor::abi::vcpu::{VcpuGuestContext, VGCF_I387_VALID, VGCF_IN_KERNEL};
use hypervisor::Pfn;
use zerocopy::{FromZeros, IntoBytes};

use super::*;

/// Writes items with a fresh writer.
pub(super) fn write_items(items: &[Item]) -> Vec<u8> {
    let mut w = StreamWriter::new(Vec::new());
    for item in items {
        w.write_item(item).expect("valid item");
    }
    w.into_inner()
}

/// Reads an xl-format stream with default options, dropping offsets.
pub(super) fn read_items(bytes: &[u8]) -> Result<Vec<Item>, StreamError> {
    read_with(bytes, ReaderOptions::default())
}

pub(super) fn read_with(bytes: &[u8], opts: ReaderOptions) -> Result<Vec<Item>, StreamError> {
    Ok(read_all(bytes, opts)?.into_iter().map(|l| l.item).collect())
}

/// A JSON domain config like the one `xl save` stores (trimmed).
pub(super) const CONFIG_JSON: &str = r#"{
    "c_info": {"type": "pv", "name": "toy", "uuid": "5f2b1a7e-0000-4000-8000-000000000001"},
    "b_info": {"max_vcpus": 1, "max_memkb": 128, "target_memkb": 128,
               "type.pv": {"kernel": "/boot/toy-guest"}}
}"#;

/// Page-table entry flags: present, rw, user, accessed, dirty.
const PTE_RW: u64 = 0x67;
/// Page-table entry flags for a mapping of a page table (read-only).
const PTE_RO: u64 = 0x65;

fn page_with(f: impl FnOnce(&mut [u64; 512])) -> Vec<u8> {
    let mut words = [0u64; 512];
    f(&mut words);
    words.as_bytes().to_vec()
}

/// Guest frames of the synthetic 32-page, 1-vCPU 64-bit PV guest.
pub(super) mod guest {
    /// start_info.
    pub const START_INFO: u64 = 0;
    /// Kernel page tables L4..L1 (L4 pinned).
    pub const KL4: u64 = 1;
    pub const KL3: u64 = 2;
    pub const KL2: u64 = 3;
    pub const KL1: u64 = 4;
    /// xenstore and console rings.
    pub const STORE: u64 = 5;
    pub const CONSOLE: u64 = 6;
    /// User page tables L4..L1 (all pinned).
    pub const UL4: u64 = 8;
    pub const UL3: u64 = 9;
    pub const UL2: u64 = 10;
    pub const UL1: u64 = 11;
    /// The guest's p2m (one frame covers all 32 pfns).
    pub const P2M: u64 = 12;
    /// Highest pfn; ballooned out (XTAB).
    pub const MAX_PFN: u64 = 31;
    pub const NR_PAGES: u64 = 32;
}

fn page_type(pfn: u64) -> PageType {
    use guest::*;
    match pfn {
        KL4 => PageType::L4Pinned,
        KL3 => PageType::L3Tab,
        KL2 => PageType::L2Tab,
        KL1 => PageType::L1Tab,
        UL4 => PageType::L4Pinned,
        UL3 => PageType::L3Pinned,
        UL2 => PageType::L2Pinned,
        UL1 => PageType::L1Pinned,
        MAX_PFN => PageType::XTab,
        _ => PageType::NoTab,
    }
}

/// The contents of a guest page as the saver writes it (page tables normalised to
/// PFNs; Xen's L4 slots 256-271 zero).
fn page_contents(pfn: u64) -> Vec<u8> {
    use guest::*;
    match pfn {
        START_INFO => {
            let mut si = StartInfo::new_zeroed();
            si.magic[..START_INFO_MAGIC_X86_64.len()].copy_from_slice(START_INFO_MAGIC_X86_64);
            si.nr_pages = NR_PAGES;
            // The guest converted its rings to PFNs before suspending.
            si.store_mfn = STORE;
            si.store_evtchn = 1;
            si.console_mfn = CONSOLE;
            si.console_evtchn = 2;
            si.pt_base = 0xffff_ffff_8000_0000 + (KL4 << 12);
            si.nr_pt_frames = 4;
            let mut page = si.as_bytes().to_vec();
            page.resize(PAGE_SIZE, 0);
            page
        }
        KL4 | UL4 => page_with(|t| t[511] = ((if pfn == KL4 { KL3 } else { UL3 }) << 12) | PTE_RW),
        KL3 | UL3 => page_with(|t| t[510] = ((if pfn == KL3 { KL2 } else { UL2 }) << 12) | PTE_RW),
        KL2 | UL2 => page_with(|t| t[0] = ((if pfn == KL2 { KL1 } else { UL1 }) << 12) | PTE_RW),
        KL1 | UL1 => page_with(|t| {
            for p in 0..MAX_PFN {
                let flags = if page_type(p).level().is_some() {
                    PTE_RO
                } else {
                    PTE_RW
                };
                t[p as usize] = (p << 12) | flags;
            }
        }),
        P2M => page_with(|t| {
            for p in 0..MAX_PFN {
                t[p as usize] = 0x4_2000 + p;
            }
            t[MAX_PFN as usize] = u64::MAX;
        }),
        _ => (0..PAGE_SIZE)
            .map(|i| (pfn as u8).wrapping_mul(31).wrapping_add(i as u8))
            .collect(),
    }
}

fn page_data_record(pfns: std::ops::RangeInclusive<u64>) -> LibxcRecord {
    let mut p = PageData::default();
    for pfn in pfns {
        let ty = page_type(pfn);
        p.entries.push(PageDataEntry::new(Pfn::new(pfn), ty));
        if ty.has_data() {
            p.data.extend_from_slice(&page_contents(pfn));
        }
    }
    LibxcRecord::PageData(p)
}

fn shared_info_page() -> Box<[u8; PAGE_SIZE]> {
    let mut s = SharedInfo::new_zeroed();
    s.arch.max_pfn = guest::NR_PAGES;
    s.arch.pfn_to_mfn_frame_list_list = 0x4_2020;
    s.vcpu_info[0].evtchn_upcall_mask = 1;
    s.evtchn_mask[0] = !0b110;
    let mut page = Box::new([0u8; PAGE_SIZE]);
    page[..core::mem::size_of::<SharedInfo>()].copy_from_slice(s.as_bytes());
    page
}

fn vcpu0_context() -> Vec<u8> {
    use guest::*;
    let mut c = VcpuGuestContext::new_zeroed();
    c.flags = VGCF_I387_VALID | VGCF_IN_KERNEL;
    // Suspended in SCHEDOP_shutdown: rdx = start_info (as a PFN), rax = 0.
    c.user_regs.rdx = START_INFO;
    c.user_regs.rip = 0xffff_ffff_8000_1000;
    c.user_regs.rsp = 0xffff_ffff_8000_8000;
    c.user_regs.cs = 0xe033;
    c.user_regs.ss = 0xe02b;
    c.user_regs.rflags = 0x202;
    c.kernel_ss = 0xe02b;
    c.kernel_sp = 0xffff_ffff_8000_8000;
    c.ctrlreg[3] = KL4 << 12;
    c.ctrlreg[1] = 1 | (UL4 << 12);
    c.event_callback_eip = 0xffff_ffff_8000_2000;
    c.failsafe_callback_eip = 0xffff_ffff_8000_2100;
    c.syscall_callback_eip = 0xffff_ffff_8000_2200;
    c.as_bytes().to_vec()
}

fn vcpu0_extended() -> Vec<u8> {
    let ext = DomctlExtVcpuContext {
        vcpu: 0,
        size: core::mem::size_of::<DomctlExtVcpuContext>() as u32,
        ..DomctlExtVcpuContext::default()
    };
    ext.as_bytes().to_vec()
}

/// A complete, realistic stream for a 32-page 64-bit PV guest, as `xl save` writes it
/// (`version` 3, or 2 without STATIC_DATA_END and policies).
pub(super) fn synthetic_stream(version: u32) -> Vec<Item> {
    use guest::*;
    let mut items = vec![
        Item::XlHeader(XlHeader::with_json_config(CONFIG_JSON)),
        Item::LibxlHeader(LibxlHeader::default()),
        Item::Libxl(LibxlRecord::LibxcContext),
        Item::ImageHeader(ImageHeader { version }),
        Item::DomainHeader(DomainHeader::x86_pv(4, 17)),
        Item::Libxc(LibxcRecord::X86PvInfo(X86PvInfo::X86_64)),
    ];
    if version >= 3 {
        items.push(Item::Libxc(LibxcRecord::X86CpuidPolicy(vec![
            CpuidLeaf {
                leaf: 0,
                subleaf: !0,
                a: 0xd,
                b: 0x756e_6547,
                c: 0x6c65_746e,
                d: 0x4965_6e69,
            },
            CpuidLeaf {
                leaf: 1,
                subleaf: !0,
                a: 0x000a_0655,
                b: 0x0000_0800,
                c: 0x80d8_2203,
                d: 0x1789_cbf5,
            },
        ])));
        items.push(Item::Libxc(LibxcRecord::X86MsrPolicy(vec![MsrEntry {
            index: 0xce,
            flags: 0,
            value: 0,
        }])));
        items.push(Item::Libxc(LibxcRecord::StaticDataEnd));
    }
    items.extend([
        Item::Libxc(LibxcRecord::X86PvP2mFrames(X86PvP2mFrames {
            start_pfn: 0,
            end_pfn: MAX_PFN as u32,
            frames: vec![Pfn::new(P2M)],
        })),
        Item::Libxc(page_data_record(0..=15)),
        Item::Libxc(page_data_record(16..=MAX_PFN)),
        Item::Libxc(LibxcRecord::X86TscInfo(X86TscInfo {
            mode: 0,
            khz: 2_995_200,
            nsec: 123_456_789,
            incarnation: 0,
        })),
        Item::Libxc(LibxcRecord::SharedInfo(shared_info_page())),
        Item::Libxc(LibxcRecord::X86PvVcpuBasic(VcpuBlob {
            vcpu_id: 0,
            context: vcpu0_context(),
        })),
        Item::Libxc(LibxcRecord::X86PvVcpuExtended(VcpuBlob {
            vcpu_id: 0,
            context: vcpu0_extended(),
        })),
        Item::Libxc(LibxcRecord::X86PvVcpuXsave(VcpuBlob {
            vcpu_id: 0,
            context: {
                // xcr0 = x87|SSE, xcr0_accum, then a 576-byte legacy+header XSAVE area.
                let mut x = Vec::new();
                x.extend_from_slice(&3u64.to_le_bytes());
                x.extend_from_slice(&3u64.to_le_bytes());
                x.resize(16 + 576, 0);
                x
            },
        })),
        Item::Libxc(LibxcRecord::X86PvVcpuMsrs(VcpuMsrs {
            vcpu_id: 0,
            msrs: vec![VcpuMsr {
                index: 0xc000_0103,
                reserved: 0,
                value: 0,
            }],
        })),
        Item::Libxc(LibxcRecord::End),
        Item::Libxl(LibxlRecord::End),
    ]);
    items
}

/// The smallest stream the reader accepts (for byte-by-byte truncation): one page.
pub(super) fn minimal_stream() -> Vec<Item> {
    vec![
        Item::XlHeader(XlHeader::with_json_config("{}")),
        Item::LibxlHeader(LibxlHeader::default()),
        Item::Libxl(LibxlRecord::LibxcContext),
        Item::ImageHeader(ImageHeader::default()),
        Item::DomainHeader(DomainHeader::x86_pv(4, 17)),
        Item::Libxc(LibxcRecord::X86PvInfo(X86PvInfo::X86_64)),
        Item::Libxc(LibxcRecord::StaticDataEnd),
        Item::Libxc(LibxcRecord::X86PvP2mFrames(X86PvP2mFrames {
            start_pfn: 0,
            end_pfn: 1,
            frames: vec![Pfn::new(1)],
        })),
        Item::Libxc(LibxcRecord::PageData(PageData {
            entries: vec![
                PageDataEntry::new(Pfn::new(0), PageType::NoTab),
                PageDataEntry::new(Pfn::new(1), PageType::XTab),
            ],
            data: vec![0x5a; PAGE_SIZE],
        })),
        Item::Libxc(LibxcRecord::X86PvVcpuBasic(VcpuBlob {
            vcpu_id: 0,
            context: vec![0; VCPU_BASIC_SIZE_64],
        })),
        Item::Libxc(LibxcRecord::End),
        Item::Libxl(LibxlRecord::End),
    ]
}

#[test]
fn synthetic_stream_round_trips() {
    for version in [2, 3] {
        let items = synthetic_stream(version);
        let bytes = write_items(&items);
        assert_eq!(read_items(&bytes).unwrap(), items, "v{version}");
    }
}

#[test]
fn offsets_match_the_writer() {
    let items = synthetic_stream(3);
    let mut w = StreamWriter::new(Vec::new());
    let mut offsets = Vec::new();
    for item in &items {
        offsets.push(w.offset());
        w.write_item(item).unwrap();
        assert_eq!(w.offset() - offsets.last().unwrap(), item.encoded_len());
    }
    let bytes = w.into_inner();
    let read = read_all(bytes.as_slice(), ReaderOptions::default()).unwrap();
    let read_offsets: Vec<u64> = read.iter().map(|l| l.offset).collect();
    assert_eq!(read_offsets, offsets);
}

#[test]
fn v2_stream_infers_static_data_end() {
    let bytes = write_items(&synthetic_stream(2));
    let mut r = StreamReader::new(bytes.as_slice());
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Libxc(LibxcRecord::X86PvP2mFrames(_)) = item.item {
            assert!(r.static_data_end_inferred());
        }
        if let Item::Libxc(LibxcRecord::X86PvInfo(_)) = item.item {
            assert!(!r.static_data_end_inferred());
        }
    }
    assert!(r.is_done());
    // A v3 stream never infers it.
    let bytes = write_items(&synthetic_stream(3));
    let mut r = StreamReader::new(bytes.as_slice());
    while r.next_item().unwrap().is_some() {}
    assert!(!r.static_data_end_inferred());
}

#[test]
fn bare_libxl_and_libxc_formats() {
    let items = minimal_stream();
    // libxl: everything after the xl header.
    let libxl = write_items(&items[1..]);
    let opts = ReaderOptions {
        format: StreamFormat::Libxl,
        ..ReaderOptions::default()
    };
    assert_eq!(read_with(&libxl, opts).unwrap(), items[1..].to_vec());
    // libxc: image header .. libxc END.
    let n = items.len();
    let libxc = write_items(&items[3..n - 1]);
    let opts = ReaderOptions {
        format: StreamFormat::Libxc,
        ..ReaderOptions::default()
    };
    assert_eq!(read_with(&libxc, opts).unwrap(), items[3..n - 1].to_vec());
}

#[test]
fn inspect_lines() {
    let bytes = write_items(&synthetic_stream(3));
    let lines: Vec<String> = read_all(bytes.as_slice(), ReaderOptions::default())
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    let text = lines
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        lines[0].starts_with("0x00000000  xl     header"),
        "{}",
        lines[0]
    );
    assert!(text.contains("libxc image header"), "{text}");
    assert!(
        text.contains("x86 PV, page_shift 12, from Xen 4.17"),
        "{text}"
    );
    assert!(
        text.contains(
            "PAGE_DATA 65672 16 pfns, first 0x0, last 0xf, 16 with data \
             [notab 8, l1 1, l2 1, l3 1, l1pin 1, l2pin 1, l3pin 1, l4pin 2]"
        ),
        "{text}"
    );
    assert!(text.contains("xtab 1]"), "{text}");
    assert!(text.contains("64-bit guest, 4 page-table levels"), "{text}");
    assert!(text.contains("arch.max_pfn 0x20"), "{text}");
    assert!(
        text.contains("X86_PV_VCPU_BASIC 5176 vcpu 0, 5168 bytes"),
        "{text}"
    );
    for line in &lines {
        assert!(!line.contains('\n'));
    }
}

#[test]
fn config_helpers() {
    let h = XlHeader::with_json_config(CONFIG_JSON);
    assert_eq!(h.config.as_ref().unwrap().last(), Some(&0));
    assert_eq!(h.config_str(), Some(CONFIG_JSON));
    let v = h.config_json().unwrap().unwrap();
    assert_eq!(v["c_info"]["name"], "toy");
    let bad = XlHeader {
        config: Some(b"name = 'toy'\n\0".to_vec()),
        config_is_json: false,
        ..XlHeader::default()
    };
    assert!(matches!(
        bad.config_json(),
        Err(StreamError::XlConfigNotJson { .. })
    ));
    assert_eq!(XlHeader::default().config_json().unwrap(), None);
}

#[test]
fn page_type_table() {
    for ty in PageType::ALL {
        assert_eq!(PageType::from_nibble(ty.nibble()), Some(ty));
        assert_eq!(PageType::from_pfinfo(ty.to_pfinfo()), Some(ty));
        let e = PageDataEntry::new(Pfn::new(0x42), ty);
        assert_eq!(PageDataEntry::from_raw(e.to_raw()), Some(e));
    }
    for n in 5..=8 {
        assert_eq!(PageType::from_nibble(n), None);
    }
    use hypervisor::abi::domctl as d;
    assert_eq!(
        PageType::L4Pinned.to_pfinfo(),
        d::XEN_DOMCTL_PFINFO_L4TAB | d::XEN_DOMCTL_PFINFO_LPINTAB
    );
    assert_eq!(PageType::XTab.to_pfinfo(), d::XEN_DOMCTL_PFINFO_XTAB);
    assert_eq!(PageType::XAlloc.to_pfinfo(), d::XEN_DOMCTL_PFINFO_XALLOC);
    assert_eq!(PageType::Broken.to_pfinfo(), d::XEN_DOMCTL_PFINFO_BROKEN);
    let with_data: Vec<_> = PageType::ALL.iter().filter(|t| t.has_data()).collect();
    assert_eq!(with_data.len(), 9);
    assert!(!PageType::XAlloc.has_data() && PageType::XAlloc.populates());
    assert!(!PageType::XTab.populates() && !PageType::Broken.populates());
}

/// Rough in-memory throughput of PAGE_DATA writing and reading (run with `--ignored
/// --nocapture`; prints MiB/s, asserts nothing).
#[test]
#[ignore = "throughput measurement, not a check"]
fn page_data_throughput() {
    use std::time::Instant;
    const PAGES: usize = 64 * 1024; // 256 MiB
    let entries: Vec<PageDataEntry> = (0..1024)
        .map(|i| PageDataEntry::new(Pfn::new(i), PageType::NoTab))
        .collect();
    let data = vec![0x5au8; 1024 * PAGE_SIZE];
    let mut items = minimal_stream();
    items.truncate(7);
    items.push(Item::Libxc(LibxcRecord::X86PvP2mFrames(X86PvP2mFrames {
        start_pfn: 0,
        end_pfn: 1023,
        frames: vec![Pfn::new(1), Pfn::new(2)],
    })));
    let mut w = StreamWriter::new(Vec::with_capacity(PAGES * PAGE_SIZE + (1 << 20)));
    for item in &items {
        w.write_item(item).unwrap();
    }
    let t = Instant::now();
    for _ in 0..PAGES / 1024 {
        w.write_page_data(&entries, &data).unwrap();
    }
    let write_s = t.elapsed().as_secs_f64();
    let bytes = w.into_inner();
    let t = Instant::now();
    let mut r = StreamReader::new(bytes.as_slice());
    let mut pages = 0;
    while let Some(item) = r.next_item().unwrap_or_else(|e| match e {
        StreamError::Truncated { .. } => None,
        e => panic!("{e}"),
    }) {
        if let Item::Libxc(LibxcRecord::PageData(p)) = item.item {
            pages += p.entries.len();
        }
    }
    let read_s = t.elapsed().as_secs_f64();
    assert_eq!(pages, PAGES);
    let mib = (PAGES * PAGE_SIZE) as f64 / (1 << 20) as f64;
    println!(
        "write {:.0} MiB/s, read {:.0} MiB/s",
        mib / write_s,
        mib / read_s
    );
}
