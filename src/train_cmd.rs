//! `tdspec train SPEC`: the arguments of a training run in; the run driver
//! ([`tdspec_runtime::run::train`]) trains on the chosen device and keeps the run directory,
//! while [`Printer`] shows its progress. `--resume RUNDIR` continues exactly where a run stopped.

use crate::device::{on_device, DeviceArg};
use crate::report::{command_line, fail, OrExit, Printer};
use clap::Args;
use std::path::PathBuf;
use tdspec_runtime::run::{self, Start, TrainOptions};

#[derive(Args)]
pub struct TrainArgs {
    /// The spec to train (omit with --resume)
    spec: Option<PathBuf>,
    /// Data: mnist:DIR or cifar10:DIR; the embedded MNIST subset when absent
    #[arg(long)]
    data: Option<String>,
    /// Train until this many optimizer steps
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<usize>,
    /// Train for this many epochs
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory (default runs/MODEL-seedS)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory
    #[arg(long, conflicts_with_all = ["spec", "out", "data", "seed", "limit_train"])]
    resume: Option<PathBuf>,
    /// Override the spec's batch size
    #[arg(long)]
    batch: Option<usize>,
    /// Use only the first N training samples
    #[arg(long)]
    limit_train: Option<usize>,
    /// Start from these weights (a tdspec checkpoint, a PyTorch export or diffusers'
    /// diffusion_pytorch_model.safetensors) instead of the seeded initialization
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Evaluate (and checkpoint) every K steps (default: every epoch for classifiers, 5 times per run for denoisers)
    #[arg(long)]
    eval_every: Option<usize>,
    /// Test samples per evaluation
    #[arg(long, default_value_t = 2000)]
    eval_samples: usize,
    /// Train on this device (cuda needs a binary built with --features cuda)
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run(a: &TrainArgs) -> Result<u8, u8> {
    let start = match (&a.resume, &a.spec) {
        (Some(dir), _) => Start::Resume(dir.clone()),
        (None, Some(spec)) => Start::New {
            spec: spec.clone(),
            out: a.out.clone(),
            data: a.data.clone(),
            seed: a.seed,
            limit_train: a.limit_train,
            init: a.init.clone(),
        },
        (None, None) => return Err(fail("give a spec to train, or --resume RUNDIR")),
    };
    let opts = TrainOptions {
        start,
        steps: a.steps,
        epochs: a.epochs,
        batch: a.batch,
        eval_every: a.eval_every,
        eval_samples: a.eval_samples,
        command: command_line(),
    };
    let mut printer = Printer::default();
    let result = on_device!(a.device, |dev| run::train(&opts, &dev, &mut printer));
    drop(printer); // a stopped run's bar stays above the error
    result.or_exit()?.or_exit()?;
    Ok(0)
}
