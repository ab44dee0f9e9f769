//! `apr bisect` finds injected faults exactly, raises no false alarm between the fast and
//! the reference backend, and the fast backend is bit-identical across thread counts and
//! between the GGUF and APR copies of one model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apr_engine::apr::to_apr_bytes;
use apr_engine::gguf::{GgufFile, GgufWriter};
use apr_engine::model::{Backend, Model};
use apr_engine::model_file::ModelFile;
use apr_engine::probe::bisect::{bisect, Criterion, DEFAULT_NMSE};
use apr_engine::probe::{RunSource, RunSpec};
use apr_engine::trace::capture::{Captured, TensorKey};
use apr_engine::trace::Stage;

fn fixture(stem: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/models/{stem}.gguf"))
}

const PROMPT: [u32; 12] = [1, 300, 301, 302, 303, 320, 340, 360, 380, 400, 420, 440];

fn spec(path: &Path, backend: Backend, threads: Option<usize>) -> RunSpec {
    RunSpec {
        source: RunSource::Model(path.to_owned()),
        backend,
        threads,
    }
}

fn capture(s: &RunSpec) -> BTreeMap<TensorKey, Captured> {
    let model = s.load().unwrap();
    s.capture(model.as_ref(), &PROMPT).unwrap()
}

const FIXTURES: [&str; 14] = [
    "llama-F32",
    "llama-Q2_K",
    "llama-Q4_0",
    "llama-Q4_1",
    "llama-Q5_0",
    "llama-Q5_1",
    "qwen2-F16",
    "qwen2-Q3_K_M",
    "qwen2-Q8_0",
    "qwen3-BF16",
    "qwen3-Q4_K_M",
    "qwen3-Q5_K_M",
    "qwen3-Q6_K",
    "qwen3moe-Q4_K_M",
];

#[test]
fn cpu_and_cpu_ref_agree_within_the_documented_tolerance_on_every_fixture() {
    for stem in FIXTURES {
        let path = fixture(stem);
        let a = capture(&spec(&path, Backend::Cpu, None));
        let b = capture(&spec(&path, Backend::CpuRef, None));
        let r = bisect(&a, &b, Criterion::Nmse(DEFAULT_NMSE));
        assert_eq!(r.first(), None, "{stem}: false alarm, forks {:?}", r.forks);
        let compared = r
            .rows
            .iter()
            .filter(|row| {
                row.comparison.diverged()
                    || matches!(
                        row.comparison,
                        apr_engine::probe::bisect::Comparison::Compared { .. }
                    )
            })
            .count();
        assert!(compared >= 40, "{stem}: only {compared} stages compared");
    }
}

#[test]
fn every_stage_is_bit_identical_across_thread_counts() {
    for stem in [
        "llama-Q4_0",
        "qwen2-Q8_0",
        "qwen3-Q4_K_M",
        "qwen3moe-Q4_K_M",
        "qwen3-BF16",
    ] {
        let path = fixture(stem);
        let one = capture(&spec(&path, Backend::Cpu, Some(1)));
        for threads in [2, 3, 8] {
            let other = capture(&spec(&path, Backend::Cpu, Some(threads)));
            let r = bisect(&one, &other, Criterion::Exact);
            assert_eq!(r.first(), None, "{stem}: 1 vs {threads} threads");
            assert_eq!(r.rows.len(), one.len());
        }
    }
}

/// A copy of a fixture as APR, with `perturb` applied to one tensor's bytes.
fn apr_copy(stem: &str, tensor: &str, perturb: impl Fn(&mut [u8])) -> PathBuf {
    let src = GgufFile::open(fixture(stem)).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        if k != "general.alignment" {
            w.add_kv(k.clone(), v.clone()).unwrap();
        }
    }
    let mut found = false;
    for t in src.tensors() {
        let mut data = src.tensor_data(t).to_vec();
        if t.name == tensor {
            perturb(&mut data);
            found = true;
        }
        w.add_tensor(t.name.clone(), t.ggml_type, &t.ne, data)
            .unwrap();
    }
    assert!(found, "{stem} has no {tensor}");
    let gguf = ModelFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let out = std::env::temp_dir().join(format!(
        "apr-bisect-{}-{stem}-{tensor}.apr",
        std::process::id()
    ));
    std::fs::write(&out, to_apr_bytes(&gguf).unwrap()).unwrap();
    out
}

fn first_divergence(stem: &str, perturbed: &Path) -> Option<(Option<usize>, Stage)> {
    let a = capture(&spec(&fixture(stem), Backend::Cpu, None));
    let b = capture(&spec(perturbed, Backend::Cpu, None));
    std::fs::remove_file(perturbed).unwrap();
    bisect(&a, &b, Criterion::Exact).first()
}

/// Scale the f16 `d` at the start of the block at `offset` (Q4_0, Q8_0, Q4_K and Q6_K keep
/// their first f16 at a block's start; Q6_K's is at its end).
fn scale_f16(data: &mut [u8], at: usize, factor: f32) {
    let d = half::f16::from_le_bytes([data[at], data[at + 1]]).to_f32() * factor;
    data[at..at + 2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
}

fn scale_f32(data: &mut [u8], index: usize, factor: f32) {
    let at = index * 4;
    let v = f32::from_le_bytes(data[at..at + 4].try_into().unwrap()) * factor;
    data[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn an_unperturbed_apr_copy_is_bit_identical_to_its_gguf_at_every_stage() {
    for stem in ["llama-Q4_0", "qwen3moe-Q4_K_M"] {
        let copy = apr_copy(stem, "output_norm.weight", |_| {});
        assert_eq!(first_divergence(stem, &copy), None, "{stem}");
    }
}

#[test]
fn bisect_names_the_layer_and_stage_of_each_injected_fault() {
    // One block of blk.3.ffn_gate (Q4_0: 18-byte blocks, f16 d first).
    let p = apr_copy("llama-Q4_0", "blk.3.ffn_gate.weight", |d| {
        scale_f16(d, 18 * 5, 3.0)
    });
    assert_eq!(
        first_divergence("llama-Q4_0", &p),
        Some((Some(3), Stage::FfnGate))
    );
    // blk.1.attn_q (Q8_0: 34-byte blocks): first used in layer 1's QKV projection.
    let p = apr_copy("qwen2-Q8_0", "blk.1.attn_q.weight", |d| {
        scale_f16(d, 34 * 9, -2.0)
    });
    assert_eq!(
        first_divergence("qwen2-Q8_0", &p),
        Some((Some(1), Stage::QkvMatmul))
    );
    // blk.2.attn_k_norm (F32 [head_dim]): first used by layer 2's K norm.
    let p = apr_copy("qwen3-Q4_K_M", "blk.2.attn_k_norm.weight", |d| {
        scale_f32(d, 7, 1.5)
    });
    assert_eq!(
        first_divergence("qwen3-Q4_K_M", &p),
        Some((Some(2), Stage::KNorm))
    );
    // A qwen3moe router row (F32 [n_embd] per expert): layer 1's router logits.
    let p = apr_copy("qwen3moe-Q4_K_M", "blk.1.ffn_gate_inp.weight", |d| {
        (256 * 3..256 * 4).for_each(|i| scale_f32(d, i, 0.5));
    });
    assert_eq!(
        first_divergence("qwen3moe-Q4_K_M", &p),
        Some((Some(1), Stage::MoeRouterLogits))
    );
    // One expert's ffn_down_exps in layer 2: the expert token 0 is routed to first.
    let model = Model::open(fixture("qwen3moe-Q4_K_M"), Backend::Cpu).unwrap();
    let caps = capture(&spec(&fixture("qwen3moe-Q4_K_M"), Backend::Cpu, None));
    let expert = caps[&TensorKey::new(Some(2), Stage::MoeTopkIds)].data[0] as usize;
    let down = model
        .file()
        .find_tensor("blk.2.ffn_down_exps.weight")
        .unwrap()
        .clone();
    let per_expert = down.n_bytes as usize / 8;
    let block = down.ggml_type.type_size();
    drop(model);
    let p = apr_copy("qwen3moe-Q4_K_M", "blk.2.ffn_down_exps.weight", |d| {
        // The block's f16 d sits at its start for Q4_K, Q5_K and Q8_0, at its end for Q6_K.
        let at = expert * per_expert + if block == 210 { 208 } else { 0 };
        scale_f16(d, at, 4.0);
    });
    assert_eq!(
        first_divergence("qwen3moe-Q4_K_M", &p),
        Some((Some(2), Stage::MoeOut))
    );
}
