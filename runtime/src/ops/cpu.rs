//! The CPU side of the tape plumbing: splits taped dfdx tensors into a tape plus a contiguous copy
//! of their data, wraps kernel output vectors back into tensors, moves gradient buffers in and out
//! of dfdx's `Gradients` without copying, and implements [`Kernels`] for [`Cpu`] by forwarding to
//! the kernels of the sibling modules.

use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, Merge, Tape, Tensor, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;

use super::{
    conv, elementwise, norm, pool, BatchNormCfg, Conv2dCfg, GroupNormCfg, Kernels, OpsError,
    RunningStats, Tensor1, Tensor2, Tensor3, Tensor4, Unary,
};
use super::{dev_err, Activation};

/// A tensor without its tape, the tape, and a contiguous copy of the data.
pub(crate) type Split<S, T> = (Tensor<S, f32, Cpu>, T, Vec<f32>);

/// Splits a tensor into itself without tape, its tape and a contiguous copy of its data.
pub(crate) fn split<S: Shape, T: Tape<f32, Cpu>>(
    t: Tensor<S, f32, Cpu, T>,
) -> Result<Split<S, T>, OpsError> {
    let t = t.try_contiguous().map_err(dev_err)?;
    let (t, tape) = dfdx::tensor::SplitTape::split_tape(t);
    let mut data = vec![0.0f32; t.shape().num_elements()];
    t.copy_into(&mut data);
    Ok((t, tape, data))
}

/// Contiguous copy of a tape-free tensor's data.
pub(crate) fn data_of<S: Shape>(t: &Tensor<S, f32, Cpu>) -> Result<Vec<f32>, OpsError> {
    let t = t.clone().try_contiguous().map_err(dev_err)?;
    let mut data = vec![0.0f32; t.shape().num_elements()];
    t.copy_into(&mut data);
    Ok(data)
}

/// Wraps a kernel's output vector into a tensor (no copy).
pub(crate) fn output<S: Shape>(
    dev: &Cpu,
    data: Vec<f32>,
    shape: S,
) -> Result<Tensor<S, f32, Cpu>, OpsError> {
    dev.try_tensor_from_vec(data, shape).map_err(dev_err)
}

/// Moves the gradient buffer of a tensor (or its ghost) out of `Gradients`, allocating zeros if
/// absent. Must be returned with [`put_grad`] before the backward op ends.
macro_rules! take_grad {
    ($grads:expr, $t:expr) => {
        ::std::mem::take(::std::ops::DerefMut::deref_mut(
            $grads.get_or_alloc_mut($t)?,
        ))
    };
}
pub(crate) use take_grad;

/// Puts a gradient buffer taken with [`take_grad`] back.
macro_rules! put_grad {
    ($grads:expr, $t:expr, $v:expr) => {
        *::std::ops::DerefMut::deref_mut($grads.get_or_alloc_mut($t)?) = $v
    };
}
pub(crate) use put_grad;

/// Merges the tapes of an op's operands: parameters' tape first, then the input's.
pub(crate) fn merge_tapes<Tx, T>(params: T, x: Tx) -> T
where
    Tx: Tape<f32, Cpu>,
    T: Tape<f32, Cpu> + Merge<Tx>,
{
    params.merge(x)
}

impl Kernels for Cpu {
    fn conv2d<Tx, T>(
        x: Tensor4<Self, Tx>,
        w: Tensor4<Self, T>,
        b: Option<Tensor1<Self, T>>,
        cfg: Conv2dCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>,
    {
        conv::cpu_conv2d(x, w, b, cfg)
    }

    fn group_norm<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        cfg: GroupNormCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>,
    {
        norm::cpu_group_norm(x, gamma, beta, cfg)
    }

    fn batch_norm_train<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        running: &RunningStats<Self>,
        cfg: BatchNormCfg,
    ) -> Result<(Tensor4<Self, T>, RunningStats<Self>), OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>,
    {
        norm::cpu_batch_norm_train(x, gamma, beta, running, cfg)
    }

    fn batch_norm_eval<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        running: &RunningStats<Self>,
        cfg: BatchNormCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>,
    {
        norm::cpu_batch_norm_eval(x, gamma, beta, running, cfg)
    }

    fn unary<S: Shape, T: Tape<f32, Self>>(
        x: Tensor<S, f32, Self, T>,
        op: Unary,
    ) -> Result<Tensor<S, f32, Self, T>, OpsError> {
        elementwise::cpu_unary(x, op)
    }

    fn avg_pool2d<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        kernel: usize,
        stride: usize,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        pool::cpu_avg_pool2d(x, kernel, stride)
    }

    fn global_avg_pool<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
    ) -> Result<Tensor2<Self, T>, OpsError> {
        pool::cpu_global_avg_pool(x)
    }

    fn upsample_nearest2x<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        pool::cpu_upsample_nearest2x(x)
    }

    fn attention<T: Tape<f32, Self>>(
        q: Tensor3<Self, T>,
        k: Tensor3<Self, T>,
        v: Tensor3<Self, T>,
    ) -> Result<Tensor3<Self, T>, OpsError> {
        super::attention::cpu_attention(q, k, v)
    }

    fn add_channel_offset<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        offset: Tensor2<Self, T>,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        elementwise::cpu_add_channel_offset(x, offset)
    }

    fn add<S: Shape, T: Tape<f32, Self>>(
        a: Tensor<S, f32, Self, T>,
        b: Tensor<S, f32, Self, T>,
    ) -> Result<Tensor<S, f32, Self, T>, OpsError> {
        elementwise::cpu_add(a, b)
    }
}

/// Applies `act` to `y` (used by the fused normalization kernels).
#[inline(always)]
pub(crate) fn act_fwd(act: Activation, y: f32) -> f32 {
    match act {
        Activation::Identity => y,
        Activation::Relu => y.max(0.0),
        Activation::Silu => y * super::math::sigmoid(y),
    }
}

/// `d act(y) / dy * dz`.
#[inline(always)]
pub(crate) fn act_bwd(act: Activation, y: f32, dz: f32) -> f32 {
    match act {
        Activation::Identity => dz,
        Activation::Relu => {
            if y > 0.0 {
                dz
            } else {
                0.0
            }
        }
        Activation::Silu => {
            let s = super::math::sigmoid(y);
            dz * s * (1.0 + y * (1.0 - s))
        }
    }
}
