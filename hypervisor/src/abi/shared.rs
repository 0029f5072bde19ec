//! The pages Xen shares with a PV guest (public/xen.h, arch-x86/xen.h,
//! arch-x86/xen-x86_64.h): `shared_info`, `vcpu_info`, `vcpu_time_info` and
//! `start_info`, x86-64 layouts (identical in 4.17 and the development head).
//!
//! shared_info holds the first [`XEN_LEGACY_MAX_VCPUS`] vcpu_info slots, the 2-level
//! event-channel bitmaps, the wallclock and the p2m pointers the toolstack reads on
//! save. start_info is what `rsi` points at when a PV kernel starts.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Number of vcpu_info slots inside shared_info.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// vcpu_time_info flag: the TSC is stable across CPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// vcpu_time_info flag: the guest was stopped (by the toolstack).
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_time_info` (32 bytes). `version` is a seqlock: odd while Xen updates
/// the record. Time in ns = `system_time + ((tsc - tsc_timestamp) << tsc_shift) *
/// tsc_to_system_mul >> 32`, a negative shift meaning a right shift.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuTimeInfo {
    /// Update counter (odd = update in progress).
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// System time (ns since boot) at the last update.
    pub system_time: u64,
    /// TSC → ns multiplier (32.32 fixed point).
    pub tsc_to_system_mul: u32,
    /// TSC shift (signed).
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*`.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}

/// `struct arch_vcpu_info` for x86-64 (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct ArchVcpuInfo {
    /// Faulting address of the last page fault.
    pub cr2: u64,
    /// Padding.
    pub pad: u64,
}

/// `struct vcpu_info` (64 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending for this vcpu.
    pub evtchn_upcall_pending: u8,
    /// Nonzero masks upcalls (the PV "interrupt flag", inverted).
    pub evtchn_upcall_mask: u8,
    /// Padding.
    pub pad0: [u8; 6],
    /// Bit w set: word w of `evtchn_pending` may have pending ports.
    pub evtchn_pending_sel: u64,
    /// Architecture part.
    pub arch: ArchVcpuInfo,
    /// Time record.
    pub time: VcpuTimeInfo,
}

/// `struct arch_shared_info` for x86-64 (48 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct ArchSharedInfo {
    /// Number of entries in the guest's p2m.
    pub max_pfn: u64,
    /// MFN of the page listing the p2m frame-list frames (0 = not set up, `~0` =
    /// use the linear p2m at `p2m_vaddr`).
    pub pfn_to_mfn_frame_list_list: u64,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// CR3 (folded) of the address space holding the linear p2m.
    pub p2m_cr3: u64,
    /// Virtual address of the linear p2m.
    pub p2m_vaddr: u64,
    /// Odd while the guest updates the p2m.
    pub p2m_generation: u64,
}

/// `struct shared_info` (3136 bytes; always in one 4 KiB page).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SharedInfo {
    /// Per-vcpu data for vcpus 0..32.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level pending bits: port p is bit p % 64 of word p / 64.
    pub evtchn_pending: [u64; 64],
    /// 2-level mask bits, same indexing.
    pub evtchn_mask: [u64; 64],
    /// Wallclock seqlock (odd = update in progress).
    pub wc_version: u32,
    /// Wallclock seconds at system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock nanoseconds at system time 0.
    pub wc_nsec: u32,
    /// Wallclock seconds, high 32 bits.
    pub wc_sec_hi: u32,
    /// Architecture part.
    pub arch: ArchSharedInfo,
}

/// start_info magic of a 64-bit PV guest (the field is 32 bytes, NUL padded).
pub const START_INFO_MAGIC_X86_64: &[u8] = b"xen-3.0-x86_64";
/// start_info magic of a 32-bit PAE PV guest.
pub const START_INFO_MAGIC_X86_32P: &[u8] = b"xen-3.0-x86_32p";
/// Size of start_info's command line.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// SIF: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// SIF: the initial control domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// SIF: the module is a multiboot module list.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// SIF: `mod_start` is a PFN rather than a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// SIF: tools should use the virtual (linear) p2m.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// SIF: platform-management bits.
pub const SIF_PM_MASK: u32 = 0xff << 8;

/// `struct start_info` (1168 bytes), domU view of the console union (`console_mfn`,
/// `console_evtchn`); dom0 reads the same 16 bytes as `info_off`/`info_size`, see
/// [`StartInfo::dom0_console_info`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, NUL padded.
    pub magic: [u8; 32],
    /// Total pages of the domain.
    pub nr_pages: u64,
    /// Machine address of shared_info.
    pub shared_info: u64,
    /// `SIF_*`.
    pub flags: u32,
    /// Padding.
    pub pad0: u32,
    /// MFN of the xenstore ring.
    pub store_mfn: u64,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    /// Padding.
    pub pad1: u32,
    /// MFN of the console ring (domU).
    pub console_mfn: u64,
    /// Event channel of the console ring (domU).
    pub console_evtchn: u32,
    /// Padding.
    pub pad2: u32,
    /// Virtual address of the bootstrap L4.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the p2m array.
    pub mfn_list: u64,
    /// Start of the initial module (VA, or PFN with [`SIF_MOD_START_PFN`]).
    pub mod_start: u64,
    /// Length of the initial module.
    pub mod_len: u64,
    /// Kernel command line, NUL terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the p2m, if mapped by PFN.
    pub first_p2m_pfn: u64,
    /// Number of p2m frames.
    pub nr_p2m_frames: u64,
}

impl StartInfo {
    /// The dom0 view of the console union: `(info_off, info_size)`, the low and high
    /// halves of [`StartInfo::console_mfn`].
    #[must_use]
    pub fn dom0_console_info(&self) -> (u32, u32) {
        (self.console_mfn as u32, (self.console_mfn >> 32) as u32)
    }

    /// Whether `magic` starts with [`START_INFO_MAGIC_X86_64`].
    #[must_use]
    pub fn has_x86_64_magic(&self) -> bool {
        self.magic.starts_with(START_INFO_MAGIC_X86_64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};
    use zerocopy::FromZeros;

    #[test]
    fn vcpu_layouts() {
        assert_eq!(size_of::<VcpuTimeInfo>(), 32);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_timestamp), 8);
        assert_eq!(offset_of!(VcpuTimeInfo, system_time), 16);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_to_system_mul), 24);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_shift), 28);
        assert_eq!(offset_of!(VcpuTimeInfo, flags), 29);
        assert_eq!(size_of::<ArchVcpuInfo>(), 16);
        assert_eq!(size_of::<VcpuInfo>(), 64);
        assert_eq!(offset_of!(VcpuInfo, evtchn_upcall_pending), 0);
        assert_eq!(offset_of!(VcpuInfo, evtchn_upcall_mask), 1);
        assert_eq!(offset_of!(VcpuInfo, evtchn_pending_sel), 8);
        assert_eq!(offset_of!(VcpuInfo, arch), 16);
        assert_eq!(offset_of!(VcpuInfo, time), 32);
    }

    #[test]
    fn shared_info_layout() {
        assert_eq!(size_of::<ArchSharedInfo>(), 48);
        assert_eq!(offset_of!(ArchSharedInfo, pfn_to_mfn_frame_list_list), 8);
        assert_eq!(offset_of!(ArchSharedInfo, nmi_reason), 16);
        assert_eq!(offset_of!(ArchSharedInfo, p2m_cr3), 24);
        assert_eq!(offset_of!(ArchSharedInfo, p2m_vaddr), 32);
        assert_eq!(offset_of!(ArchSharedInfo, p2m_generation), 40);
        assert_eq!(size_of::<SharedInfo>(), 3136);
        assert_eq!(offset_of!(SharedInfo, vcpu_info), 0);
        assert_eq!(offset_of!(SharedInfo, evtchn_pending), 2048);
        assert_eq!(offset_of!(SharedInfo, evtchn_mask), 2560);
        assert_eq!(offset_of!(SharedInfo, wc_version), 3072);
        assert_eq!(offset_of!(SharedInfo, wc_sec), 3076);
        assert_eq!(offset_of!(SharedInfo, wc_nsec), 3080);
        assert_eq!(offset_of!(SharedInfo, wc_sec_hi), 3084);
        assert_eq!(offset_of!(SharedInfo, arch), 3088);
        assert_eq!(
            offset_of!(SharedInfo, arch) + offset_of!(ArchSharedInfo, p2m_generation),
            3128
        );
    }

    #[test]
    fn start_info_layout() {
        assert_eq!(size_of::<StartInfo>(), 1168);
        assert_eq!(offset_of!(StartInfo, nr_pages), 32);
        assert_eq!(offset_of!(StartInfo, shared_info), 40);
        assert_eq!(offset_of!(StartInfo, flags), 48);
        assert_eq!(offset_of!(StartInfo, store_mfn), 56);
        assert_eq!(offset_of!(StartInfo, store_evtchn), 64);
        assert_eq!(offset_of!(StartInfo, console_mfn), 72);
        assert_eq!(offset_of!(StartInfo, console_evtchn), 80);
        assert_eq!(offset_of!(StartInfo, pt_base), 88);
        assert_eq!(offset_of!(StartInfo, nr_pt_frames), 96);
        assert_eq!(offset_of!(StartInfo, mfn_list), 104);
        assert_eq!(offset_of!(StartInfo, mod_start), 112);
        assert_eq!(offset_of!(StartInfo, mod_len), 120);
        assert_eq!(offset_of!(StartInfo, cmd_line), 128);
        assert_eq!(offset_of!(StartInfo, first_p2m_pfn), 1152);
        assert_eq!(offset_of!(StartInfo, nr_p2m_frames), 1160);
    }

    #[test]
    fn start_info_helpers() {
        let mut si = StartInfo::new_zeroed();
        si.magic[..START_INFO_MAGIC_X86_64.len()].copy_from_slice(START_INFO_MAGIC_X86_64);
        assert!(si.has_x86_64_magic());
        si.console_mfn = (0x20 << 32) | 0x10;
        assert_eq!(si.dom0_console_info(), (0x10, 0x20));
    }
}
