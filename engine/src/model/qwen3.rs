//! qwen3 (llama.cpp src/models/qwen3.cpp): no biases; per-head RMSNorm of Q and K
//! (`attn_q_norm`, `attn_k_norm`, weight [head_dim], same eps) after the projections and
//! before NEOX RoPE.

use super::arch::{ArchSpec, RopeStyle};

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "qwen3",
    rope: RopeStyle::Neox,
    qkv_bias: false,
    qk_norm: true,
    moe: false,
};
