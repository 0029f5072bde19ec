//! Save and restore throughput on the model, in bytes of guest memory per second,
//! for a 64 MiB and a 1 GiB counter guest, next to a plain memcpy of the same size.
//!
//! - `save/mem`: the whole stream into a `Vec` (capacity kept between iterations);
//! - `save/devnull`: into `/dev/null` through a 1 MiB `BufWriter` (what `xi save` uses);
//! - `save/tmpfile`: into a file on `/tmp` through the same writer, then `fsync`;
//! - `restore/mem`: from the stream in memory into a new domain (destroyed afterwards,
//!   outside the measurement);
//! - `restore/file`: from the file on `/tmp` through a 1 MiB `BufReader`;
//! - `memcpy`: `copy_from_slice` of a buffer of the guest's size.
//!
//! The guest is suspended once; each save iteration runs
//! [`toolstack::save::save_stream`] on the suspended domain (no after-save action), so
//! every iteration does the full work of a non-live save.

use std::io::{BufReader, BufWriter, Write};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hypervisor::model::{Model, ModelConfig};
use hypervisor::DomId;
use toolstack::build::{build, BuildOptions, BuiltDomain, KernelImage};
use toolstack::config::{DomainConfig, KernelSpec};
use toolstack::restore::{restore, RestoreOptions};
use toolstack::save::{save_stream, xc, SaveOptions};
use toolstack::suspend;

const SIZES_MIB: [u64; 2] = [64, 1024];

/// A model with one suspended counter guest of `mib` MiB.
fn suspended_guest(mib: u64) -> (Model, DomId) {
    let pages = mib * 256;
    let mut m = Model::new(ModelConfig {
        // The guest, a restored copy of it, and room for Xen's own frames.
        machine_frames: 2 * pages + 16384,
    });
    let toy = guest_model::toy("counter", "pages=64 report=0").expect("toy");
    let image = KernelImage::from_flat(toy.bytes.clone(), toy.virt_base, toy.entry)
        .and_then(|i| i.with_hypercall_page(toy.hypercall_page))
        .expect("image");
    let mut cfg = DomainConfig::new("bench", mib, KernelSpec::Toy("counter".into()));
    cfg.extra = Some("pages=64 report=0".into());
    let d = build(&mut m, &cfg, &image, &BuildOptions::default(), None).expect("build");
    m.run(1_000_000);
    fill(&mut m, &d);
    suspend::suspend(&mut m, d.domid, suspend::DEFAULT_TIMEOUT_NS).expect("suspend");
    (m, d.domid)
}

/// Fills every page above the guest's bootstrap region (which the counter never
/// touches) with pseudo-random bytes, so the model's memory is real memory, not
/// never-touched zero pages that read from one cached frame.
fn fill(m: &mut Model, d: &BuiltDomain) {
    let first = d.layout.mapped.end_pfn().index();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut page = vec![0u8; 4096 * 1024];
    for chunk in d.p2m[first..].chunks(1024) {
        let buf = &mut page[..chunk.len() * 4096];
        for word in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        xc::write_frames(m, d.domid, chunk, buf)
            .expect("foreign write")
            .expect("every page written");
    }
}

fn opts() -> SaveOptions<'static> {
    SaveOptions {
        already_suspended: true,
        ..SaveOptions::default()
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("xi-bench-")
        .tempdir_in("/tmp")
        .expect("temp dir on /tmp");
    // `XI_BENCH_MAX_MIB=64` skips the 1 GiB guest (its setup takes a while).
    let max_mib: u64 = std::env::var("XI_BENCH_MAX_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    for mib in SIZES_MIB.into_iter().filter(|&m| m <= max_mib) {
        let bytes = mib << 20;
        let mut g = c.benchmark_group(format!("saverestore/{mib}MiB"));
        g.throughput(Throughput::Bytes(bytes));
        g.sample_size(10);
        if mib >= 1024 {
            g.warm_up_time(Duration::from_millis(500));
            g.measurement_time(Duration::from_secs(10));
        } else {
            g.measurement_time(Duration::from_secs(5));
        }

        {
            let src: Vec<u8> = (0..bytes).map(|i| (i * 7 + (i >> 12)) as u8).collect();
            let mut dst = vec![0u8; bytes as usize];
            g.bench_function("memcpy", |b| {
                b.iter(|| {
                    dst.copy_from_slice(&src);
                    std::hint::black_box(&dst);
                });
            });
        }

        let (mut m, dom) = suspended_guest(mib);
        let mut stream = Vec::new();
        g.bench_function(BenchmarkId::new("save", "mem"), |b| {
            b.iter(|| {
                stream.clear();
                save_stream(&mut m, dom, &mut stream, &mut opts()).expect("save");
            });
        });
        g.bench_function(BenchmarkId::new("save", "devnull"), |b| {
            b.iter(|| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .expect("/dev/null");
                let mut w = BufWriter::with_capacity(1 << 20, f);
                save_stream(&mut m, dom, &mut w, &mut opts()).expect("save");
                w.flush().expect("flush");
            });
        });
        let path = dir.path().join("bench.xl");
        g.bench_function(BenchmarkId::new("save", "tmpfile"), |b| {
            b.iter(|| {
                let f = std::fs::File::create(&path).expect("create");
                let mut w = BufWriter::with_capacity(1 << 20, f);
                save_stream(&mut m, dom, &mut w, &mut opts()).expect("save");
                w.flush().expect("flush");
                w.get_ref().sync_all().expect("fsync");
            });
        });
        g.bench_function(BenchmarkId::new("restore", "mem"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let r =
                        restore(&mut m, &stream[..], RestoreOptions::default()).expect("restore");
                    total += t.elapsed();
                    xc::destroy(&mut m, r.domid).expect("destroy");
                }
                total
            });
        });
        g.bench_function(BenchmarkId::new("restore", "file"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let f = std::fs::File::open(&path).expect("open");
                    let r = restore(
                        &mut m,
                        BufReader::with_capacity(1 << 20, f),
                        RestoreOptions::default(),
                    )
                    .expect("restore");
                    total += t.elapsed();
                    xc::destroy(&mut m, r.domid).expect("destroy");
                }
                total
            });
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
