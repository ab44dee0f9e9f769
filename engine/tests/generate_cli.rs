//! `apr run` through the real binary: streaming, JSON, seeds, chat templates and the
//! error cases a user meets (each must exit 1 with `apr run: <message>`, never panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn model(stem: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(format!("{stem}.gguf"))
}

fn apr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apr"))
        .args(args)
        .output()
        .expect("run apr")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn run_json(args: &[&str]) -> Value {
    let o = apr(args);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// Contract F-QW3-MOE-C22214-001's command, on the qwen3moe fixture.
#[test]
fn qwen3moe_generates_non_whitespace_text() {
    let m = model("qwen3moe-Q4_K_M");
    let o = apr(&["run", m.to_str().unwrap(), "-p", "Hi", "-n", "8"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(
        stdout(&o).chars().any(|c| !c.is_whitespace()),
        "stdout {:?}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    // The stats line: load time, prompt and generation counts and rates.
    let stats = err.lines().last().unwrap();
    for part in ["load ", "prompt ", "tok/s", "generated 8 tokens"] {
        assert!(stats.contains(part), "no {part:?} in {stats:?}");
    }
}

#[test]
fn json_has_the_token_ids_the_text_and_the_timings() {
    let m = model("qwen3moe-Q4_K_M");
    let v = run_json(&["run", m.to_str().unwrap(), "-p", "Hi", "-n", "8", "--json"]);
    assert_eq!(ids(&v["generated_tokens"]).len(), 8, "{v}");
    assert!(!ids(&v["prompt_tokens"]).is_empty());
    assert_eq!(v["arch"], "qwen3moe");
    assert_eq!(v["backend"], "cpu");
    // The child inherits APR_SIMD and the CPU, so it dispatches as this process does.
    assert_eq!(v["simd"], apr_engine::kernels::active_isa().name(), "{v}");
    assert_eq!(v["stop"], "length");
    assert!(v["text"].is_string());
    for key in ["load_ms", "prompt_ms", "decode_ms"] {
        assert!(v["timings"][key].as_f64().unwrap() >= 0.0, "{key}: {v}");
    }
}

/// Streaming and JSON print the same text for the same greedy run, and the JSON's ids
/// decode to what streaming printed (checked through the prompt: the same prompt ids).
#[test]
fn json_and_streaming_agree() {
    let m = model("qwen2-Q8_0");
    let args = [
        "run",
        m.to_str().unwrap(),
        "-p",
        "The quick brown fox",
        "-n",
        "6",
    ];
    let v = run_json(&[&args[..], &["--json"]].concat());
    let o = apr(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let streamed = stdout(&o);
    let text = v["text"].as_str().unwrap();
    assert_eq!(streamed.trim_end_matches('\n'), text.trim_end_matches('\n'));
}

/// llama.cpp's greedy continuation of its first qwen2 prompt, from the prompt text: this
/// goes through our tokenizer too (reference/qwen2-Q8_0/logits.json, prompt 0, whose
/// margins are all far above the noise).
#[test]
fn greedy_run_from_text_matches_llama_cpp() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/reference/qwen2-Q8_0/logits.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let p = &reference["prompts"][0];
    let m = model("qwen2-Q8_0");
    let v = run_json(&[
        "run",
        m.to_str().unwrap(),
        "-p",
        p["text"].as_str().unwrap(),
        "-n",
        "8",
        "--json",
    ]);
    assert_eq!(ids(&v["prompt_tokens"]), ids(&p["tokens"]));
    assert_eq!(ids(&v["generated_tokens"]), ids(&p["greedy"])[..8]);
}

#[test]
fn a_seed_makes_sampling_reproducible() {
    let m = model("qwen3-Q4_K_M");
    let sample = |seed: &str| {
        let v = run_json(&[
            "run",
            m.to_str().unwrap(),
            "-p",
            "Once upon a time",
            "-n",
            "16",
            "--temp",
            "5",
            "--top-k",
            "0",
            "--top-p",
            "1",
            "--seed",
            seed,
            "--json",
        ]);
        assert_eq!(v["sampling"]["seed"], seed.parse::<u64>().unwrap());
        ids(&v["generated_tokens"])
    };
    let a = sample("1234");
    assert_eq!(a, sample("1234"));
    // At temperature 5 over the whole vocabulary, 16 draws from two seeds agreeing
    // would take an astronomically unlikely coincidence.
    assert_ne!(a, sample("99"));
}

#[test]
fn threads_do_not_change_greedy_output() {
    let m = model("qwen3moe-Q4_K_M");
    let run = |t: &str| {
        let v = run_json(&[
            "run",
            m.to_str().unwrap(),
            "-p",
            "Hi",
            "-n",
            "8",
            "-t",
            t,
            "--json",
        ]);
        assert_eq!(v["threads"], t.parse::<u64>().unwrap());
        ids(&v["generated_tokens"])
    };
    assert_eq!(run("1"), run("2"));
}

#[test]
fn chat_renders_the_template_of_a_bpe_model() {
    let m = model("qwen2-F16");
    let v = run_json(&[
        "run",
        m.to_str().unwrap(),
        "-p",
        "Hi",
        "-n",
        "4",
        "--chat",
        "--json",
    ]);
    // The fixture's ChatML template, rendered by hand.
    assert_eq!(
        v["prompt"],
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let prompt = ids(&v["prompt_tokens"]);
    // <|im_start|> is parsed into its one special token, not spelled out.
    let file = apr_engine::gguf::GgufFile::open(&m).unwrap();
    let tokens = file.get_str_array("tokenizer.ggml.tokens").unwrap();
    let im_start = tokens.iter().position(|t| t == "<|im_start|>").unwrap() as u64;
    assert_eq!(prompt[0], im_start);
    assert_eq!(prompt.iter().filter(|&&t| t == im_start).count(), 2);
}

fn assert_fails(args: &[&str], needles: &[&str]) {
    let o = apr(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: stderr {err}");
    assert!(err.starts_with("apr run: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: no {n:?} in {err:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.stdout.is_empty(), "{:?}", stdout(&o));
}

#[test]
fn chat_without_a_template_is_a_clear_error() {
    let m = model("llama-F32");
    assert_fails(
        &["run", m.to_str().unwrap(), "-p", "Hi", "--chat"],
        &["llama-F32.gguf", "tokenizer.chat_template"],
    );
}

#[test]
fn a_missing_file_is_an_error() {
    assert_fails(
        &["run", "/nonexistent/model.gguf", "-p", "Hi"],
        &["/nonexistent/model.gguf", "cannot read"],
    );
}

#[test]
fn a_file_that_is_not_gguf_is_an_error() {
    let dir = std::env::temp_dir().join(format!("apr-run-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notes.gguf");
    std::fs::write(&path, b"these are notes, not a model\n").unwrap();
    assert_fails(&["run", path.to_str().unwrap(), "-p", "Hi"], &["magic"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A minimal GGUF v3 file by hand: no tensors, one key, general.architecture = "mamba".
#[test]
fn an_unsupported_architecture_is_an_error() {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes()); // version
    b.extend_from_slice(&0u64.to_le_bytes()); // tensor count
    b.extend_from_slice(&1u64.to_le_bytes()); // metadata count
    let key = b"general.architecture";
    b.extend_from_slice(&(key.len() as u64).to_le_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(&8u32.to_le_bytes()); // GGUF_TYPE_STRING
    b.extend_from_slice(&5u64.to_le_bytes());
    b.extend_from_slice(b"mamba");
    let dir = std::env::temp_dir().join(format!("apr-run-arch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mamba.gguf");
    std::fs::write(&path, &b).unwrap();
    assert_fails(
        &["run", path.to_str().unwrap(), "-p", "Hi"],
        &["unsupported architecture", "mamba"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_empty_prompt_is_an_error() {
    let m = model("qwen3moe-Q4_K_M");
    assert_fails(
        &["run", m.to_str().unwrap(), "-p", ""],
        &["prompt is empty"],
    );
}

#[test]
fn a_context_overflow_is_an_error() {
    let m = model("qwen3moe-Q4_K_M");
    // "Hi" is at least one token; 8 more cannot fit in a context of 4.
    assert_fails(
        &[
            "run",
            m.to_str().unwrap(),
            "-p",
            "Hi",
            "-n",
            "8",
            "--ctx",
            "4",
        ],
        &["context overflow", "context of 4 tokens"],
    );
    // The fixture's training context is 512: the default context is too small for 600.
    assert_fails(
        &["run", m.to_str().unwrap(), "-p", "Hi", "-n", "600"],
        &["context overflow", "512"],
    );
}

#[test]
fn bad_sampling_parameters_are_errors() {
    let m = model("qwen3moe-Q4_K_M");
    assert_fails(
        &["run", m.to_str().unwrap(), "-p", "Hi", "--top-p", "1.5"],
        &["top-p = 1.5"],
    );
    assert_fails(
        &["run", m.to_str().unwrap(), "-p", "Hi", "--temp=-1"],
        &["temperature = -1"],
    );
    assert_fails(
        &["run", m.to_str().unwrap(), "-p", "Hi", "--threads", "0"],
        &["threads"],
    );
}

/// The same model as APR (`apr convert`, byte-identical weights) generates the same tokens.
#[test]
fn an_apr_file_generates_what_its_gguf_does() {
    let m = model("qwen2-Q3_K_M");
    let dir = std::env::temp_dir().join(format!("apr-run-apr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let apr_path = dir.join("qwen2-Q3_K_M.apr");
    let o = apr(&[
        "convert",
        m.to_str().unwrap(),
        "-o",
        apr_path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = |p: &Path| {
        let v = run_json(&[
            "run",
            p.to_str().unwrap(),
            "-p",
            "def f(x):",
            "-n",
            "8",
            "--json",
        ]);
        (ids(&v["prompt_tokens"]), ids(&v["generated_tokens"]))
    };
    assert_eq!(run(&apr_path), run(&m));
    std::fs::remove_dir_all(&dir).unwrap();
}
