//! AVX-512 VNNI dot products (at 256-bit width, `vpdpbusd` on `ymm` via AVX-512VL),
//! bit-identical to their twins in [`super::dot_scalar`].
//!
//! `vpdpbusd` multiplies unsigned by signed bytes and adds groups of four into i32 lanes
//! without the i16 saturation of `maddubs`, so unsigned quants need no sign trick:
//! Σ(q − o)·y = dpbusd(q, y) − dpbusd(o, y), exact. The float work is the AVX2 tier's (same
//! lanes, same expressions), so the results equal the scalar twin's bit for bit.
//! Types without a kernel here run their AVX2 kernel (see `dispatch`). Every kernel enables
//! exactly the features `Isa::Avx512.is_supported` checks.

use core::arch::x86_64::*;

use super::dot_avx2::{f16_to_f32, load256i, nibbles};
use super::dot_scalar::{block_d, block_dm};
use crate::quant::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};

/// Σ u·y over 32 bytes as 8 partial i32 sums (u unsigned, y signed; exact).
#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx512vnni")]
unsafe fn dpbusd(u: __m256i, y: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, y)
}

/// The 5-bit quants of Q5_0/Q5_1: `q` plus 16 in byte j where bit j of `qh` is set.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn with_fifth_bit(q: __m256i, qh: [u8; 4]) -> __m256i {
    _mm256_mask_add_epi8(q, u32::from_le_bytes(qh), q, _mm256_set1_epi8(16))
}

legacy_kernel!(
    /// Q8_0 · Q8_0: dpbusd(|x|, sign(y, x)). `y` must not hold −128.
    target = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    vec_dot_q8_0_q8_0, BlockQ8_0, BlockQ8_0,
    isum = |xb, yb| {
        let x = load256i(xb.qs.as_ptr());
        let y = load256i(yb.qs.as_ptr());
        dpbusd(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
    },
    value = |xg, yg, tot| _mm256_mul_ps(dd!(xg, yg), tot),
    tail = |x, y, s| block_d(f16_to_f32(x.d), f16_to_f32(y.d), s)
);

legacy_kernel!(
    /// Q4_0 · Q8_0: Σq·y − 8·Σy.
    target = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    vec_dot_q4_0_q8_0, BlockQ4_0, BlockQ8_0,
    isum = |xb, yb| {
        let y = load256i(yb.qs.as_ptr());
        let qy = dpbusd(nibbles(xb.qs.as_ptr()), y);
        _mm256_sub_epi32(qy, dpbusd(_mm256_set1_epi8(8), y))
    },
    value = |xg, yg, tot| _mm256_mul_ps(dd!(xg, yg), tot),
    tail = |x, y, s| block_d(f16_to_f32(x.d), f16_to_f32(y.d), s)
);

legacy_kernel!(
    /// Q4_1 · Q8_1: Σq·y, min through `m·s`.
    target = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    vec_dot_q4_1_q8_1, BlockQ4_1, BlockQ8_1,
    isum = |xb, yb| dpbusd(nibbles(xb.qs.as_ptr()), load256i(yb.qs.as_ptr())),
    value = |xg, yg, tot| _mm256_add_ps(_mm256_mul_ps(dd!(xg, yg), tot), ms!(xg, yg)),
    tail = |x, y, s| block_dm(f16_to_f32(x.d), f16_to_f32(x.m), f16_to_f32(y.d), f16_to_f32(y.s), s)
);

legacy_kernel!(
    /// Q5_0 · Q8_0: Σq·y − 16·Σy with q = nibble | fifth bit << 4.
    target = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    vec_dot_q5_0_q8_0, BlockQ5_0, BlockQ8_0,
    isum = |xb, yb| {
        let q = with_fifth_bit(nibbles(xb.qs.as_ptr()), xb.qh);
        let y = load256i(yb.qs.as_ptr());
        _mm256_sub_epi32(dpbusd(q, y), dpbusd(_mm256_set1_epi8(16), y))
    },
    value = |xg, yg, tot| _mm256_mul_ps(dd!(xg, yg), tot),
    tail = |x, y, s| block_d(f16_to_f32(x.d), f16_to_f32(y.d), s)
);

legacy_kernel!(
    /// Q5_1 · Q8_1: Σq·y with 5-bit q, min through `m·s`.
    target = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    vec_dot_q5_1_q8_1, BlockQ5_1, BlockQ8_1,
    isum = |xb, yb| {
        let q = with_fifth_bit(nibbles(xb.qs.as_ptr()), xb.qh);
        dpbusd(q, load256i(yb.qs.as_ptr()))
    },
    value = |xg, yg, tot| _mm256_add_ps(_mm256_mul_ps(dd!(xg, yg), tot), ms!(xg, yg)),
    tail = |x, y, s| block_dm(f16_to_f32(x.d), f16_to_f32(x.m), f16_to_f32(y.d), f16_to_f32(y.s), s)
);
