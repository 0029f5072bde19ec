//! A toy image as an ELF64 PV kernel, so it can be stored as a file and loaded by path
//! (by xi's builder, or by any Xen PV loader that follows libelf).
//!
//! The file is an `ET_EXEC` for x86-64 with two program headers:
//!
//! - `PT_LOAD` (RWX) of the whole image: `p_vaddr` = [`ToyImage::virt_base`],
//!   `p_paddr` = 0 (Linux's convention, `p_paddr = p_vaddr − virt_base`), `p_offset` =
//!   0x1000, `p_filesz` = the code pages (the zero pages after them are left to
//!   `p_memsz`, as BSS);
//! - `PT_NOTE` with Xen's notes (name `"Xen"`, public/elfnote.h): `XEN_VERSION`
//!   `"xen-3.0"`, `GUEST_OS` `"xi-toy"`, `GUEST_VERSION` = the guest's name, `LOADER`
//!   `"generic"`, `VIRT_BASE`, `PADDR_OFFSET` 0, `ENTRY` and `HYPERCALL_PAGE` (u64
//!   each), `SUSPEND_CANCEL` 1 (the guest handles a suspend returning 1).

use crate::ToyImage;

const PAGE: u64 = 4096;
const EHDR: u64 = 64;
const PHDR: u64 = 56;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_RWX: u32 = 7;

const XEN_ELFNOTE_ENTRY: u32 = 1;
const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
const XEN_ELFNOTE_GUEST_OS: u32 = 6;
const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
const XEN_ELFNOTE_LOADER: u32 = 8;
const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;

fn note(out: &mut Vec<u8>, kind: u32, desc: &[u8]) {
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(b"Xen\0");
    out.extend_from_slice(desc);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl ToyImage {
    /// The image as an ELF64 PV kernel file (see the [module](self) documentation).
    /// Deterministic: equal images give equal files.
    #[must_use]
    pub fn to_elf(&self) -> Vec<u8> {
        let mut notes = Vec::new();
        note(&mut notes, XEN_ELFNOTE_XEN_VERSION, &cstr("xen-3.0"));
        note(&mut notes, XEN_ELFNOTE_GUEST_OS, &cstr("xi-toy"));
        note(&mut notes, XEN_ELFNOTE_GUEST_VERSION, &cstr(self.name));
        note(&mut notes, XEN_ELFNOTE_LOADER, &cstr("generic"));
        note(
            &mut notes,
            XEN_ELFNOTE_VIRT_BASE,
            &self.virt_base.to_le_bytes(),
        );
        note(&mut notes, XEN_ELFNOTE_PADDR_OFFSET, &0u64.to_le_bytes());
        note(&mut notes, XEN_ELFNOTE_ENTRY, &self.entry.to_le_bytes());
        note(
            &mut notes,
            XEN_ELFNOTE_HYPERCALL_PAGE,
            &self.hypercall_page.to_le_bytes(),
        );
        note(&mut notes, XEN_ELFNOTE_SUSPEND_CANCEL, &1u64.to_le_bytes());

        // The file part of the load segment: up to the last non-zero page.
        let used = self
            .bytes
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i as u64 + 1);
        let filesz = used.div_ceil(PAGE) * PAGE;
        let memsz = self.bytes.len() as u64;
        let notes_off = EHDR + 2 * PHDR;
        let load_off = PAGE;
        assert!(
            notes_off + notes.len() as u64 <= load_off,
            "notes fit page 0"
        );

        let mut f = Vec::with_capacity((load_off + filesz) as usize);
        // ELF header.
        f.extend_from_slice(b"\x7fELF");
        f.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, SysV
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&self.entry.to_le_bytes());
        f.extend_from_slice(&EHDR.to_le_bytes()); // e_phoff
        f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        f.extend_from_slice(&(EHDR as u16).to_le_bytes());
        f.extend_from_slice(&(PHDR as u16).to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes()); // e_phnum
        f.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
        f.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
        f.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
        let phdr = |f: &mut Vec<u8>, kind: u32, flags: u32, fields: [u64; 6]| {
            f.extend_from_slice(&kind.to_le_bytes());
            f.extend_from_slice(&flags.to_le_bytes());
            for v in fields {
                f.extend_from_slice(&v.to_le_bytes());
            }
        };
        // offset, vaddr, paddr, filesz, memsz, align
        phdr(
            &mut f,
            PT_LOAD,
            PF_RWX,
            [load_off, self.virt_base, 0, filesz, memsz, PAGE],
        );
        let n = notes.len() as u64;
        phdr(&mut f, PT_NOTE, 4, [notes_off, 0, 0, n, n, 4]);
        f.extend_from_slice(&notes);
        f.resize(load_off as usize, 0);
        f.extend_from_slice(&self.bytes[..filesz as usize]);
        f
    }
}

#[cfg(test)]
mod tests {
    use crate::toy;

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn elf_headers_by_hand() {
        let img = toy("counter", "pages=3").unwrap();
        let f = img.to_elf();
        assert_eq!(&f[..7], b"\x7fELF\x02\x01\x01");
        assert_eq!(u16::from_le_bytes([f[16], f[17]]), 2);
        assert_eq!(u16::from_le_bytes([f[18], f[19]]), 62);
        assert_eq!(u64_at(&f, 24), 0x40_0000, "e_entry");
        // PT_LOAD at 64.
        assert_eq!(u32::from_le_bytes(f[64..68].try_into().unwrap()), 1);
        assert_eq!(u64_at(&f, 64 + 8), 4096, "p_offset");
        assert_eq!(u64_at(&f, 64 + 16), 0x40_0000, "p_vaddr");
        assert_eq!(u64_at(&f, 64 + 40), img.bytes.len() as u64, "p_memsz");
        let filesz = u64_at(&f, 64 + 32) as usize;
        assert_eq!(f.len(), 4096 + filesz);
        assert_eq!(&f[4096..], &img.bytes[..filesz]);
        assert!(img.bytes[filesz..].iter().all(|&b| b == 0));
        // The notes name the hypercall page.
        let notes = &f[64 + 112..4096];
        let hc = img.hypercall_page.to_le_bytes();
        assert!(notes.windows(8).any(|w| w == hc));
        assert_eq!(f, toy("counter", "pages=3").unwrap().to_elf());
    }
}
