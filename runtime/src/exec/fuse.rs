//! Which norms run as one op with the nodes that alone read them: the activation (a fused
//! norm-activation kernel) and a convolution (one norm-convolution op, the normalized map
//! never a tensor of its own) with the injection or sum that alone reads it ([`fused_norms`],
//! planning over the graph alone); and the norm-convolution op of one planned group, from its
//! nodes and input tensors ([`norm_conv`]). The interpreter walks the plan.

use super::operands::{conv_params, norm_affine, time_plane};
use crate::ops::{self, Activation, Epilogue, GroupNormCfg, Kernels, Tensor4};
use crate::params::Params;
use crate::RuntimeError;
use dfdx::shapes::HasShape;
use dfdx::tensor::{Merge, Tape};
use tdspec_compiler::ir::{Act, Graph, InjectMode, Node, NodeId, NormKind, Op, TimeChannel};

type R<T> = Result<T, RuntimeError>;

/// The groups a norm of `kind` over `c` channels is a group norm with (instance: one per
/// channel; layer over `(C, H, W)`: one), or `None` (batch and per-position norms).
pub(super) fn norm_groups(kind: &NormKind, c: usize) -> Option<usize> {
    match kind {
        NormKind::Group { groups } => Some(*groups),
        NormKind::Instance => Some(c),
        NormKind::Layer => Some(1),
        NormKind::Batch | NormKind::PerPosition => None,
    }
}

/// The group norm node `norm` (with `act` applied) and the convolution node `conv` that alone
/// reads it, on `x` (the norm's input) and, for a ConcatConv, the time values, plus the
/// `epilogue`: one [`ops::group_norm_conv2d`].
pub(super) fn norm_conv<D: Kernels, Tx, T>(
    params: &Params<D>,
    norm: &Node,
    conv: &Node,
    x: Tensor4<D, Tx>,
    time: Option<&[f32]>,
    act: Activation,
    epilogue: Epilogue<D, T>,
) -> R<Tensor4<D, T>>
where
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    let internal = |what: &str| RuntimeError::Internal(format!("`{}` {what}", norm.name));
    let Op::Norm {
        kind,
        channels: c,
        eps,
        affine,
    } = &norm.op
    else {
        return Err(internal("is not a norm"));
    };
    let groups = norm_groups(kind, *c).ok_or_else(|| internal("is not a group norm"))?;
    let Op::Conv { time: tc, .. } = conv.op else {
        return Err(internal("does not feed a conv"));
    };
    let (gamma, beta) = norm_affine::<D, T>(params, &norm.name, *c, *affine)?;
    let (wt, bt, cfg) = conv_params::<D, T>(params, conv)?;
    let (b, _, h, w) = *x.shape();
    let plane = match tc {
        TimeChannel::None => Vec::new(),
        _ => time_plane(tc, h, w),
    };
    let time = match (tc, time) {
        (TimeChannel::None, _) => None,
        (_, Some(time)) if time.len() == b => Some(ops::ConvTime {
            time,
            plane: &plane,
        }),
        _ => {
            return Err(RuntimeError::Internal(format!(
                "`{}` reads no time values for a batch of {b}",
                conv.name
            )))
        }
    };
    let cfg_norm = GroupNormCfg {
        groups,
        eps: *eps as f32,
        act,
    };
    ops::group_norm_conv2d(x, gamma, beta, cfg_norm, wt, bt, cfg, time, epilogue)
        .map_err(|e| RuntimeError::Op(e.to_string()))
}

/// How a norm node runs fused with the nodes that read it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Fused {
    /// The activation node that alone reads the norm, and its activation.
    pub act: Option<(NodeId, Activation)>,
    /// The convolution that alone reads the norm (or its fused activation): a group norm
    /// (instance and layer norms included) then runs with it as one op.
    pub conv: Option<NodeId>,
    /// The node that alone reads the convolution and adds to it (an offset injection into
    /// it, or a sum with another value): the op adds that too, and its value is this node's.
    pub epilogue: Option<NodeId>,
}

impl Fused {
    /// The node whose place the fused op runs at and whose value it computes (every input
    /// of the group is computed by then).
    pub fn last(&self) -> Option<NodeId> {
        self.epilogue.or(self.conv)
    }
}

/// For each node of `g`: `Some(fused)` when it is a norm that runs as one op with the
/// activation that alone reads it, and/or with the convolution that alone reads the two (and
/// the offset injection or sum that alone reads the convolution). Nothing the caller `keep`s
/// is fused away.
pub(super) fn fused_norms(g: &Graph, keep: &[NodeId]) -> Vec<Option<Fused>> {
    let mut readers: Vec<Vec<NodeId>> = vec![Vec::new(); g.nodes.len()];
    for (j, n) in g.nodes.iter().enumerate() {
        for &i in &n.inputs {
            if let Some(r) = readers.get_mut(i) {
                r.push(j);
            }
        }
    }
    let sole = |i: NodeId| match readers[i].as_slice() {
        [j] if !keep.contains(&i) => Some(*j),
        _ => None,
    };
    g.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let Op::Norm { kind, .. } = &n.op else {
                return None;
            };
            let j = sole(i)?;
            let act = match &g.nodes[j].op {
                Op::Act { act: Act::Relu } => Some((j, Activation::Relu)),
                Op::Act { act: Act::Silu } => Some((j, Activation::Silu)),
                _ => None,
            };
            // The last node of the norm part, and the convolution that alone reads it.
            let l = act.map_or(i, |(j, _)| j);
            let grouped = norm_groups(kind, 1).is_some();
            let conv = if act.is_some() { sole(l) } else { Some(j) }.filter(|&k| {
                let Op::Conv { time, .. } = g.nodes[k].op else {
                    return false;
                };
                // The norm's value is the convolution's image (a ConcatConv's time is its
                // second input).
                let ins = g.nodes[k].inputs.as_slice();
                let reads = ins.first() == Some(&l) && !ins[1..].contains(&l);
                let arity = if time == TimeChannel::None { 1 } else { 2 };
                grouped && reads && ins.len() == arity
            });
            // An offset injected into the convolution's output, or a sum with another value.
            let epilogue = conv.and_then(sole).filter(|&e| {
                let (k, ins) = (conv.unwrap_or(e), g.nodes[e].inputs.as_slice());
                match g.nodes[e].op {
                    Op::Inject {
                        mode: InjectMode::Offset,
                        ..
                    } => ins.len() == 2 && ins[0] == k && ins[1] != k,
                    Op::Add => ins.len() == 2 && ins.contains(&k) && ins[0] != ins[1],
                    _ => false,
                }
            });
            (act.is_some() || conv.is_some()).then_some(Fused {
                act,
                conv,
                epilogue,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fusion plan of a model with every case: a group norm straight into a strided,
    /// grouped convolution; an instance norm and SiLU read by two nodes (fused with the
    /// activation only); a group norm and ReLU into a convolution; a layer norm into a 1x1
    /// ConcatConv; a batch norm (never fused with a convolution); a norm the caller keeps.
    #[test]
    fn norms_fuse_with_the_convolution_that_alone_reads_them() {
        let src = "model g { input x: image[2, 8, 8]  time t: continuous, per_sample
            norm = group(2)
            embed e = sinusoidal(8) | linear(16)
            h = x | conv3(4) | norm | conv3(4, stride = 2, groups = 2)
            a = h | instance | silu
            h = a | conv1(4) | norm | relu | conv3(4, bias = false)
            h = (h + a) | layer | conv1(4, time = concat) | batch | relu | conv1(4)
            o = h | norm | silu | conv3(4)
            o = o + inject(e)
            h = h + (o | norm | conv3(4))
            return h | norm }";
        let m = tdspec_compiler::sema::check_source(src)
            .unwrap_or_else(|d| panic!("{d:#?}"))
            .remove(0);
        let g = &m.graph;
        let plan = fused_norms(g, &[m.output]);
        let name = |i: NodeId| g.nodes[i].name.clone();
        let got: Vec<(String, Option<Activation>, Option<String>)> = plan
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|f| (name(i), f.act.map(|a| a.1), f.conv.map(name))))
            .collect();
        let convs: Vec<_> = got.iter().filter(|f| f.2.is_some()).collect();
        assert_eq!(convs.len(), 5, "{got:#?}");
        // The sum `h + a`, the injection and the last sum each end a group of their own.
        let ends: Vec<&str> = plan
            .iter()
            .flatten()
            .filter_map(|f| {
                f.epilogue.map(|e| match g.nodes[e].op {
                    Op::Inject { .. } => "inject",
                    Op::Add => "add",
                    _ => "other",
                })
            })
            .collect();
        assert_eq!(ends, ["add", "inject", "add"], "{got:#?}");
        assert!(got
            .iter()
            .any(|f| f.1 == Some(Activation::Silu) && f.2.is_none()));
        assert!(got
            .iter()
            .any(|f| f.1 == Some(Activation::Relu) && f.2.is_none()));
        // The output norm is kept: not fused.
        assert!(plan[m.output].is_none());
    }
}
