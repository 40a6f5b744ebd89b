//! A convolution whose first input channel is the time channel (ConcatConv) on the CPU: `x`,
//! the per-sample times, the channel's spatial pattern and `[Cout, Cin + 1, k, k]` weights in,
//! the NCHW output out, with its backward on the tape. The time channel of sample `b` is
//! `t_b * plane`, so its share of the output is `t_b * M` with `M = conv(plane, w[:, 0])`, one
//! `[Cout, Ho, Wo]` map for the whole batch: the channel is never built, no concatenated copy
//! of `x` is made, and the convolution runs over the `Cin` channels of `x` alone. Its weight
//! gradient is `sum_b t_b * go_b` correlated with the plane.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, Merge, PutTape, Tape};

use super::geom::ConvGeom;
use super::{backward_bias, backward_input, backward_weight, forward};
use crate::ops::tape::{merge_tapes, output, put_grad, split, take_grad};
use crate::ops::types::{shape_err, Conv2dCfg, OpsError, Tensor1, Tensor4};

/// The time plane's value at input position `(iy, ix)` counted from the padded corner, 0 in the
/// padding.
fn plane_at(g: &ConvGeom, plane: &[f32], iy: usize, ix: usize) -> f32 {
    if iy < g.pad || ix < g.pad || iy - g.pad >= g.h || ix - g.pad >= g.w {
        return 0.0;
    }
    plane[(iy - g.pad) * g.w + ix - g.pad]
}

/// `m[o][oy * wo + ox] = sum_{ky, kx} w0[o][ky][kx] * plane(oy * s + ky, ox * s + kx)`.
fn time_map(g: &ConvGeom, plane: &[f32], w0: &[f32]) -> Vec<f32> {
    let (k, howo) = (g.k, g.howo());
    let mut m = vec![0.0f32; g.cout * howo];
    for (o, row) in m.chunks_exact_mut(howo).enumerate() {
        for (pos, v) in row.iter_mut().enumerate() {
            let (oy, ox) = (pos / g.wo, pos % g.wo);
            let mut s = 0.0;
            for ky in 0..k {
                for kx in 0..k {
                    let p = plane_at(g, plane, oy * g.stride + ky, ox * g.stride + kx);
                    s += w0[(o * k + ky) * k + kx] * p;
                }
            }
            *v = s;
        }
    }
    m
}

/// Splits `[Cout, Cin + 1, k, k]` weights into the time channel's `[Cout, k, k]` and the rest.
fn split_weights(g: &ConvGeom, w: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let kk2 = g.k * g.k;
    let (mut w0, mut wx) = (
        Vec::with_capacity(g.cout * kk2),
        Vec::with_capacity(w.len()),
    );
    for row in w.chunks_exact((g.cin + 1) * kk2) {
        w0.extend_from_slice(&row[..kk2]);
        wx.extend_from_slice(&row[kk2..]);
    }
    (w0, wx)
}

/// [`crate::ops::Kernels::conv2d_time`] for [`Cpu`].
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
    const OP: &str = "conv2d_time";
    let (bn, cin, h, wd) = *x.shape();
    let (cout, cw, k, k2) = *w.shape();
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
    let g = ConvGeom::new(
        (bn, cin, h, wd),
        (cout, cin, k, k2),
        b.as_ref().map(|b| b.shape().0),
        cfg,
    )?;
    let (x, tx, xd) = split(x)?;
    let (w, tw, wd) = split(w)?;
    let mut tape = merge_tapes(tw, tx);
    let (b, bd) = match b {
        Some(b) => {
            let (b, tb, bd) = split(b)?;
            tape = tape.merge(tb);
            (Some(b), Some(bd))
        }
        None => (None, None),
    };
    let (w0, wx) = split_weights(&g, &wd);
    let mut y = forward(&g, &xd, &wx, bd.as_deref());
    let m = time_map(&g, plane, &w0);
    let howo = g.howo();
    if howo > 0 {
        for (img, t) in y.chunks_exact_mut(cout * howo).zip(time) {
            for (d, s) in img.iter_mut().zip(&m) {
                *d += t * s;
            }
        }
    }
    let out = output(x.device(), y, (bn, cout, g.ho, g.wo))?;
    if T::OWNS_TAPE {
        let need_x = Tx::OWNS_TAPE;
        let (x_ghost, w_ghost, out_ghost) = (x.ghost(), w.ghost(), out.ghost());
        let b_ghost = b.as_ref().map(|b| b.ghost());
        let (time, plane) = (time.to_vec(), plane.to_vec());
        tape.add_backward_op(move |grads| {
            let go = take_grad!(grads, &out_ghost);
            let kk2 = g.k * g.k;
            let mut gwx = vec![0.0f32; g.cout * g.kk()];
            backward_weight(&g, &xd, &go, &mut gwx);
            // The time channel: s[o][pos] = sum_b t_b go[b][o][pos], correlated with the plane.
            let mut s = vec![0.0f32; g.cout * howo];
            if howo > 0 {
                for (img, t) in go.chunks_exact(g.cout * howo).zip(&time) {
                    for (d, v) in s.iter_mut().zip(img) {
                        *d += t * v;
                    }
                }
            }
            let mut gw = take_grad!(grads, &w_ghost);
            for o in 0..g.cout {
                let row = &mut gw[o * (g.cin + 1) * kk2..][..(g.cin + 1) * kk2];
                for (d, v) in row[kk2..].iter_mut().zip(&gwx[o * g.kk()..][..g.kk()]) {
                    *d += v;
                }
                for (q, d) in row[..kk2].iter_mut().enumerate() {
                    let (ky, kx) = (q / g.k, q % g.k);
                    let mut acc = 0.0;
                    for (pos, sv) in s[o * howo..][..howo].iter().enumerate() {
                        let (oy, ox) = (pos / g.wo, pos % g.wo);
                        acc += sv * plane_at(&g, &plane, oy * g.stride + ky, ox * g.stride + kx);
                    }
                    *d += acc;
                }
            }
            put_grad!(grads, &w_ghost, gw);
            if let Some(b_ghost) = &b_ghost {
                let mut gb = take_grad!(grads, b_ghost);
                backward_bias(&g, &go, &mut gb);
                put_grad!(grads, b_ghost, gb);
            }
            if need_x {
                let mut gx = take_grad!(grads, &x_ghost);
                backward_input(&g, &wx, &go, &mut gx);
                put_grad!(grads, &x_ghost, gx);
            }
            put_grad!(grads, &out_ghost, go);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}
