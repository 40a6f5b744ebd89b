//! From the parse tree to a layout: pest's concrete tree of a spec and the token stream with its
//! comments in; a [`Doc`] in tdspec's layout out. The tree gives the structure, the tokens give
//! the punctuation the tree does not keep and the comments; both are walked in source order.
//!
//! The layout, as the reference specs in `specs/` are written: four spaces per level; one
//! statement per line; `input`, `time`, `embed`, `task` and the settings (`norm`, `bias`)
//! padded to the width of `input`, and the `=` of consecutive named values aligned; spaces
//! around `|`, `+`, `=` and after `,` and `:`; records spaced inside their braces. A pipeline
//! that does not fit breaks before `|`, aligned under its first `|`; an argument list breaks
//! after a `,`, aligned after its `(`. Breaks the author put before a `|` or `+` (after the
//! first) or between list items are kept. Trailing commas and semicolons go, except a `;`
//! before a statement that starts with `(` (it would otherwise continue the previous one).
//! Blank lines between statements stay (one at most), as do all comments.

use super::doc::{Doc, Sep};
use super::lex::{Comment, Token, Tokens};
use crate::syntax::Rule;
use pest::iterators::Pair;

/// Model-level assignments that are settings rather than named values (sema's names).
const SETTINGS: &[&str] = &["norm", "bias"];
/// The width declaration keywords and settings are padded to: `input`.
const DECL_WIDTH: usize = 5;
/// Columns per nesting level.
const INDENT: usize = 4;

pub(crate) struct Builder<'a> {
    src: &'a str,
    toks: Vec<Token>,
    eof: Vec<Comment>,
    pos: usize,
    error: Option<String>,
}

/// A statement, model or trailing group of comments in a list, with what comes before it.
struct Item {
    comments: Vec<Comment>,
    blank: bool,
    doc: Option<Doc>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Declarations and settings: heads padded to `input`'s width.
    Decl,
    /// Named values: `=` aligned.
    Value,
}

type P<'i> = Pair<'i, Rule>;

impl<'a> Builder<'a> {
    pub fn new(src: &'a str, tokens: Tokens) -> Self {
        Builder {
            src,
            toks: tokens.toks,
            eof: tokens.eof,
            pos: 0,
            error: None,
        }
    }

    /// The layout of the `file` pair, or why the tree and the tokens disagree.
    pub fn file(mut self, file: P) -> Result<Doc, String> {
        let mut items = Vec::new();
        for m in file.into_inner().filter(|p| p.as_rule() == Rule::model) {
            let (comments, blank) = self.take_leading();
            let doc = self.model(m);
            items.push(Item {
                comments,
                blank,
                doc: Some(doc),
            });
        }
        let (comments, _) = self.take_leading();
        items.push(Item {
            comments,
            blank: false,
            doc: None,
        });
        if self.pos != self.toks.len() {
            self.fail(format!("{} tokens left over", self.toks.len() - self.pos));
        }
        let doc = layout(items, true);
        match self.error {
            Some(e) => Err(e),
            None => Ok(doc),
        }
    }

    fn fail(&mut self, msg: String) {
        self.error.get_or_insert(msg);
    }

    /// Takes the next token, which must read `want`.
    fn take(&mut self, want: &str) -> Doc {
        self.take_as(want, want)
    }

    /// Takes the next token (`want`), writing `text` in its place with its comments.
    fn take_as(&mut self, want: &str, text: &str) -> Doc {
        let Some(t) = self.toks.get_mut(self.pos) else {
            self.fail(format!("expected `{want}` at the end of the tokens"));
            return Doc::text("");
        };
        if t.text != want {
            let msg = format!("expected `{want}` at byte {}, found `{}`", t.start, t.text);
            self.fail(msg);
            return Doc::text("");
        }
        // A dropped token alone on its line: its trailing comments then stand on a line of
        // their own too.
        let alone = text.is_empty() && !t.trailing.is_empty() && self.broken_between(-1, 0);
        let t = &mut self.toks[self.pos];
        if text.is_empty() && (!t.leading.is_empty() || alone) {
            // A dropped token's comments, when some stand on lines of their own, lead the
            // next token, where a second run (without the token) finds them, in order.
            let mut leading = std::mem::take(&mut t.leading);
            leading.append(&mut t.trailing);
            let next = match self.toks.get_mut(self.pos + 1) {
                Some(n) => &mut n.leading,
                None => &mut self.eof,
            };
            next.splice(0..0, leading);
        }
        let t = &mut self.toks[self.pos];
        self.pos += 1;
        let mut v: Vec<Doc> = std::mem::take(&mut t.leading)
            .into_iter()
            .map(Doc::Leading)
            .collect();
        v.push(Doc::text(text));
        v.extend(
            std::mem::take(&mut t.trailing)
                .into_iter()
                .map(Doc::Trailing),
        );
        Doc::Seq(v)
    }

    /// A token the tree has as a pair (a name, number or keyword).
    fn word(&mut self, p: &P) -> Doc {
        if self.toks.get(self.pos).map(|t| t.start) != Some(p.as_span().start()) {
            self.fail(format!("token out of step at byte {}", p.as_span().start()));
        }
        self.take(p.as_str())
    }

    fn peek(&self, k: usize) -> Option<&str> {
        self.toks.get(self.pos + k).map(|t| t.text.as_str())
    }

    /// The comments before the next token (or the end of the file) and whether a blank line
    /// precedes the token.
    fn take_leading(&mut self) -> (Vec<Comment>, bool) {
        match self.toks.get_mut(self.pos) {
            Some(t) => (std::mem::take(&mut t.leading), t.blank_before),
            None => (std::mem::take(&mut self.eof), false),
        }
    }

    /// Whether the token starting at `offset` opens a new paragraph (comments or a blank line
    /// before it).
    fn starts_paragraph(&self, offset: usize) -> bool {
        let breaks = |t: &Token| t.blank_before || !t.leading.is_empty();
        match self.toks.binary_search_by_key(&offset, |t| t.start) {
            // A `;` ending the previous statement is dropped, and what stood before it (a
            // comment, a blank line) is written before this statement: a paragraph break once
            // formatted, so one now.
            Ok(i) => {
                breaks(&self.toks[i])
                    || i > 0 && self.toks[i - 1].text == ";" && breaks(&self.toks[i - 1])
            }
            Err(_) => true,
        }
    }

    /// Whether the author broke the line between token `a` and token `b` (cursor-relative:
    /// `0` is the next token). Pest's spans take in trailing blanks, so tokens decide.
    fn broken_between(&self, a: isize, b: isize) -> bool {
        let at = |k: isize| self.toks.get(self.pos.checked_add_signed(k)?);
        match (at(a), at(b)) {
            (Some(x), Some(y)) => self
                .src
                .get(x.end..y.start)
                .is_some_and(|s| s.contains('\n')),
            _ => false,
        }
    }

    // ------------------------------------------------------------------ structure

    fn model(&mut self, p: P) -> Doc {
        let mut it = p.into_inner();
        let mut v = Vec::new();
        if let Some(kw) = it.next() {
            v.push(self.word(&kw));
        }
        v.push(Doc::text(" "));
        if let Some(name) = it.next() {
            v.push(self.word(&name));
        }
        v.push(Doc::text(" "));
        v.push(self.take("{"));
        v.push(self.body(it.collect(), true));
        v.push(self.take("}"));
        Doc::Seq(v)
    }

    /// A statement list between braces (the `{` taken, the `}` next).
    fn body(&mut self, stmts: Vec<P>, model_level: bool) -> Doc {
        let pads = self.head_widths(&stmts, model_level);
        let mut items = Vec::new();
        for (st, pad) in stmts.into_iter().zip(pads) {
            let (comments, blank) = self.take_leading();
            let doc = self.stmt(st, pad);
            items.push(Item {
                comments,
                blank,
                doc: Some(doc),
            });
        }
        let (comments, _) = self.take_leading();
        let empty = items.is_empty() && comments.is_empty();
        items.push(Item {
            comments,
            blank: false,
            doc: None,
        });
        if empty {
            return Doc::text("");
        }
        Doc::Seq(vec![Doc::nest(INDENT, layout(items, false)), Doc::Hardline])
    }

    /// The padded head width of each statement that has one: runs of consecutive declarations
    /// (and settings) pad to at least `input`'s width; runs of named values align their `=`.
    fn head_widths(&self, stmts: &[P], model_level: bool) -> Vec<Option<usize>> {
        let heads: Vec<Option<(Class, usize)>> =
            stmts.iter().map(|s| head(s, model_level)).collect();
        let mut out = vec![None; stmts.len()];
        let mut i = 0;
        while i < stmts.len() {
            let Some((class, _)) = heads[i] else {
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < stmts.len()
                && heads[j].map(|h| h.0) == Some(class)
                && !self.starts_paragraph(stmts[j].as_span().start())
            {
                j += 1;
            }
            let min = if class == Class::Decl { DECL_WIDTH } else { 0 };
            let w = heads[i..j]
                .iter()
                .flatten()
                .map(|h| h.1)
                .fold(min, usize::max);
            out[i..j].iter_mut().for_each(|o| *o = Some(w));
            i = j;
        }
        out
    }

    fn stmt(&mut self, p: P, pad: Option<usize>) -> Doc {
        let end = p.as_span().end();
        let first = self.pos;
        let mut v = Vec::new();
        for inner in p.into_inner() {
            if inner.as_rule() == Rule::attr {
                v.push(self.attr(inner));
                v.push(Doc::Hardline);
            } else {
                v.push(self.stmt_kind(inner, pad));
            }
        }
        let semicolon = self.pos < self.toks.len()
            && self.toks[self.pos].text == ";"
            && self.toks[self.pos].start < end;
        if semicolon {
            // Without it, a next statement starting with `(` would continue this one, and so
            // would any after a lone word (`task; classify(...)` is not `task classify(...)`).
            let keep = self.peek(1) == Some("(") || self.pos == first + 1;
            v.push(self.take_as(";", if keep { ";" } else { "" }));
        }
        Doc::Seq(v)
    }

    fn attr(&mut self, p: P) -> Doc {
        let mut v = vec![self.take("#[")];
        for inner in p.into_inner() {
            match inner.as_rule() {
                Rule::ident => v.push(self.word(&inner)),
                _ => {
                    let items: Vec<P> = inner.into_inner().collect();
                    v.push(self.delimited("(", items, ")", false, |b, p| b.word(&p)));
                }
            }
        }
        v.push(self.take("]"));
        Doc::Seq(v)
    }

    /// A head word padded to `pad` columns, then the space after it.
    fn head_word(&mut self, p: &P, pad: Option<usize>) -> Doc {
        let w = p.as_str().len();
        let spaces = pad.unwrap_or(w).saturating_sub(w) + 1;
        Doc::Seq(vec![self.word(p), Doc::text(" ".repeat(spaces))])
    }

    fn stmt_kind(&mut self, p: P, pad: Option<usize>) -> Doc {
        let rule = p.as_rule();
        let mut it = p.into_inner();
        let mut v = Vec::new();
        match rule {
            Rule::input_decl | Rule::time_decl | Rule::embed_decl | Rule::task_decl => {
                if let Some(kw) = it.next() {
                    v.push(self.head_word(&kw, pad));
                }
                if rule == Rule::task_decl {
                    if let Some(call) = it.next() {
                        v.push(self.expr(call));
                    }
                    return Doc::Seq(v);
                }
                if let Some(name) = it.next() {
                    v.push(self.word(&name));
                }
                match rule {
                    Rule::input_decl => {
                        v.push(self.take(":"));
                        v.push(Doc::text(" "));
                        if let Some(kind) = it.next() {
                            v.push(self.word(&kind));
                        }
                        let dims: Vec<P> = it.collect();
                        v.push(self.delimited("[", dims, "]", false, |b, p| b.word(&p)));
                    }
                    Rule::time_decl => {
                        v.push(self.take(":"));
                        v.push(Doc::text(" "));
                        let props: Vec<P> = it.collect();
                        let fill = self.sep_list(props, |b, p| b.expr(p));
                        v.push(Doc::align(0, fill));
                    }
                    _ => {
                        v.push(Doc::text(" "));
                        v.push(self.take("="));
                        v.push(Doc::text(" "));
                        if let Some(e) = it.next() {
                            v.push(self.expr(e));
                        }
                    }
                }
            }
            Rule::block_decl => {
                let mut stmts = Vec::new();
                for q in it {
                    match q.as_rule() {
                        Rule::kw_block => {
                            v.push(self.word(&q));
                            v.push(Doc::text(" "));
                        }
                        Rule::ident => v.push(self.word(&q)),
                        Rule::params => {
                            let ps: Vec<P> = q.into_inner().collect();
                            v.push(self.delimited("(", ps, ")", false, |b, p| b.param(p)));
                        }
                        _ => stmts.push(q),
                    }
                }
                v.push(Doc::text(" "));
                v.push(self.take("{"));
                v.push(self.body(stmts, false));
                v.push(self.take("}"));
            }
            Rule::train_decl => {
                if let Some(kw) = it.next() {
                    v.push(self.word(&kw));
                }
                if let Some(args) = it.next() {
                    v.push(self.args(args));
                }
            }
            Rule::return_stmt => {
                if let Some(kw) = it.next() {
                    v.push(self.word(&kw));
                }
                v.push(Doc::text(" "));
                if let Some(e) = it.next() {
                    v.push(self.expr(e));
                }
            }
            Rule::assign => {
                if let Some(name) = it.next() {
                    v.push(self.head_word(&name, pad));
                }
                v.push(self.take("="));
                v.push(Doc::text(" "));
                if let Some(e) = it.next() {
                    v.push(self.expr(e));
                }
            }
            Rule::expr_stmt => {
                if let Some(e) = it.next() {
                    v.push(self.expr(e));
                }
            }
            r => self.fail(format!("unexpected statement rule {r:?}")),
        }
        Doc::Seq(v)
    }

    fn param(&mut self, p: P) -> Doc {
        let mut it = p.into_inner();
        let mut v = Vec::new();
        if let Some(name) = it.next() {
            v.push(self.word(&name));
        }
        if let Some(default) = it.next() {
            v.push(Doc::text(" "));
            v.push(self.take("="));
            v.push(Doc::text(" "));
            v.push(self.expr(default));
        }
        Doc::Seq(v)
    }

    // ------------------------------------------------------------------ lists

    /// Items separated by commas (a trailing comma dropped, its comments kept): a fill whose
    /// breaks are the author's line breaks between items and what does not fit.
    fn sep_list<'i>(
        &mut self,
        items: Vec<P<'i>>,
        mut f: impl FnMut(&mut Self, P<'i>) -> Doc,
    ) -> Doc {
        let n = items.len();
        let mut fill = Vec::with_capacity(n);
        for (i, item) in items.into_iter().enumerate() {
            // The comma before this item is the token just taken.
            let sep = match i {
                0 => Sep::None,
                _ if self.broken_between(-2, 0) => Sep::Hard,
                _ => Sep::Soft,
            };
            let d = f(self, item);
            let comma = if i + 1 < n {
                self.take(",")
            } else if self.peek(0) == Some(",") {
                self.take_as(",", "")
            } else {
                Doc::text("")
            };
            fill.push((sep, Doc::Seq(vec![d, comma])));
        }
        Doc::Fill(fill)
    }

    /// `open items close`, the items aligned after the opening bracket (and its space when
    /// `spaced`, as records are).
    fn delimited<'i>(
        &mut self,
        open: &str,
        items: Vec<P<'i>>,
        close: &str,
        spaced: bool,
        f: impl FnMut(&mut Self, P<'i>) -> Doc,
    ) -> Doc {
        let mut v = vec![self.take(open)];
        let empty = items.is_empty();
        let fill = self.sep_list(items, f);
        if !empty {
            let pad = if spaced { " " } else { "" };
            v.push(Doc::text(pad));
            v.push(Doc::align(0, fill));
            v.push(Doc::text(pad));
        } else if self.peek(0) == Some(",") {
            // `f(,)` does not parse, but keep any comments if the grammar ever allows it.
            v.push(self.take_as(",", ""));
        }
        v.push(self.take(close));
        Doc::Seq(v)
    }

    fn args(&mut self, p: P) -> Doc {
        let items: Vec<P> = p.into_inner().collect();
        self.delimited("(", items, ")", false, |b, a| b.arg(a))
    }

    fn arg(&mut self, p: P) -> Doc {
        let Some(inner) = p.into_inner().next() else {
            self.fail("an empty argument".into());
            return Doc::text("");
        };
        if inner.as_rule() != Rule::kwarg {
            return self.expr(inner);
        }
        let mut it = inner.into_inner();
        let mut v = Vec::new();
        if let Some(name) = it.next() {
            v.push(self.word(&name));
        }
        v.push(Doc::text(" "));
        v.push(self.take("="));
        v.push(Doc::text(" "));
        if let Some(e) = it.next() {
            v.push(self.expr(e));
        }
        Doc::Seq(v)
    }

    // ------------------------------------------------------------------ expressions

    fn expr(&mut self, p: P) -> Doc {
        match p.as_rule() {
            Rule::expr => self.chain(p, "|"),
            Rule::sum => self.chain(p, "+"),
            Rule::labeled => {
                let mut v = Vec::new();
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::kw_as => {
                            v.push(Doc::text(" "));
                            v.push(self.word(&q));
                            v.push(Doc::text(" "));
                        }
                        Rule::ident if !v.is_empty() => v.push(self.word(&q)),
                        _ => v.push(self.expr(q)),
                    }
                }
                Doc::Seq(v)
            }
            Rule::paren => {
                let open = self.take("(");
                let inner = match p.into_inner().next() {
                    Some(e) => self.expr(e),
                    None => Doc::text(""),
                };
                let close = self.take(")");
                Doc::Seq(vec![open, Doc::align(0, inner), close])
            }
            Rule::call => {
                let mut it = p.into_inner();
                let mut v = Vec::new();
                if let Some(name) = it.next() {
                    v.push(self.word(&name));
                }
                if let Some(args) = it.next() {
                    v.push(self.args(args));
                }
                Doc::Seq(v)
            }
            Rule::number | Rule::ident => self.word(&p),
            Rule::list => {
                let items: Vec<P> = p.into_inner().collect();
                self.delimited("[", items, "]", false, |b, e| b.expr(e))
            }
            Rule::record => {
                let items: Vec<P> = p.into_inner().collect();
                self.delimited("{", items, "}", true, |b, f| b.field(f))
            }
            r => {
                self.fail(format!("unexpected expression rule {r:?}"));
                Doc::text("")
            }
        }
    }

    fn field(&mut self, p: P) -> Doc {
        let mut it = p.into_inner();
        let mut v = Vec::new();
        if let Some(name) = it.next() {
            v.push(self.word(&name));
        }
        v.push(self.take(":"));
        v.push(Doc::text(" "));
        if let Some(e) = it.next() {
            v.push(self.expr(e));
        }
        Doc::Seq(v)
    }

    /// `a op b op c`: breaks go before `op`, aligned under the first `op`; the first never
    /// breaks unless a comment ends the line (it would not gain a column).
    fn chain(&mut self, p: P, op: &str) -> Doc {
        let items: Vec<P> = p.into_inner().collect();
        let mut it = items.into_iter();
        let Some(first) = it.next() else {
            return Doc::text("");
        };
        let head = self.expr(first);
        let mut fill = Vec::new();
        for (i, item) in it.enumerate() {
            let sep = if i == 0 {
                Sep::Space
            } else if self.broken_between(-1, 1) {
                // Around the operator, the next token.
                Sep::Hard
            } else {
                Sep::Soft
            };
            let o = self.take(op);
            let e = self.expr(item);
            fill.push((sep, Doc::Seq(vec![o, Doc::text(" "), e])));
        }
        if fill.is_empty() {
            return head;
        }
        Doc::Seq(vec![head, Doc::align(1, Doc::Fill(fill))])
    }
}

/// The class and head width of a statement that aligns with its neighbours.
fn head(st: &P, model_level: bool) -> Option<(Class, usize)> {
    let kind = st
        .clone()
        .into_inner()
        .find(|p| p.as_rule() != Rule::attr)?;
    match kind.as_rule() {
        Rule::input_decl | Rule::time_decl | Rule::embed_decl | Rule::task_decl => {
            let kw = kind.into_inner().next()?;
            Some((Class::Decl, kw.as_str().len()))
        }
        Rule::assign => {
            let name = kind.into_inner().next()?.as_str();
            let class = if model_level && SETTINGS.contains(&name) {
                Class::Decl
            } else {
                Class::Value
            };
            Some((class, name.len()))
        }
        _ => None,
    }
}

/// Lays out a list of items one per line: comments on lines of their own before each, blank
/// lines where the author left them (always between top-level models), none first.
fn layout(items: Vec<Item>, top_level: bool) -> Doc {
    let mut out = Vec::new();
    let mut first = true;
    for (i, it) in items.into_iter().enumerate() {
        let force = top_level && i > 0 && it.doc.is_some();
        let mut lines: Vec<(bool, Doc)> = it
            .comments
            .into_iter()
            .map(|c| (c.blank_before, Doc::Leading(c)))
            .collect();
        if let Some(d) = it.doc {
            lines.push((it.blank, d));
        }
        for (k, (blank, d)) in lines.into_iter().enumerate() {
            out.push(Doc::Hardline);
            if !first && (blank || (k == 0 && force)) {
                out.push(Doc::Blank);
            }
            out.push(d);
            first = false;
        }
    }
    Doc::Seq(out)
}
