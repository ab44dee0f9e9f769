//! A vocabulary that asks for BOS but names none gets the architecture's default BOS, and
//! the user is told on stderr. The file under test is the llama fixture with
//! `tokenizer.ggml.bos_token_id` removed (its `add_bos_token` stays true); llama.cpp
//! tokenized the untouched file's prompts starting with `<s>` = id 1, which is what the
//! default must reproduce.

use std::path::{Path, PathBuf};
use std::process::Command;

use apr_engine::generate::{encode_prompt, load_tokenizer};
use apr_engine::gguf::{GgufFile, GgufWriter};
use apr_engine::model::{Backend, Model};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The llama Q4_0 fixture without `tokenizer.ggml.bos_token_id`, written to `dir`.
fn without_bos(dir: &Path) -> PathBuf {
    let src = GgufFile::open(fixtures().join("models/llama-Q4_0.gguf")).unwrap();
    assert!(src.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        if k != "tokenizer.ggml.bos_token_id" {
            w.add_kv(k.clone(), v.clone()).unwrap();
        }
    }
    for t in src.tensors() {
        w.add_tensor(
            t.name.clone(),
            t.ggml_type,
            &t.ne,
            src.tensor_data(t).to_vec(),
        )
        .unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("llama-no-bos.gguf");
    w.write_file(&path).unwrap();
    path
}

/// llama.cpp's tokens for the first llama prompt (reference/llama-Q4_0/logits.json).
fn reference_prompt() -> (String, Vec<u64>) {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("reference/llama-Q4_0/logits.json")).unwrap(),
    )
    .unwrap();
    let p = &v["prompts"][0];
    let ids = p["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    (p["text"].as_str().unwrap().to_owned(), ids)
}

#[test]
fn a_missing_bos_takes_the_architecture_default_and_says_so() {
    let dir = std::env::temp_dir().join(format!("apr-generate-bos-{}", std::process::id()));
    let path = without_bos(&dir);
    let (text, want) = reference_prompt();
    assert_eq!(want[0], 1, "llama.cpp starts the prompt with <s> = 1");

    // The tokenizer alone refuses the file: the default is generation's decision.
    let file = GgufFile::open(&path).unwrap();
    assert!(apr_engine::tokenizer::Tokenizer::from_gguf(&file).is_err());

    let model = Model::open(&path, Backend::Cpu).unwrap();
    let (tokenizer, notice) = load_tokenizer(&model).unwrap();
    let notice = notice.expect("a notice about the default BOS");
    assert!(
        notice.contains("\"<s>\"") && notice.contains("id 1"),
        "{notice}"
    );
    assert_eq!(tokenizer.bos(), Some(1));
    let got: Vec<u64> = encode_prompt(&tokenizer, &text)
        .unwrap()
        .into_iter()
        .map(u64::from)
        .collect();
    assert_eq!(got, want);

    // Through the CLI: the notice on stderr, the same prompt ids in the JSON.
    let o = Command::new(env!("CARGO_BIN_EXE_apr"))
        .args([
            "run",
            path.to_str().unwrap(),
            "-p",
            &text,
            "-n",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("apr run: note:") && err.contains("bos_token_id"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<u64> = v["prompt_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(ids, want);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_with_its_bos_gets_no_notice() {
    let model = Model::open(fixtures().join("models/llama-Q4_0.gguf"), Backend::Cpu).unwrap();
    let (tokenizer, notice) = load_tokenizer(&model).unwrap();
    assert_eq!(notice, None);
    assert_eq!(tokenizer.bos(), Some(1));
    // An empty prompt is refused before any BOS is added.
    assert!(encode_prompt(&tokenizer, "").is_err());
}
