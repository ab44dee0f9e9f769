//! `apr diff --values` end to end: files of both layouts, directories, `--json`, exit statuses
//! (0 within tolerance, 1 beyond, 2 error), shape mismatches.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use apr_engine::trace::aprt::{self, Header};

fn apr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apr"))
        .args(args)
        .output()
        .expect("apr runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("trace_diff_cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn write(path: &Path, layer: Option<u32>, stage: &str, shape: (usize, usize), data: &[f32]) {
    let h = Header {
        layer,
        stage: stage.to_string(),
        positions: shape.0,
        features: shape.1,
    };
    aprt::write(path, &h, data).expect("write");
}

fn write_anchor(path: &Path, layer: Option<u32>, data: &[f32]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, aprt::encode_anchor(layer, data).expect("encode")).expect("write");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)))
}

#[test]
fn two_files_table_json_and_exit_status() {
    let d = scratch("files");
    let (a, b) = (d.join("a.bin"), d.join("b.bin"));
    write(&a, Some(0), "ffn_gate", (1, 3), &[1.0, 2.0, 3.0]);
    write(&b, Some(0), "ffn_gate", (1, 3), &[1.0, 2.0, 4.0]);

    let o = apr(&["diff", "--values", s(&a), s(&b)]);
    assert_eq!(
        code(&o),
        0,
        "no tolerance: only NaN/Inf mismatches fail; {}",
        text(&o.stderr)
    );
    let t = text(&o.stdout);
    assert!(t.contains("max_abs_diff    1.0000e0 at index 2"), "{t}");
    assert!(t.contains("nmse            7.1429e-2"), "1/14: {t}");
    assert!(t.contains("max_ulp         4194304 at index 2"), "{t}");
    assert!(t.contains("stage           ffn_gate (layer 0)"), "{t}");
    assert!(t.contains("top 1 differences:"), "{t}");

    let within = apr(&["diff", "--values", s(&a), s(&b), "--tolerance", "0.0715"]);
    assert_eq!(code(&within), 0, "{}", text(&within.stdout));
    let beyond = apr(&["diff", "--values", s(&a), s(&b), "--tolerance", "0.07"]);
    assert_eq!(code(&beyond), 1, "{}", text(&beyond.stdout));
    assert!(text(&beyond.stdout)
        .contains("result: BEYOND tolerance (no NaN/Inf mismatch, nmse <= 7e-2)"));
    let abs = apr(&["diff", "--values", s(&a), s(&b), "--max-abs", "0.5"]);
    assert_eq!(code(&abs), 1);

    let o = apr(&["diff", "--values", s(&a), s(&b), "--json", "--top", "2"]);
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert_eq!(v["schema"], "apr-stage-diff-v1");
    assert_eq!(v["layer"], 0);
    assert_eq!(v["stage"], "ffn_gate");
    assert_eq!(v["dim_product"], 3);
    assert_eq!(v["max_abs_diff"], 1.0);
    assert_eq!(v["max_abs_diff_index"], 2);
    assert!((v["nmse"].as_f64().expect("nmse") - 1.0 / 14.0).abs() < 1e-15);
    assert!((v["rms_diff"].as_f64().expect("rms") - (1.0f64 / 3.0).sqrt()).abs() < 1e-15);
    assert_eq!(v["max_ulp"], 4194304);
    assert_eq!(
        v["top_diffs"],
        serde_json::json!([{"index": 2, "a": 3.0, "b": 4.0, "abs_diff": 1.0}])
    );
    assert_eq!(v["within_tolerance"], true);
}

#[test]
fn our_layout_against_the_committed_anchor_file() {
    // The committed 12-byte file holds NaN payloads, -0, subnormals and +Inf; ours holds the
    // same bits: bit-identical, exit 0.
    let anchor =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/aprt/anchor12/layer-2/ffn_gate.bin");
    let data = aprt::read(&anchor).expect("read").data;
    let d = scratch("anchor");
    let ours = d.join("ffn_gate.bin");
    write(&ours, Some(2), "ffn_gate", (2, 4), &data);
    let o = apr(&[
        "diff",
        "--values",
        s(&ours),
        s(&anchor),
        "--json",
        "--tolerance",
        "0",
    ]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    let v = json(&o);
    assert_eq!(v["differing_bits"], 0);
    assert_eq!(v["a_nan"], 2);
    assert_eq!(v["nan_mismatches"], 0);
    assert_eq!(v["shape_a"], "[2, 4] (APRT v1)");
    assert_eq!(v["shape_b"], "[8] (12-byte layout)");

    // One NaN replaced by a number: a NaN mismatch, exit 1 even without a tolerance.
    let mut changed = data.clone();
    changed[2] = 0.0;
    write(&ours, Some(2), "ffn_gate", (2, 4), &changed);
    let o = apr(&["diff", "--values", s(&ours), s(&anchor)]);
    assert_eq!(code(&o), 1, "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("nan mismatches  1 (A has 1 NaN, B has 2)"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn shape_and_count_mismatches_are_errors() {
    let d = scratch("shapes");
    let (a, b, c) = (d.join("a.bin"), d.join("b.bin"), d.join("c.bin"));
    write(&a, Some(0), "ffn_up", (2, 3), &[0.0; 6]);
    write(&b, Some(0), "ffn_up", (3, 2), &[0.0; 6]);
    write_anchor(&c, Some(0), &[0.0; 5]);
    let o = apr(&["diff", "--values", s(&a), s(&b)]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        text(&o.stderr),
        format!(
            "apr diff: error: shapes differ: {} is [2, 3], {} is [3, 2]\n",
            a.display(),
            b.display()
        )
    );
    assert!(o.stdout.is_empty());
    let o = apr(&["diff", "--values", s(&a), s(&c)]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("is [2, 3]") && text(&o.stderr).contains("is [5]"));
}

#[test]
fn errors_exit_2_with_the_file_named() {
    let d = scratch("errors");
    let a = d.join("a.bin");
    write(&a, None, "lm_head", (1, 2), &[1.0, 2.0]);
    let bad = d.join("bad.bin");
    std::fs::write(&bad, b"APRT\x01\x00").expect("write");
    let o = apr(&["diff", "--values", s(&a), s(&bad)]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        text(&o.stderr),
        format!(
            "apr diff: error: {}: truncated: format word (or layer of the 12-byte layout) at offset 4 needs 4 bytes, the file has 2\n",
            bad.display()
        )
    );
    let o = apr(&["diff", "--values", s(&a), s(&d)]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("(file) with"),
        "{}",
        text(&o.stderr)
    );
    let o = apr(&["diff", "--values", s(&a), s(&d.join("missing.bin"))]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("missing.bin: cannot read"));
    let o = apr(&["diff", s(&a), s(&a)]);
    assert_eq!(code(&o), 2, "--values is required");
    let o = apr(&["diff", "--values", s(&a), s(&a), "--tolerance=-1"]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        text(&o.stderr),
        "apr diff: error: --tolerance -1 is not a non-negative number\n"
    );
}

fn capture_dirs(name: &str) -> (PathBuf, PathBuf) {
    let d = scratch(name);
    let (a, b) = (d.join("A"), d.join("B"));
    let x: Vec<f32> = (0..8).map(|i| i as f32 * 0.5).collect();
    for dir in [&a, &b] {
        write(&dir.join("embedding.bin"), None, "embedding", (2, 4), &x);
        write(
            &dir.join("layer-0/attn_norm.bin"),
            Some(0),
            "attn_norm",
            (2, 4),
            &x,
        );
        write(
            &dir.join("layer-10/attn_norm.bin"),
            Some(10),
            "attn_norm",
            (2, 4),
            &x,
        );
        write(&dir.join("lm_head.bin"), None, "lm_head", (2, 4), &x);
    }
    let mut y = x.clone();
    y[5] += 0.25;
    write(
        &b.join("layer-1/ffn_out.bin"),
        Some(1),
        "ffn_out",
        (2, 4),
        &y,
    );
    write(
        &a.join("layer-1/ffn_out.bin"),
        Some(1),
        "ffn_out",
        (2, 4),
        &x,
    );
    write(&a.join("layer-1/ffn_up.bin"), Some(1), "ffn_up", (2, 4), &x);
    write_anchor(&b.join("layer-2/ffn_up.bin"), Some(2), &x);
    std::fs::write(a.join("notes.txt"), "not a tensor").expect("write");
    (a, b)
}

#[test]
fn directories_are_matched_by_relative_path_in_compute_order() {
    let (a, b) = capture_dirs("dirs");
    let o = apr(&["diff", "--values", s(&a), s(&b), "--tolerance", "1e-7"]);
    assert_eq!(code(&o), 1, "{}{}", text(&o.stdout), text(&o.stderr));
    let t = text(&o.stdout);
    let names: Vec<&str> = t
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.ends_with(".bin"))
        .collect();
    assert_eq!(
        names,
        [
            "embedding.bin",
            "layer-0/attn_norm.bin",
            "layer-1/ffn_out.bin",
            "layer-10/attn_norm.bin",
            "lm_head.bin"
        ],
        "{t}"
    );
    let row = t
        .lines()
        .find(|l| l.starts_with("layer-1/ffn_out.bin"))
        .expect("row");
    assert!(row.ends_with("BEYOND"), "{row}");
    assert!(row.contains("2.5000e-1") && row.contains("  5  "), "{row}");
    assert!(t.contains("only in A: layer-1/ffn_up.bin"), "{t}");
    assert!(t.contains("only in B: layer-2/ffn_up.bin"), "{t}");
    assert!(
        t.contains("index          5  a    2.50000000e0  b    2.75000000e0  |a-b| 2.5000e-1"),
        "{t}"
    );
    assert!(
        t.contains(
            "5 pair(s): 4 identical, 1 beyond tolerance, 0 error(s); 1 only in A, 1 only in B"
        ),
        "{t}"
    );
    assert!(!t.contains("notes.txt"));

    // A looser tolerance holds.
    let o = apr(&["diff", "--values", s(&a), s(&b), "--max-abs", "0.25"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));

    let o = apr(&[
        "diff",
        "--values",
        s(&a),
        s(&b),
        "--json",
        "--tolerance",
        "1e-7",
    ]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["schema"], "apr-stage-diff-dir-v1");
    assert_eq!(v["within_tolerance"], false);
    assert_eq!(v["tolerance"]["nmse"], 1e-7);
    assert_eq!(v["only_in_a"], serde_json::json!(["layer-1/ffn_up.bin"]));
    assert_eq!(v["only_in_b"], serde_json::json!(["layer-2/ffn_up.bin"]));
    let pairs = v["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 5);
    assert_eq!(pairs[0]["layer"], "whole-model");
    assert_eq!(pairs[2]["name"], "layer-1/ffn_out.bin");
    assert_eq!(pairs[2]["schema"], "apr-stage-diff-v1");
    assert_eq!(pairs[2]["max_abs_diff_index"], 5);
    assert_eq!(pairs[2]["within_tolerance"], false);
    assert_eq!(pairs[1]["within_tolerance"], true);
}

#[test]
fn a_bad_pair_in_a_directory_is_an_error_and_the_rest_is_still_reported() {
    let (a, b) = capture_dirs("dirs-bad");
    write(
        &b.join("layer-0/attn_norm.bin"),
        Some(0),
        "attn_norm",
        (4, 2),
        &[0.0; 8],
    );
    let o = apr(&["diff", "--values", s(&a), s(&b), "--json"]);
    assert_eq!(code(&o), 2);
    let v = json(&o);
    assert_eq!(v["errors"][0]["name"], "layer-0/attn_norm.bin");
    assert!(v["errors"][0]["error"]
        .as_str()
        .expect("message")
        .contains("shapes differ"));
    assert_eq!(v["pairs"].as_array().expect("pairs").len(), 4);
    assert!(text(&o.stderr).contains("layer-0/attn_norm.bin: shapes differ"));

    let empty = a.parent().expect("parent").join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let o = apr(&["diff", "--values", s(&a), s(&empty)]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("have no .bin file in common (6 only in A, 0 only in B)"),
        "{}",
        text(&o.stderr)
    );
}
