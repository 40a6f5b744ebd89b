//! Opt-in parity with diffusers: for each `UNet2DModel` config in tests/diffusers/ and the spec
//! that reproduces it, diffusers builds the model with seeded random weights (norms moved off
//! their identity initialization) and evaluates it on seeded x and t
//! (scripts/diffusers_reference.py); `tdspec run` loads diffusers' own safetensors file and must
//! give the same output within 1e-5 relative (L2), with diffusers' parameter count.
//!
//! Needs a Python with torch, diffusers and safetensors, named by TDSPEC_DIFFUSERS_PYTHON
//! (`python3 -m venv V && V/bin/pip install torch diffusers safetensors`); prints
//! "skipped: <reason>" otherwise.

mod common;
use common::tdspec;
use std::path::Path;
use std::process::Command;
use tdspec_runtime::params::read_safetensors;

const CASES: &[(&str, &str)] = &[
    (
        "tests/diffusers/ddpm-cifar10-32.config.json",
        "specs/ddpm_cifar10.tds",
    ),
    (
        "tests/diffusers/five-levels-32.config.json",
        "tests/diffusers/five_levels_32.tds",
    ),
];

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
        let count: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let (code, check, err) = tdspec(&["check", "--format", "json", spec]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&check).unwrap();
        assert_eq!(
            v[0]["params"].as_u64(),
            Some(count as u64),
            "{spec}: parameters"
        );
        let d = |f: &str| dir.join(f).display().to_string();
        let (code, _, err) = tdspec(&[
            "run",
            spec,
            "--checkpoint",
            &d("diffusion_pytorch_model.safetensors"),
            "--input",
            &d("input.safetensors"),
            "-o",
            &d("out.safetensors"),
        ]);
        assert_eq!(code, 0, "{spec}: {err}");
        let (a, b) = (
            y(&dir.join("out.safetensors")),
            y(&dir.join("reference.safetensors")),
        );
        assert_eq!(a.len(), b.len());
        let num: f64 = a
            .iter()
            .zip(&b)
            .map(|(p, q)| ((p - q) as f64).powi(2))
            .sum();
        let den: f64 = b.iter().map(|q| (*q as f64).powi(2)).sum();
        let rel = (num / den).sqrt();
        println!("{config}: {count} parameters; tdspec run vs diffusers: {rel:.2e} relative (L2)");
        assert!(rel < 1e-5, "{spec}: {rel}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
