//! Interpreter throughput, in guest instructions per second (criterion's `Melem/s`), on
//! three endless loops: register ALU work, a memory walk (loads and stores), and a
//! call/ret-heavy loop.
//!
//! Each loop runs twice:
//!
//! - `flat/*`: the bare interpreter over [`FlatMemory`] (identity-mapped, no paging);
//! - `model/*`: a real PV guest in the software Xen — [`Model::run`] schedules its vCPU
//!   in slices, every fetch, load and store is translated through the guest's own
//!   four-level page tables by the model's bus, and virtual time, timers and dom0's
//!   services run between slices.
//!
//! Run: `cargo bench -p benches --bench interp` (add `-- --measurement-time 5
//! --sample-size 20` on a busy machine). The figures are in `hypervisor::cpu`'s docs.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hypervisor::cpu::{gpr, run, DecodeCache, Exit, FlatMemory, Regs, RunLimits};
use hypervisor::model::testkit::MiniGuest;
use hypervisor::model::{Model, ModelConfig};
use hypervisor::Xen;
use iced_x86::code_asm::*;
use iced_x86::IcedError;

/// Instructions per measured run.
const BUDGET: u64 = 1_000_000;
/// Bytes the memory loop walks.
const WALK: u64 = 32 * 1024;

/// Where a loop's code, data and stack live.
#[derive(Clone, Copy)]
struct Layout {
    code: u64,
    data: u64,
    stack: u64,
}

/// Flat memory: code at 0x1000, data from 0x10000, stack top 0x40000.
const FLAT: Layout = Layout {
    code: 0x1000,
    data: 0x10_000,
    stack: 0x40_000,
};
const FLAT_PAGES: usize = 0x40;

/// The model guest: 16 data pages at `MINI_BASE`; PFN 0 code, PFNs 2..10 the walked
/// data, the stack below the end of PFN 15 (set up by `MiniGuest`).
const GUEST_PAGES: usize = 16;

type Program = fn(&mut CodeAssembler, Layout) -> Result<(), IcedError>;

fn assemble(f: Program, l: Layout) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    f(&mut a, l).expect("assemble");
    a.assemble(l.code).expect("encode")
}

/// An endless register-only loop: nine ALU instructions and a branch.
fn alu_loop(a: &mut CodeAssembler, _: Layout) -> Result<(), IcedError> {
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
fn memory_loop(a: &mut CodeAssembler, l: Layout) -> Result<(), IcedError> {
    let mut restart = a.create_label();
    let mut top = a.create_label();
    a.set_label(&mut restart)?;
    a.mov(rsi, l.data)?;
    a.mov(ecx, (WALK / 16) as u32)?;
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
fn call_loop(a: &mut CodeAssembler, _: Layout) -> Result<(), IcedError> {
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

const PROGRAMS: [(&str, Program); 3] = [
    ("alu_loop", alu_loop),
    ("memory_loop", memory_loop),
    ("call_ret_loop", call_loop),
];

/// The bare interpreter over flat memory.
struct Flat {
    mem: FlatMemory,
    regs: Regs,
    cache: DecodeCache,
}

impl Flat {
    fn new(prog: Program) -> Flat {
        let mut mem = FlatMemory::new(FLAT_PAGES);
        mem.load(FLAT.code, &assemble(prog, FLAT));
        let mut regs = Regs {
            rip: FLAT.code,
            rflags: 0x202,
            ..Regs::default()
        };
        regs.gpr[gpr::RSP] = FLAT.stack;
        Flat {
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

/// A PV guest in the model running the loop in its kernel.
fn guest(prog: Program) -> Model {
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let g = MiniGuest::build(&mut m, GUEST_PAGES).expect("build the guest");
    let l = Layout {
        code: g.va(0),
        data: g.va(2),
        stack: g.va(GUEST_PAGES),
    };
    let code = assemble(prog, l);
    assert!(code.len() <= 4096 && l.data + WALK <= l.stack - 4096);
    let mut page = vec![0u8; 4096];
    page[..code.len()].copy_from_slice(&code);
    let mut err = [0i32];
    m.foreign_write(g.dom, &g.data[..1], &page, &mut err)
        .expect("write the code page");
    assert_eq!(err, [0], "write the code page");
    m
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("interp");
    g.throughput(Throughput::Elements(BUDGET));
    for (name, prog) in PROGRAMS {
        let mut m = Flat::new(prog);
        g.bench_function(format!("flat/{name}"), |b| b.iter(|| m.run()));
    }
    for (name, prog) in PROGRAMS {
        let mut m = guest(prog);
        g.bench_function(format!("model/{name}"), |b| {
            b.iter(|| {
                let n = m.run(BUDGET);
                // The guest never stops, so the whole budget runs.
                assert_eq!(n, BUDGET);
                n
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
