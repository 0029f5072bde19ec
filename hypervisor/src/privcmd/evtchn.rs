//! `/dev/xen/evtchn`: the toolstack's own event channels (libxenevtchn's device).
//!
//! Binding returns the local port; a fired port is read from the fd as a `u32` and stays
//! masked until its number is written back ([`EvtchnFd::unmask`]). Closing the fd
//! unbinds every port it bound.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::dev::os_err;
use super::ioctl::{
    self, EvtchnBindInterdomain, EvtchnBindUnboundPort, EvtchnBindVirq, EvtchnPort,
    EvtchnRestrictDomid,
};
use crate::error::XenError;
use crate::types::{DomId, Port};

/// Where Linux exposes the event channel device.
pub const EVTCHN_PATH: &str = "/dev/xen/evtchn";

/// An open event channel device (non-blocking; [`EvtchnFd::wait`] polls).
#[derive(Debug)]
pub struct EvtchnFd {
    file: File,
    /// Ports read from the device but not yet handed out.
    pending: VecDeque<u32>,
}

impl EvtchnFd {
    /// Opens the device at `path`.
    ///
    /// # Errors
    /// [`XenError::Io`] naming the device.
    pub fn open(path: &Path) -> Result<Self, XenError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| XenError::Io {
                op: "open /dev/xen/evtchn",
                source,
            })?;
        Ok(Self::from_file(file))
    }

    /// Wraps an open descriptor (tests use invalid ones).
    #[must_use]
    pub fn from_file(file: File) -> Self {
        EvtchnFd {
            file,
            pending: VecDeque::new(),
        }
    }

    fn call<T>(&self, op: &'static str, req: u64, arg: &mut T) -> Result<u32, XenError> {
        // SAFETY: `arg` is the exclusively borrowed argument struct of `req` (each caller
        // pairs them as in evtchn.h); none of these structs contains pointers.
        let r = unsafe { ioctl::raw(self.file.as_fd(), req, std::ptr::from_mut(arg)) };
        r.map(|v| v as u32).map_err(|e| os_err(op, &e))
    }

    /// `IOCTL_EVTCHN_BIND_VIRQ` (on vCPU 0).
    ///
    /// # Errors
    /// The errno.
    pub fn bind_virq(&self, virq: u32) -> Result<Port, XenError> {
        let mut a = EvtchnBindVirq { virq };
        self.call("evtchn bind_virq", ioctl::EVTCHN_BIND_VIRQ, &mut a)
            .map(Port::new)
    }

    /// `IOCTL_EVTCHN_BIND_INTERDOMAIN`.
    ///
    /// # Errors
    /// The errno.
    pub fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, XenError> {
        let mut a = EvtchnBindInterdomain {
            remote_domain: u32::from(remote.get()),
            remote_port: remote_port.get(),
        };
        self.call(
            "evtchn bind_interdomain",
            ioctl::EVTCHN_BIND_INTERDOMAIN,
            &mut a,
        )
        .map(Port::new)
    }

    /// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`.
    ///
    /// # Errors
    /// The errno.
    pub fn bind_unbound_port(&self, remote: DomId) -> Result<Port, XenError> {
        let mut a = EvtchnBindUnboundPort {
            remote_domain: u32::from(remote.get()),
        };
        self.call(
            "evtchn bind_unbound_port",
            ioctl::EVTCHN_BIND_UNBOUND_PORT,
            &mut a,
        )
        .map(Port::new)
    }

    /// `IOCTL_EVTCHN_UNBIND` (`ENOTCONN` for a port this fd did not bind).
    ///
    /// # Errors
    /// The errno.
    pub fn unbind(&mut self, port: Port) -> Result<(), XenError> {
        let mut a = EvtchnPort { port: port.get() };
        self.call("evtchn unbind", ioctl::EVTCHN_UNBIND, &mut a)?;
        self.pending.retain(|&p| p != port.get());
        Ok(())
    }

    /// `IOCTL_EVTCHN_NOTIFY`.
    ///
    /// # Errors
    /// The errno.
    pub fn notify(&self, port: Port) -> Result<(), XenError> {
        let mut a = EvtchnPort { port: port.get() };
        self.call("evtchn notify", ioctl::EVTCHN_NOTIFY, &mut a)
            .map(|_| ())
    }

    /// `IOCTL_EVTCHN_RESET`: empties the ring and clears an overflow.
    ///
    /// # Errors
    /// The errno.
    pub fn reset(&mut self) -> Result<(), XenError> {
        // SAFETY: RESET takes no argument; a null pointer is what libxenevtchn passes.
        let r = unsafe {
            ioctl::raw::<u8>(self.file.as_fd(), ioctl::EVTCHN_RESET, std::ptr::null_mut())
        };
        r.map_err(|e| os_err("evtchn reset", &e))?;
        self.pending.clear();
        Ok(())
    }

    /// `IOCTL_EVTCHN_RESTRICT_DOMID`.
    ///
    /// # Errors
    /// The errno.
    pub fn restrict(&self, dom: DomId) -> Result<(), XenError> {
        let mut a = EvtchnRestrictDomid { domid: dom.get() };
        self.call("evtchn restrict", ioctl::EVTCHN_RESTRICT_DOMID, &mut a)
            .map(|_| ())
    }

    /// Waits up to `timeout_ns` of wall time for a bound port to fire.
    ///
    /// # Errors
    /// The `poll`/`read` errno (`EFBIG` after a ring overflow).
    pub fn wait(&mut self, timeout_ns: u64) -> Result<Option<Port>, XenError> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(Some(Port::new(p)));
        }
        if !poll_in(self.file.as_fd(), timeout_ns).map_err(|e| os_err("evtchn wait", &e))? {
            return Ok(None);
        }
        let mut raw = [0u8; 4096];
        let n = match self.file.read(&mut raw) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(os_err("evtchn wait (read)", &e)),
        };
        for c in raw[..n].chunks_exact(4) {
            self.pending
                .push_back(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
        }
        Ok(self.pending.pop_front().map(Port::new))
    }

    /// Re-enables a delivered port (writes its number to the device).
    ///
    /// # Errors
    /// The `write` errno.
    pub fn unmask(&mut self, port: Port) -> Result<(), XenError> {
        self.file
            .write_all(&port.get().to_ne_bytes())
            .map_err(|e| os_err("evtchn unmask", &e))
    }
}

/// Polls `fd` for input for up to `timeout_ns` (rounded up to whole milliseconds, at
/// most `i32::MAX` ms). True when it is readable (or has hung up or failed: the next
/// read reports why).
pub(crate) fn poll_in(fd: BorrowedFd<'_>, timeout_ns: u64) -> std::io::Result<bool> {
    let ms = i32::try_from(timeout_ns.div_ceil(1_000_000)).unwrap_or(i32::MAX);
    let mut p = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if p.revents & libc::POLLNVAL != 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EBADF));
        }
        return Ok(r > 0);
    }
}
