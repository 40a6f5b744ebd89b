//! Diagnostics for the CUDA backend (hidden commands; scripts/gpu-check.sh runs them).
//!
//! - `tdspec gpu-parity SPEC...`: initializes each spec's parameters once (host RNG), runs one
//!   forward + backward (loss `mean(out^2)`) on the CPU and on `--device` with the same weights,
//!   input and time values, and prints the largest relative differences of the outputs, the loss
//!   and the parameter gradients. Relative difference of two tensors: `max|a - b| / max|a|`
//!   (scale-relative, so entries near zero do not blow it up; for gradients the scale is at
//!   least 1e-3 of the model's largest gradient, so analytically zero ones — a bias the next
//!   norm cancels — compare by that). Fails (exit 1) above `--tol`.
//! - `tdspec gpu-bench`: the three yardstick workloads of `shared/bench/torch_reference.py bench`
//!   (the same shapes as the runtime's `bench` binary), forward + backward through the ops layer
//!   on `--device`, median milliseconds, the device synchronized before each clock read.

use crate::device::{on_device, DeviceArg};
use crate::train_cmd::load_model;
use dfdx::prelude::*;
use dfdx::tensor::Synchronize;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;
use tdspec_compiler::ir::{ModelIr, Task};
use tdspec_runtime::exec::{Exec, Value};
use tdspec_runtime::ops::{self, Activation, Conv2dCfg, GroupNormCfg, Kernels, OpsError, Unary};
use tdspec_runtime::params::{normal, Params};
use tdspec_runtime::train::NoiseSchedule;
use tdspec_runtime::RuntimeError;

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

pub struct ParityArgs {
    pub specs: Vec<PathBuf>,
    pub device: DeviceArg,
    pub batch: usize,
    pub seed: u64,
    pub tol: f64,
    pub json: bool,
}

/// One forward + backward: output, loss, gradient per parameter, solver evaluations, wall ms.
struct FwdBwd {
    out: Vec<f32>,
    loss: f32,
    grads: Vec<Vec<f32>>,
    nfe: usize,
    ms: f64,
}

fn fwd_bwd<D: Kernels + Synchronize>(
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
fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    rel_diff_floor(a, b, 0.0)
}

/// `max|a - b| / max(max|a|, floor)`: gradients that are analytically zero (a bias that the
/// next normalization cancels, lint TD104) hold only round-off, so they compare against a
/// floor tied to the model's largest gradient instead of their own size.
fn rel_diff_floor(a: &[f32], b: &[f32], floor: f64) -> f64 {
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

/// Runs `fwd_bwd` twice on a device holding the CPU's parameter values; the second timing is the
/// warm one (the first includes CUDA's kernel loading and NVRTC compiles).
fn on<D: Kernels + Synchronize>(
    m: &ModelIr,
    dev: &D,
    named: &HashMap<String, (Vec<usize>, Vec<f32>)>,
    seed: u64,
    x: &[f32],
    t: &[f32],
) -> Result<(FwdBwd, f64), RuntimeError> {
    let mut params = Params::init(m, dev, seed);
    params.load_named(named)?;
    let first = fwd_bwd(m, &params, x, t)?;
    let warm = fwd_bwd(m, &params, x, t)?;
    Ok((warm, first.ms))
}

pub fn parity(a: &ParityArgs) -> u8 {
    if a.batch < 2 {
        return fail("--batch must be at least 2 (batch statistics need two samples)");
    }
    let mut worst = 0.0f64;
    let mut rows = Vec::new();
    for spec in &a.specs {
        let (m, _) = match load_model(spec) {
            Ok(v) => v,
            Err(code) => return code,
        };
        let cpu = Cpu::default();
        let params = Params::init(&m, &cpu, a.seed);
        let named: HashMap<String, (Vec<usize>, Vec<f32>)> = params
            .to_named_vecs()
            .into_iter()
            .map(|(n, s, d)| (n, (s, d)))
            .collect();
        let b = a.batch;
        let mut rng = StdRng::seed_from_u64(a.seed);
        let n = b * m.input.channels * m.input.height * m.input.width;
        let x: Vec<f32> = (0..n).map(|_| normal(&mut rng) as f32).collect();
        // Denoisers get spread-out timesteps; classifiers ignore t (their ODE integrates 0..1).
        let t: Vec<f32> = match &m.task {
            Some(Task::Denoise { schedule, .. }) => {
                let steps = NoiseSchedule::new(schedule).steps().max(1);
                (0..b)
                    .map(|i| ((i * steps) / b + steps / (2 * b)).min(steps - 1) as f32)
                    .collect()
            }
            _ => vec![0.0; b],
        };
        let reference = match on(&m, &cpu, &named, a.seed, &x, &t) {
            Ok(r) => r,
            Err(e) => return fail(format!("{}: cpu: {e}", spec.display())),
        };
        let other = match on_device!(a.device, |dev| on(&m, &dev, &named, a.seed, &x, &t)) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return fail(format!("{}: {}: {e}", spec.display(), a.device.name())),
            Err(e) => return fail(e),
        };
        let (r, o) = (&reference.0, &other.0);
        let out_rel = rel_diff(&r.out, &o.out);
        let loss_rel = rel_diff(&[r.loss], &[o.loss]);
        let grad_scale = r
            .grads
            .iter()
            .flatten()
            .map(|v| (*v as f64).abs())
            .fold(0.0, f64::max);
        let mut grad_rels: Vec<(f64, &str)> = params
            .list
            .iter()
            .zip(r.grads.iter().zip(&o.grads))
            .map(|(p, (gr, go))| {
                (
                    rel_diff_floor(gr, go, 1e-3 * grad_scale),
                    p.info.name.as_str(),
                )
            })
            .collect();
        grad_rels.sort_by(|x, y| y.0.total_cmp(&x.0));
        let grad_max = grad_rels.first().map(|g| g.0).unwrap_or(0.0);
        let spec_worst = out_rel.max(loss_rel).max(grad_max);
        worst = worst.max(spec_worst);
        let pass = spec_worst <= a.tol;
        if a.json {
            rows.push(serde_json::json!({
                "spec": spec.display().to_string(), "model": m.name, "batch": b,
                "device": a.device.name(), "output_rel": out_rel, "loss_rel": loss_rel,
                "grad_rel_max": grad_max,
                "grad_rel_worst": grad_rels.iter().take(3).map(|(v, n)| serde_json::json!({"param": n, "rel": v})).collect::<Vec<_>>(),
                "params": params.list.len(), "nfe_cpu": r.nfe, "nfe_device": o.nfe,
                "cpu_ms": r.ms, "device_ms": o.ms, "device_first_ms": other.1,
                "tol": a.tol, "pass": pass,
            }));
        } else {
            println!(
                "{} (model {}, batch {b}): cpu vs {}: output {out_rel:.2e}, loss {loss_rel:.2e}, \
                 gradients max {grad_max:.2e} over {} tensors; nfe {} / {}; fwd+bwd {:.1} ms cpu, \
                 {:.1} ms {} (first call {:.0} ms): {}",
                spec.display(),
                m.name,
                a.device.name(),
                params.list.len(),
                r.nfe,
                o.nfe,
                r.ms,
                o.ms,
                a.device.name(),
                other.1,
                if pass { "PASS" } else { "FAIL" }
            );
            for (v, name) in grad_rels.iter().take(3) {
                println!("    grad {name}: {v:.2e}");
            }
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        println!(
            "parity: worst relative difference {worst:.2e} (tolerance {:.0e}): {}",
            a.tol,
            if worst <= a.tol { "PASS" } else { "FAIL" }
        );
    }
    if worst <= a.tol {
        0
    } else {
        1
    }
}

// ---- gpu-bench: the yardstick workloads, generic over the device ----

type T4<D> = Tensor<(usize, usize, usize, usize), f32, D>;
type T1<D> = Tensor<(usize,), f32, D>;

/// Host-RNG normal tensor (the same values on every device).
fn randn<D: Kernels, S: Shape>(dev: &D, rng: &mut StdRng, s: S, scale: f32) -> Tensor<S, f32, D> {
    let n = s.num_elements();
    let v: Vec<f32> = (0..n).map(|_| normal(rng) as f32 * scale).collect();
    dev.tensor_from_vec(v, s)
}

fn fill1<D: Kernels>(dev: &D, n: usize, v: f32) -> T1<D> {
    dev.tensor_from_vec(vec![v; n], (n,))
}

fn conv_params<D: Kernels>(
    dev: &D,
    rng: &mut StdRng,
    cout: usize,
    cin: usize,
    k: usize,
) -> (T4<D>, T1<D>) {
    let s = 1.0 / ((cin * k * k) as f32).sqrt() / 3f32.sqrt();
    (
        randn(dev, rng, (cout, cin, k, k), s),
        randn(dev, rng, (cout,), s),
    )
}

fn time_channel<D: Kernels>(dev: &D, b: usize, h: usize, w: usize, t: f32) -> T4<D> {
    dev.tensor_from_vec(vec![t; b * h * w], (b, 1, h, w))
}

/// Median milliseconds of `n` runs after 3 warm-up runs, synchronizing the device around each.
fn median_ms<D: Synchronize>(
    dev: &D,
    mut f: impl FnMut() -> Result<(), OpsError>,
    n: usize,
) -> Result<f64, OpsError> {
    for _ in 0..3 {
        f()?;
    }
    dev.synchronize();
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        f()?;
        dev.synchronize();
        v.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

const PAD1: Conv2dCfg = Conv2dCfg {
    stride: 1,
    padding: 1,
    groups: 1,
};

/// (a) concat t -> conv3x3 (33 -> 32) -> GroupNorm(8) -> ReLU -> MSE, B 32, 16x16.
fn concat_block<D: Kernels + Synchronize>(dev: &D, n: usize) -> Result<f64, OpsError> {
    type Tp<D> = OwnedTape<f32, D>;
    let mut rng = StdRng::seed_from_u64(0);
    let x = randn(dev, &mut rng, (32, 32, 16, 16), 1.0);
    let y = randn(dev, &mut rng, (32, 32, 16, 16), 1.0);
    let (w, b) = conv_params(dev, &mut rng, 32, 33, 3);
    let (gamma, beta) = (fill1(dev, 32, 1.0), fill1(dev, 32, 0.0));
    let gn = GroupNormCfg {
        groups: 8,
        eps: 1e-5,
        act: Activation::Relu,
    };
    median_ms(
        dev,
        || {
            let tt = time_channel(dev, 32, 16, 16, 0.5);
            let inp = ops::concat_channels(tt, x.clone())?;
            let h = ops::conv2d(inp, w.leaky_trace(), Some(b.retaped::<Tp<D>>()), PAD1)?;
            let h = ops::group_norm(h, gamma.retaped::<Tp<D>>(), beta.retaped::<Tp<D>>(), gn)?;
            let loss = (h - y.clone()).square().mean::<Rank0, _>();
            std::hint::black_box(loss.backward());
            Ok(())
        },
        n,
    )
}

/// (b) ODE-Net function: GN(32) -> ReLU -> ConcatConv 65->64 -> GN -> ReLU -> ConcatConv -> GN
/// on [128, 64, 6, 6], loss mean(out^2).
fn odenet_func<D: Kernels + Synchronize>(dev: &D, n: usize) -> Result<f64, OpsError> {
    type Tp<D> = OwnedTape<f32, D>;
    let mut rng = StdRng::seed_from_u64(1);
    let hx = randn(dev, &mut rng, (128, 64, 6, 6), 1.0);
    let (w1, b1) = conv_params(dev, &mut rng, 64, 65, 3);
    let (w2, b2) = conv_params(dev, &mut rng, 64, 65, 3);
    let norms: Vec<(T1<D>, T1<D>)> = (0..3)
        .map(|_| (fill1(dev, 64, 1.0), fill1(dev, 64, 0.0)))
        .collect();
    let gn = |act| GroupNormCfg {
        groups: 32,
        eps: 1e-5,
        act,
    };
    median_ms(
        dev,
        || {
            let h = ops::group_norm(
                hx.clone(),
                norms[0].0.leaky_trace(),
                norms[0].1.retaped::<Tp<D>>(),
                gn(Activation::Relu),
            )?;
            let tt = time_channel(dev, 128, 6, 6, 0.5).retaped::<Tp<D>>();
            let h = ops::conv2d(
                ops::concat_channels(tt, h)?,
                w1.retaped::<Tp<D>>(),
                Some(b1.retaped::<Tp<D>>()),
                PAD1,
            )?;
            let h = ops::group_norm(
                h,
                norms[1].0.retaped::<Tp<D>>(),
                norms[1].1.retaped::<Tp<D>>(),
                gn(Activation::Relu),
            )?;
            let tt = time_channel(dev, 128, 6, 6, 0.5).retaped::<Tp<D>>();
            let h = ops::conv2d(
                ops::concat_channels(tt, h)?,
                w2.retaped::<Tp<D>>(),
                Some(b2.retaped::<Tp<D>>()),
                PAD1,
            )?;
            let h = ops::group_norm(
                h,
                norms[2].0.retaped::<Tp<D>>(),
                norms[2].1.retaped::<Tp<D>>(),
                gn(Activation::Identity),
            )?;
            std::hint::black_box(h.square().mean::<Rank0, _>().backward());
            Ok(())
        },
        n,
    )
}

/// (c) DDPM ResBlock 128 -> 128 on [32, 128, 32, 32] with temb [32, 512], loss mean(out^2).
fn ddpm_resblock<D: Kernels + Synchronize>(dev: &D, n: usize) -> Result<f64, OpsError> {
    type Tp<D> = OwnedTape<f32, D>;
    let mut rng = StdRng::seed_from_u64(2);
    let x = randn(dev, &mut rng, (32, 128, 32, 32), 1.0);
    let temb = randn(dev, &mut rng, (32usize, 512usize), 1.0);
    let (w1, b1) = conv_params(dev, &mut rng, 128, 128, 3);
    let (w2, b2) = conv_params(dev, &mut rng, 128, 128, 3);
    let s = 1.0 / (512f32).sqrt() / 3f32.sqrt();
    let wt = randn(dev, &mut rng, (128usize, 512usize), s);
    let bt = randn(dev, &mut rng, (128,), s);
    let (g1, be1, g2, be2) = (
        fill1(dev, 128, 1.0),
        fill1(dev, 128, 0.0),
        fill1(dev, 128, 1.0),
        fill1(dev, 128, 0.0),
    );
    let gn = GroupNormCfg {
        groups: 32,
        eps: 1e-5,
        act: Activation::Silu,
    };
    median_ms(
        dev,
        || {
            let h = ops::group_norm(x.clone(), g1.leaky_trace(), be1.retaped::<Tp<D>>(), gn)?;
            let h = ops::conv2d(h, w1.retaped::<Tp<D>>(), Some(b1.retaped::<Tp<D>>()), PAD1)?;
            let te = ops::unary(temb.clone(), Unary::Silu)?;
            let off = ops::linear(te, wt.retaped::<Tp<D>>(), Some(bt.retaped::<Tp<D>>()))?;
            let h = ops::add_channel_offset(h, off)?;
            let h = ops::group_norm(h, g2.retaped::<Tp<D>>(), be2.retaped::<Tp<D>>(), gn)?;
            let h = ops::conv2d(h, w2.retaped::<Tp<D>>(), Some(b2.retaped::<Tp<D>>()), PAD1)?;
            let out = ops::add(h, x.retaped::<Tp<D>>())?;
            std::hint::black_box(out.square().mean::<Rank0, _>().backward());
            Ok(())
        },
        n,
    )
}

fn bench_all<D: Kernels + Synchronize>(dev: &D) -> Result<Vec<(&'static str, f64)>, OpsError> {
    Ok(vec![
        ("concat_conv_gn_relu_b32_c32_16x16", concat_block(dev, 30)?),
        ("odenet_func_b128_c64_6x6", odenet_func(dev, 30)?),
        ("ddpm_resblock_b32_c128_32x32", ddpm_resblock(dev, 10)?),
    ])
}

pub fn bench(device: DeviceArg, json: bool) -> u8 {
    let res = match on_device!(device, |dev| bench_all(&dev)) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return fail(format!("{}: {e}", device.name())),
        Err(e) => return fail(e),
    };
    if json {
        let mut o = serde_json::Map::new();
        for (k, v) in &res {
            o.insert(k.to_string(), serde_json::json!((v * 1e3).round() / 1e3));
        }
        o.insert("device".into(), serde_json::json!(device.name()));
        println!("{}", serde_json::Value::Object(o));
    } else {
        for (k, v) in &res {
            println!("{k}: {v:.3} ms ({})", device.name());
        }
    }
    0
}
