//! `weights_identical`: two model files (e.g. a GGUF and its `apr convert` output) hold the
//! same tensors — names, types, shapes — with byte-identical data. The tensor table comes
//! from `apr inspect --json` (name, type, ne, file_offset, bytes); the harness then reads
//! each tensor's byte range from both files itself, so it does not trust the engine to
//! compare what it wrote.
//!
//! ```yaml
//! check:
//!   kind: weights_identical
//!   a: {format: gguf}
//!   b: {format: apr}
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

use super::engine;
use super::spec::{check_run, RunSpec};
use super::{Kind, Measurement, Outcome, ParamIssue, RunCx, ValidateCx};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsIdentical {
    pub a: RunSpec,
    pub b: RunSpec,
}

pub static KIND: Kind = Kind {
    name: "weights_identical",
    summary: "every tensor's bytes identical between two model files (e.g. APR and GGUF)",
    validate,
    run,
};

fn validate(params: &serde_yaml::Value, cx: &ValidateCx) -> Vec<ParamIssue> {
    super::validate_typed::<WeightsIdentical>("weights_identical", params, |p| {
        let mut i = Vec::new();
        check_run(&p.a, "weights_identical.a", cx, &mut i);
        check_run(&p.b, "weights_identical.b", cx, &mut i);
        i
    })
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Tensor {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    ne: Vec<u64>,
    file_offset: u64,
    bytes: u64,
}

#[derive(Debug, Deserialize)]
struct Inspect {
    tensors: Vec<Tensor>,
}

fn table(path: &Path) -> Result<BTreeMap<String, Tensor>, String> {
    let out = engine::apr(
        &["inspect".as_ref(), path.as_os_str(), "--json".as_ref()],
        &[],
    )?;
    let t: Inspect = serde_json::from_str(&out)
        .map_err(|e| format!("apr inspect --json on {}: {e}", path.display()))?;
    Ok(t.tensors.into_iter().map(|t| (t.name.clone(), t)).collect())
}

fn read_range(f: &mut std::fs::File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

fn run(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: WeightsIdentical = super::typed("weights_identical", params).map_err(|e| e.message)?;
    let a = engine::resolve(&p.a, cx, "a")?;
    let b = engine::resolve(&p.b, cx, "b")?;
    let (ta, tb) = (table(&a.path)?, table(&b.path)?);
    let open = |p: &Path| std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let (mut fa, mut fb) = (open(&a.path)?, open(&b.path)?);
    let mut one_sided: Vec<String> = ta
        .keys()
        .filter(|k| !tb.contains_key(*k))
        .map(|k| format!("{k} only in a"))
        .collect();
    one_sided.extend(
        tb.keys()
            .filter(|k| !ta.contains_key(*k))
            .map(|k| format!("{k} only in b")),
    );
    let mut header_diff = Vec::new();
    let mut byte_diff = Vec::new();
    let mut total = 0u64;
    for (name, x) in &ta {
        let Some(y) = tb.get(name) else { continue };
        if (x.ty.as_str(), &x.ne, x.bytes) != (y.ty.as_str(), &y.ne, y.bytes) {
            header_diff.push(format!(
                "{name}: {} {:?} {}B vs {} {:?} {}B",
                x.ty, x.ne, x.bytes, y.ty, y.ne, y.bytes
            ));
            continue;
        }
        let ra = read_range(&mut fa, x.file_offset, x.bytes)
            .map_err(|e| format!("{} {name}: {e}", a.path.display()))?;
        let rb = read_range(&mut fb, y.file_offset, y.bytes)
            .map_err(|e| format!("{} {name}: {e}", b.path.display()))?;
        total += x.bytes;
        if ra != rb {
            let first = ra.iter().zip(&rb).position(|(p, q)| p != q).unwrap_or(0);
            byte_diff.push(format!("{name}: first differing byte at {first}"));
        }
    }
    let ms = vec![
        Measurement::new("tensors in a", "count", ta.len(), "> 0", !ta.is_empty()),
        Measurement::new(
            "tensors on one side only",
            "equals",
            one_sided.len(),
            0,
            one_sided.is_empty(),
        ),
        Measurement::new(
            "tensors with different type/shape/size",
            "equals",
            header_diff.len(),
            0,
            header_diff.is_empty(),
        ),
        Measurement::new(
            "tensors with different bytes",
            "equals",
            byte_diff.len(),
            0,
            byte_diff.is_empty(),
        ),
    ];
    let passed = ms.iter().all(|m| m.ok);
    let mut measured = format!(
        "{} ({}) vs {} ({}): {} tensors, {total} data bytes compared; {} one-sided, {} differ in type/shape, {} differ in bytes",
        a.model,
        a.path.extension().and_then(|e| e.to_str()).unwrap_or("?"),
        b.model,
        b.path.extension().and_then(|e| e.to_str()).unwrap_or("?"),
        ta.len(),
        one_sided.len(),
        header_diff.len(),
        byte_diff.len()
    );
    for line in one_sided
        .iter()
        .chain(&header_diff)
        .chain(&byte_diff)
        .take(8)
    {
        measured.push_str(&format!("\n{line}"));
    }
    Ok(Outcome {
        passed,
        measured,
        measurements: ms,
        ..Outcome::default()
    })
}
