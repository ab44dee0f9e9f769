//! Mat-vec throughput in GB/s of weight bytes, per weight type, at 4096×4096 and 4096×14336
//! (rows × cols), with 1 and 2 rayon threads, next to a STREAM-style copy bandwidth measured
//! in the same run.
//!
//!   cargo bench -p apr-engine --bench matvec                # everything
//!   cargo bench -p apr-engine --bench matvec -- 'matvec/q4_K'  # a filter
//!
//! Criterion reports "thrpt" in GiB/s (2^30 B/s); docs/perf.md converts to GB/s (10^9).
//! Under `cargo test --benches` (no `--bench` flag) the sizes shrink so the run is quick.

use std::hint::black_box;
use std::time::Duration;

use apr_engine::kernels::synth::{activations, weight_bytes, weights, Style};
use apr_engine::kernels::{
    active_isa, kernel_isa, matmul_quantized, Activations, QMatrix, WEIGHT_TYPES,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn pools() -> Vec<(usize, rayon::ThreadPool)> {
    [1usize, 2]
        .into_iter()
        .map(|t| {
            (
                t,
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap(),
            )
        })
        .collect()
}

/// STREAM "Copy" (a[i] = b[i]) over arrays far larger than the last-level cache; bytes
/// counted as STREAM does: one read plus one write per element.
fn stream_copy(c: &mut Criterion) {
    // 1 GiB per array: the L3 here is 300 MiB.
    let len = if bench_mode() { 1 << 28 } else { 1 << 16 };
    let src: Vec<f32> = (0..len).map(|i| i as f32).collect();
    let mut dst = vec![0f32; len];
    let mut g = c.benchmark_group("stream_copy");
    g.throughput(Throughput::Bytes((2 * 4 * len) as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for (t, pool) in pools() {
        g.bench_function(BenchmarkId::from_parameter(format!("{t}t")), |b| {
            b.iter(|| {
                pool.install(|| {
                    dst.par_chunks_mut(1 << 20)
                        .zip(src.par_chunks(1 << 20))
                        .for_each(|(d, s)| d.copy_from_slice(s));
                });
                black_box(&dst);
            })
        });
    }
    g.finish();
}

fn matvec(c: &mut Criterion) {
    let shapes: &[(usize, usize)] = if bench_mode() {
        &[(4096, 4096), (4096, 14336)]
    } else {
        &[(64, 512)]
    };
    eprintln!("active ISA: {}", active_isa());
    let pools = pools();
    let mut g = c.benchmark_group("matvec");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for ty in WEIGHT_TYPES {
        eprintln!("{ty}: kernel {}", kernel_isa(active_isa(), ty));
        for &(rows, cols) in shapes {
            let w = weights(ty, rows, cols, Style::Random, 1);
            let bytes = weight_bytes(&w, ty, rows, cols);
            let m = QMatrix::new(ty, rows, cols, bytes).unwrap();
            let x = activations(cols, Style::Random, 2);
            let mut out = vec![0f32; rows];
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            for (t, pool) in &pools {
                let id = BenchmarkId::new(ty.name(), format!("{rows}x{cols}/{t}t"));
                g.bench_function(id, |b| {
                    // Activation quantization is part of every matvec, as in ggml.
                    b.iter(|| {
                        pool.install(|| {
                            let acts = Activations::quantize(ty, &x, cols).unwrap();
                            matmul_quantized(active_isa(), &m, &acts, &mut out).unwrap();
                        });
                        black_box(&out);
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, stream_copy, matvec);
criterion_main!(benches);
