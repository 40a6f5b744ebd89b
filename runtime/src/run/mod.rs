//! Training runs: options in ([`TrainOptions`]: a spec to start from or a run directory to
//! continue, the budget, the cadence of evaluation), a run directory out ([`RunDir`]: the spec
//! as trained, the command line, `run.json`, `metrics.jsonl`, the checkpoint and the curves),
//! and a finished run read back for evaluation ([`TrainedRun`]). The driver ([`train`])
//! resumes exactly, evaluates and checkpoints on its cadence and stops on a NaN or infinite
//! loss with the last good checkpoint in place. It prints nothing: whoever calls it watches
//! through a [`RunObserver`] (the command line draws progress bars with it).

mod dir;
mod driver;
mod error;
mod observe;

pub use dir::{Metric, MetricsWriter, RunDir, RunInfo, TrainedRun};
pub use driver::{train, Start, TrainOptions};
pub use error::RunError;
pub use observe::{step_line, RunObserver, RunResult, RunStart, Silent};
