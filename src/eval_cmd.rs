//! `tdspec eval RUNDIR`: a trained run in; test accuracy for classifiers, test epsilon-MSE
//! overall and per quarter of the timesteps (and a Fréchet distance) for denoisers out.

use crate::report::{fail, run_error, Printer};
use crate::Format;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tdspec_compiler::ir::{Solver, Task};
use tdspec_runtime::frechet;
use tdspec_runtime::run::TrainedRun;
use tdspec_runtime::train::{evaluate, NoiseSchedule};

#[derive(Args)]
pub struct EvalArgs {
    run: PathBuf,
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Images generated for the Fréchet distance of denoisers (0 skips it)
    #[arg(long, default_value_t = 256)]
    fd_samples: usize,
    /// DDIM steps per generated image for the Fréchet distance
    #[arg(long, default_value_t = 25)]
    fd_steps: usize,
    /// Evaluate ODE blocks with another solver: dopri5:RTOL:ATOL, rk4:STEPS or euler:STEPS
    #[arg(long)]
    solver: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(a: &EvalArgs) -> u8 {
    let mut run = match TrainedRun::open(&a.run) {
        Ok(r) => r,
        Err(e) => return run_error(&e),
    };
    if let Some(sv) = &a.solver {
        // Evaluate the trained weights under another ODE solver (the parameters do not change).
        match sv.parse::<Solver>() {
            Ok(s) => run.model.replace_solvers(s),
            Err(e) => return fail(e),
        };
    }
    let split = match run.data() {
        Ok(s) => s,
        Err(e) => return run_error(&e),
    };
    let sched = match &run.model.task {
        Some(Task::Denoise { schedule, .. }) => Some(NoiseSchedule::new(schedule)),
        _ => None,
    };
    let rep = match evaluate(&run.model, &run.params, sched.as_ref(), &split, a.samples) {
        Ok(r) => r,
        Err(e) => return fail(format!("evaluation failed: {e}")),
    };
    let cache = run.dir.join("frechet_features.safetensors");
    let fd = match &sched {
        Some(sc) if a.fd_samples >= 2 => {
            let (m, p, n, k) = (&run.model, &run.params, a.fd_samples, a.fd_steps);
            let mut printer = Printer::default();
            match frechet::evaluate(m, p, &split, sc, n, k, Some(&cache), &mut printer) {
                Ok(v) => Some(v),
                Err(e) => return fail(format!("Fréchet distance failed: {e}")),
            }
        }
        _ => None,
    };
    if a.format == Format::Json {
        let fdj = fd.map(|f| json!({"generated_vs_test": f.generated_vs_test, "train_vs_test": f.train_vs_test, "feature_net_accuracy": f.feature_net_accuracy, "samples": a.fd_samples, "ddim_steps": a.fd_steps}));
        println!(
            "{}",
            json!({"run": run.dir.display().to_string(), "model": run.model.name, "report": rep, "frechet": fdj})
        );
        return 0;
    }
    println!(
        "{}: model {} on {} ({} test samples)",
        run.dir.display(),
        run.model.name,
        split.source,
        rep.samples
    );
    if let Some(acc) = rep.accuracy {
        println!("  test accuracy: {acc:.4}");
        if let Some(n) = rep.nfe {
            println!("  ODE function evaluations per forward: {n:.1}");
        }
    }
    if let Some(e) = rep.eps_mse {
        println!("  test eps-MSE: {e:.5}");
        let names = ["q1 (low noise)", "q2", "q3", "q4 (high noise)"];
        for (n, v) in names.iter().zip(&rep.eps_mse_buckets) {
            println!("    {n:>15}: {v:.5}");
        }
    }
    if let Some(f) = fd {
        println!(
            "  Fréchet distance (tdspec's own {:.3}-accurate digit classifier features, NOT Inception FID): {:.3} generated vs test; {:.3} real train vs test ({} images each, DDIM {} steps)",
            f.feature_net_accuracy, f.generated_vs_test, f.train_vs_test, a.fd_samples, a.fd_steps
        );
    }
    0
}
