//! `tdspec experiment PLAN.json [--out DIR]`: a plan in; the lab
//! ([`tdspec_runtime::lab::run_experiment`]) trains, evaluates, probes and lints every variant
//! over seeds and writes `results.json`, `summary.md` and plots to DIR.

use crate::report::{command_line, run_error, Printer};
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

pub fn run(a: &ExperimentArgs) -> u8 {
    let started = Instant::now();
    let (out, only) = (
        a.out.clone().unwrap_or("runs/experiment".into()),
        a.only.as_deref(),
    );
    match run_experiment(
        &a.plan,
        &out,
        only,
        &command_line(),
        &mut Printer::default(),
    ) {
        Ok(summary) => {
            let secs = started.elapsed().as_secs_f64();
            eprintln!("done in {secs:.0} s; see {}", summary.display());
            0
        }
        Err(e) => run_error(&e),
    }
}
