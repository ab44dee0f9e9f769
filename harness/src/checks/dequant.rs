//! `dequant_parity`: our dequantization of blocks llama.cpp quantized gives the external
//! oracle's f32 values bit for bit: gguf-py's `gguf.quants.dequantize` (ggml's
//! `dequantize_row_q8_K` for Q8_K, which gguf-py lacks). Blocks and oracle values are
//! committed with a manifest (engine/tests/data/quant/, written by tools/quant_ref/gen.py;
//! nothing in it comes from this repository's code). The harness decodes every block of the
//! type with `apr_engine::quant::dequantize` in-process (no `apr` command decodes a bare
//! block file) and compares each value's f32 bit pattern with the oracle's.
//!
//! ```yaml
//! check:
//!   kind: dequant_parity
//!   manifest: engine/tests/data/quant/manifest.json
//!   type: Q4_K
//! ```

use std::path::Path;

use apr_engine::quant::{dequantize, GgmlType};
use serde::Deserialize;

use super::{Kind, Measurement, Outcome, ParamIssue, RunCx, ValidateCx};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DequantParity {
    /// The reference data's `manifest.json` (relative to the repository root); block and
    /// reference files are named relative to it.
    pub manifest: String,
    /// A ggml type name (`Q4_K`, `BF16`, …): every manifest entry of this type is compared.
    #[serde(rename = "type")]
    pub ty: String,
}

pub static KIND: Kind = Kind {
    name: "dequant_parity",
    summary: "dequantized values bit-identical to committed gguf-py values",
    validate,
    run,
};

fn validate(params: &serde_yaml::Value, _cx: &ValidateCx) -> Vec<ParamIssue> {
    super::validate_typed::<DequantParity>("dequant_parity", params, |p| {
        let mut i = Vec::new();
        if p.manifest.is_empty() {
            i.push(ParamIssue::params("dequant_parity: empty manifest"));
        }
        if let Err(e) = parse_type(&p.ty) {
            i.push(e);
        }
        i
    })
}

/// The ggml type named `name`, if `dequantize` decodes it.
fn parse_type(name: &str) -> Result<GgmlType, ParamIssue> {
    let decodable: Vec<&str> = GgmlType::ALL
        .into_iter()
        .filter(|t| *t != GgmlType::Q8_1)
        .map(GgmlType::name)
        .collect();
    match GgmlType::from_name(name) {
        Some(t) if t != GgmlType::Q8_1 => Ok(t),
        _ => Err(ParamIssue::params(format!(
            "dequant_parity: type `{name}` is not one the engine dequantizes ({})",
            decodable.join(", ")
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct Manifest {
    entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    ty: String,
    /// Block bytes in ggml's layout.
    file: String,
    /// The oracle's values, little-endian f32.
    reference: String,
    n_values: usize,
    /// Who computed `reference` (e.g. `gguf-py gguf.quants.dequantize`).
    reference_by: String,
}

/// The first value whose f32 bit pattern differs from the oracle's.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub file: String,
    pub index: usize,
    pub expected_bits: u32,
    pub found_bits: u32,
}

/// How one block file compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    pub blocks: usize,
    pub values: usize,
    pub nonzero_reference: usize,
    pub differing: usize,
    pub first: Option<Difference>,
}

/// Decode `blocks` as `ty` and compare every value's bit pattern with `expected`.
pub fn compare(
    ty: GgmlType,
    file: &str,
    blocks: &[u8],
    expected: &[f32],
) -> Result<Compared, String> {
    let mut found = vec![f32::NAN; expected.len()];
    dequantize(ty, blocks, &mut found).map_err(|e| format!("{file}: {e}"))?;
    let mut differing = 0;
    let mut first = None;
    for (index, (e, f)) in expected.iter().zip(&found).enumerate() {
        if e.to_bits() != f.to_bits() {
            differing += 1;
            first.get_or_insert(Difference {
                file: file.to_string(),
                index,
                expected_bits: e.to_bits(),
                found_bits: f.to_bits(),
            });
        }
    }
    Ok(Compared {
        blocks: blocks.len() / ty.type_size(),
        values: expected.len(),
        nonzero_reference: expected.iter().filter(|v| **v != 0.0).count(),
        differing,
        first,
    })
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
}

fn f32s(name: &str, raw: &[u8]) -> Result<Vec<f32>, String> {
    if !raw.len().is_multiple_of(4) {
        return Err(format!(
            "{name}: {} bytes is not a whole number of f32 values",
            raw.len()
        ));
    }
    Ok(raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn run(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: DequantParity = super::typed("dequant_parity", params).map_err(|e| e.message)?;
    let ty = parse_type(&p.ty).map_err(|e| e.message)?;
    let path = cx.repo_root.join(&p.manifest);
    let dir = path.parent().unwrap_or(cx.repo_root);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let entries: Vec<&Entry> = manifest
        .entries
        .iter()
        .filter(|e| GgmlType::from_name(&e.ty) == Some(ty))
        .collect();
    let mut ms = Vec::new();
    let mut lines = Vec::new();
    let (mut blocks, mut values, mut nonzero) = (0, 0, 0);
    let mut first = None;
    for e in &entries {
        let expected = f32s(&e.reference, &read(dir, &e.reference)?)?;
        if expected.len() != e.n_values {
            return Err(format!(
                "{}: {} values, the manifest says {}",
                e.reference,
                expected.len(),
                e.n_values
            ));
        }
        let c = compare(ty, &e.file, &read(dir, &e.file)?, &expected)?;
        ms.push(Measurement::new(
            format!(
                "{}: values whose f32 bits differ from {}",
                e.file, e.reference
            ),
            "bit_exact",
            c.differing,
            0,
            c.differing == 0,
        ));
        lines.push(format!(
            "{}: {} blocks, {} values, {} differ (oracle: {})",
            e.file, c.blocks, c.values, c.differing, e.reference_by
        ));
        blocks += c.blocks;
        values += c.values;
        nonzero += c.nonzero_reference;
        if first.is_none() {
            first = c.first;
        }
    }
    ms.push(Measurement::new(
        "blocks compared",
        "count",
        blocks,
        "> 0",
        blocks > 0,
    ));
    // An oracle of mostly zeros would prove little (engine/tests/dequant_parity.rs holds
    // the reference data to the same bound).
    ms.push(Measurement::new(
        "nonzero reference values",
        "count",
        nonzero,
        format!("> {}", values / 2),
        nonzero > values / 2,
    ));
    let first_json = first.as_ref().map(|d| {
        serde_json::json!({
            "file": d.file,
            "index": d.index,
            "block": d.index / ty.block_size(),
            "element": d.index % ty.block_size(),
            "expected_bits": format!("{:#010x}", d.expected_bits),
            "found_bits": format!("{:#010x}", d.found_bits),
        })
    });
    ms.push(Measurement::new(
        "first differing value",
        "absent",
        &first_json,
        serde_json::Value::Null,
        first.is_none(),
    ));
    let mut measured = format!(
        "{ty}: {} block file(s) of {}, {blocks} blocks, {values} values compared bit for bit",
        entries.len(),
        p.manifest
    );
    if let Some(d) = &first {
        measured.push_str(&format!(
            "; first difference in {} at index {} (block {}, element {}): oracle {:e} ({:#010x}), ours {:e} ({:#010x})",
            d.file,
            d.index,
            d.index / ty.block_size(),
            d.index % ty.block_size(),
            f32::from_bits(d.expected_bits),
            d.expected_bits,
            f32::from_bits(d.found_bits),
            d.found_bits
        ));
    }
    for l in lines {
        measured.push_str(&format!("\n{l}"));
    }
    Ok(Outcome {
        passed: ms.iter().all(|m| m.ok),
        measured,
        measurements: ms,
        ..Outcome::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_resolve_and_q8_1_is_refused() {
        assert_eq!(parse_type("Q4_K").unwrap(), GgmlType::Q4K);
        assert_eq!(parse_type("bf16").unwrap(), GgmlType::BF16);
        for bad in ["Q8_1", "Q4K", ""] {
            let e = parse_type(bad).unwrap_err();
            assert!(e.message.contains(&format!("`{bad}`")), "{}", e.message);
            assert!(e.message.contains("Q6_K"), "{}", e.message);
        }
    }

    #[test]
    fn one_flipped_bit_is_found_with_its_index_and_both_patterns() {
        // One Q8_0 block: d = 1.0 (f16 0x3c00), quants 0..32.
        let mut block = vec![0x00, 0x3c];
        block.extend(0u8..32);
        let mut expected: Vec<f32> = (0..32).map(|q| q as f32).collect();
        let ok = compare(GgmlType::Q8_0, "b.bin", &block, &expected).unwrap();
        assert_eq!((ok.blocks, ok.values, ok.differing), (1, 32, 0));
        assert_eq!(ok.first, None);
        expected[5] = f32::from_bits(expected[5].to_bits() ^ 1);
        let bad = compare(GgmlType::Q8_0, "b.bin", &block, &expected).unwrap();
        assert_eq!(bad.differing, 1);
        assert_eq!(
            bad.first,
            Some(Difference {
                file: "b.bin".into(),
                index: 5,
                expected_bits: 5f32.to_bits() ^ 1,
                found_bits: 5f32.to_bits(),
            })
        );
    }

    #[test]
    fn a_reference_of_the_wrong_length_is_an_error() {
        let e = compare(GgmlType::Q8_0, "b.bin", &[0u8; 34], &[0.0; 31]).unwrap_err();
        assert!(e.starts_with("b.bin: ") && e.contains("31"), "{e}");
    }
}
