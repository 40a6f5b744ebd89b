//! Normalization on the CPU: group norm (with an optional fused ReLU or SiLU) and batch norm in
//! training and eval mode. NCHW input and per-channel affine parameters in; the normalized NCHW
//! output (and, for batch-norm training, the updated running statistics) out; backward for the
//! input and both affine parameters recorded on the tape.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, Merge, PutTape, Tape};
use rayon::prelude::*;

use super::math::{multiversion, sigmoid, sum, sum_sq_dev};
use super::tape::{data_of, merge_tapes, output, put_grad, recycled, split, take_grad, zeros};
use super::types::{
    config_err, shape_err, Activation, BatchNormCfg, GroupNormCfg, OpsError, RunningStats, Shape4,
    Tensor1, Tensor4,
};

/// Applies `act` to `y` (used by the fused normalization kernels).
#[inline(always)]
fn act_fwd(act: Activation, y: f32) -> f32 {
    match act {
        Activation::Identity => y,
        Activation::Relu => y.max(0.0),
        Activation::Silu => y * sigmoid(y),
    }
}

/// `d act(y) / dy * dz`.
#[inline(always)]
fn act_bwd(act: Activation, y: f32, dz: f32) -> f32 {
    match act {
        Activation::Identity => dz,
        Activation::Relu => {
            if y > 0.0 {
                dz
            } else {
                0.0
            }
        }
        Activation::Silu => {
            let s = sigmoid(y);
            dz * s * (1.0 + y * (1.0 - s))
        }
    }
}

/// Checks the affine parameter lengths against the channel count.
fn check_affine(op: &'static str, x: Shape4, gamma: usize, beta: usize) -> Result<(), OpsError> {
    if gamma != x.1 || beta != x.1 {
        return Err(shape_err(
            op,
            format!(
                "gamma has {gamma} and beta {beta} entries for {} channels",
                x.1
            ),
        ));
    }
    Ok(())
}

/// Group-norm geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GnGeom {
    pub b: usize,
    pub c: usize,
    pub hw: usize,
    pub groups: usize,
    pub eps: f32,
    pub act: Activation,
}

impl GnGeom {
    pub fn new(x: Shape4, gamma: usize, beta: usize, cfg: GroupNormCfg) -> Result<Self, OpsError> {
        const OP: &str = "group_norm";
        check_affine(OP, x, gamma, beta)?;
        if cfg.groups == 0 || !x.1.is_multiple_of(cfg.groups) {
            return Err(config_err(
                OP,
                format!("{} groups do not divide {} channels", cfg.groups, x.1),
            ));
        }
        if cfg.eps.is_nan() || cfg.eps < 0.0 {
            return Err(config_err(OP, "eps must be non-negative"));
        }
        Ok(Self {
            b: x.0,
            c: x.1,
            hw: x.2 * x.3,
            groups: cfg.groups,
            eps: cfg.eps,
            act: cfg.act,
        })
    }
    fn cpg(&self) -> usize {
        self.c / self.groups
    }
    fn n(&self) -> usize {
        self.cpg() * self.hw
    }
}

/// Group-norm forward: returns the output and the per-(sample, group) mean and 1/std.
pub(crate) fn gn_forward(
    g: &GnGeom,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = g.n();
    let stats: Vec<(f32, f32)> = if n == 0 {
        vec![(0.0, 0.0); g.b * g.groups]
    } else {
        x.par_chunks(n)
            .map(|grp| {
                let mean = sum(grp) / n as f32;
                let var = sum_sq_dev(grp, mean) / n as f32;
                (mean, 1.0 / (var + g.eps).sqrt())
            })
            .collect()
    };
    // Every row is written below (all of `y` when `hw` > 0).
    let mut y = if g.hw > 0 {
        recycled(x.len())
    } else {
        zeros(x.len())
    };
    if g.hw > 0 {
        y.par_chunks_mut(g.hw)
            .zip(x.par_chunks(g.hw))
            .enumerate()
            .for_each(|(row, (yr, xr))| {
                let (bi, c) = (row / g.c, row % g.c);
                let (mean, rstd) = stats[bi * g.groups + c / g.cpg()];
                let a = rstd * gamma[c];
                let sh = beta[c] - mean * a;
                apply_affine_act_mv(g.act, xr, yr, a, sh);
            });
    }
    let (mean, rstd) = stats.into_iter().unzip();
    (y, mean, rstd)
}

/// `y = act(x * a + sh)`, with the activation hoisted out of the loop.
#[inline(always)]
fn apply_affine_act(act: Activation, x: &[f32], y: &mut [f32], a: f32, sh: f32) {
    match act {
        Activation::Identity => {
            for (o, v) in y.iter_mut().zip(x) {
                *o = v * a + sh;
            }
        }
        Activation::Relu => {
            for (o, v) in y.iter_mut().zip(x) {
                *o = act_fwd(Activation::Relu, v * a + sh);
            }
        }
        Activation::Silu => {
            for (o, v) in y.iter_mut().zip(x) {
                *o = act_fwd(Activation::Silu, v * a + sh);
            }
        }
    }
}

/// `dy = f(x, dz)` row by row, returning `(sum dy, sum dy * (x - mean))` (8 lanes, vectorizes).
#[inline(always)]
fn back_row_with<F: Fn(f32, f32) -> f32>(
    f: F,
    x: &[f32],
    dz: &[f32],
    dy: &mut [f32],
    mean: f32,
) -> (f32, f32) {
    let mut s1 = [0.0f32; 8];
    let mut s2 = [0.0f32; 8];
    let n8 = x.len() / 8 * 8;
    for ((xc, zc), yc) in x[..n8]
        .chunks_exact(8)
        .zip(dz[..n8].chunks_exact(8))
        .zip(dy[..n8].chunks_exact_mut(8))
    {
        for l in 0..8 {
            let v = xc[l];
            let d = f(v, zc[l]);
            yc[l] = d;
            s1[l] += d;
            s2[l] += d * (v - mean);
        }
    }
    let (mut t1, mut t2) = (0.0f32, 0.0f32);
    for i in n8..x.len() {
        let d = f(x[i], dz[i]);
        dy[i] = d;
        t1 += d;
        t2 += d * (x[i] - mean);
    }
    (t1 + s1.iter().sum::<f32>(), t2 + s2.iter().sum::<f32>())
}

/// `dy = act'(x * a + sh) * dz`, returning `(sum dy, sum dy * (x - mean))`.
#[inline(always)]
fn act_back_row(
    act: Activation,
    x: &[f32],
    dz: &[f32],
    dy: &mut [f32],
    a: f32,
    sh: f32,
    mean: f32,
) -> (f32, f32) {
    match act {
        Activation::Identity => back_row_with(|_, d| d, x, dz, dy, mean),
        Activation::Relu => back_row_with(
            |v, d| act_bwd(Activation::Relu, v * a + sh, d),
            x,
            dz,
            dy,
            mean,
        ),
        Activation::Silu => back_row_with(
            |v, d| act_bwd(Activation::Silu, v * a + sh, d),
            x,
            dz,
            dy,
            mean,
        ),
    }
}

/// Group-norm backward for one sample; returns nothing, accumulates into `dgamma`, `dbeta` and
/// (when given) `gx`. `scratch` holds one sample's `dy`.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
fn gn_backward_sample(
    g: &GnGeom,
    x: &[f32],
    dz: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    gx: Option<&mut [f32]>,
    scratch: &mut [f32],
) {
    let (hw, cpg) = (g.hw, g.cpg());
    let n = g.n() as f32;
    let mut m1 = vec![0.0f32; g.groups];
    let mut m2 = vec![0.0f32; g.groups];
    for c in 0..g.c {
        let grp = c / cpg;
        let (mu, rs) = (mean[grp], rstd[grp]);
        let a = rs * gamma[c];
        let sh = beta[c] - mu * a;
        let r = c * hw..(c + 1) * hw;
        let (s1, s2) = act_back_row(
            g.act,
            &x[r.clone()],
            &dz[r.clone()],
            &mut scratch[r],
            a,
            sh,
            mu,
        );
        dbeta[c] += s1;
        dgamma[c] += s2 * rs;
        m1[grp] += gamma[c] * s1;
        m2[grp] += gamma[c] * s2 * rs;
    }
    let Some(gx) = gx else { return };
    for c in 0..g.c {
        let grp = c / cpg;
        let (mu, rs) = (mean[grp], rstd[grp]);
        let (k1, k2) = (m1[grp] / n, m2[grp] / n);
        let gc = gamma[c];
        let r = c * hw..(c + 1) * hw;
        for ((o, &v), &d) in gx[r.clone()].iter_mut().zip(&x[r.clone()]).zip(&scratch[r]) {
            let xhat = (v - mu) * rs;
            *o += rs * (gc * d - k1 - xhat * k2);
        }
    }
}

multiversion! {
    /// [`apply_affine_act`], compiled for the widest vectors available.
    fn apply_affine_act_mv(act: Activation, x: &[f32], y: &mut [f32], a: f32, sh: f32) {
        apply_affine_act(act, x, y, a, sh)
    }
}

multiversion! {
    /// [`gn_backward_sample`], compiled for the widest vectors available.
    #[allow(clippy::too_many_arguments)]
    fn gn_backward_sample_mv(
        g: &GnGeom,
        x: &[f32],
        dz: &[f32],
        gamma: &[f32],
        beta: &[f32],
        mean: &[f32],
        rstd: &[f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
        gx: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) {
        gn_backward_sample(g, x, dz, gamma, beta, mean, rstd, dgamma, dbeta, gx, scratch)
    }
}

/// Group-norm backward over the batch: returns `(dgamma, dbeta)` and accumulates into `gx`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gn_backward(
    g: &GnGeom,
    x: &[f32],
    dz: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    rstd: &[f32],
    gx: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let per = g.c * g.hw;
    let zero = || (vec![0.0f32; g.c], vec![0.0f32; g.c], vec![0.0f32; per]);
    if per == 0 || g.b == 0 {
        return (vec![0.0; g.c], vec![0.0; g.c]);
    }
    // One contiguous run of samples per worker, summed in order (see `fold_chunks`): the
    // parameter gradients must not depend on scheduling.
    let runs = super::math::runs(g.b);
    let mut gx_runs: Vec<Option<&mut [f32]>> = Vec::with_capacity(runs.len());
    match gx {
        Some(mut rest) => {
            for r in &runs {
                let (head, tail) = rest.split_at_mut(r.len() * per);
                gx_runs.push(Some(head));
                rest = tail;
            }
        }
        None => gx_runs.extend(runs.iter().map(|_| None)),
    }
    let parts: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = runs
        .into_par_iter()
        .zip(gx_runs)
        .map(|(r, mut gxr)| {
            let (mut dgm, mut dbt, mut scratch) = zero();
            for (k, bi) in r.enumerate() {
                let gs = bi * g.groups..(bi + 1) * g.groups;
                gn_backward_sample_mv(
                    g,
                    &x[bi * per..][..per],
                    &dz[bi * per..][..per],
                    gamma,
                    beta,
                    &mean[gs.clone()],
                    &rstd[gs],
                    &mut dgm,
                    &mut dbt,
                    gxr.as_deref_mut().map(|s| &mut s[k * per..][..per]),
                    &mut scratch,
                );
            }
            (dgm, dbt, scratch)
        })
        .collect();
    let (dgamma, dbeta, _) = parts
        .into_iter()
        .reduce(|mut a, b| {
            for (x, y) in a.0.iter_mut().zip(&b.0) {
                *x += y;
            }
            for (x, y) in a.1.iter_mut().zip(&b.1) {
                *x += y;
            }
            a
        })
        .unwrap_or_else(zero);
    (dgamma, dbeta)
}

/// `dst += src` (a parameter gradient into its buffer).
pub(crate) fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// [`super::Kernels::group_norm`] for [`Cpu`].
pub(crate) fn cpu_group_norm<Tx, T>(
    x: Tensor4<Cpu, Tx>,
    gamma: Tensor1<Cpu, T>,
    beta: Tensor1<Cpu, T>,
    cfg: GroupNormCfg,
) -> Result<Tensor4<Cpu, T>, OpsError>
where
    Tx: Tape<f32, Cpu>,
    T: Tape<f32, Cpu> + Merge<Tx>,
{
    let shape = *x.shape();
    let g = GnGeom::new(shape, gamma.shape().0, beta.shape().0, cfg)?;
    let (x, tx, xd) = split(x)?;
    let (gamma, tg, gd) = split(gamma)?;
    let (beta, tb, bd) = split(beta)?;
    let mut tape = merge_tapes(tg, tx).merge(tb);
    let (y, mean, rstd) = gn_forward(&g, &xd, &gd, &bd);
    let out = output(x.device(), y, shape)?;
    if T::OWNS_TAPE {
        let need_x = Tx::OWNS_TAPE;
        let (x_ghost, g_ghost, b_ghost, out_ghost) =
            (x.ghost(), gamma.ghost(), beta.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dz = take_grad!(grads, &out_ghost);
            let mut gx = if need_x {
                Some(take_grad!(grads, &x_ghost))
            } else {
                None
            };
            let (dg, db) = gn_backward(&g, &xd, &dz, &gd, &bd, &mean, &rstd, gx.as_deref_mut());
            if let Some(gx) = gx {
                put_grad!(grads, &x_ghost, gx);
            }
            add_into(grads.get_or_alloc_mut(&g_ghost)?, &dg);
            add_into(grads.get_or_alloc_mut(&b_ghost)?, &db);
            put_grad!(grads, &out_ghost, dz);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// Per-channel `(sum, sum of squared deviations from mean)` over batch and positions.
fn channel_stats(x: &[f32], b: usize, c: usize, hw: usize) -> Vec<(f32, f32)> {
    let n = (b * hw) as f32;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let s: f32 = (0..b).map(|bi| sum(&x[(bi * c + ch) * hw..][..hw])).sum();
            let mean = s / n;
            let ss: f32 = (0..b)
                .map(|bi| sum_sq_dev(&x[(bi * c + ch) * hw..][..hw], mean))
                .sum();
            (mean, ss / n)
        })
        .collect()
}

/// `y = x * a[c] + sh[c]` over NCHW rows.
fn channel_affine(x: &[f32], c: usize, hw: usize, a: &[f32], sh: &[f32]) -> Vec<f32> {
    let mut y = zeros(x.len());
    if hw > 0 {
        y.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .enumerate()
            .for_each(|(row, (yr, xr))| {
                let ch = row % c;
                apply_affine_act(Activation::Identity, xr, yr, a[ch], sh[ch]);
            });
    }
    y
}

/// Per-channel `(sum dy, sum dy * (x - mean[c]))`.
fn channel_grad_sums(
    x: &[f32],
    dy: &[f32],
    b: usize,
    c: usize,
    hw: usize,
    mean: &[f32],
) -> Vec<(f32, f32)> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for bi in 0..b {
                let r = (bi * c + ch) * hw..(bi * c + ch + 1) * hw;
                let (mut a1, mut a2) = ([0.0f32; 8], [0.0f32; 8]);
                for (i, (&v, &d)) in x[r.clone()].iter().zip(&dy[r]).enumerate() {
                    a1[i % 8] += d;
                    a2[i % 8] += d * (v - mean[ch]);
                }
                s1 += a1.iter().sum::<f32>();
                s2 += a2.iter().sum::<f32>();
            }
            (s1, s2)
        })
        .collect()
}

/// [`super::Kernels::batch_norm_train`] for [`Cpu`].
#[allow(clippy::type_complexity)]
pub(crate) fn cpu_batch_norm_train<Tx, T>(
    x: Tensor4<Cpu, Tx>,
    gamma: Tensor1<Cpu, T>,
    beta: Tensor1<Cpu, T>,
    running: &RunningStats<Cpu>,
    cfg: BatchNormCfg,
) -> Result<(Tensor4<Cpu, T>, RunningStats<Cpu>), OpsError>
where
    Tx: Tape<f32, Cpu>,
    T: Tape<f32, Cpu> + Merge<Tx>,
{
    const OP: &str = "batch_norm_train";
    let shape = *x.shape();
    let (b, c, hw) = (shape.0, shape.1, shape.2 * shape.3);
    check_affine(OP, shape, gamma.shape().0, beta.shape().0)?;
    check_affine(OP, shape, running.mean.shape().0, running.var.shape().0)?;
    if b * hw < 2 {
        return Err(shape_err(
            OP,
            "need more than one value per channel (batch * height * width >= 2)",
        ));
    }
    if (cfg.eps.is_nan() || cfg.eps < 0.0) || !(0.0..=1.0).contains(&cfg.momentum) {
        return Err(config_err(OP, "eps must be >= 0 and momentum in [0, 1]"));
    }
    let (x, tx, xd) = split(x)?;
    let (gamma, tg, gd) = split(gamma)?;
    let (beta, tb, bd) = split(beta)?;
    let mut tape = merge_tapes(tg, tx).merge(tb);
    let stats = channel_stats(&xd, b, c, hw);
    let mean: Vec<f32> = stats.iter().map(|s| s.0).collect();
    let rstd: Vec<f32> = stats.iter().map(|s| 1.0 / (s.1 + cfg.eps).sqrt()).collect();
    let a: Vec<f32> = (0..c).map(|ch| rstd[ch] * gd[ch]).collect();
    let sh: Vec<f32> = (0..c).map(|ch| bd[ch] - mean[ch] * a[ch]).collect();
    let y = channel_affine(&xd, c, hw, &a, &sh);
    let dev = x.device().clone();
    let out = output(&dev, y, shape)?;

    let n = (b * hw) as f32;
    let m = cfg.momentum;
    let rm = data_of(&running.mean)?;
    let rv = data_of(&running.var)?;
    let new_mean: Vec<f32> = (0..c).map(|ch| (1.0 - m) * rm[ch] + m * mean[ch]).collect();
    let new_var: Vec<f32> = (0..c)
        .map(|ch| (1.0 - m) * rv[ch] + m * stats[ch].1 * n / (n - 1.0))
        .collect();
    let new_running = RunningStats {
        mean: output(&dev, new_mean, (c,))?,
        var: output(&dev, new_var, (c,))?,
    };

    if T::OWNS_TAPE {
        let need_x = Tx::OWNS_TAPE;
        let (x_ghost, g_ghost, b_ghost, out_ghost) =
            (x.ghost(), gamma.ghost(), beta.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            let sums = channel_grad_sums(&xd, &dy, b, c, hw, &mean);
            if need_x {
                let mut gx = take_grad!(grads, &x_ghost);
                if hw > 0 {
                    gx.par_chunks_mut(hw)
                        .zip(dy.par_chunks(hw).zip(xd.par_chunks(hw)))
                        .enumerate()
                        .for_each(|(row, (o, (d, xr)))| {
                            let ch = row % c;
                            let (rs, mu) = (rstd[ch], mean[ch]);
                            let k1 = sums[ch].0 / n;
                            let k2 = sums[ch].1 * rs / n;
                            let gr = gd[ch] * rs;
                            for ((o, &d), &v) in o.iter_mut().zip(d).zip(xr) {
                                *o += gr * (d - k1 - (v - mu) * rs * k2);
                            }
                        });
                }
                put_grad!(grads, &x_ghost, gx);
            }
            let dg: Vec<f32> = (0..c).map(|ch| sums[ch].1 * rstd[ch]).collect();
            let db: Vec<f32> = sums.iter().map(|s| s.0).collect();
            add_into(grads.get_or_alloc_mut(&g_ghost)?, &dg);
            add_into(grads.get_or_alloc_mut(&b_ghost)?, &db);
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok((out.put_tape(tape), new_running))
}

/// [`super::Kernels::batch_norm_eval`] for [`Cpu`].
pub(crate) fn cpu_batch_norm_eval<Tx, T>(
    x: Tensor4<Cpu, Tx>,
    gamma: Tensor1<Cpu, T>,
    beta: Tensor1<Cpu, T>,
    running: &RunningStats<Cpu>,
    cfg: BatchNormCfg,
) -> Result<Tensor4<Cpu, T>, OpsError>
where
    Tx: Tape<f32, Cpu>,
    T: Tape<f32, Cpu> + Merge<Tx>,
{
    const OP: &str = "batch_norm_eval";
    let shape = *x.shape();
    let (b, c, hw) = (shape.0, shape.1, shape.2 * shape.3);
    check_affine(OP, shape, gamma.shape().0, beta.shape().0)?;
    check_affine(OP, shape, running.mean.shape().0, running.var.shape().0)?;
    if cfg.eps.is_nan() || cfg.eps < 0.0 {
        return Err(config_err(OP, "eps must be non-negative"));
    }
    let (x, tx, xd) = split(x)?;
    let (gamma, tg, gd) = split(gamma)?;
    let (beta, tb, bd) = split(beta)?;
    let mut tape = merge_tapes(tg, tx).merge(tb);
    let mean = data_of(&running.mean)?;
    let rstd: Vec<f32> = data_of(&running.var)?
        .iter()
        .map(|v| 1.0 / (v + cfg.eps).sqrt())
        .collect();
    let a: Vec<f32> = (0..c).map(|ch| rstd[ch] * gd[ch]).collect();
    let sh: Vec<f32> = (0..c).map(|ch| bd[ch] - mean[ch] * a[ch]).collect();
    let y = channel_affine(&xd, c, hw, &a, &sh);
    let out = output(x.device(), y, shape)?;
    if T::OWNS_TAPE {
        let need_x = Tx::OWNS_TAPE;
        let (x_ghost, g_ghost, b_ghost, out_ghost) =
            (x.ghost(), gamma.ghost(), beta.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &out_ghost);
            let sums = channel_grad_sums(&xd, &dy, b, c, hw, &mean);
            if need_x {
                let mut gx = take_grad!(grads, &x_ghost);
                if hw > 0 {
                    for (row, (o, d)) in gx.chunks_mut(hw).zip(dy.chunks(hw)).enumerate() {
                        let ac = a[row % c];
                        for (o, d) in o.iter_mut().zip(d) {
                            *o += ac * d;
                        }
                    }
                }
                put_grad!(grads, &x_ghost, gx);
            }
            let dg: Vec<f32> = (0..c).map(|ch| sums[ch].1 * rstd[ch]).collect();
            let db: Vec<f32> = sums.iter().map(|s| s.0).collect();
            add_into(grads.get_or_alloc_mut(&g_ghost)?, &dg);
            add_into(grads.get_or_alloc_mut(&b_ghost)?, &db);
            put_grad!(grads, &out_ghost, dy);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}
