//! Errors of model loading and the forward pass.

use crate::gguf::GgufError;
use crate::kernels::KernelError;
use crate::model_file::ModelFileError;
use crate::quant::{GgmlType, QuantError};

/// What went wrong loading or running a model. Every variant names the values involved.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    File(#[from] GgufError),
    #[error(transparent)]
    ModelFile(Box<ModelFileError>),
    #[error("unsupported architecture '{arch}' (general.architecture); supported: llama, qwen2, qwen3, qwen3moe")]
    UnsupportedArch { arch: String },
    #[error(transparent)]
    MissingTensor(Box<MissingTensor>),
    #[error(transparent)]
    ShapeMismatch(Box<ShapeMismatch>),
    #[error("{file}: tensor '{tensor}' has type {ty}, which cannot be a {role}")]
    UnsupportedType {
        file: String,
        tensor: String,
        ty: GgmlType,
        role: &'static str,
    },
    #[error("{file}: hyper-parameter {key} = {value} is invalid: {reason}")]
    BadHyperParameter {
        file: String,
        key: String,
        value: String,
        reason: &'static str,
    },
    #[error("token id {token} is outside the vocabulary of {n_vocab}")]
    TokenOutOfRange { token: u32, n_vocab: usize },
    #[error("context overflow: {cached} cached + {new} new tokens exceed the context of {n_ctx}")]
    ContextOverflow {
        cached: usize,
        new: usize,
        n_ctx: usize,
    },
    #[error("nothing to evaluate: the token list is empty")]
    EmptyInput,
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Quant(#[from] QuantError),
}

/// A tensor the architecture needs is absent.
#[derive(Debug, thiserror::Error)]
#[error("{file}: architecture '{arch}' expects tensor '{tensor}' ({expected}) but the file has none{hint}")]
pub struct MissingTensor {
    pub file: String,
    pub arch: &'static str,
    pub tensor: String,
    pub expected: String,
    /// Extra context, e.g. that the file holds MoE expert tensors instead.
    pub hint: String,
}

/// A tensor's shape is not the one the architecture needs.
#[derive(Debug, thiserror::Error)]
#[error("{file}: architecture '{arch}' expects tensor '{tensor}' with shape {expected:?} (ggml ne), found {found:?}")]
pub struct ShapeMismatch {
    pub file: String,
    pub arch: &'static str,
    pub tensor: String,
    pub expected: Vec<u64>,
    pub found: Vec<u64>,
}

impl From<ModelFileError> for ModelError {
    fn from(e: ModelFileError) -> Self {
        ModelError::ModelFile(Box::new(e))
    }
}
