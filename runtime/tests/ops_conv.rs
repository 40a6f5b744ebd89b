//! conv2d: forward against naive loops, gradients of input, weight and bias against central
//! finite differences of the f64 reference, and the fast CPU kernel against the composed version.

mod ops_support;

use dfdx::prelude::*;
use ops_support::*;
use tdspec_runtime::ops::{self, composed, Conv2dCfg, OpsError};

struct Grads {
    y: Vec<f32>,
    gx: Vec<f32>,
    gw: Vec<f32>,
    gb: Option<Vec<f32>>,
}

fn inputs(c: &ConvCase, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (ho, wo) = c.out_hw();
    (
        rand_vec(seed, c.b * c.cin * c.h * c.w),
        rand_vec(seed + 1, c.cout * (c.cin / c.groups) * c.k * c.k),
        rand_vec(seed + 2, c.cout),
        rand_vec(seed + 3, c.b * c.cout * ho * wo),
    )
}

fn cfg(c: &ConvCase) -> Conv2dCfg {
    Conv2dCfg {
        stride: c.stride,
        padding: c.pad,
        groups: c.groups,
    }
}

fn run(c: &ConvCase, seed: u64, use_composed: bool) -> Grads {
    let dev = Dev::default();
    let (xv, wv, bv, r) = inputs(c, seed);
    let x = t4(&dev, &xv, (c.b, c.cin, c.h, c.w));
    let w = t4(&dev, &wv, (c.cout, c.cin / c.groups, c.k, c.k));
    let b = t1(&dev, &bv);
    let bt = c.bias.then(|| b.retaped::<Tp>());
    let y = if use_composed {
        composed::conv2d(x.clone().leaky_traced(), w.retaped::<Tp>(), bt, cfg(c))
    } else {
        ops::conv2d(x.clone().leaky_traced(), w.retaped::<Tp>(), bt, cfg(c))
    }
    .unwrap();
    let yv = y.retaped::<NoneTape>().as_vec();
    let g = backward_weighted(y, &r);
    Grads {
        y: yv,
        gx: g.get(&x).as_vec(),
        gw: g.get(&w).as_vec(),
        gb: c.bias.then(|| g.get(&b).as_vec()),
    }
}

fn check_case(c: ConvCase, seed: u64) {
    let (xv, wv, bv, r) = inputs(&c, seed);
    let (x64, w64, b64) = (f64s(&xv), f64s(&wv), f64s(&bv));
    let bias = c.bias.then_some(&b64[..]);

    // forward without any tape
    let dev = Dev::default();
    let y = ops::conv2d(
        t4(&dev, &xv, (c.b, c.cin, c.h, c.w)),
        t4(&dev, &wv, (c.cout, c.cin / c.groups, c.k, c.k)),
        c.bias.then(|| t1(&dev, &bv)),
        cfg(&c),
    )
    .unwrap();
    let want = conv_ref(&c, &x64, &w64, bias);
    assert_close(&format!("{c:?} forward"), &y.as_vec(), &want, 1e-4);

    let fast = run(&c, seed, false);
    assert_close(&format!("{c:?} taped forward"), &fast.y, &want, 1e-4);
    let fdx = fd(&x64, |p| weighted(&conv_ref(&c, p, &w64, bias), &r));
    let fdw = fd(&w64, |p| weighted(&conv_ref(&c, &x64, p, bias), &r));
    assert_close(&format!("{c:?} grad x"), &fast.gx, &fdx, 1e-3);
    assert_close(&format!("{c:?} grad w"), &fast.gw, &fdw, 1e-3);
    if c.bias {
        let fdb = fd(&b64, |p| weighted(&conv_ref(&c, &x64, &w64, Some(p)), &r));
        assert_close(
            &format!("{c:?} grad b"),
            fast.gb.as_ref().unwrap(),
            &fdb,
            1e-3,
        );
    }

    let comp = run(&c, seed, true);
    assert_close32(&format!("{c:?} composed forward"), &comp.y, &fast.y, 1e-4);
    assert_close32(&format!("{c:?} composed grad x"), &comp.gx, &fast.gx, 1e-4);
    assert_close32(&format!("{c:?} composed grad w"), &comp.gw, &fast.gw, 1e-4);
    if c.bias {
        assert_close32(
            &format!("{c:?} composed grad b"),
            comp.gb.as_ref().unwrap(),
            fast.gb.as_ref().unwrap(),
            1e-4,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn case(
    b: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    bias: bool,
) -> ConvCase {
    ConvCase {
        b,
        cin,
        h,
        w,
        cout,
        k,
        stride,
        pad,
        groups,
        bias,
    }
}

#[test]
fn conv3x3_pad1() {
    check_case(case(2, 3, 5, 5, 4, 3, 1, 1, 1, true), 1);
}

#[test]
fn conv3x3_pad0_nonsquare_no_bias() {
    check_case(case(2, 2, 6, 5, 3, 3, 1, 0, 1, false), 2);
}

#[test]
fn conv3x3_stride2_groups2() {
    check_case(case(2, 4, 6, 6, 6, 3, 2, 1, 2, true), 3);
}

#[test]
fn conv4x4_stride2_pad1() {
    check_case(case(2, 3, 7, 7, 4, 4, 2, 1, 1, true), 4);
}

#[test]
fn conv4x4_stride2_pad0() {
    check_case(case(1, 2, 8, 8, 3, 4, 2, 0, 1, true), 5);
}

#[test]
fn conv1x1() {
    check_case(case(2, 3, 4, 4, 5, 1, 1, 0, 1, true), 6);
}

#[test]
fn conv1x1_depthwise_groups() {
    check_case(case(2, 4, 3, 5, 4, 1, 1, 0, 4, false), 7);
}

#[test]
fn conv1x1_stride2_pad1() {
    check_case(case(2, 2, 5, 5, 3, 1, 2, 1, 1, true), 8);
}

#[test]
fn conv_multi_image_chunks() {
    // small images and an odd batch: several images per GEMM chunk and a short last chunk
    check_case(case(9, 3, 4, 4, 4, 3, 1, 1, 1, true), 9);
    check_case(case(7, 2, 2, 3, 2, 1, 1, 0, 1, true), 10);
}

#[test]
fn conv_long_rows() {
    // output rows of 16+ positions take the row-copy window path on AVX-512 CPUs
    check_case(case(1, 2, 16, 17, 3, 3, 1, 1, 1, true), 12);
    check_case(case(1, 2, 33, 34, 4, 3, 2, 1, 2, true), 13);
}

#[test]
fn constant_input_gets_no_gradient_work() {
    let c = case(2, 3, 5, 5, 4, 3, 1, 1, 1, true);
    let (xv, wv, bv, r) = inputs(&c, 11);
    let dev = Dev::default();
    let x = t4(&dev, &xv, (2, 3, 5, 5));
    let w = t4(&dev, &wv, (4, 3, 3, 3));
    let b = t1(&dev, &bv);
    let y = ops::conv2d(
        x.clone(),
        w.clone().leaky_traced(),
        Some(b.retaped::<Tp>()),
        cfg(&c),
    )
    .unwrap();
    let g = backward_weighted(y, &r);
    let full = run(&c, 11, false);
    assert_close32("gw", &g.get(&w).as_vec(), &full.gw, 1e-6);
    assert_close32("gb", &g.get(&b).as_vec(), full.gb.as_ref().unwrap(), 1e-6);
}

#[test]
fn shape_errors_are_reported() {
    let dev = Dev::default();
    let x = t4(&dev, &[0.0; 2 * 3 * 4 * 4], (2, 3, 4, 4));
    let w = t4(&dev, &[0.0; 4 * 2 * 9], (4, 2, 3, 3));
    let e = ops::conv2d(x.clone(), w.clone(), None, Conv2dCfg::default()).unwrap_err();
    assert!(matches!(e, OpsError::Shape { .. }), "{e}");
    let w3 = t4(&dev, &[0.0; 4 * 3 * 9], (4, 3, 3, 3));
    let bad_bias = t1(&dev, &[0.0; 3]);
    assert!(ops::conv2d(x.clone(), w3.clone(), Some(bad_bias), Conv2dCfg::default()).is_err());
    let stride0 = Conv2dCfg {
        stride: 0,
        ..Default::default()
    };
    assert!(matches!(
        ops::conv2d(x.clone(), w3.clone(), None, stride0),
        Err(OpsError::Config { .. })
    ));
    let big = t4(&dev, &[0.0; 4 * 3 * 36], (4, 3, 6, 6));
    assert!(ops::conv2d(x, big, None, Conv2dCfg::default()).is_err());
}

/// Padding wider than the map agrees with the composed reference. (The index underflow this
/// guards against was found by the accounting fuzzer, whose seed 100 reproduces it in the
/// packed-run path that these small shapes do not reach.)
#[test]
fn conv_padding_wider_than_the_map() {
    check_case(case(2, 3, 2, 2, 4, 4, 1, 3, 1, true), 31);
    check_case(case(1, 2, 1, 3, 3, 5, 1, 4, 1, false), 32);
    check_case(case(2, 2, 3, 2, 2, 4, 2, 3, 1, true), 33);
}

/// The exact gradients of `sum(r * conv(x, w) + b)` in f64 (conv is linear in x and in w, so
/// the adjoint loops are the reference; no finite differences needed for wide layers).
fn conv_adjoint_ref(
    c: &ConvCase,
    x: &[f64],
    w: &[f64],
    r: &[f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (ho, wo) = c.out_hw();
    let (cg, og) = (c.cin / c.groups, c.cout / c.groups);
    let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; c.cout]);
    for bi in 0..c.b {
        for co in 0..c.cout {
            let g = co / og;
            for oy in 0..ho {
                for ox in 0..wo {
                    let go = r[((bi * c.cout + co) * ho + oy) * wo + ox] as f64;
                    gb[co] += go;
                    for ci in 0..cg {
                        for ky in 0..c.k {
                            for kx in 0..c.k {
                                let iy = (oy * c.stride + ky) as isize - c.pad as isize;
                                let ix = (ox * c.stride + kx) as isize - c.pad as isize;
                                if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize {
                                    continue;
                                }
                                let xi = ((bi * c.cin + g * cg + ci) * c.h + iy as usize) * c.w
                                    + ix as usize;
                                let wi = ((co * cg + ci) * c.k + ky) * c.k + kx;
                                gx[xi] += w[wi] * go;
                                gw[wi] += x[xi] * go;
                            }
                        }
                    }
                }
            }
        }
    }
    (gx, gw, gb)
}

/// Forward and all three gradients against the f64 references, for layers wide enough to take
/// the direct AVX-512 kernels (16 or more output channels per group) where the CPU has them.
fn check_wide(c: ConvCase, seed: u64) {
    let (xv, wv, bv, r) = inputs(&c, seed);
    let (x64, w64, b64) = (f64s(&xv), f64s(&wv), f64s(&bv));
    let want = conv_ref(&c, &x64, &w64, c.bias.then_some(&b64[..]));
    let fast = run(&c, seed, false);
    assert_close(&format!("{c:?} forward"), &fast.y, &want, 1e-4);
    let (gx, gw, gb) = conv_adjoint_ref(&c, &x64, &w64, &r);
    assert_close(&format!("{c:?} grad x"), &fast.gx, &gx, 1e-4);
    assert_close(&format!("{c:?} grad w"), &fast.gw, &gw, 1e-4);
    if c.bias {
        assert_close(
            &format!("{c:?} grad b"),
            fast.gb.as_ref().unwrap(),
            &gb,
            1e-4,
        );
    }
}

#[test]
fn wide_layers_agree_with_the_f64_reference() {
    // Sixteen channels, a partial 32-channel tile, two tiles, strides, kernel 4, groups,
    // no padding, padding wider than the map, 1x1, and the yardsticks' shapes (33 -> 32 at
    // 16 x 16, 65 -> 64 at 6 x 6) with chunks of several images and a short last chunk.
    let cases = [
        case(2, 5, 6, 7, 16, 3, 1, 1, 1, true),
        case(3, 17, 5, 5, 20, 3, 1, 1, 1, true),
        case(2, 8, 9, 9, 48, 3, 2, 1, 1, true),
        case(2, 6, 8, 8, 32, 4, 2, 1, 1, false),
        case(2, 4, 6, 6, 32, 3, 1, 1, 2, true),
        case(4, 3, 7, 7, 64, 3, 1, 0, 1, true),
        case(2, 3, 2, 2, 16, 4, 1, 3, 1, true),
        case(2, 16, 5, 5, 16, 1, 1, 0, 1, true),
        case(2, 18, 4, 4, 16, 4, 4, 0, 1, true),
        case(1, 33, 16, 16, 32, 3, 1, 1, 1, true),
        case(9, 65, 6, 6, 64, 3, 1, 1, 1, true),
    ];
    for (i, c) in cases.into_iter().enumerate() {
        check_wide(c, 40 + i as u64);
    }
}

/// ConcatConv without the concatenation: `conv2d_time` against the f64 convolution of the
/// concatenated input (forward, and the exact gradients of x, of all weights incl. the time
/// channel's, and of the bias). `c.cin` counts the time channel.
fn check_time(c: ConvCase, positional: bool, seed: u64) {
    let (xv, wv, bv, r) = inputs(&c, seed);
    let (hw, cx) = (c.h * c.w, c.cin - 1);
    let times: Vec<f32> = (0..c.b).map(|i| 0.25 + 0.5 * i as f32).collect();
    let plane: Vec<f32> = (0..hw)
        .map(|p| {
            if positional {
                (p as f32 * 0.37).sin()
            } else {
                1.0
            }
        })
        .collect();
    // The concatenated input, channel 0 the time channel.
    let mut cat = xv.clone();
    for bi in 0..c.b {
        for p in 0..hw {
            cat[bi * c.cin * hw + p] = times[bi] * plane[p];
        }
    }
    let x_only: Vec<f32> = (0..c.b)
        .flat_map(|bi| cat[(bi * c.cin + 1) * hw..(bi + 1) * c.cin * hw].to_vec())
        .collect();
    let (c64, w64, b64) = (f64s(&cat), f64s(&wv), f64s(&bv));
    let want = conv_ref(&c, &c64, &w64, c.bias.then_some(&b64[..]));
    let (gcat, gw, gb) = conv_adjoint_ref(&c, &c64, &w64, &r);
    let gx: Vec<f64> = (0..c.b)
        .flat_map(|bi| gcat[(bi * c.cin + 1) * hw..(bi + 1) * c.cin * hw].to_vec())
        .collect();

    let dev = Dev::default();
    let x = t4(&dev, &x_only, (c.b, cx, c.h, c.w));
    let w = t4(&dev, &wv, (c.cout, c.cin, c.k, c.k));
    let b = t1(&dev, &bv);
    let y = ops::conv2d_time(
        x.clone().leaky_traced(),
        &times,
        &plane,
        w.retaped::<Tp>(),
        c.bias.then(|| b.retaped::<Tp>()),
        cfg(&c),
    )
    .unwrap();
    let name = format!("{c:?} positional {positional}");
    assert_close(
        &format!("{name} forward"),
        &y.retaped::<NoneTape>().as_vec(),
        &want,
        1e-4,
    );
    let g = backward_weighted(y, &r);
    assert_close(&format!("{name} grad x"), &g.get(&x).as_vec(), &gx, 1e-4);
    assert_close(&format!("{name} grad w"), &g.get(&w).as_vec(), &gw, 1e-4);
    if c.bias {
        assert_close(&format!("{name} grad b"), &g.get(&b).as_vec(), &gb, 1e-4);
    }
}

#[test]
fn time_channel_convs_agree_with_the_concatenated_reference() {
    // Narrow (packed GEMM) and wide (direct) layers, padding 0 and 1, stride 2, kernel 4, 1x1,
    // constant and positional planes; the yardsticks' 33 -> 32 and 65 -> 64.
    let cases = [
        (case(2, 4, 5, 5, 3, 3, 1, 1, 1, true), false),
        (case(3, 5, 6, 7, 16, 3, 1, 1, 1, true), true),
        (case(2, 9, 8, 8, 20, 3, 2, 1, 1, false), false),
        (case(2, 3, 7, 7, 32, 4, 2, 1, 1, true), true),
        (case(2, 6, 5, 5, 16, 3, 1, 0, 1, true), true),
        (case(2, 4, 3, 3, 16, 1, 1, 0, 1, true), false),
        (case(2, 33, 16, 16, 32, 3, 1, 1, 1, true), false),
        (case(5, 65, 6, 6, 64, 3, 1, 1, 1, true), false),
    ];
    for (i, (c, positional)) in cases.into_iter().enumerate() {
        check_time(c, positional, 60 + i as u64);
    }
}

/// Throughput of whole conv layers (forward, input and weight gradients, bias) on the shapes
/// of the small DDPM and the DDPM ResBlock, on the default thread pool:
/// `cargo test --release -p tdspec-runtime --test ops_conv layer_throughput -- --ignored
/// --nocapture` (compare with the same layers in PyTorch).
#[test]
#[ignore]
fn layer_throughput() {
    let shapes = [
        (32, 32, 28, 64),
        (64, 64, 14, 64),
        (96, 32, 28, 64),
        (128, 64, 14, 64),
        (64, 64, 28, 64),
        (32, 1, 28, 64),
        (128, 128, 32, 4),
    ];
    let dev = Dev::default();
    for (cin, cout, hw, b) in shapes {
        let c = case(b, cin, hw, hw, cout, 3, 1, 1, 1, true);
        let (xv, wv, bv, r) = inputs(&c, 1);
        let x = t4(&dev, &xv, (b, cin, hw, hw));
        let w = t4(&dev, &wv, (cout, cin, 3, 3));
        let bias = t1(&dev, &bv);
        let rt = t4(&dev, &r, (b, cout, hw, hw));
        let step = || {
            let y = ops::conv2d(
                x.clone().leaky_traced(),
                w.retaped::<Tp>(),
                Some(bias.retaped::<Tp>()),
                cfg(&c),
            )
            .unwrap();
            std::hint::black_box((y * rt.clone()).sum::<Rank0, _>().backward());
        };
        for _ in 0..3 {
            step();
        }
        let t = std::time::Instant::now();
        for _ in 0..10 {
            step();
        }
        let dt = t.elapsed().as_secs_f64() / 10.0;
        let flop = 6.0 * (b * hw * hw * cin * cout * 9) as f64;
        println!(
            "{cin}->{cout} {hw}x{hw} b{b}: {:.2} ms, {:.1} GFLOP/s",
            dt * 1e3,
            flop / dt / 1e9
        );
    }
}

#[test]
fn few_output_channels_agree_with_the_f64_reference() {
    // Under 16 output channels per group at stride 1 (the lanes run over output positions):
    // 1, 3, 5 = 4 + 1, 7 = 4 + 2 + 1 and 15 = 8 + 4 + 2 + 1 channels, kernels 1, 3, 5, padding
    // 0 to 2, groups, and maps wide enough for several tiles (28 x 28: 840 extended positions).
    let cases = [
        case(2, 32, 28, 28, 1, 3, 1, 1, 1, true),
        case(3, 6, 9, 7, 3, 3, 1, 1, 1, true),
        case(2, 5, 8, 8, 5, 5, 1, 2, 1, false),
        case(2, 4, 6, 5, 7, 3, 1, 0, 1, true),
        case(1, 3, 11, 10, 15, 3, 1, 1, 1, true),
        case(2, 6, 5, 5, 6, 3, 1, 1, 2, true),
        case(2, 8, 6, 6, 3, 1, 1, 0, 1, true),
    ];
    for (i, c) in cases.into_iter().enumerate() {
        check_wide(c, 80 + i as u64);
    }
}

/// `group_norm_conv2d` (the CPU's fused op) against the ops it fuses run in turn
/// (`group_norm`, `conv2d` or `conv2d_time`, then `add_channel_offset` or `add`): the same
/// output and the same gradient for the input and every parameter and epilogue operand, for
/// each epilogue, with and without a time channel, strided and grouped; and epilogue operands
/// of the wrong shape are errors.
#[test]
fn fused_norm_conv_matches_the_ops_in_turn() {
    let dev = Dev::default();
    let (b, c, hw, cout) = (3, 4, 5, 6);
    let xv = rand_vec(300, b * c * hw * hw);
    let (gv, bv) = (rand_vec(301, c), rand_vec(302, c));
    let time = [0.2f32, 0.5, 0.9];
    let plane: Vec<f32> = (0..hw * hw).map(|p| 1.0 + 0.1 * p as f32).collect();
    let norm = ops::GroupNormCfg {
        groups: 2,
        eps: 1e-5,
        act: ops::Activation::Silu,
    };
    // (stride, groups, time channel, epilogue: 0 none, 1 offset, 2 residual)
    for (stride, groups, timed, epi) in [
        (1, 1, false, 0),
        (1, 1, false, 1),
        (1, 1, false, 2),
        (2, 2, false, 0),
        (1, 1, true, 1),
        (1, 1, true, 2),
    ] {
        let cfg = ops::Conv2dCfg {
            stride,
            padding: 1,
            groups,
        };
        let cin = if timed { c + 1 } else { c / groups };
        let wv = rand_vec(303, cout * cin * 9);
        let cb = rand_vec(304, cout);
        let ho = (hw + 2 - 3) / stride + 1;
        let ov = rand_vec(305, b * cout);
        let rv = rand_vec(306, b * cout * ho * ho);
        let weights = rand_vec(307, b * cout * ho * ho);
        let mut runs = Vec::new();
        for fused in [true, false] {
            let x = t4(&dev, &xv, (b, c, hw, hw));
            let (gamma, beta) = (t1(&dev, &gv), t1(&dev, &bv));
            let w = t4(&dev, &wv, (cout, cin, 3, 3));
            let bias = t1(&dev, &cb);
            let off = t2(&dev, &ov, (b, cout));
            let res = t4(&dev, &rv, (b, cout, ho, ho));
            let tc = timed.then_some(ops::ConvTime {
                time: &time,
                plane: &plane,
            });
            let (xt, gt, bt) = (x.leaky_trace(), gamma.retaped::<Tp>(), beta.retaped::<Tp>());
            let (wt, cbt) = (w.retaped::<Tp>(), Some(bias.retaped::<Tp>()));
            let y = if fused {
                let epilogue = match epi {
                    1 => ops::Epilogue::Offset(off.retaped::<Tp>()),
                    2 => ops::Epilogue::Residual(res.retaped::<Tp>()),
                    _ => ops::Epilogue::None,
                };
                ops::group_norm_conv2d(xt, gt, bt, norm, wt, cbt, cfg, tc, epilogue).unwrap()
            } else {
                let a = ops::group_norm(xt, gt, bt, norm).unwrap();
                let y = match tc {
                    Some(tc) => ops::conv2d_time(a, tc.time, tc.plane, wt, cbt, cfg),
                    None => ops::conv2d(a, wt, cbt, cfg),
                }
                .unwrap();
                match epi {
                    1 => ops::add_channel_offset(y, off.retaped::<Tp>()).unwrap(),
                    2 => ops::add(y, res.retaped::<Tp>()).unwrap(),
                    _ => y,
                }
            };
            let yv = y.retaped::<NoneTape>().as_vec();
            let mut g = backward_weighted(y, &weights);
            let mut all = vec![yv];
            all.push(g.get(&x).as_vec());
            for p in [&gamma, &beta, &bias] {
                all.push(g.get(p).as_vec());
            }
            all.push(g.get(&w).as_vec());
            if epi == 1 {
                g.get_or_alloc_mut(&off).unwrap();
                all.push(g.get(&off).as_vec());
            }
            if epi == 2 {
                all.push(g.get(&res).as_vec());
            }
            runs.push(all);
        }
        for (i, (f, u)) in runs[0].iter().zip(&runs[1]).enumerate() {
            let what = format!("stride {stride} groups {groups} time {timed} epilogue {epi}: {i}");
            assert_close32(&what, f, u, 1e-5);
        }
    }
    // Epilogue operands of the wrong shape.
    let bad = |epilogue| {
        let x = t4(&dev, &xv, (b, c, hw, hw));
        let w = t4(&dev, &rand_vec(308, cout * c * 9), (cout, c, 3, 3));
        let cfg = ops::Conv2dCfg {
            stride: 1,
            padding: 1,
            groups: 1,
        };
        let (gamma, beta) = (t1(&dev, &gv), t1(&dev, &bv));
        ops::group_norm_conv2d(x, gamma, beta, norm, w, None, cfg, None, epilogue).is_err()
    };
    assert!(bad(ops::Epilogue::Offset(t2(
        &dev,
        &rand_vec(309, b * c),
        (b, c)
    ))));
    let small = t4(&dev, &rand_vec(310, b * cout * 4 * 4), (b, cout, 4, 4));
    assert!(bad(ops::Epilogue::Residual(small)));
}
