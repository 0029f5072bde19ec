//! The real Xen backend over Linux's `/dev/xen/privcmd` (feature `hw`).
//!
//! This is the start of the backend: it opens the device (with the error a user on a
//! non-Xen machine needs to see) and issues `xen_version` through
//! `IOCTL_PRIVCMD_HYPERCALL`. Every other [`Xen`] method reports
//! [`XenError::NotImplemented`] until the hw issue fills them in.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::abi::domctl::XenDomctl;
use crate::abi::mm::{MmuUpdate, MmuextOp};
use crate::abi::sysctl::XenSysctl;
use crate::error::{Errno, XenError};
use crate::types::{DomId, Mfn, Port};
use crate::xen::{Xen, XsPerm, XsTxId, XsWatchEvent};

/// Where Linux exposes privcmd.
pub const PRIVCMD_PATH: &str = "/dev/xen/privcmd";

/// ioctl request numbers (x86-64 values, see `shared/xen/abi.md` §8).
pub mod ioctl {
    /// `IOCTL_PRIVCMD_HYPERCALL` = `_IOC(NONE, 'P', 0, 48)`.
    pub const PRIVCMD_HYPERCALL: u64 = 0x0030_5000;
    /// `IOCTL_PRIVCMD_MMAPBATCH_V2` = `_IOC(NONE, 'P', 4, 32)`.
    pub const PRIVCMD_MMAPBATCH_V2: u64 = 0x0020_5004;

    /// Linux's `_IOC(dir, type, nr, size)` encoding.
    #[must_use]
    pub const fn ioc(dir: u64, ty: u8, nr: u8, size: u64) -> u64 {
        (dir << 30) | (size << 16) | ((ty as u64) << 8) | nr as u64
    }
}

/// `struct privcmd_hypercall` (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PrivcmdHypercall {
    /// Hypercall number.
    pub op: u64,
    /// Arguments 1–5.
    pub arg: [u64; 5],
}

/// An open privcmd device.
#[derive(Debug)]
pub struct Privcmd {
    fd: File,
}

impl Privcmd {
    /// Opens `/dev/xen/privcmd`.
    ///
    /// # Errors
    /// [`XenError::NoDevice`] when the device does not exist (not a Xen dom0), or
    /// [`XenError::Io`] for any other open failure.
    pub fn open() -> Result<Self, XenError> {
        Self::open_path(Path::new(PRIVCMD_PATH))
    }

    /// Opens a privcmd device at `path`.
    ///
    /// # Errors
    /// As [`Privcmd::open`].
    pub fn open_path(path: &Path) -> Result<Self, XenError> {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(fd) => Ok(Privcmd { fd }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(XenError::NoDevice {
                path: path.display().to_string(),
            }),
            Err(source) => Err(XenError::Io {
                op: "open privcmd",
                source,
            }),
        }
    }

    /// Issues one hypercall whose pointer arguments (if any) are already valid for Xen.
    fn hypercall(&self, op: &'static str, call: &mut PrivcmdHypercall) -> Result<i64, XenError> {
        // SAFETY: `call` is a valid, exclusively borrowed 48-byte `privcmd_hypercall` that
        // the kernel copies in; the fd is an open privcmd device for the life of `self`.
        let ret = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                ioctl::PRIVCMD_HYPERCALL as libc::c_ulong,
                std::ptr::from_mut(call),
            )
        };
        if ret < 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(code) if code > 0 => XenError::xen(op, Errno(code)),
                _ => XenError::Io { op, source: err },
            });
        }
        Ok(i64::from(ret))
    }
}

fn ni<T>(op: &'static str) -> Result<T, XenError> {
    Err(XenError::NotImplemented { op, backend: "hw" })
}

impl Xen for Privcmd {
    fn backend_name(&self) -> &'static str {
        "hw"
    }
    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        if !arg.is_empty() {
            // Commands with a buffer need hypercall-safe memory, which lands with the hw issue.
            return ni("xen_version with a buffer");
        }
        let mut call = PrivcmdHypercall {
            op: crate::abi::hypercall::HYPERVISOR_XEN_VERSION,
            arg: [u64::from(cmd), 0, 0, 0, 0],
        };
        self.hypercall("xen_version", &mut call)
    }
    fn domctl(&mut self, _: &mut XenDomctl, _: &mut [u8]) -> Result<i64, XenError> {
        ni("domctl")
    }
    fn sysctl(&mut self, _: &mut XenSysctl, _: &mut [u8]) -> Result<i64, XenError> {
        ni("sysctl")
    }
    fn memory_op(&mut self, _: u32, _: &mut [u8], _: &mut [u8]) -> Result<i64, XenError> {
        ni("memory_op")
    }
    fn mmu_update(&mut self, _: &[MmuUpdate], _: &mut u32, _: u32) -> Result<i64, XenError> {
        ni("mmu_update")
    }
    fn mmuext_op(&mut self, _: &[MmuextOp], _: &mut u32, _: u32) -> Result<i64, XenError> {
        ni("mmuext_op")
    }
    fn event_channel_op(&mut self, _: u32, _: &mut [u8]) -> Result<i64, XenError> {
        ni("event_channel_op")
    }
    fn foreign_read(
        &mut self,
        _: DomId,
        _: &[Mfn],
        _: &mut [u8],
        _: &mut [i32],
    ) -> Result<(), XenError> {
        ni("foreign_read")
    }
    fn foreign_write(
        &mut self,
        _: DomId,
        _: &[Mfn],
        _: &[u8],
        _: &mut [i32],
    ) -> Result<(), XenError> {
        ni("foreign_write")
    }
    fn evtchn_bind_interdomain(&mut self, _: DomId, _: Port) -> Result<Port, XenError> {
        ni("evtchn bind_interdomain")
    }
    fn evtchn_bind_unbound_port(&mut self, _: DomId) -> Result<Port, XenError> {
        ni("evtchn bind_unbound_port")
    }
    fn evtchn_bind_virq(&mut self, _: u32) -> Result<Port, XenError> {
        ni("evtchn bind_virq")
    }
    fn evtchn_unbind(&mut self, _: Port) -> Result<(), XenError> {
        ni("evtchn unbind")
    }
    fn evtchn_notify(&mut self, _: Port) -> Result<(), XenError> {
        ni("evtchn notify")
    }
    fn evtchn_wait(&mut self, _: u64) -> Result<Option<Port>, XenError> {
        ni("evtchn wait")
    }
    fn evtchn_unmask(&mut self, _: Port) -> Result<(), XenError> {
        ni("evtchn unmask")
    }
    fn xs_read(&mut self, _: XsTxId, _: &str) -> Result<Vec<u8>, XenError> {
        ni("xs read")
    }
    fn xs_write(&mut self, _: XsTxId, _: &str, _: &[u8]) -> Result<(), XenError> {
        ni("xs write")
    }
    fn xs_mkdir(&mut self, _: XsTxId, _: &str) -> Result<(), XenError> {
        ni("xs mkdir")
    }
    fn xs_rm(&mut self, _: XsTxId, _: &str) -> Result<(), XenError> {
        ni("xs rm")
    }
    fn xs_directory(&mut self, _: XsTxId, _: &str) -> Result<Vec<String>, XenError> {
        ni("xs directory")
    }
    fn xs_get_perms(&mut self, _: XsTxId, _: &str) -> Result<Vec<XsPerm>, XenError> {
        ni("xs get_perms")
    }
    fn xs_set_perms(&mut self, _: XsTxId, _: &str, _: &[XsPerm]) -> Result<(), XenError> {
        ni("xs set_perms")
    }
    fn xs_watch(&mut self, _: &str, _: &str) -> Result<(), XenError> {
        ni("xs watch")
    }
    fn xs_unwatch(&mut self, _: &str, _: &str) -> Result<(), XenError> {
        ni("xs unwatch")
    }
    fn xs_read_watch(&mut self, _: u64) -> Result<Option<XsWatchEvent>, XenError> {
        ni("xs read_watch")
    }
    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError> {
        ni("xs transaction_start")
    }
    fn xs_transaction_end(&mut self, _: XsTxId, _: bool) -> Result<(), XenError> {
        ni("xs transaction_end")
    }
    fn xs_introduce(&mut self, _: DomId, _: Mfn, _: Port) -> Result<(), XenError> {
        ni("xs introduce")
    }
    fn xs_release(&mut self, _: DomId) -> Result<(), XenError> {
        ni("xs release")
    }
    fn xs_get_domain_path(&mut self, _: DomId) -> Result<String, XenError> {
        ni("xs get_domain_path")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_encoding() {
        assert_eq!(ioctl::ioc(0, b'P', 0, 48), ioctl::PRIVCMD_HYPERCALL);
        assert_eq!(ioctl::ioc(0, b'P', 4, 32), ioctl::PRIVCMD_MMAPBATCH_V2);
        assert_eq!(std::mem::size_of::<PrivcmdHypercall>(), 48);
    }

    #[test]
    fn missing_device_is_a_clear_error() {
        let err = Privcmd::open_path(Path::new("/nonexistent/xen/privcmd")).unwrap_err();
        assert!(matches!(err, XenError::NoDevice { .. }));
        assert_eq!(
            err.to_string(),
            "no Xen privcmd device at /nonexistent/xen/privcmd — is this a Xen dom0?"
        );
    }

    #[test]
    fn hypercall_on_a_non_privcmd_fd_fails_cleanly() {
        // /dev/null accepts open but not the privcmd ioctl: ENOTTY comes back as an errno.
        let p = Privcmd::open_path(Path::new("/dev/null")).expect("open /dev/null");
        let mut call = PrivcmdHypercall::default();
        let err = p.hypercall("test", &mut call).unwrap_err();
        assert_eq!(err.errno(), Some(Errno(libc::ENOTTY)));
    }

    #[test]
    fn real_device_reports_a_version() {
        let Ok(mut p) = Privcmd::open() else {
            eprintln!("skipping: no {PRIVCMD_PATH} on this machine (not a Xen dom0)");
            return;
        };
        let v = p.xen_version(0, &mut []).expect("xen_version");
        assert!(v >> 16 >= 4, "Xen major version {}", v >> 16);
    }
}
