//! The `xi` command line, modelled on `xl`. The binary (`src/bin/xi.rs`) only calls
//! [`main`]; everything is here so tests and the demo can use it.
//!
//! | command | what it does |
//! |---|---|
//! | `xi create [-p] <cfg>` | builds the domain an xl.cfg describes (`kernel = "toy:<guest>"` or a path); prints its id last; `-p` leaves it paused |
//! | `xi list` | `xl list`'s columns: Name, ID, Mem, VCPUs, State, Time(s) |
//! | `xi save [-c\|-p] <domain> <file> [<cfg>]` | saves the domain to `file`, then destroys it (`-c`: resumes it in place, `-p`: leaves it paused) |
//! | `xi restore [-p] [<cfg>] <file>` | restores `file` into a new domain, left **paused**; prints its id last |
//! | `xi unpause <domain>` (`xi start`) | runs a paused (e.g. just restored) domain |
//! | `xi pause`, `xi destroy <domain>` | as xl |
//! | `xi console <domain>` | prints the domain's console ring (its last 2 KiB of output) |
//! | `xi inspect [--json] <file>`, `xi verify <file>` | a save file's records; its structural check |
//! | `xi demo` | a whole save/restore round trip on the embedded model, checked by the guest's oracle |
//! | `xi host serve [--socket P]`, `xi host stop` | a model host daemon ([`hypervisor::remote::host`]) |
//! | `xi trace dump [--counts] <file>` | a trace recorded with `--record`, one line per call |
//!
//! `xi --record FILE <command>` records every hypervisor call the command makes to
//! `FILE`, and `xi --replay FILE <command>` runs the command against such a recording
//! (see [`trace`]).
//!
//! `<domain>` is a domain id or a name. Commands act on the host at `--host PATH` (or
//! `$XI_HOST`), a daemon started with `xi host serve`; without one they act on a fresh
//! in-process model (which is only useful for `xi demo`, `list`, and trying things).
//!
//! Exit status: 0 success, 1 the operation failed, 2 bad usage. Messages go to stderr
//! and name the file and domain; stdout carries only results (a new domain id is the
//! last line, for scripts). A progress bar is drawn for save and restore when stderr
//! is a terminal, unless `-q`.
//!
//! The configuration of each domain is recorded in xenstore where only dom0 can see it
//! (see [`domains`]), so `xi save` without a config file embeds the one the domain was
//! created (or restored) with.

pub mod demo;
pub mod domains;
pub mod progress;
pub mod trace;

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Xen};

use crate::build::{self, BuildOptions};
use crate::config::DomainConfig;
use crate::restore::{restore, RestoreOptions};
use crate::save::{save_to_file, xc, AfterSave, SaveOptions, Stage};
use crate::stream::{ReaderOptions, StreamReader};
use progress::Bar;

/// The socket `xi host serve` listens on when not told.
pub const DEFAULT_SOCKET: &str = "/tmp/xi-host.sock";

/// xi — Xen save/restore toolstack.
#[derive(Debug, Parser)]
#[command(name = "xi", version, about, propagate_version = true)]
pub struct Cli {
    /// Which hypervisor to talk to: the embedded software model, or real Xen through
    /// /dev/xen/privcmd (needs a build with `--features hw`, on a dom0).
    #[arg(
        long,
        value_enum,
        env = "XI_BACKEND",
        default_value = "model",
        global = true
    )]
    pub backend: Backend,
    /// Act on the model host served at this socket (`xi host serve`) instead of a fresh
    /// in-process model.
    #[arg(long, env = "XI_HOST", global = true)]
    pub host: Option<PathBuf>,
    /// No progress bars or summaries on stderr (errors are still reported).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Record every hypervisor call the command makes, with its result, to this trace
    /// file (written when the command ends, also when it fails; `xi trace dump` reads
    /// it). E.g. `xi --backend hw --record save.xitrace save dom f.xl` on a dom0.
    #[arg(long, value_name = "FILE", global = true)]
    pub record: Option<PathBuf>,
    /// Run the command against a trace recorded with --record instead of a hypervisor
    /// (--backend and --host are ignored); exit status 1 at the first call that differs
    /// from the recorded one.
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "record")]
    pub replay: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The hypervisor backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The deterministic software Xen 4.17 (a fresh host per invocation, or the one
    /// at `--host`).
    Model,
    /// Real Xen via /dev/xen/privcmd.
    Hw,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a toy guest, save it, restore it, run it on, and check with its oracle
    /// that nothing was lost (in one process, on the embedded model).
    Demo(demo::DemoArgs),
    /// Create a domain from an xl.cfg file; prints its id (last line).
    Create {
        /// The configuration file.
        config: PathBuf,
        /// Leave the domain paused.
        #[arg(short = 'p', long)]
        paused: bool,
    },
    /// List domains (the columns of `xl list`).
    List,
    /// Save a domain to a file, then destroy it (unless -c or -p).
    Save {
        /// Resume the domain in place afterwards (a checkpoint; its suspend returns 1).
        #[arg(short = 'c', conflicts_with = "paused")]
        checkpoint: bool,
        /// Leave the domain paused afterwards instead of destroying it.
        #[arg(short = 'p')]
        paused: bool,
        /// The domain (id or name).
        domain: String,
        /// The save file to write.
        file: PathBuf,
        /// Store this configuration in the file instead of the recorded one.
        config: Option<PathBuf>,
    },
    /// Restore a save file into a new domain; prints its id (last line). The domain is
    /// left paused: `xi unpause <id>` (or `xi start`) runs it.
    #[command(override_usage = "xi restore [-p] [<CONFIG>] <FILE>")]
    Restore {
        /// Leave the domain paused (accepted for `xl` compatibility: xi always does).
        #[arg(short = 'p')]
        paused: bool,
        /// `[<config>] <file>`: an optional xl.cfg overriding the saved configuration,
        /// then the save file.
        #[arg(num_args = 1..=2, required = true, value_name = "FILE")]
        args: Vec<PathBuf>,
    },
    /// Pause a domain.
    Pause {
        /// The domain (id or name).
        domain: String,
    },
    /// Unpause a domain (runs a restored domain).
    #[command(alias = "start")]
    Unpause {
        /// The domain (id or name).
        domain: String,
    },
    /// Destroy a domain.
    Destroy {
        /// The domain (id or name).
        domain: String,
    },
    /// Print a domain's console ring (the last 2 KiB the guest wrote).
    Console {
        /// The domain (id or name).
        domain: String,
    },
    /// Dump a save file's records: one line per record (type, length, offset, fields).
    Inspect {
        /// The save file.
        file: PathBuf,
        /// Print JSON lines instead.
        #[arg(long)]
        json: bool,
    },
    /// Check a save file's structure completely; exit status 0 if it is valid.
    Verify {
        /// The save file.
        file: PathBuf,
    },
    /// Model hosts.
    Host {
        /// What to do.
        #[command(subcommand)]
        cmd: HostCmd,
    },
    /// Traces recorded with `xi --record FILE <command>`.
    Trace {
        /// What to do.
        #[command(subcommand)]
        cmd: TraceCmd,
    },
}

/// `xi trace …`.
#[derive(Debug, Subcommand)]
pub enum TraceCmd {
    /// Print a trace: its header, then one line per call with its result (buffers
    /// longer than 16 bytes as their length and FNV-1a digest).
    Dump {
        /// The trace file.
        file: PathBuf,
        /// Print how many times each call was made instead.
        #[arg(long)]
        counts: bool,
    },
}

/// `xi host …`.
#[derive(Debug, Subcommand)]
pub enum HostCmd {
    /// Run a model host as a daemon on a Unix socket, so separate `xi --host PATH …`
    /// commands act on one simulated machine. Guests run between commands.
    /// `xi host stop`, SIGTERM or SIGINT (Ctrl-C) stop it after the call in progress:
    /// it removes the socket and exits 0, and says which guests end with it (they live
    /// only in its memory; nothing is saved). A second signal ends it at once.
    Serve {
        /// The socket to listen on (default: --host, else /tmp/xi-host.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Machine memory in MiB.
        #[arg(long, default_value_t = 256)]
        memory: u64,
        /// Guest instructions per idle slice; 0 runs guests only inside calls (then a
        /// sequence of commands is deterministic).
        #[arg(long, default_value_t = 200_000)]
        slice: u64,
        /// Milliseconds a connected client must be silent before guests run again.
        #[arg(long, default_value_t = 100)]
        quiet_ms: u64,
    },
    /// Ask the daemon on the socket to stop.
    Stop {
        /// The socket (default: --host, else /tmp/xi-host.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
}

/// Parses the arguments (usage errors exit 2, `--help` 0) and runs the command: 0 on
/// success, 1 with the error on stderr otherwise.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.record.is_some() || cli.replay.is_some() {
        if let Some(what) = without_a_host(&cli.command) {
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("--record and --replay apply to commands that act on a host, not to `xi {what}`"),
                )
                .exit();
        }
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xi: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The name of a command that makes no hypervisor calls of its own through the
/// selected backend (so `--record`/`--replay` do not apply), or `None`.
fn without_a_host(cmd: &Command) -> Option<&'static str> {
    match cmd {
        Command::Demo(_) => Some("demo"),
        Command::Inspect { .. } => Some("inspect"),
        Command::Verify { .. } => Some("verify"),
        Command::Host { .. } => Some("host"),
        Command::Trace { .. } => Some("trace"),
        _ => None,
    }
}

/// Runs a parsed command.
///
/// # Errors
/// What failed, naming the file and domain.
pub fn run(cli: Cli) -> Result<()> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Inspect { file, json } => inspect(&file, json),
        Command::Verify { file } => verify(&file),
        Command::Trace {
            cmd: TraceCmd::Dump { file, counts },
        } => trace::dump(&file, counts, &mut std::io::stdout().lock()),
        Command::Demo(args) => {
            let mut out = std::io::stdout().lock();
            if demo::run(&args, &mut out)?.passed {
                Ok(())
            } else {
                bail!("demo failed: the oracle does not hold (see above)")
            }
        }
        Command::Host {
            cmd:
                HostCmd::Serve {
                    socket,
                    memory,
                    slice,
                    quiet_ms,
                },
        } => {
            let socket = socket.or(cli.host).unwrap_or_else(|| DEFAULT_SOCKET.into());
            serve(&socket, memory, slice, quiet_ms, quiet)
        }
        Command::Host {
            cmd: HostCmd::Stop { socket },
        } => {
            let socket = socket.or(cli.host).unwrap_or_else(|| DEFAULT_SOCKET.into());
            let mut r = hypervisor::remote::RemoteXen::connect(&socket)
                .with_context(|| format!("connect to the xi host at {}", socket.display()))?;
            r.stop_host()
                .with_context(|| format!("stop the xi host at {}", socket.display()))?;
            if !quiet {
                eprintln!("xi host at {} stopped", socket.display());
            }
            Ok(())
        }
        cmd => {
            if let Some(path) = &cli.replay {
                return trace::replay(path, quiet, |x| on_host(x, cmd, quiet));
            }
            if cli.host.is_none() && cli.backend == Backend::Model && !quiet {
                eprintln!(
                    "xi: note: no --host (or XI_HOST): acting on a fresh in-process model host that ends with this command; start a lasting one with `xi host serve`"
                );
            }
            let mut x = open_backend(cli.backend, cli.host.as_deref())?;
            match &cli.record {
                None => on_host(x.as_mut(), cmd, quiet),
                Some(path) => {
                    let backend = match (&cli.host, cli.backend) {
                        (Some(h), _) => format!("the model host at {}", h.display()),
                        (None, Backend::Model) => "a fresh in-process model".to_owned(),
                        (None, Backend::Hw) => "hw (/dev/xen/privcmd)".to_owned(),
                    };
                    let note = format!("recorded by `{}` on {backend}", trace::command_line());
                    trace::record(x.as_mut(), path, &note, quiet, |x| on_host(x, cmd, quiet))
                }
            }
        }
    }
}

fn serve(socket: &Path, memory_mib: u64, slice: u64, quiet_ms: u64, quiet: bool) -> Result<()> {
    use hypervisor::remote::host;
    let frames = memory_mib
        .checked_mul(256)
        .filter(|&f| f >= 1024)
        .with_context(|| format!("--memory {memory_mib}: need at least 4 MiB"))?;
    let bound = host::bind(socket)?;
    if bound.replaced_stale && !quiet {
        eprintln!(
            "xi host: removed the stale socket {} (its daemon is gone)",
            socket.display()
        );
    }
    let mut m = hypervisor::model::Model::new(hypervisor::model::ModelConfig {
        machine_frames: frames,
    });
    if !quiet {
        eprintln!(
            "xi host: model host with {memory_mib} MiB serving on {} (stop with `xi host stop --socket {}`, SIGTERM or Ctrl-C)",
            socket.display(),
            socket.display()
        );
    }
    let opts = host::HostOptions {
        slice_insns: slice,
        quiet: std::time::Duration::from_millis(quiet_ms),
        ..host::HostOptions::default()
    };
    let signals = StopSignals::install().with_context(|| {
        format!(
            "serve on {}: cannot handle SIGTERM/SIGINT",
            socket.display()
        )
    })?;
    let result = host::serve_host(
        &mut m,
        &bound.listener,
        &|| signals.received().is_some(),
        &opts,
    );
    let _ = std::fs::remove_file(socket);
    let stats = result.with_context(|| format!("serve on {}", socket.display()))?;
    // Always said (even with -q): guests are never discarded silently.
    let why = match signals.received() {
        Some(sig) => format!("{sig} received"),
        None => "asked to stop".to_owned(),
    };
    let guests: Vec<String> = domains::list_domains(&mut m)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.id != 0)
        .map(|r| format!("{} ({})", r.name, r.id))
        .collect();
    if guests.is_empty() {
        eprintln!("xi host: {why}: stopping; no guests were running");
    } else {
        eprintln!(
            "xi host: {why}: stopping; {} guest{} end{} with the model host, unsaved: {}",
            guests.len(),
            if guests.len() == 1 { "" } else { "s" },
            if guests.len() == 1 { "s" } else { "" },
            guests.join(", ")
        );
    }
    if !quiet {
        eprintln!(
            "xi host: stopped after {} connections, {} calls, {} guest instructions between calls; removed {}",
            stats.connections,
            stats.calls,
            stats.idle_insns,
            socket.display()
        );
    }
    Ok(())
}

/// SIGTERM and SIGINT asking `xi host serve` to stop: the first sets a flag the serve
/// loop polls (between calls, so a call in progress completes and the socket is
/// removed); a second one while stopping ends the process at once (the default
/// action).
struct StopSignals {
    term: std::sync::Arc<std::sync::atomic::AtomicBool>,
    int: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let s = StopSignals {
            term: std::sync::Arc::default(),
            int: std::sync::Arc::default(),
        };
        let any = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for (sig, own) in [(SIGTERM, &s.term), (SIGINT, &s.int)] {
            // Registered first, so it sees `any` as it was before this signal set it.
            flag::register_conditional_default(sig, std::sync::Arc::clone(&any))?;
            flag::register(sig, std::sync::Arc::clone(&any))?;
            flag::register(sig, std::sync::Arc::clone(own))?;
        }
        Ok(s)
    }

    /// The signal received, if any.
    fn received(&self) -> Option<&'static str> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.term.load(SeqCst) {
            Some("SIGTERM")
        } else if self.int.load(SeqCst) {
            Some("SIGINT")
        } else {
            None
        }
    }
}

/// Opens the hypervisor the options name.
///
/// # Errors
/// The host socket cannot be reached, or the backend is not built in.
pub fn open_backend(b: Backend, host: Option<&Path>) -> Result<Box<dyn Xen>> {
    if let (Some(path), Backend::Hw) = (host, b) {
        bail!(
            "--backend hw acts on this machine's Xen, but a model host is also named ({}, from --host or XI_HOST): give one of them",
            path.display()
        );
    }
    if let Some(path) = host {
        if !path.exists() {
            bail!(
                "no xi host at {} (start one with `xi host serve --socket {}`)",
                path.display(),
                path.display()
            );
        }
        let r = hypervisor::remote::RemoteXen::connect(path)
            .with_context(|| format!("connect to the xi host at {}", path.display()))?;
        return Ok(Box::new(r));
    }
    match b {
        Backend::Model => Ok(Box::new(hypervisor::model::Model::new(
            hypervisor::model::ModelConfig::default(),
        ))),
        #[cfg(feature = "hw")]
        Backend::Hw => Ok(Box::new(hypervisor::privcmd::Privcmd::open()?)),
        #[cfg(not(feature = "hw"))]
        Backend::Hw => {
            bail!("--backend hw: this xi was built without the hw backend (build it with `cargo build --release -p toolstack --features hw`)")
        }
    }
}

/// Runs a command that needs a host.
///
/// # Errors
/// What failed.
pub fn on_host(x: &mut dyn Xen, cmd: Command, quiet: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        Command::List => {
            writeln!(out, "{}", domains::list_header())?;
            for r in domains::list_domains(x)? {
                writeln!(out, "{}", domains::list_line(&r))?;
            }
            Ok(())
        }
        Command::Create { config, paused } => {
            let id = create(x, &config, paused, quiet)?;
            writeln!(out, "{}", id.get())?;
            Ok(())
        }
        Command::Save {
            checkpoint,
            paused,
            domain,
            file,
            config,
        } => {
            let after = if checkpoint {
                AfterSave::Checkpoint
            } else if paused {
                AfterSave::LeavePaused
            } else {
                AfterSave::Destroy
            };
            save_cmd(x, &domain, &file, config.as_deref(), after, quiet)
        }
        Command::Restore { paused: _, args } => {
            let (config, file) = match &args[..] {
                [file] => (None, file),
                [config, file] => (Some(config.as_path()), file),
                _ => unreachable!("clap takes 1 or 2"),
            };
            let id = restore_cmd(x, config, file, quiet)?;
            writeln!(out, "{}", id.get())?;
            Ok(())
        }
        Command::Pause { domain } => {
            let (id, name) = domains::resolve_domain(x, &domain)?;
            xc::pause(x, id).with_context(|| format!("pause domain {} ({name})", id.get()))
        }
        Command::Unpause { domain } => {
            let (id, name) = domains::resolve_domain(x, &domain)?;
            xc::unpause(x, id).with_context(|| format!("unpause domain {} ({name})", id.get()))
        }
        Command::Destroy { domain } => {
            let (id, name) = domains::resolve_domain(x, &domain)?;
            if id == DomId::DOM0 {
                bail!("refusing to destroy domain 0 (the toolstack's own domain)");
            }
            xc::destroy(x, id).with_context(|| format!("destroy domain {} ({name})", id.get()))?;
            domains::forget(x, id);
            Ok(())
        }
        Command::Console { domain } => {
            let (id, _) = domains::resolve_domain(x, &domain)?;
            let (bytes, _) = domains::console_ring(x, id)?;
            out.write_all(&bytes)?;
            out.flush()?;
            Ok(())
        }
        Command::Inspect { .. }
        | Command::Verify { .. }
        | Command::Demo(_)
        | Command::Host { .. }
        | Command::Trace { .. } => unreachable!("handled without a host"),
    }
}

fn load_config(path: &Path, quiet: bool) -> Result<DomainConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the configuration", path.display()))?;
    let (cfg, warnings) = DomainConfig::parse_with_warnings(&text, &path.display().to_string())?;
    if !quiet {
        for w in warnings {
            eprintln!("xi: warning: {w}");
        }
    }
    Ok(cfg)
}

/// `xi create`: builds the domain paused, records its configuration, unpauses it
/// unless `paused`.
///
/// # Errors
/// The config, the kernel or the build failed (nothing is left behind), or the name
/// is taken.
pub fn create(x: &mut dyn Xen, config: &Path, paused: bool, quiet: bool) -> Result<DomId> {
    let cfg = load_config(config, quiet)?;
    if let Ok((id, _)) = domains::resolve_domain(x, &cfg.name) {
        bail!(
            "{}: domain name {:?} is already in use by domain {}",
            config.display(),
            cfg.name,
            id.get()
        );
    }
    let t = Instant::now();
    let d = build::create(
        x,
        &cfg,
        &BuildOptions {
            paused: true,
            ..BuildOptions::default()
        },
    )
    .with_context(|| format!("{}: cannot create the domain", config.display()))?;
    let json = domains::config_json(&cfg)?;
    if let Err(e) = domains::record_config(x, d.domid, &json) {
        let _ = xc::destroy(x, d.domid);
        domains::forget(x, d.domid);
        return Err(e);
    }
    if !paused {
        if let Err(e) = xc::unpause(x, d.domid) {
            let _ = xc::destroy(x, d.domid);
            domains::forget(x, d.domid);
            return Err(e)
                .with_context(|| format!("start domain {} ({})", d.domid.get(), cfg.name));
        }
    }
    if !quiet {
        eprintln!(
            "xi: created domain {} ({}, {} MiB, {}) in {:.2} s{}",
            d.domid.get(),
            cfg.name,
            cfg.memory_mib,
            cfg.kernel,
            t.elapsed().as_secs_f64(),
            if paused { ", paused" } else { "" }
        );
    }
    Ok(d.domid)
}

/// `xi save`.
///
/// # Errors
/// What failed; the domain has been resumed and no file is left behind.
pub fn save_cmd(
    x: &mut dyn Xen,
    domain: &str,
    file: &Path,
    config: Option<&Path>,
    after: AfterSave,
    quiet: bool,
) -> Result<()> {
    let (id, name) = domains::resolve_domain(x, domain)?;
    if id == DomId::DOM0 {
        bail!("domain 0 cannot be saved (it is the toolstack's own domain)");
    }
    let config_json = match config {
        Some(p) => Some(domains::config_json(&load_config(p, quiet)?)?),
        None => domains::recorded_config(x, id),
    };
    let bar = Bar::new(Bar::wanted(quiet), "saving", 0, true);
    let mut cb = |p: crate::save::Progress| {
        if p.stage == Stage::Memory {
            // Pages are most of the file: the bar counts bytes against the pages' size.
            let len = p.pfns_total * PAGE_SIZE as u64;
            bar.set_len(len);
            bar.set(p.bytes.min(len));
        }
    };
    let t = Instant::now();
    let summary = save_to_file(
        x,
        id,
        file,
        SaveOptions {
            after,
            config_json,
            progress: Some(&mut cb),
            ..SaveOptions::default()
        },
    )
    .with_context(|| format!("save domain {} ({name}) to {}", id.get(), file.display()))?;
    bar.finish();
    if after == AfterSave::Destroy {
        domains::forget(x, id);
    }
    if !quiet {
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "xi: saved domain {} ({name}) to {}: {} pages, {} in {secs:.2} s ({}/s); domain {}",
            id.get(),
            file.display(),
            summary.pages,
            human_bytes(summary.bytes),
            human_bytes((summary.bytes as f64 / secs.max(1e-9)) as u64),
            match after {
                AfterSave::Destroy => "destroyed",
                AfterSave::Checkpoint => "resumed",
                AfterSave::LeavePaused => "left paused",
            }
        );
    }
    Ok(())
}

/// `xi restore`: the new domain is left paused.
///
/// # Errors
/// What failed; the half-restored domain has been destroyed.
pub fn restore_cmd(
    x: &mut dyn Xen,
    config: Option<&Path>,
    file: &Path,
    quiet: bool,
) -> Result<DomId> {
    let cfg = config.map(|p| load_config(p, quiet)).transpose()?;
    let f = File::open(file)
        .with_context(|| format!("{}: cannot open the save file", file.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = Bar::new(Bar::wanted(quiet), "restoring", len, true);
    let mut cb = |read: u64, _pages: u64| bar.set(read);
    let t = Instant::now();
    let r = restore(
        x,
        BufReader::with_capacity(1 << 20, f),
        RestoreOptions {
            paused: true,
            config: cfg.clone(),
            progress: Some(&mut cb),
            ..RestoreOptions::default()
        },
    )
    .with_context(|| format!("restore {}", file.display()))?;
    bar.finish();
    let json = match &cfg {
        Some(c) => Some(domains::config_json(c)?),
        None => r.config_json.clone(),
    };
    if let Some(json) = json {
        if let Err(e) = domains::record_config(x, r.domid, &json) {
            let _ = xc::destroy(x, r.domid);
            domains::forget(x, r.domid);
            return Err(e);
        }
    }
    if !quiet {
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "xi: restored {} into domain {} ({}): {} pages, {} in {secs:.2} s; paused (run it with `xi unpause {}`)",
            file.display(),
            r.domid.get(),
            r.name,
            r.pages,
            human_bytes(len),
            r.domid.get()
        );
    }
    Ok(r.domid)
}

fn open_stream(file: &Path) -> Result<StreamReader<BufReader<File>>> {
    let f = File::open(file).with_context(|| format!("{}: cannot open", file.display()))?;
    Ok(StreamReader::with_options(
        BufReader::new(f),
        ReaderOptions::default(),
    ))
}

fn inspect(file: &Path, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for item in open_stream(file)? {
        let item = item.with_context(|| format!("{}", file.display()))?;
        if json {
            let line =
                serde_json::json!({ "offset": item.offset, "record": item.item.to_string() });
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{item}")?;
        }
    }
    Ok(())
}

fn verify(file: &Path) -> Result<()> {
    let mut records = 0usize;
    let mut r = open_stream(file)?;
    for item in &mut r {
        item.with_context(|| format!("{} is not a valid save file", file.display()))?;
        records += 1;
    }
    if !r.is_done() {
        bail!(
            "{}: the stream ended without its END records",
            file.display()
        );
    }
    println!("{}: ok ({records} records)", file.display());
    Ok(())
}

/// `1.5 MiB`-style sizes.
#[must_use]
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
    }

    #[test]
    fn restore_takes_an_optional_config_before_the_file() {
        let c = Cli::try_parse_from(["xi", "restore", "f.xl"]).unwrap();
        assert!(matches!(c.command, Command::Restore { ref args, .. } if args.len() == 1));
        let c = Cli::try_parse_from(["xi", "restore", "-p", "a.cfg", "f.xl"]).unwrap();
        assert!(
            matches!(c.command, Command::Restore { ref args, paused: true } if args.len() == 2)
        );
        assert!(Cli::try_parse_from(["xi", "restore"]).is_err());
        assert!(Cli::try_parse_from(["xi", "restore", "a", "b", "c"]).is_err());
        assert!(Cli::try_parse_from(["xi", "save", "-c", "-p", "d", "f"]).is_err());
    }
}
