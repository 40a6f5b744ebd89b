//! `tdspec experiment PLAN.json [--out DIR]`: a plan in; the lab
//! ([`tdspec_runtime::lab::run_experiment`]) trains, evaluates, probes and lints every variant
//! over seeds and writes `results.json`, `summary.md` and plots to DIR.

use crate::report::{command_line, OrExit, Printer};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;
use tdspec_runtime::lab::run_experiment;

#[derive(Args)]
pub struct ExperimentArgs {
    plan: PathBuf,
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only this group of the plan
    #[arg(long)]
    only: Option<String>,
}

pub fn run(a: &ExperimentArgs) -> Result<u8, u8> {
    let started = Instant::now();
    let out = a.out.clone().unwrap_or("runs/experiment".into());
    let (only, cmd) = (a.only.as_deref(), command_line());
    let summary = run_experiment(&a.plan, &out, only, &cmd, &mut Printer::default()).or_exit()?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("done in {secs:.0} s; see {}", summary.display());
    Ok(0)
}
