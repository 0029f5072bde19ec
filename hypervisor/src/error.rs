//! Errors: Xen's errno values and the error type of the [`Xen`](crate::Xen) trait.

use std::fmt;

/// A Xen errno value (positive; hypercalls return its negation). Numbering is Xen's
/// `public/errno.h`, which matches Linux on x86.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident = $val:literal),* $(,)?) => {
        impl Errno {
            $(#[doc = concat!("`", stringify!($name), "` (", stringify!($val), ")")]
            pub const $name: Errno = Errno($val);)*

            /// The symbolic name, if this is an errno xi knows.
            #[must_use]
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7,
    EBADF = 9, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16,
    EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22,
    ENFILE = 23, EMFILE = 24, ENOSPC = 28, EROFS = 30, EMLINK = 31, EDOM = 33,
    ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36, ENOLCK = 37, ENOSYS = 38,
    ENOTEMPTY = 39, ENODATA = 61, ETIME = 62, EBADMSG = 74, EOVERFLOW = 75,
    EILSEQ = 84, ERESTART = 85, ENOTSOCK = 88, EOPNOTSUPP = 95, EADDRINUSE = 98,
    EADDRNOTAVAIL = 99, ENOBUFS = 105, EISCONN = 106, ENOTCONN = 107,
    ETIMEDOUT = 110, ECONNREFUSED = 111,
}

impl Errno {
    /// The value a hypercall returns for this error (`-errno`).
    #[must_use]
    pub const fn to_ret(self) -> i64 {
        -(self.0 as i64)
    }
    /// Interprets a hypercall return value: negative values in Xen's errno range are errors.
    ///
    /// # Errors
    /// Returns the errno if `ret` is in `-4095..=-1`.
    pub fn check(ret: i64) -> Result<i64, Errno> {
        if (-4095..0).contains(&ret) {
            Err(Errno((-ret) as i32))
        } else {
            Ok(ret)
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "errno {}", self.0),
        }
    }
}
impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}
impl std::error::Error for Errno {}

/// Result of a model-internal operation: the error is a Xen errno.
pub type XenResult<T> = Result<T, Errno>;

/// Error of a [`Xen`](crate::Xen) trait call.
#[derive(Debug, thiserror::Error)]
pub enum XenError {
    /// The hypervisor (or xenstored) refused the request with this errno.
    #[error("{op}: Xen returned {errno}")]
    Xen {
        /// The operation, e.g. `"domctl createdomain"`.
        op: &'static str,
        /// Xen's errno.
        errno: Errno,
    },
    /// The request's own arguments were malformed before anything reached Xen.
    #[error("{op}: {what}")]
    BadArgument {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        what: String,
    },
    /// The backend could not reach the device at all (hw backend).
    #[error("no Xen privcmd device at {path} — is this a Xen dom0?")]
    NoDevice {
        /// The device path that was tried.
        path: String,
    },
    /// An I/O error talking to a device or socket (hw backend).
    #[error("{op}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The backend does not implement this operation (yet).
    #[error("{op}: not implemented by the {backend} backend")]
    NotImplemented {
        /// The operation.
        op: &'static str,
        /// Which backend.
        backend: &'static str,
    },
}

impl XenError {
    /// Wraps an errno with the name of the operation that failed.
    #[must_use]
    pub fn xen(op: &'static str, errno: Errno) -> Self {
        XenError::Xen { op, errno }
    }
    /// The Xen errno, if this error carries one.
    #[must_use]
    pub fn errno(&self) -> Option<Errno> {
        match self {
            XenError::Xen { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_match_xen() {
        assert_eq!(Errno::EPERM.0, 1);
        assert_eq!(Errno::EINVAL.0, 22);
        assert_eq!(Errno::ERESTART.0, 85);
        assert_eq!(Errno::ENOTCONN.0, 107);
        assert_eq!(Errno::EINVAL.to_ret(), -22);
        assert_eq!(Errno::check(-22), Err(Errno::EINVAL));
        assert_eq!(Errno::check(5), Ok(5));
        assert_eq!(format!("{}", Errno::EFAULT), "EFAULT (14)");
    }
}
