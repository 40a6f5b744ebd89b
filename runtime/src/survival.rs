//! The survival probe: a compiled model, its weights (fresh per seed, or a checkpoint) and the
//! static [`Accounting`] in; for every normalization the time signal reaches (attention's inner
//! norm included), per origin and in total, the measured fraction of the time change that the
//! norm's mean subtraction keeps, next to the accounting's prediction, with a tolerance derived
//! from the estimator's sampling error; out: [`NormMeasure`]s and whether they agree.
//!
//! The measured quantity is the one the accounting predicts. For an origin `o`, run the graph
//! with t = t0 everywhere, and again with only `o` reading its time values at t1 (the executor's
//! [`Swap`]); `Δ` is the difference of a norm's input. Then `F = Σ‖Δ - mean_U Δ‖² / Σ‖Δ‖²` over
//! the norm's reduction units U, summed over samples, seeds and time pairs. The total changes t
//! everywhere at once. The norm's actual output change is reported too (`output`): it also
//! loses the part of `Δ` along the current features, which the accounting does not count.
//!
//! Tolerance: the replicates are the seeds (independent draws of weights and input); `F` is a ratio
//! estimator, its standard error `SE² = R/(R-1) Σ (N_r - F D_r)² / (Σ D_r)²`; a number agrees
//! when it is within `z·SE` plus the f32 rounding floor, `z` the two-sided 1e-6 quantile of
//! Student's t with R_eff - 1 degrees of freedom (4.9 for many replicates), `R_eff =
//! (Σ D_r)² / Σ D_r²` the effective number of replicates: when a few seeds carry most of the
//! energy, `SE` is estimated from those few (the fuzzer found a 16-seed case whose estimated SE,
//! 0.017, was about a fifth of what 256 seeds of the same model imply for 16). Exact zeros must be
//! zero to 1e-6 of the arriving energy (plus rounding of the difference); a claim that nothing
//! arrives holds up to 1e-3 of the input's rms (rounding left by a cancellation, amplified by
//! later norms); a claim of survival is refuted only where rounding cannot explain a zero.

use crate::exec::{Exec, Observer, Swap, Value};
use crate::ops::Kernels;
use crate::params::{normal, Params};
use crate::RuntimeError;
use dfdx::tensor::NoneTape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::HashMap;
use tdspec_compiler::accounting::{Accounting, Prediction, Sig};
use tdspec_compiler::ir::{Graph, ModelIr, Node, NormKind, Op, Sharing, TimeKind};

/// How the probe samples.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub batch: usize,
    /// Seeds for the weights (unless a checkpoint is given) and the input batch.
    pub seeds: Vec<u64>,
    /// Time pairs as fractions of the time range (0 = its start, 1 = its end).
    pub pairs: Vec<(f64, f64)>,
    /// Keep adding seeds (after `seeds`, up to this many in all) until every stated number is
    /// compared within this absolute tolerance.
    pub target: Option<(f64, usize)>,
    /// The input batch (`batch · C · H · W` values) for every seed, instead of a fresh
    /// N(0, 1) draw per seed (a trained network probed on real data).
    pub input: Option<Vec<f32>>,
    /// Change each sample's class label instead of t (t held at the pair's first value): the
    /// origins whose embedding carries the label are measured against the same predictions.
    pub vary_label: bool,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            batch: 8,
            seeds: (0..4).collect(),
            pairs: vec![(0.25, 0.75)],
            target: None,
            input: None,
            vary_label: false,
        }
    }
}

/// One origin's (or the total's) measurement at one norm.
#[derive(Debug, Clone, Serialize)]
pub struct OriginMeasure {
    /// The origin's node path; "total" for all origins at once.
    pub site: String,
    /// The number the accounting states (null where it states none).
    pub predicted: Option<f64>,
    /// `None`: the accounting says this origin does not reach the norm.
    pub prediction: Option<Prediction>,
    /// `None` when the change does not reach the norm.
    pub measured: Option<f64>,
    /// Absolute tolerance on `measured` for this comparison.
    pub tolerance: Option<f64>,
    /// Standard error of `measured` and the number of replicates behind it.
    pub standard_error: Option<f64>,
    pub replicates: usize,
    /// The arriving change's rms relative to the norm input's rms (tiny: rounding only).
    pub arriving: Option<f64>,
    pub agree: bool,
    pub why: String,
}

/// The measurements at one normalization.
#[derive(Debug, Clone, Serialize)]
pub struct NormMeasure {
    /// Path of the graph ("" for the model, the ODE node for an ODE function).
    pub graph: String,
    pub node: String,
    pub kind: String,
    pub in_attention: bool,
    pub predicted: Option<f64>,
    pub measured: Option<f64>,
    /// The norm's actual output change, as a fraction of the arriving energy (all origins).
    pub output: Option<f64>,
    pub agree: bool,
    pub total: OriginMeasure,
    pub origins: Vec<OriginMeasure>,
}

/// A norm's recorded input (and output), with the input shape `[B, C, H, W]`.
struct Rec {
    input: Vec<f32>,
    output: Option<Vec<f32>>,
    shape: [usize; 4],
}

struct Recorder {
    seen: HashMap<String, Rec>,
}

fn dims<D: Kernels>(v: &Value<D>) -> [usize; 4] {
    match v {
        Value::Image(t) => {
            let s = dfdx::shapes::HasShape::shape(t);
            [s.0, s.1, s.2, s.3]
        }
        Value::Vector(t) => {
            let s = dfdx::shapes::HasShape::shape(t);
            [s.0, s.1, 1, 1]
        }
        Value::Time(v) => [v.len(), 1, 1, 1],
    }
}

impl<D: Kernels> Observer<D> for Recorder {
    fn node(&mut self, path: &str, node: &Node, inputs: &[&Value<D>], out: &Value<D>) {
        let Some(inp) = inputs.first() else { return };
        let (key, output) = match node.op {
            Op::Norm { .. } => (path.to_string(), Some(out.to_vec())),
            Op::Attention { norm: Some(_), .. } => (format!("{path}.norm"), None),
            _ => return,
        };
        self.seen.entry(key).or_insert(Rec {
            input: inp.to_vec(),
            output,
            shape: dims(*inp),
        });
    }
}

/// Replicate sums of one comparison.
#[derive(Default, Clone)]
struct Stat {
    /// (seed, Σ kept, Σ arriving): one replicate per seed, the independent draws of weights
    /// and inputs (channel blocks of one draw share upstream weights and are correlated).
    reps: Vec<(u64, f64, f64)>,
    /// Σu² of the arriving input, for the rounding floor.
    base: f64,
    out_num: f64,
}

impl Stat {
    fn num(&self) -> f64 {
        self.reps.iter().map(|r| r.1).sum()
    }
    fn den(&self) -> f64 {
        self.reps.iter().map(|r| r.2).sum()
    }
    fn add(&mut self, seed: u64, num: f64, den: f64) {
        if den <= 0.0 {
            // A block the change does not reach is no part of the ratio.
            return;
        }
        match self.reps.last_mut() {
            Some(r) if r.0 == seed => {
                r.1 += num;
                r.2 += den;
            }
            _ => self.reps.push((seed, num, den)),
        }
    }
}

/// Two-sided 1e-6 quantile of Student's t with `dof` degrees of freedom.
fn t_quantile(dof: usize) -> f64 {
    const TABLE: [(usize, f64); 10] = [
        (3, 130.2),
        (4, 49.5),
        (5, 28.5),
        (7, 15.8),
        (10, 10.5),
        (15, 7.9),
        (20, 6.93),
        (30, 6.12),
        (60, 5.45),
        (120, 5.16),
    ];
    if dof < 3 {
        return f64::INFINITY;
    }
    for w in TABLE.windows(2) {
        let ((d0, q0), (d1, q1)) = (w[0], w[1]);
        if dof <= d1 {
            // Interpolate in 1/dof, where the quantile is nearly linear.
            let x = (1.0 / dof as f64 - 1.0 / d0 as f64) / (1.0 / d1 as f64 - 1.0 / d0 as f64);
            return q0 + x * (q1 - q0);
        }
    }
    let x = 120.0 / dof as f64;
    4.89 + x * (5.16 - 4.89)
}

/// The reduction units of a norm over `[B, C, H, W]`, each as the flat indices of its values:
/// BatchNorm one per channel over (B, H, W); the per-position layer norm one per sample and
/// position over C; the others one per sample and group of channels over (group, H, W).
fn units(kind: NormKind, [bs, c, h, w]: [usize; 4]) -> Vec<Vec<usize>> {
    let hw = h * w;
    let idx = |bi: usize, ci: usize, p: usize| (bi * c + ci) * hw + p;
    match kind {
        NormKind::Batch => (0..c)
            .map(|ci| {
                (0..bs)
                    .flat_map(|bi| (0..hw).map(move |p| idx(bi, ci, p)))
                    .collect()
            })
            .collect(),
        NormKind::PerPosition => (0..bs)
            .flat_map(|bi| (0..hw).map(move |p| (bi, p)))
            .map(|(bi, p)| (0..c).map(|ci| idx(bi, ci, p)).collect())
            .collect(),
        _ => {
            let m = match kind {
                NormKind::Group { groups } => (c / groups.max(1)).max(1),
                NormKind::Instance => 1,
                _ => c.max(1),
            };
            (0..bs)
                .flat_map(|bi| (0..c / m).map(move |g| (bi, g)))
                .map(|(bi, g)| {
                    (g * m..g * m + m)
                        .flat_map(|ci| (0..hw).map(move |p| idx(bi, ci, p)))
                        .collect()
                })
                .collect()
        }
    }
}

/// The mean of `v` over a unit and the sum of squares about it.
fn mean_and_spread(unit: &[usize], v: impl Fn(usize) -> f64) -> (f64, f64) {
    let n = unit.len().max(1) as f64;
    let mean = unit.iter().map(|&i| v(i)).sum::<f64>() / n;
    (mean, unit.iter().map(|&i| (v(i) - mean).powi(2)).sum())
}

/// Adds one run's replicates: `a` the reference input, `b` the changed one.
fn accumulate(stat: &mut Stat, seed: u64, kind: NormKind, a: &Rec, b: &Rec) {
    let d = |i: usize| (b.input[i] - a.input[i]) as f64;
    stat.base += a.input.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
    for unit in units(kind, a.shape) {
        let (_, num) = mean_and_spread(&unit, d);
        let den: f64 = unit.iter().map(|&i| d(i).powi(2)).sum();
        stat.add(seed, num, den);
        // The norm's actual output change, scaled back by the unit's σ (γ = 1 at init).
        if let (Some(oa), Some(ob)) = (&a.output, &b.output) {
            let (_, ss) = mean_and_spread(&unit, |i| a.input[i] as f64);
            let sigma = (ss / unit.len().max(1) as f64).sqrt();
            for &i in &unit {
                stat.out_num += ((ob[i] - oa[i]) as f64 * sigma).powi(2);
            }
        }
    }
}

/// Judges one comparison.
fn judge(site: String, prediction: Option<Prediction>, st: &Stat) -> OriginMeasure {
    let (num, den) = (st.num(), st.den());
    const EPS: f64 = 1.2e-7;
    // Any change at all reaches; whether it is more than rounding is judged per claim below.
    let reaches = den > 1e-24 * st.base.max(1e-300);
    let r = st.reps.len();
    let measured = reaches.then(|| num / den);
    // Rounding of the difference of two f32 runs, relative to the change's energy.
    let rounding = if reaches {
        64.0 * EPS * EPS * (st.base + den) / den
    } else {
        0.0
    };
    let zero_floor = 1e-6 + rounding;
    let se = measured.and_then(|f| {
        (r >= 2).then(|| {
            let s: f64 = st.reps.iter().map(|(_, n, d)| (n - f * d).powi(2)).sum();
            (s * r as f64 / (r as f64 - 1.0)).sqrt() / den
        })
    });
    // The ratio is a mean of the seeds' ratios weighted by their energies: when a few seeds
    // carry most of the energy, the standard error rests on those few (Kish's effective count).
    let r_eff = {
        let d2: f64 = st.reps.iter().map(|(_, _, d)| d * d).sum();
        if d2 > 0.0 {
            ((den * den / d2).floor() as usize).clamp(1, r)
        } else {
            r
        }
    };
    let tol = se.map(|se| t_quantile(r_eff.saturating_sub(1)) * se + 2.0 * rounding.sqrt() + 1e-6);
    let (agree, why) = match (prediction, measured) {
        (None, None) => (true, "time does not reach it".to_string()),
        // Rounding left by an exact cancellation upstream is amplified by later norms (by the
        // ratio of a unit's mean to its spread, 1e3 and more on small maps after biased convs);
        // a claim that nothing arrives holds below 1e-3 of the input's rms.
        (None, Some(f)) => (
            den <= 1e-6 * st.base,
            format!(
                "the accounting says this origin does not reach the norm; a change of relative rms {:.1e} arrives ({f:.3} of it survives centering)",
                (den / st.base.max(1e-300)).sqrt()
            ),
        ),
        (Some(p), None) => (
            match p {
                Prediction::Zero | Prediction::Unknown => true,
                Prediction::Between { low, .. } => low <= 0.0,
                Prediction::Exact { .. } | Prediction::Nonzero => false,
            },
            "no change reaches the norm".to_string(),
        ),
        (Some(p), Some(f)) => match p {
            Prediction::Zero => (
                f <= zero_floor,
                format!("exact zero: measured {f:.2e} (limit {zero_floor:.1e})"),
            ),
            Prediction::Exact { fraction } => {
                let t = tol.unwrap_or(f64::INFINITY);
                (
                    (f - fraction).abs() <= t,
                    format!("predicted {fraction:.3}, measured {f:.3} ± {t:.3}"),
                )
            }
            Prediction::Between { low, high } => {
                let t = tol.unwrap_or(f64::INFINITY);
                (
                    f >= low - t && f <= high + t,
                    format!("predicted {low:.3}..{high:.3}, measured {f:.3} ± {t:.3}"),
                )
            }
            // Refuted only by a measurement that rounding alone explains (an exact zero measures
            // about 1e-13): a true survivor may be tiny beside what the norm removes.
            Prediction::Nonzero => (
                f > rounding || rounding > 0.1,
                format!("survives (no number stated); measured {f:.3e} (rounding floor {rounding:.1e})"),
            ),
            Prediction::Unknown => (true, format!("no claim; measured {f:.3}")),
        },
    };
    OriginMeasure {
        site,
        predicted: prediction.and_then(|p| p.fraction()),
        prediction,
        measured,
        tolerance: tol,
        standard_error: se,
        replicates: r,
        arriving: reaches.then(|| (den / st.base.max(1e-300)).sqrt()),
        agree,
        why,
    }
}

/// Graphs in the accounting's order (the model, then ODE functions as reached), each with the
/// ODE node that holds it in the model graph.
fn graphs_in_order(g: &Graph, out: &mut Vec<*const Graph>) {
    out.push(g as *const Graph);
    for n in &g.nodes {
        if let Op::Ode { func, .. } = &n.op {
            graphs_in_order(&func.graph, out);
        }
    }
}

/// The time range of the model's t.
fn model_range(m: &ModelIr) -> (f64, f64) {
    m.time.range()
}

/// Every norm's record of one run, and every node's value.
type Recorded<D> = (HashMap<String, Rec>, Vec<Option<Value<D>>>);

fn run_recorded<D: Kernels>(
    params: &Params<D>,
    g: &Graph,
    input: &Value<D>,
    (t, labels): (&[f32], &[usize]),
    swap: Option<Swap<D>>,
) -> Result<Recorded<D>, RuntimeError> {
    let mut r = Recorder {
        seen: HashMap::new(),
    };
    let mut ex = Exec::new(params, true);
    ex.labels = labels.to_vec();
    ex.swap = swap;
    ex.observer = Some(&mut r);
    let (vals, _) = ex.run(g, &[], input.clone(), t, NoneTape)?;
    drop(ex);
    Ok((r.seen, vals))
}

/// [`measure`] with a fresh initialization per seed (the quantity the accounting predicts).
pub fn measure_at_init<D: Kernels>(
    m: &ModelIr,
    acc: &Accounting,
    dev: &D,
    settings: &ProbeSettings,
) -> Result<Vec<NormMeasure>, RuntimeError> {
    measure(m, acc, dev, &|s| Ok(Params::init(m, dev, s)), settings)
}

/// Measures every norm the accounting reaches. `weights(seed)` gives the parameters for a seed.
pub fn measure<D: Kernels>(
    m: &ModelIr,
    acc: &Accounting,
    dev: &D,
    weights: &dyn Fn(u64) -> Result<Params<D>, RuntimeError>,
    settings: &ProbeSettings,
) -> Result<Vec<NormMeasure>, RuntimeError> {
    if let Some((_, node)) = &acc.truncated {
        // Nothing past the node is predicted: a comparison there would claim what was never
        // analyzed.
        return Err(RuntimeError::TooLarge(format!(
            "{}; probe a model with fewer injection sites",
            tdspec_compiler::accounting::work_limit_reason(&m.name, node, acc.limit)
        )));
    }
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    let batch = match &settings.input {
        Some(x) => x.len() / (c * h * w).max(1),
        None => settings.batch.max(2),
    };
    let mut order = Vec::new();
    graphs_in_order(&m.graph, &mut order);
    // (norm index, origin index or usize::MAX for the total) -> stats
    let mut stats: HashMap<(usize, usize), Stat> = HashMap::new();
    let mut seeds = settings.seeds.clone();
    let mut next = 0;
    while next < seeds.len() {
        let seed = seeds[next];
        next += 1;
        let params = weights(seed)?;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let x: Vec<f32> = match &settings.input {
            Some(x) => x[..batch * c * h * w].to_vec(),
            None => (0..batch * c * h * w)
                .map(|_| normal(&mut rng) as f32)
                .collect(),
        };
        let x = Value::Image(dev.tensor_from_vec(x, (batch, c, h, w)));
        for &(fa, fb) in &settings.pairs {
            let (lo, hi) = model_range(m);
            let ta = vec![(lo + fa * (hi - lo)) as f32; batch];
            // The model graph's values at t0 give the ODE functions their states.
            // Each sample's label, and another one for the label's change.
            let (mut la, mut lb) = (Vec::new(), Vec::new());
            if let Some(classes) = m.label.as_ref().map(|l| l.classes) {
                la = (0..batch).map(|_| rng.gen_range(0..classes)).collect();
                lb = la
                    .iter()
                    .map(|&l| (l + rng.gen_range(1..classes.max(2))) % classes)
                    .collect();
            }
            let (_, model_vals) = run_recorded(&params, &m.graph, &x, (&ta, &la), None)?;
            for (gi, &gp) in order.iter().enumerate() {
                // SAFETY-free: the pointers come from `m`, which outlives this loop.
                let (graph, input, range) = if gi == 0 {
                    (&m.graph, x.clone(), (lo, hi))
                } else {
                    // Only ODE functions of the model graph are probed (their state is known).
                    let Some((node, func, t0, t1)) =
                        m.graph.nodes.iter().find_map(|n| match &n.op {
                            Op::Ode { func, t0, t1, .. } if std::ptr::eq(&func.graph, gp) => {
                                Some((n, func, *t0, *t1))
                            }
                            _ => None,
                        })
                    else {
                        continue;
                    };
                    let Some(h0) = node.inputs.first().and_then(|&i| model_vals[i].clone()) else {
                        continue;
                    };
                    let _ = func;
                    (&func.graph, h0, (t0, t1))
                };
                if gi == 0 && m.graph.nodes.iter().any(|n| matches!(n.op, Op::Ode { .. })) {
                    // The model's own t does not reach inside an ODE block: probe its function.
                    continue;
                }
                // With t per sample, the samples' pairs are spread around (fa, fb) (by up to
                // ±0.1 of the range), as in a training batch where each sample has its own t;
                // the model graph's own t for ODE functions is shared.
                let spread = gi == 0 && m.time.sharing == Sharing::PerSample;
                let at = |f: f64, bi: usize| -> f32 {
                    let j = if spread && batch > 1 {
                        0.2 * (bi as f64 / (batch - 1) as f64 - 0.5)
                    } else {
                        0.0
                    };
                    let f = (f + j).clamp(0.0, 1.0);
                    let v = range.0 + f * (range.1 - range.0);
                    (if matches!(m.time.kind, TimeKind::Steps(_)) {
                        v.round()
                    } else {
                        v
                    }) as f32
                };
                if settings.vary_label && gi != 0 {
                    // The label does not reach inside ODE functions.
                    continue;
                }
                let t0: Vec<f32> = (0..batch).map(|bi| at(fa, bi)).collect();
                let (t1, l1) = if settings.vary_label {
                    (t0.clone(), &lb)
                } else {
                    ((0..batch).map(|bi| at(fb, bi)).collect(), &la)
                };
                let (base, _) = run_recorded(&params, graph, &input, (&t0, &la), None)?;
                let (full, full_vals) = run_recorded(&params, graph, &input, (&t1, l1), None)?;
                let states = &acc.graphs[gi].states;
                let mut runs: Vec<(usize, HashMap<String, Rec>)> = vec![(usize::MAX, full)];
                for (oi, o) in acc.origins.iter().enumerate() {
                    if o.graph_index != gi || settings.vary_label && !o.label {
                        continue;
                    }
                    let values: Vec<_> = graph.nodes[o.node]
                        .inputs
                        .iter()
                        .filter(|&&i| matches!(states.get(i), Some(Sig::TimeOnly { .. })))
                        .filter_map(|&i| full_vals[i].clone().map(|v| (i, v)))
                        .collect();
                    let swap = Swap {
                        graph: graph as *const Graph,
                        node: o.node,
                        values,
                    };
                    let (rec, _) = run_recorded(&params, graph, &input, (&t0, &la), Some(swap))?;
                    runs.push((oi, rec));
                }
                for (ni, na) in acc.norms.iter().enumerate() {
                    if na.graph_index != gi {
                        continue;
                    }
                    let Some(a) = base.get(&na.node) else {
                        continue;
                    };
                    for (oi, rec) in &runs {
                        if let Some(b) = rec.get(&na.node) {
                            accumulate(stats.entry((ni, *oi)).or_default(), seed, na.kind, a, b);
                        }
                    }
                }
            }
        }
        if next == seeds.len() {
            if let Some((target, max)) = settings.target {
                let worst = report(acc, &stats, settings.vary_label)
                    .iter()
                    .flat_map(|n| std::iter::once(&n.total).chain(n.origins.iter()))
                    .filter(|o| matches!(o.prediction, Some(Prediction::Exact { .. })))
                    .filter_map(|o| o.tolerance)
                    .fold(0.0_f64, f64::max);
                if worst > target && seeds.len() < max {
                    seeds.push(seeds.last().map_or(0, |s| s + 1));
                }
            }
        }
    }
    Ok(report(acc, &stats, settings.vary_label))
}

/// The comparisons from the accumulated replicates.
fn report(
    acc: &Accounting,
    stats: &HashMap<(usize, usize), Stat>,
    vary_label: bool,
) -> Vec<NormMeasure> {
    let mut out = Vec::new();
    for (ni, na) in acc.norms.iter().enumerate() {
        let probed = stats.keys().any(|k| k.0 == ni);
        if !probed {
            continue;
        }
        let empty = Stat::default();
        let tst = stats.get(&(ni, usize::MAX)).unwrap_or(&empty);
        let mut total = judge("total".into(), na.total, tst);
        // A label change moves only the origins whose embedding carries it: the total over all
        // origins is a claim about t.
        let unlabeled = na
            .origins
            .iter()
            .any(|v| acc.origins.get(v.origin).is_some_and(|o| !o.label));
        if vary_label && unlabeled {
            total.predicted = None;
            total.agree = true;
            total.why = "some origins here do not carry the label: no total is stated".into();
        }
        if na.constant {
            // What varies here is rounding: nothing to compare.
            total.agree = true;
            total.why =
                "every unit holds a single value: the output is β; only rounding varies".into();
        }
        let mut origins = Vec::new();
        for (oi, o) in acc.origins.iter().enumerate() {
            if o.graph_index != na.graph_index || vary_label && !o.label {
                continue;
            }
            let pred = na
                .origins
                .iter()
                .find(|v| v.origin == oi)
                .map(|v| v.prediction);
            let st = stats.get(&(ni, oi)).unwrap_or(&empty);
            let mut om = judge(o.path.clone(), pred, st);
            if na.constant {
                om.agree = true;
                om.why = total.why.clone();
            }
            origins.push(om);
        }
        let den = tst.den();
        let output = (den > 0.0 && !na.in_attention).then(|| tst.out_num / den);
        let agree = total.agree && origins.iter().all(|o| o.agree);
        out.push(NormMeasure {
            graph: na.graph.clone(),
            node: na.node.clone(),
            kind: na.kind.to_string(),
            in_attention: na.in_attention,
            predicted: total.predicted,
            measured: total.measured,
            output,
            agree,
            total,
            origins,
        });
    }
    out
}
