//! Xen 4.17's public interface for x86-64 PV guests and the dom0 toolstack.
//!
//! Every struct is `#[repr(C)]` with zerocopy derives, so untrusted bytes are parsed
//! without `unsafe`; each file's tests assert sizes and offsets against
//! `shared/xen/abi.md` and `shared/xen/abi-4.17.md`.

pub mod console;
pub mod domctl;
pub mod evtchn;
pub mod hypercall;
pub mod memory;
pub mod mm;
pub mod sched;
pub mod shared;
pub mod sysctl;
pub mod vcpu;
pub mod version;
pub mod xs_wire;
