//! Models: hyper-parameters, architecture-aware weight loading, the KV cache, and the one
//! forward pass that every backend and every trace runs.

mod arch;
mod blocks;
mod error;
mod forward;
mod hparams;
mod lanes;
mod linear;
mod llama;
#[cfg(test)]
mod llama_ops;
mod qwen2;
mod qwen3;
mod qwen3moe;
mod silu;
mod weights;

use std::path::Path;

use half::f16;

pub use arch::{Arch, ArchSpec, RopeStyle};
pub use error::{MissingTensor, ModelError, ShapeMismatch};
pub use hparams::HParams;
pub use linear::Backend;
pub use weights::{Ffn, Layer, Weight, Weights};

use crate::gguf::GgufFile;
use crate::model_file::ModelFile;

/// Which logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token's (generation).
    Last,
    /// Every token's, `[n × n_vocab]` (evaluation, tracing).
    All,
}

/// A loaded model: the mapped file, its shape and its tensors.
#[derive(Debug)]
pub struct Model {
    file: ModelFile,
    arch: Arch,
    hp: HParams,
    weights: Weights,
    backend: Backend,
}

/// Keys and values of every layer for the tokens evaluated so far.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// f16, as llama.cpp's default cache type.
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
    len: usize,
    n_ctx: usize,
}

impl KvCache {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens it can hold.
    pub fn capacity(&self) -> usize {
        self.n_ctx
    }

    /// Forget everything (keeps the allocation).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl Model {
    /// Map a model file (GGUF or APR) and load it on `backend`.
    pub fn open(path: impl AsRef<Path>, backend: Backend) -> Result<Model, ModelError> {
        Model::from_file(ModelFile::open(path)?, backend)
    }

    /// Load a model from an opened file, checking every tensor its architecture needs.
    pub fn from_file(file: impl Into<ModelFile>, backend: Backend) -> Result<Model, ModelError> {
        let file: ModelFile = file.into();
        let f = file.as_gguf();
        let name = f.get_str("general.architecture")?;
        let arch = Arch::from_name(name).ok_or_else(|| ModelError::UnsupportedArch {
            arch: name.to_owned(),
        })?;
        let n_vocab = match f.find_tensor("token_embd.weight") {
            Some(t) if t.ne.len() == 2 => t.ne[1] as usize,
            _ => f.get_str_array("tokenizer.ggml.tokens")?.len(),
        };
        let hp = HParams::from_gguf(f, arch, n_vocab)?;
        let weights = Weights::load(f, arch, &hp)?;
        Ok(Model {
            file,
            arch,
            hp,
            weights,
            backend,
        })
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn hparams(&self) -> &HParams {
        &self.hp
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying file's content (metadata, tokenizer, raw tensors), whatever its format.
    pub fn file(&self) -> &GgufFile {
        self.file.as_gguf()
    }

    /// The underlying file with its format.
    pub fn model_file(&self) -> &ModelFile {
        &self.file
    }

    /// An empty cache for up to `n_ctx` tokens.
    pub fn new_cache(&self, n_ctx: usize) -> KvCache {
        let size = n_ctx * self.hp.kv_dim();
        KvCache {
            k: vec![vec![f16::ZERO; size]; self.hp.n_layer],
            v: vec![vec![f16::ZERO; size]; self.hp.n_layer],
            len: 0,
            n_ctx,
        }
    }
}
