//! Device-generic versions of every op, composed only from dfdx's stable tensor ops (matmul,
//! reshape, permute, broadcast, normalize, softmax, ...), so dfdx derives their backward. Same
//! inputs, outputs and tape convention as the [`super::Kernels`] methods. They are the reference
//! the CPU kernels are tested against and the implementation the `cuda` feature maps the trait to.
//!
//! Spatial resampling (the windows of a convolution, average pooling, upsampling) is expressed as
//! a product with a constant `[H*W, Ho*Wo]` selection matrix, which covers every stride, padding
//! and kernel size with one matmul per kernel offset; it is exact but dense, so it suits a
//! reference and moderate image sizes rather than speed.

use dfdx::shapes::{Axes2, Axes3, Axis, HasShape, Shape};
use dfdx::tensor::{Merge, NoneTape, PutTape, SplitTape, Tape, Tensor};
use dfdx::tensor_ops::{
    BroadcastTo, Device, MeanTo, PermuteTo, ReshapeTo, TryAdd, TryConcatAlong, TryMatMul, TryMul,
    TrySub, VarTo,
};

use super::conv::geom::ConvGeom;
use super::norm::GnGeom;
use super::pool::pool_out;
use super::types::{
    config_err, dev_err, shape_err, Activation, BatchNormCfg, Conv2dCfg, GroupNormCfg, OpsError,
    RunningStats, Shape4, Tensor1, Tensor2, Tensor3, Tensor4, Unary,
};

/// A constant `[rows, cols]` matrix on the device.
fn constant<D: Device<f32>>(
    dev: &D,
    data: Vec<f32>,
    rows: usize,
    cols: usize,
) -> Result<Tensor2<D>, OpsError> {
    dev.try_tensor_from_vec(data, (rows, cols)).map_err(dev_err)
}

/// `y[b, c] = x[b, c] . m` over flattened positions: `[B, C, H, W]` times `[H*W, Ho*Wo]`.
fn spatial_map<D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
    m: Tensor2<D>,
    ho: usize,
    wo: usize,
) -> Result<Tensor4<D, T>, OpsError> {
    let (b, c, h, w) = *x.shape();
    let flat = x.try_reshape_like(&(b * c, h * w)).map_err(dev_err)?;
    let y = flat.try_matmul(m).map_err(dev_err)?;
    y.try_reshape_like(&(b, c, ho, wo)).map_err(dev_err)
}

/// Splits off a tensor's tape; every later use gets a fresh `T::default()` tape and the original
/// tape is merged into the result, so each recorded op runs once.
fn untaped<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    t: Tensor<S, f32, D, T>,
) -> (Tensor<S, f32, D>, T) {
    t.split_tape()
}

/// Composed [`super::conv2d`].
pub fn conv2d<D, Tx, T>(
    x: Tensor4<D, Tx>,
    w: Tensor4<D, T>,
    b: Option<Tensor1<D, T>>,
    cfg: Conv2dCfg,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Device<f32>,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    let g = ConvGeom::new(*x.shape(), *w.shape(), b.as_ref().map(|b| b.shape().0), cfg)?;
    let dev = x.device().clone();
    let (x, tx) = untaped(x);
    let (w, tw) = untaped(w);
    // Tapes of the per-group slices; merged into the output so each recorded op runs once.
    let (mut x_tapes, mut w_tapes) = (vec![tx], vec![tw]);
    let (cg, og, k) = (g.cin / g.groups, g.cout / g.groups, g.k);
    let (hw, howo) = (g.h * g.w, g.ho * g.wo);
    let mut out: Option<Tensor3<D, T>> = None;
    for grp in 0..g.groups {
        let (xg, txg) = untaped(
            x.clone()
                .retaped::<Tx>()
                .try_slice((.., grp * cg..(grp + 1) * cg, .., ..))
                .map_err(dev_err)?
                .try_reshape_like(&(g.b, cg, g.h, g.w))
                .map_err(dev_err)?,
        );
        let (wg, twg) = untaped(
            w.clone()
                .retaped::<T>()
                .try_slice((grp * og..(grp + 1) * og, .., .., ..))
                .map_err(dev_err)?
                .try_reshape_like(&(og * cg, k * k))
                .map_err(dev_err)?,
        );
        x_tapes.push(txg);
        w_tapes.push(twg);
        let mut acc: Option<Tensor3<D, T>> = None;
        for ky in 0..k {
            for kx in 0..k {
                // Selection matrix of this kernel offset (zero rows where the window is padding).
                let mut sel = vec![0.0f32; hw * howo];
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let (iy, ix) = (oy * g.stride + ky, ox * g.stride + kx);
                        if iy >= g.pad && ix >= g.pad && iy - g.pad < g.h && ix - g.pad < g.w {
                            sel[((iy - g.pad) * g.w + ix - g.pad) * howo + oy * g.wo + ox] = 1.0;
                        }
                    }
                }
                let sel = constant(&dev, sel, hw, howo)?;
                let xs = spatial_map(xg.clone().retaped::<Tx>(), sel, g.ho, g.wo)?
                    .try_reshape_like(&(g.b, cg, howo))
                    .map_err(dev_err)?;
                let mut e = vec![0.0f32; k * k];
                e[ky * k + kx] = 1.0;
                let e = constant(&dev, e, k * k, 1)?;
                // One 2-D matmul over all samples: (og, cg) x (cg, b·howo). Broadcasting the
                // weight over the batch instead would need dfdx to sum the broadcast in backward,
                // which its CUDA reshape kernel does not do reliably.
                let wk = wg
                    .clone()
                    .retaped::<T>()
                    .try_matmul(e)
                    .map_err(dev_err)?
                    .try_reshape_like(&(og, cg))
                    .map_err(dev_err)?;
                let xs2 = xs
                    .try_permute::<_, Axes3<1, 0, 2>>()
                    .map_err(dev_err)?
                    .try_contiguous()
                    .map_err(dev_err)?
                    .try_reshape_like(&(cg, g.b * howo))
                    .map_err(dev_err)?;
                let yk = wk
                    .try_matmul(xs2)
                    .map_err(dev_err)?
                    .try_reshape_like(&(og, g.b, howo))
                    .map_err(dev_err)?
                    .try_permute::<_, Axes3<1, 0, 2>>()
                    .map_err(dev_err)?
                    .try_contiguous()
                    .map_err(dev_err)?;
                acc = Some(match acc {
                    None => yk,
                    Some(a) => a.try_add(yk).map_err(dev_err)?,
                });
            }
        }
        let acc = acc.ok_or_else(|| config_err("conv2d", "empty kernel"))?;
        out = Some(match out {
            None => acc,
            Some(o) => (o, acc).try_concat_along(Axis::<1>).map_err(dev_err)?,
        });
    }
    let y = out.ok_or_else(|| config_err("conv2d", "zero groups"))?;
    let y = y
        .try_reshape_like(&(g.b, g.cout, g.ho, g.wo))
        .map_err(dev_err)?;
    let y = match b {
        Some(b) => {
            let bb = b
                .try_broadcast_like::<_, Axes3<0, 2, 3>>(y.shape())
                .map_err(dev_err)?;
            bb.try_add(y).map_err(dev_err)?
        }
        None => y,
    };
    let (y, mut ty) = y.split_tape();
    for t in w_tapes {
        ty = ty.merge(t);
    }
    for t in x_tapes {
        ty = ty.merge(t);
    }
    Ok(y.put_tape(ty))
}

fn activate<D: Device<f32>, S: Shape, T: Tape<f32, D>>(
    y: Tensor<S, f32, D, T>,
    act: Activation,
) -> Result<Tensor<S, f32, D, T>, OpsError> {
    match act {
        Activation::Identity => Ok(y),
        Activation::Relu => unary(y, Unary::Relu),
        Activation::Silu => unary(y, Unary::Silu),
    }
}

/// `gamma[c] * xhat + beta[c]` with the parameters' tape on the left.
fn channel_affine<D, Tx, T>(
    xhat: Tensor4<D, Tx>,
    gamma: Tensor1<D, T>,
    beta: Tensor1<D, T>,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Device<f32>,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    let shape = *xhat.shape();
    let gb = gamma
        .try_broadcast_like::<_, Axes3<0, 2, 3>>(&shape)
        .map_err(dev_err)?;
    let bb = beta
        .try_broadcast_like::<_, Axes3<0, 2, 3>>(&shape)
        .map_err(dev_err)?;
    gb.try_mul(xhat)
        .map_err(dev_err)?
        .try_add(bb)
        .map_err(dev_err)
}

/// Composed [`super::group_norm`].
pub fn group_norm<D, Tx, T>(
    x: Tensor4<D, Tx>,
    gamma: Tensor1<D, T>,
    beta: Tensor1<D, T>,
    cfg: GroupNormCfg,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Device<f32>,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    let shape = *x.shape();
    GnGeom::new(shape, gamma.shape().0, beta.shape().0, cfg)?;
    let (b, c, h, w) = shape;
    let xr = x
        .try_reshape_like(&(b, cfg.groups, c / cfg.groups * h * w))
        .map_err(dev_err)?;
    let xhat = xr
        .try_normalize::<Axis<2>>(cfg.eps)
        .map_err(dev_err)?
        .try_reshape_like(&shape)
        .map_err(dev_err)?;
    activate(channel_affine(xhat, gamma, beta)?, cfg.act)
}

fn check_bn(
    op: &'static str,
    x: Shape4,
    gamma: usize,
    beta: usize,
    running: (usize, usize),
) -> Result<(), OpsError> {
    let c = x.1;
    if gamma != c || beta != c || running.0 != c || running.1 != c {
        return Err(shape_err(
            op,
            format!("per-channel parameters must have {c} entries"),
        ));
    }
    Ok(())
}

/// Composed [`super::batch_norm_train`].
#[allow(clippy::type_complexity)]
pub fn batch_norm_train<D, Tx, T>(
    x: Tensor4<D, Tx>,
    gamma: Tensor1<D, T>,
    beta: Tensor1<D, T>,
    running: &RunningStats<D>,
    cfg: BatchNormCfg,
) -> Result<(Tensor4<D, T>, RunningStats<D>), OpsError>
where
    D: Device<f32>,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    const OP: &str = "batch_norm_train";
    let shape = *x.shape();
    check_bn(
        OP,
        shape,
        gamma.shape().0,
        beta.shape().0,
        (running.mean.shape().0, running.var.shape().0),
    )?;
    let n = shape.0 * shape.2 * shape.3;
    if n < 2 {
        return Err(shape_err(OP, "need more than one value per channel"));
    }
    let plain = x.retaped::<NoneTape>();
    let mean: Tensor1<D> = plain
        .clone()
        .try_mean::<_, Axes3<0, 2, 3>>()
        .map_err(dev_err)?;
    let var: Tensor1<D> = plain.try_var::<_, Axes3<0, 2, 3>>().map_err(dev_err)?;
    let m = cfg.momentum;
    let unbias = n as f32 / (n as f32 - 1.0);
    let new_mean = running
        .mean
        .clone()
        .try_mul(1.0 - m)
        .map_err(dev_err)?
        .try_add(mean.try_mul(m).map_err(dev_err)?)
        .map_err(dev_err)?;
    let new_var = running
        .var
        .clone()
        .try_mul(1.0 - m)
        .map_err(dev_err)?
        .try_add(var.try_mul(m * unbias).map_err(dev_err)?)
        .map_err(dev_err)?;
    let xhat = x
        .try_normalize::<Axes3<0, 2, 3>>(cfg.eps)
        .map_err(dev_err)?;
    let y = channel_affine(xhat, gamma, beta)?;
    Ok((
        y,
        RunningStats {
            mean: new_mean,
            var: new_var,
        },
    ))
}

/// Composed [`super::batch_norm_eval`].
pub fn batch_norm_eval<D, Tx, T>(
    x: Tensor4<D, Tx>,
    gamma: Tensor1<D, T>,
    beta: Tensor1<D, T>,
    running: &RunningStats<D>,
    cfg: BatchNormCfg,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Device<f32>,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    let shape = *x.shape();
    check_bn(
        "batch_norm_eval",
        shape,
        gamma.shape().0,
        beta.shape().0,
        (running.mean.shape().0, running.var.shape().0),
    )?;
    let inv_std = running
        .var
        .clone()
        .try_add(cfg.eps)
        .map_err(dev_err)?
        .try_sqrt()
        .map_err(dev_err)?
        .try_recip()
        .map_err(dev_err)?;
    let scale = gamma.try_mul(inv_std).map_err(dev_err)?;
    let mb = running
        .mean
        .clone()
        .try_broadcast_like::<_, Axes3<0, 2, 3>>(&shape)
        .map_err(dev_err)?;
    let centered = x.try_sub(mb).map_err(dev_err)?;
    channel_affine(centered, scale, beta)
}

/// Composed [`super::unary`].
pub fn unary<D: Device<f32>, S: Shape, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    op: Unary,
) -> Result<Tensor<S, f32, D, T>, OpsError> {
    match op {
        Unary::Relu => x.try_relu().map_err(dev_err),
        Unary::Tanh => x.try_tanh().map_err(dev_err),
        Unary::Silu => {
            let s = x.retaped::<T>().try_sigmoid().map_err(dev_err)?;
            x.try_mul(s).map_err(dev_err)
        }
        Unary::Softplus => {
            // max(x, 0) + ln(1 + exp(-|x|))
            let tail = x
                .retaped::<T>()
                .try_abs()
                .map_err(dev_err)?
                .try_negate()
                .map_err(dev_err)?
                .try_exp()
                .map_err(dev_err)?
                .try_add(1.0)
                .map_err(dev_err)?
                .try_ln()
                .map_err(dev_err)?;
            x.try_relu()
                .map_err(dev_err)?
                .try_add(tail)
                .map_err(dev_err)
        }
    }
}

/// Composed [`super::avg_pool2d`].
pub fn avg_pool2d<D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
    kernel: usize,
    stride: usize,
) -> Result<Tensor4<D, T>, OpsError> {
    let shape = *x.shape();
    let os = pool_out(shape, kernel, stride)?;
    let (h, w, ho, wo) = (shape.2, shape.3, os.2, os.3);
    let mut m = vec![0.0f32; h * w * ho * wo];
    let inv = 1.0 / (kernel * kernel) as f32;
    for oy in 0..ho {
        for ox in 0..wo {
            for ky in 0..kernel {
                for kx in 0..kernel {
                    let (iy, ix) = (oy * stride + ky, ox * stride + kx);
                    m[(iy * w + ix) * ho * wo + oy * wo + ox] = inv;
                }
            }
        }
    }
    let m = constant(x.device(), m, h * w, ho * wo)?;
    spatial_map(x, m, ho, wo)
}

/// Composed [`super::global_avg_pool`].
pub fn global_avg_pool<D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
) -> Result<Tensor2<D, T>, OpsError> {
    let (_, _, h, w) = *x.shape();
    if h * w == 0 {
        return Err(shape_err(
            "global_avg_pool",
            "input has no spatial positions",
        ));
    }
    x.try_mean::<_, Axes2<2, 3>>().map_err(dev_err)
}

/// Composed [`super::upsample_nearest`].
pub fn upsample_nearest<D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
    factor: usize,
) -> Result<Tensor4<D, T>, OpsError> {
    let (_, _, h, w) = *x.shape();
    let f = factor.max(1);
    let (ho, wo) = (f * h, f * w);
    let mut m = vec![0.0f32; h * w * ho * wo];
    for oy in 0..ho {
        for ox in 0..wo {
            m[((oy / f) * w + ox / f) * ho * wo + oy * wo + ox] = 1.0;
        }
    }
    let m = constant(x.device(), m, h * w, ho * wo)?;
    spatial_map(x, m, ho, wo)
}

/// Zero padding of H and W (`before` at the top and left, `after` at the bottom and right):
/// concatenations with zero blocks, so dfdx derives the backward (a crop).
pub fn pad2d<D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
    before: usize,
    after: usize,
) -> Result<Tensor4<D, T>, OpsError> {
    let dev = x.device().clone();
    let zeros = |s: (usize, usize, usize, usize)| dev.try_zeros_like(&s).map_err(dev_err);
    let (b, c, h, w) = *x.shape();
    let mut y = x.try_reshape_like(&(b, c, h, w)).map_err(dev_err)?;
    if before > 0 {
        // The tape travels on the first operand (the zeros' concat records the backward).
        let (yv, tape) = y.split_tape();
        y = (zeros((b, c, before, w))?.put_tape(tape), yv)
            .try_concat_along(Axis::<2>)
            .map_err(dev_err)?
            .try_reshape_like(&(b, c, h + before, w))
            .map_err(dev_err)?;
    }
    if after > 0 {
        let hh = h + before;
        y = (y, zeros((b, c, after, w))?)
            .try_concat_along(Axis::<2>)
            .map_err(dev_err)?
            .try_reshape_like(&(b, c, hh + after, w))
            .map_err(dev_err)?;
    }
    let ho = h + before + after;
    if before > 0 {
        let (yv, tape) = y.split_tape();
        y = (zeros((b, c, ho, before))?.put_tape(tape), yv)
            .try_concat_along(Axis::<3>)
            .map_err(dev_err)?
            .try_reshape_like(&(b, c, ho, w + before))
            .map_err(dev_err)?;
    }
    if after > 0 {
        let ww = w + before;
        y = (y, zeros((b, c, ho, after))?)
            .try_concat_along(Axis::<3>)
            .map_err(dev_err)?
            .try_reshape_like(&(b, c, ho, ww + after))
            .map_err(dev_err)?;
    }
    Ok(y)
}

/// Composed [`attention`](fn@super::attention).
pub fn attention<D: Device<f32>, T: Tape<f32, D>>(
    q: Tensor3<D, T>,
    k: Tensor3<D, T>,
    v: Tensor3<D, T>,
) -> Result<Tensor3<D, T>, OpsError> {
    let shape = *q.shape();
    if *k.shape() != shape || *v.shape() != shape {
        return Err(shape_err(
            "attention",
            "q, k and v must have the same shape",
        ));
    }
    let scale = 1.0 / (shape.1 as f32).sqrt();
    let qt = q.try_permute::<_, Axes3<0, 2, 1>>().map_err(dev_err)?;
    let s = qt
        .try_matmul(k)
        .map_err(dev_err)?
        .try_mul(scale)
        .map_err(dev_err)?;
    let p = s.try_softmax::<Axis<2>>().map_err(dev_err)?;
    let pt = p.try_permute::<_, Axes3<0, 2, 1>>().map_err(dev_err)?;
    v.try_matmul(pt).map_err(dev_err)
}

/// Composed [`attention_qkv`](fn@super::attention_qkv): q, k and v sliced off the projection
/// with dfdx, each head through [`attention`].
pub fn attention_qkv<D: Device<f32>, T: Tape<f32, D>>(
    qkv: Tensor4<D, T>,
    heads: usize,
) -> Result<Tensor4<D, T>, OpsError> {
    let (b, c3, h, w) = *qkv.shape();
    let c = super::attention::qkv_channels(c3, heads)?;
    let (n, hd) = (h * w, c / heads);
    let (x5, tape) = qkv
        .try_reshape_like(&(b, 3usize, c, n))
        .map_err(dev_err)?
        .split_tape();
    // Each of q, k, v as `[B·heads, C/heads, N]`; the tape rides on q.
    let part = |j: usize| -> Result<Tensor3<D, T>, OpsError> {
        x5.clone()
            .retaped::<T>()
            .try_slice((.., j..j + 1, .., ..))
            .map_err(dev_err)?
            .try_reshape_like(&(b * heads, hd, n))
            .map_err(dev_err)
    };
    let (q, tq) = part(0)?.split_tape();
    let (k, tk) = part(1)?.split_tape();
    let (v, tv) = part(2)?.split_tape();
    let q = q.put_tape(tape.merge(tq).merge(tk).merge(tv));
    attention(q, k.retaped::<T>(), v.retaped::<T>())?
        .try_reshape_like(&(b, c, h, w))
        .map_err(dev_err)
}

/// Composed [`super::add_channel_offset`].
pub fn add_channel_offset<D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor4<D, T>,
    offset: Tensor2<D, T>,
) -> Result<Tensor4<D, T>, OpsError> {
    let shape = *x.shape();
    if *offset.shape() != (shape.0, shape.1) {
        return Err(shape_err(
            "add_channel_offset",
            "offset must be [batch, channels]",
        ));
    }
    let ob = offset
        .try_broadcast_like::<_, Axes2<2, 3>>(&shape)
        .map_err(dev_err)?;
    x.try_add(ob).map_err(dev_err)
}

/// Composed [`super::conv2d_time`]: the time channel built as a tensor, prepended to `x` and
/// convolved with the rest (the reference the CPU kernel is tested against).
pub fn conv2d_time<D, Tx, T>(
    x: Tensor4<D, Tx>,
    time: &[f32],
    plane: &[f32],
    w: Tensor4<D, T>,
    b: Option<Tensor1<D, T>>,
    cfg: Conv2dCfg,
) -> Result<Tensor4<D, T>, OpsError>
where
    D: Device<f32>,
    Tx: Tape<f32, D>,
    T: Tape<f32, D> + Merge<Tx>,
{
    let (bn, _, h, wd) = *x.shape();
    if time.len() != bn || plane.len() != h * wd {
        return Err(shape_err(
            "conv2d_time",
            format!(
                "{} times and a {}-value plane for {bn} samples of {h}x{wd}",
                time.len(),
                plane.len()
            ),
        ));
    }
    let data: Vec<f32> = time
        .iter()
        .flat_map(|t| plane.iter().map(move |p| t * p))
        .collect();
    let chan = x
        .device()
        .clone()
        .try_tensor_from_vec(data, (bn, 1, h, wd))
        .map_err(dev_err)?;
    let cat = (chan.retaped::<Tx>(), x)
        .try_concat_along(Axis::<1>)
        .map_err(dev_err)?;
    conv2d(cat, w, b, cfg)
}

/// Composed [`super::mse_loss`]: dfdx's own.
pub fn mse_loss<D: Device<f32>, S: Shape, T: Tape<f32, D>>(
    pred: Tensor<S, f32, D, T>,
    target: Tensor<S, f32, D>,
) -> Result<Tensor<(), f32, D, T>, OpsError> {
    if pred.shape().concrete() != target.shape().concrete() {
        return Err(shape_err(
            "mse_loss",
            "prediction and target differ in shape",
        ));
    }
    Ok(dfdx::losses::mse_loss(pred, target))
}

/// Composed [`super::add`].
pub fn add<D: Device<f32>, S: Shape, T: Tape<f32, D>>(
    a: Tensor<S, f32, D, T>,
    b: Tensor<S, f32, D, T>,
) -> Result<Tensor<S, f32, D, T>, OpsError> {
    if a.shape().concrete() != b.shape().concrete() {
        return Err(shape_err("add", "operands differ in shape"));
    }
    a.try_add(b).map_err(dev_err)
}

#[cfg(feature = "cuda")]
impl super::dispatch::Kernels for dfdx::tensor::Cuda {
    fn conv2d<Tx, T>(
        x: Tensor4<Self, Tx>,
        w: Tensor4<Self, T>,
        b: Option<Tensor1<Self, T>>,
        cfg: Conv2dCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>,
    {
        conv2d(x, w, b, cfg)
    }
    fn conv2d_time<Tx, T>(
        x: Tensor4<Self, Tx>,
        time: &[f32],
        plane: &[f32],
        w: Tensor4<Self, T>,
        b: Option<Tensor1<Self, T>>,
        cfg: Conv2dCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>,
    {
        conv2d_time(x, time, plane, w, b, cfg)
    }
    fn group_norm<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        cfg: GroupNormCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>,
    {
        group_norm(x, gamma, beta, cfg)
    }
    fn batch_norm_train<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        running: &RunningStats<Self>,
        cfg: BatchNormCfg,
    ) -> Result<(Tensor4<Self, T>, RunningStats<Self>), OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>,
    {
        batch_norm_train(x, gamma, beta, running, cfg)
    }
    fn batch_norm_eval<Tx, T>(
        x: Tensor4<Self, Tx>,
        gamma: Tensor1<Self, T>,
        beta: Tensor1<Self, T>,
        running: &RunningStats<Self>,
        cfg: BatchNormCfg,
    ) -> Result<Tensor4<Self, T>, OpsError>
    where
        Tx: Tape<f32, Self>,
        T: Tape<f32, Self> + Merge<Tx>,
    {
        batch_norm_eval(x, gamma, beta, running, cfg)
    }
    fn unary<S: Shape, T: Tape<f32, Self>>(
        x: Tensor<S, f32, Self, T>,
        op: Unary,
    ) -> Result<Tensor<S, f32, Self, T>, OpsError> {
        unary(x, op)
    }
    fn avg_pool2d<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        kernel: usize,
        stride: usize,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        avg_pool2d(x, kernel, stride)
    }
    fn global_avg_pool<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
    ) -> Result<Tensor2<Self, T>, OpsError> {
        global_avg_pool(x)
    }
    fn upsample_nearest<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        factor: usize,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        upsample_nearest(x, factor)
    }
    fn attention<T: Tape<f32, Self>>(
        q: Tensor3<Self, T>,
        k: Tensor3<Self, T>,
        v: Tensor3<Self, T>,
    ) -> Result<Tensor3<Self, T>, OpsError> {
        attention(q, k, v)
    }
    fn attention_qkv<T: Tape<f32, Self>>(
        qkv: Tensor4<Self, T>,
        heads: usize,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        attention_qkv(qkv, heads)
    }
    fn add_channel_offset<T: Tape<f32, Self>>(
        x: Tensor4<Self, T>,
        offset: Tensor2<Self, T>,
    ) -> Result<Tensor4<Self, T>, OpsError> {
        add_channel_offset(x, offset)
    }
    fn add<S: Shape, T: Tape<f32, Self>>(
        a: Tensor<S, f32, Self, T>,
        b: Tensor<S, f32, Self, T>,
    ) -> Result<Tensor<S, f32, Self, T>, OpsError> {
        add(a, b)
    }
    fn mse_loss<S: Shape, T: Tape<f32, Self>>(
        pred: Tensor<S, f32, Self, T>,
        target: Tensor<S, f32, Self>,
    ) -> Result<Tensor<(), f32, Self, T>, OpsError> {
        mse_loss(pred, target)
    }
}
