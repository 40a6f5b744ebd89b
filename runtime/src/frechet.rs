//! Fréchet distance between generated and real images in the feature space of a small
//! classifier that tdspec trains itself on the same data. This is NOT the Inception FID of the
//! literature: the features come from a 64-unit layer of a small CNN trained for a few epochs
//! on the run's own training digits, so values compare only between runs measured the same way.
//!
//! In: a data split (to train the feature network, or a cached one) and two image sets. Out:
//! `|μ₁ − μ₂|² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)`.

use crate::data::Split;
use crate::exec::{Exec, Value};
use crate::ops::Kernels;
use crate::params::{read_safetensors, Params};
use crate::train::Trainer;
use crate::RuntimeError;
use dfdx::tensor::NoneTape;
use std::path::Path;
use tdspec_compiler::ir::ModelIr;
use tdspec_compiler::sema::check_source;

/// The feature network: its `feat` layer (64 units after ReLU) gives the features.
pub const FEATURE_NET: &str = "
model frechet_features {
    input x: image[CH, HH, WW]
    time  t: continuous, shared
    h = x | conv3(16, stride = 2) | relu | conv3(32, stride = 2) | relu | flatten
          | linear(64) | relu as feat
    return h | linear(CLASSES)
    task  classify(classes = CLASSES)
    train(optimizer = adam(lr = 2e-3), batch = 64)
}";

/// The feature network's spec for images of `c x h x w` and `classes` labels.
pub fn feature_model(
    c: usize,
    h: usize,
    w: usize,
    classes: usize,
) -> Result<ModelIr, RuntimeError> {
    let src = FEATURE_NET
        .replace("CH", &c.to_string())
        .replace("HH", &h.to_string())
        .replace("WW", &w.to_string())
        .replace("CLASSES", &classes.max(2).to_string());
    check_source(&src)
        .map_err(|d| {
            RuntimeError::Internal(format!(
                "feature network: {:?}",
                d.first().map(|d| &d.message)
            ))
        })
        .map(|mut v| v.remove(0))
}

/// Trains the feature network (or loads it from `cache`, writing it there after training).
pub fn feature_net<D: Kernels>(
    m: &ModelIr,
    data: &Split,
    dev: &D,
    steps: usize,
    cache: Option<&Path>,
) -> Result<(Params<D>, f64), RuntimeError> {
    if let Some(p) = cache {
        if p.exists() {
            let loaded = read_safetensors(p)?;
            let mut params = Params::init(m, dev, 0);
            params.load_named(&loaded.tensors)?;
            let acc = loaded
                .meta
                .get("test_accuracy")
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            return Ok((params, acc));
        }
    }
    let mut tr = Trainer::new(m, dev, 1234, None, steps)?;
    tr.check_data(data)?;
    while tr.step < steps {
        tr.train_step(data)?;
    }
    let acc = tr.evaluate(data, 2000)?.accuracy.unwrap_or(f64::NAN);
    if let Some(p) = cache {
        let mut meta = std::collections::HashMap::new();
        meta.insert("test_accuracy".to_string(), format!("{acc}"));
        meta.insert(
            "purpose".to_string(),
            "tdspec Frechet-distance feature network (not Inception)".to_string(),
        );
        tr.params.save(p, &[], meta)?;
    }
    Ok((tr.params, acc))
}

/// Features of images in [0, 1] (`n x C x H x W`), one row of 64 per image.
pub fn features<D: Kernels>(
    m: &ModelIr,
    params: &Params<D>,
    images: &[f32],
    n: usize,
) -> Result<Vec<Vec<f64>>, RuntimeError> {
    let per = m.input.channels * m.input.height * m.input.width;
    let feat = m
        .graph
        .nodes
        .iter()
        .position(|n| n.name == "feat")
        .ok_or_else(|| RuntimeError::Internal("feature layer missing".into()))?;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(200) {
        let b = (n - start).min(200);
        let x: Vec<f32> = images[start * per..(start + b) * per]
            .iter()
            .map(|v| v * 2.0 - 1.0)
            .collect();
        let xt = params
            .dev
            .tensor_from_vec(x, (b, m.input.channels, m.input.height, m.input.width));
        let mut ex = Exec::new(params, false);
        let (vals, _) = ex.run(&m.graph, Value::Image(xt), &vec![0.0; b], NoneTape)?;
        let f = vals[feat]
            .as_ref()
            .ok_or_else(|| RuntimeError::Internal("no features".into()))?
            .to_vec();
        let d = f.len() / b;
        for i in 0..b {
            out.push(f[i * d..(i + 1) * d].iter().map(|v| *v as f64).collect());
        }
    }
    Ok(out)
}

fn mean_cov(x: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = x.len().max(1) as f64;
    let d = x.first().map(Vec::len).unwrap_or(0);
    let mut mu = vec![0.0; d];
    for r in x {
        for (m, v) in mu.iter_mut().zip(r) {
            *m += v / n;
        }
    }
    let mut cov = vec![vec![0.0; d]; d];
    for r in x {
        for i in 0..d {
            let a = r[i] - mu[i];
            for j in 0..d {
                cov[i][j] += a * (r[j] - mu[j]) / (n - 1.0).max(1.0);
            }
        }
    }
    (mu, cov)
}

/// Eigen-decomposition of a symmetric matrix (cyclic Jacobi): eigenvalues and eigenvectors
/// (columns of the returned matrix).
pub fn sym_eig(a: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut a: Vec<Vec<f64>> = a.to_vec();
    let mut v = vec![vec![0.0; n]; n];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let (rp, rq) = (a[p].clone(), a[q].clone());
                for k in 0..n {
                    a[p][k] = c * rp[k] - s * rq[k];
                    a[q][k] = s * rp[k] + c * rq[k];
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

fn sqrt_psd(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let (w, v) = sym_eig(a);
    let n = a.len();
    let mut out = vec![vec![0.0; n]; n];
    for k in 0..n {
        let s = w[k].max(0.0).sqrt();
        for i in 0..n {
            for j in 0..n {
                out[i][j] += v[i][k] * s * v[j][k];
            }
        }
    }
    out
}

fn matmul(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    let m = b.first().map(Vec::len).unwrap_or(0);
    let mut out = vec![vec![0.0; m]; n];
    for i in 0..n {
        for k in 0..b.len() {
            let aik = a[i][k];
            for j in 0..m {
                out[i][j] += aik * b[k][j];
            }
        }
    }
    out
}

/// The Fréchet distance between two feature sets.
pub fn frechet_distance(x: &[Vec<f64>], y: &[Vec<f64>]) -> f64 {
    let (m1, c1) = mean_cov(x);
    let (m2, c2) = mean_cov(y);
    let s1 = sqrt_psd(&c1);
    let inner = matmul(&matmul(&s1, &c2), &s1);
    // Symmetrize against round-off before the square root.
    let n = inner.len();
    let sym: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| 0.5 * (inner[i][j] + inner[j][i])).collect())
        .collect();
    let (w, _) = sym_eig(&sym);
    let tr_sqrt: f64 = w.iter().map(|v| v.max(0.0).sqrt()).sum();
    let dmu: f64 = m1.iter().zip(&m2).map(|(a, b)| (a - b).powi(2)).sum();
    let tr1: f64 = (0..n).map(|i| c1[i][i]).sum();
    let tr2: f64 = (0..n).map(|i| c2[i][i]).sum();
    (dmu + tr1 + tr2 - 2.0 * tr_sqrt).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalizes() {
        let a = vec![
            vec![4.0, 1.0, 0.5],
            vec![1.0, 3.0, 0.2],
            vec![0.5, 0.2, 2.0],
        ];
        let (w, v) = sym_eig(&a);
        for k in 0..3 {
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i][j] * v[j][k]).sum();
                assert!((av - w[k] * v[i][k]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn distance_is_zero_for_identical_sets_and_grows_with_a_shift() {
        let x: Vec<Vec<f64>> = (0..50)
            .map(|i| {
                vec![
                    (i as f64).sin(),
                    (i as f64 * 0.7).cos(),
                    (i % 7) as f64 * 0.1,
                ]
            })
            .collect();
        assert!(frechet_distance(&x, &x) < 1e-6);
        let y: Vec<Vec<f64>> = x
            .iter()
            .map(|r| r.iter().map(|v| v + 1.0).collect())
            .collect();
        // A pure shift by 1 in 3 dims: |Δμ|² = 3, covariances equal.
        assert!((frechet_distance(&x, &y) - 3.0).abs() < 1e-6);
    }
}
