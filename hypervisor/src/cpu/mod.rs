//! The x86-64 interpreter that runs PV guest kernels.
//!
//! [`Regs`] is the architectural register state of one vCPU; the model stores it per vCPU
//! and converts it to and from `vcpu_guest_context`. [`run`] executes instructions from
//! `regs.rip` against a [`Bus`] (the model's page-table translation, or [`FlatMemory`] in
//! tests) until an [`Exit`]: a `syscall`, an exception to deliver, or the end of the
//! instruction budget.
//!
//! ## Shape
//!
//! - [`decode`]: iced-x86 decodes each code page once into compact instructions, cached per
//!   page key in a [`DecodeCache`] and re-decoded when the page's generation changes.
//! - [`dispatch`]: one `match` on iced's `Code` picks the handler in [`ops`] (one file per
//!   instruction family) and its operand width.
//! - [`flags`]: the arithmetic flag rules as pure width-generic functions, including the
//!   values chosen for architecturally undefined flags.
//! - [`cpuid`]: the fixed CPUID table.
//!
//! ## Model of the CPU
//!
//! 64-bit mode, CPL 3 (a 64-bit PV guest's kernel and user both run in ring 3), flat
//! segments except the fs/gs bases. Privileged instructions raise #GP(0); `hlt` too (a PV
//! guest blocks with a hypercall). Exceptions are precise: a faulting instruction changes
//! nothing (a `rep` string instruction keeps the iterations it completed, as on hardware).
//! Time is virtual: the TSC advances [`TSC_PER_INSN`] per retired instruction.
//! The interpreter never panics on guest input.

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
