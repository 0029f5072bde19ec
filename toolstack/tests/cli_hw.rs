//! `xi --backend hw` through the real binary on a machine without Xen.
//!
//! Built with `--features hw` (`cargo test -p toolstack --features hw --test cli_hw`):
//! every command that needs the hypervisor fails with exit status 1 and exactly the
//! message `no Xen privcmd device at /dev/xen/privcmd — is this a Xen dom0?`, whether
//! the backend is chosen with `--backend hw` or `XI_BACKEND=hw`. Built without the
//! feature: `--backend hw` says the build lacks it (exit status 1). On a real dom0
//! (where `/dev/xen/privcmd` exists) the hw tests have nothing to check and say so.

use std::process::{Command, Output, Stdio};

const XI: &str = env!("CARGO_BIN_EXE_xi");

/// `xi` with `args` and the environment `env`, never a model host.
fn xi(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(XI);
    c.args(args)
        .env_remove("XI_HOST")
        .env_remove("XI_BACKEND")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run xi")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[cfg(feature = "hw")]
fn on_a_dom0() -> bool {
    let here = std::path::Path::new("/dev/xen/privcmd").exists();
    if here {
        eprintln!("skipped: /dev/xen/privcmd exists (a Xen dom0): nothing to check here");
    }
    here
}

#[cfg(feature = "hw")]
const NO_DEVICE: &str = "xi: no Xen privcmd device at /dev/xen/privcmd — is this a Xen dom0?\n";

#[cfg(feature = "hw")]
#[test]
fn without_the_device_every_host_command_exits_1_with_the_message() {
    if on_a_dom0() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("g.cfg");
    std::fs::write(&cfg, "name = \"g\"\nmemory = 8\nkernel = \"toy:counter\"\n").unwrap();
    let (cfg, file) = (
        cfg.to_str().unwrap().to_owned(),
        dir.path().join("g.xl").to_str().unwrap().to_owned(),
    );
    let commands: [&[&str]; 7] = [
        &["list"],
        &["create", &cfg],
        &["save", "g", &file],
        &["restore", &file],
        &["pause", "1"],
        &["destroy", "1"],
        &["console", "1"],
    ];
    for args in commands {
        let o = xi(&[&["--backend", "hw"], args].concat(), &[]);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), NO_DEVICE, "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // The environment variable selects it the same way.
    let o = xi(&["list"], &[("XI_BACKEND", "hw")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), NO_DEVICE);
    // Recording: nothing was called, so no trace is written (and no save file).
    let t = dir.path().join("t.xitrace");
    let o = xi(
        &["--record", t.to_str().unwrap(), "save", "g", &file],
        &[("XI_BACKEND", "hw")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), NO_DEVICE);
    assert!(!t.exists() && !std::path::Path::new(&file).exists());
}

#[cfg(feature = "hw")]
#[test]
fn the_hw_backend_and_a_model_host_together_are_refused() {
    // XI_HOST left in the environment must not make `--backend hw` talk to a model.
    let o = xi(
        &["--backend", "hw", "list"],
        &[("XI_HOST", "/tmp/xi-test-no-such-host.sock")],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("--backend hw") && err.contains("/tmp/xi-test-no-such-host.sock"),
        "{err}"
    );
}

#[cfg(not(feature = "hw"))]
#[test]
fn a_build_without_the_feature_says_so() {
    for (args, env) in [
        (&["--backend", "hw", "list"][..], &[][..]),
        (&["list"][..], &[("XI_BACKEND", "hw")][..]),
    ] {
        let o = xi(args, env);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("built without the hw backend") && err.contains("--features hw"),
            "{err}"
        );
    }
}
