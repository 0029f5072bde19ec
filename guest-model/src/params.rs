//! Toy-guest parameters, parsed from the `extra` command line (`"seed=7 pages=64"`).
//!
//! Every guest takes `steps=N` (stop after N workload steps, print `<name>: done N` and
//! power off; 0, the default, runs forever) and `report=N` (print a progress line every
//! N steps; 0 = never), and optionally `hostile=keep-shinfo` (suspend without dropping
//! the shared_info mapping: a protocol violation for testing savers). Guest-specific
//! keys:
//!
//! | guest | key | default | range | meaning |
//! |---|---|---|---|---|
//! | counter | `pages` | 64 | 1..=8192 | pages in the incremented region |
//! | epoch | `pages` | 64 | 1..=8192 | pages in the region |
//! | epoch | `seed` | 1 | any u64 | PRNG seed for the page choice |
//! | epoch | `writes` | 16 | 1..=4096 | pages written per epoch (chosen with repetition) |
//! | epoch | `period_ns` | 1000000 | 1000..=10^12 | timer period between epochs |
//! | pingpong | `role` | — (required) | `ping` / `pong` | ping allocates the channel, pong binds it |
//! | checksum | `pages` | 64 | 1..=8192 | pages filled (512 words each) |
//! | checksum | `seed` | 1 | any u64 | PRNG seed of the values |
//! | pingpong | `peer` | — | 1..=32751 | the other domain's id (required for pong; ping learns it from xenstore if absent) |
//!
//! Default `report`: counter 4096, epoch 10, pagetable 10, pingpong 100, checksum 1000.
//! Unknown keys, repeated keys, tokens without `=` and out-of-range values are errors.

use std::fmt;

use crate::ToyError;

/// Which toy guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Guest {
    /// Increments the first byte of every page of a region, round robin.
    Counter,
    /// Writes the epoch number into seeded pages; the timer VIRQ advances the epoch.
    Epoch,
    /// Builds, pins, switches to, uses and tears down its own page tables.
    Pagetable,
    /// Exchanges notifications with a peer domain over an inter-domain event channel.
    Pingpong,
    /// Fills memory from a seeded PRNG, keeps running checksums, verifies after resumes.
    Checksum,
}

impl Guest {
    /// Every guest, in a fixed order.
    pub const ALL: [Guest; 5] = [
        Guest::Counter,
        Guest::Epoch,
        Guest::Pagetable,
        Guest::Pingpong,
        Guest::Checksum,
    ];

    /// The name used in `toy:<name>` and on the console.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Guest::Counter => "counter",
            Guest::Epoch => "epoch",
            Guest::Pagetable => "pagetable",
            Guest::Pingpong => "pingpong",
            Guest::Checksum => "checksum",
        }
    }

    /// Looks a guest up by name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Guest> {
        Guest::ALL.into_iter().find(|g| g.name() == name)
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Guest::Counter => &["steps", "report", "hostile", "pages"],
            Guest::Epoch => &[
                "steps",
                "report",
                "hostile",
                "pages",
                "seed",
                "writes",
                "period_ns",
            ],
            Guest::Pagetable => &["steps", "report", "hostile"],
            Guest::Pingpong => &["steps", "report", "hostile", "role", "peer"],
            Guest::Checksum => &["steps", "report", "hostile", "pages", "seed"],
        }
    }

    const fn default_report(self) -> u64 {
        match self {
            Guest::Counter => 4096,
            Guest::Epoch | Guest::Pagetable => 10,
            Guest::Pingpong => 100,
            Guest::Checksum => 1000,
        }
    }
}

impl fmt::Display for Guest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The pingpong role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Allocates the unbound port, publishes it in xenstore, answers every notification.
    Ping,
    /// Reads the port from the ping's xenstore home, binds it, sends the first notification.
    Pong,
}

impl Role {
    /// `"ping"` or `"pong"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Role::Ping => "ping",
            Role::Pong => "pong",
        }
    }
}

/// A toy guest's parameters. Fields a guest does not use keep their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ToyParams {
    /// The guest.
    pub guest: Guest,
    /// Stop after this many steps (0 = never).
    pub steps: u64,
    /// Progress line every this many steps (0 = never).
    pub report: u64,
    /// Region size in pages (counter, epoch).
    pub pages: u64,
    /// PRNG seed (epoch).
    pub seed: u64,
    /// Page writes per epoch (epoch).
    pub writes: u64,
    /// Timer period in ns (epoch).
    pub period_ns: u64,
    /// Role (pingpong).
    pub role: Option<Role>,
    /// Peer domain id (pingpong).
    pub peer: Option<u16>,
    /// A deliberate deviation from the PV protocol (`hostile=`), for testing what the
    /// toolstack does about it.
    pub hostile: Option<Hostile>,
}

/// Deliberate protocol violations a toy guest can be built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hostile {
    /// `keep-shinfo`: suspends without dropping its mapping of shared_info (a frame
    /// that is not the guest's), so a saver finds a foreign frame in its page tables.
    KeepSharedInfo,
}

impl Hostile {
    /// The `hostile=` value.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Hostile::KeepSharedInfo => "keep-shinfo",
        }
    }
}

impl ToyParams {
    /// The defaults of `guest` (pingpong's are incomplete: it needs `role`).
    #[must_use]
    pub fn defaults(guest: Guest) -> ToyParams {
        ToyParams {
            guest,
            steps: 0,
            report: guest.default_report(),
            pages: 64,
            seed: 1,
            writes: 16,
            period_ns: 1_000_000,
            role: None,
            peer: None,
            hostile: None,
        }
    }

    /// Parses `extra` for `guest`.
    ///
    /// # Errors
    /// [`ToyError::Malformed`], [`ToyError::UnknownKey`], [`ToyError::DuplicateKey`],
    /// [`ToyError::BadValue`] or [`ToyError::MissingKey`].
    pub fn parse(guest: Guest, extra: &str) -> Result<ToyParams, ToyError> {
        let mut p = ToyParams::defaults(guest);
        let mut seen: Vec<&str> = Vec::new();
        for tok in extra.split_ascii_whitespace() {
            let (key, value) = tok.split_once('=').ok_or_else(|| ToyError::Malformed {
                token: tok.to_string(),
            })?;
            if !guest.keys().contains(&key) {
                return Err(ToyError::UnknownKey {
                    guest: guest.name(),
                    key: key.to_string(),
                });
            }
            if seen.contains(&key) {
                return Err(ToyError::DuplicateKey {
                    key: key.to_string(),
                });
            }
            seen.push(key);
            let bad = |reason: &'static str| ToyError::BadValue {
                key: key.to_string(),
                value: value.to_string(),
                reason,
            };
            let num = |lo: u64, hi: u64, reason: &'static str| -> Result<u64, ToyError> {
                let v: u64 = value.parse().map_err(|_| bad("not a decimal number"))?;
                if v < lo || v > hi {
                    return Err(bad(reason));
                }
                Ok(v)
            };
            match key {
                "steps" => p.steps = num(0, u64::MAX >> 1, "must be below 2^63")?,
                "report" => p.report = num(0, u64::MAX >> 1, "must be below 2^63")?,
                "pages" => p.pages = num(1, 8192, "must be 1..=8192")?,
                "seed" => p.seed = num(0, u64::MAX, "")?,
                "writes" => p.writes = num(1, 4096, "must be 1..=4096")?,
                "period_ns" => p.period_ns = num(1000, 1_000_000_000_000, "must be 1000..=10^12")?,
                "role" => {
                    p.role = Some(match value {
                        "ping" => Role::Ping,
                        "pong" => Role::Pong,
                        _ => return Err(bad("must be ping or pong")),
                    });
                }
                "hostile" => {
                    p.hostile = Some(match value {
                        "keep-shinfo" => Hostile::KeepSharedInfo,
                        _ => return Err(bad("must be keep-shinfo")),
                    });
                }
                "peer" => p.peer = Some(num(1, 0x7fef, "must be a domain id 1..=32751")? as u16),
                _ => unreachable!("key list checked above"),
            }
        }
        if guest == Guest::Pingpong {
            match p.role {
                None => {
                    return Err(ToyError::MissingKey {
                        guest: guest.name(),
                        key: "role",
                    })
                }
                Some(Role::Pong) if p.peer.is_none() => {
                    return Err(ToyError::MissingKey {
                        guest: guest.name(),
                        key: "peer",
                    })
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// The parameters in canonical `key=value` form (every key the guest takes, in a
    /// fixed order), so equal parameters print equally.
    #[must_use]
    pub fn canonical(&self) -> String {
        let mut out = vec![
            format!("steps={}", self.steps),
            format!("report={}", self.report),
        ];
        if let Some(h) = self.hostile {
            out.push(format!("hostile={}", h.name()));
        }
        match self.guest {
            Guest::Counter => out.push(format!("pages={}", self.pages)),
            Guest::Epoch => {
                out.push(format!("pages={}", self.pages));
                out.push(format!("seed={}", self.seed));
                out.push(format!("writes={}", self.writes));
                out.push(format!("period_ns={}", self.period_ns));
            }
            Guest::Pagetable => {}
            Guest::Checksum => {
                out.push(format!("pages={}", self.pages));
                out.push(format!("seed={}", self.seed));
            }
            Guest::Pingpong => {
                if let Some(r) = self.role {
                    out.push(format!("role={}", r.name()));
                }
                if let Some(d) = self.peer {
                    out.push(format!("peer={d}"));
                }
            }
        }
        out.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values() {
        let p = ToyParams::parse(Guest::Counter, "").unwrap();
        assert_eq!(p.pages, 64);
        assert_eq!(p.report, 4096);
        let p =
            ToyParams::parse(Guest::Epoch, " seed=7  pages=12 writes=3 period_ns=5000 ").unwrap();
        assert_eq!((p.seed, p.pages, p.writes, p.period_ns), (7, 12, 3, 5000));
        let p = ToyParams::parse(Guest::Pingpong, "role=pong peer=3").unwrap();
        assert_eq!((p.role, p.peer), (Some(Role::Pong), Some(3)));
        let p = ToyParams::parse(Guest::Pingpong, "role=ping").unwrap();
        assert_eq!(p.peer, None);
        assert_eq!(p.canonical(), "steps=0 report=100 role=ping");
    }

    #[test]
    fn errors_name_the_key() {
        let e = ToyParams::parse(Guest::Counter, "pages=4 seed=1").unwrap_err();
        assert!(
            matches!(&e, ToyError::UnknownKey { key, .. } if key == "seed"),
            "{e}"
        );
        assert!(e.to_string().contains("seed"));
        let e = ToyParams::parse(Guest::Counter, "pages=0").unwrap_err();
        assert!(
            matches!(&e, ToyError::BadValue { key, .. } if key == "pages"),
            "{e}"
        );
        let e = ToyParams::parse(Guest::Counter, "pages=x").unwrap_err();
        assert!(e.to_string().contains("pages"), "{e}");
        let e = ToyParams::parse(Guest::Counter, "pages").unwrap_err();
        assert!(matches!(e, ToyError::Malformed { .. }));
        let e = ToyParams::parse(Guest::Counter, "pages=1 pages=2").unwrap_err();
        assert!(matches!(e, ToyError::DuplicateKey { .. }));
        let e = ToyParams::parse(Guest::Pingpong, "peer=1").unwrap_err();
        assert!(matches!(e, ToyError::MissingKey { key: "role", .. }));
        let e = ToyParams::parse(Guest::Pingpong, "role=pong").unwrap_err();
        assert!(matches!(e, ToyError::MissingKey { key: "peer", .. }));
        let e = ToyParams::parse(Guest::Pingpong, "role=pang").unwrap_err();
        assert!(matches!(&e, ToyError::BadValue { key, .. } if key == "role"));
        let e = ToyParams::parse(Guest::Pagetable, "pages=3").unwrap_err();
        assert!(matches!(e, ToyError::UnknownKey { .. }));
        let e = ToyParams::parse(Guest::Counter, "hostile=yes").unwrap_err();
        assert!(matches!(&e, ToyError::BadValue { key, .. } if key == "hostile"));
    }

    #[test]
    fn hostile_variants() {
        let p = ToyParams::parse(Guest::Pagetable, "hostile=keep-shinfo").unwrap();
        assert_eq!(p.hostile, Some(Hostile::KeepSharedInfo));
        assert_eq!(p.canonical(), "steps=0 report=10 hostile=keep-shinfo");
        let plain = ToyParams::parse(Guest::Pagetable, "").unwrap();
        assert_eq!(plain.canonical(), "steps=0 report=10");
        // A different image: the suspend path lacks the unmap.
        assert_ne!(
            crate::build(&p).unwrap().bytes,
            crate::build(&plain).unwrap().bytes
        );
    }
}
