//! Spatial resampling on the CPU: average pooling (windowed and global) and nearest-neighbour x2
//! upsampling. NCHW tensor in; pooled `[B, C, Ho, Wo]`, pooled `[B, C]` or upsampled
//! `[B, C, 2H, 2W]` tensor out; backward recorded on the tape.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, PutTape, Tape};
use rayon::prelude::*;

use super::math::sum;
use super::tape::{output, put_grad, split, take_grad, zeros};
use super::types::{config_err, shape_err, OpsError, Shape4, Tensor2, Tensor4};

/// Output size of a `kernel`-window, `stride`-step pooling without padding.
pub(crate) fn pool_out(x: Shape4, kernel: usize, stride: usize) -> Result<Shape4, OpsError> {
    const OP: &str = "avg_pool2d";
    if kernel == 0 || stride == 0 {
        return Err(config_err(OP, "kernel and stride must be at least 1"));
    }
    if x.2 < kernel || x.3 < kernel {
        return Err(shape_err(
            OP,
            format!(
                "input {}x{} is smaller than the {kernel}x{kernel} window",
                x.2, x.3
            ),
        ));
    }
    Ok((
        x.0,
        x.1,
        (x.2 - kernel) / stride + 1,
        (x.3 - kernel) / stride + 1,
    ))
}

/// [`super::Kernels::avg_pool2d`] for [`Cpu`].
pub(crate) fn cpu_avg_pool2d<T: Tape<f32, Cpu>>(
    x: Tensor4<Cpu, T>,
    kernel: usize,
    stride: usize,
) -> Result<Tensor4<Cpu, T>, OpsError> {
    let shape = *x.shape();
    let os = pool_out(shape, kernel, stride)?;
    let (h, w, ho, wo) = (shape.2, shape.3, os.2, os.3);
    let (x, mut tape, xd) = split(x)?;
    let inv = 1.0 / (kernel * kernel) as f32;
    let mut y = zeros(os.0 * os.1 * ho * wo);
    if !y.is_empty() {
        y.par_chunks_mut(ho * wo)
            .zip(xd.par_chunks(h * w))
            .for_each(|(yp, xp)| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut s = 0.0f32;
                        for ky in 0..kernel {
                            let row = &xp[(oy * stride + ky) * w + ox * stride..][..kernel];
                            s += row.iter().sum::<f32>();
                        }
                        yp[oy * wo + ox] = s * inv;
                    }
                }
            });
    }
    let out = output(x.device(), y, os)?;
    if T::OWNS_TAPE {
        let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            let mut gx = take_grad!(grads, &x_ghost);
            if !dy.is_empty() {
                gx.par_chunks_mut(h * w)
                    .zip(dy.par_chunks(ho * wo))
                    .for_each(|(gp, dp)| {
                        for oy in 0..ho {
                            for ox in 0..wo {
                                let d = dp[oy * wo + ox] * inv;
                                for ky in 0..kernel {
                                    let row =
                                        &mut gp[(oy * stride + ky) * w + ox * stride..][..kernel];
                                    for g in row {
                                        *g += d;
                                    }
                                }
                            }
                        }
                    });
            }
            put_grad!(grads, &x_ghost, gx);
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// [`super::Kernels::global_avg_pool`] for [`Cpu`].
pub(crate) fn cpu_global_avg_pool<T: Tape<f32, Cpu>>(
    x: Tensor4<Cpu, T>,
) -> Result<Tensor2<Cpu, T>, OpsError> {
    let shape = *x.shape();
    let hw = shape.2 * shape.3;
    if hw == 0 {
        return Err(shape_err(
            "global_avg_pool",
            "input has no spatial positions",
        ));
    }
    let (x, mut tape, xd) = split(x)?;
    let inv = 1.0 / hw as f32;
    let y: Vec<f32> = xd.chunks_exact(hw).map(|r| sum(r) * inv).collect();
    let out = output(x.device(), y, (shape.0, shape.1))?;
    if T::OWNS_TAPE {
        let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            let mut gx = take_grad!(grads, &x_ghost);
            for (g, d) in gx.chunks_exact_mut(hw).zip(&dy) {
                let v = d * inv;
                for g in g {
                    *g += v;
                }
            }
            put_grad!(grads, &x_ghost, gx);
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// [`super::Kernels::upsample_nearest`] for [`Cpu`]: each input pixel fills an `f x f` block.
pub(crate) fn cpu_upsample_nearest<T: Tape<f32, Cpu>>(
    x: Tensor4<Cpu, T>,
    factor: usize,
) -> Result<Tensor4<Cpu, T>, OpsError> {
    let f = factor.max(1);
    let shape = *x.shape();
    let (h, w) = (shape.2, shape.3);
    let (ho, wo) = (f * h, f * w);
    let os = (shape.0, shape.1, ho, wo);
    let (x, mut tape, xd) = split(x)?;
    let mut y = zeros(xd.len() * f * f);
    if !y.is_empty() {
        y.par_chunks_mut(ho * wo)
            .zip(xd.par_chunks(h * w))
            .for_each(|(yp, xp)| {
                for iy in 0..h {
                    let src = &xp[iy * w..][..w];
                    let block = &mut yp[f * iy * wo..][..f * wo];
                    let (r0, rest) = block.split_at_mut(wo);
                    for (j, &v) in src.iter().enumerate() {
                        r0[f * j..][..f].fill(v);
                    }
                    for r in rest.chunks_mut(wo) {
                        r.copy_from_slice(r0);
                    }
                }
            });
    }
    let out = output(x.device(), y, os)?;
    if T::OWNS_TAPE {
        let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            let mut gx = take_grad!(grads, &x_ghost);
            if !gx.is_empty() {
                gx.par_chunks_mut(h * w)
                    .zip(dy.par_chunks(ho * wo))
                    .for_each(|(gp, dp)| {
                        for iy in 0..h {
                            for (j, g) in gp[iy * w..][..w].iter_mut().enumerate() {
                                let mut acc = 0.0;
                                for r in 0..f {
                                    acc += dp[(f * iy + r) * wo + f * j..][..f].iter().sum::<f32>();
                                }
                                *g += acc;
                            }
                        }
                    });
            }
            put_grad!(grads, &x_ghost, gx);
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}
