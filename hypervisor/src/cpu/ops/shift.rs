//! Shifts and rotates: shl/sal shr sar rol ror rcl rcr (by 1, imm8 or cl) and shld/shrd.

use crate::cpu::bus::Bus;
use crate::cpu::decode::Insn;
use crate::cpu::exec::{Ctx, Flow, R};
use crate::cpu::flags::{self, Width, ARITH, CF, OF};

/// Operation numbers in the hardware's /r order.
pub(crate) const ROL: u8 = 0;
pub(crate) const ROR: u8 = 1;
pub(crate) const RCL: u8 = 2;
pub(crate) const RCR: u8 = 3;
pub(crate) const SHL: u8 = 4;
pub(crate) const SHR: u8 = 5;
pub(crate) const SAR: u8 = 7;

/// Count sources.
pub(crate) const BY_IMM: u8 = 0;
pub(crate) const BY_1: u8 = 1;
pub(crate) const BY_CL: u8 = 2;

/// `OP r/m, count`.
#[inline(always)]
pub(crate) fn shift<B: Bus, W: Width, const OP: u8, const SRC: u8>(
    c: &mut Ctx<'_, B>,
    i: &Insn,
) -> R {
    let raw = match SRC {
        BY_IMM => i.imm,
        BY_1 => 1,
        _ => c.gpr(1),
    };
    let count = flags::shift_count::<W>(raw);
    let l = c.loc(i, 0);
    let a = c.read::<W>(l)?;
    let f = c.r.rflags;
    let (r, f) = match OP {
        ROL => flags::rol::<W>(a, count, f),
        ROR => flags::ror::<W>(a, count, f),
        RCL => flags::rcl::<W>(a, count, f),
        RCR => flags::rcr::<W>(a, count, f),
        SHL => flags::shl::<W>(a, count, f),
        SHR => flags::shr::<W>(a, count, f),
        _ => flags::sar::<W>(a, count, f),
    };
    if count != 0 || !i.is_mem() {
        c.write::<W>(l, r)?;
    }
    c.r.rflags = f;
    Ok(Flow::Next)
}

/// `shld`/`shrd r/m, reg, count` (`LEFT` selects shld).
#[inline(always)]
pub(crate) fn double<B: Bus, W: Width, const LEFT: bool, const SRC: u8>(
    c: &mut Ctx<'_, B>,
    i: &Insn,
) -> R {
    let raw = if SRC == BY_CL { c.gpr(1) } else { i.imm };
    let count = flags::shift_count::<W>(raw);
    let l = c.loc(i, 0);
    let a = c.read::<W>(l)?;
    let b = c.reg::<W>(i.r[1]);
    if count == 0 {
        if !i.is_mem() {
            c.write::<W>(l, a)?;
        }
        return Ok(Flow::Next);
    }
    let (r, f) = shxd::<W>(a, b, count, LEFT, c.r.rflags);
    c.write::<W>(l, r)?;
    c.r.rflags = f;
    Ok(Flow::Next)
}

/// The pure rule of shld/shrd for a count in 1..=31 (63 for 64-bit).
///
/// For 16-bit operands with a count above 16 (architecturally undefined) the bits keep
/// coming from the repeating pattern `dst:src:dst`.
#[inline(always)]
pub(crate) fn shxd<W: Width>(a: u64, b: u64, count: u32, left: bool, f: u64) -> (u64, u64) {
    let n = W::BITS;
    let (a, b) = (a & W::MASK, b & W::MASK);
    let (res, cf) = if n == 64 {
        // count < 64 here, so neither shift below reaches the width.
        if left {
            (
                (a << count) | ((b >> 1) >> (63 - count)),
                (a >> (64 - count)) & 1 != 0,
            )
        } else {
            (
                (a >> count) | ((b << 1) << (63 - count)),
                (a >> (count - 1)) & 1 != 0,
            )
        }
    } else {
        let (wa, wb) = (u128::from(a), u128::from(b));
        if left {
            let v = (wa << (2 * n)) | (wb << n) | wa;
            let sh = v << count;
            ((sh >> (2 * n)) as u64 & W::MASK, (sh >> (3 * n)) & 1 != 0)
        } else {
            let v = (wa << (2 * n)) | (wb << n) | wa;
            ((v >> count) as u64 & W::MASK, (v >> (count - 1)) & 1 != 0)
        }
    };
    let of = ((res ^ a) & W::SIGN) != 0;
    let mut nf = (f & !ARITH) | flags::szp::<W>(res);
    if cf {
        nf |= CF;
    }
    if of {
        nf |= OF;
    }
    (res, nf)
}
