//! `--device cpu|cuda`: which dfdx device a command computes on. The runtime is generic over
//! [`tdspec_runtime::ops::Kernels`]; [`on_device!`] instantiates a command's body for the chosen
//! device. CUDA exists only in binaries built with `--features cuda` (scripts/build-cuda.sh);
//! elsewhere `--device cuda` is an error with exit code 2.

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

/// The error of `--device cuda` in a binary without the `cuda` feature.
#[cfg_attr(feature = "cuda", allow(dead_code))]
pub const NO_CUDA: &str =
    "this binary was built without CUDA; build with --features cuda (scripts/build-cuda.sh)";

/// Opens CUDA device 0. cudarc 0.9 unwraps some driver errors inside device creation (no GPU,
/// no driver), so its panic is caught and returned as an error like any other failure.
#[cfg(feature = "cuda")]
pub fn cuda() -> Result<dfdx::tensor::Cuda, String> {
    let ordinal: usize = std::env::var("TDSPEC_CUDA_DEVICE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Silence the default panic message while probing; restore the hook afterwards.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(|| dfdx::tensor::Cuda::try_build(ordinal, 0));
    std::panic::set_hook(hook);
    match r {
        Ok(Ok(dev)) => Ok(dev),
        Ok(Err(e)) => Err(format!("cannot open CUDA device {ordinal}: {e:?}")),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!(
                "cannot open CUDA device {ordinal} (is there an NVIDIA GPU and driver?): {msg}"
            ))
        }
    }
}

/// `on_device!(device, |dev| body)`: evaluates `body` with `dev` bound to a freshly created
/// device of the chosen kind (a `Cpu` or a `Cuda` value); the body is compiled once per device
/// type. Gives `Result<body's type, String>`; the error says why the device is unavailable.
#[cfg(feature = "cuda")]
macro_rules! on_device {
    ($device:expr, |$dev:ident| $body:expr) => {
        match $device {
            $crate::device::DeviceArg::Cpu => {
                let $dev = ::dfdx::tensor::Cpu::default();
                Ok::<_, String>($body)
            }
            $crate::device::DeviceArg::Cuda => match $crate::device::cuda() {
                Ok($dev) => Ok($body),
                Err(e) => Err(e),
            },
        }
    };
}

/// `on_device!(device, |dev| body)`: evaluates `body` with `dev` bound to a freshly created
/// device of the chosen kind; in this build (no `cuda` feature) only the CPU exists.
#[cfg(not(feature = "cuda"))]
macro_rules! on_device {
    ($device:expr, |$dev:ident| $body:expr) => {
        match $device {
            $crate::device::DeviceArg::Cpu => {
                let $dev = ::dfdx::tensor::Cpu::default();
                Ok::<_, String>($body)
            }
            $crate::device::DeviceArg::Cuda => Err($crate::device::NO_CUDA.to_string()),
        }
    };
}
pub(crate) use on_device;
