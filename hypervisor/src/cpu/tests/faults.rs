//! Exceptions (#UD, #DE, #BP, #GP, #SS, #PF), their precision, budget exits, instructions
//! that straddle pages, and self-modifying code.

use iced_x86::code_asm::*;

use super::{asm, Vm, CODE, DATA, PAGES, STACK};
use crate::cpu::gpr::*;
use crate::cpu::{pf_error, vector, Exit, Fault, FlatMemory};

fn exc(vm: &mut Vm) -> Fault {
    match vm.run_to_exit(1000) {
        Exit::Exception(f) => f,
        e => panic!("expected an exception, got {e:?}"),
    }
}

#[test]
fn undefined_opcodes_are_ud() {
    let cases: &[&[u8]] = &[
        &[0x06],             // push es: invalid in 64-bit mode
        &[0xd6],             // salc
        &[0x0f, 0x0b],       // ud2
        &[0x0f, 0xff, 0xc0], // ud0
        &[0xf0, 0x01, 0xc0], // lock add eax, eax: lock on a register destination
        &[0xf0, 0x90],       // lock nop
        &[0xf0, 0x8b, 0x03], // lock mov eax, [rbx]: not lockable
        &[0x0f, 0x57, 0xc0], // xorps: no SSE
        &[0xd9, 0xe8],       // fld1: no x87
        &[0x0f, 0xa1],       // pop fs: not implemented
        &[0x48, 0xcf],       // iretq: PV guests use the iret hypercall
    ];
    for code in cases {
        let mut vm = Vm::new(code);
        let before = vm.regs.clone();
        let r = vm.run(10);
        assert_eq!(r.exit, Exit::Exception(Fault::UD), "{code:x?}");
        assert_eq!(r.retired, 0);
        assert_eq!(vm.regs, before, "{code:x?}");
    }
    // Fourteen 66 prefixes + nop is 15 bytes: legal; sixteen bytes exceed the limit.
    let mut long = vec![0x66; 14];
    long.push(0x90);
    let mut vm = Vm::new(&long);
    assert_eq!(vm.run(1).retired, 1);
    let mut vm = Vm::new(&[0x66; 16]);
    assert_eq!(exc(&mut vm), Fault::UD);
}

#[test]
fn divide_errors() {
    let progs = [
        asm(|a| {
            a.xor(ecx, ecx)?;
            a.div(rcx)
        }),
        asm(|a| {
            a.mov(rax, i64::MIN)?;
            a.cqo()?;
            a.mov(rcx, -1i64)?;
            a.idiv(rcx)
        }),
        asm(|a| {
            a.mov(eax, 0x1000)?;
            a.mov(cl, 2)?;
            a.div(cl) // quotient 0x800 does not fit in al
        }),
        asm(|a| {
            a.mov(edx, 5)?;
            a.mov(ecx, 5)?;
            a.div(ecx) // edx >= divisor: quotient overflows
        }),
        asm(|a| {
            a.mov(ax, 0x8000u32)?;
            a.cwd()?;
            a.mov(cx, 0xffffu32)?;
            a.idiv(cx) // -32768 / -1
        }),
    ];
    for p in progs {
        let mut vm = Vm::new(&p);
        let r = vm.run(1000);
        assert_eq!(r.exit, Exit::Exception(Fault::DE));
        let at = vm.regs.rip;
        let saved = vm.regs.clone();
        // Precise: rip at the div, and re-running faults again identically.
        assert_eq!(vm.run(1000).exit, Exit::Exception(Fault::DE));
        assert_eq!(vm.regs, saved);
        assert_eq!(vm.regs.rip, at);
        assert!(at > CODE);
    }
}

#[test]
fn int3_is_a_trap_with_rip_after() {
    let mut vm = Vm::with(|a| {
        a.mov(eax, 1)?;
        a.int3()?;
        a.mov(eax, 2)?;
        a.ud2()
    });
    let r = vm.run(100);
    assert_eq!((r.exit, r.retired), (Exit::Exception(Fault::BP), 2));
    assert_eq!(vm.regs.rip, CODE + 6);
    assert_eq!(vm.gpr(RAX), 1);
}

#[test]
fn faulting_store_changes_nothing() {
    let mut vm = Vm::with(|a| {
        a.mov(rbx, DATA)?;
        a.mov(ecx, 1)?;
        a.stc()?;
        a.adc(qword_ptr(rbx), rcx)?;
        a.ud2()
    });
    vm.mem.load(DATA, &u64::MAX.to_le_bytes());
    vm.mem.set_read_only((DATA >> 12) as usize, true);
    vm.run(3);
    let before = vm.regs.clone();
    let f = exc(&mut vm);
    assert_eq!(
        f,
        Fault::pf(DATA, pf_error::PRESENT | pf_error::WRITE | pf_error::USER)
    );
    assert_eq!(vm.regs, before); // flags (CF set, no ZF) and rip untouched
    assert_eq!(vm.mem.peek_u64(DATA), u64::MAX);
    vm.mem.set_read_only((DATA >> 12) as usize, false);
    assert_eq!(exc(&mut vm), Fault::UD);
    assert_eq!(vm.mem.peek_u64(DATA), 1);
}

#[test]
fn faulting_push_and_call_keep_rsp_and_rip() {
    for prog in [
        asm(|a| a.push(rax)),
        asm(|a| a.call(0x1234u64)),
        asm(|a| a.pushfq()),
    ] {
        let mut vm = Vm::new(&prog);
        vm.mem.set_read_only(((STACK - 8) >> 12) as usize, true);
        let before = vm.regs.clone();
        let f = exc(&mut vm);
        assert_eq!(f.vector, vector::PF);
        assert_eq!(f.cr2, Some(STACK - 8));
        assert_eq!(vm.regs, before);
    }
}

#[test]
fn fault_in_the_middle_of_rep_movs() {
    // Copy 0x20 bytes into a destination whose second half is on a read-only page.
    let dst = DATA + 0x1000 - 0x10;
    let mut vm = Vm::with(|a| {
        a.mov(rsi, DATA - 0x100)?;
        a.mov(rdi, dst)?;
        a.mov(ecx, 0x20)?;
        a.rep().movsb()
    });
    vm.mem.set_read_only(((DATA + 0x1000) >> 12) as usize, true);
    let r = vm.run(1000);
    assert_eq!(r.exit, Exit::Exception(Fault::pf(DATA + 0x1000, 7)));
    assert_eq!(r.retired, 3 + 0x10);
    assert_eq!(vm.gpr(RCX), 0x10);
    assert_eq!(vm.gpr(RDI), DATA + 0x1000);
    assert_eq!(vm.gpr(RSI), DATA - 0x100 + 0x10);
    let rep_at = vm.regs.rip;
    assert_eq!(
        vm.mem.bytes()[rep_at as usize..rep_at as usize + 2],
        [0xf3, 0xa4]
    ); // still at the rep movsb
}

#[test]
fn noncanonical_accesses_and_branches() {
    let nc = 0x0000_8000_0000_0000u64;
    let mut vm = Vm::with(|a| {
        a.mov(rbx, nc)?;
        a.mov(rax, qword_ptr(rbx))
    });
    assert_eq!(exc(&mut vm), Fault::gp(0));
    let mut vm = Vm::with(|a| {
        a.mov(rbp, nc)?;
        a.mov(rax, qword_ptr(rbp + 8))
    });
    assert_eq!(exc(&mut vm), Fault::ss());
    let mut vm = Vm::with(|a| {
        a.mov(rsp, nc + 8)?;
        a.push(rax) // stores at nc
    });
    assert_eq!(exc(&mut vm), Fault::ss());
    // A jump to a non-canonical target faults at the jump.
    let mut vm = Vm::with(|a| {
        a.mov(rax, nc)?;
        a.jmp(rax)
    });
    assert_eq!(exc(&mut vm), Fault::gp(0));
    assert_eq!(vm.regs.rip, CODE + 10);
    // A ret to one leaves rsp alone.
    let mut vm = Vm::with(|a| {
        a.mov(rax, nc)?;
        a.push(rax)?;
        a.ret()
    });
    assert_eq!(exc(&mut vm), Fault::gp(0));
    assert_eq!(vm.gpr(RSP), STACK - 8);
}

#[test]
fn fetch_fault_reports_the_target() {
    let beyond = (PAGES as u64) << 12;
    let mut vm = Vm::with(|a| {
        a.mov(rax, beyond + 0x10)?;
        a.jmp(rax)
    });
    let f = exc(&mut vm);
    assert_eq!(
        f,
        Fault::pf(beyond + 0x10, pf_error::USER | pf_error::FETCH)
    );
    assert_eq!(vm.regs.rip, beyond + 0x10);
}

#[test]
fn instruction_straddling_two_pages() {
    let code = asm(|a| {
        a.mov(rax, 0x1122_3344_5566_7788u64)?;
        a.ud2()
    });
    let mut vm = Vm::new(&[]);
    let at = 0x2000 - 4;
    vm.mem.load(at, &code);
    vm.regs.rip = at;
    let r = vm.run(10);
    assert_eq!((r.exit, r.retired), (Exit::Exception(Fault::UD), 1));
    assert_eq!(vm.gpr(RAX), 0x1122_3344_5566_7788);
    // Again, now from the cache of the first page (the straddler is never cached).
    vm.regs.rip = at;
    vm.regs.gpr[RAX] = 0;
    vm.run(10);
    assert_eq!(vm.gpr(RAX), 0x1122_3344_5566_7788);
    // Into a missing page: #PF at the first byte of the next page, rip unchanged.
    let mut mem = FlatMemory::new(1);
    mem.load(0x1000 - 4, &code[..4]);
    let mut regs = crate::cpu::Regs {
        rip: 0x1000 - 4,
        ..Default::default()
    };
    let mut cache = crate::cpu::DecodeCache::new();
    let r = crate::cpu::run(
        &mut regs,
        &mut mem,
        &mut cache,
        crate::cpu::RunLimits {
            budget: 5,
            ..Default::default()
        },
    );
    assert_eq!(
        r.exit,
        Exit::Exception(Fault::pf(0x1000, pf_error::USER | pf_error::FETCH))
    );
    assert_eq!(regs.rip, 0x1000 - 4);
}

#[test]
fn budget_zero_and_exact() {
    let mut vm = Vm::with(|a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.inc(rax)?;
        a.jmp(l)
    });
    let r = vm.run(0);
    assert_eq!((r.exit, r.retired), (Exit::Budget, 0));
    let r = vm.run(1001);
    assert_eq!((r.exit, r.retired), (Exit::Budget, 1001));
    assert_eq!(vm.gpr(RAX), 501);
}

#[test]
fn self_modifying_code_is_redecoded() {
    // Loop twice over `mov eax, imm32`; after the first pass the loop patches the immediate.
    let mut vm = Vm::with(|a| {
        let mut patch = a.create_label();
        let mut out = a.create_label();
        a.mov(ecx, 2)?;
        a.set_label(&mut patch)?;
        a.mov(eax, 1)?;
        a.add(rbx, rax)?;
        a.mov(byte_ptr(CODE as i64 + 6), 42)?; // the imm32 of the mov at `patch`
        a.dec(ecx)?;
        a.jz(out)?;
        a.jmp(patch)?;
        a.set_label(&mut out)?;
        a.ud2()
    });
    let decodes = vm.cache.page_decodes();
    assert_eq!(vm.run_to_exit(100), Exit::Exception(Fault::UD));
    assert_eq!(vm.gpr(RBX), 1 + 42);
    assert!(
        vm.cache.page_decodes() > decodes + 1,
        "the page was re-decoded"
    );
    // A store into the very next instruction takes effect immediately.
    let mut vm = Vm::with(|a| {
        let mut next = a.create_label();
        a.mov(word_ptr(next), 0x9090)?; // turn the ud2 below into two nops
        a.set_label(&mut next)?;
        a.ud2()?;
        a.mov(eax, 7)?;
        a.ud2()
    });
    assert_eq!(vm.run_to_exit(100), Exit::Exception(Fault::UD));
    assert_eq!(vm.gpr(RAX), 7);
    // A host-side write between runs (bumping the generation) is seen too.
    let mut vm = Vm::with(|a| {
        a.mov(eax, 1)?;
        a.ud2()
    });
    vm.run(10);
    vm.mem.load(CODE + 1, &[5]);
    vm.regs.rip = CODE;
    vm.run(10);
    assert_eq!(vm.gpr(RAX), 5);
}

#[test]
fn same_frame_at_two_addresses_shares_decode_correctly() {
    // A bus mapping two virtual pages to one key: RIP-relative operands and branch targets
    // must follow the virtual address, not the cached one.
    struct Alias(FlatMemory);
    impl crate::cpu::Bus for Alias {
        fn fetch_page(&mut self, va: u64) -> Result<crate::cpu::CodePage, Fault> {
            self.0.fetch_page(va & 0x1fff)
        }
        fn code_bytes(&self, key: u64) -> &[u8; 4096] {
            self.0.code_bytes(key)
        }
        fn code_page_current(&self, p: crate::cpu::CodePage) -> bool {
            self.0.code_page_current(p)
        }
        fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
            self.0.read(va, buf)
        }
        fn write(&mut self, va: u64, d: &[u8]) -> Result<(), Fault> {
            self.0.write(va, d)
        }
    }
    let code = asm(|a| {
        let mut here = a.create_label();
        a.lea(rax, qword_ptr(here))?;
        a.set_label(&mut here)?;
        a.call(0x1000 + 0x20)?;
        a.ud2()
    });
    let mut mem = FlatMemory::new(PAGES);
    mem.load(CODE, &code);
    mem.load(CODE + 0x20, &[0xc3]); // ret
    let mut bus = Alias(mem);
    let mut cache = crate::cpu::DecodeCache::new();
    for base in [0x1000u64, 0x3000] {
        let mut regs = crate::cpu::Regs {
            rip: base,
            ..Default::default()
        };
        regs.gpr[RSP] = STACK;
        let r = crate::cpu::run(
            &mut regs,
            &mut bus,
            &mut cache,
            crate::cpu::RunLimits {
                budget: 10,
                ..Default::default()
            },
        );
        assert_eq!(r.exit, Exit::Exception(Fault::UD));
        assert_eq!(regs.gpr[RAX], base + 7);
        assert_eq!(regs.rip, base + 12);
    }
    assert_eq!(cache.len(), 1);
}
