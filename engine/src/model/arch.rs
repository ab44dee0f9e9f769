//! The supported architectures and what distinguishes them. Each architecture's file
//! (`llama.rs`, `qwen2.rs`, `qwen3.rs`, `qwen3moe.rs`) states its [`ArchSpec`]; the shared
//! blocks in `blocks.rs` and the one forward pass in `forward.rs` read it.

use serde::Serialize;

use super::hparams::HParams;
use super::{llama, qwen2, qwen3, qwen3moe};
use crate::trace::Stage;

/// A model architecture (`general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Qwen3Moe,
}

/// How RoPE pairs dimensions (ggml `GGML_ROPE_TYPE_NORM` / `GGML_ROPE_TYPE_NEOX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RopeStyle {
    /// Adjacent pairs (2i, 2i+1).
    Normal,
    /// Pairs (i, i + n_rot/2).
    Neox,
}

/// What one architecture's layers contain.
#[derive(Debug, Clone, Copy)]
pub struct ArchSpec {
    pub name: &'static str,
    pub rope: RopeStyle,
    /// Q, K and V projections carry biases.
    pub qkv_bias: bool,
    /// Per-head RMSNorm of Q and K before RoPE.
    pub qk_norm: bool,
    /// Mixture-of-experts FFN instead of a dense SwiGLU.
    pub moe: bool,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Qwen3Moe];

    /// The architecture a GGUF `general.architecture` value names.
    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn spec(self) -> &'static ArchSpec {
        match self {
            Arch::Llama => &llama::SPEC,
            Arch::Qwen2 => &qwen2::SPEC,
            Arch::Qwen3 => &qwen3::SPEC,
            Arch::Qwen3Moe => &qwen3moe::SPEC,
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn is_moe(self) -> bool {
        self.spec().moe
    }

    /// Every stage this architecture's forward pass emits, in compute order. A test runs
    /// each fixture with a recording observer and checks that exactly these appear.
    pub fn stages(self) -> Vec<Stage> {
        let s = self.spec();
        Stage::ALL
            .into_iter()
            .filter(|stage| match stage {
                Stage::QkvBias => s.qkv_bias,
                Stage::QNorm | Stage::KNorm => s.qk_norm,
                Stage::FfnGate | Stage::FfnUp | Stage::FfnSilu | Stage::FfnSwigl => !s.moe,
                Stage::MoeRouterLogits
                | Stage::MoeTopkIds
                | Stage::MoeTopkWeights
                | Stage::MoeOut => s.moe,
                _ => true,
            })
            .collect()
    }
}

impl Arch {
    /// Features per position of a stage's tensor (its shape is [positions, features]).
    pub fn stage_features(self, stage: Stage, hp: &HParams) -> usize {
        let (d, q, kv) = (hp.n_embd, hp.q_dim(), hp.kv_dim());
        match stage {
            Stage::QkvMatmul | Stage::QkvBias => q + 2 * kv,
            Stage::QNorm | Stage::QPostRope | Stage::Attention => q,
            Stage::KNorm | Stage::KPostRope => kv,
            Stage::FfnGate | Stage::FfnUp | Stage::FfnSilu | Stage::FfnSwigl => hp.n_ff,
            Stage::MoeRouterLogits => hp.n_expert,
            Stage::MoeTopkIds | Stage::MoeTopkWeights => hp.n_expert_used,
            Stage::LmHead => hp.n_vocab,
            Stage::Embedding
            | Stage::AttnNorm
            | Stage::AttnOut
            | Stage::PostAttnResidual
            | Stage::FfnNorm
            | Stage::MoeOut
            | Stage::FfnOut
            | Stage::PostFfnResidual
            | Stage::LayerOutput
            | Stage::FinalNorm => d,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
