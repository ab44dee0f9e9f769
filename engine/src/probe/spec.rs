//! A run: a model file with a backend and a thread count, or a directory of APRT dumps
//! that some earlier run (ours, the anchor tool's, or llama.cpp's) wrote.
//!
//! Syntax: `PATH[,backend=cpu|cpu-ref][,threads=N]`; a directory is a dump.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::ProbeError;
use crate::generate::generator::{encode_prompt, load_tokenizer};
use crate::model::{Backend, Logits, Model};
use crate::trace::capture::{read_capture_dir, Captured, RecordingObserver, TensorKey};
use crate::trace::{aprt, Observer};

/// Where a run's tensors come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunSource {
    Model(PathBuf),
    Dumps(PathBuf),
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub source: RunSource,
    pub backend: Backend,
    /// Threads for the run (`None`: rayon's default, `RAYON_NUM_THREADS` or all cores).
    pub threads: Option<usize>,
}

impl RunSpec {
    pub fn parse(text: &str) -> Result<RunSpec, ProbeError> {
        let bad = |reason: String| ProbeError::BadSpec {
            spec: text.to_owned(),
            reason,
        };
        let mut parts = text.split(',');
        let path = PathBuf::from(parts.next().unwrap_or_default());
        if path.as_os_str().is_empty() {
            return Err(bad("no path".into()));
        }
        let mut spec = RunSpec {
            source: if path.is_dir() {
                RunSource::Dumps(path)
            } else {
                RunSource::Model(path)
            },
            backend: Backend::Cpu,
            threads: None,
        };
        for opt in parts {
            match opt.split_once('=') {
                Some(("backend", b)) => {
                    spec.backend = Backend::from_name(b)
                        .ok_or_else(|| bad(format!("unknown backend '{b}' (cpu, cpu-ref)")))?;
                }
                Some(("threads", n)) => {
                    let n: usize = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        bad(format!("threads must be a positive integer, not '{n}'"))
                    })?;
                    spec.threads = Some(n);
                }
                _ => {
                    return Err(bad(format!(
                        "unknown option '{opt}' (backend=…, threads=…)"
                    )))
                }
            }
        }
        Ok(spec)
    }

    /// A short label for tables: the file name with its options.
    pub fn label(&self) -> String {
        let (RunSource::Model(p) | RunSource::Dumps(p)) = &self.source;
        let name = p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        match (&self.source, self.threads) {
            (RunSource::Dumps(_), _) => format!("{name}/ (dumps)"),
            (RunSource::Model(_), None) => format!("{name} [{}]", self.backend.name()),
            (RunSource::Model(_), Some(t)) => {
                format!("{name} [{}, {t} threads]", self.backend.name())
            }
        }
    }

    /// Load the model of a model spec.
    pub fn load(&self) -> Result<Option<Model>, ProbeError> {
        match &self.source {
            RunSource::Model(p) => Ok(Some(Model::open(p, self.backend)?)),
            RunSource::Dumps(_) => Ok(None),
        }
    }

    /// Every stage of one forward pass over `tokens` (all positions), or the dumps.
    pub fn capture(
        &self,
        model: Option<&Model>,
        tokens: &[u32],
    ) -> Result<BTreeMap<TensorKey, Captured>, ProbeError> {
        match (&self.source, model) {
            (RunSource::Dumps(dir), _) => read_dumps(dir),
            (RunSource::Model(_), Some(model)) => {
                let mut obs = RecordingObserver::all();
                self.run(model, tokens, &mut obs)?;
                Ok(obs.concatenated()?)
            }
            (RunSource::Model(_), None) => Err(ProbeError::NoModel),
        }
    }

    /// One forward pass over `tokens` with `obs`, on this spec's thread count.
    pub fn run<O: Observer + Send>(
        &self,
        model: &Model,
        tokens: &[u32],
        obs: &mut O,
    ) -> Result<Vec<f32>, ProbeError> {
        if tokens.is_empty() {
            return Err(ProbeError::EmptyPrompt);
        }
        let forward = |obs: &mut O| -> Result<Vec<f32>, ProbeError> {
            let mut cache = model.new_cache(tokens.len());
            Ok(model.forward(tokens, &mut cache, obs, Logits::All)?)
        };
        match self.threads {
            None => forward(obs),
            Some(threads) => rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| ProbeError::Threads {
                    threads,
                    reason: e.to_string(),
                })?
                .install(|| forward(obs)),
        }
    }
}

/// The prompt's tokens exactly as `apr run` makes them ([`load_tokenizer`] with its
/// architecture-default BOS, announced on stderr, then [`encode_prompt`]).
pub fn tokenize(model: &Model, prompt: &str) -> Result<Vec<u32>, ProbeError> {
    let (tokenizer, notice) = load_tokenizer(model)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    Ok(encode_prompt(&tokenizer, prompt)?)
}

/// Read a directory of APRT dumps as captures.
fn read_dumps(dir: &Path) -> Result<BTreeMap<TensorKey, Captured>, ProbeError> {
    Ok(read_capture_dir(dir)?
        .into_iter()
        .map(|(key, t)| {
            let (positions, features) = match t.shape {
                aprt::Shape::Matrix {
                    positions,
                    features,
                } => (positions, features),
                aprt::Shape::Flat { count } => (1, count),
            };
            (
                key,
                Captured {
                    positions,
                    features,
                    data: t.data,
                },
            )
        })
        .collect())
}
