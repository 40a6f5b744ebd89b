//! CLI integration tests: `tdspec check` on every reference spec (insta snapshots of the table)
//! and on every file of the error corpus (exit code 1, the expected code, a primary span that
//! covers the offending text, and a snapshot of the rendered diagnostics).

mod common;
use common::tdspec;

use std::path::{Path, PathBuf};

fn files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tds"))
        .collect();
    v.sort();
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .expect("inside the repo")
        .display()
        .to_string()
}

#[test]
fn check_every_reference_spec() {
    let specs = files("specs");
    assert!(specs.len() >= 15, "reference specs missing");
    for spec in specs {
        let path = rel(&spec);
        let (code, stdout, stderr) = tdspec(&["check", &path]);
        assert_eq!(code, 0, "{path}: {stderr}");
        let stem = spec
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_string();
        insta::assert_snapshot!(format!("check_{stem}"), stdout);
    }
}

#[test]
fn reference_parameter_counts() {
    let expect = [
        ("specs/odenet_mnist.tds", 208_266u64),
        ("specs/odenet_cifar10.tds", 209_418),
        ("specs/ddpm_cifar10.tds", 35_746_307),
        ("specs/adm_cifar10.tds", 38_307_203),
    ];
    for (path, n) in expect {
        let (code, stdout, _) = tdspec(&["check", "--format", "json", path]);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        assert_eq!(v[0]["params"].as_u64(), Some(n), "{path}");
    }
    let (_, stdout, _) = tdspec(&["check", "--format", "json", "specs/odenet_mnist.tds"]);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let sections: Vec<(String, u64)> = v[0]["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_string(),
                s["params"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        sections,
        vec![
            ("stem".to_string(), 132_096),
            ("features".to_string(), 75_392),
            ("head".to_string(), 778)
        ]
    );
}

#[test]
fn check_directory_prints_every_model() {
    let (code, stdout, _) = tdspec(&["check", "specs"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.matches("total parameters").count(),
        files("specs").len()
    );
}

#[test]
fn error_corpus() {
    let errs = files("tests/errors");
    assert!(errs.len() >= 25, "the error corpus needs at least 25 cases");
    let mut codes = std::collections::BTreeSet::new();
    for f in errs {
        let path = rel(&f);
        let text = std::fs::read_to_string(&f).expect("read");
        let first = text.lines().next().unwrap_or("");
        let spec = first
            .strip_prefix("// expect: ")
            .unwrap_or_else(|| panic!("{path}: no expect line"));
        let (want_code, rest) = spec.split_once(' ').expect("code and span");
        let want_span = rest.trim().trim_matches('`');

        let (code, stdout, stderr) = tdspec(&["check", "--format", "json", &path]);
        assert_eq!(code, 1, "{path}: exit code, stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "{path} panicked");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("json diagnostics");
        let d = &v[0];
        assert_eq!(d["code"].as_str(), Some(want_code), "{path}: {d}");
        let (s, e) = (
            d["byte_start"].as_u64().unwrap_or(0) as usize,
            d["byte_end"].as_u64().unwrap_or(0) as usize,
        );
        let covered = text.get(s..e).unwrap_or("");
        assert!(
            covered.contains(want_span),
            "{path}: primary span covers {covered:?}, expected it to cover {want_span:?}"
        );
        codes.insert(want_code.to_string());

        let (code, _, rendered) = tdspec(&["check", &path]);
        assert_eq!(code, 1);
        let stem = f
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_string();
        insta::assert_snapshot!(format!("error_{stem}"), rendered);
    }
    assert!(codes.len() >= 20, "distinct error codes: {codes:?}");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let (code, _, stderr) = tdspec(&["check", "does/not/exist.tds"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no such file"), "{stderr}");
    let (code, _, _) = tdspec(&["check"]);
    assert_eq!(code, 2);
    let (code, _, _) = tdspec(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn check_json_lists_layers_and_injections() {
    let (code, stdout, _) = tdspec(&["check", "--format", "json", "specs/small_ddpm_mnist.tds"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let inj = v[0]["injections"].as_array().expect("injections");
    assert_eq!(
        inj.len(),
        8,
        "one additive injection per residual block (2 down, 2 mid, 4 up)"
    );
    assert!(inj
        .iter()
        .all(|i| i["mode"] == "additive per-channel offset"));
    let layers = v[0]["layers"].as_array().expect("layers");
    assert!(layers.iter().any(|l| l["name"] == "down.0.res0.temb_proj"));
}
