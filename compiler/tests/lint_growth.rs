//! Lint stays linear in the size of a file: linting N copies of a model (each with findings and
//! fixes, every fix re-analyzed) parses a number of bytes proportional to N. Work is counted
//! (bytes parsed), never timed, so the test holds on any machine.

use tdspec_compiler::lint::{lint_source, LintOptions};
use tdspec_compiler::syntax::bytes_parsed;

fn copies(n: usize) -> String {
    let one = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../specs/small_odenet_mnist.tds"
    ))
    .unwrap();
    (0..n)
        .map(|i| one.replacen("model small_odenet_mnist", &format!("model m{i}"), 1))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parsed_for(n: usize) -> (u64, usize) {
    let text = copies(n);
    let opts = LintOptions {
        fixes: true,
        ..Default::default()
    };
    let before = bytes_parsed();
    let reports = lint_source(&text, &opts).expect("the copies check");
    let fixes = reports
        .iter()
        .flat_map(|r| &r.diagnostics)
        .filter(|d| d.fix.is_some())
        .count();
    (bytes_parsed() - before, fixes)
}

#[test]
fn lint_work_grows_linearly_with_the_models_of_a_file() {
    let (small, fixes_small) = parsed_for(5);
    let (large, fixes_large) = parsed_for(40);
    assert!(fixes_small > 0 && fixes_large == 8 * fixes_small);
    let ratio = large as f64 / small as f64;
    // 8x the models: 8x the bytes parsed (a little more for the larger file's own parse).
    assert!(
        ratio < 9.0,
        "8x the models parsed {ratio:.1}x the bytes ({small} -> {large})"
    );
}
