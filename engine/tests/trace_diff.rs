//! `trace::diff`: every metric on examples small enough to check by hand.

use apr_engine::trace::diff::{compare, top_differences, ulp_distance, LengthMismatch, Tolerance};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-15 * b.abs().max(1.0)
}

#[test]
fn one_changed_value() {
    // a = [1, 2, 3], b = [1, 2, 4]: d = [0, 0, -1].
    let m = compare(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]).expect("same length");
    assert_eq!(m.count, 3);
    assert_eq!(m.compared, 3);
    assert_eq!(m.differing_bits, 1);
    assert_eq!(m.max_abs_diff, 1.0);
    assert_eq!(m.max_abs_diff_index, Some(2));
    // RMS = √(1/3); NMSE = 1 / (1 + 4 + 9) = 1/14.
    assert!(close(m.rms_diff, (1.0f64 / 3.0).sqrt()), "{}", m.rms_diff);
    assert!(close(m.nmse, 1.0 / 14.0), "{}", m.nmse);
    // cos = (1 + 4 + 12) / (√14 · √21) = 17 / √294.
    assert!(
        close(m.cosine_sim, 17.0 / 294f64.sqrt()),
        "{}",
        m.cosine_sim
    );
    // 3.0 = 0x40400000, 4.0 = 0x40800000: 0x400000 steps apart.
    assert_eq!(m.max_ulp, 0x40_0000);
    assert_eq!(m.max_ulp_index, Some(2));
    assert_eq!(m.non_finite_mismatches(), 0);
    assert!(!m.bit_identical());
}

#[test]
fn identical_tensors_including_nan_payloads() {
    let a = [f32::from_bits(0x7fc0_0001), -0.0, 1.5];
    let m = compare(&a, &a).expect("same length");
    assert!(m.bit_identical());
    assert_eq!(
        (m.max_abs_diff, m.nmse, m.cosine_sim, m.max_ulp),
        (0.0, 0.0, 1.0, 0)
    );
    assert_eq!(m.compared, 2);
    assert_eq!((m.a_nan, m.b_nan, m.nan_mismatches), (1, 1, 0));
    // Another NaN payload is a bit difference but not a NaN mismatch.
    let b = [f32::from_bits(0x7fc0_0002), -0.0, 1.5];
    let m = compare(&a, &b).expect("same length");
    assert_eq!((m.differing_bits, m.nan_mismatches), (1, 0));
    // +0 vs -0: one bit differs, no distance.
    let m = compare(&[0.0], &[-0.0]).expect("same length");
    assert_eq!((m.differing_bits, m.max_ulp, m.max_abs_diff), (1, 0, 0.0));
}

#[test]
fn nan_and_inf_classification() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let a = [nan, nan, inf, inf, -inf, 1.0, 2.0];
    let b = [f32::from_bits(0xffa0_0000), 1.0, inf, -inf, 5.0, nan, 2.5];
    let m = compare(&a, &b).expect("same length");
    // index 0: NaN both sides (agree); 1: NaN vs 1 (mismatch); 2: +Inf both (agree);
    // 3: +Inf vs -Inf (mismatch); 4: -Inf vs 5 (mismatch); 5: 1 vs NaN (mismatch);
    // 6: finite, |d| = 0.5.
    assert_eq!(m.nan_mismatches, 2);
    assert_eq!(m.inf_mismatches, 2);
    assert_eq!(m.first_mismatch_index, Some(1));
    assert_eq!(m.compared, 1);
    assert_eq!((m.a_nan, m.a_inf, m.b_nan, m.b_inf), (2, 3, 2, 2));
    assert_eq!(m.max_abs_diff, 0.5);
    assert_eq!(m.max_abs_diff_index, Some(6));
    assert!(close(m.nmse, 0.25 / 4.0));
    assert!(
        !Tolerance::default().holds(&m),
        "a NaN mismatch is never within tolerance"
    );
}

#[test]
fn degenerate_sums() {
    // Both all-zero: NMSE 0, cosine 1.
    let m = compare(&[0.0, 0.0], &[0.0, 0.0]).expect("same length");
    assert_eq!((m.nmse, m.cosine_sim, m.rms_diff), (0.0, 1.0, 0.0));
    // a all-zero, b not: NMSE +∞ (JSON null), cosine 0.
    let m = compare(&[0.0, 0.0], &[0.0, 3.0]).expect("same length");
    assert_eq!(m.nmse, f64::INFINITY);
    assert_eq!(
        serde_json::to_value(&m).expect("json")["nmse"],
        serde_json::Value::Null
    );
    assert_eq!(m.cosine_sim, 0.0);
    assert!(close(m.rms_diff, (4.5f64).sqrt()));
    assert!(!Tolerance {
        nmse: Some(1e30),
        max_abs: None
    }
    .holds(&m));
    // Opposite vectors: cosine -1, NMSE 4.
    let m = compare(&[1.0, -2.0], &[-1.0, 2.0]).expect("same length");
    assert!(close(m.cosine_sim, -1.0));
    assert!(close(m.nmse, 4.0));
    // Empty tensors compare as equal.
    let m = compare(&[], &[]).expect("same length");
    assert_eq!((m.count, m.max_abs_diff_index, m.nmse), (0, None, 0.0));
}

#[test]
fn length_mismatch_is_an_error() {
    assert_eq!(
        compare(&[1.0, 2.0], &[1.0]),
        Err(LengthMismatch { a: 2, b: 1 })
    );
    assert_eq!(
        LengthMismatch { a: 2, b: 1 }.to_string(),
        "element counts differ: 2 vs 1"
    );
}

#[test]
fn ulp_distance_across_zero_and_magnitudes() {
    let tiny = f32::from_bits(1);
    assert_eq!(ulp_distance(1.0, f32::from_bits(0x3f80_0001)), 1);
    assert_eq!(ulp_distance(tiny, -tiny), 2);
    assert_eq!(ulp_distance(0.0, -0.0), 0);
    assert_eq!(ulp_distance(0.0, tiny), 1);
    assert_eq!(ulp_distance(-0.0, tiny), 1);
    assert_eq!(ulp_distance(-1.0, 1.0), 2 * 0x3f80_0000);
    assert_eq!(ulp_distance(f32::MAX, -f32::MAX), 2 * 0x7f7f_ffff);
    assert_eq!(ulp_distance(2.0, 1.0), 0x80_0000);
}

#[test]
fn top_differences_are_largest_first_ties_by_index() {
    let a = [0.0, 1.0, 2.0, 3.0, 4.0, f32::NAN, 6.0];
    let b = [0.0, 1.5, 1.0, 3.5, 3.0, 100.0, 6.0];
    // |d| = [0, 0.5, 1, 0.5, 1, (NaN pair skipped), 0]
    let t = top_differences(&a, &b, 3);
    let got: Vec<(usize, f64)> = t.iter().map(|d| (d.index, d.abs_diff)).collect();
    assert_eq!(got, vec![(2, 1.0), (4, 1.0), (1, 0.5)]);
    assert_eq!((t[0].a, t[0].b), (2.0, 1.0));
    // Zero differences are not listed; asking for more gives what there is.
    assert_eq!(top_differences(&a, &b, 10).len(), 4);
    assert!(top_differences(&a, &b, 0).is_empty());
}

#[test]
fn tolerance_limits() {
    let m = compare(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]).expect("same length");
    let t = |nmse, max_abs| Tolerance { nmse, max_abs };
    assert!(t(None, None).holds(&m));
    assert!(t(Some(1.0 / 14.0), None).holds(&m));
    assert!(!t(Some(0.07), None).holds(&m));
    assert!(t(None, Some(1.0)).holds(&m));
    assert!(!t(None, Some(0.999)).holds(&m));
    assert!(!t(Some(1.0), Some(0.5)).holds(&m));
}
