//! Differential tests: each instruction runs natively on the host CPU (`core::arch::asm!`)
//! and in the interpreter on the same random operands; destination registers and the six
//! arithmetic flags must agree.
//!
//! Registers: `rsi` is the destination, `rdi` the source, `r8` a third operand, `cl` the
//! shift count, `rax`/`rdx` the implicit accumulator pair; `rax rcx rdx rsi rdi r8 r9` are
//! all compared after every instruction.
//!
//! ## Undefined flags
//!
//! Each case lists the flags the SDM calls undefined for it (`undef`). On an AMD host the
//! interpreter's documented choices (see [`crate::cpu::flags`]) are the host's, and all six
//! flags are compared; on any other host the undefined ones are masked out. Cases whose
//! *result* is undefined (bsf/bsr with a zero source on a non-AMD host, 16-bit shld/shrd
//! with a count above 16) compare only what is defined. Divisions that fault natively are
//! not executed natively: the interpreter must raise #DE and change nothing instead.
//!
//! This is the one place outside the hw backend with `unsafe` (each block says why it
//! holds).
#![allow(unsafe_code)]

use std::arch::asm;

use iced_x86::code_asm::*;
use iced_x86::IcedError;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use crate::cpu::flags::{AF, ARITH, CF, OF, PF, SF, ZF};
use crate::cpu::gpr::*;
use crate::cpu::{run, DecodeCache, Exit, Fault, FlatMemory, Regs, RunLimits};

/// The registers a case can touch, plus RFLAGS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct St {
    rax: u64,
    rcx: u64,
    rdx: u64,
    rsi: u64,
    rdi: u64,
    r8: u64,
    r9: u64,
    flags: u64,
}

type Native = fn(&mut St);
type Assemble = fn(&mut CodeAssembler) -> Result<(), IcedError>;

struct Case {
    name: &'static str,
    native: Native,
    asm: Assemble,
    /// Architecturally undefined flags (compared only on an AMD host).
    undef: u64,
    /// Adjusts the random state (e.g. makes cmpxchg's comparison succeed half the time).
    prep: fn(&mut St),
    /// The operands would raise #DE natively.
    de: fn(&St) -> bool,
    /// The result is architecturally undefined for these operands on a non-AMD host:
    /// compare nothing but ZF.
    loose: fn(&St) -> bool,
    /// Host feature the instruction needs.
    feature: Option<&'static str>,
    /// Instructions in the case (a flag producer followed by consumers).
    n: u64,
}

/// Runs one instruction natively with the state's registers and flags.
macro_rules! native {
    ($($insn:literal),+) => {
        |s: &mut St| {
            // SAFETY: the instruction reads and writes only the registers bound here and
            // RFLAGS; it touches no memory. The push/popfq and pushfq/pop pairs are balanced,
            // so rsp is restored, and the flags loaded have only the arithmetic bits, IF and
            // the reserved bit set (no TF, no DF), so popfq changes nothing else. Divisions
            // that would fault are filtered out before this runs.
            unsafe {
                asm!(
                    "push {f}",
                    "popfq",
                    $($insn,)+
                    "pushfq",
                    "pop {f}",
                    f = inout(reg) s.flags,
                    inout("rax") s.rax,
                    inout("rcx") s.rcx,
                    inout("rdx") s.rdx,
                    inout("rsi") s.rsi,
                    inout("rdi") s.rdi,
                    inout("r8") s.r8,
                    inout("r9") s.r9,
                );
            }
        }
    };
}

fn no_prep(_: &mut St) {}
fn never(_: &St) -> bool {
    false
}

macro_rules! case {
    ($insn:literal, |$a:ident| $asm:expr) => {
        case!($insn, |$a| $asm, 0)
    };
    ($insn:literal, |$a:ident| $asm:expr, $undef:expr) => {
        Case {
            name: $insn,
            native: native!($insn),
            asm: |$a| $asm,
            undef: $undef,
            prep: no_prep,
            de: never,
            loose: never,
            feature: None,
            n: 1,
        }
    };
}

fn is_amd() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| s.contains("AuthenticAMD"))
}

fn has(feature: &str) -> bool {
    match feature {
        "lzcnt" => std::is_x86_feature_detected!("lzcnt"),
        "popcnt" => std::is_x86_feature_detected!("popcnt"),
        "bmi1" => std::is_x86_feature_detected!("bmi1"),
        _ => false,
    }
}

/// A small harness reused across cases (one flat page of code).
struct Interp {
    mem: FlatMemory,
    cache: DecodeCache,
}

impl Interp {
    fn new() -> Interp {
        Interp {
            mem: FlatMemory::new(2),
            cache: DecodeCache::new(),
        }
    }

    fn exec(&mut self, code: &[u8], s: &St, n: u64) -> (St, Exit) {
        self.mem.load(0x1000, code);
        let mut regs = Regs {
            rip: 0x1000,
            rflags: s.flags,
            ..Regs::default()
        };
        regs.gpr[RAX] = s.rax;
        regs.gpr[RCX] = s.rcx;
        regs.gpr[RDX] = s.rdx;
        regs.gpr[RSI] = s.rsi;
        regs.gpr[RDI] = s.rdi;
        regs.gpr[R8] = s.r8;
        regs.gpr[R9] = s.r9;
        regs.gpr[RSP] = 0x2000;
        let r = run(
            &mut regs,
            &mut self.mem,
            &mut self.cache,
            RunLimits {
                budget: n,
                tsc: 0,
                tsc_aux: 0,
            },
        );
        let g = regs.gpr;
        let out = St {
            rax: g[RAX],
            rcx: g[RCX],
            rdx: g[RDX],
            rsi: g[RSI],
            rdi: g[RDI],
            r8: g[R8],
            r9: g[R9],
            flags: regs.rflags,
        };
        (out, r.exit)
    }
}

fn assemble(f: Assemble) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    f(&mut a).expect("assemble case");
    a.assemble(0x1000).expect("encode case")
}

/// Runs every case of `cases` on `input`, natively and interpreted, and compares.
fn check(cases: &[Case], input: St) -> Result<(), TestCaseError> {
    let amd = is_amd();
    let mut it = Interp::new();
    for case in cases {
        if case.feature.is_some_and(|f| !has(f)) {
            continue;
        }
        let mut s = input;
        (case.prep)(&mut s);
        let code = assemble(case.asm);
        let (got, exit) = it.exec(&code, &s, case.n);
        if (case.de)(&s) {
            prop_assert_eq!(exit, Exit::Exception(Fault::DE), "{} {:x?}", case.name, s);
            prop_assert_eq!(got, s, "{}: #DE must change nothing", case.name);
            continue;
        }
        prop_assert_eq!(exit, Exit::Budget, "{} {:x?}", case.name, s);
        let mut want = s;
        (case.native)(&mut want);
        let mut mask = if amd { ARITH } else { ARITH & !case.undef };
        let (mut g, mut w) = (got, want);
        if !amd && (case.loose)(&s) {
            mask &= ZF;
            g = St {
                flags: g.flags,
                ..s
            };
            w = St {
                flags: w.flags,
                ..s
            };
        }
        prop_assert_eq!(
            (g.rax, g.rcx, g.rdx, g.rsi, g.rdi, g.r8, g.r9),
            (w.rax, w.rcx, w.rdx, w.rsi, w.rdi, w.r8, w.r9),
            "{}: registers differ for {:x?}",
            case.name,
            s
        );
        prop_assert_eq!(
            flag_names(g.flags & mask),
            flag_names(w.flags & mask),
            "{}: flags differ for {:x?}",
            case.name,
            s
        );
    }
    Ok(())
}

fn flag_names(f: u64) -> String {
    [
        (CF, 'C'),
        (PF, 'P'),
        (AF, 'A'),
        (ZF, 'Z'),
        (SF, 'S'),
        (OF, 'O'),
    ]
    .iter()
    .map(|&(b, c)| if f & b != 0 { c } else { '-' })
    .collect()
}

fn operand() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => any::<u64>(),
        2 => 0u64..0x100,
        1 => prop::sample::select(vec![
            0u64, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x1_0000,
            0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1_0000_0000,
            0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, u64::MAX, u64::MAX - 1,
        ]),
        1 => any::<u64>().prop_map(|v| v.wrapping_neg() & 0xffff),
    ]
}

fn state() -> impl Strategy<Value = St> {
    (
        [
            operand(),
            operand(),
            operand(),
            operand(),
            operand(),
            operand(),
            operand(),
        ],
        any::<u64>(),
    )
        .prop_map(|(r, f)| St {
            rax: r[0],
            rcx: r[1],
            rdx: r[2],
            rsi: r[3],
            rdi: r[4],
            r8: r[5],
            r9: r[6],
            flags: 0x202 | (f & ARITH),
        })
}

fn alu_cases() -> Vec<Case> {
    vec![
        case!("add rsi, rdi", |a| a.add(rsi, rdi)),
        case!("add esi, edi", |a| a.add(esi, edi)),
        case!("add si, di", |a| a.add(si, di)),
        case!("add sil, dil", |a| a.add(sil, dil)),
        case!("add ah, dh", |a| a.add(ah, dh)),
        case!("add rsi, -0x80", |a| a.add(rsi, -0x80)),
        case!("add esi, 0x12345678", |a| a.add(esi, 0x1234_5678)),
        case!("adc rsi, rdi", |a| a.adc(rsi, rdi)),
        case!("adc esi, edi", |a| a.adc(esi, edi)),
        case!("adc si, di", |a| a.adc(si, di)),
        case!("adc sil, dil", |a| a.adc(sil, dil)),
        case!("adc ch, al", |a| a.adc(ch, al)),
        case!("sub rsi, rdi", |a| a.sub(rsi, rdi)),
        case!("sub esi, edi", |a| a.sub(esi, edi)),
        case!("sub si, di", |a| a.sub(si, di)),
        case!("sub sil, dil", |a| a.sub(sil, dil)),
        case!("sub dh, cl", |a| a.sub(dh, cl)),
        case!("sub si, 0x7fff", |a| a.sub(si, 0x7fff)),
        case!("sbb rsi, rdi", |a| a.sbb(rsi, rdi)),
        case!("sbb esi, edi", |a| a.sbb(esi, edi)),
        case!("sbb si, di", |a| a.sbb(si, di)),
        case!("sbb sil, dil", |a| a.sbb(sil, dil)),
        case!("sbb rsi, 1", |a| a.sbb(rsi, 1)),
        case!("cmp rsi, rdi", |a| a.cmp(rsi, rdi)),
        case!("cmp esi, edi", |a| a.cmp(esi, edi)),
        case!("cmp si, di", |a| a.cmp(si, di)),
        case!("cmp sil, dil", |a| a.cmp(sil, dil)),
        case!("cmp ah, ch", |a| a.cmp(ah, ch)),
        case!("and rsi, rdi", |a| a.and(rsi, rdi), AF),
        case!("and esi, edi", |a| a.and(esi, edi), AF),
        case!("and si, di", |a| a.and(si, di), AF),
        case!("and sil, dil", |a| a.and(sil, dil), AF),
        case!("and rsi, -16", |a| a.and(rsi, -16), AF),
        case!("or rsi, rdi", |a| a.or(rsi, rdi), AF),
        case!("or esi, edi", |a| a.or(esi, edi), AF),
        case!("or si, di", |a| a.or(si, di), AF),
        case!("or sil, dil", |a| a.or(sil, dil), AF),
        case!("xor rsi, rdi", |a| a.xor(rsi, rdi), AF),
        case!("xor esi, edi", |a| a.xor(esi, edi), AF),
        case!("xor si, di", |a| a.xor(si, di), AF),
        case!("xor sil, dil", |a| a.xor(sil, dil), AF),
        case!("xor dh, ah", |a| a.xor(dh, ah), AF),
        case!("test rsi, rdi", |a| a.test(rsi, rdi), AF),
        case!("test esi, edi", |a| a.test(esi, edi), AF),
        case!("test si, di", |a| a.test(si, di), AF),
        case!("test sil, dil", |a| a.test(sil, dil), AF),
        case!("test esi, 0x80000001", |a| a.test(esi, 0x8000_0001u32)),
        case!("neg rsi", |a| a.neg(rsi)),
        case!("neg esi", |a| a.neg(esi)),
        case!("neg si", |a| a.neg(si)),
        case!("neg sil", |a| a.neg(sil)),
        case!("neg dh", |a| a.neg(dh)),
        case!("not rsi", |a| a.not(rsi)),
        case!("not esi", |a| a.not(esi)),
        case!("not si", |a| a.not(si)),
        case!("not sil", |a| a.not(sil)),
        case!("inc rsi", |a| a.inc(rsi)),
        case!("inc esi", |a| a.inc(esi)),
        case!("inc si", |a| a.inc(si)),
        case!("inc sil", |a| a.inc(sil)),
        case!("inc ah", |a| a.inc(ah)),
        case!("dec rsi", |a| a.dec(rsi)),
        case!("dec esi", |a| a.dec(esi)),
        case!("dec si", |a| a.dec(si)),
        case!("dec sil", |a| a.dec(sil)),
    ]
}

/// Shifts: AF undefined for a non-zero count, OF for counts above 1, CF past the width.
const SH_UNDEF: u64 = AF | OF | CF;

fn shift_cases() -> Vec<Case> {
    vec![
        case!("shl rsi, cl", |a| a.shl(rsi, cl), SH_UNDEF),
        case!("shl esi, cl", |a| a.shl(esi, cl), SH_UNDEF),
        case!("shl si, cl", |a| a.shl(si, cl), SH_UNDEF),
        case!("shl sil, cl", |a| a.shl(sil, cl), SH_UNDEF),
        case!("shl ah, cl", |a| a.shl(ah, cl), SH_UNDEF),
        case!("shl rsi, 1", |a| a.shl(rsi, 1), 0),
        case!("shl esi, 1", |a| a.shl(esi, 1), 0),
        case!("shl sil, 1", |a| a.shl(sil, 1), 0),
        case!("shl rsi, 0", |a| a.shl(rsi, 0), 0),
        case!("shl esi, 0", |a| a.shl(esi, 0), 0),
        case!("shl esi, 7", |a| a.shl(esi, 7), SH_UNDEF),
        case!("shr rsi, cl", |a| a.shr(rsi, cl), SH_UNDEF),
        case!("shr esi, cl", |a| a.shr(esi, cl), SH_UNDEF),
        case!("shr si, cl", |a| a.shr(si, cl), SH_UNDEF),
        case!("shr sil, cl", |a| a.shr(sil, cl), SH_UNDEF),
        case!("shr rsi, 1", |a| a.shr(rsi, 1), 0),
        case!("shr si, 1", |a| a.shr(si, 1), 0),
        case!("shr rsi, 33", |a| a.shr(rsi, 33), SH_UNDEF),
        case!("sar rsi, cl", |a| a.sar(rsi, cl), SH_UNDEF),
        case!("sar esi, cl", |a| a.sar(esi, cl), SH_UNDEF),
        case!("sar si, cl", |a| a.sar(si, cl), SH_UNDEF),
        case!("sar sil, cl", |a| a.sar(sil, cl), SH_UNDEF),
        case!("sar esi, 1", |a| a.sar(esi, 1), 0),
        case!("sar dh, 5", |a| a.sar(dh, 5), SH_UNDEF),
        case!("rol rsi, cl", |a| a.rol(rsi, cl), OF),
        case!("rol esi, cl", |a| a.rol(esi, cl), OF),
        case!("rol si, cl", |a| a.rol(si, cl), OF),
        case!("rol sil, cl", |a| a.rol(sil, cl), OF),
        case!("rol rsi, 1", |a| a.rol(rsi, 1), 0),
        case!("rol si, 9", |a| a.rol(si, 9), OF),
        case!("ror rsi, cl", |a| a.ror(rsi, cl), OF),
        case!("ror esi, cl", |a| a.ror(esi, cl), OF),
        case!("ror si, cl", |a| a.ror(si, cl), OF),
        case!("ror sil, cl", |a| a.ror(sil, cl), OF),
        case!("ror esi, 1", |a| a.ror(esi, 1), 0),
        case!("ror ch, cl", |a| a.ror(ch, cl), OF),
        case!("rcl rsi, cl", |a| a.rcl(rsi, cl), OF),
        case!("rcl esi, cl", |a| a.rcl(esi, cl), OF),
        case!("rcl si, cl", |a| a.rcl(si, cl), OF),
        case!("rcl sil, cl", |a| a.rcl(sil, cl), OF),
        case!("rcl rsi, 1", |a| a.rcl(rsi, 1), 0),
        case!("rcr rsi, cl", |a| a.rcr(rsi, cl), OF),
        case!("rcr esi, cl", |a| a.rcr(esi, cl), OF),
        case!("rcr si, cl", |a| a.rcr(si, cl), OF),
        case!("rcr sil, cl", |a| a.rcr(sil, cl), OF),
        case!("rcr sil, 1", |a| a.rcr(sil, 1), 0),
        case!("shld rsi, rdi, cl", |a| a.shld(rsi, rdi, cl), SH_UNDEF),
        case!("shld esi, edi, cl", |a| a.shld(esi, edi, cl), SH_UNDEF),
        Case {
            loose: |s| s.rcx & 31 > 16,
            ..case!("shld si, di, cl", |a| a.shld(si, di, cl), SH_UNDEF)
        },
        case!("shld rsi, rdi, 1", |a| a.shld(rsi, rdi, 1), 0),
        case!("shrd rsi, rdi, cl", |a| a.shrd(rsi, rdi, cl), SH_UNDEF),
        case!("shrd esi, edi, cl", |a| a.shrd(esi, edi, cl), SH_UNDEF),
        Case {
            loose: |s| s.rcx & 31 > 16,
            ..case!("shrd si, di, cl", |a| a.shrd(si, di, cl), SH_UNDEF)
        },
        case!("shrd esi, edi, 1", |a| a.shrd(esi, edi, 1), 0),
    ]
}

/// `#DE` conditions of div/idiv by `rdi`'s low `bits` with the implicit dividend.
fn div_faults(s: &St, bits: u32, signed: bool) -> bool {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let sext = |v: u64| -> i128 {
        let sh = 64 - bits;
        i128::from(((v << sh) as i64) >> sh)
    };
    let d = s.rdi & mask;
    if d == 0 {
        return true;
    }
    // Dividend: ax for 8-bit, else dx:ax / edx:eax / rdx:rax.
    let (hi, lo) = if bits == 8 {
        ((s.rax >> 8) & 0xff, s.rax & 0xff)
    } else {
        (s.rdx & mask, s.rax & mask)
    };
    if signed {
        let n = (sext(hi) << bits) | i128::from(lo);
        let q = n / sext(d);
        let lim = 1i128 << (bits - 1);
        !(-lim..lim).contains(&q)
    } else {
        hi >= d
    }
}

/// Mul/imul: SF ZF AF PF undefined; div/idiv: all six.
const MUL_UNDEF: u64 = SF | ZF | AF | PF;

fn muldiv_cases() -> Vec<Case> {
    vec![
        case!("mul rdi", |a| a.mul(rdi), MUL_UNDEF),
        case!("mul edi", |a| a.mul(edi), MUL_UNDEF),
        case!("mul di", |a| a.mul(di), MUL_UNDEF),
        case!("mul dil", |a| a.mul(dil), MUL_UNDEF),
        case!("mul ah", |a| a.mul(ah), MUL_UNDEF),
        case!("imul rdi", |a| a.imul(rdi), MUL_UNDEF),
        case!("imul edi", |a| a.imul(edi), MUL_UNDEF),
        case!("imul di", |a| a.imul(di), MUL_UNDEF),
        case!("imul dil", |a| a.imul(dil), MUL_UNDEF),
        case!("imul rsi, rdi", |a| a.imul_2(rsi, rdi), MUL_UNDEF),
        case!("imul esi, edi", |a| a.imul_2(esi, edi), MUL_UNDEF),
        case!("imul si, di", |a| a.imul_2(si, di), MUL_UNDEF),
        case!(
            "imul rsi, rdi, 1000",
            |a| a.imul_3(rsi, rdi, 1000),
            MUL_UNDEF
        ),
        case!("imul esi, edi, -7", |a| a.imul_3(esi, edi, -7), MUL_UNDEF),
        case!(
            "imul si, di, 0x1234",
            |a| a.imul_3(si, di, 0x1234),
            MUL_UNDEF
        ),
        case!(
            "imul rsi, rdi, -0x80000000",
            |a| a.imul_3(rsi, rdi, i32::MIN),
            MUL_UNDEF
        ),
        Case {
            de: |s| div_faults(s, 64, false),
            ..case!("div rdi", |a| a.div(rdi), ARITH)
        },
        Case {
            de: |s| div_faults(s, 32, false),
            ..case!("div edi", |a| a.div(edi), ARITH)
        },
        Case {
            de: |s| div_faults(s, 16, false),
            ..case!("div di", |a| a.div(di), ARITH)
        },
        Case {
            de: |s| div_faults(s, 8, false),
            ..case!("div dil", |a| a.div(dil), ARITH)
        },
        Case {
            de: |s| div_faults(s, 64, true),
            ..case!("idiv rdi", |a| a.idiv(rdi), ARITH)
        },
        Case {
            de: |s| div_faults(s, 32, true),
            ..case!("idiv edi", |a| a.idiv(edi), ARITH)
        },
        Case {
            de: |s| div_faults(s, 16, true),
            ..case!("idiv di", |a| a.idiv(di), ARITH)
        },
        Case {
            de: |s| div_faults(s, 8, true),
            ..case!("idiv dil", |a| a.idiv(dil), ARITH)
        },
    ]
}

/// bt*: OF SF AF PF undefined.
const BT_UNDEF: u64 = OF | SF | AF | PF;
/// bsf/bsr: everything but ZF.
const BSX_UNDEF: u64 = CF | OF | SF | AF | PF;
/// tzcnt/lzcnt: OF SF AF PF.
const CNT_UNDEF: u64 = OF | SF | AF | PF;

fn zero_src(s: &St) -> bool {
    s.rdi == 0
}

fn bit_cases() -> Vec<Case> {
    let mut v = vec![
        case!("bt rsi, rdi", |a| a.bt(rsi, rdi), BT_UNDEF),
        case!("bt esi, edi", |a| a.bt(esi, edi), BT_UNDEF),
        case!("bt si, di", |a| a.bt(si, di), BT_UNDEF),
        case!("bts rsi, rdi", |a| a.bts(rsi, rdi), BT_UNDEF),
        case!("bts esi, edi", |a| a.bts(esi, edi), BT_UNDEF),
        case!("bts si, di", |a| a.bts(si, di), BT_UNDEF),
        case!("btr rsi, rdi", |a| a.btr(rsi, rdi), BT_UNDEF),
        case!("btr esi, edi", |a| a.btr(esi, edi), BT_UNDEF),
        case!("btr si, di", |a| a.btr(si, di), BT_UNDEF),
        case!("btc rsi, rdi", |a| a.btc(rsi, rdi), BT_UNDEF),
        case!("btc esi, edi", |a| a.btc(esi, edi), BT_UNDEF),
        case!("btc si, di", |a| a.btc(si, di), BT_UNDEF),
        case!("bt rsi, 63", |a| a.bt(rsi, 63), BT_UNDEF),
        case!("bts esi, 37", |a| a.bts(esi, 37), BT_UNDEF),
        case!("btr si, 15", |a| a.btr(si, 15), BT_UNDEF),
        case!("btc rsi, 3", |a| a.btc(rsi, 3), BT_UNDEF),
        Case {
            loose: zero_src,
            ..case!("bsf rsi, rdi", |a| a.bsf(rsi, rdi), BSX_UNDEF)
        },
        Case {
            loose: zero_src,
            ..case!("bsf esi, edi", |a| a.bsf(esi, edi), BSX_UNDEF)
        },
        Case {
            loose: |s| s.rdi & 0xffff == 0,
            ..case!("bsf si, di", |a| a.bsf(si, di), BSX_UNDEF)
        },
        Case {
            loose: zero_src,
            ..case!("bsr rsi, rdi", |a| a.bsr(rsi, rdi), BSX_UNDEF)
        },
        Case {
            loose: zero_src,
            ..case!("bsr esi, edi", |a| a.bsr(esi, edi), BSX_UNDEF)
        },
        Case {
            loose: |s| s.rdi & 0xffff == 0,
            ..case!("bsr si, di", |a| a.bsr(si, di), BSX_UNDEF)
        },
        case!("bswap rsi", |a| a.bswap(rsi)),
        case!("bswap esi", |a| a.bswap(esi)),
    ];
    let feat = |c: Case, f: &'static str| Case {
        feature: Some(f),
        ..c
    };
    v.extend([
        feat(
            case!("tzcnt rsi, rdi", |a| a.tzcnt(rsi, rdi), CNT_UNDEF),
            "bmi1",
        ),
        feat(
            case!("tzcnt esi, edi", |a| a.tzcnt(esi, edi), CNT_UNDEF),
            "bmi1",
        ),
        feat(
            case!("tzcnt si, di", |a| a.tzcnt(si, di), CNT_UNDEF),
            "bmi1",
        ),
        feat(
            case!("lzcnt rsi, rdi", |a| a.lzcnt(rsi, rdi), CNT_UNDEF),
            "lzcnt",
        ),
        feat(
            case!("lzcnt esi, edi", |a| a.lzcnt(esi, edi), CNT_UNDEF),
            "lzcnt",
        ),
        feat(
            case!("lzcnt si, di", |a| a.lzcnt(si, di), CNT_UNDEF),
            "lzcnt",
        ),
        feat(case!("popcnt rsi, rdi", |a| a.popcnt(rsi, rdi)), "popcnt"),
        feat(case!("popcnt esi, edi", |a| a.popcnt(esi, edi)), "popcnt"),
        feat(case!("popcnt si, di", |a| a.popcnt(si, di)), "popcnt"),
        feat(
            case!("andn rsi, rdi, r8", |a| a.andn(rsi, rdi, r8), AF | PF),
            "bmi1",
        ),
        feat(
            case!("andn esi, edi, r8d", |a| a.andn(esi, edi, r8d), AF | PF),
            "bmi1",
        ),
        feat(
            case!(
                "bextr rsi, rdi, r8",
                |a| a.bextr(rsi, rdi, r8),
                AF | SF | PF
            ),
            "bmi1",
        ),
        feat(
            case!(
                "bextr esi, edi, r8d",
                |a| a.bextr(esi, edi, r8d),
                AF | SF | PF
            ),
            "bmi1",
        ),
        feat(
            case!("blsi rsi, rdi", |a| a.blsi(rsi, rdi), AF | PF),
            "bmi1",
        ),
        feat(
            case!("blsi esi, edi", |a| a.blsi(esi, edi), AF | PF),
            "bmi1",
        ),
        feat(
            case!("blsmsk rsi, rdi", |a| a.blsmsk(rsi, rdi), AF | PF),
            "bmi1",
        ),
        feat(
            case!("blsmsk esi, edi", |a| a.blsmsk(esi, edi), AF | PF),
            "bmi1",
        ),
        feat(
            case!("blsr rsi, rdi", |a| a.blsr(rsi, rdi), AF | PF),
            "bmi1",
        ),
        feat(
            case!("blsr esi, edi", |a| a.blsr(esi, edi), AF | PF),
            "bmi1",
        ),
    ]);
    v
}

/// Flag-only and register-only instructions not covered above: the flag instructions,
/// lahf/sahf, the sign-extension family, movzx/movsx/movsxd and bextr.
fn misc_cases() -> Vec<Case> {
    vec![
        case!("stc", |a| a.stc()),
        case!("clc", |a| a.clc()),
        case!("cmc", |a| a.cmc()),
        case!("lahf", |a| a.lahf()),
        case!("sahf", |a| a.sahf()),
        case!("cbw", |a| a.cbw()),
        case!("cwde", |a| a.cwde()),
        case!("cdqe", |a| a.cdqe()),
        case!("cwd", |a| a.cwd()),
        case!("cdq", |a| a.cdq()),
        case!("cqo", |a| a.cqo()),
        case!("movzx esi, dil", |a| a.movzx(esi, dil)),
        case!("movzx rsi, di", |a| a.movzx(rsi, di)),
        case!("movzx si, ah", |a| a.movzx(si, ah)),
        case!("movsx rsi, dil", |a| a.movsx(rsi, dil)),
        case!("movsx esi, di", |a| a.movsx(esi, di)),
        case!("movsx si, dil", |a| a.movsx(si, dil)),
        case!("movsxd rsi, edi", |a| a.movsxd(rsi, edi)),
        Case {
            feature: Some("bmi1"),
            ..case!(
                "bextr rsi, rdi, r8",
                |a| a.bextr(rsi, rdi, r8),
                AF | PF | SF
            )
        },
        Case {
            feature: Some("bmi1"),
            ..case!(
                "bextr esi, edi, r8d",
                |a| a.bextr(esi, edi, r8d),
                AF | PF | SF
            )
        },
    ]
}

/// The string instructions compared with the host (see `string_asm` for the assembler
/// side; the interpreter runs each followed by `ud2`, so the run stops right after it).
const STRING_OPS: [&str; 10] = [
    "repe cmpsb",
    "repe cmpsq",
    "repne cmpsw",
    "repne scasb",
    "repe scasd",
    "rep movsb",
    "rep movsq",
    "rep stosw",
    "lodsb",
    "cmpsd",
];

fn string_asm(op: usize) -> Assemble {
    match op {
        0 => |a| a.repe().cmpsb(),
        1 => |a| a.repe().cmpsq(),
        2 => |a| a.repne().cmpsw(),
        3 => |a| a.repne().scasb(),
        4 => |a| a.repe().scasd(),
        5 => |a| a.rep().movsb(),
        6 => |a| a.rep().movsq(),
        7 => |a| a.rep().stosw(),
        8 => |a| a.lodsb(),
        _ => |a| a.cmpsd(),
    }
}

fn cmpxchg_prep(s: &mut St) {
    // Half the time make the comparison succeed.
    if s.r9 & 1 == 0 {
        s.rax = s.rsi;
    }
}

fn exchange_cases() -> Vec<Case> {
    let eq_half = |c: Case| Case {
        prep: cmpxchg_prep,
        ..c
    };
    vec![
        case!("xadd rsi, rdi", |a| a.xadd(rsi, rdi)),
        case!("xadd esi, edi", |a| a.xadd(esi, edi)),
        case!("xadd si, di", |a| a.xadd(si, di)),
        case!("xadd sil, dil", |a| a.xadd(sil, dil)),
        case!("xadd rsi, rsi", |a| a.xadd(rsi, rsi)),
        eq_half(case!("cmpxchg rsi, rdi", |a| a.cmpxchg(rsi, rdi))),
        eq_half(case!("cmpxchg esi, edi", |a| a.cmpxchg(esi, edi))),
        eq_half(case!("cmpxchg si, di", |a| a.cmpxchg(si, di))),
        eq_half(case!("cmpxchg sil, dil", |a| a.cmpxchg(sil, dil))),
        case!("xchg rsi, rdi", |a| a.xchg(rsi, rdi)),
        case!("xchg esi, edi", |a| a.xchg(esi, edi)),
        case!("xchg si, di", |a| a.xchg(si, di)),
        case!("xchg dil, sil", |a| a.xchg(dil, sil)),
        case!("cbw", |a| a.cbw()),
        case!("cwde", |a| a.cwde()),
        case!("cdqe", |a| a.cdqe()),
        case!("cwd", |a| a.cwd()),
        case!("cdq", |a| a.cdq()),
        case!("cqo", |a| a.cqo()),
        case!("movzx esi, dil", |a| a.movzx(esi, dil)),
        case!("movzx rsi, di", |a| a.movzx(rsi, di)),
        case!("movzx si, ah", |a| a.movzx(si, ah)),
        case!("movsx rsi, dil", |a| a.movsx(rsi, dil)),
        case!("movsx esi, di", |a| a.movsx(esi, di)),
        case!("movsx si, dl", |a| a.movsx(si, dl)),
        case!("movsxd rsi, edi", |a| a.movsxd(rsi, edi)),
        case!("lea esi, [rdi + r8*4 - 8]", |a| a
            .lea(esi, qword_ptr(rdi + r8 * 4 - 8))),
        case!("lea si, [rdi + r8]", |a| a.lea(si, qword_ptr(rdi + r8))),
        case!("cmc", |a| a.cmc()),
        case!("lahf", |a| a.lahf()),
        case!("sahf", |a| a.sahf()),
    ]
}

macro_rules! cc_cases {
    ($(($set:literal, $cmov:literal, $cmov64:literal, $s:ident, $c:ident)),* $(,)?) => {
        vec![$(
            case!($set, |a| a.$s(sil)),
            case!($cmov, |a| a.$c(esi, edi)),
            case!($cmov64, |a| a.$c(rsi, rdi)),
        )*]
    };
}

fn cc_cases() -> Vec<Case> {
    cc_cases![
        ("seto sil", "cmovo esi, edi", "cmovo rsi, rdi", seto, cmovo),
        (
            "setno sil",
            "cmovno esi, edi",
            "cmovno rsi, rdi",
            setno,
            cmovno
        ),
        ("setb sil", "cmovb esi, edi", "cmovb rsi, rdi", setb, cmovb),
        (
            "setae sil",
            "cmovae esi, edi",
            "cmovae rsi, rdi",
            setae,
            cmovae
        ),
        ("sete sil", "cmove esi, edi", "cmove rsi, rdi", sete, cmove),
        (
            "setne sil",
            "cmovne esi, edi",
            "cmovne rsi, rdi",
            setne,
            cmovne
        ),
        (
            "setbe sil",
            "cmovbe esi, edi",
            "cmovbe rsi, rdi",
            setbe,
            cmovbe
        ),
        ("seta sil", "cmova esi, edi", "cmova rsi, rdi", seta, cmova),
        ("sets sil", "cmovs esi, edi", "cmovs rsi, rdi", sets, cmovs),
        (
            "setns sil",
            "cmovns esi, edi",
            "cmovns rsi, rdi",
            setns,
            cmovns
        ),
        ("setp sil", "cmovp esi, edi", "cmovp rsi, rdi", setp, cmovp),
        (
            "setnp sil",
            "cmovnp esi, edi",
            "cmovnp rsi, rdi",
            setnp,
            cmovnp
        ),
        ("setl sil", "cmovl esi, edi", "cmovl rsi, rdi", setl, cmovl),
        (
            "setge sil",
            "cmovge esi, edi",
            "cmovge rsi, rdi",
            setge,
            cmovge
        ),
        (
            "setle sil",
            "cmovle esi, edi",
            "cmovle rsi, rdi",
            setle,
            cmovle
        ),
        ("setg sil", "cmovg esi, edi", "cmovg rsi, rdi", setg, cmovg),
    ]
}

/// A flag producer followed by eight setcc consumers (every condition pair is covered via
/// its positive half) and an adc/sbb that consumes CF — this exercises the interpreter's
/// lazy flag evaluation, which the single-instruction cases above never see.
macro_rules! consumers {
    ($(($prod:literal, |$a:ident| $asm:expr)),* $(,)?) => {
        vec![$(
            Case {
                name: $prod,
                native: native!($prod, "seto al", "setb ah", "sete cl", "setbe ch", "sets dl",
                    "setp dh", "setl r8b", "setle r9b", "adc rdi, 0"),
                asm: |$a| {
                    $asm?;
                    $a.seto(al)?;
                    $a.setb(ah)?;
                    $a.sete(cl)?;
                    $a.setbe(ch)?;
                    $a.sets(dl)?;
                    $a.setp(dh)?;
                    $a.setl(r8b)?;
                    $a.setle(r9b)?;
                    $a.adc(rdi, 0)
                },
                undef: 0,
                prep: no_prep,
                de: never,
                loose: never,
                feature: None,
                n: 9 + $prod.lines().count() as u64,
            },
        )*]
    };
}

fn consumer_cases() -> Vec<Case> {
    consumers![
        ("add rsi, rdi", |a| a.add(rsi, rdi)),
        ("add esi, edi", |a| a.add(esi, edi)),
        ("add sil, dil", |a| a.add(sil, dil)),
        ("adc rsi, rdi", |a| a.adc(rsi, rdi)),
        ("adc si, di", |a| a.adc(si, di)),
        ("sub rsi, rdi", |a| a.sub(rsi, rdi)),
        ("sub esi, edi", |a| a.sub(esi, edi)),
        ("sbb rsi, rdi", |a| a.sbb(rsi, rdi)),
        ("sbb sil, dil", |a| a.sbb(sil, dil)),
        ("cmp rsi, rdi", |a| a.cmp(rsi, rdi)),
        ("cmp si, di", |a| a.cmp(si, di)),
        ("cmp esi, 0x7fffffff", |a| a.cmp(esi, 0x7fff_ffff)),
        ("and rsi, rdi", |a| a.and(rsi, rdi)),
        ("or esi, edi", |a| a.or(esi, edi)),
        ("xor sil, dil", |a| a.xor(sil, dil)),
        ("test rsi, rdi", |a| a.test(rsi, rdi)),
        ("inc rsi", |a| a.inc(rsi)),
        ("inc sil", |a| a.inc(sil)),
        ("dec esi", |a| a.dec(esi)),
        ("dec si", |a| a.dec(si)),
        ("neg rsi", |a| a.neg(rsi)),
        ("neg sil", |a| a.neg(sil)),
        ("xadd rsi, rdi", |a| a.xadd(rsi, rdi)),
        ("xadd si, di", |a| a.xadd(si, di)),
        ("cmpxchg rsi, rdi", |a| a.cmpxchg(rsi, rdi)),
        ("cmpxchg sil, dil", |a| a.cmpxchg(sil, dil)),
        // inc/dec keep CF from a producer whose flags are still pending.
        ("or rsi, rdi\ninc rsi", |a| {
            a.or(rsi, rdi)?;
            a.inc(rsi)
        }),
        ("add esi, edi\ndec sil", |a| {
            a.add(esi, edi)?;
            a.dec(sil)
        }),
        ("sub rsi, rdi\ninc si\ndec esi", |a| {
            a.sub(rsi, rdi)?;
            a.inc(si)?;
            a.dec(esi)
        }),
        ("cmp rsi, rdi\nshl rsi, 3\ncmc", |a| {
            a.cmp(rsi, rdi)?;
            a.shl(rsi, 3)?;
            a.cmc()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "src/cpu/tests/proptest-regressions/host.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn lazy_flag_consumers_match_host(s in state()) {
        check(&consumer_cases(), s)?;
    }

    #[test]
    fn alu_matches_host(s in state()) {
        check(&alu_cases(), s)?;
    }

    #[test]
    fn shifts_match_host(s in state()) {
        check(&shift_cases(), s)?;
    }

    #[test]
    fn mul_div_match_host(s in state()) {
        check(&muldiv_cases(), s)?;
    }

    #[test]
    fn bit_ops_match_host(s in state()) {
        check(&bit_cases(), s)?;
    }

    #[test]
    fn exchange_and_moves_match_host(s in state()) {
        check(&exchange_cases(), s)?;
    }

    #[test]
    fn conditions_match_host(s in state()) {
        check(&cc_cases(), s)?;
    }

    #[test]
    fn misc_flag_and_extension_ops_match_host(s in state()) {
        check(&misc_cases(), s)?;
    }

    /// rep/repe/repne string instructions in both directions (DF), with buffers that
    /// often agree for a while (so repe/repne stop at varying points): pointers, count,
    /// accumulator, flags and both buffers must match the host.
    #[test]
    fn string_ops_match_host(
        src in proptest::array::uniform32(0u64..4),
        dst in proptest::array::uniform32(0u64..4),
        count in 0u64..12,
        acc in 0u64..4,
        df in any::<bool>(),
        flags in any::<u64>(),
        op in 0usize..STRING_OPS.len(),
    ) {
        let flags = 0x202 | (flags & ARITH) | if df { crate::cpu::flags::DF } else { 0 };
        // Words of 0..4 make equal bytes, words and qwords likely.
        let spread = |w: u64| w.wrapping_mul(0x0101_0101_0101_0101);
        let src: Vec<u64> = src.iter().map(|&w| spread(w)).collect();
        let dst: Vec<u64> = dst.iter().map(|&w| spread(w)).collect();
        let acc = spread(acc);
        // Pointers start in the middle: 12 iterations of 8 bytes stay inside 256 bytes
        // either way.
        const MID: usize = 16;
        let (mut ns, mut nd) = (src.clone(), dst.clone());
        let (mut nrsi, mut nrdi, mut nrcx, mut nrax, mut nf) = (
            ns.as_mut_ptr().wrapping_add(MID) as u64,
            nd.as_mut_ptr().wrapping_add(MID) as u64,
            count,
            acc,
            flags,
        );
        let (s0, d0) = (nrsi, nrdi);
        macro_rules! native_str {
            ($insn:literal) => {
                // SAFETY: rsi/rdi point 128 bytes into 256-byte heap buffers owned by this
                // function and at most 12 iterations of at most 8 bytes run, so every
                // access stays inside them; `cld` restores the direction flag Rust
                // requires clear, and the flag push/pop pairs are balanced.
                unsafe {
                    asm!("push {f}", "popfq", $insn, "pushfq", "pop {f}", "cld",
                        f = inout(reg) nf, inout("rsi") nrsi, inout("rdi") nrdi,
                        inout("rcx") nrcx, inout("rax") nrax)
                }
            };
        }
        match op {
            0 => native_str!("repe cmpsb"),
            1 => native_str!("repe cmpsq"),
            2 => native_str!("repne cmpsw"),
            3 => native_str!("repne scasb"),
            4 => native_str!("repe scasd"),
            5 => native_str!("rep movsb"),
            6 => native_str!("rep movsq"),
            7 => native_str!("rep stosw"),
            8 => native_str!("lodsb"),
            _ => native_str!("cmpsd"),
        }
        let code = {
            let mut a = CodeAssembler::new(64).expect("assembler");
            string_asm(op)(&mut a).expect("assemble");
            a.ud2().expect("ud2");
            a.assemble(0x1000).expect("encode")
        };
        let (sb, db) = (0x2000u64, 0x3000u64);
        let mut mem = FlatMemory::new(4);
        mem.load(0x1000, &code);
        let bytes = |v: &[u64]| v.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
        mem.load(sb, &bytes(&src));
        mem.load(db, &bytes(&dst));
        let mut regs = Regs { rip: 0x1000, rflags: flags, ..Regs::default() };
        regs.gpr[RSI] = sb + 8 * MID as u64;
        regs.gpr[RDI] = db + 8 * MID as u64;
        regs.gpr[RCX] = count;
        regs.gpr[RAX] = acc;
        let mut cache = DecodeCache::new();
        let r = run(&mut regs, &mut mem, &mut cache, RunLimits { budget: 100, tsc: 0, tsc_aux: 0 });
        let name = STRING_OPS[op];
        prop_assert_eq!(r.exit, Exit::Exception(Fault::UD), "{} stops at the ud2", name);
        prop_assert_eq!(regs.gpr[RSI].wrapping_sub(sb), nrsi.wrapping_sub(s0).wrapping_add(8 * MID as u64), "{} rsi", name);
        prop_assert_eq!(regs.gpr[RDI].wrapping_sub(db), nrdi.wrapping_sub(d0).wrapping_add(8 * MID as u64), "{} rdi", name);
        prop_assert_eq!(regs.gpr[RCX], nrcx, "{} rcx", name);
        prop_assert_eq!(regs.gpr[RAX], nrax, "{} rax", name);
        let df = crate::cpu::flags::DF;
        prop_assert_eq!(
            (flag_names(regs.rflags & ARITH), regs.rflags & df),
            (flag_names(nf & ARITH), nf & df),
            "{} flags", name
        );
        let got = |base: u64| (0..32).map(|k| mem.peek_u64(base + 8 * k)).collect::<Vec<u64>>();
        prop_assert_eq!(got(sb), ns, "{} source buffer", name);
        prop_assert_eq!(got(db), nd, "{} destination buffer", name);
    }

    /// bt/bts/btr/btc with a memory operand and a signed register bit offset, which may
    /// address outside the operand (the offset picks the word).
    #[test]
    fn bt_memory_matches_host(
        words in proptest::array::uniform16(any::<u64>()),
        off in -512i64..512,
        flags in any::<u64>(),
        op in 0usize..12,
    ) {
        let flags = 0x202 | (flags & ARITH);
        let mut native = words;
        let mut nf = flags;
        {
            // The operand sits in the middle: offsets of ±512 bits stay inside the array.
            let p = native.as_mut_ptr().wrapping_add(8);
            let o = off as u64;
            macro_rules! mem {
                ($insn:literal) => {
                    // SAFETY: `p` points 64 bytes into a 128-byte local array and the bit
                    // offset is within ±512 bits (±64 bytes), so the access stays inside it;
                    // the flags pairs are balanced as in `native!`.
                    unsafe {
                        asm!("push {f}", "popfq", $insn, "pushfq", "pop {f}",
                            f = inout(reg) nf, in("r8") p, in("rsi") o)
                    }
                };
            }
            match op {
                0 => mem!("bt qword ptr [r8], rsi"),
                1 => mem!("bts qword ptr [r8], rsi"),
                2 => mem!("btr qword ptr [r8], rsi"),
                3 => mem!("btc qword ptr [r8], rsi"),
                4 => mem!("bt dword ptr [r8], esi"),
                5 => mem!("bts dword ptr [r8], esi"),
                6 => mem!("btr dword ptr [r8], esi"),
                7 => mem!("btc dword ptr [r8], esi"),
                8 => mem!("bt word ptr [r8], si"),
                9 => mem!("bts word ptr [r8], si"),
                10 => mem!("btr word ptr [r8], si"),
                _ => mem!("btc word ptr [r8], si"),
            }
        }
        let f: Assemble = match op {
            0 => |a| a.bt(qword_ptr(r8), rsi),
            1 => |a| a.bts(qword_ptr(r8), rsi),
            2 => |a| a.btr(qword_ptr(r8), rsi),
            3 => |a| a.btc(qword_ptr(r8), rsi),
            4 => |a| a.bt(dword_ptr(r8), esi),
            5 => |a| a.bts(dword_ptr(r8), esi),
            6 => |a| a.btr(dword_ptr(r8), esi),
            7 => |a| a.btc(dword_ptr(r8), esi),
            8 => |a| a.bt(word_ptr(r8), si),
            9 => |a| a.bts(word_ptr(r8), si),
            10 => |a| a.btr(word_ptr(r8), si),
            _ => |a| a.btc(word_ptr(r8), si),
        };
        let code = assemble(f);
        let mut mem = FlatMemory::new(4);
        let data = 0x2000u64;
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        mem.load(data, &bytes);
        mem.load(0x1000, &code);
        let mut regs = Regs { rip: 0x1000, rflags: flags, ..Regs::default() };
        regs.gpr[R8] = data + 64;
        regs.gpr[RSI] = off as u64;
        let mut cache = DecodeCache::new();
        let r = run(&mut regs, &mut mem, &mut cache, RunLimits { budget: 1, tsc: 0, tsc_aux: 0 });
        prop_assert_eq!(r.exit, Exit::Budget);
        let got: Vec<u64> = (0..16).map(|k| mem.peek_u64(data + 8 * k)).collect();
        prop_assert_eq!(&got[..], &native[..], "memory after op {} off {}", op, off);
        let mask = if is_amd() { ARITH } else { CF };
        prop_assert_eq!(flag_names(regs.rflags & mask), flag_names(nf & mask));
    }
}
