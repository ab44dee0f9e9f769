//! SiLU as llama.cpp's x86 CPU build computes it: `x / (1 + e^(−x))` with ggml's
//! vectorised exponential for every element a 16-lane AVX-512 step of a row covers, and C
//! `expf` for the rest of the row (`ggml_vec_swiglu_f32` in `ggml-cpu/vec.cpp`).
//!
//! The exponential is ggml's `ggml_v_expf`, AVX-512 variant (`ggml-cpu/vec.h`, "adapted
//! from ARM's optimized routines"; max error 1.45 + 0.5 ulp). Its formula, as facts:
//!
//! * `n = (x·log2e + 1.5·2^23) − 1.5·2^23` (the FMA rounds x·log2e to an integer),
//! * `b = x − n·ln2`, with ln2 split in two (`0x1.62e4p-1`, `0x1.7f7d1cp-20`), two FMAs,
//! * `j = ((c5·b + c4)·b² + (c3·b + c2))·b² + (c1·b + 1)`, every step an FMA,
//! * `e^x = j·2^n` (`vscalefps`: one rounding), except `|n| > 192`: +∞ for n > 0, else 0.
//!
//! Every step is an IEEE operation with one rounding (FMAs included), so the same
//! expressions give the same bits on any CPU; the AVX2 build of ggml uses another variant.
//! Checked bit for bit against llama.cpp's own SiLU of its own inputs (`llama_ops.rs`).

/// ggml's AVX-512 lane count: elements past the last multiple of it in a row take C `expf`.
const GGML_LANES: usize = 16;

const SHIFT: u32 = 0x4b40_0000; // 0x1.8p23
const LOG2E: u32 = 0x3fb8_aa3b; // 0x1.715476p+0
const LN2_HI: u32 = 0x3f31_7200; // 0x1.62e4p-1
const LN2_LO: u32 = 0x35bf_be8e; // 0x1.7f7d1cp-20
const C5: u32 = 0x3c07_2010; // 0x1.0e4020p-7
const C4: u32 = 0x3d2b_9f17; // 0x1.573e2ep-5
const C3: u32 = 0x3e2a_af33; // 0x1.555e66p-3
const C2: u32 = 0x3eff_fedb; // 0x1.fffdb6p-2
const C1: u32 = 0x3f7f_fff6; // 0x1.ffffecp-1

/// `ggml_v_expf`, one lane.
#[inline(always)]
fn ggml_expf(x: f32) -> f32 {
    let c = f32::from_bits;
    let shift = c(SHIFT);
    let z = x.mul_add(c(LOG2E), shift);
    let n = z - shift;
    let b = (-n).mul_add(c(LN2_LO), (-n).mul_add(c(LN2_HI), x));
    let u = b * b;
    let j = c(C5).mul_add(b, c(C4)).mul_add(u, c(C3).mul_add(b, c(C2)));
    let j = j.mul_add(u, c(C1).mul_add(b, 1.0));
    if n.abs() > 192.0 {
        return if n > 0.0 { f32::INFINITY } else { 0.0 };
    }
    // j·2^n rounded once: exact in f64 (|n| ≤ 192), then one rounding to f32, as
    // `vscalefps` does (denormal and infinite results included).
    let scale = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    (f64::from(j) * scale) as f32
}

/// SiLU of one lane of ggml's vector loop.
#[inline(always)]
fn silu_vector_lane(x: f32) -> f32 {
    x / (1.0 + ggml_expf(0.0 - x))
}

/// SiLU of one element past the vector loop (`ggml_silu_f32`: C `expf`).
#[inline(always)]
fn silu_tail(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `x = silu(x)` over rows of `row` values, in place.
#[inline(always)]
fn silu_rows_with(x: &mut [f32], row: usize) {
    let vector = row - row % GGML_LANES;
    for r in x.chunks_exact_mut(row) {
        let (v, t) = r.split_at_mut(vector);
        v.iter_mut().for_each(|a| *a = silu_vector_lane(*a));
        t.iter_mut().for_each(|a| *a = silu_tail(*a));
    }
}

/// [`silu_rows_with`] compiled with AVX-512 and FMA instructions (the same results).
///
/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn silu_rows_avx512(x: &mut [f32], row: usize) {
    silu_rows_with(x, row);
}

/// [`silu_rows_with`] compiled with AVX2 and FMA instructions (the same results).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_rows_avx2(x: &mut [f32], row: usize) {
    silu_rows_with(x, row);
}

/// `x = silu(x)` over whole rows of `row` values, as ggml's `swiglu` computes the SiLU
/// before multiplying by the up projection (that product is one more f32 multiply).
///
/// # Panics
/// If `row` is 0 or does not divide `x.len()`.
pub fn silu_rows(x: &mut [f32], row: usize) {
    assert!(
        row > 0 && x.len().is_multiple_of(row),
        "silu_rows: {} values in rows of {row}",
        x.len()
    );
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            // SAFETY: both features were just detected.
            return unsafe { silu_rows_avx512(x, row) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: both features were just detected.
            return unsafe { silu_rows_avx2(x, row) };
        }
    }
    silu_rows_with(x, row);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expf_is_close_to_exp_and_saturates_like_ggml() {
        // Normal results only (below e^-87.3 they are subnormal, with fewer bits).
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, exact) = (ggml_expf(x), f64::from(x).exp());
            let rel = ((f64::from(ours) - exact) / exact).abs();
            // 1.45 + 0.5 ulp (ggml's bound) is below 2 ulp = 2^-22 relative.
            assert!(rel < 2.0f64.powi(-22), "{x}: {ours} vs {exact}");
            x += 0.0137;
        }
        assert_eq!(ggml_expf(0.0), 1.0);
        assert_eq!(ggml_expf(200.0), f32::INFINITY);
        assert_eq!(ggml_expf(-200.0), 0.0);
        assert!(ggml_expf(f32::NAN).is_nan());
    }

    #[test]
    fn every_tier_gives_the_same_bits() {
        let row = 16 * 5 + 7;
        let x: Vec<f32> = (0..row * 3)
            .map(|i| (i as f32 * 0.37).sin() * 9.0)
            .collect();
        let mut plain = x.clone();
        silu_rows_with(&mut plain, row);
        let mut best = x.clone();
        silu_rows(&mut best, row);
        assert!(plain
            .iter()
            .zip(&best)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        // The tail of each row is C expf's SiLU, the rest ggml's vector SiLU.
        let last = row - 1;
        assert_eq!(plain[last].to_bits(), silu_tail(x[last]).to_bits());
        assert_eq!(plain[0].to_bits(), silu_vector_lane(x[0]).to_bits());
    }
}
