//! TD106: a time modulation (`scale_shift`) placed before a normalization that undoes it. In:
//! the accounting's norm verdicts; out: one finding per (scale-shift, norm) instance keeping less than
//! [`ATTENUATION_THRESHOLD`] of the modulation.

use crate::accounting::{OriginKind, Prediction};
use crate::diagnostics::Severity;
use crate::lint::rule::{
    at_norm, fmt_frac, per_unit, Context, Finding, FixPlan, Rule, ATTENUATION_THRESHOLD,
};

pub const RULE: Rule = Rule {
    code: "TD106",
    name: "modulation-before-norm",
    summary: "time modulation placed before a normalization that undoes it",
    severity: Severity::Warning,
    fixable: true,
    doc: DOC,
    check,
};

pub const DOC: &str = r#"## What it does
Finds a `scale_shift(e)` (AdaGN, FiLM) whose output goes straight into a normalization, with
only per-channel operations (dropout, pooling, upsampling) in between.

## Why is this bad
Scale-shift multiplies each channel by `1 + s_c(t)` and adds `b_c(t)`. A normalization whose unit
is one channel (instance, GroupNorm with one channel per group, batch with shared t) divides the
scale out and subtracts the shift: the modulation is undone exactly (for `1 + s > 0`). With m
channels per group only the differences within a group survive: the shift keeps (m - 1)/m (the
finding's fraction); the scale's share depends on the features and is not stated. ADM applies the scale-shift
*after* the norm for this reason.

## Example
```tds
model undone {
    input x: image[4, 8, 8]
    time  t: step(100), per_sample
    embed temb = sinusoidal(16) | linear(32)
    h = x | conv(16, k = 1, pad = 0) | scale_shift(temb) | instance | relu
    return h | conv1(4)
}
```

## Use instead
```tds
model after_norm {
    input x: image[4, 8, 8]
    time  t: step(100), per_sample
    embed temb = sinusoidal(16) | linear(32)
    h = x | conv(16, k = 1, pad = 0) | instance | scale_shift(temb) | relu
    return h | conv1(4)
}
```

## Fix safety
Where the two are adjacent stages of one pipeline, the fix swaps them. It is unsafe: it
changes the model.

## References
- P. Dhariwal, A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021
  (`use_scale_shift_norm`).
- E. Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer", AAAI 2018.
"#;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for v in cx.acc.norms.iter().filter(|v| !v.constant) {
        for ov in &v.origins {
            let Some(o) = cx.acc.origins.get(ov.origin) else {
                continue;
            };
            if o.kind != OriginKind::ScaleShift {
                continue;
            }
            // Undone: the shift is removed and the scale divided out (Unknown only because
            // `1 + s` could change sign between the two times). Attenuated: the shift keeps
            // the per-channel constant's share of a multi-channel unit.
            let (message, fraction) = match (ov.prediction, ov.constant_part) {
                (Prediction::Zero | Prediction::Unknown, _) => (
                    "time modulation is undone by the normalization that follows it".to_string(),
                    None,
                ),
                (Prediction::Nonzero, Some(cp)) if cp > 0.0 && cp < ATTENUATION_THRESHOLD => (
                    format!(
                        "time modulation is attenuated by the normalization that follows it: its shift keeps {} ({})",
                        fmt_frac(cp),
                        per_unit(v)
                    ),
                    Some(cp),
                ),
                _ => continue,
            };
            let mut f = Finding::new(
                RULE.code,
                message,
                o.span,
                "scales and shifts each channel by t".to_string(),
            );
            f.secondary.push((
                v.span,
                format!("`{}` normalizes the modulated channels again", v.kind),
            ));
            if ov.prediction == Prediction::Unknown {
                f.notes.push(
                    "exactly undone unless 1 + s(t) changes sign between the two times".to_string(),
                );
            }
            f.help = Some("apply `scale_shift` after the normalization".to_string());
            f.fraction = fraction;
            at_norm(cx, &mut f, ov.origin, v);
            f.plan = FixPlan::AfterNorm {
                span: o.span,
                norm_span: v.span,
            };
            out.push(f);
        }
    }
    out
}
