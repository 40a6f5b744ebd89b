//! `tdspec probe SPEC`: a spec (and optionally trained weights) in; for every normalization
//! the time signal reaches, per origin and in total, the measured fraction of the time change
//! its mean subtraction keeps beside the lint's prediction, with the tolerance from the
//! estimator's sampling error ([`tdspec_runtime::probe`]). Exit 1 on a disagreement, naming
//! the norm and the origin.

use crate::device::{on_device, DeviceArg};
use crate::report::{fail, print_json, OrExit};
use crate::Format;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tdspec_runtime::probe::{self, disagreements, probe_model, ProbeOptions};
use tdspec_runtime::spec;

#[derive(Args)]
pub struct ProbeArgs {
    spec: PathBuf,
    /// Load weights from a safetensors checkpoint instead of the seeded initializations
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Samples in the probe batch
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// The first seed (weights and input batch)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Independent draws of weights and input (input only with --checkpoint) to average over
    #[arg(long, default_value_t = 4)]
    seeds: usize,
    /// Add seeds until every stated number's tolerance is at most this (0: exactly --seeds)
    #[arg(long, default_value_t = 0.05)]
    target: f64,
    /// The most seeds --target may use
    #[arg(long, default_value_t = 64)]
    max_seeds: usize,
    /// Times t changes from, comma-separated, in the model's units; default 1/4 of the range
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    t0: Vec<f64>,
    /// The times t is changed to, one per --t0; default 3/4 of the range
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    t1: Vec<f64>,
    /// What changes: t, or each sample's class label (t held at --t0; class-conditional models)
    #[arg(long, default_value = "t", value_parser = ["t", "label"])]
    vary: String,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Run the probe on this device (cuda needs a binary built with --features cuda)
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run(a: &ProbeArgs) -> Result<u8, u8> {
    let (src, models) = spec::load(&a.spec).or_exit()?;
    let seeds = (a.seed, a.seeds, a.max_seeds);
    let mut opts = ProbeOptions::from_args(a.batch, seeds, a.target, &a.t0, &a.t1).or_exit()?;
    opts.vary_label = a.vary == "label";
    let (mut bad, mut out_json) = (Vec::new(), Vec::new());
    for m in &models {
        probe::check_pairs(m, &opts.pairs).map_err(|e| fail(format!("{}: {e}", m.name)))?;
        let rows = on_device!(a.device, |dev| {
            probe_model(m, &dev, a.checkpoint.as_deref(), &opts)
                .map_err(|e| fail(format!("{}: probe failed: {e}", m.name)))?
        })
        .or_exit()?;
        let named = disagreements(&rows).into_iter();
        bad.extend(named.map(|d| format!("{}: model {}: {d}", src.name, m.name)));
        if a.format == Format::Json {
            out_json.push(json!({"file": src.name, "model": m.name, "norms": rows}));
        } else {
            let trained = a.checkpoint.is_some();
            print!("{}", probe::report(&src.name, m, trained, &opts, &rows));
        }
    }
    if a.format == Format::Json {
        print_json(&out_json);
    }
    eprint!("{}", probe::disagreement_text(&bad));
    Ok(u8::from(!bad.is_empty()))
}
