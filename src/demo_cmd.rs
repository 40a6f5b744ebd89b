//! `tdspec demo`: the demo's budget in; the lab ([`tdspec_runtime::lab::run_demo`]) lints,
//! trains, probes and evaluates three small diffusion variants on the embedded digits, and one
//! table out puts the static verdict beside the measured time sensitivity and the test
//! epsilon-MSE overall and per quarter of the timesteps.

use crate::report::{command_line, OrExit, Printer};
use clap::Args;
use std::path::PathBuf;
use tdspec_runtime::lab::{demo_table, fresh_demo_dir, run_demo, DemoOptions};

#[derive(Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 150)]
    steps: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory (must be new or empty); default runs/demo, or runs/demo-2, ... when taken
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    eval_samples: usize,
}

pub fn run(a: &DemoArgs) -> Result<u8, u8> {
    let opts = DemoOptions {
        steps: a.steps,
        batch: a.batch,
        seed: a.seed,
        out: a
            .out
            .clone()
            .unwrap_or_else(|| fresh_demo_dir(std::path::Path::new("runs/demo"))),
        eval_samples: a.eval_samples,
        command: command_line(),
    };
    let rows = run_demo(&opts, &mut Printer::default()).or_exit()?;
    print!("{}", demo_table(&rows, &opts));
    Ok(0)
}
