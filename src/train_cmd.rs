//! `tdspec train SPEC`: trains what the spec's task says and keeps a run directory: the spec
//! as trained, the command line, `run.json` (seed, data, batch, target steps), metrics as
//! JSONL, an atomically written checkpoint with optimizer and EMA state, and loss/accuracy
//! curves as PNG. `--resume RUNDIR` continues exactly where the run stopped. A NaN or infinite
//! loss stops the run with a message and leaves the last good checkpoint in place.

use crate::device::{on_device, DeviceArg};
use crate::files;
use crate::render;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tdspec_compiler::ir::{ModelIr, Task};
use tdspec_compiler::sema::check_source;
use tdspec_runtime::data::{self, Split};
use tdspec_runtime::ops::Kernels;
use tdspec_runtime::train::{EvalReport, StepLog, Trainer};
use tdspec_runtime::{plot, RuntimeError};

pub struct TrainArgs {
    pub spec: Option<PathBuf>,
    pub data: Option<String>,
    pub steps: Option<usize>,
    pub epochs: Option<usize>,
    pub seed: u64,
    pub out: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    pub batch: Option<usize>,
    pub limit_train: Option<usize>,
    pub eval_every: Option<usize>,
    pub eval_samples: usize,
    pub quiet: bool,
}

/// A finished (or stopped) training run.
pub struct RunResult {
    pub dir: PathBuf,
    pub final_eval: EvalReport,
    pub seconds: f64,
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

/// Parses a spec file into its single model (errors rendered).
pub fn load_model(path: &Path) -> Result<(ModelIr, String), u8> {
    let src = files::read(path).map_err(fail)?;
    match check_source(&src.text) {
        Ok(mut models) if models.len() == 1 => Ok((models.remove(0), src.text)),
        Ok(models) => {
            eprintln!(
                "error: {} defines {} models; train one spec per file",
                src.name,
                models.len()
            );
            Err(2)
        }
        Err(diags) => {
            for d in &diags {
                eprint!("{}", render::render(&src, d, render::use_color()));
            }
            Err(1)
        }
    }
}

pub fn load_data(arg: Option<&str>, limit: Option<usize>) -> Result<Split, RuntimeError> {
    let src = arg.map(data::parse_data_arg).transpose()?;
    let mut split = data::load(src.as_ref())?;
    if let Some(k) = limit {
        split.train = split.train.take(k);
        split.test = split.test.take(k.max(100));
    }
    Ok(split)
}

/// `tdspec train` on `device`: 0 when the run finished, else the exit code.
pub fn run_on(args: &TrainArgs, device: DeviceArg) -> u8 {
    match train_on(args, device) {
        Ok(_) => 0,
        Err(code) => code,
    }
}

/// Trains per `args` on the CPU; returns the run's outcome or an exit code after printing the error.
pub fn train(args: &TrainArgs) -> Result<RunResult, u8> {
    train_on(args, DeviceArg::Cpu)
}

/// Trains per `args` on `device` (`--device`).
pub fn train_on(args: &TrainArgs, device: DeviceArg) -> Result<RunResult, u8> {
    on_device!(device, |dev| train_with(args, &dev)).map_err(fail)?
}

fn train_with<D: Kernels>(args: &TrainArgs, dev: &D) -> Result<RunResult, u8> {
    let (spec_path, dir, resuming) = match (&args.resume, &args.spec) {
        (Some(dir), _) => (dir.join("spec.tds"), dir.clone(), true),
        (None, Some(spec)) => {
            let (m, _) = load_model(spec)?;
            let dir = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("runs/{}-seed{}", m.name, args.seed)));
            (spec.clone(), dir, false)
        }
        (None, None) => return Err(fail("give a spec to train, or --resume RUNDIR")),
    };
    let (model, spec_text) = load_model(&spec_path)?;
    let run_json_path = dir.join("run.json");
    let prior: serde_json::Value = if resuming {
        let text = std::fs::read_to_string(&run_json_path)
            .map_err(|e| fail(format!("cannot read {}: {e}", run_json_path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| fail(format!("{} is corrupt: {e}", run_json_path.display())))?
    } else {
        serde_json::Value::Null
    };
    let seed = prior["seed"].as_u64().unwrap_or(args.seed);
    let data_arg = if resuming {
        prior["data"].as_str().map(str::to_string)
    } else {
        args.data.clone()
    };
    let limit = if resuming {
        prior["limit_train"].as_u64().map(|v| v as usize)
    } else {
        args.limit_train
    };
    let split = load_data(data_arg.as_deref(), limit).map_err(fail)?;

    let batch = args.batch.or(prior["batch"].as_u64().map(|v| v as usize));
    let mut trainer = Trainer::new(&model, dev, seed, batch, 1).map_err(fail)?;
    trainer.check_data(&split).map_err(fail)?;
    let spe = trainer.steps_per_epoch(&split);
    let target = args
        .steps
        .or(args.epochs.map(|e| e * spe))
        .or(prior["target_steps"].as_u64().map(|v| v as usize))
        .or(model.train.steps)
        .or(model.train.epochs.map(|e| e * spe))
        .unwrap_or(100);
    trainer.total_steps = target;
    let ckpt = dir.join("checkpoint.safetensors");
    if resuming {
        trainer.resume(&ckpt).map_err(fail)?;
        trainer.total_steps = target;
    } else {
        if dir.join("checkpoint.safetensors").exists() || dir.join("metrics.jsonl").exists() {
            return Err(fail(format!(
                "{} already holds a run; continue it with --resume {} or choose another --out",
                dir.display(),
                dir.display()
            )));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        std::fs::write(dir.join("spec.tds"), &spec_text)
            .map_err(|e| fail(format!("cannot write the run's spec: {e}")))?;
        let cmd: Vec<String> = std::env::args().collect();
        std::fs::write(dir.join("command.txt"), cmd.join(" ") + "\n").map_err(fail)?;
        let run = json!({
            "model": model.name, "seed": seed, "data": data_arg, "source": split.source,
            "limit_train": limit, "batch": trainer.batch, "target_steps": target, "steps_per_epoch": spe,
        });
        std::fs::write(
            &run_json_path,
            serde_json::to_string_pretty(&run).unwrap_or_default(),
        )
        .map_err(fail)?;
    }
    let classify = matches!(model.task, Some(Task::Classify { .. }));
    let eval_every = args
        .eval_every
        .unwrap_or(if classify { spe } else { (target / 5).max(1) });
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("metrics.jsonl"))
        .map_err(|e| fail(format!("cannot open metrics: {e}")))?;
    if !args.quiet {
        eprintln!(
            "training {} on {}, using {} train / {} test samples, batch {}, steps {}..{target}, seed {seed} -> {}",
            model.name,
            split.source,
            split.train.n,
            split.test.n,
            trainer.batch,
            trainer.step,
            dir.display()
        );
    }
    let bar = progress(target as u64, trainer.step as u64, args.quiet);
    let start = Instant::now();
    let mut last_eval = EvalReport::default();
    let mut losses: Vec<(f64, f64)> = Vec::new();
    while trainer.step < target {
        let log: StepLog = match trainer.train_step(&split) {
            Ok(l) => l,
            Err(e) => {
                bar.abandon();
                eprintln!("error: {e}");
                eprintln!(
                    "training stopped at step {}; the last good checkpoint is {}",
                    trainer.step,
                    ckpt.display()
                );
                return Err(2);
            }
        };
        losses.push((log.step as f64, log.loss));
        let mut rec = json!({
            "step": log.step, "epoch": log.epoch, "loss": log.loss, "lr": log.lr, "nfe": log.nfe,
            "grad_norm": log.grad_norm, "wall": start.elapsed().as_secs_f64(),
        });
        if let Some(a) = log.accuracy {
            rec["batch_accuracy"] = json!(a);
        }
        let do_eval = log.step.is_multiple_of(eval_every) || log.step == target;
        if do_eval {
            match trainer.evaluate(&split, args.eval_samples) {
                Ok(r) => {
                    if let Some(a) = r.accuracy {
                        rec["test_accuracy"] = json!(a);
                    }
                    if let Some(e) = r.eps_mse {
                        rec["eval_loss"] = json!(e);
                        rec["eval_loss_buckets"] = json!(r.eps_mse_buckets);
                    }
                    last_eval = r;
                }
                Err(e) => {
                    bar.abandon();
                    return Err(fail(format!("evaluation failed: {e}")));
                }
            }
            trainer
                .save(&ckpt)
                .map_err(|e| fail(format!("cannot save the checkpoint: {e}")))?;
        }
        let _ = writeln!(metrics, "{rec}");
        bar.set_position(log.step as u64);
        bar.set_message(format!(
            "loss {:.4}{}",
            log.loss,
            if log.nfe > 0 {
                format!(" nfe {}", log.nfe)
            } else {
                String::new()
            }
        ));
        if bar.is_hidden() && !args.quiet && (log.step.is_multiple_of(50) || do_eval) {
            eprintln!(
                "step {}/{target} loss {:.5} lr {:.2e}{}",
                log.step,
                log.loss,
                log.lr,
                eval_line(&rec)
            );
        }
    }
    bar.finish_and_clear();
    write_curves(&dir, &model.name);
    let seconds = start.elapsed().as_secs_f64();
    if !args.quiet {
        eprintln!(
            "done: {} steps in {seconds:.1} s{}",
            trainer.step,
            summary_line(&last_eval)
        );
    }
    Ok(RunResult {
        dir,
        final_eval: last_eval,
        seconds,
    })
}

fn eval_line(rec: &serde_json::Value) -> String {
    let mut s = String::new();
    if let Some(a) = rec["test_accuracy"].as_f64() {
        s += &format!(" test accuracy {a:.4}");
    }
    if let Some(e) = rec["eval_loss"].as_f64() {
        s += &format!(" test eps-MSE {e:.5}");
    }
    s
}

fn summary_line(r: &EvalReport) -> String {
    match (r.accuracy, r.eps_mse) {
        (Some(a), _) => format!(", test accuracy {a:.4} on {} digits", r.samples),
        (_, Some(e)) => format!(", test eps-MSE {e:.5} on {} digits", r.samples),
        _ => String::new(),
    }
}

fn progress(total: u64, pos: u64, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_position(pos);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed} < {eta}]")
    {
        bar.set_style(style);
    }
    bar
}

/// Loss and accuracy/eval curves from the run's metrics.
pub fn write_curves(dir: &Path, name: &str) {
    let Ok(text) = std::fs::read_to_string(dir.join("metrics.jsonl")) else {
        return;
    };
    let mut loss = Vec::new();
    let mut acc = Vec::new();
    let mut ev = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let step = v["step"].as_f64().unwrap_or(0.0);
        if let Some(l) = v["loss"].as_f64() {
            loss.push((step, l));
        }
        if let Some(a) = v["test_accuracy"].as_f64() {
            acc.push((step, a));
        }
        if let Some(e) = v["eval_loss"].as_f64() {
            ev.push((step, e));
        }
    }
    let _ = plot::save_curves(
        &dir.join("loss.png"),
        &format!("{name} training loss"),
        &[("loss", &loss)],
    );
    if !acc.is_empty() {
        let _ = plot::save_curves(
            &dir.join("accuracy.png"),
            &format!("{name} test accuracy"),
            &[("accuracy", &acc)],
        );
    }
    if !ev.is_empty() {
        let _ = plot::save_curves(
            &dir.join("eval.png"),
            &format!("{name} test eps-MSE"),
            &[("eps-MSE", &ev)],
        );
    }
}
