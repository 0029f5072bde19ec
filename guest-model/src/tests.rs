//! Crate-level tests: every guest assembles, deterministically, into the allowed subset.

use crate::isa::check_code;
use crate::{toy, ToyImage};

fn all_images() -> Vec<ToyImage> {
    vec![
        toy("counter", "").unwrap(),
        toy("counter", "pages=3 steps=10 report=2").unwrap(),
    ]
}

#[test]
fn images_assemble_and_decode_into_the_subset() {
    for img in all_images() {
        let used =
            check_code(img.code(), img.entry).unwrap_or_else(|e| panic!("{}: {e}", img.name));
        assert!(!used.is_empty());
        assert_eq!(img.bytes.len() as u64 % 4096, 0);
        eprintln!(
            "{}: {} code bytes, {} total, {} distinct codes",
            img.name,
            img.code_len,
            img.bytes.len(),
            used.len()
        );
    }
}
