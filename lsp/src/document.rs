//! One open spec and what the compiler says about it: text in; its syntax tree, the checked
//! models with their time-signal accounting, every diagnostic (parse, sema and lint, fixes
//! included) out, and the answers the editor asks for at an offset: what the layer there is
//! (hover), where a name is defined, the document's outline. Offsets are bytes; the server
//! converts them to protocol positions.

use crate::line_index::LineIndex;
use tdspec_compiler::accounting::report::survival_lines;
use tdspec_compiler::accounting::{Accounting, NormAccount};
use tdspec_compiler::ast::{self, Expr, ExprKind, Span, Stmt, StmtKind};
use tdspec_compiler::diagnostics::{thousands, Diagnostic};
use tdspec_compiler::ir::{Node, Op, Sharing, TimeKind};
use tdspec_compiler::lint::{self, LintOptions, ModelReport};
use tdspec_compiler::sema;

pub struct Document {
    pub version: i32,
    pub text: String,
    pub index: LineIndex,
    pub file: Option<ast::File>,
    /// The models that passed `check`, linted.
    pub reports: Vec<ModelReport>,
    /// Parse, check and lint diagnostics, lint fixes computed.
    pub diagnostics: Vec<Diagnostic>,
}

/// What a symbol in the outline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolKind {
    Model,
    Input,
    Time,
    Setting,
    Embedding,
    Block,
    Value,
    Call,
    Task,
    Train,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Symbol {
    pub name: String,
    pub kind: SymbolKind,
    pub detail: Option<String>,
    /// The whole statement.
    pub span: Span,
    /// The name.
    pub name_span: Span,
    pub children: Vec<Symbol>,
}

impl Document {
    pub fn new(text: String, version: i32) -> Self {
        let index = LineIndex::new(&text);
        let mut diagnostics = Vec::new();
        let mut reports = Vec::new();
        let file = match tdspec_compiler::syntax::parse(&text) {
            Ok(f) => Some(f),
            Err(d) => {
                diagnostics.push(d);
                None
            }
        };
        if let Some(f) = &file {
            if f.models.is_empty() {
                diagnostics.extend(sema::check_source(&text).err().unwrap_or_default());
            } else {
                // Per model: a model with errors does not hide the findings of the others.
                let (models, diags) = sema::analyze(f);
                diagnostics.extend(diags);
                let opts = LintOptions {
                    fixes: true,
                    ..LintOptions::default()
                };
                for m in models {
                    let r = lint::lint_model(f, &text, m, &opts);
                    diagnostics.extend(r.diagnostics.iter().cloned());
                    reports.push(r);
                }
            }
        }
        Document {
            version,
            text,
            index,
            file,
            reports,
            diagnostics,
        }
    }

    fn model_at(&self, offset: usize) -> Option<(&ast::Model, Option<&ModelReport>)> {
        let file = self.file.as_ref()?;
        let m = file.models.iter().find(|m| inside(m.span, offset))?;
        let report = self
            .reports
            .iter()
            .find(|r| r.model.name == m.name.name && r.model.span == m.span);
        Some((m, report))
    }

    // ------------------------------------------------------------------ hover

    /// Markdown about what is at `offset` and the span it is about.
    pub fn hover(&self, offset: usize) -> Option<(String, Span)> {
        let (model, report) = self.model_at(offset)?;
        let named = name_at(model, offset);
        let def = definition_in(model, offset).map(|(d, _)| d);
        // A name the spec defines (not the default norm, which is a layer where it is used)
        // is hovered as that name, even inside a layer's arguments.
        let setting = |n: &str| n == "norm" || n == "bias";
        let own_name = match (&def, &named) {
            (Some(Def::Value { .. }), Some((n, _))) => !setting(n),
            (Some(Def::Block { .. } | Def::Embedding { .. } | Def::Param), _) => true,
            _ => false,
        };
        if !own_name {
            if let Some(h) = report.and_then(|r| self.hover_layer(r, offset)) {
                return Some(h);
            }
        }
        let (name, span) = named?;
        let text = match def {
            Some(Def::Model) => {
                let r = report?;
                format!(
                    "model `{name}`: {} parameters, output `{}`",
                    thousands(r.model.param_count()),
                    r.model.graph.nodes.get(r.model.output)?.shape
                )
            }
            Some(Def::Block {
                params,
                inputs,
                decl,
            }) => {
                let mut s = format!("block `{name}`");
                if !params.is_empty() {
                    s.push_str(&format!("({})", params.join(", ")));
                }
                s.push_str(&format!("({})", inputs.join(", ")));
                if let Some(r) = report {
                    let n = block_instances(r, decl);
                    if n > 0 {
                        s.push_str(&format!(": {n} instance{}", plural(n)));
                    }
                }
                s
            }
            Some(Def::Value { value }) | Some(Def::Embedding { value }) => {
                let what = if matches!(def, Some(Def::Embedding { .. })) {
                    "embedding"
                } else {
                    "value"
                };
                let mut s = format!("{what} `{name}`");
                if let Some(r) = report {
                    let shapes = value_shapes(r, value);
                    if !shapes.is_empty() {
                        s.push_str(&format!(": `{}`", shapes.join("`, `")));
                    }
                }
                s
            }
            Some(Def::Param) => format!("parameter `{name}`"),
            Some(Def::Input) => {
                let r = report?;
                match &r.model.label {
                    Some(lb) if lb.name == name => format!(
                        "class-label input `{name}`: one of {} classes per sample",
                        lb.classes
                    ),
                    _ => format!("input `{name}`: `{}`", r.model.graph.nodes.first()?.shape),
                }
            }
            Some(Def::Time) => {
                let r = report?;
                let kind = match r.model.time.kind {
                    TimeKind::Continuous => match r.model.time.range {
                        Some((lo, hi)) => format!("continuous({lo}, {hi})"),
                        None => "continuous".to_string(),
                    },
                    TimeKind::Steps(n) => format!("step({n})"),
                };
                let sharing = match r.model.time.sharing {
                    Sharing::Shared => "shared: one t for the whole batch",
                    Sharing::PerSample => "per_sample: one t per sample",
                };
                format!("time `{name}`: {kind}, {sharing}")
            }
            None => return None,
        };
        Some((text, span))
    }

    /// The layer (IR node) whose source is the smallest around `offset`, with every instance
    /// of it (a block's layer has one per use), and at a normalization the lint's verdict.
    fn hover_layer(&self, r: &ModelReport, offset: usize) -> Option<(String, Span)> {
        let mut best: Option<Span> = None;
        r.model.graph.walk(&mut |_, _, n| {
            if inside(n.span, offset) && best.is_none_or(|b| n.span.len() < b.len()) {
                best = Some(n.span);
            }
        });
        let span = best?;
        let mut nodes: Vec<&Node> = Vec::new();
        r.model.graph.walk(&mut |_, _, n| {
            if n.span == span {
                nodes.push(n);
            }
        });
        // An ODE block's state input shares the block's span; the block is what was written.
        // The input and time declarations are names, hovered as such.
        nodes.retain(|n| !matches!(n.op, Op::Input | Op::Time));
        if nodes.is_empty() {
            return None;
        }
        let mut s = format!("```tds\n{}\n```\n", first_line(&self.text, span));
        if nodes.len() > 1 {
            let total: usize = nodes.iter().map(|n| n.param_count()).sum();
            s.push_str(&format!(
                "{} instances, {} parameters in all\n",
                nodes.len(),
                thousands(total)
            ));
        }
        const SHOWN: usize = 8;
        for n in nodes.iter().take(SHOWN) {
            let p = n.param_count();
            s.push_str(&format!(
                "\n- `{}`: {} → `{}`, {} parameter{}",
                n.name,
                n.op.describe(),
                n.shape,
                thousands(p),
                plural(p)
            ));
            if let Some(v) = r.accounting.norm(&n.name) {
                s.push_str(&norm_hover(&r.accounting, v));
            }
            if matches!(n.op, Op::Attention { .. }) {
                if let Some(v) = r.accounting.norm(&format!("{}.norm", n.name)) {
                    s.push_str(&format!(
                        "\n  - attention's inner norm:{}",
                        norm_hover(&r.accounting, v)
                    ));
                }
            }
        }
        if nodes.len() > SHOWN {
            s.push_str(&format!("\n- and {} more", nodes.len() - SHOWN));
        }
        Some((s, span))
    }

    // ------------------------------------------------------------------ definitions

    /// Where the block, embedding, value, parameter, input or time named at `offset` is
    /// defined.
    pub fn definition(&self, offset: usize) -> Option<Span> {
        let (model, _) = self.model_at(offset)?;
        definition_in(model, offset).map(|(_, s)| s)
    }

    // ------------------------------------------------------------------ outline

    pub fn symbols(&self) -> Vec<Symbol> {
        let Some(file) = &self.file else {
            return Vec::new();
        };
        file.models
            .iter()
            .map(|m| {
                let report = self.reports.iter().find(|r| r.model.span == m.span);
                Symbol {
                    name: m.name.name.clone(),
                    kind: SymbolKind::Model,
                    detail: report
                        .map(|r| format!("{} parameters", thousands(r.model.param_count()))),
                    span: m.span,
                    name_span: m.name.span,
                    children: stmt_symbols(&m.stmts, true, report),
                }
            })
            .collect()
    }

    /// The innermost statement around `span` (for `#[allow(...)]`).
    pub fn statement_around(&self, span: Span) -> Option<&Stmt> {
        fn find(stmts: &[Stmt], span: Span) -> Option<&Stmt> {
            let s = stmts.iter().find(|s| s.span.contains(span))?;
            if let StmtKind::Block(b) = &s.kind {
                if let Some(inner) = find(&b.body, span) {
                    return Some(inner);
                }
            }
            Some(s)
        }
        let file = self.file.as_ref()?;
        let m = file.models.iter().find(|m| m.span.contains(span))?;
        find(&m.stmts, span)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Whether `offset` is in `span` or right at its end (a cursor after the last character).
fn inside(span: Span, offset: usize) -> bool {
    span.start <= offset && offset <= span.end
}

fn first_line(text: &str, span: Span) -> String {
    let s = text.get(span.start..span.end).unwrap_or("");
    let line = s.lines().next().unwrap_or("").trim_end();
    if line.len() < s.trim_end().len() {
        format!("{line} …")
    } else {
        line.to_string()
    }
}

/// The accounting at one normalization: the predicted survival in total and, per origin,
/// what survives of its change and what it arrives as.
fn norm_hover(acc: &Accounting, v: &NormAccount) -> String {
    let mut s = String::new();
    match v.total {
        None => s.push_str("\n  - time: none arrives here"),
        Some(_) if v.constant => {
            s.push_str("\n  - time: every unit holds a single value; the output is β")
        }
        Some(p) => s.push_str(&format!("\n  - time survival (all origins): **{p}**")),
    }
    for l in survival_lines(acc, v) {
        s.push_str(&format!(
            "\n  - from {}: **{}**: {}",
            l.from_words(),
            l.prediction,
            l.arrives_as
        ));
        if let Some(p) = l.parts_words() {
            s.push_str(&format!(" ({p})"));
        }
    }
    s
}

/// How many times the block declared at `decl` was instantiated: every instance makes each
/// of the block's unconditional layers once, so the most frequent layer span inside the
/// declaration counts them.
fn block_instances(r: &ModelReport, decl: Span) -> usize {
    let mut counts: std::collections::HashMap<Span, usize> = std::collections::HashMap::new();
    r.model.graph.walk(&mut |_, _, n| {
        if decl.contains(n.span) {
            *counts.entry(n.span).or_default() += 1;
        }
    });
    counts.values().copied().max().unwrap_or(0)
}

/// The output shapes of a named value: of the last layer its defining expression made, per
/// instance of the block it is in.
fn value_shapes(r: &ModelReport, value: Span) -> Vec<String> {
    let mut shapes: Vec<String> = Vec::new();
    let mut last: Option<(usize, String)> = None;
    // Instances of a block come one after the other; the last node inside the value's span
    // before the next instance starts gives that instance's shape.
    r.model.graph.walk(&mut |_, i, n| {
        if value.contains(n.span) {
            last = Some((i, n.shape.to_string()));
        } else if let Some((_, s)) = last.take() {
            if !shapes.contains(&s) {
                shapes.push(s);
            }
        }
    });
    if let Some((_, s)) = last {
        if !shapes.contains(&s) {
            shapes.push(s);
        }
    }
    shapes
}

/// What a name is defined as.
#[derive(Debug, Clone, PartialEq)]
enum Def {
    Model,
    Input,
    Time,
    Block {
        params: Vec<String>,
        inputs: Vec<String>,
        /// The whole declaration.
        decl: Span,
    },
    Embedding {
        value: Span,
    },
    Value {
        value: Span,
    },
    Param,
}

/// The name under `offset`: a reference (a name, a called block) or a definition's name.
fn name_at(model: &ast::Model, offset: usize) -> Option<(String, Span)> {
    if inside(model.name.span, offset) {
        return Some((model.name.name.clone(), model.name.span));
    }
    let mut found = None;
    visit_names(&model.stmts, &mut |name, span| {
        if found.is_none() && inside(span, offset) {
            found = Some((name.to_string(), span));
        }
    });
    found
}

/// Every name written in the statements: definitions and references.
fn visit_names(stmts: &[Stmt], f: &mut dyn FnMut(&str, Span)) {
    for st in stmts {
        match &st.kind {
            StmtKind::Input { name, .. } | StmtKind::Time { name, .. } => f(&name.name, name.span),
            StmtKind::Embed { name, value } | StmtKind::Assign { name, value } => {
                f(&name.name, name.span);
                visit_expr(value, f);
            }
            StmtKind::Block(b) => {
                f(&b.name.name, b.name.span);
                for p in b.params.iter().chain(&b.inputs) {
                    f(&p.name.name, p.name.span);
                    if let Some(d) = &p.default {
                        visit_expr(d, f);
                    }
                }
                visit_names(&b.body, f);
            }
            StmtKind::Task(c) => c.args.iter().for_each(|a| visit_expr(&a.value, f)),
            StmtKind::Train { args, .. } => args.iter().for_each(|a| visit_expr(&a.value, f)),
            StmtKind::Return(e) | StmtKind::Expr(e) => visit_expr(e, f),
        }
    }
}

fn visit_expr(e: &Expr, f: &mut dyn FnMut(&str, Span)) {
    match &e.kind {
        ExprKind::Ident(name) => f(name, e.span),
        ExprKind::Call(c) => {
            f(&c.name.name, c.name.span);
            c.args.iter().for_each(|a| visit_expr(&a.value, f));
        }
        ExprKind::Pipe(v) | ExprKind::Sum(v) | ExprKind::List(v) => {
            v.iter().for_each(|x| visit_expr(x, f))
        }
        ExprKind::Labeled(inner, _) => visit_expr(inner, f),
        ExprKind::Record(fields) => fields.iter().for_each(|(_, v)| visit_expr(v, f)),
        ExprKind::Number(..) => {}
    }
}

/// Resolves the name at `offset` in a model the way sema scopes names: inside a block its
/// parameters and inputs, then the block's earlier assignments; then the model's values
/// assigned before the statement (the latest such), its embeddings, blocks, input and time.
fn definition_in(model: &ast::Model, offset: usize) -> Option<(Def, Span)> {
    let (name, span) = name_at(model, offset)?;
    if span == model.name.span {
        return Some((Def::Model, span));
    }
    let stmt = model.stmts.iter().find(|s| inside(s.span, offset));
    let block = match stmt {
        Some(Stmt {
            kind: StmtKind::Block(b),
            ..
        }) => Some(b),
        _ => None,
    };
    let mut scopes: Vec<&[Stmt]> = vec![&model.stmts];
    if let Some(b) = block {
        scopes.insert(0, &b.body);
    }
    for (k, scope) in scopes.into_iter().enumerate() {
        // A block's parameters and inputs, unless an assignment in its body shadows them.
        let params = || {
            let b = block.filter(|_| k == 1)?;
            let p = b
                .params
                .iter()
                .chain(&b.inputs)
                .find(|p| p.name.name == name)?;
            Some((Def::Param, p.name.span))
        };
        if let Some(hit) = params() {
            return Some(hit);
        }
        let current = scope.iter().find(|s| inside(s.span, offset));
        // The latest assignment before the statement the name is in; the statement's own
        // assignment when the cursor is on its name.
        let mut hit = None;
        for s in scope {
            if let StmtKind::Assign { name: n, value } = &s.kind {
                if n.name == name {
                    let before = current.is_none_or(|c| s.span.start < c.span.start);
                    let is_self = n.span == span;
                    if before || is_self {
                        hit = Some((Def::Value { value: value.span }, n.span));
                    }
                    if is_self {
                        break;
                    }
                }
            }
        }
        if hit.is_some() {
            return hit;
        }
        for s in scope {
            match &s.kind {
                StmtKind::Embed { name: n, value } if n.name == name => {
                    return Some((Def::Embedding { value: value.span }, n.span))
                }
                StmtKind::Block(b) if b.name.name == name => {
                    let names =
                        |ps: &[ast::Param]| ps.iter().map(|p| p.name.name.clone()).collect();
                    return Some((
                        Def::Block {
                            params: names(&b.params),
                            inputs: names(&b.inputs),
                            decl: b.span,
                        },
                        b.name.span,
                    ));
                }
                StmtKind::Input { name: n, .. } if n.name == name => {
                    return Some((Def::Input, n.span))
                }
                StmtKind::Time { name: n, .. } if n.name == name => {
                    return Some((Def::Time, n.span))
                }
                _ => {}
            }
        }
    }
    None
}

fn stmt_symbols(stmts: &[Stmt], model_level: bool, r: Option<&ModelReport>) -> Vec<Symbol> {
    let mut out = Vec::new();
    for st in stmts {
        let sym = |name: &ast::Ident, kind, detail: Option<String>| Symbol {
            name: name.name.clone(),
            kind,
            detail,
            span: st.span,
            name_span: name.span,
            children: Vec::new(),
        };
        let shapes = |value: Span| {
            r.map(|r| value_shapes(r, value))
                .filter(|v| !v.is_empty())
                .map(|v| v.join(", "))
        };
        match &st.kind {
            StmtKind::Input { name, .. } => out.push(sym(name, SymbolKind::Input, None)),
            StmtKind::Time { name, .. } => out.push(sym(name, SymbolKind::Time, None)),
            StmtKind::Embed { name, value } => {
                out.push(sym(name, SymbolKind::Embedding, shapes(value.span)))
            }
            StmtKind::Assign { name, .. }
                if model_level && (name.name == "norm" || name.name == "bias") =>
            {
                out.push(sym(name, SymbolKind::Setting, None))
            }
            StmtKind::Assign { name, value } => {
                out.push(sym(name, SymbolKind::Value, shapes(value.span)))
            }
            StmtKind::Block(b) => {
                let mut s = sym(&b.name, SymbolKind::Block, None);
                s.children = stmt_symbols(&b.body, false, r);
                out.push(s);
            }
            StmtKind::Task(c) => out.push(sym(&c.name, SymbolKind::Task, None)),
            StmtKind::Train { span, .. } => out.push(Symbol {
                name: "train".into(),
                kind: SymbolKind::Train,
                detail: None,
                span: st.span,
                name_span: Span::new(st.span.start, span.start),
                children: Vec::new(),
            }),
            StmtKind::Expr(Expr {
                kind: ExprKind::Call(c),
                ..
            }) => out.push(sym(&c.name, SymbolKind::Call, None)),
            StmtKind::Return(_) | StmtKind::Expr(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn odenet() -> Document {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/odenet_mnist.tds");
        Document::new(std::fs::read_to_string(path).unwrap(), 1)
    }

    fn at(d: &Document, needle: &str) -> usize {
        d.text.find(needle).unwrap_or_else(|| panic!("{needle}"))
    }

    #[test]
    fn hovers_on_names_show_what_they_stand_for() {
        let d = odenet();
        let hover = |needle: &str| d.hover(at(&d, needle)).map(|h| h.0).unwrap_or_default();
        assert_eq!(hover("stem | ode"), "value `stem`: `[B, 64, 6, 6]`");
        assert_eq!(
            hover("t: continuous"),
            "time `t`: continuous, shared: one t for the whole batch"
        );
        assert_eq!(hover("x | conv"), "input `x`: `[B, 1, 28, 28]`");
        assert_eq!(hover("odefunc, t"), "block `odefunc`(h): 1 instance");
        assert!(hover("ode(odefunc").contains("`features.0`: ode [0, 1] dopri5"));
        assert!(
            hover("ode(odefunc").contains("75,392 parameters"),
            "{}",
            hover("ode(odefunc")
        );
        // a norm inside the ODE function: ConcatConv's offset, 2 channels per group
        let h = hover("norm as norm2");
        assert!(h.contains("`features.0.norm2`: norm group(32)"), "{h}");
        assert!(
            h.contains("from `features.0.conv1`: **0.599**: a per-channel offset with a zero-padding border structure (0.5 per-channel constant + 0.099 zero-padding border)"),
            "{h}"
        );
        assert_eq!(
            d.hover(at(&d, "// Reproduces")),
            None,
            "comments have no hover"
        );
    }

    #[test]
    fn a_class_label_input_says_what_it_is() {
        let src = "model m {\n    input x: image[1, 8, 8]\n    input y: label[10]\n    time t: step(100)\n    embed e = sinusoidal(8) | linear(8) | class_embed(y)\n    h = x | conv3(4)\n    return h + inject(e)\n}\n";
        let d = Document::new(src.to_string(), 1);
        let hover = |needle: &str| d.hover(at(&d, needle)).map(|h| h.0).unwrap_or_default();
        assert_eq!(
            hover("y: label"),
            "class-label input `y`: one of 10 classes per sample"
        );
        assert_eq!(hover("x: image"), "input `x`: `[B, 1, 8, 8]`");
    }

    #[test]
    fn definitions_follow_scopes() {
        let d = odenet();
        let def = |needle: &str, back: usize| {
            d.definition(at(&d, needle) + back)
                .map(|s| &d.text[s.start..s.end])
        };
        // `h` in the block's second line is the first assignment; its own name is itself
        let second = at(&d, "h = h | norm as norm2");
        let first = at(&d, "h = h | norm as norm1");
        assert_eq!(d.definition(second + 4).map(|s| s.start), Some(first));
        assert_eq!(d.definition(second).map(|s| s.start), Some(second));
        // the block's input, from its first use
        let input = at(&d, "h) {");
        assert_eq!(d.definition(first + 4).map(|s| s.start), Some(input));
        assert_eq!(def("features | norm", 0), Some("features"));
        assert_eq!(def("odefunc, t", 0), Some("odefunc"));
        assert_eq!(def("relu | conv3", 0), None);
    }

    #[test]
    fn outline_lists_declarations_with_shapes() {
        let d = odenet();
        let syms = d.symbols();
        assert_eq!(syms.len(), 1);
        assert_eq!(syms[0].detail.as_deref(), Some("208,266 parameters"));
        let names: Vec<(&str, Option<&str>)> = syms[0]
            .children
            .iter()
            .map(|s| (s.name.as_str(), s.detail.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("x", None),
                ("t", None),
                ("norm", None),
                ("odefunc", None),
                ("stem", Some("[B, 64, 6, 6]")),
                ("features", Some("[B, 64, 6, 6]")),
                ("head", Some("[B, 10]")),
                ("classify", None),
                ("train", None),
            ]
        );
    }
}
