//! Per-(layer, stage) statistics (`apr trace --payload`): count, mean, std, min, max,
//! max_abs, l2, NaN/Inf/zero counts, for the last position and for all positions.
//!
//! Accumulation is in f64. NaN and ±Inf are counted and left out of every moment, so one NaN
//! does not hide the rest of the tensor. `std` is the population standard deviation.

use std::collections::BTreeMap;

use serde::Serialize;

use super::capture::{features_of, RecordError, Selection, TensorKey};
use super::{Observer, Stage};

/// Values whose magnitude exceeds this are flagged as extreme. Hidden activations of
/// LLaMA-family models are O(1)–O(10²) with rare "massive activations" in the thousands
/// (Sun et al., *Massive Activations in Large Language Models*, 2024); 1e4 is beyond those
/// and within 6.5× of f16's largest finite value (65504), where a half-precision path overflows.
pub const EXTREME_ABS: f64 = 1.0e4;

/// A tensor whose finite values have `std ≤ NEAR_ZERO_STD_REL · max_abs` is flagged as
/// (near-)constant: 1e-6 is about 8 f32 ulps of relative spread (f32 epsilon is 1.19e-7), i.e.
/// the values are equal up to rounding — a dead or broadcast stage. All-zero tensors are flagged
/// too.
pub const NEAR_ZERO_STD_REL: f64 = 1.0e-6;

/// Statistics of a set of f32 values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Every value, finite or not.
    pub count: u64,
    /// Mean of the finite values; `None` when there are none.
    pub mean: Option<f64>,
    /// Population standard deviation of the finite values.
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_abs: Option<f64>,
    /// √Σx² over the finite values.
    pub l2: f64,
    pub nan: u64,
    pub inf: u64,
    /// Values equal to ±0.
    pub zeros: u64,
}

/// Running moments, mergeable (Chan et al.'s pairwise update), so repeated calls for one
/// (layer, stage) — prefill, then decode steps — accumulate exactly as one pass would up to
/// rounding.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accumulator {
    count: u64,
    finite: u64,
    mean: f64,
    m2: f64,
    sumsq: f64,
    min: f64,
    max: f64,
    max_abs: f64,
    nan: u64,
    inf: u64,
    zeros: u64,
}

impl Accumulator {
    /// The moments of `data` (two passes: mean, then squared deviations).
    pub fn of(data: &[f32]) -> Accumulator {
        let mut a = Accumulator {
            count: data.len() as u64,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ..Accumulator::default()
        };
        let mut sum = 0.0f64;
        for &v in data {
            if v.is_nan() {
                a.nan += 1;
                continue;
            }
            if v.is_infinite() {
                a.inf += 1;
                continue;
            }
            let x = v as f64;
            a.finite += 1;
            sum += x;
            a.sumsq += x * x;
            a.min = a.min.min(x);
            a.max = a.max.max(x);
            a.max_abs = a.max_abs.max(x.abs());
            if v == 0.0 {
                a.zeros += 1;
            }
        }
        if a.finite > 0 {
            a.mean = sum / a.finite as f64;
            a.m2 = data
                .iter()
                .filter(|v| v.is_finite())
                .map(|&v| (v as f64 - a.mean).powi(2))
                .sum();
        }
        a
    }

    /// Add another set of values.
    pub fn merge(&mut self, o: &Accumulator) {
        if o.finite > 0 {
            if self.finite == 0 {
                self.mean = o.mean;
                self.m2 = o.m2;
                self.min = o.min;
                self.max = o.max;
                self.max_abs = o.max_abs;
            } else {
                let n = (self.finite + o.finite) as f64;
                let delta = o.mean - self.mean;
                self.mean += delta * o.finite as f64 / n;
                self.m2 += o.m2 + delta * delta * self.finite as f64 * o.finite as f64 / n;
                self.min = self.min.min(o.min);
                self.max = self.max.max(o.max);
                self.max_abs = self.max_abs.max(o.max_abs);
            }
        }
        self.count += o.count;
        self.finite += o.finite;
        self.sumsq += o.sumsq;
        self.nan += o.nan;
        self.inf += o.inf;
        self.zeros += o.zeros;
    }

    pub fn stats(&self) -> Stats {
        let some = |x: f64| (self.finite > 0).then_some(x);
        Stats {
            count: self.count,
            mean: some(self.mean),
            std: some((self.m2 / self.finite.max(1) as f64).sqrt()),
            min: some(self.min),
            max: some(self.max),
            max_abs: some(self.max_abs),
            l2: self.sumsq.sqrt(),
            nan: self.nan,
            inf: self.inf,
            zeros: self.zeros,
        }
    }
}

/// The statistics of `data`.
pub fn compute(data: &[f32]) -> Stats {
    Accumulator::of(data).stats()
}

/// What a statistics table flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomaly {
    /// A NaN or an Inf.
    NonFinite,
    /// `std ≤ NEAR_ZERO_STD_REL · max_abs` over ≥ 2 finite values, or all zero.
    NearZeroVariance,
    /// `max_abs > EXTREME_ABS`.
    Extreme,
}

impl Anomaly {
    pub fn name(self) -> &'static str {
        match self {
            Anomaly::NonFinite => "nan/inf",
            Anomaly::NearZeroVariance => "flat",
            Anomaly::Extreme => "extreme",
        }
    }
}

/// The anomalies in `s`.
pub fn anomalies(s: &Stats) -> Vec<Anomaly> {
    let mut out = Vec::new();
    if s.nan > 0 || s.inf > 0 {
        out.push(Anomaly::NonFinite);
    }
    let finite = s.count - s.nan - s.inf;
    if let (Some(std), Some(max_abs)) = (s.std, s.max_abs) {
        if finite >= 2 && (max_abs == 0.0 || std <= NEAR_ZERO_STD_REL * max_abs) {
            out.push(Anomaly::NearZeroVariance);
        }
        if max_abs > EXTREME_ABS {
            out.push(Anomaly::Extreme);
        }
    }
    out
}

/// The statistics of one (layer, stage).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageStats {
    /// `None` for whole-model stages.
    pub layer: Option<usize>,
    pub stage: Stage,
    /// Positions seen, over every call.
    pub positions: usize,
    pub features: usize,
    /// Over every position of every call.
    pub all: Stats,
    /// Over the last position of the last call.
    pub last: Stats,
    /// Anomalies of `all` (which contains `last`).
    pub anomalies: Vec<Anomaly>,
}

#[derive(Debug, Clone)]
struct Entry {
    positions: usize,
    features: usize,
    all: Accumulator,
    last: Accumulator,
}

/// Computes statistics as tensors arrive, keeping no tensor.
#[derive(Debug, Clone, Default)]
pub struct StatsObserver {
    selection: Selection,
    entries: BTreeMap<TensorKey, Entry>,
    errors: Vec<RecordError>,
}

impl StatsObserver {
    pub fn new(selection: Selection) -> StatsObserver {
        StatsObserver {
            selection,
            entries: BTreeMap::new(),
            errors: Vec::new(),
        }
    }

    /// Statistics of every stage of every layer.
    pub fn all() -> StatsObserver {
        StatsObserver::new(Selection::all())
    }

    /// Every (layer, stage) seen, in compute order.
    pub fn stages(&self) -> Vec<StageStats> {
        self.entries
            .iter()
            .map(|(key, e)| {
                let all = e.all.stats();
                StageStats {
                    layer: key.layer,
                    stage: key.stage,
                    positions: e.positions,
                    features: e.features,
                    anomalies: anomalies(&all),
                    all,
                    last: e.last.stats(),
                }
            })
            .collect()
    }

    /// Calls whose shape was inconsistent (not counted in the statistics).
    pub fn errors(&self) -> &[RecordError] {
        &self.errors
    }
}

impl Observer for StatsObserver {
    fn wants(&self, layer: Option<usize>, stage: Stage) -> bool {
        self.selection.contains(layer, stage)
    }

    fn record(&mut self, layer: Option<usize>, stage: Stage, positions: usize, data: &[f32]) {
        let key = TensorKey::new(layer, stage);
        let features = match features_of(key, positions, data.len()) {
            Ok(f) => f,
            Err(e) => {
                self.errors.push(e);
                return;
            }
        };
        let last = Accumulator::of(&data[data.len() - features..]);
        let all = Accumulator::of(data);
        match self.entries.get_mut(&key) {
            Some(e) if e.features != features => self.errors.push(RecordError::FeaturesChanged {
                key,
                features,
                earlier: e.features,
            }),
            Some(e) => {
                e.positions += positions;
                e.all.merge(&all);
                e.last = last;
            }
            None => {
                self.entries.insert(
                    key,
                    Entry {
                        positions,
                        features,
                        all,
                        last,
                    },
                );
            }
        }
    }
}
