//! `apr convert`'s GGUF -> APR -> GGUF round trip against the outside reference, gguf-py
//! (llama.cpp's `gguf` package, pinned in tools/apr_ref/requirements.txt).
//!
//! tools/apr_ref/dump_roundtrip.py ran our `apr convert` on one fixture (to APR and back) and
//! wrote what gguf-py reads from the result (metadata, tensor infos, per-tensor sha256) to
//! tests/data/apr/<fixture>.roundtrip.gguf_py.json, and what gguf-py reads from the original
//! fixture to <fixture>.original.gguf_py.json. Here:
//!
//! (a) the committed round-trip dump equals the committed dump of the original: gguf-py reads the
//!     round-tripped file identically (and the files are byte-identical);
//! (b) today's round trip, done in-process, still produces exactly what gguf-py saw;
//! (c) the APR file itself, read through `ModelFile`, shows gguf-py's metadata and tensor bytes.

#[path = "common/gguf_json.rs"]
mod gguf_json;

use std::path::PathBuf;

use apr_engine::apr::{to_apr_bytes, write_gguf};
use apr_engine::gguf::{GgufFile, TensorInfo};
use apr_engine::model_file::{ModelFile, ModelFormat};
use gguf_json::metadata_json;
use serde_json::{json, Value};

const FIXTURE: &str = "qwen3moe-Q4_K_M";

fn read_json(name: &str) -> Value {
    gguf_json::read_json(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/apr")
            .join(name),
    )
}

fn tensors_json(tensors: &[TensorInfo], data: impl Fn(&TensorInfo) -> Vec<u8>) -> Value {
    tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ggml_type.name(),
                "ne": t.ne,
                "n_elements": t.n_elements,
                "n_bytes": t.n_bytes,
                "offset": t.offset,
                "sha256": hex(&sha256(&data(t))),
            })
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Our whole dump of a GGUF image, in the script's format.
fn dump(bytes: &[u8]) -> Value {
    let f = GgufFile::from_bytes(bytes.to_vec()).expect("round trip parses");
    json!({
        "producer": "gguf-py GGUFReader (version pinned in tools/apr_ref/requirements.txt)",
        "file_size": bytes.len(),
        "file_sha256": hex(&sha256(bytes)),
        "version": f.version(),
        "alignment": f.alignment(),
        "data_offset": f.data_offset(),
        "metadata": metadata_json(f.metadata()),
        "tensors": tensors_json(f.tensors(), |t| f.tensor_data(t).to_vec()),
    })
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(format!("{FIXTURE}.gguf"))
}

#[test]
fn gguf_py_reads_the_round_trip_as_the_original() {
    let round = read_json(&format!("{FIXTURE}.roundtrip.gguf_py.json"));
    let original = read_json(&format!("{FIXTURE}.original.gguf_py.json"));
    assert_eq!(round, original);
    // Not an empty dump: the MoE fixture's metadata and all its tensors are there.
    assert_eq!(original["metadata"].as_array().unwrap().len(), 27);
    assert_eq!(original["tensors"].as_array().unwrap().len(), 50);
}

#[test]
fn our_round_trip_matches_what_gguf_py_saw() {
    let expected = read_json(&format!("{FIXTURE}.roundtrip.gguf_py.json"));
    let apr = to_apr_bytes(&ModelFile::open(fixture_path()).unwrap()).unwrap();
    let apr = ModelFile::from_bytes(apr).unwrap();
    assert_eq!(apr.format(), ModelFormat::Apr);
    let mut gguf = Vec::new();
    write_gguf(&apr, &mut gguf, "<memory>").unwrap();
    let ours = dump(&gguf);
    for field in [
        "file_size",
        "file_sha256",
        "version",
        "alignment",
        "data_offset",
        "metadata",
        "tensors",
    ] {
        assert_eq!(ours[field], expected[field], "{field}");
    }
}

#[test]
fn the_apr_file_shows_gguf_py_metadata_and_tensor_bytes() {
    let expected = read_json(&format!("{FIXTURE}.original.gguf_py.json"));
    let apr = to_apr_bytes(&ModelFile::open(fixture_path()).unwrap()).unwrap();
    let m = ModelFile::from_bytes(apr).unwrap();
    assert_eq!(metadata_json(m.metadata()), expected["metadata"]);
    // Offsets differ by design (APR lays data out at 64-byte multiples); all else is identical.
    let mut ours = tensors_json(m.tensors(), |t| m.tensor_data(t).to_vec());
    let mut theirs = expected["tensors"].clone();
    for v in [&mut ours, &mut theirs] {
        for t in v.as_array_mut().unwrap() {
            t.as_object_mut().unwrap().remove("offset");
        }
    }
    assert_eq!(ours, theirs);
}

/// SHA-256 (FIPS 180-4), written from the standard for this test: the dump's per-tensor hashes
/// come from Python's hashlib, so this must agree with it bit for bit.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (o, x) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// FIPS 180-4 / NIST CSRC example vectors.
#[test]
fn sha256_known_answers() {
    assert_eq!(
        hex(&sha256(b"")),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(&sha256(
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        )),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
}
