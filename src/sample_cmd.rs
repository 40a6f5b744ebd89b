//! `tdspec sample RUNDIR|CHECKPOINT --n 64 --sampler ancestral|ddim --steps K -o grid.png`:
//! a trained denoiser in; generated digits out as a PNG grid.

use crate::report::{fail, OrExit};
use clap::Args;
use std::path::PathBuf;
use tdspec_compiler::ir::Task;
use tdspec_runtime::plot::save_grid;
use tdspec_runtime::run::TrainedRun;
use tdspec_runtime::sample::{class_labels, sample, Sampler};
use tdspec_runtime::train::NoiseSchedule;

#[derive(Args)]
pub struct SampleArgs {
    /// A run directory (or its checkpoint file), or weights with --spec
    run: PathBuf,
    /// The spec or diffusers config.json of weights given as RUN (e.g. diffusers'
    /// diffusion_pytorch_model.safetensors)
    #[arg(long)]
    spec: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    n: usize,
    #[arg(long, default_value = "ddim", value_parser = ["ancestral", "ddim"])]
    sampler: String,
    /// Denoising steps (evenly spaced over the schedule)
    #[arg(long, default_value_t = 50)]
    steps: usize,
    #[arg(short = 'o', long, default_value = "samples.png")]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Every image's class label (class-conditional models; default: image i takes i mod N)
    #[arg(long)]
    class: Option<usize>,
}

pub fn run(a: &SampleArgs) -> Result<u8, u8> {
    let run = match &a.spec {
        Some(spec) => TrainedRun::open_weights(spec, &a.run),
        None => TrainedRun::open(&a.run),
    }
    .or_exit()?;
    let m = &run.model;
    let Some(Task::Denoise { schedule, .. }) = &m.task else {
        let name = &m.name;
        return Err(fail(format!(
            "model `{name}` is not a denoiser; `sample` needs `task denoise(...)`"
        )));
    };
    if a.n == 0 {
        return Err(fail("--n must be at least 1"));
    }
    let ancestral = a.sampler == "ancestral";
    let sampler = if ancestral {
        Sampler::Ancestral
    } else {
        Sampler::Ddim
    };
    let ys = class_labels(m, a.class, a.n).map_err(fail)?;
    let (n, steps, seed, sched) = (a.n, a.steps, a.seed, NoiseSchedule::new(schedule));
    let tick = |i: usize, k: usize| {
        if i.is_multiple_of(10) || i == k {
            eprint!("\rsampling step {i}/{k}");
        }
    };
    let imgs = sample(m, &run.params, &sched, n, steps, sampler, seed, &ys, tick);
    eprintln!();
    let imgs = imgs.map_err(|e| fail(format!("sampling failed: {e}")))?;
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    let cols = (n as f64).sqrt().ceil() as usize;
    save_grid(&a.out, &imgs, n, c, h, w, cols).or_exit()?;
    let out = a.out.display();
    eprintln!("wrote {out} ({n} samples, {sampler:?}, {steps} steps, seed {seed})");
    Ok(0)
}
