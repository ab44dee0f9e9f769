//! `pv`: validate falsification contracts, run their falsification tests, and report the
//! evidence.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use apr_harness::evidence::{self, Verdict};
use apr_harness::report::{self, ReportMeta};
use apr_harness::trials::{self, Paths, Plan};
use apr_harness::validate;
use clap::{Parser, Subcommand};

/// Validate falsification contracts, run them, and report their evidence.
#[derive(Debug, Parser)]
#[command(name = "pv", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check contract files (a file or a directory of them) against the schema and rules.
    Validate {
        /// A contract file or a directory of contracts.
        path: PathBuf,
    },
    /// Run every falsification test in contracts/ (or those matching FILTER), write
    /// evidence and the report.
    Run {
        /// Glob (`*`, `?`) or substring over `<contract-id>::<FALSIFY-ID>`; matching nothing is an error.
        filter: Option<String>,
        /// Do not write evidence/report.{md,html}.
        #[arg(long)]
        no_report: bool,
    },
    /// Each contract's standing, derived from its evidence.
    Status,
    /// Write the Markdown and HTML report from the evidence.
    Report {
        /// Output directory (default: the evidence directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the trials and what would happen to each (run, skip and why).
    List { filter: Option<String> },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = Paths::discover();
    let r = match cli.command {
        Command::Validate { path } => cmd_validate(&path, &paths),
        Command::Run { filter, no_report } => cmd_run(filter.as_deref(), no_report, &paths),
        Command::Status => cmd_status(&paths),
        Command::Report { out } => cmd_report(out.as_deref(), &paths).map(|()| true),
        Command::List { filter } => cmd_list(filter.as_deref(), &paths),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pv: {e}");
            ExitCode::from(2)
        }
    }
}

fn cmd_validate(path: &Path, paths: &Paths) -> Result<bool, String> {
    // A directory with its own models.yaml is its own contracts directory.
    let contracts_dir = if path.is_dir() && path.join(apr_harness::models::REGISTRY_FILE).is_file()
    {
        path.to_path_buf()
    } else {
        paths.contracts_dir.clone()
    };
    let report = validate::validate_path(path, &contracts_dir, &paths.repo_root);
    print!("{}", report.render(&paths.repo_root));
    println!("{}", report.summary_line());
    if report.is_valid() {
        let n = report.files.len();
        println!(
            "{}",
            if n == 1 {
                "Contract is valid.".to_string()
            } else {
                format!("{n} contracts are valid.")
            }
        );
    }
    Ok(report.is_valid())
}

fn cmd_list(filter: Option<&str>, paths: &Paths) -> Result<bool, String> {
    for t in trials::collect(paths, filter)? {
        match &t.plan {
            Plan::Run => println!("{}: run", t.name),
            Plan::Skip(why) => println!("{}: skip ({why})", t.name),
            Plan::Fail(why) => println!("{}: fail ({why})", t.name),
        }
    }
    Ok(true)
}

fn cmd_run(filter: Option<&str>, no_report: bool, paths: &Paths) -> Result<bool, String> {
    let list = trials::collect(paths, filter)?;
    let n = list.len();
    let tty = std::io::stderr().is_terminal();
    let mut failures = Vec::new();
    let mut per_contract: std::collections::BTreeMap<String, [usize; 3]> = Default::default();
    for (i, t) in list.iter().enumerate() {
        let contract = t.contract.contract.metadata.id.clone();
        if tty {
            eprint!("\r\x1b[K[{}/{n}] {} …", i + 1, t.name);
            let _ = std::io::stderr().flush();
        }
        let started = std::time::Instant::now();
        let (verdict, note) = match &t.plan {
            Plan::Skip(why) => {
                trials::record_skip(t, paths)
                    .map_err(|e| format!("cannot write evidence for {}: {e}", t.name))?;
                (Verdict::Skip, why.clone())
            }
            Plan::Run | Plan::Fail(_) => {
                let f = trials::run(t, paths);
                if f.verdict == Verdict::Fail {
                    failures.push(f.message.clone());
                }
                (f.verdict, String::new())
            }
        };
        let slot = match verdict {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Skip => 2,
        };
        per_contract.entry(contract).or_default()[slot] += 1;
        let line = format!(
            "[{}/{n}] {} {} ({} ms){}",
            i + 1,
            t.name,
            verdict.as_str(),
            started.elapsed().as_millis(),
            if note.is_empty() {
                String::new()
            } else {
                format!(": {note}")
            }
        );
        if tty {
            eprint!("\r\x1b[K");
        }
        eprintln!("{line}");
    }
    for f in &failures {
        eprintln!("\n{f}");
    }
    let w = per_contract
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "\n{:<w$}  {:>4}  {:>4}  {:>4}",
        "contract", "pass", "fail", "skip"
    );
    let mut tot = [0usize; 3];
    for (c, k) in &per_contract {
        println!("{c:<w$}  {:>4}  {:>4}  {:>4}", k[0], k[1], k[2]);
        for j in 0..3 {
            tot[j] += k[j];
        }
    }
    if !no_report {
        cmd_report(None, paths)?;
    }
    println!("{} passed, {} failed, {} skipped", tot[0], tot[1], tot[2]);
    Ok(tot[1] == 0)
}

fn load_standings(paths: &Paths) -> Result<Vec<report::Standing>, String> {
    let v = validate::validate_path(&paths.contracts_dir, &paths.contracts_dir, &paths.repo_root);
    if !v.is_valid() {
        return Err(format!(
            "contracts/ does not validate:\n{}{}",
            v.render(&paths.repo_root),
            v.summary_line()
        ));
    }
    let (ev, errs) = evidence::read_all(&paths.evidence_dir);
    for e in errs {
        eprintln!("pv: ignoring unreadable evidence {e}");
    }
    Ok(report::standings(&v.contracts, &ev))
}

fn cmd_status(paths: &Paths) -> Result<bool, String> {
    let st = load_standings(paths)?;
    print!("{}", report::render_status(&st));
    Ok(st.iter().all(|s| s.count(Verdict::Fail) == 0))
}

fn cmd_report(out: Option<&Path>, paths: &Paths) -> Result<(), String> {
    let st = load_standings(paths)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let meta = ReportMeta {
        generated: evidence::rfc3339(now),
        git_commit: evidence::engine_info(&paths.repo_root).git_commit,
    };
    let dir = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| paths.evidence_dir.clone());
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, text) in [
        ("report.md", report::render_markdown(&st, &meta)),
        ("report.html", report::render_html(&st, &meta)),
    ] {
        let p = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        println!("wrote {}", validate::display_path(&p, &paths.repo_root));
    }
    Ok(())
}
