//! The PV console ring page (public/io/console.h).
//!
//! Two byte rings with free-running `u32` indices: `out` carries guest output to the
//! backend (xenconsoled), `in_` carries input from the backend to the guest. An index
//! is reduced to a byte offset by masking with the ring's size
//! ([`mask_xencons_in`], [`mask_xencons_out`]). The guest finds the page through
//! `start_info.console.domU.mfn` and the event channel through `...evtchn`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of the `in` ring (backend to guest).
pub const XENCONS_IN_SIZE: usize = 1024;
/// Size of the `out` ring (guest to backend).
pub const XENCONS_OUT_SIZE: usize = 2048;

/// `struct xencons_interface` (3088 bytes, at the start of the console page).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenconsInterface {
    /// Input ring, backend to guest (`in`).
    pub in_: [u8; XENCONS_IN_SIZE],
    /// Output ring, guest to backend.
    pub out: [u8; XENCONS_OUT_SIZE],
    /// Guest's consumer index into `in`.
    pub in_cons: u32,
    /// Backend's producer index into `in`.
    pub in_prod: u32,
    /// Backend's consumer index into `out`.
    pub out_cons: u32,
    /// Guest's producer index into `out`.
    pub out_prod: u32,
}

/// Byte offset of the `in` ring in the page.
pub const XENCONS_IN: usize = 0;
/// Byte offset of the `out` ring in the page.
pub const XENCONS_OUT: usize = 1024;
/// Byte offset of `in_cons` in the page.
pub const XENCONS_IN_CONS: usize = 3072;
/// Byte offset of `in_prod` in the page.
pub const XENCONS_IN_PROD: usize = 3076;
/// Byte offset of `out_cons` in the page.
pub const XENCONS_OUT_CONS: usize = 3080;
/// Byte offset of `out_prod` in the page.
pub const XENCONS_OUT_PROD: usize = 3084;

/// `MASK_XENCONS_IDX(idx, in)`.
#[must_use]
pub const fn mask_xencons_in(idx: u32) -> usize {
    (idx as usize) & (XENCONS_IN_SIZE - 1)
}

/// `MASK_XENCONS_IDX(idx, out)`.
#[must_use]
pub const fn mask_xencons_out(idx: u32) -> usize {
    (idx as usize) & (XENCONS_OUT_SIZE - 1)
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layout_matches_console_h() {
        assert_eq!(size_of::<XenconsInterface>(), 3088);
        assert_eq!(offset_of!(XenconsInterface, in_), XENCONS_IN);
        assert_eq!(offset_of!(XenconsInterface, out), XENCONS_OUT);
        assert_eq!(offset_of!(XenconsInterface, in_cons), XENCONS_IN_CONS);
        assert_eq!(offset_of!(XenconsInterface, in_prod), XENCONS_IN_PROD);
        assert_eq!(offset_of!(XenconsInterface, out_cons), XENCONS_OUT_CONS);
        assert_eq!(offset_of!(XenconsInterface, out_prod), XENCONS_OUT_PROD);
        // in[1024] + out[2048] puts the indices at 3072.
        assert_eq!(XENCONS_IN_CONS, 3072);
    }

    #[test]
    fn masks_wrap_at_ring_size() {
        assert_eq!(mask_xencons_in(1024), 0);
        assert_eq!(mask_xencons_in(1025), 1);
        assert_eq!(mask_xencons_out(2047), 2047);
        assert_eq!(mask_xencons_out(2048), 0);
        assert_eq!(mask_xencons_out(u32::MAX), 2047);
    }

    #[test]
    fn parses_from_a_page() {
        let mut page = [0u8; 4096];
        page[XENCONS_OUT_PROD..XENCONS_OUT_PROD + 4].copy_from_slice(&9u32.to_le_bytes());
        page[XENCONS_OUT] = b'h';
        let (intf, _) = XenconsInterface::read_from_prefix(&page[..]).unwrap();
        assert_eq!(intf.out_prod, 9);
        assert_eq!(intf.out[0], b'h');
        assert_eq!(intf.in_cons, 0);
    }
}
