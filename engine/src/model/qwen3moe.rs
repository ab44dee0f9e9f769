//! qwen3moe (llama.cpp src/models/qwen3moe.cpp): qwen3 attention; the FFN is a mixture of
//! experts: router logits `ffn_gate_inp`·m over all experts → softmax → top-k → the chosen
//! probabilities divided by their sum → Σ_k w_k · W_down,k(silu(W_gate,k·m) ⊙ W_up,k·m).
//! No shared expert. Differs from qwen3 only in the FFN.

use super::arch::{ArchSpec, RopeStyle};

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "qwen3moe",
    rope: RopeStyle::Neox,
    qkv_bias: false,
    qk_norm: true,
    moe: true,
};
