//! `--device`: the CPU is the default and `--device cpu` changes nothing; `--device cuda` in a
//! binary built without the `cuda` feature is a usage error (exit 2) that says how to get one;
//! the hidden `gpu-parity` and `gpu-bench` diagnostics run against the CPU.

mod common;
use common::tdspec;

#[test]
fn device_cpu_is_the_default() {
    let spec = "specs/small_odenet_mnist.tds";
    let (c1, plain, e1) = tdspec(&["compile", "--summary", spec]);
    let (c2, cpu, e2) = tdspec(&["compile", "--summary", spec, "--device", "cpu"]);
    assert_eq!((c1, c2), (0, 0), "{e1}{e2}");
    assert_eq!(plain, cpu);
    assert!(cpu.contains("(compiled for cpu)"), "{cpu}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn device_cuda_without_the_feature_is_a_usage_error() {
    let dir = std::env::temp_dir().join(format!("tdspec-device-test-{}", std::process::id()));
    let out = dir.join("run");
    let out = out.to_str().expect("utf-8 path");
    let spec = "specs/small_ddpm_mnist.tds";
    for args in [
        vec!["compile", spec, "--device", "cuda"],
        vec!["probe", spec, "--device", "cuda"],
        vec![
            "train", spec, "--device", "cuda", "--steps", "1", "--out", out,
        ],
        vec!["gpu-parity", spec],
        vec!["gpu-bench"],
    ] {
        let (code, stdout, err) = tdspec(&args);
        assert_eq!(code, 2, "{args:?}: {stdout}{err}");
        assert!(
            err.contains("this binary was built without CUDA; build with --features cuda (scripts/build-cuda.sh)"),
            "{args:?}: {err}"
        );
    }
    assert!(
        !std::path::Path::new(out).join("metrics.jsonl").exists(),
        "a refused run must not start"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_device_is_rejected_by_the_parser() {
    let (code, _, err) = tdspec(&["compile", "specs/small_odenet_mnist.tds", "--device", "tpu"]);
    assert_eq!(code, 2);
    assert!(err.contains("possible values: cpu, cuda"), "{err}");
}

#[test]
fn gpu_parity_against_the_cpu_is_exact() {
    let (code, out, err) = tdspec(&[
        "gpu-parity",
        "specs/small_odenet_mnist.tds",
        "specs/small_ddpm_mnist.tds",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(r["pass"], true, "{r}");
        assert_eq!(r["output_rel"], 0.0, "{r}");
        assert_eq!(r["grad_rel_max"], 0.0, "{r}");
        assert!(r["params"].as_u64().unwrap_or(0) > 0, "{r}");
    }
}

#[test]
fn hidden_diagnostics_stay_out_of_the_help() {
    let (code, out, _) = tdspec(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        !out.contains("gpu-parity") && !out.contains("gpu-bench"),
        "{out}"
    );
}
