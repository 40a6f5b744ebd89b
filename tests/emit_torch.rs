//! Opt-in PyTorch checks of `tdspec emit --target pytorch`, enabled by
//! `TDSPEC_TORCH_PYTHON=/path/to/python` (a Python with torch, torchdiffeq and safetensors):
//! for the reference specs, the emitted module's parameter count equals tdspec's, and its
//! outputs on tdspec's weights (random values in every tensor, norms included) match tdspec's
//! runtime forward to 1e-4 relative (max |a - b| / max |b|); ODE models are compared with the
//! same solver (fixed-step RK4 exactly; dopri5 models once with their own adaptive solver, where
//! the two step-size controllers differ, and once with dopri5 swapped for RK4). Then a 2-process
//! torchrun (gloo, CPU) trains a few steps and writes a checkpoint that `tdspec eval` and
//! `tdspec probe` read and `tdspec train --resume` continues. Without the variable the test
//! prints that it is skipped and passes.

use dfdx::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tdspec_compiler::ir::ModelIr;
use tdspec_compiler::sema::check_source;
use tdspec_runtime::params::{write_safetensors, Params};

const BIN: &str = env!("CARGO_BIN_EXE_tdspec");

fn python() -> Option<String> {
    match std::env::var("TDSPEC_TORCH_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => None,
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_of(text: &str) -> ModelIr {
    let mut models = check_source(text).expect("spec checks");
    models.remove(0)
}

/// Deterministic pseudo-random values in [-a, a].
fn noise(n: usize, seed: u64, a: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * a
        })
        .collect()
}

const PARITY_PY: &str = r#"
import json, sys, torch
from safetensors.torch import load_file
pkg, weights, io_path, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, pkg)
import model as m
torch.manual_seed(0)
net = m.build_model()
count = sum(p.numel() for p in net.parameters())
m.load_tdspec_checkpoint(net, weights)
net.eval()
io = load_file(io_path)
with torch.no_grad():
    y = net(io["x"], io["t"]) if m.TAKES_TIME else net(io["x"])
ref = io["y"].reshape(y.shape)
rel = float((y - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
print(json.dumps({"count": count, "declared": m.PARAMETERS, "expected": expected, "rel": rel}))
"#;

struct Parity {
    count: usize,
    rel: f64,
}

fn parity(py: &str, spec_name: &str, text: &str, dir: &Path, batch: usize) -> Parity {
    let spec = dir.join(format!("{spec_name}.tds"));
    std::fs::write(&spec, text).expect("write spec");
    let pkg = dir.join(spec_name);
    let out = Command::new(BIN)
        .args([
            "emit",
            spec.to_str().unwrap(),
            "--target",
            "pytorch",
            "--force",
            "-o",
        ])
        .arg(&pkg)
        .output()
        .expect("run tdspec emit");
    assert!(
        out.status.success(),
        "emit {spec_name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = model_of(text);
    let dev = Cpu::default();
    let mut params: Params<Cpu> = Params::init(&model, &dev, 7);
    // Random values in every tensor (biases and norm affines too), so no zero hides a mismatch.
    for (i, p) in params.list.iter_mut().enumerate() {
        let n = p.info.numel();
        let fan = p.info.shape.iter().skip(1).product::<usize>().max(1) as f32;
        let a = if p.info.shape.len() > 1 {
            1.0 / fan.sqrt()
        } else {
            0.5
        };
        let mut v = noise(n, 1000 + i as u64, a);
        if p.info.name.ends_with(".weight") && p.info.shape.len() == 1 {
            v.iter_mut().for_each(|x| *x += 1.0);
        }
        p.tensor = dev.tensor_from_vec(v, (n,));
    }
    for (j, (_, (mean, var))) in params.running.iter_mut().enumerate() {
        *mean = noise(mean.len(), 77 + j as u64, 0.2);
        *var = noise(var.len(), 99 + j as u64, 0.3)
            .iter()
            .map(|x| 1.0 + x)
            .collect();
    }
    let weights = dir.join(format!("{spec_name}.safetensors"));
    params
        .save(&weights, &[], HashMap::new())
        .expect("save weights");
    let (c, h, w) = (model.input.channels, model.input.height, model.input.width);
    let x = noise(batch * c * h * w, 5, 1.0);
    let t: Vec<f32> = match model.time.kind {
        tdspec_compiler::ir::TimeKind::Steps(n) => {
            (0..batch).map(|i| ((i * 389 + 17) % n) as f32).collect()
        }
        // Over the declared range (the lowest value for one t shared by the batch).
        _ => {
            let (lo, hi) = model.time.range();
            let shared = model.time.sharing == tdspec_compiler::ir::Sharing::Shared;
            (0..batch)
                .map(|i| {
                    let f = if shared {
                        0.0
                    } else {
                        (i + 1) as f64 / (batch + 1) as f64
                    };
                    (lo + (hi - lo) * f) as f32
                })
                .collect()
        }
    };
    let (y, _) = tdspec_runtime::train::forward(&model, &params, x.clone(), batch, &t)
        .expect("runtime forward");
    let io = dir.join(format!("{spec_name}.io.safetensors"));
    let ylen = y.len();
    write_safetensors(
        &io,
        &[
            ("x".into(), vec![batch, c, h, w], x),
            ("t".into(), vec![batch], t),
            ("y".into(), vec![ylen], y),
        ],
        HashMap::new(),
    )
    .expect("write io");
    let out = Command::new(py)
        .args(["-c", PARITY_PY])
        .arg(&pkg)
        .arg(&weights)
        .arg(&io)
        .arg(model.param_count().to_string())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python parity {spec_name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(line.lines().last().unwrap_or("")).expect("parity json");
    let count = v["count"].as_u64().unwrap_or(0) as usize;
    assert_eq!(v["declared"].as_u64(), Some(model.param_count() as u64));
    Parity {
        count,
        rel: v["rel"].as_f64().unwrap_or(f64::NAN),
    }
}

#[test]
fn emitted_pytorch_matches_tdspec() {
    let Some(py) = python() else {
        println!("skipped: set TDSPEC_TORCH_PYTHON=/path/to/python (with torch, torchdiffeq, safetensors) to run");
        return;
    };
    let dir = tempfile_dir("parity");
    let specs = [
        ("small_odenet_mnist", 4, None),
        ("odenet_mnist", 2, Some("rk4(steps = 4)")),
        ("odenet_mnist_positional", 2, Some("rk4(steps = 4)")),
        ("odenet_mnist_batchnorm", 2, Some("euler(steps = 3)")),
        ("small_ddpm_mnist", 3, None),
        ("small_ddpm_mnist_positional", 3, None),
        ("small_ddpm_mnist_scale_shift", 3, None),
        ("ddpm_cifar10", 2, None),
        ("ddpm_cifar10_bias", 1, None),
        ("adm_cifar10", 2, None),
        ("edm_cifar10", 1, None),
        ("../tests/emit_specs/constructs", 3, None),
        ("../tests/emit_specs/noise_levels", 3, None),
    ];
    let mut failures = Vec::new();
    for (name, batch, fixed) in specs {
        let text = std::fs::read_to_string(root().join("specs").join(format!("{name}.tds")))
            .expect("read spec");
        let expected = model_of(&text).param_count();
        let name = name.rsplit('/').next().unwrap_or(name);
        let p = parity(&py, name, &text, &dir, batch);
        let adaptive = text.contains("dopri5");
        println!(
            "{name}: parameters {} (tdspec {expected}); max rel diff {:.2e}{}",
            p.count,
            p.rel,
            if adaptive { " (dopri5 in both)" } else { "" }
        );
        if p.count != expected {
            failures.push(format!("{name}: {} parameters, tdspec {expected}", p.count));
        }
        // Adaptive dopri5 runs agree to the solver tolerance only (different step controllers).
        let tol = if adaptive { 5e-3 } else { 1e-4 };
        if p.rel.is_nan() || p.rel > tol {
            failures.push(format!("{name}: rel {:.3e} > {tol}", p.rel));
        }
        if let Some(solver) = fixed {
            let start = text.find("dopri5(").expect("a dopri5 solver");
            let end = start + text[start..].find(')').expect("closing paren") + 1;
            let swapped = format!("{}{solver}{}", &text[..start], &text[end..]);
            let vname = format!("{name}_fixed");
            let p = parity(&py, &vname, &swapped, &dir, batch);
            println!("{vname} ({solver}): max rel diff {:.2e}", p.rel);
            if p.rel.is_nan() || p.rel > 1e-4 {
                failures.push(format!("{vname}: rel {:.3e} > 1e-4", p.rel));
            }
        }
    }
    assert!(failures.is_empty(), "parity failures: {failures:#?}");
}

#[test]
fn torchrun_gloo_trains_and_tdspec_reads_the_checkpoint() {
    let Some(py) = python() else {
        println!("skipped: set TDSPEC_TORCH_PYTHON=/path/to/python (with torch, torchdiffeq, safetensors) to run");
        return;
    };
    let dir = tempfile_dir("torchrun");
    let data = root().join("runtime/data/mnist-10k");
    for spec in ["small_ddpm_mnist", "small_odenet_mnist"] {
        let pkg = dir.join(spec);
        let st = Command::new(BIN)
            .args(["emit", "--force"])
            .arg(root().join("specs").join(format!("{spec}.tds")))
            .args(["-o"])
            .arg(&pkg)
            .status()
            .expect("emit");
        assert!(st.success());
        let run = dir.join(format!("{spec}-run"));
        let out = Command::new(&py)
            .args([
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node=2",
            ])
            .arg(pkg.join("train.py"))
            .args([
                "train",
                "--cpu",
                "--steps",
                "3",
                "--batch",
                "8",
                "--limit-train",
                "64",
            ])
            .args(["--eval-samples", "20", "--log-every", "1", "--data"])
            .arg(format!("mnist:{}", data.display()))
            .arg("--out")
            .arg(&run)
            .env("OMP_NUM_THREADS", "1")
            .output()
            .expect("torchrun");
        let log = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("torchrun {spec}:\n{log}");
        assert!(out.status.success(), "torchrun failed for {spec}");
        assert!(run.join("checkpoint.safetensors").is_file());
        let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
        assert_eq!(metrics.lines().count(), 3, "one record per step");
        // tdspec reads the PyTorch checkpoint: evaluation, probe, and resuming the run.
        let ev = Command::new(BIN)
            .arg("eval")
            .arg(&run)
            .args(["--samples", "40"])
            .output()
            .expect("tdspec eval");
        println!("tdspec eval:\n{}", String::from_utf8_lossy(&ev.stdout));
        assert!(
            ev.status.success(),
            "tdspec eval: {}",
            String::from_utf8_lossy(&ev.stderr)
        );
        let pr = Command::new(BIN)
            .arg("probe")
            .arg(run.join("spec.tds"))
            .arg("--checkpoint")
            .arg(run.join("checkpoint.safetensors"))
            .output()
            .expect("tdspec probe");
        assert!(
            pr.status.code() == Some(0) || pr.status.code() == Some(1),
            "tdspec probe: {}",
            String::from_utf8_lossy(&pr.stderr)
        );
        let rs = Command::new(BIN)
            .args(["train", "--resume"])
            .arg(&run)
            .args(["--steps", "4"])
            .output()
            .expect("tdspec train --resume");
        assert!(
            rs.status.success(),
            "tdspec train --resume: {}",
            String::from_utf8_lossy(&rs.stderr)
        );
    }
}

fn tempfile_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tdspec-emit-torch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}
