//! Bit-identical results across runs and across rayon thread counts 1, 2, 3 and 8, for every
//! weight type, for mat-vec and mat-mat, on the active ISA tier.

use apr_engine::kernels::synth::{activations, weight_bytes, weights, Style};
use apr_engine::kernels::{active_isa, kernel_isa, matmul, QMatrix, WEIGHT_TYPES};

fn run(threads: usize, m: &QMatrix<'_>, x: &[f32], n: usize) -> Vec<u8> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut out = vec![0f32; n * m.rows()];
    pool.install(|| matmul(m, x, n, &mut out)).unwrap();
    bytemuck::cast_slice(&out).to_vec()
}

#[test]
fn identical_across_runs_and_thread_counts() {
    // 67 rows: not a multiple of the row chunk, so chunks are uneven.
    let rows = 67;
    for ty in WEIGHT_TYPES {
        let cols = 2 * 256;
        let w = weights(ty, rows, cols, Style::Random, 42);
        let m = QMatrix::new(ty, rows, cols, weight_bytes(&w, ty, rows, cols)).unwrap();
        for n in [1, 3] {
            let x = activations(n * cols, Style::Random, 7 + n as u64);
            let first = run(1, &m, &x, n);
            assert!(first.iter().any(|&b| b != 0), "{ty}: all-zero output");
            for threads in [1, 2, 3, 8] {
                for rep in 0..2 {
                    let got = run(threads, &m, &x, n);
                    assert!(
                        got == first,
                        "{ty} ({} kernel) n={n}: {threads} threads, run {rep} differs from 1 thread",
                        kernel_isa(active_isa(), ty)
                    );
                }
            }
        }
    }
}
