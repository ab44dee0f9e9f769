//! GGUF metadata in the JSON encoding of the reference dumps (tools/gguf_ref/make_fixtures.py,
//! tools/apr_ref/dump_roundtrip.py): floats as IEEE bit patterns, arrays with their element
//! type. Shared by the tests that compare our reader with gguf-py's.

use std::path::Path;

use apr_engine::gguf::{GgufArray, GgufValue};
use serde_json::{json, Value};

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

pub fn value_json(v: &GgufValue) -> Value {
    match v {
        GgufValue::U8(x) => json!(x),
        GgufValue::I8(x) => json!(x),
        GgufValue::U16(x) => json!(x),
        GgufValue::I16(x) => json!(x),
        GgufValue::U32(x) => json!(x),
        GgufValue::I32(x) => json!(x),
        GgufValue::F32(x) => json!(x.to_bits()),
        GgufValue::Bool(x) => json!(x),
        GgufValue::String(x) => json!(x),
        GgufValue::Array(a) => array_json(a),
        GgufValue::U64(x) => json!(x),
        GgufValue::I64(x) => json!(x),
        GgufValue::F64(x) => json!(x.to_bits()),
    }
}

fn array_json(a: &GgufArray) -> Value {
    let items: Vec<Value> = (0..a.len())
        .map(|i| value_json(&a.get(i).expect("index in range")))
        .collect();
    json!({ "element_type": a.element_type().name(), "items": items })
}

pub fn metadata_json(meta: &[(String, GgufValue)]) -> Value {
    meta.iter()
        .map(|(k, v)| json!({ "key": k, "type": v.value_type().name(), "value": value_json(v) }))
        .collect()
}
