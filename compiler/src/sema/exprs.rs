//! Graph building from expressions: a value (a name, a pipeline, a sum, a labeled value,
//! `concat(...)`, `shortcut(h, out)`), each pipeline stage applied to its input (the default
//! `norm`, a block, or a built-in layer from [`super::ops`]), and the errors for values used
//! as layers and layers used as values.

use super::ops;
use super::state::{join, Sema, Val};
use crate::ast::{self, Expr, ExprKind, Span};
use crate::diagnostics::Diagnostic;
use crate::ir::{NodeId, Op, Shape};

impl<'a> Sema<'a> {
    /// Evaluates a value expression to a node. `base` names the nodes it creates.
    pub(super) fn value(&mut self, e: &Expr, base: &str) -> Option<NodeId> {
        match &e.kind {
            ExprKind::Pipe(items) => {
                let mut cur = self.value(&items[0], base)?;
                for (i, st) in items[1..].iter().enumerate() {
                    cur = self.stage(cur, st, base, i)?;
                }
                Some(cur)
            }
            ExprKind::Sum(terms) => self.sum(terms, e.span, base),
            ExprKind::Ident(name) => self.name_value(name, e.span),
            ExprKind::Labeled(inner, label) => {
                let b = join(
                    &self.scopes.last().expect("a scope").prefix.clone(),
                    &label.name,
                );
                // A labeled value call (`shortcut(h, c) as sc`) names its node exactly.
                if let ExprKind::Call(c) = &inner.kind {
                    if c.name.name == "shortcut" {
                        return self.shortcut_value(c, base, &b);
                    }
                }
                self.value(inner, &b)
            }
            ExprKind::Call(c) => match c.name.name.as_str() {
                "concat" => self.concat(c, base),
                "shortcut" => self.shortcut_value(c, base, &format!("{base}.shortcut")),
                "inject" => {
                    self.err(
                        Diagnostic::error("E201", "`inject` adds to a value")
                            .with_primary(e.span, "nothing to add the embedding to")
                            .with_help("write `h + inject(temb)` or `h | inject(temb)`"),
                    );
                    None
                }
                name if ops::is_builtin(name)
                    || self.blocks.contains_key(name)
                    || name == "norm" =>
                {
                    self.err(
                        Diagnostic::error("E201", format!("`{name}` is a layer, not a value"))
                            .with_primary(e.span, "a layer needs an input")
                            .with_help(format!("apply it to a value: `x | {}`", src_call(c))),
                    );
                    None
                }
                _ => {
                    self.unknown_layer(&c.name);
                    None
                }
            },
            ExprKind::Number(..) | ExprKind::List(_) | ExprKind::Record(_) => {
                self.err(
                    Diagnostic::error(
                        "E201",
                        format!("expected a tensor value, found {}", e.describe()),
                    )
                    .with_primary(e.span, "not a tensor"),
                );
                None
            }
        }
    }

    /// `shortcut(h, out)` as a value (not a stage), its node named `name`.
    fn shortcut_value(&mut self, c: &ast::Call, base: &str, name: &str) -> Option<NodeId> {
        let a = self.bind_args(c, &["h", "out"], 2)?;
        let h = self.value(a[0]?, base)?;
        let out = self.positive(a[1]?, "the number of output channels")?;
        self.shortcut(h, out, c.span, name)
    }

    pub(super) fn name_value(&mut self, name: &str, span: Span) -> Option<NodeId> {
        if self.time.as_ref().is_some_and(|t| t.name == name) {
            return self.time_node();
        }
        if let Some((v, _, depth)) = self.lookup(name) {
            return match v {
                Val::Node(id) => {
                    if depth < self.gctx_floor() {
                        self.err(
                            Diagnostic::error(
                                "E112",
                                format!("`{name}` is not visible inside an ODE function"),
                            )
                            .with_primary(span, "defined outside the ODE function")
                            .with_help(
                                "an ODE function sees its state, the time input and embeddings",
                            ),
                        );
                        return None;
                    }
                    Some(id)
                }
                _ => {
                    self.err(
                        Diagnostic::error(
                            "E201",
                            format!("`{name}` is a setting, not a tensor value"),
                        )
                        .with_primary(span, "not a tensor"),
                    );
                    None
                }
            };
        }
        if self.embeds.contains_key(name) {
            return self.embed_node(name);
        }
        if let Some(lb) = self.label.as_ref().filter(|l| l.name == name) {
            let at = lb.span;
            self.err(
                Diagnostic::error("E201", format!("`{name}` is the class-label input"))
                    .with_primary(span, "a label per sample, not a tensor")
                    .with_secondary(at, "declared here")
                    .with_help(format!(
                        "add its learned row to an embedding: `embed e = ... | class_embed({name})`"
                    )),
            );
            return None;
        }
        let names = self.visible_names();
        let mut d = Diagnostic::error("E101", format!("unknown name `{name}`"))
            .with_primary(span, "not defined")
            .suggest(name, names.iter().map(String::as_str));
        if ops::is_builtin(name) || self.blocks.contains_key(name) {
            d = d.or_help(format!("`{name}` is a layer: apply it with `x | {name}`"));
        }
        self.err(d);
        None
    }

    fn sum(&mut self, terms: &[Expr], span: Span, base: &str) -> Option<NodeId> {
        let mut acc: Option<NodeId> = None;
        let mut injects = Vec::new();
        let mut ok = true;
        for t in terms {
            if let ExprKind::Call(c) = &t.kind {
                if c.name.name == "inject" {
                    injects.push((t, None));
                    continue;
                }
            }
            if let ExprKind::Labeled(inner, label) = &t.kind {
                if let ExprKind::Call(c) = &inner.kind {
                    if c.name.name == "inject" {
                        injects.push((inner.as_ref(), Some(label)));
                        continue;
                    }
                }
            }
            let Some(v) = self.value(t, base) else {
                ok = false;
                continue;
            };
            acc = match acc {
                None => Some(v),
                Some(a) => {
                    if !self.same_shape(a, v, t.span, "added") {
                        ok = false;
                        continue;
                    }
                    let sh = self.node_shape(a);
                    Some(self.push_raw(Op::Add, vec![a, v], sh, format!("{base}.add"), span))
                }
            };
        }
        if !ok {
            return None;
        }
        let Some(mut acc) = acc else {
            self.err(
                Diagnostic::error("E201", "`inject` adds to a value")
                    .with_primary(span, "nothing to add the embedding to")
                    .with_help("write `h + inject(temb)`"),
            );
            return None;
        };
        for (t, label) in injects {
            let ExprKind::Call(c) = &t.kind else { continue };
            let name = match label {
                Some(l) => join(
                    &self.scopes.last().expect("a scope").prefix.clone(),
                    &l.name,
                ),
                None => format!("{base}.inject"),
            };
            acc = self.builtin(acc, c, name)?;
        }
        Some(acc)
    }

    fn same_shape(&mut self, a: NodeId, b: NodeId, at: Span, verb: &str) -> bool {
        let (sa, sb) = (self.node_shape(a), self.node_shape(b));
        if sa == sb {
            return true;
        }
        let code = match (sa, sb) {
            (Shape::Image { c: c1, .. }, Shape::Image { c: c2, .. }) if c1 != c2 => "E204",
            (Shape::Image { .. }, Shape::Image { .. }) => "E205",
            (Shape::Vector { .. }, Shape::Vector { .. }) => "E204",
            _ => "E207",
        };
        let d = Diagnostic::error(
            code,
            format!("values of shapes {sa} and {sb} cannot be {verb}"),
        )
        .with_primary(at, format!("this is {sb}"))
        .with_secondary(self.node_span(a), format!("this is {sa}"));
        let d = if code == "E204" {
            d.with_help("project one side with `conv1(C)` or `shortcut(h, C)` to match channels")
        } else {
            d
        };
        self.err(d);
        false
    }

    pub(super) fn concat(&mut self, c: &ast::Call, base: &str) -> Option<NodeId> {
        if c.args.len() < 2 || c.args.iter().any(|a| a.name.is_some()) {
            self.err(
                Diagnostic::error("E105", "`concat` joins two or more values along channels")
                    .with_primary(c.span, "expected `concat(a, b, ...)`"),
            );
            return None;
        }
        let mut nodes = Vec::new();
        for a in &c.args {
            nodes.push(self.value(&a.value, base));
        }
        let nodes: Vec<NodeId> = nodes.into_iter().collect::<Option<_>>()?;
        let mut total = 0;
        let mut hw = None;
        for (a, &n) in c.args.iter().zip(&nodes) {
            match self.node_shape(n) {
                Shape::Image { c: ch, h, w } => {
                    if let Some((h0, w0, first)) = hw {
                        if (h0, w0) != (h, w) {
                            self.err(
                                Diagnostic::error(
                                    "E205",
                                    format!(
                                        "cannot concatenate {h}x{w} with {h0}x{w0} feature maps"
                                    ),
                                )
                                .with_primary(a.span, format!("this is {h}x{w}"))
                                .with_secondary(first, format!("this is {h0}x{w0}"))
                                .with_help(
                                    "a skip connection must join values of the same resolution",
                                ),
                            );
                            return None;
                        }
                    } else {
                        hw = Some((h, w, a.span));
                    }
                    total += ch;
                }
                other => {
                    self.err(
                        Diagnostic::error(
                            "E207",
                            format!("`concat` joins feature maps, found {other}"),
                        )
                        .with_primary(a.span, "not a feature map"),
                    );
                    return None;
                }
            }
        }
        let (h, w, _) = hw?;
        Some(self.push_raw(
            Op::Concat,
            nodes,
            Shape::Image { c: total, h, w },
            format!("{base}.concat"),
            c.span,
        ))
    }

    pub(super) fn unknown_layer(&mut self, name: &ast::Ident) {
        let mut candidates: Vec<&str> = ops::names().collect();
        candidates.push("norm");
        let blocks: Vec<String> = self.blocks.keys().cloned().collect();
        candidates.extend(blocks.iter().map(String::as_str));
        let mut d = Diagnostic::error("E102", format!("unknown layer `{}`", name.name))
            .with_primary(name.span, "no built-in layer or block has this name")
            .suggest(&name.name, candidates);
        if self.lookup(&name.name).is_some() || self.embeds.contains_key(&name.name) {
            d = d.or_help(format!("`{}` is a value; add values with `+`", name.name));
        }
        self.err(d);
    }

    /// Applies one pipeline stage to `input`. `idx` is the stage's position after the head.
    pub(super) fn stage(
        &mut self,
        input: NodeId,
        st: &Expr,
        base: &str,
        idx: usize,
    ) -> Option<NodeId> {
        let (expr, name) = match &st.kind {
            ExprKind::Labeled(inner, label) => (
                inner.as_ref(),
                join(&self.scopes.last().expect("a scope").prefix, &label.name),
            ),
            _ => {
                use std::fmt::Write;
                let mut name = String::with_capacity(base.len() + 4);
                let _ = write!(name, "{base}.{idx}");
                (st, name)
            }
        };
        match &expr.kind {
            ExprKind::Ident(word) => {
                let call = ast::Call {
                    name: ast::Ident {
                        name: word.clone(),
                        span: expr.span,
                    },
                    args: vec![],
                    span: expr.span,
                };
                self.apply(input, &call, name)
            }
            ExprKind::Call(c) => self.apply(input, c, name),
            _ => {
                let mut d = Diagnostic::error(
                    "E201",
                    format!(
                        "a pipeline stage must be a layer, found {}",
                        expr.describe()
                    ),
                )
                .with_primary(expr.span, "not a layer");
                if matches!(expr.kind, ExprKind::Sum(_) | ExprKind::Pipe(_)) {
                    d = d.with_help("add values outside the pipeline, e.g. `(h | conv3(64)) + x`");
                }
                self.err(d);
                None
            }
        }
    }

    /// Applies a layer call (built-in op, `norm`, or block) to `input`.
    pub(super) fn apply(&mut self, input: NodeId, c: &ast::Call, name: String) -> Option<NodeId> {
        let word = c.name.name.as_str();
        if word == "norm" {
            if !c.args.is_empty() {
                self.err(
                    Diagnostic::error("E105", "`norm` takes no arguments")
                        .with_primary(c.span, "the default normalization is set with `norm = ...`")
                        .with_help("write a specific one instead, e.g. `group(8)`"),
                );
                return None;
            }
            let Some((spec, decl)) = self.default_norm else {
                self.err(
                    Diagnostic::error(
                        "E111",
                        "`norm` is used but the model sets no default normalization",
                    )
                    .with_primary(c.span, "which normalization?")
                    .with_help("set one at model level, e.g. `norm = group(32)`"),
                );
                return None;
            };
            let id = self.norm(input, spec, c.span, Some(decl), name)?;
            self.mark_norm_from_setting(id);
            return Some(id);
        }
        if let Some(def) = self.blocks.get(word).copied() {
            return self.invoke_block(def, c, input, name);
        }
        if ops::is_builtin(word) {
            return self.builtin(input, c, name);
        }
        if let Some((Val::Node(_), _, _)) = self.lookup(word) {
            self.err(
                Diagnostic::error("E201", format!("`{word}` is a value, not a layer"))
                    .with_primary(c.name.span, "cannot be a pipeline stage")
                    .with_help(format!("to add it, write `(...) + {word}`")),
            );
            return None;
        }
        self.unknown_layer(&c.name);
        None
    }
}

fn src_call(c: &ast::Call) -> String {
    if c.args.is_empty() {
        c.name.name.clone()
    } else {
        format!("{}(...)", c.name.name)
    }
}
