//! TD105: a ConcatConv's constant time channel acts only as a per-channel offset. In: the norm
//! verdicts; out: one finding per ConcatConv whose offset a normalization removes in part or
//! completely (the origin of the TD101/TD102 findings there).

use crate::accounting::{OriginKind, Prediction};
use crate::diagnostics::Severity;
use crate::ir::{NormKind, Op};
use crate::lint::rule::{node_of, Context, Finding, FixPlan, Rule};

pub const RULE: Rule = Rule {
    code: "TD105",
    name: "concat-time-is-offset",
    summary: "a ConcatConv's constant time channel acts only as a per-channel offset",
    severity: Severity::Info,
    fixable: true,
    doc: DOC,
    check,
};

pub const DOC: &str = r#"## What it does
Explains where a TD101/TD102 finding at a ConcatConv (`conv(..., time = concat)`, torchdiffeq's
`ConcatConv2d`) comes from. It fires at each ConcatConv whose time signal a later normalization
reduces.

## Why is this bad
The conv sees `[t·J, h]`, with J an all-ones channel. For output channel k the kernel slice on
the time channel sums to v_k, so the conv adds `t·v_k`: the same number at every interior pixel,
a per-channel offset, which normalizations subtract (completely for one channel per unit). Under
zero padding the border pixels get partial sums, so some t survives there (TD109 and TD102
give the share).

## Example
```tds
model concat_offset {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    h = x | conv(16, k = 3, pad = 0, time = concat) | group(8) | relu
    return h | conv1(4)
}
```

## Use instead
```tds
model concat_positional {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    h = x | conv(16, k = 3, pad = 0, time = concat(positional)) | group(8) | relu
    return h | conv1(4)
}
```

## Fix safety
The fix switches to a positional time channel (`time = concat(positional)`, a fixed zero-mean
spatial pattern times t). It is unsafe: it changes the model.

## References
- R. T. Q. Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018 (torchdiffeq
  `examples/odenet_mnist.py`).
- B. J. Kim, Y. Kawahara, S. W. Kim, "The Disappearance of Timestep Embedding in Modern
  Time-Dependent Neural Networks", arXiv:2405.14126, 2024.
"#;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut done: Vec<usize> = Vec::new();
    for v in cx.acc.norms.iter().filter(|v| !v.constant) {
        for ov in &v.origins {
            let removes = match ov.prediction {
                Prediction::Zero => true,
                Prediction::Exact { fraction } => ov.constant_part.is_some() && fraction < 1.0,
                _ => false,
            };
            let Some(o) = cx.acc.origins.get(ov.origin) else {
                continue;
            };
            // A per-position layer norm treats a positional channel no differently (TD102).
            if !removes
                || o.kind != OriginKind::ConcatConstant
                || v.kind == NormKind::PerPosition
                || done.contains(&ov.origin)
            {
                continue;
            }
            done.push(ov.origin);
            let mut f = Finding::new(
                RULE.code,
                "a ConcatConv's constant time channel acts only as a per-channel offset"
                    .to_string(),
                o.span,
                "conv over [t·J, h] adds t·v_k at every interior pixel".to_string(),
            );
            f.secondary
                .push((v.span, format!("`{}` subtracts per-channel means", v.kind)));
            let padded = node_of(cx, &o.graph, o.node)
                .is_some_and(|n| matches!(n.op, Op::Conv { pad, .. } if pad > 0));
            if padded {
                f.notes.push(
                    "zero padding lets t into the border ring only (TD109 gives the share)"
                        .to_string(),
                );
            }
            f.help = Some(
                "concatenate a positional time channel: `time = concat(positional)`".to_string(),
            );
            f.instance = Some(o.path.clone());
            f.allow = o.allow.clone();
            f.plan = FixPlan::Positional {
                span: o.span,
                kind: o.kind,
            };
            f.pairs.push((o.path.clone(), v.node.clone()));
            out.push(f);
        }
    }
    out
}
