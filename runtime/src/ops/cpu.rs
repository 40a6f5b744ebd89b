//! [`Kernels`] for [`Cpu`]: the CPU dispatch, forwarding each op (tensors and configurations in,
//! the taped output out) to its hand-written kernel in the sibling modules.

use dfdx::shapes::Shape;
use dfdx::tensor::{Cpu, Merge, Tape, Tensor};

use super::dispatch::Kernels;
use super::types::{
    BatchNormCfg, Conv2dCfg, ConvTime, Epilogue, GroupNormCfg, OpsError, RunningStats, Tensor1,
    Tensor2, Tensor3, Tensor4, Unary,
};
use super::{attention, conv, elementwise, fused, norm, pool};

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
        T: Tape<f32, Self> + Merge<Tx>,
    {
        if cfg.groups != 1 {
            return super::composed::conv2d_time(x, time, plane, w, b, cfg);
        }
        conv::cpu_conv2d_time(x, time, plane, w, b, cfg)
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
        if time.is_some() && cfg.groups != 1 {
            // A grouped ConcatConv runs composed (see `conv2d_time`).
            return super::dispatch::unfused_group_norm_conv2d(
                x, gamma, beta, norm, w, b, cfg, time, epilogue,
            );
        }
        fused::cpu_group_norm_conv2d(x, gamma, beta, norm, w, b, cfg, time, epilogue)
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

    fn upsample_nearest<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        factor: usize,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        pool::cpu_upsample_nearest(x, factor)
    }

    fn attention<T: Tape<f32, Self>>(
        q: Tensor3<Self, T>,
        k: Tensor3<Self, T>,
        v: Tensor3<Self, T>,
    ) -> Result<Tensor3<Self, T>, OpsError> {
        attention::cpu_attention(q, k, v)
    }

    fn attention_qkv<T: Tape<f32, Self>>(
        qkv: Tensor4<Self, T>,
        heads: usize,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        attention::cpu_attention_qkv(qkv, heads)
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

    fn concat_channels<T, R>(
        a: Tensor4<Self, T>,
        b: Tensor4<Self, R>,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        T: Tape<f32, Self> + Merge<R>,
        R: Tape<f32, Self>,
    {
        elementwise::cpu_concat_channels(a, b)
    }

    fn axpys<T: Tape<f32, Self>>(
        h: Tensor4<Self, T>,
        terms: Vec<(Tensor4<Self, T>, f32)>,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        elementwise::cpu_axpys(h, terms)
    }

    fn mse_loss<S: Shape, T: Tape<f32, Self>>(
        pred: Tensor<S, f32, Self, T>,
        target: Tensor<S, f32, Self>,
    ) -> Result<Tensor<(), f32, Self, T>, OpsError> {
        elementwise::cpu_mse_loss(pred, target)
    }
}
