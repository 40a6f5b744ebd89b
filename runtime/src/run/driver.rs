//! The training driver: [`TrainOptions`] and a device in; a run directory trained to its target
//! step out. It reads `run.json` and the checkpoint when continuing a run, settles the target
//! step (flag, then run, then spec, then 100), evaluates and checkpoints every `eval_every`
//! steps and at the end, appends one metric record per step, and draws the curves when done.

use super::dir::{Metric, RunDir, RunInfo};
use super::error::RunError;
use super::observe::{RunObserver, RunResult, RunStart};
use crate::checkpoint;
use crate::data;
use crate::ops::Kernels;
use crate::spec;
use crate::train::{EvalReport, Trainer};
use std::path::PathBuf;
use std::time::Instant;
use tdspec_compiler::ir::Task;

/// Where a run begins.
#[derive(Clone, Debug)]
pub enum Start {
    /// A new run of the spec at `spec`, in `out` (default `runs/MODEL-seedS`).
    New {
        spec: PathBuf,
        out: Option<PathBuf>,
        /// `--data` (the embedded digits when absent).
        data: Option<String>,
        seed: u64,
        /// Use only the first N training samples.
        limit_train: Option<usize>,
        /// Start from these weights (any file `--checkpoint` reads, diffusers' included)
        /// instead of the seeded initialization.
        init: Option<PathBuf>,
    },
    /// Continue the run in this directory with its own spec, data and seed.
    Resume(PathBuf),
}

/// What to train and how.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub start: Start,
    /// Train until this many optimizer steps.
    pub steps: Option<usize>,
    /// Or for this many epochs.
    pub epochs: Option<usize>,
    /// Override the spec's batch size.
    pub batch: Option<usize>,
    /// Evaluate and checkpoint every K steps (default: every epoch for classifiers, five times
    /// per run for denoisers).
    pub eval_every: Option<usize>,
    /// Test samples per evaluation.
    pub eval_samples: usize,
    /// The command line, kept in `command.txt`.
    pub command: String,
}

/// Trains per `opts` on `dev`, telling `obs` what happens.
pub fn train<D: Kernels>(
    opts: &TrainOptions,
    dev: &D,
    obs: &mut dyn RunObserver,
) -> Result<RunResult, RunError> {
    let (spec_path, run, resuming) = match &opts.start {
        Start::Resume(dir) => {
            let run = RunDir::new(dir);
            if !run.spec().exists() || !run.checkpoint().exists() {
                let what = if !dir.is_dir() {
                    "is not a run directory"
                } else if !run.spec().exists() {
                    "holds no run (no spec.tds)"
                } else {
                    "has no checkpoint.safetensors yet: nothing to resume (start the run again \
                     with `tdspec train SPEC --out` this directory)"
                };
                return Err(RunError::failed(format!("{} {what}", dir.display())));
            }
            (run.spec(), run, true)
        }
        Start::New {
            spec, out, seed, ..
        } => {
            let (m, _) = spec::load_one(spec)?;
            let dir = out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("runs/{}-seed{seed}", m.name)));
            (spec.clone(), RunDir::new(dir), false)
        }
    };
    let (model, src) = spec::load_one(&spec_path)?;
    let prior = if resuming {
        run.read_info()?
    } else {
        RunInfo::default()
    };
    let (seed, data_arg, limit, init) = match &opts.start {
        Start::New {
            data,
            seed,
            limit_train,
            init,
            ..
        } => (*seed, data.clone(), *limit_train, init.clone()),
        Start::Resume(_) => (
            prior.seed.unwrap_or(0),
            prior.data.clone(),
            prior.limit_train,
            None,
        ),
    };
    let split = data::load_arg(data_arg.as_deref(), limit).map_err(RunError::failed)?;
    // A resumed run continues as it was: a different batch would silently change it.
    if let (true, Some(b), Some(was)) = (resuming, opts.batch, prior.batch) {
        if b != was {
            return Err(RunError::failed(format!(
                "--batch {b}: this run trains at batch {was}; a resumed run keeps its batch (start a new run to change it)"
            )));
        }
    }
    let batch = opts.batch.or(prior.batch);
    if let Some(b) = batch.filter(|&b| b < 2) {
        return Err(RunError::failed(format!(
            "--batch {b}: training needs at least 2 samples per batch (BatchNorm and the loss statistics span it)"
        )));
    }
    crate::lower::ensure_fits(&model, batch.unwrap_or(model.train.batch))
        .map_err(|e| RunError::failed(e.to_string()))?;
    let mut trainer = Trainer::new(&model, dev, seed, batch, 1).map_err(RunError::failed)?;
    trainer.check_data(&split).map_err(RunError::failed)?;
    let spe = trainer.steps_per_epoch(&split);
    let target = opts
        .steps
        .or(opts.epochs.map(|e| e * spe))
        .or(prior.target_steps)
        .or(model.train.steps)
        .or(model.train.epochs.map(|e| e * spe))
        .unwrap_or(100);
    trainer.total_steps = target;
    let _lock = run.lock()?;
    let ckpt = run.checkpoint();
    if resuming {
        checkpoint::restore(&mut trainer, &ckpt).map_err(RunError::failed)?;
        if let Some(said) = run.reconcile_metrics(trainer.step)? {
            obs.note(&format!("metrics: {said}"));
        }
        if target < trainer.step {
            return Err(RunError::failed(format!(
                "the run is at step {}; a target of {target} steps trains nothing (give more)",
                trainer.step
            )));
        }
        trainer.total_steps = target;
    } else {
        if run.holds_run() {
            return Err(RunError::failed(format!(
                "{} already holds a run; continue it with --resume {} or choose another --out",
                run.path.display(),
                run.path.display()
            )));
        }
        if let Some(init) = &init {
            // Names and shapes are checked before anything is written; EMA starts from them.
            checkpoint::load_params(&mut trainer.params, init).map_err(RunError::failed)?;
            if let Some(ema) = &mut trainer.ema {
                ema.shadow = trainer
                    .params
                    .list
                    .iter()
                    .map(|p| p.tensor.as_vec())
                    .collect();
            }
        }
        let info = RunInfo {
            batch: Some(trainer.batch),
            data: data_arg,
            limit_train: limit,
            model: Some(model.name.clone()),
            seed: Some(seed),
            source: Some(split.source.clone()),
            steps_per_epoch: Some(spe),
            target_steps: Some(target),
        };
        run.create(&src.text, &opts.command, &info)?;
    }
    let classify = matches!(model.task, Some(Task::Classify { .. }));
    let eval_every = opts
        .eval_every
        .unwrap_or(if classify { spe } else { (target / 5).max(1) });
    let mut metrics = run.metrics_writer()?;
    obs.started(&RunStart {
        model: model.name.clone(),
        source: split.source.clone(),
        train_samples: split.train.n,
        test_samples: split.test.n,
        batch: trainer.batch,
        step: trainer.step,
        target,
        seed,
        dir: run.path.clone(),
    });
    let start = Instant::now();
    let mut last_eval = EvalReport::default();
    while trainer.step < target {
        let log = match trainer.train_step(&split) {
            Ok(log) => log,
            Err(source) => {
                // Before the first checkpoint nothing can be resumed: clear the records so the
                // same command starts over in place.
                let have = ckpt.exists();
                if !have {
                    drop(metrics);
                    let _ = std::fs::remove_file(run.metrics());
                }
                return Err(RunError::Stopped {
                    step: trainer.step,
                    checkpoint: have.then(|| ckpt.clone()),
                    source,
                });
            }
        };
        let mut rec = Metric {
            batch_accuracy: log.accuracy,
            epoch: log.epoch,
            grad_norm: log.grad_norm,
            loss: log.loss,
            lr: log.lr,
            nfe: log.nfe,
            step: log.step,
            wall: start.elapsed().as_secs_f64(),
            ..Default::default()
        };
        let evaluated = log.step.is_multiple_of(eval_every) || log.step == target;
        if evaluated {
            let r = trainer
                .evaluate(&split, opts.eval_samples)
                .map_err(|e| RunError::failed(format!("evaluation failed: {e}")))?;
            rec.test_accuracy = r.accuracy;
            if r.eps_mse.is_some() {
                rec.eval_loss = r.eps_mse;
                rec.eval_loss_buckets = Some(r.eps_mse_buckets.clone());
            }
            last_eval = r;
            // The record first: a kill before the checkpoint lands leaves a record past it,
            // which resuming drops and writes again, instead of a step with no record.
            metrics.append(&rec);
            checkpoint::save(&trainer, &ckpt)
                .map_err(|e| RunError::failed(format!("cannot save the checkpoint: {e}")))?;
        } else {
            metrics.append(&rec);
        }
        obs.step(&log, evaluated.then_some(&last_eval));
    }
    for failed in run.write_curves(&model.name) {
        obs.note(&format!("warning: the curve was not drawn: {failed}"));
    }
    let result = RunResult {
        dir: run.path,
        steps: trainer.step,
        final_eval: last_eval,
        seconds: start.elapsed().as_secs_f64(),
    };
    obs.finished(&result);
    Ok(result)
}
