//! Our forward pass against llama.cpp's own intermediates.
//!
//! `tests/fixtures/llama_dumps/<stem>/` holds what llama.cpp's eval callback saw for one
//! prompt, mapped to our stage names and written as APRT files by
//! `tools/llama_dumps/dump.py` (docs/llama-dumps.md). Every dumped (layer, stage) must be
//! compared and stay within the default bisect criterion (NMSE ≤ 2e-3, ggml
//! test-backend-ops' whole-model threshold); a perturbed dump and another model's dumps must
//! be caught.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use apr_engine::probe::bisect::{bisect, Bisection, Comparison, Criterion, DEFAULT_NMSE};
use apr_engine::probe::{RunSource, RunSpec};
use apr_engine::trace::capture::{Captured, TensorKey};
use apr_engine::trace::Stage;

/// The dumped fixtures: one per architecture, llama twice (F32 and Q4_0).
const STEMS: [&str; 5] = [
    "llama-F32",
    "llama-Q4_0",
    "qwen2-Q8_0",
    "qwen3-Q4_K_M",
    "qwen3moe-Q4_K_M",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dumps(stem: &str) -> PathBuf {
    repo().join("tests/fixtures/llama_dumps").join(stem)
}

fn model(stem: &str) -> PathBuf {
    repo().join(format!("tests/fixtures/models/{stem}.gguf"))
}

/// The token ids the dump was made from.
fn tokens(stem: &str) -> Vec<u32> {
    let text = std::fs::read_to_string(dumps(stem).join("tokens.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| u32::try_from(t.as_u64().unwrap()).unwrap())
        .collect()
}

/// The dump, read as `apr bisect --a DIR` reads it.
fn llama_cpp(stem: &str) -> BTreeMap<TensorKey, Captured> {
    let spec = RunSpec {
        source: RunSource::Dumps(dumps(stem)),
        backend: apr_engine::model::Backend::Cpu,
        threads: None,
    };
    spec.capture(None, &tokens(stem)).unwrap()
}

/// Our forward pass (default backend) over `tokens`, every stage.
fn ours(stem: &str, tokens: &[u32]) -> BTreeMap<TensorKey, Captured> {
    let spec = RunSpec {
        source: RunSource::Model(model(stem)),
        backend: apr_engine::model::Backend::Cpu,
        threads: None,
    };
    let m = spec.load().unwrap();
    spec.capture(m.as_ref(), tokens).unwrap()
}

fn compared(r: &Bisection) -> usize {
    r.rows
        .iter()
        .filter(|row| matches!(row.comparison, Comparison::Compared { .. }))
        .count()
}

/// The per-layer stages each dump must hold (docs/llama-dumps.md, mapping table).
fn expected_stages(stem: &str) -> Vec<Stage> {
    use Stage::*;
    let mut s = vec![AttnNorm, QkvMatmul];
    if stem.starts_with("qwen2") {
        s.push(QkvBias);
    }
    if stem.starts_with("qwen3") {
        s.extend([QNorm, KNorm]);
    }
    s.extend([
        QPostRope,
        KPostRope,
        Attention,
        AttnOut,
        PostAttnResidual,
        FfnNorm,
    ]);
    if stem.starts_with("qwen3moe") {
        s.extend([MoeRouterLogits, MoeTopkIds, MoeTopkWeights, MoeOut]);
    } else {
        s.extend([FfnGate, FfnUp, FfnSwigl]);
    }
    s.extend([FfnOut, PostFfnResidual, LayerOutput]);
    s
}

#[test]
fn every_fixture_architecture_has_a_dump() {
    let mut found: Vec<String> = std::fs::read_dir(repo().join("tests/fixtures/llama_dumps"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, STEMS);
    for stem in STEMS {
        let dump = llama_cpp(stem);
        let layers = 4;
        let mut want: Vec<TensorKey> = (0..layers)
            .flat_map(|l| {
                expected_stages(stem)
                    .into_iter()
                    .map(move |s| TensorKey::new(Some(l), s))
            })
            .collect();
        want.extend(
            [Stage::Embedding, Stage::FinalNorm, Stage::LmHead].map(|s| TensorKey::new(None, s)),
        );
        want.sort();
        let have: Vec<TensorKey> = dump.keys().copied().collect();
        assert_eq!(have, want, "{stem}: dumped stages");
        let n = tokens(stem).len();
        for (key, t) in &dump {
            assert_eq!(
                t.positions, n,
                "{stem} {key:?}: every position (logits_all)"
            );
        }
    }
}

#[test]
fn our_forward_pass_agrees_with_llama_cpp_at_every_dumped_stage() {
    for stem in STEMS {
        let toks = tokens(stem);
        let theirs = llama_cpp(stem);
        let mine = ours(stem, &toks);
        let r = bisect(&theirs, &mine, Criterion::Nmse(DEFAULT_NMSE));
        let worst = r
            .rows
            .iter()
            .filter_map(|row| match &row.comparison {
                Comparison::Compared { metrics, .. } => Some((metrics.nmse, row.layer, row.stage)),
                _ => None,
            })
            .fold((0f64, None, Stage::Embedding), |a, b| {
                if b.0 > a.0 {
                    b
                } else {
                    a
                }
            });
        eprintln!(
            "{stem}: {} stages compared, max NMSE {:.3e} at layer {:?} {}",
            compared(&r),
            worst.0,
            worst.1,
            worst.2
        );
        assert_eq!(r.first(), None, "{stem}: diverges from llama.cpp");
        assert!(r.forks.is_empty(), "{stem}: routing ties {:?}", r.forks);
        // Not vacuous: every llama.cpp tensor found its stage on our side, same shape.
        assert_eq!(
            compared(&r),
            theirs.len(),
            "{stem}: not every dump compared"
        );
        assert!(compared(&r) >= 59, "{stem}: only {} stages", compared(&r));
        // The token embedding is a row lookup (dequantized exactly on both sides): identical.
        match r.rows.iter().find(|row| row.stage == Stage::Embedding) {
            Some(row) => match &row.comparison {
                Comparison::Compared { metrics, .. } => {
                    assert!(metrics.bit_identical(), "{stem}: embedding")
                }
                other => panic!("{stem}: embedding {other:?}"),
            },
            None => panic!("{stem}: no embedding row"),
        }
    }
}

#[test]
fn with_f32_weights_only_the_summation_order_differs() {
    // No quantized weights and no quantized activations on either side (llama.cpp's F32
    // matmul keeps f32 activations): measured ≤ 4.3e-8 at every stage, 1e-6 leaves room
    // for a different summation order without hiding a wrong formula.
    let stem = "llama-F32";
    let r = bisect(
        &llama_cpp(stem),
        &ours(stem, &tokens(stem)),
        Criterion::Nmse(1e-6),
    );
    assert_eq!(r.first(), None);
    assert_eq!(compared(&r), 59);
}

#[test]
fn apr_bisect_cli_passes_against_each_dump() {
    for stem in STEMS {
        let ids: Vec<String> = tokens(stem).iter().map(u32::to_string).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_apr"))
            .args(["bisect", "--a"])
            .arg(dumps(stem))
            .arg("--b")
            .arg(model(stem))
            .args(["--tokens", &ids.join(","), "--json"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stem}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["first_divergence_name"].is_null(), "{stem}");
        let n = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "compared")
            .count();
        assert_eq!(n, llama_cpp(stem).len(), "{stem}");
    }
}

#[test]
fn another_models_dumps_diverge_at_the_embedding() {
    // qwen2 and qwen3 fixtures share the vocabulary and prompt 0's ids, not the weights.
    let (dump, other) = ("qwen2-Q8_0", "qwen3-Q4_K_M");
    assert_eq!(tokens(dump), tokens(other));
    let ids: Vec<String> = tokens(dump).iter().map(u32::to_string).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_apr"))
        .args(["bisect", "--a"])
        .arg(dumps(dump))
        .arg("--b")
        .arg(model(other))
        .args(["--tokens", &ids.join(","), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a divergence exits 1");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["first_divergence_name"], "embedding");
}

#[test]
fn a_perturbed_dump_is_named_at_its_layer_and_stage() {
    let stem = "qwen3-Q4_K_M";
    let toks = tokens(stem);
    let mine = ours(stem, &toks);
    let mut theirs = llama_cpp(stem);
    // One position (of 17) of layer 2's up projection scaled by 1.5: NMSE ≈ 0.5²/17 ≈ 0.015,
    // far beyond 2e-3, while every stage before it is untouched.
    let key = TensorKey::new(Some(2), Stage::FfnUp);
    let t = theirs.get_mut(&key).unwrap();
    let f = t.features;
    for v in &mut t.data[5 * f..6 * f] {
        *v *= 1.5;
    }
    let r = bisect(&theirs, &mine, Criterion::Nmse(DEFAULT_NMSE));
    assert_eq!(r.first(), Some((Some(2), Stage::FfnUp)));
}

#[test]
fn a_swapped_expert_in_the_dump_is_named_at_moe_topk_ids() {
    let stem = "qwen3moe-Q4_K_M";
    let toks = tokens(stem);
    let mine = ours(stem, &toks);
    let mut theirs = llama_cpp(stem);
    // At token 3 of layer 1, replace the best expert by the one with the lowest router
    // logit: far beyond any noise, so no routing tie can excuse it.
    let (layer, token) = (1, 3);
    let logits = &theirs[&TensorKey::new(Some(layer), Stage::MoeRouterLogits)];
    let e = logits.features;
    let row = &logits.data[token * e..(token + 1) * e];
    let worst = (0..e).min_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
    let ids = theirs
        .get_mut(&TensorKey::new(Some(layer), Stage::MoeTopkIds))
        .unwrap();
    let k = ids.features;
    assert_ne!(ids.data[token * k] as usize, worst);
    ids.data[token * k] = worst as f32;
    let r = bisect(&theirs, &mine, Criterion::Nmse(DEFAULT_NMSE));
    assert_eq!(r.first(), Some((Some(layer), Stage::MoeTopkIds)));
    assert!(r.forks.is_empty());
}
