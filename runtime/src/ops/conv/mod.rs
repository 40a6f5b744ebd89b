//! 2-D convolution on the CPU: NCHW input, `[Cout, Cin/groups, k, k]` weight and optional bias
//! in, NCHW output out, with the backward pass (input, weight and bias gradients) recorded on the
//! tape. Images are processed in chunks on the rayon pool; each chunk is lowered with im2col (or
//! read in place for 1x1 stride-1 kernels) and multiplied with the `gemm` crate, or its windows
//! are read straight into the AVX-512 GEMM's panels. [`geom`] validates the shapes; `window`
//! turns kernel windows into GEMM operands; this module runs the passes.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, Merge, PutTape, Tape};
use gemm::Parallelism;
use rayon::prelude::*;

mod direct;
mod few;
pub(super) mod geom;
mod time;
mod window;

use super::gemm512;
use super::math::{fold_chunks, sgemm, Lhs, Mat, Rhs};
use super::tape::{merge_tapes, output, put_grad, recycled, split, take_grad, Data};
use super::types::{shape_err, Conv2dCfg, OpsError, Tensor1, Tensor4};
use geom::ConvGeom;
use window::{col2im, im2col, ConvView, Windows};

/// Scratch buffers of one worker (borrowed from a per-thread pool, not zeroed).
struct Scratch<'a> {
    cols: &'a mut [f32],
    tmp: &'a mut [f32],
}

thread_local! {
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with this thread's scratch buffers sized for `nb` images (`cols` only when needed).
/// `f` must not start rayon work that could run another conv on this thread.
fn with_scratch<R>(g: &ConvGeom, nb: usize, cols: bool, f: impl FnOnce(Scratch<'_>) -> R) -> R {
    let n = nb * g.howo();
    let (nc, nt) = (if cols { g.kk() * n } else { 0 }, g.og() * n);
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let (c, t) = &mut *bufs;
            if c.len() < nc {
                c.resize(nc, 0.0);
            }
            if t.len() < nt {
                t.resize(nt, 0.0);
            }
            f(Scratch {
                cols: &mut c[..nc],
                tmp: &mut t[..nt],
            })
        }
        // Re-entered on this thread (work stealing): use fresh buffers.
        Err(_) => f(Scratch {
            cols: &mut vec![0.0; nc],
            tmp: &mut vec![0.0; nt],
        }),
    })
}

/// Writes `tmp [og, nbc * howo]` (group `grp` of a chunk) into the chunk's NCHW output rows,
/// adding the bias.
fn scatter_out(
    g: &ConvGeom,
    tmp: &[f32],
    grp: usize,
    nbc: usize,
    bias: Option<&[f32]>,
    ychunk: &mut [f32],
    accumulate: bool,
) {
    let (howo, og) = (g.howo(), g.og());
    let n = nbc * howo;
    for bi in 0..nbc {
        for o in 0..og {
            let co = grp * og + o;
            let dst = &mut ychunk[(bi * g.cout + co) * howo..][..howo];
            let src = &tmp[o * n + bi * howo..][..howo];
            let bv = bias.map_or(0.0, |b| b[co]);
            if accumulate {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s + bv;
                }
            } else {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s + bv;
                }
            }
        }
    }
}

/// Forward convolution: `y = conv(x, w) + b`, all row-major NCHW. Every path writes every
/// output (none reads `y` when not accumulating), so the buffer is not zeroed first.
pub(crate) fn forward(g: &ConvGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = recycled(g.b * g.cout * g.howo());
    forward_into(g, x, w, bias, &mut y, false);
    y
}

/// Forward convolution into `y`: `y = (accumulate ? y : 0) + conv(x, w) + b`.
fn forward_into(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    accumulate: bool,
) {
    let (howo, hw, og, kk) = (g.howo(), g.hw(), g.og(), g.kk());
    if y.is_empty() {
        return;
    }
    if direct::usable(g) {
        return direct::forward(g, x, w, bias, y, accumulate);
    }
    if few::usable(g) {
        return few::forward(g, x, w, bias, y, accumulate);
    }
    let nb = g.chunk();
    let fast = g.implicit();
    y.par_chunks_mut(nb * g.cout * howo)
        .enumerate()
        .for_each(|(ci, ychunk)| {
            with_scratch(g, nb, !fast, |sc| {
                let b0 = ci * nb;
                let nbc = ychunk.len() / (g.cout * howo);
                let n = nbc * howo;
                let xs = &x[b0 * g.cin * hw..][..nbc * g.cin * hw];
                let win = (fast && g.table_windows()).then(|| Windows::new(g, nbc, xs));
                for grp in 0..g.groups {
                    let c0 = grp * g.cg();
                    let view = ConvView {
                        g,
                        x: win.as_ref().map_or(xs, |w| &w.xpad),
                        tab: win.as_ref().map_or(&[], |w| &w.tab),
                        plane: win.as_ref().map_or(0, |w| w.plane),
                        n,
                        c0,
                        lhs: false,
                    };
                    let direct = g.pointwise() && nbc == 1;
                    if !fast && !direct {
                        for bi in 0..nbc {
                            im2col(
                                g,
                                &xs[bi * g.cin * hw..][..g.cin * hw],
                                c0,
                                sc.cols,
                                n,
                                bi * howo,
                            );
                        }
                    }
                    let cols = if direct {
                        Mat::rows(&xs[c0 * hw..], hw)
                    } else {
                        Mat::rows(sc.cols, n)
                    };
                    let wg = Mat::rows(&w[grp * og * kk..], kk);
                    let run = |dst: &mut [f32], ld: usize, acc: bool| {
                        if fast {
                            gemm512::gemm(og, n, kk, &Lhs(wg), &view, dst, ld, acc);
                        } else {
                            sgemm(og, n, kk, wg, cols, dst, ld, acc, Parallelism::None);
                        }
                    };
                    if nbc == 1 {
                        let dst = &mut ychunk[grp * og * howo..][..og * howo];
                        if let (Some(bias), false) = (bias, accumulate) {
                            for (o, row) in dst.chunks_exact_mut(howo).enumerate() {
                                row.fill(bias[grp * og + o]);
                            }
                        } else if let Some(bias) = bias {
                            for (o, row) in dst.chunks_exact_mut(howo).enumerate() {
                                row.iter_mut().for_each(|v| *v += bias[grp * og + o]);
                            }
                        }
                        run(dst, howo, accumulate || bias.is_some());
                    } else {
                        run(&mut sc.tmp[..og * n], n, false);
                        scatter_out(g, sc.tmp, grp, nbc, bias, ychunk, accumulate);
                    }
                }
            })
        });
}

/// Copies the output-gradient rows of group `grp` of a chunk into `tmp` as `[og, nbc * howo]`.
fn gather_go(g: &ConvGeom, gochunk: &[f32], grp: usize, nbc: usize, tmp: &mut [f32]) {
    let (howo, og) = (g.howo(), g.og());
    let n = nbc * howo;
    for bi in 0..nbc {
        for o in 0..og {
            let co = grp * og + o;
            tmp[o * n + bi * howo..][..howo]
                .copy_from_slice(&gochunk[(bi * g.cout + co) * howo..][..howo]);
        }
    }
}

/// Accumulates the weight gradient `gw += go * im2col(x)^T` into `gw`.
pub(crate) fn backward_weight(g: &ConvGeom, x: &[f32], go: &[f32], gw: &mut [f32]) {
    let (howo, hw, og, kk) = (g.howo(), g.hw(), g.og(), g.kk());
    if go.is_empty() {
        return;
    }
    if direct::usable(g) {
        return direct::backward_weight(g, x, go, gw);
    }
    if few::usable(g) {
        return few::backward_weight(g, x, go, gw);
    }
    if g.implicit() {
        backward_weight_fast(g, x, go, gw);
        return;
    }
    let nb = g.chunk();
    let partial = fold_chunks(go, nb * g.cout * howo, gw.len(), |acc, ci, gochunk| {
        with_scratch(g, nb, true, |sc| {
            let b0 = ci * nb;
            let nbc = gochunk.len() / (g.cout * howo);
            let n = nbc * howo;
            for grp in 0..g.groups {
                let c0 = grp * g.cg();
                let direct = g.pointwise() && nbc == 1;
                if !direct {
                    for bi in 0..nbc {
                        let img = &x[(b0 + bi) * g.cin * hw..][..g.cin * hw];
                        im2col(g, img, c0, sc.cols, n, bi * howo);
                    }
                }
                let cols_t = if direct {
                    Mat::rows_t(&x[b0 * g.cin * hw + c0 * hw..], hw)
                } else {
                    Mat::rows_t(sc.cols, n)
                };
                let gov = if nbc == 1 {
                    Mat::rows(&gochunk[grp * og * howo..], howo)
                } else {
                    gather_go(g, gochunk, grp, nbc, sc.tmp);
                    Mat::rows(sc.tmp, n)
                };
                let dst = &mut acc[grp * og * kk..][..og * kk];
                sgemm(og, kk, n, gov, cols_t, dst, kk, true, Parallelism::None);
            }
        });
    });
    if let Some(p) = partial {
        for (d, s) in gw.iter_mut().zip(&p) {
            *d += s;
        }
    }
}

/// [`backward_weight`] on the AVX-512 path: `gw^T = cols * go^T` with the windows read while
/// packing, accumulated per worker in `[groups, kk, og]` and transposed once at the end.
fn backward_weight_fast(g: &ConvGeom, x: &[f32], go: &[f32], gw: &mut [f32]) {
    let (howo, hw, og, kk, cg) = (g.howo(), g.hw(), g.og(), g.kk(), g.cg());
    let nb = g.chunk();
    let partial = fold_chunks(go, nb * g.cout * howo, gw.len(), |acc, ci, gochunk| {
        with_scratch(g, nb, false, |sc| {
            let tmp = sc.tmp;
            let b0 = ci * nb;
            let nbc = gochunk.len() / (g.cout * howo);
            let n = nbc * howo;
            let xs = &x[b0 * g.cin * hw..][..nbc * g.cin * hw];
            let win = g.table_windows().then(|| Windows::new(g, nbc, xs));
            for grp in 0..g.groups {
                let view = ConvView {
                    g,
                    x: win.as_ref().map_or(xs, |w| &w.xpad),
                    tab: win.as_ref().map_or(&[], |w| &w.tab),
                    plane: win.as_ref().map_or(0, |w| w.plane),
                    n,
                    c0: grp * cg,
                    lhs: true,
                };
                let got = if nbc == 1 {
                    Rhs(Mat {
                        data: &gochunk[grp * og * howo..][..og * howo],
                        rs: 1,
                        cs: howo,
                    })
                } else {
                    gather_go(g, gochunk, grp, nbc, tmp);
                    Rhs(Mat {
                        data: &tmp[..og * n],
                        rs: 1,
                        cs: n,
                    })
                };
                let dst = &mut acc[grp * kk * og..][..kk * og];
                gemm512::gemm(kk, og, n, &view, &got, dst, og, true);
            }
        });
    });
    if let Some(p) = partial {
        for grp in 0..g.groups {
            for o in 0..og {
                let row = &mut gw[(grp * og + o) * kk..][..kk];
                for (kidx, d) in row.iter_mut().enumerate() {
                    *d += p[grp * kk * og + kidx * og + o];
                }
            }
        }
    }
}

/// Accumulates the input gradient `gx += col2im(w^T * go)` into `gx`.
pub(crate) fn backward_input(g: &ConvGeom, w: &[f32], go: &[f32], gx: &mut [f32]) {
    backward_input_into(g, w, go, gx, false)
}

/// The input gradient `col2im(w^T * go)` written over `gx` (whatever it held) when
/// `overwrite`, else accumulated into it.
pub(crate) fn backward_input_into(
    g: &ConvGeom,
    w: &[f32],
    go: &[f32],
    gx: &mut [f32],
    overwrite: bool,
) {
    let (howo, hw, og, kk) = (g.howo(), g.hw(), g.og(), g.kk());
    if overwrite && !(g.stride == 1 && g.pad < g.k && !go.is_empty()) {
        gx.par_chunks_mut(1 << 14).for_each(|c| c.fill(0.0));
    }
    if go.is_empty() || gx.is_empty() {
        return;
    }
    if g.stride == 1 && g.pad < g.k {
        return backward_input_transposed(g, w, go, gx, !overwrite);
    }
    let nb = g.chunk();
    gx.par_chunks_mut(nb * g.cin * hw)
        .zip(go.par_chunks(nb * g.cout * howo))
        .for_each(|(gxchunk, gochunk)| {
            with_scratch(g, nb, true, |sc| {
                let nbc = gochunk.len() / (g.cout * howo);
                let n = nbc * howo;
                for grp in 0..g.groups {
                    let c0 = grp * g.cg();
                    let gov = if nbc == 1 {
                        Mat::rows(&gochunk[grp * og * howo..], howo)
                    } else {
                        gather_go(g, gochunk, grp, nbc, sc.tmp);
                        Mat::rows(sc.tmp, n)
                    };
                    let wt = Mat::rows_t(&w[grp * og * kk..], kk);
                    if g.pointwise() && nbc == 1 {
                        let dst = &mut gxchunk[c0 * hw..][..g.cg() * hw];
                        sgemm(kk, n, og, wt, gov, dst, hw, true, Parallelism::None);
                        continue;
                    }
                    sgemm(kk, n, og, wt, gov, sc.cols, n, false, Parallelism::None);
                    for bi in 0..nbc {
                        let img = &mut gxchunk[bi * g.cin * hw..][..g.cin * hw];
                        col2im(g, sc.cols, n, bi * howo, c0, img);
                    }
                }
            })
        });
}

/// [`backward_input`] for stride 1: the input gradient of a stride-1 convolution is the
/// stride-1 convolution of the output gradient with the flipped, channel-transposed kernel and
/// padding `k - 1 - pad`, so it runs through the forward path (no col2im scatter).
fn backward_input_transposed(g: &ConvGeom, w: &[f32], go: &[f32], gx: &mut [f32], acc: bool) {
    let (k, og, cg) = (g.k, g.og(), g.cg());
    let mut wt = vec![0.0f32; w.len()];
    for grp in 0..g.groups {
        for o in 0..og {
            for c in 0..cg {
                for ky in 0..k {
                    for kx in 0..k {
                        let src = (((grp * og + o) * cg + c) * k + ky) * k + kx;
                        let dst = (((grp * cg + c) * og + o) * k + (k - 1 - ky)) * k + (k - 1 - kx);
                        wt[dst] = w[src];
                    }
                }
            }
        }
    }
    let gt = ConvGeom {
        b: g.b,
        cin: g.cout,
        h: g.ho,
        w: g.wo,
        cout: g.cin,
        k,
        stride: 1,
        pad: k - 1 - g.pad,
        groups: g.groups,
        ho: g.h,
        wo: g.w,
    };
    forward_into(&gt, go, &wt, None, gx, acc);
}

/// Accumulates the bias gradient: the sum of `go` over batch and positions per channel.
pub(crate) fn backward_bias(g: &ConvGeom, go: &[f32], gb: &mut [f32]) {
    let howo = g.howo();
    if howo == 0 {
        return;
    }
    for (i, row) in go.chunks_exact(howo).enumerate() {
        gb[i % g.cout] += super::math::sum(row);
    }
}

/// A conv op's weight and bias split off their tapes (each without tape, with a copy of its
/// data), and their merged tape.
#[allow(clippy::type_complexity)]
pub(super) fn split_weights<T>(
    w: Tensor4<Cpu, T>,
    b: Option<Tensor1<Cpu, T>>,
) -> Result<(Tensor4<Cpu>, Data, Option<Tensor1<Cpu>>, Option<Data>, T), OpsError>
where
    T: Tape<f32, Cpu>,
{
    let (w, mut tape, wd) = split(w)?;
    let (b, bd) = match b {
        Some(b) => {
            let (b, tb, bd) = split(b)?;
            tape = tape.merge(tb);
            (Some(b), Some(bd))
        }
        None => (None, None),
    };
    Ok((w, wd, b, bd, tape))
}

/// A conv op's operands split off their tapes: the input, the weight and the bias (each
/// without tape, with a copy of its data) and the merged tape.
#[allow(clippy::type_complexity)]
fn split_operands<Tx, T>(
    x: Tensor4<Cpu, Tx>,
    w: Tensor4<Cpu, T>,
    b: Option<Tensor1<Cpu, T>>,
) -> Result<
    (
        Tensor4<Cpu>,
        Data,
        Tensor4<Cpu>,
        Data,
        Option<Tensor1<Cpu>>,
        Option<Data>,
        T,
    ),
    OpsError,
>
where
    Tx: Tape<f32, Cpu>,
    T: Tape<f32, Cpu> + Merge<Tx>,
{
    let (x, tx, xd) = split(x)?;
    let (w, wd, b, bd, tw) = split_weights(w, b)?;
    Ok((x, xd, w, wd, b, bd, merge_tapes(tw, tx)))
}

/// The end of a conv op's backward, once its weight gradient is in: the bias gradient (when
/// there is a bias ghost), the input gradient through the weights `w` (when the input needs
/// one), then the output gradient `go` put back. (A macro: dfdx's ghost tensors and the trait
/// `Gradients` takes them by are not nameable outside it.)
macro_rules! backward_rest {
    ($grads:expr, $g:expr, $go:expr, $w:expr, $b:expr, $x:expr, $out:expr) => {{
        if let Some(b) = $b {
            let mut gb = take_grad!($grads, b);
            backward_bias($g, &$go, &mut gb);
            put_grad!($grads, b, gb);
        }
        if let Some(x) = $x {
            let mut gx = take_grad!($grads, x);
            backward_input($g, $w, &$go, &mut gx);
            put_grad!($grads, x, gx);
        }
        put_grad!($grads, $out, $go);
        Ok(())
    }};
}

/// [`super::Kernels::conv2d`] for [`Cpu`].
pub(crate) fn cpu_conv2d<Tx, T>(
    x: Tensor4<Cpu, Tx>,
    w: Tensor4<Cpu, T>,
    b: Option<Tensor1<Cpu, T>>,
    cfg: Conv2dCfg,
) -> Result<Tensor4<Cpu, T>, OpsError>
where
    Tx: Tape<f32, Cpu>,
    T: Tape<f32, Cpu> + Merge<Tx>,
{
    let g = ConvGeom::new(*x.shape(), *w.shape(), b.as_ref().map(|b| b.shape().0), cfg)?;
    let (x, xd, w, wd, b, bd, mut tape) = split_operands(x, w, b)?;
    let y = forward(&g, &xd, &wd, bd.as_deref());
    let out = output(x.device(), y, (g.b, g.cout, g.ho, g.wo))?;
    if T::OWNS_TAPE {
        let need_x = Tx::OWNS_TAPE;
        let (x_ghost, w_ghost, out_ghost) = (x.ghost(), w.ghost(), out.ghost());
        let b_ghost = b.as_ref().map(|b| b.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad!(grads, &out_ghost);
            let mut gw = take_grad!(grads, &w_ghost);
            backward_weight(&g, &xd, &go, &mut gw);
            put_grad!(grads, &w_ghost, gw);
            let x_ghost = need_x.then_some(&x_ghost);
            backward_rest!(grads, &g, go, &wd, b_ghost.as_ref(), x_ghost, &out_ghost)
        });
    }
    Ok(out.put_tape(tape))
}

/// The geometry of a ConcatConv of an `x`-shaped input with `[Cout, Cin + 1, k, k]` weights
/// (the convolution of `x` alone), after checking the time values and plane against it.
pub(super) fn time_geom(
    x: (usize, usize, usize, usize),
    w: (usize, usize, usize, usize),
    bias: Option<usize>,
    time: &[f32],
    plane: &[f32],
    cfg: Conv2dCfg,
) -> Result<ConvGeom, OpsError> {
    const OP: &str = "conv2d_time";
    let (bn, cin, h, wd) = x;
    let (cout, cw, k, k2) = w;
    if cfg.groups != 1 {
        return Err(shape_err(OP, "a time channel needs groups = 1"));
    }
    if cw != cin + 1 {
        return Err(shape_err(
            OP,
            format!("weight has {cw} input channels for {cin} channels and the time channel"),
        ));
    }
    if time.len() != bn || plane.len() != h * wd {
        return Err(shape_err(
            OP,
            format!(
                "{} times and a {}-value plane for a [{bn}, {cin}, {h}, {wd}] input",
                time.len(),
                plane.len()
            ),
        ));
    }
    ConvGeom::new((bn, cin, h, wd), (cout, cin, k, k2), bias, cfg)
}

/// The forward of a ConcatConv: the convolution of `x` with the weights past the time
/// channel's (returned, for the backward), plus the time channel's share.
pub(super) fn time_forward(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    time: &[f32],
    plane: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (w0, wx) = time::split_weights(g, w);
    let mut y = forward(g, x, &wx, bias);
    time::add_time_map(&mut y, &time::time_map(g, plane, &w0), time);
    (y, wx)
}

/// Accumulates a ConcatConv's weight gradient (`[Cout, Cin + 1, k, k]`, the time channel's
/// first) into `gw`.
pub(super) fn time_backward_weight(
    g: &ConvGeom,
    x: &[f32],
    go: &[f32],
    time: &[f32],
    plane: &[f32],
    gw: &mut [f32],
) {
    let kk2 = g.k * g.k;
    let mut gwx = vec![0.0f32; g.cout * g.kk()];
    backward_weight(g, x, go, &mut gwx);
    let gw0 = time::time_weight_grad(g, plane, time, go);
    for o in 0..g.cout {
        let row = &mut gw[o * (g.cin + 1) * kk2..][..(g.cin + 1) * kk2];
        for (d, v) in row[..kk2].iter_mut().zip(&gw0[o * kk2..][..kk2]) {
            *d += v;
        }
        for (d, v) in row[kk2..].iter_mut().zip(&gwx[o * g.kk()..][..g.kk()]) {
            *d += v;
        }
    }
}

/// [`crate::ops::Kernels::conv2d_time`] for [`Cpu`]: the convolution of `x` alone plus the
/// time channel's share ([`time`]); no channel is built and no concatenated copy is made.
pub(crate) fn cpu_conv2d_time<Tx, T>(
    x: Tensor4<Cpu, Tx>,
    time: &[f32],
    plane: &[f32],
    w: Tensor4<Cpu, T>,
    b: Option<Tensor1<Cpu, T>>,
    cfg: Conv2dCfg,
) -> Result<Tensor4<Cpu, T>, OpsError>
where
    Tx: Tape<f32, Cpu>,
    T: Tape<f32, Cpu> + Merge<Tx>,
{
    let bias = b.as_ref().map(|b| b.shape().0);
    let g = time_geom(*x.shape(), *w.shape(), bias, time, plane, cfg)?;
    let (x, xd, w, wd, b, bd, mut tape) = split_operands(x, w, b)?;
    let (y, wx) = time_forward(&g, &xd, &wd, bd.as_deref(), time, plane);
    let out = output(x.device(), y, (g.b, g.cout, g.ho, g.wo))?;
    if T::OWNS_TAPE {
        let need_x = Tx::OWNS_TAPE;
        let (x_ghost, w_ghost, out_ghost) = (x.ghost(), w.ghost(), out.ghost());
        let b_ghost = b.as_ref().map(|b| b.ghost());
        let (time, plane) = (time.to_vec(), plane.to_vec());
        tape.add_backward_op(move |grads| {
            let go = take_grad!(grads, &out_ghost);
            let mut gw = take_grad!(grads, &w_ghost);
            time_backward_weight(&g, &xd, &go, &time, &plane, &mut gw);
            put_grad!(grads, &w_ghost, gw);
            let x_ghost = need_x.then_some(&x_ghost);
            backward_rest!(grads, &g, go, &wx, b_ghost.as_ref(), x_ghost, &out_ghost)
        });
    }
    Ok(out.put_tape(tape))
}
