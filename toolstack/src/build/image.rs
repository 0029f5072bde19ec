//! Kernel images: what gets loaded where, read from a flat binary or an ELF64 file.
//!
//! A [`KernelImage`] is the guest's memory image from [`KernelImage::load_addr`]
//! onwards (BSS zero-filled), plus the addresses the builder needs: the virtual address
//! of PFN 0 (`virt_base`), the entry point and, if the kernel wants one, the page Xen
//! fills with hypercall stubs.
//!
//! # ELF
//!
//! [`KernelImage::from_elf`] follows Xen's libelf for PV kernels:
//!
//! - Only little-endian x86-64 `ET_EXEC` files are accepted.
//! - The image spans the `PT_LOAD` segments' *physical* addresses (`p_paddr`,
//!   `p_memsz`), moved by `virt_base − paddr_offset`: `XEN_ELFNOTE_VIRT_BASE` (default
//!   0) and `XEN_ELFNOTE_PADDR_OFFSET` (default 0 with notes, `virt_base` without). For
//!   the usual kernels (`p_paddr == p_vaddr`, or Linux's `p_paddr = p_vaddr − virt_base`)
//!   this is the segments' virtual addresses.
//! - Xen's notes (name `"Xen"`) are read from `PT_NOTE` segments, or, if there are none,
//!   from `SHT_NOTE` sections. The entry point is `XEN_ELFNOTE_ENTRY`, else `e_entry`.
//! - As libelf: `virt_base ≤ start ≤ entry`, and the hypercall page (if any) lies
//!   inside the image. Unlike libelf, the entry point must be strictly inside the image
//!   (libelf lets it equal the end), an image without Xen notes is accepted (its
//!   addresses are then taken as they are: `virt_base` 0), and an unaligned start is
//!   rounded down to a page boundary (zero-padded) instead of being refused.
//!
//! Every offset and size is checked before it is used: a malformed file is an
//! [`ImageError`], never a panic, and never a huge allocation (the image is at most
//! [`MAX_IMAGE_BYTES`]).

use std::fmt;

/// Page size of the guest.
const PAGE: u64 = 4096;

/// The largest memory image accepted (256 MiB), so a hostile `p_memsz` cannot make the
/// toolstack allocate without bound.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Xen ELF note types (public/elfnote.h).
pub mod note {
    /// Free-form information.
    pub const INFO: u32 = 0;
    /// Entry point (virtual address).
    pub const ENTRY: u32 = 1;
    /// Virtual address of the page Xen fills with hypercall stubs.
    pub const HYPERCALL_PAGE: u32 = 2;
    /// Virtual address of PFN 0.
    pub const VIRT_BASE: u32 = 3;
    /// Subtracted from `p_paddr` before adding `VIRT_BASE`.
    pub const PADDR_OFFSET: u32 = 4;
    /// Xen version the kernel was built for (`"xen-3.0"`).
    pub const XEN_VERSION: u32 = 5;
    /// Guest OS name (`"linux"`, …).
    pub const GUEST_OS: u32 = 6;
    /// Guest OS version.
    pub const GUEST_VERSION: u32 = 7;
    /// Loader (`"generic"`).
    pub const LOADER: u32 = 8;
    /// PAE mode (32-bit only).
    pub const PAE_MODE: u32 = 9;
    /// Feature string, `|`-separated, `!` marks a required feature.
    pub const FEATURES: u32 = 10;
    /// BSD symbol table loading.
    pub const BSD_SYMTAB: u32 = 11;
    /// Lowest hypervisor address (32-bit only).
    pub const HV_START_LOW: u32 = 12;
    /// L1 MFN validity mask.
    pub const L1_MFN_VALID: u32 = 13;
    /// The kernel handles a cancelled suspend.
    pub const SUSPEND_CANCEL: u32 = 14;
    /// Virtual address for a p2m list outside the initial mapping.
    pub const INIT_P2M: u32 = 15;
    /// `mod_start` is a PFN.
    pub const MOD_START_PFN: u32 = 16;
    /// Bitmap of supported features.
    pub const SUPPORTED_FEATURES: u32 = 17;
    /// 32-bit physical entry point (PVH).
    pub const PHYS32_ENTRY: u32 = 18;
}

/// The Xen notes of an ELF kernel (all absent for a flat image).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XenNotes {
    /// Whether the file carried any Xen note at all.
    pub present: bool,
    /// `XEN_ELFNOTE_ENTRY`.
    pub entry: Option<u64>,
    /// `XEN_ELFNOTE_HYPERCALL_PAGE`.
    pub hypercall_page: Option<u64>,
    /// `XEN_ELFNOTE_VIRT_BASE`.
    pub virt_base: Option<u64>,
    /// `XEN_ELFNOTE_PADDR_OFFSET`.
    pub paddr_offset: Option<u64>,
    /// `XEN_ELFNOTE_INIT_P2M` (read, but the builder always puts the p2m inside the
    /// initial mapping, as libxc does when it is absent).
    pub init_p2m: Option<u64>,
    /// `XEN_ELFNOTE_SUSPEND_CANCEL`.
    pub suspend_cancel: Option<u64>,
    /// `XEN_ELFNOTE_GUEST_OS`.
    pub guest_os: Option<String>,
    /// `XEN_ELFNOTE_GUEST_VERSION`.
    pub guest_version: Option<String>,
    /// `XEN_ELFNOTE_XEN_VERSION`.
    pub xen_version: Option<String>,
    /// `XEN_ELFNOTE_LOADER`.
    pub loader: Option<String>,
    /// `XEN_ELFNOTE_FEATURES`.
    pub features: Option<String>,
}

/// A kernel ready to be loaded: its memory image and the addresses the builder needs.
#[derive(Clone, PartialEq, Eq)]
pub struct KernelImage {
    /// Virtual address of PFN 0 (page-aligned).
    pub virt_base: u64,
    /// Virtual address of `bytes[0]` (page-aligned, ≥ `virt_base`).
    pub load_addr: u64,
    /// Entry point: vCPU 0 starts here.
    pub entry: u64,
    /// The memory image, loaded at `load_addr` (BSS included, as zeros).
    pub bytes: Vec<u8>,
    /// Virtual address of the page Xen must fill with hypercall stubs
    /// (`XEN_DOMCTL_hypercall_init`), if the kernel wants one.
    pub hypercall_page: Option<u64>,
    /// The ELF notes it came with.
    pub notes: XenNotes,
}

impl fmt::Debug for KernelImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelImage")
            .field("virt_base", &format_args!("{:#x}", self.virt_base))
            .field("load_addr", &format_args!("{:#x}", self.load_addr))
            .field("entry", &format_args!("{:#x}", self.entry))
            .field("bytes", &format_args!("{} bytes", self.bytes.len()))
            .field(
                "hypercall_page",
                &self.hypercall_page.map(|v| format!("{v:#x}")),
            )
            .field("notes", &self.notes)
            .finish()
    }
}

/// Why a kernel image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The file does not start with `\x7fELF`.
    #[error("not an ELF file (no \\x7fELF magic)")]
    NotElf,
    /// A valid ELF file of a kind xi cannot load.
    #[error("unsupported ELF file: {0}")]
    Unsupported(String),
    /// A structure reaches past the end of the file.
    #[error("truncated ELF file: {what} needs bytes {start:#x}..{end:#x}, the file has {len:#x}")]
    Truncated {
        /// What was being read.
        what: String,
        /// First byte needed.
        start: u64,
        /// One past the last byte needed.
        end: u64,
        /// File length.
        len: usize,
    },
    /// A structure is inconsistent.
    #[error("malformed ELF file: {0}")]
    Malformed(String),
    /// The addresses do not make a loadable kernel.
    #[error("bad kernel addresses: {0}")]
    Layout(String),
}

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const SHDR_SIZE: u64 = 64;

/// Bounds-checked little-endian reads from the file.
struct Elf<'a> {
    b: &'a [u8],
}

impl Elf<'_> {
    fn slice(&self, start: u64, len: u64, what: &dyn Fn() -> String) -> Result<&[u8], ImageError> {
        let trunc = || ImageError::Truncated {
            what: what(),
            start,
            end: start.saturating_add(len),
            len: self.b.len(),
        };
        let end = start.checked_add(len).ok_or_else(trunc)?;
        let (s, e) = (usize::try_from(start), usize::try_from(end));
        match (s, e) {
            (Ok(s), Ok(e)) if e <= self.b.len() => Ok(&self.b[s..e]),
            _ => Err(trunc()),
        }
    }

    fn u16(&self, off: u64, what: &dyn Fn() -> String) -> Result<u16, ImageError> {
        let s = self.slice(off, 2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }

    fn u32(&self, off: u64, what: &dyn Fn() -> String) -> Result<u32, ImageError> {
        let s = self.slice(off, 4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&self, off: u64, what: &dyn Fn() -> String) -> Result<u64, ImageError> {
        let s = self.slice(off, 8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
}

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug)]
struct Segment {
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

/// A numeric note's value (1, 2, 4 or 8 bytes, little-endian).
fn note_num(ty: u32, desc: &[u8]) -> Result<u64, ImageError> {
    let mut a = [0u8; 8];
    match desc.len() {
        1 | 2 | 4 | 8 => {
            a[..desc.len()].copy_from_slice(desc);
            Ok(u64::from_le_bytes(a))
        }
        n => Err(ImageError::Malformed(format!(
            "Xen note {ty} has a {n}-byte value (expected 1, 2, 4 or 8)"
        ))),
    }
}

/// A string note's value: up to the first NUL.
fn note_str(desc: &[u8]) -> String {
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    String::from_utf8_lossy(&desc[..end]).into_owned()
}

fn align4(n: u64) -> u64 {
    // n is at most u32::MAX, so this cannot overflow.
    (n + 3) & !3
}

/// Parses a block of ELF notes into `notes`.
fn parse_notes(block: &[u8], notes: &mut XenNotes) -> Result<(), ImageError> {
    let mut off = 0u64;
    let len = block.len() as u64;
    while off < len {
        if len - off < 12 {
            return Err(ImageError::Malformed(format!(
                "note header at offset {off:#x} of a note block is cut short"
            )));
        }
        let rd = |o: u64| {
            let o = o as usize;
            u32::from_le_bytes([block[o], block[o + 1], block[o + 2], block[o + 3]])
        };
        let namesz = u64::from(rd(off));
        let descsz = u64::from(rd(off + 4));
        let ty = rd(off + 8);
        let name_off = off + 12;
        let desc_off = name_off + align4(namesz);
        let next = desc_off + align4(descsz);
        // The last note's padding may be missing; its name and value may not.
        if name_off + namesz > len || desc_off + descsz > len {
            return Err(ImageError::Malformed(format!(
                "note at offset {off:#x} (name {namesz} bytes, value {descsz} bytes) overruns its {len}-byte block"
            )));
        }
        let name = &block[name_off as usize..(name_off + namesz) as usize];
        let desc = &block[desc_off as usize..(desc_off + descsz) as usize];
        let name = name.strip_suffix(&[0]).unwrap_or(name);
        if name == b"Xen" {
            notes.present = true;
            match ty {
                note::ENTRY => notes.entry = Some(note_num(ty, desc)?),
                note::HYPERCALL_PAGE => notes.hypercall_page = Some(note_num(ty, desc)?),
                note::VIRT_BASE => notes.virt_base = Some(note_num(ty, desc)?),
                note::PADDR_OFFSET => notes.paddr_offset = Some(note_num(ty, desc)?),
                note::INIT_P2M => notes.init_p2m = Some(note_num(ty, desc)?),
                note::SUSPEND_CANCEL => notes.suspend_cancel = Some(note_num(ty, desc)?),
                note::GUEST_OS => notes.guest_os = Some(note_str(desc)),
                note::GUEST_VERSION => notes.guest_version = Some(note_str(desc)),
                note::XEN_VERSION => notes.xen_version = Some(note_str(desc)),
                note::LOADER => notes.loader = Some(note_str(desc)),
                note::FEATURES => notes.features = Some(note_str(desc)),
                _ => {}
            }
        }
        off = next;
    }
    Ok(())
}

/// Is `va` a canonical 48-bit x86-64 address?
pub(crate) fn is_canonical(va: u64) -> bool {
    let top = (va as i64) >> 47;
    top == 0 || top == -1
}

impl KernelImage {
    /// A flat binary loaded at `virt_base` (which is also PFN 0), starting at `entry`.
    ///
    /// # Errors
    /// An empty image, an unaligned or non-canonical `virt_base`, an entry point
    /// outside the image, or an image larger than [`MAX_IMAGE_BYTES`].
    pub fn from_flat(
        bytes: Vec<u8>,
        virt_base: u64,
        entry: u64,
    ) -> Result<KernelImage, ImageError> {
        let img = KernelImage {
            virt_base,
            load_addr: virt_base,
            entry,
            bytes,
            hypercall_page: None,
            notes: XenNotes::default(),
        };
        img.validate()?;
        Ok(img)
    }

    /// The same image with a hypercall page at virtual address `va` (page-aligned,
    /// inside the image).
    ///
    /// # Errors
    /// As [`KernelImage::validate`].
    pub fn with_hypercall_page(mut self, va: u64) -> Result<KernelImage, ImageError> {
        self.hypercall_page = Some(va);
        self.validate()?;
        Ok(self)
    }

    /// One past the last byte of the image.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.load_addr.saturating_add(self.bytes.len() as u64)
    }

    /// Checks the addresses: `virt_base` and `load_addr` page-aligned and canonical,
    /// `virt_base ≤ load_addr`, a non-empty image of at most [`MAX_IMAGE_BYTES`] that
    /// neither wraps nor leaves its canonical half, the entry point inside it, and the
    /// hypercall page page-aligned and inside it.
    ///
    /// # Errors
    /// [`ImageError::Layout`] saying which rule is broken.
    pub fn validate(&self) -> Result<(), ImageError> {
        let e = |s: String| Err(ImageError::Layout(s));
        if self.virt_base % PAGE != 0 || !is_canonical(self.virt_base) {
            return e(format!(
                "virt_base {:#x} must be a page-aligned canonical address",
                self.virt_base
            ));
        }
        if self.load_addr % PAGE != 0 || self.load_addr < self.virt_base {
            return e(format!(
                "the image start {:#x} must be page-aligned and not below virt_base {:#x}",
                self.load_addr, self.virt_base
            ));
        }
        if self.bytes.is_empty() {
            return e("the image is empty".into());
        }
        if self.bytes.len() as u64 > MAX_IMAGE_BYTES {
            return e(format!(
                "the image is {} bytes; at most {MAX_IMAGE_BYTES} are accepted",
                self.bytes.len()
            ));
        }
        let last = match self.load_addr.checked_add(self.bytes.len() as u64 - 1) {
            Some(l) if is_canonical(l) && (l >> 63) == (self.load_addr >> 63) => l,
            _ => {
                return e(format!(
                    "the image {:#x}+{:#x} wraps or leaves the canonical address range",
                    self.load_addr,
                    self.bytes.len()
                ))
            }
        };
        if self.entry < self.load_addr || self.entry > last {
            return e(format!(
                "the entry point {:#x} is outside the image {:#x}..={last:#x}",
                self.entry, self.load_addr
            ));
        }
        if let Some(h) = self.hypercall_page {
            if h % PAGE != 0 || h < self.load_addr || h > last {
                return e(format!(
                    "the hypercall page {h:#x} must be a page-aligned address inside the image {:#x}..={last:#x}",
                    self.load_addr
                ));
            }
        }
        Ok(())
    }

    /// Parses an ELF64 x86-64 executable (see the module documentation).
    ///
    /// # Errors
    /// [`ImageError`] for anything malformed, unsupported or out of bounds.
    pub fn from_elf(file: &[u8]) -> Result<KernelImage, ImageError> {
        let elf = Elf { b: file };
        if file.len() < 4 || &file[..4] != b"\x7fELF" {
            return Err(ImageError::NotElf);
        }
        let hdr = || "the ELF header".to_owned();
        let ident = elf.slice(0, 16, &hdr)?;
        if ident[4] != 2 {
            return Err(ImageError::Unsupported(format!(
                "class {} (only ELF64 is supported)",
                ident[4]
            )));
        }
        if ident[5] != 1 {
            return Err(ImageError::Unsupported(format!(
                "data encoding {} (only little-endian is supported)",
                ident[5]
            )));
        }
        if ident[6] != 1 {
            return Err(ImageError::Unsupported(format!("ELF version {}", ident[6])));
        }
        elf.slice(0, EHDR_SIZE, &hdr)?;
        let e_type = elf.u16(16, &hdr)?;
        let e_machine = elf.u16(18, &hdr)?;
        if e_machine != EM_X86_64 {
            return Err(ImageError::Unsupported(format!(
                "machine {e_machine} (only x86-64, 62, is supported)"
            )));
        }
        if e_type != ET_EXEC {
            return Err(ImageError::Unsupported(format!(
                "type {e_type} (only executables, ET_EXEC = 2, can be loaded)"
            )));
        }
        let e_entry = elf.u64(24, &hdr)?;
        let e_phoff = elf.u64(32, &hdr)?;
        let e_shoff = elf.u64(40, &hdr)?;
        let e_phentsize = u64::from(elf.u16(54, &hdr)?);
        let e_phnum = u64::from(elf.u16(56, &hdr)?);
        let e_shentsize = u64::from(elf.u16(58, &hdr)?);
        let e_shnum = u64::from(elf.u16(60, &hdr)?);
        if e_phnum == 0 {
            return Err(ImageError::Malformed("no program headers".into()));
        }
        if e_phnum == 0xffff {
            return Err(ImageError::Unsupported(
                "extended program header numbering (PN_XNUM)".into(),
            ));
        }
        if e_phentsize < PHDR_SIZE {
            return Err(ImageError::Malformed(format!(
                "program header entries are {e_phentsize} bytes (need at least {PHDR_SIZE})"
            )));
        }

        let mut segments = Vec::new();
        let mut notes = XenNotes::default();
        let mut had_note_segment = false;
        for i in 0..e_phnum {
            // i < 0xffff and e_phentsize < 0x10000, so the product cannot overflow.
            let base = e_phoff.checked_add(i * e_phentsize).ok_or_else(|| {
                ImageError::Malformed(format!("program header {i} lies beyond 2^64"))
            })?;
            let what = || format!("program header {i}");
            elf.slice(base, PHDR_SIZE, &what)?;
            let p_type = elf.u32(base, &what)?;
            let p_offset = elf.u64(base + 8, &what)?;
            let p_paddr = elf.u64(base + 24, &what)?;
            let p_filesz = elf.u64(base + 32, &what)?;
            let p_memsz = elf.u64(base + 40, &what)?;
            match p_type {
                PT_LOAD if p_memsz > 0 => {
                    if p_filesz > p_memsz {
                        return Err(ImageError::Malformed(format!(
                            "segment {i}: file size {p_filesz:#x} exceeds memory size {p_memsz:#x}"
                        )));
                    }
                    let seg_what = || format!("the contents of segment {i}");
                    elf.slice(p_offset, p_filesz, &seg_what)?;
                    if p_paddr.checked_add(p_memsz).is_none() {
                        return Err(ImageError::Malformed(format!(
                            "segment {i}: {p_paddr:#x}+{p_memsz:#x} wraps around"
                        )));
                    }
                    segments.push(Segment {
                        offset: p_offset,
                        paddr: p_paddr,
                        filesz: p_filesz,
                        memsz: p_memsz,
                    });
                }
                PT_NOTE => {
                    had_note_segment = true;
                    let what = || format!("the notes of segment {i}");
                    parse_notes(elf.slice(p_offset, p_filesz, &what)?, &mut notes)?;
                }
                _ => {}
            }
        }
        if !had_note_segment && e_shoff != 0 && e_shnum != 0 {
            if e_shentsize < SHDR_SIZE {
                return Err(ImageError::Malformed(format!(
                    "section header entries are {e_shentsize} bytes (need at least {SHDR_SIZE})"
                )));
            }
            for i in 0..e_shnum {
                let base = e_shoff.checked_add(i * e_shentsize).ok_or_else(|| {
                    ImageError::Malformed(format!("section header {i} lies beyond 2^64"))
                })?;
                let what = || format!("section header {i}");
                elf.slice(base, SHDR_SIZE, &what)?;
                if elf.u32(base + 4, &what)? == SHT_NOTE {
                    let off = elf.u64(base + 24, &what)?;
                    let size = elf.u64(base + 32, &what)?;
                    let nwhat = || format!("the notes of section {i}");
                    parse_notes(elf.slice(off, size, &nwhat)?, &mut notes)?;
                }
            }
        }
        if segments.is_empty() {
            return Err(ImageError::Malformed(
                "no loadable (PT_LOAD) segment".into(),
            ));
        }
        if let Some(f) = &notes.features {
            if f.split('|').any(|feat| feat == "!auto_translated_physmap") {
                return Err(ImageError::Unsupported(
                    "the kernel requires auto_translated_physmap (PV autotranslate is no longer supported)"
                        .into(),
                ));
            }
        }

        // libelf's address calculation (elf_xen_addr_calc_check).
        if notes.paddr_offset.is_some() && notes.virt_base.is_none() {
            return Err(ImageError::Layout(
                "XEN_ELFNOTE_PADDR_OFFSET is set but XEN_ELFNOTE_VIRT_BASE is not".into(),
            ));
        }
        let virt_base = notes.virt_base.unwrap_or(0);
        let paddr_offset = notes
            .paddr_offset
            .unwrap_or(if notes.present { 0 } else { virt_base });
        let virt_offset = virt_base.wrapping_sub(paddr_offset);
        let pstart = segments.iter().map(|s| s.paddr).min().unwrap_or(0);
        // Checked above: no segment's end wraps.
        let pend = segments
            .iter()
            .map(|s| s.paddr + s.memsz)
            .max()
            .unwrap_or(0);
        let kstart = pstart.wrapping_add(virt_offset);
        let kend = pend.wrapping_add(virt_offset);
        let entry = notes.entry.unwrap_or(e_entry);
        if kstart > kend || virt_base > kstart || entry < kstart || entry > kend {
            return Err(ImageError::Layout(format!(
                "start {kstart:#x}, end {kend:#x}, entry {entry:#x} and virt_base {virt_base:#x} are out of order (need virt_base <= start <= entry <= end)"
            )));
        }
        if virt_base % PAGE != 0 {
            return Err(ImageError::Layout(format!(
                "virt_base {virt_base:#x} is not page-aligned"
            )));
        }
        let load_addr = kstart & !(PAGE - 1);
        let span = kend - load_addr;
        if span > MAX_IMAGE_BYTES {
            return Err(ImageError::Layout(format!(
                "the image spans {span:#x} bytes; at most {MAX_IMAGE_BYTES:#x} are accepted"
            )));
        }
        let mut bytes = vec![0u8; span as usize];
        for s in &segments {
            // Each segment lies inside [pstart, pend), so these cannot underflow or
            // exceed `span`.
            let dst = (s.paddr.wrapping_add(virt_offset) - load_addr) as usize;
            let src = elf.slice(s.offset, s.filesz, &|| "a segment".to_owned())?;
            bytes[dst..dst + src.len()].copy_from_slice(src);
            // The BSS part is already zero; a later overlapping segment wins, as in
            // libelf, which copies segments in order.
            bytes[dst + src.len()..dst + s.memsz as usize].fill(0);
        }
        let img = KernelImage {
            virt_base,
            load_addr,
            entry,
            bytes,
            hypercall_page: notes.hypercall_page,
            notes,
        };
        img.validate()?;
        Ok(img)
    }

    /// [`KernelImage::from_elf`] if `file` starts with the ELF magic, otherwise
    /// [`KernelImage::from_flat`] at `flat_base` with the entry at its first byte.
    ///
    /// # Errors
    /// As those functions.
    pub fn from_file_bytes(file: Vec<u8>, flat_base: u64) -> Result<KernelImage, ImageError> {
        if file.starts_with(b"\x7fELF") {
            KernelImage::from_elf(&file)
        } else {
            KernelImage::from_flat(file, flat_base, flat_base)
        }
    }
}

/// Writes a minimal ELF64 executable for tests: one `PT_LOAD` per `(paddr, data,
/// memsz)` and one `PT_NOTE` with the given Xen notes.
#[cfg(test)]
pub(crate) fn make_elf(
    entry: u64,
    segs: &[(u64, &[u8], u64)],
    notes: &[(u32, Vec<u8>)],
) -> Vec<u8> {
    let mut note_blob = Vec::new();
    for (ty, desc) in notes {
        note_blob.extend_from_slice(&4u32.to_le_bytes());
        note_blob.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        note_blob.extend_from_slice(&ty.to_le_bytes());
        note_blob.extend_from_slice(b"Xen\0");
        note_blob.extend_from_slice(desc);
        while note_blob.len() % 4 != 0 {
            note_blob.push(0);
        }
    }
    let nph = segs.len() + usize::from(!notes.is_empty());
    let mut data_off = 64 + 56 * nph as u64;
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&entry.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&(nph as u16).to_le_bytes());
    let mut payload = Vec::new();
    let mut ph = |ty: u32, off: u64, addr: u64, filesz: u64, memsz: u64| {
        let mut p = vec![0u8; 56];
        p[0..4].copy_from_slice(&ty.to_le_bytes());
        p[4..8].copy_from_slice(&7u32.to_le_bytes());
        p[8..16].copy_from_slice(&off.to_le_bytes());
        p[16..24].copy_from_slice(&addr.to_le_bytes());
        p[24..32].copy_from_slice(&addr.to_le_bytes());
        p[32..40].copy_from_slice(&filesz.to_le_bytes());
        p[40..48].copy_from_slice(&memsz.to_le_bytes());
        p[48..56].copy_from_slice(&4096u64.to_le_bytes());
        f.extend_from_slice(&p);
    };
    for (addr, data, memsz) in segs {
        ph(PT_LOAD, data_off, *addr, data.len() as u64, *memsz);
        payload.extend_from_slice(data);
        data_off += data.len() as u64;
    }
    if !notes.is_empty() {
        ph(PT_NOTE, data_off, 0, note_blob.len() as u64, 0);
        payload.extend_from_slice(&note_blob);
    }
    f.extend_from_slice(&payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASE: u64 = 0xffff_ffff_8000_0000;

    fn le(v: u64) -> Vec<u8> {
        v.to_le_bytes().to_vec()
    }

    #[test]
    fn flat_images() {
        let img = KernelImage::from_flat(vec![0x90; 5000], 0x40_0000, 0x40_0010).expect("ok");
        assert_eq!(img.load_addr, 0x40_0000);
        assert_eq!(img.end(), 0x40_0000 + 5000);
        let img = img.with_hypercall_page(0x40_1000).expect("inside");
        assert_eq!(img.hypercall_page, Some(0x40_1000));
        let bad = |r: Result<KernelImage, ImageError>, what: &str| {
            let e = r.expect_err(what);
            assert!(matches!(e, ImageError::Layout(_)), "{what}: {e}");
        };
        bad(
            KernelImage::from_flat(vec![], 0x40_0000, 0x40_0000),
            "empty",
        );
        bad(
            KernelImage::from_flat(vec![1], 0x40_0001, 0x40_0001),
            "unaligned",
        );
        bad(
            KernelImage::from_flat(vec![1], 0x8000_0000_0000, 0x8000_0000_0000),
            "non-canonical",
        );
        bad(
            KernelImage::from_flat(vec![1; 16], 0x40_0000, 0x40_0010),
            "entry past end",
        );
        bad(
            KernelImage::from_flat(vec![1; 16], 0x40_0000, 0x3f_ffff),
            "entry before start",
        );
        bad(
            KernelImage::from_flat(vec![1; 8192], 0x40_0000, 0x40_0000)
                .and_then(|i| i.with_hypercall_page(0x40_0800)),
            "unaligned hypercall page",
        );
        bad(
            KernelImage::from_flat(vec![1; 8192], 0x40_0000, 0x40_0000)
                .and_then(|i| i.with_hypercall_page(0x40_2000)),
            "hypercall page past end",
        );
        bad(
            KernelImage::from_flat(vec![1; 8192], 0x7fff_ffff_f000, 0x7fff_ffff_f000),
            "leaves the lower half",
        );
        let f = KernelImage::from_file_bytes(vec![0xc3], 0x1000).expect("flat");
        assert_eq!((f.virt_base, f.entry), (0x1000, 0x1000));
    }

    #[test]
    fn elf_with_xen_notes() {
        let text = [0xf4u8; 100];
        let data = [1u8, 2, 3];
        let file = make_elf(
            BASE + 0x2010,
            &[
                (BASE + 0x2000, &text, 0x1000),
                (BASE + 0x3000, &data, 0x2000),
            ],
            &[
                (note::VIRT_BASE, le(BASE)),
                (note::PADDR_OFFSET, le(BASE)),
                (note::ENTRY, le(BASE + 0x2004)),
                (note::HYPERCALL_PAGE, le(BASE + 0x3000)),
                (note::GUEST_OS, b"xi-toy\0".to_vec()),
                (note::XEN_VERSION, b"xen-3.0\0".to_vec()),
                (note::LOADER, b"generic\0".to_vec()),
                (note::SUSPEND_CANCEL, 1u32.to_le_bytes().to_vec()),
            ],
        );
        let img = KernelImage::from_elf(&file).expect("parses");
        assert_eq!(img.virt_base, BASE);
        assert_eq!(img.load_addr, BASE + 0x2000);
        assert_eq!(img.entry, BASE + 0x2004, "the ENTRY note wins over e_entry");
        assert_eq!(img.hypercall_page, Some(BASE + 0x3000));
        assert_eq!(img.bytes.len(), 0x3000);
        assert_eq!(&img.bytes[..100], &text[..]);
        assert!(img.bytes[100..0x1000].iter().all(|&b| b == 0), "bss zeroed");
        assert_eq!(&img.bytes[0x1000..0x1003], &data[..]);
        assert!(img.bytes[0x1003..].iter().all(|&b| b == 0));
        assert!(img.notes.present);
        assert_eq!(img.notes.guest_os.as_deref(), Some("xi-toy"));
        assert_eq!(img.notes.xen_version.as_deref(), Some("xen-3.0"));
        assert_eq!(img.notes.loader.as_deref(), Some("generic"));
        assert_eq!(img.notes.suspend_cancel, Some(1));
    }

    #[test]
    fn elf_without_notes_and_with_paddr_offset() {
        let file = make_elf(0x40_0100, &[(0x40_0000, &[0x90; 0x200], 0x200)], &[]);
        let img = KernelImage::from_elf(&file).expect("parses");
        assert_eq!(
            (img.virt_base, img.load_addr, img.entry),
            (0, 0x40_0000, 0x40_0100)
        );
        assert!(!img.notes.present);
        // Linux style: physical addresses, VIRT_BASE and PADDR_OFFSET 0.
        let file = make_elf(
            0x100_0000,
            &[(0x100_0000, &[0x90; 16], 16)],
            &[
                (note::VIRT_BASE, le(BASE)),
                (note::PADDR_OFFSET, le(0)),
                (note::ENTRY, le(BASE + 0x100_0000)),
            ],
        );
        let img = KernelImage::from_elf(&file).expect("parses");
        assert_eq!(img.load_addr, BASE + 0x100_0000);
        assert_eq!(img.entry, BASE + 0x100_0000);
        // Unaligned start: rounded down to the page, with zero padding in front.
        let file = make_elf(0x40_0078, &[(0x40_0078, &[0xc3], 1)], &[]);
        let img = KernelImage::from_elf(&file).expect("parses");
        assert_eq!(img.load_addr, 0x40_0000);
        assert_eq!(img.bytes.len(), 0x79);
        assert_eq!(img.bytes[0x78], 0xc3);
    }

    #[test]
    fn rejects_bad_elf_files() {
        let good = make_elf(
            0x40_0000,
            &[(0x40_0000, &[0xc3; 32], 32)],
            &[(note::VIRT_BASE, le(0))],
        );
        KernelImage::from_elf(&good).expect("the base case parses");
        let check = |mut f: Vec<u8>, edit: &dyn Fn(&mut Vec<u8>), want: &str| {
            edit(&mut f);
            let e = KernelImage::from_elf(&f).expect_err(want);
            assert!(e.to_string().contains(want), "want {want:?}, got {e}");
        };
        check(good.clone(), &|f| f[0] = 0, "no \\x7fELF magic");
        check(good.clone(), &|f| f[4] = 1, "only ELF64");
        check(good.clone(), &|f| f[5] = 2, "only little-endian");
        check(good.clone(), &|f| f[18] = 3, "only x86-64");
        check(good.clone(), &|f| f[16] = 3, "only executables");
        check(
            good.clone(),
            &|f| f.truncate(40),
            "truncated ELF file: the ELF header",
        );
        check(
            good.clone(),
            &|f| f.truncate(100),
            "truncated ELF file: program header 0",
        );
        check(
            good.clone(),
            &|f| f.truncate(64 + 112 + 10),
            "the contents of segment 0",
        );
        check(good.clone(), &|f| f[56] = 0, "no program headers");
        check(
            good.clone(),
            &|f| f[54] = 20,
            "program header entries are 20 bytes",
        );
        check(
            good.clone(),
            &|f| f[32..40].copy_from_slice(&u64::MAX.to_le_bytes()),
            "program header 0",
        );
        // Segment 0: filesz > memsz.
        check(
            good.clone(),
            &|f| f[64 + 40..64 + 48].copy_from_slice(&1u64.to_le_bytes()),
            "exceeds memory size",
        );
        // Segment 0: a huge memsz.
        check(
            good.clone(),
            &|f| f[64 + 40..64 + 48].copy_from_slice(&(1u64 << 40).to_le_bytes()),
            "at most",
        );
        check(
            good.clone(),
            &|f| f[64 + 40..64 + 48].copy_from_slice(&u64::MAX.to_le_bytes()),
            "wraps",
        );
        // Segment 0 turned into a PT_NULL: nothing to load.
        check(good.clone(), &|f| f[64] = 0, "no loadable");
        // Entry point outside.
        check(
            good.clone(),
            &|f| f[24..32].copy_from_slice(&0x50_0000u64.to_le_bytes()),
            "out of order",
        );
        // The note's value size is 7.
        let notes_at = 64 + 112 + 32;
        check(good.clone(), &|f| f[notes_at + 4] = 9, "overruns");
        check(good.clone(), &|f| f[notes_at + 4] = 3, "3-byte value");
        check(
            good.clone(),
            &|f| f.truncate(notes_at + 6),
            "the notes of segment 1",
        );
        let lonely = make_elf(
            0x40_0000,
            &[(0x40_0000, &[0xc3], 1)],
            &[(note::PADDR_OFFSET, le(0))],
        );
        let e = KernelImage::from_elf(&lonely).expect_err("paddr without base");
        assert!(e.to_string().contains("VIRT_BASE is not"), "{e}");
        let hp = make_elf(
            0x40_0000,
            &[(0x40_0000, &[0xc3], 1)],
            &[(note::HYPERCALL_PAGE, le(0x40_1000))],
        );
        let e = KernelImage::from_elf(&hp).expect_err("hypercall page outside");
        assert!(e.to_string().contains("hypercall page"), "{e}");
        let at = make_elf(
            0x40_0000,
            &[(0x40_0000, &[0xc3], 1)],
            &[(
                note::FEATURES,
                b"writable_page_tables|!auto_translated_physmap\0".to_vec(),
            )],
        );
        let e = KernelImage::from_elf(&at).expect_err("autotranslate");
        assert!(e.to_string().contains("auto_translated_physmap"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        /// Random bytes never panic, and anything accepted is a consistent image.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(img) = KernelImage::from_elf(&bytes) {
                prop_assert!(img.validate().is_ok());
            }
        }

        /// A valid file with random bytes overwritten never panics either.
        #[test]
        fn corrupted_headers_never_panic(
            edits in proptest::collection::vec((0usize..300, any::<u8>()), 1..8),
            cut in 0usize..400,
        ) {
            let mut f = make_elf(
                0x40_0000,
                &[(0x40_0000, &[0xc3; 40], 0x3000)],
                &[(note::VIRT_BASE, le(0)), (note::ENTRY, le(0x40_0000))],
            );
            for (at, b) in edits {
                if at < f.len() {
                    f[at] = b;
                }
            }
            f.truncate(cut.max(4));
            if let Ok(img) = KernelImage::from_elf(&f) {
                prop_assert!(img.validate().is_ok());
                prop_assert!(img.bytes.len() as u64 <= MAX_IMAGE_BYTES);
            }
        }
    }
}
