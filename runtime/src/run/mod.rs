//! Training runs: options in ([`TrainOptions`]: a spec to start from or a run directory to
//! continue, the budget, the cadence of evaluation), a run directory out ([`RunDir`]: the spec
//! as trained, the command line, `run.json`, `metrics.jsonl`, the checkpoint and the curves),
//! and a finished run read back for evaluation ([`TrainedRun`]). The driver ([`train`])
//! resumes exactly, evaluates and checkpoints on its cadence and stops on a NaN or infinite
//! loss with the last good checkpoint in place. It prints nothing: whoever calls it watches
//! through a [`RunObserver`] (the command line draws progress bars with it).

mod dir;
mod driver;

pub use dir::{Metric, RunDir, RunInfo, TrainedRun};
pub use driver::{train, RunResult, RunStart, Start, TrainOptions};

use crate::spec::SpecError;
use crate::train::{EvalReport, StepLog};
use crate::RuntimeError;
use std::path::PathBuf;

/// Why a run (or a lab plan) could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A spec file is unreadable, invalid or holds several models.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Anything else that stops the work before or between training steps.
    #[error("{0}")]
    Failed(String),
    /// Training failed at `step` (a diverging loss, say); the last good checkpoint stays at
    /// `checkpoint`.
    #[error("{source}")]
    Stopped {
        step: usize,
        checkpoint: PathBuf,
        source: RuntimeError,
    },
}

impl RunError {
    /// A [`RunError::Failed`] with the message `msg`.
    pub fn failed(msg: impl std::fmt::Display) -> Self {
        RunError::Failed(msg.to_string())
    }
}

/// Watches long work: training steps, other progress, and news worth a line. Every method does
/// nothing by default.
pub trait RunObserver {
    /// Training starts (or resumes) at `start.step`.
    fn started(&mut self, _start: &RunStart) {}
    /// A training step finished; `eval` is the evaluation run after it, if any.
    fn step(&mut self, _log: &StepLog, _eval: Option<&EvalReport>) {}
    /// Training reached its target.
    fn finished(&mut self, _result: &RunResult) {}
    /// Progress of other work: `i` of `k` done (`i == k` at the end).
    fn progress(&mut self, _what: &str, _i: usize, _k: usize) {}
    /// A line of news.
    fn note(&mut self, _line: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl RunObserver for Silent {}
