//! Decoding: iced-x86 instructions flattened into a compact [`Insn`], and the per-page
//! [`DecodeCache`].
//!
//! A code page is decoded lazily, in straight-line runs starting at each new entry offset,
//! and remembered by the [`Bus`](super::Bus)'s page key. Everything cached is independent of
//! the virtual address the page is mapped at: RIP-relative displacements and branch targets
//! are stored relative to the end of the instruction, so one frame mapped twice shares one
//! decode. A page whose generation changed (it was written) is re-decoded from scratch.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use iced_x86::{Code, Decoder, DecoderError, DecoderOptions, Instruction, OpKind, Register};

use super::bus::CodePage;

/// No register / no base / no index.
pub(crate) const NONE: u8 = 0xff;
/// A base of RIP (or EIP with an address-size prefix).
pub(crate) const RIP: u8 = 16;
/// First high-byte register code: AH=16, CH=17, DH=18, BH=19 (used only in 8-bit operands).
pub(crate) const HIGH8: u8 = 16;
/// Segment-register codes: 32 + the hardware number (ES=0, CS, SS, DS, FS, GS).
pub(crate) const SREG: u8 = 32;
/// Any other register (control, debug, vector...): instructions using them are #UD or #GP.
pub(crate) const OTHER: u8 = 0xfe;

/// `Insn::attr` bits.
pub(crate) mod attr {
    /// One operand is a memory reference (`base`/`index`/`scale`/`disp`/`seg` are valid).
    pub const MEM: u8 = 1 << 0;
    /// `lock` prefix.
    pub const LOCK: u8 = 1 << 1;
    /// `rep`/`repe` (F3) prefix.
    pub const REP: u8 = 1 << 2;
    /// `repne` (F2) prefix.
    pub const REPNE: u8 = 1 << 3;
    /// 32-bit address size (67 prefix): effective addresses wrap at 4 GiB.
    pub const A32: u8 = 1 << 4;
    /// The memory operand is SS-relative (rsp/rbp base): non-canonical → #SS, not #GP.
    pub const STACK: u8 = 1 << 5;
    /// Cache marker: the instruction at this offset runs into the next page and must be
    /// decoded from both (code is INVALID).
    pub const STRADDLE: u8 = 1 << 6;
    /// The instruction ends exactly at the end of its page: falling through leaves it.
    pub const END: u8 = 1 << 7;
}

/// Segment override codes in `Insn::seg`.
pub(crate) mod seg {
    /// No base (DS/ES/SS/CS are flat in 64-bit mode).
    pub const FLAT: u8 = 0;
    /// fs: adds `fs_base`.
    pub const FS: u8 = 1;
    /// gs: adds `gs_base`.
    pub const GS: u8 = 2;
}

/// One decoded instruction, flattened for the executor (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    /// iced's opcode; the executor dispatches on it.
    pub code: Code,
    /// Length in bytes (1..=15).
    pub len: u8,
    /// [`attr`] bits.
    pub attr: u8,
    /// Register operands 0..2 (0..15 GPR number, [`HIGH8`].. AH-BH, [`SREG`].., [`OTHER`],
    /// [`NONE`] when that operand is not a register).
    pub r: [u8; 3],
    /// Memory base register (GPR number, [`RIP`], or [`NONE`]).
    pub base: u8,
    /// Memory index register (GPR number or [`NONE`]).
    pub index: u8,
    /// log2 of the index scale.
    pub scale: u8,
    /// [`seg`] code of the memory operand (also the source of string instructions).
    pub seg: u8,
    /// Displacement; relative to the next instruction when `base == RIP`.
    pub disp: u64,
    /// Immediate (sign-extended the way iced reports it), or a branch displacement relative
    /// to the next instruction. `enter` packs its second immediate in bits 32..40.
    pub imm: u64,
}

impl Insn {
    /// An instruction that raises #UD (undecodable bytes).
    pub(crate) const INVALID: Insn = Insn {
        code: Code::INVALID,
        len: 1,
        attr: 0,
        r: [NONE; 3],
        base: NONE,
        index: NONE,
        scale: 0,
        seg: seg::FLAT,
        disp: 0,
        imm: 0,
    };

    /// Whether the instruction has a memory operand.
    #[inline(always)]
    pub(crate) fn is_mem(&self) -> bool {
        self.attr & attr::MEM != 0
    }

    /// Flattens an iced instruction; `bytes` are its own bytes (for the prefix scan).
    pub(crate) fn from_iced(ins: &Instruction, bytes: &[u8]) -> Insn {
        let mut out = Insn::INVALID;
        out.code = ins.code();
        out.len = ins.len() as u8;
        if ins.is_invalid() {
            return out;
        }
        if ins.has_lock_prefix() {
            out.attr |= attr::LOCK;
        }
        if ins.has_rep_prefix() {
            out.attr |= attr::REP;
        }
        if ins.has_repne_prefix() {
            out.attr |= attr::REPNE;
        }
        if has_addr32_prefix(bytes) {
            out.attr |= attr::A32;
        }
        let next_ip = ins.next_ip();
        let mut second_imm = false;
        for n in 0..ins.op_count().min(4) {
            match ins.op_kind(n) {
                OpKind::Register => {
                    if let Some(slot) = out.r.get_mut(n as usize) {
                        *slot = reg_code(ins.op_register(n));
                    }
                }
                OpKind::Memory => {
                    out.attr |= attr::MEM;
                    let base = ins.memory_base();
                    out.base = match base {
                        Register::RIP | Register::EIP => RIP,
                        Register::None => NONE,
                        r => gpr_code(r),
                    };
                    out.index = match ins.memory_index() {
                        Register::None => NONE,
                        r => gpr_code(r),
                    };
                    out.scale = ins.memory_index_scale().trailing_zeros() as u8;
                    out.disp = ins.memory_displacement64();
                    if out.base == RIP {
                        out.disp = out.disp.wrapping_sub(next_ip);
                    }
                    out.seg = seg_code(ins.memory_segment());
                    if ins.memory_segment() == Register::SS {
                        out.attr |= attr::STACK;
                    }
                }
                OpKind::MemorySegRSI | OpKind::MemorySegESI => {
                    out.seg = seg_code(ins.memory_segment());
                }
                OpKind::NearBranch64 => {
                    out.imm = ins.near_branch64().wrapping_sub(next_ip);
                }
                OpKind::Immediate8
                | OpKind::Immediate16
                | OpKind::Immediate32
                | OpKind::Immediate64
                | OpKind::Immediate8to16
                | OpKind::Immediate8to32
                | OpKind::Immediate8to64
                | OpKind::Immediate32to64 => {
                    out.imm = immediate(ins, n);
                }
                OpKind::Immediate8_2nd => second_imm = true,
                _ => {}
            }
        }
        if second_imm {
            out.imm |= u64::from(ins.immediate8_2nd()) << 32;
        }
        out
    }
}

fn immediate(ins: &Instruction, n: u32) -> u64 {
    match ins.op_kind(n) {
        OpKind::Immediate8 => u64::from(ins.immediate8()),
        OpKind::Immediate16 => u64::from(ins.immediate16()),
        OpKind::Immediate32 => u64::from(ins.immediate32()),
        OpKind::Immediate64 => ins.immediate64(),
        OpKind::Immediate8to16 => ins.immediate8to16() as u64,
        OpKind::Immediate8to32 => ins.immediate8to32() as u64,
        OpKind::Immediate8to64 => ins.immediate8to64() as u64,
        OpKind::Immediate32to64 => ins.immediate32to64() as u64,
        _ => 0,
    }
}

/// Whether the legacy-prefix run at the start of `bytes` contains an address-size override.
fn has_addr32_prefix(bytes: &[u8]) -> bool {
    for &b in bytes {
        match b {
            0x67 => return true,
            0xf0 | 0xf2 | 0xf3 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0x66 => {}
            // REX may sit between legacy prefixes (it is then ignored) — keep scanning.
            0x40..=0x4f => {}
            _ => return false,
        }
    }
    false
}

/// The register code of a general-purpose register of any width; [`OTHER`] for non-GPRs.
fn gpr_code(r: Register) -> u8 {
    let v = r as u32;
    if r.is_gpr64() {
        (v - Register::RAX as u32) as u8
    } else if r.is_gpr32() {
        (v - Register::EAX as u32) as u8
    } else if r.is_gpr16() {
        (v - Register::AX as u32) as u8
    } else if r.is_gpr8() {
        // iced order: AL CL DL BL AH CH DH BH SPL BPL SIL DIL R8L..R15L.
        let n = (v - Register::AL as u32) as u8;
        match n {
            0..=3 => n,
            4..=7 => HIGH8 + (n - 4),
            _ => n - 4,
        }
    } else {
        OTHER
    }
}

fn reg_code(r: Register) -> u8 {
    match r {
        Register::ES => SREG,
        Register::CS => SREG + 1,
        Register::SS => SREG + 2,
        Register::DS => SREG + 3,
        Register::FS => SREG + 4,
        Register::GS => SREG + 5,
        r => gpr_code(r),
    }
}

fn seg_code(r: Register) -> u8 {
    match r {
        Register::FS => seg::FS,
        Register::GS => seg::GS,
        _ => seg::FLAT,
    }
}

/// Whether decoding should stop after this instruction (nothing after it is reached by
/// falling through).
fn ends_run(code: Code) -> bool {
    matches!(
        code,
        Code::INVALID
            | Code::Jmp_rel8_64
            | Code::Jmp_rel32_64
            | Code::Jmp_rm64
            | Code::Retnq
            | Code::Retnq_imm16
            | Code::Ud2
            | Code::Hlt
            | Code::Syscall
    )
}

/// Slot value: not decoded yet.
pub(crate) const EMPTY: u16 = 0;

/// The decoded instructions of one code page.
#[derive(Debug)]
pub(crate) struct CachedPage {
    /// Identity and generation the decode is valid for.
    pub page: CodePage,
    /// Per byte offset: [`EMPTY`] or `index + 1` into `insns`.
    pub slots: Box<[u16; 4096]>,
    /// Decoded instructions, in decode order.
    pub insns: Vec<Insn>,
}

impl CachedPage {
    fn new(page: CodePage) -> CachedPage {
        CachedPage {
            page,
            slots: Box::new([EMPTY; 4096]),
            insns: Vec::new(),
        }
    }

    fn reset(&mut self, page: CodePage) {
        self.page = page;
        self.slots.fill(EMPTY);
        self.insns.clear();
    }

    /// Decodes a straight-line run starting at `start` (which must be [`EMPTY`]); returns
    /// the new slot value of `start`.
    #[cold]
    #[inline(never)]
    pub(crate) fn decode_run(&mut self, start: usize, bytes: &[u8; 4096]) -> u16 {
        let start = start & 0xfff;
        let mut decoder = Decoder::with_ip(64, &bytes[start..], start as u64, DecoderOptions::NONE);
        let mut ins = Instruction::default();
        let mut off = start;
        while off < 4096 && self.slots[off] == EMPTY {
            decoder.decode_out(&mut ins);
            let insn = if ins.is_invalid() && decoder.last_error() == DecoderError::NoMoreBytes {
                Insn {
                    attr: attr::STRADDLE,
                    ..Insn::INVALID
                }
            } else {
                let len = ins.len().max(1);
                let end = (off + len).min(4096);
                let mut insn = Insn::from_iced(&ins, &bytes[off..end]);
                if off + len >= 4096 {
                    insn.attr |= attr::END;
                }
                insn
            };
            self.insns.push(insn);
            self.slots[off] = self.insns.len() as u16;
            if insn.attr & attr::STRADDLE != 0 {
                break;
            }
            if ends_run(insn.code) {
                break;
            }
            off += usize::from(insn.len);
        }
        self.slots[start]
    }

    /// The decoded instruction for a slot value returned by [`CachedPage::slot`].
    #[inline(always)]
    pub(crate) fn insn(&self, slot: u16) -> &Insn {
        // Slot values are written only by decode_run, as indices + 1 into `insns`.
        self.insns
            .get(usize::from(slot).wrapping_sub(1))
            .unwrap_or(&Insn::INVALID)
    }
}

/// Decodes an instruction from a buffer assembled across a page boundary (not cached).
pub(crate) fn decode_one(buf: &[u8], ip: u64) -> Insn {
    let mut decoder = Decoder::with_ip(64, buf, ip, DecoderOptions::NONE);
    let ins = decoder.decode();
    let len = ins.len().min(buf.len());
    Insn::from_iced(&ins, &buf[..len])
}

/// A multiplicative hasher for page keys (deterministic; lookups only, never iterated).
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

/// Decoded instructions per code page, keyed by [`CodePage::key`] and validated by
/// [`CodePage::gen`].
///
/// Bounded: once it holds [`DecodeCache::MAX_PAGES`] pages it is cleared and refilled
/// (a deterministic policy — the same run always decodes the same way).
#[derive(Debug, Default)]
pub struct DecodeCache {
    pub(crate) pages: Vec<CachedPage>,
    index: HashMap<u64, usize, BuildHasherDefault<KeyHasher>>,
    /// Pages decoded (or re-decoded) since creation, for tests and statistics.
    decodes: u64,
}

impl DecodeCache {
    /// Most pages kept before the cache is flushed.
    pub const MAX_PAGES: usize = 4096;

    /// An empty cache.
    pub fn new() -> DecodeCache {
        DecodeCache::default()
    }

    /// Forgets everything (e.g. after restoring a guest).
    pub fn clear(&mut self) {
        self.pages.clear();
        self.index.clear();
    }

    /// How many times a page was (re)started from scratch: first sight or a new generation.
    pub fn page_decodes(&self) -> u64 {
        self.decodes
    }

    /// Number of pages currently cached.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The cache entry for `page`, reset if its generation changed.
    pub(crate) fn page(&mut self, page: CodePage) -> usize {
        if let Some(&i) = self.index.get(&page.key) {
            if let Some(p) = self.pages.get_mut(i) {
                if p.page.gen != page.gen {
                    p.reset(page);
                    self.decodes += 1;
                }
                return i;
            }
        }
        if self.pages.len() >= Self::MAX_PAGES {
            self.clear();
        }
        self.decodes += 1;
        self.pages.push(CachedPage::new(page));
        let i = self.pages.len() - 1;
        self.index.insert(page.key, i);
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insn_is_compact() {
        assert_eq!(std::mem::size_of::<Insn>(), 32);
    }

    #[test]
    fn runs_stop_at_unconditional_flow_and_mark_page_ends() {
        let mut bytes = Box::new([0x90u8; 4096]);
        bytes[0..2].copy_from_slice(&[0xeb, 0xfe]); // jmp $
        bytes[4093..4096].copy_from_slice(&[0x48, 0x89, 0xc0]); // mov rax, rax (ends the page)
        let mut p = CachedPage::new(CodePage { key: 0, gen: 0 });
        p.decode_run(0, &bytes);
        assert_eq!(p.insns.len(), 1, "nothing after the jmp is decoded");
        let s = p.decode_run(4090, &bytes);
        assert_eq!(p.insns.len(), 1 + 4);
        assert_eq!(p.insn(s).code, Code::Nopd);
        let last = p.insn(p.slots[4093]);
        assert_eq!(last.code, Code::Mov_rm64_r64);
        assert_ne!(last.attr & attr::END, 0);
        // A 10-byte mov starting 4 bytes before the end straddles.
        bytes[4092..4096].copy_from_slice(&[0x48, 0xb8, 0x11, 0x22]);
        let mut p = CachedPage::new(CodePage { key: 0, gen: 1 });
        let s = p.decode_run(4092, &bytes);
        assert_ne!(p.insn(s).attr & attr::STRADDLE, 0);
    }

    #[test]
    fn address_size_prefix_scan() {
        assert!(has_addr32_prefix(&[0x67, 0x8b, 0x03]));
        assert!(has_addr32_prefix(&[0x64, 0x67, 0x48, 0x8b, 0x03]));
        assert!(!has_addr32_prefix(&[0x48, 0x8b, 0x03]));
        assert!(!has_addr32_prefix(&[0x8b, 0x67]));
    }

    #[test]
    fn relative_operands_do_not_depend_on_the_mapping() {
        // lea rax, [rip + 0x10]; jmp +5 — decoded at two different IPs, identical Insns.
        let code = [0x48, 0x8d, 0x05, 0x10, 0, 0, 0, 0xeb, 0x05];
        let a = decode_one(&code, 0);
        let b = decode_one(&code, 0x7fff_0000);
        assert_eq!(a, b);
        assert_eq!(a.base, RIP);
        assert_eq!(a.disp, 0x10);
    }
}
