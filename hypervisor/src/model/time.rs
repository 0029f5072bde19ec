//! Virtual time: derived from retired guest instructions, never from the wall clock.

/// The host's virtual clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Nanoseconds since the host booted.
    pub now_ns: u64,
}

/// The guest TSC frequency the model reports (kHz): 1 GHz, so one TSC tick is 1 ns.
pub const TSC_KHZ: u32 = 1_000_000;
