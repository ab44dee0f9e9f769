//! Evidence files: `evidence/<contract-id>/<FALSIFY-ID>.json`, one per falsification test,
//! written atomically (temporary file in the same directory, then rename). Schema:
//! `docs/evidence.md` (`apr-evidence-v1`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::checks::{Divergence, Measurement};
use crate::models::ResolvedModel;

/// Schema name written into every file.
pub const SCHEMA: &str = "apr-evidence-v1";

/// pass | fail | skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Skip,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
        }
    }
}

/// One evidence file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub schema: String,
    pub contract: ContractRef,
    pub test: TestRef,
    pub status: Verdict,
    /// Why it failed or was skipped; for a pass, what was measured.
    pub reason: String,
    pub measurements: Vec<Measurement>,
    /// Per-layer × per-stage comparison of parity checks.
    #[serde(default)]
    pub divergence: Option<Divergence>,
    pub model: Option<ResolvedModel>,
    pub engine: EngineInfo,
    pub run: RunInfo,
    /// Seconds since the Unix epoch when the trial started (UTC), and RFC 3339.
    pub started_unix: u64,
    pub started: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractRef {
    pub id: String,
    pub version: String,
    pub status: String,
    /// Contract file, relative to the repository root.
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestRef {
    pub id: String,
    pub rule: String,
    pub prediction: String,
    pub if_fails: String,
    pub check_kind: Option<String>,
}

/// What built the code under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// Workspace version (engine and harness share it).
    pub version: String,
    pub git_commit: Option<String>,
    /// Whether the working tree had uncommitted changes.
    pub git_dirty: Option<bool>,
}

/// Where and how it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub backend: Option<String>,
    /// SIMD tier the engine's kernels dispatched to, from `Outcome::simd` (what `apr …
    /// --json` or the in-process engine reported); `null` when no dispatched kernel ran.
    pub simd: Option<String>,
    pub threads: Option<usize>,
    pub host: HostInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub cpus: usize,
}

/// `evidence/<contract>/<test>.json` under `evidence_dir`.
pub fn path_for(evidence_dir: &Path, contract: &str, test: &str) -> PathBuf {
    evidence_dir.join(contract).join(format!("{test}.json"))
}

/// Write `ev` to `path` atomically: a reader sees the old file or the new one, never half.
pub fn write_atomic(path: &Path, ev: &Evidence) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut text = serde_json::to_string_pretty(ev).map_err(std::io::Error::other)?;
    text.push('\n');
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("evidence"),
        std::process::id()
    ));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Read every evidence file under `evidence_dir` (unreadable ones are skipped, with their
/// errors returned alongside).
pub fn read_all(evidence_dir: &Path) -> (Vec<Evidence>, Vec<String>) {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    let Ok(dirs) = std::fs::read_dir(evidence_dir) else {
        return (out, errs);
    };
    let mut dirs: Vec<PathBuf> = dirs
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
            .collect();
        files.sort();
        for f in files {
            match std::fs::read_to_string(&f)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Evidence>(&t).map_err(|e| e.to_string()))
            {
                Ok(ev) => out.push(ev),
                Err(e) => errs.push(format!("{}: {e}", f.display())),
            }
        }
    }
    (out, errs)
}

/// Engine version and commit (computed once).
pub fn engine_info(repo_root: &Path) -> EngineInfo {
    static INFO: OnceLock<EngineInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(repo_root)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        EngineInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: git(&["rev-parse", "HEAD"]),
            git_dirty: git(&["status", "--porcelain", "--untracked-files=no"])
                .map(|s| !s.is_empty()),
        }
    })
    .clone()
}

/// This machine.
pub fn host_info() -> HostInfo {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    HostInfo {
        hostname,
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// RFC 3339 (UTC, seconds) for a Unix time.
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // civil-from-days (Howard Hinnant's algorithm, public domain description)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_440_271), "2026-12-05T03:11:11Z");
    }
}
