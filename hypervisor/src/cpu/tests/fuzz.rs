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
