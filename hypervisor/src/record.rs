//! Record and replay of [`Xen`] trait calls.
//!
//! - [`Recorder`] wraps any backend and appends every call it forwards — all inputs,
//!   the result and every buffer the call may have modified — to a [`Trace`].
//! - [`Replayer`] is a backend without a hypervisor: it serves a recorded [`Trace`],
//!   checking that each call it receives is exactly the recorded one (same method, same
//!   argument bytes). On the first difference it stops with a [`Divergence`] naming the
//!   call index, the expected call and the actual one; every later call fails too.
//!
//! A call and its outcome are the [`XenCall`] / [`XenReply`] pair of the
//! [`remote`](crate::remote) protocol, so a trace recorded on the model, over a socket
//! or on a real dom0 (feature `hw`) replays against the toolstack the same way.
//!
//! [`Xen::backend_name`] takes `&self` and is not recorded.
//!
//! # File format (version [`TRACE_VERSION`])
//!
//! ```text
//! offset 0   8 bytes   magic "XITRACE\n"
//! offset 8   u32 LE    format version (1)
//! offset 12  ...       zero-run packed postcard encoding of `Trace`
//! ```
//!
//! Postcard keeps a trace compact and byte-for-byte deterministic; the packing removes
//! the runs of zero bytes that dominate guest pages (a run of `n` zeros, `n >= 1`,
//! becomes `0x00` followed by the LEB128 varint `n`; any other byte stands for itself).
//! The [`Trace::header`] repeats the version and says which backend and program made
//! the trace. [`Trace::dump`] gives a stable, line-per-call text form for review and
//! snapshots (buffers longer than 16 bytes appear as their length and FNV-1a digest).

use std::fmt::{self, Write as _};
use std::io;

use serde::{Deserialize, Serialize};
use zerocopy::IntoBytes;

use crate::abi::domctl::XenDomctl;
use crate::abi::mm::{MmuUpdate, MmuextOp};
use crate::abi::sysctl::XenSysctl;
use crate::error::XenError;
use crate::remote::{WireError, WireResult, WireWatchEvent, XenCall, XenReply};
use crate::types::{DomId, Mfn, Port};
use crate::xen::{Xen, XsPerm, XsTxId, XsWatchEvent};

/// The magic at the start of a trace file.
pub const TRACE_MAGIC: [u8; 8] = *b"XITRACE\n";
/// The trace format version this code reads and writes.
pub const TRACE_VERSION: u32 = 1;

/// What a trace says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// [`TRACE_VERSION`] when written.
    pub version: u32,
    /// [`Xen::backend_name`] of the recorded backend (`"model"`, `"hw"`, `"remote"`).
    pub backend: String,
    /// Free text: what was recorded and how (e.g. the command that made it).
    pub note: String,
}

/// One recorded call and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// The call with all its inputs.
    pub call: XenCall,
    /// The result and every buffer afterwards.
    pub reply: XenReply,
}

/// A recorded sequence of calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// About the trace.
    pub header: TraceHeader,
    /// The calls, in order.
    pub entries: Vec<TraceEntry>,
}

/// Why a trace file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file does not start with [`TRACE_MAGIC`].
    #[error("not an xi trace (bad magic)")]
    BadMagic,
    /// The file is of a version this code does not read.
    #[error("trace format version {found}, this xi reads version {TRACE_VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
    /// The packed body is malformed (a zero-run marker without a valid length).
    #[error("trace body malformed at byte {offset}: {what}")]
    Packing {
        /// Offset in the file.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The body does not decode as a trace (a truncated or corrupt file).
    #[error("trace does not decode at byte {offset} ({part}): {what}")]
    Decode {
        /// Offset in the file of the start of the part that does not decode (for a
        /// byte inside a zero run, the run's marker).
        offset: usize,
        /// What was being decoded: `header`, `call count` or `entry #N`.
        part: String,
        /// The decoder's complaint.
        what: String,
    },
}

/// Largest unpacked body accepted (guards against a hostile zero-run length).
const MAX_UNPACKED: usize = 1 << 30;

fn pack_zero_runs(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4);
    let mut i = 0;
    while i < data.len() {
        if data[i] != 0 {
            out.push(data[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < data.len() && data[i] == 0 {
            i += 1;
        }
        out.push(0);
        let mut n = (i - start) as u64;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
    out
}

fn unpack_zero_runs(data: &[u8], base: usize) -> Result<Vec<u8>, TraceError> {
    let mut out = Vec::with_capacity(data.len() * 2);
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        i += 1;
        if b != 0 {
            out.push(b);
            continue;
        }
        let at = base + i - 1;
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let Some(&c) = data.get(i) else {
                return Err(TraceError::Packing {
                    offset: at,
                    what: "zero run without a length",
                });
            };
            i += 1;
            if shift > 56 {
                return Err(TraceError::Packing {
                    offset: at,
                    what: "zero-run length varint too long",
                });
            }
            n |= u64::from(c & 0x7f) << shift;
            shift += 7;
            if c & 0x80 == 0 {
                break;
            }
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n == 0 || out.len().saturating_add(n) > MAX_UNPACKED {
            return Err(TraceError::Packing {
                offset: at,
                what: "zero-run length is 0 or exceeds the 1 GiB limit",
            });
        }
        out.resize(out.len() + n, 0);
    }
    Ok(out)
}

/// The offset in `packed` of the byte that unpacks to position `pos` (for a position
/// inside a zero run, the run's marker; `packed.len()` past the end).
fn packed_offset(packed: &[u8], pos: usize) -> usize {
    let mut unpacked = 0usize;
    let mut i = 0;
    while i < packed.len() {
        if unpacked >= pos {
            return i;
        }
        let at = i;
        i += 1;
        if packed[at] != 0 {
            unpacked += 1;
            continue;
        }
        let mut n: u64 = 0;
        let mut shift = 0;
        while let Some(&c) = packed.get(i) {
            i += 1;
            n |= u64::from(c & 0x7f).checked_shl(shift).unwrap_or(0);
            shift += 7;
            if c & 0x80 == 0 {
                break;
            }
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if pos < unpacked.saturating_add(n) {
            return at;
        }
        unpacked = unpacked.saturating_add(n);
    }
    packed.len()
}

impl Trace {
    /// An empty trace.
    #[must_use]
    pub fn new(backend: &str, note: &str) -> Trace {
        Trace {
            header: TraceHeader {
                version: TRACE_VERSION,
                backend: backend.to_owned(),
                note: note.to_owned(),
            },
            entries: Vec::new(),
        }
    }

    /// The file form (see the module doc).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        let body = postcard::to_stdvec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(12 + body.len() / 4);
        out.extend_from_slice(&TRACE_MAGIC);
        out.extend_from_slice(&TRACE_VERSION.to_le_bytes());
        out.extend_from_slice(&pack_zero_runs(&body));
        out
    }

    /// Parses the file form.
    ///
    /// # Errors
    /// [`TraceError`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Trace, TraceError> {
        if bytes.len() < 12 || bytes[..8] != TRACE_MAGIC {
            return Err(TraceError::BadMagic);
        }
        let found = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if found != TRACE_VERSION {
            return Err(TraceError::Version { found });
        }
        let packed = &bytes[12..];
        let body = unpack_zero_runs(packed, 12)?;
        // Decoded part by part (the postcard form of `Trace`: the header, the entry
        // count, the entries) so that an error names where in the file it is.
        let fail = |rest: &[u8], part: String, e: postcard::Error| TraceError::Decode {
            offset: 12 + packed_offset(packed, body.len() - rest.len()),
            part,
            what: e.to_string(),
        };
        let (header, rest) = postcard::take_from_bytes::<TraceHeader>(&body)
            .map_err(|e| fail(&body, "header".into(), e))?;
        if header.version != TRACE_VERSION {
            return Err(TraceError::Version {
                found: header.version,
            });
        }
        let (count, mut rest) = postcard::take_from_bytes::<u64>(rest)
            .map_err(|e| fail(rest, "call count".into(), e))?;
        // No allocation from the (untrusted) count: entries are pushed as they decode.
        let mut entries = Vec::new();
        for i in 0..count {
            let (entry, r) = postcard::take_from_bytes::<TraceEntry>(rest)
                .map_err(|e| fail(rest, format!("entry #{i} of {count}"), e))?;
            entries.push(entry);
            rest = r;
        }
        if !rest.is_empty() {
            return Err(TraceError::Decode {
                offset: 12 + packed_offset(packed, body.len() - rest.len()),
                part: format!("after entry #{}", count.saturating_sub(1)),
                what: format!("{} bytes after the last entry", rest.len()),
            });
        }
        Ok(Trace { header, entries })
    }

    /// The readable form: the header, then one line per call, `#index call -> reply`.
    #[must_use]
    pub fn dump(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "xi trace v{} backend={} calls={}",
            self.header.version,
            self.header.backend,
            self.entries.len()
        );
        if !self.header.note.is_empty() {
            let _ = writeln!(s, "note: {}", self.header.note);
        }
        for (i, e) in self.entries.iter().enumerate() {
            let _ = writeln!(
                s,
                "#{i:05} {} -> {}",
                describe_call(&e.call),
                describe_reply(&e.reply)
            );
        }
        s
    }

    /// How many times each trait method was called, by name (sorted).
    #[must_use]
    pub fn call_counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut m = std::collections::BTreeMap::new();
        for e in &self.entries {
            *m.entry(e.call.name()).or_insert(0) += 1;
        }
        m
    }
}

// ---------------------------------------------------------------------------------
// The readable form.

/// FNV-1a, 64 bits: a stable digest for dumps (not a security property).
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn bytes(b: &[u8]) -> String {
    if b.is_empty() {
        "[]".to_owned()
    } else if b.iter().all(|&x| x == 0) {
        format!("[0;{}]", b.len())
    } else if b.len() <= 16 {
        let mut s = String::from("[");
        for x in b {
            let _ = write!(s, "{x:02x}");
        }
        s.push(']');
        s
    } else {
        format!("[{}B #{:016x}]", b.len(), fnv1a(b))
    }
}

fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if s.len() <= 64 && !s.chars().any(char::is_control) => format!("{s:?}"),
        _ => bytes(b),
    }
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

fn le_u16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map_or(0, |x| u16::from_le_bytes([x[0], x[1]]))
}

fn domctl_name(cmd: u32) -> Option<&'static str> {
    use crate::abi::domctl as d;
    Some(match cmd {
        d::XEN_DOMCTL_CREATEDOMAIN => "createdomain",
        d::XEN_DOMCTL_DESTROYDOMAIN => "destroydomain",
        d::XEN_DOMCTL_PAUSEDOMAIN => "pausedomain",
        d::XEN_DOMCTL_UNPAUSEDOMAIN => "unpausedomain",
        d::XEN_DOMCTL_GETDOMAININFO => "getdomaininfo",
        d::XEN_DOMCTL_SHADOW_OP => "shadow_op",
        d::XEN_DOMCTL_MAX_MEM => "max_mem",
        d::XEN_DOMCTL_SETVCPUCONTEXT => "setvcpucontext",
        d::XEN_DOMCTL_GETVCPUCONTEXT => "getvcpucontext",
        d::XEN_DOMCTL_GETVCPUINFO => "getvcpuinfo",
        d::XEN_DOMCTL_MAX_VCPUS => "max_vcpus",
        d::XEN_DOMCTL_SETDOMAINHANDLE => "setdomainhandle",
        d::XEN_DOMCTL_HYPERCALL_INIT => "hypercall_init",
        d::XEN_DOMCTL_SETTIMEOFFSET => "settimeoffset",
        d::XEN_DOMCTL_RESUMEDOMAIN => "resumedomain",
        d::XEN_DOMCTL_SET_ADDRESS_SIZE => "set_address_size",
        d::XEN_DOMCTL_GET_ADDRESS_SIZE => "get_address_size",
        d::XEN_DOMCTL_SET_EXT_VCPUCONTEXT => "set_ext_vcpucontext",
        d::XEN_DOMCTL_GET_EXT_VCPUCONTEXT => "get_ext_vcpucontext",
        d::XEN_DOMCTL_GETTSCINFO => "gettscinfo",
        d::XEN_DOMCTL_SETTSCINFO => "settscinfo",
        d::XEN_DOMCTL_GETPAGEFRAMEINFO3 => "getpageframeinfo3",
        d::XEN_DOMCTL_SETVCPUEXTSTATE => "setvcpuextstate",
        d::XEN_DOMCTL_GETVCPUEXTSTATE => "getvcpuextstate",
        d::XEN_DOMCTL_GET_VCPU_MSRS => "get_vcpu_msrs",
        d::XEN_DOMCTL_SET_VCPU_MSRS => "set_vcpu_msrs",
        _ => return None,
    })
}

fn sysctl_name(cmd: u32) -> Option<&'static str> {
    use crate::abi::sysctl as s;
    Some(match cmd {
        s::XEN_SYSCTL_READCONSOLE => "readconsole",
        s::XEN_SYSCTL_PHYSINFO => "physinfo",
        s::XEN_SYSCTL_GETDOMAININFOLIST => "getdomaininfolist",
        _ => return None,
    })
}

fn named(name: Option<&'static str>, cmd: u32) -> String {
    name.map_or_else(|| format!("cmd{cmd}"), str::to_owned)
}

/// One line describing a call (the form [`Divergence`] and [`Trace::dump`] use).
#[must_use]
pub fn describe_call(c: &XenCall) -> String {
    let n = c.name();
    match c {
        XenCall::BackendName | XenCall::XsTransactionStart => n.to_owned(),
        XenCall::XenVersion { cmd, arg } => format!("{n} cmd={cmd} arg={}", bytes(arg)),
        XenCall::Domctl { domctl, buf } => {
            let cmd = le_u32(domctl, 0);
            format!(
                "{n} {} dom={} v={:#x} op={} buf={}",
                named(domctl_name(cmd), cmd),
                le_u16(domctl, 8),
                le_u32(domctl, 4),
                bytes(domctl.get(16..).unwrap_or_default()),
                bytes(buf)
            )
        }
        XenCall::Sysctl { sysctl, buf } => {
            let cmd = le_u32(sysctl, 0);
            format!(
                "{n} {} op={} buf={}",
                named(sysctl_name(cmd), cmd),
                bytes(sysctl.get(8..).unwrap_or_default()),
                bytes(buf)
            )
        }
        XenCall::MemoryOp { cmd, arg, buf } => {
            format!("{n} cmd={cmd} arg={} buf={}", bytes(arg), bytes(buf))
        }
        XenCall::MmuUpdate { reqs, foreigndom } => format!(
            "{n} count={} dom={foreigndom} reqs={}",
            reqs.len() / std::mem::size_of::<MmuUpdate>(),
            bytes(reqs)
        ),
        XenCall::MmuextOp { ops, foreigndom } => format!(
            "{n} count={} dom={foreigndom} ops={}",
            ops.len() / std::mem::size_of::<MmuextOp>(),
            bytes(ops)
        ),
        XenCall::EventChannelOp { cmd, arg } => format!("{n} cmd={cmd} arg={}", bytes(arg)),
        XenCall::ForeignRead {
            dom,
            mfns,
            buf_len,
            errs_len,
        } => format!(
            "{n} dom={dom} mfns={} buf_len={buf_len} errs_len={errs_len}",
            mfn_list(mfns)
        ),
        XenCall::ForeignWrite {
            dom,
            mfns,
            buf,
            errs_len,
        } => format!(
            "{n} dom={dom} mfns={} buf={} errs_len={errs_len}",
            mfn_list(mfns),
            bytes(buf)
        ),
        XenCall::EvtchnBindInterdomain {
            remote,
            remote_port,
        } => format!("{n} remote={remote} port={remote_port}"),
        XenCall::EvtchnBindUnboundPort { remote } | XenCall::XsRelease { dom: remote } => {
            format!("{n} dom={remote}")
        }
        XenCall::XsGetDomainPath { dom } => format!("{n} dom={dom}"),
        XenCall::EvtchnBindVirq { virq } => format!("{n} virq={virq}"),
        XenCall::EvtchnUnbind { port }
        | XenCall::EvtchnNotify { port }
        | XenCall::EvtchnUnmask { port } => format!("{n} port={port}"),
        XenCall::EvtchnWait { timeout_ns } | XenCall::XsReadWatch { timeout_ns } => {
            format!("{n} timeout_ns={timeout_ns}")
        }
        XenCall::XsRead { tx, path }
        | XenCall::XsMkdir { tx, path }
        | XenCall::XsRm { tx, path }
        | XenCall::XsDirectory { tx, path }
        | XenCall::XsGetPerms { tx, path } => format!("{n} tx={tx} {path}"),
        XenCall::XsWrite { tx, path, value } => format!("{n} tx={tx} {path} = {}", text(value)),
        XenCall::XsSetPerms { tx, path, perms } => {
            format!("{n} tx={tx} {path} {}", perms.join(","))
        }
        XenCall::XsWatch { path, token } | XenCall::XsUnwatch { path, token } => {
            format!("{n} {path} token={token:?}")
        }
        XenCall::XsTransactionEnd { tx, commit } => format!("{n} tx={tx} commit={commit}"),
        XenCall::XsIntroduce { dom, mfn, port } => {
            format!("{n} dom={dom} mfn={mfn:#x} port={port}")
        }
        XenCall::ResourceRead {
            dom,
            type_,
            id,
            frame,
            buf_len,
        } => format!("{n} dom={dom} type={type_} id={id} frame={frame} buf_len={buf_len}"),
        XenCall::ResourceWrite {
            dom,
            type_,
            id,
            frame,
            data,
        } => format!(
            "{n} dom={dom} type={type_} id={id} frame={frame} data={}",
            bytes(data)
        ),
        // Calls of the remote protocol that are not trait calls.
        #[allow(unreachable_patterns)]
        _ => format!("{n} {c:?}"),
    }
}

fn mfn_list(mfns: &[u64]) -> String {
    match mfns {
        [] => "[]".to_owned(),
        [one] => format!("[{one:#x}]"),
        [first, .., last] => {
            let contiguous = mfns.windows(2).all(|w| w[1] == w[0].wrapping_add(1));
            if contiguous {
                format!("[{first:#x}..={last:#x}]")
            } else {
                let words: Vec<u8> = mfns.iter().flat_map(|m| m.to_le_bytes()).collect();
                format!("[{} mfns #{:016x}]", mfns.len(), fnv1a(&words))
            }
        }
    }
}

fn result<T>(r: &WireResult<T>, ok: impl FnOnce(&T) -> String) -> String {
    match r {
        Ok(v) => format!("Ok({})", ok(v)),
        Err(e) => format!("Err({})", describe_error(e)),
    }
}

fn describe_error(e: &WireError) -> String {
    match e {
        WireError::Xen { op, errno } => format!("{op}: errno {errno}"),
        WireError::BadArgument { op, what } => format!("{op}: bad argument: {what}"),
        WireError::NoDevice { path } => format!("no device {path}"),
        WireError::Io { op, message } => format!("{op}: io: {message}"),
        WireError::NotImplemented { op, backend } => format!("{op}: not implemented by {backend}"),
    }
}

fn errs_list(errs: &[i32]) -> String {
    if errs.iter().all(|&e| e == 0) {
        format!("[0;{}]", errs.len())
    } else {
        format!("{errs:?}")
    }
}

/// One line describing a reply.
#[must_use]
pub fn describe_reply(r: &XenReply) -> String {
    match r {
        XenReply::Failed(e) => format!("refused({})", describe_error(e)),
        XenReply::BackendName(n) => n.clone(),
        XenReply::XenVersion { ret, arg } | XenReply::EventChannelOp { ret, arg } => {
            format!("{} arg={}", result(ret, i64::to_string), bytes(arg))
        }
        XenReply::Domctl { ret, domctl, buf } => format!(
            "{} op={} buf={}",
            result(ret, i64::to_string),
            bytes(domctl.get(16..).unwrap_or_default()),
            bytes(buf)
        ),
        XenReply::Sysctl { ret, sysctl, buf } => format!(
            "{} op={} buf={}",
            result(ret, i64::to_string),
            bytes(sysctl.get(8..).unwrap_or_default()),
            bytes(buf)
        ),
        XenReply::MemoryOp { ret, arg, buf } => format!(
            "{} arg={} buf={}",
            result(ret, i64::to_string),
            bytes(arg),
            bytes(buf)
        ),
        XenReply::Mmu { ret, done } => format!("{} done={done}", result(ret, i64::to_string)),
        XenReply::ForeignRead { ret, buf, errs } => format!(
            "{} buf={} errs={}",
            result(ret, |()| String::new()),
            bytes(buf),
            errs_list(errs)
        ),
        XenReply::ForeignWrite { ret, errs } => format!(
            "{} errs={}",
            result(ret, |()| String::new()),
            errs_list(errs)
        ),
        XenReply::Port(r) | XenReply::TxId(r) => result(r, u32::to_string),
        XenReply::Unit(r) => result(r, |()| String::new()),
        XenReply::Wait(r) => result(r, |p| format!("{p:?}")),
        XenReply::Value(r) => result(r, |v| text(v)),
        XenReply::Names(r) | XenReply::Perms(r) => result(r, |v| v.join(",")),
        XenReply::Watch(r) => result(r, |w| match w {
            Some(w) => format!("{} token={:?}", w.path, w.token),
            None => "none".to_owned(),
        }),
        XenReply::Path(r) => result(r, Clone::clone),
        XenReply::ResourceRead { ret, buf } => {
            format!("{} buf={}", result(ret, |()| String::new()), bytes(buf))
        }
        #[allow(unreachable_patterns)]
        _ => format!("{r:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Recording.

fn wire<T: Clone>(r: &Result<T, XenError>) -> WireResult<T> {
    match r {
        Ok(v) => Ok(v.clone()),
        Err(e) => Err(WireError::from(e)),
    }
}

/// A backend that forwards every call to `X` and records it (see the module doc).
#[derive(Debug)]
pub struct Recorder<X> {
    inner: X,
    trace: Trace,
}

impl<X: Xen> Recorder<X> {
    /// Starts recording calls to `inner`; `note` goes into the trace header.
    pub fn new(inner: X, note: &str) -> Self {
        let trace = Trace::new(inner.backend_name(), note);
        Recorder { inner, trace }
    }

    /// The trace so far.
    #[must_use]
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The backend.
    pub fn inner(&mut self) -> &mut X {
        &mut self.inner
    }

    /// Stops recording: the backend and the trace.
    pub fn finish(self) -> (X, Trace) {
        (self.inner, self.trace)
    }

    fn push(&mut self, call: XenCall, reply: XenReply) {
        self.trace.entries.push(TraceEntry { call, reply });
    }
}

impl<X: Xen> Xen for Recorder<X> {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        let call = XenCall::XenVersion {
            cmd,
            arg: arg.to_vec(),
        };
        let r = self.inner.xen_version(cmd, arg);
        let reply = XenReply::XenVersion {
            ret: wire(&r),
            arg: arg.to_vec(),
        };
        self.push(call, reply);
        r
    }

    fn domctl(&mut self, domctl: &mut XenDomctl, buf: &mut [u8]) -> Result<i64, XenError> {
        let call = XenCall::Domctl {
            domctl: domctl.as_bytes().to_vec(),
            buf: buf.to_vec(),
        };
        let r = self.inner.domctl(domctl, buf);
        let reply = XenReply::Domctl {
            ret: wire(&r),
            domctl: domctl.as_bytes().to_vec(),
            buf: buf.to_vec(),
        };
        self.push(call, reply);
        r
    }

    fn sysctl(&mut self, sysctl: &mut XenSysctl, buf: &mut [u8]) -> Result<i64, XenError> {
        let call = XenCall::Sysctl {
            sysctl: sysctl.as_bytes().to_vec(),
            buf: buf.to_vec(),
        };
        let r = self.inner.sysctl(sysctl, buf);
        let reply = XenReply::Sysctl {
            ret: wire(&r),
            sysctl: sysctl.as_bytes().to_vec(),
            buf: buf.to_vec(),
        };
        self.push(call, reply);
        r
    }

    fn memory_op(&mut self, cmd: u32, arg: &mut [u8], buf: &mut [u8]) -> Result<i64, XenError> {
        let call = XenCall::MemoryOp {
            cmd,
            arg: arg.to_vec(),
            buf: buf.to_vec(),
        };
        let r = self.inner.memory_op(cmd, arg, buf);
        let reply = XenReply::MemoryOp {
            ret: wire(&r),
            arg: arg.to_vec(),
            buf: buf.to_vec(),
        };
        self.push(call, reply);
        r
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
        let r = self.inner.mmu_update(reqs, done, foreigndom);
        let reply = XenReply::Mmu {
            ret: wire(&r),
            done: *done,
        };
        self.push(call, reply);
        r
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
        let r = self.inner.mmuext_op(ops, done, foreigndom);
        let reply = XenReply::Mmu {
            ret: wire(&r),
            done: *done,
        };
        self.push(call, reply);
        r
    }

    fn event_channel_op(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        let call = XenCall::EventChannelOp {
            cmd,
            arg: arg.to_vec(),
        };
        let r = self.inner.event_channel_op(cmd, arg);
        let reply = XenReply::EventChannelOp {
            ret: wire(&r),
            arg: arg.to_vec(),
        };
        self.push(call, reply);
        r
    }

    fn foreign_read(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &mut [u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        let call = XenCall::ForeignRead {
            dom: dom.get(),
            mfns: mfns.iter().map(|m| m.get()).collect(),
            buf_len: buf.len() as u64,
            errs_len: errs.len() as u64,
        };
        let r = self.inner.foreign_read(dom, mfns, buf, errs);
        let reply = XenReply::ForeignRead {
            ret: wire(&r),
            buf: buf.to_vec(),
            errs: errs.to_vec(),
        };
        self.push(call, reply);
        r
    }

    fn foreign_write(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &[u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        let call = XenCall::ForeignWrite {
            dom: dom.get(),
            mfns: mfns.iter().map(|m| m.get()).collect(),
            buf: buf.to_vec(),
            errs_len: errs.len() as u64,
        };
        let r = self.inner.foreign_write(dom, mfns, buf, errs);
        let reply = XenReply::ForeignWrite {
            ret: wire(&r),
            errs: errs.to_vec(),
        };
        self.push(call, reply);
        r
    }

    fn evtchn_bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Port, XenError> {
        let r = self.inner.evtchn_bind_interdomain(remote, remote_port);
        self.push(
            XenCall::EvtchnBindInterdomain {
                remote: remote.get(),
                remote_port: remote_port.get(),
            },
            XenReply::Port(port_result(&r)),
        );
        r
    }

    fn evtchn_bind_unbound_port(&mut self, remote: DomId) -> Result<Port, XenError> {
        let r = self.inner.evtchn_bind_unbound_port(remote);
        self.push(
            XenCall::EvtchnBindUnboundPort {
                remote: remote.get(),
            },
            XenReply::Port(port_result(&r)),
        );
        r
    }

    fn evtchn_bind_virq(&mut self, virq: u32) -> Result<Port, XenError> {
        let r = self.inner.evtchn_bind_virq(virq);
        self.push(
            XenCall::EvtchnBindVirq { virq },
            XenReply::Port(port_result(&r)),
        );
        r
    }

    fn evtchn_unbind(&mut self, port: Port) -> Result<(), XenError> {
        let r = self.inner.evtchn_unbind(port);
        self.push(
            XenCall::EvtchnUnbind { port: port.get() },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn evtchn_notify(&mut self, port: Port) -> Result<(), XenError> {
        let r = self.inner.evtchn_notify(port);
        self.push(
            XenCall::EvtchnNotify { port: port.get() },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn evtchn_wait(&mut self, timeout_ns: u64) -> Result<Option<Port>, XenError> {
        let r = self.inner.evtchn_wait(timeout_ns);
        let w = match &r {
            Ok(p) => Ok(p.map(Port::get)),
            Err(e) => Err(WireError::from(e)),
        };
        self.push(XenCall::EvtchnWait { timeout_ns }, XenReply::Wait(w));
        r
    }

    fn resource_read(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        buf: &mut [u8],
    ) -> Result<(), XenError> {
        let call = XenCall::ResourceRead {
            dom: dom.get(),
            type_,
            id,
            frame,
            buf_len: buf.len() as u64,
        };
        let r = self.inner.resource_read(dom, type_, id, frame, buf);
        let reply = XenReply::ResourceRead {
            ret: wire(&r),
            buf: buf.to_vec(),
        };
        self.push(call, reply);
        r
    }

    fn resource_write(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        data: &[u8],
    ) -> Result<(), XenError> {
        let r = self.inner.resource_write(dom, type_, id, frame, data);
        self.push(
            XenCall::ResourceWrite {
                dom: dom.get(),
                type_,
                id,
                frame,
                data: data.to_vec(),
            },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn evtchn_unmask(&mut self, port: Port) -> Result<(), XenError> {
        let r = self.inner.evtchn_unmask(port);
        self.push(
            XenCall::EvtchnUnmask { port: port.get() },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn xs_read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError> {
        let r = self.inner.xs_read(tx, path);
        self.push(
            XenCall::XsRead {
                tx,
                path: path.to_owned(),
            },
            XenReply::Value(wire(&r)),
        );
        r
    }

    fn xs_write(&mut self, tx: XsTxId, path: &str, value: &[u8]) -> Result<(), XenError> {
        let r = self.inner.xs_write(tx, path, value);
        self.push(
            XenCall::XsWrite {
                tx,
                path: path.to_owned(),
                value: value.to_vec(),
            },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn xs_mkdir(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        let r = self.inner.xs_mkdir(tx, path);
        self.push(
            XenCall::XsMkdir {
                tx,
                path: path.to_owned(),
            },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn xs_rm(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        let r = self.inner.xs_rm(tx, path);
        self.push(
            XenCall::XsRm {
                tx,
                path: path.to_owned(),
            },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn xs_directory(&mut self, tx: XsTxId, path: &str) -> Result<Vec<String>, XenError> {
        let r = self.inner.xs_directory(tx, path);
        self.push(
            XenCall::XsDirectory {
                tx,
                path: path.to_owned(),
            },
            XenReply::Names(wire(&r)),
        );
        r
    }

    fn xs_get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError> {
        let r = self.inner.xs_get_perms(tx, path);
        let w = match &r {
            Ok(ps) => Ok(ps.iter().map(XsPerm::to_wire).collect()),
            Err(e) => Err(WireError::from(e)),
        };
        self.push(
            XenCall::XsGetPerms {
                tx,
                path: path.to_owned(),
            },
            XenReply::Perms(w),
        );
        r
    }

    fn xs_set_perms(&mut self, tx: XsTxId, path: &str, perms: &[XsPerm]) -> Result<(), XenError> {
        let r = self.inner.xs_set_perms(tx, path, perms);
        self.push(
            XenCall::XsSetPerms {
                tx,
                path: path.to_owned(),
                perms: perms.iter().map(XsPerm::to_wire).collect(),
            },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn xs_watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        let r = self.inner.xs_watch(path, token);
        self.push(
            XenCall::XsWatch {
                path: path.to_owned(),
                token: token.to_owned(),
            },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn xs_unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        let r = self.inner.xs_unwatch(path, token);
        self.push(
            XenCall::XsUnwatch {
                path: path.to_owned(),
                token: token.to_owned(),
            },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn xs_read_watch(&mut self, timeout_ns: u64) -> Result<Option<XsWatchEvent>, XenError> {
        let r = self.inner.xs_read_watch(timeout_ns);
        let w = match &r {
            Ok(e) => Ok(e.as_ref().map(|e| WireWatchEvent {
                path: e.path.clone(),
                token: e.token.clone(),
            })),
            Err(e) => Err(WireError::from(e)),
        };
        self.push(XenCall::XsReadWatch { timeout_ns }, XenReply::Watch(w));
        r
    }

    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError> {
        let r = self.inner.xs_transaction_start();
        self.push(XenCall::XsTransactionStart, XenReply::TxId(wire(&r)));
        r
    }

    fn xs_transaction_end(&mut self, tx: XsTxId, commit: bool) -> Result<(), XenError> {
        let r = self.inner.xs_transaction_end(tx, commit);
        self.push(
            XenCall::XsTransactionEnd { tx, commit },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn xs_introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> Result<(), XenError> {
        let r = self.inner.xs_introduce(dom, mfn, port);
        self.push(
            XenCall::XsIntroduce {
                dom: dom.get(),
                mfn: mfn.get(),
                port: port.get(),
            },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn xs_release(&mut self, dom: DomId) -> Result<(), XenError> {
        let r = self.inner.xs_release(dom);
        self.push(
            XenCall::XsRelease { dom: dom.get() },
            XenReply::Unit(wire(&r)),
        );
        r
    }

    fn xs_get_domain_path(&mut self, dom: DomId) -> Result<String, XenError> {
        let r = self.inner.xs_get_domain_path(dom);
        self.push(
            XenCall::XsGetDomainPath { dom: dom.get() },
            XenReply::Path(wire(&r)),
        );
        r
    }
}

fn port_result(r: &Result<Port, XenError>) -> WireResult<u32> {
    match r {
        Ok(p) => Ok(p.get()),
        Err(e) => Err(WireError::from(e)),
    }
}

// ---------------------------------------------------------------------------------
// Replay.

/// Where a replay left the recorded path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Divergence {
    /// Call `index` differs from the recorded one.
    #[error("replay diverged at call #{index}: expected `{expected}`, got `{actual}`")]
    Call {
        /// Index of the call in the trace.
        index: usize,
        /// The recorded call, described.
        expected: String,
        /// The call made, described.
        actual: String,
    },
    /// More calls were made than the trace holds.
    #[error("replay diverged at call #{index}: the trace has ended, got `{actual}`")]
    PastEnd {
        /// Index of the extra call.
        index: usize,
        /// The call made.
        actual: String,
    },
    /// The recorded reply does not fit the call (a corrupt or hand-edited trace).
    #[error("trace entry #{index}: recorded reply does not fit `{call}`: {what}")]
    BadReply {
        /// Index of the entry.
        index: usize,
        /// The call.
        call: String,
        /// What does not fit.
        what: String,
    },
    /// The replay ended before the trace did.
    #[error("replay ended after {made} calls; the trace has {recorded}, next `{next}`")]
    Unfinished {
        /// Calls made.
        made: usize,
        /// Calls in the trace.
        recorded: usize,
        /// The first call not made.
        next: String,
    },
}

/// A backend serving a recorded [`Trace`] (see the module doc).
#[derive(Debug)]
pub struct Replayer {
    trace: Trace,
    next: usize,
    diverged: Option<Divergence>,
}

impl Replayer {
    /// A replayer positioned at the first call of `trace`.
    #[must_use]
    pub fn new(trace: Trace) -> Self {
        Replayer {
            trace,
            next: 0,
            diverged: None,
        }
    }

    /// Calls served so far.
    #[must_use]
    pub fn position(&self) -> usize {
        self.next
    }

    /// The first divergence, if any.
    #[must_use]
    pub fn divergence(&self) -> Option<&Divergence> {
        self.diverged.as_ref()
    }

    /// Ends the replay: `Ok` only if no call diverged and every recorded call was made.
    ///
    /// # Errors
    /// The first [`Divergence`], or [`Divergence::Unfinished`].
    pub fn finish(&self) -> Result<(), Divergence> {
        if let Some(d) = &self.diverged {
            return Err(d.clone());
        }
        if let Some(e) = self.trace.entries.get(self.next) {
            return Err(Divergence::Unfinished {
                made: self.next,
                recorded: self.trace.entries.len(),
                next: describe_call(&e.call),
            });
        }
        Ok(())
    }

    fn fail(&mut self, op: &'static str, d: Divergence) -> XenError {
        let err = XenError::Io {
            op,
            source: io::Error::new(io::ErrorKind::InvalidData, d.clone()),
        };
        if self.diverged.is_none() {
            self.diverged = Some(d);
        }
        err
    }

    /// The recorded reply for `call`, or the divergence as an error.
    fn serve(&mut self, call: &XenCall) -> Result<XenReply, XenError> {
        let op = call.name();
        if let Some(d) = self.diverged.clone() {
            return Err(XenError::Io {
                op,
                source: io::Error::new(io::ErrorKind::InvalidData, d),
            });
        }
        let index = self.next;
        let Some(entry) = self.trace.entries.get(index) else {
            let d = Divergence::PastEnd {
                index,
                actual: describe_call(call),
            };
            return Err(self.fail(op, d));
        };
        if entry.call != *call {
            let d = Divergence::Call {
                index,
                expected: describe_call(&entry.call),
                actual: describe_call(call),
            };
            return Err(self.fail(op, d));
        }
        self.next += 1;
        match &entry.reply {
            XenReply::Failed(e) => Err(XenError::from(e.clone())),
            r => Ok(r.clone()),
        }
    }

    fn bad_reply(&mut self, call: &XenCall, what: impl fmt::Display) -> XenError {
        let d = Divergence::BadReply {
            index: self.next.saturating_sub(1),
            call: describe_call(call),
            what: what.to_string(),
        };
        self.fail(call.name(), d)
    }

    fn copy(&mut self, call: &XenCall, dst: &mut [u8], src: &[u8]) -> Result<(), XenError> {
        if dst.len() != src.len() {
            return Err(self.bad_reply(
                call,
                format_args!("{}-byte buffer for {} bytes", src.len(), dst.len()),
            ));
        }
        dst.copy_from_slice(src);
        Ok(())
    }

    fn copy_errs(&mut self, call: &XenCall, dst: &mut [i32], src: &[i32]) -> Result<(), XenError> {
        if dst.len() != src.len() {
            return Err(self.bad_reply(
                call,
                format_args!("{} error slots for {}", src.len(), dst.len()),
            ));
        }
        dst.copy_from_slice(src);
        Ok(())
    }

    fn unit(&mut self, call: &XenCall) -> Result<(), XenError> {
        match self.serve(call)? {
            XenReply::Unit(r) => r.map_err(Into::into),
            _ => Err(self.bad_reply(call, "not a unit reply")),
        }
    }

    fn port(&mut self, call: &XenCall) -> Result<Port, XenError> {
        match self.serve(call)? {
            XenReply::Port(r) => r.map(Port::new).map_err(Into::into),
            _ => Err(self.bad_reply(call, "not a port reply")),
        }
    }
}

impl Xen for Replayer {
    fn backend_name(&self) -> &'static str {
        "replay"
    }

    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        let call = XenCall::XenVersion {
            cmd,
            arg: arg.to_vec(),
        };
        match self.serve(&call)? {
            XenReply::XenVersion { ret, arg: a } => {
                self.copy(&call, arg, &a)?;
                ret.map_err(Into::into)
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
        }
    }

    fn domctl(&mut self, domctl: &mut XenDomctl, buf: &mut [u8]) -> Result<i64, XenError> {
        let call = XenCall::Domctl {
            domctl: domctl.as_bytes().to_vec(),
            buf: buf.to_vec(),
        };
        match self.serve(&call)? {
            XenReply::Domctl {
                ret,
                domctl: d,
                buf: b,
            } => {
                self.copy(&call, domctl.as_mut_bytes(), &d)?;
                self.copy(&call, buf, &b)?;
                ret.map_err(Into::into)
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
        }
    }

    fn sysctl(&mut self, sysctl: &mut XenSysctl, buf: &mut [u8]) -> Result<i64, XenError> {
        let call = XenCall::Sysctl {
            sysctl: sysctl.as_bytes().to_vec(),
            buf: buf.to_vec(),
        };
        match self.serve(&call)? {
            XenReply::Sysctl {
                ret,
                sysctl: s,
                buf: b,
            } => {
                self.copy(&call, sysctl.as_mut_bytes(), &s)?;
                self.copy(&call, buf, &b)?;
                ret.map_err(Into::into)
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
        }
    }

    fn memory_op(&mut self, cmd: u32, arg: &mut [u8], buf: &mut [u8]) -> Result<i64, XenError> {
        let call = XenCall::MemoryOp {
            cmd,
            arg: arg.to_vec(),
            buf: buf.to_vec(),
        };
        match self.serve(&call)? {
            XenReply::MemoryOp {
                ret,
                arg: a,
                buf: b,
            } => {
                self.copy(&call, arg, &a)?;
                self.copy(&call, buf, &b)?;
                ret.map_err(Into::into)
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
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
        match self.serve(&call)? {
            XenReply::Mmu { ret, done: d } => {
                *done = d;
                ret.map_err(Into::into)
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
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
        match self.serve(&call)? {
            XenReply::Mmu { ret, done: d } => {
                *done = d;
                ret.map_err(Into::into)
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
        }
    }

    fn event_channel_op(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        let call = XenCall::EventChannelOp {
            cmd,
            arg: arg.to_vec(),
        };
        match self.serve(&call)? {
            XenReply::EventChannelOp { ret, arg: a } => {
                self.copy(&call, arg, &a)?;
                ret.map_err(Into::into)
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
        }
    }

    fn foreign_read(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &mut [u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        let call = XenCall::ForeignRead {
            dom: dom.get(),
            mfns: mfns.iter().map(|m| m.get()).collect(),
            buf_len: buf.len() as u64,
            errs_len: errs.len() as u64,
        };
        match self.serve(&call)? {
            XenReply::ForeignRead {
                ret,
                buf: b,
                errs: e,
            } => {
                self.copy(&call, buf, &b)?;
                self.copy_errs(&call, errs, &e)?;
                ret.map_err(Into::into)
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
        }
    }

    fn foreign_write(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &[u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        let call = XenCall::ForeignWrite {
            dom: dom.get(),
            mfns: mfns.iter().map(|m| m.get()).collect(),
            buf: buf.to_vec(),
            errs_len: errs.len() as u64,
        };
        match self.serve(&call)? {
            XenReply::ForeignWrite { ret, errs: e } => {
                self.copy_errs(&call, errs, &e)?;
                ret.map_err(Into::into)
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
        }
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
        let call = XenCall::EvtchnWait { timeout_ns };
        match self.serve(&call)? {
            XenReply::Wait(r) => r.map(|p| p.map(Port::new)).map_err(Into::into),
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
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
        let call = XenCall::ResourceRead {
            dom: dom.get(),
            type_,
            id,
            frame,
            buf_len: buf.len() as u64,
        };
        match self.serve(&call)? {
            XenReply::ResourceRead { ret, buf: b } => {
                self.copy(&call, buf, &b)?;
                ret.map_err(Into::into)
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
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

    fn evtchn_unmask(&mut self, port: Port) -> Result<(), XenError> {
        self.unit(&XenCall::EvtchnUnmask { port: port.get() })
    }

    fn xs_read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError> {
        let call = XenCall::XsRead {
            tx,
            path: path.to_owned(),
        };
        match self.serve(&call)? {
            XenReply::Value(r) => r.map_err(Into::into),
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
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
        let call = XenCall::XsDirectory {
            tx,
            path: path.to_owned(),
        };
        match self.serve(&call)? {
            XenReply::Names(r) => r.map_err(Into::into),
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
        }
    }

    fn xs_get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError> {
        let call = XenCall::XsGetPerms {
            tx,
            path: path.to_owned(),
        };
        match self.serve(&call)? {
            XenReply::Perms(r) => {
                let perms = r.map_err(XenError::from)?;
                let parsed: Option<Vec<XsPerm>> =
                    perms.iter().map(|p| XsPerm::from_wire(p)).collect();
                parsed.ok_or_else(|| {
                    self.bad_reply(&call, format_args!("malformed permissions {perms:?}"))
                })
            }
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
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
        let call = XenCall::XsReadWatch { timeout_ns };
        match self.serve(&call)? {
            XenReply::Watch(r) => r
                .map(|e| e.map(|WireWatchEvent { path, token }| XsWatchEvent { path, token }))
                .map_err(Into::into),
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
        }
    }

    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError> {
        let call = XenCall::XsTransactionStart;
        match self.serve(&call)? {
            XenReply::TxId(r) => r.map_err(Into::into),
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
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
        let call = XenCall::XsGetDomainPath { dom: dom.get() };
        match self.serve(&call)? {
            XenReply::Path(r) => r.map_err(Into::into),
            _ => Err(self.bad_reply(&call, "wrong reply kind")),
        }
    }
}

// ---------------------------------------------------------------------------------
// A borrowed backend is a backend.

/// `&mut X` forwards every call to `X`, so a [`Recorder`] can wrap a backend it does
/// not own (`Recorder::new(&mut model, ..)`) and hand it back unchanged.
impl<X: Xen + ?Sized> Xen for &mut X {
    fn backend_name(&self) -> &'static str {
        (**self).backend_name()
    }
    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        (**self).xen_version(cmd, arg)
    }
    fn domctl(&mut self, domctl: &mut XenDomctl, buf: &mut [u8]) -> Result<i64, XenError> {
        (**self).domctl(domctl, buf)
    }
    fn sysctl(&mut self, sysctl: &mut XenSysctl, buf: &mut [u8]) -> Result<i64, XenError> {
        (**self).sysctl(sysctl, buf)
    }
    fn memory_op(&mut self, cmd: u32, arg: &mut [u8], buf: &mut [u8]) -> Result<i64, XenError> {
        (**self).memory_op(cmd, arg, buf)
    }
    fn mmu_update(
        &mut self,
        reqs: &[MmuUpdate],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        (**self).mmu_update(reqs, done, foreigndom)
    }
    fn mmuext_op(
        &mut self,
        ops: &[MmuextOp],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        (**self).mmuext_op(ops, done, foreigndom)
    }
    fn event_channel_op(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        (**self).event_channel_op(cmd, arg)
    }
    fn foreign_read(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &mut [u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        (**self).foreign_read(dom, mfns, buf, errs)
    }
    fn foreign_write(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &[u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        (**self).foreign_write(dom, mfns, buf, errs)
    }
    fn evtchn_bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Port, XenError> {
        (**self).evtchn_bind_interdomain(remote, remote_port)
    }
    fn evtchn_bind_unbound_port(&mut self, remote: DomId) -> Result<Port, XenError> {
        (**self).evtchn_bind_unbound_port(remote)
    }
    fn evtchn_bind_virq(&mut self, virq: u32) -> Result<Port, XenError> {
        (**self).evtchn_bind_virq(virq)
    }
    fn evtchn_unbind(&mut self, port: Port) -> Result<(), XenError> {
        (**self).evtchn_unbind(port)
    }
    fn evtchn_notify(&mut self, port: Port) -> Result<(), XenError> {
        (**self).evtchn_notify(port)
    }
    fn evtchn_wait(&mut self, timeout_ns: u64) -> Result<Option<Port>, XenError> {
        (**self).evtchn_wait(timeout_ns)
    }
    fn resource_read(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        buf: &mut [u8],
    ) -> Result<(), XenError> {
        (**self).resource_read(dom, type_, id, frame, buf)
    }
    fn resource_write(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        data: &[u8],
    ) -> Result<(), XenError> {
        (**self).resource_write(dom, type_, id, frame, data)
    }
    fn evtchn_unmask(&mut self, port: Port) -> Result<(), XenError> {
        (**self).evtchn_unmask(port)
    }
    fn xs_read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError> {
        (**self).xs_read(tx, path)
    }
    fn xs_write(&mut self, tx: XsTxId, path: &str, value: &[u8]) -> Result<(), XenError> {
        (**self).xs_write(tx, path, value)
    }
    fn xs_mkdir(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        (**self).xs_mkdir(tx, path)
    }
    fn xs_rm(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        (**self).xs_rm(tx, path)
    }
    fn xs_directory(&mut self, tx: XsTxId, path: &str) -> Result<Vec<String>, XenError> {
        (**self).xs_directory(tx, path)
    }
    fn xs_get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError> {
        (**self).xs_get_perms(tx, path)
    }
    fn xs_set_perms(&mut self, tx: XsTxId, path: &str, perms: &[XsPerm]) -> Result<(), XenError> {
        (**self).xs_set_perms(tx, path, perms)
    }
    fn xs_watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        (**self).xs_watch(path, token)
    }
    fn xs_unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        (**self).xs_unwatch(path, token)
    }
    fn xs_read_watch(&mut self, timeout_ns: u64) -> Result<Option<XsWatchEvent>, XenError> {
        (**self).xs_read_watch(timeout_ns)
    }
    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError> {
        (**self).xs_transaction_start()
    }
    fn xs_transaction_end(&mut self, tx: XsTxId, commit: bool) -> Result<(), XenError> {
        (**self).xs_transaction_end(tx, commit)
    }
    fn xs_introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> Result<(), XenError> {
        (**self).xs_introduce(dom, mfn, port)
    }
    fn xs_release(&mut self, dom: DomId) -> Result<(), XenError> {
        (**self).xs_release(dom)
    }
    fn xs_get_domain_path(&mut self, dom: DomId) -> Result<String, XenError> {
        (**self).xs_get_domain_path(dom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::sysctl::{self as sc, SysctlPhysinfo};
    use crate::model::{Model, ModelConfig};
    use crate::xen::XS_NO_TX;

    fn model() -> Model {
        Model::new(ModelConfig {
            machine_frames: 2048,
        })
    }

    /// A little toolstack session; `variant` changes one argument of call #3.
    fn session<X: Xen>(x: &mut X, variant: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut arg = [0u8; 16];
        out.push(format!("{:?}", x.xen_version(0, &mut arg)));
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO);
        out.push(format!("{:?}", x.sysctl(&mut s, &mut [])));
        let p: SysctlPhysinfo = s.payload();
        out.push(format!("free {}", p.free_pages));
        let path = if variant { "/tool/xi/b" } else { "/tool/xi/a" };
        out.push(format!("{:?}", x.xs_write(XS_NO_TX, path, b"hello")));
        out.push(format!("{:?}", x.xs_read(XS_NO_TX, "/tool/xi/a")));
        out.push(format!(
            "{:?}",
            x.xs_read(XS_NO_TX, "/no/such/node").map_err(|e| e.errno())
        ));
        out.push(format!("{:?}", x.xs_directory(XS_NO_TX, "/tool/xi")));
        out.push(format!("{:?}", x.xs_get_perms(XS_NO_TX, "/tool/xi/a")));
        out.push(format!("{:?}", x.evtchn_wait(1000)));
        out
    }

    fn recorded() -> (Vec<String>, Trace) {
        let mut m = model();
        let mut r = Recorder::new(&mut m, "unit test");
        let results = session(&mut r, false);
        (results, r.finish().1)
    }

    #[test]
    fn replay_reproduces_the_recorded_results() {
        let (results, trace) = recorded();
        assert_eq!(trace.header.backend, "model");
        assert_eq!(trace.entries.len(), 8);
        let mut rp = Replayer::new(trace);
        let again = session(&mut rp, false);
        assert_eq!(again, results);
        rp.finish().unwrap();
        assert!(
            results[4].contains("104, 101, 108, 108, 111"),
            "{}",
            results[4]
        );
        assert_eq!(results[5], "Err(Some(ENOENT))");
    }

    #[test]
    fn a_divergent_replay_names_the_call() {
        let (_, trace) = recorded();
        let mut rp = Replayer::new(trace);
        let results = session(&mut rp, true);
        let d = rp.divergence().cloned().expect("diverged");
        match &d {
            Divergence::Call {
                index,
                expected,
                actual,
            } => {
                assert_eq!(*index, 2);
                assert!(expected.contains("xs_write tx=0 /tool/xi/a"), "{expected}");
                assert!(actual.contains("xs_write tx=0 /tool/xi/b"), "{actual}");
            }
            other => panic!("{other:?}"),
        }
        assert!(results[3].contains("index: 2"), "{}", results[3]);
        // Every later call fails too, and finish reports the first divergence.
        assert!(results[4].starts_with("Err"), "{}", results[4]);
        assert_eq!(rp.finish().unwrap_err(), d);
        assert_eq!(rp.position(), 2);
    }

    #[test]
    fn extra_and_missing_calls_are_divergences() {
        let (_, trace) = recorded();
        let mut rp = Replayer::new(trace.clone());
        session(&mut rp, false);
        let e = rp.xs_read(XS_NO_TX, "/x").unwrap_err();
        assert!(e.to_string().contains("xs_read"), "{e}");
        assert!(matches!(
            rp.finish(),
            Err(Divergence::PastEnd { index: 8, .. })
        ));

        let mut rp = Replayer::new(trace);
        let mut arg = [0u8; 16];
        rp.xen_version(0, &mut arg).unwrap();
        match rp.finish() {
            Err(Divergence::Unfinished {
                made: 1,
                recorded: 8,
                next,
            }) => assert!(next.starts_with("sysctl physinfo"), "{next}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reply_of_the_wrong_kind_is_reported() {
        let (_, mut trace) = recorded();
        trace.entries[0].reply = XenReply::Unit(Ok(()));
        let mut rp = Replayer::new(trace);
        let mut arg = [0u8; 16];
        assert!(rp.xen_version(0, &mut arg).is_err());
        assert!(matches!(
            rp.divergence(),
            Some(Divergence::BadReply { index: 0, .. })
        ));
    }

    #[test]
    fn the_file_form_round_trips_and_is_deterministic() {
        let (_, a) = recorded();
        let (_, b) = recorded();
        let bytes = a.to_bytes();
        assert_eq!(bytes, b.to_bytes(), "same session, same bytes");
        assert_eq!(&bytes[..8], b"XITRACE\n");
        assert_eq!(Trace::from_bytes(&bytes).unwrap(), a);
        assert!(matches!(
            Trace::from_bytes(b"not a trace at all"),
            Err(TraceError::BadMagic)
        ));
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert!(matches!(
            Trace::from_bytes(&v2),
            Err(TraceError::Version { found: 2 })
        ));
        // Truncation anywhere in the body is an error, never a panic.
        for cut in 12..bytes.len() {
            assert!(Trace::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_where() {
        let (_, a) = recorded();
        let bytes = a.to_bytes();
        // Every truncation names a place at or before the cut (never past the data).
        for cut in 12..bytes.len() {
            match Trace::from_bytes(&bytes[..cut]) {
                Err(TraceError::Decode { offset, .. } | TraceError::Packing { offset, .. }) => {
                    assert!(offset <= cut, "cut at {cut}: offset {offset}");
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        // Cut inside the last entry: that entry is named.
        let last = a.entries.len() - 1;
        let e = (12..bytes.len())
            .rev()
            .map(|cut| Trace::from_bytes(&bytes[..cut]).unwrap_err())
            .find(|e| matches!(e, TraceError::Decode { .. }))
            .unwrap();
        assert!(
            matches!(&e, TraceError::Decode { part, .. } if *part == format!("entry #{last} of {}", last + 1)),
            "{e}"
        );
        // Bytes after the last entry: the error is at the original end of the file.
        let mut long = bytes.clone();
        long.extend_from_slice(&[7, 7, 7]);
        match Trace::from_bytes(&long) {
            Err(TraceError::Decode { offset, .. }) => assert_eq!(offset, bytes.len()),
            other => panic!("{other:?}"),
        }
        // A header that is not one: at the body's first byte.
        let mut bad = bytes[..12].to_vec();
        bad.extend_from_slice(&[0xff; 4]);
        match Trace::from_bytes(&bad) {
            Err(TraceError::Decode { offset, part, .. }) => {
                assert_eq!((offset, part.as_str()), (12, "header"));
            }
            other => panic!("{other:?}"),
        }
        // The mapping from unpacked positions to file offsets, checked against the
        // unpacker: the bytes before the offset unpack to at most `pos` bytes, and
        // with the token at the offset (a byte, or a run's marker and length) to more.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..3000)
            .map(|i| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if (i / 40) % 2 == 1 && seed % 2 == 0 {
                    (seed >> 8) as u8 | 1
                } else {
                    0
                }
            })
            .collect();
        let p = pack_zero_runs(&data);
        for pos in 0..data.len() {
            let off = packed_offset(&p, pos);
            let before = unpack_zero_runs(&p[..off], 0).unwrap().len();
            let token = if p[off] == 0 {
                1 + p[off + 1..].iter().position(|&c| c & 0x80 == 0).unwrap() + 1
            } else {
                1
            };
            let with = unpack_zero_runs(&p[..off + token], 0).unwrap().len();
            assert!(before <= pos && pos < with, "pos {pos}: off {off}");
        }
        assert_eq!(packed_offset(&p, data.len()), p.len());
        let packed = [5, 0, 3, 6]; // 5, 0, 0, 0, 6
        assert_eq!(
            (0..=5)
                .map(|p| packed_offset(&packed, p))
                .collect::<Vec<_>>(),
            [0, 1, 1, 1, 3, 4]
        );
    }

    #[test]
    fn zero_run_packing_round_trips() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for len in [0usize, 1, 2, 127, 128, 129, 5000, 70000] {
            let mut v = vec![0u8; len];
            for (i, b) in v.iter_mut().enumerate() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Mostly zeros, with runs of every length.
                if (i / 300) % 2 == 1 && seed % 3 == 0 {
                    *b = (seed >> 8) as u8;
                }
            }
            let p = pack_zero_runs(&v);
            assert_eq!(unpack_zero_runs(&p, 0).unwrap(), v, "len {len}");
        }
        assert_eq!(pack_zero_runs(&[0; 300]), [0, 0xac, 0x02]);
        assert!(matches!(
            unpack_zero_runs(&[5, 0], 12),
            Err(TraceError::Packing { offset: 13, .. })
        ));
        assert!(unpack_zero_runs(&[0, 0], 0).is_err(), "zero-length run");
        assert!(
            unpack_zero_runs(&[0, 0xff, 0xff, 0xff, 0xff, 0x7f], 0).is_err(),
            "too long"
        );
    }

    #[test]
    fn the_dump_is_one_line_per_call() {
        let (_, t) = recorded();
        let d = t.dump();
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines[0], "xi trace v1 backend=model calls=8");
        assert_eq!(lines[1], "note: unit test");
        assert_eq!(lines.len(), 10);
        assert!(lines[4].starts_with("#00002 xs_write tx=0 /tool/xi/a = \"hello\" -> Ok()"));
        assert!(
            lines[6].contains("/no/such/node -> Err(xs read: errno 2)"),
            "{}",
            lines[6]
        );
        assert_eq!(t.call_counts()["xs_read"], 2);
        assert_eq!(bytes(&[0; 40]), "[0;40]");
        assert_eq!(bytes(&[1, 2]), "[0102]");
        assert_eq!(mfn_list(&[4, 5, 6]), "[0x4..=0x6]");
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
