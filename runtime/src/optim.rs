//! Optimizers and learning-rate schedules over [`Params`]: gradients (host vectors, one per
//! parameter, in the parameter order) in; updated parameters out. SGD with momentum and
//! decoupled-from-nothing L2 weight decay (PyTorch's `SGD`), Adam (PyTorch's `Adam`), global
//! gradient-norm clipping, linear warmup, step decay and cosine schedules, and an exponential
//! moving average of the weights. All state is plain `Vec<f32>` so checkpoints can hold it.

use crate::params::Params;
use dfdx::tensor_ops::Device;
use tdspec_compiler::ir::{LrSchedule, Optimizer, ParamRole};

/// Optimizer state: the settings and one or two moment vectors per parameter.
#[derive(Clone, Debug)]
pub struct Optim {
    pub kind: Optimizer,
    /// Momentum buffers (SGD) or first moments (Adam).
    pub m: Vec<Vec<f32>>,
    /// Second moments (Adam); empty for SGD.
    pub v: Vec<Vec<f32>>,
    /// Updates taken so far (Adam's bias correction).
    pub t: u64,
}

impl Optim {
    pub fn new<D: Device<f32>>(kind: Optimizer, params: &Params<D>) -> Self {
        let zeros: Vec<Vec<f32>> = params
            .list
            .iter()
            .map(|p| vec![0.0; p.info.numel()])
            .collect();
        let v = match kind {
            Optimizer::Adam { .. } => zeros.clone(),
            Optimizer::Sgd { .. } => Vec::new(),
        };
        Optim {
            kind,
            m: zeros,
            v,
            t: 0,
        }
    }

    pub fn base_lr(&self) -> f64 {
        match self.kind {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => lr,
        }
    }

    /// Applies one update with learning rate `lr` to every parameter.
    pub fn step<D: Device<f32>>(&mut self, params: &mut Params<D>, grads: &[Vec<f32>], lr: f64) {
        self.t += 1;
        let dev = params.dev.clone();
        for (i, p) in params.list.iter_mut().enumerate() {
            // Fixed random features are part of the model, not of what it learns.
            if p.info.role == ParamRole::Frozen {
                continue;
            }
            let mut w = p.tensor.as_vec();
            let g = &grads[i];
            match self.kind {
                Optimizer::Sgd {
                    momentum,
                    weight_decay,
                    ..
                } => {
                    let buf = &mut self.m[i];
                    for j in 0..w.len() {
                        let gj = g[j] + weight_decay as f32 * w[j];
                        let b = if self.t == 1 {
                            gj
                        } else {
                            momentum as f32 * buf[j] + gj
                        };
                        buf[j] = b;
                        w[j] -= lr as f32 * b;
                    }
                }
                Optimizer::Adam {
                    beta1,
                    beta2,
                    weight_decay,
                    ..
                } => {
                    let (m, v) = (&mut self.m[i], &mut self.v[i]);
                    let bc1 = 1.0 - beta1.powi(self.t as i32);
                    let bc2 = 1.0 - beta2.powi(self.t as i32);
                    let step = (lr / bc1) as f32;
                    let (b1, b2) = (beta1 as f32, beta2 as f32);
                    for j in 0..w.len() {
                        let gj = g[j] + weight_decay as f32 * w[j];
                        m[j] = b1 * m[j] + (1.0 - b1) * gj;
                        v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
                        let denom = (v[j] / bc2 as f32).sqrt() + 1e-8;
                        w[j] -= step * m[j] / denom;
                    }
                }
            }
            let n = w.len();
            p.tensor = dev.tensor_from_vec(w, (n,));
        }
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_grad_norm(grads: &mut [Vec<f32>], max_norm: f64) -> f64 {
    let total: f64 = grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    if total > max_norm && total.is_finite() {
        let s = (max_norm / (total + 1e-6)) as f32;
        for g in grads.iter_mut() {
            for x in g.iter_mut() {
                *x *= s;
            }
        }
    }
    total
}

/// The learning rate at `step` (0-based) in `epoch` (0-based): linear warmup over `warmup`
/// steps, then the schedule (step decay by epoch milestones, or cosine over `total` steps).
pub fn lr_at(
    base: f64,
    warmup: usize,
    schedule: &LrSchedule,
    step: usize,
    epoch: usize,
    total: usize,
) -> f64 {
    let warm = if warmup > 0 && step < warmup {
        (step + 1) as f64 / warmup as f64
    } else {
        1.0
    };
    let sched = match schedule {
        LrSchedule::Constant => 1.0,
        LrSchedule::Step { milestones, gamma } => {
            gamma.powi(milestones.iter().filter(|&&m| epoch >= m).count() as i32)
        }
        LrSchedule::Cosine => {
            let p = (step as f64 / total.max(1) as f64).min(1.0);
            0.5 * (1.0 + (std::f64::consts::PI * p).cos())
        }
    };
    base * warm * sched
}

/// Exponential moving average of the parameters.
#[derive(Clone, Debug)]
pub struct Ema {
    pub decay: f64,
    pub shadow: Vec<Vec<f32>>,
}

impl Ema {
    pub fn new<D: Device<f32>>(decay: f64, params: &Params<D>) -> Self {
        Ema {
            decay,
            shadow: params.list.iter().map(|p| p.tensor.as_vec()).collect(),
        }
    }

    pub fn update<D: Device<f32>>(&mut self, params: &Params<D>) {
        let d = self.decay as f32;
        for (s, p) in self.shadow.iter_mut().zip(&params.list) {
            let w = p.tensor.as_vec();
            for (a, b) in s.iter_mut().zip(w) {
                *a = d * *a + (1.0 - d) * b;
            }
        }
    }

    /// A copy of `params` holding the averaged weights.
    pub fn apply<D: Device<f32>>(&self, params: &Params<D>) -> Params<D> {
        let mut out = params.clone();
        for (p, s) in out.list.iter_mut().zip(&self.shadow) {
            p.tensor = params.dev.tensor_from_vec(s.clone(), (s.len(),));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_and_step_decay() {
        let s = LrSchedule::Step {
            milestones: vec![2, 4],
            gamma: 0.1,
        };
        assert!((lr_at(1.0, 10, &s, 0, 0, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(1.0, 10, &s, 9, 0, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(1.0, 0, &s, 50, 2, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(1.0, 0, &s, 50, 5, 100) - 0.01).abs() < 1e-12);
        assert!(lr_at(1.0, 0, &LrSchedule::Cosine, 100, 0, 100).abs() < 1e-12);
    }

    /// Fourier frequencies are drawn once: neither gradients nor weight decay move them,
    /// while the layers around them learn.
    #[test]
    fn frozen_frequencies_stay_put() {
        let src = "model f { input x: image[1, 4, 4]  time t: continuous(0.1, 1)
            embed e = fourier(8) | linear(4)
            h = x | conv3(4)
            return h + inject(e) }";
        let m = tdspec_compiler::sema::check_source(src)
            .expect("checks")
            .remove(0);
        let dev = dfdx::tensor::Cpu::default();
        let mut params = Params::init(&m, &dev, 0);
        let before: Vec<Vec<f32>> = params.list.iter().map(|p| p.tensor.as_vec()).collect();
        let grads: Vec<Vec<f32>> = params
            .list
            .iter()
            .map(|p| vec![0.5; p.info.numel()])
            .collect();
        for kind in [
            Optimizer::Adam {
                lr: 1e-2,
                beta1: 0.9,
                beta2: 0.999,
                weight_decay: 0.1,
            },
            Optimizer::Sgd {
                lr: 1e-2,
                momentum: 0.9,
                weight_decay: 0.1,
            },
        ] {
            let mut opt = Optim::new(kind, &params);
            opt.step(&mut params, &grads, 1e-2);
        }
        for (p, b) in params.list.iter().zip(&before) {
            let same = p.tensor.as_vec() == *b;
            assert_eq!(same, p.info.role == ParamRole::Frozen, "{}", p.info.name);
        }
        assert!(params.list.iter().any(|p| p.info.role == ParamRole::Frozen));
    }

    #[test]
    fn clipping_bounds_the_norm() {
        let mut g = vec![vec![3.0, 4.0], vec![0.0]];
        let n = clip_grad_norm(&mut g, 1.0);
        assert!((n - 5.0).abs() < 1e-9);
        let after: f64 = g
            .iter()
            .flatten()
            .map(|x| (*x as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((after - 1.0).abs() < 1e-4);
    }
}
