//! `xen_domctl` (public/domctl.h), 4.17 layouts (interface version 0x15).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x15;

/// `struct xen_domctl` (144 bytes): header plus a 128-byte payload union.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenDomctl {
    /// `XEN_DOMCTL_*` command.
    pub cmd: u32,
    /// Must equal [`XEN_DOMCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// Target domain (in/out for createdomain and getdomaininfo).
    pub domain: u16,
    /// Padding.
    pub pad: [u16; 3],
    /// The payload union, as bytes; use the payload structs to view it.
    pub u: [u64; 16],
}
