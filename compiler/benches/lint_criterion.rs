//! Criterion benches of lint: throughput over the reference specs (specs/*.tds, fixes with
//! their predicted effect included), and one model with 10 and with 100 injection sites, each
//! with its own fix, for how lint grows with the sites (`scripts/bench_lint.py`'s shapes; it
//! times whole processes). Run with `cargo bench -p tdspec-compiler --bench lint_criterion`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use tdspec_compiler::lint::{lint_source, LintOptions};

fn reference_specs() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("specs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tds"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("a readable spec"))
        .collect()
}

fn sites(n: usize, stage: &str) -> String {
    let head = "model sites {\n    input x: image[3, 16, 16]\n    time t: step(1000), per_sample\n    \
                embed temb = sinusoidal(32) | linear(64) | silu | linear(64)\n    h = x | conv(32, k = 3)\n";
    format!("{head}{}    return h | conv1(3)\n}}\n", stage.repeat(n))
}

fn opts() -> LintOptions {
    LintOptions {
        fixes: true,
        ..Default::default()
    }
}

fn lint_all(texts: &[String], opts: &LintOptions) -> usize {
    texts
        .iter()
        .map(|t| match lint_source(t, opts) {
            Ok(r) => r.iter().map(|m| m.diagnostics.len()).sum(),
            Err(d) => d.len(),
        })
        .sum()
}

fn reference(c: &mut Criterion) {
    let texts = reference_specs();
    let opts = opts();
    let mut g = c.benchmark_group("lint reference specs");
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("with fixes", |b| b.iter(|| lint_all(&texts, &opts)));
    g.bench_function("without fixes", |b| {
        b.iter(|| lint_all(&texts, &LintOptions::default()))
    });
    g.finish();
}

fn growth(c: &mut Criterion) {
    let opts = opts();
    let families = [
        (
            "group fix at each site",
            "    h = h + inject(temb)\n    h = h | group(8) | silu | conv(32, k = 3)\n",
        ),
        (
            "positional fix at each site",
            "    h = h + inject(temb)\n    h = h | instance | silu | conv(32, k = 3)\n",
        ),
        (
            "ConcatConv fix at each site",
            "    h = h | conv(32, k = 3, time = concat) | group(8) | silu\n",
        ),
    ];
    let mut g = c.benchmark_group("lint sites");
    for (name, stage) in families {
        for n in [10, 100] {
            let text = [sites(n, stage)];
            g.bench_with_input(BenchmarkId::new(name, n), &text, |b, t| {
                b.iter(|| lint_all(t, &opts))
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = reference, growth
}
criterion_main!(benches);
