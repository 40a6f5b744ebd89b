//! TD102: a timestep embedding attenuated by a normalization. In: the norm verdicts; out: one
//! finding per (injection, norm) instance that keeps less than [`ATTENUATION_THRESHOLD`] of
//! the offset's energy, with the surviving fraction and the channels per group.

use crate::analysis::ComponentKind;
use crate::diagnostics::Severity;
use crate::ir::NormKind;
use crate::lint::rule::{
    allows, fmt_frac, origin_help, origin_label, per_unit, Context, Finding, FixPlan, Rule,
    ATTENUATION_THRESHOLD,
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
reports the expected fraction of the offset's energy that survives. GroupNorm with m channels
per group keeps (m - 1)/m (DDPM's GroupNorm(32) on 128 channels: 0.75; on 256: 0.875; ODE-Net's
GroupNorm(32) on 64 channels: 0.5); LayerNorm keeps (C - 1)/C. Fractions below 0.9 are reported.

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
when no group count does, makes the injection positional. It is unsafe: it changes the model.
The message shows the predicted surviving fraction after the fix, computed by re-analyzing the
rewritten spec.

## References
- B. J. Kim, Y. Kawahara, S. W. Kim, "The Disappearance of Timestep Embedding in Modern
  Time-Dependent Neural Networks", arXiv:2405.14126, 2024.
- J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
"#;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for v in &cx.analysis.norms {
        for c in &v.components {
            let ComponentKind::Offset { axes } = c.kind else {
                continue;
            };
            if axes.spatial() || c.complete || c.fraction_in <= 0.0 || c.factor >= 1.0 {
                continue;
            }
            if c.fraction_out >= ATTENUATION_THRESHOLD {
                continue;
            }
            let Some(o) = cx.analysis.origins.get(c.origin_index) else {
                continue;
            };
            let frac = fmt_frac(c.fraction_out);
            let detail = match v.kind {
                NormKind::Batch => "only the batch mean is removed".to_string(),
                _ => per_unit(v),
            };
            let mut f = Finding::new(
                RULE.code,
                format!("timestep embedding attenuated by a normalization: {frac} of its energy survives ({detail})"),
                o.span,
                origin_label(o.kind).to_string(),
            );
            f.secondary.push((
                v.span,
                format!("{} on {} channels: {}", v.kind, v.channels, detail),
            ));
            f.help = origin_help(o.kind);
            f.fraction = Some(c.fraction_out);
            f.instance = Some(v.node.clone());
            f.allow = allows(cx, c, v);
            f.plan = match v.kind {
                NormKind::Group { .. } => FixPlan::FewerGroups {
                    norm_span: v.span,
                    origin: Some((o.span, o.kind)),
                },
                _ => crate::lint::rule::positional_plan(cx, c),
            };
            f.pairs.push((o.path.clone(), v.node.clone()));
            out.push(f);
        }
    }
    out
}
