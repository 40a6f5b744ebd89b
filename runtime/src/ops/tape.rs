//! The CPU tape plumbing under every hand-written kernel: splits taped dfdx tensors into a tape
//! plus a contiguous copy of their data, wraps kernel output vectors back into tensors, moves
//! gradient buffers in and out of dfdx's `Gradients` without copying, and merges operand tapes.
//! dfdx tensors in, plain `Vec<f32>` data and tapes out (and back); it imports nothing else from
//! `ops`, and its device errors convert into `OpsError` with `?`.

use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, CpuError, Merge, Tape, Tensor, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;

/// A tensor without its tape, the tape, and a contiguous copy of the data.
pub(crate) type Split<S, T> = (Tensor<S, f32, Cpu>, T, Data);

/// A contiguous host copy of a tensor's data (it derefs to the elements). Dropped, its buffer
/// goes to a small pool, and the next copy of the same length takes it without zeroing it
/// first: a training step copies the same shapes every step, and the zeroing was serial work
/// on the thread that records the tape.
#[derive(Debug, Default)]
pub(crate) struct Data(Vec<f32>);

impl std::ops::Deref for Data {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl std::ops::DerefMut for Data {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Data {
    /// The buffer itself, kept out of the pool (an op that turns its input copy into its
    /// output).
    pub fn into_vec(mut self) -> Vec<f32> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.0));
    }
}

/// Buffers waiting for reuse, and the bytes they hold.
static POOL: std::sync::Mutex<(Vec<Vec<f32>>, usize)> = std::sync::Mutex::new((Vec::new(), 0));
/// The most bytes the pool holds (beyond it, dropped copies are freed).
const POOL_BYTES: usize = 1 << 30;
/// The most buffers the pool holds.
const POOL_BUFFERS: usize = 256;

/// Gives a buffer this op no longer needs to the pool, for the next [`recycled`] or copy of its
/// length.
pub(crate) fn recycle(v: Vec<f32>) {
    let bytes = v.capacity() * 4;
    if bytes == 0 {
        return;
    }
    if let Ok(mut pool) = POOL.lock() {
        let (list, held) = &mut *pool;
        if *held + bytes <= POOL_BYTES && list.len() < POOL_BUFFERS {
            *held += bytes;
            list.push(v);
        }
    }
}

/// A buffer of `n` elements whose contents are unspecified (a recycled copy, or zeros): the
/// caller overwrites all of it.
fn reuse(n: usize) -> Vec<f32> {
    if let Ok(mut pool) = POOL.lock() {
        let (list, held) = &mut *pool;
        if let Some(i) = list.iter().position(|v| v.len() == n) {
            let v = list.swap_remove(i);
            *held -= v.capacity() * 4;
            return v;
        }
    }
    zeros(n)
}

/// A buffer of `n` elements whose contents are unspecified (a recycled one, or zeros): for
/// outputs the caller overwrites entirely, which then need no zeroing pass.
pub(crate) fn recycled(n: usize) -> Vec<f32> {
    reuse(n)
}

/// Splits a tensor into itself without tape, its tape and a contiguous copy of its data.
pub(crate) fn split<S: Shape, T: Tape<f32, Cpu>>(
    t: Tensor<S, f32, Cpu, T>,
) -> Result<Split<S, T>, CpuError> {
    let t = t.try_contiguous()?;
    let (t, tape) = dfdx::tensor::SplitTape::split_tape(t);
    let mut data = Data(reuse(t.shape().num_elements()));
    t.copy_into(&mut data);
    Ok((t, tape, data))
}

/// A zeroed vector of `n` floats, zeroed on the worker threads when it is large (an output
/// buffer; the allocator's zeroing would run on the thread recording the tape).
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    use rayon::prelude::*;
    if n < 1 << 16 {
        return vec![0.0f32; n];
    }
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(0.0f32, n));
    v
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
