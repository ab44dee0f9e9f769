//! The loop over register tiles shared by the batched AVX-512 kernels
//! ([`super::gemm_avx512`], [`super::gemm_k_avx512`]).
//!
//! A task owns a chunk of weight rows, packed once. It walks the activation rows `T` at a
//! time and, for each such slice, every weight row of the chunk `R` at a time: the slice of
//! activations stays in L1 while the chunk's packed rows (a few tens of KiB) stream past it.
//! Leftover weight rows and activation rows go through 1-wide tiles. Which tile computes an
//! output changes none of its bits: every tile computes each of its outputs exactly as the
//! per-row dot product does.

use super::matmul::SharedOut;

/// Packed weight rows × packed activation rows, computed in register tiles.
pub(super) trait Tiles {
    /// The `R × T` outputs of weight rows `r0..r0 + R` with activation rows `t0..t0 + T`.
    ///
    /// # Safety
    /// The CPU must support the AVX-512 tier; the rows must exist in the packed operands.
    unsafe fn tile<const R: usize, const T: usize>(&self, r0: usize, t0: usize) -> [[f32; T]; R];
}

/// Writes the outputs of the `rows` packed weight rows of `k` (matrix rows `base…`) with all
/// `out.n()` activation rows, in tiles of `R × T`, the leftover activation rows in tiles of
/// `R × U` (whose outputs past the last activation row are dropped: kernels that take
/// activation rows in pairs pad the last pair).
///
/// # Safety
/// The CPU must support the AVX-512 tier; `k` holds `rows` weight rows and `out.n()`
/// activation rows; `base + rows` ≤ the rows of `out`, and no other task writes these rows'
/// outputs meanwhile.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn for_each_tile<K: Tiles, const R: usize, const T: usize, const U: usize>(
    k: &K,
    rows: usize,
    base: usize,
    out: SharedOut,
) {
    let n = out.n();
    let mut t0 = 0;
    while t0 + T <= n {
        across_rows::<K, R, T>(k, rows, t0, base, out);
        t0 += T;
    }
    while t0 < n {
        across_rows::<K, R, U>(k, rows, t0, base, out);
        t0 += U;
    }
}

/// The outputs of activation rows `t0..t0 + T` with every weight row, `R` rows at a time.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn across_rows<K: Tiles, const R: usize, const T: usize>(
    k: &K,
    rows: usize,
    t0: usize,
    base: usize,
    out: SharedOut,
) {
    let mut r0 = 0;
    while r0 + R <= rows {
        put(out, base + r0, t0, &k.tile::<R, T>(r0, t0));
        r0 += R;
    }
    for r in r0..rows {
        put(out, base + r, t0, &k.tile::<1, T>(r, t0));
    }
}

/// Stores a tile whose first output is `[t0, r0]`.
///
/// # Safety
/// As [`SharedOut::set`] for every output of the tile.
#[inline]
unsafe fn put<const R: usize, const T: usize>(
    out: SharedOut,
    r0: usize,
    t0: usize,
    v: &[[f32; T]; R],
) {
    let live = T.min(out.n() - t0);
    for (r, row) in v.iter().enumerate() {
        for (t, &y) in row[..live].iter().enumerate() {
            out.set(t0 + t, r0 + r, y);
        }
    }
}
