//! The renderer hands miette only the lines around a diagnostic: the text it prints is the text
//! a whole-file source gives, for `\n`, `\r\n` and `\r` line ends, and the window stays a few
//! lines long however long the file is (rendering was quadratic in a file's size). Where the
//! renderer draws a report itself (no color, plain shapes), the text is miette's too.

use tdspec_runtime::render;

use tdspec_compiler::ast::Span;
use tdspec_compiler::diagnostics::{Diagnostic, Label, Severity, SourceFile};

fn diag(spans: &[(usize, usize)]) -> Diagnostic {
    Diagnostic {
        code: "TD102".into(),
        severity: Severity::Warning,
        message: "m".into(),
        labels: spans
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| Label {
                span: Span::new(a, b),
                message: format!("label {i}"),
                primary: i == 0,
            })
            .collect(),
        help: None,
        notes: Vec::new(),
        fix: None,
        fraction: None,
    }
}

#[test]
fn a_window_renders_as_the_whole_file_and_stays_small() {
    let line = "    h = h | group(8) | silu | conv(32, k = 3)";
    for sep in ["\n", "\r\n", "\r"] {
        let mut text: String = (0..3000).map(|i| format!("{line} // {i}{sep}")).collect();
        text.push_str("tail");
        let src = SourceFile::new("big.tds", text.clone());
        let len = text.len();
        let at = |n: usize| text.match_indices("group").nth(n).map(|m| m.0).unwrap_or(0);
        for spans in [
            vec![(0, 4)],
            vec![(at(0), at(0) + 8)],
            vec![(at(1500), at(1500) + 8), (at(1499), at(1499) + 4)],
            vec![(at(2998), at(2999) + 8)],
            vec![(len - 4, len)],
            vec![(len, len)],
            vec![(len + 10, len + 20)],
        ] {
            let d = diag(&spans);
            let whole = miette::NamedSource::new("big.tds", text.clone());
            let expected = render::render_from(whole, &src, &d, false);
            assert_eq!(
                render::render(&src, &d, false),
                expected,
                "{sep:?} {spans:?}"
            );
            // A file of lone `\r`s is one line to the window: rendered whole, and correctly.
            let (start, end, _) = src.window(&d.labels, 2, 3);
            let covered = spans[0].1.saturating_sub(spans[0].0).min(len);
            assert!(
                sep == "\r" || end - start < 8 * (line.len() + 10) + covered,
                "{sep:?} {spans:?}: a window of {} bytes",
                end - start
            );
        }
    }
}
