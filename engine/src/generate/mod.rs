//! Text generation: sampling, the prompt → tokens → text loop, chat templates, and the
//! logic behind `apr run` (docs/generation.md describes the flags and defaults).

pub mod chat;
pub mod generator;
pub mod rng;
pub mod run_cli;
pub mod sampling;
pub mod stream;

pub use generator::{
    encode_prompt, generate, load_tokenizer, GenerateOptions, Generation, StopReason, Timings,
};
pub use sampling::{BadParam, Sampler, SamplingParams};

use crate::gguf::GgufError;
use crate::model::ModelError;
use crate::tokenizer::TokenizerError;

/// What can stop a generation. Every variant says what to change.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("the prompt is empty: give some text with -p")]
    EmptyPrompt,
    #[error(
        "context overflow: {prompt} prompt tokens + {n_predict} to generate exceed the context \
         of {n_ctx} tokens (lower -n or raise --ctx; the model was trained on {n_ctx_train})"
    )]
    ContextOverflow {
        prompt: usize,
        n_predict: usize,
        n_ctx: usize,
        n_ctx_train: usize,
    },
    #[error("the context must hold at least 1 token (--ctx 0)")]
    ZeroContext,
    #[error("{file}: the file has no chat template (tokenizer.chat_template), which --chat needs; run without --chat and write the prompt in the model's format")]
    NoChatTemplate { file: String },
    #[error("chat template: {message}")]
    ChatTemplate { message: String },
    #[error("{file}: the vocabulary asks for BOS but has no tokenizer.ggml.bos_token_id, and no token {text:?} (the {arch} default) either")]
    NoBos {
        file: String,
        arch: &'static str,
        text: &'static str,
    },
    #[error(transparent)]
    BadParam(#[from] BadParam),
    #[error("cannot start a pool of {threads} threads: {message}")]
    Threads { threads: usize, message: String },
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

impl From<GgufError> for GenerateError {
    fn from(e: GgufError) -> Self {
        GenerateError::Model(ModelError::File(e))
    }
}
