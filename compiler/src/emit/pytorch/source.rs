//! What the PyTorch emitter reads from the parsed model: block definitions by name (for class
//! names, docstrings and the names of their inputs) and the name each statement assigns (for
//! variable names in `forward`).

use crate::ast::{self, BlockDef, Span, StmtKind};
use crate::emit::{EmitError, EmitResult as R};
use std::collections::HashMap;

pub(super) struct Source<'a> {
    pub(super) defs: HashMap<&'a str, &'a BlockDef>,
    /// Statement span -> the name it assigns (`a`, `temb`, ...).
    pub(super) targets: HashMap<(usize, usize), String>,
}

impl<'a> Source<'a> {
    pub(super) fn new(m: &'a ast::Model) -> Self {
        let mut defs = HashMap::new();
        let mut targets = HashMap::new();
        for st in &m.stmts {
            match &st.kind {
                StmtKind::Block(b) => {
                    for s in &b.body {
                        if let StmtKind::Assign { name, .. } = &s.kind {
                            targets.insert((s.span.start, s.span.end), name.name.clone());
                        }
                    }
                    defs.insert(b.name.name.as_str(), b);
                }
                StmtKind::Assign { name, .. } | StmtKind::Embed { name, .. } => {
                    targets.insert((st.span.start, st.span.end), name.name.clone());
                }
                _ => {}
            }
        }
        Source { defs, targets }
    }

    /// The definition of the block called `name`.
    pub(super) fn def(&self, name: &str) -> R<&'a BlockDef> {
        match self.defs.get(name) {
            Some(d) => Ok(d),
            None => EmitError::err(format!("block `{name}` is not in the parsed model")),
        }
    }

    pub(super) fn target(&self, span: Span) -> Option<&str> {
        self.targets
            .get(&(span.start, span.end))
            .map(String::as_str)
    }
}
