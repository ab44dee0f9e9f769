//! `logit_parity`: final logits against committed llama.cpp reference data.
//!
//! The reference is a `logits.json` written by the fixture tools (`tools/`): per prompt its
//! `text`, `shape` [positions, n_vocab] and a raw f32 LE `logits_file` next to it. The
//! engine's logits are the `lm_head` capture of `apr trace --save-tensor lm_head` on the same
//! text. Per prompt: NMSE = Σ(ref−ours)²/Σref² (ggml test-backend-ops), and with
//! `top1_equal` the argmax at every position whose reference margin is above the noise the
//! NMSE bound allows (see `MARGIN_NOISE_FACTOR`).
//!
//! ```yaml
//! check:
//!   kind: logit_parity
//!   reference: tests/fixtures/reference/qwen3moe-Q4_K_M/logits.json
//!   metric: nmse
//!   tolerance: ggml_whole_model_nmse
//!   top1_equal: true
//! ```

use std::path::Path;

use serde::Deserialize;

use super::engine::{self, Capture};
use super::spec::{check_run, check_tol, RunSpec};
use super::{Kind, Measurement, Outcome, ParamIssue, RunCx, Tolerance, ValidateCx};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogitParity {
    /// Committed llama.cpp reference (`logits.json`), relative to the repo root.
    pub reference: String,
    #[serde(default)]
    pub run: Option<RunSpec>,
    /// Only `nmse` (the whole-model comparison of ggml's test-backend-ops).
    pub metric: String,
    pub tolerance: Tolerance,
    /// Also require the argmax (top-1 token) to be equal at every position.
    #[serde(default)]
    pub top1_equal: bool,
}

pub static KIND: Kind = Kind {
    name: "logit_parity",
    summary: "final logits vs committed llama.cpp reference within NMSE; top-1 equal",
    validate,
    run,
};

fn validate(params: &serde_yaml::Value, cx: &ValidateCx) -> Vec<ParamIssue> {
    super::validate_typed::<LogitParity>("logit_parity", params, |p| {
        let mut i = Vec::new();
        if let Some(r) = &p.run {
            check_run(r, "logit_parity.run", cx, &mut i);
        } else if cx.requires_model.is_none() {
            i.push(ParamIssue::params(
                "logit_parity: no run spec and no requires.model",
            ));
        }
        if p.metric != "nmse" {
            i.push(ParamIssue::params(format!(
                "logit_parity: metric `{}` not supported (nmse)",
                p.metric
            )));
        }
        check_tol(&p.tolerance, &mut i);
        if p.reference.is_empty() {
            i.push(ParamIssue::params("logit_parity: empty reference"));
        }
        i
    })
}

#[derive(Debug, Deserialize)]
struct Reference {
    prompts: Vec<RefPrompt>,
}

#[derive(Debug, Deserialize)]
struct RefPrompt {
    text: String,
    logits_file: String,
    shape: [usize; 2],
    /// Reference top-1 minus top-2 per position.
    #[serde(default)]
    top1_margin: Vec<f64>,
    /// Standard deviation of the reference logits per position.
    #[serde(default)]
    logits_std: Vec<f64>,
}

/// Top-1 is compared only where the reference's decision margin exceeds
/// max(MARGIN_FRACTION_OF_STD · std, MARGIN_NOISE_FACTOR · √tolerance · rms(ref)): below it,
/// noise the NMSE bound allows can flip the argmax legitimately. Same rule and constants as
/// the engine's engine/tests/model_parity.rs (issue 4).
const MARGIN_FRACTION_OF_STD: f64 = 1e-3;
const MARGIN_NOISE_FACTOR: f64 = 6.0;

fn read_f32(path: &Path) -> Result<Vec<f32>, String> {
    let b = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if b.len() % 4 != 0 {
        return Err(format!("{} is not a whole number of f32", path.display()));
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Data of an APRT v1 capture (docs/aprt.md): (positions, features, values).
fn read_aprt(path: &Path) -> Result<(usize, usize, Vec<f32>), String> {
    let b = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if b.len() < 36 || &b[..4] != b"APRT" {
        return Err(format!("{} is not an APRT file", path.display()));
    }
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes")) as usize;
    let stage_len = u32::from_le_bytes(b[32..36].try_into().expect("4 bytes")) as usize;
    let data = (36 + stage_len).next_multiple_of(4);
    let (rows, cols) = (u64_at(16), u64_at(24));
    if b.len() != data + 4 * rows * cols {
        return Err(format!(
            "{}: size does not match its header",
            path.display()
        ));
    }
    let v = b[data..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((rows, cols, v))
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

fn run(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: LogitParity = super::typed("logit_parity", params).map_err(|e| e.message)?;
    let tol = p.tolerance.resolve().map_err(|e| e.message)?;
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
    let mut simd = None;
    for (i, rp) in reference.prompts.iter().enumerate() {
        let dir = cx.scratch.join(format!("p{i}"));
        let ran = Capture {
            model: &model.path,
            prompt: &rp.text,
            stages: &["lm_head".to_string()],
            layers: &[],
            backend: &model.backend,
            threads: spec.threads,
        }
        .run(&dir)?;
        simd = simd.or(ran);
        let (rows, cols, ours) = read_aprt(&dir.join("lm_head.bin"))?;
        let want = read_f32(&ref_dir.join(&rp.logits_file))?;
        let label = format!("prompt {i}");
        if [rows, cols] != rp.shape || want.len() != rows * cols {
            ms.push(Measurement::new(
                format!("{label} shape"),
                "equals",
                [rows, cols],
                rp.shape,
                false,
            ));
            lines.push(format!(
                "{label}: shape [{rows}, {cols}] vs reference {:?} (tokenization differs?)",
                rp.shape
            ));
            continue;
        }
        let (mut num, mut den) = (0f64, 0f64);
        for (a, b) in want.iter().zip(&ours) {
            let d = f64::from(*a) - f64::from(*b);
            num += d * d;
            den += f64::from(*a) * f64::from(*a);
        }
        let nmse = if den == 0.0 {
            if num == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            num / den
        };
        ms.push(Measurement::new(
            format!("{label} nmse"),
            "nmse<=",
            nmse,
            tol,
            nmse <= tol,
        ));
        let mut line = format!("{label}: nmse {nmse:.3e}");
        if p.top1_equal {
            let rms_ref = (den / want.len() as f64).sqrt();
            let noise = MARGIN_NOISE_FACTOR * tol.sqrt() * rms_ref;
            let mut near_ties = 0;
            let mut diff = Vec::new();
            for r in 0..rows {
                let margin = rp.top1_margin.get(r).copied().unwrap_or(f64::INFINITY);
                let std = rp.logits_std.get(r).copied().unwrap_or(0.0);
                if margin <= (MARGIN_FRACTION_OF_STD * std).max(noise) {
                    near_ties += 1;
                } else if argmax(&want[r * cols..(r + 1) * cols])
                    != argmax(&ours[r * cols..(r + 1) * cols])
                {
                    diff.push(r);
                }
            }
            ms.push(Measurement::new(
                format!("{label} positions with different top-1"),
                "equals",
                diff.len(),
                0,
                diff.is_empty(),
            ));
            line.push_str(&format!(
                ", top-1 differs at {} of {} decided positions {:?} ({near_ties} near-ties below the noise margin {noise:.2e} not compared)",
                diff.len(),
                rows - near_ties,
                &diff[..diff.len().min(8)]
            ));
        }
        lines.push(line);
    }
    let passed = !ms.is_empty() && ms.iter().all(|m| m.ok);
    let measured = format!(
        "{} ({}) vs llama.cpp reference {} at NMSE ≤ {tol:e}: {}",
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
