//! [`FlatMemory`]: a [`Bus`] over one flat, identity-mapped byte array — for tests,
//! benchmarks and fuzzing of the interpreter without page tables.

use super::bus::{pf_error, Bus, CodePage, Fault};

/// Guest memory `[0, size)` mapped at virtual address 0, every page readable, writable and
/// executable; anything outside raises #PF (not-present) at the first missing byte.
///
/// The page key is the page number; every store bumps the generation of each page it
/// touches, so self-modifying code is re-decoded.
#[derive(Clone, Debug)]
pub struct FlatMemory {
    mem: Vec<u8>,
    gens: Vec<u64>,
    /// Pages (by number) that are read-only: stores raise #PF(present|write|user).
    read_only: Vec<bool>,
}

impl FlatMemory {
    /// `pages` zeroed 4 KiB pages.
    pub fn new(pages: usize) -> FlatMemory {
        FlatMemory {
            mem: vec![0; pages * 4096],
            gens: vec![0; pages],
            read_only: vec![false; pages],
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.mem.len() as u64
    }

    /// The bytes, for inspection.
    pub fn bytes(&self) -> &[u8] {
        &self.mem
    }

    /// Copies `data` in at `addr` (host side: bumps generations like a guest store). Panics
    /// if out of range — a test-setup error, not guest behaviour.
    pub fn load(&mut self, addr: u64, data: &[u8]) {
        let a = addr as usize;
        self.mem[a..a + data.len()].copy_from_slice(data);
        self.touch(addr, data.len());
    }

    /// Reads a little-endian u64 (host side).
    pub fn peek_u64(&self, addr: u64) -> u64 {
        let a = addr as usize;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.mem[a..a + 8]);
        u64::from_le_bytes(b)
    }

    /// Makes page `pfn` read-only (or writable again).
    pub fn set_read_only(&mut self, pfn: usize, ro: bool) {
        if let Some(p) = self.read_only.get_mut(pfn) {
            *p = ro;
        }
    }

    /// The current generation of page `pfn`.
    pub fn generation(&self, pfn: usize) -> u64 {
        self.gens.get(pfn).copied().unwrap_or(0)
    }

    fn touch(&mut self, addr: u64, len: usize) {
        let first = (addr >> 12) as usize;
        let last = ((addr + len.max(1) as u64 - 1) >> 12) as usize;
        for p in first..=last {
            if let Some(g) = self.gens.get_mut(p) {
                *g += 1;
            }
        }
    }

    /// The first missing byte of `[va, va+len)`, if any.
    #[inline(always)]
    fn missing(&self, va: u64, len: usize) -> Option<u64> {
        let size = self.mem.len() as u64;
        if va >= size {
            Some(va)
        } else if va.checked_add(len as u64).map_or(true, |e| e > size) {
            Some(size)
        } else {
            None
        }
    }
}

impl Bus for FlatMemory {
    fn fetch_page(&mut self, va: u64) -> Result<CodePage, Fault> {
        let pfn = va >> 12;
        match self.gens.get(pfn as usize) {
            Some(&gen) => Ok(CodePage { key: pfn, gen }),
            None => Err(Fault::pf(va, pf_error::USER | pf_error::FETCH)),
        }
    }

    fn code_bytes(&self, key: u64) -> &[u8; 4096] {
        let a = (key as usize).saturating_mul(4096);
        match self
            .mem
            .get(a..a + 4096)
            .and_then(|s| <&[u8; 4096]>::try_from(s).ok())
        {
            Some(p) => p,
            None => &ZERO_PAGE,
        }
    }

    #[inline(always)]
    fn code_page_current(&self, page: CodePage) -> bool {
        self.gens.get(page.key as usize) == Some(&page.gen)
    }

    #[inline(always)]
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        if let Some(at) = self.missing(va, buf.len()) {
            return Err(Fault::pf(at, pf_error::USER));
        }
        let a = va as usize;
        buf.copy_from_slice(&self.mem[a..a + buf.len()]);
        Ok(())
    }

    #[inline(always)]
    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), Fault> {
        if let Some(at) = self.missing(va, data.len()) {
            return Err(Fault::pf(at, pf_error::USER | pf_error::WRITE));
        }
        let first = (va >> 12) as usize;
        let last = ((va + data.len() as u64 - 1) >> 12) as usize;
        for p in first..=last {
            if self.read_only.get(p).copied().unwrap_or(false) {
                let at = if p == first { va } else { (p as u64) << 12 };
                return Err(Fault::pf(
                    at,
                    pf_error::PRESENT | pf_error::WRITE | pf_error::USER,
                ));
            }
        }
        let a = va as usize;
        self.mem[a..a + data.len()].copy_from_slice(data);
        for p in first..=last {
            if let Some(g) = self.gens.get_mut(p) {
                *g += 1;
            }
        }
        Ok(())
    }
}

static ZERO_PAGE: [u8; 4096] = [0; 4096];
