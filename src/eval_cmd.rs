//! `tdspec eval RUNDIR`: test accuracy for classifiers; test epsilon-MSE overall and per
//! quarter of the timesteps for denoisers.

use crate::run_dir;
use serde_json::json;
use std::path::Path;
use tdspec_compiler::ir::Task;
use tdspec_runtime::train::{evaluate, NoiseSchedule};

pub struct FdOptions {
    /// Generated (and real) images for the Fréchet distance; 0 skips it.
    pub samples: usize,
    /// DDIM steps per generated image.
    pub steps: usize,
}

/// Fréchet distance of generated digits to real test digits (and, as the floor, of real train
/// digits to real test digits) in the features of tdspec's own small classifier.
pub fn frechet(
    run: &run_dir::Run,
    split: &tdspec_runtime::data::Split,
    sched: &NoiseSchedule,
    fd: &FdOptions,
) -> Result<(f64, f64, f64), String> {
    use tdspec_runtime::frechet::{feature_model, feature_net, features, frechet_distance};
    let m = &run.model;
    let fm = feature_model(
        m.input.channels,
        m.input.height,
        m.input.width,
        split.train.classes,
    )
    .map_err(|e| e.to_string())?;
    let cache = run.dir.join("frechet_features.safetensors");
    eprintln!(
        "frechet: feature network ({})",
        if cache.exists() {
            "cached"
        } else {
            "training 2 epochs"
        }
    );
    let steps = 2 * (split.train.n / 64).max(1);
    let (fp, acc) =
        feature_net(&fm, split, &run.params.dev, steps, Some(&cache)).map_err(|e| e.to_string())?;
    let n = fd.samples.min(split.test.n).min(split.train.n);
    let gen = tdspec_runtime::sample::sample(
        m,
        &run.params,
        sched,
        n,
        fd.steps,
        tdspec_runtime::sample::Sampler::Ddim,
        99,
        |i, k| {
            if i % 5 == 0 || i == k {
                eprint!("\rfrechet: sampling {i}/{k}");
            }
        },
    )
    .map_err(|e| e.to_string())?;
    eprintln!();
    let idx: Vec<usize> = (0..n).collect();
    let (real_test, _) = tdspec_runtime::data::batch(&split.test, &idx);
    let (real_train, _) = tdspec_runtime::data::batch(&split.train, &idx);
    let fg = features(&fm, &fp, &gen, n).map_err(|e| e.to_string())?;
    let ft = features(&fm, &fp, &real_test, n).map_err(|e| e.to_string())?;
    let fr = features(&fm, &fp, &real_train, n).map_err(|e| e.to_string())?;
    Ok((frechet_distance(&fg, &ft), frechet_distance(&fr, &ft), acc))
}

pub fn run(
    path: &Path,
    samples: usize,
    json_out: bool,
    fd: &FdOptions,
    solver: Option<&str>,
) -> u8 {
    let mut run = match run_dir::open(path) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if let Some(sv) = solver {
        // Evaluate the trained weights under another ODE solver (the parameters do not change).
        let new = match sv.parse::<tdspec_compiler::ir::Solver>() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        for n in &mut run.model.graph.nodes {
            if let tdspec_compiler::ir::Op::Ode { solver, .. } = &mut n.op {
                *solver = new;
            }
        }
    }
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
    let fd_result = match (&sched, fd.samples) {
        (Some(sc), n) if n >= 2 => match frechet(&run, &split, sc, fd) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("error: Fréchet distance failed: {e}");
                return 2;
            }
        },
        _ => None,
    };
    if json_out {
        let fdj = fd_result.map(|(g, floor, acc)| json!({"generated_vs_test": g, "train_vs_test": floor, "feature_net_accuracy": acc, "samples": fd.samples, "ddim_steps": fd.steps}));
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
    if let Some((g, floor, acc)) = fd_result {
        println!(
            "  Fréchet distance (tdspec's own {acc:.3}-accurate digit classifier features, NOT Inception FID): {g:.3} generated vs test; {floor:.3} real train vs test ({} images each, DDIM {} steps)",
            fd.samples, fd.steps
        );
    }
    0
}
