//! Diagnostics for the CUDA backend (hidden commands; scripts/gpu-check.sh runs them).
//!
//! - `tdspec gpu-parity SPEC...`: [`tdspec_runtime::parity`] on each spec: one forward +
//!   backward on the CPU and on `--device` with the same weights, input and times; prints the
//!   largest relative differences of the outputs, the loss and the parameter gradients. Fails
//!   (exit 1) above `--tol`.
//! - `tdspec gpu-bench`: the three yardstick workloads of [`tdspec_runtime::bench`] on
//!   `--device`, median milliseconds of forward + backward.

use crate::device::{on_device, DeviceArg};
use crate::report::{fail, spec_error};
use clap::Args;
use dfdx::tensor::Cpu;
use serde_json::json;
use std::path::PathBuf;
use tdspec_runtime::bench::yardsticks;
use tdspec_runtime::parity::Case;
use tdspec_runtime::spec;

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

pub fn parity(a: &ParityArgs) -> u8 {
    if a.batch < 2 {
        return fail("--batch must be at least 2 (batch statistics need two samples)");
    }
    let (dn, b) = (a.device.name(), a.batch);
    let mut worst = 0.0f64;
    let mut rows = Vec::new();
    for path in &a.specs {
        let (m, _) = match spec::load_one(path) {
            Ok(v) => v,
            Err(e) => return spec_error(&e),
        };
        let case = Case::new(&m, b, a.seed);
        let cpu = match case.run(&Cpu::default()) {
            Ok(r) => r.warm,
            Err(e) => return fail(format!("{}: cpu: {e}", path.display())),
        };
        let other = match on_device!(a.device, |dev| case.run(&dev)) {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return fail(format!("{}: {dn}: {e}", path.display())),
            Err(e) => return fail(e),
        };
        let r = case.compare(&path.display().to_string(), dn, a.tol, &cpu, &other);
        worst = worst.max(r.worst());
        if !a.json {
            println!(
                "{} (model {}, batch {b}): cpu vs {dn}: output {:.2e}, loss {:.2e}, gradients max {:.2e} \
                 over {} tensors; nfe {} / {}; fwd+bwd {:.1} ms cpu, {:.1} ms {dn} (first call {:.0} ms): {}",
                r.spec, r.model, r.output_rel, r.loss_rel, r.grad_rel_max, r.params, r.nfe_cpu,
                r.nfe_device, r.cpu_ms, r.device_ms, r.device_first_ms,
                if r.pass { "PASS" } else { "FAIL" }
            );
            for g in &r.grad_rel_worst {
                println!("    grad {}: {:.2e}", g.param, g.rel);
            }
        }
        rows.push(r);
    }
    let verdict = if worst <= a.tol { "PASS" } else { "FAIL" };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        println!(
            "parity: worst relative difference {worst:.2e} (tolerance {:.0e}): {verdict}",
            a.tol
        );
    }
    if worst <= a.tol {
        0
    } else {
        1
    }
}

pub fn bench(a: &BenchArgs) -> u8 {
    let dn = a.device.name();
    let run = on_device!(a.device, |dev| yardsticks()
        .into_iter()
        .map(|(name, w)| w(&dev).map(|t| (name, t.wall_ms)))
        .collect::<Result<Vec<_>, _>>());
    let res = match run {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return fail(format!("{dn}: {e}")),
        Err(e) => return fail(e),
    };
    if a.json {
        let mut o = serde_json::Map::new();
        for (k, v) in &res {
            o.insert(k.to_string(), json!((v * 1e3).round() / 1e3));
        }
        o.insert("device".into(), json!(dn));
        println!("{}", serde_json::Value::Object(o));
    } else {
        for (k, v) in &res {
            println!("{k}: {v:.3} ms ({dn})");
        }
    }
    0
}
