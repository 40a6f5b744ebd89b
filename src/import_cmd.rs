//! `tdspec import diffusers CONFIG.json [-o SPEC.tds]`: a diffusers `UNet2DModel` config in;
//! the spec that computes the same network out, on stdout or in a new file. Exit 1 when the
//! config cannot be imported (errors point into the JSON), 2 on usage and IO errors.

use crate::report::{fail, OrExit, Report};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tdspec_runtime::checkpoint::convert_weights;
use tdspec_runtime::spec::{self, SpecError};

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// A diffusers UNet2DModel config.json
    Diffusers,
}

#[derive(Args)]
pub struct ImportArgs {
    #[arg(value_enum)]
    from: Source,
    /// The model's config.json
    config: PathBuf,
    /// Write the spec here instead of printing it
    #[arg(short = 'o', long)]
    out: Option<PathBuf>,
    /// Replace existing files at --out and --weights-out
    #[arg(long)]
    force: bool,
    /// The model's weights (diffusion_pytorch_model.safetensors) to convert to tdspec's names
    #[arg(long, requires = "weights_out")]
    weights: Option<PathBuf>,
    /// Where to write the converted weights (read by every tdspec command and by the PyTorch
    /// package `tdspec emit` writes)
    #[arg(long, requires = "weights")]
    weights_out: Option<PathBuf>,
}

pub fn run(a: &ImportArgs) -> Result<u8, u8> {
    let Source::Diffusers = a.from;
    let (spec_src, models) = match spec::import_config(&a.config) {
        Err(e @ SpecError::Invalid { .. }) => {
            let code = e.report();
            eprintln!("{}: nothing imported", a.config.display());
            return Err(code);
        }
        r => r.or_exit()?,
    };
    if let (Some(from), Some(to)) = (&a.weights, &a.weights_out) {
        let model = models
            .first()
            .ok_or_else(|| fail("the config holds no model"))?;
        let n = convert_weights(model, from, to, a.force).or_exit()?;
        eprintln!(
            "wrote {} ({n} parameters under tdspec's names)",
            to.display()
        );
    }
    match &a.out {
        None => print!("{}", spec_src.text),
        Some(path) => {
            spec::write_spec_file(path, &spec_src.text, a.force).or_exit()?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(0)
}
