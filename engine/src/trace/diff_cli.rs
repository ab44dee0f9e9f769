//! `apr diff --values A B`: compare two APRT files, or two directories of them matched by
//! relative path (`layer-<N>/<stage>.bin`, `<stage>.bin`). The binary only parses flags and
//! calls [`run`]; `docs/diff.md` documents the output and the exit status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::aprt::{self, AprtError, AprtTensor, Layout, Shape};
use super::capture::key_of_relative_path;
use super::diff::{compare, top_differences, DiffMetrics, Tolerance, TopDiff};

/// Exit status: every pair within tolerance.
pub const EXIT_WITHIN: u8 = 0;
/// Exit status: a pair beyond tolerance (or a NaN/Inf mismatch).
pub const EXIT_BEYOND: u8 = 1;
/// Exit status: an error (unreadable or corrupt file, differing shapes, nothing to compare).
pub const EXIT_ERROR: u8 = 2;

/// The schema name of one pair's JSON (a superset of the anchor tool's fields).
pub const PAIR_SCHEMA: &str = "apr-stage-diff-v1";
/// The schema name of a directory comparison's JSON.
pub const DIR_SCHEMA: &str = "apr-stage-diff-dir-v1";

/// Deepest directory level searched below A and B (captures are one level deep).
pub const MAX_DEPTH: usize = 8;

/// Options of `apr diff --values`.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// How many of the largest differences to list per pair.
    pub top: usize,
    pub tolerance: Tolerance,
    pub json: bool,
}

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(transparent)]
    Aprt(#[from] AprtError),
    #[error("shapes differ: {a_file} is {a_shape}, {b_file} is {b_shape}")]
    ShapeMismatch {
        a_file: String,
        a_shape: String,
        b_file: String,
        b_shape: String,
    },
    #[error("{path}: cannot {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot compare {a} ({a_kind}) with {b} ({b_kind}): give two files or two directories"
    )]
    KindMismatch {
        a: String,
        a_kind: &'static str,
        b: String,
        b_kind: &'static str,
    },
    #[error("{a} and {b} have no .bin file in common ({only_a} only in A, {only_b} only in B)")]
    NothingInCommon {
        a: String,
        b: String,
        only_a: usize,
        only_b: usize,
    },
    #[error("{path}: deeper than {MAX_DEPTH} directory levels")]
    TooDeep { path: String },
}

/// One compared pair, as JSON (`apr-stage-diff-v1`).
#[derive(Debug, Clone, Serialize)]
pub struct PairReport {
    pub schema: &'static str,
    /// The relative path in directory mode, A's file name in file mode.
    pub name: String,
    pub path_a: String,
    pub path_b: String,
    /// A's layer: a number, or `"whole-model"` (as the anchor tool writes it).
    pub layer: serde_json::Value,
    /// The stage: A's header, else B's, else the file stem.
    pub stage: String,
    pub shape_a: String,
    pub shape_b: String,
    /// Values per side (the anchor tool's name for it).
    pub dim_product: usize,
    #[serde(flatten)]
    pub metrics: DiffMetrics,
    pub top_diffs: Vec<TopDiff>,
    pub within_tolerance: bool,
    /// Things worth knowing that do not stop the comparison (e.g. the headers name
    /// different layers).
    pub notes: Vec<String>,
}

/// A pair that could not be compared, in a directory comparison.
#[derive(Debug, Clone, Serialize)]
pub struct PairError {
    pub name: String,
    pub error: String,
}

/// A directory comparison, as JSON (`apr-stage-diff-dir-v1`).
#[derive(Debug, Clone, Serialize)]
pub struct DirReport {
    pub schema: &'static str,
    pub path_a: String,
    pub path_b: String,
    pub tolerance: Tolerance,
    /// Pairs in compute order (files whose names are not stages last, by name).
    pub pairs: Vec<PairReport>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub errors: Vec<PairError>,
    /// Every pair within tolerance and no error.
    pub within_tolerance: bool,
}

fn layout_name(l: Layout) -> String {
    match l {
        Layout::Described { version } => format!("APRT v{version}"),
        Layout::Anchor12 => "12-byte layout".to_string(),
    }
}

fn layer_json(layer: Option<u32>) -> serde_json::Value {
    match layer {
        Some(l) => serde_json::Value::from(l),
        None => serde_json::Value::from("whole-model"),
    }
}

fn layer_text(layer: Option<u32>) -> String {
    layer.map_or("whole-model".to_string(), |l| format!("layer {l}"))
}

/// Compare two APRT files; `name` labels the pair.
pub fn compare_files(
    a_path: &Path,
    b_path: &Path,
    name: &str,
    opts: &DiffOptions,
) -> Result<PairReport, DiffError> {
    let a = aprt::read(a_path)?;
    let b = aprt::read(b_path)?;
    compare_tensors(&a, a_path, &b, b_path, name, opts)
}

fn compare_tensors(
    a: &AprtTensor,
    a_path: &Path,
    b: &AprtTensor,
    b_path: &Path,
    name: &str,
    opts: &DiffOptions,
) -> Result<PairReport, DiffError> {
    let same_shape = match (a.shape, b.shape) {
        (Shape::Matrix { .. }, Shape::Matrix { .. }) => a.shape == b.shape,
        _ => a.shape.len() == b.shape.len(),
    };
    if !same_shape || a.data.len() != b.data.len() {
        return Err(DiffError::ShapeMismatch {
            a_file: a_path.display().to_string(),
            a_shape: a.shape.to_string(),
            b_file: b_path.display().to_string(),
            b_shape: b.shape.to_string(),
        });
    }
    let metrics = compare(&a.data, &b.data).map_err(|_| DiffError::ShapeMismatch {
        a_file: a_path.display().to_string(),
        a_shape: a.shape.to_string(),
        b_file: b_path.display().to_string(),
        b_shape: b.shape.to_string(),
    })?;
    let stem = a_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stage = a.stage.clone().or_else(|| b.stage.clone()).unwrap_or(stem);
    let mut notes = Vec::new();
    if a.layer != b.layer {
        notes.push(format!(
            "the headers name different layers: A {}, B {}",
            layer_text(a.layer),
            layer_text(b.layer)
        ));
    }
    if let (Some(sa), Some(sb)) = (&a.stage, &b.stage) {
        if sa != sb {
            notes.push(format!("the headers name different stages: A {sa}, B {sb}"));
        }
    }
    let within = opts.tolerance.holds(&metrics);
    Ok(PairReport {
        schema: PAIR_SCHEMA,
        name: name.to_string(),
        path_a: a_path.display().to_string(),
        path_b: b_path.display().to_string(),
        layer: layer_json(a.layer),
        stage,
        shape_a: format!("{} ({})", a.shape, layout_name(a.layout)),
        shape_b: format!("{} ({})", b.shape, layout_name(b.layout)),
        dim_product: a.data.len(),
        top_diffs: top_differences(&a.data, &b.data, opts.top),
        metrics,
        within_tolerance: within,
        notes,
    })
}

/// Every `.bin` file below `root`, by relative path with `/` separators.
fn bin_files(root: &Path) -> Result<BTreeMap<String, PathBuf>, DiffError> {
    fn walk(
        dir: &Path,
        rel: &str,
        depth: usize,
        out: &mut BTreeMap<String, PathBuf>,
    ) -> Result<(), DiffError> {
        if depth > MAX_DEPTH {
            return Err(DiffError::TooDeep {
                path: dir.display().to_string(),
            });
        }
        let io = |op, source| DiffError::Io {
            path: dir.display().to_string(),
            op,
            source,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| io("list directory", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io("list directory", e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel_name = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::metadata(&path).map_err(|source| DiffError::Io {
                path: path.display().to_string(),
                op: "stat",
                source,
            })?;
            if meta.is_dir() {
                walk(&path, &rel_name, depth + 1, out)?;
            } else if meta.is_file() && name.ends_with(".bin") {
                out.insert(rel_name, path);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, "", 0, &mut out)?;
    Ok(out)
}

/// Compare two directories of APRT files matched by relative path.
pub fn compare_dirs(a: &Path, b: &Path, opts: &DiffOptions) -> Result<DirReport, DiffError> {
    let fa = bin_files(a)?;
    let fb = bin_files(b)?;
    let mut common: Vec<&String> = fa.keys().filter(|k| fb.contains_key(*k)).collect();
    // `None` sorts first; put the unknown names after the known ones.
    common.sort_by_key(|rel| {
        let k = key_of_relative_path(rel);
        (k.is_none(), k, rel.to_string())
    });
    let only_in_a: Vec<String> = fa
        .keys()
        .filter(|k| !fb.contains_key(*k))
        .cloned()
        .collect();
    let only_in_b: Vec<String> = fb
        .keys()
        .filter(|k| !fa.contains_key(*k))
        .cloned()
        .collect();
    if common.is_empty() {
        return Err(DiffError::NothingInCommon {
            a: a.display().to_string(),
            b: b.display().to_string(),
            only_a: only_in_a.len(),
            only_b: only_in_b.len(),
        });
    }
    let mut pairs = Vec::new();
    let mut errors = Vec::new();
    for rel in common {
        match compare_files(&fa[rel], &fb[rel], rel, opts) {
            Ok(p) => pairs.push(p),
            Err(e) => errors.push(PairError {
                name: rel.clone(),
                error: e.to_string(),
            }),
        }
    }
    let within = errors.is_empty() && pairs.iter().all(|p| p.within_tolerance);
    Ok(DirReport {
        schema: DIR_SCHEMA,
        path_a: a.display().to_string(),
        path_b: b.display().to_string(),
        tolerance: opts.tolerance,
        pairs,
        only_in_a,
        only_in_b,
        errors,
        within_tolerance: within,
    })
}

fn sci(x: f64) -> String {
    if x.is_infinite() {
        "inf".to_string()
    } else {
        format!("{x:.4e}")
    }
}

fn tolerance_text(t: &Tolerance) -> String {
    let mut parts = vec!["no NaN/Inf mismatch".to_string()];
    if let Some(n) = t.nmse {
        parts.push(format!("nmse <= {n:e}"));
    }
    if let Some(m) = t.max_abs {
        parts.push(format!("max_abs_diff <= {m:e}"));
    }
    parts.join(", ")
}

fn status(p: &PairReport) -> &'static str {
    if p.metrics.bit_identical() {
        "identical"
    } else if p.within_tolerance {
        "within"
    } else {
        "BEYOND"
    }
}

/// The detailed text of one pair.
pub fn render_pair(p: &PairReport, tol: &Tolerance) -> String {
    let m = &p.metrics;
    let mut s = String::new();
    let _ = writeln!(s, "A: {}  {}", p.path_a, p.shape_a);
    let _ = writeln!(s, "B: {}  {}", p.path_b, p.shape_b);
    let layer = match &p.layer {
        serde_json::Value::String(w) => w.clone(),
        v => format!("layer {v}"),
    };
    let _ = writeln!(s, "stage           {} ({layer})", p.stage);
    let _ = writeln!(
        s,
        "values          {} ({} finite pairs, {} differ bitwise)",
        m.count, m.compared, m.differing_bits
    );
    let at = |i: Option<usize>| i.map_or("-".to_string(), |i| format!("at index {i}"));
    let _ = writeln!(
        s,
        "max_abs_diff    {} {}",
        sci(m.max_abs_diff),
        at(m.max_abs_diff_index)
    );
    let _ = writeln!(s, "rms_diff        {}", sci(m.rms_diff));
    let _ = writeln!(s, "nmse            {}", sci(m.nmse));
    let _ = writeln!(s, "cosine_sim      {:.9}", m.cosine_sim);
    let _ = writeln!(s, "max_ulp         {} {}", m.max_ulp, at(m.max_ulp_index));
    let _ = writeln!(
        s,
        "nan mismatches  {} (A has {} NaN, B has {})",
        m.nan_mismatches, m.a_nan, m.b_nan
    );
    let _ = writeln!(
        s,
        "inf mismatches  {} (A has {} Inf, B has {}){}",
        m.inf_mismatches,
        m.a_inf,
        m.b_inf,
        m.first_mismatch_index
            .map_or(String::new(), |i| format!("; first mismatch at index {i}"))
    );
    for n in &p.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if !p.top_diffs.is_empty() {
        let _ = writeln!(s, "top {} differences:", p.top_diffs.len());
        let _ = writeln!(
            s,
            "  {:>10} {:>15} {:>15} {:>12}",
            "index", "a", "b", "|a-b|"
        );
        for t in &p.top_diffs {
            let _ = writeln!(
                s,
                "  {:>10} {:>15.8e} {:>15.8e} {:>12}",
                t.index,
                t.a,
                t.b,
                sci(t.abs_diff)
            );
        }
    }
    let _ = writeln!(
        s,
        "result: {} ({})",
        if p.within_tolerance {
            "within tolerance"
        } else {
            "BEYOND tolerance"
        },
        tolerance_text(tol)
    );
    s
}

/// The text table of a directory comparison.
pub fn render_dir(r: &DirReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "A: {}\nB: {}", r.path_a, r.path_b);
    let w = r
        .pairs
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "{:<w$}  {:>9}  {:>11}  {:>9}  {:>11}  {:>11}  {:>12}  {:>10}  {:>7}  status",
        "pair", "values", "max_abs", "index", "rms", "nmse", "cosine", "max_ulp", "nan/inf"
    );
    for p in &r.pairs {
        let m = &p.metrics;
        let _ = writeln!(
            s,
            "{:<w$}  {:>9}  {:>11}  {:>9}  {:>11}  {:>11}  {:>12.9}  {:>10}  {:>7}  {}",
            p.name,
            m.count,
            sci(m.max_abs_diff),
            m.max_abs_diff_index
                .map_or("-".to_string(), |i| i.to_string()),
            sci(m.rms_diff),
            sci(m.nmse),
            m.cosine_sim,
            m.max_ulp,
            m.non_finite_mismatches(),
            status(p)
        );
    }
    for p in r.pairs.iter().filter(|p| !p.within_tolerance) {
        if !p.top_diffs.is_empty() || !p.notes.is_empty() {
            let _ = writeln!(s, "\n{}:", p.name);
        }
        for n in &p.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        for t in &p.top_diffs {
            let _ = writeln!(
                s,
                "  index {:>10}  a {:>15.8e}  b {:>15.8e}  |a-b| {}",
                t.index,
                t.a,
                t.b,
                sci(t.abs_diff)
            );
        }
    }
    for f in &r.only_in_a {
        let _ = writeln!(s, "only in A: {f}");
    }
    for f in &r.only_in_b {
        let _ = writeln!(s, "only in B: {f}");
    }
    for e in &r.errors {
        let _ = writeln!(s, "error: {}: {}", e.name, e.error);
    }
    let beyond = r.pairs.iter().filter(|p| !p.within_tolerance).count();
    let identical = r.pairs.iter().filter(|p| p.metrics.bit_identical()).count();
    let _ = writeln!(
        s,
        "{} pair(s): {} identical, {} beyond tolerance, {} error(s); {} only in A, {} only in B ({})",
        r.pairs.len(),
        identical,
        beyond,
        r.errors.len(),
        r.only_in_a.len(),
        r.only_in_b.len(),
        tolerance_text(&r.tolerance)
    );
    s
}

fn kind(p: &Path) -> &'static str {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => "directory",
        Ok(_) => "file",
        Err(_) => "missing",
    }
}

/// `apr diff --values A B`: writes the report to `out`, errors to `err`, and returns the
/// exit status ([`EXIT_WITHIN`], [`EXIT_BEYOND`], [`EXIT_ERROR`]).
pub fn run(a: &Path, b: &Path, opts: &DiffOptions, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let fail = |err: &mut dyn Write, e: DiffError| {
        let _ = writeln!(err, "apr diff: error: {e}");
        EXIT_ERROR
    };
    for (flag, v) in [
        ("--tolerance", opts.tolerance.nmse),
        ("--max-abs", opts.tolerance.max_abs),
    ] {
        if let Some(v) = v.filter(|v| v.is_nan() || *v < 0.0) {
            let _ = writeln!(
                err,
                "apr diff: error: {flag} {v} is not a non-negative number"
            );
            return EXIT_ERROR;
        }
    }
    match (kind(a), kind(b)) {
        ("directory", "directory") => match compare_dirs(a, b, opts) {
            Ok(r) => {
                let text = if opts.json {
                    to_json(&r)
                } else {
                    render_dir(&r)
                };
                let _ = write!(out, "{text}");
                for e in &r.errors {
                    let _ = writeln!(err, "apr diff: error: {}: {}", e.name, e.error);
                }
                if !r.errors.is_empty() {
                    EXIT_ERROR
                } else if r.within_tolerance {
                    EXIT_WITHIN
                } else {
                    EXIT_BEYOND
                }
            }
            Err(e) => fail(err, e),
        },
        (ka @ ("directory" | "file"), kb @ ("directory" | "file")) if ka != kb => fail(
            err,
            DiffError::KindMismatch {
                a: a.display().to_string(),
                a_kind: ka,
                b: b.display().to_string(),
                b_kind: kb,
            },
        ),
        _ => {
            let name = a
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match compare_files(a, b, &name, opts) {
                Ok(p) => {
                    let text = if opts.json {
                        to_json(&p)
                    } else {
                        render_pair(&p, &opts.tolerance)
                    };
                    let _ = write!(out, "{text}");
                    if p.within_tolerance {
                        EXIT_WITHIN
                    } else {
                        EXIT_BEYOND
                    }
                }
                Err(e) => fail(err, e),
            }
        }
    }
}

/// Pretty JSON with a trailing newline. Serialising these plain structs cannot fail; if it
/// did, the failure is reported in the output rather than by a panic.
fn to_json<T: Serialize>(v: &T) -> String {
    match serde_json::to_string_pretty(v) {
        Ok(s) => s + "\n",
        Err(e) => format!("{{\"error\": {:?}}}\n", e.to_string()),
    }
}
