//! The recorded fixtures:
//!
//! - `fixtures/traces/<guest>-save.xitrace` and `<guest>-restore.xitrace`: every `Xen`
//!   call of xi's save of a toy guest and of the restore of that stream, recorded with
//!   `hypervisor::record::Recorder` on a fresh model. [`traces_replay_against_the_current_toolstack`]
//!   replays them with `Replayer`: today's save and restore must issue the same calls,
//!   with the same arguments, in the same order (and get the recorded answers) — the
//!   way traces recorded on a real dom0 will be replayed. Readable dumps of every trace
//!   are insta snapshots in `fixtures/traces/snapshots/`.
//! - `fixtures/streams/*.xl` (written by `toolstack/tests/stream_fixtures.rs`): every
//!   file found is inspected (insta snapshot of its `xi inspect` lines, in
//!   `harness/tests/snapshots/`), restored into a model, run further and checked by its
//!   guest's oracle, the guest and its parameters taken from the stream's own config.
//!
//! Regenerate the traces with `XI_REGENERATE=1 cargo test -p harness --test fixtures`
//! (then review the snapshot diff with `cargo insta review`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use guest_model::guests::Oracle;
use guest_model::{Guest, Status, Stop, ToyParams};
use harness::{observe, Host, Runner, Step};
use hypervisor::record::{Divergence, Recorder, Replayer, Trace};
use hypervisor::DomId;
use toolstack::restore::{restore, RestoreOptions};
use toolstack::save::{save, xc, AfterSave, SaveOptions};
use toolstack::stream::{ReaderOptions, StreamReader};

struct TraceFixture {
    name: &'static str,
    kind: &'static str,
    extra: &'static str,
    insns: u64,
    /// Domain id of the saved guest (the boot is deterministic).
    dom: u16,
    /// Booted with a pong peer (pingpong's ping).
    with_peer: bool,
}

const TRACES: &[TraceFixture] = &[
    TraceFixture {
        name: "counter",
        kind: "counter",
        extra: "pages=16 report=50",
        insns: 700_000,
        dom: 1,
        with_peer: false,
    },
    TraceFixture {
        name: "epoch",
        kind: "epoch",
        extra: "seed=11 pages=16 writes=4",
        insns: 700_000,
        dom: 1,
        with_peer: false,
    },
    TraceFixture {
        name: "pagetable",
        kind: "pagetable",
        extra: "report=5",
        insns: 700_000,
        dom: 1,
        with_peer: false,
    },
    TraceFixture {
        name: "pingpong",
        kind: "pingpong",
        extra: "role=ping report=20",
        insns: 700_000,
        dom: 1,
        with_peer: true,
    },
];

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/traces")
}

fn streams_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/streams")
}

fn trace_path(f: &TraceFixture, what: &str) -> PathBuf {
    traces_dir().join(format!("{}-{what}.xitrace", f.name))
}

/// Boots and runs fixture `f`'s guest on a fresh host.
fn setup(f: &TraceFixture) -> (Host, DomId) {
    let mut r = Runner::new(1);
    common::boot(&mut r, f.name, 0, f.kind, f.extra);
    if f.with_peer {
        r.step(
            0,
            &Step::Boot {
                guest: "pong".into(),
                host: 0,
                kind: "pingpong".into(),
                extra: "role=pong report=20".into(),
                peer: Some(f.name.into()),
            },
        )
        .unwrap();
    }
    r.hosts[0].model.run(f.insns);
    let dom = common::dom(&r, f.name);
    assert_eq!(dom.get(), f.dom, "{}: the boot is deterministic", f.name);
    (r.hosts.pop().unwrap(), dom)
}

const REGENERATE: &str = "XI_REGENERATE=1 cargo test -p harness --test fixtures";

/// Records the save and restore traces of `f` on the model.
fn record(f: &TraceFixture) -> (Trace, Trace) {
    let (mut host, dom) = setup(f);
    let mut out = Vec::new();
    let note = format!(
        "save of toy:{} ({}) d{} after {} instructions; regenerate: {REGENERATE}",
        f.kind, f.extra, f.dom, f.insns
    );
    let mut rec = Recorder::new(&mut host, &note);
    save(&mut rec, dom, &mut out, SaveOptions::default()).expect("save");
    let (_, save_trace) = rec.finish();
    let note = format!("restore of that save stream; regenerate: {REGENERATE}");
    let mut rec = Recorder::new(&mut host, &note);
    restore(&mut rec, &out[..], RestoreOptions::default()).expect("restore");
    let (_, restore_trace) = rec.finish();
    (save_trace, restore_trace)
}

/// The committed traces (regenerated first, once, with `XI_REGENERATE=1`).
fn committed() -> &'static [(Trace, Trace)] {
    static T: OnceLock<Vec<(Trace, Trace)>> = OnceLock::new();
    T.get_or_init(|| {
        let regen = std::env::var_os("XI_REGENERATE").is_some_and(|v| v != "0");
        TRACES
            .iter()
            .map(|f| {
                if regen {
                    let (s, r) = record(f);
                    std::fs::write(trace_path(f, "save"), s.to_bytes()).unwrap();
                    std::fs::write(trace_path(f, "restore"), r.to_bytes()).unwrap();
                }
                let read = |what| {
                    let p = trace_path(f, what);
                    let bytes = std::fs::read(&p).unwrap_or_else(|e| {
                        panic!("{}: {e}; regenerate with {REGENERATE}", p.display())
                    });
                    Trace::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                };
                (read("save"), read("restore"))
            })
            .collect()
    })
}

/// Save through a replay of the save trace, then restore that stream through a replay
/// of the restore trace; both replays must be complete and divergence-free.
fn replay(f: &TraceFixture, save_t: &Trace, restore_t: &Trace) -> Result<Vec<u8>, Divergence> {
    let mut rp = Replayer::new(save_t.clone());
    let mut out = Vec::new();
    let r = save(&mut rp, DomId::new(f.dom), &mut out, SaveOptions::default());
    rp.finish()?;
    r.unwrap_or_else(|e| panic!("{}: replayed save failed: {e}", f.name));
    let mut rp = Replayer::new(restore_t.clone());
    let r = restore(&mut rp, &out[..], RestoreOptions::default());
    rp.finish()?;
    let restored = r.unwrap_or_else(|e| panic!("{}: replayed restore failed: {e}", f.name));
    assert_ne!(restored.domid.get(), f.dom);
    Ok(out)
}

#[test]
fn traces_replay_against_the_current_toolstack() {
    for (f, (s, r)) in TRACES.iter().zip(committed()) {
        assert_eq!(s.header.backend, "model");
        assert!(
            s.call_counts()["foreign_read"] > 0,
            "{}: pages read",
            f.name
        );
        assert!(
            r.call_counts()["foreign_write"] > 0,
            "{}: pages written",
            f.name
        );
        if let Err(d) = replay(f, s, r) {
            panic!(
                "{}: today's toolstack does not issue the recorded calls: {d}\n\
                 if the change is intended, regenerate with {REGENERATE}",
                f.name
            );
        }
    }
}

#[test]
fn recording_again_gives_the_committed_traces() {
    // The model and the toolstack are deterministic: a fresh recording is the file.
    let f = &TRACES[0];
    let (s, r) = record(f);
    let (cs, cr) = &committed()[0];
    assert!(
        s == *cs && r == *cr,
        "{}: re-recorded traces differ; {REGENERATE}",
        f.name
    );
}

#[test]
fn a_different_save_diverges_at_a_named_call() {
    let f = &TRACES[0];
    let (s, _) = &committed()[0];
    let mut rp = Replayer::new(s.clone());
    // A checkpoint save issues the same calls up to the end, then resumes instead of
    // destroying: the replay must stop at the first call that differs.
    let _ = save(
        &mut rp,
        DomId::new(f.dom),
        &mut Vec::new(),
        SaveOptions {
            after: AfterSave::Checkpoint,
            ..SaveOptions::default()
        },
    );
    match rp.finish() {
        Err(Divergence::Call {
            index,
            expected,
            actual,
        }) => {
            assert!(index > 10, "late in the save: #{index}");
            assert_ne!(expected, actual);
            // ... after every page was read: the divergence is in the ending only.
            let reads = |e: &[hypervisor::record::TraceEntry]| {
                e.iter().filter(|e| e.call.name() == "foreign_read").count()
            };
            assert_eq!(
                reads(&s.entries[..index]),
                reads(&s.entries),
                "{expected} / {actual}"
            );
            assert!(
                expected.starts_with("xs_release dom=1"),
                "{expected} / {actual}"
            );
        }
        Err(Divergence::Unfinished { made, .. }) => assert!(made > 10),
        other => panic!("expected a divergence, got {other:?}"),
    }
    // Saving another domain diverges at once.
    let mut rp = Replayer::new(s.clone());
    let _ = save(
        &mut rp,
        DomId::new(f.dom + 1),
        &mut Vec::new(),
        SaveOptions::default(),
    );
    assert!(
        matches!(rp.finish(), Err(Divergence::Call { index: 0, .. })),
        "{:?}",
        rp.finish()
    );
}

#[test]
fn trace_dumps() {
    committed();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(traces_dir().join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::glob!("../../fixtures/traces", "*.xitrace", |path| {
            let t = Trace::from_bytes(&std::fs::read(path).unwrap()).unwrap();
            insta::assert_snapshot!(t.dump());
        });
    });
}

/// The toy guest of a fixture stream. The stream's JSON config has no kernel line
/// (libxl's own does not either), so the guests are listed here by file name, as
/// `fixtures/README.md` documents them; a new fixture must be added.
fn guest_of(stem: &str) -> Option<ToyParams> {
    let (kind, extra) = match stem {
        "counter" => ("counter", "pages=16 report=32"),
        "epoch" => ("epoch", "pages=16 seed=42 writes=4 period_ns=200000"),
        "pagetable" => ("pagetable", "report=5"),
        "pingpong" => ("pingpong", "role=ping report=20"),
        _ => return None,
    };
    ToyParams::parse(Guest::from_name(kind)?, extra).ok()
}

#[test]
fn stream_fixtures_inspect() {
    insta::glob!("../../fixtures/streams", "*.xl", |path| {
        let bytes = std::fs::read(path).unwrap();
        let lines: Vec<String> = StreamReader::with_options(&bytes[..], ReaderOptions::default())
            .map(|i| i.expect("a valid fixture").to_string())
            .collect();
        insta::assert_snapshot!(lines.join("\n"));
    });
}

#[test]
fn stream_fixtures_restore_run_and_hold_their_oracle() {
    let mut seen = 0;
    for entry in std::fs::read_dir(streams_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "xl") {
            continue;
        }
        seen += 1;
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let params = guest_of(&stem)
            .unwrap_or_else(|| panic!("{name}: add its guest to `guest_of` in {}", file!()));
        let mut host = Host::new(harness::scenario::HOST_FRAMES);
        let before = observe::free_pages(&mut host).unwrap();
        let r = restore(&mut host, &bytes[..], RestoreOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        host.model.check_invariants().unwrap();
        let oracle = Oracle::new(&params);
        let mem = |host: &mut Host| {
            let pfns = toolstack::build::toys::oracle_pfns(&params);
            toolstack::build::read_guest_pages(host, r.domid, &r.p2m, pfns).unwrap()
        };
        let at = oracle
            .check(&mem(&mut host), Stop::SafePoint)
            .unwrap_or_else(|e| panic!("{name} as saved: {e}"));
        xc::unpause(&mut host, r.domid).unwrap();
        host.model.run(1_000_000);
        host.model.check_invariants().unwrap();
        let after = if params.guest == Guest::Pingpong {
            // Its peer is not on this host: it runs, but nobody answers.
            Status::read(&mem(&mut host)).unwrap()
        } else {
            let st = oracle
                .check(&mem(&mut host), Stop::Anywhere)
                .unwrap_or_else(|e| panic!("{name} after restore: {e}"));
            assert!(st.steps > at.steps, "{name}: no progress");
            st
        };
        assert_eq!(after.resumes, at.resumes + 1, "{name}: resumed once");
        let console = String::from_utf8_lossy(&host.model.console_output(r.domid)).into_owned();
        let resumed = format!("{}: resumed {}", params.guest.name(), after.resumes);
        assert!(console.contains(&resumed), "{name}: {console}");
        xc::destroy(&mut host, r.domid).unwrap();
        assert_eq!(
            observe::free_pages(&mut host).unwrap(),
            before,
            "{name}: frames back"
        );
    }
    assert!(seen >= 4, "the fixture streams are there ({seen})");
}
