//! Two-operand arithmetic and logic (add or adc sbb and sub xor cmp test) and the unary
//! group (not neg inc dec).

use crate::cpu::bus::Bus;
use crate::cpu::decode::Insn;
use crate::cpu::exec::{Ctx, Flow, R};
use crate::cpu::flags::{self, Width, CF};

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

/// `a OP b` and the new RFLAGS.
#[inline(always)]
pub(crate) fn compute<W: Width, const OP: u8>(a: u64, b: u64, f: u64) -> (u64, u64) {
    match OP {
        ADD => flags::add::<W>(a, b, false, f),
        ADC => flags::add::<W>(a, b, f & CF != 0, f),
        SBB => flags::sub::<W>(a, b, f & CF != 0, f),
        SUB | CMP => flags::sub::<W>(a, b, false, f),
        OR => {
            let r = (a | b) & W::MASK;
            (r, flags::logic::<W>(r, f))
        }
        XOR => {
            let r = (a ^ b) & W::MASK;
            (r, flags::logic::<W>(r, f))
        }
        _ => {
            let r = a & b & W::MASK;
            (r, flags::logic::<W>(r, f))
        }
    }
}

/// Whether the operation writes its destination.
const fn writes(op: u8) -> bool {
    op != CMP && op != TEST
}

/// `OP r/m, src` with the destination in operand 0 (register or memory).
#[inline(always)]
fn rm_with<B: Bus, W: Width, const OP: u8>(c: &mut Ctx<'_, B>, i: &Insn, src: u64) -> R {
    if i.is_mem() {
        let l = c.loc(i, 0);
        let a = c.read::<W>(l)?;
        let (r, f) = compute::<W, OP>(a, src, c.r.rflags);
        if writes(OP) {
            c.write::<W>(l, r)?;
        }
        c.r.rflags = f;
    } else {
        let d = i.r[0];
        let (r, f) = compute::<W, OP>(c.reg::<W>(d), src, c.r.rflags);
        if writes(OP) {
            c.set_reg::<W>(d, r);
        }
        c.r.rflags = f;
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
    let d = i.r[0];
    let (r, f) = compute::<W, OP>(c.reg::<W>(d), src, c.r.rflags);
    if writes(OP) {
        c.set_reg::<W>(d, r);
    }
    c.r.rflags = f;
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
    let f = c.r.rflags;
    let (r, f) = match OP {
        NOT => (!a & W::MASK, f),
        NEG => flags::neg::<W>(a, f),
        INC => flags::inc::<W>(a, f),
        _ => flags::dec::<W>(a, f),
    };
    c.write::<W>(l, r)?;
    c.r.rflags = f;
    Ok(Flow::Next)
}
