//! Parameter types shared by engine-backed kinds: run specs, fault injection, locations,
//! metric and tolerance checks.

use serde::Deserialize;

use super::{check_model, check_stages, ParamIssue, Tolerance, ValidateCx};

/// One engine run: which model file, in which format, on which backend and thread count.
#[derive(Debug, Clone, Default, Deserialize)]
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

pub const FORMATS: &[&str] = &["gguf", "apr"];
pub const BACKENDS: &[&str] = &["cpu", "cpu-ref", "cuda"];
pub const METRICS: &[&str] = &["bit_exact", "max_abs", "rms", "nmse", "cosine", "max_ulp"];

pub fn check_run(spec: &RunSpec, what: &str, cx: &ValidateCx, issues: &mut Vec<ParamIssue>) {
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

pub fn check_metric(m: &str, issues: &mut Vec<ParamIssue>) {
    if !METRICS.contains(&m) {
        issues.push(ParamIssue::params(format!(
            "metric `{m}` not one of {METRICS:?}"
        )));
    }
}

pub fn check_tol(t: &Tolerance, issues: &mut Vec<ParamIssue>) {
    if let Err(e) = t.resolve() {
        issues.push(e);
    }
}
