//! `tokenizer_parity`: the model's tokenizer gives llama.cpp's token ids for every string of
//! a committed reference corpus, with special handling on (add BOS/EOS as the vocabulary
//! asks, parse control-token text) and off. The ids come from `apr tokenize --json`; the
//! reference from llama.cpp (tools/fixtures/make_fixtures.py, `tokens.json`).
//!
//! ```yaml
//! check:
//!   kind: tokenizer_parity
//!   reference: tests/fixtures/reference/qwen2-Q8_0/tokens.json
//! ```

use serde::Deserialize;

use super::engine;
use super::spec::RunSpec;
use super::{Kind, Measurement, Outcome, ParamIssue, RunCx, ValidateCx};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerParity {
    /// A `tokens.json` written by tools/fixtures (relative to the repository root).
    pub reference: String,
}

pub static KIND: Kind = Kind {
    name: "tokenizer_parity",
    summary: "token ids identical to committed llama.cpp tokenizer reference",
    validate,
    run,
};

fn validate(params: &serde_yaml::Value, _cx: &ValidateCx) -> Vec<ParamIssue> {
    super::validate_typed::<TokenizerParity>("tokenizer_parity", params, |p| {
        if p.reference.is_empty() {
            vec![ParamIssue::params("tokenizer_parity: empty reference")]
        } else {
            Vec::new()
        }
    })
}

#[derive(Debug, Deserialize)]
struct Case {
    text: String,
    add_special_parse_special: Vec<u32>,
    no_add_no_parse: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Tokenized {
    tokens: Vec<u32>,
}

fn run(params: &serde_yaml::Value, cx: &RunCx) -> Result<Outcome, String> {
    let p: TokenizerParity = super::typed("tokenizer_parity", params).map_err(|e| e.message)?;
    let model = engine::resolve(&RunSpec::default(), cx, "m")?;
    let path = cx.repo_root.join(&p.reference);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reference: Reference =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut compared = 0usize;
    let mut mismatches = Vec::new();
    for case in &reference.cases {
        for (flags, want) in [
            (
                &["--add-special", "--parse-special"][..],
                &case.add_special_parse_special,
            ),
            (&[][..], &case.no_add_no_parse),
        ] {
            let text_arg = format!("--text={}", case.text);
            let mut args: Vec<&std::ffi::OsStr> = vec![
                "tokenize".as_ref(),
                model.path.as_os_str(),
                text_arg.as_ref(),
                "--json".as_ref(),
            ];
            args.extend(flags.iter().map(|f| std::ffi::OsStr::new(*f)));
            let out = engine::apr(&args, &[])?;
            let got: Tokenized =
                serde_json::from_str(&out).map_err(|e| format!("apr tokenize --json: {e}"))?;
            compared += 1;
            if &got.tokens != want {
                mismatches.push(format!(
                    "{:?} [{}]: llama.cpp {want:?}, ours {:?}",
                    case.text,
                    if flags.is_empty() { "plain" } else { "special" },
                    got.tokens
                ));
            }
        }
    }
    let ms = vec![
        Measurement::new(
            "tokenizations compared",
            "count",
            compared,
            "> 0",
            compared > 0,
        ),
        Measurement::new(
            "differing from llama.cpp",
            "equals",
            mismatches.len(),
            0,
            mismatches.is_empty(),
        ),
    ];
    let measured = if mismatches.is_empty() {
        format!(
            "{compared} tokenizations of {} identical to llama.cpp's",
            p.reference
        )
    } else {
        format!(
            "{} of {compared} tokenizations differ from llama.cpp's ({}); first: {}",
            mismatches.len(),
            p.reference,
            mismatches[0]
        )
    };
    Ok(Outcome {
        passed: ms.iter().all(|m| m.ok),
        measured,
        measurements: ms,
        ..Outcome::default()
    })
}
