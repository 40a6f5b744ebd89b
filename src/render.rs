//! Rendering: the compiler's plain [`Diagnostic`] data in, text out. Text goes through miette
//! (graphical, colorless when not a terminal, so snapshots are stable); JSON is one object
//! per diagnostic.

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use std::fmt;
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

/// Renders one diagnostic as miette's graphical report, followed by its notes.
pub fn render(src: &SourceFile, d: &Diagnostic, color: bool) -> String {
    // Two lines of slack either side of the one line of context miette shows.
    let (start, end, line) = src.window(&d.labels, 2, 3);
    let text = src.text.get(start..end).unwrap_or("");
    let (name, offset) = (&src.name, start);
    render_from(
        Window {
            name,
            text,
            offset,
            line,
        },
        src,
        d,
        color,
    )
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
