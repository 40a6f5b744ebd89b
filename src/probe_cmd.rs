//! `tdspec probe SPEC [--checkpoint FILE]`: runs the compiled network on a seeded batch at two
//! times and prints, for every normalization, the measured survival of the time signal next
//! to the lint's static prediction; disagreements are flagged (exit 1).

use crate::device::{on_device, DeviceArg};
use crate::{files, render, Format};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;
use std::path::Path;
use tdspec_compiler::analysis::{analyze, NormVerdict};
use tdspec_compiler::ir::ModelIr;
use tdspec_compiler::sema::check_source;
use tdspec_runtime::ops::Kernels;
use tdspec_runtime::params::{normal, read_safetensors, Params};
use tdspec_runtime::probe::{probe, NormProbe};

/// Tolerance on the surviving fraction for a partial attenuation.
pub const PARTIAL_TOLERANCE: f64 = 0.2;
/// Largest measured interior fraction that still counts as complete cancellation.
pub const COMPLETE_TOLERANCE: f64 = 0.02;
/// Smallest measured fraction that counts as surviving when the lint says nothing removes it.
pub const ALIVE_THRESHOLD: f64 = 0.25;
/// Largest interior variation of the entering signal that still counts as "a per-channel
/// constant up to the border leak" (the rest is upstream leak spread by nonlinearities).
pub const LEAK_TOLERANCE: f64 = 0.1;

/// Whether a measurement agrees with the static verdict, and a word on why.
pub fn agree(p: &NormProbe, v: Option<&NormVerdict>) -> (bool, String) {
    let predicted = v.and_then(|v| v.survival);
    match (p.fraction, predicted) {
        (None, None) => (true, "time does not reach it".into()),
        (Some(f), None) => (
            f < COMPLETE_TOLERANCE,
            "the lint predicts no time signal here".into(),
        ),
        (None, Some(s)) => (s < COMPLETE_TOLERANCE, "no time signal measured".into()),
        (Some(f), Some(s)) => {
            let complete = v.is_some_and(|v| v.complete) && s < COMPLETE_TOLERANCE;
            let leak = v.is_some_and(|v| v.border_leak);
            if complete && leak {
                // All that may survive is the border leak: the signal entering must be a
                // per-channel constant away from the border ring.
                match p.interior_variation {
                    Some(iv) => (
                        iv < LEAK_TOLERANCE,
                        format!(
                            "complete up to the border leak; {f:.2} survives through the border"
                        ),
                    ),
                    None => (
                        true,
                        "complete up to the border leak; no interior to check at this size".into(),
                    ),
                }
            } else if complete {
                (f < COMPLETE_TOLERANCE, "complete cancellation".into())
            } else if s >= 0.999 {
                (f >= ALIVE_THRESHOLD, "survives".into())
            } else {
                (
                    (f - s).abs() <= PARTIAL_TOLERANCE,
                    format!("attenuated to {s:.2}"),
                )
            }
        }
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

/// Initial (or checkpoint) weights on `dev`, then the probe on a seeded normal batch.
fn probe_on<D: Kernels>(
    m: &ModelIr,
    dev: &D,
    checkpoint: Option<&Path>,
    batch: usize,
    seed: u64,
) -> Result<Vec<NormProbe>, u8> {
    let mut params = Params::init(m, dev, seed);
    if let Some(ck) = checkpoint {
        let loaded = match read_safetensors(ck) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return Err(2);
            }
        };
        if let Err(e) = params.load_named(&loaded.tensors) {
            eprintln!("error: {}: {e}", ck.display());
            return Err(2);
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let n = batch * m.input.channels * m.input.height * m.input.width;
    let x: Vec<f32> = (0..n).map(|_| normal(&mut rng) as f32).collect();
    probe(m, &params, x, batch).map_err(|e| {
        eprintln!("error: {}: probe failed: {e}", m.name);
        2
    })
}

pub fn run(
    path: &Path,
    checkpoint: Option<&Path>,
    batch: usize,
    seed: u64,
    format: Format,
    device: DeviceArg,
) -> u8 {
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
    if batch < 2 {
        eprintln!("error: --batch must be at least 2 (batch statistics need two samples)");
        return 2;
    }
    let mut disagreements = 0;
    let mut out_json = Vec::new();
    for m in &models {
        let probes = match on_device!(device, |dev| probe_on(m, &dev, checkpoint, batch, seed)) {
            Ok(Ok(p)) => p,
            Ok(Err(code)) => return code,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        let analysis = analyze(m);
        let rows: Vec<(NormProbe, Option<&NormVerdict>, bool, String)> = probes
            .into_iter()
            .map(|p| {
                let v = analysis.norms.iter().find(|v| v.node == p.node);
                let (ok, why) = agree(&p, v);
                (p, v, ok, why)
            })
            .collect();
        disagreements += rows.iter().filter(|r| !r.2).count();
        match format {
            Format::Text => {
                println!(
                    "{}: model {} ({} weights, batch {batch}, seed {seed})",
                    src.name,
                    m.name,
                    if checkpoint.is_some() { "checkpoint" } else { "initial" }
                );
                let w = rows.iter().map(|r| r.0.node.len()).max().unwrap_or(4).max(4);
                println!(
                    "  {:w$}  {:10}  {:>3}  {:>8}  {:>8}  {:>8}  {:>8}  {:>9}  verdict",
                    "norm", "kind", "m", "Δin", "Δout", "measured", "interior", "predicted"
                );
                for (p, v, ok, why) in &rows {
                    println!(
                        "  {:w$}  {:10}  {:>3}  {:>8.4}  {:>8.4}  {:>8}  {:>8}  {:>9}  {} ({why})",
                        p.node,
                        p.kind,
                        p.channels_per_unit,
                        p.input_change,
                        p.output_change,
                        fmt_opt(p.fraction),
                        fmt_opt(p.interior_variation),
                        fmt_opt(v.and_then(|v| v.survival)),
                        if *ok { "agree" } else { "DISAGREE" },
                    );
                }
            }
            Format::Json => out_json.push(json!({
                "file": src.name,
                "model": m.name,
                "norms": rows.iter().map(|(p, v, ok, why)| json!({
                    "probe": p, "predicted": v.and_then(|v| v.survival), "complete": v.map(|v| v.complete),
                    "agree": ok, "why": why,
                })).collect::<Vec<_>>(),
            })),
        }
    }
    if format == Format::Json {
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
