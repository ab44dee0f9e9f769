//! Driving the engine through its CLI for engine-backed kinds: resolving a run spec to a
//! model file (converting to APR when asked), `apr trace --save-tensor`, `apr diff --values
//! --json`, and reading capture directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use super::spec::RunSpec;
use super::{DivergenceCell, RunCx};

/// A run spec resolved to a file on disk.
pub struct Resolved {
    pub model: String,
    pub path: PathBuf,
    pub backend: String,
}

/// Resolve `spec` (model defaults to the test's `requires.model`); `format: apr` on a GGUF
/// converts it with `apr convert` into the trial's scratch directory.
pub fn resolve(spec: &RunSpec, cx: &RunCx, tag: &str) -> Result<Resolved, String> {
    let name = spec
        .model
        .clone()
        .or_else(|| cx.model.map(|m| m.name.clone()))
        .ok_or("run spec has no model and the test has no requires.model")?;
    let registry = crate::models::Registry::load(cx.contracts_dir).map_err(|e| e.message)?;
    let found = registry.resolve(&name, cx.repo_root)?;
    let is_apr = found.path.extension().is_some_and(|e| e == "apr");
    let path = match (spec.format.as_deref(), is_apr) {
        (Some("apr"), false) => {
            let out = cx.scratch.join(format!("{tag}-{name}.apr"));
            apr(
                &[
                    "convert".as_ref(),
                    found.path.as_os_str(),
                    "-o".as_ref(),
                    out.as_os_str(),
                ],
                &[],
            )?;
            out
        }
        (Some("gguf"), true) => {
            return Err(format!(
                "model `{name}` is an APR file but the run spec asks for gguf"
            ))
        }
        _ => found.path,
    };
    Ok(Resolved {
        model: name,
        path,
        backend: spec.backend.clone().unwrap_or_else(|| "cpu".into()),
    })
}

/// Run `apr`; (exit code, stdout, stderr), or why it could not run.
pub fn apr_output(
    args: &[&std::ffi::OsStr],
    env: &[(&str, String)],
) -> Result<(Option<i32>, String, String), String> {
    let bin = crate::bins::locate("apr")?;
    let mut cmd = Command::new(&bin);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Run `apr` with arguments and extra environment; stdout on success, the story on failure.
pub fn apr(args: &[&std::ffi::OsStr], env: &[(&str, String)]) -> Result<String, String> {
    let (code, stdout, stderr) = apr_output(args, env)?;
    if code == Some(0) {
        Ok(stdout)
    } else {
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        Err(format!(
            "`apr {shown}` failed (exit {code:?}):\n{}",
            stderr.trim_end()
        ))
    }
}

/// The part of an `apr … --json` report (`run`, `trace`, `bisect`) the evidence keeps.
#[derive(Debug, Deserialize)]
struct Dispatch {
    /// The tier the cpu backend's kernels dispatch to in that process.
    simd: Option<String>,
}

/// The SIMD tier to record for a run on `backend`: the one `apr` reported when the backend
/// runs dispatched kernels (`cpu`); none for `cpu-ref`, which dequantizes and sums in f64.
pub fn simd_for(backend: &str, reported: Option<String>) -> Option<String> {
    reported.filter(|_| backend == "cpu")
}

/// The SIMD tier an `apr … --json` report names, if `backend` uses it.
pub fn reported_simd(backend: &str, json: &str) -> Result<Option<String>, String> {
    let d: Dispatch =
        serde_json::from_str(json).map_err(|e| format!("apr --json: {e} in {:?}", json.trim()))?;
    Ok(simd_for(backend, d.simd))
}

/// One `apr trace --save-tensor` capture into `out`.
pub struct Capture<'a> {
    pub model: &'a Path,
    pub prompt: &'a str,
    pub stages: &'a [String],
    pub layers: &'a [u32],
    pub backend: &'a str,
    pub threads: Option<usize>,
}

impl Capture<'_> {
    /// Capture; the SIMD tier the run's kernels used (`None` on cpu-ref).
    pub fn run(&self, out: &Path) -> Result<Option<String>, String> {
        let stages = self.stages.join(",");
        let layers = self
            .layers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let threads = self.threads.map(|t| t.to_string());
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "trace".as_ref(),
            self.model.as_os_str(),
            "--prompt".as_ref(),
            self.prompt.as_ref(),
            "--save-tensor".as_ref(),
            stages.as_ref(),
            "--output".as_ref(),
            out.as_os_str(),
            "--backend".as_ref(),
            self.backend.as_ref(),
            "--json".as_ref(),
        ];
        if !layers.is_empty() {
            args.extend(["--layer".as_ref(), layers.as_ref() as &std::ffi::OsStr]);
        }
        let mut env = Vec::new();
        if let Some(t) = &threads {
            args.extend(["--threads".as_ref(), t.as_ref() as &std::ffi::OsStr]);
            env.push(("RAYON_NUM_THREADS", t.clone()));
        }
        reported_simd(self.backend, &apr(&args, &env)?)
    }
}

/// Every `*.bin` under `dir`, by path relative to it, with its bytes.
pub fn read_capture(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
        for e in std::fs::read_dir(d)? {
            let p = e?.path();
            if p.is_dir() {
                walk(root, &p, out)?;
            } else if p.extension().is_some_and(|x| x == "bin") {
                let rel = p
                    .strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out).map_err(|e| format!("cannot read capture {}: {e}", dir.display()))?;
    if out.is_empty() {
        return Err(format!("capture {} holds no .bin files", dir.display()));
    }
    Ok(out)
}

/// (layer, stage) of a capture path: `layer-3/ffn_gate.bin` → (Some(3), ffn_gate).
pub fn location(rel: &str) -> (Option<u32>, String) {
    let p = Path::new(rel);
    let stage = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let layer = p
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|d| d.to_str())
        .and_then(|d| d.strip_prefix("layer-"))
        .and_then(|n| n.parse().ok());
    (layer, stage)
}

/// Sort cells in compute order: layer (whole-model stages by position: embedding first,
/// final_norm/lm_head last), then stage order.
pub fn sort_cells(cells: &mut [DivergenceCell]) {
    cells.sort_by_key(|c| {
        let o = crate::stages::order(&c.stage);
        let layer_key = match (c.layer, c.stage.as_str()) {
            (Some(l), _) => u64::from(l) + 1,
            (None, "embedding") => 0,
            (None, _) => u64::MAX,
        };
        (layer_key, o)
    });
}
