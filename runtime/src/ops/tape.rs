//! The CPU tape plumbing under every hand-written kernel: splits taped dfdx tensors into a tape
//! plus a contiguous copy of their data, wraps kernel output vectors back into tensors, moves
//! gradient buffers in and out of dfdx's `Gradients` without copying, and merges operand tapes.
//! dfdx tensors in, plain `Vec<f32>` data and tapes out (and back); it imports nothing else from
//! `ops`, and its device errors convert into `OpsError` with `?`.

use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, CpuError, Merge, Tape, Tensor, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;

/// A tensor without its tape, the tape, and a contiguous copy of the data.
pub(crate) type Split<S, T> = (Tensor<S, f32, Cpu>, T, Vec<f32>);

/// Splits a tensor into itself without tape, its tape and a contiguous copy of its data.
pub(crate) fn split<S: Shape, T: Tape<f32, Cpu>>(
    t: Tensor<S, f32, Cpu, T>,
) -> Result<Split<S, T>, CpuError> {
    let t = t.try_contiguous()?;
    let (t, tape) = dfdx::tensor::SplitTape::split_tape(t);
    let mut data = vec![0.0f32; t.shape().num_elements()];
    t.copy_into(&mut data);
    Ok((t, tape, data))
}

/// Contiguous copy of a tape-free tensor's data.
pub(crate) fn data_of<S: Shape>(t: &Tensor<S, f32, Cpu>) -> Result<Vec<f32>, CpuError> {
    let t = t.clone().try_contiguous()?;
    let mut data = vec![0.0f32; t.shape().num_elements()];
    t.copy_into(&mut data);
    Ok(data)
}

/// Wraps a kernel's output vector into a tensor (no copy).
pub(crate) fn output<S: Shape>(
    dev: &Cpu,
    data: Vec<f32>,
    shape: S,
) -> Result<Tensor<S, f32, Cpu>, CpuError> {
    dev.try_tensor_from_vec(data, shape)
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
