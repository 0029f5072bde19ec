//! [`StreamError`]: what was wrong with a stream (or with a record xi was asked to
//! write), and where: layer, record type, byte offset and, for pages, the pfn.

use std::fmt;
use std::io;

use super::{libxc_type, libxl_type, Layer};

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Xl => "xl",
            Layer::Libxl => "libxl",
            Layer::Libxc => "libxc",
        })
    }
}

/// The part of a stream an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The 48-byte xl save-file header.
    XlHeader,
    /// The xl optional data (config length and config).
    XlOptionalData,
    /// The libxl stream header.
    LibxlHeader,
    /// The libxc image header.
    ImageHeader,
    /// The libxc domain header.
    DomainHeader,
    /// A record header whose type is not known yet (it was cut short).
    RecordHeader,
    /// A record of the given raw type (in the layer of the enclosing [`Where`]).
    Record(u32),
    /// The bytes after the final END record.
    AfterEnd,
}

/// Where in a stream something is: layer, part and the byte offset at which that part
/// starts (absolute, from the start of whatever was handed to the reader or writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Where {
    /// The layer.
    pub layer: Layer,
    /// The header or record.
    pub part: Part,
    /// Offset of its first byte.
    pub offset: u64,
}

impl Where {
    /// A record of type `ty` in `layer`, starting at `offset`.
    #[must_use]
    pub const fn record(layer: Layer, ty: u32, offset: u64) -> Self {
        Self {
            layer,
            part: Part::Record(ty),
            offset,
        }
    }

    /// The spec name of the record type, or `None` for a header or an unknown type.
    #[must_use]
    pub fn record_name(&self) -> Option<&'static str> {
        match self.part {
            Part::Record(ty) => record_name(self.layer, ty),
            _ => None,
        }
    }
}

pub(crate) fn record_name(layer: Layer, ty: u32) -> Option<&'static str> {
    match layer {
        Layer::Libxc => libxc_type::name(ty),
        Layer::Libxl => libxl_type::name(ty),
        Layer::Xl => None,
    }
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layer = self.layer;
        let offset = self.offset;
        match self.part {
            Part::XlHeader => write!(f, "xl save-file header at offset {offset:#x}"),
            Part::XlOptionalData => write!(f, "xl optional data at offset {offset:#x}"),
            Part::LibxlHeader => write!(f, "libxl stream header at offset {offset:#x}"),
            Part::ImageHeader => write!(f, "libxc image header at offset {offset:#x}"),
            Part::DomainHeader => write!(f, "libxc domain header at offset {offset:#x}"),
            Part::AfterEnd => write!(f, "{layer} stream end at offset {offset:#x}"),
            Part::RecordHeader => write!(f, "{layer} record header at offset {offset:#x}"),
            Part::Record(ty) => match record_name(layer, ty) {
                Some(name) => write!(f, "{layer} {name} record at offset {offset:#x}"),
                None => write!(f, "{layer} record of type {ty:#010x} at offset {offset:#x}"),
            },
        }
    }
}

/// A record length rule that was broken (the numbers are record body lengths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthRule {
    /// Exactly this many bytes.
    Exactly(u64),
    /// At least this many bytes.
    AtLeast(u64),
    /// At most this many bytes.
    AtMost(u64),
    /// One of two lengths (e.g. an empty vCPU record or a full one).
    OneOf(u64, u64),
    /// Either exactly `empty` (a zero-content record) or at least `min`.
    EmptyOrAtLeast {
        /// The zero-content length.
        empty: u64,
        /// The least non-empty length.
        min: u64,
    },
    /// `header` bytes and then a whole number of `unit`-byte entries.
    Entries {
        /// Fixed header in front of the entries.
        header: u64,
        /// Size of one entry.
        unit: u64,
        /// Whether zero entries are allowed.
        allow_empty: bool,
    },
}

impl fmt::Display for LengthRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LengthRule::Exactly(n) => write!(f, "expected exactly {n}"),
            LengthRule::AtLeast(n) => write!(f, "expected at least {n}"),
            LengthRule::AtMost(n) => write!(f, "expected at most {n}"),
            LengthRule::OneOf(a, b) => write!(f, "expected {a} or {b}"),
            LengthRule::EmptyOrAtLeast { empty, min } => {
                write!(f, "expected {empty} (empty) or at least {min}")
            }
            LengthRule::Entries {
                header,
                unit,
                allow_empty,
            } => {
                let least = if allow_empty {
                    ""
                } else {
                    "a non-zero number of "
                };
                write!(f, "expected {header} + {least}{unit}-byte entries")
            }
        }
    }
}

/// A record-order rule that was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderRule {
    /// The record may appear only once.
    Duplicate,
    /// A static-data record (X86_PV_INFO, CPU policy) after STATIC_DATA_END.
    AfterStaticDataEnd,
    /// A memory or register record before STATIC_DATA_END (in v2: before the first
    /// X86_PV_P2M_FRAMES, where STATIC_DATA_END is inferred).
    NeedsStaticDataEnd,
    /// The record needs X86_PV_INFO before it.
    NeedsPvInfo,
    /// The record needs X86_PV_P2M_FRAMES before it.
    NeedsP2mFrames,
    /// A vCPU record before any PAGE_DATA.
    NeedsPageData,
    /// PAGE_DATA/VERIFY after this checkpoint's TSC/SHARED_INFO/vCPU records.
    AfterVcpuState,
    /// The record type does not exist in a libxc v2 stream.
    NotInV2,
    /// Xen's x86 PV restore does not handle this (mandatory) record type.
    NotForPv,
    /// CHECKPOINT_DIRTY_PFN_LIST only travels on the COLO back channel.
    BackChannelOnly,
    /// CHECKPOINT in a stream not read as checkpointed.
    CheckpointInPlainStream,
    /// CHECKPOINT_END outside a checkpoint.
    UnexpectedCheckpointEnd,
    /// CHECKPOINT_STATE in the main stream (COLO back channel only).
    UnexpectedCheckpointState,
    /// Emulator records belong to HVM domains.
    EmulatorRecordForPv,
    /// libxl END without a libxc stream before it.
    NoLibxcStream,
    /// libxc END without vCPU0's X86_PV_VCPU_BASIC.
    MissingVcpu0Basic,
}

impl fmt::Display for OrderRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrderRule::Duplicate => "this record may appear only once",
            OrderRule::AfterStaticDataEnd => "static data record after STATIC_DATA_END",
            OrderRule::NeedsStaticDataEnd => {
                "no STATIC_DATA_END before it (in a v2 stream: no X86_PV_P2M_FRAMES)"
            }
            OrderRule::NeedsPvInfo => "no X86_PV_INFO before it",
            OrderRule::NeedsP2mFrames => "no X86_PV_P2M_FRAMES before it",
            OrderRule::NeedsPageData => "vCPU state before any PAGE_DATA",
            OrderRule::AfterVcpuState => {
                "memory record after the TSC/SHARED_INFO/vCPU records of this checkpoint"
            }
            OrderRule::NotInV2 => "record type does not exist in a version 2 libxc stream",
            OrderRule::NotForPv => "x86 PV restore does not handle this record type",
            OrderRule::BackChannelOnly => "this record only travels on the COLO back channel",
            OrderRule::CheckpointInPlainStream => "CHECKPOINT in a non-checkpointed stream",
            OrderRule::UnexpectedCheckpointEnd => "CHECKPOINT_END outside a checkpoint",
            OrderRule::UnexpectedCheckpointState => {
                "CHECKPOINT_STATE only travels on the COLO back channel"
            }
            OrderRule::EmulatorRecordForPv => "emulator records belong to HVM domains only",
            OrderRule::NoLibxcStream => "END before any LIBXC_CONTEXT (no domain state)",
            OrderRule::MissingVcpu0Basic => "END without X86_PV_VCPU_BASIC for vCPU 0",
        })
    }
}

/// Everything that can be wrong with a stream being read, or with a record being written.
///
/// Every variant says where (`at`): layer, header or record type, and byte offset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The stream ended in the middle of a header or record.
    #[error("{at}: stream truncated: {needed} more byte(s) needed")]
    Truncated {
        /// The header or record that was cut short.
        at: Where,
        /// How many bytes of the current field were missing.
        needed: u64,
    },
    /// The stream ended inside the contents of a PAGE_DATA page.
    #[error("{at}: stream truncated in the data of pfn {pfn:#x} (entry {index}): {needed} more byte(s) needed")]
    PageDataTruncated {
        /// The PAGE_DATA record.
        at: Where,
        /// The entry whose page was cut short.
        index: u32,
        /// Its pfn.
        pfn: u64,
        /// Bytes of the record's page data still missing.
        needed: u64,
    },
    /// Reading or writing failed.
    #[error("{at}: I/O error")]
    Io {
        /// The header or record being transferred.
        at: Where,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    // ---- xl header ----
    /// The file does not start with the xl magic.
    #[error("{at}: bad magic \"{}\": not an xl save file", .found.escape_ascii())]
    XlBadMagic {
        /// Where.
        at: Where,
        /// The 32 bytes found.
        found: [u8; 32],
    },
    /// The byte-order marker is not 0x01020304 in little-endian order.
    #[error(
        "{at}: byte-order marker {found:#010x} (expected 0x01020304){}",
        if *.found == 0x0403_0201 { ": the file was written on a big-endian host" } else { "" }
    )]
    XlByteOrder {
        /// Where.
        at: Where,
        /// The marker read as little-endian.
        found: u32,
    },
    /// Mandatory flags xl (and xi) does not know.
    #[error("{at}: unknown mandatory flag(s) {flags:#x}; xi knows JSON (0x1) and STREAMv2 (0x2)")]
    XlUnknownMandatoryFlags {
        /// Where.
        at: Where,
        /// The unknown bits.
        flags: u32,
    },
    /// No STREAMv2 flag: a legacy stream follows.
    #[error(
        "{at}: mandatory flags {flags:#x} lack STREAMv2: a legacy (Xen 4.5 or older) stream, \
         which xi does not read (convert it with Xen's convert-legacy-stream)"
    )]
    XlLegacyStream {
        /// Where.
        at: Where,
        /// The mandatory flags.
        flags: u32,
    },
    /// The optional data is larger than xi accepts.
    #[error("{at}: optional data of {len} bytes exceeds xi's limit of {max} bytes")]
    XlOptionalDataTooLong {
        /// Where.
        at: Where,
        /// The claimed length.
        len: u64,
        /// xi's limit.
        max: u32,
    },
    /// The optional data cannot hold the config length and config it claims to.
    #[error(
        "{at}: optional data of {optional_data_len} bytes cannot hold {}",
        match .config_len {
            Some(n) => format!("a 4-byte length and a {n}-byte config"),
            None => "the 4-byte config length".to_owned(),
        }
    )]
    XlConfigLength {
        /// Where.
        at: Where,
        /// `optional_data_len`.
        optional_data_len: u32,
        /// The config length, if it could be read.
        config_len: Option<u32>,
    },
    /// The saved config is not (valid UTF-8) JSON.
    #[error("{at}: saved domain config is not valid JSON: {reason}")]
    XlConfigNotJson {
        /// Where.
        at: Where,
        /// What the JSON parser said.
        reason: String,
    },

    // ---- stream headers ----
    /// The libxl header ident is not "LibxlFmt".
    #[error("{at}: ident {found:#018x}, expected 0x4c6962786c466d74 (\"LibxlFmt\")")]
    LibxlBadIdent {
        /// Where.
        at: Where,
        /// The ident found.
        found: u64,
    },
    /// The libxl header version is not 2.
    #[error("{at}: version {found}; xi reads libxl stream version 2")]
    LibxlBadVersion {
        /// Where.
        at: Where,
        /// The version found.
        found: u32,
    },
    /// The libxc marker is not all ones: a legacy (Xen 4.5 or older) image.
    #[error(
        "{at}: marker {found:#018x} is not 0xffffffffffffffff: a legacy (Xen 4.5 or older) \
         image, which xi does not read (convert it with Xen's convert-legacy-stream)"
    )]
    LibxcBadMarker {
        /// Where.
        at: Where,
        /// The marker found.
        found: u64,
    },
    /// The libxc id is not "XENF".
    #[error("{at}: id {found:#010x}, expected 0x58454e46 (\"XENF\")")]
    LibxcBadId {
        /// Where.
        at: Where,
        /// The id found.
        found: u32,
    },
    /// The libxc version is not 2 or 3.
    #[error("{at}: version {found}; xi reads libxc stream versions 2 and 3")]
    LibxcBadVersion {
        /// Where.
        at: Where,
        /// The version found.
        found: u32,
    },
    /// The endianness option says big-endian (libxl or libxc header).
    #[error("{at}: big-endian stream; xi reads little-endian (x86) streams only")]
    BigEndian {
        /// Where.
        at: Where,
    },
    /// Reserved option bits are set (libxl or libxc header).
    #[error("{at}: reserved option bits {bits:#x} set")]
    ReservedOptions {
        /// Where.
        at: Where,
        /// The reserved bits that are set.
        bits: u32,
    },
    /// The domain type is not x86 PV.
    #[error(
        "{at}: domain type {ty} ({}) is not supported: xi restores x86 PV domains only",
        match .ty { 2 => "x86 HVM", _ => "reserved" }
    )]
    UnsupportedDomainType {
        /// Where.
        at: Where,
        /// The domain type found.
        ty: u32,
    },
    /// The page shift is not 12.
    #[error("{at}: page_shift {found}; x86 PV streams use 12")]
    BadPageShift {
        /// Where.
        at: Where,
        /// The page shift found.
        found: u16,
    },
    /// A reserved field of a header or record is not zero.
    #[error("{at}: reserved field {field} is {value:#x}, must be 0")]
    ReservedField {
        /// Where.
        at: Where,
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },

    // ---- records ----
    /// A mandatory record of a type xi does not know (or may not write).
    #[error("{at}: unknown mandatory record type {ty:#010x}")]
    UnknownMandatoryRecord {
        /// Where.
        at: Where,
        /// The record type.
        ty: u32,
    },
    /// The record is longer than [`REC_LENGTH_MAX`](super::REC_LENGTH_MAX).
    #[error("{at}: length {length:#x} exceeds the record limit {max:#x}")]
    RecordTooLong {
        /// Where.
        at: Where,
        /// The (claimed or computed) body length.
        length: u64,
        /// The limit.
        max: u32,
    },
    /// The record's length breaks its type's length rule.
    #[error("{at}: body length {length} is wrong: {rule}")]
    BadLength {
        /// Where.
        at: Where,
        /// The body length.
        length: u64,
        /// The rule it breaks.
        rule: LengthRule,
    },
    /// PAGE_DATA with no pfns or more than 1024.
    #[error("{at}: pfn count {count}, must be 1..=1024")]
    PageDataCount {
        /// Where.
        at: Where,
        /// The count.
        count: u64,
    },
    /// A PAGE_DATA pfn entry has bits 52-59 set.
    #[error("{at}: pfn {pfn:#x} (entry {index}) has reserved bits {bits:#x} set (bits 52-59)")]
    PfnReservedBits {
        /// Where.
        at: Where,
        /// Index of the entry in the record.
        index: u32,
        /// The pfn (bits 0-51).
        pfn: u64,
        /// Bits 52-59, shifted down.
        bits: u8,
    },
    /// A PAGE_DATA pfn entry has a type nibble of 5-8.
    #[error("{at}: pfn {pfn:#x} (entry {index}) has invalid page type {nibble:#x}")]
    InvalidPageType {
        /// Where.
        at: Where,
        /// Index of the entry in the record.
        index: u32,
        /// The pfn.
        pfn: u64,
        /// The type nibble (bits 60-63).
        nibble: u8,
    },
    /// A PAGE_DATA pfn lies beyond the p2m announced by X86_PV_P2M_FRAMES.
    #[error("{at}: pfn {pfn:#x} (entry {index}) is beyond the guest's p2m (max pfn {max_pfn:#x})")]
    PfnOutOfRange {
        /// Where.
        at: Where,
        /// Index of the entry in the record.
        index: u32,
        /// The pfn.
        pfn: u64,
        /// The largest pfn announced.
        max_pfn: u64,
    },
    /// A pfn to be written does not fit in 52 bits.
    #[error("{at}: pfn {pfn:#x} (entry {index}) does not fit in 52 bits")]
    PfnTooLarge {
        /// Where.
        at: Where,
        /// Index of the entry.
        index: u32,
        /// The pfn.
        pfn: u64,
    },
    /// The page data given does not match the entries that carry data.
    #[error("{at}: {with_data} entries carry page data but {bytes} bytes of page data were given")]
    PageDataMismatch {
        /// Where.
        at: Where,
        /// Entries whose type carries data.
        with_data: u64,
        /// Bytes of data given.
        bytes: u64,
    },
    /// X86_PV_INFO with a width/levels pair Xen does not define.
    #[error("{at}: guest width {width} with {levels} page-table levels is not valid (4/3 or 8/4)")]
    InvalidPvInfo {
        /// Where.
        at: Where,
        /// Guest width in bytes.
        width: u8,
        /// Page-table levels.
        levels: u8,
    },
    /// X86_PV_INFO for a 32-bit PV guest, which the model does not run.
    #[error(
        "{at}: 32-bit PV guest (width {width}, {levels} levels): recognised but not supported"
    )]
    UnsupportedPvInfo {
        /// Where.
        at: Where,
        /// Guest width in bytes.
        width: u8,
        /// Page-table levels.
        levels: u8,
    },
    /// X86_PV_P2M_FRAMES with start above end.
    #[error("{at}: start pfn {start:#x} is above end pfn {end:#x}")]
    P2mRange {
        /// Where.
        at: Where,
        /// start_pfn.
        start: u32,
        /// end_pfn.
        end: u32,
    },
    /// X86_PV_P2M_FRAMES with the wrong number of frames for its pfn range.
    #[error("{at}: {frames} p2m frames for pfns {start:#x}..={end:#x}, which need {expected}")]
    P2mFrameCount {
        /// Where.
        at: Where,
        /// start_pfn.
        start: u32,
        /// end_pfn.
        end: u32,
        /// Frames given.
        frames: u64,
        /// Frames the range needs.
        expected: u64,
    },
    /// Non-zero padding after a record (only with `require_zero_padding`).
    #[error("{at}: non-zero padding byte(s) after the body")]
    NonZeroPadding {
        /// Where.
        at: Where,
    },
    /// A record in a place the format does not allow.
    #[error("{at}: out of order: {rule}")]
    Order {
        /// Where.
        at: Where,
        /// The rule broken.
        rule: OrderRule,
    },
    /// Bytes after the final END record.
    #[error("{at}: data after the final END record")]
    DataAfterEnd {
        /// Where.
        at: Where,
    },
}

impl StreamError {
    /// Where the error is.
    #[must_use]
    pub fn at(&self) -> Where {
        match self {
            StreamError::Truncated { at, .. }
            | StreamError::PageDataTruncated { at, .. }
            | StreamError::Io { at, .. }
            | StreamError::XlBadMagic { at, .. }
            | StreamError::XlByteOrder { at, .. }
            | StreamError::XlUnknownMandatoryFlags { at, .. }
            | StreamError::XlLegacyStream { at, .. }
            | StreamError::XlOptionalDataTooLong { at, .. }
            | StreamError::XlConfigLength { at, .. }
            | StreamError::XlConfigNotJson { at, .. }
            | StreamError::LibxlBadIdent { at, .. }
            | StreamError::LibxlBadVersion { at, .. }
            | StreamError::LibxcBadMarker { at, .. }
            | StreamError::LibxcBadId { at, .. }
            | StreamError::LibxcBadVersion { at, .. }
            | StreamError::BigEndian { at }
            | StreamError::ReservedOptions { at, .. }
            | StreamError::UnsupportedDomainType { at, .. }
            | StreamError::BadPageShift { at, .. }
            | StreamError::ReservedField { at, .. }
            | StreamError::UnknownMandatoryRecord { at, .. }
            | StreamError::RecordTooLong { at, .. }
            | StreamError::BadLength { at, .. }
            | StreamError::PageDataCount { at, .. }
            | StreamError::PfnReservedBits { at, .. }
            | StreamError::InvalidPageType { at, .. }
            | StreamError::PfnOutOfRange { at, .. }
            | StreamError::PfnTooLarge { at, .. }
            | StreamError::PageDataMismatch { at, .. }
            | StreamError::InvalidPvInfo { at, .. }
            | StreamError::UnsupportedPvInfo { at, .. }
            | StreamError::P2mRange { at, .. }
            | StreamError::P2mFrameCount { at, .. }
            | StreamError::NonZeroPadding { at }
            | StreamError::Order { at, .. }
            | StreamError::DataAfterEnd { at } => *at,
        }
    }
}
