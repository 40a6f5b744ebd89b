//! A node's operands as tensors on the tape the interpreter runs with: a parameter by name and
//! shape, a convolution's weight, bias and configuration (and a time channel's pattern), a
//! norm's scale and shift, an injection's offset.

use crate::ops::{self, Conv2dCfg, Kernels, Tensor1, Tensor2, Tensor4};
use crate::params::Params;
use crate::RuntimeError;
use dfdx::shapes::Shape;
use dfdx::tensor::{Merge, Tape, Tensor};
use dfdx::tensor_ops::ReshapeTo;
use tdspec_compiler::ir::{positional_pattern, Node, Op, TimeChannel};

type R<T> = Result<T, RuntimeError>;

/// The parameter `name` on tape `T`, as `shape` (its element count checked).
pub(super) fn param<D: Kernels, S: Shape, T: Tape<f32, D>>(
    params: &Params<D>,
    name: &str,
    shape: S,
) -> R<Tensor<S, f32, D, T>> {
    let p = params
        .get(name)
        .ok_or_else(|| RuntimeError::Internal(format!("parameter `{name}` is missing")))?;
    if p.info.numel() != shape.num_elements() {
        return Err(RuntimeError::Internal(format!(
            "parameter `{name}` has the wrong size"
        )));
    }
    Ok(p.tensor.retaped::<T>().reshape_like(&shape))
}

/// A conv node's weight, bias (on tape `T`) and configuration.
#[allow(clippy::type_complexity)]
pub(super) fn conv_params<D: Kernels, T: Tape<f32, D>>(
    params: &Params<D>,
    node: &Node,
) -> R<(Tensor4<D, T>, Option<Tensor1<D, T>>, Conv2dCfg)> {
    let Op::Conv {
        cin,
        cout,
        k,
        stride,
        pad,
        groups,
        bias,
        time,
    } = &node.op
    else {
        return Err(RuntimeError::Internal(format!(
            "`{}` is not a conv",
            node.name
        )));
    };
    let name = node.name.as_str();
    let cfg = Conv2dCfg {
        stride: *stride,
        padding: *pad,
        groups: *groups,
    };
    let extra = usize::from(*time != TimeChannel::None);
    let wt = param(
        params,
        &format!("{name}.weight"),
        (*cout, (cin + extra) / groups, *k, *k),
    )?;
    let bt = match bias {
        true => Some(param(params, &format!("{name}.bias"), (*cout,))?),
        false => None,
    };
    Ok((wt, bt, cfg))
}

/// A norm's scale and shift: its parameters, or without affine the identity (constants,
/// off the tape).
pub(super) fn norm_affine<D: Kernels, T: Tape<f32, D>>(
    params: &Params<D>,
    name: &str,
    c: usize,
    affine: bool,
) -> R<(Tensor1<D, T>, Tensor1<D, T>)> {
    Ok(match affine {
        true => (
            param(params, &format!("{name}.weight"), (c,))?,
            param(params, &format!("{name}.bias"), (c,))?,
        ),
        false => (
            params
                .dev
                .tensor_from_vec(vec![1.0; c], (c,))
                .retaped::<T>(),
            params
                .dev
                .tensor_from_vec(vec![0.0; c], (c,))
                .retaped::<T>(),
        ),
    })
}

/// The spatial pattern of a time channel: all ones (a constant channel) or the positional
/// pattern; sample `i`'s channel is `t_i` times it.
pub(super) fn time_plane(tc: TimeChannel, h: usize, w: usize) -> Vec<f32> {
    (0..h * w)
        .map(|p| match tc {
            TimeChannel::Positional => positional_pattern(0, p / w, p % w, h, w) as f32,
            _ => 1.0,
        })
        .collect()
}

/// The offset an injection node `name` adds: its linear map of the embedding `emb`.
pub(super) fn inject_offset<D: Kernels, T: Tape<f32, D> + Merge<T>>(
    params: &Params<D>,
    name: &str,
    din: usize,
    channels: usize,
    emb: Tensor2<D, T>,
) -> R<Tensor2<D, T>> {
    let wt: Tensor2<D, T> = param(params, &format!("{name}.weight"), (channels, din))?;
    let bt: Tensor1<D, T> = param(params, &format!("{name}.bias"), (channels,))?;
    ops::linear(emb, wt, Some(bt)).map_err(|e| RuntimeError::Op(e.to_string()))
}
