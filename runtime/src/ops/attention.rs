//! Spatial self-attention on the CPU (DDPM's attention block core): q, k, v `[B, C, N]` in,
//! `softmax(q^T k / sqrt(C)) v` as `[B, C, N]` out. Per sample: two GEMMs forward, four backward,
//! the attention matrix kept for the backward pass; samples run in parallel.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, PutTape, Tape};
use gemm::Parallelism;
use rayon::prelude::*;

use super::math::{exp, sgemm, Mat};
use super::tape::{output, put_grad, split, take_grad, zeros};
use super::types::{shape_err, OpsError, Tensor3};

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

/// Forward: returns the output `[B, C, N]` and the attention matrices `[B, N, N]`.
pub(crate) fn forward(
    b: usize,
    c: usize,
    n: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let scale = 1.0 / (c as f32).sqrt();
    let mut out = zeros(b * c * n);
    let mut p = zeros(b * n * n);
    if out.is_empty() || p.is_empty() {
        return (out, p);
    }
    out.par_chunks_mut(c * n)
        .zip(p.par_chunks_mut(n * n))
        .enumerate()
        .for_each(|(bi, (ob, pb))| {
            let (qb, kb, vb) = (
                &q[bi * c * n..][..c * n],
                &k[bi * c * n..][..c * n],
                &v[bi * c * n..][..c * n],
            );
            sgemm(
                n,
                n,
                c,
                Mat::rows_t(qb, n),
                Mat::rows(kb, n),
                pb,
                n,
                false,
                Parallelism::None,
            );
            softmax_rows(pb, n, scale);
            sgemm(
                c,
                n,
                n,
                Mat::rows(vb, n),
                Mat::rows_t(pb, n),
                ob,
                n,
                false,
                Parallelism::None,
            );
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
    let scale = 1.0 / (c as f32).sqrt();
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
                let off = bi * c * n;
                let (qb, kb, vb, gb) = (
                    &q[off..][..c * n],
                    &k[off..][..c * n],
                    &v[off..][..c * n],
                    &dout[off..][..c * n],
                );
                let pb = &p[bi * n * n..][..n * n];
                let np = Parallelism::None;
                // dv = dout p
                sgemm(
                    c,
                    n,
                    n,
                    Mat::rows(gb, n),
                    Mat::rows(pb, n),
                    dvb,
                    n,
                    false,
                    np,
                );
                // dp = dout^T v
                sgemm(
                    n,
                    n,
                    c,
                    Mat::rows_t(gb, n),
                    Mat::rows(vb, n),
                    ds,
                    n,
                    false,
                    np,
                );
                // ds = p * (dp - rowsum(dp * p)) * scale
                for (dr, pr) in ds.chunks_exact_mut(n).zip(pb.chunks_exact(n)) {
                    let dot: f32 = dr.iter().zip(pr).map(|(a, b)| a * b).sum();
                    for (d, &pv) in dr.iter_mut().zip(pr) {
                        *d = pv * (*d - dot) * scale;
                    }
                }
                // dq = k ds^T, dk = q ds
                sgemm(
                    c,
                    n,
                    n,
                    Mat::rows(kb, n),
                    Mat::rows_t(ds, n),
                    dqb,
                    n,
                    false,
                    np,
                );
                sgemm(
                    c,
                    n,
                    n,
                    Mat::rows(qb, n),
                    Mat::rows(ds, n),
                    dkb,
                    n,
                    false,
                    np,
                );
            },
        );
    (dq, dk, dv)
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
