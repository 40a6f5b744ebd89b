//! Semantic analysis: an [`ast::File`] in; per model a checked [`ModelIr`] (typed arena graph
//! with shapes, hierarchical names, exact parameter lists, block instances and time-injection
//! sites) and every error it can find out. Name resolution, argument binding, shape inference
//! with a symbolic batch, GroupNorm divisibility and channel agreement all happen here, so that
//! lowering and execution never meet a spec they cannot run.
//!
//! Layers are not grammar: a stage like `conv3(64, time = concat)` is a call that sema looks up
//! in its table of built-in ops ([`ops`]) or among the model's blocks.
//!
//! By concern: [`state`] (the analyzer's state), [`model`] (the passes over a model's
//! statements), [`decls`] (blocks, input, time, bias policy), [`graph`] (scopes, nodes, shared
//! nodes, block instances), [`exprs`] (values and pipeline stages), [`blocks`] (block
//! expansion), [`values`] (numbers, lists, choices, settings), [`args`] (argument binding),
//! [`ops`] (the built-in layers), [`unet`], [`train`] (task and training settings).

mod args;
mod blocks;
mod decls;
mod exprs;
mod graph;
mod model;
mod ops;
mod state;
mod train;
mod unet;
mod values;

use crate::ast::{self, Span};
use crate::diagnostics::Diagnostic;
use crate::ir::ModelIr;
use state::Sema;
use std::collections::HashMap;

/// Analyzes every model in a parsed file. Models that had errors are left out of the first
/// element; all diagnostics of all models are in the second.
pub fn analyze(file: &ast::File) -> (Vec<ModelIr>, Vec<Diagnostic>) {
    let mut models = Vec::new();
    let mut diags = Vec::new();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for m in &file.models {
        if let Some(prev) = seen.insert(&m.name.name, m.name.span) {
            diags.push(
                Diagnostic::error("E104", format!("model `{}` is defined twice", m.name.name))
                    .with_primary(m.name.span, "second definition")
                    .with_secondary(prev, "first defined here"),
            );
        }
        let mut s = Sema::new(m, &mut diags);
        let before = s.diags.len();
        let ir = s.model();
        if s.diags.len() == before {
            if let Some(ir) = ir {
                models.push(ir);
            }
        }
    }
    (models, diags)
}

/// Parses and analyzes a spec source. `Err` holds the parse error or every semantic error.
pub fn check_source(src: &str) -> Result<Vec<ModelIr>, Vec<Diagnostic>> {
    let file = crate::syntax::parse(src).map_err(|d| vec![d])?;
    if file.models.is_empty() {
        return Err(vec![Diagnostic::error("E005", "the file defines no model")
            .with_primary(
                Span::new(0, src.len().min(1)),
                "expected `model NAME { ... }`",
            )
            .with_help("a spec starts with `model NAME {`")]);
    }
    let (models, diags) = analyze(&file);
    if diags
        .iter()
        .any(|d| d.severity == crate::diagnostics::Severity::Error)
    {
        Err(diags)
    } else {
        Ok(models)
    }
}

/// The names of the built-in layers sema resolves, in table order (editors highlight them).
pub fn layer_names() -> Vec<&'static str> {
    ops::names().collect()
}
