//! `tdspec eval RUNDIR`: test accuracy for classifiers; test epsilon-MSE overall and per
//! quarter of the timesteps for denoisers.

use crate::run_dir;
use serde_json::json;
use std::path::Path;
use tdspec_compiler::ir::Task;
use tdspec_runtime::train::{evaluate, NoiseSchedule};

pub fn run(path: &Path, samples: usize, json_out: bool) -> u8 {
    let run = match run_dir::open(path) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let split = match run.data() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let sched = match &run.model.task {
        Some(Task::Denoise { schedule, .. }) => Some(NoiseSchedule::new(schedule)),
        _ => None,
    };
    let rep = match evaluate(&run.model, &run.params, sched.as_ref(), &split, samples) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: evaluation failed: {e}");
            return 2;
        }
    };
    if json_out {
        println!(
            "{}",
            json!({"run": run.dir.display().to_string(), "model": run.model.name, "report": rep})
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
    if let Some(a) = rep.accuracy {
        println!("  test accuracy: {a:.4}");
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
    0
}
