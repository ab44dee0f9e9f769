// The property the GGUF fuzz target checks, shared (via `include!`) by the libFuzzer target
// fuzz/fuzz_targets/gguf_parse.rs and the stable smoke test engine/tests/gguf_fuzz_smoke.rs.
//
// For any input: parsing returns Ok or Err and never panics, hangs or over-allocates. For an
// input that parses: every tensor's data slice has its byte size and lies inside the input,
// typed accessors and `apr inspect`'s renderers work on every key, and our writer re-encodes the
// file into bytes that parse to the same metadata and tensors.

/// Checks one input; panics (a fuzzer finding) when a property fails.
pub fn check_gguf_input(data: &[u8]) {
    use apr_engine::gguf::{inspect, GgufFile, GgufWriter};

    let Ok(f) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    for t in f.tensors() {
        let bytes = f.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.n_bytes, "tensor {:?}", t.name);
        assert!(t.file_offset + t.n_bytes <= data.len() as u64);
        assert_eq!(t.file_offset % u64::from(f.alignment()), 0);
    }
    for (k, _) in f.metadata() {
        let _ = f.get_u32(k);
        let _ = f.get_str(k);
        let _ = f.get_str_array(k);
        let _ = f.get_uint_lenient(k);
    }
    let _ = inspect::to_text(&f);
    let _ = inspect::to_json(&f);
    let rewritten = GgufWriter::from_file(&f)
        .and_then(|w| w.to_bytes())
        .expect("a file that parses can be rewritten");
    let g = GgufFile::from_bytes(rewritten.clone()).expect("the rewritten file parses");
    let again = GgufWriter::from_file(&g).and_then(|w| w.to_bytes());
    assert!(again.ok() == Some(rewritten), "rewriting is not idempotent");
    assert_eq!(f.metadata().len(), g.metadata().len());
    for ((ka, va), (kb, vb)) in f.metadata().iter().zip(g.metadata()) {
        assert_eq!(ka, kb);
        // Compare encodings, not values: NaN != NaN.
        assert_eq!(format!("{va:?}"), format!("{vb:?}"), "key {ka:?}");
    }
    assert_eq!(f.tensors().len(), g.tensors().len());
    for (a, b) in f.tensors().iter().zip(g.tensors()) {
        assert_eq!((&a.name, a.ggml_type, &a.ne), (&b.name, b.ggml_type, &b.ne));
        assert_eq!(f.tensor_data(a), g.tensor_data(b), "tensor {:?}", a.name);
    }
}
