//! The passes over a model's statements: declarations that may come in any order (blocks,
//! the default normalization, the bias policy), then the input and time declarations, then
//! every statement in order (embeddings, assignments, the output, the task and training
//! settings); last, the task's checks on the output. Out: the model's [`ModelIr`].

use super::ops;
use super::state::{attr_allows, Sema, Val};
use crate::ast::{ExprKind, Span, StmtKind};
use crate::diagnostics::Diagnostic;
use crate::ir::{Graph, ModelIr, NodeId, Op, Shape};

impl<'a> Sema<'a> {
    pub(super) fn model(&mut self) -> Option<ModelIr> {
        let m = self.model;
        // Pass 1: declarations that statements may refer to in any order (blocks, settings).
        for st in &m.stmts {
            match &st.kind {
                StmtKind::Block(b) => self.declare_block(b),
                StmtKind::Assign { name, value } if name.name == "norm" => {
                    if let Some((_, prev)) = self.default_norm {
                        self.err(
                            Diagnostic::error("E104", "the default normalization is set twice")
                                .with_primary(st.span, "second setting")
                                .with_secondary(prev, "first set here"),
                        );
                    } else if let Some(spec) = self.norm_spec(value) {
                        self.default_norm = Some((spec, value.span));
                    }
                }
                StmtKind::Assign { name, value } if name.name == "bias" => self.bias_policy(value),
                _ => {}
            }
        }
        // Pass 2: input and time first, so every statement can use them.
        let before = self.diags.len();
        for st in &m.stmts {
            match &st.kind {
                StmtKind::Input { name, kind, dims } => self.input_decl(st, name, kind, dims),
                StmtKind::Time { name, props } => self.time_decl(st, name, props),
                _ => {}
            }
        }
        // A declaration that failed is the cause of everything that would follow from it
        // ("declares no input", "unknown name x", ...): report it alone.
        if self.diags.len() > before {
            return None;
        }
        let input_node = match self.input.clone() {
            Some(inp) => {
                let shape = Shape::Image {
                    c: inp.channels,
                    h: inp.height,
                    w: inp.width,
                };
                let id = self.push_raw(Op::Input, vec![], shape, inp.name.clone(), inp.span);
                self.bind(&inp.name, Val::Node(id), inp.span);
                Some(id)
            }
            None => {
                self.err(
                    Diagnostic::error("E106", format!("model `{}` declares no input", m.name.name))
                        .with_primary(m.name.span, "this model has no `input`")
                        .with_help("declare the image input, e.g. `input x: image[1, 28, 28]`"),
                );
                None
            }
        };
        if self.time.is_none() {
            self.err(
                Diagnostic::error("E107", format!("model `{}` declares no time input", m.name.name))
                    .with_primary(m.name.span, "this model has no `time`")
                    .with_help("declare it, e.g. `time t: continuous, shared` or `time t: step(1000), per_sample`"),
            );
        }

        // Pass 3: statements in order.
        let mut output: Option<(NodeId, Span)> = None;
        // Set once an output statement was seen, even if it failed, to avoid a cascading E110.
        let mut output_stmt = false;
        let mut task = None;
        let mut train = None;
        for st in &m.stmts {
            self.scopes[0].allow = attr_allows(st);
            self.scopes[0].stmt_span = st.span;
            match &st.kind {
                StmtKind::Input { .. } | StmtKind::Time { .. } | StmtKind::Block(_) => {}
                StmtKind::Assign { name, .. } if name.name == "norm" || name.name == "bias" => {}
                StmtKind::Embed { name, value } => {
                    if self.embeds.contains_key(&name.name) || self.lookup(&name.name).is_some() {
                        self.err(
                            Diagnostic::error("E104", format!("`{}` is defined twice", name.name))
                                .with_primary(name.span, "already defined"),
                        );
                        continue;
                    }
                    self.embeds.insert(name.name.clone(), (value, name.span));
                    // Instantiate now in the model graph, so errors show even if unused.
                    self.embed_node(&name.name);
                }
                StmtKind::Assign { name, value } => {
                    if self.blocks.contains_key(&name.name) {
                        self.err(
                            Diagnostic::error(
                                "E104",
                                format!("`{}` is already a block", name.name),
                            )
                            .with_primary(name.span, "this name is taken by a block"),
                        );
                    }
                    let base = self.assign_base(&name.name);
                    if let Some(v) = self.value(value, &base) {
                        self.bind(&name.name, Val::Node(v), name.span);
                    }
                }
                StmtKind::Return(e) => {
                    if let Some((_, prev)) = output {
                        self.second_output(st.span, prev);
                        continue;
                    }
                    output_stmt = true;
                    if let Some(v) = self.value(e, "out") {
                        output = Some((v, st.span));
                    }
                }
                StmtKind::Expr(e) => match &e.kind {
                    ExprKind::Call(c) if c.name.name == "unet" => {
                        if let Some((_, prev)) = output {
                            self.second_output(st.span, prev);
                            continue;
                        }
                        output_stmt = true;
                        if let Some(x) = input_node {
                            if let Some(v) = self.unet(c, x) {
                                output = Some((v, st.span));
                            }
                        }
                    }
                    _ => {
                        let layer = match &e.kind {
                            ExprKind::Call(c) => Some(c.name.name.as_str()),
                            ExprKind::Ident(n) => Some(n.as_str()),
                            _ => None,
                        }
                        .filter(|n| {
                            ops::is_builtin(n) || self.blocks.contains_key(*n) || *n == "norm"
                        });
                        let d =
                            Diagnostic::error("E113", "this value is computed and then dropped")
                                .with_primary(e.span, "not assigned to a name");
                        self.err(match layer {
                            Some(_) => {
                                d.with_help("a layer needs an input: is a `|` missing before it?")
                            }
                            None => d.with_help("name it (`h = ...`) or return it (`return ...`)"),
                        });
                    }
                },
                StmtKind::Task(c) => {
                    if task.is_some() {
                        self.err(
                            Diagnostic::error("E104", "the task is declared twice")
                                .with_primary(st.span, "second task"),
                        );
                    } else {
                        task = self.task(c);
                    }
                }
                StmtKind::Train { args, span } => {
                    if train.is_some() {
                        self.err(
                            Diagnostic::error("E104", "training settings are declared twice")
                                .with_primary(st.span, "second `train`"),
                        );
                    } else {
                        train = Some(self.train(args, *span));
                    }
                }
            }
        }
        let Some((out, _)) = output else {
            if input_node.is_some() && !output_stmt {
                self.err(
                    Diagnostic::error("E110", format!("model `{}` has no output", m.name.name))
                        .with_primary(m.name.span, "nothing is returned")
                        .with_help("end the model with `return VALUE` or a `unet(...)` statement"),
                );
            }
            return None;
        };
        if let Some(task) = &task {
            self.check_task(task, out);
        }
        let input = self.input.clone()?;
        let time = self.time.clone()?;
        let ctx = self.graphs.pop()?;
        if let Err(span) = count_fits(&ctx.graph) {
            self.err(
                Diagnostic::error("E202", "the parameter count overflows 64 bits")
                    .with_primary(span, "the count passes 2^64 here")
                    .with_help("use fewer or smaller layers"),
            );
            return None;
        }
        Some(ModelIr {
            name: m.name.name.clone(),
            span: m.span,
            input,
            time,
            bias: self.bias,
            graph: ctx.graph,
            output: out,
            task,
            train: train.unwrap_or_default(),
            injections: std::mem::take(&mut self.injections),
            label: self.label.clone(),
        })
    }

    fn second_output(&mut self, at: Span, first: Span) {
        self.err(
            Diagnostic::error("E104", "the model's output is defined twice")
                .with_primary(at, "second output")
                .with_secondary(first, "first output here"),
        );
    }
}

/// The parameter count in exact 64-bit arithmetic, or the span of the node (or the ODE node
/// around it) where it overflows: saturating counts would print a wrong total.
fn count_fits(g: &Graph) -> Result<u64, Span> {
    let mut total: u64 = 0;
    for n in &g.nodes {
        let mut own: u64 = 0;
        for p in &n.params {
            let numel = p
                .shape
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
                .ok_or(n.span)?;
            own = own.checked_add(numel).ok_or(n.span)?;
        }
        if let Op::Ode { func, .. } = &n.op {
            own = own.checked_add(count_fits(&func.graph)?).ok_or(n.span)?;
        }
        total = total.checked_add(own).ok_or(n.span)?;
    }
    Ok(total)
}
