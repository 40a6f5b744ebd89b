//! Device-generic ops built directly on dfdx's stable tensor ops: the affine layer (`[B, In]` in,
//! `[B, Out]` out, via dfdx's matmul) and channel concatenation of two NCHW tensors (dispatched
//! to the device's [`Kernels`]; dfdx's concatenation by default). dfdx records their backward
//! on the tape.

use dfdx::shapes::{Axis, HasShape};
use dfdx::tensor::{Merge, Tape};
use dfdx::tensor_ops::{BroadcastTo, Device, PermuteTo, TryAdd, TryMatMul};

use super::dispatch::Kernels;
use super::types::{dev_err, shape_err, OpsError, Tensor1, Tensor2, Tensor4};

/// Affine layer `y = x w^T + b` (PyTorch's `nn.Linear` layout).
///
/// # Shapes
/// - `x`: `[B, In]`
/// - `w`: `[Out, In]`
/// - `b`: `[Out]`
/// - output: `[B, Out]`
pub fn linear<D, Tx, T>(
    x: Tensor2<D, Tx>,
    w: Tensor2<D, T>,
    b: Option<Tensor1<D, T>>,
) -> Result<Tensor2<D, T>, OpsError>
where
    D: Device<f32>,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    const OP: &str = "linear";
    let (batch, fin) = *x.shape();
    let (fout, win) = *w.shape();
    if fin != win {
        return Err(shape_err(
            OP,
            format!("input has {fin} features, weight expects {win}"),
        ));
    }
    if let Some(b) = &b {
        if b.shape().0 != fout {
            return Err(shape_err(
                OP,
                format!("bias has {} entries for {fout} outputs", b.shape().0),
            ));
        }
    }
    // y^T = w x^T keeps the parameters' tape on the left-hand side.
    let xt = x
        .try_permute::<_, dfdx::shapes::Axes2<1, 0>>()
        .map_err(dev_err)?;
    let yt = w.try_matmul(xt).map_err(dev_err)?;
    let y = yt
        .try_permute::<_, dfdx::shapes::Axes2<1, 0>>()
        .map_err(dev_err)?;
    match b {
        Some(b) => {
            let bb = b
                .try_broadcast_like::<_, Axis<0>>(&(batch, fout))
                .map_err(dev_err)?;
            y.try_add(bb).map_err(dev_err)
        }
        None => Ok(y),
    }
}

/// The rows of `table` (`[N, D]`, an embedding table) that a one-hot `[B, N]` picks: `[B, D]`,
/// with the table's gradient on the tape.
pub fn table_rows<D, Tx, T>(
    onehot: Tensor2<D, Tx>,
    table: Tensor2<D, T>,
) -> Result<Tensor2<D, T>, OpsError>
where
    D: Device<f32>,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    let w = table
        .try_permute::<_, dfdx::shapes::Axes2<1, 0>>()
        .map_err(dev_err)?;
    linear(onehot, w, None)
}

/// Concatenates two NCHW tensors along the channel axis (`[a, b]`).
///
/// # Shapes
/// - `a`: `[B, Ca, H, W]`, `b`: `[B, Cb, H, W]`
/// - output: `[B, Ca + Cb, H, W]`
pub fn concat_channels<D, T, R>(
    a: Tensor4<D, T>,
    b: Tensor4<D, R>,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Kernels,
    T: Tape<f32, D> + Merge<R>,
    R: Tape<f32, D>,
{
    let (sa, sb) = (*a.shape(), *b.shape());
    if (sa.0, sa.2, sa.3) != (sb.0, sb.2, sb.3) {
        return Err(shape_err(
            "concat_channels",
            format!("{sa:?} and {sb:?} differ outside the channel axis"),
        ));
    }
    D::concat_channels(a, b)
}
