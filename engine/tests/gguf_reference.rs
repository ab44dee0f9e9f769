//! Our GGUF reader and writer against the outside reference, gguf-py (llama.cpp's `gguf`
//! package, pinned in tools/gguf_ref/requirements.txt).
//!
//! (a) gguf-py wrote tests/data/gguf/reference/*.gguf and dumped what its reader sees to JSON;
//!     our reader must see identical metadata, tensor infos and tensor bytes.
//! (b) our writer wrote tests/data/gguf/writer/*.gguf (regenerate with APR_REGEN_FIXTURES=1, then
//!     `python tools/gguf_ref/make_fixtures.py ours`); the writer must still produce those exact
//!     bytes, and gguf-py's dump of them must match what we asked the writer to write.
//! (c) rewriting a gguf-py file with our writer reproduces it byte for byte.

#[path = "common/gguf_json.rs"]
mod gguf_json;

use std::path::PathBuf;

use apr_engine::gguf::{GgufArray, GgufError, GgufFile, GgufValue, GgufWriter};
use apr_engine::quant::GgmlType;
use gguf_json::{metadata_json, read_json};
use serde_json::{json, Value};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Our reading of `f` in the dump's shape, for the fields gguf-py reports.
fn our_dump(f: &GgufFile) -> Value {
    let tensors: Vec<Value> = f
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ggml_type.name(),
                "ne": t.ne,
                "n_elements": t.n_elements,
                "n_bytes": t.n_bytes,
                "offset": t.offset,
                "file_offset": t.file_offset,
                "data_hex": hex(f.tensor_data(t)),
            })
        })
        .collect();
    json!({
        "version": f.version(),
        "alignment": f.alignment(),
        "data_offset": f.data_offset(),
        "metadata": metadata_json(f.metadata()),
        "tensors": tensors,
    })
}

fn assert_same_as_gguf_py(ours: &Value, theirs: &Value, what: &str) {
    for field in ["version", "alignment", "data_offset"] {
        assert_eq!(ours[field], theirs[field], "{what}: {field}");
    }
    let (om, tm) = (ours["metadata"].as_array(), theirs["metadata"].as_array());
    let (om, tm) = (om.expect("ours"), tm.expect("gguf-py metadata"));
    assert_eq!(om.len(), tm.len(), "{what}: metadata count");
    for (o, t) in om.iter().zip(tm) {
        assert_eq!(o, t, "{what}: metadata entry");
    }
    let (ot, tt) = (ours["tensors"].as_array(), theirs["tensors"].as_array());
    let (ot, tt) = (ot.expect("ours"), tt.expect("gguf-py tensors"));
    assert_eq!(ot.len(), tt.len(), "{what}: tensor count");
    for (o, t) in ot.iter().zip(tt) {
        assert_eq!(o, t, "{what}: tensor");
    }
}

#[test]
fn reader_matches_gguf_py_on_files_gguf_py_wrote() {
    for name in ["gguf_py_all_types", "gguf_py_align64"] {
        let dir = data_dir().join("reference");
        let f = GgufFile::open(dir.join(format!("{name}.gguf"))).expect("reference parses");
        let theirs = read_json(&dir.join(format!("{name}.json")));
        assert_same_as_gguf_py(&our_dump(&f), &theirs, name);
    }
}

#[test]
fn reference_covers_every_value_type_nesting_and_several_tensor_types() {
    let f = GgufFile::open(data_dir().join("reference/gguf_py_all_types.gguf")).expect("parses");
    let mut seen: Vec<&str> = f
        .metadata()
        .iter()
        .flat_map(|(_, v)| {
            let mut names = vec![v.value_type().name()];
            if let GgufValue::Array(a) = v {
                names.push(a.element_type().name());
            }
            names
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 13, "{seen:?}");
    let types: std::collections::BTreeSet<_> =
        f.tensors().iter().map(|t| t.ggml_type.name()).collect();
    assert!(types.len() >= 6, "{types:?}");
    let g = GgufFile::open(data_dir().join("reference/gguf_py_align64.gguf")).expect("parses");
    assert_eq!(g.alignment(), 64);
    assert!(g.tensors().iter().all(|t| t.file_offset % 64 == 0));
}

#[test]
fn rewriting_gguf_py_files_reproduces_their_bytes() {
    for name in ["gguf_py_all_types", "gguf_py_align64"] {
        let path = data_dir().join(format!("reference/{name}.gguf"));
        let original = std::fs::read(&path).expect("reference");
        let f = GgufFile::from_bytes(original.clone()).expect("parses");
        let rewritten = GgufWriter::from_file(&f)
            .expect("copy")
            .to_bytes()
            .expect("write");
        assert!(
            rewritten == original,
            "{name}: our writer's bytes differ from gguf-py's"
        );
    }
}

#[test]
fn typed_accessors_return_values_or_name_key_and_type() {
    let path = data_dir().join("reference/gguf_py_all_types.gguf");
    let f = GgufFile::open(&path).expect("parses");
    assert_eq!(f.get_u8("test.u8").unwrap(), 200);
    assert_eq!(f.get_i8("test.i8").unwrap(), -100);
    assert_eq!(f.get_u16("test.u16").unwrap(), 60000);
    assert_eq!(f.get_i16("test.i16").unwrap(), -30000);
    assert_eq!(f.get_u32("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_i32("test.i32").unwrap(), -2_000_000_000);
    assert_eq!(f.get_f32("test.f32").unwrap(), 0.1f32);
    assert!(f.get_bool("test.bool_true").unwrap());
    assert_eq!(f.get_u64("test.u64").unwrap(), 18_000_000_000_000_000_000);
    assert_eq!(f.get_i64("test.i64").unwrap(), -9_000_000_000_000_000_000);
    assert_eq!(f.get_f64("test.f64").unwrap(), -1.0e300);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(f.get_str_array("test.arr_str").unwrap()[2], "ü");
    assert_eq!(
        f.get_i32_array("test.arr_i32").unwrap(),
        &[-1, 0, 1, i32::MAX]
    );
    assert_eq!(f.get_f64_array("test.arr_f64").unwrap()[2], 5e-324);
    assert_eq!(f.get_u64_array("test.arr_u64").unwrap()[1], u64::MAX);
    assert_eq!(f.get_uint_lenient("test.u16").unwrap(), 60000);
    let nested = f.get_array("test.nested_i32").unwrap();
    assert_eq!(
        nested,
        &GgufArray::Array(vec![
            GgufArray::I32(vec![1, 2]),
            GgufArray::I32(vec![3]),
            GgufArray::I32(vec![4, 5, 6]),
        ])
    );

    let file = path.display().to_string();
    let e = f.get_u32("test.string").unwrap_err();
    assert!(matches!(e, GgufError::WrongType { .. }));
    assert_eq!(
        e.to_string(),
        format!("{file}: metadata key \"test.string\" has type STRING, expected UINT32")
    );
    assert_eq!(
        f.get_str_array("test.arr_i32").unwrap_err().to_string(),
        format!(
            "{file}: metadata key \"test.arr_i32\" has type ARRAY[INT32], expected ARRAY[STRING]"
        )
    );
    assert_eq!(
        f.get_u32("qwen2.block_count").unwrap_err().to_string(),
        format!("{file}: metadata key \"qwen2.block_count\" not found")
    );
    assert_eq!(
        f.tensor("blk.0.ffn_up.weight").unwrap_err().to_string(),
        format!("{file}: tensor \"blk.0.ffn_up.weight\" not found")
    );
    let t = f.tensor("q4_k.matrix").unwrap();
    assert_eq!(
        (t.ggml_type, t.ne.as_slice(), t.n_bytes),
        (GgmlType::Q4K, &[256u64, 2][..], 288)
    );
    assert_eq!(f.tensor_bytes("q4_k.matrix").unwrap().len(), 288);
}

// ---------------------------------------------------------------------------------------------
// (b) Our writer, read back by gguf-py.

/// Deterministic bytes (a 64-bit LCG; no dependency on a crate's RNG stream).
fn lcg_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

struct Fixture {
    file: &'static str,
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<(String, GgmlType, Vec<u64>, Vec<u8>)>,
}

fn writer_fixtures() -> Vec<Fixture> {
    use GgufValue as V;
    let all_types: Vec<(String, GgufValue)> = vec![
        ("general.architecture", V::String("qwen3".into())),
        ("general.alignment", V::U32(64)),
        ("t.u8", V::U8(255)),
        ("t.i8", V::I8(-128)),
        ("t.u16", V::U16(65535)),
        ("t.i16", V::I16(-32768)),
        ("t.u32", V::U32(u32::MAX)),
        ("t.i32", V::I32(i32::MIN)),
        ("t.f32", V::F32(-1.5e-42)), // subnormal
        ("t.f32_nan", V::F32(f32::from_bits(0x7fc0_1234))),
        ("t.bool", V::Bool(true)),
        ("t.string", V::String("日本語 and \"quotes\"\n".into())),
        ("t.empty_string", V::String(String::new())),
        ("t.u64", V::U64(u64::MAX)),
        ("t.i64", V::I64(i64::MIN)),
        ("t.f64", V::F64(std::f64::consts::PI)),
        ("t.arr_u8", V::Array(GgufArray::U8(vec![1, 2, 3]))),
        ("t.arr_i8", V::Array(GgufArray::I8(vec![-1, 1]))),
        ("t.arr_u16", V::Array(GgufArray::U16(vec![7]))),
        ("t.arr_i16", V::Array(GgufArray::I16(vec![-7, 7]))),
        ("t.arr_u32", V::Array(GgufArray::U32(vec![0, u32::MAX]))),
        ("t.arr_i32", V::Array(GgufArray::I32(vec![i32::MIN, 0]))),
        (
            "t.arr_f32",
            V::Array(GgufArray::F32(vec![0.25, f32::INFINITY])),
        ),
        ("t.arr_bool", V::Array(GgufArray::Bool(vec![false, true]))),
        (
            "t.arr_str",
            V::Array(GgufArray::String(vec![
                "<|im_start|>".into(),
                "Ġthe".into(),
            ])),
        ),
        ("t.arr_u64", V::Array(GgufArray::U64(vec![u64::MAX]))),
        ("t.arr_i64", V::Array(GgufArray::I64(vec![i64::MAX, -1]))),
        ("t.arr_f64", V::Array(GgufArray::F64(vec![-0.0, 1e308]))),
        ("t.arr_empty", V::Array(GgufArray::U32(vec![]))),
        (
            "t.nested",
            V::Array(GgufArray::Array(vec![
                GgufArray::String(vec!["a".into()]),
                GgufArray::U64(vec![1, 2]),
                GgufArray::Array(vec![GgufArray::Bool(vec![true])]),
            ])),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let types = [
        (GgmlType::F32, vec![3, 2]),
        (GgmlType::F16, vec![5]),
        (GgmlType::BF16, vec![4, 1, 2]),
        (GgmlType::Q4_0, vec![64, 2]),
        (GgmlType::Q4_1, vec![32]),
        (GgmlType::Q5_0, vec![32, 3]),
        (GgmlType::Q5_1, vec![32]),
        (GgmlType::Q8_0, vec![96, 1, 1, 2]),
        (GgmlType::Q2K, vec![256]),
        (GgmlType::Q3K, vec![256, 2]),
        (GgmlType::Q4K, vec![512]),
        (GgmlType::Q5K, vec![256]),
        (GgmlType::Q6K, vec![256, 2]),
    ];
    let tensors = types
        .iter()
        .enumerate()
        .map(|(i, (t, ne))| {
            let n: u64 = ne.iter().product();
            let bytes = t.row_size(ne[0]).expect("whole blocks") * (n / ne[0]);
            let name = format!("blk.{i}.{}.weight", t.name().to_lowercase());
            (
                name,
                *t,
                ne.clone(),
                lcg_bytes(i as u64 + 1, bytes as usize),
            )
        })
        .collect();
    let small: Vec<(String, GgufValue)> = vec![
        (
            "general.architecture".to_string(),
            V::String("llama".into()),
        ),
        ("llama.block_count".to_string(), V::U32(1)),
    ];
    vec![
        Fixture {
            file: "apr_writer",
            version: 3,
            metadata: all_types,
            tensors,
        },
        Fixture {
            file: "apr_writer_v2",
            version: 2,
            metadata: small,
            tensors: vec![(
                "token_embd.weight".into(),
                GgmlType::F32,
                vec![4, 3],
                lcg_bytes(99, 48),
            )],
        },
    ]
}

fn write_fixture(fx: &Fixture) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set_version(fx.version).expect("version");
    for (k, v) in &fx.metadata {
        w.add_kv(k.clone(), v.clone()).expect("kv");
    }
    for (name, t, ne, data) in &fx.tensors {
        w.add_tensor(name.clone(), *t, ne, data.clone())
            .expect("tensor");
    }
    w.to_bytes().expect("write")
}

#[test]
fn writer_output_is_stable_and_gguf_py_reads_what_we_wrote() {
    let regen = std::env::var_os("APR_REGEN_FIXTURES").is_some();
    for fx in writer_fixtures() {
        let dir = data_dir().join("writer");
        let path = dir.join(format!("{}.gguf", fx.file));
        let bytes = write_fixture(&fx);
        if regen {
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write fixture");
            eprintln!("wrote {path:?}; now run: python tools/gguf_ref/make_fixtures.py ours");
        }
        let committed = std::fs::read(&path).expect("committed writer fixture");
        assert!(bytes == committed, "{}: writer output changed", fx.file);

        // gguf-py's reading of our file equals what we asked to write.
        let theirs = read_json(&dir.join(format!("{}.gguf_py.json", fx.file)));
        assert_eq!(theirs["version"], json!(fx.version), "{}", fx.file);
        let want_meta = metadata_json(&fx.metadata);
        assert_eq!(theirs["metadata"], want_meta, "{}", fx.file);
        let tt = theirs["tensors"].as_array().expect("tensors");
        assert_eq!(tt.len(), fx.tensors.len());
        for (t, (name, ty, ne, data)) in tt.iter().zip(&fx.tensors) {
            assert_eq!(t["name"], json!(name));
            assert_eq!(t["type"], json!(ty.name()), "{name}");
            assert_eq!(t["ne"], json!(ne), "{name}");
            assert_eq!(t["data_hex"], json!(hex(data)), "{name}");
        }
        // And our reader agrees with gguf-py on the layout of our file.
        let f = GgufFile::from_bytes(bytes).expect("our reader reads our file");
        assert_same_as_gguf_py(&our_dump(&f), &theirs, fx.file);
    }
}

#[test]
fn writer_rejects_what_the_reader_would_reject() {
    let mut w = GgufWriter::new();
    w.add_kv("a", GgufValue::U8(1)).unwrap();
    let e = w.add_kv("a", GgufValue::U8(2)).unwrap_err().to_string();
    assert_eq!(e, "<writer>: writer: key \"a\": duplicate key");
    let e = w
        .add_kv("general.alignment", GgufValue::U32(48))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "<writer>: writer: general.alignment: must be a UINT32 power of two, got U32(48)"
    );
    let e = w
        .add_tensor("q", GgmlType::Q4K, &[255], vec![0; 144])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "<writer>: writer: tensor \"q\": ne[0] = 255 is not a multiple of Q4_K's block size 256"
    );
    let e = w
        .add_tensor("f", GgmlType::F32, &[2, 2], vec![0; 12])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "<writer>: writer: tensor \"f\": 12 data bytes, but F32 with shape [2, 2] needs 16"
    );
    let e = w
        .add_tensor("z", GgmlType::F32, &[0], vec![])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "<writer>: writer: tensor \"z\": ne[0] = 0 is out of range"
    );
    let e = w
        .add_tensor("d", GgmlType::F32, &[1, 1, 1, 1, 1], vec![0; 4])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "<writer>: writer: tensor \"d\": 5 dimensions, the limit is 4"
    );
    let mut deep = GgufArray::U8(vec![1]);
    for _ in 0..8 {
        deep = GgufArray::Array(vec![deep]);
    }
    let e = w
        .add_kv("deep", GgufValue::Array(deep))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "<writer>: writer: key \"deep\": arrays nest 9 deep, the limit is 8"
    );
    assert!(w.set_version(1).is_err());
}

#[test]
fn version_2_reads_like_version_3() {
    // v2 and v3 share the layout (v3 added big-endian support only); v1 differs (u32 counts).
    let path = data_dir().join("reference/gguf_py_all_types.gguf");
    let v3 = std::fs::read(&path).expect("reference");
    let mut v2 = v3.clone();
    v2[4..8].copy_from_slice(&2u32.to_le_bytes());
    let (a, b) = (
        GgufFile::from_bytes(v3).expect("v3"),
        GgufFile::from_bytes(v2).expect("v2"),
    );
    assert_eq!((a.version(), b.version()), (3, 2));
    assert_eq!(our_dump(&a)["metadata"], our_dump(&b)["metadata"]);
    assert_eq!(our_dump(&a)["tensors"], our_dump(&b)["tensors"]);
}

#[test]
fn limits_accept_their_boundary_values() {
    // Depth 8 nesting and a 63-byte tensor name are allowed; 9 and 64 are rejected (the
    // malformed corpus and writer tests hold the rejections).
    let mut deep = GgufArray::I8(vec![-1]);
    for _ in 0..7 {
        deep = GgufArray::Array(vec![deep]);
    }
    let name = "n".repeat(63);
    let mut w = GgufWriter::new();
    w.add_kv("deep", GgufValue::Array(deep.clone())).unwrap();
    w.add_kv("f32", GgufValue::F32(0.1)).unwrap();
    w.add_tensor(name.clone(), GgmlType::F16, &[1, 1, 1, 1], vec![0, 0x3c])
        .unwrap();
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).expect("boundary values parse");
    assert_eq!(f.get_array("deep").unwrap(), &deep);
    assert_eq!(f.tensor(&name).unwrap().ne, vec![1, 1, 1, 1]);
    assert_eq!(f.tensor_bytes(&name).unwrap(), &[0, 0x3c]);
    let json = serde_json::to_string(f.get("f32").unwrap()).unwrap();
    assert_eq!(json, "0.1");
}
