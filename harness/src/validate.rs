//! `pv validate`: the schema plus the rules below, over a file or a directory.
//!
//! Each rule has a stable id that appears in the output (`[ERROR] FT-002: … (file:line)`)
//! and has an invalid fixture under `tests/fixtures/invalid/` that makes it fire.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::checks::{self, ValidateCx};
use crate::models::Registry;
use crate::schema::{self, LoadedContract, Status};

/// Rule ids and what they mean.
pub mod rules {
    pub const IO: &str = "IO-001";
    pub const SCHEMA: &str = "SCHEMA-001";
    pub const MODELS_FILE: &str = "SCHEMA-002";
    pub const META_ID: &str = "META-001";
    pub const META_VERSION: &str = "META-002";
    pub const META_DESCRIPTION: &str = "META-003";
    pub const META_REFERENCES: &str = "META-004";
    pub const EQUATIONS: &str = "EQ-001";
    pub const NO_TESTS: &str = "FT-001";
    pub const TEST_ID_FORMAT: &str = "FT-002";
    pub const TEST_ID_DUPLICATE: &str = "FT-003";
    pub const TEST_RULE: &str = "FT-004";
    pub const TEST_PREDICTION: &str = "FT-005";
    pub const TEST_IF_FAILS: &str = "FT-006";
    pub const CHECK_MISSING: &str = "CHECK-001";
    pub const CHECK_KIND: &str = "CHECK-002";
    pub const CHECK_PARAMS: &str = "CHECK-003";
    pub const STAGE_UNKNOWN: &str = "STAGE-001";
    pub const MODEL_UNKNOWN: &str = "MODEL-001";
    pub const DEPENDS_ON: &str = "DEP-001";
    pub const REQUIRES_ENV: &str = "REQ-001";

    /// Every rule with a one-line description (rendered into docs/contracts.md).
    pub const ALL: &[(&str, &str)] = &[
        (
            IO,
            "a path cannot be read, or a directory holds no contracts",
        ),
        (
            SCHEMA,
            "YAML syntax, unknown key, wrong type or missing required field (file:line:column)",
        ),
        (MODELS_FILE, "contracts/models.yaml does not parse"),
        (
            META_ID,
            "metadata.id empty, not lowercase-kebab, or different from the file stem",
        ),
        (META_VERSION, "metadata.version empty"),
        (META_DESCRIPTION, "metadata.description empty"),
        (META_REFERENCES, "metadata.references empty"),
        (EQUATIONS, "no equation with a non-empty formula"),
        (NO_TESTS, "no falsification tests (warning)"),
        (
            TEST_ID_FORMAT,
            "falsification id not FALSIFY-<PREFIX>-NNN or F-<PREFIX>-NNN",
        ),
        (
            TEST_ID_DUPLICATE,
            "falsification id used twice (across all contracts)",
        ),
        (TEST_RULE, "falsification test without a rule"),
        (TEST_PREDICTION, "falsification test without a prediction"),
        (
            TEST_IF_FAILS,
            "falsification test without if_fails (warning)",
        ),
        (
            CHECK_MISSING,
            "test without a check (error unless the contract is PROPOSED)",
        ),
        (CHECK_KIND, "unknown check kind"),
        (
            CHECK_PARAMS,
            "check parameters invalid (unknown key, type, value, regex, placeholder)",
        ),
        (STAGE_UNKNOWN, "stage name not in the stage vocabulary"),
        (MODEL_UNKNOWN, "model name not in contracts/models.yaml"),
        (
            DEPENDS_ON,
            "metadata.depends_on names a contract that does not exist",
        ),
        (
            REQUIRES_ENV,
            "requires.env entry is not an environment variable name",
        ),
    ];
}

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    pub rule: &'static str,
    pub message: String,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

/// All findings of one validation.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub files: Vec<PathBuf>,
    pub findings: Vec<Finding>,
    /// The contracts that parsed (validated ones only).
    pub contracts: Vec<LoadedContract>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }
    pub fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }
    pub fn is_valid(&self) -> bool {
        self.errors() == 0
    }
    pub fn summary_line(&self) -> String {
        format!("{} error(s), {} warning(s)", self.errors(), self.warnings())
    }
    /// One line per finding, paths relative to `root` where possible.
    pub fn render(&self, root: &Path) -> String {
        let mut s = String::new();
        for f in &self.findings {
            let tag = match f.severity {
                Severity::Error => "ERROR",
                Severity::Warning => "WARN",
            };
            let file = display_path(&f.file, root);
            let loc = match (f.line, f.column) {
                (0, _) => file,
                (l, 0) => format!("{file}:{l}"),
                (l, c) => format!("{file}:{l}:{c}"),
            };
            let message = f.message.split_whitespace().collect::<Vec<_>>().join(" ");
            s.push_str(&format!("[{tag}] {}: {message} ({loc})\n", f.rule));
        }
        s
    }
}

/// `path` relative to `root` when it is under it.
pub fn display_path(path: &Path, root: &Path) -> String {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let (p, r) = (canon(path), canon(root));
    p.strip_prefix(&r)
        .map(|x| x.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

/// Validate a contract file or directory. `contracts_dir` supplies models.yaml and the
/// universe for id uniqueness and `depends_on`.
pub fn validate_path(path: &Path, contracts_dir: &Path, repo_root: &Path) -> Report {
    let mut report = Report::default();
    let registry = match Registry::load(contracts_dir) {
        Ok(r) => r,
        Err(e) => {
            report.push(
                Severity::Error,
                rules::MODELS_FILE,
                e.message,
                &e.path,
                e.line,
                e.column,
            );
            Registry::default()
        }
    };
    let files = match schema::contract_files(path) {
        Ok(f) if f.is_empty() => {
            report.push(
                Severity::Error,
                rules::IO,
                "no contract files (*.yaml) here",
                path,
                0,
                0,
            );
            return report;
        }
        Ok(f) => f,
        Err(e) => {
            report.push(
                Severity::Error,
                rules::IO,
                format!("cannot read: {e}"),
                path,
                0,
                0,
            );
            return report;
        }
    };
    report.files = files.clone();

    // The universe: the contracts directory plus what is validated (deduplicated).
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let targets: BTreeSet<PathBuf> = files.iter().map(|p| canon(p)).collect();
    let mut universe: Vec<(PathBuf, bool)> = files.iter().map(|p| (p.clone(), true)).collect();
    if path_is_not(contracts_dir, path) {
        for p in schema::contract_files(contracts_dir).unwrap_or_default() {
            if !targets.contains(&canon(&p)) {
                universe.push((p, false));
            }
        }
    }

    let mut loaded: Vec<(LoadedContract, bool)> = Vec::new();
    for (p, is_target) in universe {
        match schema::load_contract(&p) {
            Ok(c) => loaded.push((c, is_target)),
            Err(e) if is_target => report.push(
                Severity::Error,
                rules::SCHEMA,
                e.message,
                &e.path,
                e.line,
                e.column,
            ),
            Err(_) => {} // reported when that file itself is validated
        }
    }

    let contract_ids: BTreeSet<&str> = loaded
        .iter()
        .map(|(c, _)| c.contract.metadata.id.as_str())
        .collect();
    let mut seen_ids: BTreeMap<&str, (PathBuf, usize)> = BTreeMap::new();
    let mut new_findings = Vec::new();
    for (c, is_target) in &loaded {
        for (i, t) in c.contract.falsification_tests.iter().enumerate() {
            if t.id.is_empty() {
                continue;
            }
            let line = c.test_lines[i];
            if let Some((first, first_line)) = seen_ids.get(t.id.as_str()) {
                if *is_target {
                    new_findings.push(finding(
                        Severity::Error,
                        rules::TEST_ID_DUPLICATE,
                        format!(
                            "{} is also defined at {}:{}",
                            t.id,
                            display_path(first, repo_root),
                            first_line
                        ),
                        &c.path,
                        line,
                    ));
                }
            } else {
                seen_ids.insert(t.id.as_str(), (c.path.clone(), line));
            }
        }
        if *is_target {
            validate_contract(c, &registry, &contract_ids, repo_root, &mut new_findings);
        }
    }
    report.findings.extend(new_findings);
    report.contracts = loaded
        .into_iter()
        .filter(|(_, t)| *t)
        .map(|(c, _)| c)
        .collect();
    report.findings.sort_by(|a, b| {
        (&a.file, a.line, a.severity, a.rule).cmp(&(&b.file, b.line, b.severity, b.rule))
    });
    report
}

fn path_is_not(a: &Path, b: &Path) -> bool {
    a.canonicalize().ok() != b.canonicalize().ok()
}

fn finding(
    severity: Severity,
    rule: &'static str,
    message: impl Into<String>,
    file: &Path,
    line: usize,
) -> Finding {
    Finding {
        severity,
        rule,
        message: message.into(),
        file: file.to_path_buf(),
        line,
        column: 0,
    }
}

impl Report {
    fn push(
        &mut self,
        severity: Severity,
        rule: &'static str,
        message: impl Into<String>,
        file: &Path,
        line: usize,
        column: usize,
    ) {
        self.findings.push(Finding {
            severity,
            rule,
            message: message.into(),
            file: file.to_path_buf(),
            line,
            column,
        });
    }
}

/// `FALSIFY-<PREFIX>-NNN` or `F-<PREFIX>-NNN`: PREFIX is one or more upper-case
/// alphanumeric segments joined by `-`; NNN is three or more digits.
pub fn is_valid_test_id(id: &str) -> bool {
    let rest = if let Some(r) = id.strip_prefix("FALSIFY-") {
        r
    } else if let Some(r) = id.strip_prefix("F-") {
        r
    } else {
        return false;
    };
    let Some((prefix, num)) = rest.rsplit_once('-') else {
        return false;
    };
    num.len() >= 3
        && num.bytes().all(|b| b.is_ascii_digit())
        && !prefix.is_empty()
        && prefix.split('-').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
}

/// Contract ids: lowercase ASCII letters, digits and single dashes (`pv-cli-v1`).
pub fn is_valid_contract_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn validate_contract(
    c: &LoadedContract,
    registry: &Registry,
    contract_ids: &BTreeSet<&str>,
    repo_root: &Path,
    out: &mut Vec<Finding>,
) {
    let m = &c.contract.metadata;
    let file = &c.path;
    let meta_line = c.line_of_key("metadata");
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if !is_valid_contract_id(&m.id) {
        out.push(finding(
            Severity::Error,
            rules::META_ID,
            format!(
                "metadata.id `{}` is not lowercase-kebab (e.g. `pv-cli-v1`)",
                m.id
            ),
            file,
            c.line_of_key("id"),
        ));
    } else if m.id != stem {
        out.push(finding(
            Severity::Error,
            rules::META_ID,
            format!("metadata.id `{}` differs from the file name `{stem}`", m.id),
            file,
            c.line_of_key("id"),
        ));
    }
    if m.version.trim().is_empty() {
        out.push(finding(
            Severity::Error,
            rules::META_VERSION,
            "metadata.version is empty",
            file,
            c.key_line("version").unwrap_or(meta_line),
        ));
    }
    if m.description.trim().is_empty() {
        out.push(finding(
            Severity::Error,
            rules::META_DESCRIPTION,
            "metadata.description is empty",
            file,
            c.key_line("description").unwrap_or(meta_line),
        ));
    }
    if m.references.iter().all(|r| r.trim().is_empty()) {
        out.push(finding(
            Severity::Error,
            rules::META_REFERENCES,
            "metadata.references is empty",
            file,
            c.key_line("references").unwrap_or(meta_line),
        ));
    }
    for dep in &m.depends_on {
        if !contract_ids.contains(dep.as_str()) || dep == &m.id {
            out.push(finding(
                Severity::Error,
                rules::DEPENDS_ON,
                format!("depends_on `{dep}` does not name another contract"),
                file,
                c.line_of_key("depends_on"),
            ));
        }
    }
    if !c
        .contract
        .equations
        .values()
        .any(|e| !e.formula.trim().is_empty())
    {
        out.push(finding(
            Severity::Error,
            rules::EQUATIONS,
            "no equation with a non-empty formula",
            file,
            c.line_of_key("equations").max(meta_line),
        ));
    }
    if c.contract.falsification_tests.is_empty() {
        out.push(finding(
            Severity::Warning,
            rules::NO_TESTS,
            "no falsification tests",
            file,
            meta_line,
        ));
    }
    for (i, t) in c.contract.falsification_tests.iter().enumerate() {
        let line = c.test_lines[i];
        let label = if t.id.is_empty() {
            format!("falsification_tests[{i}]")
        } else {
            t.id.clone()
        };
        if !is_valid_test_id(&t.id) {
            out.push(finding(
                Severity::Error,
                rules::TEST_ID_FORMAT,
                format!(
                    "{label}: id `{}` is not FALSIFY-<PREFIX>-NNN or F-<PREFIX>-NNN",
                    t.id
                ),
                file,
                line,
            ));
        }
        if t.rule.trim().is_empty() {
            out.push(finding(
                Severity::Error,
                rules::TEST_RULE,
                format!("{label}: rule is empty"),
                file,
                line,
            ));
        }
        if t.prediction.trim().is_empty() {
            out.push(finding(
                Severity::Error,
                rules::TEST_PREDICTION,
                format!("{label}: prediction is empty"),
                file,
                line,
            ));
        }
        if t.if_fails.trim().is_empty() {
            out.push(finding(
                Severity::Warning,
                rules::TEST_IF_FAILS,
                format!("{label}: if_fails is empty"),
                file,
                line,
            ));
        }
        for e in &t.requires.env {
            let ok = !e.is_empty()
                && e.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                out.push(finding(
                    Severity::Error,
                    rules::REQUIRES_ENV,
                    format!("{label}: requires.env `{e}` is not an environment variable name"),
                    file,
                    line,
                ));
            }
        }
        let cx = ValidateCx {
            models: registry,
            requires_model: t.requires.model.as_deref(),
            repo_root,
        };
        if let Some(model) = &t.requires.model {
            if let Some(issue) = checks::check_model(model, &cx) {
                out.push(finding(
                    Severity::Error,
                    issue.rule,
                    format!("{label}: {}", issue.message),
                    file,
                    line,
                ));
            }
        }
        let Some(check) = &t.check else {
            let sev = if m.status == Status::Proposed {
                Severity::Warning
            } else {
                Severity::Error
            };
            out.push(finding(
                sev,
                rules::CHECK_MISSING,
                format!("{label}: no check"),
                file,
                line,
            ));
            continue;
        };
        let (kind_name, params) = match checks::split(check) {
            Ok(x) => x,
            Err(e) => {
                out.push(finding(
                    Severity::Error,
                    rules::CHECK_KIND,
                    format!("{label}: {e}"),
                    file,
                    line,
                ));
                continue;
            }
        };
        let Some(kind) = checks::kind(&kind_name) else {
            let known: Vec<&str> = checks::REGISTRY.iter().map(|k| k.name).collect();
            out.push(finding(
                Severity::Error,
                rules::CHECK_KIND,
                format!(
                    "{label}: unknown check kind `{kind_name}` (known: {})",
                    known.join(", ")
                ),
                file,
                line,
            ));
            continue;
        };
        for issue in (kind.validate)(&params, &cx) {
            out.push(finding(
                Severity::Error,
                issue.rule,
                format!("{label}: {}", issue.message),
                file,
                line,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_id_formats() {
        for ok in [
            "FALSIFY-APR-TRACE-SAVE-001",
            "F-QW3-MOE-C22214-001",
            "FALSIFY-PV-1234",
        ] {
            assert!(is_valid_test_id(ok), "{ok}");
        }
        for bad in [
            "FALSIFY-001",
            "falsify-pv-001",
            "FALSIFY-PV-01",
            "F--PV-001",
            "FALSIFY-PV-001a",
            "X-PV-001",
            "",
        ] {
            assert!(!is_valid_test_id(bad), "{bad}");
        }
    }

    #[test]
    fn contract_id_formats() {
        assert!(is_valid_contract_id("ship-007-apr-gguf-parity-v1"));
        assert!(!is_valid_contract_id("Ship-007"));
        assert!(!is_valid_contract_id("a--b"));
        assert!(!is_valid_contract_id(""));
    }

    #[test]
    fn every_rule_id_is_unique() {
        let ids: BTreeSet<&str> = rules::ALL.iter().map(|r| r.0).collect();
        assert_eq!(ids.len(), rules::ALL.len());
    }
}
