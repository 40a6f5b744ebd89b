//! One evaluation on given tensors: a checked model, optional weights (a tdspec checkpoint or a
//! diffusers `UNet2DModel` file) and a safetensors file with `x` (f32, `[B, C, H, W]`) and `t`
//! (f32, `[B]`; integer values for step time) in; the output `y` written to a safetensors file
//! out (and, for a class-conditional model, its labels as f32 `[B]` under the label input's
//! name). What `tdspec run` does, so anyone can compare tdspec with their own PyTorch model.

use crate::checkpoint::load_eval_params;
use crate::params::{read_safetensors, write_safetensors, Params};
use crate::train::forward_labeled;
use crate::RuntimeError;
use dfdx::tensor::Cpu;
use std::collections::HashMap;
use std::path::Path;
use tdspec_compiler::ir::{ModelIr, TimeKind};

/// What one evaluation did.
#[derive(Debug, Clone)]
pub struct Once {
    pub batch: usize,
    pub out_shape: Vec<usize>,
    pub trained: bool,
}

fn bad(msg: String) -> RuntimeError {
    RuntimeError::Checkpoint(msg)
}

/// Reads `x` and `t` from `input`, checks them against the model, evaluates (eval mode:
/// dropout off, BatchNorm on its running statistics) and writes `y` to `output` atomically.
pub fn run_once(
    m: &ModelIr,
    checkpoint: Option<&Path>,
    input: &Path,
    output: &Path,
    seed: u64,
) -> Result<Once, RuntimeError> {
    let loaded = read_safetensors(input)?;
    let name = input.display();
    let (xs, x) = loaded
        .tensors
        .get("x")
        .ok_or_else(|| bad(format!("{name}: no tensor `x` (f32, [B, C, H, W])")))?;
    let (ts, t) = loaded
        .tensors
        .get("t")
        .ok_or_else(|| bad(format!("{name}: no tensor `t` (f32, [B])")))?;
    let want = [m.input.channels, m.input.height, m.input.width];
    if xs.len() != 4 || xs[1..] != want || xs[0] == 0 {
        return Err(bad(format!(
            "{name}: `x` is {xs:?}, the model takes [B, {}, {}, {}]",
            want[0], want[1], want[2]
        )));
    }
    let b = xs[0];
    if ts.as_slice() != [b] {
        return Err(bad(format!(
            "{name}: `t` is {ts:?}, expected [{b}] (one time per sample)"
        )));
    }
    if let Some(v) = x.iter().find(|v| !v.is_finite()) {
        return Err(bad(format!("{name}: `x` holds {v}")));
    }
    for &v in t {
        let ok = match m.time.kind {
            TimeKind::Steps(n) => v.fract() == 0.0 && v >= 0.0 && (v as usize) < n,
            TimeKind::Continuous => match m.time.range {
                Some((lo, hi)) => (lo as f32..=hi as f32).contains(&v),
                None => v.is_finite(),
            },
        };
        if !ok {
            let range = match m.time.kind {
                TimeKind::Steps(n) => format!("integer steps 0..{n}"),
                TimeKind::Continuous => match m.time.range {
                    Some((lo, hi)) => format!("values in its declared range [{lo}, {hi}]"),
                    None => "finite values".into(),
                },
            };
            return Err(bad(format!(
                "{name}: `t` holds {v}; the model takes {range}"
            )));
        }
    }
    // A class-conditional model: one label per sample, in the tensor named as its input.
    let mut labels = Vec::new();
    if let Some(lb) = &m.label {
        let (ls, l) = loaded.tensors.get(&lb.name).ok_or_else(|| {
            bad(format!(
                "{name}: no tensor `{}` (f32, [B]: the class labels 0..{})",
                lb.name, lb.classes
            ))
        })?;
        if ls.as_slice() != [b] {
            return Err(bad(format!(
                "{name}: `{}` is {ls:?}, expected [{b}] (one label per sample)",
                lb.name
            )));
        }
        for &v in l {
            if v.fract() != 0.0 || !(0.0..lb.classes as f32).contains(&v) {
                return Err(bad(format!(
                    "{name}: `{}` holds {v}; the model takes whole labels 0..{}",
                    lb.name, lb.classes
                )));
            }
            labels.push(v as usize);
        }
    }
    crate::lower::ensure_fits(m, b)?;
    let dev = Cpu::default();
    let params = match checkpoint {
        Some(ck) => load_eval_params(m, &dev, ck)?,
        None => Params::init(m, &dev, seed),
    };
    let (y, _) = forward_labeled(m, &params, x.clone(), b, t, &labels)?;
    let out_shape = m.graph.nodes[m.output].shape.dims(b);
    write_safetensors(
        output,
        &[("y".to_string(), out_shape.clone(), y)],
        HashMap::from([("model".to_string(), m.name.clone())]),
    )?;
    Ok(Once {
        batch: b,
        out_shape,
        trained: checkpoint.is_some(),
    })
}
