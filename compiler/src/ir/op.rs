//! What an op is made of beyond its fields: its parameters (names, shapes, roles for the
//! initialization and the bias policy), its description in tables, and its constructors.

use super::{InjectMode, InjectionMode, Op, ParamInfo, ParamRole, TimeChannel};

impl Op {
    /// A plain convolution: one group, a bias, no time channel.
    pub fn plain_conv(cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Op {
        Op::Conv {
            cin,
            cout,
            k,
            stride,
            pad,
            groups: 1,
            bias: true,
            time: TimeChannel::None,
        }
    }

    /// Whether (and how) the op feeds the time signal into the feature path.
    pub fn injection(&self) -> Option<InjectionMode> {
        match self {
            Op::Conv { time, .. } => match time {
                TimeChannel::None => None,
                TimeChannel::Constant => Some(InjectionMode::ConcatConstant),
                TimeChannel::Positional => Some(InjectionMode::ConcatPositional),
            },
            Op::Inject { mode, .. } => Some(match mode {
                InjectMode::Offset => InjectionMode::Offset,
                InjectMode::Positional => InjectionMode::PositionalMap,
            }),
            Op::ScaleShift { .. } => Some(InjectionMode::ScaleShift),
            Op::DivTime => Some(InjectionMode::DivideByTime),
            _ => None,
        }
    }

    /// The parameters a node with this op owns, named `<name>.<tensor>` and shaped as PyTorch
    /// names and shapes them; biases are time-branch biases when the node is on the time branch.
    pub fn params(&self, name: &str, time_branch: bool) -> Vec<ParamInfo> {
        let p = |t: &str, shape: Vec<usize>, role| {
            // `{name}.{t}`, sized once (every node makes its parameters' names).
            let mut full = String::with_capacity(name.len() + 1 + t.len());
            full.push_str(name);
            full.push('.');
            full.push_str(t);
            ParamInfo {
                name: full,
                shape,
                role,
            }
        };
        let bias_role = if time_branch {
            ParamRole::TimeBias
        } else {
            ParamRole::OperandBias
        };
        match *self {
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
            Op::Attention {
                channels: c, norm, ..
            } => {
                let c3 = 3usize.saturating_mul(c);
                let normed = [
                    p("norm.weight", vec![c], ParamRole::NormScale),
                    p("norm.bias", vec![c], ParamRole::NormShift),
                ];
                let n = if norm.is_some() { 2 } else { 0 };
                normed
                    .into_iter()
                    .take(n)
                    .chain([
                        p("qkv.weight", vec![c3, c, 1, 1], ParamRole::Weight),
                        p("qkv.bias", vec![c3], ParamRole::OperandBias),
                        p("proj.weight", vec![c, c, 1, 1], ParamRole::Weight),
                        p("proj.bias", vec![c], ParamRole::OperandBias),
                    ])
                    .collect()
            }
            Op::LearnedTime { steps, dim } => vec![p("weight", vec![steps, dim], ParamRole::Table)],
            Op::Fourier { dim, .. } => vec![p("weight", vec![dim / 2], ParamRole::Frozen)],
            Op::ClassEmbed { classes, dim } => {
                vec![p("weight", vec![classes, dim], ParamRole::Table)]
            }
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

    /// A short human name with the op's settings, for tables.
    pub fn describe(&self) -> String {
        match self {
            Op::Input => "input".into(),
            Op::Time => "time".into(),
            Op::Conv {
                cin,
                cout,
                k,
                stride,
                pad,
                groups,
                time,
                bias,
            } => {
                let mut s = format!("conv {k}x{k}");
                if *stride != 1 {
                    s += &format!(" s{stride}");
                }
                s += &format!(" p{pad} {cin}->{cout}");
                if *groups != 1 {
                    s += &format!(" g{groups}");
                }
                if !bias {
                    s += " nobias";
                }
                match time {
                    TimeChannel::None => {}
                    TimeChannel::Constant => s += " +t (concat)",
                    TimeChannel::Positional => s += " +t (concat positional)",
                }
                s
            }
            Op::Linear { din, dout, .. } => format!("linear {din}->{dout}"),
            Op::Norm { kind, .. } => format!("norm {kind}"),
            Op::Act { act } => act.name().into(),
            Op::Dropout { p } => format!("dropout {p}"),
            Op::AvgPool { k, stride } => format!("avgpool {k}x{k} s{stride}"),
            Op::GlobalAvgPool => "avgpool global".into(),
            Op::Upsample { factor } => format!("upsample nearest x{factor}"),
            Op::Attention { heads, norm, .. } => format!(
                "attention ({heads} head{}{})",
                if *heads == 1 { "" } else { "s" },
                if norm.is_none() { ", no norm" } else { "" }
            ),
            Op::Flatten => "flatten".into(),
            Op::Pad { before, after } => format!("zero pad ({before}, {after})"),
            Op::Add => "add".into(),
            Op::Concat => "concat".into(),
            Op::Sinusoidal {
                dim,
                scale: s,
                flip,
                shift: k,
                max_period: p,
            } => [
                (true, format!("sinusoidal {dim}")),
                (*s != 1.0, format!(" of {s}·t")),
                (*flip, ", cosines first".into()),
                (
                    *k != 1.0 || *p != 1e4,
                    format!(", shift {k}, max period {p}"),
                ),
            ]
            .into_iter()
            .filter_map(|(on, part)| on.then_some(part))
            .collect(),
            Op::Inject {
                mode: InjectMode::Offset,
                din,
                channels,
            } => format!("inject offset {din}->{channels}"),
            Op::Inject {
                mode: InjectMode::Positional,
                din,
                channels,
            } => {
                format!("inject positional {din}->{channels}")
            }
            Op::ScaleShift { din, channels } => format!("scale_shift {din}->2x{channels}"),
            Op::LearnedTime { steps, dim } => format!("learned {steps}x{dim}"),
            Op::Fourier {
                dim,
                scale,
                log,
                flip,
            } => format!(
                "fourier {dim}, scale {scale}{}{}",
                if *log { ", of log t" } else { "" },
                if *flip { ", cos first" } else { "" }
            ),
            Op::DivTime => "divide by t".into(),
            Op::ClassEmbed { classes, dim } => format!("+ class table {classes}x{dim}"),
            Op::Ode { solver, t0, t1, .. } => format!("ode [{t0}, {t1}] {solver}"),
        }
    }
}
