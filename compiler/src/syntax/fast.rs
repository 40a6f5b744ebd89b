//! The fast path of the parser: a hand-written recursive descent over `grammar/tdspec.pest` that
//! builds the same [`File`] pest's tree walk builds, or gives up. The grammar stays the
//! language's definition and pest its reference: every rule below is that rule of the grammar,
//! element by element, with pest's implicit whitespace where pest puts it (between the elements
//! of a sequence and between the repetitions of a non-atomic rule, never inside an atomic one),
//! so the spans are pest's too (a rule that ends in an optional or a repetition that matched
//! nothing ends after the whitespace before it, as in pest). Choices are ordered and backtrack
//! like PEG's. On any failure it returns `None` and the caller parses with pest, whose errors
//! are the diagnostics: this path never makes one. The differential tests
//! (`compiler/tests/parser_diff.rs`) hold it to pest on every spec corpus and on generated valid
//! and invalid texts.

use crate::ast::*;

/// Parses a whole file, every span counted from `offset`; `None` where pest must decide.
pub(super) fn parse(src: &str, offset: usize) -> Option<File> {
    let p = P {
        src,
        s: src.as_bytes(),
        off: offset,
    };
    // file = { SOI ~ model* ~ EOI }
    let mut models = Vec::new();
    let mut pos = p.skip(0);
    if let Some((m, end)) = p.model(pos) {
        models.push(m);
        pos = end;
        while let Some((m, end)) = p.model(p.skip(pos)) {
            models.push(m);
            pos = end;
        }
    }
    (p.skip(pos) == p.s.len()).then_some(File { models })
}

/// A result: the node and the position after it.
type R<T> = Option<(T, usize)>;

struct P<'a> {
    src: &'a str,
    s: &'a [u8],
    off: usize,
}

fn ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const KEYWORDS: [&[u8]; 5] = [b"model", b"embed", b"block", b"return", b"as"];

impl<'a> P<'a> {
    fn at(&self, pos: usize) -> u8 {
        self.s.get(pos).copied().unwrap_or(0)
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(start + self.off, end + self.off)
    }

    /// pest's implicit `(WHITESPACE | COMMENT)*`: whitespace, `// ...` to the line's end, and
    /// closed `/* ... */` (an unclosed one is not a comment: skipping stops before it).
    fn skip(&self, mut pos: usize) -> usize {
        loop {
            match self.at(pos) {
                b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
                b'/' if self.at(pos + 1) == b'/' => {
                    pos = match self.s[pos..].iter().position(|&b| b == b'\n') {
                        Some(i) => pos + i,
                        None => self.s.len(),
                    }
                }
                b'/' if self.at(pos + 1) == b'*' => {
                    let body = &self.s[pos + 2..];
                    match body.windows(2).position(|w| w == b"*/") {
                        Some(i) => pos += 2 + i + 2,
                        None => return pos,
                    }
                }
                _ => return pos,
            }
        }
    }

    /// A literal token.
    fn lit(&self, pos: usize, t: &[u8]) -> Option<usize> {
        self.s[pos.min(self.s.len())..]
            .starts_with(t)
            .then_some(pos + t.len())
    }

    /// `kw_* = @{ "word" ~ !ident_char }`
    fn kw(&self, pos: usize, word: &[u8]) -> Option<usize> {
        let end = self.lit(pos, word)?;
        (!ident_char(self.at(end))).then_some(end)
    }

    /// `ident = @{ !keyword ~ (ASCII_ALPHA | "_") ~ ident_char* }`
    fn ident_end(&self, pos: usize) -> Option<usize> {
        if KEYWORDS.iter().any(|k| self.kw(pos, k).is_some()) {
            return None;
        }
        let first = self.at(pos);
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        let mut end = pos + 1;
        while ident_char(self.at(end)) {
            end += 1;
        }
        Some(end)
    }

    fn ident(&self, pos: usize) -> R<Ident> {
        let end = self.ident_end(pos)?;
        Some((
            Ident {
                name: self.src[pos..end].to_string(),
                span: self.span(pos, end),
            },
            end,
        ))
    }

    fn digits(&self, mut pos: usize) -> Option<usize> {
        if !self.at(pos).is_ascii_digit() {
            return None;
        }
        while self.at(pos).is_ascii_digit() {
            pos += 1;
        }
        Some(pos)
    }

    /// `number = @{ "-"? ~ ASCII_DIGIT+ ~ ("." ~ ASCII_DIGIT+)? ~ (^"e" ~ ("+" | "-")? ~
    /// ASCII_DIGIT+)? ~ !(ident_char | ".") }`
    fn number(&self, pos: usize) -> R<Expr> {
        let mut p = pos + usize::from(self.at(pos) == b'-');
        p = self.digits(p)?;
        if self.at(p) == b'.' {
            if let Some(e) = self.digits(p + 1) {
                p = e;
            }
        }
        if matches!(self.at(p), b'e' | b'E') {
            let q = p + 1 + usize::from(matches!(self.at(p + 1), b'+' | b'-'));
            if let Some(e) = self.digits(q) {
                p = e;
            }
        }
        let next = self.at(p);
        if ident_char(next) || next == b'.' {
            return None;
        }
        let text = self.src[pos..p].to_string();
        let v = text.parse::<f64>().unwrap_or(f64::NAN);
        Some((
            Expr {
                kind: ExprKind::Number(v, text),
                span: self.span(pos, p),
            },
            p,
        ))
    }

    /// `X ~ ("," ~ X)* ~ ","?` inside brackets, the whole optional: the items and the position
    /// after the list (the opening bracket is at `open`, the closing one is `close`).
    fn list_of<T>(
        &self,
        open: usize,
        o: &[u8],
        c: &[u8],
        item: impl Fn(&Self, usize) -> R<T>,
    ) -> R<Vec<T>> {
        let mut pos = self.skip(self.lit(open, o)?);
        let mut items = Vec::new();
        if let Some((x, end)) = item(self, pos) {
            items.push(x);
            let mut p = self.skip(end);
            // ("," ~ X)*: the first one, then each after whitespace; a failed one takes nothing.
            let mut at = p;
            loop {
                let next = self.lit(at, b",").and_then(|q| item(self, self.skip(q)));
                match next {
                    Some((x, end)) => {
                        items.push(x);
                        p = end;
                        at = self.skip(end);
                    }
                    None => break,
                }
            }
            // `~ ","?`: the whitespace before it is taken whether or not the comma is there.
            p = self.skip(p);
            if let Some(q) = self.lit(p, b",") {
                p = q;
            }
            pos = p;
        }
        let end = self.lit(self.skip(pos), c)?;
        Some((items, end))
    }

    /// `model = { kw_model ~ ident ~ "{" ~ stmt* ~ "}" }`
    fn model(&self, pos: usize) -> R<Model> {
        let p = self.kw(pos, b"model")?;
        let (name, p) = self.ident(self.skip(p))?;
        let p = self.lit(self.skip(p), b"{")?;
        let (stmts, p) = self.stmts(self.skip(p))?;
        let end = self.lit(self.skip(p), b"}")?;
        Some((
            Model {
                name,
                stmts,
                span: self.span(pos, end),
            },
            end,
        ))
    }

    /// `stmt*`: the statements and the position after the last (or `pos`).
    fn stmts(&self, pos: usize) -> R<Vec<Stmt>> {
        let mut out = Vec::new();
        let mut end = pos;
        if let Some((s, e)) = self.stmt(pos) {
            out.push(s);
            end = e;
            while let Some((s, e)) = self.stmt(self.skip(end)) {
                out.push(s);
                end = e;
            }
        }
        Some((out, end))
    }

    /// `stmt = { attr* ~ (input_decl | time_decl | embed_decl | block_decl | task_decl |
    /// train_decl | return_stmt | assign | expr_stmt) ~ ";"? }`
    fn stmt(&self, pos: usize) -> R<Stmt> {
        let mut attrs = Vec::new();
        let mut p = pos;
        if let Some((a, e)) = self.attr(pos) {
            attrs.push(a);
            p = e;
            while let Some((a, e)) = self.attr(self.skip(p)) {
                attrs.push(a);
                p = e;
            }
        }
        let p = self.skip(p);
        let (kind, p) = self
            .input_decl(p)
            .or_else(|| self.time_decl(p))
            .or_else(|| self.embed_decl(p))
            .or_else(|| self.block_decl(p))
            .or_else(|| self.task_decl(p))
            .or_else(|| self.train_decl(p))
            .or_else(|| self.return_stmt(p))
            .or_else(|| self.assign(p))
            .or_else(|| self.expr(p).map(|(e, end)| (StmtKind::Expr(e), end)))?;
        let mut end = self.skip(p);
        if let Some(q) = self.lit(end, b";") {
            end = q;
        }
        Some((
            Stmt {
                attrs,
                kind,
                span: self.span(pos, end),
            },
            end,
        ))
    }

    /// `attr = { "#[" ~ ident ~ ("(" ~ attr_args ~ ")")? ~ "]" }`
    fn attr(&self, pos: usize) -> R<Attr> {
        let p = self.lit(pos, b"#[")?;
        let (name, p) = self.ident(self.skip(p))?;
        let mut p = self.skip(p);
        let mut args = Vec::new();
        let with_args = self.lit(p, b"(").and_then(|q| {
            let (a, q) = self.attr_args(self.skip(q))?;
            Some((a, self.lit(self.skip(q), b")")?))
        });
        if let Some((a, q)) = with_args {
            args = a;
            p = self.skip(q);
        }
        let end = self.lit(p, b"]")?;
        Some((
            Attr {
                name,
                args,
                span: self.span(pos, end),
            },
            end,
        ))
    }

    /// `attr_args = { ident ~ ("," ~ ident)* ~ ","? }`
    fn attr_args(&self, pos: usize) -> R<Vec<Ident>> {
        let (first, mut p) = self.ident(pos)?;
        let mut out = vec![first];
        let mut at = self.skip(p);
        while let Some((x, e)) = self.lit(at, b",").and_then(|q| self.ident(self.skip(q))) {
            out.push(x);
            p = e;
            at = self.skip(e);
        }
        let mut end = self.skip(p);
        if let Some(q) = self.lit(end, b",") {
            end = q;
        }
        Some((out, end))
    }

    /// `input_decl = { kw_input ~ ident ~ ":" ~ ident ~ "[" ~ number ~ ("," ~ number)* ~ "]" }`
    fn input_decl(&self, pos: usize) -> R<StmtKind> {
        let p = self.kw(pos, b"input")?;
        let (name, p) = self.ident(self.skip(p))?;
        let p = self.lit(self.skip(p), b":")?;
        let (kind, p) = self.ident(self.skip(p))?;
        let p = self.lit(self.skip(p), b"[")?;
        let (first, mut p) = self.number(self.skip(p))?;
        let mut dims = vec![first];
        let mut at = self.skip(p);
        while let Some((x, e)) = self.lit(at, b",").and_then(|q| self.number(self.skip(q))) {
            dims.push(x);
            p = e;
            at = self.skip(e);
        }
        let end = self.lit(self.skip(p), b"]")?;
        Some((StmtKind::Input { name, kind, dims }, end))
    }

    /// `time_decl = { kw_time ~ ident ~ ":" ~ expr ~ ("," ~ expr)* }`
    fn time_decl(&self, pos: usize) -> R<StmtKind> {
        let p = self.kw(pos, b"time")?;
        let (name, p) = self.ident(self.skip(p))?;
        let p = self.lit(self.skip(p), b":")?;
        let (first, mut p) = self.expr(self.skip(p))?;
        let mut props = vec![first];
        let mut at = self.skip(p);
        let mut more = false;
        while let Some((x, e)) = self.lit(at, b",").and_then(|q| self.expr(self.skip(q))) {
            props.push(x);
            p = e;
            at = self.skip(e);
            more = true;
        }
        // A repetition that matched nothing leaves the whitespace before it taken.
        let end = if more { p } else { self.skip(p) };
        Some((StmtKind::Time { name, props }, end))
    }

    /// `embed_decl = { kw_embed ~ ident ~ "=" ~ expr }`
    fn embed_decl(&self, pos: usize) -> R<StmtKind> {
        let p = self.kw(pos, b"embed")?;
        let (name, p) = self.ident(self.skip(p))?;
        let p = self.lit(self.skip(p), b"=")?;
        let (value, end) = self.expr(self.skip(p))?;
        Some((StmtKind::Embed { name, value }, end))
    }

    /// `block_decl = { kw_block ~ ident ~ params ~ params? ~ "{" ~ stmt* ~ "}" }`
    fn block_decl(&self, pos: usize) -> R<StmtKind> {
        let p = self.kw(pos, b"block")?;
        let (name, p) = self.ident(self.skip(p))?;
        let (first, p) = self.params(self.skip(p))?;
        let mut p = self.skip(p);
        let (params, inputs) = match self.params(p) {
            Some((second, q)) => {
                p = self.skip(q);
                (first, second)
            }
            None => (Vec::new(), first),
        };
        let p = self.lit(p, b"{")?;
        let (body, p) = self.stmts(self.skip(p))?;
        let end = self.lit(self.skip(p), b"}")?;
        Some((
            StmtKind::Block(BlockDef {
                name,
                params,
                inputs,
                body,
                span: self.span(pos, end),
            }),
            end,
        ))
    }

    /// `params = { "(" ~ (param ~ ("," ~ param)* ~ ","?)? ~ ")" }`
    fn params(&self, pos: usize) -> R<Vec<Param>> {
        self.list_of(pos, b"(", b")", Self::param)
    }

    /// `param = { ident ~ ("=" ~ expr)? }`
    fn param(&self, pos: usize) -> R<Param> {
        let (name, p) = self.ident(pos)?;
        let p = self.skip(p);
        let default = self.lit(p, b"=").and_then(|q| self.expr(self.skip(q)));
        let (default, end) = match default {
            Some((e, end)) => (Some(e), end),
            None => (None, p),
        };
        Some((Param { name, default }, end))
    }

    /// `task_decl = { kw_task ~ call }`
    fn task_decl(&self, pos: usize) -> R<StmtKind> {
        let p = self.kw(pos, b"task")?;
        let (c, end) = self.call(self.skip(p))?;
        Some((StmtKind::Task(c), end))
    }

    /// `train_decl = { kw_train ~ args }`
    fn train_decl(&self, pos: usize) -> R<StmtKind> {
        let p = self.skip(self.kw(pos, b"train")?);
        let (args, end) = self.args(p)?;
        Some((
            StmtKind::Train {
                args,
                span: self.span(p, end),
            },
            end,
        ))
    }

    /// `return_stmt = { kw_return ~ expr }`
    fn return_stmt(&self, pos: usize) -> R<StmtKind> {
        let p = self.kw(pos, b"return")?;
        let (e, end) = self.expr(self.skip(p))?;
        Some((StmtKind::Return(e), end))
    }

    /// `ident ~ "=" ~ !"=" ~ expr`: `assign` and `kwarg`.
    fn binding(&self, pos: usize) -> Option<(Ident, Expr, usize)> {
        let (name, p) = self.ident(pos)?;
        let p = self.skip(self.lit(self.skip(p), b"=")?);
        if self.lit(p, b"=").is_some() {
            return None;
        }
        let (value, end) = self.expr(p)?;
        Some((name, value, end))
    }

    /// `assign = { ident ~ "=" ~ !"=" ~ expr }`
    fn assign(&self, pos: usize) -> R<StmtKind> {
        let (name, value, end) = self.binding(pos)?;
        Some((StmtKind::Assign { name, value }, end))
    }

    /// `expr = { sum ~ ("|" ~ sum)* }` and `sum = { labeled ~ ("+" ~ labeled)* }`: one
    /// level of either, collapsed to its only item as the tree walk does.
    fn chain(&self, pos: usize, op: u8, item: fn(&Self, usize) -> R<Expr>) -> R<Expr> {
        let (first, p) = item(self, pos)?;
        let mut at = self.skip(p);
        let (mut first, mut items) = (Some(first), Vec::new());
        let mut end = at;
        while let Some((x, e)) = self.lit(at, &[op]).and_then(|q| item(self, self.skip(q))) {
            items.extend(first.take());
            items.push(x);
            end = e;
            at = self.skip(e);
        }
        if let Some(only) = first {
            return Some((only, end));
        }
        let kind = match op {
            b'|' => ExprKind::Pipe(items),
            _ => ExprKind::Sum(items),
        };
        Some((
            Expr {
                kind,
                span: self.span(pos, end),
            },
            end,
        ))
    }

    fn expr(&self, pos: usize) -> R<Expr> {
        self.chain(pos, b'|', Self::sum)
    }

    fn sum(&self, pos: usize) -> R<Expr> {
        self.chain(pos, b'+', Self::labeled)
    }

    /// `labeled = { atom ~ (kw_as ~ ident)? }`
    fn labeled(&self, pos: usize) -> R<Expr> {
        let (inner, p) = self.atom(pos)?;
        let p = self.skip(p);
        let label = self.kw(p, b"as").and_then(|q| self.ident(self.skip(q)));
        match label {
            Some((label, end)) => Some((
                Expr {
                    kind: ExprKind::Labeled(Box::new(inner), label),
                    span: self.span(pos, end),
                },
                end,
            )),
            None => Some((inner, p)),
        }
    }

    /// `atom = _{ call | number | list | record | paren | ident }`
    fn atom(&self, pos: usize) -> R<Expr> {
        let c = self.at(pos);
        if c.is_ascii_alphabetic() || c == b'_' {
            if let Some((call, end)) = self.call(pos) {
                let span = call.span;
                return Some((
                    Expr {
                        kind: ExprKind::Call(call),
                        span,
                    },
                    end,
                ));
            }
            let (id, end) = self.ident(pos)?;
            return Some((
                Expr {
                    kind: ExprKind::Ident(id.name),
                    span: id.span,
                },
                end,
            ));
        }
        match c {
            b'-' | b'0'..=b'9' => self.number(pos),
            b'[' => {
                let (items, end) = self.list_of(pos, b"[", b"]", Self::expr)?;
                Some((
                    Expr {
                        kind: ExprKind::List(items),
                        span: self.span(pos, end),
                    },
                    end,
                ))
            }
            b'{' => {
                let (fields, end) = self.list_of(pos, b"{", b"}", Self::field)?;
                Some((
                    Expr {
                        kind: ExprKind::Record(fields),
                        span: self.span(pos, end),
                    },
                    end,
                ))
            }
            b'(' => {
                // `paren = { "(" ~ expr ~ ")" }`: the expression, spanning the parentheses.
                let (mut inner, p) = self.expr(self.skip(pos + 1))?;
                let end = self.lit(self.skip(p), b")")?;
                inner.span = self.span(pos, end);
                Some((inner, end))
            }
            _ => None,
        }
    }

    /// `field = { ident ~ ":" ~ expr }`
    fn field(&self, pos: usize) -> R<(Ident, Expr)> {
        let (k, p) = self.ident(pos)?;
        let p = self.lit(self.skip(p), b":")?;
        let (v, end) = self.expr(self.skip(p))?;
        Some(((k, v), end))
    }

    /// `call = { ident ~ args }`
    fn call(&self, pos: usize) -> R<Call> {
        let (name, p) = self.ident(pos)?;
        let (args, end) = self.args(self.skip(p))?;
        Some((
            Call {
                name,
                args,
                span: self.span(pos, end),
            },
            end,
        ))
    }

    /// `args = { "(" ~ (arg ~ ("," ~ arg)* ~ ","?)? ~ ")" }`
    fn args(&self, pos: usize) -> R<Vec<Arg>> {
        self.list_of(pos, b"(", b")", Self::arg)
    }

    /// `arg = { kwarg | expr }`, `kwarg = { ident ~ "=" ~ !"=" ~ expr }`
    fn arg(&self, pos: usize) -> R<Arg> {
        if let Some((name, value, end)) = self.binding(pos) {
            return Some((
                Arg {
                    name: Some(name),
                    value,
                    span: self.span(pos, end),
                },
                end,
            ));
        }
        let (value, end) = self.expr(pos)?;
        Some((
            Arg {
                name: None,
                value,
                span: self.span(pos, end),
            },
            end,
        ))
    }
}
