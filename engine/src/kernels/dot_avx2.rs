//! AVX2 + FMA + F16C dot products, bit-identical to their twins in [`super::dot_scalar`].
//!
//! Integer work is vectorised however is fastest (integer sums are exact in any order); the
//! float work follows the scalar summation contract exactly: per block `t = (dx·dy)·isum`
//! (plus `m·s`, or minus the min term), accumulated into lane `i % 8` of one `__m256` with a
//! separate multiply and add (no FMA), then the 8 lanes folded as [`reduce_lanes`] does.
//!
//! Every kernel requires the activation quants to lie in −127..=127 (what
//! [`super::quantize`] produces): the `_mm256_sign_epi8` trick cannot negate −128.
//! Weight quants may be any byte.
//!
//! Bit tricks (nibble unpacking, fifth-bit expansion, `maddubs` with a sign transfer) are the
//! well-known ones of ggml's x86 kernels (`ggml-cpu/arch/x86/quants.c`); the code is ours.

use core::arch::x86_64::*;

use half::{bf16, f16};

use super::dot_scalar::{
    block_d, block_dm, block_k, block_k_min, reduce_float_lanes, reduce_lanes, FLOAT_LANES, LANES,
};
use crate::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Shuffle masks for `_mm_shuffle_epi8` on 16 sub-block scales: mask k puts scale 2k in
/// bytes 0..8 and scale 2k+1 in bytes 8..16, so `cvtepi8_epi16` gives a `__m256i` whose low
/// lane multiplies the first 16 values of a 32-value vector and whose high lane the next 16.
static PAIR_MASKS: [[u8; 16]; 8] = {
    let mut m = [[0u8; 16]; 8];
    let mut k = 0;
    while k < 8 {
        let mut b = 0;
        while b < 16 {
            m[k][b] = (2 * k + b / 8) as u8;
            b += 1;
        }
        k += 1;
    }
    m
};

/// Sum of the 8 i32 lanes (exact).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    _mm_cvtsi128_si32(s)
}

/// The i32 totals of eight 8-lane partial sums, as one vector `[Σp0, …, Σp7]` (exact).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn totals8(p: &[__m256i; 8]) -> __m256i {
    let h01 = _mm256_hadd_epi32(p[0], p[1]);
    let h23 = _mm256_hadd_epi32(p[2], p[3]);
    let h45 = _mm256_hadd_epi32(p[4], p[5]);
    let h67 = _mm256_hadd_epi32(p[6], p[7]);
    let a = _mm256_hadd_epi32(h01, h23); // [p0 p1 p2 p3 (low halves) | same (high halves)]
    let b = _mm256_hadd_epi32(h45, h67);
    let lo = _mm256_permute2x128_si256(a, b, 0x20);
    let hi = _mm256_permute2x128_si256(a, b, 0x31);
    _mm256_add_epi32(lo, hi)
}

/// Eight f16 values (exact widening, as `f16::to_f32`).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn f16x8(h: [f16; 8]) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr() as *const __m128i))
}

/// One f16 widened with F16C (exact, as `f16::to_f32`, without its run-time dispatch).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn f16_to_f32(h: f16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h.to_bits() as i32)))
}

/// i8 × i8 dot of 32 pairs as 8 partial i32 sums. `y` must not hold −128.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8(x: __m256i, y: __m256i) -> __m256i {
    let p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// u8 × i8 dot of 32 pairs as 8 partial i32 sums; `x` ≤ 63 so `maddubs` cannot saturate.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dot_u8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

/// 16 packed nibbles → 32 bytes: low nibbles (values 0..16), then high nibbles (16..32),
/// from one broadcast load (the upper half shifted right by 4).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn nibbles(p: *const u8) -> __m256i {
    let b = _mm256_broadcastsi128_si256(_mm_loadu_si128(p as *const __m128i));
    let b = _mm256_srlv_epi64(b, _mm256_setr_epi64x(0, 0, 4, 4));
    _mm256_and_si256(b, _mm256_set1_epi8(0x0F))
}

/// The 32 bits of `qh` as 32 bytes: 0xFF where bit j is set, 0 where clear.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn bits_to_bytes(qh: [u8; 4]) -> __m256i {
    let v = _mm256_set1_epi32(i32::from_le_bytes(qh));
    // Byte j takes byte j / 8 of qh …
    let spread = _mm256_setr_epi64x(
        0x0000_0000_0000_0000,
        0x0101_0101_0101_0101,
        0x0202_0202_0202_0202,
        0x0303_0303_0303_0303,
    );
    let v = _mm256_shuffle_epi8(v, spread);
    // … and is all ones iff bit j % 8 is set: OR every other bit in, compare with 0xFF.
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe_u64 as i64);
    _mm256_cmpeq_epi8(_mm256_or_si256(v, others), _mm256_set1_epi8(-1))
}

#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn load256(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn load256i(p: *const i8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// Stores the 8 accumulator lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn lanes_of(acc: __m256) -> [f32; LANES] {
    let mut l = [0f32; LANES];
    _mm256_storeu_ps(l.as_mut_ptr(), acc);
    l
}

/// Generates a 32-value-block kernel: groups of 8 blocks go through `$isum` (8 partial i32
/// sums per block), [`totals8`] and one vector float step; leftover blocks use the scalar
/// per-block functions (same lanes, same expressions).
macro_rules! legacy_kernel {
    (
        $(#[$doc:meta])* $name:ident, $w:ty, $a:ty,
        isum = |$xb:ident, $yb:ident| $isum:expr,
        value = |$xg:ident, $yg:ident, $tot:ident| $value:expr,
        tail = |$xt:ident, $yt:ident, $st:ident| $tail:expr
    ) => {
        legacy_kernel!(
            $(#[$doc])* target = "avx2,fma,f16c", $name, $w, $a,
            isum = |$xb, $yb| $isum,
            value = |$xg, $yg, $tot| $value,
            tail = |$xt, $yt, $st| $tail
        );
    };
    (
        $(#[$doc:meta])* target = $features:literal, $name:ident, $w:ty, $a:ty,
        isum = |$xb:ident, $yb:ident| $isum:expr,
        value = |$xg:ident, $yg:ident, $tot:ident| $value:expr,
        tail = |$xt:ident, $yt:ident, $st:ident| $tail:expr
    ) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must support the features in the `target_feature` attribute.
        #[target_feature(enable = $features)]
        pub unsafe fn $name(x: &[$w], y: &[$a]) -> f32 {
            use $crate::kernels::dot_avx2::{hsum_i32, lanes_of, totals8};
            use $crate::kernels::dot_scalar::{reduce_lanes, LANES};
            let n = x.len();
            let y = &y[..n];
            let mut acc = _mm256_setzero_ps();
            let groups = n / LANES;
            for g in 0..groups {
                let $xg = &x[LANES * g..LANES * g + LANES];
                let $yg = &y[LANES * g..LANES * g + LANES];
                let mut p = [_mm256_setzero_si256(); LANES];
                for k in 0..LANES {
                    let $xb = &$xg[k];
                    let $yb = &$yg[k];
                    p[k] = $isum;
                }
                let $tot = _mm256_cvtepi32_ps(totals8(&p));
                acc = _mm256_add_ps(acc, $value);
            }
            let mut lanes = lanes_of(acc);
            // Leftover blocks: the same integer sum in SIMD, the float step in scalar.
            for i in groups * LANES..n {
                let ($xb, $yb) = (&x[i], &y[i]);
                let $st = hsum_i32($isum);
                let ($xt, $yt) = ($xb, $yb);
                lanes[i % LANES] += $tail;
            }
            reduce_lanes(&lanes)
        }
    };
}

/// `dx·dy` for a group of 8 blocks.
macro_rules! dd {
    ($xg:ident, $yg:ident) => {
        _mm256_mul_ps(
            $crate::kernels::dot_avx2::f16x8(core::array::from_fn(|k| $xg[k].d)),
            $crate::kernels::dot_avx2::f16x8(core::array::from_fn(|k| $yg[k].d)),
        )
    };
}

/// `m·s` for a group of 8 Q4_1/Q5_1 × Q8_1 blocks.
macro_rules! ms {
    ($xg:ident, $yg:ident) => {
        _mm256_mul_ps(
            $crate::kernels::dot_avx2::f16x8(core::array::from_fn(|k| $xg[k].m)),
            $crate::kernels::dot_avx2::f16x8(core::array::from_fn(|k| $yg[k].s)),
        )
    };
}

// ---------------------------------------------------------------------------------------
// 32-value blocks
// ---------------------------------------------------------------------------------------

legacy_kernel!(
    /// Q8_0 · Q8_0.
    vec_dot_q8_0_q8_0, BlockQ8_0, BlockQ8_0,
    isum = |xb, yb| dot_i8(load256i(xb.qs.as_ptr()), load256i(yb.qs.as_ptr())),
    value = |xg, yg, tot| _mm256_mul_ps(dd!(xg, yg), tot),
    tail = |x, y, s| block_d(f16_to_f32(x.d), f16_to_f32(y.d), s)
);

legacy_kernel!(
    /// Q4_0 · Q8_0: (q − 8) as i8, then the signed dot.
    vec_dot_q4_0_q8_0, BlockQ4_0, BlockQ8_0,
    isum = |xb, yb| {
        let q = _mm256_sub_epi8(nibbles(xb.qs.as_ptr()), _mm256_set1_epi8(8));
        dot_i8(q, load256i(yb.qs.as_ptr()))
    },
    value = |xg, yg, tot| _mm256_mul_ps(dd!(xg, yg), tot),
    tail = |x, y, s| block_d(f16_to_f32(x.d), f16_to_f32(y.d), s)
);

legacy_kernel!(
    /// Q4_1 · Q8_1: unsigned nibbles, min through `m·s`.
    vec_dot_q4_1_q8_1, BlockQ4_1, BlockQ8_1,
    isum = |xb, yb| dot_u8(nibbles(xb.qs.as_ptr()), load256i(yb.qs.as_ptr())),
    value = |xg, yg, tot| _mm256_add_ps(_mm256_mul_ps(dd!(xg, yg), tot), ms!(xg, yg)),
    tail = |x, y, s| block_dm(f16_to_f32(x.d), f16_to_f32(x.m), f16_to_f32(y.d), f16_to_f32(y.s), s)
);

legacy_kernel!(
    /// Q5_0 · Q8_0: nibble − (16 where the fifth bit is clear), then the signed dot.
    vec_dot_q5_0_q8_0, BlockQ5_0, BlockQ8_0,
    isum = |xb, yb| {
        let clear = _mm256_andnot_si256(bits_to_bytes(xb.qh), _mm256_set1_epi8(16));
        let q = _mm256_sub_epi8(nibbles(xb.qs.as_ptr()), clear);
        dot_i8(q, load256i(yb.qs.as_ptr()))
    },
    value = |xg, yg, tot| _mm256_mul_ps(dd!(xg, yg), tot),
    tail = |x, y, s| block_d(f16_to_f32(x.d), f16_to_f32(y.d), s)
);

legacy_kernel!(
    /// Q5_1 · Q8_1: unsigned 5-bit values, min through `m·s`.
    vec_dot_q5_1_q8_1, BlockQ5_1, BlockQ8_1,
    isum = |xb, yb| {
        let high = _mm256_and_si256(bits_to_bytes(xb.qh), _mm256_set1_epi8(16));
        let q = _mm256_or_si256(nibbles(xb.qs.as_ptr()), high);
        dot_u8(q, load256i(yb.qs.as_ptr()))
    },
    value = |xg, yg, tot| _mm256_add_ps(_mm256_mul_ps(dd!(xg, yg), tot), ms!(xg, yg)),
    tail = |x, y, s| block_dm(f16_to_f32(x.d), f16_to_f32(x.m), f16_to_f32(y.d), f16_to_f32(y.s), s)
);

// ---------------------------------------------------------------------------------------
// K-quants: SIMD integer sums per super-block, then the scalar float step per super-block.
// ---------------------------------------------------------------------------------------

/// The i16 scale vector for values 32p..32p+32 of a group of 16-value sub-blocks.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pair_scales(sc: __m128i, p: usize) -> __m256i {
    let mask = _mm_loadu_si128(PAIR_MASKS[p].as_ptr() as *const __m128i);
    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, mask))
}

/// The 8 scales (bytes 0..8) and 8 mins (bytes 8..16) of a Q4_K/Q5_K super-block, unpacked
/// as four little-endian words, with 32-bit masks instead of 16 calls of `get_scale_min_k4` (same layout; checked against
/// `quant::scales_mins_k4` by a unit test below).
#[inline(always)]
fn k4_scales_mins_words(q: &[u8; 12]) -> [u32; 4] {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let w = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (a, b, c) = (w(0), w(1), w(2));
    // scales 0..4: low 6 bits of bytes 0..4; scales 4..8: low nibble of bytes 8..12 with the
    // top 2 bits of bytes 0..4 above it. Mins likewise from bytes 4..8 and the high nibbles.
    let sc_lo = a & LOW6;
    let sc_hi = (c & LOW4) | (((a >> 6) & LOW2) << 4);
    let mn_lo = b & LOW6;
    let mn_hi = ((c >> 4) & LOW4) | (((b >> 6) & LOW2) << 4);
    [sc_lo, sc_hi, mn_lo, mn_hi]
}

/// Byte masks for `_mm256_shuffle_epi8` that broadcast i16 word w of a 128-bit lane.
static WORD_MASKS: [[u8; 32]; 8] = {
    let mut m = [[0u8; 32]; 8];
    let mut w = 0;
    while w < 8 {
        let mut b = 0;
        while b < 32 {
            m[w][b] = (2 * w + b % 2) as u8;
            b += 1;
        }
        w += 1;
    }
    m
};

/// The i16 sub-block scales of a Q4_K/Q5_K super-block, broadcast in both lanes, and the
/// exact min term Σ_j min_j·(bsum_2j + bsum_2j+1).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn k4_scales_and_min(xs: &[u8; 12], bsums: &[i16; 16]) -> (__m256i, i32) {
    let [a, b, c, d] = k4_scales_mins_words(xs);
    let packed = _mm_set_epi32(d as i32, c as i32, b as i32, a as i32);
    let sm = _mm256_cvtepu8_epi16(packed);
    let bs = _mm256_loadu_si256(bsums.as_ptr() as *const __m256i);
    let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    let prod = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), pairs);
    let s = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    let scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
    (scales, _mm_cvtsi128_si32(s))
}

/// Sub-block scale `w` of [`k4_scales_and_min`]'s vector, in all 16 i16 slots.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn k4_scale(scales: __m256i, w: usize) -> __m256i {
    _mm256_shuffle_epi8(
        scales,
        _mm256_loadu_si256(WORD_MASKS[w].as_ptr() as *const __m256i),
    )
}

/// Σ_j sc_j·bsum_j over the 16 sub-blocks as 8 partial i32 sums: 16 i8 scales times the
/// activation bsums (exact).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn scaled_bsums(sc: __m128i, bsums: &[i16; 16]) -> __m256i {
    let bs = _mm256_loadu_si256(bsums.as_ptr() as *const __m256i);
    _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), bs)
}

/// Generates a K-quant kernel from `$partial`, which returns for one super-block 8 partial
/// i32 sums whose total is `isum`, and `imin` (0 for the types without a min term).
/// Groups of 8 super-blocks are finished together: [`totals8`] gives the 8 `isum`s, and one
/// vector step computes `(yd·d)·isum − (yd·dmin)·imin` per lane, exactly the scalar
/// expression ([`block_k_min`] / [`block_k`]); leftover super-blocks take the scalar step.
macro_rules! kquant_kernel {
    ($(#[$doc:meta])* $name:ident, $w:ty, $partial:ident, min = $min:tt) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must support AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $name(x: &[$w], y: &[BlockQ8K]) -> f32 {
            let n = x.len();
            let y = &y[..n];
            let mut acc = _mm256_setzero_ps();
            let groups = n / LANES;
            for g in 0..groups {
                let xg = &x[LANES * g..LANES * g + LANES];
                let yg = &y[LANES * g..LANES * g + LANES];
                let mut p = [_mm256_setzero_si256(); LANES];
                let mut mins = [0i32; LANES];
                for k in 0..LANES {
                    (p[k], mins[k]) = $partial(&xg[k], &yg[k]);
                }
                let isum = _mm256_cvtepi32_ps(totals8(&p));
                let yd = _mm256_loadu_ps(core::array::from_fn::<f32, LANES, _>(|k| yg[k].d).as_ptr());
                let d = f16x8(core::array::from_fn(|k| xg[k].d));
                let t = kquant_kernel!(@value $min, yd, d, isum, xg, mins);
                acc = _mm256_add_ps(acc, t);
            }
            let mut lanes = lanes_of(acc);
            for i in groups * LANES..n {
                let (s, imin) = $partial(&x[i], &y[i]);
                lanes[i % LANES] += kquant_kernel!(@tail $min, x[i], y[i], hsum_i32(s), imin);
            }
            reduce_lanes(&lanes)
        }
    };
    (@value true, $yd:ident, $d:ident, $isum:ident, $xg:ident, $mins:ident) => {{
        let dmin = f16x8(core::array::from_fn(|k| $xg[k].dmin));
        let im = _mm256_cvtepi32_ps(_mm256_loadu_si256($mins.as_ptr() as *const __m256i));
        let t = _mm256_mul_ps(_mm256_mul_ps($yd, $d), $isum);
        _mm256_sub_ps(t, _mm256_mul_ps(_mm256_mul_ps($yd, dmin), im))
    }};
    (@value false, $yd:ident, $d:ident, $isum:ident, $xg:ident, $mins:ident) => {{
        let _ = $mins;
        _mm256_mul_ps(_mm256_mul_ps($yd, $d), $isum)
    }};
    (@tail true, $x:expr, $y:expr, $isum:expr, $imin:expr) => {
        block_k_min($y.d, f16_to_f32($x.d), f16_to_f32($x.dmin), $isum, $imin)
    };
    (@tail false, $x:expr, $y:expr, $isum:expr, $imin:expr) => {{
        let _ = $imin;
        block_k($y.d, f16_to_f32($x.d), $isum)
    }};
}

/// Q2_K partial sums: 2-bit q times the low-nibble scales; mins from the high nibbles.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q2_k_partial(xb: &BlockQ2K, yb: &BlockQ8K) -> (__m256i, i32) {
    let m3 = _mm256_set1_epi8(3);
    let raw = _mm_loadu_si128(xb.scales.as_ptr() as *const __m128i);
    let sc = _mm_and_si128(raw, _mm_set1_epi8(0x0F));
    let mn = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F));
    let mut sumi = _mm256_setzero_si256();
    for n in 0..2 {
        let qv = load256(xb.qs.as_ptr().add(32 * n));
        for k in 0..4 {
            let q = _mm256_and_si256(_mm256_srl_epi16(qv, _mm_cvtsi32_si128(2 * k as i32)), m3);
            let yv = load256i(yb.qs.as_ptr().add(128 * n + 32 * k));
            let p16 = _mm256_maddubs_epi16(q, yv);
            let s16 = pair_scales(sc, 4 * n + k);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, s16));
        }
    }
    (sumi, hsum_i32(scaled_bsums(mn, &yb.bsums)))
}

/// The 16 6-bit Q3_K scales as 32-bit words (byte i = scale i, unsigned), unpacked with masks
/// instead of the per-scale loop of `quant::q3_k_scales` (same layout; unit test below).
#[inline(always)]
fn q3_k_scale_words(q: &[u8; 12]) -> [u32; 4] {
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let w = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (a, b, c) = (w(0), w(1), w(2));
    // Low nibbles: scales 0..8 from the low nibbles of bytes 0..8, 8..16 from the high ones;
    // top 2 bits: bits 2·(i/4).. of byte 8 + i % 4.
    [
        (a & LOW4) | ((c & LOW2) << 4),
        (b & LOW4) | (((c >> 2) & LOW2) << 4),
        ((a >> 4) & LOW4) | (((c >> 4) & LOW2) << 4),
        ((b >> 4) & LOW4) | (((c >> 6) & LOW2) << 4),
    ]
}

/// The 16 Q3_K scales minus 32, as i8 in a vector.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q3_k_scales_vec(q: &[u8; 12]) -> __m128i {
    let [a, b, c, d] = q3_k_scale_words(q);
    let v = _mm_set_epi32(d as i32, c as i32, b as i32, a as i32);
    _mm_sub_epi8(v, _mm_set1_epi8(32))
}

/// Q3_K partial sums: q' = low 2 bits + 4·hmask bit (0..7); the −4 offset through the bsums:
/// Σ_j sc_j·Σ(q' − 4)·y = Σ_j sc_j·Σq'·y − 4·Σ_j sc_j·bsum_j (exact).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q3_k_partial(xb: &BlockQ3K, yb: &BlockQ8K) -> (__m256i, i32) {
    let m3 = _mm256_set1_epi8(3);
    let four = _mm256_set1_epi8(4);
    let sc = q3_k_scales_vec(&xb.scales);
    let hm = load256(xb.hmask.as_ptr());
    let mut sumi = _mm256_setzero_si256();
    for n in 0..2 {
        let qv = load256(xb.qs.as_ptr().add(32 * n));
        for k in 0..4 {
            let low = _mm256_and_si256(_mm256_srl_epi16(qv, _mm_cvtsi32_si128(2 * k as i32)), m3);
            let bit = _mm256_set1_epi8((1u8 << (4 * n + k)) as i8);
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit);
            let q = _mm256_or_si256(low, _mm256_and_si256(set, four));
            let yv = load256i(yb.qs.as_ptr().add(128 * n + 32 * k));
            let p16 = _mm256_maddubs_epi16(q, yv);
            let s16 = pair_scales(sc, 4 * n + k);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, s16));
        }
    }
    let offset = _mm256_slli_epi32(scaled_bsums(sc, &yb.bsums), 2);
    (_mm256_sub_epi32(sumi, offset), 0)
}

/// Q4_K partial sums: nibbles times the 6-bit scales; the min term from the bsums.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q4_k_partial(xb: &BlockQ4K, yb: &BlockQ8K) -> (__m256i, i32) {
    let m4 = _mm256_set1_epi8(0x0F);
    let (scales, imin) = k4_scales_and_min(&xb.scales, &yb.bsums);
    let mut sumi = _mm256_setzero_si256();
    for j in 0..4 {
        let bits = load256(xb.qs.as_ptr().add(32 * j));
        let lo = _mm256_and_si256(bits, m4);
        let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        let yl = load256i(yb.qs.as_ptr().add(64 * j));
        let yh = load256i(yb.qs.as_ptr().add(64 * j + 32));
        let pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, yl), k4_scale(scales, 2 * j));
        let ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yh), k4_scale(scales, 2 * j + 1));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
    }
    (sumi, imin)
}

/// Q5_K partial sums: as Q4_K with the fifth bit from `qh`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q5_k_partial(xb: &BlockQ5K, yb: &BlockQ8K) -> (__m256i, i32) {
    let m4 = _mm256_set1_epi8(0x0F);
    let sixteen = _mm256_set1_epi8(16);
    let (scales, imin) = k4_scales_and_min(&xb.scales, &yb.bsums);
    let hbits = load256(xb.qh.as_ptr());
    let mut sumi = _mm256_setzero_si256();
    for j in 0..4 {
        let bits = load256(xb.qs.as_ptr().add(32 * j));
        let bl = _mm256_set1_epi8((1u8 << (2 * j)) as i8);
        let bh = _mm256_set1_epi8((1u8 << (2 * j + 1)) as i8);
        let hl = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, bl), bl);
        let hh = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, bh), bh);
        let lo = _mm256_or_si256(_mm256_and_si256(bits, m4), _mm256_and_si256(hl, sixteen));
        let hi = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
            _mm256_and_si256(hh, sixteen),
        );
        let yl = load256i(yb.qs.as_ptr().add(64 * j));
        let yh = load256i(yb.qs.as_ptr().add(64 * j + 32));
        let pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, yl), k4_scale(scales, 2 * j));
        let ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yh), k4_scale(scales, 2 * j + 1));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
    }
    (sumi, imin)
}

/// Q6_K partial sums: q (0..63) from 4 low + 2 high bits; the −32 offset through the bsums:
/// Σ_j sc_j·Σ(q − 32)·y = Σ_j sc_j·Σq·y − 32·Σ_j sc_j·bsum_j (exact).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q6_k_partial(xb: &BlockQ6K, yb: &BlockQ8K) -> (__m256i, i32) {
    let m4 = _mm256_set1_epi8(0x0F);
    let sc = _mm_loadu_si128(xb.scales.as_ptr() as *const __m128i);
    let mut sumi = _mm256_setzero_si256();
    for n in 0..2 {
        let ql0 = load256(xb.ql.as_ptr().add(64 * n));
        let ql1 = load256(xb.ql.as_ptr().add(64 * n + 32));
        let qh = load256(xb.qh.as_ptr().add(32 * n));
        let q = [
            _mm256_or_si256(
                _mm256_and_si256(ql0, m4),
                _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4),
            ),
            _mm256_or_si256(
                _mm256_and_si256(ql1, m4),
                _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2),
            ),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                _mm256_and_si256(qh, _mm256_set1_epi8(0x30)),
            ),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                _mm256_and_si256(_mm256_srli_epi16(qh, 2), _mm256_set1_epi8(0x30)),
            ),
        ];
        for (p, &qp) in q.iter().enumerate() {
            let yv = load256i(yb.qs.as_ptr().add(128 * n + 32 * p));
            let p16 = _mm256_maddubs_epi16(qp, yv);
            let s16 = pair_scales(sc, 4 * n + p);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, s16));
        }
    }
    let offset = _mm256_slli_epi32(scaled_bsums(sc, &yb.bsums), 5);
    (_mm256_sub_epi32(sumi, offset), 0)
}

kquant_kernel!(
    /// Q2_K · Q8_K.
    vec_dot_q2_k_q8_k, BlockQ2K, q2_k_partial, min = true
);
kquant_kernel!(
    /// Q3_K · Q8_K.
    vec_dot_q3_k_q8_k, BlockQ3K, q3_k_partial, min = false
);
kquant_kernel!(
    /// Q4_K · Q8_K.
    vec_dot_q4_k_q8_k, BlockQ4K, q4_k_partial, min = true
);
kquant_kernel!(
    /// Q5_K · Q8_K.
    vec_dot_q5_k_q8_k, BlockQ5K, q5_k_partial, min = true
);
kquant_kernel!(
    /// Q6_K · Q8_K.
    vec_dot_q6_k_q8_k, BlockQ6K, q6_k_partial, min = false
);

// ---------------------------------------------------------------------------------------
// Float weights · f32 activations: 4 accumulators of 8 = the 32 float lanes.
// ---------------------------------------------------------------------------------------

macro_rules! float_kernel {
    ($(#[$doc:meta])* $name:ident, $w:ty, |$p:ident| $load:expr, |$e:ident| $scalar:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must support AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $name(w: &[$w], x: &[f32]) -> f32 {
            let n = w.len();
            let x = &x[..n];
            let mut acc = [_mm256_setzero_ps(); 4];
            let chunks = n / FLOAT_LANES;
            for c in 0..chunks {
                for (j, a) in acc.iter_mut().enumerate() {
                    let off = FLOAT_LANES * c + 8 * j;
                    let $p = w.as_ptr().add(off);
                    let wv = $load;
                    let xv = _mm256_loadu_ps(x.as_ptr().add(off));
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(wv, xv));
                }
            }
            let mut lanes = [0f32; FLOAT_LANES];
            for (j, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(lanes.as_mut_ptr().add(8 * j), *a);
            }
            for i in chunks * FLOAT_LANES..n {
                let $e = w[i];
                lanes[i % FLOAT_LANES] += $scalar * x[i];
            }
            reduce_float_lanes(&lanes)
        }
    };
}

float_kernel!(
    /// F32 · f32.
    vec_dot_f32_f32, f32, |p| _mm256_loadu_ps(p), |e| e
);
float_kernel!(
    /// F16 · f32 (exact widening with F16C).
    vec_dot_f16_f32, f16, |p| _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)), |e| e.to_f32()
);
float_kernel!(
    /// BF16 · f32 (exact widening: the bits shifted into the top half of an f32).
    vec_dot_bf16_f32, bf16,
    |p| _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i)),
        16
    )),
    |e| e.to_f32()
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::synth::Rng;
    use crate::quant::scales::{q3_k_scales, scales_mins_k4};

    #[test]
    fn packed_q3_k_scales_match_the_reference_unpacking() {
        let mut rng = Rng::new(4);
        for _ in 0..10_000 {
            let mut q = [0u8; 12];
            rng.fill(&mut q);
            let w = q3_k_scale_words(&q);
            let got: Vec<i8> = w
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .map(|b| b as i8 - 32)
                .collect();
            assert_eq!(got, q3_k_scales(&q).to_vec(), "{q:?}");
        }
    }

    #[test]
    fn packed_k4_scales_match_the_reference_unpacking() {
        let mut rng = Rng::new(3);
        for _ in 0..10_000 {
            let mut q = [0u8; 12];
            rng.fill(&mut q);
            let (sc, mn) = scales_mins_k4(&q);
            let w = k4_scales_mins_words(&q);
            let p: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            assert_eq!((&p[..8], &p[8..]), (&sc[..], &mn[..]), "{q:?}");
        }
    }
}
