//! TD101: a timestep embedding canceled completely by a normalization. In: the norm verdicts of
//! the analysis; out: one finding per (injection, norm) instance whose offset the norm removes.

use crate::analysis::ComponentKind;
use crate::diagnostics::Severity;
use crate::lint::rule::{
    allows, origin_help, origin_label, positional_plan, Context, Finding, Rule,
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
Finds a time signal that enters the network as a per-channel offset (an injected `[B, C, 1, 1]`
embedding, a ConcatConv's constant `t·J` channel) and reaches a normalization whose reduction
unit holds a single channel: InstanceNorm, GroupNorm with one channel per group, or BatchNorm in
training mode when the whole batch shares t (a neural ODE solver evaluates the batch at one t).

## Why is this bad
A normalization computes `(z - mean_U) / std_U` over each reduction unit U. An offset that is
constant on U shifts the mean by exactly the offset and leaves the variance unchanged, so the
normalized value is exactly what it would be without the offset: the layer cannot see t. Only
the one-pixel border ring of a zero-padded ConcatConv leaks a little time signal. This is the
"disappearance of the timestep embedding".

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
    for v in &cx.analysis.norms {
        for c in &v.components {
            if !matches!(c.kind, ComponentKind::Offset { .. })
                || !c.complete
                || c.fraction_in <= 0.0
            {
                continue;
            }
            let Some(o) = cx.analysis.origins.get(c.origin_index) else {
                continue;
            };
            let mut f = Finding::new(
                RULE.code,
                "timestep embedding canceled completely by a normalization".to_string(),
                o.span,
                origin_label(o.kind).to_string(),
            );
            let why = match v.kind {
                crate::ir::NormKind::Batch => {
                    "batch removes each channel's mean over a batch that shares t".to_string()
                }
                crate::ir::NormKind::Instance => {
                    "instance removes each channel's mean: the offset is gone".to_string()
                }
                _ => format!(
                    "{} on {} channels, 1 channel per group: the offset is gone",
                    v.kind, v.channels
                ),
            };
            f.secondary.push((v.span, why));
            if c.border_leak {
                f.notes.push(
                    "only the one-pixel border ring of the zero-padded conv still sees t (a border leak)".to_string(),
                );
            }
            f.help = origin_help(o.kind);
            f.fraction = Some(0.0);
            f.instance = Some(v.node.clone());
            f.allow = allows(cx, c, v);
            f.plan = positional_plan(cx, c);
            f.pairs.push((o.path.clone(), v.node.clone()));
            out.push(f);
        }
    }
    out
}
