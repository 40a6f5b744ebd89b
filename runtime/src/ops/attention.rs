//! Spatial self-attention on the CPU (DDPM's attention block core): q, k, v `[B, C, N]` in,
//! `softmax(q^T k / sqrt(C)) v` as `[B, C, N]` out, or the `[B, 3C, H, W]` projection holding
//! q, k and v of every head in, `[B, C, H, W]` out. Per sample and head: two GEMMs forward,
//! four backward, the attention matrix kept for the backward pass; items run in parallel.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, PutTape, Tape};
use gemm::Parallelism;
use rayon::prelude::*;

use super::math::{exp, sgemm, Mat};
use super::tape::{output, put_grad, split, take_grad, zeros};
use super::types::{shape_err, OpsError, Tensor3, Tensor4};

/// Row-wise softmax of `s` (rows of length `n`) after scaling by `scale`, in place.
fn softmax_rows(s: &mut [f32], n: usize, scale: f32) {
    for row in s.chunks_exact_mut(n) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) * scale;
        let mut tot = 0.0f32;
        for v in row.iter_mut() {
            *v = exp(*v * scale - m);
            tot += *v;
        }
        let inv = 1.0 / tot;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// One head of one sample, forward: `o = v softmax(q^T k * scale)^T` (`q`, `k`, `v`, `o`:
/// `[c, n]`), the attention matrix `p` (`[n, n]`) kept.
#[allow(clippy::too_many_arguments)]
fn item_forward(c: usize, n: usize, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32], p: &mut [f32]) {
    let np = Parallelism::None;
    sgemm(n, n, c, Mat::rows_t(q, n), Mat::rows(k, n), p, n, false, np);
    softmax_rows(p, n, 1.0 / (c as f32).sqrt());
    sgemm(c, n, n, Mat::rows(v, n), Mat::rows_t(p, n), o, n, false, np);
}

/// One head of one sample, backward: `dq`, `dk`, `dv` (`[c, n]`) from the output gradient
/// `g`, overwritten or (`acc`) accumulated; `ds` is `[n, n]` scratch.
#[allow(clippy::too_many_arguments)]
fn item_backward(
    c: usize,
    n: usize,
    (q, k, v): (&[f32], &[f32], &[f32]),
    p: &[f32],
    g: &[f32],
    (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
    ds: &mut [f32],
    acc: bool,
) {
    let scale = 1.0 / (c as f32).sqrt();
    let np = Parallelism::None;
    // dv = dout p
    sgemm(c, n, n, Mat::rows(g, n), Mat::rows(p, n), dv, n, acc, np);
    // dp = dout^T v
    sgemm(
        n,
        n,
        c,
        Mat::rows_t(g, n),
        Mat::rows(v, n),
        ds,
        n,
        false,
        np,
    );
    // ds = p * (dp - rowsum(dp * p)) * scale
    for (dr, pr) in ds.chunks_exact_mut(n).zip(p.chunks_exact(n)) {
        let dot: f32 = dr.iter().zip(pr).map(|(a, b)| a * b).sum();
        for (d, &pv) in dr.iter_mut().zip(pr) {
            *d = pv * (*d - dot) * scale;
        }
    }
    // dq = k ds^T, dk = q ds
    sgemm(c, n, n, Mat::rows(k, n), Mat::rows_t(ds, n), dq, n, acc, np);
    sgemm(c, n, n, Mat::rows(q, n), Mat::rows(ds, n), dk, n, acc, np);
}

/// Forward: returns the output `[B, C, N]` and the attention matrices `[B, N, N]`.
pub(crate) fn forward(
    b: usize,
    c: usize,
    n: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let mut out = zeros(b * c * n);
    let mut p = zeros(b * n * n);
    if out.is_empty() || p.is_empty() {
        return (out, p);
    }
    out.par_chunks_mut(c * n)
        .zip(p.par_chunks_mut(n * n))
        .enumerate()
        .for_each(|(bi, (ob, pb))| {
            let r = bi * c * n..(bi + 1) * c * n;
            item_forward(c, n, &q[r.clone()], &k[r.clone()], &v[r], ob, pb);
        });
    (out, p)
}

/// Backward: returns `(dq, dk, dv)`, each `[B, C, N]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    b: usize,
    c: usize,
    n: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &[f32],
    dout: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dq = zeros(b * c * n);
    let mut dk = zeros(b * c * n);
    let mut dv = zeros(b * c * n);
    if dq.is_empty() {
        return (dq, dk, dv);
    }
    dq.par_chunks_mut(c * n)
        .zip(dk.par_chunks_mut(c * n).zip(dv.par_chunks_mut(c * n)))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; n * n],
            |ds, (bi, (dqb, (dkb, dvb)))| {
                let r = bi * c * n..(bi + 1) * c * n;
                let pb = &p[bi * n * n..][..n * n];
                let qkv = (&q[r.clone()], &k[r.clone()], &v[r.clone()]);
                item_backward(c, n, qkv, pb, &dout[r], (dqb, dkb, dvb), ds, false);
            },
        );
    (dq, dk, dv)
}

/// [`super::Kernels::attention_qkv`] for [`Cpu`]: each head reads its q, k and v straight
/// from the projection `[B, 3C, H, W]` (no slices, no copies of them), and writes their
/// gradients straight into the projection's.
pub(crate) fn cpu_attention_qkv<T: Tape<f32, Cpu>>(
    qkv: Tensor4<Cpu, T>,
    heads: usize,
) -> Result<Tensor4<Cpu, T>, OpsError> {
    let (b, c3, h, w) = *qkv.shape();
    let c = qkv_channels(c3, heads)?;
    let (n, hd) = (h * w, c / heads);
    let (x, mut tape, xd) = split(qkv)?;
    // Item `(bi, hi)`'s q, k and v: rows `hi * hd..` of the sample's three blocks of C.
    let base = move |it: usize| (it / heads) * 3 * c * n + (it % heads) * hd * n;
    let mut y = zeros(b * c * n);
    let mut p = zeros(b * heads * n * n);
    if !y.is_empty() && !p.is_empty() {
        y.par_chunks_mut(hd * n)
            .zip(p.par_chunks_mut(n * n))
            .enumerate()
            .for_each(|(it, (ob, pb))| {
                let at = |j: usize| &xd[base(it) + j * c * n..][..hd * n];
                item_forward(hd, n, at(0), at(1), at(2), ob, pb);
            });
    }
    let out = output(x.device(), y, (b, c, h, w))?;
    if T::OWNS_TAPE {
        let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            let mut gx = take_grad!(grads, &x_ghost);
            if !dy.is_empty() && n > 0 {
                // One sample's three blocks at a time: its heads' gradients are disjoint rows.
                gx.par_chunks_mut(3 * c * n).enumerate().for_each_init(
                    || vec![0.0f32; n * n],
                    |ds, (bi, gs)| {
                        let (gq, rest) = gs.split_at_mut(c * n);
                        let (gk, gv) = rest.split_at_mut(c * n);
                        for hi in 0..heads {
                            let it = bi * heads + hi;
                            let at = |j: usize| &xd[base(it) + j * c * n..][..hd * n];
                            let rows = hi * hd * n..(hi + 1) * hd * n;
                            let grads =
                                (&mut gq[rows.clone()], &mut gk[rows.clone()], &mut gv[rows]);
                            let pb = &p[it * n * n..][..n * n];
                            let g = &dy[it * hd * n..][..hd * n];
                            item_backward(hd, n, (at(0), at(1), at(2)), pb, g, grads, ds, true);
                        }
                    },
                );
            }
            put_grad!(grads, &x_ghost, gx);
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// The channels `C` of a `3C`-channel q, k, v projection split into `heads` heads.
pub(crate) fn qkv_channels(c3: usize, heads: usize) -> Result<usize, OpsError> {
    if !c3.is_multiple_of(3) || heads == 0 || !(c3 / 3).is_multiple_of(heads) {
        return Err(shape_err(
            "attention_qkv",
            format!("{c3} channels are not q, k and v of {heads} equal heads"),
        ));
    }
    Ok(c3 / 3)
}

/// [`super::Kernels::attention`] for [`Cpu`].
pub(crate) fn cpu_attention<T: Tape<f32, Cpu>>(
    q: Tensor3<Cpu, T>,
    k: Tensor3<Cpu, T>,
    v: Tensor3<Cpu, T>,
) -> Result<Tensor3<Cpu, T>, OpsError> {
    let shape = *q.shape();
    if *k.shape() != shape || *v.shape() != shape {
        return Err(shape_err(
            "attention",
            format!(
                "q {:?}, k {:?} and v {:?} must have the same shape",
                shape,
                k.shape(),
                v.shape()
            ),
        ));
    }
    let (b, c, n) = shape;
    let (q, tq, qd) = split(q)?;
    let (k, tk, kd) = split(k)?;
    let (v, tv, vd) = split(v)?;
    let mut tape = tq.merge(tk).merge(tv);
    let (y, p) = forward(b, c, n, &qd, &kd, &vd);
    let out = output(q.device(), y, shape)?;
    if T::OWNS_TAPE {
        let ghosts = (q.ghost(), k.ghost(), v.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let (q_ghost, k_ghost, v_ghost, out_ghost) = &ghosts;
            let dy = take_grad!(grads, out_ghost);
            let (dq, dk, dv) = backward(b, c, n, &qd, &kd, &vd, &p, &dy);
            put_grad!(grads, out_ghost, dy);
            for (g, d) in [(q_ghost, dq), (k_ghost, dk), (v_ghost, dv)] {
                for (a, b) in grads.get_or_alloc_mut(g)?.iter_mut().zip(&d) {
                    *a += b;
                }
            }
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}
