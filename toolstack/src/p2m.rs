//! A PV guest's P2M (pseudo-physical → machine) as the toolstack finds it, and Xen's
//! M2P (machine → pseudo-physical), read through the [`Xen`] trait.
//!
//! * **M2P**: `XENMEM_maximum_ram_page` gives `max_mfn`; `XENMEM_machphys_mfn_list`
//!   lists the first MFN of every 2 MiB chunk of the table; the chunks are read with
//!   `foreign_read(DOMID_XEN, …)` (libxc maps them read-only).
//! * **P2M, 3-level tree** (xg_sr_save_x86_pv.c `map_p2m_tree`): shared_info's
//!   `arch.pfn_to_mfn_frame_list_list` is the MFN of a page whose entries are MFNs of
//!   "frame list" pages, whose entries are MFNs of the p2m pages; `arch.max_pfn` is a
//!   count. Every MFN named must be the domain's.
//! * **P2M, linear** (`map_p2m_list`): `arch.p2m_cr3` ≠ 0: walk the guest's page tables
//!   from `p2m_cr3` over `[p2m_vaddr, +frames·4096)` and take the leaf MFNs.
//!
//! Either way the leaf frames are translated to PFNs through the M2P and must be in
//! the pseudo-physical map (`mfn_in_pseudophysmap`): these are X86_PV_P2M_FRAMES.

use hypervisor::abi::mm::{PTE_ADDR_MASK, PTE_PRESENT, PTE_PSE};
use hypervisor::abi::shared::SharedInfo;
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Errno, Mfn, Pfn, Xen, XenError};

use crate::save::xc::{self, le64};

/// P2M entries per page for a 64-bit guest.
pub const FPP: u64 = (PAGE_SIZE / 8) as u64;
/// Frames of the M2P per `machphys_mfn_list` chunk (2 MiB).
pub const M2P_CHUNK_FRAMES: u64 = 512;
/// Largest P2M xi follows (2^32 pfns = 16 TiB of guest: the stream's u32 end_pfn).
pub const MAX_P2M_PFNS: u64 = 1 << 32;

/// What was wrong while locating a P2M or reading the M2P.
#[derive(Debug, thiserror::Error)]
pub enum P2mError {
    /// A Xen call failed.
    #[error("reading the p2m of d{dom}: {source}")]
    Xen {
        /// The domain.
        dom: DomId,
        /// The call.
        #[source]
        source: XenError,
    },
    /// A frame could not be read.
    #[error("reading {what} (mfn {mfn:#x}) of d{dom} failed with {errno}")]
    Read {
        /// The domain (`DOMID_XEN` for the M2P).
        dom: DomId,
        /// Which frame this is.
        what: String,
        /// The frame.
        mfn: u64,
        /// The per-page error.
        errno: Errno,
    },
    /// shared_info's `arch.max_pfn` is unusable.
    #[error(
        "d{dom}'s shared_info says max_pfn {max_pfn:#x} (the p2m is not set up, or too large)"
    )]
    BadMaxPfn {
        /// The domain.
        dom: DomId,
        /// The count found.
        max_pfn: u64,
    },
    /// The guest has not published a frame list list.
    #[error("d{dom} has not published its p2m (shared_info arch.pfn_to_mfn_frame_list_list is 0)")]
    NoFrameList {
        /// The domain.
        dom: DomId,
    },
    /// An entry of the p2m tree names a frame that is not the guest's.
    #[error("p2m {level} entry {index} names mfn {mfn:#x} not owned by d{dom}")]
    NotOwned {
        /// The domain.
        dom: DomId,
        /// "frame list list", "frame list" or "linear p2m l<n>".
        level: &'static str,
        /// The entry.
        index: u64,
        /// The frame it names.
        mfn: u64,
    },
    /// The linear p2m's page tables do not map the p2m range.
    #[error("linear p2m of d{dom}: va {va:#x} is not mapped ({what})")]
    LinearUnmapped {
        /// The domain.
        dom: DomId,
        /// The address.
        va: u64,
        /// At which level the walk stopped.
        what: String,
    },
}

/// Xen's M2P, read once.
#[derive(Debug, Clone)]
pub struct M2p {
    /// `XENMEM_maximum_ram_page`: every MFN is below this.
    pub max_mfn: u64,
    table: Vec<u64>,
}

impl M2p {
    /// The M2P entry of `mfn` (`None` past the table or for an invalid entry).
    #[must_use]
    pub fn get(&self, mfn: Mfn) -> Option<Pfn> {
        let e = *self.table.get(usize::try_from(mfn.get()).ok()?)?;
        (e >> 63 == 0).then_some(Pfn::new(e))
    }

    /// An M2P built from a table (tests).
    #[must_use]
    pub fn from_table(table: Vec<u64>) -> Self {
        Self {
            max_mfn: table.len() as u64,
            table,
        }
    }
}

/// Reads Xen's M2P (`maximum_ram_page`, `machphys_mfn_list`, the chunks from DOMID_XEN).
///
/// # Errors
/// [`P2mError`].
pub fn read_m2p<X: Xen + ?Sized>(x: &mut X) -> Result<M2p, P2mError> {
    use hypervisor::abi::memory::{
        MachphysMfnList, XENMEM_MACHPHYS_MFN_LIST, XENMEM_MAXIMUM_RAM_PAGE,
    };
    use zerocopy::IntoBytes;
    let xerr = |source| P2mError::Xen {
        dom: DomId::XEN,
        source,
    };
    let max_mfn = x
        .memory_op(XENMEM_MAXIMUM_RAM_PAGE as u32, &mut [], &mut [])
        .map_err(xerr)?;
    let max_mfn = u64::try_from(max_mfn).unwrap_or(0);
    let frames = (max_mfn * 8).div_ceil(PAGE_SIZE as u64);
    let chunks = frames.div_ceil(M2P_CHUNK_FRAMES);
    let mut list = vec![0u64; usize::try_from(chunks).unwrap_or(0)];
    let mut arg = MachphysMfnList {
        max_extents: chunks as u32,
        ..MachphysMfnList::default()
    };
    x.memory_op(
        XENMEM_MACHPHYS_MFN_LIST as u32,
        arg.as_mut_bytes(),
        list.as_mut_bytes(),
    )
    .map_err(xerr)?;
    list.truncate(arg.nr_extents as usize);
    let mut mfns = Vec::with_capacity(usize::try_from(frames).unwrap_or(0));
    'outer: for &base in &list {
        for j in 0..M2P_CHUNK_FRAMES {
            if mfns.len() as u64 == frames {
                break 'outer;
            }
            mfns.push(Mfn::new(base + j));
        }
    }
    let mut table = Vec::with_capacity(usize::try_from(max_mfn).unwrap_or(0));
    for chunk in mfns.chunks(M2P_CHUNK_FRAMES as usize) {
        let bytes = match xc::read_frames(x, DomId::XEN, chunk).map_err(xerr)? {
            Ok(b) => b,
            Err((i, errno)) => {
                return Err(P2mError::Read {
                    dom: DomId::XEN,
                    what: "the M2P".into(),
                    mfn: chunk[i].get(),
                    errno,
                })
            }
        };
        table.extend(bytes.chunks_exact(8).map(|b| le64(b, 0)));
    }
    table.truncate(usize::try_from(max_mfn).unwrap_or(0));
    Ok(M2p { max_mfn, table })
}

/// A guest's P2M as found through its shared_info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P2m {
    /// The domain.
    pub dom: DomId,
    /// `p2m[pfn]` = MFN, or [`Mfn::INVALID`] for a pfn with no memory.
    pub entries: Vec<Mfn>,
    /// The MFNs of the p2m pages themselves (leaf frames).
    pub frames: Vec<Mfn>,
    /// Whether the guest uses the linear (virtual) p2m.
    pub linear: bool,
}

impl P2m {
    /// The largest pfn (`p2m_size - 1`).
    #[must_use]
    pub fn max_pfn(&self) -> u64 {
        self.entries.len() as u64 - 1
    }

    /// The MFN of `pfn`, if it is in the map and valid.
    #[must_use]
    pub fn mfn(&self, pfn: Pfn) -> Option<Mfn> {
        self.entries
            .get(usize::try_from(pfn.get()).ok()?)
            .copied()
            .filter(|m| *m != Mfn::INVALID)
    }

    /// `mfn_in_pseudophysmap` + translation: the PFN of `mfn` if the M2P and this P2M
    /// agree on it.
    #[must_use]
    pub fn pfn_of(&self, m2p: &M2p, mfn: Mfn) -> Option<Pfn> {
        if mfn.get() >= m2p.max_mfn {
            return None;
        }
        let pfn = m2p.get(mfn)?;
        (self.mfn(pfn) == Some(mfn)).then_some(pfn)
    }
}

fn read_one<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    mfn: u64,
    what: &str,
) -> Result<Vec<u8>, P2mError> {
    match xc::read_frames(x, dom, &[Mfn::new(mfn)])
        .map_err(|source| P2mError::Xen { dom, source })?
    {
        Ok(b) => Ok(b),
        Err((_, errno)) => Err(P2mError::Read {
            dom,
            what: what.into(),
            mfn,
            errno,
        }),
    }
}

/// Locates and reads `dom`'s P2M from its shared_info (`shinfo`).
///
/// # Errors
/// [`P2mError`], naming the entry that is wrong.
pub fn read_p2m<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    shinfo: &SharedInfo,
    m2p: &M2p,
) -> Result<P2m, P2mError> {
    let count = shinfo.arch.max_pfn;
    if count == 0 || count > MAX_P2M_PFNS {
        return Err(P2mError::BadMaxPfn {
            dom,
            max_pfn: count,
        });
    }
    let max_pfn = count - 1;
    let nframes = max_pfn / FPP + 1;
    let owned = |m: u64| m != 0 && m < m2p.max_mfn;
    let (frames, linear) = if shinfo.arch.p2m_cr3 != 0 {
        (
            walk_linear(
                x,
                dom,
                shinfo.arch.p2m_cr3,
                shinfo.arch.p2m_vaddr,
                nframes,
                m2p,
            )?,
            true,
        )
    } else {
        let fll = shinfo.arch.pfn_to_mfn_frame_list_list;
        if fll == 0 {
            return Err(P2mError::NoFrameList { dom });
        }
        if !owned(fll) {
            return Err(P2mError::NotOwned {
                dom,
                level: "frame list list",
                index: 0,
                mfn: fll,
            });
        }
        let fll_entries = max_pfn / (FPP * FPP) + 1;
        let top = read_one(x, dom, fll, "the p2m frame list list")?;
        let mut frames = Vec::with_capacity(usize::try_from(nframes).unwrap_or(0));
        for i in 0..fll_entries {
            let fl = le64(&top, i as usize * 8);
            if !owned(fl) {
                return Err(P2mError::NotOwned {
                    dom,
                    level: "frame list list",
                    index: i,
                    mfn: fl,
                });
            }
            let page = read_one(x, dom, fl, "a p2m frame list")?;
            for j in 0..FPP {
                let k = i * FPP + j;
                if k >= nframes {
                    break;
                }
                let m = le64(&page, j as usize * 8);
                if !owned(m) {
                    return Err(P2mError::NotOwned {
                        dom,
                        level: "frame list",
                        index: k,
                        mfn: m,
                    });
                }
                frames.push(Mfn::new(m));
            }
        }
        (frames, false)
    };
    let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for chunk in frames.chunks(256) {
        let bytes =
            match xc::read_frames(x, dom, chunk).map_err(|source| P2mError::Xen { dom, source })? {
                Ok(b) => b,
                Err((i, errno)) => {
                    let level = if linear { "linear p2m" } else { "frame list" };
                    let index = frames.iter().position(|f| *f == chunk[i]).unwrap_or(0) as u64;
                    let _ = errno;
                    return Err(P2mError::NotOwned {
                        dom,
                        level,
                        index,
                        mfn: chunk[i].get(),
                    });
                }
            };
        entries.extend(bytes.chunks_exact(8).map(|b| Mfn::new(le64(b, 0))));
    }
    entries.truncate(usize::try_from(count).unwrap_or(0));
    Ok(P2m {
        dom,
        entries,
        frames,
        linear,
    })
}

/// Walks `dom`'s 4-level tables from `cr3` for `nframes` pages at `vaddr`.
fn walk_linear<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    cr3: u64,
    vaddr: u64,
    nframes: u64,
    m2p: &M2p,
) -> Result<Vec<Mfn>, P2mError> {
    let mut cache: std::collections::BTreeMap<u64, Vec<u8>> = std::collections::BTreeMap::new();
    let mut out = Vec::with_capacity(usize::try_from(nframes).unwrap_or(0));
    let root = hypervisor::abi::vcpu::xen_cr3_to_pfn(cr3);
    for k in 0..nframes {
        let va = vaddr.wrapping_add(k * PAGE_SIZE as u64);
        let mut table = root;
        for (level, shift) in [(4u8, 39u32), (3, 30), (2, 21), (1, 12)] {
            if table == 0 || table >= m2p.max_mfn {
                return Err(P2mError::NotOwned {
                    dom,
                    level: "linear p2m table",
                    index: k,
                    mfn: table,
                });
            }
            if let std::collections::btree_map::Entry::Vacant(slot) = cache.entry(table) {
                slot.insert(read_one(x, dom, table, "a linear p2m page table")?);
            }
            let idx = ((va >> shift) & 511) as usize;
            let pte = le64(&cache[&table], idx * 8);
            if pte & PTE_PRESENT == 0 {
                return Err(P2mError::LinearUnmapped {
                    dom,
                    va,
                    what: format!("L{level} entry {idx} not present"),
                });
            }
            if level > 1 && pte & PTE_PSE != 0 {
                return Err(P2mError::LinearUnmapped {
                    dom,
                    va,
                    what: format!("L{level} entry {idx} is a superpage"),
                });
            }
            table = (pte & PTE_ADDR_MASK) >> 12;
        }
        out.push(Mfn::new(table));
        if cache.len() > 4096 {
            cache.clear();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pfn_of_needs_both_maps_to_agree() {
        let m2p = M2p::from_table(vec![u64::MAX, 0, 1, 7]);
        let p2m = P2m {
            dom: DomId::new(1),
            entries: vec![Mfn::new(1), Mfn::new(2)],
            frames: vec![],
            linear: false,
        };
        assert_eq!(p2m.pfn_of(&m2p, Mfn::new(1)), Some(Pfn::new(0)));
        assert_eq!(p2m.pfn_of(&m2p, Mfn::new(2)), Some(Pfn::new(1)));
        assert_eq!(
            p2m.pfn_of(&m2p, Mfn::new(3)),
            None,
            "m2p says pfn 7, outside"
        );
        assert_eq!(p2m.pfn_of(&m2p, Mfn::new(0)), None, "invalid m2p entry");
        assert_eq!(p2m.pfn_of(&m2p, Mfn::new(9)), None, "past max_mfn");
        assert_eq!(p2m.max_pfn(), 1);
    }
}
