//! llama (llama.cpp src/models/llama.cpp): per layer
//! x += W_o · attn(rope_norm(W_q·n), rope_norm(W_k·n), W_v·n) with n = rms_norm(x)·w_attn;
//! x += W_down(silu(W_gate·m) ⊙ W_up·m) with m = rms_norm(x)·w_ffn. Adjacent-pair RoPE.

use super::arch::{ArchSpec, RopeStyle};

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "llama",
    rope: RopeStyle::Normal,
    qkv_bias: false,
    qk_norm: false,
    moe: false,
};
