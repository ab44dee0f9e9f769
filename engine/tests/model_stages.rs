//! The forward pass emits every stage its architecture declares, for every layer, in
//! compute order, with the declared shape; and the qwen3moe router keeps its invariants.

use std::path::{Path, PathBuf};

use apr_engine::model::{Arch, Backend, Logits, Model};
use apr_engine::trace::capture::{Captured, RecordingObserver, TensorKey};
use apr_engine::trace::Stage;

fn fixture(stem: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/models/{stem}.gguf"))
}

const PROMPT: [u32; 5] = [1, 300, 301, 302, 303];

fn record(stem: &str) -> (Model, Vec<(TensorKey, usize, usize)>) {
    let model = Model::open(fixture(stem), Backend::Cpu).unwrap();
    let mut obs = RecordingObserver::all();
    let mut cache = model.new_cache(16);
    model
        .forward(&PROMPT, &mut cache, &mut obs, Logits::All)
        .unwrap();
    let calls = obs
        .records()
        .iter()
        .map(|r| (r.key, r.positions, r.data.len() / r.positions))
        .collect();
    (model, calls)
}

#[test]
fn every_declared_stage_is_emitted_with_its_shape() {
    for (stem, arch) in [
        ("llama-Q4_0", Arch::Llama),
        ("qwen2-Q8_0", Arch::Qwen2),
        ("qwen3-Q4_K_M", Arch::Qwen3),
        ("qwen3moe-Q4_K_M", Arch::Qwen3Moe),
    ] {
        let (model, calls) = record(stem);
        assert_eq!(model.arch(), arch);
        let hp = model.hparams();
        let declared = arch.stages();
        let mut expected = vec![TensorKey::new(None, Stage::Embedding)];
        for l in 0..hp.n_layer {
            expected.extend(
                declared
                    .iter()
                    .filter(|s| !s.is_whole_model())
                    .map(|&s| TensorKey::new(Some(l), s)),
            );
        }
        expected.push(TensorKey::new(None, Stage::FinalNorm));
        expected.push(TensorKey::new(None, Stage::LmHead));
        let emitted: Vec<TensorKey> = calls.iter().map(|c| c.0).collect();
        assert_eq!(
            emitted, expected,
            "{stem}: stages emitted vs declared, in order"
        );
        for (key, positions, features) in calls {
            assert_eq!(positions, PROMPT.len(), "{stem} {key:?}");
            assert_eq!(
                features,
                arch.stage_features(key.stage, hp),
                "{stem} {key:?}"
            );
        }
    }
}

#[test]
fn declared_shapes_match_the_fixture_dimensions() {
    // Independent of the engine's declaration: the fixture generator's dimensions
    // (tools/fixtures/models.py: n_embd 256, 4 heads of 64, 2 KV heads, 8 experts, top-2).
    let (model, calls) = record("qwen3moe-Q4_K_M");
    let width = |stage: Stage| {
        calls
            .iter()
            .find(|c| c.0.stage == stage)
            .map(|c| c.2)
            .unwrap()
    };
    assert_eq!(width(Stage::QkvMatmul), 256 + 2 * 128);
    assert_eq!(width(Stage::KPostRope), 128);
    assert_eq!(width(Stage::MoeRouterLogits), 8);
    assert_eq!(width(Stage::MoeTopkIds), 2);
    assert_eq!(width(Stage::LmHead), model.hparams().n_vocab);
}

fn captured(obs: &RecordingObserver, layer: usize, stage: Stage) -> Captured {
    obs.concatenated().unwrap()[&TensorKey::new(Some(layer), stage)].clone()
}

#[test]
fn router_weights_are_the_renormalised_top_k_of_the_softmax() {
    let model = Model::open(fixture("qwen3moe-Q4_K_M"), Backend::Cpu).unwrap();
    let hp = model.hparams().clone();
    let mut obs = RecordingObserver::all();
    let mut cache = model.new_cache(32);
    let prompt: Vec<u32> = (0..24).map(|i| 100 + 7 * i).collect();
    model
        .forward(&prompt, &mut cache, &mut obs, Logits::Last)
        .unwrap();
    let mut distinct_sets = std::collections::BTreeSet::new();
    for l in 0..hp.n_layer {
        let logits = captured(&obs, l, Stage::MoeRouterLogits);
        let ids = captured(&obs, l, Stage::MoeTopkIds);
        let weights = captured(&obs, l, Stage::MoeTopkWeights);
        let k = hp.n_expert_used;
        for t in 0..prompt.len() {
            let row = &logits.data[t * hp.n_expert..(t + 1) * hp.n_expert];
            let max = row
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, |m, v| m.max(f64::from(v)));
            let exp: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
            let total: f64 = exp.iter().sum();
            let probs: Vec<f64> = exp.iter().map(|e| e / total).collect();
            let mut order: Vec<usize> = (0..hp.n_expert).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let chosen: Vec<usize> = ids.data[t * k..(t + 1) * k]
                .iter()
                .map(|&v| v as usize)
                .collect();
            assert_eq!(
                chosen,
                order[..k],
                "layer {l} token {t}: ids are the top-{k}"
            );
            let w = &weights.data[t * k..(t + 1) * k];
            let sum: f64 = w.iter().map(|&v| f64::from(v)).sum();
            assert!(
                (sum - 1.0).abs() <= 1e-6,
                "layer {l} token {t}: weights sum to {sum}"
            );
            let chosen_mass: f64 = chosen.iter().map(|&e| probs[e]).sum();
            for (slot, &e) in chosen.iter().enumerate() {
                let want = probs[e] / chosen_mass;
                assert!(
                    (f64::from(w[slot]) - want).abs() <= 1e-6,
                    "layer {l} token {t} slot {slot}"
                );
            }
            distinct_sets.insert(chosen);
        }
    }
    assert!(
        distinct_sets.len() > 4,
        "routing uses several expert sets: {distinct_sets:?}"
    );
}

#[test]
fn a_qwen3moe_file_read_as_dense_names_the_mismatch() {
    // Rewrite the fixture's architecture to the dense qwen3 and load it: the error must say
    // what the architecture expected and that the file holds expert tensors.
    use apr_engine::gguf::{GgufFile, GgufValue, GgufWriter};
    let moe = GgufFile::open(fixture("qwen3moe-Q4_K_M")).unwrap();
    let mut w = GgufWriter::new();
    for (key, value) in moe.metadata() {
        let key = key.replacen("qwen3moe.", "qwen3.", 1);
        let value = if key == "general.architecture" {
            GgufValue::String("qwen3".into())
        } else {
            value.clone()
        };
        w.add_kv(key, value).unwrap();
    }
    for t in moe.tensors() {
        w.add_tensor(
            t.name.clone(),
            t.ggml_type,
            &t.ne,
            moe.tensor_data(t).to_vec(),
        )
        .unwrap();
    }
    let dense = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let err = Model::from_file(dense, Backend::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("architecture 'qwen3' expects tensor 'blk.0.ffn_gate.weight'"),
        "{err}"
    );
    assert!(err.contains("mixture-of-experts tensors"), "{err}");
}
