//! `apr bench`: prompt-processing and generation throughput, measured like llama-bench's
//! `pp<N>` (one batch of N prompt tokens on an empty cache) and `tg<N>` (N tokens decoded one
//! at a time from an empty cache), repeated, reported as mean ± std tokens per second.

use std::time::Instant;

use serde::Serialize;

use crate::model::{Logits, Model, ModelError};
use crate::trace::NoObserver;

/// One measured test.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// `pp512`, `tg128`, …
    pub test: String,
    pub tokens: usize,
    pub repetitions: usize,
    pub mean_tokens_per_s: f64,
    pub std_tokens_per_s: f64,
}

/// Token ids for a synthetic prompt: spread over the vocabulary, the same every run.
fn prompt(n: usize, n_vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 13) % n_vocab) as u32).collect()
}

fn summarize(test: String, tokens: usize, secs: &[f64]) -> BenchResult {
    let rates: Vec<f64> = secs.iter().map(|s| tokens as f64 / s).collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>()
        / rates.len().max(2).saturating_sub(1) as f64;
    BenchResult {
        test,
        tokens,
        repetitions: secs.len(),
        mean_tokens_per_s: mean,
        std_tokens_per_s: var.sqrt(),
    }
}

/// `pp<n>`: one forward of `n` tokens on an empty cache, `reps` times (after one warm-up).
pub fn prompt_processing(model: &Model, n: usize, reps: usize) -> Result<BenchResult, ModelError> {
    let tokens = prompt(n, model.hparams().n_vocab);
    let mut cache = model.new_cache(n);
    let mut secs = Vec::with_capacity(reps);
    for rep in 0..=reps {
        cache.clear();
        let t = Instant::now();
        model.forward(&tokens, &mut cache, &mut NoObserver, Logits::Last)?;
        if rep > 0 {
            secs.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(summarize(format!("pp{n}"), n, &secs))
}

/// `tg<n>`: `n` single-token forwards from an empty cache, `reps` times (after a warm-up).
pub fn generation(model: &Model, n: usize, reps: usize) -> Result<BenchResult, ModelError> {
    let tokens = prompt(n, model.hparams().n_vocab);
    let mut cache = model.new_cache(n);
    let mut secs = Vec::with_capacity(reps);
    for rep in 0..=reps {
        cache.clear();
        let t = Instant::now();
        for &tok in &tokens {
            model.forward(&[tok], &mut cache, &mut NoObserver, Logits::Last)?;
        }
        if rep > 0 {
            secs.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(summarize(format!("tg{n}"), n, &secs))
}
