//! Per-rule fixtures (compiler/tests/lint_fixtures/tdNNN.tds): every model named `pos_*` must
//! report the rule and every `neg_*` model must not; the rendered text (fixes included), JSON
//! and SARIF outputs are snapshot-tested.

use tdspec_runtime::render;

use tdspec_compiler::diagnostics::{Diagnostic, SourceFile};
use tdspec_compiler::lint::{self, lint_source, LintOptions, RULES};

fn fixture(code: &str) -> SourceFile {
    let name = format!("lint_fixtures/{}.tds", code.to_ascii_lowercase());
    let path = format!("{}/../compiler/tests/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    SourceFile::new(name, text)
}

fn only(code: &str) -> LintOptions {
    LintOptions {
        select: vec![code.to_string()],
        fixes: true,
        ..Default::default()
    }
}

fn lint_all(src: &SourceFile, opts: &LintOptions) -> Vec<(String, Vec<Diagnostic>)> {
    match lint_source(&src.text, opts) {
        Ok(reports) => reports
            .into_iter()
            .map(|r| (r.model.name, r.diagnostics))
            .collect(),
        Err(d) => panic!("{} does not check: {d:#?}", src.name),
    }
}

/// What `tdspec lint` prints for these diagnostics.
fn text(src: &SourceFile, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&render::render(src, d, false));
        out.push_str(&lint::render_fix(src, d));
        out.push('\n');
    }
    out
}

fn check_fixture(code: &str) {
    let src = fixture(code);
    let models = lint_all(&src, &only(code));
    assert!(
        models.iter().any(|(m, _)| m.starts_with("pos_")),
        "{code}: no positive case"
    );
    assert!(
        models.iter().any(|(m, _)| m.starts_with("neg_")),
        "{code}: no negative case"
    );
    for (model, diags) in &models {
        let hits = diags.iter().filter(|d| d.code == code).count();
        if model.starts_with("pos_") {
            assert!(hits > 0, "{code}: {model} should report {code}");
        } else {
            assert_eq!(
                hits, 0,
                "{code}: {model} should not report {code}: {diags:#?}"
            );
        }
        for d in diags {
            assert!(
                d.labels.iter().filter(|l| l.primary).count() == 1,
                "{code}: one primary label"
            );
            assert!(
                !d.message.ends_with('.'),
                "{code}: message ends with a period"
            );
            assert!(
                d.message.chars().next().is_some_and(|c| !c.is_uppercase()),
                "{code}: message is lowercase"
            );
            if let Some(fix) = &d.fix {
                assert!(fix.unsafe_, "{code}: fixes change the model and are unsafe");
            }
        }
    }
    let all: Vec<Diagnostic> = models.into_iter().flat_map(|(_, d)| d).collect();
    insta::assert_snapshot!(
        format!("{}_text", code.to_ascii_lowercase()),
        text(&src, &all)
    );
}

#[test]
fn td101_fixture() {
    check_fixture("TD101");
}

#[test]
fn td102_fixture() {
    check_fixture("TD102");
}

#[test]
fn td103_fixture() {
    check_fixture("TD103");
}

#[test]
fn td104_fixture() {
    check_fixture("TD104");
}

#[test]
fn td105_fixture() {
    check_fixture("TD105");
}

#[test]
fn td106_fixture() {
    check_fixture("TD106");
}

#[test]
fn td107_fixture() {
    check_fixture("TD107");
}

#[test]
fn td108_fixture() {
    check_fixture("TD108");
}

#[test]
fn td109_fixture() {
    check_fixture("TD109");
}

#[test]
fn every_rule_has_a_fixture() {
    for r in RULES {
        let path = format!(
            "{}/../compiler/tests/lint_fixtures/{}.tds",
            env!("CARGO_MANIFEST_DIR"),
            r.code.to_ascii_lowercase()
        );
        assert!(
            std::path::Path::new(&path).exists(),
            "{} has no fixture",
            r.code
        );
    }
}

#[test]
fn json_output() {
    let src = fixture("TD101");
    let diags: Vec<Diagnostic> = lint_all(&src, &only("TD101"))
        .into_iter()
        .flat_map(|(_, d)| d)
        .collect();
    let json: Vec<serde_json::Value> = diags.iter().map(|d| render::json(&src, d)).collect();
    insta::assert_snapshot!("td101_json", serde_json::to_string_pretty(&json).unwrap());
}

#[test]
fn sarif_output() {
    let src = fixture("TD102");
    let diags: Vec<Diagnostic> = lint_all(&src, &only("TD102"))
        .into_iter()
        .flat_map(|(_, d)| d)
        .collect();
    let log = lint::sarif::sarif(&[(&src, diags.as_slice())], "0.0.0-test");
    assert_eq!(log["version"], "2.1.0");
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), RULES.len());
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), diags.len());
    for r in results {
        let i = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[i]["id"], r["ruleId"]);
        assert!(
            r["locations"][0]["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap()
                >= 1
        );
    }
    // Rule documentation is long: keep the snapshot to the results.
    insta::assert_snapshot!(
        "td102_sarif_results",
        serde_json::to_string_pretty(&log["runs"][0]["results"]).unwrap()
    );
}

#[test]
fn deny_and_ignore() {
    let src = fixture("TD102");
    let opts = LintOptions {
        deny: vec!["TD10".into()],
        ..Default::default()
    };
    let diags: Vec<Diagnostic> = lint_all(&src, &opts)
        .into_iter()
        .flat_map(|(_, d)| d)
        .collect();
    assert!(diags.iter().any(|d| d.code == "TD102"));
    assert!(diags
        .iter()
        .all(|d| d.severity == tdspec_compiler::diagnostics::Severity::Error));
    let opts = LintOptions {
        ignore: vec!["TD102".into()],
        ..Default::default()
    };
    let diags: Vec<Diagnostic> = lint_all(&src, &opts)
        .into_iter()
        .flat_map(|(_, d)| d)
        .collect();
    assert!(diags.iter().all(|d| d.code != "TD102"));
    assert!(lint::check_pattern("TD1").is_ok());
    let err = lint::check_pattern("TD201").unwrap_err();
    assert!(err.contains("did you mean"), "{err}");
}

#[test]
fn td104_names_the_layer_by_its_op() {
    let src = SourceFile::new(
        "inline.tds",
        "model m {
            input x: image[4, 8, 8]
            time  t: continuous, shared
            h = x | conv(8, k = 3, pad = 0, time = concat(positional)) | batch | relu
            v = h | avgpool | flatten | linear(16) as proj | batch | relu
            return v | linear(10)
        }",
    );
    let diags: Vec<Diagnostic> = lint_all(&src, &only("TD104"))
        .into_iter()
        .flat_map(|(_, d)| d)
        .collect();
    let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "the bias of this conv is canceled by the following normalization",
            "the bias of this linear layer is canceled by the following normalization"
        ]
    );
}
