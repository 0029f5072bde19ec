//! Hypercall-safe memory: pages Xen can dereference during a hypercall without taking a
//! Linux page fault (`shared/xen/abi.md` §8, "Hypercall buffers").
//!
//! Preferred: pages `mmap`ped `MAP_SHARED` from `/dev/xen/hypercall`, which the kernel
//! hands out zeroed and never swaps, moves or shares. Fallback (older kernels):
//! anonymous `MAP_PRIVATE | MAP_LOCKED` memory with `MADV_DONTFORK`, every page touched,
//! as libxencall does. Every struct Xen reads or writes through a guest handle (domctl,
//! sysctl, memory_op arguments and arrays, mmu_update arrays, …) is bounced through one
//! of these.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use crate::types::PAGE_SIZE;

/// Where a [`HypercallBuf`]'s pages came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufKind {
    /// `mmap` of `/dev/xen/hypercall`.
    Device,
    /// Locked anonymous memory with `MADV_DONTFORK`.
    Locked,
}

/// An owned, page-aligned mapping of hypercall-safe memory.
#[derive(Debug)]
pub struct HypercallBuf {
    ptr: NonNull<u8>,
    len: usize,
    kind: BufKind,
}

// SAFETY: the mapping is owned exclusively by this value (no aliasing handles exist), so
// moving it to another thread is as safe as moving a `Vec<u8>`.
unsafe impl Send for HypercallBuf {}

impl HypercallBuf {
    /// Maps `pages` pages from the hypercall device `dev` (`/dev/xen/hypercall`).
    ///
    /// # Errors
    /// The `mmap` error (e.g. `EBADF` for a descriptor that is not open for mapping).
    pub fn from_device(dev: &File, pages: usize) -> std::io::Result<Self> {
        let len = checked_len(pages)?;
        // SAFETY: a fresh shared mapping at an address of the kernel's choosing; it
        // aliases no Rust object. The result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                dev.as_raw_fd(),
                0,
            )
        };
        Self::finish(p, len, BufKind::Device)
    }

    /// Allocates `pages` pages of locked anonymous memory with `MADV_DONTFORK`.
    ///
    /// # Errors
    /// The `mmap` or `madvise` error (`EAGAIN`/`ENOMEM` when the lock limit is hit).
    pub fn locked(pages: usize) -> std::io::Result<Self> {
        let len = checked_len(pages)?;
        // SAFETY: a fresh private anonymous mapping; it aliases no Rust object.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED,
                -1,
                0,
            )
        };
        let buf = Self::finish(p, len, BufKind::Locked)?;
        // SAFETY: `buf` owns exactly this range; MADV_DONTFORK only changes fork
        // behaviour (the child does not inherit it, so no CoW can break it for Xen).
        let r = unsafe { libc::madvise(buf.ptr.as_ptr().cast(), len, libc::MADV_DONTFORK) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Touch every page so none is missing when Xen copies to or from it.
        let mut b = buf;
        for i in (0..len).step_by(PAGE_SIZE) {
            b.as_mut_slice()[i] = 0;
        }
        Ok(b)
    }

    /// From `/dev/xen/hypercall` when `dev` is given and the mapping works, else locked
    /// anonymous memory.
    ///
    /// # Errors
    /// The fallback's error.
    pub fn alloc(dev: Option<&File>, pages: usize) -> std::io::Result<Self> {
        if let Some(d) = dev {
            if let Ok(b) = Self::from_device(d, pages) {
                return Ok(b);
            }
        }
        Self::locked(pages)
    }

    fn finish(p: *mut libc::c_void, len: usize, kind: BufKind) -> std::io::Result<Self> {
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| std::io::Error::other("mmap returned a null mapping"))?;
        Ok(HypercallBuf { ptr, len, kind })
    }

    /// Length in bytes (a whole number of pages).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a buffer has at least one page.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the pages came from.
    #[must_use]
    pub fn kind(&self) -> BufKind {
        self.kind
    }

    /// The user virtual address Xen is given for byte `off`.
    #[must_use]
    pub fn addr(&self, off: usize) -> u64 {
        (self.ptr.as_ptr() as u64).wrapping_add(off as u64)
    }

    /// The buffer's bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is a live read/write mapping owned by `self`; the shared
        // borrow of `self` prevents concurrent mutation through this API.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The buffer's bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and the exclusive borrow of `self` makes this the only
        // live reference into the mapping.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for HypercallBuf {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range this value mapped; no reference into it can
        // outlive `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

fn checked_len(pages: usize) -> std::io::Result<usize> {
    pages
        .max(1)
        .checked_mul(PAGE_SIZE)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_fallback_is_page_aligned_zeroed_and_writable() {
        // Locking may hit RLIMIT_MEMLOCK on some machines; one page is always allowed
        // for root and nearly always for users (the default limit is 64 KiB or more).
        let mut b = match HypercallBuf::locked(2) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("skipping: cannot lock 2 pages here: {e}");
                return;
            }
        };
        assert_eq!(b.kind(), BufKind::Locked);
        assert_eq!(b.len(), 2 * PAGE_SIZE);
        assert_eq!(b.addr(0) % PAGE_SIZE as u64, 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[PAGE_SIZE + 7] = 0xa5;
        assert_eq!(b.as_slice()[PAGE_SIZE + 7], 0xa5);
        assert_eq!(b.addr(5), b.addr(0) + 5);
    }

    #[test]
    fn mapping_a_bad_device_is_an_error_not_a_crash() {
        // /dev/null cannot be mapped: ENODEV.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .expect("open /dev/null");
        let e = HypercallBuf::from_device(&f, 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
        // An O_PATH descriptor is not open for mapping at all: EBADF.
        let f = super::super::tests::opath("/dev/null");
        let e = HypercallBuf::from_device(&f, 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }
}
