//! `xen_domctl` (public/domctl.h) with the payloads a PV save/restore toolstack uses,
//! in Xen 4.17's layouts (interface version 0x15).
//!
//! The 144-byte [`XenDomctl`] carries a 16-byte header and a 128-byte payload union,
//! kept here as `[u64; 16]`. Each payload is its own struct; [`XenDomctl::payload`] and
//! [`XenDomctl::set_payload`] move one in or out of the union by value, so no borrow of
//! the union is ever reinterpreted. Guest handles (pointers into the caller's memory)
//! are plain `u64` fields.
//!
//! Only one payload changed layout between 4.17 and the development head:
//! [`DomctlCreateDomain`] is 64 bytes here (4.19 grew it to 68).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17. Xen rejects any other value with
/// `-EACCES`.
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x15;

/// Size of the payload union inside [`XenDomctl`] and
/// [`XenSysctl`](super::sysctl::XenSysctl).
pub const PAYLOAD_BYTES: usize = 128;

/// `struct xen_domctl` (144 bytes): header plus a 128-byte payload union.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenDomctl {
    /// `XEN_DOMCTL_*` command.
    pub cmd: u32,
    /// Must equal [`XEN_DOMCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// Target domain (in/out for createdomain and getdomaininfo).
    pub domain: u16,
    /// Padding.
    pub pad: [u16; 3],
    /// The payload union, as bytes; use the payload structs to view it.
    pub u: [u64; 16],
}

impl XenDomctl {
    /// A zeroed domctl for `cmd` on `domain`, with the 4.17 interface version set.
    #[must_use]
    pub fn new(cmd: u32, domain: u16) -> Self {
        XenDomctl {
            cmd,
            interface_version: XEN_DOMCTL_INTERFACE_VERSION,
            domain,
            pad: [0; 3],
            u: [0; 16],
        }
    }

    /// Reads a payload struct from the start of the union. `T` must fit in 128 bytes
    /// (checked at compile time).
    #[must_use]
    pub fn payload<T: FromBytes + KnownLayout + Immutable>(&self) -> T {
        read_payload(&self.u)
    }

    /// Writes `v`'s bytes at the start of the union and leaves the rest unchanged. `T`
    /// must fit in 128 bytes (checked at compile time).
    pub fn set_payload<T: IntoBytes + Immutable>(&mut self, v: &T) {
        write_payload(&mut self.u, v);
    }
}

/// Copies a `T` out of the first bytes of a 128-byte payload union.
pub(crate) fn read_payload<T: FromBytes + KnownLayout + Immutable>(u: &[u64; 16]) -> T {
    const { assert!(core::mem::size_of::<T>() <= PAYLOAD_BYTES) };
    match T::read_from_prefix(u.as_bytes()) {
        Ok((v, _)) => v,
        // The size is checked above and `read_from_prefix` copies, so alignment does
        // not matter: this arm cannot be reached.
        Err(_) => unreachable!("payload larger than the union"),
    }
}

/// Copies `v`'s bytes over the first bytes of a 128-byte payload union.
pub(crate) fn write_payload<T: IntoBytes + Immutable>(u: &mut [u64; 16], v: &T) {
    const { assert!(core::mem::size_of::<T>() <= PAYLOAD_BYTES) };
    let src = v.as_bytes();
    u.as_mut_bytes()[..src.len()].copy_from_slice(src);
}

// ---------------------------------------------------------------------------------
// Command numbers (4.17).

/// Create a domain ([`DomctlCreateDomain`]).
pub const XEN_DOMCTL_CREATEDOMAIN: u32 = 1;
/// Destroy a domain (no payload).
pub const XEN_DOMCTL_DESTROYDOMAIN: u32 = 2;
/// Pause a domain (no payload).
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
/// Unpause a domain (no payload).
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// Domain information ([`DomctlGetDomainInfo`]); 4.17 returns the first domain ≥ id.
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
/// Set a vcpu's hard/soft affinity ([`DomctlVcpuAffinity`]).
pub const XEN_DOMCTL_SETVCPUAFFINITY: u32 = 9;
/// Paging/log-dirty control ([`DomctlShadowOp`]).
pub const XEN_DOMCTL_SHADOW_OP: u32 = 10;
/// Set the memory limit ([`DomctlMaxMem`]).
pub const XEN_DOMCTL_MAX_MEM: u32 = 11;
/// Load a vcpu's context ([`DomctlVcpuContext`]).
pub const XEN_DOMCTL_SETVCPUCONTEXT: u32 = 12;
/// Read a vcpu's context ([`DomctlVcpuContext`]).
pub const XEN_DOMCTL_GETVCPUCONTEXT: u32 = 13;
/// Vcpu run state ([`DomctlGetVcpuInfo`]).
pub const XEN_DOMCTL_GETVCPUINFO: u32 = 14;
/// Create the vcpus ([`DomctlMaxVcpus`]).
pub const XEN_DOMCTL_MAX_VCPUS: u32 = 15;
/// Scheduler parameters.
pub const XEN_DOMCTL_SCHEDULER_OP: u32 = 16;
/// Set the domain's UUID ([`DomctlSetDomainHandle`]).
pub const XEN_DOMCTL_SETDOMAINHANDLE: u32 = 17;
/// Enable/disable debugging.
pub const XEN_DOMCTL_SETDEBUGGING: u32 = 18;
/// Grant/revoke access to a physical IRQ.
pub const XEN_DOMCTL_IRQ_PERMISSION: u32 = 19;
/// Grant/revoke access to machine memory ranges.
pub const XEN_DOMCTL_IOMEM_PERMISSION: u32 = 20;
/// Grant/revoke access to I/O ports.
pub const XEN_DOMCTL_IOPORT_PERMISSION: u32 = 21;
/// Write the hypercall page into a guest frame.
pub const XEN_DOMCTL_HYPERCALL_INIT: u32 = 22;
/// Continue a soft reset.
pub const XEN_DOMCTL_SOFT_RESET_CONT: u32 = 23;
/// Set the wallclock offset ([`DomctlSetTimeOffset`]).
pub const XEN_DOMCTL_SETTIMEOFFSET: u32 = 24;
/// Read a vcpu's affinity ([`DomctlVcpuAffinity`]).
pub const XEN_DOMCTL_GETVCPUAFFINITY: u32 = 25;
/// Obsolete.
pub const XEN_DOMCTL_REAL_MODE_AREA: u32 = 26;
/// Resume a suspended domain (no payload).
pub const XEN_DOMCTL_RESUMEDOMAIN: u32 = 27;
/// Send a trigger (NMI, power button …).
pub const XEN_DOMCTL_SENDTRIGGER: u32 = 28;
/// Set the domain's suspend event channel.
pub const XEN_DOMCTL_SUBSCRIBE: u32 = 29;
/// Read HVM save records ([`DomctlHvmContext`]).
pub const XEN_DOMCTL_GETHVMCONTEXT: u32 = 33;
/// Load HVM save records ([`DomctlHvmContext`]).
pub const XEN_DOMCTL_SETHVMCONTEXT: u32 = 34;
/// Set the guest's address size ([`DomctlAddressSize`]).
pub const XEN_DOMCTL_SET_ADDRESS_SIZE: u32 = 35;
/// Read the guest's address size ([`DomctlAddressSize`]).
pub const XEN_DOMCTL_GET_ADDRESS_SIZE: u32 = 36;
/// Assign a passthrough device.
pub const XEN_DOMCTL_ASSIGN_DEVICE: u32 = 37;
/// Bind a passthrough IRQ.
pub const XEN_DOMCTL_BIND_PT_IRQ: u32 = 38;
/// Map machine memory into a guest.
pub const XEN_DOMCTL_MEMORY_MAPPING: u32 = 39;
/// Map I/O ports into a guest.
pub const XEN_DOMCTL_IOPORT_MAPPING: u32 = 40;
/// Load extended vcpu state ([`DomctlExtVcpuContext`]).
pub const XEN_DOMCTL_SET_EXT_VCPUCONTEXT: u32 = 42;
/// Read extended vcpu state ([`DomctlExtVcpuContext`]).
pub const XEN_DOMCTL_GET_EXT_VCPUCONTEXT: u32 = 43;
/// Obsolete.
pub const XEN_DOMCTL_SET_OPT_FEATURE: u32 = 44;
/// Test whether a device can be assigned.
pub const XEN_DOMCTL_TEST_ASSIGN_DEVICE: u32 = 45;
/// Make one domain the target of another (device-model stub domains).
pub const XEN_DOMCTL_SET_TARGET: u32 = 46;
/// Deassign a passthrough device.
pub const XEN_DOMCTL_DEASSIGN_DEVICE: u32 = 47;
/// Unbind a passthrough IRQ.
pub const XEN_DOMCTL_UNBIND_PT_IRQ: u32 = 48;
/// Devices sharing an IOMMU context.
pub const XEN_DOMCTL_GET_DEVICE_GROUP: u32 = 50;
/// Debugger single-step control.
pub const XEN_DOMCTL_DEBUG_OP: u32 = 54;
/// Read one HVM save record.
pub const XEN_DOMCTL_GETHVMCONTEXT_PARTIAL: u32 = 55;
/// vm_event ring control.
pub const XEN_DOMCTL_VM_EVENT_OP: u32 = 56;
/// Memory sharing control.
pub const XEN_DOMCTL_MEM_SHARING_OP: u32 = 57;
/// Read TSC mode and frequency ([`DomctlTscInfo`]).
pub const XEN_DOMCTL_GETTSCINFO: u32 = 59;
/// Set TSC mode and frequency ([`DomctlTscInfo`]).
pub const XEN_DOMCTL_SETTSCINFO: u32 = 60;
/// Page types of a batch of frames ([`DomctlGetPageFrameInfo3`]).
pub const XEN_DOMCTL_GETPAGEFRAMEINFO3: u32 = 61;
/// Load a vcpu's XSAVE state ([`DomctlVcpuExtState`]).
pub const XEN_DOMCTL_SETVCPUEXTSTATE: u32 = 62;
/// Read a vcpu's XSAVE state ([`DomctlVcpuExtState`]).
pub const XEN_DOMCTL_GETVCPUEXTSTATE: u32 = 63;
/// Require a vm_event listener for memory access.
pub const XEN_DOMCTL_SET_ACCESS_REQUIRED: u32 = 64;
/// Audit the p2m (debug builds).
pub const XEN_DOMCTL_AUDIT_P2M: u32 = 65;
/// Route a global VIRQ to this domain.
pub const XEN_DOMCTL_SET_VIRQ_HANDLER: u32 = 66;
/// Mark a broken page in the p2m.
pub const XEN_DOMCTL_SET_BROKEN_PAGE_P2M: u32 = 67;
/// Set NUMA node affinity.
pub const XEN_DOMCTL_SETNODEAFFINITY: u32 = 68;
/// Read NUMA node affinity.
pub const XEN_DOMCTL_GETNODEAFFINITY: u32 = 69;
/// Flush caches for a guest range.
pub const XEN_DOMCTL_CACHEFLUSH: u32 = 71;
/// Read PV vcpu MSRs ([`DomctlVcpuMsrs`]).
pub const XEN_DOMCTL_GET_VCPU_MSRS: u32 = 72;
/// Load PV vcpu MSRs ([`DomctlVcpuMsrs`]).
pub const XEN_DOMCTL_SET_VCPU_MSRS: u32 = 73;
/// Set virtual NUMA topology.
pub const XEN_DOMCTL_SETVNUMAINFO: u32 = 74;
/// Cache monitoring (PSR CMT).
pub const XEN_DOMCTL_PSR_CMT_OP: u32 = 75;
/// vm_event monitor control.
pub const XEN_DOMCTL_MONITOR_OP: u32 = 77;
/// Cache/bandwidth allocation (PSR).
pub const XEN_DOMCTL_PSR_ALLOC: u32 = 78;
/// Soft-reset a domain.
pub const XEN_DOMCTL_SOFT_RESET: u32 = 79;
/// Virtual UART control (Arm).
pub const XEN_DOMCTL_VUART_OP: u32 = 81;
/// Read the domain's CPUID/MSR policy ([`DomctlCpuPolicy`]).
pub const XEN_DOMCTL_GET_CPU_POLICY: u32 = 82;
/// Load the domain's CPUID/MSR policy ([`DomctlCpuPolicy`]).
pub const XEN_DOMCTL_SET_CPU_POLICY: u32 = 83;
/// Processor trace buffer control.
pub const XEN_DOMCTL_VMTRACE_OP: u32 = 84;
/// Read the paging pool size ([`DomctlPagingMempool`]).
pub const XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE: u32 = 85;
/// Set the paging pool size ([`DomctlPagingMempool`]).
pub const XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE: u32 = 86;
/// gdbsx: read/write guest memory.
pub const XEN_DOMCTL_GDBSX_GUESTMEMIO: u32 = 1000;
/// gdbsx: pause one vcpu.
pub const XEN_DOMCTL_GDBSX_PAUSEVCPU: u32 = 1001;
/// gdbsx: unpause one vcpu.
pub const XEN_DOMCTL_GDBSX_UNPAUSEVCPU: u32 = 1002;
/// gdbsx: domain status.
pub const XEN_DOMCTL_GDBSX_DOMSTATUS: u32 = 1003;

// ---------------------------------------------------------------------------------
// createdomain.

/// CDF: an HVM (rather than PV) domain.
pub const XEN_DOMCTL_CDF_HVM: u32 = 1 << 0;
/// CDF: use hardware-assisted paging (requires HVM).
pub const XEN_DOMCTL_CDF_HAP: u32 = 1 << 1;
/// CDF: S3 integrity checking (tboot).
pub const XEN_DOMCTL_CDF_S3_INTEGRITY: u32 = 1 << 2;
/// CDF: disable out-of-sync shadow page tables (Xen sets it itself for PV).
pub const XEN_DOMCTL_CDF_OOS_OFF: u32 = 1 << 3;
/// CDF: this is the xenstore domain.
pub const XEN_DOMCTL_CDF_XS_DOMAIN: u32 = 1 << 4;
/// CDF: the domain will use an IOMMU.
pub const XEN_DOMCTL_CDF_IOMMU: u32 = 1 << 5;
/// CDF: nested virtualisation (requires HAP).
pub const XEN_DOMCTL_CDF_NESTED_VIRT: u32 = 1 << 6;
/// CDF: virtual PMU.
pub const XEN_DOMCTL_CDF_VPMU: u32 = 1 << 7;
/// The highest CDF bit 4.17 knows; any bit above it is `-EINVAL`.
pub const XEN_DOMCTL_CDF_MAX: u32 = XEN_DOMCTL_CDF_VPMU;
/// Every CDF bit 4.17 accepts.
pub const XEN_DOMCTL_CDF_ALL: u32 = (XEN_DOMCTL_CDF_MAX << 1) - 1;

/// `iommu_opts` bit: do not share page tables between CPU and IOMMU.
pub const XEN_DOMCTL_IOMMU_NO_SHAREPT: u32 = 1 << 0;

/// `grant_opts` bits 0..3: the maximum grant-table version.
pub const XEN_DOMCTL_GRANT_VERSION_MASK: u32 = 0xf;

/// `grant_opts` value selecting grant-table version `v`.
#[must_use]
pub const fn xen_domctl_grant_version(v: u32) -> u32 {
    v & XEN_DOMCTL_GRANT_VERSION_MASK
}

/// Emulation flag: local APIC.
pub const XEN_X86_EMU_LAPIC: u32 = 1 << 0;
/// Emulation flag: HPET.
pub const XEN_X86_EMU_HPET: u32 = 1 << 1;
/// Emulation flag: ACPI PM timer.
pub const XEN_X86_EMU_PM: u32 = 1 << 2;
/// Emulation flag: RTC.
pub const XEN_X86_EMU_RTC: u32 = 1 << 3;
/// Emulation flag: IO-APIC.
pub const XEN_X86_EMU_IOAPIC: u32 = 1 << 4;
/// Emulation flag: legacy PIC.
pub const XEN_X86_EMU_PIC: u32 = 1 << 5;
/// Emulation flag: VGA.
pub const XEN_X86_EMU_VGA: u32 = 1 << 6;
/// Emulation flag: IOMMU.
pub const XEN_X86_EMU_IOMMU: u32 = 1 << 7;
/// Emulation flag: PIT (the only one a PV domain may set).
pub const XEN_X86_EMU_PIT: u32 = 1 << 8;
/// Emulation flag: PIRQ-based interrupt delivery.
pub const XEN_X86_EMU_USE_PIRQ: u32 = 1 << 9;
/// Emulation flag: virtual PCI (hardware domain).
pub const XEN_X86_EMU_VPCI: u32 = 1 << 10;
/// All emulation flags.
pub const XEN_X86_EMU_ALL: u32 = 0x7ff;

/// `misc_flags` bit: relaxed MSR access (the only bit 4.17 accepts).
pub const XEN_X86_MSR_RELAXED: u32 = 1 << 0;

/// `struct xen_arch_domainconfig` for x86 (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct ArchDomainConfig {
    /// `XEN_X86_EMU_*` bits.
    pub emulation_flags: u32,
    /// [`XEN_X86_MSR_RELAXED`] or 0.
    pub misc_flags: u32,
}

/// `struct xen_domctl_createdomain`, 4.17 layout (64 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlCreateDomain {
    /// XSM security label.
    pub ssidref: u32,
    /// The domain's UUID.
    pub handle: [u8; 16],
    /// `XEN_DOMCTL_CDF_*`.
    pub flags: u32,
    /// `XEN_DOMCTL_IOMMU_*`; must be 0 unless CDF_IOMMU is set.
    pub iommu_opts: u32,
    /// Number of vcpus (≥ 1).
    pub max_vcpus: u32,
    /// Highest event-channel port the domain may use.
    pub max_evtchn_port: u32,
    /// Grant-table frames; negative means the hypervisor default.
    pub max_grant_frames: i32,
    /// Maptrack frames; negative means the hypervisor default.
    pub max_maptrack_frames: i32,
    /// Bits 0..3: maximum grant version (1..); other bits must be 0.
    pub grant_opts: u32,
    /// Processor-trace buffer size (HVM only; 0 for PV).
    pub vmtrace_size: u32,
    /// CPU pool to place the domain in.
    pub cpupool_id: u32,
    /// Architecture configuration.
    pub arch: ArchDomainConfig,
}

// ---------------------------------------------------------------------------------
// getdomaininfo.

/// DOMINF: the domain is dying.
pub const XEN_DOMINF_DYING: u32 = 1 << 0;
/// DOMINF: an HVM guest.
pub const XEN_DOMINF_HVM_GUEST: u32 = 1 << 1;
/// DOMINF: the domain has shut down (reason in bits 16..23).
pub const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;
/// DOMINF: paused by the toolstack.
pub const XEN_DOMINF_PAUSED: u32 = 1 << 3;
/// DOMINF: every online vcpu is blocked.
pub const XEN_DOMINF_BLOCKED: u32 = 1 << 4;
/// DOMINF: some vcpu is running.
pub const XEN_DOMINF_RUNNING: u32 = 1 << 5;
/// DOMINF: being debugged.
pub const XEN_DOMINF_DEBUGGED: u32 = 1 << 6;
/// DOMINF: the xenstore domain.
pub const XEN_DOMINF_XS_DOMAIN: u32 = 1 << 7;
/// DOMINF: uses hardware-assisted paging.
pub const XEN_DOMINF_HAP: u32 = 1 << 8;
/// Shift of the shutdown reason (`SHUTDOWN_*`) inside the flags.
pub const XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16;
/// Mask of the shutdown reason after shifting.
pub const XEN_DOMINF_SHUTDOWNMASK: u32 = 0xff;

/// The shutdown reason stored in getdomaininfo `flags`.
#[must_use]
pub const fn xen_dominf_shutdown_reason(flags: u32) -> u32 {
    (flags >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK
}

/// `struct xen_domctl_getdomaininfo` (112 bytes); also the element type of sysctl
/// getdomaininfolist.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlGetDomainInfo {
    /// The domain described (4.17: may be larger than the id asked for).
    pub domain: u16,
    /// Padding.
    pub pad1: u16,
    /// `XEN_DOMINF_*` plus the shutdown reason.
    pub flags: u32,
    /// Pages currently allocated.
    pub tot_pages: u64,
    /// Page limit.
    pub max_pages: u64,
    /// Claimed but not yet allocated pages.
    pub outstanding_pages: u64,
    /// Pages shared with other domains.
    pub shr_pages: u64,
    /// Pages paged out.
    pub paged_pages: u64,
    /// MFN of the shared_info page.
    pub shared_info_frame: u64,
    /// CPU time used, in ns.
    pub cpu_time: u64,
    /// Online vcpus.
    pub nr_online_vcpus: u32,
    /// Highest vcpu id (`u32::MAX` with no vcpus).
    pub max_vcpu_id: u32,
    /// XSM security label.
    pub ssidref: u32,
    /// The domain's UUID.
    pub handle: [u8; 16],
    /// CPU pool.
    pub cpupool: u32,
    /// Guest physical address bits (x86: the host's HAP paddr bits).
    pub gpaddr_bits: u8,
    /// Padding.
    pub pad2: [u8; 7],
    /// Architecture configuration (x86 fills `emulation_flags` only).
    pub arch_config: ArchDomainConfig,
}

// ---------------------------------------------------------------------------------
// Small payloads.

/// `struct xen_domctl_max_mem` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlMaxMem {
    /// The limit in KiB (Xen keeps it as pages, `kb >> 2`).
    pub max_memkb: u64,
}

/// `struct xen_domctl_vcpucontext` (16 bytes), for set/getvcpucontext.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlVcpuContext {
    /// The vcpu.
    pub vcpu: u32,
    /// Padding.
    pub pad: u32,
    /// Handle to a `vcpu_guest_context` ([`VcpuGuestContext`](super::vcpu::VcpuGuestContext)).
    pub ctxt: u64,
}

/// `struct xen_domctl_max_vcpus` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlMaxVcpus {
    /// Must equal createdomain's `max_vcpus`.
    pub max: u32,
}

/// `struct xen_domctl_address_size` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlAddressSize {
    /// 32 or 64.
    pub size: u32,
}

/// `struct xen_domctl_setdomainhandle` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlSetDomainHandle {
    /// The new UUID.
    pub handle: [u8; 16],
}

/// `struct xen_domctl_settimeoffset` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlSetTimeOffset {
    /// Wallclock offset in seconds.
    pub time_offset_seconds: i64,
}

/// `struct xen_domctl_paging_mempool` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlPagingMempool {
    /// Pool size in bytes.
    pub size: u64,
}

/// `struct xen_domctl_hvmcontext` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlHvmContext {
    /// Buffer size in bytes (out: bytes needed/written).
    pub size: u32,
    /// Padding.
    pub pad: u32,
    /// Handle to the buffer.
    pub buffer: u64,
}

/// `struct xenctl_bitmap` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenctlBitmap {
    /// Handle to the bitmap bytes.
    pub bitmap: u64,
    /// Number of bits.
    pub nr_bits: u32,
    /// Padding.
    pub pad: u32,
}

/// vcpuaffinity flag: the hard affinity map is meaningful.
pub const XEN_VCPUAFFINITY_HARD: u32 = 1 << 0;
/// vcpuaffinity flag: the soft affinity map is meaningful.
pub const XEN_VCPUAFFINITY_SOFT: u32 = 1 << 1;
/// vcpuaffinity flag: force the change.
pub const XEN_VCPUAFFINITY_FORCE: u32 = 1 << 2;

/// `struct xen_domctl_vcpuaffinity` (40 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlVcpuAffinity {
    /// The vcpu.
    pub vcpu: u32,
    /// `XEN_VCPUAFFINITY_*`.
    pub flags: u32,
    /// Hard affinity.
    pub cpumap_hard: XenctlBitmap,
    /// Soft affinity.
    pub cpumap_soft: XenctlBitmap,
}

// ---------------------------------------------------------------------------------
// shadow_op.

/// shadow_op: turn paging assistance off.
pub const XEN_DOMCTL_SHADOW_OP_OFF: u32 = 0;
/// shadow_op: enable shadow paging in test mode.
pub const XEN_DOMCTL_SHADOW_OP_ENABLE_TEST: u32 = 1;
/// shadow_op: enable log-dirty mode.
pub const XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY: u32 = 2;
/// shadow_op: copy the dirty bitmap out, then clear it and the stats.
pub const XEN_DOMCTL_SHADOW_OP_CLEAN: u32 = 11;
/// shadow_op: copy the dirty bitmap out and leave it alone.
pub const XEN_DOMCTL_SHADOW_OP_PEEK: u32 = 12;
/// shadow_op: read the paging pool size in MiB (deprecated).
pub const XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION: u32 = 30;
/// shadow_op: set the paging pool size in MiB (deprecated).
pub const XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION: u32 = 31;
/// shadow_op: enable with the `XEN_DOMCTL_SHADOW_ENABLE_*` mode bits.
pub const XEN_DOMCTL_SHADOW_OP_ENABLE: u32 = 32;
/// ENABLE mode: Xen does reference counting.
pub const XEN_DOMCTL_SHADOW_ENABLE_REFCOUNT: u32 = 1 << 1;
/// ENABLE mode: log-dirty.
pub const XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY: u32 = 1 << 2;
/// ENABLE mode: translated (p2m) guest.
pub const XEN_DOMCTL_SHADOW_ENABLE_TRANSLATE: u32 = 1 << 3;
/// ENABLE mode: external (HVM-style) page tables.
pub const XEN_DOMCTL_SHADOW_ENABLE_EXTERNAL: u32 = 1 << 4;
/// CLEAN/PEEK mode: this is the final pass of a live migration.
pub const XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL: u32 = 1 << 0;

/// `struct xen_domctl_shadow_op_stats` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct ShadowOpStats {
    /// Faults since the last CLEAN.
    pub fault_count: u32,
    /// Pages dirtied since the last CLEAN.
    pub dirty_count: u32,
}

/// `struct xen_domctl_shadow_op` (40 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlShadowOp {
    /// `XEN_DOMCTL_SHADOW_OP_*`.
    pub op: u32,
    /// Mode bits (ENABLE or CLEAN/PEEK).
    pub mode: u32,
    /// Pool size in MiB (GET/SET_ALLOCATION).
    pub mb: u32,
    /// Padding.
    pub pad: u32,
    /// Handle to the dirty bitmap (one bit per PFN, LSB first).
    pub dirty_bitmap: u64,
    /// In: bitmap size in bits; out: bits actually written.
    pub pages: u64,
    /// Fault and dirty counts.
    pub stats: ShadowOpStats,
}

// ---------------------------------------------------------------------------------
// getpageframeinfo3.

/// PFINFO: not a page table.
pub const XEN_DOMCTL_PFINFO_NOTAB: u32 = 0x0 << 28;
/// PFINFO: an L1 page table.
pub const XEN_DOMCTL_PFINFO_L1TAB: u32 = 0x1 << 28;
/// PFINFO: an L2 page table.
pub const XEN_DOMCTL_PFINFO_L2TAB: u32 = 0x2 << 28;
/// PFINFO: an L3 page table.
pub const XEN_DOMCTL_PFINFO_L3TAB: u32 = 0x3 << 28;
/// PFINFO: an L4 page table.
pub const XEN_DOMCTL_PFINFO_L4TAB: u32 = 0x4 << 28;
/// PFINFO: the page-table type field.
pub const XEN_DOMCTL_PFINFO_LTABTYPE_MASK: u32 = 0x7 << 28;
/// PFINFO: the table is pinned.
pub const XEN_DOMCTL_PFINFO_LPINTAB: u32 = 0x1 << 31;
/// PFINFO: a broken (bad memory) page.
pub const XEN_DOMCTL_PFINFO_BROKEN: u32 = 0xd << 28;
/// PFINFO: allocate-only (populated on restore, contents not sent).
pub const XEN_DOMCTL_PFINFO_XALLOC: u32 = 0xe << 28;
/// PFINFO: invalid page.
pub const XEN_DOMCTL_PFINFO_XTAB: u32 = 0xf << 28;
/// PFINFO: the whole type field (bits 28..31).
pub const XEN_DOMCTL_PFINFO_LTAB_MASK: u32 = 0xf << 28;
/// PFINFO: shift of the type field.
pub const XEN_DOMCTL_PFINFO_LTAB_SHIFT: u32 = 28;

/// `struct xen_domctl_getpageframeinfo3` (16 bytes). Each array entry (a PFN in) is
/// overwritten with its `XEN_DOMCTL_PFINFO_*` type word.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlGetPageFrameInfo3 {
    /// Number of entries (at most 1024).
    pub num: u64,
    /// Handle to the `xen_pfn_t` array.
    pub array: u64,
}

// ---------------------------------------------------------------------------------
// TSC.

/// TSC mode: Xen chooses (emulate only when needed).
pub const XEN_CPUID_TSC_MODE_DEFAULT: u32 = 0;
/// TSC mode: always emulate rdtsc.
pub const XEN_CPUID_TSC_MODE_ALWAYS_EMULATE: u32 = 1;
/// TSC mode: never emulate rdtsc.
pub const XEN_CPUID_TSC_MODE_NEVER_EMULATE: u32 = 2;
/// TSC mode: PV rdtscp (historic; not accepted by current Xen).
pub const XEN_CPUID_TSC_MODE_PVRDTSCP: u32 = 3;

/// `struct xen_domctl_tsc_info` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlTscInfo {
    /// `XEN_CPUID_TSC_MODE_*`.
    pub tsc_mode: u32,
    /// Guest TSC frequency in kHz.
    pub gtsc_khz: u32,
    /// Incremented on each migration.
    pub incarnation: u32,
    /// Padding.
    pub pad: u32,
    /// Elapsed time in ns.
    pub elapsed_nsec: u64,
}

// ---------------------------------------------------------------------------------
// Extended vcpu state.

/// `struct xen_domctl_vcpuextstate` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlVcpuExtState {
    /// The vcpu.
    pub vcpu: u32,
    /// Padding.
    pub pad: u32,
    /// XCR0 feature mask.
    pub xfeature_mask: u64,
    /// Buffer size in bytes (0 on input queries the size).
    pub size: u64,
    /// Handle to the XSAVE area buffer.
    pub buffer: u64,
}

/// `struct hvm_vmce_vcpu` (32 bytes): the vMCE state inside ext_vcpucontext.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct HvmVmceVcpu {
    /// MCG_CAP.
    pub caps: u64,
    /// MCi_CTL2 of bank 0.
    pub mci_ctl2_bank0: u64,
    /// MCi_CTL2 of bank 1.
    pub mci_ctl2_bank1: u64,
    /// MCG_EXT_CTL.
    pub mcg_ext_ctl: u64,
}

/// `struct xen_domctl_ext_vcpucontext` (64 bytes). The C union of `mcg_cap` and
/// `vmce` is represented by `vmce` (`mcg_cap` aliases `vmce.caps`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlExtVcpuContext {
    /// The vcpu.
    pub vcpu: u32,
    /// Bytes valid (in for set, out for get; at most 128).
    pub size: u32,
    /// 32-bit syscall entry point.
    pub syscall32_callback_eip: u64,
    /// sysenter entry point.
    pub sysenter_callback_eip: u64,
    /// 32-bit syscall code selector.
    pub syscall32_callback_cs: u16,
    /// sysenter code selector.
    pub sysenter_callback_cs: u16,
    /// Whether 32-bit syscall masks events.
    pub syscall32_disables_events: u8,
    /// Whether sysenter masks events.
    pub sysenter_disables_events: u8,
    /// Padding.
    pub pad: [u8; 2],
    /// vMCE state.
    pub vmce: HvmVmceVcpu,
}

/// `struct xen_domctl_vcpu_msr` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuMsr {
    /// MSR index.
    pub index: u32,
    /// Must be 0.
    pub reserved: u32,
    /// MSR value.
    pub value: u64,
}

/// `struct xen_domctl_vcpu_msrs` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlVcpuMsrs {
    /// The vcpu.
    pub vcpu: u32,
    /// In: array size; out: entries used (or needed).
    pub msr_count: u32,
    /// Handle to a [`VcpuMsr`] array (NULL queries the maximum count).
    pub msrs: u64,
}

/// `struct xen_domctl_getvcpuinfo` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlGetVcpuInfo {
    /// The vcpu (in).
    pub vcpu: u32,
    /// Online (out).
    pub online: u8,
    /// Blocked (out).
    pub blocked: u8,
    /// Running (out).
    pub running: u8,
    /// Padding.
    pub pad: u8,
    /// Time spent running, in ns.
    pub cpu_time: u64,
    /// Physical CPU it is on.
    pub cpu: u32,
    /// Padding.
    pub pad2: u32,
}

/// `xen_cpuid_leaf_t` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CpuidLeaf {
    /// Leaf (EAX input).
    pub leaf: u32,
    /// Subleaf (ECX input), `XEN_CPUID_NO_SUBLEAF` if none.
    pub subleaf: u32,
    /// EAX.
    pub a: u32,
    /// EBX.
    pub b: u32,
    /// ECX.
    pub c: u32,
    /// EDX.
    pub d: u32,
}

/// `subleaf` value of a CPUID leaf that has no subleaves.
pub const XEN_CPUID_NO_SUBLEAF: u32 = 0xffff_ffff;

/// `xen_msr_entry_t` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MsrEntry {
    /// MSR index.
    pub idx: u32,
    /// Must be 0.
    pub flags: u32,
    /// MSR value.
    pub val: u64,
}

/// `struct xen_domctl_cpu_policy` (40 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlCpuPolicy {
    /// In: array size; out: leaves used.
    pub nr_leaves: u32,
    /// In: array size; out: MSRs used.
    pub nr_msrs: u32,
    /// Handle to a [`CpuidLeaf`] array.
    pub leaves: u64,
    /// Handle to an [`MsrEntry`] array.
    pub msrs: u64,
    /// On a set failure: the offending leaf.
    pub err_leaf: u32,
    /// On a set failure: the offending subleaf.
    pub err_subleaf: u32,
    /// On a set failure: the offending MSR.
    pub err_msr: u32,
    /// Padding.
    pub pad: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn header_layout() {
        assert_eq!(size_of::<XenDomctl>(), 144);
        assert_eq!(offset_of!(XenDomctl, cmd), 0);
        assert_eq!(offset_of!(XenDomctl, interface_version), 4);
        assert_eq!(offset_of!(XenDomctl, domain), 8);
        assert_eq!(offset_of!(XenDomctl, u), 16);
    }

    #[test]
    fn createdomain_layout() {
        assert_eq!(size_of::<ArchDomainConfig>(), 8);
        assert_eq!(offset_of!(ArchDomainConfig, misc_flags), 4);
        assert_eq!(size_of::<DomctlCreateDomain>(), 64);
        assert_eq!(core::mem::align_of::<DomctlCreateDomain>(), 4);
        assert_eq!(offset_of!(DomctlCreateDomain, ssidref), 0);
        assert_eq!(offset_of!(DomctlCreateDomain, handle), 4);
        assert_eq!(offset_of!(DomctlCreateDomain, flags), 20);
        assert_eq!(offset_of!(DomctlCreateDomain, iommu_opts), 24);
        assert_eq!(offset_of!(DomctlCreateDomain, max_vcpus), 28);
        assert_eq!(offset_of!(DomctlCreateDomain, max_evtchn_port), 32);
        assert_eq!(offset_of!(DomctlCreateDomain, max_grant_frames), 36);
        assert_eq!(offset_of!(DomctlCreateDomain, max_maptrack_frames), 40);
        assert_eq!(offset_of!(DomctlCreateDomain, grant_opts), 44);
        assert_eq!(offset_of!(DomctlCreateDomain, vmtrace_size), 48);
        assert_eq!(offset_of!(DomctlCreateDomain, cpupool_id), 52);
        assert_eq!(offset_of!(DomctlCreateDomain, arch), 56);
        assert_eq!(XEN_DOMCTL_CDF_ALL, 0xff);
    }

    #[test]
    fn getdomaininfo_layout() {
        assert_eq!(size_of::<DomctlGetDomainInfo>(), 112);
        assert_eq!(offset_of!(DomctlGetDomainInfo, domain), 0);
        assert_eq!(offset_of!(DomctlGetDomainInfo, flags), 4);
        assert_eq!(offset_of!(DomctlGetDomainInfo, tot_pages), 8);
        assert_eq!(offset_of!(DomctlGetDomainInfo, max_pages), 16);
        assert_eq!(offset_of!(DomctlGetDomainInfo, outstanding_pages), 24);
        assert_eq!(offset_of!(DomctlGetDomainInfo, shr_pages), 32);
        assert_eq!(offset_of!(DomctlGetDomainInfo, paged_pages), 40);
        assert_eq!(offset_of!(DomctlGetDomainInfo, shared_info_frame), 48);
        assert_eq!(offset_of!(DomctlGetDomainInfo, cpu_time), 56);
        assert_eq!(offset_of!(DomctlGetDomainInfo, nr_online_vcpus), 64);
        assert_eq!(offset_of!(DomctlGetDomainInfo, max_vcpu_id), 68);
        assert_eq!(offset_of!(DomctlGetDomainInfo, ssidref), 72);
        assert_eq!(offset_of!(DomctlGetDomainInfo, handle), 76);
        assert_eq!(offset_of!(DomctlGetDomainInfo, cpupool), 92);
        assert_eq!(offset_of!(DomctlGetDomainInfo, gpaddr_bits), 96);
        assert_eq!(offset_of!(DomctlGetDomainInfo, pad2), 97);
        assert_eq!(offset_of!(DomctlGetDomainInfo, arch_config), 104);
        assert_eq!(
            xen_dominf_shutdown_reason(XEN_DOMINF_SHUTDOWN | (3 << 16)),
            3
        );
    }

    #[test]
    fn small_payload_layouts() {
        assert_eq!(size_of::<DomctlMaxMem>(), 8);
        assert_eq!(size_of::<DomctlVcpuContext>(), 16);
        assert_eq!(offset_of!(DomctlVcpuContext, ctxt), 8);
        assert_eq!(size_of::<DomctlMaxVcpus>(), 4);
        assert_eq!(size_of::<DomctlAddressSize>(), 4);
        assert_eq!(size_of::<DomctlSetDomainHandle>(), 16);
        assert_eq!(size_of::<DomctlSetTimeOffset>(), 8);
        assert_eq!(size_of::<DomctlPagingMempool>(), 8);
        assert_eq!(size_of::<DomctlHvmContext>(), 16);
        assert_eq!(offset_of!(DomctlHvmContext, buffer), 8);
        assert_eq!(size_of::<XenctlBitmap>(), 16);
        assert_eq!(offset_of!(XenctlBitmap, nr_bits), 8);
        assert_eq!(size_of::<DomctlVcpuAffinity>(), 40);
        assert_eq!(offset_of!(DomctlVcpuAffinity, flags), 4);
        assert_eq!(offset_of!(DomctlVcpuAffinity, cpumap_hard), 8);
        assert_eq!(offset_of!(DomctlVcpuAffinity, cpumap_soft), 24);
    }

    #[test]
    fn shadow_op_layout() {
        assert_eq!(size_of::<ShadowOpStats>(), 8);
        assert_eq!(offset_of!(ShadowOpStats, dirty_count), 4);
        assert_eq!(size_of::<DomctlShadowOp>(), 40);
        assert_eq!(offset_of!(DomctlShadowOp, op), 0);
        assert_eq!(offset_of!(DomctlShadowOp, mode), 4);
        assert_eq!(offset_of!(DomctlShadowOp, mb), 8);
        assert_eq!(offset_of!(DomctlShadowOp, dirty_bitmap), 16);
        assert_eq!(offset_of!(DomctlShadowOp, pages), 24);
        assert_eq!(offset_of!(DomctlShadowOp, stats), 32);
    }

    #[test]
    fn pfinfo_and_misc_layouts() {
        assert_eq!(size_of::<DomctlGetPageFrameInfo3>(), 16);
        assert_eq!(offset_of!(DomctlGetPageFrameInfo3, array), 8);
        assert_eq!(XEN_DOMCTL_PFINFO_LPINTAB, 0x8000_0000);
        assert_eq!(XEN_DOMCTL_PFINFO_XTAB, 0xf000_0000);
        assert_eq!(XEN_DOMCTL_PFINFO_LTAB_MASK, 0xf000_0000);
        assert_eq!(XEN_DOMCTL_PFINFO_BROKEN, 0xd000_0000);
        assert_eq!(XEN_DOMCTL_PFINFO_XALLOC, 0xe000_0000);
        assert_eq!(XEN_DOMCTL_PFINFO_L4TAB >> XEN_DOMCTL_PFINFO_LTAB_SHIFT, 4);

        assert_eq!(size_of::<DomctlTscInfo>(), 24);
        assert_eq!(offset_of!(DomctlTscInfo, gtsc_khz), 4);
        assert_eq!(offset_of!(DomctlTscInfo, incarnation), 8);
        assert_eq!(offset_of!(DomctlTscInfo, pad), 12);
        assert_eq!(offset_of!(DomctlTscInfo, elapsed_nsec), 16);

        assert_eq!(size_of::<DomctlVcpuExtState>(), 32);
        assert_eq!(offset_of!(DomctlVcpuExtState, xfeature_mask), 8);
        assert_eq!(offset_of!(DomctlVcpuExtState, size), 16);
        assert_eq!(offset_of!(DomctlVcpuExtState, buffer), 24);
    }

    #[test]
    fn ext_vcpucontext_layout() {
        assert_eq!(size_of::<HvmVmceVcpu>(), 32);
        assert_eq!(offset_of!(HvmVmceVcpu, caps), 0);
        assert_eq!(offset_of!(HvmVmceVcpu, mci_ctl2_bank0), 8);
        assert_eq!(offset_of!(HvmVmceVcpu, mci_ctl2_bank1), 16);
        assert_eq!(offset_of!(HvmVmceVcpu, mcg_ext_ctl), 24);
        assert_eq!(size_of::<DomctlExtVcpuContext>(), 64);
        assert_eq!(offset_of!(DomctlExtVcpuContext, size), 4);
        assert_eq!(offset_of!(DomctlExtVcpuContext, syscall32_callback_eip), 8);
        assert_eq!(offset_of!(DomctlExtVcpuContext, sysenter_callback_eip), 16);
        assert_eq!(offset_of!(DomctlExtVcpuContext, syscall32_callback_cs), 24);
        assert_eq!(offset_of!(DomctlExtVcpuContext, sysenter_callback_cs), 26);
        assert_eq!(
            offset_of!(DomctlExtVcpuContext, syscall32_disables_events),
            28
        );
        assert_eq!(
            offset_of!(DomctlExtVcpuContext, sysenter_disables_events),
            29
        );
        assert_eq!(offset_of!(DomctlExtVcpuContext, vmce), 32);
    }

    #[test]
    fn msr_vcpuinfo_policy_layouts() {
        assert_eq!(size_of::<VcpuMsr>(), 16);
        assert_eq!(offset_of!(VcpuMsr, reserved), 4);
        assert_eq!(offset_of!(VcpuMsr, value), 8);
        assert_eq!(size_of::<DomctlVcpuMsrs>(), 16);
        assert_eq!(offset_of!(DomctlVcpuMsrs, msr_count), 4);
        assert_eq!(offset_of!(DomctlVcpuMsrs, msrs), 8);

        assert_eq!(size_of::<DomctlGetVcpuInfo>(), 24);
        assert_eq!(offset_of!(DomctlGetVcpuInfo, online), 4);
        assert_eq!(offset_of!(DomctlGetVcpuInfo, blocked), 5);
        assert_eq!(offset_of!(DomctlGetVcpuInfo, running), 6);
        assert_eq!(offset_of!(DomctlGetVcpuInfo, cpu_time), 8);
        assert_eq!(offset_of!(DomctlGetVcpuInfo, cpu), 16);

        assert_eq!(size_of::<CpuidLeaf>(), 24);
        assert_eq!(core::mem::align_of::<CpuidLeaf>(), 4);
        assert_eq!(offset_of!(CpuidLeaf, d), 20);
        assert_eq!(size_of::<MsrEntry>(), 16);
        assert_eq!(offset_of!(MsrEntry, flags), 4);
        assert_eq!(offset_of!(MsrEntry, val), 8);

        assert_eq!(size_of::<DomctlCpuPolicy>(), 40);
        assert_eq!(offset_of!(DomctlCpuPolicy, nr_msrs), 4);
        assert_eq!(offset_of!(DomctlCpuPolicy, leaves), 8);
        assert_eq!(offset_of!(DomctlCpuPolicy, msrs), 16);
        assert_eq!(offset_of!(DomctlCpuPolicy, err_leaf), 24);
        assert_eq!(offset_of!(DomctlCpuPolicy, err_subleaf), 28);
        assert_eq!(offset_of!(DomctlCpuPolicy, err_msr), 32);
    }

    #[test]
    fn payload_round_trip_lands_at_offset_16() {
        let mut d = XenDomctl::new(XEN_DOMCTL_CREATEDOMAIN, 0x7ff0);
        assert_eq!(d.interface_version, XEN_DOMCTL_INTERFACE_VERSION);
        assert_eq!(d.u, [0; 16]);
        // Something past the payload must survive set_payload.
        d.u[15] = 0xdead_beef;
        let cd = DomctlCreateDomain {
            ssidref: 0x1122_3344,
            handle: *b"0123456789abcdef",
            flags: XEN_DOMCTL_CDF_OOS_OFF,
            max_vcpus: 2,
            max_evtchn_port: 1023,
            max_grant_frames: -1,
            max_maptrack_frames: -1,
            grant_opts: xen_domctl_grant_version(1),
            arch: ArchDomainConfig {
                emulation_flags: XEN_X86_EMU_PIT,
                misc_flags: 0,
            },
            ..Default::default()
        };
        d.set_payload(&cd);
        assert_eq!(d.payload::<DomctlCreateDomain>(), cd);
        assert_eq!(d.u[15], 0xdead_beef);

        let bytes = d.as_bytes();
        assert_eq!(&bytes[16..16 + 64], cd.as_bytes());
        assert_eq!(&bytes[16..20], &0x1122_3344u32.to_le_bytes());
        assert_eq!(&bytes[16 + 56..16 + 60], &XEN_X86_EMU_PIT.to_le_bytes());
        assert_eq!(&bytes[8..10], &0x7ff0u16.to_le_bytes());

        // A smaller payload only overwrites its own bytes.
        d.set_payload(&DomctlMaxVcpus { max: 7 });
        assert_eq!(d.payload::<DomctlMaxVcpus>().max, 7);
        assert_eq!(d.payload::<DomctlCreateDomain>().handle, cd.handle);
    }
}
