//! The one forward pass. Every intermediate tensor is offered to the observer where it is
//! born (`tap`), so tracing reads the real computation, not a copy of it.

use half::f16;
use rayon::prelude::*;

use super::arch::RopeStyle;
use super::blocks::{attention, head_rms_norm, rms_norm, rope, softmax, AttnShape};
use super::error::ModelError;
use super::linear::linear;
use super::silu::silu_rows;
use super::weights::{Ffn, Layer, Weight};
use super::{KvCache, Logits, Model};
use crate::quant::dequantize;
use crate::trace::{tap, wanted, Observer, Stage};

/// Elements per parallel task of the element-wise steps (small enough to split a prefill's
/// activations, large enough that one decoded token's stay on one thread).
const PAR_MIN: usize = 1 << 14;

impl Model {
    /// Run `tokens` (appended after what `cache` holds) through the model and return the
    /// logits of the last token, or of every token (`[n × n_vocab]`, row-major).
    pub fn forward<O: Observer + ?Sized>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        obs: &mut O,
        logits: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        let n = tokens.len();
        if n == 0 {
            return Err(ModelError::EmptyInput);
        }
        let start = cache.len;
        if start + n > cache.n_ctx {
            return Err(ModelError::ContextOverflow {
                cached: start,
                new: n,
                n_ctx: cache.n_ctx,
            });
        }
        let d = self.hp.n_embd;
        // x = token_embd[tokens]
        let mut x = self.embed(tokens)?;
        tap(obs, None, Stage::Embedding, n, &x);
        let positions: Vec<usize> = (start..start + n).collect();
        for (l, layer) in self.weights.layers.iter().enumerate() {
            self.layer(l, layer, &mut x, &positions, cache, obs)?;
        }
        cache.len = start + n;
        // Only the rows whose logits are asked for go through the head.
        let rows = match logits {
            Logits::Last => &x[(n - 1) * d..],
            Logits::All => &x[..],
        };
        let m = rows.len() / d;
        let mut normed = vec![0f32; rows.len()];
        rms_norm(
            rows,
            &self.weights.output_norm,
            self.hp.rms_eps,
            &mut normed,
        );
        tap(obs, None, Stage::FinalNorm, m, &normed);
        let mut out = vec![0f32; m * self.hp.n_vocab];
        self.linear(&self.weights.output, None, &normed, m, &mut out)?;
        tap(obs, None, Stage::LmHead, m, &out);
        Ok(out)
    }

    fn linear(
        &self,
        w: &Weight,
        expert: Option<usize>,
        x: &[f32],
        n: usize,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        linear(self.backend, self.file(), w, expert, x, n, out)
    }

    fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        let (d, w) = (self.hp.n_embd, &self.weights.token_embd);
        let data = self.file().tensor_data(&w.info);
        let row_bytes = data.len() / self.hp.n_vocab;
        let mut x = vec![0f32; tokens.len() * d];
        for (&t, row) in tokens.iter().zip(x.chunks_exact_mut(d)) {
            let t_idx = t as usize;
            if t_idx >= self.hp.n_vocab {
                return Err(ModelError::TokenOutOfRange {
                    token: t,
                    n_vocab: self.hp.n_vocab,
                });
            }
            dequantize(w.ty(), &data[t_idx * row_bytes..][..row_bytes], row)?;
        }
        Ok(x)
    }

    fn layer<O: Observer + ?Sized>(
        &self,
        l: usize,
        w: &Layer,
        x: &mut [f32],
        positions: &[usize],
        cache: &mut KvCache,
        obs: &mut O,
    ) -> Result<(), ModelError> {
        let hp = &self.hp;
        let spec = self.arch.spec();
        let (n, d, qd, kvd) = (positions.len(), hp.n_embd, hp.q_dim(), hp.kv_dim());
        let at = Some(l);
        // h = rms_norm(x) ⊙ w_attn
        let mut h = vec![0f32; n * d];
        rms_norm(x, &w.attn_norm, hp.rms_eps, &mut h);
        tap(obs, at, Stage::AttnNorm, n, &h);
        // q, k, v = W_q·h, W_k·h, W_v·h
        let (mut q, mut k, mut v) = (vec![0f32; n * qd], vec![0f32; n * kvd], vec![0f32; n * kvd]);
        self.linear(&w.wq, None, &h, n, &mut q)?;
        self.linear(&w.wk, None, &h, n, &mut k)?;
        self.linear(&w.wv, None, &h, n, &mut v)?;
        offer_concat(obs, at, Stage::QkvMatmul, n, [&q, &k, &v]);
        if let (Some(bq), Some(bk), Some(bv)) = (&w.bq, &w.bk, &w.bv) {
            // q, k, v += b_q, b_k, b_v
            add_rows(&mut q, bq);
            add_rows(&mut k, bk);
            add_rows(&mut v, bv);
            offer_concat(obs, at, Stage::QkvBias, n, [&q, &k, &v]);
        }
        if let (Some(qn), Some(kn)) = (&w.q_norm, &w.k_norm) {
            // per head: q = rms_norm(q) ⊙ w_q_norm, k likewise
            head_rms_norm(&mut q, qn, hp.rms_eps);
            tap(obs, at, Stage::QNorm, n, &q);
            head_rms_norm(&mut k, kn, hp.rms_eps);
            tap(obs, at, Stage::KNorm, n, &k);
        }
        let style: RopeStyle = spec.rope;
        rope(
            &mut q,
            hp.head_dim,
            hp.n_rot,
            positions,
            hp.rope_base,
            style,
        );
        tap(obs, at, Stage::QPostRope, n, &q);
        rope(
            &mut k,
            hp.head_dim,
            hp.n_rot,
            positions,
            hp.rope_base,
            style,
        );
        tap(obs, at, Stage::KPostRope, n, &k);
        // Append k, v to the cache, then attend over everything cached so far.
        let start = positions[0];
        let end = start + n;
        for (dst, &src) in cache.k[l][start * kvd..end * kvd].iter_mut().zip(&k) {
            *dst = f16::from_f32(src);
        }
        for (dst, &src) in cache.v[l][start * kvd..end * kvd].iter_mut().zip(&v) {
            *dst = f16::from_f32(src);
        }
        let shape = AttnShape {
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim: hp.head_dim,
        };
        let mut attn = vec![0f32; n * qd];
        attention(
            &q,
            &cache.k[l][..end * kvd],
            &cache.v[l][..end * kvd],
            start,
            &shape,
            &mut attn,
        );
        tap(obs, at, Stage::Attention, n, &attn);
        // x += W_o·attn
        let mut o = vec![0f32; n * d];
        self.linear(&w.wo, None, &attn, n, &mut o)?;
        tap(obs, at, Stage::AttnOut, n, &o);
        add_assign(x, &o);
        tap(obs, at, Stage::PostAttnResidual, n, x);
        // m = rms_norm(x) ⊙ w_ffn
        rms_norm(x, &w.ffn_norm, hp.rms_eps, &mut h);
        tap(obs, at, Stage::FfnNorm, n, &h);
        let ffn_out = match &w.ffn {
            Ffn::Dense { gate, up, down } => self.swiglu(at, gate, up, down, &h, n, obs)?,
            Ffn::Moe {
                router,
                gate_exps,
                up_exps,
                down_exps,
            } => self.moe(at, [router, gate_exps, up_exps, down_exps], &h, n, obs)?,
        };
        tap(obs, at, Stage::FfnOut, n, &ffn_out);
        // x += ffn(m)
        add_assign(x, &ffn_out);
        tap(obs, at, Stage::PostFfnResidual, n, x);
        tap(obs, at, Stage::LayerOutput, n, x);
        Ok(())
    }

    /// y = W_down(silu(W_gate·m) ⊙ W_up·m)
    #[allow(clippy::too_many_arguments)]
    fn swiglu<O: Observer + ?Sized>(
        &self,
        at: Option<usize>,
        gate: &Weight,
        up: &Weight,
        down: &Weight,
        m: &[f32],
        n: usize,
        obs: &mut O,
    ) -> Result<Vec<f32>, ModelError> {
        let ff = gate.info.ne[1] as usize;
        let mut g = vec![0f32; n * ff];
        let mut u = vec![0f32; n * ff];
        self.linear(gate, None, m, n, &mut g)?;
        tap(obs, at, Stage::FfnGate, n, &g);
        self.linear(up, None, m, n, &mut u)?;
        tap(obs, at, Stage::FfnUp, n, &u);
        g.par_chunks_mut(ff * (PAR_MIN / ff).max(1))
            .for_each(|rows| silu_rows(rows, ff));
        tap(obs, at, Stage::FfnSilu, n, &g);
        g.par_iter_mut()
            .zip(&u)
            .with_min_len(PAR_MIN)
            .for_each(|(a, b)| *a *= b);
        tap(obs, at, Stage::FfnSwigl, n, &g);
        let mut y = vec![0f32; n * self.hp.n_embd];
        self.linear(down, None, &g, n, &mut y)?;
        Ok(y)
    }

    /// Mixture of experts, as llama.cpp's `build_moe_ffn` for qwen3moe: softmax over all
    /// router logits, top-k, renormalised weights, SwiGLU experts, weighted sum in slot
    /// order. Tokens are grouped by expert so each expert runs one matrix product.
    fn moe<O: Observer + ?Sized>(
        &self,
        at: Option<usize>,
        [router, gate, up, down]: [&Weight; 4],
        m: &[f32],
        n: usize,
        obs: &mut O,
    ) -> Result<Vec<f32>, ModelError> {
        let (d, e_n, k, ff) = (
            self.hp.n_embd,
            self.hp.n_expert,
            self.hp.n_expert_used,
            self.hp.n_ff_exp,
        );
        let mut probs = vec![0f32; n * e_n];
        self.linear(router, None, m, n, &mut probs)?;
        tap(obs, at, Stage::MoeRouterLogits, n, &probs);
        let mut ids = vec![0usize; n * k];
        let mut weights = vec![0f32; n * k];
        for t in 0..n {
            let p = &mut probs[t * e_n..(t + 1) * e_n];
            softmax(p);
            let mut order: Vec<usize> = (0..e_n).collect();
            // Highest probability first; ties to the lower expert id.
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            let chosen = &order[..k];
            let sum: f64 = chosen.iter().map(|&e| f64::from(p[e])).sum();
            for (slot, &e) in chosen.iter().enumerate() {
                ids[t * k + slot] = e;
                weights[t * k + slot] = p[e] / sum as f32;
            }
        }
        if wanted(obs, at, Stage::MoeTopkIds) {
            let as_f32: Vec<f32> = ids.iter().map(|&e| e as f32).collect();
            obs.record(at, Stage::MoeTopkIds, n, &as_f32);
        }
        tap(obs, at, Stage::MoeTopkWeights, n, &weights);
        // expert_out[t, slot] = W_down,e(silu(W_gate,e·m_t) ⊙ W_up,e·m_t), e = ids[t, slot]
        let mut expert_out = vec![0f32; n * k * d];
        for e in 0..e_n {
            let routed: Vec<usize> = (0..n * k).filter(|&i| ids[i] == e).collect();
            if routed.is_empty() {
                continue;
            }
            let r = routed.len();
            let xs: Vec<f32> = routed
                .iter()
                .flat_map(|&i| m[(i / k) * d..(i / k + 1) * d].iter().copied())
                .collect();
            let mut g = vec![0f32; r * ff];
            let mut u = vec![0f32; r * ff];
            self.linear(gate, Some(e), &xs, r, &mut g)?;
            self.linear(up, Some(e), &xs, r, &mut u)?;
            silu_rows(&mut g, ff);
            g.iter_mut().zip(&u).for_each(|(a, &b)| *a *= b);
            let mut y = vec![0f32; r * d];
            self.linear(down, Some(e), &g, r, &mut y)?;
            for (row, &i) in y.chunks_exact(d).zip(&routed) {
                expert_out[i * d..(i + 1) * d].copy_from_slice(row);
            }
        }
        // out_t = Σ_slot w[t, slot] · expert_out[t, slot], summed in slot order
        let mut out = vec![0f32; n * d];
        for t in 0..n {
            let o = &mut out[t * d..(t + 1) * d];
            for slot in 0..k {
                let w = weights[t * k + slot];
                let y = &expert_out[(t * k + slot) * d..][..d];
                if slot == 0 {
                    o.iter_mut().zip(y).for_each(|(a, &b)| *a = b * w);
                } else {
                    o.iter_mut().zip(y).for_each(|(a, &b)| *a += b * w);
                }
            }
        }
        tap(obs, at, Stage::MoeOut, n, &out);
        Ok(out)
    }
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, &b)| *a += b);
}

/// Add a bias vector to every row.
fn add_rows(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        add_assign(row, b);
    }
}

/// Offer the per-position concatenation of several tensors, built only if it is wanted.
fn offer_concat<O: Observer + ?Sized, const K: usize>(
    obs: &mut O,
    layer: Option<usize>,
    stage: Stage,
    n: usize,
    parts: [&[f32]; K],
) {
    if !wanted(obs, layer, stage) {
        return;
    }
    let mut cat = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for t in 0..n {
        for p in parts {
            let w = p.len() / n;
            cat.extend_from_slice(&p[t * w..(t + 1) * w]);
        }
    }
    obs.record(layer, stage, n, &cat);
}
