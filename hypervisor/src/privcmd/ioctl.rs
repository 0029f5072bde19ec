//! Every ioctl request number and argument struct the hw backend uses, in one place
//! (x86-64 values, `shared/xen/abi.md` §8; Linux `include/uapi/xen/privcmd.h` and
//! `include/uapi/xen/evtchn.h`), plus the one raw `ioctl(2)` wrapper.
//!
//! The privcmd and evtchn ioctls use `_IOC_NONE` with a nonzero size, a historical
//! quirk kept for ABI stability; [`ioc`] reproduces Linux's encoding so the tests can
//! check each constant against its definition.

use std::os::fd::{AsRawFd, BorrowedFd};

/// `_IOC_NONE`.
pub const IOC_NONE: u64 = 0;
/// `_IOC_WRITE`.
pub const IOC_WRITE: u64 = 1;

/// Linux's `_IOC(dir, type, nr, size)` encoding.
#[must_use]
pub const fn ioc(dir: u64, ty: u8, nr: u8, size: u64) -> u64 {
    (dir << 30) | (size << 16) | ((ty as u64) << 8) | nr as u64
}

/// `IOCTL_PRIVCMD_HYPERCALL` = `_IOC(NONE, 'P', 0, 48)`.
pub const PRIVCMD_HYPERCALL: u64 = 0x0030_5000;
/// `IOCTL_PRIVCMD_MMAPBATCH_V2` = `_IOC(NONE, 'P', 4, 32)`.
pub const PRIVCMD_MMAPBATCH_V2: u64 = 0x0020_5004;
/// `IOCTL_PRIVCMD_RESTRICT` = `_IOC(NONE, 'P', 6, 2)` (declared for completeness).
pub const PRIVCMD_RESTRICT: u64 = 0x0002_5006;
/// `IOCTL_PRIVCMD_MMAP_RESOURCE` = `_IOC(NONE, 'P', 7, 32)` (declared for completeness).
pub const PRIVCMD_MMAP_RESOURCE: u64 = 0x0020_5007;

/// `IOCTL_EVTCHN_BIND_VIRQ` = `_IOC(NONE, 'E', 0, 4)`.
pub const EVTCHN_BIND_VIRQ: u64 = 0x0004_4500;
/// `IOCTL_EVTCHN_BIND_INTERDOMAIN` = `_IOC(NONE, 'E', 1, 8)`.
pub const EVTCHN_BIND_INTERDOMAIN: u64 = 0x0008_4501;
/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT` = `_IOC(NONE, 'E', 2, 4)`.
pub const EVTCHN_BIND_UNBOUND_PORT: u64 = 0x0004_4502;
/// `IOCTL_EVTCHN_UNBIND` = `_IOC(NONE, 'E', 3, 4)`.
pub const EVTCHN_UNBIND: u64 = 0x0004_4503;
/// `IOCTL_EVTCHN_NOTIFY` = `_IOC(NONE, 'E', 4, 4)`.
pub const EVTCHN_NOTIFY: u64 = 0x0004_4504;
/// `IOCTL_EVTCHN_RESET` = `_IOC(NONE, 'E', 5, 0)`.
pub const EVTCHN_RESET: u64 = 0x0000_4505;
/// `IOCTL_EVTCHN_RESTRICT_DOMID` = `_IOC(NONE, 'E', 6, 2)`.
pub const EVTCHN_RESTRICT_DOMID: u64 = 0x0002_4506;

/// `struct privcmd_hypercall` (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrivcmdHypercall {
    /// Hypercall number.
    pub op: u64,
    /// Arguments 1–5.
    pub arg: [u64; 5],
}

/// `struct privcmd_mmapbatch_v2` (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PrivcmdMmapBatchV2 {
    /// Number of frames.
    pub num: u32,
    /// The domain whose frames are mapped.
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// Start of the (privcmd-backed) virtual range.
    pub addr: u64,
    /// `const xen_pfn_t *`: the frames.
    pub arr: *const u64,
    /// `int *`: per-frame result, 0 or a negative errno.
    pub err: *mut i32,
}

/// `struct privcmd_mmap_resource` (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PrivcmdMmapResource {
    /// The domain owning the resource.
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// `XENMEM_resource_*`.
    pub type_: u32,
    /// Resource id.
    pub id: u32,
    /// First frame.
    pub idx: u32,
    /// Number of frames (0 with `addr` 0: query the size).
    pub num: u64,
    /// Where to map.
    pub addr: u64,
}

/// `struct ioctl_evtchn_bind_virq` (4 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EvtchnBindVirq {
    /// The VIRQ.
    pub virq: u32,
}

/// `struct ioctl_evtchn_bind_interdomain` (8 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EvtchnBindInterdomain {
    /// The other domain.
    pub remote_domain: u32,
    /// Its port.
    pub remote_port: u32,
}

/// `struct ioctl_evtchn_bind_unbound_port` (4 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EvtchnBindUnboundPort {
    /// The domain allowed to bind the new port.
    pub remote_domain: u32,
}

/// `struct ioctl_evtchn_unbind` / `ioctl_evtchn_notify` (4 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EvtchnPort {
    /// A local port.
    pub port: u32,
}

/// `struct ioctl_evtchn_restrict_domid` (2 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EvtchnRestrictDomid {
    /// The only domain the fd may talk to.
    pub domid: u16,
}

/// Issues `ioctl(fd, req, arg)`; the result is the ioctl's non-negative return value.
///
/// # Safety
/// `arg` must be null (for requests without an argument) or point at a valid,
/// exclusively borrowed value of the struct `req` expects, and every pointer inside that
/// struct must satisfy what the kernel (and, for `PRIVCMD_HYPERCALL`, Xen) will do with
/// it.
pub(crate) unsafe fn raw<T>(fd: BorrowedFd<'_>, req: u64, arg: *mut T) -> std::io::Result<i32> {
    // SAFETY: forwarded from the caller's contract; `fd` is a live descriptor for the
    // duration of the borrow.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::c_ulong, arg) };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn privcmd_numbers_match_their_definitions() {
        assert_eq!(ioc(IOC_NONE, b'P', 0, 48), PRIVCMD_HYPERCALL);
        assert_eq!(ioc(IOC_NONE, b'P', 4, 32), PRIVCMD_MMAPBATCH_V2);
        assert_eq!(ioc(IOC_NONE, b'P', 6, 2), PRIVCMD_RESTRICT);
        assert_eq!(ioc(IOC_NONE, b'P', 7, 32), PRIVCMD_MMAP_RESOURCE);
        // Sizes in the request numbers are the argument structs' sizes.
        assert_eq!(
            size_of::<PrivcmdHypercall>() as u64,
            (PRIVCMD_HYPERCALL >> 16) & 0x3fff
        );
        assert_eq!(
            size_of::<PrivcmdMmapBatchV2>() as u64,
            (PRIVCMD_MMAPBATCH_V2 >> 16) & 0x3fff
        );
        assert_eq!(
            size_of::<PrivcmdMmapResource>() as u64,
            (PRIVCMD_MMAP_RESOURCE >> 16) & 0x3fff
        );
        // The one _IOW among the newer ones, as a check of the direction bit.
        assert_eq!(ioc(IOC_WRITE, b'P', 8, 24), 0x4018_5008);
    }

    #[test]
    fn evtchn_numbers_match_their_definitions() {
        assert_eq!(ioc(IOC_NONE, b'E', 0, 4), EVTCHN_BIND_VIRQ);
        assert_eq!(ioc(IOC_NONE, b'E', 1, 8), EVTCHN_BIND_INTERDOMAIN);
        assert_eq!(ioc(IOC_NONE, b'E', 2, 4), EVTCHN_BIND_UNBOUND_PORT);
        assert_eq!(ioc(IOC_NONE, b'E', 3, 4), EVTCHN_UNBIND);
        assert_eq!(ioc(IOC_NONE, b'E', 4, 4), EVTCHN_NOTIFY);
        assert_eq!(ioc(IOC_NONE, b'E', 5, 0), EVTCHN_RESET);
        assert_eq!(ioc(IOC_NONE, b'E', 6, 2), EVTCHN_RESTRICT_DOMID);
        assert_eq!(size_of::<EvtchnBindVirq>(), 4);
        assert_eq!(size_of::<EvtchnBindInterdomain>(), 8);
        assert_eq!(offset_of!(EvtchnBindInterdomain, remote_port), 4);
        assert_eq!(size_of::<EvtchnBindUnboundPort>(), 4);
        assert_eq!(size_of::<EvtchnPort>(), 4);
        assert_eq!(size_of::<EvtchnRestrictDomid>(), 2);
    }

    #[test]
    fn privcmd_struct_layouts() {
        assert_eq!(size_of::<PrivcmdHypercall>(), 48);
        assert_eq!(offset_of!(PrivcmdHypercall, arg), 8);
        assert_eq!(size_of::<PrivcmdMmapBatchV2>(), 32);
        assert_eq!(offset_of!(PrivcmdMmapBatchV2, num), 0);
        assert_eq!(offset_of!(PrivcmdMmapBatchV2, dom), 4);
        assert_eq!(offset_of!(PrivcmdMmapBatchV2, addr), 8);
        assert_eq!(offset_of!(PrivcmdMmapBatchV2, arr), 16);
        assert_eq!(offset_of!(PrivcmdMmapBatchV2, err), 24);
        assert_eq!(size_of::<PrivcmdMmapResource>(), 32);
        assert_eq!(offset_of!(PrivcmdMmapResource, dom), 0);
        assert_eq!(offset_of!(PrivcmdMmapResource, type_), 4);
        assert_eq!(offset_of!(PrivcmdMmapResource, id), 8);
        assert_eq!(offset_of!(PrivcmdMmapResource, idx), 12);
        assert_eq!(offset_of!(PrivcmdMmapResource, num), 16);
        assert_eq!(offset_of!(PrivcmdMmapResource, addr), 24);
    }
}
