//! What `apr inspect` prints: a GGUF file's metadata and tensor table, as text or JSON.
//!
//! Long arrays (tokenizer vocabularies) and long strings (chat templates) are summarised:
//! type, length and the first few items.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::{GgufArray, GgufFile, GgufValue};

/// Arrays longer than this are summarised.
pub const ARRAY_SUMMARY_LEN: usize = 8;
/// Items shown from a summarised array.
pub const ARRAY_HEAD: usize = 5;
/// Characters shown from a string value in the text view.
pub const STRING_PREVIEW_CHARS: usize = 80;

/// The JSON document `apr inspect --json` prints.
pub fn to_json(f: &GgufFile) -> Value {
    let metadata: Vec<Value> = f
        .metadata()
        .iter()
        .map(|(k, v)| {
            let mut o = json!({ "key": k, "type": v.type_description() });
            match v {
                GgufValue::Array(a) => {
                    o["len"] = json!(a.len());
                    if a.len() > ARRAY_SUMMARY_LEN {
                        o["head"] = json!(head(a, ARRAY_HEAD));
                        o["truncated"] = json!(true);
                    } else {
                        o["value"] = json!(a);
                    }
                }
                other => o["value"] = json!(other),
            }
            o
        })
        .collect();
    let tensors: Vec<Value> = f
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ggml_type.name(),
                "ne": t.ne,
                "n_elements": t.n_elements,
                "bytes": t.n_bytes,
                "offset": t.offset,
                "file_offset": t.file_offset,
            })
        })
        .collect();
    json!({
        "file": f.origin(),
        "version": f.version(),
        "alignment": f.alignment(),
        "data_offset": f.data_offset(),
        "file_size": f.bytes().len(),
        "metadata": metadata,
        "tensors": tensors,
    })
}

fn head(a: &GgufArray, n: usize) -> Vec<GgufValue> {
    (0..a.len().min(n)).filter_map(|i| a.get(i)).collect()
}

/// The text table `apr inspect` prints.
pub fn to_text(f: &GgufFile) -> String {
    let mut s = String::new();
    let total: u64 = f.tensors().iter().map(|t| t.n_bytes).sum();
    let _ = writeln!(s, "file: {}", f.origin());
    let _ = writeln!(
        s,
        "GGUF v{}, alignment {}, data offset {}, {} bytes, {} metadata entries, {} tensors ({} bytes of tensor data)",
        f.version(),
        f.alignment(),
        f.data_offset(),
        f.bytes().len(),
        f.metadata().len(),
        f.tensors().len(),
        total
    );
    let _ = writeln!(s, "\nmetadata:");
    let kw = f.metadata().iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let tw = f
        .metadata()
        .iter()
        .map(|(_, v)| v.type_description().len())
        .max()
        .unwrap_or(0);
    for (k, v) in f.metadata() {
        let _ = writeln!(
            s,
            "  {k:<kw$}  {:<tw$}  {}",
            v.type_description(),
            value_text(v)
        );
    }
    let _ = writeln!(s, "\ntensors:");
    let rows: Vec<[String; 5]> = f
        .tensors()
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                t.ggml_type.name().to_string(),
                format!("{:?}", t.ne),
                t.n_bytes.to_string(),
                t.offset.to_string(),
            ]
        })
        .collect();
    let header = ["name", "type", "shape (ne)", "bytes", "offset"];
    let mut w = header.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |s: &mut String, r: [&str; 5]| {
        let _ = writeln!(
            s,
            "  {:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4]
        );
    };
    line(&mut s, header);
    for r in &rows {
        line(&mut s, [&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    s
}

fn value_text(v: &GgufValue) -> String {
    match v {
        GgufValue::String(x) => string_preview(x),
        GgufValue::Array(a) => array_text(a),
        other => scalar_text(other),
    }
}

fn scalar_text(v: &GgufValue) -> String {
    match v {
        GgufValue::U8(x) => x.to_string(),
        GgufValue::I8(x) => x.to_string(),
        GgufValue::U16(x) => x.to_string(),
        GgufValue::I16(x) => x.to_string(),
        GgufValue::U32(x) => x.to_string(),
        GgufValue::I32(x) => x.to_string(),
        GgufValue::F32(x) => format!("{x:?}"),
        GgufValue::Bool(x) => x.to_string(),
        GgufValue::String(x) => string_preview(x),
        GgufValue::Array(a) => array_text(a),
        GgufValue::U64(x) => x.to_string(),
        GgufValue::I64(x) => x.to_string(),
        GgufValue::F64(x) => format!("{x:?}"),
    }
}

fn string_preview(x: &str) -> String {
    let n = x.chars().count();
    if n <= STRING_PREVIEW_CHARS {
        format!("{x:?}")
    } else {
        let cut: String = x.chars().take(STRING_PREVIEW_CHARS).collect();
        format!("{cut:?}… ({n} chars)")
    }
}

fn array_text(a: &GgufArray) -> String {
    let shown = if a.len() > ARRAY_SUMMARY_LEN {
        ARRAY_HEAD
    } else {
        a.len()
    };
    let items: Vec<String> = head(a, shown).iter().map(scalar_text).collect();
    if shown < a.len() {
        format!("[{}, …] ({} items)", items.join(", "), a.len())
    } else {
        format!("[{}]", items.join(", "))
    }
}
