//! The lint's shortcuts give what the long way gives: a group count judged from a norm's input
//! equals a re-analysis of the rewritten spec, and the re-analysis budget bounds the work of
//! a model with many fixes, and a fix made on the IR equals the re-analysis of its text.

use super::reanalysis::{ALWAYS_REANALYZE, MAX_REANALYSES};
use super::{lint_source, LintOptions};
use crate::diagnostics::Diagnostic;

fn lint(src: &str, reanalyze: bool) -> Vec<Diagnostic> {
    ALWAYS_REANALYZE.with(|f| f.set(reanalyze));
    let opts = LintOptions {
        fixes: true,
        ..Default::default()
    };
    let out = lint_source(src, &opts);
    ALWAYS_REANALYZE.with(|f| f.set(false));
    out.unwrap_or_else(|e| panic!("does not check: {e:#?}\n{src}"))
        .into_iter()
        .flat_map(|r| r.diagnostics)
        .collect()
}

/// How many of the diagnostics carry a fewer-groups fix.
fn group_fixes(diags: &[Diagnostic]) -> usize {
    let fewer = |d: &&Diagnostic| {
        d.fix
            .as_ref()
            .is_some_and(|f| f.description.contains("fewer groups"))
    };
    diags.iter().filter(fewer).count()
}

/// `n` injection sites, each followed by its own `group(...)` call written at the stage.
fn sites(n: usize, norm: &str, inject: &str, pad: usize) -> String {
    let mut s = String::from(
        "model sites {\n    input x: image[3, 12, 12]\n    time t: step(1000), per_sample\n    \
         embed temb = sinusoidal(32) | linear(64) | silu | linear(64)\n    h = x | conv(32, k = 3)\n",
    );
    for _ in 0..n {
        s += &format!(
            "    h = h + {inject}\n    h = h | {norm} | silu | conv(32, k = 3, pad = {pad})\n"
        );
    }
    s + "    return h | conv1(3)\n}\n"
}

#[test]
fn a_group_count_judged_from_the_norm_input_equals_a_reanalysis() {
    let mut judged = 0;
    for norm in [
        "group(8)",
        "group(16)",
        "group(per_group = 1)",
        "group(per_group = 2)",
    ] {
        for inject in ["inject(temb)", "inject(temb | silu)"] {
            for pad in [0, 1] {
                let src = sites(3, norm, inject, pad);
                let quick = lint(&src, false);
                let long = lint(&src, true);
                assert_eq!(quick, long, "{norm} {inject} pad {pad}\n{src}");
                judged += group_fixes(&quick);
            }
        }
    }
    assert!(judged >= 24, "only {judged} group fixes were compared");
    // The reference specs and the rule fixtures, whatever path their fixes take.
    for dir in ["/../specs", "/tests/lint_fixtures"] {
        let dir = format!("{}{dir}", env!("CARGO_MANIFEST_DIR"));
        for e in std::fs::read_dir(&dir).expect("the directory exists") {
            let p = e.expect("an entry").path();
            if p.extension().is_some_and(|x| x == "tds") {
                let src = std::fs::read_to_string(&p).expect("readable");
                if crate::sema::check_source(&src).is_ok() {
                    assert_eq!(lint(&src, false), lint(&src, true), "{}", p.display());
                }
            }
        }
    }
}

#[test]
fn a_model_with_many_fixes_is_reanalyzed_at_most_the_budget() {
    // Each site's fix (a positional injection) is a distinct rewrite.
    let src = sites(3 * MAX_REANALYSES, "instance", "inject(temb)", 1);
    let before = crate::syntax::bytes_parsed();
    let diags = lint(&src, false);
    let parsed = crate::syntax::bytes_parsed() - before;
    // The lint's own parse, then each re-analysis of a text a fix made a few bytes longer.
    let bound = src.len() + MAX_REANALYSES * (src.len() + 64);
    assert!(
        parsed as usize <= bound,
        "{parsed} bytes parsed, bound {bound}"
    );
    // Dropping a bias is made on the IR and needs no accounting: outside the budget, every one
    // states its parameters.
    let (biases, fixes): (Vec<&str>, Vec<&str>) = diags
        .iter()
        .filter_map(|d| d.fix.as_ref())
        .map(|f| f.description.as_str())
        .partition(|d| d.starts_with("drop the bias"));
    assert!(
        !biases.is_empty() && biases.iter().all(|d| d.contains("fewer parameters")),
        "{biases:#?}"
    );
    let predicted = fixes
        .iter()
        .filter(|d| d.contains("predicted survival"))
        .count();
    let unchecked = fixes
        .iter()
        .filter(|d| d.contains("not re-analyzed"))
        .count();
    assert!(predicted > 0 && predicted <= MAX_REANALYSES, "{fixes:#?}");
    assert_eq!(predicted + unchecked, fixes.len(), "{fixes:#?}");
    assert!(unchecked > 0, "{fixes:#?}");
}

#[test]
fn bias_fixes_at_every_site_copy_no_model() {
    // A conv bias before each instance norm: a bias fix (TD104) at every site, counted on the
    // checked model; only the positional fixes' re-analyses (within the budget) copy it.
    for n in [10, 60] {
        let src = sites(n, "instance", "inject(temb)", 1);
        let before = super::patch::MODELS_COPIED.with(|c| c.get());
        let diags = lint(&src, false);
        let copied = super::patch::MODELS_COPIED.with(|c| c.get()) - before;
        let biases = diags
            .iter()
            .filter_map(|d| d.fix.as_ref())
            .filter(|f| f.description.contains("fewer parameters"))
            .count();
        assert!(biases >= n, "{n} sites: {biases} bias fixes");
        assert!(
            copied <= MAX_REANALYSES,
            "{n} sites: {copied} models copied"
        );
    }
}

#[test]
fn group_fixes_at_their_own_norms_need_no_reanalysis() {
    // One parse for the lint itself, however many group fixes: linear in the sites.
    for n in [10, 100] {
        let src = sites(n, "group(8)", "inject(temb)", 1);
        let before = crate::syntax::bytes_parsed();
        let diags = lint(&src, false);
        let parsed = crate::syntax::bytes_parsed() - before;
        assert_eq!(group_fixes(&diags), n, "{n} sites");
        assert_eq!(parsed as usize, src.len(), "{n} sites");
    }
}

/// A model whose injections all stay alive into every later norm makes the accounting track
/// sites x nodes parts; past the limit the lint says where it stopped (E303) and claims
/// nothing, rather than growing without bound.
#[test]
fn the_accounting_limit_is_an_error_at_the_node_not_a_claim() {
    let model = |n: usize| {
        let mut s = String::from(
            "model alive {\n    input x: image[3, 8, 8]\n    time t: step(1000), per_sample\n    \
             embed temb = sinusoidal(16) | linear(16)\n    h = x | conv(8, k = 3)\n",
        );
        for _ in 0..n {
            s += "    h = h | group(4) | scale_shift(temb) | silu | conv(8, k = 3)\n";
        }
        s + "    return h | conv1(3)\n}\n"
    };
    crate::accounting::TRACK_LIMIT.with(|c| c.set(Some(2_000)));
    let long = lint(&model(40), false);
    let short = lint(&model(5), false);
    crate::accounting::TRACK_LIMIT.with(|c| c.set(None));
    assert_eq!(long.len(), 1, "{long:#?}");
    assert_eq!(long[0].code, "E303");
    assert!(long[0].message.contains("stops at"), "{}", long[0].message);
    // Parts grow as sites^2 / 2 per node: 2,000 parts are reached within the first 40 sites.
    let line = model(40)[..long[0].labels[0].span.start].lines().count();
    assert!((10..45).contains(&line), "stopped on line {line}");
    // Five sites stay under it: a scale-shift after each norm keeps t, nothing to report.
    assert!(short.is_empty(), "{short:#?}");
}

/// Lints `texts` (those that check) with fixes, the re-analysis budget on and off, and gives
/// how many patched models were checked against the re-analysis of their text meanwhile (the
/// check is an assertion inside every re-analysis a test makes).
fn patches_checked(texts: &[String]) -> usize {
    let before = super::reanalysis::PATCHES_CHECKED.with(|c| c.get());
    for t in texts
        .iter()
        .filter(|t| crate::sema::check_source(t).is_ok())
    {
        lint(t, false);
        lint(t, true);
    }
    super::reanalysis::PATCHES_CHECKED.with(|c| c.get()) - before
}

fn spec_dir(dir: &str) -> Vec<String> {
    let dir = format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("the directory exists")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "tds"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("readable"))
        .collect()
}

/// Also: every re-analysis of a fix's pairs alone states at each pair what the whole
/// re-analysis states there; and every group setting passed over without a re-analysis (judged from its norms' inputs
/// to leave a pair reported) is one the re-analysis of the rewritten text rejects too, so the
/// setting chosen is the one trying each in turn would choose.
#[test]
fn every_patched_model_equals_the_reanalysis_of_its_text() {
    let passed_over = super::reanalysis::PASSED_OVER_CHECKED.with(|c| c.get());
    let focused = super::reanalysis::FOCUSES_CHECKED.with(|c| c.get());
    // The corpora: each kind of patch is made there (195 checks at this writing).
    let mut corpus = spec_dir("../specs");
    corpus.extend(spec_dir("tests/lint_fixtures"));
    corpus.extend(spec_dir("../experiments/specs"));
    let checked = patches_checked(&corpus);
    assert!(checked >= 100, "{checked} patches checked");
    let passed_over = super::reanalysis::PASSED_OVER_CHECKED.with(|c| c.get()) - passed_over;
    assert!(passed_over >= 20, "{passed_over} settings passed over");
    let focused = super::reanalysis::FOCUSES_CHECKED.with(|c| c.get()) - focused;
    assert!(
        focused >= 10,
        "{focused} re-analyses of pairs alone checked"
    );
    // Generated: a bias fix per site (an instance norm cancels the conv's bias), positional
    // injections inside a block instantiated several times, ConcatConv sites before each
    // kind of norm, injection sites before each kind of norm.
    let bias = sites(4, "instance", "inject(temb)", 1).replace(
        "conv(32, k = 3, pad = 1)",
        "conv(32, k = 3, pad = 1) | instance",
    );
    let block = "model b {\n    input x: image[3, 8, 8]\n    time t: step(1000), per_sample\n    \
                 embed temb = sinusoidal(16) | linear(16)\n    \
                 block res(c)(h) {\n        a = h | conv(c, k = 3)\n        a = a + inject(temb)\n        \
                 return a | instance | silu | conv(c, k = 3)\n    }\n    \
                 h = x | conv(8, k = 3) | res(8) | res(8) | res(8)\n    return h | conv1(3)\n}\n"
        .to_string();
    let concat = |norm: &str| {
        let mut s = String::from(
            "model c {\n    input x: image[1, 10, 10]\n    time t: continuous, shared\n    h = x | conv(8, k = 3)\n",
        );
        for _ in 0..3 {
            s += &format!("    h = h | conv(8, k = 3, time = concat) | {norm} | relu\n");
        }
        s + "    return h | conv1(1)\n}\n"
    };
    let mut generated = vec![
        bias,
        block,
        concat("instance"),
        concat("group(8)"),
        concat("batch"),
    ];
    for norm in ["instance", "group(8)", "layer", "batch"] {
        generated.push(sites(3, norm, "inject(temb)", 0));
        generated.push(sites(3, norm, "inject(temb | silu)", 1));
    }
    // Group counts rewritten in the model's setting (norms in a block used three times and an
    // attention's inner norm), with `min_per_group`, with `per_group`, and at a block's stage.
    let groups = |setting: &str, stage: &str| {
        format!(
            "model g {{\n    input x: image[3, 8, 8]\n    time t: step(1000), per_sample\n    \
             norm = {setting}\n    embed temb = sinusoidal(16) | linear(32)\n    \
             block res()(h) {{\n        a = h + inject(temb)\n        \
             return a | {stage} | silu | conv(32, k = 3)\n    }}\n    \
             h = x | conv(32, k = 3) | res() | res() | res() | attention(heads = 1)\n    \
             return h | conv1(3)\n}}\n"
        )
    };
    generated.push(groups("group(32)", "norm"));
    generated.push(groups("group(16, min_per_group = 2)", "norm"));
    generated.push(groups("group(per_group = 1)", "norm"));
    generated.push(groups("group(4)", "group(32)"));
    let checked = patches_checked(&generated);
    assert!(checked >= 10, "{checked} patches checked");
}
