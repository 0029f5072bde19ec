//! Dispatch: one `match` on iced's [`Code`] selects the handler and its width.
//!
//! Every arm names the instruction family module (`ops::*`) and instantiates it for the
//! operand width. Anything not listed raises #UD; privileged instructions raise #GP(0), as
//! in ring 3. The families outside the hot set are matched a second time in their own
//! out-of-line function.

use iced_x86::Code as C;

use super::bus::{Bus, Fault};
use super::decode::{attr, Insn};
use super::exec::{Ctx, Flow, R};
use super::flags::{W16, W32, W64, W8};
use super::ops::{alu, bits, branch, mov, muldiv, shift, stack, string, system};

/// Executes one decoded instruction. A fault is left in `c.fault` ([`Flow::Fault`]).
#[inline(always)]
pub(crate) fn exec<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> Flow {
    handle(c, i)
}

/// The hot instructions, inlined into the run loop; the other families are dispatched to
/// out-of-line functions below (which keeps the loop small enough to optimise well and to
/// compile quickly for every `Bus`).
///
/// Every arm turns its handler's `Result` into a [`Flow`] itself (`go!`), so the arms
/// join on a one-byte value the run loop can branch on (a joined `Result` carrying a
/// `Fault` would go through memory).
#[inline(always)]
fn handle<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> Flow {
    macro_rules! go {
        ($e:expr) => {
            match $e {
                Ok(f) => f,
                Err(e) => {
                    c.fault = e;
                    Flow::Fault
                }
            }
        };
    }
    match i.code {
        C::Add_rm8_r8 => go!(alu::rm_r::<B, W8, { alu::ADD }>(c, i)),
        C::Add_r8_rm8 => go!(alu::r_rm::<B, W8, { alu::ADD }>(c, i)),
        C::Add_rm16_r16 => go!(alu::rm_r::<B, W16, { alu::ADD }>(c, i)),
        C::Add_r16_rm16 => go!(alu::r_rm::<B, W16, { alu::ADD }>(c, i)),
        C::Add_rm32_r32 => go!(alu::rm_r::<B, W32, { alu::ADD }>(c, i)),
        C::Add_r32_rm32 => go!(alu::r_rm::<B, W32, { alu::ADD }>(c, i)),
        C::Add_rm64_r64 => go!(alu::rm_r::<B, W64, { alu::ADD }>(c, i)),
        C::Add_r64_rm64 => go!(alu::r_rm::<B, W64, { alu::ADD }>(c, i)),
        C::Add_AL_imm8 => go!(alu::rm_imm::<B, W8, { alu::ADD }>(c, i)),
        C::Add_AX_imm16 => go!(alu::rm_imm::<B, W16, { alu::ADD }>(c, i)),
        C::Add_EAX_imm32 => go!(alu::rm_imm::<B, W32, { alu::ADD }>(c, i)),
        C::Add_RAX_imm32 => go!(alu::rm_imm::<B, W64, { alu::ADD }>(c, i)),
        C::Add_rm8_imm8 => go!(alu::rm_imm::<B, W8, { alu::ADD }>(c, i)),
        C::Add_rm16_imm16 => go!(alu::rm_imm::<B, W16, { alu::ADD }>(c, i)),
        C::Add_rm32_imm32 => go!(alu::rm_imm::<B, W32, { alu::ADD }>(c, i)),
        C::Add_rm64_imm32 => go!(alu::rm_imm::<B, W64, { alu::ADD }>(c, i)),
        C::Add_rm16_imm8 => go!(alu::rm_imm::<B, W16, { alu::ADD }>(c, i)),
        C::Add_rm32_imm8 => go!(alu::rm_imm::<B, W32, { alu::ADD }>(c, i)),
        C::Add_rm64_imm8 => go!(alu::rm_imm::<B, W64, { alu::ADD }>(c, i)),
        C::Or_rm8_r8 => go!(alu::rm_r::<B, W8, { alu::OR }>(c, i)),
        C::Or_r8_rm8 => go!(alu::r_rm::<B, W8, { alu::OR }>(c, i)),
        C::Or_rm16_r16 => go!(alu::rm_r::<B, W16, { alu::OR }>(c, i)),
        C::Or_r16_rm16 => go!(alu::r_rm::<B, W16, { alu::OR }>(c, i)),
        C::Or_rm32_r32 => go!(alu::rm_r::<B, W32, { alu::OR }>(c, i)),
        C::Or_r32_rm32 => go!(alu::r_rm::<B, W32, { alu::OR }>(c, i)),
        C::Or_rm64_r64 => go!(alu::rm_r::<B, W64, { alu::OR }>(c, i)),
        C::Or_r64_rm64 => go!(alu::r_rm::<B, W64, { alu::OR }>(c, i)),
        C::Or_AL_imm8 => go!(alu::rm_imm::<B, W8, { alu::OR }>(c, i)),
        C::Or_AX_imm16 => go!(alu::rm_imm::<B, W16, { alu::OR }>(c, i)),
        C::Or_EAX_imm32 => go!(alu::rm_imm::<B, W32, { alu::OR }>(c, i)),
        C::Or_RAX_imm32 => go!(alu::rm_imm::<B, W64, { alu::OR }>(c, i)),
        C::Or_rm8_imm8 => go!(alu::rm_imm::<B, W8, { alu::OR }>(c, i)),
        C::Or_rm16_imm16 => go!(alu::rm_imm::<B, W16, { alu::OR }>(c, i)),
        C::Or_rm32_imm32 => go!(alu::rm_imm::<B, W32, { alu::OR }>(c, i)),
        C::Or_rm64_imm32 => go!(alu::rm_imm::<B, W64, { alu::OR }>(c, i)),
        C::Or_rm16_imm8 => go!(alu::rm_imm::<B, W16, { alu::OR }>(c, i)),
        C::Or_rm32_imm8 => go!(alu::rm_imm::<B, W32, { alu::OR }>(c, i)),
        C::Or_rm64_imm8 => go!(alu::rm_imm::<B, W64, { alu::OR }>(c, i)),
        C::Adc_rm8_r8 => go!(alu::rm_r::<B, W8, { alu::ADC }>(c, i)),
        C::Adc_r8_rm8 => go!(alu::r_rm::<B, W8, { alu::ADC }>(c, i)),
        C::Adc_rm16_r16 => go!(alu::rm_r::<B, W16, { alu::ADC }>(c, i)),
        C::Adc_r16_rm16 => go!(alu::r_rm::<B, W16, { alu::ADC }>(c, i)),
        C::Adc_rm32_r32 => go!(alu::rm_r::<B, W32, { alu::ADC }>(c, i)),
        C::Adc_r32_rm32 => go!(alu::r_rm::<B, W32, { alu::ADC }>(c, i)),
        C::Adc_rm64_r64 => go!(alu::rm_r::<B, W64, { alu::ADC }>(c, i)),
        C::Adc_r64_rm64 => go!(alu::r_rm::<B, W64, { alu::ADC }>(c, i)),
        C::Adc_AL_imm8 => go!(alu::rm_imm::<B, W8, { alu::ADC }>(c, i)),
        C::Adc_AX_imm16 => go!(alu::rm_imm::<B, W16, { alu::ADC }>(c, i)),
        C::Adc_EAX_imm32 => go!(alu::rm_imm::<B, W32, { alu::ADC }>(c, i)),
        C::Adc_RAX_imm32 => go!(alu::rm_imm::<B, W64, { alu::ADC }>(c, i)),
        C::Adc_rm8_imm8 => go!(alu::rm_imm::<B, W8, { alu::ADC }>(c, i)),
        C::Adc_rm16_imm16 => go!(alu::rm_imm::<B, W16, { alu::ADC }>(c, i)),
        C::Adc_rm32_imm32 => go!(alu::rm_imm::<B, W32, { alu::ADC }>(c, i)),
        C::Adc_rm64_imm32 => go!(alu::rm_imm::<B, W64, { alu::ADC }>(c, i)),
        C::Adc_rm16_imm8 => go!(alu::rm_imm::<B, W16, { alu::ADC }>(c, i)),
        C::Adc_rm32_imm8 => go!(alu::rm_imm::<B, W32, { alu::ADC }>(c, i)),
        C::Adc_rm64_imm8 => go!(alu::rm_imm::<B, W64, { alu::ADC }>(c, i)),
        C::Sbb_rm8_r8 => go!(alu::rm_r::<B, W8, { alu::SBB }>(c, i)),
        C::Sbb_r8_rm8 => go!(alu::r_rm::<B, W8, { alu::SBB }>(c, i)),
        C::Sbb_rm16_r16 => go!(alu::rm_r::<B, W16, { alu::SBB }>(c, i)),
        C::Sbb_r16_rm16 => go!(alu::r_rm::<B, W16, { alu::SBB }>(c, i)),
        C::Sbb_rm32_r32 => go!(alu::rm_r::<B, W32, { alu::SBB }>(c, i)),
        C::Sbb_r32_rm32 => go!(alu::r_rm::<B, W32, { alu::SBB }>(c, i)),
        C::Sbb_rm64_r64 => go!(alu::rm_r::<B, W64, { alu::SBB }>(c, i)),
        C::Sbb_r64_rm64 => go!(alu::r_rm::<B, W64, { alu::SBB }>(c, i)),
        C::Sbb_AL_imm8 => go!(alu::rm_imm::<B, W8, { alu::SBB }>(c, i)),
        C::Sbb_AX_imm16 => go!(alu::rm_imm::<B, W16, { alu::SBB }>(c, i)),
        C::Sbb_EAX_imm32 => go!(alu::rm_imm::<B, W32, { alu::SBB }>(c, i)),
        C::Sbb_RAX_imm32 => go!(alu::rm_imm::<B, W64, { alu::SBB }>(c, i)),
        C::Sbb_rm8_imm8 => go!(alu::rm_imm::<B, W8, { alu::SBB }>(c, i)),
        C::Sbb_rm16_imm16 => go!(alu::rm_imm::<B, W16, { alu::SBB }>(c, i)),
        C::Sbb_rm32_imm32 => go!(alu::rm_imm::<B, W32, { alu::SBB }>(c, i)),
        C::Sbb_rm64_imm32 => go!(alu::rm_imm::<B, W64, { alu::SBB }>(c, i)),
        C::Sbb_rm16_imm8 => go!(alu::rm_imm::<B, W16, { alu::SBB }>(c, i)),
        C::Sbb_rm32_imm8 => go!(alu::rm_imm::<B, W32, { alu::SBB }>(c, i)),
        C::Sbb_rm64_imm8 => go!(alu::rm_imm::<B, W64, { alu::SBB }>(c, i)),
        C::And_rm8_r8 => go!(alu::rm_r::<B, W8, { alu::AND }>(c, i)),
        C::And_r8_rm8 => go!(alu::r_rm::<B, W8, { alu::AND }>(c, i)),
        C::And_rm16_r16 => go!(alu::rm_r::<B, W16, { alu::AND }>(c, i)),
        C::And_r16_rm16 => go!(alu::r_rm::<B, W16, { alu::AND }>(c, i)),
        C::And_rm32_r32 => go!(alu::rm_r::<B, W32, { alu::AND }>(c, i)),
        C::And_r32_rm32 => go!(alu::r_rm::<B, W32, { alu::AND }>(c, i)),
        C::And_rm64_r64 => go!(alu::rm_r::<B, W64, { alu::AND }>(c, i)),
        C::And_r64_rm64 => go!(alu::r_rm::<B, W64, { alu::AND }>(c, i)),
        C::And_AL_imm8 => go!(alu::rm_imm::<B, W8, { alu::AND }>(c, i)),
        C::And_AX_imm16 => go!(alu::rm_imm::<B, W16, { alu::AND }>(c, i)),
        C::And_EAX_imm32 => go!(alu::rm_imm::<B, W32, { alu::AND }>(c, i)),
        C::And_RAX_imm32 => go!(alu::rm_imm::<B, W64, { alu::AND }>(c, i)),
        C::And_rm8_imm8 => go!(alu::rm_imm::<B, W8, { alu::AND }>(c, i)),
        C::And_rm16_imm16 => go!(alu::rm_imm::<B, W16, { alu::AND }>(c, i)),
        C::And_rm32_imm32 => go!(alu::rm_imm::<B, W32, { alu::AND }>(c, i)),
        C::And_rm64_imm32 => go!(alu::rm_imm::<B, W64, { alu::AND }>(c, i)),
        C::And_rm16_imm8 => go!(alu::rm_imm::<B, W16, { alu::AND }>(c, i)),
        C::And_rm32_imm8 => go!(alu::rm_imm::<B, W32, { alu::AND }>(c, i)),
        C::And_rm64_imm8 => go!(alu::rm_imm::<B, W64, { alu::AND }>(c, i)),
        C::Sub_rm8_r8 => go!(alu::rm_r::<B, W8, { alu::SUB }>(c, i)),
        C::Sub_r8_rm8 => go!(alu::r_rm::<B, W8, { alu::SUB }>(c, i)),
        C::Sub_rm16_r16 => go!(alu::rm_r::<B, W16, { alu::SUB }>(c, i)),
        C::Sub_r16_rm16 => go!(alu::r_rm::<B, W16, { alu::SUB }>(c, i)),
        C::Sub_rm32_r32 => go!(alu::rm_r::<B, W32, { alu::SUB }>(c, i)),
        C::Sub_r32_rm32 => go!(alu::r_rm::<B, W32, { alu::SUB }>(c, i)),
        C::Sub_rm64_r64 => go!(alu::rm_r::<B, W64, { alu::SUB }>(c, i)),
        C::Sub_r64_rm64 => go!(alu::r_rm::<B, W64, { alu::SUB }>(c, i)),
        C::Sub_AL_imm8 => go!(alu::rm_imm::<B, W8, { alu::SUB }>(c, i)),
        C::Sub_AX_imm16 => go!(alu::rm_imm::<B, W16, { alu::SUB }>(c, i)),
        C::Sub_EAX_imm32 => go!(alu::rm_imm::<B, W32, { alu::SUB }>(c, i)),
        C::Sub_RAX_imm32 => go!(alu::rm_imm::<B, W64, { alu::SUB }>(c, i)),
        C::Sub_rm8_imm8 => go!(alu::rm_imm::<B, W8, { alu::SUB }>(c, i)),
        C::Sub_rm16_imm16 => go!(alu::rm_imm::<B, W16, { alu::SUB }>(c, i)),
        C::Sub_rm32_imm32 => go!(alu::rm_imm::<B, W32, { alu::SUB }>(c, i)),
        C::Sub_rm64_imm32 => go!(alu::rm_imm::<B, W64, { alu::SUB }>(c, i)),
        C::Sub_rm16_imm8 => go!(alu::rm_imm::<B, W16, { alu::SUB }>(c, i)),
        C::Sub_rm32_imm8 => go!(alu::rm_imm::<B, W32, { alu::SUB }>(c, i)),
        C::Sub_rm64_imm8 => go!(alu::rm_imm::<B, W64, { alu::SUB }>(c, i)),
        C::Xor_rm8_r8 => go!(alu::rm_r::<B, W8, { alu::XOR }>(c, i)),
        C::Xor_r8_rm8 => go!(alu::r_rm::<B, W8, { alu::XOR }>(c, i)),
        C::Xor_rm16_r16 => go!(alu::rm_r::<B, W16, { alu::XOR }>(c, i)),
        C::Xor_r16_rm16 => go!(alu::r_rm::<B, W16, { alu::XOR }>(c, i)),
        C::Xor_rm32_r32 => go!(alu::rm_r::<B, W32, { alu::XOR }>(c, i)),
        C::Xor_r32_rm32 => go!(alu::r_rm::<B, W32, { alu::XOR }>(c, i)),
        C::Xor_rm64_r64 => go!(alu::rm_r::<B, W64, { alu::XOR }>(c, i)),
        C::Xor_r64_rm64 => go!(alu::r_rm::<B, W64, { alu::XOR }>(c, i)),
        C::Xor_AL_imm8 => go!(alu::rm_imm::<B, W8, { alu::XOR }>(c, i)),
        C::Xor_AX_imm16 => go!(alu::rm_imm::<B, W16, { alu::XOR }>(c, i)),
        C::Xor_EAX_imm32 => go!(alu::rm_imm::<B, W32, { alu::XOR }>(c, i)),
        C::Xor_RAX_imm32 => go!(alu::rm_imm::<B, W64, { alu::XOR }>(c, i)),
        C::Xor_rm8_imm8 => go!(alu::rm_imm::<B, W8, { alu::XOR }>(c, i)),
        C::Xor_rm16_imm16 => go!(alu::rm_imm::<B, W16, { alu::XOR }>(c, i)),
        C::Xor_rm32_imm32 => go!(alu::rm_imm::<B, W32, { alu::XOR }>(c, i)),
        C::Xor_rm64_imm32 => go!(alu::rm_imm::<B, W64, { alu::XOR }>(c, i)),
        C::Xor_rm16_imm8 => go!(alu::rm_imm::<B, W16, { alu::XOR }>(c, i)),
        C::Xor_rm32_imm8 => go!(alu::rm_imm::<B, W32, { alu::XOR }>(c, i)),
        C::Xor_rm64_imm8 => go!(alu::rm_imm::<B, W64, { alu::XOR }>(c, i)),
        C::Cmp_rm8_r8 => go!(alu::rm_r::<B, W8, { alu::CMP }>(c, i)),
        C::Cmp_r8_rm8 => go!(alu::r_rm::<B, W8, { alu::CMP }>(c, i)),
        C::Cmp_rm16_r16 => go!(alu::rm_r::<B, W16, { alu::CMP }>(c, i)),
        C::Cmp_r16_rm16 => go!(alu::r_rm::<B, W16, { alu::CMP }>(c, i)),
        C::Cmp_rm32_r32 => go!(alu::rm_r::<B, W32, { alu::CMP }>(c, i)),
        C::Cmp_r32_rm32 => go!(alu::r_rm::<B, W32, { alu::CMP }>(c, i)),
        C::Cmp_rm64_r64 => go!(alu::rm_r::<B, W64, { alu::CMP }>(c, i)),
        C::Cmp_r64_rm64 => go!(alu::r_rm::<B, W64, { alu::CMP }>(c, i)),
        C::Cmp_AL_imm8 => go!(alu::rm_imm::<B, W8, { alu::CMP }>(c, i)),
        C::Cmp_AX_imm16 => go!(alu::rm_imm::<B, W16, { alu::CMP }>(c, i)),
        C::Cmp_EAX_imm32 => go!(alu::rm_imm::<B, W32, { alu::CMP }>(c, i)),
        C::Cmp_RAX_imm32 => go!(alu::rm_imm::<B, W64, { alu::CMP }>(c, i)),
        C::Cmp_rm8_imm8 => go!(alu::rm_imm::<B, W8, { alu::CMP }>(c, i)),
        C::Cmp_rm16_imm16 => go!(alu::rm_imm::<B, W16, { alu::CMP }>(c, i)),
        C::Cmp_rm32_imm32 => go!(alu::rm_imm::<B, W32, { alu::CMP }>(c, i)),
        C::Cmp_rm64_imm32 => go!(alu::rm_imm::<B, W64, { alu::CMP }>(c, i)),
        C::Cmp_rm16_imm8 => go!(alu::rm_imm::<B, W16, { alu::CMP }>(c, i)),
        C::Cmp_rm32_imm8 => go!(alu::rm_imm::<B, W32, { alu::CMP }>(c, i)),
        C::Cmp_rm64_imm8 => go!(alu::rm_imm::<B, W64, { alu::CMP }>(c, i)),
        C::Test_rm8_r8 => go!(alu::rm_r::<B, W8, { alu::TEST }>(c, i)),
        C::Test_rm16_r16 => go!(alu::rm_r::<B, W16, { alu::TEST }>(c, i)),
        C::Test_rm32_r32 => go!(alu::rm_r::<B, W32, { alu::TEST }>(c, i)),
        C::Test_rm64_r64 => go!(alu::rm_r::<B, W64, { alu::TEST }>(c, i)),
        C::Test_AL_imm8 => go!(alu::rm_imm::<B, W8, { alu::TEST }>(c, i)),
        C::Test_AX_imm16 => go!(alu::rm_imm::<B, W16, { alu::TEST }>(c, i)),
        C::Test_EAX_imm32 => go!(alu::rm_imm::<B, W32, { alu::TEST }>(c, i)),
        C::Test_RAX_imm32 => go!(alu::rm_imm::<B, W64, { alu::TEST }>(c, i)),
        C::Test_rm8_imm8 => go!(alu::rm_imm::<B, W8, { alu::TEST }>(c, i)),
        C::Test_rm8_imm8_F6r1 => go!(alu::rm_imm::<B, W8, { alu::TEST }>(c, i)),
        C::Test_rm16_imm16 => go!(alu::rm_imm::<B, W16, { alu::TEST }>(c, i)),
        C::Test_rm32_imm32 => go!(alu::rm_imm::<B, W32, { alu::TEST }>(c, i)),
        C::Test_rm64_imm32 => go!(alu::rm_imm::<B, W64, { alu::TEST }>(c, i)),
        C::Test_rm16_imm16_F7r1 => go!(alu::rm_imm::<B, W16, { alu::TEST }>(c, i)),
        C::Test_rm32_imm32_F7r1 => go!(alu::rm_imm::<B, W32, { alu::TEST }>(c, i)),
        C::Test_rm64_imm32_F7r1 => go!(alu::rm_imm::<B, W64, { alu::TEST }>(c, i)),
        C::Not_rm8 => go!(alu::unary::<B, W8, { alu::NOT }>(c, i)),
        C::Not_rm16 => go!(alu::unary::<B, W16, { alu::NOT }>(c, i)),
        C::Not_rm32 => go!(alu::unary::<B, W32, { alu::NOT }>(c, i)),
        C::Not_rm64 => go!(alu::unary::<B, W64, { alu::NOT }>(c, i)),
        C::Neg_rm8 => go!(alu::unary::<B, W8, { alu::NEG }>(c, i)),
        C::Neg_rm16 => go!(alu::unary::<B, W16, { alu::NEG }>(c, i)),
        C::Neg_rm32 => go!(alu::unary::<B, W32, { alu::NEG }>(c, i)),
        C::Neg_rm64 => go!(alu::unary::<B, W64, { alu::NEG }>(c, i)),
        C::Inc_rm8 => go!(alu::unary::<B, W8, { alu::INC }>(c, i)),
        C::Inc_rm16 => go!(alu::unary::<B, W16, { alu::INC }>(c, i)),
        C::Inc_rm32 => go!(alu::unary::<B, W32, { alu::INC }>(c, i)),
        C::Inc_rm64 => go!(alu::unary::<B, W64, { alu::INC }>(c, i)),
        C::Dec_rm8 => go!(alu::unary::<B, W8, { alu::DEC }>(c, i)),
        C::Dec_rm16 => go!(alu::unary::<B, W16, { alu::DEC }>(c, i)),
        C::Dec_rm32 => go!(alu::unary::<B, W32, { alu::DEC }>(c, i)),
        C::Dec_rm64 => go!(alu::unary::<B, W64, { alu::DEC }>(c, i)),
        C::Shl_rm32_imm8 => go!(shift::shift::<B, W32, { shift::SHL }, { shift::BY_IMM }>(
            c, i
        )),
        C::Shl_rm32_1 => go!(shift::shift::<B, W32, { shift::SHL }, { shift::BY_1 }>(
            c, i
        )),
        C::Shl_rm64_imm8 => go!(shift::shift::<B, W64, { shift::SHL }, { shift::BY_IMM }>(
            c, i
        )),
        C::Shl_rm64_1 => go!(shift::shift::<B, W64, { shift::SHL }, { shift::BY_1 }>(
            c, i
        )),
        C::Sal_rm32_imm8 => go!(shift::shift::<B, W32, { shift::SHL }, { shift::BY_IMM }>(
            c, i
        )),
        C::Sal_rm32_1 => go!(shift::shift::<B, W32, { shift::SHL }, { shift::BY_1 }>(
            c, i
        )),
        C::Sal_rm64_imm8 => go!(shift::shift::<B, W64, { shift::SHL }, { shift::BY_IMM }>(
            c, i
        )),
        C::Sal_rm64_1 => go!(shift::shift::<B, W64, { shift::SHL }, { shift::BY_1 }>(
            c, i
        )),
        C::Shr_rm32_imm8 => go!(shift::shift::<B, W32, { shift::SHR }, { shift::BY_IMM }>(
            c, i
        )),
        C::Shr_rm32_1 => go!(shift::shift::<B, W32, { shift::SHR }, { shift::BY_1 }>(
            c, i
        )),
        C::Shr_rm64_imm8 => go!(shift::shift::<B, W64, { shift::SHR }, { shift::BY_IMM }>(
            c, i
        )),
        C::Shr_rm64_1 => go!(shift::shift::<B, W64, { shift::SHR }, { shift::BY_1 }>(
            c, i
        )),
        C::Sar_rm32_imm8 => go!(shift::shift::<B, W32, { shift::SAR }, { shift::BY_IMM }>(
            c, i
        )),
        C::Sar_rm32_1 => go!(shift::shift::<B, W32, { shift::SAR }, { shift::BY_1 }>(
            c, i
        )),
        C::Sar_rm64_imm8 => go!(shift::shift::<B, W64, { shift::SAR }, { shift::BY_IMM }>(
            c, i
        )),
        C::Sar_rm64_1 => go!(shift::shift::<B, W64, { shift::SAR }, { shift::BY_1 }>(
            c, i
        )),
        C::Mov_rm8_r8 => go!(mov::mov::<B, W8, { mov::SRC_REG }>(c, i)),
        C::Mov_r8_rm8 => go!(mov::mov::<B, W8, { mov::SRC_RM }>(c, i)),
        C::Mov_rm16_r16 => go!(mov::mov::<B, W16, { mov::SRC_REG }>(c, i)),
        C::Mov_r16_rm16 => go!(mov::mov::<B, W16, { mov::SRC_RM }>(c, i)),
        C::Mov_rm32_r32 => go!(mov::mov::<B, W32, { mov::SRC_REG }>(c, i)),
        C::Mov_r32_rm32 => go!(mov::mov::<B, W32, { mov::SRC_RM }>(c, i)),
        C::Mov_rm64_r64 => go!(mov::mov::<B, W64, { mov::SRC_REG }>(c, i)),
        C::Mov_r64_rm64 => go!(mov::mov::<B, W64, { mov::SRC_RM }>(c, i)),
        C::Mov_r8_imm8 => go!(mov::mov::<B, W8, { mov::SRC_IMM }>(c, i)),
        C::Mov_r16_imm16 => go!(mov::mov::<B, W16, { mov::SRC_IMM }>(c, i)),
        C::Mov_r32_imm32 => go!(mov::mov::<B, W32, { mov::SRC_IMM }>(c, i)),
        C::Mov_r64_imm64 => go!(mov::mov::<B, W64, { mov::SRC_IMM }>(c, i)),
        C::Mov_rm8_imm8 => go!(mov::mov::<B, W8, { mov::SRC_IMM }>(c, i)),
        C::Mov_rm16_imm16 => go!(mov::mov::<B, W16, { mov::SRC_IMM }>(c, i)),
        C::Mov_rm32_imm32 => go!(mov::mov::<B, W32, { mov::SRC_IMM }>(c, i)),
        C::Mov_rm64_imm32 => go!(mov::mov::<B, W64, { mov::SRC_IMM }>(c, i)),
        C::Mov_AL_moffs8 => go!(mov::mov::<B, W8, { mov::SRC_RM }>(c, i)),
        C::Mov_AX_moffs16 => go!(mov::mov::<B, W16, { mov::SRC_RM }>(c, i)),
        C::Mov_EAX_moffs32 => go!(mov::mov::<B, W32, { mov::SRC_RM }>(c, i)),
        C::Mov_RAX_moffs64 => go!(mov::mov::<B, W64, { mov::SRC_RM }>(c, i)),
        C::Mov_moffs8_AL => go!(mov::mov::<B, W8, { mov::SRC_REG }>(c, i)),
        C::Mov_moffs16_AX => go!(mov::mov::<B, W16, { mov::SRC_REG }>(c, i)),
        C::Mov_moffs32_EAX => go!(mov::mov::<B, W32, { mov::SRC_REG }>(c, i)),
        C::Mov_moffs64_RAX => go!(mov::mov::<B, W64, { mov::SRC_REG }>(c, i)),
        C::Movzx_r16_rm8 => go!(mov::movx::<B, W16, W8, false>(c, i)),
        C::Movzx_r16_rm16 => go!(mov::movx::<B, W16, W16, false>(c, i)),
        C::Movzx_r32_rm8 => go!(mov::movx::<B, W32, W8, false>(c, i)),
        C::Movzx_r32_rm16 => go!(mov::movx::<B, W32, W16, false>(c, i)),
        C::Movzx_r64_rm8 => go!(mov::movx::<B, W64, W8, false>(c, i)),
        C::Movzx_r64_rm16 => go!(mov::movx::<B, W64, W16, false>(c, i)),
        C::Movsx_r16_rm8 => go!(mov::movx::<B, W16, W8, true>(c, i)),
        C::Movsx_r16_rm16 => go!(mov::movx::<B, W16, W16, true>(c, i)),
        C::Movsx_r32_rm8 => go!(mov::movx::<B, W32, W8, true>(c, i)),
        C::Movsx_r32_rm16 => go!(mov::movx::<B, W32, W16, true>(c, i)),
        C::Movsx_r64_rm8 => go!(mov::movx::<B, W64, W8, true>(c, i)),
        C::Movsx_r64_rm16 => go!(mov::movx::<B, W64, W16, true>(c, i)),
        C::Movsxd_r64_rm32 => go!(mov::movx::<B, W64, W32, true>(c, i)),
        C::Movsxd_r32_rm32 => go!(mov::movx::<B, W32, W32, false>(c, i)),
        C::Movsxd_r16_rm16 => go!(mov::movx::<B, W16, W16, false>(c, i)),
        C::Lea_r16_m => go!(mov::lea::<B, W16>(c, i)),
        C::Lea_r32_m => go!(mov::lea::<B, W32>(c, i)),
        C::Lea_r64_m => go!(mov::lea::<B, W64>(c, i)),
        C::Seto_rm8 => go!(mov::setcc(c, i, 0)),
        C::Cmovo_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 0)),
        C::Cmovo_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 0)),
        C::Cmovo_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 0)),
        C::Jo_rel8_64 => go!(branch::jcc(c, i, 0)),
        C::Jo_rel32_64 => go!(branch::jcc(c, i, 0)),
        C::Setno_rm8 => go!(mov::setcc(c, i, 1)),
        C::Cmovno_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 1)),
        C::Cmovno_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 1)),
        C::Cmovno_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 1)),
        C::Jno_rel8_64 => go!(branch::jcc(c, i, 1)),
        C::Jno_rel32_64 => go!(branch::jcc(c, i, 1)),
        C::Setb_rm8 => go!(mov::setcc(c, i, 2)),
        C::Cmovb_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 2)),
        C::Cmovb_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 2)),
        C::Cmovb_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 2)),
        C::Jb_rel8_64 => go!(branch::jcc(c, i, 2)),
        C::Jb_rel32_64 => go!(branch::jcc(c, i, 2)),
        C::Setae_rm8 => go!(mov::setcc(c, i, 3)),
        C::Cmovae_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 3)),
        C::Cmovae_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 3)),
        C::Cmovae_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 3)),
        C::Jae_rel8_64 => go!(branch::jcc(c, i, 3)),
        C::Jae_rel32_64 => go!(branch::jcc(c, i, 3)),
        C::Sete_rm8 => go!(mov::setcc(c, i, 4)),
        C::Cmove_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 4)),
        C::Cmove_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 4)),
        C::Cmove_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 4)),
        C::Je_rel8_64 => go!(branch::jcc(c, i, 4)),
        C::Je_rel32_64 => go!(branch::jcc(c, i, 4)),
        C::Setne_rm8 => go!(mov::setcc(c, i, 5)),
        C::Cmovne_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 5)),
        C::Cmovne_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 5)),
        C::Cmovne_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 5)),
        C::Jne_rel8_64 => go!(branch::jcc(c, i, 5)),
        C::Jne_rel32_64 => go!(branch::jcc(c, i, 5)),
        C::Setbe_rm8 => go!(mov::setcc(c, i, 6)),
        C::Cmovbe_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 6)),
        C::Cmovbe_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 6)),
        C::Cmovbe_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 6)),
        C::Jbe_rel8_64 => go!(branch::jcc(c, i, 6)),
        C::Jbe_rel32_64 => go!(branch::jcc(c, i, 6)),
        C::Seta_rm8 => go!(mov::setcc(c, i, 7)),
        C::Cmova_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 7)),
        C::Cmova_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 7)),
        C::Cmova_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 7)),
        C::Ja_rel8_64 => go!(branch::jcc(c, i, 7)),
        C::Ja_rel32_64 => go!(branch::jcc(c, i, 7)),
        C::Sets_rm8 => go!(mov::setcc(c, i, 8)),
        C::Cmovs_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 8)),
        C::Cmovs_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 8)),
        C::Cmovs_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 8)),
        C::Js_rel8_64 => go!(branch::jcc(c, i, 8)),
        C::Js_rel32_64 => go!(branch::jcc(c, i, 8)),
        C::Setns_rm8 => go!(mov::setcc(c, i, 9)),
        C::Cmovns_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 9)),
        C::Cmovns_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 9)),
        C::Cmovns_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 9)),
        C::Jns_rel8_64 => go!(branch::jcc(c, i, 9)),
        C::Jns_rel32_64 => go!(branch::jcc(c, i, 9)),
        C::Setp_rm8 => go!(mov::setcc(c, i, 10)),
        C::Cmovp_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 10)),
        C::Cmovp_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 10)),
        C::Cmovp_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 10)),
        C::Jp_rel8_64 => go!(branch::jcc(c, i, 10)),
        C::Jp_rel32_64 => go!(branch::jcc(c, i, 10)),
        C::Setnp_rm8 => go!(mov::setcc(c, i, 11)),
        C::Cmovnp_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 11)),
        C::Cmovnp_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 11)),
        C::Cmovnp_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 11)),
        C::Jnp_rel8_64 => go!(branch::jcc(c, i, 11)),
        C::Jnp_rel32_64 => go!(branch::jcc(c, i, 11)),
        C::Setl_rm8 => go!(mov::setcc(c, i, 12)),
        C::Cmovl_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 12)),
        C::Cmovl_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 12)),
        C::Cmovl_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 12)),
        C::Jl_rel8_64 => go!(branch::jcc(c, i, 12)),
        C::Jl_rel32_64 => go!(branch::jcc(c, i, 12)),
        C::Setge_rm8 => go!(mov::setcc(c, i, 13)),
        C::Cmovge_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 13)),
        C::Cmovge_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 13)),
        C::Cmovge_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 13)),
        C::Jge_rel8_64 => go!(branch::jcc(c, i, 13)),
        C::Jge_rel32_64 => go!(branch::jcc(c, i, 13)),
        C::Setle_rm8 => go!(mov::setcc(c, i, 14)),
        C::Cmovle_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 14)),
        C::Cmovle_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 14)),
        C::Cmovle_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 14)),
        C::Jle_rel8_64 => go!(branch::jcc(c, i, 14)),
        C::Jle_rel32_64 => go!(branch::jcc(c, i, 14)),
        C::Setg_rm8 => go!(mov::setcc(c, i, 15)),
        C::Cmovg_r16_rm16 => go!(mov::cmovcc::<B, W16>(c, i, 15)),
        C::Cmovg_r32_rm32 => go!(mov::cmovcc::<B, W32>(c, i, 15)),
        C::Cmovg_r64_rm64 => go!(mov::cmovcc::<B, W64>(c, i, 15)),
        C::Jg_rel8_64 => go!(branch::jcc(c, i, 15)),
        C::Jg_rel32_64 => go!(branch::jcc(c, i, 15)),
        C::Push_r64 => go!(stack::push_rm::<B, W64>(c, i)),
        C::Push_r16 => go!(stack::push_rm::<B, W16>(c, i)),
        C::Push_rm64 => go!(stack::push_rm::<B, W64>(c, i)),
        C::Push_rm16 => go!(stack::push_rm::<B, W16>(c, i)),
        C::Pushq_imm8 => go!(stack::push_imm::<B, W64>(c, i)),
        C::Pushq_imm32 => go!(stack::push_imm::<B, W64>(c, i)),
        C::Pushw_imm8 => go!(stack::push_imm::<B, W16>(c, i)),
        C::Push_imm16 => go!(stack::push_imm::<B, W16>(c, i)),
        C::Pop_r64 => go!(stack::pop_rm::<B, W64>(c, i)),
        C::Pop_r16 => go!(stack::pop_rm::<B, W16>(c, i)),
        C::Pop_rm64 => go!(stack::pop_rm::<B, W64>(c, i)),
        C::Pop_rm16 => go!(stack::pop_rm::<B, W16>(c, i)),
        C::Call_rel32_64 => go!(stack::call_rel(c, i)),
        C::Call_rm64 => go!(stack::call_rm(c, i)),
        C::Retnq => go!(stack::ret::<B, false>(c, i)),
        C::Retnq_imm16 => go!(stack::ret::<B, true>(c, i)),
        C::Leaveq => go!(stack::leave(c)),
        C::Jmp_rel8_64 => go!(branch::jmp_rel(c, i)),
        C::Jmp_rel32_64 => go!(branch::jmp_rel(c, i)),
        C::Jmp_rm64 => go!(branch::jmp_rm(c, i)),
        C::Rol_rm8_imm8
        | C::Rol_rm8_1
        | C::Rol_rm8_CL
        | C::Rol_rm16_imm8
        | C::Rol_rm16_1
        | C::Rol_rm16_CL
        | C::Rol_rm32_imm8
        | C::Rol_rm32_1
        | C::Rol_rm32_CL
        | C::Rol_rm64_imm8
        | C::Rol_rm64_1
        | C::Rol_rm64_CL
        | C::Ror_rm8_imm8
        | C::Ror_rm8_1
        | C::Ror_rm8_CL
        | C::Ror_rm16_imm8
        | C::Ror_rm16_1
        | C::Ror_rm16_CL
        | C::Ror_rm32_imm8
        | C::Ror_rm32_1
        | C::Ror_rm32_CL
        | C::Ror_rm64_imm8
        | C::Ror_rm64_1
        | C::Ror_rm64_CL
        | C::Rcl_rm8_imm8
        | C::Rcl_rm8_1
        | C::Rcl_rm8_CL
        | C::Rcl_rm16_imm8
        | C::Rcl_rm16_1
        | C::Rcl_rm16_CL
        | C::Rcl_rm32_imm8
        | C::Rcl_rm32_1
        | C::Rcl_rm32_CL
        | C::Rcl_rm64_imm8
        | C::Rcl_rm64_1
        | C::Rcl_rm64_CL
        | C::Rcr_rm8_imm8
        | C::Rcr_rm8_1
        | C::Rcr_rm8_CL
        | C::Rcr_rm16_imm8
        | C::Rcr_rm16_1
        | C::Rcr_rm16_CL
        | C::Rcr_rm32_imm8
        | C::Rcr_rm32_1
        | C::Rcr_rm32_CL
        | C::Rcr_rm64_imm8
        | C::Rcr_rm64_1
        | C::Rcr_rm64_CL
        | C::Shl_rm8_imm8
        | C::Shl_rm8_1
        | C::Shl_rm8_CL
        | C::Shl_rm16_imm8
        | C::Shl_rm16_1
        | C::Shl_rm16_CL
        | C::Shl_rm32_CL
        | C::Shl_rm64_CL
        | C::Sal_rm8_imm8
        | C::Sal_rm8_1
        | C::Sal_rm8_CL
        | C::Sal_rm16_imm8
        | C::Sal_rm16_1
        | C::Sal_rm16_CL
        | C::Sal_rm32_CL
        | C::Sal_rm64_CL
        | C::Shr_rm8_imm8
        | C::Shr_rm8_1
        | C::Shr_rm8_CL
        | C::Shr_rm16_imm8
        | C::Shr_rm16_1
        | C::Shr_rm16_CL
        | C::Shr_rm32_CL
        | C::Shr_rm64_CL
        | C::Sar_rm8_imm8
        | C::Sar_rm8_1
        | C::Sar_rm8_CL
        | C::Sar_rm16_imm8
        | C::Sar_rm16_1
        | C::Sar_rm16_CL
        | C::Sar_rm32_CL
        | C::Sar_rm64_CL
        | C::Shld_rm16_r16_imm8
        | C::Shld_rm16_r16_CL
        | C::Shld_rm32_r32_imm8
        | C::Shld_rm32_r32_CL
        | C::Shld_rm64_r64_imm8
        | C::Shld_rm64_r64_CL
        | C::Shrd_rm16_r16_imm8
        | C::Shrd_rm16_r16_CL
        | C::Shrd_rm32_r32_imm8
        | C::Shrd_rm32_r32_CL
        | C::Shrd_rm64_r64_imm8
        | C::Shrd_rm64_r64_CL => go!(shift_family(c, i)),
        C::Mul_rm8
        | C::Imul_rm8
        | C::Div_rm8
        | C::Idiv_rm8
        | C::Mul_rm16
        | C::Imul_rm16
        | C::Div_rm16
        | C::Idiv_rm16
        | C::Mul_rm32
        | C::Imul_rm32
        | C::Div_rm32
        | C::Idiv_rm32
        | C::Mul_rm64
        | C::Imul_rm64
        | C::Div_rm64
        | C::Idiv_rm64
        | C::Imul_r16_rm16
        | C::Imul_r16_rm16_imm8
        | C::Imul_r32_rm32
        | C::Imul_r32_rm32_imm8
        | C::Imul_r64_rm64
        | C::Imul_r64_rm64_imm8
        | C::Imul_r16_rm16_imm16
        | C::Imul_r32_rm32_imm32
        | C::Imul_r64_rm64_imm32 => go!(muldiv_family(c, i)),
        C::Bt_rm16_r16
        | C::Bt_rm16_imm8
        | C::Bt_rm32_r32
        | C::Bt_rm32_imm8
        | C::Bt_rm64_r64
        | C::Bt_rm64_imm8
        | C::Bts_rm16_r16
        | C::Bts_rm16_imm8
        | C::Bts_rm32_r32
        | C::Bts_rm32_imm8
        | C::Bts_rm64_r64
        | C::Bts_rm64_imm8
        | C::Btr_rm16_r16
        | C::Btr_rm16_imm8
        | C::Btr_rm32_r32
        | C::Btr_rm32_imm8
        | C::Btr_rm64_r64
        | C::Btr_rm64_imm8
        | C::Btc_rm16_r16
        | C::Btc_rm16_imm8
        | C::Btc_rm32_r32
        | C::Btc_rm32_imm8
        | C::Btc_rm64_r64
        | C::Btc_rm64_imm8
        | C::Bsf_r16_rm16
        | C::Bsf_r32_rm32
        | C::Bsf_r64_rm64
        | C::Bsr_r16_rm16
        | C::Bsr_r32_rm32
        | C::Bsr_r64_rm64
        | C::Tzcnt_r16_rm16
        | C::Tzcnt_r32_rm32
        | C::Tzcnt_r64_rm64
        | C::Lzcnt_r16_rm16
        | C::Lzcnt_r32_rm32
        | C::Lzcnt_r64_rm64
        | C::Popcnt_r16_rm16
        | C::Popcnt_r32_rm32
        | C::Popcnt_r64_rm64
        | C::Bswap_r32
        | C::Bswap_r64
        | C::VEX_Andn_r32_r32_rm32
        | C::VEX_Bextr_r32_rm32_r32
        | C::VEX_Blsi_r32_rm32
        | C::VEX_Blsmsk_r32_rm32
        | C::VEX_Blsr_r32_rm32
        | C::VEX_Andn_r64_r64_rm64
        | C::VEX_Bextr_r64_rm64_r64
        | C::VEX_Blsi_r64_rm64
        | C::VEX_Blsmsk_r64_rm64
        | C::VEX_Blsr_r64_rm64 => go!(bits_family(c, i)),
        C::Xchg_rm8_r8
        | C::Cmpxchg_rm8_r8
        | C::Xadd_rm8_r8
        | C::Xchg_rm16_r16
        | C::Cmpxchg_rm16_r16
        | C::Xadd_rm16_r16
        | C::Xchg_rm32_r32
        | C::Cmpxchg_rm32_r32
        | C::Xadd_rm32_r32
        | C::Xchg_rm64_r64
        | C::Cmpxchg_rm64_r64
        | C::Xadd_rm64_r64
        | C::Xchg_r16_AX
        | C::Xchg_r32_EAX
        | C::Xchg_r64_RAX
        | C::Cmpxchg8b_m64
        | C::Cmpxchg16b_m128
        | C::Movbe_r16_m16
        | C::Movbe_m16_r16
        | C::Movbe_r32_m32
        | C::Movbe_m32_r32
        | C::Movbe_r64_m64
        | C::Movbe_m64_r64
        | C::Xlat_m8
        | C::Cbw
        | C::Cwde
        | C::Cdqe
        | C::Cwd
        | C::Cdq
        | C::Cqo
        | C::Lahf
        | C::Sahf
        | C::Mov_rm16_Sreg
        | C::Mov_r32m16_Sreg
        | C::Mov_r64m16_Sreg
        | C::Enterq_imm16_imm8
        | C::Pushfq
        | C::Pushfw
        | C::Popfq
        | C::Popfw
        | C::Loop_rel8_64_RCX
        | C::Loop_rel8_64_ECX
        | C::Loope_rel8_64_RCX
        | C::Loope_rel8_64_ECX
        | C::Loopne_rel8_64_RCX
        | C::Loopne_rel8_64_ECX
        | C::Jrcxz_rel8_64
        | C::Jecxz_rel8_64 => go!(misc_family(c, i)),
        C::Movsb_m8_m8
        | C::Movsw_m16_m16
        | C::Movsd_m32_m32
        | C::Movsq_m64_m64
        | C::Stosb_m8_AL
        | C::Stosw_m16_AX
        | C::Stosd_m32_EAX
        | C::Stosq_m64_RAX
        | C::Lodsb_AL_m8
        | C::Lodsw_AX_m16
        | C::Lodsd_EAX_m32
        | C::Lodsq_RAX_m64
        | C::Cmpsb_m8_m8
        | C::Cmpsw_m16_m16
        | C::Cmpsd_m32_m32
        | C::Cmpsq_m64_m64
        | C::Scasb_AL_m8
        | C::Scasw_AX_m16
        | C::Scasd_EAX_m32
        | C::Scasq_RAX_m64 => go!(string_family(c, i)),
        C::Clc
        | C::Stc
        | C::Cmc
        | C::Cld
        | C::Std
        | C::Cpuid
        | C::Rdtsc
        | C::Rdtscp
        | C::Syscall
        | C::Int3
        | C::Int1
        | C::Int_imm8 => go!(system_family(c, i)),
        C::Nopw
        | C::Nopd
        | C::Nopq
        | C::Nop_rm16
        | C::Nop_rm32
        | C::Nop_rm64
        | C::Pause
        | C::Endbr64
        | C::Prefetchnta_m8
        | C::Prefetcht0_m8
        | C::Prefetcht1_m8
        | C::Prefetcht2_m8
        | C::Lfence
        | C::Mfence
        | C::Sfence
        | C::Lfence_E9
        | C::Lfence_EA
        | C::Lfence_EB
        | C::Lfence_EC
        | C::Lfence_ED
        | C::Lfence_EE
        | C::Lfence_EF
        | C::Mfence_F1
        | C::Mfence_F2
        | C::Mfence_F3
        | C::Mfence_F4
        | C::Mfence_F5
        | C::Mfence_F6
        | C::Mfence_F7
        | C::Sfence_F9
        | C::Sfence_FA
        | C::Sfence_FB
        | C::Sfence_FC
        | C::Sfence_FD
        | C::Sfence_FE
        | C::Sfence_FF
        | C::Endbr32
        | C::Rdsspd_r32
        | C::Rdsspq_r64
        | C::Incsspd_r32
        | C::Incsspq_r64
        | C::Prefetch_m8
        | C::Prefetchw_m8
        | C::Reservednop_rm16_r16_0F0D
        | C::Reservednop_rm32_r32_0F0D
        | C::Reservednop_rm64_r64_0F0D
        | C::Reservednop_rm16_r16_0F18
        | C::Reservednop_rm32_r32_0F18
        | C::Reservednop_rm64_r64_0F18
        | C::Reservednop_rm16_r16_0F19
        | C::Reservednop_rm32_r32_0F19
        | C::Reservednop_rm64_r64_0F19
        | C::Reservednop_rm16_r16_0F1A
        | C::Reservednop_rm32_r32_0F1A
        | C::Reservednop_rm64_r64_0F1A
        | C::Reservednop_rm16_r16_0F1B
        | C::Reservednop_rm32_r32_0F1B
        | C::Reservednop_rm64_r64_0F1B
        | C::Reservednop_rm16_r16_0F1C
        | C::Reservednop_rm32_r32_0F1C
        | C::Reservednop_rm64_r64_0F1C
        | C::Reservednop_rm16_r16_0F1D
        | C::Reservednop_rm32_r32_0F1D
        | C::Reservednop_rm64_r64_0F1D
        | C::Reservednop_rm16_r16_0F1E
        | C::Reservednop_rm32_r32_0F1E
        | C::Reservednop_rm64_r64_0F1E
        | C::Reservednop_rm16_r16_0F1F
        | C::Reservednop_rm32_r32_0F1F
        | C::Reservednop_rm64_r64_0F1F => go!(Ok(Flow::Next)),
        C::Hlt
        | C::Cli
        | C::Sti
        | C::Swapgs
        | C::Wrmsr
        | C::Rdmsr
        | C::Rdpmc
        | C::Clts
        | C::Invd
        | C::Wbinvd
        | C::Invlpg_m
        | C::Xsetbv
        | C::Sysretd
        | C::Sysretq
        | C::Lgdt_m1664
        | C::Lidt_m1664
        | C::Lldt_rm16
        | C::Lldt_r32m16
        | C::Lldt_r64m16
        | C::Ltr_rm16
        | C::Ltr_r32m16
        | C::Ltr_r64m16
        | C::Lmsw_rm16
        | C::Lmsw_r32m16
        | C::Lmsw_r64m16
        | C::Mov_cr_r64
        | C::Mov_r64_cr
        | C::Mov_dr_r64
        | C::Mov_r64_dr
        | C::Mov_cr_r32
        | C::Mov_r32_cr
        | C::Mov_dr_r32
        | C::Mov_r32_dr
        | C::In_AL_imm8
        | C::In_AX_imm8
        | C::In_EAX_imm8
        | C::Out_imm8_AL
        | C::Out_imm8_AX
        | C::Out_imm8_EAX
        | C::In_AL_DX
        | C::In_AX_DX
        | C::In_EAX_DX
        | C::Out_DX_AL
        | C::Out_DX_AX
        | C::Out_DX_EAX
        | C::Insb_m8_DX
        | C::Insw_m16_DX
        | C::Insd_m32_DX
        | C::Outsb_DX_m8
        | C::Outsw_DX_m16
        | C::Outsd_DX_m32 => go!(Err(Fault::gp(0))),
        C::INVALID if i.attr & attr::STRADDLE != 0 => go!(Ok(Flow::Straddle)),
        _ => go!(Err(Fault::UD)),
    }
}

/// The shift family, out of line.
#[inline(never)]
fn shift_family<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    match i.code {
        C::Rol_rm8_imm8 => shift::shift::<B, W8, { shift::ROL }, { shift::BY_IMM }>(c, i),
        C::Rol_rm8_1 => shift::shift::<B, W8, { shift::ROL }, { shift::BY_1 }>(c, i),
        C::Rol_rm8_CL => shift::shift::<B, W8, { shift::ROL }, { shift::BY_CL }>(c, i),
        C::Rol_rm16_imm8 => shift::shift::<B, W16, { shift::ROL }, { shift::BY_IMM }>(c, i),
        C::Rol_rm16_1 => shift::shift::<B, W16, { shift::ROL }, { shift::BY_1 }>(c, i),
        C::Rol_rm16_CL => shift::shift::<B, W16, { shift::ROL }, { shift::BY_CL }>(c, i),
        C::Rol_rm32_imm8 => shift::shift::<B, W32, { shift::ROL }, { shift::BY_IMM }>(c, i),
        C::Rol_rm32_1 => shift::shift::<B, W32, { shift::ROL }, { shift::BY_1 }>(c, i),
        C::Rol_rm32_CL => shift::shift::<B, W32, { shift::ROL }, { shift::BY_CL }>(c, i),
        C::Rol_rm64_imm8 => shift::shift::<B, W64, { shift::ROL }, { shift::BY_IMM }>(c, i),
        C::Rol_rm64_1 => shift::shift::<B, W64, { shift::ROL }, { shift::BY_1 }>(c, i),
        C::Rol_rm64_CL => shift::shift::<B, W64, { shift::ROL }, { shift::BY_CL }>(c, i),
        C::Ror_rm8_imm8 => shift::shift::<B, W8, { shift::ROR }, { shift::BY_IMM }>(c, i),
        C::Ror_rm8_1 => shift::shift::<B, W8, { shift::ROR }, { shift::BY_1 }>(c, i),
        C::Ror_rm8_CL => shift::shift::<B, W8, { shift::ROR }, { shift::BY_CL }>(c, i),
        C::Ror_rm16_imm8 => shift::shift::<B, W16, { shift::ROR }, { shift::BY_IMM }>(c, i),
        C::Ror_rm16_1 => shift::shift::<B, W16, { shift::ROR }, { shift::BY_1 }>(c, i),
        C::Ror_rm16_CL => shift::shift::<B, W16, { shift::ROR }, { shift::BY_CL }>(c, i),
        C::Ror_rm32_imm8 => shift::shift::<B, W32, { shift::ROR }, { shift::BY_IMM }>(c, i),
        C::Ror_rm32_1 => shift::shift::<B, W32, { shift::ROR }, { shift::BY_1 }>(c, i),
        C::Ror_rm32_CL => shift::shift::<B, W32, { shift::ROR }, { shift::BY_CL }>(c, i),
        C::Ror_rm64_imm8 => shift::shift::<B, W64, { shift::ROR }, { shift::BY_IMM }>(c, i),
        C::Ror_rm64_1 => shift::shift::<B, W64, { shift::ROR }, { shift::BY_1 }>(c, i),
        C::Ror_rm64_CL => shift::shift::<B, W64, { shift::ROR }, { shift::BY_CL }>(c, i),
        C::Rcl_rm8_imm8 => shift::shift::<B, W8, { shift::RCL }, { shift::BY_IMM }>(c, i),
        C::Rcl_rm8_1 => shift::shift::<B, W8, { shift::RCL }, { shift::BY_1 }>(c, i),
        C::Rcl_rm8_CL => shift::shift::<B, W8, { shift::RCL }, { shift::BY_CL }>(c, i),
        C::Rcl_rm16_imm8 => shift::shift::<B, W16, { shift::RCL }, { shift::BY_IMM }>(c, i),
        C::Rcl_rm16_1 => shift::shift::<B, W16, { shift::RCL }, { shift::BY_1 }>(c, i),
        C::Rcl_rm16_CL => shift::shift::<B, W16, { shift::RCL }, { shift::BY_CL }>(c, i),
        C::Rcl_rm32_imm8 => shift::shift::<B, W32, { shift::RCL }, { shift::BY_IMM }>(c, i),
        C::Rcl_rm32_1 => shift::shift::<B, W32, { shift::RCL }, { shift::BY_1 }>(c, i),
        C::Rcl_rm32_CL => shift::shift::<B, W32, { shift::RCL }, { shift::BY_CL }>(c, i),
        C::Rcl_rm64_imm8 => shift::shift::<B, W64, { shift::RCL }, { shift::BY_IMM }>(c, i),
        C::Rcl_rm64_1 => shift::shift::<B, W64, { shift::RCL }, { shift::BY_1 }>(c, i),
        C::Rcl_rm64_CL => shift::shift::<B, W64, { shift::RCL }, { shift::BY_CL }>(c, i),
        C::Rcr_rm8_imm8 => shift::shift::<B, W8, { shift::RCR }, { shift::BY_IMM }>(c, i),
        C::Rcr_rm8_1 => shift::shift::<B, W8, { shift::RCR }, { shift::BY_1 }>(c, i),
        C::Rcr_rm8_CL => shift::shift::<B, W8, { shift::RCR }, { shift::BY_CL }>(c, i),
        C::Rcr_rm16_imm8 => shift::shift::<B, W16, { shift::RCR }, { shift::BY_IMM }>(c, i),
        C::Rcr_rm16_1 => shift::shift::<B, W16, { shift::RCR }, { shift::BY_1 }>(c, i),
        C::Rcr_rm16_CL => shift::shift::<B, W16, { shift::RCR }, { shift::BY_CL }>(c, i),
        C::Rcr_rm32_imm8 => shift::shift::<B, W32, { shift::RCR }, { shift::BY_IMM }>(c, i),
        C::Rcr_rm32_1 => shift::shift::<B, W32, { shift::RCR }, { shift::BY_1 }>(c, i),
        C::Rcr_rm32_CL => shift::shift::<B, W32, { shift::RCR }, { shift::BY_CL }>(c, i),
        C::Rcr_rm64_imm8 => shift::shift::<B, W64, { shift::RCR }, { shift::BY_IMM }>(c, i),
        C::Rcr_rm64_1 => shift::shift::<B, W64, { shift::RCR }, { shift::BY_1 }>(c, i),
        C::Rcr_rm64_CL => shift::shift::<B, W64, { shift::RCR }, { shift::BY_CL }>(c, i),
        C::Shl_rm8_imm8 => shift::shift::<B, W8, { shift::SHL }, { shift::BY_IMM }>(c, i),
        C::Shl_rm8_1 => shift::shift::<B, W8, { shift::SHL }, { shift::BY_1 }>(c, i),
        C::Shl_rm8_CL => shift::shift::<B, W8, { shift::SHL }, { shift::BY_CL }>(c, i),
        C::Shl_rm16_imm8 => shift::shift::<B, W16, { shift::SHL }, { shift::BY_IMM }>(c, i),
        C::Shl_rm16_1 => shift::shift::<B, W16, { shift::SHL }, { shift::BY_1 }>(c, i),
        C::Shl_rm16_CL => shift::shift::<B, W16, { shift::SHL }, { shift::BY_CL }>(c, i),
        C::Shl_rm32_CL => shift::shift::<B, W32, { shift::SHL }, { shift::BY_CL }>(c, i),
        C::Shl_rm64_CL => shift::shift::<B, W64, { shift::SHL }, { shift::BY_CL }>(c, i),
        C::Sal_rm8_imm8 => shift::shift::<B, W8, { shift::SHL }, { shift::BY_IMM }>(c, i),
        C::Sal_rm8_1 => shift::shift::<B, W8, { shift::SHL }, { shift::BY_1 }>(c, i),
        C::Sal_rm8_CL => shift::shift::<B, W8, { shift::SHL }, { shift::BY_CL }>(c, i),
        C::Sal_rm16_imm8 => shift::shift::<B, W16, { shift::SHL }, { shift::BY_IMM }>(c, i),
        C::Sal_rm16_1 => shift::shift::<B, W16, { shift::SHL }, { shift::BY_1 }>(c, i),
        C::Sal_rm16_CL => shift::shift::<B, W16, { shift::SHL }, { shift::BY_CL }>(c, i),
        C::Sal_rm32_CL => shift::shift::<B, W32, { shift::SHL }, { shift::BY_CL }>(c, i),
        C::Sal_rm64_CL => shift::shift::<B, W64, { shift::SHL }, { shift::BY_CL }>(c, i),
        C::Shr_rm8_imm8 => shift::shift::<B, W8, { shift::SHR }, { shift::BY_IMM }>(c, i),
        C::Shr_rm8_1 => shift::shift::<B, W8, { shift::SHR }, { shift::BY_1 }>(c, i),
        C::Shr_rm8_CL => shift::shift::<B, W8, { shift::SHR }, { shift::BY_CL }>(c, i),
        C::Shr_rm16_imm8 => shift::shift::<B, W16, { shift::SHR }, { shift::BY_IMM }>(c, i),
        C::Shr_rm16_1 => shift::shift::<B, W16, { shift::SHR }, { shift::BY_1 }>(c, i),
        C::Shr_rm16_CL => shift::shift::<B, W16, { shift::SHR }, { shift::BY_CL }>(c, i),
        C::Shr_rm32_CL => shift::shift::<B, W32, { shift::SHR }, { shift::BY_CL }>(c, i),
        C::Shr_rm64_CL => shift::shift::<B, W64, { shift::SHR }, { shift::BY_CL }>(c, i),
        C::Sar_rm8_imm8 => shift::shift::<B, W8, { shift::SAR }, { shift::BY_IMM }>(c, i),
        C::Sar_rm8_1 => shift::shift::<B, W8, { shift::SAR }, { shift::BY_1 }>(c, i),
        C::Sar_rm8_CL => shift::shift::<B, W8, { shift::SAR }, { shift::BY_CL }>(c, i),
        C::Sar_rm16_imm8 => shift::shift::<B, W16, { shift::SAR }, { shift::BY_IMM }>(c, i),
        C::Sar_rm16_1 => shift::shift::<B, W16, { shift::SAR }, { shift::BY_1 }>(c, i),
        C::Sar_rm16_CL => shift::shift::<B, W16, { shift::SAR }, { shift::BY_CL }>(c, i),
        C::Sar_rm32_CL => shift::shift::<B, W32, { shift::SAR }, { shift::BY_CL }>(c, i),
        C::Sar_rm64_CL => shift::shift::<B, W64, { shift::SAR }, { shift::BY_CL }>(c, i),
        C::Shld_rm16_r16_imm8 => shift::double::<B, W16, true, { shift::BY_IMM }>(c, i),
        C::Shld_rm16_r16_CL => shift::double::<B, W16, true, { shift::BY_CL }>(c, i),
        C::Shld_rm32_r32_imm8 => shift::double::<B, W32, true, { shift::BY_IMM }>(c, i),
        C::Shld_rm32_r32_CL => shift::double::<B, W32, true, { shift::BY_CL }>(c, i),
        C::Shld_rm64_r64_imm8 => shift::double::<B, W64, true, { shift::BY_IMM }>(c, i),
        C::Shld_rm64_r64_CL => shift::double::<B, W64, true, { shift::BY_CL }>(c, i),
        C::Shrd_rm16_r16_imm8 => shift::double::<B, W16, false, { shift::BY_IMM }>(c, i),
        C::Shrd_rm16_r16_CL => shift::double::<B, W16, false, { shift::BY_CL }>(c, i),
        C::Shrd_rm32_r32_imm8 => shift::double::<B, W32, false, { shift::BY_IMM }>(c, i),
        C::Shrd_rm32_r32_CL => shift::double::<B, W32, false, { shift::BY_CL }>(c, i),
        C::Shrd_rm64_r64_imm8 => shift::double::<B, W64, false, { shift::BY_IMM }>(c, i),
        C::Shrd_rm64_r64_CL => shift::double::<B, W64, false, { shift::BY_CL }>(c, i),
        _ => Err(Fault::UD),
    }
}

/// The muldiv family, out of line.
#[inline(never)]
fn muldiv_family<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    match i.code {
        C::Mul_rm8 => muldiv::mul::<B, W8>(c, i),
        C::Imul_rm8 => muldiv::imul1::<B, W8>(c, i),
        C::Div_rm8 => muldiv::div::<B, W8>(c, i),
        C::Idiv_rm8 => muldiv::idiv::<B, W8>(c, i),
        C::Mul_rm16 => muldiv::mul::<B, W16>(c, i),
        C::Imul_rm16 => muldiv::imul1::<B, W16>(c, i),
        C::Div_rm16 => muldiv::div::<B, W16>(c, i),
        C::Idiv_rm16 => muldiv::idiv::<B, W16>(c, i),
        C::Mul_rm32 => muldiv::mul::<B, W32>(c, i),
        C::Imul_rm32 => muldiv::imul1::<B, W32>(c, i),
        C::Div_rm32 => muldiv::div::<B, W32>(c, i),
        C::Idiv_rm32 => muldiv::idiv::<B, W32>(c, i),
        C::Mul_rm64 => muldiv::mul::<B, W64>(c, i),
        C::Imul_rm64 => muldiv::imul1::<B, W64>(c, i),
        C::Div_rm64 => muldiv::div::<B, W64>(c, i),
        C::Idiv_rm64 => muldiv::idiv::<B, W64>(c, i),
        C::Imul_r16_rm16 => muldiv::imul::<B, W16, false>(c, i),
        C::Imul_r16_rm16_imm8 => muldiv::imul::<B, W16, true>(c, i),
        C::Imul_r32_rm32 => muldiv::imul::<B, W32, false>(c, i),
        C::Imul_r32_rm32_imm8 => muldiv::imul::<B, W32, true>(c, i),
        C::Imul_r64_rm64 => muldiv::imul::<B, W64, false>(c, i),
        C::Imul_r64_rm64_imm8 => muldiv::imul::<B, W64, true>(c, i),
        C::Imul_r16_rm16_imm16 => muldiv::imul::<B, W16, true>(c, i),
        C::Imul_r32_rm32_imm32 => muldiv::imul::<B, W32, true>(c, i),
        C::Imul_r64_rm64_imm32 => muldiv::imul::<B, W64, true>(c, i),
        _ => Err(Fault::UD),
    }
}

/// The bits family, out of line.
#[inline(never)]
fn bits_family<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    match i.code {
        C::Bt_rm16_r16 => bits::bt::<B, W16, { bits::BT }, false>(c, i),
        C::Bt_rm16_imm8 => bits::bt::<B, W16, { bits::BT }, true>(c, i),
        C::Bt_rm32_r32 => bits::bt::<B, W32, { bits::BT }, false>(c, i),
        C::Bt_rm32_imm8 => bits::bt::<B, W32, { bits::BT }, true>(c, i),
        C::Bt_rm64_r64 => bits::bt::<B, W64, { bits::BT }, false>(c, i),
        C::Bt_rm64_imm8 => bits::bt::<B, W64, { bits::BT }, true>(c, i),
        C::Bts_rm16_r16 => bits::bt::<B, W16, { bits::BTS }, false>(c, i),
        C::Bts_rm16_imm8 => bits::bt::<B, W16, { bits::BTS }, true>(c, i),
        C::Bts_rm32_r32 => bits::bt::<B, W32, { bits::BTS }, false>(c, i),
        C::Bts_rm32_imm8 => bits::bt::<B, W32, { bits::BTS }, true>(c, i),
        C::Bts_rm64_r64 => bits::bt::<B, W64, { bits::BTS }, false>(c, i),
        C::Bts_rm64_imm8 => bits::bt::<B, W64, { bits::BTS }, true>(c, i),
        C::Btr_rm16_r16 => bits::bt::<B, W16, { bits::BTR }, false>(c, i),
        C::Btr_rm16_imm8 => bits::bt::<B, W16, { bits::BTR }, true>(c, i),
        C::Btr_rm32_r32 => bits::bt::<B, W32, { bits::BTR }, false>(c, i),
        C::Btr_rm32_imm8 => bits::bt::<B, W32, { bits::BTR }, true>(c, i),
        C::Btr_rm64_r64 => bits::bt::<B, W64, { bits::BTR }, false>(c, i),
        C::Btr_rm64_imm8 => bits::bt::<B, W64, { bits::BTR }, true>(c, i),
        C::Btc_rm16_r16 => bits::bt::<B, W16, { bits::BTC }, false>(c, i),
        C::Btc_rm16_imm8 => bits::bt::<B, W16, { bits::BTC }, true>(c, i),
        C::Btc_rm32_r32 => bits::bt::<B, W32, { bits::BTC }, false>(c, i),
        C::Btc_rm32_imm8 => bits::bt::<B, W32, { bits::BTC }, true>(c, i),
        C::Btc_rm64_r64 => bits::bt::<B, W64, { bits::BTC }, false>(c, i),
        C::Btc_rm64_imm8 => bits::bt::<B, W64, { bits::BTC }, true>(c, i),
        C::Bsf_r16_rm16 => bits::scan::<B, W16, { bits::BSF }>(c, i),
        C::Bsf_r32_rm32 => bits::scan::<B, W32, { bits::BSF }>(c, i),
        C::Bsf_r64_rm64 => bits::scan::<B, W64, { bits::BSF }>(c, i),
        C::Bsr_r16_rm16 => bits::scan::<B, W16, { bits::BSR }>(c, i),
        C::Bsr_r32_rm32 => bits::scan::<B, W32, { bits::BSR }>(c, i),
        C::Bsr_r64_rm64 => bits::scan::<B, W64, { bits::BSR }>(c, i),
        C::Tzcnt_r16_rm16 => bits::scan::<B, W16, { bits::TZCNT }>(c, i),
        C::Tzcnt_r32_rm32 => bits::scan::<B, W32, { bits::TZCNT }>(c, i),
        C::Tzcnt_r64_rm64 => bits::scan::<B, W64, { bits::TZCNT }>(c, i),
        C::Lzcnt_r16_rm16 => bits::scan::<B, W16, { bits::LZCNT }>(c, i),
        C::Lzcnt_r32_rm32 => bits::scan::<B, W32, { bits::LZCNT }>(c, i),
        C::Lzcnt_r64_rm64 => bits::scan::<B, W64, { bits::LZCNT }>(c, i),
        C::Popcnt_r16_rm16 => bits::scan::<B, W16, { bits::POPCNT }>(c, i),
        C::Popcnt_r32_rm32 => bits::scan::<B, W32, { bits::POPCNT }>(c, i),
        C::Popcnt_r64_rm64 => bits::scan::<B, W64, { bits::POPCNT }>(c, i),
        C::Bswap_r32 => bits::bswap::<B, W32>(c, i),
        C::Bswap_r64 => bits::bswap::<B, W64>(c, i),
        C::VEX_Andn_r32_r32_rm32 => bits::bmi1::<B, W32, { bits::ANDN }>(c, i),
        C::VEX_Bextr_r32_rm32_r32 => bits::bmi1::<B, W32, { bits::BEXTR }>(c, i),
        C::VEX_Blsi_r32_rm32 => bits::bmi1::<B, W32, { bits::BLSI }>(c, i),
        C::VEX_Blsmsk_r32_rm32 => bits::bmi1::<B, W32, { bits::BLSMSK }>(c, i),
        C::VEX_Blsr_r32_rm32 => bits::bmi1::<B, W32, { bits::BLSR }>(c, i),
        C::VEX_Andn_r64_r64_rm64 => bits::bmi1::<B, W64, { bits::ANDN }>(c, i),
        C::VEX_Bextr_r64_rm64_r64 => bits::bmi1::<B, W64, { bits::BEXTR }>(c, i),
        C::VEX_Blsi_r64_rm64 => bits::bmi1::<B, W64, { bits::BLSI }>(c, i),
        C::VEX_Blsmsk_r64_rm64 => bits::bmi1::<B, W64, { bits::BLSMSK }>(c, i),
        C::VEX_Blsr_r64_rm64 => bits::bmi1::<B, W64, { bits::BLSR }>(c, i),
        _ => Err(Fault::UD),
    }
}

/// The misc family, out of line.
#[inline(never)]
fn misc_family<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    match i.code {
        C::Xchg_rm8_r8 => mov::xchg::<B, W8>(c, i),
        C::Cmpxchg_rm8_r8 => mov::cmpxchg::<B, W8>(c, i),
        C::Xadd_rm8_r8 => mov::xadd::<B, W8>(c, i),
        C::Xchg_rm16_r16 => mov::xchg::<B, W16>(c, i),
        C::Cmpxchg_rm16_r16 => mov::cmpxchg::<B, W16>(c, i),
        C::Xadd_rm16_r16 => mov::xadd::<B, W16>(c, i),
        C::Xchg_rm32_r32 => mov::xchg::<B, W32>(c, i),
        C::Cmpxchg_rm32_r32 => mov::cmpxchg::<B, W32>(c, i),
        C::Xadd_rm32_r32 => mov::xadd::<B, W32>(c, i),
        C::Xchg_rm64_r64 => mov::xchg::<B, W64>(c, i),
        C::Cmpxchg_rm64_r64 => mov::cmpxchg::<B, W64>(c, i),
        C::Xadd_rm64_r64 => mov::xadd::<B, W64>(c, i),
        C::Xchg_r16_AX => mov::xchg::<B, W16>(c, i),
        C::Xchg_r32_EAX => mov::xchg::<B, W32>(c, i),
        C::Xchg_r64_RAX => mov::xchg::<B, W64>(c, i),
        C::Cmpxchg8b_m64 => mov::cmpxchg_double::<B, W32>(c, i),
        C::Cmpxchg16b_m128 => mov::cmpxchg_double::<B, W64>(c, i),
        C::Movbe_r16_m16 => mov::movbe::<B, W16, true>(c, i),
        C::Movbe_m16_r16 => mov::movbe::<B, W16, false>(c, i),
        C::Movbe_r32_m32 => mov::movbe::<B, W32, true>(c, i),
        C::Movbe_m32_r32 => mov::movbe::<B, W32, false>(c, i),
        C::Movbe_r64_m64 => mov::movbe::<B, W64, true>(c, i),
        C::Movbe_m64_r64 => mov::movbe::<B, W64, false>(c, i),
        C::Xlat_m8 => mov::xlat(c, i),
        C::Cbw => mov::cbw::<B, W16>(c),
        C::Cwde => mov::cbw::<B, W32>(c),
        C::Cdqe => mov::cbw::<B, W64>(c),
        C::Cwd => mov::cwd::<B, W16>(c),
        C::Cdq => mov::cwd::<B, W32>(c),
        C::Cqo => mov::cwd::<B, W64>(c),
        C::Lahf => mov::lahf(c),
        C::Sahf => mov::sahf(c),
        C::Mov_rm16_Sreg => mov::mov_from_sreg::<B, W16>(c, i),
        C::Mov_r32m16_Sreg => mov::mov_from_sreg::<B, W32>(c, i),
        C::Mov_r64m16_Sreg => mov::mov_from_sreg::<B, W64>(c, i),
        C::Enterq_imm16_imm8 => stack::enter(c, i),
        C::Pushfq => stack::pushf::<B, W64>(c),
        C::Pushfw => stack::pushf::<B, W16>(c),
        C::Popfq => stack::popf::<B, W64>(c),
        C::Popfw => stack::popf::<B, W16>(c),
        C::Loop_rel8_64_RCX => branch::loop_::<B, { branch::LOOP }, false>(c, i),
        C::Loop_rel8_64_ECX => branch::loop_::<B, { branch::LOOP }, true>(c, i),
        C::Loope_rel8_64_RCX => branch::loop_::<B, { branch::LOOPE }, false>(c, i),
        C::Loope_rel8_64_ECX => branch::loop_::<B, { branch::LOOPE }, true>(c, i),
        C::Loopne_rel8_64_RCX => branch::loop_::<B, { branch::LOOPNE }, false>(c, i),
        C::Loopne_rel8_64_ECX => branch::loop_::<B, { branch::LOOPNE }, true>(c, i),
        C::Jrcxz_rel8_64 => branch::jrcxz::<B, false>(c, i),
        C::Jecxz_rel8_64 => branch::jrcxz::<B, true>(c, i),
        _ => Err(Fault::UD),
    }
}

/// The string family, out of line.
#[inline(never)]
fn string_family<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    match i.code {
        C::Movsb_m8_m8 => string::string::<B, W8, { string::MOVS }>(c, i),
        C::Movsw_m16_m16 => string::string::<B, W16, { string::MOVS }>(c, i),
        C::Movsd_m32_m32 => string::string::<B, W32, { string::MOVS }>(c, i),
        C::Movsq_m64_m64 => string::string::<B, W64, { string::MOVS }>(c, i),
        C::Stosb_m8_AL => string::string::<B, W8, { string::STOS }>(c, i),
        C::Stosw_m16_AX => string::string::<B, W16, { string::STOS }>(c, i),
        C::Stosd_m32_EAX => string::string::<B, W32, { string::STOS }>(c, i),
        C::Stosq_m64_RAX => string::string::<B, W64, { string::STOS }>(c, i),
        C::Lodsb_AL_m8 => string::string::<B, W8, { string::LODS }>(c, i),
        C::Lodsw_AX_m16 => string::string::<B, W16, { string::LODS }>(c, i),
        C::Lodsd_EAX_m32 => string::string::<B, W32, { string::LODS }>(c, i),
        C::Lodsq_RAX_m64 => string::string::<B, W64, { string::LODS }>(c, i),
        C::Cmpsb_m8_m8 => string::string::<B, W8, { string::CMPS }>(c, i),
        C::Cmpsw_m16_m16 => string::string::<B, W16, { string::CMPS }>(c, i),
        C::Cmpsd_m32_m32 => string::string::<B, W32, { string::CMPS }>(c, i),
        C::Cmpsq_m64_m64 => string::string::<B, W64, { string::CMPS }>(c, i),
        C::Scasb_AL_m8 => string::string::<B, W8, { string::SCAS }>(c, i),
        C::Scasw_AX_m16 => string::string::<B, W16, { string::SCAS }>(c, i),
        C::Scasd_EAX_m32 => string::string::<B, W32, { string::SCAS }>(c, i),
        C::Scasq_RAX_m64 => string::string::<B, W64, { string::SCAS }>(c, i),
        _ => Err(Fault::UD),
    }
}

/// The system family, out of line.
#[inline(never)]
fn system_family<B: Bus>(c: &mut Ctx<'_, B>, i: &Insn) -> R {
    match i.code {
        C::Clc => system::flag::<B, { system::CLC }>(c),
        C::Stc => system::flag::<B, { system::STC }>(c),
        C::Cmc => system::flag::<B, { system::CMC }>(c),
        C::Cld => system::flag::<B, { system::CLD }>(c),
        C::Std => system::flag::<B, { system::STD }>(c),
        C::Cpuid => system::cpuid(c),
        C::Rdtsc => system::rdtsc::<B, false>(c),
        C::Rdtscp => system::rdtsc::<B, true>(c),
        C::Syscall => Ok(Flow::Syscall),
        C::Int3 => system::trap(c, Fault::BP),
        C::Int1 => system::trap(c, Fault::DB),
        C::Int_imm8 => system::int_n(c, i),
        _ => Err(Fault::UD),
    }
}
