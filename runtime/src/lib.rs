//! tdspec runtime: takes the compiler's checked IR and runs it on dfdx tensors with runtime
//! (`usize`) dimensions. [`ops`] holds the tensor ops layer (own layers and fast CPU kernels,
//! each recorded on dfdx's autograd tape); [`params`] the named parameters, their
//! initialization and checkpoint I/O; [`exec`] the graph executor and ODE solvers;
//! [`lower`] the checks that run before any allocation; [`train`] the training step and
//! evaluation, [`checkpoint`] the one checkpoint format, [`run`] run directories and the
//! training driver (with an observer for progress), [`lab`] the demo and experiment plans,
//! [`probe`] the dynamic probe and its agreement rule, [`parity`] and [`bench`] the
//! CPU-vs-device comparison and the yardstick workloads, [`survival`] the per-origin survival
//! probe, [`spec`] spec files on disk, [`summary`] what `check` and `compile` report.

pub mod alloc;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod diffusers;
pub mod exec;
pub mod frechet;
pub mod lab;
pub mod lower;
pub mod once;
pub mod ops;
pub mod optim;
pub mod params;
pub mod parity;
pub mod plot;
pub mod probe;
pub mod render;
pub mod run;
pub mod sample;
pub mod spec;
pub mod summary;
pub mod survival;
pub mod train;

/// Errors of the runtime. None of them is a panic: user input that slips past sema, a corrupt
/// checkpoint or a diverging computation all end up here.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum RuntimeError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("{0}")]
    Io(String),
    #[error("op failed: {0}")]
    Op(String),
    #[error("ODE solver: {0}")]
    Solver(String),
    #[error("{0} became NaN or infinite")]
    NonFinite(String),
    #[error("data: {0}")]
    Data(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// An error about one file, prefixed with its path.
    #[error("{0}: {1}")]
    InFile(String, Box<RuntimeError>),
}
