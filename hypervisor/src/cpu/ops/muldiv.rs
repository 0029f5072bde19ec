//! Multiplication and division: mul, imul (one, two and three operands), div, idiv.

use crate::cpu::bus::{Bus, Fault};
use crate::cpu::decode::Insn;
use crate::cpu::exec::{Ctx, Flow, R};
use crate::cpu::flags::{self, Width};

const RAX: u8 = 0;
const RDX: u8 = 2;
/// AH's register code.
const AH: u8 = crate::cpu::decode::HIGH8;

/// Writes a double-width result: AX for 8-bit operands, DX:AX / EDX:EAX / RDX:RAX otherwise.
#[inline(always)]
fn set_pair<B: Bus, W: Width>(c: &mut Ctx<'_, B>, lo: u64, hi: u64) {
    c.set_reg::<W>(RAX, lo);
    if W::BITS == 8 {
        c.set_reg::<W>(AH, hi);
    } else {
        c.set_reg::<W>(RDX, hi);
    }
}

/// The implicit high half of the dividend (AH, DX, EDX or RDX).
#[inline(always)]
fn high<B: Bus, W: Width>(c: &Ctx<'_, B>) -> u64 {
    if W::BITS == 8 {
        c.reg::<W>(AH)
    } else {
        c.reg::<W>(RDX)
    }
}

/// `mul r/m` (unsigned, into the accumulator pair).
#[inline(always)]
pub(crate) fn mul<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let src = c.read_rm::<W>(i, 0)?;
    let a = c.reg::<W>(RAX);
    let p = u128::from(a) * u128::from(src);
    let lo = p as u64 & W::MASK;
    let hi = (p >> W::BITS) as u64 & W::MASK;
    set_pair::<B, W>(c, lo, hi);
    let f = flags::mul_flags(hi != 0, c.flags());
    c.set_flags(f);
    Ok(Flow::Next)
}

/// The signed product of two operands of width `W`: (low, high, overflow).
#[inline(always)]
fn smul<W: Width>(a: u64, b: u64) -> (u64, u64, bool) {
    let p = i128::from(W::sext(a) as i64) * i128::from(W::sext(b) as i64);
    let lo = p as u64 & W::MASK;
    let hi = (p >> W::BITS) as u64 & W::MASK;
    let overflow = W::sext(lo) as i64 as i128 != p;
    (lo, hi, overflow)
}

/// `imul r/m` (signed, into the accumulator pair).
#[inline(always)]
pub(crate) fn imul1<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let src = c.read_rm::<W>(i, 0)?;
    let (lo, hi, ov) = smul::<W>(c.reg::<W>(RAX), src);
    set_pair::<B, W>(c, lo, hi);
    let f = flags::mul_flags(ov, c.flags());
    c.set_flags(f);
    Ok(Flow::Next)
}

/// `imul reg, r/m` (`THREE` = false) and `imul reg, r/m, imm` (`THREE` = true).
#[inline(always)]
pub(crate) fn imul<B: Bus, W: Width, const THREE: bool>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let src = c.read_rm::<W>(i, 1)?;
    let other = if THREE { i.imm } else { c.reg::<W>(i.r[0]) };
    let (lo, _, ov) = smul::<W>(other, src);
    c.set_reg::<W>(i.r[0], lo);
    let f = flags::mul_flags(ov, c.flags());
    c.set_flags(f);
    Ok(Flow::Next)
}

/// `div r/m`: #DE on a zero divisor or a quotient that does not fit.
#[inline(always)]
pub(crate) fn div<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let d = c.read_rm::<W>(i, 0)?;
    if d == 0 {
        return Err(Fault::DE);
    }
    let n = (u128::from(high::<B, W>(c)) << W::BITS) | u128::from(c.reg::<W>(RAX));
    let q = n / u128::from(d);
    let r = n % u128::from(d);
    if q > u128::from(W::MASK) {
        return Err(Fault::DE);
    }
    set_pair::<B, W>(c, q as u64, r as u64);
    let f = flags::div_flags(c.flags());
    c.set_flags(f);
    Ok(Flow::Next)
}

/// `idiv r/m`: #DE on a zero divisor or a quotient out of the signed range.
#[inline(always)]
pub(crate) fn idiv<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let d = W::sext(c.read_rm::<W>(i, 0)?) as i64;
    if d == 0 {
        return Err(Fault::DE);
    }
    let hi = W::sext(high::<B, W>(c)) as i64;
    let n = (i128::from(hi) << W::BITS) | i128::from(c.reg::<W>(RAX));
    let (Some(q), Some(r)) = (n.checked_div(i128::from(d)), n.checked_rem(i128::from(d))) else {
        return Err(Fault::DE);
    };
    let min = -(1i128 << (W::BITS - 1));
    let max = (1i128 << (W::BITS - 1)) - 1;
    if q < min || q > max {
        return Err(Fault::DE);
    }
    set_pair::<B, W>(c, q as u64 & W::MASK, r as u64 & W::MASK);
    let f = flags::div_flags(c.flags());
    c.set_flags(f);
    Ok(Flow::Next)
}
