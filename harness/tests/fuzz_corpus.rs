//! Replays the committed corpora of the fuzz targets (`fuzz/corpus/restore/`,
//! `fuzz/corpus/interp/`) through the same entry points the targets call
//! (`harness::fuzz`), on the stable toolchain. `XI_REGENERATE=1` rewrites the seed
//! files (`seed-*`) from the fixtures: the counter stream patched in a few ways and
//! truncated, the head of every fixture stream as a raw stream, and the code of every
//! toy guest as interpreter input; files found by fuzzing are kept beside them.

use std::path::{Path, PathBuf};

use harness::fuzz::{interp_one, restore_one, INTERP_HEADER};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn regenerate() -> bool {
    std::env::var_os("XI_REGENERATE").is_some_and(|v| v != "0")
}

fn seeds_restore() -> Vec<(String, Vec<u8>)> {
    let mut v = vec![
        // The base stream unchanged, truncated in the middle of PAGE_DATA, and patched in
        // its xl header, its first libxc record and a page table.
        ("seed-base".to_owned(), vec![0u8]),
        ("seed-truncated".to_owned(), {
            let mut d = vec![1u8];
            d.extend(0x20_0000u32.to_le_bytes());
            d
        }),
        ("seed-patches".to_owned(), {
            let mut d = vec![0u8, 0, 0, 0, 0];
            for (at, x) in [
                (40u32, 0x01u8),
                (0x10e, 0x80),
                (0x122, 0x04),
                (0x3000, 0xff),
            ] {
                d.extend(at.to_le_bytes());
                d.push(x);
            }
            d
        }),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/streams");
    for name in ["counter", "epoch", "pagetable", "pingpong"] {
        if let Ok(b) = std::fs::read(dir.join(format!("{name}.xl"))) {
            v.push((format!("seed-head-{name}"), b[..b.len().min(2048)].to_vec()));
        }
    }
    v
}

fn seeds_interp() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for (i, (kind, extra)) in [
        ("counter", "pages=4"),
        ("epoch", "pages=4"),
        ("pagetable", ""),
        ("pingpong", "role=ping"),
    ]
    .into_iter()
    .enumerate()
    {
        let toy = guest_model::toy(kind, extra).expect("toy");
        let mut d = vec![0u8; INTERP_HEADER];
        // rsp in the flat memory, a budget of 200.
        d[4 * 8..4 * 8 + 8].copy_from_slice(&0x20000u64.to_le_bytes());
        d[138] = 199;
        d[136] = (i * 0x10) as u8;
        d.extend_from_slice(&toy.code()[..toy.code().len().min(2048)]);
        v.push((format!("seed-{kind}"), d));
    }
    v
}

fn replay(target: &str, seeds: Vec<(String, Vec<u8>)>, one: fn(&[u8]) -> Result<(), String>) {
    let dir = corpus(target);
    if regenerate() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= seeds.len(),
        "{}: seeds missing",
        dir.display()
    );
    for f in files {
        let data = std::fs::read(&f).unwrap();
        if let Err(e) = one(&data) {
            panic!("{}: {e}", f.display());
        }
    }
}

#[test]
fn restore_corpus() {
    assert!(
        !harness::fuzz::base_stream().is_empty(),
        "the counter fixture is there"
    );
    replay("restore", seeds_restore(), restore_one);
}

#[test]
fn interp_corpus() {
    replay("interp", seeds_interp(), interp_one);
}
