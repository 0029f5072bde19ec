//! Per-instruction tests of results and flags on the flat-memory harness.

use iced_x86::code_asm::*;

use super::{Vm, CODE, DATA, STACK};
use crate::cpu::flags::{AF, CF, DF, ID, IF, OF, PF, SF, TF, ZF};
use crate::cpu::gpr::*;
use crate::cpu::{Bus, Exit, Fault};

fn done(vm: &mut Vm) {
    // Every test program ends in ud2; reaching it means everything before ran.
    assert_eq!(
        vm.run_to_exit(100_000),
        Exit::Exception(Fault::UD),
        "rip {:#x}",
        vm.regs.rip
    );
}

#[test]
fn alu_loop_sums() {
    let mut vm = Vm::with(|a| {
        let mut top = a.create_label();
        a.mov(ecx, 100)?;
        a.xor(eax, eax)?;
        a.set_label(&mut top)?;
        a.add(rax, rcx)?;
        a.dec(rcx)?;
        a.jnz(top)?;
        a.ud2()
    });
    done(&mut vm);
    assert_eq!(vm.gpr(RAX), 5050);
    assert_eq!(vm.regs.rflags & ZF, ZF);
}

#[test]
fn partial_register_writes() {
    let mut vm = Vm::with(|a| {
        a.mov(rax, 0x1122_3344_5566_7788u64)?;
        a.mov(rbx, rax)?;
        a.mov(rcx, rax)?;
        a.mov(rdx, rax)?;
        a.mov(eax, 0xdead_beefu32)?; // zero-extends
        a.mov(bx, 0xabcd)?; // merges 16
        a.mov(cl, 0x99)?; // merges low 8
        a.mov(dh, 0x42)?; // merges high 8
        a.mov(rsi, -1i64)?;
        a.add(esi, 0)?; // 32-bit ALU write zero-extends too
        a.ud2()
    });
    done(&mut vm);
    assert_eq!(vm.gpr(RAX), 0xdead_beef);
    assert_eq!(vm.gpr(RBX), 0x1122_3344_5566_abcd);
    assert_eq!(vm.gpr(RCX), 0x1122_3344_5566_7799);
    assert_eq!(vm.gpr(RDX), 0x1122_3344_5566_4288);
    assert_eq!(vm.gpr(RSI), 0xffff_ffff);
}

#[test]
fn high_byte_registers_without_rex() {
    let mut vm = Vm::with(|a| {
        a.mov(eax, 0x1234)?;
        a.mov(ebx, 0x5678)?;
        a.add(ah, bh)?; // 0x12 + 0x56
        a.xchg(al, bh)?;
        a.movzx(ecx, ah)?;
        a.ud2()
    });
    done(&mut vm);
    assert_eq!(vm.gpr(RAX), 0x6856);
    assert_eq!(vm.gpr(RBX), 0x3478);
    assert_eq!(vm.gpr(RCX), 0x68);
}

#[test]
fn movzx_movsx_movsxd_lea() {
    let mut vm = Vm::with(|a| {
        a.mov(eax, 0x8081)?;
        a.movzx(rbx, al)?;
        a.movsx(rcx, al)?;
        a.movsx(edx, ax)?;
        a.mov(esi, 0x8000_0000u32)?;
        a.movsxd(rdi, esi)?;
        a.mov(r8, 0x1000i64)?;
        a.mov(r9, 3i64)?;
        a.lea(r10, qword_ptr(r8 + r9 * 8 + 0x10))?;
        a.lea(r11d, qword_ptr(r8 - 0x2000))?; // truncated to 32 bits
        a.ud2()
    });
    done(&mut vm);
    assert_eq!(vm.gpr(RBX), 0x81);
    assert_eq!(vm.gpr(RCX), 0xffff_ffff_ffff_ff81);
    assert_eq!(vm.gpr(RDX), 0xffff_8081);
    assert_eq!(vm.gpr(RDI), 0xffff_ffff_8000_0000);
    assert_eq!(vm.gpr(R10), 0x1028);
    assert_eq!(vm.gpr(R11), 0xffff_f000);
}

#[test]
fn memory_rip_relative_and_segments() {
    let mut vm = Vm::with(|a| {
        let mut data = a.create_label();
        a.mov(rax, qword_ptr(data))?;
        a.mov(rbx, 0x1111i64)?;
        a.mov(qword_ptr(data), rbx)?;
        a.mov(rcx, qword_ptr(data))?;
        a.mov(rdx, qword_ptr(0x10).fs())?; // fs_base + 0x10
        a.mov(qword_ptr(0x20).gs(), rbx)?;
        a.ud2()?;
        a.set_label(&mut data)?;
        a.dq(&[0x0123_4567_89ab_cdef])
    });
    vm.regs.fs_base = DATA;
    vm.regs.gs_base = DATA + 0x100;
    vm.mem.load(DATA + 0x10, &0xfeed_u64.to_le_bytes());
    done(&mut vm);
    assert_eq!(vm.gpr(RAX), 0x0123_4567_89ab_cdef);
    assert_eq!(vm.gpr(RCX), 0x1111);
    assert_eq!(vm.gpr(RDX), 0xfeed);
    assert_eq!(vm.mem.peek_u64(DATA + 0x120), 0x1111);
}

#[test]
fn address_size_prefix_wraps_at_4g() {
    // mov eax, [ebx + 0x10] with ebx = 0xffff_fff8: the address wraps to 8.
    let mut vm = Vm::new(&[0x67, 0x8b, 0x43, 0x10, 0x0f, 0x0b]);
    vm.regs.gpr[RBX] = 0xdead_0000_ffff_fff8; // upper bits ignored too
    vm.mem.load(8, &0x7777_u32.to_le_bytes());
    done(&mut vm);
    assert_eq!(vm.gpr(RAX), 0x7777);
}

#[test]
fn stack_call_ret_enter_leave() {
    let mut vm = Vm::with(|a| {
        let mut f = a.create_label();
        let mut g = a.create_label();
        a.push(0x1234)?;
        a.pop(rbx)?;
        a.call(f)?;
        a.mov(rcx, rax)?;
        a.push(rbx)?;
        a.push(rbx)?;
        a.call(g)?; // ret 16 pops the two pushes
        a.ud2()?;
        a.set_label(&mut f)?;
        a.enter(32, 0)?;
        a.mov(qword_ptr(rbp - 8), 7)?;
        a.mov(rax, qword_ptr(rbp - 8))?;
        a.leave()?;
        a.ret()?;
        a.set_label(&mut g)?;
        a.ret_1(16)
    });
    done(&mut vm);
    assert_eq!(vm.gpr(RBX), 0x1234);
    assert_eq!(vm.gpr(RCX), 7);
    assert_eq!(vm.gpr(RSP), STACK);
    assert_eq!(vm.gpr(RBP), 0);
}

#[test]
fn enter_with_nesting_level() {
    let mut vm = Vm::with(|a| {
        a.enter(16, 2)?;
        a.ud2()
    });
    vm.regs.gpr[RBP] = STACK - 0x100;
    vm.mem.load(STACK - 0x108, &0xaaaa_u64.to_le_bytes());
    done(&mut vm);
    let frame = STACK - 8;
    assert_eq!(vm.gpr(RBP), frame);
    assert_eq!(vm.mem.peek_u64(STACK - 8), STACK - 0x100); // old rbp
    assert_eq!(vm.mem.peek_u64(STACK - 16), 0xaaaa); // copied display entry
    assert_eq!(vm.mem.peek_u64(STACK - 24), frame); // frame pointer
    assert_eq!(vm.gpr(RSP), STACK - 24 - 16);
}

#[test]
fn push_pop_rsp_and_memory() {
    let mut vm = Vm::with(|a| {
        a.push(rsp)?; // pushes the old value
        a.pop(rax)?;
        a.push(qword_ptr(DATA as i64))?;
        a.pop(qword_ptr(DATA as i64 + 8))?;
        a.mov(rbx, rsp)?;
        a.push(5)?;
        a.pop(qword_ptr(rsp - 8))?; // address computed after the pop: [old rsp]... rsp-8+8
        a.ud2()
    });
    vm.mem.load(DATA, &0x5151_u64.to_le_bytes());
    done(&mut vm);
    assert_eq!(vm.gpr(RAX), STACK);
    assert_eq!(vm.mem.peek_u64(DATA + 8), 0x5151);
    // pop [rsp-8]: rsp is incremented first (back to STACK), so the store lands at STACK-8.
    assert_eq!(vm.mem.peek_u64(STACK - 8), 5);
    assert_eq!(vm.gpr(RSP), STACK);
}

#[test]
fn branches_loops_setcc_cmov() {
    let mut vm = Vm::with(|a| {
        let mut l1 = a.create_label();
        let mut l2 = a.create_label();
        let mut skip = a.create_label();
        a.mov(ecx, 5)?;
        a.xor(eax, eax)?;
        a.set_label(&mut l1)?;
        a.inc(eax)?;
        a.loop_(l1)?;
        a.mov(ecx, 0)?;
        a.jrcxz(skip)?;
        a.mov(eax, 999)?;
        a.set_label(&mut skip)?;
        a.mov(ecx, 10)?;
        a.mov(edx, 0)?;
        a.set_label(&mut l2)?;
        a.inc(edx)?;
        a.cmp(edx, 3)?;
        a.loopne(l2)?; // stops when edx == 3
        a.cmp(eax, 5)?;
        a.sete(bl)?;
        a.setl(bh)?;
        a.mov(esi, 77)?;
        a.mov(rdi, -1i64)?;
        a.cmovne(edi, esi)?; // not taken, but the 32-bit destination is zero-extended
        a.cmove(r8, rsi)?;
        a.ud2()
    });
    done(&mut vm);
    assert_eq!(vm.gpr(RAX), 5);
    assert_eq!(vm.gpr(RDX), 3);
    assert_eq!(vm.gpr(RCX), 7);
    assert_eq!(vm.gpr(RBX) & 0xffff, 0x0001);
    assert_eq!(vm.gpr(RDI), 0xffff_ffff);
    assert_eq!(vm.gpr(R8), 77);
}

#[test]
fn jmp_indirect_and_call_indirect() {
    let mut vm = Vm::with(|a| {
        let mut t = a.create_label();
        let mut f = a.create_label();
        a.lea(rax, qword_ptr(t))?;
        a.jmp(rax)?;
        a.ud2()?;
        a.set_label(&mut t)?;
        a.lea(rbx, qword_ptr(f))?;
        a.mov(qword_ptr(DATA as i64), rbx)?;
        a.call(qword_ptr(DATA as i64))?;
        a.ud2()?;
        a.set_label(&mut f)?;
        a.mov(ecx, 42)?;
        a.ret()
    });
    done(&mut vm);
    assert_eq!(vm.gpr(RCX), 42);
}

#[test]
fn rep_movs_stos_both_directions() {
    let mut vm = Vm::with(|a| {
        a.mov(rsi, DATA)?;
        a.mov(rdi, DATA + 0x100)?;
        a.mov(ecx, 5)?;
        a.rep().movsb()?;
        a.mov(rdi, DATA + 0x200)?;
        a.mov(rax, 0x0102_0304_0506_0708u64)?;
        a.mov(ecx, 3)?;
        a.rep().stosq()?;
        a.std()?;
        a.mov(rsi, DATA + 0x4)?;
        a.mov(rdi, DATA + 0x304)?;
        a.mov(ecx, 5)?;
        a.rep().movsb()?; // backwards: copies DATA..DATA+5 to DATA+0x300..
        a.cld()?;
        a.ud2()
    });
    vm.mem.load(DATA, b"hello");
    done(&mut vm);
    let m = vm.mem.bytes();
    let d = DATA as usize;
    assert_eq!(&m[d + 0x100..d + 0x105], b"hello");
    assert_eq!(&m[d + 0x300..d + 0x305], b"hello");
    for k in 0..3 {
        assert_eq!(vm.mem.peek_u64(DATA + 0x200 + 8 * k), 0x0102_0304_0506_0708);
    }
    assert_eq!(vm.gpr(RSI), DATA - 1);
    assert_eq!(vm.gpr(RDI), DATA + 0x2ff);
    assert_eq!(vm.gpr(RCX), 0);
    assert_eq!(vm.regs.rflags & DF, 0);
}

#[test]
fn repe_cmps_and_repne_scas() {
    let mut vm = Vm::with(|a| {
        a.mov(rsi, DATA)?;
        a.mov(rdi, DATA + 0x100)?;
        a.mov(ecx, 8)?;
        a.repe().cmpsb()?; // stops after the first mismatch (index 3)
        a.mov(r8, rcx)?;
        a.mov(rdi, DATA)?;
        a.mov(al, i32::from(b'l'))?;
        a.mov(ecx, 8)?;
        a.repne().scasb()?; // finds the first 'l' at index 2
        a.mov(r9, rdi)?;
        a.lodsb()?;
        a.ud2()
    });
    vm.mem.load(DATA, b"hello wo");
    vm.mem.load(DATA + 0x100, b"helx");
    done(&mut vm);
    assert_eq!(vm.gpr(R8), 4);
    assert_eq!(vm.gpr(R9), DATA + 3);
    assert_eq!(vm.regs.rflags & ZF, ZF);
    assert_eq!(vm.gpr(RAX) & 0xff, u64::from(b'o')); // lodsb from where cmpsb stopped
    assert_eq!(vm.gpr(RSI), DATA + 5);
}

#[test]
fn rep_with_zero_count_and_budget_interruption() {
    let mut vm = Vm::with(|a| {
        a.xor(ecx, ecx)?;
        a.rep().stosb()?;
        a.mov(ecx, 100)?;
        a.mov(rdi, DATA)?;
        a.mov(al, 0x55)?;
        a.rep().stosb()?;
        a.ud2()
    });
    let r = vm.run(2);
    assert_eq!((r.exit, r.retired), (Exit::Budget, 2));
    assert_eq!(vm.regs.rip, CODE + 2 + 2);
    // Five more instructions: three movs, then two iterations of the rep.
    let r = vm.run(5);
    assert_eq!((r.exit, r.retired), (Exit::Budget, 5));
    let rep_rip = vm.regs.rip;
    assert_eq!(vm.gpr(RCX), 98);
    assert_eq!(vm.gpr(RDI), DATA + 2);
    // The rest: 98 iterations then ud2.
    let r = vm.run(1000);
    assert_eq!(r.exit, Exit::Exception(Fault::UD));
    assert_eq!(r.retired, 98);
    assert!(vm.regs.rip > rep_rip);
    assert!(vm.mem.bytes()[DATA as usize..DATA as usize + 100]
        .iter()
        .all(|&b| b == 0x55));
}

#[test]
fn pushf_popf_only_user_flags() {
    let mut vm = Vm::with(|a| {
        a.pushfq()?;
        a.pop(rax)?;
        a.mov(rbx, -1i64)?;
        a.push(rbx)?;
        a.popfq()?;
        a.pushfq()?;
        a.pop(rcx)?;
        a.push(0)?;
        a.popfq()?;
        a.pushfq()?;
        a.pop(rdx)?;
        a.ud2()
    });
    done(&mut vm);
    assert_eq!(vm.gpr(RAX), 0x202);
    let user = CF | PF | AF | ZF | SF | DF | OF;
    assert_eq!(vm.gpr(RCX) & user, user);
    assert_eq!(vm.gpr(RCX) & (TF | IF | (3 << 12)), IF); // IF kept, IOPL/TF unchanged
    assert_eq!(vm.gpr(RCX) & ID, ID);
    assert_eq!(vm.gpr(RDX), 0x202);
}

#[test]
fn cpuid_rdtsc_rdtscp() {
    let mut vm = Vm::with(|a| {
        a.xor(eax, eax)?;
        a.cpuid()?;
        a.mov(r8, rbx)?;
        a.rdtsc()?; // retired before: 3
        a.mov(r9, rax)?;
        a.mov(r10, rdx)?;
        a.rdtscp()?; // retired before: 6
        a.ud2()
    });
    let r = crate::cpu::run(
        &mut vm.regs,
        &mut vm.mem,
        &mut vm.cache,
        crate::cpu::RunLimits {
            budget: 100,
            tsc: 0x1_0000_0000,
            tsc_aux: 9,
        },
    );
    assert_eq!(r.exit, Exit::Exception(Fault::UD));
    assert_eq!(r.retired, 7);
    assert_eq!(&vm.gpr(R8).to_le_bytes()[..4], b"XiVi");
    assert_eq!(vm.gpr(R9), 3);
    assert_eq!(vm.gpr(R10), 1);
    assert_eq!(vm.gpr(RAX), 6);
    assert_eq!(vm.gpr(RCX), 9);
}

#[test]
fn syscall_exit_sets_rcx_r11() {
    let mut vm = Vm::with(|a| {
        a.mov(eax, 23)?;
        a.syscall()?;
        a.ud2()
    });
    let r = vm.run(100);
    assert_eq!((r.exit, r.retired), (Exit::Syscall, 2));
    assert_eq!(vm.regs.rip, CODE + 7);
    assert_eq!(vm.gpr(RCX), CODE + 7);
    assert_eq!(vm.gpr(R11), 0x202);
    // Resuming continues after the syscall.
    assert_eq!(vm.run(100).exit, Exit::Exception(Fault::UD));
}

#[test]
fn bt_family_memory_with_register_offset() {
    let mut vm = Vm::with(|a| {
        a.mov(rbx, DATA + 0x40)?;
        a.mov(rcx, -1i64)?; // bit 63 of the qword below
        a.bts(qword_ptr(rbx), rcx)?;
        a.mov(rcx, 130i64)?; // byte 0x40 + 16, bit 2
        a.bts(qword_ptr(rbx), rcx)?;
        a.bt(qword_ptr(rbx), rcx)?;
        a.setc(r8b)?;
        a.mov(ecx, 35)?; // 32-bit: dword at +4, bit 3
        a.btc(dword_ptr(rbx), ecx)?;
        a.btr(dword_ptr(rbx), 36)?; // immediate: masked to bit 4 of the dword at +0
        a.ud2()
    });
    vm.mem.load(DATA + 0x40, &0x10_u64.to_le_bytes());
    done(&mut vm);
    assert_eq!(vm.mem.peek_u64(DATA + 0x38), 1 << 63);
    assert_eq!(vm.mem.peek_u64(DATA + 0x50), 4);
    assert_eq!(vm.gpr(R8) & 0xff, 1);
    assert_eq!(vm.mem.peek_u64(DATA + 0x40), 1 << 35);
}

#[test]
fn locked_rmw_and_cmpxchg_memory() {
    let mut vm = Vm::with(|a| {
        a.mov(rbx, DATA)?;
        a.lock().add(qword_ptr(rbx), 5)?;
        a.mov(eax, 2)?;
        a.lock().xadd(qword_ptr(rbx), rax)?; // rax = 15, mem = 17
        a.mov(ecx, 100)?;
        a.lock().cmpxchg(qword_ptr(rbx), rcx)?; // rax (15) != 17: rax = 17
        a.mov(r8, rax)?;
        a.lock().cmpxchg(qword_ptr(rbx), rcx)?; // equal: mem = 100
        a.setz(r9b)?;
        a.mov(edx, 1)?;
        a.xchg(qword_ptr(rbx + 8), rdx)?;
        a.ud2()
    });
    vm.mem.load(DATA, &10u64.to_le_bytes());
    vm.mem.load(DATA + 8, &0x88u64.to_le_bytes());
    done(&mut vm);
    assert_eq!(vm.gpr(R8), 17);
    assert_eq!(vm.gpr(R9) & 0xff, 1);
    assert_eq!(vm.mem.peek_u64(DATA), 100);
    assert_eq!(vm.gpr(RDX), 0x88);
    assert_eq!(vm.mem.peek_u64(DATA + 8), 1);
}

#[test]
fn cmpxchg16b_and_alignment() {
    let mut vm = Vm::with(|a| {
        a.mov(rsi, DATA)?;
        a.mov(eax, 1)?;
        a.mov(edx, 2)?;
        a.mov(ebx, 3)?;
        a.mov(ecx, 4)?;
        a.lock().cmpxchg16b(xmmword_ptr(rsi))?;
        a.setz(r8b)?;
        a.lock().cmpxchg16b(xmmword_ptr(rsi))?; // now mismatch: rdx:rax = 4:3
        a.lock().cmpxchg16b(xmmword_ptr(rsi + 8))?; // misaligned: #GP(0)
        a.ud2()
    });
    vm.mem.load(DATA, &1u64.to_le_bytes());
    vm.mem.load(DATA + 8, &2u64.to_le_bytes());
    assert_eq!(vm.run_to_exit(100), Exit::Exception(Fault::gp(0)));
    assert_eq!(vm.gpr(R8) & 0xff, 1);
    assert_eq!(vm.mem.peek_u64(DATA), 3);
    assert_eq!(vm.mem.peek_u64(DATA + 8), 4);
    assert_eq!((vm.gpr(RAX), vm.gpr(RDX)), (3, 4));
}

#[test]
fn bswap_movbe_xlat_lahf_sahf() {
    let mut vm = Vm::with(|a| {
        a.mov(rax, 0x0102_0304_0506_0708u64)?;
        a.bswap(rax)?;
        a.mov(ebx, 0x1122_3344)?;
        a.bswap(ebx)?;
        a.movbe(dword_ptr(DATA as i64), ebx)?;
        a.movbe(ecx, dword_ptr(DATA as i64))?;
        a.mov(rbx, DATA + 0x10)?;
        a.mov(eax, 3)?;
        a.xlatb()?;
        a.mov(r8, rax)?;
        a.stc()?;
        a.lahf()?;
        a.mov(r9, rax)?;
        a.mov(ah, 0xd5)?;
        a.sahf()?;
        a.ud2()
    });
    vm.mem.load(DATA + 0x10, &[9, 8, 7, 6]);
    done(&mut vm);
    assert_eq!(vm.gpr(RCX), 0x4433_2211); // movbe store then load: swapped twice
    assert_eq!(vm.mem.peek_u64(DATA) as u32, 0x1122_3344);
    assert_eq!(vm.gpr(R8) & 0xff, 6);
    assert_eq!((vm.gpr(R9) >> 8) & 0xff, 0x03); // CF | reserved bit 1
    assert_eq!(
        vm.regs.rflags & (CF | PF | AF | ZF | SF),
        CF | PF | AF | ZF | SF
    );
}

#[test]
fn mul_div_examples() {
    let mut vm = Vm::with(|a| {
        a.mov(rax, u64::MAX)?;
        a.mov(rbx, 2i64)?;
        a.mul(rbx)?; // rdx:rax = 1:fffffffffffffffe
        a.mov(r8, rdx)?;
        a.mov(r9, rax)?;
        a.mov(ecx, 7)?;
        a.div(rcx)?; // (2^65 - 2) / 7
        a.mov(r10, rax)?;
        a.mov(r11, rdx)?;
        a.mov(ax, 1000)?;
        a.mov(bl, 7)?;
        a.div(bl)?; // al = 142, ah = 6
        a.mov(r12, rax)?;
        a.mov(rax, -100i64)?;
        a.cqo()?;
        a.mov(rcx, 7i64)?;
        a.idiv(rcx)?;
        a.imul_3(r13, rax, 1000)?;
        a.ud2()
    });
    done(&mut vm);
    let n: u128 = (1u128 << 65) - 2;
    assert_eq!((vm.gpr(R8), vm.gpr(R9)), (1, u64::MAX - 1));
    assert_eq!(u128::from(vm.gpr(R10)), n / 7);
    assert_eq!(u128::from(vm.gpr(R11)), n % 7);
    assert_eq!(vm.gpr(R12) & 0xffff, (6 << 8) | 142);
    assert_eq!(vm.gpr(RAX) as i64, -14);
    assert_eq!(vm.gpr(RDX) as i64, -2);
    assert_eq!(vm.gpr(R13) as i64, -14000);
}

#[test]
fn nops_and_fences_do_nothing() {
    let mut vm = Vm::with(|a| {
        a.nop()?;
        a.nop_1(dword_ptr(rax + rax * 1 + 0))?;
        a.pause()?;
        a.lfence()?;
        a.mfence()?;
        a.sfence()?;
        a.endbr64()?;
        a.ud2()
    });
    let before = vm.regs.clone();
    let r = vm.run(100);
    assert_eq!((r.exit, r.retired), (Exit::Exception(Fault::UD), 7));
    assert_eq!(vm.regs.gpr, before.gpr);
    assert_eq!(vm.regs.rflags, before.rflags);
}

#[test]
fn software_interrupts_and_privileged_instructions() {
    let cases: [(&[u8], Fault, u64); 9] = [
        (&[0xcc], Fault::BP, 1),       // int3: trap, rip after
        (&[0xcd, 0x03], Fault::BP, 2), // int 3
        (&[0xcd, 0x80], Fault::gp(0x80 * 8 + 2), 0),
        (&[0xf1], Fault::DB, 1),                // int1
        (&[0xf4], Fault::gp(0), 0),             // hlt
        (&[0x0f, 0x01, 0xf8], Fault::gp(0), 0), // swapgs
        (&[0x0f, 0x30], Fault::gp(0), 0),       // wrmsr
        (&[0xfa], Fault::gp(0), 0),             // cli
        (&[0x0f, 0x22, 0xd8], Fault::gp(0), 0), // mov cr3, rax
    ];
    for (code, fault, adv) in cases {
        let mut vm = Vm::new(code);
        let r = vm.run(10);
        assert_eq!(r.exit, Exit::Exception(fault), "{code:x?}");
        assert_eq!(vm.regs.rip, CODE + adv, "{code:x?}");
    }
}

#[test]
fn flat_bus_faults_outside_memory() {
    let mut m = crate::cpu::FlatMemory::new(1);
    let mut b = [0u8; 4];
    assert_eq!(
        m.read(0xffe, &mut b),
        Err(Fault::pf(0x1000, crate::cpu::pf_error::USER))
    );
    assert!(m.read(0xffc, &mut b).is_ok());
    assert!(m.fetch_page(0x1000).is_err());
}

#[test]
fn cmpxchg8b_and_16bit_stack_ops() {
    let mut vm = Vm::with(|a| {
        a.mov(rsi, DATA)?;
        a.mov(eax, 0x1111)?;
        a.mov(edx, 0x2222)?;
        a.mov(ebx, 0x3333)?;
        a.mov(ecx, 0x4444)?;
        a.lock().cmpxchg8b(qword_ptr(rsi))?;
        a.setz(r8b)?;
        a.push(0x1234)?;
        a.pop(r9w)?; // 16-bit pop of the low half; rsp moves by 2
        a.push(r9w)?;
        a.pop(r10)?;
        a.ud2()
    });
    vm.mem.load(DATA, &0x0000_2222_0000_1111_u64.to_le_bytes());
    vm.mem
        .load(STACK - 16, &0xdead_beef_cafe_f00d_u64.to_le_bytes());
    done(&mut vm);
    assert_eq!(vm.gpr(R8) & 0xff, 1);
    assert_eq!(vm.mem.peek_u64(DATA), 0x0000_4444_0000_3333);
    assert_eq!(vm.gpr(R9) & 0xffff, 0x1234);
    // push r9w stored 2 bytes at STACK-8+2-2 = STACK-8; the qword there is 0x..._0000_1234.
    assert_eq!(vm.gpr(R10) & 0xffff, 0x1234);
    assert_eq!(vm.gpr(RSP), STACK - 8 + 2 - 2 + 8);
}

#[test]
fn xchg_eax_eax_zero_extends_but_nop_does_not() {
    // 87 c0 = xchg eax, eax (a 32-bit write); 90 = nop; 41 90 = xchg r8d, eax.
    let mut vm = Vm::new(&[0x87, 0xc0, 0x90, 0x41, 0x90, 0x0f, 0x0b]);
    vm.regs.gpr[RAX] = 0x1_0000_0002;
    vm.regs.gpr[R8] = 0x3_0000_0004;
    let r = vm.run(3);
    assert_eq!(r.retired, 3);
    assert_eq!(vm.gpr(RAX), 4);
    assert_eq!(vm.gpr(R8), 2);
}

#[test]
fn hint_nops_do_nothing() {
    let codes: [&[u8]; 6] = [
        &[0xf3, 0x0f, 0x1e, 0xfb],       // endbr32
        &[0xf3, 0x48, 0x0f, 0x1e, 0xc8], // rdsspq rax: a nop without CET
        &[0x0f, 0x18, 0x00],             // prefetchnta [rax]
        &[0x0f, 0x0d, 0x08],             // prefetchw [rax]
        &[0x0f, 0x1f, 0x44, 0x00, 0x00], // nop dword [rax+rax]
        &[0x66, 0x90],                   // xchg ax, ax
    ];
    for code in codes {
        let mut vm = Vm::new(code);
        vm.regs.gpr[RAX] = 0xdead_0000_0000; // nonexistent memory: hints must not fault
        let before = vm.regs.clone();
        let r = vm.run(1);
        assert_eq!((r.exit, r.retired), (Exit::Budget, 1), "{code:x?}");
        assert_eq!(vm.regs.gpr, before.gpr, "{code:x?}");
    }
}

#[test]
fn inc_keeps_a_pending_carry() {
    // or clears CF (lazily); inc must keep that cleared CF, not the stale one in RFLAGS.
    let mut vm = Vm::with(|a| {
        a.stc()?;
        a.or(al, al)?;
        a.inc(al)?;
        a.setc(bl)?;
        a.stc()?;
        a.dec(ecx)?;
        a.setc(bh)?;
        a.ud2()
    });
    done(&mut vm);
    assert_eq!(vm.gpr(RBX) & 0xffff, 0x0100);
    assert_eq!(vm.regs.rflags & CF, CF);
}
