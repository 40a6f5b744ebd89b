//! TD109: a per-channel time offset that a normalization removes except for what the
//! zero-padding border lets through. In: the accounting's norm verdicts; out: one finding per
//! (origin, norm) instance with the surviving share, which is the whole time signal there.

use crate::accounting::{OriginKind, Prediction};
use crate::diagnostics::Severity;
use crate::lint::rule::{
    at_norm, fmt_frac, norm_name, origin_help, origin_label, positional_plan, Context, Finding,
    Rule,
};

pub const RULE: Rule = Rule {
    code: "TD109",
    name: "embedding-border-only",
    summary: "time signal survives a normalization only through the zero-padding border",
    severity: Severity::Warning,
    fixable: true,
    doc: DOC,
    check,
};

pub const DOC: &str = r#"## What it does
Finds a per-channel time offset (an injected `[B, C, 1, 1]` embedding, a ConcatConv's constant
time channel) that reaches a normalization whose reduction unit holds one channel (instance,
GroupNorm with one channel per group, batch with shared t) after a zero-padded convolution. The
norm removes the constant; what survives is the border structure the padding gave the offset:
near the edges a padded conv sums fewer taps, so the offset is smaller there. The finding states
that share: `E‖Δ - mean_U Δ‖² / E‖Δ‖²`, the expected fraction of the time change's energy left
after the norm's mean subtraction, at initialization (weights uniform in ±1/√fan_in), for the
actual map size, kernel, stride and padding. `tdspec probe` measures the same quantity.

## Why is this bad
The network sees t only as a ring-shaped pattern along the image border, whose strength the
padding and the map size fix, not the model. On small maps (an ODE-Net's 7 x 7) the ring is most
of the image and a sizable share survives; on large maps almost nothing does. Either way the
time signal is an artifact of padding rather than a designed input.

## Example
```tds
model ring {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    h = x | conv(16, k = 3, pad = 1, time = concat) | instance | relu
    return h | conv1(4)
}
```

## Use instead
```tds
model positional {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    h = x | conv(16, k = 3, pad = 1, time = concat(positional)) | instance | relu
    return h | conv1(4)
}
```

## Fix safety
The fix makes the injection positional (`inject(e, positional)`, `time = concat(positional)`).
It is unsafe: it changes the model. The message shows the predicted surviving fraction after the
fix.

## References
- B. J. Kim, Y. Kawahara, S. W. Kim, "The Disappearance of Timestep Embedding in Modern
  Time-Dependent Neural Networks", arXiv:2405.14126, 2024.
"#;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for v in cx.acc.norms.iter().filter(|v| !v.constant) {
        for ov in &v.origins {
            let Prediction::Exact { fraction } = ov.prediction else {
                continue;
            };
            if ov.constant_part != Some(0.0) || fraction <= 0.0 {
                continue;
            }
            let Some(o) = cx.acc.origins.get(ov.origin) else {
                continue;
            };
            if o.kind == OriginKind::ScaleShift {
                continue;
            }
            let frac = fmt_frac(fraction);
            let mut f = Finding::new(
                RULE.code,
                format!("time signal survives a normalization only through the zero-padding border: {frac} of its energy"),
                o.span,
                origin_label(o.kind).to_string(),
            );
            f.secondary.push((
                v.span,
                format!(
                    "{} removes each channel's constant; the border ring keeps {frac}",
                    norm_name(v)
                ),
            ));
            f.notes.push(
                "the share is the expectation at initialization for this map size, kernel and padding"
                    .to_string(),
            );
            f.help = origin_help(o.kind);
            f.fraction = Some(fraction);
            at_norm(cx, &mut f, ov.origin, v);
            f.plan = positional_plan(cx, ov.origin);
            out.push(f);
        }
    }
    out
}
