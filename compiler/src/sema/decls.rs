//! Declarations: blocks (checked for duplicate names, shadowed built-ins and their one input),
//! the image input, the time input (kind and sharing), and the bias policy.

use super::ops;
use super::state::{src_word, Sema};
use crate::ast::{self, BlockDef, Expr, ExprKind, Span, Stmt};
use crate::diagnostics::Diagnostic;
use crate::ir::{BiasInit, InputInfo, LabelInfo, Sharing, TimeInfo, TimeKind};
use std::collections::HashMap;

impl<'a> Sema<'a> {
    pub(super) fn declare_block(&mut self, b: &'a BlockDef) {
        if let Some(prev) = self.blocks.get(&b.name.name) {
            let prev = prev.name.span;
            self.err(
                Diagnostic::error("E104", format!("block `{}` is defined twice", b.name.name))
                    .with_primary(b.name.span, "second definition")
                    .with_secondary(prev, "first defined here"),
            );
            return;
        }
        if ops::is_builtin(&b.name.name) || b.name.name == "norm" {
            self.err(
                Diagnostic::error(
                    "E104",
                    format!("block `{}` has the name of a built-in layer", b.name.name),
                )
                .with_primary(b.name.span, "shadows the built-in")
                .with_help("choose another name for the block"),
            );
            return;
        }
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for p in b.params.iter().chain(&b.inputs) {
            if let Some(prev) = seen.insert(&p.name.name, p.name.span) {
                self.err(
                    Diagnostic::error(
                        "E104",
                        format!("parameter `{}` is declared twice", p.name.name),
                    )
                    .with_primary(p.name.span, "second declaration")
                    .with_secondary(prev, "first declared here"),
                );
            }
        }
        if b.inputs.len() != 1 {
            self.err(
                Diagnostic::error(
                    "E105",
                    format!("block `{}` must take exactly one input", b.name.name),
                )
                .with_primary(
                    b.span.to(b.name.span),
                    format!("declares {} inputs", b.inputs.len()),
                )
                .with_help(
                    "write `block NAME(params)(h) { ... }`; other values are visible by name",
                ),
            );
        }
        self.blocks.insert(b.name.name.clone(), b);
    }

    pub(super) fn input_decl(
        &mut self,
        st: &Stmt,
        name: &ast::Ident,
        kind: &ast::Ident,
        dims: &[Expr],
    ) {
        if kind.name == "label" {
            return self.label_decl(st, name, dims);
        }
        if let Some(prev) = &self.input {
            let prev = prev.span;
            self.err(
                Diagnostic::error("E104", "the model declares two inputs")
                    .with_primary(st.span, "second input")
                    .with_secondary(prev, "first input here")
                    .with_help("tdspec models take one image input"),
            );
            return;
        }
        if kind.name != "image" {
            self.err(
                Diagnostic::error("E201", format!("unknown input kind `{}`", kind.name))
                    .with_primary(kind.span, "expected `image` or `label`")
                    .suggest(&kind.name, ["image", "label"]),
            );
            return;
        }
        if dims.len() != 3 {
            self.err(
                Diagnostic::error(
                    "E201",
                    format!("an image input has 3 dimensions, found {}", dims.len()),
                )
                .with_primary(st.span, "expected `image[channels, height, width]`"),
            );
            return;
        }
        let mut v = Vec::new();
        for d in dims {
            match self.positive(d, "an image dimension") {
                Some(x) => v.push(x),
                None => return,
            }
        }
        let (c, h, w) = (v[0], v[1], v[2]);
        self.input = Some(InputInfo {
            name: name.name.clone(),
            channels: c,
            height: h,
            width: w,
            span: name.span,
        });
    }

    /// `input y: label[N]`: a class label per sample, `0..N`.
    fn label_decl(&mut self, st: &Stmt, name: &ast::Ident, dims: &[Expr]) {
        if let Some(prev) = &self.label {
            let prev = prev.span;
            self.err(
                Diagnostic::error("E104", "the model declares two label inputs")
                    .with_primary(st.span, "second label input")
                    .with_secondary(prev, "first label input here"),
            );
            return;
        }
        let [d] = dims else {
            self.err(
                Diagnostic::error(
                    "E201",
                    format!("a label input has 1 dimension, found {}", dims.len()),
                )
                .with_primary(st.span, "expected `label[classes]`"),
            );
            return;
        };
        let Some(classes) = self.positive(d, "the number of classes") else {
            return;
        };
        if classes > 1 << 20 {
            self.err(
                Diagnostic::error("E202", format!("{classes} classes are too many"))
                    .with_primary(d.span, "at most 2^20"),
            );
            return;
        }
        self.label = Some(LabelInfo {
            name: name.name.clone(),
            classes,
            span: name.span,
        });
    }

    pub(super) fn time_decl(&mut self, st: &Stmt, name: &ast::Ident, props: &[Expr]) {
        if let Some(prev) = &self.time {
            let prev = prev.span;
            self.err(
                Diagnostic::error("E104", "the model declares two time inputs")
                    .with_primary(st.span, "second time input")
                    .with_secondary(prev, "first time input here"),
            );
            return;
        }
        let mut kind = None;
        let mut sharing = None;
        let mut range = None;
        for p in props {
            let word = match &p.kind {
                ExprKind::Ident(s) => s.as_str(),
                ExprKind::Call(c) => c.name.name.as_str(),
                _ => "",
            };
            match word {
                "continuous" => {
                    kind = Some(TimeKind::Continuous);
                    if let ExprKind::Call(c) = &p.kind {
                        range = self.time_range(c);
                    }
                }
                "step" | "steps" => {
                    let ExprKind::Call(c) = &p.kind else {
                        self.err(
                            Diagnostic::error("E105", "`step` needs the number of diffusion steps")
                                .with_primary(p.span, "write `step(1000)`"),
                        );
                        continue;
                    };
                    if let Some(a) = self.bind_args(c, &["n"], 1) {
                        if let Some(n) = a[0].and_then(|e| self.positive(e, "the number of steps"))
                        {
                            kind = Some(TimeKind::Steps(n));
                        }
                    }
                }
                "shared" => sharing = Some(Sharing::Shared),
                "per_sample" => sharing = Some(Sharing::PerSample),
                _ => {
                    self.err(
                        Diagnostic::error(
                            "E201",
                            format!("unknown time property `{}`", src_word(p)),
                        )
                        .with_primary(
                            p.span,
                            "expected `continuous`, `step(N)`, `shared` or `per_sample`",
                        )
                        .suggest(word, ["continuous", "step", "shared", "per_sample"]),
                    );
                }
            }
        }
        let kind = kind.unwrap_or(TimeKind::Continuous);
        let sharing = sharing.unwrap_or(match kind {
            TimeKind::Continuous => Sharing::Shared,
            TimeKind::Steps(_) => Sharing::PerSample,
        });
        self.time = Some(TimeInfo {
            name: name.name.clone(),
            kind,
            sharing,
            span: name.span,
            range: range.filter(|_| kind == TimeKind::Continuous),
        });
    }

    /// `continuous(low, high)`: the values continuous time takes (finite, `low < high`).
    fn time_range(&mut self, c: &ast::Call) -> Option<(f64, f64)> {
        let a = self.bind_args(c, &["low", "high"], 2)?;
        let (lo, hi) = (self.float(a[0]?)?, self.float(a[1]?)?);
        let ok = |v: f64| v.is_finite() && v.abs() <= 1e12;
        if !ok(lo) || !ok(hi) || lo >= hi {
            self.err(
                Diagnostic::error(
                    "E202",
                    format!("a time range needs finite low < high, found [{lo}, {hi}]"),
                )
                .with_primary(c.span, "not a range of time values")
                .with_help("e.g. `time t: continuous(0.01, 50)` for noise levels"),
            );
            return None;
        }
        Some((lo, hi))
    }

    pub(super) fn bias_policy(&mut self, e: &Expr) {
        let ExprKind::Record(fields) = &e.kind else {
            self.err(
                Diagnostic::error("E201", "the bias policy is a record")
                    .with_primary(e.span, format!("found {}", e.describe()))
                    .with_help("write `bias = { operand: zero, time: normal(0.02) }`"),
            );
            return;
        };
        for (k, v) in fields {
            let init = self.bias_init(v);
            match (k.name.as_str(), init) {
                ("operand", Some(i)) => self.bias.operand = i,
                ("time", Some(i)) => self.bias.time = i,
                ("operand" | "time", None) => {}
                (other, _) => {
                    self.err(
                        Diagnostic::error("E103", format!("unknown bias branch `{other}`"))
                            .with_primary(k.span, "expected `operand` or `time`")
                            .suggest(other, ["operand", "time"]),
                    );
                }
            }
        }
    }

    fn bias_init(&mut self, e: &Expr) -> Option<BiasInit> {
        match &e.kind {
            ExprKind::Ident(s) if s == "zero" => Some(BiasInit::Zero),
            ExprKind::Ident(s) if s == "default" => Some(BiasInit::Default),
            ExprKind::Call(c) if c.name.name == "constant" => {
                let a = self.bind_args(c, &["value"], 1)?;
                Some(BiasInit::Constant {
                    value: self.float(a[0]?)?,
                })
            }
            ExprKind::Call(c) if c.name.name == "normal" => {
                let a = self.bind_args(c, &["std"], 1)?;
                let std = self.float(a[0]?)?;
                if std < 0.0 {
                    self.err(
                        Diagnostic::error("E202", "a standard deviation cannot be negative")
                            .with_primary(a[0]?.span, "negative"),
                    );
                    return None;
                }
                Some(BiasInit::Normal { std })
            }
            _ => {
                let word = src_word(e);
                self.err(
                    Diagnostic::error("E201", format!("unknown bias initialization `{word}`"))
                        .with_primary(
                            e.span,
                            "expected `zero`, `default`, `constant(v)` or `normal(std)`",
                        )
                        .suggest(&word, ["zero", "default", "constant", "normal"]),
                );
                None
            }
        }
    }
}
