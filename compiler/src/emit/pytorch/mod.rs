//! The PyTorch emitter: a parsed spec and its checked [`ModelIr`] in; the files of a
//! self-contained Python package out: `model.py` (an `nn.Module` with the spec's layers in the
//! spec's order, one class per block and per ODE function, `state_dict()` keys equal to
//! tdspec's parameter names), `train.py` (the spec's task and training settings under
//! torchrun/DistributedDataParallel, checkpoints in tdspec's safetensors format), `README.md`
//! and `spec.tds`.
//!
//! The IR's block instances ([`crate::ir::Instance`]) give the structure: instances of one
//! block with the same structure share a class whose constructor takes what differs (`in_ch`,
//! `out_ch`, optional layers such as `nin_shortcut`); a pipeline whose stages are named
//! `P.0 .. P.n-1` becomes an `nn.Sequential`; everything else is a named layer or an
//! expression in `forward`. Statements follow the spec's statements (one Python statement per
//! spec assignment where possible).
//!
//! By concern: [`source`] (what is read from the AST), [`graph`] and [`scope`] (the structure
//! of a graph and of one class), [`layers`] (each op as PyTorch), [`names`], [`tree`] (module
//! trees), [`emitter`], [`classes`] and [`body`] (classes for instances and ODE functions),
//! [`forward`], [`model`] (`model.py`) and [`train`] (`train.py`, `README.md`).

mod body;
mod classes;
mod emitter;
mod forward;
mod graph;
mod layers;
mod model;
mod names;
mod scope;
mod source;
mod train;
mod tree;

pub use model::model_py;

use crate::ast;
use crate::emit::{EmitResult as R, EmittedFile};
use crate::ir::ModelIr;

/// Emits the whole package for `model` (one of the models of `file`, parsed from `spec_text`).
pub fn emit(file: &ast::File, model: &ModelIr, spec_text: &str) -> R<Vec<EmittedFile>> {
    let model_py = model_py(file, model)?;
    let train_py = train::train_py(model);
    let readme = train::readme(model);
    Ok(vec![
        EmittedFile {
            path: "model.py".into(),
            contents: model_py,
        },
        EmittedFile {
            path: "train.py".into(),
            contents: train_py,
        },
        EmittedFile {
            path: "README.md".into(),
            contents: readme,
        },
        EmittedFile {
            path: "spec.tds".into(),
            contents: spec_text.to_string(),
        },
    ])
}
