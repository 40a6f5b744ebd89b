//! TD102: a timestep embedding attenuated by a normalization. In: the accounting; out: one
//! finding per (injection, norm) instance that keeps less than [`ATTENUATION_THRESHOLD`] of
//! the offset's energy, with the surviving fraction and the channels per group.

use crate::accounting::{OriginKind, Prediction};
use crate::diagnostics::Severity;
use crate::ir::NormKind;
use crate::lint::rule::{
    at_norm, fmt_frac, norm_name, origin_help, origin_label, per_unit, positional_plan, Context,
    Finding, FixPlan, Rule, ATTENUATION_THRESHOLD,
};

pub const RULE: Rule = Rule {
    code: "TD102",
    name: "embedding-attenuated",
    summary: "timestep embedding attenuated by a normalization",
    severity: Severity::Warning,
    fixable: true,
    doc: DOC,
    check,
};

pub const DOC: &str = r#"## What it does
Finds a per-channel time offset (an injected `[B, C, 1, 1]` embedding, a ConcatConv's constant
time channel) that reaches a normalization whose reduction unit spans several channels, and
reports the expected fraction of the offset's energy that survives the norm's mean
subtraction, `E‖Δ - mean_U Δ‖² / E‖Δ‖²` at initialization (weights uniform in ±1/√fan_in).
GroupNorm with m channels per group keeps (m - 1)/m of a per-channel constant (DDPM's
GroupNorm(32) on 128 channels: 0.75; on 256: 0.875); LayerNorm keeps (C - 1)/C. When a
zero-padded conv stands between, the offset has a border structure and its share is added: the
ODE-Net's ConcatConv into GroupNorm(32) on 64 channels keeps 0.5 + 0.099 = 0.599 on 7 x 7 maps.
A LayerNorm over each position's C channels (`layer(over = channels)`) keeps (C - 1)/C of any
time change, a positional map included. Fractions below 0.9 are reported; `tdspec probe`
measures the same quantity.

## Why is this bad
The norm subtracts each group's mean: the part of the time offset shared by the channels of a
group is removed, and what survives is divided by the group's standard deviation. A large part
of the timestep signal never reaches the following layers.

## Example
```tds
model attenuated {
    input x: image[4, 8, 8]
    time  t: step(100), per_sample
    embed temb = sinusoidal(16) | linear(32)
    h = x | conv(16, k = 1, pad = 0)
    h = h + inject(temb)
    return h | group(8) | relu | conv1(4)
}
```

## Use instead
```tds
model kept {
    input x: image[4, 8, 8]
    time  t: step(100), per_sample
    embed temb = sinusoidal(16) | linear(32)
    h = x | conv(16, k = 1, pad = 0)
    h = h + inject(temb)
    return h | group(1) | relu | conv1(4)
}
```
Fewer groups (more channels per group) keep more of the offset; a positional embedding
(`inject(e, positional)`) or a scale-shift after the norm keeps all of it.

## Fix safety
The fix lowers the group count of the normalization (the model's `norm = group(G)` setting or
the `group(...)` layer) to the largest count that keeps at least 0.9 at every reported site, or,
when no group count does, makes the injection positional (none is offered at a per-position
LayerNorm, where a positional injection keeps no more). It is unsafe: it changes the model.
The message shows the predicted surviving fraction after the fix, computed by re-analyzing the
rewritten spec.

## References
- B. J. Kim, Y. Kawahara, S. W. Kim, "The Disappearance of Timestep Embedding in Modern
  Time-Dependent Neural Networks", arXiv:2405.14126, 2024.
- J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
"#;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for v in cx.acc.norms.iter().filter(|v| !v.constant) {
        for ov in &v.origins {
            let Prediction::Exact { fraction } = ov.prediction else {
                continue;
            };
            // A per-channel constant that the norm's units remove in part (a unit of one
            // channel removes all of it: TD101, or TD109 when the border keeps some).
            let Some(cp) = ov.constant_part.filter(|&cp| cp > 0.0) else {
                continue;
            };
            let Some(o) = cx.acc.origins.get(ov.origin) else {
                continue;
            };
            if fraction >= ATTENUATION_THRESHOLD || o.kind == OriginKind::ScaleShift {
                continue;
            }
            let frac = fmt_frac(fraction);
            let detail = per_unit(v);
            let mut f = Finding::new(
                RULE.code,
                format!("timestep embedding attenuated by a normalization: {frac} of its energy survives ({detail})"),
                o.span,
                origin_label(o.kind).to_string(),
            );
            f.secondary.push((
                v.span,
                format!("{} on {} channels: {}", norm_name(v), v.channels, detail),
            ));
            if let Some(bp) = ov.border_part.filter(|&b| b > 5e-4) {
                f.notes.push(format!(
                    "a per-channel constant keeps {}; the zero-padding border adds {}",
                    fmt_frac(cp),
                    fmt_frac(bp)
                ));
            }
            f.help = origin_help(o.kind);
            if v.kind == NormKind::PerPosition {
                // Each position's mean over its channels takes 1/C of any change, positional
                // or not: only the width or the place of the modulation helps.
                f.help = Some(format!(
                    "a layer norm over each position's {} channels keeps 1 - 1/{} of any time change: widen it, or modulate after it with `scale_shift`",
                    v.channels, v.channels
                ));
            }
            f.fraction = Some(fraction);
            at_norm(cx, &mut f, ov.origin, v);
            f.plan = match v.kind {
                NormKind::Group { .. } if !v.in_attention => FixPlan::FewerGroups {
                    norm_span: v.span,
                    origin: Some((o.span, o.kind)),
                },
                NormKind::PerPosition => FixPlan::None,
                _ => positional_plan(cx, ov.origin),
            };
            out.push(f);
        }
    }
    out
}
