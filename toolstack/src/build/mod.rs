//! The PV domain builder: from a [`DomainConfig`] and a [`KernelImage`] to a running
//! (or paused) x86-64 PV guest, through nothing but the [`Xen`] trait — so the same code
//! builds guests on the model and on real Xen.
//!
//! It does what `xl create` does through libxl and libxenguest for a PV guest without
//! devices, in the same order (each line is one [`BuildStep`]):
//!
//! | step | Xen call(s) | libxl / libxc |
//! |---|---|---|
//! | check Xen | `xen_version(VERSION)`, `xen_version(CAPABILITIES)` ∋ `xen-3.0-x86_64` | `xc_dom_boot_xen_init`, `xc_dom_compat_check` |
//! | layout | — (pure: [`Layout::compute`]) | `xc_dom_build_image` |
//! | create domain | `domctl createdomain` (4.17 payload, id `0x7FF5` = any) | `libxl__domain_make` |
//! | max vcpus | `domctl max_vcpus` | `libxl__build_pre` |
//! | max mem | `domctl max_mem` (memory + 1 MiB, `LIBXL_MAXMEM_CONSTANT`) | `libxl__build_pre` |
//! | event channels | `event_channel_op(alloc_unbound)` ×2: store, console (remote dom0) | `libxl__build_pre` |
//! | address size | `domctl set_address_size(64)` | `meminit_pv` (`x86_compat`) |
//! | populate memory | `memory_op(populate_physmap)` for PFNs `0..nr_pages`, order 0, in batches | `meminit_pv` |
//! | load kernel | foreign writes of the image | `xc_dom_load_elf_kernel` |
//! | clear rings | foreign writes of zeroed xenstore and console pages | `alloc_magic_pages_pv` |
//! | domain info | `domctl getdomaininfo` → `shared_info_frame` | `xc_dom_boot_image` |
//! | p2m list, page tables, start_info | foreign writes (the frames are not typed yet) | `setup_pgtables_x86_64`, `start_info_x86_64` |
//! | hypercall page | `domctl hypercall_init(gmfn)` if the kernel has one | `setup_hypercall_page` |
//! | pin | `mmuext_op(MMUEXT_PIN_L4_TABLE, l4 mfn)`, foreigndom = the guest | `bootlate_pv` |
//! | shared_info | foreign write: zeroed, every vCPU's upcall masked | `shared_info_x86_64` |
//! | vcpu context | `domctl setvcpucontext(0)` | `vcpu_x86_64` |
//! | seed grant table | [`seed_grant_table`]: `resource_read`/`resource_write` of grant frame 0 | `xc_dom_gnttab_init` (`xc_dom_gnttab_seed`) |
//! | xenstore | one transaction of writes and set_perms ([`xenstore`]) | `libxl__build_post` |
//! | introduce | `xs_introduce(dom, store mfn, store port)` | `libxl__build_post` |
//! | unpause | `domctl unpausedomain` (unless [`BuildOptions::paused`]) | `domcreate_complete` |
//!
//! Left out: CPUID policy, vNUMA,
//! superpages (the model populates 4 KiB pages only), initrd, a p2m outside the initial
//! mapping (`XEN_ELFNOTE_INIT_P2M`).
//!
//! vCPU 0 starts with `rip` = entry, `rsi` = the start_info VA, `rsp` = `kernel_sp` =
//! the top of the stack page, `cr3` = the L4's MFN, `cs` = `FLAT_KERNEL_CS`
//! (0xe033), `ss` = `kernel_ss` = `FLAT_KERNEL_SS` (0xe02b), `ds`/`es`/`fs`/`gs` = 0,
//! `rflags` = IF, `dr6`/`dr7` at their reset values, flags `VGCF_in_kernel |
//! VGCF_online`, no callbacks.
//!
//! **Failure**: once the domain exists, any failing step destroys it again (releasing
//! it from xenstored and removing its xenstore home first), so no half-built domain and
//! no frame is left behind; the [`BuildError`] names the step and carries Xen's errno.
//!
//! **From a config in one call**: [`create`] loads the kernel a [`DomainConfig`] names
//! (`kernel = "toy:<name>"` through [`BuiltinToys`], or a flat/ELF file) and builds it;
//! [`check_oracle`] reads a running toy guest's memory through the same trait and runs
//! its `guest-model` oracle (see [`toys`]).
//!
//! **Determinism**: nothing here reads a clock or a random source. The domain handle
//! is the config's `uuid`, or [`DomainUuid::from_name`] of its name.

pub mod image;
pub mod layout;
pub mod toys;
pub mod xenstore;

#[cfg(test)]
mod tests;

use std::fmt;

use hypervisor::abi::domctl::{
    self as dc, DomctlAddressSize, DomctlCreateDomain, DomctlGetDomainInfo, DomctlMaxMem,
    DomctlMaxVcpus, DomctlVcpuContext, XenDomctl,
};
use hypervisor::abi::evtchn::{EvtchnAllocUnbound, EVTCHNOP_ALLOC_UNBOUND};
use hypervisor::abi::memory::{MemoryReservation, XENMEM_POPULATE_PHYSMAP};
use hypervisor::abi::mm::{
    MmuextOp, FLAT_KERNEL_CS, FLAT_KERNEL_DS, FLAT_KERNEL_SS, MMUEXT_PIN_L4_TABLE,
};
use hypervisor::abi::shared::{StartInfo, MAX_GUEST_CMDLINE, START_INFO_MAGIC_X86_64};
use hypervisor::abi::vcpu::{self as vc, VcpuGuestContext};
use hypervisor::abi::version::{XENVER_CAPABILITIES, XENVER_CAPABILITIES_LEN, XENVER_VERSION};
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Errno, Mfn, Pfn, Port, Xen, XenError, XS_NO_TX};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::config::{DomainConfig, DomainUuid, KernelSpec};

pub use image::{ImageError, KernelImage, XenNotes};
pub use layout::{Layout, LayoutError, Region, TableCounts};
pub use toys::{
    check_oracle, create, create_with_progress, guest_p2m, kernel_image, oracle_pfns,
    read_guest_pages, read_status, toy_params, BuiltinToys, CreateError, GuestPages,
    GuestReadError, OracleCheck, Verdict,
};

/// `DOMID_ANY`: createdomain picks the id (4.17 also accepts 0 or any reserved id;
/// 4.22 only this one).
pub const DOMID_ANY: u16 = 0x7FF5;

/// `XEN_DOMCTL_hypercall_init`'s payload, `struct xen_domctl_hypercall_init` (8
/// bytes): the guest frame Xen fills with hypercall stubs. (Not in `hypervisor::abi`
/// yet.)
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlHypercallInit {
    /// The frame (an MFN for a PV guest).
    pub gmfn: u64,
}

/// `dr6` after reset.
const DR6_DEFAULT: u64 = 0xffff_0ff0;
/// `dr7` after reset.
const DR7_DEFAULT: u64 = 0x0000_0400;
/// Pages per foreign-memory batch.
const FOREIGN_BATCH: usize = 64;
/// Attempts at the xenstore transaction before giving up on `EAGAIN`.
const XS_TX_ATTEMPTS: usize = 16;
/// Attempts at destroydomain while Xen answers `EAGAIN` (it continues the teardown).
const DESTROY_ATTEMPTS: usize = 64;

/// The stages of a build, in order; [`build`] reports each one as it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BuildStep {
    /// Ask Xen its version and whether it runs 64-bit PV guests.
    CheckXen,
    /// Compute the memory layout.
    Layout,
    /// `XEN_DOMCTL_createdomain`.
    CreateDomain,
    /// `XEN_DOMCTL_max_vcpus`.
    MaxVcpus,
    /// `XEN_DOMCTL_max_mem`.
    MaxMem,
    /// Allocate the store and console event channels.
    EventChannels,
    /// `XEN_DOMCTL_set_address_size(64)`.
    AddressSize,
    /// `XENMEM_populate_physmap`.
    PopulateMemory,
    /// Copy the kernel image in.
    LoadKernel,
    /// Zero the xenstore and console ring pages.
    ClearRings,
    /// `XEN_DOMCTL_getdomaininfo` (the shared_info frame).
    DomainInfo,
    /// Write the p2m list.
    WriteP2m,
    /// Write the bootstrap page tables.
    WritePageTables,
    /// Write start_info.
    WriteStartInfo,
    /// `XEN_DOMCTL_hypercall_init`.
    HypercallPage,
    /// Pin the L4.
    PinPageTables,
    /// Initialise shared_info.
    SharedInfo,
    /// `XEN_DOMCTL_setvcpucontext` for vCPU 0.
    VcpuContext,
    /// Seed grant entries 0 (console) and 1 (xenstore).
    SeedGrantTable,
    /// Write the domain's xenstore nodes.
    Xenstore,
    /// Introduce the domain to xenstored.
    Introduce,
    /// `XEN_DOMCTL_unpausedomain`.
    Unpause,
}

impl BuildStep {
    /// Every step, in order.
    pub const ALL: [BuildStep; 22] = [
        BuildStep::CheckXen,
        BuildStep::Layout,
        BuildStep::CreateDomain,
        BuildStep::MaxVcpus,
        BuildStep::MaxMem,
        BuildStep::EventChannels,
        BuildStep::AddressSize,
        BuildStep::PopulateMemory,
        BuildStep::LoadKernel,
        BuildStep::ClearRings,
        BuildStep::DomainInfo,
        BuildStep::WriteP2m,
        BuildStep::WritePageTables,
        BuildStep::WriteStartInfo,
        BuildStep::HypercallPage,
        BuildStep::PinPageTables,
        BuildStep::SharedInfo,
        BuildStep::VcpuContext,
        BuildStep::SeedGrantTable,
        BuildStep::Xenstore,
        BuildStep::Introduce,
        BuildStep::Unpause,
    ];

    /// A short description, e.g. `"populate memory"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            BuildStep::CheckXen => "check Xen",
            BuildStep::Layout => "lay out memory",
            BuildStep::CreateDomain => "create domain",
            BuildStep::MaxVcpus => "set max vCPUs",
            BuildStep::MaxMem => "set max memory",
            BuildStep::EventChannels => "allocate event channels",
            BuildStep::AddressSize => "set address size",
            BuildStep::PopulateMemory => "populate memory",
            BuildStep::LoadKernel => "load kernel",
            BuildStep::ClearRings => "clear ring pages",
            BuildStep::DomainInfo => "get domain info",
            BuildStep::WriteP2m => "write p2m list",
            BuildStep::WritePageTables => "write page tables",
            BuildStep::WriteStartInfo => "write start_info",
            BuildStep::HypercallPage => "initialise hypercall page",
            BuildStep::PinPageTables => "pin page tables",
            BuildStep::SharedInfo => "initialise shared_info",
            BuildStep::VcpuContext => "set vCPU 0 context",
            BuildStep::SeedGrantTable => "seed grant table",
            BuildStep::Xenstore => "write xenstore entries",
            BuildStep::Introduce => "introduce to xenstored",
            BuildStep::Unpause => "unpause",
        }
    }
}

impl fmt::Display for BuildStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Knobs of a build; [`Default`] is what `xl create` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// Leave the domain paused (`xl create -p`).
    pub paused: bool,
    /// createdomain `max_evtchn_port` (libxl: 1023).
    pub max_evtchn_port: u32,
    /// createdomain `max_grant_frames` (`LIBXL_MAX_GRANT_FRAMES_DEFAULT` = 32).
    pub max_grant_frames: i32,
    /// createdomain `max_maptrack_frames` (`LIBXL_MAX_MAPTRACK_FRAMES_DEFAULT` = 1024).
    pub max_maptrack_frames: i32,
    /// createdomain grant_opts: the highest grant-table version (2).
    pub max_grant_version: u32,
    /// KiB added to `memory` for `max_mem` (libxl's `LIBXL_MAXMEM_CONSTANT` = 1024).
    pub maxmem_slack_kib: u64,
    /// PFNs per `populate_physmap` call.
    pub populate_batch: usize,
    /// The domain serving xenstore (remote end of the store channel).
    pub store_domid: DomId,
    /// The domain serving the console.
    pub console_domid: DomId,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            paused: false,
            max_evtchn_port: 1023,
            max_grant_frames: 32,
            max_maptrack_frames: 1024,
            max_grant_version: 2,
            maxmem_slack_kib: 1024,
            populate_batch: 1024,
            store_domid: DomId::DOM0,
            console_domid: DomId::DOM0,
        }
    }
}

/// A domain the builder made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltDomain {
    /// Its id.
    pub domid: DomId,
    /// Its handle.
    pub handle: DomainUuid,
    /// start_info's PFN (`rsi` = its VA).
    pub start_info_pfn: Pfn,
    /// start_info's MFN.
    pub start_info_mfn: Mfn,
    /// The xenstore ring.
    pub store_mfn: Mfn,
    /// The guest's end of the store channel.
    pub store_port: Port,
    /// The console ring.
    pub console_mfn: Mfn,
    /// The guest's end of the console channel.
    pub console_port: Port,
    /// The shared_info frame.
    pub shared_info_mfn: Mfn,
    /// The guest's p2m: `p2m[pfn]` is the MFN of PFN `pfn`.
    pub p2m: Vec<Mfn>,
    /// Where everything is.
    pub layout: Layout,
    /// Left paused?
    pub paused: bool,
}

/// Why a build failed. Once the domain existed it has been destroyed again (unless
/// [`BuildError::CleanupFailed`] says otherwise).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration cannot be built as it is.
    #[error("bad domain configuration: {0}")]
    Config(String),
    /// Another domain already has the name (libxl: nonempty names are unique; refused
    /// before anything is allocated).
    #[error("Domain with name \"{name}\" already exists.")]
    NameInUse {
        /// The name.
        name: String,
        /// The domain that has it.
        domid: DomId,
    },
    /// The kernel does not fit the guest.
    #[error("cannot lay out the guest's memory")]
    Layout(#[source] LayoutError),
    /// A Xen call failed.
    #[error("step `{step}` failed{}", on_dom(.domid))]
    Xen {
        /// The step.
        step: BuildStep,
        /// The domain, if it had been created.
        domid: Option<DomId>,
        /// The call and Xen's errno.
        #[source]
        source: XenError,
    },
    /// `populate_physmap` stopped early (Xen does so silently when memory runs out).
    #[error("step `populate memory` failed on dom{domid}: Xen allocated {done} of {wanted} pages (not enough free memory?)")]
    ShortPopulate {
        /// The domain.
        domid: DomId,
        /// Pages populated.
        done: u64,
        /// Pages asked for.
        wanted: u64,
    },
    /// Writing one of the guest's frames failed.
    #[error(
        "step `{step}` failed on dom{domid}: writing pfn {pfn} (mfn {mfn}) failed with {errno}"
    )]
    Foreign {
        /// The step.
        step: BuildStep,
        /// The domain.
        domid: DomId,
        /// The frame.
        pfn: Pfn,
        /// Its MFN.
        mfn: Mfn,
        /// The per-page error.
        errno: Errno,
    },
    /// Xen answered something the builder cannot work with.
    #[error("step `{step}` failed{}: {what}", on_dom(.domid))]
    Unexpected {
        /// The step.
        step: BuildStep,
        /// The domain, if it had been created.
        domid: Option<DomId>,
        /// What was wrong.
        what: String,
    },
    /// The build failed and removing the half-built domain failed too: `domid` may
    /// still exist.
    #[error("building dom{domid} failed, and destroying it failed too: {cleanup}")]
    CleanupFailed {
        /// The domain left behind.
        domid: DomId,
        /// Why the build failed.
        #[source]
        original: Box<BuildError>,
        /// Why the cleanup failed.
        cleanup: XenError,
    },
}

fn on_dom(d: &Option<DomId>) -> String {
    d.map(|d| format!(" on dom{d}")).unwrap_or_default()
}

impl BuildError {
    /// The step that failed (`None` for a configuration the builder refuses before
    /// asking Xen anything).
    #[must_use]
    pub fn step(&self) -> Option<BuildStep> {
        match self {
            BuildError::Config(_) | BuildError::NameInUse { .. } => None,
            BuildError::Layout(_) => Some(BuildStep::Layout),
            BuildError::Xen { step, .. }
            | BuildError::Foreign { step, .. }
            | BuildError::Unexpected { step, .. } => Some(*step),
            BuildError::ShortPopulate { .. } => Some(BuildStep::PopulateMemory),
            BuildError::CleanupFailed { original, .. } => original.step(),
        }
    }

    /// Xen's errno, if the failure carries one.
    #[must_use]
    pub fn errno(&self) -> Option<Errno> {
        match self {
            BuildError::Xen { source, .. } => source.errno(),
            BuildError::Foreign { errno, .. } => Some(*errno),
            BuildError::CleanupFailed { original, .. } => original.errno(),
            _ => None,
        }
    }
}

/// Where toy guests come from ([`BuiltinToys`] is the `guest-model` crate's guests); a
/// test may bring its own.
pub trait ToyGuests {
    /// The image of toy guest `name` with its parameters in `cmdline`.
    ///
    /// # Errors
    /// A description of what is wrong (unknown guest, bad parameters).
    fn toy_image(&self, name: &str, cmdline: &str) -> Result<KernelImage, String>;
}

/// Why [`load_kernel`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadKernelError {
    /// The toy guest could not be made.
    #[error("toy guest `{name}`: {what}")]
    Toy {
        /// Its name.
        name: String,
        /// What was wrong.
        what: String,
    },
    /// The image file could not be read.
    #[error("{path}: cannot read the kernel")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The image file is not a loadable kernel.
    #[error("{path}: not a loadable kernel")]
    Image {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: ImageError,
    },
}

/// Where a flat binary named by path is loaded (and starts): 4 MiB, PFN 0.
pub const DEFAULT_FLAT_BASE: u64 = 0x40_0000;

/// The kernel a configuration names: a toy guest from `toys`, or the file at the path
/// (an ELF64 image, or a flat binary loaded and entered at [`DEFAULT_FLAT_BASE`]).
///
/// # Errors
/// [`LoadKernelError`].
pub fn load_kernel(
    config: &DomainConfig,
    toys: &dyn ToyGuests,
) -> Result<KernelImage, LoadKernelError> {
    match &config.kernel {
        KernelSpec::Toy(name) => {
            toys.toy_image(name, config.cmdline())
                .map_err(|what| LoadKernelError::Toy {
                    name: name.clone(),
                    what,
                })
        }
        KernelSpec::File(path) => {
            let bytes = std::fs::read(path).map_err(|source| LoadKernelError::Io {
                path: path.clone(),
                source,
            })?;
            KernelImage::from_file_bytes(bytes, DEFAULT_FLAT_BASE).map_err(|source| {
                LoadKernelError::Image {
                    path: path.clone(),
                    source,
                }
            })
        }
    }
}

/// Builds the domain `config` describes, running `image`, on `xen`. `progress` is
/// told each [`BuildStep`] as it starts.
///
/// # Errors
/// [`BuildError`]; the half-built domain, if any, has been destroyed.
pub fn build<X: Xen + ?Sized>(
    xen: &mut X,
    config: &DomainConfig,
    image: &KernelImage,
    options: &BuildOptions,
    progress: Option<&mut dyn FnMut(BuildStep)>,
) -> Result<BuiltDomain, BuildError> {
    let mut noop = |_: BuildStep| {};
    let progress: &mut dyn FnMut(BuildStep) = match progress {
        Some(p) => p,
        None => &mut noop,
    };

    progress(BuildStep::CheckXen);
    check_xen(xen)?;

    progress(BuildStep::Layout);
    let cmdline = config.cmdline();
    if cmdline.len() >= MAX_GUEST_CMDLINE || cmdline.contains('\0') {
        return Err(BuildError::Config(format!(
            "the command line must be at most {} bytes without NUL (it is {} bytes)",
            MAX_GUEST_CMDLINE - 1,
            cmdline.len()
        )));
    }
    if config.vcpus == 0 {
        return Err(BuildError::Config(
            "a domain needs at least one vCPU".into(),
        ));
    }
    if options.populate_batch == 0 {
        return Err(BuildError::Config(
            "populate_batch must be at least 1".into(),
        ));
    }
    let too_big = || BuildError::Config(format!("{} MiB of memory is too much", config.memory_mib));
    let nr_pages = config.memory_mib.checked_mul(256).ok_or_else(too_big)?;
    let memory_kib = config.memory_mib.checked_mul(1024).ok_or_else(too_big)?;
    let max_memkb = memory_kib
        .checked_add(options.maxmem_slack_kib)
        .ok_or_else(too_big)?;
    let layout = Layout::compute(image, nr_pages).map_err(BuildError::Layout)?;
    let handle = config.handle();
    // libxl checks the name while making the domain (libxl__domain_make); the model
    // does it first, so that a refusal allocates nothing.
    if let Some(other) = domain_named(xen, &config.name).map_err(|source| BuildError::Xen {
        step: BuildStep::CreateDomain,
        domid: None,
        source,
    })? {
        return Err(BuildError::NameInUse {
            name: config.name.clone(),
            domid: other,
        });
    }

    progress(BuildStep::CreateDomain);
    let mut create = XenDomctl::new(dc::XEN_DOMCTL_CREATEDOMAIN, DOMID_ANY);
    create.set_payload(&DomctlCreateDomain {
        ssidref: 0,
        handle: handle.0,
        flags: 0,
        iommu_opts: 0,
        max_vcpus: config.vcpus,
        max_evtchn_port: options.max_evtchn_port,
        max_grant_frames: options.max_grant_frames,
        max_maptrack_frames: options.max_maptrack_frames,
        grant_opts: dc::xen_domctl_grant_version(options.max_grant_version),
        vmtrace_size: 0,
        cpupool_id: 0,
        arch: dc::ArchDomainConfig::default(),
    });
    xen.domctl(&mut create, &mut [])
        .map_err(|source| BuildError::Xen {
            step: BuildStep::CreateDomain,
            domid: None,
            source,
        })?;
    let domid = DomId::new(create.domain);

    let mut b = Builder {
        xen,
        domid,
        step: BuildStep::CreateDomain,
        progress,
        introduced: false,
        xenstore_touched: false,
    };
    if domid.is_reserved() || domid == DomId::DOM0 {
        // Nothing sane to destroy.
        return Err(b.unexpected(format!("createdomain returned the id {:#x}", domid.get())));
    }
    let plan = Plan {
        config,
        image,
        options,
        layout,
        handle,
        memory_kib,
        max_memkb,
    };
    match b.run(plan) {
        Ok(built) => Ok(built),
        Err(e) => Err(b.abandon(e)),
    }
}

/// `xen_version`: Xen must run 64-bit PV guests.
fn check_xen<X: Xen + ?Sized>(xen: &mut X) -> Result<(), BuildError> {
    let fail = |source| BuildError::Xen {
        step: BuildStep::CheckXen,
        domid: None,
        source,
    };
    xen.xen_version(XENVER_VERSION as u32, &mut [])
        .map_err(fail)?;
    let mut caps = [0u8; XENVER_CAPABILITIES_LEN];
    xen.xen_version(XENVER_CAPABILITIES as u32, &mut caps)
        .map_err(fail)?;
    let end = caps.iter().position(|&b| b == 0).unwrap_or(caps.len());
    let caps = String::from_utf8_lossy(&caps[..end]);
    if !caps
        .split_whitespace()
        .any(|c| c.as_bytes() == START_INFO_MAGIC_X86_64)
    {
        return Err(BuildError::Unexpected {
            step: BuildStep::CheckXen,
            domid: None,
            what: format!("this Xen does not run 64-bit PV guests (capabilities: `{caps}`)"),
        });
    }
    Ok(())
}

/// Everything decided before the domain exists.
struct Plan<'a> {
    config: &'a DomainConfig,
    image: &'a KernelImage,
    options: &'a BuildOptions,
    layout: Layout,
    handle: DomainUuid,
    memory_kib: u64,
    max_memkb: u64,
}

/// A build in progress on an existing domain.
struct Builder<'a, X: Xen + ?Sized> {
    xen: &'a mut X,
    domid: DomId,
    step: BuildStep,
    progress: &'a mut dyn FnMut(BuildStep),
    introduced: bool,
    xenstore_touched: bool,
}

impl<X: Xen + ?Sized> Builder<'_, X> {
    fn begin(&mut self, step: BuildStep) {
        self.step = step;
        (self.progress)(step);
    }

    fn xen_err(&self, source: XenError) -> BuildError {
        BuildError::Xen {
            step: self.step,
            domid: Some(self.domid),
            source,
        }
    }

    fn unexpected(&self, what: String) -> BuildError {
        BuildError::Unexpected {
            step: self.step,
            domid: Some(self.domid),
            what,
        }
    }

    /// One domctl on the guest; returns the struct Xen copied back.
    fn domctl<T: IntoBytes + Immutable>(
        &mut self,
        cmd: u32,
        payload: &T,
        buf: &mut [u8],
    ) -> Result<XenDomctl, BuildError> {
        let mut d = XenDomctl::new(cmd, self.domid.get());
        d.set_payload(payload);
        self.xen.domctl(&mut d, buf).map_err(|e| self.xen_err(e))?;
        Ok(d)
    }

    /// Writes whole pages of the guest, by PFN, in batches.
    fn write_pages(&mut self, p2m: &[Mfn], pages: &[(Pfn, &[u8])]) -> Result<(), BuildError> {
        for chunk in pages.chunks(FOREIGN_BATCH) {
            let mut mfns = Vec::with_capacity(chunk.len());
            let mut buf = vec![0u8; chunk.len() * PAGE_SIZE];
            for (i, (pfn, data)) in chunk.iter().enumerate() {
                mfns.push(p2m[pfn.index()]);
                let n = data.len().min(PAGE_SIZE);
                buf[i * PAGE_SIZE..i * PAGE_SIZE + n].copy_from_slice(&data[..n]);
            }
            let mut errs = vec![0i32; chunk.len()];
            self.xen
                .foreign_write(self.domid, &mfns, &buf, &mut errs)
                .map_err(|e| self.xen_err(e))?;
            if let Some(i) = errs.iter().position(|&e| e != 0) {
                return Err(BuildError::Foreign {
                    step: self.step,
                    domid: self.domid,
                    pfn: chunk[i].0,
                    mfn: mfns[i],
                    errno: Errno(errs[i].saturating_neg()),
                });
            }
        }
        Ok(())
    }

    fn run(&mut self, plan: Plan<'_>) -> Result<BuiltDomain, BuildError> {
        let Plan {
            config,
            image,
            options,
            layout,
            handle,
            memory_kib,
            max_memkb,
        } = plan;
        let nr_pages = layout.nr_pages;

        self.begin(BuildStep::MaxVcpus);
        self.domctl(
            dc::XEN_DOMCTL_MAX_VCPUS,
            &DomctlMaxVcpus { max: config.vcpus },
            &mut [],
        )?;

        self.begin(BuildStep::MaxMem);
        self.domctl(dc::XEN_DOMCTL_MAX_MEM, &DomctlMaxMem { max_memkb }, &mut [])?;

        self.begin(BuildStep::EventChannels);
        let store_port = self.alloc_unbound(options.store_domid)?;
        let console_port = self.alloc_unbound(options.console_domid)?;

        self.begin(BuildStep::AddressSize);
        self.domctl(
            dc::XEN_DOMCTL_SET_ADDRESS_SIZE,
            &DomctlAddressSize { size: 64 },
            &mut [],
        )?;

        self.begin(BuildStep::PopulateMemory);
        let p2m = self.populate(nr_pages, options.populate_batch)?;

        self.begin(BuildStep::LoadKernel);
        let kernel_pages: Vec<(Pfn, &[u8])> = layout
            .kernel
            .pfns()
            .zip(image.bytes.chunks(PAGE_SIZE))
            .collect();
        self.write_pages(&p2m, &kernel_pages)?;

        self.begin(BuildStep::ClearRings);
        let zero = [0u8; PAGE_SIZE];
        self.write_pages(
            &p2m,
            &[(layout.xenstore.pfn, &zero), (layout.console.pfn, &zero)],
        )?;

        self.begin(BuildStep::DomainInfo);
        let d = self.domctl(
            dc::XEN_DOMCTL_GETDOMAININFO,
            &DomctlGetDomainInfo::new_zeroed(),
            &mut [],
        )?;
        let info: DomctlGetDomainInfo = d.payload();
        if d.domain != self.domid.get() || info.domain != self.domid.get() {
            return Err(self.unexpected(format!(
                "getdomaininfo answered for dom{} instead",
                info.domain
            )));
        }
        let shared_info_mfn = Mfn::new(info.shared_info_frame);

        self.begin(BuildStep::WriteP2m);
        let p2m_bytes = layout.p2m_contents(&p2m);
        let p2m_pages: Vec<(Pfn, &[u8])> =
            layout.p2m.pfns().zip(p2m_bytes.chunks(PAGE_SIZE)).collect();
        self.write_pages(&p2m, &p2m_pages)?;

        self.begin(BuildStep::WritePageTables);
        let tables = layout.page_table_contents(&p2m);
        let table_bytes: Vec<&[u8]> = tables.iter().map(|t| t.as_bytes()).collect();
        let table_pages: Vec<(Pfn, &[u8])> = layout.page_tables.pfns().zip(table_bytes).collect();
        self.write_pages(&p2m, &table_pages)?;

        self.begin(BuildStep::WriteStartInfo);
        let store_mfn = p2m[layout.xenstore.pfn.index()];
        let console_mfn = p2m[layout.console.pfn.index()];
        let si = start_info(
            &layout,
            config.cmdline(),
            shared_info_mfn,
            (store_mfn, store_port),
            (console_mfn, console_port),
        );
        self.write_pages(&p2m, &[(layout.start_info.pfn, si.as_bytes())])?;

        if let Some(pfn) = layout.hypercall_page {
            self.begin(BuildStep::HypercallPage);
            let gmfn = p2m[pfn.index()].get();
            self.domctl(
                dc::XEN_DOMCTL_HYPERCALL_INIT,
                &DomctlHypercallInit { gmfn },
                &mut [],
            )?;
        }

        self.begin(BuildStep::PinPageTables);
        let l4 = p2m[layout.l4_pfn().index()];
        let pin = MmuextOp {
            cmd: MMUEXT_PIN_L4_TABLE,
            pad: 0,
            arg1: l4.get(),
            arg2: 0,
        };
        let mut done = 0u32;
        self.xen
            .mmuext_op(&[pin], &mut done, u32::from(self.domid.get()))
            .map_err(|e| self.xen_err(e))?;
        if done != 1 {
            return Err(self.unexpected(format!("mmuext_op completed {done} of 1 ops")));
        }

        self.begin(BuildStep::SharedInfo);
        let mut shinfo = [0u8; PAGE_SIZE];
        for v in 0..hypervisor::abi::shared::XEN_LEGACY_MAX_VCPUS {
            // vcpu_info[v].evtchn_upcall_mask: events stay masked until the guest
            // enables them.
            shinfo[v * 64 + 1] = 1;
        }
        let mut errs = [0i32];
        self.xen
            .foreign_write(self.domid, &[shared_info_mfn], &shinfo, &mut errs)
            .map_err(|e| self.xen_err(e))?;
        if errs[0] != 0 {
            return Err(self.unexpected(format!(
                "writing shared_info (mfn {shared_info_mfn}) failed with {}",
                Errno(errs[0].saturating_neg())
            )));
        }

        self.begin(BuildStep::VcpuContext);
        let mut ctx = boot_context(&layout, l4);
        self.domctl(
            dc::XEN_DOMCTL_SETVCPUCONTEXT,
            &DomctlVcpuContext {
                vcpu: 0,
                pad: 0,
                ctxt: 0,
            },
            ctx.as_mut_bytes(),
        )?;

        self.begin(BuildStep::SeedGrantTable);
        seed_grant_table(
            &mut *self.xen,
            self.domid,
            GrantSeed {
                console: Some((console_mfn, DomId::DOM0)),
                store: Some((store_mfn, DomId::DOM0)),
            },
        )
        .map_err(|e| self.xen_err(e))?;

        self.begin(BuildStep::Xenstore);
        self.xenstore_touched = true;
        let nodes = xenstore::domain_nodes(&xenstore::DomainXs {
            domid: self.domid,
            name: &config.name,
            memory_kib,
            vcpus: config.vcpus,
            store: (store_mfn, store_port),
            console: (console_mfn, console_port),
        });
        self.write_xenstore(&nodes)?;

        self.begin(BuildStep::Introduce);
        self.xen
            .xs_introduce(self.domid, store_mfn, store_port)
            .map_err(|e| self.xen_err(e))?;
        self.introduced = true;

        if !options.paused {
            self.begin(BuildStep::Unpause);
            self.domctl(dc::XEN_DOMCTL_UNPAUSEDOMAIN, &[0u8; 0], &mut [])?;
        }

        Ok(BuiltDomain {
            domid: self.domid,
            handle,
            start_info_pfn: layout.start_info.pfn,
            start_info_mfn: p2m[layout.start_info.pfn.index()],
            store_mfn,
            store_port,
            console_mfn,
            console_port,
            shared_info_mfn,
            p2m,
            layout,
            paused: options.paused,
        })
    }

    /// `EVTCHNOP_alloc_unbound` in the guest for `remote`.
    fn alloc_unbound(&mut self, remote: DomId) -> Result<Port, BuildError> {
        let mut op = EvtchnAllocUnbound {
            dom: self.domid.get(),
            remote_dom: remote.get(),
            port: 0,
        };
        self.xen
            .event_channel_op(EVTCHNOP_ALLOC_UNBOUND as u32, op.as_mut_bytes())
            .map_err(|e| self.xen_err(e))?;
        if op.port == 0 {
            return Err(self.unexpected("alloc_unbound returned port 0".into()));
        }
        Ok(Port::new(op.port))
    }

    /// `XENMEM_populate_physmap` of PFNs `0..nr_pages`; the MFNs, by PFN.
    fn populate(&mut self, nr_pages: u64, batch: usize) -> Result<Vec<Mfn>, BuildError> {
        let mut p2m = Vec::with_capacity(usize::try_from(nr_pages).unwrap_or(0));
        let mut next = 0u64;
        while next < nr_pages {
            let n = (nr_pages - next).min(batch as u64);
            let mut extents: Vec<u64> = (next..next + n).collect();
            let mut res = MemoryReservation {
                extent_start: 0,
                nr_extents: n,
                extent_order: 0,
                mem_flags: 0,
                domid: self.domid.get(),
                pad: [0; 6],
            };
            let done = self
                .xen
                .memory_op(
                    XENMEM_POPULATE_PHYSMAP as u32,
                    res.as_mut_bytes(),
                    extents.as_mut_bytes(),
                )
                .map_err(|e| self.xen_err(e))?;
            let done = u64::try_from(done).unwrap_or(0).min(n);
            p2m.extend(extents[..done as usize].iter().map(|&m| Mfn::new(m)));
            if done < n {
                return Err(BuildError::ShortPopulate {
                    domid: self.domid,
                    done: next + done,
                    wanted: nr_pages,
                });
            }
            next += n;
        }
        Ok(p2m)
    }

    /// Writes `nodes` in one transaction, retrying it while xenstored answers `EAGAIN`.
    fn write_xenstore(&mut self, nodes: &[xenstore::XsNode]) -> Result<(), BuildError> {
        let home = xenstore::home(self.domid);
        for _ in 0..XS_TX_ATTEMPTS {
            let tx = self
                .xen
                .xs_transaction_start()
                .map_err(|e| self.xen_err(e))?;
            let mut body = || -> Result<(), XenError> {
                // A previous domain with this id may have left nodes behind.
                match self.xen.xs_rm(tx, &home) {
                    Ok(()) => {}
                    Err(e) if e.errno() == Some(Errno::ENOENT) => {}
                    Err(e) => return Err(e),
                }
                for n in nodes {
                    match &n.value {
                        None => self.xen.xs_mkdir(tx, &n.path)?,
                        Some(v) => self.xen.xs_write(tx, &n.path, v.as_bytes())?,
                    }
                    self.xen.xs_set_perms(tx, &n.path, &n.perms)?;
                }
                Ok(())
            };
            if let Err(e) = body() {
                let _ = self.xen.xs_transaction_end(tx, false);
                return Err(self.xen_err(e));
            }
            match self.xen.xs_transaction_end(tx, true) {
                Ok(()) => return Ok(()),
                Err(e) if e.errno() == Some(Errno::EAGAIN) => continue,
                Err(e) => {
                    // Make sure the transaction is gone (xenstored usually ends it
                    // itself on a failed commit).
                    let _ = self.xen.xs_transaction_end(tx, false);
                    return Err(self.xen_err(e));
                }
            }
        }
        Err(self.unexpected(format!(
            "the xenstore transaction conflicted {XS_TX_ATTEMPTS} times"
        )))
    }

    /// Removes the half-built domain; returns `err`, or [`BuildError::CleanupFailed`].
    fn abandon(&mut self, err: BuildError) -> BuildError {
        if self.introduced {
            // destroydomain makes xenstored release it too; doing it first keeps
            // xenstored from serving a ring that is going away.
            let _ = self.xen.xs_release(self.domid);
        }
        let mut last = None;
        for _ in 0..DESTROY_ATTEMPTS {
            let mut d = XenDomctl::new(dc::XEN_DOMCTL_DESTROYDOMAIN, self.domid.get());
            match self.xen.domctl(&mut d, &mut []) {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) if e.errno() == Some(Errno::EAGAIN) => last = Some(e),
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        if let Some(cleanup) = last {
            return BuildError::CleanupFailed {
                domid: self.domid,
                original: Box::new(err),
                cleanup,
            };
        }
        if self.xenstore_touched {
            match self.xen.xs_rm(XS_NO_TX, &xenstore::home(self.domid)) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(Errno::ENOENT) => {}
                Err(cleanup) => {
                    return BuildError::CleanupFailed {
                        domid: self.domid,
                        original: Box::new(err),
                        cleanup,
                    }
                }
            }
        }
        err
    }
}

/// The start_info page the layout describes.
fn start_info(
    layout: &Layout,
    cmdline: &str,
    shared_info: Mfn,
    store: (Mfn, Port),
    console: (Mfn, Port),
) -> StartInfo {
    let mut si = StartInfo::new_zeroed();
    si.magic[..START_INFO_MAGIC_X86_64.len()].copy_from_slice(START_INFO_MAGIC_X86_64);
    si.nr_pages = layout.nr_pages;
    si.shared_info = shared_info.to_addr();
    si.flags = 0;
    si.store_mfn = store.0.get();
    si.store_evtchn = store.1.get();
    si.console_mfn = console.0.get();
    si.console_evtchn = console.1.get();
    si.pt_base = layout.page_tables.va.get();
    si.nr_pt_frames = layout.page_tables.pages;
    si.mfn_list = layout.p2m.va.get();
    si.mod_start = 0;
    si.mod_len = 0;
    let n = cmdline.len().min(MAX_GUEST_CMDLINE - 1);
    si.cmd_line[..n].copy_from_slice(&cmdline.as_bytes()[..n]);
    // The p2m is inside the initial mapping, so libxc leaves these 0.
    si.first_p2m_pfn = 0;
    si.nr_p2m_frames = 0;
    si
}

/// vCPU 0's initial context (libxc's `vcpu_x86_64`).
fn boot_context(layout: &Layout, l4: Mfn) -> VcpuGuestContext {
    let mut c = VcpuGuestContext::new_zeroed();
    let r = &mut c.user_regs;
    r.rip = layout.entry.get();
    r.rsp = layout.stack_top().get();
    r.rsi = layout.start_info.va.get();
    r.rflags = vc::RFLAGS_IF;
    r.cs = FLAT_KERNEL_CS;
    r.ss = FLAT_KERNEL_SS;
    r.ds = FLAT_KERNEL_DS;
    r.es = FLAT_KERNEL_DS;
    r.fs = FLAT_KERNEL_DS;
    r.gs = FLAT_KERNEL_DS;
    c.kernel_ss = u64::from(FLAT_KERNEL_SS);
    c.kernel_sp = layout.stack_top().get();
    c.debugreg[6] = DR6_DEFAULT;
    c.debugreg[7] = DR7_DEFAULT;
    c.flags = vc::VGCF_IN_KERNEL | vc::VGCF_ONLINE;
    c.ctrlreg[3] = vc::xen_pfn_to_cr3(l4.get());
    c
}

/// What [`seed_grant_table`] grants: for the console and the xenstore ring, the frame
/// (a PV guest's MFN) and the backend domain; `None` leaves that entry alone (libxc's
/// "no such page", gfn −1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantSeed {
    /// Entry [`hypervisor::GNTTAB_RESERVED_CONSOLE`]: console ring and console backend.
    pub console: Option<(Mfn, DomId)>,
    /// Entry [`hypervisor::GNTTAB_RESERVED_XENSTORE`]: store ring and xenstored's domain.
    pub store: Option<(Mfn, DomId)>,
}

/// Seeds `dom`'s reserved grant entries as libxc's `xc_dom_gnttab_seed` does (after
/// building and at the end of a restore): maps grant-table frame 0 through
/// `XENMEM_acquire_resource` and sets each entry to `GTF_permit_access`, the backend's
/// domain and the ring's frame, leaving every other entry as it is. An entry whose
/// backend is `dom` itself is left alone, as libxc does. Xen 4.17's xenstored maps the
/// store ring through entry 1 on INTRODUCE, so this must come first.
///
/// # Errors
/// The backend's error for mapping the grant table (Xen's errno), or a frame that does
/// not fit a version 1 entry (32 bits).
pub fn seed_grant_table<X: Xen + ?Sized>(
    xen: &mut X,
    dom: DomId,
    seed: GrantSeed,
) -> Result<(), XenError> {
    const OP: &str = "seed grant table";
    let mut page = vec![0u8; PAGE_SIZE];
    xen.resource_read(
        dom,
        hypervisor::XENMEM_RESOURCE_GRANT_TABLE,
        hypervisor::XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED,
        0,
        &mut page,
    )?;
    for (index, entry) in [
        (hypervisor::GNTTAB_RESERVED_CONSOLE, seed.console),
        (hypervisor::GNTTAB_RESERVED_XENSTORE, seed.store),
    ] {
        let Some((mfn, backend)) = entry else {
            continue;
        };
        if backend == dom {
            continue;
        }
        let frame = u32::try_from(mfn.get()).map_err(|_| XenError::BadArgument {
            op: OP,
            what: format!("MFN {mfn} does not fit a version 1 grant entry"),
        })?;
        let e = hypervisor::GrantEntryV1 {
            flags: hypervisor::GTF_PERMIT_ACCESS,
            domid: backend.get(),
            frame,
        };
        let off = index as usize * hypervisor::GRANT_ENTRY_V1_SIZE;
        page[off..off + hypervisor::GRANT_ENTRY_V1_SIZE].copy_from_slice(&e.to_bytes());
    }
    xen.resource_write(
        dom,
        hypervisor::XENMEM_RESOURCE_GRANT_TABLE,
        hypervisor::XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED,
        0,
        &page,
    )
}

/// dom0's name (`/local/domain/0/name` on a real host, written by xen-init-dom0).
pub const DOM0_NAME: &str = "Domain-0";

/// The domain named `name`, if any: libxl's uniqueness check (`libxl__domain_rename` via
/// `libxl_name_to_domid`), reading each `/local/domain/<id>/name`. The empty name is
/// never "in use" (libxl only checks nonempty names); [`DOM0_NAME`] is dom0's.
///
/// # Errors
/// xenstore errors other than a missing node.
pub fn domain_named<X: Xen + ?Sized>(xen: &mut X, name: &str) -> Result<Option<DomId>, XenError> {
    if name.is_empty() {
        return Ok(None);
    }
    if name == DOM0_NAME {
        return Ok(Some(DomId::DOM0));
    }
    let ids = match xen.xs_directory(XS_NO_TX, "/local/domain") {
        Ok(ids) => ids,
        Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    for id in ids {
        let Ok(dom) = id.parse::<u16>() else {
            continue;
        };
        match xen.xs_read(XS_NO_TX, &format!("/local/domain/{dom}/name")) {
            Ok(v) if v == name.as_bytes() => return Ok(Some(DomId::new(dom))),
            Ok(_) => {}
            Err(e) if matches!(e.errno(), Some(Errno::ENOENT | Errno::EACCES)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}
