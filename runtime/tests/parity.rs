//! Parity with PyTorch on identical weights: the ODE-Net function and the DDPM ResBlock, written
//! as tdspec specs, against outputs exported by the shared PyTorch reference script
//! (tests/fixtures/torch/README.md). Outputs must agree to 1e-4 relative.

use dfdx::prelude::*;
use std::collections::HashMap;
use tdspec_compiler::sema::check_source;
use tdspec_runtime::exec::{Exec, Value};
use tdspec_runtime::params::{read_safetensors, Params};

fn fixture(name: &str) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let path = format!("{}/tests/fixtures/torch/{name}", env!("CARGO_MANIFEST_DIR"));
    read_safetensors(std::path::Path::new(&path))
        .expect("fixture")
        .tensors
}

/// Maps `param.b1.0.weight` to `{prefix}b1_0.weight`: dots inside the PyTorch layer path become
/// underscores (spec labels are identifiers); ConcatConv's inner `.l` module disappears.
fn rename(torch: &str, prefix: &str) -> String {
    let p = torch.strip_prefix("param.").unwrap_or(torch);
    let (layer, tensor) = p.rsplit_once('.').expect("layer.tensor");
    format!(
        "{prefix}{}.{tensor}",
        layer.replace(".l", "").replace('.', "_")
    )
}

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let num: f32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f32>()
        .sqrt();
    let den: f32 = b.iter().map(|y| y * y).sum::<f32>().sqrt();
    num / den.max(1e-12)
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
        / scale
}

fn run(
    src: &str,
    fx: &HashMap<String, (Vec<usize>, Vec<f32>)>,
    prefix: &str,
    input: &str,
    t: Vec<f32>,
    overrides: &[(&str, &str)],
) -> Vec<f32> {
    let models = check_source(src).unwrap_or_else(|d| panic!("{d:#?}"));
    let m = &models[0];
    let dev = Cpu::default();
    let mut params = Params::init(m, &dev, 0);
    let named: HashMap<String, (Vec<usize>, Vec<f32>)> = fx
        .iter()
        .filter(|(k, _)| k.starts_with("param."))
        .map(|(k, v)| (rename(k, prefix), v.clone()))
        .collect();
    params.load_named(&named).expect("weights load by name");
    let (shape, data) = &fx[input];
    let x: Tensor<(usize, usize, usize, usize), f32, Cpu> =
        dev.tensor_from_vec(data.clone(), (shape[0], shape[1], shape[2], shape[3]));
    let mut ex = Exec::new(&params, false);
    for (node, key) in overrides {
        let (s, d) = &fx[*key];
        ex.overrides.insert(
            node.to_string(),
            Value::Vector(dev.tensor_from_vec(d.clone(), (s[0], s[1]))),
        );
    }
    let (vals, _) = ex
        .run(&m.graph, &[m.output], Value::Image(x), &t, NoneTape)
        .expect("forward");
    vals[m.output].as_ref().expect("output").to_vec()
}

#[test]
fn odenet_function_matches_pytorch() {
    let fx = fixture("odenet_func.safetensors");
    let src = "model f {
        input h: image[64, 6, 6]
        time  t: continuous, shared
        norm  = group(32)
        return h | norm as n1 | relu | conv3(64, time = concat) as c1
                 | norm as n2 | relu | conv3(64, time = concat) as c2 | norm as n3
    }";
    let t = fx["input.t"].1[0];
    let out = run(src, &fx, "", "input.h", vec![t; 4], &[]);
    let want = &fx["output"].1;
    let (e, m) = (rel_err(&out, want), max_rel(&out, want));
    eprintln!("relative L2 error {e:.2e}, max abs error / max abs {m:.2e}");
    assert!(e < 1e-4 && m < 1e-4, "relative error {e}, max {m}");
}

#[test]
fn ddpm_resblock_matches_pytorch() {
    let fx = fixture("ddpm_resblock.safetensors");
    let src = "model r {
        input x: image[64, 8, 8]
        time  t: step(1000), per_sample
        norm  = group(32)
        embed temb = sinusoidal(256)
        block res(out)(h) {
            a = h | norm as b1_0 | silu | conv3(out) as b1_2
            a = a + inject(temb | silu) as tp_1
            a = a | norm as b2_0 | silu | dropout(0.1) | conv3(out) as b2_3
            return a + shortcut(h, out) as sc
        }
        return x | res(128) as blk
    }";
    // The block's parameters are named under its label `blk`.
    let out = run(
        src,
        &fx,
        "blk.",
        "input.x",
        vec![0.0; 2],
        &[("temb.0", "input.temb")],
    );
    let want = &fx["output"].1;
    let (e, m) = (rel_err(&out, want), max_rel(&out, want));
    eprintln!("relative L2 error {e:.2e}, max abs error / max abs {m:.2e}");
    assert!(e < 1e-4 && m < 1e-4, "relative error {e}, max {m}");
}
