//! Locating the `apr` and `pv` binaries that `cli` checks run.
//!
//! Order:
//! 1. `APR_BIN` / `PV_BIN`: an explicit path, used as is.
//! 2. The running program itself, when it is the binary asked for (`pv run` running `pv`).
//! 3. `target/<profile>/<name>` next to the running executable (a test binary lives in
//!    `target/<profile>/deps/`), if it is newer than the `src/` and `Cargo.toml` of its
//!    package and of the workspace packages it links, and than `Cargo.lock`.
//! 4. Otherwise `cargo build -p <package> --bin <name>` once per process, with the same
//!    profile, into `target/apr-suite-bins/` (a separate target directory: the `cargo test`
//!    that runs us may hold the lock on the main one, and a nested build there would wait
//!    forever).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// Binaries checks may run: name → (cargo package, directories of the workspace packages
/// it is built from, env override).
const KNOWN: &[(&str, &str, &[&str], &str)] = &[
    ("apr", "apr-engine", &["engine"], "APR_BIN"),
    ("pv", "apr-harness", &["harness", "engine"], "PV_BIN"),
];

/// Subdirectory of the target directory used for nested builds.
const NESTED_TARGET: &str = "apr-suite-bins";

static CACHE: OnceLock<Mutex<BTreeMap<String, Result<PathBuf, String>>>> = OnceLock::new();

/// Path of binary `name`, building it if needed (once per process).
pub fn locate(name: &str) -> Result<PathBuf, String> {
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = guard.get(name) {
        return r.clone();
    }
    let r = locate_uncached(name);
    guard.insert(name.to_string(), r.clone());
    r
}

fn locate_uncached(name: &str) -> Result<PathBuf, String> {
    let &(_, package, pkg_dirs, env) = KNOWN
        .iter()
        .find(|k| k.0 == name)
        .ok_or_else(|| format!("unknown binary `{name}`"))?;
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{env}={} is not a file", p.display()))
        };
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the running executable: {e}"))?;
    if exe.file_stem().and_then(|s| s.to_str()) == Some(name) {
        return Ok(exe);
    }
    let profile_dir = profile_dir(&exe)
        .ok_or_else(|| format!("cannot derive the target directory from {}", exe.display()))?;
    let root = crate::repo_root();
    let mut sources: Vec<PathBuf> = pkg_dirs
        .iter()
        .flat_map(|d| [root.join(d).join("src"), root.join(d).join("Cargo.toml")])
        .collect();
    sources.push(root.join("Cargo.lock"));
    let newest_source = newest_mtime(&sources);
    let candidate = profile_dir.join(exe_name(name));
    if is_fresh(&candidate, newest_source) {
        return Ok(candidate);
    }
    build(name, package, &profile_dir, &root)
}

fn exe_name(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// `target/<profile>` for an executable in `target/<profile>/` or `target/<profile>/deps/`.
fn profile_dir(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    if dir.file_name().and_then(|n| n.to_str()) == Some("deps") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

fn is_fresh(bin: &Path, newest_source: Option<SystemTime>) -> bool {
    let Ok(meta) = bin.metadata() else {
        return false;
    };
    match (meta.modified().ok(), newest_source) {
        (Some(b), Some(s)) => b >= s,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Newest modification time of the files under `paths` (skipping `target` directories).
fn newest_mtime(paths: &[PathBuf]) -> Option<SystemTime> {
    fn walk(p: &Path, best: &mut Option<SystemTime>) {
        let Ok(meta) = p.metadata() else { return };
        if meta.is_dir() {
            if p.file_name().and_then(|n| n.to_str()) == Some("target") {
                return;
            }
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), best);
            }
        } else if let Ok(m) = meta.modified() {
            if best.is_none_or(|b| m > b) {
                *best = Some(m);
            }
        }
    }
    let mut best = None;
    for p in paths {
        walk(p, &mut best);
    }
    best
}

fn build(name: &str, package: &str, profile_dir: &Path, root: &Path) -> Result<PathBuf, String> {
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let out_profile_dir = if profile == "dev" {
        "debug".to_string()
    } else {
        profile.clone()
    };
    let target = profile_dir
        .parent()
        .unwrap_or(profile_dir)
        .join(NESTED_TARGET);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "pv: building `{name}` (cargo build -p {package} --bin {name} --profile {profile}) into {}",
        target.display()
    );
    let out = Command::new(&cargo)
        .args(["build", "-p", package, "--bin", name, "--profile", &profile])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo to build `{name}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo build -p {package} --bin {name}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bin = target.join(out_profile_dir).join(exe_name(name));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "cargo built `{name}` but {} does not exist",
            bin.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_of_test_and_bin() {
        assert_eq!(
            profile_dir(Path::new("/t/debug/deps/contracts-1a")).unwrap(),
            Path::new("/t/debug")
        );
        assert_eq!(
            profile_dir(Path::new("/t/release/pv")).unwrap(),
            Path::new("/t/release")
        );
    }
}
