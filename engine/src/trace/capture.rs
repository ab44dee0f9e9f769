//! Observers that keep tensors: [`CaptureObserver`] writes the selected (layer, stage) tensors
//! as APRT files (`apr trace --save-tensor`), [`RecordingObserver`] keeps every call in memory
//! (tests, bisection).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::aprt::{self, AprtError, AprtTensor};
use super::{Observer, Stage};

/// A (layer, stage) pair, ordered in compute order: `embedding`, then every layer's stages
/// in [`Stage::ALL`] order, then the whole-model stages after the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TensorKey {
    /// `None` for whole-model stages.
    pub layer: Option<usize>,
    pub stage: Stage,
}

impl TensorKey {
    pub fn new(layer: Option<usize>, stage: Stage) -> TensorKey {
        TensorKey { layer, stage }
    }

    /// 0 before the layers, 1 inside them, 2 after them.
    fn phase(&self) -> u8 {
        match (self.layer, self.stage) {
            (Some(_), _) => 1,
            (None, Stage::Embedding) => 0,
            (None, _) => 2,
        }
    }

    /// The file this tensor is saved to, relative to the capture directory:
    /// `layer-<N>/<stage>.bin`, or `<stage>.bin` for whole-model stages.
    pub fn relative_path(&self) -> PathBuf {
        let file = format!("{}.bin", self.stage.name());
        match self.layer {
            Some(l) => Path::new(&format!("layer-{l}")).join(file),
            None => PathBuf::from(file),
        }
    }
}

impl Ord for TensorKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.phase(), self.layer, self.stage).cmp(&(other.phase(), other.layer, other.stage))
    }
}

impl PartialOrd for TensorKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for TensorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.layer {
            Some(l) => write!(f, "layer {l} {}", self.stage),
            None => write!(f, "{}", self.stage),
        }
    }
}

/// A bad `--save-tensor` / `--layer` argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("unknown stage `{name}` in --save-tensor; valid stages: {valid}, or `all`")]
    UnknownStage { name: String, valid: String },
    #[error("empty stage name in --save-tensor {arg:?}")]
    EmptyStage { arg: String },
    #[error("bad layer `{item}` in --layer {arg:?}: expected a non-negative integer")]
    BadLayer { item: String, arg: String },
}

/// Which (layer, stage) tensors to keep. Whole-model stages are kept whenever their stage is
/// selected: the layer filter applies to per-layer stages only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `None`: every stage.
    pub stages: Option<BTreeSet<Stage>>,
    /// `None`: every layer.
    pub layers: Option<BTreeSet<usize>>,
}

impl Selection {
    /// Every stage of every layer.
    pub fn all() -> Selection {
        Selection::default()
    }

    /// Parse the CLI syntax: `stages` is `<stage>[,<stage>…]` or `all`; `layers` (if given)
    /// is `N[,M…]`.
    pub fn parse(stages: &str, layers: Option<&str>) -> Result<Selection, SelectionError> {
        let stages = if stages.trim() == "all" {
            None
        } else {
            let mut set = BTreeSet::new();
            for item in stages.split(',').map(str::trim) {
                if item.is_empty() {
                    return Err(SelectionError::EmptyStage {
                        arg: stages.to_string(),
                    });
                }
                if item == "all" {
                    return Ok(Selection {
                        stages: None,
                        layers: parse_layers(layers)?,
                    });
                }
                let stage = Stage::from_name(item).ok_or_else(|| SelectionError::UnknownStage {
                    name: item.to_string(),
                    valid: Stage::ALL.map(Stage::name).join(", "),
                })?;
                set.insert(stage);
            }
            Some(set)
        };
        Ok(Selection {
            stages,
            layers: parse_layers(layers)?,
        })
    }

    /// Whether the tensor of `stage` at `layer` is selected.
    pub fn contains(&self, layer: Option<usize>, stage: Stage) -> bool {
        let stage_ok = self.stages.as_ref().is_none_or(|s| s.contains(&stage));
        let layer_ok = match (layer, &self.layers) {
            (Some(l), Some(ls)) => ls.contains(&l),
            _ => true,
        };
        stage_ok && layer_ok
    }
}

fn parse_layers(arg: Option<&str>) -> Result<Option<BTreeSet<usize>>, SelectionError> {
    let Some(arg) = arg else { return Ok(None) };
    arg.split(',')
        .map(str::trim)
        .map(|item| {
            item.parse::<usize>().map_err(|_| SelectionError::BadLayer {
                item: item.to_string(),
                arg: arg.to_string(),
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()
        .map(Some)
}

/// One `record` call as the forward pass made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub key: TensorKey,
    pub positions: usize,
    pub data: Vec<f32>,
}

/// The positions of one (layer, stage) across calls, concatenated.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    pub positions: usize,
    pub features: usize,
    /// `positions × features` values, row-major, in the order they were recorded.
    pub data: Vec<f32>,
}

/// A `record` call the capture could not keep; reported by [`CaptureObserver::write`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{key}: {len} values do not split into {positions} positions")]
    BadShape {
        key: TensorKey,
        positions: usize,
        len: usize,
    },
    #[error("{key}: {features} features per position now, {earlier} in an earlier call")]
    FeaturesChanged {
        key: TensorKey,
        features: usize,
        earlier: usize,
    },
}

/// The features per position of a call, or why the call's shape is wrong.
pub(crate) fn features_of(
    key: TensorKey,
    positions: usize,
    len: usize,
) -> Result<usize, RecordError> {
    if positions == 0 || !len.is_multiple_of(positions) {
        return Err(RecordError::BadShape {
            key,
            positions,
            len,
        });
    }
    Ok(len / positions)
}

/// Append a call to the concatenation of its (layer, stage).
fn append(
    map: &mut BTreeMap<TensorKey, Captured>,
    key: TensorKey,
    positions: usize,
    data: &[f32],
) -> Result<(), RecordError> {
    let features = features_of(key, positions, data.len())?;
    match map.get_mut(&key) {
        Some(c) if c.features != features => Err(RecordError::FeaturesChanged {
            key,
            features,
            earlier: c.features,
        }),
        Some(c) => {
            c.positions += positions;
            c.data.extend_from_slice(data);
            Ok(())
        }
        None => {
            map.insert(
                key,
                Captured {
                    positions,
                    features,
                    data: data.to_vec(),
                },
            );
            Ok(())
        }
    }
}

/// Keeps every selected `record` call in memory, in call order.
#[derive(Debug, Clone, Default)]
pub struct RecordingObserver {
    selection: Selection,
    records: Vec<Record>,
}

impl RecordingObserver {
    /// Record what `selection` selects.
    pub fn new(selection: Selection) -> RecordingObserver {
        RecordingObserver {
            selection,
            records: Vec::new(),
        }
    }

    /// Record everything.
    pub fn all() -> RecordingObserver {
        RecordingObserver::new(Selection::all())
    }

    /// The calls, in the order the forward pass made them.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn into_records(self) -> Vec<Record> {
        self.records
    }

    /// Each (layer, stage) with its calls' positions concatenated, in compute order; the
    /// first call whose shape is inconsistent is an error.
    pub fn concatenated(&self) -> Result<BTreeMap<TensorKey, Captured>, RecordError> {
        let mut map = BTreeMap::new();
        for r in &self.records {
            append(&mut map, r.key, r.positions, &r.data)?;
        }
        Ok(map)
    }
}

impl Observer for RecordingObserver {
    fn wants(&self, layer: Option<usize>, stage: Stage) -> bool {
        self.selection.contains(layer, stage)
    }

    fn record(&mut self, layer: Option<usize>, stage: Stage, positions: usize, data: &[f32]) {
        self.records.push(Record {
            key: TensorKey::new(layer, stage),
            positions,
            data: data.to_vec(),
        });
    }
}

/// Why a capture could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{count} record call(s) could not be kept; first: {first}")]
    Record { count: usize, first: RecordError },
    #[error("{key}: layer {layer} does not fit the APRT layer field (u32 below 0xffffffff)")]
    LayerTooLarge { key: TensorKey, layer: usize },
    #[error(transparent)]
    Aprt(#[from] AprtError),
    #[error("{path}: cannot {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the header says {header}, the path says {from_path}")]
    PathContradictsHeader {
        path: String,
        header: String,
        from_path: String,
    },
}

/// Keeps the selected tensors (positions of repeated calls concatenated: prefill, then each
/// decode step) and writes them as APRT files with [`CaptureObserver::write`].
///
/// Tensors are held in memory until written: a capture of every stage of a large model over
/// a long prompt needs that much memory; select stages and layers to bound it.
#[derive(Debug, Clone, Default)]
pub struct CaptureObserver {
    selection: Selection,
    tensors: BTreeMap<TensorKey, Captured>,
    errors: Vec<RecordError>,
}

impl CaptureObserver {
    pub fn new(selection: Selection) -> CaptureObserver {
        CaptureObserver {
            selection,
            tensors: BTreeMap::new(),
            errors: Vec::new(),
        }
    }

    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The kept tensors, in compute order.
    pub fn tensors(&self) -> &BTreeMap<TensorKey, Captured> {
        &self.tensors
    }

    /// Calls that could not be kept (inconsistent shapes).
    pub fn errors(&self) -> &[RecordError] {
        &self.errors
    }

    /// Write `DIR/layer-<N>/<stage>.bin` and `DIR/<stage>.bin` (whole-model stages); returns
    /// the paths written, in compute order. Refuses to write anything if a call could not be
    /// kept.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, CaptureError> {
        if let Some(first) = self.errors.first() {
            return Err(CaptureError::Record {
                count: self.errors.len(),
                first: first.clone(),
            });
        }
        let mut written = Vec::with_capacity(self.tensors.len());
        for (key, c) in &self.tensors {
            let layer = match key.layer {
                Some(l) => match u32::try_from(l) {
                    Ok(v) if v != aprt::WHOLE_MODEL => Some(v),
                    _ => {
                        return Err(CaptureError::LayerTooLarge {
                            key: *key,
                            layer: l,
                        })
                    }
                },
                None => None,
            };
            let path = dir.join(key.relative_path());
            let header = aprt::Header {
                layer,
                stage: key.stage.name().to_string(),
                positions: c.positions,
                features: c.features,
            };
            aprt::write(&path, &header, &c.data)?;
            written.push(path);
        }
        Ok(written)
    }
}

impl Observer for CaptureObserver {
    fn wants(&self, layer: Option<usize>, stage: Stage) -> bool {
        self.selection.contains(layer, stage)
    }

    fn record(&mut self, layer: Option<usize>, stage: Stage, positions: usize, data: &[f32]) {
        let key = TensorKey::new(layer, stage);
        if let Err(e) = append(&mut self.tensors, key, positions, data) {
            self.errors.push(e);
        }
    }
}

/// The (layer, stage) a capture-relative path names (`layer-<N>/<stage>.bin` for per-layer
/// stages, `<stage>.bin` for whole-model stages, `/`-separated), if it is one.
pub fn key_of_relative_path(rel: &str) -> Option<TensorKey> {
    let (dir, file) = match rel.split_once('/') {
        Some((d, f)) => (Some(d), f),
        None => (None, rel),
    };
    let stage = Stage::from_name(file.strip_suffix(".bin")?)?;
    let layer = match dir {
        Some(d) => Some(d.strip_prefix("layer-")?.parse::<usize>().ok()?),
        None => None,
    };
    (layer.is_some() != stage.is_whole_model()).then_some(TensorKey::new(layer, stage))
}

/// Read a capture directory (as [`CaptureObserver::write`] or the anchor tool writes it):
/// every `DIR/<stage>.bin` of a whole-model stage and `DIR/layer-<N>/<stage>.bin` of a
/// per-layer stage, keyed in compute order. Other files and directories are ignored. A header
/// whose layer or stage contradicts the path is an error.
pub fn read_capture_dir(dir: &Path) -> Result<BTreeMap<TensorKey, AprtTensor>, CaptureError> {
    let list = |d: &Path| -> Result<Vec<(String, PathBuf, bool)>, CaptureError> {
        let io = |source| CaptureError::Io {
            path: d.display().to_string(),
            op: "list directory",
            source,
        };
        let mut v = Vec::new();
        for e in std::fs::read_dir(d).map_err(io)? {
            let e = e.map_err(io)?;
            let path = e.path();
            let is_dir = std::fs::metadata(&path)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            v.push((e.file_name().to_string_lossy().into_owned(), path, is_dir));
        }
        Ok(v)
    };
    let mut out = BTreeMap::new();
    let mut candidates = Vec::new();
    for (name, path, is_dir) in list(dir)? {
        if is_dir && name.starts_with("layer-") {
            for (sub, p, sub_is_dir) in list(&path)? {
                if !sub_is_dir {
                    candidates.push((format!("{name}/{sub}"), p));
                }
            }
        } else if !is_dir {
            candidates.push((name, path));
        }
    }
    for (rel, path) in candidates {
        let Some(key) = key_of_relative_path(&rel) else {
            continue;
        };
        let t = aprt::read(&path)?;
        let header_layer = t.layer.map(|l| l as usize);
        let stage_ok = t.stage.as_deref().is_none_or(|s| s == key.stage.name());
        if header_layer != key.layer || !stage_ok {
            return Err(CaptureError::PathContradictsHeader {
                path: path.display().to_string(),
                header: format!(
                    "{} {}",
                    header_layer.map_or("whole-model".to_string(), |l| format!("layer {l}")),
                    t.stage.as_deref().unwrap_or("(no stage)")
                ),
                from_path: key.to_string(),
            });
        }
        out.insert(key, t);
    }
    Ok(out)
}

/// Two observers as one: a tensor is offered to each that wants it (e.g. statistics and a
/// capture in the same run).
#[derive(Debug, Clone, Default)]
pub struct Tee<A, B>(pub A, pub B);

impl<A: Observer, B: Observer> Observer for Tee<A, B> {
    fn wants(&self, layer: Option<usize>, stage: Stage) -> bool {
        self.0.wants(layer, stage) || self.1.wants(layer, stage)
    }

    fn record(&mut self, layer: Option<usize>, stage: Stage, positions: usize, data: &[f32]) {
        if self.0.wants(layer, stage) {
            self.0.record(layer, stage, positions, data);
        }
        if self.1.wants(layer, stage) {
            self.1.record(layer, stage, positions, data);
        }
    }
}
