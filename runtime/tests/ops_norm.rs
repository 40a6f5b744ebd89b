//! group_norm (with fused ReLU / SiLU) and batch_norm (training with running statistics, eval):
//! forward against naive f64 loops, gradients of input and affine parameters against central
//! finite differences, and the CPU kernels against the composed versions.

mod ops_support;

use dfdx::prelude::*;
use ops_support::*;
use tdspec_runtime::ops::{
    self, composed, Activation, BatchNormCfg, GroupNormCfg, OpsError, RunningStats,
};

type S4 = (usize, usize, usize, usize);

fn act_code(a: Activation) -> u8 {
    match a {
        Activation::Identity => 0,
        Activation::Relu => 1,
        Activation::Silu => 2,
    }
}

struct Out {
    y: Vec<f32>,
    gx: Vec<f32>,
    gg: Vec<f32>,
    gb: Vec<f32>,
}

fn gn_run(s: S4, cfg: GroupNormCfg, seed: u64, use_composed: bool) -> Out {
    let dev = Dev::default();
    let n = s.0 * s.1 * s.2 * s.3;
    let x = t4(&dev, &rand_vec(seed, n), s);
    let g: Vec<f32> = rand_vec(seed + 1, s.1).iter().map(|v| v + 1.0).collect();
    let g = t1(&dev, &g);
    let b = t1(&dev, &rand_vec(seed + 2, s.1));
    let (xt, gt, bt) = (x.leaky_trace(), g.retaped::<Tp>(), b.retaped::<Tp>());
    let y = if use_composed {
        composed::group_norm(xt, gt, bt, cfg)
    } else {
        ops::group_norm(xt, gt, bt, cfg)
    }
    .unwrap();
    let yv = y.retaped::<NoneTape>().as_vec();
    let grads = backward_weighted(y, &rand_vec(seed + 3, n));
    Out {
        y: yv,
        gx: grads.get(&x).as_vec(),
        gg: grads.get(&g).as_vec(),
        gb: grads.get(&b).as_vec(),
    }
}

fn gn_check(s: S4, groups: usize, act: Activation, seed: u64) {
    let cfg = GroupNormCfg {
        groups,
        eps: 1e-5,
        act,
    };
    let n = s.0 * s.1 * s.2 * s.3;
    let x = f64s(&rand_vec(seed, n));
    let g: Vec<f64> = rand_vec(seed + 1, s.1)
        .iter()
        .map(|&v| v as f64 + 1.0)
        .collect();
    let b = f64s(&rand_vec(seed + 2, s.1));
    let r = rand_vec(seed + 3, n);
    let a = act_code(act);
    let name = format!("gn {s:?} groups {groups} {act:?}");
    let fast = gn_run(s, cfg, seed, false);
    assert_close(
        &format!("{name} forward"),
        &fast.y,
        &group_norm_ref(&x, s, groups, &g, &b, 1e-5, a),
        1e-4,
    );
    let fdx = fd(&x, |p| {
        weighted(&group_norm_ref(p, s, groups, &g, &b, 1e-5, a), &r)
    });
    let fdg = fd(&g, |p| {
        weighted(&group_norm_ref(&x, s, groups, p, &b, 1e-5, a), &r)
    });
    let fdb = fd(&b, |p| {
        weighted(&group_norm_ref(&x, s, groups, &g, p, 1e-5, a), &r)
    });
    assert_close(&format!("{name} grad x"), &fast.gx, &fdx, 2e-3);
    assert_close(&format!("{name} grad gamma"), &fast.gg, &fdg, 1e-3);
    assert_close(&format!("{name} grad beta"), &fast.gb, &fdb, 1e-3);
    let comp = gn_run(s, cfg, seed, true);
    assert_close32(&format!("{name} composed y"), &comp.y, &fast.y, 1e-4);
    assert_close32(&format!("{name} composed gx"), &comp.gx, &fast.gx, 1e-3);
    assert_close32(&format!("{name} composed gg"), &comp.gg, &fast.gg, 1e-4);
    assert_close32(&format!("{name} composed gb"), &comp.gb, &fast.gb, 1e-4);
}

#[test]
fn group_norm_identity() {
    gn_check((2, 6, 3, 4), 3, Activation::Identity, 1);
}

#[test]
fn group_norm_relu() {
    gn_check((2, 6, 3, 4), 2, Activation::Relu, 2);
}

#[test]
fn group_norm_silu() {
    gn_check((2, 4, 5, 4), 2, Activation::Silu, 3);
}

#[test]
fn instance_norm_and_layer_norm() {
    gn_check((2, 4, 3, 3), 4, Activation::Silu, 4);
    gn_check((3, 3, 2, 5), 1, Activation::Relu, 5);
}

#[test]
fn group_norm_constant_input_gives_param_grads_only() {
    let dev = Dev::default();
    let s = (2, 4, 3, 3);
    let cfg = GroupNormCfg {
        groups: 2,
        eps: 1e-5,
        act: Activation::Silu,
    };
    let x = t4(&dev, &rand_vec(7, 72), s);
    let g = t1(&dev, &[1.0, 0.5, -0.3, 2.0]);
    let b = t1(&dev, &[0.1, 0.2, 0.3, 0.4]);
    let y = ops::group_norm(x.clone(), g.leaky_trace(), b.retaped::<Tp>(), cfg).unwrap();
    let r = rand_vec(8, 72);
    let grads = backward_weighted(y, &r);
    let x64 = f64s(&x.as_vec());
    let b64 = f64s(&b.as_vec());
    let fdg = fd(&f64s(&g.as_vec()), |p| {
        weighted(&group_norm_ref(&x64, s, 2, p, &b64, 1e-5, 2), &r)
    });
    assert_close("gamma", &grads.get(&g).as_vec(), &fdg, 1e-3);
}

fn bn_ref_train(x: &[f64], s: S4, g: &[f64], b: &[f64]) -> Vec<f64> {
    let (mean, var) = channel_stats_ref(x, s);
    channel_norm_ref(x, s, &mean, &var, g, b, 1e-5)
}

struct BnOut {
    out: Out,
    mean: Vec<f32>,
    var: Vec<f32>,
}

fn bn_run(s: S4, seed: u64, train: bool, use_composed: bool) -> BnOut {
    let dev = Dev::default();
    let n = s.0 * s.1 * s.2 * s.3;
    let x = t4(&dev, &rand_vec(seed, n), s);
    let g: Vec<f32> = rand_vec(seed + 1, s.1).iter().map(|v| v + 1.0).collect();
    let g = t1(&dev, &g);
    let b = t1(&dev, &rand_vec(seed + 2, s.1));
    let rm = rand_vec(seed + 4, s.1);
    let rv: Vec<f32> = rand_vec(seed + 5, s.1).iter().map(|v| v + 1.5).collect();
    let running = RunningStats {
        mean: t1(&dev, &rm),
        var: t1(&dev, &rv),
    };
    let cfg = BatchNormCfg::default();
    let (xt, gt, bt) = (x.leaky_trace(), g.retaped::<Tp>(), b.retaped::<Tp>());
    let (y, new) = match (train, use_composed) {
        (true, false) => ops::batch_norm_train(xt, gt, bt, &running, cfg).unwrap(),
        (true, true) => composed::batch_norm_train(xt, gt, bt, &running, cfg).unwrap(),
        (false, false) => (
            ops::batch_norm_eval(xt, gt, bt, &running, cfg).unwrap(),
            running.clone(),
        ),
        (false, true) => (
            composed::batch_norm_eval(xt, gt, bt, &running, cfg).unwrap(),
            running.clone(),
        ),
    };
    let yv = y.retaped::<NoneTape>().as_vec();
    let grads = backward_weighted(y, &rand_vec(seed + 3, n));
    BnOut {
        out: Out {
            y: yv,
            gx: grads.get(&x).as_vec(),
            gg: grads.get(&g).as_vec(),
            gb: grads.get(&b).as_vec(),
        },
        mean: new.mean.as_vec(),
        var: new.var.as_vec(),
    }
}

#[test]
fn batch_norm_train_matches_reference() {
    let s = (3, 4, 3, 2);
    let seed = 11;
    let n = s.0 * s.1 * s.2 * s.3;
    let x = f64s(&rand_vec(seed, n));
    let g: Vec<f64> = rand_vec(seed + 1, s.1)
        .iter()
        .map(|&v| v as f64 + 1.0)
        .collect();
    let b = f64s(&rand_vec(seed + 2, s.1));
    let r = rand_vec(seed + 3, n);
    let fast = bn_run(s, seed, true, false);
    assert_close(
        "bn forward",
        &fast.out.y,
        &bn_ref_train(&x, s, &g, &b),
        1e-4,
    );
    // running statistics: momentum 0.1, unbiased variance
    let (mean, var) = channel_stats_ref(&x, s);
    let cnt = (s.0 * s.2 * s.3) as f64;
    let rm = f64s(&rand_vec(seed + 4, s.1));
    let rv: Vec<f64> = rand_vec(seed + 5, s.1)
        .iter()
        .map(|&v| v as f64 + 1.5)
        .collect();
    let want_m: Vec<f64> = (0..s.1).map(|c| 0.9 * rm[c] + 0.1 * mean[c]).collect();
    let want_v: Vec<f64> = (0..s.1)
        .map(|c| 0.9 * rv[c] + 0.1 * var[c] * cnt / (cnt - 1.0))
        .collect();
    assert_close("running mean", &fast.mean, &want_m, 1e-5);
    assert_close("running var", &fast.var, &want_v, 1e-5);
    let fdx = fd(&x, |p| weighted(&bn_ref_train(p, s, &g, &b), &r));
    let fdg = fd(&g, |p| weighted(&bn_ref_train(&x, s, p, &b), &r));
    let fdb = fd(&b, |p| weighted(&bn_ref_train(&x, s, &g, p), &r));
    assert_close("bn grad x", &fast.out.gx, &fdx, 2e-3);
    assert_close("bn grad gamma", &fast.out.gg, &fdg, 1e-3);
    assert_close("bn grad beta", &fast.out.gb, &fdb, 1e-3);
    let comp = bn_run(s, seed, true, true);
    assert_close32("composed y", &comp.out.y, &fast.out.y, 1e-4);
    assert_close32("composed gx", &comp.out.gx, &fast.out.gx, 1e-3);
    assert_close32("composed gg", &comp.out.gg, &fast.out.gg, 1e-4);
    assert_close32("composed gb", &comp.out.gb, &fast.out.gb, 1e-4);
    assert_close32("composed mean", &comp.mean, &fast.mean, 1e-5);
    assert_close32("composed var", &comp.var, &fast.var, 1e-5);
}

#[test]
fn batch_norm_eval_matches_reference() {
    let s = (2, 3, 2, 3);
    let seed = 21;
    let n = s.0 * s.1 * s.2 * s.3;
    let x = f64s(&rand_vec(seed, n));
    let g: Vec<f64> = rand_vec(seed + 1, s.1)
        .iter()
        .map(|&v| v as f64 + 1.0)
        .collect();
    let b = f64s(&rand_vec(seed + 2, s.1));
    let r = rand_vec(seed + 3, n);
    let rm = f64s(&rand_vec(seed + 4, s.1));
    let rv: Vec<f64> = rand_vec(seed + 5, s.1)
        .iter()
        .map(|&v| v as f64 + 1.5)
        .collect();
    let f = |x: &[f64], g: &[f64], b: &[f64]| channel_norm_ref(x, s, &rm, &rv, g, b, 1e-5);
    let fast = bn_run(s, seed, false, false);
    assert_close("eval forward", &fast.out.y, &f(&x, &g, &b), 1e-4);
    assert_close(
        "eval gx",
        &fast.out.gx,
        &fd(&x, |p| weighted(&f(p, &g, &b), &r)),
        1e-3,
    );
    assert_close(
        "eval gg",
        &fast.out.gg,
        &fd(&g, |p| weighted(&f(&x, p, &b), &r)),
        1e-3,
    );
    assert_close(
        "eval gb",
        &fast.out.gb,
        &fd(&b, |p| weighted(&f(&x, &g, p), &r)),
        1e-3,
    );
    let comp = bn_run(s, seed, false, true);
    assert_close32("composed eval y", &comp.out.y, &fast.out.y, 1e-4);
    assert_close32("composed eval gx", &comp.out.gx, &fast.out.gx, 1e-4);
    assert_close32("composed eval gg", &comp.out.gg, &fast.out.gg, 1e-4);
}

#[test]
fn norm_errors_are_reported() {
    let dev = Dev::default();
    let x = t4(&dev, &[0.0; 2 * 6 * 4], (2, 6, 2, 2));
    let g = t1(&dev, &[1.0; 6]);
    let b = t1(&dev, &[0.0; 6]);
    let cfg = GroupNormCfg {
        groups: 4,
        eps: 1e-5,
        act: Activation::Identity,
    };
    assert!(matches!(
        ops::group_norm(x.clone(), g.clone(), b.clone(), cfg),
        Err(OpsError::Config { .. })
    ));
    let short = t1(&dev, &[1.0; 5]);
    let cfg3 = GroupNormCfg { groups: 3, ..cfg };
    assert!(matches!(
        ops::group_norm(x.clone(), short, b.clone(), cfg3),
        Err(OpsError::Shape { .. })
    ));
    let running = RunningStats {
        mean: t1(&dev, &[0.0; 6]),
        var: t1(&dev, &[1.0; 6]),
    };
    let one = t4(&dev, &[1.0; 6], (1, 6, 1, 1));
    assert!(ops::batch_norm_train(one, g, b, &running, BatchNormCfg::default()).is_err());
}
