//! x86-64 PV vcpu state (public/arch-x86/xen.h, arch-x86/xen-x86_64.h):
//! `trap_info`, `cpu_user_regs`, `vcpu_guest_context`, the `iret` hypercall frame and
//! the frame Xen writes on the guest kernel stack when it delivers an exception or an
//! event (the "bounce frame").
//!
//! # The bounce frame
//!
//! When Xen injects an exception, an event upcall or a syscall/int80 into a 64-bit PV
//! kernel (`create_bounce_frame` in xen/arch/x86/x86_64/entry.S), it builds this frame:
//!
//! 1. It chooses the stack. If the vcpu was already in guest kernel mode, the frame
//!    goes below the interrupted `rsp`, and Xen clears the two RPL bits of the saved
//!    CS so the kernel can tell a kernel context (RPL 0) from a user one (RPL 3). If
//!    the vcpu was in user mode, Xen first switches it to kernel mode (kernel page
//!    tables, kernel GS base) and uses the registered `kernel_sp`. Either way the
//!    pointer is rounded down to a multiple of 16. A frame that would land inside
//!    Xen's virtual range crashes the domain.
//! 2. From the top (highest address) down, it stores one 8-byte word each:
//!    the interrupted SS; RSP; RFLAGS, with IF replaced by the inverse of the
//!    vcpu's `evtchn_upcall_mask` as it was before delivery; CS in bits 0..15 with
//!    that saved upcall mask in bits 32..39 ([`BOUNCE_CS_UPCALL_MASK_SHIFT`]); RIP;
//!    then, only for exceptions that have one, the error code; then R11 and, at the
//!    lowest address, RCX. [`BounceFrame`] and [`BounceFrameErrCode`] are these two
//!    shapes, read from the final stack pointer upwards.
//! 3. If the bounce asks for events to be masked (event upcalls always; exceptions
//!    whose trap_info has [`TI_IF`]; syscalls with [`VGCF_SYSCALL_DISABLES_EVENTS`]),
//!    it sets `evtchn_upcall_mask`.
//! 4. It resumes the guest at the handler with `rsp` = the frame's lowest address,
//!    CS = `FLAT_KERNEL_CS`, SS = `FLAT_KERNEL_SS`, and TF, NT, RF, VM and AC cleared
//!    in RFLAGS ([`BOUNCE_RFLAGS_CLEAR`]).
//!
//! The failsafe callback (taken when Xen cannot load a guest segment register on the
//! way back to the guest) uses the same frame with no error code and the four data
//! selectors DS, ES, FS, GS between R11 and RIP: [`FailsafeFrame`].
//!
//! The guest unwinds such a frame by popping RCX and R11 itself (the hardware
//! `syscall`-style clobbers) and then invoking the `iret` hypercall with an
//! [`IretContext`] on its stack.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// trap_info `flags`: mask of the DPL allowed to raise the vector with `int`.
pub const TI_DPL_MASK: u8 = 3;
/// trap_info `flags`: deliver with events masked (like an interrupt gate).
pub const TI_IF: u8 = 1 << 2;

/// The DPL in a trap_info `flags` byte (`TI_GET_DPL`).
#[must_use]
pub const fn ti_get_dpl(flags: u8) -> u8 {
    flags & TI_DPL_MASK
}

/// Whether a trap_info masks events on delivery (`TI_GET_IF`).
#[must_use]
pub const fn ti_get_if(flags: u8) -> bool {
    flags & TI_IF != 0
}

/// `struct trap_info` (16 bytes): one virtual IDT entry.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// DPL in bits 0..1, [`TI_IF`] in bit 2.
    pub flags: u8,
    /// Code selector.
    pub cs: u16,
    /// Padding.
    pub pad: u32,
    /// Handler address.
    pub address: u64,
}

/// `struct cpu_user_regs` for x86-64 (200 bytes). `error_code`, `entry_vector` and
/// `saved_upcall_mask` are Xen-internal.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CpuUserRegs {
    /// R15.
    pub r15: u64,
    /// R14.
    pub r14: u64,
    /// R13.
    pub r13: u64,
    /// R12.
    pub r12: u64,
    /// RBP.
    pub rbp: u64,
    /// RBX.
    pub rbx: u64,
    /// R11.
    pub r11: u64,
    /// R10.
    pub r10: u64,
    /// R9.
    pub r9: u64,
    /// R8.
    pub r8: u64,
    /// RAX.
    pub rax: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// Error code of the last exception (Xen-internal).
    pub error_code: u32,
    /// Vector of the last entry (Xen-internal).
    pub entry_vector: u32,
    /// RIP.
    pub rip: u64,
    /// CS.
    pub cs: u16,
    /// Padding.
    pub pad0: u16,
    /// Saved upcall mask (Xen-internal; RFLAGS.IF == !saved_upcall_mask).
    pub saved_upcall_mask: u8,
    /// Padding.
    pub pad1: [u8; 3],
    /// RFLAGS.
    pub rflags: u64,
    /// RSP.
    pub rsp: u64,
    /// SS.
    pub ss: u16,
    /// Padding.
    pub pad2: [u16; 3],
    /// ES.
    pub es: u16,
    /// Padding.
    pub pad3: [u16; 3],
    /// DS.
    pub ds: u16,
    /// Padding.
    pub pad4: [u16; 3],
    /// FS.
    pub fs: u16,
    /// Padding.
    pub pad5: [u16; 3],
    /// GS.
    pub gs: u16,
    /// Padding.
    pub pad6: [u16; 3],
}

/// VGCF: `fpu_ctxt` holds valid FPU state.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// VGCF: the vcpu is in guest kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// VGCF: the failsafe callback masks events.
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// VGCF: the syscall callback masks events.
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// VGCF: the vcpu is online (setvcpucontext brings it up).
pub const VGCF_ONLINE: u64 = 1 << 5;
/// VGCF (in [`IretContext::flags`]): return as from `syscall`: restore RAX, RIP,
/// RFLAGS and RSP only, leaving R11, RCX, CS and SS to the sysret convention.
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// `struct vcpu_guest_context` for x86-64 (5168 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuGuestContext {
    /// FXSAVE image.
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    /// General registers.
    pub user_regs: CpuUserRegs,
    /// Virtual IDT.
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear address.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// GDT frames (MFNs).
    pub gdt_frames: [u64; 16],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Kernel stack selector.
    pub kernel_ss: u64,
    /// Kernel stack pointer.
    pub kernel_sp: u64,
    /// Control registers; CR3 = [`xen_pfn_to_cr3`] of the kernel L4, ctrlreg\[1\] =
    /// the user L4 in the same form.
    pub ctrlreg: [u64; 8],
    /// Debug registers.
    pub debugreg: [u64; 8],
    /// Event upcall entry point.
    pub event_callback_eip: u64,
    /// Failsafe entry point.
    pub failsafe_callback_eip: u64,
    /// syscall entry point.
    pub syscall_callback_eip: u64,
    /// VMASST bitmap.
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel GS base.
    pub gs_base_kernel: u64,
    /// User GS base.
    pub gs_base_user: u64,
}

/// CR3 value of a page-table root frame (64-bit PV: `pfn << 12`).
#[must_use]
pub const fn xen_pfn_to_cr3(pfn: u64) -> u64 {
    pfn << 12
}

/// Frame number in a CR3 value (64-bit PV: `cr3 >> 12`).
#[must_use]
pub const fn xen_cr3_to_pfn(cr3: u64) -> u64 {
    cr3 >> 12
}

/// `struct iret_context` (72 bytes): what a 64-bit PV guest leaves at `rsp` (lowest
/// address first) when it calls the `iret` hypercall.
///
/// Xen then: switches to user mode (user page tables) if the saved CS has RPL 3;
/// loads RIP, RSP and RFLAGS (forcing IF on and IOPL/VM off; with VMASST
/// architectural_iopl the IOPL is kept as the vcpu's virtual IOPL), and CS and SS with
/// RPL forced to 3; unless `flags` has [`VGCF_IN_SYSCALL`], also R11 and RCX (with it,
/// they are left as the sysret path sets them); sets `evtchn_upcall_mask` to the
/// inverse of the saved RFLAGS.IF; and returns the saved RAX as the hypercall result,
/// so RAX comes back unchanged.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct IretContext {
    /// RAX to restore.
    pub rax: u64,
    /// R11 to restore.
    pub r11: u64,
    /// RCX to restore.
    pub rcx: u64,
    /// [`VGCF_IN_SYSCALL`] or 0.
    pub flags: u64,
    /// RIP.
    pub rip: u64,
    /// CS.
    pub cs: u64,
    /// RFLAGS (IF = events unmasked after return).
    pub rflags: u64,
    /// RSP.
    pub rsp: u64,
    /// SS.
    pub ss: u64,
}

/// RFLAGS: trap flag.
pub const RFLAGS_TF: u64 = 1 << 8;
/// RFLAGS: interrupt flag.
pub const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS: direction flag.
pub const RFLAGS_DF: u64 = 1 << 10;
/// RFLAGS: I/O privilege level.
pub const RFLAGS_IOPL_MASK: u64 = 3 << 12;
/// RFLAGS: nested task.
pub const RFLAGS_NT: u64 = 1 << 14;
/// RFLAGS: resume flag.
pub const RFLAGS_RF: u64 = 1 << 16;
/// RFLAGS: virtual-8086 mode.
pub const RFLAGS_VM: u64 = 1 << 17;
/// RFLAGS: alignment check.
pub const RFLAGS_AC: u64 = 1 << 18;
/// RFLAGS bits Xen clears when it enters a guest handler through a bounce frame.
pub const BOUNCE_RFLAGS_CLEAR: u64 = RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_VM | RFLAGS_AC;
/// Bit position of the saved upcall mask inside a bounce frame's CS word.
pub const BOUNCE_CS_UPCALL_MASK_SHIFT: u32 = 32;
/// Xen rounds the stack pointer down to this alignment before writing a bounce frame.
pub const BOUNCE_FRAME_ALIGN: u64 = 16;

/// The bounce frame for events and exceptions without an error code (56 bytes),
/// lowest address first. See the module documentation.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct BounceFrame {
    /// Interrupted RCX.
    pub rcx: u64,
    /// Interrupted R11.
    pub r11: u64,
    /// Interrupted RIP.
    pub rip: u64,
    /// Interrupted CS (bits 0..15; RPL 0 if it was kernel mode) and the saved upcall
    /// mask (bits 32..39).
    pub cs: u64,
    /// Interrupted RFLAGS with IF = !saved upcall mask.
    pub rflags: u64,
    /// Interrupted RSP.
    pub rsp: u64,
    /// Interrupted SS.
    pub ss: u64,
}

/// The bounce frame for exceptions with an error code (64 bytes), lowest address
/// first.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct BounceFrameErrCode {
    /// Interrupted RCX.
    pub rcx: u64,
    /// Interrupted R11.
    pub r11: u64,
    /// The exception's error code (zero-extended).
    pub error_code: u64,
    /// Interrupted RIP.
    pub rip: u64,
    /// CS and saved upcall mask, as in [`BounceFrame::cs`].
    pub cs: u64,
    /// RFLAGS with IF = !saved upcall mask.
    pub rflags: u64,
    /// Interrupted RSP.
    pub rsp: u64,
    /// Interrupted SS.
    pub ss: u64,
}

/// The failsafe-callback frame (88 bytes), lowest address first.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct FailsafeFrame {
    /// Interrupted RCX.
    pub rcx: u64,
    /// Interrupted R11.
    pub r11: u64,
    /// DS selector Xen failed to load (or the current one).
    pub ds: u64,
    /// ES selector.
    pub es: u64,
    /// FS selector.
    pub fs: u64,
    /// GS selector.
    pub gs: u64,
    /// Interrupted RIP.
    pub rip: u64,
    /// CS and saved upcall mask, as in [`BounceFrame::cs`].
    pub cs: u64,
    /// RFLAGS with IF = !saved upcall mask.
    pub rflags: u64,
    /// Interrupted RSP.
    pub rsp: u64,
    /// Interrupted SS.
    pub ss: u64,
}

/// The CS word of a bounce frame: the selector and the saved upcall mask.
#[must_use]
pub const fn bounce_cs_word(cs: u16, saved_upcall_mask: u8) -> u64 {
    (cs as u64) | ((saved_upcall_mask as u64) << BOUNCE_CS_UPCALL_MASK_SHIFT)
}

/// The RFLAGS word of a bounce frame: `rflags` with IF set iff events were unmasked.
#[must_use]
pub const fn bounce_rflags_word(rflags: u64, saved_upcall_mask: u8) -> u64 {
    if saved_upcall_mask == 0 {
        rflags | RFLAGS_IF
    } else {
        rflags & !RFLAGS_IF
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn trap_info_layout() {
        assert_eq!(size_of::<TrapInfo>(), 16);
        assert_eq!(offset_of!(TrapInfo, flags), 1);
        assert_eq!(offset_of!(TrapInfo, cs), 2);
        assert_eq!(offset_of!(TrapInfo, address), 8);
        assert_eq!(ti_get_dpl(0x7), 3);
        assert!(ti_get_if(0x4) && !ti_get_if(0x3));
    }

    #[test]
    fn cpu_user_regs_layout() {
        assert_eq!(size_of::<CpuUserRegs>(), 200);
        assert_eq!(offset_of!(CpuUserRegs, r15), 0);
        assert_eq!(offset_of!(CpuUserRegs, r14), 8);
        assert_eq!(offset_of!(CpuUserRegs, r13), 16);
        assert_eq!(offset_of!(CpuUserRegs, r12), 24);
        assert_eq!(offset_of!(CpuUserRegs, rbp), 32);
        assert_eq!(offset_of!(CpuUserRegs, rbx), 40);
        assert_eq!(offset_of!(CpuUserRegs, r11), 48);
        assert_eq!(offset_of!(CpuUserRegs, r10), 56);
        assert_eq!(offset_of!(CpuUserRegs, r9), 64);
        assert_eq!(offset_of!(CpuUserRegs, r8), 72);
        assert_eq!(offset_of!(CpuUserRegs, rax), 80);
        assert_eq!(offset_of!(CpuUserRegs, rcx), 88);
        assert_eq!(offset_of!(CpuUserRegs, rdx), 96);
        assert_eq!(offset_of!(CpuUserRegs, rsi), 104);
        assert_eq!(offset_of!(CpuUserRegs, rdi), 112);
        assert_eq!(offset_of!(CpuUserRegs, error_code), 120);
        assert_eq!(offset_of!(CpuUserRegs, entry_vector), 124);
        assert_eq!(offset_of!(CpuUserRegs, rip), 128);
        assert_eq!(offset_of!(CpuUserRegs, cs), 136);
        assert_eq!(offset_of!(CpuUserRegs, saved_upcall_mask), 140);
        assert_eq!(offset_of!(CpuUserRegs, rflags), 144);
        assert_eq!(offset_of!(CpuUserRegs, rsp), 152);
        assert_eq!(offset_of!(CpuUserRegs, ss), 160);
        assert_eq!(offset_of!(CpuUserRegs, es), 168);
        assert_eq!(offset_of!(CpuUserRegs, ds), 176);
        assert_eq!(offset_of!(CpuUserRegs, fs), 184);
        assert_eq!(offset_of!(CpuUserRegs, gs), 192);
    }

    #[test]
    fn vcpu_guest_context_layout() {
        assert_eq!(size_of::<VcpuGuestContext>(), 5168);
        assert_eq!(offset_of!(VcpuGuestContext, fpu_ctxt), 0);
        assert_eq!(offset_of!(VcpuGuestContext, flags), 512);
        assert_eq!(offset_of!(VcpuGuestContext, user_regs), 520);
        assert_eq!(offset_of!(VcpuGuestContext, trap_ctxt), 720);
        assert_eq!(offset_of!(VcpuGuestContext, ldt_base), 4816);
        assert_eq!(offset_of!(VcpuGuestContext, ldt_ents), 4824);
        assert_eq!(offset_of!(VcpuGuestContext, gdt_frames), 4832);
        assert_eq!(offset_of!(VcpuGuestContext, gdt_ents), 4960);
        assert_eq!(offset_of!(VcpuGuestContext, kernel_ss), 4968);
        assert_eq!(offset_of!(VcpuGuestContext, kernel_sp), 4976);
        assert_eq!(offset_of!(VcpuGuestContext, ctrlreg), 4984);
        assert_eq!(offset_of!(VcpuGuestContext, debugreg), 5048);
        assert_eq!(offset_of!(VcpuGuestContext, event_callback_eip), 5112);
        assert_eq!(offset_of!(VcpuGuestContext, failsafe_callback_eip), 5120);
        assert_eq!(offset_of!(VcpuGuestContext, syscall_callback_eip), 5128);
        assert_eq!(offset_of!(VcpuGuestContext, vm_assist), 5136);
        assert_eq!(offset_of!(VcpuGuestContext, fs_base), 5144);
        assert_eq!(offset_of!(VcpuGuestContext, gs_base_kernel), 5152);
        assert_eq!(offset_of!(VcpuGuestContext, gs_base_user), 5160);
    }

    #[test]
    fn frames() {
        assert_eq!(size_of::<IretContext>(), 72);
        assert_eq!(offset_of!(IretContext, flags), 24);
        assert_eq!(offset_of!(IretContext, rip), 32);
        assert_eq!(offset_of!(IretContext, ss), 64);
        assert_eq!(size_of::<BounceFrame>(), 56);
        assert_eq!(offset_of!(BounceFrame, rip), 16);
        assert_eq!(size_of::<BounceFrameErrCode>(), 64);
        assert_eq!(offset_of!(BounceFrameErrCode, error_code), 16);
        assert_eq!(offset_of!(BounceFrameErrCode, rip), 24);
        assert_eq!(size_of::<FailsafeFrame>(), 88);
        assert_eq!(offset_of!(FailsafeFrame, ds), 16);
        assert_eq!(offset_of!(FailsafeFrame, rip), 48);
        assert_eq!(bounce_cs_word(0xe030, 1), 0x1_0000_e030);
        assert_eq!(bounce_rflags_word(0x202, 1), 0x2);
        assert_eq!(bounce_rflags_word(0x2, 0), 0x202);
        assert_eq!(xen_cr3_to_pfn(xen_pfn_to_cr3(0x1234)), 0x1234);
        assert_eq!(xen_pfn_to_cr3(0x1234), 0x123_4000);
    }
}
