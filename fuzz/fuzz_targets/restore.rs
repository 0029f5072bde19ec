//! The stream reader and restore into a fresh model host (see `harness::fuzz::restore_one`
//! for the input format and the properties checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = harness::fuzz::restore_one(data) {
        panic!("{e}");
    }
});
