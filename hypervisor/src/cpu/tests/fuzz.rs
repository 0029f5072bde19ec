//! Fuzz-style property: random bytes as code and random registers never panic the
//! interpreter; every run ends in a clean exit with consistent accounting.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use super::{PAGES, STACK};
use crate::cpu::{run, DecodeCache, Exit, FlatMemory, Regs, RunLimits};

fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..0x100,
        // Addresses inside the flat memory, so loads and stores often succeed.
        0u64..((PAGES as u64) << 12),
        Just(u64::MAX),
        Just(1u64 << 63),
        Just(0x0000_8000_0000_0000u64),
    ]
}

/// One plausible instruction: optional prefixes, an opcode biased toward the implemented
/// families, a ModRM byte and a few displacement/immediate bytes.
fn chunk() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop::sample::select(vec![
        0x66u8, 0x67, 0xf2, 0xf3, 0xf0, 0x64, 0x65, 0x40, 0x41, 0x44, 0x48, 0x49, 0x4c, 0x4d,
    ]);
    let opcode = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        (0u8..0x40).prop_map(|b| vec![b]),    // ALU
        (0x50u8..0x60).prop_map(|b| vec![b]), // push/pop
        (0x70u8..0x80).prop_map(|b| vec![b]), // jcc
        (0x80u8..0x90).prop_map(|b| vec![b]), // group 1, test, xchg, mov, lea
        (0xa4u8..0xb0).prop_map(|b| vec![b]), // string ops
        prop::sample::select(vec![
            0xc0u8, 0xc1, 0xd0, 0xd1, 0xd3, 0xf6, 0xf7, 0xfe, 0xff, 0xc3, 0xc2, 0xc8, 0xc9, 0xe8,
            0xe9, 0xeb, 0xe0, 0xe1, 0xe2, 0xe3, 0x98, 0x99, 0x9c, 0x9d, 0xcc, 0xcd
        ])
        .prop_map(|b| vec![b]),
        prop::sample::select(vec![
            0x40u8, 0x44, 0x48, 0x4c, 0x90, 0x94, 0x9c, 0xa2, 0xa3, 0xab, 0xa4, 0xa5, 0xac, 0xad,
            0xaf, 0xb0, 0xb1, 0xb3, 0xb6, 0xb7, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf, 0xc0, 0xc1,
            0xc7, 0xc8, 0x31, 0x05, 0x0b, 0x1f, 0xb8,
        ])
        .prop_map(|b| vec![0x0f, b]),
    ];
    (
        proptest::collection::vec(prefix, 0..3),
        opcode,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..9),
    )
        .prop_map(|(mut p, op, modrm, tail)| {
            p.extend(op);
            p.push(modrm);
            p.extend(tail);
            p
        })
}

fn program() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..256),
        proptest::collection::vec(chunk(), 1..40).prop_map(|c| c.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "src/cpu/tests/proptest-regressions/fuzz.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_code_never_panics(
        code in program(),
        gpr in proptest::array::uniform16(interesting_u64()),
        flags in any::<u64>(),
        at in 0u64..0x1000,
        fs in interesting_u64(),
        budget in 1u64..300,
    ) {
        let mut mem = FlatMemory::new(PAGES);
        // Code near the end of a page now and then, to straddle into the next one.
        let base = 0x1000 + at;
        mem.load(base, &code);
        let mut regs = Regs { gpr, rip: base, rflags: (flags & 0x0cd5) | 0x202, fs_base: fs, ..Regs::default() };
        if gpr[1] & 1 == 0 {
            regs.gpr[4] = STACK; // a usable stack half the time
        }
        let mut cache = DecodeCache::new();
        let before = regs.clone();
        let r = run(&mut regs, &mut mem, &mut cache, RunLimits { budget, tsc: 0, tsc_aux: 0 });
        prop_assert!(r.retired <= budget);
        match r.exit {
            Exit::Budget => prop_assert_eq!(r.retired, budget),
            Exit::Exception(f) => {
                prop_assert!(f.vector < 32);
                prop_assert_eq!(f.cr2.is_some(), f.vector == 14);
            }
            Exit::Syscall => {}
        }
        if r.retired == 0 {
            if let Exit::Exception(f) = r.exit {
                // Nothing retired: a fault on the first instruction left the registers alone
                // (traps like int3 retire their instruction).
                if f.vector != 3 && f.vector != 1 {
                    prop_assert_eq!(&regs, &before);
                }
            }
        }
        // Running on from wherever it stopped must not panic either.
        let _ = run(&mut regs, &mut mem, &mut cache, RunLimits { budget: 64, tsc: 0, tsc_aux: 0 });
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "src/cpu/tests/proptest-regressions/fuzz.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// Running `budget` instructions in one go, or one instruction per run with a fresh
    /// decode cache each time, ends in the same state: the cache, straight-line execution
    /// inside a page, lazy flags and `rep` interruption are all invisible.
    #[test]
    fn one_run_equals_single_steps(
        code in program(),
        gpr in proptest::array::uniform16(interesting_u64()),
        flags in any::<u64>(),
        budget in 1u64..100,
    ) {
        let mut mem = FlatMemory::new(PAGES);
        mem.load(0x1000, &code);
        let mut regs = Regs { gpr, rip: 0x1000, rflags: (flags & 0x0cd5) | 0x202, ..Regs::default() };
        regs.gpr[4] = STACK;
        let (mut mem2, mut regs2) = (mem.clone(), regs.clone());

        let mut cache = DecodeCache::new();
        let one = run(&mut regs, &mut mem, &mut cache, RunLimits { budget, tsc: 7, tsc_aux: 1 });

        let mut retired = 0;
        let mut exit = Exit::Budget;
        while retired < budget {
            let mut fresh = DecodeCache::new();
            let limits = RunLimits { budget: 1, tsc: 7 + retired, tsc_aux: 1 };
            let r = run(&mut regs2, &mut mem2, &mut fresh, limits);
            retired += r.retired;
            exit = r.exit;
            if r.exit != Exit::Budget {
                break;
            }
        }
        prop_assert_eq!(one.exit, exit);
        prop_assert_eq!(one.retired, retired);
        prop_assert_eq!(&regs, &regs2);
        prop_assert!(mem.bytes() == mem2.bytes(), "memory differs");
    }
}
