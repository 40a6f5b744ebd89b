//! TD101: a timestep embedding canceled completely by a normalization. In: the accounting's
//! norm verdicts; out: one finding per (origin, norm) instance whose change is exactly zero.

use crate::accounting::OriginKind;
use crate::diagnostics::Severity;
use crate::ir::NormKind;
use crate::lint::rule::{
    at_norm, is_offset, norm_name, origin_help, origin_label, per_unit, positional_plan, Context,
    Finding, Rule,
};

pub const RULE: Rule = Rule {
    code: "TD101",
    name: "embedding-canceled",
    summary: "timestep embedding canceled completely by a normalization",
    severity: Severity::Warning,
    fixable: true,
    doc: DOC,
    check,
};

pub const DOC: &str = r#"## What it does
Finds a time change that a normalization removes exactly: its change of the norm's output is
zero for every draw of the weights at initialization. Typically a per-channel offset (an
injected `[B, C, 1, 1]` embedding, a ConcatConv's constant `t·J` channel) reaching, with nothing
zero-padded in between, a normalization whose reduction unit holds a single channel:
InstanceNorm, GroupNorm with one channel per group, or BatchNorm in training mode when the whole
batch shares t (a neural ODE solver evaluates the batch at one t). Also attention's inner norm,
and a positional map that a global pool averaged to a per-channel constant. The finding's
fraction is 0; `tdspec probe` measures it below 1e-6.

## Why is this bad
A normalization computes `(z - mean_U) / std_U` over each reduction unit U. An offset that is
constant on U shifts the mean by exactly the offset and leaves the variance unchanged, so the
normalized value is exactly what it would be without the offset: the layer cannot see t. This
is the "disappearance of the timestep embedding". (When a zero-padded conv stands between, the
offset is no longer constant near the border and a share survives: TD109 reports that.)

## Example
```tds
model canceled {
    input x: image[4, 8, 8]
    time  t: step(100), per_sample
    embed temb = sinusoidal(16) | linear(32)
    h = x | conv(16, k = 1, pad = 0)
    h = h + inject(temb)
    return h | instance | relu | conv1(4)
}
```

## Use instead
```tds
model alive {
    input x: image[4, 8, 8]
    time  t: step(100), per_sample
    embed temb = sinusoidal(16) | linear(32)
    h = x | conv(16, k = 1, pad = 0)
    h = h + inject(temb, positional)
    return h | instance | relu | conv1(4)
}
```
A positional time signal varies over H and W, so no mean over a unit removes it. A nonlinearity
between the injection and the norm, or a scale-shift after the norm, also keeps t alive.

## Fix safety
The fix rewrites the injection as positional (`inject(e, positional)`,
`time = concat(positional)`). It is unsafe: it changes the model (and its trained weights no
longer apply). The message shows the predicted surviving fraction after the fix.

## References
- B. J. Kim, Y. Kawahara, S. W. Kim, "The Disappearance of Timestep Embedding in Modern
  Time-Dependent Neural Networks", arXiv:2405.14126, 2024.
- Y. Wu, K. He, "Group Normalization", ECCV 2018.
"#;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for v in cx.acc.norms.iter().filter(|v| !v.constant) {
        for ov in &v.origins {
            let Some(o) = cx.acc.origins.get(ov.origin) else {
                continue;
            };
            if !ov.prediction.is_zero() || o.kind == OriginKind::ScaleShift {
                continue;
            }
            let mut f = Finding::new(
                RULE.code,
                "timestep embedding canceled completely by a normalization".to_string(),
                o.span,
                origin_label(o.kind).to_string(),
            );
            let why = match v.kind {
                NormKind::Batch => {
                    "batch removes each channel's mean over a batch that shares t".to_string()
                }
                NormKind::Instance => {
                    "instance removes each channel's mean: the change is gone".to_string()
                }
                _ => format!(
                    "{} on {} channels, {}: the change is gone",
                    norm_name(v),
                    v.channels,
                    per_unit(v)
                ),
            };
            f.secondary.push((v.span, why));
            if !is_offset(o.kind) {
                f.notes
                    .push(format!("what arrives here: {}", ov.arrives_as));
            }
            f.help = origin_help(o.kind);
            f.fraction = Some(0.0);
            at_norm(cx, &mut f, ov.origin, v);
            f.plan = positional_plan(cx, ov.origin);
            out.push(f);
        }
    }
    out
}
