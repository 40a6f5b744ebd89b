//! Each IR op as PyTorch: its numeric constructor fields (what instances of one class may
//! differ in), its structural signature, its constructor, its `forward` expression, and the
//! helper code it needs in `model.py`. A new op gets its PyTorch mapping here.

use super::names::py_float;
use crate::ir::{Act, Graph, InjectMode, Node, NormKind, Op, Shape, TimeChannel};
use std::fmt::Write as _;

pub(super) fn seqable(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv {
            time: TimeChannel::None,
            ..
        } | Op::Linear { .. }
            | Op::Norm { .. }
            | Op::Act { .. }
            | Op::Dropout { .. }
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::Upsample { .. }
            | Op::Flatten
            | Op::Pad { .. }
            | Op::Sinusoidal { .. }
            | Op::LearnedTime { .. }
            | Op::Fourier { .. }
            | Op::Attention { .. }
            | Op::Ode { .. }
    )
}

/// The numeric constructor fields of a layer (what may differ between instances of a class).
pub(super) fn fields(op: &Op) -> Vec<(&'static str, String)> {
    let n = |v: usize| v.to_string();
    match op {
        Op::Conv {
            cin,
            cout,
            k,
            stride,
            pad,
            groups,
            ..
        } => vec![
            ("in", n(*cin)),
            ("out", n(*cout)),
            ("k", n(*k)),
            ("stride", n(*stride)),
            ("padding", n(*pad)),
            ("groups", n(*groups)),
        ],
        Op::Linear { din, dout, .. } => vec![("in", n(*din)), ("out", n(*dout))],
        Op::LearnedTime { steps, dim } => vec![("steps", n(*steps)), ("dim", n(*dim))],
        Op::Fourier { dim, scale, .. } => vec![("dim", n(*dim)), ("scale", py_float(*scale))],
        Op::ClassEmbed { classes, dim } => vec![("classes", n(*classes)), ("dim", n(*dim))],
        Op::Norm {
            kind,
            channels,
            eps,
            ..
        } => {
            let mut v = match kind {
                NormKind::Group { groups } => {
                    vec![("groups", n(*groups)), ("channels", n(*channels))]
                }
                _ => vec![("channels", n(*channels))],
            };
            if *eps != 1e-5 {
                v.push(("eps", py_float(*eps)));
            }
            v
        }
        Op::Attention {
            channels,
            heads,
            norm,
            eps,
        } => {
            let mut v = vec![("channels", n(*channels)), ("heads", n(*heads))];
            match norm {
                Some(NormKind::Group { groups }) => v.push(("groups", n(*groups))),
                Some(NormKind::Instance) => v.push(("groups", n(*channels))),
                // Sema gives an attention no per-position norm (E105).
                Some(NormKind::Layer | NormKind::PerPosition) => v.push(("groups", "1".into())),
                Some(NormKind::Batch) | None => {}
            }
            if *eps != 1e-5 {
                v.push(("eps", py_float(*eps)));
            }
            v
        }
        Op::Inject { din, channels, .. } => vec![("in", n(*din)), ("out", n(*channels))],
        Op::ScaleShift { din, channels } => {
            vec![("in", n(*din)), ("out", n(channels.saturating_mul(2)))]
        }
        _ => Vec::new(),
    }
}

/// The structure of a layer apart from its fields (equal within a class).
pub(super) fn op_sig(op: &Op) -> String {
    match op {
        Op::Conv { bias, time, .. } => format!("conv({bias},{time:?})"),
        Op::Linear { bias, .. } => format!("linear({bias})"),
        Op::Norm { kind, affine, .. } => format!(
            "norm({},{affine})",
            std::mem::discriminant(kind) == std::mem::discriminant(&NormKind::Batch)
        ),
        Op::Attention { norm, .. } => format!(
            "attn({})",
            match norm {
                Some(NormKind::Batch) => "batch",
                None => "none",
                Some(_) => "group",
            }
        ),
        Op::Inject { mode, .. } => format!("inject({mode:?})"),
        Op::ScaleShift { .. } => "scale_shift".into(),
        Op::Fourier { log, flip, .. } => format!("fourier({log},{flip})"),
        Op::Ode { .. } => "ode".into(),
        other => format!("{other:?}"),
    }
}

pub(super) fn has_module(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv { .. }
            | Op::LearnedTime { .. }
            | Op::Fourier { .. }
            | Op::ClassEmbed { .. }
            | Op::Linear { .. }
            | Op::Norm { .. }
            | Op::Attention { .. }
            | Op::Inject { .. }
            | Op::ScaleShift { .. }
            | Op::Ode { .. }
    )
}

/// The constructor of a layer with the given field expressions.
pub(super) fn ctor(op: &Op, f: &[String], ode_class: Option<&str>) -> String {
    let get = |i: usize| f.get(i).cloned().unwrap_or_default();
    let conv_opts = |s: &mut String| {
        if get(3) != "1" {
            let _ = write!(s, ", stride={}", get(3));
        }
        if get(4) != "0" {
            let _ = write!(s, ", padding={}", get(4));
        }
        if get(5) != "1" {
            let _ = write!(s, ", groups={}", get(5));
        }
    };
    match op {
        Op::Conv { bias, time, .. } => {
            let mut s = match time {
                TimeChannel::None => format!("nn.Conv2d({}, {}, {}", get(0), get(1), get(2)),
                _ => format!("ConcatConv2d({}, {}, {}", get(0), get(1), get(2)),
            };
            conv_opts(&mut s);
            if !bias {
                s += ", bias=False";
            }
            if *time == TimeChannel::Positional {
                s += ", positional=True";
            }
            s + ")"
        }
        Op::Linear { bias, .. } => {
            format!(
                "nn.Linear({}, {}{})",
                get(0),
                get(1),
                if *bias { "" } else { ", bias=False" }
            )
        }
        Op::Norm {
            kind, eps, affine, ..
        } => {
            let e = |i: usize| {
                let mut s = String::new();
                if *eps != 1e-5 {
                    let _ = write!(s, ", eps={}", get(i));
                }
                if !affine {
                    s += ", affine=False";
                }
                s
            };
            match kind {
                NormKind::Group { .. } => format!("nn.GroupNorm({}, {}{})", get(0), get(1), e(2)),
                NormKind::Instance => format!("nn.GroupNorm({0}, {0}{1})", get(0), e(1)),
                NormKind::Layer => format!("nn.GroupNorm(1, {}{})", get(0), e(1)),
                NormKind::Batch => format!("BatchNorm({}{})", get(0), e(1)),
                NormKind::PerPosition => format!("ChannelLayerNorm({}{})", get(0), e(1)),
            }
        }
        Op::Attention { norm, eps, .. } => {
            let mut s = format!("Attention({}", get(0));
            if get(1) != "1" {
                let _ = write!(s, ", heads={}", get(1));
            }
            let at_eps = match norm {
                Some(NormKind::Batch) => {
                    s += ", groups=None";
                    2
                }
                None => {
                    s += ", groups=0";
                    2
                }
                _ => {
                    if get(2) != "32" {
                        let _ = write!(s, ", groups={}", get(2));
                    }
                    3
                }
            };
            if *eps != 1e-5 {
                let _ = write!(s, ", eps={}", get(at_eps));
            }
            s + ")"
        }
        Op::Inject { .. } | Op::ScaleShift { .. } => format!("nn.Linear({}, {})", get(0), get(1)),
        Op::Act { act } => match act {
            Act::Relu => "nn.ReLU()".into(),
            Act::Silu => "nn.SiLU()".into(),
            Act::Tanh => "nn.Tanh()".into(),
            Act::Softplus => "nn.Softplus()".into(),
        },
        Op::Dropout { p } => format!("nn.Dropout({})", py_float(*p)),
        Op::AvgPool { k, stride } => format!("nn.AvgPool2d({k}, {stride})"),
        Op::GlobalAvgPool => "nn.AdaptiveAvgPool2d(1)".into(),
        Op::Upsample { factor } => format!("nn.Upsample(scale_factor={factor}, mode=\"nearest\")"),
        Op::Flatten => "nn.Flatten()".into(),
        Op::Pad { before, after } => {
            format!("nn.ZeroPad2d(({before}, {after}, {before}, {after}))")
        }
        Op::Sinusoidal { dim, .. } => format!("SinusoidalEmbedding({dim}{})", sinusoid_options(op)),
        Op::LearnedTime { .. } => format!("TimeTable({}, {})", get(0), get(1)),
        Op::ClassEmbed { .. } => format!("nn.Embedding({}, {})", get(0), get(1)),
        Op::Fourier { log, flip, .. } => format!(
            "FourierTime({}, {}{}{})",
            get(0),
            get(1),
            if *log { "" } else { ", log=False" },
            if *flip { ", flip=True" } else { "" }
        ),
        Op::Ode { .. } => format!("{}()", ode_class.unwrap_or("OdeBlock")),
        _ => "nn.Identity()".into(),
    }
}

/// A rendered expression and whether it binds tighter than `+` (safe as an operand).
#[derive(Clone)]
pub(super) struct PyExpr {
    pub(super) text: String,
    pub(super) atom: bool,
}

pub(super) fn atom(s: String) -> PyExpr {
    PyExpr {
        text: s,
        atom: true,
    }
}

fn paren(e: &PyExpr) -> String {
    if e.atom {
        e.text.clone()
    } else {
        format!("({})", e.text)
    }
}

/// The forward expression of a parameterless op or a layer `m` on inputs `a`.
pub(super) fn node_expr(node: &Node, m: &str, a: &[PyExpr], g: &Graph) -> PyExpr {
    let x = |i: usize| a.get(i).map(|e| e.text.clone()).unwrap_or_default();
    let img = |i: usize| {
        node.inputs
            .get(i)
            .map(|&id| matches!(g.nodes[id].shape, Shape::Image { .. }))
            .unwrap_or(false)
    };
    match &node.op {
        Op::Conv { time, .. } => match time {
            TimeChannel::None => atom(format!("{m}({})", x(0))),
            _ => atom(format!("{m}({}, {})", x(1), x(0))),
        },
        Op::Linear { .. }
        | Op::Norm { .. }
        | Op::Attention { .. }
        | Op::Ode { .. }
        | Op::LearnedTime { .. }
        | Op::Fourier { .. } => atom(format!("{m}({})", x(0))),
        Op::ClassEmbed { .. } => PyExpr {
            text: format!("{} + {m}(class_labels.long())", x(0)),
            atom: false,
        },
        Op::DivTime => PyExpr {
            text: format!(
                "{} / {}",
                a.first().map(paren).unwrap_or_default(),
                if img(0) {
                    format!("{}.reshape(-1, 1, 1, 1)", x(1))
                } else {
                    format!("{}.reshape(-1, 1)", x(1))
                }
            ),
            atom: false,
        },
        Op::Act { act } => atom(match act {
            Act::Relu => format!("F.relu({})", x(0)),
            Act::Silu => format!("F.silu({})", x(0)),
            Act::Tanh => format!("torch.tanh({})", x(0)),
            Act::Softplus => format!("F.softplus({})", x(0)),
        }),
        Op::Dropout { p } => atom(format!(
            "F.dropout({}, p={}, training=self.training)",
            x(0),
            py_float(*p)
        )),
        Op::AvgPool { k, stride } => atom(format!("F.avg_pool2d({}, {k}, {stride})", x(0))),
        Op::GlobalAvgPool => atom(format!(
            "{}.mean(dim=(2, 3), keepdim=True)",
            a.first().map(paren).unwrap_or_default()
        )),
        Op::Upsample { factor } => atom(format!(
            "F.interpolate({}, scale_factor={factor}, mode=\"nearest\")",
            x(0)
        )),
        Op::Flatten => atom(format!("torch.flatten({}, 1)", x(0))),
        Op::Pad { before, after } => atom(format!(
            "F.pad({}, ({before}, {after}, {before}, {after}))",
            x(0)
        )),
        Op::Add => PyExpr {
            text: format!("{} + {}", x(0), a.get(1).map(paren).unwrap_or_default()),
            atom: false,
        },
        Op::Concat => atom(format!(
            "torch.cat([{}], dim=1)",
            a.iter()
                .map(|e| e.text.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Op::Sinusoidal { dim, .. } => atom(format!(
            "timestep_embedding({}, {dim}{})",
            x(0),
            sinusoid_options(&node.op)
        )),
        Op::Inject { mode, .. } => match (mode, img(0)) {
            (InjectMode::Positional, true) => {
                atom(format!("add_positional({}, {m}({}))", x(0), x(1)))
            }
            (_, true) => PyExpr {
                text: format!("{} + {m}({})[:, :, None, None]", x(0), x(1)),
                atom: false,
            },
            _ => PyExpr {
                text: format!("{} + {m}({})", x(0), x(1)),
                atom: false,
            },
        },
        Op::ScaleShift { .. } => atom(format!("scale_shift({}, {m}({}))", x(0), x(1))),
        Op::Input | Op::Time => atom(x(0)),
    }
}

/// The sections of `helpers.py` (and the time-branch marker) that `model.py` needs.
#[derive(Default)]
pub(super) struct Uses {
    pub(super) sinusoidal: bool,
    pub(super) learned: bool,
    pub(super) fourier: bool,
    pub(super) positional: bool,
    pub(super) concat: bool,
    pub(super) batch: bool,
    pub(super) channel_layer_norm: bool,
    pub(super) attention: bool,
    pub(super) scale_shift: bool,
    pub(super) ode: bool,
    pub(super) time_tags: bool,
}

/// Marks the helpers `op` needs in `model.py`.
pub(super) fn note_uses(uses: &mut Uses, op: &Op) {
    match op {
        Op::Sinusoidal { .. } => uses.sinusoidal = true,
        Op::LearnedTime { .. } => uses.learned = true,
        Op::Fourier { .. } => uses.fourier = true,
        Op::Conv { time, .. } if *time != TimeChannel::None => {
            uses.concat = true;
            if *time == TimeChannel::Positional {
                uses.positional = true;
            }
        }
        Op::Norm {
            kind: NormKind::Batch,
            ..
        } => uses.batch = true,
        Op::Norm {
            kind: NormKind::PerPosition,
            ..
        } => uses.channel_layer_norm = true,
        Op::Attention { norm, .. } => {
            uses.attention = true;
            if matches!(norm, Some(NormKind::Batch)) {
                uses.batch = true;
            }
        }
        Op::Inject {
            mode: InjectMode::Positional,
            ..
        } => uses.positional = true,
        Op::ScaleShift { .. } => uses.scale_shift = true,
        Op::Ode { .. } => uses.ode = true,
        _ => {}
    }
}

/// The keyword arguments of a non-default sinusoidal embedding: `, scale=1000.0, flip=True`.
fn sinusoid_options(op: &Op) -> String {
    let Op::Sinusoidal {
        scale,
        flip,
        shift,
        max_period,
        ..
    } = op
    else {
        return String::new();
    };
    let mut s = String::new();
    if *scale != 1.0 {
        s.push_str(&format!(", scale={scale:?}"));
    }
    if *flip {
        s.push_str(", flip=True");
    }
    if *shift != 1.0 {
        s.push_str(&format!(", shift={shift:?}"));
    }
    if *max_period != 10000.0 {
        s.push_str(&format!(", max_period={max_period:?}"));
    }
    s
}
