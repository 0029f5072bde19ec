//! `xi`: the command line, modelled on `xl`.
//!
//! Exit status: 0 success, 1 the operation failed, 2 bad usage.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use hypervisor::abi::domctl::{self as dc, XenDomctl};
use hypervisor::abi::sysctl::{self as sc, XenSysctl};
use hypervisor::{DomId, Xen, XS_NO_TX};
use toolstack::stream::{ReaderOptions, StreamReader};

/// xi — Xen save/restore toolstack.
#[derive(Debug, Parser)]
#[command(name = "xi", version, about)]
struct Cli {
    /// Which hypervisor to talk to: the embedded software model, or real Xen through
    /// /dev/xen/privcmd (needs a build with `--features hw`, on a dom0).
    #[arg(
        long,
        value_enum,
        env = "XI_BACKEND",
        default_value = "model",
        global = true
    )]
    backend: Backend,
    /// Act on the model host served at this socket (`xi host serve`) instead of a fresh
    /// in-process model.
    #[arg(long, env = "XI_HOST", global = true)]
    host: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// The deterministic software Xen 4.17 (a fresh host per invocation).
    Model,
    /// Real Xen via /dev/xen/privcmd.
    Hw,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole round trip on the embedded model (placeholder until the demo lands).
    Demo,
    /// List domains (the columns of `xl list`).
    List,
    /// Pause a domain.
    Pause {
        /// Domain id.
        domid: u16,
    },
    /// Unpause a domain.
    #[command(alias = "start")]
    Unpause {
        /// Domain id.
        domid: u16,
    },
    /// Destroy a domain.
    Destroy {
        /// Domain id.
        domid: u16,
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
        #[command(subcommand)]
        cmd: HostCmd,
    },
}

#[derive(Debug, Subcommand)]
enum HostCmd {
    /// Run a model host as a daemon on a Unix socket, so separate `xi --host PATH …`
    /// commands act on one simulated machine.
    Serve {
        /// The socket to listen on.
        #[arg(long, default_value = "/tmp/xi-host.sock")]
        socket: PathBuf,
        /// Machine memory in MiB.
        #[arg(long, default_value_t = 256)]
        memory: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xi: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { file, json } => inspect(&file, json),
        Command::Verify { file } => verify(&file),
        Command::Demo => {
            println!(
                "xi demo: placeholder — the save/restore demo lands with the save/restore issue"
            );
            Ok(())
        }
        Command::Host {
            cmd: HostCmd::Serve { socket, memory },
        } => serve(&socket, memory),
        cmd => {
            let mut x = open_backend(cli.backend, cli.host.as_deref())?;
            on_host(x.as_mut(), cmd)
        }
    }
}

fn serve(socket: &std::path::Path, memory_mib: u64) -> Result<()> {
    if socket.exists() {
        std::fs::remove_file(socket)
            .with_context(|| format!("remove stale socket {}", socket.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(socket)
        .with_context(|| format!("listen on {}", socket.display()))?;
    let mut m = hypervisor::model::Model::new(hypervisor::model::ModelConfig {
        machine_frames: memory_mib * 256,
    });
    eprintln!(
        "xi host: model host with {memory_mib} MiB serving on {}",
        socket.display()
    );
    hypervisor::remote::serve_unix(&mut m, listener, &|| false).context("serve")?;
    Ok(())
}

fn open_backend(b: Backend, host: Option<&std::path::Path>) -> Result<Box<dyn Xen>> {
    if let Some(path) = host {
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
            bail!("this xi was built without the hw backend (rebuild with `--features hw`)")
        }
    }
}

fn on_host(x: &mut dyn Xen, cmd: Command) -> Result<()> {
    match cmd {
        Command::List => list(x),
        Command::Pause { domid } => simple_domctl(x, dc::XEN_DOMCTL_PAUSEDOMAIN, domid, "pause"),
        Command::Unpause { domid } => {
            simple_domctl(x, dc::XEN_DOMCTL_UNPAUSEDOMAIN, domid, "unpause")
        }
        Command::Destroy { domid } => {
            simple_domctl(x, dc::XEN_DOMCTL_DESTROYDOMAIN, domid, "destroy")?;
            let path = x.xs_get_domain_path(DomId::new(domid))?;
            let _ = x.xs_rm(XS_NO_TX, &path);
            let _ = x.xs_release(DomId::new(domid));
            Ok(())
        }
        Command::Inspect { .. } | Command::Verify { .. } | Command::Demo | Command::Host { .. } => {
            unreachable!("handled without a host")
        }
    }
}

fn simple_domctl(x: &mut dyn Xen, cmd: u32, domid: u16, what: &str) -> Result<()> {
    let mut d = XenDomctl::new(cmd, domid);
    x.domctl(&mut d, &mut [])
        .with_context(|| format!("{what} domain {domid}"))?;
    Ok(())
}

fn list(x: &mut dyn Xen) -> Result<()> {
    let stride = std::mem::size_of::<dc::DomctlGetDomainInfo>();
    let mut buf = vec![0u8; 256 * stride];
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_GETDOMAININFOLIST);
    s.set_payload(&sc::SysctlGetDomainInfoList {
        first_domain: 0,
        pad: 0,
        max_domains: 256,
        buffer: 0,
        num_domains: 0,
        pad2: 0,
    });
    x.sysctl(&mut s, &mut buf).context("list domains")?;
    let n = s.payload::<sc::SysctlGetDomainInfoList>().num_domains as usize;
    println!(
        "{:<32} {:>5} {:>5} {:>5}     {:<6} {:>9}",
        "Name", "ID", "Mem", "VCPUs", "State", "Time(s)"
    );
    for i in 0..n {
        let info: dc::DomctlGetDomainInfo =
            zerocopy::FromBytes::read_from_bytes(&buf[i * stride..(i + 1) * stride])
                .map_err(|_| anyhow::anyhow!("short domain info"))?;
        let id = info.domain;
        let name = if id == 0 {
            "Domain-0".to_string()
        } else {
            x.xs_read(XS_NO_TX, &format!("/local/domain/{id}/name"))
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_else(|_| format!("(domain {id})"))
        };
        let f = info.flags;
        let st = |bit: u32, c: char| if f & bit != 0 { c } else { '-' };
        let state: String = [
            st(dc::XEN_DOMINF_RUNNING, 'r'),
            st(dc::XEN_DOMINF_BLOCKED, 'b'),
            st(dc::XEN_DOMINF_PAUSED, 'p'),
            st(dc::XEN_DOMINF_SHUTDOWN, 's'),
            if f & dc::XEN_DOMINF_SHUTDOWN != 0 && (f >> dc::XEN_DOMINF_SHUTDOWNSHIFT) & 0xff == 3 {
                'c'
            } else {
                '-'
            },
            st(dc::XEN_DOMINF_DYING, 'd'),
        ]
        .iter()
        .collect();
        let mem_mib = info.tot_pages * 4096 / (1024 * 1024);
        let secs = info.cpu_time as f64 / 1e9;
        println!(
            "{name:<32} {id:>5} {mem_mib:>5} {:>5}     {state:<6} {secs:>9.1}",
            info.nr_online_vcpus
        );
    }
    Ok(())
}

fn open_stream(file: &PathBuf) -> Result<StreamReader<BufReader<File>>> {
    let f = File::open(file).with_context(|| format!("open {}", file.display()))?;
    Ok(StreamReader::with_options(
        BufReader::new(f),
        ReaderOptions::default(),
    ))
}

fn inspect(file: &PathBuf, json: bool) -> Result<()> {
    for item in open_stream(file)? {
        let item = item.with_context(|| format!("{}", file.display()))?;
        if json {
            let line =
                serde_json::json!({ "offset": item.offset, "record": item.item.to_string() });
            println!("{line}");
        } else {
            println!("{item}");
        }
    }
    Ok(())
}

fn verify(file: &PathBuf) -> Result<()> {
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
