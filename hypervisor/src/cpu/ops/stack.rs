//! The stack: push pop call ret enter leave pushf popf.

use crate::cpu::bus::Bus;
use crate::cpu::decode::{attr, Insn};
use crate::cpu::exec::{Ctx, Flow, Loc, R};
use crate::cpu::flags::{Width, POPF_MASK, RF, VM, W16, W64};

const RSP: usize = 4;
const RBP: usize = 5;

/// `push reg` / `push r/m` (operand 0) — the value is read before rsp moves, so
/// `push rsp` pushes the old rsp.
#[inline(always)]
pub(crate) fn push_rm<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let v = c.read_rm::<W>(i, 0)?;
    c.push::<W>(v)?;
    Ok(Flow::Next)
}

/// `push imm` (sign-extended by the decoder).
#[inline(always)]
pub(crate) fn push_imm<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    c.push::<W>(i.imm)?;
    Ok(Flow::Next)
}

/// `pop reg` / `pop r/m`. A memory destination's address is computed with rsp already
/// incremented, as hardware does; `pop rsp` loads rsp.
#[inline(always)]
pub(crate) fn pop_rm<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let v = c.peek::<W>(0)?;
    let old = c.r.gpr[RSP];
    let new = old.wrapping_add(W::BYTES as u64);
    if i.is_mem() {
        c.r.gpr[RSP] = new;
        let a = c.ea(i);
        c.r.gpr[RSP] = old;
        c.write::<W>(Loc::Mem(a, i.attr & attr::STACK != 0), v)?;
        c.r.gpr[RSP] = new;
    } else {
        c.r.gpr[RSP] = new;
        c.set_reg::<W>(i.r[0], v);
    }
    Ok(Flow::Next)
}

/// `call rel32`.
#[inline(always)]
pub(crate) fn call_rel<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let target = c.next.wrapping_add(i.imm);
    call_to(c, target)
}

/// `call r/m64`.
#[inline(always)]
pub(crate) fn call_rm<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let target = c.read_rm::<W64>(i, 0)?;
    call_to(c, target)
}

#[inline(always)]
fn call_to<B: Bus>(c: &mut Ctx<'_, B>, target: u64) -> R {
    if !crate::cpu::exec::canonical(target) {
        return Err(crate::cpu::bus::Fault::gp(0));
    }
    let ret = c.next;
    c.push::<W64>(ret)?;
    c.r.rip = target;
    Ok(Flow::Jump)
}

/// `ret` / `ret imm16`.
#[inline(always)]
pub(crate) fn ret<B: Bus, const IMM: bool>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let target = c.peek::<W64>(0)?;
    if !crate::cpu::exec::canonical(target) {
        return Err(crate::cpu::bus::Fault::gp(0));
    }
    let extra = if IMM { i.imm & 0xffff } else { 0 };
    c.r.gpr[RSP] = c.r.gpr[RSP].wrapping_add(8).wrapping_add(extra);
    c.r.rip = target;
    Ok(Flow::Jump)
}

/// `leave`: rsp ← rbp, then pop rbp.
#[inline(always)]
pub(crate) fn leave<B: Bus>(c: &mut Ctx<'_, B>) -> R {
    let bp = c.r.gpr[RBP];
    let v = c.load::<W64>(bp, true)?;
    c.r.gpr[RSP] = bp.wrapping_add(8);
    c.r.gpr[RBP] = v;
    Ok(Flow::Next)
}

/// `enter size, level` (64-bit operand size).
pub(crate) fn enter<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let size = i.imm & 0xffff;
    let level = (i.imm >> 32) & 31;
    let mut sp = c.r.gpr[RSP];
    let mut bp = c.r.gpr[RBP];
    // Every store goes below the original rsp; registers change only at the end.
    sp = sp.wrapping_sub(8);
    c.store::<W64>(sp, bp, true)?;
    let frame = sp;
    if level > 0 {
        for _ in 1..level {
            bp = bp.wrapping_sub(8);
            let v = c.load::<W64>(bp, true)?;
            sp = sp.wrapping_sub(8);
            c.store::<W64>(sp, v, true)?;
        }
        sp = sp.wrapping_sub(8);
        c.store::<W64>(sp, frame, true)?;
    }
    sp = sp.wrapping_sub(size);
    if !crate::cpu::exec::canonical(sp) {
        return Err(crate::cpu::bus::Fault::ss());
    }
    c.r.gpr[RBP] = frame;
    c.r.gpr[RSP] = sp;
    Ok(Flow::Next)
}

/// `pushf` (pushfq or, with 66, pushfw): RF and VM read as 0.
#[inline(always)]
pub(crate) fn pushf<B: Bus, W: Width>(c: &mut Ctx<'_, B>) -> R {
    let v = c.flags() & !(RF | VM);
    c.push::<W>(v)?;
    Ok(Flow::Next)
}

/// `popf`: only the flags in [`POPF_MASK`] change (ring 3: IF, IOPL, TF, NT... keep their
/// values); popfw changes only the low 16 bits of that set.
#[inline(always)]
pub(crate) fn popf<B: Bus, W: Width>(c: &mut Ctx<'_, B>) -> R {
    let v = c.peek::<W>(0)?;
    let m = if W::BITS == 16 {
        POPF_MASK & W16::MASK
    } else {
        POPF_MASK
    };
    c.r.gpr[RSP] = c.r.gpr[RSP].wrapping_add(W::BYTES as u64);
    let f = (c.flags() & !m) | (v & m);
    c.set_flags(f);
    Ok(Flow::Next)
}
