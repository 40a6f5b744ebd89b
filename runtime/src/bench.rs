//! The yardstick workloads of `shared/bench/torch_reference.py bench`, written once for every
//! device: a device in; the median wall-clock (and process CPU) milliseconds of forward +
//! backward through the ops layer out, after warm-up runs, the device synchronized before each
//! clock read. Inputs and weights come from the host RNG, so every device sees the same values.
//! The `bench` binary runs them on the CPU, `tdspec gpu-bench` on any device.

use crate::ops::{self, Activation, Conv2dCfg, GroupNormCfg, Kernels, OpsError, Unary};
use crate::params::normal;
use dfdx::prelude::*;
use dfdx::tensor::Synchronize;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

type T4<D> = Tensor<(usize, usize, usize, usize), f32, D>;
type T1<D> = Tensor<(usize,), f32, D>;
type Tp<D> = OwnedTape<f32, D>;

/// Medians of one workload.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub wall_ms: f64,
    /// CPU time summed over threads, where the OS reports it; on a busy machine it is steadier
    /// than the wall clock.
    pub cpu_ms: Option<f64>,
}

/// A workload: runs itself on a device and times itself.
pub type Workload<D> = fn(&D) -> Result<Timing, OpsError>;

/// The three yardsticks by name, in the reference script's order.
pub fn yardsticks<D: Kernels + Synchronize>() -> [(&'static str, Workload<D>); 3] {
    [
        ("concat_conv_gn_relu_b32_c32_16x16", concat_block::<D>),
        ("odenet_func_b128_c64_6x6", odenet_func::<D>),
        ("ddpm_resblock_b32_c128_32x32", ddpm_resblock::<D>),
    ]
}

/// Extra workloads (not yardsticks): the DDPM attention core, fast kernel vs dfdx composed.
pub fn extras<D: Kernels + Synchronize>() -> [(&'static str, Workload<D>); 2] {
    [
        ("attention_b32_c256_n256", |d| attention_core(d, false)),
        ("attention_composed_b32_c256_n256", |d| {
            attention_core(d, true)
        }),
    ]
}

/// Host-RNG normal tensor (the same values on every device).
fn randn<D: Kernels, S: Shape>(dev: &D, rng: &mut StdRng, s: S, scale: f32) -> Tensor<S, f32, D> {
    let n = s.num_elements();
    let v: Vec<f32> = (0..n).map(|_| normal(rng) as f32 * scale).collect();
    dev.tensor_from_vec(v, s)
}

fn fill1<D: Kernels>(dev: &D, n: usize, v: f32) -> T1<D> {
    dev.tensor_from_vec(vec![v; n], (n,))
}

/// Conv parameters with PyTorch's default init scale (normal of the same std).
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

/// The constant time channel of a ConcatConv at `t` for `b` samples of `h x w` maps: the
/// per-sample times and the channel's pattern, as [`ops::conv2d_time`] takes them (the runtime
/// runs `conv(time = concat)` this way).
fn time_channel(b: usize, h: usize, w: usize, t: f32) -> (Vec<f32>, Vec<f32>) {
    (vec![t; b], vec![1.0; h * w])
}

/// CPU time of the whole process (all threads) in milliseconds, where the OS reports it.
fn process_cpu_ms() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec (two 64-bit fields on 64-bit Linux).
        let rc = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| ts.sec as f64 * 1e3 + ts.nsec as f64 / 1e6)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Median wall-clock and process CPU milliseconds of `n` runs after 3 warm-up runs,
/// synchronizing the device around each.
fn median_ms<D: Synchronize>(
    dev: &D,
    mut f: impl FnMut() -> Result<(), OpsError>,
    n: usize,
) -> Result<Timing, OpsError> {
    for _ in 0..3 {
        f()?;
    }
    dev.synchronize();
    let mut wall = Vec::with_capacity(n);
    let mut cpu = Vec::with_capacity(n);
    for _ in 0..n {
        let c0 = process_cpu_ms();
        let t0 = Instant::now();
        f()?;
        dev.synchronize();
        wall.push(t0.elapsed().as_secs_f64() * 1e3);
        if let (Some(a), Some(b)) = (c0, process_cpu_ms()) {
            cpu.push(b - a);
        }
    }
    Ok(Timing {
        wall_ms: median(wall),
        cpu_ms: (!cpu.is_empty()).then(|| median(cpu)),
    })
}

const PAD1: Conv2dCfg = Conv2dCfg {
    stride: 1,
    padding: 1,
    groups: 1,
};

/// (a) concat t -> conv3x3 (33 -> 32) -> GroupNorm(8) -> ReLU -> MSE, B 32, 16x16.
pub fn concat_block<D: Kernels + Synchronize>(dev: &D) -> Result<Timing, OpsError> {
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
            let (tv, plane) = time_channel(32, 16, 16, 0.5);
            let h = ops::conv2d_time(
                x.clone(),
                &tv,
                &plane,
                w.leaky_trace(),
                Some(b.retaped::<Tp<D>>()),
                PAD1,
            )?;
            let h = ops::group_norm(h, gamma.retaped::<Tp<D>>(), beta.retaped::<Tp<D>>(), gn)?;
            let loss = ops::mse_loss(h, y.clone())?;
            std::hint::black_box(loss.backward());
            Ok(())
        },
        30,
    )
}

/// (b) ODE-Net function: GN(32) -> ReLU -> ConcatConv 65->64 -> GN -> ReLU -> ConcatConv -> GN
/// on [128, 64, 6, 6], loss mean(out^2).
pub fn odenet_func<D: Kernels + Synchronize>(dev: &D) -> Result<Timing, OpsError> {
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
            let (tv, plane) = time_channel(128, 6, 6, 0.5);
            let h = ops::conv2d_time(
                h,
                &tv,
                &plane,
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
            let (tv, plane) = time_channel(128, 6, 6, 0.5);
            let h = ops::conv2d_time(
                h,
                &tv,
                &plane,
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
        30,
    )
}

/// (c) DDPM ResBlock 128 -> 128 on [32, 128, 32, 32] with temb [32, 512], loss mean(out^2).
pub fn ddpm_resblock<D: Kernels + Synchronize>(dev: &D) -> Result<Timing, OpsError> {
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
        10,
    )
}

/// The DDPM attention core at the 16x16 level, q, k, v [32, 256, 256], loss mean(out^2); the
/// device's kernel, or dfdx's composed matmul + softmax with `composed`.
fn attention_core<D: Kernels + Synchronize>(dev: &D, composed: bool) -> Result<Timing, OpsError> {
    let mut rng = StdRng::seed_from_u64(3);
    let s = (32usize, 256usize, 256usize);
    let (q, k, v) = (
        randn(dev, &mut rng, s, 1.0),
        randn(dev, &mut rng, s, 1.0),
        randn(dev, &mut rng, s, 1.0),
    );
    median_ms(
        dev,
        || {
            let (qt, kt, vt) = (q.leaky_trace(), k.retaped::<Tp<D>>(), v.retaped::<Tp<D>>());
            let out = if composed {
                ops::composed::attention(qt, kt, vt)?
            } else {
                ops::attention(qt, kt, vt)?
            };
            std::hint::black_box(out.square().mean::<Rank0, _>().backward());
            Ok(())
        },
        5,
    )
}
