//! Dequantization parity: our values equal the external oracle's bit for bit.
//!
//! `tests/data/quant/` holds blocks that llama.cpp quantized from random data (plus hand-made
//! adversarial blocks) and the f32 values gguf-py's `gguf.quants.dequantize` made of them
//! (ggml's `dequantize_row_q8_K` for Q8_K, which gguf-py lacks). Nothing in it comes from this
//! crate; `tools/quant_ref/gen.py` regenerates it (docs/quant.md).

use std::path::PathBuf;

use apr_engine::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0,
};
use apr_engine::quant::{self, dequantize, GgmlType, QuantError};
use bytemuck::{Pod, Zeroable};
use serde_json::Value;

/// Every type the parity contract covers (issue 2 and DESIGN §3).
const COVERED: [GgmlType; 14] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q8K,
];

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant")
}

/// One data set: its type, its block bytes and the oracle's f32 values.
struct Case {
    name: String,
    ty: GgmlType,
    bytes: Vec<u8>,
    expected: Vec<f32>,
}

fn cases() -> Vec<Case> {
    let dir = data_dir();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json")).expect("read tests/data/quant/manifest.json"),
    )
    .expect("manifest.json is JSON");
    let entries = manifest["entries"]
        .as_array()
        .expect("manifest has entries");
    entries
        .iter()
        .map(|e| {
            let field = |k: &str| {
                e[k].as_str()
                    .unwrap_or_else(|| panic!("entry lacks {k}: {e}"))
            };
            let ty = GgmlType::from_name(field("type")).expect("known type name");
            let bytes = std::fs::read(dir.join(field("file"))).expect("read block file");
            let raw = std::fs::read(dir.join(field("reference"))).expect("read reference file");
            assert_eq!(raw.len() % 4, 0, "{} is not f32s", field("reference"));
            let expected: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(
                Some(expected.len() as u64),
                e["n_values"].as_u64(),
                "{}",
                field("file")
            );
            Case {
                name: field("file").to_owned(),
                ty,
                bytes,
                expected,
            }
        })
        .collect()
}

/// The first value whose bits differ, described for a failure message; `None` if all agree.
fn first_mismatch(case: &Case, found: &[f32]) -> Option<String> {
    assert_eq!(found.len(), case.expected.len());
    let n_diff = case
        .expected
        .iter()
        .zip(found)
        .filter(|(e, f)| e.to_bits() != f.to_bits())
        .count();
    let i = case
        .expected
        .iter()
        .zip(found)
        .position(|(e, f)| e.to_bits() != f.to_bits())?;
    let (e, f) = (case.expected[i], found[i]);
    Some(format!(
        "{} ({}): {n_diff} of {} values differ; first at index {i} (block {}, element {}): \
         expected {e:e} ({:#010x}), found {f:e} ({:#010x})",
        case.name,
        case.ty,
        found.len(),
        i / case.ty.block_size(),
        i % case.ty.block_size(),
        e.to_bits(),
        f.to_bits(),
    ))
}

#[test]
fn every_covered_type_has_random_and_adversarial_reference_data() {
    let cases = cases();
    for ty in COVERED {
        let of_type: Vec<&Case> = cases.iter().filter(|c| c.ty == ty).collect();
        assert!(
            of_type.iter().any(|c| !c.name.contains(".adv.")),
            "{ty}: no quantized-random reference data"
        );
        if ty != GgmlType::F32 {
            assert!(
                of_type.iter().any(|c| c.name.contains(".adv.")),
                "{ty}: no adversarial reference data"
            );
        }
        // A reference of nothing but zeros would prove little.
        assert!(
            of_type
                .iter()
                .all(|c| c.expected.iter().filter(|x| **x != 0.0).count() > c.expected.len() / 2),
            "{ty}: reference data is mostly zeros"
        );
    }
}

#[test]
fn dequantize_equals_the_oracle_bit_for_bit() {
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for case in cases() {
        let mut found = vec![f32::NAN; case.expected.len()];
        dequantize(case.ty, &case.bytes, &mut found)
            .unwrap_or_else(|e| panic!("{}: dequantize failed: {e}", case.name));
        failures.extend(first_mismatch(&case, &found));
        checked += found.len();

        // The same bytes at an odd address (as in a memory-mapped file) give the same bits.
        let mut shifted = vec![0u8; case.bytes.len() + 1];
        shifted[1..].copy_from_slice(&case.bytes);
        found.fill(f32::NAN);
        dequantize(case.ty, &shifted[1..], &mut found)
            .unwrap_or_else(|e| panic!("{} (unaligned): dequantize failed: {e}", case.name));
        failures.extend(first_mismatch(&case, &found).map(|m| format!("unaligned input: {m}")));
    }
    assert!(checked > 100_000, "only {checked} values checked");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Copies `bytes` into a properly aligned vector of blocks.
fn blocks_of<B: Pod + Zeroable>(bytes: &[u8]) -> Vec<B> {
    let mut v = vec![B::zeroed(); bytes.len() / std::mem::size_of::<B>()];
    bytemuck::cast_slice_mut::<B, u8>(&mut v).copy_from_slice(bytes);
    v
}

#[test]
fn per_type_block_functions_equal_the_oracle_bit_for_bit() {
    let mut failures = Vec::new();
    for case in cases() {
        let mut found = vec![f32::NAN; case.expected.len()];
        let b = &case.bytes;
        let out = &mut found;
        match case.ty {
            GgmlType::Q4_0 => quant::dequantize_q4_0(&blocks_of::<BlockQ4_0>(b), out),
            GgmlType::Q4_1 => quant::dequantize_q4_1(&blocks_of::<BlockQ4_1>(b), out),
            GgmlType::Q5_0 => quant::dequantize_q5_0(&blocks_of::<BlockQ5_0>(b), out),
            GgmlType::Q5_1 => quant::dequantize_q5_1(&blocks_of::<BlockQ5_1>(b), out),
            GgmlType::Q8_0 => quant::dequantize_q8_0(&blocks_of::<BlockQ8_0>(b), out),
            GgmlType::Q2K => quant::dequantize_q2_k(&blocks_of::<BlockQ2K>(b), out),
            GgmlType::Q3K => quant::dequantize_q3_k(&blocks_of::<BlockQ3K>(b), out),
            GgmlType::Q4K => quant::dequantize_q4_k(&blocks_of::<BlockQ4K>(b), out),
            GgmlType::Q5K => quant::dequantize_q5_k(&blocks_of::<BlockQ5K>(b), out),
            GgmlType::Q6K => quant::dequantize_q6_k(&blocks_of::<BlockQ6K>(b), out),
            GgmlType::Q8K => quant::dequantize_q8_k(&blocks_of::<BlockQ8K>(b), out),
            GgmlType::F16 => quant::dequantize_f16(&blocks_of::<half::f16>(b), out),
            GgmlType::BF16 => quant::dequantize_bf16(&blocks_of::<half::bf16>(b), out),
            GgmlType::F32 | GgmlType::Q8_1 => continue,
        }
        failures.extend(first_mismatch(&case, &found));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn ragged_input_is_a_typed_error() {
    let mut out = vec![0f32; 256];
    let err = dequantize(GgmlType::Q4K, &[0u8; 145], &mut out).unwrap_err();
    assert_eq!(
        err,
        QuantError::RaggedInput {
            ty: GgmlType::Q4K,
            len: 145,
            block_bytes: 144
        }
    );
    assert!(err.to_string().contains("145"), "{err}");
    let err = dequantize(GgmlType::F16, &[0u8; 3], &mut out[..1]).unwrap_err();
    assert!(
        matches!(err, QuantError::RaggedInput { len: 3, .. }),
        "{err}"
    );
}

#[test]
fn output_length_mismatch_is_a_typed_error() {
    // Two Q8_0 blocks encode 64 values.
    for found in [63usize, 65, 0] {
        let mut out = vec![0f32; found];
        let err = dequantize(GgmlType::Q8_0, &[0u8; 68], &mut out).unwrap_err();
        assert_eq!(
            err,
            QuantError::OutputLength {
                ty: GgmlType::Q8_0,
                expected: 64,
                found
            }
        );
    }
    // Nothing was written on error.
    let mut out = vec![7.0f32; 255];
    assert!(dequantize(GgmlType::Q6K, &[1u8; 210], &mut out).is_err());
    assert!(out.iter().all(|&x| x == 7.0));
}

#[test]
fn empty_input_is_fine_and_q8_1_is_unsupported() {
    assert_eq!(dequantize(GgmlType::Q4_0, &[], &mut []), Ok(()));
    let mut out = vec![0f32; 32];
    assert_eq!(
        dequantize(GgmlType::Q8_1, &[0u8; 36], &mut out),
        Err(QuantError::Unsupported { ty: GgmlType::Q8_1 })
    );
}
