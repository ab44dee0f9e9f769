//! Per-stage statistics: hand-computed values, NaN/Inf exclusion, merging of repeated calls,
//! anomaly flags, the table and the JSON.

use apr_engine::trace::report::{render_json, render_table, STATS_SCHEMA};
use apr_engine::trace::stats::{anomalies, compute, Accumulator, Anomaly, EXTREME_ABS};
use apr_engine::trace::{tap, Observer, Selection, Stage, StatsObserver};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn hand_computed_statistics() {
    // [1, 2, 3, 4]: mean 2.5, population variance 1.25, l2 √30.
    let s = compute(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(s.count, 4);
    assert_eq!(s.mean, Some(2.5));
    assert!(close(s.std.expect("std"), 1.25f64.sqrt()));
    assert_eq!((s.min, s.max, s.max_abs), (Some(1.0), Some(4.0), Some(4.0)));
    assert!(close(s.l2, 30f64.sqrt()));
    assert_eq!((s.nan, s.inf, s.zeros), (0, 0, 0));
}

#[test]
fn nan_and_inf_are_counted_not_averaged() {
    let s = compute(&[
        f32::NAN,
        -3.0,
        f32::INFINITY,
        0.0,
        -0.0,
        1.0,
        f32::NEG_INFINITY,
    ]);
    assert_eq!((s.count, s.nan, s.inf, s.zeros), (7, 1, 2, 2));
    // Finite: [-3, 0, 0, 1]: mean -0.5, variance (6.25 + 0.25 + 0.25 + 2.25) / 4 = 2.25.
    assert_eq!(s.mean, Some(-0.5));
    assert!(close(s.std.expect("std"), 1.5));
    assert_eq!(
        (s.min, s.max, s.max_abs),
        (Some(-3.0), Some(1.0), Some(3.0))
    );
    assert!(close(s.l2, 10f64.sqrt()));
    // Nothing finite: no moments.
    let s = compute(&[f32::NAN]);
    assert_eq!(
        (s.mean, s.std, s.min, s.max_abs, s.l2),
        (None, None, None, None, 0.0)
    );
    assert_eq!(anomalies(&s), vec![Anomaly::NonFinite]);
}

#[test]
fn merged_calls_equal_one_pass() {
    let data: Vec<f32> = (0..300)
        .map(|i| ((i * 37) % 101) as f32 * 0.25 - 7.0)
        .collect();
    let mut acc = Accumulator::of(&data[..0]);
    for chunk in [&data[..120], &data[120..121], &data[121..], &[f32::NAN][..]] {
        acc.merge(&Accumulator::of(chunk));
    }
    let merged = acc.stats();
    let mut with_nan = data.clone();
    with_nan.push(f32::NAN);
    let one = compute(&with_nan);
    assert_eq!(merged.count, one.count);
    assert_eq!((merged.nan, merged.zeros), (one.nan, one.zeros));
    assert_eq!(
        (merged.min, merged.max, merged.max_abs),
        (one.min, one.max, one.max_abs)
    );
    assert!(close(merged.mean.expect("mean"), one.mean.expect("mean")));
    assert!(close(merged.std.expect("std"), one.std.expect("std")));
    assert!(close(merged.l2, one.l2));
}

#[test]
fn observer_keeps_all_positions_and_the_last_one() {
    let mut obs = StatsObserver::new(Selection::parse("ffn_up,lm_head", None).expect("ok"));
    assert!(!obs.wants(Some(0), Stage::FfnGate));
    // Prefill: 2 positions of 3 features; then a decode step.
    tap(
        &mut obs,
        Some(0),
        Stage::FfnUp,
        2,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    );
    tap(&mut obs, Some(0), Stage::FfnGate, 1, &[9.0; 3]);
    tap(&mut obs, Some(0), Stage::FfnUp, 1, &[-1.0, 0.0, 1.0]);
    tap(&mut obs, None, Stage::LmHead, 1, &[f32::NAN, 1.0]);
    let st = obs.stages();
    assert_eq!(st.len(), 2);
    let up = &st[0];
    assert_eq!(
        (up.layer, up.stage, up.positions, up.features),
        (Some(0), Stage::FfnUp, 3, 3)
    );
    // All 9 values: sum 21 - 0 = 21, mean 21/9.
    assert!(close(up.all.mean.expect("mean"), 21.0 / 9.0));
    assert_eq!(up.all.count, 9);
    assert_eq!((up.all.min, up.all.max), (Some(-1.0), Some(6.0)));
    // Last position: the decode row [-1, 0, 1].
    assert_eq!(up.last.mean, Some(0.0));
    assert!(close(up.last.std.expect("std"), (2.0f64 / 3.0).sqrt()));
    assert_eq!(up.last.zeros, 1);
    assert!(up.anomalies.is_empty());
    assert_eq!(st[1].layer, None);
    assert_eq!(st[1].anomalies, vec![Anomaly::NonFinite]);

    obs.record(Some(0), Stage::FfnUp, 2, &[1.0; 3]);
    assert_eq!(obs.errors().len(), 1);
    assert_eq!(obs.stages()[0].positions, 3, "a bad call is not counted");
}

#[test]
fn anomaly_flags() {
    assert_eq!(anomalies(&compute(&[0.5, -0.5, 0.25])), vec![]);
    assert_eq!(
        anomalies(&compute(&[0.0; 4])),
        vec![Anomaly::NearZeroVariance]
    );
    assert_eq!(
        anomalies(&compute(&[3.0; 4])),
        vec![Anomaly::NearZeroVariance]
    );
    assert_eq!(
        anomalies(&compute(&[3.0])),
        vec![],
        "one value has no spread to judge"
    );
    assert_eq!(
        anomalies(&compute(&[1.0, -(EXTREME_ABS as f32) * 2.0, f32::INFINITY])),
        vec![Anomaly::NonFinite, Anomaly::Extreme]
    );
    assert_eq!(anomalies(&compute(&[1.0, EXTREME_ABS as f32])), vec![]);
}

fn sample_observer() -> StatsObserver {
    let mut obs = StatsObserver::all();
    tap(&mut obs, None, Stage::Embedding, 1, &[0.5, -0.5]);
    tap(&mut obs, Some(0), Stage::AttnNorm, 1, &[1.0, 2.0]);
    tap(&mut obs, Some(0), Stage::FfnOut, 1, &[0.0, 0.0]);
    tap(&mut obs, Some(1), Stage::AttnNorm, 1, &[f32::NAN, 2.0e5]);
    tap(&mut obs, None, Stage::LmHead, 1, &[3.0, 4.0]);
    obs
}

#[test]
fn table_lists_rows_in_compute_order_and_flags_anomalies() {
    let t = render_table(&sample_observer());
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("layer stage"), "{t}");
    let row = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no row {prefix:?} in\n{t}"))
            .to_string()
    };
    assert!(row("-     embedding").contains("1x2"), "{t}");
    assert!(
        row("0     attn_norm").contains("1.5000e0"),
        "mean of [1, 2]: {t}"
    );
    assert!(row("0     ffn_out").ends_with("flat"), "{t}");
    assert!(row("1     attn_norm").ends_with("nan/inf,extreme"), "{t}");
    let pos = |p: &str| t.find(p).unwrap_or(usize::MAX);
    assert!(pos("-     embedding") < pos("0     attn_norm"));
    assert!(pos("1     attn_norm") < pos("-     lm_head"));
    assert!(t.contains("5 stage tensor(s), 2 flagged"), "{t}");
    assert!(
        t.contains("  layer 1 attn_norm: 1 NaN, 0 Inf; max_abs 2.0000e5"),
        "{t}"
    );
    assert!(
        t.contains("  layer 0 ffn_out: std 0.0000e0 with max_abs 0.0000e0"),
        "{t}"
    );
}

#[test]
fn json_has_the_schema_and_every_statistic() {
    let v: serde_json::Value =
        serde_json::from_str(&render_json(&sample_observer())).expect("valid JSON");
    assert_eq!(v["schema"], STATS_SCHEMA);
    let stages = v["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 5);
    assert_eq!(stages[0]["stage"], "embedding");
    assert_eq!(stages[0]["layer"], serde_json::Value::Null);
    let a = &stages[1];
    assert_eq!(
        (a["layer"].as_u64(), a["stage"].as_str()),
        (Some(0), Some("attn_norm"))
    );
    for key in [
        "count", "mean", "std", "min", "max", "max_abs", "l2", "nan", "inf", "zeros",
    ] {
        assert!(!a["all"][key].is_null(), "all.{key}");
        assert!(!a["last"][key].is_null(), "last.{key}");
    }
    assert_eq!(a["all"]["mean"], 1.5);
    assert_eq!(
        stages[3]["anomalies"],
        serde_json::json!(["non_finite", "extreme"])
    );
}
