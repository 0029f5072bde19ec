//! Non-live save of a PV guest (stream.md §3 and §5; xg_sr_save.c,
//! xg_sr_save_x86_pv.c, libxl's `xl save`).
//!
//! | step | Xen calls |
//! |---|---|
//! | suspend | xenstore `control/shutdown = "suspend"`, watch, getdomaininfo ([`crate::suspend`]) |
//! | confirm | getdomaininfo: `XEN_DOMINF_shutdown` with reason `SHUTDOWN_suspend` |
//! | M2P | `XENMEM_maximum_ram_page`, `XENMEM_machphys_mfn_list`, foreign reads of DOMID_XEN |
//! | shared_info, P2M | foreign read of `shared_info_frame`, then the p2m tree ([`crate::p2m`]) |
//! | headers | `xen_version(XENVER_version)` for the domain header |
//! | PAGE_DATA | getpageframeinfo3 (≤ 1024 MFNs), foreign reads, page tables normalised |
//! | TSC | gettscinfo |
//! | vCPUs | getvcpuinfo (online?), getvcpucontext, get_ext_vcpucontext, getvcpuextstate, get_vcpu_msrs |
//! | afterwards | destroydomain (default), or `resume_cooperative` (`-c`), or pause + resume (`-p`) |
//!
//! Records written: xl header (JSON config), libxl header, LIBXC_CONTEXT, libxc image
//! and domain headers, X86_PV_INFO (8, 4), STATIC_DATA_END, X86_PV_P2M_FRAMES,
//! PAGE_DATA × ⌈p2m size / 1024⌉, X86_TSC_INFO, SHARED_INFO, per online vCPU BASIC and
//! EXTENDED (XSAVE and MSRS only when non-empty), libxc END, libxl END.
//!
//! Conversions (MFN → PFN through the M2P, checked against the P2M): every present
//! PTE of an L1–L4 page (Xen's L4 slots 256–271 zeroed; a superpage or a frame outside
//! the guest's pseudo-physical map is fatal, naming PFN and entry); vCPU0's `rdx`
//! (start_info), every vCPU's `cr3`, `cr1` (stored as `1 | pfn << 12`) and GDT frames.
//! The guest itself has already turned start_info's store/console MFNs into PFNs.
//!
//! **Failure**: once the domain is suspended, any failure resumes it in place
//! ([`crate::suspend::resume_cooperative`]: its suspend call returns 1) before the
//! error is returned. [`save_to_file`] writes to a temporary file in the target's
//! directory, syncs it and renames it only once complete; the domain is destroyed only
//! after that.

pub mod xc;

use std::io::Write;
use std::path::{Path, PathBuf};

use hypervisor::abi::domctl::{self as dc};
use hypervisor::abi::mm::{
    PTE_ADDR_MASK, PTE_PRESENT, PTE_PSE, ROOT_PAGETABLE_FIRST_XEN_SLOT,
    ROOT_PAGETABLE_LAST_XEN_SLOT,
};
use hypervisor::abi::shared::SharedInfo;
use hypervisor::abi::vcpu::{xen_cr3_to_pfn, xen_pfn_to_cr3, VcpuGuestContext};
use hypervisor::abi::version::XENVER_VERSION;
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Errno, Mfn, Pfn, Xen, XenError, XS_NO_TX};
use zerocopy::{FromBytes, IntoBytes};

use crate::p2m::{self, M2p, P2m, P2mError};
use crate::stream::{
    DomainHeader, ImageHeader, LibxcRecord, LibxlHeader, LibxlRecord, PageDataEntry, PageType,
    StreamError, StreamWriter, VcpuBlob, VcpuMsr, VcpuMsrs, X86PvInfo, X86PvP2mFrames, X86TscInfo,
    XlHeader, PAGE_DATA_MAX_COUNT,
};
use crate::suspend::{self, SuspendError};

/// `FIRST_RESERVED_GDT_ENTRY`: the most GDT entries a PV guest may have.
pub const MAX_GDT_ENTS: u64 = 14 * 512;

/// What happens to the domain after a successful save.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterSave {
    /// Destroy it (`xl save`).
    #[default]
    Destroy,
    /// Resume it in place; its suspend call returns 1 (`xl save -c`).
    Checkpoint,
    /// Resume it in place but leave it paused (`xl save -p`).
    LeavePaused,
}

/// The stage a save is in, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Asking the guest to suspend.
    Suspend,
    /// Locating the P2M and reading the M2P.
    Setup,
    /// Sending memory.
    Memory,
    /// Sending vCPU state.
    Vcpus,
    /// Everything written.
    Done,
}

/// A progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The stage.
    pub stage: Stage,
    /// PFNs sent so far.
    pub pfns_done: u64,
    /// PFNs to send in all.
    pub pfns_total: u64,
    /// Bytes written so far.
    pub bytes: u64,
}

/// How to save.
pub struct SaveOptions<'a> {
    /// What to do with the domain afterwards.
    pub after: AfterSave,
    /// The domain configuration to store in the xl header (JSON). `None` stores a
    /// minimal one (name, vCPUs, memory) taken from the domain.
    pub config_json: Option<String>,
    /// Told about progress.
    pub progress: Option<&'a mut dyn FnMut(Progress)>,
    /// The domain has already suspended itself: do not ask it (it must be shut down
    /// with `SHUTDOWN_suspend`).
    pub already_suspended: bool,
    /// Timeout of each suspend phase, in ns of the backend's time.
    pub suspend_timeout_ns: u64,
}

impl Default for SaveOptions<'_> {
    fn default() -> Self {
        Self {
            after: AfterSave::Destroy,
            config_json: None,
            progress: None,
            already_suspended: false,
            suspend_timeout_ns: suspend::DEFAULT_TIMEOUT_NS,
        }
    }
}

impl std::fmt::Debug for SaveOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaveOptions")
            .field("after", &self.after)
            .field("config_json", &self.config_json)
            .field("already_suspended", &self.already_suspended)
            .field("suspend_timeout_ns", &self.suspend_timeout_ns)
            .finish_non_exhaustive()
    }
}

/// What a save wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveSummary {
    /// The domain saved.
    pub dom: DomId,
    /// Largest PFN (X86_PV_P2M_FRAMES end_pfn).
    pub max_pfn: u64,
    /// Pages whose contents were written.
    pub pages: u64,
    /// Of those, page tables.
    pub page_tables: u64,
    /// vCPU BASIC records.
    pub vcpus: u32,
    /// Bytes written.
    pub bytes: u64,
}

/// Why a save failed. Unless said otherwise the domain has been resumed (or was never
/// suspended) and is running again.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The guest did not suspend; it keeps running.
    #[error(transparent)]
    Suspend(#[from] SuspendError),
    /// The domain is not suspended (with [`SaveOptions::already_suspended`]).
    #[error("d{dom} is not suspended (getdomaininfo flags {flags:#x})")]
    NotSuspended {
        /// The domain.
        dom: DomId,
        /// Its flags.
        flags: u32,
    },
    /// A Xen call failed.
    #[error("saving d{dom}: {what}: {source}")]
    Xen {
        /// The domain.
        dom: DomId,
        /// What was being done.
        what: &'static str,
        /// The call.
        #[source]
        source: XenError,
    },
    /// The P2M could not be found.
    #[error(transparent)]
    P2m(#[from] P2mError),
    /// A page could not be read.
    #[error("saving d{dom}: reading pfn {pfn:#x} (mfn {mfn:#x}) failed with {errno}")]
    ReadPage {
        /// The domain.
        dom: DomId,
        /// The page.
        pfn: u64,
        /// Its frame.
        mfn: u64,
        /// The per-page error.
        errno: Errno,
    },
    /// A page-table entry maps a frame outside the guest.
    #[error("saving d{dom}: page table pfn {pfn:#x} (L{level}) entry {index} maps mfn {mfn:#x}, which is not in the guest's pseudo-physical map (a foreign, grant or I/O mapping); the guest must drop it before suspending")]
    ForeignPte {
        /// The domain.
        dom: DomId,
        /// The page table.
        pfn: u64,
        /// Its level.
        level: u8,
        /// The entry.
        index: usize,
        /// The frame it names.
        mfn: u64,
    },
    /// A page-table entry maps a superpage.
    #[error("saving d{dom}: page table pfn {pfn:#x} (L{level}) entry {index} maps a superpage (unsupported)")]
    Superpage {
        /// The domain.
        dom: DomId,
        /// The page table.
        pfn: u64,
        /// Its level.
        level: u8,
        /// The entry.
        index: usize,
    },
    /// vCPU state names a frame outside the guest.
    #[error("saving d{dom}: vCPU {vcpu}: {what}")]
    Vcpu {
        /// The domain.
        dom: DomId,
        /// The vCPU.
        vcpu: u32,
        /// What is wrong.
        what: String,
    },
    /// Writing the stream failed.
    #[error("saving d{dom}: writing the stream failed")]
    Stream {
        /// The domain.
        dom: DomId,
        /// The writer's error.
        #[source]
        source: StreamError,
    },
    /// The save file could not be created, synced or renamed.
    #[error("saving d{dom} to {path}: {source}")]
    File {
        /// The domain.
        dom: DomId,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The save failed and resuming the domain failed too: it is still suspended.
    #[error("{original}; resuming d{dom} failed too ({resume}): it is left suspended")]
    ResumeFailed {
        /// The domain.
        dom: DomId,
        /// Why the save failed.
        #[source]
        original: Box<SaveError>,
        /// Why the resume failed.
        resume: XenError,
    },
    /// The stream is complete, but the requested after-save action failed.
    #[error("d{dom} was saved, but {what} failed: {source}")]
    After {
        /// The domain.
        dom: DomId,
        /// "destroying it", "resuming it", …
        what: &'static str,
        /// The call.
        #[source]
        source: XenError,
    },
}

/// Saves `dom` to `out` and then does [`SaveOptions::after`].
///
/// # Errors
/// [`SaveError`]; the domain has been resumed (see the variants).
pub fn save<X: Xen + ?Sized, W: Write>(
    x: &mut X,
    dom: DomId,
    out: W,
    mut opts: SaveOptions<'_>,
) -> Result<SaveSummary, SaveError> {
    let after = opts.after;
    let summary = save_stream(x, dom, out, &mut opts)?;
    finish(x, dom, after)?;
    Ok(summary)
}

/// [`save`] to a file: written under a temporary name in the same directory, synced
/// and renamed to `path` only when complete (a failed save leaves no file). The
/// after-save action runs only once the file is in place.
///
/// # Errors
/// [`SaveError`].
pub fn save_to_file<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    path: &Path,
    mut opts: SaveOptions<'_>,
) -> Result<SaveSummary, SaveError> {
    let file_err = |source| SaveError::File {
        dom,
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        file_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.xi-tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(file_err)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let after = opts.after;
    let result = save_stream(x, dom, &mut w, &mut opts).and_then(|s| {
        let done = w
            .flush()
            .and_then(|()| w.get_ref().sync_all())
            .and_then(|()| std::fs::rename(&tmp, path))
            .and_then(|()| {
                std::fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .or(Ok(()))
            });
        match done {
            Ok(()) => Ok(s),
            Err(e) => Err(resume_after_failure(x, dom, file_err(e))),
        }
    });
    match result {
        Ok(s) => {
            finish(x, dom, after)?;
            Ok(s)
        }
        Err(e) => {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Suspends (unless already suspended) and writes the stream; on a failure after the
/// suspend the domain is resumed. Does not do the after-save action.
///
/// # Errors
/// [`SaveError`].
pub fn save_stream<X: Xen + ?Sized, W: Write>(
    x: &mut X,
    dom: DomId,
    out: W,
    opts: &mut SaveOptions<'_>,
) -> Result<SaveSummary, SaveError> {
    report(opts, Stage::Suspend, 0, 0, 0);
    if !opts.already_suspended {
        suspend::suspend(x, dom, opts.suspend_timeout_ns)?;
    }
    let info = xc::domain_info(x, dom).map_err(|source| SaveError::Xen {
        dom,
        what: "getdomaininfo",
        source,
    })?;
    if !suspend::is_suspended(&info) {
        return Err(SaveError::NotSuspended {
            dom,
            flags: info.flags,
        });
    }
    let mut w = StreamWriter::new(out);
    match write_stream(x, dom, &info, &mut w, opts) {
        Ok(s) => Ok(s),
        Err(e) => Err(resume_after_failure(x, dom, e)),
    }
}

fn resume_after_failure<X: Xen + ?Sized>(x: &mut X, dom: DomId, e: SaveError) -> SaveError {
    match suspend::resume_cooperative(x, dom) {
        Ok(()) => e,
        Err(resume) => SaveError::ResumeFailed {
            dom,
            original: Box::new(e),
            resume,
        },
    }
}

/// The after-save action.
fn finish<X: Xen + ?Sized>(x: &mut X, dom: DomId, after: AfterSave) -> Result<(), SaveError> {
    let r = match after {
        AfterSave::Destroy => xc::destroy(x, dom).map_err(|e| ("destroying it", e)),
        AfterSave::Checkpoint => {
            suspend::resume_cooperative(x, dom).map_err(|e| ("resuming it", e))
        }
        AfterSave::LeavePaused => xc::pause(x, dom)
            .and_then(|()| suspend::resume_fast(x, dom))
            .map_err(|e| ("resuming it paused", e)),
    };
    r.map_err(|(what, source)| SaveError::After { dom, what, source })
}

fn report(opts: &mut SaveOptions<'_>, stage: Stage, pfns_done: u64, pfns_total: u64, bytes: u64) {
    if let Some(p) = opts.progress.as_mut() {
        p(Progress {
            stage,
            pfns_done,
            pfns_total,
            bytes,
        });
    }
}

/// The JSON stored when the caller gives none: what restore needs to recreate the
/// domain, in libxl's `libxl_domain_config` shape.
fn default_config<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    info: &dc::DomctlGetDomainInfo,
) -> String {
    let name = x
        .xs_read(XS_NO_TX, &format!("/local/domain/{}/name", dom.get()))
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_else(|| format!("d{}", dom.get()));
    let vcpus = info.max_vcpu_id.wrapping_add(1);
    let max_memkb = info.max_pages.saturating_mul(4);
    let target_kib = x
        .xs_read(
            XS_NO_TX,
            &format!("/local/domain/{}/memory/target", dom.get()),
        )
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(max_memkb);
    serde_json::json!({
        "c_info": { "type": "pv", "name": name, "uuid": uuid_string(&info.handle) },
        "b_info": { "max_vcpus": vcpus, "max_memkb": max_memkb, "target_memkb": target_kib },
    })
    .to_string()
}

fn uuid_string(h: &[u8; 16]) -> String {
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

struct Ctx<'m> {
    dom: DomId,
    m2p: &'m M2p,
    p2m: &'m P2m,
}

impl Ctx<'_> {
    fn pfn(&self, mfn: u64) -> Option<u64> {
        self.p2m.pfn_of(self.m2p, Mfn::new(mfn)).map(Pfn::get)
    }
}

fn write_stream<X: Xen + ?Sized, W: Write>(
    x: &mut X,
    dom: DomId,
    info: &dc::DomctlGetDomainInfo,
    w: &mut StreamWriter<W>,
    opts: &mut SaveOptions<'_>,
) -> Result<SaveSummary, SaveError> {
    let xe = |what: &'static str| move |source| SaveError::Xen { dom, what, source };
    let se = |source| SaveError::Stream { dom, source };
    report(opts, Stage::Setup, 0, 0, 0);
    let m2p = p2m::read_m2p(x)?;
    let shinfo_page = read_shared_info(x, dom, info)?;
    let shinfo = SharedInfo::read_from_prefix(&shinfo_page[..])
        .map_err(|_| SaveError::Vcpu {
            dom,
            vcpu: 0,
            what: "shared_info too short".into(),
        })?
        .0;
    let p2m = p2m::read_p2m(x, dom, &shinfo, &m2p)?;
    let ctx = Ctx {
        dom,
        m2p: &m2p,
        p2m: &p2m,
    };
    let max_pfn = p2m.max_pfn();
    let mut frame_pfns = Vec::with_capacity(p2m.frames.len());
    for (i, f) in p2m.frames.iter().enumerate() {
        let pfn = ctx.pfn(f.get()).ok_or(P2mError::NotOwned {
            dom,
            level: if p2m.linear {
                "linear p2m"
            } else {
                "frame list"
            },
            index: i as u64,
            mfn: f.get(),
        })?;
        frame_pfns.push(Pfn::new(pfn));
    }

    // Headers.
    let config = match opts.config_json.clone() {
        Some(c) => c,
        None => default_config(x, dom, info),
    };
    let version = x
        .xen_version(XENVER_VERSION as u32, &mut [])
        .map_err(xe("xen_version"))?;
    let version = u32::try_from(version).unwrap_or(0);
    w.write_xl_header(&XlHeader::with_json_config(&config))
        .map_err(se)?;
    w.write_libxl_header(&LibxlHeader::default()).map_err(se)?;
    w.write_libxl_record(&LibxlRecord::LibxcContext)
        .map_err(se)?;
    w.write_image_header(&ImageHeader::default()).map_err(se)?;
    w.write_domain_header(&DomainHeader::x86_pv(version >> 16, version & 0xffff))
        .map_err(se)?;
    w.write_libxc_record(&LibxcRecord::X86PvInfo(X86PvInfo::X86_64))
        .map_err(se)?;
    w.write_libxc_record(&LibxcRecord::StaticDataEnd)
        .map_err(se)?;
    w.write_libxc_record(&LibxcRecord::X86PvP2mFrames(X86PvP2mFrames {
        start_pfn: 0,
        end_pfn: u32::try_from(max_pfn).unwrap_or(u32::MAX),
        frames: frame_pfns,
    }))
    .map_err(se)?;

    // Memory.
    let total = max_pfn + 1;
    let mut pages = 0u64;
    let mut tables = 0u64;
    let mut start = 0u64;
    let mut batch = Batch::default();
    while start < total {
        let end = (start + u64::from(PAGE_DATA_MAX_COUNT)).min(total);
        let (n, t) = send_batch(x, &ctx, w, &mut batch, start, end)?;
        pages += n;
        tables += t;
        start = end;
        let bytes = w.offset();
        report(opts, Stage::Memory, start, total, bytes);
    }

    // End of checkpoint: TSC, SHARED_INFO, vCPUs.
    report(opts, Stage::Vcpus, total, total, w.offset());
    let tsc = xc::get_tsc_info(x, dom).map_err(xe("gettscinfo"))?;
    w.write_libxc_record(&LibxcRecord::X86TscInfo(X86TscInfo {
        mode: tsc.tsc_mode,
        khz: tsc.gtsc_khz,
        nsec: tsc.elapsed_nsec,
        incarnation: tsc.incarnation,
    }))
    .map_err(se)?;
    let shinfo_page = read_shared_info(x, dom, info)?;
    w.write_libxc_record(&LibxcRecord::SharedInfo(Box::new(shinfo_page)))
        .map_err(se)?;
    let mut vcpus = 0u32;
    if info.max_vcpu_id != u32::MAX {
        for vcpu in 0..=info.max_vcpu_id {
            if !xc::vcpu_online(x, dom, vcpu).map_err(xe("getvcpuinfo"))? {
                continue;
            }
            write_vcpu(x, &ctx, w, vcpu)?;
            vcpus += 1;
        }
    }
    w.write_libxc_record(&LibxcRecord::End).map_err(se)?;
    w.write_libxl_record(&LibxlRecord::End).map_err(se)?;
    w.flush().map_err(se)?;
    let bytes = w.offset();
    report(opts, Stage::Done, total, total, bytes);
    Ok(SaveSummary {
        dom,
        max_pfn,
        pages,
        page_tables: tables,
        vcpus,
        bytes,
    })
}

fn read_shared_info<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    info: &dc::DomctlGetDomainInfo,
) -> Result<[u8; PAGE_SIZE], SaveError> {
    let mfn = info.shared_info_frame;
    let page = xc::read_frames(x, dom, &[Mfn::new(mfn)])
        .map_err(|source| SaveError::Xen {
            dom,
            what: "reading shared_info",
            source,
        })?
        .map_err(|(_, errno)| SaveError::Vcpu {
            dom,
            vcpu: 0,
            what: format!("reading shared_info (mfn {mfn:#x}) failed with {errno}"),
        })?;
    let mut out = [0u8; PAGE_SIZE];
    out.copy_from_slice(&page);
    Ok(out)
}

/// Buffers reused by every PAGE_DATA batch, so sending memory allocates nothing per
/// batch.
#[derive(Default)]
struct Batch {
    /// `(pfn, mfn)` of the batch's valid pfns.
    valid: Vec<(u64, Mfn)>,
    mfns: Vec<Mfn>,
    types: Vec<u32>,
    entries: Vec<PageDataEntry>,
    /// `(pfn, mfn, type)` of the pages whose contents are sent.
    with_data: Vec<(u64, Mfn, PageType)>,
    data: Vec<u8>,
    errs: Vec<i32>,
}

/// One PAGE_DATA record for pfns `start..end`: (pages with data, page tables).
fn send_batch<X: Xen + ?Sized, W: Write>(
    x: &mut X,
    ctx: &Ctx<'_>,
    w: &mut StreamWriter<W>,
    b: &mut Batch,
    start: u64,
    end: u64,
) -> Result<(u64, u64), SaveError> {
    let dom = ctx.dom;
    b.valid.clear();
    b.valid
        .extend((start..end).filter_map(|p| ctx.p2m.mfn(Pfn::new(p)).map(|m| (p, m))));
    b.mfns.clear();
    b.mfns.extend(b.valid.iter().map(|v| v.1));
    xc::page_types_into(x, dom, &b.mfns, &mut b.types).map_err(|source| SaveError::Xen {
        dom,
        what: "getpageframeinfo3",
        source,
    })?;
    b.entries.clear();
    b.with_data.clear();
    let mut valid = b.valid.iter().zip(&b.types).peekable();
    for pfn in start..end {
        let ty = match valid.peek() {
            Some(&(&(p, mfn), &word)) if p == pfn => {
                valid.next();
                let ty = PageType::from_pfinfo(word).unwrap_or(PageType::XTab);
                if ty.has_data() {
                    b.with_data.push((pfn, mfn, ty));
                }
                ty
            }
            _ => PageType::XTab,
        };
        b.entries.push(PageDataEntry::new(Pfn::new(pfn), ty));
    }
    b.mfns.clear();
    b.mfns.extend(b.with_data.iter().map(|d| d.1));
    let read =
        xc::read_frames_into(x, dom, &b.mfns, &mut b.data, &mut b.errs).map_err(|source| {
            SaveError::Xen {
                dom,
                what: "reading memory",
                source,
            }
        })?;
    if let Err((i, errno)) = read {
        return Err(SaveError::ReadPage {
            dom,
            pfn: b.with_data[i].0,
            mfn: b.with_data[i].1.get(),
            errno,
        });
    }
    let mut tables = 0;
    for (&(pfn, _, ty), page) in b.with_data.iter().zip(b.data.chunks_exact_mut(PAGE_SIZE)) {
        if let Some(level) = ty.level() {
            normalise(ctx, pfn, level, page)?;
            tables += 1;
        }
    }
    w.write_page_data(&b.entries, &b.data)
        .map_err(|source| SaveError::Stream { dom, source })?;
    Ok((b.with_data.len() as u64, tables))
}

/// `normalise_pagetable` for a 64-bit guest.
fn normalise(ctx: &Ctx<'_>, pfn: u64, level: u8, page: &mut [u8]) -> Result<(), SaveError> {
    let dom = ctx.dom;
    for (index, e) in page.chunks_exact_mut(8).enumerate() {
        if level == 4
            && (ROOT_PAGETABLE_FIRST_XEN_SLOT..=ROOT_PAGETABLE_LAST_XEN_SLOT).contains(&index)
        {
            e.fill(0);
            continue;
        }
        let pte = u64::from_le_bytes(<[u8; 8]>::try_from(&*e).expect("8 bytes"));
        if pte & PTE_PRESENT == 0 {
            continue;
        }
        if level > 1 && pte & PTE_PSE != 0 {
            return Err(SaveError::Superpage {
                dom,
                pfn,
                level,
                index,
            });
        }
        let mfn = (pte & PTE_ADDR_MASK) >> 12;
        let to = ctx.pfn(mfn).ok_or(SaveError::ForeignPte {
            dom,
            pfn,
            level,
            index,
            mfn,
        })?;
        let new = (pte & !PTE_ADDR_MASK) | (to << 12);
        e.copy_from_slice(&new.to_le_bytes());
    }
    Ok(())
}

/// The saved form of a vCPU context: MFNs → PFNs.
fn normalise_vcpu(ctx: &Ctx<'_>, vcpu: u32, c: &mut VcpuGuestContext) -> Result<(), SaveError> {
    let dom = ctx.dom;
    let bad = |what: String| SaveError::Vcpu { dom, vcpu, what };
    if vcpu == 0 {
        let mfn = c.user_regs.rdx;
        c.user_regs.rdx = ctx.pfn(mfn).ok_or_else(|| {
            bad(format!(
                "rdx (start_info) names mfn {mfn:#x}, not in the guest's pseudo-physical map"
            ))
        })?;
    }
    if c.gdt_ents > MAX_GDT_ENTS {
        return Err(bad(format!(
            "gdt_ents {} is more than {MAX_GDT_ENTS}",
            c.gdt_ents
        )));
    }
    for i in 0..c.gdt_ents.div_ceil(512) as usize {
        let mfn = c.gdt_frames[i];
        c.gdt_frames[i] = ctx.pfn(mfn).ok_or_else(|| {
            bad(format!(
                "GDT frame {i} names mfn {mfn:#x}, not in the guest's pseudo-physical map"
            ))
        })?;
    }
    let cr3 = xen_cr3_to_pfn(c.ctrlreg[3]);
    let pfn = ctx.pfn(cr3).ok_or_else(|| {
        bad(format!(
            "cr3 names mfn {cr3:#x}, not in the guest's pseudo-physical map"
        ))
    })?;
    c.ctrlreg[3] = xen_pfn_to_cr3(pfn);
    if c.ctrlreg[1] != 0 {
        let cr1 = c.ctrlreg[1] >> 12;
        let pfn = ctx.pfn(cr1).ok_or_else(|| {
            bad(format!(
                "cr1 (user L4) names mfn {cr1:#x}, not in the guest's pseudo-physical map"
            ))
        })?;
        c.ctrlreg[1] = 1 | (pfn << 12);
    }
    Ok(())
}

fn write_vcpu<X: Xen + ?Sized, W: Write>(
    x: &mut X,
    ctx: &Ctx<'_>,
    w: &mut StreamWriter<W>,
    vcpu: u32,
) -> Result<(), SaveError> {
    let dom = ctx.dom;
    let xe = |what: &'static str| move |source| SaveError::Xen { dom, what, source };
    let se = |source| SaveError::Stream { dom, source };
    let mut c = xc::get_vcpu_context(x, dom, vcpu).map_err(xe("getvcpucontext"))?;
    normalise_vcpu(ctx, vcpu, &mut c)?;
    w.write_libxc_record(&LibxcRecord::X86PvVcpuBasic(VcpuBlob {
        vcpu_id: vcpu,
        context: c.as_bytes().to_vec(),
    }))
    .map_err(se)?;
    let ext = xc::get_ext_vcpu_context(x, dom, vcpu).map_err(xe("get_ext_vcpucontext"))?;
    if !ext.is_empty() {
        w.write_libxc_record(&LibxcRecord::X86PvVcpuExtended(VcpuBlob {
            vcpu_id: vcpu,
            context: ext,
        }))
        .map_err(se)?;
    }
    let xsave = xc::get_vcpu_xsave(x, dom, vcpu).map_err(xe("getvcpuextstate"))?;
    if !xsave.is_empty() {
        w.write_libxc_record(&LibxcRecord::X86PvVcpuXsave(VcpuBlob {
            vcpu_id: vcpu,
            context: xsave,
        }))
        .map_err(se)?;
    }
    let msrs = xc::get_vcpu_msrs(x, dom, vcpu).map_err(xe("get_vcpu_msrs"))?;
    if !msrs.is_empty() {
        let msrs = msrs
            .iter()
            .map(|m| VcpuMsr {
                index: m.index,
                reserved: m.reserved,
                value: m.value,
            })
            .collect();
        w.write_libxc_record(&LibxcRecord::X86PvVcpuMsrs(VcpuMsrs {
            vcpu_id: vcpu,
            msrs,
        }))
        .map_err(se)?;
    }
    Ok(())
}

#[cfg(test)]
mod normalise_tests {
    use super::*;

    /// A guest with PFNs 0..4 in MFNs 100..104 (M2P agreeing), MFN 7 someone else's.
    fn ctx_parts() -> (M2p, P2m) {
        let mut table = vec![u64::MAX; 200];
        for pfn in 0..4u64 {
            table[100 + pfn as usize] = pfn;
        }
        let m2p = M2p::from_table(table);
        let p2m = P2m {
            dom: DomId::new(3),
            entries: (100..104).map(Mfn::new).collect(),
            frames: vec![],
            linear: false,
        };
        (m2p, p2m)
    }

    fn page(entries: &[(usize, u64)]) -> Vec<u8> {
        let mut p = vec![0u8; PAGE_SIZE];
        for &(i, e) in entries {
            p[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
        }
        p
    }

    fn entry(p: &[u8], i: usize) -> u64 {
        u64::from_le_bytes(p[i * 8..i * 8 + 8].try_into().unwrap())
    }

    #[test]
    fn entries_become_pfns_and_xen_slots_are_zeroed() {
        let (m2p, p2m) = ctx_parts();
        let ctx = Ctx {
            dom: DomId::new(3),
            m2p: &m2p,
            p2m: &p2m,
        };
        let nx = 1u64 << 63;
        let mut p = page(&[
            (0, (102 << 12) | 0x67 | nx),
            (1, 101 << 12), // not present: left as it is
            (256, (7 << 12) | 1),
            (271, (7 << 12) | 1),
            (272, (103 << 12) | 3),
        ]);
        normalise(&ctx, 2, 4, &mut p).unwrap();
        assert_eq!(
            entry(&p, 0),
            (2 << 12) | 0x67 | nx,
            "MFN 102 is PFN 2, flags kept"
        );
        assert_eq!(entry(&p, 1), 101 << 12);
        assert_eq!(entry(&p, 256), 0, "Xen's first L4 slot");
        assert_eq!(entry(&p, 271), 0, "Xen's last L4 slot");
        assert_eq!(entry(&p, 272), (3 << 12) | 3);
    }

    #[test]
    fn a_superpage_or_a_frame_outside_the_guest_names_the_table_and_entry() {
        let (m2p, p2m) = ctx_parts();
        let ctx = Ctx {
            dom: DomId::new(3),
            m2p: &m2p,
            p2m: &p2m,
        };
        let mut p = page(&[(5, (100 << 12) | PTE_PSE | 1)]);
        match normalise(&ctx, 1, 2, &mut p) {
            Err(SaveError::Superpage {
                pfn: 1,
                level: 2,
                index: 5,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        // In an L1, bit 7 is PAT, not PSE: a normal entry.
        let mut p = page(&[(5, (100 << 12) | PTE_PSE | 1)]);
        normalise(&ctx, 1, 1, &mut p).unwrap();
        // An MMIO/foreign frame (no M2P entry for this guest).
        let mut p = page(&[(9, (7 << 12) | 1)]);
        let e = normalise(&ctx, 0, 1, &mut p).unwrap_err();
        assert!(
            matches!(
                e,
                SaveError::ForeignPte {
                    pfn: 0,
                    level: 1,
                    index: 9,
                    mfn: 7,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("d3"), "names the domain: {e}");
    }
}
