//! What the oracles share: guest memory by PFN, the status block, console checking.
//!
//! Every guest prints `<name>: start <params>` first, then workload lines (each guest's
//! oracle predicts them from the step count), and around every suspend the protocol
//! lines `<name>: suspending`, then `<name>: resumed <n>` (new domain, n-th time) or
//! `<name>: suspend cancelled <n>`. [`check_console`] separates the two kinds, compares
//! the workload lines exactly and checks the protocol lines against the status block.

use std::collections::BTreeMap;

use hypervisor::types::Pfn;

use crate::layout::*;
use crate::params::ToyParams;

/// Guest memory by PFN, as a harness or a saver sees it (4 KiB pages).
pub trait GuestMemory {
    /// The page at `pfn`, if the guest has one.
    fn page(&self, pfn: Pfn) -> Option<&[u8]>;
}

impl GuestMemory for BTreeMap<Pfn, Vec<u8>> {
    fn page(&self, pfn: Pfn) -> Option<&[u8]> {
        self.get(&pfn).map(Vec::as_slice)
    }
}

impl GuestMemory for BTreeMap<u64, Vec<u8>> {
    fn page(&self, pfn: Pfn) -> Option<&[u8]> {
        self.get(&pfn.get()).map(Vec::as_slice)
    }
}

/// Pages indexed by PFN.
impl GuestMemory for Vec<Vec<u8>> {
    fn page(&self, pfn: Pfn) -> Option<&[u8]> {
        self.get(pfn.index()).map(Vec::as_slice)
    }
}

impl<T: GuestMemory + ?Sized> GuestMemory for &T {
    fn page(&self, pfn: Pfn) -> Option<&[u8]> {
        (**self).page(pfn)
    }
}

/// Where the guest was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// At a safe point: inside the suspend hypercall (a saved image), blocked, or
    /// powered off after `steps=`. Memory and console match the step counter exactly.
    SafePoint,
    /// At an arbitrary instruction: one step may be half done (memory one step ahead of
    /// the counter, a progress line missing or cut short).
    Anywhere,
}

/// Why an oracle rejected a guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OracleError {
    /// The memory has no page at this PFN.
    #[error("guest memory has no page at pfn {pfn}")]
    MissingPage {
        /// The PFN.
        pfn: Pfn,
    },
    /// The status block is not there.
    #[error("status block at pfn {pfn}: bad magic {found:#x} (guest never started?)")]
    BadMagic {
        /// The status PFN.
        pfn: Pfn,
        /// What was found.
        found: u64,
    },
    /// The guest crashed itself.
    #[error("guest crashed itself (state {state}), error value {error}")]
    Crashed {
        /// `ST_STATE`.
        state: u64,
        /// `ST_ERROR` as a signed value.
        error: i64,
    },
    /// A value differs from the prediction.
    #[error("pfn {pfn} offset {offset:#x}: {what}: expected {expected:#x}, found {found:#x}")]
    Mismatch {
        /// The PFN.
        pfn: Pfn,
        /// Byte offset in the page.
        offset: usize,
        /// What the value is.
        what: String,
        /// Predicted.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// The counter region is not monotone with one step down.
    #[error("counter region not monotone at pfn {pfn}: {found} after {prev}")]
    NotMonotone {
        /// The first page that breaks the pattern.
        pfn: Pfn,
        /// The byte of the page before it.
        prev: u8,
        /// Its byte.
        found: u8,
    },
    /// A workload console line differs.
    #[error("console workload line {index}: expected {expected:?}, found {found:?}")]
    Console {
        /// Index among the workload lines.
        index: usize,
        /// Predicted (empty: no more lines expected).
        expected: String,
        /// Found (empty: line missing).
        found: String,
    },
    /// The suspend/resume lines disagree with the status block or with each other.
    #[error("console suspend/resume lines: {0}")]
    Protocol(String),
    /// A dirty page was not reported by log-dirty, or similar (epoch).
    #[error("dirty log: {0}")]
    DirtyLog(String),
    /// Pingpong counts are impossible.
    #[error("pingpong counts: {0}")]
    Counts(String),
}

/// Reads a little-endian u64 from guest memory.
///
/// # Errors
/// [`OracleError::MissingPage`].
pub fn read_u64(mem: &impl GuestMemory, pfn: Pfn, offset: usize) -> Result<u64, OracleError> {
    let page = mem.page(pfn).ok_or(OracleError::MissingPage { pfn })?;
    let b = page
        .get(offset..offset + 8)
        .ok_or(OracleError::MissingPage { pfn })?;
    Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// The status block (see [`crate::layout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Status {
    /// Workload steps completed.
    pub steps: u64,
    /// Resumes in a new domain.
    pub resumes: u64,
    /// Cancelled suspends.
    pub cancels: u64,
    /// Suspend hypercalls made.
    pub suspends: u64,
    /// `STATE_*`.
    pub state: u64,
    /// Error value of a crash.
    pub error: u64,
    /// Guest-specific counters 0..4.
    pub guest: [u64; 4],
}

impl Status {
    /// PFN of the status block.
    pub const PFN: Pfn = Pfn::new(PG_GLOBALS);

    /// Reads the status block; a crashed guest is an error.
    ///
    /// # Errors
    /// [`OracleError::MissingPage`], [`OracleError::BadMagic`], [`OracleError::Crashed`].
    pub fn read(mem: &impl GuestMemory) -> Result<Status, OracleError> {
        let st = Status::read_raw(mem)?;
        if st.state == STATE_CRASHED {
            return Err(OracleError::Crashed {
                state: st.state,
                error: st.error as i64,
            });
        }
        Ok(st)
    }

    /// Reads the status block whatever the state.
    ///
    /// # Errors
    /// [`OracleError::MissingPage`], [`OracleError::BadMagic`].
    pub fn read_raw(mem: &impl GuestMemory) -> Result<Status, OracleError> {
        let r = |off: u64| read_u64(mem, Status::PFN, off as usize);
        let magic = r(ST_MAGIC)?;
        if magic != STATUS_MAGIC {
            return Err(OracleError::BadMagic {
                pfn: Status::PFN,
                found: magic,
            });
        }
        Ok(Status {
            steps: r(ST_STEPS)?,
            resumes: r(ST_RESUMES)?,
            cancels: r(ST_CANCELS)?,
            suspends: r(ST_SUSPENDS)?,
            state: r(ST_STATE)?,
            error: r(ST_ERROR)?,
            guest: [r(ST_GUEST0)?, r(ST_GUEST1)?, r(ST_GUEST2)?, r(ST_GUEST3)?],
        })
    }
}

/// The start line and the progress lines `"<name>: <word> <s>"` for every multiple `s`
/// of `report` up to `steps`, and `"<name>: done <steps>"` if the limit was reached.
#[must_use]
pub fn progress_lines(p: &ToyParams, word: &str, steps: u64) -> Vec<String> {
    let name = p.guest.name();
    let mut v = vec![format!("{name}: start {}", p.canonical())];
    if p.report != 0 {
        let mut s = p.report;
        while s <= steps {
            v.push(format!("{name}: {word} {s}"));
            s += p.report;
        }
    }
    if p.steps != 0 && steps >= p.steps {
        v.push(format!("{name}: done {steps}"));
    }
    v
}

/// Splits `console` into lines; the last element is `Some(partial)` if the text does
/// not end in a newline.
fn split_lines(console: &str) -> (Vec<&str>, Option<&str>) {
    let mut lines: Vec<&str> = console.split('\n').collect();
    let last = lines.pop().filter(|s| !s.is_empty());
    (lines, last)
}

/// Checks a console transcript: the workload lines must be `expected` (with
/// [`Stop::Anywhere`], `expected_next` — the prediction one step later — is also
/// accepted, a line may be missing at the end, and the last line may be cut short),
/// and the suspend/resume lines must follow the protocol and agree with `status`.
///
/// # Errors
/// [`OracleError::Console`] or [`OracleError::Protocol`].
pub fn check_console(
    name: &str,
    console: &str,
    status: &Status,
    stop: Stop,
    expected: &[String],
    expected_next: &[String],
) -> Result<(), OracleError> {
    let (lines, partial) = split_lines(console);
    if partial.is_some() && stop == Stop::SafePoint {
        return Err(OracleError::Protocol(format!(
            "unterminated last line {partial:?}"
        )));
    }
    let suspending = format!("{name}: suspending");
    let resumed = format!("{name}: resumed ");
    let cancelled = format!("{name}: suspend cancelled ");
    let mut work: Vec<&str> = Vec::new();
    let (mut n_susp, mut n_res, mut n_can) = (0u64, 0u64, 0u64);
    let mut open = false;
    for l in &lines {
        if *l == suspending {
            if open {
                return Err(OracleError::Protocol(
                    "two suspending lines without a resume".into(),
                ));
            }
            open = true;
            n_susp += 1;
        } else if let Some(k) = l.strip_prefix(&resumed) {
            n_res += 1;
            if !open || k != n_res.to_string() {
                return Err(OracleError::Protocol(format!("unexpected {l:?}")));
            }
            open = false;
        } else if let Some(k) = l.strip_prefix(&cancelled) {
            n_can += 1;
            if !open || k != n_can.to_string() {
                return Err(OracleError::Protocol(format!("unexpected {l:?}")));
            }
            open = false;
        } else {
            work.push(l);
        }
    }
    if n_res != status.resumes || n_can != status.cancels {
        return Err(OracleError::Protocol(format!(
            "{n_res} resumed / {n_can} cancelled lines, status says {} / {}",
            status.resumes, status.cancels
        )));
    }
    let unresolved = status.suspends.checked_sub(status.resumes + status.cancels);
    let ok_susp = match (unresolved, stop) {
        (Some(u @ 0..=1), _) if n_susp == status.suspends => u == u64::from(open),
        // The line is printed before the counter moves.
        (Some(0), Stop::Anywhere) => n_susp == status.suspends + 1 && open,
        _ => false,
    };
    if !ok_susp {
        return Err(OracleError::Protocol(format!(
            "{n_susp} suspending lines (last open: {open}); status: {} suspends, {} resumes, {} cancels",
            status.suspends, status.resumes, status.cancels
        )));
    }
    let cmp = |exp: &[String], allow_short: bool| -> Result<(), OracleError> {
        for (i, e) in exp.iter().enumerate() {
            match work.get(i) {
                Some(f) if *f == e => {}
                None if allow_short && i + 1 == exp.len() => {
                    if let Some(p) = partial {
                        if !e.starts_with(p) {
                            return Err(OracleError::Console {
                                index: i,
                                expected: e.clone(),
                                found: p.into(),
                            });
                        }
                    }
                }
                f => {
                    return Err(OracleError::Console {
                        index: i,
                        expected: e.clone(),
                        found: f.map(|s| (*s).to_string()).unwrap_or_default(),
                    })
                }
            }
        }
        if work.len() > exp.len() {
            return Err(OracleError::Console {
                index: exp.len(),
                expected: String::new(),
                found: work[exp.len()].to_string(),
            });
        }
        Ok(())
    };
    match stop {
        Stop::SafePoint => cmp(expected, false),
        Stop::Anywhere => cmp(expected, true).or_else(|e| cmp(expected_next, true).map_err(|_| e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Guest;

    fn st(susp: u64, res: u64, can: u64) -> Status {
        Status {
            suspends: susp,
            resumes: res,
            cancels: can,
            ..Status::default()
        }
    }

    #[test]
    fn progress_lines_by_hand() {
        let mut p = ToyParams::parse(Guest::Counter, "pages=2 report=3 steps=7").unwrap();
        assert_eq!(
            progress_lines(&p, "step", 7),
            [
                "counter: start steps=7 report=3 pages=2",
                "counter: step 3",
                "counter: step 6",
                "counter: done 7"
            ]
        );
        p.report = 0;
        assert_eq!(progress_lines(&p, "step", 2).len(), 1);
    }

    #[test]
    fn console_protocol() {
        let exp: Vec<String> = vec!["c: start x".into(), "c: step 3".into()];
        let next = exp.clone();
        let ok = "c: start x\nc: suspending\nc: suspend cancelled 1\nc: step 3\nc: suspending\nc: resumed 1\n";
        check_console("c", ok, &st(2, 1, 1), Stop::SafePoint, &exp, &next).unwrap();
        // Saved image: one open suspend.
        let saved = "c: start x\nc: step 3\nc: suspending\n";
        check_console("c", saved, &st(1, 0, 0), Stop::SafePoint, &exp, &next).unwrap();
        // Counts disagree.
        assert!(check_console("c", saved, &st(1, 1, 0), Stop::SafePoint, &exp, &next).is_err());
        // Resume without suspend.
        let bad = "c: start x\nc: resumed 1\nc: step 3\n";
        assert!(check_console("c", bad, &st(1, 1, 0), Stop::SafePoint, &exp, &next).is_err());
        // Wrong workload line.
        let bad = "c: start x\nc: step 4\n";
        assert!(matches!(
            check_console("c", bad, &st(0, 0, 0), Stop::SafePoint, &exp, &next),
            Err(OracleError::Console { index: 1, .. })
        ));
        // Cut short, accepted only anywhere.
        let cut = "c: start x\nc: st";
        assert!(check_console("c", cut, &st(0, 0, 0), Stop::SafePoint, &exp, &next).is_err());
        check_console("c", cut, &st(0, 0, 0), Stop::Anywhere, &exp, &next).unwrap();
        // Extra line.
        let extra = "c: start x\nc: step 3\nc: error: x 1\n";
        assert!(check_console("c", extra, &st(0, 0, 0), Stop::SafePoint, &exp, &next).is_err());
    }
}
