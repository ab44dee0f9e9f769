//! The APR container against the committed llama.cpp-made fixtures: every tensor's bytes and
//! every metadata pair survive GGUF → APR → GGUF (the round trip is byte-identical), and
//! corruption or hostile headers are rejected with the exact error, never a panic.

use std::path::{Path, PathBuf};

use apr_engine::apr::{
    self, convert::convert, convert::ConvertError, fnv1a64, AprError, AprFile, HEADER_SIZE,
};
use apr_engine::gguf::{GgufError, GgufFile, GgufValue};
use apr_engine::model_file::{ModelFile, ModelFileError, ModelFormat};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models")
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 10,
        "expected the committed fixtures, found {v:?}"
    );
    v
}

/// The smallest fixture with a real model (quantized tensors, tokenizer): fast corruption tests.
fn small_fixture() -> PathBuf {
    fixtures_dir().join("qwen3-Q4_K_M.gguf")
}

/// A fresh directory under the target dir (no tempfile dependency), removed by the caller.
fn temp_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("apr_format-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

fn apr_bytes_of(path: &Path) -> Vec<u8> {
    apr::to_apr_bytes(&ModelFile::open(path).expect("open fixture")).expect("to APR")
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Rewrites the header checksum after a deliberate edit, so the parser behind it is exercised.
/// Leaves the image alone when the (patched) index size runs past its end: the reader rejects
/// that before it looks at the checksum.
fn fix_checksum(b: &mut [u8]) {
    let index_size = u64_at(b, 32);
    if index_size > b.len() as u64 - 64 {
        return;
    }
    let index_size = index_size as usize;
    let mut data = b[..56].to_vec();
    data.extend_from_slice(&b[64..64 + index_size]);
    let sum = fnv1a64(&data);
    b[56..64].copy_from_slice(&sum.to_le_bytes());
}

fn open_err(bytes: Vec<u8>) -> String {
    match AprFile::from_bytes(bytes) {
        Ok(_) => panic!("corrupt image accepted"),
        Err(e) => e.to_string(),
    }
}

fn assert_same_content(gguf: &GgufFile, m: &ModelFile) {
    assert_eq!(m.version(), gguf.version());
    assert_eq!(m.alignment(), gguf.alignment());
    assert_eq!(m.metadata().len(), gguf.metadata().len());
    for ((ka, va), (kb, vb)) in gguf.metadata().iter().zip(m.metadata()) {
        assert_eq!(ka, kb);
        assert!(bit_equal(va, vb), "{ka}: {va:?} vs {vb:?}");
    }
    assert_eq!(m.tensors().len(), gguf.tensors().len());
    for (a, b) in gguf.tensors().iter().zip(m.tensors()) {
        assert_eq!(
            (&a.name, a.ggml_type, &a.ne, a.n_elements, a.n_bytes),
            (&b.name, b.ggml_type, &b.ne, b.n_elements, b.n_bytes)
        );
        assert!(
            gguf.tensor_data(a) == m.tensor_data(b),
            "tensor {} bytes differ",
            a.name
        );
    }
}

/// Equality that compares floats by bit pattern (NaN payloads, -0.0), recursively.
fn bit_equal(a: &GgufValue, b: &GgufValue) -> bool {
    match (a, b) {
        (GgufValue::F32(x), GgufValue::F32(y)) => x.to_bits() == y.to_bits(),
        (GgufValue::F64(x), GgufValue::F64(y)) => x.to_bits() == y.to_bits(),
        (GgufValue::Array(x), GgufValue::Array(y)) => {
            x.element_type() == y.element_type()
                && x.len() == y.len()
                && (0..x.len()).all(|i| match (x.get(i), y.get(i)) {
                    (Some(p), Some(q)) => bit_equal(&p, &q),
                    _ => false,
                })
        }
        _ => a == b,
    }
}

#[test]
fn every_fixture_converts_to_apr_and_back_byte_identical() {
    let dir = temp_dir("roundtrip");
    for src in fixtures() {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        let gguf = GgufFile::open(&src).unwrap();
        let apr_path = dir.join(format!("{stem}.apr"));
        let report = convert(&src, &apr_path, None).unwrap();
        assert_eq!(
            (report.from, report.to),
            (ModelFormat::Gguf, ModelFormat::Apr)
        );
        assert_eq!(report.tensors, gguf.tensors().len());

        let m = ModelFile::open(&apr_path).unwrap();
        assert_eq!(m.format(), ModelFormat::Apr);
        assert_eq!(m.path(), Some(apr_path.as_path()));
        assert_same_content(&gguf, &m);
        let a = m.as_apr().unwrap();
        assert_eq!(a.header().data_offset % 64, 0);
        for t in m.tensors() {
            assert_eq!(t.file_offset % 64, 0, "{stem}: {} not 64-aligned", t.name);
        }
        // The stored checksums are FNV-1a 64 of the original GGUF's tensor bytes.
        for (t, &sum) in gguf.tensors().iter().zip(a.tensor_checksums()) {
            assert_eq!(sum, fnv1a64(gguf.tensor_data(t)), "{stem}: {}", t.name);
        }
        let v = m.verify().unwrap();
        assert!(v.is_ok(), "{stem}: {}", v.to_text());
        assert_eq!(v.tensors_checked, gguf.tensors().len());

        let back = dir.join(format!("{stem}.gguf"));
        convert(&apr_path, &back, None).unwrap();
        let original = std::fs::read(&src).unwrap();
        let round = std::fs::read(&back).unwrap();
        assert!(
            original == round,
            "{stem}: GGUF -> APR -> GGUF is not byte-identical ({} vs {} bytes)",
            original.len(),
            round.len()
        );
        std::fs::remove_file(&apr_path).unwrap();
        std::fs::remove_file(&back).unwrap();
    }
    // Nothing but what we removed was ever written: no temporary files left over.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn apr_to_apr_and_memory_writer_agree_with_file_writer() {
    let dir = temp_dir("apr2apr");
    let src = small_fixture();
    let a1 = dir.join("a1.apr");
    let a2 = dir.join("a2.apr");
    convert(&src, &a1, None).unwrap();
    convert(&a1, &a2, Some(ModelFormat::Apr)).unwrap();
    let b1 = std::fs::read(&a1).unwrap();
    assert_eq!(b1, std::fs::read(&a2).unwrap(), "APR -> APR changed bytes");
    assert_eq!(b1, apr_bytes_of(&src), "to_apr_bytes differs from convert");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn model_file_getters_match_gguf_file_for_both_formats() {
    let src = fixtures_dir().join("llama-Q4_0.gguf");
    let g = GgufFile::open(&src).unwrap();
    let mg = ModelFile::open(&src).unwrap();
    let ma = ModelFile::from_bytes(apr_bytes_of(&src)).unwrap();
    assert_eq!(mg.format(), ModelFormat::Gguf);
    assert_eq!(ma.format(), ModelFormat::Apr);
    assert!(mg.as_apr().is_none() && mg.verify().is_none());
    for m in [&mg, &ma] {
        assert_eq!(m.get_str("general.architecture").unwrap(), "llama");
        assert_eq!(
            m.get_u32("llama.block_count").unwrap(),
            g.get_u32("llama.block_count").unwrap()
        );
        assert_eq!(
            m.get_uint_lenient("llama.context_length").unwrap(),
            g.get_uint_lenient("llama.context_length").unwrap()
        );
        assert_eq!(
            m.get_str_array("tokenizer.ggml.tokens").unwrap(),
            g.get_str_array("tokenizer.ggml.tokens").unwrap()
        );
        assert_eq!(
            m.get_f32_array("tokenizer.ggml.scores").unwrap(),
            g.get_f32_array("tokenizer.ggml.scores").unwrap()
        );
        assert_eq!(
            m.get_i32_array("tokenizer.ggml.token_type").unwrap(),
            g.get_i32_array("tokenizer.ggml.token_type").unwrap()
        );
        assert_eq!(
            m.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(),
            g.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap()
        );
        assert!(m.contains_key("general.architecture") && !m.contains_key("nope"));
        assert_eq!(m.get("general.architecture"), g.get("general.architecture"));
        assert!(m.find_tensor("token_embd.weight").is_some());
        assert!(m.find_tensor("nope").is_none());
        assert_eq!(
            m.tensor_bytes("output_norm.weight").unwrap(),
            g.tensor_bytes("output_norm.weight").unwrap()
        );
        // Errors are GgufError, worded as GgufFile's, naming the file.
        let e = m.get_u32("general.architecture").unwrap_err();
        assert!(matches!(e, GgufError::WrongType { .. }), "{e}");
        let e = m.tensor("blk.0.ffn_up_exps.weight").unwrap_err();
        assert!(matches!(e, GgufError::TensorNotFound { .. }), "{e}");
        assert_eq!(
            m.get_str("nope").unwrap_err().to_string(),
            format!("{}: metadata key \"nope\" not found", m.origin())
        );
    }
}

#[test]
fn unknown_format_and_empty_file_are_clear_errors() {
    let e = ModelFile::from_bytes(b"GGML\0\0\0\0".to_vec()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "<memory>: not a model file: it starts with [47, 47, 4d, 4c], expected the GGUF magic \"GGUF\" or the APR magic \"APRF\""
    );
    assert!(matches!(
        ModelFile::from_bytes(Vec::new()).unwrap_err(),
        ModelFileError::UnknownFormat { found, .. } if found.is_empty()
    ));
    let dir = temp_dir("unknown");
    let p = dir.join("empty.apr");
    std::fs::write(&p, b"").unwrap();
    assert!(matches!(
        ModelFile::open(&p).unwrap_err(),
        ModelFileError::UnknownFormat { .. }
    ));
    assert!(matches!(
        ModelFile::open(dir.join("missing.apr")).unwrap_err(),
        ModelFileError::Io { .. }
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flipped_tensor_byte_is_named_by_verify_and_blocks_conversion() {
    let src = small_fixture();
    let mut bytes = apr_bytes_of(&src);
    let clean = AprFile::from_bytes(bytes.clone()).unwrap();
    let t = clean
        .as_gguf()
        .tensor("blk.1.ffn_down.weight")
        .unwrap()
        .clone();
    let at = (t.file_offset + t.n_bytes / 2) as usize;
    bytes[at] ^= 0x01;
    let stored = clean.tensor_checksums()[clean
        .as_gguf()
        .tensors()
        .iter()
        .position(|x| x.name == t.name)
        .unwrap()];
    let mut corrupt_data = clean.as_gguf().tensor_data(&t).to_vec();
    corrupt_data[(t.n_bytes / 2) as usize] ^= 0x01;
    let computed = fnv1a64(&corrupt_data);

    let f = AprFile::from_bytes(bytes.clone()).expect("tensor data is checked on demand only");
    let r = f.verify();
    assert!(!r.is_ok());
    assert_eq!(r.mismatches.len(), 1, "{}", r.to_text());
    let m = &r.mismatches[0];
    assert_eq!(
        (m.tensor.as_str(), m.stored, m.computed),
        (t.name.as_str(), stored, computed)
    );
    assert!(r.to_text().contains(&format!(
        "MISMATCH tensor \"blk.1.ffn_down.weight\" (#{}, {} bytes): stored {stored:#018x}, computed {computed:#018x}",
        m.index, t.n_bytes
    )));

    // Converting the corrupt file out fails and leaves nothing behind.
    let dir = temp_dir("corrupt-convert");
    let p = dir.join("bad.apr");
    std::fs::write(&p, &bytes).unwrap();
    for out in ["out.gguf", "out.apr"] {
        let e = convert(&p, &dir.join(out), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: tensor \"blk.1.ffn_down.weight\": checksum mismatch: stored {stored:#018x}, FNV-1a 64 of its {} data bytes is {computed:#018x}",
                p.display(),
                t.n_bytes
            )
        );
    }
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("bad.apr")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flipped_metadata_or_tensor_table_byte_fails_the_header_checksum() {
    let bytes = apr_bytes_of(&small_fixture());
    let clean = AprFile::from_bytes(bytes.clone()).unwrap();
    let h = *clean.header();
    // A byte of the architecture string value in the metadata, and a byte of a tensor name.
    let arch = bytes.windows(5).position(|w| w == b"qwen3").unwrap();
    let name = bytes
        .windows(12)
        .position(|w| w == b"blk.0.attn_q")
        .unwrap();
    assert!(arch < name && name < (HEADER_SIZE + h.index_size) as usize);
    for at in [
        arch,
        name,
        HEADER_SIZE as usize,
        (HEADER_SIZE + h.index_size - 1) as usize,
    ] {
        let mut b = bytes.clone();
        b[at] ^= 0x20;
        let mut data = b[..56].to_vec();
        data.extend_from_slice(&b[64..(64 + h.index_size) as usize]);
        assert_eq!(
            open_err(b),
            format!(
                "<memory>: header checksum mismatch: header.checksum = {:#018x}, FNV-1a 64 of the header and the {}-byte index is {:#018x} (metadata or tensor table corrupted)",
                h.header_checksum,
                h.index_size,
                fnv1a64(&data)
            ),
            "flip at {at}"
        );
    }
    // A flipped checksum field itself.
    let mut b = bytes.clone();
    b[60] ^= 0xff;
    assert!(open_err(b).contains("header checksum mismatch"));
}

#[test]
fn truncation_at_every_header_field_boundary_is_named() {
    let bytes = apr_bytes_of(&small_fixture());
    let fields = [
        (0, "header.magic", 4),
        (4, "header.version", 4),
        (8, "header.gguf_version", 4),
        (12, "header.alignment", 4),
        (16, "header.kv_count", 8),
        (24, "header.tensor_count", 8),
        (32, "header.index_size", 8),
        (40, "header.data_offset", 8),
        (48, "header.data_size", 8),
        (56, "header.checksum", 8),
    ];
    for (off, field, size) in fields {
        for cut in [off, off + size / 2] {
            assert_eq!(
                open_err(bytes[..cut].to_vec()),
                format!(
                    "<memory>: truncated: {field} at offset {off} needs {size} bytes, only {} left",
                    cut - off
                ),
                "cut at {cut}"
            );
        }
    }
    // Past the fixed header every cut is a size mismatch: at the end of the header, inside and
    // at the end of the index, at the data offset, inside the data, one byte short.
    let f = AprFile::from_bytes(bytes.clone()).unwrap();
    let h = *f.header();
    let index_end = HEADER_SIZE + h.index_size;
    for cut in [
        HEADER_SIZE,
        HEADER_SIZE + 1,
        index_end - 1,
        index_end,
        h.data_offset,
        h.data_offset + h.data_size / 2,
        bytes.len() as u64 - 1,
    ] {
        assert_eq!(
            open_err(bytes[..cut as usize].to_vec()),
            format!(
                "<memory>: the file is {cut} bytes, but header.data_offset {} + header.data_size {} says it should be {} (truncated or extended)",
                h.data_offset, h.data_size, bytes.len()
            )
        );
    }
    // An extended file too.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(open_err(longer).contains("(truncated or extended)"));
}

#[test]
fn every_prefix_of_the_header_and_index_is_an_error() {
    let bytes = apr_bytes_of(&small_fixture());
    let data_offset = AprFile::from_bytes(bytes.clone())
        .unwrap()
        .header()
        .data_offset;
    for cut in 0..=data_offset as usize {
        assert!(
            AprFile::from_bytes(bytes[..cut].to_vec()).is_err(),
            "prefix {cut}"
        );
    }
}

/// Header fields a hostile file might set, each with the checksum made valid again so the
/// check behind it is the one that fires.
#[test]
fn hostile_header_values_are_rejected_with_the_field_and_value() {
    let bytes = apr_bytes_of(&small_fixture());
    let h = *AprFile::from_bytes(bytes.clone()).unwrap().header();
    let patch = |off: usize, v: &[u8]| {
        let mut b = bytes.clone();
        b[off..off + v.len()].copy_from_slice(v);
        fix_checksum(&mut b);
        open_err(b)
    };
    assert_eq!(
        patch(0, b"APRT"),
        "<memory>: bad magic [41, 50, 52, 54] at offset 0 (expected \"APRF\" = [41, 50, 52, 46])"
    );
    assert_eq!(
        patch(4, &2u32.to_le_bytes()),
        "<memory>: unsupported APR version 2 (this reader supports version 1)"
    );
    assert_eq!(
        patch(8, &1u32.to_le_bytes()),
        "<memory>: header.gguf_version = 1: must be 2 or 3"
    );
    for a in [0u32, 32, 48, 1 << 22] {
        assert_eq!(
            patch(12, &a.to_le_bytes()),
            format!("<memory>: header.alignment = {a}: must be a power of two from 64 to 2097152")
        );
    }
    assert_eq!(
        patch(16, &u64::MAX.to_le_bytes()),
        format!(
            "<memory>: header.kv_count = {}: exceeds the limit 1048576",
            u64::MAX
        )
    );
    assert_eq!(
        patch(24, &(1u64 << 40).to_le_bytes()),
        "<memory>: header.tensor_count = 1099511627776: exceeds the limit 1048576"
    );
    // index_size past the data offset (cannot overflow: u64::MAX is checked too).
    for v in [h.data_offset, u64::MAX] {
        assert_eq!(
            patch(32, &v.to_le_bytes()),
            format!(
                "<memory>: header.index_size = {v}: the index would end past header.data_offset {}",
                h.data_offset
            )
        );
    }
    // data_offset + data_size overflowing u64 is a size mismatch, not a wrap.
    let e = patch(40, &u64::MAX.to_le_bytes());
    assert!(
        e.contains(&format!("header.data_offset {}", u64::MAX)),
        "{e}"
    );
    // A data offset that keeps the size right but is not aligned.
    let mut b = bytes.clone();
    b[40..48].copy_from_slice(&(h.data_offset - 32).to_le_bytes());
    b[48..56].copy_from_slice(&(h.data_size + 32).to_le_bytes());
    fix_checksum(&mut b);
    assert_eq!(
        open_err(b),
        format!(
            "<memory>: header.data_offset = {}: not a multiple of header.alignment 64",
            h.data_offset - 32
        )
    );
    // Fewer tensors than the index holds: the index does not end where it says.
    let e = patch(24, &(h.tensor_count - 1).to_le_bytes());
    assert!(
        e.contains("the index (metadata and tensor table) ends at offset"),
        "{e}"
    );
    // More tensors than the index can hold: the shared decoder's count check.
    let e = patch(24, &(h.tensor_count + 1_000_000).to_le_bytes());
    assert!(e.contains("header.tensor_count = 1000047 at offset"), "{e}");
    // Nonzero padding between the index and the data.
    let index_end = (HEADER_SIZE + h.index_size) as usize;
    if index_end < h.data_offset as usize {
        let mut b = bytes.clone();
        b[index_end] = 7;
        assert_eq!(
            open_err(b),
            format!("<memory>: padding byte at offset {index_end} is 0x07, expected 0")
        );
    }
}

/// Offsets in the tensor table that a hostile file might set (checksum fixed up).
#[test]
fn hostile_tensor_offsets_are_rejected() {
    let bytes = apr_bytes_of(&small_fixture());
    let f = AprFile::from_bytes(bytes.clone()).unwrap();
    let h = *f.header();
    let t0 = f.as_gguf().tensors()[0].clone();
    let t1 = f.as_gguf().tensors()[1].clone();
    // The offset field of tensor 1: name (8 + len), n_dims (4), ne (8 each), type (4).
    let name_at = bytes
        .windows(t1.name.len() + 8)
        .position(|w| {
            w[..8] == (t1.name.len() as u64).to_le_bytes() && &w[8..] == t1.name.as_bytes()
        })
        .unwrap();
    let off_at = name_at + 8 + t1.name.len() + 4 + 8 * t1.ne.len() + 4;
    assert_eq!(u64_at(&bytes, off_at), t1.offset);
    let set = |v: u64| {
        let mut b = bytes.clone();
        b[off_at..off_at + 8].copy_from_slice(&v.to_le_bytes());
        fix_checksum(&mut b);
        open_err(b)
    };
    assert_eq!(
        set(t1.offset + 32),
        format!(
            "<memory>: tensor {:?}: data offset {} is not a multiple of the alignment 64",
            t1.name,
            t1.offset + 32
        )
    );
    let past = h.data_size - h.data_size % 64;
    assert!(set(past).contains("ends past the end of the file"));
    assert!(set(u64::MAX - 63).contains("ends past the end of the file"));
    assert_eq!(
        set(t0.offset),
        format!(
            "<memory>: tensor {:?}: data bytes {}..{} overlap tensor {:?} at {}..{}",
            t1.name,
            t0.offset,
            t0.offset + t1.n_bytes,
            t0.name,
            t0.offset,
            t0.offset + t0.n_bytes
        )
    );
}

/// Deterministic byte mutations of the header and index, with the checksum made valid so the
/// decoder behind it sees them: every outcome is an error or a valid file, never a panic.
#[test]
fn mutated_indexes_never_panic() {
    let bytes = apr_bytes_of(&small_fixture());
    let h = *AprFile::from_bytes(bytes.clone()).unwrap().header();
    let end = (HEADER_SIZE + h.index_size) as usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut rejected = 0;
    for _ in 0..2000 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % end as u64) as usize;
            b[at] = next() as u8;
        }
        fix_checksum(&mut b);
        if AprFile::from_bytes(b).is_err() {
            rejected += 1;
        }
    }
    assert!(rejected > 100, "only {rejected} of 2000 mutations rejected");
}

#[test]
fn convert_refuses_the_input_and_unknown_extensions_and_cleans_up() {
    let dir = temp_dir("refuse");
    let src = dir.join("m.gguf");
    std::fs::copy(small_fixture(), &src).unwrap();
    let before = std::fs::read(&src).unwrap();
    // The same path, the same file through another spelling, and a hard link.
    let link = dir.join("link.gguf");
    std::fs::hard_link(&src, &link).unwrap();
    for out in [src.clone(), dir.join(".").join("m.gguf"), link.clone()] {
        let e = convert(&src, &out, Some(ModelFormat::Gguf)).unwrap_err();
        assert!(matches!(e, ConvertError::SameFile { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: refusing to overwrite the input file {}",
                out.display(),
                src.display()
            )
        );
    }
    let e = convert(&src, &dir.join("m.bin"), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot tell the output format from the file name (expected a .apr or .gguf extension); pass --to apr or --to gguf",
            dir.join("m.bin").display()
        )
    );
    // --to overrides the extension; the output is an APR file despite its name.
    let bin = dir.join("m.bin");
    convert(&src, &bin, Some(ModelFormat::Apr)).unwrap();
    assert_eq!(ModelFile::open(&bin).unwrap().format(), ModelFormat::Apr);
    // An existing output is replaced atomically.
    convert(&src, &bin, Some(ModelFormat::Apr)).unwrap();
    // A missing output directory: an error, nothing created.
    let e = convert(&src, &dir.join("nodir/x.apr"), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot create a temporary file beside it"),
        "{e}"
    );
    assert_eq!(std::fs::read(&src).unwrap(), before);
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["link.gguf", "m.bin", "m.gguf"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_file_refuses_gguf() {
    let e = apr::verify_file(small_fixture()).unwrap_err();
    assert!(matches!(
        e,
        ModelFileError::Apr(AprError::NotApr { format: "gguf", .. })
    ));
}

/// gguf-py's all-types file (every value type, nested arrays, every tensor type gguf-py sizes
/// like ggml), its 64-aligned file, and the GGUF module's v2/v3 writer files: all round-trip
/// byte for byte through APR.
#[test]
fn gguf_py_reference_files_round_trip_through_apr() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf");
    let mut n = 0;
    for sub in ["reference", "writer"] {
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_none_or(|x| x != "gguf") {
                continue;
            }
            let original = std::fs::read(&p).unwrap();
            let g = GgufFile::from_bytes(original.clone()).unwrap();
            let m = ModelFile::from_bytes(apr_bytes_of(&p)).unwrap();
            assert_same_content(&g, &m);
            assert!(m.verify().unwrap().is_ok());
            let mut back = Vec::new();
            apr::write_gguf(&m, &mut back, "<memory>").unwrap();
            assert!(back == original, "{p:?} not byte-identical");
            n += 1;
        }
    }
    assert!(n >= 4, "only {n} reference files found");
}

fn writer_with(alignment: Option<u32>, version: u32) -> apr_engine::gguf::GgufWriter {
    use apr_engine::gguf::{GgufArray, GgufValue, GgufWriter};
    use apr_engine::quant::GgmlType;
    let mut w = GgufWriter::new();
    w.set_version(version).unwrap();
    if let Some(a) = alignment {
        w.add_kv("general.alignment", GgufValue::U32(a)).unwrap();
    }
    w.add_kv(
        "nested",
        GgufValue::Array(GgufArray::Array(vec![
            GgufArray::U8(vec![1, 2]),
            GgufArray::String(vec!["x".into()]),
        ])),
    )
    .unwrap();
    w.add_kv("nan", GgufValue::F32(f32::from_bits(0x7fc0_0001)))
        .unwrap();
    w.add_tensor("scalar", GgmlType::F32, &[], 2.5f32.to_le_bytes().to_vec())
        .unwrap();
    w.add_tensor("odd", GgmlType::F16, &[3], vec![1, 2, 3, 4, 5, 6])
        .unwrap();
    w.add_tensor("q", GgmlType::Q8_0, &[32, 2], vec![7u8; 68])
        .unwrap();
    w
}

#[test]
fn alignments_versions_and_edge_tensors_round_trip() {
    for (alignment, version, apr_alignment) in [
        (None, 3, 64),
        (Some(8), 2, 64),
        (Some(64), 3, 64),
        (Some(128), 3, 128),
        (Some(4096), 2, 4096),
    ] {
        let original = writer_with(alignment, version).to_bytes().unwrap();
        let g = GgufFile::from_bytes(original.clone()).unwrap();
        let m = ModelFile::from_bytes(apr::to_apr_bytes(&g_model(&original)).unwrap()).unwrap();
        let a = m.as_apr().unwrap();
        assert_eq!(a.header().alignment, apr_alignment);
        assert_eq!(a.header().gguf_version, version);
        assert_eq!(m.alignment(), g.alignment());
        for t in m.tensors() {
            assert_eq!(t.file_offset % u64::from(apr_alignment), 0);
        }
        // NaN payloads survive: compare bits, not values.
        let nan = |f: &ModelFile| f.get_f32("nan").unwrap().to_bits();
        assert_eq!(nan(&m), 0x7fc0_0001);
        assert!(bit_equal(
            m.get("nested").unwrap(),
            g.get("nested").unwrap()
        ));
        let mut back = Vec::new();
        apr::write_gguf(&m, &mut back, "<memory>").unwrap();
        assert!(back == original, "alignment {alignment:?} v{version}");
    }
}

fn g_model(bytes: &[u8]) -> ModelFile {
    ModelFile::from_bytes(bytes.to_vec()).unwrap()
}

#[test]
fn empty_file_and_oversized_alignment() {
    let w = apr_engine::gguf::GgufWriter::new();
    let original = w.to_bytes().unwrap();
    let apr_image = apr::to_apr_bytes(&g_model(&original)).unwrap();
    let m = ModelFile::from_bytes(apr_image.clone()).unwrap();
    assert!(m.metadata().is_empty() && m.tensors().is_empty());
    let h = *m.as_apr().unwrap().header();
    assert_eq!((h.index_size, h.data_offset, h.data_size), (0, 64, 0));
    assert_eq!(apr_image.len(), 64);
    let mut back = Vec::new();
    apr::write_gguf(&m, &mut back, "<memory>").unwrap();
    assert_eq!(back, original);

    let big = writer_with(Some(1 << 22), 3).to_bytes().unwrap();
    let e = apr::to_apr_bytes(&g_model(&big)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "<memory>: cannot write as APR: general.alignment 4194304 exceeds the APR limit 2097152"
    );
}
