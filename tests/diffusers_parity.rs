//! Opt-in parity with diffusers: for each `UNet2DModel` config in tests/diffusers/ (the two of
//! ../shared/diffusers and four of our own: 5 levels, scale-shift blocks with attention placed
//! differently on each path and an unnormalized middle attention, relu with a middle attention of
//! its own groups, no middle attention), diffusers builds the model with seeded random weights
//! (norms moved off their identity initialization) and evaluates it on seeded x and t
//! (scripts/diffusers_reference.py). Then, with diffusers' parameter count each time and within
//! 1e-5 relative (L2) of diffusers' output: `tdspec run` on the config itself and on its
//! hand-written spec where there is one, loading diffusers' own safetensors file; and the PyTorch
//! package `tdspec emit` writes from the spec `tdspec import diffusers` writes, loading the
//! weights `import --weights` converted.
//!
//! Needs a Python with torch, diffusers and safetensors, named by TDSPEC_DIFFUSERS_PYTHON
//! (`python3 -m venv V && V/bin/pip install torch diffusers safetensors`); prints
//! "skipped: <reason>" otherwise.

mod common;
use common::tdspec;
use std::path::Path;
use std::process::Command;
use tdspec_runtime::params::read_safetensors;

/// The configs, each run as a config (`tdspec run CONFIG.json`) and, where given, through a
/// reference spec written by hand.
const CASES: &[(&str, Option<&str>)] = &[
    (
        "tests/diffusers/ddpm-cifar10-32.config.json",
        Some("specs/ddpm_cifar10.tds"),
    ),
    ("tests/diffusers/butterflies-style-32.config.json", None),
    (
        "tests/diffusers/five-levels-32.config.json",
        Some("tests/diffusers/five_levels_32.tds"),
    ),
    ("tests/diffusers/scale-shift-32.config.json", None),
    ("tests/diffusers/relu-grey-16.config.json", None),
    ("tests/diffusers/no-mid-attention-16.config.json", None),
    ("tests/diffusers/learned-16.config.json", None),
    ("tests/diffusers/fourier-16.config.json", None),
    ("tests/diffusers/classes-16.config.json", None),
];

/// Evaluates the package `tdspec emit` wrote on tdspec-named weights: argv pkg, weights,
/// input, output.
const EMITTED_PY: &str = r#"
import sys, torch
from safetensors.torch import load_file, save_file
pkg, weights, inp, out = sys.argv[1:5]
sys.path.insert(0, pkg)
import model as m
net = m.build_model()
m.load_tdspec_checkpoint(net, weights)
net.eval()
io = load_file(inp)
with torch.no_grad():
    y = net(io["x"], io["t"], io["class_labels"]) if "class_labels" in io else net(io["x"], io["t"])
save_file({"y": y.contiguous()}, out)
print(sum(p.numel() for p in net.parameters()))
"#;

fn python() -> Option<String> {
    let Ok(py) = std::env::var("TDSPEC_DIFFUSERS_PYTHON") else {
        println!("skipped: TDSPEC_DIFFUSERS_PYTHON names no Python with torch and diffusers");
        return None;
    };
    let ok = Command::new(&py)
        .args(["-c", "import torch, diffusers, safetensors"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipped: {py} cannot import torch, diffusers and safetensors");
        return None;
    }
    Some(py)
}

fn y(path: &Path) -> Vec<f32> {
    let t = read_safetensors(path).expect("safetensors");
    t.tensors.get("y").expect("tensor y").1.clone()
}

/// `sqrt(sum (a - b)^2 / sum b^2)`.
fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(p, q)| ((p - q) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|q| (*q as f64).powi(2)).sum();
    (num / den).sqrt()
}

fn params_of(path: &str) -> u64 {
    let (code, check, err) = tdspec(&["check", "--format", "json", path]);
    assert_eq!(code, 0, "{path}: {err}");
    let v: serde_json::Value = serde_json::from_str(&check).unwrap();
    v[0]["params"].as_u64().unwrap()
}

#[test]
fn tdspec_computes_diffusers_unets() {
    let Some(py) = python() else { return };
    let root = env!("CARGO_MANIFEST_DIR");
    for (config, spec) in CASES {
        let dir = std::env::temp_dir().join(format!(
            "tdspec-diffusers-{}-{}",
            std::process::id(),
            Path::new(config).file_stem().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(&py)
            .arg(format!("{root}/scripts/diffusers_reference.py"))
            .arg(format!("{root}/{config}"))
            .arg(&dir)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let count: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let d = |f: &str| dir.join(f).display().to_string();
        let reference = y(&dir.join("reference.safetensors"));
        let weights = d("diffusion_pytorch_model.safetensors");
        // The config itself, and the reference spec where there is one.
        let mut runs = vec![config.to_string()];
        runs.extend(spec.map(str::to_string));
        let mut worst = 0.0f64;
        for (i, what) in runs.iter().enumerate() {
            assert_eq!(params_of(what), count, "{what}: parameters");
            let out = d(&format!("out{i}.safetensors"));
            let (code, _, err) = tdspec(&[
                "run",
                what,
                "--checkpoint",
                &weights,
                "--input",
                &d("input.safetensors"),
                "-o",
                &out,
            ]);
            assert_eq!(code, 0, "{what}: {err}");
            let rel = rel_l2(&y(Path::new(&out)), &reference);
            assert!(rel < 1e-5, "{what}: tdspec run vs diffusers {rel}");
            worst = worst.max(rel);
        }
        // The imported spec's PyTorch package on the converted weights.
        let (code, _, err) = tdspec(&[
            "import",
            "diffusers",
            config,
            "-o",
            &d("spec.tds"),
            "--weights",
            &weights,
            "--weights-out",
            &d("tdspec.safetensors"),
        ]);
        assert_eq!(code, 0, "import {config}: {err}");
        let (code, _, err) = tdspec(&["emit", &d("spec.tds"), "-o", &d("pkg")]);
        assert_eq!(code, 0, "emit {config}: {err}");
        let out = Command::new(&py)
            .args(["-c", EMITTED_PY])
            .args([
                d("pkg"),
                d("tdspec.safetensors"),
                d("input.safetensors"),
                d("emitted.safetensors"),
            ])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "emitted {config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let emitted_count: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert_eq!(emitted_count, count, "{config}: emitted parameters");
        let emitted = rel_l2(&y(&dir.join("emitted.safetensors")), &reference);
        println!(
            "{config}: {count} parameters; vs diffusers (relative L2): tdspec run {worst:.2e}, \
             emitted PyTorch {emitted:.2e}"
        );
        assert!(emitted < 1e-5, "{config}: emitted vs diffusers {emitted}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `tdspec lint --fix --unsafe-fixes` on a config leaves a config diffusers still builds, with
/// the parameter count tdspec states, and on which the lint is clean.
#[test]
fn fixed_configs_still_load_in_diffusers() {
    let Some(py) = python() else { return };
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = std::env::temp_dir().join(format!("tdspec-diffusers-fixed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for config in [
        "tests/diffusers/ddpm-cifar10-32.config.json",
        "tests/diffusers/butterflies-style-32.config.json",
    ] {
        let name = Path::new(config).file_name().unwrap();
        let fixed = dir.join(name);
        std::fs::write(&fixed, std::fs::read(format!("{root}/{config}")).unwrap()).unwrap();
        let f = fixed.display().to_string();
        let (code, out, err) = tdspec(&["lint", "--fix", "--unsafe-fixes", &f]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("no findings"), "{out}");
        let run = dir.join(format!("{}-run", name.to_string_lossy()));
        let out = Command::new(&py)
            .arg(format!("{root}/scripts/diffusers_reference.py"))
            .arg(&fixed)
            .arg(&run)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "diffusers cannot build the fixed {config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let count: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert_eq!(params_of(&f), count, "{config} fixed");
        println!("{config}: the fixed config builds in diffusers ({count} parameters)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
