//! Values and coercion: arguments to numbers, whole numbers, positive counts, lists, one of a
//! set of words, or a configuration call, each also reached through a block parameter; block
//! arguments to compile-time values; argument binding for sema's own calls.

use super::args;
use super::state::{join, src_word, Sema, Val};
use crate::ast::{self, Expr, ExprKind, Span};
use crate::diagnostics::Diagnostic;
use crate::ir::MAX_INT;

/// A configuration expression, possibly reached through a block parameter.
pub(super) enum ConfigRef<'e> {
    Call(&'e ast::Call),
    Owned(Expr),
    Word(String, Span),
}

impl<'a> Sema<'a> {
    /// Evaluates a block argument (a number, list, word, or tensor value) in the current scope.
    pub(super) fn const_val(&mut self, e: &Expr) -> Option<Val> {
        match &e.kind {
            ExprKind::Number(v, _) => {
                if !v.is_finite() {
                    self.err(
                        Diagnostic::error("E202", "number out of range")
                            .with_primary(e.span, "not finite"),
                    );
                    return None;
                }
                Some(Val::Num(*v))
            }
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for i in items {
                    out.push(self.const_val(i)?);
                }
                Some(Val::List(out))
            }
            ExprKind::Ident(name) => match self.lookup(name) {
                Some((v, _, _)) => Some(v),
                None if self.embeds.contains_key(name)
                    || self.time.as_ref().is_some_and(|t| &t.name == name) =>
                {
                    self.name_value(name, e.span).map(Val::Node)
                }
                None => Some(Val::Sym(name.clone())),
            },
            ExprKind::Call(_) | ExprKind::Record(_) => Some(Val::Expr(Box::new(e.clone()))),
            ExprKind::Pipe(_) | ExprKind::Sum(_) | ExprKind::Labeled(..) => {
                let base = self.scopes.last().expect("a scope").prefix.clone();
                self.value(e, &join(&base, "arg")).map(Val::Node)
            }
        }
    }

    /// Binds a call's arguments to `names` (the first `required` are mandatory).
    pub(super) fn bind_args<'e>(
        &mut self,
        c: &'e ast::Call,
        names: &[&str],
        required: usize,
    ) -> Option<Vec<Option<&'e Expr>>> {
        args::bind(self.diags, c, names, required)
    }

    /// A number argument that must lie in a range: E202 "{subject} must be in {range}, found v"
    /// at the argument otherwise.
    pub(super) fn number_in(
        &mut self,
        e: &Expr,
        what: &str,
        (subject, range): (&str, &str),
        ok: impl Fn(f64) -> bool,
    ) -> Option<f64> {
        let v = self.number(e, what)?;
        if !ok(v) {
            self.err(
                Diagnostic::error("E202", format!("{subject} must be in {range}, found {v}"))
                    .with_primary(e.span, "out of range"),
            );
            return None;
        }
        Some(v)
    }

    /// A number argument, through block parameters.
    pub(super) fn number(&mut self, e: &Expr, what: &str) -> Option<f64> {
        match &e.kind {
            ExprKind::Number(v, _) => {
                if v.is_finite() {
                    Some(*v)
                } else {
                    self.err(
                        Diagnostic::error("E202", "number out of range")
                            .with_primary(e.span, "not finite"),
                    );
                    None
                }
            }
            ExprKind::Ident(name) => match self.lookup(name) {
                Some((Val::Num(v), _, _)) => Some(v),
                Some(_) => {
                    self.err(
                        Diagnostic::error(
                            "E201",
                            format!("expected a number for {what}, `{name}` is not one"),
                        )
                        .with_primary(e.span, "not a number"),
                    );
                    None
                }
                None => {
                    let names = self.visible_names();
                    self.err(
                        Diagnostic::error("E101", format!("unknown name `{name}`"))
                            .with_primary(e.span, format!("expected a number for {what}"))
                            .suggest(name, names.iter().map(String::as_str)),
                    );
                    None
                }
            },
            _ => {
                self.err(
                    Diagnostic::error(
                        "E201",
                        format!("expected a number for {what}, found {}", e.describe()),
                    )
                    .with_primary(e.span, "not a number"),
                );
                None
            }
        }
    }

    pub(super) fn float(&mut self, e: &Expr) -> Option<f64> {
        self.number(e, "this argument")
    }

    pub(super) fn integer(&mut self, e: &Expr, what: &str) -> Option<usize> {
        let v = self.number(e, what)?;
        if v > MAX_INT as f64 && v.fract() == 0.0 {
            self.err(
                Diagnostic::error("E202", format!("{what} is too large: {}", fmt_num(v)))
                    .with_primary(e.span, format!("at most {MAX_INT}")),
            );
            return None;
        }
        if v.fract() != 0.0 || v < 0.0 {
            self.err(
                Diagnostic::error(
                    "E201",
                    format!("{what} must be a whole number, found {}", fmt_num(v)),
                )
                .with_primary(e.span, "expected a non-negative integer"),
            );
            return None;
        }
        Some(v as usize)
    }

    pub(super) fn positive(&mut self, e: &Expr, what: &str) -> Option<usize> {
        let v = self.integer(e, what)?;
        if v == 0 {
            self.err(
                Diagnostic::error("E202", format!("{what} must be at least 1"))
                    .with_primary(e.span, "zero is not allowed"),
            );
            return None;
        }
        Some(v)
    }

    /// A list of whole numbers (through block parameters).
    pub(super) fn int_list(&mut self, e: &Expr, what: &str) -> Option<Vec<usize>> {
        let val = self.const_val(e)?;
        let Val::List(items) = val else {
            self.err(
                Diagnostic::error(
                    "E201",
                    format!("expected a list for {what}, found {}", e.describe()),
                )
                .with_primary(e.span, "write e.g. `[1, 2, 2, 2]`"),
            );
            return None;
        };
        let mut out = Vec::new();
        let at = |i: usize| item_span(e, i);
        for (i, it) in items.into_iter().enumerate() {
            match it {
                Val::Num(v) if v.fract() == 0.0 && v >= 0.0 && v <= MAX_INT as f64 => {
                    out.push(v as usize)
                }
                Val::Num(v) if v.fract() == 0.0 && v > MAX_INT as f64 => {
                    self.err(
                        Diagnostic::error("E202", format!("{what}: {v} is too large"))
                            .with_primary(at(i), format!("at most {MAX_INT}")),
                    );
                    return None;
                }
                _ => {
                    self.err(
                        Diagnostic::error("E201", format!("{what} must be whole numbers"))
                            .with_primary(at(i), "expected a non-negative integer"),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A word argument that must be one of `choices` (through block parameters).
    pub(super) fn choice(&mut self, e: &Expr, what: &str, choices: &[&str]) -> Option<String> {
        let word = match &e.kind {
            ExprKind::Ident(n) => match self.lookup(n) {
                Some((Val::Sym(s), _, _)) => s,
                _ => n.clone(),
            },
            ExprKind::Call(c) => c.name.name.clone(),
            _ => String::new(),
        };
        if choices.contains(&word.as_str()) {
            return Some(word);
        }
        let list = choices
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.err(
            Diagnostic::error("E202", format!("unknown {what} `{}`", src_word(e)))
                .with_primary(e.span, format!("expected one of {list}"))
                .suggest(&word, choices.iter().copied()),
        );
        None
    }

    /// A configuration call (`dopri5(rtol = 1e-3)`) or bare word, through block parameters.
    pub(super) fn config<'e>(&mut self, e: &'e Expr) -> Option<ConfigRef<'e>> {
        match &e.kind {
            ExprKind::Call(c) => Some(ConfigRef::Call(c)),
            ExprKind::Ident(n) => match self.lookup(n) {
                Some((Val::Expr(b), _, _)) => Some(ConfigRef::Owned(*b)),
                Some((Val::Sym(s), _, _)) => Some(ConfigRef::Word(s, e.span)),
                _ => Some(ConfigRef::Word(n.clone(), e.span)),
            },
            _ => {
                self.err(
                    Diagnostic::error(
                        "E201",
                        format!("expected a setting, found {}", e.describe()),
                    )
                    .with_primary(e.span, "not a setting"),
                );
                None
            }
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Item `i`'s own span where a list is written out, else the whole value's.
pub(super) fn item_span(e: &Expr, i: usize) -> Span {
    match &e.kind {
        ExprKind::List(xs) => xs.get(i).map_or(e.span, |x| x.span),
        _ => e.span,
    }
}
