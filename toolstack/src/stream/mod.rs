//! Xen's save/restore stream: the `xl` save-file header, the libxl stream (v2) and the
//! libxc migration stream (v2 and v3), as typed Rust values with a streaming reader and a
//! writer.
//!
//! This module owns the byte format only. It knows nothing about domains: save produces
//! [`LibxcRecord`]s and hands them to a [`StreamWriter`]; restore pulls [`Item`]s out of a
//! [`StreamReader`] and acts on them. Everything Xen's own readers check is checked here
//! (headers, record lengths, reserved bits, record order), and every allocation is
//! bounded by what the record may legally hold, so a hostile file cannot make xi allocate
//! more than it actually contains (and never more than [`REC_LENGTH_MAX`] per record).
//!
//! # Layout of an `xl save` file
//!
//! ```text
//!  offset  layer  bytes
//!  ------  -----  -----------------------------------------------------------------
//!  0       xl     magic[32] "Xen saved domain, xl format\n \0 \r"
//!  32      xl     u32 byteorder 0x01020304 (native: LE bytes 04 03 02 01)
//!  36      xl     u32 mandatory_flags  (bit0 JSON config, bit1 STREAMv2; others: reject)
//!  40      xl     u32 optional_flags
//!  44      xl     u32 optional_data_len (= 4 + config_len)
//!  48      xl     u32 config_len, config bytes (JSON of libxl_domain_config, with NUL)
//!  48+N    libxl  "LibxlFmt" u64 ident | u32 version 2 | u32 options      (big-endian)
//!          libxl  record LIBXC_CONTEXT (type 1, length 0)
//!          libxc  image header  (24 B, big-endian):
//!                   u64 marker ~0 | u32 id "XENF" | u32 version 3 | u16 options |
//!                   u16 reserved | u32 reserved
//!          libxc  domain header (16 B, LE): u32 type (1 = x86 PV) | u16 page_shift 12 |
//!                   u16 reserved | u32 xen_major | u32 xen_minor
//!          libxc  records ... END
//!          libxl  record END
//! ```
//!
//! The libxl stream starts at `48 + optional_data_len`, which is not 8-aligned in
//! general; record alignment is relative to the start of the libxl stream.
//!
//! # Records (both libxl and libxc)
//!
//! ```text
//!  0        4        8
//!  +--------+--------+----------------------------+---------------+
//!  | type   | length | body (length bytes)        | 0..7 zero pad |
//!  +--------+--------+----------------------------+---------------+
//!  little-endian;  bit 31 of type = optional record;  length excludes the padding
//! ```
//!
//! A libxc PAGE_DATA body is `u32 count, u32 reserved, u64 pfn[count], page data`, where
//! each pfn entry is:
//!
//! ```text
//!  63    60 59      52 51                                            0
//!  +-------+----------+----------------------------------------------+
//!  | type  | reserved |                     pfn                      |
//!  +-------+----------+----------------------------------------------+
//!   XEN_DOMCTL_PFINFO_* >> 28: 0 notab, 1-4 L1-L4, 9-C pinned L1-L4,
//!   D broken, E xalloc, F xtab; 5-8 invalid
//! ```
//!
//! and 4096 bytes of data follow, in entry order, for each entry whose type is notab or a
//! (pinned or unpinned) page table.
//!
//! # What the reader checks, and where it differs from Xen
//!
//! The checks follow libxc's `xg_sr_restore.c`/`xg_sr_restore_x86_pv.c`, libxl's
//! `libxl_stream_read.c`, xl's `create_domain`, and Xen's `verify-stream-v2`. xi is
//! stricter than libxc in a few places where a Xen-written stream can never differ:
//! reserved header/record fields must be zero (as `verify-stream-v2` requires; libxc does
//! not look); PAGE_DATA may hold at most 1024 pfns (libxc's batch size; the libxc reader
//! does not check); STATIC_DATA_END and the CPU policy records are refused in a v2 stream
//! (as `verify-stream-v2` does); static records (X86_PV_INFO, CPU policies) are refused
//! after STATIC_DATA_END, duplicated static records are refused, PAGE_DATA is refused
//! after the end-of-checkpoint records (TSC, SHARED_INFO, vCPU) of the same checkpoint,
//! vCPU records need a PAGE_DATA before them, and trailing bytes after the final END are
//! an error. libxl's size limit for its own records does not exist in Xen; xi applies
//! [`REC_LENGTH_MAX`] there too.
//!
//! Padding: neither libxc nor libxl checks that the 0..7 padding bytes are zero (only
//! `verify-stream-v2` does). The reader therefore accepts non-zero padding by default and
//! rejects it with [`ReaderOptions::require_zero_padding`]; the writer always writes zeros.
//!
//! Optional (bit 31) records of unknown type are returned as `Unknown` and skipped, as the
//! specs say; note that `verify-stream-v2` rejects them, so xi never writes any itself.

mod display;
mod error;
mod io;
mod reader;
mod records;
mod wire;
mod writer;

#[cfg(test)]
mod tests;

pub use error::{LengthRule, OrderRule, Part, StreamError, Where};
pub use reader::{read_all, ReaderOptions, StreamReader};
pub use records::{
    CpuidLeaf, DomainHeader, DomainType, EmulatorRecord, HvmParam, ImageHeader, Item, LibxcRecord,
    LibxlHeader, LibxlRecord, Located, MsrEntry, PageData, PageDataEntry, PageType, VcpuBlob,
    VcpuMsr, VcpuMsrs, X86PvInfo, X86PvP2mFrames, X86TscInfo, XlHeader,
};
pub use writer::StreamWriter;

/// Which layer of the file a record or header belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The `xl` save-file header (magic, flags, domain config).
    Xl,
    /// The libxl stream ("LibxlFmt", version 2).
    Libxl,
    /// The libxc migration stream ("XENF", version 2 or 3).
    Libxc,
}

/// Where a stream begins, i.e. which layer's header comes first (as `verify-stream-v2 -f`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamFormat {
    /// A whole `xl save` file: xl header, libxl stream, libxc stream inside it.
    #[default]
    Xl,
    /// A libxl stream (what `xl migrate` sends after the xl header).
    Libxl,
    /// A bare libxc stream.
    Libxc,
}

/// Size of the fixed part of the xl header.
pub const XL_HEADER_SIZE: usize = 48;
/// The xl save-file magic: 27 characters of text, then `\n`, space, NUL, space, `\r`.
pub const XL_MAGIC: [u8; 32] = *b"Xen saved domain, xl format\n \0 \r";
/// The xl byte-order marker, written in the host's (here: little-endian) order.
pub const XL_BYTEORDER: u32 = 0x0102_0304;
/// xl mandatory flag: the saved config is JSON (`libxl_domain_config_to_json`).
pub const XL_MANDATORY_FLAG_JSON: u32 = 1 << 0;
/// xl mandatory flag: the stream after the header is a libxl v2 stream.
pub const XL_MANDATORY_FLAG_STREAMV2: u32 = 1 << 1;
/// Every mandatory flag xl (and xi) knows; any other bit means "reject".
pub const XL_MANDATORY_FLAGS_KNOWN: u32 = XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMV2;
/// xi's bound on the xl optional data (config). Xen has none; real configs are a few KiB.
pub const XL_OPTIONAL_DATA_MAX: u32 = 16 << 20;

/// libxl header ident, "LibxlFmt".
pub const LIBXL_IDENT: u64 = 0x4C69_6278_6C46_6D74;
/// The libxl stream version xi reads and writes.
pub const LIBXL_VERSION: u32 = 2;
/// libxl header option: big-endian stream.
pub const LIBXL_OPT_BIG_ENDIAN: u32 = 1 << 0;
/// libxl header option: written by the legacy conversion tool.
pub const LIBXL_OPT_LEGACY: u32 = 1 << 1;
/// Size of the libxl header.
pub const LIBXL_HEADER_SIZE: usize = 16;

/// libxc image header marker (a legacy image has at least one zero bit here).
pub const IHDR_MARKER: u64 = u64::MAX;
/// libxc image header id, "XENF".
pub const IHDR_ID: u32 = 0x5845_4E46;
/// The libxc stream version xi writes.
pub const IHDR_VERSION: u32 = 3;
/// The oldest libxc stream version xi reads (no STATIC_DATA_END; it is inferred).
pub const IHDR_VERSION_MIN: u32 = 2;
/// libxc image header option: big-endian stream.
pub const IHDR_OPT_BIG_ENDIAN: u16 = 1 << 0;
/// Size of the libxc image header.
pub const IHDR_SIZE: usize = 24;
/// libxc domain header type: x86 PV.
pub const DHDR_TYPE_X86_PV: u32 = 1;
/// libxc domain header type: x86 HVM.
pub const DHDR_TYPE_X86_HVM: u32 = 2;
/// Size of the libxc domain header.
pub const DHDR_SIZE: usize = 16;
/// The only page shift x86 uses.
pub const DHDR_PAGE_SHIFT: u16 = 12;

/// Records are padded to a multiple of this.
pub const REC_ALIGN: u64 = 8;
/// Size of a record header (`u32 type, u32 length`).
pub const REC_HEADER_SIZE: usize = 8;
/// Largest record body libxc accepts (and xi, for libxl records too).
pub const REC_LENGTH_MAX: u32 = 128 << 20;
/// Bit 31 of a record type: the record is optional and may be skipped if unknown.
pub const REC_TYPE_OPTIONAL: u32 = 0x8000_0000;

/// Page size of the stream's pages.
pub const PAGE_SIZE: usize = 4096;
/// Most pfns one PAGE_DATA record may carry (libxc's MAX_BATCH_SIZE).
pub const PAGE_DATA_MAX_COUNT: u32 = 1024;
/// PFN bits of a PAGE_DATA entry (bits 0-51).
pub const PAGE_DATA_PFN_MASK: u64 = (1 << 52) - 1;
/// Reserved bits of a PAGE_DATA entry (bits 52-59).
pub const PAGE_DATA_RESERVED_MASK: u64 = 0x0FF0_0000_0000_0000;
/// Shift of the type nibble in a PAGE_DATA entry.
pub const PAGE_DATA_TYPE_SHIFT: u32 = 60;

/// Size of `vcpu_guest_context` for a 64-bit PV guest (the X86_PV_VCPU_BASIC blob).
pub const VCPU_BASIC_SIZE_64: usize = 5168;
/// Size of `vcpu_guest_context` for a 32-bit PV guest.
pub const VCPU_BASIC_SIZE_32: usize = 2800;
/// Largest X86_PV_VCPU_EXTENDED blob libxc accepts.
pub const VCPU_EXTENDED_MAX: usize = 128;
/// Smallest non-empty X86_PV_VCPU_XSAVE blob (`xcr0`, `xcr0_accum`).
pub const VCPU_XSAVE_MIN: usize = 16;
/// Size of the header in front of every vCPU blob (`u32 vcpu_id, u32 reserved`).
pub const VCPU_HEADER_SIZE: usize = 8;

/// libxc record type numbers (stream.md §1.4).
pub mod libxc_type {
    /// END.
    pub const END: u32 = 0x00;
    /// PAGE_DATA.
    pub const PAGE_DATA: u32 = 0x01;
    /// X86_PV_INFO.
    pub const X86_PV_INFO: u32 = 0x02;
    /// X86_PV_P2M_FRAMES.
    pub const X86_PV_P2M_FRAMES: u32 = 0x03;
    /// X86_PV_VCPU_BASIC.
    pub const X86_PV_VCPU_BASIC: u32 = 0x04;
    /// X86_PV_VCPU_EXTENDED.
    pub const X86_PV_VCPU_EXTENDED: u32 = 0x05;
    /// X86_PV_VCPU_XSAVE.
    pub const X86_PV_VCPU_XSAVE: u32 = 0x06;
    /// SHARED_INFO.
    pub const SHARED_INFO: u32 = 0x07;
    /// X86_TSC_INFO.
    pub const X86_TSC_INFO: u32 = 0x08;
    /// HVM_CONTEXT.
    pub const HVM_CONTEXT: u32 = 0x09;
    /// HVM_PARAMS.
    pub const HVM_PARAMS: u32 = 0x0A;
    /// TOOLSTACK (deprecated).
    pub const TOOLSTACK: u32 = 0x0B;
    /// X86_PV_VCPU_MSRS.
    pub const X86_PV_VCPU_MSRS: u32 = 0x0C;
    /// VERIFY.
    pub const VERIFY: u32 = 0x0D;
    /// CHECKPOINT.
    pub const CHECKPOINT: u32 = 0x0E;
    /// CHECKPOINT_DIRTY_PFN_LIST.
    pub const CHECKPOINT_DIRTY_PFN_LIST: u32 = 0x0F;
    /// STATIC_DATA_END.
    pub const STATIC_DATA_END: u32 = 0x10;
    /// X86_CPUID_POLICY.
    pub const X86_CPUID_POLICY: u32 = 0x11;
    /// X86_MSR_POLICY.
    pub const X86_MSR_POLICY: u32 = 0x12;

    /// The spec name of a libxc record type, if it is a known one.
    #[must_use]
    pub fn name(ty: u32) -> Option<&'static str> {
        Some(match ty {
            END => "END",
            PAGE_DATA => "PAGE_DATA",
            X86_PV_INFO => "X86_PV_INFO",
            X86_PV_P2M_FRAMES => "X86_PV_P2M_FRAMES",
            X86_PV_VCPU_BASIC => "X86_PV_VCPU_BASIC",
            X86_PV_VCPU_EXTENDED => "X86_PV_VCPU_EXTENDED",
            X86_PV_VCPU_XSAVE => "X86_PV_VCPU_XSAVE",
            SHARED_INFO => "SHARED_INFO",
            X86_TSC_INFO => "X86_TSC_INFO",
            HVM_CONTEXT => "HVM_CONTEXT",
            HVM_PARAMS => "HVM_PARAMS",
            TOOLSTACK => "TOOLSTACK",
            X86_PV_VCPU_MSRS => "X86_PV_VCPU_MSRS",
            VERIFY => "VERIFY",
            CHECKPOINT => "CHECKPOINT",
            CHECKPOINT_DIRTY_PFN_LIST => "CHECKPOINT_DIRTY_PFN_LIST",
            STATIC_DATA_END => "STATIC_DATA_END",
            X86_CPUID_POLICY => "X86_CPUID_POLICY",
            X86_MSR_POLICY => "X86_MSR_POLICY",
            _ => return None,
        })
    }
}

/// libxl record type numbers (stream.md §2.3).
pub mod libxl_type {
    /// END.
    pub const END: u32 = 0;
    /// LIBXC_CONTEXT: the libxc stream follows, outside any libxl record.
    pub const LIBXC_CONTEXT: u32 = 1;
    /// EMULATOR_XENSTORE_DATA.
    pub const EMULATOR_XENSTORE_DATA: u32 = 2;
    /// EMULATOR_CONTEXT.
    pub const EMULATOR_CONTEXT: u32 = 3;
    /// CHECKPOINT_END.
    pub const CHECKPOINT_END: u32 = 4;
    /// CHECKPOINT_STATE (COLO back channel).
    pub const CHECKPOINT_STATE: u32 = 5;

    /// The spec name of a libxl record type, if it is a known one.
    #[must_use]
    pub fn name(ty: u32) -> Option<&'static str> {
        Some(match ty {
            END => "END",
            LIBXC_CONTEXT => "LIBXC_CONTEXT",
            EMULATOR_XENSTORE_DATA => "EMULATOR_XENSTORE_DATA",
            EMULATOR_CONTEXT => "EMULATOR_CONTEXT",
            CHECKPOINT_END => "CHECKPOINT_END",
            CHECKPOINT_STATE => "CHECKPOINT_STATE",
            _ => return None,
        })
    }
}

/// Record padding needed after a body of `len` bytes.
#[must_use]
pub const fn padding_for(len: u64) -> u64 {
    (REC_ALIGN - len % REC_ALIGN) % REC_ALIGN
}
