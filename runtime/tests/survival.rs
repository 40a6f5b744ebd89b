//! The survival probe against the static accounting on the examples where the old analysis was
//! wrong: border leaks, cancellations through attention residuals and pooled patterns, chains
//! of norms, survival after a nonlinearity. Each must agree under the probe's tolerances.

use dfdx::prelude::Cpu;
use tdspec_compiler::accounting::account;
use tdspec_compiler::sema::check_source;
use tdspec_runtime::params::Params;
use tdspec_runtime::survival::{measure, NormMeasure, ProbeSettings};

fn probe(src: &str, seeds: usize) -> Vec<NormMeasure> {
    let m = check_source(src)
        .unwrap_or_else(|d| panic!("{d:#?}"))
        .remove(0);
    let acc = account(&m);
    let dev = Cpu::default();
    let settings = ProbeSettings {
        seeds: (0..seeds as u64).collect(),
        ..ProbeSettings::default()
    };
    let mm = m.clone();
    let d2 = dev.clone();
    measure(
        &m,
        &acc,
        &dev,
        &move |s| Ok(Params::init(&mm, &d2, s)),
        &settings,
    )
    .unwrap()
}

fn spec(body: &str) -> String {
    format!(
        "model m {{ input x: image[4, 8, 8]\n time t: continuous, shared\n norm = group(32)\n embed e = sinusoidal(16) | linear(16)\n {body} }}"
    )
}

fn show(v: &[NormMeasure]) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

#[test]
fn issue_examples_agree() {
    for body in [
        "h = x | conv3(64)\n h = h + inject(e)\n return h | conv3(64) | instance as n",
        "h = x | conv(64, k = 1, pad = 0)\n h = h + inject(e)\n return h | group(16) as n",
        "h = x | conv(64, k = 1, pad = 0)\n h = h + inject(e)\n return h | instance as n",
        "h = x | conv(32, k = 1, pad = 0)\n h = h + inject(e)\n return h | attention(1) as at | instance as n",
        "h = x | conv(64, k = 1, pad = 0)\n h = h + inject(e)\n return h | group(32) as n1 | group(32) as n2",
        "h = x | conv(64, k = 1, pad = 0)\n h = h + inject(e)\n return h | relu | instance as n",
        "h = x | conv(64, k = 1, pad = 0)\n h = h + inject(e, positional)\n return h | instance as n",
        "h = x | conv(64, k = 1, pad = 0)\n h = h + inject(e)\n return h | downsample | instance as n",
    ] {
        let v = probe(&spec(body), 4);
        assert!(v.iter().all(|n| n.agree), "{body}\n{}", show(&v));
        eprintln!("{body}\n{}", v.iter().map(|n| format!("  {} pred {:?} meas {:?} tol {:?}", n.node, n.predicted, n.measured, n.total.tolerance)).collect::<Vec<_>>().join("\n"));
    }
}
