//! Gradients through the graph executor against central finite differences: every parameter
//! (first, middle and last entry)
//! of small specs that use each kind of layer (ConcatConv, norms, injections, scale-shift,
//! attention, up/down-sampling, ODE blocks with fixed and adaptive solvers).

use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tdspec_compiler::ir::{ModelIr, ParamRole};
use tdspec_compiler::sema::check_source;
use tdspec_runtime::exec::{Exec, Value};
use tdspec_runtime::params::Params;

fn model(src: &str) -> ModelIr {
    check_source(src)
        .unwrap_or_else(|d| panic!("{d:#?}"))
        .remove(0)
}

/// loss = Σ out · r, in f64 from the f32 forward.
fn loss(m: &ModelIr, p: &Params<Cpu>, x: &[f32], t: &[f32], r: &[f32]) -> f64 {
    let dev = Cpu::default();
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    let b = t.len();
    let xt = dev.tensor_from_vec(x.to_vec(), (b, c, h, w));
    let mut ex = Exec::new(p, true);
    let (vals, _) = ex
        .run(&m.graph, &[m.output], Value::Image(xt), t, NoneTape)
        .expect("forward");
    let out = vals[m.output].as_ref().expect("out").to_vec();
    out.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum()
}

fn check(src: &str, b: usize, t: Vec<f32>) {
    let m = model(src);
    let dev = Cpu::default();
    let params = Params::init(&m, &dev, 3);
    let mut rng = StdRng::seed_from_u64(1);
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    let x: Vec<f32> = (0..b * c * h * w)
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let n_out = m.graph.nodes[m.output].shape.numel() * b;
    let r: Vec<f32> = (0..n_out).map(|_| rng.gen_range(-1.0..1.0)).collect();
    // Analytic gradients through the tape.
    let xt = dev.tensor_from_vec(x.clone(), (b, c, h, w));
    let mut ex = Exec::new(&params, true);
    let (vals, tape) = ex
        .run(
            &m.graph,
            &[m.output],
            Value::Image(xt),
            &t,
            OwnedTape::<f32, Cpu>::default(),
        )
        .expect("forward");
    drop(ex);
    let out = vals[m.output].as_ref().expect("out").clone();
    let rv = r.clone();
    let total = match out {
        Value::Image(o) => {
            let s = *o.shape();
            (o.put_tape(tape) * dev.tensor_from_vec(rv, s)).sum::<Rank0, _>()
        }
        Value::Vector(o) => {
            let s = *o.shape();
            (o.put_tape(tape) * dev.tensor_from_vec(rv, s)).sum::<Rank0, _>()
        }
        Value::Time(_) => panic!("time output"),
    };
    let mut grads = total.backward();
    for p in &params.list {
        grads.get_or_alloc_mut(&p.tensor).expect("alloc");
        let g = grads.get(&p.tensor).as_vec();
        // Fixed random features take no gradient (the optimizer leaves them too).
        if p.info.role == ParamRole::Frozen {
            assert!(g.iter().all(|v| *v == 0.0), "{}: a gradient", p.info.name);
            continue;
        }
        let n = p.info.numel();
        for k in [0, n / 2, n - 1] {
            let mut plus = params.clone();
            let mut minus = params.clone();
            let eps = 3e-3f32;
            let mut v = p.tensor.as_vec();
            let i = plus
                .list
                .iter()
                .position(|q| q.info.name == p.info.name)
                .expect("param");
            v[k] += eps;
            plus.list[i].tensor = dev.tensor_from_vec(v.clone(), (n,));
            v[k] -= 2.0 * eps;
            minus.list[i].tensor = dev.tensor_from_vec(v, (n,));
            let fd =
                (loss(&m, &plus, &x, &t, &r) - loss(&m, &minus, &x, &t, &r)) / (2.0 * eps as f64);
            let an = g[k] as f64;
            let tol = 2e-2 * fd.abs().max(an.abs()).max(1.0);
            assert!(
                (fd - an).abs() <= tol,
                "{}: d/d[{k}] analytic {an} vs finite difference {fd}",
                p.info.name
            );
        }
    }
}

#[test]
fn convs_norms_concat_time_and_heads() {
    check(
        "model a { input x: image[2, 6, 6]  time t: continuous, shared  norm = group(2)
            h = x | conv3(4, time = concat) | norm | tanh | conv(4, k = 4, stride = 2, pad = 1) | instance | silu
            g = h | conv3(4, time = concat(positional)) | batch | tanh | upsample | avgpool(2) | layer | softplus
            return g + h | avgpool | flatten | linear(3) }",
        3,
        vec![0.3; 3],
    );
}

/// Per-position layer norms (the permute to rows of C and back is on the tape). The last one
/// normalizes 3 channels: over 2 it outputs ±1 up to eps, a step no finite difference follows.
#[test]
fn layer_norm_over_each_positions_channels() {
    check(
        "model p { input x: image[2, 5, 3]  time t: step(100), per_sample
            embed e = sinusoidal(8) | linear(6)
            h = x | conv3(4) | layer(over = channels) | silu
            h = h + inject(e) | layer(over = channels, affine = false, eps = 1e-3) | tanh
            return h | conv1(3) | layer(over = channels) }",
        2,
        vec![10.0, 70.0],
    );
}

/// Fourier features of log t feed the injections; the output is divided by each sample's t.
#[test]
fn fourier_time_and_division_by_t() {
    check(
        "model f { input x: image[2, 4, 4]  time t: continuous(0.1, 10), per_sample  norm = group(2)
            embed e = fourier(8, scale = 2) | linear(6) | silu
            h = x | conv3(4) | norm | silu
            h = h + inject(e) | norm | conv1(3)
            return h | divide_by_time }",
        3,
        vec![0.2, 1.5, 7.0],
    );
}

#[test]
fn injections_scale_shift_and_attention() {
    check(
        "model b { input x: image[2, 4, 4]  input y: label[3]  time t: step(100), per_sample  norm = group(2)
            embed e = sinusoidal(8) | linear(6) | silu | linear(6) | class_embed(y)
            h = x | conv3(4) | norm | silu
            h = h + inject(e | silu) | norm | scale_shift(e) | silu
            h = h + inject(e, positional) | attention(heads = 2) | downsample
            h = h | downsample(pad = 0) | upsample
            g = h | norm | conv1(2)
            return concat(g, h) | conv1(2) }",
        2,
        vec![10.0, 70.0],
    );
}

#[test]
fn ode_blocks_backpropagate_through_the_solver() {
    for solver in [
        "euler(steps = 3)",
        "rk4(steps = 2)",
        "dopri5(rtol = 1e-4, atol = 1e-4)",
    ] {
        eprintln!("solver {solver}");
        check(
            &format!(
                "model o {{ input x: image[2, 4, 4]  time t: continuous, shared  norm = group(2)
                    block f(h) {{ h = h | norm | tanh | conv3(4, time = concat) \n return h | norm }}
                    h = x | conv3(4) | ode(f, t = [0, 1], solver = {solver})
                    return h | avgpool | flatten | linear(2) }}"
            ),
            2,
            vec![0.0; 2],
        );
    }
}

/// Output and every parameter gradient of a run with `fuse` (a norm and the activation that
/// alone reads it run as one op) or without.
fn run_grads(m: &ModelIr, params: &Params<Cpu>, x: &[f32], t: &[f32], fuse: bool) -> Vec<Vec<f32>> {
    let dev = Cpu::default();
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    let xt = dev.tensor_from_vec(x.to_vec(), (t.len(), c, h, w));
    let mut ex = Exec::new(params, true);
    ex.fuse = fuse;
    let (vals, tape) = ex
        .run(
            &m.graph,
            &[m.output],
            Value::Image(xt),
            t,
            OwnedTape::<f32, Cpu>::default(),
        )
        .expect("forward");
    drop(ex);
    let Some(Value::Image(o)) = vals[m.output].clone() else {
        panic!("an image output");
    };
    let out = o.as_vec();
    let mut grads = o.put_tape(tape).square().sum::<Rank0, _>().backward();
    let mut all = vec![out];
    for p in &params.list {
        grads.get_or_alloc_mut(&p.tensor).expect("alloc");
        all.push(grads.get(&p.tensor).as_vec());
    }
    all
}

/// Fusing norms with their activations, and group norms with the convolution that alone reads
/// them, changes no value: the reference denoiser and ODE-Net, a model with every norm kind
/// before relu and silu and a convolution, and one with norms straight into strided, grouped
/// and 1x1 convolutions (and a norm two nodes read), fused and unfused, agree to 1e-5 in the
/// output and in every parameter's gradient.
#[test]
fn fused_norm_activations_compute_the_unfused_values() {
    let specs = [
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../specs/small_ddpm_mnist.tds"
        ))
        .expect("spec"),
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../specs/small_odenet_mnist.tds"
        ))
        .expect("spec")
        .replace("task  classify(classes = 10)", "")
        .replace("| flatten | linear(10)", "| conv1(2)"),
        "model n { input x: image[2, 6, 6]  time t: continuous, per_sample  norm = group(2)
            h = x | conv3(4, time = concat) | norm | relu | conv3(4) | instance | silu
            h = h | conv3(4) | batch | relu | conv3(4) | layer | silu
            return h | conv3(4) | layer(over = channels) | relu | conv1(2) }"
            .to_string(),
        "model g { input x: image[2, 8, 8]  time t: continuous, per_sample  norm = group(2)
            h = x | conv3(4, time = concat) | norm | conv3(4, stride = 2, groups = 2)
            a = h | instance | silu
            h = a | conv1(4) | norm | relu | conv3(4, bias = false)
            return (h + a) | layer | conv1(2) }"
            .to_string(),
    ];
    for src in &specs {
        let m = model(src);
        let dev = Cpu::default();
        let params = Params::init(&m, &dev, 5);
        let mut rng = StdRng::seed_from_u64(2);
        let b = 3;
        let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
        let x: Vec<f32> = (0..b * c * h * w)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let t = vec![0.2, 0.5, 0.9];
        let fused = run_grads(&m, &params, &x, &t, true);
        let plain = run_grads(&m, &params, &x, &t, false);
        for (i, (a, b)) in fused.iter().zip(&plain).enumerate() {
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (u, v) in a.iter().zip(b) {
                assert!(
                    (u - v).abs() <= 1e-5 * scale,
                    "{}: value {i}: {u} vs {v}",
                    m.name
                );
            }
        }
    }
}
