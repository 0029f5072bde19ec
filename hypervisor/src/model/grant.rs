//! Grant tables: each domain's version 1 shared grant frames, and the one way the
//! toolstack reaches them, `XENMEM_acquire_resource` (privcmd's
//! `IOCTL_PRIVCMD_MMAP_RESOURCE`).
//!
//! As in Xen 4.17 (`grant_table_init`, `gnttab_grow_table`): createdomain fixes
//! `max_grant_frames` (negative: the host default, 64) and allocates the first frame
//! (`INITIAL_NR_GRANT_FRAMES` = 1); acquiring a frame beyond the current size grows the
//! table to include it. Grant frames are Xen-heap pages shared writable with the
//! domain (owned by it, not in its P2M, not counted in `tot_pages`) and are freed with
//! the domain. The model keeps the table at version 1 (`GNTTABOP_set_version` is not
//! offered), so v2 status frames never exist.
//!
//! Only the shared entries are modelled, for what dom0's services do with them:
//! xenstored maps a domain's store ring through entry `GNTTAB_RESERVED_XENSTORE`
//! ([`Model::store_grant_frame`]).

use crate::error::{Errno, XenResult};
use crate::model::Model;
use crate::types::{DomId, Mfn};
use crate::xen::{
    GrantEntryV1, GTF_PERMIT_ACCESS, GTF_READONLY, XENMEM_RESOURCE_GRANT_TABLE,
    XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED, XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS,
};

/// Xen's default `gnttab_max_frames` (the host limit on `max_grant_frames`).
pub const OPT_MAX_GRANT_FRAMES: u32 = 64;
/// Xen's default `gnttab_max_maptrack_frames`.
pub const OPT_MAX_MAPTRACK_FRAMES: u32 = 1024;
/// `INITIAL_NR_GRANT_FRAMES`: frames a new table starts with.
pub const INITIAL_NR_GRANT_FRAMES: u32 = 1;

/// `XENMEM_resource_ioreq_server`.
const RESOURCE_IOREQ_SERVER: u16 = 0;
/// `XENMEM_resource_vmtrace_buf`.
const RESOURCE_VMTRACE_BUF: u16 = 2;

/// One domain's grant table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantTable {
    /// createdomain's `max_grant_frames` (after the default was applied).
    pub max_frames: u32,
    /// The shared frames, in table order (`nr_grant_frames` = its length).
    pub frames: Vec<Mfn>,
}

/// The sizes createdomain asks for, checked as 4.17's `grant_table_init` does.
///
/// # Errors
/// `EINVAL` for a grant size outside `1..=64` or a maptrack size above 1024 (after
/// negative values took the defaults).
pub fn check_sizes(max_grant_frames: i32, max_maptrack_frames: i32) -> XenResult<u32> {
    let grant = if max_grant_frames < 0 {
        OPT_MAX_GRANT_FRAMES
    } else {
        max_grant_frames as u32
    };
    let maptrack = if max_maptrack_frames < 0 {
        OPT_MAX_MAPTRACK_FRAMES
    } else {
        max_maptrack_frames as u32
    };
    if !(INITIAL_NR_GRANT_FRAMES..=OPT_MAX_GRANT_FRAMES).contains(&grant)
        || maptrack > OPT_MAX_MAPTRACK_FRAMES
    {
        return Err(Errno::EINVAL);
    }
    Ok(grant)
}

impl Model {
    /// Grows `dom`'s grant table to `nr` frames (never shrinks; `nr` ≤ the maximum).
    ///
    /// # Errors
    /// `ESRCH` for an unknown domain, `ENOMEM` when machine memory runs out (the
    /// frames allocated so far stay in the table, as Xen keeps them).
    pub(crate) fn grant_grow(&mut self, dom: DomId, nr: u32) -> XenResult<()> {
        loop {
            let gt = &self.domain(dom)?.grant;
            if gt.frames.len() >= nr as usize {
                return Ok(());
            }
            let mfn = self.mem.alloc_xen_page(dom)?;
            // alloc_xen_page hands out a clean (zeroed) frame.
            self.domain_mut(dom)?.grant.frames.push(mfn);
        }
    }

    /// `XENMEM_acquire_resource` as dom0 asks it: the MFNs of `nr` frames of resource
    /// (`type_`, `id`) of `dom` from `frame` on, growing the grant table if needed.
    ///
    /// # Errors
    /// Xen 4.17's errno (see [`crate::Xen::resource_read`]).
    pub fn acquire_resource(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        nr: u32,
    ) -> XenResult<Vec<Mfn>> {
        // Frame and frame + nr must fit 32 bits.
        if frame >> 32 != 0 || (frame + u64::from(nr)) >> 32 != 0 {
            return Err(Errno::EINVAL);
        }
        // rcu_lock_remote_domain_by_id: unknown → ESRCH, the caller itself → EPERM.
        if dom == DomId::DOM0 {
            self.domain(dom)?;
            return Err(Errno::EPERM);
        }
        let d = self.domain(dom)?;
        // resource_max_frames: 0 means "no such resource" (EINVAL); an unknown type
        // yields a nonzero (-EOPNOTSUPP as unsigned) limit and fails below.
        let max = match type_ {
            XENMEM_RESOURCE_GRANT_TABLE => match id {
                XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED => d.grant.max_frames,
                // grant_to_status_frames(max): nonzero, but the table is v1.
                XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS => 1,
                _ => 0,
            },
            // PV domains have no ioreq servers and no vmtrace buffers.
            RESOURCE_IOREQ_SERVER | RESOURCE_VMTRACE_BUF => 0,
            _ => u32::MAX,
        };
        if max == 0 || nr == 0 {
            return Err(Errno::EINVAL);
        }
        if type_ != XENMEM_RESOURCE_GRANT_TABLE {
            return Err(Errno::EOPNOTSUPP);
        }
        if id != XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED {
            // gnttab_acquire_resource: status frames need gt_version 2.
            return Err(Errno::EINVAL);
        }
        let last = frame + u64::from(nr) - 1;
        if last >= u64::from(d.grant.max_frames) {
            return Err(Errno::EINVAL);
        }
        self.grant_grow(dom, last as u32 + 1)?;
        let gt = &self.domain(dom)?.grant;
        Ok(gt.frames[frame as usize..=last as usize].to_vec())
    }

    /// The frame xenstored maps for `dom`'s store ring: what mapping grant entry
    /// `GNTTAB_RESERVED_XENSTORE` read/write as dom0 yields (`GNTTABOP_map_grant_ref`
    /// through gntdev, as 4.17's xenstored does on INTRODUCE).
    ///
    /// # Errors
    /// `EINVAL` (what xenstored gets back from gntdev's failed mapping) unless the
    /// entry is `GTF_permit_access`, writable, grants dom0, and names a frame `dom`
    /// owns.
    pub(crate) fn store_grant_frame(&self, dom: DomId) -> XenResult<Mfn> {
        let d = self.domain(dom)?;
        let first = *d.grant.frames.first().ok_or(Errno::EINVAL)?;
        let page = self.mem.page(first)?;
        let e = GrantEntryV1::read(&page[..], crate::xen::GNTTAB_RESERVED_XENSTORE as usize)
            .ok_or(Errno::EINVAL)?;
        // GTF_type_mask (bits 0-1) must say permit_access; a read/write mapping is
        // refused for a read-only grant.
        if e.flags & 3 != GTF_PERMIT_ACCESS || e.flags & GTF_READONLY != 0 {
            return Err(Errno::EINVAL);
        }
        if e.domid != DomId::DOM0.get() {
            return Err(Errno::EINVAL);
        }
        let mfn = Mfn::new(u64::from(e.frame));
        if self.mem.frame(mfn).and_then(|f| f.owner) != Some(dom) {
            return Err(Errno::EINVAL);
        }
        Ok(mfn)
    }
}
