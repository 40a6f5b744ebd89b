//! Watching a run: what the driver tells its observer (a run about to train, each step and
//! evaluation, the finished run), the lines that say so, and the observer trait itself, which
//! the lab also uses for its news and other long work.

use crate::train::{EvalReport, StepLog};
use std::fmt;
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

impl fmt::Display for RunStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "training {} on {}, using {} train / {} test samples, batch {}, steps {}..{}, seed {} -> {}",
            self.model, self.source, self.train_samples, self.test_samples, self.batch, self.step,
            self.target, self.seed, self.dir.display()
        )
    }
}

impl fmt::Display for RunResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "done: {} steps in {:.1} s", self.steps, self.seconds)?;
        let e = &self.final_eval;
        match (e.accuracy, e.eps_mse) {
            (Some(a), _) => write!(f, ", test accuracy {a:.4} on {} digits", e.samples),
            (_, Some(m)) => write!(f, ", test eps-MSE {m:.5} on {} digits", e.samples),
            _ => Ok(()),
        }
    }
}

/// The line of a step (of `target`) and the evaluation after it, for logs without a bar.
pub fn step_line(log: &StepLog, target: usize, eval: Option<&EvalReport>) -> String {
    let (step, loss, lr) = (log.step, log.loss, log.lr);
    let mut line = format!("step {step}/{target} loss {loss:.5} lr {lr:.2e}");
    if let Some(a) = eval.and_then(|e| e.accuracy) {
        line += &format!(" test accuracy {a:.4}");
    }
    if let Some(e) = eval.and_then(|e| e.eps_mse) {
        line += &format!(" test eps-MSE {e:.5}");
    }
    line
}
