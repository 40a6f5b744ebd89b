//! `tdspec probe SPEC [--checkpoint FILE]`: a spec (and optionally trained weights) in; for
//! every normalization the measured survival of the time signal beside the lint's static
//! prediction out ([`tdspec_runtime::probe::compare`]); disagreements are flagged (exit 1).

use crate::device::{on_device, DeviceArg};
use crate::report::{checked, fail};
use crate::Format;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tdspec_runtime::checkpoint;
use tdspec_runtime::params::Params;
use tdspec_runtime::probe::{compare, probe_seeded};

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

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

pub fn run(a: &ProbeArgs) -> u8 {
    let (src, models) = match checked(&a.spec) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if a.batch < 2 {
        return fail("--batch must be at least 2 (batch statistics need two samples)");
    }
    let (batch, seed) = (a.batch, a.seed);
    let mut disagreements = 0;
    let mut out_json = Vec::new();
    for m in &models {
        let probes = on_device!(a.device, |dev| {
            let mut params = Params::init(m, &dev, seed);
            match &a.checkpoint {
                Some(ck) => checkpoint::load_params(&mut params, ck).map_err(|e| e.to_string()),
                None => Ok(()),
            }
            .and_then(|()| {
                probe_seeded(m, &params, batch, seed)
                    .map_err(|e| format!("{}: probe failed: {e}", m.name))
            })
        });
        let rows = match probes {
            Ok(Ok(p)) => compare(m, p),
            Ok(Err(e)) | Err(e) => return fail(e),
        };
        disagreements += rows.iter().filter(|r| !r.agree).count();
        if a.format == Format::Json {
            out_json.push(json!({"file": src.name, "model": m.name, "norms": rows}));
            continue;
        }
        let weights = if a.checkpoint.is_some() {
            "checkpoint"
        } else {
            "initial"
        };
        println!(
            "{}: model {} ({weights} weights, batch {batch}, seed {seed})",
            src.name, m.name
        );
        let w = rows
            .iter()
            .map(|r| r.probe.node.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "  {:w$}  {:10}  {:>3}  {:>8}  {:>8}  {:>8}  {:>8}  {:>9}  verdict",
            "norm", "kind", "m", "Δin", "Δout", "measured", "interior", "predicted"
        );
        for r in &rows {
            let p = &r.probe;
            println!(
                "  {:w$}  {:10}  {:>3}  {:>8.4}  {:>8.4}  {:>8}  {:>8}  {:>9}  {} ({})",
                p.node,
                p.kind,
                p.channels_per_unit,
                p.input_change,
                p.output_change,
                fmt_opt(p.fraction),
                fmt_opt(p.interior_variation),
                fmt_opt(r.predicted),
                if r.agree { "agree" } else { "DISAGREE" },
                r.why
            );
        }
    }
    if a.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out_json).unwrap_or_default()
        );
    }
    if disagreements > 0 {
        eprintln!("{disagreements} normalization(s) disagree with the static verdict");
        1
    } else {
        0
    }
}
