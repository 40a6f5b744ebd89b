//! `tdspec probe SPEC [--checkpoint FILE]`: a spec (and optionally trained weights) in; for
//! every normalization the measured survival of the time signal beside the lint's static
//! prediction out ([`tdspec_runtime::probe::compare`]); disagreements are flagged (exit 1).

use crate::device::{on_device, DeviceArg};
use crate::report::{fail, print_json, OrExit};
use crate::Format;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tdspec_runtime::params::Params;
use tdspec_runtime::probe::{self, compare, probe_seeded, table};
use tdspec_runtime::{checkpoint, spec};

#[derive(Args)]
pub struct ProbeArgs {
    spec: PathBuf,
    /// Load weights from a safetensors checkpoint instead of the seeded initialization
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Samples in the probe batch
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Run the probe on this device (cuda needs a binary built with --features cuda)
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run(a: &ProbeArgs) -> Result<u8, u8> {
    let (src, models) = spec::load(&a.spec).or_exit()?;
    probe::check_batch(a.batch).or_exit()?;
    let (batch, seed) = (a.batch, a.seed);
    let (mut disagreements, mut out_json) = (0, Vec::new());
    for m in &models {
        let probes = on_device!(a.device, |dev| {
            let mut params = Params::init(m, &dev, seed);
            if let Some(ck) = &a.checkpoint {
                checkpoint::load_params(&mut params, ck).or_exit()?;
            }
            probe_seeded(m, &params, batch, seed)
                .map_err(|e| fail(format!("{}: probe failed: {e}", m.name)))?
        });
        let rows = compare(m, probes.or_exit()?);
        disagreements += rows.iter().filter(|r| !r.agree).count();
        if a.format == Format::Json {
            out_json.push(json!({"file": src.name, "model": m.name, "norms": rows}));
            continue;
        }
        let weights = a.checkpoint.as_ref().map_or("initial", |_| "checkpoint");
        let (file, name) = (&src.name, &m.name);
        println!("{file}: model {name} ({weights} weights, batch {batch}, seed {seed})");
        print!("{}", table(&rows));
    }
    if a.format == Format::Json {
        print_json(&out_json);
    }
    if disagreements > 0 {
        eprintln!("{disagreements} normalization(s) disagree with the static verdict");
    }
    Ok(u8::from(disagreements > 0))
}
