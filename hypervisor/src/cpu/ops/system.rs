//! System and miscellaneous: flag instructions, cpuid, rdtsc/rdtscp, syscall, software
//! interrupts, and the privileged instructions a ring-3 PV guest may not execute.

use crate::cpu::bus::{Bus, Fault};
use crate::cpu::cpuid;
use crate::cpu::decode::Insn;
use crate::cpu::exec::{Ctx, Flow, R};
use crate::cpu::flags::{CF, DF, W32};

/// Flag-setting instructions.
pub(crate) const CLC: u8 = 0;
pub(crate) const STC: u8 = 1;
pub(crate) const CMC: u8 = 2;
pub(crate) const CLD: u8 = 3;
pub(crate) const STD: u8 = 4;

/// clc stc cmc cld std.
#[inline(always)]
pub(crate) fn flag<B: Bus, const OP: u8>(c: &mut Ctx<'_, B>) -> R {
    // DF is never pending, so cld/std need not materialise the arithmetic flags.
    match OP {
        CLD => c.r.rflags &= !DF,
        STD => c.r.rflags |= DF,
        _ => {
            let f = c.flags();
            c.set_flags(match OP {
                CLC => f & !CF,
                STC => f | CF,
                _ => f ^ CF,
            });
        }
    }
    Ok(Flow::Next)
}

/// `cpuid` from the fixed table in [`cpuid`].
pub(crate) fn cpuid<B: Bus>(c: &mut Ctx<'_, B>) -> R {
    let [a, b, cx, d] = cpuid::cpuid(c.gpr(0) as u32, c.gpr(1) as u32);
    c.set_reg::<W32>(0, u64::from(a));
    c.set_reg::<W32>(3, u64::from(b));
    c.set_reg::<W32>(1, u64::from(cx));
    c.set_reg::<W32>(2, u64::from(d));
    Ok(Flow::Next)
}

/// `rdtsc` (`AUX` = false) / `rdtscp`: edx:eax ← the virtual TSC (and ecx ← TSC_AUX).
pub(crate) fn rdtsc<B: Bus, const AUX: bool>(c: &mut Ctx<'_, B>) -> R {
    let t = c.tsc();
    c.set_reg::<W32>(0, t);
    c.set_reg::<W32>(2, t >> 32);
    if AUX {
        c.set_reg::<W32>(1, u64::from(c.limits.tsc_aux));
    }
    Ok(Flow::Next)
}

/// `int imm8`: vector 3 is a #BP trap (Xen's IDT gives it DPL 3); every other vector hits
/// a DPL-0 gate in ring 3 → #GP(vector * 8 + 2) at the instruction.
pub(crate) fn int_n<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let v = (i.imm & 0xff) as u8;
    if v == crate::cpu::bus::vector::BP {
        trap(c, Fault::BP)
    } else {
        Err(Fault::gp(u32::from(v) * 8 + 2))
    }
}

/// A trap: reported after the instruction retires.
pub(crate) fn trap<B: Bus>(c: &mut Ctx<'_, B>, f: Fault) -> R {
    c.fault = f;
    Ok(Flow::Trap)
}
