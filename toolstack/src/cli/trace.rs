//! Traces from the command line: `xi --record FILE <command>`, `xi --replay FILE
//! <command>` and `xi trace dump FILE` (the file format is [`hypervisor::record`]'s).
//!
//! `--record` wraps whichever backend the command uses (the model, a host daemon, or
//! real Xen with `--backend hw`) in a [`Recorder`] and writes the trace when the command
//! ends, whether it succeeded or failed: a failing command's trace ends with the last
//! call it made (the failing one, if a hypervisor call failed). The header's note names
//! the command line, the backend and the outcome. The file is written to a temporary
//! name beside `FILE` and renamed over it, so `FILE` is either the whole trace or
//! untouched. The trace is kept in memory until then: a save's trace holds every page
//! the save read (so it is about the size of the guest's memory; the file packs the
//! runs of zeros).
//!
//! `--replay` serves a trace to the command instead of a hypervisor ([`Replayer`]): the
//! command must make exactly the recorded calls. The first call that differs fails the
//! command with exit status 1, naming the call's index, the recorded call and the one
//! made; so does a command that stops before the trace's end. This is how a trace
//! recorded on someone's dom0 reproduces that run of the toolstack here.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use hypervisor::record::{Recorder, Replayer, Trace};
use hypervisor::Xen;

/// Runs `f` on `x` wrapped in a [`Recorder`], then writes the trace to `path`
/// (atomically), on success and on failure. `note` names the command and backend; the
/// outcome is appended to it.
///
/// # Errors
/// The command's error (the trace has been written, or a line on stderr says why
/// not); or, for a command that succeeded, the failure to write the trace.
pub fn record<R>(
    x: &mut dyn Xen,
    path: &Path,
    note: &str,
    quiet: bool,
    f: impl FnOnce(&mut dyn Xen) -> Result<R>,
) -> Result<R> {
    let mut rec = Recorder::new(x, note);
    let result = f(&mut rec);
    let (_, mut trace) = rec.finish();
    match &result {
        Ok(_) => trace.header.note.push_str("; succeeded"),
        Err(e) => trace.header.note.push_str(&format!("; failed: {e:#}")),
    }
    let calls = trace.entries.len();
    let bytes = trace.to_bytes();
    let size = super::human_bytes(bytes.len() as u64);
    let written = write_atomic(path, &bytes)
        .with_context(|| format!("{}: cannot write the trace", path.display()));
    match (result, written) {
        (Ok(r), Ok(())) => {
            if !quiet {
                eprintln!("xi: recorded {calls} calls to {} ({size})", path.display());
            }
            Ok(r)
        }
        (Ok(_), Err(w)) => Err(w),
        (Err(e), Ok(())) => {
            if !quiet {
                eprintln!(
                    "xi: recorded {calls} calls, up to the failure, to {} ({size})",
                    path.display()
                );
            }
            Err(e)
        }
        (Err(e), Err(w)) => {
            eprintln!("xi: {w:#}");
            Err(e)
        }
    }
}

/// Runs `f` against the trace at `path` served by a [`Replayer`].
///
/// # Errors
/// The trace cannot be read; the command diverged from it (naming the call) or stopped
/// before its end; or the command failed (as the recorded run did, if every recorded
/// call was made).
pub fn replay<R>(path: &Path, quiet: bool, f: impl FnOnce(&mut dyn Xen) -> Result<R>) -> Result<R> {
    let trace = load(path)?;
    let calls = trace.entries.len();
    if !quiet {
        eprintln!(
            "xi: replaying {} ({calls} calls recorded on backend {}{})",
            path.display(),
            trace.header.backend,
            if trace.header.note.is_empty() {
                String::new()
            } else {
                format!(": {}", trace.header.note)
            }
        );
    }
    let mut rp = Replayer::new(trace);
    let result = f(&mut rp);
    match (rp.finish(), result) {
        (Ok(()), Ok(r)) => {
            if !quiet {
                eprintln!(
                    "xi: replay of {}: all {calls} calls matched",
                    path.display()
                );
            }
            Ok(r)
        }
        (Ok(()), Err(e)) => {
            if !quiet {
                eprintln!(
                    "xi: replay of {}: all {calls} calls matched; the command failed:",
                    path.display()
                );
            }
            Err(e)
        }
        (Err(d), result) => {
            if let Err(e) = result {
                eprintln!("xi: the command under replay failed: {e:#}");
            }
            Err(anyhow!(d)).with_context(|| format!("replay of {}", path.display()))
        }
    }
}

/// Reads a trace file.
///
/// # Errors
/// The file cannot be read, or is not a trace (the error names the offset).
pub fn load(path: &Path) -> Result<Trace> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{}: cannot read the trace", path.display()))?;
    Trace::from_bytes(&bytes).with_context(|| format!("{}: not a valid xi trace", path.display()))
}

/// `xi trace dump`: the trace's readable form ([`Trace::dump`]), or with `counts` the
/// number of calls of each method.
///
/// # Errors
/// As [`load`], or stdout failed.
pub fn dump(path: &Path, counts: bool, out: &mut dyn Write) -> Result<()> {
    let t = load(path)?;
    if counts {
        writeln!(
            out,
            "{}: {} calls, backend {}",
            path.display(),
            t.entries.len(),
            t.header.backend
        )?;
        for (name, n) in t.call_counts() {
            writeln!(out, "{n:8} {name}")?;
        }
    } else {
        out.write_all(t.dump().as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a
/// rename: `path` ends up holding all of `bytes` or is left as it was.
///
/// # Errors
/// Creating, writing, syncing or renaming the temporary file failed (it is removed).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let attempt = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if attempt.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    attempt
}

/// The command line as a shell would take it back (arguments with spaces or quotes
/// are single-quoted).
#[must_use]
pub fn command_line() -> String {
    std::env::args_os()
        .map(|a| {
            let a = a.to_string_lossy().into_owned();
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_whole_file_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.xitrace");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        // A directory in the way: the rename fails, nothing is left behind.
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("x"), b"keep").unwrap();
        assert!(write_atomic(&d, b"data").is_err());
        assert_eq!(std::fs::read(d.join("x")).unwrap(), b"keep");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
