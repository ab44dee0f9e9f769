//! Batched products of the K-quant types (Q2_K … Q6_K weights × Q8_K activations) on
//! AVX-512 VNNI, bit-identical to the per-row dot products and their scalar twins.
//!
//! The layout is the 32-value types' (see [`super::gemm_avx512`]) one level up: lane `k` of
//! a group holds super-block `8g + k`, the lane the summation contract gives it, and vector
//! `m` of a group holds dword `m` (values `4m..4m+4`) of each of the eight super-blocks.
//! Per sub-block `s` (16 or 32 values) the `vpdpbusd`s of its vectors give every lane its
//! exact `S_s = Σ u·y`; lanes then gather `isum = Σ_s sc_s·S_s` with one `vpmulld` per
//! sub-block. Weights are unsigned bytes `u = q + o`; the correction term
//! `corr = Σ_i c_i·Y_i` over the sixteen 16-value sums `Y_i` of the activations (Q8_K's
//! `bsums`) is one `vpdpwssd` per pair of them, with `c_i` the min `m` (Q2_K, Q4_K, Q5_K,
//! whose blocks subtract a min term) or `o·sc` (Q3_K, Q6_K, whose quants are offset). The
//! float step is then the contract's: `(yd·d)·isum − (yd·dmin)·corr` for the types with a
//! min, `(yd·d)·(isum − corr)` for the others, added to the lane. As for the 32-value types,
//! activation rows come in pairs, one per 256-bit half of a `zmm`, weights broadcast to both.

use core::arch::x86_64::*;
use core::marker::PhantomData;

use bytemuck::Pod;

use super::dot_scalar::LANES;
use super::gemm_avx512::{both_halves, load, reduce_pairs};
use super::gemm_tiles::{for_each_tile, Tiles};
use super::matmul::SharedOut;
use crate::quant::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
use crate::quant::scales::{q3_k_scales, scales_mins_k4};

/// Weight rows × activation rows per register tile: `R·T` accumulators (two activation rows
/// per register) must fit the 32 vector registers next to `R + 1` operands.
const TILE_R: usize = 4;
const TILE_T: usize = 4;
/// Dwords per super-block.
const DWORDS: usize = QK_K / 4;
/// Bytes of one interleaved group: eight super-blocks of 256 quants.
const GROUP_BYTES: usize = LANES * QK_K;
/// 16-value sums per super-block.
const SUMS: usize = QK_K / 16;

/// A K-quant super-block unpacked for the batched kernel.
pub(super) struct Unpacked {
    /// `q + o` in value order (the order of the Q8_K activations).
    pub u: [u8; QK_K],
    /// Integer scale of each sub-block (the first `256 / SUB` entries).
    pub sc: [i32; SUMS],
    /// Correction factor of each 16-value sum: the min, or `o·sc`.
    pub c: [i16; SUMS],
}

/// A K-quant weight super-block as the batched kernel sees it.
pub(super) trait KBlock: Pod + Sync {
    /// Values per sub-block (one integer scale each).
    const SUB: usize;
    /// Whether the block value subtracts a min term `(yd·dmin)·corr`.
    const HAS_MIN: bool;
    fn d(&self) -> f32;
    /// `dmin` (zero for types without a min).
    fn dmin(&self) -> f32;
    fn unpack(&self) -> Unpacked;
}

fn unpacked() -> Unpacked {
    Unpacked {
        u: [0; QK_K],
        sc: [0; SUMS],
        c: [0; SUMS],
    }
}

// Value layouts as in `dot_scalar::isum_*` (ggml `dequantize_row_q*_K`).

impl KBlock for BlockQ2K {
    const SUB: usize = 16;
    const HAS_MIN: bool = true;
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn dmin(&self) -> f32 {
        self.dmin.to_f32()
    }
    fn unpack(&self) -> Unpacked {
        let mut p = unpacked();
        for i in 0..QK_K {
            let (n, k, h, l) = (i / 128, (i / 32) % 4, (i / 16) % 2, i % 16);
            p.u[i] = (self.qs[32 * n + 16 * h + l] >> (2 * k)) & 3;
        }
        for s in 0..SUMS {
            p.sc[s] = (self.scales[s] & 0x0F) as i32;
            p.c[s] = (self.scales[s] >> 4) as i16;
        }
        p
    }
}

impl KBlock for BlockQ3K {
    const SUB: usize = 16;
    const HAS_MIN: bool = false;
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn dmin(&self) -> f32 {
        0.0
    }
    fn unpack(&self) -> Unpacked {
        let mut p = unpacked();
        for i in 0..QK_K {
            let (n, k, h, l) = (i / 128, (i / 32) % 4, (i / 16) % 2, i % 16);
            let low = (self.qs[32 * n + 16 * h + l] >> (2 * k)) & 3;
            let high = (self.hmask[16 * h + l] >> (4 * n + k)) & 1;
            // q = low − 4·(1 − high), so u = q + 4 = low + 4·high.
            p.u[i] = low + 4 * high;
        }
        for (s, &sc) in q3_k_scales(&self.scales).iter().enumerate() {
            p.sc[s] = sc as i32;
            p.c[s] = 4 * sc as i16;
        }
        p
    }
}

impl KBlock for BlockQ4K {
    const SUB: usize = 32;
    const HAS_MIN: bool = true;
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn dmin(&self) -> f32 {
        self.dmin.to_f32()
    }
    fn unpack(&self) -> Unpacked {
        let mut p = unpacked();
        for i in 0..QK_K {
            let (j, high, l) = (i / 64, (i / 32) % 2, i % 32);
            let b = self.qs[32 * j + l];
            p.u[i] = if high == 0 { b & 0x0F } else { b >> 4 };
        }
        k4_scales(&self.scales, &mut p);
        p
    }
}

impl KBlock for BlockQ5K {
    const SUB: usize = 32;
    const HAS_MIN: bool = true;
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn dmin(&self) -> f32 {
        self.dmin.to_f32()
    }
    fn unpack(&self) -> Unpacked {
        let mut p = unpacked();
        for i in 0..QK_K {
            let (j, high, l) = (i / 64, (i / 32) % 2, i % 32);
            let b = self.qs[32 * j + l];
            let nibble = if high == 0 { b & 0x0F } else { b >> 4 };
            let bit = (self.qh[l] >> (2 * j + high)) & 1;
            p.u[i] = nibble | (bit << 4);
        }
        k4_scales(&self.scales, &mut p);
        p
    }
}

impl KBlock for BlockQ6K {
    const SUB: usize = 16;
    const HAS_MIN: bool = false;
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn dmin(&self) -> f32 {
        0.0
    }
    fn unpack(&self) -> Unpacked {
        let mut p = unpacked();
        for i in 0..QK_K {
            let (n, part, l) = (i / 128, (i / 32) % 4, i % 32);
            let ql = &self.ql[64 * n..];
            let low = match part {
                0 => ql[l] & 0x0F,
                1 => ql[l + 32] & 0x0F,
                2 => ql[l] >> 4,
                _ => ql[l + 32] >> 4,
            };
            let high = (self.qh[32 * n + l] >> (2 * part)) & 3;
            // q = (low | high << 4) − 32, so u = q + 32.
            p.u[i] = low | (high << 4);
        }
        for (s, &sc) in self.scales.iter().enumerate() {
            p.sc[s] = sc as i32;
            p.c[s] = 32 * sc as i16;
        }
        p
    }
}

/// Q4_K / Q5_K: 8 scales of 32 values, each min covering two 16-value sums.
fn k4_scales(scales: &[u8; 12], p: &mut Unpacked) {
    let (sc, mn) = scales_mins_k4(scales);
    for j in 0..8 {
        p.sc[j] = sc[j] as i32;
        p.c[2 * j] = mn[j] as i16;
        p.c[2 * j + 1] = mn[j] as i16;
    }
}

/// Rows of super-blocks in the interleaved layout. Padding super-blocks of the last group
/// are all zero.
pub(super) struct Packed {
    /// Super-blocks per row.
    nb: usize,
    groups: usize,
    /// Matrix rows interleaved in one packed row: 1 for weights, 2 for activations (token
    /// pairs, one per 256-bit half of a register).
    halves: usize,
    /// `[row][group][dword m][half h][lane k][4 bytes]`.
    q: Vec<u8>,
    /// Weights: `sc`, `[row][group][sub-block][k]`.
    sc: Vec<i32>,
    /// Weights: `c`; activations: the 16-value sums; `[row][group][pair p][h][k][2]`.
    pairs: Vec<i16>,
    /// Weights: `d`; activations: `yd`; `[row][group][h][k]`.
    d: Vec<f32>,
    /// Weights: `dmin`, `[row][group][k]`.
    dmin: Vec<f32>,
}

/// One row of a [`Packed`], borrowed for filling.
struct PackedRow<'a> {
    halves: usize,
    q: &'a mut [u8],
    sc: &'a mut [i32],
    pairs: &'a mut [i16],
    d: &'a mut [f32],
    dmin: &'a mut [f32],
}

impl PackedRow<'_> {
    /// Writes super-block `b`'s quants and its 16 pair-laid values `v`, in half `h`.
    fn put(&mut self, b: usize, h: usize, u: &[u8; QK_K], v: &[i16; SUMS]) {
        let (g, k, hs) = (b / LANES, b % LANES, self.halves);
        let base = g * GROUP_BYTES * hs + h * 32 + 4 * k;
        for m in 0..DWORDS {
            let at = base + m * 32 * hs;
            self.q[at..at + 4].copy_from_slice(&u[4 * m..4 * m + 4]);
        }
        for p in 0..SUMS / 2 {
            let at = ((g * (SUMS / 2) + p) * hs + h) * 2 * LANES + 2 * k;
            self.pairs[at] = v[2 * p];
            self.pairs[at + 1] = v[2 * p + 1];
        }
    }

    /// Index of super-block `b` of half `h` in the per-block float arrays.
    fn lane(&self, b: usize, h: usize) -> usize {
        ((b / LANES) * self.halves + h) * LANES + b % LANES
    }
}

impl Packed {
    /// `rows` zero rows of `nb` super-blocks × `halves`, each filled by `fill(row index,
    /// row)`, in parallel when `parallel`.
    fn build(
        rows: usize,
        nb: usize,
        halves: usize,
        parallel: bool,
        fill: impl Fn(usize, PackedRow<'_>) + Sync,
    ) -> Self {
        use rayon::prelude::*;
        let groups = nb.div_ceil(LANES);
        let lanes = groups * LANES * halves;
        let mut p = Packed {
            nb,
            groups,
            halves,
            q: vec![0; rows * groups * GROUP_BYTES * halves],
            sc: vec![0; rows * lanes * SUMS],
            pairs: vec![0; rows * lanes * SUMS],
            d: vec![0.0; rows * lanes],
            dmin: vec![0.0; rows * lanes],
        };
        let parts =
            p.q.par_chunks_mut(groups * GROUP_BYTES * halves)
                .zip(p.sc.par_chunks_mut(lanes * SUMS))
                .zip(p.pairs.par_chunks_mut(lanes * SUMS))
                .zip(p.d.par_chunks_mut(lanes))
                .zip(p.dmin.par_chunks_mut(lanes))
                .enumerate()
                .with_min_len(if parallel { 1 } else { usize::MAX });
        parts.for_each(|(r, ((((q, sc), pairs), d), dmin))| {
            fill(
                r,
                PackedRow {
                    halves,
                    q,
                    sc,
                    pairs,
                    d,
                    dmin,
                },
            )
        });
        p
    }

    /// The quants of row `row`: `groups · GROUP_BYTES · halves` bytes.
    fn row_q(&self, row: usize) -> *const u8 {
        let len = self.groups * GROUP_BYTES * self.halves;
        self.q[row * len..(row + 1) * len].as_ptr()
    }

    fn sc_ptr(&self, row: usize, g: usize, s: usize) -> *const __m256i {
        self.sc[((row * self.groups + g) * SUMS + s) * LANES..].as_ptr() as *const __m256i
    }

    /// Pair `p` of group `g` of row `row`: `halves` × 8 lanes of two i16.
    fn pair_ptr(&self, row: usize, g: usize, p: usize) -> *const i16 {
        self.pairs[((row * self.groups + g) * (SUMS / 2) + p) * self.halves * 2 * LANES..].as_ptr()
    }

    /// The `8 · halves` per-block floats of group `g` of row `row`.
    fn lanes_ptr(&self, v: &[f32], row: usize, g: usize) -> *const f32 {
        v[(row * self.groups + g) * LANES * self.halves..].as_ptr()
    }
}

/// Packs `rows` weight rows (on the calling thread: weight rows are packed inside the
/// parallel tasks).
fn pack_weights<W: KBlock>(w: &[W], rows: usize) -> Packed {
    let nb = w.len() / rows;
    Packed::build(rows, nb, 1, false, |r, mut p| {
        for (b, blk) in w[r * nb..(r + 1) * nb].iter().enumerate() {
            let un = blk.unpack();
            p.put(b, 0, &un.u, &un.c);
            let (g, k) = (b / LANES, b % LANES);
            for s in 0..QK_K / W::SUB {
                p.sc[(g * SUMS + s) * LANES + k] = un.sc[s];
            }
            let l = p.lane(b, 0);
            p.d[l] = blk.d();
            p.dmin[l] = blk.dmin();
        }
    })
}

/// Packs `n` Q8_K activation rows as `⌈n / 2⌉` token pairs (an odd `n` gets a zero
/// partner), pairs in parallel.
pub(super) fn pack_acts(a: &[BlockQ8K], n: usize) -> Packed {
    let nb = a.len() / n;
    Packed::build(n.div_ceil(2), nb, 2, true, |pair, mut p| {
        for h in 0..2 {
            let t = 2 * pair + h;
            if t == n {
                break;
            }
            for (b, blk) in a[t * nb..(t + 1) * nb].iter().enumerate() {
                p.put(b, h, bytemuck::cast_ref(&blk.qs), &blk.bsums);
                let l = p.lane(b, h);
                p.d[l] = blk.d;
            }
        }
    })
}

/// A packed weight-row chunk with the packed activations, for [`for_each_tile`].
struct Tiled<'a, W> {
    w: &'a Packed,
    a: &'a Packed,
    ty: PhantomData<W>,
}

impl<W: KBlock> Tiles for Tiled<'_, W> {
    /// Each output as the per-row kernel computes it. `t0` and `T` are even: activation
    /// rows come in pairs, one per 256-bit half of a register.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn tile<const R: usize, const T: usize>(&self, r0: usize, t0: usize) -> [[f32; T]; R] {
        let (w, a) = (self.w, self.a);
        let (pairs, p0) = (T / 2, t0 / 2);
        let per_sub = W::SUB / 4;
        let mut wq = [core::ptr::null(); R];
        for (r, p) in wq.iter_mut().enumerate() {
            *p = w.row_q(r0 + r);
        }
        let mut aq = [core::ptr::null(); T];
        for (p, q) in aq.iter_mut().take(pairs).enumerate() {
            *q = a.row_q(p0 + p);
        }
        let mut acc = [[_mm512_setzero_ps(); T]; R];
        for g in 0..w.groups {
            let mut isum = [[_mm512_setzero_si512(); T]; R];
            for s in 0..QK_K / W::SUB {
                let mut part = [[_mm512_setzero_si512(); T]; R];
                for m in s * per_sub..(s + 1) * per_sub {
                    let at = g * GROUP_BYTES + m * 32;
                    let mut wv = [_mm512_setzero_si512(); R];
                    for r in 0..R {
                        wv[r] = _mm512_broadcast_i64x4(load(wq[r], at));
                    }
                    for p in 0..pairs {
                        let yv = _mm512_loadu_si512(aq[p].add(2 * at) as *const __m512i);
                        for r in 0..R {
                            part[r][p] = _mm512_dpbusd_epi32(part[r][p], wv[r], yv);
                        }
                    }
                }
                for r in 0..R {
                    let sc = _mm512_broadcast_i64x4(_mm256_loadu_si256(w.sc_ptr(r0 + r, g, s)));
                    for p in 0..pairs {
                        isum[r][p] =
                            _mm512_add_epi32(isum[r][p], _mm512_mullo_epi32(part[r][p], sc));
                    }
                }
            }
            for p in 0..pairs {
                let yd = _mm512_loadu_ps(a.lanes_ptr(&a.d, p0 + p, g));
                for r in 0..R {
                    let mut corr = _mm512_setzero_si512();
                    for q in 0..SUMS / 2 {
                        let c = w.pair_ptr(r0 + r, g, q) as *const __m256i;
                        let c = _mm512_broadcast_i64x4(_mm256_loadu_si256(c));
                        let y = _mm512_loadu_si512(a.pair_ptr(p0 + p, g, q) as *const __m512i);
                        corr = _mm512_dpwssd_epi32(corr, c, y);
                    }
                    let d = both_halves(w.lanes_ptr(&w.d, r0 + r, g));
                    let v = if W::HAS_MIN {
                        let dmin = both_halves(w.lanes_ptr(&w.dmin, r0 + r, g));
                        _mm512_sub_ps(
                            _mm512_mul_ps(_mm512_mul_ps(yd, d), _mm512_cvtepi32_ps(isum[r][p])),
                            _mm512_mul_ps(_mm512_mul_ps(yd, dmin), _mm512_cvtepi32_ps(corr)),
                        )
                    } else {
                        let tot = _mm512_sub_epi32(isum[r][p], corr);
                        _mm512_mul_ps(_mm512_mul_ps(yd, d), _mm512_cvtepi32_ps(tot))
                    };
                    acc[r][p] = _mm512_add_ps(acc[r][p], v);
                }
            }
        }
        reduce_pairs(&acc, pairs)
    }
}

/// The products of the weight rows `w` (matrix rows `base…`) with every activation row of
/// `a` (packed by [`pack_acts`]), written into `out`.
///
/// # Safety
/// The CPU must support the AVX-512 tier (`Isa::Avx512.is_supported()`); `w`'s rows have the
/// super-block count `a` was packed with; `base + w.len() / nb ≤ rows` of `out`, `a` holds
/// `out.n()` rows, and no other task writes these rows' outputs meanwhile.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn rows_block<W: KBlock>(w: &[W], base: usize, a: &Packed, out: SharedOut) {
    let rows = w.len() / a.nb;
    let pw = pack_weights(w, rows);
    let k = Tiled::<W> {
        w: &pw,
        a,
        ty: PhantomData,
    };
    for_each_tile::<_, TILE_R, TILE_T, 2>(&k, rows, base, out);
}
