//! `tdspec compile SPEC --summary`: a checked spec in; the lowered graph built and run once on
//! the chosen device ([`tdspec_runtime::lower::run_once`]), and a summary out: parameter
//! tensors, multiply-accumulates per forward and per ODE function evaluation, and the estimated
//! activation memory for a batch size.

use crate::device::{on_device, DeviceArg};
use crate::render::{render, use_color};
use crate::report::{checked, fail};
use crate::Format;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tdspec_compiler::diagnostics::thousands;
use tdspec_runtime::lower;
use tdspec_runtime::summary::CompileSummary;

#[derive(Args)]
pub struct CompileArgs {
    spec: PathBuf,
    /// List every parameter tensor
    #[arg(long)]
    summary: bool,
    /// Batch size for the memory estimate
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Refuse plans that need more memory than this (GiB)
    #[arg(long, default_value_t = 16.0)]
    memory_limit: f64,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Build and run the graph on this device (cuda needs a binary built with --features cuda)
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

fn mib(bytes: f64) -> String {
    if bytes >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", bytes / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes / (1u64 << 20) as f64)
    }
}

fn si(v: f64) -> String {
    match v {
        _ if v >= 1e9 => format!("{:.2} G", v / 1e9),
        _ if v >= 1e6 => format!("{:.2} M", v / 1e6),
        _ if v >= 1e3 => format!("{:.2} k", v / 1e3),
        _ => format!("{v:.0} "),
    }
}

pub fn run(a: &CompileArgs) -> u8 {
    let (src, models) = match checked(&a.spec) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let limit = (a.memory_limit * (1u64 << 30) as f64) as u64;
    let mut out_json = Vec::new();
    for m in &models {
        let cost = match lower::check(m, a.batch, limit) {
            Ok(c) => c,
            Err(diags) => {
                for d in &diags {
                    eprint!("{}", render(&src, d, use_color()));
                }
                return 1;
            }
        };
        let (infos, nfe) = match on_device!(a.device, |dev| lower::run_once(m, &dev)) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return fail(format!("{}: the compiled graph failed to run: {e}", m.name))
            }
            Err(e) => return fail(e),
        };
        let c = CompileSummary::new(&src, m, &infos, &cost, a.batch);
        if a.format == Format::Json {
            out_json.push(json!(c));
            continue;
        }
        println!(
            "{}: model {} (compiled for {})",
            c.file,
            c.model,
            a.device.name()
        );
        if a.summary {
            let w = c.tensors.iter().map(|i| i.name.len()).max().unwrap_or(4);
            println!("  parameter tensors ({}):", c.tensors.len());
            for t in &c.tensors {
                let (shape, n) = (format!("{:?}", t.shape), t.shape.iter().product());
                println!("    {:w$}  {shape:<18}  {:>11}", t.name, thousands(n));
            }
        }
        println!(
            "  parameters: {} ({} as f32)",
            thousands(c.params),
            mib(c.params as f64 * 4.0)
        );
        let macs = c.macs_per_sample as f64;
        println!(
            "  forward: {}MAC per sample ({}FLOP)",
            si(macs),
            si(2.0 * macs)
        );
        if c.macs_per_nfe > 0 {
            let per = si(c.macs_per_nfe as f64);
            match c.nfe_per_solve {
                Some(n) => println!(
                    "  ODE function: {per}MAC per sample per evaluation; {n} evaluations per solve"
                ),
                None => println!(
                    "  ODE function: {per}MAC per sample per evaluation; adaptive solver ({nfe} evaluations on a zero input; the forward figure counts one)"
                ),
            }
        }
        println!(
            "  activations: {} per sample; {} for a batch of {} (kept for backward)",
            mib(c.activation_bytes_per_sample as f64),
            mib(c.activation_bytes),
            a.batch
        );
    }
    if a.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out_json).unwrap_or_default()
        );
    }
    0
}
