//! `contracts/models.yaml`: logical model names → files.
//!
//! A model is either a bundled fixture (a path relative to the repository root) or a list
//! of file names searched, in order, under `APR_MODEL_DIR` (a `:`-separated list of
//! directories) and the usual download caches. An optional sha256 is verified when the
//! file is used.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// File name of the registry inside the contracts directory.
pub const REGISTRY_FILE: &str = "models.yaml";

/// How deep the cache search descends (Hugging Face hub caches nest
/// `models--org--name/snapshots/<rev>/<file>`, i.e. four levels under `hub/`).
const MAX_SEARCH_DEPTH: usize = 6;

/// The registry file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(default)]
    pub models: BTreeMap<String, ModelEntry>,
}

/// One logical model.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    #[serde(default)]
    pub description: String,
    /// Bundled fixture, relative to the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixture: Option<PathBuf>,
    /// File names to search for under `APR_MODEL_DIR` and the caches.
    #[serde(default)]
    pub files: Vec<String>,
    /// Expected sha256 (lowercase hex); verified when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A model found on disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResolvedModel {
    pub name: String,
    pub path: PathBuf,
    pub sha256: Option<String>,
}

impl Registry {
    /// Load `dir/models.yaml`; a missing file is an empty registry.
    pub fn load(contracts_dir: &Path) -> Result<Registry, crate::schema::LoadError> {
        let path = contracts_dir.join(REGISTRY_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(Registry::default());
        };
        serde_yaml::from_str(&text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            crate::schema::LoadError {
                path,
                line,
                column,
                message: e.to_string(),
            }
        })
    }

    /// Find `name` on this machine. `Err` says where it looked.
    pub fn resolve(&self, name: &str, repo_root: &Path) -> Result<ResolvedModel, String> {
        let entry = self
            .models
            .get(name)
            .ok_or_else(|| format!("model `{name}` is not in contracts/{REGISTRY_FILE}"))?;
        let mut looked = Vec::new();
        if let Some(fixture) = &entry.fixture {
            let p = repo_root.join(fixture);
            if p.is_file() {
                return self.finish(name, entry, p);
            }
            looked.push(format!(
                "bundled fixture {} does not exist",
                fixture.display()
            ));
        }
        if !entry.files.is_empty() {
            let dirs = search_dirs();
            for dir in &dirs {
                for file in &entry.files {
                    if let Some(p) = find_file(dir, file, MAX_SEARCH_DEPTH) {
                        return self.finish(name, entry, p);
                    }
                }
            }
            if dirs.is_empty() {
                looked.push(format!(
                    "none of {:?} searched: no model directory here (APR_MODEL_DIR unset, no ~/.cache/huggingface/hub, ~/.cache/lm-studio/models, ~/models …)",
                    entry.files
                ));
            } else {
                let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                looked.push(format!(
                    "none of {:?} under {}",
                    entry.files,
                    shown.join(", ")
                ));
            }
        }
        Err(format!("model `{name}` not found: {}", looked.join("; ")))
    }

    fn finish(
        &self,
        name: &str,
        entry: &ModelEntry,
        path: PathBuf,
    ) -> Result<ResolvedModel, String> {
        let sha256 = match &entry.sha256 {
            Some(want) => {
                let got = sha256_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                if !got.eq_ignore_ascii_case(want) {
                    return Err(format!(
                        "model `{name}` at {} has sha256 {got}, models.yaml expects {want}",
                        path.display()
                    ));
                }
                Some(got)
            }
            None => None,
        };
        Ok(ResolvedModel {
            name: name.to_string(),
            path,
            sha256,
        })
    }
}

/// Directories searched for model files, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var("APR_MODEL_DIR")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        for d in [
            ".cache/huggingface/hub",
            ".cache/lm-studio/models",
            ".lmstudio/models",
            ".cache/llama.cpp",
            ".ollama/models",
            "models",
        ] {
            dirs.push(home.join(d));
        }
    }
    dirs.retain(|d| d.is_dir());
    dirs
}

fn find_file(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    let direct = dir.join(name);
    if direct.is_file() {
        return Some(direct);
    }
    if depth == 0 {
        return None;
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    subdirs
        .into_iter()
        .find_map(|d| find_file(&d, name, depth - 1))
}

/// Lowercase hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
