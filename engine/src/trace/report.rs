//! Renders [`StatsObserver`] results: a table (one row per (layer, stage), layers in compute
//! order, anomalies flagged) and JSON (schema `apr-trace-stats-v1`).

use std::fmt::Write as _;

use serde::Serialize;

use super::stats::{Anomaly, StageStats, StatsObserver, EXTREME_ABS, NEAR_ZERO_STD_REL};

/// The schema name of [`render_json`]'s output.
pub const STATS_SCHEMA: &str = "apr-trace-stats-v1";

/// The JSON document of a statistics run.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    pub schema: &'static str,
    /// The thresholds the anomaly flags used.
    pub extreme_abs: f64,
    pub near_zero_std_rel: f64,
    pub stages: Vec<StageStats>,
}

/// The statistics as a serialisable report.
pub fn report(obs: &StatsObserver) -> StatsReport {
    StatsReport {
        schema: STATS_SCHEMA,
        extreme_abs: EXTREME_ABS,
        near_zero_std_rel: NEAR_ZERO_STD_REL,
        stages: obs.stages(),
    }
}

/// The statistics as pretty-printed JSON. Non-finite values never occur (NaN/Inf are counted,
/// not averaged); a statistic of no finite value is `null`.
pub fn render_json(obs: &StatsObserver) -> String {
    // Serialising plain structs of numbers and strings cannot fail.
    serde_json::to_string_pretty(&report(obs)).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn num(x: Option<f64>) -> String {
    match x {
        Some(v) => format!("{v:.4e}"),
        None => "-".to_string(),
    }
}

/// The statistics as a text table: one row per (layer, stage) with the all-position
/// statistics, the last position's mean, std and max_abs, the NaN/Inf/zero counts and the
/// anomaly flags; a blank line between layers; a summary of the flagged rows at the end.
pub fn render_table(obs: &StatsObserver) -> String {
    let rows = obs.stages();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<5} {:<18} {:>12} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>6} {:>6} {:>6}  flags",
        "layer", "stage", "shape", "mean", "std", "min", "max", "max_abs", "l2",
        "last.mean", "last.std", "last.maxab", "nan", "inf", "zero"
    );
    let mut prev_layer = None;
    let mut flagged = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if i > 0 && r.layer != prev_layer {
            out.push('\n');
        }
        prev_layer = r.layer;
        let layer = r.layer.map_or("-".to_string(), |l| l.to_string());
        let shape = format!("{}x{}", r.positions, r.features);
        let flags: Vec<&str> = r.anomalies.iter().map(|a| a.name()).collect();
        let a = &r.all;
        let line = format!(
            "{:<5} {:<18} {:>12} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11.4e} {:>11} {:>11} {:>11} {:>6} {:>6} {:>6}  {}",
            layer,
            r.stage.name(),
            shape,
            num(a.mean),
            num(a.std),
            num(a.min),
            num(a.max),
            num(a.max_abs),
            a.l2,
            num(r.last.mean),
            num(r.last.std),
            num(r.last.max_abs),
            a.nan,
            a.inf,
            a.zeros,
            flags.join(",")
        );
        out.push_str(line.trim_end());
        out.push('\n');
        if !r.anomalies.is_empty() {
            flagged.push(r);
        }
    }
    let _ = writeln!(
        out,
        "\n{} stage tensor(s), {} flagged (nan/inf: any NaN or Inf; flat: std <= {:e} * max_abs or all zero; extreme: max_abs > {:e})",
        rows.len(),
        flagged.len(),
        NEAR_ZERO_STD_REL,
        EXTREME_ABS
    );
    for r in flagged {
        let _ = writeln!(out, "  {}", describe(r));
    }
    if !obs.errors().is_empty() {
        let _ = writeln!(out, "{} record call(s) ignored:", obs.errors().len());
        for e in obs.errors() {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}

/// One flagged row in words.
fn describe(r: &StageStats) -> String {
    let at = match r.layer {
        Some(l) => format!("layer {l} {}", r.stage),
        None => r.stage.to_string(),
    };
    let why: Vec<String> = r
        .anomalies
        .iter()
        .map(|a| match a {
            Anomaly::NonFinite => format!("{} NaN, {} Inf", r.all.nan, r.all.inf),
            Anomaly::NearZeroVariance => {
                format!("std {} with max_abs {}", num(r.all.std), num(r.all.max_abs))
            }
            Anomaly::Extreme => format!("max_abs {}", num(r.all.max_abs)),
        })
        .collect();
    format!("{at}: {}", why.join("; "))
}
