//! Hyper-parameters from GGUF metadata (keys as llama.cpp's `LLM_KV_*`, src/llama-arch.cpp).

use serde::Serialize;

use super::arch::Arch;
use super::error::ModelError;
use crate::gguf::GgufFile;

/// The shape of a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HParams {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Dimensions rotated by RoPE (`rope.dimension_count`, default head_dim).
    pub n_rot: usize,
    /// Dense FFN width (0 for MoE-only models).
    pub n_ff: usize,
    pub n_expert: usize,
    pub n_expert_used: usize,
    pub n_ff_exp: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// Training context (`context_length`); the default KV-cache size.
    pub n_ctx_train: usize,
    pub n_vocab: usize,
}

impl HParams {
    /// Read the hyper-parameters of `arch` from `f`; `n_vocab` comes from `token_embd`.
    pub fn from_gguf(f: &GgufFile, arch: Arch, n_vocab: usize) -> Result<HParams, ModelError> {
        let name = arch.name();
        let key = |k: &str| format!("{name}.{k}");
        let uint = |k: &str| -> Result<usize, ModelError> {
            let v = f.get_uint_lenient(&key(k))?;
            usize::try_from(v).map_err(|_| bad(f, &key(k), v.to_string(), "does not fit usize"))
        };
        let uint_or = |k: &str, default: usize| -> Result<usize, ModelError> {
            if f.contains_key(&key(k)) {
                uint(k)
            } else {
                Ok(default)
            }
        };
        let n_embd = uint("embedding_length")?;
        let n_head = uint("attention.head_count")?;
        if n_head == 0 {
            return Err(bad(
                f,
                &key("attention.head_count"),
                "0".into(),
                "must be positive",
            ));
        }
        let n_head_kv = uint_or("attention.head_count_kv", n_head)?;
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(bad(
                f,
                &key("attention.head_count_kv"),
                n_head_kv.to_string(),
                "must divide attention.head_count",
            ));
        }
        let head_dim = uint_or("attention.key_length", n_embd / n_head)?;
        let n_rot = uint_or("rope.dimension_count", head_dim)?;
        if n_rot == 0 || n_rot > head_dim || n_rot % 2 != 0 {
            return Err(bad(
                f,
                &key("rope.dimension_count"),
                n_rot.to_string(),
                "must be even and at most the head size",
            ));
        }
        let (n_ff, n_expert, n_expert_used, n_ff_exp) = if arch.is_moe() {
            let n_expert = uint("expert_count")?;
            let used = uint("expert_used_count")?;
            if used == 0 || used > n_expert {
                return Err(bad(
                    f,
                    &key("expert_used_count"),
                    used.to_string(),
                    "must be between 1 and expert_count",
                ));
            }
            (
                uint_or("feed_forward_length", 0)?,
                n_expert,
                used,
                uint("expert_feed_forward_length")?,
            )
        } else {
            (uint("feed_forward_length")?, 0, 0, 0)
        };
        let float_or = |k: &str, default: f32| -> Result<f32, ModelError> {
            if f.contains_key(&key(k)) {
                Ok(f.get_f32(&key(k))?)
            } else {
                Ok(default)
            }
        };
        Ok(HParams {
            n_layer: uint("block_count")?,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            n_ff,
            n_expert,
            n_expert_used,
            n_ff_exp,
            // llama.cpp's default rope base (src/llama-model.cpp) when the key is absent.
            rope_base: float_or("rope.freq_base", 10_000.0)?,
            rms_eps: f.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            n_ctx_train: uint_or("context_length", 4096)?,
            n_vocab,
        })
    }

    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

fn bad(f: &GgufFile, key: &str, value: String, reason: &'static str) -> ModelError {
    ModelError::BadHyperParameter {
        file: f.origin().to_owned(),
        key: key.to_owned(),
        value,
        reason,
    }
}
