//! The plain layers: `linear`, the activations, `dropout`, `avgpool`, `upsample`,
//! `attention`, `flatten`, `sinusoidal`, and `concat` used as a stage (an error).

use super::builder::{conv_out, Layer};
use crate::ast::Span;
use crate::diagnostics::Diagnostic;
use crate::ir::{Act, NodeId, Op, Shape, TimeKind};
use crate::sema::state::{NormSpec, Sema};

/// `linear(out, bias)`: [B, D] -> [B, out].
pub(super) fn linear(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let out = s.positive(a[0]?, "the number of output features")?;
    let bias = match a[1] {
        Some(e) => s.choice(e, "bias setting", &["true", "false"])? == "true",
        None => true,
    };
    let Shape::Vector { d } = shape else {
        s.err(
            Diagnostic::error("E207", format!("`linear` needs a vector, found {shape}"))
                .with_primary(c.span, "input is not [B, D]")
                .with_help(if matches!(shape, Shape::Image { .. }) {
                    "insert `avgpool | flatten` (or `flatten`) before it"
                } else {
                    "embed the time first, e.g. `sinusoidal(128) | linear(512)`"
                }),
        );
        return None;
    };
    let op = Op::Linear {
        din: d,
        dout: out,
        bias,
    };
    Some(s.push_raw(op, vec![input], Shape::Vector { d: out }, name, c.span))
}

/// `relu`, `silu`, `tanh`, `softplus`: elementwise, any shape but the raw time input.
pub(super) fn activation(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let word = def.name;
    s.bind_op(def, c)?;
    if shape == Shape::Time {
        return s.needs_image(c, shape);
    }
    let act = match word {
        "relu" => Act::Relu,
        "silu" => Act::Silu,
        "tanh" => Act::Tanh,
        _ => Act::Softplus,
    };
    Some(s.push_raw(Op::Act { act }, vec![input], shape, name, c.span))
}

/// `dropout(p)`, p in [0, 1).
pub(super) fn dropout(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let range = ("a dropout probability", "[0, 1)");
    let p = s.number_in(a[0]?, "the dropout probability", range, |p| {
        (0.0..1.0).contains(&p)
    })?;
    Some(s.push_raw(Op::Dropout { p }, vec![input], shape, name, c.span))
}

/// `avgpool`: global average to [B, C, 1, 1]; `avgpool(k, stride)`: a k x k window.
pub(super) fn avgpool(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let Shape::Image { c: ch, h, w } = shape else {
        return s.needs_image(c, shape);
    };
    match a[0] {
        None => Some(s.push_raw(
            Op::GlobalAvgPool,
            vec![input],
            Shape::Image { c: ch, h: 1, w: 1 },
            name,
            c.span,
        )),
        Some(e) => {
            let k = s.positive(e, "the pooling window")?;
            let stride = a[1]
                .map(|e| s.positive(e, "the stride"))
                .unwrap_or(Some(k))?;
            match (conv_out(h, k, stride, 0), conv_out(w, k, stride, 0)) {
                (Some(ho), Some(wo)) => Some(s.push_raw(
                    Op::AvgPool { k, stride },
                    vec![input],
                    Shape::Image {
                        c: ch,
                        h: ho,
                        w: wo,
                    },
                    name,
                    c.span,
                )),
                _ => {
                    s.err(
                        Diagnostic::error(
                            "E206",
                            format!("a {k}x{k} pooling window does not fit a {h}x{w} input"),
                        )
                        .with_primary(c.span, "the output would be empty"),
                    );
                    None
                }
            }
        }
    }
}

/// `upsample(factor)`: nearest-neighbour, H and W times `factor`.
pub(super) fn upsample(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let f = a[0]
        .map(|e| s.positive(e, "the upsampling factor"))
        .unwrap_or(Some(2))?;
    let Shape::Image { c: ch, h, w } = shape else {
        return s.needs_image(c, shape);
    };
    if h.saturating_mul(f) > 1 << 16 || w.saturating_mul(f) > 1 << 16 {
        s.err(
            Diagnostic::error("E206", "the upsampled image would be too large")
                .with_primary(c.span, "too large"),
        );
        return None;
    }
    Some(s.push_raw(
        Op::Upsample { factor: f },
        vec![input],
        Shape::Image {
            c: ch,
            h: h * f,
            w: w * f,
        },
        name,
        c.span,
    ))
}

/// `attention(heads)`: DDPM self-attention with the model's default normalization.
pub(super) fn attention(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let Shape::Image { c: ch, .. } = shape else {
        return s.needs_image(c, shape);
    };
    let heads = match (a[0], a[1]) {
        (Some(h), Some(d)) => {
            s.err(
                Diagnostic::error("E105", "`attention` takes `heads` or `head_dim`, not both")
                    .with_primary(d.span, "remove one")
                    .with_secondary(h.span, "the number of heads set here"),
            );
            return None;
        }
        (Some(e), None) => s.positive(e, "the number of heads")?,
        (None, Some(e)) => {
            let d = s.positive(e, "the channels per head")?;
            if ch % d != 0 {
                s.err(
                    Diagnostic::error(
                        "E203",
                        format!("{ch} channels cannot be split into heads of {d}"),
                    )
                    .with_primary(e.span, "the head size must divide the channels"),
                );
                return None;
            }
            ch / d
        }
        (None, None) => 1,
    };
    if ch % heads != 0 {
        s.err(
            Diagnostic::error(
                "E203",
                format!("{ch} channels cannot be split into {heads} heads"),
            )
            .with_primary(c.span, "heads must divide the channels"),
        );
        return None;
    }
    if let Some(e) = a[2] {
        if e.as_ident() == Some("none") {
            let op = Op::Attention {
                channels: ch,
                heads,
                norm: None,
                eps: 1e-5,
            };
            return Some(s.push_raw(op, vec![input], shape, name, c.span));
        }
        let spec = s.norm_spec(e)?;
        if !spec.affine() {
            s.err(non_affine_attention(e.span, None));
            return None;
        }
        if matches!(spec, NormSpec::PerPosition(_)) {
            s.err(per_position_attention(e.span, None));
            return None;
        }
        let kind = s.resolve_norm_kind(spec, ch, e.span, None)?;
        let op = Op::Attention {
            channels: ch,
            heads,
            norm: Some(kind),
            eps: spec.eps(),
        };
        return Some(s.push_raw(op, vec![input], shape, name, c.span));
    }
    let Some((spec, decl)) = s.default_norm else {
        s.err(
            Diagnostic::error(
                "E111",
                "`attention` normalizes its input with the default normalization",
            )
            .with_primary(c.span, "but the model sets none")
            .with_help("set one at model level, e.g. `norm = group(32)`"),
        );
        return None;
    };
    if !spec.affine() {
        s.err(non_affine_attention(c.span, Some(decl)));
        return None;
    }
    if matches!(spec, NormSpec::PerPosition(_)) {
        s.err(per_position_attention(c.span, Some(decl)));
        return None;
    }
    let kind = s.resolve_norm_kind(spec, ch, c.span, Some(decl))?;
    let op = Op::Attention {
        channels: ch,
        heads,
        norm: Some(kind),
        eps: spec.eps(),
    };
    let id = s.push_raw(op, vec![input], shape, name, c.span);
    s.mark_norm_from_setting(id);
    Some(id)
}

/// An attention's inner norm learns its scale and shift (DDPM's and diffusers' do).
fn non_affine_attention(span: Span, decl: Option<Span>) -> Diagnostic {
    let d = Diagnostic::error("E105", "an attention's norm is affine")
        .with_primary(span, "`affine = false` here")
        .with_help("give the attention a norm of its own, e.g. `attention(norm = group(8))`");
    match decl {
        Some(s) => d.with_secondary(s, "the model's default norm is not affine"),
        None => d,
    }
}

/// An attention's inner norm reduces over whole feature maps; a per-position layer norm goes
/// before an attention without one.
fn per_position_attention(span: Span, decl: Option<Span>) -> Diagnostic {
    let d = Diagnostic::error(
        "E105",
        "an attention's norm cannot be `layer(over = channels)`",
    )
    .with_primary(span, "a per-position layer norm here")
    .with_help(
        "normalize first and give the attention none: \
         `layer(over = channels) | attention(norm = none)`",
    );
    match decl {
        Some(s) => d.with_secondary(s, "the model's default norm"),
        None => d,
    }
}

/// `flatten`: [B, C, H, W] -> [B, C·H·W].
pub(super) fn flatten(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    s.bind_op(def, c)?;
    match shape {
        Shape::Image { .. } | Shape::Vector { .. } => Some(s.push_raw(
            Op::Flatten,
            vec![input],
            Shape::Vector { d: shape.numel() },
            name,
            c.span,
        )),
        Shape::Time => s.needs_image(c, shape),
    }
}

/// The size of a time embedding (`sinusoidal(d)`, `fourier(d)`): even, from 2 to `max`, and
/// the layer applied to the time input itself; `example` is the size the help suggests.
fn embedding_size(
    s: &mut Sema,
    (arg, shape, c): (&crate::ast::Expr, Shape, &crate::ast::Call),
    (what, max, example): (&str, usize, usize),
) -> Option<usize> {
    let dim = s.positive(arg, "the embedding size")?;
    if dim < 2 || dim % 2 != 0 || dim > max {
        let sizes = if max == usize::MAX {
            "of at least 2".to_string()
        } else {
            format!("from 2 to 2^{}", max.trailing_zeros())
        };
        s.err(
            Diagnostic::error(
                "E202",
                format!("{what} embedding needs an even size {sizes}, found {dim}"),
            )
            .with_primary(arg.span, "half sines, half cosines"),
        );
        return None;
    }
    if shape != Shape::Time {
        let op = &c.name.name;
        s.err(
            Diagnostic::error(
                "E207",
                format!("`{op}` embeds the time input, found {shape}"),
            )
            .with_primary(c.span, "not the time input")
            .with_help(format!(
                "use it first in an `embed` declaration: `embed temb = {op}({example}) | ...`"
            )),
        );
        return None;
    }
    Some(dim)
}

/// `sinusoidal(dim, scale = s, flip = false, shift = 1, max_period = 10000)`: the time input
/// [B] -> [B, dim], of `s · t`; the defaults are DDPM's, diffusers' `Timesteps(dim,
/// flip_sin_to_cos, freq_shift)` is `flip` and `shift`.
pub(super) fn sinusoidal(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let dim = embedding_size(s, (a[0]?, shape, c), ("a sinusoidal", usize::MAX, 128))?;
    let scale = match a[1] {
        Some(e) => {
            let range = ("the scale on t", "(0, 1e9]");
            s.number_in(e, "the scale on t", range, |v| v > 0.0 && v <= 1e9)?
        }
        None => 1.0,
    };
    let flip = match a[2] {
        Some(e) => s.choice(e, "flip setting", &["true", "false"])? == "true",
        None => false,
    };
    let half = (dim / 2) as f64;
    let shift = match a[3] {
        Some(e) => {
            let range = ("the frequency shift", "[0, dim/2) (DDPM's is 1)");
            let shift =
                s.number_in(e, "the frequency shift", range, |v| (0.0..1e9).contains(&v))?;
            if half > 1.0 && shift >= half {
                s.err(
                    Diagnostic::error(
                        "E202",
                        format!(
                            "a frequency shift of {shift} leaves no frequencies in `sinusoidal({dim})`"
                        ),
                    )
                    .with_primary(e.span, format!("must be below dim/2 = {half}")),
                );
                return None;
            }
            shift
        }
        None => 1.0,
    };
    let max_period = match a[4] {
        Some(e) => {
            let range = ("the max period", "(1, 1e12]");
            s.number_in(e, "the max period", range, |v| v > 1.0 && v <= 1e12)?
        }
        None => 10000.0,
    };
    Some(s.push_raw(
        Op::Sinusoidal {
            dim,
            scale,
            flip,
            shift,
            max_period,
        },
        vec![input],
        Shape::Vector { d: dim },
        name,
        c.span,
    ))
}

/// `learned(dim)`: a learned row per step of step time, [B] -> [B, dim].
pub(super) fn learned(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let dim = s.positive(a[0]?, "the embedding size")?;
    if shape != Shape::Time {
        s.err(
            Diagnostic::error(
                "E207",
                format!("`learned` embeds the time input, found {shape}"),
            )
            .with_primary(c.span, "not the time input")
            .with_help("use it first in an `embed` declaration: `embed temb = learned(128) | ...`"),
        );
        return None;
    }
    let steps = match s.time.as_ref().map(|t| t.kind) {
        Some(TimeKind::Steps(n)) => n,
        _ => {
            let mut d = Diagnostic::error("E207", "`learned` needs step time: one row per step")
                .with_primary(c.span, "a table of rows by step");
            if let Some(t) = &s.time {
                d = d.with_secondary(t.span, "continuous time declared here");
            }
            s.err(d.with_help("declare `time t: step(1000)`, or use `sinusoidal(d)`"));
            return None;
        }
    };
    if steps.saturating_mul(dim) > 1 << 28 {
        s.err(
            Diagnostic::error("E202", format!("a {steps}x{dim} table is too large"))
                .with_primary(a[0]?.span, "at most 2^28 entries"),
        );
        return None;
    }
    Some(s.push_raw(
        Op::LearnedTime { steps, dim },
        vec![input],
        Shape::Vector { d: dim },
        name,
        c.span,
    ))
}

/// `fourier(d, scale = 16, log = true, flip = false)`: Gaussian random Fourier features of t
/// (or of log t), `d / 2` frozen frequencies.
pub(super) fn fourier(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let dim = embedding_size(s, (a[0]?, shape, c), ("a Fourier", 1 << 24, 64))?;
    let scale = match a[1] {
        Some(e) => {
            let range = ("the frequency scale", "(0, 1e6]");
            s.number_in(e, "the frequency scale", range, |v| v > 0.0 && v <= 1e6)?
        }
        None => 16.0,
    };
    let mut flag = |k: usize, default: bool, what: &str| match a[k] {
        Some(e) => s.choice(e, what, &["true", "false"]).map(|v| v == "true"),
        None => Some(default),
    };
    let log = flag(2, true, "log setting")?;
    let flip = flag(3, false, "flip setting")?;
    if log {
        s.needs_positive_time(c.span, "`fourier` of log t")?;
    }
    Some(s.push_raw(
        Op::Fourier {
            dim,
            scale,
            log,
            flip,
        },
        vec![input],
        Shape::Vector { d: dim },
        name,
        c.span,
    ))
}

/// `concat` as a stage: an error (it joins values: `concat(a, b)`).
pub(super) fn concat(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let c = l.call;
    s.err(
        Diagnostic::error("E201", "`concat` joins values; it is not a pipeline stage")
            .with_primary(c.span, "write `concat(a, b)`"),
    );
    None
}
