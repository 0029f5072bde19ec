//! A xenstore client speaking xs_wire (`public/io/xs_wire.h`) to xenstored's Unix
//! socket (`/run/xenstored/socket`) or, failing that, the kernel's `/dev/xen/xenbus`.
//!
//! Requests are answered in order; a reply carries the request's type (or `XS_ERROR`
//! with the errno's name). `XS_WATCH_EVENT` messages can arrive at any time, also
//! between a request and its reply: they are queued and handed out by
//! [`XsConn::read_watch`].

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use zerocopy::{FromBytes, IntoBytes};

use super::evtchn::poll_in;
use crate::abi::xs_wire as xw;
use crate::error::{Errno, XenError};
use crate::types::{DomId, Mfn, Port};
use crate::xen::{XsPerm, XsTxId, XsWatchEvent};

/// xenstored's socket on a dom0.
pub const XENSTORED_SOCKET: &str = "/run/xenstored/socket";
/// The kernel's xenstore device (used when the socket is missing).
pub const XENBUS_DEV: &str = "/dev/xen/xenbus";

/// A byte stream to xenstored.
pub trait XsStream: Read + Write + AsFd + Debug + Send {}
impl<T: Read + Write + AsFd + Debug + Send> XsStream for T {}

/// A connection to xenstored.
#[derive(Debug)]
pub struct XsConn {
    stream: Box<dyn XsStream>,
    next_req: u32,
    watches: VecDeque<XsWatchEvent>,
}

fn proto(op: &'static str, what: String) -> XenError {
    XenError::Io {
        op,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, what),
    }
}

fn io(op: &'static str, source: std::io::Error) -> XenError {
    XenError::Io { op, source }
}

/// NUL-terminated strings, concatenated.
fn strings(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p);
        v.push(0);
    }
    v
}

/// Splits a NUL-separated payload (ignoring the final terminator).
fn split(payload: &[u8]) -> Vec<String> {
    let body = payload.strip_suffix(b"\0").unwrap_or(payload);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn one_string(op: &'static str, payload: &[u8]) -> Result<String, XenError> {
    let body = payload.strip_suffix(b"\0").unwrap_or(payload);
    String::from_utf8(body.to_vec()).map_err(|_| proto(op, "reply is not UTF-8".into()))
}

impl XsConn {
    /// Connects to xenstored: the socket at `socket`, else the device at `dev`.
    ///
    /// # Errors
    /// [`XenError::Io`] naming both paths when neither works.
    pub fn open(socket: &Path, dev: &Path) -> Result<Self, XenError> {
        match UnixStream::connect(socket) {
            Ok(s) => Ok(Self::from_stream(Box::new(s))),
            Err(e1) => match std::fs::OpenOptions::new().read(true).write(true).open(dev) {
                Ok(f) => Ok(Self::from_stream(Box::new(f))),
                Err(e2) => Err(io(
                    "connect to xenstore",
                    std::io::Error::new(
                        e2.kind(),
                        format!(
                            "{}: {e1}; {}: {e2} — is xenstored running?",
                            socket.display(),
                            dev.display()
                        ),
                    ),
                )),
            },
        }
    }

    /// Wraps an open stream (tests use one end of a socketpair).
    #[must_use]
    pub fn from_stream(stream: Box<dyn XsStream>) -> Self {
        XsConn {
            stream,
            next_req: 1,
            watches: VecDeque::new(),
        }
    }

    fn send(
        &mut self,
        op: &'static str,
        ty: u32,
        tx: XsTxId,
        payload: &[u8],
    ) -> Result<u32, XenError> {
        if payload.len() > xw::XENSTORE_PAYLOAD_MAX {
            return Err(XenError::xen(op, Errno::E2BIG));
        }
        let req_id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        let h = xw::XsWireHeader {
            type_: ty,
            req_id,
            tx_id: tx,
            len: payload.len() as u32,
        };
        // One write per message: /dev/xen/xenbus wants whole messages.
        let mut msg = Vec::with_capacity(xw::XS_WIRE_HEADER_SIZE + payload.len());
        msg.extend_from_slice(h.as_bytes());
        msg.extend_from_slice(payload);
        self.stream.write_all(&msg).map_err(|e| io(op, e))?;
        self.stream.flush().map_err(|e| io(op, e))?;
        Ok(req_id)
    }

    /// Reads one whole message.
    fn recv(&mut self, op: &'static str) -> Result<(xw::XsWireHeader, Vec<u8>), XenError> {
        let mut hb = [0u8; xw::XS_WIRE_HEADER_SIZE];
        self.stream.read_exact(&mut hb).map_err(|e| io(op, e))?;
        let h = xw::XsWireHeader::read_from_bytes(&hb[..])
            .map_err(|_| proto(op, "short header".into()))?;
        let len = h.len as usize;
        if len > xw::XENSTORE_PAYLOAD_MAX {
            return Err(proto(
                op,
                format!(
                    "xenstored sent a {len}-byte payload (limit {})",
                    xw::XENSTORE_PAYLOAD_MAX
                ),
            ));
        }
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| io(op, e))?;
        Ok((h, payload))
    }

    fn queue_watch(&mut self, payload: &[u8]) {
        let mut parts = split(payload).into_iter();
        let path = parts.next().unwrap_or_default();
        let token = parts.next().unwrap_or_default();
        self.watches.push_back(XsWatchEvent { path, token });
    }

    /// Sends one request and waits for its reply, queueing watch events on the way.
    ///
    /// # Errors
    /// xenstored's errno as [`XenError::Xen`]; connection and protocol errors as
    /// [`XenError::Io`].
    pub fn request(
        &mut self,
        op: &'static str,
        ty: u32,
        tx: XsTxId,
        payload: &[u8],
    ) -> Result<Vec<u8>, XenError> {
        let req_id = self.send(op, ty, tx, payload)?;
        loop {
            let (h, body) = self.recv(op)?;
            if h.type_ == xw::XS_WATCH_EVENT {
                self.queue_watch(&body);
                continue;
            }
            if h.req_id != req_id {
                return Err(proto(
                    op,
                    format!("reply to request {} while waiting for {req_id}", h.req_id),
                ));
            }
            if h.type_ == xw::XS_ERROR {
                return Err(XenError::xen(
                    op,
                    xw::errno_from_wire(&body).unwrap_or(Errno::EINVAL),
                ));
            }
            if h.type_ != ty {
                return Err(proto(
                    op,
                    format!("reply of type {} to a request of type {ty}", h.type_),
                ));
            }
            return Ok(body);
        }
    }

    /// READ.
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError> {
        self.request("xs read", xw::XS_READ, tx, &strings(&[path.as_bytes()]))
    }

    /// WRITE (the value is sent without a terminator).
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn write(&mut self, tx: XsTxId, path: &str, value: &[u8]) -> Result<(), XenError> {
        let mut p = strings(&[path.as_bytes()]);
        p.extend_from_slice(value);
        self.request("xs write", xw::XS_WRITE, tx, &p).map(|_| ())
    }

    /// MKDIR.
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn mkdir(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        self.request("xs mkdir", xw::XS_MKDIR, tx, &strings(&[path.as_bytes()]))
            .map(|_| ())
    }

    /// RM.
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn rm(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        self.request("xs rm", xw::XS_RM, tx, &strings(&[path.as_bytes()]))
            .map(|_| ())
    }

    /// DIRECTORY, sorted (xenstored's order is unspecified).
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn directory(&mut self, tx: XsTxId, path: &str) -> Result<Vec<String>, XenError> {
        let r = self.request(
            "xs directory",
            xw::XS_DIRECTORY,
            tx,
            &strings(&[path.as_bytes()]),
        )?;
        let mut v = split(&r);
        v.sort();
        Ok(v)
    }

    /// GET_PERMS.
    ///
    /// # Errors
    /// As [`XsConn::request`]; an unparsable permission is a protocol error.
    pub fn get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError> {
        let r = self.request(
            "xs get_perms",
            xw::XS_GET_PERMS,
            tx,
            &strings(&[path.as_bytes()]),
        )?;
        split(&r)
            .iter()
            .map(|s| {
                XsPerm::from_wire(s)
                    .ok_or_else(|| proto("xs get_perms", format!("bad permission {s:?}")))
            })
            .collect()
    }

    /// SET_PERMS.
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn set_perms(&mut self, tx: XsTxId, path: &str, perms: &[XsPerm]) -> Result<(), XenError> {
        let wire: Vec<String> = perms.iter().map(XsPerm::to_wire).collect();
        let mut parts: Vec<&[u8]> = vec![path.as_bytes()];
        parts.extend(wire.iter().map(|s| s.as_bytes()));
        self.request("xs set_perms", xw::XS_SET_PERMS, tx, &strings(&parts))
            .map(|_| ())
    }

    /// WATCH.
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        self.request(
            "xs watch",
            xw::XS_WATCH,
            0,
            &strings(&[path.as_bytes(), token.as_bytes()]),
        )
        .map(|_| ())
    }

    /// UNWATCH; queued events of that watch are dropped.
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        self.request(
            "xs unwatch",
            xw::XS_UNWATCH,
            0,
            &strings(&[path.as_bytes(), token.as_bytes()]),
        )?;
        // A watch on `path` fires for paths at or below it.
        let below = format!("{path}/");
        self.watches
            .retain(|e| !(e.token == token && (e.path == path || e.path.starts_with(&below))));
        Ok(())
    }

    /// Waits up to `timeout_ns` of wall time for a watch event.
    ///
    /// # Errors
    /// Connection and protocol errors; a reply nobody asked for is a protocol error.
    pub fn read_watch(&mut self, timeout_ns: u64) -> Result<Option<XsWatchEvent>, XenError> {
        const OP: &str = "xs read_watch";
        if let Some(e) = self.watches.pop_front() {
            return Ok(Some(e));
        }
        if !poll_in(self.stream.as_fd(), timeout_ns).map_err(|e| io(OP, e))? {
            return Ok(None);
        }
        let (h, body) = self.recv(OP)?;
        if h.type_ != xw::XS_WATCH_EVENT {
            return Err(proto(OP, format!("unexpected message of type {}", h.type_)));
        }
        self.queue_watch(&body);
        Ok(self.watches.pop_front())
    }

    /// TRANSACTION_START.
    ///
    /// # Errors
    /// As [`XsConn::request`]; a non-numeric id is a protocol error.
    pub fn transaction_start(&mut self) -> Result<XsTxId, XenError> {
        const OP: &str = "xs transaction_start";
        let r = self.request(OP, xw::XS_TRANSACTION_START, 0, b"\0")?;
        let s = one_string(OP, &r)?;
        s.parse()
            .map_err(|_| proto(OP, format!("transaction id {s:?}")))
    }

    /// TRANSACTION_END (`T` commits, `F` aborts); a conflict is `EAGAIN`.
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn transaction_end(&mut self, tx: XsTxId, commit: bool) -> Result<(), XenError> {
        let flag: &[u8] = if commit { b"T" } else { b"F" };
        self.request(
            "xs transaction_end",
            xw::XS_TRANSACTION_END,
            tx,
            &strings(&[flag]),
        )
        .map(|_| ())
    }

    /// INTRODUCE.
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> Result<(), XenError> {
        let (d, m, p) = (
            dom.get().to_string(),
            mfn.get().to_string(),
            port.get().to_string(),
        );
        self.request(
            "xs introduce",
            xw::XS_INTRODUCE,
            0,
            &strings(&[d.as_bytes(), m.as_bytes(), p.as_bytes()]),
        )
        .map(|_| ())
    }

    /// RELEASE.
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn release(&mut self, dom: DomId) -> Result<(), XenError> {
        let d = dom.get().to_string();
        self.request("xs release", xw::XS_RELEASE, 0, &strings(&[d.as_bytes()]))
            .map(|_| ())
    }

    /// GET_DOMAIN_PATH.
    ///
    /// # Errors
    /// As [`XsConn::request`].
    pub fn get_domain_path(&mut self, dom: DomId) -> Result<String, XenError> {
        const OP: &str = "xs get_domain_path";
        let d = dom.get().to_string();
        let r = self.request(OP, xw::XS_GET_DOMAIN_PATH, 0, &strings(&[d.as_bytes()]))?;
        one_string(OP, &r)
    }
}
