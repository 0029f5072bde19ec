//! Data movement: mov movzx movsx movsxd lea xchg cmpxchg xadd movbe xlat, the cbw/cwd
//! family, setcc, cmovcc, lahf/sahf, and reading segment selectors.

use crate::cpu::bus::{Bus, Fault};
use crate::cpu::decode::{attr, Insn, SREG};
use crate::cpu::exec::{Ctx, Flow, Loc, R};
use crate::cpu::flags::{Width, AF, CF, PF, RESERVED1, SF, W16, W32, W64, W8, ZF};
use crate::cpu::lazy::kind;

const RAX: u8 = 0;
const RDX: u8 = 2;

/// `mov r/m, reg`, `mov reg, r/m`, `mov r/m, imm`, `mov reg, imm`, moffs forms: operand 0
/// is the destination, operand 1 the source (register, memory or immediate per `SRC`).
pub(crate) const SRC_REG: u8 = 0;
pub(crate) const SRC_RM: u8 = 1;
pub(crate) const SRC_IMM: u8 = 2;

/// `mov` in all its forms.
#[inline(always)]
pub(crate) fn mov<B: Bus, W: Width, const SRC: u8>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let v = match SRC {
        SRC_REG => c.reg::<W>(i.r[1]),
        SRC_RM => c.read_rm::<W>(i, 1)?,
        _ => i.imm,
    };
    if SRC == SRC_RM {
        c.set_reg::<W>(i.r[0], v);
        Ok(Flow::Next)
    } else {
        let l = c.loc(i, 0);
        c.write::<W>(l, v)?;
        Ok(Flow::Next)
    }
}

/// `movzx`/`movsx`/`movsxd reg(D), r/m(S)`.
#[inline(always)]
pub(crate) fn movx<B: Bus, D: Width, S: Width, const SIGNED: bool>(
    c: &mut Ctx<'_, B>,
    i: &Insn,
) -> R {
    let v = c.read_rm::<S>(i, 1)?;
    let v = if SIGNED { S::sext(v) } else { v };
    c.set_reg::<D>(i.r[0], v & D::MASK);
    Ok(Flow::Next)
}

/// `lea reg, m`: the offset, no segment base, truncated to the destination.
#[inline(always)]
pub(crate) fn lea<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let a = c.offset(i);
    c.set_reg::<W>(i.r[0], a);
    Ok(Flow::Next)
}

/// `xchg r/m, reg` and `xchg reg, rAX` (memory forms are implicitly locked).
#[inline(always)]
pub(crate) fn xchg<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let l = c.loc(i, 0);
    let a = c.read::<W>(l)?;
    let b = c.reg::<W>(i.r[1]);
    c.write::<W>(l, b)?;
    c.set_reg::<W>(i.r[1], a);
    Ok(Flow::Next)
}

/// `cmpxchg r/m, reg`: compare rAX with the destination; equal → store reg, else load rAX.
/// A memory destination is always written (with its own value on mismatch), as hardware
/// does.
#[inline(always)]
pub(crate) fn cmpxchg<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let l = c.loc(i, 0);
    let d = c.read::<W>(l)?;
    let acc = c.reg::<W>(RAX);
    if acc == d {
        let s = c.reg::<W>(i.r[1]);
        c.write::<W>(l, s)?;
    } else {
        if let Loc::Mem(..) = l {
            c.write::<W>(l, d)?;
        }
        c.set_reg::<W>(RAX, d);
    }
    c.set_lazy::<W>(kind::SUB, acc, d, acc.wrapping_sub(d) & W::MASK);
    Ok(Flow::Next)
}

/// `cmpxchg8b m64` / `cmpxchg16b m128` (`W` = the half width: W32 or W64).
/// cmpxchg16b needs a 16-byte aligned operand (#GP(0) otherwise).
#[inline(always)]
pub(crate) fn cmpxchg_double<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let Loc::Mem(a, stack) = c.loc(i, 0) else {
        return Err(Fault::UD);
    };
    let n = 2 * W::BYTES;
    if W::BITS == 64 && a & 15 != 0 {
        return Err(Fault::gp(0));
    }
    let mut buf = [0u8; 16];
    c.load_bytes(a, &mut buf[..n], stack)?;
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo[..W::BYTES].copy_from_slice(&buf[..W::BYTES]);
    hi[..W::BYTES].copy_from_slice(&buf[W::BYTES..n]);
    let (mlo, mhi) = (u64::from_le_bytes(lo), u64::from_le_bytes(hi));
    let eq = mlo == c.reg::<W>(RAX) && mhi == c.reg::<W>(RDX);
    if eq {
        let (nlo, nhi) = (c.reg::<W>(3), c.reg::<W>(1)); // rbx, rcx
        buf[..W::BYTES].copy_from_slice(&nlo.to_le_bytes()[..W::BYTES]);
        buf[W::BYTES..n].copy_from_slice(&nhi.to_le_bytes()[..W::BYTES]);
    }
    c.store_bytes(a, &buf[..n], stack)?;
    if !eq {
        c.set_reg::<W>(RAX, mlo);
        c.set_reg::<W>(RDX, mhi);
    }
    let f = (c.flags() & !ZF) | if eq { ZF } else { 0 };
    c.set_flags(f);
    Ok(Flow::Next)
}

/// `xadd r/m, reg`: reg ← dest, dest ← dest + reg.
#[inline(always)]
pub(crate) fn xadd<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let l = c.loc(i, 0);
    let d = c.read::<W>(l)?;
    let s = c.reg::<W>(i.r[1]);
    let sum = d.wrapping_add(s) & W::MASK;
    if let Loc::Mem(..) = l {
        c.write::<W>(l, sum)?;
        c.set_reg::<W>(i.r[1], d);
    } else {
        // Register form: the source gets the old destination first, then the destination
        // the sum (so `xadd rax, rax` leaves the sum).
        c.set_reg::<W>(i.r[1], d);
        c.write::<W>(l, sum)?;
    }
    c.set_lazy::<W>(kind::ADD, d, s, sum);
    Ok(Flow::Next)
}

/// `movbe reg, m` / `movbe m, reg` (`LOAD` selects the first).
#[inline(always)]
pub(crate) fn movbe<B: Bus, W: Width, const LOAD: bool>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let swap = |v: u64| -> u64 {
        match W::BITS {
            16 => u64::from((v as u16).swap_bytes()),
            32 => u64::from((v as u32).swap_bytes()),
            _ => v.swap_bytes(),
        }
    };
    if LOAD {
        let v = c.read_rm::<W>(i, 1)?;
        c.set_reg::<W>(i.r[0], swap(v));
    } else {
        let l = c.loc(i, 0);
        let v = swap(c.reg::<W>(i.r[1]));
        c.write::<W>(l, v)?;
    }
    Ok(Flow::Next)
}

/// `xlat`: al ← [seg:rbx + al].
#[inline(always)]
pub(crate) fn xlat<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let mut off = c.gpr(3).wrapping_add(c.gpr(0) & 0xff);
    if i.attr & attr::A32 != 0 {
        off &= 0xffff_ffff;
    }
    let a = off.wrapping_add(c.seg_base(i.seg));
    let v = c.load::<W8>(a, false)?;
    c.set_reg::<W8>(RAX, v);
    Ok(Flow::Next)
}

/// cbw/cwde/cdqe: sign-extend the lower half of rAX into the `W`-wide rAX.
#[inline(always)]
pub(crate) fn cbw<B: Bus, W: Width>(c: &mut Ctx<'_, B>) -> R {
    let v = c.gpr(0);
    let r = match W::BITS {
        16 => W8::sext(v),
        32 => W16::sext(v),
        _ => W32::sext(v),
    };
    c.set_reg::<W>(RAX, r);
    Ok(Flow::Next)
}

/// cwd/cdq/cqo: fill rDX with the sign of rAX.
#[inline(always)]
pub(crate) fn cwd<B: Bus, W: Width>(c: &mut Ctx<'_, B>) -> R {
    let neg = c.reg::<W>(RAX) & W::SIGN != 0;
    c.set_reg::<W>(RDX, if neg { u64::MAX } else { 0 });
    Ok(Flow::Next)
}

/// `setcc r/m8`.
#[inline(always)]
pub(crate) fn setcc<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn, cc: u8) -> R {
    let v = u64::from(c.cond(cc));
    let l = c.loc(i, 0);
    c.write::<W8>(l, v)?;
    Ok(Flow::Next)
}

/// `cmovcc reg, r/m`: the source is read (and may fault) whatever the condition, and a
/// 32-bit destination is zero-extended even when the move does not happen.
#[inline(always)]
pub(crate) fn cmovcc<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn, cc: u8) -> R {
    let s = c.read_rm::<W>(i, 1)?;
    let v = if c.cond(cc) { s } else { c.reg::<W>(i.r[0]) };
    c.set_reg::<W>(i.r[0], v);
    Ok(Flow::Next)
}

/// `lahf`: AH ← SF:ZF:0:AF:0:PF:1:CF.
pub(crate) fn lahf<B: Bus>(c: &mut Ctx<'_, B>) -> R {
    let v = (c.flags() & (SF | ZF | AF | PF | CF)) | RESERVED1;
    c.set_reg::<W8>(crate::cpu::decode::HIGH8, v);
    Ok(Flow::Next)
}

/// `sahf`: SF ZF AF PF CF ← AH.
pub(crate) fn sahf<B: Bus>(c: &mut Ctx<'_, B>) -> R {
    let m = SF | ZF | AF | PF | CF;
    let ah = c.reg::<W8>(crate::cpu::decode::HIGH8);
    let f = (c.flags() & !m) | (ah & m);
    c.set_flags(f);
    Ok(Flow::Next)
}

/// `mov r/m, Sreg`: a 32/64-bit register destination gets the selector zero-extended, a
/// 16-bit one and memory get 16 bits.
pub(crate) fn mov_from_sreg<B: Bus, W: Width>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    let sel = match i.r[1].wrapping_sub(SREG) {
        0 => c.r.es,
        1 => c.r.cs,
        2 => c.r.ss,
        3 => c.r.ds,
        4 => c.r.fs,
        5 => c.r.gs,
        _ => return Err(Fault::UD),
    };
    let v = u64::from(sel);
    match c.loc(i, 0) {
        l @ Loc::Mem(..) => c.write::<W16>(l, v)?,
        Loc::Reg(r) => match W::BITS {
            64 => c.set_reg::<W64>(r, v),
            32 => c.set_reg::<W32>(r, v),
            _ => c.set_reg::<W16>(r, v),
        },
    }
    Ok(Flow::Next)
}
