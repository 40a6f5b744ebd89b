//! Diffusion sampling: a trained denoiser (spec + parameters), a noise schedule and a sampler
//! in; `n` generated images in [0, 1] out. Ancestral sampling (DDPM) and deterministic DDIM
//! (eta = 0), both over `k` evenly spaced timesteps (respacing; `k = T` is plain DDPM).

use crate::ops::Kernels;
use crate::params::{normal, Params};
use crate::train::{forward_labeled, NoiseSchedule};
use crate::RuntimeError;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tdspec_compiler::ir::ModelIr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampler {
    Ancestral,
    Ddim,
}

/// `k` timesteps from `T - 1` down to 0, evenly spaced.
pub fn respaced(t: usize, k: usize) -> Vec<usize> {
    let k = k.clamp(1, t);
    let mut v: Vec<usize> = (0..k)
        .map(|i| ((t - 1) as f64 * (k - 1 - i) as f64 / (k.max(2) - 1) as f64).round() as usize)
        .collect();
    if k == 1 {
        v = vec![t - 1];
    }
    v.dedup();
    v
}

/// The labels of `n` images all of class `class` (`--class`), checked against the model's
/// label input; none given: empty (image i takes class i mod N).
pub fn class_labels(m: &ModelIr, class: Option<usize>, n: usize) -> Result<Vec<usize>, String> {
    match (class, &m.label) {
        (None, _) => Ok(Vec::new()),
        (Some(k), Some(lb)) if k < lb.classes => Ok(vec![k; n]),
        (Some(k), Some(lb)) => Err(format!(
            "--class {k}: the label input `{}` takes classes 0..{}",
            lb.name, lb.classes
        )),
        (Some(_), None) => Err(format!(
            "--class: model `{}` has no class-label input",
            m.name
        )),
    }
}

/// Generates `n` images with `k` denoising steps; returns `[n, C, H, W]` values in [0, 1].
/// A class-conditional model gives image i the label `labels[i]` (or i mod N past the end).
#[allow(clippy::too_many_arguments)]
pub fn sample<D: Kernels>(
    m: &ModelIr,
    params: &Params<D>,
    sched: &NoiseSchedule,
    n: usize,
    k: usize,
    sampler: Sampler,
    seed: u64,
    labels: &[usize],
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<f32>, RuntimeError> {
    if n == 0 || k == 0 || k > sched.steps() {
        return Err(RuntimeError::Unsupported(format!(
            "--n {n} --steps {k}: sampling needs at least one image and between 1 and {} steps (the schedule's)",
            sched.steps()
        )));
    }
    crate::lower::ensure_fits(m, n)?;
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    let per = c * h * w;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x: Vec<f32> = (0..n * per).map(|_| normal(&mut rng) as f32).collect();
    let ts = respaced(sched.steps(), k);
    let ac = &sched.alphas_cumprod;
    for (i, &t) in ts.iter().enumerate() {
        let ab = ac[t];
        let ab_prev = if i + 1 < ts.len() { ac[ts[i + 1]] } else { 1.0 };
        // Batches of up to 64 keep memory flat for large n.
        let mut eps = Vec::with_capacity(n * per);
        for start in (0..n).step_by(64) {
            let b = (n - start).min(64);
            // Image i's class label (class-conditional models): given, else i mod N.
            let ys: Vec<usize> = (start..start + b)
                .map(|i| labels.get(i).copied().unwrap_or(i))
                .collect();
            let (out, _) = forward_labeled(
                m,
                params,
                x[start * per..(start + b) * per].to_vec(),
                b,
                &vec![t as f32; b],
                &ys,
            )?;
            eps.extend(out);
        }
        if eps.iter().any(|v| !v.is_finite()) {
            return Err(RuntimeError::NonFinite(format!(
                "the model's prediction at step {t}"
            )));
        }
        match sampler {
            Sampler::Ddim => {
                for j in 0..x.len() {
                    let x0 = ((x[j] as f64 - (1.0 - ab).sqrt() * eps[j] as f64) / ab.sqrt())
                        .clamp(-1.0, 1.0);
                    let e = (x[j] as f64 - ab.sqrt() * x0) / (1.0 - ab).sqrt();
                    x[j] = (ab_prev.sqrt() * x0 + (1.0 - ab_prev).sqrt() * e) as f32;
                }
            }
            Sampler::Ancestral => {
                let beta = (1.0 - ab / ab_prev).clamp(0.0, 0.999);
                let var = if i + 1 < ts.len() {
                    beta * (1.0 - ab_prev) / (1.0 - ab)
                } else {
                    0.0
                };
                for j in 0..x.len() {
                    let x0 = ((x[j] as f64 - (1.0 - ab).sqrt() * eps[j] as f64) / ab.sqrt())
                        .clamp(-1.0, 1.0);
                    // Posterior mean of q(x_prev | x_t, x0).
                    let mean = (ab_prev.sqrt() * beta / (1.0 - ab)) * x0
                        + ((1.0 - beta).sqrt() * (1.0 - ab_prev) / (1.0 - ab)) * x[j] as f64;
                    x[j] = (mean + var.sqrt() * normal(&mut rng)) as f32;
                }
            }
        }
        progress(i + 1, ts.len());
    }
    Ok(x.iter()
        .map(|v| ((v + 1.0) / 2.0).clamp(0.0, 1.0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::respaced;

    #[test]
    fn respacing_covers_both_ends() {
        assert_eq!(respaced(1000, 1000).len(), 1000);
        let r = respaced(1000, 10);
        assert_eq!(r.first(), Some(&999));
        assert_eq!(r.last(), Some(&0));
        assert_eq!(r.len(), 10);
        assert!(r.windows(2).all(|w| w[0] > w[1]));
    }
}
