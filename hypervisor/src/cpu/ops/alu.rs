//! Two-operand arithmetic and logic (add or adc sbb and sub xor cmp test) and the unary
//! group (not neg inc dec).

use crate::cpu::bus::Bus;
use crate::cpu::decode::Insn;
use crate::cpu::exec::{Ctx, Flow, R};
use crate::cpu::flags::Width;
use crate::cpu::lazy::kind;

/// Operation numbers, in the hardware's /r order (test is extra).
pub(crate) const ADD: u8 = 0;
pub(crate) const OR: u8 = 1;
pub(crate) const ADC: u8 = 2;
pub(crate) const SBB: u8 = 3;
pub(crate) const AND: u8 = 4;
pub(crate) const SUB: u8 = 5;
pub(crate) const XOR: u8 = 6;
pub(crate) const CMP: u8 = 7;
pub(crate) const TEST: u8 = 8;

/// `a OP b` (operands already masked) → (lazy flag kind, masked result).
#[inline(always)]
pub(crate) fn compute<W: Width, const OP: u8>(cf: bool, a: u64, b: u64) -> (u8, u64) {
    let (k, r) = match OP {
        ADD => (kind::ADD, a.wrapping_add(b)),
        ADC if cf => (kind::ADC1, a.wrapping_add(b).wrapping_add(1)),
        ADC => (kind::ADD, a.wrapping_add(b)),
        SBB if cf => (kind::SBB1, a.wrapping_sub(b).wrapping_sub(1)),
        SBB => (kind::SUB, a.wrapping_sub(b)),
        SUB | CMP => (kind::SUB, a.wrapping_sub(b)),
        OR => (kind::LOGIC, a | b),
        XOR => (kind::LOGIC, a ^ b),
        _ => (kind::LOGIC, a & b),
    };
    (k, r & W::MASK)
}

/// Whether the operation writes its destination.
const fn writes(op: u8) -> bool {
    op != CMP && op != TEST
}

/// Whether the operation reads CF.
const fn reads_cf(op: u8) -> bool {
    op == ADC || op == SBB
}

/// `OP r/m, src` with the destination in operand 0 (register or memory).
#[inline(always)]
fn rm_with<B: Bus, W: Width, const OP: u8>(c: &mut Ctx<'_, B>, i: &Insn, src: u64) -> R {
    let src = src & W::MASK;
    let cf = reads_cf(OP) && c.cf();
    if i.is_mem() {
        let l = c.loc(i, 0);
        let a = c.read::<W>(l)?;
        let (k, r) = compute::<W, OP>(cf, a, src);
        if writes(OP) {
            c.write::<W>(l, r)?;
        }
        c.set_lazy::<W>(k, a, src, r);
    } else {
        let d = i.r[0];
        let a = c.reg::<W>(d);
        let (k, r) = compute::<W, OP>(cf, a, src);
        if writes(OP) {
            c.set_reg::<W>(d, r);
        }
        c.set_lazy::<W>(k, a, src, r);
    }
    Ok(Flow::Next)
}

/// `OP r/m, reg`.
#[inline(always)]
pub(crate) fn rm_r<B: Bus, W: Width, const OP: u8>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let src = c.reg::<W>(i.r[1]);
    rm_with::<B, W, OP>(c, i, src)
}

/// `OP r/m, imm` (and the accumulator-immediate short forms).
#[inline(always)]
pub(crate) fn rm_imm<B: Bus, W: Width, const OP: u8>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    rm_with::<B, W, OP>(c, i, i.imm)
}

/// `OP reg, r/m`.
#[inline(always)]
pub(crate) fn r_rm<B: Bus, W: Width, const OP: u8>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let src = c.read_rm::<W>(i, 1)?;
    let cf = reads_cf(OP) && c.cf();
    let d = i.r[0];
    let a = c.reg::<W>(d);
    let (k, r) = compute::<W, OP>(cf, a, src);
    if writes(OP) {
        c.set_reg::<W>(d, r);
    }
    c.set_lazy::<W>(k, a, src, r);
    Ok(Flow::Next)
}

/// Unary operation numbers.
pub(crate) const NOT: u8 = 0;
pub(crate) const NEG: u8 = 1;
pub(crate) const INC: u8 = 2;
pub(crate) const DEC: u8 = 3;

/// `not`/`neg`/`inc`/`dec` r/m.
#[inline(always)]
pub(crate) fn unary<B: Bus, W: Width, const OP: u8>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let l = c.loc(i, 0);
    let a = c.read::<W>(l)?;
    let r = match OP {
        NOT => !a,
        NEG => a.wrapping_neg(),
        INC => a.wrapping_add(1),
        _ => a.wrapping_sub(1),
    } & W::MASK;
    c.write::<W>(l, r)?;
    match OP {
        NOT => {}
        NEG => c.set_lazy::<W>(kind::SUB, 0, a, r),
        INC => c.set_lazy::<W>(kind::INC, a, 1, r),
        _ => c.set_lazy::<W>(kind::DEC, a, 1, r),
    }
    Ok(Flow::Next)
}
