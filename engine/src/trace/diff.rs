//! Value comparison of two tensors (`apr diff --values`, `apr bisect`); `docs/diff.md` defines
//! every metric.
//!
//! Pairs where both values are finite enter the moments (max |a−b|, RMS, NMSE, cosine, ULP).
//! Non-finite pairs are classified instead: NaN on both sides (any payloads) and ±Inf with the
//! same sign on both sides agree; a NaN on one side only, an Inf against a finite value, or Infs
//! of opposite sign are mismatches (ggml test-backend-ops treats an Inf the same way).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::Serialize;

/// The two tensors do not have the same number of values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("element counts differ: {a} vs {b}")]
pub struct LengthMismatch {
    pub a: usize,
    pub b: usize,
}

/// How two equally long tensors differ. Field names follow the anchor tool's
/// `apr-stage-diff-v1` JSON where it has one (`max_abs_diff`, `rms_diff`, `cosine_sim`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffMetrics {
    /// Values per side.
    pub count: usize,
    /// Pairs where both values are finite (the moments are over these).
    pub compared: usize,
    /// Indices whose bit patterns differ (0: bit-identical, NaN payloads included).
    pub differing_bits: usize,
    /// max |a−b| over finite pairs (0 when there are none).
    pub max_abs_diff: f64,
    /// The first index where `max_abs_diff` occurs (`None` without finite pairs).
    pub max_abs_diff_index: Option<usize>,
    /// √(Σ(a−b)² / compared).
    pub rms_diff: f64,
    /// Σ(a−b)² / Σa² (ggml test-backend-ops). 0 when both sums are 0; +∞ (JSON `null`)
    /// when only Σa² is 0.
    pub nmse: f64,
    /// Σab / (√Σa² · √Σb²); 1 when both sides are all zero, 0 when exactly one is.
    pub cosine_sim: f64,
    /// The largest distance in units in the last place (see [`ulp_distance`]).
    pub max_ulp: u64,
    pub max_ulp_index: Option<usize>,
    /// NaN on exactly one side.
    pub nan_mismatches: usize,
    /// Inf against a finite value, or Infs of opposite sign.
    pub inf_mismatches: usize,
    /// The first index of a NaN or Inf mismatch.
    pub first_mismatch_index: Option<usize>,
    pub a_nan: usize,
    pub a_inf: usize,
    pub b_nan: usize,
    pub b_inf: usize,
}

impl DiffMetrics {
    /// Whether the two sides are bit-identical (NaN payloads included).
    pub fn bit_identical(&self) -> bool {
        self.differing_bits == 0
    }

    /// NaN and Inf mismatches together.
    pub fn non_finite_mismatches(&self) -> usize {
        self.nan_mismatches + self.inf_mismatches
    }
}

/// A tensor's position on the ordered line of f32 values: +0 and −0 are both 0, the smallest
/// positive subnormal is 1, the smallest negative one −1, and each step is one representable
/// value.
fn ordinal(x: f32) -> i64 {
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        -((b & 0x7fff_ffff) as i64)
    } else {
        b as i64
    }
}

/// The number of representable f32 steps between two finite values, across zero for mixed
/// signs (+0 and −0 count as one point): `ulp_distance(1.0, 1.0 + ε) = 1`,
/// `ulp_distance(-tiny, tiny) = 2` for the smallest subnormal `tiny`, `ulp_distance(0.0, -0.0) = 0`.
/// Only meaningful for finite values; NaN and Inf pairs are classified separately.
pub fn ulp_distance(a: f32, b: f32) -> u64 {
    ordinal(a).abs_diff(ordinal(b))
}

/// Compare two tensors value by value.
pub fn compare(a: &[f32], b: &[f32]) -> Result<DiffMetrics, LengthMismatch> {
    if a.len() != b.len() {
        return Err(LengthMismatch {
            a: a.len(),
            b: b.len(),
        });
    }
    let mut m = DiffMetrics {
        count: a.len(),
        compared: 0,
        differing_bits: 0,
        max_abs_diff: 0.0,
        max_abs_diff_index: None,
        rms_diff: 0.0,
        nmse: 0.0,
        cosine_sim: 1.0,
        max_ulp: 0,
        max_ulp_index: None,
        nan_mismatches: 0,
        inf_mismatches: 0,
        first_mismatch_index: None,
        a_nan: 0,
        a_inf: 0,
        b_nan: 0,
        b_inf: 0,
    };
    let (mut sum_d2, mut sum_a2, mut sum_b2, mut sum_ab) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        if x.to_bits() != y.to_bits() {
            m.differing_bits += 1;
        }
        m.a_nan += x.is_nan() as usize;
        m.b_nan += y.is_nan() as usize;
        m.a_inf += x.is_infinite() as usize;
        m.b_inf += y.is_infinite() as usize;
        if !(x.is_finite() && y.is_finite()) {
            let mismatch = if x.is_nan() || y.is_nan() {
                let one_sided = x.is_nan() != y.is_nan();
                m.nan_mismatches += one_sided as usize;
                one_sided
            } else {
                // At least one Inf, no NaN: they agree only as Infs of the same sign.
                let agree = x == y;
                m.inf_mismatches += !agree as usize;
                !agree
            };
            if mismatch && m.first_mismatch_index.is_none() {
                m.first_mismatch_index = Some(i);
            }
            continue;
        }
        m.compared += 1;
        let (xf, yf) = (x as f64, y as f64);
        let d = xf - yf;
        if d.abs() > m.max_abs_diff || m.max_abs_diff_index.is_none() {
            m.max_abs_diff = d.abs();
            m.max_abs_diff_index = Some(i);
        }
        let ulp = ulp_distance(x, y);
        if ulp > m.max_ulp || m.max_ulp_index.is_none() {
            m.max_ulp = ulp;
            m.max_ulp_index = Some(i);
        }
        sum_d2 += d * d;
        sum_a2 += xf * xf;
        sum_b2 += yf * yf;
        sum_ab += xf * yf;
    }
    if m.compared > 0 {
        m.rms_diff = (sum_d2 / m.compared as f64).sqrt();
    }
    m.nmse = match (sum_d2 == 0.0, sum_a2 == 0.0) {
        (true, _) => 0.0,
        (false, true) => f64::INFINITY,
        (false, false) => sum_d2 / sum_a2,
    };
    m.cosine_sim = match (sum_a2 == 0.0, sum_b2 == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        (false, false) => sum_ab / (sum_a2.sqrt() * sum_b2.sqrt()),
    };
    Ok(m)
}

/// One of the largest differences.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopDiff {
    pub index: usize,
    pub a: f32,
    pub b: f32,
    pub abs_diff: f64,
}

/// Heap entry: the smallest |diff| (then the largest index) is on top, so it is evicted first.
struct Entry(f64, usize);

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        // "Greater" = evicted sooner: smaller diff, then larger index.
        o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
    }
}

/// The `n` largest non-zero |a−b| over pairs where both values are finite, largest first,
/// ties by lower index. Lengths must match (the shorter one bounds the scan otherwise).
pub fn top_differences(a: &[f32], b: &[f32], n: usize) -> Vec<TopDiff> {
    if n == 0 {
        return Vec::new();
    }
    let mut heap = BinaryHeap::with_capacity(n + 1);
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        if !(x.is_finite() && y.is_finite()) {
            continue;
        }
        let d = (x as f64 - y as f64).abs();
        if d == 0.0 {
            continue;
        }
        heap.push(Entry(d, i));
        if heap.len() > n {
            heap.pop();
        }
    }
    let mut v: Vec<Entry> = heap.into_vec();
    v.sort_by(|p, q| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1)));
    v.into_iter()
        .map(|Entry(d, i)| TopDiff {
            index: i,
            a: a[i],
            b: b[i],
            abs_diff: d,
        })
        .collect()
}

/// What "within tolerance" means. NaN/Inf mismatches are never within tolerance; without
/// limits, that is the only check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tolerance {
    /// Largest acceptable NMSE (e.g. 5e-4 for a matmul, ggml test-backend-ops).
    pub nmse: Option<f64>,
    /// Largest acceptable max |a−b|.
    pub max_abs: Option<f64>,
}

impl Tolerance {
    /// Whether `m` is within this tolerance.
    pub fn holds(&self, m: &DiffMetrics) -> bool {
        m.non_finite_mismatches() == 0
            && self.nmse.is_none_or(|t| m.nmse <= t)
            && self.max_abs.is_none_or(|t| m.max_abs_diff <= t)
    }
}
