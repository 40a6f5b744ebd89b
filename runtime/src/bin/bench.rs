//! Benchmark of the ops layer: builds the three yardstick workloads of
//! `shared/bench/torch_reference.py bench` at the same shapes from random tensors, runs forward +
//! backward repeatedly and prints the median milliseconds per workload (`--json`: one JSON line).
//! Run with `cargo run --release -p tdspec-runtime --bin bench [-- --json] [NAME...]`; naming
//! `attention` adds the (non-yardstick) attention-core timings, fast kernel vs dfdx composed.

use std::time::Instant;

use dfdx::prelude::*;
use tdspec_runtime::ops::{self, Activation, Conv2dCfg, GroupNormCfg, OpsError, Unary};

type Dev = Cpu;
type Tp = OwnedTape<f32, Cpu>;
type T4 = Tensor<(usize, usize, usize, usize), f32, Dev>;
type T1 = Tensor<(usize,), f32, Dev>;

fn randn4(dev: &Dev, s: (usize, usize, usize, usize), scale: f32) -> T4 {
    let t: T4 = dev.sample_normal_like(&s);
    t * scale
}

fn randn1(dev: &Dev, n: usize, scale: f32) -> T1 {
    let t: T1 = dev.sample_normal_like(&(n,));
    t * scale
}

fn ones1(dev: &Dev, n: usize) -> T1 {
    dev.ones_like(&(n,))
}

fn zeros1(dev: &Dev, n: usize) -> T1 {
    dev.zeros_like(&(n,))
}

/// Conv parameters with PyTorch's default init scale (uniform-ish: normal of the same std).
fn conv_params(dev: &Dev, cout: usize, cin: usize, k: usize) -> (T4, T1) {
    let s = 1.0 / ((cin * k * k) as f32).sqrt() / 3f32.sqrt();
    (randn4(dev, (cout, cin, k, k), s), randn1(dev, cout, s))
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

/// Median wall-clock and median process CPU milliseconds of `n` runs after 3 warm-up runs.
fn median_ms(mut f: impl FnMut() -> Result<(), OpsError>, n: usize) -> Result<Timing, OpsError> {
    for _ in 0..3 {
        f()?;
    }
    let mut wall = Vec::with_capacity(n);
    let mut cpu = Vec::with_capacity(n);
    for _ in 0..n {
        let c0 = process_cpu_ms();
        let t0 = Instant::now();
        f()?;
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

/// Medians of one workload.
struct Timing {
    wall_ms: f64,
    /// CPU time summed over threads; on a busy machine it is steadier than the wall clock.
    cpu_ms: Option<f64>,
}

/// The constant time channel `t` of a ConcatConv, shaped like one channel of `x`.
fn time_channel(dev: &Dev, b: usize, h: usize, w: usize, t: f32) -> T4 {
    let ones: T4 = dev.ones_like(&(b, 1, h, w));
    ones * t
}

/// (a) concat t -> conv3x3 (33 -> 32, pad 1) -> GroupNorm(8) -> ReLU -> MSE, B 32, 16x16.
fn concat_block(dev: &Dev) -> Result<Timing, OpsError> {
    let x = randn4(dev, (32, 32, 16, 16), 1.0);
    let y = randn4(dev, (32, 32, 16, 16), 1.0);
    let (w, b) = conv_params(dev, 32, 33, 3);
    let (gamma, beta) = (ones1(dev, 32), zeros1(dev, 32));
    let pad1 = Conv2dCfg {
        stride: 1,
        padding: 1,
        groups: 1,
    };
    median_ms(
        || {
            let tt = time_channel(dev, 32, 16, 16, 0.5);
            let inp = ops::concat_channels(tt, x.clone())?;
            let h = ops::conv2d(inp, w.leaky_trace(), Some(b.retaped::<Tp>()), pad1)?;
            let h = ops::group_norm(
                h,
                gamma.retaped::<Tp>(),
                beta.retaped::<Tp>(),
                GroupNormCfg {
                    groups: 8,
                    eps: 1e-5,
                    act: Activation::Relu,
                },
            )?;
            let loss = (h - y.clone()).square().mean::<Rank0, _>();
            let g = loss.backward();
            std::hint::black_box(g);
            Ok(())
        },
        30,
    )
}

/// (b) ODE-Net function: GN(32) -> ReLU -> ConcatConv 65->64 -> GN -> ReLU -> ConcatConv -> GN
/// on [128, 64, 6, 6], loss mean(out^2).
fn odenet_func(dev: &Dev) -> Result<Timing, OpsError> {
    let hx = randn4(dev, (128, 64, 6, 6), 1.0);
    let (w1, b1) = conv_params(dev, 64, 65, 3);
    let (w2, b2) = conv_params(dev, 64, 65, 3);
    let norms: Vec<(T1, T1)> = (0..3).map(|_| (ones1(dev, 64), zeros1(dev, 64))).collect();
    let pad1 = Conv2dCfg {
        stride: 1,
        padding: 1,
        groups: 1,
    };
    let gn = |act| GroupNormCfg {
        groups: 32,
        eps: 1e-5,
        act,
    };
    median_ms(
        || {
            let h = ops::group_norm(
                hx.clone(),
                norms[0].0.leaky_trace(),
                norms[0].1.retaped::<Tp>(),
                gn(Activation::Relu),
            )?;
            let tt = time_channel(dev, 128, 6, 6, 0.5).retaped::<Tp>();
            let h = ops::conv2d(
                ops::concat_channels(tt, h)?,
                w1.retaped::<Tp>(),
                Some(b1.retaped::<Tp>()),
                pad1,
            )?;
            let h = ops::group_norm(
                h,
                norms[1].0.retaped::<Tp>(),
                norms[1].1.retaped::<Tp>(),
                gn(Activation::Relu),
            )?;
            let tt = time_channel(dev, 128, 6, 6, 0.5).retaped::<Tp>();
            let h = ops::conv2d(
                ops::concat_channels(tt, h)?,
                w2.retaped::<Tp>(),
                Some(b2.retaped::<Tp>()),
                pad1,
            )?;
            let h = ops::group_norm(
                h,
                norms[2].0.retaped::<Tp>(),
                norms[2].1.retaped::<Tp>(),
                gn(Activation::Identity),
            )?;
            let g = h.square().mean::<Rank0, _>().backward();
            std::hint::black_box(g);
            Ok(())
        },
        30,
    )
}

/// (c) DDPM ResBlock 128 -> 128 on [32, 128, 32, 32] with temb [32, 512], loss mean(out^2).
fn ddpm_resblock(dev: &Dev) -> Result<Timing, OpsError> {
    let x = randn4(dev, (32, 128, 32, 32), 1.0);
    let temb: Tensor<(usize, usize), f32, Dev> = dev.sample_normal_like(&(32, 512));
    let (w1, b1) = conv_params(dev, 128, 128, 3);
    let (w2, b2) = conv_params(dev, 128, 128, 3);
    let s = 1.0 / (512f32).sqrt() / 3f32.sqrt();
    let wt: Tensor<(usize, usize), f32, Dev> = dev.sample_normal_like(&(128, 512));
    let wt = wt * s;
    let bt = randn1(dev, 128, s);
    let (g1, be1, g2, be2) = (
        ones1(dev, 128),
        zeros1(dev, 128),
        ones1(dev, 128),
        zeros1(dev, 128),
    );
    let pad1 = Conv2dCfg {
        stride: 1,
        padding: 1,
        groups: 1,
    };
    let gn = GroupNormCfg {
        groups: 32,
        eps: 1e-5,
        act: Activation::Silu,
    };
    median_ms(
        || {
            let h = ops::group_norm(x.clone(), g1.leaky_trace(), be1.retaped::<Tp>(), gn)?;
            let h = ops::conv2d(h, w1.retaped::<Tp>(), Some(b1.retaped::<Tp>()), pad1)?;
            let te = ops::unary(temb.clone(), Unary::Silu)?;
            let off = ops::linear(te, wt.retaped::<Tp>(), Some(bt.retaped::<Tp>()))?;
            let h = ops::add_channel_offset(h, off)?;
            let h = ops::group_norm(h, g2.retaped::<Tp>(), be2.retaped::<Tp>(), gn)?;
            let h = ops::conv2d(h, w2.retaped::<Tp>(), Some(b2.retaped::<Tp>()), pad1)?;
            let out = ops::add(h, x.retaped::<Tp>())?;
            let g = out.square().mean::<Rank0, _>().backward();
            std::hint::black_box(g);
            Ok(())
        },
        10,
    )
}

/// Extra (not a yardstick): the DDPM attention core at the 16x16 level, q, k, v [32, 256, 256],
/// loss mean(out^2); the CPU kernel, or dfdx's composed matmul + softmax with `composed`.
fn attention_core(dev: &Dev, composed: bool) -> Result<Timing, OpsError> {
    let s = (32, 256, 256);
    let q: Tensor<(usize, usize, usize), f32, Dev> = dev.sample_normal_like(&s);
    let k: Tensor<(usize, usize, usize), f32, Dev> = dev.sample_normal_like(&s);
    let v: Tensor<(usize, usize, usize), f32, Dev> = dev.sample_normal_like(&s);
    median_ms(
        || {
            let (qt, kt, vt) = (q.leaky_trace(), k.retaped::<Tp>(), v.retaped::<Tp>());
            let out = if composed {
                ops::composed::attention(qt, kt, vt)?
            } else {
                ops::attention(qt, kt, vt)?
            };
            let g = out.square().mean::<Rank0, _>().backward();
            std::hint::black_box(g);
            Ok(())
        },
        5,
    )
}

fn attention_fast(dev: &Dev) -> Result<Timing, OpsError> {
    attention_core(dev, false)
}

fn attention_composed(dev: &Dev) -> Result<Timing, OpsError> {
    attention_core(dev, true)
}

fn main() -> Result<(), OpsError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    // Other arguments select workloads by substring (all when none is given).
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if !args.iter().any(|a| a == "--no-keep-memory") {
        ops::keep_freed_memory();
    }
    let dev = Dev::seed_from_u64(0);
    type Workload = fn(&Dev) -> Result<Timing, OpsError>;
    let workloads: [(&str, Workload); 3] = [
        ("concat_conv_gn_relu_b32_c32_16x16", concat_block),
        ("odenet_func_b128_c64_6x6", odenet_func),
        ("ddpm_resblock_b32_c128_32x32", ddpm_resblock),
    ];
    // Run only when named.
    let extras: [(&str, Workload); 2] = [
        ("attention_b32_c256_n256", attention_fast),
        ("attention_composed_b32_c256_n256", attention_composed),
    ];
    let mut results = Vec::new();
    for (name, run) in workloads {
        if filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())) {
            results.push((name, run(&dev)?));
        }
    }
    for (name, run) in extras {
        if filters.iter().any(|f| name.contains(f.as_str())) {
            results.push((name, run(&dev)?));
        }
    }
    let threads = rayon::current_num_threads();
    if json {
        let mut body: Vec<String> = Vec::new();
        for (k, t) in &results {
            body.push(format!("\"{k}\": {:.3}", t.wall_ms));
            if let Some(c) = t.cpu_ms {
                body.push(format!("\"{k}_cpu\": {c:.3}"));
            }
        }
        println!("{{{}, \"threads\": {threads}}}", body.join(", "));
    } else {
        for (k, t) in &results {
            match t.cpu_ms {
                Some(c) => println!("{k}: {:.3} ms (cpu {c:.3} ms)", t.wall_ms),
                None => println!("{k}: {:.3} ms", t.wall_ms),
            }
        }
        println!("threads: {threads}");
    }
    Ok(())
}
