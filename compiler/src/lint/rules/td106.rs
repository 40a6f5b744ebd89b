//! TD106: a time modulation (`scale_shift`) placed before a normalization that undoes it. In:
//! the norm verdicts; out: one finding per (scale-shift, norm) instance keeping less than
//! [`ATTENUATION_THRESHOLD`] of the modulation.

use crate::analysis::ComponentKind;
use crate::diagnostics::Severity;
use crate::lint::rule::{
    allows, fmt_frac, per_unit, Context, Finding, FixPlan, Rule, ATTENUATION_THRESHOLD,
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
channels per group only the differences within a group survive. ADM applies the scale-shift
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
    for v in &cx.analysis.norms {
        for c in &v.components {
            if c.kind != ComponentKind::Modulation || c.fraction_in <= 0.0 {
                continue;
            }
            if !c.complete && c.fraction_out >= ATTENUATION_THRESHOLD {
                continue;
            }
            let Some(o) = cx.analysis.origins.get(c.origin_index) else {
                continue;
            };
            let message = if c.complete {
                "time modulation is undone by the normalization that follows it".to_string()
            } else {
                format!(
                    "time modulation is attenuated by the normalization that follows it: {} survives ({})",
                    fmt_frac(c.fraction_out),
                    per_unit(v)
                )
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
            f.help = Some("apply `scale_shift` after the normalization".to_string());
            f.fraction = Some(c.fraction_out);
            f.instance = Some(v.node.clone());
            f.allow = allows(cx, c, v);
            f.plan = FixPlan::AfterNorm {
                span: o.span,
                norm_span: v.span,
            };
            f.pairs.push((o.path.clone(), v.node.clone()));
            out.push(f);
        }
    }
    out
}
