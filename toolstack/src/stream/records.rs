//! The typed headers and records, and their body codecs (shared by reader and writer).
//!
//! Decoding works on a [`Src`] so that the reader never needs a whole record in memory
//! before it has checked the record's lengths; [`LibxcRecord::decode`] and
//! [`LibxlRecord::decode`] wrap a byte slice in one for callers that already have a body.

use std::io::{Read, Write};

use hypervisor::Pfn;
use zerocopy::byteorder::little_endian as le;
use zerocopy::IntoBytes;

use super::error::{LengthRule, StreamError, Where};
use super::io::{Sink, Src};
use super::wire::{take, CpuidLeafWire, HvmParamWire, MsrWire, PairWire, PvInfoWire, TscInfoWire};
use super::{
    libxc_type as xc, libxl_type as xl, Layer, PAGE_DATA_MAX_COUNT, PAGE_DATA_PFN_MASK,
    PAGE_DATA_RESERVED_MASK, PAGE_DATA_TYPE_SHIFT, PAGE_SIZE, REC_HEADER_SIZE, REC_LENGTH_MAX,
    REC_TYPE_OPTIONAL, VCPU_BASIC_SIZE_32, VCPU_BASIC_SIZE_64, VCPU_EXTENDED_MAX, VCPU_HEADER_SIZE,
    VCPU_XSAVE_MIN, XL_HEADER_SIZE, XL_MANDATORY_FLAG_JSON, XL_MANDATORY_FLAG_STREAMV2,
};

/// Largest PAGE_DATA page payload (1024 pages).
const PAGE_DATA_MAX_BYTES: usize = PAGE_DATA_MAX_COUNT as usize * PAGE_SIZE;

// ------------------------------------------------------------------------------------
// Headers
// ------------------------------------------------------------------------------------

/// The xl save-file header and its optional data (the saved domain configuration).
///
/// xi always writes the STREAMv2 mandatory flag (a libxl v2 stream follows) and requires
/// it on read. Optional data beyond the config is skipped on read, as xl does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XlHeader {
    /// Mandatory flag JSON: the config is `libxl_domain_config` as JSON (otherwise it is
    /// xl config-file text).
    pub config_is_json: bool,
    /// The optional flags word (no flags are defined; xl ignores it).
    pub optional_flags: u32,
    /// The config bytes exactly as stored, including xl's trailing NUL; `None` when the
    /// file carries no optional data.
    pub config: Option<Vec<u8>>,
}

impl XlHeader {
    /// A header carrying `json` as the domain config, NUL-terminated as `xl save` does.
    #[must_use]
    pub fn with_json_config(json: &str) -> Self {
        let mut config = Vec::with_capacity(json.len() + 1);
        config.extend_from_slice(json.as_bytes());
        config.push(0);
        Self {
            config_is_json: true,
            optional_flags: 0,
            config: Some(config),
        }
    }

    /// The mandatory flags word as written.
    #[must_use]
    pub fn mandatory_flags(&self) -> u32 {
        XL_MANDATORY_FLAG_STREAMV2
            | if self.config_is_json {
                XL_MANDATORY_FLAG_JSON
            } else {
                0
            }
    }

    /// `optional_data_len` as written: 4 + config length, or 0 without a config.
    #[must_use]
    pub fn optional_data_len(&self) -> u64 {
        self.config.as_ref().map_or(0, |c| 4 + c.len() as u64)
    }

    /// Bytes the header occupies on the wire.
    #[must_use]
    pub fn encoded_len(&self) -> u64 {
        XL_HEADER_SIZE as u64 + self.optional_data_len()
    }

    /// The config as text, without xl's trailing NUL; `None` without a config or if it
    /// is not UTF-8.
    #[must_use]
    pub fn config_str(&self) -> Option<&str> {
        let bytes = self.config.as_deref()?;
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        std::str::from_utf8(bytes).ok()
    }

    /// The config parsed as JSON (`None` without a config).
    ///
    /// # Errors
    /// [`StreamError::XlConfigNotJson`] if it is not UTF-8 JSON.
    pub fn config_json(&self) -> Result<Option<serde_json::Value>, StreamError> {
        let Some(bytes) = self.config.as_deref() else {
            return Ok(None);
        };
        let at = Where {
            layer: Layer::Xl,
            part: super::Part::XlOptionalData,
            offset: XL_HEADER_SIZE as u64,
        };
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| StreamError::XlConfigNotJson {
                at,
                reason: e.to_string(),
            })
    }
}

/// The libxl stream header (version 2, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LibxlHeader {
    /// Options bit 1: the stream was produced by Xen's legacy conversion tool.
    pub legacy: bool,
}

/// The libxc image header (little-endian stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Stream version: 3 (what xi writes) or 2 (no STATIC_DATA_END).
    pub version: u32,
}

impl Default for ImageHeader {
    fn default() -> Self {
        Self {
            version: super::IHDR_VERSION,
        }
    }
}

/// libxc domain header domain type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DomainType {
    /// x86 PV (1), the only type xi restores.
    #[default]
    X86Pv,
    /// x86 HVM (2): recognised, refused by the reader.
    X86Hvm,
}

impl DomainType {
    /// The wire value.
    #[must_use]
    pub const fn raw(self) -> u32 {
        match self {
            DomainType::X86Pv => super::DHDR_TYPE_X86_PV,
            DomainType::X86Hvm => super::DHDR_TYPE_X86_HVM,
        }
    }
}

/// The libxc domain header (page_shift is always 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DomainHeader {
    /// Domain type.
    pub domain_type: DomainType,
    /// Xen major version of the saving host; 0 means "converted from a legacy stream".
    pub xen_major: u32,
    /// Xen minor version (or the converter's version when `xen_major` is 0).
    pub xen_minor: u32,
}

impl DomainHeader {
    /// An x86 PV domain saved on Xen `major.minor`.
    #[must_use]
    pub const fn x86_pv(xen_major: u32, xen_minor: u32) -> Self {
        Self {
            domain_type: DomainType::X86Pv,
            xen_major,
            xen_minor,
        }
    }
}

// ------------------------------------------------------------------------------------
// PAGE_DATA
// ------------------------------------------------------------------------------------

/// The XEN_DOMCTL_PFINFO type of a page, as carried in bits 60-63 of a PAGE_DATA entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PageType {
    /// 0x0: a normal page.
    NoTab,
    /// 0x1: an L1 page table.
    L1Tab,
    /// 0x2: an L2 page table.
    L2Tab,
    /// 0x3: an L3 page table.
    L3Tab,
    /// 0x4: an L4 page table.
    L4Tab,
    /// 0x9: a pinned L1 page table.
    L1Pinned,
    /// 0xA: a pinned L2 page table.
    L2Pinned,
    /// 0xB: a pinned L3 page table.
    L3Pinned,
    /// 0xC: a pinned L4 page table.
    L4Pinned,
    /// 0xD: a broken page (not populated, no data).
    Broken,
    /// 0xE: allocate only (populated, no data).
    XAlloc,
    /// 0xF: invalid / ballooned / deferred (not populated, no data).
    XTab,
}

impl PageType {
    /// Every type, in nibble order.
    pub const ALL: [PageType; 12] = [
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
    ];

    /// The 4-bit type value (`XEN_DOMCTL_PFINFO_* >> 28`).
    #[must_use]
    pub const fn nibble(self) -> u8 {
        match self {
            PageType::NoTab => 0x0,
            PageType::L1Tab => 0x1,
            PageType::L2Tab => 0x2,
            PageType::L3Tab => 0x3,
            PageType::L4Tab => 0x4,
            PageType::L1Pinned => 0x9,
            PageType::L2Pinned => 0xA,
            PageType::L3Pinned => 0xB,
            PageType::L4Pinned => 0xC,
            PageType::Broken => 0xD,
            PageType::XAlloc => 0xE,
            PageType::XTab => 0xF,
        }
    }

    /// The type for a nibble; `None` for the invalid values 0x5-0x8 (and above 0xF).
    #[must_use]
    pub const fn from_nibble(nibble: u8) -> Option<Self> {
        Some(match nibble {
            0x0 => PageType::NoTab,
            0x1 => PageType::L1Tab,
            0x2 => PageType::L2Tab,
            0x3 => PageType::L3Tab,
            0x4 => PageType::L4Tab,
            0x9 => PageType::L1Pinned,
            0xA => PageType::L2Pinned,
            0xB => PageType::L3Pinned,
            0xC => PageType::L4Pinned,
            0xD => PageType::Broken,
            0xE => PageType::XAlloc,
            0xF => PageType::XTab,
            _ => return None,
        })
    }

    /// The `XEN_DOMCTL_PFINFO_*` word (type in bits 28-31), as getpageframeinfo3 returns.
    #[must_use]
    pub const fn to_pfinfo(self) -> u32 {
        (self.nibble() as u32) << 28
    }

    /// The type of a `XEN_DOMCTL_PFINFO_*` word (only bits 28-31 are looked at).
    #[must_use]
    pub const fn from_pfinfo(pfinfo: u32) -> Option<Self> {
        Self::from_nibble((pfinfo >> 28) as u8)
    }

    /// Whether 4096 bytes of page data follow in the stream (normal pages and tables).
    #[must_use]
    pub const fn has_data(self) -> bool {
        !matches!(self, PageType::Broken | PageType::XAlloc | PageType::XTab)
    }

    /// Whether restore allocates a frame for the pfn (everything but BROKEN and XTAB).
    #[must_use]
    pub const fn populates(self) -> bool {
        !matches!(self, PageType::Broken | PageType::XTab)
    }

    /// The page-table level (1-4), if the page is a page table.
    #[must_use]
    pub const fn level(self) -> Option<u8> {
        match self {
            PageType::L1Tab | PageType::L1Pinned => Some(1),
            PageType::L2Tab | PageType::L2Pinned => Some(2),
            PageType::L3Tab | PageType::L3Pinned => Some(3),
            PageType::L4Tab | PageType::L4Pinned => Some(4),
            _ => None,
        }
    }

    /// Whether the page table is pinned (LPINTAB).
    #[must_use]
    pub const fn is_pinned(self) -> bool {
        matches!(
            self,
            PageType::L1Pinned | PageType::L2Pinned | PageType::L3Pinned | PageType::L4Pinned
        )
    }

    /// Short lower-case name, for summaries.
    #[must_use]
    pub const fn short_name(self) -> &'static str {
        match self {
            PageType::NoTab => "notab",
            PageType::L1Tab => "l1",
            PageType::L2Tab => "l2",
            PageType::L3Tab => "l3",
            PageType::L4Tab => "l4",
            PageType::L1Pinned => "l1pin",
            PageType::L2Pinned => "l2pin",
            PageType::L3Pinned => "l3pin",
            PageType::L4Pinned => "l4pin",
            PageType::Broken => "broken",
            PageType::XAlloc => "xalloc",
            PageType::XTab => "xtab",
        }
    }
}

/// One PAGE_DATA pfn entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageDataEntry {
    /// The pseudo-physical frame (must fit in 52 bits).
    pub pfn: Pfn,
    /// Its type.
    pub ty: PageType,
}

impl PageDataEntry {
    /// An entry.
    #[must_use]
    pub const fn new(pfn: Pfn, ty: PageType) -> Self {
        Self { pfn, ty }
    }

    /// The 64-bit wire form: `type << 60 | pfn` (the pfn is masked to 52 bits).
    #[must_use]
    pub const fn to_raw(self) -> u64 {
        ((self.ty.nibble() as u64) << PAGE_DATA_TYPE_SHIFT) | (self.pfn.get() & PAGE_DATA_PFN_MASK)
    }

    /// Decodes a wire entry; `None` if reserved bits are set or the type is invalid.
    #[must_use]
    pub const fn from_raw(raw: u64) -> Option<Self> {
        if raw & PAGE_DATA_RESERVED_MASK != 0 {
            return None;
        }
        match PageType::from_nibble((raw >> PAGE_DATA_TYPE_SHIFT) as u8) {
            Some(ty) => Some(Self {
                pfn: Pfn::new(raw & PAGE_DATA_PFN_MASK),
                ty,
            }),
            None => None,
        }
    }

    fn decode(raw: u64, index: u32, at: Where) -> Result<Self, StreamError> {
        let pfn = raw & PAGE_DATA_PFN_MASK;
        if raw & PAGE_DATA_RESERVED_MASK != 0 {
            return Err(StreamError::PfnReservedBits {
                at,
                index,
                pfn,
                bits: ((raw & PAGE_DATA_RESERVED_MASK) >> 52) as u8,
            });
        }
        let nibble = (raw >> PAGE_DATA_TYPE_SHIFT) as u8;
        let ty = PageType::from_nibble(nibble).ok_or(StreamError::InvalidPageType {
            at,
            index,
            pfn,
            nibble,
        })?;
        Ok(Self {
            pfn: Pfn::new(pfn),
            ty,
        })
    }
}

/// A PAGE_DATA record: up to 1024 pfn entries and, contiguously, 4096 bytes for each
/// entry whose type [has data](PageType::has_data), in entry order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageData {
    /// The entries.
    pub entries: Vec<PageDataEntry>,
    /// The page contents, `4096 × (entries with data)` bytes.
    pub data: Vec<u8>,
}

impl PageData {
    /// Number of entries carrying page data.
    #[must_use]
    pub fn pages_with_data(&self) -> usize {
        self.entries.iter().filter(|e| e.ty.has_data()).count()
    }

    /// Each entry with its 4096 bytes of data, if its type carries data.
    pub fn pages(&self) -> impl Iterator<Item = (PageDataEntry, Option<&[u8]>)> + '_ {
        let mut chunks = self.data.chunks_exact(PAGE_SIZE);
        self.entries.iter().map(move |e| {
            let data = if e.ty.has_data() { chunks.next() } else { None };
            (*e, data)
        })
    }
}

pub(crate) fn page_data_body_len(entries: &[PageDataEntry], data: &[u8]) -> u64 {
    8 + 8 * entries.len() as u64 + data.len() as u64
}

pub(crate) fn validate_page_data(
    entries: &[PageDataEntry],
    data: &[u8],
    at: Where,
) -> Result<(), StreamError> {
    let count = entries.len() as u64;
    if count == 0 || count > u64::from(PAGE_DATA_MAX_COUNT) {
        return Err(StreamError::PageDataCount { at, count });
    }
    for (index, e) in entries.iter().enumerate() {
        if e.pfn.get() > PAGE_DATA_PFN_MASK {
            return Err(StreamError::PfnTooLarge {
                at,
                index: index as u32,
                pfn: e.pfn.get(),
            });
        }
    }
    let with_data = entries.iter().filter(|e| e.ty.has_data()).count() as u64;
    if data.len() as u64 != with_data * PAGE_SIZE as u64 {
        return Err(StreamError::PageDataMismatch {
            at,
            with_data,
            bytes: data.len() as u64,
        });
    }
    Ok(())
}

pub(crate) fn write_page_data_body<W: Write>(
    entries: &[PageDataEntry],
    data: &[u8],
    sink: &mut Sink<W>,
    at: Where,
) -> Result<(), StreamError> {
    let mut head = Vec::with_capacity(8 + 8 * entries.len());
    head.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    head.extend_from_slice(&0u32.to_le_bytes());
    for e in entries {
        head.extend_from_slice(&e.to_raw().to_le_bytes());
    }
    sink.write_all(&head, at)?;
    sink.write_all(data, at)
}

fn read_page_data<R: Read>(
    src: &mut Src<R>,
    length: u64,
    max_pfn: u64,
    at: Where,
) -> Result<PageData, StreamError> {
    if length < 16 {
        return Err(StreamError::BadLength {
            at,
            length,
            rule: LengthRule::AtLeast(16),
        });
    }
    let head: PairWire = src.read_struct(at)?;
    let (count, reserved) = (head.a.get(), head.b.get());
    if reserved != 0 {
        return Err(StreamError::ReservedField {
            at,
            field: "reserved",
            value: u64::from(reserved),
        });
    }
    if count == 0 || count > PAGE_DATA_MAX_COUNT {
        return Err(StreamError::PageDataCount {
            at,
            count: u64::from(count),
        });
    }
    let min = 8 + 8 * u64::from(count);
    if length < min {
        return Err(StreamError::BadLength {
            at,
            length,
            rule: LengthRule::AtLeast(min),
        });
    }
    // At most 8 KiB, and only after the count has been checked.
    let mut raw = vec![0u8; 8 * count as usize];
    src.read_exact(&mut raw, at)?;
    let mut entries = Vec::with_capacity(count as usize);
    for (index, chunk) in raw.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let index = index as u32;
        let entry = PageDataEntry::decode(u64::from_le_bytes(word), index, at)?;
        if entry.pfn.get() > max_pfn {
            return Err(StreamError::PfnOutOfRange {
                at,
                index,
                pfn: entry.pfn.get(),
                max_pfn,
            });
        }
        entries.push(entry);
    }
    let with_data = entries.iter().filter(|e| e.ty.has_data()).count();
    let expected = min + (with_data * PAGE_SIZE) as u64;
    if length != expected {
        return Err(StreamError::BadLength {
            at,
            length,
            rule: LengthRule::Exactly(expected),
        });
    }
    let total = with_data * PAGE_SIZE;
    let data = src
        .read_vec(total, PAGE_DATA_MAX_BYTES, at)
        .map_err(|e| match e {
            // Name the page that was cut: the one whose bytes ran out.
            StreamError::Truncated { at, needed } => {
                let page = (total as u64 - needed) / PAGE_SIZE as u64;
                let cut = entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.ty.has_data())
                    .nth(page as usize);
                match cut {
                    Some((index, entry)) => StreamError::PageDataTruncated {
                        at,
                        index: index as u32,
                        pfn: entry.pfn.get(),
                        needed,
                    },
                    None => StreamError::Truncated { at, needed },
                }
            }
            e => e,
        })?;
    Ok(PageData { entries, data })
}

// ------------------------------------------------------------------------------------
// Other libxc record bodies
// ------------------------------------------------------------------------------------

/// X86_PV_INFO: the guest's word size and paging depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86PvInfo {
    /// Guest width in bytes: 8 (64-bit) or 4 (32-bit PAE).
    pub guest_width: u8,
    /// Page-table levels: 4 (64-bit) or 3 (32-bit PAE).
    pub pt_levels: u8,
}

impl X86PvInfo {
    /// A 64-bit PV guest (the only kind the model runs).
    pub const X86_64: X86PvInfo = X86PvInfo {
        guest_width: 8,
        pt_levels: 4,
    };

    /// Whether the pair is one Xen defines (4/3 or 8/4).
    #[must_use]
    pub const fn is_valid(self) -> bool {
        matches!((self.guest_width, self.pt_levels), (4, 3) | (8, 4))
    }
}

/// X86_PV_P2M_FRAMES: the pfns holding the guest's p2m, for pfns `start_pfn..=end_pfn`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct X86PvP2mFrames {
    /// First pfn covered.
    pub start_pfn: u32,
    /// Last pfn covered (inclusive): the guest's max pfn.
    pub end_pfn: u32,
    /// The p2m frames, `end/fpp - start/fpp + 1` of them (fpp = 4096 / guest width).
    pub frames: Vec<Pfn>,
}

impl X86PvP2mFrames {
    /// Frames needed to cover `start..=end` with `guest_width`-byte p2m entries.
    #[must_use]
    pub fn frames_needed(start_pfn: u32, end_pfn: u32, guest_width: u8) -> u64 {
        let fpp = (PAGE_SIZE / usize::from(guest_width.max(1))) as u64;
        u64::from(end_pfn) / fpp - u64::from(start_pfn) / fpp + 1
    }
}

/// A vCPU blob record (X86_PV_VCPU_BASIC, _EXTENDED or _XSAVE): `u32 vcpu_id, u32
/// reserved`, then the blob. An empty blob is a zero-content record (tolerated, as Xen
/// 4.6-4.8 emitted them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VcpuBlob {
    /// The vCPU.
    pub vcpu_id: u32,
    /// BASIC: `vcpu_guest_context` (5168 bytes for 64-bit); EXTENDED:
    /// `xen_domctl_ext_vcpucontext` (≤ 128 bytes, begins with its own vcpu and size);
    /// XSAVE: `u64 xcr0, u64 xcr0_accum`, then the uncompressed XSAVE area.
    pub context: Vec<u8>,
}

/// One `xen_domctl_vcpu_msr_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VcpuMsr {
    /// MSR index.
    pub index: u32,
    /// Reserved (passed through unchanged).
    pub reserved: u32,
    /// Value.
    pub value: u64,
}

/// X86_PV_VCPU_MSRS: a vCPU's MSRs (empty = a zero-content record).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VcpuMsrs {
    /// The vCPU.
    pub vcpu_id: u32,
    /// Its MSRs.
    pub msrs: Vec<VcpuMsr>,
}

/// X86_TSC_INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct X86TscInfo {
    /// TSC mode.
    pub mode: u32,
    /// TSC frequency in kHz.
    pub khz: u32,
    /// Elapsed nanoseconds.
    pub nsec: u64,
    /// Incarnation.
    pub incarnation: u32,
}

/// One HVM_PARAMS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HvmParam {
    /// HVM_PARAM_* index.
    pub index: u64,
    /// Value.
    pub value: u64,
}

/// One `xen_cpuid_leaf_t` of an X86_CPUID_POLICY record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidLeaf {
    /// Leaf.
    pub leaf: u32,
    /// Subleaf.
    pub subleaf: u32,
    /// EAX.
    pub a: u32,
    /// EBX.
    pub b: u32,
    /// ECX.
    pub c: u32,
    /// EDX.
    pub d: u32,
}

/// One `xen_msr_entry_t` of an X86_MSR_POLICY record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsrEntry {
    /// MSR index.
    pub index: u32,
    /// Flags.
    pub flags: u32,
    /// Value.
    pub value: u64,
}

/// A libxc record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibxcRecord {
    /// 0x00 END: the end of the libxc stream.
    End,
    /// 0x01 PAGE_DATA.
    PageData(PageData),
    /// 0x02 X86_PV_INFO.
    X86PvInfo(X86PvInfo),
    /// 0x03 X86_PV_P2M_FRAMES.
    X86PvP2mFrames(X86PvP2mFrames),
    /// 0x04 X86_PV_VCPU_BASIC.
    X86PvVcpuBasic(VcpuBlob),
    /// 0x05 X86_PV_VCPU_EXTENDED.
    X86PvVcpuExtended(VcpuBlob),
    /// 0x06 X86_PV_VCPU_XSAVE.
    X86PvVcpuXsave(VcpuBlob),
    /// 0x07 SHARED_INFO: the raw shared_info page.
    SharedInfo(Box<[u8; PAGE_SIZE]>),
    /// 0x08 X86_TSC_INFO.
    X86TscInfo(X86TscInfo),
    /// 0x09 HVM_CONTEXT (HVM only; refused in a PV stream).
    HvmContext(Vec<u8>),
    /// 0x0A HVM_PARAMS (HVM only; refused in a PV stream).
    HvmParams(Vec<HvmParam>),
    /// 0x0B TOOLSTACK (deprecated; refused in a PV stream).
    Toolstack(Vec<u8>),
    /// 0x0C X86_PV_VCPU_MSRS.
    X86PvVcpuMsrs(VcpuMsrs),
    /// 0x0D VERIFY: the pages that follow are to be compared, not copied.
    Verify,
    /// 0x0E CHECKPOINT: a consistent state (Remus/COLO); hands over to libxl.
    Checkpoint,
    /// 0x0F CHECKPOINT_DIRTY_PFN_LIST (COLO back channel only).
    CheckpointDirtyPfnList(Vec<Pfn>),
    /// 0x10 STATIC_DATA_END.
    StaticDataEnd,
    /// 0x11 X86_CPUID_POLICY.
    X86CpuidPolicy(Vec<CpuidLeaf>),
    /// 0x12 X86_MSR_POLICY.
    X86MsrPolicy(Vec<MsrEntry>),
    /// An optional record (bit 31 set) of a type xi does not know.
    Unknown {
        /// The record type.
        type_: u32,
        /// The body.
        body: Vec<u8>,
    },
}

/// What a libxc body decoder needs to know about the stream so far.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeCtx {
    /// Guest width from X86_PV_INFO (8 when decoding a lone body).
    pub guest_width: u8,
    /// Largest pfn PAGE_DATA may name (from X86_PV_P2M_FRAMES).
    pub max_pfn: u64,
}

impl Default for DecodeCtx {
    fn default() -> Self {
        Self {
            guest_width: 8,
            max_pfn: PAGE_DATA_PFN_MASK,
        }
    }
}

fn vcpu_basic_size(guest_width: u8) -> usize {
    if guest_width == 4 {
        VCPU_BASIC_SIZE_32
    } else {
        VCPU_BASIC_SIZE_64
    }
}

fn check_entries(
    at: Where,
    length: u64,
    header: u64,
    unit: u64,
    allow_empty: bool,
) -> Result<(), StreamError> {
    let ok = length >= header && (length - header) % unit == 0 && (allow_empty || length > header);
    if ok {
        Ok(())
    } else {
        Err(StreamError::BadLength {
            at,
            length,
            rule: LengthRule::Entries {
                header,
                unit,
                allow_empty,
            },
        })
    }
}

fn exactly(at: Where, length: u64, want: u64) -> Result<(), StreamError> {
    if length == want {
        Ok(())
    } else {
        Err(StreamError::BadLength {
            at,
            length,
            rule: LengthRule::Exactly(want),
        })
    }
}

/// Length rules that depend only on the record type (and guest width), checked before
/// any of the body is read. PAGE_DATA and X86_PV_P2M_FRAMES get their exact checks once
/// their headers are in.
pub(crate) fn check_libxc_length(
    ty: u32,
    length: u64,
    guest_width: u8,
    at: Where,
) -> Result<(), StreamError> {
    let vh = VCPU_HEADER_SIZE as u64;
    match ty {
        xc::END | xc::VERIFY | xc::CHECKPOINT | xc::STATIC_DATA_END => exactly(at, length, 0),
        xc::PAGE_DATA => {
            if length < 16 {
                Err(StreamError::BadLength {
                    at,
                    length,
                    rule: LengthRule::AtLeast(16),
                })
            } else {
                Ok(())
            }
        }
        xc::X86_PV_INFO => exactly(at, length, 8),
        xc::X86_PV_P2M_FRAMES => check_entries(at, length, 8, 8, false),
        xc::X86_PV_VCPU_BASIC => {
            let full = vh + vcpu_basic_size(guest_width) as u64;
            if length == vh || length == full {
                Ok(())
            } else {
                Err(StreamError::BadLength {
                    at,
                    length,
                    rule: LengthRule::OneOf(vh, full),
                })
            }
        }
        xc::X86_PV_VCPU_EXTENDED => {
            if length < vh {
                Err(StreamError::BadLength {
                    at,
                    length,
                    rule: LengthRule::AtLeast(vh),
                })
            } else if length > vh + VCPU_EXTENDED_MAX as u64 {
                Err(StreamError::BadLength {
                    at,
                    length,
                    rule: LengthRule::AtMost(vh + VCPU_EXTENDED_MAX as u64),
                })
            } else {
                Ok(())
            }
        }
        xc::X86_PV_VCPU_XSAVE => {
            let min = vh + VCPU_XSAVE_MIN as u64;
            if length == vh || length >= min {
                Ok(())
            } else {
                Err(StreamError::BadLength {
                    at,
                    length,
                    rule: LengthRule::EmptyOrAtLeast { empty: vh, min },
                })
            }
        }
        xc::X86_PV_VCPU_MSRS => check_entries(at, length, vh, 16, true),
        xc::SHARED_INFO => exactly(at, length, PAGE_SIZE as u64),
        xc::X86_TSC_INFO => exactly(at, length, 24),
        xc::HVM_CONTEXT => {
            if length == 0 {
                Err(StreamError::BadLength {
                    at,
                    length,
                    rule: LengthRule::AtLeast(1),
                })
            } else {
                Ok(())
            }
        }
        xc::HVM_PARAMS => check_entries(at, length, 8, 16, true),
        xc::CHECKPOINT_DIRTY_PFN_LIST => check_entries(at, length, 0, 8, true),
        xc::X86_CPUID_POLICY => check_entries(at, length, 0, 24, false),
        xc::X86_MSR_POLICY => check_entries(at, length, 0, 16, false),
        _ => Ok(()),
    }
}

fn reserved_zero(at: Where, field: &'static str, value: u64) -> Result<(), StreamError> {
    if value == 0 {
        Ok(())
    } else {
        Err(StreamError::ReservedField { at, field, value })
    }
}

fn read_vcpu_header<R: Read>(src: &mut Src<R>, at: Where) -> Result<u32, StreamError> {
    let head: PairWire = src.read_struct(at)?;
    reserved_zero(at, "reserved", u64::from(head.b.get()))?;
    Ok(head.a.get())
}

/// Bytes of a body of `length`, reserving at most 64 KiB before data arrives.
fn read_body<R: Read>(src: &mut Src<R>, length: u64, at: Where) -> Result<Vec<u8>, StreamError> {
    src.read_vec(length as usize, 0, at)
}

impl LibxcRecord {
    /// The record type number.
    #[must_use]
    pub fn type_(&self) -> u32 {
        match self {
            LibxcRecord::End => xc::END,
            LibxcRecord::PageData(_) => xc::PAGE_DATA,
            LibxcRecord::X86PvInfo(_) => xc::X86_PV_INFO,
            LibxcRecord::X86PvP2mFrames(_) => xc::X86_PV_P2M_FRAMES,
            LibxcRecord::X86PvVcpuBasic(_) => xc::X86_PV_VCPU_BASIC,
            LibxcRecord::X86PvVcpuExtended(_) => xc::X86_PV_VCPU_EXTENDED,
            LibxcRecord::X86PvVcpuXsave(_) => xc::X86_PV_VCPU_XSAVE,
            LibxcRecord::SharedInfo(_) => xc::SHARED_INFO,
            LibxcRecord::X86TscInfo(_) => xc::X86_TSC_INFO,
            LibxcRecord::HvmContext(_) => xc::HVM_CONTEXT,
            LibxcRecord::HvmParams(_) => xc::HVM_PARAMS,
            LibxcRecord::Toolstack(_) => xc::TOOLSTACK,
            LibxcRecord::X86PvVcpuMsrs(_) => xc::X86_PV_VCPU_MSRS,
            LibxcRecord::Verify => xc::VERIFY,
            LibxcRecord::Checkpoint => xc::CHECKPOINT,
            LibxcRecord::CheckpointDirtyPfnList(_) => xc::CHECKPOINT_DIRTY_PFN_LIST,
            LibxcRecord::StaticDataEnd => xc::STATIC_DATA_END,
            LibxcRecord::X86CpuidPolicy(_) => xc::X86_CPUID_POLICY,
            LibxcRecord::X86MsrPolicy(_) => xc::X86_MSR_POLICY,
            LibxcRecord::Unknown { type_, .. } => *type_,
        }
    }

    /// The spec name ("PAGE_DATA"), or "UNKNOWN" for an unknown optional record.
    #[must_use]
    pub fn name(&self) -> &'static str {
        xc::name(self.type_()).unwrap_or("UNKNOWN")
    }

    /// The body length (the record's `length` field, padding excluded).
    #[must_use]
    pub fn body_len(&self) -> u64 {
        let vh = VCPU_HEADER_SIZE as u64;
        match self {
            LibxcRecord::End
            | LibxcRecord::Verify
            | LibxcRecord::Checkpoint
            | LibxcRecord::StaticDataEnd => 0,
            LibxcRecord::PageData(p) => page_data_body_len(&p.entries, &p.data),
            LibxcRecord::X86PvInfo(_) => 8,
            LibxcRecord::X86PvP2mFrames(p) => 8 + 8 * p.frames.len() as u64,
            LibxcRecord::X86PvVcpuBasic(b)
            | LibxcRecord::X86PvVcpuExtended(b)
            | LibxcRecord::X86PvVcpuXsave(b) => vh + b.context.len() as u64,
            LibxcRecord::X86PvVcpuMsrs(m) => vh + 16 * m.msrs.len() as u64,
            LibxcRecord::SharedInfo(_) => PAGE_SIZE as u64,
            LibxcRecord::X86TscInfo(_) => 24,
            LibxcRecord::HvmContext(b) | LibxcRecord::Toolstack(b) => b.len() as u64,
            LibxcRecord::HvmParams(p) => 8 + 16 * p.len() as u64,
            LibxcRecord::CheckpointDirtyPfnList(p) => 8 * p.len() as u64,
            LibxcRecord::X86CpuidPolicy(l) => 24 * l.len() as u64,
            LibxcRecord::X86MsrPolicy(m) => 16 * m.len() as u64,
            LibxcRecord::Unknown { body, .. } => body.len() as u64,
        }
    }

    /// Checks that the record can be written in Xen's format (the writer calls this).
    pub(crate) fn validate(&self, at: Where, guest_width: u8) -> Result<(), StreamError> {
        let length = self.body_len();
        let padded = length + super::padding_for(length);
        if padded > u64::from(REC_LENGTH_MAX) {
            return Err(StreamError::RecordTooLong {
                at,
                length,
                max: REC_LENGTH_MAX,
            });
        }
        match self {
            LibxcRecord::PageData(p) => validate_page_data(&p.entries, &p.data, at),
            LibxcRecord::X86PvInfo(info) => {
                if info.is_valid() {
                    Ok(())
                } else {
                    Err(StreamError::InvalidPvInfo {
                        at,
                        width: info.guest_width,
                        levels: info.pt_levels,
                    })
                }
            }
            LibxcRecord::X86PvP2mFrames(p) => {
                if p.start_pfn > p.end_pfn {
                    return Err(StreamError::P2mRange {
                        at,
                        start: p.start_pfn,
                        end: p.end_pfn,
                    });
                }
                let expected = X86PvP2mFrames::frames_needed(p.start_pfn, p.end_pfn, guest_width);
                if p.frames.len() as u64 != expected {
                    return Err(StreamError::P2mFrameCount {
                        at,
                        start: p.start_pfn,
                        end: p.end_pfn,
                        frames: p.frames.len() as u64,
                        expected,
                    });
                }
                Ok(())
            }
            LibxcRecord::Unknown { type_, .. } => {
                if type_ & REC_TYPE_OPTIONAL == 0 {
                    Err(StreamError::UnknownMandatoryRecord { at, ty: *type_ })
                } else {
                    Ok(())
                }
            }
            LibxcRecord::X86PvVcpuBasic(_)
            | LibxcRecord::X86PvVcpuExtended(_)
            | LibxcRecord::X86PvVcpuXsave(_)
            | LibxcRecord::HvmContext(_)
            | LibxcRecord::X86CpuidPolicy(_)
            | LibxcRecord::X86MsrPolicy(_) => {
                check_libxc_length(self.type_(), length, guest_width, at)
            }
            LibxcRecord::End
            | LibxcRecord::Verify
            | LibxcRecord::Checkpoint
            | LibxcRecord::StaticDataEnd
            | LibxcRecord::SharedInfo(_)
            | LibxcRecord::X86TscInfo(_)
            | LibxcRecord::HvmParams(_)
            | LibxcRecord::Toolstack(_)
            | LibxcRecord::X86PvVcpuMsrs(_)
            | LibxcRecord::CheckpointDirtyPfnList(_) => Ok(()),
        }
    }

    /// Writes the body (no record header, no padding).
    pub(crate) fn write_body<W: Write>(
        &self,
        sink: &mut Sink<W>,
        at: Where,
    ) -> Result<(), StreamError> {
        let pair = |a: u32, b: u32| PairWire {
            a: le::U32::new(a),
            b: le::U32::new(b),
        };
        match self {
            LibxcRecord::End
            | LibxcRecord::Verify
            | LibxcRecord::Checkpoint
            | LibxcRecord::StaticDataEnd => Ok(()),
            LibxcRecord::PageData(p) => write_page_data_body(&p.entries, &p.data, sink, at),
            LibxcRecord::X86PvInfo(info) => {
                let w = PvInfoWire {
                    guest_width: info.guest_width,
                    pt_levels: info.pt_levels,
                    reserved1: le::U16::new(0),
                    reserved2: le::U32::new(0),
                };
                sink.write_all(w.as_bytes(), at)
            }
            LibxcRecord::X86PvP2mFrames(p) => {
                sink.write_all(pair(p.start_pfn, p.end_pfn).as_bytes(), at)?;
                let mut buf = Vec::with_capacity(8 * p.frames.len());
                for f in &p.frames {
                    buf.extend_from_slice(&f.get().to_le_bytes());
                }
                sink.write_all(&buf, at)
            }
            LibxcRecord::X86PvVcpuBasic(b)
            | LibxcRecord::X86PvVcpuExtended(b)
            | LibxcRecord::X86PvVcpuXsave(b) => {
                sink.write_all(pair(b.vcpu_id, 0).as_bytes(), at)?;
                sink.write_all(&b.context, at)
            }
            LibxcRecord::X86PvVcpuMsrs(m) => {
                sink.write_all(pair(m.vcpu_id, 0).as_bytes(), at)?;
                let mut buf = Vec::with_capacity(16 * m.msrs.len());
                for msr in &m.msrs {
                    let w = MsrWire {
                        index: le::U32::new(msr.index),
                        flags: le::U32::new(msr.reserved),
                        value: le::U64::new(msr.value),
                    };
                    buf.extend_from_slice(w.as_bytes());
                }
                sink.write_all(&buf, at)
            }
            LibxcRecord::SharedInfo(page) => sink.write_all(&page[..], at),
            LibxcRecord::X86TscInfo(t) => {
                let w = TscInfoWire {
                    mode: le::U32::new(t.mode),
                    khz: le::U32::new(t.khz),
                    nsec: le::U64::new(t.nsec),
                    incarnation: le::U32::new(t.incarnation),
                    reserved: le::U32::new(0),
                };
                sink.write_all(w.as_bytes(), at)
            }
            LibxcRecord::HvmContext(b) | LibxcRecord::Toolstack(b) => sink.write_all(b, at),
            LibxcRecord::HvmParams(params) => {
                sink.write_all(pair(params.len() as u32, 0).as_bytes(), at)?;
                let mut buf = Vec::with_capacity(16 * params.len());
                for p in params {
                    let w = HvmParamWire {
                        index: le::U64::new(p.index),
                        value: le::U64::new(p.value),
                    };
                    buf.extend_from_slice(w.as_bytes());
                }
                sink.write_all(&buf, at)
            }
            LibxcRecord::CheckpointDirtyPfnList(pfns) => {
                let mut buf = Vec::with_capacity(8 * pfns.len());
                for p in pfns {
                    buf.extend_from_slice(&p.get().to_le_bytes());
                }
                sink.write_all(&buf, at)
            }
            LibxcRecord::X86CpuidPolicy(leaves) => {
                let mut buf = Vec::with_capacity(24 * leaves.len());
                for l in leaves {
                    let w = CpuidLeafWire {
                        leaf: le::U32::new(l.leaf),
                        subleaf: le::U32::new(l.subleaf),
                        a: le::U32::new(l.a),
                        b: le::U32::new(l.b),
                        c: le::U32::new(l.c),
                        d: le::U32::new(l.d),
                    };
                    buf.extend_from_slice(w.as_bytes());
                }
                sink.write_all(&buf, at)
            }
            LibxcRecord::X86MsrPolicy(msrs) => {
                let mut buf = Vec::with_capacity(16 * msrs.len());
                for m in msrs {
                    let w = MsrWire {
                        index: le::U32::new(m.index),
                        flags: le::U32::new(m.flags),
                        value: le::U64::new(m.value),
                    };
                    buf.extend_from_slice(w.as_bytes());
                }
                sink.write_all(&buf, at)
            }
            LibxcRecord::Unknown { body, .. } => sink.write_all(body, at),
        }
    }

    /// Decodes one record body of type `ty` (as read from a 64-bit PV stream), checking
    /// its length rule, reserved fields and (for PAGE_DATA) every pfn entry.
    ///
    /// Record-order rules are not checked here; [`StreamReader`](super::StreamReader)
    /// does that.
    ///
    /// # Errors
    /// Any record-level [`StreamError`], with offsets relative to the body's record
    /// header at offset 0.
    pub fn decode(ty: u32, body: &[u8]) -> Result<Self, StreamError> {
        let at = Where::record(Layer::Libxc, ty, 0);
        let length = body.len() as u64;
        if length > u64::from(REC_LENGTH_MAX) {
            return Err(StreamError::RecordTooLong {
                at,
                length,
                max: REC_LENGTH_MAX,
            });
        }
        let mut src = Src::new(body, REC_HEADER_SIZE as u64);
        Self::read_body(&mut src, ty, length, DecodeCtx::default(), at)
    }

    /// Reads and decodes a body of `length` bytes (the caller has checked the limit and
    /// the record order).
    pub(crate) fn read_body<R: Read>(
        src: &mut Src<R>,
        ty: u32,
        length: u64,
        ctx: DecodeCtx,
        at: Where,
    ) -> Result<Self, StreamError> {
        let guest_width = ctx.guest_width;
        check_libxc_length(ty, length, guest_width, at)?;
        let vh = VCPU_HEADER_SIZE as u64;
        Ok(match ty {
            xc::END => LibxcRecord::End,
            xc::VERIFY => LibxcRecord::Verify,
            xc::CHECKPOINT => LibxcRecord::Checkpoint,
            xc::STATIC_DATA_END => LibxcRecord::StaticDataEnd,
            xc::PAGE_DATA => LibxcRecord::PageData(read_page_data(src, length, ctx.max_pfn, at)?),
            xc::X86_PV_INFO => {
                let w: PvInfoWire = src.read_struct(at)?;
                reserved_zero(
                    at,
                    "reserved",
                    u64::from(w.reserved1.get()) | (u64::from(w.reserved2.get()) << 16),
                )?;
                let info = X86PvInfo {
                    guest_width: w.guest_width,
                    pt_levels: w.pt_levels,
                };
                // As the writer refuses to write one, and libxc's handle_x86_pv_info.
                if !info.is_valid() {
                    return Err(StreamError::InvalidPvInfo {
                        at,
                        width: info.guest_width,
                        levels: info.pt_levels,
                    });
                }
                LibxcRecord::X86PvInfo(info)
            }
            xc::X86_PV_P2M_FRAMES => {
                let head: PairWire = src.read_struct(at)?;
                let (start, end) = (head.a.get(), head.b.get());
                if start > end {
                    return Err(StreamError::P2mRange { at, start, end });
                }
                let expected = X86PvP2mFrames::frames_needed(start, end, guest_width);
                exactly(at, length, 8 + 8 * expected)?;
                let raw = read_body(src, 8 * expected, at)?;
                let frames = raw
                    .chunks_exact(8)
                    .map(|c| {
                        let mut w = [0u8; 8];
                        w.copy_from_slice(c);
                        Pfn::new(u64::from_le_bytes(w))
                    })
                    .collect();
                LibxcRecord::X86PvP2mFrames(X86PvP2mFrames {
                    start_pfn: start,
                    end_pfn: end,
                    frames,
                })
            }
            xc::X86_PV_VCPU_BASIC | xc::X86_PV_VCPU_EXTENDED | xc::X86_PV_VCPU_XSAVE => {
                let vcpu_id = read_vcpu_header(src, at)?;
                let context = read_body(src, length - vh, at)?;
                let blob = VcpuBlob { vcpu_id, context };
                match ty {
                    xc::X86_PV_VCPU_BASIC => LibxcRecord::X86PvVcpuBasic(blob),
                    xc::X86_PV_VCPU_EXTENDED => LibxcRecord::X86PvVcpuExtended(blob),
                    _ => LibxcRecord::X86PvVcpuXsave(blob),
                }
            }
            xc::X86_PV_VCPU_MSRS => {
                let vcpu_id = read_vcpu_header(src, at)?;
                let raw = read_body(src, length - vh, at)?;
                let mut rest = raw.as_slice();
                let mut msrs = Vec::with_capacity(raw.len() / 16);
                while let Some(w) = take::<MsrWire>(&mut rest) {
                    msrs.push(VcpuMsr {
                        index: w.index.get(),
                        reserved: w.flags.get(),
                        value: w.value.get(),
                    });
                }
                LibxcRecord::X86PvVcpuMsrs(VcpuMsrs { vcpu_id, msrs })
            }
            xc::SHARED_INFO => {
                let mut page = Box::new([0u8; PAGE_SIZE]);
                src.read_exact(&mut page[..], at)?;
                LibxcRecord::SharedInfo(page)
            }
            xc::X86_TSC_INFO => {
                let w: TscInfoWire = src.read_struct(at)?;
                reserved_zero(at, "reserved", u64::from(w.reserved.get()))?;
                LibxcRecord::X86TscInfo(X86TscInfo {
                    mode: w.mode.get(),
                    khz: w.khz.get(),
                    nsec: w.nsec.get(),
                    incarnation: w.incarnation.get(),
                })
            }
            xc::HVM_CONTEXT => LibxcRecord::HvmContext(read_body(src, length, at)?),
            xc::TOOLSTACK => LibxcRecord::Toolstack(read_body(src, length, at)?),
            xc::HVM_PARAMS => {
                let head: PairWire = src.read_struct(at)?;
                reserved_zero(at, "reserved", u64::from(head.b.get()))?;
                let count = u64::from(head.a.get());
                exactly(at, length, 8 + 16 * count)?;
                let raw = read_body(src, 16 * count, at)?;
                let mut rest = raw.as_slice();
                let mut params = Vec::with_capacity(count as usize);
                while let Some(w) = take::<HvmParamWire>(&mut rest) {
                    params.push(HvmParam {
                        index: w.index.get(),
                        value: w.value.get(),
                    });
                }
                LibxcRecord::HvmParams(params)
            }
            xc::CHECKPOINT_DIRTY_PFN_LIST => {
                let raw = read_body(src, length, at)?;
                let mut rest = raw.as_slice();
                let mut pfns = Vec::with_capacity(raw.len() / 8);
                while let Some(w) = take::<le::U64>(&mut rest) {
                    pfns.push(Pfn::new(w.get()));
                }
                LibxcRecord::CheckpointDirtyPfnList(pfns)
            }
            xc::X86_CPUID_POLICY => {
                let raw = read_body(src, length, at)?;
                let mut rest = raw.as_slice();
                let mut leaves = Vec::with_capacity(raw.len() / 24);
                while let Some(w) = take::<CpuidLeafWire>(&mut rest) {
                    leaves.push(CpuidLeaf {
                        leaf: w.leaf.get(),
                        subleaf: w.subleaf.get(),
                        a: w.a.get(),
                        b: w.b.get(),
                        c: w.c.get(),
                        d: w.d.get(),
                    });
                }
                LibxcRecord::X86CpuidPolicy(leaves)
            }
            xc::X86_MSR_POLICY => {
                let raw = read_body(src, length, at)?;
                let mut rest = raw.as_slice();
                let mut msrs = Vec::with_capacity(raw.len() / 16);
                while let Some(w) = take::<MsrWire>(&mut rest) {
                    msrs.push(MsrEntry {
                        index: w.index.get(),
                        flags: w.flags.get(),
                        value: w.value.get(),
                    });
                }
                LibxcRecord::X86MsrPolicy(msrs)
            }
            _ if ty & REC_TYPE_OPTIONAL != 0 => LibxcRecord::Unknown {
                type_: ty,
                body: read_body(src, length, at)?,
            },
            _ => return Err(StreamError::UnknownMandatoryRecord { at, ty }),
        })
    }
}

// ------------------------------------------------------------------------------------
// libxl records
// ------------------------------------------------------------------------------------

/// EMULATOR_XENSTORE_DATA / EMULATOR_CONTEXT body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmulatorRecord {
    /// 0 unknown, 1 qemu-traditional, 2 qemu-upstream.
    pub emulator_id: u32,
    /// Index of the emulator for the domain.
    pub index: u32,
    /// Xenstore key/value pairs (NUL-terminated, packed), or the emulator's blob.
    pub data: Vec<u8>,
}

/// A libxl record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibxlRecord {
    /// 0 END: the end of the whole stream.
    End,
    /// 1 LIBXC_CONTEXT: a libxc stream follows immediately, outside any libxl record.
    LibxcContext,
    /// 2 EMULATOR_XENSTORE_DATA (HVM only).
    EmulatorXenstoreData(EmulatorRecord),
    /// 3 EMULATOR_CONTEXT (HVM only).
    EmulatorContext(EmulatorRecord),
    /// 4 CHECKPOINT_END.
    CheckpointEnd,
    /// 5 CHECKPOINT_STATE (`u32 id`; COLO back channel).
    CheckpointState(u32),
    /// An optional record (bit 31 set) of a type xi does not know.
    Unknown {
        /// The record type.
        type_: u32,
        /// The body.
        body: Vec<u8>,
    },
}

impl LibxlRecord {
    /// The record type number.
    #[must_use]
    pub fn type_(&self) -> u32 {
        match self {
            LibxlRecord::End => xl::END,
            LibxlRecord::LibxcContext => xl::LIBXC_CONTEXT,
            LibxlRecord::EmulatorXenstoreData(_) => xl::EMULATOR_XENSTORE_DATA,
            LibxlRecord::EmulatorContext(_) => xl::EMULATOR_CONTEXT,
            LibxlRecord::CheckpointEnd => xl::CHECKPOINT_END,
            LibxlRecord::CheckpointState(_) => xl::CHECKPOINT_STATE,
            LibxlRecord::Unknown { type_, .. } => *type_,
        }
    }

    /// The spec name, or "UNKNOWN".
    #[must_use]
    pub fn name(&self) -> &'static str {
        xl::name(self.type_()).unwrap_or("UNKNOWN")
    }

    /// The body length.
    #[must_use]
    pub fn body_len(&self) -> u64 {
        match self {
            LibxlRecord::End | LibxlRecord::LibxcContext | LibxlRecord::CheckpointEnd => 0,
            LibxlRecord::EmulatorXenstoreData(e) | LibxlRecord::EmulatorContext(e) => {
                8 + e.data.len() as u64
            }
            LibxlRecord::CheckpointState(_) => 4,
            LibxlRecord::Unknown { body, .. } => body.len() as u64,
        }
    }

    pub(crate) fn validate(&self, at: Where) -> Result<(), StreamError> {
        let length = self.body_len();
        if length + super::padding_for(length) > u64::from(REC_LENGTH_MAX) {
            return Err(StreamError::RecordTooLong {
                at,
                length,
                max: REC_LENGTH_MAX,
            });
        }
        match self {
            LibxlRecord::Unknown { type_, .. } if type_ & REC_TYPE_OPTIONAL == 0 => {
                Err(StreamError::UnknownMandatoryRecord { at, ty: *type_ })
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn write_body<W: Write>(
        &self,
        sink: &mut Sink<W>,
        at: Where,
    ) -> Result<(), StreamError> {
        match self {
            LibxlRecord::End | LibxlRecord::LibxcContext | LibxlRecord::CheckpointEnd => Ok(()),
            LibxlRecord::EmulatorXenstoreData(e) | LibxlRecord::EmulatorContext(e) => {
                let head = PairWire {
                    a: le::U32::new(e.emulator_id),
                    b: le::U32::new(e.index),
                };
                sink.write_all(head.as_bytes(), at)?;
                sink.write_all(&e.data, at)
            }
            LibxlRecord::CheckpointState(id) => sink.write_all(&id.to_le_bytes(), at),
            LibxlRecord::Unknown { body, .. } => sink.write_all(body, at),
        }
    }

    /// Decodes one libxl record body of type `ty`.
    ///
    /// # Errors
    /// A record-level [`StreamError`] (wrong length, unknown mandatory type).
    pub fn decode(ty: u32, body: &[u8]) -> Result<Self, StreamError> {
        let at = Where::record(Layer::Libxl, ty, 0);
        let length = body.len() as u64;
        if length > u64::from(REC_LENGTH_MAX) {
            return Err(StreamError::RecordTooLong {
                at,
                length,
                max: REC_LENGTH_MAX,
            });
        }
        let mut src = Src::new(body, REC_HEADER_SIZE as u64);
        Self::read_body(&mut src, ty, length, at)
    }

    pub(crate) fn read_body<R: Read>(
        src: &mut Src<R>,
        ty: u32,
        length: u64,
        at: Where,
    ) -> Result<Self, StreamError> {
        Ok(match ty {
            xl::END | xl::LIBXC_CONTEXT | xl::CHECKPOINT_END => {
                exactly(at, length, 0)?;
                match ty {
                    xl::END => LibxlRecord::End,
                    xl::LIBXC_CONTEXT => LibxlRecord::LibxcContext,
                    _ => LibxlRecord::CheckpointEnd,
                }
            }
            xl::EMULATOR_XENSTORE_DATA | xl::EMULATOR_CONTEXT => {
                if length < 8 {
                    return Err(StreamError::BadLength {
                        at,
                        length,
                        rule: LengthRule::AtLeast(8),
                    });
                }
                let head: PairWire = src.read_struct(at)?;
                let rec = EmulatorRecord {
                    emulator_id: head.a.get(),
                    index: head.b.get(),
                    data: read_body(src, length - 8, at)?,
                };
                if ty == xl::EMULATOR_CONTEXT {
                    LibxlRecord::EmulatorContext(rec)
                } else {
                    LibxlRecord::EmulatorXenstoreData(rec)
                }
            }
            xl::CHECKPOINT_STATE => {
                exactly(at, length, 4)?;
                let mut id = [0u8; 4];
                src.read_exact(&mut id, at)?;
                LibxlRecord::CheckpointState(u32::from_le_bytes(id))
            }
            _ if ty & REC_TYPE_OPTIONAL != 0 => LibxlRecord::Unknown {
                type_: ty,
                body: read_body(src, length, at)?,
            },
            _ => return Err(StreamError::UnknownMandatoryRecord { at, ty }),
        })
    }
}

// ------------------------------------------------------------------------------------
// Items
// ------------------------------------------------------------------------------------

/// One header or record of a stream, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The xl save-file header.
    XlHeader(XlHeader),
    /// The libxl stream header.
    LibxlHeader(LibxlHeader),
    /// A libxl record.
    Libxl(LibxlRecord),
    /// The libxc image header.
    ImageHeader(ImageHeader),
    /// The libxc domain header.
    DomainHeader(DomainHeader),
    /// A libxc record.
    Libxc(LibxcRecord),
}

impl Item {
    /// The layer the item belongs to.
    #[must_use]
    pub fn layer(&self) -> Layer {
        match self {
            Item::XlHeader(_) => Layer::Xl,
            Item::LibxlHeader(_) | Item::Libxl(_) => Layer::Libxl,
            Item::ImageHeader(_) | Item::DomainHeader(_) | Item::Libxc(_) => Layer::Libxc,
        }
    }

    /// Bytes the item occupies on the wire (record header and padding included).
    #[must_use]
    pub fn encoded_len(&self) -> u64 {
        let record = |len: u64| REC_HEADER_SIZE as u64 + len + super::padding_for(len);
        match self {
            Item::XlHeader(h) => h.encoded_len(),
            Item::LibxlHeader(_) => super::LIBXL_HEADER_SIZE as u64,
            Item::ImageHeader(_) => super::IHDR_SIZE as u64,
            Item::DomainHeader(_) => super::DHDR_SIZE as u64,
            Item::Libxl(r) => record(r.body_len()),
            Item::Libxc(r) => record(r.body_len()),
        }
    }
}

/// A value together with the byte offset at which it starts in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// Offset of the first byte.
    pub offset: u64,
    /// The value.
    pub item: T,
}
