//! Diagnostics for the CUDA backend (hidden commands; scripts/gpu-check.sh runs them).
//!
//! - `tdspec gpu-parity SPEC...`: [`tdspec_runtime::parity`] on each spec: one forward +
//!   backward on the CPU and on `--device` with the same weights, input and times; prints the
//!   largest relative differences of the outputs, the loss and the parameter gradients. Fails
//!   (exit 1) above `--tol`.
//! - `tdspec gpu-bench`: the three yardstick workloads of [`tdspec_runtime::bench`] on
//!   `--device`, median milliseconds of forward + backward.

use crate::device::{on_device, DeviceArg};
use crate::report::{fail, print_json, OrExit};
use clap::Args;
use dfdx::tensor::Cpu;
use serde_json::json;
use std::path::PathBuf;
use tdspec_runtime::bench::yardsticks;
use tdspec_runtime::parity::Case;
use tdspec_runtime::{probe, spec};

#[derive(Args)]
pub struct ParityArgs {
    #[arg(required = true)]
    specs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "cuda")]
    device: DeviceArg,
    #[arg(long, default_value_t = 2)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Largest accepted relative difference (max|a-b| / max|a| per tensor)
    #[arg(long, default_value_t = 1e-3)]
    tol: f64,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "cuda")]
    device: DeviceArg,
    #[arg(long)]
    json: bool,
}

pub fn parity(a: &ParityArgs) -> Result<u8, u8> {
    probe::check_batch(a.batch).or_exit()?;
    let dn = a.device.name();
    let (mut worst, mut rows) = (0.0f64, Vec::new());
    for path in &a.specs {
        let (m, _) = spec::load_one(path).or_exit()?;
        let case = Case::new(&m, a.batch, a.seed);
        let shown = path.display();
        let cpu = case.run(&Cpu::default());
        let cpu = cpu.map_err(|e| fail(format!("{shown}: cpu: {e}")))?.warm;
        let other = on_device!(a.device, |dev| case.run(&dev)).or_exit()?;
        let other = other.map_err(|e| fail(format!("{shown}: {dn}: {e}")))?;
        let r = case.compare(&shown.to_string(), dn, a.tol, &cpu, &other);
        worst = worst.max(r.worst());
        if !a.json {
            println!("{r}");
        }
        rows.push(r);
    }
    let pass = worst <= a.tol;
    if a.json {
        print_json(&rows);
    } else {
        let (tol, verdict) = (a.tol, if pass { "PASS" } else { "FAIL" });
        println!("parity: worst relative difference {worst:.2e} (tolerance {tol:.0e}): {verdict}");
    }
    Ok(u8::from(!pass))
}

pub fn bench(a: &BenchArgs) -> Result<u8, u8> {
    let dn = a.device.name();
    let run = on_device!(a.device, |dev| yardsticks()
        .into_iter()
        .map(|(name, w)| w(&dev).map(|t| (name, t.wall_ms)))
        .collect::<Result<Vec<_>, _>>());
    let res = run.or_exit()?.map_err(|e| fail(format!("{dn}: {e}")))?;
    if a.json {
        let ms = res
            .iter()
            .map(|(k, v)| (k.to_string(), json!((v * 1e3).round() / 1e3)));
        let o = ms.chain([("device".to_string(), json!(dn))]).collect();
        println!("{}", serde_json::Value::Object(o));
    } else {
        for (k, v) in &res {
            println!("{k}: {v:.3} ms ({dn})");
        }
    }
    Ok(0)
}
