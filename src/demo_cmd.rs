//! `tdspec demo`: the demo's budget in; the lab ([`tdspec_runtime::lab::run_demo`]) lints,
//! trains, probes and evaluates three small diffusion variants on the embedded digits, and one
//! table out puts the static verdict beside the measured time sensitivity and the test
//! epsilon-MSE overall and per quarter of the timesteps.

use crate::report::{command_line, run_error, Printer};
use clap::Args;
use std::path::PathBuf;
use tdspec_runtime::lab::{run_demo, DemoOptions, DemoRow};

#[derive(Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 150)]
    steps: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    eval_samples: usize,
}

pub fn run(a: &DemoArgs) -> u8 {
    let opts = DemoOptions {
        steps: a.steps,
        batch: a.batch,
        seed: a.seed,
        out: a.out.clone(),
        eval_samples: a.eval_samples,
        command: command_line(),
    };
    match run_demo(&opts, &mut Printer::default()) {
        Ok(rows) => {
            print_table(&rows, a);
            0
        }
        Err(e) => run_error(&e),
    }
}

fn print_table(rows: &[DemoRow], a: &DemoArgs) {
    println!();
    println!(
        "small_ddpm_mnist, {} steps x batch {}, seed {}; test eps-MSE on {} embedded test digits",
        a.steps, a.batch, a.seed, a.eval_samples
    );
    println!(
        "{:12} {:44} {:16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "variant",
        "",
        "lint",
        "predicted",
        "measured",
        "output Δt",
        "eps-MSE",
        "q1 (low)",
        "q2",
        "q3",
        "q4 (high)"
    );
    for r in rows {
        let lint = if r.lint.is_empty() {
            "clean".to_string()
        } else {
            r.lint.join(",")
        };
        let q = |i: usize| {
            r.quarters
                .get(i)
                .map(|v| format!("{v:.5}"))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:12} {:44} {:16} {:>9.2} {:>9.2} {:>9.3} {:>9.5} {:>9} {:>9} {:>9} {:>9}",
            r.name,
            r.role,
            lint,
            r.predicted,
            r.measured,
            r.output_change,
            r.eps_mse,
            q(0),
            q(1),
            q(2),
            q(3)
        );
    }
    println!();
    println!(
        "predicted: the lint's surviving fraction of the injected time offset at the worst norm"
    );
    println!("measured: mean surviving fraction of the time signal over the norms it reaches (probe, trained weights)");
    println!("output Δt: relative change of the predicted noise when t goes from 100 to 900 at the same input");
    println!("q1..q4: test eps-MSE per quarter of the timesteps, low noise first");
}
