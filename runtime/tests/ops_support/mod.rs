//! Shared helpers of the ops tests: deterministic random data, straightforward f64 reference
//! implementations of every op (plain loops, no dfdx), central finite differences of a reference
//! loss, and tolerance checks. Inputs are flat NCHW slices; outputs flat vectors.
#![allow(dead_code, clippy::too_many_arguments)]

use dfdx::prelude::*;

pub type Dev = Cpu;
pub type Tp = OwnedTape<f32, Cpu>;

/// Deterministic values in [-1, 1) (xorshift).
pub fn rand_vec(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

pub fn t1(dev: &Dev, v: &[f32]) -> Tensor<(usize,), f32, Dev> {
    dev.tensor_from_vec(v.to_vec(), (v.len(),))
}
pub fn t2(dev: &Dev, v: &[f32], s: (usize, usize)) -> Tensor<(usize, usize), f32, Dev> {
    dev.tensor_from_vec(v.to_vec(), s)
}
pub fn t3(
    dev: &Dev,
    v: &[f32],
    s: (usize, usize, usize),
) -> Tensor<(usize, usize, usize), f32, Dev> {
    dev.tensor_from_vec(v.to_vec(), s)
}
pub fn t4(
    dev: &Dev,
    v: &[f32],
    s: (usize, usize, usize, usize),
) -> Tensor<(usize, usize, usize, usize), f32, Dev> {
    dev.tensor_from_vec(v.to_vec(), s)
}

/// `sum(out * r)` on the tape, then backward; returns the gradients.
pub fn backward_weighted<S: Shape>(out: Tensor<S, f32, Dev, Tp>, r: &[f32]) -> Gradients<f32, Dev> {
    let dev = out.device().clone();
    let shape = *out.shape();
    let rt: Tensor<S, f32, Dev> = dev.tensor_from_vec(r.to_vec(), shape);
    (out * rt).sum::<Rank0, _>().backward()
}

/// `sum(out * r)` in f64.
pub fn weighted(out: &[f64], r: &[f32]) -> f64 {
    out.iter().zip(r).map(|(a, &b)| a * b as f64).sum()
}

/// Central finite differences of `f` with respect to every entry of `v`.
pub fn fd(v: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-5;
    let mut p = v.to_vec();
    (0..v.len())
        .map(|i| {
            let orig = p[i];
            p[i] = orig + h;
            let up = f(&p);
            p[i] = orig - h;
            let down = f(&p);
            p[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// `|got - want| <= rtol * max(|want|_inf, 1e-3)` elementwise.
pub fn assert_close(name: &str, got: &[f32], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= rtol * scale,
            "{name}[{i}]: got {g}, want {w} (err {err:.3e}, scale {scale:.3e})"
        );
    }
}

pub fn assert_close32(name: &str, got: &[f32], want: &[f32], rtol: f64) {
    assert_close(name, got, &f64s(want), rtol);
}

// ---------------------------------------------------------------- f64 references

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// 0 = identity, 1 = relu, 2 = silu
pub fn act(kind: u8, y: f64) -> f64 {
    match kind {
        1 => y.max(0.0),
        2 => y * sigmoid(y),
        _ => y,
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ConvCase {
    pub b: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
    pub bias: bool,
}

impl ConvCase {
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }
}

pub fn conv_ref(c: &ConvCase, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
    let (ho, wo) = c.out_hw();
    let cg = c.cin / c.groups;
    let og = c.cout / c.groups;
    let mut y = vec![0.0; c.b * c.cout * ho * wo];
    for bi in 0..c.b {
        for co in 0..c.cout {
            let g = co / og;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = b.map_or(0.0, |b| b[co]);
                    for ci in 0..cg {
                        for ky in 0..c.k {
                            for kx in 0..c.k {
                                let iy = (oy * c.stride + ky) as isize - c.pad as isize;
                                let ix = (ox * c.stride + kx) as isize - c.pad as isize;
                                if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize {
                                    continue;
                                }
                                let xc = g * cg + ci;
                                s += x[((bi * c.cin + xc) * c.h + iy as usize) * c.w + ix as usize]
                                    * w[((co * cg + ci) * c.k + ky) * c.k + kx];
                            }
                        }
                    }
                    y[((bi * c.cout + co) * ho + oy) * wo + ox] = s;
                }
            }
        }
    }
    y
}

pub fn group_norm_ref(
    x: &[f64],
    s: (usize, usize, usize, usize),
    groups: usize,
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
    act_kind: u8,
) -> Vec<f64> {
    let (b, c, h, w) = s;
    let hw = h * w;
    let cpg = c / groups;
    let n = (cpg * hw) as f64;
    let mut y = vec![0.0; x.len()];
    for bi in 0..b {
        for g in 0..groups {
            let r = (bi * c + g * cpg) * hw..(bi * c + (g + 1) * cpg) * hw;
            let mean = x[r.clone()].iter().sum::<f64>() / n;
            let var = x[r.clone()].iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            for i in r {
                let ch = (i / hw) % c;
                let xhat = (x[i] - mean) / (var + eps).sqrt();
                y[i] = act(act_kind, xhat * gamma[ch] + beta[ch]);
            }
        }
    }
    y
}

/// Batch statistics per channel: (mean, biased var).
pub fn channel_stats_ref(x: &[f64], s: (usize, usize, usize, usize)) -> (Vec<f64>, Vec<f64>) {
    let (b, c, h, w) = s;
    let hw = h * w;
    let n = (b * hw) as f64;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for ch in 0..c {
        let vals: Vec<f64> = (0..b)
            .flat_map(|bi| {
                x[(bi * c + ch) * hw..(bi * c + ch + 1) * hw]
                    .iter()
                    .copied()
            })
            .collect();
        mean[ch] = vals.iter().sum::<f64>() / n;
        var[ch] = vals.iter().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / n;
    }
    (mean, var)
}

pub fn channel_norm_ref(
    x: &[f64],
    s: (usize, usize, usize, usize),
    mean: &[f64],
    var: &[f64],
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> Vec<f64> {
    let hw = s.2 * s.3;
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / hw) % s.1;
            (v - mean[ch]) / (var[ch] + eps).sqrt() * gamma[ch] + beta[ch]
        })
        .collect()
}

pub fn avg_pool_ref(
    x: &[f64],
    s: (usize, usize, usize, usize),
    k: usize,
    st: usize,
) -> (Vec<f64>, usize, usize) {
    let (b, c, h, w) = s;
    let (ho, wo) = ((h - k) / st + 1, (w - k) / st + 1);
    let mut y = vec![0.0; b * c * ho * wo];
    for p in 0..b * c {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = 0.0;
                for ky in 0..k {
                    for kx in 0..k {
                        acc += x[p * h * w + (oy * st + ky) * w + ox * st + kx];
                    }
                }
                y[p * ho * wo + oy * wo + ox] = acc / (k * k) as f64;
            }
        }
    }
    (y, ho, wo)
}

pub fn upsample_ref(x: &[f64], s: (usize, usize, usize, usize), f: usize) -> Vec<f64> {
    let (b, c, h, w) = s;
    let mut y = vec![0.0; b * c * f * f * h * w];
    for p in 0..b * c {
        for oy in 0..f * h {
            for ox in 0..f * w {
                y[p * f * f * h * w + oy * f * w + ox] = x[p * h * w + (oy / f) * w + ox / f];
            }
        }
    }
    y
}

pub fn attention_ref(q: &[f64], k: &[f64], v: &[f64], b: usize, c: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; b * c * n];
    let scale = 1.0 / (c as f64).sqrt();
    for bi in 0..b {
        let o = bi * c * n;
        for i in 0..n {
            let s: Vec<f64> = (0..n)
                .map(|j| {
                    (0..c)
                        .map(|ch| q[o + ch * n + i] * k[o + ch * n + j])
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for ch in 0..c {
                out[o + ch * n + i] = (0..n).map(|j| e[j] / z * v[o + ch * n + j]).sum();
            }
        }
    }
    out
}

pub fn linear_ref(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    n: usize,
    fin: usize,
    fout: usize,
) -> Vec<f64> {
    let mut y = vec![0.0; n * fout];
    for i in 0..n {
        for o in 0..fout {
            y[i * fout + o] = b.map_or(0.0, |b| b[o])
                + (0..fin)
                    .map(|j| x[i * fin + j] * w[o * fin + j])
                    .sum::<f64>();
        }
    }
    y
}
