//! What stops a run or a lab plan: a spec that cannot be used, a failure before or between
//! training steps, or a failed step with the checkpoint that stays.

use crate::spec::SpecError;
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
    /// `checkpoint`, or none was written yet.
    #[error(
        "{source}\ntraining stopped at step {step}; {}",
        stopped_with(checkpoint)
    )]
    Stopped {
        step: usize,
        checkpoint: Option<PathBuf>,
        source: RuntimeError,
    },
}

fn stopped_with(checkpoint: &Option<PathBuf>) -> String {
    match checkpoint {
        Some(c) => format!("the last good checkpoint is {}", c.display()),
        None => "no checkpoint was written yet: the same command starts the run over".into(),
    }
}

impl RunError {
    /// A [`RunError::Failed`] with the message `msg`.
    pub fn failed(msg: impl std::fmt::Display) -> Self {
        RunError::Failed(msg.to_string())
    }
}
