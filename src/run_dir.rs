//! Opening a finished or running training run: a run directory (or a checkpoint file with the
//! run's `spec.tds` beside it) in; the model, its trained parameters (the EMA weights when the
//! run keeps an EMA) and the run's data split out.

use crate::train_cmd::{load_data, load_model};
use dfdx::prelude::*;
use std::path::{Path, PathBuf};
use tdspec_compiler::ir::ModelIr;
use tdspec_runtime::data::Split;
use tdspec_runtime::params::{read_safetensors, Params};

pub struct Run {
    pub dir: PathBuf,
    pub model: ModelIr,
    pub params: Params<Cpu>,
    pub info: serde_json::Value,
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

/// Opens `path` (a run directory or its checkpoint file).
pub fn open(path: &Path) -> Result<Run, u8> {
    let (dir, ckpt) = if path.is_dir() {
        (path.to_path_buf(), path.join("checkpoint.safetensors"))
    } else {
        (
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
            path.to_path_buf(),
        )
    };
    let spec = dir.join("spec.tds");
    if !spec.exists() {
        return Err(fail(format!(
            "{} has no spec.tds: is it a tdspec run directory?",
            dir.display()
        )));
    }
    let (model, _) = load_model(&spec)?;
    let loaded = read_safetensors(&ckpt).map_err(fail)?;
    let mut params = Params::init(&model, &Cpu::default(), 0);
    params
        .load_named(&loaded.tensors)
        .map_err(|e| fail(format!("{}: {e}", ckpt.display())))?;
    // Prefer the EMA weights when the run kept them.
    let mut ema = params.clone();
    let mut have_ema = true;
    for p in &mut ema.list {
        match loaded.tensors.get(&format!("__ema.{}", p.info.name)) {
            Some((_, d)) if d.len() == p.info.numel() => {
                p.tensor = ema.dev.tensor_from_vec(d.clone(), (d.len(),));
            }
            _ => have_ema = false,
        }
    }
    if have_ema && !ema.list.is_empty() {
        params = ema;
    }
    let info = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok(Run {
        dir,
        model,
        params,
        info,
    })
}

impl Run {
    /// The data the run trained on (the embedded set when it recorded none).
    pub fn data(&self) -> Result<Split, u8> {
        let limit = self.info["limit_train"].as_u64().map(|v| v as usize);
        load_data(self.info["data"].as_str(), limit).map_err(fail)
    }
}
