//! The scenario runner: a scenario is a list of [`Step`]s over one or more model hosts;
//! running it gives an [`Outcome`] holding everything observable — the step log, every
//! stream written, and for every guest its console transcript (across incarnations),
//! its oracle's verdict and its memory by PFN (as digests); for every host its domain
//! list, free memory and invariant check. Same scenario, same outcome, byte for byte
//! ([`Outcome::to_bytes`]).
//!
//! Guests are named by labels, not domain ids: a restore gives the label a new domain
//! (and the source's transcript so far), so "the counter" stays one guest across save
//! and restore as it does for its user.

use std::collections::BTreeMap;
use std::fmt;

use guest_model::{Guest, Stop, ToyParams};
use hypervisor::{DomId, Mfn};
use serde::{Deserialize, Serialize};
use toolstack::build::{self, BuildOptions, OracleCheck, Verdict};
use toolstack::config::{DomainConfig, KernelSpec};
use toolstack::restore::{restore, RestoreOptions};
use toolstack::save::{save, xc, AfterSave, SaveOptions};

use crate::corrupt::Corruption;
use crate::host::Host;
use crate::observe;

/// Guest memory in MiB (1024 pages).
pub const GUEST_MEMORY_MIB: u64 = 4;
/// Machine frames of a host (64 MiB: room for a few guests and their restores).
pub const HOST_FRAMES: u64 = 16384;

/// How a save ends (`xl save`, `-c`, `-p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaveMode {
    /// Destroy the domain after the save.
    Plain,
    /// Resume the domain in place (suspend returns 1 in the guest).
    Checkpoint,
    /// Leave it suspended and paused.
    LeavePaused,
}

impl SaveMode {
    fn after(self) -> AfterSave {
        match self {
            SaveMode::Plain => AfterSave::Destroy,
            SaveMode::Checkpoint => AfterSave::Checkpoint,
            SaveMode::LeavePaused => AfterSave::LeavePaused,
        }
    }
}

/// Where an oracle check assumes the guest is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopAt {
    /// At a safe point (suspended, blocked, done).
    SafePoint,
    /// Anywhere (after a run of some instructions).
    Anywhere,
}

impl From<StopAt> for Stop {
    fn from(s: StopAt) -> Stop {
        match s {
            StopAt::SafePoint => Stop::SafePoint,
            StopAt::Anywhere => Stop::Anywhere,
        }
    }
}

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Build toy guest `kind` (`counter`, `epoch`, ...) with parameters `extra` (the
    /// seed among them, e.g. `"seed=7 pages=16"`) on `host`, running, as `guest`;
    /// `peer` appends `peer=<domid of that guest>` (pingpong's pong).
    Boot {
        /// Label.
        guest: String,
        /// Host index.
        host: usize,
        /// Toy guest name.
        kind: String,
        /// Its parameters.
        extra: String,
        /// Label of the peer guest, if any.
        peer: Option<String>,
    },
    /// Run `host` for `insns` guest instructions.
    Run {
        /// Host index.
        host: usize,
        /// Instructions.
        insns: u64,
    },
    /// Save `guest`; the stream becomes the next stream slot.
    Save {
        /// Label.
        guest: String,
        /// How the save ends.
        mode: SaveMode,
    },
    /// Restore stream slot `stream` on `host` (left paused) as `guest`.
    Restore {
        /// Stream slot.
        stream: usize,
        /// Host index.
        host: usize,
        /// Label of the restored guest.
        guest: String,
    },
    /// Unpause `guest`.
    Unpause {
        /// Label.
        guest: String,
    },
    /// Destroy `guest`.
    Destroy {
        /// Label.
        guest: String,
    },
    /// Apply `how` to stream slot `stream`; the result becomes the next stream slot.
    Corrupt {
        /// Stream slot.
        stream: usize,
        /// The corruption.
        how: Corruption,
    },
    /// Run the model's invariant checker on `host`.
    CheckInvariants {
        /// Host index.
        host: usize,
    },
    /// Run `guest`'s oracle over its memory and transcript.
    Check {
        /// Label.
        guest: String,
        /// Where it is stopped.
        stop: StopAt,
    },
}

/// A scenario: how many hosts, and the steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// Number of model hosts.
    pub hosts: usize,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// A guest as the runner tracks it.
#[derive(Debug, Clone)]
pub struct GuestSlot {
    /// Its host.
    pub host: usize,
    /// Its current domain (`None` once saved-and-destroyed or destroyed).
    pub dom: Option<DomId>,
    /// Its P2M.
    pub p2m: Vec<Mfn>,
    /// Its toy parameters.
    pub params: ToyParams,
    /// Console output of its earlier incarnations.
    pub console_past: Vec<u8>,
}

/// A stream the scenario produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSlot {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Label of the guest it came from.
    pub source: String,
    /// What made it (`"save counter Plain"`, `"corrupt 0 Truncate..."`).
    pub origin: String,
}

/// What a guest looks like at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestReport {
    /// Host index.
    pub host: usize,
    /// Domain id, if it still exists.
    pub dom: Option<u16>,
    /// Console transcript across incarnations.
    pub console: String,
    /// The oracle's verdict at the end ([`Stop::Anywhere`]), as text.
    pub verdict: String,
    /// Workload steps done, if the status block reads.
    pub steps: Option<u64>,
    /// Memory by PFN: FNV-1a digests.
    pub memory: BTreeMap<u64, u64>,
}

/// What a host looks like at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// Domain ids.
    pub domains: Vec<u16>,
    /// Free frames.
    pub free_pages: u64,
    /// `"ok"` or the first invariant violation.
    pub invariants: String,
    /// Virtual time, ns.
    pub now_ns: u64,
}

/// Everything observable of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// One line per step: what it did or why it failed.
    pub log: Vec<String>,
    /// Every stream produced, by slot.
    pub streams: Vec<StreamSlot>,
    /// Every guest, by label.
    pub guests: BTreeMap<String, GuestReport>,
    /// Every host.
    pub hosts: Vec<HostReport>,
}

impl Outcome {
    /// The canonical byte form (postcard; maps are ordered).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }
}

/// Why a step could not even be attempted (a scenario naming what does not exist).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// No such host.
    #[error("step {step}: no host {host}")]
    NoHost {
        /// Step index.
        step: usize,
        /// The host.
        host: usize,
    },
    /// No such guest, or it has no domain.
    #[error("step {step}: guest {guest:?} has no domain")]
    NoGuest {
        /// Step index.
        step: usize,
        /// The label.
        guest: String,
    },
    /// No such stream slot.
    #[error("step {step}: no stream slot {stream}")]
    NoStream {
        /// Step index.
        step: usize,
        /// The slot.
        stream: usize,
    },
}

/// Runs scenarios; its state is open so properties can look at hosts between steps.
#[derive(Debug)]
pub struct Runner {
    /// The hosts.
    pub hosts: Vec<Host>,
    /// The guests, by label.
    pub guests: BTreeMap<String, GuestSlot>,
    /// The streams, by slot.
    pub streams: Vec<StreamSlot>,
    /// The step log.
    pub log: Vec<String>,
}

fn err(e: impl fmt::Display) -> String {
    format!("error: {e}")
}

impl Runner {
    /// `hosts` fresh hosts of [`HOST_FRAMES`] frames.
    #[must_use]
    pub fn new(hosts: usize) -> Runner {
        Runner {
            hosts: (0..hosts).map(|_| Host::new(HOST_FRAMES)).collect(),
            guests: BTreeMap::new(),
            streams: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Runs a whole scenario on fresh hosts.
    ///
    /// # Errors
    /// A step naming a host, guest or stream that does not exist.
    pub fn run_scenario(s: &Scenario) -> Result<Outcome, ScenarioError> {
        let mut r = Runner::new(s.hosts);
        for (i, step) in s.steps.iter().enumerate() {
            r.step(i, step)?;
        }
        Ok(r.outcome())
    }

    fn host_mut(&mut self, step: usize, host: usize) -> Result<&mut Host, ScenarioError> {
        self.hosts
            .get_mut(host)
            .ok_or(ScenarioError::NoHost { step, host })
    }

    fn live(&self, step: usize, guest: &str) -> Result<(usize, DomId), ScenarioError> {
        match self.guests.get(guest) {
            Some(GuestSlot {
                host, dom: Some(d), ..
            }) => Ok((*host, *d)),
            _ => Err(ScenarioError::NoGuest {
                step,
                guest: guest.to_owned(),
            }),
        }
    }

    /// The guest's console across its incarnations.
    #[must_use]
    pub fn transcript(&self, guest: &str) -> String {
        let Some(g) = self.guests.get(guest) else {
            return String::new();
        };
        let mut bytes = g.console_past.clone();
        if let Some(d) = g.dom {
            bytes.extend(self.hosts[g.host].model.console_output(d));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Ends the guest's current incarnation after its domain was destroyed.
    fn bury(&mut self, guest: &str) {
        if let Some(g) = self.guests.get_mut(guest) {
            if let Some(d) = g.dom.take() {
                let c = self.hosts[g.host]
                    .take_console_of_destroyed(d)
                    .unwrap_or_default();
                g.console_past.extend(c);
            }
        }
    }

    /// Runs one step; the log gets one line.
    ///
    /// # Errors
    /// A step naming a host, guest or stream that does not exist.
    pub fn step(&mut self, i: usize, step: &Step) -> Result<(), ScenarioError> {
        let line = match step {
            Step::Boot {
                guest,
                host,
                kind,
                extra,
                peer,
            } => {
                let mut extra = extra.clone();
                if let Some(p) = peer {
                    let (_, d) = self.live(i, p)?;
                    extra = format!("{extra} peer={}", d.get()).trim().to_owned();
                }
                let h = self.host_mut(i, *host)?;
                let mut cfg =
                    DomainConfig::new(guest, GUEST_MEMORY_MIB, KernelSpec::Toy(kind.clone()));
                cfg.extra = Some(extra.clone());
                let params = Guest::from_name(kind)
                    .ok_or_else(|| format!("unknown guest {kind}"))
                    .and_then(|g| ToyParams::parse(g, &extra).map_err(|e| e.to_string()));
                match params.and_then(|p| {
                    build::create(h, &cfg, &BuildOptions::default())
                        .map(|b| (p, b))
                        .map_err(|e| e.to_string())
                }) {
                    Ok((params, b)) => {
                        let line = format!("boot {guest}: {kind} {extra} as d{}", b.domid.get());
                        self.guests.insert(
                            guest.clone(),
                            GuestSlot {
                                host: *host,
                                dom: Some(b.domid),
                                p2m: b.p2m,
                                params,
                                console_past: Vec::new(),
                            },
                        );
                        line
                    }
                    Err(e) => format!("boot {guest}: {}", err(e)),
                }
            }
            Step::Run { host, insns } => {
                let h = self.host_mut(i, *host)?;
                let done = h.model.run(*insns);
                format!("run host {host}: {done} instructions")
            }
            Step::Save { guest, mode } => {
                let (host, dom) = self.live(i, guest)?;
                let mut out = Vec::new();
                let r = save(
                    &mut self.hosts[host],
                    dom,
                    &mut out,
                    SaveOptions {
                        after: mode.after(),
                        ..SaveOptions::default()
                    },
                );
                match r {
                    Ok(s) => {
                        if *mode == SaveMode::Plain {
                            self.bury(guest);
                        }
                        self.streams.push(StreamSlot {
                            bytes: out,
                            source: guest.clone(),
                            origin: format!("save {guest} {mode:?}"),
                        });
                        format!(
                            "save {guest} {mode:?}: slot {}, {} bytes, {} pages",
                            self.streams.len() - 1,
                            s.bytes,
                            s.pages
                        )
                    }
                    Err(e) => format!("save {guest} {mode:?}: {}", err(e)),
                }
            }
            Step::Restore {
                stream,
                host,
                guest,
            } => {
                let slot = self
                    .streams
                    .get(*stream)
                    .cloned()
                    .ok_or(ScenarioError::NoStream {
                        step: i,
                        stream: *stream,
                    })?;
                let source = self.guests.get(&slot.source).cloned();
                let console_past = source
                    .as_ref()
                    .map(|_| self.transcript(&slot.source).into_bytes())
                    .unwrap_or_default();
                let h = self.host_mut(i, *host)?;
                // Named after its label, as the domains Create makes are: a copy next
                // to its still-running source needs a name of its own (xl refuses two).
                let opts = RestoreOptions {
                    name: Some(guest.clone()),
                    ..RestoreOptions::default()
                };
                match restore(h, &slot.bytes[..], opts) {
                    Ok(r) => {
                        let line = format!(
                            "restore slot {stream} as {guest}: d{}, {} pages",
                            r.domid.get(),
                            r.pages
                        );
                        if let Some(src) = source {
                            self.guests.insert(
                                guest.clone(),
                                GuestSlot {
                                    host: *host,
                                    dom: Some(r.domid),
                                    p2m: r.p2m,
                                    params: src.params,
                                    console_past,
                                },
                            );
                        }
                        line
                    }
                    Err(e) => format!("restore slot {stream} as {guest}: {}", err(e)),
                }
            }
            Step::Unpause { guest } => {
                let (host, dom) = self.live(i, guest)?;
                match xc::unpause(&mut self.hosts[host], dom) {
                    Ok(()) => format!("unpause {guest}"),
                    Err(e) => format!("unpause {guest}: {}", err(e)),
                }
            }
            Step::Destroy { guest } => {
                let (host, dom) = self.live(i, guest)?;
                match xc::destroy(&mut self.hosts[host], dom) {
                    Ok(()) => {
                        self.bury(guest);
                        format!("destroy {guest}")
                    }
                    Err(e) => format!("destroy {guest}: {}", err(e)),
                }
            }
            Step::Corrupt { stream, how } => {
                let slot = self
                    .streams
                    .get(*stream)
                    .cloned()
                    .ok_or(ScenarioError::NoStream {
                        step: i,
                        stream: *stream,
                    })?;
                match how.apply(&slot.bytes) {
                    Some(bytes) => {
                        self.streams.push(StreamSlot {
                            bytes,
                            source: slot.source,
                            origin: format!("corrupt {stream} {how:?}"),
                        });
                        format!(
                            "corrupt slot {stream} {how:?}: slot {}",
                            self.streams.len() - 1
                        )
                    }
                    None => format!("corrupt slot {stream} {how:?}: not applicable"),
                }
            }
            Step::CheckInvariants { host } => {
                let h = self.host_mut(i, *host)?;
                match h.model.check_invariants() {
                    Ok(()) => format!("invariants host {host}: ok"),
                    Err(e) => format!("invariants host {host}: {}", err(format!("{e:?}"))),
                }
            }
            Step::Check { guest, stop } => {
                let v = self.verdict(i, guest, (*stop).into())?;
                format!("check {guest} {stop:?}: {v}")
            }
        };
        self.log.push(line);
        Ok(())
    }

    /// The oracle's verdict on `guest` as text (`holds: N steps` or `fails: why`).
    ///
    /// # Errors
    /// [`ScenarioError::NoGuest`].
    pub fn verdict(
        &mut self,
        step: usize,
        guest: &str,
        stop: Stop,
    ) -> Result<String, ScenarioError> {
        let (host, dom) = self.live(step, guest)?;
        let console = self.transcript(guest);
        let g = &self.guests[guest];
        let (p2m, params) = (g.p2m.clone(), g.params.clone());
        let v = build::check_oracle(
            &mut self.hosts[host],
            dom,
            &params,
            &OracleCheck {
                stop,
                p2m: Some(&p2m),
                console: Some(&console),
            },
        );
        Ok(match v {
            Ok(Verdict::Holds(s)) => format!("holds: {} steps", s.steps),
            Ok(Verdict::Fails(e)) => format!("fails: {e}"),
            Err(e) => format!("unreadable: {e}"),
        })
    }

    /// Everything observable now.
    #[must_use]
    pub fn outcome(&mut self) -> Outcome {
        let labels: Vec<String> = self.guests.keys().cloned().collect();
        let mut guests = BTreeMap::new();
        for label in labels {
            let g = self.guests[&label].clone();
            let console = self.transcript(&label);
            let (verdict, steps, memory) = match g.dom {
                Some(d) => {
                    let verdict = self
                        .verdict(0, &label, Stop::Anywhere)
                        .unwrap_or_else(|e| e.to_string());
                    let h = &mut self.hosts[g.host];
                    let steps = build::toys::read_status(h, d, &g.p2m)
                        .ok()
                        .and_then(Result::ok)
                        .map(|s| s.steps);
                    let memory = observe::memory_digests(h, d, &g.p2m).unwrap_or_default();
                    (verdict, steps, memory)
                }
                None => ("gone".to_owned(), None, BTreeMap::new()),
            };
            guests.insert(
                label,
                GuestReport {
                    host: g.host,
                    dom: g.dom.map(DomId::get),
                    console,
                    verdict,
                    steps,
                    memory,
                },
            );
        }
        let hosts = self
            .hosts
            .iter_mut()
            .map(|h| HostReport {
                domains: observe::domains(h).unwrap_or_default(),
                free_pages: observe::free_pages(h).unwrap_or_default(),
                invariants: match h.model.check_invariants() {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("{e:?}"),
                },
                now_ns: h.model.now_ns(),
            })
            .collect();
        Outcome {
            log: self.log.clone(),
            streams: self.streams.clone(),
            guests,
            hosts,
        }
    }
}
