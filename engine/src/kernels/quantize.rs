//! Activation quantization, once per matmul, as ggml's CPU backend does it before its dot
//! products (`vec_dot_type`).
//!
//! * Q8_0 / Q8_1 follow ggml's x86 CPU quantizer, the one that produced our llama.cpp
//!   references (`quantize_row_q8_0` / `quantize_row_q8_1` in `ggml-cpu/arch/x86/quants.c`,
//!   its AVX/AVX2 branch; the repack path's `ggml_quantize_mat_q8_0_4x8` mirrors it):
//!   `amax = max |x|`, `d = amax / 127` stored as f16, `id = 127 / amax` (0 when amax = 0),
//!   `q = x · id` rounded half to even (`_mm256_round_ps`, `_MM_ROUND_NEAREST`). Q8_1 also
//!   stores `s = f16(d · Σq)` with the f32 `d`. ggml's portable `quantize_row_q8_0_ref`
//!   (`ggml/src/ggml-quants.c`) differs in two places, `id = 1/d` and C `roundf` (ties away
//!   from zero), and so disagrees with the x86 backend on some quants.
//! * Q8_K: `quantize_row_q8_K_ref`, which is also what the x86 backend calls: `max` = the
//!   value of largest magnitude (sign kept), `iscale = −127 / max`,
//!   `q = min(127, nearest_int(iscale · x))` (round half to even), `d = 1 / iscale` as f32,
//!   `bsums[j]` = Σ of the 16 quants of group j. An all-zero block has d = 0, q = 0.
//!
//! Every quant produced here lies in −127..=127 (never −128); the SIMD dot products rely on
//! that (the `sign` trick of `_mm256_sign_epi8` cannot negate −128).

use half::f16;

use crate::quant::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1, QK8_0, QK8_1, QK_K};

/// ggml's `MAX(a, b)` = `a > b ? a : b` (a NaN `b` wins, as in C).
#[inline]
fn c_max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// Round half to even by adding and subtracting 1.5·2^23 (ggml's `nearest_int`; also what
/// `_MM_ROUND_NEAREST` does), exact for `|v| < 2^22` up to the sign of a zero result; NaN
/// stays NaN (and casts to 0). Compiles to two SSE additions, not a library call.
#[inline]
fn nearest_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// `(d, id)` of one 32-value block: `d = amax / 127`, `id = 127 / amax` (0 for an all-zero
/// block), as ggml's x86 quantizer computes them.
#[inline]
fn scales(xb: &[f32]) -> (f32, f32) {
    let amax = xb.iter().fold(0f32, |m, v| c_max(m, v.abs()));
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    (amax / 127.0, id)
}

/// Quantizes `x` (32 values per block) into `y`.
///
/// # Panics
/// If `x.len() != 32 * y.len()`.
pub fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    assert_eq!(x.len(), QK8_0 * y.len(), "q8_0: values/blocks mismatch");
    for (xb, yb) in x.chunks_exact(QK8_0).zip(y.iter_mut()) {
        let (d, id) = scales(xb);
        yb.d = f16::from_f32(d);
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = nearest_even(v * id) as i8;
        }
    }
}

/// Quantizes `x` (32 values per block) into `y`, with `s = d · Σq`.
///
/// # Panics
/// If `x.len() != 32 * y.len()`.
pub fn quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    assert_eq!(x.len(), QK8_1 * y.len(), "q8_1: values/blocks mismatch");
    for (xb, yb) in x.chunks_exact(QK8_1).zip(y.iter_mut()) {
        let (d, id) = scales(xb);
        yb.d = f16::from_f32(d);
        let mut sum = 0i32;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = nearest_even(v * id) as i8;
            sum += *q as i32;
        }
        yb.s = f16::from_f32(sum as f32 * d);
    }
}

/// Quantizes `x` (256 values per block) into `y`.
///
/// # Panics
/// If `x.len() != 256 * y.len()`.
pub fn quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8K]) {
    assert_eq!(x.len(), QK_K * y.len(), "q8_K: values/blocks mismatch");
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            yb.d = 0.0;
            yb.qs = [0; QK_K];
            yb.bsums = [0; QK_K / 16];
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            // nearest_int: round half to even (the 1.5·2^23 trick), then clamp at 127.
            *q = (nearest_even(iscale * v) as i32).min(127) as i8;
        }
        for (s, g) in yb.bsums.iter_mut().zip(yb.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| q as i16).sum();
        }
        yb.d = 1.0 / iscale;
    }
}

#[cfg(test)]
mod tests {
    use super::nearest_even;

    /// Every f32 in ±(0..160) at the spacing of the values near 0.5, 1.5, …, and many more:
    /// the quantizers' inputs never exceed 127 in magnitude (`v · 127/amax`).
    fn sweep() -> impl Iterator<Item = f32> {
        let ends = (0..=160).flat_map(|i| {
            let h = i as f32 + 0.5;
            let mut around = vec![h, i as f32];
            let (mut up, mut down) = (h, h);
            for _ in 0..64 {
                up = f32::from_bits(up.to_bits() + 1);
                down = f32::from_bits(down.to_bits() - 1);
                around.extend([up, down]);
            }
            around
        });
        let grid = (0..2_000_000).map(|i| i as f32 * 8.0e-5);
        ends.chain(grid).flat_map(|v| [v, -v])
    }

    #[test]
    fn nearest_even_is_round_half_even() {
        for v in sweep() {
            // Compared as the integers the quantizer keeps (−0.5 gives +0, not −0).
            assert_eq!(nearest_even(v) as i32, v.round_ties_even() as i32, "{v:e}");
        }
        assert!(nearest_even(f32::NAN).is_nan());
    }
}
