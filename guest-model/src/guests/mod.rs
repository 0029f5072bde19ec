//! The toy guests: each module has the guest's code and its oracle; [`Oracle`] picks
//! the right one for a set of parameters.

use std::collections::BTreeMap;
use std::ops::Range;

use hypervisor::types::Pfn;

use crate::layout::PG_GUEST;
use crate::oracle::{GuestMemory, OracleError, Status, Stop};
use crate::params::ToyParams;

pub mod checksum;
pub mod counter;
pub mod epoch;
pub mod pagetable;
pub mod pingpong;

use crate::asm::AsmResult;
use crate::params::Guest;
use crate::runtime::Gen;

/// Emits the guest's code (`guest_main` and its routines); returns the number of
/// guest-region pages the image needs after [`PG_GUEST`](crate::layout::PG_GUEST).
pub(crate) fn emit(g: &mut Gen<'_>) -> AsmResult<u64> {
    match g.p.guest {
        Guest::Counter => {
            counter::emit(g)?;
            Ok(counter::region_pages(g.p))
        }
        Guest::Epoch => {
            epoch::emit(g)?;
            Ok(epoch::region_pages(g.p))
        }
        Guest::Pagetable => {
            pagetable::emit(g)?;
            Ok(pagetable::region_pages(g.p))
        }
        Guest::Pingpong => {
            pingpong::emit(g)?;
            Ok(pingpong::region_pages(g.p))
        }
        Guest::Checksum => {
            checksum::emit(g)?;
            Ok(checksum::region_pages(g.p))
        }
    }
}

/// The oracle of any toy guest.
#[derive(Clone, Debug)]
pub enum Oracle {
    /// `counter`.
    Counter(counter::CounterOracle),
    /// `epoch`.
    Epoch(epoch::EpochOracle),
    /// `pagetable`.
    Pagetable(pagetable::PagetableOracle),
    /// `pingpong` (one side; see [`pingpong::PingpongOracle::check_pair`] for both).
    Pingpong(pingpong::PingpongOracle),
    /// `checksum`.
    Checksum(checksum::ChecksumOracle),
}

impl Oracle {
    /// The oracle for `params`.
    #[must_use]
    pub fn new(params: &ToyParams) -> Oracle {
        match params.guest {
            Guest::Counter => Oracle::Counter(counter::CounterOracle::new(params)),
            Guest::Epoch => Oracle::Epoch(epoch::EpochOracle::new(params)),
            Guest::Pagetable => Oracle::Pagetable(pagetable::PagetableOracle::new(params)),
            Guest::Pingpong => Oracle::Pingpong(pingpong::PingpongOracle::new(params)),
            Guest::Checksum => Oracle::Checksum(checksum::ChecksumOracle::new(params)),
        }
    }

    /// The PFNs whose contents the oracle predicts (the guest region). Everything below
    /// is runtime state (status block, rings, p2m frame lists, MFNs...) and is not
    /// expected to survive a round trip byte for byte.
    #[must_use]
    pub fn region(params: &ToyParams) -> Range<Pfn> {
        let n = match params.guest {
            Guest::Counter => counter::region_pages(params),
            Guest::Epoch => epoch::region_pages(params),
            Guest::Pagetable => pagetable::region_pages(params),
            Guest::Pingpong => pingpong::region_pages(params),
            Guest::Checksum => checksum::region_pages(params),
        };
        Pfn::new(PG_GUEST)..Pfn::new(PG_GUEST + n)
    }

    /// The guest region's exact contents after `steps` steps (empty for pingpong).
    #[must_use]
    pub fn expected_pages(&self, steps: u64) -> BTreeMap<Pfn, Vec<u8>> {
        match self {
            Oracle::Counter(o) => o.expected_pages(steps),
            Oracle::Epoch(o) => o.expected_pages(steps),
            Oracle::Pagetable(o) => o.expected_pages(steps),
            Oracle::Pingpong(_) => BTreeMap::new(),
            Oracle::Checksum(o) => o.expected_pages(steps),
        }
    }

    /// Checks a stopped guest's memory; returns its status block.
    ///
    /// # Errors
    /// The first disagreement.
    pub fn check(&self, mem: &impl GuestMemory, stop: Stop) -> Result<Status, OracleError> {
        match self {
            Oracle::Counter(o) => o.check(mem, stop),
            Oracle::Epoch(o) => o.check(mem, stop),
            Oracle::Pagetable(o) => o.check(mem, stop),
            Oracle::Pingpong(_) => Status::read(mem),
            Oracle::Checksum(o) => o.check(mem, stop),
        }
    }

    /// The workload console lines after `steps` steps.
    #[must_use]
    pub fn expected_console(&self, steps: u64) -> Vec<String> {
        match self {
            Oracle::Counter(o) => o.expected_console(steps),
            Oracle::Epoch(o) => o.expected_console(steps),
            Oracle::Pagetable(o) => o.expected_console(steps),
            Oracle::Pingpong(o) => o.expected_console(steps),
            Oracle::Checksum(o) => o.expected_console(steps),
        }
    }

    /// Checks memory and the console transcript together.
    ///
    /// # Errors
    /// The first disagreement.
    pub fn check_all(
        &self,
        mem: &impl GuestMemory,
        console: &str,
        stop: Stop,
    ) -> Result<Status, OracleError> {
        let st = self.check(mem, stop)?;
        let name = match self {
            Oracle::Counter(_) => "counter",
            Oracle::Epoch(_) => "epoch",
            Oracle::Pagetable(_) => "pagetable",
            Oracle::Pingpong(_) => "pingpong",
            Oracle::Checksum(_) => "checksum",
        };
        let filtered;
        let console = if let Oracle::Checksum(_) = self {
            let (rest, ok) = checksum::ChecksumOracle::split_verify_lines(console)?;
            // The line is printed after the counter moves.
            if ok != st.guest[2] && !(stop == Stop::Anywhere && ok + 1 == st.guest[2]) {
                return Err(OracleError::Protocol(format!(
                    "{ok} verify lines, status says {} verifications",
                    st.guest[2]
                )));
            }
            filtered = rest;
            filtered.as_str()
        } else {
            console
        };
        crate::oracle::check_console(
            name,
            console,
            &st,
            stop,
            &self.expected_console(st.steps),
            &self.expected_console(st.steps + 1),
        )?;
        Ok(st)
    }
}
