//! The experiment runner: a [`Plan`] in; for every variant and seed a trained run, evaluated
//! (test accuracy, with another solver too and its NFE; or test eps-MSE per timestep quarter
//! and a Fréchet distance), probed, and recorded beside the lint's prediction. Out:
//! `results.json` (every run; a rerun skips the recorded ones), `summary.md` (mean and standard
//! deviation over seeds) and PNG plots of the metric per variant and of the measured time
//! sensitivity per normalization layer.

use super::measure::{lint_verdict, mean_std, probe_trained};
use super::plan::{Group, Plan};
use crate::frechet;
use crate::plot::{save_bars, save_curves};
use crate::run::{self, RunError, RunObserver, Silent, Start, TrainOptions, TrainedRun};
use crate::train::{evaluate, NoiseSchedule};
use dfdx::tensor::Cpu;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tdspec_compiler::ir::Task;

/// One trained variant at one seed, as `results.json` keeps it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_eval_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_nfe: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps_mse: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps_mse_quarters: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_net_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frechet: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frechet_floor: Option<f64>,
    pub group: String,
    /// Per norm: measured and predicted survival.
    #[serde(default)]
    pub layers: Vec<LayerRecord>,
    #[serde(default)]
    pub lint: Vec<String>,
    /// Mean measured survival over the norms time reaches (null when it reaches none).
    #[serde(default)]
    pub measured_survival: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfe: Option<f64>,
    #[serde(default)]
    pub predicted_worst: f64,
    #[serde(default)]
    pub seconds: f64,
    pub seed: u64,
    pub spec: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    #[serde(default)]
    pub train_seconds: f64,
    pub variant: String,
}

/// One normalization of a trained variant.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LayerRecord {
    pub measured: Option<f64>,
    pub node: String,
    pub predicted: Option<f64>,
}

/// Lower-case letters and digits of `s`, the rest as `_`, trimmed of `_`.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches('_')
        .to_string()
}

/// Runs the plan at `plan_path` into `out` (only the group `only`, when given); returns the
/// path of `summary.md`.
pub fn run_experiment(
    plan_path: &Path,
    out: &Path,
    only: Option<&str>,
    command: &str,
    obs: &mut dyn RunObserver,
) -> Result<PathBuf, RunError> {
    let plan = Plan::read(plan_path).map_err(RunError::Failed)?;
    std::fs::create_dir_all(out)
        .map_err(|e| RunError::failed(format!("cannot create {}: {e}", out.display())))?;
    let results_path = out.join("results.json");
    // Resume: keep the runs already recorded.
    let mut results: Vec<RunRecord> = std::fs::read_to_string(&results_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let started = Instant::now();
    for g in &plan.groups {
        if only.is_some_and(|o| o != g.name) {
            continue;
        }
        for v in &g.variants {
            for &seed in &plan.seeds {
                let done =
                    |r: &RunRecord| r.group == g.name && r.variant == v.name && r.seed == seed;
                if results.iter().any(done) {
                    continue;
                }
                obs.note(&format!(
                    "[{:>5.0}s] {} / {} / seed {seed}",
                    started.elapsed().as_secs_f64(),
                    g.name,
                    v.name
                ));
                let dir = out
                    .join(&g.name)
                    .join(format!("{}-seed{seed}", slug(&v.name)));
                let mut r = one(g, &v.spec, seed, &dir, command, obs)?;
                r.group = g.name.clone();
                r.variant = v.name.clone();
                r.seed = seed;
                r.spec = v.spec.display().to_string();
                obs.note(&format!("         {}", short(&r)));
                results.push(r);
                let _ = std::fs::write(
                    &results_path,
                    serde_json::to_string_pretty(&results).unwrap_or_default(),
                );
            }
        }
    }
    summarize(&plan, &results, out);
    Ok(out.join("summary.md"))
}

/// The headline figures of one run, for the progress line.
fn short(r: &RunRecord) -> String {
    let mut s = String::new();
    for (k, v) in [
        ("test_accuracy", r.test_accuracy),
        ("adaptive_accuracy", r.adaptive_accuracy),
        ("adaptive_nfe", r.adaptive_nfe),
        ("eps_mse", r.eps_mse),
        ("frechet", r.frechet),
        ("measured_survival", r.measured_survival),
        ("seconds", Some(r.seconds)),
    ] {
        if let Some(v) = v {
            let _ = write!(s, "{k} {v:.4}  ");
        }
    }
    s
}

/// Trains, evaluates and probes one variant at one seed.
fn one(
    g: &Group,
    spec: &Path,
    seed: u64,
    dir: &Path,
    command: &str,
    obs: &mut dyn RunObserver,
) -> Result<RunRecord, RunError> {
    let text = std::fs::read_to_string(spec)
        .map_err(|e| RunError::failed(format!("cannot read {}: {e}", spec.display())))?;
    let verdict = lint_verdict(&text)
        .map_err(|_| RunError::failed(format!("{} does not check", spec.display())))?
        .ok_or_else(|| RunError::failed(format!("{} has no model", spec.display())))?;
    let _ = std::fs::remove_dir_all(dir);
    let t0 = Instant::now();
    let train = TrainOptions {
        start: Start::New {
            spec: spec.to_path_buf(),
            out: Some(dir.to_path_buf()),
            data: g.data.clone(),
            seed,
            limit_train: None,
            init: None,
        },
        steps: g.steps,
        epochs: g.epochs,
        batch: g.batch,
        // Evaluate once, at the end.
        eval_every: Some(usize::MAX),
        eval_samples: g.eval_samples,
        command: command.to_string(),
    };
    let res = run::train(&train, &Cpu::default(), &mut Silent)?;
    let mut r = RunRecord {
        lint: verdict.codes,
        predicted_worst: verdict.worst,
        train_seconds: t0.elapsed().as_secs_f64(),
        ..Default::default()
    };
    let run = TrainedRun::open(&res.dir)?;
    let split = run.data()?;
    let probes =
        probe_trained(&run, &split, seed).map_err(|e| RunError::failed(format!("probe: {e}")))?;
    r.layers = probes
        .iter()
        .map(|p| LayerRecord {
            measured: p.measured,
            node: p.node.clone(),
            predicted: p.predicted,
        })
        .collect();
    let measured: Vec<f64> = probes.iter().filter_map(|p| p.measured).collect();
    r.measured_survival = Some(mean_std(&measured).0).filter(|v| v.is_finite());
    let e = &res.final_eval;
    match &run.model.task {
        Some(Task::Classify { .. }) => {
            r.test_accuracy = e.accuracy;
            r.nfe = e.nfe;
            if let Some(solver) = g.adaptive_eval {
                // The same weights with every ODE block on the other solver.
                let mut model = run.model.clone();
                model.replace_solvers(solver);
                let t1 = Instant::now();
                let rep = evaluate(&model, &run.params, None, &split, g.eval_samples)
                    .map_err(|e| RunError::failed(format!("adaptive eval: {e}")))?;
                r.adaptive_accuracy = rep.accuracy;
                r.adaptive_nfe = rep.nfe;
                r.adaptive_eval_seconds = Some(t1.elapsed().as_secs_f64());
            }
        }
        Some(Task::Denoise { schedule, .. }) => {
            r.eps_mse = e.eps_mse;
            r.eps_mse_quarters = Some(e.eps_mse_buckets.clone());
            if g.fd_samples >= 2 {
                let sched = NoiseSchedule::new(schedule);
                let (n, k) = (g.fd_samples, g.fd_steps);
                let fd = frechet::evaluate_run(&run, &split, &sched, n, k, obs)
                    .map_err(|e| RunError::failed(format!("frechet: {e}")))?;
                r.frechet = Some(fd.generated_vs_test);
                r.frechet_floor = Some(fd.train_vs_test);
                r.feature_net_accuracy = Some(fd.feature_net_accuracy);
            }
        }
        None => {}
    }
    r.seconds = t0.elapsed().as_secs_f64();
    Ok(r)
}

/// A column of a group's table: header and the figure it shows.
type Column = (&'static str, fn(&RunRecord) -> Option<f64>);

const CLASSIFIER_COLUMNS: [Column; 5] = [
    ("test accuracy (RK4)", |r| r.test_accuracy),
    ("test accuracy (dopri5)", |r| r.adaptive_accuracy),
    ("NFE (dopri5)", |r| r.adaptive_nfe),
    ("measured survival", |r| r.measured_survival),
    ("train s", |r| Some(r.train_seconds)),
];

const DENOISER_COLUMNS: [Column; 6] = [
    ("test eps-MSE", |r| r.eps_mse),
    ("eps-MSE t >= 3T/4", |r| quarter(r, 3)),
    ("eps-MSE t < T/4", |r| quarter(r, 0)),
    ("Fréchet (own features)", |r| r.frechet),
    ("measured survival", |r| r.measured_survival),
    ("train s", |r| Some(r.train_seconds)),
];

fn quarter(r: &RunRecord, q: usize) -> Option<f64> {
    r.eps_mse_quarters.as_ref()?.get(q).copied()
}

/// `summary.md` and the plots of every group.
fn summarize(plan: &Plan, results: &[RunRecord], out: &Path) {
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", plan.name);
    for g in &plan.groups {
        let _ = writeln!(md, "## {}\n\n{}\n", g.name, g.about);
        let classifier = g.adaptive_eval.is_some() || g.epochs.is_some();
        let columns: &[Column] = if classifier {
            &CLASSIFIER_COLUMNS
        } else {
            &DENOISER_COLUMNS
        };
        let _ = write!(md, "| variant | lint | predicted (worst norm) |");
        for (h, _) in columns {
            let _ = write!(md, " {h} |");
        }
        let _ = writeln!(md, " seeds |");
        let _ = writeln!(md, "|{}", " --- |".repeat(columns.len() + 4));
        let (mut labels, mut means, mut errs) = (Vec::new(), Vec::new(), Vec::new());
        let mut layer_series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for v in &g.variants {
            let runs: Vec<&RunRecord> = results
                .iter()
                .filter(|r| r.group == g.name && r.variant == v.name)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let lint = runs[0].lint.join(", ");
            let _ = write!(
                md,
                "| {} | {} | {:.3} |",
                v.name,
                if lint.is_empty() { "clean" } else { &lint },
                runs[0].predicted_worst
            );
            for (_, f) in columns {
                let vals: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
                let (m, s) = mean_std(&vals);
                let prec = if m.abs() < 0.1 { 5 } else { 3 };
                let _ = write!(md, " {m:.prec$} ({s:.prec$}) |");
            }
            let _ = writeln!(md, " {} |", runs.len());
            let headline = |r: &&RunRecord| {
                if classifier {
                    r.test_accuracy
                } else {
                    r.eps_mse
                }
            };
            let (m, s) = mean_std(&runs.iter().filter_map(headline).collect::<Vec<_>>());
            labels.push(v.name.clone());
            means.push(m);
            errs.push(s);
            // Mean measured survival per norm layer over seeds.
            let pts: Vec<(f64, f64)> = runs[0]
                .layers
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    let vals: Vec<f64> = runs
                        .iter()
                        .filter_map(|r| r.layers.iter().find(|x| x.node == l.node)?.measured)
                        .collect();
                    (!vals.is_empty()).then(|| (i as f64, mean_std(&vals).0))
                })
                .collect();
            layer_series.push((v.name.clone(), pts));
        }
        let _ = writeln!(md, "\nMean (standard deviation) over seeds.\n");
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let metric = if classifier {
            "test accuracy"
        } else {
            "test eps-MSE"
        };
        let _ = save_bars(
            &out.join(format!("{}_metric.png", g.name)),
            &format!("{}: {metric} (mean, std over seeds)", g.name),
            &labels,
            &means,
            Some(&errs),
        );
        let series: Vec<(&str, &[(f64, f64)])> = layer_series
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_slice()))
            .collect();
        let _ = save_curves(
            &out.join(format!("{}_survival_per_layer.png", g.name)),
            &format!("{}: measured time-signal survival per norm layer", g.name),
            &series,
        );
    }
    let _ = std::fs::write(out.join("summary.md"), md);
}

#[cfg(test)]
mod tests {
    use tdspec_compiler::ir::{Op, Solver};

    #[test]
    fn a_solver_variant_is_made_on_the_ir() {
        let text = include_str!("../../../specs/small_odenet_mnist.tds");
        let mut m = tdspec_compiler::sema::check_source(text)
            .expect("checks")
            .remove(0);
        let params = m.param_count();
        let new: Solver = "dopri5:1e-3:1e-3".parse().expect("solver");
        assert_eq!(m.replace_solvers(new), 1);
        let mut solvers = Vec::new();
        m.graph.walk(&mut |_, _, n| {
            if let Op::Ode { solver, .. } = &n.op {
                solvers.push(*solver);
            }
        });
        assert_eq!(solvers, vec![new]);
        assert_eq!(m.param_count(), params);
        assert_eq!(crate::lower::cost(&m).nfe_per_solve, None, "adaptive now");
    }
}
