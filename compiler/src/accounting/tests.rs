//! The accounting on small specs, including every example of a wrong verdict the old analysis
//! gave (border leaks, cancellations through attention residuals and pooled patterns, chains of
//! norms, numbers after nonlinearities).

use super::*;
use crate::sema::check_source;

fn acc(body: &str) -> Accounting {
    let src = format!(
        "model m {{ input x: image[4, 8, 8]\n time t: continuous, shared\n embed e = sinusoidal(16) | linear(16)\n {body} }}"
    );
    match check_source(&src) {
        Ok(models) => account(&models[0]),
        Err(d) => panic!("spec does not check: {d:#?}\n{src}"),
    }
}

fn pred(a: &Accounting, norm: &str) -> Prediction {
    let n = a.norm(norm).unwrap_or_else(|| {
        panic!(
            "no norm {norm}: {:?}",
            a.norms.iter().map(|n| &n.node).collect::<Vec<_>>()
        )
    });
    n.total
        .unwrap_or_else(|| panic!("time does not reach {norm}"))
}

fn frac(p: Prediction) -> f64 {
    p.fraction().unwrap_or_else(|| panic!("no number: {p:?}"))
}

#[test]
fn offset_into_group_norm_keeps_m_minus_one_over_m() {
    let a = acc("h = x | conv(16, k = 1, pad = 0)\n h = h + inject(e)\n return h | group(4) as n");
    assert!((frac(pred(&a, "n")) - 0.75).abs() < 1e-12);
    let a = acc("h = x | conv(16, k = 1, pad = 0)\n h = h + inject(e)\n return h | instance as n");
    assert_eq!(pred(&a, "n"), Prediction::Zero);
    assert!(!a.output_sees_t());
}

#[test]
fn padded_conv_after_the_offset_leaks_through_the_border() {
    // 8 x 8, 3 x 3, pad 1: 1 - 162² / (64 · 22²) = 0.1528.
    let a = acc("h = x | conv3(64)\n h = h + inject(e)\n return h | conv3(64) | instance as n");
    let f = frac(pred(&a, "n"));
    assert!(
        (f - (1.0 - 162.0_f64.powi(2) / (64.0 * 22.0_f64.powi(2)))).abs() < 1e-9,
        "{f}"
    );
    assert!(a.output_sees_t());
    let v = &a.norm("n").unwrap().origins[0];
    assert_eq!(v.constant_part, Some(0.0));
    assert!((v.border_part.unwrap() - f).abs() < 1e-12);
}

#[test]
fn concat_conv_leak_on_six_by_six() {
    let src = "model m { input x: image[64, 6, 6]\n time t: continuous, shared\n return x | conv3(64, time = concat) | group(32) as n }";
    let a = account(&check_source(src).unwrap()[0]);
    assert!((frac(pred(&a, "n")) - 0.5987).abs() < 1e-3);
    let src = "model m { input x: image[64, 6, 6]\n time t: continuous, shared\n return x | conv(64, k = 3, pad = 0, time = concat) | group(32) as n }";
    let a = account(&check_source(src).unwrap()[0]);
    assert!((frac(pred(&a, "n")) - 0.5).abs() < 1e-12);
}

#[test]
fn attention_residual_carries_an_offset_the_final_norm_removes() {
    let a = acc("norm = group(32)\n h = x | conv(32, k = 1, pad = 0)\n h = h + inject(e)\n return h | attention(1) as at | instance as n");
    assert_eq!(pred(&a, "at.norm"), Prediction::Zero);
    assert_eq!(pred(&a, "n"), Prediction::Zero);
    assert!(!a.output_sees_t());
}

#[test]
fn positional_injection_pooled_globally_is_gone() {
    let a = acc("h = x | conv(16, k = 1, pad = 0)\n h = h + inject(e, positional)\n return h | avgpool | flatten | layer as n");
    assert!(!a.output_sees_t(), "{:?}", a.output);
    assert!(a.norm("n").unwrap().total.is_none());
    // Without the pooling the pattern survives a per-channel norm completely.
    let a = acc("h = x | conv(16, k = 1, pad = 0)\n h = h + inject(e, positional)\n return h | instance as n");
    assert_eq!(frac(pred(&a, "n")), 1.0);
}

#[test]
fn a_second_norm_removes_nothing_more() {
    let a = acc("h = x | conv(64, k = 1, pad = 0)\n h = h + inject(e)\n return h | group(32) as n1 | group(32) as n2");
    assert!((frac(pred(&a, "n1")) - 0.5).abs() < 1e-12);
    assert_eq!(frac(pred(&a, "n2")), 1.0);
    let a = acc("h = x | conv(64, k = 1, pad = 0)\n h = h + inject(e)\n return h | group(per_group = 2) as n1 | group(per_group = 4) as n2");
    assert_eq!(frac(pred(&a, "n2")), 1.0);
}

#[test]
fn after_a_nonlinearity_no_number() {
    let a = acc(
        "h = x | conv(16, k = 1, pad = 0)\n h = h + inject(e)\n return h | relu | instance as n",
    );
    assert_eq!(pred(&a, "n"), Prediction::Nonzero);
}

#[test]
fn residual_sum_of_two_offsets_of_one_origin() {
    // Both paths carry per-channel constants (the 1x1 conv mixes them with fresh weights):
    // the sum is still a per-channel constant.
    let a = acc("h = x | conv(16, k = 1, pad = 0)\n h = h + inject(e)\n h = h + (h | conv(16, k = 1, pad = 0))\n return h | instance as n");
    assert_eq!(pred(&a, "n"), Prediction::Zero);
    let a = acc("h = x | conv(16, k = 1, pad = 0)\n h = h + inject(e)\n h = h + (h | conv3(16))\n return h | instance as n");
    let f = frac(pred(&a, "n"));
    assert!(f > 0.0 && f < 0.2, "{f}");
}

#[test]
fn scale_shift_before_a_per_channel_norm_is_unknown() {
    let a = acc("return x | conv(16, k = 1, pad = 0) | scale_shift(e) | instance as n");
    assert_eq!(pred(&a, "n"), Prediction::Unknown);
    let a = acc("return x | conv(16, k = 1, pad = 0) | instance | scale_shift(e)");
    assert!(a.output_sees_t());
}

#[test]
fn positional_patterns_repeat_with_their_period() {
    for (h, w) in [(1, 1), (1, 5), (3, 3), (8, 6), (32, 32)] {
        for c in 0..40 {
            assert_eq!(
                pattern(c, h, w),
                pattern(c % PATTERN_PERIOD, h, w),
                "{c} {h}x{w}"
            );
        }
        // Grouping channels by period gives the covariance built channel by channel.
        for c in [1, 4, 9, 10, 23] {
            let grouped = cov::Cov::positional(c, h, w, PATTERN_PERIOD, |k| pattern(k, h, w));
            let each = cov::Cov::positional(c, h, w, c, |k| pattern(k, h, w));
            assert_eq!(grouped, each, "{c} channels on {h}x{w}");
        }
    }
}

#[test]
fn a_norm_rerun_from_its_input_gives_its_account() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs");
    let mut rerun = 0;
    for e in std::fs::read_dir(dir).expect("specs/") {
        let p = e.expect("an entry").path();
        let Ok(models) = check_source(&std::fs::read_to_string(&p).expect("readable")) else {
            continue;
        };
        for m in &models {
            let a = account(m);
            for (i, v) in a.norms.iter().enumerate() {
                match a.norm_as(i, v.kind) {
                    Some(again) => {
                        assert_eq!(&again, v, "{} {}", p.display(), v.node);
                        rerun += 1;
                    }
                    None => assert!(v.in_attention, "{} {}", p.display(), v.node),
                }
            }
        }
    }
    assert!(rerun > 100, "only {rerun} norms");
}

#[test]
fn per_position_layer_norm_keeps_one_minus_one_over_c_of_any_change() {
    // The mean over one position's C channels, uncorrelated at initialization: 1 - 1/C,
    // whether the change is an offset, a positional map or a border-shaped conv output.
    for (body, c) in [
        ("h = x | conv(8, k = 1, pad = 0)\n h = h + inject(e)\n return h | layer(over = channels) as n", 8.0),
        ("h = x | conv(8, k = 1, pad = 0)\n h = h + inject(e, positional)\n return h | layer(over = channels) as n", 8.0),
        ("h = x | conv3(4)\n h = h + inject(e)\n return h | conv3(5) | layer(over = channels) as n", 5.0),
        ("return x | conv3(16, time = concat) | layer(over = channels) as n", 16.0),
    ] {
        let a = acc(body);
        let f = frac(pred(&a, "n"));
        assert!((f - (1.0 - 1.0 / c)).abs() < 1e-12, "{body}: {f}");
        assert!(a.output_sees_t(), "{body}");
    }
    // One channel per position: the output is β.
    let a = acc("h = x | conv(1, k = 1, pad = 0)\n h = h + inject(e)\n return h | layer(over = channels) as n");
    assert!(a.norm("n").unwrap().constant);
    // A per-position norm's output is mean-free over each sample's whole map: a layer norm
    // after it has nothing more to remove; a group norm does.
    let a = acc("h = x | conv(8, k = 1, pad = 0)\n h = h + inject(e)\n return h | layer(over = channels) | layer as n");
    assert_eq!(pred(&a, "n"), Prediction::Exact { fraction: 1.0 });
}

#[test]
fn a_change_of_a_value_free_of_the_input_is_shared_by_the_batch() {
    // group(4) on four channels of 1 x 1 maps outputs β: what the embedding adds after it is
    // the same for every sample, through the per-position norm and the conv, so a BatchNorm
    // over a batch sharing t removes all of it.
    let a = acc("h = x | avgpool(k = 8, stride = 8) | group(4)\n h = h + inject(e)\n h = h | layer(over = channels) | conv(4, k = 1, pad = 0)\n return h | batch as n");
    assert_eq!(pred(&a, "n"), Prediction::Zero);
    // A scale-shift of a per-channel norm's output, averaged over the whole map: the scaled
    // features average to 0 and only the shift, the same for every sample, is left.
    let a = acc("h = x | conv(8, k = 1, pad = 0) | instance | scale_shift(e) | avgpool | flatten | linear(8)\n return h | batch as n");
    assert_eq!(pred(&a, "n"), Prediction::Zero);
    // ... also with another injection on the way (it adds a part of its own origin).
    let a = acc("h = x | conv(8, k = 1, pad = 0) | instance | scale_shift(e)\n h = h + inject(e)\n return h | avgpool | flatten | linear(8) | batch as n");
    assert_eq!(a.norm("n").unwrap().origins[0].prediction, Prediction::Zero);
    // Features that are not centered per channel keep the scaled part alive.
    let a = acc("h = x | conv(8, k = 1, pad = 0) | scale_shift(e) | avgpool | flatten | linear(8)\n return h | batch as n");
    assert_eq!(pred(&a, "n"), Prediction::Nonzero);
}

#[test]
fn windows_that_average_the_same_positions_give_a_constant_map() {
    // A 1 x 1 map padded by 2 into a 2 x 2 conv: the centre 2 x 2 of the 4 x 4 output holds
    // four taps of the input, the ring the bias. Every 3 x 3 window of it (stride 1) averages
    // the same nine values, so the 2 x 2 result is constant over H, W and a per-channel norm
    // removes what any origin changes there.
    let a = acc("h = x | avgpool(k = 8, stride = 8) | conv(8, k = 1, pad = 0)\n h = h + inject(e)\n h = h | layer | conv(8, k = 2, pad = 2) | avgpool(k = 3, stride = 1)\n return h | instance as n");
    assert_eq!(pred(&a, "n"), Prediction::Zero);
    // With stride 1 on a 4 x 4 map of distinct rows the windows differ: nothing is claimed.
    let a = acc("h = x | avgpool(k = 2, stride = 2) | conv(8, k = 1, pad = 0)\n h = h + inject(e)\n h = h | layer | conv(8, k = 1, pad = 0) | avgpool(k = 3, stride = 1)\n return h | instance as n");
    assert_ne!(pred(&a, "n"), Prediction::Zero);
}
