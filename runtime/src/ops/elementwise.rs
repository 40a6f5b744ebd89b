//! Elementwise ops on the CPU: activations (relu, silu, tanh, softplus) of any shape, residual
//! sums of equal shapes and their scaled sums (an ODE solver's stages), the broadcast of a
//! `[B, C]` offset over NCHW positions, and the channel concatenation of two NCHW maps. Tensors in, a tensor out, backward recorded on the
//! tape.

use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, Merge, PutTape, Tape, Tensor};
use rayon::prelude::*;

use super::math::{multiversion, sigmoid, sum, tanh};
use super::tape::{output, put_grad, split, take_grad, zeros};
use super::types::{shape_err, OpsError, Tensor2, Tensor4, Unary};

/// Elements per parallel work item.
const CHUNK: usize = 1 << 14;

fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

multiversion! {
    /// `y = op(x)` on one chunk.
    fn unary_chunk(op: Unary, x: &[f32], y: &mut [f32]) {
        let y = &mut y[..x.len()];
        match op {
            Unary::Relu => y.iter_mut().zip(x).for_each(|(o, &v)| *o = v.max(0.0)),
            Unary::Silu => y.iter_mut().zip(x).for_each(|(o, &v)| *o = v * sigmoid(v)),
            Unary::Tanh => y.iter_mut().zip(x).for_each(|(o, &v)| *o = tanh(v)),
            Unary::Softplus => y.iter_mut().zip(x).for_each(|(o, &v)| *o = softplus(v)),
        }
    }
}

multiversion! {
    /// `gx += op'(x) * dy` on one chunk.
    fn unary_grad_chunk(op: Unary, x: &[f32], dy: &[f32], gx: &mut [f32]) {
        let (dy, gx) = (&dy[..x.len()], &mut gx[..x.len()]);
        let it = gx.iter_mut().zip(x).zip(dy);
        match op {
            Unary::Relu => it.for_each(|((g, &v), &d)| *g += if v > 0.0 { d } else { 0.0 }),
            Unary::Silu => it.for_each(|((g, &v), &d)| {
                let s = sigmoid(v);
                *g += d * s * (1.0 + v * (1.0 - s));
            }),
            Unary::Tanh => it.for_each(|((g, &v), &d)| {
                let t = tanh(v);
                *g += d * (1.0 - t * t);
            }),
            Unary::Softplus => it.for_each(|((g, &v), &d)| *g += d * sigmoid(v)),
        }
    }
}

multiversion! {
    /// `dst += src`.
    fn add_chunk(dst: &mut [f32], src: &[f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    }
}

pub(crate) fn unary_forward(op: Unary, x: &[f32]) -> Vec<f32> {
    let mut y = zeros(x.len());
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(yc, xc)| unary_chunk(op, xc, yc));
    y
}

pub(crate) fn unary_backward(op: Unary, x: &[f32], dy: &[f32], gx: &mut [f32]) {
    gx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(gc, (xc, dc))| unary_grad_chunk(op, xc, dc, gc));
}

/// [`super::Kernels::unary`] for [`Cpu`].
pub(crate) fn cpu_unary<S: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
    op: Unary,
) -> Result<Tensor<S, f32, Cpu, T>, OpsError> {
    let shape = *x.shape();
    let (x, mut tape, xd) = split(x)?;
    let out = output(x.device(), unary_forward(op, &xd), shape)?;
    if T::OWNS_TAPE {
        let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            let mut gx = take_grad!(grads, &x_ghost);
            unary_backward(op, &xd, &dy, &mut gx);
            put_grad!(grads, &x_ghost, gx);
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// [`super::Kernels::add`] for [`Cpu`].
pub(crate) fn cpu_add<S: Shape, T: Tape<f32, Cpu>>(
    a: Tensor<S, f32, Cpu, T>,
    b: Tensor<S, f32, Cpu, T>,
) -> Result<Tensor<S, f32, Cpu, T>, OpsError> {
    let shape = *a.shape();
    if shape.concrete() != b.shape().concrete() {
        return Err(shape_err(
            "add",
            format!("{:?} vs {:?}", shape.concrete(), b.shape().concrete()),
        ));
    }
    let (a, ta, mut y) = split(a)?;
    let (b, tb, bd) = split(b)?;
    let mut tape = ta.merge(tb);
    y.par_chunks_mut(CHUNK)
        .zip(bd.par_chunks(CHUNK))
        .for_each(|(yc, bc)| add_chunk(yc, bc));
    drop(bd);
    let out = output(a.device(), y.into_vec(), shape)?;
    if T::OWNS_TAPE {
        let (a_ghost, b_ghost, out_ghost) = (a.ghost(), b.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            for g in [&a_ghost, &b_ghost] {
                let mut ga = take_grad!(grads, g);
                add_par(&mut ga, &dy);
                put_grad!(grads, g, ga);
            }
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

pub(crate) fn add_par(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| add_chunk(d, s));
}

/// `y[row] += offset[row]` over rows of `hw` values (an `[B, C]` offset over NCHW rows).
pub(crate) fn add_rows(y: &mut [f32], hw: usize, offset: &[f32]) {
    if hw > 0 {
        y.par_chunks_mut(hw).zip(offset).for_each(|(yr, &v)| {
            for o in yr {
                *o += v;
            }
        });
    }
}

/// `g[row] += sum(dy[row])` over rows of `hw` values (an offset's gradient).
pub(crate) fn add_row_sums(g: &mut [f32], dy: &[f32], hw: usize) {
    if hw > 0 {
        for (g, row) in g.iter_mut().zip(dy.chunks_exact(hw)) {
            *g += sum(row);
        }
    }
}

/// [`super::Kernels::add_channel_offset`] for [`Cpu`].
pub(crate) fn cpu_add_channel_offset<T: Tape<f32, Cpu>>(
    x: Tensor4<Cpu, T>,
    offset: Tensor2<Cpu, T>,
) -> Result<Tensor4<Cpu, T>, OpsError> {
    let shape = *x.shape();
    let (b, c, hw) = (shape.0, shape.1, shape.2 * shape.3);
    if *offset.shape() != (b, c) {
        return Err(shape_err(
            "add_channel_offset",
            format!(
                "offset {:?} does not match [batch, channels] of {:?}",
                offset.shape(),
                shape
            ),
        ));
    }
    let (x, tx, mut y) = split(x)?;
    let (offset, to, od) = split(offset)?;
    let mut tape = tx.merge(to);
    add_rows(&mut y, hw, &od);
    let out = output(x.device(), y.into_vec(), shape)?;
    if T::OWNS_TAPE {
        let (x_ghost, o_ghost, out_ghost) = (x.ghost(), offset.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            let mut gx = take_grad!(grads, &x_ghost);
            add_par(&mut gx, &dy);
            put_grad!(grads, &x_ghost, gx);
            let mut go = take_grad!(grads, &o_ghost);
            add_row_sums(&mut go, &dy, hw);
            put_grad!(grads, &o_ghost, go);
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// [`super::Kernels::mse_loss`] for [`Cpu`]: the differences and the partial sums of their
/// squares per chunk in parallel, the partial sums added in chunk order (the same loss on every
/// run), and the backward `gp += 2 g (p - t) / n` in parallel.
pub(crate) fn cpu_mse_loss<S: Shape, T: Tape<f32, Cpu>>(
    pred: Tensor<S, f32, Cpu, T>,
    target: Tensor<S, f32, Cpu>,
) -> Result<Tensor<(), f32, Cpu, T>, OpsError> {
    if pred.shape().concrete() != target.shape().concrete() {
        return Err(shape_err(
            "mse_loss",
            format!(
                "{:?} vs {:?}",
                pred.shape().concrete(),
                target.shape().concrete()
            ),
        ));
    }
    let (p, mut tape, mut d) = split(pred)?;
    let (_, _, td) = split(target)?;
    let n = d.len();
    let partial: Vec<f32> = d
        .par_chunks_mut(CHUNK)
        .zip(td.par_chunks(CHUNK))
        .map(|(dc, tc)| sq_diff_chunk(dc, tc))
        .collect();
    drop(td);
    let loss = partial.iter().sum::<f32>() / n.max(1) as f32;
    let out = output(p.device(), vec![loss], ())?;
    if T::OWNS_TAPE {
        let (p_ghost, out_ghost) = (p.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            let scale = 2.0 * dy.first().copied().unwrap_or(0.0) / n.max(1) as f32;
            let mut gp = take_grad!(grads, &p_ghost);
            gp.par_chunks_mut(CHUNK)
                .zip(d.par_chunks(CHUNK))
                .for_each(|(g, dc)| axpy_chunk(g, dc, scale));
            put_grad!(grads, &p_ghost, gp);
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

multiversion! {
    /// `dst += a * src` (the product rounded first, as a separate multiply and add would).
    fn axpy_chunk(dst: &mut [f32], src: &[f32], a: f32) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += a * s;
        }
    }
}

/// `d -= t` on one chunk, returning the sum of the new `d`'s squares.
fn sq_diff_chunk(d: &mut [f32], t: &[f32]) -> f32 {
    sub_chunk(d, t);
    super::math::sum_sq_dev(d, 0.0)
}

multiversion! {
    /// `dst -= src`.
    fn sub_chunk(dst: &mut [f32], src: &[f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d -= s;
        }
    }
}

/// [`super::Kernels::concat_channels`] for [`Cpu`]: each sample's channels of `a`, then of
/// `b`, copied on the worker threads (dfdx's concatenation walks an index per element on the
/// thread that records the tape).
pub(crate) fn cpu_concat_channels<T, R>(
    a: Tensor4<Cpu, T>,
    b: Tensor4<Cpu, R>,
) -> Result<Tensor4<Cpu, T>, OpsError>
where
    T: Tape<f32, Cpu> + Merge<R>,
    R: Tape<f32, Cpu>,
{
    let (sa, sb) = (*a.shape(), *b.shape());
    let (bn, hw) = (sa.0, sa.2 * sa.3);
    let (na, nb) = (sa.1 * hw, sb.1 * hw);
    let (a, ta, ad) = split(a)?;
    let (b, tb, bd) = split(b)?;
    let mut tape = ta.merge(tb);
    let mut y = zeros(bn * (na + nb));
    if na + nb > 0 {
        y.par_chunks_mut(na + nb).enumerate().for_each(|(i, ys)| {
            ys[..na].copy_from_slice(&ad[i * na..][..na]);
            ys[na..].copy_from_slice(&bd[i * nb..][..nb]);
        });
    }
    drop((ad, bd));
    let out = output(a.device(), y, (bn, sa.1 + sb.1, sa.2, sa.3))?;
    if T::OWNS_TAPE {
        let (need_a, need_b) = (T::OWNS_TAPE, R::OWNS_TAPE);
        let (a_ghost, b_ghost, out_ghost) = (a.ghost(), b.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            // Each sample's gradient rows back to the operand they came from.
            let back = |g: &mut [f32], off: usize, len: usize| {
                if len > 0 {
                    g.par_chunks_mut(len).enumerate().for_each(|(i, gs)| {
                        add_chunk(gs, &dy[i * (na + nb) + off..][..len]);
                    });
                }
            };
            if need_a {
                let mut ga = take_grad!(grads, &a_ghost);
                back(&mut ga, 0, na);
                put_grad!(grads, &a_ghost, ga);
            }
            if need_b {
                let mut gb = take_grad!(grads, &b_ghost);
                back(&mut gb, na, nb);
                put_grad!(grads, &b_ghost, gb);
            }
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// [`super::Kernels::axpys`] for [`Cpu`]: the terms added one after another, each pass on
/// the worker threads (the same sums, in the same order, as dfdx's scalar multiplies and
/// adds, which walk an index per element on the thread that records the tape).
pub(crate) fn cpu_axpys<T: Tape<f32, Cpu>>(
    h: Tensor4<Cpu, T>,
    terms: Vec<(Tensor4<Cpu, T>, f32)>,
) -> Result<Tensor4<Cpu, T>, OpsError> {
    let shape = *h.shape();
    if let Some((k, _)) = terms.iter().find(|(k, _)| *k.shape() != shape) {
        return Err(shape_err(
            "axpys",
            format!("a term {:?} for {shape:?}", k.shape()),
        ));
    }
    let (h, mut tape, mut y) = split(h)?;
    let mut ghosts = Vec::with_capacity(terms.len());
    for (k, c) in terms {
        let (k, tk, kd) = split(k)?;
        tape = tape.merge(tk);
        y.par_chunks_mut(CHUNK)
            .zip(kd.par_chunks(CHUNK))
            .for_each(|(yc, kc)| axpy_chunk(yc, kc, c));
        ghosts.push((k.ghost(), c));
    }
    let out = output(h.device(), y.into_vec(), shape)?;
    if T::OWNS_TAPE {
        let (h_ghost, out_ghost) = (h.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            let mut gh = take_grad!(grads, &h_ghost);
            add_par(&mut gh, &dy);
            put_grad!(grads, &h_ghost, gh);
            for (k, c) in &ghosts {
                let mut gk = take_grad!(grads, k);
                gk.par_chunks_mut(CHUNK)
                    .zip(dy.par_chunks(CHUNK))
                    .for_each(|(gc, dc)| axpy_chunk(gc, dc, *c));
                put_grad!(grads, k, gk);
            }
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}
