//! The malformed-file corpus: every file under tests/data/gguf/malformed/ is a regression test
//! with its exact expected error message. The files are gguf-py output mutated byte by byte by
//! tools/gguf_ref/make_fixtures.py (`malformed`), so they are reproducible.
//!
//! Beyond the corpus: every prefix of valid files, and every single-byte mutation of the small
//! base file, must give an error (or, for mutations, possibly a valid file) and never a panic.

use std::path::PathBuf;

use apr_engine::gguf::{GgufError, GgufFile};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf/malformed")
}

/// (file stem, the error message after the `<path>: ` prefix).
const EXPECTED: &[(&str, &str)] = &[
    ("alignment_not_power_of_two", "general.alignment = 48 is not a power of two"),
    ("alignment_wrong_type", "metadata key \"general.alignment\" has type INT32, expected UINT32"),
    ("alignment_zero", "general.alignment = 0 is not a power of two"),
    ("array_length_huge", "kv[5] \"test.words\" value length = 1099511627776 exceeds the limit 67108864"),
    ("array_length_past_end", "kv[5] \"test.words\" value length = 1048576 at offset 213 needs at least 8388608 bytes, only 203 left"),
    ("array_unknown_element_type", "kv[5] \"test.words\" value element type at offset 201 has unknown value type id 99"),
    ("bad_magic", "bad magic [47, 47, 55, 58] at offset 0 (expected \"GGUF\" = [47, 47, 55, 46])"),
    ("bad_magic_ggml", "bad magic [67, 67, 6d, 6c] at offset 0 (expected \"GGUF\" = [47, 47, 55, 46])"),
    ("data_truncated", "tensor \"b\": data at offset 32 (file offset 352) with 34 bytes ends past the end of the file (362 bytes)"),
    ("dim_negative", "tensor \"a\": dimension ne[0] = -4 (must be at least 1)"),
    ("dim_zero", "tensor \"a\": dimension ne[1] = 0 (must be at least 1)"),
    ("duplicate_key", "duplicate metadata key \"test.key_a\" (entries 2 and 3)"),
    ("duplicate_tensor_name", "duplicate tensor name \"a\" (tensor infos 0 and 1)"),
    ("invalid_bool", "kv[4] \"test.flag\" value at offset 178 is a bool with byte value 2 (expected 0 or 1)"),
    ("key_invalid_utf8", "kv[1].key at offset 77 is not valid UTF-8: \"�eneral.name\""),
    ("key_length_huge", "kv[1].key length = 1099511627776 exceeds the limit 65536"),
    ("key_length_past_end", "truncated: kv[1].key at offset 77 needs 60000 bytes, only 339 left"),
    ("kv_count_absurd", "header.kv_count = 4611686018427387904 exceeds the limit 1048576"),
    ("kv_count_exceeds_file", "header.kv_count = 1000 at offset 24 needs at least 13000 bytes, only 392 left"),
    ("kv_count_too_small", "tensor \"test.key_a\": element count of shape [42949672961, 8391162079611977728, 1234062104947502, 2533274790526976] overflows"),
    ("n_dims_5", "tensor \"a\": n_dims = 5 exceeds the limit 4"),
    ("n_dims_huge", "tensor \"a\": n_dims = 4294967295 exceeds the limit 4"),
    ("nested_too_deep", "kv[6] \"test.deep\" value[0][0][0][0][0][0][0][0] nests arrays 9 deep, the limit is 8"),
    ("offset_misaligned", "tensor \"b\": data offset 36 is not a multiple of the alignment 32"),
    ("offset_outside_file", "tensor \"b\": data at offset 1099511627776 (file offset 1099511628096) with 34 bytes ends past the end of the file (416 bytes)"),
    ("offset_overflow", "tensor \"b\": data at offset 18446744073709551584 (file offset 18446744073709551615) with 34 bytes ends past the end of the file (416 bytes)"),
    ("overlapping_tensors", "tensor \"b\": data bytes 0..34 overlap tensor \"a\" at 0..32"),
    ("row_size_mismatch", "tensor \"b\": type Q8_0 needs ne[0] to be a multiple of 32, found ne[0] = 48"),
    ("shape_overflow", "tensor \"a\": element count of shape [4294967296, 4294967296] overflows"),
    ("shape_overflow_i64", "tensor \"a\": element count of shape [4611686018427387904, 2] overflows"),
    ("size_disagrees_type", "tensor \"b\": data at offset 32 (file offset 352) with 128 bytes ends past the end of the file (416 bytes)"),
    ("string_invalid_utf8", "kv[1] \"general.name\" value at offset 101 is not valid UTF-8: \"�(ny\""),
    ("string_length_huge", "kv[1] \"general.name\" value length = 1152921504606846976 exceeds the limit 67108864"),
    ("string_length_past_end", "truncated: kv[1] \"general.name\" value at offset 101 needs 1048576 bytes, only 315 left"),
    ("tensor_count_absurd", "header.tensor_count = 1099511627776 exceeds the limit 1048576"),
    ("tensor_count_exceeds_file", "header.tensor_count = 100000 at offset 24 needs at least 2400000 bytes, only 392 left"),
    ("tensor_count_negative", "header.tensor_count = 18446744073709551615 exceeds the limit 1048576"),
    ("tensor_name_too_long", "tensor_info[0].name length = 64 exceeds the limit 63"),
    ("truncated_0000_header_magic", "truncated: header.magic at offset 0 needs 4 bytes, only 0 left"),
    ("truncated_0004_header_version", "truncated: header.version at offset 4 needs 4 bytes, only 0 left"),
    ("truncated_0008_header_tensor_count", "truncated: header.tensor_count at offset 8 needs 8 bytes, only 0 left"),
    ("truncated_0016_header_kv_count", "truncated: header.kv_count at offset 16 needs 8 bytes, only 0 left"),
    ("truncated_0024_kv0_key_length", "header.kv_count = 6 at offset 24 needs at least 78 bytes, only 0 left"),
    ("truncated_0032_kv0_key", "header.kv_count = 6 at offset 24 needs at least 78 bytes, only 8 left"),
    ("truncated_0052_kv0_general_architecture_value_type", "header.kv_count = 6 at offset 24 needs at least 78 bytes, only 28 left"),
    ("truncated_0056_kv0_general_architecture_value_length", "header.kv_count = 6 at offset 24 needs at least 78 bytes, only 32 left"),
    ("truncated_0064_kv0_general_architecture_value", "header.kv_count = 6 at offset 24 needs at least 78 bytes, only 40 left"),
    ("truncated_0069_kv1_key_length", "header.kv_count = 6 at offset 24 needs at least 78 bytes, only 45 left"),
    ("truncated_0077_kv1_key", "header.kv_count = 6 at offset 24 needs at least 78 bytes, only 53 left"),
    ("truncated_0089_kv1_general_name_value_type", "header.kv_count = 6 at offset 24 needs at least 78 bytes, only 65 left"),
    ("truncated_0093_kv1_general_name_value_length", "header.kv_count = 6 at offset 24 needs at least 78 bytes, only 69 left"),
    ("truncated_0101_kv1_general_name_value", "header.kv_count = 6 at offset 24 needs at least 78 bytes, only 77 left"),
    ("truncated_0105_kv2_key_length", "truncated: kv[2].key length at offset 105 needs 8 bytes, only 0 left"),
    ("truncated_0113_kv2_key", "truncated: kv[2].key at offset 113 needs 10 bytes, only 0 left"),
    ("truncated_0123_kv2_test_key_a_value_type", "truncated: kv[2] \"test.key_a\" value type at offset 123 needs 4 bytes, only 0 left"),
    ("truncated_0127_kv2_test_key_a_value", "truncated: kv[2] \"test.key_a\" value at offset 127 needs 4 bytes, only 0 left"),
    ("truncated_0131_kv3_key_length", "truncated: kv[3].key length at offset 131 needs 8 bytes, only 0 left"),
    ("truncated_0139_kv3_key", "truncated: kv[3].key at offset 139 needs 10 bytes, only 0 left"),
    ("truncated_0149_kv3_test_key_b_value_type", "truncated: kv[3] \"test.key_b\" value type at offset 149 needs 4 bytes, only 0 left"),
    ("truncated_0153_kv3_test_key_b_value", "truncated: kv[3] \"test.key_b\" value at offset 153 needs 4 bytes, only 0 left"),
    ("truncated_0157_kv4_key_length", "truncated: kv[4].key length at offset 157 needs 8 bytes, only 0 left"),
    ("truncated_0165_kv4_key", "truncated: kv[4].key at offset 165 needs 9 bytes, only 0 left"),
    ("truncated_0174_kv4_test_flag_value_type", "truncated: kv[4] \"test.flag\" value type at offset 174 needs 4 bytes, only 0 left"),
    ("truncated_0178_kv4_test_flag_value", "truncated: kv[4] \"test.flag\" value at offset 178 needs 1 bytes, only 0 left"),
    ("truncated_0179_kv5_key_length", "truncated: kv[5].key length at offset 179 needs 8 bytes, only 0 left"),
    ("truncated_0187_kv5_key", "truncated: kv[5].key at offset 187 needs 10 bytes, only 0 left"),
    ("truncated_0197_kv5_test_words_value_type", "truncated: kv[5] \"test.words\" value type at offset 197 needs 4 bytes, only 0 left"),
    ("truncated_0201_kv5_test_words_value_element_type", "truncated: kv[5] \"test.words\" value element type at offset 201 needs 4 bytes, only 0 left"),
    ("truncated_0205_kv5_test_words_value_length", "truncated: kv[5] \"test.words\" value length at offset 205 needs 8 bytes, only 0 left"),
    ("truncated_0213_kv5_test_words_value0_length", "kv[5] \"test.words\" value length = 2 at offset 213 needs at least 16 bytes, only 0 left"),
    ("truncated_0221_kv5_test_words_value0", "kv[5] \"test.words\" value length = 2 at offset 213 needs at least 16 bytes, only 8 left"),
    ("truncated_0222_kv5_test_words_value1_length", "kv[5] \"test.words\" value length = 2 at offset 213 needs at least 16 bytes, only 9 left"),
    ("truncated_0230_kv5_test_words_value1", "truncated: kv[5] \"test.words\" value[1] at offset 230 needs 2 bytes, only 0 left"),
    ("truncated_0232_tensor_info0_name_length", "header.tensor_count = 2 at offset 232 needs at least 48 bytes, only 0 left"),
    ("truncated_0240_tensor_info0_name", "header.tensor_count = 2 at offset 232 needs at least 48 bytes, only 8 left"),
    ("truncated_0241_tensor_info0_a_n_dims", "header.tensor_count = 2 at offset 232 needs at least 48 bytes, only 9 left"),
    ("truncated_0245_tensor_info0_a_ne0", "header.tensor_count = 2 at offset 232 needs at least 48 bytes, only 13 left"),
    ("truncated_0253_tensor_info0_a_ne1", "header.tensor_count = 2 at offset 232 needs at least 48 bytes, only 21 left"),
    ("truncated_0261_tensor_info0_a_type", "header.tensor_count = 2 at offset 232 needs at least 48 bytes, only 29 left"),
    ("truncated_0265_tensor_info0_a_offset", "header.tensor_count = 2 at offset 232 needs at least 48 bytes, only 33 left"),
    ("truncated_0273_tensor_info1_name_length", "header.tensor_count = 2 at offset 232 needs at least 48 bytes, only 41 left"),
    ("truncated_0281_tensor_info1_name", "truncated: tensor_info[1].name at offset 281 needs 1 bytes, only 0 left"),
    ("truncated_0282_tensor_info1_b_n_dims", "truncated: tensor_info[1] \"b\" n_dims at offset 282 needs 4 bytes, only 0 left"),
    ("truncated_0286_tensor_info1_b_ne0", "truncated: tensor_info[1] \"b\" ne[0] at offset 286 needs 8 bytes, only 0 left"),
    ("truncated_0294_tensor_info1_b_ne1", "truncated: tensor_info[1] \"b\" ne[1] at offset 294 needs 8 bytes, only 0 left"),
    ("truncated_0302_tensor_info1_b_type", "truncated: tensor_info[1] \"b\" type at offset 302 needs 4 bytes, only 0 left"),
    ("truncated_0306_tensor_info1_b_offset", "truncated: tensor_info[1] \"b\" offset at offset 306 needs 8 bytes, only 0 left"),
    ("truncated_0314_end_of_tensor_infos", "tensor \"a\": data at offset 0 (file offset 320) with 32 bytes ends past the end of the file (314 bytes)"),
    ("unknown_tensor_type", "tensor \"a\": unknown or unsupported ggml type id 4"),
    ("unknown_tensor_type_huge", "tensor \"a\": unknown or unsupported ggml type id 1000"),
    ("unknown_value_type", "kv[2] \"test.key_a\" value type at offset 123 has unknown value type id 13"),
    ("unknown_value_type_negative", "kv[2] \"test.key_a\" value type at offset 123 has unknown value type id 4294967295"),
    ("version_0", "unsupported GGUF version 0 (0 is not a GGUF version)"),
    ("version_1", "unsupported GGUF version 1 (GGUF v1 used 32-bit counts and lengths; ggml dropped it, re-convert the model)"),
    ("version_4", "unsupported GGUF version 4 (this reader supports versions 2 and 3)"),
    ("version_big_endian", "unsupported GGUF version 50331648 (the file looks big-endian; only little-endian GGUF is supported)"),
];

#[test]
fn every_corpus_file_fails_with_its_exact_message() {
    let mut failures = Vec::new();
    for (stem, expected) in EXPECTED {
        let path = corpus_dir().join(format!("{stem}.gguf"));
        let want = format!("{}: {expected}", path.display());
        match GgufFile::open(&path) {
            Ok(_) => failures.push(format!("{stem}: parsed without error")),
            Err(e) if e.to_string() == want => {}
            Err(e) => failures.push(format!("{stem}:\n  want {want}\n  got  {e}")),
        }
        // The in-memory parser gives the same error, naming `<memory>` instead of the path.
        let bytes = std::fs::read(&path).expect("corpus file is readable");
        match GgufFile::from_bytes(bytes) {
            Ok(_) => failures.push(format!("{stem}: parsed from memory without error")),
            Err(e) if e.to_string() == format!("<memory>: {expected}") => {}
            Err(e) => failures.push(format!("{stem} (from memory): got {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn corpus_and_expectations_list_the_same_files() {
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory exists")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".gguf").map(str::to_string))
        .filter(|n| n != "base_valid")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(s, _)| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every corpus file needs an expected error, and vice versa"
    );
    assert!(listed.len() >= 90, "corpus has only {} files", listed.len());
}

#[test]
fn base_file_of_the_corpus_is_valid() {
    let f = GgufFile::open(corpus_dir().join("base_valid.gguf")).expect("base file parses");
    assert_eq!(f.get_str("general.name").expect("name"), "tiny");
    assert_eq!(f.tensors().len(), 2);
}

#[test]
fn the_error_variants_carry_the_values() {
    let e = GgufFile::open(corpus_dir().join("unknown_tensor_type.gguf")).unwrap_err();
    match e {
        GgufError::UnknownTensorType {
            tensor, type_id, ..
        } => {
            assert_eq!((tensor.as_str(), type_id), ("a", 4));
        }
        other => panic!("wrong variant: {other:?}"),
    }
    let e = GgufFile::open(corpus_dir().join("overlapping_tensors.gguf")).unwrap_err();
    assert!(
        matches!(e, GgufError::OverlappingTensors { ref tensor, ref other, .. } if tensor == "b" && other == "a"),
        "{e:?}"
    );
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let p = corpus_dir().join("does_not_exist.gguf");
    let e = GgufFile::open(&p).unwrap_err();
    assert!(matches!(e, GgufError::Io { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read:", p.display())),
        "{e}"
    );
}

/// Every prefix shorter than the end of the last tensor's data fails; longer prefixes only
/// drop trailing padding, which this reader (like gguf-py) does not require.
fn assert_every_prefix_fails(bytes: &[u8], what: &str) {
    let f = GgufFile::from_bytes(bytes.to_vec()).expect("the whole file parses");
    let data_end = f
        .tensors()
        .iter()
        .map(|t| t.file_offset + t.n_bytes)
        .max()
        .unwrap_or(f.data_offset()) as usize;
    assert!(
        data_end <= bytes.len() && data_end + 64 > bytes.len(),
        "{what}: {data_end}"
    );
    for n in 0..bytes.len() {
        let r = GgufFile::validate_bytes(&bytes[..n]);
        match (n < data_end, r) {
            (true, Ok(())) => panic!("{what}: prefix of {n} of {} bytes parsed", bytes.len()),
            (true, Err(e)) => assert!(e.to_string().starts_with("<memory>: "), "{e}"),
            (false, Ok(())) => {}
            (false, Err(e)) => panic!("{what}: prefix of {n} bytes keeps all data but: {e}"),
        }
    }
}

#[test]
fn truncation_at_every_byte_offset_is_an_error() {
    let base = std::fs::read(corpus_dir().join("base_valid.gguf")).expect("base");
    assert_every_prefix_fails(&base, "base_valid");
    let reference = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/gguf/reference/gguf_py_all_types.gguf");
    let all = std::fs::read(reference).expect("reference file");
    assert_every_prefix_fails(&all, "gguf_py_all_types");
}

#[test]
fn single_byte_mutations_never_panic() {
    let base = std::fs::read(corpus_dir().join("base_valid.gguf")).expect("base");
    let mut errors = 0usize;
    for i in 0..base.len() {
        for v in [0x00u8, 0xff, 0x80, base[i] ^ 0x01, base[i].wrapping_add(32)] {
            let mut m = base.clone();
            m[i] = v;
            if GgufFile::validate_bytes(&m).is_err() {
                errors += 1;
            }
        }
    }
    // Most header bytes matter; tensor data bytes do not. Both outcomes occur.
    assert!(errors > 0 && errors < base.len() * 5, "errors: {errors}");
}
