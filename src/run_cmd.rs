//! `tdspec run SPEC --input IN.safetensors -o OUT.safetensors [--checkpoint FILE]`: a spec, its
//! weights and the tensors `x` and `t` in; the network's output `y` written out
//! ([`tdspec_runtime::once`]).

use crate::report::{fail, OrExit};
use clap::Args;
use std::path::PathBuf;
use tdspec_runtime::{once, spec};

#[derive(Args)]
pub struct RunArgs {
    spec: PathBuf,
    /// Safetensors file with `x` (f32, [B, C, H, W]) and `t` (f32, [B])
    #[arg(long)]
    input: PathBuf,
    /// Where to write `y`
    #[arg(short, long)]
    output: PathBuf,
    /// Weights: a tdspec checkpoint or diffusers' diffusion_pytorch_model.safetensors
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Seed of the initialization when no checkpoint is given
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: &RunArgs) -> Result<u8, u8> {
    let (src, models) = spec::load(&a.spec).or_exit()?;
    let [m] = models.as_slice() else {
        return Err(fail(format!(
            "{}: `run` needs a spec with one model",
            src.name
        )));
    };
    let ck = a.checkpoint.as_deref();
    let r = once::run_once(m, ck, &a.input, &a.output, a.seed).or_exit()?;
    let weights = if r.trained { "checkpoint" } else { "initial" };
    let out = a.output.display();
    println!(
        "{}: {} samples ({weights} weights) -> {out}: y {:?}",
        m.name, r.batch, r.out_shape
    );
    Ok(0)
}
