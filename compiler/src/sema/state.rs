//! The analyzer's state: the [`Sema`] of one model (its declarations, the graphs and scopes
//! under construction, the diagnostics so far), what names stand for ([`Val`]), scopes and
//! graphs under construction, and the small text helpers every part uses. Every other part of
//! sema adds methods to [`Sema`]; this module uses none of them.

use crate::ast::{self, BlockDef, Expr, ExprKind, Span, Stmt};
use crate::diagnostics::Diagnostic;
use crate::ir::{
    BiasInit, BiasPolicy, Graph, InjectionSite, InputInfo, LabelInfo, NodeId, TimeInfo,
};
use rustc_hash::{FxHashMap as HashMap, FxHashSet};

/// A compile-time value: what names and arguments can stand for.
#[derive(Debug, Clone)]
pub(super) enum Val {
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
pub(super) enum NormSpec {
    Batch(NormOpts),
    Instance(NormOpts),
    Layer(NormOpts),
    /// `layer(over = channels)`: over the C channels at each position.
    PerPosition(NormOpts),
    Group {
        groups: Option<usize>,
        per_group: Option<usize>,
        min_per_group: Option<usize>,
        opts: NormOpts,
    },
}

/// What every normalization may set: `eps = e`, `affine = false`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct NormOpts {
    /// The variance epsilon (PyTorch's 1e-5 when not given; DDPM uses 1e-6).
    pub(super) eps: Option<f64>,
    /// A learned per-channel scale and shift after normalizing (PyTorch's `affine`).
    pub(super) affine: bool,
}

impl NormSpec {
    fn opts(self) -> NormOpts {
        match self {
            NormSpec::Batch(o)
            | NormSpec::Instance(o)
            | NormSpec::Layer(o)
            | NormSpec::PerPosition(o) => o,
            NormSpec::Group { opts, .. } => opts,
        }
    }
    /// The epsilon the norm adds to the variance.
    pub(super) fn eps(self) -> f64 {
        self.opts().eps.unwrap_or(1e-5)
    }
    /// Whether it learns a scale and shift.
    pub(super) fn affine(self) -> bool {
        self.opts().affine
    }
}

/// A scope of names: the model's, a block body's, an ODE function's.
pub(super) struct Scope {
    pub(super) vars: HashMap<String, (Val, Span)>,
    /// Assignment counts, for naming reassigned values `a`, `a_2`, ...
    pub(super) assigned: HashMap<String, usize>,
    /// Node-name prefix of this scope (`down.1.res0`).
    pub(super) prefix: String,
    /// Lint codes allowed by attributes on the statements that led here.
    pub(super) allow: Vec<String>,
    pub(super) stmt_span: Span,
}

impl Scope {
    /// A scope whose nodes are named under `prefix`.
    pub(super) fn new(prefix: String, stmt_span: Span) -> Self {
        // Sized for a block's few names (growing from empty rehashed two or three times).
        Scope {
            vars: HashMap::with_capacity_and_hasher(8, Default::default()),
            assigned: HashMap::with_capacity_and_hasher(8, Default::default()),
            prefix,
            allow: Vec::new(),
            stmt_span,
        }
    }
}

/// One graph under construction: the model's, or an ODE function's.
pub(super) struct GraphCtx {
    pub(super) graph: Graph,
    pub(super) time_node: Option<NodeId>,
    pub(super) embeds: HashMap<String, NodeId>,
    /// Prefix for embeddings instantiated inside this graph.
    pub(super) prefix: String,
    pub(super) names: HashMap<String, usize>,
    /// Scope depth at which this graph starts; names below it belong to outer graphs.
    pub(super) scope_floor: usize,
    /// The block instances being expanded, innermost last (indexes into `graph.instances`).
    pub(super) open: Vec<usize>,
    /// The values t takes in this graph when they are not the model's (an ODE function sees
    /// its integration interval).
    pub(super) time_range: Option<(f64, f64)>,
}

impl GraphCtx {
    /// An empty graph whose embeddings are named under `prefix` and whose names start at scope
    /// depth `scope_floor`.
    pub(super) fn new(prefix: String, scope_floor: usize) -> Self {
        GraphCtx {
            graph: Graph::default(),
            time_node: None,
            embeds: HashMap::default(),
            prefix,
            // Sized for a UNet's few hundred nodes.
            names: HashMap::with_capacity_and_hasher(256, Default::default()),
            scope_floor,
            open: Vec::new(),
            time_range: None,
        }
    }
}

/// The analyzer of one model.
pub(super) struct Sema<'a> {
    pub(super) model: &'a ast::Model,
    pub(super) diags: &'a mut Vec<Diagnostic>,
    pub(super) blocks: HashMap<String, &'a BlockDef>,
    pub(super) embeds: HashMap<String, (&'a Expr, Span)>,
    /// Embeddings whose pipeline failed (reported once, not at every use).
    pub(super) failed_embeds: FxHashSet<String>,
    pub(super) default_norm: Option<(NormSpec, Span)>,
    pub(super) bias: BiasPolicy,
    pub(super) input: Option<InputInfo>,
    pub(super) time: Option<TimeInfo>,
    pub(super) label: Option<LabelInfo>,
    pub(super) graphs: Vec<GraphCtx>,
    pub(super) scopes: Vec<Scope>,
    pub(super) injections: Vec<InjectionSite>,
    pub(super) depth: usize,
    /// The blocks being expanded, outermost first (a repeat is recursion).
    pub(super) block_stack: Vec<String>,
}

impl<'a> Sema<'a> {
    pub(super) fn new(model: &'a ast::Model, diags: &'a mut Vec<Diagnostic>) -> Self {
        Sema {
            model,
            diags,
            blocks: HashMap::default(),
            embeds: HashMap::default(),
            failed_embeds: Default::default(),
            default_norm: None,
            bias: BiasPolicy {
                operand: BiasInit::Default,
                time: BiasInit::Default,
            },
            input: None,
            time: None,
            label: None,
            graphs: vec![GraphCtx::new(String::new(), 0)],
            scopes: vec![Scope::new(String::new(), Span::default())],
            injections: Vec::new(),
            depth: 0,
            block_stack: Vec::new(),
        }
    }

    pub(super) fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
}

/// The lint codes `#[allow(...)]` attributes on a statement allow.
pub(super) fn attr_allows(st: &Stmt) -> Vec<String> {
    st.attrs
        .iter()
        .filter(|a| a.name.name == "allow")
        .flat_map(|a| a.args.iter().map(|i| i.name.clone()))
        .collect()
}

/// `prefix.name`, or `name` at the top level.
pub(super) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        return name.to_string();
    }
    // Sized once (every node's name is made here).
    let mut out = String::with_capacity(prefix.len() + 1 + name.len());
    out.push_str(prefix);
    out.push('.');
    out.push_str(name);
    out
}

/// The word an expression starts with, as written, for "unknown X `word`" messages.
pub(super) fn src_word(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Ident(s) => s.clone(),
        ExprKind::Call(c) => c.name.name.clone(),
        ExprKind::Number(_, t) => t.clone(),
        _ => e.describe().to_string(),
    }
}
