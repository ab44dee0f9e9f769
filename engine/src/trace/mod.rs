//! Observability: the stage vocabulary and the observer the forward pass reports to, the
//! APRT capture format, per-stage statistics and value diffs.

pub mod aprt;
pub mod capture;
pub mod diff;
pub mod diff_cli;
pub mod report;
mod stage;
pub mod stats;

pub use capture::{CaptureObserver, RecordingObserver, Selection, Tee, TensorKey};
pub use stage::{tap, wanted, NoObserver, Observer, Stage};
pub use stats::StatsObserver;
