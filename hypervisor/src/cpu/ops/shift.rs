//! Shifts and rotates: shl/sal shr sar rol ror rcl rcr (by 1, imm8 or cl) and shld/shrd.

use crate::cpu::bus::Bus;
use crate::cpu::decode::Insn;
use crate::cpu::exec::{Ctx, Flow, R};
use crate::cpu::flags::{self, Width, AF, ARITH, CF, OF};

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
    if count == 0 {
        // No flags change; a register destination is still written (32-bit zero-extends).
        if !i.is_mem() {
            c.write::<W>(l, a)?;
        }
        return Ok(Flow::Next);
    }
    // shl/shr/sar by a non-zero count write all six arithmetic flags, so pending lazy flags
    // need not be materialised first; the rotates keep some and do.
    let f = if matches!(OP, SHL | SHR | SAR) {
        c.r.rflags
    } else {
        c.flags()
    };
    let (r, f) = match OP {
        ROL => flags::rol::<W>(a, count, f),
        ROR => flags::ror::<W>(a, count, f),
        RCL => flags::rcl::<W>(a, count, f),
        RCR => flags::rcr::<W>(a, count, f),
        SHL => flags::shl::<W>(a, count, f),
        SHR => flags::shr::<W>(a, count, f),
        _ => flags::sar::<W>(a, count, f),
    };
    c.write::<W>(l, r)?;
    c.set_flags(f);
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
    // Every arithmetic flag is written: no need to materialise pending ones.
    let (r, f) = shxd::<W>(a, b, count, LEFT, c.r.rflags);
    c.write::<W>(l, r)?;
    c.set_flags(f);
    Ok(Flow::Next)
}

/// The pure rule of shld/shrd for a count in 1..=31 (63 for 64-bit).
///
/// For 16-bit operands with a count above 16 the result is architecturally undefined; this
/// follows AMD Zen: the source rotated by `count - 16` (left for shld, right for shrd), CF
/// clear, OF clear for shld and `res[15] ^ res[14]` for shrd; a shld by exactly 16 sets OF
/// to CF.
#[inline(always)]
pub(crate) fn shxd<W: Width>(a: u64, b: u64, count: u32, left: bool, f: u64) -> (u64, u64) {
    let n = W::BITS;
    let (a, b) = (a & W::MASK, b & W::MASK);
    if count > n {
        // Only 16-bit operands get here (counts are masked to 31).
        let r = count - n;
        let res = if left {
            (b << r) | (b >> (n - r))
        } else {
            (b >> r) | (b << (n - r))
        };
        let res = res & W::MASK;
        let of = !left && ((res ^ (res << 1)) & W::SIGN) != 0;
        let nf = (f & !ARITH) | flags::szp::<W>(res) | AF | if of { OF } else { 0 };
        return (res, nf);
    }
    // 1 ≤ count ≤ n, so no shift below reaches 64.
    let (res, cf) = if left {
        (
            ((a << count) | (b >> (n - count))) & W::MASK,
            (a >> (n - count)) & 1 != 0,
        )
    } else {
        (
            ((a >> count) | (b << (n - count))) & W::MASK,
            (a >> (count - 1)) & 1 != 0,
        )
    };
    // The count-1 definition, extended to larger counts the way AMD does: shld like shl
    // (msb ^ CF), shrd like shr (the top two result bits differ).
    // A 16-bit shld by exactly 16 reports OF = CF on AMD Zen.
    let of = if left && count == n {
        cf
    } else if left {
        (res & W::SIGN != 0) ^ cf
    } else {
        ((res ^ (res << 1)) & W::SIGN) != 0
    };
    // AF (undefined) is set, as by the single shifts.
    let mut nf = (f & !ARITH) | flags::szp::<W>(res) | AF;
    if cf {
        nf |= CF;
    }
    if of {
        nf |= OF;
    }
    (res, nf)
}
