//! `xen_sysctl` (public/sysctl.h), 4.17 layouts (interface version 0x15).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x15;

/// `struct xen_sysctl` (136 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenSysctl {
    /// `XEN_SYSCTL_*` command.
    pub cmd: u32,
    /// Must equal [`XEN_SYSCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The payload union, as bytes.
    pub u: [u64; 16],
}
