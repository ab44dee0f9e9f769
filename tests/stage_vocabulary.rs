//! The harness validates contracts' stage names against its own list (it does not link the
//! engine); this keeps that list and the engine's `Stage` vocabulary the same, in the same
//! compute order.

use apr_engine::trace::Stage;
use apr_harness::stages::{is_stage, order, LAYER_STAGES, MODEL_STAGES};

#[test]
fn harness_stage_list_is_the_engine_vocabulary() {
    let engine: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
    let mut harness: Vec<&str> = LAYER_STAGES.iter().chain(MODEL_STAGES).copied().collect();
    harness.sort_by_key(|s| order(s));
    let mut engine_sorted = engine.clone();
    engine_sorted.sort_by_key(|s| order(s));
    assert_eq!(harness, engine_sorted, "same names");
    for s in Stage::ALL {
        assert!(is_stage(s.name()), "{s}");
        assert_eq!(
            s.is_whole_model(),
            MODEL_STAGES.contains(&s.name()),
            "{s}: whole-model in one list but not the other"
        );
    }
    let per_layer_engine: Vec<&str> = Stage::ALL
        .iter()
        .filter(|s| !s.is_whole_model())
        .map(|s| s.name())
        .collect();
    assert_eq!(
        LAYER_STAGES,
        per_layer_engine.as_slice(),
        "per-layer compute order"
    );
}
