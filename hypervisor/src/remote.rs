//! The [`Xen`] trait over a byte stream: one host serves it, separate processes use it.
//!
//! - [`XenCall`] / [`XenReply`]: one serde value per trait call and per result. A call
//!   carries every input (ABI structs as their bytes, buffers as bytes, ids as raw
//!   integers); a reply carries the result *and* every buffer the call may have modified,
//!   whether it succeeded or not. The same pair is what a record/replay backend stores.
//! - [`dispatch`]: executes one [`XenCall`] on any backend.
//! - [`RemoteXen`]: a [`Xen`] backend that sends each call and waits for its reply.
//! - [`serve`] / [`serve_unix`]: the other end.
//!
//! Framing: a `u32` little-endian length, then that many bytes of postcard. A frame is
//! at most [`MAX_FRAME`] bytes; a longer claimed length is an error before anything of
//! that size is allocated (the body is read in bounded chunks as it arrives).
//!
//! The server is single-threaded and serves one connection at a time: the model is one
//! host, as a dom0 has one hypervisor. Device state (ports bound through the event
//! channel device, xenstore watches and transactions) belongs to the host, not to the
//! connection, so it outlives a client that disconnects.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zerocopy::{FromBytes, IntoBytes};

use crate::abi::domctl::XenDomctl;
use crate::abi::mm::{MmuUpdate, MmuextOp};
use crate::abi::sysctl::XenSysctl;
use crate::error::{Errno, XenError};
use crate::types::{DomId, Mfn, Port};
use crate::xen::{Xen, XsPerm, XsTxId, XsWatchEvent};

/// The largest frame either side sends or accepts (64 MiB: 16384 pages of
/// `foreign_read`, far above the toolstack's 1024-page batches).
pub const MAX_FRAME: usize = 64 << 20;

/// The op name used for errors of the transport itself.
const REMOTE_OP: &str = "remote";

// ---------------------------------------------------------------------------------
// Errors on the wire.

/// A [`XenError`] in serializable form; converts back with `XenError::from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    /// [`XenError::Xen`].
    Xen {
        /// The operation.
        op: String,
        /// Xen's errno (positive).
        errno: i32,
    },
    /// [`XenError::BadArgument`].
    BadArgument {
        /// The operation.
        op: String,
        /// What was wrong.
        what: String,
    },
    /// [`XenError::NoDevice`].
    NoDevice {
        /// The device path.
        path: String,
    },
    /// [`XenError::Io`], with the I/O error as its message.
    Io {
        /// The operation.
        op: String,
        /// The error's text.
        message: String,
    },
    /// [`XenError::NotImplemented`].
    NotImplemented {
        /// The operation.
        op: String,
        /// The backend that lacks it.
        backend: String,
    },
}

impl From<&XenError> for WireError {
    fn from(e: &XenError) -> Self {
        match e {
            XenError::Xen { op, errno } => WireError::Xen {
                op: (*op).to_owned(),
                errno: errno.0,
            },
            XenError::BadArgument { op, what } => WireError::BadArgument {
                op: (*op).to_owned(),
                what: what.clone(),
            },
            XenError::NoDevice { path } => WireError::NoDevice { path: path.clone() },
            XenError::Io { op, source } => WireError::Io {
                op: (*op).to_owned(),
                message: source.to_string(),
            },
            XenError::NotImplemented { op, backend } => WireError::NotImplemented {
                op: (*op).to_owned(),
                backend: (*backend).to_owned(),
            },
        }
    }
}

impl From<WireError> for XenError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Xen { op, errno } => XenError::Xen {
                op: intern(&op),
                errno: Errno(errno),
            },
            WireError::BadArgument { op, what } => XenError::BadArgument {
                op: intern(&op),
                what,
            },
            WireError::NoDevice { path } => XenError::NoDevice { path },
            WireError::Io { op, message } => XenError::Io {
                op: intern(&op),
                source: io::Error::other(message),
            },
            WireError::NotImplemented { op, backend } => XenError::NotImplemented {
                op: intern(&op),
                backend: intern(&backend),
            },
        }
    }
}

/// At most this many distinct op names are kept for the life of the process.
const MAX_INTERNED: usize = 1024;
/// Longer op names are not kept.
const MAX_NAME_LEN: usize = 96;

/// `XenError` names its op with a `&'static str`; names that arrive over the wire are
/// kept once each (a small, fixed set in practice, bounded here against a hostile peer).
fn intern(s: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&n) = names.get(s) {
        return n;
    }
    if names.len() >= MAX_INTERNED || s.len() > MAX_NAME_LEN {
        return "(remote op)";
    }
    let kept: &'static str = Box::leak(s.to_owned().into_boxed_str());
    names.insert(kept);
    kept
}

/// A result as carried in a [`XenReply`].
pub type WireResult<T> = Result<T, WireError>;

fn wire<T>(r: Result<T, XenError>) -> WireResult<T> {
    r.map_err(|e| WireError::from(&e))
}

/// Serializes `Vec<u8>` through serde's bytes path (same postcard encoding as a
/// sequence of `u8`: a varint length and the raw bytes, but copied in one go).
mod wire_bytes {
    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element()? {
                v.push(b);
            }
            Ok(v)
        }
    }
}

// ---------------------------------------------------------------------------------
// Calls and replies.

/// One call of the [`Xen`] trait with all of its inputs.
///
/// ABI structs travel as their bytes (`zerocopy::IntoBytes::as_bytes`), in/out buffers
/// with their current contents, out-only buffers as their lengths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum XenCall {
    /// [`Xen::backend_name`] (of the backend behind the server).
    BackendName,
    /// [`Xen::xen_version`].
    XenVersion {
        /// `XENVER_*`.
        cmd: u32,
        /// The argument buffer (in/out).
        #[serde(with = "wire_bytes")]
        arg: Vec<u8>,
    },
    /// [`Xen::domctl`].
    Domctl {
        /// The 144-byte `XenDomctl`.
        #[serde(with = "wire_bytes")]
        domctl: Vec<u8>,
        /// The payload's guest-handle buffer (in/out).
        #[serde(with = "wire_bytes")]
        buf: Vec<u8>,
    },
    /// [`Xen::sysctl`].
    Sysctl {
        /// The `XenSysctl` bytes.
        #[serde(with = "wire_bytes")]
        sysctl: Vec<u8>,
        /// The guest-handle buffer (in/out).
        #[serde(with = "wire_bytes")]
        buf: Vec<u8>,
    },
    /// [`Xen::memory_op`].
    MemoryOp {
        /// `XENMEM_*` (with any continuation bits).
        cmd: u32,
        /// The command's struct (in/out).
        #[serde(with = "wire_bytes")]
        arg: Vec<u8>,
        /// The array its handle points at (in/out).
        #[serde(with = "wire_bytes")]
        buf: Vec<u8>,
    },
    /// [`Xen::mmu_update`].
    MmuUpdate {
        /// The `MmuUpdate` array's bytes.
        #[serde(with = "wire_bytes")]
        reqs: Vec<u8>,
        /// `foreigndom`.
        foreigndom: u32,
    },
    /// [`Xen::mmuext_op`].
    MmuextOp {
        /// The `MmuextOp` array's bytes.
        #[serde(with = "wire_bytes")]
        ops: Vec<u8>,
        /// `foreigndom`.
        foreigndom: u32,
    },
    /// [`Xen::event_channel_op`].
    EventChannelOp {
        /// `EVTCHNOP_*`.
        cmd: u32,
        /// The op's struct (in/out).
        #[serde(with = "wire_bytes")]
        arg: Vec<u8>,
    },
    /// [`Xen::foreign_read`].
    ForeignRead {
        /// The domain.
        dom: u16,
        /// The frames.
        mfns: Vec<u64>,
        /// Length of the caller's page buffer.
        buf_len: u64,
        /// Length of the caller's error array.
        errs_len: u64,
    },
    /// [`Xen::foreign_write`].
    ForeignWrite {
        /// The domain.
        dom: u16,
        /// The frames.
        mfns: Vec<u64>,
        /// The page contents.
        #[serde(with = "wire_bytes")]
        buf: Vec<u8>,
        /// Length of the caller's error array.
        errs_len: u64,
    },
    /// [`Xen::evtchn_bind_interdomain`].
    EvtchnBindInterdomain {
        /// The remote domain.
        remote: u16,
        /// Its port.
        remote_port: u32,
    },
    /// [`Xen::evtchn_bind_unbound_port`].
    EvtchnBindUnboundPort {
        /// The domain allowed to bind it.
        remote: u16,
    },
    /// [`Xen::evtchn_bind_virq`].
    EvtchnBindVirq {
        /// The VIRQ.
        virq: u32,
    },
    /// [`Xen::evtchn_unbind`].
    EvtchnUnbind {
        /// The port.
        port: u32,
    },
    /// [`Xen::evtchn_notify`].
    EvtchnNotify {
        /// The port.
        port: u32,
    },
    /// [`Xen::evtchn_wait`].
    EvtchnWait {
        /// Timeout in (virtual) ns.
        timeout_ns: u64,
    },
    /// [`Xen::evtchn_unmask`].
    EvtchnUnmask {
        /// The port.
        port: u32,
    },
    /// [`Xen::xs_read`].
    XsRead {
        /// Transaction.
        tx: u32,
        /// Path.
        path: String,
    },
    /// [`Xen::xs_write`].
    XsWrite {
        /// Transaction.
        tx: u32,
        /// Path.
        path: String,
        /// Value.
        #[serde(with = "wire_bytes")]
        value: Vec<u8>,
    },
    /// [`Xen::xs_mkdir`].
    XsMkdir {
        /// Transaction.
        tx: u32,
        /// Path.
        path: String,
    },
    /// [`Xen::xs_rm`].
    XsRm {
        /// Transaction.
        tx: u32,
        /// Path.
        path: String,
    },
    /// [`Xen::xs_directory`].
    XsDirectory {
        /// Transaction.
        tx: u32,
        /// Path.
        path: String,
    },
    /// [`Xen::xs_get_perms`].
    XsGetPerms {
        /// Transaction.
        tx: u32,
        /// Path.
        path: String,
    },
    /// [`Xen::xs_set_perms`].
    XsSetPerms {
        /// Transaction.
        tx: u32,
        /// Path.
        path: String,
        /// Permissions in wire form (`"b0"`, `"r5"`, …).
        perms: Vec<String>,
    },
    /// [`Xen::xs_watch`].
    XsWatch {
        /// Path.
        path: String,
        /// Token.
        token: String,
    },
    /// [`Xen::xs_unwatch`].
    XsUnwatch {
        /// Path.
        path: String,
        /// Token.
        token: String,
    },
    /// [`Xen::xs_read_watch`].
    XsReadWatch {
        /// Timeout in (virtual) ns.
        timeout_ns: u64,
    },
    /// [`Xen::xs_transaction_start`].
    XsTransactionStart,
    /// [`Xen::xs_transaction_end`].
    XsTransactionEnd {
        /// Transaction.
        tx: u32,
        /// Commit (or abort).
        commit: bool,
    },
    /// [`Xen::xs_introduce`].
    XsIntroduce {
        /// The domain.
        dom: u16,
        /// Its store ring's MFN.
        mfn: u64,
        /// Its store event channel.
        port: u32,
    },
    /// [`Xen::xs_release`].
    XsRelease {
        /// The domain.
        dom: u16,
    },
    /// [`Xen::xs_get_domain_path`].
    XsGetDomainPath {
        /// The domain.
        dom: u16,
    },
    /// Not a trait call: asks a host daemon ([`host::serve_host`]) to stop once it has
    /// replied (`xi host stop`). [`dispatch`] refuses it.
    StopHost,
    /// [`Xen::resource_read`] (after `StopHost`: variants keep their wire numbers).
    ResourceRead {
        /// The domain.
        dom: u16,
        /// `XENMEM_resource_*`.
        type_: u16,
        /// The resource id.
        id: u32,
        /// First frame.
        frame: u64,
        /// Length of the caller's buffer.
        buf_len: u64,
    },
    /// [`Xen::resource_write`].
    ResourceWrite {
        /// The domain.
        dom: u16,
        /// `XENMEM_resource_*`.
        type_: u16,
        /// The resource id.
        id: u32,
        /// First frame.
        frame: u64,
        /// The frames' contents.
        #[serde(with = "wire_bytes")]
        data: Vec<u8>,
    },
}

impl XenCall {
    /// The trait method's name, for messages (e.g. a replay divergence).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            XenCall::BackendName => "backend_name",
            XenCall::XenVersion { .. } => "xen_version",
            XenCall::Domctl { .. } => "domctl",
            XenCall::Sysctl { .. } => "sysctl",
            XenCall::MemoryOp { .. } => "memory_op",
            XenCall::MmuUpdate { .. } => "mmu_update",
            XenCall::MmuextOp { .. } => "mmuext_op",
            XenCall::EventChannelOp { .. } => "event_channel_op",
            XenCall::ForeignRead { .. } => "foreign_read",
            XenCall::ForeignWrite { .. } => "foreign_write",
            XenCall::EvtchnBindInterdomain { .. } => "evtchn_bind_interdomain",
            XenCall::EvtchnBindUnboundPort { .. } => "evtchn_bind_unbound_port",
            XenCall::EvtchnBindVirq { .. } => "evtchn_bind_virq",
            XenCall::EvtchnUnbind { .. } => "evtchn_unbind",
            XenCall::EvtchnNotify { .. } => "evtchn_notify",
            XenCall::EvtchnWait { .. } => "evtchn_wait",
            XenCall::EvtchnUnmask { .. } => "evtchn_unmask",
            XenCall::XsRead { .. } => "xs_read",
            XenCall::XsWrite { .. } => "xs_write",
            XenCall::XsMkdir { .. } => "xs_mkdir",
            XenCall::XsRm { .. } => "xs_rm",
            XenCall::XsDirectory { .. } => "xs_directory",
            XenCall::XsGetPerms { .. } => "xs_get_perms",
            XenCall::XsSetPerms { .. } => "xs_set_perms",
            XenCall::XsWatch { .. } => "xs_watch",
            XenCall::XsUnwatch { .. } => "xs_unwatch",
            XenCall::XsReadWatch { .. } => "xs_read_watch",
            XenCall::XsTransactionStart => "xs_transaction_start",
            XenCall::XsTransactionEnd { .. } => "xs_transaction_end",
            XenCall::XsIntroduce { .. } => "xs_introduce",
            XenCall::XsRelease { .. } => "xs_release",
            XenCall::XsGetDomainPath { .. } => "xs_get_domain_path",
            XenCall::StopHost => "stop_host",
            XenCall::ResourceRead { .. } => "resource_read",
            XenCall::ResourceWrite { .. } => "resource_write",
        }
    }
}

/// A fired watch on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireWatchEvent {
    /// The path that changed.
    pub path: String,
    /// The watch's token.
    pub token: String,
}

/// The outcome of one [`XenCall`]: the result plus every buffer the call may modify
/// (present on failure too, since Xen may have written part of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum XenReply {
    /// The call was refused before reaching the backend (undecodable, malformed ABI
    /// bytes, oversized buffers). Valid as the reply to any call.
    Failed(WireError),
    /// For [`XenCall::BackendName`].
    BackendName(String),
    /// For [`XenCall::XenVersion`].
    XenVersion {
        /// The result.
        ret: WireResult<i64>,
        /// The argument buffer afterwards.
        #[serde(with = "wire_bytes")]
        arg: Vec<u8>,
    },
    /// For [`XenCall::Domctl`].
    Domctl {
        /// The result.
        ret: WireResult<i64>,
        /// The `XenDomctl` afterwards.
        #[serde(with = "wire_bytes")]
        domctl: Vec<u8>,
        /// The buffer afterwards.
        #[serde(with = "wire_bytes")]
        buf: Vec<u8>,
    },
    /// For [`XenCall::Sysctl`].
    Sysctl {
        /// The result.
        ret: WireResult<i64>,
        /// The `XenSysctl` afterwards.
        #[serde(with = "wire_bytes")]
        sysctl: Vec<u8>,
        /// The buffer afterwards.
        #[serde(with = "wire_bytes")]
        buf: Vec<u8>,
    },
    /// For [`XenCall::MemoryOp`].
    MemoryOp {
        /// The result.
        ret: WireResult<i64>,
        /// The struct afterwards.
        #[serde(with = "wire_bytes")]
        arg: Vec<u8>,
        /// The array afterwards.
        #[serde(with = "wire_bytes")]
        buf: Vec<u8>,
    },
    /// For [`XenCall::MmuUpdate`] and [`XenCall::MmuextOp`].
    Mmu {
        /// The result.
        ret: WireResult<i64>,
        /// How many requests completed.
        done: u32,
    },
    /// For [`XenCall::EventChannelOp`].
    EventChannelOp {
        /// The result.
        ret: WireResult<i64>,
        /// The struct afterwards.
        #[serde(with = "wire_bytes")]
        arg: Vec<u8>,
    },
    /// For [`XenCall::ForeignRead`].
    ForeignRead {
        /// The result.
        ret: WireResult<()>,
        /// The pages.
        #[serde(with = "wire_bytes")]
        buf: Vec<u8>,
        /// Per-page 0 or negative errno.
        errs: Vec<i32>,
    },
    /// For [`XenCall::ForeignWrite`].
    ForeignWrite {
        /// The result.
        ret: WireResult<()>,
        /// Per-page 0 or negative errno.
        errs: Vec<i32>,
    },
    /// A port (the evtchn binds).
    Port(WireResult<u32>),
    /// No value (unbind, notify, unmask, most xenstore writes).
    Unit(WireResult<()>),
    /// For [`XenCall::EvtchnWait`].
    Wait(WireResult<Option<u32>>),
    /// For [`XenCall::XsRead`].
    Value(WireResult<Vec<u8>>),
    /// For [`XenCall::XsDirectory`].
    Names(WireResult<Vec<String>>),
    /// For [`XenCall::XsGetPerms`] (wire form).
    Perms(WireResult<Vec<String>>),
    /// For [`XenCall::XsReadWatch`].
    Watch(WireResult<Option<WireWatchEvent>>),
    /// For [`XenCall::XsTransactionStart`].
    TxId(WireResult<u32>),
    /// For [`XenCall::XsGetDomainPath`].
    Path(WireResult<String>),
    /// For [`XenCall::ResourceRead`] (a resource write answers [`XenReply::Unit`]).
    ResourceRead {
        /// The result.
        ret: WireResult<()>,
        /// The frames.
        #[serde(with = "wire_bytes")]
        buf: Vec<u8>,
    },
}

// ---------------------------------------------------------------------------------
// Dispatch.

fn refused(what: String) -> XenReply {
    XenReply::Failed(WireError::BadArgument {
        op: REMOTE_OP.to_owned(),
        what,
    })
}

/// Decodes an array of ABI records from bytes that need not be aligned.
fn records<T: FromBytes>(what: &str, bytes: &[u8]) -> Result<Vec<T>, XenReply> {
    let size = std::mem::size_of::<T>();
    if bytes.len() % size != 0 {
        return Err(refused(format!(
            "{what}: {} bytes is not a multiple of {size}",
            bytes.len()
        )));
    }
    bytes
        .chunks_exact(size)
        .map(|c| T::read_from_bytes(c).map_err(|_| refused(format!("{what}: bad record"))))
        .collect()
}

/// A buffer length requested by the peer, bounded so that serving it fits in a frame.
fn out_len(what: &str, len: u64, elem: usize) -> Result<usize, XenReply> {
    match usize::try_from(len) {
        Ok(n) if n.checked_mul(elem).is_some_and(|b| b <= MAX_FRAME) => Ok(n),
        _ => Err(refused(format!(
            "{what}: {len} elements exceed the {MAX_FRAME}-byte frame limit"
        ))),
    }
}

fn perms_from_wire(perms: &[String]) -> Result<Vec<XsPerm>, XenReply> {
    perms
        .iter()
        .map(|p| {
            XsPerm::from_wire(p).ok_or_else(|| refused(format!("bad xenstore permission {p:?}")))
        })
        .collect()
}

/// Executes one call on `x` and returns everything it produced.
pub fn dispatch<X: Xen + ?Sized>(x: &mut X, call: XenCall) -> XenReply {
    dispatch_inner(x, call).unwrap_or_else(|refusal| refusal)
}

fn dispatch_inner<X: Xen + ?Sized>(x: &mut X, call: XenCall) -> Result<XenReply, XenReply> {
    Ok(match call {
        XenCall::BackendName => XenReply::BackendName(x.backend_name().to_owned()),
        XenCall::XenVersion { cmd, mut arg } => {
            let ret = wire(x.xen_version(cmd, &mut arg));
            XenReply::XenVersion { ret, arg }
        }
        XenCall::Domctl { domctl, mut buf } => {
            let mut d = XenDomctl::read_from_bytes(&domctl).map_err(|_| {
                refused(format!("domctl: {} bytes, not a xen_domctl", domctl.len()))
            })?;
            let ret = wire(x.domctl(&mut d, &mut buf));
            XenReply::Domctl {
                ret,
                domctl: d.as_bytes().to_vec(),
                buf,
            }
        }
        XenCall::Sysctl { sysctl, mut buf } => {
            let mut s = XenSysctl::read_from_bytes(&sysctl).map_err(|_| {
                refused(format!("sysctl: {} bytes, not a xen_sysctl", sysctl.len()))
            })?;
            let ret = wire(x.sysctl(&mut s, &mut buf));
            XenReply::Sysctl {
                ret,
                sysctl: s.as_bytes().to_vec(),
                buf,
            }
        }
        XenCall::MemoryOp {
            cmd,
            mut arg,
            mut buf,
        } => {
            let ret = wire(x.memory_op(cmd, &mut arg, &mut buf));
            XenReply::MemoryOp { ret, arg, buf }
        }
        XenCall::MmuUpdate { reqs, foreigndom } => {
            let reqs: Vec<MmuUpdate> = records("mmu_update", &reqs)?;
            let mut done = 0;
            let ret = wire(x.mmu_update(&reqs, &mut done, foreigndom));
            XenReply::Mmu { ret, done }
        }
        XenCall::MmuextOp { ops, foreigndom } => {
            let ops: Vec<MmuextOp> = records("mmuext_op", &ops)?;
            let mut done = 0;
            let ret = wire(x.mmuext_op(&ops, &mut done, foreigndom));
            XenReply::Mmu { ret, done }
        }
        XenCall::EventChannelOp { cmd, mut arg } => {
            let ret = wire(x.event_channel_op(cmd, &mut arg));
            XenReply::EventChannelOp { ret, arg }
        }
        XenCall::ForeignRead {
            dom,
            mfns,
            buf_len,
            errs_len,
        } => {
            let mut buf = vec![0u8; out_len("foreign_read buffer", buf_len, 1)?];
            let mut errs = vec![0i32; out_len("foreign_read errors", errs_len, 4)?];
            let mfns: Vec<Mfn> = mfns.into_iter().map(Mfn::new).collect();
            let ret = wire(x.foreign_read(DomId::new(dom), &mfns, &mut buf, &mut errs));
            XenReply::ForeignRead { ret, buf, errs }
        }
        XenCall::ForeignWrite {
            dom,
            mfns,
            buf,
            errs_len,
        } => {
            let mut errs = vec![0i32; out_len("foreign_write errors", errs_len, 4)?];
            let mfns: Vec<Mfn> = mfns.into_iter().map(Mfn::new).collect();
            let ret = wire(x.foreign_write(DomId::new(dom), &mfns, &buf, &mut errs));
            XenReply::ForeignWrite { ret, errs }
        }
        XenCall::ResourceRead {
            dom,
            type_,
            id,
            frame,
            buf_len,
        } => {
            let mut buf = vec![0u8; out_len("resource_read buffer", buf_len, 1)?];
            let ret = wire(x.resource_read(DomId::new(dom), type_, id, frame, &mut buf));
            XenReply::ResourceRead { ret, buf }
        }
        XenCall::ResourceWrite {
            dom,
            type_,
            id,
            frame,
            data,
        } => XenReply::Unit(wire(x.resource_write(
            DomId::new(dom),
            type_,
            id,
            frame,
            &data,
        ))),
        XenCall::EvtchnBindInterdomain {
            remote,
            remote_port,
        } => XenReply::Port(wire(
            x.evtchn_bind_interdomain(DomId::new(remote), Port::new(remote_port))
                .map(Port::get),
        )),
        XenCall::EvtchnBindUnboundPort { remote } => XenReply::Port(wire(
            x.evtchn_bind_unbound_port(DomId::new(remote))
                .map(Port::get),
        )),
        XenCall::EvtchnBindVirq { virq } => {
            XenReply::Port(wire(x.evtchn_bind_virq(virq).map(Port::get)))
        }
        XenCall::EvtchnUnbind { port } => XenReply::Unit(wire(x.evtchn_unbind(Port::new(port)))),
        XenCall::EvtchnNotify { port } => XenReply::Unit(wire(x.evtchn_notify(Port::new(port)))),
        XenCall::EvtchnWait { timeout_ns } => {
            XenReply::Wait(wire(x.evtchn_wait(timeout_ns).map(|p| p.map(Port::get))))
        }
        XenCall::EvtchnUnmask { port } => XenReply::Unit(wire(x.evtchn_unmask(Port::new(port)))),
        XenCall::XsRead { tx, path } => XenReply::Value(wire(x.xs_read(tx, &path))),
        XenCall::XsWrite { tx, path, value } => XenReply::Unit(wire(x.xs_write(tx, &path, &value))),
        XenCall::XsMkdir { tx, path } => XenReply::Unit(wire(x.xs_mkdir(tx, &path))),
        XenCall::XsRm { tx, path } => XenReply::Unit(wire(x.xs_rm(tx, &path))),
        XenCall::XsDirectory { tx, path } => XenReply::Names(wire(x.xs_directory(tx, &path))),
        XenCall::XsGetPerms { tx, path } => XenReply::Perms(wire(
            x.xs_get_perms(tx, &path)
                .map(|ps| ps.iter().map(XsPerm::to_wire).collect()),
        )),
        XenCall::XsSetPerms { tx, path, perms } => {
            let perms = perms_from_wire(&perms)?;
            XenReply::Unit(wire(x.xs_set_perms(tx, &path, &perms)))
        }
        XenCall::XsWatch { path, token } => XenReply::Unit(wire(x.xs_watch(&path, &token))),
        XenCall::XsUnwatch { path, token } => XenReply::Unit(wire(x.xs_unwatch(&path, &token))),
        XenCall::XsReadWatch { timeout_ns } => {
            XenReply::Watch(wire(x.xs_read_watch(timeout_ns).map(|e| {
                e.map(|XsWatchEvent { path, token }| WireWatchEvent { path, token })
            })))
        }
        XenCall::XsTransactionStart => XenReply::TxId(wire(x.xs_transaction_start())),
        XenCall::XsTransactionEnd { tx, commit } => {
            XenReply::Unit(wire(x.xs_transaction_end(tx, commit)))
        }
        XenCall::XsIntroduce { dom, mfn, port } => XenReply::Unit(wire(x.xs_introduce(
            DomId::new(dom),
            Mfn::new(mfn),
            Port::new(port),
        ))),
        XenCall::XsRelease { dom } => XenReply::Unit(wire(x.xs_release(DomId::new(dom)))),
        XenCall::XsGetDomainPath { dom } => {
            XenReply::Path(wire(x.xs_get_domain_path(DomId::new(dom))))
        }
        XenCall::StopHost => {
            return Err(refused(
                "stop_host: this server is not a host daemon".into(),
            ))
        }
    })
}

// ---------------------------------------------------------------------------------
// Framing.

/// Writes one frame: `u32` little-endian length, then `payload`.
///
/// # Errors
/// `InvalidInput` if `payload` exceeds [`MAX_FRAME`] (nothing is written), or the
/// stream's error.
pub fn write_frame<W: Write + ?Sized>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
                payload.len()
            ),
        ));
    }
    let len = u32::try_from(payload.len()).expect("MAX_FRAME fits in u32");
    w.write_all(&len.to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` on a clean end of stream before its first byte.
///
/// # Errors
/// `InvalidData` if the claimed length exceeds [`MAX_FRAME`] (checked before any
/// allocation), `UnexpectedEof` if the stream ends inside a frame, or the stream's error.
pub fn read_frame<R: Read + ?Sized>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    read_frame_until(r, &|| false)
}

/// How a read at a frame boundary ended.
#[derive(Debug, PartialEq, Eq)]
enum Boundary<T> {
    /// The buffer is full (or the frame complete).
    Done(T),
    /// The peer closed the stream cleanly before the first byte.
    Eof,
    /// A read timed out before the first byte and `stop` said to stop.
    Stopped,
}

/// Fills `buf` from `r`. Read timeouts are retried, except that a timeout before the
/// first byte of a frame header (`at_boundary`) asks `stop`, and stops if it says so.
///
/// With `stall`, a peer that sends nothing for that long once a frame has begun is an
/// error (`TimedOut`), so a client that stops half-way cannot hold a server forever.
fn fill<R: Read + ?Sized>(
    r: &mut R,
    buf: &mut [u8],
    at_boundary: bool,
    stop: &dyn Fn() -> bool,
    stall: Option<std::time::Duration>,
) -> io::Result<Boundary<()>> {
    let mut got = 0;
    let mut waiting_since: Option<std::time::Instant> = None;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 && at_boundary => return Ok(Boundary::Eof),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a frame",
                ))
            }
            Ok(n) => {
                got += n;
                waiting_since = None;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if got == 0 && at_boundary {
                    if stop() {
                        return Ok(Boundary::Stopped);
                    }
                } else if let Some(limit) = stall {
                    if waiting_since
                        .get_or_insert_with(std::time::Instant::now)
                        .elapsed()
                        >= limit
                    {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("peer sent nothing for {limit:?} inside a frame"),
                        ));
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Boundary::Done(()))
}

fn read_frame_until<R: Read + ?Sized>(
    r: &mut R,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<Vec<u8>>> {
    match read_frame_or_stop(r, stop, None)? {
        Boundary::Done(f) => Ok(Some(f)),
        Boundary::Eof | Boundary::Stopped => Ok(None),
    }
}

fn read_frame_or_stop<R: Read + ?Sized>(
    r: &mut R,
    stop: &dyn Fn() -> bool,
    stall: Option<std::time::Duration>,
) -> io::Result<Boundary<Vec<u8>>> {
    let mut header = [0u8; 4];
    match fill(r, &mut header, true, stop, stall)? {
        Boundary::Done(()) => {}
        Boundary::Eof => return Ok(Boundary::Eof),
        Boundary::Stopped => return Ok(Boundary::Stopped),
    }
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer claims a {len}-byte frame; the limit is {MAX_FRAME}"),
        ));
    }
    // Grow the buffer as data arrives, so a peer that claims a large frame and sends
    // little costs little.
    const CHUNK: usize = 1 << 20;
    let mut body = Vec::with_capacity(len.min(CHUNK));
    while body.len() < len {
        let start = body.len();
        body.resize(start + (len - start).min(CHUNK), 0);
        fill(r, &mut body[start..], false, stop, stall)?;
    }
    Ok(Boundary::Done(body))
}

fn send<W: Write + ?Sized, T: Serialize>(w: &mut W, v: &T) -> io::Result<()> {
    let bytes =
        postcard::to_stdvec(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    write_frame(w, &bytes)
}

fn decode<T: DeserializeOwned>(frame: &[u8]) -> io::Result<T> {
    postcard::from_bytes(frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

// ---------------------------------------------------------------------------------
// Server.

/// Serves calls on one connection until the peer closes it.
///
/// A frame that does not decode as a [`XenCall`] gets a [`XenReply::Failed`] and the
/// connection goes on (the framing is intact).
///
/// # Errors
/// The stream's errors, an oversized or truncated frame (the connection cannot be
/// resynchronised, so serving ends).
pub fn serve<X: Xen + ?Sized, S: Read + Write>(x: &mut X, stream: S) -> io::Result<()> {
    serve_until(x, stream, &|| false)
}

fn serve_until<X: Xen + ?Sized, S: Read + Write>(
    x: &mut X,
    mut stream: S,
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    while let Some(frame) = read_frame_until(&mut stream, stop)? {
        let reply = match decode::<XenCall>(&frame) {
            Ok(call) => dispatch(x, call),
            Err(e) => refused(format!("undecodable call: {e}")),
        };
        send(&mut stream, &reply)?;
    }
    Ok(())
}

/// How often an idle [`serve_unix`] looks at its `stop` condition.
#[cfg(unix)]
const POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Serves connections on `listener` one after another, all on `x`, until `stop()`
/// returns true. Single-threaded: a second client waits in the listen queue until
/// the first disconnects. `stop` is checked about every 50 ms while no call is in
/// progress, also while a client is connected (which is then dropped).
///
/// A failing connection (I/O error, oversized frame) ends only that connection.
///
/// # Errors
/// Errors of the listener itself.
#[cfg(unix)]
pub fn serve_unix<X: Xen + ?Sized>(
    x: &mut X,
    listener: std::os::unix::net::UnixListener,
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    while !stop() {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false)?;
                conn.set_read_timeout(Some(POLL))?;
                // The connection's own failure is its client's problem, not the host's.
                let _ = serve_until(x, &conn, stop);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Client.

/// A [`Xen`] backend that forwards every call over `stream` to a [`serve`]r.
///
/// After a transport failure (I/O error, malformed or mismatched reply) the
/// connection is considered out of step and every later call fails.
#[derive(Debug)]
pub struct RemoteXen<S: Read + Write> {
    stream: S,
    broken: Option<String>,
}

#[cfg(unix)]
impl RemoteXen<std::os::unix::net::UnixStream> {
    /// Connects to a server's Unix socket.
    ///
    /// # Errors
    /// [`XenError::Io`] if the socket cannot be reached.
    pub fn connect(path: impl AsRef<std::path::Path>) -> Result<Self, XenError> {
        let stream = std::os::unix::net::UnixStream::connect(path.as_ref()).map_err(|source| {
            XenError::Io {
                op: "connect to xi host",
                source,
            }
        })?;
        Ok(RemoteXen::new(stream))
    }
}

fn protocol(op: &'static str, what: impl Into<String>) -> XenError {
    XenError::Io {
        op,
        source: io::Error::new(io::ErrorKind::InvalidData, what.into()),
    }
}

impl<S: Read + Write> RemoteXen<S> {
    /// A client over an already connected stream.
    pub fn new(stream: S) -> Self {
        RemoteXen {
            stream,
            broken: None,
        }
    }

    /// The stream back.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// The server's own backend name (e.g. `"model"`).
    ///
    /// # Errors
    /// Transport errors.
    pub fn server_backend(&mut self) -> Result<String, XenError> {
        match self.call(&XenCall::BackendName)? {
            XenReply::BackendName(n) => Ok(n),
            other => Err(self.mismatch("backend_name", &other)),
        }
    }

    /// Asks a host daemon ([`host::serve_host`]) to stop; it replies, then closes the
    /// connection and stops serving.
    ///
    /// # Errors
    /// The refusal of a server that is not a host daemon, or transport errors.
    pub fn stop_host(&mut self) -> Result<(), XenError> {
        self.unit(&XenCall::StopHost)
    }

    /// Sends one call and returns its reply; a [`XenReply::Failed`] becomes `Err`.
    ///
    /// # Errors
    /// The refusal, or transport errors.
    pub fn call(&mut self, call: &XenCall) -> Result<XenReply, XenError> {
        let op = call.name();
        if let Some(why) = &self.broken {
            return Err(XenError::Io {
                op,
                source: io::Error::new(io::ErrorKind::NotConnected, why.clone()),
            });
        }
        let bytes = postcard::to_stdvec(call).map_err(|e| protocol(op, e.to_string()))?;
        if bytes.len() > MAX_FRAME {
            return Err(XenError::BadArgument {
                op,
                what: format!(
                    "a {}-byte call exceeds the {MAX_FRAME}-byte frame limit",
                    bytes.len()
                ),
            });
        }
        let reply = write_frame(&mut self.stream, &bytes).and_then(|()| {
            read_frame(&mut self.stream)?
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )
                })
                .and_then(|frame| decode::<XenReply>(&frame))
        });
        match reply {
            Ok(XenReply::Failed(e)) => Err(e.into()),
            Ok(r) => Ok(r),
            Err(source) => {
                self.broken = Some(format!("connection lost: {source}"));
                Err(XenError::Io { op, source })
            }
        }
    }

    fn mismatch(&mut self, op: &'static str, got: &XenReply) -> XenError {
        let what = format!("reply of the wrong kind for {op}: {}", reply_kind(got));
        self.broken = Some(what.clone());
        protocol(op, what)
    }

    /// Copies a returned buffer back into the caller's, which must be the same size.
    fn copy_back(&mut self, op: &'static str, dst: &mut [u8], src: &[u8]) -> Result<(), XenError> {
        if dst.len() != src.len() {
            let what = format!(
                "reply buffer of {} bytes for a {}-byte buffer",
                src.len(),
                dst.len()
            );
            self.broken = Some(what.clone());
            return Err(protocol(op, what));
        }
        dst.copy_from_slice(src);
        Ok(())
    }

    fn copy_errs(
        &mut self,
        op: &'static str,
        dst: &mut [i32],
        src: &[i32],
    ) -> Result<(), XenError> {
        if dst.len() != src.len() {
            let what = format!("{} error slots returned for {}", src.len(), dst.len());
            self.broken = Some(what.clone());
            return Err(protocol(op, what));
        }
        dst.copy_from_slice(src);
        Ok(())
    }

    fn unit(&mut self, call: &XenCall) -> Result<(), XenError> {
        match self.call(call)? {
            XenReply::Unit(r) => r.map_err(Into::into),
            other => Err(self.mismatch(call.name(), &other)),
        }
    }

    fn port(&mut self, call: &XenCall) -> Result<Port, XenError> {
        match self.call(call)? {
            XenReply::Port(r) => r.map(Port::new).map_err(Into::into),
            other => Err(self.mismatch(call.name(), &other)),
        }
    }
}

fn reply_kind(r: &XenReply) -> &'static str {
    match r {
        XenReply::Failed(_) => "Failed",
        XenReply::BackendName(_) => "BackendName",
        XenReply::XenVersion { .. } => "XenVersion",
        XenReply::Domctl { .. } => "Domctl",
        XenReply::Sysctl { .. } => "Sysctl",
        XenReply::MemoryOp { .. } => "MemoryOp",
        XenReply::Mmu { .. } => "Mmu",
        XenReply::EventChannelOp { .. } => "EventChannelOp",
        XenReply::ForeignRead { .. } => "ForeignRead",
        XenReply::ForeignWrite { .. } => "ForeignWrite",
        XenReply::Port(_) => "Port",
        XenReply::Unit(_) => "Unit",
        XenReply::Wait(_) => "Wait",
        XenReply::Value(_) => "Value",
        XenReply::Names(_) => "Names",
        XenReply::Perms(_) => "Perms",
        XenReply::Watch(_) => "Watch",
        XenReply::TxId(_) => "TxId",
        XenReply::Path(_) => "Path",
        XenReply::ResourceRead { .. } => "ResourceRead",
    }
}

impl<S: Read + Write> Xen for RemoteXen<S> {
    fn backend_name(&self) -> &'static str {
        "remote"
    }

    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        let op = "xen_version";
        match self.call(&XenCall::XenVersion {
            cmd,
            arg: arg.to_vec(),
        })? {
            XenReply::XenVersion { ret, arg: a } => {
                self.copy_back(op, arg, &a)?;
                ret.map_err(Into::into)
            }
            other => Err(self.mismatch(op, &other)),
        }
    }

    fn domctl(&mut self, domctl: &mut XenDomctl, buf: &mut [u8]) -> Result<i64, XenError> {
        let op = "domctl";
        let call = XenCall::Domctl {
            domctl: domctl.as_bytes().to_vec(),
            buf: buf.to_vec(),
        };
        match self.call(&call)? {
            XenReply::Domctl {
                ret,
                domctl: d,
                buf: b,
            } => {
                self.copy_back(op, domctl.as_mut_bytes(), &d)?;
                self.copy_back(op, buf, &b)?;
                ret.map_err(Into::into)
            }
            other => Err(self.mismatch(op, &other)),
        }
    }

    fn sysctl(&mut self, sysctl: &mut XenSysctl, buf: &mut [u8]) -> Result<i64, XenError> {
        let op = "sysctl";
        let call = XenCall::Sysctl {
            sysctl: sysctl.as_bytes().to_vec(),
            buf: buf.to_vec(),
        };
        match self.call(&call)? {
            XenReply::Sysctl {
                ret,
                sysctl: s,
                buf: b,
            } => {
                self.copy_back(op, sysctl.as_mut_bytes(), &s)?;
                self.copy_back(op, buf, &b)?;
                ret.map_err(Into::into)
            }
            other => Err(self.mismatch(op, &other)),
        }
    }

    fn memory_op(&mut self, cmd: u32, arg: &mut [u8], buf: &mut [u8]) -> Result<i64, XenError> {
        let op = "memory_op";
        let call = XenCall::MemoryOp {
            cmd,
            arg: arg.to_vec(),
            buf: buf.to_vec(),
        };
        match self.call(&call)? {
            XenReply::MemoryOp {
                ret,
                arg: a,
                buf: b,
            } => {
                self.copy_back(op, arg, &a)?;
                self.copy_back(op, buf, &b)?;
                ret.map_err(Into::into)
            }
            other => Err(self.mismatch(op, &other)),
        }
    }

    fn mmu_update(
        &mut self,
        reqs: &[MmuUpdate],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        let call = XenCall::MmuUpdate {
            reqs: reqs.as_bytes().to_vec(),
            foreigndom,
        };
        match self.call(&call)? {
            XenReply::Mmu { ret, done: d } => {
                *done = d;
                ret.map_err(Into::into)
            }
            other => Err(self.mismatch("mmu_update", &other)),
        }
    }

    fn mmuext_op(
        &mut self,
        ops: &[MmuextOp],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        let call = XenCall::MmuextOp {
            ops: ops.as_bytes().to_vec(),
            foreigndom,
        };
        match self.call(&call)? {
            XenReply::Mmu { ret, done: d } => {
                *done = d;
                ret.map_err(Into::into)
            }
            other => Err(self.mismatch("mmuext_op", &other)),
        }
    }

    fn event_channel_op(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        let op = "event_channel_op";
        match self.call(&XenCall::EventChannelOp {
            cmd,
            arg: arg.to_vec(),
        })? {
            XenReply::EventChannelOp { ret, arg: a } => {
                self.copy_back(op, arg, &a)?;
                ret.map_err(Into::into)
            }
            other => Err(self.mismatch(op, &other)),
        }
    }

    fn foreign_read(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &mut [u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        let op = "foreign_read";
        let call = XenCall::ForeignRead {
            dom: dom.get(),
            mfns: mfns.iter().map(|m| m.get()).collect(),
            buf_len: buf.len() as u64,
            errs_len: errs.len() as u64,
        };
        match self.call(&call)? {
            XenReply::ForeignRead {
                ret,
                buf: b,
                errs: e,
            } => {
                self.copy_back(op, buf, &b)?;
                self.copy_errs(op, errs, &e)?;
                ret.map_err(Into::into)
            }
            other => Err(self.mismatch(op, &other)),
        }
    }

    fn foreign_write(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &[u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        let op = "foreign_write";
        let call = XenCall::ForeignWrite {
            dom: dom.get(),
            mfns: mfns.iter().map(|m| m.get()).collect(),
            buf: buf.to_vec(),
            errs_len: errs.len() as u64,
        };
        match self.call(&call)? {
            XenReply::ForeignWrite { ret, errs: e } => {
                self.copy_errs(op, errs, &e)?;
                ret.map_err(Into::into)
            }
            other => Err(self.mismatch(op, &other)),
        }
    }

    fn resource_read(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        buf: &mut [u8],
    ) -> Result<(), XenError> {
        let op = "resource_read";
        let call = XenCall::ResourceRead {
            dom: dom.get(),
            type_,
            id,
            frame,
            buf_len: buf.len() as u64,
        };
        match self.call(&call)? {
            XenReply::ResourceRead { ret, buf: b } => {
                self.copy_back(op, buf, &b)?;
                ret.map_err(Into::into)
            }
            other => Err(self.mismatch(op, &other)),
        }
    }

    fn resource_write(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        data: &[u8],
    ) -> Result<(), XenError> {
        self.unit(&XenCall::ResourceWrite {
            dom: dom.get(),
            type_,
            id,
            frame,
            data: data.to_vec(),
        })
    }

    fn evtchn_bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Port, XenError> {
        self.port(&XenCall::EvtchnBindInterdomain {
            remote: remote.get(),
            remote_port: remote_port.get(),
        })
    }

    fn evtchn_bind_unbound_port(&mut self, remote: DomId) -> Result<Port, XenError> {
        self.port(&XenCall::EvtchnBindUnboundPort {
            remote: remote.get(),
        })
    }

    fn evtchn_bind_virq(&mut self, virq: u32) -> Result<Port, XenError> {
        self.port(&XenCall::EvtchnBindVirq { virq })
    }

    fn evtchn_unbind(&mut self, port: Port) -> Result<(), XenError> {
        self.unit(&XenCall::EvtchnUnbind { port: port.get() })
    }

    fn evtchn_notify(&mut self, port: Port) -> Result<(), XenError> {
        self.unit(&XenCall::EvtchnNotify { port: port.get() })
    }

    fn evtchn_wait(&mut self, timeout_ns: u64) -> Result<Option<Port>, XenError> {
        match self.call(&XenCall::EvtchnWait { timeout_ns })? {
            XenReply::Wait(r) => r.map(|p| p.map(Port::new)).map_err(Into::into),
            other => Err(self.mismatch("evtchn_wait", &other)),
        }
    }

    fn evtchn_unmask(&mut self, port: Port) -> Result<(), XenError> {
        self.unit(&XenCall::EvtchnUnmask { port: port.get() })
    }

    fn xs_read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError> {
        match self.call(&XenCall::XsRead {
            tx,
            path: path.to_owned(),
        })? {
            XenReply::Value(r) => r.map_err(Into::into),
            other => Err(self.mismatch("xs_read", &other)),
        }
    }

    fn xs_write(&mut self, tx: XsTxId, path: &str, value: &[u8]) -> Result<(), XenError> {
        self.unit(&XenCall::XsWrite {
            tx,
            path: path.to_owned(),
            value: value.to_vec(),
        })
    }

    fn xs_mkdir(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        self.unit(&XenCall::XsMkdir {
            tx,
            path: path.to_owned(),
        })
    }

    fn xs_rm(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        self.unit(&XenCall::XsRm {
            tx,
            path: path.to_owned(),
        })
    }

    fn xs_directory(&mut self, tx: XsTxId, path: &str) -> Result<Vec<String>, XenError> {
        match self.call(&XenCall::XsDirectory {
            tx,
            path: path.to_owned(),
        })? {
            XenReply::Names(r) => r.map_err(Into::into),
            other => Err(self.mismatch("xs_directory", &other)),
        }
    }

    fn xs_get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError> {
        let op = "xs_get_perms";
        match self.call(&XenCall::XsGetPerms {
            tx,
            path: path.to_owned(),
        })? {
            XenReply::Perms(r) => {
                let perms = r.map_err(XenError::from)?;
                let parsed: Option<Vec<XsPerm>> =
                    perms.iter().map(|p| XsPerm::from_wire(p)).collect();
                match parsed {
                    Some(p) => Ok(p),
                    None => {
                        let what = format!("malformed permissions in reply: {perms:?}");
                        self.broken = Some(what.clone());
                        Err(protocol(op, what))
                    }
                }
            }
            other => Err(self.mismatch(op, &other)),
        }
    }

    fn xs_set_perms(&mut self, tx: XsTxId, path: &str, perms: &[XsPerm]) -> Result<(), XenError> {
        self.unit(&XenCall::XsSetPerms {
            tx,
            path: path.to_owned(),
            perms: perms.iter().map(XsPerm::to_wire).collect(),
        })
    }

    fn xs_watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        self.unit(&XenCall::XsWatch {
            path: path.to_owned(),
            token: token.to_owned(),
        })
    }

    fn xs_unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        self.unit(&XenCall::XsUnwatch {
            path: path.to_owned(),
            token: token.to_owned(),
        })
    }

    fn xs_read_watch(&mut self, timeout_ns: u64) -> Result<Option<XsWatchEvent>, XenError> {
        match self.call(&XenCall::XsReadWatch { timeout_ns })? {
            XenReply::Watch(r) => r
                .map(|e| e.map(|WireWatchEvent { path, token }| XsWatchEvent { path, token }))
                .map_err(Into::into),
            other => Err(self.mismatch("xs_read_watch", &other)),
        }
    }

    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError> {
        match self.call(&XenCall::XsTransactionStart)? {
            XenReply::TxId(r) => r.map_err(Into::into),
            other => Err(self.mismatch("xs_transaction_start", &other)),
        }
    }

    fn xs_transaction_end(&mut self, tx: XsTxId, commit: bool) -> Result<(), XenError> {
        self.unit(&XenCall::XsTransactionEnd { tx, commit })
    }

    fn xs_introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> Result<(), XenError> {
        self.unit(&XenCall::XsIntroduce {
            dom: dom.get(),
            mfn: mfn.get(),
            port: port.get(),
        })
    }

    fn xs_release(&mut self, dom: DomId) -> Result<(), XenError> {
        self.unit(&XenCall::XsRelease { dom: dom.get() })
    }

    fn xs_get_domain_path(&mut self, dom: DomId) -> Result<String, XenError> {
        match self.call(&XenCall::XsGetDomainPath { dom: dom.get() })? {
            XenReply::Path(r) => r.map_err(Into::into),
            other => Err(self.mismatch("xs_get_domain_path", &other)),
        }
    }
}

#[cfg(unix)]
pub mod host;

#[cfg(all(test, unix))]
mod tests;
