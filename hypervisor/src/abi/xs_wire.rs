//! The xenstore wire protocol and the guest's xenstore ring page (public/io/xs_wire.h,
//! Xen 4.17).
//!
//! Every message, in either direction and over either transport (the dom0 socket or a
//! guest's shared ring), is an [`XsWireHeader`] followed by `len` bytes of payload, at
//! most [`XENSTORE_PAYLOAD_MAX`]. Payloads are mostly NUL-terminated strings; see
//! `docs/misc/xenstore.txt` for each message's format. Errors travel as the errno's
//! *name* (`"ENOENT\0"`) in an [`XS_ERROR`] reply, never as a number: [`errno_to_wire`]
//! and [`errno_from_wire`] convert.
//!
//! The ring page ([`XenstoreDomainInterface`]) holds two byte rings of
//! [`XENSTORE_RING_SIZE`] with free-running `u32` indices (masked by the ring size when
//! used), then the connection-state words. Xen 4.17's layout ends with `error` at offset
//! 2072; the `evtchn_port` word some later headers add at 2076 does not exist in 4.17
//! and is not modelled.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::Errno;

/// `struct xsd_sockmsg`: the header of every xenstore message (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XsWireHeader {
    /// Message type (`XS_*`).
    pub type_: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction; echoed in the reply.
    pub tx_id: u32,
    /// Length of the payload that follows.
    pub len: u32,
}

/// Size of [`XsWireHeader`] on the wire.
pub const XS_WIRE_HEADER_SIZE: usize = 16;

// `enum xsd_sockmsg_type`.
/// `XS_CONTROL` (formerly `XS_DEBUG`): implementation-specific daemon commands.
pub const XS_CONTROL: u32 = 0;
/// The old name of [`XS_CONTROL`].
pub const XS_DEBUG: u32 = XS_CONTROL;
/// `XS_DIRECTORY`: list a node's children.
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`: read a node's value.
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`: read a node's permissions.
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`: add a watch.
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`: remove a watch.
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`.
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END`.
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE`: start serving a domain's ring (dom0 only).
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE`: stop serving a domain (dom0 only).
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH`: `/local/domain/<id>`.
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE`: write a node (creating missing parents).
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`: make sure a node exists.
pub const XS_MKDIR: u32 = 12;
/// `XS_RM`: remove a node and its children.
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS`: replace a node's permissions.
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT`: an unsolicited watch notification (daemon to client).
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`: an error reply; the payload is the errno name.
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED` (dom0 only).
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME`: re-arm `@releaseDomain` for a domain (dom0 only).
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET`: let a (stub) domain act for another (dom0 only).
pub const XS_SET_TARGET: u32 = 19;
// 20 was XS_RESTRICT, removed before 4.17.
/// `XS_RESET_WATCHES`: drop all of the caller's watches and transactions.
pub const XS_RESET_WATCHES: u32 = 21;
/// `XS_DIRECTORY_PART`: a slice of a long children list.
pub const XS_DIRECTORY_PART: u32 = 22;
/// `XS_TYPE_COUNT` in 4.17: every type below this may be valid.
pub const XS_TYPE_COUNT: u32 = 23;
/// `XS_INVALID`: guaranteed never to be a valid type.
pub const XS_INVALID: u32 = 0xffff;

/// The largest payload either side may send (`XENSTORE_PAYLOAD_MAX`).
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Longest absolute path (`XENSTORE_ABS_PATH_MAX`).
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// Longest relative path (`XENSTORE_REL_PATH_MAX`).
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// Size of each of the two byte rings in the page (`XENSTORE_RING_SIZE`).
pub const XENSTORE_RING_SIZE: usize = 1024;

/// `MASK_XENSTORE_IDX`: a free-running ring index reduced to a byte offset.
#[must_use]
pub const fn mask_xenstore_idx(idx: u32) -> usize {
    (idx as usize) & (XENSTORE_RING_SIZE - 1)
}

/// Server feature bit: the ring can be closed and reconnected.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// Server feature bit: the `error` field is present.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;

/// `connection` value: the steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `connection` value: a reconnect is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;

/// `error` value: no error.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `error` value: communication problem (event channel not working).
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `error` value: a producer or consumer index was inconsistent.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `error` value: protocol violation (a payload longer than the maximum).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// `struct xenstore_domain_interface`, at the start of the guest's store page (2076
/// bytes in 4.17; the rest of the 4 KiB page is unused).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenstoreDomainInterface {
    /// Requests, guest to daemon.
    pub req: [u8; XENSTORE_RING_SIZE],
    /// Replies and watch events, daemon to guest.
    pub rsp: [u8; XENSTORE_RING_SIZE],
    /// Daemon's consumer index into `req`.
    pub req_cons: u32,
    /// Guest's producer index into `req`.
    pub req_prod: u32,
    /// Guest's consumer index into `rsp`.
    pub rsp_cons: u32,
    /// Daemon's producer index into `rsp`.
    pub rsp_prod: u32,
    /// Bitmap of `XENSTORE_SERVER_FEATURE_*` the daemon supports.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*`: why the daemon stopped serving the ring.
    pub error: u32,
}

/// Byte offset of `req_cons` in the ring page.
pub const XS_RING_REQ_CONS: usize = 2048;
/// Byte offset of `req_prod` in the ring page.
pub const XS_RING_REQ_PROD: usize = 2052;
/// Byte offset of `rsp_cons` in the ring page.
pub const XS_RING_RSP_CONS: usize = 2056;
/// Byte offset of `rsp_prod` in the ring page.
pub const XS_RING_RSP_PROD: usize = 2060;
/// Byte offset of `server_features` in the ring page.
pub const XS_RING_SERVER_FEATURES: usize = 2064;
/// Byte offset of `connection` in the ring page.
pub const XS_RING_CONNECTION: usize = 2068;
/// Byte offset of `error` in the ring page.
pub const XS_RING_ERROR: usize = 2072;
/// Byte offset of the `req` ring in the page.
pub const XS_RING_REQ: usize = 0;
/// Byte offset of the `rsp` ring in the page.
pub const XS_RING_RSP: usize = 1024;

/// The errno names xenstored 4.17 sends in `XS_ERROR` replies (`xsd_errors[]`, in the
/// header's order; new entries are only ever appended).
pub const XSD_ERRORS: [(Errno, &str); 16] = [
    (Errno::EINVAL, "EINVAL"),
    (Errno::EACCES, "EACCES"),
    (Errno::EEXIST, "EEXIST"),
    (Errno::EISDIR, "EISDIR"),
    (Errno::ENOENT, "ENOENT"),
    (Errno::ENOMEM, "ENOMEM"),
    (Errno::ENOSPC, "ENOSPC"),
    (Errno::EIO, "EIO"),
    (Errno::ENOTEMPTY, "ENOTEMPTY"),
    (Errno::ENOSYS, "ENOSYS"),
    (Errno::EROFS, "EROFS"),
    (Errno::EBUSY, "EBUSY"),
    (Errno::EAGAIN, "EAGAIN"),
    (Errno::EISCONN, "EISCONN"),
    (Errno::E2BIG, "E2BIG"),
    (Errno::EPERM, "EPERM"),
];

/// The name xenstored puts in an `XS_ERROR` reply for `errno`. Like xenstored, an errno
/// missing from [`XSD_ERRORS`] is sent as `"EINVAL"`.
#[must_use]
pub fn errno_to_wire(errno: Errno) -> &'static str {
    XSD_ERRORS
        .iter()
        .find(|(e, _)| *e == errno)
        .map_or("EINVAL", |(_, s)| s)
}

/// Parses an `XS_ERROR` payload (with or without its trailing NUL) back to the errno.
/// `None` for a name not in [`XSD_ERRORS`]; libxenstore treats those as `EINVAL`.
#[must_use]
pub fn errno_from_wire(payload: &[u8]) -> Option<Errno> {
    let name = payload.strip_suffix(b"\0").unwrap_or(payload);
    XSD_ERRORS
        .iter()
        .find(|(_, s)| s.as_bytes() == name)
        .map(|(e, _)| *e)
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn header_layout() {
        assert_eq!(size_of::<XsWireHeader>(), XS_WIRE_HEADER_SIZE);
        assert_eq!(offset_of!(XsWireHeader, type_), 0);
        assert_eq!(offset_of!(XsWireHeader, req_id), 4);
        assert_eq!(offset_of!(XsWireHeader, tx_id), 8);
        assert_eq!(offset_of!(XsWireHeader, len), 12);
        let h = XsWireHeader {
            type_: XS_READ,
            req_id: 7,
            tx_id: 0,
            len: 5,
        };
        assert_eq!(
            h.as_bytes(),
            &[2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0]
        );
    }

    #[test]
    fn message_types_match_header() {
        assert_eq!(XS_CONTROL, 0);
        assert_eq!(XS_DIRECTORY, 1);
        assert_eq!(XS_READ, 2);
        assert_eq!(XS_GET_PERMS, 3);
        assert_eq!(XS_WATCH, 4);
        assert_eq!(XS_UNWATCH, 5);
        assert_eq!(XS_TRANSACTION_START, 6);
        assert_eq!(XS_TRANSACTION_END, 7);
        assert_eq!(XS_INTRODUCE, 8);
        assert_eq!(XS_RELEASE, 9);
        assert_eq!(XS_GET_DOMAIN_PATH, 10);
        assert_eq!(XS_WRITE, 11);
        assert_eq!(XS_MKDIR, 12);
        assert_eq!(XS_RM, 13);
        assert_eq!(XS_SET_PERMS, 14);
        assert_eq!(XS_WATCH_EVENT, 15);
        assert_eq!(XS_ERROR, 16);
        assert_eq!(XS_IS_DOMAIN_INTRODUCED, 17);
        assert_eq!(XS_RESUME, 18);
        assert_eq!(XS_SET_TARGET, 19);
        assert_eq!(XS_RESET_WATCHES, 21);
        assert_eq!(XS_DIRECTORY_PART, 22);
        assert_eq!(XS_INVALID, 0xffff);
    }

    #[test]
    fn ring_page_layout() {
        assert_eq!(size_of::<XenstoreDomainInterface>(), 2076);
        assert_eq!(offset_of!(XenstoreDomainInterface, req), XS_RING_REQ);
        assert_eq!(offset_of!(XenstoreDomainInterface, rsp), XS_RING_RSP);
        assert_eq!(
            offset_of!(XenstoreDomainInterface, req_cons),
            XS_RING_REQ_CONS
        );
        assert_eq!(
            offset_of!(XenstoreDomainInterface, req_prod),
            XS_RING_REQ_PROD
        );
        assert_eq!(
            offset_of!(XenstoreDomainInterface, rsp_cons),
            XS_RING_RSP_CONS
        );
        assert_eq!(
            offset_of!(XenstoreDomainInterface, rsp_prod),
            XS_RING_RSP_PROD
        );
        assert_eq!(
            offset_of!(XenstoreDomainInterface, server_features),
            XS_RING_SERVER_FEATURES
        );
        assert_eq!(
            offset_of!(XenstoreDomainInterface, connection),
            XS_RING_CONNECTION
        );
        assert_eq!(offset_of!(XenstoreDomainInterface, error), XS_RING_ERROR);
        // docs/misc/xenstore-ring.txt: feature bitmap at 2064, state at 2068, error at 2072.
        assert_eq!(XS_RING_SERVER_FEATURES, 2064);
        assert_eq!(XS_RING_ERROR, 2072);
    }

    #[test]
    fn ring_page_parses_from_a_page() {
        let mut page = [0u8; 4096];
        page[XS_RING_REQ_PROD..XS_RING_REQ_PROD + 4].copy_from_slice(&17u32.to_le_bytes());
        page[XS_RING_ERROR..XS_RING_ERROR + 4].copy_from_slice(&3u32.to_le_bytes());
        let (intf, _) = XenstoreDomainInterface::read_from_prefix(&page[..]).unwrap();
        assert_eq!(intf.req_prod, 17);
        assert_eq!(intf.error, XENSTORE_ERROR_PROTO);
    }

    #[test]
    fn limits_and_masks() {
        assert_eq!(XENSTORE_PAYLOAD_MAX, 4096);
        assert_eq!(XENSTORE_ABS_PATH_MAX, 3072);
        assert_eq!(XENSTORE_REL_PATH_MAX, 2048);
        assert_eq!(XENSTORE_RING_SIZE, 1024);
        assert_eq!(mask_xenstore_idx(1023), 1023);
        assert_eq!(mask_xenstore_idx(1024), 0);
        assert_eq!(mask_xenstore_idx(u32::MAX), 1023);
        assert_eq!(XENSTORE_SERVER_FEATURE_RECONNECTION, 1);
        assert_eq!(XENSTORE_SERVER_FEATURE_ERROR, 2);
        assert_eq!((XENSTORE_CONNECTED, XENSTORE_RECONNECT), (0, 1));
    }

    #[test]
    fn errno_names_round_trip() {
        for (errno, name) in XSD_ERRORS {
            assert_eq!(errno_to_wire(errno), name);
            // The name is the errno's own symbolic name.
            assert_eq!(errno.name(), Some(name));
            assert_eq!(errno_from_wire(name.as_bytes()), Some(errno));
            let mut with_nul = name.as_bytes().to_vec();
            with_nul.push(0);
            assert_eq!(errno_from_wire(&with_nul), Some(errno));
        }
        // Untranslatable errnos go out as EINVAL, as xenstored's send_error does.
        assert_eq!(errno_to_wire(Errno::EFAULT), "EINVAL");
        assert_eq!(errno_from_wire(b"EQUOTA\0"), None);
        assert_eq!(errno_from_wire(b""), None);
    }
}
