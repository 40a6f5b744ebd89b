//! Rendering: the compiler's plain [`Diagnostic`] data in, text out. Text goes through miette
//! (graphical, colorless when not a terminal, so snapshots are stable); JSON is one object
//! per diagnostic.

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use std::fmt::{self, Write as _};
use tdspec_compiler::diagnostics::{Diagnostic, JsonDiagnostic, Severity, SourceFile};

struct Adapter<'a, S> {
    d: &'a Diagnostic,
    src: S,
    len: usize,
}

/// The lines around a diagnostic's labels, standing for the whole file. miette finds a span's
/// lines by scanning its source from the first byte, so handing it the file made every
/// diagnostic cost the file's length: linting a file of many models was quadratic in its size.
struct Window<'a> {
    name: &'a str,
    text: &'a str,
    /// Where `text` starts in the file, and the line breaks before it.
    offset: usize,
    line: usize,
}

impl SourceCode for Window<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let start = span
            .offset()
            .checked_sub(self.offset)
            .ok_or(MietteError::OutOfBounds)?;
        let local = SourceSpan::new(start.into(), span.len());
        let c = self.text.read_span(&local, before, after)?;
        let at = c.span().offset() + self.offset;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_string(),
            c.data(),
            SourceSpan::new(at.into(), c.span().len()),
            c.line() + self.line,
            c.column(),
            c.line_count() + self.line,
        )))
    }
}

impl<S> fmt::Debug for Adapter<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.d.message)
    }
}

impl<S> fmt::Display for Adapter<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.d.message)
    }
}

impl<S> std::error::Error for Adapter<'_, S> {}

impl<S: SourceCode> miette::Diagnostic for Adapter<'_, S> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.d.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.d
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let len = self.len;
        Some(Box::new(self.d.labels.iter().map(move |l| {
            let start = l.span.start.min(len);
            let end = l.span.end.clamp(start, len);
            let span = SourceSpan::new(start.into(), end - start);
            if l.primary {
                LabeledSpan::new_primary_with_span(Some(l.message.clone()), span)
            } else {
                LabeledSpan::new_with_span(Some(l.message.clone()), span)
            }
        })))
    }
}

/// Whether to color output: only on a terminal, and never when NO_COLOR is set.
pub fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Renders one diagnostic as miette's graphical report, followed by its notes. Without color,
/// the common shapes are drawn by [`plain`] (the same text, a fraction of the work).
pub fn render(src: &SourceFile, d: &Diagnostic, color: bool) -> String {
    // Two lines of slack either side of the one line of context miette shows.
    let (start, end, line) = src.window(&d.labels, 2, 3);
    let text = src.text.get(start..end).unwrap_or("");
    let (name, offset) = (&src.name, start);
    let window = Window {
        name,
        text,
        offset,
        line,
    };
    if !color {
        if let Some(out) = plain(&window, src, d) {
            return out;
        }
    }
    render_from(window, src, d, color)
}

/// miette's width for our reports, and its context lines around a label.
const WIDTH: usize = 100;
const CONTEXT: usize = 1;

/// One label as the adapter hands it to miette (clamped to the text).
struct Mark<'a> {
    offset: usize,
    len: usize,
    primary: bool,
    message: &'a str,
}

/// One line of a snippet: its number (from 1), where it starts, its length with its line end,
/// and its text without it.
struct Row<'a> {
    number: usize,
    offset: usize,
    length: usize,
    text: &'a str,
}

/// Text made of printable ASCII: one byte, one column.
fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// `text` wrapped as miette wraps it (textwrap's fill with these indents and width): a line
/// that fits needs no word search, which is most of textwrap's cost.
fn fill(out: &mut String, text: &str, width: usize, first: &str, rest: &str) {
    let fits = !text.is_empty()
        && printable(text)
        && text.trim() == text
        && !text.contains("  ")
        && textwrap::core::display_width(first) + text.len() <= width;
    if fits {
        out.push_str(first);
        out.push_str(text);
    } else {
        let opts = textwrap::Options::new(width)
            .initial_indent(first)
            .subsequent_indent(rest)
            .break_words(true);
        out.push_str(&textwrap::fill(text, opts));
    }
}

/// miette's colorless graphical report (code, message, snippets, help) and the notes, drawn
/// directly where every label lies on one line of printable ASCII, no two labels share a line
/// or a start, and each has a one-line message; `None` otherwise (miette draws those). The
/// snippets are cut as miette cuts them, from the same `read_span` answers.
fn plain(code: &Window, src: &SourceFile, d: &Diagnostic) -> Option<String> {
    let len = src.text.len();
    let mut marks: Vec<Mark> = (d.labels.iter())
        .map(|l| {
            let offset = l.span.start.min(len);
            let end = l.span.end.clamp(offset, len);
            Mark {
                offset,
                len: end - offset,
                primary: l.primary,
                message: &l.message,
            }
        })
        .collect();
    marks.sort_by_key(|m| m.offset);
    let plain_mark =
        |m: &Mark| m.len > 0 && !m.message.is_empty() && !m.message.contains(['\n', '\r']);
    if marks.windows(2).any(|w| w[0].offset == w[1].offset) || !marks.iter().all(plain_mark) {
        return None;
    }
    let span = |offset: usize, len: usize| SourceSpan::new(offset.into(), len);
    let mut out = String::with_capacity(1024);
    out.push_str(&d.code);
    out.push_str("\n\n");
    let icon = match d.severity {
        Severity::Error => "  × ",
        Severity::Warning => "  ⚠ ",
        Severity::Info => "  ☞ ",
    };
    fill(&mut out, &d.message, WIDTH - 2, icon, "  │ ");
    out.push('\n');
    // Contexts: a label's lines with one either side, merged with the previous one where
    // miette merges them (by the lines `read_span` reports).
    let mut contexts: Vec<((usize, usize), Box<dyn SpanContents>)> = Vec::new();
    for m in &marks {
        let right = code
            .read_span(&span(m.offset, m.len), CONTEXT, CONTEXT)
            .ok()?;
        if let Some(((lo, l), left)) = contexts.last() {
            if left.line() + left.line_count() >= right.line() {
                let end = (lo + l).max(m.offset + m.len);
                if let Ok(merged) = code.read_span(&span(*lo, end - lo), CONTEXT, CONTEXT) {
                    let lo = *lo;
                    contexts.pop();
                    contexts.push(((lo, end - lo), merged));
                    continue;
                }
            }
        }
        contexts.push(((m.offset, m.len), right));
    }
    for ((lo, l), contents) in &contexts {
        snippet(&mut out, code, (*lo, *l), contents.as_ref(), &marks)?;
    }
    if let Some(h) = &d.help {
        fill(&mut out, h, WIDTH - 4, "  help: ", "        ");
        out.push('\n');
    }
    for n in &d.notes {
        out.push_str("  note: ");
        out.push_str(n);
        out.push('\n');
    }
    Some(out)
}

/// One snippet: the context's lines (`contents`, what `read_span` gave for the context with
/// its lines either side), each label's underline and message under its line.
fn snippet(
    out: &mut String,
    code: &Window,
    (lo, l): (usize, usize),
    contents: &dyn SpanContents,
    marks: &[Mark],
) -> Option<()> {
    let data = std::str::from_utf8(contents.data()).ok()?;
    if !data.split('\n').all(printable) {
        return None;
    }
    // The lines as miette cuts them: numbered from the context's first line, the last one
    // counted whether or not it ends in a line break.
    let mut rows: Vec<Row> = Vec::new();
    let (mut number, mut start) = (contents.line(), contents.span().offset());
    let mut pos = start;
    let mut column = contents.column();
    let mut text_from = 0;
    for (i, b) in data.bytes().enumerate() {
        pos += 1;
        let last = i + 1 == data.len();
        let mut at_end = false;
        if b == b'\n' {
            at_end = last;
            number += 1;
            column = 0;
        } else {
            column += 1;
        }
        if last && !at_end {
            number += 1;
        }
        if column == 0 || last {
            let text_to = if b == b'\n' { i } else { i + 1 };
            rows.push(Row {
                number,
                offset: start,
                length: pos - start,
                text: &data[text_from..text_to],
            });
            start = pos;
            text_from = i + 1;
        }
    }
    let last = rows.last()?;
    let w = last.number.to_string().len();
    let in_ctx = |m: &&Mark| lo <= m.offset && m.offset + m.len <= lo + l;
    let primary =
        (marks.iter().filter(in_ctx).find(|m| m.primary)).or_else(|| marks.iter().find(in_ctx))?;
    let at = code
        .read_span(&SourceSpan::new(primary.offset.into(), primary.len), 0, 0)
        .ok()?;
    let name = at.name()?;
    let _ = writeln!(
        out,
        "{:1$}╭─[{name}:{2}:{3}]",
        "",
        w + 2,
        at.line() + 1,
        at.column() + 1
    );
    for row in &rows {
        let _ = writeln!(out, " {:>w$} │ {}", row.number, row.text);
        let end = row.offset + row.length;
        let applies = |m: &&Mark| {
            m.offset >= row.offset && m.offset < end
                || m.offset < row.offset && m.offset + m.len > end
                || m.offset + m.len > row.offset && m.offset + m.len <= end
        };
        let here: Vec<&Mark> = marks.iter().filter(applies).collect();
        // Labels on this line alone (no gutter of multi-line spans).
        if here
            .iter()
            .any(|m| m.offset < row.offset || m.offset + m.len > end)
        {
            return None;
        }
        if here.is_empty() {
            continue;
        }
        // Columns: a byte per column; a span past the text ends one column after it.
        let col = |o: usize| match o - row.offset {
            i if i > row.text.len() => row.text.len() + 1,
            i => i,
        };
        // The underlines left to right (a label overlapping the previous one starts after
        // it), then each message from the rightmost, with bars down from those left of it.
        let _ = write!(out, " {:w$} · ", "");
        let (mut highest, mut bars) = (0, Vec::with_capacity(here.len()));
        for m in &here {
            let first = col(m.offset).max(highest);
            let after = col(m.offset + m.len).max(first + 1);
            let bar = (first + after) / 2;
            let _ = write!(
                out,
                "{:1$}{2}┬{3}",
                "",
                first - highest,
                "─".repeat(bar - first),
                "─".repeat(after - bar - 1)
            );
            highest = highest.max(after);
            bars.push(bar);
        }
        out.push('\n');
        for k in (0..here.len()).rev() {
            let _ = write!(out, " {:w$} · ", "");
            let mut at = 0;
            for &bar in &bars[..k] {
                let _ = write!(out, "{:1$}│", "", bar - at);
                at = bar + 1;
            }
            let _ = writeln!(out, "{:1$}╰── {2}", "", bars[k] - at, here[k].message);
        }
    }
    let _ = writeln!(out, "{:1$}╰────", "", w + 2);
    Some(())
}

/// [`render`] reading the text from `code`.
pub fn render_from(code: impl SourceCode, src: &SourceFile, d: &Diagnostic, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_context_lines(1);
    let adapter = Adapter {
        d,
        src: code,
        len: src.text.len(),
    };
    let mut out = String::new();
    if handler.render_report(&mut out, &adapter).is_err() {
        out = format!("{}[{}]: {}\n", d.severity.as_str(), d.code, d.message);
    }
    for n in &d.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    out
}

pub fn json(src: &SourceFile, d: &Diagnostic) -> serde_json::Value {
    serde_json::to_value(JsonDiagnostic::new(src, d)).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdspec_compiler::ast::Span;
    use tdspec_compiler::diagnostics::Label;
    use tdspec_compiler::lint::{lint_source, LintOptions};

    /// The diagnostic rendered both ways (`None` where the direct drawing declines it).
    fn both(src: &SourceFile, d: &Diagnostic) -> (Option<String>, String) {
        let (start, end, line) = src.window(&d.labels, 2, 3);
        let window = || Window {
            name: &src.name,
            text: src.text.get(start..end).unwrap_or(""),
            offset: start,
            line,
        };
        (
            plain(&window(), src, d),
            render_from(window(), src, d, false),
        )
    }

    fn corpus(dir: &str) -> Vec<(String, String)> {
        let dir = format!("{}/../{dir}", env!("CARGO_MANIFEST_DIR"));
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("the corpus exists")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "tds"))
            .collect();
        paths.sort();
        let read = |p: &std::path::PathBuf| std::fs::read_to_string(p).expect("readable");
        paths
            .iter()
            .map(|p| (p.display().to_string(), read(p)))
            .collect()
    }

    /// Every report of the spec corpora (findings with fixes, and errors) drawn directly is
    /// byte for byte the one miette draws, and most of them are drawn directly.
    #[test]
    fn drawn_reports_are_miettes() {
        let opts = LintOptions {
            fixes: true,
            ..Default::default()
        };
        let (mut drawn, mut all) = (0, 0);
        for dir in [
            "specs",
            "compiler/tests/lint_fixtures",
            "experiments/specs",
            "tests/errors",
        ] {
            for (name, text) in corpus(dir) {
                let diags = match lint_source(&text, &opts) {
                    Ok(models) => models.into_iter().flat_map(|m| m.diagnostics).collect(),
                    Err(errors) => errors,
                };
                let src = SourceFile::new(name.clone(), text);
                for d in &diags {
                    let (fast, miette) = both(&src, d);
                    all += 1;
                    if let Some(fast) = fast {
                        assert_eq!(fast, miette, "{name}: {}", d.message);
                        drawn += 1;
                    }
                }
            }
        }
        assert!(
            all >= 150 && drawn * 10 >= all * 9,
            "{drawn} of {all} drawn directly"
        );
    }

    /// Shapes at the edges: labels at the ends of the text and of lines, on neighbouring and on
    /// distant lines (two snippets), messages and helps that wrap or nearly do; and the shapes
    /// left to miette (tabs, CRLF, non-ASCII, empty or shared spans, two labels on a line).
    #[test]
    fn edge_shapes_are_miettes_or_declined() {
        let mut text = String::new();
        for i in 0..40 {
            text += &format!("    h = h | group({i}) | silu | conv(32, k = 3)\n");
        }
        text += "\tx = y\r\nü = 1\nend";
        let src = SourceFile::new("edge.tds", text.clone());
        let at = |line: usize, col: usize| {
            text.split_inclusive('\n')
                .take(line)
                .map(str::len)
                .sum::<usize>()
                + col
        };
        let long = "word ".repeat(30).trim_end().to_string();
        let near = "x".repeat(WIDTH - 2 - 4);
        let messages = [
            "m".to_string(),
            long.clone(),
            near.clone(),
            format!("{near}y"),
            "a  b".into(),
            "é".into(),
        ];
        let spans: Vec<Vec<(usize, usize)>> = vec![
            vec![(0, 4)],
            vec![(at(0, 4), at(1, 0))],
            vec![(at(0, 4), at(1, 0) - 1)],
            vec![(at(3, 8), at(3, 13)), (at(4, 8), at(4, 9))],
            vec![(at(3, 8), at(3, 13)), (at(30, 8), at(30, 9))],
            vec![(at(30, 8), at(30, 9)), (at(3, 8), at(3, 13))],
            vec![(at(39, 0), at(39, 46))],
            vec![(text.len() - 3, text.len())],
            vec![(at(40, 0), at(40, 2))],
            vec![(at(41, 0), at(41, 2))],
            vec![(at(5, 1), at(5, 1))],
            vec![(at(5, 1), at(5, 3)), (at(5, 1), at(5, 5))],
            vec![(at(5, 1), at(5, 3)), (at(5, 6), at(5, 8))],
            vec![(at(5, 1), at(6, 3))],
        ];
        let mut drawn = 0;
        for (i, spans) in spans.iter().enumerate() {
            for (k, message) in messages.iter().enumerate() {
                let d = Diagnostic {
                    code: "TD102".into(),
                    severity: [Severity::Error, Severity::Warning, Severity::Info][k % 3],
                    message: message.clone(),
                    labels: spans
                        .iter()
                        .enumerate()
                        .map(|(j, &(a, b))| Label {
                            span: Span::new(a, b),
                            message: match (i, j) {
                                (0, _) if k == 5 => String::new(),
                                _ => [format!("label {j}"), long.clone()][(i + j + k) % 2].clone(),
                            },
                            primary: j == 1,
                        })
                        .collect(),
                    help: [None, Some(long.clone()), Some("use `x`".into())][k % 3].clone(),
                    notes: vec!["a note".into()],
                    fix: None,
                    fraction: None,
                };
                let (fast, miette) = both(&src, &d);
                if let Some(fast) = fast {
                    assert_eq!(fast, miette, "spans {spans:?}, message {message:?}");
                    drawn += 1;
                }
            }
        }
        assert!(drawn >= 40, "{drawn} drawn directly");
        // The end of a text without a final line break, and a label on its last line.
        let clean = format!(
            "{}end",
            text.split_inclusive('\n').take(40).collect::<String>()
        );
        let src = SourceFile::new("clean.tds", clean.clone());
        let n = clean.len();
        for spans in [
            vec![(n - 3, n)],
            vec![(n - 10, n - 8), (n - 3, n)],
            vec![(n - 50, n - 45)],
        ] {
            let d = Diagnostic {
                code: "E999".into(),
                severity: Severity::Error,
                message: "m".into(),
                labels: (spans.iter())
                    .map(|&(a, b)| Label {
                        span: Span::new(a, b),
                        message: "here".into(),
                        primary: true,
                    })
                    .collect(),
                help: None,
                notes: Vec::new(),
                fix: None,
                fraction: None,
            };
            let (fast, miette) = both(&src, &d);
            assert_eq!(fast.as_deref(), Some(miette.as_str()), "{spans:?}");
        }
    }
}
