//! # harness
//!
//! Deterministic scenario runner and state comparison over model hosts.
//!
//! - [`scenario`]: [`Scenario`]s of [`Step`]s (boot, run, save plain/`-c`/`-p`,
//!   restore, unpause, destroy, corrupt a stream, check invariants, check the oracle)
//!   over one or more hosts, and their [`Outcome`] — everything observable, the same
//!   bytes for the same scenario.
//! - [`corrupt`]: single corruptions of a stream as data ([`Corruption`]).
//! - [`host`]: a model host that keeps the console of domains it destroyed.
//! - [`observe`]: domain lists, free memory, memory by PFN, event channels.
//!
//! The property tests (transparency, exactness at the cut, stream algebra, robustness,
//! isolation), the fixture replays and the corpus replay of the fuzz targets live in
//! `harness/tests/`; the record/replay backends are `hypervisor::record`.
#![forbid(unsafe_code)]

pub mod corrupt;
pub mod fuzz;
pub mod host;
pub mod observe;
pub mod scenario;

pub use corrupt::Corruption;
pub use host::Host;
pub use scenario::{Outcome, Runner, SaveMode, Scenario, Step, StopAt};
