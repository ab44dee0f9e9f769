//! APRT: our layout round-trips bit-exactly, the anchor tool's 12-byte layout (a committed file
//! written by `tests/data/aprt/gen_anchor12.py`) is read, and every truncation or corruption is
//! the exact error.

use std::path::{Path, PathBuf};

use apr_engine::trace::aprt::{self, AprtError, Header, Layout, Shape, MAX_STAGE_NAME_LEN};

/// Bit patterns that a careless writer or reader would change.
const SPECIAL_BITS: [u32; 10] = [
    0x7fc0_0001, // quiet NaN, payload 1
    0xffa0_0000, // negative NaN in the signalling range
    0x7f80_0001, // signalling NaN, payload 1
    0x8000_0000, // -0.0
    0x0000_0001, // smallest positive subnormal
    0x807f_ffff, // largest-magnitude negative subnormal
    0x7f80_0000, // +Inf
    0xff80_0000, // -Inf
    0x3f80_0000, // 1.0
    0xc049_0fdb, // -pi
];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/aprt")
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("trace_aprt-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn floats(b: &[u32]) -> Vec<f32> {
    b.iter().map(|&x| f32::from_bits(x)).collect()
}

fn header(layer: Option<u32>, stage: &str, positions: usize, features: usize) -> Header {
    Header {
        layer,
        stage: stage.to_string(),
        positions,
        features,
    }
}

#[test]
fn our_layout_round_trips_special_bit_patterns_exactly() {
    let data = floats(&SPECIAL_BITS);
    let h = header(Some(7), "ffn_gate", 2, 5);
    let bytes = aprt::encode(&h, &data).expect("encode");
    let t = aprt::decode(&bytes, "<memory>").expect("decode");
    assert_eq!(t.layout, Layout::Described { version: 1 });
    assert_eq!(t.layer, Some(7));
    assert_eq!(t.stage.as_deref(), Some("ffn_gate"));
    assert_eq!(
        t.shape,
        Shape::Matrix {
            positions: 2,
            features: 5
        }
    );
    assert_eq!(bits(&t.data), SPECIAL_BITS.to_vec());
    // The data bytes are the bit patterns, little-endian, after the 44-byte header.
    let want: Vec<u8> = SPECIAL_BITS.iter().flat_map(|b| b.to_le_bytes()).collect();
    assert_eq!(&bytes[44..], &want[..]);
    // Deterministic: encoding the decoded tensor again gives the same bytes.
    assert_eq!(aprt::encode(&h, &t.data).expect("re-encode"), bytes);

    // Through a file, too.
    let dir = scratch("roundtrip");
    let path = dir.join("layer-7/ffn_gate.bin");
    aprt::write(&path, &h, &data).expect("write");
    let back = aprt::read(&path).expect("read");
    assert_eq!(bits(&back.data), SPECIAL_BITS.to_vec());
    assert_eq!(std::fs::read(&path).expect("bytes"), bytes);
}

#[test]
fn our_layout_bytes_match_the_specification() {
    // docs/aprt.md, field by field: layer 3, stage "attn_norm" (9 bytes, 3 of padding),
    // shape [1, 2], values 1.0 and -2.0.
    let bytes = aprt::encode(&header(Some(3), "attn_norm", 1, 2), &[1.0, -2.0]).expect("encode");
    let mut want = Vec::new();
    want.extend_from_slice(b"APRT");
    want.extend_from_slice(&[0x01, 0x00, 0x00, 0x80]); // format word 0x8000_0001
    want.extend_from_slice(&[0, 0, 0, 0]); // dtype f32
    want.extend_from_slice(&[3, 0, 0, 0]); // layer
    want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // positions
    want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]); // features
    want.extend_from_slice(&[9, 0, 0, 0]); // stage_len
    want.extend_from_slice(b"attn_norm");
    want.extend_from_slice(&[0, 0, 0]); // padding to 48
    want.extend_from_slice(&[0x00, 0x00, 0x80, 0x3f]); // 1.0
    want.extend_from_slice(&[0x00, 0x00, 0x00, 0xc0]); // -2.0
    assert_eq!(bytes, want);

    // A whole-model stage stores 0xFFFFFFFF as its layer; a 4-byte name needs no padding.
    let bytes = aprt::encode(&header(None, "abcd", 0, 3), &[]).expect("encode");
    assert_eq!(&bytes[12..16], &[0xff; 4]);
    assert_eq!(bytes.len(), 40);
    let t = aprt::decode(&bytes, "x").expect("decode");
    assert_eq!(t.layer, None);
    assert!(t.data.is_empty());
}

#[test]
fn reads_the_committed_anchor_12_byte_files() {
    let path = data_dir().join("anchor12/layer-2/ffn_gate.bin");
    let t = aprt::read(&path).expect("read anchor file");
    let want_bits = [
        0x3fc0_0000,
        0xc010_0000,
        0x7fc0_0001,
        0xffa0_0000,
        0x8000_0000,
        0x0000_0001,
        0x7f80_0000,
        0x807f_ffff,
    ];
    // f32 equality treats NaN as unequal to itself: compare the fields and the bits.
    assert_eq!(t.layout, Layout::Anchor12);
    assert_eq!(t.layer, Some(2));
    assert_eq!(t.stage, None);
    assert_eq!(t.shape, Shape::Flat { count: 8 });
    assert_eq!(bits(&t.data), want_bits.to_vec());
    // Our anchor-layout writer produces the Python-written bytes exactly.
    assert_eq!(
        aprt::encode_anchor(Some(2), &t.data).expect("encode"),
        std::fs::read(&path).expect("bytes")
    );

    let t = aprt::read(&data_dir().join("anchor12/lm_head.bin")).expect("read whole-model");
    assert_eq!(t.layer, None);
    assert_eq!(t.data, vec![1.0, 2.0, 3.0]);
}

#[test]
fn layouts_are_told_apart_by_the_format_word() {
    // An anchor file for layer 0x7fff_ffff (the largest a 12-byte file can use) is still the
    // anchor layout; a format word with the high bit set is ours, and version 2 is refused.
    let mut anchor = aprt::encode_anchor(Some(0x7fff_ffff), &[1.0]).expect("encode");
    assert_eq!(
        aprt::decode(&anchor, "a").expect("decode").layout,
        Layout::Anchor12
    );
    anchor[4..8].copy_from_slice(&0x8000_0002u32.to_le_bytes());
    let e = aprt::decode(&anchor, "a.bin").unwrap_err();
    assert_eq!(
        e.to_string(),
        "a.bin: unsupported APRT version 2 (format word 0x80000002 at offset 4; this reader knows version 1)"
    );
    assert!(aprt::encode_anchor(Some(0x8000_0000), &[1.0]).is_err());
}

/// A 52-byte file of ours: 36 fixed bytes, "ffn_up" (6) + 2 padding, 2 values at 44.
fn sample() -> Vec<u8> {
    aprt::encode(&header(Some(1), "ffn_up", 1, 2), &[0.5, -0.5]).expect("encode")
}

#[test]
fn every_truncation_of_our_layout_names_its_field() {
    let full = sample();
    assert_eq!(full.len(), 52);
    for len in 0..full.len() {
        let e = aprt::decode(&full[..len], "t.bin").unwrap_err();
        let msg = e.to_string();
        let (field, offset, needed) = match len {
            0..=3 => ("magic", 0, 4),
            4..=7 => ("format word (or layer of the 12-byte layout)", 4, 4),
            8..=11 => ("dtype", 8, 4),
            12..=15 => ("layer", 12, 4),
            16..=23 => ("positions", 16, 8),
            24..=31 => ("features", 24, 8),
            32..=35 => ("stage_len", 32, 4),
            36..=41 => ("stage", 36, 6),
            42..=43 => ("padding", 42, 2),
            _ => {
                assert_eq!(
                    msg,
                    format!(
                        "t.bin: shape = [1, 2] needs 8 data bytes at offset 44, but the file has {} bytes after the header",
                        len - 44
                    ),
                    "prefix {len}"
                );
                continue;
            }
        };
        assert_eq!(
            msg,
            format!(
                "t.bin: truncated: {field} at offset {offset} needs {needed} bytes, the file has {}",
                len - offset
            ),
            "prefix {len}"
        );
        assert!(matches!(e, AprtError::Truncated { .. }), "prefix {len}");
    }
    // One byte too many is as wrong as one too few.
    let mut long = full.clone();
    long.push(0);
    assert_eq!(
        aprt::decode(&long, "t.bin").unwrap_err().to_string(),
        "t.bin: shape = [1, 2] needs 8 data bytes at offset 44, but the file has 9 bytes after the header"
    );
}

#[test]
fn every_truncation_of_the_anchor_layout_names_its_field() {
    let full = aprt::encode_anchor(Some(4), &[1.0, 2.0]).expect("encode");
    assert_eq!(full.len(), 20);
    for len in 0..full.len() {
        let msg = aprt::decode(&full[..len], "a.bin").unwrap_err().to_string();
        let want = match len {
            0..=3 => format!("a.bin: truncated: magic at offset 0 needs 4 bytes, the file has {len}"),
            4..=7 => format!(
                "a.bin: truncated: format word (or layer of the 12-byte layout) at offset 4 needs 4 bytes, the file has {}",
                len - 4
            ),
            8..=11 => format!(
                "a.bin: truncated: element_count at offset 8 needs 4 bytes, the file has {}",
                len - 8
            ),
            _ => format!(
                "a.bin: element_count = 2 needs 8 data bytes at offset 12, but the file has {} bytes after the header",
                len - 12
            ),
        };
        assert_eq!(msg, want, "prefix {len}");
    }
}

fn corrupt(offset: usize, bytes: &[u8]) -> String {
    let mut b = sample();
    b[offset..offset + bytes.len()].copy_from_slice(bytes);
    aprt::decode(&b, "c.bin").unwrap_err().to_string()
}

#[test]
fn corrupt_fields_are_exact_errors() {
    assert_eq!(
        corrupt(0, b"GGUF"),
        "c.bin: bad magic [47, 47, 55, 46] at offset 0 (expected \"APRT\" = [41, 50, 52, 54])"
    );
    assert_eq!(
        corrupt(8, &1u32.to_le_bytes()),
        "c.bin: unsupported dtype 1 at offset 8 (only 0 = f32 is defined)"
    );
    assert_eq!(
        corrupt(32, &0u32.to_le_bytes()),
        "c.bin: stage_len = 0 at offset 32 is invalid: must be 1..=64"
    );
    assert_eq!(
        corrupt(32, &(MAX_STAGE_NAME_LEN + 1).to_le_bytes()),
        "c.bin: stage_len = 65 at offset 32 is invalid: must be 1..=64"
    );
    assert_eq!(
        corrupt(36, b"ffn/up"),
        "c.bin: stage = \"ffn/up\" at offset 36 is invalid: a stage name is [A-Za-z0-9_.-] only"
    );
    assert_eq!(
        corrupt(42, &[0, 7]),
        "c.bin: padding = [00, 07] at offset 42 is invalid: padding bytes must be zero"
    );
    assert_eq!(
        corrupt(12, &[0xff; 4]),
        "c.bin: layer = 0xffffffff at offset 12 is invalid: stage `ffn_up` is per-layer, but the layer field says whole-model (0xffffffff)"
    );
    // A count that the file cannot hold is refused before anything is allocated.
    assert_eq!(
        corrupt(16, &(1u64 << 40).to_le_bytes()),
        "c.bin: shape = [1099511627776, 2] needs 8796093022208 data bytes at offset 44, but the file has 8 bytes after the header"
    );
    assert_eq!(
        corrupt(16, &u64::MAX.to_le_bytes()),
        "c.bin: shape = [18446744073709551615, 2] needs more than 2^64 data bytes at offset 44, but the file has 8 bytes after the header"
    );
    let mut anchor = aprt::encode_anchor(None, &[1.0]).expect("encode");
    anchor[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        aprt::decode(&anchor, "a.bin").unwrap_err().to_string(),
        "a.bin: element_count = 4294967295 needs 17179869180 data bytes at offset 12, but the file has 4 bytes after the header"
    );
}

#[test]
fn whole_model_stage_with_a_layer_is_refused_both_ways() {
    let e = aprt::encode(&header(Some(0), "embedding", 1, 1), &[1.0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "<memory>: cannot encode: stage `embedding` is whole-model, but the layer field says layer 0"
    );
    let mut b = aprt::encode(&header(None, "embedding", 1, 1), &[1.0]).expect("encode");
    b[12..16].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(
        aprt::decode(&b, "e.bin").unwrap_err().to_string(),
        "e.bin: layer = 0x0 at offset 12 is invalid: stage `embedding` is whole-model, but the layer field says layer 0"
    );
}

#[test]
fn writer_refuses_bad_input_and_names_the_file() {
    let dir = scratch("refuse");
    let path = dir.join("x.bin");
    let e = aprt::write(&path, &header(Some(0), "ffn_up", 2, 2), &[1.0; 3]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot encode: shape [2, 2] does not hold the 3 values given",
            path.display()
        )
    );
    assert!(!path.exists());
    let e = aprt::encode(&header(Some(u32::MAX), "ffn_up", 1, 1), &[1.0]).unwrap_err();
    assert!(e.to_string().contains("reserved for whole-model"), "{e}");
    let e = aprt::encode(&header(Some(0), "", 1, 1), &[1.0]).unwrap_err();
    assert!(e.to_string().contains("stage name \"\""), "{e}");
    let e = aprt::read(&dir.join("missing.bin")).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{}: cannot read: ",
            dir.join("missing.bin").display()
        )),
        "{e}"
    );
}
