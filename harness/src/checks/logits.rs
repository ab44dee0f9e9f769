//! `logit_parity`: final logits against committed llama.cpp reference data.
//!
//! The reference is a `logits.json` written by the fixture tools (`tools/`): per prompt its
//! `text`, `shape` [positions, n_vocab] and a raw f32 LE `logits_file` next to it. The
//! engine's logits are the `lm_head` capture of `apr trace --save-tensor lm_head` on the same
//! text. Per prompt: NMSE = Σ(ref−ours)²/Σref² (ggml test-backend-ops), and with
//! `top1_equal` the argmax at every position whose reference margin is above the noise the
//! NMSE bound allows (`DECISION_NOISE_FACTOR`, the engine's one rule for decisions).
//!
//! With `routing` (mixture-of-experts models), llama.cpp's router logits per prompt and layer
//! (`tools/llama_dumps/dump.py --stages moe_router_logits`) are compared with the engine's
//! expert choices (`moe_topk_ids`): a choice that differs where llama.cpp's margin between the
//! k-th and (k+1)-th router logit exceeds the same noise rule fails; one that differs below it
//! is a routing tie, and from its token on every position carries the fork (causal
//! attention), so NMSE and top-1 cover the positions before it and the rest are reported.
//!
//! ```yaml
//! check:
//!   kind: logit_parity
//!   reference: tests/fixtures/reference/qwen3moe-Q4_K_M/logits.json
//!   routing: tests/fixtures/reference/qwen3moe-Q4_K_M/routing-{prompt}
//!   metric: nmse
//!   tolerance: ggml_whole_model_nmse
//!   top1_equal: true
//! ```

use std::path::Path;

use serde::Deserialize;

use apr_engine::probe::bisect::DECISION_NOISE_FACTOR;

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
    /// Directory of llama.cpp's router logits for each prompt (`{prompt}` stands for its
    /// index), relative to the repo root: `layer-<N>/moe_router_logits.bin` (APRT).
    #[serde(default)]
    pub routing: Option<String>,
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
        if p.routing.as_ref().is_some_and(|r| !r.contains("{prompt}")) {
            i.push(ParamIssue::params(
                "logit_parity: routing must name the prompt directory with {prompt}",
            ));
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
/// max(MARGIN_FRACTION_OF_STD · std, DECISION_NOISE_FACTOR · √tolerance · rms(ref)): below
/// it, noise the NMSE bound allows can flip the argmax legitimately. Same rule as the
/// engine's engine/tests/model_parity.rs (issue 4) and `apr bisect`'s routing ties.
const MARGIN_FRACTION_OF_STD: f64 = 1e-3;

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

/// How the engine's expert choices compare with llama.cpp's router logits.
struct Routing {
    /// Layers compared.
    layers: usize,
    /// (layer, token) where the choice differs although llama.cpp's margin is clear.
    clear: Vec<(usize, usize)>,
    /// The first (layer, token) where the choice differs within the noise margin.
    tie: Option<(usize, usize)>,
}

/// Compares, layer by layer, the top-k of llama.cpp's router logits (`theirs/layer-<N>/
/// moe_router_logits.bin`) with the engine's `ours/layer-<N>/moe_topk_ids.bin`, over the
/// tokens before the first tie found so far (a tie at token t forks every later token).
fn compare_routing(theirs: &Path, ours: &Path, rows: usize, tol: f64) -> Result<Routing, String> {
    let mut r = Routing {
        layers: 0,
        clear: Vec::new(),
        tie: None,
    };
    loop {
        let path = theirs.join(format!("layer-{}/moe_router_logits.bin", r.layers));
        if !path.exists() {
            break;
        }
        let (t_rows, experts, logits) = read_aprt(&path)?;
        let ids_path = ours.join(format!("layer-{}/moe_topk_ids.bin", r.layers));
        let (o_rows, k, ids) = read_aprt(&ids_path)?;
        if t_rows != rows || o_rows != rows || k == 0 || k >= experts {
            return Err(format!(
                "{} ({t_rows} × {experts}) and {} ({o_rows} × {k}) do not fit {rows} positions",
                path.display(),
                ids_path.display()
            ));
        }
        let rms = (logits.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / logits.len() as f64)
            .sqrt();
        let noise = DECISION_NOISE_FACTOR * tol.sqrt() * rms;
        let end = r.tie.map_or(rows, |(_, t)| t);
        for t in 0..end {
            let row = &logits[t * experts..(t + 1) * experts];
            let mut order: Vec<usize> = (0..experts).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let margin = f64::from(row[order[k - 1]] - row[order[k]]);
            let mut want = order[..k].to_vec();
            want.sort_unstable();
            let mut got: Vec<usize> = ids[t * k..(t + 1) * k]
                .iter()
                .map(|&v| v as usize)
                .collect();
            got.sort_unstable();
            if got == want {
                continue;
            }
            if margin > noise {
                r.clear.push((r.layers, t));
            } else if r.tie.is_none_or(|(_, tt)| t < tt) {
                r.tie = Some((r.layers, t));
                break;
            }
        }
        r.layers += 1;
    }
    if r.layers == 0 {
        return Err(format!(
            "no router logits under {} (layer-0/moe_router_logits.bin)",
            theirs.display()
        ));
    }
    Ok(r)
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
        let mut stages = vec!["lm_head".to_string()];
        if p.routing.is_some() {
            stages.push("moe_topk_ids".to_string());
        }
        let ran = Capture {
            model: &model.path,
            prompt: &rp.text,
            stages: &stages,
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
        let mut line = String::new();
        let fork = match &p.routing {
            None => rows,
            Some(r) => {
                let theirs = cx.repo_root.join(r.replace("{prompt}", &i.to_string()));
                let routing = compare_routing(&theirs, &dir, rows, tol)?;
                ms.push(Measurement::new(
                    format!("{label} expert choices differing at a clear margin"),
                    "equals",
                    routing.clear.len(),
                    0,
                    routing.clear.is_empty(),
                ));
                line.push_str(&format!(
                    " (expert choices at {} layers: {} differ at a clear margin {:?}",
                    routing.layers,
                    routing.clear.len(),
                    &routing.clear[..routing.clear.len().min(4)]
                ));
                if let Some((l, t)) = routing.tie {
                    line.push_str(&format!(
                        "; routing tie at layer {l}, token {t}: positions {t}.. not compared"
                    ));
                }
                line.push(')');
                routing.tie.map_or(rows, |(_, t)| t)
            }
        };
        let (want, ours) = (&want[..fork * cols], &ours[..fork * cols]);
        let (mut num, mut den) = (0f64, 0f64);
        for (a, b) in want.iter().zip(ours) {
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
        let mut line = format!("{label}{line}: nmse {nmse:.3e}");
        if p.top1_equal {
            let rms_ref = (den / want.len() as f64).sqrt();
            let noise = DECISION_NOISE_FACTOR * tol.sqrt() * rms_ref;
            let mut near_ties = 0;
            let mut diff = Vec::new();
            for r in 0..fork {
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
                fork - near_ties,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One APRT v1 file (docs/aprt.md) of `rows × cols` values.
    fn write_aprt(path: &Path, stage: &str, rows: usize, cols: usize, v: &[f32]) {
        let mut b = b"APRT".to_vec();
        for w in [0x8000_0001u32, 0, 0] {
            b.extend(w.to_le_bytes());
        }
        b.extend((rows as u64).to_le_bytes());
        b.extend((cols as u64).to_le_bytes());
        b.extend((stage.len() as u32).to_le_bytes());
        b.extend(stage.as_bytes());
        b.resize(b.len().next_multiple_of(4), 0);
        b.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b).unwrap();
    }

    /// Two layers, three tokens, four experts, top-2. llama.cpp's logits pick {0, 1} with a
    /// clear margin everywhere except layer 1, token 1, where experts 1 and 2 tie closely.
    fn routing_case(name: &str, ours: [[f32; 2]; 3], ours_l1: [[f32; 2]; 3]) -> Routing {
        let root = std::env::temp_dir().join(format!("apr-routing-{}-{name}", std::process::id()));
        let clear = [4.0, 3.0, -3.0, -4.0];
        let tied = [4.0, 1.0, 0.999, -4.0];
        let l0: Vec<f32> = [clear, clear, clear].concat();
        let l1: Vec<f32> = [clear, tied, clear].concat();
        for (l, logits, ids) in [(0, &l0, ours), (1, &l1, ours_l1)] {
            write_aprt(
                &root.join(format!("theirs/layer-{l}/moe_router_logits.bin")),
                "moe_router_logits",
                3,
                4,
                logits,
            );
            let ids: Vec<f32> = ids.concat();
            write_aprt(
                &root.join(format!("ours/layer-{l}/moe_topk_ids.bin")),
                "moe_topk_ids",
                3,
                2,
                &ids,
            );
        }
        let r = compare_routing(&root.join("theirs"), &root.join("ours"), 3, 2e-3).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        r
    }

    #[test]
    fn expert_choices_agree_in_any_order() {
        let same = [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]];
        let r = routing_case("same", same, same);
        assert_eq!((r.layers, r.clear.len(), r.tie), (2, 0, None));
    }

    #[test]
    fn a_choice_differing_at_a_clear_margin_is_reported() {
        let same = [[0.0, 1.0]; 3];
        let wrong = [[0.0, 1.0], [0.0, 1.0], [0.0, 3.0]];
        let r = routing_case("clear", wrong, same);
        assert_eq!(r.clear, vec![(0, 2)]);
        assert_eq!(r.tie, None);
    }

    #[test]
    fn a_choice_differing_at_a_near_tie_forks_the_later_tokens() {
        let same = [[0.0, 1.0]; 3];
        // Layer 1, token 1 takes expert 2 (0.001 below expert 1), token 2 something else
        // entirely: after the fork it is not judged.
        let l1 = [[0.0, 1.0], [0.0, 2.0], [2.0, 3.0]];
        let r = routing_case("tie", same, l1);
        assert_eq!(r.tie, Some((1, 1)));
        assert!(r.clear.is_empty());
    }
}
