//! The formatter's properties on the project's own specs and on mutations of them:
//! - the specs the repository ships (reference specs, training specs, lint fixtures, experiment
//!   specs) are in the canonical layout: formatting them changes nothing;
//! - on those and on every parseable file of the error corpus, formatting is idempotent and
//!   keeps the checked IR and parameter counts (spans aside), or the same errors;
//! - a canonical spec whose spacing was disturbed (no line breaks added) formats back to itself;
//! - a spec with random line breaks, comments, trailing commas and semicolons inserted formats
//!   idempotently, keeps its meaning and its comments (the formatter checks both itself and
//!   reports an internal error otherwise);
//! - random token edits never make the formatter panic: it formats what parses, idempotently.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use tdspec_compiler::fmt::{format_source, unified_diff, without_spans, FmtError};
use tdspec_compiler::sema::check_source;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Directories whose specs are kept in the canonical layout.
const CANONICAL: &[&str] = &[
    "specs",
    "tests/train_specs",
    "tests/diffusers",
    "experiments/specs",
    "compiler/tests/lint_fixtures",
];

fn specs_in(dir: &str) -> Vec<(String, String)> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tds"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no specs in {dir}");
    v.into_iter()
        .map(|p| {
            let name = format!("{dir}/{}", p.file_name().unwrap().to_string_lossy());
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

fn canonical_specs() -> Vec<(String, String)> {
    CANONICAL.iter().flat_map(|d| specs_in(d)).collect()
}

fn fmt(src: &str) -> String {
    format_source(src).unwrap_or_else(|e| panic!("{e}\n--- input:\n{src}"))
}

/// What checking a spec yields, layout aside: the IR without spans and the parameter counts,
/// or the errors' codes and messages.
type Meaning = Result<(serde_json::Value, Vec<usize>), Vec<(String, String)>>;

fn meaning(src: &str) -> Meaning {
    check_source(src)
        .map(|models| {
            (
                without_spans(&models),
                models.iter().map(|m| m.param_count()).collect(),
            )
        })
        .map_err(|ds| ds.into_iter().map(|d| (d.code, d.message)).collect())
}

fn assert_formats_well(name: &str, src: &str) -> String {
    let once = fmt(src);
    let twice = fmt(&once);
    assert!(
        once == twice,
        "{name}: not idempotent\n{}",
        unified_diff(name, &once, &twice)
    );
    assert_eq!(
        meaning(src),
        meaning(&once),
        "{name}: meaning changed\n{once}"
    );
    once
}

#[test]
fn shipped_specs_are_in_the_canonical_layout() {
    let mut diffs = Vec::new();
    let specs = canonical_specs();
    for (name, src) in &specs {
        let out = fmt(src);
        if &out != src {
            diffs.push(unified_diff(name, src, &out));
        }
    }
    assert!(diffs.is_empty(), "run `tdspec fmt`:\n{}", diffs.join("\n"));
    assert!(specs.len() >= 35, "{} specs", specs.len());
}

#[test]
fn corpus_formats_idempotently_and_keeps_meaning() {
    let mut n = 0;
    let mut errors = 0;
    for (name, src) in canonical_specs()
        .into_iter()
        .chain(specs_in("tests/errors"))
    {
        match format_source(&src) {
            Err(FmtError::Parse(_)) => assert!(tdspec_compiler::syntax::parse(&src).is_err()),
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => {
                assert_formats_well(&name, &src);
                n += 1;
                errors += usize::from(check_source(&src).is_err());
            }
        }
    }
    // Most of the error corpus parses and fails later, in sema: its errors must survive too.
    assert!(
        n >= 70 && errors >= 30,
        "{n} formatted, {errors} with sema errors"
    );
}

/// Byte ranges between tokens (outside comments) of a spec.
fn gaps(src: &str) -> Vec<(usize, usize)> {
    let b = src.as_bytes();
    let mut toks: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if src[i..].starts_with("//") {
            i = src[i..].find('\n').map_or(b.len(), |n| i + n);
        } else if src[i..].starts_with("/*") {
            i = src[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
        } else {
            let start = i;
            let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
            if word(c) || c == b'-' {
                i += 1;
                while i < b.len()
                    && (word(b[i])
                        || ((b[i] == b'-' || b[i] == b'+') && matches!(b[i - 1], b'e' | b'E')))
                {
                    i += 1;
                }
            } else {
                i += src[i..].chars().next().map_or(1, char::len_utf8);
            }
            toks.push((start, i));
        }
    }
    toks.windows(2)
        .map(|w| (w[0].1, w[1].0))
        .filter(|&(a, z)| !src[a..z].contains("/"))
        .collect()
}

/// Replaces the whitespace of gap `k` (of the spec's current gaps, cycling) with `with`.
fn replace_gap(src: &str, k: usize, with: &str) -> Option<String> {
    let g = gaps(src);
    if g.is_empty() {
        return None;
    }
    let (a, z) = g[k % g.len()];
    Some(format!("{}{with}{}", &src[..a], &src[z..]))
}

fn parses(s: &str) -> bool {
    tdspec_compiler::syntax::parse(s).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn respaced_specs_format_back(idx in 0usize..1000, edits in proptest::collection::vec((0usize..10_000, 0usize..4), 1..25)) {
        let specs = canonical_specs();
        let (name, src) = &specs[idx % specs.len()];
        let mut s = src.clone();
        for (k, what) in edits {
            // Spacing only: a gap keeps its line breaks (and blank lines), indented anyhow.
            let g = gaps(&s);
            let (a, z) = g[k % g.len()];
            let filler = ["", " ", "   ", "\t "][what];
            let breaks = s[a..z].matches('\n').count();
            let with = if breaks == 0 {
                filler.to_string()
            } else {
                format!("{filler}{}", "\n".repeat(breaks)) + &" ".repeat(what * 3)
            };
            if let Some(m) = replace_gap(&s, k, &with) {
                // `as norm1` needs its space; keep only edits that still parse the same way.
                if parses(&m) && meaning(&m) == meaning(src) {
                    s = m;
                }
            }
        }
        let out = fmt(&s);
        prop_assert!(&out == src, "{name}\n{}", unified_diff(name, src, &out));
    }

    #[test]
    fn specs_with_breaks_comments_and_separators_format_stably(
        idx in 0usize..1000,
        edits in proptest::collection::vec((0usize..10_000, 0usize..9), 1..20),
    ) {
        let specs: Vec<(String, String)> =
            canonical_specs().into_iter().chain(specs_in("tests/errors")).filter(|(_, s)| parses(s)).collect();
        let (name, src) = &specs[idx % specs.len()];
        let mut s = src.clone();
        let mut comments = 0;
        for (k, what) in edits {
            let with = match what {
                0 => "\n".to_string(),
                1 => "\n\n      ".to_string(),
                2 => format!(" // note {k}\n"),
                3 => format!("\n// own line {k}\n"),
                4 => format!(" /* inline {k} */ "),
                5 => ", ".to_string(),
                6 => "; ".to_string(),
                7 => "\n\n\n".to_string(),
                _ => "  ".to_string(),
            };
            if let Some(m) = replace_gap(&s, k, &with) {
                if parses(&m) && meaning(&m) == meaning(src) {
                    comments += usize::from((2..=4).contains(&what));
                    s = m;
                }
            }
        }
        let once = assert_formats_well(name, &s);
        prop_assert!(once.matches("note ").count() + once.matches("own line ").count() + once.matches("inline ").count() >= comments);
    }

    #[test]
    fn token_edits_never_panic(idx in 0usize..1000, at in 0usize..10_000, len in 0usize..30, dup in any::<bool>()) {
        let specs = canonical_specs();
        let (name, src) = &specs[idx % specs.len()];
        let g = gaps(src);
        let (a, _) = g[at % g.len()];
        let z = (a + len).min(src.len());
        let z = (z..=src.len()).find(|&i| src.is_char_boundary(i)).unwrap_or(src.len());
        let m = if dup {
            format!("{}{}{}", &src[..z], &src[a..z], &src[z..])
        } else {
            format!("{}{}", &src[..a], &src[z..])
        };
        match format_source(&m) {
            Ok(_) => { assert_formats_well(name, &m); }
            Err(FmtError::Parse(_)) => prop_assert!(!parses(&m)),
            Err(e) => prop_assert!(false, "{name}: {e}\n{m}"),
        }
    }
}

/// A trailing comma alone on its line, with a comment after it: dropping the comma must leave
/// the comment where a second run puts it (found by the property test above).
#[test]
fn a_dropped_comma_on_its_own_line_keeps_its_comment_stable() {
    let src = "model m {\n    input x: image[1, 28, 28]\n    time  t: continuous, shared\n    norm  = group(8)\n    return x | conv(32, k = 31, pad = 0 // note a\n, // note b\n)\n}\n";
    let once = assert_formats_well("dropped comma", src);
    assert!(
        once.contains("// note a") && once.contains("// note b"),
        "{once}"
    );
}
