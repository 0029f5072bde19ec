//! Traces recorded on real Xen 4.17 (`fixtures/traces/xen-4.17/`), replayed on every run.
//!
//! For each toy guest `<toy>` (its xl config `<toy>.cfg` is committed beside the traces)
//! the lab job `record.sh` ran `hwtoy record`, which is `xi create <toy>.cfg`,
//! `xi save <name> <toy>.xl` and `xi restore <toy>.xl` on a real dom0, each wrapped in
//! `hypervisor::record::Recorder`. The folder holds `<toy>-create.xitrace`,
//! `<toy>-save.xitrace`, `<toy>-restore.xitrace` and the saved stream `<toy>.xl`.
//!
//! Here the same CLI functions (`toolstack::cli::{create, save_cmd, restore_cmd}`) run
//! against `Replayer`s of those traces: today's toolstack must issue exactly the calls
//! xi issued on real Xen, and, fed real Xen's answers, its save must write the committed
//! stream byte for byte and its restore must accept it. The committed streams are also
//! read with the strict stream reader (insta snapshot of their `xi inspect` lines) and
//! restored into the software model, where the guest must resume and hold its oracle.
//! Readable dumps of every trace are insta snapshots in
//! `fixtures/traces/xen-4.17/snapshots/`.
//!
//! Re-record in the lab as `fixtures/README.md` says (the traces cannot be regenerated
//! without a real Xen).

use std::path::{Path, PathBuf};

use guest_model::guests::Oracle;
use guest_model::{Guest, Status, Stop, ToyParams};
use harness::{observe, Host};
use hypervisor::record::{Divergence, Replayer, Trace};
use hypervisor::remote::{XenCall, XenReply};
use hypervisor::DomId;
use toolstack::cli;
use toolstack::config::DomainConfig;
use toolstack::restore::{restore, RestoreOptions};
use toolstack::save::{xc, AfterSave};
use toolstack::stream::{ReaderOptions, StreamReader};

/// The recorded toy guests: the stem of `<toy>.cfg`.
const TOYS: &[&str] = &["counter", "epoch"];

const RERECORD: &str = "re-record on real Xen as fixtures/README.md (section xen-4.17) says";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/traces/xen-4.17")
}

fn cfg_path(toy: &str) -> PathBuf {
    dir().join(format!("{toy}.cfg"))
}

fn config(toy: &str) -> DomainConfig {
    DomainConfig::load(&cfg_path(toy)).unwrap_or_else(|e| panic!("{toy}.cfg: {e}"))
}

fn stream(toy: &str) -> Vec<u8> {
    let p = dir().join(format!("{toy}.xl"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn trace(toy: &str, what: &str) -> Trace {
    let p = dir().join(format!("{toy}-{what}.xitrace"));
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Trace::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn params(toy: &str) -> ToyParams {
    toolstack::build::toys::toy_params(&config(toy))
        .unwrap()
        .unwrap_or_else(|| panic!("{toy}.cfg is not a toy guest"))
}

/// `xi save <name>` against `t`; the stream it wrote.
fn replay_save(toy: &str, t: &Trace) -> (Result<Vec<u8>, String>, Result<(), Divergence>) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(format!("{toy}.xl"));
    let mut rp = Replayer::new(t.clone());
    let r = cli::save_cmd(
        &mut rp,
        &config(toy).name,
        &file,
        None,
        AfterSave::Destroy,
        true,
    );
    let out = r
        .map_err(|e| format!("{e:#}"))
        .map(|()| std::fs::read(&file).unwrap());
    (out, rp.finish())
}

/// `xi restore <file>` of `bytes` against `t`.
fn replay_restore(bytes: &[u8], t: &Trace) -> (Result<DomId, String>, Result<(), Divergence>) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("stream.xl");
    std::fs::write(&file, bytes).unwrap();
    let mut rp = Replayer::new(t.clone());
    let r = cli::restore_cmd(&mut rp, None, &file, true).map_err(|e| format!("{e:#}"));
    (r, rp.finish())
}

/// The first differing byte of two streams, for the failure message.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at byte {i:#x} of {}/{}", a.len(), b.len()),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

#[test]
fn the_traces_were_recorded_on_real_xen() {
    for toy in TOYS {
        for what in ["create", "save", "restore"] {
            let t = trace(toy, what);
            assert_eq!(t.header.backend, "hw", "{toy}-{what}: {}", t.header.note);
            assert!(
                t.header.note.contains("real Xen 4.17"),
                "{toy}-{what}: {}",
                t.header.note
            );
        }
        let s = trace(toy, "save");
        assert!(s.call_counts()["foreign_read"] > 0, "{toy}: pages read");
        let r = trace(toy, "restore");
        assert!(r.call_counts()["foreign_write"] > 0, "{toy}: pages written");
    }
}

#[test]
fn create_replays_against_the_current_toolstack() {
    for toy in TOYS {
        let mut rp = Replayer::new(trace(toy, "create"));
        let r = cli::create(&mut rp, &cfg_path(toy), false, true);
        if let Err(d) = rp.finish() {
            panic!(
                "{toy}: xi create does not issue the calls it issued on real Xen: {d}\n{RERECORD}"
            );
        }
        let dom = r.unwrap_or_else(|e| panic!("{toy}: replayed create failed: {e:#}"));
        assert_ne!(dom, DomId::DOM0);
    }
}

#[test]
fn save_replays_and_writes_the_committed_real_xen_stream() {
    for toy in TOYS {
        let (out, fin) = replay_save(toy, &trace(toy, "save"));
        if let Err(d) = fin {
            panic!(
                "{toy}: xi save does not issue the calls it issued on real Xen: {d}\n{RERECORD}"
            );
        }
        let out = out.unwrap_or_else(|e| panic!("{toy}: replayed save failed: {e}"));
        let committed = stream(toy);
        assert!(
            out == committed,
            "{toy}: from real Xen's answers today's save writes another stream than {toy}.xl \
             ({}); {RERECORD}",
            first_difference(&out, &committed)
        );
    }
}

#[test]
fn restore_replays_against_the_committed_real_xen_stream() {
    for toy in TOYS {
        let save_dom = {
            let mut rp = Replayer::new(trace(toy, "create"));
            cli::create(&mut rp, &cfg_path(toy), false, true).unwrap()
        };
        let (r, fin) = replay_restore(&stream(toy), &trace(toy, "restore"));
        if let Err(d) = fin {
            panic!(
                "{toy}: xi restore does not issue the calls it issued on real Xen: {d}\n{RERECORD}"
            );
        }
        let dom = r.unwrap_or_else(|e| panic!("{toy}: replayed restore failed: {e}"));
        assert_ne!(dom, save_dom, "{toy}: a new domain");
        assert_ne!(dom, DomId::DOM0);
    }
}

#[test]
fn a_tampered_answer_diverges_at_a_named_call() {
    // Real Xen's answer to the save's first xenstore read of the domain's name is
    // changed: xi then finds no domain of that name and stops early; the replay names
    // the first recorded call it did not make.
    let toy = TOYS[0];
    let name = config(toy).name;
    let mut t = trace(toy, "save");
    let i = t
        .entries
        .iter()
        .position(|e| {
            matches!(&e.call, XenCall::XsRead { path, .. } if path.ends_with("/name"))
                && matches!(&e.reply, XenReply::Value(Ok(v)) if *v == name.as_bytes())
        })
        .expect("the save reads the domain's name");
    t.entries[i].reply = XenReply::Value(Ok(b"someone-else".to_vec()));
    let (out, fin) = replay_save(toy, &t);
    let e = out.expect_err("no domain of that name");
    assert!(e.contains("no domain named"), "{e}");
    match fin {
        Err(Divergence::Unfinished { made, next, .. }) => {
            assert_eq!(
                made,
                i + 1,
                "stopped right after the tampered answer: {next}"
            );
            assert!(!next.is_empty());
        }
        other => panic!("expected an unfinished replay, got {other:?}"),
    }

    // A byte of the guest's memory as real Xen returned it is changed (in its last
    // page, in the batch read of every page): the replay is still call for call the
    // same, but the stream is not the committed one — the byte comparison catches it.
    let mut t = trace(toy, "save");
    let page = t
        .entries
        .iter_mut()
        .find_map(|e| match (&e.call, &mut e.reply) {
            (XenCall::ForeignRead { mfns, .. }, XenReply::ForeignRead { buf, .. })
                if mfns.len() == 1024 =>
            {
                Some(buf)
            }
            _ => None,
        })
        .expect("the batch read of all 1024 pages");
    let at = page.len() - 100;
    page[at] ^= 0x5a;
    let (out, fin) = replay_save(toy, &t);
    fin.expect("same calls");
    let out = out.expect("the save succeeds");
    let committed = stream(toy);
    assert_eq!(out.len(), committed.len());
    let diffs: Vec<usize> = (0..out.len()).filter(|&i| out[i] != committed[i]).collect();
    assert_eq!(diffs.len(), 1, "exactly the changed byte differs");
}

#[test]
fn a_toolstack_issuing_other_calls_diverges_at_a_named_call() {
    // Restoring the other toy's stream through this toy's restore trace: the calls
    // match until the first one whose arguments come from the stream.
    let (a, b) = (TOYS[0], TOYS[1]);
    let (_, fin) = replay_restore(&stream(b), &trace(a, "restore"));
    match fin {
        Err(Divergence::Call {
            index,
            expected,
            actual,
        }) => {
            // The stream's config (another name, memory layout) reaches the hypervisor
            // first in the new domain's creation.
            assert!(index > 0, "{expected} / {actual}");
            assert!(
                expected.starts_with("domctl createdomain")
                    && actual.starts_with("domctl createdomain"),
                "#{index}: {expected} / {actual}"
            );
            assert_ne!(expected, actual);
        }
        other => panic!("expected a divergence at a call, got {other:?}"),
    }
    // Saving by another name diverges at the first name lookup.
    let mut rp = Replayer::new(trace(a, "save"));
    let tmp = tempfile::tempdir().unwrap();
    let _ = cli::save_cmd(
        &mut rp,
        "7",
        &tmp.path().join("x.xl"),
        None,
        AfterSave::Destroy,
        true,
    );
    match rp.finish() {
        Err(Divergence::Call {
            index: 0, actual, ..
        }) => assert!(actual.contains("domctl"), "{actual}"),
        other => panic!("expected a divergence at call #0, got {other:?}"),
    }
}

#[test]
fn real_xen_streams_read_strictly() {
    for toy in TOYS {
        let bytes = stream(toy);
        let lines: Vec<String> = StreamReader::with_options(&bytes[..], ReaderOptions::default())
            .map(|i| i.unwrap_or_else(|e| panic!("{toy}.xl: {e}")).to_string())
            .collect();
        insta::with_settings!({
            snapshot_path => dir().join("snapshots"),
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!(format!("xen417_{toy}_inspect"), lines.join("\n"));
        });
    }
}

/// Real Xen 4.17 on an XSAVE CPU reports an extended state (`getvcpuextstate`:
/// xfeature_mask 0x21f, size 2712; then 16 bytes, xcr0 = xcr0_accum = 0), so these
/// streams carry an `X86_PV_VCPU_XSAVE` record and an empty MSR set: the model takes
/// them as Xen does (`setvcpuextstate` of a bare header is "nothing to restore").
#[test]
fn real_xen_streams_restore_into_the_model_and_hold_their_oracle() {
    for toy in TOYS {
        let bytes = stream(toy);
        let p = params(toy);
        let mut host = Host::new(harness::scenario::HOST_FRAMES);
        let before = observe::free_pages(&mut host).unwrap();
        let r = restore(&mut host, &bytes[..], RestoreOptions::default())
            .unwrap_or_else(|e| panic!("{toy}.xl into the model: {e}"));
        host.model.check_invariants().unwrap();
        let oracle = Oracle::new(&p);
        let mem = |host: &mut Host| {
            let pfns = toolstack::build::toys::oracle_pfns(&p);
            toolstack::build::read_guest_pages(host, r.domid, &r.p2m, pfns).unwrap()
        };
        let at: Status = oracle
            .check(&mem(&mut host), Stop::SafePoint)
            .unwrap_or_else(|e| panic!("{toy}.xl as saved by real Xen: {e}"));
        xc::unpause(&mut host, r.domid).unwrap();
        host.model.run(1_000_000);
        host.model.check_invariants().unwrap();
        let after = oracle
            .check(&mem(&mut host), Stop::Anywhere)
            .unwrap_or_else(|e| panic!("{toy}.xl after restore into the model: {e}"));
        assert!(after.steps > at.steps, "{toy}: no progress in the model");
        assert_eq!(after.resumes, at.resumes + 1, "{toy}: resumed once");
        let console = String::from_utf8_lossy(&host.model.console_output(r.domid)).into_owned();
        let resumed = format!("{}: resumed {}", p.guest.name(), after.resumes);
        assert!(console.contains(&resumed), "{toy}: {console}");
        assert_eq!(p.guest, Guest::from_name(toy).unwrap());
        xc::destroy(&mut host, r.domid).unwrap();
        assert_eq!(
            observe::free_pages(&mut host).unwrap(),
            before,
            "{toy}: frames back"
        );
    }
}

#[test]
fn real_xen_trace_dumps() {
    for toy in TOYS {
        for what in ["create", "save", "restore"] {
            let t = trace(toy, what);
            insta::with_settings!({
                snapshot_path => dir().join("snapshots"),
                prepend_module_to_snapshot => false,
            }, {
                insta::assert_snapshot!(format!("xen417_{toy}_{what}"), t.dump());
            });
        }
    }
}

/// Real Xen's recorded answers are the oracle for the model's: for the vCPU state a
/// save reads beyond the basic context (`get_vcpu_msrs`, `getvcpuextstate`), the model,
/// asked the same of the same guest (restored from real Xen's stream), answers what
/// real Xen 4.17 answered — except the host's XSAVE feature mask and size, which
/// belong to the CPU.
#[test]
fn the_model_answers_vcpu_msrs_and_extstate_as_real_xen_did() {
    use hypervisor::abi::domctl::{self as dc, DomctlVcpuExtState, DomctlVcpuMsrs, XenDomctl};
    use hypervisor::remote::{XenCall, XenReply};
    use hypervisor::Xen as _;
    use zerocopy::FromBytes;
    for toy in TOYS {
        let mut host = Host::new(harness::scenario::HOST_FRAMES);
        let r = restore(&mut host, &stream(toy)[..], RestoreOptions::default()).unwrap();
        let (mut msrs_seen, mut xsave_seen) = (0, 0);
        for e in &trace(toy, "save").entries {
            let (
                XenCall::Domctl { domctl, buf },
                XenReply::Domctl {
                    ret,
                    domctl: out,
                    buf: out_buf,
                },
            ) = (&e.call, &e.reply)
            else {
                continue;
            };
            let mut d = XenDomctl::read_from_bytes(domctl).unwrap();
            let real = XenDomctl::read_from_bytes(out).unwrap();
            d.domain = r.domid.get();
            let mut b = buf.clone();
            match d.cmd {
                dc::XEN_DOMCTL_GET_VCPU_MSRS => {
                    let got = host.domctl(&mut d, &mut b).map_err(|e| e.errno());
                    assert_eq!(got.is_ok(), ret.is_ok(), "{toy}: get_vcpu_msrs {ret:?}");
                    assert_eq!(
                        d.payload::<DomctlVcpuMsrs>().msr_count,
                        real.payload::<DomctlVcpuMsrs>().msr_count,
                        "{toy}: msr_count (buffer of {} bytes)",
                        buf.len()
                    );
                    assert_eq!(&b, out_buf, "{toy}: the MSRs");
                    msrs_seen += 1;
                }
                dc::XEN_DOMCTL_GETVCPUEXTSTATE if !buf.is_empty() => {
                    // The data call, with the model host's own mask.
                    let mut q = XenDomctl::new(dc::XEN_DOMCTL_GETVCPUEXTSTATE, r.domid.get());
                    q.set_payload(&DomctlVcpuExtState::default());
                    host.domctl(&mut q, &mut []).unwrap();
                    let mask = q.payload::<DomctlVcpuExtState>();
                    let mut p: DomctlVcpuExtState = d.payload();
                    p.xfeature_mask = mask.xfeature_mask;
                    p.size = mask.size;
                    d.set_payload(&p);
                    let mut b = vec![0u8; mask.size as usize];
                    host.domctl(&mut d, &mut b).expect("getvcpuextstate");
                    let (got, want) = (
                        d.payload::<DomctlVcpuExtState>(),
                        real.payload::<DomctlVcpuExtState>(),
                    );
                    assert!(ret.is_ok(), "{toy}: real Xen's getvcpuextstate {ret:?}");
                    assert_eq!(got.size, want.size, "{toy}: XSAVE blob size");
                    let n = want.size as usize;
                    assert_eq!(&b[..n], &out_buf[..n], "{toy}: XSAVE blob");
                    xsave_seen += 1;
                }
                _ => {}
            }
        }
        assert!(
            msrs_seen >= 2 && xsave_seen >= 1,
            "{toy}: the trace has the calls"
        );
        xc::destroy(&mut host, r.domid).unwrap();
    }
}
