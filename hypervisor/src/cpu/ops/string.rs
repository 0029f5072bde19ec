//! String instructions: movs stos lods cmps scas, byte to qword, with rep/repe/repne and DF.
//!
//! A `rep` instruction is interruptible as on hardware: every iteration counts as one
//! retired instruction, and when the budget runs out mid-way the loop exits with `rip`
//! still on the instruction and rcx/rsi/rdi describing the remaining work. A fault in
//! iteration *k* leaves the registers as the first *k - 1* iterations left them.

use crate::cpu::bus::Bus;
use crate::cpu::decode::{attr, Insn};
use crate::cpu::exec::{Ctx, Flow, R};
use crate::cpu::flags::{Width, DF};
use crate::cpu::lazy::kind;

pub(crate) const MOVS: u8 = 0;
pub(crate) const STOS: u8 = 1;
pub(crate) const LODS: u8 = 2;
pub(crate) const CMPS: u8 = 3;
pub(crate) const SCAS: u8 = 4;

const RAX: u8 = 0;
const RCX: usize = 1;
const RSI: usize = 6;
const RDI: usize = 7;

/// One iteration; registers are committed only after every access succeeded.
#[inline(always)]
fn once<B: Bus, W: Width, const OP: u8>(c: &mut Ctx<'_, B>, i: &Insn, amask: u64) -> R {
    let step = if c.r.rflags & DF != 0 {
        (W::BYTES as u64).wrapping_neg()
    } else {
        W::BYTES as u64
    };
    let si = c.r.gpr[RSI];
    let di = c.r.gpr[RDI];
    let src = (si & amask).wrapping_add(c.seg_base(i.seg));
    let dst = di & amask;
    let adv = |v: u64| v.wrapping_add(step) & amask;
    match OP {
        MOVS => {
            let v = c.load::<W>(src, false)?;
            c.store::<W>(dst, v, false)?;
            c.r.gpr[RSI] = adv(si);
            c.r.gpr[RDI] = adv(di);
        }
        STOS => {
            let v = c.reg::<W>(RAX);
            c.store::<W>(dst, v, false)?;
            c.r.gpr[RDI] = adv(di);
        }
        LODS => {
            let v = c.load::<W>(src, false)?;
            c.set_reg::<W>(RAX, v);
            c.r.gpr[RSI] = adv(si);
        }
        CMPS => {
            let a = c.load::<W>(src, false)?;
            let b = c.load::<W>(dst, false)?;
            c.set_lazy::<W>(kind::SUB, a, b, a.wrapping_sub(b) & W::MASK);
            c.r.gpr[RSI] = adv(si);
            c.r.gpr[RDI] = adv(di);
        }
        _ => {
            let b = c.load::<W>(dst, false)?;
            let a = c.reg::<W>(RAX);
            c.set_lazy::<W>(kind::SUB, a, b, a.wrapping_sub(b) & W::MASK);
            c.r.gpr[RDI] = adv(di);
        }
    }
    Ok(Flow::Next)
}

/// A string instruction, with or without a repeat prefix.
#[inline(always)]
pub(crate) fn string<B: Bus, W: Width, const OP: u8>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let amask = if i.attr & attr::A32 != 0 {
        0xffff_ffff
    } else {
        u64::MAX
    };
    if i.attr & (attr::REP | attr::REPNE) == 0 {
        return once::<B, W, OP>(c, i, amask);
    }
    let compare = OP == CMPS || OP == SCAS;
    let repne = i.attr & attr::REPNE != 0;
    // Iterations beyond the first are added to `retired` here; the run loop counts one.
    let budget_left = c.limits.budget - c.retired;
    let mut done: u64 = 0;
    loop {
        let cnt = c.r.gpr[RCX] & amask;
        if cnt == 0 {
            c.retired += done.saturating_sub(1);
            return Ok(Flow::Next);
        }
        if done == budget_left {
            c.retired += done - 1;
            return Ok(Flow::Repeat);
        }
        if let Err(f) = once::<B, W, OP>(c, i, amask) {
            c.retired += done;
            return Err(f);
        }
        c.r.gpr[RCX] = (cnt - 1) & amask;
        done += 1;
        if compare {
            let zf = c.cond(4);
            if zf == repne {
                c.retired += done - 1;
                return Ok(Flow::Next);
            }
        }
    }
}
