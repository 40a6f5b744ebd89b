//! How much a sinusoidal time embedding varies over the range of t the spec declares: a checked
//! [`ModelIr`] in; per `sinusoidal(d)` node, the fraction of the embedding's energy that changes
//! with t, out ([`EmbeddingVariation`]). An embedding that barely varies is nearly a constant
//! before any norm sees it (e.g. max period 10,000 fed a continuous t in [0, 1]).
//!
//! The embedding is `e(t) = (sin ω_i t, cos ω_i t)` with `ω_i = 10000^(-i/(d/2 - 1))`, as the
//! runtime computes it. For t uniform over the range (continuous time) or over the integer
//! steps `0..n` (step time), each sin/cos pair has mean square 1 and mean vector of squared
//! length `|E e^{iωt}|²`, so the pair's varying share is `1 - |E e^{iωt}|²`:
//! `sinc²(ωL/2)` for a continuous range of length L, `(sin(nω/2) / (n sin(ω/2)))²` for n steps.
//! The reported fraction is the mean over pairs: `E‖e - E e‖² / E‖e‖²`.

use crate::ast::Span;
use crate::ir::{Graph, ModelIr, Op, TimeKind};
use serde::Serialize;

/// The range t takes where an embedding reads it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimeRange {
    /// Continuous t uniform over `[low, high]`.
    Continuous { low: f64, high: f64 },
    /// Integer steps `0..n`.
    Steps { n: usize },
}

/// One sinusoidal embedding's variation over its range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingVariation {
    pub node: String,
    pub span: Span,
    pub dim: usize,
    pub range: TimeRange,
    /// `E‖e - E e‖² / E‖e‖²` over the range.
    pub varying: f64,
    /// Frequencies whose phase turns by less than 0.1 rad over the range.
    pub slow: usize,
    pub pairs: usize,
    /// The slowest frequency, per unit of t before the scale.
    pub lowest: f64,
    /// For continuous time: a scale on t that maps the range onto 1,000 units, and the
    /// varying fraction after it.
    pub scale: Option<(f64, f64)>,
    pub allow: Vec<String>,
}

/// DDPM's frequencies: `sinusoidal(dim)`, shift 1, max period 10,000.
pub fn frequencies(dim: usize) -> Vec<f64> {
    frequencies_of(dim, 1.0, 10000.0)
}

/// The frequencies `max_period^(-i / (dim/2 - shift))`, `i < dim/2`. Sema keeps
/// `dim/2 - shift > 0` where there is more than one frequency; a single one is 1.
pub fn frequencies_of(dim: usize, shift: f64, max_period: f64) -> Vec<f64> {
    let half = dim / 2;
    let denom = half as f64 - shift;
    (0..half)
        .map(|i| match i {
            0 => 1.0,
            _ => (-(max_period.ln()) * i as f64 / denom).exp(),
        })
        .collect()
}

/// `E‖e - E e‖² / E‖e‖²` for frequencies `w` (t scaled by `scale`) over `range`.
pub fn varying_fraction(w: &[f64], range: TimeRange, scale: f64) -> f64 {
    if w.is_empty() {
        return 0.0;
    }
    let mean_sq = |om: f64| -> f64 {
        let om = om * scale;
        match range {
            TimeRange::Continuous { low, high } => {
                let x = om * (high - low) / 2.0;
                if x.abs() < 1e-8 {
                    1.0
                } else {
                    (x.sin() / x).powi(2)
                }
            }
            TimeRange::Steps { n } => {
                let n = n.max(1) as f64;
                let d = n * (om / 2.0).sin();
                if d.abs() < 1e-12 {
                    1.0
                } else {
                    ((n * om / 2.0).sin() / d).powi(2)
                }
            }
        }
    };
    w.iter().map(|&om| 1.0 - mean_sq(om)).sum::<f64>() / w.len() as f64
}

fn length(r: TimeRange) -> f64 {
    match r {
        TimeRange::Continuous { low, high } => high - low,
        TimeRange::Steps { n } => n.saturating_sub(1) as f64,
    }
}

fn walk(g: &Graph, range: TimeRange, out: &mut Vec<EmbeddingVariation>) {
    for n in &g.nodes {
        match &n.op {
            Op::Sinusoidal {
                dim,
                scale: own,
                shift,
                max_period,
                ..
            } => {
                let w = frequencies_of(*dim, *shift, *max_period);
                let l = length(range);
                let varying = varying_fraction(&w, range, *own);
                let slow = w.iter().filter(|&&om| om * own * l < 0.1).count();
                // The scale that maps the range onto 1,000 units, as DDPM's integer steps.
                let scale = match range {
                    TimeRange::Continuous { .. } if l > 0.0 => {
                        let s = 1000.0 / l;
                        Some((s, varying_fraction(&w, range, s)))
                    }
                    _ => None,
                };
                out.push(EmbeddingVariation {
                    node: n.name.clone(),
                    span: n.span,
                    dim: *dim,
                    range,
                    varying,
                    slow,
                    pairs: w.len(),
                    lowest: w.last().copied().unwrap_or(1.0),
                    scale,
                    allow: n.allow.clone(),
                });
            }
            Op::Ode { func, t0, t1, .. } => walk(
                &func.graph,
                TimeRange::Continuous {
                    low: t0.min(*t1),
                    high: t0.max(*t1),
                },
                out,
            ),
            _ => {}
        }
    }
}

/// Every sinusoidal embedding of `m` with its variation. Model-level continuous time is taken
/// over its declared range (`continuous(low, high)`, else [0, 1]); ODE functions see their
/// integration interval; step time sees its steps.
pub fn embedding_variation(m: &ModelIr) -> Vec<EmbeddingVariation> {
    let range = match m.time.kind {
        TimeKind::Steps(n) => TimeRange::Steps { n },
        TimeKind::Continuous => {
            let (low, high) = m.time.range();
            TimeRange::Continuous { low, high }
        }
    };
    let mut out = Vec::new();
    walk(&m.graph, range, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_interval_barely_moves_a_ten_thousand_period_embedding() {
        let w = frequencies(16);
        let f = varying_fraction(
            &w,
            TimeRange::Continuous {
                low: 0.0,
                high: 1.0,
            },
            1.0,
        );
        assert!(f < 0.02, "{f}");
        let f = varying_fraction(
            &w,
            TimeRange::Continuous {
                low: 0.0,
                high: 1.0,
            },
            1000.0,
        );
        assert!(f > 0.5, "{f}");
        let f = varying_fraction(&w, TimeRange::Steps { n: 1000 }, 1.0);
        assert!(f > 0.5, "{f}");
    }
}
