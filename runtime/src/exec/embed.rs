//! What the time branch computes on the host (it carries no gradient): sinusoidal features of
//! t, Gaussian random Fourier features of log t, and the positional injection pattern.

use tdspec_compiler::ir::positional_pattern;

/// DDPM's sinusoidal embedding: `[sin(t·f_i), cos(t·f_i)]`, `f_i = exp(-ln(10000) i / (d/2 - 1))`.
pub fn sinusoidal(t: &[f32], dim: usize, scale: f64) -> Vec<f32> {
    let freqs = tdspec_compiler::accounting::embedding::frequencies(dim);
    sinusoidal_of(t, &freqs, scale, false)
}

/// `[sin(s·t·f_i), cos(s·t·f_i)]` per sample, cosines first when `flip`, in f64.
pub fn sinusoidal_of(t: &[f32], freqs: &[f64], scale: f64, flip: bool) -> Vec<f32> {
    let mut out = Vec::with_capacity(t.len() * 2 * freqs.len());
    for &tv in t {
        let args: Vec<f64> = freqs.iter().map(|f| scale * tv as f64 * f).collect();
        let sin: Vec<f32> = args.iter().map(|a| a.sin() as f32).collect();
        let cos: Vec<f32> = args.iter().map(|a| a.cos() as f32).collect();
        halves(&mut out, sin, cos, flip);
    }
    out
}

/// One sample's features: sines then cosines, or cosines first when `flip`.
fn halves(out: &mut Vec<f32>, sin: Vec<f32>, cos: Vec<f32>, flip: bool) {
    let (a, b) = if flip { (cos, sin) } else { (sin, cos) };
    out.extend(a);
    out.extend(b);
}

/// Gaussian random Fourier features per sample: `u = ln t` (or `t`), `a_i = u·w_i·2·π` in f32
/// in PyTorch's order, then `[sin a, cos a]` (cosines first when `flip`).
pub fn fourier_of(t: &[f32], w: &[f32], log: bool, flip: bool) -> Vec<f32> {
    let mut out = Vec::with_capacity(t.len() * 2 * w.len());
    for &tv in t {
        let u = if log { tv.ln() } else { tv };
        let args: Vec<f32> = w
            .iter()
            .map(|&wi| u * wi * 2.0 * std::f32::consts::PI)
            .collect();
        let sin = args.iter().map(|a| a.sin()).collect();
        let cos = args.iter().map(|a| a.cos()).collect();
        halves(&mut out, sin, cos, flip);
    }
    out
}

/// The positional injection pattern `[C, H, W]`.
pub fn pattern(c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(c * h * w);
    for ci in 0..c {
        for i in 0..h {
            for j in 0..w {
                out.push(positional_pattern(ci, i, j, h, w) as f32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourier_features_of_log_t() {
        let w = [0.5f32, -2.0];
        let out = fourier_of(&[1.0, std::f32::consts::E], &w, true, false);
        // t = 1: log t = 0, so sines 0 and cosines 1.
        assert_eq!(&out[..4], &[0.0, 0.0, 1.0, 1.0]);
        // t = e: u = 1, a = (pi, -4 pi): sin ~ 0, cos = (-1, 1).
        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
        assert!(close(out[4], 0.0) && close(out[5], 0.0), "{out:?}");
        assert!(close(out[6], -1.0) && close(out[7], 1.0), "{out:?}");
        let flipped = fourier_of(&[std::f32::consts::E], &w, true, true);
        assert_eq!(&flipped[..2], &out[6..8]);
        let plain = fourier_of(&[0.25], &[1.0], false, false);
        assert!(close(plain[0], 1.0) && close(plain[1], 0.0), "{plain:?}");
    }
}
