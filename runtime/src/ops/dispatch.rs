//! The dispatcher of the ops layer: the device trait [`Kernels`], one method per op (tensors and
//! configurations from [`types`](super::types) in, the op's output with its backward recorded on
//! the tape out). The CPU implements it with the hand-written kernels (`cpu.rs`), the `cuda`
//! feature with the composed reference ops; the free functions of [`ops`](super) call it.

use dfdx::shapes::Shape;
use dfdx::tensor::{Merge, Tape, Tensor};
use dfdx::tensor_ops::{Device, TryConcatAlong};

use super::types::{
    BatchNormCfg, Conv2dCfg, ConvTime, Epilogue, GroupNormCfg, OpsError, RunningStats, Tensor1,
    Tensor2, Tensor3, Tensor4, Unary,
};

/// Device trait of the ops layer: one method per op, forward + backward on the tape.
///
/// The free functions of [`ops`](super) ([`conv2d`](super::conv2d),
/// [`group_norm`](super::group_norm), ...) document shapes and call these methods.
pub trait Kernels: Device<f32> {
    /// See [`conv2d`](super::conv2d).
    #[allow(clippy::type_complexity)]
    fn conv2d<Tx, T>(
        x: Tensor4<Self, Tx>,
        w: Tensor4<Self, T>,
        b: Option<Tensor1<Self, T>>,
        cfg: Conv2dCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>;

    /// See [`conv2d_time`](super::conv2d_time).
    #[allow(clippy::type_complexity)]
    fn conv2d_time<Tx, T>(
        x: Tensor4<Self, Tx>,
        time: &[f32],
        plane: &[f32],
        w: Tensor4<Self, T>,
        b: Option<Tensor1<Self, T>>,
        cfg: Conv2dCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>;

    /// See [`group_norm`](super::group_norm).
    fn group_norm<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        cfg: GroupNormCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>;

    /// See [`group_norm_conv2d`](super::group_norm_conv2d). By default the ops in turn.
    #[allow(clippy::too_many_arguments)]
    fn group_norm_conv2d<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        norm: GroupNormCfg,
        w: Tensor4<Self, T>,
        b: Option<Tensor1<Self, T>>,
        cfg: Conv2dCfg,
        time: Option<ConvTime<'_>>,
        epilogue: Epilogue<Self, T>,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>,
    {
        unfused_group_norm_conv2d(x, gamma, beta, norm, w, b, cfg, time, epilogue)
    }

    /// See [`batch_norm_train`](super::batch_norm_train).
    #[allow(clippy::type_complexity)]
    fn batch_norm_train<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        running: &RunningStats<Self>,
        cfg: BatchNormCfg,
    ) -> Result<(Tensor4<Self, T>, RunningStats<Self>), OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>;

    /// See [`batch_norm_eval`](super::batch_norm_eval).
    fn batch_norm_eval<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        running: &RunningStats<Self>,
        cfg: BatchNormCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>;

    /// See [`unary`](super::unary).
    fn unary<S: Shape, T: Tape<f32, Self>>(
        x: Tensor<S, f32, Self, T>,
        op: Unary,
    ) -> Result<Tensor<S, f32, Self, T>, OpsError>;

    /// See [`avg_pool2d`](super::avg_pool2d).
    fn avg_pool2d<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        kernel: usize,
        stride: usize,
    ) -> Result<Tensor4<Self, T>, OpsError>;

    /// See [`global_avg_pool`](super::global_avg_pool).
    fn global_avg_pool<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
    ) -> Result<Tensor2<Self, T>, OpsError>;

    /// See [`upsample_nearest`](super::upsample_nearest).
    fn upsample_nearest<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        factor: usize,
    ) -> Result<Tensor4<Self, T>, OpsError>;

    /// See [`attention`](fn@super::attention).
    fn attention<T: Tape<f32, Self>>(
        q: Tensor3<Self, T>,
        k: Tensor3<Self, T>,
        v: Tensor3<Self, T>,
    ) -> Result<Tensor3<Self, T>, OpsError>;

    /// See [`attention_qkv`](fn@super::attention_qkv).
    fn attention_qkv<T: Tape<f32, Self>>(
        qkv: Tensor4<Self, T>,
        heads: usize,
    ) -> Result<Tensor4<Self, T>, OpsError>;

    /// See [`add_channel_offset`](super::add_channel_offset).
    fn add_channel_offset<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        offset: Tensor2<Self, T>,
    ) -> Result<Tensor4<Self, T>, OpsError>;

    /// See [`add`](super::add).
    fn add<S: Shape, T: Tape<f32, Self>>(
        a: Tensor<S, f32, Self, T>,
        b: Tensor<S, f32, Self, T>,
    ) -> Result<Tensor<S, f32, Self, T>, OpsError>;

    /// See [`concat_channels`](super::concat_channels) (shapes checked there). By default
    /// dfdx's concatenation.
    fn concat_channels<T, R>(
        a: Tensor4<Self, T>,
        b: Tensor4<Self, R>,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        T: Tape<f32, Self> + Merge<R>,
        R: Tape<f32, Self>,
    {
        (a, b)
            .try_concat_along(dfdx::shapes::Axis::<1>)
            .map_err(super::types::dev_err)
    }

    /// See [`axpys`](super::axpys). By default dfdx's scalar multiplies and adds.
    fn axpys<T: Tape<f32, Self>>(
        h: Tensor4<Self, T>,
        terms: Vec<(Tensor4<Self, T>, f32)>,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        use dfdx::tensor_ops::{TryAdd, TryMul};
        let mut acc = h;
        for (k, c) in terms {
            let scaled = k.try_mul(c).map_err(super::types::dev_err)?;
            acc = acc.try_add(scaled).map_err(super::types::dev_err)?;
        }
        Ok(acc)
    }

    /// See [`mse_loss`](super::mse_loss).
    fn mse_loss<S: Shape, T: Tape<f32, Self>>(
        pred: Tensor<S, f32, Self, T>,
        target: Tensor<S, f32, Self>,
    ) -> Result<Tensor<(), f32, Self, T>, OpsError>;
}

/// [`group_norm_conv2d`](super::group_norm_conv2d) as the separate ops in turn: the trait's
/// default, and the CPU's path for what its fused kernel does not take.
#[allow(clippy::too_many_arguments)]
pub(super) fn unfused_group_norm_conv2d<D: Kernels, Tx, T>(
    x: Tensor4<D, Tx>,
    gamma: Tensor1<D, T>,
    beta: Tensor1<D, T>,
    norm: GroupNormCfg,
    w: Tensor4<D, T>,
    b: Option<Tensor1<D, T>>,
    cfg: Conv2dCfg,
    time: Option<ConvTime<'_>>,
    epilogue: Epilogue<D, T>,
) -> Result<Tensor4<D, T>, OpsError>
where
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    let a = D::group_norm(x, gamma, beta, norm)?;
    let y = match time {
        Some(tc) => D::conv2d_time(a, tc.time, tc.plane, w, b, cfg)?,
        None => D::conv2d(a, w, b, cfg)?,
    };
    match epilogue {
        Epilogue::None => Ok(y),
        Epilogue::Offset(offset) => D::add_channel_offset(y, offset),
        Epilogue::Residual(r) => D::add(y, r),
    }
}
