//! `sched_op` (public/sched.h): commands, shutdown reasons and argument structs.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Give up the CPU (arg NULL).
pub const SCHEDOP_YIELD: u64 = 0;
/// Unmask events and sleep until one is pending (arg NULL).
pub const SCHEDOP_BLOCK: u64 = 1;
/// Shut the calling domain down ([`SchedShutdown`]).
pub const SCHEDOP_SHUTDOWN: u64 = 2;
/// Wait for one of a set of ports ([`SchedPoll`]).
pub const SCHEDOP_POLL: u64 = 3;
/// Shut another domain down ([`SchedRemoteShutdown`]; privileged).
pub const SCHEDOP_REMOTE_SHUTDOWN: u64 = 4;
/// Latch the reason reported by a later shutdown ([`SchedShutdown`]).
pub const SCHEDOP_SHUTDOWN_CODE: u64 = 5;
/// Create, kick or destroy a watchdog ([`SchedWatchdog`]).
pub const SCHEDOP_WATCHDOG: u64 = 6;
/// Pin the current vcpu to a pCPU temporarily (hardware domain only).
pub const SCHEDOP_PIN_OVERRIDE: u64 = 7;

/// Shutdown reason: power off.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Shutdown reason: reboot.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Shutdown reason: suspend (PV: the start_info MFN goes in the third argument).
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// Shutdown reason: crash.
pub const SHUTDOWN_CRASH: u32 = 3;
/// Shutdown reason: a watchdog fired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Shutdown reason: soft reset.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// The highest shutdown reason.
pub const SHUTDOWN_MAX: u32 = SHUTDOWN_SOFT_RESET;

/// `struct sched_shutdown` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

/// `struct sched_poll` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SchedPoll {
    /// Handle to a `u32` port array.
    pub ports: u64,
    /// Number of ports.
    pub nr_ports: u32,
    /// Padding.
    pub pad: u32,
    /// Absolute system-time timeout in ns (0 = none).
    pub timeout: u64,
}

/// `struct sched_remote_shutdown` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SchedRemoteShutdown {
    /// The domain to shut down.
    pub domain_id: u16,
    /// Padding.
    pub pad: u16,
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

/// `struct sched_watchdog` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SchedWatchdog {
    /// 0 creates a watchdog (its id is returned); otherwise the watchdog to act on.
    pub id: u32,
    /// Seconds until it fires; 0 destroys it.
    pub timeout: u32,
}

/// `struct sched_pin_override` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SchedPinOverride {
    /// The pCPU, or negative to end the override.
    pub pcpu: i32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layouts() {
        assert_eq!(size_of::<SchedShutdown>(), 4);
        assert_eq!(size_of::<SchedPoll>(), 24);
        assert_eq!(offset_of!(SchedPoll, nr_ports), 8);
        assert_eq!(offset_of!(SchedPoll, timeout), 16);
        assert_eq!(size_of::<SchedRemoteShutdown>(), 8);
        assert_eq!(offset_of!(SchedRemoteShutdown, reason), 4);
        assert_eq!(size_of::<SchedWatchdog>(), 8);
        assert_eq!(offset_of!(SchedWatchdog, timeout), 4);
        assert_eq!(size_of::<SchedPinOverride>(), 4);
    }
}
