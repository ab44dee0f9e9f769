//! The shared building blocks of every architecture, each as ggml computes it.

use half::f16;
use rayon::prelude::*;

use super::arch::RopeStyle;

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
/// θ_i = p·base^(−2i/n_rot), computed as ggml does by repeated multiplication in f32.
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
        for head in xr.chunks_exact_mut(head_dim) {
            for (i, &(c, s)) in cos_sin.iter().enumerate() {
                let (a, b) = match style {
                    RopeStyle::Normal => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + n_rot / 2),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
        }
    }
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

/// SiLU: x·σ(x).
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Shapes of one attention call.
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
}

/// Causal grouped-query attention for `n` new tokens at positions `start..start + n`:
/// `out[t, h] = Σ_j softmax_j(q[t,h]·k[j,g]/√d) v[j,g]` over j ≤ start + t, g = h / (n_head /
/// n_head_kv). `k` and `v` hold the cache rows 0..start + n, each `n_head_kv·head_dim` wide.
///
/// Precision follows llama.cpp's default CPU graph (no flash attention, f16 KV cache):
/// the cache holds f16, Q is rounded to f16 for QKᵀ and the probabilities to f16 for the
/// product with V (ggml converts a matmul's f32 operand to the f16 weight's type); the
/// dot products and the softmax are f32. One (token, head) per task, so results do not
/// depend on the thread count.
pub fn attention(q: &[f32], k: &[f16], v: &[f16], start: usize, s: &AttnShape, out: &mut [f32]) {
    let (hd, kv_w) = (s.head_dim, s.n_head_kv * s.head_dim);
    let group = s.n_head / s.n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    // Widen the cache once per call (exact: every f16 is an f32), not once per head.
    let k: Vec<f32> = k.iter().map(|x| x.to_f32()).collect();
    let v: Vec<f32> = v.iter().map(|x| x.to_f32()).collect();
    out.par_chunks_mut(hd).enumerate().for_each(|(task, o)| {
        let (t, h) = (task / s.n_head, task % s.n_head);
        let g = h / group;
        let qh: Vec<f32> = q[(t * s.n_head + h) * hd..][..hd]
            .iter()
            .map(|&x| round_f16(x))
            .collect();
        let n_ctx = start + t + 1;
        let mut scores: Vec<f32> = (0..n_ctx)
            .map(|j| dot(&qh, &k[j * kv_w + g * hd..][..hd]) * scale)
            .collect();
        softmax(&mut scores);
        o.fill(0.0);
        for (j, &p) in scores.iter().enumerate() {
            let p = round_f16(p);
            let vj = &v[j * kv_w + g * hd..][..hd];
            for (oi, &vi) in o.iter_mut().zip(vj) {
                *oi += p * vi;
            }
        }
    });
}

/// Dot product in eight interleaved f32 partial sums (lane i takes elements i, i+8, …),
/// added pairwise at the end: a fixed order, so results never depend on the caller, and
/// one the compiler vectorises.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[i] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
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
}
