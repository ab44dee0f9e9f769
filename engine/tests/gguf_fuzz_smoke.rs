//! The fuzz target's property (fuzz/gguf_check.rs) on stable Rust, without libFuzzer: over every
//! committed GGUF file and a fixed set of pseudo-random mutations of them. The real fuzzer
//! (`cargo +nightly fuzz run gguf_parse`, see docs/gguf.md) explores far more; this keeps the
//! property itself compiling and passing in CI.

use std::path::{Path, PathBuf};

include!("../../fuzz/gguf_check.rs");

fn gguf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir)
        .expect("readable test data")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            gguf_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "gguf") {
            out.push(p);
        }
    }
}

fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    gguf_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf"),
        &mut files,
    );
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("readable");
            (p, b)
        })
        .collect()
}

#[test]
fn property_holds_on_every_committed_file() {
    let c = corpus();
    assert!(c.len() > 90, "only {} files", c.len());
    let valid = c
        .iter()
        .filter(|(_, b)| apr_engine::gguf::GgufFile::validate_bytes(b).is_ok())
        .count();
    assert!(
        valid >= 5,
        "the corpus must hold valid files too, found {valid}"
    );
    for (_, bytes) in &c {
        check_gguf_input(bytes);
    }
}

#[test]
fn property_holds_on_pseudo_random_mutations() {
    let seeds: Vec<Vec<u8>> = corpus()
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| apr_engine::gguf::GgufFile::validate_bytes(b).is_ok())
        .collect();
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut parsed = 0;
    for i in 0..6000 {
        let mut m = seeds[i % seeds.len()].clone();
        let len = m.len();
        match next() % 4 {
            // Overwrite a byte.
            0 => m[next() as usize % len] = next() as u8,
            // Overwrite 8 bytes with a small or huge integer (lengths, counts, offsets, dims).
            1 => {
                let at = next() as usize % (len - 8);
                let v = match next() % 3 {
                    0 => next() % 256,
                    1 => u64::MAX - next() % 256,
                    _ => 1 << (next() % 64),
                };
                m[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            // Truncate.
            2 => m.truncate(next() as usize % len),
            // Splice a slice of the file into another position.
            _ => {
                let (a, b) = (next() as usize % len, next() as usize % len);
                let n = (next() as usize % 64).min(len - a.max(b));
                m.copy_within(a..a + n, b);
            }
        }
        if apr_engine::gguf::GgufFile::validate_bytes(&m).is_ok() {
            parsed += 1;
        }
        check_gguf_input(&m);
    }
    // Mutations in tensor data keep files valid; both outcomes must be exercised.
    assert!(parsed > 100 && parsed < 6000, "parsed {parsed}");
}
