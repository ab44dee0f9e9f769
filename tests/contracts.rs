//! Every falsification test in `contracts/` as a libtest-mimic trial named
//! `<contract-id>::<FALSIFY-ID>` (`harness = false`).
//!
//! - libtest flags work: a name filter, `--exact`, `--skip`, `--list`, `--ignored`,
//!   `--include-ignored`; cargo-nextest runs it like any libtest binary.
//! - Skips (PROPOSED contract, missing model, no GPU, unset `requires.env`) are decided
//!   while collecting: the trial is marked ignored and its `skip` evidence, with the reason,
//!   is written then (not under `--list`, and not for trials a filter deselects).
//!   `APR_REQUIRE_MODELS=1` turns a missing model into a failing trial.
//! - `APR_CONTRACTS=<glob>` selects contracts before anything runs; unlike a libtest name
//!   filter (which cargo passes to every test binary), a glob that matches nothing is an
//!   error.

use std::process::ExitCode;

use apr_harness::evidence::Verdict;
use apr_harness::trials::{self, Paths, Plan};
use libtest_mimic::{Arguments, Trial};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let paths = Paths::discover();
    let glob = std::env::var("APR_CONTRACTS")
        .ok()
        .filter(|g| !g.is_empty());
    let collected = match trials::collect(&paths, glob.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot collect contract trials: {e}");
            return ExitCode::from(101);
        }
    };
    let runs_ignored = args.ignored || args.include_ignored;
    let mut list = Vec::with_capacity(collected.len());
    for t in collected {
        let ignored = matches!(t.plan, Plan::Skip(_));
        if ignored && !args.list && !runs_ignored && selected(&args, &t.name) {
            if let Err(e) = trials::record_skip(&t, &paths) {
                eprintln!("warning: cannot write skip evidence for {}: {e}", t.name);
            }
        }
        let paths = paths.clone();
        let name = t.name.clone();
        list.push(
            Trial::test(name, move || {
                let done = trials::run(&t, &paths);
                match done.verdict {
                    Verdict::Fail => Err(done.message.into()),
                    Verdict::Pass | Verdict::Skip => Ok(()),
                }
            })
            .with_ignored_flag(ignored),
        );
    }
    libtest_mimic::run(&args, list).exit_code()
}

/// Whether libtest-mimic will select `name` (same rules: substring or `--exact`, `--skip`).
fn selected(args: &Arguments, name: &str) -> bool {
    let hit = |pat: &str| {
        if args.exact {
            name == pat
        } else {
            name.contains(pat)
        }
    };
    args.filter.as_deref().is_none_or(hit) && !args.skip.iter().any(|s| hit(s))
}
