//! `apr bisect --a RUN --b RUN -p TEXT`: run both sides on the same tokens, walk the stages
//! in compute order and name the first (layer, stage) beyond tolerance.

use std::fmt::Write as _;

use serde::Serialize;

use super::bisect::{bisect, Bisection, Comparison, Criterion, Row};
use super::error::ProbeError;
use super::spec::{tokenize, RunSpec};

/// What `apr bisect` was asked to do.
#[derive(Debug, Clone)]
pub struct BisectOptions {
    pub a: RunSpec,
    pub b: RunSpec,
    pub prompt: Option<String>,
    /// Token ids to run instead of a prompt (e.g. the ids a dump was made from).
    pub tokens: Option<Vec<u32>>,
    pub criterion: Criterion,
    /// Rows shown on each side of the first divergence in the table (`None`: all rows).
    pub context: Option<usize>,
}

/// The outcome, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct BisectOutcome {
    pub a: String,
    pub b: String,
    pub tokens: Vec<u32>,
    #[serde(flatten)]
    pub bisection: Bisection,
    /// `"layer 3 ffn_gate"`, or null when no stage diverged.
    pub first_divergence_name: Option<String>,
    /// The tier the cpu backend's kernels dispatch to in this process (APR_SIMD or the best
    /// the CPU has); cpu-ref sides and dumps run no dispatched kernel.
    pub simd: &'static str,
}

/// Run both sides and compare them.
pub fn run(opts: &BisectOptions) -> Result<BisectOutcome, ProbeError> {
    let model_a = opts.a.load()?;
    let model_b = opts.b.load()?;
    let tokens = match (&opts.tokens, &opts.prompt) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => {
            let m = model_a
                .as_ref()
                .or(model_b.as_ref())
                .ok_or(ProbeError::NoModel)?;
            tokenize(m, p)?
        }
        (None, None) => return Err(ProbeError::EmptyPrompt),
    };
    let cap_a = opts.a.capture(model_a.as_ref(), &tokens)?;
    drop(model_a);
    let cap_b = opts.b.capture(model_b.as_ref(), &tokens)?;
    let bisection = bisect(&cap_a, &cap_b, opts.criterion);
    let first_divergence_name = bisection.first().map(|(layer, stage)| match layer {
        Some(l) => format!("layer {l} {stage}"),
        None => stage.to_string(),
    });
    Ok(BisectOutcome {
        a: opts.a.label(),
        b: opts.b.label(),
        tokens,
        bisection,
        first_divergence_name,
        simd: crate::kernels::active_isa().name(),
    })
}

/// The divergence table, with a closing line naming the first divergence.
pub fn render(o: &BisectOutcome, context: Option<usize>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "a: {}\nb: {}\n{} tokens, criterion: {}",
        o.a,
        o.b,
        o.tokens.len(),
        criterion_text(o.bisection.criterion)
    );
    let _ = writeln!(
        s,
        "{:>5}  {:<20} {:>11} {:>11} {:>10} {:>9}  status",
        "layer", "stage", "max|a-b|", "nmse", "cosine", "ulp"
    );
    let rows = &o.bisection.rows;
    let (lo, hi) = match (context, o.bisection.first_divergence) {
        (Some(c), Some(f)) => (f.saturating_sub(c), (f + c + 1).min(rows.len())),
        _ => (0, rows.len()),
    };
    for (i, row) in rows.iter().enumerate().take(hi).skip(lo) {
        let marker = if Some(i) == o.bisection.first_divergence {
            "  <== first divergence"
        } else {
            ""
        };
        let _ = writeln!(s, "{}{marker}", render_row(row));
    }
    for f in &o.bisection.forks {
        let _ = writeln!(
            s,
            "routing tie at layer {} token {}: swapped experts {:.3e} apart in router logit, within the {:.3e} the tolerance excuses; positions >= {} not compared after it",
            f.layer, f.token, f.gap, f.noise, f.token
        );
    }
    let _ = match &o.first_divergence_name {
        Some(name) => writeln!(s, "first divergence: {name}"),
        None => writeln!(
            s,
            "no divergence: all {} compared stages within tolerance",
            rows.iter()
                .filter(|r| matches!(r.comparison, Comparison::Compared { .. }))
                .count()
        ),
    };
    s
}

fn criterion_text(c: Criterion) -> String {
    match c {
        Criterion::Exact => "bit-identical".into(),
        Criterion::Nmse(t) => format!("NMSE <= {t:e}"),
    }
}

fn render_row(r: &Row) -> String {
    let layer = r.layer.map_or("-".to_string(), |l| l.to_string());
    match &r.comparison {
        Comparison::Compared {
            metrics: m,
            id_mismatches,
            diverged,
        } => {
            let status = match (diverged, m.bit_identical(), id_mismatches) {
                (true, _, _) => "DIVERGED".to_string(),
                (false, true, _) => "identical".to_string(),
                (false, false, Some(n)) if *n > 0 => format!("within ({n} ids differ)"),
                (false, false, _) => "within".to_string(),
            };
            format!(
                "{layer:>5}  {:<20} {:>11.3e} {:>11.3e} {:>10.6} {:>9}  {status}",
                r.stage.name(),
                m.max_abs_diff,
                m.nmse,
                m.cosine_sim,
                m.max_ulp
            )
        }
        Comparison::ShapeMismatch { a, b } => format!(
            "{layer:>5}  {:<20} shapes differ: {a:?} vs {b:?}  DIVERGED",
            r.stage.name()
        ),
        Comparison::OnlyA => format!("{layer:>5}  {:<20} only in a", r.stage.name()),
        Comparison::Forked => format!(
            "{layer:>5}  {:<20} not compared (after a routing tie)",
            r.stage.name()
        ),
        Comparison::OnlyB => format!("{layer:>5}  {:<20} only in b", r.stage.name()),
    }
}
