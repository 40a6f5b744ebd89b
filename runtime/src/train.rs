//! Training from a spec: a checked [`ModelIr`], a data split and settings in; trained
//! parameters, per-step logs, evaluations and resumable checkpoints out. The spec's task picks
//! the loop: `classify` (cross-entropy; neural-ODE classifiers backpropagate through the
//! solver) or `denoise` (DDPM epsilon prediction with per-sample integer timesteps).
//!
//! Checkpoints of a [`Trainer`] are [`crate::checkpoint`]'s business.
//!
//! Determinism: every random choice is derived from `(seed, step)` — the data order from
//! `(seed, epoch)`, timesteps, noise and dropout from `(seed, step)` — so the "RNG state" a
//! checkpoint needs is the step, and N steps straight give the same weights as N/2, resume,
//! N/2.

use crate::data::Split;
use crate::exec::{Exec, Value};
use crate::ops::Kernels;
use crate::optim::{clip_grad_norm, lr_at, Ema, Optim};
use crate::params::{normal, Params};
use crate::RuntimeError;
use dfdx::losses::cross_entropy_with_logits_loss;
use dfdx::tensor::{NoneTape, OwnedTape, PutTape, Tensor};
use dfdx::tensor_ops::Backward;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tdspec_compiler::ir::{ModelIr, Schedule as IrSchedule, Task};

/// The DDPM noise schedule: betas and cumulative alpha products.
#[derive(Clone, Debug)]
pub struct NoiseSchedule {
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
}

impl NoiseSchedule {
    pub fn new(s: &IrSchedule) -> Self {
        let betas: Vec<f64> = match *s {
            IrSchedule::Linear {
                beta_start,
                beta_end,
                steps,
            } => (0..steps)
                .map(|i| {
                    beta_start + (beta_end - beta_start) * i as f64 / (steps.max(2) - 1) as f64
                })
                .collect(),
            IrSchedule::Cosine { steps } => {
                // Nichol & Dhariwal: alpha_bar(t) = cos²((t/T + s) / (1 + s) · π/2), s = 0.008.
                let f = |t: f64| {
                    ((t / steps as f64 + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..steps)
                    .map(|i| (1.0 - f(i as f64 + 1.0) / f(i as f64)).min(0.999))
                    .collect()
            }
        };
        let mut ac = Vec::with_capacity(betas.len());
        let mut prod = 1.0;
        for b in &betas {
            prod *= 1.0 - b;
            ac.push(prod);
        }
        NoiseSchedule {
            betas,
            alphas_cumprod: ac,
        }
    }
    pub fn steps(&self) -> usize {
        self.betas.len()
    }
}

/// What one step did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepLog {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    /// ODE function evaluations in the forward pass (0 without ODE blocks).
    pub nfe: usize,
    /// Batch accuracy (classifiers).
    pub accuracy: Option<f64>,
    pub grad_norm: f64,
}

/// Evaluation on the test split.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EvalReport {
    /// Classifiers: test accuracy.
    pub accuracy: Option<f64>,
    /// Diffusion: test epsilon-MSE overall and per quarter of the timesteps (low noise first).
    pub eps_mse: Option<f64>,
    pub eps_mse_buckets: Vec<f64>,
    pub samples: usize,
    /// Mean ODE function evaluations per forward pass.
    pub nfe: Option<f64>,
}

impl std::fmt::Display for EvalReport {
    /// The figures of `tdspec eval`, one per line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(a) = self.accuracy {
            writeln!(f, "  test accuracy: {a:.4}")?;
            if let Some(n) = self.nfe {
                writeln!(f, "  ODE function evaluations per forward: {n:.1}")?;
            }
        }
        if let Some(e) = self.eps_mse {
            writeln!(f, "  test eps-MSE: {e:.5}")?;
            let names = ["q1 (low noise)", "q2", "q3", "q4 (high noise)"];
            for (n, v) in names.iter().zip(&self.eps_mse_buckets) {
                writeln!(f, "    {n:>15}: {v:.5}")?;
            }
        }
        Ok(())
    }
}

/// A model in training: parameters, optimizer, EMA and the step counter.
pub struct Trainer<'a, D: Kernels> {
    pub model: &'a ModelIr,
    pub params: Params<D>,
    pub optim: Optim,
    pub ema: Option<Ema>,
    pub step: usize,
    pub seed: u64,
    pub batch: usize,
    /// Total steps the schedule is planned for (cosine decay).
    pub total_steps: usize,
    schedule: Option<NoiseSchedule>,
}

/// Mixes a seed with a counter (splitmix64), for per-step and per-epoch random streams.
pub fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed
        ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Images scaled from [0, 1] to [-1, 1].
fn to_signed(x: &mut [f32]) {
    for v in x {
        *v = *v * 2.0 - 1.0;
    }
}

impl<'a, D: Kernels> Trainer<'a, D> {
    pub fn new(
        model: &'a ModelIr,
        dev: &D,
        seed: u64,
        batch: Option<usize>,
        total_steps: usize,
    ) -> Result<Self, RuntimeError> {
        let params = Params::init(model, dev, seed);
        let optim = Optim::new(model.train.optimizer, &params);
        let ema = model.train.ema.map(|d| Ema::new(d, &params));
        let schedule = match &model.task {
            Some(Task::Denoise { schedule, .. }) => Some(NoiseSchedule::new(schedule)),
            Some(Task::Classify { .. }) => None,
            None => {
                return Err(RuntimeError::Unsupported(format!(
                    "model `{}` declares no task: add `task classify(classes = N)` or `task denoise(...)`",
                    model.name
                )))
            }
        };
        Ok(Trainer {
            model,
            params,
            optim,
            ema,
            step: 0,
            seed,
            batch: batch.unwrap_or(model.train.batch).max(2),
            total_steps,
            schedule,
        })
    }

    pub fn steps_per_epoch(&self, data: &Split) -> usize {
        (data.train.n / self.batch).max(1)
    }

    /// Checks that the data fit the model's input and task.
    pub fn check_data(&self, data: &Split) -> Result<(), RuntimeError> {
        let m = &self.model.input;
        let d = &data.train;
        if (d.channels, d.height, d.width) != (m.channels, m.height, m.width) {
            return Err(RuntimeError::Data(format!(
                "{} has {}x{}x{} images, but model `{}` takes image[{}, {}, {}]",
                data.source,
                d.channels,
                d.height,
                d.width,
                self.model.name,
                m.channels,
                m.height,
                m.width
            )));
        }
        if let Some(Task::Classify { classes }) = &self.model.task {
            if d.classes > *classes {
                return Err(RuntimeError::Data(format!(
                    "{} has {} classes, but the model classifies into {classes}",
                    data.source, d.classes
                )));
            }
        }
        if let Some(lb) = &self.model.label {
            if d.classes > lb.classes {
                return Err(RuntimeError::Data(format!(
                    "{} has {} classes, but the label input `{}` takes {}",
                    data.source, d.classes, lb.name, lb.classes
                )));
            }
        }
        if d.n < self.batch {
            return Err(RuntimeError::Data(format!(
                "{} has {} training samples, fewer than the batch of {}",
                data.source, d.n, self.batch
            )));
        }
        Ok(())
    }

    fn batch_indices(&self, data: &Split, step: usize) -> Vec<usize> {
        let spe = self.steps_per_epoch(data);
        let epoch = step / spe;
        let mut perm: Vec<usize> = (0..data.train.n).collect();
        perm.shuffle(&mut StdRng::seed_from_u64(mix(
            self.seed,
            0x1000_0000 + epoch as u64,
        )));
        let k = step % spe;
        perm[k * self.batch..(k + 1) * self.batch].to_vec()
    }

    /// One optimization step on the next batch.
    pub fn train_step(&mut self, data: &Split) -> Result<StepLog, RuntimeError> {
        let step = self.step;
        let spe = self.steps_per_epoch(data);
        let epoch = step / spe;
        let idx = self.batch_indices(data, step);
        let (mut x, labels) = crate::data::batch(&data.train, &idx);
        let b = idx.len();
        let m = self.model;
        let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
        let dev = self.params.dev.clone();
        let mut rng = StdRng::seed_from_u64(mix(self.seed, step as u64));
        if data.source.starts_with("CIFAR") {
            // Random horizontal flips, the standard CIFAR augmentation.
            crate::data::hflip_batch(&mut x, b, c, h, w, &mut rng, 0.5);
        }
        to_signed(&mut x);
        let lr = lr_at(
            self.optim.base_lr(),
            m.train.warmup,
            &m.train.schedule,
            step,
            epoch,
            self.total_steps,
        );

        let mut ex = Exec::new(&self.params, true);
        // A class-conditional denoiser sees each image's own label.
        if m.label.is_some() {
            ex.labels = labels.iter().map(|&l| l as usize).collect();
        }
        let mut drop_rng = StdRng::seed_from_u64(mix(self.seed ^ 0xD00D, step as u64));
        ex.rng = Some(&mut drop_rng);
        let (loss, accuracy) = match (&m.task, &self.schedule) {
            (Some(Task::Classify { classes }), _) => {
                let xt: Tensor<(usize, usize, usize, usize), f32, D> =
                    dev.tensor_from_vec(x, (b, c, h, w));
                let (vals, tape) = ex.run(
                    &m.graph,
                    &[m.output],
                    Value::Image(xt),
                    // A classifier's model-level t: the lowest it takes (0 unless declared).
                    &vec![m.time.range().0 as f32; b],
                    OwnedTape::<f32, D>::default(),
                )?;
                let logits = vals[m.output]
                    .as_ref()
                    .ok_or_else(|| RuntimeError::Internal("no output".into()))?
                    .vector()?
                    .clone();
                let lv = logits.as_vec();
                let correct = (0..b)
                    .filter(|&i| {
                        let row = &lv[i * classes..(i + 1) * classes];
                        let arg = row
                            .iter()
                            .enumerate()
                            .max_by(|a, b| a.1.total_cmp(b.1))
                            .map(|(k, _)| k)
                            .unwrap_or(0);
                        arg == labels[i] as usize
                    })
                    .count();
                let mut onehot = vec![0.0f32; b * classes];
                for (i, &l) in labels.iter().enumerate() {
                    onehot[i * classes + (l as usize).min(classes - 1)] = 1.0;
                }
                let target = dev.tensor_from_vec(onehot, (b, *classes));
                let loss = cross_entropy_with_logits_loss(logits.put_tape(tape), target);
                (loss, Some(correct as f64 / b as f64))
            }
            (Some(Task::Denoise { .. }), Some(sched)) => {
                let tmax = sched.steps();
                let ts: Vec<usize> = (0..b).map(|_| rng.gen_range(0..tmax)).collect();
                let eps: Vec<f32> = (0..b * c * h * w)
                    .map(|_| normal(&mut rng) as f32)
                    .collect();
                let per = c * h * w;
                let mut xt = vec![0.0f32; b * per];
                for i in 0..b {
                    let ab = sched.alphas_cumprod[ts[i]];
                    let (sa, sb) = (ab.sqrt() as f32, (1.0 - ab).sqrt() as f32);
                    for j in 0..per {
                        xt[i * per + j] = sa * x[i * per + j] + sb * eps[i * per + j];
                    }
                }
                let xt: Tensor<(usize, usize, usize, usize), f32, D> =
                    dev.tensor_from_vec(xt, (b, c, h, w));
                let tv: Vec<f32> = ts.iter().map(|&t| t as f32).collect();
                let (vals, tape) = ex.run(
                    &m.graph,
                    &[m.output],
                    Value::Image(xt),
                    &tv,
                    OwnedTape::<f32, D>::default(),
                )?;
                let pred = vals[m.output]
                    .as_ref()
                    .ok_or_else(|| RuntimeError::Internal("no output".into()))?
                    .image()?
                    .clone();
                let target = dev.tensor_from_vec(eps, (b, c, h, w));
                (
                    crate::ops::mse_loss(pred.put_tape(tape), target)
                        .map_err(|e| RuntimeError::Op(e.to_string()))?,
                    None,
                )
            }
            _ => return Err(RuntimeError::Internal("no task".into())),
        };
        let nfe = ex.nfe;
        let bn = std::mem::take(&mut ex.bn_updates);
        drop(ex);
        let loss_v = loss.as_vec().first().copied().unwrap_or(f32::NAN) as f64;
        if !loss_v.is_finite() {
            return Err(RuntimeError::NonFinite(format!("the loss at step {step}")));
        }
        let mut grads = loss.backward();
        let mut gv = Vec::with_capacity(self.params.list.len());
        for p in &self.params.list {
            grads
                .get_or_alloc_mut(&p.tensor)
                .map_err(|e| RuntimeError::Op(format!("{e:?}")))?;
            gv.push(grads.get(&p.tensor).as_vec());
        }
        drop(grads);
        if gv.iter().flatten().any(|g| !g.is_finite()) {
            return Err(RuntimeError::NonFinite(format!(
                "a gradient at step {step}"
            )));
        }
        let grad_norm = match m.train.grad_clip {
            Some(c) => clip_grad_norm(&mut gv, c),
            None => gv
                .iter()
                .flatten()
                .map(|g| (*g as f64).powi(2))
                .sum::<f64>()
                .sqrt(),
        };
        self.optim.step(&mut self.params, &gv, lr);
        for (name, mean, var) in bn {
            self.params.running.insert(name, (mean, var));
        }
        if let Some(e) = &mut self.ema {
            e.update(&self.params);
        }
        self.step += 1;
        Ok(StepLog {
            step: self.step,
            epoch,
            loss: loss_v,
            lr,
            nfe,
            accuracy,
            grad_norm,
        })
    }

    /// The parameters to evaluate with: the EMA weights when the spec keeps an EMA.
    pub fn eval_params(&self) -> Params<D> {
        match &self.ema {
            Some(e) => e.apply(&self.params),
            None => self.params.clone(),
        }
    }

    /// Evaluates on up to `limit` test samples.
    pub fn evaluate(&self, data: &Split, limit: usize) -> Result<EvalReport, RuntimeError> {
        let params = self.eval_params();
        evaluate(self.model, &params, self.schedule.as_ref(), data, limit)
    }
}

/// Forward pass in eval mode on host data; returns the output values.
pub fn forward<D: Kernels>(
    m: &ModelIr,
    params: &Params<D>,
    x: Vec<f32>,
    b: usize,
    t: &[f32],
) -> Result<(Vec<f32>, usize), RuntimeError> {
    forward_labeled(m, params, x, b, t, &[])
}

/// [`forward`] with each sample's class label (empty: sample i takes label i mod N).
pub fn forward_labeled<D: Kernels>(
    m: &ModelIr,
    params: &Params<D>,
    x: Vec<f32>,
    b: usize,
    t: &[f32],
    labels: &[usize],
) -> Result<(Vec<f32>, usize), RuntimeError> {
    let dev = params.dev.clone();
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    let xt: Tensor<(usize, usize, usize, usize), f32, D> = dev.tensor_from_vec(x, (b, c, h, w));
    let mut ex = Exec::new(params, false);
    ex.labels = labels.to_vec();
    let (vals, _) = ex.run(&m.graph, &[m.output], Value::Image(xt), t, NoneTape)?;
    let out = vals[m.output]
        .as_ref()
        .ok_or_else(|| RuntimeError::Internal("no output".into()))?
        .to_vec();
    Ok((out, ex.nfe))
}

/// Test accuracy (classifiers) or test epsilon-MSE per timestep quarter (denoisers), on up to
/// `limit` test samples, with fixed noise so runs compare.
pub fn evaluate<D: Kernels>(
    m: &ModelIr,
    params: &Params<D>,
    schedule: Option<&NoiseSchedule>,
    data: &Split,
    limit: usize,
) -> Result<EvalReport, RuntimeError> {
    let n = data.test.n.min(limit);
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    let per = c * h * w;
    let bs = 100usize;
    let mut rep = EvalReport {
        samples: n,
        ..Default::default()
    };
    match (&m.task, schedule) {
        (Some(Task::Classify { classes }), _) => {
            let mut correct = 0usize;
            let mut nfe = 0usize;
            let mut batches = 0usize;
            for start in (0..n).step_by(bs) {
                let idx: Vec<usize> = (start..(start + bs).min(n)).collect();
                let (mut x, labels) = crate::data::batch(&data.test, &idx);
                to_signed(&mut x);
                let t0 = m.time.range().0 as f32;
                let (out, e) = forward(m, params, x, idx.len(), &vec![t0; idx.len()])?;
                nfe += e;
                batches += 1;
                for (i, &l) in labels.iter().enumerate() {
                    let row = &out[i * classes..(i + 1) * classes];
                    let arg = row
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map(|(k, _)| k)
                        .unwrap_or(0);
                    correct += usize::from(arg == l as usize);
                }
            }
            rep.accuracy = Some(correct as f64 / n.max(1) as f64);
            rep.nfe = Some(nfe as f64 / batches.max(1) as f64);
        }
        (Some(Task::Denoise { .. }), Some(sched)) => {
            let tmax = sched.steps();
            let mut rng = StdRng::seed_from_u64(0x5EED_E7A1);
            let mut sums = [0.0f64; 4];
            let mut counts = [0usize; 4];
            for start in (0..n).step_by(bs) {
                let idx: Vec<usize> = (start..(start + bs).min(n)).collect();
                let b = idx.len();
                let (mut x, ys) = crate::data::batch(&data.test, &idx);
                to_signed(&mut x);
                let ys: Vec<usize> = ys.iter().map(|&l| l as usize).collect();
                // Stratified timesteps: sample i sits in quarter i mod 4.
                let ts: Vec<usize> = idx
                    .iter()
                    .map(|&i| {
                        let q = i % 4;
                        (q * tmax / 4 + rng.gen_range(0..(tmax / 4).max(1))).min(tmax - 1)
                    })
                    .collect();
                let eps: Vec<f32> = (0..b * per).map(|_| normal(&mut rng) as f32).collect();
                let mut xt = vec![0.0f32; b * per];
                for i in 0..b {
                    let ab = sched.alphas_cumprod[ts[i]];
                    for j in 0..per {
                        xt[i * per + j] = ab.sqrt() as f32 * x[i * per + j]
                            + (1.0 - ab).sqrt() as f32 * eps[i * per + j];
                    }
                }
                let tv: Vec<f32> = ts.iter().map(|&t| t as f32).collect();
                let (out, _) = forward_labeled(m, params, xt, b, &tv, &ys)?;
                for i in 0..b {
                    let mse: f64 = (0..per)
                        .map(|j| ((out[i * per + j] - eps[i * per + j]) as f64).powi(2))
                        .sum::<f64>()
                        / per as f64;
                    let q = (ts[i] * 4 / tmax).min(3);
                    sums[q] += mse;
                    counts[q] += 1;
                }
            }
            let total: f64 = sums.iter().sum();
            let cnt: usize = counts.iter().sum();
            rep.eps_mse = Some(total / cnt.max(1) as f64);
            rep.eps_mse_buckets = (0..4).map(|q| sums[q] / counts[q].max(1) as f64).collect();
        }
        _ => return Err(RuntimeError::Internal("no task".into())),
    }
    Ok(rep)
}
