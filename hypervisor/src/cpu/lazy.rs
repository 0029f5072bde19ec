//! Lazy arithmetic flags.
//!
//! The common flag producers (add adc sub sbb cmp and or xor test inc dec neg, cmpxchg,
//! xadd, cmps/scas) record their operands and result here instead of computing six flags
//! that the next instruction usually overwrites. Consumers ask for what they need: a
//! condition code evaluates only the flags it reads ([`Lazy::cond`]), adc/sbb only CF, and
//! anything else materialises RFLAGS ([`Lazy::materialize`]). The rules are the ones of
//! [`super::flags`] (the differential tests check both paths against the host).

use super::flags::{self, AF, ARITH, CF, OF, PF, SF, ZF};

/// Pending-flags kinds (high bits of [`Lazy::op`]; the low two bits are log2 of the
/// operand size in bytes).
pub(crate) mod kind {
    /// Nothing pending: RFLAGS holds the truth.
    pub const NONE: u8 = 0;
    /// `a + b` (add, xadd).
    pub const ADD: u8 = 1 << 2;
    /// `a + b + 1` (adc with CF set; adc with CF clear is ADD).
    pub const ADC1: u8 = 2 << 2;
    /// `a - b` (sub, cmp, neg as 0 - b, cmpxchg, cmps, scas).
    pub const SUB: u8 = 3 << 2;
    /// `a - b - 1` (sbb with CF set).
    pub const SBB1: u8 = 4 << 2;
    /// A logical result: CF = OF = AF = 0.
    pub const LOGIC: u8 = 5 << 2;
    /// `a + 1`, CF unchanged (taken from RFLAGS).
    pub const INC: u8 = 6 << 2;
    /// `a - 1`, CF unchanged.
    pub const DEC: u8 = 7 << 2;
}

const MASK: [u64; 4] = [0xff, 0xffff, 0xffff_ffff, u64::MAX];
const SIGN: [u64; 4] = [0x80, 0x8000, 0x8000_0000, 1 << 63];

/// The last flag-producing operation, if its flags have not been materialised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lazy {
    /// `kind | log2(bytes)`, or [`kind::NONE`].
    pub op: u8,
    /// First operand (masked to the width).
    pub a: u64,
    /// Second operand (masked; 1 for inc/dec).
    pub b: u64,
    /// Result (masked).
    pub res: u64,
}

/// log2 of the operand size in bytes, for a width in bits.
#[inline(always)]
pub(crate) const fn wlog(bits: u32) -> u8 {
    match bits {
        8 => 0,
        16 => 1,
        32 => 2,
        _ => 3,
    }
}

impl Lazy {
    #[inline(always)]
    fn w(&self) -> usize {
        usize::from(self.op & 3)
    }

    #[inline(always)]
    fn kind(&self) -> u8 {
        self.op & !3
    }

    /// ZF.
    #[inline(always)]
    pub fn zf(&self) -> bool {
        self.res & MASK[self.w()] == 0
    }

    /// SF.
    #[inline(always)]
    pub fn sf(&self) -> bool {
        self.res & SIGN[self.w()] != 0
    }

    /// PF.
    #[inline(always)]
    pub fn pf(&self) -> bool {
        flags::parity(self.res) != 0
    }

    /// CF (`rflags` supplies it for inc/dec).
    #[inline(always)]
    pub fn cf(&self, rflags: u64) -> bool {
        let m = MASK[self.w()];
        let (a, b, r) = (self.a & m, self.b & m, self.res & m);
        match self.kind() {
            kind::ADD => r < a,
            kind::ADC1 => r <= a,
            kind::SUB => a < b,
            kind::SBB1 => a <= b,
            kind::LOGIC => false,
            _ => rflags & CF != 0,
        }
    }

    /// OF.
    #[inline(always)]
    pub fn of(&self) -> bool {
        let s = SIGN[self.w()];
        let (a, b, r) = (self.a, self.b, self.res);
        match self.kind() {
            kind::ADD | kind::ADC1 | kind::INC => (a ^ r) & (b ^ r) & s != 0,
            kind::SUB | kind::SBB1 | kind::DEC => (a ^ b) & (a ^ r) & s != 0,
            _ => false,
        }
    }

    /// Condition code `cc` (the low nibble of jcc/setcc/cmovcc).
    #[inline(always)]
    pub fn cond(&self, cc: u8, rflags: u64) -> bool {
        let r = match cc >> 1 {
            0 => self.of(),
            1 => self.cf(rflags),
            2 => self.zf(),
            3 => self.cf(rflags) | self.zf(),
            4 => self.sf(),
            5 => self.pf(),
            6 => self.sf() != self.of(),
            _ => self.zf() | (self.sf() != self.of()),
        };
        r ^ (cc & 1 != 0)
    }

    /// RFLAGS with the pending arithmetic flags folded in.
    #[inline(never)]
    pub fn materialize(&self, rflags: u64) -> u64 {
        let af = if self.kind() == kind::LOGIC {
            0
        } else {
            (self.a ^ self.b ^ self.res) & AF
        };
        let f = |c: bool, bit: u64| if c { bit } else { 0 };
        (rflags & !ARITH)
            | f(self.cf(rflags), CF)
            | f(self.pf(), PF)
            | af
            | f(self.zf(), ZF)
            | f(self.sf(), SF)
            | f(self.of(), OF)
    }
}
