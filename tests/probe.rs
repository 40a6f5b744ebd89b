//! The dynamic probe against the static verdict: on every reference spec, the measured time
//! sensitivity at every normalization agrees with the lint's prediction (tolerances in
//! runtime/src/probe.rs), and the key cases land where the analysis says.

use std::process::Command;

fn probe(spec: &str) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tdspec"))
        .args(["probe", "--batch", "2", "--format", "json", spec])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run tdspec");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn norms(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v[0]["norms"].as_array().cloned().unwrap_or_default()
}

fn measured(n: &serde_json::Value) -> Option<f64> {
    n["probe"]["fraction"].as_f64()
}

#[test]
fn probe_agrees_with_the_lint_on_every_reference_spec() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/specs");
    let mut specs: Vec<_> = std::fs::read_dir(dir)
        .expect("specs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tds"))
        .collect();
    specs.sort();
    for s in specs {
        let path = s.display().to_string();
        let (code, v, err) = probe(&path);
        assert_eq!(code, 0, "{path}: {err}");
        let ns = norms(&v);
        assert!(!ns.is_empty(), "{path}: no normalizations probed");
        for n in &ns {
            assert_eq!(n["agree"], true, "{path}: {n}");
        }
    }
}

#[test]
fn attenuation_matches_channels_per_group() {
    // ODE-Net: 2 channels per group -> about half survives right after the ConcatConv.
    let (_, v, _) = probe("specs/odenet_mnist.tds");
    let n2 = norms(&v)
        .into_iter()
        .find(|n| n["probe"]["node"] == "features.0.norm2")
        .expect("norm2");
    let f = measured(&n2).expect("time reaches norm2");
    assert!((f - 0.5).abs() < 0.2, "measured {f}");
    // DDPM-style small model: 4 channels per group -> about 3/4.
    let (_, v, _) = probe("specs/small_ddpm_mnist.tds");
    let n = norms(&v)
        .into_iter()
        .find(|n| n["probe"]["node"] == "down.0.res0.norm2")
        .expect("norm2");
    let f = measured(&n).expect("time reaches norm2");
    assert!((f - 0.75).abs() < 0.2, "measured {f}");
}

#[test]
fn complete_cancellation_measures_zero_and_remedies_survive() {
    let (_, v, _) = probe("specs/small_ddpm_mnist_canceled.tds");
    let after_inject: Vec<_> = norms(&v)
        .into_iter()
        .filter(|n| {
            n["probe"]["node"]
                .as_str()
                .is_some_and(|s| s.ends_with("norm2"))
        })
        .collect();
    assert_eq!(after_inject.len(), 8);
    for n in &after_inject {
        assert!(measured(n).unwrap_or(0.0) < 1e-3, "{n}");
        assert!(
            n["probe"]["output_change"].as_f64().unwrap_or(1.0) < 1e-4,
            "{n}"
        );
    }
    for spec in [
        "specs/small_ddpm_mnist_positional.tds",
        "specs/small_ddpm_mnist_scale_shift.tds",
    ] {
        let (_, v, _) = probe(spec);
        let alive = norms(&v)
            .into_iter()
            .filter_map(|n| measured(&n))
            .filter(|f| *f > 0.5)
            .count();
        assert!(
            alive >= 8,
            "{spec}: only {alive} norms keep the time signal"
        );
    }
}
