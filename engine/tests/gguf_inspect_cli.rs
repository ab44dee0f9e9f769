//! `apr inspect` end to end: the binary on a committed gguf-py fixture and on malformed files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURE: &str = "tests/data/gguf/reference/gguf_py_all_types.gguf";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn apr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apr"))
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .expect("apr runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8 output")
}

#[test]
fn text_output_matches_the_golden_file() {
    let out = apr(&["inspect", FIXTURE]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let golden: PathBuf = manifest_dir().join("tests/data/gguf/inspect/gguf_py_all_types.txt");
    if std::env::var_os("APR_REGEN_FIXTURES").is_some() {
        std::fs::create_dir_all(golden.parent().expect("parent")).expect("mkdir");
        std::fs::write(&golden, &out.stdout).expect("write golden");
    }
    let want = std::fs::read_to_string(&golden).expect("golden file");
    assert_eq!(text(&out.stdout), want);
    // Spot checks that do not depend on the golden file.
    let s = text(&out.stdout);
    assert!(s.contains("GGUF v3, alignment 32, data offset 2464"), "{s}");
    assert!(
        s.contains("[\"tok0\", \"tok1\", \"tok2\", \"tok3\", \"tok4\", …] (40 items)"),
        "{s}"
    );
    assert!(
        s.contains("q4_k.matrix  Q4_K  [256, 2]        288     320"),
        "{s}"
    );
}

#[test]
fn json_output_has_metadata_summaries_and_the_tensor_table() {
    let out = apr(&["inspect", FIXTURE, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["version"], 3);
    assert_eq!(v["alignment"], 32);
    let meta = v["metadata"].as_array().expect("metadata");
    let get = |k: &str| {
        meta.iter()
            .find(|m| m["key"] == k)
            .unwrap_or_else(|| panic!("{k} missing"))
            .clone()
    };
    assert_eq!(get("test.u32")["type"], "UINT32");
    assert_eq!(get("test.u32")["value"], 4_000_000_000u64);
    assert_eq!(get("test.f32_inf")["value"], "inf");
    let toks = get("tokenizer.ggml.tokens");
    assert_eq!(toks["type"], "ARRAY[STRING]");
    assert_eq!(toks["len"], 40);
    assert_eq!(toks["truncated"], true);
    assert_eq!(
        toks["head"],
        serde_json::json!(["tok0", "tok1", "tok2", "tok3", "tok4"])
    );
    assert_eq!(
        get("test.nested_i32")["value"],
        serde_json::json!([[1, 2], [3], [4, 5, 6]])
    );
    let tensors = v["tensors"].as_array().expect("tensors");
    assert_eq!(tensors.len(), 8);
    let q8 = tensors
        .iter()
        .find(|t| t["name"] == "q8_0.matrix")
        .expect("q8_0");
    assert_eq!(q8["type"], "Q8_0");
    assert_eq!(q8["ne"], serde_json::json!([64, 3]));
    assert_eq!(q8["bytes"], 204);
    assert_eq!(q8["offset"], 96);
    assert_eq!(q8["file_offset"], 2464 + 96);
}

#[test]
fn malformed_file_fails_with_file_and_reason_on_stderr() {
    let path = "tests/data/gguf/malformed/unknown_tensor_type.gguf";
    let out = apr(&["inspect", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stderr),
        format!(
            "apr inspect: error: {path}: tensor \"a\": unknown or unsupported ggml type id 4\n"
        )
    );
    let out = apr(&[
        "inspect",
        "tests/data/gguf/malformed/truncated_0008_header_tensor_count.gguf",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr)
        .contains("truncated: header.tensor_count at offset 8 needs 8 bytes, only 0 left"));
}

#[test]
fn missing_file_fails_naming_it() {
    let out = apr(&["inspect", "no/such/model.gguf"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("apr inspect: error: no/such/model.gguf: cannot read: "),
        "{err}"
    );
}
