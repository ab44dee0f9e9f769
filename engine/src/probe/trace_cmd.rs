//! `apr trace`: run a prompt through a model once, with per-stage statistics
//! (`--payload`) and/or APRT captures (`--save-tensor … --output DIR`).

use std::io::Write;
use std::path::PathBuf;

use super::error::ProbeError;
use super::spec::{tokenize, RunSource, RunSpec};
use crate::model::Backend;
use crate::trace::capture::{CaptureObserver, Selection, Tee};
use crate::trace::report::{render_json, render_table};
use crate::trace::{NoObserver, Observer, StatsObserver};

/// What `apr trace` was asked to do.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    pub model: PathBuf,
    pub prompt: String,
    pub backend: Backend,
    pub threads: Option<usize>,
    /// Print per-stage statistics.
    pub payload: bool,
    /// JSON output: the statistics with `payload`, else a summary of the run.
    pub json: bool,
    /// `--save-tensor` stages (comma list or `all`) and `--layer` list.
    pub save: Option<(String, Option<String>)>,
    pub output: Option<PathBuf>,
}

/// Run the trace, writing the report to `out`; returns the files written.
pub fn run(opts: &TraceOptions, out: &mut dyn Write) -> Result<Vec<PathBuf>, ProbeError> {
    if opts.save.is_some() && opts.output.is_none() {
        return Err(ProbeError::BadSpec {
            spec: "--save-tensor".into(),
            reason: "needs --output DIR".into(),
        });
    }
    let spec = RunSpec {
        source: RunSource::Model(opts.model.clone()),
        backend: opts.backend,
        threads: opts.threads,
    };
    let model = spec.load()?.ok_or(ProbeError::NoModel)?;
    let tokens = tokenize(&model, &opts.prompt)?;
    let mut stats = opts.payload.then(StatsObserver::all);
    let mut capture = match &opts.save {
        Some((stages, layers)) => Some(CaptureObserver::new(Selection::parse(
            stages,
            layers.as_deref(),
        )?)),
        None => None,
    };
    let (mut no_stats, mut no_capture) = (NoObserver, NoObserver);
    let stats_obs: &mut (dyn Observer + Send) = match stats.as_mut() {
        Some(s) => s,
        None => &mut no_stats,
    };
    let capture_obs: &mut (dyn Observer + Send) = match capture.as_mut() {
        Some(c) => c,
        None => &mut no_capture,
    };
    spec.run(&model, &tokens, &mut Tee(stats_obs, capture_obs))?;
    let mut written = Vec::new();
    if let (Some(capture), Some(dir)) = (&capture, &opts.output) {
        written = capture.write(dir)?;
    }
    let io = ProbeError::Output;
    if let Some(stats) = &stats {
        if opts.json {
            writeln!(out, "{}", render_json(stats)).map_err(io)?;
        } else {
            writeln!(
                out,
                "{} [{}], {} tokens",
                opts.model.display(),
                opts.backend.name(),
                tokens.len()
            )
            .map_err(io)?;
            write!(out, "{}", render_table(stats)).map_err(io)?;
        }
    }
    if stats.is_none() && opts.json {
        writeln!(out, "{:#}", summary(opts, tokens.len(), written.len())).map_err(io)?;
    } else if !written.is_empty() && !opts.json {
        writeln!(out, "wrote {} APRT files", written.len()).map_err(io)?;
    }
    Ok(written)
}

/// What `--json` prints without `--payload`: how the run ran, for a caller that keeps the
/// captures (the contract harness records the SIMD tier in its evidence).
fn summary(opts: &TraceOptions, tokens: usize, files: usize) -> serde_json::Value {
    serde_json::json!({
        "model": opts.model.display().to_string(),
        "backend": opts.backend.name(),
        "threads": opts.threads.unwrap_or_else(rayon::current_num_threads),
        // The tier the cpu backend's kernels dispatch to in this process (APR_SIMD or the
        // best the CPU has); cpu-ref runs no dispatched kernel.
        "simd": crate::kernels::active_isa().name(),
        "tokens": tokens,
        "files_written": files,
    })
}
