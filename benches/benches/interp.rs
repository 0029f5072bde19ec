//! Interpreter throughput, in guest instructions per second, on three loops over a flat
//! identity-mapped memory: register ALU work, a memory walk (loads and stores), and a
//! call/ret-heavy loop.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hypervisor::cpu::{gpr, run, DecodeCache, Exit, FlatMemory, Regs, RunLimits};
use iced_x86::code_asm::*;
use iced_x86::IcedError;

const CODE: u64 = 0x1000;
const DATA: u64 = 0x10_000;
const STACK: u64 = 0x40_000;
const PAGES: usize = 0x40;
/// Instructions per measured run.
const BUDGET: u64 = 1_000_000;

fn program(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    f(&mut a).expect("assemble");
    a.assemble(CODE).expect("encode")
}

/// An endless register-only loop: nine ALU instructions and a branch.
fn alu_loop(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut top = a.create_label();
    a.mov(rcx, u64::MAX)?;
    a.mov(ebx, 0x9e37_79b9u32)?;
    a.set_label(&mut top)?;
    a.add(rax, rbx)?;
    a.xor(rdx, rax)?;
    a.sub(rsi, rdx)?;
    a.and(rdi, rsi)?;
    a.or(r8, rax)?;
    a.shl(r9, 1)?;
    a.adc(r10, r9)?;
    a.lea(r11, qword_ptr(rax + rbx * 2 + 8))?;
    a.cmp(r11, rdx)?;
    a.dec(rcx)?;
    a.jnz(top)
}

/// An endless walk over 32 KiB: load, accumulate, store back, advance, wrap.
fn memory_loop(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut restart = a.create_label();
    let mut top = a.create_label();
    a.set_label(&mut restart)?;
    a.mov(rsi, DATA)?;
    a.mov(ecx, 32 * 1024 / 16)?;
    a.set_label(&mut top)?;
    a.mov(rax, qword_ptr(rsi))?;
    a.add(rbx, rax)?;
    a.mov(rdx, qword_ptr(rsi + 8))?;
    a.xor(rbx, rdx)?;
    a.mov(qword_ptr(rsi), rbx)?;
    a.add(rsi, 16)?;
    a.dec(ecx)?;
    a.jnz(top)?;
    a.jmp(restart)
}

/// An endless loop of calls to a two-instruction leaf and a three-instruction function
/// with a push/pop frame.
fn call_loop(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut top = a.create_label();
    let mut leaf = a.create_label();
    let mut framed = a.create_label();
    a.set_label(&mut top)?;
    a.call(leaf)?;
    a.call(framed)?;
    a.call(leaf)?;
    a.jmp(top)?;
    a.set_label(&mut leaf)?;
    a.add(rax, 1)?;
    a.ret()?;
    a.set_label(&mut framed)?;
    a.push(rbx)?;
    a.mov(rbx, rax)?;
    a.pop(rbx)?;
    a.ret()
}

struct Machine {
    mem: FlatMemory,
    regs: Regs,
    cache: DecodeCache,
}

impl Machine {
    fn new(code: &[u8]) -> Machine {
        let mut mem = FlatMemory::new(PAGES);
        mem.load(CODE, code);
        let mut regs = Regs {
            rip: CODE,
            rflags: 0x202,
            ..Regs::default()
        };
        regs.gpr[gpr::RSP] = STACK;
        Machine {
            mem,
            regs,
            cache: DecodeCache::new(),
        }
    }

    fn run(&mut self) -> u64 {
        let r = run(
            &mut self.regs,
            &mut self.mem,
            &mut self.cache,
            RunLimits {
                budget: BUDGET,
                tsc: 0,
                tsc_aux: 0,
            },
        );
        assert_eq!(r.exit, Exit::Budget);
        r.retired
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("interp");
    g.throughput(Throughput::Elements(BUDGET));
    for (name, prog) in [
        ("alu_loop", program(alu_loop)),
        ("memory_loop", program(memory_loop)),
        ("call_ret_loop", program(call_loop)),
    ] {
        let mut m = Machine::new(&prog);
        g.bench_function(name, |b| b.iter(|| m.run()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
