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

/// One line of the table: variant, role, lint and eight right-aligned figures.
fn line(name: &str, role: &str, lint: &str, figures: &[String]) {
    let figures: Vec<String> = figures.iter().map(|f| format!("{f:>9}")).collect();
    println!("{name:12} {role:44} {lint:16} {}", figures.join(" "));
}

fn print_table(rows: &[DemoRow], a: &DemoArgs) {
    println!();
    println!(
        "small_ddpm_mnist, {} steps x batch {}, seed {}; test eps-MSE on {} embedded test digits",
        a.steps, a.batch, a.seed, a.eval_samples
    );
    let head = "predicted|measured|output Δt|eps-MSE|q1 (low)|q2|q3|q4 (high)";
    line(
        "variant",
        "",
        "lint",
        &head.split('|').map(String::from).collect::<Vec<_>>(),
    );
    for r in rows {
        let lint = if r.lint.is_empty() {
            "clean".to_string()
        } else {
            r.lint.join(",")
        };
        let mut figures = vec![
            format!("{:.2}", r.predicted),
            format!("{:.2}", r.measured),
            format!("{:.3}", r.output_change),
            format!("{:.5}", r.eps_mse),
        ];
        figures.extend((0..4).map(|i| r.quarters.get(i).map_or("-".into(), |v| format!("{v:.5}"))));
        line(r.name, r.role, &lint, &figures);
    }
    println!();
    println!(
        "predicted: the lint's surviving fraction of the injected time offset at the worst norm"
    );
    println!("measured: mean surviving fraction of the time signal over the norms it reaches (probe, trained weights)");
    println!("output Δt: relative change of the predicted noise when t goes from 100 to 900 at the same input");
    println!("q1..q4: test eps-MSE per quarter of the timesteps, low noise first");
}
