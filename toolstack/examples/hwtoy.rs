//! hwtoy: toy guests on a real dom0 (for `scripts/hw-check.sh` step 5 and the traces
//! under `fixtures/traces/xen-4.17/`).
//!
//!     cargo build --release -p toolstack --features hw --example hwtoy
//!     hwtoy CONFIG DOMID          # the oracle: ORACLE holds|fails …; exit 0 when it holds
//!     hwtoy record CONFIG OUTDIR  # xi create, run, xi save and xi restore of the toy,
//!                                 # each recorded as a trace, plus the saved stream
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
    use toolstack::build::toys::{check_oracle, toy_params, OracleCheck, Verdict};
    use toolstack::cli;
    use toolstack::config::DomainConfig;
    use toolstack::save::{xc, AfterSave};

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

    /// [`verdict`] with the domain paused for the read: the oracle reads page after
    /// page, and a running counter guest moves on between two reads (the regions are
    /// only consistent at one instant).
    fn paused_verdict<X: Xen + ?Sized>(
        x: &mut X,
        dom: DomId,
        p: &ToyParams,
    ) -> Result<bool, String> {
        xc::pause(x, dom).map_err(|e| format!("pause d{}: {e}", dom.get()))?;
        let v = verdict(x, dom, p);
        xc::unpause(x, dom).map_err(|e| format!("unpause d{}: {e}", dom.get()))?;
        v
    }

    pub fn oracle(cfg: &str, dom: u16) -> Result<(), String> {
        let (_, p) = params(cfg)?;
        let mut x = Privcmd::open().map_err(|e| e.to_string())?;
        if !verdict(&mut x, DomId::new(dom), &p)? {
            std::process::exit(1);
        }
        Ok(())
    }

    /// `hwtoy record CONFIG OUTDIR`: what `xi create CONFIG`, `xi save NAME FILE` and
    /// `xi restore FILE` do (the CLI's own functions, quiet), each through a
    /// [`Recorder`], with the toy's oracle checked after the create and after the
    /// restore. Writes, for `CONFIG` = `<toy>.cfg`: `<toy>-create.xitrace`,
    /// `<toy>-save.xitrace`, `<toy>-restore.xitrace` and the saved stream `<toy>.xl`
    /// (the restore reads that file, so its trace replays against it).
    pub fn record(cfg: &str, dir: &Path) -> Result<(), String> {
        let (config, p) = params(cfg)?;
        let toy = Path::new(cfg)
            .file_stem()
            .map_or("toy".into(), |s| s.to_string_lossy().into_owned());
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
            println!("wrote {} ({} bytes)", p.display(), bytes.len());
            Ok::<(), String>(())
        };
        let x = Privcmd::open().map_err(|e| e.to_string())?;
        let ver = x.interface();
        let on = format!("on real Xen {}.{} (hwtoy record)", ver.major, ver.minor);

        let mut rec = Recorder::new(x, &format!("xi create {toy}.cfg {on}"));
        let c = cli::create(&mut rec, Path::new(cfg), false, true);
        let (mut x, trace) = rec.finish();
        let dom = c.map_err(|e| format!("create: {e:#}"))?;
        write(&format!("{toy}-create.xitrace"), &trace.to_bytes())?;
        println!("created domain {} ({}) from {cfg}", dom.get(), config.name);
        std::thread::sleep(std::time::Duration::from_secs(2));
        let ok1 = paused_verdict(&mut x, dom, &p)?;

        let file = dir.join(format!("{toy}.xl"));
        let mut rec = Recorder::new(
            x,
            &format!(
                "xi save {} {toy}.xl (domain {}) {on}",
                config.name,
                dom.get()
            ),
        );
        let s = cli::save_cmd(
            &mut rec,
            &config.name,
            &file,
            None,
            AfterSave::Destroy,
            true,
        );
        let (x, trace) = rec.finish();
        s.map_err(|e| format!("save: {e:#}"))?;
        write(&format!("{toy}-save.xitrace"), &trace.to_bytes())?;
        let len = std::fs::metadata(&file).map_or(0, |m| m.len());
        println!("wrote {} ({len} bytes)", file.display());

        let mut rec = Recorder::new(x, &format!("xi restore {toy}.xl {on}"));
        let r = cli::restore_cmd(&mut rec, None, &file, true);
        let (mut x, trace) = rec.finish();
        let nd = r.map_err(|e| format!("restore: {e:#}"))?;
        write(&format!("{toy}-restore.xitrace"), &trace.to_bytes())?;
        println!("restored into domain {}", nd.get());
        xc::unpause(&mut x, nd).map_err(|e| e.to_string())?;
        std::thread::sleep(std::time::Duration::from_secs(2));
        let ok2 = paused_verdict(&mut x, nd, &p)?;
        let _ = xc::destroy(&mut x, nd);
        cli::domains::forget(&mut x, nd);
        if ok1 && ok2 {
            Ok(())
        } else {
            Err("the oracle failed".into())
        }
    }
}
