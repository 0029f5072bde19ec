//! The x86-64 interpreter that runs PV guest kernels (to be filled by the vCPU issue).
//!
//! [`Regs`] is the architectural register state of one vCPU; the model stores it per vCPU
//! and converts it to and from `vcpu_guest_context`.

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
