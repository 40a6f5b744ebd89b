//! The PyTorch emitter: a parsed spec and its checked [`ModelIr`] in; the files of a
//! self-contained Python package out: `model.py` (an `nn.Module` with the spec's layers in the
//! spec's order, one class per block and per ODE function, `state_dict()` keys equal to
//! tdspec's parameter names), `train.py` (the spec's task and training settings under
//! torchrun/DistributedDataParallel, checkpoints in tdspec's safetensors format), `README.md`
//! and `spec.tds`.
//!
//! The IR is flat (blocks are inlined), so the emitter recovers structure from it: a node whose
//! source span lies in a block definition belongs to the block instance whose name prefix the
//! node's hierarchical name carries (`down.1.res0.conv1` -> instance `down.1.res0`); instances
//! of one block with the same structure share a class whose constructor takes what differs
//! (`in_ch`, `out_ch`, optional layers such as `nin_shortcut`); a pipeline whose stages are
//! named `P.0 .. P.n-1` becomes an `nn.Sequential`; everything else is a named layer or an
//! expression in `forward`. Statements follow the spec's statements (one Python statement per
//! spec assignment where possible).

use super::{EmitError, EmittedFile};
use crate::ast::{self, BlockDef, Span, StmtKind};
use crate::diagnostics::thousands;
use crate::ir::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

const HELPERS: &str = include_str!("pytorch/helpers.py");
const TRAIN: &str = include_str!("pytorch/train.py");
const README: &str = include_str!("pytorch/README.md");

type R<T> = Result<T, EmitError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(EmitError(msg.into()))
}

/// Emits the whole package for `model` (one of the models of `file`, parsed from `spec_text`).
pub fn emit(file: &ast::File, model: &ModelIr, spec_text: &str) -> R<Vec<EmittedFile>> {
    let model_py = model_py(file, model)?;
    let train_py = train_py(model);
    let readme = readme(model);
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

// ---------------------------------------------------------------------------------------------
// Source: block definitions (for names and docs) and statement targets (for variable names).

struct Source<'a> {
    defs: HashMap<&'a str, &'a BlockDef>,
    /// Statement span -> the name it assigns (`a`, `temb`, ...).
    targets: HashMap<(usize, usize), String>,
}

impl<'a> Source<'a> {
    fn new(m: &'a ast::Model) -> Self {
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
    fn def(&self, name: &str) -> R<&'a BlockDef> {
        match self.defs.get(name) {
            Some(d) => Ok(d),
            None => err(format!("block `{name}` is not in the parsed model")),
        }
    }

    fn target(&self, span: Span) -> Option<&str> {
        self.targets
            .get(&(span.start, span.end))
            .map(String::as_str)
    }
}

// ---------------------------------------------------------------------------------------------
// Per-graph structure: the block instances sema recorded, consumers.

struct Inst {
    prefix: String,
    block: String,
    parent: Option<usize>,
    output: NodeId,
    /// Values from outside the instance it reads, in order of first use.
    externals: Vec<NodeId>,
}

struct GraphInfo<'g> {
    g: &'g Graph,
    /// The name prefix of the graph's own scope (`""`, or the ODE node's name).
    root: String,
    /// The instance that directly owns each node (None: the graph's own scope).
    owner: Vec<Option<usize>>,
    insts: Vec<Inst>,
    uses: Vec<Vec<NodeId>>,
}

impl<'g> GraphInfo<'g> {
    /// The graph's instances that become classes: those that compute the value they return (a
    /// block that returns its input is nothing to call; its nodes, if any, stay with the
    /// enclosing scope).
    fn new(g: &'g Graph, root: &str) -> Self {
        let n = g.nodes.len();
        let mut index: Vec<Option<usize>> = vec![None; g.instances.len()];
        let mut insts: Vec<Inst> = Vec::new();
        let mut owner = vec![None; n];
        for (k, inst) in g.instances.iter().enumerate() {
            if inst.nodes.binary_search(&inst.output).is_err() {
                continue;
            }
            let mut parent = inst.parent;
            while let Some(p) = parent.filter(|&p| index[p].is_none()) {
                parent = g.instances[p].parent;
            }
            let i = insts.len();
            index[k] = Some(i);
            // Instances come after their parents: the last one to claim a node owns it.
            for &v in &inst.nodes {
                if let Some(o) = owner.get_mut(v) {
                    *o = Some(i);
                }
            }
            insts.push(Inst {
                prefix: inst.prefix.clone(),
                block: inst.block.clone(),
                parent: parent.and_then(|p| index[p]),
                output: inst.output,
                externals: inst.inputs.clone(),
            });
        }
        let mut uses = vec![Vec::new(); n];
        for (id, node) in g.nodes.iter().enumerate() {
            for &i in &node.inputs {
                if i < n {
                    uses[i].push(id);
                }
            }
        }
        GraphInfo {
            g,
            root: root.to_string(),
            owner,
            insts,
            uses,
        }
    }

    fn rel(&self, scope_prefix: &str, name: &str) -> String {
        if scope_prefix.is_empty() {
            name.to_string()
        } else {
            name.strip_prefix(&format!("{scope_prefix}."))
                .unwrap_or(name)
                .to_string()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scopes: the units a class's forward is made of.

#[derive(Clone, Debug)]
enum Elem {
    Node(NodeId),
    /// A block instance, rendered as a call of the class `classes[cls]` with `args`.
    Inst {
        inst: usize,
    },
}

#[derive(Clone, Debug)]
enum UnitKind {
    Node(NodeId),
    Seq(Vec<Elem>),
    Inst(usize),
}

#[derive(Clone, Debug)]
struct Unit {
    kind: UnitKind,
    /// The module path (or node name) relative to the scope.
    path: String,
    inputs: Vec<NodeId>,
    out: NodeId,
}

/// What a block instance became: its class and constructor arguments.
#[derive(Clone, Debug)]
struct InstClass {
    class: String,
    args: Vec<String>,
}

/// The analyzed scope of a class: arguments, units, output.
struct Scope {
    args: Vec<(NodeId, String)>,
    units: Vec<Unit>,
    output: NodeId,
    in_ch: Option<usize>,
    out_ch: Option<usize>,
}

fn seqable(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv {
            time: TimeChannel::None,
            ..
        } | Op::Linear { .. }
            | Op::Norm { .. }
            | Op::Act { .. }
            | Op::Dropout { .. }
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::Upsample { .. }
            | Op::Flatten
            | Op::Sinusoidal { .. }
            | Op::Attention { .. }
            | Op::Ode { .. }
    )
}

fn is_time_ext(g: &Graph, id: NodeId) -> bool {
    g.nodes[id].time_branch
}

/// Python name for an external value of a block: `h` for the feature input, `t` for time, the
/// embedding's name for an embedding.
fn ext_name(g: &Graph, id: NodeId, main: &str, time: &str) -> String {
    let n = &g.nodes[id];
    if matches!(n.op, Op::Time) {
        time.to_string()
    } else if n.time_branch {
        py_ident(n.name.split('.').next().unwrap_or("emb"))
    } else {
        main.to_string()
    }
}

fn build_scope(
    gi: &GraphInfo,
    scope: Option<usize>,
    args: Vec<(NodeId, String)>,
    output: NodeId,
) -> Scope {
    let g = gi.g;
    let prefix = match scope {
        Some(i) => gi.insts[i].prefix.clone(),
        None => gi.root.clone(),
    };
    let arg_ids: HashSet<NodeId> = args.iter().map(|a| a.0).collect();
    let mut units: Vec<Unit> = Vec::new();
    for (id, node) in g.nodes.iter().enumerate() {
        if gi.owner[id] != scope || arg_ids.contains(&id) || matches!(node.op, Op::Input | Op::Time)
        {
            continue;
        }
        units.push(Unit {
            kind: UnitKind::Node(id),
            path: gi.rel(&prefix, &node.name),
            inputs: node.inputs.clone(),
            out: id,
        });
    }
    for (i, inst) in gi.insts.iter().enumerate() {
        if inst.parent == scope {
            units.push(Unit {
                kind: UnitKind::Inst(i),
                path: gi.rel(&prefix, &inst.prefix),
                inputs: inst.externals.clone(),
                out: inst.output,
            });
        }
    }
    units.sort_by_key(|u| u.out);
    // Pipelines P.0 .. P.n-1 of single-input layers become nn.Sequential.
    let mut groups: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for (ui, u) in units.iter().enumerate() {
        if let Some((p, idx)) = u.path.rsplit_once('.') {
            if let Ok(k) = idx.parse::<usize>() {
                groups.entry(p.to_string()).or_default().push((k, ui));
            }
        } else if let Ok(k) = u.path.parse::<usize>() {
            groups.entry(String::new()).or_default().push((k, ui));
        }
    }
    let mut merged: HashMap<usize, Option<Unit>> = HashMap::new();
    for (p, mut members) in groups {
        if p.is_empty() {
            continue;
        }
        members.sort();
        if members.iter().enumerate().any(|(i, (k, _))| *k != i) {
            continue;
        }
        let pre = format!("{p}.");
        let others = units.iter().enumerate().any(|(ui, u)| {
            let inside = u.path == p || u.path.starts_with(&pre);
            let above = p.starts_with(&format!("{}.", u.path));
            (inside && !members.iter().any(|(_, m)| *m == ui)) || above
        });
        let has_layers = members.iter().any(|(_, ui)| match &units[*ui].kind {
            UnitKind::Node(id) => has_module(&g.nodes[*id].op),
            _ => true,
        });
        if others || !has_layers {
            continue;
        }
        let mut ok = true;
        let mut elems = Vec::new();
        for (i, (_, ui)) in members.iter().enumerate() {
            let u = &units[*ui];
            let single = match &u.kind {
                UnitKind::Node(id) => seqable(&g.nodes[*id].op) && u.inputs.len() == 1,
                UnitKind::Inst(_) => u.inputs.len() == 1 && !is_time_ext(g, u.inputs[0]),
                UnitKind::Seq(_) => false,
            };
            if !single {
                ok = false;
                break;
            }
            if i > 0 && u.inputs[0] != units[members[i - 1].1].out {
                ok = false;
                break;
            }
            if i + 1 < members.len() && gi.uses[u.out].len() != 1 {
                ok = false;
                break;
            }
            match &u.kind {
                UnitKind::Node(id) => elems.push(Elem::Node(*id)),
                UnitKind::Inst(i) => elems.push(Elem::Inst { inst: *i }),
                UnitKind::Seq(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let first = &units[members[0].1];
        let last = &units[members[members.len() - 1].1];
        let seq = Unit {
            kind: UnitKind::Seq(elems),
            path: p.clone(),
            inputs: first.inputs.clone(),
            out: last.out,
        };
        for (i, (_, ui)) in members.iter().enumerate() {
            merged.insert(
                *ui,
                if i + 1 == members.len() {
                    Some(seq.clone())
                } else {
                    None
                },
            );
        }
    }
    let units: Vec<Unit> = units
        .into_iter()
        .enumerate()
        .filter_map(|(ui, u)| match merged.remove(&ui) {
            Some(s) => s,
            None => Some(u),
        })
        .collect();
    let in_ch = args
        .iter()
        .find(|(id, _)| !is_time_ext(g, *id))
        .and_then(|(id, _)| g.nodes[*id].shape.channels());
    let out_ch = g.nodes.get(output).and_then(|n| n.shape.channels());
    Scope {
        args,
        units,
        output,
        in_ch,
        out_ch,
    }
}

// ---------------------------------------------------------------------------------------------
// Layers: constructor fields, constructors and forward expressions.

/// The numeric constructor fields of a layer (what may differ between instances of a class).
fn fields(op: &Op) -> Vec<(&'static str, String)> {
    let n = |v: usize| v.to_string();
    match op {
        Op::Conv {
            cin,
            cout,
            k,
            stride,
            pad,
            groups,
            ..
        } => vec![
            ("in", n(*cin)),
            ("out", n(*cout)),
            ("k", n(*k)),
            ("stride", n(*stride)),
            ("padding", n(*pad)),
            ("groups", n(*groups)),
        ],
        Op::Linear { din, dout, .. } => vec![("in", n(*din)), ("out", n(*dout))],
        Op::Norm { kind, channels, .. } => match kind {
            NormKind::Group { groups } => vec![("groups", n(*groups)), ("channels", n(*channels))],
            _ => vec![("channels", n(*channels))],
        },
        Op::Attention {
            channels,
            heads,
            norm,
        } => {
            let mut v = vec![("channels", n(*channels)), ("heads", n(*heads))];
            match norm {
                NormKind::Group { groups } => v.push(("groups", n(*groups))),
                NormKind::Instance => v.push(("groups", n(*channels))),
                NormKind::Layer => v.push(("groups", "1".into())),
                NormKind::Batch => {}
            }
            v
        }
        Op::Inject { din, channels, .. } => vec![("in", n(*din)), ("out", n(*channels))],
        Op::ScaleShift { din, channels } => {
            vec![("in", n(*din)), ("out", n(channels.saturating_mul(2)))]
        }
        _ => Vec::new(),
    }
}

/// The structure of a layer apart from its fields (equal within a class).
fn op_sig(op: &Op) -> String {
    match op {
        Op::Conv { bias, time, .. } => format!("conv({bias},{time:?})"),
        Op::Linear { bias, .. } => format!("linear({bias})"),
        Op::Norm { kind, .. } => format!(
            "norm({})",
            std::mem::discriminant(kind) == std::mem::discriminant(&NormKind::Batch)
        ),
        Op::Attention { norm, .. } => format!("attn({})", matches!(norm, NormKind::Batch)),
        Op::Inject { mode, .. } => format!("inject({mode:?})"),
        Op::ScaleShift { .. } => "scale_shift".into(),
        Op::Ode { .. } => "ode".into(),
        other => format!("{other:?}"),
    }
}

fn has_module(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv { .. }
            | Op::Linear { .. }
            | Op::Norm { .. }
            | Op::Attention { .. }
            | Op::Inject { .. }
            | Op::ScaleShift { .. }
            | Op::Ode { .. }
    )
}

fn py_float(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// The constructor of a layer with the given field expressions.
fn ctor(op: &Op, f: &[String], ode_class: Option<&str>) -> String {
    let get = |i: usize| f.get(i).cloned().unwrap_or_default();
    let conv_opts = |s: &mut String| {
        if get(3) != "1" {
            let _ = write!(s, ", stride={}", get(3));
        }
        if get(4) != "0" {
            let _ = write!(s, ", padding={}", get(4));
        }
        if get(5) != "1" {
            let _ = write!(s, ", groups={}", get(5));
        }
    };
    match op {
        Op::Conv { bias, time, .. } => {
            let mut s = match time {
                TimeChannel::None => format!("nn.Conv2d({}, {}, {}", get(0), get(1), get(2)),
                _ => format!("ConcatConv2d({}, {}, {}", get(0), get(1), get(2)),
            };
            conv_opts(&mut s);
            if !bias {
                s += ", bias=False";
            }
            if *time == TimeChannel::Positional {
                s += ", positional=True";
            }
            s + ")"
        }
        Op::Linear { bias, .. } => {
            format!(
                "nn.Linear({}, {}{})",
                get(0),
                get(1),
                if *bias { "" } else { ", bias=False" }
            )
        }
        Op::Norm { kind, .. } => match kind {
            NormKind::Group { .. } => format!("nn.GroupNorm({}, {})", get(0), get(1)),
            NormKind::Instance => format!("nn.GroupNorm({0}, {0})", get(0)),
            NormKind::Layer => format!("nn.GroupNorm(1, {})", get(0)),
            NormKind::Batch => format!("BatchNorm({})", get(0)),
        },
        Op::Attention { norm, .. } => {
            let mut s = format!("Attention({}", get(0));
            if get(1) != "1" {
                let _ = write!(s, ", heads={}", get(1));
            }
            match norm {
                NormKind::Batch => s += ", groups=None",
                _ => {
                    if get(2) != "32" {
                        let _ = write!(s, ", groups={}", get(2));
                    }
                }
            }
            s + ")"
        }
        Op::Inject { .. } | Op::ScaleShift { .. } => format!("nn.Linear({}, {})", get(0), get(1)),
        Op::Act { act } => match act {
            Act::Relu => "nn.ReLU()".into(),
            Act::Silu => "nn.SiLU()".into(),
            Act::Tanh => "nn.Tanh()".into(),
            Act::Softplus => "nn.Softplus()".into(),
        },
        Op::Dropout { p } => format!("nn.Dropout({})", py_float(*p)),
        Op::AvgPool { k, stride } => format!("nn.AvgPool2d({k}, {stride})"),
        Op::GlobalAvgPool => "nn.AdaptiveAvgPool2d(1)".into(),
        Op::Upsample { factor } => format!("nn.Upsample(scale_factor={factor}, mode=\"nearest\")"),
        Op::Flatten => "nn.Flatten()".into(),
        Op::Sinusoidal { dim } => format!("SinusoidalEmbedding({dim})"),
        Op::Ode { .. } => format!("{}()", ode_class.unwrap_or("OdeBlock")),
        _ => "nn.Identity()".into(),
    }
}

/// A rendered expression and whether it binds tighter than `+` (safe as an operand).
#[derive(Clone)]
struct PyExpr {
    text: String,
    atom: bool,
}

fn atom(s: String) -> PyExpr {
    PyExpr {
        text: s,
        atom: true,
    }
}

fn paren(e: &PyExpr) -> String {
    if e.atom {
        e.text.clone()
    } else {
        format!("({})", e.text)
    }
}

/// The forward expression of a parameterless op or a layer `m` on inputs `a`.
fn node_expr(node: &Node, m: &str, a: &[PyExpr], g: &Graph) -> PyExpr {
    let x = |i: usize| a.get(i).map(|e| e.text.clone()).unwrap_or_default();
    let img = |i: usize| {
        node.inputs
            .get(i)
            .map(|&id| matches!(g.nodes[id].shape, Shape::Image { .. }))
            .unwrap_or(false)
    };
    match &node.op {
        Op::Conv { time, .. } => match time {
            TimeChannel::None => atom(format!("{m}({})", x(0))),
            _ => atom(format!("{m}({}, {})", x(1), x(0))),
        },
        Op::Linear { .. } | Op::Norm { .. } | Op::Attention { .. } | Op::Ode { .. } => {
            atom(format!("{m}({})", x(0)))
        }
        Op::Act { act } => atom(match act {
            Act::Relu => format!("F.relu({})", x(0)),
            Act::Silu => format!("F.silu({})", x(0)),
            Act::Tanh => format!("torch.tanh({})", x(0)),
            Act::Softplus => format!("F.softplus({})", x(0)),
        }),
        Op::Dropout { p } => atom(format!(
            "F.dropout({}, p={}, training=self.training)",
            x(0),
            py_float(*p)
        )),
        Op::AvgPool { k, stride } => atom(format!("F.avg_pool2d({}, {k}, {stride})", x(0))),
        Op::GlobalAvgPool => atom(format!(
            "{}.mean(dim=(2, 3), keepdim=True)",
            a.first().map(paren).unwrap_or_default()
        )),
        Op::Upsample { factor } => atom(format!(
            "F.interpolate({}, scale_factor={factor}, mode=\"nearest\")",
            x(0)
        )),
        Op::Flatten => atom(format!("torch.flatten({}, 1)", x(0))),
        Op::Add => PyExpr {
            text: format!("{} + {}", x(0), a.get(1).map(paren).unwrap_or_default()),
            atom: false,
        },
        Op::Concat => atom(format!(
            "torch.cat([{}], dim=1)",
            a.iter()
                .map(|e| e.text.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Op::Sinusoidal { dim } => atom(format!("timestep_embedding({}, {dim})", x(0))),
        Op::Inject { mode, .. } => match (mode, img(0)) {
            (InjectMode::Positional, true) => {
                atom(format!("add_positional({}, {m}({}))", x(0), x(1)))
            }
            (_, true) => PyExpr {
                text: format!("{} + {m}({})[:, :, None, None]", x(0), x(1)),
                atom: false,
            },
            _ => PyExpr {
                text: format!("{} + {m}({})", x(0), x(1)),
                atom: false,
            },
        },
        Op::ScaleShift { .. } => atom(format!("scale_shift({}, {m}({}))", x(0), x(1))),
        Op::Input | Op::Time => atom(x(0)),
    }
}

// ---------------------------------------------------------------------------------------------
// Python names.

const PY_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "self", "torch", "nn", "F", "math", "odeint",
];

/// Attributes of nn.Module / nn.ModuleDict a submodule name must not shadow.
const MODULE_ATTRS: &[&str] = &[
    "training",
    "forward",
    "train",
    "eval",
    "to",
    "cuda",
    "cpu",
    "float",
    "double",
    "half",
    "type",
    "apply",
    "modules",
    "children",
    "parameters",
    "buffers",
    "state_dict",
    "load_state_dict",
    "named_modules",
    "named_children",
    "named_parameters",
    "named_buffers",
    "zero_grad",
    "add_module",
    "register_buffer",
    "register_parameter",
    "extra_repr",
    "keys",
    "items",
    "values",
    "update",
    "pop",
    "clear",
    "requires_grad_",
    "share_memory",
    "dump_patches",
    "call_super_init",
    "get_submodule",
    "bfloat16",
    "ipu",
    "xpu",
    "mtia",
    "compile",
];

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn safe_attr(s: &str) -> bool {
    is_ident(s) && !PY_KEYWORDS.contains(&s) && !MODULE_ATTRS.contains(&s) && !s.starts_with("__")
}

/// A Python identifier for a spec name or path.
fn py_ident(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("v_{out}");
    }
    if PY_KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

fn camel(s: &str) -> String {
    let mut out = String::new();
    for part in s.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut ch = part.chars();
        if let Some(f) = ch.next() {
            out.extend(f.to_uppercase());
            out.push_str(ch.as_str());
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("M{out}");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Module trees.

/// A layer's constructor: one expression, or the items of an `nn.Sequential`.
enum Ctor {
    Plain(String),
    Seq(Vec<String>),
}

enum Tree {
    Leaf(Ctor),
    Dir(BTreeMap<String, Tree>, Vec<String>),
}

impl Tree {
    fn new() -> Self {
        Tree::Dir(BTreeMap::new(), Vec::new())
    }

    fn insert(&mut self, path: &[&str], ctor: Ctor) -> R<()> {
        let Tree::Dir(map, order) = self else {
            return err("a layer's name is also used as a group of layers");
        };
        let (head, rest) = match path.split_first() {
            Some(x) => x,
            None => return err("an empty layer name"),
        };
        if rest.is_empty() {
            if map.contains_key(*head) {
                return err(format!("two layers are named `{head}`"));
            }
            order.push(head.to_string());
            map.insert(head.to_string(), Tree::Leaf(ctor));
            return Ok(());
        }
        if !map.contains_key(*head) {
            order.push(head.to_string());
            map.insert(head.to_string(), Tree::new());
        }
        map.get_mut(*head)
            .map(|t| t.insert(rest, ctor))
            .unwrap_or_else(|| err("internal: lost a module group"))
    }

    fn is_list(map: &BTreeMap<String, Tree>) -> bool {
        (0..map.len()).all(|i| map.contains_key(&i.to_string()))
    }

    /// The constructor expression, indented for continuation lines at `indent`.
    fn render(&self, indent: usize) -> String {
        match self {
            Tree::Leaf(Ctor::Plain(s)) => s.clone(),
            Tree::Leaf(Ctor::Seq(items)) => seq_ctor(items, indent),
            Tree::Dir(map, order) => {
                let pad = " ".repeat(indent + 4);
                let list = Self::is_list(map);
                let items: Vec<String> = if list {
                    (0..map.len())
                        .map(|i| map[&i.to_string()].render(indent + 4))
                        .collect()
                } else {
                    order
                        .iter()
                        .map(|k| format!("{k:?}: {}", map[k].render(indent + 4)))
                        .collect()
                };
                let (open, close) = if list {
                    ("nn.ModuleList([", "])")
                } else {
                    ("nn.ModuleDict({", "})")
                };
                let one = format!("{open}{}{close}", items.join(", "));
                if one.len() + indent < 88 && !one.contains('\n') {
                    one
                } else {
                    let mut s = open.to_string();
                    for it in items {
                        let _ = write!(s, "\n{pad}{it},");
                    }
                    let _ = write!(s, "\n{}{close}", " ".repeat(indent));
                    s
                }
            }
        }
    }

    /// Python access to the module at `path` from `self`.
    fn access(&self, path: &[&str]) -> String {
        let mut s = "self".to_string();
        let mut cur = self;
        for (i, c) in path.iter().enumerate() {
            let Tree::Dir(map, _) = cur else { break };
            if i > 0 && Self::is_list(map) {
                let _ = write!(s, "[{c}]");
            } else if safe_attr(c) {
                let _ = write!(s, ".{c}");
            } else {
                let _ = write!(s, "[{c:?}]");
            }
            match map.get(*c) {
                Some(t) => cur = t,
                None => break,
            }
        }
        s
    }
}

fn seq_ctor(items: &[String], indent: usize) -> String {
    let one = format!("nn.Sequential({})", items.join(", "));
    if one.len() + indent < 88 {
        return one;
    }
    let pad = " ".repeat(indent + 4);
    let mut s = "nn.Sequential(".to_string();
    for it in items {
        let _ = write!(s, "\n{pad}{it},");
    }
    let _ = write!(s, "\n{})", " ".repeat(indent));
    s
}

// ---------------------------------------------------------------------------------------------
// The emitter proper.

struct Class {
    name: String,
    base: String,
    doc: String,
    params: Vec<String>,
    init: Vec<String>,
    methods: Vec<String>,
}

#[derive(Default)]
struct Uses {
    sinusoidal: bool,
    positional: bool,
    concat: bool,
    batch: bool,
    attention: bool,
    scale_shift: bool,
    ode: bool,
    time_tags: bool,
}

struct Emitter<'a> {
    src: Source<'a>,
    model: &'a ModelIr,
    classes: Vec<Class>,
    /// Class dedup: structural key -> class name.
    by_key: HashMap<String, String>,
    names: HashSet<String>,
    uses: Uses,
}

/// Field expressions of one class member across the class's instances.
fn field_expr(vals: &[String], ins: &[Option<usize>], outs: &[Option<usize>]) -> Option<String> {
    if vals.windows(2).all(|w| w[0] == w[1]) {
        return vals.first().cloned();
    }
    let nums: Vec<Option<usize>> = vals.iter().map(|v| v.parse().ok()).collect();
    if nums.iter().any(Option::is_none) {
        return None;
    }
    let nums: Vec<usize> = nums.into_iter().flatten().collect();
    for (name, ch) in [("in_ch", ins), ("out_ch", outs)] {
        if ch.iter().any(Option::is_none) {
            continue;
        }
        let ch: Vec<usize> = ch.iter().flatten().copied().collect();
        if nums == ch {
            return Some(name.into());
        }
        if let (Some(&c0), Some(&n0)) = (ch.first(), nums.first()) {
            if n0 > 0 && c0 % n0 == 0 {
                let k = c0 / n0;
                if k > 1 && nums.iter().zip(&ch).all(|(n, c)| n * k == *c) {
                    return Some(format!("{name} // {k}"));
                }
            }
            if c0 > 0 && n0 % c0 == 0 {
                let k = n0 / c0;
                if k > 1 && nums.iter().zip(&ch).all(|(n, c)| c * k == *n) {
                    return Some(format!("{k} * {name}"));
                }
            }
        }
    }
    None
}

impl<'a> Emitter<'a> {
    fn fresh_class_name(&mut self, base: &str) -> String {
        let mut name = camel(base);
        let mut k = 2;
        while self.names.contains(&name) {
            name = format!("{}{k}", camel(base));
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// Field values of a unit (for class sharing): layers' numeric settings, instance args.
    fn unit_fields(
        &self,
        gi: &GraphInfo,
        u: &Unit,
        done: &HashMap<usize, InstClass>,
    ) -> Vec<(String, String)> {
        let base = py_ident(&u.path);
        let node_fields = |id: NodeId, prefix: &str| -> Vec<(String, String)> {
            fields(&gi.g.nodes[id].op)
                .into_iter()
                .map(|(f, v)| (format!("{prefix}_{f}"), v))
                .collect()
        };
        match &u.kind {
            UnitKind::Node(id) => node_fields(*id, &base),
            UnitKind::Inst(i) => done
                .get(i)
                .map(|c| {
                    c.args
                        .iter()
                        .enumerate()
                        .map(|(k, v)| (format!("{base}_{k}"), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            UnitKind::Seq(elems) => {
                let mut v = Vec::new();
                for (k, e) in elems.iter().enumerate() {
                    match e {
                        Elem::Node(id) => v.extend(node_fields(*id, &format!("{base}_{k}"))),
                        Elem::Inst { inst } => {
                            if let Some(c) = done.get(inst) {
                                for (j, a) in c.args.iter().enumerate() {
                                    v.push((format!("{base}_{k}_{j}"), a.clone()));
                                }
                            }
                        }
                    }
                }
                v
            }
        }
    }

    /// The structural signature of a unit, with its inputs as references.
    fn unit_sig(
        &self,
        gi: &GraphInfo,
        u: &Unit,
        refs: &[String],
        done: &HashMap<usize, InstClass>,
        ode: &HashMap<NodeId, String>,
    ) -> String {
        let node_sig = |id: NodeId| -> String {
            let op = &gi.g.nodes[id].op;
            if has_module(op) {
                let tag = if self.time_tagged(gi, id) { "+t" } else { "" };
                format!(
                    "{}{}{tag}",
                    op_sig(op),
                    ode.get(&id).cloned().unwrap_or_default()
                )
            } else {
                format!("{op:?}")
            }
        };
        let body = match &u.kind {
            UnitKind::Node(id) => node_sig(*id),
            UnitKind::Inst(i) => done.get(i).map(|c| c.class.clone()).unwrap_or_default(),
            UnitKind::Seq(elems) => elems
                .iter()
                .map(|e| match e {
                    Elem::Node(id) => node_sig(*id),
                    Elem::Inst { inst } => {
                        done.get(inst).map(|c| c.class.clone()).unwrap_or_default()
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        format!("{}={body}({})", u.path, refs.join(","))
    }

    /// Whether a layer's bias follows the time-branch policy (tagged when the policies differ).
    fn time_tagged(&self, gi: &GraphInfo, id: NodeId) -> bool {
        let n = &gi.g.nodes[id];
        n.params.iter().any(|p| p.role == ParamRole::TimeBias)
    }

    fn policies_differ(&self) -> bool {
        self.model.bias.operand != self.model.bias.time
    }

    fn wrap_time(&mut self, tagged: bool, s: String) -> String {
        if tagged && self.policies_differ() {
            self.uses.time_tags = true;
            format!("time_branch({s})")
        } else {
            s
        }
    }

    fn note_uses(&mut self, op: &Op) {
        match op {
            Op::Sinusoidal { .. } => self.uses.sinusoidal = true,
            Op::Conv { time, .. } if *time != TimeChannel::None => {
                self.uses.concat = true;
                if *time == TimeChannel::Positional {
                    self.uses.positional = true;
                }
            }
            Op::Norm {
                kind: NormKind::Batch,
                ..
            } => self.uses.batch = true,
            Op::Attention { norm, .. } => {
                self.uses.attention = true;
                if matches!(norm, NormKind::Batch) {
                    self.uses.batch = true;
                }
            }
            Op::Inject {
                mode: InjectMode::Positional,
                ..
            } => self.uses.positional = true,
            Op::ScaleShift { .. } => self.uses.scale_shift = true,
            Op::Ode { .. } => self.uses.ode = true,
            _ => {}
        }
    }

    /// Builds the classes of every block instance and ODE function in `gi` (innermost first);
    /// returns what each instance became and the ODE classes by node.
    #[allow(clippy::type_complexity)]
    fn instances(
        &mut self,
        gi: &GraphInfo,
    ) -> R<(HashMap<usize, InstClass>, HashMap<NodeId, String>)> {
        let g = gi.g;
        let time_name = py_ident(&self.model.time.name);
        // ODE functions first: they are leaves from this graph's point of view.
        let mut ode: HashMap<NodeId, String> = HashMap::new();
        for (id, n) in g.nodes.iter().enumerate() {
            if let Op::Ode {
                func,
                t0,
                t1,
                solver,
            } = &n.op
            {
                let cls = self.ode_classes(func, &n.name, *t0, *t1, *solver)?;
                ode.insert(id, cls);
            }
        }
        let mut done: HashMap<usize, InstClass> = HashMap::new();
        let mut order: Vec<usize> = (0..gi.insts.len()).collect();
        let depth = |mut i: usize| {
            let mut d = 0;
            while let Some(p) = gi.insts[i].parent {
                d += 1;
                i = p;
            }
            d
        };
        order.sort_by_key(|&i| std::cmp::Reverse(depth(i)));
        // Group by (definition, depth) so that the instances of one block share classes.
        let mut groups: Vec<(&str, usize, Vec<usize>)> = Vec::new();
        for i in order {
            let (block, d) = (gi.insts[i].block.as_str(), depth(i));
            match groups
                .iter_mut()
                .find(|(gb, gdep, _)| *gb == block && *gdep == d)
            {
                Some((_, _, v)) => v.push(i),
                None => groups.push((block, d, vec![i])),
            }
        }
        for (block, _, members) in groups {
            let def_ast = self.src.def(block)?;
            let main = py_ident(
                def_ast
                    .inputs
                    .first()
                    .map(|p| p.name.name.as_str())
                    .unwrap_or("h"),
            );
            // Scope and signature per instance.
            let mut scoped = Vec::new();
            for &i in &members {
                let inst = &gi.insts[i];
                let args: Vec<(NodeId, String)> = inst
                    .externals
                    .iter()
                    .map(|&e| (e, ext_name(g, e, &main, &time_name)))
                    .collect();
                let arg_names: Vec<String> = args.iter().map(|a| a.1.clone()).collect();
                let mut dedup = HashSet::new();
                if arg_names.iter().any(|a| !dedup.insert(a.clone())) {
                    return err(format!(
                        "block instance `{}` reads two values that both map to one argument",
                        inst.prefix
                    ));
                }
                let sc = build_scope(gi, Some(i), args, inst.output);
                scoped.push((i, sc));
            }
            // Partition into structurally compatible classes.
            let mut classes: Vec<Vec<usize>> = Vec::new(); // indexes into scoped
            let sigs: Vec<Vec<String>> = scoped
                .iter()
                .map(|(_, sc)| self.scope_sigs(gi, sc, &done, &ode))
                .collect();
            for k in 0..scoped.len() {
                let mut placed = false;
                for c in classes.iter_mut() {
                    if merge_plan(&sigs[c[0]], &sigs[k], &scoped[c[0]].1, &scoped[k].1).is_some()
                        || merge_plan(&sigs[k], &sigs[c[0]], &scoped[k].1, &scoped[c[0]].1)
                            .is_some()
                    {
                        c.push(k);
                        placed = true;
                        break;
                    }
                }
                if !placed {
                    classes.push(vec![k]);
                }
            }
            for c in classes {
                // The representative has the most units.
                let rep = *c
                    .iter()
                    .max_by_key(|&&k| scoped[k].1.units.len())
                    .unwrap_or(&c[0]);
                let members: Vec<&Scope> = c.iter().map(|&k| &scoped[k].1).collect();
                let rep_scope = &scoped[rep].1;
                let mut optional: HashSet<String> = HashSet::new();
                for &k in &c {
                    if let Some(opt) = merge_plan(&sigs[rep], &sigs[k], rep_scope, &scoped[k].1) {
                        optional.extend(opt);
                    }
                }
                let name = self.fresh_class_name(&def_ast.name.name);
                let doc = block_doc(def_ast);
                let (params, init, forward, args_per) =
                    self.render_class(gi, rep_scope, &members, &optional, &done, &ode, None)?;
                self.classes.push(Class {
                    name: name.clone(),
                    base: "nn.Module".into(),
                    doc,
                    params,
                    init,
                    methods: vec![forward],
                });
                for (j, &k) in c.iter().enumerate() {
                    done.insert(
                        scoped[k].0,
                        InstClass {
                            class: name.clone(),
                            args: args_per[j].clone(),
                        },
                    );
                }
            }
        }
        Ok((done, ode))
    }

    fn scope_sigs(
        &self,
        gi: &GraphInfo,
        sc: &Scope,
        done: &HashMap<usize, InstClass>,
        ode: &HashMap<NodeId, String>,
    ) -> Vec<String> {
        let pos: HashMap<NodeId, String> = sc
            .units
            .iter()
            .map(|u| (u.out, u.path.clone()))
            .chain(sc.args.iter().map(|(id, n)| (*id, format!("arg:{n}"))))
            .collect();
        sc.units
            .iter()
            .map(|u| {
                let refs: Vec<String> = u
                    .inputs
                    .iter()
                    .map(|i| pos.get(i).cloned().unwrap_or_else(|| "?".into()))
                    .collect();
                self.unit_sig(gi, u, &refs, done, ode)
            })
            .collect()
    }

    /// Builds the class(es) of an ODE function and the ODE block around it; returns the ODE
    /// block's class name.
    fn ode_classes(
        &mut self,
        func: &OdeFunc,
        name: &str,
        t0: f64,
        t1: f64,
        solver: Solver,
    ) -> R<String> {
        let gi = GraphInfo::new(&func.graph, name);
        let (done, ode) = self.instances(&gi)?;
        let def = self.src.def(&func.block)?;
        let def_name = def.name.name.clone();
        let main = def
            .inputs
            .first()
            .map(|p| py_ident(&p.name.name))
            .unwrap_or_else(|| "h".into());
        let time_name = py_ident(&self.model.time.name);
        let args = vec![(func.time, time_name.clone()), (func.input, main.clone())];
        let sc = build_scope(&gi, None, args, func.output);
        let sigs = self.scope_sigs(&gi, &sc, &done, &ode);
        let (_, init, forward, _) =
            self.render_class(&gi, &sc, &[&sc], &HashSet::new(), &done, &ode, None)?;
        let fkey = format!("{def_name}|{}|{init:?}|{forward}", sigs.join(";"));
        let fname = match self.by_key.get(&fkey) {
            Some(n) => n.clone(),
            None => {
                let n = self.fresh_class_name(&def_name);
                let def_doc = block_doc(def);
                self.classes.push(Class {
                    name: n.clone(),
                    base: "nn.Module".into(),
                    doc: format!("{def_doc} The right-hand side f(t, h) of an ODE."),
                    params: Vec::new(),
                    init,
                    methods: vec![forward],
                });
                self.by_key.insert(fkey.clone(), n.clone());
                n
            }
        };
        let solver_py = match solver {
            Solver::Euler { steps } => format!("dict(method=\"euler\", steps={steps})"),
            Solver::Rk4 { steps } => format!("dict(method=\"rk4\", steps={steps})"),
            Solver::Dopri5 { rtol, atol } => format!(
                "dict(method=\"dopri5\", rtol={}, atol={})",
                py_float(rtol),
                py_float(atol)
            ),
        };
        let okey = format!("{fname}|{t0}|{t1}|{solver_py}");
        if let Some(n) = self.by_key.get(&okey) {
            return Ok(n.clone());
        }
        let n = self.fresh_class_name(&format!("{fname}_ODE"));
        self.by_key.insert(okey, n.clone());
        let forward = format!(
            "    def forward(self, {main}):\n        return solve_ode(super().forward, {main}, {}, {}, self.solver)\n",
            py_float(t0),
            py_float(t1)
        );
        self.classes.push(Class {
            name: n.clone(),
            base: fname.clone(),
            doc: format!(
                "`ode({def_name}, t = [{t0}, {t1}], solver = {})`: the state at\n    t = {t1} of h' = f(t, h) with h({t0}) = the input.",
                solver_desc(solver)
            ),
            params: Vec::new(),
            init: vec![format!("self.solver = {solver_py}")],
            methods: vec![forward],
        });
        Ok(n)
    }

    /// Renders a class from its representative scope: constructor parameters, `__init__` body,
    /// `forward`, and the constructor arguments of each member instance.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn render_class(
        &mut self,
        gi: &GraphInfo,
        rep: &Scope,
        members: &[&Scope],
        optional: &HashSet<String>,
        done: &HashMap<usize, InstClass>,
        ode: &HashMap<NodeId, String>,
        _unused: Option<()>,
    ) -> R<(Vec<String>, Vec<String>, String, Vec<Vec<String>>)> {
        let g = gi.g;
        let ins: Vec<Option<usize>> = members.iter().map(|m| m.in_ch).collect();
        let outs: Vec<Option<usize>> = members.iter().map(|m| m.out_ch).collect();
        let mut params: Vec<String> = Vec::new();
        let mut per_args: Vec<Vec<String>> = vec![Vec::new(); members.len()];
        let mut use_in = false;
        let mut use_out = false;
        let mut extra: Vec<(String, Vec<String>)> = Vec::new();
        // Field expressions per unit path.
        let mut exprs: HashMap<String, Vec<String>> = HashMap::new();
        let multi = members.len() > 1;
        for u in &rep.units {
            let fl = self.unit_fields(gi, u, done);
            let mut es = Vec::new();
            for (k, (fname, _)) in fl.iter().enumerate() {
                let mut vals = Vec::new();
                let mut mins = Vec::new();
                let mut mouts = Vec::new();
                for (mi, m) in members.iter().enumerate() {
                    if let Some(mu) = m.units.iter().find(|x| x.path == u.path) {
                        let f = self.unit_fields(gi, mu, done);
                        if let Some((_, v)) = f.get(k) {
                            vals.push(v.clone());
                            mins.push(ins[mi]);
                            mouts.push(outs[mi]);
                        }
                    }
                }
                let e = if !multi {
                    vals.first().cloned().unwrap_or_default()
                } else {
                    match field_expr(&vals, &mins, &mouts) {
                        Some(e) => e,
                        None => {
                            let pname = py_ident(fname);
                            let all: Vec<String> = members
                                .iter()
                                .map(|m| {
                                    m.units
                                        .iter()
                                        .find(|x| x.path == u.path)
                                        .and_then(|mu| {
                                            self.unit_fields(gi, mu, done)
                                                .get(k)
                                                .map(|x| x.1.clone())
                                        })
                                        .unwrap_or_else(|| "None".into())
                                })
                                .collect();
                            extra.push((pname.clone(), all));
                            pname
                        }
                    }
                };
                use_in |= e.contains("in_ch");
                use_out |= e.contains("out_ch");
                es.push(e);
            }
            exprs.insert(u.path.clone(), es);
        }
        // Optional layers: present exactly when in_ch != out_ch, or a flag.
        let mut opt_cond: HashMap<String, String> = HashMap::new();
        for p in optional {
            let present: Vec<bool> = members
                .iter()
                .map(|m| m.units.iter().any(|x| &x.path == p))
                .collect();
            let differs: Vec<bool> = members.iter().map(|m| m.in_ch != m.out_ch).collect();
            if present == differs {
                use_in = true;
                use_out = true;
                opt_cond.insert(p.clone(), "in_ch != out_ch".into());
            } else {
                let pname = py_ident(p);
                extra.push((
                    pname.clone(),
                    present
                        .iter()
                        .map(|b| if *b { "True" } else { "False" }.to_string())
                        .collect(),
                ));
                opt_cond.insert(p.clone(), pname);
            }
        }
        if multi {
            if use_in {
                params.push("in_ch".into());
                for (mi, m) in members.iter().enumerate() {
                    per_args[mi].push(m.in_ch.unwrap_or(0).to_string());
                }
            }
            if use_out {
                params.push("out_ch".into());
                for (mi, m) in members.iter().enumerate() {
                    per_args[mi].push(m.out_ch.unwrap_or(0).to_string());
                }
            }
            for (p, vals) in &extra {
                params.push(p.clone());
                for (mi, v) in vals.iter().enumerate() {
                    per_args[mi].push(v.clone());
                }
            }
        }
        // Module tree.
        let mut tree = Tree::new();
        let mut ctors: Vec<(String, Ctor)> = Vec::new();
        for u in &rep.units {
            let es = exprs.get(&u.path).cloned().unwrap_or_default();
            let c = match &u.kind {
                UnitKind::Node(id) => {
                    let op = &g.nodes[*id].op;
                    self.note_uses(op);
                    if !has_module(op) {
                        continue;
                    }
                    let s = ctor(op, &es, ode.get(id).map(String::as_str));
                    let tagged = self.time_tagged(gi, *id);
                    Ctor::Plain(self.wrap_time(tagged, s))
                }
                UnitKind::Inst(i) => {
                    let c = done.get(i).map(|c| c.class.clone()).unwrap_or_default();
                    Ctor::Plain(format!("{c}({})", es.join(", ")))
                }
                UnitKind::Seq(elems) => {
                    let mut items = Vec::new();
                    let mut k = 0;
                    for e in elems {
                        match e {
                            Elem::Node(id) => {
                                let op = &g.nodes[*id].op;
                                self.note_uses(op);
                                let nf = fields(op).len();
                                let s = ctor(op, &es[k..k + nf], ode.get(id).map(String::as_str));
                                k += nf;
                                let tagged = self.time_tagged(gi, *id);
                                items.push(self.wrap_time(tagged, s));
                            }
                            Elem::Inst { inst } => {
                                let (c, na) = done
                                    .get(inst)
                                    .map(|c| (c.class.clone(), c.args.len()))
                                    .unwrap_or_default();
                                items.push(format!("{c}({})", es[k..k + na].join(", ")));
                                k += na;
                            }
                        }
                    }
                    Ctor::Seq(items)
                }
            };
            ctors.push((u.path.clone(), c));
        }
        for (path, c) in ctors {
            let comps: Vec<&str> = path.split('.').collect();
            tree.insert(&comps, c)?;
        }
        let mut init = Vec::new();
        if let Tree::Dir(map, order) = &tree {
            for k in order {
                if !safe_attr(k) {
                    return err(format!(
                        "the layer name `{k}` cannot be a PyTorch submodule name; rename it with `as`"
                    ));
                }
                let body = map[k].render(8);
                match opt_cond.get(k) {
                    Some(cond) => init.push(format!("self.{k} = {body} if {cond} else None")),
                    None => init.push(format!("self.{k} = {body}")),
                }
            }
        }
        for p in optional {
            if p.contains('.') {
                return err(format!(
                    "optional layer `{p}` must be a direct member of its block"
                ));
            }
        }
        let forward = self.render_forward(gi, rep, &tree, optional)?;
        let per_args = if multi {
            per_args
        } else {
            vec![Vec::new(); members.len()]
        };
        Ok((params, init, forward, per_args))
    }

    fn render_forward(
        &mut self,
        gi: &GraphInfo,
        sc: &Scope,
        tree: &Tree,
        optional: &HashSet<String>,
    ) -> R<String> {
        let g = gi.g;
        let n_units = sc.units.len();
        let unit_of: HashMap<NodeId, usize> = sc
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.out, i))
            .collect();
        let arg_of: HashMap<NodeId, String> = sc.args.iter().cloned().collect();
        // Liveness from the output backwards.
        let mut live = vec![false; n_units];
        if let Some(&o) = unit_of.get(&sc.output) {
            live[o] = true;
        }
        for i in (0..n_units).rev() {
            if !live[i] {
                continue;
            }
            for inp in &sc.units[i].inputs {
                if let Some(&j) = unit_of.get(inp) {
                    live[j] = true;
                }
            }
        }
        // Consumers (with multiplicity) among live units.
        let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n_units];
        for (i, u) in sc.units.iter().enumerate() {
            if !live[i] {
                continue;
            }
            for inp in &u.inputs {
                if let Some(&j) = unit_of.get(inp) {
                    consumers[j].push(i);
                }
            }
        }
        let out_unit = unit_of.get(&sc.output).copied();
        let live_order: Vec<usize> = (0..n_units).filter(|&i| live[i]).collect();
        let next_live = |i: usize| live_order.iter().copied().find(|&j| j > i);
        let stmt_of = |i: usize| -> Span { g.nodes[sc.units[i].out].stmt_span };
        let mut inline = vec![false; n_units];
        for &i in &live_order {
            let u = &sc.units[i];
            let UnitKind::Node(id) = u.kind else { continue };
            if matches!(g.nodes[id].op, Op::Ode { .. }) {
                continue;
            }
            if Some(i) == out_unit {
                inline[i] = consumers[i].is_empty() && next_live(i).is_none();
                continue;
            }
            if consumers[i].len() != 1 {
                continue;
            }
            // Inline into the consumer when both come from one spec statement (a block call's
            // statement is its caller's: inline into it when it comes right next).
            let c = consumers[i][0];
            let c_is_inst = matches!(sc.units[c].kind, UnitKind::Inst(_));
            if stmt_of(c) == stmt_of(i) || (c_is_inst && next_live(i) == Some(c)) {
                inline[i] = true;
            }
        }
        // Where each unit's value is finally emitted.
        let mut emit_at: Vec<usize> = (0..n_units).collect();
        for &i in live_order.iter().rev() {
            if inline[i] {
                if let Some(&c) = consumers[i].first() {
                    emit_at[i] = emit_at[c];
                }
            }
        }
        let last_use = |i: usize| -> usize {
            consumers[i]
                .iter()
                .map(|&c| emit_at[c])
                .max()
                .unwrap_or(usize::MAX)
        };
        let mut holder: HashMap<String, Option<usize>> = HashMap::new();
        for (_, a) in &sc.args {
            holder.insert(a.clone(), None);
        }
        let mut var: HashMap<usize, String> = HashMap::new();
        let mut exprs: HashMap<usize, PyExpr> = HashMap::new();
        let mut lines: Vec<String> = Vec::new();
        let mut returned = false;
        let arg_last_use = |id: NodeId| -> usize {
            sc.units
                .iter()
                .enumerate()
                .filter(|(i, u)| live[*i] && u.inputs.contains(&id))
                .map(|(i, _)| emit_at[i])
                .max()
                .unwrap_or(0)
        };
        for &i in &live_order {
            let u = &sc.units[i];
            let ins: Vec<PyExpr> = u
                .inputs
                .iter()
                .map(|inp| {
                    if let Some(a) = arg_of.get(inp) {
                        atom(a.clone())
                    } else if let Some(&j) = unit_of.get(inp) {
                        match (exprs.remove(&j), var.get(&j)) {
                            (Some(e), _) => e,
                            (None, Some(v)) => atom(v.clone()),
                            _ => atom("None".into()),
                        }
                    } else {
                        atom("None".into())
                    }
                })
                .collect();
            let comps: Vec<&str> = u.path.split('.').collect();
            let m = tree.access(&comps);
            let mut e = match &u.kind {
                UnitKind::Node(id) => node_expr(&g.nodes[*id], &m, &ins, g),
                UnitKind::Seq(_) | UnitKind::Inst(_) => atom(format!(
                    "{m}({})",
                    ins.iter()
                        .map(|x| x.text.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            if optional.contains(&u.path) {
                let x = ins.first().map(|x| x.text.clone()).unwrap_or_default();
                e = atom(format!("({x} if {m} is None else {})", e.text));
            }
            if inline[i] {
                if Some(i) == out_unit {
                    lines.push(format!("return {}", e.text));
                    returned = true;
                } else {
                    exprs.insert(i, e);
                }
                continue;
            }
            if Some(i) == out_unit && next_live(i).is_none() && consumers[i].is_empty() {
                lines.push(format!("return {}", e.text));
                returned = true;
                continue;
            }
            // Choose a variable.
            let target = match u.kind {
                UnitKind::Node(_) | UnitKind::Seq(_) => self.src.target(stmt_of(i)).map(py_ident),
                UnitKind::Inst(_) => None,
            };
            let free = |name: &str, holder: &HashMap<String, Option<usize>>| -> bool {
                match holder.get(name) {
                    None => true,
                    Some(Some(j)) => last_use(*j) <= i,
                    Some(None) => sc
                        .args
                        .iter()
                        .find(|(_, a)| a == name)
                        .map(|(id, _)| arg_last_use(*id) <= i)
                        .unwrap_or(true),
                }
            };
            let path_name = py_ident(&u.path);
            let candidates: Vec<String> = if consumers[i].len() > 1 {
                vec![path_name.clone()]
            } else {
                vec![
                    target.clone().unwrap_or_else(|| "h".into()),
                    path_name.clone(),
                ]
            };
            let mut chosen = None;
            for c in &candidates {
                if free(c, &holder) {
                    chosen = Some(c.clone());
                    break;
                }
            }
            let name = match chosen {
                Some(c) => c,
                None => {
                    let mut k = 2;
                    loop {
                        let c = format!("{path_name}_{k}");
                        if free(&c, &holder) {
                            break c;
                        }
                        k += 1;
                    }
                }
            };
            lines.push(format!("{name} = {}", e.text));
            holder.insert(name.clone(), Some(i));
            var.insert(i, name);
        }
        if !returned {
            let r = if let Some(a) = arg_of.get(&sc.output) {
                a.clone()
            } else if let Some(o) = out_unit {
                var.get(&o).cloned().unwrap_or_else(|| "None".into())
            } else {
                "None".into()
            };
            lines.push(format!("return {r}"));
        }
        let sig: Vec<String> = sc.args.iter().map(|a| a.1.clone()).collect();
        let mut s = format!("    def forward(self, {}):\n", sig.join(", "));
        for l in lines {
            let _ = writeln!(s, "        {l}");
        }
        Ok(s)
    }
}

/// Whether `small` is `big` with some single-input layers left out (its optional layers);
/// returns their paths.
fn merge_plan(big: &[String], small: &[String], bs: &Scope, ss: &Scope) -> Option<Vec<String>> {
    if big.len() < small.len() {
        return None;
    }
    let mut j = 0;
    let mut skipped: HashMap<String, String> = HashMap::new();
    let mut optional = Vec::new();
    for (k, sig) in big.iter().enumerate() {
        let u = &bs.units[k];
        let matches_small = j < small.len() && {
            let mut s = sig.clone();
            for (from, to) in &skipped {
                s = s.replace(&format!("({from})"), &format!("({to})"));
                s = s.replace(&format!("({from},"), &format!("({to},"));
                s = s.replace(&format!(",{from})"), &format!(",{to})"));
                s = s.replace(&format!(",{from},"), &format!(",{to},"));
            }
            s == small[j]
        };
        if matches_small {
            j += 1;
            continue;
        }
        // Skippable: a one-input layer whose path the small scope does not have.
        if u.inputs.len() != 1 || ss.units.iter().any(|x| x.path == u.path) {
            return None;
        }
        let UnitKind::Node(_) = u.kind else {
            return None;
        };
        let input_ref = bs
            .units
            .iter()
            .find(|x| x.out == u.inputs[0])
            .map(|x| x.path.clone())
            .or_else(|| {
                bs.args
                    .iter()
                    .find(|a| a.0 == u.inputs[0])
                    .map(|a| format!("arg:{}", a.1))
            })?;
        skipped.insert(u.path.clone(), input_ref);
        optional.push(u.path.clone());
    }
    if j == small.len() {
        Some(optional)
    } else {
        None
    }
}

fn solver_desc(s: Solver) -> String {
    match s {
        Solver::Euler { steps } => format!("euler(steps = {steps})"),
        Solver::Rk4 { steps } => format!("rk4(steps = {steps})"),
        Solver::Dopri5 { rtol, atol } => format!("dopri5(rtol = {rtol}, atol = {atol})"),
    }
}

fn block_doc(d: &BlockDef) -> String {
    let params: Vec<&str> = d.params.iter().map(|p| p.name.name.as_str()).collect();
    let inputs: Vec<&str> = d.inputs.iter().map(|p| p.name.name.as_str()).collect();
    if params.is_empty() {
        format!("`block {}({})`.", d.name.name, inputs.join(", "))
    } else {
        format!(
            "`block {}({})({})`.",
            d.name.name,
            params.join(", "),
            inputs.join(", ")
        )
    }
}

fn render_class(c: &Class) -> String {
    let mut s = format!(
        "class {}({}):\n    \"\"\"{}\"\"\"\n\n",
        c.name, c.base, c.doc
    );
    let mut params = vec!["self".to_string()];
    params.extend(c.params.iter().cloned());
    let _ = writeln!(s, "    def __init__({}):", params.join(", "));
    let _ = writeln!(s, "        super().__init__()");
    for l in &c.init {
        let _ = writeln!(s, "        {l}");
    }
    for m in &c.methods {
        s.push('\n');
        s.push_str(m);
    }
    s
}

fn section(name: &str) -> String {
    let marker = format!("# ---- section: {name} ----\n");
    let Some(start) = HELPERS.find(&marker) else {
        return String::new();
    };
    let body = &HELPERS[start + marker.len()..];
    let end = body.find("# ---- section:").unwrap_or(body.len());
    body[..end].trim_end().to_string() + "\n"
}

fn bias_rule(b: BiasInit) -> String {
    match b {
        BiasInit::Default => "None".into(),
        BiasInit::Zero => "(\"constant\", 0.0)".into(),
        BiasInit::Constant { value } => format!("(\"constant\", {})", py_float(value)),
        BiasInit::Normal { std } => format!("(\"normal\", {})", py_float(std)),
    }
}

fn bias_text(b: BiasInit) -> String {
    match b {
        BiasInit::Default => "PyTorch's default".into(),
        BiasInit::Zero => "zero".into(),
        BiasInit::Constant { value } => format!("constant({value})"),
        BiasInit::Normal { std } => format!("normal({std})"),
    }
}

/// The text of `model.py`.
pub fn model_py(file: &ast::File, model: &ModelIr) -> R<String> {
    let Some(am) = file.models.iter().find(|m| m.name.name == model.name) else {
        return err(format!("model `{}` is not in the parsed file", model.name));
    };
    let mut em = Emitter {
        src: Source::new(am),
        model,
        classes: Vec::new(),
        by_key: HashMap::new(),
        names: HashSet::new(),
        uses: Uses::default(),
    };
    let top_name = camel(&model.name);
    em.names.insert(top_name.clone());
    let gi = GraphInfo::new(&model.graph, "");
    let (done, ode) = em.instances(&gi)?;
    let input_id = model
        .graph
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::Input));
    let time_id = model
        .graph
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::Time));
    let mut args = Vec::new();
    if let Some(i) = input_id {
        args.push((i, py_ident(&model.input.name)));
    }
    if let Some(t) = time_id {
        args.push((t, py_ident(&model.time.name)));
    }
    let sc = build_scope(&gi, None, args, model.output);
    let (_, init, forward, _) =
        em.render_class(&gi, &sc, &[&sc], &HashSet::new(), &done, &ode, None)?;
    em.classes.push(Class {
        name: top_name.clone(),
        base: "nn.Module".into(),
        doc: format!(
            "model {}: {} parameters, as `tdspec check` counts them.",
            model.name,
            thousands(model.param_count())
        ),
        params: Vec::new(),
        init,
        methods: vec![forward],
    });

    let mut s = String::new();
    let _ = writeln!(
        s,
        "\"\"\"Model `{}`, generated by `tdspec emit --target pytorch` from spec.tds.\n",
        model.name
    );
    let _ = writeln!(
        s,
        "The layers, their order and their names follow the spec: `state_dict()` keys are tdspec's\nparameter names, so tdspec checkpoints load with `load_tdspec_checkpoint` and checkpoints\nsaved by train.py load back into tdspec. `build_model()` applies the spec's initialization.\n\"\"\""
    );
    s.push_str(
        "\nimport math\n\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n",
    );
    if em.uses.ode {
        s.push_str("from torchdiffeq import odeint\n");
    }
    s.push('\n');
    let u = &em.uses;
    let mut helpers: Vec<&str> = Vec::new();
    if u.sinusoidal {
        helpers.push("timestep_embedding");
    }
    if u.positional {
        helpers.push("positional_pattern");
    }
    if u.concat {
        helpers.push("concat_conv");
    }
    if u.batch {
        helpers.push("batch_norm");
    }
    if u.attention {
        helpers.push("attention");
    }
    if u.scale_shift {
        helpers.push("scale_shift");
    }
    if u.ode {
        helpers.push("solve_ode");
    }
    helpers.push("checkpoint");
    for h in helpers {
        s.push('\n');
        s.push_str(&section(h));
        s.push('\n');
    }
    if em.uses.time_tags {
        s.push_str("\ndef time_branch(layer):\n    \"\"\"Marks a layer on the time branch (its bias follows the time bias policy).\"\"\"\n    layer.time_branch = True\n    return layer\n\n");
    }
    for c in &em.classes {
        s.push('\n');
        s.push_str(&render_class(c));
        s.push('\n');
    }
    // Metadata and the builder.
    let (c, h, w) = (model.input.channels, model.input.height, model.input.width);
    s.push('\n');
    let _ = writeln!(s, "INPUT_SHAPE = ({c}, {h}, {w})");
    let _ = writeln!(
        s,
        "TAKES_TIME = {}",
        if time_id.is_some() { "True" } else { "False" }
    );
    let _ = writeln!(s, "PARAMETERS = {}", model.param_count());
    let b = model.bias;
    let _ = writeln!(
        s,
        "# bias = {{ operand: {}, time: {} }}",
        bias_text(b.operand),
        bias_text(b.time)
    );
    let _ = writeln!(
        s,
        "BIAS_POLICY = {{\"operand\": {}, \"time\": {}}}",
        bias_rule(b.operand),
        bias_rule(b.time)
    );
    s.push_str(&format!(
        r#"

def apply_bias_policy(model):
    """Initializes the biases of convolutions and linear layers as the spec's bias policy says
    (normalization shifts stay 0); weights keep PyTorch's default initialization, as in tdspec."""
    for layer in model.modules():
        if not isinstance(layer, (nn.Conv2d, nn.Linear)) or layer.bias is None:
            continue
        rule = BIAS_POLICY["time" if getattr(layer, "time_branch", False) else "operand"]
        with torch.no_grad():
            if rule is None:
                continue
            if rule[0] == "constant":
                layer.bias.fill_(rule[1])
            else:
                layer.bias.normal_(0.0, rule[1])


def build_model():
    """The model with the spec's initialization."""
    model = {top_name}()
    apply_bias_policy(model)
    return model
"#
    ));
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// train.py and README.md

fn train_config(model: &ModelIr) -> String {
    let mut s = String::new();
    let t = &model.train;
    let _ = writeln!(s, "MODEL_NAME = {:?}", model.name);
    match &model.task {
        Some(Task::Classify { classes }) => {
            let _ = writeln!(
                s,
                "TASK = {{\"kind\": \"classify\", \"classes\": {classes}}}"
            );
        }
        Some(Task::Denoise { schedule, predict }) => {
            let sched = match schedule {
                Schedule::Linear {
                    beta_start,
                    beta_end,
                    steps,
                } => format!(
                    "{{\"kind\": \"linear\", \"beta_start\": {}, \"beta_end\": {}, \"steps\": {steps}}}",
                    py_float(*beta_start),
                    py_float(*beta_end)
                ),
                Schedule::Cosine { steps } => {
                    format!("{{\"kind\": \"cosine\", \"steps\": {steps}}}")
                }
            };
            let _ = writeln!(
                s,
                "TASK = {{\"kind\": \"denoise\", \"schedule\": {sched}, \"predict\": {predict:?}}}"
            );
        }
        None => {
            let _ = writeln!(s, "TASK = None");
        }
    }
    let opt = match t.optimizer {
        Optimizer::Sgd {
            lr,
            momentum,
            weight_decay,
        } => format!(
            "{{\"kind\": \"sgd\", \"lr\": {}, \"momentum\": {}, \"weight_decay\": {}}}",
            py_float(lr),
            py_float(momentum),
            py_float(weight_decay)
        ),
        Optimizer::Adam {
            lr,
            beta1,
            beta2,
            weight_decay,
        } => format!(
            "{{\"kind\": \"adam\", \"lr\": {}, \"betas\": ({}, {}), \"weight_decay\": {}}}",
            py_float(lr),
            py_float(beta1),
            py_float(beta2),
            py_float(weight_decay)
        ),
    };
    let sched = match &t.schedule {
        LrSchedule::Constant => "{\"kind\": \"constant\"}".to_string(),
        LrSchedule::Step { milestones, gamma } => format!(
            "{{\"kind\": \"step\", \"milestones\": {milestones:?}, \"gamma\": {}}}",
            py_float(*gamma)
        ),
        LrSchedule::Cosine => "{\"kind\": \"cosine\"}".to_string(),
    };
    let opt_num = |v: Option<usize>| v.map(|x| x.to_string()).unwrap_or_else(|| "None".into());
    let opt_f = |v: Option<f64>| v.map(py_float).unwrap_or_else(|| "None".into());
    let _ = writeln!(
        s,
        "TRAIN = {{\n    \"optimizer\": {opt},\n    \"warmup\": {},\n    \"batch\": {},\n    \"epochs\": {},\n    \"steps\": {},\n    \"grad_clip\": {},\n    \"ema\": {},\n    \"schedule\": {sched},\n}}",
        t.warmup,
        t.batch,
        opt_num(t.epochs),
        opt_num(t.steps),
        opt_f(t.grad_clip),
        opt_f(t.ema)
    );
    s
}

fn train_py(model: &ModelIr) -> String {
    TRAIN
        .replace("{{MODEL_NAME}}", &model.name)
        .replace("# {{CONFIG}}\n", &train_config(model))
}

fn readme(model: &ModelIr) -> String {
    let data = if model.input.channels == 3 {
        "cifar10:/data/cifar-10-batches-bin"
    } else {
        "mnist:/data/mnist"
    };
    let task = match &model.task {
        Some(Task::Classify { .. }) => "neural-ODE / classifier training (cross-entropy)",
        Some(Task::Denoise { .. }) => "diffusion training (DDPM epsilon prediction) and sampling",
        None => "no task (the spec declares none; train.py refuses to run)",
    };
    README
        .replace("{{MODEL_NAME}}", &model.name)
        .replace("{{PARAMS}}", &thousands(model.param_count()))
        .replace("{{TASK}}", task)
        .replace("{{DATA}}", data)
}
