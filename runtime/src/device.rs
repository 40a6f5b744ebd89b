//! Opening a compute device: a device name in, a dfdx device (or the reason there is none) out.
//! The CPU always exists; CUDA only in builds with the `cuda` feature (scripts/build-cuda.sh),
//! elsewhere asking for it gives [`NO_CUDA`].

/// Why `cuda` is unavailable in a build without the `cuda` feature.
pub const NO_CUDA: &str =
    "this binary was built without CUDA; build with --features cuda (scripts/build-cuda.sh)";

/// Opens CUDA device `TDSPEC_CUDA_DEVICE` (default 0). cudarc 0.9 unwraps some driver errors
/// inside device creation (no GPU, no driver), so its panic is caught and returned as an error
/// like any other failure.
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
