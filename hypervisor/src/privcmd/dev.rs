//! `/dev/xen/privcmd`: the owning fd, `IOCTL_PRIVCMD_HYPERCALL` and foreign mappings
//! with `IOCTL_PRIVCMD_MMAPBATCH_V2`.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::ptr::NonNull;

use super::ioctl::{self, PrivcmdHypercall, PrivcmdMmapBatchV2};
use crate::error::{Errno, XenError};
use crate::types::PAGE_SIZE;

/// How often a paged-out frame (`ENOENT`) is retried before its error is reported.
const PAGED_OUT_RETRIES: u32 = 100;

/// Turns an OS error from one of the device calls into the trait's error: the errno
/// (Xen's, or the kernel's such as `EBADF`/`ENOTTY`) as [`XenError::Xen`].
pub(crate) fn os_err(op: &'static str, e: &std::io::Error) -> XenError {
    match e.raw_os_error() {
        Some(code) if code > 0 => XenError::xen(op, Errno(code)),
        _ => XenError::Io {
            op,
            source: std::io::Error::new(e.kind(), e.to_string()),
        },
    }
}

/// An open privcmd device.
#[derive(Debug)]
pub struct PrivcmdFd {
    file: File,
}

impl PrivcmdFd {
    /// Opens the privcmd device at `path` (normally `/dev/xen/privcmd`).
    ///
    /// # Errors
    /// [`XenError::NoDevice`] when `path` does not exist (not a Xen dom0), or
    /// [`XenError::Io`] for any other open failure (e.g. not root).
    pub fn open(path: &Path) -> Result<Self, XenError> {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
        {
            Ok(file) => Ok(PrivcmdFd { file }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(XenError::NoDevice {
                path: path.display().to_string(),
            }),
            Err(source) => Err(XenError::Io {
                op: "open /dev/xen/privcmd",
                source,
            }),
        }
    }

    /// Wraps an already open descriptor (tests use `/dev/null` or an `O_PATH` fd).
    #[must_use]
    pub fn from_file(file: File) -> Self {
        PrivcmdFd { file }
    }

    /// Issues hypercall `op` with `args`; the result is Xen's non-negative return value,
    /// a negative return comes back as [`XenError::Xen`] with the errno.
    ///
    /// # Safety
    /// Every argument Xen treats as a pointer must point into hypercall-safe memory
    /// ([`HypercallBuf`](super::buf::HypercallBuf)) holding what the hypercall expects,
    /// live for the whole call, and writable where Xen writes.
    pub unsafe fn hypercall(
        &self,
        name: &'static str,
        op: u64,
        args: [u64; 5],
    ) -> Result<i64, XenError> {
        let mut call = PrivcmdHypercall { op, arg: args };
        // SAFETY: `call` is a valid 48-byte privcmd_hypercall the kernel copies in; the
        // pointers inside it are the caller's responsibility (this fn's contract).
        let r = unsafe {
            ioctl::raw(
                self.file.as_fd(),
                ioctl::PRIVCMD_HYPERCALL,
                std::ptr::from_mut(&mut call),
            )
        };
        r.map(i64::from).map_err(|e| os_err(name, &e))
    }

    /// Maps `mfns` of domain `dom` (read-only unless `writable`) with MMAPBATCH_V2.
    /// `errs[i]` receives 0 or the negative errno for frame `i`; frames Xen reports as
    /// paged out (`ENOENT`) are retried one by one.
    ///
    /// # Errors
    /// `BadArgument` if `errs` is too short; the `mmap`/ioctl errno when the batch as a
    /// whole fails.
    pub fn map_foreign(
        &self,
        dom: u16,
        mfns: &[u64],
        writable: bool,
        errs: &mut [i32],
    ) -> Result<ForeignMapping, XenError> {
        let op = if writable {
            "foreign_write (privcmd mmapbatch_v2)"
        } else {
            "foreign_read (privcmd mmapbatch_v2)"
        };
        let n = mfns.len();
        if errs.len() < n {
            return Err(XenError::BadArgument {
                op,
                what: format!("{} error slots for {n} frames", errs.len()),
            });
        }
        let num = u32::try_from(n).map_err(|_| XenError::BadArgument {
            op,
            what: format!("{n} frames in one batch"),
        })?;
        let errs = &mut errs[..n];
        errs.fill(0);
        if n == 0 {
            return Ok(ForeignMapping {
                ptr: NonNull::dangling(),
                len: 0,
            });
        }
        let len = n * PAGE_SIZE;
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: asks for a fresh shared mapping of the privcmd device, which creates an
        // empty VM_IO|VM_PFNMAP VMA; it aliases no Rust object. Checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&self.file),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os_err(op, &std::io::Error::last_os_error()));
        }
        let map = ForeignMapping {
            ptr: NonNull::new(p.cast::<u8>()).ok_or_else(|| XenError::Io {
                op,
                source: std::io::Error::other("mmap returned a null mapping"),
            })?,
            len,
        };
        let mut batch = PrivcmdMmapBatchV2 {
            num,
            dom,
            pad: 0,
            addr: map.ptr.as_ptr() as u64,
            arr: mfns.as_ptr(),
            err: errs.as_mut_ptr(),
        };
        // SAFETY: `batch` is a valid privcmd_mmapbatch_v2; `arr` points at `n` readable
        // u64s and `err` at `n` writable i32s, both live for the call (the kernel copies
        // them with copy_{from,to}_user); `addr..addr+len` is exactly the VMA just created.
        let r = unsafe {
            ioctl::raw(
                self.file.as_fd(),
                ioctl::PRIVCMD_MMAPBATCH_V2,
                std::ptr::from_mut(&mut batch),
            )
        };
        match r {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                self.retry_paged_out(dom, mfns, &map, errs);
            }
            Err(e) => return Err(os_err(op, &e)),
        }
        Ok(map)
    }

    /// Maps `num` frames of resource (`type_`, `id`) of domain `dom` from frame `idx`
    /// with `IOCTL_PRIVCMD_MMAP_RESOURCE` (read/write), e.g. a domain's grant table.
    ///
    /// # Errors
    /// The `mmap`/ioctl errno.
    pub fn map_resource(
        &self,
        dom: u16,
        type_: u32,
        id: u32,
        idx: u32,
        num: u32,
    ) -> Result<ForeignMapping, XenError> {
        const OP: &str = "privcmd mmap_resource";
        let len = num as usize * PAGE_SIZE;
        if len == 0 {
            return Err(XenError::BadArgument {
                op: OP,
                what: "zero frames".into(),
            });
        }
        // SAFETY: a fresh shared mapping of the privcmd device (an empty VMA); it aliases
        // no Rust object. Checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&self.file),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os_err(OP, &std::io::Error::last_os_error()));
        }
        let map = ForeignMapping {
            ptr: NonNull::new(p.cast::<u8>()).ok_or_else(|| XenError::Io {
                op: OP,
                source: std::io::Error::other("mmap returned a null mapping"),
            })?,
            len,
        };
        let mut arg = ioctl::PrivcmdMmapResource {
            dom,
            pad: 0,
            type_,
            id,
            idx,
            num: u64::from(num),
            addr: map.ptr.as_ptr() as u64,
        };
        // SAFETY: `arg` is a valid privcmd_mmap_resource; `addr..addr+len` is exactly the
        // VMA just created.
        let r = unsafe {
            ioctl::raw(
                self.file.as_fd(),
                ioctl::PRIVCMD_MMAP_RESOURCE,
                std::ptr::from_mut(&mut arg),
            )
        };
        r.map_err(|e| os_err(OP, &e))?;
        Ok(map)
    }

    /// Retries each still-`ENOENT` frame on its own page of `map` until Xen has paged it
    /// back in or the retries run out.
    fn retry_paged_out(&self, dom: u16, mfns: &[u64], map: &ForeignMapping, errs: &mut [i32]) {
        for _ in 0..PAGED_OUT_RETRIES {
            let mut any = false;
            for i in 0..mfns.len() {
                if errs[i] != -libc::ENOENT {
                    continue;
                }
                any = true;
                let mut one = PrivcmdMmapBatchV2 {
                    num: 1,
                    dom,
                    pad: 0,
                    addr: map.ptr.as_ptr() as u64 + (i * PAGE_SIZE) as u64,
                    arr: &mfns[i],
                    err: &mut errs[i],
                };
                // SAFETY: as in `map_foreign`, for one frame: the page at `addr` lies in
                // the VMA and is still empty (its frame failed), which privcmd allows.
                let _ = unsafe {
                    ioctl::raw(
                        self.file.as_fd(),
                        ioctl::PRIVCMD_MMAPBATCH_V2,
                        std::ptr::from_mut(&mut one),
                    )
                };
            }
            if !any {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// A privcmd VMA holding a batch of foreign frames; unmapped on drop. Pages whose frame
/// failed to map must not be touched (they raise `SIGBUS`): use only the pages whose
/// error slot was 0.
#[derive(Debug)]
pub struct ForeignMapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl ForeignMapping {
    /// Copies page `i` into `out` (one page).
    ///
    /// # Safety
    /// Page `i` must have mapped (its error slot was 0).
    pub unsafe fn read_page(&self, i: usize, out: &mut [u8]) {
        assert!(i < self.len / PAGE_SIZE && out.len() == PAGE_SIZE);
        // SAFETY: page `i` lies inside the mapping and is backed by a foreign frame (the
        // caller's contract); `out` is a distinct Rust buffer of one page. The frame may
        // be written concurrently by its domain; a byte copy of raw memory is what
        // libxc does too.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(i * PAGE_SIZE),
                out.as_mut_ptr(),
                PAGE_SIZE,
            );
        }
    }

    /// Copies one page from `data` into page `i`.
    ///
    /// # Safety
    /// Page `i` must have mapped writable (its error slot was 0 and the batch was
    /// mapped with `writable`).
    pub unsafe fn write_page(&self, i: usize, data: &[u8]) {
        assert!(i < self.len / PAGE_SIZE && data.len() == PAGE_SIZE);
        // SAFETY: page `i` lies inside the writable mapping and is backed by a foreign
        // frame (the caller's contract); `data` is a distinct Rust buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.ptr.as_ptr().add(i * PAGE_SIZE),
                PAGE_SIZE,
            );
        }
    }
}

impl ForeignMapping {
    /// Writes `data` at byte `off` of the mapping with volatile stores, in order.
    ///
    /// # Safety
    /// The pages covering `off..off+data.len()` must be mapped writable.
    pub unsafe fn write_bytes(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len);
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: inside the mapping (asserted) and writable (the caller's contract).
            unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(off + i), b) };
        }
    }
}

impl Drop for ForeignMapping {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: unmaps exactly the VMA this value created; no reference into it
        // outlives `self` (pages are only reached through copies).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
