//! `tdspec compile SPEC --summary`: a checked spec in; the lowered graph built on the chosen
//! device (parameters initialized, one forward pass run on zeros to prove it executes), and a
//! summary out: parameter tensors, multiply-accumulates per forward and per ODE function
//! evaluation, and the estimated activation memory for a batch size.

use crate::device::{on_device, DeviceArg};
use crate::{files, render, Format};
use dfdx::prelude::*;
use serde_json::json;
use std::path::Path;
use tdspec_compiler::diagnostics::thousands;
use tdspec_compiler::ir::{ModelIr, ParamInfo};
use tdspec_compiler::sema::check_source;
use tdspec_runtime::exec::{Exec, Value};
use tdspec_runtime::lower;
use tdspec_runtime::ops::Kernels;
use tdspec_runtime::params::Params;
use tdspec_runtime::RuntimeError;

pub struct Options {
    pub batch: usize,
    pub memory_limit_gib: f64,
    pub format: Format,
    pub summary: bool,
    pub device: DeviceArg,
}

/// Initializes the parameters on `dev` and runs the graph once on a zero batch of 1: proves it
/// lowers and executes there. Returns the parameter descriptions and the solver evaluations.
fn build_and_run<D: Kernels>(
    m: &ModelIr,
    dev: &D,
) -> Result<(Vec<ParamInfo>, usize), RuntimeError> {
    let params = Params::init(m, dev, 0);
    let x = dev.zeros_like(&(1usize, m.input.channels, m.input.height, m.input.width));
    let mut ex = Exec::new(&params, false);
    ex.run(&m.graph, Value::Image(x), &[0.0], NoneTape)?;
    let nfe = ex.nfe;
    drop(ex);
    Ok((params.list.into_iter().map(|p| p.info).collect(), nfe))
}

fn mib(bytes: f64) -> String {
    if bytes >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", bytes / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes / (1u64 << 20) as f64)
    }
}

fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} k", v / 1e3)
    } else {
        format!("{v:.0} ")
    }
}

pub fn run(path: &Path, opts: &Options) -> u8 {
    let src = match files::read(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let models = match check_source(&src.text) {
        Ok(m) => m,
        Err(diags) => {
            for d in &diags {
                eprint!("{}", render::render(&src, d, render::use_color()));
            }
            return 1;
        }
    };
    let limit = (opts.memory_limit_gib * (1u64 << 30) as f64) as u64;
    let mut out_json = Vec::new();
    for m in &models {
        let cost = match lower::check(m, opts.batch, limit) {
            Ok(c) => c,
            Err(diags) => {
                for d in &diags {
                    eprint!("{}", render::render(&src, d, render::use_color()));
                }
                return 1;
            }
        };
        let (infos, nfe) = match on_device!(opts.device, |dev| build_and_run(m, &dev)) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                eprintln!("error: {}: the compiled graph failed to run: {e}", m.name);
                return 2;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        let count: usize = infos.iter().map(|i| i.numel()).sum();
        let act_bytes = cost.activations_per_sample as f64 * opts.batch as f64 * 4.0;
        match opts.format {
            Format::Text => {
                println!("{}: model {} (compiled for {})", src.name, m.name, opts.device.name());
                if opts.summary {
                    let w = infos.iter().map(|i| i.name.len()).max().unwrap_or(4);
                    println!("  parameter tensors ({}):", infos.len());
                    for i in &infos {
                        println!("    {:w$}  {:<18}  {:>11}", i.name, format!("{:?}", i.shape), thousands(i.numel()));
                    }
                }
                println!("  parameters: {} ({} as f32)", thousands(count), mib(count as f64 * 4.0));
                println!(
                    "  forward: {}MAC per sample ({}FLOP)",
                    si(cost.macs_per_sample as f64),
                    si(2.0 * cost.macs_per_sample as f64)
                );
                if cost.macs_per_nfe > 0 {
                    match cost.nfe_per_solve {
                        Some(n) => println!(
                            "  ODE function: {}MAC per sample per evaluation; {n} evaluations per solve",
                            si(cost.macs_per_nfe as f64)
                        ),
                        None => println!(
                            "  ODE function: {}MAC per sample per evaluation; adaptive solver ({nfe} evaluations on a zero input; the forward figure counts one)",
                            si(cost.macs_per_nfe as f64)
                        ),
                    }
                }
                println!(
                    "  activations: {} per sample; {} for a batch of {} (kept for backward)",
                    mib(cost.activations_per_sample as f64 * 4.0),
                    mib(act_bytes),
                    opts.batch
                );
            }
            Format::Json => out_json.push(json!({
                "file": src.name,
                "model": m.name,
                "params": count,
                "tensors": infos.iter().map(|i| json!({"name": i.name, "shape": i.shape})).collect::<Vec<_>>(),
                "macs_per_sample": cost.macs_per_sample,
                "macs_per_nfe": cost.macs_per_nfe,
                "nfe_per_solve": cost.nfe_per_solve,
                "activation_bytes_per_sample": cost.activations_per_sample * 4,
                "batch": opts.batch,
                "activation_bytes": act_bytes,
            })),
        }
    }
    if opts.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out_json).unwrap_or_default()
        );
    }
    0
}
