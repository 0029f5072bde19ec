//! The [`Xen`] trait: what a dom0 toolstack may ask of a hypervisor.
//!
//! The level is that of libxc/libxenstore/libxenevtchn calls, carried as Xen's own byte
//! layouts (the [`abi`](crate::abi) structs). A pointer ("guest handle") inside a
//! hypercall argument is replaced by an explicit buffer parameter: the caller leaves the
//! handle field zero and passes the memory it points at as `buf`; the hw backend bounces
//! `buf` into hypercall-safe memory and fills in the handle, the model reads `buf`
//! directly. So the model decodes exactly the bytes the real device would carry, and a
//! recorded trace of these calls can be replayed against either backend.
//!
//! Errors: a hypercall that Xen fails comes back as [`XenError::Xen`] with Xen's errno;
//! successful results (ports, counts, MFNs) are returned as the hypercall's value.

use crate::abi::domctl::XenDomctl;
use crate::abi::mm::{MmuUpdate, MmuextOp};
use crate::abi::sysctl::XenSysctl;
use crate::error::XenError;
use crate::types::{DomId, Mfn, Port};

/// A xenstore transaction id; [`XS_NO_TX`] means "outside any transaction".
pub type XsTxId = u32;

/// The xenstore transaction id meaning "no transaction".
pub const XS_NO_TX: XsTxId = 0;

/// A fired xenstore watch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct XsWatchEvent {
    /// The path that changed (or the watched path, for the initial fire).
    pub path: String,
    /// The token given to `xs_watch`.
    pub token: String,
}

/// Access a domain has to a xenstore node (the letter in xenstore's permission strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XsAccess {
    /// `n`: no access.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

/// One entry of a node's permission list. The first entry names the owner and the
/// access everyone else gets; later entries grant access to specific domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct XsPerm {
    /// The domain.
    pub dom: DomId,
    /// Its access.
    pub access: XsAccess,
}

impl XsPerm {
    /// The wire form, e.g. `"r5"`.
    #[must_use]
    pub fn to_wire(&self) -> String {
        let c = match self.access {
            XsAccess::None => 'n',
            XsAccess::Read => 'r',
            XsAccess::Write => 'w',
            XsAccess::Both => 'b',
        };
        format!("{c}{}", self.dom.get())
    }

    /// Parses the wire form, e.g. `"b0"`.
    #[must_use]
    pub fn from_wire(s: &str) -> Option<XsPerm> {
        let mut chars = s.chars();
        let access = match chars.next()? {
            'n' => XsAccess::None,
            'r' => XsAccess::Read,
            'w' => XsAccess::Write,
            'b' => XsAccess::Both,
            _ => return None,
        };
        let rest = chars.as_str();
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let dom: u16 = rest.parse().ok()?;
        Some(XsPerm {
            dom: DomId::new(dom),
            access,
        })
    }
}

/// `XENMEM_resource_grant_table`: a domain's grant table, as
/// `XENMEM_acquire_resource` (and privcmd's `IOCTL_PRIVCMD_MMAP_RESOURCE`) name it.
pub const XENMEM_RESOURCE_GRANT_TABLE: u16 = 1;
/// `XENMEM_resource_grant_table_id_shared`: the grant entries themselves.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0;
/// `XENMEM_resource_grant_table_id_status`: the v2 status frames.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS: u32 = 1;

/// `GNTTAB_RESERVED_CONSOLE`: the grant entry the builder fills for the console ring.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`: the grant entry through which xenstored maps the store
/// ring.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;
/// `GTF_permit_access` (a v1 entry's `flags`): the entry grants `domid` access to
/// `frame`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_readonly`: the grantee may only map the frame read-only.
pub const GTF_READONLY: u16 = 1 << 2;
/// The bytes of one `grant_entry_v1` (`flags` u16, `domid` u16, `frame` u32, little
/// endian).
pub const GRANT_ENTRY_V1_SIZE: usize = 8;

/// The privileged interface a dom0 toolstack has to Xen (hypercalls through privcmd,
/// foreign memory, the event channel device and xenstore).
///
/// Every method that issues a hypercall returns the hypercall's non-negative result.
pub trait Xen {
    /// A short name for messages: `"model"` or `"hw"`.
    fn backend_name(&self) -> &'static str;

    /// `xen_version(cmd, arg)`; `arg` is the buffer the command reads or fills.
    ///
    /// # Errors
    /// Xen's errno for the call.
    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError>;

    /// `domctl`. The payload's guest handle (if any) is `buf`: e.g. the
    /// `vcpu_guest_context` for get/setvcpucontext, the PFN array for
    /// getpageframeinfo3, the dirty bitmap for shadow_op CLEAN/PEEK. The whole
    /// struct is copied back on success, as Xen does.
    ///
    /// # Errors
    /// Xen's errno for the call.
    fn domctl(&mut self, domctl: &mut XenDomctl, buf: &mut [u8]) -> Result<i64, XenError>;

    /// `sysctl`; for getdomaininfolist `buf` receives the `xen_domctl_getdomaininfo`
    /// array (112-byte stride).
    ///
    /// # Errors
    /// Xen's errno for the call.
    fn sysctl(&mut self, sysctl: &mut XenSysctl, buf: &mut [u8]) -> Result<i64, XenError>;

    /// `memory_op(cmd, arg)`: `arg` holds the command's struct (e.g.
    /// `xen_memory_reservation`), `buf` the array its handle points at (extents).
    ///
    /// # Errors
    /// Xen's errno for the call.
    fn memory_op(&mut self, cmd: u32, arg: &mut [u8], buf: &mut [u8]) -> Result<i64, XenError>;

    /// `mmu_update(reqs, count, pdone, foreigndom)` issued by dom0 on behalf of a
    /// domain. `done` receives how many requests completed (also on error).
    ///
    /// # Errors
    /// Xen's errno for the first failing request.
    fn mmu_update(
        &mut self,
        reqs: &[MmuUpdate],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError>;

    /// `mmuext_op(ops, count, pdone, foreigndom)` issued by dom0 on behalf of a domain.
    ///
    /// # Errors
    /// Xen's errno for the first failing op.
    fn mmuext_op(
        &mut self,
        ops: &[MmuextOp],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError>;

    /// `event_channel_op(cmd, arg)` as dom0; `arg` is the op's struct.
    ///
    /// # Errors
    /// Xen's errno for the call.
    fn event_channel_op(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError>;

    /// Reads frames of domain `dom` (privcmd MMAPBATCH_V2 + copy). `buf` holds
    /// `mfns.len()` pages; `errs[i]` receives 0 or a negative errno for page `i`.
    ///
    /// # Errors
    /// Fails as a whole only if the request itself is malformed or the device fails.
    fn foreign_read(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &mut [u8],
        errs: &mut [i32],
    ) -> Result<(), XenError>;

    /// Writes frames of domain `dom`; per-page errors as for [`Xen::foreign_read`].
    ///
    /// # Errors
    /// Fails as a whole only if the request itself is malformed or the device fails.
    fn foreign_write(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &[u8],
        errs: &mut [i32],
    ) -> Result<(), XenError>;

    /// Reads `buf.len() / 4096` frames of resource (`type_`, `id`) of `dom` from frame
    /// `frame` on: privcmd's `IOCTL_PRIVCMD_MMAP_RESOURCE`, i.e. Xen's
    /// `XENMEM_acquire_resource` plus a copy out of the mapping. For a PV domain the one
    /// resource is [`XENMEM_RESOURCE_GRANT_TABLE`] id
    /// [`XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED`]; acquiring frames beyond the table's
    /// current size grows it (up to createdomain's `max_grant_frames`), as Xen does.
    ///
    /// # Errors
    /// [`XenError::BadArgument`] if `buf` is empty or not whole pages; otherwise Xen
    /// 4.17's errno: `ESRCH` no such domain, `EPERM` the caller's own domain,
    /// `EOPNOTSUPP` an unknown `type_`, `EINVAL` a resource the domain does not have
    /// (other ids, v2 status frames of a v1 table, ioreq/vmtrace of a PV domain) or
    /// frames beyond its maximum size. (4.17 has no `E2BIG`: Xen before 4.15 refused
    /// more than 32 frames per call with it; 4.17 continues the hypercall instead.)
    fn resource_read(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        buf: &mut [u8],
    ) -> Result<(), XenError>;

    /// Writes whole frames of a resource, as [`Xen::resource_read`] reads them (the
    /// same mapping, written through).
    ///
    /// # Errors
    /// As [`Xen::resource_read`].
    fn resource_write(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        data: &[u8],
    ) -> Result<(), XenError>;

    /// Event channel device: bind to `remote_port` of `remote` (`IOCTL_EVTCHN_BIND_INTERDOMAIN`).
    ///
    /// # Errors
    /// Xen's errno.
    fn evtchn_bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Port, XenError>;
    /// Event channel device: allocate an unbound port for `remote` to bind to.
    ///
    /// # Errors
    /// Xen's errno.
    fn evtchn_bind_unbound_port(&mut self, remote: DomId) -> Result<Port, XenError>;
    /// Event channel device: bind a VIRQ (on vCPU 0).
    ///
    /// # Errors
    /// Xen's errno.
    fn evtchn_bind_virq(&mut self, virq: u32) -> Result<Port, XenError>;
    /// Event channel device: unbind a port this device bound (`ENOTCONN` otherwise).
    ///
    /// # Errors
    /// Xen's errno.
    fn evtchn_unbind(&mut self, port: Port) -> Result<(), XenError>;
    /// Event channel device: notify the other end of `port`.
    ///
    /// # Errors
    /// Xen's errno.
    fn evtchn_notify(&mut self, port: Port) -> Result<(), XenError>;
    /// Event channel device: wait up to `timeout_ns` (virtual time on the model) for a
    /// port bound through this device to fire. The port stays masked until
    /// [`Xen::evtchn_unmask`].
    ///
    /// # Errors
    /// Device errors.
    fn evtchn_wait(&mut self, timeout_ns: u64) -> Result<Option<Port>, XenError>;
    /// Event channel device: re-enable a delivered port (the `write()` of the port).
    ///
    /// # Errors
    /// Xen's errno.
    fn evtchn_unmask(&mut self, port: Port) -> Result<(), XenError>;

    /// xenstore READ.
    ///
    /// # Errors
    /// xenstored's errno (e.g. `ENOENT`, `EACCES`).
    fn xs_read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError>;
    /// xenstore WRITE (creates missing parents).
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_write(&mut self, tx: XsTxId, path: &str, value: &[u8]) -> Result<(), XenError>;
    /// xenstore MKDIR.
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_mkdir(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError>;
    /// xenstore RM (recursive).
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_rm(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError>;
    /// xenstore DIRECTORY: the names of the node's children, sorted.
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_directory(&mut self, tx: XsTxId, path: &str) -> Result<Vec<String>, XenError>;
    /// xenstore GET_PERMS.
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError>;
    /// xenstore SET_PERMS.
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_set_perms(&mut self, tx: XsTxId, path: &str, perms: &[XsPerm]) -> Result<(), XenError>;
    /// xenstore WATCH; fires once at once for the watched path.
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_watch(&mut self, path: &str, token: &str) -> Result<(), XenError>;
    /// xenstore UNWATCH.
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError>;
    /// Waits up to `timeout_ns` (virtual time on the model) for a watch to fire.
    ///
    /// # Errors
    /// Connection errors.
    fn xs_read_watch(&mut self, timeout_ns: u64) -> Result<Option<XsWatchEvent>, XenError>;
    /// xenstore TRANSACTION_START.
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError>;
    /// xenstore TRANSACTION_END; a conflicting commit fails with `EAGAIN`.
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_transaction_end(&mut self, tx: XsTxId, commit: bool) -> Result<(), XenError>;
    /// xenstore INTRODUCE: xenstored starts serving `dom` over its store ring. Xen
    /// 4.17's xenstored ignores `mfn` (it is carried for older xenstoreds): it maps the
    /// ring through `dom`'s grant entry [`GNTTAB_RESERVED_XENSTORE`], which the builder
    /// (or restore) must have seeded with [`GTF_PERMIT_ACCESS`], xenstored's domain and
    /// the ring's frame.
    ///
    /// # Errors
    /// xenstored's errno; `EINVAL` when the grant entry does not let xenstored map the
    /// ring (the mapping through gntdev fails).
    fn xs_introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> Result<(), XenError>;
    /// xenstore RELEASE: xenstored forgets `dom` (fires `@releaseDomain`).
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_release(&mut self, dom: DomId) -> Result<(), XenError>;
    /// xenstore GET_DOMAIN_PATH: `/local/domain/<id>`.
    ///
    /// # Errors
    /// xenstored's errno.
    fn xs_get_domain_path(&mut self, dom: DomId) -> Result<String, XenError>;
}

/// How many frames a [`Xen::resource_read`]/[`Xen::resource_write`] buffer of `len`
/// bytes covers.
///
/// # Errors
/// [`XenError::BadArgument`] if `len` is zero, not a multiple of the page size, or
/// more frames than the 32-bit `nr_frames` can say.
pub fn resource_frames(op: &'static str, len: usize) -> Result<u32, XenError> {
    let page = crate::types::PAGE_SIZE;
    if len == 0 || len % page != 0 {
        return Err(XenError::BadArgument {
            op,
            what: format!("{len} bytes is not a whole, nonzero number of pages"),
        });
    }
    u32::try_from(len / page).map_err(|_| XenError::BadArgument {
        op,
        what: format!("{} frames do not fit nr_frames", len / page),
    })
}

/// One version 1 grant entry, decoded (`grant_entry_v1_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrantEntryV1 {
    /// `GTF_*` flags.
    pub flags: u16,
    /// The domain granted access.
    pub domid: u16,
    /// The frame (for a PV granter its MFN).
    pub frame: u32,
}

impl GrantEntryV1 {
    /// Reads entry `index` of a grant-table frame (`None` past the frame's end).
    #[must_use]
    pub fn read(page: &[u8], index: usize) -> Option<GrantEntryV1> {
        let off = index.checked_mul(GRANT_ENTRY_V1_SIZE)?;
        let b = page.get(off..off + GRANT_ENTRY_V1_SIZE)?;
        Some(GrantEntryV1 {
            flags: u16::from_le_bytes([b[0], b[1]]),
            domid: u16::from_le_bytes([b[2], b[3]]),
            frame: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
    }

    /// The entry's 8 bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; GRANT_ENTRY_V1_SIZE] {
        let mut b = [0u8; GRANT_ENTRY_V1_SIZE];
        b[0..2].copy_from_slice(&self.flags.to_le_bytes());
        b[2..4].copy_from_slice(&self.domid.to_le_bytes());
        b[4..8].copy_from_slice(&self.frame.to_le_bytes());
        b
    }
}
