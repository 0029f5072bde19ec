//! Newtypes for Xen's number spaces.
//!
//! Save/restore lives in the gap between machine frames (MFNs, what Xen and page tables
//! speak) and pseudo-physical frames (PFNs, what the guest and the stream speak). Mixing the
//! two must not compile, so each space has its own type, and none of them implements `+` or
//! `-`: code says `checked_add` (or converts explicitly through a P2M/M2P) instead.

use std::fmt;

/// Size of a page / frame in bytes (x86 4 KiB pages).
pub const PAGE_SIZE: usize = 4096;
/// `log2(PAGE_SIZE)`.
pub const PAGE_SHIFT: u32 = 12;

macro_rules! frame_newtype {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(u64);

        impl $name {
            /// Wraps a raw frame number.
            #[must_use]
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }
            /// The raw frame number.
            #[must_use]
            pub const fn get(self) -> u64 {
                self.0
            }
            /// The byte address of the start of this frame.
            #[must_use]
            pub const fn to_addr(self) -> u64 {
                self.0 << PAGE_SHIFT
            }
            /// The frame containing byte address `addr`.
            #[must_use]
            pub const fn from_addr(addr: u64) -> Self {
                Self(addr >> PAGE_SHIFT)
            }
            /// `self + n`, or `None` on overflow.
            #[must_use]
            pub fn checked_add(self, n: u64) -> Option<Self> {
                self.0.checked_add(n).map(Self)
            }
            /// `self - n`, or `None` on underflow.
            #[must_use]
            pub fn checked_sub(self, n: u64) -> Option<Self> {
                self.0.checked_sub(n).map(Self)
            }
            /// The frame number as an index into a table.
            ///
            /// # Panics
            /// Never on 64-bit hosts (the only ones xi supports).
            #[must_use]
            pub fn index(self) -> usize {
                usize::try_from(self.0).expect("64-bit host")
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{:#x}"), self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

frame_newtype!(
    /// A machine frame number: an index into the host's physical memory.
    Mfn,
    "mfn:"
);
frame_newtype!(
    /// A pseudo-physical frame number: an index into one guest's view of its memory.
    Pfn,
    "pfn:"
);

impl Mfn {
    /// Xen's `INVALID_MFN` (all ones).
    pub const INVALID: Mfn = Mfn(u64::MAX);
}
impl Pfn {
    /// Xen's `INVALID_PFN` / `INVALID_M2P_ENTRY` (all ones).
    pub const INVALID: Pfn = Pfn(u64::MAX);
}

/// A guest virtual address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gva(u64);

impl Gva {
    /// Wraps a raw virtual address.
    #[must_use]
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }
    /// The raw address.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
    /// `self + n`, or `None` on overflow.
    #[must_use]
    pub fn checked_add(self, n: u64) -> Option<Self> {
        self.0.checked_add(n).map(Self)
    }
    /// `self + n`, wrapping around the 64-bit address space (as the CPU does).
    #[must_use]
    pub const fn wrapping_add(self, n: u64) -> Self {
        Self(self.0.wrapping_add(n))
    }
    /// Offset within the 4 KiB page.
    #[must_use]
    pub const fn page_offset(self) -> usize {
        (self.0 & 0xfff) as usize
    }
}

impl fmt::Debug for Gva {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gva:{:#x}", self.0)
    }
}
impl fmt::Display for Gva {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A domain id (`domid_t`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DomId(u16);

impl DomId {
    /// The control domain.
    pub const DOM0: DomId = DomId(0);
    /// `DOMID_FIRST_RESERVED`: ids at and above this are not real domains.
    pub const FIRST_RESERVED: DomId = DomId(0x7FF0);
    /// `DOMID_SELF`.
    pub const SELF: DomId = DomId(0x7FF0);
    /// `DOMID_IO`.
    pub const IO: DomId = DomId(0x7FF1);
    /// `DOMID_XEN`: owner of Xen's own frames (e.g. the M2P).
    pub const XEN: DomId = DomId(0x7FF2);
    /// `DOMID_COW`.
    pub const COW: DomId = DomId(0x7FF3);
    /// `DOMID_INVALID`.
    pub const INVALID: DomId = DomId(0x7FF4);
    /// `DOMID_IDLE`.
    pub const IDLE: DomId = DomId(0x7FFF);

    /// Wraps a raw domain id.
    #[must_use]
    pub const fn new(raw: u16) -> Self {
        Self(raw)
    }
    /// The raw id.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }
    /// True for ids at or above `DOMID_FIRST_RESERVED`.
    #[must_use]
    pub const fn is_reserved(self) -> bool {
        self.0 >= Self::FIRST_RESERVED.0
    }
}

impl fmt::Debug for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DomId::SELF => f.write_str("dom:SELF"),
            DomId::IO => f.write_str("dom:IO"),
            DomId::XEN => f.write_str("dom:XEN"),
            DomId::COW => f.write_str("dom:COW"),
            DomId::INVALID => f.write_str("dom:INVALID"),
            DomId::IDLE => f.write_str("dom:IDLE"),
            DomId(n) => write!(f, "dom{n}"),
        }
    }
}
impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A virtual CPU index within a domain.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VcpuId(u32);

impl VcpuId {
    /// Wraps a raw vCPU index.
    #[must_use]
    pub const fn new(raw: u32) -> Self {
        Self(raw)
    }
    /// The raw index.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
    /// As a table index.
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}
impl fmt::Debug for VcpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vcpu{}", self.0)
    }
}
impl fmt::Display for VcpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An event channel port (`evtchn_port_t`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Port(u32);

impl Port {
    /// Wraps a raw port number.
    #[must_use]
    pub const fn new(raw: u32) -> Self {
        Self(raw)
    }
    /// The raw port number.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
    /// As a table index.
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}
impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}
impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_addresses_round_trip() {
        let m = Mfn::new(0x1234);
        assert_eq!(m.to_addr(), 0x123_4000);
        assert_eq!(Mfn::from_addr(0x123_4fff), m);
        assert_eq!(Pfn::new(u64::MAX).checked_add(1), None);
        assert_eq!(Pfn::new(0).checked_sub(1), None);
        assert_eq!(Pfn::new(5).checked_add(2), Some(Pfn::new(7)));
    }

    #[test]
    fn reserved_domids() {
        assert!(!DomId::new(0x7FEF).is_reserved());
        assert!(DomId::SELF.is_reserved());
        assert!(DomId::XEN.is_reserved());
        assert_eq!(format!("{:?}", DomId::new(3)), "dom3");
        assert_eq!(format!("{:?}", DomId::XEN), "dom:XEN");
    }
}
