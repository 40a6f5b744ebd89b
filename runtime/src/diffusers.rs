//! diffusers' parameter names: the tensors of a `UNet2DModel` checkpoint
//! (`diffusion_pytorch_model.safetensors`) in; the same tensors under the names tdspec's
//! `unet(...)` gives them out, so `--checkpoint` reads weights people trained with diffusers.
//!
//! The layout: `time_embedding.linear_{1,2}` are `temb.{1,3}`, `conv_in` is `head`,
//! `down_blocks.i.resnets.j` is `down.i.resj` (`time_emb_proj` is `temb_proj`,
//! `conv_shortcut` is `nin_shortcut`), `down_blocks.i.downsamplers.0.conv` is `down.i.down`,
//! `mid_block.resnets.j` / `.attentions.0` are `mid.resj` / `mid.attn`, diffusers' up blocks run
//! from the lowest resolution (`up_blocks.k` is tdspec's `up.{L-1-k}`, L levels) with
//! `upsamplers.0.conv` as `up.i.up.1`, and `conv_norm_out` / `conv_out` are `tail.0` /
//! `tail.2`. An attention's `group_norm` is its `norm`; `to_q`, `to_k`, `to_v` (or the older
//! `query`, `key`, `value`), linear maps over channels, stack into the 1x1 `qkv` conv, and
//! `to_out.0` (`proj_attn`) is `proj`.

use crate::RuntimeError;
use std::collections::HashMap;

/// A tensor: (shape, row-major data).
pub type Tensor = (Vec<usize>, Vec<f32>);

/// Tensors by name.
pub type Named = HashMap<String, Tensor>;

/// Whether these tensors carry diffusers' `UNet2DModel` names.
pub fn is_diffusers(t: &Named) -> bool {
    t.keys().any(|k| k.starts_with("conv_in.")) && t.keys().any(|k| k.starts_with("down_blocks."))
}

fn resnet_part(p: &str) -> &str {
    match p {
        "time_emb_proj" => "temb_proj",
        "conv_shortcut" => "nin_shortcut",
        other => other,
    }
}

/// tdspec's name for a diffusers name, or which q/k/v slot of which attention it fills.
enum Target {
    Name(String),
    /// A linear map over channels that tdspec holds as a 1x1 conv.
    Conv1x1(String),
    Qkv(String, usize),
}

fn target(name: &str, levels: usize) -> Option<Target> {
    let parts: Vec<&str> = name.split('.').collect();
    let tail = |from: usize| parts[from..].join(".");
    let attention = |base: String, rest: &[&str]| -> Option<Target> {
        let (head, leaf) = match rest {
            ["to_out", "0", leaf] => ("proj", *leaf),
            [head, leaf] => (*head, *leaf),
            _ => return None,
        };
        let slot = match head {
            "to_q" | "query" => Some(0),
            "to_k" | "key" => Some(1),
            "to_v" | "value" => Some(2),
            _ => None,
        };
        Some(match (slot, head) {
            (Some(s), _) => Target::Qkv(format!("{base}.qkv.{leaf}"), s),
            (None, "group_norm") => Target::Name(format!("{base}.norm.{leaf}")),
            (None, "proj" | "proj_attn") => Target::Conv1x1(format!("{base}.proj.{leaf}")),
            _ => return None,
        })
    };
    match parts.as_slice() {
        ["time_embedding", "linear_1", ..] => Some(Target::Name(format!("temb.1.{}", tail(2)))),
        ["time_embedding", "linear_2", ..] => Some(Target::Name(format!("temb.3.{}", tail(2)))),
        ["conv_in", ..] => Some(Target::Name(format!("head.{}", tail(1)))),
        // A learned time table (`time_embedding_type = "learned"`) or Fourier frequencies.
        ["time_proj", "weight"] => Some(Target::Name("temb.0.weight".into())),
        // The class table added after the time MLP (`num_class_embeds`).
        ["class_embedding", "weight"] => Some(Target::Name("temb.4.weight".into())),
        ["conv_norm_out", ..] => Some(Target::Name(format!("tail.0.{}", tail(1)))),
        ["conv_out", ..] => Some(Target::Name(format!("tail.2.{}", tail(1)))),
        [side @ ("down_blocks" | "up_blocks"), i, kind, rest @ ..] => {
            let i: usize = i.parse().ok()?;
            let (prefix, level) = match *side {
                "down_blocks" => ("down", i),
                _ => ("up", levels.checked_sub(i + 1)?),
            };
            match (*kind, rest) {
                ("resnets", [j, p, leaf]) => Some(Target::Name(format!(
                    "{prefix}.{level}.res{j}.{}.{leaf}",
                    resnet_part(p)
                ))),
                ("attentions", [j, rest @ ..]) => {
                    attention(format!("{prefix}.{level}.attn{j}"), rest)
                }
                ("downsamplers", ["0", "conv", leaf]) => {
                    Some(Target::Name(format!("down.{level}.down.{leaf}")))
                }
                ("upsamplers", ["0", "conv", leaf]) => {
                    Some(Target::Name(format!("up.{level}.up.1.{leaf}")))
                }
                _ => None,
            }
        }
        ["mid_block", "resnets", j, p, leaf] => Some(Target::Name(format!(
            "mid.res{j}.{}.{leaf}",
            resnet_part(p)
        ))),
        ["mid_block", "attentions", "0", rest @ ..] => attention("mid.attn".into(), rest),
        _ => None,
    }
}

/// Renames diffusers' tensors to tdspec's. A tensor with no tdspec counterpart is an error
/// naming it (a partial load would run a different network).
pub fn rename(t: &Named) -> Result<Named, RuntimeError> {
    let levels = t
        .keys()
        .filter_map(|k| k.strip_prefix("down_blocks."))
        .filter_map(|k| k.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |m| m + 1);
    let mut out = Named::new();
    let mut qkv: HashMap<String, [Option<&Tensor>; 3]> = HashMap::new();
    let mut names: Vec<&String> = t.keys().collect();
    names.sort();
    for name in names {
        let v = &t[name];
        match target(name, levels) {
            Some(Target::Conv1x1(n)) if v.0.len() == 2 => {
                out.insert(n, (vec![v.0[0], v.0[1], 1, 1], v.1.clone()));
            }
            Some(Target::Name(n) | Target::Conv1x1(n)) => {
                out.insert(n, v.clone());
            }
            Some(Target::Qkv(n, slot)) => qkv.entry(n).or_default()[slot] = Some(v),
            None => {
                return Err(RuntimeError::Checkpoint(format!(
                    "diffusers tensor `{name}` has no counterpart in tdspec's `unet(...)` layout"
                )))
            }
        }
    }
    for (n, slots) in qkv {
        let [Some(q), Some(k), Some(v)] = slots else {
            return Err(RuntimeError::Checkpoint(format!(
                "`{n}`: diffusers' attention lacks one of to_q, to_k, to_v"
            )));
        };
        let mut shape = q.0.clone();
        shape[0] *= 3;
        if shape.len() == 2 {
            shape.extend([1, 1]);
        }
        let data = [q.1.as_slice(), k.1.as_slice(), v.1.as_slice()].concat();
        out.insert(n, (shape, data));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(names: &[(&str, Vec<usize>)]) -> Named {
        names
            .iter()
            .map(|(n, s)| {
                let len = s.iter().product();
                (n.to_string(), (s.clone(), vec![1.0; len]))
            })
            .collect()
    }

    #[test]
    fn names_map_onto_the_unet_layout() {
        let n = t(&[
            ("conv_in.weight", vec![8, 3, 3, 3]),
            ("time_embedding.linear_2.bias", vec![16]),
            ("down_blocks.0.resnets.1.time_emb_proj.weight", vec![8, 16]),
            ("down_blocks.1.downsamplers.0.conv.weight", vec![8, 8, 3, 3]),
            ("down_blocks.1.attentions.0.to_q.weight", vec![8, 8]),
            ("down_blocks.1.attentions.0.to_k.weight", vec![8, 8]),
            ("down_blocks.1.attentions.0.to_v.weight", vec![8, 8]),
            ("down_blocks.1.attentions.0.to_out.0.weight", vec![8, 8]),
            ("down_blocks.1.attentions.0.group_norm.bias", vec![8]),
            (
                "up_blocks.0.resnets.2.conv_shortcut.weight",
                vec![8, 16, 1, 1],
            ),
            ("up_blocks.0.upsamplers.0.conv.bias", vec![8]),
            ("mid_block.attentions.0.query.bias", vec![8]),
            ("mid_block.attentions.0.key.bias", vec![8]),
            ("mid_block.attentions.0.value.bias", vec![8]),
            ("conv_norm_out.weight", vec![8]),
        ]);
        assert!(is_diffusers(&n));
        let r = rename(&n).unwrap();
        for (name, shape) in [
            ("head.weight", vec![8, 3, 3, 3]),
            ("temb.3.bias", vec![16]),
            ("down.0.res1.temb_proj.weight", vec![8, 16]),
            ("down.1.down.weight", vec![8, 8, 3, 3]),
            ("down.1.attn0.qkv.weight", vec![24, 8, 1, 1]),
            ("down.1.attn0.proj.weight", vec![8, 8, 1, 1]),
            ("down.1.attn0.norm.bias", vec![8]),
            // Two levels: diffusers' up block 0 is the lowest resolution, tdspec's up.1.
            ("up.1.res2.nin_shortcut.weight", vec![8, 16, 1, 1]),
            ("up.1.up.1.bias", vec![8]),
            ("mid.attn.qkv.bias", vec![24]),
            ("tail.0.weight", vec![8]),
        ] {
            assert_eq!(r.get(name).map(|v| &v.0), Some(&shape), "{name}");
        }
        assert_eq!(r.len(), 11);
    }

    #[test]
    fn unknown_tensors_and_incomplete_attention_are_errors() {
        let e = rename(&t(&[
            ("conv_in.weight", vec![1]),
            ("add_embedding.linear_1.weight", vec![1]),
        ]))
        .unwrap_err();
        assert!(
            e.to_string().contains("add_embedding.linear_1.weight"),
            "{e}"
        );
        let e = rename(&t(&[("mid_block.attentions.0.to_q.weight", vec![2, 2])])).unwrap_err();
        assert!(e.to_string().contains("to_q, to_k, to_v"), "{e}");
    }
}
