//! Walk two captures in compute order and name the first (layer, stage) where they part.
//!
//! Tolerances (one table, with sources):
//!
//! | mode | a stage diverges when |
//! |---|---|
//! | default | NMSE > 2e-3 (ggml test-backend-ops' whole-model threshold), or any NaN/Inf mismatch |
//! | `--tolerance X` | NMSE > X, or any NaN/Inf mismatch |
//! | `--exact` | any bit differs (the contract for runs that must be bit-identical: same backend across thread counts, APR vs GGUF of one model) |
//!
//! `moe_topk_ids` holds expert ids, compared as ids. Under `--exact` any difference
//! diverges. Under an NMSE criterion X a differing choice at token t is a *routing tie*
//! when the experts swapped in and out are closer in router logit (on side a) than
//! 6·√X·rms(side a's router logits of that layer): six times the rms difference the
//! tolerance accepts, the decision rule of the parity tests (engine/tests/model_parity.rs,
//! the harness's `logit_parity`). A tie is reported, and from there on only the positions
//! before t are compared (causal attention carries the fork to every later position); a
//! choice that differs by more diverges at `moe_topk_ids`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::trace::capture::{Captured, TensorKey};
use crate::trace::diff::{compare, DiffMetrics};
use crate::trace::Stage;

/// ggml test-backend-ops' whole-model NMSE threshold (tests/test-backend-ops.cpp).
pub const DEFAULT_NMSE: f64 = 2e-3;

/// When a stage counts as diverged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Criterion {
    /// NMSE above this, or a NaN/Inf mismatch.
    Nmse(f64),
    /// Any differing bit.
    Exact,
}

/// How one (layer, stage) compares.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Comparison {
    Compared {
        metrics: DiffMetrics,
        /// Differing expert ids (moe_topk_ids only).
        id_mismatches: Option<usize>,
        diverged: bool,
    },
    /// The element counts differ.
    ShapeMismatch {
        a: [usize; 2],
        b: [usize; 2],
    },
    OnlyA,
    OnlyB,
    /// Not compared: a routing tie before it left no comparable position.
    Forked,
}

impl Comparison {
    pub fn diverged(&self) -> bool {
        match self {
            Comparison::Compared { diverged, .. } => *diverged,
            Comparison::ShapeMismatch { .. } => true,
            Comparison::OnlyA | Comparison::OnlyB | Comparison::Forked => false,
        }
    }
}

/// One row of the divergence table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub layer: Option<usize>,
    pub stage: Stage,
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// A routing tie: from this layer on, positions `token..` are no longer compared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fork {
    pub layer: usize,
    pub token: usize,
    /// |logit difference| of the swapped experts on side a.
    pub gap: f64,
    /// The largest gap the tolerance excuses: 6·√tolerance·rms of side a's router logits
    /// at that layer.
    pub noise: f64,
}

/// The whole walk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bisection {
    pub criterion: Criterion,
    pub rows: Vec<Row>,
    /// Routing ties, in compute order.
    pub forks: Vec<Fork>,
    /// Index into `rows` of the first divergence.
    pub first_divergence: Option<usize>,
}

impl Bisection {
    /// The first divergent (layer, stage).
    pub fn first(&self) -> Option<(Option<usize>, Stage)> {
        self.first_divergence
            .map(|i| (self.rows[i].layer, self.rows[i].stage))
    }
}

/// Compare every (layer, stage) the two captures hold, in compute order.
pub fn bisect(
    a: &BTreeMap<TensorKey, Captured>,
    b: &BTreeMap<TensorKey, Captured>,
    criterion: Criterion,
) -> Bisection {
    let mut keys: Vec<TensorKey> = a.keys().chain(b.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    // Positions still comparable: all of them until a routing tie forks the runs.
    let mut comparable = usize::MAX;
    let mut forks = Vec::new();
    let mut rows = Vec::with_capacity(keys.len());
    for key in keys {
        let comparison = match (a.get(&key), b.get(&key)) {
            (Some(_), Some(_)) if comparable == 0 => Comparison::Forked,
            (Some(x), Some(y)) => {
                let (x, y) = (leading(x, comparable), leading(y, comparable));
                let mut c = compare_one(key.stage, &x, &y, criterion);
                if let (
                    Comparison::Compared {
                        id_mismatches: Some(n),
                        diverged,
                        ..
                    },
                    Some(layer),
                ) = (&mut c, key.layer)
                {
                    if let (true, Criterion::Nmse(tolerance)) = (*n > 0, criterion) {
                        match routing_tie(a, layer, &x, &y, comparable, tolerance) {
                            Some(fork) => {
                                comparable = fork.token;
                                forks.push(fork);
                            }
                            None => *diverged = true,
                        }
                    }
                }
                c
            }
            (Some(_), None) => Comparison::OnlyA,
            (None, _) => Comparison::OnlyB,
        };
        rows.push(Row {
            layer: key.layer,
            stage: key.stage,
            comparison,
        });
    }
    let first_divergence = rows.iter().position(|r| r.comparison.diverged());
    Bisection {
        criterion,
        rows,
        forks,
        first_divergence,
    }
}

/// The first `positions` rows of a capture.
fn leading(c: &Captured, positions: usize) -> Captured {
    let keep = positions.min(c.positions);
    Captured {
        positions: keep,
        features: c.features,
        data: c.data[..keep * c.features].to_vec(),
    }
}

/// Decisions (a top-1 token, an expert choice) are compared only where their margin exceeds
/// this many times the rms difference an NMSE tolerance accepts: below it, that much noise
/// can flip them legitimately. One rule for `apr bisect`, engine/tests/model_parity.rs and
/// the harness's `logit_parity`.
pub const DECISION_NOISE_FACTOR: f64 = 6.0;

/// Whether the first differing expert choice is a tie the tolerance excuses (see the
/// module documentation).
fn routing_tie(
    a: &BTreeMap<TensorKey, Captured>,
    layer: usize,
    ids_a: &Captured,
    ids_b: &Captured,
    comparable: usize,
    tolerance: f64,
) -> Option<Fork> {
    let key = TensorKey::new(Some(layer), Stage::MoeRouterLogits);
    let la = leading(a.get(&key)?, comparable);
    let k = ids_a.features;
    let token = (0..ids_a.positions)
        .find(|&t| ids_a.data[t * k..(t + 1) * k] != ids_b.data[t * k..(t + 1) * k])?;
    let e = la.features;
    let ra = &la.data[token * e..(token + 1) * e];
    let rms = (la.data.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>()
        / la.data.len().max(1) as f64)
        .sqrt();
    let noise = DECISION_NOISE_FACTOR * tolerance.sqrt() * rms;
    let set = |ids: &Captured| -> Vec<usize> {
        ids.data[token * k..(token + 1) * k]
            .iter()
            .map(|&v| v as usize)
            .collect()
    };
    let (sa, sb) = (set(ids_a), set(ids_b));
    let mut gap = 0f64;
    for &x in sa.iter().filter(|x| !sb.contains(x)) {
        for &y in sb.iter().filter(|y| !sa.contains(y)) {
            gap = gap.max(f64::from((ra.get(x)? - ra.get(y)?).abs()));
        }
    }
    // Same set in another order: ranks of near-equal experts swapped.
    if sa.iter().all(|x| sb.contains(x)) {
        for (x, y) in sa.iter().zip(&sb).filter(|(x, y)| x != y) {
            gap = gap.max(f64::from((ra.get(*x)? - ra.get(*y)?).abs()));
        }
    }
    (gap <= noise).then_some(Fork {
        layer,
        token,
        gap,
        noise,
    })
}

fn compare_one(stage: Stage, x: &Captured, y: &Captured, criterion: Criterion) -> Comparison {
    let Ok(metrics) = compare(&x.data, &y.data) else {
        return Comparison::ShapeMismatch {
            a: [x.positions, x.features],
            b: [y.positions, y.features],
        };
    };
    let id_mismatches = (stage == Stage::MoeTopkIds)
        .then(|| x.data.iter().zip(&y.data).filter(|(p, q)| p != q).count());
    // Ids are judged by the caller (routing ties); under an NMSE criterion their NMSE
    // means nothing.
    let diverged = match criterion {
        Criterion::Exact => !metrics.bit_identical(),
        Criterion::Nmse(t) => {
            metrics.non_finite_mismatches() > 0
                || (stage != Stage::MoeTopkIds && (metrics.nmse > t || metrics.nmse.is_nan()))
        }
    };
    Comparison::Compared {
        metrics,
        id_mismatches,
        diverged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(data: &[f32]) -> Captured {
        Captured {
            positions: 1,
            features: data.len(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn names_the_first_divergent_stage_in_compute_order() {
        let mut a = BTreeMap::new();
        let mut b = BTreeMap::new();
        for (l, stage, x, y) in [
            (None, Stage::Embedding, [1.0, 2.0], [1.0, 2.0]),
            (Some(0), Stage::AttnNorm, [1.0, 2.0], [1.0, 2.0]),
            (Some(0), Stage::FfnGate, [1.0, 2.0], [1.0, 3.0]),
            (Some(1), Stage::AttnNorm, [1.0, 2.0], [5.0, 2.0]),
        ] {
            a.insert(TensorKey::new(l, stage), cap(&x));
            b.insert(TensorKey::new(l, stage), cap(&y));
        }
        let r = bisect(&a, &b, Criterion::Nmse(DEFAULT_NMSE));
        assert_eq!(r.first(), Some((Some(0), Stage::FfnGate)));
        let r = bisect(&a, &a, Criterion::Exact);
        assert_eq!(r.first(), None);
    }

    #[test]
    fn a_tiny_difference_passes_the_tolerance_but_not_exactness() {
        let k = TensorKey::new(Some(2), Stage::AttnOut);
        let a = BTreeMap::from([(k, cap(&[1.0, 1.0]))]);
        let b = BTreeMap::from([(k, cap(&[1.0, 1.0 + f32::EPSILON]))]);
        assert_eq!(bisect(&a, &b, Criterion::Nmse(DEFAULT_NMSE)).first(), None);
        assert_eq!(
            bisect(&a, &b, Criterion::Exact).first(),
            Some((Some(2), Stage::AttnOut))
        );
    }
}
