//! The contract file format: provable-contracts field names plus `check` and `requires`.
//!
//! Every struct denies unknown keys, so a misspelt field is an error that serde_yaml
//! locates (line and column) instead of a silently ignored falsifier. The `check` block is
//! kept as a raw mapping here; its `kind` selects a typed parameter struct in
//! [`crate::checks`], which denies unknown keys in turn.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lifecycle of a contract. Only DRAFT and ACTIVE_* contracts run; PROPOSED ones are
/// validated and reported as skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    /// Written down, not executable yet (the engine feature it needs does not exist).
    #[serde(rename = "PROPOSED")]
    Proposed,
    /// Runs and gates; not yet proven on a real model.
    #[serde(rename = "DRAFT")]
    Draft,
    /// Proven on algorithm-level fixtures.
    #[serde(rename = "ACTIVE_ALGORITHM_LEVEL")]
    ActiveAlgorithmLevel,
    /// Proven at runtime, end to end.
    #[serde(rename = "ACTIVE_RUNTIME")]
    ActiveRuntime,
}

impl Status {
    /// The status word as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Proposed => "PROPOSED",
            Status::Draft => "DRAFT",
            Status::ActiveAlgorithmLevel => "ACTIVE_ALGORITHM_LEVEL",
            Status::ActiveRuntime => "ACTIVE_RUNTIME",
        }
    }

    /// Whether falsification tests of a contract in this state are executed.
    pub fn runs(self) -> bool {
        self != Status::Proposed
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One contract file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub metadata: Metadata,
    #[serde(default)]
    pub equations: BTreeMap<String, Equation>,
    #[serde(default)]
    pub falsification_tests: Vec<FalsificationTest>,
    /// Free-form gate description (provable-contracts keeps it open); not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qa_gate: Option<serde_yaml::Value>,
}

/// `metadata:` block.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Contract id; also the evidence directory name. Must equal the file stem.
    pub id: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub references: Vec<String>,
    /// Ids of contracts this one builds on; each must exist.
    #[serde(default)]
    pub depends_on: Vec<String>,
    pub status: Status,
    /// Creation date (free text, usually YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// One equation: the math the contract is about.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Equation {
    #[serde(default)]
    pub formula: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codomain: Option<String>,
    #[serde(default)]
    pub invariants: Vec<String>,
}

/// One falsification test: a prediction that a check can refute.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FalsificationTest {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub prediction: String,
    /// How the prediction is tested, in words.
    #[serde(default)]
    pub test: String,
    /// What a failure would mean / where to look.
    #[serde(default)]
    pub if_fails: String,
    /// `{kind: <check kind>, …params}`; validated by the kind's parameter struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<serde_yaml::Mapping>,
    #[serde(default)]
    pub requires: Requires,
}

/// What a test needs to run here; anything missing makes the trial a skip (or a failure
/// for models under `APR_REQUIRE_MODELS=1`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// Logical model name from `contracts/models.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Needs a CUDA device.
    #[serde(default)]
    pub gpu: bool,
    /// Environment variables that must be set (non-empty) for the test to run, e.g. `APR_PERF`.
    #[serde(default)]
    pub env: Vec<String>,
}

/// A contract loaded from disk with enough of its text to locate findings.
#[derive(Debug, Clone)]
pub struct LoadedContract {
    pub path: PathBuf,
    pub contract: Contract,
    /// 1-based line of each falsification test's `id:` (same order as the tests).
    pub test_lines: Vec<usize>,
    source: String,
}

impl LoadedContract {
    /// 1-based line of the first line containing `needle` at a key position, or 1.
    pub fn line_of_key(&self, key: &str) -> usize {
        self.key_line(key).unwrap_or(1)
    }

    /// 1-based line of the first `key:` entry, if any.
    pub fn key_line(&self, key: &str) -> Option<usize> {
        find_key_line(&self.source, key, 0)
    }
}

/// A contract that could not be parsed.
#[derive(Debug, Clone)]
pub struct LoadError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parse one contract file. Errors carry serde_yaml's location.
pub fn load_contract(path: &Path) -> Result<LoadedContract, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|e| LoadError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse_contract(path, source)
}

/// Parse contract text (exposed for tests).
pub fn parse_contract(path: &Path, source: String) -> Result<LoadedContract, LoadError> {
    let contract: Contract = serde_yaml::from_str(&source).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        LoadError {
            path: path.to_path_buf(),
            line,
            column,
            message: e.to_string(),
        }
    })?;
    let mut test_lines = Vec::with_capacity(contract.falsification_tests.len());
    let start = find_key_line(&source, "falsification_tests", 0).unwrap_or(1);
    let mut from = start;
    for t in &contract.falsification_tests {
        let line = find_id_line(&source, &t.id, from).unwrap_or(from);
        test_lines.push(line);
        from = line + 1;
    }
    Ok(LoadedContract {
        path: path.to_path_buf(),
        contract,
        test_lines,
        source,
    })
}

/// First line (1-based, at or after `from`) where `key:` starts a mapping entry.
fn find_key_line(source: &str, key: &str, from: usize) -> Option<usize> {
    source
        .lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            (t.starts_with(key) && t[key.len()..].trim_start().starts_with(':')).then_some(i + 1)
        })
}

/// First line at or after `from` holding `id: <id>` (quoted or not).
fn find_id_line(source: &str, id: &str, from: usize) -> Option<usize> {
    source
        .lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            let rest = t.strip_prefix("id:")?;
            let v = rest.trim().trim_matches(|c| c == '"' || c == '\'');
            (v == id).then_some(i + 1)
        })
}

/// Contract files under `path` (a file, or every `*.yaml`/`*.yml` in a directory except
/// `models.yaml`), sorted.
pub fn contract_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        let is_yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        let is_registry =
            p.file_name().and_then(|n| n.to_str()) == Some(crate::models::REGISTRY_FILE);
        if p.is_file() && is_yaml && !is_registry {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}
