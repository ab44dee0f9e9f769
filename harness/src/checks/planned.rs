//! Kinds whose engine features do not exist yet: parameters are declared and validated so
//! contracts can be written and checked now, but there is no runner, so a contract using
//! one must stay PROPOSED (rule CHECK-PLANNED) and its tests report `skip`, never `pass`.
//! When the engine feature lands, move the kind into its own module with a `run` function.

use serde::Deserialize;

use super::{check_model, check_stages, Availability, Kind, ParamIssue, Tolerance, ValidateCx};

/// One engine run: which model file, in which format, on which backend and thread count.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Logical model name (contracts/models.yaml); defaults to the test's `requires.model`.
    #[serde(default)]
    pub model: Option<String>,
    /// `gguf` or `apr` (the APR produced by `apr convert` from the GGUF).
    #[serde(default)]
    pub format: Option<String>,
    /// `cpu`, `cpu-ref` or `cuda`.
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default)]
    pub threads: Option<usize>,
    /// A deliberate fault, for bisect self-tests: scale one (layer, stage) output.
    #[serde(default)]
    pub inject_fault: Option<Fault>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub layer: u32,
    pub stage: String,
    pub scale: f64,
}

/// A (layer, stage) location; `layer` absent for whole-model stages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[serde(default)]
    pub layer: Option<u32>,
    pub stage: String,
}

const FORMATS: &[&str] = &["gguf", "apr"];
const BACKENDS: &[&str] = &["cpu", "cpu-ref", "cuda"];
const METRICS: &[&str] = &["bit_exact", "max_abs", "rms", "nmse", "cosine", "max_ulp"];

fn check_run(spec: &RunSpec, what: &str, cx: &ValidateCx, issues: &mut Vec<ParamIssue>) {
    match &spec.model {
        Some(m) => issues.extend(check_model(m, cx)),
        None if cx.requires_model.is_none() => issues.push(ParamIssue::params(format!(
            "{what}: no `model` and the test has no requires.model"
        ))),
        None => {}
    }
    if let Some(f) = &spec.format {
        if !FORMATS.contains(&f.as_str()) {
            issues.push(ParamIssue::params(format!(
                "{what}: format `{f}` not one of {FORMATS:?}"
            )));
        }
    }
    if let Some(b) = &spec.backend {
        if !BACKENDS.contains(&b.as_str()) {
            issues.push(ParamIssue::params(format!(
                "{what}: backend `{b}` not one of {BACKENDS:?}"
            )));
        }
    }
    if spec.threads == Some(0) {
        issues.push(ParamIssue::params(format!("{what}: threads must be >= 1")));
    }
    if let Some(f) = &spec.inject_fault {
        issues.extend(check_stages(std::slice::from_ref(&f.stage), false));
    }
}

fn check_metric(m: &str, issues: &mut Vec<ParamIssue>) {
    if !METRICS.contains(&m) {
        issues.push(ParamIssue::params(format!(
            "metric `{m}` not one of {METRICS:?}"
        )));
    }
}

fn check_tol(t: &Tolerance, issues: &mut Vec<ParamIssue>) {
    if let Err(e) = t.resolve() {
        issues.push(e);
    }
}

macro_rules! planned_kind {
    ($const:ident, $name:literal, $summary:literal, $needs:literal, $params:ty, $sem:expr) => {
        pub static $const: Kind = Kind {
            name: $name,
            summary: $summary,
            availability: Availability::Planned($needs),
            validate: |v, cx| super::validate_typed::<$params>($name, v, |p| $sem(p, cx)),
            run: None,
        };
    };
}

// ---- capture_determinism -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureDeterminism {
    pub stages: Vec<String>,
    #[serde(default)]
    pub layers: Vec<u32>,
    #[serde(default)]
    pub prompt: Option<String>,
    /// Repeat runs per thread count (≥ 2).
    pub runs: u32,
    /// Thread counts whose captures must be byte-identical to each other.
    #[serde(default)]
    pub threads: Vec<usize>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub backend: Option<String>,
}

planned_kind!(
    CAPTURE_DETERMINISM,
    "capture_determinism",
    "repeat `apr trace --save-tensor` runs (and thread counts); captures byte-identical",
    "apr trace --save-tensor",
    CaptureDeterminism,
    |p: &CaptureDeterminism, cx: &ValidateCx| {
        let mut i = check_stages(&p.stages, true);
        if p.runs < 2 && p.threads.len() < 2 {
            i.push(ParamIssue::params(
                "capture_determinism: needs runs >= 2 or at least two thread counts",
            ));
        }
        if p.threads.contains(&0) {
            i.push(ParamIssue::params(
                "capture_determinism: threads must be >= 1",
            ));
        }
        let spec = RunSpec {
            model: None,
            format: p.format.clone(),
            backend: p.backend.clone(),
            threads: None,
            inject_fault: None,
        };
        check_run(&spec, "capture_determinism", cx, &mut i);
        i
    }
);

// ---- stage_parity --------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageParity {
    pub a: RunSpec,
    pub b: RunSpec,
    pub stages: Vec<String>,
    #[serde(default)]
    pub layers: Vec<u32>,
    #[serde(default)]
    pub prompt: Option<String>,
    pub metric: String,
    pub tolerance: Tolerance,
}

planned_kind!(
    STAGE_PARITY,
    "stage_parity",
    "two runs captured per (layer, stage); each pair within metric/tolerance",
    "apr trace --save-tensor and apr diff --values",
    StageParity,
    |p: &StageParity, cx: &ValidateCx| {
        let mut i = check_stages(&p.stages, true);
        check_run(&p.a, "stage_parity.a", cx, &mut i);
        check_run(&p.b, "stage_parity.b", cx, &mut i);
        check_metric(&p.metric, &mut i);
        check_tol(&p.tolerance, &mut i);
        i
    }
);

// ---- bisect --------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bisect {
    pub a: RunSpec,
    pub b: RunSpec,
    #[serde(default)]
    pub prompt: Option<String>,
    pub metric: String,
    pub tolerance: Tolerance,
    /// The first divergent (layer, stage) `apr bisect` must name; absent = no divergence.
    #[serde(default)]
    pub expect_first_divergence: Option<Location>,
}

planned_kind!(
    BISECT,
    "bisect",
    "`apr bisect` names the expected first divergent (layer, stage), or none",
    "apr bisect",
    Bisect,
    |p: &Bisect, cx: &ValidateCx| {
        let mut i = Vec::new();
        check_run(&p.a, "bisect.a", cx, &mut i);
        check_run(&p.b, "bisect.b", cx, &mut i);
        check_metric(&p.metric, &mut i);
        check_tol(&p.tolerance, &mut i);
        if let Some(l) = &p.expect_first_divergence {
            i.extend(check_stages(std::slice::from_ref(&l.stage), false));
        }
        i
    }
);

// ---- logit / token / tokenizer parity ------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogitParity {
    /// Committed llama.cpp reference data, relative to the repo root.
    pub reference: String,
    #[serde(default)]
    pub run: Option<RunSpec>,
    pub metric: String,
    pub tolerance: Tolerance,
    /// Also require the argmax (top-1 token) to be equal at every position.
    #[serde(default)]
    pub top1_equal: bool,
}

planned_kind!(
    LOGIT_PARITY,
    "logit_parity",
    "final logits vs committed llama.cpp reference within metric/tolerance; top-1 equal",
    "model forward pass (apr run --logits)",
    LogitParity,
    |p: &LogitParity, cx: &ValidateCx| {
        let mut i = Vec::new();
        if let Some(r) = &p.run {
            check_run(r, "logit_parity.run", cx, &mut i);
        }
        check_metric(&p.metric, &mut i);
        check_tol(&p.tolerance, &mut i);
        if p.reference.is_empty() {
            i.push(ParamIssue::params("logit_parity: empty reference"));
        }
        i
    }
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenParity {
    pub reference: String,
    #[serde(default)]
    pub run: Option<RunSpec>,
    #[serde(default)]
    pub prompt: Option<String>,
    pub n_tokens: u32,
}

planned_kind!(
    TOKEN_PARITY,
    "token_parity",
    "greedy tokens identical to committed llama.cpp reference",
    "generation (apr run)",
    TokenParity,
    |p: &TokenParity, cx: &ValidateCx| {
        let mut i = Vec::new();
        if let Some(r) = &p.run {
            check_run(r, "token_parity.run", cx, &mut i);
        }
        if p.n_tokens == 0 {
            i.push(ParamIssue::params("token_parity: n_tokens must be >= 1"));
        }
        i
    }
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerParity {
    pub reference: String,
}

planned_kind!(
    TOKENIZER_PARITY,
    "tokenizer_parity",
    "token ids identical to committed llama.cpp tokenizer reference",
    "GGUF tokenizer",
    TokenizerParity,
    |p: &TokenizerParity, _cx: &ValidateCx| {
        if p.reference.is_empty() {
            vec![ParamIssue::params("tokenizer_parity: empty reference")]
        } else {
            Vec::new()
        }
    }
);

// ---- weights_identical ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsIdentical {
    pub a: RunSpec,
    pub b: RunSpec,
}

planned_kind!(
    WEIGHTS_IDENTICAL,
    "weights_identical",
    "every tensor's bytes identical between two model files (e.g. APR and GGUF)",
    "APR container (apr convert)",
    WeightsIdentical,
    |p: &WeightsIdentical, cx: &ValidateCx| {
        let mut i = Vec::new();
        check_run(&p.a, "weights_identical.a", cx, &mut i);
        check_run(&p.b, "weights_identical.b", cx, &mut i);
        i
    }
);

// ---- aprt_format ---------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AprtFormat {
    pub stages: Vec<String>,
    #[serde(default)]
    pub layers: Vec<u32>,
    /// Also check the reader accepts the anchor's 12-byte legacy layout.
    #[serde(default)]
    pub legacy_layout: bool,
    /// Check NaN payload bits survive a round trip.
    #[serde(default)]
    pub nan_bits: bool,
}

planned_kind!(
    APRT_FORMAT,
    "aprt_format",
    "APRT capture header self-describing and parseable; NaN bits and legacy layout",
    "APRT capture writer/reader",
    AprtFormat,
    |p: &AprtFormat, _cx: &ValidateCx| check_stages(&p.stages, true)
);

// ---- router_invariants ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterInvariants {
    #[serde(default)]
    pub prompt: Option<String>,
    /// |Σ chosen weights − 1| bound.
    pub sum_tolerance: Tolerance,
    /// Chosen ids are the top-k of the softmax over all experts.
    #[serde(default = "yes")]
    pub topk_of_softmax: bool,
}

fn yes() -> bool {
    true
}

planned_kind!(
    ROUTER_INVARIANTS,
    "router_invariants",
    "MoE router: chosen weights sum to 1 within tolerance and are the softmax top-k",
    "qwen3moe forward with moe_* stage capture",
    RouterInvariants,
    |p: &RouterInvariants, _cx: &ValidateCx| {
        let mut i = Vec::new();
        check_tol(&p.sum_tolerance, &mut i);
        i
    }
);

// ---- throughput ----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    #[serde(default)]
    pub run: Option<RunSpec>,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    /// Gate only when given AND `APR_PERF=1`; otherwise the rate is recorded.
    #[serde(default)]
    pub min_tokens_per_s: Option<f64>,
}

planned_kind!(
    THROUGHPUT,
    "throughput",
    "records prompt/decode tokens per second; gates only with a threshold and APR_PERF=1",
    "generation (apr run / apr bench)",
    Throughput,
    |p: &Throughput, cx: &ValidateCx| {
        let mut i = Vec::new();
        if let Some(r) = &p.run {
            check_run(r, "throughput.run", cx, &mut i);
        }
        if p.gen_tokens == 0 && p.prompt_tokens == 0 {
            i.push(ParamIssue::params(
                "throughput: prompt_tokens or gen_tokens must be > 0",
            ));
        }
        i
    }
);
