//! Greedy generation (the whole loop: batched prefill, KV-cache decode, greedy sampler,
//! stop rules) reproduces llama.cpp's greedy continuations.
//!
//! The cases are chosen from llama.cpp's own reference data
//! (tests/fixtures/reference/<stem>/logits.json, written by tools/fixtures): every prompt
//! whose reference top-1/top-2 margin stays above 0.3 × the logits' std for each of the
//! first 8 greedy steps. Below that, a legitimate rounding difference (quantized
//! activations, summation order; see tests/model_parity.rs) may flip a near-tie, so such
//! steps prove nothing about the loop. The prompt token ids are llama.cpp's, so
//! tokenization is not under test here.

use std::path::{Path, PathBuf};

use apr_engine::generate::{generate, load_tokenizer, GenerateOptions, SamplingParams};
use apr_engine::model::{Backend, Model};
use serde_json::Value;

/// Steps compared per prompt.
const STEPS: usize = 8;
/// A step counts when llama.cpp's margin exceeds this share of the logits' std.
const MARGIN_FRACTION_OF_STD: f64 = 0.3;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn greedy_generation_reproduces_llama_cpp_where_its_margins_are_clear() {
    let mut stems: Vec<String> = std::fs::read_dir(fixtures().join("reference"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|s| !s.starts_with("vocab-"))
        .collect();
    stems.sort();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for stem in &stems {
        let path = fixtures().join("reference").join(stem).join("logits.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let reference: Value = serde_json::from_str(&text).unwrap();
        let model = Model::open(
            fixtures().join("models").join(format!("{stem}.gguf")),
            Backend::Cpu,
        )
        .unwrap();
        let (tokenizer, _) = load_tokenizer(&model).unwrap();
        for (pi, prompt) in reference["prompts"].as_array().unwrap().iter().enumerate() {
            let steps = prompt["greedy_steps"].as_array().unwrap();
            let clear = steps.len() >= STEPS
                && steps[..STEPS].iter().all(|s| {
                    s["margin"].as_f64().unwrap()
                        > MARGIN_FRACTION_OF_STD * s["std"].as_f64().unwrap()
                });
            if !clear {
                continue;
            }
            let tokens = u32s(&prompt["tokens"]);
            let want = &u32s(&prompt["greedy"])[..STEPS];
            let opts = GenerateOptions {
                n_predict: STEPS,
                n_ctx: tokens.len() + STEPS,
                sampling: SamplingParams::default(),
            };
            assert!(SamplingParams::default().is_greedy());
            let gen = generate(&model, &tokenizer, &tokens, &opts, &mut |_| {
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
            // Our loop stops at an end-of-generation token; llama.cpp's list goes on.
            let got: Vec<u32> = gen.tokens.iter().copied().chain(gen.eog_token).collect();
            let want = &want[..got.len().min(STEPS)];
            if got != want {
                failures.push(format!(
                    "{stem} prompt {pi}: got {got:?}, llama.cpp {want:?}"
                ));
            }
            checked.push(format!("{stem}#{pi}"));
        }
    }
    eprintln!("checked {} prompts: {}", checked.len(), checked.join(" "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The selection must not be empty, or this test would prove nothing.
    assert!(checked.len() >= 4, "only {checked:?} had clear margins");
}
