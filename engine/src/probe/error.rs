//! Errors of probing runs.

use crate::generate::GenerateError;
use crate::model::ModelError;
use crate::trace::aprt::AprtError;
use crate::trace::capture::{CaptureError, RecordError, SelectionError};

/// What went wrong running or comparing probes.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("run spec '{spec}': {reason}")]
    BadSpec { spec: String, reason: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Prompt(Box<GenerateError>),
    #[error(transparent)]
    Aprt(#[from] AprtError),
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("the prompt is empty: nothing to run")]
    EmptyPrompt,
    #[error("cannot write the report: {0}")]
    Output(#[source] std::io::Error),
    #[error("cannot build a pool of {threads} threads: {reason}")]
    Threads { threads: usize, reason: String },
    #[error("both sides are APRT dump directories; at least one side must be a model to run")]
    NoModel,
}

impl From<GenerateError> for ProbeError {
    fn from(e: GenerateError) -> Self {
        ProbeError::Prompt(Box::new(e))
    }
}
