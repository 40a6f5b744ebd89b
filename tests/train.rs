//! Training from specs through the CLI, on small slices of the embedded digits: the loss falls
//! and accuracy beats chance; resuming gives exactly the weights of an uninterrupted run; a
//! diverging run stops with a clear message and keeps its last good checkpoint; sampling is
//! deterministic under a seed; eval reads runs back.

mod common;
use common::tdspec;

use std::path::{Path, PathBuf};
use tdspec_runtime::params::read_safetensors;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tdspec-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn classifier_learns() {
    let dir = tmp("cls");
    let d = dir.to_str().expect("utf8");
    let (code, _, err) = tdspec(&[
        "train",
        "tests/train_specs/tiny_classifier.tds",
        "--steps",
        "60",
        "--limit-train",
        "1024",
        "--eval-every",
        "60",
        "--eval-samples",
        "500",
        "--out",
        d,
    ]);
    assert_eq!(code, 0, "{err}");
    let m = metrics(&dir);
    let first: f64 = m[..5]
        .iter()
        .map(|r| r["loss"].as_f64().unwrap_or(9.0))
        .sum::<f64>()
        / 5.0;
    let last: f64 = m[m.len() - 5..]
        .iter()
        .map(|r| r["loss"].as_f64().unwrap_or(9.0))
        .sum::<f64>()
        / 5.0;
    assert!(last < first * 0.8, "loss {first} -> {last}");
    let acc = m
        .last()
        .and_then(|r| r["test_accuracy"].as_f64())
        .expect("test accuracy");
    assert!(
        acc > 0.3,
        "test accuracy {acc} is not clearly above chance (0.1)"
    );
    for f in [
        "spec.tds",
        "command.txt",
        "run.json",
        "checkpoint.safetensors",
        "loss.png",
        "accuracy.png",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let (code, out, err) = tdspec(&["eval", d, "--samples", "500"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test accuracy"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn neural_ode_classifier_trains_and_counts_evaluations() {
    let dir = tmp("ode");
    let d = dir.to_str().expect("utf8");
    let (code, _, err) = tdspec(&[
        "train",
        "tests/train_specs/tiny_odenet.tds",
        "--steps",
        "20",
        "--limit-train",
        "640",
        "--eval-every",
        "20",
        "--eval-samples",
        "200",
        "--out",
        d,
    ]);
    assert_eq!(code, 0, "{err}");
    let m = metrics(&dir);
    assert!(
        m.iter().all(|r| r["nfe"].as_u64().unwrap_or(0) >= 6),
        "dopri5 takes at least one step of 6 stages"
    );
    let first = m[0]["loss"].as_f64().unwrap_or(0.0);
    let last = m.last().and_then(|r| r["loss"].as_f64()).unwrap_or(9.0);
    assert!(last < first, "loss {first} -> {last}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_gives_the_same_weights() {
    let straight = tmp("straight");
    let split = tmp("split");
    let common = [
        "--limit-train",
        "256",
        "--eval-every",
        "100",
        "--eval-samples",
        "100",
    ];
    let run = |dir: &Path, steps: &str| {
        let mut a = vec![
            "train",
            "tests/train_specs/tiny_ddpm.tds",
            "--steps",
            steps,
            "--out",
            dir.to_str().expect("utf8"),
        ];
        a.extend(common);
        tdspec(&a)
    };
    assert_eq!(run(&straight, "6").0, 0);
    assert_eq!(run(&split, "3").0, 0);
    // The same directory again without --resume is refused, and nothing is overwritten.
    let (code, _, err) = run(&split, "3");
    assert_eq!(code, 2);
    assert!(err.contains("--resume"), "{err}");
    // A resumed run keeps its batch and data: a different --batch is refused, not ignored.
    let (code, _, err) = tdspec(&[
        "train",
        "--resume",
        split.to_str().expect("utf8"),
        "--steps",
        "6",
        "--batch",
        "3",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("a resumed run keeps its batch"), "{err}");
    let (code, _, err) = tdspec(&[
        "train",
        "--resume",
        split.to_str().expect("utf8"),
        "--limit-train",
        "10",
    ]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = tdspec(&[
        "train",
        "--resume",
        split.to_str().expect("utf8"),
        "--steps",
        "1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the run is at step 3; a target of 1 steps trains nothing"),
        "{err}"
    );
    let (code, _, err) = tdspec(&[
        "train",
        "--resume",
        split.to_str().expect("utf8"),
        "--steps",
        "6",
    ]);
    assert_eq!(code, 0, "{err}");
    let a = read_safetensors(&straight.join("checkpoint.safetensors")).expect("straight");
    let b = read_safetensors(&split.join("checkpoint.safetensors")).expect("split");
    assert_eq!(a.meta.get("step"), Some(&"6".to_string()));
    assert_eq!(b.meta.get("step"), Some(&"6".to_string()));
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (name, (_, va)) in &a.tensors {
        let (_, vb) = &b.tensors[name];
        assert_eq!(va, vb, "tensor {name} differs after resume");
    }
    // Sampling is deterministic under a seed and writes a PNG.
    let g1 = straight.join("g1.png");
    let g2 = straight.join("g2.png");
    for (g, sampler) in [(&g1, "ddim"), (&g2, "ddim")] {
        let (code, _, err) = tdspec(&[
            "sample",
            straight.to_str().expect("utf8"),
            "--n",
            "4",
            "--steps",
            "5",
            "--sampler",
            sampler,
            "--seed",
            "7",
            "-o",
            g.to_str().expect("utf8"),
        ]);
        assert_eq!(code, 0, "{err}");
    }
    assert_eq!(
        std::fs::read(&g1).expect("g1"),
        std::fs::read(&g2).expect("g2")
    );
    let (code, _, err) = tdspec(&[
        "sample",
        straight.to_str().expect("utf8"),
        "--n",
        "4",
        "--steps",
        "5",
        "--sampler",
        "ancestral",
        "-o",
        straight.join("g3.png").to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = tdspec(&["eval", straight.to_str().expect("utf8"), "--samples", "100"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("eps-MSE"), "{out}");
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&split);
}

#[test]
fn diverging_loss_stops_and_keeps_the_last_good_checkpoint() {
    let dir = tmp("nan");
    let d = dir.to_str().expect("utf8");
    let (code, _, err) = tdspec(&[
        "train",
        "tests/train_specs/diverging.tds",
        "--steps",
        "50",
        "--limit-train",
        "256",
        "--eval-every",
        "1",
        "--eval-samples",
        "100",
        "--out",
        d,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NaN or infinite"), "{err}");
    assert!(err.contains("last good checkpoint"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let ck = read_safetensors(&dir.join("checkpoint.safetensors")).expect("a checkpoint remains");
    assert!(
        ck.tensors
            .values()
            .all(|(_, v)| v.iter().all(|x| x.is_finite())),
        "the kept checkpoint is finite"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_data_arguments_are_clear_errors() {
    let (code, _, err) = tdspec(&[
        "train",
        "tests/train_specs/tiny_classifier.tds",
        "--data",
        "imagenet:/x",
        "--steps",
        "1",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("imagenet"), "{err}");
    let (code, _, err) = tdspec(&[
        "train",
        "tests/train_specs/tiny_classifier.tds",
        "--data",
        "mnist:/does/not/exist",
        "--steps",
        "1",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/does/not/exist"), "{err}");
}

#[test]
fn experiment_runner_records_every_run_and_summarizes() {
    let dir = tmp("exp");
    let d = dir.to_str().expect("utf8");
    let (code, _, err) = tdspec(&["experiment", "tests/train_specs/tiny_plan.json", "--out", d]);
    assert_eq!(code, 0, "{err}");
    let results: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).expect("results"))
            .expect("json");
    assert_eq!(results.len(), 4, "2 variants x 2 seeds");
    for r in &results {
        assert!(r["measured_survival"].as_f64().is_some(), "{r}");
        assert!(
            r["lint"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c == "TD102")),
            "{r}"
        );
    }
    let ode = results
        .iter()
        .find(|r| r["group"] == "odenet")
        .expect("ode run");
    assert!(ode["adaptive_nfe"].as_f64().unwrap_or(0.0) >= 6.0, "{ode}");
    let ddpm = results
        .iter()
        .find(|r| r["group"] == "ddpm")
        .expect("ddpm run");
    assert!(
        ddpm["frechet"].as_f64().is_some_and(|f| f.is_finite()),
        "{ddpm}"
    );
    let summary = std::fs::read_to_string(dir.join("summary.md")).expect("summary");
    assert!(
        summary.contains("| tiny ode |") && summary.contains("| tiny ddpm |"),
        "{summary}"
    );
    for f in [
        "odenet_metric.png",
        "ddpm_metric.png",
        "odenet_survival_per_layer.png",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    // A rerun skips the finished runs.
    let (code, _, err) = tdspec(&["experiment", "tests/train_specs/tiny_plan.json", "--out", d]);
    assert_eq!(code, 0);
    assert!(!err.contains("seed 0"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_stopped_before_its_first_checkpoint_starts_over_in_place() {
    let dir = tmp("nan-early");
    let d = dir.to_str().expect("utf8");
    let args = [
        "train",
        "tests/train_specs/diverging.tds",
        "--steps",
        "50",
        "--limit-train",
        "256",
        "--eval-every",
        "1000",
        "--eval-samples",
        "100",
        "--out",
        d,
    ];
    for attempt in 0..2 {
        let (code, _, err) = tdspec(&args);
        assert_eq!(code, 2, "attempt {attempt}: {err}");
        assert!(err.contains("NaN or infinite"), "attempt {attempt}: {err}");
        assert!(
            err.contains("no checkpoint was written yet: the same command starts the run over"),
            "attempt {attempt}: {err}"
        );
        assert!(!dir.join("checkpoint.safetensors").exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
