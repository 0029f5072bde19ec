//! Machine memory and PV page types.
//!
//! (Being filled in: page-type rules, mmu_update, mmuext pins, memory_op, log-dirty.)

use crate::error::{Errno, XenResult};
use crate::types::{DomId, Mfn, PAGE_SIZE};

/// One 4 KiB page of bytes.
pub type Page = [u8; PAGE_SIZE];

/// A frame's PV type (`PGT_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageType {
    /// No type.
    #[default]
    None,
    /// L1 page table.
    L1,
    /// L2 page table.
    L2,
    /// L3 page table.
    L3,
    /// L4 page table.
    L4,
    /// GDT/LDT page.
    SegDesc,
    /// Writable (mapped RW somewhere).
    Writable,
}

/// Bookkeeping for one machine frame (Xen's `struct page_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// Owning domain, or `None` when free.
    pub owner: Option<DomId>,
    /// General reference count (includes the allocation reference).
    pub count: u32,
    /// Current type.
    pub ty: PageType,
    /// Type reference count.
    pub type_count: u32,
    /// Pinned (`PGT_pinned`).
    pub pinned: bool,
    /// Validated as its current type (`PGT_validated`).
    pub validated: bool,
}

/// Machine memory: frame bookkeeping plus the bytes of every frame.
#[derive(Debug)]
pub struct Memory {
    frames: Vec<FrameInfo>,
    data: Vec<u8>,
}

impl Memory {
    /// A machine with `nr_frames` frames, all free and zero.
    #[must_use]
    pub fn new(nr_frames: u64) -> Self {
        let n = usize::try_from(nr_frames).expect("64-bit host");
        Memory { frames: vec![FrameInfo::default(); n], data: vec![0; n * PAGE_SIZE] }
    }

    /// Number of machine frames.
    #[must_use]
    pub fn nr_frames(&self) -> u64 {
        self.frames.len() as u64
    }

    /// Bookkeeping of `mfn`, if it exists.
    #[must_use]
    pub fn frame(&self, mfn: Mfn) -> Option<&FrameInfo> {
        self.frames.get(usize::try_from(mfn.get()).ok()?)
    }

    /// The bytes of `mfn`.
    ///
    /// # Errors
    /// `EINVAL` if `mfn` is not a machine frame.
    pub fn page(&self, mfn: Mfn) -> XenResult<&Page> {
        let i = self.idx(mfn)?;
        Ok(self.data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE].try_into().expect("page size"))
    }

    /// The bytes of `mfn`, for Xen's own writes (shared_info bits, ring pages Xen
    /// services). Does not mark the frame dirty.
    ///
    /// # Errors
    /// `EINVAL` if `mfn` is not a machine frame.
    pub fn page_mut_raw(&mut self, mfn: Mfn) -> XenResult<&mut Page> {
        let i = self.idx(mfn)?;
        Ok((&mut self.data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]).try_into().expect("page size"))
    }

    fn idx(&self, mfn: Mfn) -> XenResult<usize> {
        let i = usize::try_from(mfn.get()).map_err(|_| Errno::EINVAL)?;
        if i < self.frames.len() {
            Ok(i)
        } else {
            Err(Errno::EINVAL)
        }
    }
}
