//! Tensor plumbing the interpreter shares: inverted dropout and broadcasting a `[B, C]` tensor
//! over a map.

use crate::ops::{Kernels, Tensor2, Tensor4};
use crate::RuntimeError;
use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Tape, Tensor};
use dfdx::tensor_ops::{Device, TryMul};
use rand::rngs::StdRng;
use rand::Rng;

type R<T> = Result<T, RuntimeError>;

/// Inverted dropout: keeps each entry with probability `keep` and scales it by `1 / keep`.
pub(super) fn dropout<D: Kernels, S: Shape, T: Tape<f32, D>>(
    dev: &D,
    x: Tensor<S, f32, D, T>,
    keep: f32,
    rng: &mut StdRng,
) -> R<Tensor<S, f32, D, T>> {
    let n = x.shape().num_elements();
    let mask: Vec<f32> = (0..n)
        .map(|_| {
            if rng.gen::<f32>() < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect();
    let m = dev.tensor_from_vec(mask, *x.shape());
    x.try_mul(m).map_err(|e| RuntimeError::Op(format!("{e:?}")))
}

pub(super) trait Broadcast4<D: Device<f32>, T> {
    fn broadcast_like_4(self, b: usize, c: usize, h: usize, w: usize) -> R<Tensor4<D, T>>;
}

impl<D: Device<f32>, T: Tape<f32, D>> Broadcast4<D, T> for Tensor2<D, T> {
    fn broadcast_like_4(self, b: usize, c: usize, h: usize, w: usize) -> R<Tensor4<D, T>> {
        use dfdx::shapes::Axes2;
        use dfdx::tensor_ops::BroadcastTo;
        Ok(BroadcastTo::broadcast_like::<_, Axes2<2, 3>>(
            self,
            &(b, c, h, w),
        ))
    }
}
