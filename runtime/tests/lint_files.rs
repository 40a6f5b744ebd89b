//! Linting files on several threads gives, in order, what linting them one by one gives.

use std::path::PathBuf;
use tdspec_compiler::lint::LintOptions;
use tdspec_runtime::spec::{lint_file, lint_files};

#[test]
fn files_linted_in_parallel_come_back_in_order_and_unchanged() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut paths: Vec<PathBuf> = ["specs", "compiler/tests/lint_fixtures", "tests/diffusers"]
        .iter()
        .flat_map(|d| std::fs::read_dir(format!("{root}/{d}")).expect("a directory"))
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "tds" || x == "json"))
        .collect();
    paths.sort();
    // A file that cannot be read keeps its place too.
    paths.insert(3, PathBuf::from(format!("{root}/specs/no-such-spec.tds")));
    let opts = LintOptions {
        fixes: true,
        ..Default::default()
    };
    let one: Vec<_> = paths
        .iter()
        .map(|p| lint_file(p, &opts, false, false))
        .collect();
    for threads in [2, 3, 64] {
        let many = lint_files(&paths, &opts, false, false, threads);
        assert_eq!(many.len(), one.len());
        for ((a, b), p) in many.iter().zip(&one).zip(&paths) {
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.src.name, b.src.name, "{}", p.display());
                    assert_eq!(a.diagnostics, b.diagnostics, "{}", p.display());
                }
                (Err(a), Err(b)) => assert_eq!(a, b),
                _ => panic!("{}: {} vs {}", p.display(), a.is_ok(), b.is_ok()),
            }
        }
    }
}
