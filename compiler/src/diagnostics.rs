//! The project's diagnostic data: a code, a severity, a lowercase message, labeled spans, at most
//! one help line, notes and an optional fix. Every stage (parser, sema, lint) produces these;
//! the binary renders them with miette or serializes them as JSON/SARIF. Nothing here prints.

use crate::ast::Span;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
    /// The primary label marks what to change; secondary labels say why.
    pub primary: bool,
}

/// A text replacement in the spec source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    pub span: Span,
    pub replacement: String,
}

/// A machine-applicable rewrite of the spec. Fixes that change the model are `unsafe_`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fix {
    pub description: String,
    pub edits: Vec<Edit>,
    #[serde(rename = "unsafe")]
    pub unsafe_: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
    pub notes: Vec<String>,
    pub fix: Option<Fix>,
    /// The surviving fraction a lint finding states (TD101 0, TD102 and TD109 the share).
    pub fraction: Option<f64>,
}

impl Diagnostic {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            code: code.to_string(),
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            notes: Vec::new(),
            fix: None,
            fraction: None,
        }
    }
    pub fn warning(code: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }
    pub fn with_primary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: true,
        });
        self
    }
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: false,
        });
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
    pub fn with_fix(mut self, fix: Fix) -> Self {
        self.fix = Some(fix);
        self
    }
    /// The "did you mean" help: names the candidate closest to the mistyped `name` when one is
    /// close enough to be a likely typo (see [`did_you_mean`]); otherwise changes nothing.
    pub fn suggest<'a>(
        mut self,
        name: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        if let Some(s) = did_you_mean(name, candidates) {
            self.help = Some(format!("did you mean `{s}`?"));
        }
        self
    }
    /// Sets the help unless one is set: a fallback after [`Diagnostic::suggest`].
    pub fn or_help(mut self, help: impl Into<String>) -> Self {
        if self.help.is_none() {
            self.help = Some(help.into());
        }
        self
    }
    /// The span of the primary label (the first label if none is marked primary).
    pub fn primary_span(&self) -> Option<Span> {
        self.labels
            .iter()
            .find(|l| l.primary)
            .or_else(|| self.labels.first())
            .map(|l| l.span)
    }
}

/// A spec's source text with its name, and line/column lookup for byte offsets.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
    /// Whether the text holds a carriage return (then lines are not only `\n`-ended).
    has_cr: bool,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        let mut has_cr = false;
        for (i, b) in text.bytes().enumerate() {
            match b {
                b'\n' => line_starts.push(i + 1),
                b'\r' => has_cr = true,
                _ => {}
            }
        }
        SourceFile {
            name: name.into(),
            text,
            line_starts,
            has_cr,
        }
    }

    /// 1-based line and column (in characters) of a byte offset; offsets past the end clamp.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        (line + 1, col)
    }

    /// The lines a renderer needs for `labels`: from `before` lines above the first label's
    /// line to the end of `after` lines below the last one (lines end in `\n`). Returns the
    /// start and end offsets and the line breaks before the start, counting `\r\n`, `\n` and a
    /// lone `\r` once each (how renderers number lines). The whole text when there are no
    /// labels.
    pub fn window(&self, labels: &[Label], before: usize, after: usize) -> (usize, usize, usize) {
        let len = self.text.len();
        let (Some(lo), Some(hi)) = (
            labels.iter().map(|l| l.span.start.min(len)).min(),
            labels
                .iter()
                .map(|l| l.span.end.max(l.span.start).min(len))
                .max(),
        ) else {
            return (0, len, 0);
        };
        let line = |o: usize| match self.line_starts.binary_search(&o) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let first = line(lo).saturating_sub(before);
        let end = self
            .line_starts
            .get(line(hi) + after + 1)
            .copied()
            .unwrap_or(len);
        let start = self.line_starts[first];
        if !self.has_cr {
            return (start, end, first);
        }
        let b = &self.text.as_bytes()[..start];
        let breaks = (0..b.len())
            .filter(|&i| b[i] == b'\n' || b[i] == b'\r' && b.get(i + 1) != Some(&b'\n'))
            .count();
        (start, end, breaks)
    }

    /// The text a span covers ("" when the span is out of range or splits a character).
    pub fn slice(&self, span: Span) -> &str {
        self.text.get(span.start..span.end).unwrap_or("")
    }
}

/// A diagnostic flattened for machines: one JSON object per diagnostic.
#[derive(Debug, Clone, Serialize)]
pub struct JsonDiagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub byte_start: usize,
    pub byte_end: usize,
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    pub labels: Vec<JsonLabel>,
    pub notes: Vec<String>,
    pub fix: Option<Fix>,
    /// The surviving fraction the finding states, as a number (absent when it states none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JsonLabel {
    pub line: usize,
    pub column: usize,
    pub byte_start: usize,
    pub byte_end: usize,
    pub message: String,
    pub primary: bool,
}

impl JsonDiagnostic {
    pub fn new(src: &SourceFile, d: &Diagnostic) -> Self {
        let span = d.primary_span().unwrap_or_default();
        let (line, column) = src.line_col(span.start);
        let (end_line, end_column) = src.line_col(span.end);
        JsonDiagnostic {
            file: src.name.clone(),
            line,
            column,
            end_line,
            end_column,
            byte_start: span.start,
            byte_end: span.end,
            code: d.code.clone(),
            severity: d.severity,
            message: d.message.clone(),
            help: d.help.clone(),
            labels: d
                .labels
                .iter()
                .map(|l| {
                    let (line, column) = src.line_col(l.span.start);
                    JsonLabel {
                        line,
                        column,
                        byte_start: l.span.start,
                        byte_end: l.span.end,
                        message: l.message.clone(),
                        primary: l.primary,
                    }
                })
                .collect(),
            notes: d.notes.clone(),
            fix: d.fix.clone(),
            fraction: d.fraction,
        }
    }
}

/// Formats 1234567 as "1,234,567" (parameter counts in tables, messages and generated code).
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `name`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let s = SourceFile::new("a", "ab\ncd\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(3), (2, 1));
        assert_eq!(s.line_col(4), (2, 2));
        assert_eq!(s.line_col(100), (3, 1));
    }

    #[test]
    fn a_suggestion_is_the_help_and_a_fallback_only_fills_its_place() {
        let d = Diagnostic::error("E1", "unknown layer `reluu`")
            .suggest("reluu", ["relu", "silu"])
            .or_help("no such layer");
        assert_eq!(d.help.as_deref(), Some("did you mean `relu`?"));
        let d = Diagnostic::error("E1", "unknown layer `xyz`")
            .suggest("xyz", ["relu"])
            .or_help("no such layer");
        assert_eq!(d.help.as_deref(), Some("no such layer"));
    }

    #[test]
    fn suggestions_pick_the_closest_name() {
        assert_eq!(did_you_mean("conv", ["conv3", "linear"]), Some("conv3"));
        assert_eq!(
            did_you_mean("sinusodal", ["sinusoidal", "silu"]),
            Some("sinusoidal")
        );
        assert_eq!(did_you_mean("xyz", ["linear"]), None);
    }
}
