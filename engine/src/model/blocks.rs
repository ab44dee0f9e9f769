//! The shared building blocks of every architecture, each as ggml computes it.

use half::{f16, slice::HalfFloatSliceExt};
use rayon::prelude::*;

use super::arch::RopeStyle;
#[cfg(target_arch = "x86_64")]
use super::lanes::Avx2;
use super::lanes::{chunk, fold, Lanes, Plain, WIDTH};

/// `out = x / √(mean(x²) + eps) ⊙ w` per row of `w.len()` values (ggml `rms_norm` then
/// `mul`: the sum of squares in f64, the scale in f32).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (xr, yr) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let sum: f64 = xr.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / d as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((y, &v), &g) in yr.iter_mut().zip(xr).zip(w) {
            *y = (v * scale) * g;
        }
    }
}

/// Per-head RMSNorm in place: `x` holds rows of heads of `w.len()` values each.
pub fn head_rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    let src = x.to_vec();
    rms_norm(&src, w, eps, x);
}

/// Rotate each head of each row by its position (ggml `rope_f32`): pair angle
/// θ_i = p·base^(−2i/n_rot), computed as ggml does by repeated multiplication in f32, and
/// each pair rotated as llama.cpp's x86 build computes it: GCC contracts ggml's
/// `x0·cos − x1·sin` and `x0·sin + x1·cos` (`rotate_pairs` in `ggml-cpu/ops.cpp`) into
/// `fma(x0, cos, −(x1·sin))` and `fma(x0, sin, x1·cos)`. Checked bit for bit against
/// llama.cpp's own rotations of its own inputs (`llama_ops.rs`); the unfused expressions
/// differ from it in 13–18% of values.
pub fn rope(
    x: &mut [f32],
    head_dim: usize,
    n_rot: usize,
    positions: &[usize],
    base: f32,
    style: RopeStyle,
) {
    let row = x.len() / positions.len().max(1);
    let theta_scale = base.powf(-2.0 / n_rot as f32);
    for (xr, &p) in x.chunks_exact_mut(row).zip(positions) {
        let mut cos_sin = Vec::with_capacity(n_rot / 2);
        let mut theta = p as f32;
        for _ in 0..n_rot / 2 {
            cos_sin.push((theta.cos(), theta.sin()));
            theta *= theta_scale;
        }
        let pair = |i: usize| match style {
            RopeStyle::Normal => (2 * i, 2 * i + 1),
            RopeStyle::Neox => (i, i + n_rot / 2),
        };
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has FMA (checked just above).
            unsafe { rotate_fma(xr, head_dim, &cos_sin, pair) };
            continue;
        }
        rotate(xr, head_dim, &cos_sin, pair);
    }
}

/// The rotations of one row: `f32::mul_add` is one correctly rounded fused multiply-add
/// whatever the CPU (a library call where the target lacks an FMA instruction).
#[inline(always)]
fn rotate(
    xr: &mut [f32],
    head_dim: usize,
    cos_sin: &[(f32, f32)],
    pair: impl Fn(usize) -> (usize, usize),
) {
    for head in xr.chunks_exact_mut(head_dim) {
        for (i, &(c, s)) in cos_sin.iter().enumerate() {
            let (a, b) = pair(i);
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0.mul_add(c, -(x1 * s));
            head[b] = x0.mul_add(s, x1 * c);
        }
    }
}

/// [`rotate`] compiled with FMA instructions (the same results, without library calls).
///
/// # Safety
/// The CPU must support FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn rotate_fma(
    xr: &mut [f32],
    head_dim: usize,
    cos_sin: &[(f32, f32)],
    pair: impl Fn(usize) -> (usize, usize),
) {
    rotate(xr, head_dim, cos_sin, pair);
}

/// In-place softmax of one row (ggml `soft_max`: max-subtracted exponentials summed in f64).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Shapes of one attention call.
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
}

/// Query rows per register tile: each K and V row loaded serves this many rows.
const ROW_TILE: usize = 4;
/// Keys per register tile of the scores (with [`ROW_TILE`] rows: 8 accumulators).
const KEY_TILE: usize = 2;
/// 8-value column vectors per register tile of the outputs (likewise 8 accumulators).
const COL_TILE: usize = 2;

/// Causal grouped-query attention for `n` new tokens at positions `start..start + n`:
/// `out[t, h] = Σ_j softmax_j(q[t,h]·k[j,g]/√d) v[j,g]` over j ≤ start + t, g = h / (n_head /
/// n_head_kv). `k` and `v` hold the cache rows 0..start + n, each `n_head_kv·head_dim` wide.
///
/// Precision follows llama.cpp's default CPU graph (no flash attention, f16 KV cache):
/// the cache holds f16, Q is rounded to f16 for QKᵀ and the probabilities to f16 for the
/// product with V (ggml converts a matmul's f32 operand to the f16 weight's type); the
/// dot products and the softmax are f32. Every output value sees the same operations in the
/// same order whatever the tiling, the thread count or the SIMD tier (see `attend_rows`),
/// so results depend on none of them.
pub fn attention(q: &[f32], k: &[f16], v: &[f16], start: usize, s: &AttnShape, out: &mut [f32]) {
    // Rows in one task share every K and V row they load, so tasks are as large as a
    // register tile allows while leaving at least two tasks per thread.
    let rows = out.len() / s.head_dim;
    let per_task = (rows / (2 * rayon::current_num_threads())).clamp(1, ROW_TILE);
    attend_all(Kernel::select(), per_task, q, k, v, start, s, out);
}

/// [`attention`] with a chosen kernel and `per_task` rows per parallel task.
#[allow(clippy::too_many_arguments)]
fn attend_all(
    kernel: Kernel,
    per_task: usize,
    q: &[f32],
    k: &[f16],
    v: &[f16],
    start: usize,
    s: &AttnShape,
    out: &mut [f32],
) {
    let hd = s.head_dim;
    let group = s.n_head / s.n_head_kv;
    let n = out.len() / (s.n_head * hd);
    // Widen the cache once per call (exact: every f16 is an f32), not once per row.
    let (k, v) = (widen(k), widen(v));
    let job = Job {
        q,
        k: &k,
        v: &v,
        start,
        n_head: s.n_head,
        group,
        hd,
        kv_w: s.n_head_kv * hd,
        scale: 1.0 / (hd as f32).sqrt(),
    };
    // Outputs ordered [group][token][head in group][hd], so that every task's rows (which
    // share one K and V head) are contiguous; put back in [token][head][hd] order below.
    let mut grouped = vec![0f32; out.len()];
    grouped
        .par_chunks_mut(n * group * hd)
        .enumerate()
        .for_each(|(g, rows)| {
            rows.par_chunks_mut(per_task * hd)
                .enumerate()
                .for_each_init(Vec::new, |scratch, (i, o)| {
                    kernel.attend(&job, g, i * per_task, o, scratch)
                });
        });
    for (t, out_t) in out.chunks_exact_mut(s.n_head * hd).enumerate() {
        for (g, out_tg) in out_t.chunks_exact_mut(group * hd).enumerate() {
            out_tg.copy_from_slice(&grouped[(g * n + t) * group * hd..][..group * hd]);
        }
    }
}

/// Every f16 of `x` as an f32 (`half`'s slice conversion: F16C or FP16 instructions where
/// the CPU has them).
fn widen(x: &[f16]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    x.convert_to_f32_slice(&mut out);
    out
}

/// The operands of one attention call. The rows of KV head `g` are the (token, head in
/// group) pairs `r = t·group + i` for query head `g·group + i`, token-major.
struct Job<'a> {
    q: &'a [f32],
    /// The key cache widened to f32.
    k: &'a [f32],
    /// The value cache widened to f32.
    v: &'a [f32],
    start: usize,
    n_head: usize,
    group: usize,
    hd: usize,
    kv_w: usize,
    scale: f32,
}

impl Job<'_> {
    /// The query of row `r` of KV head `g`.
    fn q_row(&self, g: usize, r: usize) -> &[f32] {
        let (t, h) = (r / self.group, g * self.group + r % self.group);
        &self.q[(t * self.n_head + h) * self.hd..][..self.hd]
    }

    /// How many positions row `r` attends to (causal: up to and including its own).
    fn n_ctx(&self, r: usize) -> usize {
        self.start + r / self.group + 1
    }

    /// Key `j` of KV head `g`.
    fn k_row(&self, g: usize, j: usize) -> &[f32] {
        &self.k[j * self.kv_w + g * self.hd..][..self.hd]
    }

    /// Value `j` of KV head `g`.
    fn v_row(&self, g: usize, j: usize) -> &[f32] {
        &self.v[j * self.kv_w + g * self.hd..][..self.hd]
    }
}

/// Which implementation of [`Lanes`] the attention loops run on.
#[derive(Debug, Clone, Copy)]
enum Kernel {
    Plain,
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
}

impl Kernel {
    /// AVX2 where the active tier includes it and the CPU has it, plain arrays otherwise.
    fn select() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = Avx2::new() {
            return Kernel::Avx2(t);
        }
        Kernel::Plain
    }

    /// [`attend_rows`] on this kernel.
    fn attend(self, job: &Job, g: usize, r0: usize, out: &mut [f32], scratch: &mut Vec<f32>) {
        match self {
            Kernel::Plain => attend_rows(Plain, job, g, r0, out, scratch),
            // SAFETY: an `Avx2` token exists only on a CPU with AVX2 and F16C.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(t) => unsafe { attend_rows_avx2(t, job, g, r0, out, scratch) },
        }
    }
}

/// [`attend_rows`] compiled for AVX2 + F16C (no FMA: products and sums stay separate).
///
/// # Safety
/// The CPU must support AVX2 and F16C (which the token proves).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn attend_rows_avx2(
    t: Avx2,
    job: &Job,
    g: usize,
    r0: usize,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    attend_rows(t, job, g, r0, out, scratch)
}

/// Attention for rows `r0..r0 + out.len() / hd` of KV head `g`, into `out`.
///
/// Per row, exactly the operations of the one-row definition: q rounded to f16; score
/// `s_j = dot(q, k_j)·scale` with [`fold`]'s 8-lane order; [`softmax`]; `p_j` rounded to
/// f16; `o_i = (…((0 + p_0·v_0i) + p_1·v_1i) + …)` over j ascending. Tiles only decide
/// which rows' independent sums advance together.
#[inline(always)]
fn attend_rows<L: Lanes>(
    l: L,
    job: &Job,
    g: usize,
    r0: usize,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let hd = job.hd;
    let rows = out.len() / hd;
    let width = job.n_ctx(r0 + rows - 1);
    scratch.clear();
    scratch.resize(rows * (hd + width), 0.0);
    let (qr, p) = scratch.split_at_mut(rows * hd);
    for (i, qi) in qr.chunks_exact_mut(hd).enumerate() {
        qi.copy_from_slice(job.q_row(g, r0 + i));
        round_in_place(l, qi);
    }
    for a in (0..rows).step_by(ROW_TILE) {
        let (qt, pt) = (&qr[a * hd..], &mut p[a * width..]);
        match rows - a {
            1 => scores::<L, 1>(l, job, g, r0 + a, qt, pt, width),
            2 => scores::<L, 2>(l, job, g, r0 + a, qt, pt, width),
            3 => scores::<L, 3>(l, job, g, r0 + a, qt, pt, width),
            _ => scores::<L, ROW_TILE>(l, job, g, r0 + a, qt, pt, width),
        }
    }
    for (i, pi) in p.chunks_exact_mut(width).enumerate() {
        let pi = &mut pi[..job.n_ctx(r0 + i)];
        softmax(pi);
        round_in_place(l, pi);
    }
    for a in (0..rows).step_by(ROW_TILE) {
        let (pt, ot) = (&p[a * width..], &mut out[a * hd..]);
        match rows - a {
            1 => outputs::<L, 1>(l, job, g, r0 + a, pt, width, ot),
            2 => outputs::<L, 2>(l, job, g, r0 + a, pt, width, ot),
            3 => outputs::<L, 3>(l, job, g, r0 + a, pt, width, ot),
            _ => outputs::<L, ROW_TILE>(l, job, g, r0 + a, pt, width, ot),
        }
    }
}

/// Each value of `x` rounded to the nearest f16.
#[inline(always)]
fn round_in_place<L: Lanes>(l: L, x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(WIDTH);
    for c in &mut chunks {
        let c: &mut [f32; WIDTH] = c.try_into().expect("eight values");
        *c = l.to_array(l.round_f16(l.load(c)));
    }
    for v in chunks.into_remainder() {
        *v = round_f16(*v);
    }
}

/// The scaled scores of `R` consecutive rows from `r` (rounded queries in `q`, `hd` apart)
/// into `p` (rows `width` apart): keys shared by all rows in tiles of [`KEY_TILE`], then
/// each row's own later keys.
#[inline(always)]
fn scores<L: Lanes, const R: usize>(
    l: L,
    job: &Job,
    g: usize,
    r: usize,
    q: &[f32],
    p: &mut [f32],
    width: usize,
) {
    let q: [&[f32]; R] = std::array::from_fn(|a| &q[a * job.hd..][..job.hd]);
    let n: [usize; R] = std::array::from_fn(|a| job.n_ctx(r + a));
    let mut j = 0;
    while j + KEY_TILE <= n[0] {
        let k: [&[f32]; KEY_TILE] = std::array::from_fn(|b| job.k_row(g, j + b));
        let s = dots(l, &q, &k);
        for a in 0..R {
            for b in 0..KEY_TILE {
                p[a * width + j + b] = s[a][b] * job.scale;
            }
        }
        j += KEY_TILE;
    }
    for j in j..n[0] {
        let s = dots(l, &q, &[job.k_row(g, j)]);
        for a in 0..R {
            p[a * width + j] = s[a][0] * job.scale;
        }
    }
    for a in 1..R {
        for j in n[0]..n[a] {
            p[a * width + j] = dots(l, &[q[a]], &[job.k_row(g, j)])[0][0] * job.scale;
        }
    }
}

/// The `R × K` dot products of `q` with `k` (all of one length), each in eight lanes
/// (lane i takes elements i, i + 8, …, the remainder included) folded by [`fold`].
#[inline(always)]
fn dots<L: Lanes, const R: usize, const K: usize>(
    l: L,
    q: &[&[f32]; R],
    k: &[&[f32]; K],
) -> [[f32; K]; R] {
    let len = q[0].len();
    let (n, full) = (len / WIDTH, len - len % WIDTH);
    // Whole vectors as arrays of exactly `n`, so that the loop below needs no bounds checks.
    let qv: [&[[f32; WIDTH]]; R] = std::array::from_fn(|a| &vectors(q[a])[..n]);
    let kv: [&[[f32; WIDTH]]; K] = std::array::from_fn(|b| &vectors(k[b])[..n]);
    let mut acc = [[l.zero(); K]; R];
    for c in 0..n {
        let mut kc = [l.zero(); K];
        for b in 0..K {
            kc[b] = l.load(&kv[b][c]);
        }
        for a in 0..R {
            let qc = l.load(&qv[a][c]);
            for b in 0..K {
                acc[a][b] = l.add(acc[a][b], l.mul(qc, kc[b]));
            }
        }
    }
    let mut s = [[0f32; K]; R];
    for a in 0..R {
        for b in 0..K {
            s[a][b] = if full == len {
                l.sum(acc[a][b])
            } else {
                let mut lanes = l.to_array(acc[a][b]);
                for i in full..len {
                    lanes[i - full] += q[a][i] * k[b][i];
                }
                fold(&lanes)
            };
        }
    }
    s
}

/// The whole 8-value vectors at the start of `x` (any remainder left out).
#[inline(always)]
fn vectors(x: &[f32]) -> &[[f32; WIDTH]] {
    bytemuck::cast_slice(&x[..x.len() - x.len() % WIDTH])
}

/// The outputs of `R` consecutive rows from `r` (probabilities in `p`, rows `width`
/// apart) into `out` (rows `hd` apart): column tiles of 8-value vectors, then any columns
/// left over one by one.
#[inline(always)]
fn outputs<L: Lanes, const R: usize>(
    l: L,
    job: &Job,
    g: usize,
    r: usize,
    p: &[f32],
    width: usize,
    out: &mut [f32],
) {
    let hd = job.hd;
    let p: [&[f32]; R] = std::array::from_fn(|a| &p[a * width..][..job.n_ctx(r + a)]);
    let full = hd - hd % WIDTH;
    let mut c = 0;
    while c + COL_TILE * WIDTH <= full {
        weighted_sums::<L, R, COL_TILE>(l, job, g, &p, c, out);
        c += COL_TILE * WIDTH;
    }
    while c < full {
        weighted_sums::<L, R, 1>(l, job, g, &p, c, out);
        c += WIDTH;
    }
    for (a, pa) in p.iter().enumerate() {
        for i in full..hd {
            let mut o = 0f32;
            for (j, &pj) in pa.iter().enumerate() {
                o += pj * job.v_row(g, j)[i];
            }
            out[a * hd + i] = o;
        }
    }
}

/// Columns `c..c + 8·C` of the outputs of `R` rows: `o += p_j·v_j` from 0 over each row's
/// keys in order, the keys shared by all rows first (the rows' key counts grow with `a`).
#[inline(always)]
fn weighted_sums<L: Lanes, const R: usize, const C: usize>(
    l: L,
    job: &Job,
    g: usize,
    p: &[&[f32]; R],
    c: usize,
    out: &mut [f32],
) {
    let common = p[0].len();
    let shared: [&[f32]; R] = std::array::from_fn(|a| &p[a][..common]);
    let v_rows = job.v[g * job.hd + c..]
        .chunks(job.kv_w)
        .map(|row| &row[..C * WIDTH]);
    let mut acc = [[l.zero(); C]; R];
    for (j, vj) in v_rows.clone().take(common).enumerate() {
        let mut v = [l.zero(); C];
        for (b, vb) in v.iter_mut().enumerate() {
            *vb = l.load(chunk(vj, b * WIDTH));
        }
        for (acc_a, pa) in acc.iter_mut().zip(&shared) {
            let pa = l.splat(pa[j]);
            for (acc_ab, &vb) in acc_a.iter_mut().zip(&v) {
                *acc_ab = l.add(*acc_ab, l.mul(pa, vb));
            }
        }
    }
    for (acc_a, pa) in acc.iter_mut().zip(p).skip(1) {
        for (&pj, vj) in pa[common..].iter().zip(v_rows.clone().skip(common)) {
            let pj = l.splat(pj);
            for (b, acc_ab) in acc_a.iter_mut().enumerate() {
                *acc_ab = l.add(*acc_ab, l.mul(pj, l.load(chunk(vj, b * WIDTH))));
            }
        }
    }
    for (acc_a, out_a) in acc.iter().zip(out.chunks_exact_mut(job.hd)) {
        for (b, &acc_ab) in acc_a.iter().enumerate() {
            out_a[c + b * WIDTH..][..WIDTH].copy_from_slice(&l.to_array(acc_ab));
        }
    }
}

/// Round to the nearest f16 and back.
pub fn round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_of_a_constant_row_is_the_weight() {
        let mut out = [0.0; 4];
        rms_norm(&[3.0; 4], &[1.0, 2.0, 3.0, 4.0], 0.0, &mut out);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_preserves_norm_elsewhere() {
        let x0: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
        for style in [RopeStyle::Normal, RopeStyle::Neox] {
            let mut x = x0.clone();
            rope(&mut x, 8, 8, &[0], 10_000.0, style);
            assert_eq!(x, x0);
            rope(&mut x, 8, 8, &[7], 10_000.0, style);
            let n0: f32 = x0.iter().map(|v| v * v).sum();
            let n1: f32 = x.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-4, "{style:?}: {n0} vs {n1}");
            assert_ne!(x, x0);
        }
    }

    #[test]
    fn attention_to_a_single_position_returns_its_value() {
        let s = AttnShape {
            n_head: 2,
            n_head_kv: 1,
            head_dim: 2,
        };
        let mut out = [0.0; 4];
        let kv = |a: f32, b: f32| [f16::from_f32(a), f16::from_f32(b)];
        attention(
            &[1.0, 0.0, 0.0, 1.0],
            &kv(0.5, 0.5),
            &kv(7.0, -1.0),
            0,
            &s,
            &mut out,
        );
        assert_eq!(out, [7.0, -1.0, 7.0, -1.0]);
    }

    /// Dot product in eight lanes (lane i takes elements i, i + 8, …) folded pairwise, one
    /// element at a time: the order the tiled kernels must reproduce.
    fn reference_dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            acc[i % 8] += x * y;
        }
        ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
    }

    /// Attention one (token, head) at a time, straight from the definition in
    /// [`attention`]'s documentation.
    fn reference_attention(
        q: &[f32],
        k: &[f16],
        v: &[f16],
        start: usize,
        s: &AttnShape,
        out: &mut [f32],
    ) {
        let (hd, kv_w) = (s.head_dim, s.n_head_kv * s.head_dim);
        let group = s.n_head / s.n_head_kv;
        let scale = 1.0 / (hd as f32).sqrt();
        for (task, o) in out.chunks_mut(hd).enumerate() {
            let (t, h) = (task / s.n_head, task % s.n_head);
            let g = h / group;
            let qh: Vec<f32> = q[task * hd..][..hd].iter().map(|&x| round_f16(x)).collect();
            let row = |c: &[f16], j: usize| -> Vec<f32> {
                c[j * kv_w + g * hd..][..hd]
                    .iter()
                    .map(|x| x.to_f32())
                    .collect()
            };
            let mut scores: Vec<f32> = (0..start + t + 1)
                .map(|j| reference_dot(&qh, &row(k, j)) * scale)
                .collect();
            softmax(&mut scores);
            o.fill(0.0);
            for (j, &p) in scores.iter().enumerate() {
                let p = round_f16(p);
                for (oi, vi) in o.iter_mut().zip(row(v, j)) {
                    *oi += p * vi;
                }
            }
        }
    }

    /// The kernels this CPU can run.
    fn kernels() -> Vec<Kernel> {
        #[allow(unused_mut)]
        let mut all = vec![Kernel::Plain];
        #[cfg(target_arch = "x86_64")]
        all.extend(Avx2::new().map(Kernel::Avx2));
        all
    }

    #[test]
    fn tiled_attention_matches_the_one_row_definition_bit_for_bit() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        // (n_head, n_head_kv, head_dim, new tokens, cached tokens): GQA groups of 1 to 7,
        // head sizes with and without a remainder of 8, prefill and decode.
        let cases = [
            (4, 2, 64, 23, 0),
            (14, 2, 64, 9, 5),
            (6, 2, 20, 11, 3),
            (3, 3, 13, 7, 0),
            (8, 1, 72, 1, 30),
            (2, 1, 2, 5, 0),
            (4, 4, 40, 1, 17),
        ];
        for (n_head, n_head_kv, hd, n, start) in cases {
            let s = AttnShape {
                n_head,
                n_head_kv,
                head_dim: hd,
            };
            let ctx = (start + n) * n_head_kv * hd;
            let mut f = |len: usize, mag: f32| -> Vec<f32> {
                (0..len).map(|_| rng.random_range(-mag..mag)).collect()
            };
            let q = f(n * n_head * hd, 4.0);
            let k: Vec<f16> = f(ctx, 3.0).into_iter().map(f16::from_f32).collect();
            let v: Vec<f16> = f(ctx, 2.0).into_iter().map(f16::from_f32).collect();
            let mut want = vec![0f32; n * n_head * hd];
            reference_attention(&q, &k, &v, start, &s, &mut want);
            let want: Vec<u32> = want.iter().map(|x| x.to_bits()).collect();
            for kernel in kernels() {
                for per_task in [1, 3, ROW_TILE, 2 * ROW_TILE + 1] {
                    let mut got = vec![0f32; want.len()];
                    attend_all(kernel, per_task, &q, &k, &v, start, &s, &mut got);
                    let got: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
                    assert!(
                        got == want,
                        "{kernel:?}, {per_task} rows per task, shape {:?}",
                        (n_head, n_head_kv, hd, n, start)
                    );
                }
            }
        }
    }

    /// [`dots`] on `l` for the first `R` rows of `q` and `K` rows of `k`, against
    /// [`reference_dot`].
    fn check_dots<L: Lanes, const R: usize, const K: usize>(l: L, q: &[Vec<f32>], k: &[Vec<f32>]) {
        let qs: [&[f32]; R] = std::array::from_fn(|a| q[a].as_slice());
        let ks: [&[f32]; K] = std::array::from_fn(|b| k[b].as_slice());
        let got = dots(l, &qs, &ks);
        for a in 0..R {
            for b in 0..K {
                let want = reference_dot(qs[a], ks[b]);
                assert_eq!(
                    got[a][b].to_bits(),
                    want.to_bits(),
                    "{R}×{K}, length {}",
                    q[0].len()
                );
            }
        }
    }

    #[test]
    fn tiled_dot_products_match_the_one_pair_definition_bit_for_bit() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(3);
        for len in [1, 7, 8, 13, 64, 72, 100] {
            let mut rows = |m: usize| -> Vec<Vec<f32>> {
                (0..m)
                    .map(|_| (0..len).map(|_| rng.random_range(-9.0..9.0)).collect())
                    .collect()
            };
            let (q, k) = (rows(ROW_TILE), rows(KEY_TILE));
            for kernel in kernels() {
                match kernel {
                    Kernel::Plain => {
                        check_dots::<_, 1, 1>(Plain, &q, &k);
                        check_dots::<_, 3, 1>(Plain, &q, &k);
                        check_dots::<_, ROW_TILE, KEY_TILE>(Plain, &q, &k);
                    }
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Avx2(t) => {
                        check_dots::<_, 1, 1>(t, &q, &k);
                        check_dots::<_, 3, 1>(t, &q, &k);
                        check_dots::<_, ROW_TILE, KEY_TILE>(t, &q, &k);
                    }
                }
            }
        }
    }

    /// f32 values around every f16: each f16 itself, the midpoints between neighbours (the
    /// ties), one f32 step either side of them, and a sweep over all f32 bit patterns
    /// (NaNs, infinities, subnormals of both widths included).
    fn rounding_probes() -> Vec<f32> {
        let mut probes = Vec::new();
        for bits in 0..=u16::MAX {
            let (a, b) = (f16::from_bits(bits), f16::from_bits(bits.wrapping_add(1)));
            probes.push(a.to_f32());
            if a.is_finite() && b.is_finite() && a.to_f32().signum() == b.to_f32().signum() {
                let mid = ((f64::from(a.to_f32()) + f64::from(b.to_f32())) / 2.0) as f32;
                let m = mid.to_bits();
                probes.extend([mid, f32::from_bits(m - 1), f32::from_bits(m + 1)]);
            }
        }
        probes.extend([
            65504.0,
            65519.996,
            65520.0,
            65536.0,
            -65520.0,
            f32::MAX,
            f32::MIN,
        ]);
        probes.extend((0..=u32::MAX).step_by(4093).map(f32::from_bits));
        probes
    }

    #[test]
    fn every_kernel_rounds_to_f16_exactly_like_half() {
        let probes = rounding_probes();
        for kernel in kernels() {
            let mut got = probes.clone();
            match kernel {
                Kernel::Plain => round_in_place(Plain, &mut got),
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2(t) => round_in_place(t, &mut got),
            }
            for (&x, &y) in probes.iter().zip(&got) {
                let want = f16::from_f32(x).to_f32();
                assert!(
                    want.to_bits() == y.to_bits() || (want.is_nan() && y.is_nan()),
                    "{kernel:?}: {x:e} ({:#010x}) rounds to {y:e}, half says {want:e}",
                    x.to_bits()
                );
            }
        }
    }
}
