//! Domains and vCPUs: the per-domain state the model keeps besides memory.

use crate::cpu::Regs;
use crate::model::evtchn::EvtchnTable;
use crate::types::{DomId, Mfn, Port, VcpuId};

/// One entry of a vCPU's virtual trap table (`trap_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trap {
    /// Exception vector (redundant with the table index, kept as the guest gave it).
    pub vector: u8,
    /// DPL in bits 0-1; bit 2 = clear the event mask on entry.
    pub flags: u8,
    /// Code selector.
    pub cs: u16,
    /// Handler address.
    pub address: u64,
}

/// The PV-specific part of a vCPU's state (everything in `vcpu_guest_context` that is
/// not a general register).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvState {
    /// FXSAVE image.
    pub fpu: [u8; 512],
    /// `VGCF_*` flags as last set or reported.
    pub flags: u64,
    /// Virtual trap table, by vector.
    pub trap_table: Box<[Trap; 256]>,
    /// LDT base (linear address) and entry count.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// GDT frames (MFNs) and entry count.
    pub gdt_frames: [u64; 16],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Kernel stack selector for `stack_switch`.
    pub kernel_ss: u64,
    /// Kernel stack pointer for `stack_switch`.
    pub kernel_sp: u64,
    /// Kernel page-table root (the L4 in `ctrlreg[3]`); holds an L4 type reference.
    pub cr3: Option<Mfn>,
    /// User page-table root (`ctrlreg[1]`, NEW_USER_BASEPTR); holds an L4 type reference.
    pub user_cr3: Option<Mfn>,
    /// `cr2` of the last page fault.
    pub cr2: u64,
    /// Other control registers (cr0, cr4, …) as the guest last saw them.
    pub ctrlreg: [u64; 8],
    /// Debug registers.
    pub debugreg: [u64; 8],
    /// Event upcall entry.
    pub event_callback: u64,
    /// Failsafe callback entry.
    pub failsafe_callback: u64,
    /// syscall entry (guest user → guest kernel).
    pub syscall_callback: u64,
    /// `vm_assist` bitmap.
    pub vm_assist: u64,
    /// Kernel gs base.
    pub gs_base_kernel: u64,
    /// User gs base.
    pub gs_base_user: u64,
    /// True while the vCPU runs its kernel (as opposed to guest user mode).
    pub in_kernel: bool,
}

impl Default for PvState {
    fn default() -> Self {
        PvState {
            fpu: [0; 512],
            flags: 0,
            trap_table: Box::new([Trap::default(); 256]),
            ldt_base: 0,
            ldt_ents: 0,
            gdt_frames: [0; 16],
            gdt_ents: 0,
            kernel_ss: 0,
            kernel_sp: 0,
            cr3: None,
            user_cr3: None,
            cr2: 0,
            ctrlreg: [0; 8],
            debugreg: [0; 8],
            event_callback: 0,
            failsafe_callback: 0,
            syscall_callback: 0,
            vm_assist: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
            in_kernel: true,
        }
    }
}

/// `SCHEDOP_poll` state of a blocked vCPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollState {
    /// Ports polled.
    pub ports: Vec<Port>,
    /// Absolute virtual-time deadline, if any.
    pub deadline_ns: Option<u64>,
}

/// The `xen_domctl_ext_vcpucontext` fields a PV vCPU carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtContext {
    /// syscall32 callback (compat guests only; kept verbatim).
    pub syscall32_callback_eip: u64,
    /// sysenter callback.
    pub sysenter_callback_eip: u64,
    /// syscall32 callback cs.
    pub syscall32_callback_cs: u16,
    /// sysenter callback cs.
    pub sysenter_callback_cs: u16,
    /// syscall32 disables events.
    pub syscall32_disables_events: bool,
    /// sysenter disables events.
    pub sysenter_disables_events: bool,
}

/// One virtual CPU.
#[derive(Clone, Debug)]
pub struct Vcpu {
    /// Index within the domain.
    pub id: VcpuId,
    /// Has a context been set (setvcpucontext / boot)? `getvcpucontext` on an
    /// uninitialised vCPU fails with `ENODATA`.
    pub initialised: bool,
    /// Brought up (`VCPUOP_up`) and not taken down; only such vCPUs run.
    pub up: bool,
    /// Registers.
    pub regs: Regs,
    /// PV state.
    pub pv: PvState,
    /// Extended context.
    pub ext: ExtContext,
    /// Blocked in `SCHEDOP_block` until an event is pending.
    pub blocked: bool,
    /// Blocked in `SCHEDOP_poll`.
    pub poll: Option<PollState>,
    /// Singleshot timer deadline (virtual ns), if armed.
    pub timer_deadline_ns: Option<u64>,
    /// Virtual ns this vCPU has run.
    pub cpu_time_ns: u64,
    /// Retired instructions.
    pub instructions: u64,
}

impl Vcpu {
    /// A fresh, uninitialised, down vCPU.
    #[must_use]
    pub fn new(id: VcpuId) -> Self {
        Vcpu {
            id,
            initialised: false,
            up: false,
            regs: Regs::default(),
            pv: PvState::default(),
            ext: ExtContext::default(),
            blocked: false,
            poll: None,
            timer_deadline_ns: None,
            cpu_time_ns: 0,
            instructions: 0,
        }
    }
}

/// TSC configuration (`xen_domctl_tsc_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TscInfo {
    /// tsc_mode (0 default, 1 always emulate, 2 never emulate, 3 pvrdtscp).
    pub mode: u32,
    /// Guest TSC frequency in kHz.
    pub khz: u32,
    /// Incarnation: bumped every time the domain is restored/migrated.
    pub incarnation: u32,
    /// Offset added to host virtual ns to give the guest's elapsed ns.
    pub elapsed_offset_ns: i64,
}

/// One domain.
#[derive(Debug)]
pub struct Domain {
    /// Its id.
    pub id: DomId,
    /// The control domain (dom0) may map other domains' frames and use domctls.
    pub privileged: bool,
    /// UUID handle.
    pub handle: [u8; 16],
    /// XSM label.
    pub ssidref: u32,
    /// `XEN_DOMCTL_CDF_*` flags.
    pub cdf_flags: u32,
    /// `max_vcpus` from createdomain.
    pub max_vcpus: u32,
    /// vCPUs (created by `XEN_DOMCTL_max_vcpus`).
    pub vcpus: Vec<Vcpu>,
    /// Toolstack pause count (`pausedomain` nests).
    pub pause_count: u32,
    /// Being destroyed.
    pub dying: bool,
    /// Shutdown reason, once the domain has shut down.
    pub shutdown: Option<u32>,
    /// Reason latched by `SCHEDOP_shutdown_code`.
    pub shutdown_code: Option<u32>,
    /// The start_info MFN a guest passed with `SHUTDOWN_suspend` (rdx).
    pub suspend_start_info: Option<Mfn>,
    /// The shared_info frame (Xen-allocated, owned by the domain, not in its P2M).
    pub shared_info: Mfn,
    /// Event channels.
    pub evtchn: EvtchnTable,
    /// Guest address size (64 only).
    pub address_size: u32,
    /// TSC configuration.
    pub tsc: TscInfo,
    /// The grant table (shared frames).
    pub grant: crate::model::grant::GrantTable,
}

/// What `XEN_DOMCTL_createdomain` asks for, decoded from its 4.17 payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateDomain {
    /// Requested id: 1..0x7FEF exactly, or 0 / ≥ 0x7FF0 for "choose one".
    pub domid: u16,
    /// XSM label.
    pub ssidref: u32,
    /// UUID.
    pub handle: [u8; 16],
    /// `XEN_DOMCTL_CDF_*`.
    pub flags: u32,
    /// IOMMU options (must be 0 without CDF_iommu).
    pub iommu_opts: u32,
    /// Number of vCPUs `max_vcpus` must later confirm.
    pub max_vcpus: u32,
    /// Highest event channel port (0 means the 2-level maximum).
    pub max_evtchn_port: u32,
    /// Grant frames (<0: default).
    pub max_grant_frames: i32,
    /// Maptrack frames (<0: default).
    pub max_maptrack_frames: i32,
    /// Grant options: bits 0-3 = max grant version.
    pub grant_opts: u32,
    /// HVM only; must be 0 for PV.
    pub vmtrace_size: u32,
    /// CPU pool.
    pub cpupool_id: u32,
    /// `XEN_X86_EMU_*` flags (PV: 0 or PIT only).
    pub emulation_flags: u32,
    /// `XEN_X86_MSR_RELAXED` or 0.
    pub misc_flags: u32,
}

/// The most vCPUs a model domain may have (the legacy shared_info limit: vCPUs ≥ 32 need
/// `VCPUOP_register_vcpu_info`, which the model does not offer).
pub const MODEL_MAX_VCPUS: u32 = 32;

/// GDT frames a vCPU holds SegDesc references on.
pub(crate) fn held_gdt_frames(v: &Vcpu) -> Vec<Mfn> {
    let n = v.pv.gdt_ents.div_ceil(512) as usize;
    v.pv.gdt_frames
        .iter()
        .take(n.min(16))
        .map(|&f| Mfn::new(f))
        .collect()
}

/// `SHUTDOWN_suspend`.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// `VIRQ_DOM_EXC`.
pub const VIRQ_DOM_EXC: u32 = 3;
