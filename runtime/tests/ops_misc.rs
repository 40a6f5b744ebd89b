//! Activations, pooling, upsampling, attention, channel offsets, residual sums, linear and channel
//! concatenation: forward against naive f64 loops, gradients against central finite differences,
//! and the CPU kernels against the composed versions.

mod ops_support;

use dfdx::prelude::*;
use ops_support::*;
use tdspec_runtime::ops::{self, composed, Unary};

type S4 = (usize, usize, usize, usize);

fn unary_ref(op: Unary, x: f64) -> f64 {
    match op {
        Unary::Relu => x.max(0.0),
        Unary::Silu => x * ops_support::sigmoid(x),
        Unary::Tanh => x.tanh(),
        Unary::Softplus => (1.0 + x.exp()).ln(),
    }
}

#[test]
fn unary_ops() {
    let s: S4 = (2, 3, 4, 5);
    let n = 120;
    for (i, op) in [Unary::Relu, Unary::Silu, Unary::Tanh, Unary::Softplus]
        .into_iter()
        .enumerate()
    {
        let xv: Vec<f32> = rand_vec(30 + i as u64, n).iter().map(|v| v * 4.0).collect();
        let r = rand_vec(40 + i as u64, n);
        let x64 = f64s(&xv);
        let f = |p: &[f64]| -> Vec<f64> { p.iter().map(|&v| unary_ref(op, v)).collect() };
        let dev = Dev::default();
        let mut results = Vec::new();
        for use_composed in [false, true] {
            let x = t4(&dev, &xv, s);
            let y = if use_composed {
                composed::unary(x.leaky_trace(), op)
            } else {
                ops::unary(x.leaky_trace(), op)
            }
            .unwrap();
            let yv = y.retaped::<NoneTape>().as_vec();
            assert_close(&format!("{op:?} forward"), &yv, &f(&x64), 1e-5);
            let g = backward_weighted(y, &r).get(&x).as_vec();
            assert_close(
                &format!("{op:?} grad"),
                &g,
                &fd(&x64, |p| weighted(&f(p), &r)),
                1e-4,
            );
            results.push((yv, g));
        }
        assert_close32("composed unary", &results[1].0, &results[0].0, 1e-5);
        assert_close32("composed unary grad", &results[1].1, &results[0].1, 1e-5);
    }
    // silu shorthand, any rank
    let dev = Dev::default();
    let x = t2(&dev, &[-1.0, 0.0, 2.0, 30.0], (2, 2));
    let y = ops::silu(x).unwrap().as_vec();
    assert_close("silu", &y, &[-0.268_941_42, 0.0, 1.761_594_2, 30.0], 1e-6);
}

/// Runs a one-input op (fast or composed), returning output and input gradient.
fn one_input<O: Shape>(
    s: S4,
    seed: u64,
    rlen: usize,
    op: impl Fn(Tensor<S4, f32, Dev, Tp>) -> Tensor<O, f32, Dev, Tp>,
) -> (Vec<f32>, Vec<f32>) {
    let dev = Dev::default();
    let x = t4(&dev, &rand_vec(seed, s.0 * s.1 * s.2 * s.3), s);
    let y = op(x.leaky_trace());
    let yv = y.retaped::<NoneTape>().as_vec();
    let g = backward_weighted(y, &rand_vec(seed + 1, rlen))
        .get(&x)
        .as_vec();
    (yv, g)
}

fn check_one_input(
    name: &str,
    s: S4,
    seed: u64,
    fast: (Vec<f32>, Vec<f32>),
    comp: (Vec<f32>, Vec<f32>),
    reference: impl Fn(&[f64]) -> Vec<f64>,
) {
    let x = f64s(&rand_vec(seed, s.0 * s.1 * s.2 * s.3));
    let want = reference(&x);
    let r = rand_vec(seed + 1, want.len());
    assert_close(&format!("{name} forward"), &fast.0, &want, 1e-5);
    assert_close(
        &format!("{name} grad"),
        &fast.1,
        &fd(&x, |p| weighted(&reference(p), &r)),
        1e-4,
    );
    assert_close32(&format!("{name} composed forward"), &comp.0, &fast.0, 1e-5);
    assert_close32(&format!("{name} composed grad"), &comp.1, &fast.1, 1e-5);
}

#[test]
fn avg_pool2d() {
    for (s, k, st, seed) in [
        ((2, 3, 4, 6), 2, 2, 50),
        ((1, 2, 5, 5), 3, 1, 51),
        ((2, 2, 7, 6), 3, 2, 52),
    ] {
        let (want, ho, wo) = avg_pool_ref(&f64s(&rand_vec(seed, s.0 * s.1 * s.2 * s.3)), s, k, st);
        let rlen = want.len();
        assert_eq!(rlen, s.0 * s.1 * ho * wo);
        let fast = one_input(s, seed, rlen, |x| ops::avg_pool2d(x, k, st).unwrap());
        let comp = one_input(s, seed, rlen, |x| composed::avg_pool2d(x, k, st).unwrap());
        check_one_input(
            &format!("avg_pool {s:?} k{k} s{st}"),
            s,
            seed,
            fast,
            comp,
            |x| avg_pool_ref(x, s, k, st).0,
        );
    }
}

#[test]
fn global_avg_pool() {
    let s = (2, 3, 3, 4);
    let reference =
        |x: &[f64]| -> Vec<f64> { x.chunks(12).map(|c| c.iter().sum::<f64>() / 12.0).collect() };
    let fast = one_input(s, 60, 6, |x| ops::global_avg_pool(x).unwrap());
    let comp = one_input(s, 60, 6, |x| composed::global_avg_pool(x).unwrap());
    check_one_input("global_avg_pool", s, 60, fast, comp, reference);
}

#[test]
fn upsample_nearest() {
    let s = (2, 2, 3, 4);
    for f in [1usize, 2, 3] {
        let n = 48 * f * f;
        let fast = one_input(s, 70, n, |x| ops::upsample_nearest(x, f).unwrap());
        let comp = one_input(s, 70, n, |x| composed::upsample_nearest(x, f).unwrap());
        check_one_input("upsample", s, 70, fast, comp, |x| upsample_ref(x, s, f));
    }
}

#[test]
fn attention() {
    let (b, c, n) = (2, 3, 5);
    let len = b * c * n;
    let qv = rand_vec(80, len);
    let kv: Vec<f32> = rand_vec(81, len).iter().map(|v| v * 2.0).collect();
    let vv = rand_vec(82, len);
    let r = rand_vec(83, len);
    let (q64, k64, v64) = (f64s(&qv), f64s(&kv), f64s(&vv));
    let want = attention_ref(&q64, &k64, &v64, b, c, n);
    let mut runs = Vec::new();
    for use_composed in [false, true] {
        let dev = Dev::default();
        let (q, k, v) = (
            t3(&dev, &qv, (b, c, n)),
            t3(&dev, &kv, (b, c, n)),
            t3(&dev, &vv, (b, c, n)),
        );
        let (qt, kt, vt) = (q.leaky_trace(), k.retaped::<Tp>(), v.retaped::<Tp>());
        let y = if use_composed {
            composed::attention(qt, kt, vt)
        } else {
            ops::attention(qt, kt, vt)
        }
        .unwrap();
        let yv = y.retaped::<NoneTape>().as_vec();
        let g = backward_weighted(y, &r);
        runs.push([
            yv,
            g.get(&q).as_vec(),
            g.get(&k).as_vec(),
            g.get(&v).as_vec(),
        ]);
    }
    let fast = &runs[0];
    assert_close("attention forward", &fast[0], &want, 1e-5);
    let fq = fd(&q64, |p| {
        weighted(&attention_ref(p, &k64, &v64, b, c, n), &r)
    });
    let fk = fd(&k64, |p| {
        weighted(&attention_ref(&q64, p, &v64, b, c, n), &r)
    });
    let fv = fd(&v64, |p| {
        weighted(&attention_ref(&q64, &k64, p, b, c, n), &r)
    });
    assert_close("attention grad q", &fast[1], &fq, 1e-4);
    assert_close("attention grad k", &fast[2], &fk, 1e-4);
    assert_close("attention grad v", &fast[3], &fv, 1e-4);
    for i in 0..4 {
        assert_close32("composed attention", &runs[1][i], &fast[i], 1e-5);
    }
    let dev = Dev::default();
    let bad = ops::attention(
        t3(&dev, &qv, (b, c, n)),
        t3(&dev, &qv, (b, n, c)),
        t3(&dev, &qv, (b, c, n)),
    );
    assert!(bad.is_err());
}

#[test]
fn channel_offset_and_add() {
    let s = (2, 3, 2, 2);
    let xv = rand_vec(90, 24);
    let ov = rand_vec(91, 6);
    let zv = rand_vec(92, 24);
    let r = rand_vec(93, 24);
    let mut runs = Vec::new();
    for use_composed in [false, true] {
        let dev = Dev::default();
        let (x, o, z) = (t4(&dev, &xv, s), t2(&dev, &ov, (2, 3)), t4(&dev, &zv, s));
        let (xt, ot, zt) = (x.leaky_trace(), o.retaped::<Tp>(), z.retaped::<Tp>());
        let y = if use_composed {
            composed::add(composed::add_channel_offset(xt, ot).unwrap(), zt)
        } else {
            ops::add(ops::add_channel_offset(xt, ot).unwrap(), zt)
        }
        .unwrap();
        let yv = y.retaped::<NoneTape>().as_vec();
        let g = backward_weighted(y, &r);
        runs.push([
            yv,
            g.get(&x).as_vec(),
            g.get(&o).as_vec(),
            g.get(&z).as_vec(),
        ]);
    }
    let want: Vec<f64> = (0..24)
        .map(|i| xv[i] as f64 + ov[i / 4] as f64 + zv[i] as f64)
        .collect();
    let fast = &runs[0];
    assert_close("offset forward", &fast[0], &want, 1e-6);
    assert_close("offset grad x", &fast[1], &f64s(&r), 1e-6);
    let go: Vec<f64> = r
        .chunks(4)
        .map(|c| c.iter().map(|&v| v as f64).sum())
        .collect();
    assert_close("offset grad offset", &fast[2], &go, 1e-5);
    assert_close("add grad", &fast[3], &f64s(&r), 1e-6);
    for i in 0..4 {
        assert_close32("composed offset/add", &runs[1][i], &fast[i], 1e-6);
    }
    let dev = Dev::default();
    assert!(ops::add_channel_offset(t4(&dev, &xv, s), t2(&dev, &ov, (3, 2))).is_err());
    assert!(ops::add(t4(&dev, &xv, s), t4(&dev, &xv, (2, 3, 4, 1))).is_err());
}

#[test]
fn linear_layer() {
    let (n, fin, fout) = (3, 4, 5);
    let xv = rand_vec(100, n * fin);
    let wv = rand_vec(101, fout * fin);
    let bv = rand_vec(102, fout);
    let r = rand_vec(103, n * fout);
    let dev = Dev::default();
    let (x, w, b) = (
        t2(&dev, &xv, (n, fin)),
        t2(&dev, &wv, (fout, fin)),
        t1(&dev, &bv),
    );
    let y = ops::linear(x.leaky_trace(), w.retaped::<Tp>(), Some(b.retaped::<Tp>())).unwrap();
    let (x64, w64, b64) = (f64s(&xv), f64s(&wv), f64s(&bv));
    let f = |x: &[f64], w: &[f64], b: &[f64]| linear_ref(x, w, Some(b), n, fin, fout);
    assert_close(
        "linear forward",
        &y.retaped::<NoneTape>().as_vec(),
        &f(&x64, &w64, &b64),
        1e-5,
    );
    let g = backward_weighted(y, &r);
    assert_close(
        "linear gx",
        &g.get(&x).as_vec(),
        &fd(&x64, |p| weighted(&f(p, &w64, &b64), &r)),
        1e-4,
    );
    assert_close(
        "linear gw",
        &g.get(&w).as_vec(),
        &fd(&w64, |p| weighted(&f(&x64, p, &b64), &r)),
        1e-4,
    );
    assert_close(
        "linear gb",
        &g.get(&b).as_vec(),
        &fd(&b64, |p| weighted(&f(&x64, &w64, p), &r)),
        1e-4,
    );
    // constant input, taped parameters, no bias
    let y = ops::linear(x.clone(), w.leaky_trace(), None).unwrap();
    let want = linear_ref(&x64, &w64, None, n, fin, fout);
    assert_close(
        "linear no bias",
        &y.retaped::<NoneTape>().as_vec(),
        &want,
        1e-5,
    );
    assert!(ops::linear(x.clone(), t2(&dev, &wv, (4, 5)), None).is_err());
    assert!(ops::linear(x, w, Some(t1(&dev, &bv[..4]))).is_err());
}

#[test]
fn concat_channels() {
    let dev = Dev::default();
    let av = rand_vec(110, 2 * 2 * 3);
    let bv = rand_vec(111, 2 * 2 * 2 * 3);
    let r = rand_vec(112, 2 * 3 * 2 * 3);
    let (a, b) = (t4(&dev, &av, (2, 1, 2, 3)), t4(&dev, &bv, (2, 2, 2, 3)));
    let y = ops::concat_channels(a.leaky_trace(), b.retaped::<Tp>()).unwrap();
    assert_eq!(*y.shape(), (2, 3, 2, 3));
    let yv = y.retaped::<NoneTape>().as_vec();
    let mut want = Vec::new();
    for bi in 0..2 {
        want.extend_from_slice(&av[bi * 6..(bi + 1) * 6]);
        want.extend_from_slice(&bv[bi * 12..(bi + 1) * 12]);
    }
    assert_close32("concat forward", &yv, &want, 0.0);
    let g = backward_weighted(y, &r);
    let (mut ga, mut gb) = (Vec::new(), Vec::new());
    for bi in 0..2 {
        ga.extend_from_slice(&r[bi * 18..bi * 18 + 6]);
        gb.extend_from_slice(&r[bi * 18 + 6..(bi + 1) * 18]);
    }
    assert_close32("concat grad a", &g.get(&a).as_vec(), &ga, 0.0);
    assert_close32("concat grad b", &g.get(&b).as_vec(), &gb, 0.0);
    // A constant second operand: the first still gets its gradient.
    let y = ops::concat_channels(a.leaky_trace(), b.clone()).unwrap();
    let g = backward_weighted(y, &r);
    assert_close32("concat grad a, b constant", &g.get(&a).as_vec(), &ga, 0.0);
    assert!(ops::concat_channels(a, t4(&dev, &bv, (2, 2, 3, 2))).is_err());
}

/// Multi-head attention from one `[B, 3C, H, W]` projection against f64 (q, k, v sliced per
/// head, [`attention_ref`] per head): the output and the projection's gradient (finite
/// differences), for one and for two heads; the composed op (dfdx slices) agrees.
#[test]
fn attention_from_one_projection() {
    let (b, c, h, w) = (2, 4, 2, 3);
    let n = h * w;
    let len = b * 3 * c * n;
    let xv: Vec<f32> = rand_vec(90, len).iter().map(|v| v * 1.5).collect();
    let r = rand_vec(91, b * c * n);
    let x64 = f64s(&xv);
    for heads in [1, 2] {
        let hd = c / heads;
        // Each head's q, k, v as `[B·heads, hd, N]`, then the reference.
        let reference = |x: &[f64]| {
            let part = |j: usize| -> Vec<f64> {
                let mut out = Vec::with_capacity(b * c * n);
                for bi in 0..b {
                    out.extend_from_slice(&x[(bi * 3 + j) * c * n..][..c * n]);
                }
                out
            };
            attention_ref(&part(0), &part(1), &part(2), b * heads, hd, n)
        };
        let want = reference(&x64);
        let grad = fd(&x64, |p| weighted(&reference(p), &r));
        let mut runs = Vec::new();
        for use_composed in [false, true] {
            let dev = Dev::default();
            let x = t4(&dev, &xv, (b, 3 * c, h, w));
            let y = if use_composed {
                composed::attention_qkv(x.leaky_trace(), heads)
            } else {
                ops::attention_qkv(x.leaky_trace(), heads)
            }
            .unwrap();
            assert_eq!(*y.shape(), (b, c, h, w));
            let yv = y.retaped::<NoneTape>().as_vec();
            let g = backward_weighted(y, &r);
            runs.push([yv, g.get(&x).as_vec()]);
        }
        assert_close(&format!("{heads} heads forward"), &runs[0][0], &want, 1e-5);
        assert_close(&format!("{heads} heads grad"), &runs[0][1], &grad, 1e-4);
        for (composed, fast) in runs[1].iter().zip(&runs[0]) {
            assert_close32("composed attention_qkv", composed, fast, 1e-5);
        }
    }
    let dev = Dev::default();
    assert!(ops::attention_qkv(t4(&dev, &xv[..b * 8 * n], (b, 8, h, w)), 1).is_err());
    assert!(ops::attention_qkv(t4(&dev, &xv, (b, 3 * c, h, w)), 3).is_err());
}

/// `h + c1 k1 + c2 k2` against dfdx's own scalar multiplies and adds in the same order: the
/// same bits, forward and in every gradient (each product is rounded before its add in both).
#[test]
fn scaled_sums_match_dfdx() {
    let dev = Dev::default();
    let s = (2, 3, 4, 5);
    let n = 2 * 3 * 4 * 5;
    let (hv, k1v, k2v, r) = (
        rand_vec(120, n),
        rand_vec(121, n),
        rand_vec(122, n),
        rand_vec(123, n),
    );
    let (c1, c2) = (0.37f32, -1.9f32);
    let mut runs = Vec::new();
    for ours in [true, false] {
        let (h, k1, k2) = (t4(&dev, &hv, s), t4(&dev, &k1v, s), t4(&dev, &k2v, s));
        let (ht, k1t, k2t) = (h.leaky_trace(), k1.retaped::<Tp>(), k2.retaped::<Tp>());
        let y = if ours {
            ops::axpys(ht, vec![(k1t, c1), (k2t, c2)]).unwrap()
        } else {
            (ht + k1t * c1) + k2t * c2
        };
        let yv = y.retaped::<NoneTape>().as_vec();
        let g = backward_weighted(y, &r);
        runs.push([
            yv,
            g.get(&h).as_vec(),
            g.get(&k1).as_vec(),
            g.get(&k2).as_vec(),
        ]);
    }
    for (i, (a, b)) in runs[0].iter().zip(&runs[1]).enumerate() {
        assert_eq!(a, b, "output/gradient {i}");
    }
    let bad = ops::axpys(t4(&dev, &hv, s), vec![(t4(&dev, &hv, (2, 3, 5, 4)), 1.0)]);
    assert!(bad.is_err());
}

/// The fused mean squared error against f64: the loss, and the exact gradient
/// `2 (p - t) / n` of the prediction (scaled by a weight on the loss), on sizes around the
/// parallel chunk.
#[test]
fn mse_loss_against_f64() {
    let dev = Dev::default();
    for (i, n) in [1usize, 7, 16_384, 40_000].into_iter().enumerate() {
        let (pv, tv) = (rand_vec(90 + i as u64, n), rand_vec(190 + i as u64, n));
        let want: f64 = pv
            .iter()
            .zip(&tv)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            / n as f64;
        let p = t1(&dev, &pv);
        let loss = ops::mse_loss(p.clone().leaky_traced(), t1(&dev, &tv)).unwrap();
        let got = loss.retaped::<NoneTape>().array() as f64;
        assert!(
            (got - want).abs() <= 1e-5 * want.max(1e-3),
            "n {n}: {got} vs {want}"
        );
        let g = (loss * 3.0).backward();
        let grad: Vec<f64> = pv
            .iter()
            .zip(&tv)
            .map(|(a, b)| 3.0 * 2.0 * (*a as f64 - *b as f64) / n as f64)
            .collect();
        assert_close(
            &format!("mse grad, n {n}"),
            &g.get(&p).as_vec(),
            &grad,
            1e-5,
        );
    }
    let bad = ops::mse_loss(t1(&dev, &[1.0, 2.0]), t1(&dev, &[1.0]));
    assert!(bad.is_err());
}
