//! `router_invariants`: the qwen3moe router as captured (`moe_router_logits`,
//! `moe_topk_ids`, `moe_topk_weights`, every layer and position) obeys its equations:
//! p = softmax(logits) over all experts; the chosen ids are the top-k of p; the chosen
//! weights are p_i / Σ_{j∈S} p_j and sum to 1.
//!
//! ```yaml
//! check:
//!   kind: router_invariants
//!   prompt: "def fibonacci(n):"
//!   sum_tolerance: router_weight_sum       # |Σ w − 1|
//!   topk_of_softmax: true
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::engine::{self, Capture};
use super::spec::check_tol;
use super::{
    Divergence, DivergenceCell, Kind, Measurement, Outcome, ParamIssue, RunCx, Tolerance,
    ValidateCx,
};

const DEFAULT_PROMPT: &str = "def fibonacci(n):";
/// Chosen weights vs the f64 recomputation from the captured logits: the engine computes
/// in f32, whose rounding of a softmax over a handful of experts stays far below this.
const RECOMPUTE_TOLERANCE: f64 = 1e-5;
/// Relative gap between the k-th and (k+1)-th probability below which the choice is a tie
/// and ids are not compared.
const TIE_GAP: f64 = 1e-6;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterInvariants {
    #[serde(default)]
    pub prompt: Option<String>,
    /// |Σ chosen weights − 1| bound.
    pub sum_tolerance: Tolerance,
    /// Chosen ids are the top-k of the softmax over all experts.
    #[serde(default = "yes")]
    pub topk_of_softmax: bool,
}

fn yes() -> bool {
    true
}

pub static KIND: Kind = Kind {
    name: "router_invariants",
    summary: "MoE router: chosen weights sum to 1 within tolerance and are the softmax top-k",
    validate,
    run,
};

fn validate(params: &serde_yaml::Value, cx: &ValidateCx) -> Vec<ParamIssue> {
    super::validate_typed::<RouterInvariants>("router_invariants", params, |p| {
        let mut i = Vec::new();
        check_tol(&p.sum_tolerance, &mut i);
        if cx.requires_model.is_none() {
            i.push(ParamIssue::params(
                "router_invariants: needs requires.model (a qwen3moe model)",
            ));
        }
        i
    })
}

/// (positions, features, values) of an APRT v1 file.
fn values(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    if bytes.len() < 36 || &bytes[..4] != b"APRT" {
        return Err("not an APRT file".into());
    }
    let u64_at =
        |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes")) as usize;
    let stage_len = u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes")) as usize;
    let data = (36 + stage_len).next_multiple_of(4);
    let (rows, cols) = (u64_at(16), u64_at(24));
    if bytes.len() != data + 4 * rows * cols {
        return Err("size does not match the header".into());
    }
    let v = bytes[data..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((rows, cols, v))
}

fn run(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: RouterInvariants = super::typed("router_invariants", params).map_err(|e| e.message)?;
    let sum_tol = p.sum_tolerance.resolve().map_err(|e| e.message)?;
    let model = engine::resolve(&super::spec::RunSpec::default(), cx, "m")?;
    let dir = cx.scratch.join("cap");
    let stages: Vec<String> = ["moe_router_logits", "moe_topk_ids", "moe_topk_weights"]
        .map(String::from)
        .to_vec();
    let simd = Capture {
        model: &model.path,
        prompt: p.prompt.as_deref().unwrap_or(DEFAULT_PROMPT),
        stages: &stages,
        layers: &[],
        backend: &model.backend,
        threads: None,
    }
    .run(&dir)?;
    let files = engine::read_capture(&dir)?;
    // layer → stage → bytes
    let mut by_layer: BTreeMap<u32, BTreeMap<String, &Vec<u8>>> = BTreeMap::new();
    for (rel, b) in &files {
        if let (Some(l), stage) = engine::location(rel) {
            by_layer.entry(l).or_default().insert(stage, b);
        }
    }
    if by_layer.is_empty() {
        return Ok(Outcome {
            passed: false,
            measured: format!(
                "{} emitted no moe_* captures: not a MoE model, or the stages are not tapped",
                model.model
            ),
            measurements: vec![Measurement::new(
                "layers with router captures",
                "count",
                0,
                "> 0",
                false,
            )],
            ..Outcome::default()
        });
    }
    let (mut worst_sum, mut worst_recompute) = (0f64, 0f64);
    let (mut id_mismatch, mut ties, mut positions) = (0usize, 0usize, 0usize);
    let mut first_bad: Option<String> = None;
    let mut cells = Vec::new();
    for (layer, st) in &by_layer {
        let get = |s: &str| {
            st.get(s)
                .ok_or(format!("layer {layer}: no {s} capture"))
                .and_then(|b| values(b))
        };
        let (rows, n_exp, logits) = get("moe_router_logits")?;
        let (_, k, ids) = get("moe_topk_ids")?;
        let (_, _, w) = get("moe_topk_weights")?;
        let mut layer_worst = 0f64;
        for r in 0..rows {
            positions += 1;
            let lg = &logits[r * n_exp..(r + 1) * n_exp];
            let max = lg
                .iter()
                .fold(f64::NEG_INFINITY, |m, x| m.max(f64::from(*x)));
            let e: Vec<f64> = lg.iter().map(|x| (f64::from(*x) - max).exp()).collect();
            let z: f64 = e.iter().sum();
            let prob: Vec<f64> = e.iter().map(|x| x / z).collect();
            let mut order: Vec<usize> = (0..n_exp).collect();
            order.sort_by(|a, b| prob[*b].total_cmp(&prob[*a]).then(a.cmp(b)));
            let chosen: Vec<usize> = ids[r * k..(r + 1) * k]
                .iter()
                .map(|x| *x as usize)
                .collect();
            let ws = &w[r * k..(r + 1) * k];
            let sum: f64 = ws.iter().map(|x| f64::from(*x)).sum();
            worst_sum = worst_sum.max((sum - 1.0).abs());
            let denom: f64 = chosen.iter().filter_map(|i| prob.get(*i)).sum();
            for (i, wi) in chosen.iter().zip(ws) {
                let want = prob.get(*i).copied().unwrap_or(f64::NAN) / denom;
                let d = (f64::from(*wi) - want).abs();
                layer_worst = layer_worst.max(if d.is_nan() { f64::INFINITY } else { d });
            }
            if p.topk_of_softmax && k < n_exp {
                let gap = (prob[order[k - 1]] - prob[order[k]])
                    / prob[order[k - 1]].max(f64::MIN_POSITIVE);
                if gap < TIE_GAP {
                    ties += 1;
                } else {
                    let mut want: Vec<usize> = order[..k].to_vec();
                    let mut got = chosen.clone();
                    want.sort_unstable();
                    got.sort_unstable();
                    if want != got {
                        id_mismatch += 1;
                        first_bad.get_or_insert(format!(
                            "layer {layer} position {r}: chose {chosen:?}, softmax top-{k} is {:?}",
                            &order[..k]
                        ));
                    }
                }
            }
        }
        worst_recompute = worst_recompute.max(layer_worst);
        cells.push(DivergenceCell {
            layer: Some(*layer),
            stage: "moe_topk_weights".into(),
            metric: "max |w − p/Σp|".into(),
            value: layer_worst,
            tolerance: RECOMPUTE_TOLERANCE,
        });
    }
    let ms = vec![
        Measurement::new(
            "router positions checked",
            "count",
            positions,
            "> 0",
            positions > 0,
        ),
        Measurement::new(
            "max |Σ w − 1|",
            "<=",
            worst_sum,
            sum_tol,
            worst_sum <= sum_tol,
        ),
        Measurement::new(
            "max |w − p_i/Σ_S p|",
            "<=",
            worst_recompute,
            RECOMPUTE_TOLERANCE,
            worst_recompute <= RECOMPUTE_TOLERANCE,
        ),
        Measurement::new(
            "positions whose ids are not the softmax top-k",
            "equals",
            id_mismatch,
            0,
            id_mismatch == 0,
        ),
    ];
    let passed = ms.iter().all(|m| m.ok);
    let mut measured = format!(
        "{} layers × positions = {positions} router decisions of {}: max |Σw−1| {worst_sum:.2e}, max |w − p/Σp| {worst_recompute:.2e}, {id_mismatch} id mismatches, {ties} ties not compared",
        by_layer.len(),
        model.model
    );
    if let Some(b) = first_bad {
        measured.push_str(&format!("; first: {b}"));
    }
    let first = cells.iter().find(|c| c.value > c.tolerance).cloned();
    Ok(Outcome {
        passed,
        measured,
        measurements: ms,
        backend: Some(model.backend),
        simd,
        divergence: Some(Divergence { first, cells }),
        ..Outcome::default()
    })
}
