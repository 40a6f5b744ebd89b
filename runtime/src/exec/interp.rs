//! The graph interpreter: a checked IR graph, an input batch, the time values and a tape in;
//! every node's value (tape-free) and the tape holding all backward ops out.
//!
//! Values are stored without tapes; one tape is threaded through the graph: each op takes it on
//! its primary input and gives it back on its output, and parameters join with an empty tape
//! of the same kind, so gradients reach every parameter by id. With `NoneTape` this is plain
//! inference; with `OwnedTape` it is a training step. An ODE block hands its function graph to
//! the solvers of [`ode`](super::ode) as the right-hand side, run by this interpreter once per
//! evaluation.

use super::embed::{fourier_of, pattern, sinusoidal_of};
use super::fuse;
use super::ode::{Ode, OdeRhs};
use super::operands::{conv_params, inject_offset, norm_affine, time_plane};
use super::tensors::{dropout, Broadcast4};
use crate::ops::{
    self, Activation, Conv2dCfg, Epilogue, GroupNormCfg, Kernels, RunningStats, Tensor1, Tensor2,
    Tensor4, Unary,
};
use crate::params::Params;
use crate::RuntimeError;
use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Merge, NoneTape, PutTape, SplitTape, Tape, Tensor};
use dfdx::tensor_ops::{Device, ReshapeTo, TryMul};
use rand::rngs::StdRng;
use std::collections::HashMap;
use tdspec_compiler::ir::{
    Act, Graph, InjectMode, Node, NodeId, NormKind, OdeFunc, Op, Solver, TimeChannel,
};

/// A node's value, without tape.
#[derive(Clone, Debug)]
pub enum Value<D: Device<f32>> {
    Image(Tensor4<D>),
    Vector(Tensor2<D>),
    /// One time value per sample.
    Time(Vec<f32>),
}

impl<D: Device<f32>> Value<D> {
    pub fn image(&self) -> Result<&Tensor4<D>, RuntimeError> {
        match self {
            Value::Image(t) => Ok(t),
            _ => Err(RuntimeError::Internal("expected a feature map".into())),
        }
    }
    pub fn vector(&self) -> Result<&Tensor2<D>, RuntimeError> {
        match self {
            Value::Vector(t) => Ok(t),
            _ => Err(RuntimeError::Internal("expected a vector".into())),
        }
    }
    /// Host copy of the values (for probes and solvers).
    pub fn to_vec(&self) -> Vec<f32> {
        match self {
            Value::Image(t) => t.as_vec(),
            Value::Vector(t) => t.as_vec(),
            Value::Time(v) => v.clone(),
        }
    }
}

/// Something that watches node values as they are computed (the probe).
pub trait Observer<D: Device<f32>> {
    fn node(&mut self, path: &str, node: &Node, inputs: &[&Value<D>], out: &Value<D>);
}

/// Execution settings and counters of one forward pass.
pub struct Exec<'a, D: Kernels> {
    pub params: &'a Params<D>,
    pub dev: D,
    /// Training mode: batch statistics in BatchNorm, dropout active.
    pub train: bool,
    pub rng: Option<&'a mut StdRng>,
    /// New BatchNorm running statistics computed in training mode, by node name.
    pub bn_updates: Vec<(String, Vec<f32>, Vec<f32>)>,
    /// Function evaluations of ODE right-hand sides.
    pub nfe: usize,
    pub observer: Option<&'a mut dyn Observer<D>>,
    /// Most solver steps an adaptive ODE block may take.
    pub max_ode_steps: usize,
    /// Values that replace the named nodes' results (tests feed embeddings this way).
    pub overrides: HashMap<String, Value<D>>,
    /// One node that reads other values for some of its inputs (the probe changes t at one
    /// origin only this way).
    pub swap: Option<Swap<D>>,
    /// Each sample's class label (class-conditional models); empty: sample i takes label
    /// i mod N.
    pub labels: Vec<usize>,
    /// Run a norm and the activation that alone reads it as one fused op, and a group norm (or
    /// its activation) that only a convolution reads together with that convolution (on by
    /// default; never with an observer, overrides or a swap, which see every node). The fused
    /// norm's (and activation's) own values are then not kept: turn this off to read them
    /// from [`Exec::run`]'s values.
    pub fuse: bool,
}

/// Inputs replaced for one node of one graph: `(input node, value)` pairs.
pub struct Swap<D: Device<f32>> {
    /// The graph holding the node, by address (ODE functions are graphs of their own).
    pub graph: *const Graph,
    pub node: NodeId,
    pub values: Vec<(NodeId, Value<D>)>,
}

type R<T> = Result<T, RuntimeError>;

fn op_err(e: ops::OpsError) -> RuntimeError {
    RuntimeError::Op(e.to_string())
}

impl<'a, D: Kernels> Exec<'a, D> {
    pub fn new(params: &'a Params<D>, train: bool) -> Self {
        Exec {
            dev: params.dev.clone(),
            params,
            train,
            rng: None,
            bn_updates: Vec::new(),
            nfe: 0,
            observer: None,
            max_ode_steps: 10_000,
            overrides: HashMap::new(),
            swap: None,
            labels: Vec::new(),
            fuse: true,
        }
    }

    fn param<S: Shape, T: Tape<f32, D>>(&self, name: &str, shape: S) -> R<Tensor<S, f32, D, T>> {
        super::operands::param(self.params, name, shape)
    }

    /// Runs `g` with the given input value and time values (one per sample). `keep`: the nodes
    /// whose values the caller reads from the result (the output); a fused norm's own value is
    /// not kept, so a norm in `keep` is never fused.
    pub fn run<T>(
        &mut self,
        g: &Graph,
        keep: &[NodeId],
        input: Value<D>,
        time: &[f32],
        mut tape: T,
    ) -> R<(Vec<Option<Value<D>>>, T)>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default,
    {
        let mut vals: Vec<Option<Value<D>>> = vec![None; g.nodes.len()];
        let mut input = Some(input);
        let fusing = self.fuse
            && self.observer.is_none()
            && self.swap.is_none()
            && self.overrides.is_empty();
        let fused = if fusing {
            fuse::fused_norms(g, keep)
        } else {
            Vec::new()
        };
        // Nodes whose values a fused op computed, or made unnecessary.
        let mut done = vec![false; g.nodes.len()];
        // The fused norm-convolution groups, each run at the place of its last node (a
        // ConcatConv's time or a sum's other value may come after the norm): its norm.
        let mut pending: Vec<Option<(NodeId, fuse::Fused)>> = vec![None; g.nodes.len()];
        for (id, node) in g.nodes.iter().enumerate() {
            if vals[id].is_some() || done[id] {
                continue;
            }
            if let Some((nid, f)) = pending[id] {
                let (v, t) = self.norm_conv_node(g, nid, f, &vals, tape)?;
                tape = t;
                vals[id] = Some(v);
                continue;
            }
            if let Some(&Some(f)) = fused.get(id) {
                if let Some(Value::Image(_)) = node.inputs.first().and_then(|&i| vals[i].as_ref()) {
                    match f.last() {
                        Some(last) => {
                            pending[last] = Some((id, f));
                            for j in [f.act.map(|a| a.0), f.conv].into_iter().flatten() {
                                done[j] = j != last;
                            }
                        }
                        None => {
                            let act = f.act.map_or(Activation::Identity, |(_, a)| a);
                            let (v, t) = self.norm_node(node, &vals, tape, act)?;
                            tape = t;
                            // A norm fuses without a convolution only with an activation.
                            let j = f.act.map_or(id, |(j, _)| j);
                            vals[j] = Some(v);
                        }
                    }
                    continue;
                }
            }
            let out = match &node.op {
                _ if self.overrides.contains_key(&node.name) => self.overrides[&node.name].clone(),
                Op::Input => input
                    .take()
                    .ok_or_else(|| RuntimeError::Internal("two inputs".into()))?,
                Op::Time => Value::Time(time.to_vec()),
                _ => {
                    let swapped: Vec<(NodeId, Value<D>)> = match &self.swap {
                        Some(s) if std::ptr::eq(s.graph, g) && s.node == id => s.values.clone(),
                        _ => Vec::new(),
                    };
                    let n_vals = vals.len();
                    let saved: Vec<(NodeId, Option<Value<D>>)> = swapped
                        .into_iter()
                        .filter(|(i, _)| *i < n_vals)
                        .map(|(i, v)| (i, vals[i].replace(v)))
                        .collect();
                    let r = self.node(node, &vals, tape);
                    for (i, v) in saved {
                        vals[i] = v;
                    }
                    let (v, t) = r?;
                    tape = t;
                    v
                }
            };
            if let Some(obs) = self.observer.as_deref_mut() {
                let ins: Vec<&Value<D>> = node
                    .inputs
                    .iter()
                    .filter_map(|&i| vals[i].as_ref())
                    .collect();
                obs.node(&node.name, node, &ins, &out);
            }
            vals[id] = Some(out);
        }
        Ok((vals, tape))
    }

    fn node<T>(&mut self, node: &Node, vals: &[Option<Value<D>>], tape: T) -> R<(Value<D>, T)>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default,
    {
        let input = |i: usize| -> R<&Value<D>> {
            node.inputs
                .get(i)
                .and_then(|&id| vals[id].as_ref())
                .ok_or_else(|| {
                    RuntimeError::Internal(format!(
                        "`{}` reads a value not computed yet",
                        node.name
                    ))
                })
        };
        let name = node.name.as_str();
        Ok(match &node.op {
            Op::Input | Op::Time => unreachable!("handled by run"),
            Op::Conv { time: tc, .. } => {
                let x = input(0)?.image()?.clone();
                let (b, _, h, w) = *x.shape();
                let (wt, bt, cfg) = conv_params::<D, T>(self.params, node)?;
                let out = if *tc == TimeChannel::None {
                    ops::conv2d(x.put_tape(tape), wt, bt, cfg).map_err(op_err)?
                } else {
                    let Value::Time(tv) = input(1)? else {
                        return Err(RuntimeError::Internal("time channel without time".into()));
                    };
                    if tv.len() != b {
                        return Err(RuntimeError::Internal(format!(
                            "{} time values for a batch of {b}",
                            tv.len()
                        )));
                    }
                    let plane = time_plane(*tc, h, w);
                    ops::conv2d_time(x.put_tape(tape), tv, &plane, wt, bt, cfg).map_err(op_err)?
                };
                let (o, t) = out.split_tape();
                (Value::Image(o), t)
            }
            Op::Linear { din, dout, bias } => {
                let x = input(0)?.vector()?.clone();
                let wt: Tensor2<D, T> = self.param(&format!("{name}.weight"), (*dout, *din))?;
                let bt: Option<Tensor1<D, T>> = if *bias {
                    Some(self.param(&format!("{name}.bias"), (*dout,))?)
                } else {
                    None
                };
                let (o, t) = ops::linear(x.put_tape(tape), wt, bt)
                    .map_err(op_err)?
                    .split_tape();
                (Value::Vector(o), t)
            }
            Op::Norm { .. } => self.norm_node(node, vals, tape, Activation::Identity)?,
            Op::Act { act } => {
                let u = match act {
                    Act::Relu => Unary::Relu,
                    Act::Silu => Unary::Silu,
                    Act::Tanh => Unary::Tanh,
                    Act::Softplus => Unary::Softplus,
                };
                match input(0)? {
                    Value::Image(x) => {
                        let (o, t) = ops::unary(x.clone().put_tape(tape), u)
                            .map_err(op_err)?
                            .split_tape();
                        (Value::Image(o), t)
                    }
                    Value::Vector(x) => {
                        let (o, t) = ops::unary(x.clone().put_tape(tape), u)
                            .map_err(op_err)?
                            .split_tape();
                        (Value::Vector(o), t)
                    }
                    Value::Time(_) => {
                        return Err(RuntimeError::Internal("activation of raw time".into()))
                    }
                }
            }
            Op::Dropout { p } => {
                let v = input(0)?.clone();
                // Dropout is active in training with a random source; probes run without one.
                if !self.train || *p == 0.0 || self.rng.is_none() {
                    (v, tape)
                } else {
                    let rng = self
                        .rng
                        .as_deref_mut()
                        .ok_or_else(|| RuntimeError::Internal("dropout needs a seed".into()))?;
                    let keep = 1.0 - *p as f32;
                    match v {
                        Value::Image(x) => {
                            let (o, t) =
                                dropout(&self.dev, x.put_tape(tape), keep, rng)?.split_tape();
                            (Value::Image(o), t)
                        }
                        Value::Vector(x) => {
                            let (o, t) =
                                dropout(&self.dev, x.put_tape(tape), keep, rng)?.split_tape();
                            (Value::Vector(o), t)
                        }
                        Value::Time(_) => {
                            return Err(RuntimeError::Internal("dropout of raw time".into()))
                        }
                    }
                }
            }
            Op::AvgPool { k, stride } => {
                let x = input(0)?.image()?.clone();
                let (o, t) = ops::avg_pool2d(x.put_tape(tape), *k, *stride)
                    .map_err(op_err)?
                    .split_tape();
                (Value::Image(o), t)
            }
            Op::GlobalAvgPool => {
                let x = input(0)?.image()?.clone();
                let (b, c, _, _) = *x.shape();
                let (o, t) = ops::global_avg_pool(x.put_tape(tape))
                    .map_err(op_err)?
                    .split_tape();
                (Value::Image(o.reshape_like(&(b, c, 1usize, 1usize))), t)
            }
            Op::Pad { before, after } => {
                let x = input(0)?.image()?.clone().put_tape(tape);
                let (o, t) = ops::pad2d(x, *before, *after).map_err(op_err)?.split_tape();
                (Value::Image(o), t)
            }
            Op::Upsample { factor } => {
                let x = input(0)?.image()?.clone().put_tape(tape);
                let (o, t) = ops::upsample_nearest(x, *factor)
                    .map_err(op_err)?
                    .split_tape();
                (Value::Image(o), t)
            }
            Op::Attention {
                channels,
                heads,
                norm,
                eps,
            } => {
                let x = input(0)?.image()?.clone();
                let c = x.shape().1;
                let wq: Tensor4<D, T> =
                    self.param(&format!("{name}.qkv.weight"), (3 * c, c, 1, 1))?;
                let bq: Tensor1<D, T> = self.param(&format!("{name}.qkv.bias"), (3 * c,))?;
                let one = Conv2dCfg::default();
                let groups = norm.and_then(|kind| fuse::norm_groups(&kind, *channels));
                let norm_name = format!("{name}.norm");
                let qkv = match (norm, groups) {
                    // A group norm and the q, k, v projection as one op.
                    (Some(_), Some(groups)) if self.fuse => {
                        let (gamma, beta) = norm_affine::<D, T>(self.params, &norm_name, c, true)?;
                        let cfg = GroupNormCfg {
                            groups,
                            eps: *eps as f32,
                            act: Activation::Identity,
                        };
                        let x = x.clone().put_tape(tape);
                        let none = Epilogue::None;
                        ops::group_norm_conv2d(x, gamma, beta, cfg, wq, Some(bq), one, None, none)
                    }
                    (Some(kind), _) => {
                        let (gamma, beta) = norm_affine::<D, T>(self.params, &norm_name, c, true)?;
                        let x = x.clone().put_tape(tape);
                        let id = Activation::Identity;
                        let normed =
                            self.norm(&norm_name, *kind, *channels, *eps, x, gamma, beta, id)?;
                        ops::conv2d(normed, wq, Some(bq), one)
                    }
                    (None, _) => ops::conv2d(x.clone().put_tape(tape), wq, Some(bq), one),
                }
                .map_err(op_err)?;
                let att = ops::attention_qkv(qkv, *heads).map_err(op_err)?;
                let wp: Tensor4<D, T> = self.param(&format!("{name}.proj.weight"), (c, c, 1, 1))?;
                let bp: Tensor1<D, T> = self.param(&format!("{name}.proj.bias"), (c,))?;
                let proj = ops::conv2d(att, wp, Some(bp), Conv2dCfg::default()).map_err(op_err)?;
                let (o, t) = ops::add(proj, x.retaped::<T>())
                    .map_err(op_err)?
                    .split_tape();
                (Value::Image(o), t)
            }
            Op::Flatten => {
                let v = input(0)?.clone();
                match v {
                    Value::Image(x) => {
                        let (b, c, h, w) = *x.shape();
                        let (o, t) = x.put_tape(tape).reshape_like(&(b, c * h * w)).split_tape();
                        (Value::Vector(o), t)
                    }
                    other => (other, tape),
                }
            }
            Op::Add => {
                let (a, b) = (input(0)?.clone(), input(1)?.clone());
                match (a, b) {
                    (Value::Image(a), Value::Image(b)) => {
                        let (o, t) = ops::add(a.put_tape(tape), b.retaped::<T>())
                            .map_err(op_err)?
                            .split_tape();
                        (Value::Image(o), t)
                    }
                    (Value::Vector(a), Value::Vector(b)) => {
                        let (o, t) = ops::add(a.put_tape(tape), b.retaped::<T>())
                            .map_err(op_err)?
                            .split_tape();
                        (Value::Vector(o), t)
                    }
                    _ => return Err(RuntimeError::Internal("add of different kinds".into())),
                }
            }
            Op::Concat => {
                let mut acc = input(0)?.image()?.clone().put_tape(tape);
                for i in 1..node.inputs.len() {
                    let nxt = input(i)?.image()?.clone();
                    acc = ops::concat_channels(acc, nxt.retaped::<T>()).map_err(op_err)?;
                }
                let (o, t) = acc.split_tape();
                (Value::Image(o), t)
            }
            Op::Sinusoidal {
                dim,
                scale,
                flip,
                shift,
                max_period,
            } => {
                let Value::Time(tv) = input(0)? else {
                    return Err(RuntimeError::Internal("sinusoidal of a tensor".into()));
                };
                let freqs = tdspec_compiler::accounting::embedding::frequencies_of(
                    *dim,
                    *shift,
                    *max_period,
                );
                let data = sinusoidal_of(tv, &freqs, *scale, *flip);
                (
                    Value::Vector(self.dev.tensor_from_vec(data, (tv.len(), *dim))),
                    tape,
                )
            }
            Op::LearnedTime { steps, dim } => {
                let Value::Time(tv) = input(0)? else {
                    return Err(RuntimeError::Internal("learned of a tensor".into()));
                };
                // The rows of the steps as a one-hot product, so the table's gradient is the
                // tape's own.
                let (b, n) = (tv.len(), *steps);
                let mut onehot = vec![0.0f32; b * n];
                for (i, t) in tv.iter().enumerate() {
                    let row = (t.round().max(0.0) as usize).min(n - 1);
                    onehot[i * n + row] = 1.0;
                }
                let table: Tensor2<D, T> = self.param(&format!("{name}.weight"), (n, *dim))?;
                let oh = self.dev.tensor_from_vec(onehot, (b, n));
                let (o, t) = ops::table_rows(oh.put_tape(tape), table)
                    .map_err(op_err)?
                    .split_tape();
                (Value::Vector(o), t)
            }
            Op::ClassEmbed { classes, dim } => {
                let e = input(0)?.vector()?.clone();
                let (b, n) = (e.shape().0, *classes);
                // Each sample's row as a one-hot product, so the table's gradient is the tape's.
                let mut onehot = vec![0.0f32; b * n];
                for i in 0..b {
                    let y = self.labels.get(i).copied().unwrap_or(i) % n.max(1);
                    onehot[i * n + y] = 1.0;
                }
                let table: Tensor2<D, T> = self.param(&format!("{name}.weight"), (n, *dim))?;
                let oh = self.dev.tensor_from_vec(onehot, (b, n));
                let rows = ops::table_rows(oh.put_tape(tape), table).map_err(op_err)?;
                let (o, t) = ops::add(rows, e.retaped::<T>())
                    .map_err(op_err)?
                    .split_tape();
                (Value::Vector(o), t)
            }
            Op::Fourier { dim, log, flip, .. } => {
                let Value::Time(tv) = input(0)? else {
                    return Err(RuntimeError::Internal("fourier of a tensor".into()));
                };
                // Frozen frequencies: no gradient reaches them (nor t).
                let w: Tensor<(usize,), f32, D> =
                    self.param(&format!("{name}.weight"), (dim / 2,))?;
                let data = fourier_of(tv, &w.as_vec(), *log, *flip);
                (
                    Value::Vector(self.dev.tensor_from_vec(data, (tv.len(), *dim))),
                    tape,
                )
            }
            Op::DivTime => {
                let Value::Time(tv) = input(1)? else {
                    return Err(RuntimeError::Internal("divide_by_time without t".into()));
                };
                let inv: Vec<f32> = tv.iter().map(|t| 1.0 / t).collect();
                let b = inv.len();
                let per = |n: usize| -> Vec<f32> {
                    inv.iter()
                        .flat_map(|v| std::iter::repeat_n(*v, n))
                        .collect()
                };
                match input(0)?.clone() {
                    Value::Image(x) => {
                        let (_, c, h, w) = *x.shape();
                        let s: Tensor2<D> = self.dev.tensor_from_vec(per(c), (b, c));
                        let s4 = s.broadcast_like_4(b, c, h, w)?;
                        let (o, t) = x
                            .put_tape(tape)
                            .try_mul(s4)
                            .map_err(|e| RuntimeError::Op(format!("{e:?}")))?
                            .split_tape();
                        (Value::Image(o), t)
                    }
                    Value::Vector(x) => {
                        let d = x.shape().1;
                        let s: Tensor2<D> = self.dev.tensor_from_vec(per(d), (b, d));
                        let (o, t) = x
                            .put_tape(tape)
                            .try_mul(s)
                            .map_err(|e| RuntimeError::Op(format!("{e:?}")))?
                            .split_tape();
                        (Value::Vector(o), t)
                    }
                    Value::Time(_) => return Err(RuntimeError::Internal("t divided by t".into())),
                }
            }
            Op::Inject {
                mode,
                din,
                channels,
            } => {
                let target = input(0)?.clone();
                let e = input(1)?.vector()?.clone();
                let off = inject_offset(self.params, name, *din, *channels, e.put_tape(tape))?;
                match (target, mode) {
                    (Value::Image(x), InjectMode::Offset) => {
                        let (o, t) = ops::add_channel_offset(x.retaped::<T>(), off)
                            .map_err(op_err)?
                            .split_tape();
                        (Value::Image(o), t)
                    }
                    (Value::Image(x), InjectMode::Positional) => {
                        let (b, c, h, w) = *x.shape();
                        let pat = pattern(c, h, w);
                        let p = self.dev.tensor_from_vec(pat, (c, h, w));
                        let offmap = off.broadcast_like_4(b, c, h, w)?;
                        let pb: Tensor4<D> = dfdx::tensor_ops::BroadcastTo::broadcast_like::<
                            _,
                            dfdx::shapes::Axis<0>,
                        >(p, &(b, c, h, w));
                        let m = offmap
                            .try_mul(pb)
                            .map_err(|e| RuntimeError::Op(format!("{e:?}")))?;
                        let (o, t) = ops::add(m, x.retaped::<T>()).map_err(op_err)?.split_tape();
                        (Value::Image(o), t)
                    }
                    (Value::Vector(x), _) => {
                        let (o, t) = ops::add(off, x.retaped::<T>())
                            .map_err(op_err)?
                            .split_tape();
                        (Value::Vector(o), t)
                    }
                    _ => return Err(RuntimeError::Internal("inject into raw time".into())),
                }
            }
            Op::ScaleShift { din, channels } => {
                let target = input(0)?.clone();
                let e = input(1)?.vector()?.clone();
                let c = *channels;
                let wt: Tensor2<D, T> = self.param(&format!("{name}.weight"), (2 * c, *din))?;
                let bt: Tensor1<D, T> = self.param(&format!("{name}.bias"), (2 * c,))?;
                let ss = ops::linear(e.put_tape(tape), wt, Some(bt)).map_err(op_err)?;
                let b = ss.shape().0;
                let ss3 = ss.reshape_like(&(b, 2usize, c));
                let (ss3, tp) = ss3.split_tape();
                let scale = ss3
                    .clone()
                    .put_tape(tp)
                    .slice((.., 0..1, ..))
                    .reshape_like(&(b, c));
                let (scale, tp) = scale.split_tape();
                let shift = ss3
                    .retaped::<T>()
                    .slice((.., 1..2, ..))
                    .reshape_like(&(b, c));
                match target {
                    Value::Image(x) => {
                        let (bb, cc, h, w) = *x.shape();
                        let s4 = (scale.put_tape(tp) + 1.0).broadcast_like_4(bb, cc, h, w)?;
                        let scaled = s4
                            .try_mul(x.retaped::<T>())
                            .map_err(|e| RuntimeError::Op(format!("{e:?}")))?;
                        let (o, t) = ops::add_channel_offset(scaled, shift)
                            .map_err(op_err)?
                            .split_tape();
                        (Value::Image(o), t)
                    }
                    Value::Vector(x) => {
                        let scaled = (scale.put_tape(tp) + 1.0)
                            .try_mul(x.retaped::<T>())
                            .map_err(|e| RuntimeError::Op(format!("{e:?}")))?;
                        let (o, t) = ops::add(scaled, shift).map_err(op_err)?.split_tape();
                        (Value::Vector(o), t)
                    }
                    Value::Time(_) => {
                        return Err(RuntimeError::Internal("scale-shift of raw time".into()))
                    }
                }
            }
            Op::Ode {
                func,
                t0,
                t1,
                solver,
            } => {
                let h = input(0)?.clone();
                self.ode(func, h, *t0, *t1, *solver, tape)?
            }
        })
    }

    /// The fused group `f` of the norm node `nid` (a group norm with its activation, the
    /// convolution that alone reads it, and the offset injection or sum that alone reads the
    /// convolution) as one op ([`fuse::norm_conv`]). The value is that of the group's last node.
    fn norm_conv_node<T>(
        &mut self,
        g: &Graph,
        nid: NodeId,
        f: fuse::Fused,
        vals: &[Option<Value<D>>],
        tape: T,
    ) -> R<(Value<D>, T)>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default,
    {
        let Some(k) = f.conv else {
            return Err(RuntimeError::Internal(
                "a fused group without a conv".into(),
            ));
        };
        let (node, conv) = (&g.nodes[nid], &g.nodes[k]);
        let value = |i: Option<&NodeId>| i.and_then(|&i| vals[i].as_ref());
        let Some(Value::Image(x)) = value(node.inputs.first()) else {
            return Err(RuntimeError::Internal(format!(
                "`{}` reads no image computed yet",
                node.name
            )));
        };
        let time = match value(conv.inputs.get(1)) {
            Some(Value::Time(tv)) => Some(tv.as_slice()),
            _ => None,
        };
        let act = f.act.map_or(Activation::Identity, |(_, a)| a);
        let x = x.clone();
        let (x, epilogue) = match f.epilogue.map(|e| &g.nodes[e]) {
            None => (x.put_tape(tape), Epilogue::None),
            Some(e) => match e.op {
                Op::Inject { din, channels, .. } => {
                    let Some(Value::Vector(emb)) = value(e.inputs.get(1)) else {
                        return Err(RuntimeError::Internal(format!(
                            "`{}` injects no vector",
                            e.name
                        )));
                    };
                    let emb = emb.clone().put_tape(tape);
                    let off = inject_offset(self.params, &e.name, din, channels, emb)?;
                    (x.retaped::<T>(), Epilogue::Offset(off))
                }
                _ => {
                    let other = e.inputs.iter().copied().find(|&i| i != k);
                    let Some(Value::Image(r)) = value(other.as_ref()) else {
                        return Err(RuntimeError::Internal(format!(
                            "`{}` adds no image to `{}`",
                            e.name, conv.name
                        )));
                    };
                    (x.put_tape(tape), Epilogue::Residual(r.retaped::<T>()))
                }
            },
        };
        let out = fuse::norm_conv(self.params, node, conv, x, time, act, epilogue)?;
        let (o, t) = out.split_tape();
        Ok((Value::Image(o), t))
    }

    /// A norm node with `act` applied to its output (fused into the norm's kernel where it has
    /// one).
    fn norm_node<T>(
        &mut self,
        node: &Node,
        vals: &[Option<Value<D>>],
        tape: T,
        act: Activation,
    ) -> R<(Value<D>, T)>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default,
    {
        let Op::Norm {
            kind,
            channels,
            eps,
            affine,
        } = &node.op
        else {
            return Err(RuntimeError::Internal("not a norm".into()));
        };
        let name = node.name.as_str();
        let v = node
            .inputs
            .first()
            .and_then(|&id| vals[id].as_ref())
            .ok_or_else(|| {
                RuntimeError::Internal(format!("`{name}` reads a value not computed yet"))
            })?;
        let (x, is_vec) = match v {
            Value::Image(x) => (x.clone(), false),
            Value::Vector(x) => {
                let (b, d) = *x.shape();
                (x.clone().reshape_like(&(b, d, 1usize, 1usize)), true)
            }
            Value::Time(_) => return Err(RuntimeError::Internal("norm of raw time".into())),
        };
        let c = *channels;
        let (gamma, beta) = norm_affine::<D, T>(self.params, name, c, *affine)?;
        let out = self.norm(name, *kind, c, *eps, x.put_tape(tape), gamma, beta, act)?;
        let (o, t) = out.split_tape();
        Ok(if is_vec {
            let (b, d, _, _) = *o.shape();
            (Value::Vector(o.reshape_like(&(b, d))), t)
        } else {
            (Value::Image(o), t)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn norm<T>(
        &mut self,
        name: &str,
        kind: NormKind,
        c: usize,
        eps: f64,
        x: Tensor4<D, T>,
        gamma: Tensor1<D, T>,
        beta: Tensor1<D, T>,
        act: Activation,
    ) -> R<Tensor4<D, T>>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default,
    {
        let (x, tx) = x.split_tape();
        let x = x.put_tape(tx);
        let eps = eps as f32;
        match kind {
            NormKind::Batch => {
                let (mean, var) = self
                    .params
                    .running
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| (vec![0.0; c], vec![1.0; c]));
                let running = RunningStats {
                    mean: self.dev.tensor_from_vec(mean, (c,)),
                    var: self.dev.tensor_from_vec(var, (c,)),
                };
                let cfg = ops::BatchNormCfg { eps, momentum: 0.1 };
                if self.train {
                    let (out, stats) =
                        ops::batch_norm_train(x, gamma, beta, &running, cfg).map_err(op_err)?;
                    self.bn_updates.push((
                        name.to_string(),
                        stats.mean.as_vec(),
                        stats.var.as_vec(),
                    ));
                    self.apply_act(out, act)
                } else {
                    let out =
                        ops::batch_norm_eval(x, gamma, beta, &running, cfg).map_err(op_err)?;
                    self.apply_act(out, act)
                }
            }
            NormKind::PerPosition => {
                ops::channel_layer_norm(x, gamma, beta, eps, act).map_err(op_err)
            }
            _ => {
                let groups = fuse::norm_groups(&kind, c).unwrap_or(1);
                ops::group_norm(x, gamma, beta, GroupNormCfg { groups, eps, act }).map_err(op_err)
            }
        }
    }

    fn apply_act<T: Tape<f32, D>>(&self, x: Tensor4<D, T>, act: Activation) -> R<Tensor4<D, T>> {
        match act {
            Activation::Identity => Ok(x),
            Activation::Relu => ops::unary(x, Unary::Relu).map_err(op_err),
            Activation::Silu => ops::unary(x, Unary::Silu).map_err(op_err),
        }
    }

    /// Runs an ODE block from `t0` to `t1` on the value `h0`.
    fn ode<T>(
        &mut self,
        f: &OdeFunc,
        h0: Value<D>,
        t0: f64,
        t1: f64,
        solver: Solver,
        tape: T,
    ) -> R<(Value<D>, T)>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default,
    {
        // ODE states are feature maps; vectors travel as [B, D, 1, 1].
        let (h, was_vec) = match h0 {
            Value::Image(x) => (x, false),
            Value::Vector(x) => {
                let (b, d) = *x.shape();
                (x.reshape_like(&(b, d, 1usize, 1usize)), true)
            }
            Value::Time(_) => return Err(RuntimeError::Internal("ODE over raw time".into())),
        };
        let dev = self.dev.clone();
        let max_steps = self.max_ode_steps;
        let mut solve = Ode {
            rhs: GraphRhs { exec: self, f },
            dev: &dev,
            max_steps,
        };
        let (h, tape) = solve.solve(h.put_tape(tape), t0, t1, solver)?;
        if was_vec {
            let (b, d, _, _) = *h.shape();
            Ok((Value::Vector(h.reshape_like(&(b, d))), tape))
        } else {
            Ok((Value::Image(h), tape))
        }
    }
}

/// An ODE block's function as the solvers' right-hand side: one run of its graph per evaluation,
/// counted in [`Exec::nfe`].
struct GraphRhs<'e, 'a, D: Kernels> {
    exec: &'e mut Exec<'a, D>,
    f: &'e OdeFunc,
}

impl<D: Kernels> OdeRhs<D> for GraphRhs<'_, '_, D> {
    /// Evaluates the ODE function once: `f(t, h)`.
    fn eval<T>(&mut self, h: Tensor4<D, T>, t: f32) -> R<Tensor4<D, T>>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default,
    {
        let (exec, f) = (&mut *self.exec, self.f);
        exec.nfe += 1;
        let (h, tape) = h.split_tape();
        let b = h.shape().0;
        let (vals, tape) = exec.run(&f.graph, &[f.output], Value::Image(h), &vec![t; b], tape)?;
        let out = vals
            .get(f.output)
            .and_then(|v| v.clone())
            .ok_or_else(|| RuntimeError::Internal("ODE function produced no output".into()))?;
        Ok(out.image()?.clone().put_tape(tape))
    }
}
