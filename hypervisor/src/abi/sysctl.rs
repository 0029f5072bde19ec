//! `xen_sysctl` (public/sysctl.h), Xen 4.17 layouts (interface version 0x15).
//!
//! The 136-byte [`XenSysctl`] is an 8-byte header and a 128-byte payload union at
//! offset 8, moved in and out by value with [`XenSysctl::payload`] and
//! [`XenSysctl::set_payload`], like [`XenDomctl`](super::domctl::XenDomctl).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::domctl::{read_payload, write_payload};

/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x15;

/// `struct xen_sysctl` (136 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenSysctl {
    /// `XEN_SYSCTL_*` command.
    pub cmd: u32,
    /// Must equal [`XEN_SYSCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The payload union, as bytes.
    pub u: [u64; 16],
}

impl XenSysctl {
    /// A zeroed sysctl for `cmd`, with the 4.17 interface version set.
    #[must_use]
    pub fn new(cmd: u32) -> Self {
        XenSysctl {
            cmd,
            interface_version: XEN_SYSCTL_INTERFACE_VERSION,
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

/// Read the console ring.
pub const XEN_SYSCTL_READCONSOLE: u32 = 1;
/// Trace buffer control.
pub const XEN_SYSCTL_TBUF_OP: u32 = 2;
/// Host information ([`SysctlPhysinfo`]).
pub const XEN_SYSCTL_PHYSINFO: u32 = 3;
/// Scheduler id.
pub const XEN_SYSCTL_SCHED_ID: u32 = 4;
/// Performance counters.
pub const XEN_SYSCTL_PERFC_OP: u32 = 5;
/// A page of getdomaininfo records ([`SysctlGetDomainInfoList`]).
pub const XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6;
/// Inject debug keys.
pub const XEN_SYSCTL_DEBUG_KEYS: u32 = 7;
/// Per-CPU idle time.
pub const XEN_SYSCTL_GETCPUINFO: u32 = 8;
/// Free heap memory.
pub const XEN_SYSCTL_AVAILHEAP: u32 = 9;
/// Power-management statistics.
pub const XEN_SYSCTL_GET_PMSTAT: u32 = 10;
/// CPU online/offline.
pub const XEN_SYSCTL_CPU_HOTPLUG: u32 = 11;
/// Power-management control.
pub const XEN_SYSCTL_PM_OP: u32 = 12;
/// Take pages offline.
pub const XEN_SYSCTL_PAGE_OFFLINE_OP: u32 = 14;
/// Lock profiling.
pub const XEN_SYSCTL_LOCKPROF_OP: u32 = 15;
/// CPU topology.
pub const XEN_SYSCTL_CPUTOPOINFO: u32 = 16;
/// NUMA information.
pub const XEN_SYSCTL_NUMAINFO: u32 = 17;
/// CPU pool control.
pub const XEN_SYSCTL_CPUPOOL_OP: u32 = 18;
/// Scheduler-wide parameters.
pub const XEN_SYSCTL_SCHEDULER_OP: u32 = 19;
/// Coverage data.
pub const XEN_SYSCTL_COVERAGE_OP: u32 = 20;
/// Cache monitoring.
pub const XEN_SYSCTL_PSR_CMT_OP: u32 = 21;
/// PCI topology.
pub const XEN_SYSCTL_PCITOPOINFO: u32 = 22;
/// Cache/bandwidth allocation.
pub const XEN_SYSCTL_PSR_ALLOC: u32 = 23;
/// CPUID levelling capabilities (removed after 4.21).
pub const XEN_SYSCTL_GET_CPU_LEVELLING_CAPS: u32 = 25;
/// CPU featureset.
pub const XEN_SYSCTL_GET_CPU_FEATURESET: u32 = 26;
/// Live patching.
pub const XEN_SYSCTL_LIVEPATCH_OP: u32 = 27;
/// Host/max CPU policies.
pub const XEN_SYSCTL_GET_CPU_POLICY: u32 = 29;

/// `struct xen_sysctl_getdomaininfolist` (24 bytes). `buffer` points at an array of
/// [`DomctlGetDomainInfo`](super::domctl::DomctlGetDomainInfo) (112-byte stride).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SysctlGetDomainInfoList {
    /// Lowest domain id to report.
    pub first_domain: u16,
    /// Padding.
    pub pad: u16,
    /// Array capacity.
    pub max_domains: u32,
    /// Handle to the output array.
    pub buffer: u64,
    /// Out: entries written.
    pub num_domains: u32,
    /// Padding.
    pub pad2: u32,
}

/// PHYSCAP: HVM guests supported.
pub const XEN_SYSCTL_PHYSCAP_HVM: u32 = 1 << 0;
/// PHYSCAP: PV guests supported.
pub const XEN_SYSCTL_PHYSCAP_PV: u32 = 1 << 1;
/// PHYSCAP: direct I/O (IOMMU) available.
pub const XEN_SYSCTL_PHYSCAP_DIRECTIO: u32 = 1 << 2;
/// PHYSCAP: hardware-assisted paging available.
pub const XEN_SYSCTL_PHYSCAP_HAP: u32 = 1 << 3;
/// PHYSCAP: shadow paging available.
pub const XEN_SYSCTL_PHYSCAP_SHADOW: u32 = 1 << 4;
/// PHYSCAP: IOMMU can share HAP page tables.
pub const XEN_SYSCTL_PHYSCAP_IOMMU_HAP_PT_SHARE: u32 = 1 << 5;
/// PHYSCAP: processor trace available.
pub const XEN_SYSCTL_PHYSCAP_VMTRACE: u32 = 1 << 6;
/// PHYSCAP: virtual PMU available.
pub const XEN_SYSCTL_PHYSCAP_VPMU: u32 = 1 << 7;
/// PHYSCAP: grant tables v1 available.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V1: u32 = 1 << 8;
/// PHYSCAP: grant tables v2 available.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V2: u32 = 1 << 9;
/// The highest PHYSCAP bit.
pub const XEN_SYSCTL_PHYSCAP_MAX: u32 = XEN_SYSCTL_PHYSCAP_GNTTAB_V2;

/// `struct xen_sysctl_physinfo` (112 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SysctlPhysinfo {
    /// Hardware threads per core.
    pub threads_per_core: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// Online CPUs.
    pub nr_cpus: u32,
    /// Highest CPU id.
    pub max_cpu_id: u32,
    /// NUMA nodes.
    pub nr_nodes: u32,
    /// Highest node id.
    pub max_node_id: u32,
    /// CPU frequency in kHz.
    pub cpu_khz: u32,
    /// `XEN_SYSCTL_PHYSCAP_*`.
    pub capabilities: u32,
    /// Architecture capabilities (none defined on x86).
    pub arch_capabilities: u32,
    /// Padding.
    pub pad: u32,
    /// Total RAM pages.
    pub total_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages awaiting scrubbing.
    pub scrub_pages: u64,
    /// Claimed pages.
    pub outstanding_pages: u64,
    /// Highest MFN.
    pub max_mfn: u64,
    /// Hardware capability words (CPUID feature bits).
    pub hw_cap: [u32; 8],
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn header_layout() {
        assert_eq!(size_of::<XenSysctl>(), 136);
        assert_eq!(offset_of!(XenSysctl, interface_version), 4);
        assert_eq!(offset_of!(XenSysctl, u), 8);
    }

    #[test]
    fn getdomaininfolist_layout() {
        assert_eq!(size_of::<SysctlGetDomainInfoList>(), 24);
        assert_eq!(offset_of!(SysctlGetDomainInfoList, first_domain), 0);
        assert_eq!(offset_of!(SysctlGetDomainInfoList, max_domains), 4);
        assert_eq!(offset_of!(SysctlGetDomainInfoList, buffer), 8);
        assert_eq!(offset_of!(SysctlGetDomainInfoList, num_domains), 16);
    }

    #[test]
    fn physinfo_layout() {
        assert_eq!(size_of::<SysctlPhysinfo>(), 112);
        assert_eq!(offset_of!(SysctlPhysinfo, cores_per_socket), 4);
        assert_eq!(offset_of!(SysctlPhysinfo, nr_cpus), 8);
        assert_eq!(offset_of!(SysctlPhysinfo, max_cpu_id), 12);
        assert_eq!(offset_of!(SysctlPhysinfo, nr_nodes), 16);
        assert_eq!(offset_of!(SysctlPhysinfo, max_node_id), 20);
        assert_eq!(offset_of!(SysctlPhysinfo, cpu_khz), 24);
        assert_eq!(offset_of!(SysctlPhysinfo, capabilities), 28);
        assert_eq!(offset_of!(SysctlPhysinfo, arch_capabilities), 32);
        assert_eq!(offset_of!(SysctlPhysinfo, pad), 36);
        assert_eq!(offset_of!(SysctlPhysinfo, total_pages), 40);
        assert_eq!(offset_of!(SysctlPhysinfo, free_pages), 48);
        assert_eq!(offset_of!(SysctlPhysinfo, scrub_pages), 56);
        assert_eq!(offset_of!(SysctlPhysinfo, outstanding_pages), 64);
        assert_eq!(offset_of!(SysctlPhysinfo, max_mfn), 72);
        assert_eq!(offset_of!(SysctlPhysinfo, hw_cap), 80);
    }

    #[test]
    fn payload_round_trip_lands_at_offset_8() {
        let mut s = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
        assert_eq!(s.interface_version, XEN_SYSCTL_INTERFACE_VERSION);
        let l = SysctlGetDomainInfoList {
            first_domain: 3,
            max_domains: 10,
            buffer: 0x1000,
            ..Default::default()
        };
        s.set_payload(&l);
        assert_eq!(s.payload::<SysctlGetDomainInfoList>(), l);
        assert_eq!(&s.as_bytes()[8..8 + 24], l.as_bytes());
    }
}
