//! Syntax: spec source text in, an [`ast::File`] with spans out (or one parse diagnostic).
//! The grammar lives in `grammar/tdspec.pest`; this module walks pest's parse tree into the AST
//! and turns pest's errors into diagnostics that name what was expected in the user's terms.
//! [`fast`] parses the same grammar by hand and builds the same AST about ten times faster;
//! [`parse`] tries it first and asks pest whenever it gives up, so every error comes from pest.

mod fast;

use crate::ast::*;
use crate::diagnostics::Diagnostic;
use pest::iterators::Pair;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/tdspec.pest"]
struct TdsParser;

/// Parses a whole spec file: the hand-written parser's AST where it accepts the text (it builds
/// what [`parse_with_pest`] builds), pest's otherwise, with pest's diagnostic for an error.
pub fn parse(src: &str) -> Result<File, Diagnostic> {
    admit(src)?;
    match fast::parse(src, OFFSET.with(|o| o.get())) {
        Some(file) => Ok(file),
        None => pest_file(src),
    }
}

/// [`parse`] by pest's tree alone: the reference the hand-written parser is tested against.
pub fn parse_with_pest(src: &str) -> Result<File, Diagnostic> {
    admit(src)?;
    pest_file(src)
}

/// The hand-written parser alone (`None` where it gives up), for the differential tests.
pub fn parse_fast(src: &str) -> Option<File> {
    admit(src).ok()?;
    fast::parse(src, OFFSET.with(|o| o.get()))
}

fn pest_file(src: &str) -> Result<File, Diagnostic> {
    let file = pest_tree(src)?;
    let models = file
        .into_inner()
        .filter(|p| p.as_rule() == Rule::model)
        .map(model)
        .collect();
    Ok(File { models })
}

/// The concrete parse tree of a spec (the `file` pair), for tools that need the syntax as
/// written, such as the formatter; the same checks and diagnostics as [`parse`].
pub fn parse_tree(src: &str) -> Result<Pair<'_, Rule>, Diagnostic> {
    admit(src)?;
    pest_tree(src)
}

fn pest_tree(src: &str) -> Result<Pair<'_, Rule>, Diagnostic> {
    let mut pairs = TdsParser::parse(Rule::file, src).map_err(|e| parse_error(src, e))?;
    Ok(pairs.next().expect("the file rule always yields one pair"))
}

/// Counts the text as parsed and refuses nesting deeper than [`MAX_NESTING`].
fn admit(src: &str) -> Result<(), Diagnostic> {
    PARSED.with(|p| p.set(p.get() + src.len() as u64));
    if let Some(at) = too_deep(src) {
        return Err(Diagnostic::error(
            "E004",
            format!("brackets nested more than {MAX_NESTING} deep"),
        )
        .with_primary(Span::new(at, at + 1), "nesting too deep")
        .with_help("split the expression into named values"));
    }
    Ok(())
}

/// The deepest bracket nesting the parser accepts; deeper input would exhaust the stack.
pub const MAX_NESTING: usize = 64;

/// The offset of the first bracket that opens past [`MAX_NESTING`] levels.
fn too_deep(src: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in src.bytes().enumerate() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

thread_local! {
    /// Where the text being parsed starts in its file ([`parse_at`]).
    static OFFSET: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Bytes parsed on this thread so far ([`bytes_parsed`]).
    static PARSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Bytes of spec text this thread has parsed: the work measure of the test that keeps lint
/// linear in the size of a file (counted, not timed).
pub fn bytes_parsed() -> u64 {
    PARSED.with(|p| p.get())
}

/// Parses `src`, a piece of a file that starts at byte `offset` (one model of it), with every
/// span counted from the file's start: re-analyzing one model then costs that model, not the
/// file.
pub fn parse_at(src: &str, offset: usize) -> Result<File, Diagnostic> {
    let before = OFFSET.with(|o| o.replace(offset));
    let r = parse(src);
    OFFSET.with(|o| o.set(before));
    // A syntax error's labels are made from positions in `src`: count them from the file too.
    r.map_err(|mut d| {
        for l in &mut d.labels {
            l.span = Span::new(l.span.start + offset, l.span.end + offset);
        }
        d
    })
}

fn span(p: &Pair<Rule>) -> Span {
    let s = p.as_span();
    let o = OFFSET.with(|o| o.get());
    Span::new(s.start() + o, s.end() + o)
}

fn ident(p: Pair<Rule>) -> Ident {
    Ident {
        name: p.as_str().to_string(),
        span: span(&p),
    }
}

fn model(p: Pair<Rule>) -> Model {
    let sp = span(&p);
    let mut it = p.into_inner().filter(|p| p.as_rule() != Rule::kw_model);
    let name = ident(it.next().expect("model name"));
    let stmts = it.map(stmt).collect();
    Model {
        name,
        stmts,
        span: sp,
    }
}

fn stmt(p: Pair<Rule>) -> Stmt {
    let sp = span(&p);
    let mut attrs = Vec::new();
    let mut kind = None;
    for inner in p.into_inner() {
        match inner.as_rule() {
            Rule::attr => attrs.push(attr(inner)),
            _ => kind = Some(stmt_kind(inner)),
        }
    }
    Stmt {
        attrs,
        kind: kind.expect("a statement has a body"),
        span: sp,
    }
}

fn attr(p: Pair<Rule>) -> Attr {
    let sp = span(&p);
    let mut it = p.into_inner();
    let name = ident(it.next().expect("attribute name"));
    let args = it
        .next()
        .map(|a| a.into_inner().map(ident).collect())
        .unwrap_or_default();
    Attr {
        name,
        args,
        span: sp,
    }
}

fn is_kw(r: Rule) -> bool {
    matches!(
        r,
        Rule::kw_input
            | Rule::kw_time
            | Rule::kw_embed
            | Rule::kw_block
            | Rule::kw_task
            | Rule::kw_train
            | Rule::kw_return
    )
}

fn stmt_kind(p: Pair<Rule>) -> StmtKind {
    let rule = p.as_rule();
    let sp = span(&p);
    let mut it = p.into_inner().filter(|p| !is_kw(p.as_rule()));
    match rule {
        Rule::input_decl => {
            let name = ident(it.next().expect("input name"));
            let kind = ident(it.next().expect("input kind"));
            let dims = it.map(number).collect();
            StmtKind::Input { name, kind, dims }
        }
        Rule::time_decl => {
            let name = ident(it.next().expect("time name"));
            StmtKind::Time {
                name,
                props: it.map(expr).collect(),
            }
        }
        Rule::embed_decl => {
            let name = ident(it.next().expect("embedding name"));
            StmtKind::Embed {
                name,
                value: expr(it.next().expect("embedding value")),
            }
        }
        Rule::block_decl => {
            let name = ident(it.next().expect("block name"));
            let mut lists = Vec::new();
            let mut body = Vec::new();
            for q in it {
                match q.as_rule() {
                    Rule::params => lists.push(q.into_inner().map(param).collect::<Vec<_>>()),
                    Rule::stmt => body.push(stmt(q)),
                    _ => {}
                }
            }
            let (params, inputs) = if lists.len() == 2 {
                let inputs = lists.pop().unwrap_or_default();
                (lists.pop().unwrap_or_default(), inputs)
            } else {
                (Vec::new(), lists.pop().unwrap_or_default())
            };
            StmtKind::Block(BlockDef {
                name,
                params,
                inputs,
                body,
                span: sp,
            })
        }
        Rule::task_decl => StmtKind::Task(call(it.next().expect("task call"))),
        Rule::train_decl => {
            let a = it.next().expect("train arguments");
            StmtKind::Train {
                span: span(&a),
                args: args(a),
            }
        }
        Rule::return_stmt => StmtKind::Return(expr(it.next().expect("return value"))),
        Rule::assign => {
            let name = ident(it.next().expect("assigned name"));
            StmtKind::Assign {
                name,
                value: expr(it.next().expect("assigned value")),
            }
        }
        Rule::expr_stmt => StmtKind::Expr(expr(it.next().expect("expression"))),
        r => unreachable!("unexpected statement rule {r:?}"),
    }
}

fn param(p: Pair<Rule>) -> Param {
    let mut it = p.into_inner();
    let name = ident(it.next().expect("parameter name"));
    Param {
        name,
        default: it.next().map(expr),
    }
}

fn number(p: Pair<Rule>) -> Expr {
    let sp = span(&p);
    let text = p.as_str().to_string();
    // The grammar only admits well-formed decimal numbers, which f64 parsing accepts; overflow
    // parses to infinity, which sema rejects with a span.
    let v = text.parse::<f64>().unwrap_or(f64::NAN);
    Expr {
        kind: ExprKind::Number(v, text),
        span: sp,
    }
}

fn expr(p: Pair<Rule>) -> Expr {
    let sp = span(&p);
    match p.as_rule() {
        Rule::expr => collapse(sp, p.into_inner().map(expr).collect(), ExprKind::Pipe),
        Rule::sum => collapse(sp, p.into_inner().map(expr).collect(), ExprKind::Sum),
        Rule::labeled => {
            let mut it = p.into_inner().filter(|p| p.as_rule() != Rule::kw_as);
            let inner = expr(it.next().expect("labeled expression"));
            match it.next() {
                Some(label) => Expr {
                    kind: ExprKind::Labeled(Box::new(inner), ident(label)),
                    span: sp,
                },
                None => inner,
            }
        }
        Rule::paren => {
            let mut inner = expr(p.into_inner().next().expect("parenthesized expression"));
            inner.span = sp;
            inner
        }
        Rule::call => Expr {
            kind: ExprKind::Call(call(p)),
            span: sp,
        },
        Rule::number => number(p),
        Rule::ident => Expr {
            kind: ExprKind::Ident(p.as_str().to_string()),
            span: sp,
        },
        Rule::list => Expr {
            kind: ExprKind::List(p.into_inner().map(expr).collect()),
            span: sp,
        },
        Rule::record => {
            let fields = p
                .into_inner()
                .map(|f| {
                    let mut it = f.into_inner();
                    let k = ident(it.next().expect("field name"));
                    (k, expr(it.next().expect("field value")))
                })
                .collect();
            Expr {
                kind: ExprKind::Record(fields),
                span: sp,
            }
        }
        r => unreachable!("unexpected expression rule {r:?}"),
    }
}

fn collapse(sp: Span, mut items: Vec<Expr>, make: fn(Vec<Expr>) -> ExprKind) -> Expr {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        Expr {
            kind: make(items),
            span: sp,
        }
    }
}

fn call(p: Pair<Rule>) -> Call {
    let sp = span(&p);
    let mut it = p.into_inner();
    let name = ident(it.next().expect("callee"));
    let a = it.next().map(args).unwrap_or_default();
    Call {
        name,
        args: a,
        span: sp,
    }
}

fn args(p: Pair<Rule>) -> Vec<Arg> {
    p.into_inner()
        .map(|a| {
            let sp = span(&a);
            let inner = a.into_inner().next().expect("argument body");
            match inner.as_rule() {
                Rule::kwarg => {
                    let mut it = inner.into_inner();
                    let name = ident(it.next().expect("keyword"));
                    Arg {
                        name: Some(name),
                        value: expr(it.next().expect("keyword value")),
                        span: sp,
                    }
                }
                _ => Arg {
                    name: None,
                    value: expr(inner),
                    span: sp,
                },
            }
        })
        .collect()
}

// ------------------------------------------------------------------ errors

fn rule_name(r: &Rule) -> Option<&'static str> {
    Some(match r {
        Rule::EOI => "end of file",
        Rule::model | Rule::kw_model => "`model`",
        Rule::ident => "a name",
        Rule::number => "a number",
        Rule::expr
        | Rule::sum
        | Rule::labeled
        | Rule::call
        | Rule::list
        | Rule::record
        | Rule::paren => "an expression",
        Rule::stmt
        | Rule::input_decl
        | Rule::time_decl
        | Rule::embed_decl
        | Rule::block_decl
        | Rule::task_decl
        | Rule::train_decl
        | Rule::return_stmt
        | Rule::assign
        | Rule::expr_stmt => "a statement",
        Rule::attr => "an attribute",
        Rule::args | Rule::arg | Rule::kwarg => "an argument",
        Rule::params | Rule::param => "a parameter",
        Rule::field => "a field",
        Rule::keyword => return None,
        _ => return None,
    })
}

/// Turns a pest error into a diagnostic: unclosed braces get E002 at the opening brace,
/// malformed numbers E003 on the number, everything else E001 at the position.
fn parse_error(src: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    }
    .min(src.len());

    if let Some(d) = malformed_number(src, pos) {
        return d;
    }
    if let Some(open) = unclosed_delimiter(src) {
        let ch = src[open..].chars().next().unwrap_or('{');
        let close = match ch {
            '(' => ')',
            '[' => ']',
            _ => '}',
        };
        return Diagnostic::error("E002", format!("unclosed `{ch}`"))
            .with_primary(
                Span::new(open, open + 1),
                format!("this `{ch}` is never closed"),
            )
            .with_help(format!("add the missing `{close}`"));
    }

    let mut expected: Vec<&str> = Vec::new();
    let mut found_unexpected: Vec<&str> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError {
        positives,
        negatives,
    } = &e.variant
    {
        for r in positives {
            if let Some(n) = rule_name(r) {
                if !expected.contains(&n) {
                    expected.push(n);
                }
            }
        }
        for r in negatives {
            if let Some(n) = rule_name(r) {
                found_unexpected.push(n);
            }
        }
    }
    let end = token_end(src, pos);
    let found = if pos >= src.len() {
        "end of file".to_string()
    } else {
        // Control characters (a NUL byte, an escape) are shown escaped, never raw.
        let text: String = src[pos..end]
            .chars()
            .map(|c| match c {
                c if c.is_control() => c.escape_default().to_string(),
                c => c.to_string(),
            })
            .collect();
        format!("`{text}`")
    };
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    let mut d =
        Diagnostic::error("E001", "syntax error").with_primary(Span::new(pos, end), message);
    if src[pos..].starts_with("==") {
        d = d.with_help("`=` binds a name; there is no comparison operator");
    } else if keyword_at(src, pos) {
        d = d.with_help("this word is reserved; choose another name");
    }
    d
}

fn keyword_at(src: &str, pos: usize) -> bool {
    let rest = &src[pos..];
    ["model", "embed", "block", "return", "as"].iter().any(|k| {
        rest.starts_with(k)
            && !rest[k.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [a] => a.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The end of the token starting at `pos` (at least one character, within the line).
fn token_end(src: &str, pos: usize) -> usize {
    let rest = &src[pos..];
    let mut chars = rest.char_indices();
    match chars.next() {
        None => pos,
        Some((_, c)) if c.is_ascii_alphanumeric() || c == '_' => {
            pos + rest
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
                .map(|(i, _)| i)
                .unwrap_or(rest.len())
        }
        Some((_, c)) => pos + c.len_utf8(),
    }
}

/// A number-like token at `pos` that the number rule rejected (`1e`, `3x3`, `1.2.3`).
fn malformed_number(src: &str, pos: usize) -> Option<Diagnostic> {
    let rest = src.get(pos..)?;
    let first = rest.chars().next()?;
    let starts_number = first.is_ascii_digit()
        || (first == '-' && rest[1..].chars().next().is_some_and(|c| c.is_ascii_digit()));
    if !starts_number {
        return None;
    }
    let mut end = 1;
    let bytes = rest.as_bytes();
    while end < bytes.len() {
        let b = bytes[end];
        let prev = bytes[end - 1];
        let sign_after_e = (b == b'+' || b == b'-') && (prev == b'e' || prev == b'E');
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || sign_after_e {
            end += 1;
        } else {
            break;
        }
    }
    let token = &rest[..end];
    // A well-formed number followed by something the grammar did not expect is not our case.
    let well_formed = token.parse::<f64>().is_ok() && !token.contains(['x', 'X', '_']);
    if well_formed {
        return None;
    }
    Some(
        Diagnostic::error("E003", format!("malformed number `{token}`"))
            .with_primary(Span::new(pos, pos + end), "not a number")
            .with_help("numbers look like `64`, `0.1`, `2e-4` or `-1`"),
    )
}

/// The byte offset of the first `{`, `(` or `[` that is never closed (comments skipped).
fn unclosed_delimiter(src: &str) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut stack: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'{' | b'(' | b'[' => stack.push(i),
            b'}' | b')' | b']' => {
                let want = match bytes[i] {
                    b'}' => b'{',
                    b')' => b'(',
                    _ => b'[',
                };
                match stack.last() {
                    Some(&o) if bytes[o] == want => {
                        stack.pop();
                    }
                    // Mismatched closers are a different error; leave them to pest.
                    _ => return None,
                }
            }
            _ => {}
        }
        i += 1;
    }
    stack.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_small_model() {
        let f = parse(
            "// c\nmodel m {\n input x: image[1, 28, 28]\n time t: continuous, shared\n norm = group(32)\n h = x | conv3(64, time = concat) | norm | relu as act\n return h + x\n}",
        )
        .unwrap();
        assert_eq!(f.models.len(), 1);
        assert_eq!(f.models[0].stmts.len(), 5);
        match &f.models[0].stmts[3].kind {
            StmtKind::Assign { name, value } => {
                assert_eq!(name.name, "h");
                assert!(matches!(value.kind, ExprKind::Pipe(ref v) if v.len() == 4));
            }
            k => panic!("unexpected {k:?}"),
        }
    }

    #[test]
    fn reports_unclosed_brace_at_the_opening() {
        let src = "model m {\n input x: image[1, 2, 2]\n";
        let d = parse(src).unwrap_err();
        assert_eq!(d.code, "E002");
        assert_eq!(d.primary_span(), Some(Span::new(8, 9)));
    }

    #[test]
    fn reports_malformed_numbers() {
        let d = parse("model m { h = x | conv3(6e) }").unwrap_err();
        assert_eq!(d.code, "E003");
        let d = parse("model m { h = x | dropout(0.1.2) }").unwrap_err();
        assert_eq!(d.code, "E003");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!(
            "model m {{ h = {}x{} }}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        assert_eq!(parse(&src).unwrap_err().code, "E004");
        let src = format!("model m {{ h = {}x{} }}", "(".repeat(60), ")".repeat(60));
        parse(&src).unwrap();
    }

    #[test]
    fn the_fast_parser_counts_spans_from_the_offset_as_pest_does() {
        let src = "model m {\n h = x | conv(3) // c\n return h + x\n}";
        let fast = fast::parse(src, 17).expect("the fast parser accepts it");
        let before = OFFSET.with(|o| o.replace(17));
        let pest = pest_file(src);
        OFFSET.with(|o| o.set(before));
        assert_eq!(Ok(fast), pest);
        assert_eq!(parse_at(src, 17), pest);
    }

    #[test]
    fn time_is_a_valid_keyword_argument() {
        parse(
            "model m { time t: continuous, shared\n h = x | conv3(64, time = concat(positional)) }",
        )
        .unwrap();
    }
}
