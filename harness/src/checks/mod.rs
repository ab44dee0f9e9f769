//! Check kinds: Rust implementations parameterised by the `check:` block of a
//! falsification test.
//!
//! Each kind is a [`Kind`] in [`REGISTRY`]: a name, a parameter validator (the kind's typed
//! params with `deny_unknown_fields`, plus semantic checks such as regexes compiling and
//! stage names resolving) and a runner. To add a kind, see `docs/contracts.md` ("Adding a
//! check kind").

pub mod aprt;
pub mod bisect;
pub mod capture;
pub mod cli;
pub mod dequant;
pub mod engine;
pub mod generate;
pub mod kernel_determinism;
pub mod logits;
pub mod pv_validate;
pub mod router;
pub mod spec;
pub mod tokenizer;
pub mod weights;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::models::{Registry, ResolvedModel};

/// A problem with a check's parameters, reported by `pv validate` under `rule`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamIssue {
    pub rule: &'static str,
    pub message: String,
}

impl ParamIssue {
    pub fn params(message: impl Into<String>) -> Self {
        ParamIssue {
            rule: crate::validate::rules::CHECK_PARAMS,
            message: message.into(),
        }
    }
}

/// What a validator may consult.
pub struct ValidateCx<'a> {
    pub models: &'a Registry,
    /// The test's `requires.model`, for kinds whose arguments use `{model}`.
    pub requires_model: Option<&'a str>,
    pub repo_root: &'a Path,
}

/// What a runner gets.
pub struct RunCx<'a> {
    pub repo_root: &'a Path,
    pub contracts_dir: &'a Path,
    pub model: Option<&'a ResolvedModel>,
    /// An empty directory private to this trial (for files the check makes a binary write).
    pub scratch: PathBuf,
}

/// One measured quantity and the bound it was held to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub name: String,
    /// How it is compared: `equals`, `matches`, `exists`, `nmse<=`, `max_abs<=`, …
    pub metric: String,
    pub value: serde_json::Value,
    #[serde(default)]
    pub threshold: serde_json::Value,
    pub ok: bool,
}

impl Measurement {
    pub fn new(
        name: impl Into<String>,
        metric: &str,
        value: impl Serialize,
        threshold: impl Serialize,
        ok: bool,
    ) -> Self {
        Measurement {
            name: name.into(),
            metric: metric.to_string(),
            value: serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
            threshold: serde_json::to_value(threshold).unwrap_or(serde_json::Value::Null),
            ok,
        }
    }
}

/// One (layer, stage) cell of a parity comparison; `layer` is `None` for whole-model stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DivergenceCell {
    pub layer: Option<u32>,
    pub stage: String,
    pub metric: String,
    pub value: f64,
    pub tolerance: f64,
}

/// Per-layer × per-stage divergence of a parity check, and the first cell out of tolerance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub first: Option<DivergenceCell>,
    pub cells: Vec<DivergenceCell>,
}

/// The result of running a check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub passed: bool,
    /// One paragraph: what was measured, in words a reader can act on.
    pub measured: String,
    pub measurements: Vec<Measurement>,
    /// Backend that ran (`cpu`, `cpu-ref`, `cuda`), when the check ran the engine.
    pub backend: Option<String>,
    /// Threads the engine used, when known.
    pub threads: Option<usize>,
    /// SIMD tier the engine's kernels dispatched to, as the engine reports it (`apr … --json`
    /// or, in-process, `kernels::active_isa`); `None` when no dispatched kernel ran (cpu-ref,
    /// dequantization, no engine at all). Nothing guesses it.
    pub simd: Option<String>,
    pub divergence: Option<Divergence>,
}

type ValidateFn = fn(&serde_yaml::Value, &ValidateCx) -> Vec<ParamIssue>;
type RunFn = fn(&serde_yaml::Value, &RunCx) -> Result<Outcome, String>;

/// A check kind.
pub struct Kind {
    pub name: &'static str,
    pub summary: &'static str,
    pub validate: ValidateFn,
    pub run: RunFn,
}

/// Every known kind, sorted by name.
pub static REGISTRY: &[&Kind] = &[
    &aprt::KIND,
    &bisect::KIND,
    &capture::CAPTURE_DETERMINISM,
    &cli::KIND,
    &dequant::KIND,
    &kernel_determinism::KIND,
    &logits::KIND,
    &pv_validate::KIND,
    &router::KIND,
    &capture::STAGE_PARITY,
    &generate::THROUGHPUT,
    &generate::TOKEN_PARITY,
    &tokenizer::KIND,
    &weights::KIND,
];

/// Look a kind up by name.
pub fn kind(name: &str) -> Option<&'static Kind> {
    REGISTRY.iter().find(|k| k.name == name).copied()
}

/// Split a `check:` mapping into its kind name and its parameters (the rest of the keys).
pub fn split(check: &serde_yaml::Mapping) -> Result<(String, serde_yaml::Value), String> {
    let mut params = check.clone();
    match params.remove("kind") {
        Some(serde_yaml::Value::String(k)) => Ok((k, serde_yaml::Value::Mapping(params))),
        Some(other) => Err(format!("`kind` must be a string, found {other:?}")),
        None => Err("`check` has no `kind`".to_string()),
    }
}

/// Deserialize a kind's typed parameters; the error is a CHECK-PARAMS issue.
pub fn typed<P: DeserializeOwned>(kind: &str, params: &serde_yaml::Value) -> Result<P, ParamIssue> {
    serde_yaml::from_value(params.clone()).map_err(|e| ParamIssue::params(format!("{kind}: {e}")))
}

/// Validate a typed parameter struct and hand it to `semantic`.
pub fn validate_typed<P: DeserializeOwned>(
    kind: &str,
    params: &serde_yaml::Value,
    semantic: impl FnOnce(&P) -> Vec<ParamIssue>,
) -> Vec<ParamIssue> {
    match typed::<P>(kind, params) {
        Ok(p) => semantic(&p),
        Err(e) => vec![e],
    }
}

/// Named tolerances: every threshold says where it came from (STYLE 13).
/// A contract may write `tolerance: <number>` or `tolerance: <name>` from this table.
pub const TOLERANCES: &[(&str, f64, &str)] = &[
    ("exact", 0.0, "bit-identical: no tolerance"),
    (
        "ggml_default_nmse",
        1e-7,
        "llama.cpp tests/test-backend-ops.cpp default NMSE",
    ),
    (
        "ggml_softmax_nmse",
        1e-6,
        "llama.cpp tests/test-backend-ops.cpp SOFT_MAX / CPY",
    ),
    (
        "ggml_mul_mat_nmse",
        5e-4,
        "llama.cpp tests/test-backend-ops.cpp MUL_MAT, MUL_MAT_ID",
    ),
    (
        "ggml_whole_model_nmse",
        2e-3,
        "llama.cpp tests/test-backend-ops.cpp whole-model tests",
    ),
    (
        "router_weight_sum",
        1e-6,
        "issue 3: chosen expert weights sum to 1 ± 1e-6",
    ),
];

/// A tolerance in YAML: a number or a name from [`TOLERANCES`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Tolerance {
    Value(f64),
    Named(String),
}

impl Tolerance {
    /// The numeric bound, or an issue naming the unknown tolerance.
    pub fn resolve(&self) -> Result<f64, ParamIssue> {
        match self {
            Tolerance::Value(v) if *v >= 0.0 && v.is_finite() => Ok(*v),
            Tolerance::Value(v) => Err(ParamIssue::params(format!(
                "tolerance {v} must be finite and >= 0"
            ))),
            Tolerance::Named(n) => TOLERANCES
                .iter()
                .find(|(name, _, _)| name == n)
                .map(|(_, v, _)| *v)
                .ok_or_else(|| {
                    let names: Vec<&str> = TOLERANCES.iter().map(|t| t.0).collect();
                    ParamIssue::params(format!(
                        "unknown tolerance `{n}` (known: {})",
                        names.join(", ")
                    ))
                }),
        }
    }
}

/// Check stage names against the vocabulary; `all` is accepted where `allow_all`.
pub fn check_stages(stages: &[String], allow_all: bool) -> Vec<ParamIssue> {
    stages
        .iter()
        .filter(|s| !(crate::stages::is_stage(s) || (allow_all && s.as_str() == "all")))
        .map(|s| ParamIssue {
            rule: crate::validate::rules::STAGE_UNKNOWN,
            message: format!("unknown stage `{s}` (see DESIGN §4 / harness/src/stages.rs)"),
        })
        .collect()
}

/// Check a model name against the registry.
pub fn check_model(name: &str, cx: &ValidateCx) -> Option<ParamIssue> {
    (!cx.models.models.contains_key(name)).then(|| ParamIssue {
        rule: crate::validate::rules::MODEL_UNKNOWN,
        message: format!("model `{name}` is not in contracts/models.yaml"),
    })
}
