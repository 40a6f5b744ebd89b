//! Where an embedding of t enters the feature path: `inject(emb, mode)` (a per-channel offset
//! or a positional map added to the input) and `scale_shift(emb)` (a per-channel scale and
//! shift of the input), and `divide_by_time` (each sample divided by its t).

use super::builder::Layer;
use crate::diagnostics::Diagnostic;
use crate::ir::{InjectMode, NodeId, Op, Shape};
use crate::sema::state::Sema;

/// `h + inject(e)` / `h | inject(e, positional)`: adds a projection of embedding `e` to `h`.
pub(super) fn inject(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, target, _, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let mode = match a[1] {
        Some(e) => match s
            .choice(e, "injection mode", &["offset", "positional"])?
            .as_str()
        {
            "positional" => InjectMode::Positional,
            _ => InjectMode::Offset,
        },
        None => InjectMode::Offset,
    };
    let e = s.value(a[0]?, &format!("{name}.emb"))?;
    let es = s.node_shape(e);
    let Shape::Vector { d } = es else {
        s.err(
            Diagnostic::error(
                "E207",
                format!("`inject` needs an embedding vector [B, D], found {es}"),
            )
            .with_primary(a[0]?.span, "not an embedding")
            .with_help("declare one with `embed temb = sinusoidal(128) | linear(512)`"),
        );
        return None;
    };
    let shape = s.node_shape(target);
    let ch = match shape {
        Shape::Image { c, .. } => c,
        Shape::Vector { d } if mode == InjectMode::Offset => d,
        _ => {
            s.err(
                Diagnostic::error("E207", format!("cannot inject into {shape}"))
                    .with_primary(c.span, "positional injection needs a feature map"),
            );
            return None;
        }
    };
    Some(s.push_raw(
        Op::Inject {
            mode,
            din: d,
            channels: ch,
        },
        vec![target, e],
        shape,
        name,
        c.span,
    ))
}

/// `scale_shift(emb)`: `h · (1 + scale(e)) + shift(e)`.
pub(super) fn scale_shift(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let base = name.clone();
    let e = s.value(a[0]?, &format!("{base}.emb"))?;
    let Shape::Vector { d } = s.node_shape(e) else {
        let sh = s.node_shape(e);
        s.err(
            Diagnostic::error(
                "E207",
                format!("`scale_shift` needs an embedding vector, found {sh}"),
            )
            .with_primary(a[0]?.span, "not [B, D]"),
        );
        return None;
    };
    let Some(ch) = shape.channels().filter(|_| shape != Shape::Time) else {
        return s.needs_image(c, shape);
    };
    Some(s.push_raw(
        Op::ScaleShift {
            din: d,
            channels: ch,
        },
        vec![input, e],
        shape,
        name,
        c.span,
    ))
}

/// `h | divide_by_time`: each sample of `h` divided by its t (t > 0 wherever it is seen).
pub(super) fn divide_by_time(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    s.bind_op(def, c)?;
    if shape == Shape::Time {
        return s.needs_image(c, shape);
    }
    s.needs_positive_time(c.span, "`divide_by_time`")?;
    let t = s.time_node()?;
    Some(s.push_raw(Op::DivTime, vec![input, t], shape, name, c.span))
}
