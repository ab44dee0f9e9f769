//! Accuracy against an f64 product of the dequantized weights with the f32 activations:
//! NMSE = Σ(a−b)²/Σa² ≤ 5e-4, ggml test-backend-ops' threshold for MUL_MAT
//! (tests/test-backend-ops.cpp, `test_mul_mat::max_nmse_err`). The error measured here is
//! the activation quantization (Q8_0/Q8_1/Q8_K) plus f32 accumulation; weights are exact.

use apr_engine::kernels::synth::{activations, weight_bytes, weights, Style};
use apr_engine::kernels::{matmul_with, Isa, QMatrix, WEIGHT_TYPES};
use apr_engine::quant::{dequantize, GgmlType};

/// ggml test-backend-ops MUL_MAT NMSE threshold.
const MUL_MAT_NMSE: f64 = 5e-4;

fn nmse(reference: &[f64], got: &[f32]) -> f64 {
    let num: f64 = reference
        .iter()
        .zip(got)
        .map(|(a, b)| (a - *b as f64).powi(2))
        .sum();
    let den: f64 = reference.iter().map(|a| a * a).sum();
    num / den
}

#[test]
fn matmul_is_within_mul_mat_nmse_of_f64_reference() {
    let (rows, cols, n) = (48, 1024, 2);
    for ty in WEIGHT_TYPES {
        let w = weights(ty, rows, cols, Style::Random, 5);
        let bytes = weight_bytes(&w, ty, rows, cols);
        let mut deq = vec![0f32; rows * cols];
        dequantize(ty, bytes, &mut deq).unwrap();
        let x = activations(n * cols, Style::Random, 9);
        let mut reference = vec![0f64; n * rows];
        for t in 0..n {
            for r in 0..rows {
                reference[t * rows + r] = (0..cols)
                    .map(|c| deq[r * cols + c] as f64 * x[t * cols + c] as f64)
                    .sum();
            }
        }
        let m = QMatrix::new(ty, rows, cols, bytes).unwrap();
        for isa in Isa::available() {
            let mut out = vec![0f32; n * rows];
            matmul_with(isa, &m, &x, n, &mut out).unwrap();
            let e = nmse(&reference, &out);
            eprintln!("{ty:>5} {isa:>6}: NMSE {e:.3e}");
            assert!(
                e <= MUL_MAT_NMSE,
                "{ty} {isa}: NMSE {e:e} > {MUL_MAT_NMSE:e}"
            );
        }
    }
}

#[test]
fn float_weights_are_nearly_exact() {
    // No activation quantization for F32/F16/BF16: only f32 rounding remains.
    let (rows, cols) = (16, 4096);
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        let w = weights(ty, rows, cols, Style::Random, 1);
        let bytes = weight_bytes(&w, ty, rows, cols);
        let mut deq = vec![0f32; rows * cols];
        dequantize(ty, bytes, &mut deq).unwrap();
        let x = activations(cols, Style::Random, 2);
        let reference: Vec<f64> = (0..rows)
            .map(|r| {
                (0..cols)
                    .map(|c| deq[r * cols + c] as f64 * x[c] as f64)
                    .sum()
            })
            .collect();
        let m = QMatrix::new(ty, rows, cols, bytes).unwrap();
        let mut out = vec![0f32; rows];
        matmul_with(Isa::Scalar, &m, &x, 1, &mut out).unwrap();
        let e = nmse(&reference, &out);
        assert!(e < 1e-10, "{ty}: NMSE {e:e}");
    }
}
