//! `counter`: the QEMU migration-test workload.
//!
//! Step `s` (counting from 0) increments the first byte of region page `s % pages`
//! (wrapping at 256), then the step counter. So after `n` steps, page `i` holds
//! `(n / pages + (i < n % pages) as u64) mod 256` in byte 0 and zeros elsewhere; read
//! in page order the bytes never increase, except exactly one step down by one.
//!
//! Region: `pages` pages from PFN [`PG_GUEST`]. Console: `counter: start <params>`,
//! then `counter: step <n>` every `report` steps.

use std::collections::BTreeMap;

use iced_x86::code_asm::*;

use crate::asm::AsmResult;
use crate::layout::*;
use crate::oracle::{GuestMemory, OracleError, Status, Stop};
use crate::params::ToyParams;
use crate::runtime::{m64, Gen};
use hypervisor::types::Pfn;

/// Pages the guest needs after [`PG_GUEST`].
pub(crate) fn region_pages(p: &ToyParams) -> u64 {
    p.pages
}

pub(crate) fn emit(x: &mut Gen<'_>) -> AsmResult {
    let pages = x.p.pages;
    let mut l = x.rt.guest_main;
    x.x.set(&mut l)?;
    let canon = x.p.canonical();
    x.print_tagged(&format!("start {canon}\n"))?;
    x.x.a.mov(m64(g(ST_STATE)), STATE_RUNNING as i32)?;
    let mut lp = x.x.label();
    x.x.set(&mut lp)?;
    let a = &mut x.x.a;
    a.mov(rax, m64(g(ST_STEPS)))?;
    a.xor(edx, edx)?;
    a.mov(ecx, pages as u32)?;
    a.div(rcx)?;
    a.shl(rdx, 12)?;
    a.inc(byte_ptr(rdx + va(PG_GUEST) as i32))?;
    a.inc(m64(g(ST_STEPS)))?;
    x.step_epilogue("step")?;
    x.x.a.call(x.rt.safe_point)?;
    x.x.a.jmp(lp)
}

/// The oracle of a `counter` guest.
#[derive(Clone, Debug)]
pub struct CounterOracle {
    params: ToyParams,
}

impl CounterOracle {
    /// The oracle for these parameters.
    #[must_use]
    pub fn new(params: &ToyParams) -> CounterOracle {
        CounterOracle {
            params: params.clone(),
        }
    }

    /// PFN of region page `i`.
    #[must_use]
    pub fn pfn(&self, i: u64) -> Pfn {
        Pfn::new(PG_GUEST + i)
    }

    /// The first byte of every region page after `steps` steps.
    #[must_use]
    pub fn expected_bytes(&self, steps: u64) -> Vec<u8> {
        let n = self.params.pages;
        (0..n)
            .map(|i| ((steps / n + u64::from(i < steps % n)) % 256) as u8)
            .collect()
    }

    /// The region's first bytes as found in `mem`.
    ///
    /// # Errors
    /// [`OracleError::MissingPage`], or [`OracleError::Mismatch`] if a byte other than
    /// the first of a region page is nonzero.
    pub fn read_bytes(&self, mem: &impl GuestMemory) -> Result<Vec<u8>, OracleError> {
        let mut out = Vec::with_capacity(self.params.pages as usize);
        for i in 0..self.params.pages {
            let pfn = self.pfn(i);
            let page = mem.page(pfn).ok_or(OracleError::MissingPage { pfn })?;
            if let Some(off) = page.iter().skip(1).position(|&b| b != 0) {
                return Err(OracleError::Mismatch {
                    pfn,
                    offset: off + 1,
                    what: "counter region byte other than the first".into(),
                    expected: 0,
                    found: u64::from(page[off + 1]),
                });
            }
            out.push(page[0]);
        }
        Ok(out)
    }

    /// The QEMU check, independent of the step counter: in page order the bytes stay
    /// equal or go down by exactly one (mod 256), at most once.
    ///
    /// # Errors
    /// [`OracleError::NotMonotone`] naming the offending page.
    pub fn check_monotone(&self, bytes: &[u8]) -> Result<(), OracleError> {
        let mut steps_down = 0;
        for (i, w) in bytes.windows(2).enumerate() {
            let (a, b) = (w[0], w[1]);
            if a == b {
                continue;
            }
            if b == a.wrapping_sub(1) && steps_down == 0 {
                steps_down += 1;
                continue;
            }
            return Err(OracleError::NotMonotone {
                pfn: self.pfn(i as u64 + 1),
                prev: a,
                found: b,
            });
        }
        Ok(())
    }

    /// Full check of a stopped guest: status block, monotonicity and exact bytes.
    /// With [`Stop::Anywhere`], the bytes may also be one step ahead of the counter (the
    /// vCPU stopped between the page store and the counter store).
    ///
    /// # Errors
    /// The first disagreement.
    pub fn check(&self, mem: &impl GuestMemory, stop: Stop) -> Result<Status, OracleError> {
        let st = Status::read(mem)?;
        let bytes = self.read_bytes(mem)?;
        self.check_monotone(&bytes)?;
        let exp = self.expected_bytes(st.steps);
        if bytes == exp {
            return Ok(st);
        }
        if stop == Stop::Anywhere && bytes == self.expected_bytes(st.steps + 1) {
            return Ok(st);
        }
        let i = bytes
            .iter()
            .zip(&exp)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        Err(OracleError::Mismatch {
            pfn: self.pfn(i as u64),
            offset: 0,
            what: format!("counter byte after {} steps", st.steps),
            expected: u64::from(exp[i]),
            found: u64::from(bytes[i]),
        })
    }

    /// The guest region's pages after `steps` steps.
    #[must_use]
    pub fn expected_pages(&self, steps: u64) -> BTreeMap<Pfn, Vec<u8>> {
        self.expected_bytes(steps)
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let mut p = vec![0u8; PAGE as usize];
                p[0] = b;
                (self.pfn(i as u64), p)
            })
            .collect()
    }

    /// The workload console lines after `steps` steps (no suspend/resume lines).
    #[must_use]
    pub fn expected_console(&self, steps: u64) -> Vec<String> {
        crate::oracle::progress_lines(&self.params, "step", steps)
    }
}
