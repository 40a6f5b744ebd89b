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
    stages(&texts);
}

/// Where the time of a lint goes: each stage of the pipeline alone over the reference specs,
/// best of 20 rounds (per round, in ms).
fn stages(texts: &[String]) {
    let best = |f: &dyn Fn()| {
        (0..20)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    };
    let files: Vec<_> = texts
        .iter()
        .filter_map(|t| tdspec_compiler::syntax::parse(t).ok())
        .collect();
    let models: Vec<_> = files
        .iter()
        .flat_map(|f| tdspec_compiler::sema::analyze(f).0)
        .collect();
    let parse = best(&|| {
        for t in texts {
            let _ = tdspec_compiler::syntax::parse(t);
        }
    });
    let sema = best(&|| {
        for f in &files {
            let _ = tdspec_compiler::sema::analyze(f);
        }
    });
    let account = best(&|| {
        for m in &models {
            let _ = tdspec_compiler::accounting::account(m);
        }
    });
    let fixes = LintOptions {
        fixes: true,
        ..Default::default()
    };
    let lint_fix = best(&|| {
        for t in texts {
            let _ = lint_source(t, &fixes);
        }
    });
    let lint = best(&|| {
        for t in texts {
            let _ = lint_source(t, &LintOptions::default());
        }
    });
    println!(
        "stages over the {} reference specs (ms, best of 20): parse {parse:.2}, sema {sema:.2}, \
         accounting {account:.2}, lint without fixes {lint:.2}, with fixes {lint_fix:.2}",
        texts.len()
    );
}
