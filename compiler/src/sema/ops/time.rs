//! Where an embedding of t enters the feature path: `inject(emb, mode)` (a per-channel offset
//! or a positional map added to the input) and `scale_shift(emb)` (a per-channel scale and
//! shift of the input), `divide_by_time` (each sample divided by its t), and `class_embed(y)`
//! (a class label's learned row added to an embedding).

use super::builder::Layer;
use crate::diagnostics::Diagnostic;
use crate::ir::{InjectMode, NodeId, Op, Shape, Sharing};
use crate::sema::state::{src_word, Sema};

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

/// `e | class_embed(y)`: adds the learned row of each sample's class label `y` to the
/// embedding vector `e`.
pub(super) fn class_embed(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let arg = a[0]?;
    let label = s.label.clone();
    let Some(info) = label.filter(|lb| arg.as_ident() == Some(lb.name.as_str())) else {
        let mut d = Diagnostic::error(
            "E207",
            format!(
                "`class_embed` takes the class-label input, found `{}`",
                src_word(arg)
            ),
        )
        .with_primary(arg.span, "not the label input");
        d = match &s.label {
            Some(lb) => d
                .with_secondary(lb.span, "the label input")
                .with_help(format!("write `class_embed({})`", lb.name)),
            None => d.with_help("declare it: `input y: label[10]`, then `class_embed(y)`"),
        };
        s.err(d);
        return None;
    };
    if s.graphs.len() > 1 {
        s.err(
            Diagnostic::error(
                "E112",
                "the class label is not visible inside an ODE function",
            )
            .with_primary(c.span, "inside an ODE function")
            .with_help("add the label's row to an embedding outside the ODE block"),
        );
        return None;
    }
    let Shape::Vector { d: dim } = shape else {
        s.err(
            Diagnostic::error(
                "E207",
                format!("`class_embed` adds to an embedding vector [B, D], found {shape}"),
            )
            .with_primary(c.span, "not an embedding")
            .with_help(
                "use it in an `embed` pipeline: `embed e = ... | linear(512) | class_embed(y)`",
            ),
        );
        return None;
    };
    if s.time
        .as_ref()
        .is_some_and(|t| t.sharing == Sharing::Shared)
    {
        let t = s.time.as_ref().map(|t| t.span);
        let mut d = Diagnostic::error("E207", "a class label needs per-sample time")
            .with_primary(c.span, "each sample has its own label");
        if let Some(t) = t {
            d = d.with_secondary(t, "time shared by the batch");
        }
        s.err(d.with_help("declare `time t: ..., per_sample`"));
        return None;
    }
    if info.classes.saturating_mul(dim) > 1 << 28 {
        s.err(
            Diagnostic::error(
                "E202",
                format!("a {}x{dim} table is too large", info.classes),
            )
            .with_primary(c.span, "at most 2^28 entries"),
        );
        return None;
    }
    Some(s.push_raw(
        Op::ClassEmbed {
            classes: info.classes,
            dim,
        },
        vec![input],
        shape,
        name,
        c.span,
    ))
}
