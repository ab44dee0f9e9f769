//! `apr trace`, `apr bisect` and `apr bench` through the real binary: files written, exit
//! statuses, JSON shapes and error messages.

use std::path::{Path, PathBuf};
use std::process::Command;

fn apr(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_apr"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(stem: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../tests/fixtures/models/{stem}.gguf"))
        .display()
        .to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("apr-probe-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn trace_saves_exactly_the_selected_stages_and_layers() {
    let dir = scratch("save");
    let (code, out, err) = apr(&[
        "trace",
        &fixture("qwen3-Q4_K_M"),
        "-p",
        "Hello world",
        "--save-tensor",
        "ffn_gate,attn_out,lm_head",
        "--layer",
        "3",
        "--output",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote 3 APRT files"), "{out}");
    let mut files: Vec<String> = walk(&dir);
    files.sort();
    assert_eq!(
        files,
        [
            "layer-3/attn_out.bin",
            "layer-3/ffn_gate.bin",
            "lm_head.bin"
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            out.extend(walk(&p).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            out.push(name);
        }
    }
    out
}

/// Without --payload, --json summarises the run: what it ran on and what it wrote.
#[test]
fn trace_json_without_payload_reports_backend_threads_and_simd() {
    let dir = scratch("summary");
    let (code, out, err) = apr(&[
        "trace",
        &fixture("llama-Q4_0"),
        "-p",
        "Hi",
        "--save-tensor",
        "attn_norm,lm_head",
        "--layer",
        "0",
        "--output",
        dir.to_str().unwrap(),
        "--threads",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["backend"], "cpu", "{v}");
    assert_eq!(v["threads"], 2, "{v}");
    // The child inherits APR_SIMD and the CPU, so it dispatches as this process does.
    assert_eq!(v["simd"], apr_engine::kernels::active_isa().name(), "{v}");
    assert_eq!(v["files_written"], walk(&dir).len(), "{v}");
    assert_eq!(v["files_written"], 2, "{v}");
    assert!(v["tokens"].as_u64().unwrap() > 0, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trace_payload_reports_every_layer_and_rejects_unknown_stages() {
    let (code, out, err) = apr(&[
        "trace",
        &fixture("llama-Q4_0"),
        "-p",
        "Hi",
        "--payload",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = v.to_string();
    for needle in ["\"embedding\"", "\"ffn_swigl\"", "\"lm_head\""] {
        assert!(text.contains(needle), "missing {needle}");
    }
    let (code, _, err) = apr(&[
        "trace",
        &fixture("llama-Q4_0"),
        "-p",
        "Hi",
        "--save-tensor",
        "ffn_gat",
        "--output",
        "/tmp/x",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("ffn_gat"), "{err}");
}

#[test]
fn bisect_exit_status_says_whether_a_stage_diverged() {
    let m = fixture("llama-Q4_0");
    let (code, out, err) = apr(&[
        "bisect",
        "--a",
        &m,
        "--b",
        &format!("{m},threads=1"),
        "-p",
        "Hello",
        "--exact",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no divergence"), "{out}");
    // Two different models diverge at once, at the embedding.
    let (code, out, _) = apr(&[
        "bisect",
        "--a",
        &m,
        "--b",
        &fixture("llama-Q5_0"),
        "-p",
        "Hello",
        "--json",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["first_divergence_name"], "embedding");
    assert_eq!(v["simd"], apr_engine::kernels::active_isa().name(), "{v}");
    let (code, _, err) = apr(&[
        "bisect",
        "--a",
        &format!("{m},backend=gpu"),
        "--b",
        &m,
        "-p",
        "Hello",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown backend 'gpu'"), "{err}");
}

#[test]
fn bench_reports_pp_and_tg() {
    let (code, out, err) = apr(&[
        "bench",
        &fixture("qwen2-Q8_0"),
        "-p",
        "32",
        "-n",
        "4",
        "-r",
        "1",
        "-t",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tests: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["test"].as_str().unwrap())
        .collect();
    assert_eq!(tests, ["pp32", "tg4"]);
    assert!(v["results"][0]["mean_tokens_per_s"].as_f64().unwrap() > 0.0);
    let (code, _, err) = apr(&["bench", "/nonexistent.gguf"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent.gguf"), "{err}");
}
