//! Fuzz-style property: random bytes as code and random registers never panic the
//! interpreter; every run ends in a clean exit with consistent accounting.

use proptest::prelude::*;

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_code_never_panics(
        code in proptest::collection::vec(any::<u8>(), 1..256),
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
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Running `budget` instructions in one go, or one instruction per run with a fresh
    /// decode cache each time, ends in the same state: the cache, straight-line execution
    /// inside a page, lazy flags and `rep` interruption are all invisible.
    #[test]
    fn one_run_equals_single_steps(
        code in proptest::collection::vec(any::<u8>(), 1..128),
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
