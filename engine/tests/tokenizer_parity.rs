//! Tokenization parity with llama.cpp: every fixture vocabulary, every corpus string, token
//! for token. The reference ids were produced by llama.cpp (through llama-cpp-python) and
//! committed by tools/fixtures/make_fixtures.py.

use std::path::{Path, PathBuf};

use apr_engine::gguf::GgufFile;
use apr_engine::tokenizer::Tokenizer;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an id array")
        .iter()
        .map(|x| x.as_u64().expect("an id") as u32)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_fixture_tokenizes_like_llama_cpp() {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut refs: Vec<PathBuf> = std::fs::read_dir(fixtures().join("reference"))
        .expect("reference dir")
        .map(|e| e.expect("entry").path())
        .collect();
    refs.sort();
    for dir in refs {
        let stem = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = fixtures().join("models").join(format!("{stem}.gguf"));
        let gguf = GgufFile::open(&model).expect("fixture opens");
        let tok = Tokenizer::from_gguf(&gguf).expect("fixture vocabulary loads");
        let reference: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("tokens.json")).unwrap())
                .unwrap();
        for case in reference["cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let checks = [
                (
                    "add+parse special",
                    tok.encode(text, true, true),
                    ids(&case["add_special_parse_special"]),
                ),
                (
                    "plain",
                    tok.encode(text, false, false),
                    ids(&case["no_add_no_parse"]),
                ),
            ];
            for (mode, ours, theirs) in checks {
                checked += 1;
                if ours != theirs {
                    failures.push(format!(
                        "{stem} [{mode}] {text:?}\n  llama.cpp {theirs:?}\n  ours      {ours:?}"
                    ));
                }
            }
            let plain = ids(&case["no_add_no_parse"]);
            let detok = hex(&tok.decode(&plain, false));
            if detok != case["detokenized_hex"].as_str().unwrap() {
                failures.push(format!("{stem} [detokenize] {text:?}: ours {detok}"));
            }
        }
    }
    assert!(checked >= 17 * 40 * 2, "only {checked} cases were checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} tokenizations differ from llama.cpp:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
