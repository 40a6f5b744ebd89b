//! Convolutions: `conv(out, k, stride, pad, groups, bias, time)` and its 3x3 and 1x1 forms,
//! the time channel a ConcatConv concatenates (`time = concat`, `concat(positional)`), the
//! strided 3x3 `downsample`, and `shortcut(out)`, the residual projection.

use super::builder::{conv_out, Layer};
use crate::ast::{self, Expr, ExprKind, Span};
use crate::diagnostics::Diagnostic;
use crate::ir::{NodeId, Op, Shape, TimeChannel};
use crate::sema::state::{src_word, Sema};
use crate::sema::values::ConfigRef;

/// `conv`, `conv3` and `conv1`: [B, C, H, W] -> [B, out, H', W'].
pub(super) fn conv(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let word = def.name;
    // `conv3` and `conv1` fix the kernel (and pad by k / 2): their arguments are conv's
    // without `k` and `pad`.
    let a = if word == "conv" {
        s.bind_op(def, c)?
    } else {
        let mut a = s.bind_op(def, c)?;
        a.insert(1, None);
        a.insert(3, None);
        a
    };
    let out = s.positive(a[0]?, "the number of output channels")?;
    let k = match (word, a[1]) {
        ("conv3", _) => 3,
        ("conv1", _) => 1,
        (_, Some(e)) => s.positive(e, "the kernel size")?,
        (_, None) => 3,
    };
    let stride = a[2]
        .map(|e| s.positive(e, "the stride"))
        .unwrap_or(Some(1))?;
    let pad = match a[3] {
        Some(e) => s.integer(e, "the padding")?,
        None => k / 2,
    };
    let groups = a[4]
        .map(|e| s.positive(e, "the number of groups"))
        .unwrap_or(Some(1))?;
    let bias = match a[5] {
        Some(e) => s.choice(e, "bias setting", &["true", "false"])? == "true",
        None => true,
    };
    let time = match a[6] {
        Some(e) => s.time_channel(e)?,
        None => TimeChannel::None,
    };
    let Shape::Image { c: cin, h, w } = shape else {
        return s.needs_image(c, shape);
    };
    if groups > 1 && (cin % groups != 0 || out % groups != 0) {
        s.err(
            Diagnostic::error(
                "E203",
                format!("a grouped conv needs channels divisible by {groups}"),
            )
            .with_primary(c.span, format!("{cin} in, {out} out"))
            .with_help("choose groups that divide both channel counts"),
        );
        return None;
    }
    if groups > 1 && time != TimeChannel::None {
        s.err(
            Diagnostic::error("E203", "a concatenated time channel needs `groups = 1`")
                .with_primary(c.span, "the extra channel breaks the grouping"),
        );
        return None;
    }
    let (ho, wo) = match (conv_out(h, k, stride, pad), conv_out(w, k, stride, pad)) {
        (Some(ho), Some(wo)) => (ho, wo),
        _ => {
            s.err(
                Diagnostic::error(
                    "E206",
                    format!("a {k}x{k} kernel with padding {pad} does not fit a {h}x{w} input"),
                )
                .with_primary(c.span, "the output would be empty")
                .with_note(format!("the input is {shape}"))
                .with_help("use a smaller kernel, more padding, or fewer down-sampling steps"),
            );
            return None;
        }
    };
    let mut inputs = vec![input];
    if time != TimeChannel::None {
        inputs.push(s.time_node()?);
    }
    let op = Op::Conv {
        cin,
        cout: out,
        k,
        stride,
        pad,
        groups,
        bias,
        time,
    };
    let id = s.push_raw(
        op,
        inputs,
        Shape::Image {
            c: out,
            h: ho,
            w: wo,
        },
        name,
        c.span,
    );
    Some(id)
}

/// `downsample(mode, pad)`: halves H and W with a strided 3x3 conv (or a 2x2 average). `pad = 1`
/// (the default) pads the conv symmetrically; `pad = 0` is DDPM's and diffusers' `padding = 0`:
/// zeros at the bottom and right only, then an unpadded conv.
pub(super) fn downsample(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, shape, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let mode = match a[0] {
        Some(e) => s.choice(e, "down-sampling mode", &["conv", "avg"])?,
        None => "conv".to_string(),
    };
    let pad = match a[1] {
        Some(e) => {
            let p = s.number(e, "the down-sampling padding")?;
            if p != 0.0 && p != 1.0 || mode == "avg" {
                s.err(
                    Diagnostic::error(
                        "E202",
                        format!("`downsample` pads by 1 (symmetric) or 0 (bottom and right only), found {p}"),
                    )
                    .with_primary(e.span, if mode == "avg" { "the average pools without padding" } else { "0 or 1" }),
                );
                return None;
            }
            p as usize
        }
        None => 1,
    };
    let Shape::Image { c: ch, h, w } = shape else {
        return s.needs_image(c, shape);
    };
    if h < 2 || w < 2 {
        s.err(
            Diagnostic::error("E206", format!("cannot down-sample a {h}x{w} feature map"))
                .with_primary(c.span, "too small to halve"),
        );
        return None;
    }
    if mode == "avg" {
        Some(s.push_raw(
            Op::AvgPool { k: 2, stride: 2 },
            vec![input],
            Shape::Image {
                c: ch,
                h: h / 2,
                w: w / 2,
            },
            name,
            c.span,
        ))
    } else {
        // pad = 0: zero-pad (0, 1) and convolve without padding, as diffusers does.
        let (input, (h, w)) = if pad == 0 {
            let padded = s.push_raw(
                Op::Pad {
                    before: 0,
                    after: 1,
                },
                vec![input],
                Shape::Image {
                    c: ch,
                    h: h + 1,
                    w: w + 1,
                },
                format!("{name}_pad"),
                c.span,
            );
            (padded, (h + 1, w + 1))
        } else {
            (input, (h, w))
        };
        let op = Op::plain_conv(ch, ch, 3, 2, pad);
        let (ho, wo) = (conv_out(h, 3, 2, pad)?, conv_out(w, 3, 2, pad)?);
        Some(s.push_raw(
            op,
            vec![input],
            Shape::Image {
                c: ch,
                h: ho,
                w: wo,
            },
            name,
            c.span,
        ))
    }
}

/// `shortcut(out)`: the input, or its 1x1 projection when the channels differ.
pub(super) fn shortcut(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, _, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let out = s.positive(a[0]?, "the number of output channels")?;
    s.shortcut(input, out, c.span, &name)
}

impl<'a> Sema<'a> {
    /// `h` itself when it has `out` channels, else a 1x1 conv of it to `out` channels.
    pub(in crate::sema) fn shortcut(
        &mut self,
        h: NodeId,
        out: usize,
        span: Span,
        name: &str,
    ) -> Option<NodeId> {
        match self.node_shape(h) {
            Shape::Image { c, h: hh, w } => {
                if c == out {
                    Some(h)
                } else {
                    let op = Op::plain_conv(c, out, 1, 1, 0);
                    Some(self.push_raw(
                        op,
                        vec![h],
                        Shape::Image { c: out, h: hh, w },
                        name.to_string(),
                        span,
                    ))
                }
            }
            other => {
                self.err(
                    Diagnostic::error(
                        "E207",
                        format!("`shortcut` needs a feature map, found {other}"),
                    )
                    .with_primary(span, "not a feature map"),
                );
                None
            }
        }
    }

    fn time_channel(&mut self, e: &Expr) -> Option<TimeChannel> {
        let cfg = self.config(e)?;
        let (word, args, span): (String, Vec<ast::Arg>, Span) = match cfg {
            ConfigRef::Call(c) => (c.name.name.clone(), c.args.clone(), c.span),
            ConfigRef::Owned(Expr {
                kind: ExprKind::Call(c),
                ..
            }) => (c.name.name.clone(), c.args.clone(), c.span),
            ConfigRef::Owned(other) => (src_word(&other), vec![], other.span),
            ConfigRef::Word(w, sp) => (w, vec![], sp),
        };
        match word.as_str() {
            "none" => Some(TimeChannel::None),
            "concat" => {
                let call = ast::Call {
                    name: ast::Ident {
                        name: word.clone(),
                        span,
                    },
                    args,
                    span,
                };
                let a = self.bind_args(&call, &["pattern"], 0)?;
                match a[0] {
                    None => Some(TimeChannel::Constant),
                    Some(p) => match self
                        .choice(p, "time-channel pattern", &["constant", "positional"])?
                        .as_str()
                    {
                        "positional" => Some(TimeChannel::Positional),
                        _ => Some(TimeChannel::Constant),
                    },
                }
            }
            _ => {
                self.err(
                    Diagnostic::error("E202", format!("unknown time input mode `{word}`"))
                        .with_primary(span, "expected `concat`, `concat(positional)` or `none`")
                        .suggest(&word, ["concat", "none"]),
                );
                None
            }
        }
    }
}
