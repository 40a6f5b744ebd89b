//! The built-in layers: their names and signatures, how each one transforms a shape, which
//! parameters it owns (named and shaped exactly as PyTorch names and shapes them), and the
//! checks each needs (divisibility, kinds of input, value ranges).

use super::{ConfigRef, NormSpec, Sema};
use crate::ast::{self, Expr, ExprKind, Span};
use crate::diagnostics::Diagnostic;
use crate::ir::*;

/// Every built-in layer name (normalizations included; `norm` is the model's default).
pub const BUILTIN_OPS: &[&str] = &[
    "conv",
    "conv3",
    "conv1",
    "linear",
    "relu",
    "silu",
    "tanh",
    "softplus",
    "dropout",
    "avgpool",
    "upsample",
    "downsample",
    "attention",
    "flatten",
    "group",
    "batch",
    "instance",
    "layer",
    "sinusoidal",
    "inject",
    "scale_shift",
    "ode",
    "shortcut",
    "concat",
];

pub fn is_builtin(name: &str) -> bool {
    BUILTIN_OPS.contains(&name)
}

/// The parameters a node owns, named `<node>.<tensor>`.
pub(super) fn params_of(op: &Op, name: &str, time_branch: bool) -> Vec<ParamInfo> {
    let p = |t: &str, shape: Vec<usize>, role| ParamInfo {
        name: format!("{name}.{t}"),
        shape,
        role,
    };
    let bias_role = if time_branch {
        ParamRole::TimeBias
    } else {
        ParamRole::OperandBias
    };
    match *op {
        Op::Conv {
            cin,
            cout,
            k,
            groups,
            bias,
            time,
            ..
        } => {
            let extra = usize::from(time != TimeChannel::None);
            let mut v = vec![p(
                "weight",
                vec![cout, (cin + extra) / groups.max(1), k, k],
                ParamRole::Weight,
            )];
            if bias {
                v.push(p("bias", vec![cout], bias_role));
            }
            v
        }
        Op::Linear { din, dout, bias } => {
            let mut v = vec![p("weight", vec![dout, din], ParamRole::Weight)];
            if bias {
                v.push(p("bias", vec![dout], bias_role));
            }
            v
        }
        Op::Norm {
            channels,
            affine: true,
            ..
        } => vec![
            p("weight", vec![channels], ParamRole::NormScale),
            p("bias", vec![channels], ParamRole::NormShift),
        ],
        Op::Attention { channels: c, .. } => vec![
            p("norm.weight", vec![c], ParamRole::NormScale),
            p("norm.bias", vec![c], ParamRole::NormShift),
            p(
                "qkv.weight",
                vec![3usize.saturating_mul(c), c, 1, 1],
                ParamRole::Weight,
            ),
            p("qkv.bias", vec![3 * c], ParamRole::OperandBias),
            p("proj.weight", vec![c, c, 1, 1], ParamRole::Weight),
            p("proj.bias", vec![c], ParamRole::OperandBias),
        ],
        Op::Inject { din, channels, .. } => vec![
            p("weight", vec![channels, din], ParamRole::Weight),
            p("bias", vec![channels], ParamRole::TimeBias),
        ],
        Op::ScaleShift { din, channels } => vec![
            p("weight", vec![2 * channels, din], ParamRole::Weight),
            p("bias", vec![2 * channels], ParamRole::TimeBias),
        ],
        _ => Vec::new(),
    }
}

impl<'a> Sema<'a> {
    /// Parses a normalization setting: `group(32)`, `group(per_group = 4)`, `batch`, ...
    pub(super) fn norm_spec(&mut self, e: &Expr) -> Option<NormSpec> {
        let (word, call) = match &e.kind {
            ExprKind::Ident(w) => (w.as_str(), None),
            ExprKind::Call(c) => (c.name.name.as_str(), Some(c)),
            _ => ("", None),
        };
        match word {
            "batch" | "instance" | "layer" => {
                if let Some(c) = call {
                    if !c.args.is_empty() {
                        self.err(
                            Diagnostic::error("E105", format!("`{word}` takes no arguments"))
                                .with_primary(c.span, "remove the arguments"),
                        );
                        return None;
                    }
                }
                Some(match word {
                    "batch" => NormSpec::Batch,
                    "instance" => NormSpec::Instance,
                    _ => NormSpec::Layer,
                })
            }
            "group" => {
                let Some(c) = call else {
                    self.err(
                        Diagnostic::error("E105", "`group` needs the number of groups")
                            .with_primary(e.span, "write `group(32)` or `group(per_group = 4)`"),
                    );
                    return None;
                };
                let a = self.bind_args(c, &["groups", "per_group", "min_per_group"], 0)?;
                let groups = match a[0] {
                    Some(e) => Some(self.positive(e, "the number of groups")?),
                    None => None,
                };
                let per_group = match a[1] {
                    Some(e) => Some(self.positive(e, "the channels per group")?),
                    None => None,
                };
                let min_per_group = match a[2] {
                    Some(e) => Some(self.positive(e, "the minimum channels per group")?),
                    None => None,
                };
                if groups.is_none() == per_group.is_none() {
                    self.err(
                        Diagnostic::error(
                            "E105",
                            "`group` needs exactly one of `groups` and `per_group`",
                        )
                        .with_primary(c.span, "ambiguous group count")
                        .with_help("write `group(32)` or `group(per_group = 4)`"),
                    );
                    return None;
                }
                if min_per_group.is_some() && groups.is_none() {
                    self.err(
                        Diagnostic::error("E105", "`min_per_group` caps a group count")
                            .with_primary(
                                c.span,
                                "use it with `groups`, e.g. `group(32, min_per_group = 4)`",
                            ),
                    );
                    return None;
                }
                Some(NormSpec::Group {
                    groups,
                    per_group,
                    min_per_group,
                })
            }
            _ => {
                self.err(
                    Diagnostic::error(
                        "E102",
                        format!("unknown normalization `{}`", super::src_word(e)),
                    )
                    .with_primary(
                        e.span,
                        "expected `batch`, `group(G)`, `instance` or `layer`",
                    )
                    .suggest(word, ["batch", "group", "instance", "layer"]),
                );
                None
            }
        }
    }

    /// Resolves a norm for `input`'s channels and adds it.
    pub(super) fn norm(
        &mut self,
        input: NodeId,
        spec: NormSpec,
        span: Span,
        decl: Option<Span>,
        name: String,
    ) -> Option<NodeId> {
        let shape = self.node_shape(input);
        let Some(c) = shape.channels() else {
            self.err(
                Diagnostic::error("E207", "cannot normalize the raw time input")
                    .with_primary(span, "apply an embedding first, e.g. `sinusoidal(128)`"),
            );
            return None;
        };
        let kind = self.resolve_norm_kind(spec, c, span, decl)?;
        if matches!(kind, NormKind::Instance) && !matches!(shape, Shape::Image { .. }) {
            self.err(
                Diagnostic::error("E207", "instance normalization needs a feature map")
                    .with_primary(span, format!("the input is {shape}")),
            );
            return None;
        }
        let op = Op::Norm {
            kind,
            channels: c,
            affine: true,
            eps: 1e-5,
        };
        Some(self.push_raw(op, vec![input], shape, name, span))
    }

    fn divisibility(&mut self, span: Span, decl: Option<Span>, c: usize, what: &str, g: usize) {
        let mut d = Diagnostic::error("E203", format!("{c} channels cannot be split into {what}"))
            .with_primary(span, format!("normalizes {c} channels"));
        if let Some(decl) = decl {
            d = d.with_secondary(decl, format!("{what} set here"));
        }
        let divisors: Vec<usize> = (1..=c)
            .filter(|k| c.is_multiple_of(*k) && *k <= g.max(1) * 2)
            .collect();
        let best = divisors
            .iter()
            .copied()
            .min_by_key(|k| k.abs_diff(g))
            .unwrap_or(1);
        self.err(d.with_help(format!("use a count that divides {c}, e.g. {best}")));
    }

    /// Applies a built-in layer call to `input`.
    pub(super) fn builtin(&mut self, input: NodeId, c: &ast::Call, name: String) -> Option<NodeId> {
        let shape = self.node_shape(input);
        let word = c.name.name.as_str();
        match word {
            "conv" | "conv3" | "conv1" => {
                let a = if word == "conv" {
                    self.bind_args(
                        c,
                        &["out", "k", "stride", "pad", "groups", "bias", "time"],
                        1,
                    )?
                } else {
                    let mut a =
                        self.bind_args(c, &["out", "stride", "groups", "bias", "time"], 1)?;
                    a.insert(1, None);
                    a.insert(3, None);
                    a
                };
                let out = self.positive(a[0]?, "the number of output channels")?;
                let k = match (word, a[1]) {
                    ("conv3", _) => 3,
                    ("conv1", _) => 1,
                    (_, Some(e)) => self.positive(e, "the kernel size")?,
                    (_, None) => 3,
                };
                let stride = a[2]
                    .map(|e| self.positive(e, "the stride"))
                    .unwrap_or(Some(1))?;
                let pad = match a[3] {
                    Some(e) => self.integer(e, "the padding")?,
                    None => k / 2,
                };
                let groups = a[4]
                    .map(|e| self.positive(e, "the number of groups"))
                    .unwrap_or(Some(1))?;
                let bias = match a[5] {
                    Some(e) => self.choice(e, "bias setting", &["true", "false"])? == "true",
                    None => true,
                };
                let time = match a[6] {
                    Some(e) => self.time_channel(e)?,
                    None => TimeChannel::None,
                };
                let Shape::Image { c: cin, h, w } = shape else {
                    return self.needs_image(c, shape);
                };
                if groups > 1 && (cin % groups != 0 || out % groups != 0) {
                    self.err(
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
                    self.err(
                        Diagnostic::error("E203", "a concatenated time channel needs `groups = 1`")
                            .with_primary(c.span, "the extra channel breaks the grouping"),
                    );
                    return None;
                }
                let (ho, wo) = match (conv_out(h, k, stride, pad), conv_out(w, k, stride, pad)) {
                    (Some(ho), Some(wo)) => (ho, wo),
                    _ => {
                        self.err(
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
                    inputs.push(self.time_node(c.span)?);
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
                let id = self.push_raw(
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
            "linear" => {
                let a = self.bind_args(c, &["out", "bias"], 1)?;
                let out = self.positive(a[0]?, "the number of output features")?;
                let bias = match a[1] {
                    Some(e) => self.choice(e, "bias setting", &["true", "false"])? == "true",
                    None => true,
                };
                let Shape::Vector { d } = shape else {
                    self.err(
                        Diagnostic::error(
                            "E207",
                            format!("`linear` needs a vector, found {shape}"),
                        )
                        .with_primary(c.span, "input is not [B, D]")
                        .with_help(
                            if matches!(shape, Shape::Image { .. }) {
                                "insert `avgpool | flatten` (or `flatten`) before it"
                            } else {
                                "embed the time first, e.g. `sinusoidal(128) | linear(512)`"
                            },
                        ),
                    );
                    return None;
                };
                let op = Op::Linear {
                    din: d,
                    dout: out,
                    bias,
                };
                Some(self.push_raw(op, vec![input], Shape::Vector { d: out }, name, c.span))
            }
            "relu" | "silu" | "tanh" | "softplus" => {
                self.bind_args(c, &[], 0)?;
                if shape == Shape::Time {
                    return self.needs_image(c, shape);
                }
                let act = match word {
                    "relu" => Act::Relu,
                    "silu" => Act::Silu,
                    "tanh" => Act::Tanh,
                    _ => Act::Softplus,
                };
                Some(self.push_raw(Op::Act { act }, vec![input], shape, name, c.span))
            }
            "dropout" => {
                let a = self.bind_args(c, &["p"], 1)?;
                let p = self.number(a[0]?, "the dropout probability")?;
                if !(0.0..1.0).contains(&p) {
                    self.err(
                        Diagnostic::error(
                            "E202",
                            format!("a dropout probability must be in [0, 1), found {p}"),
                        )
                        .with_primary(a[0]?.span, "out of range"),
                    );
                    return None;
                }
                Some(self.push_raw(Op::Dropout { p }, vec![input], shape, name, c.span))
            }
            "avgpool" => {
                let a = self.bind_args(c, &["k", "stride"], 0)?;
                let Shape::Image { c: ch, h, w } = shape else {
                    return self.needs_image(c, shape);
                };
                match a[0] {
                    None => Some(self.push_raw(
                        Op::GlobalAvgPool,
                        vec![input],
                        Shape::Image { c: ch, h: 1, w: 1 },
                        name,
                        c.span,
                    )),
                    Some(e) => {
                        let k = self.positive(e, "the pooling window")?;
                        let stride = a[1]
                            .map(|e| self.positive(e, "the stride"))
                            .unwrap_or(Some(k))?;
                        match (conv_out(h, k, stride, 0), conv_out(w, k, stride, 0)) {
                            (Some(ho), Some(wo)) => Some(self.push_raw(
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
                                self.err(
                                    Diagnostic::error(
                                        "E206",
                                        format!(
                                            "a {k}x{k} pooling window does not fit a {h}x{w} input"
                                        ),
                                    )
                                    .with_primary(c.span, "the output would be empty"),
                                );
                                None
                            }
                        }
                    }
                }
            }
            "upsample" => {
                let a = self.bind_args(c, &["factor"], 0)?;
                let f = a[0]
                    .map(|e| self.positive(e, "the upsampling factor"))
                    .unwrap_or(Some(2))?;
                let Shape::Image { c: ch, h, w } = shape else {
                    return self.needs_image(c, shape);
                };
                if h.saturating_mul(f) > 1 << 16 || w.saturating_mul(f) > 1 << 16 {
                    self.err(
                        Diagnostic::error("E206", "the upsampled image would be too large")
                            .with_primary(c.span, "too large"),
                    );
                    return None;
                }
                Some(self.push_raw(
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
            "downsample" => {
                let a = self.bind_args(c, &["mode"], 0)?;
                let mode = match a[0] {
                    Some(e) => self.choice(e, "down-sampling mode", &["conv", "avg"])?,
                    None => "conv".to_string(),
                };
                let Shape::Image { c: ch, h, w } = shape else {
                    return self.needs_image(c, shape);
                };
                if h < 2 || w < 2 {
                    self.err(
                        Diagnostic::error(
                            "E206",
                            format!("cannot down-sample a {h}x{w} feature map"),
                        )
                        .with_primary(c.span, "too small to halve"),
                    );
                    return None;
                }
                if mode == "avg" {
                    Some(self.push_raw(
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
                    let op = Op::Conv {
                        cin: ch,
                        cout: ch,
                        k: 3,
                        stride: 2,
                        pad: 1,
                        groups: 1,
                        bias: true,
                        time: TimeChannel::None,
                    };
                    let (ho, wo) = (conv_out(h, 3, 2, 1)?, conv_out(w, 3, 2, 1)?);
                    Some(self.push_raw(
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
            "attention" => {
                let a = self.bind_args(c, &["heads"], 0)?;
                let heads = a[0]
                    .map(|e| self.positive(e, "the number of heads"))
                    .unwrap_or(Some(1))?;
                let Shape::Image { c: ch, .. } = shape else {
                    return self.needs_image(c, shape);
                };
                if ch % heads != 0 {
                    self.err(
                        Diagnostic::error(
                            "E203",
                            format!("{ch} channels cannot be split into {heads} heads"),
                        )
                        .with_primary(c.span, "heads must divide the channels"),
                    );
                    return None;
                }
                let Some((spec, decl)) = self.default_norm else {
                    self.err(
                        Diagnostic::error(
                            "E111",
                            "`attention` normalizes its input with the default normalization",
                        )
                        .with_primary(c.span, "but the model sets none")
                        .with_help("set one at model level, e.g. `norm = group(32)`"),
                    );
                    return None;
                };
                let kind = self.resolve_norm_kind(spec, ch, c.span, Some(decl))?;
                let op = Op::Attention {
                    channels: ch,
                    heads,
                    norm: kind,
                };
                Some(self.push_raw(op, vec![input], shape, name, c.span))
            }
            "flatten" => {
                self.bind_args(c, &[], 0)?;
                match shape {
                    Shape::Image { .. } | Shape::Vector { .. } => Some(self.push_raw(
                        Op::Flatten,
                        vec![input],
                        Shape::Vector { d: shape.numel() },
                        name,
                        c.span,
                    )),
                    Shape::Time => self.needs_image(c, shape),
                }
            }
            "group" | "batch" | "instance" | "layer" => {
                let e = Expr {
                    kind: ExprKind::Call(c.clone()),
                    span: c.span,
                };
                let e = if c.args.is_empty() && word != "group" {
                    Expr {
                        kind: ExprKind::Ident(word.to_string()),
                        span: c.span,
                    }
                } else {
                    e
                };
                let spec = self.norm_spec(&e)?;
                self.norm(input, spec, c.span, None, name)
            }
            "sinusoidal" => {
                let a = self.bind_args(c, &["dim"], 1)?;
                let dim = self.positive(a[0]?, "the embedding size")?;
                if dim < 2 || dim % 2 != 0 {
                    self.err(
                        Diagnostic::error("E202", format!("a sinusoidal embedding needs an even size of at least 2, found {dim}"))
                            .with_primary(a[0]?.span, "half sines, half cosines"),
                    );
                    return None;
                }
                if shape != Shape::Time {
                    self.err(
                        Diagnostic::error("E207", format!("`sinusoidal` embeds the time input, found {shape}"))
                            .with_primary(c.span, "not the time input")
                            .with_help("use it first in an `embed` declaration: `embed temb = sinusoidal(128) | ...`"),
                    );
                    return None;
                }
                Some(self.push_raw(
                    Op::Sinusoidal { dim },
                    vec![input],
                    Shape::Vector { d: dim },
                    name,
                    c.span,
                ))
            }
            "inject" => self.inject(input, c, name),
            "scale_shift" => {
                let a = self.bind_args(c, &["emb"], 1)?;
                let base = name.clone();
                let e = self.value(a[0]?, &format!("{base}.emb"))?;
                let Shape::Vector { d } = self.node_shape(e) else {
                    let sh = self.node_shape(e);
                    self.err(
                        Diagnostic::error(
                            "E207",
                            format!("`scale_shift` needs an embedding vector, found {sh}"),
                        )
                        .with_primary(a[0]?.span, "not [B, D]"),
                    );
                    return None;
                };
                let Some(ch) = shape.channels().filter(|_| shape != Shape::Time) else {
                    return self.needs_image(c, shape);
                };
                Some(self.push_raw(
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
            "shortcut" => {
                let a = self.bind_args(c, &["out"], 1)?;
                let out = self.positive(a[0]?, "the number of output channels")?;
                self.shortcut(input, out, c.span, &name)
            }
            "ode" => self.ode(input, c, name),
            "concat" => {
                self.err(
                    Diagnostic::error("E201", "`concat` joins values; it is not a pipeline stage")
                        .with_primary(c.span, "write `concat(a, b)`"),
                );
                None
            }
            _ => {
                self.unknown_layer(&c.name);
                None
            }
        }
    }

    /// The norm `spec` asks for on `c` channels, with its group count checked (E203 at `span`,
    /// pointing also at the setting `decl` when the model's default is used).
    fn resolve_norm_kind(
        &mut self,
        spec: NormSpec,
        c: usize,
        span: Span,
        decl: Option<Span>,
    ) -> Option<NormKind> {
        Some(match spec {
            NormSpec::Batch => NormKind::Batch,
            NormSpec::Instance => NormKind::Instance,
            NormSpec::Layer => NormKind::Layer,
            NormSpec::Group {
                groups,
                per_group,
                min_per_group,
            } => {
                let g = match (groups, per_group) {
                    (Some(g), _) => min_per_group.map(|m| g.min((c / m).max(1))).unwrap_or(g),
                    (None, Some(m)) if c.is_multiple_of(m) => c / m,
                    (None, Some(m)) => {
                        self.divisibility(span, decl, c, &format!("{m} channels per group"), m);
                        return None;
                    }
                    (None, None) => return None,
                };
                if !c.is_multiple_of(g) {
                    self.divisibility(span, decl, c, &format!("{g} groups"), g);
                    return None;
                }
                NormKind::Group { groups: g }
            }
        })
    }

    fn needs_image(&mut self, c: &ast::Call, shape: Shape) -> Option<NodeId> {
        let help = match shape {
            Shape::Time => "embed the time first, e.g. `sinusoidal(128) | linear(512)`",
            _ => "this layer works on [B, C, H, W] feature maps",
        };
        self.err(
            Diagnostic::error(
                "E207",
                format!("`{}` needs a feature map, found {shape}", c.name.name),
            )
            .with_primary(c.span, "wrong kind of input")
            .with_help(help),
        );
        None
    }

    fn time_channel(&mut self, e: &Expr) -> Option<TimeChannel> {
        let cfg = self.config(e)?;
        let (word, args, span): (String, Vec<ast::Arg>, Span) = match cfg {
            ConfigRef::Call(c) => (c.name.name.clone(), c.args.clone(), c.span),
            ConfigRef::Owned(Expr {
                kind: ExprKind::Call(c),
                ..
            }) => (c.name.name.clone(), c.args.clone(), c.span),
            ConfigRef::Owned(other) => (super::src_word(&other), vec![], other.span),
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

    /// `h + inject(e)` / `h | inject(e, positional)`.
    pub(super) fn inject(&mut self, target: NodeId, c: &ast::Call, name: String) -> Option<NodeId> {
        let a = self.bind_args(c, &["emb", "mode"], 1)?;
        let mode = match a[1] {
            Some(e) => match self
                .choice(e, "injection mode", &["offset", "positional"])?
                .as_str()
            {
                "positional" => InjectMode::Positional,
                _ => InjectMode::Offset,
            },
            None => InjectMode::Offset,
        };
        let e = self.value(a[0]?, &format!("{name}.emb"))?;
        let es = self.node_shape(e);
        let Shape::Vector { d } = es else {
            self.err(
                Diagnostic::error(
                    "E207",
                    format!("`inject` needs an embedding vector [B, D], found {es}"),
                )
                .with_primary(a[0]?.span, "not an embedding")
                .with_help("declare one with `embed temb = sinusoidal(128) | linear(512)`"),
            );
            return None;
        };
        let shape = self.node_shape(target);
        let ch = match shape {
            Shape::Image { c, .. } => c,
            Shape::Vector { d } if mode == InjectMode::Offset => d,
            _ => {
                self.err(
                    Diagnostic::error("E207", format!("cannot inject into {shape}"))
                        .with_primary(c.span, "positional injection needs a feature map"),
                );
                return None;
            }
        };
        Some(self.push_raw(
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

    /// `ode(func, t = [0, 1], solver = dopri5(rtol = 1e-3, atol = 1e-3))`
    fn ode(&mut self, input: NodeId, c: &ast::Call, name: String) -> Option<NodeId> {
        let a = self.bind_args(c, &["func", "t", "solver"], 1)?;
        let fexpr = a[0]?;
        let (fname, fspan, fcall) = match &fexpr.kind {
            ExprKind::Ident(n) => (n.clone(), fexpr.span, None),
            ExprKind::Call(fc) => (fc.name.name.clone(), fc.name.span, Some(fc.clone())),
            _ => (String::new(), fexpr.span, None),
        };
        let Some(def) = self.blocks.get(fname.as_str()).copied() else {
            let blocks: Vec<String> = self.blocks.keys().cloned().collect();
            self.err(
                Diagnostic::error("E108", format!("unknown block `{fname}`"))
                    .with_primary(fspan, "the ODE function must be a block")
                    .suggest(&fname, blocks.iter().map(String::as_str))
                    .or_help("define it with `block f(h) { ... }`"),
            );
            return None;
        };
        let (t0, t1) = match a[1] {
            Some(e) => {
                let ExprKind::List(items) = &e.kind else {
                    self.err(
                        Diagnostic::error("E201", "the integration interval is `[t0, t1]`")
                            .with_primary(e.span, format!("found {}", e.describe())),
                    );
                    return None;
                };
                if items.len() != 2 {
                    self.err(
                        Diagnostic::error(
                            "E201",
                            format!("the integration interval has 2 ends, found {}", items.len()),
                        )
                        .with_primary(e.span, "expected `[t0, t1]`"),
                    );
                    return None;
                }
                let t0 = self.number(&items[0], "the start time")?;
                let t1 = self.number(&items[1], "the end time")?;
                if t0 == t1 {
                    self.err(
                        Diagnostic::error("E202", "the integration interval is empty")
                            .with_primary(e.span, "t0 equals t1"),
                    );
                    return None;
                }
                (t0, t1)
            }
            None => (0.0, 1.0),
        };
        let solver = match a[2] {
            Some(e) => self.solver(e)?,
            None => Solver::Dopri5 {
                rtol: 1e-3,
                atol: 1e-3,
            },
        };
        let state = self.node_shape(input);
        if matches!(state, Shape::Time) {
            return self.needs_image(c, state);
        }
        // Build the function graph.
        let floor = self.scopes.len();
        self.graphs.push(super::GraphCtx {
            graph: Graph::default(),
            time_node: None,
            embeds: Default::default(),
            prefix: name.clone(),
            names: Default::default(),
            scope_floor: floor,
            open: Vec::new(),
        });
        self.scopes.push(super::Scope {
            vars: Default::default(),
            assigned: Default::default(),
            prefix: name.clone(),
            allow: Vec::new(),
            stmt_span: c.span,
        });
        let h = self.push_raw(Op::Input, vec![], state, format!("{name}.h"), c.span);
        let t = self.time_node(c.span);
        let call = fcall.unwrap_or(ast::Call {
            name: ast::Ident {
                name: fname.clone(),
                span: fspan,
            },
            args: vec![],
            span: fspan,
        });
        let out = self.expand_block(def, &call, h, name.clone(), false);
        self.scopes.pop();
        let ctx = self.graphs.pop()?;
        let out = out?;
        let t = t?;
        let out_shape = ctx.graph.nodes[out].shape;
        if out_shape != state {
            self.err(
                Diagnostic::error("E208", format!("an ODE function must keep its state's shape {state}, but returns {out_shape}"))
                    .with_primary(fexpr.span, "changes the shape")
                    .with_secondary(def.name.span, "function defined here")
                    .with_help("keep the channels and resolution inside the ODE function"),
            );
            return None;
        }
        let func = OdeFunc {
            block: def.name.name.clone(),
            graph: ctx.graph,
            input: h,
            time: t,
            output: out,
        };
        let op = Op::Ode {
            func: Box::new(func),
            t0,
            t1,
            solver,
        };
        Some(self.push_raw(op, vec![input], state, name, c.span))
    }

    fn solver(&mut self, e: &Expr) -> Option<Solver> {
        let cfg = self.config(e)?;
        let owned;
        let call = match &cfg {
            ConfigRef::Call(c) => (*c).clone(),
            ConfigRef::Owned(Expr {
                kind: ExprKind::Call(c),
                ..
            }) => c.clone(),
            ConfigRef::Owned(other) => {
                owned = ast::Call {
                    name: ast::Ident {
                        name: super::src_word(other),
                        span: other.span,
                    },
                    args: vec![],
                    span: other.span,
                };
                owned
            }
            ConfigRef::Word(w, sp) => ast::Call {
                name: ast::Ident {
                    name: w.clone(),
                    span: *sp,
                },
                args: vec![],
                span: *sp,
            },
        };
        match call.name.name.as_str() {
            "euler" | "rk4" => {
                let a = self.bind_args(&call, &["steps"], 0)?;
                let steps = a[0]
                    .map(|e| self.positive(e, "the number of solver steps"))
                    .unwrap_or(Some(4))?;
                Some(if call.name.name == "euler" {
                    Solver::Euler { steps }
                } else {
                    Solver::Rk4 { steps }
                })
            }
            "dopri5" => {
                let a = self.bind_args(&call, &["rtol", "atol"], 0)?;
                let rtol = a[0].map(|e| self.float(e)).unwrap_or(Some(1e-3))?;
                let atol = a[1].map(|e| self.float(e)).unwrap_or(Some(1e-3))?;
                if rtol <= 0.0 || atol <= 0.0 {
                    self.err(
                        Diagnostic::error("E202", "solver tolerances must be positive")
                            .with_primary(call.span, "non-positive tolerance"),
                    );
                    return None;
                }
                Some(Solver::Dopri5 { rtol, atol })
            }
            other => {
                self.err(
                    Diagnostic::error("E202", format!("unknown solver `{other}`"))
                        .with_primary(call.name.span, "expected `euler`, `rk4` or `dopri5`")
                        .suggest(other, ["euler", "rk4", "dopri5"]),
                );
                None
            }
        }
    }
}

/// Output size of a conv/pool along one axis, `None` when it would be empty.
pub(super) fn conv_out(n: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    let padded = n + 2 * pad;
    if padded < k || stride == 0 {
        return None;
    }
    Some((padded - k) / stride + 1)
}
