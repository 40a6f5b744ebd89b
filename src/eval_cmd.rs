//! `tdspec eval RUNDIR`: a trained run in; test accuracy for classifiers, test epsilon-MSE
//! overall and per quarter of the timesteps (and a Fréchet distance) for denoisers out.

use crate::report::{fail, OrExit, Printer};
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
    /// A run directory (or its checkpoint file), or weights with --spec
    run: PathBuf,
    /// The spec or diffusers config.json of weights given as RUN
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Test data: mnist:DIR or cifar10:DIR (default: what the run trained on)
    #[arg(long)]
    data: Option<String>,
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

pub fn run(a: &EvalArgs) -> Result<u8, u8> {
    if a.samples == 0 {
        return Err(fail("--samples 0: evaluate at least one test sample"));
    }
    let mut run = match &a.spec {
        Some(spec) => TrainedRun::open_weights(spec, &a.run),
        None => TrainedRun::open(&a.run),
    }
    .or_exit()?;
    if a.data.is_some() {
        run.info.data = a.data.clone();
    }
    if let Some(sv) = &a.solver {
        // Evaluate the trained weights under another ODE solver (the parameters do not change).
        run.model.replace_solvers(sv.parse::<Solver>().or_exit()?);
    }
    let (m, p, split) = (&run.model, &run.params, run.data().or_exit()?);
    let sched = match &m.task {
        Some(Task::Denoise { schedule, .. }) => Some(NoiseSchedule::new(schedule)),
        _ => None,
    };
    let rep = evaluate(m, p, sched.as_ref(), &split, a.samples)
        .map_err(|e| fail(format!("evaluation failed: {e}")))?;
    let fd = match &sched {
        Some(sc) if a.fd_samples >= 2 => Some(
            frechet::evaluate_run(
                &run,
                &split,
                sc,
                a.fd_samples,
                a.fd_steps,
                &mut Printer::default(),
            )
            .map_err(|e| fail(format!("Fréchet distance failed: {e}")))?,
        ),
        _ => None,
    };
    if a.format == Format::Json {
        let (dir, report) = (run.dir.display().to_string(), json!(rep));
        println!(
            "{}",
            json!({"run": dir, "model": m.name, "report": report, "frechet": fd})
        );
        return Ok(0);
    }
    let (dir, source) = (run.dir.display(), &split.source);
    println!(
        "{dir}: model {} on {source} ({} test samples)",
        m.name, rep.samples
    );
    print!("{rep}");
    if let Some(f) = fd {
        println!("  {f}");
    }
    Ok(0)
}
