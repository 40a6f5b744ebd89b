//! Vocabulary of the ops layer, shared by every other part of it: the runtime-dimension shape and
//! tensor aliases, the op configurations ([`Conv2dCfg`], [`GroupNormCfg`], [`BatchNormCfg`],
//! [`Activation`], [`Unary`]), [`RunningStats`] and the error type [`OpsError`] in; nothing from
//! the rest of `ops` is used here, so every op module can build on it.

use dfdx::tensor::{CpuError, NoneTape, Tensor};
use dfdx::tensor_ops::Device;

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

/// A failure of the CPU device (the tape plumbing returns these) is a device error.
impl From<CpuError> for OpsError {
    fn from(e: CpuError) -> Self {
        dev_err(e)
    }
}

/// Configuration of [`conv2d`](super::conv2d): square kernels (size taken from the weight), zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dCfg {
    /// Step between output positions, both axes (>= 1).
    pub stride: usize,
    /// Zero padding added on every side.
    pub padding: usize,
    /// Channel groups: input and output channels must both be divisible by it (>= 1).
    pub groups: usize,
}

/// The time channel of a ConcatConv ([`conv2d_time`](super::conv2d_time)): sample `i`'s
/// channel is `time[i] * plane`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTime<'a> {
    /// One time value per sample.
    pub time: &'a [f32],
    /// The channel's spatial pattern, `[H * W]`.
    pub plane: &'a [f32],
}

/// What a fused convolution ([`group_norm_conv2d`](super::group_norm_conv2d)) adds to its
/// output after the bias: nothing, a per-sample, per-channel offset `[B, Cout]` (as
/// [`add_channel_offset`](super::add_channel_offset)), or a map of the output's shape (a
/// residual, as [`add`](super::add)).
#[derive(Clone, Debug)]
pub enum Epilogue<D: Device<f32>, T = NoneTape> {
    None,
    Offset(Tensor2<D, T>),
    Residual(Tensor4<D, T>),
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

/// Configuration of [`group_norm`](super::group_norm). InstanceNorm is `groups = C`; LayerNorm over `(C, H, W)` is
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

/// Configuration of [`batch_norm_train`](super::batch_norm_train) and
/// [`batch_norm_eval`](super::batch_norm_eval).
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

/// Elementwise activations of [`unary`](super::unary).
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
