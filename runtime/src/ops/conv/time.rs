//! The time channel of a ConcatConv without the channel: the geometry of the convolution of
//! `x` and the channel's spatial pattern in; the channel's share of the output and of the weight
//! gradient out. The time channel of sample `b` is `t_b * plane`, so its share of the output
//! is `t_b * M` with `M = conv(plane, w[:, 0])`, one `[Cout, Ho, Wo]` map for the whole batch,
//! and its weight gradient is `sum_b t_b * go_b` correlated with the plane
//! ([`super::cpu_conv2d_time`] runs the convolution of `x` itself).

use super::geom::ConvGeom;

/// The time plane's value at input position `(iy, ix)` counted from the padded corner, 0 in the
/// padding.
fn plane_at(g: &ConvGeom, plane: &[f32], iy: usize, ix: usize) -> f32 {
    if iy < g.pad || ix < g.pad || iy - g.pad >= g.h || ix - g.pad >= g.w {
        return 0.0;
    }
    plane[(iy - g.pad) * g.w + ix - g.pad]
}

/// The plane as each kernel tap sees it: `taps[q][oy * wo + ox] = plane(oy * s + ky, ox * s +
/// kx)` for `q = (ky, kx)` (zero in the padding).
fn taps(g: &ConvGeom, plane: &[f32]) -> Vec<f32> {
    let (k, howo) = (g.k, g.howo());
    let mut t = vec![0.0f32; k * k * howo];
    for (q, row) in t.chunks_exact_mut(howo.max(1)).enumerate().take(k * k) {
        let (ky, kx) = (q / k, q % k);
        for (pos, v) in row.iter_mut().enumerate() {
            *v = plane_at(
                g,
                plane,
                (pos / g.wo) * g.stride + ky,
                (pos % g.wo) * g.stride + kx,
            );
        }
    }
    t
}

/// `m[o][oy * wo + ox] = sum_{ky, kx} w0[o][ky][kx] * plane(oy * s + ky, ox * s + kx)`.
pub(super) fn time_map(g: &ConvGeom, plane: &[f32], w0: &[f32]) -> Vec<f32> {
    let (kk2, howo) = (g.k * g.k, g.howo());
    let t = taps(g, plane);
    let mut m = vec![0.0f32; g.cout * howo];
    if howo == 0 {
        return m;
    }
    for (o, row) in m.chunks_exact_mut(howo).enumerate() {
        for (q, tap) in t.chunks_exact(howo).enumerate() {
            let wv = w0[o * kk2 + q];
            row.iter_mut().zip(tap).for_each(|(d, v)| *d += wv * v);
        }
    }
    m
}

/// Splits `[Cout, Cin + 1, k, k]` weights into the time channel's `[Cout, k, k]` and the rest.
pub(super) fn split_weights(g: &ConvGeom, w: &[f32]) -> (Vec<f32>, Vec<f32>) {
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

crate::ops::math::multiversion! {
    /// `img += t * m`.
    fn add_scaled(img: &mut [f32], m: &[f32], t: f32) {
        for (d, s) in img.iter_mut().zip(m) {
            *d += t * s;
        }
    }
}

/// Adds `t_b * m` to every image of `y` (`[B, Cout, Ho, Wo]`), images on the workers.
pub(super) fn add_time_map(y: &mut [f32], m: &[f32], time: &[f32]) {
    use rayon::prelude::*;
    if m.is_empty() {
        return;
    }
    y.par_chunks_exact_mut(m.len())
        .zip(time)
        .for_each(|(img, &t)| add_scaled(img, m, t));
}

/// The time channel's weight gradient `[Cout, k, k]`: `s = sum_b t_b go_b` correlated with
/// the plane, each output channel on its own worker.
pub(super) fn time_weight_grad(g: &ConvGeom, plane: &[f32], time: &[f32], go: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let (kk2, howo) = (g.k * g.k, g.howo());
    let mut out = vec![0.0f32; g.cout * kk2];
    if howo == 0 {
        return out;
    }
    let t = taps(g, plane);
    out.par_chunks_mut(kk2).enumerate().for_each(|(o, row)| {
        let mut s = vec![0.0f32; howo];
        for (img, tb) in go.chunks_exact(g.cout * howo).zip(time) {
            let src = &img[o * howo..][..howo];
            s.iter_mut().zip(src).for_each(|(d, v)| *d += tb * v);
        }
        for (d, tap) in row.iter_mut().zip(t.chunks_exact(howo)) {
            *d = s.iter().zip(tap).map(|(a, b)| a * b).sum();
        }
    });
    out
}
