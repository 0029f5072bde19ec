//! Interpreter tests: a flat-memory harness ([`Vm`]), per-instruction unit tests, faults and
//! self-modifying code, differential tests against the host CPU, and a fuzz-style
//! never-panics property.

use iced_x86::code_asm::CodeAssembler;
use iced_x86::IcedError;

use super::{run, DecodeCache, Exit, FlatMemory, Regs, RunLimits, RunResult};

mod faults;
mod fuzz;
mod host;
mod unit;

/// Where test code is loaded.
pub(crate) const CODE: u64 = 0x1000;
/// Initial rsp (stack grows down from the top of page 0x1f).
pub(crate) const STACK: u64 = 0x20000;
/// A scratch data area.
pub(crate) const DATA: u64 = 0x30000;
/// Pages of flat memory in a [`Vm`].
pub(crate) const PAGES: usize = 0x40;

/// Assembles 64-bit code for address [`CODE`].
pub(crate) fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("64-bit assembler");
    f(&mut a).expect("assemble");
    a.assemble(CODE).expect("encode")
}

/// A vCPU over [`FlatMemory`], code at [`CODE`], stack at [`STACK`].
pub(crate) struct Vm {
    pub mem: FlatMemory,
    pub regs: Regs,
    pub cache: DecodeCache,
}

impl Vm {
    pub fn new(code: &[u8]) -> Vm {
        let mut mem = FlatMemory::new(PAGES);
        mem.load(CODE, code);
        let mut regs = Regs {
            rip: CODE,
            rflags: 0x202,
            ..Regs::default()
        };
        regs.gpr[super::gpr::RSP] = STACK;
        Vm {
            mem,
            regs,
            cache: DecodeCache::new(),
        }
    }

    pub fn with(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vm {
        Vm::new(&asm(f))
    }

    pub fn run(&mut self, budget: u64) -> RunResult {
        run(
            &mut self.regs,
            &mut self.mem,
            &mut self.cache,
            RunLimits {
                budget,
                tsc: 0,
                tsc_aux: 0,
            },
        )
    }

    /// Runs until something other than the budget stops it (at most `max` instructions).
    pub fn run_to_exit(&mut self, max: u64) -> Exit {
        self.run(max).exit
    }

    pub fn gpr(&self, n: usize) -> u64 {
        self.regs.gpr[n]
    }
}
