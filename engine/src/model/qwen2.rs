//! qwen2 (llama.cpp src/models/qwen2.cpp): llama plus biases on Q, K and V, with NEOX RoPE.

use super::arch::{ArchSpec, RopeStyle};

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "qwen2",
    rope: RopeStyle::Neox,
    qkv_bias: true,
    qk_norm: false,
    moe: false,
};
