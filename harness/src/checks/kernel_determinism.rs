//! `kernel_determinism`: quantized matrix products are bit-identical across repeated runs,
//! rayon thread counts and ISA tiers, for every matmul weight type. Each output element is
//! one dot product reduced in a fixed order (engine/src/kernels/matmul.rs, dot_scalar.rs),
//! so neither the thread that computes it nor the SIMD tier may change a bit.
//!
//! In-process, as engine/tests/kernels_determinism.rs and kernels_simd.rs do it: seeded
//! synthetic weights (`kernels::synth`), `matmul_with(tier, …)` inside a dedicated rayon
//! pool per thread count. No `apr` command runs a matmul on a chosen tier and pool. Every
//! product of one (type, activation rows) is compared with the first one computed (the
//! slowest tier listed, the first thread count, run 1).
//!
//! ```yaml
//! check:
//!   kind: kernel_determinism
//!   tiers: available        # or `active` (the tier dispatch picks; the default)
//!   threads: [1, 2, 3, 8]
//!   runs: 2
//! ```

use apr_engine::kernels::synth::{activations, weight_bytes, weights, Style};
use apr_engine::kernels::{active_isa, kernel_isa, matmul_with, Isa, QMatrix, WEIGHT_TYPES};
use apr_engine::quant::GgmlType;
use serde::Deserialize;

use super::{Kind, Measurement, Outcome, ParamIssue, RunCx, ValidateCx};

/// Largest rayon pool a contract may ask for.
const MAX_THREADS: usize = 256;

/// Columns must hold whole blocks of every weight type: the K-quants' 256 covers all.
const COL_MULTIPLE: usize = 256;

/// Seeds of the synthetic weights and activations (fixed, so a failure reproduces).
const WEIGHT_SEED: u64 = 42;
const ACTIVATION_SEED: u64 = 7;

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tiers {
    /// The tier dispatch picks (`APR_SIMD`, else the best this CPU has).
    #[default]
    Active,
    /// Every tier this CPU supports; fewer than two is a failure (nothing to compare).
    Available,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blocks {
    /// Random quants, small positive scales (like real weights).
    #[default]
    Random,
    /// Extreme and subnormal scales, all-max / alternating quants, mixed-magnitude activations.
    Adversarial,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelDeterminism {
    /// Weight types (ggml names); empty or absent: every matmul weight type.
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default)]
    pub tiers: Tiers,
    /// Rayon thread counts, one dedicated pool each.
    #[serde(default = "one_thread")]
    pub threads: Vec<usize>,
    /// Products per (tier, thread count).
    #[serde(default = "one")]
    pub runs: usize,
    /// Weight rows (output length per activation row); several row chunks split unevenly
    /// across threads only when this is well above the chunk size.
    #[serde(default = "default_rows")]
    pub rows: usize,
    #[serde(default = "default_cols")]
    pub cols: usize,
    /// Activation row counts: 1 is a mat-vec, more a mat-mat.
    #[serde(default = "default_batch")]
    pub batch: Vec<usize>,
    #[serde(default)]
    pub blocks: Blocks,
}

fn one_thread() -> Vec<usize> {
    vec![1]
}
fn one() -> usize {
    1
}
fn default_rows() -> usize {
    200
}
fn default_cols() -> usize {
    1024
}
fn default_batch() -> Vec<usize> {
    vec![1, 4]
}

pub static KIND: Kind = Kind {
    name: "kernel_determinism",
    summary: "matmul bits identical across runs, thread counts and ISA tiers, per weight type",
    validate,
    run,
};

fn validate(params: &serde_yaml::Value, _cx: &ValidateCx) -> Vec<ParamIssue> {
    super::validate_typed::<KernelDeterminism>("kernel_determinism", params, |p| {
        let mut i = Vec::new();
        if let Err(e) = weight_types(&p.types) {
            i.push(e);
        }
        if p.threads.is_empty() || p.threads.iter().any(|t| !(1..=MAX_THREADS).contains(t)) {
            i.push(ParamIssue::params(format!(
                "kernel_determinism: threads {:?} must be a non-empty list of counts in 1..={MAX_THREADS}",
                p.threads
            )));
        }
        if p.runs == 0 {
            i.push(ParamIssue::params("kernel_determinism: runs must be >= 1"));
        }
        if p.tiers == Tiers::Active && p.threads.len() * p.runs < 2 {
            i.push(ParamIssue::params(
                "kernel_determinism: one tier, one thread count and one run compare nothing; \
                 add runs, thread counts or `tiers: available`",
            ));
        }
        if p.rows == 0 {
            i.push(ParamIssue::params("kernel_determinism: rows must be >= 1"));
        }
        if p.cols == 0 || !p.cols.is_multiple_of(COL_MULTIPLE) {
            i.push(ParamIssue::params(format!(
                "kernel_determinism: cols {} must be a positive multiple of {COL_MULTIPLE} \
                 (whole blocks of every weight type)",
                p.cols
            )));
        }
        if p.batch.is_empty() || p.batch.contains(&0) {
            i.push(ParamIssue::params(format!(
                "kernel_determinism: batch {:?} must be a non-empty list of counts >= 1",
                p.batch
            )));
        }
        i
    })
}

/// The weight types named (all of [`WEIGHT_TYPES`] when none are).
fn weight_types(names: &[String]) -> Result<Vec<GgmlType>, ParamIssue> {
    if names.is_empty() {
        return Ok(WEIGHT_TYPES.to_vec());
    }
    names
        .iter()
        .map(|n| {
            GgmlType::from_name(n)
                .filter(|t| WEIGHT_TYPES.contains(t))
                .ok_or_else(|| {
                    let known: Vec<&str> = WEIGHT_TYPES.iter().map(|t| t.name()).collect();
                    ParamIssue::params(format!(
                        "kernel_determinism: `{n}` is not a matmul weight type ({})",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

/// Where a product first differed from the first product of its (type, batch).
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub ty: GgmlType,
    pub batch: usize,
    pub tier: Isa,
    pub threads: usize,
    pub run: usize,
    pub index: usize,
    pub first_bits: u32,
    pub found_bits: u32,
}

/// The first index whose bit patterns differ; any NaN matches any NaN (NaN payloads are not
/// part of the kernels' contract, as in engine/tests/kernels_simd.rs).
pub fn first_difference(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()))
}

/// What one weight type measured.
struct TypeResult {
    compared: usize,
    differing: usize,
    /// Batches whose first product is mostly zeros (degenerate test data).
    degenerate: Vec<usize>,
}

struct Sweep<'a> {
    p: &'a KernelDeterminism,
    tiers: &'a [Isa],
    pools: &'a [(usize, rayon::ThreadPool)],
    first: Option<Difference>,
}

impl Sweep<'_> {
    fn weight_type(&mut self, ty: GgmlType) -> Result<TypeResult, String> {
        let (rows, cols) = (self.p.rows, self.p.cols);
        let style = match self.p.blocks {
            Blocks::Random => Style::Random,
            Blocks::Adversarial => Style::Adversarial,
        };
        let words = weights(ty, rows, cols, style, WEIGHT_SEED);
        let m = QMatrix::new(ty, rows, cols, weight_bytes(&words, ty, rows, cols))
            .map_err(|e| format!("{ty}: {e}"))?;
        let mut r = TypeResult {
            compared: 0,
            differing: 0,
            degenerate: Vec::new(),
        };
        for &n in &self.p.batch {
            let x = activations(n * cols, style, ACTIVATION_SEED + n as u64);
            let mut first: Option<Vec<f32>> = None;
            for &tier in self.tiers {
                for (threads, pool) in self.pools {
                    for run in 1..=self.p.runs {
                        let mut out = vec![0f32; n * rows];
                        pool.install(|| matmul_with(tier, &m, &x, n, &mut out))
                            .map_err(|e| {
                                format!("{ty} × {n} rows on {tier}, {threads} threads: {e}")
                            })?;
                        let Some(want) = &first else {
                            let nonzero = out.iter().filter(|v| **v != 0.0).count();
                            if nonzero * 2 <= out.len() {
                                r.degenerate.push(n);
                            }
                            first = Some(out);
                            continue;
                        };
                        r.compared += 1;
                        if let Some(index) = first_difference(want, &out) {
                            r.differing += 1;
                            self.first.get_or_insert(Difference {
                                ty,
                                batch: n,
                                tier,
                                threads: *threads,
                                run,
                                index,
                                first_bits: want[index].to_bits(),
                                found_bits: out[index].to_bits(),
                            });
                        }
                    }
                }
            }
        }
        Ok(r)
    }
}

fn run(params: &serde_yaml::Value, _cx: &RunCx) -> Result<Outcome, String> {
    let p: KernelDeterminism = super::typed("kernel_determinism", params).map_err(|e| e.message)?;
    let types = weight_types(&p.types).map_err(|e| e.message)?;
    let tiers = match p.tiers {
        Tiers::Active => vec![active_isa()],
        Tiers::Available => Isa::available(),
    };
    let pools = p
        .threads
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .map(|pool| (t, pool))
                .map_err(|e| format!("cannot build a rayon pool of {t} threads: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut sweep = Sweep {
        p: &p,
        tiers: &tiers,
        pools: &pools,
        first: None,
    };
    let tier_names: Vec<&str> = tiers.iter().map(|t| t.name()).collect();
    let min_tiers = match p.tiers {
        Tiers::Active => 1,
        Tiers::Available => 2,
    };
    let mut ms = vec![
        Measurement::new(
            "ISA tiers compared",
            "count",
            &tier_names,
            format!(">= {min_tiers}"),
            tiers.len() >= min_tiers,
        ),
        Measurement::new(
            "thread counts compared",
            "recorded",
            &p.threads,
            serde_json::Value::Null,
            true,
        ),
    ];
    let (mut compared, mut degenerate) = (0, Vec::new());
    let mut lines = Vec::new();
    for ty in types.iter().copied() {
        let r = sweep.weight_type(ty)?;
        ms.push(Measurement::new(
            format!("{ty}: products not bit-identical to the first"),
            "equals",
            r.differing,
            0,
            r.differing == 0,
        ));
        let kernels: Vec<String> = tiers
            .iter()
            .map(|&t| format!("{t}→{}", kernel_isa(t, ty)))
            .collect();
        lines.push(format!(
            "{ty} (kernels {}): {} of {} products differ",
            kernels.join(", "),
            r.differing,
            r.compared
        ));
        compared += r.compared;
        degenerate.extend(r.degenerate.iter().map(|n| format!("{ty} × {n}")));
    }
    ms.push(Measurement::new(
        "products compared with the first of their type and batch",
        "count",
        compared,
        "> 0",
        compared > 0,
    ));
    ms.push(Measurement::new(
        "first products mostly zero (degenerate data)",
        "equals",
        &degenerate,
        serde_json::json!([]),
        degenerate.is_empty(),
    ));
    let first = sweep.first.take();
    let first_json = first.as_ref().map(|d| {
        serde_json::json!({
            "type": d.ty.name(),
            "batch": d.batch,
            "tier": d.tier.name(),
            "threads": d.threads,
            "run": d.run,
            "index": d.index,
            "first_bits": format!("{:#010x}", d.first_bits),
            "found_bits": format!("{:#010x}", d.found_bits),
        })
    });
    ms.push(Measurement::new(
        "first difference",
        "absent",
        &first_json,
        serde_json::Value::Null,
        first.is_none(),
    ));
    let mut measured = format!(
        "{} weight types, {}×{} weights ({:?} blocks), batch {:?}: tiers {}, threads {:?}, {} run(s) each; {compared} products compared bit for bit",
        types.len(),
        p.rows,
        p.cols,
        p.blocks,
        p.batch,
        tier_names.join(", "),
        p.threads,
        p.runs
    );
    if tiers.len() < min_tiers {
        measured.push_str(&format!(
            "; this CPU offers only the {} tier, so there is no other tier to compare with",
            tier_names.join(", ")
        ));
    }
    if let Some(d) = &first {
        measured.push_str(&format!(
            "; first difference: {} × {} rows on {} with {} threads, run {}, out[{}] = {:#010x}, first product {:#010x}",
            d.ty, d.batch, d.tier, d.threads, d.run, d.index, d.found_bits, d.first_bits
        ));
    }
    for l in lines {
        measured.push_str(&format!("\n{l}"));
    }
    Ok(Outcome {
        passed: ms.iter().all(|m| m.ok),
        measured,
        measurements: ms,
        backend: Some("cpu".into()),
        threads: p.threads.iter().copied().max(),
        simd: Some(tier_names.join(",")),
        divergence: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(yaml: &str) -> serde_yaml::Value {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn issues(yaml: &str) -> Vec<String> {
        let models = crate::models::Registry::default();
        let cx = ValidateCx {
            models: &models,
            requires_model: None,
            repo_root: std::path::Path::new("."),
        };
        validate(&params(yaml), &cx)
            .into_iter()
            .map(|i| i.message)
            .collect()
    }

    #[test]
    fn parameters_that_compare_nothing_or_cannot_run_are_refused() {
        assert!(issues("threads: [1, 2]").is_empty());
        assert!(issues("tiers: available").is_empty());
        let found = issues("{}");
        assert!(found[0].contains("compare nothing"), "{found:?}");
        for (yaml, needle) in [
            ("{threads: [], tiers: available}", "threads []"),
            ("{threads: [0, 2]}", "threads [0, 2]"),
            ("{runs: 0, tiers: available}", "runs must be"),
            ("{cols: 1000, runs: 2}", "cols 1000"),
            ("{rows: 0, runs: 2}", "rows must be"),
            ("{batch: [], runs: 2}", "batch []"),
            (
                "{types: [Q8_K], runs: 2}",
                "`Q8_K` is not a matmul weight type",
            ),
            ("{tiers: fastest, runs: 2}", "unknown variant `fastest`"),
        ] {
            let found = issues(yaml);
            assert!(
                found.iter().any(|m| m.contains(needle)),
                "{yaml}: {found:?}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_is_a_difference_and_nans_match_each_other() {
        let a = [1.0f32, f32::NAN, -0.0];
        assert_eq!(first_difference(&a, &a), None);
        let nan_other_payload = f32::from_bits(f32::NAN.to_bits() | 1);
        assert_eq!(first_difference(&a, &[1.0, nan_other_payload, -0.0]), None);
        assert_eq!(first_difference(&a, &[1.0, f32::NAN, 0.0]), Some(2));
        let flipped = f32::from_bits(1f32.to_bits() ^ 1);
        assert_eq!(first_difference(&a, &[flipped, f32::NAN, -0.0]), Some(0));
    }
}
