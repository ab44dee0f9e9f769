//! AArch64 NEON dot products, bit-identical to their twins in [`super::dot_scalar`].
//!
//! Integer work is vectorised (integer sums are exact in any order): `vmull_s8` widens each
//! i8 × i8 product to i16 (exact, even −128 · −128) and `vpadalq_s16` adds pairs of them into
//! i32 lanes, so nothing saturates and the activation quants may be any byte. Only baseline
//! ARMv8-A Advanced SIMD is used (no `dotprod`), so one tier covers every AArch64 CPU.
//!
//! The float work follows the summation contract exactly. For the quantized types the
//! per-block float step (a few flops per 32 or 256 values) is the twin's own
//! [`lanes_sum`] with its block expressions. The float types keep the 32 lanes in eight
//! `float32x4_t` with a separate multiply and add: never `vfmaq_f32`, which is fused.
//!
//! Block layouts are those documented on the scalar `isum_*` functions (ggml's
//! `ggml/src/ggml-quants.c`); the code is ours.

use core::arch::aarch64::*;
use core::arch::asm;

use half::{bf16, f16};

use super::dot_scalar::{
    block_d, block_dm, block_k, block_k_min, k4_min_sum, lanes_sum, reduce_float_lanes, FLOAT_LANES,
};
use crate::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use crate::quant::scales::{q3_k_scales, scales_mins_k4};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The first 16 bytes of `s` (panics if shorter).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn u8x16(s: &[u8]) -> uint8x16_t {
    let s = &s[..16];
    // SAFETY: `s` has 16 readable bytes; `vld1q_u8` needs no alignment.
    vld1q_u8(s.as_ptr())
}

/// The first 16 signed bytes of `s` (panics if shorter).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn i8x16(s: &[i8]) -> int8x16_t {
    let s = &s[..16];
    // SAFETY: `s` has 16 readable bytes; `vld1q_s8` needs no alignment.
    vld1q_s8(s.as_ptr())
}

/// The first 4 floats of `s` (panics if shorter).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn f32x4(s: &[f32]) -> float32x4_t {
    let s = &s[..4];
    // SAFETY: `s` has 4 readable f32; `vld1q_f32` needs only f32 alignment, which `s` has.
    vld1q_f32(s.as_ptr())
}

/// The first 4 raw 16-bit values of `s` (panics if shorter).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn u16x4<T: bytemuck::Pod>(s: &[T]) -> uint16x4_t {
    let s: &[u16] = bytemuck::cast_slice(&s[..4]);
    // SAFETY: `s` has 4 readable u16 (the cast checked size and alignment).
    vld1_u16(s.as_ptr())
}

/// Reinterprets unsigned bytes as signed (all values used here are below 128).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn s8(v: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(v)
}

/// `acc` plus Σ a·b over 16 i8 pairs, in 4 partial i32 sums (exact).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot16(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    let hi = vmull_high_s8(a, b);
    vpadalq_s16(vpadalq_s16(acc, lo), hi)
}

/// Σ a·y over 32 values given as two halves of 16 (exact).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot32(a: (int8x16_t, int8x16_t), y: &[i8; 32]) -> i32 {
    let acc = dot16(vdupq_n_s32(0), a.0, i8x16(&y[..16]));
    vaddvq_s32(dot16(acc, a.1, i8x16(&y[16..])))
}

/// Σ m·b over 16 pairs of an unsigned byte `m` and an i16 `b` (exact).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_u8_i16(m: uint8x16_t, b: &[i16; 16]) -> i32 {
    let m0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m)));
    let m1 = vreinterpretq_s16_u16(vmovl_high_u8(m));
    // SAFETY: `b` has 16 readable i16; `vld1q_s16` needs only i16 alignment.
    let (b0, b1) = (vld1q_s16(b.as_ptr()), vld1q_s16(b[8..].as_ptr()));
    let s = vmull_s16(vget_low_s16(m0), vget_low_s16(b0));
    let s = vmlal_high_s16(s, m0, b0);
    let s = vmlal_s16(s, vget_low_s16(m1), vget_low_s16(b1));
    vaddvq_s32(vmlal_high_s16(s, m1, b1))
}

/// Low and high nibbles of 16 bytes, each 0..=15.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn nibbles(b: uint8x16_t) -> (uint8x16_t, uint8x16_t) {
    (vandq_u8(b, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(b))
}

/// The four 2-bit fields of 16 bytes: element k holds bits 2k..2k+2 of each byte.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn crumbs(b: uint8x16_t) -> [uint8x16_t; 4] {
    let m3 = vdupq_n_u8(3);
    [
        vandq_u8(b, m3),
        vandq_u8(vshrq_n_u8::<2>(b), m3),
        vandq_u8(vshrq_n_u8::<4>(b), m3),
        vshrq_n_u8::<6>(b),
    ]
}

/// Byte j of 16 is 0xFF where bit j of the little-endian `bits` is set, 0 where clear.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn bit_masks(bits: [u8; 2]) -> uint8x16_t {
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let spread = vcombine_u8(vdup_n_u8(bits[0]), vdup_n_u8(bits[1]));
    vtstq_u8(spread, u8x16(&BIT))
}

/// `16` in the bytes of `v` whose bit `bit` is set, 0 elsewhere (a fifth bit, in place).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn fifth_bit(v: uint8x16_t, bit: usize) -> uint8x16_t {
    let set = vtstq_u8(v, vdupq_n_u8(1 << bit));
    vandq_u8(set, vdupq_n_u8(16))
}

// ---------------------------------------------------------------------------------------
// Per-block integer dot products (exact; the same sums as the scalar `isum_*`).
// ---------------------------------------------------------------------------------------

/// The 32 values of a Q5_0/Q5_1 block, 0..=31: nibble | fifth bit << 4.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q5_values(qs: &[u8; 16], qh: [u8; 4]) -> (uint8x16_t, uint8x16_t) {
    let (lo, hi) = nibbles(u8x16(qs));
    let sixteen = vdupq_n_u8(16);
    let h_lo = vandq_u8(bit_masks([qh[0], qh[1]]), sixteen);
    let h_hi = vandq_u8(bit_masks([qh[2], qh[3]]), sixteen);
    (vorrq_u8(lo, h_lo), vorrq_u8(hi, h_hi))
}

/// Q4_0 × Q8_0: Σ (q − 8)·y.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum_q4_0(x: &BlockQ4_0, y: &BlockQ8_0) -> i32 {
    let (lo, hi) = nibbles(u8x16(&x.qs));
    let eight = vdupq_n_s8(8);
    dot32((vsubq_s8(s8(lo), eight), vsubq_s8(s8(hi), eight)), &y.qs)
}

/// Q4_1 × Q8_1: Σ q·y.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum_q4_1(x: &BlockQ4_1, y: &BlockQ8_1) -> i32 {
    let (lo, hi) = nibbles(u8x16(&x.qs));
    dot32((s8(lo), s8(hi)), &y.qs)
}

/// Q5_0 × Q8_0: Σ (q − 16)·y.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum_q5_0(x: &BlockQ5_0, y: &BlockQ8_0) -> i32 {
    let (lo, hi) = q5_values(&x.qs, x.qh);
    let sixteen = vdupq_n_s8(16);
    dot32(
        (vsubq_s8(s8(lo), sixteen), vsubq_s8(s8(hi), sixteen)),
        &y.qs,
    )
}

/// Q5_1 × Q8_1: Σ q·y.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum_q5_1(x: &BlockQ5_1, y: &BlockQ8_1) -> i32 {
    let (lo, hi) = q5_values(&x.qs, x.qh);
    dot32((s8(lo), s8(hi)), &y.qs)
}

/// Q8_0 × Q8_0: Σ x·y.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum_q8_0(x: &BlockQ8_0, y: &BlockQ8_0) -> i32 {
    dot32((i8x16(&x.qs[..16]), i8x16(&x.qs[16..])), &y.qs)
}

/// `acc` plus `scale`·Σ q·y over the 16 values of sub-block `sub` (exact).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn add_sub16(
    acc: int32x4_t,
    q: int8x16_t,
    y: &BlockQ8K,
    sub: usize,
    scale: i32,
) -> int32x4_t {
    let s = dot16(vdupq_n_s32(0), q, i8x16(&y.qs[16 * sub..]));
    vmlaq_n_s32(acc, s, scale)
}

/// Q2_K × Q8_K: (Σ_j scale_j · Σ_{16} q·y, Σ_j min_j · bsum_j).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum_q2_k(x: &BlockQ2K, y: &BlockQ8K) -> (i32, i32) {
    let mut acc = vdupq_n_s32(0);
    for n in 0..2 {
        for h in 0..2 {
            let q = crumbs(u8x16(&x.qs[32 * n + 16 * h..]));
            for (k, qk) in q.into_iter().enumerate() {
                let sub = 8 * n + 2 * k + h;
                acc = add_sub16(acc, s8(qk), y, sub, (x.scales[sub] & 0x0F) as i32);
            }
        }
    }
    let mins = vshrq_n_u8::<4>(u8x16(&x.scales));
    (vaddvq_s32(acc), dot_u8_i16(mins, &y.bsums))
}

/// Q3_K × Q8_K: Σ_j (scale_j − 32) · Σ_{16} q·y, q = 2 low bits − (4 if the hmask bit is
/// clear).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum_q3_k(x: &BlockQ3K, y: &BlockQ8K) -> i32 {
    let sc = q3_k_scales(&x.scales);
    let four = vdupq_n_u8(4);
    let mut acc = vdupq_n_s32(0);
    for n in 0..2 {
        for h in 0..2 {
            let lows = crumbs(u8x16(&x.qs[32 * n + 16 * h..]));
            let hm = u8x16(&x.hmask[16 * h..]);
            for (k, low) in lows.into_iter().enumerate() {
                let set = vtstq_u8(hm, vdupq_n_u8(1 << (4 * n + k)));
                let q = vsubq_s8(s8(low), s8(vbicq_u8(four, set)));
                let sub = 8 * n + 2 * k + h;
                acc = add_sub16(acc, q, y, sub, sc[sub] as i32);
            }
        }
    }
    vaddvq_s32(acc)
}

/// Σ_j sc_j · Σ_{32} q·y over the 8 sub-blocks of 32 of a Q4_K/Q5_K super-block, where
/// `values(j, h)` gives bytes 16h..16h+16 of sub-blocks 2j and 2j + 1.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn k4_isum(
    sc: &[u8; 8],
    y: &BlockQ8K,
    values: impl Fn(usize, usize) -> (uint8x16_t, uint8x16_t),
) -> i32 {
    let mut acc = vdupq_n_s32(0);
    for j in 0..4 {
        for h in 0..2 {
            let (lo, hi) = values(j, h);
            acc = add_sub16(acc, s8(lo), y, 4 * j + h, sc[2 * j] as i32);
            acc = add_sub16(acc, s8(hi), y, 4 * j + 2 + h, sc[2 * j + 1] as i32);
        }
    }
    vaddvq_s32(acc)
}

/// Q4_K × Q8_K: (Σ_j scale_j · Σ_{32} q·y, Σ_j min_j · (bsum_2j + bsum_2j+1)).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum_q4_k(x: &BlockQ4K, y: &BlockQ8K) -> (i32, i32) {
    let (sc, mn) = scales_mins_k4(&x.scales);
    let isum = k4_isum(&sc, y, |j, h| nibbles(u8x16(&x.qs[32 * j + 16 * h..])));
    (isum, k4_min_sum(&mn, &y.bsums))
}

/// Q5_K × Q8_K: as Q4_K, with bits 2j and 2j + 1 of `qh` as the fifth bits.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum_q5_k(x: &BlockQ5K, y: &BlockQ8K) -> (i32, i32) {
    let (sc, mn) = scales_mins_k4(&x.scales);
    let isum = k4_isum(&sc, y, |j, h| {
        let (lo, hi) = nibbles(u8x16(&x.qs[32 * j + 16 * h..]));
        let qh = u8x16(&x.qh[16 * h..]);
        (
            vorrq_u8(lo, fifth_bit(qh, 2 * j)),
            vorrq_u8(hi, fifth_bit(qh, 2 * j + 1)),
        )
    });
    (isum, k4_min_sum(&mn, &y.bsums))
}

/// Q6_K × Q8_K: Σ_j scale_j · Σ_{16} (q − 32)·y, q = 4 low bits | 2 high bits << 4.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn isum_q6_k(x: &BlockQ6K, y: &BlockQ8K) -> i32 {
    let thirty_two = vdupq_n_s8(32);
    let mut acc = vdupq_n_s32(0);
    for n in 0..2 {
        for h in 0..2 {
            let (a_lo, a_hi) = nibbles(u8x16(&x.ql[64 * n + 16 * h..]));
            let (b_lo, b_hi) = nibbles(u8x16(&x.ql[64 * n + 32 + 16 * h..]));
            let high = crumbs(u8x16(&x.qh[32 * n + 16 * h..]));
            for (part, low) in [a_lo, b_lo, a_hi, b_hi].into_iter().enumerate() {
                let q = vorrq_u8(low, vshlq_n_u8::<4>(high[part]));
                let sub = 8 * n + 2 * part + h;
                let q = vsubq_s8(s8(q), thirty_two);
                acc = add_sub16(acc, q, y, sub, x.scales[sub] as i32);
            }
        }
    }
    vaddvq_s32(acc)
}

// ---------------------------------------------------------------------------------------
// The dot products: NEON integer sums, the twin's float step.
// ---------------------------------------------------------------------------------------

/// Generates a quantized kernel: `value` is the block's float value from the NEON integer
/// sums, in the scalar twin's expression; [`lanes_sum`] accumulates it into lane `i % 8`.
macro_rules! neon_kernel {
    ($(#[$doc:meta])* $name:ident, $w:ty, $a:ty, |$x:ident, $y:ident| $value:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must support NEON (`Isa::Neon.is_supported()`).
        #[target_feature(enable = "neon")]
        pub unsafe fn $name(x: &[$w], y: &[$a]) -> f32 {
            let y = &y[..x.len()];
            lanes_sum(x.len(), |i| {
                let ($x, $y) = (&x[i], &y[i]);
                $value
            })
        }
    };
}

neon_kernel!(
    /// Q4_0 · Q8_0.
    vec_dot_q4_0_q8_0, BlockQ4_0, BlockQ8_0,
    |x, y| block_d(x.d.to_f32(), y.d.to_f32(), isum_q4_0(x, y))
);
neon_kernel!(
    /// Q4_1 · Q8_1.
    vec_dot_q4_1_q8_1, BlockQ4_1, BlockQ8_1,
    |x, y| block_dm(x.d.to_f32(), x.m.to_f32(), y.d.to_f32(), y.s.to_f32(), isum_q4_1(x, y))
);
neon_kernel!(
    /// Q5_0 · Q8_0.
    vec_dot_q5_0_q8_0, BlockQ5_0, BlockQ8_0,
    |x, y| block_d(x.d.to_f32(), y.d.to_f32(), isum_q5_0(x, y))
);
neon_kernel!(
    /// Q5_1 · Q8_1.
    vec_dot_q5_1_q8_1, BlockQ5_1, BlockQ8_1,
    |x, y| block_dm(x.d.to_f32(), x.m.to_f32(), y.d.to_f32(), y.s.to_f32(), isum_q5_1(x, y))
);
neon_kernel!(
    /// Q8_0 · Q8_0.
    vec_dot_q8_0_q8_0, BlockQ8_0, BlockQ8_0,
    |x, y| block_d(x.d.to_f32(), y.d.to_f32(), isum_q8_0(x, y))
);
neon_kernel!(
    /// Q2_K · Q8_K.
    vec_dot_q2_k_q8_k, BlockQ2K, BlockQ8K,
    |x, y| {
        let (isum, imin) = isum_q2_k(x, y);
        block_k_min(y.d, x.d.to_f32(), x.dmin.to_f32(), isum, imin)
    }
);
neon_kernel!(
    /// Q3_K · Q8_K.
    vec_dot_q3_k_q8_k, BlockQ3K, BlockQ8K,
    |x, y| block_k(y.d, x.d.to_f32(), isum_q3_k(x, y))
);
neon_kernel!(
    /// Q4_K · Q8_K.
    vec_dot_q4_k_q8_k, BlockQ4K, BlockQ8K,
    |x, y| {
        let (isum, imin) = isum_q4_k(x, y);
        block_k_min(y.d, x.d.to_f32(), x.dmin.to_f32(), isum, imin)
    }
);
neon_kernel!(
    /// Q5_K · Q8_K.
    vec_dot_q5_k_q8_k, BlockQ5K, BlockQ8K,
    |x, y| {
        let (isum, imin) = isum_q5_k(x, y);
        block_k_min(y.d, x.d.to_f32(), x.dmin.to_f32(), isum, imin)
    }
);
neon_kernel!(
    /// Q6_K · Q8_K.
    vec_dot_q6_k_q8_k, BlockQ6K, BlockQ8K,
    |x, y| block_k(y.d, x.d.to_f32(), isum_q6_k(x, y))
);

// ---------------------------------------------------------------------------------------
// Float weights · f32 activations: 8 accumulators of 4 = the 32 float lanes.
// ---------------------------------------------------------------------------------------

/// Σ w·x on the 32 float lanes: `load(i)` gives weights i..i+4 widened exactly to f32,
/// `w(i)` weight i alone (for the tail).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn float_dot(
    x: &[f32],
    load: impl Fn(usize) -> float32x4_t,
    w: impl Fn(usize) -> f32,
) -> f32 {
    let n = x.len();
    let mut acc = [vdupq_n_f32(0.0); FLOAT_LANES / 4];
    let chunks = n / FLOAT_LANES;
    for c in 0..chunks {
        for (j, a) in acc.iter_mut().enumerate() {
            let i = FLOAT_LANES * c + 4 * j;
            // A rounded product, then a rounded sum (no `vfmaq_f32`).
            *a = vaddq_f32(*a, vmulq_f32(load(i), f32x4(&x[i..])));
        }
    }
    let mut lanes = [0f32; FLOAT_LANES];
    for (j, a) in acc.iter().enumerate() {
        let out = &mut lanes[4 * j..4 * j + 4];
        // SAFETY: `out` has room for 4 f32; `vst1q_f32` needs only f32 alignment.
        vst1q_f32(out.as_mut_ptr(), *a);
    }
    for i in chunks * FLOAT_LANES..n {
        lanes[i % FLOAT_LANES] += w(i) * x[i];
    }
    reduce_float_lanes(&lanes)
}

/// Four f16 widened exactly to f32 by `fcvtl` (base ARMv8-A Advanced SIMD; the same IEEE
/// conversion as `f16::to_f32`). Panics if `s` has fewer than 4 values.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn f16x4(s: &[f16]) -> float32x4_t {
    let h = u16x4(s);
    let out: float32x4_t;
    // SAFETY: `fcvtl` only reads and writes the two vector registers named.
    asm!(
        "fcvtl {out:v}.4s, {h:v}.4h",
        h = in(vreg) h,
        out = lateout(vreg) out,
        options(pure, nomem, nostack, preserves_flags)
    );
    out
}

/// Four bf16 widened exactly to f32: the bits shifted into the top half of each f32.
/// Panics if `s` has fewer than 4 values.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn bf16x4(s: &[bf16]) -> float32x4_t {
    vreinterpretq_f32_u32(vshll_n_u16::<16>(u16x4(s)))
}

/// F32 · f32.
///
/// # Safety
/// The CPU must support NEON (`Isa::Neon.is_supported()`).
#[target_feature(enable = "neon")]
pub unsafe fn vec_dot_f32_f32(w: &[f32], x: &[f32]) -> f32 {
    float_dot(&x[..w.len()], |i| f32x4(&w[i..]), |i| w[i])
}

/// F16 · f32.
///
/// # Safety
/// The CPU must support NEON (`Isa::Neon.is_supported()`).
#[target_feature(enable = "neon")]
pub unsafe fn vec_dot_f16_f32(w: &[f16], x: &[f32]) -> f32 {
    float_dot(&x[..w.len()], |i| f16x4(&w[i..]), |i| w[i].to_f32())
}

/// BF16 · f32.
///
/// # Safety
/// The CPU must support NEON (`Isa::Neon.is_supported()`).
#[target_feature(enable = "neon")]
pub unsafe fn vec_dot_bf16_f32(w: &[bf16], x: &[f32]) -> f32 {
    float_dot(&x[..w.len()], |i| bf16x4(&w[i..]), |i| w[i].to_f32())
}
