//! The accounting's per-node state and per-norm verdict types: what one origin's change is made
//! of at a node ([`Part`]), and what the accounting says survives a norm ([`Prediction`]).

use super::cov::Cov;
use crate::ir::{Graph, Node, NodeId, NormKind, Shape};
use serde::Serialize;

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
    /// An injection whose embedding also depends on the features.
    Feature,
    /// `divide_by_time`: each sample divided by its t.
    DivTime,
}

/// What the accounting says about a surviving fraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Prediction {
    /// Exactly zero: nothing of the change survives, for every draw of the weights.
    Zero,
    /// The expected surviving fraction at initialization.
    Exact { fraction: f64 },
    /// A proven range for the expected surviving fraction.
    Between { low: f64, high: f64 },
    /// Not zero; no number can be backed (the change went through a nonlinearity or its
    /// second moments depend on the features).
    Nonzero,
    /// Neither zero nor nonzero can be proven (e.g. a scale-shift before a per-channel norm:
    /// removed unless `1 + s(t)` changes sign between the two times).
    Unknown,
}

impl Prediction {
    /// The number users read: the fraction, or the range's midpoint never (None).
    pub fn fraction(self) -> Option<f64> {
        match self {
            Prediction::Zero => Some(0.0),
            Prediction::Exact { fraction } => Some(fraction),
            _ => None,
        }
    }
    pub fn is_zero(self) -> bool {
        self == Prediction::Zero
    }
}

/// One origin's fate at one normalization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginVerdict {
    /// Index into [`Accounting::origins`].
    pub origin: usize,
    pub prediction: Prediction,
    /// What the change arriving is made of, for people (most verdicts share a fixed phrase).
    pub arrives_as: std::borrow::Cow<'static, str>,
    /// For a constant offset: what a per-channel constant alone keeps ((m - 1)/m, or 0).
    pub constant_part: Option<f64>,
    /// For a constant offset: the extra share that survives through the zero-padding border.
    pub border_part: Option<f64>,
}

/// The exact linear part of one origin's change.
#[derive(Debug, Clone, PartialEq)]
pub struct Lin {
    /// Shared: a covariance passes unchanged through many nodes and is never edited in place.
    pub cov: std::rc::Rc<Cov>,
    /// The node whose random weights last mixed this change (or the origin): two parts with
    /// different lineages are uncorrelated.
    pub(super) lineage: (usize, NodeId),
    /// Whether the covariance's scale is absolute (a scale-shift multiplies it by an unknown
    /// `E(1 + s)²`).
    pub(super) scale_known: bool,
    /// The origin made a change constant over H, W (an offset): nonzero survival through a
    /// per-channel norm is then the border leak.
    pub(super) from_constant: bool,
    /// A vector flattened from `[C, H, W]` (the covariance keeps the image form).
    pub(super) flat: bool,
}

/// One origin's change at a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub origin: usize,
    /// Boxed: most parts in a large model are alive ones without it, and parts are copied at
    /// every node.
    pub lin: Option<Box<Lin>>,
    /// A linear part with feature-dependent second moments; `true` when it is a per-channel
    /// scale of the features (a scale-shift's `h·Δs`), which per-channel norms undo.
    pub inexact: Option<bool>,
    pub alive: bool,
    /// The change is mean-free on the units of this norm (channels per unit, per-sample).
    pub(super) centered: Option<Centered>,
    /// The part may be exactly zero: a per-channel scale that a norm undid unless `1 + s`
    /// changed sign, or a norm over two values (which outputs ±1). Nonzero claims are off.
    pub(super) unsure: bool,
    /// The change is constant over H, W for each sample and channel (per-channel norms remove
    /// it whatever else is known of it).
    pub(super) flat: bool,
    /// The change does not depend on the input batch (so it is the same for every sample when
    /// t is shared).
    pub(super) input_free: bool,
    /// Its feature-shaped component (`inexact`) is mean-free over H, W per sample and channel:
    /// a scale-shift's `h·Δs` on features that a per-channel norm centered, kept so by the ops
    /// in between. An average over the whole map then leaves only the exact linear part.
    pub(super) scaled_mean_free: bool,
}

impl Part {
    /// The part without its linear covariance: everything else copied, none of the matrices
    /// (for a caller about to set `lin` anew; `..p.clone()` would copy them and drop them).
    pub(super) fn shell(&self) -> Part {
        Part {
            origin: self.origin,
            lin: None,
            inexact: self.inexact,
            alive: self.alive,
            centered: self.centered,
            unsure: self.unsure,
            flat: self.flat,
            input_free: self.input_free,
            scaled_mean_free: self.scaled_mean_free,
        }
    }
}

impl Lin {
    /// This change's bookkeeping with the covariance `cov` (none of the old one copied).
    pub(super) fn with_cov(&self, cov: Cov) -> Lin {
        Lin {
            cov: std::rc::Rc::new(cov),
            lineage: self.lineage,
            scale_known: self.scale_known,
            from_constant: self.from_constant,
            flat: self.flat,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Centered {
    /// Channels per unit (per sample, all of H, W); 0 for BatchNorm's per-channel-over-batch.
    pub(super) m: usize,
}

/// The state of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Sig {
    Independent,
    /// Computed from t alone; `iid` when its last op is a linear map (its change is then
    /// i.i.d. zero-mean over features).
    TimeOnly {
        iid: bool,
    },
    Depends(Vec<Part>),
}

impl Sig {
    pub fn parts(&self) -> &[Part] {
        match self {
            Sig::Depends(v) => v,
            _ => &[],
        }
    }
}

/// What a norm received, kept with the accounting so that its transfer can be re-run with
/// another kind (the lint's group-count fix) without accounting the model again.
#[derive(Debug, Clone)]
pub(crate) struct NormInput {
    /// The arriving node in the norm's graph (`None` for attention's inner norm).
    pub(super) node: Option<NodeId>,
    pub(super) shape: Shape,
    pub(super) flags: (bool, Option<Centered>, bool),
}

/// A shape's (channels, height, width); a vector is `d` channels of one position.
pub(super) fn spatial(s: &Shape) -> (usize, usize, usize) {
    match *s {
        Shape::Image { c, h, w } => (c, h, w),
        Shape::Vector { d } => (d, 1, 1),
        Shape::Time => (1, 1, 1),
    }
}

/// Whether average-pool node `n` (window `k`, stride `stride`) tiles its input map exactly:
/// then every channel's spatial mean is kept, and whatever is mean-free stays so.
pub(super) fn pool_tiles(n: &Node, g: &Graph, k: usize, stride: usize) -> bool {
    let (_, h, w) = n
        .inputs
        .first()
        .map(|&i| spatial(&g.nodes[i].shape))
        .unwrap_or((0, 0, 0));
    stride == k && h % k == 0 && w % k == 0
}

/// Whether some output position of a convolution along one axis has a tap inside the input.
pub(super) fn sees_input(n_in: usize, k: usize, s: usize, p: usize, n_out: usize) -> bool {
    (0..n_out).any(|q| (0..k).any(|d| (q * s + d) >= p && q * s + d - p < n_in))
}

/// Whether a norm's units hold one value each when the value is constant over H, W (or for a
/// vector, always for one feature per unit).
pub(super) fn single_value_units(kind: NormKind, m: usize) -> bool {
    match kind {
        NormKind::Instance => true,
        NormKind::Group { .. } | NormKind::Layer | NormKind::PerPosition => m == 1,
        NormKind::Batch => false,
    }
}

/// The variance of a weight drawn `U(-1/√fan_in, 1/√fan_in)` (PyTorch's default).
pub(super) fn weight_var(fan_in: usize) -> f64 {
    1.0 / (3.0 * fan_in.max(1) as f64)
}

/// A ConcatConv's time channel through its conv: (positional, h, w, output channels, weight
/// variance's bits, kernel, output size).
pub(super) type ConcatKey = (
    bool,
    usize,
    usize,
    usize,
    u64,
    (usize, usize, usize),
    (usize, usize),
);
