//! A fix as text: its description, then each source line it changes, before and after.

use super::reanalysis::apply_edits;
use crate::ast::Span;
use crate::diagnostics::{Diagnostic, Edit, SourceFile};

/// The fix of a diagnostic as text lines: its description, then each changed source line
/// before and after. Line numbers come from the file's line index: a file with a fix at every
/// site renders in time linear in its size.
pub fn render_fix(file: &SourceFile, d: &Diagnostic) -> String {
    let Some(fix) = &d.fix else {
        return String::new();
    };
    let src = file.text.as_str();
    let mut out = format!(
        "  fix{}: {}\n",
        if fix.unsafe_ { " (unsafe)" } else { "" },
        fix.description
    );
    let mut lines: Vec<(usize, usize)> = Vec::new();
    for e in &fix.edits {
        let start = src
            .get(..e.span.start.min(src.len()))
            .and_then(|s| s.rfind('\n'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let end = src
            .get(e.span.end.min(src.len())..)
            .and_then(|s| s.find('\n'))
            .map(|i| i + e.span.end)
            .unwrap_or(src.len());
        if !lines.contains(&(start, end)) {
            lines.push((start, end));
        }
    }
    for (start, end) in lines {
        let (line_no, _) = file.line_col(start);
        let old = src.get(start..end).unwrap_or("");
        let local: Vec<Edit> = fix
            .edits
            .iter()
            .filter(|e| e.span.start >= start && e.span.end <= end)
            .map(|e| Edit {
                span: Span::new(e.span.start - start, e.span.end - start),
                replacement: e.replacement.clone(),
            })
            .collect();
        let (new, _) = apply_edits(old, &local);
        out.push_str(&format!("    {line_no:>4} - {}\n", old.trim_end()));
        out.push_str(&format!("    {line_no:>4} + {}\n", new.trim_end()));
    }
    out
}
