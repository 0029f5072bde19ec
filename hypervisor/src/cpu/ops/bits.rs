//! Bit operations: bt/bts/btr/btc, bsf/bsr, tzcnt/lzcnt/popcnt, bswap.

use crate::cpu::bus::Bus;
use crate::cpu::decode::{attr, Insn};
use crate::cpu::exec::{Ctx, Flow, Loc, R};
use crate::cpu::flags::{self, Width};

/// Bit-test operation numbers (the /r order of 0F BA: 4=bt 5=bts 6=btr 7=btc).
pub(crate) const BT: u8 = 0;
pub(crate) const BTS: u8 = 1;
pub(crate) const BTR: u8 = 2;
pub(crate) const BTC: u8 = 3;

/// `bt* r/m, reg` (`IMM` = false) or `bt* r/m, imm8` (`IMM` = true).
///
/// With a memory operand and a register offset, the offset is a signed bit index relative
/// to the operand's address (it may reach outside the operand); with an immediate or a
/// register destination it is taken modulo the width.
#[inline(always)]
pub(crate) fn bt<B: Bus, W: Width, const OP: u8, const IMM: bool>(
    c: &mut Ctx<'_, B>,
    i: &Insn,
) -> R {
    let off = if IMM { i.imm } else { c.reg::<W>(i.r[1]) };
    let l = if i.is_mem() {
        let mut a = c.ea(i);
        if !IMM {
            let s = W::sext(off) as i64;
            // Arithmetic shift: floor division by the width, in operand-sized units.
            let unit = s >> W::BITS.trailing_zeros();
            a = a.wrapping_add((unit as u64).wrapping_mul(W::BYTES as u64));
        }
        Loc::Mem(a, i.attr & attr::STACK != 0)
    } else {
        Loc::Reg(i.r[0])
    };
    let bit = (off & u64::from(W::BITS - 1)) as u32;
    let v = c.read::<W>(l)?;
    let set = (v >> bit) & 1 != 0;
    let nv = match OP {
        BTS => v | (1 << bit),
        BTR => v & !(1 << bit),
        BTC => v ^ (1 << bit),
        _ => v,
    };
    if OP != BT {
        c.write::<W>(l, nv)?;
    }
    let f = flags::bt_flags(set, c.flags());
    c.set_flags(f);
    Ok(Flow::Next)
}

/// Scan/count operation numbers.
pub(crate) const BSF: u8 = 0;
pub(crate) const BSR: u8 = 1;
pub(crate) const TZCNT: u8 = 2;
pub(crate) const LZCNT: u8 = 3;
pub(crate) const POPCNT: u8 = 4;

/// `bsf`/`bsr`/`tzcnt`/`lzcnt`/`popcnt reg, r/m`.
///
/// `bsf`/`bsr` with a zero source leave the destination unchanged (the upper half of a
/// 64-bit register included), as AMD documents and Intel does.
#[inline(always)]
pub(crate) fn scan<B: Bus, W: Width, const OP: u8>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let s = c.read_rm::<W>(i, 1)?;
    // bsf/bsr/popcnt write all six arithmetic flags; tzcnt/lzcnt keep OF.
    let f = if matches!(OP, TZCNT | LZCNT) {
        c.flags()
    } else {
        c.r.rflags
    };
    let d = i.r[0];
    let zero = s == 0;
    match OP {
        BSF | BSR => {
            let idx = if zero {
                0
            } else if OP == BSF {
                u64::from(s.trailing_zeros())
            } else {
                u64::from(63 - s.leading_zeros())
            };
            if !zero {
                c.set_reg::<W>(d, idx);
            }
            c.set_flags(flags::bsx_flags(zero, idx, f));
        }
        TZCNT | LZCNT => {
            let r = if zero {
                u64::from(W::BITS)
            } else if OP == TZCNT {
                u64::from(s.trailing_zeros())
            } else {
                u64::from(s.leading_zeros() - (64 - W::BITS))
            };
            c.set_reg::<W>(d, r);
            c.set_flags(flags::cnt_flags(zero, r, f));
        }
        _ => {
            c.set_reg::<W>(d, u64::from(s.count_ones()));
            c.set_flags(flags::popcnt_flags(zero, f));
        }
    }
    Ok(Flow::Next)
}

/// `bswap reg` (32/64-bit).
#[inline(always)]
pub(crate) fn bswap<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let v = c.reg::<W>(i.r[0]);
    let r = if W::BITS == 64 {
        v.swap_bytes()
    } else {
        u64::from((v as u32).swap_bytes())
    };
    c.set_reg::<W>(i.r[0], r);
    Ok(Flow::Next)
}

/// BMI1 operation numbers.
pub(crate) const ANDN: u8 = 0;
pub(crate) const BEXTR: u8 = 1;
pub(crate) const BLSI: u8 = 2;
pub(crate) const BLSMSK: u8 = 3;
pub(crate) const BLSR: u8 = 4;

/// BMI1: `andn r, r(vvvv), r/m`, `bextr r, r/m, r(vvvv)`, `blsi/blsmsk/blsr r(vvvv), r/m`.
///
/// Operand layout (iced order): andn = [dst, src1, rm]; bextr = [dst, rm, ctl];
/// blsX = [dst, rm]. Flags: OF = 0 always; CF as documented per instruction; SF/ZF from
/// the result (ZF cleared by blsmsk); the undefined ones follow AMD Zen: PF is the parity
/// of the result, AF is cleared — except bextr, which sets AF and clears SF.
#[inline(always)]
pub(crate) fn bmi1<B: Bus, W: Width, const OP: u8>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    use crate::cpu::flags::{AF, ARITH, CF, SF, ZF};
    let f = c.r.rflags & !ARITH; // all six are written
    let (res, nf) = match OP {
        ANDN => {
            let s = c.read_rm::<W>(i, 2)?;
            let r = !c.reg::<W>(i.r[1]) & s & W::MASK;
            (r, f | flags::szp::<W>(r))
        }
        BEXTR => {
            let s = c.read_rm::<W>(i, 1)?;
            let ctl = c.reg::<W>(i.r[2]);
            let start = (ctl & 0xff) as u32;
            let len = ((ctl >> 8) & 0xff) as u32;
            let shifted = if start >= W::BITS { 0 } else { s >> start };
            let r = if len >= 64 {
                shifted
            } else {
                shifted & ((1u64 << len) - 1)
            } & W::MASK;
            (r, f | (flags::szp::<W>(r) & !SF) | AF)
        }
        _ => {
            let s = c.read_rm::<W>(i, 1)?;
            let (r, cf) = match OP {
                BLSI => ((s.wrapping_neg() & s) & W::MASK, s != 0),
                BLSMSK => ((s.wrapping_sub(1) ^ s) & W::MASK, s == 0),
                _ => ((s.wrapping_sub(1) & s) & W::MASK, s == 0),
            };
            let mut sf = flags::szp::<W>(r);
            if OP == BLSMSK {
                sf &= !ZF;
            }
            (r, f | sf | if cf { CF } else { 0 })
        }
    };
    c.set_reg::<W>(i.r[0], res);
    c.set_flags(nf);
    Ok(Flow::Next)
}
