//! Capture: the `--save-tensor` / `--layer` selection, the capture observer's files (layout,
//! concatenation of repeated calls, deterministic bytes), the recording observer.

use std::path::{Path, PathBuf};

use apr_engine::trace::aprt::{self, Shape};
use apr_engine::trace::capture::{
    key_of_relative_path, read_capture_dir, CaptureError, RecordError, SelectionError,
};
use apr_engine::trace::{
    tap, CaptureObserver, Observer, RecordingObserver, Selection, Stage, Tee, TensorKey,
};

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("trace_capture-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

#[test]
fn selection_parses_the_cli_syntax() {
    let s = Selection::parse("ffn_gate, attn_norm,lm_head", Some("0,2")).expect("valid");
    assert!(s.contains(Some(0), Stage::FfnGate));
    assert!(s.contains(Some(2), Stage::AttnNorm));
    assert!(!s.contains(Some(1), Stage::FfnGate), "layer 1 not selected");
    assert!(!s.contains(Some(0), Stage::FfnUp), "stage not selected");
    assert!(
        s.contains(None, Stage::LmHead),
        "--layer does not filter whole-model stages"
    );
    assert!(!s.contains(None, Stage::Embedding));

    let all = Selection::parse("all", None).expect("valid");
    assert!(Stage::ALL.iter().all(|&st| all.contains(Some(17), st)));
    assert_eq!(Selection::parse("all", None), Ok(Selection::all()));
    let all_l = Selection::parse("ffn_up,all", Some("3")).expect("valid");
    assert!(all_l.contains(Some(3), Stage::QNorm) && !all_l.contains(Some(4), Stage::QNorm));
}

#[test]
fn selection_errors_name_the_bad_item() {
    let e = Selection::parse("ffn_gate,ffn_gat", None).unwrap_err();
    assert!(matches!(&e, SelectionError::UnknownStage { name, .. } if name == "ffn_gat"));
    let msg = e.to_string();
    assert!(msg.starts_with("unknown stage `ffn_gat` in --save-tensor; valid stages: embedding, attn_norm, qkv_matmul,"), "{msg}");
    assert!(msg.ends_with("final_norm, lm_head, or `all`"), "{msg}");
    assert_eq!(
        Selection::parse("ffn_gate,,ffn_up", None)
            .unwrap_err()
            .to_string(),
        "empty stage name in --save-tensor \"ffn_gate,,ffn_up\""
    );
    assert_eq!(
        Selection::parse("all", Some("1,x"))
            .unwrap_err()
            .to_string(),
        "bad layer `x` in --layer \"1,x\": expected a non-negative integer"
    );
    assert!(Selection::parse("all", Some("-1")).is_err());
}

#[test]
fn tensor_keys_sort_in_compute_order() {
    let mut keys = [
        TensorKey::new(None, Stage::LmHead),
        TensorKey::new(Some(1), Stage::AttnNorm),
        TensorKey::new(None, Stage::FinalNorm),
        TensorKey::new(Some(0), Stage::FfnOut),
        TensorKey::new(None, Stage::Embedding),
        TensorKey::new(Some(0), Stage::AttnNorm),
        TensorKey::new(Some(10), Stage::AttnNorm),
    ];
    keys.sort();
    let names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        names,
        [
            "embedding",
            "layer 0 attn_norm",
            "layer 0 ffn_out",
            "layer 1 attn_norm",
            "layer 10 attn_norm",
            "final_norm",
            "lm_head"
        ]
    );
    assert_eq!(
        TensorKey::new(Some(3), Stage::FfnGate).relative_path(),
        Path::new("layer-3").join("ffn_gate.bin")
    );
    assert_eq!(
        TensorKey::new(None, Stage::LmHead).relative_path(),
        PathBuf::from("lm_head.bin")
    );
}

/// A pretend forward pass: prefill of 3 positions, then one decode step, 2 layers, 4 features.
fn fake_forward<O: Observer>(obs: &mut O) {
    for (start, n) in [(0usize, 3usize), (3, 1)] {
        let emb: Vec<f32> = (0..n * 4).map(|i| (start * 4 + i) as f32).collect();
        tap(obs, None, Stage::Embedding, n, &emb);
        for layer in 0..2 {
            let x: Vec<f32> = emb.iter().map(|v| v + 100.0 * layer as f32).collect();
            tap(obs, Some(layer), Stage::AttnNorm, n, &x);
            let g: Vec<f32> = x.iter().map(|v| -v).collect();
            tap(obs, Some(layer), Stage::FfnGate, n, &g);
        }
        tap(obs, None, Stage::LmHead, n, &emb[emb.len() - 4..].repeat(n));
    }
}

#[test]
fn capture_writes_the_selected_tensors_with_positions_concatenated() {
    let mut obs =
        CaptureObserver::new(Selection::parse("ffn_gate,lm_head", Some("1")).expect("ok"));
    fake_forward(&mut obs);
    let dir = scratch("selected");
    let written = obs.write(&dir).expect("write");
    assert_eq!(
        written,
        vec![dir.join("layer-1/ffn_gate.bin"), dir.join("lm_head.bin")]
    );
    let t = aprt::read(&dir.join("layer-1/ffn_gate.bin")).expect("read");
    assert_eq!(t.layer, Some(1));
    assert_eq!(t.stage.as_deref(), Some("ffn_gate"));
    assert_eq!(
        t.shape,
        Shape::Matrix {
            positions: 4,
            features: 4
        }
    );
    let want: Vec<f32> = (0..16).map(|i| -(i as f32 + 100.0)).collect();
    assert_eq!(t.data, want, "prefill rows, then the decode row");
    let lm = aprt::read(&dir.join("lm_head.bin")).expect("read");
    assert_eq!(lm.layer, None);
    assert_eq!(lm.shape.len(), 16);
    assert!(!dir.join("layer-0").exists());
    assert!(!dir.join("embedding.bin").exists());
}

#[test]
fn capture_bytes_are_deterministic() {
    let run = |name: &str| {
        let mut obs = CaptureObserver::new(Selection::all());
        fake_forward(&mut obs);
        let dir = scratch(name);
        let files = obs.write(&dir).expect("write");
        assert_eq!(
            files.len(),
            2 + 2 * 2,
            "embedding, lm_head, 2 stages x 2 layers"
        );
        files
            .iter()
            .map(|f| {
                (
                    f.strip_prefix(&dir).expect("under dir").to_path_buf(),
                    std::fs::read(f).expect("bytes"),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run("det-a"), run("det-b"));
}

#[test]
fn inconsistent_calls_are_reported_and_nothing_is_written() {
    let mut obs = CaptureObserver::new(Selection::all());
    obs.record(Some(0), Stage::FfnUp, 2, &[1.0; 8]);
    obs.record(Some(0), Stage::FfnUp, 1, &[1.0; 3]);
    obs.record(Some(0), Stage::FfnUp, 3, &[1.0; 4]);
    assert_eq!(
        obs.errors(),
        &[
            RecordError::FeaturesChanged {
                key: TensorKey::new(Some(0), Stage::FfnUp),
                features: 3,
                earlier: 4
            },
            RecordError::BadShape {
                key: TensorKey::new(Some(0), Stage::FfnUp),
                positions: 3,
                len: 4
            }
        ]
    );
    let dir = scratch("inconsistent");
    let e = obs.write(&dir).unwrap_err();
    assert!(matches!(e, CaptureError::Record { count: 2, .. }));
    assert_eq!(
        e.to_string(),
        "2 record call(s) could not be kept; first: layer 0 ffn_up: 3 features per position now, 4 in an earlier call"
    );
    assert!(std::fs::read_dir(&dir).expect("dir").next().is_none());
}

#[test]
fn recording_observer_keeps_calls_in_order() {
    let mut obs =
        RecordingObserver::new(Selection::parse("attn_norm,embedding", None).expect("ok"));
    fake_forward(&mut obs);
    let order: Vec<(String, usize)> = obs
        .records()
        .iter()
        .map(|r| (r.key.to_string(), r.positions))
        .collect();
    assert_eq!(
        order,
        [
            ("embedding", 3),
            ("layer 0 attn_norm", 3),
            ("layer 1 attn_norm", 3),
            ("embedding", 1),
            ("layer 0 attn_norm", 1),
            ("layer 1 attn_norm", 1),
        ]
        .map(|(k, n)| (k.to_string(), n))
    );
    let cat = obs.concatenated().expect("consistent");
    let emb = &cat[&TensorKey::new(None, Stage::Embedding)];
    assert_eq!((emb.positions, emb.features), (4, 4));
    assert_eq!(emb.data, (0..16).map(|i| i as f32).collect::<Vec<_>>());
    assert_eq!(cat.len(), 3);
    assert_eq!(RecordingObserver::all().records().len(), 0);
}

#[test]
fn capture_directories_read_back_keyed_in_compute_order() {
    let mut obs = CaptureObserver::new(Selection::all());
    fake_forward(&mut obs);
    let dir = scratch("readback");
    obs.write(&dir).expect("write");
    // Files that are not capture paths are ignored; a 12-byte-layout file is read too.
    std::fs::write(dir.join("README.txt"), "x").expect("write");
    std::fs::write(dir.join("layer-0/nonsense.bin"), "x").expect("write");
    std::fs::write(
        dir.join("layer-1/ffn_up.bin"),
        aprt::encode_anchor(Some(1), &[1.0, 2.0]).expect("encode"),
    )
    .expect("write");
    let got = read_capture_dir(&dir).expect("read");
    let keys: Vec<String> = got.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        keys,
        [
            "embedding",
            "layer 0 attn_norm",
            "layer 0 ffn_gate",
            "layer 1 attn_norm",
            "layer 1 ffn_gate",
            "layer 1 ffn_up",
            "lm_head"
        ]
    );
    for (k, t) in &got {
        if let Some(c) = obs.tensors().get(k) {
            assert_eq!(t.data, c.data, "{k}");
        }
    }

    // A header that contradicts its path is refused.
    std::fs::copy(
        dir.join("layer-0/attn_norm.bin"),
        dir.join("layer-1/attn_norm.bin"),
    )
    .expect("copy");
    let e = read_capture_dir(&dir).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the header says layer 0 attn_norm, the path says layer 1 attn_norm",
            dir.join("layer-1/attn_norm.bin").display()
        )
    );
}

#[test]
fn relative_paths_name_keys_only_in_the_capture_layout() {
    let k = |s: &str| key_of_relative_path(s).map(|k| k.to_string());
    assert_eq!(
        k("layer-3/ffn_gate.bin").as_deref(),
        Some("layer 3 ffn_gate")
    );
    assert_eq!(k("lm_head.bin").as_deref(), Some("lm_head"));
    assert_eq!(k("ffn_gate.bin"), None, "per-layer stage without a layer");
    assert_eq!(
        k("layer-0/lm_head.bin"),
        None,
        "whole-model stage inside a layer"
    );
    assert_eq!(k("layer-x/ffn_gate.bin"), None);
    assert_eq!(k("layer-1/ffn_gate.txt"), None);
    assert_eq!(k("layer-1/sub/ffn_gate.bin"), None);
}

#[test]
fn tee_offers_each_tensor_to_whichever_side_wants_it() {
    let mut tee = Tee(
        RecordingObserver::new(Selection::parse("embedding", None).expect("ok")),
        RecordingObserver::new(Selection::parse("ffn_gate", Some("0")).expect("ok")),
    );
    assert!(!tee.wants(Some(0), Stage::AttnNorm));
    assert!(tee.wants(Some(0), Stage::FfnGate) && tee.wants(None, Stage::Embedding));
    fake_forward(&mut tee);
    let left: Vec<String> = tee.0.records().iter().map(|r| r.key.to_string()).collect();
    let right: Vec<String> = tee.1.records().iter().map(|r| r.key.to_string()).collect();
    assert_eq!(left, ["embedding", "embedding"]);
    assert_eq!(right, ["layer 0 ffn_gate", "layer 0 ffn_gate"]);
}
