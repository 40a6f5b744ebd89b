//! Tensor ops layer: f32 NCHW tensors with runtime (`usize`) dims in, tensors out, each op recorded
//! on dfdx's autograd tape with its own backward.
//!
//! Every op is a method of the device trait [`Kernels`]; the free functions below forward to it.
//! [`dfdx::tensor::Cpu`] implements it with fast hand-written kernels (im2col + `gemm`, fused
//! GroupNorm + activation, ...). [`composed`] holds a device-generic version of each op built only
//! from dfdx's stable tensor ops; it is the reference the tests compare against and what the
//! `cuda` feature maps the trait to.
//!
//! Tape convention for ops with parameters (conv2d, group_norm, batch_norm, linear): the input `x`
//! may carry tape `Tx` and the parameters tape `T`; the output carries `T` merged with `Tx`. The
//! gradient of `x` is computed only when `Tx` owns a tape, so a constant input (data, a constant
//! time channel) is passed with [`NoneTape`](dfdx::tensor::NoneTape) and costs no input-gradient
//! work. Parameters get gradients whenever `T` owns a tape (retape them with `w.retaped::<T>()`
//! if they have none). Ops without parameters take and return one tape type.
//!
//! Shapes are validated by the compiler before lowering; every op still checks the shapes it relies
//! on and returns [`OpsError`] instead of panicking.
//!
//! Layers, bottom up; a module uses only the layers below it (tests/layout.rs keeps the graph
//! acyclic): `types` (shapes, configurations, [`OpsError`]) and `tape` (the CPU tape plumbing)
//! import nothing from `ops`; `gemm512` (the AVX-512 GEMM over self-packing operands), then `math`
//! (strided matrices, `sgemm`, vectorizable scalar functions); `dispatch` (the [`Kernels`]
//! trait); the CPU kernels `conv`, `norm`, `pool`, `elementwise`, `attention` and the composed
//! `linear`; `fused` (a norm feeding a convolution, built on `conv` and `norm`); `cpu` (the [`Kernels`] impl for [`Cpu`](dfdx::tensor::Cpu)) and [`composed`]; and
//! this module, whose free functions call the trait and which re-exports the public types.

mod attention;
pub mod composed;
mod conv;
mod cpu;
mod dispatch;
mod elementwise;
mod fused;
mod gemm512;
mod linear;
mod math;
mod norm;
mod pool;
mod tape;
mod types;

use dfdx::shapes::{Axes4, HasShape, Shape};
use dfdx::tensor::{Merge, Tape, Tensor};
use dfdx::tensor_ops::{PermuteTo, ReshapeTo};

pub use dispatch::Kernels;
pub use linear::{concat_channels, linear, table_rows};
pub use types::{
    Activation, BatchNormCfg, Conv2dCfg, ConvTime, Epilogue, GroupNormCfg, OpsError, RunningStats,
    Shape1, Shape2, Shape3, Shape4, Tensor1, Tensor2, Tensor3, Tensor4, Unary,
};

/// 2-D convolution with zero padding, stride and channel groups, plus an optional bias.
///
/// # Shapes
/// - `x`: `[B, Cin, H, W]`
/// - `w`: `[Cout, Cin / groups, k, k]`
/// - `b`: `[Cout]`
/// - output: `[B, Cout, Ho, Wo]` with `Ho = (H + 2 * padding - k) / stride + 1` (same for `Wo`)
pub fn conv2d<D, Tx, T>(
    x: Tensor4<D, Tx>,
    w: Tensor4<D, T>,
    b: Option<Tensor1<D, T>>,
    cfg: Conv2dCfg,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Kernels,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    D::conv2d(x, w, b, cfg)
}

/// 2-D convolution of `x` with a time channel in front (ConcatConv): `conv2d(concat([c, x]), w,
/// b, cfg)` where the time channel of sample `i` is `c[i] = time[i] * plane` (a constant
/// channel when `plane` is all ones). The channel gets no gradient.
///
/// # Shapes
/// - `x`: `[B, Cin, H, W]`; `time`: `[B]`; `plane`: `[H * W]`
/// - `w`: `[Cout, Cin + 1, k, k]` (the time channel's weights first), `groups` = 1 on the CPU
/// - output: as [`conv2d`]
pub fn conv2d_time<D, Tx, T>(
    x: Tensor4<D, Tx>,
    time: &[f32],
    plane: &[f32],
    w: Tensor4<D, T>,
    b: Option<Tensor1<D, T>>,
    cfg: Conv2dCfg,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Kernels,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    D::conv2d_time(x, time, plane, w, b, cfg)
}

/// Group normalization with a per-channel affine transform, optionally followed by an activation:
/// `act(gamma[c] * (x - mean_g) / sqrt(var_g + eps) + beta[c])`, statistics per sample and group
/// (biased variance).
///
/// # Shapes
/// - `x`: `[B, C, H, W]`, `C` divisible by `cfg.groups`
/// - `gamma`, `beta`: `[C]`
/// - output: `[B, C, H, W]`
pub fn group_norm<D, Tx, T>(
    x: Tensor4<D, Tx>,
    gamma: Tensor1<D, T>,
    beta: Tensor1<D, T>,
    cfg: GroupNormCfg,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Kernels,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    D::group_norm(x, gamma, beta, cfg)
}

/// [`group_norm`] (with its activation) followed by [`conv2d`] of its output, or by
/// [`conv2d_time`] with the time channel `time`, then the `epilogue` added (a per-channel
/// offset or a residual), as one op: on the CPU the normalized map and the convolution's own
/// output never become tensors (no copies of them at op boundaries, no gradient buffers for
/// them on the tape); other devices run the ops in turn. Same values and gradients as the ops
/// in turn.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`, `C` divisible by `norm.groups`
/// - `gamma`, `beta`: `[C]`
/// - `w`: `[Cout, C / cfg.groups, k, k]` (`[Cout, C + 1, k, k]` with a time channel), `b`:
///   `[Cout]`
/// - epilogue: an offset `[B, Cout]` or a residual of the output's shape
/// - output: `[B, Cout, Ho, Wo]` as for [`conv2d`]
#[allow(clippy::too_many_arguments)]
pub fn group_norm_conv2d<D, Tx, T>(
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
    D: Kernels,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    D::group_norm_conv2d(x, gamma, beta, norm, w, b, cfg, time, epilogue)
}

/// Layer normalization over the `C` channels at each position (transformer style), with a
/// per-channel affine transform and an optional activation: [`group_norm`] with one group over
/// the `[B·H·W, C, 1, 1]` rows of the channels-last map.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`
/// - `gamma`, `beta`: `[C]`
/// - output: `[B, C, H, W]` (contiguous)
pub fn channel_layer_norm<D, Tx, T>(
    x: Tensor4<D, Tx>,
    gamma: Tensor1<D, T>,
    beta: Tensor1<D, T>,
    eps: f32,
    act: Activation,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Kernels,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    let (b, c, h, w) = *x.shape();
    let rows = x
        .try_permute::<_, Axes4<0, 2, 3, 1>>()
        .map_err(types::dev_err)?
        .try_reshape_like(&(b * h * w, c, 1usize, 1usize))
        .map_err(types::dev_err)?;
    let cfg = GroupNormCfg {
        groups: 1,
        eps,
        act,
    };
    D::group_norm(rows, gamma, beta, cfg)?
        .try_reshape_like(&(b, h, w, c))
        .map_err(types::dev_err)?
        .try_permute::<_, Axes4<0, 3, 1, 2>>()
        .map_err(types::dev_err)?
        .try_reshape_like(&(b, c, h, w))
        .map_err(types::dev_err)
}

/// Batch normalization in training mode: normalizes with the batch statistics over `(B, H, W)`
/// per channel (biased variance) and returns the updated running statistics
/// (`(1 - momentum) * old + momentum * batch`, the running variance unbiased as in PyTorch).
///
/// # Shapes
/// - `x`: `[B, C, H, W]` with `B * H * W >= 2`
/// - `gamma`, `beta`, `running.mean`, `running.var`: `[C]`
/// - output: `[B, C, H, W]` and the new running statistics `[C]`
#[allow(clippy::type_complexity)]
pub fn batch_norm_train<D, Tx, T>(
    x: Tensor4<D, Tx>,
    gamma: Tensor1<D, T>,
    beta: Tensor1<D, T>,
    running: &RunningStats<D>,
    cfg: BatchNormCfg,
) -> Result<(Tensor4<D, T>, RunningStats<D>), OpsError>
where
    D: Kernels,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    D::batch_norm_train(x, gamma, beta, running, cfg)
}

/// Batch normalization in eval mode: `gamma * (x - running.mean) / sqrt(running.var + eps) + beta`.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`
/// - `gamma`, `beta`, `running.mean`, `running.var`: `[C]`
/// - output: `[B, C, H, W]`
pub fn batch_norm_eval<D, Tx, T>(
    x: Tensor4<D, Tx>,
    gamma: Tensor1<D, T>,
    beta: Tensor1<D, T>,
    running: &RunningStats<D>,
    cfg: BatchNormCfg,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Kernels,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    D::batch_norm_eval(x, gamma, beta, running, cfg)
}

/// Elementwise activation (relu, silu, tanh, softplus).
///
/// # Shapes
/// - `x`: any shape; output: the same shape
pub fn unary<D: Kernels, S: Shape, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    op: Unary,
) -> Result<Tensor<S, f32, D, T>, OpsError> {
    D::unary(x, op)
}

/// `x * sigmoid(x)`; shorthand for [`unary`] with [`Unary::Silu`].
///
/// # Shapes
/// - `x`: any shape; output: the same shape
pub fn silu<D: Kernels, S: Shape, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
) -> Result<Tensor<S, f32, D, T>, OpsError> {
    D::unary(x, Unary::Silu)
}

/// Average pooling over `kernel x kernel` windows, no padding.
///
/// # Shapes
/// - `x`: `[B, C, H, W]` with `H, W >= kernel`
/// - output: `[B, C, (H - kernel) / stride + 1, (W - kernel) / stride + 1]`
pub fn avg_pool2d<D: Kernels, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
    kernel: usize,
    stride: usize,
) -> Result<Tensor4<D, T>, OpsError> {
    D::avg_pool2d(x, kernel, stride)
}

/// Mean over the spatial positions.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`, `H * W >= 1`
/// - output: `[B, C]`
pub fn global_avg_pool<D: Kernels, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
) -> Result<Tensor2<D, T>, OpsError> {
    D::global_avg_pool(x)
}

/// Zero padding: `before` rows and columns at the top and left, `after` at the bottom and
/// right.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`
/// - output: `[B, C, H + before + after, W + before + after]`
pub fn pad2d<D: Kernels, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
    before: usize,
    after: usize,
) -> Result<Tensor4<D, T>, OpsError> {
    composed::pad2d(x, before, after)
}

/// Nearest-neighbour upsampling by `factor` (at least 1) on both spatial axes.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`
/// - output: `[B, C, factor·H, factor·W]`
pub fn upsample_nearest<D: Kernels, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
    factor: usize,
) -> Result<Tensor4<D, T>, OpsError> {
    D::upsample_nearest(x, factor)
}

/// Self-attention over positions as in DDPM: `out[b, :, i] = sum_j softmax_j(q_i . k_j / sqrt(C))
/// v[b, :, j]`.
///
/// # Shapes
/// - `q`, `k`, `v`: `[B, C, N]` (channels, then positions)
/// - output: `[B, C, N]`
pub fn attention<D: Kernels, T: Tape<f32, D>>(
    q: Tensor3<D, T>,
    k: Tensor3<D, T>,
    v: Tensor3<D, T>,
) -> Result<Tensor3<D, T>, OpsError> {
    D::attention(q, k, v)
}

/// Multi-head self-attention from one q, k, v projection: channels `[0, C)` of `qkv` are q,
/// `[C, 2C)` k and `[2C, 3C)` v, each split into `heads` heads of `C / heads` consecutive
/// channels; each head is [`attention`] over the `H·W` positions, and the heads' outputs are
/// the output's channels in order (what `[B, 3C, H, W] -> [B, 3, C, H·W]` slicing and
/// reshaping feeds [`attention`]).
///
/// # Shapes
/// - `qkv`: `[B, 3C, H, W]`, `C` divisible by `heads`
/// - output: `[B, C, H, W]`
pub fn attention_qkv<D: Kernels, T: Tape<f32, D>>(
    qkv: Tensor4<D, T>,
    heads: usize,
) -> Result<Tensor4<D, T>, OpsError> {
    D::attention_qkv(qkv, heads)
}

/// `h + c_1 k_1 + c_2 k_2 + ...`, summed left to right, each product rounded before its add
/// (an ODE solver's stage and step sums).
///
/// # Shapes
/// - `h` and every `k_i`: the same `[B, C, H, W]`
/// - output: `[B, C, H, W]`
pub fn axpys<D: Kernels, T: Tape<f32, D>>(
    h: Tensor4<D, T>,
    terms: Vec<(Tensor4<D, T>, f32)>,
) -> Result<Tensor4<D, T>, OpsError> {
    D::axpys(h, terms)
}

/// Adds a per-sample, per-channel offset to every spatial position (a time embedding projected to
/// `C` channels, as in the DDPM ResBlock).
///
/// # Shapes
/// - `x`: `[B, C, H, W]`
/// - `offset`: `[B, C]`
/// - output: `[B, C, H, W]`
pub fn add_channel_offset<D: Kernels, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
    offset: Tensor2<D, T>,
) -> Result<Tensor4<D, T>, OpsError> {
    D::add_channel_offset(x, offset)
}

/// Mean squared error `mean((pred - target)^2)` (a denoiser's loss); `target` is a constant.
///
/// # Shapes
/// - `pred`, `target`: the same shape; output: a scalar
pub fn mse_loss<D: Kernels, S: Shape, T: Tape<f32, D>>(
    pred: Tensor<S, f32, D, T>,
    target: Tensor<S, f32, D>,
) -> Result<Tensor<(), f32, D, T>, OpsError> {
    D::mse_loss(pred, target)
}

/// Elementwise sum of two tensors of the same shape (residual connections).
///
/// # Shapes
/// - `a`, `b`: the same shape; output: that shape
pub fn add<D: Kernels, S: Shape, T: Tape<f32, D>>(
    a: Tensor<S, f32, D, T>,
    b: Tensor<S, f32, D, T>,
) -> Result<Tensor<S, f32, D, T>, OpsError> {
    D::add(a, b)
}

/// Makes the calling thread one of the kernels' worker threads. Call once at program start,
/// before any parallel work: the global pool then has as many threads as cores (or
/// `RAYON_NUM_THREADS`), the caller among them, so a kernel called from this thread runs its
/// share of the work itself instead of waking the pool and sleeping until it is done (two
/// context switches per op, and a third thread contending for two cores). Returns `false`
/// when the pool was already built (then nothing changes).
pub fn join_worker_pool() -> bool {
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
        .is_ok()
}
