//! TD107: the time input is declared but never read. In: the analysis' origins; out: one
//! finding at the time declaration when nothing in the feature path reads t.

use crate::diagnostics::Severity;
use crate::lint::rule::{Context, Finding, Rule};

pub const RULE: Rule = Rule {
    code: "TD107",
    name: "time-never-read",
    summary: "the time input is declared but never read",
    severity: Severity::Warning,
    fixable: false,
    doc: DOC,
    check,
};

pub const DOC: &str = r#"## What it does
Fires when a model declares `time t: ...` but no layer on the feature path reads it: no
injection, no ConcatConv, no scale-shift (an unused `embed` does not count).

## Why is this bad
A time-dependent model that never reads t is usually an unfinished spec or a forgotten
injection. As a deliberate control ("no time input") it is legitimate: suppress it with
`#[allow(TD107)]` on the time declaration.

## Example
```tds
model no_time {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    return x | conv(16, k = 3) | group(4) | relu | conv1(4)
}
```

## Use instead
```tds
model with_time {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    return x | conv(16, k = 3, time = concat(positional)) | group(4) | relu | conv1(4)
}
```

## Fix safety
No fix: where to read t is a modeling decision.

## References
- R. T. Q. Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018 (the torchdiffeq
  author notes that ignoring t often works as well for classification).
"#;

pub fn check(cx: &Context) -> Vec<Finding> {
    if !cx.acc.origins.is_empty() || cx.acc.output_time_only(cx.model) {
        return Vec::new();
    }
    let t = &cx.model.time;
    let mut f = Finding::new(
        RULE.code,
        format!("the time input `{}` is never read", t.name),
        t.span,
        "declared here, read by no layer".to_string(),
    );
    f.help = Some("read it, e.g. `conv3(64, time = concat(positional))`, or allow TD107 for a no-time control".to_string());
    vec![f]
}
