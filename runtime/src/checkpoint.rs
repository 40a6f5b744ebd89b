//! The training checkpoint format, in one place: a [`Trainer`] in, a safetensors file out, and
//! back. The file holds the parameters and buffers under their IR names, the optimizer moments
//! as `__optim.m.<name>` and `__optim.v.<name>`, the EMA weights as `__ema.<name>`, and the
//! metadata `format`, `model`, `step`, `seed`, `optim_t` and `batch`; it is written to a
//! temporary file and renamed. Readers validate everything before changing anything. The
//! emitted PyTorch `train.py` writes and reads the same layout.

use crate::ops::Kernels;
use crate::params::{read_safetensors, Params};
use crate::train::Trainer;
use crate::RuntimeError;
use dfdx::tensor_ops::Device;
use std::collections::HashMap;
use std::path::Path;
use tdspec_compiler::ir::ModelIr;

/// The `format` metadata of a training checkpoint.
pub const FORMAT: &str = "tdspec-checkpoint-1";
/// Name prefixes of the optimizer's first and second moments and of the EMA weights.
const OPTIM_M: &str = "__optim.m.";
const OPTIM_V: &str = "__optim.v.";
const EMA: &str = "__ema.";

/// Writes a resumable checkpoint of `tr` to `path` atomically.
pub fn save<D: Kernels>(tr: &Trainer<'_, D>, path: &Path) -> Result<(), RuntimeError> {
    let mut extra = Vec::new();
    for (i, p) in tr.params.list.iter().enumerate() {
        let (name, n) = (&p.info.name, p.info.numel());
        extra.push((format!("{OPTIM_M}{name}"), vec![n], tr.optim.m[i].clone()));
        if let Some(v) = tr.optim.v.get(i) {
            extra.push((format!("{OPTIM_V}{name}"), vec![n], v.clone()));
        }
        if let Some(e) = &tr.ema {
            extra.push((format!("{EMA}{name}"), vec![n], e.shadow[i].clone()));
        }
    }
    let mut meta = HashMap::new();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("model".into(), tr.model.name.clone());
    meta.insert("step".into(), tr.step.to_string());
    meta.insert("seed".into(), tr.seed.to_string());
    meta.insert("optim_t".into(), tr.optim.t.to_string());
    meta.insert("batch".into(), tr.batch.to_string());
    tr.params.save(path, &extra, meta)
}

/// The largest step, optimizer count or batch a checkpoint may state (2^40).
const MAX_COUNT: u64 = 1 << 40;

/// Restores parameters, optimizer, EMA, step, seed and batch of `tr` from a checkpoint written
/// by [`save`]. Everything is validated before anything changes.
pub fn restore<D: Kernels>(tr: &mut Trainer<'_, D>, path: &Path) -> Result<(), RuntimeError> {
    let loaded = read_safetensors(path)?;
    let meta = &loaded.meta;
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(RuntimeError::Checkpoint(format!(
            "{} is not a tdspec training checkpoint",
            path.display()
        )));
    }
    if meta.get("model") != Some(&tr.model.name) {
        return Err(RuntimeError::Checkpoint(format!(
            "{} belongs to model `{}`, not `{}`",
            path.display(),
            meta.get("model").cloned().unwrap_or_default(),
            tr.model.name
        )));
    }
    let num = |k: &str| -> Result<u64, RuntimeError> {
        meta.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| {
            RuntimeError::Checkpoint(format!(
                "{}: metadata `{k}` is missing or not a number",
                path.display()
            ))
        })
    };
    let (step, seed, optim_t, batch) = (num("step")?, num("seed")?, num("optim_t")?, num("batch")?);
    // Counts no run reaches (a damaged or hand-edited file) would wrap later arithmetic.
    for (k, v) in [("step", step), ("optim_t", optim_t), ("batch", batch)] {
        if v > MAX_COUNT {
            return Err(RuntimeError::Checkpoint(format!(
                "{}: metadata `{k}` is {v}, more than any run reaches (at most {MAX_COUNT})",
                path.display()
            )));
        }
    }
    let get = |name: &str, n: usize| -> Result<Vec<f32>, RuntimeError> {
        match loaded.tensors.get(name) {
            Some((_, d)) if d.len() == n => Ok(d.clone()),
            Some(_) => Err(RuntimeError::Checkpoint(format!(
                "tensor `{name}` has the wrong size"
            ))),
            None => Err(RuntimeError::Checkpoint(format!(
                "tensor `{name}` is missing"
            ))),
        }
    };
    let (mut m, mut v, mut e) = (Vec::new(), Vec::new(), Vec::new());
    for p in &tr.params.list {
        let (name, n) = (&p.info.name, p.info.numel());
        m.push(get(&format!("{OPTIM_M}{name}"), n)?);
        if !tr.optim.v.is_empty() {
            v.push(get(&format!("{OPTIM_V}{name}"), n)?);
        }
        if tr.ema.is_some() {
            e.push(get(&format!("{EMA}{name}"), n)?);
        }
    }
    let mut params = tr.params.clone();
    params.load_named(&loaded.tensors)?;
    tr.params = params;
    tr.optim.m = m;
    tr.optim.v = v;
    tr.optim.t = optim_t;
    if let Some(ema) = &mut tr.ema {
        ema.shadow = e;
    }
    tr.step = step as usize;
    tr.seed = seed;
    tr.batch = batch as usize;
    Ok(())
}

/// The tensors of a safetensors file under the model's names: diffusers' `UNet2DModel` names
/// are renamed ([`crate::diffusers`]).
fn read_named(path: &Path) -> Result<crate::params::Loaded, RuntimeError> {
    let mut loaded = read_safetensors(path)?;
    if crate::diffusers::is_diffusers(&loaded.tensors) {
        loaded.tensors = crate::diffusers::rename(&loaded.tensors)
            .map_err(|e| RuntimeError::InFile(path.display().to_string(), Box::new(e)))?;
    }
    Ok(loaded)
}

/// Loads the parameters and buffers of `params` from any safetensors file with the model's
/// names (a training checkpoint, a PyTorch export, or a diffusers `UNet2DModel`); nothing
/// changes on a mismatch.
pub fn load_params<D: Device<f32>>(
    params: &mut Params<D>,
    path: &Path,
) -> Result<(), RuntimeError> {
    let loaded = read_named(path)?;
    params
        .load_named(&loaded.tensors)
        .map_err(|e| RuntimeError::InFile(path.display().to_string(), Box::new(e)))
}

/// Rewrites the weights of `from` (any file `load_params` reads, e.g. diffusers'
/// `diffusion_pytorch_model.safetensors`) under tdspec's names into `to`, checked against the
/// model's names and shapes first; returns the parameter count written. An existing `to` is
/// replaced only with `force`.
pub fn convert_weights(
    m: &ModelIr,
    from: &Path,
    to: &Path,
    force: bool,
) -> Result<usize, RuntimeError> {
    if to.exists() && !force {
        return Err(RuntimeError::Io(format!(
            "{} exists; pass --force to replace it",
            to.display()
        )));
    }
    let dev = dfdx::tensor::Cpu::default();
    let mut params = Params::init(m, &dev, 0);
    load_params(&mut params, from)?;
    let meta = HashMap::from([("converted_from".to_string(), from.display().to_string())]);
    params.save(to, &[], meta)?;
    Ok(params.count())
}

/// The weights to evaluate a trained model with: the checkpoint's EMA weights when it holds
/// them for every parameter, else its parameters.
pub fn load_eval_params<D: Device<f32>>(
    m: &ModelIr,
    dev: &D,
    path: &Path,
) -> Result<Params<D>, RuntimeError> {
    let loaded = read_named(path)?;
    let mut params = Params::init(m, dev, 0);
    params
        .load_named(&loaded.tensors)
        .map_err(|e| RuntimeError::InFile(path.display().to_string(), Box::new(e)))?;
    let mut ema = params.clone();
    let mut have_ema = true;
    for p in &mut ema.list {
        match loaded.tensors.get(&format!("{EMA}{}", p.info.name)) {
            Some((_, d)) if d.len() == p.info.numel() => {
                p.tensor = ema.dev.tensor_from_vec(d.clone(), (d.len(),));
            }
            _ => have_ema = false,
        }
    }
    Ok(if have_ema && !ema.list.is_empty() {
        ema
    } else {
        params
    })
}
