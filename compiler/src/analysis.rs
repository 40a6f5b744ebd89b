//! Time-dependence abstract interpretation: a checked [`ModelIr`] in; an [`Analysis`] out that
//! says, for every node of every graph (ODE functions included), how its value depends on the
//! time input t, and, for every normalization, how much of the arriving time signal survives it
//! ([`NormVerdict`]). The lint rules read it; the runtime's dynamic probe compares its measured
//! sensitivities against the norm verdicts.
//!
//! The abstract value of a node is either "independent of t", "computed from t alone" (the time
//! input and its embedding MLP) or a list of [`Component`]s, one per place where t entered the
//! feature path (an *origin*: an injection, a ConcatConv, a scale-shift). Tracking origins
//! separately keeps the analysis exact for residual networks, where a block's fresh injection
//! meets time dependence that earlier blocks made alive: a normalization acts on each additive
//! component on its own (it is linear in the offset it subtracts).
//!
//! Transfer rules (see NOTES.md §2 for the derivation):
//! - an injection `h + Linear(e)` adds an [`ComponentKind::Offset`] over {C}; a positional
//!   injection or positional time channel an offset over {C, H, W} whose pattern is zero-mean
//!   over H, W; a ConcatConv over a constant time channel an offset over {C} with a border leak
//!   when it pads; `scale_shift` adds a [`ComponentKind::Modulation`];
//! - convolutions, linears, sums, concatenation, pooling, upsampling, dropout and flatten keep
//!   offsets (a padded convolution sets the border leak); they turn modulations alive, except
//!   the per-channel ones (dropout, pooling, upsampling);
//! - pointwise nonlinearities and attention turn every component [`ComponentKind::Alive`];
//! - a normalization removes an offset over {C} completely when its reduction unit holds one
//!   channel (instance, group with one channel per group, batch with t shared by the batch) and
//!   keeps (m - 1)/m of its energy for m channels per unit (group, layer: m = C); batch norm with
//!   per-sample t removes only the batch mean ((B - 1)/B for the training batch B). Offsets that
//!   vary over H, W and alive components pass unchanged;
//! - an ODE block is alive in t when its function's output depends on t.

use crate::ast::Span;
use crate::ir::*;
use serde::Serialize;
use std::fmt;

/// The axes along which an additive time offset varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Axes {
    pub c: bool,
    pub h: bool,
    pub w: bool,
}

impl Axes {
    pub const C: Axes = Axes {
        c: true,
        h: false,
        w: false,
    };
    pub const CHW: Axes = Axes {
        c: true,
        h: true,
        w: true,
    };
    /// Whether the offset varies over space (then no normalization removes it).
    pub fn spatial(self) -> bool {
        self.h || self.w
    }
    fn union(self, o: Axes) -> Axes {
        Axes {
            c: self.c || o.c,
            h: self.h || o.h,
            w: self.w || o.w,
        }
    }
}

impl fmt::Display for Axes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::new();
        if self.c {
            v.push("C");
        }
        if self.h {
            v.push("H");
        }
        if self.w {
            v.push("W");
        }
        write!(f, "{{{}}}", v.join(", "))
    }
}

/// How the time signal entered the feature path at an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginKind {
    /// `h + inject(e)`: a `[B, C, 1, 1]` offset.
    InjectOffset,
    /// `inject(e, positional)`: an offset map that varies over H, W.
    InjectPositional,
    /// ConcatConv over a constant `t·J` channel.
    ConcatConstant,
    /// ConcatConv over a positional `t·P(h, w)` channel.
    ConcatPositional,
    /// `scale_shift(e)`: a per-channel scale and shift.
    ScaleShift,
    /// A sum of a feature value and a value computed from t alone.
    Add,
    /// An ODE block whose function reads t only through values computed from t alone.
    Ode,
}

/// A place where t enters the feature path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    /// Node path, e.g. `down.1.res0.temb_proj` or `features.0.conv1`.
    pub path: String,
    pub kind: OriginKind,
    /// What the user wrote for the node.
    pub span: Span,
    /// Index into [`Analysis::graphs`] of the graph holding the node.
    pub graph: usize,
    pub node: NodeId,
    /// Lint codes allowed on the statements that created the node.
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ComponentKind {
    /// Additive `a(t)` varying only along `axes`.
    Offset { axes: Axes },
    /// A per-channel scale and shift by t (removed by a per-channel normalization right after).
    Modulation,
    /// Time dependence that no later normalization can remove.
    Alive,
}

/// One origin's contribution to a value's time dependence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Component {
    /// Index into [`Analysis::origins`].
    pub origin: usize,
    #[serde(flatten)]
    pub kind: ComponentKind,
    /// Whether t differs per sample (`time t: ..., per_sample`).
    pub per_sample: bool,
    /// Expected surviving fraction of the injected signal's energy so far (1 at the origin).
    pub fraction: f64,
    /// A zero-padded convolution made the offset differ on the one-pixel border ring, so a
    /// little time signal leaks past complete cancellation there.
    pub border_leak: bool,
}

/// The abstract value of one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "components", rename_all = "snake_case")]
pub enum NodeState {
    Independent,
    /// Computed from t alone (the time input, its embedding MLP).
    TimeOnly,
    /// Depends on t through these components (never empty).
    Depends(Vec<Component>),
}

impl NodeState {
    fn comps(&self) -> &[Component] {
        match self {
            NodeState::Depends(v) => v,
            _ => &[],
        }
    }
    /// Whether the value depends on t at all (a border leak counts).
    pub fn depends_on_t(&self) -> bool {
        !matches!(self, NodeState::Independent)
    }
    /// Whether the only time dependence left is the zero-padding border leak.
    pub fn leak_only(&self) -> bool {
        match self {
            NodeState::Depends(v) => v.iter().all(|c| c.fraction == 0.0 && c.border_leak),
            _ => false,
        }
    }
}

/// A node's time dependence summarized for people and the probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TimeState {
    Independent,
    TimeOnly,
    /// value = u + a(t), with a(t) varying only along `axes`.
    Offset {
        axes: Axes,
        per_sample: bool,
        fraction: f64,
        border_leak: bool,
        origins: Vec<String>,
    },
    /// A per-channel scale and shift by t that a per-channel normalization would undo.
    Modulation {
        per_sample: bool,
        fraction: f64,
        origins: Vec<String>,
    },
    /// Time dependence no later normalization can remove.
    Alive {
        fraction: f64,
        border_leak: bool,
        origins: Vec<String>,
    },
}

/// What happened to one arriving component at a normalization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentVerdict {
    /// Path of the origin node.
    pub origin: String,
    pub origin_kind: OriginKind,
    #[serde(skip)]
    pub origin_index: usize,
    #[serde(flatten)]
    pub kind: ComponentKind,
    pub fraction_in: f64,
    pub fraction_out: f64,
    /// The fraction of the arriving energy this norm keeps (`fraction_out / fraction_in`).
    pub factor: f64,
    /// Removed completely (up to a border leak).
    pub complete: bool,
    pub border_leak: bool,
}

/// The static verdict at one normalization: what arrives, what survives and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NormVerdict {
    /// Path of the graph: "" for the model, the ODE node's path for an ODE function.
    pub graph: String,
    /// Path of the norm node, e.g. `down.0.res0.norm2`.
    pub node: String,
    pub span: Span,
    pub kind: NormKind,
    pub channels: usize,
    /// Channels per reduction unit (m): 1 for instance and batch, C/G for group, C for layer.
    pub channels_per_unit: usize,
    /// Whether t differs per sample.
    pub per_sample: bool,
    pub input: TimeState,
    pub output: TimeState,
    /// Predicted surviving fraction of the removable time signal (offsets, modulations)
    /// through this norm: the smallest factor over the arriving components, 1 when only alive
    /// or spatially varying signal arrives; `None` when the input does not depend on t.
    pub survival: Option<f64>,
    /// Some arriving offset or modulation is removed completely.
    pub complete: bool,
    /// A completely removed offset still leaks through the zero-padding border ring.
    pub border_leak: bool,
    pub components: Vec<ComponentVerdict>,
    /// One line on why, for people.
    pub explanation: String,
}

/// An operand-branch bias whose every path ends in a normalization that removes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BiasCancel {
    pub graph: usize,
    /// The layer owning the bias.
    pub node: NodeId,
    pub path: String,
    pub span: Span,
    /// The canceling normalizations (paths and spans).
    pub norms: Vec<(String, Span)>,
    pub allow: Vec<String>,
}

/// Per-node states of one graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphAnalysis {
    /// "" for the model graph, the ODE node's path for an ODE function.
    pub path: String,
    /// Index of the enclosing graph and node (ODE functions).
    pub parent: Option<(usize, NodeId)>,
    /// The graph's output node (the model's output, the ODE function's derivative).
    pub output: Option<NodeId>,
    pub states: Vec<NodeState>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The model graph first, then ODE functions in the order they were reached.
    pub graphs: Vec<GraphAnalysis>,
    pub origins: Vec<Origin>,
    pub norms: Vec<NormVerdict>,
    pub biases: Vec<BiasCancel>,
    /// The model output's state.
    pub output: NodeState,
}

impl Analysis {
    /// Whether the model's output depends on t beyond the zero-padding border leak.
    pub fn output_sees_t(&self) -> bool {
        self.output.depends_on_t() && !self.output.leak_only()
    }
    /// The summarized state of a component list.
    pub fn summarize(&self, s: &NodeState) -> TimeState {
        summarize(&self.origins, s)
    }
    /// The node states of the graph at `path` ("" for the model).
    pub fn graph(&self, path: &str) -> Option<&GraphAnalysis> {
        self.graphs.iter().find(|g| g.path == path)
    }
    /// The verdict at the norm with this node path.
    pub fn norm(&self, path: &str) -> Option<&NormVerdict> {
        self.norms.iter().find(|n| n.node == path)
    }
}

/// Runs the analysis on a checked model.
pub fn analyze(m: &ModelIr) -> Analysis {
    let mut a = Analyzer {
        per_sample: m.time.sharing == Sharing::PerSample,
        batch: m.train.batch.max(1),
        graphs: Vec::new(),
        origins: Vec::new(),
        norms: Vec::new(),
        biases: Vec::new(),
    };
    let out = a.graph(&m.graph, String::new(), None, Some(m.output));
    let output = a.graphs[out]
        .states
        .get(m.output)
        .cloned()
        .unwrap_or(NodeState::Independent);
    Analysis {
        graphs: a.graphs,
        origins: a.origins,
        norms: a.norms,
        biases: a.biases,
        output,
    }
}

struct Analyzer {
    per_sample: bool,
    batch: usize,
    graphs: Vec<GraphAnalysis>,
    origins: Vec<Origin>,
    norms: Vec<NormVerdict>,
    biases: Vec<BiasCancel>,
}

impl Analyzer {
    /// Analyzes a graph; returns its index in `self.graphs`.
    fn graph(
        &mut self,
        g: &Graph,
        path: String,
        parent: Option<(usize, NodeId)>,
        output: Option<NodeId>,
    ) -> usize {
        let gi = self.graphs.len();
        self.graphs.push(GraphAnalysis {
            path: path.clone(),
            parent,
            output,
            states: Vec::new(),
        });
        let mut states: Vec<NodeState> = Vec::with_capacity(g.nodes.len());
        for (id, n) in g.nodes.iter().enumerate() {
            let s = self.node(gi, &path, id, n, &states);
            states.push(s);
        }
        self.graphs[gi].states = states;
        self.bias_pass(g, gi, output);
        gi
    }

    fn origin(&mut self, gi: usize, id: NodeId, n: &Node, kind: OriginKind) -> usize {
        self.origins.push(Origin {
            path: n.name.clone(),
            kind,
            span: n.span,
            graph: gi,
            node: id,
            allow: n.allow.clone(),
        });
        self.origins.len() - 1
    }

    fn fresh(&self, origin: usize, kind: ComponentKind, border_leak: bool) -> Component {
        Component {
            origin,
            kind,
            per_sample: self.per_sample,
            fraction: 1.0,
            border_leak,
        }
    }

    fn node(
        &mut self,
        gi: usize,
        gpath: &str,
        id: NodeId,
        n: &Node,
        states: &[NodeState],
    ) -> NodeState {
        let input = |k: usize| {
            n.inputs
                .get(k)
                .and_then(|&i| states.get(i))
                .unwrap_or(&NodeState::Independent)
        };
        if matches!(n.op, Op::Time) {
            return NodeState::TimeOnly;
        }
        if matches!(n.op, Op::Input) {
            return NodeState::Independent;
        }
        let all_time_only =
            !n.inputs.is_empty() && (0..n.inputs.len()).all(|k| *input(k) == NodeState::TimeOnly);
        if all_time_only && !matches!(n.op, Op::Ode { .. }) {
            return NodeState::TimeOnly;
        }
        let mut out: Vec<Component> = Vec::new();
        match &n.op {
            Op::Input | Op::Time => {}
            Op::Conv { pad, time, .. } => {
                for c in input(0).comps() {
                    out.push(match c.kind {
                        ComponentKind::Offset { .. } => Component {
                            border_leak: c.border_leak || *pad > 0,
                            ..*c
                        },
                        _ => alive(c),
                    });
                }
                match time {
                    TimeChannel::None => {}
                    TimeChannel::Constant => {
                        let o = self.origin(gi, id, n, OriginKind::ConcatConstant);
                        out.push(self.fresh(o, ComponentKind::Offset { axes: Axes::C }, *pad > 0));
                    }
                    TimeChannel::Positional => {
                        let o = self.origin(gi, id, n, OriginKind::ConcatPositional);
                        out.push(self.fresh(o, ComponentKind::Offset { axes: Axes::CHW }, false));
                    }
                }
            }
            Op::Linear { .. } | Op::Flatten => {
                for c in input(0).comps() {
                    out.push(match c.kind {
                        ComponentKind::Offset { .. } => *c,
                        _ => alive(c),
                    });
                }
            }
            Op::Dropout { .. } | Op::AvgPool { .. } | Op::Upsample { .. } => {
                out.extend_from_slice(input(0).comps())
            }
            Op::GlobalAvgPool => {
                for c in input(0).comps() {
                    out.push(match c.kind {
                        // Averaging over space folds a spatial offset into a per-channel one.
                        ComponentKind::Offset { .. } => Component {
                            kind: ComponentKind::Offset { axes: Axes::C },
                            ..*c
                        },
                        _ => *c,
                    });
                }
            }
            Op::Act { .. } | Op::Attention { .. } => out.extend(input(0).comps().iter().map(alive)),
            Op::Add | Op::Concat => {
                let mut time_only = false;
                for k in 0..n.inputs.len() {
                    match input(k) {
                        NodeState::TimeOnly => time_only = true,
                        s => out.extend_from_slice(s.comps()),
                    }
                }
                if time_only {
                    let o = self.origin(gi, id, n, OriginKind::Add);
                    out.push(self.fresh(o, ComponentKind::Offset { axes: Axes::C }, false));
                }
            }
            Op::Inject { mode, .. } => {
                out.extend_from_slice(input(0).comps());
                if input(1).depends_on_t() {
                    let (kind, axes) = match mode {
                        InjectMode::Offset => (OriginKind::InjectOffset, Axes::C),
                        InjectMode::Positional => (OriginKind::InjectPositional, Axes::CHW),
                    };
                    let o = self.origin(gi, id, n, kind);
                    out.push(self.fresh(o, ComponentKind::Offset { axes }, false));
                }
            }
            Op::ScaleShift { .. } => {
                // h·(1 + s(t)) + b(t): an offset already in h stays a per-channel constant.
                out.extend_from_slice(input(0).comps());
                if input(1).depends_on_t() {
                    let o = self.origin(gi, id, n, OriginKind::ScaleShift);
                    out.push(self.fresh(o, ComponentKind::Modulation, false));
                }
            }
            Op::Sinusoidal { .. } => {}
            Op::Norm { kind, channels, .. } => {
                out = self.norm(gpath, n, *kind, *channels, input(0));
            }
            Op::Ode { func, .. } => {
                out.extend(input(0).comps().iter().map(alive));
                let fi = self.graph(
                    &func.graph,
                    n.name.clone(),
                    Some((gi, id)),
                    Some(func.output),
                );
                let fout = self.graphs[fi]
                    .states
                    .get(func.output)
                    .cloned()
                    .unwrap_or(NodeState::Independent);
                match fout {
                    NodeState::Independent => {}
                    NodeState::TimeOnly => {
                        let o = self.origin(gi, id, n, OriginKind::Ode);
                        out.push(self.fresh(o, ComponentKind::Alive, false));
                    }
                    NodeState::Depends(v) => out.extend(v.iter().map(alive)),
                }
            }
        }
        let out = normalize(out);
        if out.is_empty() {
            NodeState::Independent
        } else {
            NodeState::Depends(out)
        }
    }

    /// The transfer through a normalization, recording its verdict.
    fn norm(
        &mut self,
        gpath: &str,
        n: &Node,
        kind: NormKind,
        channels: usize,
        input: &NodeState,
    ) -> Vec<Component> {
        let m = kind.channels_per_unit(channels).max(1);
        let per_channel_unit = match kind {
            NormKind::Instance => true,
            NormKind::Group { .. } | NormKind::Layer => m == 1,
            NormKind::Batch => !self.per_sample,
        };
        // Fraction of an independent per-channel offset's energy that survives the unit's mean.
        let keep = match kind {
            NormKind::Batch if self.per_sample => (self.batch as f64 - 1.0) / self.batch as f64,
            _ if per_channel_unit => 0.0,
            _ => (m as f64 - 1.0) / m as f64,
        };
        let mut out = Vec::new();
        let mut verdicts = Vec::new();
        for c in input.comps() {
            let (next, factor, complete) = match c.kind {
                ComponentKind::Offset { axes } if axes.spatial() => (Some(*c), 1.0, false),
                ComponentKind::Offset { axes } => {
                    // An offset constant over channels too is removed by any unit but batch
                    // norm's with per-sample t.
                    let f = if !(axes.c || matches!(kind, NormKind::Batch) && self.per_sample) {
                        0.0
                    } else {
                        keep
                    };
                    if f == 0.0 {
                        let left = c.border_leak.then_some(Component {
                            fraction: 0.0,
                            ..*c
                        });
                        (left, 0.0, true)
                    } else {
                        (
                            Some(Component {
                                fraction: c.fraction * f,
                                ..*c
                            }),
                            f,
                            false,
                        )
                    }
                }
                ComponentKind::Modulation => {
                    if keep == 0.0 {
                        (None, 0.0, true)
                    } else {
                        (
                            Some(Component {
                                kind: ComponentKind::Alive,
                                fraction: c.fraction * keep,
                                ..*c
                            }),
                            keep,
                            false,
                        )
                    }
                }
                ComponentKind::Alive => (Some(*c), 1.0, false),
            };
            if let Some(o) = self.origins.get(c.origin) {
                verdicts.push(ComponentVerdict {
                    origin: o.path.clone(),
                    origin_kind: o.kind,
                    origin_index: c.origin,
                    kind: c.kind,
                    fraction_in: c.fraction,
                    fraction_out: next.map(|x| x.fraction).unwrap_or(0.0),
                    factor,
                    complete,
                    border_leak: complete && c.border_leak,
                });
            }
            if let Some(x) = next {
                out.push(x);
            }
        }
        let out = normalize(out);
        let in_state = NodeState::Depends(input.comps().to_vec());
        let in_state = if input.comps().is_empty() {
            input.clone()
        } else {
            in_state
        };
        let out_state = if out.is_empty() {
            NodeState::Independent
        } else {
            NodeState::Depends(out.clone())
        };
        let survival = if input.depends_on_t() {
            Some(verdicts.iter().map(|v| v.factor).fold(1.0_f64, f64::min))
        } else {
            None
        };
        let complete = verdicts.iter().any(|v| v.complete && v.fraction_in > 0.0);
        let border_leak = verdicts.iter().any(|v| v.border_leak);
        let unit = match kind {
            NormKind::Batch => "each channel over the batch and H, W".to_string(),
            NormKind::Instance => "each sample's channel over H, W".to_string(),
            NormKind::Group { .. } | NormKind::Layer => {
                format!(
                    "each sample's {m} channel{} over H, W",
                    if m == 1 { "" } else { "s" }
                )
            }
        };
        let explanation = match kind {
            NormKind::Batch if self.per_sample => format!(
                "{kind} normalizes {unit}; with t per sample it removes only the batch mean of a per-channel offset ((B - 1)/B = {keep:.3} of it survives for the training batch {})",
                self.batch
            ),
            _ if per_channel_unit => {
                format!("{kind} normalizes {unit}: a per-channel offset is constant on the unit and is removed completely")
            }
            _ => format!(
                "{kind} normalizes {unit}: only the unit's mean of per-channel offsets is removed, (m - 1)/m = {keep:.3} of their energy survives"
            ),
        };
        self.norms.push(NormVerdict {
            graph: gpath.to_string(),
            node: n.name.clone(),
            span: n.span,
            kind,
            channels,
            channels_per_unit: m,
            per_sample: self.per_sample,
            input: summarize(&self.origins, &in_state),
            output: summarize(&self.origins, &out_state),
            survival,
            complete,
            border_leak,
            components: verdicts,
            explanation,
        });
        out
    }

    /// Finds operand-branch biases whose every path ends in a normalization that removes a
    /// per-channel constant completely (its gradient is then zero).
    fn bias_pass(&mut self, g: &Graph, gi: usize, output: Option<NodeId>) {
        let mut users: Vec<Vec<NodeId>> = vec![Vec::new(); g.nodes.len()];
        for (i, n) in g.nodes.iter().enumerate() {
            for &j in &n.inputs {
                if let Some(u) = users.get_mut(j) {
                    u.push(i);
                }
            }
        }
        for (i, n) in g.nodes.iter().enumerate() {
            let has_bias = n.params.iter().any(|p| p.role == ParamRole::OperandBias);
            if !has_bias || !matches!(n.op, Op::Conv { .. } | Op::Linear { .. }) {
                continue;
            }
            let mut norms: Vec<(String, Span)> = Vec::new();
            let mut stack = vec![i];
            let mut seen = vec![false; g.nodes.len()];
            let mut escapes = false;
            while let Some(cur) = stack.pop() {
                if Some(cur) == output || users[cur].is_empty() {
                    escapes = true;
                    break;
                }
                for &u in &users[cur] {
                    if seen[u] {
                        continue;
                    }
                    seen[u] = true;
                    let un = &g.nodes[u];
                    match &un.op {
                        Op::Norm { kind, channels, .. } => {
                            let m = kind.channels_per_unit(*channels);
                            let removes = match kind {
                                NormKind::Instance | NormKind::Batch => true,
                                NormKind::Group { .. } | NormKind::Layer => m == 1,
                            };
                            if removes {
                                norms.push((un.name.clone(), un.span));
                            } else {
                                escapes = true;
                            }
                        }
                        Op::Conv { pad: 0, .. }
                        | Op::Linear { .. }
                        | Op::Add
                        | Op::Concat
                        | Op::Dropout { .. }
                        | Op::AvgPool { .. }
                        | Op::GlobalAvgPool
                        | Op::Upsample { .. }
                        | Op::Flatten => stack.push(u),
                        Op::Inject { .. } | Op::ScaleShift { .. }
                            if un.inputs.first() == Some(&cur) =>
                        {
                            stack.push(u)
                        }
                        _ => escapes = true,
                    }
                    if escapes {
                        break;
                    }
                }
                if escapes {
                    break;
                }
            }
            if !escapes && !norms.is_empty() {
                self.biases.push(BiasCancel {
                    graph: gi,
                    node: i,
                    path: n.name.clone(),
                    span: n.span,
                    norms,
                    allow: n.allow.clone(),
                });
            }
        }
    }
}

fn alive(c: &Component) -> Component {
    Component {
        kind: ComponentKind::Alive,
        ..*c
    }
}

fn kind_rank(k: ComponentKind) -> u8 {
    match k {
        ComponentKind::Offset { .. } => 0,
        ComponentKind::Modulation => 1,
        ComponentKind::Alive => 2,
    }
}

/// Merges components of the same origin and kind (sum of paths: the strongest survives) and
/// sorts them, so states compare and print deterministically.
fn normalize(mut v: Vec<Component>) -> Vec<Component> {
    v.sort_by_key(|c| (c.origin, kind_rank(c.kind)));
    let mut out: Vec<Component> = Vec::with_capacity(v.len());
    for c in v {
        if let Some(last) = out.last_mut() {
            if last.origin == c.origin && kind_rank(last.kind) == kind_rank(c.kind) {
                if let (ComponentKind::Offset { axes: a }, ComponentKind::Offset { axes: b }) =
                    (last.kind, c.kind)
                {
                    last.kind = ComponentKind::Offset { axes: a.union(b) };
                }
                last.fraction = last.fraction.max(c.fraction);
                last.border_leak |= c.border_leak;
                last.per_sample |= c.per_sample;
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn summarize(origins: &[Origin], s: &NodeState) -> TimeState {
    let comps = match s {
        NodeState::Independent => return TimeState::Independent,
        NodeState::TimeOnly => return TimeState::TimeOnly,
        NodeState::Depends(v) => v,
    };
    let mut names: Vec<String> = Vec::new();
    for c in comps {
        if let Some(o) = origins.get(c.origin) {
            if !names.contains(&o.path) {
                names.push(o.path.clone());
            }
        }
    }
    let fraction = comps.iter().map(|c| c.fraction).fold(0.0_f64, f64::max);
    let border_leak = comps.iter().any(|c| c.border_leak);
    let per_sample = comps.iter().any(|c| c.per_sample);
    if comps.iter().any(|c| c.kind == ComponentKind::Alive) {
        TimeState::Alive {
            fraction,
            border_leak,
            origins: names,
        }
    } else if comps.iter().any(|c| c.kind == ComponentKind::Modulation) {
        TimeState::Modulation {
            per_sample,
            fraction,
            origins: names,
        }
    } else {
        let axes = comps.iter().fold(Axes::default(), |a, c| match c.kind {
            ComponentKind::Offset { axes } => a.union(axes),
            _ => a,
        });
        TimeState::Offset {
            axes,
            per_sample,
            fraction,
            border_leak,
            origins: names,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sema::check_source;

    fn analyze_src(src: &str) -> Analysis {
        match check_source(src) {
            Ok(models) => analyze(&models[0]),
            Err(d) => panic!("spec does not check: {d:#?}"),
        }
    }

    const HEAD: &str = "input x: image[4, 8, 8]\n time t: continuous, shared\n embed e = sinusoidal(16) | linear(16)\n";

    #[test]
    fn group_norm_keeps_m_minus_one_over_m() {
        let a = analyze_src(&format!(
            "model m {{ {HEAD} h = x | conv(16, k = 1, pad = 0)\n h = h + inject(e)\n return h | group(4) }}"
        ));
        let v = &a.norms[0];
        assert_eq!(v.channels_per_unit, 4);
        assert_eq!(v.survival, Some(0.75));
        assert!(!v.complete);
        assert!(a.output_sees_t());
    }

    #[test]
    fn instance_norm_cancels_and_relu_keeps_it_alive() {
        let a = analyze_src(&format!(
            "model m {{ {HEAD} h = x | conv(16, k = 1, pad = 0)\n h = h + inject(e)\n return h | instance }}"
        ));
        assert!(a.norms[0].complete);
        assert!(!a.output.depends_on_t());
        let a = analyze_src(&format!(
            "model m {{ {HEAD} h = x | conv(16, k = 1, pad = 0)\n h = h + inject(e)\n return h | relu | instance }}"
        ));
        assert!(!a.norms[0].complete);
        assert!(a.output_sees_t());
    }

    #[test]
    fn padded_concat_conv_leaks_at_the_border_only() {
        let a = analyze_src("model m { input x: image[4, 8, 8]\n time t: continuous, shared\n return x | conv(16, k = 3, pad = 1, time = concat) | instance }");
        assert!(a.norms[0].complete && a.norms[0].border_leak);
        assert!(a.output.leak_only());
        assert!(!a.output_sees_t());
    }

    #[test]
    fn scale_shift_before_instance_norm_is_undone() {
        let a = analyze_src(&format!(
            "model m {{ {HEAD} return x | conv(16, k = 1, pad = 0) | scale_shift(e) | instance }}"
        ));
        assert!(a.norms[0].complete);
        let a = analyze_src(&format!(
            "model m {{ {HEAD} return x | conv(16, k = 1, pad = 0) | instance | scale_shift(e) }}"
        ));
        assert!(a.output_sees_t());
    }
}
