//! `event_channel_op` (public/event_channel.h) and VIRQ numbers (public/xen.h),
//! x86-64 layouts (identical in 4.17 and the development head).
//!
//! Ports are `u32` (`evtchn_port_t`); port 0 is always reserved. The 2-level ABI
//! gives a 64-bit guest [`EVTCHN_2L_NR_CHANNELS`] ports, one pending and one mask bit
//! each in shared_info.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bind a port to a remote domain's unbound port ([`EvtchnBindInterdomain`]).
pub const EVTCHNOP_BIND_INTERDOMAIN: u64 = 0;
/// Bind a VIRQ ([`EvtchnBindVirq`]).
pub const EVTCHNOP_BIND_VIRQ: u64 = 1;
/// Bind a physical IRQ ([`EvtchnBindPirq`]).
pub const EVTCHNOP_BIND_PIRQ: u64 = 2;
/// Close a port ([`EvtchnClose`]).
pub const EVTCHNOP_CLOSE: u64 = 3;
/// Notify a port's peer ([`EvtchnSend`]).
pub const EVTCHNOP_SEND: u64 = 4;
/// Query a port ([`EvtchnStatus`]).
pub const EVTCHNOP_STATUS: u64 = 5;
/// Allocate an unbound port ([`EvtchnAllocUnbound`]).
pub const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
/// Bind an inter-vcpu IPI ([`EvtchnBindIpi`]).
pub const EVTCHNOP_BIND_IPI: u64 = 7;
/// Move a port's notifications to another vcpu ([`EvtchnBindVcpu`]).
pub const EVTCHNOP_BIND_VCPU: u64 = 8;
/// Unmask a port ([`EvtchnUnmask`]).
pub const EVTCHNOP_UNMASK: u64 = 9;
/// Close every port of a domain ([`EvtchnReset`]).
pub const EVTCHNOP_RESET: u64 = 10;
/// Switch to the FIFO ABI ([`EvtchnInitControl`]).
pub const EVTCHNOP_INIT_CONTROL: u64 = 11;
/// Add a FIFO event array page ([`EvtchnExpandArray`]).
pub const EVTCHNOP_EXPAND_ARRAY: u64 = 12;
/// Set a FIFO port priority ([`EvtchnSetPriority`]).
pub const EVTCHNOP_SET_PRIORITY: u64 = 13;

/// Ports of the 2-level ABI on x86-64: 64 words × 64 bits.
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;

/// `struct evtchn_bind_interdomain` (12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindInterdomain {
    /// In: the remote domain.
    pub remote_dom: u16,
    /// Padding.
    pub pad: u16,
    /// In: the remote (unbound) port.
    pub remote_port: u32,
    /// Out: the new local port.
    pub local_port: u32,
}

/// `struct evtchn_bind_virq` (12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindVirq {
    /// In: `VIRQ_*`.
    pub virq: u32,
    /// In: vcpu to notify.
    pub vcpu: u32,
    /// Out: the new port.
    pub port: u32,
}

/// bind_pirq flag: the IRQ may be shared with other domains.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// `struct evtchn_bind_pirq` (12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindPirq {
    /// In: the physical IRQ.
    pub pirq: u32,
    /// In: `BIND_PIRQ_*`.
    pub flags: u32,
    /// Out: the new port.
    pub port: u32,
}

/// `struct evtchn_close` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnClose {
    /// The port.
    pub port: u32,
}

/// `struct evtchn_send` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnSend {
    /// The port.
    pub port: u32,
}

/// `struct evtchn_unmask` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnUnmask {
    /// The port.
    pub port: u32,
}

/// Port status: closed (free).
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// Port status: unbound, waiting for `u[0]` (the remote domain) to bind.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// Port status: interdomain; `u[0]` low 16 bits = remote domain, `u[1]` = remote port.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// Port status: bound to a physical IRQ (`u[0]`).
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// Port status: bound to a VIRQ (`u[0]`).
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// Port status: an IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `struct evtchn_status` (24 bytes). The C union `u` is kept as two words: for
/// unbound, `u[0]` is the remote domain; for interdomain, `u[0]` is the remote domain
/// (low 16 bits) and `u[1]` the remote port; for pirq and virq, `u[0]` is the number.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnStatus {
    /// In: the domain.
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// In: the port.
    pub port: u32,
    /// Out: `EVTCHNSTAT_*`.
    pub status: u32,
    /// Out: vcpu notified.
    pub vcpu: u32,
    /// Out: status-specific data.
    pub u: [u32; 2],
}

/// `struct evtchn_alloc_unbound` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnAllocUnbound {
    /// In: the domain that gets the port.
    pub dom: u16,
    /// In: the only domain allowed to bind it.
    pub remote_dom: u16,
    /// Out: the new port.
    pub port: u32,
}

/// `struct evtchn_bind_ipi` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindIpi {
    /// In: vcpu to notify.
    pub vcpu: u32,
    /// Out: the new port.
    pub port: u32,
}

/// `struct evtchn_bind_vcpu` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindVcpu {
    /// The port.
    pub port: u32,
    /// The new vcpu.
    pub vcpu: u32,
}

/// `struct evtchn_reset` (2 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnReset {
    /// The domain.
    pub dom: u16,
}

/// `struct evtchn_init_control` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnInitControl {
    /// In: GFN of the control block page.
    pub control_gfn: u64,
    /// In: offset of the control block in that page.
    pub offset: u32,
    /// In: the vcpu.
    pub vcpu: u32,
    /// Out: bits in a FIFO link field.
    pub link_bits: u8,
    /// Padding.
    pub pad: [u8; 7],
}

/// `struct evtchn_expand_array` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnExpandArray {
    /// GFN of the new event array page.
    pub array_gfn: u64,
}

/// `struct evtchn_set_priority` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnSetPriority {
    /// The port.
    pub port: u32,
    /// FIFO priority (0 highest).
    pub priority: u32,
}

/// `struct evtchn_op` (28 bytes): the legacy `event_channel_op_compat` argument, a
/// command followed by the op's struct (at most 24 bytes) in `u`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnOp {
    /// `EVTCHNOP_*` (as a 32-bit field here).
    pub cmd: u32,
    /// The op's argument struct, as words.
    pub u: [u32; 6],
}

/// FIFO priority levels.
pub const EVTCHN_FIFO_MAX_QUEUES: usize = 16;

/// `struct evtchn_fifo_control_block` (72 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnFifoControlBlock {
    /// Bit q set: queue q has ready events.
    pub ready: u32,
    /// Reserved.
    pub rsvd: u32,
    /// Head port of each priority queue.
    pub head: [u32; EVTCHN_FIFO_MAX_QUEUES],
}

// ---------------------------------------------------------------------------------
// VIRQs.

/// VIRQ (per vcpu): timer tick / singleshot timer.
pub const VIRQ_TIMER: u32 = 0;
/// VIRQ (per vcpu): debug request.
pub const VIRQ_DEBUG: u32 = 1;
/// VIRQ (global): console data from Xen (dom0).
pub const VIRQ_CONSOLE: u32 = 2;
/// VIRQ (global): a domain exited or crashed.
pub const VIRQ_DOM_EXC: u32 = 3;
/// VIRQ (global): trace buffer data.
pub const VIRQ_TBUF: u32 = 4;
/// VIRQ (global): a domain entered the debugger.
pub const VIRQ_DEBUGGER: u32 = 6;
/// VIRQ (per vcpu): oprofile samples.
pub const VIRQ_XENOPROF: u32 = 7;
/// VIRQ (global): console ring data.
pub const VIRQ_CON_RING: u32 = 8;
/// VIRQ (global): physical CPU state changed.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// VIRQ (global): memory event.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// VIRQ (per domain): Argo message.
pub const VIRQ_ARGO: u32 = 11;
/// VIRQ (global): Xen ran low on memory.
pub const VIRQ_ENOMEM: u32 = 12;
/// VIRQ (per vcpu): PMU interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// First architecture-specific VIRQ.
pub const VIRQ_ARCH_0: u32 = 16;
/// Architecture-specific VIRQ 1.
pub const VIRQ_ARCH_1: u32 = 17;
/// Architecture-specific VIRQ 2.
pub const VIRQ_ARCH_2: u32 = 18;
/// Architecture-specific VIRQ 3.
pub const VIRQ_ARCH_3: u32 = 19;
/// Architecture-specific VIRQ 4.
pub const VIRQ_ARCH_4: u32 = 20;
/// Architecture-specific VIRQ 5.
pub const VIRQ_ARCH_5: u32 = 21;
/// Architecture-specific VIRQ 6.
pub const VIRQ_ARCH_6: u32 = 22;
/// Last architecture-specific VIRQ.
pub const VIRQ_ARCH_7: u32 = 23;
/// x86: machine check (global).
pub const VIRQ_MCA: u32 = VIRQ_ARCH_0;
/// Number of VIRQs.
pub const NR_VIRQS: u32 = 24;

/// Whether `virq` is bound per vcpu (TIMER, DEBUG, XENOPROF, XENPMU). Such a VIRQ can
/// be bound once on every vcpu, and its port cannot be moved with bind_vcpu.
#[must_use]
pub const fn virq_is_per_vcpu(virq: u32) -> bool {
    matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

/// Whether `virq` is delivered to one domain at a time, bound on vcpu 0: every valid
/// VIRQ that is not per vcpu. This is Xen's `virq_is_global()`, which also counts the
/// per-domain ARGO VIRQ and (on x86) all architecture VIRQs as global.
#[must_use]
pub const fn virq_is_global(virq: u32) -> bool {
    virq < NR_VIRQS && !virq_is_per_vcpu(virq)
}

/// Whether `virq` is per domain (each domain has its own; currently only ARGO).
#[must_use]
pub const fn virq_is_per_domain(virq: u32) -> bool {
    virq == VIRQ_ARGO
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layouts() {
        assert_eq!(size_of::<EvtchnBindInterdomain>(), 12);
        assert_eq!(offset_of!(EvtchnBindInterdomain, remote_port), 4);
        assert_eq!(offset_of!(EvtchnBindInterdomain, local_port), 8);
        assert_eq!(size_of::<EvtchnBindVirq>(), 12);
        assert_eq!(offset_of!(EvtchnBindVirq, vcpu), 4);
        assert_eq!(offset_of!(EvtchnBindVirq, port), 8);
        assert_eq!(size_of::<EvtchnBindPirq>(), 12);
        assert_eq!(offset_of!(EvtchnBindPirq, flags), 4);
        assert_eq!(offset_of!(EvtchnBindPirq, port), 8);
        assert_eq!(size_of::<EvtchnClose>(), 4);
        assert_eq!(size_of::<EvtchnSend>(), 4);
        assert_eq!(size_of::<EvtchnUnmask>(), 4);
        assert_eq!(size_of::<EvtchnStatus>(), 24);
        assert_eq!(offset_of!(EvtchnStatus, port), 4);
        assert_eq!(offset_of!(EvtchnStatus, status), 8);
        assert_eq!(offset_of!(EvtchnStatus, vcpu), 12);
        assert_eq!(offset_of!(EvtchnStatus, u), 16);
        assert_eq!(size_of::<EvtchnAllocUnbound>(), 8);
        assert_eq!(offset_of!(EvtchnAllocUnbound, remote_dom), 2);
        assert_eq!(offset_of!(EvtchnAllocUnbound, port), 4);
        assert_eq!(size_of::<EvtchnBindIpi>(), 8);
        assert_eq!(offset_of!(EvtchnBindIpi, port), 4);
        assert_eq!(size_of::<EvtchnBindVcpu>(), 8);
        assert_eq!(offset_of!(EvtchnBindVcpu, vcpu), 4);
        assert_eq!(size_of::<EvtchnReset>(), 2);
        assert_eq!(size_of::<EvtchnInitControl>(), 24);
        assert_eq!(offset_of!(EvtchnInitControl, offset), 8);
        assert_eq!(offset_of!(EvtchnInitControl, vcpu), 12);
        assert_eq!(offset_of!(EvtchnInitControl, link_bits), 16);
        assert_eq!(size_of::<EvtchnExpandArray>(), 8);
        assert_eq!(size_of::<EvtchnSetPriority>(), 8);
        assert_eq!(offset_of!(EvtchnSetPriority, priority), 4);
        assert_eq!(size_of::<EvtchnOp>(), 28);
        assert_eq!(offset_of!(EvtchnOp, u), 4);
        assert_eq!(size_of::<EvtchnFifoControlBlock>(), 72);
        assert_eq!(offset_of!(EvtchnFifoControlBlock, head), 8);
    }

    #[test]
    fn virq_classes() {
        for v in [VIRQ_TIMER, VIRQ_DEBUG, VIRQ_XENOPROF, VIRQ_XENPMU] {
            assert!(virq_is_per_vcpu(v) && !virq_is_global(v));
        }
        for v in [VIRQ_CONSOLE, VIRQ_DOM_EXC, VIRQ_TBUF, VIRQ_ENOMEM, VIRQ_MCA] {
            assert!(virq_is_global(v) && !virq_is_per_vcpu(v));
        }
        assert!(virq_is_per_domain(VIRQ_ARGO));
        assert!(!virq_is_global(NR_VIRQS));
        assert_eq!(EVTCHN_2L_NR_CHANNELS, 64 * 64);
    }
}
