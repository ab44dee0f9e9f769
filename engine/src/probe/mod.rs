//! Running a model under observation: run specs, capturing every stage of a prompt, the
//! `apr trace` and `apr bisect` commands.

pub mod bisect;
pub mod bisect_cmd;
mod error;
pub mod spec;
pub mod trace_cmd;

pub use error::ProbeError;
pub use spec::{RunSource, RunSpec};
