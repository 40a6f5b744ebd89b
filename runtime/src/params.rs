//! Parameters and buffers of a compiled model: the IR's parameter list in; named, flat f32 dfdx
//! tensors out, initialized as the spec's bias policy says and otherwise as PyTorch initializes
//! the same layers (kaiming-uniform weights with bound 1/sqrt(fan_in), the same bound for
//! default biases, norm scale 1 and shift 0). Also BatchNorm running statistics (buffers) and
//! safetensors checkpoint I/O with name and shape checks and atomic writes.

use crate::RuntimeError;
use dfdx::tensor::Tensor;
use dfdx::tensor_ops::Device;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;
use tdspec_compiler::ir::{BiasInit, ModelIr, NormKind, Op, ParamInfo, ParamRole};

/// A flat parameter tensor with its IR description.
#[derive(Clone, Debug)]
pub struct Param<D: Device<f32>> {
    pub info: ParamInfo,
    pub tensor: Tensor<(usize,), f32, D>,
}

/// All parameters (in the IR's order) and buffers of a model.
#[derive(Clone, Debug)]
pub struct Params<D: Device<f32>> {
    pub list: Vec<Param<D>>,
    index: HashMap<String, usize>,
    /// BatchNorm running statistics by node name: (mean, var).
    pub running: HashMap<String, (Vec<f32>, Vec<f32>)>,
    pub dev: D,
}

/// Fan-in of a weight shaped `[out, in, k, k]` or `[out, in]`.
fn fan_in(shape: &[usize]) -> usize {
    shape.iter().skip(1).product::<usize>().max(1)
}

impl<D: Device<f32>> Params<D> {
    /// Initializes every parameter of `m` from `seed`.
    pub fn init(m: &ModelIr, dev: &D, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut list = Vec::new();
        let mut running = HashMap::new();
        let mut last_fan_in: HashMap<String, usize> = HashMap::new();
        m.graph.walk(&mut |_, _, n| {
            if let Op::Norm {
                kind: NormKind::Batch,
                channels,
                ..
            } = n.op
            {
                running.insert(n.name.clone(), (vec![0.0; channels], vec![1.0; channels]));
            }
            for p in &n.params {
                let numel = p.numel();
                let data: Vec<f32> = match p.role {
                    ParamRole::Weight => {
                        let fi = fan_in(&p.shape);
                        // Remember the layer's fan-in for its bias (PyTorch uses the weight's).
                        let layer = p.name.rsplit_once('.').map(|(a, _)| a).unwrap_or("");
                        last_fan_in.insert(layer.to_string(), fi);
                        let bound = 1.0 / (fi as f64).sqrt();
                        (0..numel)
                            .map(|_| rng.gen_range(-bound..bound) as f32)
                            .collect()
                    }
                    ParamRole::Table => (0..numel).map(|_| normal(&mut rng) as f32).collect(),
                    ParamRole::Frozen => {
                        let scale = match n.op {
                            Op::Fourier { scale, .. } => scale,
                            _ => 1.0,
                        };
                        (0..numel)
                            .map(|_| (normal(&mut rng) * scale) as f32)
                            .collect()
                    }
                    ParamRole::NormScale => vec![1.0; numel],
                    ParamRole::NormShift => vec![0.0; numel],
                    ParamRole::OperandBias | ParamRole::TimeBias => {
                        let policy = if p.role == ParamRole::OperandBias {
                            m.bias.operand
                        } else {
                            m.bias.time
                        };
                        let layer = p.name.rsplit_once('.').map(|(a, _)| a).unwrap_or("");
                        match policy {
                            BiasInit::Default => {
                                let fi = last_fan_in.get(layer).copied().unwrap_or(1);
                                let bound = 1.0 / (fi as f64).sqrt();
                                (0..numel)
                                    .map(|_| rng.gen_range(-bound..bound) as f32)
                                    .collect()
                            }
                            BiasInit::Zero => vec![0.0; numel],
                            BiasInit::Constant { value } => vec![value as f32; numel],
                            BiasInit::Normal { std } => (0..numel)
                                .map(|_| (normal(&mut rng) * std) as f32)
                                .collect(),
                        }
                    }
                };
                list.push(Param {
                    info: p.clone(),
                    tensor: dev.tensor_from_vec(data, (numel,)),
                });
            }
        });
        let index = list
            .iter()
            .enumerate()
            .map(|(i, p)| (p.info.name.clone(), i))
            .collect();
        Params {
            list,
            index,
            running,
            dev: dev.clone(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Param<D>> {
        self.index.get(name).map(|&i| &self.list[i])
    }

    pub fn count(&self) -> usize {
        self.list.iter().map(|p| p.info.numel()).sum()
    }

    /// Copies every tensor to host vectors, by name (parameters, then `<bn>.running_mean/var`).
    pub fn to_named_vecs(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = self
            .list
            .iter()
            .map(|p| (p.info.name.clone(), p.info.shape.clone(), p.tensor.as_vec()))
            .collect();
        let mut bn: Vec<_> = self.running.iter().collect();
        bn.sort_by(|a, b| a.0.cmp(b.0));
        for (name, (mean, var)) in bn {
            out.push((
                format!("{name}.running_mean"),
                vec![mean.len()],
                mean.clone(),
            ));
            out.push((format!("{name}.running_var"), vec![var.len()], var.clone()));
        }
        out
    }

    /// Replaces the values of every parameter and buffer from `tensors` (name -> (shape, data)).
    /// Checks everything first; on any mismatch nothing is changed and the error names the
    /// first mismatching tensor.
    pub fn load_named(
        &mut self,
        tensors: &HashMap<String, (Vec<usize>, Vec<f32>)>,
    ) -> Result<(), RuntimeError> {
        let expected = self.to_named_vecs();
        for (name, shape, _) in &expected {
            match tensors.get(name) {
                None => {
                    return Err(RuntimeError::Checkpoint(format!(
                        "tensor `{name}` is missing"
                    )))
                }
                Some((s, d)) => {
                    if s != shape || d.len() != shape.iter().product::<usize>() {
                        return Err(RuntimeError::Checkpoint(format!(
                            "tensor `{name}` has shape {s:?}, the model expects {shape:?}"
                        )));
                    }
                    if let Some(i) = d.iter().position(|v| !v.is_finite()) {
                        return Err(RuntimeError::Checkpoint(format!(
                            "tensor `{name}` holds a non-finite value at {i}"
                        )));
                    }
                }
            }
        }
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _, _)| n.as_str()).collect();
        let mut extra: Vec<&String> = tensors
            .keys()
            .filter(|k| !known.contains(k.as_str()) && !k.starts_with("__"))
            .collect();
        extra.sort();
        if let Some(e) = extra.first() {
            return Err(RuntimeError::Checkpoint(format!(
                "tensor `{e}` is not a parameter of this model"
            )));
        }
        for p in &mut self.list {
            let (_, d) = &tensors[&p.info.name];
            p.tensor = self.dev.tensor_from_vec(d.clone(), (d.len(),));
        }
        for (name, (mean, var)) in self.running.iter_mut() {
            *mean = tensors[&format!("{name}.running_mean")].1.clone();
            *var = tensors[&format!("{name}.running_var")].1.clone();
        }
        Ok(())
    }

    /// Writes parameters, buffers and `extra` tensors to a safetensors file atomically.
    pub fn save(
        &self,
        path: &Path,
        extra: &[(String, Vec<usize>, Vec<f32>)],
        meta: HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let mut all = self.to_named_vecs();
        all.extend(extra.iter().cloned());
        write_safetensors(path, &all, meta)
    }
}

/// A standard normal sample (Box-Muller).
pub fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Writes f32 tensors to `path` via a temporary file and a rename, so a crash never leaves a
/// half-written checkpoint in place of a good one.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    meta: HashMap<String, String>,
) -> Result<(), RuntimeError> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::new();
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        let v = TensorView::new(Dtype::F32, shape.clone(), b)
            .map_err(|e| RuntimeError::Checkpoint(format!("tensor `{name}`: {e}")))?;
        views.push((name.clone(), v));
    }
    let data = safetensors::serialize(views, &Some(meta))
        .map_err(|e| RuntimeError::Checkpoint(e.to_string()))?;
    let tmp = path.with_extension("safetensors.tmp");
    // A failed write (a full disk) leaves neither a partial file nor the temporary one.
    std::fs::write(&tmp, data).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RuntimeError::Io(format!("cannot write {}: {e}", tmp.display()))
    })?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RuntimeError::Io(format!("cannot move {} into place: {e}", path.display()))
    })?;
    Ok(())
}

/// Tensors and metadata read from a safetensors file.
pub struct Loaded {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub meta: HashMap<String, String>,
}

/// Why a file of `len` bytes is not a readable safetensors file, in a user's words.
fn unreadable(e: &safetensors::SafeTensorError, len: usize) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall => {
            format!("not a safetensors file ({len} bytes: too short for a header)")
        }
        E::InvalidHeaderLength | E::HeaderTooLarge => {
            format!("not a safetensors file, or truncated (its header is longer than the {len}-byte file)")
        }
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization => {
            "not a safetensors file (its header is not the JSON table of tensors)".into()
        }
        E::JsonError(j) => format!("not a safetensors file (its header is not valid JSON: {j})"),
        E::MetadataIncompleteBuffer => {
            format!("truncated: its tensors extend past the end of the {len}-byte file")
        }
        E::InvalidOffset(name) => {
            format!(
                "truncated or corrupt: tensor `{name}` extends past its data or overlaps another"
            )
        }
        E::TensorInvalidInfo | E::InvalidTensorView(..) | E::ValidationOverflow => {
            "corrupt: a tensor's shape does not match its bytes".into()
        }
        E::TensorNotFound(name) => format!("no tensor `{name}`"),
        E::IoError(io) => format!("cannot be read: {io}"),
    }
}

/// Reads every f32 tensor of a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<Loaded, RuntimeError> {
    let bytes = std::fs::read(path)
        .map_err(|e| RuntimeError::Io(format!("cannot read {}: {e}", path.display())))?;
    let bad = |e: safetensors::SafeTensorError| {
        RuntimeError::Checkpoint(format!(
            "{}: {}",
            path.display(),
            unreadable(&e, bytes.len())
        ))
    };
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(bad)?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(bad)?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(RuntimeError::Checkpoint(format!(
                "tensor `{name}` is {:?}, expected F32",
                view.dtype()
            )));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name, (view.shape().to_vec(), data));
    }
    let meta = header.metadata().clone().unwrap_or_default();
    Ok(Loaded { tensors, meta })
}
