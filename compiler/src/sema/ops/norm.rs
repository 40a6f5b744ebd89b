//! Normalizations: `group(G)` / `group(per_group = m)` / `group(G, min_per_group = m)` (each
//! with an optional `eps`), `batch`, `instance`, `layer` / `layer(over = channels)`, and the
//! model's default `norm = ...` (same parser); the group count resolved for the channels that
//! arrive, with a divisibility error that proposes one.

use super::builder::Layer;
use crate::ast::{Expr, ExprKind, Span};
use crate::diagnostics::Diagnostic;
use crate::ir::{NodeId, NormKind, Op, Shape};
use crate::sema::state::{src_word, NormOpts, NormSpec, Sema};

/// The arguments of `group(...)`, as a layer and as the default normalization.
pub(super) const GROUP_ARGS: &[&str] = &["groups", "per_group", "min_per_group", "eps", "affine"];

/// The arguments of `batch` and `instance`.
pub(super) const NORM_ARGS: &[&str] = &["eps", "affine"];

/// The arguments of `layer`: `over = all` (C, H, W; the default) or `over = channels` (the C
/// channels at each position).
pub(super) const LAYER_ARGS: &[&str] = &["eps", "affine", "over"];

/// `group(...)`, `batch`, `instance`, `layer` as a pipeline stage.
pub(super) fn norm(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, _, c, name) = l.parts();
    let word = def.name;
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
    let spec = s.norm_spec(&e)?;
    s.norm(input, spec, c.span, None, name)
}

impl<'a> Sema<'a> {
    /// Parses a normalization setting: `group(32)`, `group(per_group = 4)`, `batch`, ...
    pub(in crate::sema) fn norm_spec(&mut self, e: &Expr) -> Option<NormSpec> {
        let (word, call) = match &e.kind {
            ExprKind::Ident(w) => (w.as_str(), None),
            ExprKind::Call(c) => (c.name.name.as_str(), Some(c)),
            _ => ("", None),
        };
        match word {
            "batch" | "instance" | "layer" => {
                let (opts, per_position) = match call {
                    Some(c) => {
                        if let Some(a) = c.args.iter().find(|a| a.name.is_none()) {
                            let takes = if word == "layer" {
                                "`eps = e`, `affine = false` and `over = channels`"
                            } else {
                                "`eps = e` and `affine = false`"
                            };
                            self.err(
                                Diagnostic::error("E105", format!("`{word}` takes only {takes}"))
                                    .with_primary(a.span, "name the argument"),
                            );
                            return None;
                        }
                        let names = if word == "layer" {
                            LAYER_ARGS
                        } else {
                            NORM_ARGS
                        };
                        let a = self.bind_args(c, names, 0)?;
                        let opts = self.norm_opts(a[0], a[1])?;
                        let per_position = match a.get(2).copied().flatten() {
                            Some(e) => {
                                self.choice(e, "layer norm extent", &["all", "channels"])?
                                    == "channels"
                            }
                            None => false,
                        };
                        (opts, per_position)
                    }
                    None => (
                        NormOpts {
                            eps: None,
                            affine: true,
                        },
                        false,
                    ),
                };
                Some(match word {
                    "batch" => NormSpec::Batch(opts),
                    "instance" => NormSpec::Instance(opts),
                    _ if per_position => NormSpec::PerPosition(opts),
                    _ => NormSpec::Layer(opts),
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
                let a = self.bind_args(c, GROUP_ARGS, 0)?;
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
                let opts = self.norm_opts(a[3], a[4])?;
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
                    opts,
                })
            }
            _ => {
                self.err(
                    Diagnostic::error("E102", format!("unknown normalization `{}`", src_word(e)))
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

    /// `eps = e` and `affine = true|false` of a normalization.
    fn norm_opts(&mut self, eps: Option<&Expr>, affine: Option<&Expr>) -> Option<NormOpts> {
        let eps = match eps {
            Some(e) => Some(self.number_in(
                e,
                "the variance epsilon",
                ("a norm's epsilon", "(0, 1]"),
                |v| v > 0.0 && v <= 1.0,
            )?),
            None => None,
        };
        let affine = match affine {
            Some(e) => self.choice(e, "affine setting", &["true", "false"])? == "true",
            None => true,
        };
        Some(NormOpts { eps, affine })
    }

    /// Resolves a norm for `input`'s channels and adds it.
    pub(in crate::sema) fn norm(
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
        if matches!(kind, NormKind::Instance | NormKind::PerPosition)
            && !matches!(shape, Shape::Image { .. })
        {
            let (what, help) = if matches!(kind, NormKind::Instance) {
                ("instance normalization", None)
            } else {
                (
                    "a layer norm over the channels at each position",
                    Some("a vector has one position: write `layer`"),
                )
            };
            let mut d = Diagnostic::error("E207", format!("{what} needs a feature map"))
                .with_primary(span, format!("the input is {shape}"));
            if let Some(h) = help {
                d = d.with_help(h);
            }
            self.err(d);
            return None;
        }
        let op = Op::Norm {
            kind,
            channels: c,
            affine: spec.affine(),
            eps: spec.eps(),
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

    /// The norm `spec` asks for on `c` channels, with its group count checked (E203 at `span`,
    /// pointing also at the setting `decl` when the model's default is used).
    pub(super) fn resolve_norm_kind(
        &mut self,
        spec: NormSpec,
        c: usize,
        span: Span,
        decl: Option<Span>,
    ) -> Option<NormKind> {
        Some(match spec {
            NormSpec::Batch(_) => NormKind::Batch,
            NormSpec::Instance(_) => NormKind::Instance,
            NormSpec::Layer(_) => NormKind::Layer,
            NormSpec::PerPosition(_) => NormKind::PerPosition,
            NormSpec::Group {
                groups,
                per_group,
                min_per_group,
                ..
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
}
