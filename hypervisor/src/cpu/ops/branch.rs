//! Control transfer: jmp, jcc, loop/loope/loopne, jrcxz/jecxz.

use crate::cpu::bus::Bus;
use crate::cpu::decode::Insn;
use crate::cpu::exec::{Ctx, Flow, R};
use crate::cpu::flags::W64;

/// `jmp rel`.
#[inline(always)]
pub(crate) fn jmp_rel<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let t = c.next.wrapping_add(i.imm);
    c.jump(t)
}

/// `jmp r/m64`.
#[inline(always)]
pub(crate) fn jmp_rm<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let t = c.read_rm::<W64>(i, 0)?;
    c.jump(t)
}

/// `jcc rel`.
#[inline(always)]
pub(crate) fn jcc<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn, cc: u8) -> R {
    if c.cond(cc) {
        let t = c.next.wrapping_add(i.imm);
        c.jump(t)
    } else {
        Ok(Flow::Next)
    }
}

/// Loop kinds.
pub(crate) const LOOP: u8 = 0;
pub(crate) const LOOPE: u8 = 1;
pub(crate) const LOOPNE: u8 = 2;

/// `loop`/`loope`/`loopne` with rcx (`A32` = false) or ecx: decrement the counter (flags
/// untouched), branch while it is non-zero (and ZF matches). A non-canonical target faults
/// before the counter changes.
#[inline(always)]
pub(crate) fn loop_<B: Bus, const KIND: u8, const A32: bool>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let rcx = c.gpr(1);
    let n = if A32 {
        rcx.wrapping_sub(1) & 0xffff_ffff
    } else {
        rcx.wrapping_sub(1)
    };
    let zf = c.cond(4);
    let take = n != 0
        && match KIND {
            LOOPE => zf,
            LOOPNE => !zf,
            _ => true,
        };
    let flow = if take {
        let t = c.next.wrapping_add(i.imm);
        c.jump(t)?
    } else {
        Flow::Next
    };
    c.r.gpr[1] = n;
    Ok(flow)
}

/// `jrcxz` (`A32` = false) / `jecxz`.
#[inline(always)]
pub(crate) fn jrcxz<B: Bus, const A32: bool>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let rcx = c.gpr(1);
    let z = if A32 {
        rcx & 0xffff_ffff == 0
    } else {
        rcx == 0
    };
    if z {
        let t = c.next.wrapping_add(i.imm);
        c.jump(t)
    } else {
        Ok(Flow::Next)
    }
}
