//! Falsification tests as trials: collected once (skips decided here, with reasons), run
//! by `tests/contracts.rs` through libtest-mimic or by `pv run`, each writing its evidence.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::checks::{self, Outcome, RunCx};
use crate::evidence::{self, ContractRef, Evidence, RunInfo, TestRef, Verdict};
use crate::models::{Registry, ResolvedModel};
use crate::schema::{FalsificationTest, LoadedContract};
use crate::validate;

/// Where things are.
#[derive(Debug, Clone)]
pub struct Paths {
    pub repo_root: PathBuf,
    pub contracts_dir: PathBuf,
    pub evidence_dir: PathBuf,
}

impl Paths {
    /// The repository's `contracts/` and `evidence/` (`APR_EVIDENCE_DIR` overrides the latter).
    pub fn discover() -> Paths {
        let repo_root = crate::repo_root();
        let evidence_dir = std::env::var_os("APR_EVIDENCE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root.join("evidence"));
        Paths {
            contracts_dir: repo_root.join("contracts"),
            evidence_dir,
            repo_root,
        }
    }
}

/// What happens to a trial, decided while collecting.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Run the check.
    Run,
    /// Do not run; report `skip` with this reason (the runner marks the trial ignored).
    Skip(String),
    /// Run, and fail with this reason without running the check (e.g. a missing model
    /// under `APR_REQUIRE_MODELS=1`).
    Fail(String),
}

/// One falsification test ready to run.
#[derive(Debug, Clone)]
pub struct Trial {
    /// `<contract-id>::<FALSIFY-ID>`.
    pub name: String,
    pub contract: LoadedContract,
    pub index: usize,
    pub plan: Plan,
    pub model: Option<ResolvedModel>,
}

impl Trial {
    pub fn test(&self) -> &FalsificationTest {
        &self.contract.contract.falsification_tests[self.index]
    }
    pub fn evidence_path(&self, paths: &Paths) -> PathBuf {
        evidence::path_for(
            &paths.evidence_dir,
            &self.contract.contract.metadata.id,
            &self.test().id,
        )
    }
}

/// Validate `contracts/` and turn every falsification test into a trial, sorted by name.
/// `filter` (a glob, or a substring without wildcards) selects trials by name or
/// contract id; a filter that selects nothing is an error. Invalid contracts are an error:
/// trials are never built from contracts that fail `pv validate`.
pub fn collect(paths: &Paths, filter: Option<&str>) -> Result<Vec<Trial>, String> {
    let require_models = std::env::var("APR_REQUIRE_MODELS").is_ok_and(|v| v == "1");
    collect_with(paths, filter, require_models)
}

/// [`collect`] with `APR_REQUIRE_MODELS` given explicitly.
pub fn collect_with(
    paths: &Paths,
    filter: Option<&str>,
    require_models: bool,
) -> Result<Vec<Trial>, String> {
    let report =
        validate::validate_path(&paths.contracts_dir, &paths.contracts_dir, &paths.repo_root);
    if !report.is_valid() {
        return Err(format!(
            "contracts/ does not validate; fix it first (pv validate contracts/):\n{}{}",
            report.render(&paths.repo_root),
            report.summary_line()
        ));
    }
    let registry = Registry::load(&paths.contracts_dir).map_err(|e| e.message)?;
    let mut trials = Vec::new();
    for c in &report.contracts {
        for (index, t) in c.contract.falsification_tests.iter().enumerate() {
            let name = format!("{}::{}", c.contract.metadata.id, t.id);
            if let Some(f) = filter {
                if !crate::glob::matches(f, &name) {
                    continue;
                }
            }
            let (plan, model) = decide(c, t, &registry, &paths.repo_root, require_models);
            trials.push(Trial {
                name,
                contract: c.clone(),
                index,
                plan,
                model,
            });
        }
    }
    if let Some(f) = filter {
        if trials.is_empty() {
            return Err(format!(
                "filter `{f}` matches no falsification test in {}",
                paths.contracts_dir.display()
            ));
        }
    }
    trials.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(trials)
}

fn decide(
    c: &LoadedContract,
    t: &FalsificationTest,
    registry: &Registry,
    root: &Path,
    require_models: bool,
) -> (Plan, Option<ResolvedModel>) {
    let status = c.contract.metadata.status;
    let kind = t
        .check
        .as_ref()
        .and_then(|m| checks::split(m).ok())
        .and_then(|(k, _)| checks::kind(&k));
    if !status.runs() {
        return (
            Plan::Skip(
                "PROPOSED: the contract is not promoted to DRAFT yet, so it is not run".to_string(),
            ),
            None,
        );
    }
    if kind.is_none() {
        // validation makes this unreachable for non-PROPOSED contracts; never pass silently
        return (Plan::Fail("no runnable check".to_string()), None);
    }
    let unset: Vec<&str> = t
        .requires
        .env
        .iter()
        .map(String::as_str)
        .filter(|e| std::env::var(e).map_or(true, |v| v.is_empty()))
        .collect();
    if !unset.is_empty() {
        return (
            Plan::Skip(format!("requires environment {} (unset)", unset.join(", "))),
            None,
        );
    }
    if t.requires.gpu {
        if let Err(why) = gpu_present() {
            return (Plan::Skip(format!("requires a GPU: {why}")), None);
        }
    }
    let mut model = None;
    if let Some(name) = &t.requires.model {
        match registry.resolve(name, root) {
            Ok(m) => model = Some(m),
            Err(why) if require_models => {
                return (Plan::Fail(format!("APR_REQUIRE_MODELS=1: {why}")), None)
            }
            Err(why) => return (Plan::Skip(why), None),
        }
    }
    (Plan::Run, model)
}

/// Whether a CUDA device is visible (driver files only; the engine's backend probes the
/// library itself). `APR_GPU=0` hides it.
pub fn gpu_present() -> Result<(), String> {
    if std::env::var("APR_GPU").is_ok_and(|v| v == "0") {
        return Err("disabled by APR_GPU=0".to_string());
    }
    if Path::new("/dev/nvidiactl").exists() || Path::new("/proc/driver/nvidia/version").exists() {
        Ok(())
    } else {
        Err("no CUDA device found (/dev/nvidiactl absent)".to_string())
    }
}

/// Write the `skip` evidence of a skipped trial (done at collection time).
pub fn record_skip(trial: &Trial, paths: &Paths) -> std::io::Result<()> {
    if let Plan::Skip(reason) = &trial.plan {
        let ev = make_evidence(
            trial,
            paths,
            Verdict::Skip,
            reason.clone(),
            &Outcome::default(),
            now_unix(),
            0,
        );
        evidence::write_atomic(&trial.evidence_path(paths), &ev)?;
    }
    Ok(())
}

/// The outcome of a trial, with its evidence written.
#[derive(Debug, Clone)]
pub struct Finished {
    pub verdict: Verdict,
    /// For a failure: the whole story (claim, measured, tolerance, evidence path).
    pub message: String,
    pub evidence: Evidence,
}

/// Run one trial (whatever its plan: a skipped trial run explicitly, e.g. with
/// `--ignored`, runs its check), write its evidence and return the verdict.
pub fn run(trial: &Trial, paths: &Paths) -> Finished {
    let started = now_unix();
    let clock = Instant::now();
    let t = trial.test();
    let (verdict, reason, outcome) = match &trial.plan {
        Plan::Fail(why) => (Verdict::Fail, why.clone(), Outcome::default()),
        Plan::Run | Plan::Skip(_) => match run_check(trial, paths) {
            Ok(o) if o.passed => (Verdict::Pass, o.measured.clone(), o),
            Ok(o) => (Verdict::Fail, o.measured.clone(), o),
            Err(e) => (Verdict::Fail, e, Outcome::default()),
        },
    };
    let ev = make_evidence(
        trial,
        paths,
        verdict,
        reason.clone(),
        &outcome,
        started,
        clock.elapsed().as_millis() as u64,
    );
    let ev_path = trial.evidence_path(paths);
    let write_err = evidence::write_atomic(&ev_path, &ev).err();
    let shown = validate::display_path(&ev_path, &paths.repo_root);
    let mut message = String::new();
    if verdict == Verdict::Fail {
        message = format!(
            "{} FAILED\n  claim:    {}\n  measured: {}\n",
            trial.name,
            t.prediction.trim(),
            indent(&reason)
        );
        for m in outcome.measurements.iter().filter(|m| !m.ok) {
            message.push_str(&format!(
                "  not held: {} {} {} (measured {})\n",
                m.name, m.metric, m.threshold, m.value
            ));
        }
        if let Some(first) = outcome.divergence.as_ref().and_then(|d| d.first.as_ref()) {
            let layer = first
                .layer
                .map_or("whole-model".to_string(), |l| format!("layer {l}"));
            message.push_str(&format!(
                "  first divergence: {layer}, stage {} ({} {} > tolerance {})\n",
                first.stage, first.metric, first.value, first.tolerance
            ));
        }
        if !t.if_fails.trim().is_empty() {
            message.push_str(&format!("  if fails: {}\n", t.if_fails.trim()));
        }
        message.push_str(&format!("  evidence: {shown}\n"));
    }
    if let Some(e) = write_err {
        message.push_str(&format!("  (could not write evidence {shown}: {e})\n"));
    }
    Finished {
        verdict,
        message,
        evidence: ev,
    }
}

fn indent(s: &str) -> String {
    s.trim_end().replace('\n', "\n            ")
}

static SCRATCH_SEQ: AtomicUsize = AtomicUsize::new(0);

fn run_check(trial: &Trial, paths: &Paths) -> Result<Outcome, String> {
    let t = trial.test();
    let check = t.check.as_ref().ok_or("no check")?;
    let (kind_name, params) = checks::split(check)?;
    let kind =
        checks::kind(&kind_name).ok_or_else(|| format!("unknown check kind `{kind_name}`"))?;
    let scratch = std::env::temp_dir().join(format!(
        "apr-pv-{}-{}-{}",
        std::process::id(),
        SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed),
        t.id
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let cx = RunCx {
        repo_root: &paths.repo_root,
        contracts_dir: &paths.contracts_dir,
        model: trial.model.as_ref(),
        scratch: scratch.clone(),
    };
    let out = (kind.run)(&params, &cx);
    let _ = std::fs::remove_dir_all(&scratch);
    out
}

fn make_evidence(
    trial: &Trial,
    paths: &Paths,
    status: Verdict,
    reason: String,
    o: &Outcome,
    started: u64,
    duration_ms: u64,
) -> Evidence {
    let c = &trial.contract.contract.metadata;
    let t = trial.test();
    Evidence {
        schema: evidence::SCHEMA.to_string(),
        contract: ContractRef {
            id: c.id.clone(),
            version: c.version.clone(),
            status: c.status.as_str().to_string(),
            file: validate::display_path(&trial.contract.path, &paths.repo_root),
        },
        test: TestRef {
            id: t.id.clone(),
            rule: t.rule.clone(),
            prediction: t.prediction.clone(),
            if_fails: t.if_fails.clone(),
            check_kind: t
                .check
                .as_ref()
                .and_then(|m| checks::split(m).ok())
                .map(|(k, _)| k),
        },
        status,
        reason,
        measurements: o.measurements.clone(),
        divergence: o.divergence.clone(),
        model: trial.model.clone(),
        engine: evidence::engine_info(&paths.repo_root),
        run: RunInfo {
            backend: o.backend.clone(),
            simd: o.simd.clone(),
            threads: o.threads,
            host: evidence::host_info(),
        },
        started_unix: started,
        started: evidence::rfc3339(started),
        duration_ms,
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
