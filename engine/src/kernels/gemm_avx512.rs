//! Batched products (several activation rows at once) of the 32-value block types — Q4_0,
//! Q4_1, Q5_0, Q5_1 and Q8_0 weights — on AVX-512 VNNI, bit-identical to the per-row dot
//! products of [`super::dot_avx512`] and to their scalar twins.
//!
//! The per-row kernels unpack every weight block once per activation row and fold each
//! block's eight partial sums with shuffles. Here both operands are re-laid out once per
//! matmul, *block-interleaved*: in group `g` (blocks `8g..8g+8` of a row), 32-byte vector `j`
//! holds bytes `4j..4j+4` of each of the eight blocks, block `8g+k` in dword `k`. One
//! `vpdpbusd` per vector adds, in lane `k`, four products of block `8g+k`; after the eight
//! vectors of a group, lane `k` holds that block's whole integer sum, already in the lane the
//! summation contract assigns it (`i % 8`, see [`super::dot_scalar`]), with no folding.
//!
//! Weights become unsigned bytes `u = q + o` (`o` = 8, 16, 128 for Q4_0, Q5_0, Q8_0; 0 for
//! Q4_1, Q5_1), so `Σ q·y = Σ u·y − o·Σy` exactly; `o·Σy` is computed once per activation
//! block. Activation rows are packed in pairs, one per 256-bit half of a `zmm`, and each
//! weight vector is broadcast to both halves, so one `vpdpbusd` serves two activation rows; a
//! register tile of [`TILE`] weight rows × [`TILE`] activation rows uses every loaded vector
//! several times. The float step per group is the contract's, lane by lane (the two halves
//! never mix):
//! `(dx·dy)·isum`, plus `m·s` for Q4_1 / Q5_1, added to the accumulator. The zero blocks
//! that pad the last group add `+0`, which changes no lane: a sum started at `+0` is never
//! `−0` under round-to-nearest, so `lane + 0 = lane`.

use core::arch::x86_64::*;
use core::marker::PhantomData;

use bytemuck::Pod;
use half::f16;

use super::dot_avx2::{bits_to_bytes, nibbles};
use super::dot_scalar::{reduce_lanes, LANES};
use super::gemm_tiles::{for_each_tile, Tiles};
use super::matmul::SharedOut;
use crate::quant::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};

/// Weight rows and activation rows per register tile.
const TILE: usize = 4;
/// Quants per block.
const QK: usize = 32;
/// Bytes of one interleaved group: eight blocks of 32 quants.
const GROUP_BYTES: usize = LANES * QK;

/// A 32-value weight block as the batched kernel sees it.
pub(super) trait WeightBlock: Pod + Sync {
    /// `log2(o)` for the offset `o` in `u = q + o`; `None` when `o = 0`.
    const OFFSET_LOG2: Option<u32>;
    /// Whether the block value has the `m·s` term (Q4_1, Q5_1).
    const HAS_MIN: bool;
    fn d(&self) -> f16;
    /// The min `m` (zero for types without one).
    fn m(&self) -> f16;
    /// The 32 quants as unsigned bytes `q + o`, in value order.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    unsafe fn unsigned_quants(&self) -> __m256i;
}

/// The 32 five-bit quants of a Q5_0 / Q5_1 block, `nibble | fifth bit << 4`, in value order.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn five_bit_quants(qh: [u8; 4], qs: &[u8; QK / 2]) -> __m256i {
    let high = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(16));
    _mm256_or_si256(nibbles(qs.as_ptr()), high)
}

/// A 32-value activation block (Q8_0 or Q8_1).
pub(super) trait ActBlock: Pod + Sync {
    fn d(&self) -> f16;
    /// `s = d·Σq` of Q8_1 (zero for Q8_0).
    fn s(&self) -> f16;
    fn qs(&self) -> &[i8; QK];
}

impl WeightBlock for BlockQ4_0 {
    const OFFSET_LOG2: Option<u32> = Some(3);
    const HAS_MIN: bool = false;
    fn d(&self) -> f16 {
        self.d
    }
    fn m(&self) -> f16 {
        f16::ZERO
    }
    #[target_feature(enable = "avx2")]
    unsafe fn unsigned_quants(&self) -> __m256i {
        nibbles(self.qs.as_ptr())
    }
}

impl WeightBlock for BlockQ4_1 {
    const OFFSET_LOG2: Option<u32> = None;
    const HAS_MIN: bool = true;
    fn d(&self) -> f16 {
        self.d
    }
    fn m(&self) -> f16 {
        self.m
    }
    #[target_feature(enable = "avx2")]
    unsafe fn unsigned_quants(&self) -> __m256i {
        nibbles(self.qs.as_ptr())
    }
}

impl WeightBlock for BlockQ5_0 {
    const OFFSET_LOG2: Option<u32> = Some(4);
    const HAS_MIN: bool = false;
    fn d(&self) -> f16 {
        self.d
    }
    fn m(&self) -> f16 {
        f16::ZERO
    }
    #[target_feature(enable = "avx2")]
    unsafe fn unsigned_quants(&self) -> __m256i {
        five_bit_quants(self.qh, &self.qs)
    }
}

impl WeightBlock for BlockQ5_1 {
    const OFFSET_LOG2: Option<u32> = None;
    const HAS_MIN: bool = true;
    fn d(&self) -> f16 {
        self.d
    }
    fn m(&self) -> f16 {
        self.m
    }
    #[target_feature(enable = "avx2")]
    unsafe fn unsigned_quants(&self) -> __m256i {
        five_bit_quants(self.qh, &self.qs)
    }
}

impl WeightBlock for BlockQ8_0 {
    const OFFSET_LOG2: Option<u32> = Some(7);
    const HAS_MIN: bool = false;
    fn d(&self) -> f16 {
        self.d
    }
    fn m(&self) -> f16 {
        f16::ZERO
    }
    #[target_feature(enable = "avx2")]
    unsafe fn unsigned_quants(&self) -> __m256i {
        let q = _mm256_loadu_si256(self.qs.as_ptr() as *const __m256i);
        _mm256_xor_si256(q, _mm256_set1_epi8(i8::MIN))
    }
}

impl ActBlock for BlockQ8_0 {
    fn d(&self) -> f16 {
        self.d
    }
    fn s(&self) -> f16 {
        f16::ZERO
    }
    fn qs(&self) -> &[i8; QK] {
        &self.qs
    }
}

impl ActBlock for BlockQ8_1 {
    fn d(&self) -> f16 {
        self.d
    }
    fn s(&self) -> f16 {
        self.s
    }
    fn qs(&self) -> &[i8; QK] {
        &self.qs
    }
}

/// Rows of blocks in the interleaved layout, with per-block floats. Padding blocks of the
/// last group are all zero.
pub(super) struct Packed {
    /// Blocks per row.
    nb: usize,
    /// Groups per row (`nb / 8` rounded up).
    groups: usize,
    /// Matrix rows interleaved in one packed row: 1 for weights; 2 for activations, whose
    /// token pairs fill the two halves of a 512-bit register.
    halves: usize,
    /// `[row][group][vector j][half h][block k][4 bytes]`.
    q: Vec<u8>,
    /// `d` per block, `[row][group][h][k]`.
    d: Vec<f32>,
    /// Weights: `m` (Q4_1 / Q5_1); activations: `s` (Q8_1). Zero when unused.
    extra: Vec<f32>,
    /// Activations: `o·Σq` per block, the offset correction. Zero for weights.
    corr: Vec<i32>,
}

/// One row of a [`Packed`], borrowed for filling.
struct PackedRow<'a> {
    halves: usize,
    q: &'a mut [u8],
    d: &'a mut [f32],
    extra: &'a mut [f32],
    corr: &'a mut [i32],
}

impl PackedRow<'_> {
    /// Writes the 32 quants of block `b` of half `h`.
    fn put_quants(&mut self, b: usize, h: usize, quants: &[u8; QK]) {
        let base = (b / LANES) * GROUP_BYTES * self.halves + h * QK + 4 * (b % LANES);
        for j in 0..LANES {
            let at = base + j * QK * self.halves;
            self.q[at..at + 4].copy_from_slice(&quants[4 * j..4 * j + 4]);
        }
    }

    /// Index of block `b` of half `h` in the per-block arrays.
    fn lane(&self, b: usize, h: usize) -> usize {
        ((b / LANES) * self.halves + h) * LANES + b % LANES
    }
}

impl Packed {
    /// `rows` zero rows of `nb` blocks × `halves`, each filled by `fill(row index, row)`,
    /// in parallel when `parallel`.
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
            d: vec![0.0; rows * lanes],
            extra: vec![0.0; rows * lanes],
            corr: vec![0; rows * lanes],
        };
        let parts =
            p.q.par_chunks_mut(groups * GROUP_BYTES * halves)
                .zip(p.d.par_chunks_mut(lanes))
                .zip(p.extra.par_chunks_mut(lanes))
                .zip(p.corr.par_chunks_mut(lanes))
                .enumerate()
                .with_min_len(if parallel { 1 } else { usize::MAX });
        parts.for_each(|(r, (((q, d), extra), corr))| {
            fill(
                r,
                PackedRow {
                    halves,
                    q,
                    d,
                    extra,
                    corr,
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

    /// The `8 · halves` per-block values of group `g` of row `row`.
    fn lanes_ptr<T>(&self, v: &[T], row: usize, g: usize) -> *const T {
        v[(row * self.groups + g) * LANES * self.halves..].as_ptr()
    }
}

/// Packs `rows` weight rows of `nb` blocks each (on the calling thread: weight rows are
/// packed inside the parallel tasks).
#[target_feature(enable = "avx2")]
unsafe fn pack_weights<W: WeightBlock>(w: &[W], rows: usize) -> Packed {
    let nb = w.len() / rows;
    Packed::build(rows, nb, 1, false, |r, mut p| {
        let mut quants = [0u8; QK];
        for (b, blk) in w[r * nb..(r + 1) * nb].iter().enumerate() {
            // SAFETY: this function's callers hold the AVX2 guarantee.
            unsafe {
                _mm256_storeu_si256(quants.as_mut_ptr() as *mut __m256i, blk.unsigned_quants())
            };
            p.put_quants(b, 0, &quants);
            let l = p.lane(b, 0);
            p.d[l] = blk.d().to_f32();
            p.extra[l] = blk.m().to_f32();
        }
    })
}

/// Packs `n` activation rows for weights of type `W` as `⌈n / 2⌉` token pairs (an odd `n`
/// gets a zero partner), pairs in parallel.
pub(super) fn pack_acts<W: WeightBlock, A: ActBlock>(a: &[A], n: usize) -> Packed {
    let nb = a.len() / n;
    Packed::build(n.div_ceil(2), nb, 2, true, |pair, mut p| {
        for h in 0..2 {
            let t = 2 * pair + h;
            if t == n {
                break;
            }
            for (b, blk) in a[t * nb..(t + 1) * nb].iter().enumerate() {
                p.put_quants(b, h, bytemuck::cast_ref(blk.qs()));
                let l = p.lane(b, h);
                p.d[l] = blk.d().to_f32();
                p.extra[l] = blk.s().to_f32();
                if let Some(shift) = W::OFFSET_LOG2 {
                    let sum: i32 = blk.qs().iter().map(|&q| q as i32).sum();
                    p.corr[l] = sum << shift;
                }
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

impl<W: WeightBlock> Tiles for Tiled<'_, W> {
    /// Each output as the per-row kernel computes it. `t0` and `T` are even: activation
    /// rows come in pairs, one per 256-bit half of a register.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn tile<const R: usize, const T: usize>(&self, r0: usize, t0: usize) -> [[f32; T]; R] {
        let (w, a) = (self.w, self.a);
        let (pairs, p0) = (T / 2, t0 / 2);
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
            for j in 0..LANES {
                let at = g * GROUP_BYTES + j * QK;
                let mut wv = [_mm512_setzero_si512(); R];
                for r in 0..R {
                    wv[r] = _mm512_broadcast_i64x4(load(wq[r], at));
                }
                for p in 0..pairs {
                    let yv = _mm512_loadu_si512(aq[p].add(2 * at) as *const __m512i);
                    for r in 0..R {
                        isum[r][p] = _mm512_dpbusd_epi32(isum[r][p], wv[r], yv);
                    }
                }
            }
            for p in 0..pairs {
                let dy = _mm512_loadu_ps(a.lanes_ptr(&a.d, p0 + p, g));
                let corr = _mm512_loadu_si512(a.lanes_ptr(&a.corr, p0 + p, g) as *const __m512i);
                for r in 0..R {
                    let dx = both_halves(w.lanes_ptr(&w.d, r0 + r, g));
                    let tot = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[r][p], corr));
                    let mut v = _mm512_mul_ps(_mm512_mul_ps(dx, dy), tot);
                    if W::HAS_MIN {
                        let m = both_halves(w.lanes_ptr(&w.extra, r0 + r, g));
                        let s = _mm512_loadu_ps(a.lanes_ptr(&a.extra, p0 + p, g));
                        v = _mm512_add_ps(v, _mm512_mul_ps(m, s));
                    }
                    acc[r][p] = _mm512_add_ps(acc[r][p], v);
                }
            }
        }
        reduce_pairs(&acc, pairs)
    }
}

/// The outputs of `pairs` accumulator registers per weight row, each holding the 8 lanes
/// of two activation rows: lanes folded as the scalar contract does, low half first.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn reduce_pairs<const R: usize, const T: usize>(
    acc: &[[__m512; T]; R],
    pairs: usize,
) -> [[f32; T]; R] {
    let mut out = [[0f32; T]; R];
    for r in 0..R {
        for p in 0..pairs {
            let mut lanes = [0f32; 2 * LANES];
            _mm512_storeu_ps(lanes.as_mut_ptr(), acc[r][p]);
            for (h, half) in lanes.chunks_exact(LANES).enumerate() {
                out[r][2 * p + h] = reduce_lanes(half.try_into().expect("8 lanes"));
            }
        }
    }
    out
}

/// Eight floats at `p`, in both 256-bit halves.
///
/// # Safety
/// `p` must point to eight readable floats.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn both_halves(p: *const f32) -> __m512 {
    _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))))
}

/// The 32 bytes at `p + at`.
///
/// # Safety
/// They must lie inside one allocation (a packed row).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn load(p: *const u8, at: usize) -> __m256i {
    _mm256_loadu_si256(p.add(at) as *const __m256i)
}

/// The products of the weight rows `w` (matrix rows `base…`) with every activation row of
/// `a` (packed by [`pack_acts`] for `W`), written into `out`.
///
/// # Safety
/// The CPU must support the AVX-512 tier (`Isa::Avx512.is_supported()`); `w`'s rows have the
/// block count `a` was packed with; `base + w.len() / nb ≤ rows` of `out`, `a` holds
/// `out.n()` rows, and no other task writes these rows' outputs meanwhile.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn rows_block<W: WeightBlock>(w: &[W], base: usize, a: &Packed, out: SharedOut) {
    let rows = w.len() / a.nb;
    let pw = pack_weights(w, rows);
    let k = Tiled::<W> {
        w: &pw,
        a,
        ty: PhantomData,
    };
    for_each_tile::<_, TILE, TILE, 2>(&k, rows, base, out);
}
