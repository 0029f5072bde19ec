//! The built-in toy guests (`kernel = "toy:<name>"`), a one-call "create a domain from
//! a config" helper, and oracle checks of a running toy guest through the [`Xen`]
//! trait.
//!
//! These names are stable (the CLI and the harness use them):
//!
//! - [`BuiltinToys`]: the [`ToyGuests`] of the `guest-model` crate
//!   (`toy:counter`, `toy:epoch`, `toy:pagetable`, `toy:pingpong`, `toy:checksum`),
//!   parameters from `extra`;
//! - [`create`] / [`create_with_progress`]: [`load_kernel`] with [`BuiltinToys`], then
//!   [`build`]; the error ([`CreateError`]) says whether the kernel or the build failed;
//! - [`toy_params`]: the toy parameters a config names (`None` for a kernel file);
//! - [`read_guest_pages`], [`guest_p2m`]: a domain's memory by PFN, read with
//!   `foreign_read` (the P2M either given, e.g. [`BuiltDomain::p2m`], or found through
//!   shared_info's frame list list as a saver does);
//! - [`check_oracle`]: reads the guest's status block and oracle region and runs its
//!   oracle (with the console transcript if the caller has one) — a [`Verdict`].
//!
//! Reading memory with the domain running is allowed but may see a half-done step:
//! pass [`Stop::Anywhere`] then, or pause the domain first ([`Stop::SafePoint`] is
//! only right at a safe point: suspended, blocked between steps, or done).

use std::collections::BTreeMap;

use guest_model::guests::Oracle;
use guest_model::{Guest, GuestMemory, OracleError, Status, Stop, ToyError, ToyParams};
use hypervisor::abi::shared::SharedInfo;
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Errno, Mfn, Pfn, Xen, XenError};
use zerocopy::FromBytes;

use super::{
    build, load_kernel, BuildError, BuildOptions, BuildStep, BuiltDomain, KernelImage,
    LoadKernelError, ToyGuests,
};
use crate::config::{DomainConfig, KernelSpec};
use crate::p2m::{self, P2mError};
use crate::save::xc;

/// The toy guests of the `guest-model` crate, for [`load_kernel`]: `toy:<name>` with
/// its parameters in the command line (`extra`), e.g. `toy:counter` with
/// `"pages=16 report=0"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuiltinToys;

impl BuiltinToys {
    /// The kernel image of a toy guest (flat, at its `virt_base`, with the hypercall
    /// page the toy asks for).
    ///
    /// # Errors
    /// The [`ToyError`] of an unknown guest or bad parameters.
    pub fn image(name: &str, extra: &str) -> Result<KernelImage, ToyError> {
        let toy = guest_model::toy(name, extra)?;
        kernel_image(&toy)
    }
}

/// The [`KernelImage`] of a toy image.
///
/// # Errors
/// [`ToyError::Assemble`] if the toy's addresses are not loadable (a bug in
/// `guest-model`).
pub fn kernel_image(toy: &guest_model::ToyImage) -> Result<KernelImage, ToyError> {
    KernelImage::from_flat(toy.bytes.clone(), toy.virt_base, toy.entry)
        .and_then(|i| i.with_hypercall_page(toy.hypercall_page))
        .map_err(|e| ToyError::Assemble(format!("toy image is not loadable: {e}")))
}

impl ToyGuests for BuiltinToys {
    fn toy_image(&self, name: &str, cmdline: &str) -> Result<KernelImage, String> {
        BuiltinToys::image(name, cmdline).map_err(|e| e.to_string())
    }
}

/// The toy parameters `config` describes: `Some` for `kernel = "toy:<name>"`, `None`
/// for a kernel file.
///
/// # Errors
/// The [`ToyError`] of an unknown guest or bad parameters in `extra`.
pub fn toy_params(config: &DomainConfig) -> Result<Option<ToyParams>, ToyError> {
    match &config.kernel {
        KernelSpec::File(_) => Ok(None),
        KernelSpec::Toy(name) => {
            let guest = Guest::from_name(name)
                .ok_or_else(|| ToyError::UnknownGuest { name: name.clone() })?;
            ToyParams::parse(guest, config.cmdline()).map(Some)
        }
    }
}

/// Why [`create`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The kernel could not be loaded (nothing was asked of Xen).
    #[error("domain {name:?}: {source}")]
    Kernel {
        /// The config's `name`.
        name: String,
        /// Why.
        #[source]
        source: LoadKernelError,
    },
    /// The build failed (the half-built domain has been destroyed).
    #[error("domain {name:?}: {source}")]
    Build {
        /// The config's `name`.
        name: String,
        /// Why.
        #[source]
        source: BuildError,
    },
}

/// Creates the domain `config` describes: loads its kernel (a [`BuiltinToys`] guest or
/// a file) and [`build`]s it.
///
/// # Errors
/// [`CreateError`].
pub fn create<X: Xen + ?Sized>(
    xen: &mut X,
    config: &DomainConfig,
    options: &BuildOptions,
) -> Result<BuiltDomain, CreateError> {
    create_with_progress(xen, config, options, None)
}

/// [`create`], telling `progress` each [`BuildStep`] as it starts.
///
/// # Errors
/// [`CreateError`].
pub fn create_with_progress<X: Xen + ?Sized>(
    xen: &mut X,
    config: &DomainConfig,
    options: &BuildOptions,
    progress: Option<&mut dyn FnMut(BuildStep)>,
) -> Result<BuiltDomain, CreateError> {
    let image = load_kernel(config, &BuiltinToys).map_err(|source| CreateError::Kernel {
        name: config.name.clone(),
        source,
    })?;
    build(xen, config, &image, options, progress).map_err(|source| CreateError::Build {
        name: config.name.clone(),
        source,
    })
}

/// Why a toy guest's memory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GuestReadError {
    /// A Xen call failed.
    #[error("reading the memory of d{dom}: {source}")]
    Xen {
        /// The domain.
        dom: DomId,
        /// The call.
        #[source]
        source: XenError,
    },
    /// A page could not be read.
    #[error("reading pfn {pfn} (mfn {mfn}) of d{dom} failed with {errno}")]
    Page {
        /// The domain.
        dom: DomId,
        /// The page.
        pfn: Pfn,
        /// Its MFN.
        mfn: Mfn,
        /// The per-page error.
        errno: Errno,
    },
    /// The P2M has no entry for a page the oracle needs.
    #[error("d{dom} has no memory at pfn {pfn} (its p2m has {len} entries)")]
    NoPfn {
        /// The domain.
        dom: DomId,
        /// The page.
        pfn: Pfn,
        /// Entries in the P2M used.
        len: usize,
    },
    /// The guest's P2M could not be found through its shared_info.
    #[error(transparent)]
    P2m(#[from] P2mError),
}

/// Guest pages by PFN, as read from a domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestPages {
    /// The pages read.
    pub pages: BTreeMap<Pfn, Vec<u8>>,
}

impl GuestMemory for GuestPages {
    fn page(&self, pfn: Pfn) -> Option<&[u8]> {
        self.pages.get(&pfn).map(Vec::as_slice)
    }
}

/// Foreign-reads pages `pfns` of `dom`, translating them through `p2m` (`p2m[pfn]` =
/// MFN, as in [`BuiltDomain::p2m`] or a restore's result).
///
/// # Errors
/// [`GuestReadError`] naming the PFN.
pub fn read_guest_pages<X: Xen + ?Sized>(
    xen: &mut X,
    dom: DomId,
    p2m: &[Mfn],
    pfns: impl IntoIterator<Item = Pfn>,
) -> Result<GuestPages, GuestReadError> {
    let pfns: Vec<Pfn> = pfns.into_iter().collect();
    let mut mfns = Vec::with_capacity(pfns.len());
    for &pfn in &pfns {
        match p2m.get(pfn.index()) {
            Some(&m) if m != Mfn::INVALID => mfns.push(m),
            _ => {
                return Err(GuestReadError::NoPfn {
                    dom,
                    pfn,
                    len: p2m.len(),
                })
            }
        }
    }
    let mut out = GuestPages::default();
    for (pc, mc) in pfns.chunks(64).zip(mfns.chunks(64)) {
        match xc::read_frames(xen, dom, mc).map_err(|source| GuestReadError::Xen { dom, source })? {
            Ok(buf) => {
                for (i, &pfn) in pc.iter().enumerate() {
                    out.pages
                        .insert(pfn, buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE].to_vec());
                }
            }
            Err((i, errno)) => {
                return Err(GuestReadError::Page {
                    dom,
                    pfn: pc[i],
                    mfn: mc[i],
                    errno,
                })
            }
        }
    }
    Ok(out)
}

/// `dom`'s P2M as the guest publishes it (shared_info's `arch.max_pfn` and frame list
/// list, or its linear p2m), read as a saver reads it.
///
/// # Errors
/// [`GuestReadError`]; in particular [`P2mError::NoFrameList`] for a guest that has not
/// (re)built its frame list yet (just restored and not run).
pub fn guest_p2m<X: Xen + ?Sized>(xen: &mut X, dom: DomId) -> Result<Vec<Mfn>, GuestReadError> {
    let info = xc::domain_info(xen, dom).map_err(|source| GuestReadError::Xen { dom, source })?;
    let frame = Mfn::new(info.shared_info_frame);
    let page = match xc::read_frames(xen, dom, &[frame])
        .map_err(|source| GuestReadError::Xen { dom, source })?
    {
        Ok(b) => b,
        Err((_, errno)) => {
            return Err(GuestReadError::P2m(P2mError::Read {
                dom,
                what: "shared_info".into(),
                mfn: frame.get(),
                errno,
            }))
        }
    };
    let shinfo = SharedInfo::read_from_prefix(&page[..])
        .map(|(s, _)| s)
        .map_err(|_| {
            GuestReadError::P2m(P2mError::Read {
                dom,
                what: "shared_info (short page)".into(),
                mfn: frame.get(),
                errno: Errno::EFAULT,
            })
        })?;
    let m2p = p2m::read_m2p(xen)?;
    Ok(p2m::read_p2m(xen, dom, &shinfo, &m2p)?.entries)
}

/// What [`check_oracle`] checks and with what.
#[derive(Clone, Copy, Debug)]
pub struct OracleCheck<'a> {
    /// Where the guest is stopped.
    pub stop: Stop,
    /// The domain's P2M; `None` finds it with [`guest_p2m`].
    pub p2m: Option<&'a [Mfn]>,
    /// The console transcript (everything the guest wrote since boot); `None` checks
    /// memory only.
    pub console: Option<&'a str>,
}

impl Default for OracleCheck<'_> {
    fn default() -> Self {
        OracleCheck {
            stop: Stop::Anywhere,
            p2m: None,
            console: None,
        }
    }
}

/// What an oracle said about a guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Memory (and console, if given) are what the oracle predicts for the guest's
    /// step count; its status block.
    Holds(Status),
    /// The first disagreement.
    Fails(OracleError),
}

impl Verdict {
    /// Does the oracle hold?
    #[must_use]
    pub fn holds(&self) -> bool {
        matches!(self, Verdict::Holds(_))
    }

    /// The verdict as a `Result`.
    ///
    /// # Errors
    /// The oracle's disagreement.
    pub fn into_result(self) -> Result<Status, OracleError> {
        match self {
            Verdict::Holds(s) => Ok(s),
            Verdict::Fails(e) => Err(e),
        }
    }
}

/// The PFNs an oracle of `params` reads: the status block and the guest region.
#[must_use]
pub fn oracle_pfns(params: &ToyParams) -> Vec<Pfn> {
    let mut v = vec![Status::PFN];
    v.extend((Oracle::region(params).start.get()..Oracle::region(params).end.get()).map(Pfn::new));
    v
}

/// Reads toy guest `dom`'s status block and oracle region through `xen` and checks
/// them (and `check.console`) against the oracle of `params`.
///
/// # Errors
/// [`GuestReadError`] if the memory cannot be read; an oracle that disagrees is a
/// [`Verdict::Fails`], not an error.
pub fn check_oracle<X: Xen + ?Sized>(
    xen: &mut X,
    dom: DomId,
    params: &ToyParams,
    check: &OracleCheck<'_>,
) -> Result<Verdict, GuestReadError> {
    let found;
    let p2m = match check.p2m {
        Some(p) => p,
        None => {
            found = guest_p2m(xen, dom)?;
            &found[..]
        }
    };
    let mem = read_guest_pages(xen, dom, p2m, oracle_pfns(params))?;
    let oracle = Oracle::new(params);
    let r = match check.console {
        Some(c) => oracle.check_all(&mem, c, check.stop),
        None => oracle.check(&mem, check.stop),
    };
    Ok(match r {
        Ok(s) => Verdict::Holds(s),
        Err(e) => Verdict::Fails(e),
    })
}

/// The status block of toy guest `dom` (whatever its state, crashed included).
///
/// # Errors
/// [`GuestReadError`], or `Ok(Err(..))` if the block is not there (bad magic).
pub fn read_status<X: Xen + ?Sized>(
    xen: &mut X,
    dom: DomId,
    p2m: &[Mfn],
) -> Result<Result<Status, OracleError>, GuestReadError> {
    let mem = read_guest_pages(xen, dom, p2m, [Status::PFN])?;
    Ok(Status::read_raw(&mem))
}
