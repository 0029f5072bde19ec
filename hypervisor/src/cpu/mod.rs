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
//! ## CPUID
//!
//! A fixed table, the same on every host ([`cpuid::cpuid`] has it leaf by leaf): basic
//! leaves 0, 1 and 7.0 (vendor `XiVirtualCPU`, family 6; POPCNT MOVBE CX16 CX8 CMOV TSC,
//! the hypervisor bit, BMI1), Xen's leaves 0x4000_0000..=0x4000_0002 (`XenVMMXenVMM`,
//! version 4.17, one hypercall page), extended leaves 0x8000_0000..=0x8000_0004 and
//! 0x8000_0008 (LAHF/SAHF, LZCNT, SYSCALL, NX, RDTSCP, long mode, the brand string,
//! 48-bit linear / 40-bit physical addresses). Every other leaf and subleaf reads as
//! zeros. Only what is implemented is advertised.
//!
//! ## Virtual time
//!
//! The TSC advances [`TSC_PER_INSN`] = 1 tick per retired instruction (a `rep` iteration
//! is one instruction): `rdtsc` reads `limits.tsc + retired`. The model runs that TSC at
//! 1 GHz, so one instruction is one nanosecond of guest time, and `vcpu_time_info`,
//! singleshot timers and VIRQ_TIMER all follow it (see `model::run`); nothing reads the
//! host clock.
//!
//! ## Decode-cache invalidation
//!
//! Decoded instructions are cached per code page under the [`Bus`]'s page key (the
//! machine frame in the model) and tagged with the page's generation. The rule:
//! **any store to a frame that has been decoded bumps that frame's generation** (the
//! model's `Memory` does it for guest stores, A/D updates, hypercall copies, foreign
//! writes and frame reuse). After every instruction that stored, the run loop asks
//! [`Bus::code_page_current`] and, if the running page changed, refetches — so
//! self-modifying code, including a store into the instruction's own page, takes
//! effect from the next instruction, as on hardware. A page whose generation moved is
//! re-decoded from scratch on its next fetch. The cache is bounded
//! ([`DecodeCache::MAX_PAGES`]) and flushed whole when full (deterministic).
//!
//! ## Speed
//!
//! `cargo bench -p benches --bench interp` measures guest instructions per second
//! (criterion's `Melem/s`) for a register ALU loop, a memory-walking loop and a
//! call/ret-heavy loop, each over flat memory (`interp/flat/*`) and as a real PV guest
//! through the model's page tables and scheduler (`interp/model/*`). On a busy machine
//! add `-- --measurement-time 5 --sample-size 20`. The hot path: one `match` on the
//! cached `Code` per instruction, lazy flags, `rip` in a local while control stays in
//! the page, and a per-run TLB in the model's bus.
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
