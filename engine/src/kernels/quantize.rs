//! Activation quantization, once per matmul, as ggml's CPU backend does it before its dot
//! products (`vec_dot_type`).
//!
//! Formulas are ggml's reference versions (llama.cpp `ggml/src/ggml-quants.c`,
//! `quantize_row_q8_0_ref`, `quantize_row_q8_1_ref`, `quantize_row_q8_K_ref`):
//! * Q8_0 / Q8_1: `amax = max |x|`, `d = amax / 127`, `q = round(x / d)` (C `roundf`, ties away
//!   from zero) with `id = 1/d` (0 when d = 0); `d` stored as f16. Q8_1 also stores
//!   `s = f16(d · Σq)` with the f32 `d`.
//! * Q8_K: `max` = the value of largest magnitude (sign kept), `iscale = −127 / max`,
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

/// C `roundf` (half away from zero) of `v`, for `|v| < 2^23`, as an integer; NaN gives 0.
/// Written with an integer cast and an exact subtraction so it compiles to plain SSE2, not a
/// library call (the quantizers call it once per activation).
#[inline]
fn round_away(v: f32) -> i32 {
    let a = v.abs();
    let t = a as i32;
    // `a − t` is exact: `t` is `a` with its fraction bits cleared.
    let r = if a - t as f32 >= 0.5 {
        t.saturating_add(1)
    } else {
        t
    };
    if v < 0.0 {
        -r
    } else {
        r
    }
}

/// ggml's `nearest_int`: round half to even by adding and subtracting 1.5·2^23, exact for
/// `|v| < 2^22` up to the sign of a zero result; NaN stays NaN (and casts to 0).
#[inline]
fn nearest_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// Quantizes `x` (32 values per block) into `y`.
///
/// # Panics
/// If `x.len() != 32 * y.len()`.
pub fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    assert_eq!(x.len(), QK8_0 * y.len(), "q8_0: values/blocks mismatch");
    for (xb, yb) in x.chunks_exact(QK8_0).zip(y.iter_mut()) {
        let amax = xb.iter().fold(0f32, |m, v| c_max(m, v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f16::from_f32(d);
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = round_away(v * id) as i8;
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
        let amax = xb.iter().fold(0f32, |m, v| c_max(m, v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f16::from_f32(d);
        let mut sum = 0i32;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = round_away(v * id) as i8;
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
    use super::{nearest_even, round_away};

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
    fn round_away_is_c_roundf() {
        for v in sweep() {
            assert_eq!(round_away(v), v.round() as i32, "{v:e}");
        }
        assert_eq!(round_away(f32::NAN), 0);
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
