//! Semantic analysis: an [`ast::File`] in; per model a checked [`ModelIr`] (typed arena graph
//! with shapes, hierarchical names, exact parameter lists and time-injection sites) and every
//! error it can find out. Name resolution, argument binding, shape inference with a symbolic
//! batch, GroupNorm divisibility and channel agreement all happen here, so that lowering and
//! execution never meet a spec they cannot run.
//!
//! Layers are not grammar: a stage like `conv3(64, time = concat)` is a call that sema looks up
//! in its table of built-in ops ([`ops`]) or among the model's blocks.

mod args;
mod ops;
mod unet;

use crate::ast::{self, Arg, BlockDef, Expr, ExprKind, Span, Stmt, StmtKind};
use crate::diagnostics::Diagnostic;
use crate::ir::*;
use std::collections::HashMap;

pub use ops::BUILTIN_OPS;

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

/// A compile-time value: what names and arguments can stand for.
#[derive(Debug, Clone)]
enum Val {
    Node(NodeId),
    Num(f64),
    List(Vec<Val>),
    /// A bare word that names a choice (`eps`, `positional`, `shared`).
    Sym(String),
    /// A configuration call such as `dopri5(rtol = 1e-3)`, kept unevaluated with its scope.
    Expr(Box<Expr>),
}

/// The normalization a stage asks for, before the channel count is known.
#[derive(Debug, Clone, Copy, PartialEq)]
enum NormSpec {
    Batch,
    Instance,
    Layer,
    Group {
        groups: Option<usize>,
        per_group: Option<usize>,
        min_per_group: Option<usize>,
    },
}

struct Scope {
    vars: HashMap<String, (Val, Span)>,
    /// Assignment counts, for naming reassigned values `a`, `a_2`, ...
    assigned: HashMap<String, usize>,
    /// Node-name prefix of this scope (`down.1.res0`).
    prefix: String,
    /// Lint codes allowed by attributes on the statements that led here.
    allow: Vec<String>,
    stmt_span: Span,
}

/// One graph under construction: the model's, or an ODE function's.
struct GraphCtx {
    graph: Graph,
    time_node: Option<NodeId>,
    embeds: HashMap<String, NodeId>,
    /// Prefix for embeddings instantiated inside this graph.
    prefix: String,
    names: HashMap<String, usize>,
    /// Scope depth at which this graph starts; names below it belong to outer graphs.
    scope_floor: usize,
    /// The block instances being expanded, innermost last (indexes into `graph.instances`).
    open: Vec<usize>,
}

struct Sema<'a> {
    model: &'a ast::Model,
    diags: &'a mut Vec<Diagnostic>,
    blocks: HashMap<String, &'a BlockDef>,
    embeds: HashMap<String, (&'a Expr, Span)>,
    default_norm: Option<(NormSpec, Span)>,
    bias: BiasPolicy,
    input: Option<InputInfo>,
    time: Option<TimeInfo>,
    graphs: Vec<GraphCtx>,
    scopes: Vec<Scope>,
    injections: Vec<InjectionSite>,
    depth: usize,
}

const MAX_BLOCK_DEPTH: usize = 24;

impl<'a> Sema<'a> {
    fn new(model: &'a ast::Model, diags: &'a mut Vec<Diagnostic>) -> Self {
        Sema {
            model,
            diags,
            blocks: HashMap::new(),
            embeds: HashMap::new(),
            default_norm: None,
            bias: BiasPolicy {
                operand: BiasInit::Default,
                time: BiasInit::Default,
            },
            input: None,
            time: None,
            graphs: vec![GraphCtx {
                graph: Graph::default(),
                time_node: None,
                embeds: HashMap::new(),
                prefix: String::new(),
                names: HashMap::new(),
                scope_floor: 0,
                open: Vec::new(),
            }],
            scopes: vec![Scope {
                vars: HashMap::new(),
                assigned: HashMap::new(),
                prefix: String::new(),
                allow: Vec::new(),
                stmt_span: Span::default(),
            }],
            injections: Vec::new(),
            depth: 0,
        }
    }

    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    // ------------------------------------------------------------------ model

    fn model(&mut self) -> Option<ModelIr> {
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
        for st in &m.stmts {
            match &st.kind {
                StmtKind::Input { name, kind, dims } => self.input_decl(st, name, kind, dims),
                StmtKind::Time { name, props } => self.time_decl(st, name, props),
                _ => {}
            }
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
                    self.embed_node(&name.name, name.span);
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
                        self.err(
                            Diagnostic::error("E104", "the model's output is defined twice")
                                .with_primary(st.span, "second output")
                                .with_secondary(prev, "first output here"),
                        );
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
                            self.err(
                                Diagnostic::error("E104", "the model's output is defined twice")
                                    .with_primary(st.span, "second output")
                                    .with_secondary(prev, "first output here"),
                            );
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
            self.check_task(task, out, m);
        }
        let input = self.input.clone()?;
        let time = self.time.clone()?;
        let ctx = self.graphs.pop()?;
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
        })
    }

    fn declare_block(&mut self, b: &'a BlockDef) {
        if let Some(prev) = self.blocks.get(&b.name.name) {
            let prev = prev.name.span;
            self.err(
                Diagnostic::error("E104", format!("block `{}` is defined twice", b.name.name))
                    .with_primary(b.name.span, "second definition")
                    .with_secondary(prev, "first defined here"),
            );
            return;
        }
        if ops::is_builtin(&b.name.name) || b.name.name == "norm" {
            self.err(
                Diagnostic::error(
                    "E104",
                    format!("block `{}` has the name of a built-in layer", b.name.name),
                )
                .with_primary(b.name.span, "shadows the built-in")
                .with_help("choose another name for the block"),
            );
            return;
        }
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for p in b.params.iter().chain(&b.inputs) {
            if let Some(prev) = seen.insert(&p.name.name, p.name.span) {
                self.err(
                    Diagnostic::error(
                        "E104",
                        format!("parameter `{}` is declared twice", p.name.name),
                    )
                    .with_primary(p.name.span, "second declaration")
                    .with_secondary(prev, "first declared here"),
                );
            }
        }
        if b.inputs.len() != 1 {
            self.err(
                Diagnostic::error(
                    "E105",
                    format!("block `{}` must take exactly one input", b.name.name),
                )
                .with_primary(
                    b.span.to(b.name.span),
                    format!("declares {} inputs", b.inputs.len()),
                )
                .with_help(
                    "write `block NAME(params)(h) { ... }`; other values are visible by name",
                ),
            );
        }
        self.blocks.insert(b.name.name.clone(), b);
    }

    fn input_decl(&mut self, st: &Stmt, name: &ast::Ident, kind: &ast::Ident, dims: &[Expr]) {
        if let Some(prev) = &self.input {
            let prev = prev.span;
            self.err(
                Diagnostic::error("E104", "the model declares two inputs")
                    .with_primary(st.span, "second input")
                    .with_secondary(prev, "first input here")
                    .with_help("tdspec models take one image input"),
            );
            return;
        }
        if kind.name != "image" {
            self.err(
                Diagnostic::error("E201", format!("unknown input kind `{}`", kind.name))
                    .with_primary(kind.span, "expected `image`")
                    .suggest(&kind.name, ["image"]),
            );
            return;
        }
        if dims.len() != 3 {
            self.err(
                Diagnostic::error(
                    "E201",
                    format!("an image input has 3 dimensions, found {}", dims.len()),
                )
                .with_primary(st.span, "expected `image[channels, height, width]`"),
            );
            return;
        }
        let mut v = Vec::new();
        for d in dims {
            match self.positive(d, "an image dimension") {
                Some(x) => v.push(x),
                None => return,
            }
        }
        let (c, h, w) = (v[0], v[1], v[2]);
        self.input = Some(InputInfo {
            name: name.name.clone(),
            channels: c,
            height: h,
            width: w,
            span: name.span,
        });
    }

    fn time_decl(&mut self, st: &Stmt, name: &ast::Ident, props: &[Expr]) {
        if let Some(prev) = &self.time {
            let prev = prev.span;
            self.err(
                Diagnostic::error("E104", "the model declares two time inputs")
                    .with_primary(st.span, "second time input")
                    .with_secondary(prev, "first time input here"),
            );
            return;
        }
        let mut kind = None;
        let mut sharing = None;
        for p in props {
            let word = match &p.kind {
                ExprKind::Ident(s) => s.as_str(),
                ExprKind::Call(c) => c.name.name.as_str(),
                _ => "",
            };
            match word {
                "continuous" => kind = Some(TimeKind::Continuous),
                "step" | "steps" => {
                    let ExprKind::Call(c) = &p.kind else {
                        self.err(
                            Diagnostic::error("E105", "`step` needs the number of diffusion steps")
                                .with_primary(p.span, "write `step(1000)`"),
                        );
                        continue;
                    };
                    if let Some(a) = self.bind_args(c, &["n"], 1) {
                        if let Some(n) = a[0].and_then(|e| self.positive(e, "the number of steps"))
                        {
                            kind = Some(TimeKind::Steps(n));
                        }
                    }
                }
                "shared" => sharing = Some(Sharing::Shared),
                "per_sample" => sharing = Some(Sharing::PerSample),
                _ => {
                    self.err(
                        Diagnostic::error(
                            "E201",
                            format!("unknown time property `{}`", src_word(p)),
                        )
                        .with_primary(
                            p.span,
                            "expected `continuous`, `step(N)`, `shared` or `per_sample`",
                        )
                        .suggest(word, ["continuous", "step", "shared", "per_sample"]),
                    );
                }
            }
        }
        let kind = kind.unwrap_or(TimeKind::Continuous);
        let sharing = sharing.unwrap_or(match kind {
            TimeKind::Continuous => Sharing::Shared,
            TimeKind::Steps(_) => Sharing::PerSample,
        });
        self.time = Some(TimeInfo {
            name: name.name.clone(),
            kind,
            sharing,
            span: name.span,
        });
    }

    fn bias_policy(&mut self, e: &Expr) {
        let ExprKind::Record(fields) = &e.kind else {
            self.err(
                Diagnostic::error("E201", "the bias policy is a record")
                    .with_primary(e.span, format!("found {}", e.describe()))
                    .with_help("write `bias = { operand: zero, time: normal(0.02) }`"),
            );
            return;
        };
        for (k, v) in fields {
            let init = self.bias_init(v);
            match (k.name.as_str(), init) {
                ("operand", Some(i)) => self.bias.operand = i,
                ("time", Some(i)) => self.bias.time = i,
                ("operand" | "time", None) => {}
                (other, _) => {
                    self.err(
                        Diagnostic::error("E103", format!("unknown bias branch `{other}`"))
                            .with_primary(k.span, "expected `operand` or `time`")
                            .suggest(other, ["operand", "time"]),
                    );
                }
            }
        }
    }

    fn bias_init(&mut self, e: &Expr) -> Option<BiasInit> {
        match &e.kind {
            ExprKind::Ident(s) if s == "zero" => Some(BiasInit::Zero),
            ExprKind::Ident(s) if s == "default" => Some(BiasInit::Default),
            ExprKind::Call(c) if c.name.name == "constant" => {
                let a = self.bind_args(c, &["value"], 1)?;
                Some(BiasInit::Constant {
                    value: self.float(a[0]?)?,
                })
            }
            ExprKind::Call(c) if c.name.name == "normal" => {
                let a = self.bind_args(c, &["std"], 1)?;
                let std = self.float(a[0]?)?;
                if std < 0.0 {
                    self.err(
                        Diagnostic::error("E202", "a standard deviation cannot be negative")
                            .with_primary(a[0]?.span, "negative"),
                    );
                    return None;
                }
                Some(BiasInit::Normal { std })
            }
            _ => {
                let word = src_word(e);
                self.err(
                    Diagnostic::error("E201", format!("unknown bias initialization `{word}`"))
                        .with_primary(
                            e.span,
                            "expected `zero`, `default`, `constant(v)` or `normal(std)`",
                        )
                        .suggest(&word, ["zero", "default", "constant", "normal"]),
                );
                None
            }
        }
    }

    // ------------------------------------------------------------------ scopes & nodes

    fn bind(&mut self, name: &str, v: Val, span: Span) {
        let scope = self.scopes.last_mut().expect("a scope");
        scope.vars.insert(name.to_string(), (v, span));
    }

    fn lookup(&self, name: &str) -> Option<(Val, Span, usize)> {
        for (depth, s) in self.scopes.iter().enumerate().rev() {
            if let Some((v, sp)) = s.vars.get(name) {
                return Some((v.clone(), *sp, depth));
            }
        }
        None
    }

    fn visible_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .scopes
            .iter()
            .flat_map(|s| s.vars.keys().cloned())
            .collect();
        names.extend(self.embeds.keys().cloned());
        if let Some(t) = &self.time {
            names.push(t.name.clone());
        }
        names
    }

    /// The node-name base for an assignment in the current scope: `a`, then `a_2`, ...
    fn assign_base(&mut self, name: &str) -> String {
        let scope = self.scopes.last_mut().expect("a scope");
        let n = scope.assigned.entry(name.to_string()).or_insert(0);
        *n += 1;
        let local = if *n == 1 {
            name.to_string()
        } else {
            format!("{name}_{n}")
        };
        join(&scope.prefix, &local)
    }

    fn gctx(&mut self) -> &mut GraphCtx {
        self.graphs.last_mut().expect("a graph")
    }

    fn unique_name(&mut self, name: String) -> String {
        let g = self.gctx();
        let n = g.names.entry(name.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            name
        } else {
            format!("{name}_{n}")
        }
    }

    fn node_shape(&self, id: NodeId) -> Shape {
        self.graphs.last().expect("a graph").graph.nodes[id].shape
    }

    fn node_span(&self, id: NodeId) -> Span {
        self.graphs.last().expect("a graph").graph.nodes[id].span
    }

    fn push_raw(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        shape: Shape,
        name: String,
        span: Span,
    ) -> NodeId {
        let name = self.unique_name(name);
        let scope = self.scopes.last().expect("a scope");
        let allow = self
            .scopes
            .iter()
            .flat_map(|s| s.allow.iter().cloned())
            .collect();
        let stmt_span = scope.stmt_span;
        let g = self.graphs.last_mut().expect("a graph");
        let time_branch = match op {
            Op::Time => true,
            Op::Input => false,
            _ => !inputs.is_empty() && inputs.iter().all(|&i| g.graph.nodes[i].time_branch),
        };
        let params = ops::params_of(&op, &name, time_branch);
        if let Some(mode) = op.injection() {
            self.injections.push(InjectionSite {
                node: name.clone(),
                mode,
                span,
            });
        }
        let id = g.graph.nodes.len();
        g.graph.nodes.push(Node {
            op,
            inputs,
            shape,
            name,
            params,
            span,
            stmt_span,
            time_branch,
            allow,
        });
        for &i in &g.open {
            g.graph.instances[i].nodes.push(id);
        }
        id
    }

    /// Runs `f` outside every open block instance: for the graph's shared nodes (the time
    /// input, embeddings), which belong to no instance although a block may create them.
    fn shared<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let open = std::mem::take(&mut self.gctx().open);
        let out = f(self);
        self.gctx().open = open;
        out
    }

    /// Starts recording a block instance in the current graph; returns its index.
    fn open_instance(&mut self, block: &str, prefix: &str, span: Span) -> usize {
        let g = self.gctx();
        let i = g.graph.instances.len();
        g.graph.instances.push(Instance {
            block: block.to_string(),
            prefix: prefix.to_string(),
            parent: g.open.last().copied(),
            nodes: Vec::new(),
            inputs: Vec::new(),
            output: 0,
            span,
        });
        g.open.push(i);
        i
    }

    /// Ends the innermost open instance, with the value its block returned.
    fn close_instance(&mut self, output: Option<NodeId>) {
        let g = self.gctx();
        let Some(i) = g.open.pop() else { return };
        let nodes = &g.graph.nodes;
        let inst = &mut g.graph.instances[i];
        let mut inputs = Vec::new();
        for &v in &inst.nodes {
            for &x in &nodes[v].inputs {
                if inst.nodes.binary_search(&x).is_err() && !inputs.contains(&x) {
                    inputs.push(x);
                }
            }
        }
        inst.inputs = inputs;
        inst.output = output.unwrap_or(0);
    }

    /// The time node of the current graph, created on first use.
    fn time_node(&mut self, span: Span) -> Option<NodeId> {
        let time = self.time.clone()?;
        if let Some(id) = self.gctx().time_node {
            return Some(id);
        }
        let _ = span;
        let id = self
            .shared(|s| s.push_raw(Op::Time, vec![], Shape::Time, time.name.clone(), time.span));
        self.gctx().time_node = Some(id);
        Some(id)
    }

    /// The node of embedding `name` in the current graph, instantiated on first use.
    fn embed_node(&mut self, name: &str, span: Span) -> Option<NodeId> {
        if let Some(&id) = self.gctx().embeds.get(name) {
            return Some(id);
        }
        self.shared(|s| s.new_embed_node(name, span))
    }

    fn new_embed_node(&mut self, name: &str, span: Span) -> Option<NodeId> {
        let (expr, _) = *self.embeds.get(name)?;
        let t = self.time_node(span)?;
        let base = join(&self.gctx().prefix.clone(), name);
        let stages: Vec<&Expr> = match &expr.kind {
            ExprKind::Pipe(items) => items.iter().collect(),
            _ => vec![expr],
        };
        // An embedding pipeline starts from t; `t | sinusoidal(128)` is also accepted.
        let time_name = self
            .time
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let mut cur = t;
        let mut idx = 0;
        for (i, st) in stages.iter().enumerate() {
            if i == 0 && st.as_ident() == Some(time_name.as_str()) {
                continue;
            }
            cur = self.stage(cur, st, &base, idx)?;
            idx += 1;
        }
        self.gctx().embeds.insert(name.to_string(), cur);
        Some(cur)
    }

    // ------------------------------------------------------------------ expressions

    /// Evaluates a value expression to a node. `base` names the nodes it creates.
    fn value(&mut self, e: &Expr, base: &str) -> Option<NodeId> {
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
                        let a = self.bind_args(c, &["h", "out"], 2)?;
                        let h = self.value(a[0]?, base)?;
                        let out = self.positive(a[1]?, "the number of output channels")?;
                        return self.shortcut(h, out, c.span, &b);
                    }
                }
                self.value(inner, &b)
            }
            ExprKind::Call(c) => match c.name.name.as_str() {
                "concat" => self.concat(c, base),
                "shortcut" => {
                    let a = self.bind_args(c, &["h", "out"], 2)?;
                    let h = self.value(a[0]?, base)?;
                    let out = self.positive(a[1]?, "the number of output channels")?;
                    self.shortcut(h, out, c.span, &format!("{base}.shortcut"))
                }
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
                name => {
                    self.unknown_layer(&c.name);
                    let _ = name;
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

    fn name_value(&mut self, name: &str, span: Span) -> Option<NodeId> {
        if self.time.as_ref().is_some_and(|t| t.name == name) {
            return self.time_node(span);
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
            return self.embed_node(name, span);
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

    fn gctx_floor(&self) -> usize {
        self.graphs.last().map(|g| g.scope_floor).unwrap_or(0)
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
            acc = self.inject(acc, c, name)?;
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

    fn concat(&mut self, c: &ast::Call, base: &str) -> Option<NodeId> {
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

    fn shortcut(&mut self, h: NodeId, out: usize, span: Span, name: &str) -> Option<NodeId> {
        match self.node_shape(h) {
            Shape::Image { c, h: hh, w } => {
                if c == out {
                    Some(h)
                } else {
                    let op = Op::Conv {
                        cin: c,
                        cout: out,
                        k: 1,
                        stride: 1,
                        pad: 0,
                        groups: 1,
                        bias: true,
                        time: TimeChannel::None,
                    };
                    Some(self.push_raw(
                        op,
                        vec![h],
                        Shape::Image { c: out, h: hh, w },
                        name.to_string(),
                        span,
                    ))
                }
            }
            other => {
                self.err(
                    Diagnostic::error(
                        "E207",
                        format!("`shortcut` needs a feature map, found {other}"),
                    )
                    .with_primary(span, "not a feature map"),
                );
                None
            }
        }
    }

    fn unknown_layer(&mut self, name: &ast::Ident) {
        let mut candidates: Vec<&str> = ops::BUILTIN_OPS.to_vec();
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
    fn stage(&mut self, input: NodeId, st: &Expr, base: &str, idx: usize) -> Option<NodeId> {
        let (expr, name) = match &st.kind {
            ExprKind::Labeled(inner, label) => (
                inner.as_ref(),
                join(
                    &self.scopes.last().expect("a scope").prefix.clone(),
                    &label.name,
                ),
            ),
            _ => (st, format!("{base}.{idx}")),
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
            ExprKind::Sum(_) | ExprKind::Pipe(_) => {
                self.err(
                    Diagnostic::error(
                        "E201",
                        format!(
                            "a pipeline stage must be a layer, found {}",
                            expr.describe()
                        ),
                    )
                    .with_primary(expr.span, "not a layer")
                    .with_help("add values outside the pipeline, e.g. `(h | conv3(64)) + x`"),
                );
                None
            }
            _ => {
                self.err(
                    Diagnostic::error(
                        "E201",
                        format!(
                            "a pipeline stage must be a layer, found {}",
                            expr.describe()
                        ),
                    )
                    .with_primary(expr.span, "not a layer"),
                );
                None
            }
        }
    }

    /// Applies a layer call (built-in op, `norm`, or block) to `input`.
    fn apply(&mut self, input: NodeId, c: &ast::Call, name: String) -> Option<NodeId> {
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
            return self.norm(input, spec, c.span, Some(decl), name);
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

    /// Expands a call of block `def` on `input` as an instance named `path`.
    fn invoke_block(
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
    fn expand_block(
        &mut self,
        def: &'a BlockDef,
        c: &ast::Call,
        input: NodeId,
        path: String,
        record: bool,
    ) -> Option<NodeId> {
        if self.depth >= MAX_BLOCK_DEPTH {
            self.err(
                Diagnostic::error(
                    "E114",
                    format!("block `{}` calls itself without end", def.name.name),
                )
                .with_primary(c.span, "recursion too deep")
                .with_secondary(def.name.span, "block defined here"),
            );
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
        self.scopes.push(Scope {
            vars: HashMap::new(),
            assigned: HashMap::new(),
            prefix: path.clone(),
            allow: Vec::new(),
            stmt_span: c.span,
        });
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
        let out = self.block_body(def);
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

    /// Evaluates a block argument (a number, list, word, or tensor value) in the current scope.
    fn const_val(&mut self, e: &Expr) -> Option<Val> {
        match &e.kind {
            ExprKind::Number(v, _) => {
                if !v.is_finite() {
                    self.err(
                        Diagnostic::error("E202", "number out of range")
                            .with_primary(e.span, "not finite"),
                    );
                    return None;
                }
                Some(Val::Num(*v))
            }
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for i in items {
                    out.push(self.const_val(i)?);
                }
                Some(Val::List(out))
            }
            ExprKind::Ident(name) => match self.lookup(name) {
                Some((v, _, _)) => Some(v),
                None if self.embeds.contains_key(name)
                    || self.time.as_ref().is_some_and(|t| &t.name == name) =>
                {
                    self.name_value(name, e.span).map(Val::Node)
                }
                None => Some(Val::Sym(name.clone())),
            },
            ExprKind::Call(_) | ExprKind::Record(_) => Some(Val::Expr(Box::new(e.clone()))),
            ExprKind::Pipe(_) | ExprKind::Sum(_) | ExprKind::Labeled(..) => {
                let base = self.scopes.last().expect("a scope").prefix.clone();
                self.value(e, &join(&base, "arg")).map(Val::Node)
            }
        }
    }

    // ------------------------------------------------------------------ argument helpers

    /// Binds a call's arguments to `names` (the first `required` are mandatory).
    fn bind_args<'e>(
        &mut self,
        c: &'e ast::Call,
        names: &[&str],
        required: usize,
    ) -> Option<Vec<Option<&'e Expr>>> {
        args::bind(self.diags, c, names, required)
    }

    /// A number argument, through block parameters.
    fn number(&mut self, e: &Expr, what: &str) -> Option<f64> {
        match &e.kind {
            ExprKind::Number(v, _) => {
                if v.is_finite() {
                    Some(*v)
                } else {
                    self.err(
                        Diagnostic::error("E202", "number out of range")
                            .with_primary(e.span, "not finite"),
                    );
                    None
                }
            }
            ExprKind::Ident(name) => match self.lookup(name) {
                Some((Val::Num(v), _, _)) => Some(v),
                Some(_) => {
                    self.err(
                        Diagnostic::error(
                            "E201",
                            format!("expected a number for {what}, `{name}` is not one"),
                        )
                        .with_primary(e.span, "not a number"),
                    );
                    None
                }
                None => {
                    let names = self.visible_names();
                    self.err(
                        Diagnostic::error("E101", format!("unknown name `{name}`"))
                            .with_primary(e.span, format!("expected a number for {what}"))
                            .suggest(name, names.iter().map(String::as_str)),
                    );
                    None
                }
            },
            _ => {
                self.err(
                    Diagnostic::error(
                        "E201",
                        format!("expected a number for {what}, found {}", e.describe()),
                    )
                    .with_primary(e.span, "not a number"),
                );
                None
            }
        }
    }

    fn float(&mut self, e: &Expr) -> Option<f64> {
        self.number(e, "this argument")
    }

    fn integer(&mut self, e: &Expr, what: &str) -> Option<usize> {
        let v = self.number(e, what)?;
        if v > MAX_INT as f64 && v.fract() == 0.0 {
            self.err(
                Diagnostic::error("E202", format!("{what} is too large: {}", fmt_num(v)))
                    .with_primary(e.span, format!("at most {MAX_INT}")),
            );
            return None;
        }
        if v.fract() != 0.0 || v < 0.0 {
            self.err(
                Diagnostic::error(
                    "E201",
                    format!("{what} must be a whole number, found {}", fmt_num(v)),
                )
                .with_primary(e.span, "expected a non-negative integer"),
            );
            return None;
        }
        Some(v as usize)
    }

    fn positive(&mut self, e: &Expr, what: &str) -> Option<usize> {
        let v = self.integer(e, what)?;
        if v == 0 {
            self.err(
                Diagnostic::error("E202", format!("{what} must be at least 1"))
                    .with_primary(e.span, "zero is not allowed"),
            );
            return None;
        }
        Some(v)
    }

    /// A list of whole numbers (through block parameters).
    fn int_list(&mut self, e: &Expr, what: &str) -> Option<Vec<usize>> {
        let val = self.const_val(e)?;
        let Val::List(items) = val else {
            self.err(
                Diagnostic::error(
                    "E201",
                    format!("expected a list for {what}, found {}", e.describe()),
                )
                .with_primary(e.span, "write e.g. `[1, 2, 2, 2]`"),
            );
            return None;
        };
        let mut out = Vec::new();
        for it in items {
            match it {
                Val::Num(v) if v.fract() == 0.0 && v >= 0.0 && v <= MAX_INT as f64 => {
                    out.push(v as usize)
                }
                _ => {
                    self.err(
                        Diagnostic::error("E201", format!("{what} must be whole numbers"))
                            .with_primary(e.span, "expected a list of non-negative integers"),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A word argument that must be one of `choices` (through block parameters).
    fn choice(&mut self, e: &Expr, what: &str, choices: &[&str]) -> Option<String> {
        let word = match &e.kind {
            ExprKind::Ident(n) => match self.lookup(n) {
                Some((Val::Sym(s), _, _)) => s,
                _ => n.clone(),
            },
            ExprKind::Call(c) => c.name.name.clone(),
            _ => String::new(),
        };
        if choices.contains(&word.as_str()) {
            return Some(word);
        }
        let list = choices
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.err(
            Diagnostic::error("E202", format!("unknown {what} `{}`", src_word(e)))
                .with_primary(e.span, format!("expected one of {list}"))
                .suggest(&word, choices.iter().copied()),
        );
        None
    }

    /// A configuration call (`dopri5(rtol = 1e-3)`) or bare word, through block parameters.
    fn config<'e>(&mut self, e: &'e Expr) -> Option<ConfigRef<'e>> {
        match &e.kind {
            ExprKind::Call(c) => Some(ConfigRef::Call(c)),
            ExprKind::Ident(n) => match self.lookup(n) {
                Some((Val::Expr(b), _, _)) => Some(ConfigRef::Owned(*b)),
                Some((Val::Sym(s), _, _)) => Some(ConfigRef::Word(s, e.span)),
                _ => Some(ConfigRef::Word(n.clone(), e.span)),
            },
            _ => {
                self.err(
                    Diagnostic::error(
                        "E201",
                        format!("expected a setting, found {}", e.describe()),
                    )
                    .with_primary(e.span, "not a setting"),
                );
                None
            }
        }
    }

    // ------------------------------------------------------------------ task & train

    fn task(&mut self, c: &ast::Call) -> Option<Task> {
        match c.name.name.as_str() {
            "classify" => {
                let a = self.bind_args(c, &["classes"], 1)?;
                Some(Task::Classify {
                    classes: self.positive(a[0]?, "the number of classes")?,
                })
            }
            "denoise" => {
                let a = self.bind_args(c, &["schedule", "predict"], 0)?;
                let schedule = match a[0] {
                    Some(e) => self.schedule(e)?,
                    None => Schedule::Linear {
                        beta_start: 1e-4,
                        beta_end: 0.02,
                        steps: 1000,
                    },
                };
                let predict = match a[1] {
                    Some(e) => self.choice(e, "prediction target", &["eps"])?,
                    None => "eps".to_string(),
                };
                Some(Task::Denoise { schedule, predict })
            }
            other => {
                self.err(
                    Diagnostic::error("E102", format!("unknown task `{other}`"))
                        .with_primary(c.name.span, "expected `classify` or `denoise`")
                        .suggest(other, ["classify", "denoise"]),
                );
                None
            }
        }
    }

    fn schedule(&mut self, e: &Expr) -> Option<Schedule> {
        let ExprKind::Call(c) = &e.kind else {
            self.err(
                Diagnostic::error(
                    "E201",
                    "a noise schedule is `linear(b0, b1, T)` or `cosine(T)`",
                )
                .with_primary(e.span, format!("found {}", e.describe())),
            );
            return None;
        };
        match c.name.name.as_str() {
            "linear" => {
                let a = self.bind_args(c, &["beta_start", "beta_end", "steps"], 3)?;
                let b0 = self.float(a[0]?)?;
                let b1 = self.float(a[1]?)?;
                let steps = self.positive(a[2]?, "the number of steps")?;
                if !(0.0 < b0 && b0 <= b1 && b1 < 1.0) {
                    self.err(
                        Diagnostic::error(
                            "E202",
                            "betas must satisfy 0 < beta_start <= beta_end < 1",
                        )
                        .with_primary(c.span, "invalid beta range"),
                    );
                    return None;
                }
                Some(Schedule::Linear {
                    beta_start: b0,
                    beta_end: b1,
                    steps,
                })
            }
            "cosine" => {
                let a = self.bind_args(c, &["steps"], 1)?;
                Some(Schedule::Cosine {
                    steps: self.positive(a[0]?, "the number of steps")?,
                })
            }
            other => {
                self.err(
                    Diagnostic::error("E202", format!("unknown noise schedule `{other}`"))
                        .with_primary(c.name.span, "expected `linear` or `cosine`")
                        .suggest(other, ["linear", "cosine"]),
                );
                None
            }
        }
    }

    fn check_task(&mut self, task: &Task, out: NodeId, m: &ast::Model) {
        let shape = self.node_shape(out);
        let span = self.node_span(out);
        match task {
            Task::Classify { classes } => {
                if shape != (Shape::Vector { d: *classes }) {
                    self.err(
                        Diagnostic::error("E209", format!("a {classes}-class classifier must output [B, {classes}], found {shape}"))
                            .with_primary(span, format!("the output is {shape}"))
                            .with_help(format!("end with `avgpool | flatten | linear({classes})`")),
                    );
                }
            }
            Task::Denoise { schedule, .. } => {
                let inp = self.input.clone();
                if let Some(inp) = inp {
                    let want = Shape::Image {
                        c: inp.channels,
                        h: inp.height,
                        w: inp.width,
                    };
                    if shape != want {
                        self.err(
                            Diagnostic::error("E209", format!("a denoiser must output its input's shape {want}, found {shape}"))
                                .with_primary(span, format!("the output is {shape}")),
                        );
                    }
                }
                let steps = match schedule {
                    Schedule::Linear { steps, .. } | Schedule::Cosine { steps } => *steps,
                };
                if let Some(t) = self.time.clone() {
                    match t.kind {
                        TimeKind::Steps(n) if n != steps => self.err(
                            Diagnostic::error(
                                "E209",
                                format!("the schedule has {steps} steps but time has {n}"),
                            )
                            .with_primary(t.span, format!("declared with {n} steps"))
                            .with_help("make `time t: step(N)` and the schedule agree"),
                        ),
                        TimeKind::Continuous => self.err(
                            Diagnostic::error("E209", "a denoiser needs integer diffusion steps")
                                .with_primary(t.span, "declared continuous")
                                .with_help(format!(
                                    "declare `time {}: step({steps}), per_sample`",
                                    t.name
                                )),
                        ),
                        _ => {}
                    }
                }
            }
        }
        let _ = m;
    }

    fn train(&mut self, args: &[Arg], span: Span) -> TrainSettings {
        let call = ast::Call {
            name: ast::Ident {
                name: "train".into(),
                span,
            },
            args: args.to_vec(),
            span,
        };
        let mut s = TrainSettings::default();
        let names = [
            "optimizer",
            "batch",
            "epochs",
            "steps",
            "grad_clip",
            "ema",
            "schedule",
            "warmup",
        ];
        let Some(a) = args::bind(self.diags, &call, &names, 0) else {
            return s;
        };
        let a: Vec<Option<Expr>> = a.into_iter().map(|e| e.cloned()).collect();
        if let Some(e) = &a[0] {
            if let Some((opt, warm)) = self.optimizer(e) {
                s.optimizer = opt;
                s.warmup = warm;
            }
        }
        if let Some(e) = &a[1] {
            s.batch = self.positive(e, "the batch size").unwrap_or(s.batch);
        }
        if let Some(e) = &a[2] {
            s.epochs = self.positive(e, "the number of epochs");
        }
        if let Some(e) = &a[3] {
            s.steps = self.positive(e, "the number of steps");
        }
        if let Some(e) = &a[4] {
            s.grad_clip = self.float(e);
        }
        if let Some(e) = &a[5] {
            s.ema = self.float(e);
            if let Some(v) = s.ema {
                if !(0.0..1.0).contains(&v) {
                    self.err(
                        Diagnostic::error("E202", "the EMA decay must be in [0, 1)")
                            .with_primary(e.span, "out of range"),
                    );
                }
            }
        }
        if let Some(e) = &a[6] {
            if let Some(sch) = self.lr_schedule(e) {
                s.schedule = sch;
            }
        }
        if let Some(e) = &a[7] {
            s.warmup = self.integer(e, "the warmup").unwrap_or(0);
        }
        s
    }

    fn optimizer(&mut self, e: &Expr) -> Option<(Optimizer, usize)> {
        let ExprKind::Call(c) = &e.kind else {
            self.err(
                Diagnostic::error(
                    "E201",
                    "an optimizer is `adam(lr = ...)` or `sgd(lr = ..., momentum = ...)`",
                )
                .with_primary(e.span, format!("found {}", e.describe())),
            );
            return None;
        };
        match c.name.name.as_str() {
            "adam" => {
                let a =
                    self.bind_args(c, &["lr", "beta1", "beta2", "weight_decay", "warmup"], 0)?;
                let lr = a[0].map(|e| self.float(e)).unwrap_or(Some(1e-3))?;
                let beta1 = a[1].map(|e| self.float(e)).unwrap_or(Some(0.9))?;
                let beta2 = a[2].map(|e| self.float(e)).unwrap_or(Some(0.999))?;
                let weight_decay = a[3].map(|e| self.float(e)).unwrap_or(Some(0.0))?;
                let warmup = a[4]
                    .map(|e| self.integer(e, "the warmup"))
                    .unwrap_or(Some(0))?;
                Some((
                    Optimizer::Adam {
                        lr,
                        beta1,
                        beta2,
                        weight_decay,
                    },
                    warmup,
                ))
            }
            "sgd" => {
                let a = self.bind_args(c, &["lr", "momentum", "weight_decay", "warmup"], 1)?;
                let lr = self.float(a[0]?)?;
                let momentum = a[1].map(|e| self.float(e)).unwrap_or(Some(0.0))?;
                let weight_decay = a[2].map(|e| self.float(e)).unwrap_or(Some(0.0))?;
                let warmup = a[3]
                    .map(|e| self.integer(e, "the warmup"))
                    .unwrap_or(Some(0))?;
                Some((
                    Optimizer::Sgd {
                        lr,
                        momentum,
                        weight_decay,
                    },
                    warmup,
                ))
            }
            other => {
                self.err(
                    Diagnostic::error("E202", format!("unknown optimizer `{other}`"))
                        .with_primary(c.name.span, "expected `adam` or `sgd`")
                        .suggest(other, ["adam", "sgd"]),
                );
                None
            }
        }
    }

    fn lr_schedule(&mut self, e: &Expr) -> Option<LrSchedule> {
        match &e.kind {
            ExprKind::Ident(w) if w == "constant" => Some(LrSchedule::Constant),
            ExprKind::Ident(w) if w == "cosine" => Some(LrSchedule::Cosine),
            ExprKind::Call(c) if c.name.name == "step" => {
                let a = self.bind_args(c, &["milestones", "gamma"], 1)?;
                let milestones = self.int_list(a[0]?, "the milestones")?;
                let gamma = a[1].map(|e| self.float(e)).unwrap_or(Some(0.1))?;
                Some(LrSchedule::Step { milestones, gamma })
            }
            _ => {
                self.err(
                    Diagnostic::error(
                        "E202",
                        format!("unknown learning-rate schedule `{}`", src_word(e)),
                    )
                    .with_primary(
                        e.span,
                        "expected `constant`, `cosine` or `step([epochs], gamma = g)`",
                    ),
                );
                None
            }
        }
    }
}

/// A configuration expression, possibly reached through a block parameter.
enum ConfigRef<'e> {
    Call(&'e ast::Call),
    Owned(Expr),
    Word(String, Span),
}

fn attr_allows(st: &Stmt) -> Vec<String> {
    st.attrs
        .iter()
        .filter(|a| a.name.name == "allow")
        .flat_map(|a| a.args.iter().map(|i| i.name.clone()))
        .collect()
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn src_word(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Ident(s) => s.clone(),
        ExprKind::Call(c) => c.name.name.clone(),
        ExprKind::Number(_, t) => t.clone(),
        _ => e.describe().to_string(),
    }
}

fn src_call(c: &ast::Call) -> String {
    if c.args.is_empty() {
        c.name.name.clone()
    } else {
        format!("{}(...)", c.name.name)
    }
}
