//! The run directory: its layout (`spec.tds`, `command.txt`, `run.json`, `metrics.jsonl`,
//! `checkpoint.safetensors`, `loss.png` / `accuracy.png` / `eval.png`), creating one for a new
//! run, its metrics as typed JSON lines, its curves, and opening a finished run for
//! evaluation (the model, its trained weights and its data).

use super::error::RunError;
use crate::checkpoint;
use crate::data::{self, Split};
use crate::params::Params;
use crate::plot;
use crate::spec;
use dfdx::tensor::Cpu;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use tdspec_compiler::ir::ModelIr;

/// A run directory and the names of what it holds.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

/// `run.json`: what a run needs to be continued or read back. Runs written by the emitted
/// PyTorch `train.py` have more keys and lack `source`, so reading is lenient.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunInfo {
    #[serde(default)]
    pub batch: Option<usize>,
    /// The `--data` argument (the embedded digits when absent).
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub limit_train: Option<usize>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// The data set's description.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub steps_per_epoch: Option<usize>,
    #[serde(default)]
    pub target_steps: Option<usize>,
}

/// One line of `metrics.jsonl`: a training step, and the evaluation after it when there was one.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Metric {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_accuracy: Option<f64>,
    #[serde(default)]
    pub epoch: usize,
    /// Test eps-MSE (denoisers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss_buckets: Option<Vec<f64>>,
    #[serde(default)]
    pub grad_norm: f64,
    #[serde(default)]
    pub loss: f64,
    #[serde(default)]
    pub lr: f64,
    #[serde(default)]
    pub nfe: usize,
    #[serde(default)]
    pub step: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Seconds since this session of the run started.
    #[serde(default)]
    pub wall: f64,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RunDir { path: path.into() }
    }
    pub fn spec(&self) -> PathBuf {
        self.path.join("spec.tds")
    }
    pub fn info_path(&self) -> PathBuf {
        self.path.join("run.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.path.join("checkpoint.safetensors")
    }

    /// Claims the directory for one writer: `.lock` holds the owner's process id and goes away
    /// when the claim is dropped. A second writer is refused while the owner lives; the lock of
    /// a process that died (a kill) is taken over.
    pub fn lock(&self) -> Result<RunLock, RunError> {
        use std::io::Write;
        std::fs::create_dir_all(&self.path)
            .map_err(|e| RunError::failed(format!("cannot create {}: {e}", self.path.display())))?;
        let path = self.path.join(".lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    match owner.trim().parse::<u32>() {
                        Ok(pid) if pid != std::process::id() && process_alive(pid) => {
                            return Err(RunError::failed(format!(
                                "{} is in use by process {pid}; wait for it to finish or stop it",
                                self.path.display()
                            )))
                        }
                        // A dead owner's (or an unreadable) lock: take it over.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(RunError::failed(format!(
                        "cannot lock {}: {e}",
                        self.path.display()
                    )))
                }
            }
        }
        Err(RunError::failed(format!(
            "cannot lock {}: another process keeps taking it",
            self.path.display()
        )))
    }

    /// Whether a run was already started here.
    pub fn holds_run(&self) -> bool {
        self.checkpoint().exists() || self.metrics().exists()
    }

    /// Reads `run.json`.
    pub fn read_info(&self) -> Result<RunInfo, RunError> {
        let p = self.info_path();
        let text = std::fs::read_to_string(&p)
            .map_err(|e| RunError::failed(format!("cannot read {}: {e}", p.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| RunError::failed(format!("{} is corrupt: {e}", p.display())))
    }

    /// Creates the directory of a new run with the spec as trained, the command line and
    /// `run.json`.
    pub fn create(&self, spec_text: &str, command: &str, info: &RunInfo) -> Result<(), RunError> {
        std::fs::create_dir_all(&self.path)
            .map_err(|e| RunError::failed(format!("cannot create {}: {e}", self.path.display())))?;
        std::fs::write(self.spec(), spec_text)
            .map_err(|e| RunError::failed(format!("cannot write the run's spec: {e}")))?;
        std::fs::write(self.path.join("command.txt"), format!("{command}\n"))
            .map_err(RunError::failed)?;
        let json = serde_json::to_string_pretty(info).unwrap_or_default();
        std::fs::write(self.info_path(), json).map_err(RunError::failed)
    }

    /// Opens `metrics.jsonl` for appending.
    pub fn metrics_writer(&self) -> Result<MetricsWriter, RunError> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.metrics())
            .map(MetricsWriter)
            .map_err(|e| RunError::failed(format!("cannot open metrics: {e}")))
    }

    /// Makes `metrics.jsonl` agree with a checkpoint at `step` before a resumed run appends to
    /// it: records past the step are dropped (their checkpoint was never written), and the file
    /// is cut before its first line that is not a whole record (a write cut short), so nothing
    /// is glued onto garbage. Rewritten atomically; says what it changed.
    pub fn reconcile_metrics(&self, step: usize) -> Result<Option<String>, RunError> {
        let path = self.metrics();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let mut kept = String::new();
        let (mut past, mut bad) = (0usize, None);
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let whole = line.ends_with('\n');
            match serde_json::from_str::<Metric>(line.trim_end()) {
                Ok(m) if whole && m.step <= step => kept.push_str(line),
                Ok(m) if whole && m.step > step => past += 1,
                _ if line.trim().is_empty() => {}
                _ => {
                    bad = Some(i + 1);
                    break;
                }
            }
        }
        if kept == text {
            return Ok(None);
        }
        let tmp = path.with_extension("jsonl.tmp");
        std::fs::write(&tmp, &kept)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                RunError::failed(format!("cannot repair {}: {e}", path.display()))
            })?;
        let mut said = Vec::new();
        if let Some(line) = bad {
            said.push(format!(
                "line {line} of {} is not a whole record: cut there",
                path.display()
            ));
        }
        if past > 0 {
            said.push(format!(
                "dropped {past} record(s) past the checkpoint's step {step}"
            ));
        }
        Ok(Some(said.join("; ")))
    }

    /// Every record of `metrics.jsonl` that parses.
    pub fn read_metrics(&self) -> Vec<Metric> {
        std::fs::read_to_string(self.metrics())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Loss and accuracy / eps-MSE curves of the whole run from its metrics, as PNG files.
    /// Plots are a convenience: a failure to draw one is not an error of the run; the failures
    /// are returned for a warning.
    pub fn write_curves(&self, name: &str) -> Vec<String> {
        let metrics = self.read_metrics();
        let series = |f: fn(&Metric) -> Option<f64>| -> Vec<(f64, f64)> {
            metrics
                .iter()
                .filter_map(|m| f(m).map(|v| (m.step as f64, v)))
                .collect()
        };
        let loss = series(|m| Some(m.loss));
        let acc = series(|m| m.test_accuracy);
        let ev = series(|m| m.eval_loss);
        let plots = [
            ("loss.png", "training loss", "loss", &loss),
            ("accuracy.png", "test accuracy", "accuracy", &acc),
            ("eval.png", "test eps-MSE", "eps-MSE", &ev),
        ];
        let mut failed = Vec::new();
        for (file, title, label, data) in plots {
            if data.is_empty() && file != "loss.png" {
                continue;
            }
            let path = self.path.join(file);
            if let Err(e) = plot::save_curves(&path, &format!("{name} {title}"), &[(label, data)]) {
                failed.push(format!("{}: {e}", path.display()));
            }
        }
        failed
    }
}

/// Appends [`Metric`] records to `metrics.jsonl`, one JSON object per line.
pub struct MetricsWriter(std::fs::File);

impl MetricsWriter {
    /// Appends one record; a full disk loses a line of metrics, not the run.
    pub fn append(&mut self, m: &Metric) {
        if let Ok(line) = serde_json::to_string(m) {
            let _ = writeln!(self.0, "{line}");
        }
    }
}

/// A finished (or running) training run opened for evaluation.
pub struct TrainedRun {
    pub dir: PathBuf,
    pub model: ModelIr,
    /// The trained weights: the EMA weights when the run keeps an EMA.
    pub params: Params<Cpu>,
    /// `run.json`, or the defaults when it is missing or unreadable.
    pub info: RunInfo,
}

impl TrainedRun {
    /// Opens `path`: a run directory, or a checkpoint file with the run's `spec.tds` beside it.
    pub fn open(path: &Path) -> Result<Self, RunError> {
        let (dir, ckpt) = if path.is_dir() {
            (path.to_path_buf(), RunDir::new(path).checkpoint())
        } else {
            (
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
                path.to_path_buf(),
            )
        };
        let run = RunDir::new(&dir);
        if !run.spec().exists() {
            let what = if path.is_dir() {
                format!("{} has no spec.tds", path.display())
            } else if path.exists() {
                format!(
                    "{} is a file without a run's spec.tds beside it",
                    path.display()
                )
            } else {
                format!("{} does not exist", path.display())
            };
            return Err(RunError::failed(format!(
                "{what}: give a run directory (or its checkpoint)"
            )));
        }
        let (model, _) = spec::load_one(&run.spec())?;
        let params = checkpoint::load_eval_params(&model, &Cpu::default(), &ckpt)
            .map_err(RunError::failed)?;
        let info = run.read_info().unwrap_or_default();
        Ok(TrainedRun {
            dir,
            model,
            params,
            info,
        })
    }

    /// Weights outside a run directory (diffusers' `diffusion_pytorch_model.safetensors`, a
    /// PyTorch export) evaluated with the model of `spec` (a spec or a diffusers config); names
    /// and shapes are checked before anything runs.
    pub fn open_weights(spec: &Path, weights: &Path) -> Result<Self, RunError> {
        let (model, _) = spec::load_one(spec)?;
        let params = checkpoint::load_eval_params(&model, &Cpu::default(), weights)
            .map_err(RunError::failed)?;
        Ok(TrainedRun {
            dir: weights.parent().map(Path::to_path_buf).unwrap_or_default(),
            model,
            params,
            info: RunInfo::default(),
        })
    }

    /// The data the run trained on (the embedded digits when it recorded none).
    pub fn data(&self) -> Result<Split, RunError> {
        data::load_arg(self.info.data.as_deref(), self.info.limit_train).map_err(RunError::failed)
    }
}

/// One writer's claim on a run directory ([`RunDir::lock`]); released on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` is running (Linux: `/proc`; elsewhere every owner counts as alive).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_reconciled_with_the_checkpoint() {
        let dir = std::env::temp_dir().join(format!("tdspec-reconcile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir::new(&dir);
        let line = |s: usize| format!("{{\"step\":{s},\"loss\":1.0}}\n");
        let whole: String = (1..=5).map(line).collect();
        // Records past the checkpoint, then a write cut short.
        std::fs::write(run.metrics(), format!("{whole}{{\"step\":6,\"lo")).unwrap();
        let said = run.reconcile_metrics(3).unwrap().expect("a repair");
        assert!(
            said.contains("line 6") && said.contains("dropped 2 record(s)"),
            "{said}"
        );
        let steps: Vec<usize> = run.read_metrics().iter().map(|m| m.step).collect();
        assert_eq!(steps, [1, 2, 3]);
        assert!(std::fs::read_to_string(run.metrics())
            .unwrap()
            .ends_with('\n'));
        // In agreement: left alone.
        assert_eq!(run.reconcile_metrics(3).unwrap(), None);
        // Garbage in the middle: cut there, the records before it kept.
        std::fs::write(run.metrics(), format!("{}garbage\n{}", line(1), line(2))).unwrap();
        let said = run.reconcile_metrics(9).unwrap().expect("a repair");
        assert!(said.contains("line 2"), "{said}");
        assert_eq!(run.read_metrics().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
