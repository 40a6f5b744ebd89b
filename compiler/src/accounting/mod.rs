//! Exact time-signal accounting: a checked [`ModelIr`] in; for every normalization the time
//! change reaches (attention's inner norm included), per origin, what its mean subtraction
//! keeps of that origin's change, out ([`Accounting`]).
//!
//! The quantity. Change t from t0 to t1 at one origin only (an injection, a ConcatConv, a
//! scale-shift, a sum with a value computed from t alone), everything else fixed, at
//! initialization. Let `Δ` be the resulting change of a norm's input. The norm subtracts the
//! mean of its reduction units; the surviving fraction is `E‖Δ - mean_U Δ‖² / E‖Δ‖²` over the
//! initialization distribution (weights i.i.d. `U(-1/√fan_in, 1/√fan_in)`, γ = 1, β = 0) and
//! the input. Variance normalization also removes the part of `Δ` along the current features;
//! that part depends on data statistics and is not counted (the probe reports it separately).
//!
//! Each origin's change is tracked in parts whose fate under every op is known:
//! - `lin`: a linear change whose second moments are exact ([`cov::Cov`]): per-channel
//!   constants, positional patterns, and the zero-padding border structure that convolutions
//!   give them, through convolutions, linear maps, pooling, up-sampling, concatenation, sums and
//!   residuals. A number is stated only for such a part;
//! - `inexact`: linear in the change but with second moments that depend on features (after a
//!   normalization, a scale-shift's `h·Δs`, two correlated paths of one origin);
//! - `alive`: through a nonlinearity. No number; it survives a norm unless proven otherwise.
//!
//! A part leaving a norm is mean-free on that norm's units, so a later norm whose units are
//! unions of them keeps exactly all of it. Exact zeros are exact: a prediction of zero means
//! the change is zero for every draw of the weights.
//!
//! Alongside the parts, every node's value carries what is known of it at initialization:
//! constant over H and W, mean-free on some norm's units (a norm's output with γ = 1, β = 0),
//! constant over samples and space, exactly zero (a norm over single-valued units outputs β;
//! the whole-map average of a per-channel mean-free value is 0; dropout, pooling, up-sampling,
//! padding and the activations with f(0) = 0 keep zeros; a conv of zeros is its bias, flat
//! whatever its padding). Zero padding (`Op::Pad`) is a one-tap conv on the covariance: a
//! constant is no longer constant near the border, a mean-free change stays mean-free.

pub mod cov;
pub mod embedding;
mod focus;
mod limit;
mod norms;
mod parts;
pub mod report;
mod space;
mod state;

use crate::ast::Span;
use crate::ir::*;
use cov::Cov;
use focus::Focus;
use limit::count_work;
#[cfg(test)]
pub(crate) use limit::TRACK_LIMIT;
pub use limit::*;
use parts::*;
use serde::Serialize;
use state::{pool_tiles, sees_input, single_value_units, spatial, weight_var};
use state::{Centered, ConcatKey, NormInput};
pub use state::{Lin, OriginKind, OriginVerdict, Part, Prediction, Sig};
use std::borrow::Cow;
use std::rc::Rc;

/// A place where t enters the feature path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    /// Node path, e.g. `down.1.res0.temb_proj` or `features.0.conv1`.
    pub path: String,
    pub kind: OriginKind,
    pub span: Span,
    /// Path of the graph holding the node ("" for the model).
    pub graph: String,
    #[serde(skip)]
    pub graph_index: usize,
    #[serde(skip)]
    pub node: NodeId,
    /// Lint codes allowed on the statements that created the node.
    pub allow: Vec<String>,
    /// Whether the class label enters here too (the embedding carries its learned row): a
    /// change of the label meets every norm as the change of t does.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub label: bool,
}

/// The accounting at one normalization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NormAccount {
    /// Path of the graph ("" for the model, the ODE node's path for an ODE function).
    pub graph: String,
    /// Path of the norm, e.g. `down.0.res0.norm2`; attention's inner norm is `ATTN.norm`.
    pub node: String,
    #[serde(skip)]
    pub graph_index: usize,
    /// The IR node (for attention's inner norm: the attention node).
    #[serde(skip)]
    pub node_id: NodeId,
    pub span: Span,
    pub kind: NormKind,
    pub channels: usize,
    /// Channels per reduction unit.
    pub channels_per_unit: usize,
    pub in_attention: bool,
    /// Every reduction unit holds a single value (a constant map, a 1 x 1 instance norm): the
    /// output is β at initialization, and a probe measures only f32 rounding here.
    pub constant: bool,
    pub origins: Vec<OriginVerdict>,
    /// All origins changed together; `None` when time does not reach the norm.
    pub total: Option<Prediction>,
}

/// Per-node parts, one graph.
#[derive(Debug, Clone)]
pub struct GraphAccount {
    pub path: String,
    /// Per node. The parts are kept where a later reader needs them (a norm's input, the
    /// graph's output); elsewhere a `Depends` state is emptied once its last consumer has
    /// read it, so memory stays linear in the parts alive at once.
    pub states: Vec<Sig>,
}

/// The result for a model.
#[derive(Debug, Clone)]
pub struct Accounting {
    pub origins: Vec<Origin>,
    pub norms: Vec<NormAccount>,
    pub graphs: Vec<GraphAccount>,
    /// The origins whose change reaches the model output (ODE functions' origins included
    /// through the ODE block), and how.
    pub output: Sig,
    /// What each norm of `norms` received (same order), for [`Accounting::norm_as`].
    norm_inputs: Vec<NormInput>,
    batch: usize,
    per_sample: bool,
    /// Where the accounting stopped because it did more than [`Accounting::limit`] (the node's
    /// span and name): nothing after it is accounted, so nothing may be claimed.
    pub truncated: Option<(Span, String)>,
    /// The work done (parts carried, verdicts stated), and the limit it ran under.
    pub work: usize,
    pub limit: usize,
}

impl Accounting {
    /// Whether the model output depends on t at all (at initialization).
    pub fn output_sees_t(&self) -> bool {
        !matches!(self.output, Sig::Independent)
    }
    /// Whether the model output is computed from t alone (no feature path reads t; the
    /// output does depend on t).
    pub fn output_time_only(&self, m: &ModelIr) -> bool {
        self.graphs
            .first()
            .and_then(|g| g.states.get(m.output))
            .is_some_and(|s| matches!(s, Sig::TimeOnly { .. }))
    }
    pub fn norm(&self, path: &str) -> Option<&NormAccount> {
        self.norms.iter().find(|n| n.node == path)
    }
}

/// Runs the accounting on a checked model.
pub fn account(m: &ModelIr) -> Accounting {
    account_with(m, m.train.batch)
}

/// The accounting for batches of `batch` samples (BatchNorm's units span the batch).
pub fn account_with(m: &ModelIr, batch: usize) -> Accounting {
    run(m, batch, None)
}

/// The accounting of `pairs` alone (origin path, norm path): each origin named there is
/// followed until it has reached every norm paired with it, the others not at all. The
/// verdict for each pair is the one [`account`] gives (an origin's parts are carried
/// independently of the others', and the per-node facts they meet do not depend on parts);
/// everything else is partial: origins are all listed, but the norms' verdicts and the output
/// hold only what the pairs needed. For checking a fix at its pairs in a fraction of the time.
pub fn account_pairs(m: &ModelIr, pairs: &[(String, String)]) -> Accounting {
    run(m, m.train.batch, Some(Focus::new(pairs)))
}

fn run(m: &ModelIr, batch: usize, focus: Option<Focus>) -> Accounting {
    let mut a = Acc {
        focus,
        batch: batch.max(1),
        per_sample: m.time.sharing == Sharing::PerSample,
        origins: Vec::new(),
        norms: Vec::new(),
        norm_inputs: Vec::new(),
        graphs: Vec::new(),
        tracked: 0,
        limit: limit::model_limit(m),
        truncated: None,
        labeled: Vec::new(),
        concat: Vec::new(),
    };
    let gi = a.graph(&m.graph, m.output, String::new());
    let output = a.graphs[gi]
        .states
        .get(m.output)
        .cloned()
        .unwrap_or(Sig::Independent);
    let output = match output {
        Sig::TimeOnly { .. } => Sig::Independent,
        s => s,
    };
    count_work(a.graphs.iter().map(|g| g.states.len()).sum(), a.tracked);
    Accounting {
        origins: a.origins,
        norms: a.norms,
        graphs: a.graphs,
        output,
        norm_inputs: a.norm_inputs,
        batch: a.batch,
        per_sample: a.per_sample,
        truncated: a.truncated,
        work: a.tracked,
        limit: a.limit,
    }
}

/// Per node of a graph so far: constant over H and W, mean-free on some norm's units, constant
/// over samples and space, exactly zero.
type NodeFlags<'a> = (&'a [bool], &'a [Option<Centered>], &'a [bool], &'a [bool]);

pub(super) struct Acc {
    /// `Some` for [`account_pairs`].
    pub(super) focus: Option<Focus>,
    pub(super) batch: usize,
    pub(super) per_sample: bool,
    pub(super) origins: Vec<Origin>,
    pub(super) norms: Vec<NormAccount>,
    pub(super) norm_inputs: Vec<NormInput>,
    pub(super) graphs: Vec<GraphAccount>,
    /// Work done so far (parts carried, verdicts stated), against [`MAX_ACCOUNTING_WORK`].
    pub(super) tracked: usize,
    /// The most work this accounting may do ([`work_limit`]).
    pub(super) limit: usize,
    pub(super) truncated: Option<(Span, String)>,
    /// Per graph, per node so far: whether the value depends on the class label.
    pub(super) labeled: Vec<Vec<bool>>,
    /// ConcatConv time channels made so far ([`ConcatKey`]): their energy and covariance after
    /// the conv.
    pub(super) concat: Vec<(ConcatKey, (f64, Rc<Cov>))>,
}

impl Acc {
    fn graph(&mut self, g: &Graph, output: NodeId, path: String) -> usize {
        let gi = self.graphs.len();
        self.graphs.push(GraphAccount {
            path: path.clone(),
            states: Vec::new(),
        });
        self.labeled.push(Vec::new());
        let mut states: Vec<Sig> = Vec::with_capacity(g.nodes.len());
        // Whether the whole value is constant over H, W (then so is any change of it).
        let mut flat_space: Vec<bool> = Vec::with_capacity(g.nodes.len());
        // Whether the value itself is mean-free on some norm's units (a norm's output at
        // initialization, γ = 1 and β = 0, and what keeps that exactly).
        let mut feat: Vec<Option<Centered>> = Vec::with_capacity(g.nodes.len());
        let mut const_all: Vec<bool> = Vec::with_capacity(g.nodes.len());
        // Whether the value is exactly 0 at initialization (a norm's β over single-valued
        // units, the whole-map average of a per-channel mean-free value, what keeps zeros).
        let mut zero: Vec<bool> = Vec::with_capacity(g.nodes.len());
        // Whether the value does not depend on the input batch (a function of t and the
        // weights alone, or a constant): every change of it is then the same for every sample
        // that shares t, whatever nonlinearity or norm it went through.
        let mut x_free: Vec<bool> = Vec::with_capacity(g.nodes.len());
        // Which rows and columns hold equal values (a map whose windows all average the same
        // positions is constant over H, W though no single op makes it so).
        let mut classes: Vec<space::Classes> = Vec::with_capacity(g.nodes.len());
        let (last_use, keep) = parts::last_uses(g, output);
        for (id, n) in g.nodes.iter().enumerate() {
            if self.truncated.is_some() {
                break;
            }
            let (_, h, w) = spatial(&n.shape);
            let inp = |k: usize| n.inputs.get(k).map(|&i| flat_space[i]).unwrap_or(false);
            let fin = n.inputs.first().and_then(|&i| feat[i]);
            let fc = match &n.op {
                Op::Norm { kind, channels, .. } => Some(Centered {
                    m: if matches!(kind, NormKind::Batch) {
                        0
                    } else {
                        kind.channels_per_unit(*channels).max(1)
                    },
                }),
                // Zeros keep a mean-free map mean-free.
                Op::Dropout { .. } | Op::Upsample { .. } | Op::Pad { .. } => fin,
                Op::AvgPool { k, stride } => fin.filter(|_| pool_tiles(n, g, *k, *stride)),
                _ => None,
            };
            // A conv that sees only padding outputs its bias: constant everywhere.
            let blind = match &n.op {
                Op::Conv { k, stride, pad, .. } => {
                    let (_, hi, wi) = n
                        .inputs
                        .first()
                        .map(|&i| spatial(&g.nodes[i].shape))
                        .unwrap_or((0, 0, 0));
                    !sees_input(hi, *k, *stride, *pad, h) || !sees_input(wi, *k, *stride, *pad, w)
                }
                _ => false,
            };
            // Constant over H, W whatever the positions' classes say (below, they say the rest).
            let fs = h * w == 1 || blind;
            // Whether the value is constant over samples and space too (a norm's output β when
            // every unit it normalized was constant): later norms then see f32 rounding only.
            let call = |k: usize| n.inputs.get(k).map(|&i| const_all[i]).unwrap_or(false);
            let ca = match &n.op {
                Op::Input
                | Op::Time
                | Op::Sinusoidal { .. }
                | Op::LearnedTime { .. }
                | Op::Fourier { .. }
                | Op::ClassEmbed { .. }
                | Op::Ode { .. } => false,
                Op::Norm { kind, channels, .. } => {
                    let m = kind.channels_per_unit(*channels).max(1);
                    call(0)
                        || single_value_units(*kind, m)
                            && (inp(0) || matches!(kind, NormKind::PerPosition))
                }
                Op::Conv { pad, time, .. } => {
                    blind || *pad == 0 && call(0) && *time == TimeChannel::None
                }
                // Divided by each sample's own t: no longer the same for every sample.
                Op::Inject { .. } | Op::ScaleShift { .. } | Op::Pad { .. } | Op::DivTime => false,
                Op::Add | Op::Concat => (0..n.inputs.len()).all(call),
                // The average over a whole map of a value mean-free per channel (a norm's
                // output with one channel per unit) is 0: constant up to rounding.
                Op::GlobalAvgPool => call(0) || fin.is_some_and(|c| c.m == 1),
                Op::AvgPool { k, .. } => {
                    let (_, hi, wi) = n
                        .inputs
                        .first()
                        .map(|&i| spatial(&g.nodes[i].shape))
                        .unwrap_or((0, 0, 0));
                    call(0) || *k == hi && *k == wi && fin.is_some_and(|c| c.m == 1)
                }
                _ => call(0),
            };
            let zin = |k: usize| n.inputs.get(k).map(|&i| zero[i]).unwrap_or(false);
            let z = match &n.op {
                Op::Norm { .. } => ca,
                Op::GlobalAvgPool => zin(0) || fin.is_some_and(|c| c.m == 1),
                Op::AvgPool { .. } => zin(0) || ca && !call(0),
                Op::Dropout { .. }
                | Op::Upsample { .. }
                | Op::Pad { .. }
                | Op::Flatten
                | Op::DivTime => zin(0),
                Op::Act { act } => zin(0) && *act != Act::Softplus,
                Op::Add | Op::Concat => (0..n.inputs.len()).all(zin),
                _ => false,
            };
            // A conv of zeros outputs its bias everywhere, padding or not.
            let conv_of_zero =
                matches!(n.op, Op::Conv { time, .. } if time == TimeChannel::None) && zin(0);
            let mut cls = space::Classes::of(n, |k| {
                let i = *n.inputs.get(k)?;
                matches!(g.nodes[i].shape, Shape::Image { .. }).then(|| &classes[i])
            });
            if fs || z || conv_of_zero {
                cls = space::Classes::same(h, w);
            }
            let (fs, ca) = (cls.flat(), ca || z || conv_of_zero);
            let xf = ca
                || match &n.op {
                    // Each sample's own label: a later change differs from sample to sample.
                    Op::Input | Op::ClassEmbed { .. } => false,
                    Op::Time
                    | Op::Sinusoidal { .. }
                    | Op::LearnedTime { .. }
                    | Op::Fourier { .. } => true,
                    _ => !n.inputs.is_empty() && n.inputs.iter().all(|&i| x_free[i]),
                };
            let mut s = self.node(
                gi,
                &path,
                id,
                n,
                g,
                &states,
                (&flat_space, &feat, &const_all, &zero),
            );
            if let (Some(f), Sig::Depends(parts)) = (&self.focus, &mut s) {
                parts.retain(|p| f.follows(p.origin));
            }
            if let Sig::Depends(parts) = &mut s {
                if xf {
                    parts.iter_mut().for_each(|p| p.input_free = true);
                }
                if !keeps_scaled_mean_free(n, g) {
                    parts.iter_mut().for_each(|p| p.scaled_mean_free = false);
                }
            }
            self.tracked += s.parts().len();
            if self.tracked > self.limit {
                self.truncated = Some((n.span, n.name.clone()));
            }
            // Followed along the time branch only: an origin carries the label when the value
            // it brings in (its embedding) does, not when the features it meets do.
            let lab = n.time_branch
                && (matches!(n.op, Op::ClassEmbed { .. })
                    || n.inputs
                        .iter()
                        .any(|&i| self.labeled[gi].get(i) == Some(&true)));
            self.labeled[gi].push(lab);
            states.push(s);
            for &i in &n.inputs {
                if last_use.get(i) == Some(&id) && !keep[i] {
                    if let Some(Sig::Depends(v)) = states.get_mut(i) {
                        *v = Vec::new();
                    }
                }
            }
            x_free.push(xf);
            classes.push(cls);
            flat_space.push(fs);
            feat.push(fc);
            const_all.push(ca);
            zero.push(z);
        }
        self.graphs[gi].states = states;
        gi
    }

    fn origin(&mut self, gi: usize, gpath: &str, id: NodeId, n: &Node, kind: OriginKind) -> usize {
        let label = n
            .inputs
            .iter()
            .any(|&i| self.labeled.get(gi).and_then(|l| l.get(i)) == Some(&true));
        self.origins.push(Origin {
            label,
            path: n.name.clone(),
            kind,
            span: n.span,
            graph: gpath.to_string(),
            graph_index: gi,
            node: id,
            allow: n.allow.clone(),
        });
        if let Some(f) = &mut self.focus {
            f.origin(&n.name);
        }
        self.origins.len() - 1
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        gi: usize,
        gpath: &str,
        id: NodeId,
        n: &Node,
        g: &Graph,
        states: &[Sig],
        (flat_space, feat, const_all, zero): NodeFlags,
    ) -> Sig {
        let input = |k: usize| -> &Sig {
            n.inputs
                .get(k)
                .and_then(|&i| states.get(i))
                .unwrap_or(&Sig::Independent)
        };
        let in_shape = |k: usize| -> Shape {
            n.inputs
                .get(k)
                .and_then(|&i| g.nodes.get(i))
                .map(|x| x.shape)
                .unwrap_or(n.shape)
        };
        let (c_out, h_out, w_out) = spatial(&n.shape);
        match &n.op {
            Op::Input => return Sig::Independent,
            Op::Time => return Sig::TimeOnly { iid: false },
            _ => {}
        }
        let time_only = !n.inputs.is_empty()
            && (0..n.inputs.len()).all(|k| matches!(input(k), Sig::TimeOnly { .. }));
        if time_only && !matches!(n.op, Op::Ode { .. }) {
            return Sig::TimeOnly {
                iid: matches!(n.op, Op::Linear { .. }),
            };
        }
        // Most ops pass on about one part per arriving part: reserve once.
        let arriving = (0..n.inputs.len())
            .map(|k| input(k).parts().len())
            .sum::<usize>();
        let mut out: Vec<Part> = Vec::with_capacity(arriving + 1);
        match &n.op {
            Op::Input | Op::Time => {}
            Op::Conv {
                cin,
                cout,
                k,
                stride,
                pad,
                groups,
                time,
                ..
            } => {
                let extra = usize::from(*time != TimeChannel::None);
                let var = weight_var((cin + extra) / (*groups).max(1) * k * k);
                let geo = (*k, *stride, *pad);
                // A 1x1 convolution mixes channels pointwise: channels that were mean-free (per
                // sample over H, W, or over the batch too) stay so.
                let pointwise = *k == 1 && *stride == 1 && *pad == 0;
                // A kernel whose every tap, at every output position, falls in the padding
                // sees nothing of its input (a strided 1x1 conv with padding on a tiny map).
                let (_, hi, wi) = spatial(&in_shape(0));
                let blind = !sees_input(hi, *k, *stride, *pad, h_out)
                    || !sees_input(wi, *k, *stride, *pad, w_out);
                for p in input(0).parts().iter().filter(|_| !blind) {
                    let keep = p.centered.filter(|c| pointwise && c.m <= 1);
                    let mut q = map_lin(p, keep, |l| Lin {
                        lineage: (gi, id),
                        ..l.with_cov(l.cov.conv(*cout, *groups, var, geo, (h_out, w_out)))
                    });
                    q.inexact = p.inexact.map(|_| false);
                    // All taps valid everywhere: a constant map stays constant.
                    q.flat &= *pad == 0;
                    out.push(q);
                }
                if *time != TimeChannel::None {
                    let (_, h, w) = spatial(&in_shape(0));
                    let positional = *time == TimeChannel::Positional;
                    let from_constant = !positional;
                    let kind = [OriginKind::ConcatConstant, OriginKind::ConcatPositional];
                    let o = self.origin(gi, gpath, id, n, kind[usize::from(positional)]);
                    // The same channel through the same conv: formed once per accounting.
                    let key = (positional, h, w, *cout, var.to_bits(), geo, (h_out, w_out));
                    let known = self.concat.iter().find(|(k, _)| *k == key);
                    let (src_energy, cov) = match known {
                        Some((_, v)) => v.clone(),
                        None => {
                            let src = match positional {
                                true => positional_cov(1, h, w),
                                false => offset_cov(1, h, w),
                            };
                            let conv = src.conv(*cout, 1, var, geo, (h_out, w_out));
                            let v = (src.energy(), Rc::new(conv));
                            self.concat.push((key, v.clone()));
                            v
                        }
                    };
                    // The taps may see only zeros of the pattern (its centre on a 1 x 1 or
                    // 3 x 3 map, where the cosines vanish): then nothing enters.
                    if src_energy > 1e-12 * (h * w) as f64
                        && cov.energy() > 1e-12 * var * src_energy
                    {
                        let mut p = fresh_lin(o, cov, (gi, id), from_constant);
                        p.flat = from_constant && *pad == 0;
                        if pointwise && !from_constant && zero_mean_patterns(1, h, w) {
                            p.centered = Some(Centered { m: 1 });
                        }
                        out.push(fix_lin(p));
                    }
                }
            }
            Op::Linear { din, dout, .. } => {
                let var = weight_var(*din);
                for p in input(0).parts() {
                    // Mixing features keeps a batch-mean-free change batch-mean-free.
                    let keep = p.centered.filter(|c| c.m == 0);
                    let mut q = map_lin(p, keep, |l| Lin {
                        lineage: (gi, id),
                        flat: false,
                        ..l.with_cov(l.cov.linear(*dout, var))
                    });
                    q.inexact = p.inexact.map(|_| false);
                    out.push(q);
                }
            }
            Op::Flatten => {
                for p in input(0).parts() {
                    let (_, h, w) = spatial(&in_shape(0));
                    out.push(Part {
                        lin: p.lin.clone().map(|mut l| {
                            l.flat = l.flat || h * w > 1;
                            l
                        }),
                        centered: if h * w == 1 { p.centered } else { None },
                        ..p.shell()
                    });
                }
            }
            // Dropout is off where the numbers hold (evaluation, and the probe); in training it
            // multiplies by an independent mask and no number is stated for it.
            Op::Dropout { .. } => out.extend_from_slice(input(0).parts()),
            Op::AvgPool { k, stride } => {
                // Windows that tile the map exactly keep every channel's spatial mean.
                let (_, h, w) = spatial(&in_shape(0));
                let tiles = pool_tiles(n, g, *k, *stride);
                // One window over the whole map: a change mean-free per channel averages to 0.
                let whole = *k == h && *k == w;
                for p in input(0).parts() {
                    if whole && p.centered.is_some_and(|c| c.m == 1) {
                        continue;
                    }
                    let Some(p) = (if whole {
                        pooled_whole(p)
                    } else {
                        Some(Cow::Borrowed(p))
                    }) else {
                        continue;
                    };
                    let p = &*p;
                    out.push(map_lin(p, p.centered.filter(|_| tiles), |l| Lin {
                        ..l.with_cov(l.cov.pool(*k, *stride, (h_out, w_out)))
                    }));
                }
            }
            Op::GlobalAvgPool => {
                for p in input(0).parts().iter().filter_map(pooled_whole) {
                    let p = &*p;
                    match p.centered {
                        // Mean-free over H, W per sample and channel: the average is exactly 0.
                        Some(c) if c.m == 1 => {}
                        // Mean-free per channel over the batch: so are the averages.
                        keep => out.push(map_lin(p, keep.filter(|c| c.m == 0), |l| Lin {
                            ..l.with_cov(l.cov.global_pool())
                        })),
                    }
                }
            }
            Op::Upsample { factor } => {
                for p in input(0).parts() {
                    out.push(map_lin(p, p.centered, |l| Lin {
                        ..l.with_cov(l.cov.upsample(*factor))
                    }));
                }
            }
            // Zeros around the map: a constant is no longer constant over H, W (the border
            // structure a padded conv gives it); a mean-free change stays mean-free.
            Op::Pad { before, after } => {
                for p in input(0).parts() {
                    let mut q = map_lin(p, p.centered, |l| Lin {
                        ..l.with_cov(l.cov.pad(*before, *after))
                    });
                    q.flat = false;
                    out.push(q);
                }
            }
            Op::Act { .. } => out.extend(input(0).parts().iter().map(to_alive)),
            Op::Add => {
                for k in 0..n.inputs.len() {
                    match input(k) {
                        Sig::TimeOnly { iid } => {
                            let o = self.origin(gi, gpath, id, n, OriginKind::Add);
                            out.push(if *iid {
                                fresh_lin(o, offset_cov(c_out, h_out, w_out), (gi, id), true)
                            } else {
                                Part {
                                    origin: o,
                                    lin: None,
                                    inexact: Some(false),
                                    alive: false,
                                    centered: None,
                                    unsure: false,
                                    flat: false,
                                    input_free: false,
                                    scaled_mean_free: false,
                                }
                            });
                        }
                        s => out.extend_from_slice(s.parts()),
                    }
                }
                out = merge(out, combine_sum);
                return finish(out);
            }
            Op::Concat => {
                // Channel ranges of the inputs, to place each part's covariance.
                let widths: Vec<usize> = (0..n.inputs.len())
                    .map(|k| spatial(&in_shape(k)).0)
                    .collect();
                let mut by_origin: Vec<(usize, Vec<InputPart>)> = Vec::new();
                for k in 0..n.inputs.len() {
                    let parts: Vec<Part> = match input(k) {
                        Sig::TimeOnly { .. } => {
                            let o = self.origin(gi, gpath, id, n, OriginKind::Add);
                            vec![Part {
                                origin: o,
                                lin: None,
                                inexact: Some(false),
                                alive: false,
                                centered: None,
                                unsure: false,
                                flat: false,
                                input_free: false,
                                scaled_mean_free: false,
                            }]
                        }
                        s => s.parts().to_vec(),
                    };
                    for p in parts {
                        let slot = match by_origin.iter_mut().find(|e| e.0 == p.origin) {
                            Some(s) => s,
                            None => {
                                by_origin.push((p.origin, Vec::new()));
                                by_origin.last_mut().expect("just pushed")
                            }
                        };
                        slot.1.push((k, Some(p)));
                    }
                }
                for (origin, parts) in by_origin {
                    out.push(concat_parts(origin, &parts, &widths, (h_out, w_out)));
                }
            }
            Op::Inject { mode, .. } => {
                out.extend_from_slice(input(0).parts());
                match input(1) {
                    Sig::Independent => {}
                    Sig::TimeOnly { .. } => {
                        let (kind, cov, constant) = match mode {
                            InjectMode::Offset => (
                                OriginKind::InjectOffset,
                                offset_cov(c_out, h_out, w_out),
                                true,
                            ),
                            InjectMode::Positional => (
                                OriginKind::InjectPositional,
                                positional_cov(c_out, h_out, w_out),
                                false,
                            ),
                        };
                        let o = self.origin(gi, gpath, id, n, kind);
                        // A pattern that vanishes on this map (cosines at their zeros) adds nothing.
                        if cov.energy() > 1e-12 * (c_out * h_out * w_out) as f64 {
                            let mut p = fresh_lin(o, cov, (gi, id), constant);
                            // The patterns have zero mean over every (H, W) plane (but on a
                            // map one pixel high or wide).
                            if *mode == InjectMode::Positional
                                && zero_mean_patterns(c_out, h_out, w_out)
                            {
                                p.centered = Some(Centered { m: 1 });
                            }
                            out.push(fix_lin(p));
                        }
                    }
                    s @ Sig::Depends(_) => {
                        // The embedding carries other origins' changes (and features).
                        for p in s.parts() {
                            out.push(Part {
                                lin: None,
                                inexact: if p.lin.is_some() || p.inexact.is_some() {
                                    Some(false)
                                } else {
                                    None
                                },
                                centered: None,
                                ..p.shell()
                            });
                        }
                        let o = self.origin(gi, gpath, id, n, OriginKind::Feature);
                        out.push(alive_part(o, false));
                    }
                }
                out = merge(out, combine_sum);
                return finish(out);
            }
            Op::ScaleShift { .. } => {
                // h·(1 + s(t0)) + b(t0): other origins' changes are scaled per channel by an
                // independent random factor of unknown mean square.
                for p in input(0).parts() {
                    out.push(rescaled(p, |c| c.m == 1));
                }
                match input(1) {
                    Sig::Independent => {}
                    Sig::TimeOnly { .. } => {
                        let o = self.origin(gi, gpath, id, n, OriginKind::ScaleShift);
                        // Δ = h·Δs + Δb: a per-channel scale of the features and an offset;
                        // features that are exactly 0 leave only the offset.
                        let mut p = fresh_lin(o, offset_cov(c_out, h_out, w_out), (gi, id), true);
                        if !n.inputs.first().is_some_and(|&i| zero[i]) {
                            p.inexact = Some(true);
                            p.flat = false;
                            p.input_free = false;
                            p.scaled_mean_free = n
                                .inputs
                                .first()
                                .is_some_and(|&i| feat[i] == Some(Centered { m: 1 }));
                        }
                        out.push(p);
                    }
                    s @ Sig::Depends(_) => {
                        for p in s.parts() {
                            out.push(to_alive(p));
                        }
                        let o = self.origin(gi, gpath, id, n, OriginKind::Feature);
                        out.push(alive_part(o, false));
                    }
                }
                out = merge(out, combine_sum);
                return finish(out);
            }
            Op::Sinusoidal { .. } | Op::LearnedTime { .. } | Op::Fourier { .. } => {}
            // A label's row added to an embedding: the same change of t.
            Op::ClassEmbed { .. } => out.extend_from_slice(input(0).parts()),
            Op::DivTime => {
                // h / t: a change of the features is scaled by each sample's 1/t (the same over
                // its channels and positions: mean-free per sample stays so, per batch not).
                for p in input(0).parts() {
                    out.push(rescaled(p, |c| c.m != 0));
                }
                // The change of t itself gives h·Δ(1/t): along the features, no number stated
                // (a later per-sample norm's variance normalization would remove it).
                if matches!(input(1), Sig::TimeOnly { .. })
                    && !n.inputs.first().is_some_and(|&i| zero[i])
                {
                    let o = self.origin(gi, gpath, id, n, OriginKind::DivTime);
                    out.push(alive_part(o, false));
                }
                out = merge(out, combine_sum);
                return finish(out);
            }
            Op::Norm { kind, channels, .. } => {
                let shape = in_shape(0);
                let fs = n.inputs.first().map(|&i| flat_space[i]).unwrap_or(false);
                let fc = n.inputs.first().and_then(|&i| feat[i]);
                let ca = n.inputs.first().map(|&i| const_all[i]).unwrap_or(false);
                out = self.norm(
                    gi,
                    gpath,
                    id,
                    n.name.clone(),
                    n.span,
                    *kind,
                    *channels,
                    shape,
                    (fs, fc, ca),
                    (input(0), n.inputs.first().copied()),
                    false,
                );
            }
            Op::Attention { norm: None, .. } => {
                // No norm: the change reaches q, k and v as it arrives; the residual carries
                // it unchanged and the branch is alive wherever it arrives.
                out.extend_from_slice(input(0).parts());
                out.extend(input(0).parts().iter().map(to_alive));
                out = merge(out, combine_sum);
                return finish(out);
            }
            Op::Attention {
                channels,
                norm: Some(norm),
                ..
            } => {
                let shape = in_shape(0);
                let fs = n.inputs.first().map(|&i| flat_space[i]).unwrap_or(false);
                let fc = n.inputs.first().and_then(|&i| feat[i]);
                let ca = n.inputs.first().map(|&i| const_all[i]).unwrap_or(false);
                let inner = self.norm(
                    gi,
                    gpath,
                    id,
                    format!("{}.norm", n.name),
                    n.span,
                    *norm,
                    *channels,
                    shape,
                    (fs, fc, ca),
                    (input(0), None),
                    true,
                );
                // The residual carries the input's change unchanged; the branch is alive for
                // every origin its norm lets through.
                out.extend_from_slice(input(0).parts());
                for p in inner {
                    out.push(alive_part(p.origin, p.unsure));
                }
                out = merge(out, combine_sum);
                return finish(out);
            }
            Op::Ode { func, .. } => {
                out.extend(input(0).parts().iter().map(to_alive));
                let fi = self.graph(&func.graph, func.output, n.name.clone());
                let fout = self.graphs[fi]
                    .states
                    .get(func.output)
                    .cloned()
                    .unwrap_or(Sig::Independent);
                out.extend(fout.parts().iter().map(to_alive));
                if matches!(fout, Sig::TimeOnly { .. }) {
                    let o = self.origin(gi, gpath, id, n, OriginKind::Add);
                    out.push(alive_part(o, false));
                }
            }
        }
        out = merge(out, combine_sum);
        finish(out)
    }
}

#[cfg(test)]
mod tests;
