//! hwtoy: toy guests on a real dom0 (for `scripts/hw-check.sh` step 5 and the traces
//! under `fixtures/traces/xen-4.17/`).
//!
//!     cargo build --release -p toolstack --features hw --example hwtoy
//!     hwtoy CONFIG DOMID          # the oracle: ORACLE holds|fails …; exit 0 when it holds
//!     hwtoy record CONFIG OUTDIR  # create, run, save and restore the toy, recording the
//!                                 # save and the restore as traces
//!
//! The oracle reads the guest's status block and oracle region through the hw backend
//! (the domain may be running: the check allows one half-done step). Lives beside the
//! CLI until `xi` grows an oracle command.

#[cfg(not(feature = "hw"))]
fn main() {
    eprintln!("hwtoy needs --features hw");
    std::process::exit(2);
}

#[cfg(feature = "hw")]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.get(1).map(String::as_str) {
        Some("record") => match (args.get(2), args.get(3)) {
            (Some(cfg), Some(dir)) => hw::record(cfg, std::path::Path::new(dir)),
            _ => usage(),
        },
        Some(cfg) => match args.get(2).and_then(|s| s.parse::<u16>().ok()) {
            Some(dom) => hw::oracle(cfg, dom),
            None => usage(),
        },
        None => usage(),
    };
    if let Err(e) = r {
        println!("ORACLE error: {e}");
        std::process::exit(1);
    }
}

#[cfg(feature = "hw")]
fn usage() -> Result<(), String> {
    eprintln!("usage: hwtoy CONFIG DOMID | hwtoy record CONFIG OUTDIR");
    std::process::exit(2);
}

#[cfg(feature = "hw")]
mod hw {
    use std::path::Path;

    use guest_model::{Stop, ToyParams};
    use hypervisor::privcmd::Privcmd;
    use hypervisor::record::Recorder;
    use hypervisor::{DomId, Xen};
    use toolstack::build::toys::{check_oracle, create, toy_params, OracleCheck, Verdict};
    use toolstack::build::BuildOptions;
    use toolstack::config::DomainConfig;
    use toolstack::restore::{restore, RestoreOptions};
    use toolstack::save::{save, xc, SaveOptions};

    fn params(cfg: &str) -> Result<(DomainConfig, ToyParams), String> {
        let config = DomainConfig::load(Path::new(cfg)).map_err(|e| e.to_string())?;
        let params = toy_params(&config)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{cfg}: not a toy guest"))?;
        Ok((config, params))
    }

    fn verdict<X: Xen + ?Sized>(x: &mut X, dom: DomId, p: &ToyParams) -> Result<bool, String> {
        let v = check_oracle(
            x,
            dom,
            p,
            &OracleCheck {
                stop: Stop::Anywhere,
                ..OracleCheck::default()
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(match v {
            Verdict::Holds(s) => {
                println!("ORACLE holds: domain {}: {s:?}", dom.get());
                true
            }
            Verdict::Fails(e) => {
                println!("ORACLE fails: domain {}: {e}", dom.get());
                false
            }
        })
    }

    pub fn oracle(cfg: &str, dom: u16) -> Result<(), String> {
        let (_, p) = params(cfg)?;
        let mut x = Privcmd::open().map_err(|e| e.to_string())?;
        if !verdict(&mut x, DomId::new(dom), &p)? {
            std::process::exit(1);
        }
        Ok(())
    }

    pub fn record(cfg: &str, dir: &Path) -> Result<(), String> {
        let (config, p) = params(cfg)?;
        let toy = Path::new(cfg)
            .file_stem()
            .map_or("toy".into(), |s| s.to_string_lossy().into_owned());
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut x = Privcmd::open().map_err(|e| e.to_string())?;
        let ver = x.interface();
        let built = create(&mut x, &config, &BuildOptions::default()).map_err(|e| e.to_string())?;
        let dom = built.domid;
        println!("created domain {} from {cfg}", dom.get());
        std::thread::sleep(std::time::Duration::from_secs(2));
        let ok1 = verdict(&mut x, dom, &p)?;

        let mut rec = Recorder::new(
            x,
            &format!(
                "xi save of {toy} (domain {}) on real Xen {}.{} (hwtoy record)",
                dom.get(),
                ver.major,
                ver.minor
            ),
        );
        let mut stream = Vec::new();
        let s = save(&mut rec, dom, &mut stream, SaveOptions::default());
        let (x, trace) = rec.finish();
        s.map_err(|e| format!("save: {e}"))?;
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
            println!("wrote {} ({} bytes)", p.display(), bytes.len());
            Ok::<(), String>(())
        };
        write(&format!("{toy}.xl"), &stream)?;
        write(&format!("{toy}-save.trace"), &trace.to_bytes())?;

        let mut rec = Recorder::new(
            x,
            &format!(
                "xi restore of {toy} on real Xen {}.{} (hwtoy record)",
                ver.major, ver.minor
            ),
        );
        let r = restore(
            &mut rec,
            &stream[..],
            RestoreOptions {
                paused: true,
                ..RestoreOptions::default()
            },
        );
        let (mut x, trace) = rec.finish();
        let restored = r.map_err(|e| format!("restore: {e}"))?;
        write(&format!("{toy}-restore.trace"), &trace.to_bytes())?;
        let nd = restored.domid;
        println!("restored into domain {}", nd.get());
        xc::unpause(&mut x, nd).map_err(|e| e.to_string())?;
        std::thread::sleep(std::time::Duration::from_secs(2));
        let ok2 = verdict(&mut x, nd, &p)?;
        let _ = xc::destroy(&mut x, nd);
        if ok1 && ok2 {
            Ok(())
        } else {
            Err("the oracle failed".into())
        }
    }
}
