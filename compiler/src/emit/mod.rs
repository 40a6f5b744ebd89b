//! Code generation from a checked model: the parsed spec ([`crate::ast::File`]) and its
//! [`crate::ir::ModelIr`] in; the text of the files of a package for another framework out
//! (nothing is written to disk here). [`pytorch`] emits a PyTorch package: `model.py`,
//! `train.py`, `README.md` and the spec itself.

pub mod pytorch;

/// One generated file: its path relative to the package directory and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedFile {
    pub path: String,
    pub contents: String,
}

/// Why a checked model cannot be emitted (a construct the target has no mapping for).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EmitError(pub String);

/// What emitting returns: the value, or why the model cannot be emitted.
pub type EmitResult<T> = Result<T, EmitError>;

impl EmitError {
    /// `Err` with this message.
    pub(crate) fn err<T>(msg: impl Into<String>) -> EmitResult<T> {
        Err(EmitError(msg.into()))
    }
}
