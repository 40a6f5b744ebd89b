//! `tdspec probe`'s engine: a checked model, its weights (seeded initializations or a
//! checkpoint) and [`ProbeOptions`] in; the survival probe's measurement of every normalization
//! the time signal reaches ([`crate::survival::measure`]: per origin and in total, attention's
//! inner norm included) next to the accounting's prediction at the probe batch, out as
//! [`NormMeasure`]s, a text table and the list of disagreements.

use crate::ops::Kernels;
use crate::params::Params;
use crate::survival::{measure, NormMeasure, OriginMeasure, ProbeSettings};
use crate::RuntimeError;
use std::path::Path;
use tdspec_compiler::accounting::{account_with, Prediction};
use tdspec_compiler::ir::{ModelIr, Op};

/// Refuses a probe batch that cannot estimate anything (BatchNorm needs two samples).
pub fn check_batch(batch: usize) -> Result<(), String> {
    if batch < 2 {
        return Err(format!(
            "--batch {batch}: the probe needs at least 2 samples (BatchNorm's statistics span the batch)"
        ));
    }
    if batch > 4096 {
        return Err(format!("--batch {batch}: at most 4096 samples"));
    }
    Ok(())
}

/// What the user asks of a probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub batch: usize,
    /// The first seed and how many: seeds `seed..seed + seeds`, each a fresh draw of weights
    /// (unless a checkpoint is given) and of the input batch.
    pub seed: u64,
    pub seeds: usize,
    /// Time pairs in the model's units (step indices for step time; points of the ODE interval
    /// for an ODE model; points of [0, 1] for continuous time). Empty: t at 1/4 and 3/4 of the
    /// range.
    pub pairs: Vec<(f64, f64)>,
    /// Add seeds (up to `max_seeds` in all) until every stated number's tolerance is at most
    /// this.
    pub target: Option<f64>,
    pub max_seeds: usize,
    /// Change the class label instead of t (class-conditional models).
    pub vary_label: bool,
}

/// The range the time pairs are given in: the first ODE block's interval for an ODE model,
/// else the model's own range.
pub fn time_range(m: &ModelIr) -> (f64, f64) {
    let ode = m.graph.nodes.iter().find_map(|n| match &n.op {
        Op::Ode { t0, t1, .. } => Some((*t0, *t1)),
        _ => None,
    });
    ode.unwrap_or(m.time.range())
}

impl ProbeOptions {
    /// The options from the command line's values, checked: `t0[i] -> t1[i]` pairs, 1 to 256
    /// seeds, a tolerance target of 0 (none) or more.
    pub fn from_args(
        batch: usize,
        (seed, seeds, max_seeds): (u64, usize, usize),
        target: f64,
        t0: &[f64],
        t1: &[f64],
    ) -> Result<ProbeOptions, String> {
        check_batch(batch)?;
        if !(1..=256).contains(&seeds) || !(1..=256).contains(&max_seeds) {
            return Err(format!(
                "--seeds {seeds} / --max-seeds {max_seeds}: between 1 and 256"
            ));
        }
        if !(target >= 0.0 && target.is_finite()) {
            return Err(format!("--target {target}: a tolerance of 0 or more"));
        }
        if t0.len() != t1.len() {
            return Err(format!(
                "--t0 gives {} time(s) and --t1 {}: one --t1 per --t0",
                t0.len(),
                t1.len()
            ));
        }
        Ok(ProbeOptions {
            batch,
            seed,
            seeds,
            pairs: t0.iter().copied().zip(t1.iter().copied()).collect(),
            target: (target > 0.0).then_some(target),
            max_seeds,
            vary_label: false,
        })
    }
}

/// What `tdspec probe` prints for one model: the settings, the table, what the numbers mean,
/// and a note when a tolerance stayed above the target.
pub fn report(
    file: &str,
    m: &ModelIr,
    trained: bool,
    opts: &ProbeOptions,
    rows: &[NormMeasure],
) -> String {
    let weights = if trained { "checkpoint" } else { "initial" };
    let when = if opts.pairs.is_empty() {
        "t at 1/4 and 3/4 of its range".to_string()
    } else {
        let p: Vec<String> = opts
            .pairs
            .iter()
            .map(|(x, y)| format!("{x}->{y}"))
            .collect();
        format!("t {}", p.join(", "))
    };
    let used = rows.iter().map(|r| r.total.replicates).max().unwrap_or(0);
    let mut out = format!(
        "{file}: model {} ({weights} weights, batch {}, {used} seed(s) from {}, {when})\n",
        m.name, opts.batch, opts.seed
    );
    out.push_str(&table(rows));
    out.push_str("predicted/measured: the share of the time change's energy the norm's mean subtraction keeps; tol: Student-t (1e-6) times the standard error over seeds, plus f32 rounding\n");
    let wide = rows
        .iter()
        .flat_map(|r| std::iter::once(&r.total).chain(&r.origins))
        .filter(|o| o.predicted.is_some_and(|p| p > 0.0))
        .filter_map(|o| o.tolerance)
        .fold(0.0_f64, f64::max);
    if let Some(t) = opts.target.filter(|&t| wide > t) {
        out.push_str(&format!(
            "note: a tolerance is still ±{wide:.3} after {used} seeds (--target {t}); raise --max-seeds or --batch\n"
        ));
    }
    out
}

/// Checks the time pairs against the model's range.
pub fn check_pairs(m: &ModelIr, pairs: &[(f64, f64)]) -> Result<(), String> {
    let (lo, hi) = time_range(m);
    for &(a, b) in pairs {
        for v in [a, b] {
            if !v.is_finite() || v < lo.min(hi) || v > lo.max(hi) {
                return Err(format!(
                    "time {v} is outside the model's time range [{lo}, {hi}]"
                ));
            }
        }
        if a == b {
            return Err(format!("--t0 and --t1 are both {a}: nothing changes"));
        }
    }
    Ok(())
}

/// Probes every normalization of `m` with fresh initializations per seed, or the weights of a
/// checkpoint (then the seeds draw only the input).
pub fn probe_model<D: Kernels>(
    m: &ModelIr,
    dev: &D,
    checkpoint: Option<&Path>,
    opts: &ProbeOptions,
) -> Result<Vec<NormMeasure>, RuntimeError> {
    crate::lower::ensure_fits(m, opts.batch)?;
    let trained = match checkpoint {
        Some(ck) => {
            let mut params = Params::init(m, dev, opts.seed);
            crate::checkpoint::load_params(&mut params, ck)?;
            Some(params)
        }
        None => None,
    };
    let weights = |seed: u64| {
        Ok(match &trained {
            Some(p) => p.clone(),
            None => Params::init(m, dev, seed),
        })
    };
    probe_weights(m, dev, &weights, opts)
}

/// Probes every normalization of `m`. `weights(seed)` gives the parameters for a seed.
pub fn probe_weights<D: Kernels>(
    m: &ModelIr,
    dev: &D,
    weights: &dyn Fn(u64) -> Result<Params<D>, RuntimeError>,
    opts: &ProbeOptions,
) -> Result<Vec<NormMeasure>, RuntimeError> {
    let acc = account_with(m, opts.batch);
    let (lo, hi) = time_range(m);
    let span = if hi == lo { 1.0 } else { hi - lo };
    let pairs = if opts.pairs.is_empty() {
        vec![(0.25, 0.75)]
    } else {
        opts.pairs
            .iter()
            .map(|&(a, b)| ((a - lo) / span, (b - lo) / span))
            .collect()
    };
    let settings = ProbeSettings {
        batch: opts.batch,
        seeds: (0..opts.seeds.max(1) as u64)
            .map(|i| opts.seed.wrapping_add(i))
            .collect(),
        pairs,
        target: opts.target.map(|t| (t, opts.max_seeds.max(opts.seeds))),
        input: None,
        vary_label: opts.vary_label,
    };
    if opts.vary_label && m.label.is_none() {
        return Err(RuntimeError::Unsupported(format!(
            "--vary label: model `{}` has no class-label input",
            m.name
        )));
    }
    measure(m, &acc, dev, weights, &settings)
}

fn num(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.3}"))
}

/// Below this relative rms the arriving change is f32 rounding (left by an exact cancellation
/// upstream), not a time signal.
const ROUNDING_RMS: f64 = 1e-3;

fn row(out: &mut String, norm: &str, (kind, kw): (&str, usize), o: &OriginMeasure) {
    let stated = matches!(
        o.prediction,
        Some(Prediction::Exact { .. } | Prediction::Between { .. })
    );
    let tol = match o.tolerance {
        Some(t) if stated => format!("±{t:.3}"),
        _ => "-".to_string(),
    };
    let predicted = match (o.predicted, o.prediction) {
        (Some(p), _) => format!("{p:.3}"),
        (None, Some(p)) => prediction_word(p).to_string(),
        (None, None) => "no change".to_string(),
    };
    let measured = match o.arriving {
        Some(a) if a < ROUNDING_RMS && !stated => "rounding".to_string(),
        _ => num(o.measured),
    };
    out.push_str(&format!(
        "{norm:<28} {kind:<kw$} {:<28} {predicted:>9} {measured:>9} {tol:>8}  {}\n",
        o.site,
        if o.agree { "yes" } else { "NO" }
    ));
}

/// The word for a prediction without a number.
pub fn prediction_word(p: Prediction) -> &'static str {
    use Prediction::*;
    match p {
        Zero | Exact { .. } => "number",
        Between { .. } => "range",
        Nonzero => "alive",
        Unknown => "unknown",
    }
}

/// The probe's table: per norm the total, then each origin that reaches it.
pub fn table(rows: &[NormMeasure]) -> String {
    // The kind column fits the longest kind (`layer(over = channels)`).
    let kw = rows
        .iter()
        .map(|n| n.kind.chars().count())
        .fold(12, usize::max);
    let mut out = format!(
        "{:<28} {:<kw$} {:<28} {:>9} {:>9} {:>8}  agree\n",
        "norm", "kind", "origin", "predicted", "measured", "tol"
    );
    for n in rows {
        row(&mut out, &n.node, (&n.kind, kw), &n.total);
        for o in n
            .origins
            .iter()
            .filter(|o| o.prediction.is_some() || o.measured.is_some())
        {
            row(&mut out, "", ("", kw), o);
        }
    }
    out
}

/// What `tdspec probe` prints on stderr for these disagreements ("" when there are none).
pub fn disagreement_text(bad: &[String]) -> String {
    if bad.is_empty() {
        return String::new();
    }
    let mut out: String = bad.iter().map(|d| format!("disagree: {d}\n")).collect();
    out.push_str(&format!(
        "{} comparison(s) disagree with the lint's prediction\n",
        bad.len()
    ));
    out
}

/// One line per disagreement, naming the norm and the origin.
pub fn disagreements(rows: &[NormMeasure]) -> Vec<String> {
    let mut out = Vec::new();
    for n in rows {
        for o in std::iter::once(&n.total).chain(&n.origins) {
            if !o.agree {
                out.push(format!(
                    "{} at {} ({}): predicted {}, measured {}: {}",
                    o.site,
                    n.node,
                    n.kind,
                    o.predicted.map_or_else(
                        || o.prediction.map_or("none", prediction_word).to_string(),
                        |p| format!("{p:.3}")
                    ),
                    num(o.measured),
                    o.why
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(site: &str, predicted: Option<f64>, measured: f64, agree: bool) -> OriginMeasure {
        OriginMeasure {
            site: site.into(),
            predicted,
            prediction: predicted.map(|f| Prediction::Exact { fraction: f }),
            measured: Some(measured),
            tolerance: Some(0.04),
            standard_error: Some(0.008),
            replicates: 8,
            arriving: Some(0.5),
            agree,
            why: "predicted 0.750, measured 0.900 ± 0.040".into(),
        }
    }

    #[test]
    fn a_disagreement_names_the_norm_and_the_origin() {
        let rows = vec![NormMeasure {
            graph: String::new(),
            node: "down.0.res0.norm2".into(),
            kind: "group(32)".into(),
            in_attention: false,
            predicted: Some(0.75),
            measured: Some(0.9),
            output: None,
            agree: false,
            total: origin("total", Some(0.75), 0.9, true),
            origins: vec![origin("down.0.res0.temb_proj", Some(0.75), 0.9, false)],
        }];
        let d = disagreements(&rows);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].starts_with("down.0.res0.temb_proj at down.0.res0.norm2"),
            "{}",
            d[0]
        );
        assert!(d[0].contains("predicted 0.750, measured 0.900"), "{}", d[0]);
        let t = table(&rows);
        assert!(t.contains("NO"), "{t}");
    }

    #[test]
    fn time_pairs_outside_the_range_are_refused() {
        let m = tdspec_compiler::sema::check_source(
            "model m { input x: image[1, 4, 4]\n time t: step(10), per_sample\n embed e = sinusoidal(8) | linear(4)\n h = x | conv1(4)\n return h + inject(e) }",
        )
        .unwrap()
        .remove(0);
        assert_eq!(time_range(&m), (0.0, 9.0));
        assert!(check_pairs(&m, &[(0.0, 9.0)]).is_ok());
        assert!(check_pairs(&m, &[(0.0, 10.0)]).is_err());
        assert!(check_pairs(&m, &[(3.0, 3.0)]).is_err());
    }
}
