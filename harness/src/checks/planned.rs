//! Kinds not runnable yet (the engine feature or the harness runner is missing): parameters are declared and validated so
//! contracts can be written and checked now, but there is no runner, so a contract using
//! one must stay PROPOSED (rule CHECK-PLANNED) and its tests report `skip`, never `pass`.
//! When the engine feature lands, move the kind into its own module with a `run` function.

use serde::Deserialize;

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

// ---- dequantization parity ----------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DequantParity {
    pub reference: String,
}

planned_kind!(
    DEQUANT_PARITY,
    "dequant_parity",
    "dequantized values bit-identical to committed gguf-py values",
    "a dequantization command (`apr dequant`) and a runner for it",
    DequantParity,
    |p: &DequantParity, _cx: &ValidateCx| {
        if p.reference.is_empty() {
            vec![ParamIssue::params("dequant_parity: empty reference")]
        } else {
            Vec::new()
        }
    }
);
