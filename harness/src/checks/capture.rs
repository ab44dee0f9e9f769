//! Capture-based kinds, run through the engine's CLI (`apr trace --save-tensor`,
//! `apr diff --values --json`):
//!
//! - `capture_determinism`: the same capture repeated (`runs`) at each thread count
//!   (`threads`) is byte-identical to the first — the parallel-reduction hypothesis,
//!   falsified by test.
//! - `stage_parity`: two run specs (model, format, backend, threads) captured on one prompt;
//!   every (layer, stage) pair within `metric` ≤ `tolerance`, no NaN/Inf mismatch, and the
//!   same set of files on both sides.

use serde::Deserialize;

use super::engine::{self, Capture};
use super::spec::{check_metric, check_run, check_tol, RunSpec};
use super::{
    check_stages, Divergence, DivergenceCell, Kind, Measurement, Outcome, ParamIssue, RunCx,
    Tolerance, ValidateCx,
};

/// Prompt used when a check gives none.
const DEFAULT_PROMPT: &str = "The capital of France is";

// ---- capture_determinism ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureDeterminism {
    pub stages: Vec<String>,
    #[serde(default)]
    pub layers: Vec<u32>,
    #[serde(default)]
    pub prompt: Option<String>,
    /// Repeat runs per thread count (≥ 2 unless several thread counts are given).
    pub runs: u32,
    /// Thread counts whose captures must be byte-identical to each other.
    #[serde(default)]
    pub threads: Vec<usize>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub backend: Option<String>,
}

impl CaptureDeterminism {
    fn spec(&self) -> RunSpec {
        RunSpec {
            model: None,
            format: self.format.clone(),
            backend: self.backend.clone(),
            threads: None,
            inject_fault: None,
        }
    }
}

pub static CAPTURE_DETERMINISM: Kind = Kind {
    name: "capture_determinism",
    summary: "repeat `apr trace --save-tensor` runs (and thread counts); captures byte-identical",
    validate: |v, cx| {
        super::validate_typed::<CaptureDeterminism>("capture_determinism", v, |p| {
            validate_determinism(p, cx)
        })
    },
    run: run_determinism,
};

fn validate_determinism(p: &CaptureDeterminism, cx: &ValidateCx) -> Vec<ParamIssue> {
    let mut i = check_stages(&p.stages, true);
    if p.runs == 0 || (p.runs < 2 && p.threads.len() < 2) {
        i.push(ParamIssue::params(
            "capture_determinism: needs runs >= 2 or at least two thread counts",
        ));
    }
    if p.threads.contains(&0) {
        i.push(ParamIssue::params(
            "capture_determinism: threads must be >= 1",
        ));
    }
    check_run(&p.spec(), "capture_determinism", cx, &mut i);
    i
}

fn run_determinism(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: CaptureDeterminism =
        super::typed("capture_determinism", params).map_err(|e| e.message)?;
    let model = engine::resolve(&p.spec(), cx, "m")?;
    let prompt = p.prompt.as_deref().unwrap_or(DEFAULT_PROMPT);
    let threads: Vec<Option<usize>> = if p.threads.is_empty() {
        vec![None]
    } else {
        p.threads.iter().map(|t| Some(*t)).collect()
    };
    let mut captures = Vec::new();
    let mut simd = None;
    for t in &threads {
        for r in 0..p.runs {
            let label = format!(
                "threads={} run={}",
                t.map_or("default".into(), |t| t.to_string()),
                r + 1
            );
            let dir = cx.scratch.join(format!("cap-t{}-r{}", t.unwrap_or(0), r));
            let ran = Capture {
                model: &model.path,
                prompt,
                stages: &p.stages,
                layers: &p.layers,
                backend: &model.backend,
                threads: *t,
            }
            .run(&dir)?;
            simd = simd.or(ran);
            captures.push((label, engine::read_capture(&dir)?));
        }
    }
    let (first_label, first) = &captures[0];
    let mut cells: Vec<DivergenceCell> = first
        .keys()
        .map(|rel| {
            let (layer, stage) = engine::location(rel);
            DivergenceCell {
                layer,
                stage,
                metric: "captures differing".into(),
                value: 0.0,
                tolerance: 0.0,
            }
        })
        .collect();
    let mut differing = Vec::new();
    let mut missing = Vec::new();
    for (label, cap) in &captures[1..] {
        for (i, (rel, bytes)) in first.iter().enumerate() {
            match cap.get(rel) {
                Some(b) if b == bytes => {}
                Some(_) => {
                    cells[i].value += 1.0;
                    differing.push(format!("{rel} ({label} vs {first_label})"));
                }
                None => missing.push(format!("{rel} missing in {label}")),
            }
        }
        for rel in cap.keys().filter(|k| !first.contains_key(*k)) {
            missing.push(format!("{rel} only in {label}"));
        }
    }
    engine::sort_cells(&mut cells);
    let first_div = cells.iter().find(|c| c.value > 0.0).cloned();
    let ms = vec![
        Measurement::new(
            "captures compared",
            "count",
            captures.len(),
            ">= 2",
            captures.len() >= 2,
        ),
        Measurement::new(
            "files per capture",
            "count",
            first.len(),
            "> 0",
            !first.is_empty(),
        ),
        Measurement::new(
            "files with differing bytes",
            "equals",
            differing.len(),
            0,
            differing.is_empty(),
        ),
        Measurement::new(
            "files on one side only",
            "equals",
            missing.len(),
            0,
            missing.is_empty(),
        ),
    ];
    let passed = ms.iter().all(|m| m.ok);
    let mut measured = format!(
        "{} captures of {} ({} files each; threads {:?}, {} runs each, backend {}): ",
        captures.len(),
        model.model,
        first.len(),
        p.threads,
        p.runs,
        model.backend
    );
    if passed {
        measured.push_str("all byte-identical");
    } else {
        let list: Vec<&String> = differing.iter().chain(&missing).take(8).collect();
        measured.push_str(&format!(
            "{} differing, {} unmatched; first: {}",
            differing.len(),
            missing.len(),
            list.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok(Outcome {
        passed,
        measured,
        measurements: ms,
        backend: Some(model.backend.clone()),
        threads: p.threads.iter().copied().max(),
        simd,
        divergence: Some(Divergence {
            first: first_div,
            cells,
        }),
    })
}

// ---- stage_parity ----------------------------------------------------------------------

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
    /// `bit_exact` (differing bit patterns), `max_abs`, `rms`, `nmse`, `cosine`
    /// (1 − cosine similarity) or `max_ulp`.
    pub metric: String,
    pub tolerance: Tolerance,
}

pub static STAGE_PARITY: Kind = Kind {
    name: "stage_parity",
    summary: "two runs captured per (layer, stage); each pair within metric/tolerance",
    validate: |v, cx| {
        super::validate_typed::<StageParity>("stage_parity", v, |p| {
            let mut i = check_stages(&p.stages, true);
            check_run(&p.a, "stage_parity.a", cx, &mut i);
            check_run(&p.b, "stage_parity.b", cx, &mut i);
            check_metric(&p.metric, &mut i);
            check_tol(&p.tolerance, &mut i);
            if p.a.inject_fault.is_some() || p.b.inject_fault.is_some() {
                i.push(ParamIssue::params(
                    "stage_parity: inject_fault is not supported (bisect only)",
                ));
            }
            i
        })
    },
    run: run_parity,
};

/// The value of `metric` from one `apr diff --json` pair's `metrics` (None = +∞).
fn metric_value(metric: &str, m: &serde_json::Value) -> Option<f64> {
    let f = |k: &str| m.get(k).and_then(serde_json::Value::as_f64);
    match metric {
        "bit_exact" => f("differing_bits"),
        "max_abs" => f("max_abs_diff"),
        "rms" => f("rms_diff"),
        "nmse" => f("nmse"),
        "cosine" => f("cosine_sim").map(|c| 1.0 - c),
        "max_ulp" => f("max_ulp"),
        _ => None,
    }
}

fn run_parity(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: StageParity = super::typed("stage_parity", params).map_err(|e| e.message)?;
    let tol = p.tolerance.resolve().map_err(|e| e.message)?;
    let prompt = p.prompt.as_deref().unwrap_or(DEFAULT_PROMPT);
    let mut dirs = Vec::new();
    let mut described = Vec::new();
    let mut simd = None;
    for (tag, spec) in [("a", &p.a), ("b", &p.b)] {
        let r = engine::resolve(spec, cx, tag)?;
        let dir = cx.scratch.join(format!("cap-{tag}"));
        let ran = Capture {
            model: &r.path,
            prompt,
            stages: &p.stages,
            layers: &p.layers,
            backend: &r.backend,
            threads: spec.threads,
        }
        .run(&dir)?;
        simd = simd.or(ran);
        described.push(format!(
            "{tag} = {} ({}, {}, threads {})",
            r.model,
            spec.format.as_deref().unwrap_or("as stored"),
            r.backend,
            spec.threads.map_or("default".into(), |t| t.to_string())
        ));
        dirs.push(dir);
    }
    // exit 0: within; 1: NaN/Inf mismatch (still a full JSON report); 2: an error
    let args: [&std::ffi::OsStr; 5] = [
        "diff".as_ref(),
        "--values".as_ref(),
        dirs[0].as_os_str(),
        dirs[1].as_os_str(),
        "--json".as_ref(),
    ];
    let (code, json, stderr) = engine::apr_output(&args, &[])?;
    if !matches!(code, Some(0 | 1)) || json.trim().is_empty() {
        return Ok(diff_failure(
            format!("exit {code:?}: {}", stderr.trim_end()),
            &described,
        ));
    }
    let report: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| format!("apr diff --json output does not parse: {e}"))?;
    let mut cells = Vec::new();
    let mut nonfinite = 0u64;
    for pair in report["pairs"].as_array().into_iter().flatten() {
        let stage = pair["stage"].as_str().unwrap_or_default().to_string();
        let layer = pair["layer"].as_u64().map(|l| l as u32);
        // metrics are flattened into the pair (apr-stage-diff-v1); older layouts nest them
        let m = pair.get("metrics").unwrap_or(pair);
        nonfinite +=
            m["nan_mismatches"].as_u64().unwrap_or(0) + m["inf_mismatches"].as_u64().unwrap_or(0);
        let value = metric_value(&p.metric, m).unwrap_or(f64::INFINITY);
        cells.push(DivergenceCell {
            layer,
            stage,
            metric: p.metric.clone(),
            value,
            tolerance: tol,
        });
    }
    engine::sort_cells(&mut cells);
    let beyond: Vec<&DivergenceCell> = cells
        .iter()
        .filter(|c| c.value.is_nan() || c.value > c.tolerance)
        .collect();
    let one_sided = report["only_in_a"].as_array().map_or(0, Vec::len)
        + report["only_in_b"].as_array().map_or(0, Vec::len);
    let errors = report["errors"].as_array().map_or(0, Vec::len);
    let worst = cells.iter().map(|c| c.value).fold(0.0f64, f64::max);
    let ms = vec![
        Measurement::new(
            "pairs compared",
            "count",
            cells.len(),
            "> 0",
            !cells.is_empty(),
        ),
        Measurement::new(
            format!("worst {}", p.metric),
            format!("{}<=", p.metric).as_str(),
            worst,
            tol,
            beyond.is_empty(),
        ),
        Measurement::new(
            "pairs beyond tolerance",
            "equals",
            beyond.len(),
            0,
            beyond.is_empty(),
        ),
        Measurement::new("NaN/Inf mismatches", "equals", nonfinite, 0, nonfinite == 0),
        Measurement::new(
            "files on one side only",
            "equals",
            one_sided,
            0,
            one_sided == 0,
        ),
        Measurement::new("diff errors", "equals", errors, 0, errors == 0),
    ];
    let passed = ms.iter().all(|m| m.ok);
    let first = beyond.first().map(|c| (*c).clone());
    let mut measured = format!(
        "{} (layer, stage) pairs of {}: worst {} {:e} (tolerance {:e})",
        cells.len(),
        described.join(" vs "),
        p.metric,
        worst,
        tol
    );
    if let Some(f) = &first {
        measured.push_str(&format!(
            "; {} pairs beyond, first at {} {}",
            beyond.len(),
            f.layer
                .map_or("whole-model".into(), |l| format!("layer {l}")),
            f.stage
        ));
    }
    Ok(Outcome {
        passed,
        measured,
        measurements: ms,
        backend: p.a.backend.clone().or(Some("cpu".into())),
        threads: p.a.threads,
        simd,
        divergence: Some(Divergence { first, cells }),
    })
}

fn diff_failure(e: String, described: &[String]) -> Outcome {
    Outcome {
        passed: false,
        measured: format!(
            "apr diff over {} did not produce a report: {e}",
            described.join(" vs ")
        ),
        measurements: vec![Measurement::new("apr diff", "succeeds", false, true, false)],
        ..Outcome::default()
    }
}
