//! `--device cpu|cuda`: which dfdx device a command computes on. The runtime is generic over
//! [`tdspec_runtime::ops::Kernels`]; [`on_device!`] instantiates a command's body for the chosen
//! device, opened by [`tdspec_runtime::device`]. CUDA exists only in binaries built with
//! `--features cuda` (scripts/build-cuda.sh); elsewhere `--device cuda` is an error (exit 2).

use clap::ValueEnum;

/// The device a command computes on.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The host CPU (the fast hand-written kernels).
    #[default]
    Cpu,
    /// NVIDIA GPU 0 through dfdx's CUDA backend (binaries built with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    pub fn name(self) -> &'static str {
        match self {
            DeviceArg::Cpu => "cpu",
            DeviceArg::Cuda => "cuda",
        }
    }
}

/// `on_device!(device, |dev| body)`: evaluates `body` with `dev` bound to a freshly created
/// device of the chosen kind (a `Cpu` or a `Cuda` value); the body is compiled once per device
/// type. Gives `Result<body's type, String>`; the error says why the device is unavailable.
macro_rules! on_device {
    ($device:expr, |$dev:ident| $body:expr) => {
        match $device {
            $crate::device::DeviceArg::Cpu => {
                let $dev = ::dfdx::tensor::Cpu::default();
                Ok::<_, String>($body)
            }
            #[cfg(feature = "cuda")]
            $crate::device::DeviceArg::Cuda => match ::tdspec_runtime::device::cuda() {
                Ok($dev) => Ok($body),
                Err(e) => Err(e),
            },
            #[cfg(not(feature = "cuda"))]
            $crate::device::DeviceArg::Cuda => Err(::tdspec_runtime::device::NO_CUDA.to_string()),
        }
    };
}
pub(crate) use on_device;
