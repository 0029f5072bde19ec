//! Hypercall numbers and the small per-hypercall ABIs that have no header of their
//! own here (public/xen.h, vcpu.h, callback.h): vcpu_op, callback_op, vm_assist,
//! update_va_mapping flags, set_segment_base, console_io.
//!
//! A 64-bit PV guest calls `hypercall_page + 32 * nr` with the number in `rax` and
//! arguments in rdi, rsi, rdx, r10, r8; the result comes back in `rax` (negative =
//! `-errno`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Load the virtual IDT (trap_info array).
pub const HYPERVISOR_SET_TRAP_TABLE: u64 = 0;
/// Batched page-table updates.
pub const HYPERVISOR_MMU_UPDATE: u64 = 1;
/// Load the GDT frames.
pub const HYPERVISOR_SET_GDT: u64 = 2;
/// Set the kernel stack (ss, sp).
pub const HYPERVISOR_STACK_SWITCH: u64 = 3;
/// Register event/failsafe/syscall entry points.
pub const HYPERVISOR_SET_CALLBACKS: u64 = 4;
/// Set or clear CR0.TS.
pub const HYPERVISOR_FPU_TASKSWITCH: u64 = 5;
/// Legacy sched_op `(cmd, ulong arg)`.
pub const HYPERVISOR_SCHED_OP_COMPAT: u64 = 6;
/// Platform operations (was dom0_op).
pub const HYPERVISOR_PLATFORM_OP: u64 = 7;
/// Write a debug register.
pub const HYPERVISOR_SET_DEBUGREG: u64 = 8;
/// Read a debug register.
pub const HYPERVISOR_GET_DEBUGREG: u64 = 9;
/// Write one GDT/LDT descriptor.
pub const HYPERVISOR_UPDATE_DESCRIPTOR: u64 = 10;
/// Memory reservation and physmap ops.
pub const HYPERVISOR_MEMORY_OP: u64 = 12;
/// A batch of hypercalls.
pub const HYPERVISOR_MULTICALL: u64 = 13;
/// Update the PTE mapping one virtual address.
pub const HYPERVISOR_UPDATE_VA_MAPPING: u64 = 14;
/// Set the singleshot timer (absolute ns).
pub const HYPERVISOR_SET_TIMER_OP: u64 = 15;
/// Legacy event_channel_op (one struct with the cmd inside).
pub const HYPERVISOR_EVENT_CHANNEL_OP_COMPAT: u64 = 16;
/// Version and feature queries.
pub const HYPERVISOR_XEN_VERSION: u64 = 17;
/// Xen console read/write.
pub const HYPERVISOR_CONSOLE_IO: u64 = 18;
/// Legacy physdev_op.
pub const HYPERVISOR_PHYSDEV_OP_COMPAT: u64 = 19;
/// Grant-table ops.
pub const HYPERVISOR_GRANT_TABLE_OP: u64 = 20;
/// Enable/disable VM assists.
pub const HYPERVISOR_VM_ASSIST: u64 = 21;
/// update_va_mapping in another domain.
pub const HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN: u64 = 22;
/// Return from a bounce frame (jump to it; it does not return).
pub const HYPERVISOR_IRET: u64 = 23;
/// Per-vcpu ops (`VCPUOP_*`).
pub const HYPERVISOR_VCPU_OP: u64 = 24;
/// Set FS/GS bases.
pub const HYPERVISOR_SET_SEGMENT_BASE: u64 = 25;
/// Extended MMU ops (pin, baseptr, flushes).
pub const HYPERVISOR_MMUEXT_OP: u64 = 26;
/// XSM/Flask ops.
pub const HYPERVISOR_XSM_OP: u64 = 27;
/// NMI callback registration.
pub const HYPERVISOR_NMI_OP: u64 = 28;
/// Scheduler ops (`SCHEDOP_*`).
pub const HYPERVISOR_SCHED_OP: u64 = 29;
/// Callback registration (`CALLBACKOP_*`).
pub const HYPERVISOR_CALLBACK_OP: u64 = 30;
/// Oprofile.
pub const HYPERVISOR_XENOPROF_OP: u64 = 31;
/// Event-channel ops (`EVTCHNOP_*`).
pub const HYPERVISOR_EVENT_CHANNEL_OP: u64 = 32;
/// Physical device ops.
pub const HYPERVISOR_PHYSDEV_OP: u64 = 33;
/// HVM ops.
pub const HYPERVISOR_HVM_OP: u64 = 34;
/// System control (toolstack).
pub const HYPERVISOR_SYSCTL: u64 = 35;
/// Domain control (toolstack).
pub const HYPERVISOR_DOMCTL: u64 = 36;
/// kexec.
pub const HYPERVISOR_KEXEC_OP: u64 = 37;
/// Transcendent memory (dead).
pub const HYPERVISOR_TMEM_OP: u64 = 38;
/// Argo inter-domain messaging.
pub const HYPERVISOR_ARGO_OP: u64 = 39;
/// PMU ops.
pub const HYPERVISOR_XENPMU_OP: u64 = 40;
/// Device-model ops.
pub const HYPERVISOR_DM_OP: u64 = 41;
/// Hypervisor filesystem.
pub const HYPERVISOR_HYPFS_OP: u64 = 42;
/// Architecture hypercall 0 (x86: machine-check ops).
pub const HYPERVISOR_ARCH_0: u64 = 48;
/// Architecture hypercall 1 (x86 4.17: shadow_op continuation, Xen-internal).
pub const HYPERVISOR_ARCH_1: u64 = 49;
/// Architecture hypercall 2.
pub const HYPERVISOR_ARCH_2: u64 = 50;
/// Architecture hypercall 3.
pub const HYPERVISOR_ARCH_3: u64 = 51;
/// Architecture hypercall 4.
pub const HYPERVISOR_ARCH_4: u64 = 52;
/// Architecture hypercall 5.
pub const HYPERVISOR_ARCH_5: u64 = 53;
/// Architecture hypercall 6.
pub const HYPERVISOR_ARCH_6: u64 = 54;
/// Architecture hypercall 7.
pub const HYPERVISOR_ARCH_7: u64 = 55;
/// x86 machine-check ops.
pub const HYPERVISOR_MCA: u64 = HYPERVISOR_ARCH_0;

/// Bytes per hypercall stub in the hypercall page.
pub const HYPERCALL_STUB_SIZE: u64 = 32;
/// Stubs in the (one 4 KiB) hypercall page.
pub const HYPERCALL_PAGE_STUBS: u64 = 128;

/// Xen's name for hypercall `nr` (as in `__HYPERVISOR_<name>`), or `None` if the
/// number is unassigned.
#[must_use]
pub fn hypercall_name(nr: u64) -> Option<&'static str> {
    Some(match nr {
        HYPERVISOR_SET_TRAP_TABLE => "set_trap_table",
        HYPERVISOR_MMU_UPDATE => "mmu_update",
        HYPERVISOR_SET_GDT => "set_gdt",
        HYPERVISOR_STACK_SWITCH => "stack_switch",
        HYPERVISOR_SET_CALLBACKS => "set_callbacks",
        HYPERVISOR_FPU_TASKSWITCH => "fpu_taskswitch",
        HYPERVISOR_SCHED_OP_COMPAT => "sched_op_compat",
        HYPERVISOR_PLATFORM_OP => "platform_op",
        HYPERVISOR_SET_DEBUGREG => "set_debugreg",
        HYPERVISOR_GET_DEBUGREG => "get_debugreg",
        HYPERVISOR_UPDATE_DESCRIPTOR => "update_descriptor",
        HYPERVISOR_MEMORY_OP => "memory_op",
        HYPERVISOR_MULTICALL => "multicall",
        HYPERVISOR_UPDATE_VA_MAPPING => "update_va_mapping",
        HYPERVISOR_SET_TIMER_OP => "set_timer_op",
        HYPERVISOR_EVENT_CHANNEL_OP_COMPAT => "event_channel_op_compat",
        HYPERVISOR_XEN_VERSION => "xen_version",
        HYPERVISOR_CONSOLE_IO => "console_io",
        HYPERVISOR_PHYSDEV_OP_COMPAT => "physdev_op_compat",
        HYPERVISOR_GRANT_TABLE_OP => "grant_table_op",
        HYPERVISOR_VM_ASSIST => "vm_assist",
        HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN => "update_va_mapping_otherdomain",
        HYPERVISOR_IRET => "iret",
        HYPERVISOR_VCPU_OP => "vcpu_op",
        HYPERVISOR_SET_SEGMENT_BASE => "set_segment_base",
        HYPERVISOR_MMUEXT_OP => "mmuext_op",
        HYPERVISOR_XSM_OP => "xsm_op",
        HYPERVISOR_NMI_OP => "nmi_op",
        HYPERVISOR_SCHED_OP => "sched_op",
        HYPERVISOR_CALLBACK_OP => "callback_op",
        HYPERVISOR_XENOPROF_OP => "xenoprof_op",
        HYPERVISOR_EVENT_CHANNEL_OP => "event_channel_op",
        HYPERVISOR_PHYSDEV_OP => "physdev_op",
        HYPERVISOR_HVM_OP => "hvm_op",
        HYPERVISOR_SYSCTL => "sysctl",
        HYPERVISOR_DOMCTL => "domctl",
        HYPERVISOR_KEXEC_OP => "kexec_op",
        HYPERVISOR_TMEM_OP => "tmem_op",
        HYPERVISOR_ARGO_OP => "argo_op",
        HYPERVISOR_XENPMU_OP => "xenpmu_op",
        HYPERVISOR_DM_OP => "dm_op",
        HYPERVISOR_HYPFS_OP => "hypfs_op",
        HYPERVISOR_ARCH_0 => "arch_0",
        HYPERVISOR_ARCH_1 => "arch_1",
        HYPERVISOR_ARCH_2 => "arch_2",
        HYPERVISOR_ARCH_3 => "arch_3",
        HYPERVISOR_ARCH_4 => "arch_4",
        HYPERVISOR_ARCH_5 => "arch_5",
        HYPERVISOR_ARCH_6 => "arch_6",
        HYPERVISOR_ARCH_7 => "arch_7",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------
// vcpu_op.

/// Load a vcpu's initial context (`vcpu_guest_context`).
pub const VCPUOP_INITIALISE: u64 = 0;
/// Bring a vcpu up.
pub const VCPUOP_UP: u64 = 1;
/// Take a vcpu down.
pub const VCPUOP_DOWN: u64 = 2;
/// Whether a vcpu is up (returns 0/1).
pub const VCPUOP_IS_UP: u64 = 3;
/// Read the runstate record.
pub const VCPUOP_GET_RUNSTATE_INFO: u64 = 4;
/// Register a guest area Xen keeps the runstate in.
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;
/// Start the periodic timer.
pub const VCPUOP_SET_PERIODIC_TIMER: u64 = 6;
/// Stop the periodic timer.
pub const VCPUOP_STOP_PERIODIC_TIMER: u64 = 7;
/// Arm the singleshot timer ([`VcpuSetSingleshotTimer`]).
pub const VCPUOP_SET_SINGLESHOT_TIMER: u64 = 8;
/// Disarm the singleshot timer.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u64 = 9;
/// Move vcpu_info out of shared_info.
pub const VCPUOP_REGISTER_VCPU_INFO: u64 = 10;
/// Send an NMI to a vcpu.
pub const VCPUOP_SEND_NMI: u64 = 11;
/// Physical CPU id (hardware domain).
pub const VCPUOP_GET_PHYSID: u64 = 12;
/// Register a secondary vcpu_time_info area.
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u64 = 13;

/// singleshot flag: fail with `-ETIME` if the timeout is already in the past.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `struct vcpu_set_singleshot_timer` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time in ns.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    /// Padding.
    pub pad: u32,
}

/// `struct vcpu_set_periodic_timer` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuSetPeriodicTimer {
    /// Period in ns.
    pub period_ns: u64,
}

/// `struct vcpu_register_vcpu_info` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuRegisterVcpuInfo {
    /// GFN of the page holding the new vcpu_info.
    pub mfn: u64,
    /// Offset in that page.
    pub offset: u32,
    /// Padding.
    pub rsvd: u32,
}

/// Runstate: running on a pCPU.
pub const RUNSTATE_RUNNING: u32 = 0;
/// Runstate: runnable, waiting for a pCPU.
pub const RUNSTATE_RUNNABLE: u32 = 1;
/// Runstate: blocked.
pub const RUNSTATE_BLOCKED: u32 = 2;
/// Runstate: offline or paused.
pub const RUNSTATE_OFFLINE: u32 = 3;

/// `struct vcpu_runstate_info` (48 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuRunstateInfo {
    /// `RUNSTATE_*`.
    pub state: u32,
    /// Padding.
    pub pad: u32,
    /// System time of the last state change.
    pub state_entry_time: u64,
    /// Time spent in each state, in ns.
    pub time: [u64; 4],
}

// ---------------------------------------------------------------------------------
// callback_op.

/// Register a callback ([`CallbackRegister`]).
pub const CALLBACKOP_REGISTER: u64 = 0;
/// Unregister a callback ([`CallbackUnregister`]).
pub const CALLBACKOP_UNREGISTER: u64 = 1;

/// Callback: event upcall.
pub const CALLBACKTYPE_EVENT: u32 = 0;
/// Callback: failsafe (segment reload failed).
pub const CALLBACKTYPE_FAILSAFE: u32 = 1;
/// Callback: 64-bit syscall from user mode.
pub const CALLBACKTYPE_SYSCALL: u32 = 2;
/// Callback: NMI.
pub const CALLBACKTYPE_NMI: u32 = 4;
/// Callback: 32-bit syscall from compat user mode.
pub const CALLBACKTYPE_SYSCALL32: u32 = 7;
/// Callback: sysenter from compat user mode.
pub const CALLBACKTYPE_SYSENTER: u32 = 8;

/// Callback flag: mask events while the callback runs.
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

/// `struct callback_register` for x86-64 (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CallbackRegister {
    /// `CALLBACKTYPE_*`.
    pub type_: u16,
    /// `CALLBACKF_*`.
    pub flags: u16,
    /// Padding.
    pub pad: u32,
    /// Entry point.
    pub address: u64,
}

/// `struct callback_unregister` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CallbackUnregister {
    /// `CALLBACKTYPE_*`.
    pub type_: u16,
    /// Padding.
    pub pad: u16,
}

// ---------------------------------------------------------------------------------
// vm_assist.

/// vm_assist cmd: enable an assist.
pub const VMASST_CMD_ENABLE: u64 = 0;
/// vm_assist cmd: disable an assist.
pub const VMASST_CMD_DISABLE: u64 = 1;
/// Assist: emulate 4 GiB segments (32-bit only).
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// Assist: notify on 4 GiB segment emulation.
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// Assist: writable page tables (trap-and-emulate PTE writes).
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// Assist: extended CR3 format (PAE).
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// Assist: architectural IOPL handling.
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// Assist: runstate update flag.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// Assist: hide the M2P from user mode.
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;
/// The assists a 64-bit PV guest may enable (Xen's `NATIVE_VM_ASSIST_VALID` for x86).
pub const VMASST_VALID_MASK_PV64: u64 = (1 << VMASST_TYPE_4GB_SEGMENTS)
    | (1 << VMASST_TYPE_4GB_SEGMENTS_NOTIFY)
    | (1 << VMASST_TYPE_WRITABLE_PAGETABLES)
    | (1 << VMASST_TYPE_PAE_EXTENDED_CR3)
    | (1 << VMASST_TYPE_ARCHITECTURAL_IOPL)
    | (1 << VMASST_TYPE_RUNSTATE_UPDATE_FLAG)
    | (1 << VMASST_TYPE_M2P_STRICT);

// ---------------------------------------------------------------------------------
// update_va_mapping flags.

/// UVMF: no flush.
pub const UVMF_NONE: u64 = 0;
/// UVMF: flush the whole TLB.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// UVMF: invalidate just the one address.
pub const UVMF_INVLPG: u64 = 2;
/// UVMF: mask of the flush type.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// UVMF: flush on this vcpu only.
pub const UVMF_LOCAL: u64 = 0;
/// UVMF: flush on every vcpu. (Neither LOCAL nor ALL: the rest of the flags word is a
/// pointer to a vcpu bitmap, "MULTI".)
pub const UVMF_ALL: u64 = 1 << 2;

// ---------------------------------------------------------------------------------
// set_segment_base.

/// set_segment_base: FS base.
pub const SEGBASE_FS: u64 = 0;
/// set_segment_base: user GS base.
pub const SEGBASE_GS_USER: u64 = 1;
/// set_segment_base: kernel GS base.
pub const SEGBASE_GS_KERNEL: u64 = 2;
/// set_segment_base: load the user GS selector (swapgs-wrapped).
pub const SEGBASE_GS_USER_SEL: u64 = 3;

// ---------------------------------------------------------------------------------
// console_io.

/// console_io: write `count` bytes from `buf`.
pub const CONSOLEIO_WRITE: u64 = 0;
/// console_io: read up to `count` bytes into `buf` (privileged).
pub const CONSOLEIO_READ: u64 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn numbers_and_names() {
        assert_eq!(hypercall_name(HYPERVISOR_DOMCTL), Some("domctl"));
        assert_eq!(hypercall_name(23), Some("iret"));
        assert_eq!(hypercall_name(11), None);
        assert_eq!(hypercall_name(43), None);
        assert_eq!(hypercall_name(55), Some("arch_7"));
        assert_eq!(hypercall_name(56), None);
        let named = (0..HYPERCALL_PAGE_STUBS)
            .filter(|&n| hypercall_name(n).is_some())
            .count();
        assert_eq!(named, 42 + 8);
        assert_eq!(HYPERCALL_STUB_SIZE * HYPERCALL_PAGE_STUBS, 4096);
        assert_eq!(VMASST_VALID_MASK_PV64, 0x1_0000_003f);
    }

    #[test]
    fn layouts() {
        assert_eq!(size_of::<VcpuSetSingleshotTimer>(), 16);
        assert_eq!(offset_of!(VcpuSetSingleshotTimer, flags), 8);
        assert_eq!(size_of::<VcpuSetPeriodicTimer>(), 8);
        assert_eq!(size_of::<VcpuRegisterVcpuInfo>(), 16);
        assert_eq!(offset_of!(VcpuRegisterVcpuInfo, offset), 8);
        assert_eq!(size_of::<VcpuRunstateInfo>(), 48);
        assert_eq!(offset_of!(VcpuRunstateInfo, state_entry_time), 8);
        assert_eq!(offset_of!(VcpuRunstateInfo, time), 16);
        assert_eq!(size_of::<CallbackRegister>(), 16);
        assert_eq!(offset_of!(CallbackRegister, flags), 2);
        assert_eq!(offset_of!(CallbackRegister, address), 8);
        assert_eq!(size_of::<CallbackUnregister>(), 4);
    }
}
