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
//! time channel) is passed with [`NoneTape`] and costs no input-gradient work. Parameters get
//! gradients whenever `T` owns a tape (retape them with `w.retaped::<T>()` if they have none).
//! Ops without parameters take and return one tape type.
//!
//! Shapes are validated by the compiler before lowering; every op still checks the shapes it relies
//! on and returns [`OpsError`] instead of panicking.

mod attention;
pub mod composed;
mod conv;
mod cpu;
mod elementwise;
mod gemm512;
mod linear;
mod math;
mod norm;
mod pool;

use dfdx::shapes::Shape;
use dfdx::tensor::{Merge, NoneTape, Tape, Tensor};
use dfdx::tensor_ops::Device;

pub use linear::{concat_channels, linear};

/// Runtime rank-1 shape `(n,)`.
pub type Shape1 = (usize,);
/// Runtime rank-2 shape `(rows, cols)`.
pub type Shape2 = (usize, usize);
/// Runtime rank-3 shape, e.g. `(batch, channels, positions)`.
pub type Shape3 = (usize, usize, usize);
/// Runtime NCHW shape `(batch, channels, height, width)`.
pub type Shape4 = (usize, usize, usize, usize);

/// f32 tensor of rank 1 with runtime dims.
pub type Tensor1<D, T = NoneTape> = Tensor<Shape1, f32, D, T>;
/// f32 tensor of rank 2 with runtime dims.
pub type Tensor2<D, T = NoneTape> = Tensor<Shape2, f32, D, T>;
/// f32 tensor of rank 3 with runtime dims.
pub type Tensor3<D, T = NoneTape> = Tensor<Shape3, f32, D, T>;
/// f32 NCHW tensor with runtime dims.
pub type Tensor4<D, T = NoneTape> = Tensor<Shape4, f32, D, T>;

/// Errors of the ops layer.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum OpsError {
    /// An operand's shape does not fit the op or the other operands.
    #[error("{op}: shape mismatch: {msg}")]
    Shape {
        /// The op that refused its operands.
        op: &'static str,
        /// What did not fit.
        msg: String,
    },
    /// A configuration value the op cannot run with (zero stride, zero groups, ...).
    #[error("{op}: invalid configuration: {msg}")]
    Config {
        /// The op that refused its configuration.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// The device failed (allocation, ...).
    #[error("device error: {0}")]
    Device(String),
}

pub(crate) fn shape_err(op: &'static str, msg: impl Into<String>) -> OpsError {
    OpsError::Shape {
        op,
        msg: msg.into(),
    }
}

pub(crate) fn config_err(op: &'static str, msg: impl Into<String>) -> OpsError {
    OpsError::Config {
        op,
        msg: msg.into(),
    }
}

pub(crate) fn dev_err(e: impl std::fmt::Display) -> OpsError {
    OpsError::Device(e.to_string())
}

/// Configuration of [`conv2d`]: square kernels (size taken from the weight), zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dCfg {
    /// Step between output positions, both axes (>= 1).
    pub stride: usize,
    /// Zero padding added on every side.
    pub padding: usize,
    /// Channel groups: input and output channels must both be divisible by it (>= 1).
    pub groups: usize,
}

impl Default for Conv2dCfg {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            groups: 1,
        }
    }
}

/// Activation fused into a normalization op's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `x * sigmoid(x)` (swish).
    Silu,
}

/// Configuration of [`group_norm`]. InstanceNorm is `groups = C`; LayerNorm over `(C, H, W)` is
/// `groups = 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupNormCfg {
    /// Number of channel groups; must divide C.
    pub groups: usize,
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Activation applied after the affine transform.
    pub act: Activation,
}

/// Configuration of [`batch_norm_train`] and [`batch_norm_eval`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormCfg {
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Weight of the new batch statistic in the running average (PyTorch's default is 0.1).
    pub momentum: f32,
}

impl Default for BatchNormCfg {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

/// Running statistics of a batch-norm layer, one value per channel (no tape).
#[derive(Clone, Debug)]
pub struct RunningStats<D: Device<f32>> {
    /// Running mean, `[C]`.
    pub mean: Tensor1<D>,
    /// Running (unbiased) variance, `[C]`.
    pub var: Tensor1<D>,
}

/// Elementwise activations of [`unary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    /// `max(x, 0)`.
    Relu,
    /// `x * sigmoid(x)`.
    Silu,
    /// `tanh(x)`.
    Tanh,
    /// `ln(1 + exp(x))`.
    Softplus,
}

/// Device trait of the ops layer: one method per op, forward + backward on the tape.
///
/// The free functions of this module ([`conv2d`], [`group_norm`], ...) document shapes and call
/// these methods.
pub trait Kernels: Device<f32> {
    /// See [`conv2d`].
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

    /// See [`group_norm`].
    fn group_norm<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        cfg: GroupNormCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>;

    /// See [`batch_norm_train`].
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

    /// See [`batch_norm_eval`].
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

    /// See [`unary`].
    fn unary<S: Shape, T: Tape<f32, Self>>(
        x: Tensor<S, f32, Self, T>,
        op: Unary,
    ) -> Result<Tensor<S, f32, Self, T>, OpsError>;

    /// See [`avg_pool2d`].
    fn avg_pool2d<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        kernel: usize,
        stride: usize,
    ) -> Result<Tensor4<Self, T>, OpsError>;

    /// See [`global_avg_pool`].
    fn global_avg_pool<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
    ) -> Result<Tensor2<Self, T>, OpsError>;

    /// See [`upsample_nearest2x`].
    fn upsample_nearest2x<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
    ) -> Result<Tensor4<Self, T>, OpsError>;

    /// See [`attention`].
    fn attention<T: Tape<f32, Self>>(
        q: Tensor3<Self, T>,
        k: Tensor3<Self, T>,
        v: Tensor3<Self, T>,
    ) -> Result<Tensor3<Self, T>, OpsError>;

    /// See [`add_channel_offset`].
    fn add_channel_offset<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        offset: Tensor2<Self, T>,
    ) -> Result<Tensor4<Self, T>, OpsError>;

    /// See [`add`].
    fn add<S: Shape, T: Tape<f32, Self>>(
        a: Tensor<S, f32, Self, T>,
        b: Tensor<S, f32, Self, T>,
    ) -> Result<Tensor<S, f32, Self, T>, OpsError>;
}

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

/// Nearest-neighbour upsampling by 2 on both spatial axes.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`
/// - output: `[B, C, 2H, 2W]`
pub fn upsample_nearest2x<D: Kernels, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
) -> Result<Tensor4<D, T>, OpsError> {
    D::upsample_nearest2x(x)
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

/// Makes the C allocator keep freed memory for reuse instead of returning it to the OS.
///
/// Training frees and re-allocates the same large activation and gradient buffers every step;
/// glibc's defaults hand them back with `munmap` / heap trimming, so every step pays a page fault
/// per 4 KiB (plus a TLB shootdown across threads for gradient buffers that are read before being
/// written). Call once at program start; a no-op off glibc. Process-wide: the memory high-water
/// mark stays reserved.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only adjusts glibc allocator parameters; both values are in range.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 1 << 30);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}
