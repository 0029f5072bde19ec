//! The start-of-day memory layout of a PV guest, and the contents of its bootstrap
//! page tables.
//!
//! The layout is libxenguest's for x86-64 PV (`xc_dom_build_image`,
//! `alloc_magic_pages_pv`, `alloc_pgtables_pv`), computed here as a pure function of
//! the kernel image and the memory size, before anything is asked of Xen. PFN 0 is at
//! `virt_base`; regions follow each other without gaps from the kernel on:
//!
//! ```text
//!  virt_base                                                             mapped end
//!  |  (free)  | kernel | p2m list | start_info | xenstore | console | page tables | stack | padding |
//!  pfn 0      ^ (load_addr − virt_base) / 4096                                      (≥ 512 KiB,
//!                                                                                  to a 4 MiB boundary)
//! ```
//!
//! - **p2m list**: one little-endian `u64` MFN per PFN (`nr_pages` of them), rounded up
//!   to whole pages; `start_info.mfn_list` is its virtual address.
//! - **page tables**: one L4, then the L3s, the L2s and the L1s (in that order, each
//!   level in address order) needed to map every page from `virt_base` to the mapped
//!   end. Their number depends on the end and the end on their number, so the end is
//!   found by iteration, as libxc does: start with room for the stack and 512 KiB of
//!   padding, round the end up to a 4 MiB boundary, count the tables, and grow until
//!   everything fits.
//! - **stack**: one page; vCPU 0 starts with `rsp` at its top.
//!
//! Entry bits are libxc's: `P|RW|A|D|US` in the L4, L3 and L2 entries, `P|RW|A` in the
//! L1 entries, and `P|A` (read-only) in the L1 entries that map the page tables
//! themselves — Xen refuses a page table that has a writable mapping. Real Xen adds
//! `US` (and a software bit) to every L1 entry of a 64-bit PV guest when it validates
//! the tables; the model keeps entries exactly as written.
//!
//! The whole mapped range must be canonical, must not touch Xen's L4 slots 256–271,
//! and must fit in the guest's memory.

use hypervisor::abi::mm::{
    PTE_ACCESSED, PTE_DIRTY, PTE_PRESENT, PTE_RW, PTE_USER, ROOT_PAGETABLE_FIRST_XEN_SLOT,
    ROOT_PAGETABLE_LAST_XEN_SLOT,
};
use hypervisor::types::{Gva, Mfn, Pfn, PAGE_SIZE};

use super::image::{is_canonical, KernelImage};

const PAGE: u64 = PAGE_SIZE as u64;
/// The 48 bits of a virtual address the page tables translate.
const VA_MASK: u64 = (1 << 48) - 1;
/// The mapped range ends on a 4 MiB boundary (libxc's `bits_to_mask(22)`).
const END_ALIGN_MASK: u64 = (1 << 22) - 1;
/// At least this much unused, mapped space follows the stack (libxc: 512 KiB).
pub const PADDING_PAGES: u64 = (512 * 1024) / PAGE;
/// Entry bits of L4, L3 and L2 entries.
pub const UPPER_PROT: u64 = PTE_PRESENT | PTE_RW | PTE_ACCESSED | PTE_DIRTY | PTE_USER;
/// Entry bits of L1 entries (page-table frames lose `RW`).
pub const L1_PROT: u64 = PTE_PRESENT | PTE_RW | PTE_ACCESSED;

/// A run of pages of the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First PFN.
    pub pfn: Pfn,
    /// Number of pages.
    pub pages: u64,
    /// Virtual address of the first page.
    pub va: Gva,
}

impl Region {
    fn at(virt_base: u64, pfn: u64, pages: u64) -> Region {
        Region {
            pfn: Pfn::new(pfn),
            pages,
            va: Gva::new(virt_base.wrapping_add(pfn * PAGE)),
        }
    }

    /// One past the last PFN.
    #[must_use]
    pub fn end_pfn(&self) -> Pfn {
        Pfn::new(self.pfn.get() + self.pages)
    }

    /// Whether `pfn` is in the region.
    #[must_use]
    pub fn contains(&self, pfn: Pfn) -> bool {
        pfn >= self.pfn && pfn < self.end_pfn()
    }

    /// The PFNs of the region.
    pub fn pfns(&self) -> impl Iterator<Item = Pfn> {
        (self.pfn.get()..self.end_pfn().get()).map(Pfn::new)
    }
}

/// How many page tables of each level the bootstrap mapping uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// L4 tables (always 1).
    pub l4: u64,
    /// L3 tables.
    pub l3: u64,
    /// L2 tables.
    pub l2: u64,
    /// L1 tables.
    pub l1: u64,
}

impl TableCounts {
    /// All of them.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.l4 + self.l3 + self.l2 + self.l1
    }

    /// Tables needed to map `[from, to]` (inclusive).
    fn for_range(from: u64, to: u64) -> TableCounts {
        let (f, t) = (from & VA_MASK, to & VA_MASK);
        let span = |shift: u32| (t >> shift) - (f >> shift) + 1;
        TableCounts {
            l4: 1,
            l3: span(39),
            l2: span(30),
            l1: span(21),
        }
    }
}

/// Why a guest cannot be laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The guest has no memory.
    #[error("the guest needs at least one page of memory")]
    NoMemory,
    /// The kernel does not fit in the guest's memory.
    #[error(
        "{needed} pages from virt_base to the end of the initial mapping are needed, but the guest has only {nr_pages}"
    )]
    TooSmall {
        /// Pages needed.
        needed: u64,
        /// Pages the guest has.
        nr_pages: u64,
    },
    /// The mapped range is not usable virtual address space.
    #[error("the initial mapping {start:#x}..={last:#x} {why}")]
    BadRange {
        /// First byte.
        start: u64,
        /// Last byte.
        last: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The image itself is inconsistent.
    #[error("the kernel image is inconsistent: {0}")]
    Image(String),
}

/// Where everything goes in a new PV guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Virtual address of PFN 0.
    pub virt_base: Gva,
    /// Pages of guest memory (PFNs `0..nr_pages`).
    pub nr_pages: u64,
    /// The kernel image.
    pub kernel: Region,
    /// The p2m list (`start_info.mfn_list`).
    pub p2m: Region,
    /// The start_info page (`rsi` at entry).
    pub start_info: Region,
    /// The xenstore ring page.
    pub xenstore: Region,
    /// The console ring page.
    pub console: Region,
    /// The bootstrap page tables; the first page is the L4 (`start_info.pt_base`).
    pub page_tables: Region,
    /// How many tables of each level.
    pub tables: TableCounts,
    /// The bootstrap stack page.
    pub stack: Region,
    /// Everything the bootstrap page tables map: PFN 0 to the 4 MiB-aligned end.
    pub mapped: Region,
    /// The kernel's entry point.
    pub entry: Gva,
    /// The kernel's hypercall page, if it asked for one.
    pub hypercall_page: Option<Pfn>,
}

impl Layout {
    /// Lays out a guest of `nr_pages` pages running `image`.
    ///
    /// # Errors
    /// [`LayoutError`] if the image is inconsistent, the guest too small, or the mapped
    /// range unusable.
    pub fn compute(image: &KernelImage, nr_pages: u64) -> Result<Layout, LayoutError> {
        image
            .validate()
            .map_err(|e| LayoutError::Image(e.to_string()))?;
        if nr_pages == 0 {
            return Err(LayoutError::NoMemory);
        }
        let base = image.virt_base;
        let kernel_pfn = (image.load_addr - base) / PAGE;
        let kernel_pages = (image.bytes.len() as u64).div_ceil(PAGE);
        let kernel = Region::at(base, kernel_pfn, kernel_pages);
        let p2m_pages = nr_pages.checked_mul(8).ok_or(LayoutError::TooSmall {
            needed: u64::MAX,
            nr_pages,
        })?;
        let p2m = Region::at(base, kernel.end_pfn().get(), p2m_pages.div_ceil(PAGE));
        let start_info = Region::at(base, p2m.end_pfn().get(), 1);
        let xenstore = Region::at(base, start_info.end_pfn().get(), 1);
        let console = Region::at(base, xenstore.end_pfn().get(), 1);
        let alloc_pfn = console.end_pfn().get();

        // Offsets are relative to virt_base; the 4 MiB rounding is of the address.
        let past_top = || LayoutError::BadRange {
            start: base,
            last: u64::MAX,
            why: "runs past the top of the address space",
        };
        let alloc_off = alloc_pfn.checked_mul(PAGE).ok_or_else(past_top)?;
        let extra = 1 + PADDING_PAGES; // the stack and the padding
        let mut pages = extra;
        let (tables, last_off) = loop {
            let end_addr = pages
                .checked_mul(PAGE)
                .and_then(|b| alloc_off.checked_add(b))
                .and_then(|off| base.checked_add(off))
                .ok_or_else(past_top)?;
            let last_addr = end_addr | END_ALIGN_MASK;
            check_range(base, last_addr)?;
            let last_off = last_addr - base;
            let tables = TableCounts::for_range(base, last_addr);
            pages = tables.total() + extra;
            if alloc_off + pages * PAGE <= last_off + 1 {
                break (tables, last_off);
            }
        };
        let page_tables = Region::at(base, alloc_pfn, tables.total());
        let stack = Region::at(base, page_tables.end_pfn().get(), 1);
        let mapped_pages = last_off / PAGE + 1;
        if mapped_pages > nr_pages {
            return Err(LayoutError::TooSmall {
                needed: mapped_pages,
                nr_pages,
            });
        }
        Ok(Layout {
            virt_base: Gva::new(base),
            nr_pages,
            kernel,
            p2m,
            start_info,
            xenstore,
            console,
            page_tables,
            tables,
            stack,
            mapped: Region::at(base, 0, mapped_pages),
            entry: Gva::new(image.entry),
            hypercall_page: image.hypercall_page.map(|va| Pfn::new((va - base) / PAGE)),
        })
    }

    /// The L4's PFN (`start_info.pt_base` is its virtual address).
    #[must_use]
    pub fn l4_pfn(&self) -> Pfn {
        self.page_tables.pfn
    }

    /// `rsp` at entry: the top of the stack page.
    #[must_use]
    pub fn stack_top(&self) -> Gva {
        self.stack.va.wrapping_add(PAGE)
    }

    /// The virtual address of `pfn` in the initial mapping.
    #[must_use]
    pub fn va_of(&self, pfn: Pfn) -> Gva {
        self.virt_base.wrapping_add(pfn.get() * PAGE)
    }

    /// The bootstrap page tables, one 512-entry table per page of
    /// [`Layout::page_tables`] in order, for the guest whose PFN `i` is `p2m[i]`.
    ///
    /// # Panics
    /// If `p2m` has fewer than [`Layout::mapped`] entries (the builder always passes
    /// all `nr_pages` of them).
    #[must_use]
    pub fn page_table_contents(&self, p2m: &[Mfn]) -> Vec<[u64; 512]> {
        assert!(
            p2m.len() as u64 >= self.mapped.pages,
            "p2m shorter than the mapping"
        );
        let t = self.tables;
        let n = t.total() as usize;
        let mut out = vec![[0u64; 512]; n];
        let from = self.virt_base.get() & VA_MASK;
        let last = from + (self.mapped.pages * PAGE - 1);
        // Index in `out` of the first table of each level.
        let first_l3 = 1usize;
        let first_l2 = first_l3 + t.l3 as usize;
        let first_l1 = first_l2 + t.l2 as usize;
        let pt_mfn = |i: usize| p2m[(self.page_tables.pfn.get() + i as u64) as usize];
        let entry = |mfn: Mfn, prot: u64| mfn.to_addr() | prot;
        // Level `child_first` tables each cover 2^(child_shift + 9) bytes; their
        // parents' entries point at them.
        let link = |out: &mut Vec<[u64; 512]>,
                    parent_first: usize,
                    parent_shift: u32,
                    child_first: usize,
                    child_shift: u32| {
            let first_child = from >> (child_shift + 9);
            let last_child = last >> (child_shift + 9);
            for c in first_child..=last_child {
                let child_idx = child_first + (c - first_child) as usize;
                let parent_idx = parent_first + ((c >> 9) - (from >> (parent_shift + 9))) as usize;
                let slot = (c & 511) as usize;
                out[parent_idx][slot] = entry(pt_mfn(child_idx), UPPER_PROT);
            }
        };
        // L4 (shift 39) → L3 tables (each covers 2^39), L3 → L2 (2^30), L2 → L1 (2^21).
        link(&mut out, 0, 39, first_l3, 30);
        link(&mut out, first_l3, 30, first_l2, 21);
        link(&mut out, first_l2, 21, first_l1, 12);
        for pfn in self.mapped.pfns() {
            let va = from + pfn.get() * PAGE;
            let l1 = first_l1 + ((va >> 21) - (from >> 21)) as usize;
            let prot = if self.page_tables.contains(pfn) {
                L1_PROT & !PTE_RW
            } else {
                L1_PROT
            };
            out[l1][((va >> 12) & 511) as usize] = entry(p2m[pfn.get() as usize], prot);
        }
        out
    }

    /// The p2m list's pages: `nr_pages` little-endian MFNs, zero-padded to whole pages.
    #[must_use]
    pub fn p2m_contents(&self, p2m: &[Mfn]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity((self.p2m.pages * PAGE) as usize);
        for m in p2m {
            bytes.extend_from_slice(&m.get().to_le_bytes());
        }
        bytes.resize((self.p2m.pages * PAGE) as usize, 0);
        bytes
    }
}

/// The mapped range `[start, last]` must be canonical, in one half of the address
/// space, and clear of Xen's L4 slots.
fn check_range(start: u64, last: u64) -> Result<(), LayoutError> {
    let bad = |why| Err(LayoutError::BadRange { start, last, why });
    if !is_canonical(start) || !is_canonical(last) || (start >> 63) != (last >> 63) || last < start
    {
        return bad("is not canonical");
    }
    let slot = |va: u64| ((va >> 39) & 511) as usize;
    let (s, l) = (slot(start), slot(last));
    if s <= ROOT_PAGETABLE_LAST_XEN_SLOT && l >= ROOT_PAGETABLE_FIRST_XEN_SLOT {
        return bad("overlaps Xen's reserved L4 slots 256..=271");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(len: usize, base: u64) -> KernelImage {
        KernelImage::from_flat(vec![0x90; len], base, base).expect("image")
    }

    #[test]
    fn small_guest_layout() {
        // 16 MiB guest, 3-page kernel at 4 MiB.
        let l = Layout::compute(&flat(3 * 4096 - 100, 0x40_0000), 4096).expect("layout");
        assert_eq!(l.kernel.pfn, Pfn::new(0));
        assert_eq!(l.kernel.pages, 3);
        assert_eq!(l.p2m.pfn, Pfn::new(3));
        assert_eq!(l.p2m.pages, 8, "4096 MFNs of 8 bytes");
        assert_eq!(l.start_info.pfn, Pfn::new(11));
        assert_eq!(l.xenstore.pfn, Pfn::new(12));
        assert_eq!(l.console.pfn, Pfn::new(13));
        assert_eq!(l.page_tables.pfn, Pfn::new(14));
        // 0x40_0000 + 14 pages + 4 tables + 1 + 128 pages < 0x80_0000: ends at 8 MiB.
        assert_eq!(
            l.tables,
            TableCounts {
                l4: 1,
                l3: 1,
                l2: 1,
                l1: 2
            }
        );
        assert_eq!(l.stack.pfn, Pfn::new(19));
        assert_eq!(l.mapped.pages, 1024, "4 MiB from 0x40_0000 to 0x80_0000");
        assert_eq!(l.stack_top(), Gva::new(0x40_0000 + 20 * 4096));
        assert_eq!(l.va_of(l.start_info.pfn), Gva::new(0x40_0000 + 11 * 4096));
        assert!(l.mapped.pages - l.stack.end_pfn().get() >= PADDING_PAGES);
    }

    #[test]
    fn the_end_moves_when_tables_do_not_fit() {
        // 4096 pages: an 8-page p2m. With 879 kernel pages everything (890 pages, 5
        // tables, stack, padding) fits exactly below 8 MiB.
        let l = Layout::compute(&flat(879 * 4096, 0x40_0000), 4096).expect("layout");
        assert_eq!(l.page_tables.pfn, Pfn::new(890));
        assert_eq!((l.tables.total(), l.mapped.pages), (5, 1024));
        assert_eq!(l.stack.end_pfn().get() + PADDING_PAGES, 1024);
        // One more kernel page: the first guess (end at 8 MiB) has no room for the 5
        // tables, so the end moves to 12 MiB, which needs 7.
        let l = Layout::compute(&flat(882 * 4096, 0x40_0000), 4096).expect("layout");
        assert_eq!((l.tables.total(), l.mapped.pages), (7, 2048));
        assert_eq!(
            l.tables,
            TableCounts {
                l4: 1,
                l3: 1,
                l2: 1,
                l1: 4
            }
        );
        assert!(l.mapped.pages >= l.stack.end_pfn().get() + PADDING_PAGES);
        // The very top of the address space works: the mapping ends at 2^64.
        let top = 0xffff_ffff_ffc0_0000u64;
        let l = Layout::compute(&flat(4096, top), 4096).expect("layout");
        assert_eq!(l.mapped.pages, 1024);
        assert_eq!(
            l.tables,
            TableCounts {
                l4: 1,
                l3: 1,
                l2: 1,
                l1: 2
            }
        );
        // Just above Xen's range is fine too.
        Layout::compute(&flat(4096, 0xffff_8800_0000_0000), 4096).expect("slot 272");
    }

    #[test]
    fn crossing_table_boundaries() {
        // 2 MiB below 512 GiB, with a kernel reaching past it: two L3s, two L2s and
        // three L1s (the mapping ends at 512 GiB + 4 MiB).
        let base = (1u64 << 39) - (1 << 21);
        let l = Layout::compute(&flat(600 * 4096, base), 4096).expect("layout");
        assert_eq!(
            l.tables,
            TableCounts {
                l4: 1,
                l3: 2,
                l2: 2,
                l1: 3
            }
        );
        assert_eq!(l.mapped.pages, 1536);
        let p2m: Vec<Mfn> = (0..4096).map(|i| Mfn::new(0x1000 + i)).collect();
        let tables = l.page_table_contents(&p2m);
        let pt = |i: u64| Mfn::new(0x1000 + l.page_tables.pfn.get() + i).to_addr() | UPPER_PROT;
        // tables: [0] L4, [1..=2] L3, [3..=4] L2, [5..=7] L1.
        assert_eq!((tables[0][0], tables[0][1]), (pt(1), pt(2)));
        assert_eq!((tables[1][511], tables[2][0]), (pt(3), pt(4)));
        assert_eq!(
            (tables[3][511], tables[4][0], tables[4][1]),
            (pt(5), pt(6), pt(7))
        );
        // PFN 0 is slot 0 of L1 #0; PFN 512 (512 GiB) slot 0 of L1 #1.
        assert_eq!(tables[5][0], (0x1000u64 << 12) | L1_PROT);
        assert_eq!(tables[6][0], ((0x1000u64 + 512) << 12) | L1_PROT);
        // The page tables themselves are read-only, everything else writable.
        for pfn in l.mapped.pfns() {
            let p = pfn.get();
            let e = tables[5 + (p / 512) as usize][(p % 512) as usize];
            let ro = l.page_tables.contains(pfn);
            assert_eq!(
                e,
                ((0x1000 + p) << 12) | if ro { L1_PROT & !PTE_RW } else { L1_PROT },
                "{pfn:?}"
            );
        }
        let present: usize = tables
            .iter()
            .map(|t| t.iter().filter(|&&e| e != 0).count())
            .sum();
        assert_eq!(present as u64, l.mapped.pages + l.tables.total() - 1);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            Layout::compute(&flat(4096, 0x40_0000), 0),
            Err(LayoutError::NoMemory)
        );
        match Layout::compute(&flat(4096, 0x40_0000), 512) {
            Err(LayoutError::TooSmall {
                needed: 1024,
                nr_pages: 512,
            }) => {}
            other => panic!("{other:?}"),
        }
        let base = 0xffff_8000_0000_0000u64;
        match Layout::compute(&flat(4096, base), 4096) {
            Err(LayoutError::BadRange { why, .. }) => assert!(why.contains("271")),
            other => panic!("{other:?}"),
        }
        // 1 MiB below the top of the lower half: the mapping leaves the canonical range.
        let base = 0x7fff_fff0_0000u64;
        match Layout::compute(&flat(255 * 4096, base), 4096) {
            Err(LayoutError::BadRange { why, .. }) => assert!(why.contains("canonical")),
            other => panic!("{other:?}"),
        }
    }
}
