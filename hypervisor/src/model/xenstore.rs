//! An in-process xenstored for the model, deterministic and independent of the rest of
//! the model (it is handed ring pages as bytes and never touches machine memory).
//!
//! It follows C xenstored 4.17 (`tools/xenstore/xenstored_*.c`) and
//! `docs/misc/xenstore.txt`:
//!
//! - **Connections** ([`Conn`]): [`Conn::Tools`] is dom0's privileged socket (the
//!   toolstack); [`Conn::Domain`] is an introduced domain's ring. Domain 0's ring is
//!   privileged too. Relative paths are taken relative to `/local/domain/<id>`; like C
//!   xenstored, the socket's implicit base is `/local/domain/0`.
//! - **Paths**: ASCII letters, digits and `-/_@`, starting with `/`, no `//`, no
//!   trailing `/` except the root, at most 2048 bytes past a `/local/domain/<id>/`
//!   prefix (C's `is_valid_nodename`) — `EINVAL` otherwise. `@` paths are only for
//!   watches and for the permissions of `@introduceDomain`/`@releaseDomain`.
//! - **Permissions**: the first entry names the owner and everyone else's access; later
//!   entries grant specific domains. Privileged connections and the owner (or a domain
//!   whose SET_TARGET is the owner) have full access. Reading needs `r`, writing `w`,
//!   SET_PERMS ownership. A node created by an unprivileged domain inherits its
//!   parent's permissions with the creator as owner. A refused or missing node answers
//!   `EACCES` unless the nearest existing ancestor grants the access asked for (so
//!   errors leak nothing about unreadable subtrees).
//! - **Watches** fire for a change at or below the watched path, once at once when set,
//!   and, when a subtree is removed, also with the exact path of every watched node
//!   inside it. A watcher is told only if it may read the node or its parent (or could
//!   read it before a permission change). An event identical to one still queued for
//!   the connection is dropped. Changes in a transaction fire at commit.
//! - **Transactions** are snapshots: the whole tree is copied at start, reads and writes
//!   go to the copy, and a commit fails with `EAGAIN` (changing nothing) if any node the
//!   transaction read or wrote — present or absent — changed outside it since it
//!   started. Each node carries a generation number bumped by every change to it or to
//!   its list of children.
//! - **Domains**: INTRODUCE starts a ring connection and fires `@introduceDomain`;
//!   introducing again resets the connection (watches, transactions, queued output) as
//!   C xenstored does. RELEASE drops the connection, removes every node the domain
//!   owns (firing watches), and fires `@releaseDomain`; so does
//!   [`XenStore::domain_shutdown`] (once, until RESUME), which the model calls where
//!   xenstored would notice the shutdown through `VIRQ_DOM_EXC`.
//! - **The ring** ([`XenStore::process_ring`]): requests are consumed from `req` as
//!   they arrive and buffered until complete (a message may be longer than the ring);
//!   replies and watch events are queued per connection and streamed into `rsp` as
//!   space allows, in order. As in C xenstored, a request longer than
//!   `XENSTORE_PAYLOAD_MAX` or inconsistent ring indices make xenstored stop serving the
//!   ring for good: it sets the page's `error` word (`XENSTORE_ERROR_PROTO` /
//!   `XENSTORE_ERROR_RINGIDX`) and drops the connection's watches, transactions and
//!   queued output; only RELEASE followed by INTRODUCE brings it back. The indices are
//!   zeroed and `connection` set to `XENSTORE_CONNECTED` at introduce time — since the
//!   store only sees the page in `process_ring`, the caller must pass the page once
//!   right after [`XenStore::introduce`], before the guest runs
//!   ([`XenStore::ring_reset_pending`] says whether that is still due).
//!
//! Simplified or left out, compared with C xenstored 4.17:
//!
//! - Quotas (nodes, node size, watches, transactions, permissions per node, memory) are
//!   not enforced, except two bounds that keep a hostile guest from growing the store's
//!   memory: at most 20 outstanding replies per unprivileged ring (C's
//!   `quota_req_outstanding`; further requests wait in the ring) and 2.5 MiB of queued
//!   watch events per unprivileged ring (more are dropped, as C does past its memory
//!   quota). No write rate limiting, no watch-event timeout, no live update.
//! - DIRECTORY lists children sorted by name (C lists them in creation order).
//! - The conflict rule compares against the transaction's start, where C compares
//!   against the generation at first access — the documented "any intervening write"
//!   rule, slightly stricter.
//! - Permission entries naming domains that no longer exist are taken literally (C
//!   ignores them, checking with the hypervisor); a domain id in a permission must fit
//!   in 16 bits. INTRODUCE insists on an ordinary domain id (below `DOMID_FIRST_RESERVED`).
//! - CONTROL knows only `check`. 4.17 has no watch depth, GET/SET_FEATURE or QUOTA
//!   commands (`ENOSYS`), and this model leaves `server_features` alone, as C
//!   xenstored 4.17 does.
//! - Paths and perm strings must be UTF-8 (any non-ASCII byte is invalid anyway);
//!   watch tokens and `@` watch paths are kept as raw bytes.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use zerocopy::{FromBytes, IntoBytes};

use crate::abi::xs_wire::{
    errno_to_wire, mask_xenstore_idx, XsWireHeader, XENSTORE_CONNECTED, XENSTORE_ERROR_PROTO,
    XENSTORE_ERROR_RINGIDX, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX, XENSTORE_RING_SIZE,
    XS_CONTROL, XS_DIRECTORY, XS_DIRECTORY_PART, XS_ERROR, XS_GET_DOMAIN_PATH, XS_GET_PERMS,
    XS_INTRODUCE, XS_IS_DOMAIN_INTRODUCED, XS_MKDIR, XS_READ, XS_RELEASE, XS_RESET_WATCHES,
    XS_RESUME, XS_RING_CONNECTION, XS_RING_ERROR, XS_RING_REQ, XS_RING_REQ_CONS, XS_RING_REQ_PROD,
    XS_RING_RSP, XS_RING_RSP_CONS, XS_RING_RSP_PROD, XS_RM, XS_SET_PERMS, XS_SET_TARGET,
    XS_TRANSACTION_END, XS_TRANSACTION_START, XS_TYPE_COUNT, XS_UNWATCH, XS_WATCH, XS_WATCH_EVENT,
    XS_WIRE_HEADER_SIZE, XS_WRITE,
};
use crate::error::{Errno, XenResult};
use crate::types::{DomId, Mfn, Port};
use crate::xen::{XsAccess, XsPerm, XsTxId, XsWatchEvent, XS_NO_TX};

/// A client of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Conn {
    /// dom0's privileged socket connection (the toolstack).
    Tools,
    /// Domain `d`'s ring connection (exists once `d` is introduced).
    Domain(DomId),
}

/// Replies an unprivileged ring may have queued before xenstored stops reading its
/// requests (C xenstored's `quota_req_outstanding`).
pub const REQ_OUTSTANDING_MAX: usize = 20;

/// Bytes of watch events an unprivileged ring may have queued; later events are
/// dropped (C xenstored's hard memory quota per domain).
pub const EVENT_MEMORY_MAX: usize = 2 * 1024 * 1024 + 512 * 1024;

/// `DOMID_SELF`, which IS_DOMAIN_INTRODUCED answers `T` for.
const DOMID_SELF: i32 = 0x7FF0;

const PERM_READ: u8 = 1;
const PERM_WRITE: u8 = 2;
const PERM_OWNER: u8 = 4;
const PERM_ALL: u8 = PERM_READ | PERM_WRITE | PERM_OWNER;

const OK: &[u8] = b"OK\0";
const INTRODUCE_DOMAIN: &[u8] = b"@introduceDomain";
const RELEASE_DOMAIN: &[u8] = b"@releaseDomain";

/// One node: its value, permissions and generation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    value: Vec<u8>,
    perms: Vec<XsPerm>,
    generation: u64,
}

/// The whole store, keyed by absolute path. A node's children are the keys one level
/// below it.
type Tree = BTreeMap<String, Node>;

/// A watch: its canonical path (or `@` name), token, and whether events are reported
/// relative to the connection's home.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Watch {
    node: Vec<u8>,
    token: Vec<u8>,
    relative: bool,
}

/// A watch event before it is encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Event {
    path: Vec<u8>,
    token: Vec<u8>,
}

/// What a transaction did to one path.
#[derive(Clone, Debug)]
struct Access {
    /// The node's generation when the transaction started (`None`: absent).
    start_gen: Option<u64>,
    /// Its permissions then, for telling watchers who lose access.
    start_perms: Option<Vec<XsPerm>>,
    modified: bool,
    /// A watch event is due at commit: `Some(exact)`.
    fire: Option<bool>,
}

#[derive(Clone, Debug)]
struct Transaction {
    /// The transaction's copy of the store.
    tree: Tree,
    /// Accessed paths in first-access order (events fire in this order).
    order: Vec<String>,
    accessed: BTreeMap<String, Access>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutKind {
    Reply,
    Event,
}

/// An encoded message waiting for the client.
#[derive(Clone, Debug)]
struct OutMsg {
    bytes: Vec<u8>,
    kind: OutKind,
}

/// The per-domain part of a ring connection.
#[derive(Clone, Debug)]
struct RingState {
    mfn: Mfn,
    port: Port,
    /// `@releaseDomain` already fired for a shutdown (cleared by RESUME).
    shutdown: bool,
    /// SET_TARGET: this domain acts for `target`.
    target: Option<DomId>,
    /// The ring indices still have to be zeroed (introduce happened).
    reset_pending: bool,
    /// The `XENSTORE_ERROR_*` the ring was abandoned with.
    broken: Option<u32>,
    /// A request read so far.
    inbuf: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
struct Connection {
    watches: Vec<Watch>,
    transactions: BTreeMap<XsTxId, Transaction>,
    next_tx: XsTxId,
    /// Queued output: watch events (and, for rings, replies).
    out: VecDeque<OutMsg>,
    /// Bytes of `out`'s head already in the ring.
    out_off: usize,
    /// Bytes of queued watch events.
    event_bytes: usize,
    /// Present for domain connections.
    ring: Option<RingState>,
}

/// The xenstore service.
#[derive(Clone, Debug)]
pub struct XenStore {
    tree: Tree,
    generation: u64,
    conns: BTreeMap<Conn, Connection>,
    introduce_perms: Vec<XsPerm>,
    release_perms: Vec<XsPerm>,
}

impl Default for XenStore {
    fn default() -> Self {
        XenStore::new()
    }
}

fn is_privileged(conn: Conn) -> bool {
    match conn {
        Conn::Tools => true,
        Conn::Domain(d) => d == DomId::DOM0,
    }
}

fn conn_id(conn: Conn) -> DomId {
    match conn {
        Conn::Tools => DomId::DOM0,
        Conn::Domain(d) => d,
    }
}

fn implicit_path(conn: Conn) -> String {
    format!("/local/domain/{}", conn_id(conn).get())
}

fn canonicalize(conn: Conn, path: &str) -> String {
    if path.starts_with('/') || path.starts_with('@') {
        path.to_owned()
    } else {
        format!("{}/{}", implicit_path(conn), path)
    }
}

fn canonicalize_bytes(conn: Conn, path: &[u8]) -> Vec<u8> {
    match path.first() {
        Some(b'/' | b'@') => path.to_vec(),
        _ => {
            let mut p = implicit_path(conn).into_bytes();
            p.push(b'/');
            p.extend_from_slice(path);
            p
        }
    }
}

/// Length of a `/local/domain/<up to 5 digits>/` prefix, else 0 (C's sscanf).
fn local_prefix_len(path: &str) -> usize {
    const P: &str = "/local/domain/";
    let Some(rest) = path.strip_prefix(P) else {
        return 0;
    };
    let digits = rest.bytes().take(5).take_while(u8::is_ascii_digit).count();
    if digits > 0 && rest.as_bytes().get(digits) == Some(&b'/') {
        P.len() + digits + 1
    } else {
        0
    }
}

/// C xenstored's `is_valid_nodename`.
fn is_valid_nodename(path: &str) -> bool {
    if !path.starts_with('/') {
        return false;
    }
    if path.ends_with('/') && path != "/" {
        return false;
    }
    if path.contains("//") {
        return false;
    }
    if path.len() > local_prefix_len(path) + XENSTORE_REL_PATH_MAX {
        return false;
    }
    path.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@'))
}

/// The parent of an absolute path (`/` for `/`).
fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Whether `child` is `parent` or below it.
fn is_child(child: &[u8], parent: &[u8]) -> bool {
    if parent == b"/" {
        return true;
    }
    child.starts_with(parent) && matches!(child.get(parent.len()), None | Some(b'/'))
}

/// Full paths of `path`'s children, sorted.
fn child_paths(tree: &Tree, path: &str) -> Vec<String> {
    let prefix = if path == "/" {
        "/".to_owned()
    } else {
        format!("{path}/")
    };
    tree.range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .map(|(k, _)| k)
        .take_while(|k| k.starts_with(&prefix))
        .filter(|k| {
            let rest = &k[prefix.len()..];
            !rest.is_empty() && !rest.contains('/')
        })
        .cloned()
        .collect()
}

/// `root` and everything below it, children before parents (C's tree walk order).
fn post_order(tree: &Tree, root: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_owned(), child_paths(tree, root), 0usize)];
    while let Some(top) = stack.last_mut() {
        if let Some(child) = top.1.get(top.2).cloned() {
            top.2 += 1;
            let grandchildren = child_paths(tree, &child);
            stack.push((child, grandchildren, 0));
        } else if let Some((path, _, _)) = stack.pop() {
            out.push(path);
        }
    }
    out
}

fn access_bits(a: XsAccess) -> u8 {
    match a {
        XsAccess::None => 0,
        XsAccess::Read => PERM_READ,
        XsAccess::Write => PERM_WRITE,
        XsAccess::Both => PERM_READ | PERM_WRITE,
    }
}

fn get_u32(page: &[u8; 4096], off: usize) -> u32 {
    u32::from_le_bytes([page[off], page[off + 1], page[off + 2], page[off + 3]])
}

fn put_u32(page: &mut [u8; 4096], off: usize, v: u32) {
    page[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn encode(header: XsWireHeader, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(XS_WIRE_HEADER_SIZE + payload.len());
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(payload);
    v
}

fn event_payload(ev: &Event) -> Vec<u8> {
    let mut p = Vec::with_capacity(ev.path.len() + ev.token.len() + 2);
    p.extend_from_slice(&ev.path);
    p.push(0);
    p.extend_from_slice(&ev.token);
    p.push(0);
    p
}

fn decode_event(msg: &[u8]) -> XsWatchEvent {
    let payload = msg.get(XS_WIRE_HEADER_SIZE..).unwrap_or(&[]);
    let mut parts = payload.split(|&b| b == 0);
    let path = parts.next().unwrap_or(&[]);
    let token = parts.next().unwrap_or(&[]);
    XsWatchEvent {
        path: String::from_utf8_lossy(path).into_owned(),
        token: String::from_utf8_lossy(token).into_owned(),
    }
}

/// The NUL-terminated strings of a payload (bytes after the last NUL are ignored).
fn strings(payload: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = payload.split(|&b| b == 0).collect();
    v.pop();
    v
}

/// The payload's only argument: it must hold exactly one NUL, at the end.
fn onearg(payload: &[u8]) -> Option<&[u8]> {
    let (last, rest) = payload.split_last()?;
    (*last == 0 && !rest.contains(&0)).then_some(rest)
}

fn as_str(b: &[u8]) -> XenResult<&str> {
    std::str::from_utf8(b).map_err(|_| Errno::EINVAL)
}

/// C's `atoi`: optional blanks and sign, then decimal digits up to the first non-digit.
fn atoi(b: &[u8]) -> i64 {
    let mut i = 0;
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    let neg = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        v = v.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
        i += 1;
    }
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

/// One permission string as xenstored parses it: a letter, then a domain id in C
/// `strtol` base-0 notation (decimal, `0x` hex, leading-zero octal).
fn parse_perm(s: &[u8]) -> Option<XsPerm> {
    let (&letter, num) = s.split_first()?;
    let access = match letter {
        b'r' => XsAccess::Read,
        b'w' => XsAccess::Write,
        b'b' => XsAccess::Both,
        b'n' => XsAccess::None,
        _ => return None,
    };
    let num = std::str::from_utf8(num).ok()?;
    let id = if let Some(hex) = num.strip_prefix("0x").or_else(|| num.strip_prefix("0X")) {
        u16::from_str_radix(hex, 16).ok()?
    } else if num.len() > 1 && num.starts_with('0') {
        u16::from_str_radix(&num[1..], 8).ok()?
    } else {
        if !num.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        num.parse().ok()?
    };
    Some(XsPerm {
        dom: DomId::new(id),
        access,
    })
}

fn join_nul<S: AsRef<[u8]>>(items: &[S]) -> Vec<u8> {
    let mut v = Vec::new();
    for i in items {
        v.extend_from_slice(i.as_ref());
        v.push(0);
    }
    v
}

impl XenStore {
    /// A freshly started store: `/`, `/tool` and `/tool/xenstored` as xenstored creates
    /// them, plus `/local` and `/local/domain` as dom0's boot leaves them; all owned by
    /// dom0 with permissions `n0`. Only the toolstack's socket is connected.
    #[must_use]
    pub fn new() -> Self {
        let mut s = XenStore {
            tree: Tree::new(),
            generation: 0,
            conns: BTreeMap::new(),
            introduce_perms: vec![XsPerm {
                dom: DomId::DOM0,
                access: XsAccess::None,
            }],
            release_perms: vec![XsPerm {
                dom: DomId::DOM0,
                access: XsAccess::None,
            }],
        };
        for p in ["/", "/local", "/local/domain", "/tool", "/tool/xenstored"] {
            let generation = s.next_gen();
            s.tree.insert(
                p.to_owned(),
                Node {
                    value: Vec::new(),
                    perms: vec![XsPerm {
                        dom: DomId::DOM0,
                        access: XsAccess::None,
                    }],
                    generation,
                },
            );
        }
        s.conns.insert(Conn::Tools, Connection::default());
        s
    }

    fn next_gen(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    fn target_of(&self, conn: Conn) -> Option<DomId> {
        self.conns.get(&conn)?.ring.as_ref()?.target
    }

    /// C xenstored's `perm_for_conn`.
    fn perm_for(&self, conn: Conn, perms: &[XsPerm]) -> u8 {
        if is_privileged(conn) {
            return PERM_ALL;
        }
        let Some(first) = perms.first() else {
            return 0;
        };
        let id = conn_id(conn);
        let target = self.target_of(conn);
        let me = |d: DomId| d == id || Some(d) == target;
        if me(first.dom) {
            return PERM_ALL;
        }
        perms[1..]
            .iter()
            .find(|p| me(p.dom))
            .map_or(access_bits(first.access), |p| access_bits(p.access))
    }

    fn conn_ref(&self, conn: Conn) -> XenResult<&Connection> {
        self.conns.get(&conn).ok_or(Errno::EINVAL)
    }

    fn check_tx(&self, conn: Conn, tx: XsTxId) -> XenResult<()> {
        let c = self.conn_ref(conn)?;
        if tx == XS_NO_TX || c.transactions.contains_key(&tx) {
            Ok(())
        } else {
            Err(Errno::ENOENT)
        }
    }

    fn txn_mut(&mut self, conn: Conn, tx: XsTxId) -> Option<&mut Transaction> {
        if tx == XS_NO_TX {
            return None;
        }
        self.conns.get_mut(&conn)?.transactions.get_mut(&tx)
    }

    fn view(&self, conn: Conn, tx: XsTxId) -> &Tree {
        if tx == XS_NO_TX {
            return &self.tree;
        }
        match self.conns.get(&conn).and_then(|c| c.transactions.get(&tx)) {
            Some(t) => &t.tree,
            None => &self.tree,
        }
    }

    fn view_mut(&mut self, conn: Conn, tx: XsTxId) -> &mut Tree {
        if tx != XS_NO_TX {
            if let Some(c) = self.conns.get_mut(&conn) {
                if let Some(t) = c.transactions.get_mut(&tx) {
                    return &mut t.tree;
                }
            }
        }
        &mut self.tree
    }

    /// Records that the transaction (if any) accessed `path`; call before changing it.
    fn note(&mut self, conn: Conn, tx: XsTxId, path: &str, modify: bool) {
        let Some(t) = self.txn_mut(conn, tx) else {
            return;
        };
        if !t.accessed.contains_key(path) {
            let node = t.tree.get(path);
            let access = Access {
                start_gen: node.map(|n| n.generation),
                start_perms: node.map(|n| n.perms.clone()),
                modified: false,
                fire: None,
            };
            t.accessed.insert(path.to_owned(), access);
            t.order.push(path.to_owned());
        }
        if modify {
            if let Some(a) = t.accessed.get_mut(path) {
                a.modified = true;
            }
        }
    }

    /// Bumps a node's generation (its value, permissions or children changed).
    fn touch(&mut self, conn: Conn, tx: XsTxId, path: &str) {
        self.note(conn, tx, path, true);
        let generation = self.next_gen();
        if let Some(n) = self.view_mut(conn, tx).get_mut(path) {
            n.generation = generation;
        }
    }

    /// The errno a failed lookup reports: `err` if the nearest existing ancestor grants
    /// any of `perm`, else `EACCES` (C's `errno_from_parents`).
    fn errno_from_parents(
        &self,
        conn: Conn,
        tx: XsTxId,
        name: &str,
        err: Errno,
        perm: u8,
    ) -> Errno {
        let tree = self.view(conn, tx);
        let mut p = name;
        loop {
            p = parent_of(p);
            if let Some(n) = tree.get(p) {
                return if self.perm_for(conn, &n.perms) & perm != 0 {
                    err
                } else {
                    Errno::EACCES
                };
            }
            if p == "/" {
                return Errno::EACCES;
            }
        }
    }

    /// C's `get_node`: validates, records the access, checks `perm`.
    fn get_node(&mut self, conn: Conn, tx: XsTxId, name: &str, perm: u8) -> XenResult<Node> {
        if !is_valid_nodename(name) {
            return Err(Errno::EINVAL);
        }
        self.note(conn, tx, name, false);
        let err = match self.view(conn, tx).get(name) {
            Some(n) if self.perm_for(conn, &n.perms) & perm == perm => return Ok(n.clone()),
            Some(_) => Errno::EACCES,
            None => Errno::ENOENT,
        };
        Err(self.errno_from_parents(conn, tx, name, err, perm))
    }

    /// Creates `name` and any missing parents; returns the new node's permissions.
    fn create_node(&mut self, conn: Conn, tx: XsTxId, name: &str, value: Vec<u8>) -> Vec<XsPerm> {
        let mut missing = vec![name.to_owned()];
        let mut p = name.to_owned();
        let existing = loop {
            p = parent_of(&p).to_owned();
            self.note(conn, tx, &p, false);
            if self.view(conn, tx).contains_key(&p) || p == "/" {
                break p;
            }
            missing.push(p.clone());
        };
        let mut perms = self
            .view(conn, tx)
            .get(&existing)
            .map(|n| n.perms.clone())
            .unwrap_or_else(|| {
                vec![XsPerm {
                    dom: DomId::DOM0,
                    access: XsAccess::None,
                }]
            });
        if !is_privileged(conn) {
            if let Some(owner) = perms.first_mut() {
                owner.dom = conn_id(conn);
            }
        }
        self.touch(conn, tx, &existing);
        let mut value = Some(value);
        for m in missing.iter().rev() {
            self.note(conn, tx, m, true);
            let generation = self.next_gen();
            let v = if m == name {
                value.take().unwrap_or_default()
            } else {
                Vec::new()
            };
            self.view_mut(conn, tx).insert(
                m.clone(),
                Node {
                    value: v,
                    perms: perms.clone(),
                    generation,
                },
            );
        }
        perms
    }

    /// The events a change at `name` causes (C's `fire_watches`), judged against the
    /// current global tree.
    fn collect_events(
        &self,
        name: &str,
        node_perms: Option<&[XsPerm]>,
        exact: bool,
        old_perms: Option<&[XsPerm]>,
    ) -> Vec<(Conn, Event)> {
        let special = name.starts_with('@');
        let mut out = Vec::new();
        for (&conn, c) in &self.conns {
            let permitted = if special {
                let perms = match name.as_bytes() {
                    INTRODUCE_DOMAIN => Some(&self.introduce_perms),
                    RELEASE_DOMAIN => Some(&self.release_perms),
                    _ => None,
                };
                perms.is_some_and(|p| self.perm_for(conn, p) & PERM_READ != 0)
            } else {
                self.watch_permitted(conn, name, node_perms, old_perms)
            };
            if !permitted {
                continue;
            }
            for w in &c.watches {
                let hit = if exact {
                    w.node == name.as_bytes()
                } else {
                    is_child(name.as_bytes(), &w.node)
                };
                if hit {
                    out.push((
                        conn,
                        Event {
                            path: watch_path(conn, w.relative, name.as_bytes()),
                            token: w.token.clone(),
                        },
                    ));
                }
            }
        }
        out
    }

    /// C's `watch_permitted`: the watcher could read the node before a permission
    /// change, or can read the node, or its parent.
    fn watch_permitted(
        &self,
        conn: Conn,
        name: &str,
        node_perms: Option<&[XsPerm]>,
        old_perms: Option<&[XsPerm]>,
    ) -> bool {
        if old_perms.is_some_and(|p| self.perm_for(conn, p) & PERM_READ != 0) {
            return true;
        }
        let Some(perms) = node_perms.or_else(|| self.tree.get(name).map(|n| &n.perms[..])) else {
            return false;
        };
        if self.perm_for(conn, perms) & PERM_READ != 0 {
            return true;
        }
        self.tree
            .get(parent_of(name))
            .is_some_and(|p| self.perm_for(conn, &p.perms) & PERM_READ != 0)
    }

    /// Queues watch events, dropping duplicates of queued ones and over-long ones.
    fn deliver(&mut self, events: Vec<(Conn, Event)>) {
        for (conn, ev) in events {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.ring.as_ref().is_some_and(|r| r.broken.is_some()) {
                continue;
            }
            let payload = event_payload(&ev);
            if payload.len() > XENSTORE_PAYLOAD_MAX {
                continue;
            }
            let header = XsWireHeader {
                type_: XS_WATCH_EVENT,
                req_id: 0,
                tx_id: 0,
                len: payload.len() as u32,
            };
            let bytes = encode(header, &payload);
            if ev.path.first() != Some(&b'@')
                && c.out
                    .iter()
                    .any(|m| m.kind == OutKind::Event && m.bytes == bytes)
            {
                continue;
            }
            if !is_privileged(conn) && c.event_bytes + bytes.len() > EVENT_MEMORY_MAX {
                continue;
            }
            c.event_bytes += bytes.len();
            c.out.push_back(OutMsg {
                bytes,
                kind: OutKind::Event,
            });
        }
    }

    /// Fires watches for a change at `name` now, or at commit inside a transaction.
    fn fire(
        &mut self,
        conn: Conn,
        tx: XsTxId,
        name: &str,
        node_perms: Option<&[XsPerm]>,
        exact: bool,
        old_perms: Option<&[XsPerm]>,
    ) {
        if let Some(t) = self.txn_mut(conn, tx) {
            if let Some(a) = t.accessed.get_mut(name) {
                a.fire = Some(a.fire.map_or(exact, |e| e && exact));
            }
            return;
        }
        let events = self.collect_events(name, node_perms, exact, old_perms);
        self.deliver(events);
    }

    /// Removes `root` and its subtree, firing watches as C's `rm_node` does.
    fn rm_subtree(&mut self, conn: Conn, tx: XsTxId, root: &str) {
        let order = post_order(self.view(conn, tx), root);
        let parent = parent_of(root).to_owned();
        if tx == XS_NO_TX {
            // Judge watchers while the nodes (and their parents) can still be seen.
            let mut events = Vec::new();
            for n in &order {
                if let Some(node) = self.tree.get(n) {
                    events.extend(self.collect_events(n, Some(&node.perms), n != root, None));
                }
            }
            for n in &order {
                self.tree.remove(n);
            }
            self.touch(conn, tx, &parent);
            self.deliver(events);
        } else {
            for n in &order {
                self.note(conn, tx, n, true);
                self.view_mut(conn, tx).remove(n);
            }
            self.touch(conn, tx, &parent);
            for n in &order {
                self.fire(conn, tx, n, None, n != root, None);
            }
        }
    }

    // ---- the store operations -------------------------------------------------------

    /// READ: a node's value.
    ///
    /// # Errors
    /// `EINVAL` (bad path or connection), `ENOENT`, `EACCES`; `ENOENT` for an unknown
    /// transaction.
    pub fn read(&mut self, conn: Conn, tx: XsTxId, path: &str) -> XenResult<Vec<u8>> {
        self.check_tx(conn, tx)?;
        let name = canonicalize(conn, path);
        Ok(self.get_node(conn, tx, &name, PERM_READ)?.value)
    }

    /// WRITE: sets a node's value, creating it and any missing parents (with empty
    /// values). Creating needs write access to the nearest existing ancestor.
    ///
    /// # Errors
    /// As [`XenStore::read`], and `E2BIG` if the request would not fit in one message
    /// (libxenstore's check).
    pub fn write(&mut self, conn: Conn, tx: XsTxId, path: &str, value: &[u8]) -> XenResult<()> {
        if path.len() + 1 + value.len() > XENSTORE_PAYLOAD_MAX {
            return Err(Errno::E2BIG);
        }
        self.do_write(conn, tx, path, value)
    }

    fn do_write(&mut self, conn: Conn, tx: XsTxId, path: &str, value: &[u8]) -> XenResult<()> {
        self.check_tx(conn, tx)?;
        let name = canonicalize(conn, path);
        let perms = match self.get_node(conn, tx, &name, PERM_WRITE) {
            Ok(node) => {
                self.note(conn, tx, &name, true);
                let generation = self.next_gen();
                if let Some(n) = self.view_mut(conn, tx).get_mut(&name) {
                    n.value = value.to_vec();
                    n.generation = generation;
                }
                node.perms
            }
            Err(Errno::ENOENT) => self.create_node(conn, tx, &name, value.to_vec()),
            Err(e) => return Err(e),
        };
        self.fire(conn, tx, &name, Some(&perms), false, None);
        Ok(())
    }

    /// MKDIR: makes sure a node exists (creating parents); an existing node is left as
    /// it is, but still needs write access.
    ///
    /// # Errors
    /// As [`XenStore::read`].
    pub fn mkdir(&mut self, conn: Conn, tx: XsTxId, path: &str) -> XenResult<()> {
        self.check_tx(conn, tx)?;
        let name = canonicalize(conn, path);
        match self.get_node(conn, tx, &name, PERM_WRITE) {
            Ok(_) => Ok(()),
            Err(Errno::ENOENT) => {
                let perms = self.create_node(conn, tx, &name, Vec::new());
                self.fire(conn, tx, &name, Some(&perms), false, None);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// RM: removes a node and everything below it. Removing a missing node whose parent
    /// exists succeeds.
    ///
    /// # Errors
    /// `ENOENT` if neither the node nor its parent exists, `EINVAL` for `/`, `EACCES`
    /// without write access to the node.
    pub fn rm(&mut self, conn: Conn, tx: XsTxId, path: &str) -> XenResult<()> {
        self.check_tx(conn, tx)?;
        let name = canonicalize(conn, path);
        match self.get_node(conn, tx, &name, PERM_WRITE) {
            Ok(_) if name == "/" => Err(Errno::EINVAL),
            Ok(_) => {
                self.rm_subtree(conn, tx, &name);
                Ok(())
            }
            Err(Errno::ENOENT) => {
                let parent = parent_of(&name).to_owned();
                self.note(conn, tx, &parent, false);
                if self.view(conn, tx).contains_key(&parent) {
                    Ok(())
                } else {
                    Err(Errno::ENOENT)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// DIRECTORY: the names of a node's children, sorted.
    ///
    /// # Errors
    /// As [`XenStore::read`].
    pub fn directory(&mut self, conn: Conn, tx: XsTxId, path: &str) -> XenResult<Vec<String>> {
        self.check_tx(conn, tx)?;
        let name = canonicalize(conn, path);
        self.get_node(conn, tx, &name, PERM_READ)?;
        let skip = if name == "/" { 1 } else { name.len() + 1 };
        Ok(child_paths(self.view(conn, tx), &name)
            .into_iter()
            .map(|p| p[skip..].to_owned())
            .collect())
    }

    /// GET_PERMS: a node's permission list.
    ///
    /// # Errors
    /// As [`XenStore::read`].
    pub fn get_perms(&mut self, conn: Conn, tx: XsTxId, path: &str) -> XenResult<Vec<XsPerm>> {
        self.check_tx(conn, tx)?;
        let name = canonicalize(conn, path);
        Ok(self.get_node(conn, tx, &name, PERM_READ)?.perms)
    }

    /// SET_PERMS: replaces a node's permissions (the owner or a privileged connection
    /// only; an unprivileged owner may not give the node away). `@introduceDomain` and
    /// `@releaseDomain` take permissions too, which decide who hears those events.
    ///
    /// # Errors
    /// `EINVAL` (empty list, bad path, unknown `@` name), `EACCES`, `EPERM` (owner
    /// change by an unprivileged domain), `ENOENT`.
    pub fn set_perms(
        &mut self,
        conn: Conn,
        tx: XsTxId,
        path: &str,
        perms: &[XsPerm],
    ) -> XenResult<()> {
        self.check_tx(conn, tx)?;
        if perms.is_empty() {
            return Err(Errno::EINVAL);
        }
        if path.starts_with('@') {
            let current = match path.as_bytes() {
                INTRODUCE_DOMAIN => &self.introduce_perms,
                RELEASE_DOMAIN => &self.release_perms,
                _ => return Err(Errno::EINVAL),
            };
            if self.perm_for(conn, current) & (PERM_WRITE | PERM_OWNER) != PERM_WRITE | PERM_OWNER {
                return Err(Errno::EACCES);
            }
            if path.as_bytes() == INTRODUCE_DOMAIN {
                self.introduce_perms = perms.to_vec();
            } else {
                self.release_perms = perms.to_vec();
            }
            return Ok(());
        }
        let name = canonicalize(conn, path);
        let node = self.get_node(conn, tx, &name, PERM_WRITE | PERM_OWNER)?;
        if !is_privileged(conn) && node.perms.first().map(|p| p.dom) != Some(perms[0].dom) {
            return Err(Errno::EPERM);
        }
        self.note(conn, tx, &name, true);
        let generation = self.next_gen();
        if let Some(n) = self.view_mut(conn, tx).get_mut(&name) {
            n.perms = perms.to_vec();
            n.generation = generation;
        }
        self.fire(conn, tx, &name, Some(perms), false, Some(&node.perms));
        Ok(())
    }

    /// WATCH: adds a watch, which fires once straight away with the watched path.
    ///
    /// # Errors
    /// `EINVAL` (bad path or connection), `EEXIST` for the same path and token again.
    pub fn watch(&mut self, conn: Conn, path: &str, token: &str) -> XenResult<()> {
        if path.contains('\0') || token.contains('\0') {
            return Err(Errno::EINVAL);
        }
        let ev = self.add_watch(conn, path.as_bytes(), token.as_bytes())?;
        self.deliver(vec![(conn, ev)]);
        Ok(())
    }

    fn add_watch(&mut self, conn: Conn, path: &[u8], token: &[u8]) -> XenResult<Event> {
        self.conn_ref(conn)?;
        let (node, relative) = if path.first() == Some(&b'@') {
            if path.len() > XENSTORE_REL_PATH_MAX {
                return Err(Errno::EINVAL);
            }
            (path.to_vec(), false)
        } else {
            let p = as_str(path)?;
            let name = canonicalize(conn, p);
            if !is_valid_nodename(&name) {
                return Err(Errno::EINVAL);
            }
            (name.into_bytes(), !p.starts_with('/'))
        };
        let c = self.conns.get_mut(&conn).ok_or(Errno::EINVAL)?;
        if c.watches.iter().any(|w| w.node == node && w.token == token) {
            return Err(Errno::EEXIST);
        }
        let ev = Event {
            path: watch_path(conn, relative, &node),
            token: token.to_vec(),
        };
        c.watches.push(Watch {
            node,
            token: token.to_vec(),
            relative,
        });
        Ok(ev)
    }

    /// UNWATCH: removes a watch (events already queued stay queued).
    ///
    /// # Errors
    /// `ENOENT` if there is no such watch, `EINVAL` for a bad connection.
    pub fn unwatch(&mut self, conn: Conn, path: &str, token: &str) -> XenResult<()> {
        self.remove_watch(conn, path.as_bytes(), token.as_bytes())
    }

    fn remove_watch(&mut self, conn: Conn, path: &[u8], token: &[u8]) -> XenResult<()> {
        let node = canonicalize_bytes(conn, path);
        let c = self.conns.get_mut(&conn).ok_or(Errno::EINVAL)?;
        let i = c
            .watches
            .iter()
            .position(|w| w.node == node && w.token == token)
            .ok_or(Errno::ENOENT)?;
        c.watches.remove(i);
        Ok(())
    }

    /// RESET_WATCHES: drops all of the connection's watches and transactions.
    ///
    /// # Errors
    /// `EINVAL` for a bad connection.
    pub fn reset_watches(&mut self, conn: Conn) -> XenResult<()> {
        let c = self.conns.get_mut(&conn).ok_or(Errno::EINVAL)?;
        c.watches.clear();
        c.transactions.clear();
        Ok(())
    }

    /// TRANSACTION_START: a new transaction on a snapshot of the store; ids are per
    /// connection, non-zero, and not in use.
    ///
    /// # Errors
    /// `EINVAL` for a bad connection.
    pub fn transaction_start(&mut self, conn: Conn) -> XenResult<XsTxId> {
        self.conn_ref(conn)?;
        let snapshot = self.tree.clone();
        let c = self.conns.get_mut(&conn).ok_or(Errno::EINVAL)?;
        let id = loop {
            let id = c.next_tx;
            c.next_tx = c.next_tx.wrapping_add(1);
            if id != XS_NO_TX && !c.transactions.contains_key(&id) {
                break id;
            }
        };
        c.transactions.insert(
            id,
            Transaction {
                tree: snapshot,
                order: Vec::new(),
                accessed: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    /// TRANSACTION_END: commits (`commit`) or discards the transaction. Either way it
    /// is gone afterwards.
    ///
    /// # Errors
    /// `ENOENT` for an unknown transaction (or [`XS_NO_TX`]); `EAGAIN` if a node it
    /// accessed changed outside it since it started — then nothing is applied.
    pub fn transaction_end(&mut self, conn: Conn, tx: XsTxId, commit: bool) -> XenResult<()> {
        if tx == XS_NO_TX {
            return Err(Errno::ENOENT);
        }
        let c = self.conns.get_mut(&conn).ok_or(Errno::EINVAL)?;
        let t = c.transactions.remove(&tx).ok_or(Errno::ENOENT)?;
        if !commit {
            return Ok(());
        }
        for (path, a) in &t.accessed {
            if self.tree.get(path).map(|n| n.generation) != a.start_gen {
                return Err(Errno::EAGAIN);
            }
        }
        for path in &t.order {
            if !t.accessed.get(path).is_some_and(|a| a.modified) {
                continue;
            }
            match t.tree.get(path) {
                Some(n) => {
                    let generation = self.next_gen();
                    self.tree.insert(
                        path.clone(),
                        Node {
                            generation,
                            ..n.clone()
                        },
                    );
                }
                None => {
                    self.tree.remove(path);
                }
            }
        }
        for path in &t.order {
            let Some(a) = t.accessed.get(path) else {
                continue;
            };
            if let Some(exact) = a.fire {
                let events = self.collect_events(path, None, exact, a.start_perms.as_deref());
                self.deliver(events);
            }
        }
        Ok(())
    }

    // ---- domains --------------------------------------------------------------------

    /// INTRODUCE: xenstored starts serving `dom` over its ring page `mfn`, notifying
    /// through `port`, and fires `@introduceDomain`. Introducing an introduced domain
    /// again updates the page and port and resets the connection (no event).
    /// Either way the ring indices are zeroed on the next [`XenStore::process_ring`].
    ///
    /// # Errors
    /// `EINVAL` for port 0 or a reserved domain id.
    pub fn introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> XenResult<()> {
        if port.get() == 0 || dom.is_reserved() {
            return Err(Errno::EINVAL);
        }
        let conn = Conn::Domain(dom);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.watches.clear();
            c.transactions.clear();
            c.out.clear();
            c.out_off = 0;
            c.event_bytes = 0;
            if let Some(r) = c.ring.as_mut() {
                r.mfn = mfn;
                r.port = port;
                r.reset_pending = true;
                r.inbuf.clear();
            }
            return Ok(());
        }
        let ring = RingState {
            mfn,
            port,
            shutdown: false,
            target: None,
            reset_pending: true,
            broken: None,
            inbuf: Vec::new(),
        };
        self.conns.insert(
            conn,
            Connection {
                ring: Some(ring),
                ..Connection::default()
            },
        );
        if dom != DomId::DOM0 {
            let events = self.collect_events("@introduceDomain", None, true, None);
            self.deliver(events);
        }
        Ok(())
    }

    /// RELEASE: xenstored forgets `dom`: its connection, watches and transactions go,
    /// every node it owns is removed (firing watches), it is dropped from the special
    /// watches' permissions, and `@releaseDomain` fires.
    ///
    /// # Errors
    /// `EINVAL` for dom0, `ENOENT` if `dom` is not introduced.
    pub fn release(&mut self, dom: DomId) -> XenResult<()> {
        if dom == DomId::DOM0 {
            return Err(Errno::EINVAL);
        }
        let conn = Conn::Domain(dom);
        if self.conns.remove(&conn).is_none() {
            return Err(Errno::ENOENT);
        }
        // The topmost nodes the domain owns, in tree order; each goes with its subtree.
        let mut topmost = Vec::new();
        let mut stack = vec!["/".to_owned()];
        while let Some(p) = stack.pop() {
            let owned = p != "/"
                && self
                    .tree
                    .get(&p)
                    .and_then(|n| n.perms.first())
                    .map(|o| o.dom)
                    == Some(dom);
            if owned {
                topmost.push(p);
            } else {
                let mut children = child_paths(&self.tree, &p);
                children.reverse();
                stack.extend(children);
            }
        }
        for p in topmost {
            self.rm_subtree(Conn::Tools, XS_NO_TX, &p);
        }
        for perms in [&mut self.introduce_perms, &mut self.release_perms] {
            let Some((&first, rest)) = perms.split_first() else {
                continue;
            };
            let owner = if first.dom == dom {
                XsPerm {
                    dom: DomId::DOM0,
                    ..first
                }
            } else {
                first
            };
            let rest: Vec<XsPerm> = rest.iter().copied().filter(|p| p.dom != dom).collect();
            *perms = std::iter::once(owner).chain(rest).collect();
        }
        for c in self.conns.values_mut() {
            if let Some(r) = c.ring.as_mut() {
                if r.target == Some(dom) {
                    r.target = None;
                }
            }
        }
        let events = self.collect_events("@releaseDomain", None, true, None);
        self.deliver(events);
        Ok(())
    }

    /// Tells xenstored that `dom` has shut down (or crashed): fires `@releaseDomain`
    /// once, until [`XenStore::resume`]. Does nothing for a domain not introduced.
    pub fn domain_shutdown(&mut self, dom: DomId) {
        let Some(r) = self
            .conns
            .get_mut(&Conn::Domain(dom))
            .and_then(|c| c.ring.as_mut())
        else {
            return;
        };
        if r.shutdown {
            return;
        }
        r.shutdown = true;
        let events = self.collect_events("@releaseDomain", None, true, None);
        self.deliver(events);
    }

    /// Fires the special watch `name` (`@introduceDomain` or `@releaseDomain`) for
    /// every connection allowed to see it, as xenstored's domain scan does when it
    /// notices a state change it has no single domain for. Other names do nothing.
    pub fn fire_special(&mut self, name: &str) {
        if matches!(name.as_bytes(), INTRODUCE_DOMAIN | RELEASE_DOMAIN) {
            let events = self.collect_events(name, None, true, None);
            self.deliver(events);
        }
    }

    /// RESUME: `@releaseDomain` will fire again when `dom` next shuts down.
    ///
    /// # Errors
    /// `EINVAL` for dom0, `ENOENT` if `dom` is not introduced.
    pub fn resume(&mut self, dom: DomId) -> XenResult<()> {
        if dom == DomId::DOM0 {
            return Err(Errno::EINVAL);
        }
        let r = self
            .conns
            .get_mut(&Conn::Domain(dom))
            .and_then(|c| c.ring.as_mut())
            .ok_or(Errno::ENOENT)?;
        r.shutdown = false;
        Ok(())
    }

    /// SET_TARGET: `dom` gets full access to what `target` owns and `target`'s grants.
    ///
    /// # Errors
    /// `ENOENT` if either domain is not introduced.
    pub fn set_target(&mut self, dom: DomId, target: DomId) -> XenResult<()> {
        if !self.is_introduced(target) {
            return Err(Errno::ENOENT);
        }
        let r = self
            .conns
            .get_mut(&Conn::Domain(dom))
            .and_then(|c| c.ring.as_mut())
            .ok_or(Errno::ENOENT)?;
        r.target = Some(target);
        Ok(())
    }

    /// IS_DOMAIN_INTRODUCED.
    #[must_use]
    pub fn is_introduced(&self, dom: DomId) -> bool {
        self.conns.contains_key(&Conn::Domain(dom))
    }

    /// GET_DOMAIN_PATH: `/local/domain/<id>`.
    #[must_use]
    pub fn get_domain_path(&self, dom: DomId) -> String {
        format!("/local/domain/{}", dom.get())
    }

    /// Every introduced domain with its ring page and event channel, by domain id.
    #[must_use]
    pub fn introduced_domains(&self) -> Vec<(DomId, Mfn, Port)> {
        self.conns
            .iter()
            .filter_map(|(conn, c)| match (conn, &c.ring) {
                (Conn::Domain(d), Some(r)) => Some((*d, r.mfn, r.port)),
                _ => None,
            })
            .collect()
    }

    /// Whether `dom`'s ring still has to be reset after an introduce (see the module
    /// doc): pass its page to [`XenStore::process_ring`] before the guest runs.
    #[must_use]
    pub fn ring_reset_pending(&self, dom: DomId) -> bool {
        self.conns
            .get(&Conn::Domain(dom))
            .and_then(|c| c.ring.as_ref())
            .is_some_and(|r| r.reset_pending)
    }

    /// The `XENSTORE_ERROR_*` code `dom`'s ring was abandoned with, if it was.
    #[must_use]
    pub fn ring_error(&self, dom: DomId) -> Option<u32> {
        self.conns.get(&Conn::Domain(dom))?.ring.as_ref()?.broken
    }

    /// Whether output (replies or events) waits for room in `dom`'s ring.
    #[must_use]
    pub fn has_pending_output(&self, dom: DomId) -> bool {
        self.conns
            .get(&Conn::Domain(dom))
            .is_some_and(|c| !c.out.is_empty())
    }

    // ---- watch events ---------------------------------------------------------------

    /// Takes the queued watch events of `conn`, oldest first. For a domain connection,
    /// these are the events not yet (even partly) written to its ring.
    pub fn take_watch_events(&mut self, conn: Conn) -> Vec<XsWatchEvent> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Vec::new();
        };
        let started = c.out_off > 0;
        let mut events = Vec::new();
        let mut keep = VecDeque::new();
        for (i, m) in c.out.drain(..).enumerate() {
            if m.kind == OutKind::Event && !(i == 0 && started) {
                c.event_bytes -= m.bytes.len();
                events.push(decode_event(&m.bytes));
            } else {
                keep.push_back(m);
            }
        }
        c.out = keep;
        events
    }

    /// Takes the oldest queued watch event of `conn` (see
    /// [`XenStore::take_watch_events`]).
    pub fn pop_watch_event(&mut self, conn: Conn) -> Option<XsWatchEvent> {
        let c = self.conns.get_mut(&conn)?;
        let started = c.out_off > 0;
        let i = c
            .out
            .iter()
            .enumerate()
            .position(|(i, m)| m.kind == OutKind::Event && !(i == 0 && started))?;
        let m = c.out.remove(i)?;
        c.event_bytes -= m.bytes.len();
        Some(decode_event(&m.bytes))
    }

    // ---- the wire protocol ----------------------------------------------------------

    /// Executes one request from `conn` and returns the reply (header and payload), as
    /// xenstored would send it: same `req_id` and `tx_id`, the request's type or
    /// `XS_ERROR` with the errno's name. Watch events the request causes are queued
    /// for their connections (the initial event of a WATCH after its reply).
    pub fn handle_message(
        &mut self,
        conn: Conn,
        header: XsWireHeader,
        payload: &[u8],
    ) -> (XsWireHeader, Vec<u8>) {
        let (h, p, post) = self.handle(conn, &header, payload);
        if let Some(ev) = post {
            self.deliver(vec![(conn, ev)]);
        }
        (h, p)
    }

    fn handle(
        &mut self,
        conn: Conn,
        h: &XsWireHeader,
        payload: &[u8],
    ) -> (XsWireHeader, Vec<u8>, Option<Event>) {
        let mut post = None;
        let (type_, reply) = match self.dispatch(conn, h, payload, &mut post) {
            Ok(r) if r.len() <= XENSTORE_PAYLOAD_MAX => (h.type_, r),
            Ok(_) => (XS_ERROR, error_payload(Errno::E2BIG)),
            Err(e) => (XS_ERROR, error_payload(e)),
        };
        let header = XsWireHeader {
            type_,
            req_id: h.req_id,
            tx_id: h.tx_id,
            len: reply.len() as u32,
        };
        (header, reply, post)
    }

    fn dispatch(
        &mut self,
        conn: Conn,
        h: &XsWireHeader,
        p: &[u8],
        post: &mut Option<Event>,
    ) -> XenResult<Vec<u8>> {
        self.conn_ref(conn)?;
        let ty = h.type_;
        if ty >= XS_TYPE_COUNT || matches!(ty, XS_WATCH_EVENT | XS_ERROR | 20) {
            return Err(Errno::ENOSYS);
        }
        let privileged_only = matches!(
            ty,
            XS_CONTROL
                | XS_INTRODUCE
                | XS_RELEASE
                | XS_IS_DOMAIN_INTRODUCED
                | XS_RESUME
                | XS_SET_TARGET
        );
        if privileged_only && !is_privileged(conn) {
            return Err(Errno::EACCES);
        }
        let tx = if matches!(ty, XS_WATCH | XS_UNWATCH) {
            XS_NO_TX
        } else {
            self.check_tx(conn, h.tx_id)?;
            h.tx_id
        };
        let arg = || onearg(p).ok_or(Errno::EINVAL);
        let path_arg = || as_str(onearg(p).ok_or(Errno::EINVAL)?);
        match ty {
            XS_CONTROL => match strings(p).first() {
                Some(&b"check") => Ok(OK.to_vec()),
                _ => Err(Errno::EINVAL),
            },
            XS_DIRECTORY => Ok(join_nul(&self.directory(conn, tx, path_arg()?)?)),
            XS_READ => self.read(conn, tx, path_arg()?),
            XS_GET_PERMS => {
                let perms = self.get_perms(conn, tx, path_arg()?)?;
                let wire: Vec<String> = perms.iter().map(XsPerm::to_wire).collect();
                Ok(join_nul(&wire))
            }
            XS_WATCH | XS_UNWATCH => {
                let s = strings(p);
                if s.len() != 2 {
                    return Err(Errno::EINVAL);
                }
                if ty == XS_WATCH {
                    *post = Some(self.add_watch(conn, s[0], s[1])?);
                } else {
                    self.remove_watch(conn, s[0], s[1])?;
                }
                Ok(OK.to_vec())
            }
            XS_TRANSACTION_START => {
                if tx != XS_NO_TX {
                    return Err(Errno::EBUSY);
                }
                Ok(format!("{}\0", self.transaction_start(conn)?).into_bytes())
            }
            XS_TRANSACTION_END => {
                let commit = match arg()? {
                    b"T" => true,
                    b"F" => false,
                    _ => return Err(Errno::EINVAL),
                };
                self.transaction_end(conn, tx, commit)?;
                Ok(OK.to_vec())
            }
            XS_INTRODUCE => {
                let s = strings(p);
                if s.len() < 3 {
                    return Err(Errno::EINVAL);
                }
                let dom = atoi(s[0]);
                let mfn = atoi(s[1]);
                let port = atoi(s[2]);
                if port <= 0 || port > i64::from(u32::MAX) {
                    return Err(Errno::EINVAL);
                }
                let dom = u16::try_from(dom).map_err(|_| Errno::EINVAL)?;
                self.introduce(
                    DomId::new(dom),
                    Mfn::new(mfn as u64),
                    Port::new(port as u32),
                )?;
                Ok(OK.to_vec())
            }
            XS_RELEASE | XS_RESUME => {
                let dom = atoi(arg()?);
                if dom == 0 {
                    return Err(Errno::EINVAL);
                }
                let dom = DomId::new(u16::try_from(dom).map_err(|_| Errno::ENOENT)?);
                if ty == XS_RELEASE {
                    self.release(dom)?;
                } else {
                    self.resume(dom)?;
                }
                Ok(OK.to_vec())
            }
            XS_GET_DOMAIN_PATH => {
                // C formats atoi's int as unsigned.
                let dom = atoi(arg()?) as u32;
                Ok(format!("/local/domain/{dom}\0").into_bytes())
            }
            XS_WRITE => {
                let first = strings(p).first().copied().ok_or(Errno::EINVAL)?;
                let value = &p[first.len() + 1..];
                self.do_write(conn, tx, as_str(first)?, value)?;
                Ok(OK.to_vec())
            }
            XS_MKDIR => self.mkdir(conn, tx, path_arg()?).map(|()| OK.to_vec()),
            XS_RM => self.rm(conn, tx, path_arg()?).map(|()| OK.to_vec()),
            XS_SET_PERMS => {
                let s = strings(p);
                if s.len() < 2 {
                    return Err(Errno::EINVAL);
                }
                let perms = s[1..]
                    .iter()
                    .map(|b| parse_perm(b))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(Errno::EINVAL)?;
                self.set_perms(conn, tx, as_str(s[0])?, &perms)?;
                Ok(OK.to_vec())
            }
            XS_IS_DOMAIN_INTRODUCED => {
                let dom = atoi(arg()?);
                let yes = dom == i64::from(DOMID_SELF)
                    || u16::try_from(dom).is_ok_and(|d| self.is_introduced(DomId::new(d)));
                Ok(if yes {
                    b"T\0".to_vec()
                } else {
                    b"F\0".to_vec()
                })
            }
            XS_SET_TARGET => {
                let s = strings(p);
                if s.len() < 2 {
                    return Err(Errno::EINVAL);
                }
                let dom = u16::try_from(atoi(s[0])).map_err(|_| Errno::ENOENT)?;
                let target = u16::try_from(atoi(s[1])).map_err(|_| Errno::ENOENT)?;
                self.set_target(DomId::new(dom), DomId::new(target))?;
                Ok(OK.to_vec())
            }
            XS_RESET_WATCHES => self.reset_watches(conn).map(|()| OK.to_vec()),
            XS_DIRECTORY_PART => self.directory_part(conn, tx, p),
            _ => Err(Errno::ENOSYS),
        }
    }

    /// DIRECTORY_PART `<path>|<offset>|` → `<gencnt>|<names from offset>|*`, ending in
    /// an extra NUL once the list is complete.
    fn directory_part(&mut self, conn: Conn, tx: XsTxId, p: &[u8]) -> XenResult<Vec<u8>> {
        let s = strings(p);
        if s.len() != 2 {
            return Err(Errno::EINVAL);
        }
        let name = canonicalize(conn, as_str(s[0])?);
        let node = self.get_node(conn, tx, &name, PERM_READ)?;
        let names = self.directory(conn, tx, &name)?;
        let children = join_nul(&names);
        let off = atoi(s[1]) as u32 as usize;
        let mut reply = format!("{}\0", node.generation).into_bytes();
        if off >= children.len() {
            reply.push(0);
            return Ok(reply);
        }
        let maxlen = XENSTORE_PAYLOAD_MAX - reply.len() - 1;
        let mut len = 0;
        loop {
            let start = off + len;
            let name_len = children[start..].iter().position(|&b| b == 0).unwrap_or(0);
            if len + name_len >= maxlen {
                break;
            }
            len += name_len + 1;
            if off + len >= children.len() {
                break;
            }
        }
        reply.extend_from_slice(&children[off..off + len]);
        if off + len >= children.len() {
            reply.push(0);
        }
        Ok(reply)
    }

    // ---- the ring -------------------------------------------------------------------

    /// Serves domain `dom`'s ring page: consumes requests from `req`, executes complete
    /// ones as `Conn::Domain(dom)`, and writes replies and queued watch events into
    /// `rsp` as far as there is room (the rest stays queued for the next call).
    /// Returns whether anything was consumed or produced; the caller then notifies the
    /// domain's store event channel. Does nothing for a domain not introduced or a
    /// ring abandoned after an error (see the module doc).
    pub fn process_ring(&mut self, dom: DomId, page: &mut [u8; 4096]) -> bool {
        let conn = Conn::Domain(dom);
        let mut moved = false;
        {
            let Some(r) = self.conns.get_mut(&conn).and_then(|c| c.ring.as_mut()) else {
                return false;
            };
            if r.reset_pending {
                for off in [
                    XS_RING_REQ_CONS,
                    XS_RING_REQ_PROD,
                    XS_RING_RSP_CONS,
                    XS_RING_RSP_PROD,
                ] {
                    put_u32(page, off, 0);
                }
                put_u32(page, XS_RING_CONNECTION, XENSTORE_CONNECTED);
                r.reset_pending = false;
                moved = true;
            }
            if r.broken.is_some() {
                return moved;
            }
        }
        loop {
            let mut progress = match self.flush_output(conn, page) {
                Ok(n) => n > 0,
                Err(code) => {
                    self.abandon(conn, page, code);
                    return true;
                }
            };
            match self.read_request(conn, page) {
                Err(code) => {
                    self.abandon(conn, page, code);
                    return true;
                }
                Ok((n, msg)) => {
                    progress |= n > 0;
                    if let Some((h, payload)) = msg {
                        let (rh, rp, post) = self.handle(conn, &h, &payload);
                        let Some(c) = self.conns.get_mut(&conn) else {
                            return true;
                        };
                        c.out.push_back(OutMsg {
                            bytes: encode(rh, &rp),
                            kind: OutKind::Reply,
                        });
                        if let Some(ev) = post {
                            self.deliver(vec![(conn, ev)]);
                        }
                        if self.ring_reset_pending(dom) {
                            // The request re-introduced this very domain.
                            return true;
                        }
                    }
                }
            }
            if !progress {
                break;
            }
            moved = true;
        }
        moved
    }

    /// Writes queued output into `rsp`; returns the bytes written, or the error code
    /// for inconsistent indices.
    fn flush_output(&mut self, conn: Conn, page: &mut [u8; 4096]) -> Result<usize, u32> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(0);
        };
        if c.out.is_empty() {
            return Ok(0);
        }
        let cons = get_u32(page, XS_RING_RSP_CONS);
        let mut prod = get_u32(page, XS_RING_RSP_PROD);
        let used = prod.wrapping_sub(cons) as usize;
        if used > XENSTORE_RING_SIZE {
            return Err(XENSTORE_ERROR_RINGIDX);
        }
        let mut free = XENSTORE_RING_SIZE - used;
        let mut written = 0;
        while free > 0 {
            let Some(m) = c.out.front() else {
                break;
            };
            let rest = &m.bytes[c.out_off..];
            let k = rest.len().min(free);
            for &b in &rest[..k] {
                page[XS_RING_RSP + mask_xenstore_idx(prod)] = b;
                prod = prod.wrapping_add(1);
            }
            free -= k;
            written += k;
            c.out_off += k;
            if c.out_off == m.bytes.len() {
                if m.kind == OutKind::Event {
                    c.event_bytes -= m.bytes.len();
                }
                c.out.pop_front();
                c.out_off = 0;
            }
        }
        if written > 0 {
            put_u32(page, XS_RING_RSP_PROD, prod);
        }
        Ok(written)
    }

    /// Reads request bytes from `req` (no further than the current message); returns
    /// the bytes consumed and the message if it is now complete, or the error code for
    /// inconsistent indices or an over-long message.
    #[allow(clippy::type_complexity)]
    fn read_request(
        &mut self,
        conn: Conn,
        page: &mut [u8; 4096],
    ) -> Result<(usize, Option<(XsWireHeader, Vec<u8>)>), u32> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok((0, None));
        };
        let outstanding = c.out.iter().filter(|m| m.kind == OutKind::Reply).count();
        if !is_privileged(conn) && outstanding >= REQ_OUTSTANDING_MAX {
            return Ok((0, None));
        }
        let Some(r) = c.ring.as_mut() else {
            return Ok((0, None));
        };
        let cons = get_u32(page, XS_RING_REQ_CONS);
        let prod = get_u32(page, XS_RING_REQ_PROD);
        if cons == prod {
            return Ok((0, None));
        }
        let avail = prod.wrapping_sub(cons) as usize;
        if avail > XENSTORE_RING_SIZE {
            return Err(XENSTORE_ERROR_RINGIDX);
        }
        let payload_len =
            |buf: &[u8]| u32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]]) as usize;
        let need = if r.inbuf.len() < XS_WIRE_HEADER_SIZE {
            XS_WIRE_HEADER_SIZE - r.inbuf.len()
        } else {
            (XS_WIRE_HEADER_SIZE + payload_len(&r.inbuf)).saturating_sub(r.inbuf.len())
        };
        let n = need.min(avail);
        let mut idx = cons;
        for _ in 0..n {
            r.inbuf.push(page[XS_RING_REQ + mask_xenstore_idx(idx)]);
            idx = idx.wrapping_add(1);
        }
        put_u32(page, XS_RING_REQ_CONS, idx);
        if r.inbuf.len() >= XS_WIRE_HEADER_SIZE {
            let len = payload_len(&r.inbuf);
            if len > XENSTORE_PAYLOAD_MAX {
                return Err(XENSTORE_ERROR_PROTO);
            }
            if r.inbuf.len() == XS_WIRE_HEADER_SIZE + len {
                let buf = std::mem::take(&mut r.inbuf);
                let Ok((h, payload)) = XsWireHeader::read_from_prefix(&buf[..]) else {
                    return Ok((n, None));
                };
                return Ok((n, Some((h, payload.to_vec()))));
            }
        }
        Ok((n, None))
    }

    /// Stops serving a ring for good, as C's `ignore_connection` does.
    fn abandon(&mut self, conn: Conn, page: &mut [u8; 4096], code: u32) {
        put_u32(page, XS_RING_ERROR, code);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.watches.clear();
            c.transactions.clear();
            c.out.clear();
            c.out_off = 0;
            c.event_bytes = 0;
            if let Some(r) = c.ring.as_mut() {
                r.inbuf.clear();
                r.broken = Some(code);
            }
        }
    }
}

/// The path an event is reported with: relative to the connection's home for a watch
/// set with a relative path.
fn watch_path(conn: Conn, relative: bool, name: &[u8]) -> Vec<u8> {
    if !relative {
        return name.to_vec();
    }
    let base = implicit_path(conn);
    let rest = name.strip_prefix(base.as_bytes()).unwrap_or(name);
    rest.strip_prefix(b"/").unwrap_or(rest).to_vec()
}

fn error_payload(e: Errno) -> Vec<u8> {
    let mut v = errno_to_wire(e).as_bytes().to_vec();
    v.push(0);
    v
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const D1: DomId = DomId::new(1);
    const D2: DomId = DomId::new(2);
    const T: Conn = Conn::Tools;

    fn perm(dom: u16, access: XsAccess) -> XsPerm {
        XsPerm {
            dom: DomId::new(dom),
            access,
        }
    }

    fn ev(path: &str, token: &str) -> XsWatchEvent {
        XsWatchEvent {
            path: path.into(),
            token: token.into(),
        }
    }

    /// A store with domains 1 and 2 introduced and, as libxl sets them up, each
    /// domain's home `/local/domain/<d>` owned by dom0 and readable by the domain, with
    /// a `data` directory the domain owns.
    fn store() -> XenStore {
        let mut s = XenStore::new();
        for d in [1u16, 2] {
            s.introduce(DomId::new(d), Mfn::new(0x100 + u64::from(d)), Port::new(1))
                .unwrap();
            let home = format!("/local/domain/{d}");
            s.mkdir(T, 0, &home).unwrap();
            s.set_perms(
                T,
                0,
                &home,
                &[perm(0, XsAccess::None), perm(d, XsAccess::Read)],
            )
            .unwrap();
            s.mkdir(T, 0, &format!("{home}/data")).unwrap();
            s.set_perms(T, 0, &format!("{home}/data"), &[perm(d, XsAccess::None)])
                .unwrap();
        }
        s.take_watch_events(T);
        s
    }

    fn dom(d: DomId) -> Conn {
        Conn::Domain(d)
    }

    // ---- basic operations -----------------------------------------------------------

    #[test]
    fn fresh_store_layout() {
        let mut s = XenStore::new();
        assert_eq!(s.directory(T, 0, "/").unwrap(), ["local", "tool"]);
        assert_eq!(s.directory(T, 0, "/local").unwrap(), ["domain"]);
        assert_eq!(s.directory(T, 0, "/tool").unwrap(), ["xenstored"]);
        assert!(s.directory(T, 0, "/local/domain").unwrap().is_empty());
        for p in ["/", "/local", "/local/domain", "/tool"] {
            assert_eq!(
                s.get_perms(T, 0, p).unwrap(),
                [perm(0, XsAccess::None)],
                "{p}"
            );
            assert_eq!(s.read(T, 0, p).unwrap(), b"");
        }
    }

    #[test]
    fn write_creates_parents_with_empty_values() {
        let mut s = XenStore::new();
        s.write(T, 0, "/a/b/c", b"v").unwrap();
        assert_eq!(s.read(T, 0, "/a/b/c").unwrap(), b"v");
        assert_eq!(s.read(T, 0, "/a/b").unwrap(), b"");
        assert_eq!(s.read(T, 0, "/a").unwrap(), b"");
        s.write(T, 0, "/a/b/c", b"").unwrap();
        assert_eq!(s.read(T, 0, "/a/b/c").unwrap(), b"");
        // Binary values survive unchanged.
        s.write(T, 0, "/a/bin", &[0, 1, 255, 0]).unwrap();
        assert_eq!(s.read(T, 0, "/a/bin").unwrap(), [0, 1, 255, 0]);
        assert_eq!(s.read(T, 0, "/a/missing"), Err(Errno::ENOENT));
    }

    #[test]
    fn mkdir_keeps_existing_values() {
        let mut s = XenStore::new();
        s.write(T, 0, "/a", b"keep").unwrap();
        s.mkdir(T, 0, "/a").unwrap();
        assert_eq!(s.read(T, 0, "/a").unwrap(), b"keep");
        s.mkdir(T, 0, "/x/y/z").unwrap();
        assert_eq!(s.directory(T, 0, "/x/y").unwrap(), ["z"]);
    }

    #[test]
    fn directory_is_sorted_and_lists_only_children() {
        let mut s = XenStore::new();
        for name in ["zeta", "alpha", "b-c", "b", "b_d", "b/inner", "10", "9"] {
            s.write(T, 0, &format!("/d/{name}"), b"").unwrap();
        }
        assert_eq!(
            s.directory(T, 0, "/d").unwrap(),
            ["10", "9", "alpha", "b", "b-c", "b_d", "zeta"]
        );
        assert_eq!(s.directory(T, 0, "/d/b").unwrap(), ["inner"]);
        assert_eq!(s.directory(T, 0, "/nope"), Err(Errno::ENOENT));
    }

    #[test]
    fn rm_is_recursive_and_tolerates_missing_leaf() {
        let mut s = XenStore::new();
        s.write(T, 0, "/a/b/c", b"1").unwrap();
        s.write(T, 0, "/a/b2", b"2").unwrap();
        s.rm(T, 0, "/a/b").unwrap();
        assert_eq!(s.read(T, 0, "/a/b/c"), Err(Errno::ENOENT));
        assert_eq!(s.read(T, 0, "/a/b"), Err(Errno::ENOENT));
        assert_eq!(s.directory(T, 0, "/a").unwrap(), ["b2"]);
        // Missing node, existing parent: fine (docs/misc/xenstore.txt).
        s.rm(T, 0, "/a/never").unwrap();
        // Missing node and missing parent: ENOENT.
        assert_eq!(s.rm(T, 0, "/a/never/deeper"), Err(Errno::ENOENT));
        // The root cannot go.
        assert_eq!(s.rm(T, 0, "/"), Err(Errno::EINVAL));
    }

    #[test]
    fn path_validation() {
        let mut s = store();
        let long = format!("/{}", "a".repeat(XENSTORE_REL_PATH_MAX));
        for bad in [
            "", "//a", "/a/", "/a//b", "/a b", "/a.b", "/a\0b", "@foo", "/ä", &long,
        ] {
            assert_eq!(s.read(T, 0, bad), Err(Errno::EINVAL), "{bad:?}");
            assert_eq!(s.write(T, 0, bad, b"x"), Err(Errno::EINVAL), "{bad:?}");
        }
        // Exactly 2048 characters is still fine, and a domain's home prefix is not
        // counted against the limit.
        let ok = format!("/{}", "a".repeat(XENSTORE_REL_PATH_MAX - 1));
        s.write(T, 0, &ok, b"x").unwrap();
        let rel = "b".repeat(XENSTORE_REL_PATH_MAX);
        s.write(dom(D1), 0, &format!("data/{}", &rel[5..]), b"x")
            .unwrap();
        s.write(T, 0, "/ok/A-Z_a-z0-9@", b"x").unwrap();
    }

    #[test]
    fn oversized_write_is_e2big() {
        let mut s = XenStore::new();
        let value = vec![b'x'; XENSTORE_PAYLOAD_MAX];
        assert_eq!(s.write(T, 0, "/a", &value), Err(Errno::E2BIG));
        s.write(T, 0, "/a", &value[..XENSTORE_PAYLOAD_MAX - 3])
            .unwrap();
    }

    #[test]
    fn relative_paths() {
        let mut s = store();
        s.write(dom(D1), 0, "data/x", b"1").unwrap();
        assert_eq!(s.read(T, 0, "/local/domain/1/data/x").unwrap(), b"1");
        assert_eq!(s.read(dom(D1), 0, "/local/domain/1/data/x").unwrap(), b"1");
        // The socket's implicit base is dom0's home.
        s.write(T, 0, "name", b"Domain-0").unwrap();
        assert_eq!(s.read(T, 0, "/local/domain/0/name").unwrap(), b"Domain-0");
        assert_eq!(s.get_domain_path(D2), "/local/domain/2");
    }

    // ---- permissions ----------------------------------------------------------------

    #[test]
    fn domains_cannot_touch_dom0_nodes() {
        let mut s = store();
        s.write(T, 0, "/secret/key", b"s").unwrap();
        assert_eq!(s.read(dom(D1), 0, "/secret/key"), Err(Errno::EACCES));
        assert_eq!(s.write(dom(D1), 0, "/secret/key", b"x"), Err(Errno::EACCES));
        assert_eq!(s.directory(dom(D1), 0, "/secret"), Err(Errno::EACCES));
        assert_eq!(s.get_perms(dom(D1), 0, "/secret"), Err(Errno::EACCES));
        assert_eq!(s.rm(dom(D1), 0, "/secret"), Err(Errno::EACCES));
        assert_eq!(s.mkdir(dom(D1), 0, "/secret"), Err(Errno::EACCES));
        // A missing node under an unreadable parent doesn't say it is missing.
        assert_eq!(s.read(dom(D1), 0, "/secret/none"), Err(Errno::EACCES));
        assert_eq!(s.write(dom(D1), 0, "/elsewhere", b"x"), Err(Errno::EACCES));
        // Under a readable parent it does.
        assert_eq!(s.read(dom(D1), 0, "data/none"), Err(Errno::ENOENT));
        // dom0's own ring is privileged.
        s.introduce(DomId::DOM0, Mfn::new(1), Port::new(1)).unwrap();
        assert_eq!(s.read(dom(DomId::DOM0), 0, "/secret/key").unwrap(), b"s");
    }

    #[test]
    fn owner_and_grants() {
        let mut s = store();
        // The home is dom0's with read for the domain: readable, not writable.
        assert_eq!(s.read(dom(D1), 0, "").map(|_| ()), Err(Errno::EINVAL));
        assert!(s.directory(dom(D1), 0, "/local/domain/1").is_ok());
        assert_eq!(
            s.write(dom(D1), 0, "/local/domain/1", b"x"),
            Err(Errno::EACCES)
        );
        // ... and the other domain gets the first entry's access: none.
        assert_eq!(
            s.directory(dom(D2), 0, "/local/domain/1"),
            Err(Errno::EACCES)
        );
        // A node a domain creates is its own, even under a dom0-owned parent.
        s.write(dom(D1), 0, "data/mine", b"1").unwrap();
        assert_eq!(
            s.get_perms(T, 0, "/local/domain/1/data/mine").unwrap(),
            [perm(1, XsAccess::None)]
        );
        // Nodes the toolstack creates keep the parent's owner.
        s.write(T, 0, "/local/domain/1/data/fromtools", b"")
            .unwrap();
        assert_eq!(
            s.get_perms(T, 0, "/local/domain/1/data/fromtools").unwrap(),
            [perm(1, XsAccess::None)]
        );
        s.write(T, 0, "/local/domain/1/ro", b"").unwrap();
        assert_eq!(
            s.get_perms(T, 0, "/local/domain/1/ro").unwrap(),
            [perm(0, XsAccess::None), perm(1, XsAccess::Read)]
        );
        // Granting the other domain read access.
        assert_eq!(
            s.read(dom(D2), 0, "/local/domain/1/data/mine"),
            Err(Errno::EACCES)
        );
        s.set_perms(
            dom(D1),
            0,
            "data/mine",
            &[perm(1, XsAccess::None), perm(2, XsAccess::Read)],
        )
        .unwrap();
        assert_eq!(
            s.read(dom(D2), 0, "/local/domain/1/data/mine").unwrap(),
            b"1"
        );
        assert_eq!(
            s.write(dom(D2), 0, "/local/domain/1/data/mine", b"2"),
            Err(Errno::EACCES)
        );
        // A later entry for a specific domain beats the default in the first entry.
        s.set_perms(
            T,
            0,
            "/local/domain/1/data/mine",
            &[perm(1, XsAccess::Both), perm(2, XsAccess::None)],
        )
        .unwrap();
        assert_eq!(
            s.read(dom(D2), 0, "/local/domain/1/data/mine"),
            Err(Errno::EACCES)
        );
    }

    #[test]
    fn set_perms_rules() {
        let mut s = store();
        s.write(dom(D1), 0, "data/n", b"").unwrap();
        s.set_perms(
            dom(D1),
            0,
            "data/n",
            &[perm(1, XsAccess::None), perm(2, XsAccess::Both)],
        )
        .unwrap();
        // Write access is not ownership.
        s.write(dom(D2), 0, "/local/domain/1/data/n", b"w").unwrap();
        assert_eq!(
            s.set_perms(
                dom(D2),
                0,
                "/local/domain/1/data/n",
                &[perm(1, XsAccess::Both)]
            ),
            Err(Errno::EACCES)
        );
        // The owner may not give the node away; dom0 may.
        assert_eq!(
            s.set_perms(dom(D1), 0, "data/n", &[perm(2, XsAccess::None)]),
            Err(Errno::EPERM)
        );
        s.set_perms(T, 0, "/local/domain/1/data/n", &[perm(2, XsAccess::None)])
            .unwrap();
        assert_eq!(s.read(dom(D2), 0, "/local/domain/1/data/n").unwrap(), b"w");
        assert_eq!(
            s.set_perms(T, 0, "/local/domain/1/data/n", &[]),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.set_perms(T, 0, "/nope", &[perm(0, XsAccess::None)]),
            Err(Errno::ENOENT)
        );
        assert_eq!(
            s.set_perms(T, 0, "@other", &[perm(0, XsAccess::None)]),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.set_perms(dom(D1), 0, "@releaseDomain", &[perm(1, XsAccess::None)]),
            Err(Errno::EACCES)
        );
    }

    #[test]
    fn set_target_grants_the_targets_access() {
        let mut s = store();
        s.write(dom(D1), 0, "data/x", b"1").unwrap();
        assert_eq!(
            s.read(dom(D2), 0, "/local/domain/1/data/x"),
            Err(Errno::EACCES)
        );
        s.set_target(D2, D1).unwrap();
        assert_eq!(s.read(dom(D2), 0, "/local/domain/1/data/x").unwrap(), b"1");
        s.write(dom(D2), 0, "/local/domain/1/data/x", b"2").unwrap();
        assert_eq!(s.set_target(D2, DomId::new(9)), Err(Errno::ENOENT));
    }

    // ---- watches --------------------------------------------------------------------

    #[test]
    fn watch_fires_once_at_once_and_rejects_duplicates() {
        let mut s = XenStore::new();
        s.watch(T, "/a", "tok").unwrap();
        assert_eq!(s.take_watch_events(T), [ev("/a", "tok")]);
        assert_eq!(s.watch(T, "/a", "tok"), Err(Errno::EEXIST));
        // Another token on the same path is another watch.
        s.watch(T, "/a", "tok2").unwrap();
        assert_eq!(s.take_watch_events(T), [ev("/a", "tok2")]);
        assert_eq!(s.watch(T, "/a/", "t"), Err(Errno::EINVAL));
        s.unwatch(T, "/a", "tok").unwrap();
        assert_eq!(s.unwatch(T, "/a", "tok"), Err(Errno::ENOENT));
        assert_eq!(s.unwatch(T, "/b", "tok2"), Err(Errno::ENOENT));
        s.write(T, 0, "/a", b"").unwrap();
        assert_eq!(s.take_watch_events(T), [ev("/a", "tok2")]);
    }

    #[test]
    fn watch_fires_for_changes_at_or_below_the_path() {
        let mut s = XenStore::new();
        s.watch(T, "/a/b", "t").unwrap();
        s.watch(T, "/", "root").unwrap();
        s.take_watch_events(T);
        s.write(T, 0, "/a/b/c/d", b"1").unwrap();
        assert_eq!(
            s.take_watch_events(T),
            [ev("/a/b/c/d", "t"), ev("/a/b/c/d", "root")]
        );
        // A change above or beside the watched path does not fire it.
        s.write(T, 0, "/a", b"1").unwrap();
        s.write(T, 0, "/a/bc", b"1").unwrap();
        assert_eq!(
            s.take_watch_events(T),
            [ev("/a", "root"), ev("/a/bc", "root")]
        );
        s.mkdir(T, 0, "/a/b/e").unwrap();
        s.set_perms(T, 0, "/a/b", &[perm(0, XsAccess::Read)])
            .unwrap();
        assert_eq!(
            s.take_watch_events(T),
            [
                ev("/a/b/e", "t"),
                ev("/a/b/e", "root"),
                ev("/a/b", "t"),
                ev("/a/b", "root")
            ]
        );
        // MKDIR of an existing node changes nothing and fires nothing.
        s.mkdir(T, 0, "/a/b").unwrap();
        assert!(s.take_watch_events(T).is_empty());
    }

    #[test]
    fn rm_fires_for_the_node_and_watches_inside_it() {
        let mut s = XenStore::new();
        s.write(T, 0, "/a/b/c", b"").unwrap();
        s.write(T, 0, "/a/x", b"").unwrap();
        s.watch(T, "/a", "top").unwrap();
        s.watch(T, "/a/b/c", "deep").unwrap();
        s.watch(T, "/a/b/nonexistent", "ghost").unwrap();
        s.take_watch_events(T);
        s.rm(T, 0, "/a").unwrap();
        // The removed root fires watches on it and above; each removed watched node
        // fires its own watch with its own path; no event names an unwatched child.
        assert_eq!(
            s.take_watch_events(T),
            [ev("/a/b/c", "deep"), ev("/a", "top")]
        );
        // Removing something missing fires nothing.
        s.rm(T, 0, "/a").unwrap();
        assert!(s.take_watch_events(T).is_empty());
    }

    #[test]
    fn relative_watches_report_relative_paths() {
        let mut s = store();
        let c = dom(D1);
        s.watch(c, "data", "rel").unwrap();
        s.watch(c, "/local/domain/1/data", "abs").unwrap();
        assert_eq!(
            s.take_watch_events(c),
            [ev("data", "rel"), ev("/local/domain/1/data", "abs")]
        );
        s.write(c, 0, "data/k", b"v").unwrap();
        assert_eq!(
            s.take_watch_events(c),
            [ev("data/k", "rel"), ev("/local/domain/1/data/k", "abs")]
        );
        s.unwatch(c, "data", "rel").unwrap();
        s.write(c, 0, "data/k", b"w").unwrap();
        assert_eq!(
            s.take_watch_events(c),
            [ev("/local/domain/1/data/k", "abs")]
        );
    }

    #[test]
    fn watches_only_tell_those_who_may_read() {
        let mut s = store();
        s.watch(dom(D2), "/local/domain/1", "spy").unwrap();
        s.take_watch_events(dom(D2));
        s.write(dom(D1), 0, "data/private", b"x").unwrap();
        assert!(s.take_watch_events(dom(D2)).is_empty());
        // Readable node: told.
        s.set_perms(dom(D1), 0, "data/private", &[perm(1, XsAccess::Read)])
            .unwrap();
        assert_eq!(
            s.take_watch_events(dom(D2)),
            [ev("/local/domain/1/data/private", "spy")]
        );
        // Unreadable node with a readable parent: told too (C's watch_permitted).
        s.set_perms(dom(D1), 0, "data", &[perm(1, XsAccess::Read)])
            .unwrap();
        s.take_watch_events(dom(D2));
        s.write(dom(D1), 0, "data/p2", b"").unwrap();
        s.set_perms(dom(D1), 0, "data/p2", &[perm(1, XsAccess::None)])
            .unwrap();
        s.take_watch_events(dom(D2));
        s.write(dom(D1), 0, "data/p2", b"again").unwrap();
        assert_eq!(
            s.take_watch_events(dom(D2)),
            [ev("/local/domain/1/data/p2", "spy")]
        );
        // Losing access through SET_PERMS is still reported (old permissions count).
        s.set_perms(dom(D1), 0, "data", &[perm(1, XsAccess::None)])
            .unwrap();
        assert_eq!(
            s.take_watch_events(dom(D2)),
            [ev("/local/domain/1/data", "spy")]
        );
    }

    #[test]
    fn identical_pending_events_are_merged() {
        let mut s = XenStore::new();
        s.watch(T, "/a", "t").unwrap();
        s.write(T, 0, "/a", b"1").unwrap();
        s.write(T, 0, "/a", b"2").unwrap();
        s.write(T, 0, "/a/b", b"").unwrap();
        s.write(T, 0, "/a", b"3").unwrap();
        assert_eq!(s.take_watch_events(T), [ev("/a", "t"), ev("/a/b", "t")]);
        s.write(T, 0, "/a", b"4").unwrap();
        assert_eq!(s.pop_watch_event(T), Some(ev("/a", "t")));
        assert_eq!(s.pop_watch_event(T), None);
    }

    // ---- transactions ---------------------------------------------------------------

    #[test]
    fn transaction_commits_and_is_isolated_until_then() {
        let mut s = XenStore::new();
        s.write(T, 0, "/a", b"old").unwrap();
        s.watch(T, "/a", "t").unwrap();
        s.take_watch_events(T);
        let tx = s.transaction_start(T).unwrap();
        assert_ne!(tx, XS_NO_TX);
        s.write(T, tx, "/a", b"new").unwrap();
        s.write(T, tx, "/a/sub/x", b"1").unwrap();
        assert_eq!(s.read(T, tx, "/a").unwrap(), b"new");
        // Outside, nothing changed yet and no event fired.
        assert_eq!(s.read(T, 0, "/a").unwrap(), b"old");
        assert_eq!(s.read(T, 0, "/a/sub/x"), Err(Errno::ENOENT));
        assert!(s.take_watch_events(T).is_empty());
        s.transaction_end(T, tx, true).unwrap();
        assert_eq!(s.read(T, 0, "/a").unwrap(), b"new");
        assert_eq!(s.read(T, 0, "/a/sub/x").unwrap(), b"1");
        assert_eq!(s.take_watch_events(T), [ev("/a", "t"), ev("/a/sub/x", "t")]);
        // The transaction is gone.
        assert_eq!(s.read(T, tx, "/a"), Err(Errno::ENOENT));
        assert_eq!(s.transaction_end(T, tx, true), Err(Errno::ENOENT));
    }

    #[test]
    fn transaction_sees_its_snapshot() {
        let mut s = XenStore::new();
        s.write(T, 0, "/a", b"1").unwrap();
        let tx = s.transaction_start(T).unwrap();
        s.write(T, 0, "/a", b"2").unwrap();
        s.write(T, 0, "/b", b"new").unwrap();
        assert_eq!(s.read(T, tx, "/a").unwrap(), b"1");
        assert_eq!(s.read(T, tx, "/b"), Err(Errno::ENOENT));
        // It read things that changed since it started: the commit must fail.
        assert_eq!(s.transaction_end(T, tx, true), Err(Errno::EAGAIN));
    }

    #[test]
    fn conflicting_commit_fails_and_applies_nothing() {
        let mut s = XenStore::new();
        s.write(T, 0, "/a", b"1").unwrap();
        s.watch(T, "/", "w").unwrap();
        s.take_watch_events(T);
        let tx = s.transaction_start(T).unwrap();
        assert_eq!(s.read(T, tx, "/a").unwrap(), b"1");
        s.write(T, tx, "/b", b"from tx").unwrap();
        s.rm(T, tx, "/a").unwrap();
        // A conflicting change outside.
        s.write(T, 0, "/a", b"outside").unwrap();
        s.take_watch_events(T);
        assert_eq!(s.transaction_end(T, tx, true), Err(Errno::EAGAIN));
        assert_eq!(s.read(T, 0, "/a").unwrap(), b"outside");
        assert_eq!(s.read(T, 0, "/b"), Err(Errno::ENOENT));
        assert!(s.take_watch_events(T).is_empty());
        // Creating the same missing node on both sides conflicts too.
        let tx = s.transaction_start(T).unwrap();
        s.write(T, tx, "/c", b"tx").unwrap();
        s.write(T, 0, "/c", b"out").unwrap();
        assert_eq!(s.transaction_end(T, tx, true), Err(Errno::EAGAIN));
        assert_eq!(s.read(T, 0, "/c").unwrap(), b"out");
    }

    #[test]
    fn non_conflicting_transactions_both_commit() {
        let mut s = XenStore::new();
        s.mkdir(T, 0, "/x").unwrap();
        s.mkdir(T, 0, "/y").unwrap();
        s.introduce(D1, Mfn::new(1), Port::new(1)).unwrap();
        let t1 = s.transaction_start(T).unwrap();
        let t2 = s.transaction_start(T).unwrap();
        assert_ne!(t1, t2);
        s.write(T, t1, "/x/v", b"1").unwrap();
        s.write(T, t2, "/y/v", b"2").unwrap();
        // Unrelated changes outside don't matter.
        s.write(T, 0, "/z", b"z").unwrap();
        s.transaction_end(T, t1, true).unwrap();
        s.transaction_end(T, t2, true).unwrap();
        assert_eq!(s.read(T, 0, "/x/v").unwrap(), b"1");
        assert_eq!(s.read(T, 0, "/y/v").unwrap(), b"2");
        // Transaction ids belong to their connection.
        let t3 = s.transaction_start(T).unwrap();
        assert_eq!(s.read(dom(D1), t3, "/x/v"), Err(Errno::ENOENT));
        assert_eq!(s.transaction_end(dom(D1), t3, true), Err(Errno::ENOENT));
        s.transaction_end(T, t3, false).unwrap();
    }

    #[test]
    fn aborted_transaction_discards_everything() {
        let mut s = XenStore::new();
        s.write(T, 0, "/keep", b"1").unwrap();
        let tx = s.transaction_start(T).unwrap();
        s.write(T, tx, "/new", b"x").unwrap();
        s.rm(T, tx, "/keep").unwrap();
        s.transaction_end(T, tx, false).unwrap();
        assert_eq!(s.read(T, 0, "/keep").unwrap(), b"1");
        assert_eq!(s.read(T, 0, "/new"), Err(Errno::ENOENT));
        assert_eq!(s.transaction_end(T, XS_NO_TX, true), Err(Errno::ENOENT));
    }

    #[test]
    fn rm_in_transaction_fires_at_commit() {
        let mut s = XenStore::new();
        s.write(T, 0, "/a/b", b"").unwrap();
        s.watch(T, "/a", "top").unwrap();
        s.watch(T, "/a/b", "b").unwrap();
        s.take_watch_events(T);
        let tx = s.transaction_start(T).unwrap();
        s.rm(T, tx, "/a").unwrap();
        assert!(s.take_watch_events(T).is_empty());
        assert_eq!(s.read(T, 0, "/a/b").unwrap(), b"");
        s.transaction_end(T, tx, true).unwrap();
        assert_eq!(s.read(T, 0, "/a"), Err(Errno::ENOENT));
        let events = s.take_watch_events(T);
        assert!(events.contains(&ev("/a", "top")));
        assert!(events.contains(&ev("/a/b", "b")));
        assert_eq!(events.len(), 2);
    }

    // ---- domains --------------------------------------------------------------------

    #[test]
    fn introduce_and_release_fire_special_watches() {
        let mut s = XenStore::new();
        s.watch(T, "@introduceDomain", "i").unwrap();
        s.watch(T, "@releaseDomain", "r").unwrap();
        assert_eq!(
            s.take_watch_events(T),
            [ev("@introduceDomain", "i"), ev("@releaseDomain", "r")]
        );
        s.introduce(D1, Mfn::new(0x55), Port::new(3)).unwrap();
        assert!(s.is_introduced(D1));
        assert_eq!(s.introduced_domains(), [(D1, Mfn::new(0x55), Port::new(3))]);
        assert_eq!(s.take_watch_events(T), [ev("@introduceDomain", "i")]);
        s.release(D1).unwrap();
        assert!(!s.is_introduced(D1));
        assert_eq!(s.take_watch_events(T), [ev("@releaseDomain", "r")]);
        assert_eq!(s.release(D1), Err(Errno::ENOENT));
        assert_eq!(s.release(DomId::DOM0), Err(Errno::EINVAL));
        assert_eq!(
            s.introduce(D1, Mfn::new(1), Port::new(0)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.introduce(DomId::SELF, Mfn::new(1), Port::new(1)),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn special_watches_need_permission() {
        let mut s = store();
        s.watch(dom(D1), "@releaseDomain", "r").unwrap();
        s.take_watch_events(dom(D1));
        s.introduce(DomId::new(3), Mfn::new(1), Port::new(1))
            .unwrap();
        s.release(DomId::new(3)).unwrap();
        assert!(s.take_watch_events(dom(D1)).is_empty());
        s.set_perms(
            T,
            0,
            "@releaseDomain",
            &[perm(0, XsAccess::None), perm(1, XsAccess::Read)],
        )
        .unwrap();
        s.domain_shutdown(D2);
        assert_eq!(s.take_watch_events(dom(D1)), [ev("@releaseDomain", "r")]);
    }

    #[test]
    fn reintroduce_resets_the_connection_quietly() {
        let mut s = store();
        s.watch(T, "@introduceDomain", "i").unwrap();
        s.take_watch_events(T);
        s.watch(dom(D1), "data", "t").unwrap();
        let tx = s.transaction_start(dom(D1)).unwrap();
        s.introduce(D1, Mfn::new(0x999), Port::new(7)).unwrap();
        assert!(s.take_watch_events(T).is_empty());
        assert!(s.take_watch_events(dom(D1)).is_empty());
        assert_eq!(s.transaction_end(dom(D1), tx, true), Err(Errno::ENOENT));
        // The watch is gone: setting it again works.
        s.watch(dom(D1), "data", "t").unwrap();
        assert!(s.ring_reset_pending(D1));
        assert!(s
            .introduced_domains()
            .contains(&(D1, Mfn::new(0x999), Port::new(7))));
    }

    #[test]
    fn release_removes_the_domains_nodes() {
        let mut s = store();
        s.write(dom(D1), 0, "data/a/b", b"1").unwrap();
        s.write(T, 0, "/local/domain/1/tools-owned", b"").unwrap();
        s.watch(T, "/local/domain/1", "w").unwrap();
        s.watch(dom(D1), "data", "own").unwrap();
        s.take_watch_events(T);
        s.release(D1).unwrap();
        // Everything domain 1 owned is gone with its subtree; dom0's nodes stay.
        assert_eq!(s.read(T, 0, "/local/domain/1/data"), Err(Errno::ENOENT));
        assert_eq!(
            s.directory(T, 0, "/local/domain/1").unwrap(),
            ["tools-owned"]
        );
        assert_eq!(s.take_watch_events(T), [ev("/local/domain/1/data", "w")]);
        // Its connection is gone.
        assert_eq!(s.read(dom(D1), 0, "/"), Err(Errno::EINVAL));
        assert!(s.is_introduced(D2));
    }

    #[test]
    fn fire_special_reaches_permitted_watchers_only() {
        let mut s = store();
        s.watch(T, "@releaseDomain", "r").unwrap();
        s.watch(T, "@introduceDomain", "i").unwrap();
        s.watch(dom(D1), "@releaseDomain", "d1").unwrap();
        s.take_watch_events(T);
        s.take_watch_events(dom(D1));
        s.fire_special("@releaseDomain");
        s.fire_special("@bogus");
        assert_eq!(s.take_watch_events(T), [ev("@releaseDomain", "r")]);
        assert!(s.take_watch_events(dom(D1)).is_empty());
        // Special events are never merged with pending ones.
        s.fire_special("@introduceDomain");
        s.fire_special("@introduceDomain");
        assert_eq!(s.take_watch_events(T).len(), 2);
    }

    #[test]
    fn shutdown_fires_release_once_until_resume() {
        let mut s = store();
        s.watch(T, "@releaseDomain", "r").unwrap();
        s.take_watch_events(T);
        s.domain_shutdown(D1);
        s.domain_shutdown(D1);
        assert_eq!(s.take_watch_events(T), [ev("@releaseDomain", "r")]);
        s.resume(D1).unwrap();
        s.domain_shutdown(D1);
        assert_eq!(s.take_watch_events(T), [ev("@releaseDomain", "r")]);
        assert_eq!(s.resume(DomId::new(9)), Err(Errno::ENOENT));
        assert_eq!(s.resume(DomId::DOM0), Err(Errno::EINVAL));
    }

    // ---- the wire protocol ----------------------------------------------------------

    fn hdr(type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> XsWireHeader {
        XsWireHeader {
            type_,
            req_id,
            tx_id,
            len: payload.len() as u32,
        }
    }

    fn call(
        s: &mut XenStore,
        conn: Conn,
        type_: u32,
        tx_id: u32,
        payload: &[u8],
    ) -> (u32, Vec<u8>) {
        let (h, p) = s.handle_message(conn, hdr(type_, 77, tx_id, payload), payload);
        assert_eq!(h.req_id, 77);
        assert_eq!(h.tx_id, tx_id);
        assert_eq!(h.len as usize, p.len());
        (h.type_, p)
    }

    #[test]
    fn wire_replies() {
        let mut s = store();
        assert_eq!(
            call(&mut s, T, XS_WRITE, 0, b"/a/b\0hello"),
            (XS_WRITE, b"OK\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_READ, 0, b"/a/b\0"),
            (XS_READ, b"hello".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_READ, 0, b"/a/zz\0"),
            (XS_ERROR, b"ENOENT\0".to_vec())
        );
        // READ wants exactly one NUL-terminated argument.
        assert_eq!(
            call(&mut s, T, XS_READ, 0, b"/a/b"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_READ, 0, b"/a\0/b\0"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_MKDIR, 0, b"/a/c\0"),
            (XS_MKDIR, b"OK\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_DIRECTORY, 0, b"/a\0"),
            (XS_DIRECTORY, b"b\0c\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_DIRECTORY, 0, b"/a/c\0"),
            (XS_DIRECTORY, Vec::new())
        );
        assert_eq!(
            call(&mut s, T, XS_RM, 0, b"/a/c\0"),
            (XS_RM, b"OK\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_SET_PERMS, 0, b"/a/b\0b1\0r0x2\0"),
            (XS_SET_PERMS, b"OK\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_GET_PERMS, 0, b"/a/b\0"),
            (XS_GET_PERMS, b"b1\0r2\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_SET_PERMS, 0, b"/a/b\0"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_SET_PERMS, 0, b"/a/b\0x1\0"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_GET_DOMAIN_PATH, 0, b"7\0"),
            (XS_GET_DOMAIN_PATH, b"/local/domain/7\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_IS_DOMAIN_INTRODUCED, 0, b"1\0"),
            (XS_IS_DOMAIN_INTRODUCED, b"T\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_IS_DOMAIN_INTRODUCED, 0, b"5\0"),
            (XS_IS_DOMAIN_INTRODUCED, b"F\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_CONTROL, 0, b"check\0"),
            (XS_CONTROL, b"OK\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_RESET_WATCHES, 0, b""),
            (XS_RESET_WATCHES, b"OK\0".to_vec())
        );
    }

    #[test]
    fn wire_errors() {
        let mut s = store();
        let d1 = dom(D1);
        // Unknown and daemon-to-client types.
        for ty in [XS_WATCH_EVENT, XS_ERROR, 20, 23, 24, 0xffff, u32::MAX] {
            assert_eq!(
                call(&mut s, T, ty, 0, b""),
                (XS_ERROR, b"ENOSYS\0".to_vec()),
                "{ty}"
            );
        }
        // dom0-only requests from a guest.
        for ty in [
            XS_INTRODUCE,
            XS_RELEASE,
            XS_IS_DOMAIN_INTRODUCED,
            XS_RESUME,
            XS_SET_TARGET,
            XS_CONTROL,
        ] {
            assert_eq!(
                call(&mut s, d1, ty, 0, b"1\0"),
                (XS_ERROR, b"EACCES\0".to_vec())
            );
        }
        // A transaction id nobody started.
        assert_eq!(
            call(&mut s, d1, XS_READ, 42, b"data\0"),
            (XS_ERROR, b"ENOENT\0".to_vec())
        );
        // ...which WATCH ignores.
        assert_eq!(
            call(&mut s, d1, XS_WATCH, 42, b"data\0t\0"),
            (XS_WATCH, b"OK\0".to_vec())
        );
        assert_eq!(
            call(&mut s, d1, XS_WATCH, 0, b"data\0t\0"),
            (XS_ERROR, b"EEXIST\0".to_vec())
        );
        assert_eq!(
            call(&mut s, d1, XS_WATCH, 0, b"data\0t\0x\0"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
        assert_eq!(
            call(&mut s, d1, XS_UNWATCH, 0, b"data\0nope\0"),
            (XS_ERROR, b"ENOENT\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_RELEASE, 0, b"0\0"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_RELEASE, 0, b"9\0"),
            (XS_ERROR, b"ENOENT\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_INTRODUCE, 0, b"3\x00100\0"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_INTRODUCE, 0, b"3\x00100\x000\0"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_INTRODUCE, 0, b"3\x00100\x005\0"),
            (XS_INTRODUCE, b"OK\0".to_vec())
        );
        assert_eq!(
            s.introduced_domains().last(),
            Some(&(DomId::new(3), Mfn::new(100), Port::new(5)))
        );
        assert_eq!(
            call(&mut s, T, XS_CONTROL, 0, b"bogus\0"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
        // A connection that doesn't exist.
        assert_eq!(
            call(&mut s, dom(DomId::new(8)), XS_READ, 0, b"/\0"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
    }

    #[test]
    fn wire_transactions() {
        let mut s = store();
        let (ty, id) = call(&mut s, T, XS_TRANSACTION_START, 0, b"\0");
        assert_eq!(ty, XS_TRANSACTION_START);
        assert_eq!(id.last(), Some(&0));
        let tx: u32 = std::str::from_utf8(&id[..id.len() - 1])
            .unwrap()
            .parse()
            .unwrap();
        assert_ne!(tx, 0);
        // No nesting.
        assert_eq!(
            call(&mut s, T, XS_TRANSACTION_START, tx, b"\0"),
            (XS_ERROR, b"EBUSY\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_WRITE, tx, b"/t\0v"),
            (XS_WRITE, b"OK\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_TRANSACTION_END, tx, b"X\0"),
            (XS_ERROR, b"EINVAL\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_TRANSACTION_END, 0, b"T\0"),
            (XS_ERROR, b"ENOENT\0".to_vec())
        );
        assert_eq!(
            call(&mut s, T, XS_TRANSACTION_END, tx, b"T\0"),
            (XS_TRANSACTION_END, b"OK\0".to_vec())
        );
        assert_eq!(s.read(T, 0, "/t").unwrap(), b"v");
        // A conflicting commit reports EAGAIN over the wire too.
        let (_, id) = call(&mut s, T, XS_TRANSACTION_START, 0, b"\0");
        let tx: u32 = std::str::from_utf8(&id[..id.len() - 1])
            .unwrap()
            .parse()
            .unwrap();
        call(&mut s, T, XS_READ, tx, b"/t\0");
        s.write(T, 0, "/t", b"changed").unwrap();
        assert_eq!(
            call(&mut s, T, XS_TRANSACTION_END, tx, b"T\0"),
            (XS_ERROR, b"EAGAIN\0".to_vec())
        );
    }

    #[test]
    fn oversized_replies_are_e2big_and_directory_part_pages() {
        let mut s = XenStore::new();
        let names: Vec<String> = (0..300)
            .map(|i| format!("child-with-a-long-name-{i:04}"))
            .collect();
        for n in &names {
            s.mkdir(T, 0, &format!("/big/{n}")).unwrap();
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(
            call(&mut s, T, XS_DIRECTORY, 0, b"/big\0"),
            (XS_ERROR, b"E2BIG\0".to_vec())
        );
        // DIRECTORY_PART hands the list out in pieces, each starting with the node's
        // generation count, the last ending in an empty string.
        let mut got = Vec::new();
        let mut off = 0usize;
        let mut gen = None;
        loop {
            let req = format!("/big\0{off}\0");
            let (ty, p) = call(&mut s, T, XS_DIRECTORY_PART, 0, req.as_bytes());
            assert_eq!(ty, XS_DIRECTORY_PART);
            assert!(p.len() <= XENSTORE_PAYLOAD_MAX);
            let first_nul = p.iter().position(|&b| b == 0).unwrap();
            let g = std::str::from_utf8(&p[..first_nul]).unwrap().to_owned();
            assert_eq!(*gen.get_or_insert(g.clone()), g);
            let body = &p[first_nul + 1..];
            let done = body.ends_with(b"\0\0") || body == b"\0";
            let list = if done { &body[..body.len() - 1] } else { body };
            for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
                got.push(String::from_utf8(name.to_vec()).unwrap());
            }
            off += list.len();
            if done {
                break;
            }
        }
        assert_eq!(got, sorted);
    }

    // ---- the ring, played by a test guest -------------------------------------------

    struct Guest {
        page: Box<[u8; 4096]>,
        rx: Vec<u8>,
    }

    impl Guest {
        fn new() -> Self {
            Guest {
                page: Box::new([0; 4096]),
                rx: Vec::new(),
            }
        }

        fn idx(&self, off: usize) -> u32 {
            get_u32(&self.page, off)
        }

        /// Puts raw bytes into `req`; returns how many fitted.
        fn push(&mut self, bytes: &[u8]) -> usize {
            let cons = self.idx(XS_RING_REQ_CONS);
            let mut prod = self.idx(XS_RING_REQ_PROD);
            let free = XENSTORE_RING_SIZE - prod.wrapping_sub(cons) as usize;
            let n = free.min(bytes.len());
            for &b in &bytes[..n] {
                self.page[XS_RING_REQ + (prod as usize % XENSTORE_RING_SIZE)] = b;
                prod = prod.wrapping_add(1);
            }
            put_u32(&mut self.page, XS_RING_REQ_PROD, prod);
            n
        }

        fn request(&mut self, type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
            let msg = encode(hdr(type_, req_id, tx_id, payload), payload);
            assert_eq!(self.push(&msg), msg.len(), "request does not fit");
        }

        /// Takes everything in `rsp`, returns the complete messages.
        fn replies(&mut self) -> Vec<(XsWireHeader, Vec<u8>)> {
            let mut cons = self.idx(XS_RING_RSP_CONS);
            let prod = self.idx(XS_RING_RSP_PROD);
            assert!(prod.wrapping_sub(cons) as usize <= XENSTORE_RING_SIZE);
            while cons != prod {
                self.rx
                    .push(self.page[XS_RING_RSP + (cons as usize % XENSTORE_RING_SIZE)]);
                cons = cons.wrapping_add(1);
            }
            put_u32(&mut self.page, XS_RING_RSP_CONS, cons);
            let mut out = Vec::new();
            while let Ok((h, rest)) = XsWireHeader::read_from_prefix(&self.rx[..]) {
                if rest.len() < h.len as usize {
                    break;
                }
                let payload = rest[..h.len as usize].to_vec();
                self.rx.drain(..XS_WIRE_HEADER_SIZE + h.len as usize);
                out.push((h, payload));
            }
            out
        }
    }

    /// A store with domain 1 introduced and its ring connected.
    fn ring_store() -> (XenStore, Guest) {
        let mut s = store();
        let mut g = Guest::new();
        // Stale indices from before the introduce get zeroed.
        put_u32(&mut g.page, XS_RING_REQ_PROD, 77);
        put_u32(&mut g.page, XS_RING_CONNECTION, 1);
        s.introduce(D1, Mfn::new(0x101), Port::new(1)).unwrap();
        assert!(s.process_ring(D1, &mut g.page));
        assert!(!s.ring_reset_pending(D1));
        assert_eq!(g.idx(XS_RING_REQ_PROD), 0);
        assert_eq!(g.idx(XS_RING_CONNECTION), XENSTORE_CONNECTED);
        (s, g)
    }

    #[test]
    fn ring_round_trip() {
        let (mut s, mut g) = ring_store();
        g.request(XS_WRITE, 1, 0, b"data/k\0value");
        g.request(XS_READ, 2, 0, b"data/k\0");
        g.request(XS_WATCH, 3, 0, b"data\0tok\0");
        g.request(XS_READ, 4, 0, b"/local/domain/2/data\0");
        assert!(s.process_ring(D1, &mut g.page));
        let r = g.replies();
        let summary: Vec<(u32, u32, Vec<u8>)> = r
            .iter()
            .map(|(h, p)| (h.type_, h.req_id, p.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (XS_WRITE, 1, b"OK\0".to_vec()),
                (XS_READ, 2, b"value".to_vec()),
                (XS_WATCH, 3, b"OK\0".to_vec()),
                // The initial event comes right after the WATCH reply.
                (XS_WATCH_EVENT, 0, b"data\0tok\0".to_vec()),
                (XS_ERROR, 4, b"EACCES\0".to_vec()),
            ]
        );
        // The toolstack writes under the watch: the event reaches the guest's ring.
        s.write(T, 0, "/local/domain/1/data/k", b"v2").unwrap();
        assert!(s.has_pending_output(D1));
        assert!(s.process_ring(D1, &mut g.page));
        let r = g.replies();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0.type_, XS_WATCH_EVENT);
        assert_eq!((r[0].0.req_id, r[0].0.tx_id), (0, 0));
        assert_eq!(r[0].1, b"data/k\0tok\0");
        // Nothing to do: nothing moved.
        assert!(!s.process_ring(D1, &mut g.page));
    }

    #[test]
    fn ring_transaction_ids_are_echoed() {
        let (mut s, mut g) = ring_store();
        g.request(XS_TRANSACTION_START, 9, 0, b"\0");
        s.process_ring(D1, &mut g.page);
        let r = g.replies();
        assert_eq!(r[0].0.type_, XS_TRANSACTION_START);
        let tx: u32 = std::str::from_utf8(&r[0].1[..r[0].1.len() - 1])
            .unwrap()
            .parse()
            .unwrap();
        g.request(XS_WRITE, 10, tx, b"data/t\0x");
        g.request(XS_TRANSACTION_END, 11, tx, b"T\0");
        s.process_ring(D1, &mut g.page);
        let r = g.replies();
        assert_eq!((r[0].0.type_, r[0].0.tx_id), (XS_WRITE, tx));
        assert_eq!(
            (r[1].0.type_, r[1].0.tx_id, r[1].1.as_slice()),
            (XS_TRANSACTION_END, tx, &b"OK\0"[..])
        );
        assert_eq!(s.read(T, 0, "/local/domain/1/data/t").unwrap(), b"x");
    }

    #[test]
    fn partial_messages_wait_for_the_rest() {
        let (mut s, mut g) = ring_store();
        let payload = b"data/p\0partial";
        let msg = encode(hdr(XS_WRITE, 5, 0, payload), payload);
        // Half a header.
        g.push(&msg[..7]);
        s.process_ring(D1, &mut g.page);
        assert!(g.replies().is_empty());
        // The header and part of the payload.
        g.push(&msg[7..20]);
        s.process_ring(D1, &mut g.page);
        assert!(g.replies().is_empty());
        assert_eq!(s.read(T, 0, "/local/domain/1/data/p"), Err(Errno::ENOENT));
        // The rest.
        g.push(&msg[20..]);
        assert!(s.process_ring(D1, &mut g.page));
        let r = g.replies();
        assert_eq!(
            (r[0].0.type_, r[0].0.req_id, r[0].1.as_slice()),
            (XS_WRITE, 5, &b"OK\0"[..])
        );
        assert_eq!(s.read(T, 0, "/local/domain/1/data/p").unwrap(), b"partial");
    }

    #[test]
    fn large_messages_stream_through_a_small_ring_with_wrapping_indices() {
        let (mut s, mut g) = ring_store();
        // Free-running indices close to wrapping, in the middle of the ring.
        let start = u32::MAX - 300;
        for off in [
            XS_RING_REQ_CONS,
            XS_RING_REQ_PROD,
            XS_RING_RSP_CONS,
            XS_RING_RSP_PROD,
        ] {
            put_u32(&mut g.page, off, start);
        }
        let value: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut payload = b"data/big\0".to_vec();
        payload.extend_from_slice(&value);
        let msg = encode(hdr(XS_WRITE, 1, 0, &payload), &payload);
        // The guest feeds the 3 KiB request as the ring drains.
        let mut sent = 0;
        let mut replies = Vec::new();
        for _ in 0..20 {
            sent += g.push(&msg[sent..]);
            s.process_ring(D1, &mut g.page);
            replies.extend(g.replies());
            if sent == msg.len() && !replies.is_empty() {
                break;
            }
        }
        assert_eq!(sent, msg.len());
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].1, b"OK\0");
        assert_eq!(s.read(T, 0, "/local/domain/1/data/big").unwrap(), value);
        // And the 3 KiB reply to a READ comes back in pieces.
        g.request(XS_READ, 2, 0, b"data/big\0");
        let mut replies = Vec::new();
        for _ in 0..10 {
            s.process_ring(D1, &mut g.page);
            replies.extend(g.replies());
        }
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].0.req_id, 2);
        assert_eq!(replies[0].1, value);
        assert!(g.idx(XS_RING_RSP_PROD) < start, "the indices wrapped");
    }

    #[test]
    fn full_response_ring_keeps_output_queued() {
        let (mut s, mut g) = ring_store();
        s.write(T, 0, "/local/domain/1/data/v", &[b'x'; 700])
            .unwrap();
        g.request(XS_READ, 1, 0, b"data/v\0");
        g.request(XS_READ, 2, 0, b"data/v\0");
        s.process_ring(D1, &mut g.page);
        // The guest doesn't consume: the ring is full and the rest waits.
        assert_eq!(
            g.idx(XS_RING_RSP_PROD)
                .wrapping_sub(g.idx(XS_RING_RSP_CONS)),
            1024
        );
        assert!(s.has_pending_output(D1));
        assert!(!s.process_ring(D1, &mut g.page));
        let mut r = g.replies();
        s.process_ring(D1, &mut g.page);
        r.extend(g.replies());
        assert_eq!(r.iter().map(|(h, _)| h.req_id).collect::<Vec<_>>(), [1, 2]);
        assert!(!s.has_pending_output(D1));
    }

    #[test]
    fn unconsumed_replies_stop_request_processing() {
        let (mut s, mut g) = ring_store();
        // Fill the response ring so replies queue up.
        s.write(T, 0, "/local/domain/1/data/v", &[b'x'; 1000])
            .unwrap();
        g.request(XS_READ, 0, 0, b"data/v\0");
        for i in 1..=40 {
            g.request(XS_GET_DOMAIN_PATH, i, 0, b"1\0");
        }
        s.process_ring(D1, &mut g.page);
        // At most REQ_OUTSTANDING_MAX replies wait; the remaining requests stay put.
        assert_ne!(g.idx(XS_RING_REQ_CONS), g.idx(XS_RING_REQ_PROD));
        let mut ids = Vec::new();
        for _ in 0..20 {
            s.process_ring(D1, &mut g.page);
            ids.extend(g.replies().into_iter().map(|(h, _)| h.req_id));
        }
        assert_eq!(ids, (0..=40).collect::<Vec<_>>());
    }

    #[test]
    fn over_long_request_abandons_the_ring() {
        let (mut s, mut g) = ring_store();
        g.request(XS_WATCH, 1, 0, b"data\0t\0");
        s.process_ring(D1, &mut g.page);
        g.replies();
        let bad = hdr(XS_WRITE, 2, 0, &[]);
        let bad = XsWireHeader {
            len: XENSTORE_PAYLOAD_MAX as u32 + 1,
            ..bad
        };
        g.push(bad.as_bytes());
        assert!(s.process_ring(D1, &mut g.page));
        assert_eq!(g.idx(XS_RING_ERROR), XENSTORE_ERROR_PROTO);
        assert_eq!(s.ring_error(D1), Some(XENSTORE_ERROR_PROTO));
        // Nothing is served any more, and the watch is gone.
        g.request(XS_READ, 3, 0, b"data\0");
        assert!(!s.process_ring(D1, &mut g.page));
        assert!(g.replies().is_empty());
        s.write(T, 0, "/local/domain/1/data/x", b"").unwrap();
        assert!(!s.has_pending_output(D1));
        // RELEASE and INTRODUCE bring it back.
        s.release(D1).unwrap();
        s.introduce(D1, Mfn::new(0x101), Port::new(1)).unwrap();
        put_u32(&mut g.page, XS_RING_ERROR, 0);
        s.process_ring(D1, &mut g.page);
        g.request(XS_GET_DOMAIN_PATH, 4, 0, b"1\0");
        assert!(s.process_ring(D1, &mut g.page));
        assert_eq!(g.replies()[0].1, b"/local/domain/1\0");
    }

    #[test]
    fn inconsistent_indices_abandon_the_ring() {
        let (mut s, mut g) = ring_store();
        put_u32(&mut g.page, XS_RING_REQ_PROD, 5000);
        assert!(s.process_ring(D1, &mut g.page));
        assert_eq!(g.idx(XS_RING_ERROR), XENSTORE_ERROR_RINGIDX);
        let (mut s, mut g) = ring_store();
        g.request(XS_GET_DOMAIN_PATH, 1, 0, b"1\0");
        put_u32(&mut g.page, XS_RING_RSP_CONS, 3000);
        assert!(s.process_ring(D1, &mut g.page));
        assert_eq!(s.ring_error(D1), Some(XENSTORE_ERROR_RINGIDX));
    }

    #[test]
    fn rings_of_unknown_domains_are_left_alone() {
        let mut s = store();
        let mut g = Guest::new();
        g.request(XS_READ, 1, 0, b"/\0");
        let before = g.page.clone();
        assert!(!s.process_ring(DomId::new(9), &mut g.page));
        assert_eq!(g.page, before);
    }

    fn hostile_ring_run(bytes: &[u8], idx: [u32; 4], near: bool, rounds: usize) {
        let (mut s, _) = ring_store();
        let mut page = [0u8; 4096];
        page.copy_from_slice(bytes);
        let idx = if near {
            [
                idx[0],
                idx[0].wrapping_add(idx[1] % 1100),
                idx[2],
                idx[2].wrapping_add(idx[3] % 1100),
            ]
        } else {
            idx
        };
        for (off, v) in [
            XS_RING_REQ_CONS,
            XS_RING_REQ_PROD,
            XS_RING_RSP_CONS,
            XS_RING_RSP_PROD,
        ]
        .into_iter()
        .zip(idx)
        {
            put_u32(&mut page, off, v);
        }
        for _ in 0..rounds {
            s.process_ring(D1, &mut page);
            // The guest "consumes" everything each round and writes more garbage.
            let prod = get_u32(&page, XS_RING_RSP_PROD);
            put_u32(&mut page, XS_RING_RSP_CONS, prod);
            let cons = get_u32(&page, XS_RING_REQ_CONS);
            put_u32(
                &mut page,
                XS_RING_REQ_PROD,
                cons.wrapping_add(idx[1] % 1025),
            );
        }
        // The store keeps working for everyone else.
        s.write(T, 0, "/still", b"ok").unwrap();
        assert_eq!(s.read(T, 0, "/still").unwrap(), b"ok");
    }

    proptest! {
        #[test]
        fn hostile_ring_pages_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 4096),
            idx in proptest::array::uniform4(any::<u32>()),
            near in any::<bool>(),
        ) {
            hostile_ring_run(&bytes, idx, near, 4);
        }

        #[test]
        fn garbage_request_streams_never_panic(
            msgs in proptest::collection::vec(
                (0u32..26, any::<u32>(), proptest::collection::vec(
                    prop_oneof![Just(0u8), Just(b'/'), Just(b'a'), Just(b'1'), Just(b'@'), any::<u8>()],
                    0..64,
                )),
                0..30,
            ),
        ) {
            let (mut s, mut g) = ring_store();
            for (ty, tx, payload) in &msgs {
                let tx = if *tx % 4 == 0 { *tx } else { 0 };
                let msg = encode(hdr(*ty, 1, tx, payload), payload);
                let mut sent = 0;
                for _ in 0..8 {
                    sent += g.push(&msg[sent..]);
                    s.process_ring(D1, &mut g.page);
                    for (h, p) in g.replies() {
                        prop_assert!(p.len() <= XENSTORE_PAYLOAD_MAX);
                        prop_assert_eq!(h.len as usize, p.len());
                    }
                    if sent == msg.len() {
                        break;
                    }
                }
            }
            // Also through handle_message directly, as the toolstack's socket.
            for (ty, tx, payload) in &msgs {
                let (h, p) = s.handle_message(T, hdr(*ty, 2, *tx, payload), payload);
                prop_assert_eq!(h.len as usize, p.len());
                prop_assert_eq!(h.req_id, 2);
            }
        }
    }
}
