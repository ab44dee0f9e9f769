//! `pv_validate`: validate contract files in-process and expect them valid, or invalid
//! with given rule ids.
//!
//! ```yaml
//! check:
//!   kind: pv_validate
//!   path: contracts/                       # file or directory, relative to the repo root
//!   expect: valid                          # valid | invalid
//!   rules: []                              # with `invalid`: rule ids that must fire
//! ```

use serde::Deserialize;

use super::{Kind, Measurement, Outcome, ParamIssue, RunCx, ValidateCx};

pub static KIND: Kind = Kind {
    name: "pv_validate",
    summary: "run the contract validator on a path; expect valid, or invalid with given rules",
    validate,
    run,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    path: String,
    expect: Expect,
    #[serde(default)]
    rules: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Valid,
    Invalid,
}

fn validate(params: &serde_yaml::Value, cx: &ValidateCx) -> Vec<ParamIssue> {
    super::validate_typed::<Params>("pv_validate", params, |p| {
        let mut issues = Vec::new();
        if p.expect == Expect::Valid && !p.rules.is_empty() {
            issues.push(ParamIssue::params(
                "pv_validate: `rules` only makes sense with `expect: invalid`",
            ));
        }
        for r in &p.rules {
            if !crate::validate::rules::ALL.iter().any(|(id, _)| id == r) {
                issues.push(ParamIssue::params(format!(
                    "pv_validate: unknown rule `{r}`"
                )));
            }
        }
        if !cx.repo_root.join(&p.path).exists() {
            issues.push(ParamIssue::params(format!(
                "pv_validate: path `{}` does not exist",
                p.path
            )));
        }
        issues
    })
}

fn run(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: Params = super::typed("pv_validate", params).map_err(|e| e.message)?;
    let path = cx.repo_root.join(&p.path);
    let report = crate::validate::validate_path(&path, cx.contracts_dir, cx.repo_root);
    let mut ms = vec![Measurement::new(
        "validity",
        "equals",
        if report.is_valid() {
            "valid"
        } else {
            "invalid"
        },
        match p.expect {
            Expect::Valid => "valid",
            Expect::Invalid => "invalid",
        },
        report.is_valid() == (p.expect == Expect::Valid),
    )];
    let fired: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
    for r in &p.rules {
        let hit = fired.contains(&r.as_str());
        ms.push(Measurement::new(
            format!("rule {r}"),
            "fires",
            hit,
            true,
            hit,
        ));
    }
    let passed = ms.iter().all(|m| m.ok);
    let mut measured = format!("pv validate {}: {}", p.path, report.summary_line());
    if !passed || !report.findings.is_empty() {
        measured.push('\n');
        measured.push_str(&report.render(cx.repo_root));
    }
    Ok(Outcome {
        passed,
        measured,
        measurements: ms,
        ..Outcome::default()
    })
}
