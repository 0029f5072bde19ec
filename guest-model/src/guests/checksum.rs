//! `checksum`: fills memory from a seeded PRNG, keeps running checksums, and verifies
//! its whole region after every resume in a new domain.
//!
//! Step `s` (1, 2, ...) writes `x_s = mix(seed ^ s·φ)` (splitmix64's finaliser, φ =
//! 0x9e3779b97f4a7c15) into word `w = (s − 1) mod (512·pages)` of the region (words in
//! page order, 8 bytes each, wrapping round), then keeps two wrapping sums in the
//! status block: [`ST_GUEST0`] = the sum of every word of the region now (updated by
//! `new − old`), [`ST_GUEST1`] = the sum of every `x_s` written so far. After each
//! resume in a new domain (the runtime's resume hook) it sums the region again and
//! compares with [`ST_GUEST0`]: [`ST_GUEST2`] counts these verifications,
//! [`ST_GUEST3`] the ones that failed, and it prints `checksum: verify ok` or
//! `checksum: verify BAD` (between `suspending` and `resumed <n>`).
//!
//! Console: `checksum: start <params>`, `checksum: step <s>` every `report` steps.

use std::collections::BTreeMap;

use iced_x86::code_asm::*;

use hypervisor::types::Pfn;

use crate::asm::AsmResult;
use crate::layout::*;
use crate::oracle::{read_u64, GuestMemory, OracleError, Status, Stop};
use crate::params::ToyParams;
use crate::runtime::{m64, Gen};

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
const MIX1: u64 = 0xbf58_476d_1ce4_e5b9;
const MIX2: u64 = 0x94d0_49bb_1331_11eb;
const WORDS_PER_PAGE: u64 = PAGE / 8;

pub(crate) fn region_pages(p: &ToyParams) -> u64 {
    p.pages
}

pub(crate) fn emit(x: &mut Gen<'_>) -> AsmResult {
    let (pages, seed) = (x.p.pages, x.p.seed);
    let words = pages * WORDS_PER_PAGE;
    let mut resume = x.x.label();
    let mut l = x.rt.guest_main;
    x.x.set(&mut l)?;
    let canon = x.p.canonical();
    x.print_tagged(&format!("start {canon}\n"))?;
    let a = &mut x.x.a;
    a.mov(m64(g(ST_STATE)), STATE_RUNNING as i32)?;
    a.lea(rax, ptr(resume))?;
    a.mov(m64(g(G_RESUME_HOOK)), rax)?;
    let mut lp = x.x.label();
    x.x.set(&mut lp)?;
    let a = &mut x.x.a;
    // r12 = s, r13 = x_s.
    a.mov(r12, m64(g(ST_STEPS)))?;
    a.inc(r12)?;
    a.mov(rax, r12)?;
    a.mov(rcx, GOLDEN)?;
    a.imul_2(rax, rcx)?;
    a.mov(rcx, seed)?;
    a.xor(rax, rcx)?;
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
    a.mov(r13, rax)?;
    // w = (s - 1) mod words; rbx = its address.
    a.mov(rax, r12)?;
    a.dec(rax)?;
    a.xor(edx, edx)?;
    a.mov(rcx, words)?;
    a.div(rcx)?;
    a.shl(rdx, 3)?;
    a.lea(rbx, qword_ptr(rdx + va(PG_GUEST) as i32))?;
    a.mov(rax, qword_ptr(rbx))?;
    a.mov(qword_ptr(rbx), r13)?;
    a.mov(rcx, r13)?;
    a.sub(rcx, rax)?;
    a.add(m64(g(ST_GUEST0)), rcx)?;
    a.add(m64(g(ST_GUEST1)), r13)?;
    a.mov(m64(g(ST_STEPS)), r12)?;
    x.step_epilogue("step")?;
    x.x.a.call(x.rt.safe_point)?;
    x.x.a.jmp(lp)?;

    // Resumed in a new domain: sum the region and compare.
    x.x.set(&mut resume)?;
    let mut vl = x.x.label();
    let mut bad = x.x.label();
    let a = &mut x.x.a;
    a.push(rbx)?;
    a.xor(eax, eax)?;
    a.mov(ebx, va(PG_GUEST) as u32)?;
    a.mov(rcx, words)?;
    a.set_label(&mut vl)?;
    a.add(rax, qword_ptr(rbx))?;
    a.add(rbx, 8)?;
    a.dec(rcx)?;
    a.jnz(vl)?;
    a.inc(m64(g(ST_GUEST2)))?;
    a.cmp(rax, m64(g(ST_GUEST0)))?;
    a.jne(bad)?;
    x.print_tagged("verify ok\n")?;
    x.x.a.pop(rbx)?;
    x.x.a.ret()?;
    x.x.set(&mut bad)?;
    x.x.a.inc(m64(g(ST_GUEST3)))?;
    x.print_tagged("verify BAD\n")?;
    x.x.a.pop(rbx)?;
    x.x.a.ret()
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(MIX1);
    z = (z ^ (z >> 27)).wrapping_mul(MIX2);
    z ^ (z >> 31)
}

/// The oracle of a `checksum` guest.
#[derive(Clone, Debug)]
pub struct ChecksumOracle {
    params: ToyParams,
}

impl ChecksumOracle {
    /// The oracle for these parameters.
    #[must_use]
    pub fn new(params: &ToyParams) -> ChecksumOracle {
        ChecksumOracle {
            params: params.clone(),
        }
    }

    fn words(&self) -> u64 {
        self.params.pages * WORDS_PER_PAGE
    }

    /// The value step `s` writes.
    #[must_use]
    pub fn value(&self, s: u64) -> u64 {
        mix(self.params.seed ^ s.wrapping_mul(GOLDEN))
    }

    /// Every region word after `steps` steps.
    #[must_use]
    pub fn expected_words(&self, steps: u64) -> Vec<u64> {
        let n = self.words();
        (0..n)
            .map(|w| {
                if steps <= w {
                    0
                } else {
                    // The last s ≤ steps with (s - 1) mod n == w.
                    self.value(w + 1 + (steps - 1 - w) / n * n)
                }
            })
            .collect()
    }

    /// The running sum of every value written in `steps` steps.
    #[must_use]
    pub fn expected_written_sum(&self, steps: u64) -> u64 {
        (1..=steps).fold(0u64, |a, s| a.wrapping_add(self.value(s)))
    }

    fn read_words(&self, mem: &impl GuestMemory) -> Result<Vec<u64>, OracleError> {
        let mut out = Vec::with_capacity(self.words() as usize);
        for p in 0..self.params.pages {
            let pfn = Pfn::new(PG_GUEST + p);
            for w in 0..WORDS_PER_PAGE {
                out.push(read_u64(mem, pfn, (w * 8) as usize)?);
            }
        }
        Ok(out)
    }

    /// Full check: every region word; at a safe point also both running sums and the
    /// verifications (one per resume, none failed). With [`Stop::Anywhere`] the memory
    /// may be one step ahead and the sums are not checked.
    ///
    /// # Errors
    /// The first disagreement.
    pub fn check(&self, mem: &impl GuestMemory, stop: Stop) -> Result<Status, OracleError> {
        let st = Status::read(mem)?;
        let found = self.read_words(mem)?;
        let exp = self.expected_words(st.steps);
        if found != exp && !(stop == Stop::Anywhere && found == self.expected_words(st.steps + 1)) {
            let i = found
                .iter()
                .zip(&exp)
                .position(|(a, b)| a != b)
                .unwrap_or(0) as u64;
            return Err(OracleError::Mismatch {
                pfn: Pfn::new(PG_GUEST + i / WORDS_PER_PAGE),
                offset: ((i % WORDS_PER_PAGE) * 8) as usize,
                what: format!("checksum word after {} steps", st.steps),
                expected: exp[i as usize],
                found: found[i as usize],
            });
        }
        let mismatch = |what: &str, off: u64, expected: u64, found: u64| OracleError::Mismatch {
            pfn: Status::PFN,
            offset: off as usize,
            what: what.into(),
            expected,
            found,
        };
        if st.guest[3] != 0 {
            return Err(mismatch("failed verifications", ST_GUEST3, 0, st.guest[3]));
        }
        if stop == Stop::SafePoint {
            let sum = exp.iter().fold(0u64, |a, &w| a.wrapping_add(w));
            if st.guest[0] != sum {
                return Err(mismatch("region checksum", ST_GUEST0, sum, st.guest[0]));
            }
            let written = self.expected_written_sum(st.steps);
            if st.guest[1] != written {
                return Err(mismatch(
                    "written checksum",
                    ST_GUEST1,
                    written,
                    st.guest[1],
                ));
            }
            if st.guest[2] != st.resumes {
                return Err(mismatch(
                    "verifications",
                    ST_GUEST2,
                    st.resumes,
                    st.guest[2],
                ));
            }
        } else if st.guest[2] > st.resumes || st.guest[2] + 1 < st.resumes {
            return Err(mismatch(
                "verifications",
                ST_GUEST2,
                st.resumes,
                st.guest[2],
            ));
        }
        Ok(st)
    }

    /// The guest region's pages after `steps` steps.
    #[must_use]
    pub fn expected_pages(&self, steps: u64) -> BTreeMap<Pfn, Vec<u8>> {
        let words = self.expected_words(steps);
        words
            .chunks(WORDS_PER_PAGE as usize)
            .enumerate()
            .map(|(p, ws)| {
                let page: Vec<u8> = ws.iter().flat_map(|w| w.to_le_bytes()).collect();
                (Pfn::new(PG_GUEST + p as u64), page)
            })
            .collect()
    }

    /// The workload console lines after `steps` steps (without the verify lines, see
    /// [`ChecksumOracle::split_verify_lines`]).
    #[must_use]
    pub fn expected_console(&self, steps: u64) -> Vec<String> {
        crate::oracle::progress_lines(&self.params, "step", steps)
    }

    /// Removes the `checksum: verify ...` lines from a transcript; returns the rest and
    /// how many said `ok`.
    ///
    /// # Errors
    /// [`OracleError::Protocol`] for a `verify BAD` line.
    pub fn split_verify_lines(console: &str) -> Result<(String, u64), OracleError> {
        let mut ok = 0;
        let mut rest = String::with_capacity(console.len());
        for line in console.split_inclusive('\n') {
            match line {
                "checksum: verify ok\n" => ok += 1,
                "checksum: verify BAD\n" => {
                    return Err(OracleError::Protocol(
                        "the guest found its memory changed across a resume".into(),
                    ))
                }
                _ => rest.push_str(line),
            }
        }
        Ok((rest, ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Guest;

    #[test]
    fn words_by_hand() {
        let p = ToyParams::parse(Guest::Checksum, "pages=1 seed=3").unwrap();
        let o = ChecksumOracle::new(&p);
        assert_eq!(o.expected_words(0), vec![0; 512]);
        let w = o.expected_words(2);
        assert_eq!((w[0], w[1], w[2]), (o.value(1), o.value(2), 0));
        // 514 steps: words 0 and 1 overwritten by steps 513 and 514.
        let w = o.expected_words(514);
        assert_eq!((w[0], w[1], w[2]), (o.value(513), o.value(514), o.value(3)));
        assert_eq!(w[511], o.value(512));
        assert_ne!(o.value(1), o.value(2));
        assert_eq!(
            o.expected_written_sum(2),
            o.value(1).wrapping_add(o.value(2))
        );
        let (rest, ok) = ChecksumOracle::split_verify_lines(
            "checksum: start x\nchecksum: suspending\nchecksum: verify ok\nchecksum: resumed 1\n",
        )
        .unwrap();
        assert_eq!(ok, 1);
        assert_eq!(
            rest,
            "checksum: start x\nchecksum: suspending\nchecksum: resumed 1\n"
        );
        assert!(ChecksumOracle::split_verify_lines("checksum: verify BAD\n").is_err());
    }
}
