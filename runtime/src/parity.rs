//! CPU-vs-device parity: a checked model, a batch size and a seed in; the largest relative
//! differences between one forward + backward (loss `mean(out^2)`) on the CPU and on another
//! device out, with the same weights (initialized once with the host RNG), input and time
//! values. Relative difference of two tensors: `max|a - b| / max|a|` (scale-relative, so
//! entries near zero do not blow it up); for gradients the scale is at least 1e-3 of the
//! model's largest gradient, so analytically zero ones (a bias the next norm cancels) compare
//! by that.

use crate::exec::{Exec, Value};
use crate::ops::Kernels;
use crate::params::{normal, Params};
use crate::train::NoiseSchedule;
use crate::RuntimeError;
use dfdx::prelude::*;
use dfdx::tensor::Synchronize;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::time::Instant;
use tdspec_compiler::ir::{ModelIr, Task};

/// One forward + backward: output, loss, gradient per parameter, solver evaluations, wall ms.
#[derive(Clone, Debug)]
pub struct FwdBwd {
    pub out: Vec<f32>,
    pub loss: f32,
    pub grads: Vec<Vec<f32>>,
    pub nfe: usize,
    pub ms: f64,
}

/// A device's run of a [`Case`]: the warm forward + backward and the first call's ms (which
/// includes CUDA's kernel loading and NVRTC compiles).
#[derive(Clone, Debug)]
pub struct DeviceRun {
    pub warm: FwdBwd,
    pub first_ms: f64,
}

/// The same weights, input and times for every device.
pub struct Case<'a> {
    model: &'a ModelIr,
    seed: u64,
    /// Parameter names in the model's order.
    names: Vec<String>,
    named: HashMap<String, (Vec<usize>, Vec<f32>)>,
    x: Vec<f32>,
    t: Vec<f32>,
}

/// The comparison of a CPU run and a device run of one case (the JSON of `gpu-parity`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ParityRow {
    pub batch: usize,
    pub cpu_ms: f64,
    pub device: String,
    pub device_first_ms: f64,
    pub device_ms: f64,
    pub grad_rel_max: f64,
    /// The three parameters whose gradients differ most, largest first.
    pub grad_rel_worst: Vec<GradDiff>,
    pub loss_rel: f64,
    pub model: String,
    pub nfe_cpu: usize,
    pub nfe_device: usize,
    pub output_rel: f64,
    /// Parameter tensors compared.
    pub params: usize,
    /// Whether [`ParityRow::worst`] is within `tol`.
    pub pass: bool,
    pub spec: String,
    pub tol: f64,
}

/// One parameter's gradient difference.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GradDiff {
    pub param: String,
    pub rel: f64,
}

impl std::fmt::Display for ParityRow {
    /// The line of `tdspec gpu-parity` and the three worst gradients below it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.device;
        write!(
            f,
            "{} (model {}, batch {}): cpu vs {d}: output {:.2e}, loss {:.2e}, gradients max {:.2e} \
             over {} tensors; nfe {} / {}; fwd+bwd {:.1} ms cpu, {:.1} ms {d} (first call {:.0} ms): {}",
            self.spec, self.model, self.batch, self.output_rel, self.loss_rel, self.grad_rel_max,
            self.params, self.nfe_cpu, self.nfe_device, self.cpu_ms, self.device_ms,
            self.device_first_ms, if self.pass { "PASS" } else { "FAIL" }
        )?;
        for g in &self.grad_rel_worst {
            write!(f, "\n    grad {}: {:.2e}", g.param, g.rel)?;
        }
        Ok(())
    }
}

impl ParityRow {
    /// The largest of the output, loss and gradient differences.
    pub fn worst(&self) -> f64 {
        self.output_rel.max(self.loss_rel).max(self.grad_rel_max)
    }
}

impl<'a> Case<'a> {
    /// Initializes `m`'s parameters from `seed` on the host and draws a normal input batch.
    /// Denoisers get spread-out timesteps; classifiers ignore t (their ODE integrates 0..1).
    pub fn new(m: &'a ModelIr, batch: usize, seed: u64) -> Self {
        let params = Params::init(m, &Cpu::default(), seed);
        let names = params.list.iter().map(|p| p.info.name.clone()).collect();
        let named = params
            .to_named_vecs()
            .into_iter()
            .map(|(n, s, d)| (n, (s, d)))
            .collect();
        let mut rng = StdRng::seed_from_u64(seed);
        let n = batch * m.input.channels * m.input.height * m.input.width;
        let x = (0..n).map(|_| normal(&mut rng) as f32).collect();
        let t = match &m.task {
            Some(Task::Denoise { schedule, .. }) => {
                let steps = NoiseSchedule::new(schedule).steps().max(1);
                (0..batch)
                    .map(|i| ((i * steps) / batch + steps / (2 * batch)).min(steps - 1) as f32)
                    .collect()
            }
            _ => vec![0.0; batch],
        };
        Case {
            model: m,
            seed,
            names,
            named,
            x,
            t,
        }
    }

    /// Runs the forward + backward twice on `dev`; the second is the warm one.
    pub fn run<D: Kernels + Synchronize>(&self, dev: &D) -> Result<DeviceRun, RuntimeError> {
        let mut params = Params::init(self.model, dev, self.seed);
        params.load_named(&self.named)?;
        let first = fwd_bwd(self.model, &params, &self.x, &self.t)?;
        let warm = fwd_bwd(self.model, &params, &self.x, &self.t)?;
        Ok(DeviceRun {
            warm,
            first_ms: first.ms,
        })
    }

    /// Compares a run on `device` (of the spec at `spec`) against the CPU's, within `tol`.
    pub fn compare(
        &self,
        spec: &str,
        device: &str,
        tol: f64,
        cpu: &FwdBwd,
        other: &DeviceRun,
    ) -> ParityRow {
        let o = &other.warm;
        let output_rel = rel_diff(&cpu.out, &o.out);
        let loss_rel = rel_diff(&[cpu.loss], &[o.loss]);
        let grad_scale = cpu
            .grads
            .iter()
            .flatten()
            .map(|v| (*v as f64).abs())
            .fold(0.0, f64::max);
        let mut rels: Vec<GradDiff> = self
            .names
            .iter()
            .zip(cpu.grads.iter().zip(&o.grads))
            .map(|(n, (a, b))| GradDiff {
                param: n.clone(),
                rel: rel_diff_floor(a, b, 1e-3 * grad_scale),
            })
            .collect();
        rels.sort_by(|x, y| y.rel.total_cmp(&x.rel));
        let grad_rel_max = rels.first().map(|g| g.rel).unwrap_or(0.0);
        rels.truncate(3);
        let mut row = ParityRow {
            batch: self.t.len(),
            cpu_ms: cpu.ms,
            device: device.to_string(),
            device_first_ms: other.first_ms,
            device_ms: o.ms,
            grad_rel_max,
            grad_rel_worst: rels,
            loss_rel,
            model: self.model.name.clone(),
            nfe_cpu: cpu.nfe,
            nfe_device: o.nfe,
            output_rel,
            params: self.names.len(),
            pass: false,
            spec: spec.to_string(),
            tol,
        };
        row.pass = row.worst() <= tol;
        row
    }
}

/// One forward + backward of `m` with loss `mean(out^2)`, the device synchronized at the end.
pub fn fwd_bwd<D: Kernels + Synchronize>(
    m: &ModelIr,
    params: &Params<D>,
    x: &[f32],
    t: &[f32],
) -> Result<FwdBwd, RuntimeError> {
    let start = Instant::now();
    let dev = params.dev.clone();
    let b = t.len();
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    let xt: Tensor<(usize, usize, usize, usize), f32, D> =
        dev.tensor_from_vec(x.to_vec(), (b, c, h, w));
    let mut ex = Exec::new(params, false);
    let (vals, tape) = ex.run(
        &m.graph,
        &[m.output],
        Value::Image(xt),
        t,
        OwnedTape::<f32, D>::default(),
    )?;
    let nfe = ex.nfe;
    drop(ex);
    let outv = vals[m.output]
        .as_ref()
        .ok_or_else(|| RuntimeError::Internal("no output".into()))?;
    let out = outv.to_vec();
    let loss = match outv {
        Value::Image(y) => y.clone().put_tape(tape).square().mean::<Rank0, _>(),
        Value::Vector(y) => y.clone().put_tape(tape).square().mean::<Rank0, _>(),
        Value::Time(_) => return Err(RuntimeError::Internal("output is a time value".into())),
    };
    let loss_v = loss.as_vec().first().copied().unwrap_or(f32::NAN);
    let mut g = loss.backward();
    let mut grads = Vec::with_capacity(params.list.len());
    for p in &params.list {
        g.get_or_alloc_mut(&p.tensor)
            .map_err(|e| RuntimeError::Op(format!("{e:?}")))?;
        grads.push(g.get(&p.tensor).as_vec());
    }
    dev.synchronize();
    Ok(FwdBwd {
        out,
        loss: loss_v,
        grads,
        nfe,
        ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// `max|a - b| / max|a|` (0 for two empty or all-zero tensors that agree).
pub fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    rel_diff_floor(a, b, 0.0)
}

/// `max|a - b| / max(max|a|, floor)`: gradients that are analytically zero (a bias that the
/// next normalization cancels, lint TD104) hold only round-off, so they compare against a
/// floor tied to the model's largest gradient instead of their own size.
pub fn rel_diff_floor(a: &[f32], b: &[f32], floor: f64) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let scale = a.iter().map(|v| (*v as f64).abs()).fold(0.0, f64::max);
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(
            0.0,
            |m: f64, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        );
    if diff == 0.0 {
        0.0
    } else {
        diff / scale.max(floor).max(f64::MIN_POSITIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_differences() {
        assert_eq!(rel_diff(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((rel_diff(&[2.0, -4.0], &[2.0, -3.0]) - 0.25).abs() < 1e-12);
        assert_eq!(rel_diff(&[1.0], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(rel_diff(&[1.0], &[f32::NAN]), f64::INFINITY);
        // Round-off on an analytically zero gradient compares against the floor.
        assert!((rel_diff_floor(&[0.0], &[1e-6], 1e-3) - 1e-3).abs() < 1e-9);
    }
}
