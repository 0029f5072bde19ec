//! The x86-64 interpreter that runs PV guest kernels.
//!
//! [`Regs`] is the architectural register state of one vCPU; the model stores it per vCPU
//! and converts it to and from `vcpu_guest_context`. [`run`] executes instructions from
//! `regs.rip` against a [`Bus`] (the model's page-table translation, or [`FlatMemory`] in
//! tests) until an [`Exit`]: a `syscall`, an exception to deliver, or the end of the
//! instruction budget.
//!
//! ```text
//! run(&mut regs, &mut bus, &mut cache, RunLimits { budget, tsc, tsc_aux }) -> RunResult { exit, retired }
//!     loop: bus.fetch_page(rip) ─► cache.page(key, gen) ─► decoded Insn at rip & 0xfff
//!           ─► dispatch (match on iced Code) ─► ops::<family> handler ─► Flow
//!           (stays inside the page until a branch leaves it, a store changes it, or an exit)
//! ```
//!
//! ## Shape
//!
//! - `decode`: iced-x86 decodes each code page once, lazily in straight-line runs, into
//!   compact 32-byte instructions, cached per page key in a [`DecodeCache`] and re-decoded
//!   when the page's generation changes (self-modifying code, or the frame reused).
//! - `dispatch`: one `match` on iced's `Code` picks the handler in `ops` (one file per
//!   instruction family) and its operand width; hot instructions are inlined into the run
//!   loop, the rarer families are called out of line.
//! - [`flags`]: the arithmetic flag rules as pure width-generic functions, including the
//!   values chosen for architecturally undefined flags; `lazy` defers them for the common
//!   producers until something reads them.
//! - [`cpuid`]: the fixed CPUID table.
//!
//! ## Model of the CPU
//!
//! 64-bit mode, CPL 3 (a 64-bit PV guest's kernel and user both run in ring 3), flat
//! segments except the fs/gs bases. Exceptions are precise: a faulting instruction changes
//! nothing (a `rep` string instruction keeps the iterations it completed, as on hardware);
//! traps (int3, int1) report `rip` after the instruction. Time is virtual: the TSC reads
//! `limits.tsc + retired * TSC_PER_INSN`. The interpreter never panics on guest input.
//!
//! Implemented (all operand sizes the instruction has, memory and register forms):
//! mov movzx movsx movsxd lea xchg cmpxchg cmpxchg8b/16b xadd movbe xlat bswap;
//! add or adc sbb and sub xor cmp test not neg inc dec (with `lock` on the lockable forms);
//! shl/sal shr sar rol ror rcl rcr shld shrd; mul imul (1, 2, 3 operands) div idiv;
//! bt bts btr btc; bsf bsr tzcnt lzcnt popcnt andn bextr blsi blsmsk blsr;
//! push pop call ret (imm16) enter leave pushf popf; jmp jcc loop loope loopne jrcxz jecxz
//! setcc cmovcc; cbw cwde cdqe cwd cdq cqo; movs stos lods cmps scas with rep/repe/repne;
//! clc stc cmc cld std lahf sahf; mov from segment registers; nop (all forms), pause,
//! endbr, the hint nops, prefetches and fences; cpuid rdtsc rdtscp; syscall
//! ([`Exit::Syscall`]); int3 (#BP), int1 (#DB), `int n` (#GP(n·8+2) — Xen's IDT gate for
//! the model to emulate), ud0/ud1/ud2 (#UD).
//!
//! #GP(0) (privileged in ring 3): hlt cli sti swapgs rdmsr wrmsr rdpmc mov to/from cr/dr
//! lgdt lidt lldt ltr lmsw clts invd wbinvd invlpg xsetbv sysret in/out/ins/outs.
//!
//! #UD (not implemented, and not advertised by CPUID): x87, MMX, SSE and everything VEX/EVEX
//! except BMI1; far jmp/call/ret, iret, sysenter/sysexit; mov to segment registers,
//! push/pop of segment registers, lar/lsl/verr/verw, sgdt/sidt/sldt/str/smsw; rdfsbase and
//! friends (CR4.FSGSBASE is off); rdrand/rdseed/rdpid; clflush; anything else iced-x86
//! does not decode, or decodes as invalid (an illegal `lock`, more than 15 bytes, opcodes
//! invalid in 64-bit mode). A 66 prefix on a near branch is ignored, as on Intel.

mod bus;
pub mod cpuid;
mod decode;
mod dispatch;
mod exec;
pub mod flags;
mod flat;
mod lazy;
mod ops;

pub use bus::{pf_error, vector, Bus, CodePage, Exit, Fault};
pub use decode::DecodeCache;
pub use exec::{run, RunLimits, RunResult, TSC_PER_INSN};
pub use flat::FlatMemory;

/// General-purpose register indices, in the hardware encoding order.
pub mod gpr {
    /// rax
    pub const RAX: usize = 0;
    /// rcx
    pub const RCX: usize = 1;
    /// rdx
    pub const RDX: usize = 2;
    /// rbx
    pub const RBX: usize = 3;
    /// rsp
    pub const RSP: usize = 4;
    /// rbp
    pub const RBP: usize = 5;
    /// rsi
    pub const RSI: usize = 6;
    /// rdi
    pub const RDI: usize = 7;
    /// r8
    pub const R8: usize = 8;
    /// r9
    pub const R9: usize = 9;
    /// r10
    pub const R10: usize = 10;
    /// r11
    pub const R11: usize = 11;
    /// r12
    pub const R12: usize = 12;
    /// r13
    pub const R13: usize = 13;
    /// r14
    pub const R14: usize = 14;
    /// r15
    pub const R15: usize = 15;
}

/// Architectural register state of one vCPU.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Regs {
    /// rax..r15 in hardware encoding order (see [`gpr`]).
    pub gpr: [u64; 16],
    /// Instruction pointer.
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// Code segment selector.
    pub cs: u16,
    /// Stack segment selector.
    pub ss: u16,
    /// Data segment selectors.
    pub ds: u16,
    /// Extra segment selector.
    pub es: u16,
    /// fs selector.
    pub fs: u16,
    /// gs selector.
    pub gs: u16,
    /// fs base.
    pub fs_base: u64,
    /// Active gs base (kernel or user, whichever mode the vCPU is in).
    pub gs_base: u64,
    /// The inactive gs base (swapped by `swapgs`/mode switch).
    pub gs_base_shadow: u64,
}

#[cfg(test)]
mod tests;
