//! The instruction subset toy guests are written in, and a decoder check that an image
//! uses nothing else (so no guest depends on an instruction the interpreter lacks).
//!
//! Allowed: mov, movzx, lea, add, sub, cmp, and, or, xor, test, inc, dec, shl, shr,
//! imul, div, push, pop, call, ret, jmp, jcc, loop, setcc, cmovcc, `rep movs`/`rep stos`,
//! xchg, cmpxchg, the `lock` prefix (on a memory read-modify-write), pause, cpuid, rdtsc,
//! syscall. No SSE/AVX, no hlt (a PV kernel runs in ring 3).

use std::collections::BTreeSet;

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};

/// Mnemonics a toy guest may use.
pub const ALLOWED: &[Mnemonic] = &[
    Mnemonic::Mov,
    Mnemonic::Movzx,
    Mnemonic::Lea,
    Mnemonic::Add,
    Mnemonic::Sub,
    Mnemonic::Cmp,
    Mnemonic::And,
    Mnemonic::Or,
    Mnemonic::Xor,
    Mnemonic::Test,
    Mnemonic::Inc,
    Mnemonic::Dec,
    Mnemonic::Shl,
    Mnemonic::Shr,
    Mnemonic::Imul,
    Mnemonic::Div,
    Mnemonic::Push,
    Mnemonic::Pop,
    Mnemonic::Call,
    Mnemonic::Ret,
    Mnemonic::Jmp,
    Mnemonic::Ja,
    Mnemonic::Jae,
    Mnemonic::Jb,
    Mnemonic::Jbe,
    Mnemonic::Je,
    Mnemonic::Jne,
    Mnemonic::Jg,
    Mnemonic::Jge,
    Mnemonic::Jl,
    Mnemonic::Jle,
    Mnemonic::Js,
    Mnemonic::Jns,
    Mnemonic::Jo,
    Mnemonic::Jno,
    Mnemonic::Jp,
    Mnemonic::Jnp,
    Mnemonic::Loop,
    Mnemonic::Seta,
    Mnemonic::Setae,
    Mnemonic::Setb,
    Mnemonic::Setbe,
    Mnemonic::Sete,
    Mnemonic::Setne,
    Mnemonic::Setg,
    Mnemonic::Setge,
    Mnemonic::Setl,
    Mnemonic::Setle,
    Mnemonic::Sets,
    Mnemonic::Setns,
    Mnemonic::Cmova,
    Mnemonic::Cmovae,
    Mnemonic::Cmovb,
    Mnemonic::Cmovbe,
    Mnemonic::Cmove,
    Mnemonic::Cmovne,
    Mnemonic::Cmovg,
    Mnemonic::Cmovge,
    Mnemonic::Cmovl,
    Mnemonic::Cmovle,
    Mnemonic::Cmovs,
    Mnemonic::Cmovns,
    Mnemonic::Movsb,
    Mnemonic::Movsw,
    Mnemonic::Movsd,
    Mnemonic::Movsq,
    Mnemonic::Stosb,
    Mnemonic::Stosw,
    Mnemonic::Stosd,
    Mnemonic::Stosq,
    Mnemonic::Xchg,
    Mnemonic::Cmpxchg,
    Mnemonic::Pause,
    Mnemonic::Cpuid,
    Mnemonic::Rdtsc,
    Mnemonic::Syscall,
];

/// Mnemonics that may carry `lock` (with a memory destination).
const LOCKABLE: &[Mnemonic] = &[
    Mnemonic::Add,
    Mnemonic::Sub,
    Mnemonic::And,
    Mnemonic::Or,
    Mnemonic::Xor,
    Mnemonic::Inc,
    Mnemonic::Dec,
    Mnemonic::Xchg,
    Mnemonic::Cmpxchg,
];

/// String instructions (allowed only with `rep`).
const STRING: &[Mnemonic] = &[
    Mnemonic::Movsb,
    Mnemonic::Movsw,
    Mnemonic::Movsd,
    Mnemonic::Movsq,
    Mnemonic::Stosb,
    Mnemonic::Stosw,
    Mnemonic::Stosd,
    Mnemonic::Stosq,
];

/// An instruction outside the subset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{ip:#x}: {what}: {text}")]
pub struct IsaViolation {
    /// Its address.
    pub ip: u64,
    /// What is wrong.
    pub what: &'static str,
    /// The instruction, formatted.
    pub text: String,
}

fn violation(i: &Instruction, what: &'static str) -> IsaViolation {
    IsaViolation {
        ip: i.ip(),
        what,
        text: format!("{i}"),
    }
}

/// Decodes `code` (loaded at `ip`) and checks every instruction; returns the set of
/// iced [`Code`]s used.
///
/// # Errors
/// The first [`IsaViolation`].
pub fn check_code(code: &[u8], ip: u64) -> Result<BTreeSet<Code>, IsaViolation> {
    let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut used = BTreeSet::new();
    let mut i = Instruction::default();
    while d.can_decode() {
        d.decode_out(&mut i);
        if i.is_invalid() {
            return Err(violation(&i, "undecodable bytes"));
        }
        let m = i.mnemonic();
        if !ALLOWED.contains(&m) {
            return Err(violation(&i, "instruction outside the subset"));
        }
        if (i.has_rep_prefix() || i.has_repne_prefix()) != STRING.contains(&m) {
            return Err(violation(
                &i,
                "rep prefix must go with (and only with) movs/stos",
            ));
        }
        if i.has_repne_prefix() {
            return Err(violation(&i, "repne prefix"));
        }
        if i.has_lock_prefix() && !(LOCKABLE.contains(&m) && i.op0_kind() == OpKind::Memory) {
            return Err(violation(&i, "lock prefix on a non-RMW instruction"));
        }
        used.insert(i.code());
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_outside_the_subset() {
        // hlt
        assert!(check_code(&[0xf4], 0).is_err());
        // bsf rax, rcx
        assert!(check_code(&[0x48, 0x0f, 0xbc, 0xc1], 0).is_err());
        // movaps xmm0, xmm1
        assert!(check_code(&[0x0f, 0x28, 0xc1], 0).is_err());
        // lock add rax, rcx would be invalid; lock add [rax], rcx is fine.
        assert!(check_code(&[0xf0, 0x48, 0x01, 0x08], 0).is_ok());
        // movsb without rep
        assert!(check_code(&[0xa4], 0).is_err());
        // rep stosq
        assert!(check_code(&[0xf3, 0x48, 0xab], 0).is_ok());
        // syscall; ret
        assert_eq!(check_code(&[0x0f, 0x05, 0xc3], 0).unwrap().len(), 2);
    }
}
