//! The demo: three variants of small_ddpm_mnist (compiled in) on the embedded MNIST digits,
//! linted, trained with the same seed and budget, probed and evaluated: one whose time
//! injections are all cancelled, the DDPM-style baseline whose GroupNorm keeps 3/4 of the
//! offset, and a scale-shift remedy. Out: one [`DemoRow`] per variant (the static verdict
//! beside the measured time sensitivity and the test epsilon-MSE overall and per quarter of the
//! timesteps), also written to `demo.json`, and the table of them ([`demo_table`]).

use super::measure::{lint_verdict, probe_input, probe_trained, TrainedNorm, PROBE_BATCH};
use crate::run::{self, RunError, RunObserver, Silent, Start, TrainOptions, TrainedRun};
use crate::train::forward;
use dfdx::tensor::Cpu;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The variants: name, role, spec text.
pub const DEMO_VARIANTS: [(&str, &str, &str); 3] = [
    (
        "canceled",
        "time cancelled (GroupNorm, 1 channel/group)",
        include_str!("../../../specs/small_ddpm_mnist_canceled.tds"),
    ),
    (
        "baseline",
        "DDPM-style additive (4 channels/group)",
        include_str!("../../../specs/small_ddpm_mnist.tds"),
    ),
    (
        "scale_shift",
        "remedy: scale-shift after the norm",
        include_str!("../../../specs/small_ddpm_mnist_scale_shift.tds"),
    ),
];

/// The demo's budget and where its runs go.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub steps: usize,
    pub batch: usize,
    pub seed: u64,
    /// A new or empty directory.
    pub out: PathBuf,
    /// Test digits for the final evaluation.
    pub eval_samples: usize,
    /// The command line, kept in each run's `command.txt`.
    pub command: String,
}

/// One variant's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct DemoRow {
    /// Test eps-MSE overall (NaN when the evaluation had none).
    pub eps_mse: f64,
    /// Per quarter of the timesteps, low noise first.
    #[serde(rename = "eps_mse_quarters")]
    pub quarters: Vec<f64>,
    /// Distinct lint codes.
    pub lint: Vec<String>,
    /// The probe's measurement (trained weights) of what `predicted` states; where nothing is
    /// stated, the mean measured survival over the norms the signal reaches.
    #[serde(rename = "measured_survival")]
    pub measured: Option<f64>,
    /// Relative change of the predicted noise from t = 100 to t = 900 at the same input.
    pub output_change: f64,
    /// The smallest surviving fraction the lint states (None: it states none, the signal
    /// stays alive).
    #[serde(rename = "predicted_survival")]
    pub predicted: Option<f64>,
    #[serde(skip)]
    pub role: &'static str,
    pub seconds: f64,
    #[serde(rename = "variant")]
    pub name: &'static str,
}

/// The default run directory of the demo: `base` when it is absent or empty, else the first
/// absent or empty `base-2`, `base-3`, ... (a finished demo is never overwritten, and the main
/// job runs every time).
pub fn fresh_demo_dir(base: &Path) -> PathBuf {
    // An unreadable entry counts as taken.
    let free = |p: &Path| std::fs::read_dir(p).map_or(!p.exists(), |mut d| d.next().is_none());
    if free(base) {
        return base.to_path_buf();
    }
    let name = base
        .file_name()
        .map_or("demo".into(), |n| n.to_string_lossy().into_owned());
    (2..)
        .map(|i| base.with_file_name(format!("{name}-{i}")))
        .find(|p| free(p))
        .unwrap_or_else(|| base.to_path_buf())
}

/// Runs the demo; `demo.json` in `opts.out` holds the rows too.
pub fn run_demo(opts: &DemoOptions, obs: &mut dyn RunObserver) -> Result<Vec<DemoRow>, RunError> {
    if opts.batch < 2 || opts.steps == 0 {
        return Err(RunError::failed(format!(
            "--batch {} --steps {}: the demo trains at least 1 step of at least 2 digits",
            opts.batch, opts.steps
        )));
    }
    let nonempty = std::fs::read_dir(&opts.out).is_ok_and(|mut d| d.next().is_some());
    if opts.out.exists() && nonempty {
        return Err(RunError::failed(format!(
            "{} is not empty; choose another --out (runs are never overwritten)",
            opts.out.display()
        )));
    }
    obs.note(&format!(
        "tdspec demo: 3 variants of small_ddpm_mnist, {} steps each at batch {}, seed {}, on the embedded MNIST digits; runs in {}",
        opts.steps, opts.batch, opts.seed, opts.out.display()
    ));
    let mut rows = Vec::new();
    for (name, role, text) in DEMO_VARIANTS {
        // 1. Static verdict.
        let verdict = lint_verdict(text)
            .map_err(|d| {
                RunError::failed(format!(
                    "the embedded spec {name} does not check: {:?}",
                    d.first().map(|d| &d.message)
                ))
            })?
            .ok_or_else(|| RunError::failed(format!("the embedded spec {name} has no model")))?;
        let lint = if verdict.codes.is_empty() {
            "clean".to_string()
        } else {
            verdict.codes.join(", ")
        };
        let stated = verdict.norms.iter().any(|n| n.1.is_some());
        let worst = match stated {
            true => format!("{:.2}", verdict.worst),
            false => "none stated, alive".to_string(),
        };
        obs.note(&format!(
            "[{name}] lint: {lint} (smallest predicted survival: {worst})"
        ));

        // 2. Train.
        let dir = opts.out.join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| RunError::failed(format!("cannot create {}: {e}", dir.display())))?;
        let spec = dir.join("variant.tds");
        std::fs::write(&spec, text)
            .map_err(|e| RunError::failed(format!("cannot write {}: {e}", spec.display())))?;
        obs.note(&format!("[{name}] training ..."));
        let train = TrainOptions {
            start: Start::New {
                spec,
                out: Some(dir.join("run")),
                data: None,
                seed: opts.seed,
                limit_train: None,
                init: None,
            },
            steps: Some(opts.steps),
            epochs: None,
            batch: Some(opts.batch),
            eval_every: Some(opts.steps),
            eval_samples: opts.eval_samples,
            command: opts.command.clone(),
        };
        let result = run::train(&train, &Cpu::default(), &mut Silent)?;

        // 3. Probe the trained network on noised test digits.
        let run = TrainedRun::open(&result.dir)?;
        let split = run.data()?;
        let (m, b) = (&run.model, PROBE_BATCH);
        let x = probe_input(m, &split, opts.seed);
        let probes = probe_trained(&run, &split, opts.seed)
            .map_err(|e| RunError::failed(format!("probe failed: {e}")))?;
        let (predicted, measured) = TrainedNorm::summary(&probes);
        let output_change = match (
            forward(m, &run.params, x.clone(), b, &vec![100.0; b]),
            forward(m, &run.params, x, b, &vec![900.0; b]),
        ) {
            (Ok((o1, _)), Ok((o2, _))) => {
                let d: f64 = o1
                    .iter()
                    .zip(&o2)
                    .map(|(p, q)| ((p - q) as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let n: f64 = o1.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
                d / n.max(1e-12)
            }
            _ => f64::NAN,
        };
        let e = &result.final_eval;
        let eps_mse = e.eps_mse.unwrap_or(f64::NAN);
        obs.note(&format!(
            "[{name}] {:.0} s; test eps-MSE {eps_mse:.5}; output change t=100 vs 900: {output_change:.3}",
            result.seconds
        ));
        rows.push(DemoRow {
            eps_mse,
            quarters: e.eps_mse_buckets.clone(),
            lint: verdict.codes,
            measured,
            output_change,
            predicted,
            role,
            seconds: result.seconds,
            name,
        });
    }
    let _ = std::fs::write(
        opts.out.join("demo.json"),
        serde_json::to_string_pretty(&rows).unwrap_or_default(),
    );
    Ok(rows)
}

/// One line of the demo's table: variant, role, lint and eight right-aligned figures.
fn line(name: &str, role: &str, lint: &str, figures: &[String]) -> String {
    let figures: Vec<String> = figures.iter().map(|f| format!("{f:>9}")).collect();
    format!("{name:12} {role:44} {lint:16} {}\n", figures.join(" "))
}

/// The demo's table with its title and legend.
pub fn demo_table(rows: &[DemoRow], opts: &DemoOptions) -> String {
    let mut s = format!(
        "\nsmall_ddpm_mnist, {} steps x batch {}, seed {}; test eps-MSE on {} embedded test digits\n",
        opts.steps, opts.batch, opts.seed, opts.eval_samples
    );
    let head = "predicted|measured|output Δt|eps-MSE|q1 (low)|q2|q3|q4 (high)";
    s += &line(
        "variant",
        "",
        "lint",
        &head.split('|').map(String::from).collect::<Vec<_>>(),
    );
    for r in rows {
        let lint = if r.lint.is_empty() {
            "clean".to_string()
        } else {
            r.lint.join(",")
        };
        let mut figures = vec![
            r.predicted.map_or("alive".into(), |p| format!("{p:.2}")),
            r.measured.map_or("-".into(), |m| format!("{m:.2}")),
            format!("{:.3}", r.output_change),
            format!("{:.5}", r.eps_mse),
        ];
        let q = |i: usize| r.quarters.get(i).map_or("-".into(), |v| format!("{v:.5}"));
        figures.extend((0..4).map(q));
        s += &line(r.name, r.role, &lint, &figures);
    }
    s + "\npredicted: the smallest surviving fraction the lint states (at initialization; alive: it states none)
measured: the probe's measurement of that origin at that norm, trained weights (alive: the mean over the norms t reaches)
output Δt: relative change of the predicted noise when t goes from 100 to 900 at the same input
q1..q4: test eps-MSE per quarter of the timesteps, low noise first\n"
}

#[cfg(test)]
mod tests {
    use super::fresh_demo_dir;

    #[test]
    fn a_taken_demo_directory_gets_a_fresh_sibling() {
        let root = std::env::temp_dir().join(format!("tdspec-demo-dir-{}", std::process::id()));
        let base = root.join("demo");
        assert_eq!(fresh_demo_dir(&base), base);
        std::fs::create_dir_all(&base).unwrap();
        assert_eq!(fresh_demo_dir(&base), base, "an empty directory is reused");
        std::fs::write(base.join("demo.json"), "[]").unwrap();
        assert_eq!(fresh_demo_dir(&base), root.join("demo-2"));
        std::fs::create_dir_all(root.join("demo-2/x")).unwrap();
        assert_eq!(fresh_demo_dir(&base), root.join("demo-3"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
