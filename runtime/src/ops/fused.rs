//! Fused CPU ops: a group norm (with its activation) feeding a convolution, with or without a
//! ConcatConv time channel, and an offset or residual added to the convolution's output, runs
//! as one op ([`cpu_group_norm_conv2d`]). The normalized map and the convolution's own output
//! stay plain buffers between the kernels: never wrapped in tensors, never copied again at an
//! op boundary, no gradient buffers for them in dfdx's `Gradients` (allocated and zeroed there
//! on the thread that records the tape). The arithmetic is that of the ops run one after the
//! other.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, Merge, PutTape, Tape};

use super::conv::geom::ConvGeom;
use super::conv::{
    backward_bias, backward_input_into, backward_weight, forward, split_weights,
    time_backward_weight, time_forward, time_geom,
};
use super::elementwise::{add_par, add_row_sums, add_rows};
use super::norm::{add_into, gn_backward, gn_forward, GnGeom};
use super::tape::{merge_tapes, output, put_grad, recycle, recycled, split, take_grad};
use super::types::{
    shape_err, Conv2dCfg, ConvTime, Epilogue, GroupNormCfg, OpsError, Tensor1, Tensor4,
};

/// [`super::Kernels::group_norm_conv2d`] for [`Cpu`] (a time channel needs `cfg.groups` = 1).
#[allow(clippy::too_many_arguments)]
pub(crate) fn cpu_group_norm_conv2d<Tx, T>(
    x: Tensor4<Cpu, Tx>,
    gamma: Tensor1<Cpu, T>,
    beta: Tensor1<Cpu, T>,
    norm: GroupNormCfg,
    w: Tensor4<Cpu, T>,
    b: Option<Tensor1<Cpu, T>>,
    cfg: Conv2dCfg,
    time: Option<ConvTime<'_>>,
    epilogue: Epilogue<Cpu, T>,
) -> Result<Tensor4<Cpu, T>, OpsError>
where
    Tx: Tape<f32, Cpu>,
    T: Tape<f32, Cpu> + Merge<Tx>,
{
    let shape = *x.shape();
    let n = GnGeom::new(shape, gamma.shape().0, beta.shape().0, norm)?;
    let bias_len = b.as_ref().map(|b| b.shape().0);
    let g = match time {
        Some(tc) => time_geom(shape, *w.shape(), bias_len, tc.time, tc.plane, cfg)?,
        None => ConvGeom::new(shape, *w.shape(), bias_len, cfg)?,
    };
    let out_shape = (g.b, g.cout, g.ho, g.wo);
    match &epilogue {
        Epilogue::Offset(o) if *o.shape() != (g.b, g.cout) => {
            return Err(shape_err(
                "group_norm_conv2d",
                format!("offset {:?} for an output {out_shape:?}", o.shape()),
            ))
        }
        Epilogue::Residual(r) if *r.shape() != out_shape => {
            return Err(shape_err(
                "group_norm_conv2d",
                format!("residual {:?} for an output {out_shape:?}", r.shape()),
            ))
        }
        _ => {}
    }
    let (x, tx, xd) = split(x)?;
    let (gamma, tg, gd) = split(gamma)?;
    let (beta, tb, bd) = split(beta)?;
    let (w, wd, b, bias, tw) = split_weights(w, b)?;
    let mut tape = merge_tapes(tg, tx).merge(tb).merge(tw);
    let (a, mean, rstd) = gn_forward(&n, &xd, &gd, &bd);
    // The output, and the weights the input gradient goes back through (a ConcatConv's
    // without the time channel's).
    let (mut y, wk) = match time {
        Some(tc) => time_forward(&g, &a, &wd, bias.as_deref(), tc.time, tc.plane),
        None => (forward(&g, &a, &wd, bias.as_deref()), wd.into_vec()),
    };
    // The epilogue's operand split off its tape (its data added, then dropped).
    let extra = match epilogue {
        Epilogue::None => None,
        Epilogue::Offset(o) => {
            let (o, to, od) = split(o)?;
            tape = tape.merge(to);
            add_rows(&mut y, g.ho * g.wo, &od);
            Some(Extra::Offset(o.ghost()))
        }
        Epilogue::Residual(r) => {
            let (r, tr, rd) = split(r)?;
            tape = tape.merge(tr);
            add_par(&mut y, &rd);
            Some(Extra::Residual(r.ghost()))
        }
    };
    let out = output(x.device(), y, out_shape)?;
    if T::OWNS_TAPE {
        let need_x = Tx::OWNS_TAPE;
        let (x_ghost, g_ghost, b_ghost) = (x.ghost(), gamma.ghost(), beta.ghost());
        let (w_ghost, out_ghost) = (w.ghost(), out.ghost());
        let bias_ghost = b.as_ref().map(|b| b.ghost());
        let time = time.map(|tc| (tc.time.to_vec(), tc.plane.to_vec()));
        tape.add_backward_op(move |grads| {
            let go = take_grad!(grads, &out_ghost);
            match &extra {
                Some(Extra::Offset(o)) => {
                    let mut gofs = take_grad!(grads, o);
                    add_row_sums(&mut gofs, &go, g.ho * g.wo);
                    put_grad!(grads, o, gofs);
                }
                Some(Extra::Residual(r)) => {
                    let mut gr = take_grad!(grads, r);
                    add_par(&mut gr, &go);
                    put_grad!(grads, r, gr);
                }
                None => {}
            }
            let mut gw = take_grad!(grads, &w_ghost);
            match &time {
                Some((time, plane)) => time_backward_weight(&g, &a, &go, time, plane, &mut gw),
                None => backward_weight(&g, &a, &go, &mut gw),
            }
            put_grad!(grads, &w_ghost, gw);
            if let Some(bg) = &bias_ghost {
                let mut gb = take_grad!(grads, bg);
                backward_bias(&g, &go, &mut gb);
                put_grad!(grads, bg, gb);
            }
            // The gradient of the norm's output: a buffer of this op, not of `Gradients`.
            let mut ga = recycled(a.len());
            backward_input_into(&g, &wk, &go, &mut ga, true);
            put_grad!(grads, &out_ghost, go);
            let mut gx = if need_x {
                Some(take_grad!(grads, &x_ghost))
            } else {
                None
            };
            let (dg, db) = gn_backward(&n, &xd, &ga, &gd, &bd, &mean, &rstd, gx.as_deref_mut());
            if let Some(gx) = gx {
                put_grad!(grads, &x_ghost, gx);
            }
            add_into(grads.get_or_alloc_mut(&g_ghost)?, &dg);
            add_into(grads.get_or_alloc_mut(&b_ghost)?, &db);
            recycle(ga);
            recycle(a);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// The epilogue operand's ghost, for its gradient.
enum Extra<G2, G4> {
    Offset(G2),
    Residual(G4),
}
