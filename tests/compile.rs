//! `tdspec compile`: the graph lowers and runs for every reference spec, the summary's figures
//! are snapshotted, and what the runtime cannot run is a diagnostic before any allocation.

mod common;
use common::tdspec;

#[test]
fn compile_summaries() {
    for spec in [
        "specs/odenet_mnist.tds",
        "specs/small_ddpm_mnist.tds",
        "specs/small_odenet_mnist.tds",
    ] {
        let (code, out, err) = tdspec(&["compile", "--summary", spec]);
        assert_eq!(code, 0, "{spec}: {err}");
        let name = spec.trim_start_matches("specs/").trim_end_matches(".tds");
        insta::assert_snapshot!(format!("compile_{name}"), out);
    }
}

#[test]
fn compile_json_counts_match_check() {
    for spec in ["specs/odenet_mnist.tds", "specs/ddpm_cifar10.tds"] {
        let (_, out, _) = tdspec(&["compile", "--format", "json", spec]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        let (_, out2, _) = tdspec(&["check", "--format", "json", spec]);
        let c: serde_json::Value = serde_json::from_str(&out2).expect("json");
        assert_eq!(v[0]["params"], c[0]["params"], "{spec}");
        assert!(v[0]["macs_per_sample"].as_u64().unwrap_or(0) > 0);
    }
}

#[test]
fn huge_batches_are_refused_before_allocation() {
    let (code, _, err) = tdspec(&["compile", "--batch", "10000000", "specs/ddpm_cifar10.tds"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E302"), "{err}");
    assert!(err.contains("GiB"), "{err}");
}

/// What sema accepts, lowering accepts with the same shapes: `upsample(3)` (once refused with
/// E301 by compile while check accepted it).
#[test]
fn sema_and_lowering_agree_on_any_upsampling_factor() {
    let dir = std::env::temp_dir().join(format!("tdspec-up3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("up3.tds");
    std::fs::write(
        &p,
        "model m {\n input x: image[1, 8, 8]\n time t: continuous, shared\n return x | conv3(4, time = concat(positional)) | upsample(3) | conv3(1)\n}\n",
    )
    .unwrap();
    let p = p.display().to_string();
    let (code, out, err) = tdspec(&["compile", "--summary", &p]);
    assert_eq!(code, 0, "{err}");
    // compile runs the lowered graph once: the runtime computed sema's shapes.
    assert!(out.contains("forward:"), "{out}");
    let (code, _, err) = tdspec(&["probe", "--seeds", "2", "--target", "0", &p]);
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn probe_rejects_a_mismatching_checkpoint() {
    let dir = std::env::temp_dir().join(format!("tdspec-ck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bad = dir.join("bad.safetensors");
    std::fs::write(&bad, b"not a checkpoint").expect("write");
    let (code, _, err) = tdspec(&[
        "probe",
        "--checkpoint",
        bad.to_str().expect("utf8"),
        "specs/odenet_mnist.tds",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("safetensors"), "{err}");
    // A real checkpoint of another model: the error names the first mismatching tensor.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/runtime/tests/fixtures/torch/odenet_func.safetensors"
    );
    let (code, _, err) = tdspec(&["probe", "--checkpoint", fixture, "specs/odenet_mnist.tds"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tensor `"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every command that allocates runs the plan check first: a spec whose activations need
/// hundreds of GiB is refused with the estimate, never aborted by the allocator.
#[test]
fn oversized_plans_are_refused_before_allocation_by_every_command() {
    let dir = std::env::temp_dir().join(format!("tdspec-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string("specs/small_odenet_mnist.tds").unwrap();
    let p = dir.join("big.tds");
    std::fs::write(&p, text.replace("image[1, 28, 28]", "image[1, 4096, 4096]")).unwrap();
    let p = p.display().to_string();
    let out = dir.join("run").display().to_string();
    for args in [
        vec!["probe", p.as_str()],
        vec!["train", p.as_str(), "--steps", "1", "--out", out.as_str()],
    ] {
        let (code, _, err) = tdspec(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("GiB, more than the 16.0 GiB limit"),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.join("run").exists(), "train wrote a run directory");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A flag is applied as given or refused with a reason, never changed silently.
#[test]
fn flags_out_of_range_are_refused_not_changed() {
    let dir = std::env::temp_dir().join(format!("tdspec-flags-{}", std::process::id()));
    let out = dir.join("run").display().to_string();
    let (code, _, err) = tdspec(&[
        "train",
        "specs/small_odenet_mnist.tds",
        "--batch",
        "1",
        "--steps",
        "1",
        "--out",
        &out,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--batch 1: training needs at least 2"),
        "{err}"
    );
    assert!(!dir.join("run").exists());
    let (code, _, err) = tdspec(&["eval", &out, "--samples", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--samples 0"), "{err}");
    let (code, _, err) = tdspec(&["demo", "--batch", "0", "--out", &out]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--batch 0"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One writer per run directory: a live owner's lock refuses a second `train`, a dead owner's
/// lock is taken over, and the lock goes when the run ends.
#[test]
fn a_run_directory_has_one_writer() {
    if !std::path::Path::new("/proc/1").exists() {
        println!("skipped: no /proc to tell live processes");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tdspec-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".lock"), "1").unwrap();
    let d = dir.display().to_string();
    let args = [
        "train",
        "specs/small_odenet_mnist.tds",
        "--steps",
        "1",
        "--batch",
        "8",
        "--out",
        d.as_str(),
    ];
    let (code, _, err) = tdspec(&args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is in use by process 1"), "{err}");
    assert!(!dir.join("metrics.jsonl").exists());
    std::fs::write(dir.join(".lock"), "4294967295").unwrap();
    let (code, _, err) = tdspec(&args);
    assert_eq!(code, 0, "{err}");
    assert!(dir.join("checkpoint.safetensors").exists());
    assert!(!dir.join(".lock").exists(), "the lock outlived the run");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Messages name the cause: a spec given where a run is expected, a limit that is no number.
#[test]
fn messages_name_the_cause() {
    let (code, _, err) = tdspec(&["eval", "specs/small_odenet_mnist.tds"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("specs/small_odenet_mnist.tds is a file without a run's spec.tds beside it"),
        "{err}"
    );
    let (code, _, err) = tdspec(&["eval", "no/such/run"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no/such/run does not exist"), "{err}");
    let (code, _, err) = tdspec(&[
        "compile",
        "--memory-limit",
        "NaN",
        "specs/small_odenet_mnist.tds",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--memory-limit NaN: a positive number of GiB"),
        "{err}"
    );
}

/// `emit` never overwrites a package without being told to.
#[test]
fn emit_refuses_a_non_empty_directory_without_force() {
    let dir = std::env::temp_dir().join(format!("tdspec-emit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.py"), "# mine").unwrap();
    let d = dir.display().to_string();
    let (code, _, err) = tdspec(&["emit", "specs/small_odenet_mnist.tds", "-o", &d]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not empty; pass --force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("model.py")).unwrap(),
        "# mine"
    );
    let (code, _, err) = tdspec(&["emit", "--force", "specs/small_odenet_mnist.tds", "-o", &d]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(
        std::fs::read_to_string(dir.join("model.py")).unwrap(),
        "# mine"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
