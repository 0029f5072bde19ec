//! A deterministic software model of Xen 4.17 for x86-64 PV guests.
//!
//! One [`Model`] is one simulated host: machine memory with Xen's page-type rules
//! ([`mm`]), domains and vCPUs ([`domain`]), event channels ([`evtchn`]), xenstored
//! ([`xenstore`]) and the console backend ([`console`]). The toolstack reaches it through
//! the [`Xen`](crate::Xen) trait exactly as it would reach real Xen through privcmd;
//! guests reach it through [`Model::hypercall`].
//!
//! Determinism: virtual time only, `BTreeMap`s wherever iteration order is observable,
//! no randomness.

mod backend;
pub mod console;
pub mod domain;
mod domctl;
pub mod evtchn;
pub mod grant;
mod hypercall;
pub mod invariants;
mod lifecycle;
pub mod mm;
mod run;
mod services;
pub mod testkit;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_grant;
#[cfg(test)]
mod tests_run;
pub mod time;
pub mod walk;
pub mod xenstore;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::types::{DomId, Port};

pub use domain::{CreateDomain, Domain, Vcpu};
pub use hypercall::HypercallOutcome;
pub use lifecycle::InvariantError;
pub use run::SLICE;

/// How a [`Model`] host is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Machine memory, in 4 KiB frames.
    pub machine_frames: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        // 256 MiB: plenty for several toy guests, cheap to create (lazily zeroed).
        ModelConfig {
            machine_frames: 65536,
        }
    }
}

/// One simulated Xen host.
#[derive(Debug)]
pub struct Model {
    /// Machine memory and page types.
    pub(crate) mem: mm::Memory,
    /// Every domain, by id (dom0 included).
    pub(crate) domains: BTreeMap<DomId, domain::Domain>,
    /// xenstored.
    pub(crate) xenstore: xenstore::XenStore,
    /// The console backend (xenconsoled).
    pub(crate) console: console::Consoles,
    /// Virtual time.
    pub(crate) time: time::Clock,
    /// The last domain id handed out (4.17's rotating id cursor).
    pub(crate) last_domid: u16,
    /// dom0's event channel device (`/dev/xen/evtchn`) state.
    pub(crate) evtchn_dev: EvtchnDevice,
    /// dom0 services (xenstored, xenconsoled) bookkeeping.
    pub(crate) services: services::Services,
    /// Watch events already taken from xenstored for the toolstack.
    pub(crate) tools_watch_events: VecDeque<crate::xen::XsWatchEvent>,
    /// Decoded guest code, keyed by machine frame.
    pub(crate) icache: crate::cpu::DecodeCache,
}

/// The toolstack's `/dev/xen/evtchn`: which dom0 ports it bound, which fired.
#[derive(Debug, Default)]
pub(crate) struct EvtchnDevice {
    /// Ports bound through the device.
    pub(crate) bound: BTreeSet<Port>,
    /// Delivered ports, in order, each masked until the toolstack unmasks it.
    pub(crate) ring: VecDeque<Port>,
}
