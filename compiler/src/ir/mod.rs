//! The typed IR that semantic analysis produces from the AST: per model, an arena of nodes
//! ([`Graph`]) in topological order, each with its op, inputs, output shape (batch implicit),
//! hierarchical name, parameters and source span. The lint analyses it, the runtime lowers it.
//! Once sema accepts a spec, every shape, divisibility and name check has been made.

mod op;

use crate::ast::Span;
use serde::Serialize;
use std::fmt;

pub type NodeId = usize;

/// A value's shape without the (symbolic) batch dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Shape {
    /// `[B, c, h, w]`
    Image { c: usize, h: usize, w: usize },
    /// `[B, d]`
    Vector { d: usize },
    /// The time input: `[B]` per sample, or one scalar shared by the batch.
    Time,
}

impl Shape {
    pub fn channels(&self) -> Option<usize> {
        match *self {
            Shape::Image { c, .. } => Some(c),
            Shape::Vector { d } => Some(d),
            Shape::Time => None,
        }
    }
    /// Elements per sample.
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Image { c, h, w } => c.saturating_mul(h).saturating_mul(w),
            Shape::Vector { d } => d,
            Shape::Time => 1,
        }
    }
    /// The dims including the batch, for the runtime.
    pub fn dims(&self, batch: usize) -> Vec<usize> {
        match *self {
            Shape::Image { c, h, w } => vec![batch, c, h, w],
            Shape::Vector { d } => vec![batch, d],
            Shape::Time => vec![batch],
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Image { c, h, w } => write!(f, "[B, {c}, {h}, {w}]"),
            Shape::Vector { d } => write!(f, "[B, {d}]"),
            Shape::Time => write!(f, "[B]"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeKind {
    /// Real-valued time (neural ODEs).
    Continuous,
    /// Integer diffusion steps `0..n`.
    Steps(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// One t for the whole batch (an ODE solver evaluates the batch at one time).
    Shared,
    /// Each sample has its own t (diffusion training).
    PerSample,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NormKind {
    /// BatchNorm: per channel over (B, H, W) in training mode.
    Batch,
    /// GroupNorm with `groups` groups: per sample over (C/groups, H, W).
    Group { groups: usize },
    /// InstanceNorm: per sample and channel over (H, W).
    Instance,
    /// LayerNorm over (C, H, W) (or over D for vectors).
    Layer,
    /// LayerNorm over the C channels at each position, per sample (transformer style):
    /// `layer(over = channels)`.
    PerPosition,
}

impl NormKind {
    /// Channels per reduction unit for a tensor with `c` channels.
    pub fn channels_per_unit(&self, c: usize) -> usize {
        match *self {
            NormKind::Batch | NormKind::Instance => 1,
            NormKind::Group { groups } => c / groups.max(1),
            NormKind::Layer | NormKind::PerPosition => c,
        }
    }
}

impl fmt::Display for NormKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NormKind::Batch => write!(f, "batch"),
            NormKind::Group { groups } => write!(f, "group({groups})"),
            NormKind::Instance => write!(f, "instance"),
            NormKind::Layer => write!(f, "layer"),
            NormKind::PerPosition => write!(f, "layer(over = channels)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Act {
    Relu,
    Silu,
    Tanh,
    Softplus,
}

impl Act {
    pub fn name(self) -> &'static str {
        match self {
            Act::Relu => "relu",
            Act::Silu => "silu",
            Act::Tanh => "tanh",
            Act::Softplus => "softplus",
        }
    }
}

/// How a convolution sees time through a concatenated input channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeChannel {
    None,
    /// `t · J`: an all-ones channel times t (ConcatConv).
    Constant,
    /// `t · P(h, w)`: a fixed zero-mean spatial pattern times t.
    Positional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectMode {
    /// `h + Linear(e)[:, :, None, None]`: one offset per channel.
    Offset,
    /// `h + Linear(e)[:, :, None, None] · P[c, h, w]`: a spatially varying offset map.
    Positional,
}

/// How the time signal enters the network at an injection site (`check` lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectionMode {
    /// A convolution over a constant `t · J` channel.
    ConcatConstant,
    /// A convolution over a positional `t · P(h, w)` channel.
    ConcatPositional,
    /// `h + inject(e)`.
    Offset,
    /// `h + inject(e, positional)`.
    PositionalMap,
    /// `scale_shift(e)`.
    ScaleShift,
    /// `divide_by_time`: each sample divided by its t.
    DivideByTime,
}

impl InjectionMode {
    /// The words `check` prints (and writes in its JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            InjectionMode::ConcatConstant => "concat constant time channel (ConcatConv)",
            InjectionMode::ConcatPositional => "concat positional time channel",
            InjectionMode::Offset => "additive per-channel offset",
            InjectionMode::PositionalMap => "additive positional map",
            InjectionMode::ScaleShift => "scale-shift after the norm",
            InjectionMode::DivideByTime => "divided by t",
        }
    }
}

impl fmt::Display for InjectionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for InjectionMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Solver {
    Euler { steps: usize },
    Rk4 { steps: usize },
    Dopri5 { rtol: f64, atol: f64 },
}

impl fmt::Display for Solver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Solver::Euler { steps } => write!(f, "euler({steps} steps)"),
            Solver::Rk4 { steps } => write!(f, "rk4({steps} steps)"),
            Solver::Dopri5 { rtol, atol } => write!(f, "dopri5(rtol {rtol}, atol {atol})"),
        }
    }
}

/// The largest number of whole numbers (solver steps, sizes) a spec or a flag may state: 2^24.
pub const MAX_INT: usize = 1 << 24;

impl std::str::FromStr for Solver {
    type Err = String;

    /// Parses the command-line form `dopri5:RTOL:ATOL`, `rk4:STEPS` or `euler:STEPS` with the
    /// limits a spec has: steps from 1 to 2^24, tolerances finite and positive.
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected dopri5:RTOL:ATOL, rk4:STEPS or euler:STEPS";
        let parts: Vec<&str> = s.split(':').collect();
        let arity = if parts[0] == "dopri5" { 3 } else { 2 };
        if parts.len() != arity {
            return Err(format!("bad solver `{s}`: {expected}"));
        }
        let steps = || -> Result<usize, String> {
            match parts[1].parse::<usize>() {
                Ok(n) if (1..=MAX_INT).contains(&n) => Ok(n),
                Ok(n) => Err(format!(
                    "bad solver `{s}`: {n} steps is outside 1..={MAX_INT} (the limit a spec has)"
                )),
                Err(_) => Err(format!(
                    "bad solver `{s}`: the number of steps `{}` is not a whole number",
                    parts[1]
                )),
            }
        };
        let tol = |i: usize, what: &str| -> Result<f64, String> {
            match parts[i].parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
                _ => Err(format!(
                    "bad solver `{s}`: {what} `{}` must be a finite positive number",
                    parts[i]
                )),
            }
        };
        match parts[0] {
            "euler" => Ok(Solver::Euler { steps: steps()? }),
            "rk4" => Ok(Solver::Rk4 { steps: steps()? }),
            "dopri5" => Ok(Solver::Dopri5 {
                rtol: tol(1, "rtol")?,
                atol: tol(2, "atol")?,
            }),
            _ => Err(format!("bad solver `{s}`: {expected}")),
        }
    }
}

/// An ODE block's right-hand side: a graph from the state `h` (node `input`) and the time node
/// `time` to the derivative (node `output`), which has the state's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OdeFunc {
    /// The block whose body is the function (its nodes are the graph's own, not an instance).
    pub block: String,
    pub graph: Graph,
    pub input: NodeId,
    pub time: NodeId,
    pub output: NodeId,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The model's image input (or an ODE function's state).
    Input,
    /// The time input t.
    Time,
    Conv {
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        groups: usize,
        bias: bool,
        time: TimeChannel,
    },
    Linear {
        din: usize,
        dout: usize,
        bias: bool,
    },
    Norm {
        kind: NormKind,
        channels: usize,
        affine: bool,
        eps: f64,
    },
    Act {
        act: Act,
    },
    Dropout {
        p: f64,
    },
    /// Average pooling with a k x k window.
    AvgPool {
        k: usize,
        stride: usize,
    },
    /// Average over all of H, W to [B, C, 1, 1].
    GlobalAvgPool,
    Upsample {
        factor: usize,
    },
    /// DDPM self-attention: norm (none: diffusers' scale-shift middle) -> 1x1 q, k, v ->
    /// softmax(qᵀk/√(C/heads)) v per head -> 1x1 proj -> + input.
    Attention {
        channels: usize,
        heads: usize,
        norm: Option<NormKind>,
        /// The inner norm's variance epsilon.
        eps: f64,
    },
    Flatten,
    /// Zero padding: `before` rows/columns at the top/left, `after` at the bottom/right.
    Pad {
        before: usize,
        after: usize,
    },
    /// Elementwise sum of two values of the same shape.
    Add,
    /// Concatenation along channels.
    Concat,
    /// `[B] -> [B, dim]`: sines then cosines (cosines first if `flip`) of `scale · t · f_i`,
    /// `f_i = max_period^(-i / (dim/2 - shift))`; DDPM's: shift 1, max period 10,000.
    Sinusoidal {
        dim: usize,
        scale: f64,
        flip: bool,
        shift: f64,
        max_period: f64,
    },
    /// A learned table of one `dim` row per step: step time `[B] -> [B, dim]` (diffusers'
    /// `time_embedding_type = "learned"`, an `nn.Embedding`).
    LearnedTime {
        steps: usize,
        dim: usize,
    },
    /// `[B] -> [B, dim]`: Gaussian random Fourier features of `u = log t` (or of `t` when not
    /// `log`): `sin(2π·w_i·u)` then `cos(2π·w_i·u)` (cosines first if `flip`) for `dim / 2`
    /// frozen frequencies `w_i ~ N(0, scale²)` (diffusers' `GaussianFourierProjection`, its
    /// `time_embedding_type = "fourier"`; NCSN++).
    Fourier {
        dim: usize,
        scale: f64,
        log: bool,
        flip: bool,
    },
    /// `[B, D] -> [B, D]`: adds the learned row of each sample's class label (diffusers'
    /// `num_class_embeds`, an `nn.Embedding` added to the time embedding).
    ClassEmbed {
        classes: usize,
        dim: usize,
    },
    /// inputs `[h, t]`: each sample's value divided by its t (diffusers' Fourier-time UNet
    /// divides its output by t, the noise level).
    DivTime,
    /// inputs `[h, e]`: `h + Linear(e)` as a per-channel offset (or positional map).
    Inject {
        mode: InjectMode,
        din: usize,
        channels: usize,
    },
    /// inputs `[h, e]`: `h · (1 + scale(e)) + shift(e)` with one Linear(e -> 2C).
    ScaleShift {
        din: usize,
        channels: usize,
    },
    /// Integrates `h' = f(t, h)` from `t0` to `t1`; input the initial state.
    Ode {
        func: Box<OdeFunc>,
        t0: f64,
        t1: f64,
        solver: Solver,
    },
}

/// Which branch a bias belongs to, for the bias policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamRole {
    Weight,
    /// A bias of a layer on the feature (operand) branch.
    OperandBias,
    /// A bias of a layer on the time branch (embedding MLPs, injections).
    TimeBias,
    NormScale,
    NormShift,
    /// An embedding table (N(0, 1), as `nn.Embedding`).
    Table,
    /// Fixed random frequencies (N(0, scale²)): counted, saved and loaded, never trained.
    Frozen,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamInfo {
    /// The full hierarchical name, e.g. `down.1.res0.conv1.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    pub role: ParamRole,
}

impl ParamInfo {
    /// Elements in the tensor (saturating, so absurd specs cannot overflow).
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |a, &b| a.saturating_mul(b))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub shape: Shape,
    /// Hierarchical path, e.g. `stem.0` or `down.1.res0.conv1`.
    pub name: String,
    pub params: Vec<ParamInfo>,
    /// What the user wrote for this node.
    pub span: Span,
    /// The whole statement the node came from (for `#[allow(...)]`).
    pub stmt_span: Span,
    /// Whether the node is on the time branch (its inputs derive from t alone).
    pub time_branch: bool,
    /// Lint codes suppressed by attributes on the enclosing statements.
    pub allow: Vec<String>,
    /// A norm (or attention's inner norm) whose kind comes from the model's `norm = ...`
    /// setting: a fix that rewrites the setting changes exactly these nodes.
    #[serde(skip)]
    pub norm_from_setting: bool,
}

impl Node {
    pub fn param_count(&self) -> usize {
        let own = self
            .params
            .iter()
            .fold(0usize, |a, p| a.saturating_add(p.numel()));
        match &self.op {
            Op::Ode { func, .. } => own.saturating_add(func.graph.param_count()),
            _ => own,
        }
    }
}

/// One expansion of a block: the nodes sema created for a call such as `res(64)` (a pipeline
/// stage, or a resblock of `unet(...)`), so that back ends see the spec's structure in the flat
/// graph without reconstructing it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    /// The block's name, e.g. `res`.
    pub block: String,
    /// The name prefix of the instance's nodes, e.g. `down.1.res0` (nodes `down.1.res0.conv1`).
    pub prefix: String,
    /// The instance whose body made this call (an index into [`Graph::instances`]); `None` at
    /// the graph's own level.
    pub parent: Option<usize>,
    /// Every node the instance created, nested instances' included, in graph order. The
    /// graph's shared nodes (the time input, embeddings) are not part of any instance.
    pub nodes: Vec<NodeId>,
    /// The values from outside the instance that its nodes read, in order of first use: the
    /// block's input, embeddings, t, names of the enclosing scopes.
    pub inputs: Vec<NodeId>,
    /// The value the block returns.
    pub output: NodeId,
    /// The call that made the instance.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// The block instances among `nodes`, each after the instance it is nested in.
    pub instances: Vec<Instance>,
}

impl Graph {
    pub fn param_count(&self) -> usize {
        self.nodes
            .iter()
            .fold(0usize, |a, n| a.saturating_add(n.param_count()))
    }
    /// Visits every node, descending into ODE functions, with the enclosing graph.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Graph, NodeId, &'a Node)) {
        for (i, n) in self.nodes.iter().enumerate() {
            f(self, i, n);
            if let Op::Ode { func, .. } = &n.op {
                func.graph.walk(f);
            }
        }
    }
    /// All parameters in definition order, ODE functions included.
    pub fn params(&self) -> Vec<&ParamInfo> {
        let mut out = Vec::new();
        self.walk(&mut |_, _, n| out.extend(n.params.iter()));
        out
    }
}

/// How a bias is initialized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BiasInit {
    /// As PyTorch initializes the layer.
    Default,
    Zero,
    Constant {
        value: f64,
    },
    Normal {
        std: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BiasPolicy {
    pub operand: BiasInit,
    pub time: BiasInit,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    Linear {
        beta_start: f64,
        beta_end: f64,
        steps: usize,
    },
    Cosine {
        steps: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    Classify { classes: usize },
    Denoise { schedule: Schedule, predict: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    Sgd {
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    },
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    Constant,
    /// Multiply the rate by `gamma` at each listed epoch.
    Step {
        milestones: Vec<usize>,
        gamma: f64,
    },
    Cosine,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainSettings {
    pub optimizer: Optimizer,
    pub warmup: usize,
    pub batch: usize,
    pub epochs: Option<usize>,
    pub steps: Option<usize>,
    pub grad_clip: Option<f64>,
    pub ema: Option<f64>,
    pub schedule: LrSchedule,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            optimizer: Optimizer::Adam {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                weight_decay: 0.0,
            },
            warmup: 0,
            batch: 64,
            epochs: None,
            steps: None,
            grad_clip: None,
            ema: None,
            schedule: LrSchedule::Constant,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputInfo {
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeInfo {
    pub name: String,
    pub kind: TimeKind,
    pub sharing: Sharing,
    pub span: Span,
    /// The declared range of continuous time (`continuous(low, high)`); `None`: [0, 1].
    pub range: Option<(f64, f64)>,
}

impl TimeInfo {
    /// The values t takes: `0 ..= n - 1` for step time, the declared range (or [0, 1]) for
    /// continuous time.
    pub fn range(&self) -> (f64, f64) {
        match self.kind {
            TimeKind::Steps(n) => (0.0, n.saturating_sub(1) as f64),
            TimeKind::Continuous => self.range.unwrap_or((0.0, 1.0)),
        }
    }
}

/// Where and how the time signal enters the network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectionSite {
    /// Path of the node, e.g. `z.0.h.2`.
    pub node: String,
    pub mode: InjectionMode,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelIr {
    pub name: String,
    pub span: Span,
    pub input: InputInfo,
    pub time: TimeInfo,
    pub bias: BiasPolicy,
    pub graph: Graph,
    pub output: NodeId,
    pub task: Option<Task>,
    pub train: TrainSettings,
    pub injections: Vec<InjectionSite>,
    /// The class-label input (`input y: label[N]`), when the model is class-conditional.
    pub label: Option<LabelInfo>,
}

/// A class-label input: one integer in `0..classes` per sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelInfo {
    pub name: String,
    pub classes: usize,
    pub span: Span,
}

impl ModelIr {
    pub fn param_count(&self) -> usize {
        self.graph.param_count()
    }
    /// The graph at `path`: "" is the model's, an ODE node's path its function's.
    pub fn graph_at(&self, path: &str) -> Option<&Graph> {
        fn find<'a>(g: &'a Graph, path: &str) -> Option<&'a Graph> {
            g.nodes.iter().find_map(|n| match &n.op {
                Op::Ode { func, .. } if n.name == path => Some(&func.graph),
                Op::Ode { func, .. } => find(&func.graph, path),
                _ => None,
            })
        }
        if path.is_empty() {
            Some(&self.graph)
        } else {
            find(&self.graph, path)
        }
    }
}

/// The fixed spatial pattern of positional time inputs: `P_c(h, w) = cos(π f_y (h + ½) / H) +
/// cos(π f_x (w + ½) / W)` with `f_y = 1 + c mod 3`, `f_x = 1 + ⌊c / 3⌋ mod 3`. Each term sums
/// to zero over its axis, so the pattern has zero mean over every (H, W) plane (a norm's
/// per-channel mean subtraction leaves it intact) and mean square 1. `t · P_0` is the
/// positional ConcatConv channel; `e_c · P_c` the positional injection map.
pub fn positional_pattern(c: usize, h: usize, w: usize, height: usize, width: usize) -> f64 {
    let fy = 1.0 + (c % 3) as f64;
    let fx = 1.0 + ((c / 3) % 3) as f64;
    let py = (std::f64::consts::PI * fy * (h as f64 + 0.5) / height.max(1) as f64).cos();
    let px = (std::f64::consts::PI * fx * (w as f64 + 0.5) / width.max(1) as f64).cos();
    py + px
}

/// Variants of a checked model made on the IR rather than on spec text: what an experiment
/// plan or `tdspec eval --solver` changes in a model that sema already accepted.
impl ModelIr {
    /// Replaces the solver of every ODE block (nested ones included) with `solver`; returns how
    /// many blocks changed. Shapes and parameters do not depend on the solver, so the model
    /// stays valid.
    pub fn replace_solvers(&mut self, solver: Solver) -> usize {
        fn visit(g: &mut Graph, solver: Solver) -> usize {
            let mut n = 0;
            for node in &mut g.nodes {
                if let Op::Ode {
                    solver: s, func, ..
                } = &mut node.op
                {
                    *s = solver;
                    n += 1 + visit(&mut func.graph, solver);
                }
            }
            n
        }
        visit(&mut self.graph, solver)
    }
}

#[cfg(test)]
mod tests {
    use super::positional_pattern;

    #[test]
    fn positional_pattern_has_zero_mean_per_plane() {
        for c in 0..9 {
            for (hh, ww) in [(6usize, 6usize), (7, 7), (14, 14), (28, 28)] {
                let mut sum = 0.0;
                let mut sq = 0.0;
                for h in 0..hh {
                    for w in 0..ww {
                        let p = positional_pattern(c, h, w, hh, ww);
                        sum += p;
                        sq += p * p;
                    }
                }
                let n = (hh * ww) as f64;
                assert!((sum / n).abs() < 1e-12, "mean {c} {hh}");
                assert!(
                    (sq / n - 1.0).abs() < 1e-9,
                    "mean square {c} {hh}: {}",
                    sq / n
                );
            }
        }
    }
}
