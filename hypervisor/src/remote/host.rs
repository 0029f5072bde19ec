//! A model host as a daemon: the [`Xen`] trait served on a Unix socket, with the
//! guests running between calls.
//!
//! `xi host serve` uses this so that separate `xi` commands act on one simulated
//! machine, as separate `xl` commands act on one dom0. The toolstack logic stays in
//! the client; the daemon only executes trait calls ([`dispatch`]) and, when no call is
//! pending, advances the machine ([`Host::run_guests`]) in slices of
//! [`HostOptions::slice_insns`] instructions, so a guest created by one command is
//! still running when the next command looks at it.
//!
//! # When the guests run
//!
//! - **No client connected**: slice after slice, until nothing can run (every vCPU
//!   blocked with no timer armed, or paused, or no guests): then the daemon sleeps until
//!   a client connects.
//! - **A client connected**: only after it has sent nothing for
//!   [`HostOptions::quiet`] (100 ms by default). A toolstack command sends its calls
//!   back to back, so within one command no idle slice runs between its calls: the
//!   command sees exactly what it would see on an in-process model in the same state
//!   (guests still run *inside* calls that wait in virtual time, such as a save's wait
//!   for the suspend).
//! - A slice that retires nothing stops idle running until the next call, since no
//!   call has changed anything that could make a guest runnable.
//!
//! # Determinism
//!
//! The model is deterministic: the same calls in the same order on the same state give
//! the same bytes. What the daemon adds is *how many* idle slices run between two
//! calls, and that depends on wall time (how long the gap between two `xi` commands
//! was, how fast this machine interprets). So: one command's calls are applied
//! deterministically to whatever state the machine has reached; the state reached
//! between commands is not reproducible. With `slice_insns = 0` the guests run only
//! inside calls and a whole sequence of commands is deterministic.
//!
//! # Stopping
//!
//! [`serve_host`] returns when `stop()` says so (checked between slices and every
//! [`HostOptions::poll`] while idle) or when a client sends [`XenCall::StopHost`]
//! (`xi host stop`; it gets its reply first). [`bind`] deals with a socket file left
//! behind by a daemon that died: it is replaced if nothing answers on it, and an
//! answering daemon is an error.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{decode, dispatch, read_frame_or_stop, refused, send, Boundary, XenCall, XenReply};
use crate::model::Model;
use crate::xen::Xen;

/// A backend whose guests can be run from outside a call: the model.
pub trait Host: Xen {
    /// Runs the guests for up to `max_insns` instructions; returns how many retired
    /// (0: nothing can run until something changes).
    fn run_guests(&mut self, max_insns: u64) -> u64;
}

impl Host for Model {
    fn run_guests(&mut self, max_insns: u64) -> u64 {
        self.run(max_insns)
    }
}

/// How a host daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOptions {
    /// Guest instructions per idle slice; 0 runs guests only inside calls.
    pub slice_insns: u64,
    /// How long a connected client must be silent before idle slices resume.
    pub quiet: Duration,
    /// How often an idle daemon looks for a client, a call, or `stop`.
    pub poll: Duration,
    /// A client that sends nothing for this long in the middle of a call is
    /// disconnected (so it cannot hold the host).
    pub stall: Duration,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            slice_insns: 200_000,
            quiet: Duration::from_millis(100),
            poll: Duration::from_millis(5),
            stall: Duration::from_secs(10),
        }
    }
}

/// What a daemon did, returned when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostStats {
    /// Clients served.
    pub connections: u64,
    /// Calls executed.
    pub calls: u64,
    /// Guest instructions retired in idle slices (not counting those inside calls).
    pub idle_insns: u64,
    /// Whether a client asked it to stop ([`XenCall::StopHost`]).
    pub stopped_by_client: bool,
}

/// Why [`bind`] could not listen.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another daemon answers on the socket.
    #[error("{}: a host is already serving on this socket (stop it with `xi host stop`)", path.display())]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// The path exists and is not a socket: it is not removed.
    #[error("{}: exists and is not a socket; not replacing it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Removing the stale socket or binding failed.
    #[error("{}: cannot listen: {source}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Whether [`bind`] found and replaced a stale socket.
#[derive(Debug)]
pub struct Bound {
    /// The listener.
    pub listener: UnixListener,
    /// A socket file of a dead daemon was removed first.
    pub replaced_stale: bool,
}

/// Listens on `path`. A socket file nobody answers on (left by a daemon that was
/// killed) is removed and replaced; one a daemon answers on is [`BindError::InUse`].
///
/// # Errors
/// [`BindError`].
pub fn bind(path: &Path) -> Result<Bound, BindError> {
    let io_err = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut replaced_stale = false;
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_socket() {
                return Err(BindError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            if UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(io_err)?;
            replaced_stale = true;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_err)?;
    Ok(Bound {
        listener,
        replaced_stale,
    })
}

/// The daemon's idle-running state.
struct Runner<'a, H: Host + ?Sized> {
    host: &'a mut H,
    opts: &'a HostOptions,
    /// The last slice retired nothing and no call has come since.
    dormant: bool,
    stats: HostStats,
}

impl<H: Host + ?Sized> Runner<'_, H> {
    /// Runs one idle slice if there may be something to run; returns whether it ran.
    fn slice(&mut self) -> bool {
        if self.opts.slice_insns == 0 || self.dormant {
            return false;
        }
        let n = self.host.run_guests(self.opts.slice_insns);
        self.stats.idle_insns += n;
        if n == 0 {
            self.dormant = true;
        }
        n > 0
    }

    fn call(&mut self, frame: &[u8]) -> (XenReply, bool) {
        self.stats.calls += 1;
        self.dormant = false;
        match decode::<XenCall>(frame) {
            Ok(XenCall::StopHost) => (XenReply::Unit(Ok(())), true),
            Ok(call) => (dispatch(self.host, call), false),
            Err(e) => (refused(format!("undecodable call: {e}")), false),
        }
    }
}

/// Serves `host` on `listener` (one client at a time, as [`super::serve_unix`]) and
/// runs its guests between calls as the module documentation describes, until
/// `stop()` returns true or a client sends [`XenCall::StopHost`].
///
/// # Errors
/// Errors of the listener itself; a failing connection ends only that connection.
pub fn serve_host<H: Host + ?Sized>(
    host: &mut H,
    listener: &UnixListener,
    stop: &dyn Fn() -> bool,
    opts: &HostOptions,
) -> io::Result<HostStats> {
    listener.set_nonblocking(true)?;
    let mut r = Runner {
        host,
        opts,
        dormant: false,
        stats: HostStats::default(),
    };
    while !stop() {
        match listener.accept() {
            Ok((conn, _)) => {
                r.stats.connections += 1;
                // The connection's own failure is its client's problem, not the host's.
                if let Ok(true) = serve_client(&mut r, &conn, stop) {
                    r.stats.stopped_by_client = true;
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !r.slice() {
                    std::thread::sleep(opts.poll);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(r.stats)
}

/// Serves one client; `Ok(true)` if it asked the host to stop.
fn serve_client<H: Host + ?Sized>(
    r: &mut Runner<'_, H>,
    conn: &UnixStream,
    stop: &dyn Fn() -> bool,
) -> io::Result<bool> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(r.opts.poll))?;
    let mut stream = conn;
    let mut last = Instant::now();
    loop {
        // Give up waiting for the next call's first byte when it is time to stop, or
        // to run a slice (the client has been quiet long enough).
        let dormant = r.dormant;
        let may_run = r.opts.slice_insns > 0 && !dormant;
        let quiet = r.opts.quiet;
        let want_break = || stop() || (may_run && last.elapsed() >= quiet);
        match read_frame_or_stop(&mut stream, &want_break, Some(r.opts.stall))? {
            Boundary::Done(frame) => {
                let (reply, stop_host) = r.call(&frame);
                send(&mut stream, &reply)?;
                if stop_host {
                    return Ok(true);
                }
                last = Instant::now();
            }
            Boundary::Eof => return Ok(false),
            Boundary::Stopped => {
                if stop() {
                    return Ok(false);
                }
                r.slice();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testkit::MiniGuest;
    use crate::model::ModelConfig;
    use crate::remote::RemoteXen;
    use crate::types::{DomId, Mfn, PAGE_SIZE};
    use crate::xen::XS_NO_TX;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// `inc qword [0x400800]; jmp back`: the guest counts in data page 0.
    const COUNT_LOOP: [u8; 10] = [0x48, 0xff, 0x04, 0x25, 0x00, 0x08, 0x40, 0x00, 0xeb, 0xf6];

    fn socket(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("xi-host-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn opts(slice: u64) -> HostOptions {
        HostOptions {
            slice_insns: slice,
            quiet: Duration::from_secs(3600),
            poll: Duration::from_millis(1),
            stall: Duration::from_millis(50),
        }
    }

    /// A daemon thread on a model with (if `guest`) one counting guest; returns the
    /// guest's id and counter page.
    fn spawn_host(
        path: &Path,
        guest: bool,
        o: HostOptions,
    ) -> (
        Option<(DomId, Mfn)>,
        Arc<AtomicBool>,
        std::thread::JoinHandle<HostStats>,
    ) {
        let stop = Arc::new(AtomicBool::new(false));
        let bound = bind(path).expect("bind");
        let s2 = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let mut m = Model::new(ModelConfig {
                machine_frames: 4096,
            });
            let g = guest.then(|| {
                let g = MiniGuest::build(&mut m, 2).unwrap();
                m.mem.guest_write(g.data[0], 0, &COUNT_LOOP).unwrap();
                (g.dom, g.data[0])
            });
            tx.send(g).unwrap();
            serve_host(&mut m, &bound.listener, &|| s2.load(Ordering::SeqCst), &o).expect("serve")
        });
        (rx.recv().unwrap(), stop, h)
    }

    fn counter(c: &mut RemoteXen<UnixStream>, (dom, mfn): (DomId, Mfn)) -> u64 {
        let mut page = vec![0u8; PAGE_SIZE];
        let mut errs = [0i32];
        c.foreign_read(dom, &[mfn], &mut page, &mut errs).unwrap();
        assert_eq!(errs, [0]);
        u64::from_le_bytes(page[0x800..0x808].try_into().unwrap())
    }

    #[test]
    fn guests_run_between_clients_but_not_between_the_calls_of_one() {
        let path = socket("run");
        let (g, _stop, h) = spawn_host(&path, true, opts(10_000));
        let g = g.unwrap();
        // Each client connection sees the counter further on than the last, as long
        // as it takes (bounded) for the daemon to run a slice between them.
        let first = counter(&mut RemoteXen::connect(&path).unwrap(), g);
        let mut later = first;
        for _ in 0..2000 {
            later = counter(&mut RemoteXen::connect(&path).unwrap(), g);
            if later > first {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            later > first,
            "the guest ran between clients ({first} -> {later})"
        );
        // Within one connection, with the quiet time not reached, nothing runs.
        let mut c = RemoteXen::connect(&path).unwrap();
        let a = counter(&mut c, g);
        for _ in 0..50 {
            c.xs_write(XS_NO_TX, "/tool/x", b"1").unwrap();
        }
        assert_eq!(counter(&mut c, g), a, "ran between the calls of one client");
        c.stop_host().expect("stop");
        let stats = h.join().unwrap();
        assert!(stats.stopped_by_client);
        assert!(stats.idle_insns > 0);
        assert!(stats.connections >= 3);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_quiet_client_does_not_stop_the_guests() {
        let path = socket("quiet");
        let mut o = opts(10_000);
        o.quiet = Duration::from_millis(1);
        let (g, _stop, h) = spawn_host(&path, true, o);
        let g = g.unwrap();
        let mut c = RemoteXen::connect(&path).unwrap();
        let first = counter(&mut c, g);
        let mut later = first;
        // Silent for much longer than `quiet` + the read timeout's granularity (socket
        // timeouts are rounded to the kernel's tick), so the daemon notices the quiet.
        for _ in 0..500 {
            std::thread::sleep(Duration::from_millis(20));
            later = counter(&mut c, g);
            if later > first {
                break;
            }
        }
        assert!(later > first, "ran while the client was quiet");
        c.stop_host().unwrap();
        h.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn slice_zero_never_runs_and_a_stop_condition_ends_the_daemon() {
        let path = socket("stop");
        let (g, stop, h) = spawn_host(&path, true, opts(0));
        let g = g.unwrap();
        let a = counter(&mut RemoteXen::connect(&path).unwrap(), g);
        std::thread::sleep(Duration::from_millis(20));
        let b = counter(&mut RemoteXen::connect(&path).unwrap(), g);
        assert_eq!(a, b);
        stop.store(true, Ordering::SeqCst);
        let stats = h.join().unwrap();
        assert_eq!(stats.idle_insns, 0);
        assert!(!stats.stopped_by_client);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_host_with_nothing_to_run_goes_dormant_and_still_answers() {
        let path = socket("dormant");
        let (_, _stop, h) = spawn_host(&path, false, opts(10_000));
        std::thread::sleep(Duration::from_millis(20));
        let mut c = RemoteXen::connect(&path).unwrap();
        assert_eq!(c.server_backend().unwrap(), "model");
        c.stop_host().unwrap();
        let stats = h.join().unwrap();
        assert_eq!(stats.idle_insns, 0);
        assert_eq!(stats.calls, 2);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_client_that_stalls_inside_a_call_is_dropped_and_the_host_goes_on() {
        use std::io::{Read, Write};
        let path = socket("stall");
        let (_, _stop, h) = spawn_host(&path, false, opts(10_000));
        let mut s = UnixStream::connect(&path).unwrap();
        // Half a frame header, then nothing.
        s.write_all(&[8, 0]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).unwrap(), 0, "dropped by the host");
        let mut c = RemoteXen::connect(&path).unwrap();
        assert_eq!(c.server_backend().unwrap(), "model");
        c.stop_host().unwrap();
        h.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let path = socket("stale");
        // A socket file with nobody listening (its listener dropped).
        drop(UnixListener::bind(&path).unwrap());
        let b = bind(&path).expect("stale socket replaced");
        assert!(b.replaced_stale);
        // Now someone listens: refused, and the file is left alone.
        assert!(matches!(bind(&path), Err(BindError::InUse { .. })));
        drop(b);
        std::fs::remove_file(&path).unwrap();
        // A regular file is never removed.
        std::fs::write(&path, b"data").unwrap();
        assert!(matches!(bind(&path), Err(BindError::NotASocket { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn plain_dispatch_refuses_stop_host() {
        let mut m = Model::new(ModelConfig {
            machine_frames: 4096,
        });
        assert!(matches!(
            dispatch(&mut m, XenCall::StopHost),
            XenReply::Failed(_)
        ));
    }
}
