//! Block expansion: a call of a block binds its parameters (evaluated in the caller's scope)
//! and its input, evaluates the body in a scope of its own under the call's name prefix, and
//! records the expansion as a block instance.

use super::args;
use super::state::{attr_allows, join, Scope, Sema, Val};
use crate::ast::{self, BlockDef, StmtKind};
use crate::diagnostics::Diagnostic;
use crate::ir::NodeId;

/// How deeply block calls may nest (a block that calls itself is reported).
const MAX_BLOCK_DEPTH: usize = 24;

impl<'a> Sema<'a> {
    /// Expands a call of block `def` on `input` as an instance named `path`.
    pub(super) fn invoke_block(
        &mut self,
        def: &'a BlockDef,
        c: &ast::Call,
        input: NodeId,
        path: String,
    ) -> Option<NodeId> {
        self.expand_block(def, c, input, path, true)
    }

    /// Expands a call of block `def` on `input`: its arguments are evaluated in the caller's
    /// scope, its body in a scope whose nodes are named under `path`. With `record`, the body's
    /// nodes are recorded as an [`Instance`] (an ODE function's body is its own graph instead).
    pub(super) fn expand_block(
        &mut self,
        def: &'a BlockDef,
        c: &ast::Call,
        input: NodeId,
        path: String,
        record: bool,
    ) -> Option<NodeId> {
        if self.depth >= MAX_BLOCK_DEPTH {
            // A block on the stack of calls recurses; otherwise the nesting is just deep.
            let recursive = self.block_stack.iter().any(|b| b == &def.name.name);
            let d = if recursive {
                Diagnostic::error(
                    "E114",
                    format!("block `{}` calls itself without end", def.name.name),
                )
                .with_primary(c.span, "recursion too deep")
            } else {
                Diagnostic::error(
                    "E114",
                    format!("blocks nest more than {MAX_BLOCK_DEPTH} calls deep"),
                )
                .with_primary(c.span, format!("call {} of a chain", MAX_BLOCK_DEPTH + 1))
                .with_help("flatten the chain: a block may call at most 24 levels of blocks")
            };
            self.err(d.with_secondary(def.name.span, "block defined here"));
            return None;
        }
        if def.inputs.len() != 1 {
            return None; // reported at the definition
        }
        let names: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
        let required = def.params.iter().filter(|p| p.default.is_none()).count();
        let bound = args::bind(self.diags, c, &names, required)?;
        // Evaluate arguments in the caller's scope.
        let mut vals = Vec::new();
        for (p, e) in def.params.iter().zip(&bound) {
            let v = match e {
                Some(e) => self.const_val(e)?,
                None => self.const_val(p.default.as_ref()?)?,
            };
            vals.push((p.name.name.clone(), v, p.name.span));
        }
        self.scopes.push(Scope::new(path.clone(), c.span));
        for (n, v, sp) in vals {
            self.bind(&n, v, sp);
        }
        self.bind(
            &def.inputs[0].name.name,
            Val::Node(input),
            def.inputs[0].name.span,
        );
        if record {
            self.open_instance(&def.name.name, &path, c.span);
        }
        self.depth += 1;
        self.block_stack.push(def.name.name.clone());
        let out = self.block_body(def);
        self.block_stack.pop();
        self.depth -= 1;
        if record {
            self.close_instance(out);
        }
        self.scopes.pop();
        out
    }

    fn block_body(&mut self, def: &'a BlockDef) -> Option<NodeId> {
        let mut out = None;
        let mut failed = false;
        for st in &def.body {
            self.scopes.last_mut().expect("a scope").allow = attr_allows(st);
            self.scopes.last_mut().expect("a scope").stmt_span = st.span;
            match &st.kind {
                StmtKind::Assign { name, value } => {
                    if name.name == "norm" || name.name == "bias" {
                        self.err(
                            Diagnostic::error(
                                "E115",
                                format!("`{}` is a model-level setting", name.name),
                            )
                            .with_primary(st.span, "not allowed inside a block")
                            .with_help(
                                "set it at model level, or name a specific layer in the pipeline",
                            ),
                        );
                        failed = true;
                        continue;
                    }
                    let base = self.assign_base(&name.name);
                    match self.value(value, &base) {
                        Some(v) => self.bind(&name.name, Val::Node(v), name.span),
                        None => failed = true,
                    }
                }
                StmtKind::Return(e) => {
                    if out.is_some() {
                        self.err(
                            Diagnostic::error("E104", "a block returns twice")
                                .with_primary(st.span, "second return"),
                        );
                        failed = true;
                        continue;
                    }
                    let base = self.scopes.last().expect("a scope").prefix.clone();
                    match self.value(e, &join(&base, "out")) {
                        Some(v) => out = Some(v),
                        None => failed = true,
                    }
                }
                _ => {
                    self.err(
                        Diagnostic::error(
                            "E115",
                            "only assignments and `return` may appear in a block",
                        )
                        .with_primary(st.span, "not allowed inside a block")
                        .with_help("move declarations to model level"),
                    );
                    failed = true;
                }
            }
        }
        if failed {
            return None;
        }
        if out.is_none() {
            self.err(
                Diagnostic::error("E110", format!("block `{}` returns nothing", def.name.name))
                    .with_primary(def.name.span, "no `return` in this block")
                    .with_help("end the block with `return VALUE`"),
            );
        }
        out
    }
}
