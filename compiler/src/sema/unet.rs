//! `unet(base, mult, blocks, resblock, attention, out)`: expands the DDPM UNet topology into the
//! graph: a 3x3 head conv; per level `blocks` resblocks (with attention at the listed
//! resolutions) and a strided-conv down-sample; a middle res/attention/res; per level on the
//! way up `blocks + 1` resblocks that each consume one skip, and a nearest-upsample + conv;
//! then norm, SiLU and a 3x3 conv back to the image channels. Names follow the structure:
//! `head`, `down.1.res0`, `down.1.attn0`, `down.1.down`, `mid.res0`, `mid.attn`, `up.0.res2`,
//! `up.1.up`, `tail.0`.

use super::state::Sema;
use crate::ast::{self, Arg, Expr, ExprKind};
use crate::diagnostics::Diagnostic;
use crate::ir::*;

impl<'a> Sema<'a> {
    pub(super) fn unet(&mut self, c: &ast::Call, x: NodeId) -> Option<NodeId> {
        let a = self.bind_args(
            c,
            &[
                "base",
                "mult",
                "blocks",
                "resblock",
                "attention",
                "out",
                "downsample_padding",
                "heads",
                "head_dim",
                "down_attention",
                "up_attention",
                "mid_attention",
                "divide_by_time",
            ],
            4,
        )?;
        let base = self.positive(a[0]?, "the base channel count")?;
        let mult = self.int_list(a[1]?, "the channel multipliers")?;
        if mult.is_empty() || mult.contains(&0) {
            self.err(
                Diagnostic::error(
                    "E202",
                    "the channel multipliers must be a non-empty list of positive numbers",
                )
                .with_primary(a[1]?.span, "e.g. `[1, 2, 2, 2]`"),
            );
            return None;
        }
        let nblocks = self.positive(a[2]?, "the number of blocks per level")?;
        let rexpr = a[3]?;
        let Some(rname) = rexpr.as_ident().map(str::to_string) else {
            self.err(
                Diagnostic::error("E201", "`resblock` names a block")
                    .with_primary(rexpr.span, format!("found {}", rexpr.describe())),
            );
            return None;
        };
        let Some(def) = self.blocks.get(rname.as_str()).copied() else {
            let names: Vec<String> = self.blocks.keys().cloned().collect();
            self.err(
                Diagnostic::error("E108", format!("unknown block `{rname}`"))
                    .with_primary(rexpr.span, "no block has this name")
                    .suggest(&rname, names.iter().map(String::as_str)),
            );
            return None;
        };
        if def.params.is_empty() {
            self.err(
                Diagnostic::error(
                    "E105",
                    format!("the UNet's resblock `{rname}` must take the output channels"),
                )
                .with_primary(rexpr.span, "called as `resblock(out)`")
                .with_secondary(def.name.span, "declared without parameters")
                .with_help(format!("declare it as `block {rname}(out)(h) {{ ... }}`")),
            );
            return None;
        }
        let attention = match a[4] {
            Some(e) => self.int_list(e, "the attention resolutions")?,
            None => Vec::new(),
        };
        let divide = match a[12] {
            Some(e) => self.choice(e, "divide_by_time setting", &["true", "false"])? == "true",
            None => false,
        };
        let down_attention = match a[9] {
            Some(e) => self.int_list(e, "the attention resolutions on the way down")?,
            None => attention.clone(),
        };
        let up_attention = match a[10] {
            Some(e) => self.int_list(e, "the attention resolutions on the way up")?,
            None => attention.clone(),
        };
        if let (Some(h), Some(d)) = (a[7], a[8]) {
            self.err(
                Diagnostic::error("E105", "`unet` takes `heads` or `head_dim`, not both")
                    .with_primary(d.span, "remove one")
                    .with_secondary(h.span, "the number of heads set here"),
            );
            return None;
        }
        // The head setting every attention of the UNet takes.
        let head_args: Vec<Arg> = [("heads", a[7]), ("head_dim", a[8])]
            .into_iter()
            .filter_map(|(k, v)| {
                let v = v?;
                Some(Arg {
                    name: Some(ast::Ident {
                        name: k.into(),
                        span: v.span,
                    }),
                    span: v.span,
                    value: v.clone(),
                })
            })
            .collect();
        // `mid_attention = none` drops the middle attention; `attention(...)` sets its own.
        let mid_attention: Option<ast::Call> = match a[11] {
            None => Some(ast::Call {
                name: ast::Ident {
                    name: "attention".into(),
                    span: c.span,
                },
                args: head_args.clone(),
                span: c.span,
            }),
            Some(e) if e.as_ident() == Some("none") => None,
            Some(Expr {
                kind: ExprKind::Call(m),
                ..
            }) if m.name.name == "attention" => {
                let mut m = m.clone();
                let named = |a: &Arg, k: &str| a.name.as_ref().is_some_and(|n| n.name == k);
                let own_heads = m
                    .args
                    .iter()
                    .any(|x| x.name.is_none() || named(x, "heads") || named(x, "head_dim"));
                if !own_heads {
                    m.args.extend(head_args.iter().cloned());
                }
                Some(m)
            }
            Some(e) => {
                self.err(
                    Diagnostic::error("E201", "`mid_attention` is `none` or an `attention(...)`")
                        .with_primary(e.span, format!("found {}", e.describe()))
                        .with_help("e.g. `mid_attention = attention(norm = none)`"),
                );
                return None;
            }
        };
        let Shape::Image {
            c: in_ch, h: res0, ..
        } = self.node_shape(x)
        else {
            return None;
        };
        // diffusers' `downsample_padding`: 1 pads the strided conv symmetrically, 0 (DDPM's)
        // pads only the bottom and right.
        let down_pad = a[6].cloned();
        let out_ch = match a[5] {
            Some(e) => self.positive(e, "the output channels")?,
            None => in_ch,
        };
        let levels = mult.len();
        if levels > 16 {
            self.err(
                Diagnostic::error("E202", format!("a UNet with {levels} levels is too deep"))
                    .with_primary(a[1]?.span, "at most 16 levels"),
            );
            return None;
        }
        let resolutions: Vec<usize> = (0..levels).map(|i| res0 >> i).collect();
        if res0 % (1 << (levels - 1)) != 0 || resolutions.contains(&0) {
            self.err(
                Diagnostic::error(
                    "E206",
                    format!(
                        "a {res0}x{res0} input cannot be halved {} times",
                        levels - 1
                    ),
                )
                .with_primary(a[1]?.span, format!("{levels} levels"))
                .with_help("use fewer levels or a larger input"),
            );
            return None;
        }
        let mut bad = false;
        let lists = [
            (a[4], &attention),
            (a[9], &down_attention),
            (a[10], &up_attention),
        ];
        for (e, values) in lists.iter().filter_map(|(e, v)| Some(((*e)?, *v))) {
            for (i, r) in values
                .iter()
                .enumerate()
                .filter(|(_, r)| !resolutions.contains(r))
            {
                let span = super::values::item_span(e, i);
                let list = resolutions
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                self.err(
                    Diagnostic::error(
                        "E210",
                        format!("attention at resolution {r} matches no UNet level"),
                    )
                    .with_primary(span, "no level has this resolution")
                    .with_help(format!("the levels have resolutions {list}")),
                );
                bad = true;
            }
        }
        if bad {
            return None;
        }

        let num = |v: usize, sp| Expr {
            kind: ExprKind::Number(v as f64, v.to_string()),
            span: sp,
        };
        let sp = c.span;
        let call = |name: &str, args: Vec<Expr>| ast::Call {
            name: ast::Ident {
                name: name.to_string(),
                span: sp,
            },
            args: args
                .into_iter()
                .map(|v| Arg {
                    name: None,
                    span: v.span,
                    value: v,
                })
                .collect(),
            span: sp,
        };
        let attn_call = || {
            let mut c = call("attention", vec![]);
            c.args = head_args.clone();
            c
        };
        let res_call = |out: usize| ast::Call {
            name: ast::Ident {
                name: rname.clone(),
                span: rexpr.span,
            },
            args: vec![Arg {
                name: None,
                value: num(out, rexpr.span),
                span: rexpr.span,
            }],
            span: rexpr.span,
        };

        let mut h = self.builtin(x, &call("conv3", vec![num(base, sp)]), "head".into())?;
        let mut skips = vec![h];
        let mut now = base;
        for (i, m) in mult.iter().enumerate() {
            let out = base.saturating_mul(*m).min(MAX_INT);
            for j in 0..nblocks {
                h = self.invoke_block(def, &res_call(out), h, format!("down.{i}.res{j}"))?;
                now = out;
                if down_attention.contains(&resolutions[i]) {
                    h = self.builtin(h, &attn_call(), format!("down.{i}.attn{j}"))?;
                }
                skips.push(h);
            }
            if i + 1 != levels {
                let mut down = call("downsample", vec![]);
                if let Some(p) = &down_pad {
                    down.args.push(Arg {
                        name: Some(ast::Ident {
                            name: "pad".into(),
                            span: p.span,
                        }),
                        span: p.span,
                        value: p.clone(),
                    });
                }
                h = self.builtin(h, &down, format!("down.{i}.down"))?;
                skips.push(h);
            }
        }
        h = self.invoke_block(def, &res_call(now), h, "mid.res0".into())?;
        if let Some(m) = &mid_attention {
            h = self.builtin(h, m, "mid.attn".into())?;
        }
        h = self.invoke_block(def, &res_call(now), h, "mid.res1".into())?;
        for (i, m) in mult.iter().enumerate().rev() {
            let out = base.saturating_mul(*m).min(MAX_INT);
            for j in 0..=nblocks {
                let skip = skips.pop()?;
                let joined = self.join_skip(h, skip, &format!("up.{i}.cat{j}"), sp)?;
                h = self.invoke_block(def, &res_call(out), joined, format!("up.{i}.res{j}"))?;
                if up_attention.contains(&resolutions[i]) {
                    h = self.builtin(h, &attn_call(), format!("up.{i}.attn{j}"))?;
                }
            }
            if i != 0 {
                h = self.builtin(h, &call("upsample", vec![]), format!("up.{i}.up.0"))?;
                h = self.builtin(
                    h,
                    &call("conv3", vec![num(out, sp)]),
                    format!("up.{i}.up.1"),
                )?;
            }
        }
        let norm = ast::Call {
            name: ast::Ident {
                name: "norm".into(),
                span: sp,
            },
            args: vec![],
            span: sp,
        };
        h = self.apply(h, &norm, "tail.0".into())?;
        h = self.builtin(h, &call("silu", vec![]), "tail.1".into())?;
        h = self.builtin(h, &call("conv3", vec![num(out_ch, sp)]), "tail.2".into())?;
        // diffusers' Fourier-time UNet divides its output by t (the noise level).
        if divide {
            let e = a[12]?;
            let c = ast::Call {
                name: ast::Ident {
                    name: "divide_by_time".into(),
                    span: e.span,
                },
                args: vec![],
                span: e.span,
            };
            h = self.builtin(h, &c, "tail.3".into())?;
        }
        Some(h)
    }

    fn join_skip(
        &mut self,
        h: NodeId,
        skip: NodeId,
        name: &str,
        span: ast::Span,
    ) -> Option<NodeId> {
        let (
            Shape::Image {
                c: c1,
                h: h1,
                w: w1,
            },
            Shape::Image {
                c: c2,
                h: h2,
                w: w2,
            },
        ) = (self.node_shape(h), self.node_shape(skip))
        else {
            return None;
        };
        if (h1, w1) != (h2, w2) {
            self.err(
                Diagnostic::error(
                    "E205",
                    format!("UNet skip of {h2}x{w2} meets a {h1}x{w1} feature map"),
                )
                .with_primary(span, "the resolutions of the way down and up differ"),
            );
            return None;
        }
        Some(self.push_raw(
            Op::Concat,
            vec![h, skip],
            Shape::Image {
                c: c1 + c2,
                h: h1,
                w: w1,
            },
            name.to_string(),
            span,
        ))
    }
}
