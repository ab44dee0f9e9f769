//! The stage vocabulary (DESIGN §4). Kept here as a list until the engine exports its
//! `Stage` enum; then this module should re-export the engine's names instead.

/// Per-layer stages, in compute order.
pub const LAYER_STAGES: &[&str] = &[
    "attn_norm",
    "qkv_matmul",
    "qkv_bias",
    "q_norm",
    "k_norm",
    "q_post_rope",
    "k_post_rope",
    "attention",
    "attn_out",
    "post_attn_residual",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_silu",
    "ffn_swigl",
    "moe_router_logits",
    "moe_topk_ids",
    "moe_topk_weights",
    "moe_out",
    "ffn_out",
    "post_ffn_residual",
    "layer_output",
];

/// Whole-model stages (no layer index).
pub const MODEL_STAGES: &[&str] = &["embedding", "final_norm", "lm_head"];

/// Whether `name` is a stage (or the word `all`, which capture flags accept).
pub fn is_stage(name: &str) -> bool {
    LAYER_STAGES.contains(&name) || MODEL_STAGES.contains(&name)
}

/// Position of a stage in compute order (embedding first, lm_head last); used to sort
/// heatmap columns.
pub fn order(name: &str) -> usize {
    match name {
        "embedding" => 0,
        "final_norm" => LAYER_STAGES.len() + 1,
        "lm_head" => LAYER_STAGES.len() + 2,
        _ => LAYER_STAGES
            .iter()
            .position(|s| *s == name)
            .map_or(usize::MAX, |p| p + 1),
    }
}
