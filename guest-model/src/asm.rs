//! A thin layer over iced-x86's [`CodeAssembler`]: deferred string literals (emitted
//! after the code, so the code section decodes cleanly), hypercall calls through the
//! hypercall page, and the final assembly at [`VIRT_BASE`](crate::layout::VIRT_BASE).

use std::collections::BTreeMap;

use iced_x86::code_asm::{ptr, qword_ptr, rsp, AsmRegister64, CodeAssembler, CodeLabel};
use iced_x86::{BlockEncoderOptions, IcedError};

use crate::layout::{va, PG_HYPERCALL};

/// Result of an assembler step.
pub(crate) type AsmResult<T = ()> = Result<T, IcedError>;

/// Virtual address of hypercall stub `nr`.
pub(crate) const fn hypercall_stub(nr: u64) -> u64 {
    va(PG_HYPERCALL) + nr * hypervisor::abi::hypercall::HYPERCALL_STUB_SIZE
}

/// The assembler plus deferred read-only data.
pub(crate) struct Asm {
    /// The underlying assembler.
    pub a: CodeAssembler,
    /// String literals, by content (deduplicated), emitted after the code.
    strings: BTreeMap<Vec<u8>, CodeLabel>,
    /// The guest's name, prefixed to console lines.
    pub name: &'static str,
    /// Instruction index the last [`Asm::set`] bound a label to.
    last_label_at: Option<usize>,
}

/// The assembled code.
pub(crate) struct Assembled {
    /// Code followed by the string literals.
    pub bytes: Vec<u8>,
    /// Length of the code part (instructions only).
    pub code_len: usize,
}

impl Asm {
    pub(crate) fn new(name: &'static str) -> AsmResult<Asm> {
        Ok(Asm {
            a: CodeAssembler::new(64)?,
            strings: BTreeMap::new(),
            name,
            last_label_at: None,
        })
    }

    /// A fresh label.
    pub(crate) fn label(&mut self) -> CodeLabel {
        self.a.create_label()
    }

    /// Binds `l` to the next instruction. iced allows one label per instruction; if a
    /// label is already waiting for the next instruction, a `lea rsp, [rsp]` (no effect
    /// on registers or flags) goes between them.
    pub(crate) fn set(&mut self, l: &mut CodeLabel) -> AsmResult {
        let at = self.a.instructions().len();
        if self.last_label_at == Some(at) {
            self.a.lea(rsp, qword_ptr(rsp))?;
        }
        self.last_label_at = Some(self.a.instructions().len());
        self.a.set_label(l)
    }

    /// `call` hypercall stub `nr` (clobbers rax and the argument registers rdi, rsi,
    /// rdx, r10, r8; the stub preserves rcx and r11).
    pub(crate) fn hypercall(&mut self, nr: u64) -> AsmResult {
        self.a.call(hypercall_stub(nr))
    }

    /// The label of a string literal (emitted after the code).
    pub(crate) fn lit(&mut self, s: &[u8]) -> CodeLabel {
        if let Some(l) = self.strings.get(s) {
            return *l;
        }
        let l = self.a.create_label();
        self.strings.insert(s.to_vec(), l);
        l
    }

    /// `lea reg, [rip + literal]`; returns the literal's length.
    pub(crate) fn lea_lit(&mut self, reg: AsmRegister64, s: &[u8]) -> AsmResult<u32> {
        let l = self.lit(s);
        self.a.lea(reg, ptr(l))?;
        Ok(s.len() as u32)
    }

    /// Emits the literals and assembles everything at `ip`.
    pub(crate) fn finish(mut self, ip: u64) -> AsmResult<Assembled> {
        let strings = std::mem::take(&mut self.strings);
        let mut first: Option<CodeLabel> = None;
        for (s, mut l) in strings {
            self.a.set_label(&mut l)?;
            if first.is_none() {
                first = Some(l);
            }
            self.a.db(&s)?;
        }
        let end = match first {
            Some(l) => l,
            None => {
                let mut l = self.a.create_label();
                self.a.set_label(&mut l)?;
                self.a.db(&[0])?;
                l
            }
        };
        let r = self
            .a
            .assemble_options(ip, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
        let code_end = r.label_ip(&end)?;
        Ok(Assembled {
            bytes: r.inner.code_buffer,
            code_len: (code_end - ip) as usize,
        })
    }
}
