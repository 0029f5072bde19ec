//! Virtual time: derived from retired guest instructions, never from the wall clock.

/// The host's virtual clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Nanoseconds since the host booted.
    pub now_ns: u64,
}
