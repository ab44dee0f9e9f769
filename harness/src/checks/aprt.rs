//! `aprt_format`: the capture files `apr trace --save-tensor` writes follow docs/aprt.md,
//! and `apr diff` reads the anchor's 12-byte layout and preserves NaN payload bits.
//!
//! - Header: magic `APRT`, format word `0x8000_0001`, dtype 0 (f32), layer
//!   (`0xFFFF_FFFF` for whole-model stages) matching the path, positions and features > 0,
//!   the stage name equal to the file name, zero padding to 4 bytes, and a file length of
//!   exactly header + 4 · positions · features.
//! - `legacy_layout: true`: each captured tensor rewritten in the 12-byte layout
//!   (`APRT`, u32 layer, u32 count, f32 LE) diffs bit-identical against ours.
//! - `nan_bits: true`: two files equal except for one NaN payload bit must differ by exactly
//!   one bit pattern under `apr diff --values` (a reader that canonicalises NaN sees none).

use std::path::Path;

use serde::Deserialize;

use super::engine::{self, Capture};
use super::{check_stages, Kind, Measurement, Outcome, ParamIssue, RunCx, ValidateCx};

const DEFAULT_PROMPT: &str = "The capital of France is";
const MAGIC: &[u8; 4] = b"APRT";
const FORMAT_V1: u32 = 0x8000_0001;
const WHOLE_MODEL: u32 = 0xFFFF_FFFF;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AprtFormat {
    pub stages: Vec<String>,
    #[serde(default)]
    pub layers: Vec<u32>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub legacy_layout: bool,
    #[serde(default)]
    pub nan_bits: bool,
}

pub static KIND: Kind = Kind {
    name: "aprt_format",
    summary: "APRT capture header self-describing and parseable; NaN bits and legacy layout",
    validate,
    run,
};

fn validate(params: &serde_yaml::Value, cx: &ValidateCx) -> Vec<ParamIssue> {
    super::validate_typed::<AprtFormat>("aprt_format", params, |p| {
        let mut i = check_stages(&p.stages, true);
        if p.stages.is_empty() {
            i.push(ParamIssue::params("aprt_format: stages is empty"));
        }
        if cx.requires_model.is_none() {
            i.push(ParamIssue::params(
                "aprt_format: needs requires.model (the capture is made from it)",
            ));
        }
        i
    })
}

/// A parsed header (ours, version 1).
#[derive(Debug)]
struct Header {
    layer: u32,
    positions: u64,
    features: u64,
    stage: String,
    data_offset: usize,
}

fn parse(bytes: &[u8]) -> Result<Header, String> {
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("truncated header")
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or("truncated header")
    };
    if bytes.get(..4) != Some(MAGIC.as_slice()) {
        return Err("magic is not APRT".into());
    }
    let format = u32_at(4)?;
    if format != FORMAT_V1 {
        return Err(format!(
            "format word {format:#010x}, expected {FORMAT_V1:#010x}"
        ));
    }
    let dtype = u32_at(8)?;
    if dtype != 0 {
        return Err(format!("dtype {dtype}, expected 0 (f32)"));
    }
    let layer = u32_at(12)?;
    let positions = u64_at(16)?;
    let features = u64_at(24)?;
    let stage_len = u32_at(32)? as usize;
    if !(1..=64).contains(&stage_len) {
        return Err(format!("stage_len {stage_len} outside 1..=64"));
    }
    let stage = bytes
        .get(36..36 + stage_len)
        .ok_or("truncated stage name")?;
    let stage = String::from_utf8(stage.to_vec()).map_err(|_| "stage name is not UTF-8")?;
    let data_offset = (36 + stage_len).next_multiple_of(4);
    if bytes
        .get(36 + stage_len..data_offset)
        .is_none_or(|pad| pad.iter().any(|b| *b != 0))
    {
        return Err("padding missing or not zero".into());
    }
    if positions == 0 || features == 0 {
        return Err(format!(
            "shape [{positions}, {features}] has a zero dimension"
        ));
    }
    let want = positions
        .checked_mul(features)
        .and_then(|n| n.checked_mul(4))
        .and_then(|n| n.checked_add(data_offset as u64))
        .ok_or("shape overflows")?;
    if want != bytes.len() as u64 {
        return Err(format!("file is {} bytes, header says {want}", bytes.len()));
    }
    Ok(Header {
        layer,
        positions,
        features,
        stage,
        data_offset,
    })
}

fn write_legacy(path: &Path, h: &Header, bytes: &[u8]) -> Result<(), String> {
    let count = u32::try_from(h.positions * h.features)
        .map_err(|_| "too many values for the 12-byte layout")?;
    let mut out = Vec::with_capacity(12 + bytes.len() - h.data_offset);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&h.layer.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&bytes[h.data_offset..]);
    std::fs::write(path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `apr diff --values A B --json` → total differing bit patterns (None: not a report).
fn diff_bits(a: &Path, b: &Path) -> Result<u64, String> {
    let args: [&std::ffi::OsStr; 5] = [
        "diff".as_ref(),
        "--values".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
        "--json".as_ref(),
    ];
    let (code, out, err) = engine::apr_output(&args, &[])?;
    if !matches!(code, Some(0 | 1)) {
        return Err(format!(
            "apr diff {} {} failed (exit {code:?}): {}",
            a.display(),
            b.display(),
            err.trim_end()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("apr diff --json: {e}"))?;
    let m = v.get("metrics").unwrap_or(&v);
    m["differing_bits"]
        .as_u64()
        .ok_or_else(|| "apr diff --json has no differing_bits".to_string())
}

fn run(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: AprtFormat = super::typed("aprt_format", params).map_err(|e| e.message)?;
    let model = engine::resolve(&super::spec::RunSpec::default(), cx, "m")?;
    let dir = cx.scratch.join("cap");
    let simd = Capture {
        model: &model.path,
        prompt: p.prompt.as_deref().unwrap_or(DEFAULT_PROMPT),
        stages: &p.stages,
        layers: &p.layers,
        backend: &model.backend,
        threads: None,
    }
    .run(&dir)?;
    let files = engine::read_capture(&dir)?;
    let mut bad = Vec::new();
    let mut legacy_checked = 0usize;
    let mut legacy_bad = Vec::new();
    let legacy_dir = cx.scratch.join("legacy");
    for (rel, bytes) in &files {
        let (layer, stage) = engine::location(rel);
        match parse(bytes) {
            Err(e) => bad.push(format!("{rel}: {e}")),
            Ok(h) => {
                let want_layer = layer.unwrap_or(WHOLE_MODEL);
                if h.layer != want_layer {
                    bad.push(format!(
                        "{rel}: header layer {:#x}, path says {want_layer:#x}",
                        h.layer
                    ));
                }
                if h.stage != stage {
                    bad.push(format!(
                        "{rel}: header stage `{}`, file name says `{stage}`",
                        h.stage
                    ));
                }
                if p.legacy_layout {
                    let legacy = legacy_dir.join(rel);
                    std::fs::create_dir_all(legacy.parent().expect("has a parent"))
                        .map_err(|e| e.to_string())?;
                    write_legacy(&legacy, &h, bytes)?;
                    match diff_bits(&dir.join(rel), &legacy) {
                        Ok(0) => {}
                        Ok(n) => legacy_bad.push(format!("{rel}: {n} values differ")),
                        Err(e) => legacy_bad.push(format!("{rel}: {e}")),
                    }
                    legacy_checked += 1;
                }
            }
        }
    }
    let mut ms = vec![
        Measurement::new(
            "capture files",
            "count",
            files.len(),
            "> 0",
            !files.is_empty(),
        ),
        Measurement::new(
            "files with header errors",
            "equals",
            bad.len(),
            0,
            bad.is_empty(),
        ),
    ];
    if p.legacy_layout {
        ms.push(Measurement::new(
            "12-byte-layout copies differing",
            "equals",
            legacy_bad.len(),
            0,
            legacy_bad.is_empty() && legacy_checked > 0,
        ));
    }
    let mut nan_note = String::new();
    if p.nan_bits {
        // one position, two features: two NaNs with distinct payloads; b flips one payload bit
        let make = |second: u32| {
            let mut v = Vec::new();
            v.extend_from_slice(MAGIC);
            v.extend_from_slice(&FORMAT_V1.to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&1u64.to_le_bytes());
            v.extend_from_slice(&2u64.to_le_bytes());
            v.extend_from_slice(&8u32.to_le_bytes());
            v.extend_from_slice(b"ffn_gate");
            v.extend_from_slice(&0x7fc0_0001u32.to_le_bytes());
            v.extend_from_slice(&second.to_le_bytes());
            v
        };
        let (a, b) = (cx.scratch.join("nan-a.bin"), cx.scratch.join("nan-b.bin"));
        std::fs::write(&a, make(0xffa0_0000)).map_err(|e| e.to_string())?;
        std::fs::write(&b, make(0xffa0_0001)).map_err(|e| e.to_string())?;
        let n = diff_bits(&a, &b)?;
        nan_note = format!(
            "; NaN payloads 0xffa00000 vs 0xffa00001 differ in {n} value(s) under apr diff"
        );
        ms.push(Measurement::new(
            "NaN payload difference seen",
            "equals",
            n,
            1,
            n == 1,
        ));
    }
    let passed = ms.iter().all(|m| m.ok);
    let mut measured = format!(
        "{} capture files of {} parsed against docs/aprt.md: {} with errors",
        files.len(),
        model.model,
        bad.len()
    );
    if p.legacy_layout {
        measured.push_str(&format!(
            "; {legacy_checked} rewritten in the 12-byte layout, {} differ",
            legacy_bad.len()
        ));
    }
    measured.push_str(&nan_note);
    for e in bad.iter().chain(&legacy_bad).take(8) {
        measured.push_str(&format!("\n{e}"));
    }
    Ok(Outcome {
        passed,
        measured,
        measurements: ms,
        backend: Some(model.backend),
        simd,
        ..Outcome::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/aprt.md's example: layer-3/attn_norm.bin, shape [1, 2], values 1.0, −2.0.
    fn example() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&FORMAT_V1.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
        v.extend_from_slice(&2u64.to_le_bytes());
        v.extend_from_slice(&9u32.to_le_bytes());
        v.extend_from_slice(b"attn_norm\0\0\0");
        v.extend_from_slice(&1.0f32.to_le_bytes());
        v.extend_from_slice(&(-2.0f32).to_le_bytes());
        v
    }

    #[test]
    fn parses_the_documented_example() {
        let b = example();
        assert_eq!(b.len(), 56);
        let h = parse(&b).unwrap();
        assert_eq!(
            (
                h.layer,
                h.positions,
                h.features,
                h.stage.as_str(),
                h.data_offset
            ),
            (3, 1, 2, "attn_norm", 48)
        );
    }

    #[test]
    fn rejects_corruptions() {
        let mut short = example();
        short.pop();
        assert!(parse(&short).unwrap_err().contains("header says"));
        let mut magic = example();
        magic[0] = b'X';
        assert!(parse(&magic).is_err());
        let mut pad = example();
        pad[45] = 1;
        assert!(parse(&pad).unwrap_err().contains("padding"));
        let mut dtype = example();
        dtype[8] = 1;
        assert!(parse(&dtype).unwrap_err().contains("dtype"));
    }
}
