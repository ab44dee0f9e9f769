//! Scalar dot products: the readable reference ("twin") of every SIMD kernel.
//!
//! # The summation contract
//!
//! Every kernel in this module and in the ISA files computes the *same* sequence of float
//! operations, so that all paths give bit-identical results:
//!
//! * **Quantized types.** For each block `i`, an exact integer dot product of the weight
//!   quants with the activation quants (`isum`, and for types with a min term `imin`), then
//!   one float value per block in a fixed expression (see each function), added to lane
//!   `i % LANES` of [`LANES`] f32 accumulators. Integers are exact in any order, so SIMD code
//!   may sum them however it likes; floats follow this file exactly. The lanes are reduced by
//!   [`reduce_lanes`]. No fused multiply-add anywhere: `a + b * c` is a rounded product, then
//!   a rounded sum, in every ISA (Rust never contracts on its own).
//! * **Float types** (F32, F16, BF16 weights, f32 activations). Element `i` goes to lane
//!   `i % FLOAT_LANES`; each lane does `acc += w * x` (product rounded, then sum rounded);
//!   [`reduce_float_lanes`] folds the 32 lanes.
//!
//! Block formulas follow ggml's reference dequantization (`ggml/src/ggml-quants.c`,
//! `dequantize_row_*`) and its dot products (`ggml-cpu/quants.c`, `ggml_vec_dot_*_generic`):
//! the value of a weight is a per-block (or per-sub-block) scale times a small integer, so the
//! dot product factors into integer sums times scales.

// Index loops mirror the ggml block layouts they document; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use half::{bf16, f16};

use crate::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use crate::quant::scales::{q3_k_scales, scales_mins_k4};

/// Float accumulator lanes of every quantized dot product, whatever the ISA (one AVX2 `ymm`
/// of f32; AVX-512 and NEON paths keep the same 8 lanes so their results match too).
pub const LANES: usize = 8;
/// Float accumulator lanes of the F32/F16/BF16 dot products (four AVX2 `ymm`).
pub const FLOAT_LANES: usize = 32;

/// Folds the 8 lanes in the order an AVX2 horizontal sum does:
/// `((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))`.
#[inline]
pub fn reduce_lanes(a: &[f32; LANES]) -> f32 {
    let s0 = a[0] + a[4];
    let s1 = a[1] + a[5];
    let s2 = a[2] + a[6];
    let s3 = a[3] + a[7];
    (s0 + s2) + (s1 + s3)
}

/// Folds the 32 float lanes: lane k of the four groups of 8 as `(g0+g1) + (g2+g3)`, then
/// [`reduce_lanes`].
#[inline]
pub fn reduce_float_lanes(a: &[f32; FLOAT_LANES]) -> f32 {
    let mut v = [0f32; LANES];
    for k in 0..LANES {
        v[k] = (a[k] + a[8 + k]) + (a[16 + k] + a[24 + k]);
    }
    reduce_lanes(&v)
}

// ---------------------------------------------------------------------------------------
// Per-block integer dot products (exact). Shared with the ISA files for their tails.
// ---------------------------------------------------------------------------------------

/// Q4_0 × Q8_0: Σ (q − 8)·y. Byte j holds value j (low nibble) and j + 16 (high nibble).
#[inline]
pub(crate) fn isum_q4_0(x: &BlockQ4_0, y: &BlockQ8_0) -> i32 {
    let mut s = 0i32;
    for j in 0..16 {
        let b = x.qs[j];
        s += ((b & 0x0F) as i32 - 8) * y.qs[j] as i32;
        s += ((b >> 4) as i32 - 8) * y.qs[j + 16] as i32;
    }
    s
}

/// Q4_1 × Q8_1: Σ q·y with unsigned nibbles q (the min is applied through `y.s`).
#[inline]
pub(crate) fn isum_q4_1(x: &BlockQ4_1, y: &BlockQ8_1) -> i32 {
    let mut s = 0i32;
    for j in 0..16 {
        let b = x.qs[j];
        s += (b & 0x0F) as i32 * y.qs[j] as i32;
        s += (b >> 4) as i32 * y.qs[j + 16] as i32;
    }
    s
}

/// Fifth bits of a Q5_0/Q5_1 block: value j's bit is bit j of `qh` read as a little-endian u32.
#[inline]
fn q5_high(qh: [u8; 4], j: usize) -> i32 {
    ((u32::from_le_bytes(qh) >> j) & 1) as i32
}

/// Q5_0 × Q8_0: Σ (q − 16)·y with q = nibble | fifth bit << 4.
#[inline]
pub(crate) fn isum_q5_0(x: &BlockQ5_0, y: &BlockQ8_0) -> i32 {
    let mut s = 0i32;
    for j in 0..16 {
        let b = x.qs[j];
        let q0 = (b & 0x0F) as i32 | (q5_high(x.qh, j) << 4);
        let q1 = (b >> 4) as i32 | (q5_high(x.qh, j + 16) << 4);
        s += (q0 - 16) * y.qs[j] as i32;
        s += (q1 - 16) * y.qs[j + 16] as i32;
    }
    s
}

/// Q5_1 × Q8_1: Σ q·y with unsigned 5-bit q.
#[inline]
pub(crate) fn isum_q5_1(x: &BlockQ5_1, y: &BlockQ8_1) -> i32 {
    let mut s = 0i32;
    for j in 0..16 {
        let b = x.qs[j];
        let q0 = (b & 0x0F) as i32 | (q5_high(x.qh, j) << 4);
        let q1 = (b >> 4) as i32 | (q5_high(x.qh, j + 16) << 4);
        s += q0 * y.qs[j] as i32;
        s += q1 * y.qs[j + 16] as i32;
    }
    s
}

/// Q8_0 × Q8_0: Σ x·y.
#[inline]
pub(crate) fn isum_q8_0(x: &BlockQ8_0, y: &BlockQ8_0) -> i32 {
    let mut s = 0i32;
    for j in 0..32 {
        s += x.qs[j] as i32 * y.qs[j] as i32;
    }
    s
}

/// Q2_K × Q8_K: (Σ_j scale_j · Σ_{16} q·y, Σ_j min_j · bsum_j), scale/min the low/high
/// nibble of `scales[j]`. Values: for each 128-half n and shift 2k (k = 0..3), bytes
/// `qs[32n .. 32n+32] >> 2k & 3` are values `128n + 32k ..` (sub-blocks 8n+2k, 8n+2k+1).
#[inline]
pub(crate) fn isum_q2_k(x: &BlockQ2K, y: &BlockQ8K) -> (i32, i32) {
    let mut isum = 0i32;
    for n in 0..2 {
        for k in 0..4 {
            for h in 0..2 {
                let sub = 8 * n + 2 * k + h;
                let mut s = 0i32;
                for l in 0..16 {
                    let q = (x.qs[32 * n + 16 * h + l] >> (2 * k)) & 3;
                    s += q as i32 * y.qs[16 * sub + l] as i32;
                }
                isum += (x.scales[sub] & 0x0F) as i32 * s;
            }
        }
    }
    let mut imin = 0i32;
    for j in 0..16 {
        imin += (x.scales[j] >> 4) as i32 * y.bsums[j] as i32;
    }
    (isum, imin)
}

/// Q3_K × Q8_K: Σ_j (scale_j − 32) · Σ_{16} q·y with q = (2 low bits) − (4 if the hmask bit
/// is clear), q in −4..3. Low bits as Q2_K; the hmask bit of value `128n + 32k + l` is bit
/// `4n + k` of `hmask[l]`.
#[inline]
pub(crate) fn isum_q3_k(x: &BlockQ3K, y: &BlockQ8K) -> i32 {
    let sc = q3_k_scales(&x.scales);
    let mut isum = 0i32;
    for n in 0..2 {
        for k in 0..4 {
            for h in 0..2 {
                let sub = 8 * n + 2 * k + h;
                let mut s = 0i32;
                for l in 0..16 {
                    let low = ((x.qs[32 * n + 16 * h + l] >> (2 * k)) & 3) as i32;
                    let high = (x.hmask[16 * h + l] >> (4 * n + k)) & 1;
                    let q = low - if high == 0 { 4 } else { 0 };
                    s += q * y.qs[16 * sub + l] as i32;
                }
                isum += sc[sub] as i32 * s;
            }
        }
    }
    isum
}

/// Q4_K × Q8_K: (Σ_j scale_j · Σ_{32} q·y, Σ_j min_j · (bsum_2j + bsum_2j+1)). For
/// j = 0..3, byte l of `qs[32j..]` holds value 64j + l (low nibble, sub-block 2j) and
/// 64j + 32 + l (high nibble, sub-block 2j+1).
#[inline]
pub(crate) fn isum_q4_k(x: &BlockQ4K, y: &BlockQ8K) -> (i32, i32) {
    let (sc, mn) = scales_mins_k4(&x.scales);
    let mut isum = 0i32;
    for j in 0..4 {
        let (mut lo, mut hi) = (0i32, 0i32);
        for l in 0..32 {
            let b = x.qs[32 * j + l];
            lo += (b & 0x0F) as i32 * y.qs[64 * j + l] as i32;
            hi += (b >> 4) as i32 * y.qs[64 * j + 32 + l] as i32;
        }
        isum += sc[2 * j] as i32 * lo + sc[2 * j + 1] as i32 * hi;
    }
    (isum, k4_min_sum(&mn, &y.bsums))
}

/// Σ_j min_j · (bsum_2j + bsum_2j+1) for the 8 sub-blocks of 32 of Q4_K / Q5_K.
#[inline]
pub(crate) fn k4_min_sum(mn: &[u8; 8], bsums: &[i16; 16]) -> i32 {
    let mut imin = 0i32;
    for j in 0..8 {
        imin += mn[j] as i32 * (bsums[2 * j] as i32 + bsums[2 * j + 1] as i32);
    }
    imin
}

/// Q5_K × Q8_K: as Q4_K with a fifth bit: value 64j + l takes bit 2j of `qh[l]`, value
/// 64j + 32 + l takes bit 2j + 1.
#[inline]
pub(crate) fn isum_q5_k(x: &BlockQ5K, y: &BlockQ8K) -> (i32, i32) {
    let (sc, mn) = scales_mins_k4(&x.scales);
    let mut isum = 0i32;
    for j in 0..4 {
        let (mut lo, mut hi) = (0i32, 0i32);
        for l in 0..32 {
            let b = x.qs[32 * j + l];
            let h = x.qh[l];
            let q0 = (b & 0x0F) as i32 | ((((h >> (2 * j)) & 1) as i32) << 4);
            let q1 = (b >> 4) as i32 | ((((h >> (2 * j + 1)) & 1) as i32) << 4);
            lo += q0 * y.qs[64 * j + l] as i32;
            hi += q1 * y.qs[64 * j + 32 + l] as i32;
        }
        isum += sc[2 * j] as i32 * lo + sc[2 * j + 1] as i32 * hi;
    }
    (isum, k4_min_sum(&mn, &y.bsums))
}

/// Q6_K × Q8_K: Σ_j scale_j · Σ_{16} (q − 32)·y. For each 128-half n and l in 0..32, with
/// `ql = ql[64n..]`, `qh = qh[32n..]`: value 128n + l is `ql[l] & 15 | (qh[l] & 3) << 4`,
/// +32 is `ql[l+32] & 15 | (qh[l] >> 2 & 3) << 4`, +64 is `ql[l] >> 4 | (qh[l] >> 4 & 3) << 4`,
/// +96 is `ql[l+32] >> 4 | (qh[l] >> 6) << 4`.
#[inline]
pub(crate) fn isum_q6_k(x: &BlockQ6K, y: &BlockQ8K) -> i32 {
    let mut isum = 0i32;
    for n in 0..2 {
        let ql = &x.ql[64 * n..64 * n + 64];
        let qh = &x.qh[32 * n..32 * n + 32];
        for part in 0..4 {
            for h in 0..2 {
                let sub = 8 * n + 2 * part + h;
                let mut s = 0i32;
                for l in 16 * h..16 * h + 16 {
                    let low = match part {
                        0 => ql[l] & 0x0F,
                        1 => ql[l + 32] & 0x0F,
                        2 => ql[l] >> 4,
                        _ => ql[l + 32] >> 4,
                    };
                    let high = (qh[l] >> (2 * part)) & 3;
                    let q = (low | (high << 4)) as i32 - 32;
                    s += q * y.qs[128 * n + 32 * part + l] as i32;
                }
                isum += x.scales[sub] as i32 * s;
            }
        }
    }
    isum
}

// ---------------------------------------------------------------------------------------
// Float combination of one block (the fixed expressions of the summation contract).
// ---------------------------------------------------------------------------------------

/// Block value of the types with one scale: `(dx·dy)·isum` (the scales already widened from
/// f16, exactly).
#[inline]
pub(crate) fn block_d(dx: f32, dy: f32, isum: i32) -> f32 {
    (dx * dy) * isum as f32
}

/// Block value of Q4_1 / Q5_1 × Q8_1: `(dx·dy)·isum + m·s`.
#[inline]
pub(crate) fn block_dm(dx: f32, m: f32, dy: f32, s: f32, isum: i32) -> f32 {
    (dx * dy) * isum as f32 + m * s
}

/// Super-block value of Q2_K, Q4_K, Q5_K: `(yd·d)·isum − (yd·dmin)·imin` (`d`, `dmin` the
/// f16 scales widened exactly).
#[inline(always)]
pub(crate) fn block_k_min(yd: f32, d: f32, dmin: f32, isum: i32, imin: i32) -> f32 {
    (yd * d) * isum as f32 - (yd * dmin) * imin as f32
}

/// Super-block value of Q3_K, Q6_K: `(yd·d)·isum`.
#[inline(always)]
pub(crate) fn block_k(yd: f32, d: f32, isum: i32) -> f32 {
    (yd * d) * isum as f32
}

// ---------------------------------------------------------------------------------------
// The scalar dot products. `x` is one weight row, `y` the quantized activation row; both
// hold the same number of blocks (panics otherwise).
// ---------------------------------------------------------------------------------------

/// Lane-accumulates `f(block i)` over the blocks (the quantized summation contract). Shared
/// with the NEON kernels, whose per-block float step is this one.
#[inline]
pub(crate) fn lanes_sum(n: usize, mut f: impl FnMut(usize) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    for i in 0..n {
        acc[i % LANES] += f(i);
    }
    reduce_lanes(&acc)
}

pub fn vec_dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len(), "block count mismatch");
    lanes_sum(x.len(), |i| {
        block_d(x[i].d.to_f32(), y[i].d.to_f32(), isum_q4_0(&x[i], &y[i]))
    })
}

pub fn vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    assert_eq!(x.len(), y.len(), "block count mismatch");
    lanes_sum(x.len(), |i| {
        block_dm(
            x[i].d.to_f32(),
            x[i].m.to_f32(),
            y[i].d.to_f32(),
            y[i].s.to_f32(),
            isum_q4_1(&x[i], &y[i]),
        )
    })
}

pub fn vec_dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len(), "block count mismatch");
    lanes_sum(x.len(), |i| {
        block_d(x[i].d.to_f32(), y[i].d.to_f32(), isum_q5_0(&x[i], &y[i]))
    })
}

pub fn vec_dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    assert_eq!(x.len(), y.len(), "block count mismatch");
    lanes_sum(x.len(), |i| {
        block_dm(
            x[i].d.to_f32(),
            x[i].m.to_f32(),
            y[i].d.to_f32(),
            y[i].s.to_f32(),
            isum_q5_1(&x[i], &y[i]),
        )
    })
}

pub fn vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len(), "block count mismatch");
    lanes_sum(x.len(), |i| {
        block_d(x[i].d.to_f32(), y[i].d.to_f32(), isum_q8_0(&x[i], &y[i]))
    })
}

pub fn vec_dot_q2_k_q8_k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "block count mismatch");
    lanes_sum(x.len(), |i| {
        let (isum, imin) = isum_q2_k(&x[i], &y[i]);
        block_k_min(y[i].d, x[i].d.to_f32(), x[i].dmin.to_f32(), isum, imin)
    })
}

pub fn vec_dot_q3_k_q8_k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "block count mismatch");
    lanes_sum(x.len(), |i| {
        block_k(y[i].d, x[i].d.to_f32(), isum_q3_k(&x[i], &y[i]))
    })
}

pub fn vec_dot_q4_k_q8_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "block count mismatch");
    lanes_sum(x.len(), |i| {
        let (isum, imin) = isum_q4_k(&x[i], &y[i]);
        block_k_min(y[i].d, x[i].d.to_f32(), x[i].dmin.to_f32(), isum, imin)
    })
}

pub fn vec_dot_q5_k_q8_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "block count mismatch");
    lanes_sum(x.len(), |i| {
        let (isum, imin) = isum_q5_k(&x[i], &y[i]);
        block_k_min(y[i].d, x[i].d.to_f32(), x[i].dmin.to_f32(), isum, imin)
    })
}

pub fn vec_dot_q6_k_q8_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "block count mismatch");
    lanes_sum(x.len(), |i| {
        block_k(y[i].d, x[i].d.to_f32(), isum_q6_k(&x[i], &y[i]))
    })
}

/// Lane-accumulates `w(i)·x[i]` over the elements (the float summation contract).
#[inline]
fn float_lanes_sum(x: &[f32], w: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; FLOAT_LANES];
    for i in 0..x.len() {
        acc[i % FLOAT_LANES] += w(i) * x[i];
    }
    reduce_float_lanes(&acc)
}

pub fn vec_dot_f32_f32(w: &[f32], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len(), "length mismatch");
    float_lanes_sum(x, |i| w[i])
}

pub fn vec_dot_f16_f32(w: &[f16], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len(), "length mismatch");
    float_lanes_sum(x, |i| w[i].to_f32())
}

pub fn vec_dot_bf16_f32(w: &[bf16], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len(), "length mismatch");
    float_lanes_sum(x, |i| w[i].to_f32())
}
