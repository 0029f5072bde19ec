//! `xen_version` (public/version.h, features.h): commands, their argument structs and
//! the XENFEAT feature bits.
//!
//! `XENVER_version` returns `major << 16 | minor` directly (4.17 → `0x0004_0011`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Returns `major << 16 | minor` (arg NULL).
pub const XENVER_VERSION: u64 = 0;
/// Fills a [`XenExtraversion`] (e.g. `".7"`).
pub const XENVER_EXTRAVERSION: u64 = 1;
/// Fills a [`XenCompileInfo`].
pub const XENVER_COMPILE_INFO: u64 = 2;
/// Fills a [`XenCapabilitiesInfo`] (e.g. `"xen-3.0-x86_64 ..."`).
pub const XENVER_CAPABILITIES: u64 = 3;
/// Fills a [`XenChangesetInfo`].
pub const XENVER_CHANGESET: u64 = 4;
/// Fills a [`XenPlatformParameters`].
pub const XENVER_PLATFORM_PARAMETERS: u64 = 5;
/// Fills a [`XenFeatureInfo`].
pub const XENVER_GET_FEATURES: u64 = 6;
/// Returns the page size (arg NULL).
pub const XENVER_PAGESIZE: u64 = 7;
/// Fills the domain's 16-byte UUID.
pub const XENVER_GUEST_HANDLE: u64 = 8;
/// Fills a [`XenCommandline`] (privileged).
pub const XENVER_COMMANDLINE: u64 = 9;
/// Fills a build-id record.
pub const XENVER_BUILD_ID: u64 = 10;

/// Size of the extraversion string.
pub const XENVER_EXTRAVERSION_LEN: usize = 16;
/// Size of the capabilities string.
pub const XENVER_CAPABILITIES_LEN: usize = 1024;
/// Size of the changeset string.
pub const XENVER_CHANGESET_LEN: usize = 64;
/// Size of the command-line string.
pub const XENVER_COMMANDLINE_LEN: usize = 1024;

/// `xen_extraversion_t`: NUL-terminated extra version (16 bytes).
pub type XenExtraversion = [u8; XENVER_EXTRAVERSION_LEN];
/// `xen_capabilities_info_t`: space-separated capability strings (1024 bytes).
pub type XenCapabilitiesInfo = [u8; XENVER_CAPABILITIES_LEN];
/// `xen_changeset_info_t`: source changeset (64 bytes).
pub type XenChangesetInfo = [u8; XENVER_CHANGESET_LEN];
/// `xen_commandline_t`: Xen's boot command line (1024 bytes).
pub type XenCommandline = [u8; XENVER_COMMANDLINE_LEN];
/// `xen_domain_handle_t`: a domain UUID (16 bytes).
pub type XenDomainHandle = [u8; 16];

/// `struct xen_compile_info` (144 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenCompileInfo {
    /// Compiler string.
    pub compiler: [u8; 64],
    /// User who built Xen.
    pub compile_by: [u8; 16],
    /// Build domain.
    pub compile_domain: [u8; 32],
    /// Build date.
    pub compile_date: [u8; 32],
}

/// `struct xen_platform_parameters` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenPlatformParameters {
    /// Start of the Xen-reserved virtual range.
    pub virt_start: u64,
}

/// `struct xen_feature_info` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenFeatureInfo {
    /// In: which 32-bit word of features.
    pub submap_idx: u32,
    /// Out: the feature bits of that word.
    pub submap: u32,
}

/// XENFEAT: the guest may write its page tables directly (trapped and emulated).
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// XENFEAT: the guest may write its descriptor tables directly.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// XENFEAT: Xen translates guest physical addresses (no PV MMU).
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// XENFEAT: the kernel runs in ring 0.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// XENFEAT: PAE page directories may live above 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// XENFEAT: [`MMU_PT_UPDATE_PRESERVE_AD`](super::mm::MMU_PT_UPDATE_PRESERVE_AD) works.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// XENFEAT: grant mappings leave PTE AVAIL bits to the guest.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// XENFEAT: HVM callback vector.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// XENFEAT: HVM guests may use the PV clock safely.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// XENFEAT: HVM guests get PIRQs.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// XENFEAT: the domain is dom0.
pub const XENFEAT_DOM0: u32 = 11;
/// XENFEAT: grant maps are identity-mapped.
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
/// XENFEAT: memory_op supports vnode.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// XENFEAT: Arm SMCCC is available.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// XENFEAT: the Linux RSDP need not sit below 1 MiB.
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// XENFEAT: the domain is not direct-mapped.
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// XENFEAT: the domain is direct-mapped.
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// Number of 32-bit XENFEAT words ([`XenFeatureInfo::submap_idx`] must be below it).
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layouts() {
        assert_eq!(size_of::<XenExtraversion>(), 16);
        assert_eq!(size_of::<XenCapabilitiesInfo>(), 1024);
        assert_eq!(size_of::<XenCompileInfo>(), 144);
        assert_eq!(offset_of!(XenCompileInfo, compile_by), 64);
        assert_eq!(offset_of!(XenCompileInfo, compile_domain), 80);
        assert_eq!(offset_of!(XenCompileInfo, compile_date), 112);
        assert_eq!(size_of::<XenPlatformParameters>(), 8);
        assert_eq!(size_of::<XenFeatureInfo>(), 8);
        assert_eq!(offset_of!(XenFeatureInfo, submap), 4);
    }
}
