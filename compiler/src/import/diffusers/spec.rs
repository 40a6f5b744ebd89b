//! Writing the spec of a config: it reads like the reference specs (a named residual block,
//! `unet(...)`, a header naming the source), and every piece records the config key it comes
//! from so findings about it point at that key.

use super::config::{TimeEmbedding, UNetConfig};
use crate::ast::Span;

/// A spec being written, with the config key each piece comes from.
pub(super) struct Writer {
    pub(super) out: String,
    pub(super) regions: Vec<(Span, &'static str)>,
}

impl Writer {
    fn put(&mut self, text: &str) {
        self.out.push_str(text);
    }
    fn from(&mut self, key: &'static str, text: &str) {
        let start = self.out.len();
        self.out.push_str(text);
        self.regions.push((Span::new(start, self.out.len()), key));
    }
}

/// A number as the spec writes it: `1e-6`, `0.1`, `16`.
fn num(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else if x.abs() < 1e-3 {
        let s = format!("{x:e}");
        s.replace("e-0", "e-")
    } else {
        format!("{x}")
    }
}

fn list(v: &[usize]) -> String {
    let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", items.join(", "))
}

/// The spec for a config, named `model`; `source` names the config in its header comment.
pub(super) fn write_spec(c: &UNetConfig, model: &str, source: &str) -> Writer {
    let mut w = Writer {
        out: String::new(),
        regions: Vec::new(),
    };
    let levels = c.block_out_channels.len();
    let base = c.block_out_channels[0];
    let res: Vec<usize> = (0..levels).map(|i| c.sample_size >> i).collect();
    let at = |flags: &[bool]| -> Vec<usize> {
        flags
            .iter()
            .zip(&res)
            .filter(|(f, _)| **f)
            .map(|(_, r)| *r)
            .collect()
    };
    let (down_at, up_at) = (at(&c.down_attention), at(&c.up_attention));
    let words = |v: &[usize]| match v.len() {
        0 => "nowhere".to_string(),
        _ => v
            .iter()
            .map(|r| format!("{r}x{r}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let attention_words = if down_at == up_at {
        format!("attention at {}", words(&down_at))
    } else {
        format!(
            "attention at {} on the way down and {} on the way up",
            words(&down_at),
            words(&up_at)
        )
    };
    let eps = if c.norm_eps == 1e-5 {
        String::new()
    } else {
        format!(", eps = {}", num(c.norm_eps))
    };
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let header = format!(
        "The diffusers UNet2DModel of {source}, imported by `tdspec import diffusers`: {levels} \
         level{} ({} to {}), {} residual block{} per level, {attention_words}{}; GroupNorm({}) \
         with eps {}; the time embedding {}.",
        plural(levels),
        res[0],
        res[levels - 1],
        c.layers_per_block,
        plural(c.layers_per_block),
        if c.add_attention {
            ", and in the middle"
        } else {
            ""
        },
        c.norm_num_groups,
        num(c.norm_eps),
        if c.scale_shift {
            "scales and shifts the features after norm2 (\"scale_shift\")"
        } else {
            "is added as a per-channel offset before norm2 (\"default\")"
        }
    );
    let mut header = header;
    if c.time_embedding == TimeEmbedding::Fourier {
        header.push_str(
            " Time is a noise level: Gaussian Fourier features of its log (frequencies 16 N(0, 1), \
             frozen), and the output is divided by it.",
        );
    }
    w.put(&comment(&header, 96));
    w.put(&format!("model {model} {{\n    "));
    w.from(
        "sample_size",
        &format!(
            "input x: image[{}, {}, {}]",
            c.in_channels, c.sample_size, c.sample_size
        ),
    );
    w.put("\n    ");
    let fourier = c.time_embedding == TimeEmbedding::Fourier;
    if fourier {
        // Not part of the UNet config: the noise levels of diffusers' ScoreSdeVeScheduler.
        w.from(
            "time_embedding_type",
            "time  t: continuous(0.01, 1348), per_sample",
        );
    } else {
        w.from(
            "num_train_timesteps",
            &format!("time  t: step({}), per_sample", c.num_train_timesteps),
        );
    }
    if let Some(n) = c.num_class_embeds {
        w.put("\n    ");
        w.from(
            "num_class_embeds",
            &format!("input class_labels: label[{n}]"),
        );
    }
    w.put("\n    ");
    w.from(
        "norm_num_groups",
        &format!("norm  = group({}{eps})", c.norm_num_groups),
    );
    w.put("\n\n    embed temb = ");
    let mut sin = format!("sinusoidal({base}");
    if c.flip_sin_to_cos {
        sin.push_str(", flip = true");
    }
    if c.freq_shift != 1.0 {
        sin.push_str(&format!(", shift = {}", num(c.freq_shift)));
    }
    sin.push(')');
    match c.time_embedding {
        TimeEmbedding::Positional => {}
        TimeEmbedding::Learned => sin = format!("learned({base})"),
        TimeEmbedding::Fourier => sin = format!("fourier({}, scale = 16)", 2 * base),
    }
    w.from("time_embedding_type", &sin);
    w.put(" | ");
    let t = c.time_embedding_dim;
    w.from(
        "time_embedding_dim",
        &format!("linear({t}) | silu | linear({t})"),
    );
    if c.num_class_embeds.is_some() {
        // On a line of its own under the first stage's `|` when the line would pass 100
        // columns (as `tdspec fmt` lays it out).
        let stage = "class_embed(class_labels)";
        let line_start = w.out.rfind('\n').map_or(0, |i| i + 1);
        let line = &w.out[line_start..];
        let bar = line.find(" | ").map_or(4, |i| i + 1);
        if line.len() + 3 + stage.len() > crate::fmt::WIDTH {
            w.put(&format!("\n{}| ", " ".repeat(bar)));
        } else {
            w.put(" | ");
        }
        w.from("num_class_embeds", stage);
    }
    let act = c.act;
    let drop = if c.dropout > 0.0 {
        format!("dropout({}) | ", num(c.dropout))
    } else {
        String::new()
    };
    w.put("\n\n    block res(out)(h) {\n        a = h | ");
    w.from("norm_num_groups", "norm as norm1");
    w.put(&format!(" | {act} | "));
    w.from("block_out_channels", "conv3(out) as conv1");
    if c.scale_shift {
        w.put("\n        a = a | ");
        w.from("norm_num_groups", "norm as norm2");
        w.put(" | ");
        w.from(
            "resnet_time_scale_shift",
            &format!("scale_shift(temb | {act}) as temb_proj"),
        );
        w.put(&format!(" | {act} | {drop}"));
    } else {
        w.put("\n        a = a + ");
        w.from(
            "resnet_time_scale_shift",
            &format!("inject(temb | {act}) as temb_proj"),
        );
        w.put("\n        a = a | ");
        w.from("norm_num_groups", "norm as norm2");
        w.put(&format!(" | {act} | {drop}"));
    }
    w.from("block_out_channels", "conv3(out) as conv2");
    w.put("\n        return a + ");
    w.from("block_out_channels", "shortcut(h, out) as nin_shortcut");
    w.put("\n    }\n\n    ");
    let mult: Vec<usize> = c.block_out_channels.iter().map(|x| x / base).collect();
    let start = w.out.len();
    w.put(&format!(
        "unet(base = {base}, mult = {}, blocks = {}, resblock = res",
        list(&mult),
        c.layers_per_block
    ));
    let mut args: Vec<(&'static str, String)> = Vec::new();
    if down_at == up_at {
        if !down_at.is_empty() {
            args.push((
                "down_block_types",
                format!("attention = {}", list(&down_at)),
            ));
        }
    } else {
        args.push((
            "down_block_types",
            format!("down_attention = {}", list(&down_at)),
        ));
        args.push(("up_block_types", format!("up_attention = {}", list(&up_at))));
    }
    if c.out_channels != c.in_channels {
        args.push(("out_channels", format!("out = {}", c.out_channels)));
    }
    if c.downsample_padding == 0 {
        args.push(("downsample_padding", "downsample_padding = 0".into()));
    }
    if fourier {
        args.push(("time_embedding_type", "divide_by_time = true".into()));
    }
    if let Some(d) = c.attention_head_dim {
        args.push(("attention_head_dim", format!("head_dim = {d}")));
    }
    // The middle attention's norm: `attn_norm_num_groups`, else the resnets' groups with
    // "default" blocks and none with "scale_shift".
    match (c.add_attention, c.attn_norm_num_groups, c.scale_shift) {
        (false, _, _) => args.push(("add_attention", "mid_attention = none".into())),
        (true, Some(g), _) => args.push((
            "attn_norm_num_groups",
            format!("mid_attention = attention(norm = group({g}{eps}))"),
        )),
        (true, None, true) => args.push((
            "resnet_time_scale_shift",
            "mid_attention = attention(norm = none)".into(),
        )),
        (true, None, false) => {}
    }
    let mut line = w.out.len() - start;
    for (key, text) in args {
        if line + text.len() + 2 > 96 {
            w.put(",\n         ");
            line = 9;
        } else {
            w.put(", ");
            line += 2;
        }
        w.from(key, &text);
        line += text.len();
    }
    w.put(")");
    w.regions
        .push((Span::new(start, w.out.len()), "block_out_channels"));
    let n = c.num_train_timesteps;
    if fourier {
        w.put(
            "\n\n    // No task: diffusers trains this UNet on noise levels with a VE score SDE (its output\n    \
             // divided by the noise level is the score); tdspec's denoise task runs on steps.\n}\n",
        );
    } else if c.out_channels == c.in_channels {
        w.put(&format!(
            "\n\n    // The scheduler is not part of a UNet2DModel config: DDPM's.\n    \
             task  denoise(schedule = linear(1e-4, 0.02, {n}), predict = eps)\n}}\n"
        ));
    } else {
        w.put(&format!(
            "\n\n    // No task: the UNet has {} output channels for {} input channels (e.g. a learned\n    \
             // variance beside eps), and a denoise task predicts one tensor of the input's shape.\n}}\n",
            c.out_channels, c.in_channels
        ));
    }
    w
}

/// `text` as `// ` comment lines of at most `width` characters.
fn comment(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from("//");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > width && line.len() > 2 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("//");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// A model name from a config's file name: `ddpm-cifar10-32.config.json` is `ddpm_cifar10_32`.
pub fn model_name(stem: &str) -> String {
    let stem = stem.strip_suffix(".json").unwrap_or(stem);
    let stem = stem.strip_suffix(".config").unwrap_or(stem);
    let mut s: String = stem
        .chars()
        .map(|ch| match ch {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' => ch,
            _ => '_',
        })
        .collect();
    if s.is_empty() || s.starts_with(|ch: char| ch.is_ascii_digit()) {
        s.insert_str(0, "unet_");
    }
    s
}
