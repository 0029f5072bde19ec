//! The entry points of the fuzz targets in `fuzz/` (cargo-fuzz, not a workspace member),
//! here so that a normal test (`harness/tests/fuzz_corpus.rs`) replays the committed
//! corpus through exactly the same code on the stable toolchain.
//!
//! Each returns `Err(what)` when a property is violated; a panic is a finding too.

use std::sync::OnceLock;

use hypervisor::cpu::{run, DecodeCache, Exit, FlatMemory, Regs, RunLimits};
use hypervisor::model::{Model, ModelConfig};
use toolstack::restore::{restore, RestoreError, RestoreOptions};
use toolstack::save::xc;
use toolstack::stream::{read_all, ReaderOptions};

use crate::observe;

/// Machine frames of the host each restore input runs on.
const FUZZ_HOST_FRAMES: u64 = 4096;
/// At most this many patches are applied to the base stream.
const MAX_PATCHES: usize = 64;

/// The stream the patch form of [`restore_one`] starts from: the committed counter
/// fixture (`fixtures/streams/counter.xl`), or an empty stream if it is missing.
#[must_use]
pub fn base_stream() -> &'static [u8] {
    static S: OnceLock<Vec<u8>> = OnceLock::new();
    S.get_or_init(|| {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/streams/counter.xl"
        );
        std::fs::read(p).unwrap_or_default()
    })
}

/// The stream a restore input stands for.
///
/// - An input starting with `Xen ` (the xl magic) is a stream itself.
/// - Otherwise it patches [`base_stream`]: byte 0 bit 0 set truncates it at the
///   little-endian `u32` in bytes 1–4 (modulo its length); then each 5-byte group from
///   byte 5 on is a `u32` offset (modulo the length) and a byte XORed in there (at most
///   64 groups).
#[must_use]
pub fn stream_of(data: &[u8]) -> Vec<u8> {
    if data.starts_with(b"Xen ") {
        return data.to_vec();
    }
    let base = base_stream();
    if base.is_empty() {
        return data.to_vec();
    }
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let mut s = base.to_vec();
    if data.len() >= 5 && data[0] & 1 == 1 {
        s.truncate(word(&data[1..5]) % base.len());
    }
    if !s.is_empty() {
        for p in data
            .get(5..)
            .unwrap_or_default()
            .chunks_exact(5)
            .take(MAX_PATCHES)
        {
            let at = word(p) % s.len();
            s[at] ^= p[4];
        }
    }
    s
}

/// Reads the stream of `data` with the strict and the lax reader, then restores it into
/// a fresh model host: restore must fail with a typed error that is not
/// `CleanupFailed`, or give a domain that passes the invariant checker; either way the
/// host must have the same domains and free frames afterwards (after destroying a
/// restored domain).
///
/// # Errors
/// The violated property.
pub fn restore_one(data: &[u8]) -> Result<(), String> {
    let stream = stream_of(data);
    for strict in [false, true] {
        let _ = read_all(
            &stream[..],
            ReaderOptions {
                require_zero_padding: strict,
                ..ReaderOptions::default()
            },
        )
        .map_err(|e| e.to_string());
    }
    let mut m = Model::new(ModelConfig {
        machine_frames: FUZZ_HOST_FRAMES,
    });
    let doms = observe::domains(&mut m).map_err(|e| e.to_string())?;
    let free = observe::free_pages(&mut m).map_err(|e| e.to_string())?;
    match restore(&mut m, &stream[..], RestoreOptions::default()) {
        Ok(r) => {
            m.check_invariants()
                .map_err(|e| format!("restored d{} but invariants fail: {e:?}", r.domid))?;
            xc::destroy(&mut m, r.domid).map_err(|e| format!("destroy: {e}"))?;
        }
        Err(e @ RestoreError::CleanupFailed { .. }) => return Err(format!("{e}")),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    m.check_invariants()
        .map_err(|e| format!("invariants after: {e:?}"))?;
    let after = observe::domains(&mut m).map_err(|e| e.to_string())?;
    if after != doms {
        return Err(format!("domains {doms:?} became {after:?}"));
    }
    let now = observe::free_pages(&mut m).map_err(|e| e.to_string())?;
    if now != free {
        return Err(format!("free frames {free} became {now}: leaked"));
    }
    Ok(())
}

/// Pages of the flat memory an interpreter input runs in.
const INTERP_PAGES: usize = 0x40;
/// The header of an interpreter input: 16 GPRs, RFLAGS, code offset, budget.
pub const INTERP_HEADER: usize = 16 * 8 + 8 + 2 + 1;

/// Runs the code of `data` in the interpreter: bytes 0–127 are the 16 GPRs, 128–135
/// RFLAGS (arithmetic bits only), 136–137 the code's offset in page 1, 138 the budget
/// (1–256); the rest is the code (missing header bytes are zero). Checks the
/// interpreter's accounting (never more than the budget, a budget exit uses all of it,
/// exceptions are architectural vectors with cr2 exactly for #PF, a fault on the first
/// instruction changes nothing) and that one run equals single steps with a fresh
/// decode cache each time (registers and memory).
///
/// # Errors
/// The violated property.
pub fn interp_one(data: &[u8]) -> Result<(), String> {
    let mut h = [0u8; INTERP_HEADER];
    let n = data.len().min(INTERP_HEADER);
    h[..n].copy_from_slice(&data[..n]);
    let code = data.get(INTERP_HEADER..).unwrap_or_default();
    let code = &code[..code.len().min(4096)];
    let mut gpr = [0u64; 16];
    for (i, g) in gpr.iter_mut().enumerate() {
        *g = u64::from_le_bytes(h[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    }
    let flags = u64::from_le_bytes(h[128..136].try_into().unwrap_or([0; 8]));
    let at = u64::from(u16::from_le_bytes([h[136], h[137]]) & 0xfff);
    let budget = u64::from(h[138]) + 1;

    let mut mem = FlatMemory::new(INTERP_PAGES);
    let base = 0x1000 + at;
    mem.load(base, code);
    let start = Regs {
        gpr,
        rip: base,
        rflags: (flags & 0x0cd5) | 0x202,
        ..Regs::default()
    };
    let mut regs = start.clone();
    let mut cache = DecodeCache::new();
    let limits = |budget| RunLimits {
        budget,
        tsc: 0,
        tsc_aux: 0,
    };
    let r = run(&mut regs, &mut mem, &mut cache, limits(budget));
    if r.retired > budget {
        return Err(format!("retired {} of a budget of {budget}", r.retired));
    }
    match r.exit {
        Exit::Budget if r.retired != budget => {
            return Err(format!("budget exit after {} of {budget}", r.retired))
        }
        Exit::Exception(f) if f.vector >= 32 || f.cr2.is_some() != (f.vector == 14) => {
            return Err(format!("exception {f:?}"))
        }
        Exit::Exception(f) if r.retired == 0 && f.vector != 1 && f.vector != 3 && regs != start => {
            return Err(format!(
                "a fault ({f:?}) on the first instruction changed registers"
            ))
        }
        _ => {}
    }

    // The same, one instruction at a time with a fresh cache each time.
    let mut mem2 = FlatMemory::new(INTERP_PAGES);
    mem2.load(base, code);
    let mut regs2 = start;
    let mut retired = 0;
    let mut exit = Exit::Budget;
    while retired < budget {
        let mut fresh = DecodeCache::new();
        let s = run(
            &mut regs2,
            &mut mem2,
            &mut fresh,
            RunLimits {
                budget: 1,
                tsc: retired * hypervisor::cpu::TSC_PER_INSN,
                tsc_aux: 0,
            },
        );
        retired += s.retired;
        if !matches!(s.exit, Exit::Budget) {
            exit = s.exit;
            break;
        }
        if s.retired == 0 {
            break;
        }
    }
    if retired != r.retired || exit != r.exit {
        return Err(format!(
            "one run: {} retired, {:?}; single steps: {retired}, {exit:?}",
            r.retired, r.exit
        ));
    }
    if regs2 != regs {
        return Err(format!(
            "registers differ: one run {regs:?}, single steps {regs2:?}"
        ));
    }
    if mem2.bytes() != mem.bytes() {
        return Err("memory differs between one run and single steps".to_owned());
    }
    // Running on from wherever it stopped must not panic either.
    let _ = run(&mut regs, &mut mem, &mut cache, limits(64));
    Ok(())
}
