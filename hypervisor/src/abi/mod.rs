//! Xen 4.17's public interface for x86-64 PV guests and the dom0 toolstack.
//!
//! Every struct is `#[repr(C)]` with zerocopy derives and explicit padding fields, so
//! untrusted bytes are parsed without `unsafe`; each file's tests assert sizes and
//! offsets against `shared/xen/abi.md` and `shared/xen/abi-4.17.md`. Guest handles
//! (pointers) are plain `u64` fields. Numbers that arrive in a hypercall register
//! (hypercall numbers and the `cmd` of memory_op, event_channel_op, sched_op, vcpu_op,
//! callback_op, xen_version, console_io, vm_assist) are `u64`; numbers that live in a
//! struct field have the field's type.
//!
//! | module | Xen header | contents |
//! |---|---|---|
//! | [`hypercall`] | xen.h, vcpu.h, callback.h | hypercall numbers, vcpu_op, callback_op, vm_assist, UVMF, console_io |
//! | [`domctl`] | domctl.h | `xen_domctl` and its payloads (4.17 layouts) |
//! | [`sysctl`] | sysctl.h | `xen_sysctl`, getdomaininfolist, physinfo |
//! | [`mm`] | xen.h, xen-x86_64.h | mmu_update, mmuext_op, multicall, PTE bits and masks, Xen's L4 slots, flat selectors |
//! | [`memory`] | memory.h | memory_op and the M2P |
//! | [`evtchn`] | event_channel.h | event-channel ops, VIRQs |
//! | [`sched`] | sched.h | sched_op, shutdown reasons |
//! | [`shared`] | xen.h, arch-x86/xen.h | shared_info, vcpu_info, start_info |
//! | [`vcpu`] | arch-x86/xen.h, xen-x86_64.h | trap_info, cpu_user_regs, vcpu_guest_context, iret and bounce frames |
//! | [`version`] | version.h, features.h | xen_version, XENFEAT |
//! | [`console`] | io/console.h | console ring |
//! | [`xs_wire`] | io/xs_wire.h | xenstore wire protocol and ring |

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
