//! TD104: an operand-branch bias canceled by the following normalization. In: the analysis'
//! bias cancellations (every path from the bias ends in a norm whose unit holds one channel);
//! out: one finding per layer.

use crate::diagnostics::Severity;
use crate::ir::Op;
use crate::lint::rule::{node_of, Context, Finding, FixPlan, Rule};

pub const RULE: Rule = Rule {
    code: "TD104",
    name: "bias-canceled",
    summary: "operand-branch bias canceled by the following normalization",
    severity: Severity::Warning,
    fixable: true,
    doc: DOC,
    check,
};

pub const DOC: &str = r#"## What it does
Finds a convolution or linear layer on the feature (operand) branch whose bias reaches, on every
path, a normalization that removes per-channel constants completely: BatchNorm, InstanceNorm, or
GroupNorm with one channel per group.

## Why is this bad
A bias is a per-channel constant; such a norm subtracts it again, so the bias changes nothing
and its gradient is exactly zero: its parameters never train. It also hides the bias policy the
paper recommends (zero operand bias, nonzero time bias) behind parameters that do nothing.

## Example
```tds
model dead_bias {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    h = x | conv(16, k = 3, pad = 0) | batch | relu
    return h | conv1(4, time = concat(positional))
}
```

## Use instead
```tds
model no_dead_bias {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    h = x | conv(16, k = 3, pad = 0, bias = false) | batch | relu
    return h | conv1(4, time = concat(positional))
}
```

## Fix safety
The fix adds `bias = false` to the layer. It removes parameters (the parameter count and
checkpoints change), so it is unsafe, although the function the network computes is the same.

## References
- S. Ioffe, C. Szegedy, "Batch Normalization", ICML 2015 (the bias is subsumed by beta).
- B. J. Kim, Y. Kawahara, S. W. Kim, "The Disappearance of Timestep Embedding in Modern
  Time-Dependent Neural Networks", arXiv:2405.14126, 2024 (the bias policy remedy).
"#;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for b in cx.biases {
        let layer = match node_of(cx, &b.graph, b.node).map(|n| &n.op) {
            Some(Op::Linear { .. }) => "linear layer",
            _ => "conv",
        };
        let mut f = Finding::new(
            RULE.code,
            format!("the bias of this {layer} is canceled by the following normalization"),
            b.span,
            "adds a per-channel bias".to_string(),
        );
        if let Some((_, span)) = b.norms.first() {
            f.secondary
                .push((*span, "removes each channel's constant".to_string()));
        }
        f.notes
            .push("its gradient is zero: the bias never trains".to_string());
        f.help = Some("drop the bias: `bias = false`".to_string());
        f.instance = Some(b.path.clone());
        f.allow = b.allow.clone();
        f.plan = FixPlan::NoBias { span: b.span };
        out.push(f);
    }
    out
}
