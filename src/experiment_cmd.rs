//! `tdspec experiment PLAN.json [--out DIR]`: the paper's experiment in miniature. A plan lists
//! groups of spec variants, the seeds and the training budget; for every variant and seed the
//! runner trains from the spec, evaluates (test accuracy, with the adaptive solver too, and
//! its NFE; or test eps-MSE per timestep quarter and a Fréchet distance), probes the trained
//! network, and records the lint's prediction. Out: `results.json` (every run),
//! `summary.md` (mean and standard deviation over seeds) and PNG plots of the metric per
//! variant and of the measured time sensitivity per normalization layer.

use crate::eval_cmd::{frechet, FdOptions};
use crate::run_dir;
use crate::train_cmd::{self, TrainArgs};
use serde_json::{json, Value as Json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tdspec_compiler::ir::Task;
use tdspec_compiler::lint::{lint_source, LintOptions};
use tdspec_runtime::params::normal;
use tdspec_runtime::plot::{save_bars, save_curves};
use tdspec_runtime::probe::probe;
use tdspec_runtime::train::{evaluate, NoiseSchedule};

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    (m, s)
}

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

pub fn run(plan_path: &Path, out: Option<PathBuf>, only: Option<&str>) -> u8 {
    let text = match std::fs::read_to_string(plan_path) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", plan_path.display())),
    };
    let plan: Json = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(e) => return fail(format!("{} is not valid JSON: {e}", plan_path.display())),
    };
    let out = out.unwrap_or_else(|| PathBuf::from("runs/experiment"));
    if let Err(e) = std::fs::create_dir_all(&out) {
        return fail(format!("cannot create {}: {e}", out.display()));
    }
    let seeds: Vec<u64> = plan["seeds"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_u64).collect())
        .unwrap_or_else(|| vec![0]);
    let Some(groups) = plan["groups"].as_array() else {
        return fail("the plan has no `groups`");
    };
    let results_path = out.join("results.json");
    // Resume: keep the runs already recorded.
    let mut results: Vec<Json> = std::fs::read_to_string(&results_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let started = Instant::now();
    for g in groups {
        let gname = g["name"].as_str().unwrap_or("group");
        if only.is_some_and(|o| o != gname) {
            continue;
        }
        let Some(variants) = g["variants"].as_array() else {
            return fail(format!("group {gname} has no variants"));
        };
        for v in variants {
            let vname = v["name"].as_str().unwrap_or("variant");
            let Some(spec) = v["spec"].as_str() else {
                return fail(format!("variant {vname} has no spec"));
            };
            for &seed in &seeds {
                if results
                    .iter()
                    .any(|r| r["group"] == gname && r["variant"] == vname && r["seed"] == seed)
                {
                    continue;
                }
                eprintln!(
                    "[{:>5.0}s] {gname} / {vname} / seed {seed}",
                    started.elapsed().as_secs_f64()
                );
                match one(
                    g,
                    spec,
                    seed,
                    &out.join(gname).join(format!("{}-seed{seed}", slug(vname))),
                ) {
                    Ok(mut r) => {
                        r["group"] = json!(gname);
                        r["variant"] = json!(vname);
                        r["seed"] = json!(seed);
                        r["spec"] = json!(spec);
                        eprintln!("         {}", short(&r));
                        results.push(r);
                        let _ = std::fs::write(
                            &results_path,
                            serde_json::to_string_pretty(&results).unwrap_or_default(),
                        );
                    }
                    Err(code) => return code,
                }
            }
        }
    }
    summarize(&plan, &results, &out);
    eprintln!(
        "done in {:.0} s; see {}",
        started.elapsed().as_secs_f64(),
        out.join("summary.md").display()
    );
    0
}

fn short(r: &Json) -> String {
    let mut s = String::new();
    for k in [
        "test_accuracy",
        "adaptive_accuracy",
        "adaptive_nfe",
        "eps_mse",
        "frechet",
        "measured_survival",
        "seconds",
    ] {
        if let Some(v) = r[k].as_f64() {
            let _ = write!(s, "{k} {v:.4}  ");
        }
    }
    s
}

/// Trains, evaluates and probes one variant at one seed.
fn one(g: &Json, spec: &str, seed: u64, dir: &Path) -> Result<Json, u8> {
    let spec_path = PathBuf::from(spec);
    let text = std::fs::read_to_string(&spec_path)
        .map_err(|e| fail(format!("cannot read {spec}: {e}")))?;
    let reports = lint_source(&text, &LintOptions::default())
        .map_err(|_| fail(format!("{spec} does not check")))?;
    let rep = reports.first().ok_or_else(|| fail("no model"))?;
    let mut codes: Vec<String> = rep.diagnostics.iter().map(|d| d.code.clone()).collect();
    codes.sort();
    codes.dedup();
    let predicted: Vec<(String, Option<f64>)> = rep
        .analysis
        .norms
        .iter()
        .map(|n| (n.node.clone(), n.survival))
        .collect();
    let worst = predicted.iter().filter_map(|p| p.1).fold(1.0f64, f64::min);
    let _ = std::fs::remove_dir_all(dir);
    let t0 = Instant::now();
    let res = train_cmd::train(&TrainArgs {
        spec: Some(spec_path),
        data: g["data"].as_str().map(str::to_string),
        steps: g["steps"].as_u64().map(|v| v as usize),
        epochs: g["epochs"].as_u64().map(|v| v as usize),
        seed,
        out: Some(dir.to_path_buf()),
        resume: None,
        batch: g["batch"].as_u64().map(|v| v as usize),
        limit_train: None,
        eval_every: Some(usize::MAX),
        eval_samples: g["eval_samples"].as_u64().unwrap_or(1000) as usize,
        quiet: true,
    })?;
    let seconds = t0.elapsed().as_secs_f64();
    let run = run_dir::open(&res.dir)?;
    let split = run.data()?;
    let m = &run.model;
    let mut r = json!({"lint": codes, "predicted_worst": worst, "train_seconds": seconds});
    let e = &res.final_eval;
    // Probe the trained network on test digits (noised at a middle level for denoisers).
    let b = 16usize;
    let idx: Vec<usize> = (0..b).collect();
    let (mut x, _) = tdspec_runtime::data::batch(&split.test, &idx);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed ^ 0xBEEF);
    let denoise = matches!(m.task, Some(Task::Denoise { .. }));
    for v in x.iter_mut() {
        *v = if denoise {
            0.7 * (*v * 2.0 - 1.0) + 0.7 * normal(&mut rng) as f32
        } else {
            *v * 2.0 - 1.0
        };
    }
    let probes = probe(m, &run.params, x, b).map_err(|e| fail(format!("probe: {e}")))?;
    let per_layer: Vec<Json> = probes
        .iter()
        .map(|p| {
            let pred = predicted
                .iter()
                .find(|(n, _)| *n == p.node)
                .and_then(|(_, s)| *s);
            json!({"node": p.node, "measured": p.fraction, "predicted": pred})
        })
        .collect();
    let measured: Vec<f64> = probes.iter().filter_map(|p| p.fraction).collect();
    r["measured_survival"] = json!(mean_std(&measured).0);
    r["layers"] = json!(per_layer);
    match &m.task {
        Some(Task::Classify { .. }) => {
            r["test_accuracy"] = json!(e.accuracy);
            r["nfe"] = json!(e.nfe);
            if let Some(solver) = g["adaptive_eval"].as_str() {
                // The same weights under the adaptive solver: accuracy and function evaluations.
                let swapped = text.replace("rk4(steps = 4)", solver);
                let models = tdspec_compiler::sema::check_source(&swapped)
                    .map_err(|_| fail("adaptive variant does not check"))?;
                let t1 = Instant::now();
                let rep = evaluate(
                    &models[0],
                    &run.params,
                    None,
                    &split,
                    g["eval_samples"].as_u64().unwrap_or(1000) as usize,
                )
                .map_err(|e| fail(format!("adaptive eval: {e}")))?;
                r["adaptive_accuracy"] = json!(rep.accuracy);
                r["adaptive_nfe"] = json!(rep.nfe);
                r["adaptive_eval_seconds"] = json!(t1.elapsed().as_secs_f64());
            }
        }
        Some(Task::Denoise { schedule, .. }) => {
            r["eps_mse"] = json!(e.eps_mse);
            r["eps_mse_quarters"] = json!(e.eps_mse_buckets);
            let fd_samples = g["fd_samples"].as_u64().unwrap_or(0) as usize;
            if fd_samples >= 2 {
                let sched = NoiseSchedule::new(schedule);
                let fd = FdOptions {
                    samples: fd_samples,
                    steps: g["fd_steps"].as_u64().unwrap_or(25) as usize,
                };
                let (gen, floor, acc) = frechet(&run, &split, &sched, &fd)
                    .map_err(|e| fail(format!("frechet: {e}")))?;
                r["frechet"] = json!(gen);
                r["frechet_floor"] = json!(floor);
                r["feature_net_accuracy"] = json!(acc);
            }
        }
        None => {}
    }
    r["seconds"] = json!(t0.elapsed().as_secs_f64());
    Ok(r)
}

fn summarize(plan: &Json, results: &[Json], out: &Path) {
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", plan["name"].as_str().unwrap_or("experiment"));
    let empty = Vec::new();
    for g in plan["groups"].as_array().unwrap_or(&empty) {
        let gname = g["name"].as_str().unwrap_or("group");
        let _ = writeln!(md, "## {gname}\n\n{}\n", g["about"].as_str().unwrap_or(""));
        let metrics: &[(&str, &str)] = if g["adaptive_eval"].is_string() || g["epochs"].is_u64() {
            &[
                ("test_accuracy", "test accuracy (RK4)"),
                ("adaptive_accuracy", "test accuracy (dopri5)"),
                ("adaptive_nfe", "NFE (dopri5)"),
                ("measured_survival", "measured survival"),
                ("train_seconds", "train s"),
            ]
        } else {
            &[
                ("eps_mse", "test eps-MSE"),
                ("q4", "eps-MSE t >= 3T/4"),
                ("q1", "eps-MSE t < T/4"),
                ("frechet", "Fréchet (own features)"),
                ("measured_survival", "measured survival"),
                ("train_seconds", "train s"),
            ]
        };
        let _ = write!(md, "| variant | lint | predicted (worst norm) |");
        for (_, h) in metrics {
            let _ = write!(md, " {h} |");
        }
        let _ = writeln!(md, " seeds |");
        let _ = writeln!(md, "|{}", " --- |".repeat(metrics.len() + 4));
        let mut bar_labels = Vec::new();
        let mut bar_vals = Vec::new();
        let mut bar_errs = Vec::new();
        let mut layer_series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for v in g["variants"].as_array().unwrap_or(&empty) {
            let vname = v["name"].as_str().unwrap_or("variant");
            let runs: Vec<&Json> = results
                .iter()
                .filter(|r| r["group"] == gname && r["variant"] == vname)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let lint = runs[0]["lint"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Json::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = write!(
                md,
                "| {vname} | {} | {:.3} |",
                if lint.is_empty() { "clean" } else { &lint },
                runs[0]["predicted_worst"].as_f64().unwrap_or(f64::NAN)
            );
            for (k, _) in metrics {
                let vals: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| match *k {
                        "q1" => r["eps_mse_quarters"][0].as_f64(),
                        "q4" => r["eps_mse_quarters"][3].as_f64(),
                        _ => r[*k].as_f64(),
                    })
                    .collect();
                let (m, s) = mean_std(&vals);
                let prec = if m.abs() < 0.1 { 5 } else { 3 };
                let _ = write!(md, " {m:.prec$} ({s:.prec$}) |");
            }
            let _ = writeln!(md, " {} |", runs.len());
            let key = if metrics[0].0 == "test_accuracy" {
                "test_accuracy"
            } else {
                "eps_mse"
            };
            let (m, s) = mean_std(
                &runs
                    .iter()
                    .filter_map(|r| r[key].as_f64())
                    .collect::<Vec<_>>(),
            );
            bar_labels.push(vname.to_string());
            bar_vals.push(m);
            bar_errs.push(s);
            // Mean measured survival per norm layer over seeds.
            if let Some(layers) = runs[0]["layers"].as_array() {
                let pts: Vec<(f64, f64)> = layers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| {
                        let node = l["node"].as_str()?;
                        let vals: Vec<f64> = runs
                            .iter()
                            .filter_map(|r| {
                                r["layers"].as_array()?.iter().find(|x| x["node"] == node)?
                                    ["measured"]
                                    .as_f64()
                            })
                            .collect();
                        (!vals.is_empty()).then(|| (i as f64, mean_std(&vals).0))
                    })
                    .collect();
                layer_series.push((vname.to_string(), pts));
            }
        }
        let _ = writeln!(md, "\nMean (standard deviation) over seeds.\n");
        let labels: Vec<&str> = bar_labels.iter().map(String::as_str).collect();
        let metric_name = if metrics[0].0 == "test_accuracy" {
            "test accuracy"
        } else {
            "test eps-MSE"
        };
        let _ = save_bars(
            &out.join(format!("{gname}_metric.png")),
            &format!("{gname}: {metric_name} (mean, std over seeds)"),
            &labels,
            &bar_vals,
            Some(&bar_errs),
        );
        let series: Vec<(&str, &[(f64, f64)])> = layer_series
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_slice()))
            .collect();
        let _ = save_curves(
            &out.join(format!("{gname}_survival_per_layer.png")),
            &format!("{gname}: measured time-signal survival per norm layer"),
            &series,
        );
    }
    let _ = std::fs::write(out.join("summary.md"), md);
}
