//! `xi demo`: the whole product in one command, on the embedded model.
//!
//! A toy guest is booted from a generated configuration, runs to a save point chosen
//! from the seed, is saved with `xi save`'s code path to a file in a fresh temporary
//! directory (which destroys it), restored into a new domain (left paused), checked by
//! its oracle there, started, and run until it has done all its steps and powered
//! itself off. Then its oracle checks everything against what it predicts from the
//! step count alone: every page of the guest's region, the status block (one suspend,
//! one resume in a new domain) and the console transcript — which comes from the
//! restored domain's console ring, so the lines the guest printed before the save
//! were carried across in its memory too.
//!
//! Every step prints what it did with its size and time; the last line is the verdict
//! (`PASS` or `FAIL`), and [`run`] returns it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use guest_model::{Guest, Status, Stop, ToyParams};
use hypervisor::abi::domctl as dc;
use hypervisor::abi::sched::SHUTDOWN_POWEROFF;
use hypervisor::model::{Model, ModelConfig};
use hypervisor::{DomId, Mfn};

use super::{domains, human_bytes};
use crate::build::{self, BuildOptions, OracleCheck, Verdict};
use crate::config::{DomainConfig, KernelSpec};
use crate::restore::{restore, RestoreOptions};
use crate::save::{save_to_file, xc, AfterSave, SaveOptions};
use crate::stream::{ReaderOptions, StreamReader};

/// Guest instructions per run slice between status checks (small, so the save comes
/// soon after the save point).
const SLICE: u64 = 20_000;

/// `xi demo`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The toy guest: counter, epoch or pagetable.
    #[arg(long, default_value = "counter")]
    pub guest: String,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 64)]
    pub memory: u64,
    /// Workload steps the guest does in all; the save happens part way [default:
    /// counter 1000000, epoch 5000, pagetable 1000].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Seed: picks the save point (and the epoch guest's pages).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Most guest instructions to run before giving up.
    #[arg(long, default_value_t = 2_000_000_000)]
    pub max_insns: u64,
    /// Write the save file here (kept) instead of in a temporary directory.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            guest: "counter".into(),
            memory: 64,
            steps: None,
            seed: 1,
            max_insns: 2_000_000_000,
            keep: None,
        }
    }
}

/// What the demo found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// The oracle held at every check.
    pub passed: bool,
    /// The step the guest was saved at (at or a little after the seeded save point).
    pub saved_at: u64,
    /// The save file's size.
    pub file_bytes: u64,
    /// The first domain and the restored one.
    pub domains: (DomId, DomId),
    /// What failed, if anything.
    pub failure: Option<String>,
}

/// The step the save happens at: somewhere in the middle half, from the seed.
#[must_use]
pub fn save_point(steps: u64, seed: u64) -> u64 {
    // splitmix64 of the seed: a fixed, documented choice.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let quarter = (steps / 4).max(1);
    (quarter + z % (steps / 2).max(1)).clamp(1, steps.saturating_sub(1).max(1))
}

struct Ctx<'a> {
    m: Model,
    out: &'a mut dyn Write,
    insns: u64,
    max_insns: u64,
}

impl Ctx<'_> {
    /// Runs the host until `done(status, info)` or the instruction budget runs out.
    fn run_until(
        &mut self,
        dom: DomId,
        p2m: &[Mfn],
        mut done: impl FnMut(&Status, &dc::DomctlGetDomainInfo) -> bool,
    ) -> Result<(Status, u64, f64)> {
        let t = Instant::now();
        let start = self.insns;
        loop {
            // Before the guest has set up its status block, it reads as all zero.
            let st = build::toys::read_status(&mut self.m, dom, p2m)?.unwrap_or_default();
            let info = xc::domain_info(&mut self.m, dom)
                .with_context(|| format!("domain {} is gone", dom.get()))?;
            if st.state == guest_model::layout::STATE_CRASHED {
                bail!(
                    "domain {}: the guest crashed itself (error {})",
                    dom.get(),
                    st.error as i64
                );
            }
            if done(&st, &info) {
                return Ok((st, self.insns - start, t.elapsed().as_secs_f64()));
            }
            if self.insns >= self.max_insns {
                bail!(
                    "domain {}: gave up after {} instructions at step {}",
                    dom.get(),
                    self.insns,
                    st.steps
                );
            }
            let n = self.m.run(SLICE);
            if n == 0 {
                bail!(
                    "domain {}: nothing can run (guest at step {}, flags {:#x})",
                    dom.get(),
                    st.steps,
                    info.flags
                );
            }
            self.insns += n;
        }
    }
}

fn mips(insns: u64, secs: f64) -> String {
    format!("{:.0} MIPS", insns as f64 / secs.max(1e-9) / 1e6)
}

fn rate(bytes: u64, secs: f64) -> String {
    format!("{}/s", human_bytes((bytes as f64 / secs.max(1e-9)) as u64))
}

/// Runs the demo, printing each step to `out`.
///
/// # Errors
/// Bad options, or a step that could not be carried out at all (an oracle that
/// disagrees is a `FAIL` verdict, not an error).
pub fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<DemoReport> {
    let guest = Guest::from_name(&args.guest).with_context(|| {
        format!(
            "--guest {}: unknown (counter, epoch, pagetable)",
            args.guest
        )
    })?;
    if guest == Guest::Pingpong {
        bail!("--guest pingpong needs a peer domain; pick counter, epoch or pagetable");
    }
    let steps = args.steps.unwrap_or(match guest {
        Guest::Counter => 1_000_000,
        Guest::Epoch => 5_000,
        _ => 1_000,
    });
    if steps < 2 {
        bail!("--steps {steps}: need at least 2");
    }
    if !(4..=4096).contains(&args.memory) {
        bail!("--memory {}: 4 to 4096 MiB", args.memory);
    }
    // Few progress lines, so the whole transcript fits in the console ring.
    let report = (steps / 8).max(1);
    let mut extra = format!("steps={steps} report={report}");
    if matches!(guest, Guest::Counter | Guest::Epoch) {
        // A region of up to 1024 pages (4 MiB), at most half the guest's memory.
        extra.push_str(&format!(" pages={}", (args.memory * 128).min(1024)));
    }
    if guest == Guest::Epoch {
        extra.push_str(&format!(" seed={}", args.seed));
    }
    let params = ToyParams::parse(guest, &extra).context("toy parameters")?;
    let mut cfg = DomainConfig::new(
        &format!("demo-{}", guest.name()),
        args.memory,
        KernelSpec::Toy(guest.name().into()),
    );
    cfg.extra = Some(extra.clone());
    let saved_at = save_point(steps, args.seed);

    let frames = (2 * args.memory + 32) * 256;
    let mut c = Ctx {
        m: Model::new(ModelConfig {
            machine_frames: frames,
        }),
        out,
        insns: 0,
        max_insns: args.max_insns,
    };
    writeln!(
        c.out,
        "xi demo: toy:{} with {} MiB, {} steps, save at step {saved_at} (seed {}), on the model ({} MiB host)",
        guest.name(),
        args.memory,
        steps,
        args.seed,
        frames / 256
    )?;

    // 1. Boot.
    let t = Instant::now();
    let d = build::create(&mut c.m, &cfg, &BuildOptions::default())
        .context("create the demo domain")?;
    let dom1 = d.domid;
    writeln!(
        c.out,
        "  1. boot     domain {} ({}): {} pages, built in {:.3} s",
        dom1.get(),
        cfg.name,
        d.p2m.len(),
        t.elapsed().as_secs_f64()
    )?;

    // 2. Run to the save point.
    let (st, n, secs) = c.run_until(dom1, &d.p2m, |s, _| s.steps >= saved_at)?;
    writeln!(
        c.out,
        "  2. run      {n} instructions in {secs:.2} s ({}): the guest is at step {}",
        mips(n, secs),
        st.steps
    )?;
    let mut failure = None;

    // 3. Save, as `xi save` does (the domain is destroyed).
    let tmp;
    let file: PathBuf = match &args.keep {
        Some(p) => p.clone(),
        None => {
            tmp = TempDir::new()?;
            tmp.0.join(format!("{}.xl", cfg.name))
        }
    };
    let t = Instant::now();
    let summary = save_to_file(
        &mut c.m,
        dom1,
        &file,
        SaveOptions {
            after: AfterSave::Destroy,
            config_json: Some(domains::config_json(&cfg)?),
            ..SaveOptions::default()
        },
    )
    .with_context(|| format!("save domain {} to {}", dom1.get(), file.display()))?;
    let secs = t.elapsed().as_secs_f64();
    writeln!(
        c.out,
        "  3. save     domain {} -> {}: {} pages ({} page tables), {} in {secs:.3} s ({}); domain {} destroyed",
        dom1.get(),
        file.display(),
        summary.pages,
        summary.page_tables,
        human_bytes(summary.bytes),
        rate(summary.bytes, secs),
        dom1.get()
    )?;
    let records = verify_file(&file)?;
    writeln!(
        c.out,
        "              the file is a valid Xen stream: {records} records (xl header, libxl v2, libxc v3)"
    )?;

    // 4. Restore (left paused).
    let t = Instant::now();
    let f = std::fs::File::open(&file).with_context(|| format!("open {}", file.display()))?;
    let r = restore(
        &mut c.m,
        std::io::BufReader::with_capacity(1 << 20, f),
        RestoreOptions::default(),
    )
    .with_context(|| format!("restore {}", file.display()))?;
    let secs = t.elapsed().as_secs_f64();
    let dom2 = r.domid;
    writeln!(
        c.out,
        "  4. restore  {} -> domain {} ({}): {} pages in {secs:.3} s ({}); paused",
        file.display(),
        dom2.get(),
        r.name,
        r.pages,
        rate(summary.bytes, secs)
    )?;
    let check = OracleCheck {
        stop: Stop::SafePoint,
        p2m: Some(&r.p2m),
        console: None,
    };
    // The guest may do a few more steps between the request and its suspend.
    let mut saved_step = st.steps;
    match build::check_oracle(&mut c.m, dom2, &params, &check)? {
        Verdict::Holds(s) if s.steps >= st.steps && s.suspends == 1 => {
            saved_step = s.steps;
            writeln!(
                c.out,
                "              oracle: memory by PFN is what the guest had when it suspended at step {}",
                s.steps
            )?;
        }
        Verdict::Holds(s) => fail(
            format!(
                "the restored guest is at step {} with {} suspends; it was running at step {} before the save",
                s.steps, s.suspends, st.steps
            ),
            &mut failure,
        ),
        Verdict::Fails(e) => fail(format!("restored memory: {e}"), &mut failure),
    }

    // 5. Start it and run it to the end.
    xc::unpause(&mut c.m, dom2).with_context(|| format!("unpause domain {}", dom2.get()))?;
    writeln!(c.out, "  5. start    domain {}", dom2.get())?;
    let powered_off =
        |_: &Status, info: &dc::DomctlGetDomainInfo| info.flags & dc::XEN_DOMINF_SHUTDOWN != 0;
    let (end, n, secs) = c.run_until(dom2, &r.p2m, powered_off)?;
    let info = xc::domain_info(&mut c.m, dom2)?;
    let reason = (info.flags >> dc::XEN_DOMINF_SHUTDOWNSHIFT) & 0xff;
    writeln!(
        c.out,
        "  6. run      {n} instructions in {secs:.2} s ({}): the guest is at step {} and {}",
        mips(n, secs),
        end.steps,
        if reason == SHUTDOWN_POWEROFF {
            "powered off".to_owned()
        } else {
            format!("shut down with reason {reason}")
        }
    )?;
    if reason != SHUTDOWN_POWEROFF {
        fail(
            format!("shutdown reason {reason}, not poweroff"),
            &mut failure,
        );
    }

    // 7. The oracle on everything.
    let (ring, written) = domains::console_ring(&mut c.m, dom2)?;
    let console = String::from_utf8_lossy(&ring).into_owned();
    let whole = written as usize == ring.len();
    let check = OracleCheck {
        stop: Stop::SafePoint,
        p2m: Some(&r.p2m),
        console: whole.then_some(console.as_str()),
    };
    match build::check_oracle(&mut c.m, dom2, &params, &check)? {
        Verdict::Holds(s) => {
            if s.steps != steps {
                fail(
                    format!("the guest did {} steps, not {}", s.steps, steps),
                    &mut failure,
                );
            } else if (s.suspends, s.resumes, s.cancels) != (1, 1, 0) {
                fail(
                    format!(
                        "{} suspends, {} resumes, {} cancels (expected 1, 1, 0)",
                        s.suspends, s.resumes, s.cancels
                    ),
                    &mut failure,
                );
            } else {
                writeln!(
                    c.out,
                    "  7. check    oracle: all {} region pages and the status block as predicted for step {}; 1 suspend, resumed once in a new domain",
                    guest_model::guests::Oracle::region(&params).end.get()
                        - guest_model::guests::Oracle::region(&params).start.get(),
                    s.steps
                )?;
                if whole {
                    writeln!(
                        c.out,
                        "              console: {} lines, before and after the save, exactly as predicted:",
                        console.lines().count()
                    )?;
                    for l in console.lines() {
                        writeln!(c.out, "                | {l}")?;
                    }
                } else {
                    writeln!(
                        c.out,
                        "              console: {written} bytes written, more than the ring holds; not compared"
                    )?;
                }
            }
        }
        Verdict::Fails(e) => fail(format!("final check: {e}"), &mut failure),
    }
    if let Err(e) = c.m.check_invariants() {
        fail(format!("model invariants: {e}"), &mut failure);
    }
    let file_bytes = summary.bytes;
    match &failure {
        None => writeln!(
            c.out,
            "PASS: toy:{} saved at step {}, restored into domain {}, finished all {} steps; nothing was lost",
            guest.name(),
            saved_step,
            dom2.get(),
            steps
        )?,
        Some(f) => writeln!(c.out, "FAIL: {f}")?,
    }
    Ok(DemoReport {
        passed: failure.is_none(),
        saved_at: saved_step,
        file_bytes,
        domains: (dom1, dom2),
        failure,
    })
}

/// Keeps the first failure.
fn fail(what: String, failure: &mut Option<String>) {
    if failure.is_none() {
        *failure = Some(what);
    }
}

/// A directory of our own under the system's temporary directory, removed (with what
/// is in it) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let base = std::env::temp_dir();
        for i in 0..1000u32 {
            let p = base.join(format!("xi-demo-{}-{i}", std::process::id()));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("create the directory {}", p.display()))
                }
            }
        }
        bail!("no free temporary directory name under {}", base.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads the whole file back with xi's reader, zero padding required as Xen's
/// `verify-stream-v2` does; returns the record count.
fn verify_file(file: &Path) -> Result<usize> {
    let f = std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?;
    let mut r = StreamReader::with_options(
        std::io::BufReader::new(f),
        ReaderOptions {
            require_zero_padding: true,
            ..ReaderOptions::default()
        },
    );
    let mut n = 0;
    for item in &mut r {
        item.with_context(|| format!("{} does not read back", file.display()))?;
        n += 1;
    }
    if !r.is_done() {
        bail!("{}: no END record", file.display());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_points_are_in_the_middle_half_and_follow_the_seed() {
        for seed in 0..200 {
            let p = save_point(1000, seed);
            assert!((250..750).contains(&p), "seed {seed}: {p}");
            assert_eq!(p, save_point(1000, seed));
        }
        assert_ne!(save_point(1000, 1), save_point(1000, 2));
        assert_eq!(save_point(2, 5), 1);
    }
}
