//! The lab's shared measurements: a spec's lint verdict, the probe batch of test digits and
//! the probe of a trained network on it, and the mean and spread over seeds.

use crate::data::Split;
use crate::params::normal;
use crate::run::TrainedRun;
use crate::survival::{measure, ProbeSettings};
use crate::RuntimeError;
use dfdx::tensor::Cpu;
use rand::SeedableRng;
use tdspec_compiler::accounting::{account_with, NormAccount};
use tdspec_compiler::diagnostics::Diagnostic;
use tdspec_compiler::ir::{ModelIr, Task};
use tdspec_compiler::lint::{lint_source, LintOptions};

/// The lint's verdict on a spec: its finding codes and the predicted survival per norm.
pub(super) struct Verdict {
    /// Distinct codes, sorted.
    pub codes: Vec<String>,
    /// (norm node, the smallest surviving fraction the accounting states for an origin there).
    pub norms: Vec<(String, Option<f64>)>,
    /// The smallest stated fraction (1 when none is stated).
    pub worst: f64,
}

/// The smallest fraction the accounting states at a norm, with its origin.
fn stated(n: &NormAccount) -> Option<(usize, f64)> {
    n.origins
        .iter()
        .filter_map(|o| o.prediction.fraction().map(|f| (o.origin, f)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Lints `text`; `Ok(None)` when it defines no model.
pub(super) fn lint_verdict(text: &str) -> Result<Option<Verdict>, Vec<Diagnostic>> {
    let reports = lint_source(text, &LintOptions::default())?;
    let Some(rep) = reports.first() else {
        return Ok(None);
    };
    let mut codes: Vec<String> = rep.diagnostics.iter().map(|d| d.code.clone()).collect();
    codes.sort();
    codes.dedup();
    let norms: Vec<(String, Option<f64>)> = rep
        .accounting
        .norms
        .iter()
        .filter(|n| !n.constant)
        .map(|n| (n.node.clone(), stated(n).map(|s| s.1)))
        .collect();
    let worst = norms.iter().filter_map(|p| p.1).fold(1.0f64, f64::min);
    Ok(Some(Verdict {
        codes,
        norms,
        worst,
    }))
}

/// Samples in the probe batch of a trained network.
pub(super) const PROBE_BATCH: usize = 16;

/// The first test digits on the model's [-1, 1] scale; for denoisers noised to a middle level
/// (`0.7·x0 + 0.7·eps`) with noise from `seed`.
pub(super) fn probe_input(m: &ModelIr, split: &Split, seed: u64) -> Vec<f32> {
    let idx: Vec<usize> = (0..PROBE_BATCH).collect();
    let (mut x, _) = crate::data::batch(&split.test, &idx);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xBEEF);
    let denoise = matches!(m.task, Some(Task::Denoise { .. }));
    for v in x.iter_mut() {
        *v = if denoise {
            0.7 * (*v * 2.0 - 1.0) + 0.7 * normal(&mut rng) as f32
        } else {
            *v * 2.0 - 1.0
        };
    }
    x
}

/// One norm of a trained network: the smallest fraction the accounting states there and the
/// measured fraction of that origin (where none is stated: the total, when more than rounding
/// arrives).
pub(super) struct TrainedNorm {
    pub node: String,
    pub predicted: Option<f64>,
    pub measured: Option<f64>,
}

impl TrainedNorm {
    /// The smallest stated fraction over the norms and its measurement; where none is stated,
    /// (None, the mean measured survival over the norms the signal reaches).
    pub fn summary(norms: &[TrainedNorm]) -> (Option<f64>, Option<f64>) {
        let worst = norms
            .iter()
            .filter(|n| n.predicted.is_some())
            .min_by(|a, b| {
                a.predicted
                    .unwrap_or(1.0)
                    .total_cmp(&b.predicted.unwrap_or(1.0))
            });
        match worst {
            Some(n) => (n.predicted, n.measured),
            None => {
                let m: Vec<f64> = norms.iter().filter_map(|n| n.measured).collect();
                (
                    None,
                    (!m.is_empty()).then(|| m.iter().sum::<f64>() / m.len() as f64),
                )
            }
        }
    }
}

/// Probes a trained network on [`probe_input`] with the survival probe (one replicate: the
/// trained weights and these digits; t at 1/4 and 3/4 of its range).
pub(super) fn probe_trained(
    run: &TrainedRun,
    split: &Split,
    seed: u64,
) -> Result<Vec<TrainedNorm>, RuntimeError> {
    let m = &run.model;
    let acc = account_with(m, PROBE_BATCH);
    let settings = ProbeSettings {
        batch: PROBE_BATCH,
        seeds: vec![seed],
        input: Some(probe_input(m, split, seed)),
        ..ProbeSettings::default()
    };
    let params = run.params.clone();
    let rows = measure(m, &acc, &Cpu::default(), &|_| Ok(params.clone()), &settings)?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let na = acc
                .norms
                .iter()
                .find(|n| n.node == r.node && n.graph == r.graph)?;
            if na.constant {
                return None;
            }
            let (predicted, measured) = match stated(na) {
                Some((oi, p)) => {
                    let site = &acc.origins.get(oi)?.path;
                    (
                        Some(p),
                        r.origins.iter().find(|o| &o.site == site)?.measured,
                    )
                }
                // Rounding left by an exact cancellation upstream is no time signal.
                None => (
                    None,
                    r.measured
                        .filter(|_| r.total.arriving.is_some_and(|a| a >= 1e-3)),
                ),
            };
            Some(TrainedNorm {
                node: r.node.clone(),
                predicted,
                measured,
            })
        })
        .collect())
}

/// Mean and sample standard deviation of the finite values (NaN, NaN when there are none).
pub(super) fn mean_std(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    (m, s)
}
