//! TD103: the model's output does not depend on t. In: the accounting's output state; out:
//! one finding at the time declaration when t is read somewhere but its change is exactly zero
//! at the output (at initialization, for every draw of the weights).

use crate::diagnostics::Severity;
use crate::lint::rule::{Context, Finding, Rule};

pub const RULE: Rule = Rule {
    code: "TD103",
    name: "output-ignores-time",
    summary: "the model's output does not depend on t",
    severity: Severity::Error,
    fixable: false,
    doc: DOC,
    check,
};

pub const DOC: &str = r#"## What it does
Checks that the model's output depends on the time input. It fires when t is read (injected,
concatenated, used for scale-shift) but every path from t to the output is canceled by a
normalization: the change of the output when t changes is exactly zero at initialization, for
every draw of the weights. A time signal that survives only through the zero-padding border is
not a cancellation (TD109 reports it with its share). For a neural ODE it looks at the ODE
function: when f(t, h) does not depend on t, the solver integrates an autonomous vector field.

## Why is this bad
The network is trained as a time-dependent model but computes a time-independent function. A
diffusion denoiser that cannot see the noise level behaves like one with no time input at all
(in small runs about 7% worse overall and twice as bad at the noisiest steps); a neural ODE
becomes autonomous.

## Example
```tds
model blind {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    h = x | conv(16, k = 3, pad = 0, time = concat) | batch | relu
    return h | conv1(4)
}
```

## Use instead
```tds
model sees_time {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    h = x | conv(16, k = 3, pad = 0, time = concat(positional)) | batch | relu
    return h | conv1(4)
}
```

## Fix safety
No fix of its own: apply the fixes of the TD101 findings that explain it.

## References
- B. J. Kim, Y. Kawahara, S. W. Kim, "The Disappearance of Timestep Embedding in Modern
  Time-Dependent Neural Networks", arXiv:2405.14126, 2024.
- R. T. Q. Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018.
"#;

pub fn check(cx: &Context) -> Vec<Finding> {
    let a = cx.acc;
    if a.origins.is_empty() || a.output_sees_t() || a.output_time_only(cx.model) {
        return Vec::new();
    }
    let t = &cx.model.time;
    let mut f = Finding::new(
        RULE.code,
        format!("the model's output does not depend on `{}`", t.name),
        t.span,
        "declared here, lost before the output".to_string(),
    );
    let mut seen = Vec::new();
    for v in &a.norms {
        let cancels = !v.origins.is_empty() && v.origins.iter().all(|o| o.prediction.is_zero());
        if !cancels || seen.contains(&v.span) {
            continue;
        }
        seen.push(v.span);
        if f.secondary.len() < 3 {
            f.secondary
                .push((v.span, format!("`{}` cancels the time signal", v.kind)));
        }
    }
    if a.graphs.len() > 1 {
        f.notes.push(
            "the ODE function does not depend on t: the solver integrates an autonomous field"
                .to_string(),
        );
    }
    f.help = Some(
        "keep the time signal alive at each injection site (see the TD101 findings)".to_string(),
    );
    vec![f]
}
