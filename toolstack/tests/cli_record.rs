//! `xi --record`, `xi --replay` and `xi trace dump`, through the real binary against
//! a real `xi host serve --slice 0` daemon (guests run only inside calls, so the calls
//! of a command are reproducible).
//!
//! The recorded trace is checked independently of the CLI: replayed with
//! [`Replayer`] into the library's [`toolstack::save::save`], it must be consumed
//! exactly (every call, nothing more) and give the bytes the CLI wrote to the save file.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use hypervisor::record::{Replayer, Trace};
use hypervisor::remote::{WireError, XenReply};
use toolstack::cli::domains;
use toolstack::save::{save, AfterSave, SaveOptions};

const XI: &str = env!("CARGO_BIN_EXE_xi");

/// A `--slice 0` daemon on a socket in a temporary directory; killed when dropped.
struct Host {
    child: Child,
    dir: tempfile::TempDir,
    sock: PathBuf,
}

impl Host {
    fn start() -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("host.sock");
        let child = Command::new(XI)
            .args([
                "host", "serve", "--memory", "64", "--slice", "0", "--socket",
            ])
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start xi host serve");
        let h = Host { child, dir, sock };
        for _ in 0..3000 {
            if UnixStream::connect(&h.sock).is_ok() {
                return h;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the daemon never listened on {}", h.sock.display());
    }

    fn xi(&self, args: &[&str]) -> Output {
        Command::new(XI)
            .arg("--host")
            .arg(&self.sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run xi")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.xi(args);
        assert!(
            o.status.success(),
            "xi {args:?} failed ({:?}): {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// Creates the counter toy `name`, left paused; its id.
    fn create(&self, name: &str) -> u16 {
        let cfg = self.dir.path().join(format!("{name}.cfg"));
        std::fs::write(
            &cfg,
            format!("name = \"{name}\"\nmemory = 8\nkernel = \"toy:counter\"\nextra = \"pages=16 report=100000\"\n"),
        )
        .unwrap();
        let out = self.ok(&["create", cfg.to_str().unwrap()]);
        out.lines().last().unwrap().trim().parse().unwrap()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `xi` without a host (for `trace dump` and `--replay`).
fn xi_local(args: &[&str]) -> Output {
    Command::new(XI)
        .args(args)
        .env_remove("XI_HOST")
        .stdin(Stdio::null())
        .output()
        .expect("run xi")
}

fn load(path: &str) -> Trace {
    Trace::from_bytes(&std::fs::read(path).expect("the trace file")).expect("a valid trace")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_recorded_save_replays_through_the_library_to_the_same_bytes() {
    let h = Host::start();
    h.create("rec");
    let (t, f) = (h.path("save.xitrace"), h.path("rec.xl"));
    h.ok(&["--record", &t, "save", "rec", &f]);
    let trace = load(&t);
    let written = std::fs::read(&f).unwrap();
    assert!(written.len() > 8 << 20, "an 8 MiB guest's save file");

    // The header names the command line and the backend, and the outcome.
    assert_eq!(trace.header.backend, "remote");
    let note = &trace.header.note;
    assert!(
        note.contains(&format!("--record {t} save rec {f}")),
        "{note}"
    );
    assert!(note.contains(h.sock.to_str().unwrap()), "{note}");
    assert!(note.ends_with("; succeeded"), "{note}");

    // The save's calls, replayed into the library: the same stream, and every
    // recorded call made exactly once in order.
    let mut rp = Replayer::new(trace.clone());
    let (id, _) = domains::resolve_domain(&mut rp, "rec").expect("resolve from the trace");
    let config_json = domains::recorded_config(&mut rp, id);
    assert!(config_json
        .as_deref()
        .is_some_and(|j| j.contains("\"rec\"")));
    let mut buf = Vec::new();
    save(
        &mut rp,
        id,
        &mut buf,
        SaveOptions {
            after: AfterSave::Destroy,
            config_json,
            ..SaveOptions::default()
        },
    )
    .expect("save from the trace");
    domains::forget(&mut rp, id);
    rp.finish().expect("the trace is consumed exactly");
    assert!(buf == written, "the replayed stream differs from the file");

    // The domain really was destroyed by the recorded command, and the trace shows it.
    assert!(!h.ok(&["list"]).contains("rec "));
    assert!(trace
        .entries
        .iter()
        .any(|e| hypervisor::record::describe_call(&e.call).starts_with("domctl destroydomain")));

    // Replay through the binary: the same file again, exit 0.
    let g = h.path("again.xl");
    let o = xi_local(&["--replay", &t, "save", "rec", &g]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(&g).unwrap() == written);
    assert!(
        stderr(&o).contains(&format!("all {} calls matched", trace.entries.len())),
        "{}",
        stderr(&o)
    );

    // A different command diverges: exit 1, naming the call.
    let o = xi_local(&["--replay", &t, "save", "-c", "rec", &h.path("c.xl")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("replay diverged at call #") && err.contains("expected `"),
        "{err}"
    );
    // So does one that stops early: `list` makes only the first call of the save.
    let o = xi_local(&["--replay", &t, "list"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("replay ended after"), "{}", stderr(&o));
}

#[test]
fn a_failing_command_writes_a_trace_ending_with_the_failing_call() {
    let h = Host::start();
    let id = h.create("fail");
    // The domain is running: Xen refuses to unpause it (EINVAL).
    let t = h.path("unpause.xitrace");
    let o = h.xi(&["--record", &t, "unpause", &id.to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("up to the failure"), "{}", stderr(&o));
    let trace = load(&t);
    let last = trace.entries.last().expect("calls were recorded");
    assert!(
        hypervisor::record::describe_call(&last.call).starts_with("domctl unpausedomain"),
        "{}",
        trace.dump()
    );
    assert!(
        matches!(
            &last.reply,
            XenReply::Domctl {
                ret: Err(WireError::Xen { errno: 22, .. }),
                ..
            }
        ),
        "{:?}",
        last.reply
    );
    assert!(trace.header.note.contains("; failed: unpause domain"));

    // Replaying the failure reproduces it: exit 1, every call matched.
    let o = xi_local(&["--replay", &t, "unpause", &id.to_string()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("calls matched; the command failed") && err.contains("EINVAL"),
        "{err}"
    );

    // A failure before any hypervisor call still writes a (short) trace.
    let t2 = h.path("nosuch.xitrace");
    let o = h.xi(&["--record", &t2, "save", "nosuch", &h.path("n.xl")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(load(&t2).header.note.contains("no domain named \"nosuch\""));
}

#[test]
fn trace_dump_lists_the_calls_and_a_corrupt_file_is_a_clean_error() {
    let h = Host::start();
    let id = h.create("dump");
    let t = h.path("pause.xitrace");
    h.ok(&["--record", &t, "pause", &id.to_string()]);
    let trace = load(&t);

    let o = xi_local(&["trace", "dump", &t]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("xi trace v1 backend=remote calls={}", trace.entries.len())
    );
    assert!(lines[1].starts_with("note: recorded by `"), "{out}");
    assert!(
        out.contains(&format!("domctl pausedomain dom={id}")),
        "{out}"
    );
    assert_eq!(lines.len(), 2 + trace.entries.len());
    let o = xi_local(&["trace", "dump", "--counts", &t]);
    assert!(o.status.success());
    let counts = String::from_utf8(o.stdout).unwrap();
    let domctls = trace
        .entries
        .iter()
        .filter(|e| hypervisor::record::describe_call(&e.call).starts_with("domctl "))
        .count();
    assert!(domctls >= 2, "getdomaininfo and pausedomain at least");
    assert!(
        counts.lines().any(|l| l
            .split_whitespace()
            .eq([domctls.to_string().as_str(), "domctl"])),
        "{counts}"
    );

    // Not a trace, a truncated one, one with garbage after it: exit 1, no panic, the
    // message names the file and the offset.
    let bytes = std::fs::read(&t).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("plain.txt", b"hello, world\n".to_vec(), "bad magic"),
        ("cut.xitrace", bytes[..bytes.len() - 3].to_vec(), "at byte "),
        (
            "long.xitrace",
            [&bytes[..], &[1, 2, 3]].concat(),
            &format!("at byte {}", bytes.len()),
        ),
    ];
    for (name, data, want) in cases {
        let p = h.path(name);
        std::fs::write(&p, data).unwrap();
        let o = xi_local(&["trace", "dump", &p]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        let err = stderr(&o);
        assert!(
            err.contains(&p) && err.contains("not a valid xi trace") && err.contains(want),
            "{name}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn record_does_not_apply_to_commands_without_a_host_and_needs_a_writable_place() {
    let o = xi_local(&["--record", "/tmp/never.xitrace", "demo"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not to `xi demo`"), "{}", stderr(&o));
    assert!(!Path::new("/tmp/never.xitrace").exists());

    // Recording to a directory that does not exist: the command ran, the trace cannot
    // be written, exit 1 naming the trace file.
    let h = Host::start();
    let p = h.path("no/such/dir/t.xitrace");
    let o = h.xi(&["--record", &p, "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&p) && stderr(&o).contains("cannot write the trace"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn on_slice_0_hosts_the_same_commands_record_the_same_calls() {
    // The trace's calls and replies do not depend on the daemon or on timing (only the
    // note, which names the socket, differs): what a fixture of a recorded run needs.
    let traces: Vec<Trace> = (0..2)
        .map(|i| {
            let h = Host::start();
            h.create("det");
            if i == 1 {
                std::thread::sleep(Duration::from_millis(30));
            }
            let t = h.path("det.xitrace");
            h.ok(&["--record", &t, "save", "-c", "det", &h.path("det.xl")]);
            load(&t)
        })
        .collect();
    assert!(traces[0].entries.len() > 10);
    assert!(
        traces[0].entries == traces[1].entries,
        "the two hosts' traces differ"
    );
    assert_ne!(traces[0].header.note, traces[1].header.note);
}

#[test]
fn the_in_process_model_is_recorded_and_replayed_too() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("list.xitrace");
    let t = t.to_str().unwrap();
    let o = xi_local(&["--record", t, "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = String::from_utf8(o.stdout).unwrap();
    let trace = load(t);
    assert_eq!(trace.header.backend, "model");
    assert!(
        trace.header.note.contains("on a fresh in-process model"),
        "{}",
        trace.header.note
    );
    // The replay prints what the recorded run printed.
    let o = xi_local(&["--replay", t, "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), listed);
    assert!(listed.starts_with("Name"), "{listed}");
}
