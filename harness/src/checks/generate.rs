//! Generation kinds over `apr run --json`:
//!
//! - `token_parity`: greedy tokens against the committed llama.cpp reference
//!   (`logits.json`'s `greedy_steps`), compared step by step until the first step whose
//!   reference margin is within the noise the whole-model NMSE bound allows (the rule of
//!   engine/tests/model_parity.rs): past a near-tie both sides may legitimately differ.
//! - `throughput`: prompt and decode tokens per second, recorded; gating only when
//!   `min_tokens_per_s` is given and `APR_PERF=1` (benchmarks, not timed tests).

use serde::Deserialize;

use super::engine;
use super::spec::{check_run, RunSpec};
use super::{Kind, Measurement, Outcome, ParamIssue, RunCx};

/// ggml test-backend-ops' whole-model NMSE; the margin rule's noise level.
const WHOLE_MODEL_NMSE: f64 = 2e-3;
const MARGIN_FRACTION_OF_STD: f64 = 1e-3;
const MARGIN_NOISE_FACTOR: f64 = 6.0;

fn run_json(
    model: &std::path::Path,
    prompt: &str,
    n: usize,
    spec: &RunSpec,
    backend: &str,
) -> Result<serde_json::Value, String> {
    let n = n.to_string();
    let threads = spec.threads.map(|t| t.to_string());
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "run".as_ref(),
        model.as_os_str(),
        "--prompt".as_ref(),
        prompt.as_ref(),
        "-n".as_ref(),
        n.as_ref(),
        "--json".as_ref(),
        "--backend".as_ref(),
        backend.as_ref(),
    ];
    if let Some(t) = &threads {
        args.extend(["--threads".as_ref(), t.as_ref() as &std::ffi::OsStr]);
    }
    let out = engine::apr(&args, &[])?;
    serde_json::from_str(&out).map_err(|e| format!("apr run --json output does not parse: {e}"))
}

/// The SIMD tier an `apr run --json` report names, if `backend` uses it.
fn simd_of(backend: &str, out: &serde_json::Value) -> Option<String> {
    engine::simd_for(backend, out["simd"].as_str().map(String::from))
}

// ---- token_parity ----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenParity {
    /// Committed llama.cpp reference (`logits.json` with `greedy_steps`), repo-relative.
    pub reference: String,
    #[serde(default)]
    pub run: Option<RunSpec>,
    /// At most this many greedy steps per prompt are compared.
    pub n_tokens: u32,
}

pub static TOKEN_PARITY: Kind = Kind {
    name: "token_parity",
    summary: "greedy tokens identical to committed llama.cpp reference (up to the first near-tie)",
    validate: |v, cx| {
        super::validate_typed::<TokenParity>("token_parity", v, |p| {
            let mut i = Vec::new();
            if let Some(r) = &p.run {
                check_run(r, "token_parity.run", cx, &mut i);
            } else if cx.requires_model.is_none() {
                i.push(ParamIssue::params(
                    "token_parity: no run spec and no requires.model",
                ));
            }
            if p.n_tokens == 0 {
                i.push(ParamIssue::params("token_parity: n_tokens must be >= 1"));
            }
            i
        })
    },
    run: run_tokens,
};

#[derive(Debug, Deserialize)]
struct Reference {
    prompts: Vec<RefPrompt>,
}

#[derive(Debug, Deserialize)]
struct RefPrompt {
    text: String,
    logits_file: String,
    greedy_steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
struct Step {
    token: u64,
    margin: f64,
    std: f64,
}

fn run_tokens(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: TokenParity = super::typed("token_parity", params).map_err(|e| e.message)?;
    let ref_path = cx.repo_root.join(&p.reference);
    let text = std::fs::read_to_string(&ref_path)
        .map_err(|e| format!("cannot read reference {}: {e}", ref_path.display()))?;
    let reference: Reference =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", ref_path.display()))?;
    let spec = p.run.clone().unwrap_or_default();
    let model = engine::resolve(&spec, cx, "m")?;
    let ref_dir = ref_path.parent().unwrap_or(cx.repo_root);
    let mut ms = Vec::new();
    let mut lines = Vec::new();
    let mut compared = 0usize;
    let mut simd = None;
    for (i, rp) in reference.prompts.iter().enumerate() {
        // rms of the reference logits sets the noise level of the margin rule
        let raw = std::fs::read(ref_dir.join(&rp.logits_file))
            .map_err(|e| format!("{}: {e}", rp.logits_file))?;
        let n = (raw.len() / 4).max(1);
        let ss: f64 = raw
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).powi(2))
            .sum();
        let noise = MARGIN_NOISE_FACTOR * WHOLE_MODEL_NMSE.sqrt() * (ss / n as f64).sqrt();
        let steps = &rp.greedy_steps[..rp.greedy_steps.len().min(p.n_tokens as usize)];
        let comparable = steps
            .iter()
            .position(|s| s.margin <= (MARGIN_FRACTION_OF_STD * s.std).max(noise))
            .unwrap_or(steps.len());
        let out = run_json(&model.path, &rp.text, steps.len(), &spec, &model.backend)?;
        simd = simd.or(simd_of(&model.backend, &out));
        let got: Vec<u64> = out["generated_tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_u64())
            .collect();
        let first_diff = (0..comparable).find(|s| got.get(*s) != Some(&steps[*s].token));
        compared += comparable;
        let label = format!("prompt {i}");
        ms.push(Measurement::new(
            format!("{label} first differing greedy step"),
            "none before the first near-tie",
            first_diff,
            serde_json::Value::Null,
            first_diff.is_none(),
        ));
        lines.push(match first_diff {
            None => format!(
                "{label}: {comparable} of {} steps comparable, all equal",
                steps.len()
            ),
            Some(s) => format!(
                "{label}: step {s} generated {:?}, llama.cpp {} (margin {:.3e})",
                got.get(s),
                steps[s].token,
                steps[s].margin
            ),
        });
    }
    // every step a near-tie would make the comparison vacuous: that is a failure, not a pass
    ms.push(Measurement::new(
        "greedy steps compared",
        "count",
        compared,
        "> 0",
        compared > 0,
    ));
    let passed = ms.iter().all(|m| m.ok);
    let measured = format!(
        "greedy tokens of {} ({}) vs {}: {}",
        model.model,
        model.backend,
        p.reference,
        lines.join("; ")
    );
    Ok(Outcome {
        passed,
        measured,
        measurements: ms,
        backend: Some(model.backend),
        threads: spec.threads,
        simd,
        ..Outcome::default()
    })
}

// ---- throughput ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    #[serde(default)]
    pub run: Option<RunSpec>,
    /// Approximate prompt length (the prompt repeats one word this many times).
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    /// Gate only when given AND `APR_PERF=1`; otherwise the rate is recorded.
    #[serde(default)]
    pub min_tokens_per_s: Option<f64>,
}

pub static THROUGHPUT: Kind = Kind {
    name: "throughput",
    summary: "records prompt/decode tokens per second; gates only with a threshold and APR_PERF=1",
    validate: |v, cx| {
        super::validate_typed::<Throughput>("throughput", v, |p| {
            let mut i = Vec::new();
            if let Some(r) = &p.run {
                check_run(r, "throughput.run", cx, &mut i);
            }
            if p.gen_tokens == 0 || p.prompt_tokens == 0 {
                i.push(ParamIssue::params(
                    "throughput: prompt_tokens and gen_tokens must be > 0",
                ));
            }
            i
        })
    },
    run: run_throughput,
};

fn run_throughput(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: Throughput = super::typed("throughput", params).map_err(|e| e.message)?;
    let spec = p.run.clone().unwrap_or_default();
    let model = engine::resolve(&spec, cx, "m")?;
    let prompt = "hello ".repeat(p.prompt_tokens as usize);
    let out = run_json(
        &model.path,
        prompt.trim_end(),
        p.gen_tokens as usize,
        &spec,
        &model.backend,
    )?;
    let t = &out["timings"];
    let pp = t["prompt_tokens_per_s"].as_f64();
    let tg = t["decode_tokens_per_s"].as_f64();
    let gate = std::env::var("APR_PERF").is_ok_and(|v| v == "1");
    let mut ms = vec![
        Measurement::new(
            "prompt tokens/s",
            "recorded",
            pp,
            serde_json::Value::Null,
            pp.is_some(),
        ),
        Measurement::new(
            "decode tokens/s",
            "recorded",
            tg,
            serde_json::Value::Null,
            tg.is_some(),
        ),
    ];
    if let (Some(min), true) = (p.min_tokens_per_s, gate) {
        let ok = tg.is_some_and(|x| x >= min);
        ms.push(Measurement::new(
            "decode tokens/s (APR_PERF=1)",
            ">=",
            tg,
            min,
            ok,
        ));
    }
    let passed = ms.iter().all(|m| m.ok);
    let threads = out["threads"].as_u64().map(|x| x as usize);
    let simd = simd_of(&model.backend, &out);
    let measured = format!(
        "{} ({}, {} threads): prompt {} tokens at {:.1} tok/s, decode {} tokens at {:.1} tok/s; {}",
        model.model,
        model.backend,
        threads.map_or("?".into(), |t| t.to_string()),
        out["prompt_tokens"].as_array().map_or(0, Vec::len),
        pp.unwrap_or(f64::NAN),
        out["generated_tokens"].as_array().map_or(0, Vec::len),
        tg.unwrap_or(f64::NAN),
        if gate && p.min_tokens_per_s.is_some() {
            "gated (APR_PERF=1)"
        } else {
            "recorded, not gated"
        }
    );
    Ok(Outcome {
        passed,
        measured,
        measurements: ms,
        backend: Some(model.backend),
        threads,
        simd,
        ..Outcome::default()
    })
}
