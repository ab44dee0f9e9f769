//! `cli`: run `apr` or `pv` with arguments; expect an exit status, stdout/stderr patterns
//! and files written.
//!
//! ```yaml
//! check:
//!   kind: cli
//!   bin: apr                       # apr | pv
//!   args: [inspect, "{scratch}/missing.gguf"]
//!   exit: nonzero                  # an integer, `nonzero`, or `any`; default 0
//!   stderr: ["missing\\.gguf"]     # regexes that must match
//!   stdout_not: ["panicked"]       # regexes that must not match
//!   files: ["{scratch}/out/layer-3/ffn_gate.bin"]   # must exist afterwards
//!   files_absent: ["{scratch}/out/layer-0"]          # must not exist afterwards
//! ```
//! Placeholders in `args`, `env` values and `files`: `{model}` (the resolved
//! `requires.model`; with `model_format: apr`, its `apr convert` output), `{scratch}` (an empty directory private to the trial), `{repo}`,
//! `{contracts}`.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use serde::Deserialize;

use super::{Kind, Measurement, Outcome, ParamIssue, RunCx, ValidateCx};

pub static KIND: Kind = Kind {
    name: "cli",
    summary: "run `apr` or `pv`; expect exit status, stdout/stderr patterns, files written",
    validate,
    run,
};

/// Default limit on one command (seconds).
const DEFAULT_TIMEOUT_S: u64 = 120;
/// How much of stdout/stderr a failure message quotes.
const QUOTE_BYTES: usize = 2000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    bin: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    exit: Exit,
    #[serde(default)]
    stdout: Vec<String>,
    #[serde(default)]
    stderr: Vec<String>,
    #[serde(default)]
    stdout_not: Vec<String>,
    #[serde(default)]
    stderr_not: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    files_absent: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    timeout_s: Option<u64>,
    /// `apr`: `{model}` is the model converted with `apr convert` into the scratch directory.
    #[serde(default)]
    model_format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Exit {
    Code(i32),
    Word(String),
}

impl Default for Exit {
    fn default() -> Self {
        Exit::Code(0)
    }
}

impl Exit {
    fn describe(&self) -> String {
        match self {
            Exit::Code(c) => c.to_string(),
            Exit::Word(w) => w.clone(),
        }
    }
    fn accepts(&self, code: Option<i32>) -> bool {
        match (self, code) {
            (Exit::Code(want), Some(got)) => *want == got,
            (Exit::Word(w), Some(got)) if w == "nonzero" => got != 0,
            (Exit::Word(w), Some(_)) if w == "any" => true,
            // killed by a signal: never what a contract expects
            _ => false,
        }
    }
}

const BINS: &[&str] = &["apr", "pv"];
const PLACEHOLDERS: &[&str] = &["model", "scratch", "repo", "contracts"];

fn validate(params: &serde_yaml::Value, cx: &ValidateCx) -> Vec<ParamIssue> {
    super::validate_typed::<Params>("cli", params, |p| {
        let mut issues = Vec::new();
        if !BINS.contains(&p.bin.as_str()) {
            issues.push(ParamIssue::params(format!(
                "cli: bin `{}` is not one of {BINS:?}",
                p.bin
            )));
        }
        if let Exit::Word(w) = &p.exit {
            if w != "nonzero" && w != "any" {
                issues.push(ParamIssue::params(format!(
                    "cli: exit `{w}` is not an integer, `nonzero` or `any`"
                )));
            }
        }
        for re in p
            .stdout
            .iter()
            .chain(&p.stderr)
            .chain(&p.stdout_not)
            .chain(&p.stderr_not)
        {
            if let Err(e) = Regex::new(re) {
                issues.push(ParamIssue::params(format!("cli: bad regex `{re}`: {e}")));
            }
        }
        for s in p
            .args
            .iter()
            .chain(&p.files)
            .chain(&p.files_absent)
            .chain(p.env.values())
        {
            for name in placeholders(s) {
                if !PLACEHOLDERS.contains(&name) {
                    issues.push(ParamIssue::params(format!(
                        "cli: unknown placeholder `{{{name}}}` in `{s}`"
                    )));
                } else if name == "model" && cx.requires_model.is_none() {
                    issues.push(ParamIssue::params(format!(
                        "cli: `{s}` uses {{model}} but the test has no requires.model"
                    )));
                }
            }
        }
        if let Some(f) = &p.model_format {
            if f != "apr" && f != "gguf" {
                issues.push(ParamIssue::params(format!(
                    "cli: model_format `{f}` is not apr or gguf"
                )));
            }
            if cx.requires_model.is_none() {
                issues.push(ParamIssue::params("cli: model_format needs requires.model"));
            }
        }
        if p.timeout_s == Some(0) {
            issues.push(ParamIssue::params("cli: timeout_s must be > 0"));
        }
        issues
    })
}

/// Names inside `{…}` in `s`.
fn placeholders(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push(&rest[open + 1..open + close]);
        rest = &rest[open + close + 1..];
    }
    out
}

fn expand(s: &str, cx: &RunCx) -> String {
    let mut out = s
        .replace("{scratch}", &cx.scratch.display().to_string())
        .replace("{repo}", &cx.repo_root.display().to_string())
        .replace("{contracts}", &cx.contracts_dir.display().to_string());
    if let Some(m) = cx.model {
        out = out.replace("{model}", &m.path.display().to_string());
    }
    out
}

fn run(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: Params = super::typed("cli", params).map_err(|e| e.message)?;
    let bin = crate::bins::locate(&p.bin)?;
    let converted;
    let mut cx_model = cx.model.cloned();
    if let (Some(fmt), Some(m)) = (&p.model_format, cx.model) {
        let spec = super::spec::RunSpec {
            format: Some(fmt.clone()),
            ..Default::default()
        };
        converted = super::engine::resolve(&spec, cx, "cli")?;
        cx_model = Some(crate::models::ResolvedModel {
            path: converted.path.clone(),
            ..m.clone()
        });
    }
    let cx = &RunCx {
        model: cx_model.as_ref(),
        scratch: cx.scratch.clone(),
        ..*cx
    };
    let args: Vec<String> = p.args.iter().map(|a| expand(a, cx)).collect();
    let mut cmd = Command::new(&bin);
    cmd.args(&args)
        .current_dir(cx.repo_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &p.env {
        cmd.env(k, expand(v, cx));
    }
    let limit = Duration::from_secs(p.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S));
    let shown = format!("{} {}", p.bin, args.join(" "));
    let res = run_with_timeout(cmd, limit)
        .map_err(|e| format!("cannot run `{shown}` ({}): {e}", bin.display()))?;

    let mut ms = Vec::new();
    let code = res.code;
    ms.push(Measurement::new(
        "exit status",
        "equals",
        code,
        p.exit.describe(),
        !res.timed_out && p.exit.accepts(code),
    ));
    if res.timed_out {
        ms.push(Measurement::new("timed out", "equals", true, false, false));
    }
    let pattern_checks: [(&str, &Vec<String>, &str, bool); 4] = [
        ("stdout", &p.stdout, &res.stdout, true),
        ("stderr", &p.stderr, &res.stderr, true),
        ("stdout", &p.stdout_not, &res.stdout, false),
        ("stderr", &p.stderr_not, &res.stderr, false),
    ];
    for (stream, pats, text, must) in pattern_checks {
        for pat in pats.iter() {
            let re = Regex::new(pat).map_err(|e| e.to_string())?;
            let found = re.is_match(text);
            let metric = "matches";
            ms.push(Measurement::new(
                format!("{stream} /{pat}/"),
                metric,
                found,
                must,
                found == must,
            ));
        }
    }
    for f in &p.files {
        let path = expand(f, cx);
        let exists = std::path::Path::new(&path).exists();
        ms.push(Measurement::new(
            format!("file {f}"),
            "exists",
            exists,
            true,
            exists,
        ));
    }
    for f in &p.files_absent {
        let exists = std::path::Path::new(&expand(f, cx)).exists();
        ms.push(Measurement::new(
            format!("file {f}"),
            "absent",
            !exists,
            true,
            !exists,
        ));
    }
    let passed = ms.iter().all(|m| m.ok);
    let mut measured = format!(
        "ran `{shown}`: exit {}",
        code.map_or("(killed by signal)".to_string(), |c| c.to_string())
    );
    if res.timed_out {
        measured.push_str(&format!(" after the {}s limit (killed)", limit.as_secs()));
    }
    let failed: Vec<String> = ms
        .iter()
        .filter(|m| !m.ok)
        .map(|m| format!("{} {} {} (got {})", m.name, m.metric, m.threshold, m.value))
        .collect();
    if !failed.is_empty() {
        measured.push_str(&format!("; not held: {}", failed.join("; ")));
        measured.push_str(&format!(
            "\n--- stdout ---\n{}\n--- stderr ---\n{}",
            quote(&res.stdout),
            quote(&res.stderr)
        ));
    }
    Ok(Outcome {
        passed,
        measured,
        measurements: ms,
        ..Outcome::default()
    })
}

fn quote(s: &str) -> String {
    if s.len() <= QUOTE_BYTES {
        return s.trim_end().to_string();
    }
    let mut cut = s.len() - QUOTE_BYTES;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", s[cut..].trim_end())
}

struct RunResult {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

fn run_with_timeout(mut cmd: Command, limit: Duration) -> std::io::Result<RunResult> {
    let mut child = cmd.spawn()?;
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Ok(RunResult {
        code: status.code(),
        stdout,
        stderr,
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found() {
        assert_eq!(
            placeholders("{scratch}/a/{model}"),
            vec!["scratch", "model"]
        );
        assert!(placeholders("no braces").is_empty());
    }

    #[test]
    fn exit_words() {
        assert!(Exit::Word("nonzero".into()).accepts(Some(1)));
        assert!(!Exit::Word("nonzero".into()).accepts(Some(0)));
        assert!(!Exit::Code(0).accepts(None));
        assert!(Exit::Word("any".into()).accepts(Some(3)));
    }
}
