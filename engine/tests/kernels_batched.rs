//! Products with many activation rows (prefill) against the scalar twin, bit for bit, on
//! every ISA tier this CPU has. With several rows, the 32-value block types run the batched
//! kernels (register tiles of 4 weight rows × 4 activation rows, interleaved blocks), so the
//! shapes here cover whole tiles, leftover rows and tokens, several parallel chunks, partial
//! and whole 8-block groups, and adversarial blocks (extreme and subnormal scales, all-max
//! quants, zeros with negative scales).

use apr_engine::kernels::synth::{activations, weight_bytes, weights, Style};
use apr_engine::kernels::{matmul_with, Isa, QMatrix, WEIGHT_TYPES};
use apr_engine::quant::GgmlType;

fn same_bits(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()))
}

fn check(ty: GgmlType, style: Style, rows: usize, cols: usize, n: usize, seed: u64) {
    let w = weights(ty, rows, cols, style, seed);
    let m = QMatrix::new(ty, rows, cols, weight_bytes(&w, ty, rows, cols)).unwrap();
    let x = activations(n * cols, style, seed ^ 0x5A5A);
    let mut want = vec![0f32; n * rows];
    matmul_with(Isa::Scalar, &m, &x, n, &mut want).unwrap();
    let nonzero = want.iter().filter(|v| **v != 0.0).count();
    assert!(
        nonzero * 2 > want.len(),
        "{ty} {style:?}: degenerate test data ({nonzero} nonzero)"
    );
    for isa in Isa::available() {
        let mut got = vec![0f32; n * rows];
        matmul_with(isa, &m, &x, n, &mut got).unwrap();
        if let Some(i) = same_bits(&want, &got) {
            panic!(
                "{ty} {style:?} {isa} rows {rows} cols {cols} n {n} seed {seed}: out[{i}] = {:e} ({:#010x}), scalar {:e} ({:#010x})",
                got[i],
                got[i].to_bits(),
                want[i],
                want[i].to_bits()
            );
        }
    }
}

fn block_types() -> impl Iterator<Item = GgmlType> {
    WEIGHT_TYPES.into_iter().filter(|t| t.is_quantized())
}

#[test]
fn batched_matches_scalar_on_random_blocks() {
    for ty in block_types() {
        let b = ty.block_size();
        // 70 rows: two full parallel chunks of 32 and a chunk of 6 (one tile and two rows).
        for (cols, n) in [(b * 19, 9), (b * 16, 4), (b * 3, 6), (b * 8, 5)] {
            check(ty, Style::Random, 70, cols, n, n as u64);
        }
    }
}

#[test]
fn batched_matches_scalar_on_adversarial_blocks() {
    for ty in block_types() {
        for seed in 200..204 {
            check(ty, Style::Adversarial, 37, ty.block_size() * 11, 7, seed);
        }
    }
}
