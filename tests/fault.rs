//! The fault test: a training run with a checkpoint every step is killed with SIGKILL again and
//! again at staggered moments and resumed each time. After every kill the checkpoint loads
//! (`tdspec eval` reads it) and, once the run is finished, metrics.jsonl holds every step
//! exactly once and in order: nothing lost, nothing doubled, however the kills fell between the
//! metrics append and the checkpoint's rename.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tdspec");
const STEPS: usize = 120;
const KILLS: usize = 16;

fn tdspec(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn steps_recorded(run: &Path) -> Vec<usize> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a whole record");
            v["step"].as_u64().unwrap() as usize
        })
        .collect()
}

#[test]
fn kill_9_during_training_never_loses_the_run() {
    let dir = std::env::temp_dir().join(format!("tdspec-fault-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/train_specs/tiny_odenet.tds");
    let spec = spec.display().to_string();
    let run = dir.join("run");
    let steps = STEPS.to_string();
    let common = [
        "--steps",
        steps.as_str(),
        "--eval-every",
        "1",
        "--eval-samples",
        "4",
    ];
    let mut kills = 0;
    // Resumes that found metrics.jsonl out of step with the checkpoint and reconciled it.
    let mut repaired = 0;
    let mut attempt = 0;
    let t0 = Instant::now();
    while kills < KILLS {
        attempt += 1;
        assert!(
            attempt < 10 * KILLS,
            "the run keeps finishing before a kill"
        );
        let mut args: Vec<&str> = if run.join("checkpoint.safetensors").exists() {
            vec!["train", "--resume", "run"]
        } else {
            vec![
                "train",
                &spec,
                "--out",
                "run",
                "--batch",
                "4",
                "--limit-train",
                "64",
            ]
        };
        args.extend_from_slice(&common);
        let mut child = tdspec(&dir, &args).spawn().expect("start training");
        // Staggered moments, so kills land in different phases of a step.
        let wait = 150 + (attempt * 37) % 200;
        std::thread::sleep(Duration::from_millis(wait as u64));
        if child.try_wait().unwrap().is_some() {
            // Finished (or refused) before the kill: start over from nothing.
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "training failed: {err}");
            let _ = std::fs::remove_dir_all(&run);
            continue;
        }
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        repaired += String::from_utf8_lossy(&out.stderr)
            .matches("metrics: ")
            .count();
        kills += 1;
        // A checkpoint is always loadable after a kill (once one was written).
        if run.join("checkpoint.safetensors").exists() {
            let out = tdspec(
                &dir,
                &["eval", "run", "--samples", "4", "--fd-samples", "0"],
            )
            .output()
            .unwrap();
            assert!(
                out.status.success(),
                "after kill {kills}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            !run.join("checkpoint.safetensors.tmp").exists() || kills > 0,
            "a temporary file is only ever left by a kill"
        );
    }
    // Finish the run.
    let mut args = vec!["train", "--resume", "run"];
    args.extend_from_slice(&common);
    let out = tdspec(&dir, &args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = steps_recorded(&run);
    let want: Vec<usize> = (1..=STEPS).collect();
    assert_eq!(recorded, want, "every step recorded once, in order");
    println!(
        "{kills} kills over {attempt} starts in {:.1} s; {} records, checkpoint loadable after \
         each; {repaired} resumes reconciled the metrics",
        t0.elapsed().as_secs_f64(),
        recorded.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One training step of the tiny ODE-Net into `dir/run`.
fn one_step_into_run(dir: &Path) -> std::process::Output {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/train_specs/tiny_odenet.tds");
    let spec = spec.display().to_string();
    let args = [
        "train",
        &spec,
        "--out",
        "run",
        "--steps",
        "1",
        "--batch",
        "4",
        "--limit-train",
        "16",
        "--eval-samples",
        "4",
    ];
    tdspec(dir, &args).output().unwrap()
}

/// A full disk while the checkpoint is written (its temporary file is a link to /dev/full):
/// the run stops with the cause, and no temporary file is left behind.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_leaves_no_temporary_checkpoint() {
    let dir = std::env::temp_dir().join(format!("tdspec-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let tmp = run.join("checkpoint.safetensors.tmp");
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
    let out = one_step_into_run(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        std::fs::symlink_metadata(&tmp).is_err(),
        "the temporary file was removed"
    );
    assert!(!run.join("checkpoint.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// When only a plot cannot be drawn, the run succeeds and says so.
#[test]
fn a_plot_that_cannot_be_written_is_warned() {
    let dir = std::env::temp_dir().join(format!("tdspec-plot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = dir.join("run");
    // A directory where the loss curve goes.
    std::fs::create_dir_all(run.join("loss.png")).unwrap();
    let out = one_step_into_run(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: the curve was not drawn") && err.contains("loss.png"),
        "{err}"
    );
    assert!(run.join("checkpoint.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
