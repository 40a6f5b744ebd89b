//! Every rule's documentation has the required headings, its Example spec triggers the rule
//! and its Use instead spec checks and does not; codes are unique and `explain` finds them.

use tdspec_compiler::lint::{lint_source, rule, suggest_code, LintOptions, RULES};

const HEADINGS: [&str; 6] = [
    "What it does",
    "Why is this bad",
    "Example",
    "Use instead",
    "Fix safety",
    "References",
];

/// The first ```tds block under `## heading`.
fn example(doc: &str, heading: &str) -> Option<String> {
    let section = doc.split(&format!("## {heading}\n")).nth(1)?;
    let section = section.split("\n## ").next()?;
    let code = section.split("```tds\n").nth(1)?;
    Some(code.split("```").next()?.to_string())
}

fn codes(src: &str, code: &str) -> usize {
    let opts = LintOptions {
        select: vec![code.to_string()],
        ..Default::default()
    };
    match lint_source(src, &opts) {
        Ok(r) => r
            .iter()
            .flat_map(|m| &m.diagnostics)
            .filter(|d| d.code == code)
            .count(),
        Err(d) => panic!("{code}: example does not check: {d:#?}\n{src}"),
    }
}

#[test]
fn docs_have_the_headings_in_order() {
    for r in RULES {
        let mut at = 0;
        for h in HEADINGS {
            let pos = r.doc[at..]
                .find(&format!("## {h}\n"))
                .unwrap_or_else(|| panic!("{}: no `## {h}` after byte {at}", r.code));
            at += pos + 1;
        }
        assert!(
            r.summary.chars().next().is_some_and(|c| c.is_lowercase()),
            "{}",
            r.code
        );
    }
}

#[test]
fn examples_trigger_and_remedies_do_not() {
    for r in RULES {
        let bad = example(r.doc, "Example").unwrap_or_else(|| panic!("{}: no example", r.code));
        let good = example(r.doc, "Use instead").unwrap_or_else(|| panic!("{}: no remedy", r.code));
        assert!(
            codes(&bad, r.code) > 0,
            "{}: the example does not trigger the rule",
            r.code
        );
        assert_eq!(
            codes(&good, r.code),
            0,
            "{}: the remedy still triggers the rule",
            r.code
        );
    }
}

#[test]
fn codes_are_unique_and_found() {
    for (i, r) in RULES.iter().enumerate() {
        assert!(
            RULES[i + 1..]
                .iter()
                .all(|o| o.code != r.code && o.name != r.name),
            "{} twice",
            r.code
        );
        assert_eq!(rule(r.code).map(|x| x.code), Some(r.code));
        assert_eq!(rule(&r.code.to_lowercase()).map(|x| x.code), Some(r.code));
    }
    assert!(rule("TD999").is_none());
    assert_eq!(suggest_code("TD1O1"), Some("TD101"));
}
