//! `tdspec compile SPEC --summary`: a checked spec in; the lowered graph built and run once on
//! the chosen device ([`tdspec_runtime::lower::run_once`]), and its [`CompileSummary`] out:
//! parameter tensors, multiply-accumulates per forward and per ODE function evaluation, and the
//! estimated activation memory for a batch size.

use crate::device::{on_device, DeviceArg};
use crate::render::{render, use_color};
use crate::report::{fail, print_json, OrExit};
use crate::Format;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tdspec_runtime::summary::CompileSummary;
use tdspec_runtime::{lower, spec};

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

pub fn run(a: &CompileArgs) -> Result<u8, u8> {
    let (src, models) = spec::load(&a.spec).or_exit()?;
    if !(a.memory_limit > 0.0 && a.memory_limit.is_finite()) {
        return Err(fail(format!(
            "--memory-limit {}: a positive number of GiB",
            a.memory_limit
        )));
    }
    let limit = (a.memory_limit * (1u64 << 30) as f64) as u64;
    let mut out_json = Vec::new();
    for m in &models {
        let cost = lower::check(m, a.batch, limit).map_err(|diags| {
            for d in &diags {
                eprint!("{}", render(&src, d, use_color()));
            }
            1
        })?;
        let ran = on_device!(a.device, |dev| lower::run_once(m, &dev)).or_exit()?;
        let (infos, nfe) =
            ran.map_err(|e| fail(format!("{}: the compiled graph failed to run: {e}", m.name)))?;
        let c = CompileSummary::new(&src, m, (&infos, nfe), &cost, a.batch, a.device.name());
        match a.format {
            Format::Text => print!("{}", c.text(a.summary)),
            Format::Json => out_json.push(json!(c)),
        }
    }
    if a.format == Format::Json {
        print_json(&out_json);
    }
    Ok(0)
}
