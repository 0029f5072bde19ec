//! `epoch`: the KVM dirty-log-test workload.
//!
//! Epoch `e` (1, 2, ...) writes the u64 `e` at offset 0 of `writes` region pages chosen
//! by a seeded splitmix64 stream, then sets the step counter to `e`; the guest then
//! waits for its singleshot timer (`VCPUOP_set_singleshot_timer`, `period_ns` after
//! the end of the epoch, delivered as `VIRQ_TIMER`) and re-arms it. Page choice for
//! epoch `e`: `state = seed ^ (e * 0x9e3779b97f4a7c15)`, then `writes` times
//! `state += 0x9e3779b97f4a7c15; z = mix(state)` (splitmix64's finaliser), page
//! `z % pages`. Timing never changes the data: only how fast epochs come.
//!
//! Region: `pages` pages from PFN [`PG_GUEST`]; page `i` holds the last epoch that chose
//! it (0 if none) in its first 8 bytes, zeros elsewhere. Status counter
//! [`ST_GUEST0`] counts timer events (timing-dependent, not part of the oracle).
//! Console: `epoch: start <params>`, `epoch: epoch <e>` every `report` epochs.

use std::collections::{BTreeMap, BTreeSet};

use iced_x86::code_asm::*;

use hypervisor::abi::evtchn::VIRQ_TIMER;
use hypervisor::types::Pfn;

use crate::asm::AsmResult;
use crate::layout::*;
use crate::oracle::{read_u64, GuestMemory, OracleError, Status, Stop};
use crate::params::ToyParams;
use crate::runtime::{m64, Gen};

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
const MIX1: u64 = 0xbf58_476d_1ce4_e5b9;
const MIX2: u64 = 0x94d0_49bb_1331_11eb;

pub(crate) fn region_pages(p: &ToyParams) -> u64 {
    p.pages
}

pub(crate) fn emit(x: &mut Gen<'_>) -> AsmResult {
    let (pages, writes, seed, period) = (x.p.pages, x.p.writes, x.p.seed, x.p.period_ns);
    let mut handler = x.x.label();
    let mut bind = x.x.label();
    let mut arm = x.x.label();
    let mut resume = x.x.label();

    let mut l = x.rt.guest_main;
    x.x.set(&mut l)?;
    let canon = x.p.canonical();
    x.print_tagged(&format!("start {canon}\n"))?;
    let a = &mut x.x.a;
    a.mov(m64(g(ST_STATE)), STATE_RUNNING as i32)?;
    a.lea(rax, ptr(resume))?;
    a.mov(m64(g(G_RESUME_HOOK)), rax)?;
    a.call(bind)?;
    a.call(arm)?;
    let mut lp = x.x.label();
    let mut w = x.x.label();
    let mut wait = x.x.label();
    let mut fired = x.x.label();
    x.x.set(&mut lp)?;
    let a = &mut x.x.a;
    a.mov(r12, m64(g(ST_STEPS)))?;
    a.inc(r12)?;
    a.mov(rax, r12)?;
    a.mov(rcx, GOLDEN)?;
    a.imul_2(rax, rcx)?;
    a.mov(rcx, seed)?;
    a.xor(rax, rcx)?;
    a.mov(r13, rax)?;
    a.mov(ebx, writes as u32)?;
    a.set_label(&mut w)?;
    a.mov(rcx, GOLDEN)?;
    a.add(r13, rcx)?;
    a.mov(rax, r13)?;
    a.mov(rdx, rax)?;
    a.shr(rdx, 30)?;
    a.xor(rax, rdx)?;
    a.mov(rcx, MIX1)?;
    a.imul_2(rax, rcx)?;
    a.mov(rdx, rax)?;
    a.shr(rdx, 27)?;
    a.xor(rax, rdx)?;
    a.mov(rcx, MIX2)?;
    a.imul_2(rax, rcx)?;
    a.mov(rdx, rax)?;
    a.shr(rdx, 31)?;
    a.xor(rax, rdx)?;
    a.xor(edx, edx)?;
    a.mov(rcx, pages)?;
    a.div(rcx)?;
    a.shl(rdx, 12)?;
    a.mov(qword_ptr(rdx + va(PG_GUEST) as i32), r12)?;
    a.dec(ebx)?;
    a.jnz(w)?;
    a.mov(m64(g(ST_STEPS)), r12)?;
    x.step_epilogue("epoch")?;
    x.x.set(&mut wait)?;
    let a = &mut x.x.a;
    a.call(x.rt.safe_point)?;
    a.cmp(m64(g(G_TIMER_FIRED)), 0)?;
    a.jne(fired)?;
    a.call(x.rt.wait_event)?;
    a.jmp(wait)?;
    a.set_label(&mut fired)?;
    a.mov(m64(g(G_TIMER_FIRED)), 0)?;
    a.call(arm)?;
    a.jmp(lp)?;

    // Timer VIRQ handler.
    x.x.set(&mut handler)?;
    let a = &mut x.x.a;
    a.mov(m64(g(G_TIMER_FIRED)), 1)?;
    a.inc(m64(g(ST_GUEST0)))?;
    a.ret()?;

    // bind: VIRQ_TIMER on vcpu 0 → handler, unmasked.
    x.x.set(&mut bind)?;
    x.x.a.mov(edi, VIRQ_TIMER)?;
    x.x.a.call(x.rt.bind_virq)?;
    x.check("bind_virq(VIRQ_TIMER)")?;
    let a = &mut x.x.a;
    a.mov(m64(g(G_TIMER_PORT)), rax)?;
    a.mov(edi, eax)?;
    a.lea(rsi, ptr(handler))?;
    a.call(x.rt.register_handler)?;
    a.mov(edi, m32(g(G_TIMER_PORT)))?;
    a.call(x.rt.evtchn_unmask)?;
    x.check_zero("unmask timer port")?;
    x.x.a.ret()?;

    // arm: singleshot timer at now + period.
    x.x.set(&mut arm)?;
    let a = &mut x.x.a;
    a.call(x.rt.xen_clock_ns)?;
    a.mov(rcx, period)?;
    a.add(rax, rcx)?;
    a.mov(rdi, rax)?;
    a.call(x.rt.set_timer)?;
    x.check_zero("set_singleshot_timer")?;
    x.x.a.ret()?;

    // Resumed in a new domain: the VIRQ binding and the timer are gone.
    x.x.set(&mut resume)?;
    let a = &mut x.x.a;
    a.mov(m64(g(G_TIMER_FIRED)), 0)?;
    a.call(bind)?;
    a.jmp(arm)
}

use crate::runtime::m32;

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(MIX1);
    z = (z ^ (z >> 27)).wrapping_mul(MIX2);
    z ^ (z >> 31)
}

/// The oracle of an `epoch` guest.
#[derive(Clone, Debug)]
pub struct EpochOracle {
    params: ToyParams,
}

impl EpochOracle {
    /// The oracle for these parameters.
    #[must_use]
    pub fn new(params: &ToyParams) -> EpochOracle {
        EpochOracle {
            params: params.clone(),
        }
    }

    /// PFN of region page `i`.
    #[must_use]
    pub fn pfn(&self, i: u64) -> Pfn {
        Pfn::new(PG_GUEST + i)
    }

    /// The region pages epoch `e` writes, in order (with repetitions).
    #[must_use]
    pub fn picks(&self, e: u64) -> Vec<u64> {
        let mut state = self.params.seed ^ e.wrapping_mul(GOLDEN);
        (0..self.params.writes)
            .map(|_| {
                state = state.wrapping_add(GOLDEN);
                mix(state) % self.params.pages
            })
            .collect()
    }

    /// Each region page's value after `epochs` epochs.
    #[must_use]
    pub fn expected_values(&self, epochs: u64) -> Vec<u64> {
        let mut v = vec![0; self.params.pages as usize];
        for e in 1..=epochs {
            for p in self.picks(e) {
                v[p as usize] = e;
            }
        }
        v
    }

    /// The region values as found in `mem`.
    ///
    /// # Errors
    /// A missing page, or a nonzero byte past the first 8.
    pub fn read_values(&self, mem: &impl GuestMemory) -> Result<Vec<u64>, OracleError> {
        (0..self.params.pages)
            .map(|i| {
                let pfn = self.pfn(i);
                let page = mem.page(pfn).ok_or(OracleError::MissingPage { pfn })?;
                if let Some(off) = page.iter().skip(8).position(|&b| b != 0) {
                    return Err(OracleError::Mismatch {
                        pfn,
                        offset: off + 8,
                        what: "epoch region byte past the epoch word".into(),
                        expected: 0,
                        found: u64::from(page[off + 8]),
                    });
                }
                read_u64(mem, pfn, 0)
            })
            .collect()
    }

    /// Full check of a stopped guest. With [`Stop::Anywhere`], pages epoch `steps + 1`
    /// writes may already hold `steps + 1`.
    ///
    /// # Errors
    /// The first disagreement.
    pub fn check(&self, mem: &impl GuestMemory, stop: Stop) -> Result<Status, OracleError> {
        let st = Status::read(mem)?;
        let found = self.read_values(mem)?;
        let exp = self.expected_values(st.steps);
        let next: BTreeSet<u64> = if stop == Stop::Anywhere {
            self.picks(st.steps + 1).into_iter().collect()
        } else {
            BTreeSet::new()
        };
        for (i, (&f, &e)) in found.iter().zip(&exp).enumerate() {
            if f != e && !(f == st.steps + 1 && next.contains(&(i as u64))) {
                return Err(OracleError::Mismatch {
                    pfn: self.pfn(i as u64),
                    offset: 0,
                    what: format!("epoch word after {} epochs", st.steps),
                    expected: e,
                    found: f,
                });
            }
        }
        Ok(st)
    }

    /// The KVM dirty-log check: every region page written after epoch `clean_epoch`
    /// (the step count when the dirty log was last cleaned) must be in `dirty`; and no
    /// page may hold an epoch newer than `current`.
    ///
    /// # Errors
    /// [`OracleError::DirtyLog`] naming the page.
    pub fn check_dirty_log(
        &self,
        mem: &impl GuestMemory,
        clean_epoch: u64,
        current: u64,
        dirty: &BTreeSet<Pfn>,
    ) -> Result<(), OracleError> {
        for (i, v) in self.read_values(mem)?.into_iter().enumerate() {
            let pfn = self.pfn(i as u64);
            if v > current {
                return Err(OracleError::DirtyLog(format!(
                    "pfn {pfn} holds epoch {v}, newer than {current}"
                )));
            }
            if v > clean_epoch && !dirty.contains(&pfn) {
                return Err(OracleError::DirtyLog(format!(
                    "pfn {pfn} written in epoch {v} (after the clean at {clean_epoch}) but not reported dirty"
                )));
            }
        }
        Ok(())
    }

    /// The guest region's pages after `epochs` epochs.
    #[must_use]
    pub fn expected_pages(&self, epochs: u64) -> BTreeMap<Pfn, Vec<u8>> {
        self.expected_values(epochs)
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let mut p = vec![0u8; PAGE as usize];
                p[..8].copy_from_slice(&v.to_le_bytes());
                (self.pfn(i as u64), p)
            })
            .collect()
    }

    /// The workload console lines after `steps` epochs.
    #[must_use]
    pub fn expected_console(&self, steps: u64) -> Vec<String> {
        crate::oracle::progress_lines(&self.params, "epoch", steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Guest;

    #[test]
    fn splitmix_matches_the_reference() {
        // splitmix64 with seed 0: the first outputs of the published reference.
        let mut s = 0u64;
        let mut next = || {
            s = s.wrapping_add(GOLDEN);
            mix(s)
        };
        assert_eq!(next(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(next(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn picks_and_values_by_hand() {
        let p = ToyParams::parse(Guest::Epoch, "pages=4 writes=2 seed=0").unwrap();
        let o = EpochOracle::new(&p);
        // Epoch 1 with seed 0 starts from state GOLDEN: outputs 2 and 3 of splitmix64(0).
        let p1 = o.picks(1);
        assert_eq!(
            p1,
            vec![0x6e78_9e6a_a1b9_65f4 % 4, 0x06c4_5d18_8009_454f % 4]
        );
        let v = o.expected_values(1);
        for (i, &x) in v.iter().enumerate() {
            assert_eq!(x, u64::from(p1.contains(&(i as u64))));
        }
        assert_eq!(o.expected_values(0), vec![0; 4]);
    }
}
