//! Prompt to text: tokenize, prefill the whole prompt in one batched forward pass, then
//! decode one token at a time through the KV cache until an end-of-generation token or
//! the token budget.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::sampling::{Sampler, SamplingParams};
use super::stream::Utf8Stream;
use super::GenerateError;
use crate::model::{Arch, Logits, Model, ModelError};
use crate::tokenizer::{Tokenizer, TokenizerError, VocabSpec};
use crate::trace::NoObserver;

/// llama.cpp's default context (`n_ctx = 4096` in common/common.h); a model trained on a
/// shorter context gets that instead. The KV cache is allocated whole, so a 256k-token
/// training context must not become the default.
pub const DEFAULT_CTX: usize = 4096;

/// The context a run gets when none is asked for: `min(n_ctx_train, 4096)`.
pub fn default_ctx(model: &Model) -> usize {
    model.hparams().n_ctx_train.clamp(1, DEFAULT_CTX)
}

/// The BOS text an architecture's tokenizer uses, for a vocabulary that asks for BOS but
/// names none: `<s>` for llama (SentencePiece), `<|endoftext|>` for the Qwen family
/// (the id Qwen's GGUF conversions write as `bos_token_id`).
pub fn default_bos_text(arch: Arch) -> &'static str {
    match arch {
        Arch::Llama => "<s>",
        Arch::Qwen2 | Arch::Qwen3 | Arch::Qwen3Moe => "<|endoftext|>",
    }
}

/// The model's tokenizer. When the vocabulary asks for BOS (`add_bos_token`, or the
/// tokenizer model's default) but has no `tokenizer.ggml.bos_token_id`, the architecture's
/// default BOS ([`default_bos_text`]) is used; the returned notice says so (print it).
pub fn load_tokenizer(model: &Model) -> Result<(Tokenizer, Option<String>), GenerateError> {
    let spec = VocabSpec::from_gguf(model.file()).map_err(ModelError::from)?;
    match Tokenizer::new(spec.clone()) {
        Err(TokenizerError::MissingSpecial {
            key: "tokenizer.ggml.bos_token_id",
        }) => {
            let text = default_bos_text(model.arch());
            let Some(id) = spec.tokens.iter().position(|t| t == text) else {
                return Err(GenerateError::NoBos {
                    file: model.file().origin().to_owned(),
                    arch: model.arch().name(),
                    text,
                });
            };
            let tokenizer = Tokenizer::new(VocabSpec {
                bos: Some(id as u32),
                ..spec
            })?;
            let notice = format!(
                "{}: the vocabulary asks for BOS but has no tokenizer.ggml.bos_token_id; \
                 using the {} default {text:?} (id {id})",
                model.file().origin(),
                model.arch().name()
            );
            Ok((tokenizer, Some(notice)))
        }
        other => Ok((other?, None)),
    }
}

/// The prompt's tokens as llama-cli makes them: special-token text parsed, BOS added as
/// the vocabulary asks (a prompt that spells out BOS itself gets two, as in llama.cpp;
/// chat prompts avoid that, see [`super::chat::user_prompt`]). An empty prompt is an error.
pub fn encode_prompt(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, GenerateError> {
    if text.is_empty() {
        return Err(GenerateError::EmptyPrompt);
    }
    let tokens = tokenizer.encode(text, true, true);
    if tokens.is_empty() {
        return Err(GenerateError::EmptyPrompt);
    }
    Ok(tokens)
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GenerateOptions {
    /// The most tokens to generate.
    pub n_predict: usize,
    /// KV-cache size in tokens; prompt + `n_predict` must fit.
    pub n_ctx: usize,
    pub sampling: SamplingParams,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// The model produced an end-of-generation token (not part of the output).
    Eog,
    /// `n_predict` tokens were generated.
    Length,
    /// The text callback asked to stop (e.g. its output was closed).
    Stopped,
}

/// The result of one generation.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub prompt_tokens: Vec<u32>,
    /// Generated tokens, without the end-of-generation token.
    pub tokens: Vec<u32>,
    /// The end-of-generation token, when that is why it stopped.
    pub eog_token: Option<u32>,
    /// Exactly the text that was streamed.
    pub text: String,
    pub stop: StopReason,
    pub timings: Timings,
}

/// Where the time went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timings {
    /// The batched prefill of the whole prompt (it yields the first token's logits).
    #[serde(serialize_with = "as_ms")]
    pub prompt: Duration,
    /// Every decode step after the prefill: `decode_evals` forward passes of one token,
    /// plus sampling.
    #[serde(serialize_with = "as_ms")]
    pub decode: Duration,
    pub decode_evals: usize,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

/// `n / t` in tokens per second; `None` when nothing was timed.
pub fn tokens_per_s(n: usize, t: Duration) -> Option<f64> {
    (n > 0 && !t.is_zero()).then(|| n as f64 / t.as_secs_f64())
}

/// Generate from `prompt` (token ids), calling `on_text` with each piece of text as soon
/// as it is complete UTF-8 (llama.cpp's `token_to_piece` without special tokens);
/// `on_text` returning `Break` ends the generation there ([`StopReason::Stopped`]).
pub fn generate(
    model: &Model,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Generation, GenerateError> {
    if prompt.is_empty() {
        return Err(GenerateError::EmptyPrompt);
    }
    opts.sampling.validate()?;
    if opts.n_ctx == 0 {
        return Err(GenerateError::ZeroContext);
    }
    if prompt.len() + opts.n_predict > opts.n_ctx {
        return Err(GenerateError::ContextOverflow {
            prompt: prompt.len(),
            n_predict: opts.n_predict,
            n_ctx: opts.n_ctx,
            n_ctx_train: model.hparams().n_ctx_train,
        });
    }
    let mut sampler = Sampler::new(opts.sampling);
    let mut cache = model.new_cache(opts.n_ctx);
    let mut obs = NoObserver;

    let start = Instant::now();
    let mut logits = model.forward(prompt, &mut cache, &mut obs, Logits::Last)?;
    let prompt_time = start.elapsed();

    let start = Instant::now();
    let mut history = prompt.to_vec();
    let mut tokens = Vec::with_capacity(opts.n_predict);
    let mut stream = Utf8Stream::new();
    let mut text = String::new();
    let mut emit = |piece: String, text: &mut String| {
        if piece.is_empty() {
            return ControlFlow::Continue(());
        }
        text.push_str(&piece);
        on_text(&piece)
    };
    let mut stop = StopReason::Length;
    let mut eog_token = None;
    let mut decode_evals = 0;
    while tokens.len() < opts.n_predict {
        let id = sampler.sample(&logits, &history);
        if tokenizer.is_eog(id) {
            stop = StopReason::Eog;
            eog_token = Some(id);
            break;
        }
        tokens.push(id);
        history.push(id);
        if emit(stream.push(&tokenizer.token_bytes(id, false)), &mut text).is_break() {
            stop = StopReason::Stopped;
            break;
        }
        if tokens.len() == opts.n_predict {
            break;
        }
        logits = model.forward(&[id], &mut cache, &mut obs, Logits::Last)?;
        decode_evals += 1;
    }
    if stop != StopReason::Stopped {
        // Nothing follows the last piece, so whether it asks to stop does not matter.
        let _ = emit(stream.finish(), &mut text);
    }
    Ok(Generation {
        prompt_tokens: prompt.to_vec(),
        tokens,
        eog_token,
        text,
        stop,
        timings: Timings {
            prompt: prompt_time,
            decode: start.elapsed(),
            decode_evals,
        },
    })
}
