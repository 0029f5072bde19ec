//! The interpreter on random code and registers (see `harness::fuzz::interp_one`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = harness::fuzz::interp_one(data) {
        panic!("{e}");
    }
});
