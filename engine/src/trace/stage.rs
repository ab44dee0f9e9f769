//! The stage vocabulary: one name for every intermediate tensor of a forward pass
//! (DESIGN §4). The same names appear in CLI flags, APRT files, contracts and evidence.

use serde::Serialize;

/// An intermediate tensor of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    // Whole-model, before the layers.
    Embedding,
    // Per layer, in compute order.
    AttnNorm,
    /// Q, K and V projections concatenated per position, before any bias.
    QkvMatmul,
    /// Q, K and V after their biases (qwen2).
    QkvBias,
    /// Q after the per-head RMSNorm (qwen3, qwen3moe).
    QNorm,
    /// K after the per-head RMSNorm (qwen3, qwen3moe).
    KNorm,
    QPostRope,
    KPostRope,
    /// softmax(QKᵀ/√d)·V per head, before the output projection.
    Attention,
    AttnOut,
    PostAttnResidual,
    FfnNorm,
    FfnGate,
    FfnUp,
    FfnSilu,
    /// silu(gate) ⊙ up.
    FfnSwigl,
    /// Router logits over all experts.
    MoeRouterLogits,
    /// The chosen experts' ids (as f32), best first.
    MoeTopkIds,
    /// The chosen experts' renormalised weights, best first.
    MoeTopkWeights,
    /// The weighted sum of the chosen experts' outputs.
    MoeOut,
    FfnOut,
    PostFfnResidual,
    /// The layer's output; the same tensor as `post_ffn_residual`.
    LayerOutput,
    // Whole-model, after the layers.
    FinalNorm,
    LmHead,
}

impl Stage {
    /// Every stage, in compute order.
    pub const ALL: [Stage; 25] = [
        Stage::Embedding,
        Stage::AttnNorm,
        Stage::QkvMatmul,
        Stage::QkvBias,
        Stage::QNorm,
        Stage::KNorm,
        Stage::QPostRope,
        Stage::KPostRope,
        Stage::Attention,
        Stage::AttnOut,
        Stage::PostAttnResidual,
        Stage::FfnNorm,
        Stage::FfnGate,
        Stage::FfnUp,
        Stage::FfnSilu,
        Stage::FfnSwigl,
        Stage::MoeRouterLogits,
        Stage::MoeTopkIds,
        Stage::MoeTopkWeights,
        Stage::MoeOut,
        Stage::FfnOut,
        Stage::PostFfnResidual,
        Stage::LayerOutput,
        Stage::FinalNorm,
        Stage::LmHead,
    ];

    /// The stage's name, as written in flags, files and contracts.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Embedding => "embedding",
            Stage::AttnNorm => "attn_norm",
            Stage::QkvMatmul => "qkv_matmul",
            Stage::QkvBias => "qkv_bias",
            Stage::QNorm => "q_norm",
            Stage::KNorm => "k_norm",
            Stage::QPostRope => "q_post_rope",
            Stage::KPostRope => "k_post_rope",
            Stage::Attention => "attention",
            Stage::AttnOut => "attn_out",
            Stage::PostAttnResidual => "post_attn_residual",
            Stage::FfnNorm => "ffn_norm",
            Stage::FfnGate => "ffn_gate",
            Stage::FfnUp => "ffn_up",
            Stage::FfnSilu => "ffn_silu",
            Stage::FfnSwigl => "ffn_swigl",
            Stage::MoeRouterLogits => "moe_router_logits",
            Stage::MoeTopkIds => "moe_topk_ids",
            Stage::MoeTopkWeights => "moe_topk_weights",
            Stage::MoeOut => "moe_out",
            Stage::FfnOut => "ffn_out",
            Stage::PostFfnResidual => "post_ffn_residual",
            Stage::LayerOutput => "layer_output",
            Stage::FinalNorm => "final_norm",
            Stage::LmHead => "lm_head",
        }
    }

    /// The stage with this name.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whole-model stages have no layer index.
    pub const fn is_whole_model(self) -> bool {
        matches!(self, Stage::Embedding | Stage::FinalNorm | Stage::LmHead)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Receives intermediate tensors from the forward pass.
///
/// The forward pass asks [`Observer::wants`] before it copies or converts anything, so an
/// observer that wants nothing costs a predictable branch; [`NoObserver`] compiles to
/// nothing.
pub trait Observer {
    /// Whether the tensor of `stage` at `layer` (`None` for whole-model stages) is wanted.
    fn wants(&self, layer: Option<usize>, stage: Stage) -> bool;
    /// A wanted tensor: `positions` rows of `data.len() / positions` features, row-major.
    fn record(&mut self, layer: Option<usize>, stage: Stage, positions: usize, data: &[f32]);
}

impl<O: Observer + ?Sized> Observer for &mut O {
    #[inline(always)]
    fn wants(&self, layer: Option<usize>, stage: Stage) -> bool {
        (**self).wants(layer, stage)
    }

    #[inline(always)]
    fn record(&mut self, layer: Option<usize>, stage: Stage, positions: usize, data: &[f32]) {
        (**self).record(layer, stage, positions, data);
    }
}

/// The observer that wants nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {
    #[inline(always)]
    fn wants(&self, _layer: Option<usize>, _stage: Stage) -> bool {
        false
    }

    #[inline(always)]
    fn record(&mut self, _layer: Option<usize>, _stage: Stage, _positions: usize, _data: &[f32]) {}
}

/// Offer a tensor to an observer: `tap(obs, Some(l), Stage::FfnGate, n, &gate)`.
#[inline(always)]
pub fn tap<O: Observer + ?Sized>(
    obs: &mut O,
    layer: Option<usize>,
    stage: Stage,
    positions: usize,
    data: &[f32],
) {
    if wanted(obs, layer, stage) {
        obs.record(layer, stage, positions, data);
    }
}

/// Whether `obs` wants a tensor; for taps that must build the tensor first. Always false in
/// a build with the `no-taps` feature, which exists only to measure what taps cost
/// (`benches/taps.rs`).
#[inline(always)]
pub fn wanted<O: Observer + ?Sized>(obs: &O, layer: Option<usize>, stage: Stage) -> bool {
    !cfg!(feature = "no-taps") && obs.wants(layer, stage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_compute_order() {
        for (i, s) in Stage::ALL.into_iter().enumerate() {
            assert_eq!(Stage::from_name(s.name()), Some(s));
            assert_eq!(Stage::ALL.iter().position(|&t| t == s), Some(i));
        }
        assert_eq!(Stage::from_name("ffn_gate"), Some(Stage::FfnGate));
        assert_eq!(Stage::from_name("nope"), None);
        let mut sorted = Stage::ALL;
        sorted.sort();
        assert_eq!(sorted, Stage::ALL, "Ord is compute order");
    }
}
