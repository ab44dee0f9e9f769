//! apr-harness: YAML falsification contracts compiled into test trials that write evidence.
//!
//! - [`schema`]: the contract format (provable-contracts field names + `check`/`requires`).
//! - [`validate`]: `pv validate` rules.
//! - [`checks`]: the check-kind registry (Rust, parameterised by YAML).
//! - [`trials`]: collecting and running falsification tests; [`evidence`]: what they write.
//! - [`report`]: `pv status` and `pv report`.

pub mod bins;
pub mod checks;
pub mod evidence;
pub mod glob;
pub mod models;
pub mod report;
pub mod schema;
pub mod stages;
pub mod trials;
pub mod validate;

use std::path::{Path, PathBuf};

/// The repository root: `APR_ROOT`, else the nearest ancestor of the current directory
/// holding `contracts/` and `Cargo.toml`, else the workspace this crate was built in.
pub fn repo_root() -> PathBuf {
    if let Some(r) = std::env::var_os("APR_ROOT") {
        return PathBuf::from(r);
    }
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(found) = cwd
            .ancestors()
            .find(|d| d.join("contracts").is_dir() && d.join("Cargo.toml").is_file())
        {
            return found.to_path_buf();
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
