//! What the taps in the forward pass cost when nobody listens.
//!
//! Decoding with `NoObserver` (the monomorphised no-op observer every normal run uses),
//! and with an observer behind `&mut dyn Observer` that wants nothing (a runtime "no" at
//! each tap). Build it twice to compare against taps compiled out:
//!
//! ```sh
//! cargo bench -p apr-engine --bench taps -- --save-baseline taps
//! cargo bench -p apr-engine --bench taps --features no-taps -- --baseline taps
//! ```
//!
//! The second run reports the change of each case relative to the first (docs/perf.md).

use std::path::Path;

use apr_engine::model::{Backend, Logits, Model};
use apr_engine::trace::{NoObserver, Observer, Stage};
use criterion::{criterion_group, criterion_main, Criterion};

/// Says no at run time, so the compiler cannot drop the taps.
struct WantsNothing;

impl Observer for WantsNothing {
    fn wants(&self, _: Option<usize>, _: Stage) -> bool {
        std::hint::black_box(false)
    }
    fn record(&mut self, _: Option<usize>, _: Stage, _: usize, _: &[f32]) {}
}

fn decode(model: &Model, obs: &mut dyn Observer, steps: u32) {
    let mut cache = model.new_cache(steps as usize);
    for t in 0..steps {
        model
            .forward(&[300 + t], &mut cache, obs, Logits::Last)
            .unwrap();
    }
}

fn taps(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models");
    let mut group = c.benchmark_group("decode_32_tokens");
    group.sample_size(20);
    for stem in ["llama-Q4_0", "qwen3moe-Q4_K_M"] {
        let model = Model::open(dir.join(format!("{stem}.gguf")), Backend::Cpu).unwrap();
        group.bench_function(format!("{stem}/no_observer"), |b| {
            b.iter(|| {
                let mut cache = model.new_cache(32);
                for t in 0..32u32 {
                    model
                        .forward(&[300 + t], &mut cache, &mut NoObserver, Logits::Last)
                        .unwrap();
                }
            })
        });
        group.bench_function(format!("{stem}/dyn_wants_nothing"), |b| {
            b.iter(|| decode(&model, &mut WantsNothing, 32))
        });
    }
    group.finish();
}

criterion_group!(benches, taps);
criterion_main!(benches);
