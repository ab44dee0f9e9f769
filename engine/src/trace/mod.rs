//! Observability: the stage vocabulary and the observer the forward pass reports to.

mod stage;

pub use stage::{tap, NoObserver, Observer, Stage};
