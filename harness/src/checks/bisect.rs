//! `bisect`: `apr bisect` over two runs must name the expected first divergent
//! (layer, stage), or none.
//!
//! With `inject_fault: {layer, stage, scale}` on one run spec, that side is captured with
//! `apr trace --save-tensor all` on the same prompt, the named capture's values are
//! multiplied by `scale`, and that directory is handed to `apr bisect` in place of the
//! model: a self-test that bisect walks stages in compute order and that its tolerance does
//! not hide the fault.
//!
//! ```yaml
//! check:
//!   kind: bisect
//!   a: {backend: cpu}
//!   b: {backend: cpu, inject_fault: {layer: 3, stage: ffn_gate, scale: 1.36}}
//!   metric: nmse                    # nmse (with tolerance) or bit_exact (apr bisect --exact)
//!   tolerance: ggml_mul_mat_nmse
//!   expect_first_divergence: {layer: 3, stage: ffn_gate}   # absent: no divergence
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::engine::{self, Capture};
use super::spec::{check_run, check_tol, Location, RunSpec};
use super::{
    check_stages, Divergence, DivergenceCell, Kind, Measurement, Outcome, ParamIssue, RunCx,
    Tolerance, ValidateCx,
};

const DEFAULT_PROMPT: &str = "The capital of France is";
/// Metrics `apr bisect` can judge by.
const BISECT_METRICS: &[&str] = &["nmse", "bit_exact"];

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

pub static KIND: Kind = Kind {
    name: "bisect",
    summary: "`apr bisect` names the expected first divergent (layer, stage), or none",
    validate,
    run,
};

fn validate(params: &serde_yaml::Value, cx: &ValidateCx) -> Vec<ParamIssue> {
    super::validate_typed::<Bisect>("bisect", params, |p| {
        let mut i = Vec::new();
        check_run(&p.a, "bisect.a", cx, &mut i);
        check_run(&p.b, "bisect.b", cx, &mut i);
        if !BISECT_METRICS.contains(&p.metric.as_str()) {
            i.push(ParamIssue::params(format!(
                "bisect: metric `{}` not one of {BISECT_METRICS:?} (what apr bisect judges by)",
                p.metric
            )));
        }
        check_tol(&p.tolerance, &mut i);
        if let Some(l) = &p.expect_first_divergence {
            i.extend(check_stages(std::slice::from_ref(&l.stage), false));
        }
        if p.a.inject_fault.is_some() && p.b.inject_fault.is_some() {
            i.push(ParamIssue::params(
                "bisect: inject_fault on one side only (apr bisect runs the other)",
            ));
        }
        if let Some(f) = p.a.inject_fault.as_ref().or(p.b.inject_fault.as_ref()) {
            if !f.scale.is_finite() || f.scale == 1.0 {
                i.push(ParamIssue::params(
                    "bisect: inject_fault.scale must be finite and not 1",
                ));
            }
        }
        i
    })
}

fn run(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: Bisect = super::typed("bisect", params).map_err(|e| e.message)?;
    let tol = p.tolerance.resolve().map_err(|e| e.message)?;
    let prompt = p.prompt.as_deref().unwrap_or(DEFAULT_PROMPT);
    let mut sides = Vec::new();
    let mut described = Vec::new();
    let mut simd = None;
    // backends of the sides `apr bisect` runs itself (the others are capture directories)
    let mut bisect_backends = Vec::new();
    for (tag, spec) in [("a", &p.a), ("b", &p.b)] {
        let r = engine::resolve(spec, cx, tag)?;
        described.push(format!("{tag} = {} ({})", r.model, r.backend));
        if spec.inject_fault.is_some() {
            // the faulty side as a capture directory of the same prompt; the other side
            // stays a model (apr bisect runs at least one side itself)
            let dir = cx.scratch.join(format!("cap-{tag}"));
            let ran = Capture {
                model: &r.path,
                prompt,
                stages: &["all".to_string()],
                layers: &[],
                backend: &r.backend,
                threads: spec.threads,
            }
            .run(&dir)?;
            simd = simd.or(ran);
            if let Some(f) = &spec.inject_fault {
                let file = capture_path(&dir, Some(f.layer), &f.stage);
                scale_aprt(&file, f.scale)?;
                described.push(format!(
                    "fault: {tag} layer {} {} × {}",
                    f.layer, f.stage, f.scale
                ));
            }
            sides.push(dir.into_os_string());
        } else {
            let mut s = r.path.into_os_string();
            s.push(format!(",backend={}", r.backend));
            if let Some(t) = spec.threads {
                s.push(format!(",threads={t}"));
            }
            sides.push(s);
            bisect_backends.push(r.backend);
        }
    }
    let tol_text = tol.to_string();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "bisect".as_ref(),
        "--a".as_ref(),
        &sides[0],
        "--b".as_ref(),
        &sides[1],
        "--json".as_ref(),
    ];
    // required even for capture directories (the tokens are then the captures')
    args.extend(["--prompt".as_ref(), prompt.as_ref() as &std::ffi::OsStr]);
    if p.metric == "bit_exact" {
        args.push("--exact".as_ref());
    } else {
        args.extend([
            "--tolerance".as_ref(),
            tol_text.as_ref() as &std::ffi::OsStr,
        ]);
    }
    let (code, json, stderr) = engine::apr_output(&args, &[])?;
    if !matches!(code, Some(0 | 1)) {
        return Err(format!(
            "`apr bisect` failed (exit {code:?}):\n{}",
            stderr.trim_end()
        ));
    }
    let report: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| format!("apr bisect --json output does not parse: {e}"))?;
    let reported = report["simd"].as_str().map(String::from);
    for b in &bisect_backends {
        simd = simd.or(engine::simd_for(b, reported.clone()));
    }
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let mut cells = Vec::new();
    for row in &rows {
        let m = row.get("metrics").unwrap_or(row);
        let key = if p.metric == "bit_exact" {
            "differing_bits"
        } else {
            "nmse"
        };
        let Some(stage) = row["stage"].as_str() else {
            continue;
        };
        cells.push(DivergenceCell {
            layer: row["layer"].as_u64().map(|l| l as u32),
            stage: stage.to_string(),
            metric: p.metric.clone(),
            value: m[key].as_f64().unwrap_or(f64::INFINITY),
            tolerance: tol,
        });
    }
    let found = report["first_divergence"]
        .as_u64()
        .and_then(|i| rows.get(i as usize))
        .map(|r| {
            (
                r["layer"].as_u64().map(|l| l as u32),
                r["stage"].as_str().unwrap_or_default().to_string(),
            )
        });
    let show = |l: &Option<(Option<u32>, String)>| match l {
        None => "none".to_string(),
        Some((layer, stage)) => format!(
            "{} {stage}",
            layer.map_or("whole-model".into(), |l| format!("layer {l}"))
        ),
    };
    let want = p
        .expect_first_divergence
        .as_ref()
        .map(|l| (l.layer, l.stage.clone()));
    let ok = found == want;
    let ms = vec![
        Measurement::new(
            "stages compared",
            "count",
            cells.len(),
            "> 0",
            !cells.is_empty(),
        ),
        Measurement::new("first divergence", "equals", show(&found), show(&want), ok),
    ];
    let passed = ms.iter().all(|m| m.ok);
    let first = found.as_ref().and_then(|(l, s)| {
        cells
            .iter()
            .find(|c| c.layer == *l && &c.stage == s)
            .cloned()
    });
    let measured = format!(
        "apr bisect over {} ({} {}): first divergence {}, expected {}",
        described.join(", "),
        p.metric,
        tol,
        show(&found),
        show(&want)
    );
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

fn capture_path(dir: &Path, layer: Option<u32>, stage: &str) -> PathBuf {
    match layer {
        Some(l) => dir.join(format!("layer-{l}")).join(format!("{stage}.bin")),
        None => dir.join(format!("{stage}.bin")),
    }
}

/// Multiply every value of an APRT v1 file (docs/aprt.md) by `scale`, in place.
fn scale_aprt(path: &Path, scale: f64) -> Result<(), String> {
    let mut bytes = std::fs::read(path)
        .map_err(|e| format!("fault injection: cannot read {}: {e}", path.display()))?;
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if bytes.get(..4) != Some(b"APRT".as_slice()) || u32_at(4) != Some(0x8000_0001) {
        return Err(format!(
            "fault injection: {} is not an APRT v1 file",
            path.display()
        ));
    }
    let stage_len = u32_at(32).ok_or("fault injection: truncated APRT header")? as usize;
    let data = (36 + stage_len).next_multiple_of(4);
    if data > bytes.len() || !(bytes.len() - data).is_multiple_of(4) {
        return Err(format!(
            "fault injection: {} has a malformed data section",
            path.display()
        ));
    }
    for v in bytes[data..].chunks_exact_mut(4) {
        let x = f32::from_le_bytes([v[0], v[1], v[2], v[3]]);
        v.copy_from_slice(&((f64::from(x) * scale) as f32).to_le_bytes());
    }
    std::fs::write(path, bytes)
        .map_err(|e| format!("fault injection: cannot write {}: {e}", path.display()))
}
