//! Lint throughput: generates 1,000 small specs (injection mode x norm x groups x
//! nonlinearity position x padding x depth), lints each (parse, sema, analysis, rules, fixes
//! with their re-analysis) and prints specs per second; then times linting every reference
//! spec in specs/. Run with `cargo bench -p tdspec-compiler --bench lint`.

use std::time::Instant;
use tdspec_compiler::lint::{lint_source, LintOptions};

fn spec(i: usize) -> String {
    let inject = [
        "h = h + inject(temb)",
        "h = h + inject(temb, positional)",
        "h = h | scale_shift(temb)",
    ][i % 3];
    let norm = [
        "group(8)",
        "group(per_group = 1)",
        "instance",
        "batch",
        "layer",
        "group(2)",
    ][(i / 3) % 6];
    let relu_first = (i / 18) & 1 == 0;
    let pad = (i / 36) % 2;
    let depth = 1 + (i / 72) % 4;
    let mut s = format!(
        "model bench{i} {{\n    input x: image[3, 16, 16]\n    time t: step(1000), per_sample\n    \
         embed temb = sinusoidal(32) | linear(64) | silu | linear(64)\n    h = x | conv(32, k = 3, pad = {pad})\n"
    );
    for _ in 0..depth {
        s += &format!("    {inject}\n");
        if relu_first {
            s += &format!("    h = h | silu | {norm} | conv(32, k = 3, pad = {pad})\n");
        } else {
            s += &format!("    h = h | {norm} | silu | conv(32, k = 3, pad = {pad})\n");
        }
    }
    s += "    return h | conv1(3)\n}\n";
    s
}

fn main() {
    let opts = LintOptions {
        fixes: true,
        ..Default::default()
    };
    let specs: Vec<String> = (0..1000).map(spec).collect();
    let mut findings = 0;
    let start = Instant::now();
    for s in &specs {
        match lint_source(s, &opts) {
            Ok(r) => findings += r.iter().map(|m| m.diagnostics.len()).sum::<usize>(),
            Err(d) => panic!("generated spec does not check: {d:#?}\n{s}"),
        }
    }
    let dt = start.elapsed().as_secs_f64();
    println!(
        "lint: 1000 generated specs in {:.3} s: {:.0} specs/s ({findings} findings)",
        dt,
        1000.0 / dt
    );

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "tds"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    let texts: Vec<String> = paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    let start = Instant::now();
    let mut findings = 0;
    for t in &texts {
        if let Ok(r) = lint_source(t, &opts) {
            findings += r.iter().map(|m| m.diagnostics.len()).sum::<usize>();
        }
    }
    let dt = start.elapsed().as_secs_f64();
    println!(
        "lint: all {} reference specs in {:.1} ms ({findings} findings)",
        texts.len(),
        dt * 1e3
    );
    let no_fix = LintOptions::default();
    let start = Instant::now();
    for t in &texts {
        let _ = lint_source(t, &no_fix);
    }
    println!(
        "lint: all reference specs without fixes in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
}
