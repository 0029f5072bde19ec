//! The real `xi` binary against a real `xi host serve` daemon on a temporary socket:
//! create, list, console, save, verify, restore (prints the new id), unpause, save -c,
//! destroy, host stop; and the failures: bad usage exits 2, a missing file or an
//! unknown domain exits 1 naming it.
//!
//! Guests run inside the daemon between commands, so the tests wait for what a guest
//! prints by polling `xi console` with a bounded number of tries (never by timing).
//! Independently of xi's own output, the guests' oracles (`guest-model`) are checked
//! through a direct connection to the daemon.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use guest_model::{Guest, Stop, ToyParams};
use hypervisor::remote::RemoteXen;
use hypervisor::{DomId, Xen, XS_NO_TX};
use toolstack::build::{check_oracle, OracleCheck, Verdict};

const XI: &str = env!("CARGO_BIN_EXE_xi");
/// Tries of a poll, 20 ms apart: a minute at most.
const TRIES: usize = 3000;
const EXTRA: &str = "pages=16 report=100000";

/// A daemon on a socket in a temporary directory; killed when dropped.
struct Host {
    child: Option<Child>,
    dir: tempfile::TempDir,
    sock: PathBuf,
}

impl Host {
    fn start() -> Host {
        Host::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("host.sock");
        let child = Command::new(XI)
            .args(["host", "serve", "--memory", "128"])
            .args(extra)
            .arg("--socket")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xi host serve");
        let h = Host {
            child: Some(child),
            dir,
            sock,
        };
        for _ in 0..TRIES {
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

    /// Runs `xi`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.xi(args);
        assert!(
            o.status.success(),
            "xi {args:?} failed ({:?}): {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("stdout is UTF-8")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self, name: &str) -> PathBuf {
        let p = self.path(&format!("{name}.cfg"));
        std::fs::write(
            &p,
            format!(
                "name = \"{name}\"\nmemory = 8\nkernel = \"toy:counter\"\nextra = \"{EXTRA}\"\n"
            ),
        )
        .unwrap();
        p
    }

    fn connect(&self) -> RemoteXen<UnixStream> {
        RemoteXen::connect(&self.sock).expect("connect to the daemon")
    }

    /// Polls `xi console <dom>` until it contains `what`.
    fn wait_console(&self, dom: &str, what: &str) -> String {
        let mut last = String::new();
        for _ in 0..TRIES {
            last = self.ok(&["console", dom]);
            if last.contains(what) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("domain {dom} never printed {what:?}; console:\n{last}");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The last line of stdout: a domain id.
fn new_id(stdout: &str) -> u16 {
    let last = stdout.lines().last().unwrap_or("");
    last.trim()
        .parse()
        .unwrap_or_else(|_| panic!("last line {last:?} is not a domain id"))
}

/// `xi list` parsed: (name, id, mem, vcpus, state) per row, after checking the header.
fn list(h: &Host) -> Vec<(String, u16, u64, u32, String)> {
    let out = h.ok(&["list"]);
    let mut lines = out.lines();
    let head: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(head, ["Name", "ID", "Mem", "VCPUs", "State", "Time(s)"]);
    lines
        .map(|l| {
            // The name may contain spaces: the five columns after it are fixed.
            let cols: Vec<&str> = l.split_whitespace().collect();
            let n = cols.len();
            assert!(n >= 6, "short list line {l:?}");
            let time: f64 = cols[n - 1].parse().expect("Time(s)");
            assert!(time >= 0.0);
            (
                cols[..n - 5].join(" "),
                cols[n - 5].parse().expect("ID"),
                cols[n - 4].parse().expect("Mem"),
                cols[n - 3].parse().expect("VCPUs"),
                cols[n - 2].to_owned(),
            )
        })
        .collect()
}

fn row(h: &Host, id: u16) -> Option<(String, u16, u64, u32, String)> {
    list(h).into_iter().find(|r| r.1 == id)
}

fn params() -> ToyParams {
    ToyParams::parse(Guest::Counter, EXTRA).unwrap()
}

/// The counter's oracle, read through the daemon (the guest may be mid-step).
fn oracle_steps(h: &Host, dom: u16) -> u64 {
    let mut x = h.connect();
    match check_oracle(
        &mut x,
        DomId::new(dom),
        &params(),
        &OracleCheck {
            stop: Stop::Anywhere,
            ..OracleCheck::default()
        },
    )
    .expect("read the guest")
    {
        Verdict::Holds(s) => s.steps,
        Verdict::Fails(e) => panic!("domain {dom}: oracle: {e}"),
    }
}

#[test]
fn create_list_console_save_restore_unpause_destroy() {
    let h = Host::start();
    let cfg = h.config("cli-one");
    let out = h.ok(&["create", cfg.to_str().unwrap()]);
    let id = new_id(&out);
    assert_ne!(id, 0);

    let rows = list(&h);
    assert!(
        rows.iter().any(|r| r.0 == "Domain-0" && r.1 == 0),
        "{rows:?}"
    );
    let (name, _, mem, vcpus, _) = row(&h, id).expect("listed");
    assert_eq!((name.as_str(), mem, vcpus), ("cli-one", 8, 1));

    // The guest runs between commands: its start line, then progress.
    h.wait_console(&id.to_string(), "counter: start");
    h.wait_console(&id.to_string(), "counter: step 100000");
    let steps_before = oracle_steps(&h, id);
    assert!(steps_before >= 100_000);

    // The config was recorded where only dom0 sees it.
    let mut x = h.connect();
    let rec = x
        .xs_read(XS_NO_TX, &format!("/libxl/{id}/xi-config"))
        .expect("recorded config");
    let perms = x
        .xs_get_perms(XS_NO_TX, &format!("/libxl/{id}/xi-config"))
        .unwrap();
    assert_eq!(
        perms.iter().map(|p| p.to_wire()).collect::<Vec<_>>(),
        ["n0"]
    );
    drop(x);
    assert!(String::from_utf8_lossy(&rec).contains("toy:counter"));

    // Save by name: the file is valid and the domain is gone.
    let file = h.path("one.xl");
    h.ok(&["save", "cli-one", file.to_str().unwrap()]);
    assert!(file.exists());
    assert!(row(&h, id).is_none(), "saved domain destroyed");
    let mut x = h.connect();
    assert!(
        x.xs_read(XS_NO_TX, &format!("/libxl/{id}/xi-config"))
            .is_err(),
        "the destroyed domain's record is gone"
    );
    drop(x);
    let v = h.ok(&["verify", file.to_str().unwrap()]);
    assert!(v.contains(": ok ("), "{v}");

    // Restore: a new id, paused.
    let out = h.ok(&["restore", file.to_str().unwrap()]);
    let id2 = new_id(&out);
    assert_ne!(id2, id);
    let (name2, _, _, _, state) = row(&h, id2).expect("restored domain listed");
    assert_eq!(name2, "cli-one");
    assert_eq!(&state[2..3], "p", "restored paused: {state}");
    // The recorded config came across in the file (it names the toy kernel, which a
    // minimal config made from the domain could not).
    let mut x = h.connect();
    let rec2 = x
        .xs_read(XS_NO_TX, &format!("/libxl/{id2}/xi-config"))
        .expect("config recorded at restore");
    drop(x);
    assert!(String::from_utf8_lossy(&rec2).contains("toy:counter"));
    // (Its memory is checked once it runs: a just-restored guest has not rebuilt the
    // p2m frame list a reader needs.)

    // Start it (by the `start` alias): it resumes and keeps counting.
    h.ok(&["start", &id2.to_string()]);
    let console = h.wait_console(&id2.to_string(), "counter: resumed 1");
    assert!(console.contains("counter: suspending\ncounter: resumed 1\n"));
    let mut later = 0;
    for _ in 0..TRIES {
        later = oracle_steps(&h, id2);
        if later > steps_before {
            break;
        }
        h.ok(&["list"]);
    }
    assert!(
        later > steps_before,
        "the restored guest counts on from {steps_before}: {later}"
    );

    // Pause, unpause, destroy by name.
    h.ok(&["pause", "cli-one"]);
    assert_eq!(&row(&h, id2).unwrap().4[2..3], "p");
    h.ok(&["unpause", "cli-one"]);
    assert_eq!(&row(&h, id2).unwrap().4[2..3], "-");
    h.ok(&["destroy", "cli-one"]);
    assert!(row(&h, id2).is_none());
    let mut x = h.connect();
    assert!(x
        .xs_read(XS_NO_TX, &format!("/libxl/{id2}/xi-config"))
        .is_err());
}

#[test]
fn save_c_keeps_the_domain_running_and_save_p_leaves_it_paused() {
    let h = Host::start();
    let id = new_id(&h.ok(&["create", h.config("cli-c").to_str().unwrap()]));
    h.wait_console(&id.to_string(), "counter: start");
    let file = h.path("c.xl");
    h.ok(&["save", "-c", &id.to_string(), file.to_str().unwrap()]);
    assert!(file.exists());
    assert!(row(&h, id).is_some(), "save -c keeps the domain");
    h.wait_console(&id.to_string(), "counter: suspend cancelled 1");

    let file_p = h.path("p.xl");
    h.ok(&["save", "-p", "cli-c", file_p.to_str().unwrap()]);
    let (_, _, _, _, state) = row(&h, id).expect("save -p keeps the domain");
    assert_eq!(&state[2..3], "p", "{state}");
    // A second domain of the same name is refused, as libxl refuses it.
    let o = h.xi(&["restore", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Domain with name \"cli-c\" already exists."),
        "{err}"
    );
    assert_eq!(
        h.ok(&["list"]).matches("cli-c").count(),
        1,
        "no second domain"
    );
    h.ok(&["destroy", "cli-c"]);
}

#[test]
fn bad_usage_exits_2() {
    let h = Host::start();
    for args in [
        &["frobnicate"][..],
        &["save"],
        &["save", "-c", "-p", "1", "f"],
        &["restore"],
        &["restore", "a", "b", "c"],
        &["create"],
        &["list", "--no-such-flag"],
    ] {
        let o = h.xi(args);
        assert_eq!(o.status.code(), Some(2), "xi {args:?}");
        assert!(!o.stderr.is_empty());
    }
}

#[test]
fn missing_files_and_unknown_domains_exit_1_naming_them() {
    let h = Host::start();
    let missing = h.path("no-such.xl");
    let m = missing.to_str().unwrap();
    for args in [
        vec!["restore", m],
        vec!["inspect", m],
        vec!["verify", m],
        vec!["create", m],
    ] {
        let o = h.xi(&args);
        assert_eq!(o.status.code(), Some(1), "xi {args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(m), "xi {args:?}: {err}");
    }
    for (args, what) in [
        (vec!["pause", "999"], "999"),
        (vec!["unpause", "nosuch"], "nosuch"),
        (vec!["destroy", "nosuch"], "nosuch"),
        (vec!["console", "4242"], "4242"),
        (vec!["save", "nosuch", "x.xl"], "nosuch"),
    ] {
        let o = h.xi(&args);
        assert_eq!(o.status.code(), Some(1), "xi {args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("no domain") && err.contains(what), "{err}");
    }
    // A save that cannot write its file names it, and the domain keeps running.
    let id = new_id(&h.ok(&["create", h.config("cli-m").to_str().unwrap()]));
    let bad = h.path("no-dir/out.xl");
    let o = h.xi(&["save", &id.to_string(), bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains(bad.to_str().unwrap()));
    assert!(row(&h, id).is_some(), "the domain survives a failed save");
    // A host that is not there is named.
    let o = Command::new(XI)
        .args(["--host"])
        .arg(h.path("nobody.sock"))
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nobody.sock"));
}

#[test]
fn host_stop_ends_the_daemon_and_a_second_daemon_is_refused() {
    let mut h = Host::start();
    let o = Command::new(XI)
        .args(["host", "serve", "--socket"])
        .arg(&h.sock)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already serving"));
    h.ok(&["host", "stop"]);
    let status = h.child.take().unwrap().wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!Path::new(&h.sock).exists(), "socket removed");
}

#[test]
fn demo_passes() {
    let o = Command::new(XI)
        .args(["demo", "--steps", "20000", "--memory", "8"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.lines().last().unwrap().starts_with("PASS"), "{out}");
    for step in ["1. boot", "3. save", "4. restore", "7. check"] {
        assert!(out.contains(step), "{out}");
    }
}

#[test]
fn create_from_a_kernel_file() {
    let h = Host::start();
    // A flat kernel that spins (`jmp $`), loaded at 4 MiB.
    let kernel = h.path("spin.bin");
    std::fs::write(&kernel, [0xeb, 0xfe]).unwrap();
    let cfg = h.path("spin.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"spin\"\nmemory = 4\nkernel = \"{}\"\nunknown_key = 1\n",
            kernel.display()
        ),
    )
    .unwrap();
    let o = h.xi(&["create", "-p", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown_key"),
        "unknown keys are warned about"
    );
    let id = new_id(&String::from_utf8_lossy(&o.stdout));
    let (name, _, mem, _, state) = row(&h, id).expect("listed");
    assert_eq!((name.as_str(), mem), ("spin", 4));
    assert_eq!(&state[2..3], "p", "-p leaves it paused: {state}");
    // Its console ring is empty: nothing printed, success.
    assert_eq!(h.ok(&["console", "spin"]), "");
    // The same name again is refused, naming the file.
    let o = h.xi(&["create", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already in use") && err.contains("spin.cfg"),
        "{err}"
    );
    h.ok(&["destroy", &id.to_string()]);
    assert!(row(&h, id).is_none());
}

#[test]
fn with_slice_0_a_sequence_of_commands_is_deterministic() {
    // Guests run only inside calls: two hosts given the same commands write the same
    // bytes, whatever the timing between the commands.
    let files: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            let h = Host::start_with(&["--slice", "0"]);
            let id = new_id(&h.ok(&["create", h.config("det").to_str().unwrap()]));
            if i == 1 {
                // Wall time between commands must not matter.
                std::thread::sleep(Duration::from_millis(50));
            }
            let file = h.path("det.xl");
            h.ok(&["save", "-c", &id.to_string(), file.to_str().unwrap()]);
            h.ok(&["list"]);
            let file2 = h.path("det2.xl");
            h.ok(&["save", &id.to_string(), file2.to_str().unwrap()]);
            let mut v = std::fs::read(&file).unwrap();
            v.extend(std::fs::read(&file2).unwrap());
            v
        })
        .collect();
    assert!(files[0].len() > 8 << 20);
    assert!(files[0] == files[1], "the two hosts wrote different files");
}

#[test]
fn a_killed_daemons_socket_is_replaced_with_a_message() {
    let mut h = Host::start();
    let mut c = h.child.take().unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    assert!(h.sock.exists(), "a killed daemon leaves its socket file");
    // Commands say nobody is there.
    let o = h.xi(&["list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains(h.sock.to_str().unwrap()));
    // A new daemon takes the path over and says so.
    // (Held by `h`, so a failing test still kills it.)
    h.child = Some(
        Command::new(XI)
            .args(["host", "serve", "--socket"])
            .arg(&h.sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut up = false;
    for _ in 0..TRIES {
        if h.xi(&["list"]).status.success() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(up, "the new daemon serves");
    h.ok(&["host", "stop"]);
    let out = h.child.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("removed the stale socket"), "{err}");
}

/// Sends `sig` to the daemon and waits (bounded) for it to exit; its status and stderr.
fn signal_and_wait(h: &mut Host, sig: &str) -> (std::process::ExitStatus, String) {
    let child = h.child.take().expect("the daemon");
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill {sig}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the daemon exits after the signal")
        .expect("wait for the daemon");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sigterm_and_sigint_stop_the_daemon_cleanly_saying_which_guests_end() {
    let mut h = Host::start();
    let id = new_id(&h.ok(&["create", h.config("sig-guest").to_str().unwrap()]));
    let (status, err) = signal_and_wait(&mut h, "-TERM");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!h.sock.exists(), "the socket is removed");
    assert!(
        err.contains("SIGTERM received")
            && err.contains(&format!(
                "1 guest ends with the model host, unsaved: sig-guest ({id})"
            )),
        "{err}"
    );
    // Nobody answers there any more: a command says so.
    let o = h.xi(&["list"]);
    assert_eq!(o.status.code(), Some(1));

    // A client connected and silent (a stuck command) does not hold the daemon up.
    let mut h = Host::start();
    let mut idle = h.connect();
    assert_eq!(idle.server_backend().unwrap(), "model");
    let (status, err) = signal_and_wait(&mut h, "-INT");
    drop(idle);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!h.sock.exists());
    assert!(
        err.contains("SIGINT received: stopping; no guests were running"),
        "{err}"
    );
}
