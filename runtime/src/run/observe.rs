//! Watching a run: what the driver tells its observer (a run about to train, each step and
//! evaluation, the finished run) and the observer trait itself, which the lab also uses for its
//! news and other long work.

use crate::train::{EvalReport, StepLog};
use std::path::PathBuf;

/// A run about to train: what the observer is told first.
#[derive(Clone, Debug)]
pub struct RunStart {
    pub model: String,
    /// The data set's description.
    pub source: String,
    pub train_samples: usize,
    pub test_samples: usize,
    pub batch: usize,
    /// The step training starts from (0, or where a resumed run stopped).
    pub step: usize,
    pub target: usize,
    pub seed: u64,
    pub dir: PathBuf,
}

/// A finished training run.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub dir: PathBuf,
    /// The steps the run now has.
    pub steps: usize,
    /// The last evaluation (at the target step).
    pub final_eval: EvalReport,
    /// Seconds this call trained.
    pub seconds: f64,
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
