//! Logits and greedy continuations against llama.cpp on every fixture model and quant mix.
//! The references were computed by llama.cpp (llama-cpp-python) and committed by
//! tools/fixtures/make_fixtures.py; the prompts' token ids are llama.cpp's too, so this
//! checks the model alone (tokenization has its own parity test).
//!
//! Tolerances, and where they come from:
//!
//! | check | float weights (F32, F16, BF16) | quantized weights |
//! |---|---|---|
//! | NMSE of the logits, every position | 1e-4 (issue 4) | 2e-3 (ggml test-backend-ops, whole-model tests) |
//! | decision margin: top-1 must agree, greedy must agree until the first step below it | max(1e-3·std (issue 4), 6·rms difference measured on the prompt) | max(1e-3·std, 6·√2e-3·rms: six times the rms difference the NMSE bound tolerates) |
//! | expert routing (qwen3moe): our top-k must be llama.cpp's wherever its k-th/(k+1)-th router logit margin exceeds the bound | — | 6·√2e-3·rms of that layer's router logits (the same rule); a choice that differs below it is a tie: that position and all later ones are reported, not compared |
//!
//! Why quantized mixes get ggml's figure rather than the issue's 1e-4: llama.cpp quantizes
//! every matmul input to 8 bits. A one-ulp difference anywhere upstream (SIMD summation
//! order, its vectorised exp) flips some roundings, and each flip cascades through the
//! later quantizations, so agreement is either bit-level (NMSE ~1e-14, seen on several
//! prompts) or at the level of the quantization noise itself (NMSE 1e-5..4e-4). The
//! report printed by this test shows, per prompt, the measured NMSE, how many positions
//! exceed the issue's 1e-4, and the issue's literal decision criteria (top-1 wherever the
//! margin exceeds 1e-3·std, all 32 greedy tokens), so the gap stays visible. llama.cpp
//! misses the same figures against itself (docs/models.md, `tools/llama_cross/`).

use std::path::{Path, PathBuf};

use apr_engine::model::{Backend, Logits, Model};
use apr_engine::probe::bisect::DECISION_NOISE_FACTOR;
use apr_engine::trace::{aprt, NoObserver, Observer, Stage};
use serde_json::Value;

/// Issue 4's NMSE bound, applied to float mixes.
const NMSE_FLOAT: f64 = 1e-4;
/// ggml test-backend-ops' whole-model NMSE threshold, applied to quantized mixes.
const NMSE_QUANTIZED: f64 = 2e-3;
/// Issue 4: decisions are compared where the reference margin exceeds this share of std.
const MARGIN_FRACTION_OF_STD: f64 = 1e-3;

fn is_float_mix(stem: &str) -> bool {
    ["-F32", "-F16", "-BF16"].iter().any(|s| stem.ends_with(s))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn nmse(reference: &[f32], ours: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&a, &b) in reference.iter().zip(ours) {
        num += (f64::from(a) - f64::from(b)).powi(2);
        den += f64::from(a).powi(2);
    }
    num / den
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// The `k` largest entries' indices, sorted, and the margin between the k-th and the
/// (k+1)-th value: how far the choice is from a tie.
fn top_k(row: &[f32], k: usize) -> (Vec<usize>, f32) {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    let margin = row[order[k - 1]]
        - row
            .get(order.get(k).copied().unwrap_or(0))
            .copied()
            .unwrap_or(f32::NEG_INFINITY);
    let mut chosen = order[..k].to_vec();
    chosen.sort_unstable();
    (chosen, margin)
}

/// llama.cpp's router logits for `prompt` of a mixture-of-experts fixture, per layer
/// (`routing-<prompt>/layer-<N>/moe_router_logits.bin`, written by
/// `tools/llama_dumps/dump.py --stages moe_router_logits`); `None` for dense fixtures.
fn llama_routing(dir: &Path, prompt: usize) -> Option<Vec<Vec<f32>>> {
    let d = dir.join(format!("routing-{prompt}"));
    d.exists().then(|| {
        (0..)
            .map(|l| d.join(format!("layer-{l}/moe_router_logits.bin")))
            .take_while(|p| p.exists())
            .map(|p| aprt::read(&p).unwrap().data)
            .collect()
    })
}

/// Our expert choices (`moe_topk_ids`), one `[tokens × k]` tensor per layer.
#[derive(Default)]
struct Routing {
    ids: Vec<Vec<f32>>,
}

impl Observer for Routing {
    fn wants(&self, _: Option<usize>, stage: Stage) -> bool {
        stage == Stage::MoeTopkIds
    }

    fn record(&mut self, _: Option<usize>, _: Stage, _: usize, data: &[f32]) {
        self.ids.push(data.to_vec());
    }
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn logits_and_greedy_match_llama_cpp_on_every_fixture() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut models = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures().join("reference"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("logits.json").exists())
        .collect();
    dirs.sort();
    for dir in dirs {
        let stem = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = Model::open(
            fixtures().join("models").join(format!("{stem}.gguf")),
            Backend::Cpu,
        )
        .unwrap_or_else(|e| panic!("{stem}: {e}"));
        models += 1;
        let reference: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("logits.json")).unwrap())
                .unwrap();
        let n_vocab = reference["n_vocab"].as_u64().unwrap() as usize;
        for (pi, prompt) in reference["prompts"].as_array().unwrap().iter().enumerate() {
            let tokens = u32s(&prompt["tokens"]);
            let expected = read_f32(&dir.join(prompt["logits_file"].as_str().unwrap()));
            let mut cache = model.new_cache(256);
            let mut routing = Routing::default();
            let ours = model
                .forward(&tokens, &mut cache, &mut routing, Logits::All)
                .unwrap();
            // Mixture of experts: from the first expert choice that differs from llama.cpp's
            // at a near-tie, every later position carries the fork (causal attention) and
            // is reported, not compared. A choice that differs at a clear margin fails.
            let mut fork = tokens.len();
            if let Some(theirs) = llama_routing(&dir, pi) {
                let k = model.hparams().n_expert_used;
                let tie =
                    |l: usize| DECISION_NOISE_FACTOR * NMSE_QUANTIZED.sqrt() * rms(&theirs[l]);
                for (l, (logits, ids)) in theirs.iter().zip(&routing.ids).enumerate() {
                    let e = logits.len() / tokens.len();
                    for (t, (row, chosen)) in logits.chunks(e).zip(ids.chunks(k)).enumerate() {
                        if t >= fork {
                            break;
                        }
                        let (want, margin) = top_k(row, k);
                        let mut got: Vec<usize> = chosen.iter().map(|&v| v as usize).collect();
                        got.sort_unstable();
                        if got == want {
                            continue;
                        }
                        if f64::from(margin) > tie(l) {
                            failures.push(format!(
                                "{stem} prompt {pi} layer {l} token {t}: experts {got:?} but llama.cpp {want:?} (margin {margin:.3e})"
                            ));
                        }
                        fork = fork.min(t);
                    }
                }
            }
            // Over the compared positions (all, unless an expert routing tie forked them).
            let e = nmse(&expected[..fork * n_vocab], &ours[..fork * n_vocab]);
            let nmse_max = if is_float_mix(&stem) {
                NMSE_FLOAT
            } else {
                NMSE_QUANTIZED
            };
            let rms_ref = (expected.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>()
                / expected.len() as f64)
                .sqrt();
            // Float mixes: the difference measured on this prompt. Quantized mixes: the
            // tolerated one, since a rounding flip during decoding can raise it later.
            let expected_nmse = if is_float_mix(&stem) { e } else { nmse_max };
            let noise = DECISION_NOISE_FACTOR * expected_nmse.sqrt() * rms_ref;
            let bound = |std: f64| (MARGIN_FRACTION_OF_STD * std).max(noise);
            let mut worst = 0f64;
            let mut over_issue = 0;
            let (mut clear_issue, mut flips_issue) = (0, 0);
            for (pos, (r, o)) in expected
                .chunks(n_vocab)
                .zip(ours.chunks(n_vocab))
                .enumerate()
            {
                if pos >= fork {
                    break;
                }
                let e_pos = nmse(r, o);
                worst = worst.max(e_pos);
                over_issue += usize::from(e_pos > NMSE_FLOAT);
                if e_pos > nmse_max {
                    failures.push(format!(
                        "{stem} prompt {pi} position {pos}: NMSE {e_pos:.3e} > {nmse_max:e}"
                    ));
                }
                let margin = prompt["top1_margin"][pos].as_f64().unwrap();
                let std = prompt["logits_std"][pos].as_f64().unwrap();
                let top = prompt["top1"][pos].as_u64().unwrap() as usize;
                if margin > MARGIN_FRACTION_OF_STD * std {
                    clear_issue += 1;
                    flips_issue += usize::from(argmax(o) != top);
                }
                if margin > bound(std) && argmax(o) != top {
                    failures.push(format!(
                        "{stem} prompt {pi} position {pos}: top-1 {} but llama.cpp {top} (margin {margin:.2e})",
                        argmax(o)
                    ));
                }
            }
            // Greedy: continue from our own cache, feeding our own choices, until the first
            // token that differs from llama.cpp's (after it the two contexts differ).
            let steps = prompt["greedy_steps"].as_array().unwrap();
            let step_token = |s: &Value| s["token"].as_u64().unwrap() as u32;
            let step_clear = |s: &Value, bound: &dyn Fn(f64) -> f64| {
                s["margin"].as_f64().unwrap() > bound(s["std"].as_f64().unwrap())
            };
            let mut row = ours[(tokens.len() - 1) * n_vocab..].to_vec();
            let (mut identical, mut diverged) = (0, None);
            for step in steps {
                let got = argmax(&row) as u32;
                if got != step_token(step) {
                    diverged = Some(got);
                    break;
                }
                identical += 1;
                if identical < steps.len() {
                    row = model
                        .forward(&[got], &mut cache, &mut NoObserver, Logits::Last)
                        .unwrap();
                }
            }
            // Asserted: agreement on every step before the first whose margin is within
            // the bound above.
            let comparable = steps.iter().take_while(|s| step_clear(s, &bound)).count();
            if identical < comparable {
                failures.push(format!(
                    "{stem} prompt {pi} greedy step {}: {} but llama.cpp {}",
                    identical + 1,
                    diverged.unwrap_or_default(),
                    step_token(&steps[identical])
                ));
            }
            // Reported: issue 4's literal criteria (margins above 1e-3·std only).
            let issue_bound = |std: f64| MARGIN_FRACTION_OF_STD * std;
            let all_clear = steps.iter().all(|s| step_clear(s, &issue_bound));
            let forked = if fork < tokens.len() {
                format!(" [expert routing tie at token {fork}: positions {fork}.. not compared]")
            } else {
                String::new()
            };
            report.push(format!(
                "{stem:>20} prompt {pi}{forked}: NMSE {e:.2e} (worst position {worst:.2e}; {over_issue}/{} positions over 1e-4); top-1 differs at {flips_issue} of {clear_issue} positions with margin > 1e-3 std; greedy {identical}/{} identical ({comparable} asserted; margins all > 1e-3 std: {})",
                fork,
                steps.len(),
                if all_clear { "yes" } else { "no" },
            ));
        }
    }
    println!("{}", report.join("\n"));
    assert_eq!(models, 14, "every fixture model was checked");
    assert!(
        failures.is_empty(),
        "{} mismatches vs llama.cpp:\n{}\n\n{}",
        failures.len(),
        failures.join("\n"),
        report.join("\n")
    );
}
