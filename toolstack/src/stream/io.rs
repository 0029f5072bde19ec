//! Offset-tracking byte source and sink that turn I/O failures into [`StreamError`]s
//! carrying a [`Where`].

use std::io::{self, Read, Write};

use zerocopy::{FromBytes, IntoBytes};

use super::error::{StreamError, Where};

/// Bodies of unknown size start with at most this much capacity and grow as data arrives.
const INITIAL_CAPACITY: usize = 64 << 10;

/// A reader that counts the bytes it has consumed.
#[derive(Debug)]
pub(crate) struct Src<R> {
    inner: R,
    offset: u64,
    /// Largest buffer capacity handed out so far (tests check allocation bounds with it).
    pub(crate) max_reserved: usize,
}

impl<R: Read> Src<R> {
    pub(crate) fn new(inner: R, offset: u64) -> Self {
        Self {
            inner,
            offset,
            max_reserved: 0,
        }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Fills `buf`; a stream that ends first is [`StreamError::Truncated`] with the
    /// number of bytes still missing.
    pub(crate) fn read_exact(&mut self, buf: &mut [u8], at: Where) -> Result<(), StreamError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(StreamError::Truncated {
                        at,
                        needed: (buf.len() - filled) as u64,
                    })
                }
                Ok(n) => {
                    filled += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(StreamError::Io { at, source }),
            }
        }
        Ok(())
    }

    /// Reads one wire struct.
    pub(crate) fn read_struct<T: FromBytes + IntoBytes>(
        &mut self,
        at: Where,
    ) -> Result<T, StreamError> {
        let mut value = T::new_zeroed();
        self.read_exact(value.as_mut_bytes(), at)?;
        Ok(value)
    }

    /// Reads `len` bytes into a new vector. At most `prealloc` bytes (or 64 KiB if less)
    /// are reserved up front; beyond that the buffer grows only as data actually arrives,
    /// so a length field alone never makes xi allocate.
    pub(crate) fn read_vec(
        &mut self,
        len: usize,
        prealloc: usize,
        at: Where,
    ) -> Result<Vec<u8>, StreamError> {
        let mut v: Vec<u8> = Vec::with_capacity(len.min(prealloc.max(INITIAL_CAPACITY)));
        while v.len() < len {
            let start = v.len();
            if start == v.capacity() {
                let target = len.min(start.saturating_mul(2).max(INITIAL_CAPACITY));
                v.reserve_exact(target - start);
            }
            self.max_reserved = self.max_reserved.max(v.capacity());
            // `take` stops at the spare capacity, so `read_to_end` never grows the buffer
            // (and, unlike `resize` + `read_exact`, does not zero it first).
            let room = (v.capacity().min(len) - start) as u64;
            let got = (&mut self.inner)
                .take(room)
                .read_to_end(&mut v)
                .map_err(|source| StreamError::Io { at, source })?;
            self.offset += got as u64;
            if got as u64 != room {
                return Err(StreamError::Truncated {
                    at,
                    needed: (len - v.len()) as u64,
                });
            }
        }
        self.max_reserved = self.max_reserved.max(v.capacity());
        Ok(v)
    }

    /// Consumes `len` bytes without keeping them; returns whether all were zero.
    pub(crate) fn skip(&mut self, len: u64, at: Where) -> Result<bool, StreamError> {
        let mut buf = [0u8; 512];
        let mut left = len;
        let mut all_zero = true;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            self.read_exact(&mut buf[..n], at)?;
            all_zero &= buf[..n].iter().all(|&b| b == 0);
            left -= n as u64;
        }
        Ok(all_zero)
    }

    /// True if the stream has no more bytes (consumes one byte otherwise).
    pub(crate) fn at_eof(&mut self, at: Where) -> Result<bool, StreamError> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(true),
                Ok(_) => {
                    self.offset += 1;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(StreamError::Io { at, source }),
            }
        }
    }
}

/// A writer that counts the bytes it has produced.
#[derive(Debug)]
pub(crate) struct Sink<W> {
    inner: W,
    offset: u64,
}

impl<W: Write> Sink<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self { inner, offset: 0 }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    pub(crate) fn write_all(&mut self, buf: &[u8], at: Where) -> Result<(), StreamError> {
        self.inner
            .write_all(buf)
            .map_err(|source| StreamError::Io { at, source })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    pub(crate) fn write_zeros(&mut self, n: u64, at: Where) -> Result<(), StreamError> {
        const ZEROS: [u8; 8] = [0; 8];
        let mut left = n;
        while left > 0 {
            let k = left.min(8) as usize;
            self.write_all(&ZEROS[..k], at)?;
            left -= k as u64;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self, at: Where) -> Result<(), StreamError> {
        self.inner
            .flush()
            .map_err(|source| StreamError::Io { at, source })
    }

    pub(crate) fn get_ref(&self) -> &W {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}
