//! The dynamic probe: a compiled model, its parameters and a batch in; for every normalization,
//! how much of the time signal entering it survives, measured by running the network at two
//! times and comparing. Out: one [`NormProbe`] per normalization node that time reaches.
//!
//! What is measured: with `Δin`, `Δout` the changes of a norm's input and output between the
//! two times, `σ_U` the standard deviation of the input over the norm's reduction unit and
//! `γ_c` its per-channel scale, the surviving fraction is
//! `Σ (Δout / γ_c)² / Σ (Δin / σ_U)²` — the energy of the time signal after normalization
//! relative to what a pass-through would give. A per-channel offset through InstanceNorm gives
//! ~0, through GroupNorm with m channels per group ~(m-1)/m. Zero-padded convolutions after
//! the time entered make a border ring differ (the border leak), so the probe also reports how
//! far `Δin` is from a per-channel constant away from that ring: ~0 means the signal entering
//! is exactly the offset the analysis says, and all that survives a complete cancellation is
//! the leak. Norms run with batch statistics (BatchNorm's training mode, where cancellation
//! happens); dropout is off. For ODE models the probe evaluates the ODE function at the same
//! state and two times, which isolates the function's time dependence.
//!
//! [`compare`] puts each measurement beside the lint's static verdict and decides, with the
//! tolerances below, whether they agree.

use crate::exec::{Exec, Observer, Value};
use crate::ops::Kernels;
use crate::params::{normal, Params};
use crate::RuntimeError;
use dfdx::tensor::NoneTape;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::{HashMap, HashSet};
use tdspec_compiler::analysis::{analyze, NormVerdict};
use tdspec_compiler::ir::{Graph, ModelIr, Node, NormKind, Op, Sharing, TimeKind};

#[derive(Debug, Clone, serde::Serialize)]
pub struct NormProbe {
    /// Node path, e.g. `features.0.norm2`.
    pub node: String,
    pub kind: String,
    /// Channels per reduction unit (1 for batch/instance).
    pub channels_per_unit: usize,
    /// Relative change of the norm's input between the two times, `‖Δin‖ / ‖in‖`.
    pub input_change: f64,
    /// Relative change of the norm's output, `‖Δout‖ / ‖out‖`.
    pub output_change: f64,
    /// Measured surviving fraction of the time signal when time reaches the norm's input;
    /// `None` when the input does not change with t.
    pub fraction: Option<f64>,
    /// How far `Δin` is from constant per channel (per sample and channel; per channel for
    /// BatchNorm) away from the border ring, as a share of its energy there; `None` when no
    /// interior is left or time does not reach the norm.
    pub interior_variation: Option<f64>,
    /// Width of the border ring zero-padding effects can reach.
    pub ring: usize,
}

/// A norm's recorded input, output and input shape `[B, C, H, W]`.
type Record = (Vec<f32>, Vec<f32>, [usize; 4]);

struct Recorder {
    want: HashSet<String>,
    seen: HashMap<String, Record>,
}

impl<D: Kernels> Observer<D> for Recorder {
    fn node(&mut self, path: &str, node: &Node, inputs: &[&Value<D>], out: &Value<D>) {
        if !matches!(node.op, Op::Norm { .. })
            || !self.want.contains(path)
            || self.seen.contains_key(path)
        {
            return;
        }
        if let Some(inp) = inputs.first() {
            let shape = match inp {
                Value::Image(t) => {
                    let s = dfdx::shapes::HasShape::shape(t);
                    [s.0, s.1, s.2, s.3]
                }
                Value::Vector(t) => {
                    let s = dfdx::shapes::HasShape::shape(t);
                    [s.0, s.1, 1, 1]
                }
                Value::Time(v) => [v.len(), 1, 1, 1],
            };
            self.seen
                .insert(path.to_string(), (inp.to_vec(), out.to_vec(), shape));
        }
    }
}

/// Border-ring width of every node's time signal: how far zero-padding effects reach in.
fn rings(g: &Graph) -> Vec<Option<usize>> {
    let mut r: Vec<Option<usize>> = vec![None; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        let inp = n.inputs.iter().filter_map(|&j| r[j]).max();
        r[i] = match &n.op {
            Op::Time => Some(0),
            Op::Sinusoidal { .. } | Op::Linear { .. } => inp.map(|_| 0),
            Op::Conv {
                pad, stride, time, ..
            } => {
                let own = if *time != tdspec_compiler::ir::TimeChannel::None {
                    Some(*pad)
                } else {
                    None
                };
                let through = n.inputs.first().and_then(|&j| r[j]).map(|v| v + pad);
                own.max(through).map(|v| v.div_ceil((*stride).max(1)))
            }
            Op::Inject { .. } | Op::ScaleShift { .. } => {
                Some(n.inputs.first().and_then(|&j| r[j]).unwrap_or(0))
            }
            Op::AvgPool { k, stride } => inp.map(|v| (v + k - 1).div_ceil((*stride).max(1))),
            Op::Upsample { factor } => inp.map(|v| v * factor),
            Op::GlobalAvgPool => inp.map(|_| 0),
            _ => inp,
        };
    }
    r
}

fn norm_units(kind: NormKind, c: usize) -> usize {
    match kind {
        NormKind::Group { groups } => c / groups.max(1),
        NormKind::Instance | NormKind::Batch => 1,
        NormKind::Layer => c,
    }
}

/// Measures one norm from its recorded inputs and outputs at two times.
#[allow(clippy::too_many_arguments)]
fn measure(
    node: &str,
    kind: NormKind,
    gamma: &[f32],
    a: &Record,
    b: &Record,
    ring: usize,
) -> NormProbe {
    let [bs, c, h, w] = a.2;
    let hw = h * w;
    let m = norm_units(kind, c);
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let din: Vec<f64> =
        a.0.iter()
            .zip(&b.0)
            .map(|(x, y)| (*y - *x) as f64)
            .collect();
    let dout: Vec<f64> =
        a.1.iter()
            .zip(&b.1)
            .map(|(x, y)| (*y - *x) as f64)
            .collect();
    let input_change =
        norm(&din.iter().map(|v| *v as f32).collect::<Vec<_>>()) / norm(&a.0).max(1e-30);
    let output_change =
        norm(&dout.iter().map(|v| *v as f32).collect::<Vec<_>>()) / norm(&a.1).max(1e-30);
    // σ of each reduction unit of the first time's input.
    let unit_sigma = |bi: usize, ci: usize| -> f64 {
        let (mut s, mut s2, mut n) = (0.0, 0.0, 0.0);
        match kind {
            NormKind::Batch => {
                for bb in 0..bs {
                    for p in 0..hw {
                        let v = a.0[(bb * c + ci) * hw + p] as f64;
                        s += v;
                        s2 += v * v;
                        n += 1.0;
                    }
                }
            }
            _ => {
                let g0 = ci / m * m;
                for cc in g0..g0 + m {
                    for p in 0..hw {
                        let v = a.0[(bi * c + cc) * hw + p] as f64;
                        s += v;
                        s2 += v * v;
                        n += 1.0;
                    }
                }
            }
        }
        let mean = s / n;
        (s2 / n - mean * mean).max(0.0).sqrt() + 1e-5
    };
    let mut sig = vec![0.0; bs * c];
    for bi in 0..bs {
        for ci in 0..c {
            sig[bi * c + ci] = unit_sigma(bi, ci);
        }
    }
    let (mut num, mut den) = (0.0, 0.0);
    for bi in 0..bs {
        for ci in 0..c {
            let g = (gamma.get(ci).copied().unwrap_or(1.0) as f64)
                .abs()
                .max(1e-6);
            for p in 0..hw {
                let i = (bi * c + ci) * hw + p;
                num += (dout[i] / g).powi(2);
                den += (din[i] / sig[bi * c + ci]).powi(2);
            }
        }
    }
    // Variation of Δin around its per-unit mean over interior pixels.
    let interior =
        |y: usize, x: usize| h == 1 || (y >= ring && y + ring < h && x >= ring && x + ring < w);
    let n_interior = (0..h)
        .flat_map(|y| (0..w).map(move |x| (y, x)))
        .filter(|&(y, x)| interior(y, x))
        .count();
    let mut var_num = 0.0;
    let mut var_den = 0.0;
    let per_batch = matches!(kind, NormKind::Batch);
    for ci in 0..c {
        let groups: Vec<Vec<usize>> = if per_batch {
            vec![(0..bs).collect()]
        } else {
            (0..bs).map(|b| vec![b]).collect()
        };
        for samples in groups {
            let mut vals = Vec::new();
            for &bi in &samples {
                for y in 0..h {
                    for x in 0..w {
                        if interior(y, x) {
                            vals.push(din[(bi * c + ci) * hw + y * w + x]);
                        }
                    }
                }
            }
            if vals.is_empty() {
                continue;
            }
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            var_num += vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
            var_den += vals.iter().map(|v| v * v).sum::<f64>();
        }
    }
    let reaches = den > 1e-10 * (bs * c * hw) as f64 && input_change > 1e-6;
    NormProbe {
        node: node.to_string(),
        kind: kind.to_string(),
        channels_per_unit: m,
        input_change,
        output_change,
        fraction: reaches.then(|| num / den),
        interior_variation: (reaches && n_interior > 0 && var_den > 0.0).then(|| var_num / var_den),
        ring,
    }
}

/// Runs `g` at two time vectors and measures every norm time reaches.
fn probe_graph<D: Kernels>(
    g: &Graph,
    params: &Params<D>,
    input: Value<D>,
    ta: &[f32],
    tb: &[f32],
) -> Result<Vec<NormProbe>, RuntimeError> {
    let ring = rings(g);
    let want: HashSet<String> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Norm { .. }))
        .map(|n| n.name.clone())
        .collect();
    let rec = |t: &[f32]| -> Result<HashMap<String, Record>, RuntimeError> {
        let mut r = Recorder {
            want: want.clone(),
            seen: HashMap::new(),
        };
        let mut ex = Exec::new(params, true);
        ex.observer = Some(&mut r);
        ex.run(g, input.clone(), t, NoneTape)?;
        drop(ex);
        Ok(r.seen)
    };
    let a = rec(ta)?;
    let b = rec(tb)?;
    let mut out = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let Op::Norm { kind, .. } = n.op else {
            continue;
        };
        let (Some(ra), Some(rb)) = (a.get(&n.name), b.get(&n.name)) else {
            continue;
        };
        let gamma = params
            .get(&format!("{}.weight", n.name))
            .map(|p| p.tensor.as_vec())
            .unwrap_or_default();
        out.push(measure(&n.name, kind, &gamma, ra, rb, ring[i].unwrap_or(0)));
    }
    Ok(out)
}

/// Probes every normalization of `m` on the batch `x` (`[B, C, H, W]` host data).
pub fn probe<D: Kernels>(
    m: &ModelIr,
    params: &Params<D>,
    x: Vec<f32>,
    batch: usize,
) -> Result<Vec<NormProbe>, RuntimeError> {
    let dev = params.dev.clone();
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    if x.len() != batch * c * h * w {
        return Err(RuntimeError::Data(format!(
            "probe batch has {} values, expected {}",
            x.len(),
            batch * c * h * w
        )));
    }
    let xt = dev.tensor_from_vec(x, (batch, c, h, w));
    // Two times well inside the model's time range.
    let (t_a, t_b): (Vec<f32>, Vec<f32>) = match (m.time.kind, m.time.sharing) {
        (TimeKind::Steps(n), Sharing::PerSample) => (
            (0..batch)
                .map(|i| ((i * 7919) % n.max(1)) as f32 * 0.5)
                .collect(),
            (0..batch)
                .map(|i| {
                    (((i * 7919) % n.max(1)) as f32 * 0.5 + n as f32 * 0.5).min(n as f32 - 1.0)
                })
                .collect(),
        ),
        (TimeKind::Steps(n), Sharing::Shared) => {
            (vec![n as f32 * 0.25; batch], vec![n as f32 * 0.75; batch])
        }
        (TimeKind::Continuous, _) => (vec![0.0; batch], vec![1.0; batch]),
    };
    // ODE models: probe each ODE function at the state it receives.
    let mut odes = Vec::new();
    for n in &m.graph.nodes {
        if let Op::Ode { func, t0, t1, .. } = &n.op {
            odes.push((n.name.clone(), func.clone(), *t0, *t1, n.inputs[0]));
        }
    }
    if odes.is_empty() {
        return probe_graph(&m.graph, params, Value::Image(xt), &t_a, &t_b);
    }
    let mut ex = Exec::new(params, true);
    let (vals, _) = ex.run(&m.graph, Value::Image(xt), &t_a, NoneTape)?;
    let mut out = Vec::new();
    for (_, func, t0, t1, inp) in odes {
        let h0 = vals[inp]
            .clone()
            .ok_or_else(|| RuntimeError::Internal("ODE input not computed".into()))?;
        let ta = vec![(t0 + 0.25 * (t1 - t0)) as f32; batch];
        let tb = vec![(t0 + 0.75 * (t1 - t0)) as f32; batch];
        out.extend(probe_graph(&func.graph, params, h0, &ta, &tb)?);
    }
    Ok(out)
}

/// Batch statistics need two samples: the probe (and parity) batch must have at least two.
pub fn check_batch(batch: usize) -> Result<(), String> {
    if batch < 2 {
        return Err("--batch must be at least 2 (batch statistics need two samples)".into());
    }
    Ok(())
}

/// Probes `m` on a seeded standard-normal batch of `batch` inputs.
pub fn probe_seeded<D: Kernels>(
    m: &ModelIr,
    params: &Params<D>,
    batch: usize,
    seed: u64,
) -> Result<Vec<NormProbe>, RuntimeError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = batch * m.input.channels * m.input.height * m.input.width;
    let x: Vec<f32> = (0..n).map(|_| normal(&mut rng) as f32).collect();
    probe(m, params, x, batch)
}

/// Tolerance on the surviving fraction for a partial attenuation.
pub const PARTIAL_TOLERANCE: f64 = 0.2;
/// Largest measured interior fraction that still counts as complete cancellation.
pub const COMPLETE_TOLERANCE: f64 = 0.02;
/// Smallest measured fraction that counts as surviving when the lint says nothing removes it.
pub const ALIVE_THRESHOLD: f64 = 0.25;
/// Largest interior variation of the entering signal that still counts as "a per-channel
/// constant up to the border leak" (the rest is upstream leak spread by nonlinearities).
pub const LEAK_TOLERANCE: f64 = 0.1;

/// Whether a measurement agrees with the static verdict, and a word on why.
pub fn agree(p: &NormProbe, v: Option<&NormVerdict>) -> (bool, String) {
    let predicted = v.and_then(|v| v.survival);
    match (p.fraction, predicted) {
        (None, None) => (true, "time does not reach it".into()),
        (Some(f), None) => (
            f < COMPLETE_TOLERANCE,
            "the lint predicts no time signal here".into(),
        ),
        (None, Some(s)) => (s < COMPLETE_TOLERANCE, "no time signal measured".into()),
        (Some(f), Some(s)) => {
            let complete = v.is_some_and(|v| v.complete) && s < COMPLETE_TOLERANCE;
            let leak = v.is_some_and(|v| v.border_leak);
            if complete && leak {
                // All that may survive is the border leak: the signal entering must be a
                // per-channel constant away from the border ring.
                match p.interior_variation {
                    Some(iv) => (
                        iv < LEAK_TOLERANCE,
                        format!(
                            "complete up to the border leak; {f:.2} survives through the border"
                        ),
                    ),
                    None => (
                        true,
                        "complete up to the border leak; no interior to check at this size".into(),
                    ),
                }
            } else if complete {
                (f < COMPLETE_TOLERANCE, "complete cancellation".into())
            } else if s >= 0.999 {
                (f >= ALIVE_THRESHOLD, "survives".into())
            } else {
                (
                    (f - s).abs() <= PARTIAL_TOLERANCE,
                    format!("attenuated to {s:.2}"),
                )
            }
        }
    }
}

/// One normalization's measurement beside the lint's verdict on it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    pub agree: bool,
    /// Whether the lint predicts a complete cancellation (`None`: the lint has no verdict).
    pub complete: Option<bool>,
    /// The lint's predicted surviving fraction.
    pub predicted: Option<f64>,
    pub probe: NormProbe,
    pub why: String,
}

/// Puts each probe of `m` beside the lint's verdict on the same normalization.
pub fn compare(m: &ModelIr, probes: Vec<NormProbe>) -> Vec<Comparison> {
    let analysis = analyze(m);
    probes
        .into_iter()
        .map(|p| {
            let v = analysis.norms.iter().find(|v| v.node == p.node);
            let (agree, why) = agree(&p, v);
            Comparison {
                agree,
                complete: v.map(|v| v.complete),
                predicted: v.and_then(|v| v.survival),
                probe: p,
                why,
            }
        })
        .collect()
}

/// The table of `tdspec probe`: one line per normalization, measured beside predicted.
pub fn table(rows: &[Comparison]) -> String {
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
    let w = rows
        .iter()
        .map(|r| r.probe.node.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut s = format!(
        "  {:w$}  {:10}  {:>3}  {:>8}  {:>8}  {:>8}  {:>8}  {:>9}  verdict\n",
        "norm", "kind", "m", "Δin", "Δout", "measured", "interior", "predicted"
    );
    for r in rows {
        let p = &r.probe;
        s += &format!(
            "  {:w$}  {:10}  {:>3}  {:>8.4}  {:>8.4}  {:>8}  {:>8}  {:>9}  {} ({})\n",
            p.node,
            p.kind,
            p.channels_per_unit,
            p.input_change,
            p.output_change,
            opt(p.fraction),
            opt(p.interior_variation),
            opt(r.predicted),
            if r.agree { "agree" } else { "DISAGREE" },
            r.why
        );
    }
    s
}
