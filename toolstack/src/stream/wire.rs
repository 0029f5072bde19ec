//! The fixed-size wire structs, as `#[repr(C)]` zerocopy types with explicit byte order.
//!
//! All fields are byte-order wrappers (alignment 1), so the structs have no padding and
//! parse from any byte slice of the right size without `unsafe`.

use zerocopy::byteorder::{big_endian as be, little_endian as le};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `struct save_file_header` (tools/xl/xl.h), 48 bytes, host (LE) order.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct XlHeaderWire {
    pub magic: [u8; 32],
    pub byteorder: le::U32,
    pub mandatory_flags: le::U32,
    pub optional_flags: le::U32,
    pub optional_data_len: le::U32,
}

/// `libxl__sr_hdr`, 16 bytes, big-endian.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct LibxlHeaderWire {
    pub ident: be::U64,
    pub version: be::U32,
    pub options: be::U32,
}

/// `struct xc_sr_ihdr`, 24 bytes, big-endian.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct ImageHeaderWire {
    pub marker: be::U64,
    pub id: be::U32,
    pub version: be::U32,
    pub options: be::U16,
    pub reserved1: be::U16,
    pub reserved2: be::U32,
}

/// `struct xc_sr_dhdr`, 16 bytes, little-endian.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct DomainHeaderWire {
    pub domain_type: le::U32,
    pub page_shift: le::U16,
    pub reserved: le::U16,
    pub xen_major: le::U32,
    pub xen_minor: le::U32,
}

/// `struct xc_sr_rhdr` / `libxl__sr_rec_hdr`, 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct RecordHeaderWire {
    pub ty: le::U32,
    pub length: le::U32,
}

/// The 8-byte header in front of PAGE_DATA pfns, HVM_PARAMS entries, vCPU blobs,
/// emulator records and the P2M frame list (`u32, u32`).
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct PairWire {
    pub a: le::U32,
    pub b: le::U32,
}

/// `struct xc_sr_rec_x86_pv_info`, 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct PvInfoWire {
    pub guest_width: u8,
    pub pt_levels: u8,
    pub reserved1: le::U16,
    pub reserved2: le::U32,
}

/// `struct xc_sr_rec_x86_tsc_info`, 24 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct TscInfoWire {
    pub mode: le::U32,
    pub khz: le::U32,
    pub nsec: le::U64,
    pub incarnation: le::U32,
    pub reserved: le::U32,
}

/// `xen_cpuid_leaf_t`, 24 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct CpuidLeafWire {
    pub leaf: le::U32,
    pub subleaf: le::U32,
    pub a: le::U32,
    pub b: le::U32,
    pub c: le::U32,
    pub d: le::U32,
}

/// `xen_msr_entry_t` (policy) and `xen_domctl_vcpu_msr_t` (vCPU MSRs): both
/// `u32, u32, u64`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct MsrWire {
    pub index: le::U32,
    pub flags: le::U32,
    pub value: le::U64,
}

/// `struct xc_sr_rec_hvm_params_entry`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(crate) struct HvmParamWire {
    pub index: le::U64,
    pub value: le::U64,
}

const _: () = {
    assert!(core::mem::size_of::<XlHeaderWire>() == super::XL_HEADER_SIZE);
    assert!(core::mem::size_of::<LibxlHeaderWire>() == super::LIBXL_HEADER_SIZE);
    assert!(core::mem::size_of::<ImageHeaderWire>() == super::IHDR_SIZE);
    assert!(core::mem::size_of::<DomainHeaderWire>() == super::DHDR_SIZE);
    assert!(core::mem::size_of::<RecordHeaderWire>() == super::REC_HEADER_SIZE);
    assert!(core::mem::size_of::<PairWire>() == 8);
    assert!(core::mem::size_of::<PvInfoWire>() == 8);
    assert!(core::mem::size_of::<TscInfoWire>() == 24);
    assert!(core::mem::size_of::<CpuidLeafWire>() == 24);
    assert!(core::mem::size_of::<MsrWire>() == 16);
    assert!(core::mem::size_of::<HvmParamWire>() == 16);
};

/// Splits a wire struct off the front of `bytes`, advancing it; `None` if too short.
pub(crate) fn take<T: FromBytes>(bytes: &mut &[u8]) -> Option<T> {
    let (value, rest) = T::read_from_prefix(bytes).ok()?;
    *bytes = rest;
    Some(value)
}
