//! Kinds not runnable yet (the engine feature or the harness runner is missing): parameters are declared and validated so
//! contracts can be written and checked now, but there is no runner, so a contract using
//! one must stay PROPOSED (rule CHECK-PLANNED) and its tests report `skip`, never `pass`.
//! When the engine feature lands, move the kind into its own module with a `run` function.

use serde::Deserialize;

use super::spec::{check_run, RunSpec};
use super::{Availability, Kind, ParamIssue, ValidateCx};

macro_rules! planned_kind {
    ($const:ident, $name:literal, $summary:literal, $needs:literal, $params:ty, $sem:expr) => {
        pub static $const: Kind = Kind {
            name: $name,
            summary: $summary,
            availability: Availability::Planned($needs),
            validate: |v, cx| super::validate_typed::<$params>($name, v, |p| $sem(p, cx)),
            run: None,
        };
    };
}

// ---- logit / token / tokenizer parity ------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenParity {
    pub reference: String,
    #[serde(default)]
    pub run: Option<RunSpec>,
    #[serde(default)]
    pub prompt: Option<String>,
    pub n_tokens: u32,
}

planned_kind!(
    TOKEN_PARITY,
    "token_parity",
    "greedy tokens identical to committed llama.cpp reference",
    "generation (`apr run`) and a runner for it",
    TokenParity,
    |p: &TokenParity, cx: &ValidateCx| {
        let mut i = Vec::new();
        if let Some(r) = &p.run {
            check_run(r, "token_parity.run", cx, &mut i);
        }
        if p.n_tokens == 0 {
            i.push(ParamIssue::params("token_parity: n_tokens must be >= 1"));
        }
        i
    }
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerParity {
    pub reference: String,
}

planned_kind!(
    TOKENIZER_PARITY,
    "tokenizer_parity",
    "token ids identical to committed llama.cpp tokenizer reference",
    "a tokenizer command (`apr tokenize`) and a runner for it",
    TokenizerParity,
    |p: &TokenizerParity, _cx: &ValidateCx| {
        if p.reference.is_empty() {
            vec![ParamIssue::params("tokenizer_parity: empty reference")]
        } else {
            Vec::new()
        }
    }
);

// ---- weights_identical ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsIdentical {
    pub a: RunSpec,
    pub b: RunSpec,
}

planned_kind!(
    WEIGHTS_IDENTICAL,
    "weights_identical",
    "every tensor's bytes identical between two model files (e.g. APR and GGUF)",
    "a runner comparing the tensor bytes of two files (`apr convert` exists; this check is not written yet)",
    WeightsIdentical,
    |p: &WeightsIdentical, cx: &ValidateCx| {
        let mut i = Vec::new();
        check_run(&p.a, "weights_identical.a", cx, &mut i);
        check_run(&p.b, "weights_identical.b", cx, &mut i);
        i
    }
);

// ---- throughput ----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    #[serde(default)]
    pub run: Option<RunSpec>,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    /// Gate only when given AND `APR_PERF=1`; otherwise the rate is recorded.
    #[serde(default)]
    pub min_tokens_per_s: Option<f64>,
}

planned_kind!(
    THROUGHPUT,
    "throughput",
    "records prompt/decode tokens per second; gates only with a threshold and APR_PERF=1",
    "generation timing (`apr run` / `apr bench`) and a runner for it",
    Throughput,
    |p: &Throughput, cx: &ValidateCx| {
        let mut i = Vec::new();
        if let Some(r) = &p.run {
            check_run(r, "throughput.run", cx, &mut i);
        }
        if p.gen_tokens == 0 && p.prompt_tokens == 0 {
            i.push(ParamIssue::params(
                "throughput: prompt_tokens or gen_tokens must be > 0",
            ));
        }
        i
    }
);
