//! `tdspec sample RUNDIR|CHECKPOINT --n 64 --sampler ancestral|ddim --steps K -o grid.png`:
//! generates digits from a trained denoiser and writes them as a PNG grid.

use crate::run_dir;
use std::path::Path;
use tdspec_compiler::ir::Task;
use tdspec_runtime::plot::save_grid;
use tdspec_runtime::sample::{sample, Sampler};
use tdspec_runtime::train::NoiseSchedule;

pub fn run(path: &Path, n: usize, sampler: Sampler, steps: usize, out: &Path, seed: u64) -> u8 {
    let run = match run_dir::open(path) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(Task::Denoise { schedule, .. }) = &run.model.task else {
        eprintln!(
            "error: model `{}` is not a denoiser; `sample` needs `task denoise(...)`",
            run.model.name
        );
        return 2;
    };
    if n == 0 {
        eprintln!("error: --n must be at least 1");
        return 2;
    }
    let sched = NoiseSchedule::new(schedule);
    let m = &run.model;
    let imgs = match sample(m, &run.params, &sched, n, steps, sampler, seed, |i, k| {
        if i % 10 == 0 || i == k {
            eprint!("\rsampling step {i}/{k}");
        }
    }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("\nerror: sampling failed: {e}");
            return 2;
        }
    };
    eprintln!();
    let cols = (n as f64).sqrt().ceil() as usize;
    if let Err(e) = save_grid(
        out,
        &imgs,
        n,
        m.input.channels,
        m.input.height,
        m.input.width,
        cols,
    ) {
        eprintln!("error: {e}");
        return 2;
    }
    eprintln!(
        "wrote {} ({n} samples, {:?}, {steps} steps, seed {seed})",
        out.display(),
        sampler
    );
    0
}
