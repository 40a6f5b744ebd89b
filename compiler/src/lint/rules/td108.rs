//! TD108: a sinusoidal time embedding that barely varies over the range of t the spec declares.
//! In: the model's embeddings and their variation over t's range
//! ([`crate::accounting::embedding`]); out: one finding per embedding whose varying share of
//! energy is below [`VARYING_THRESHOLD`].

use crate::accounting::embedding::{embedding_variation, TimeRange};
use crate::diagnostics::Severity;
use crate::lint::rule::{Context, Finding, Rule};

pub const RULE: Rule = Rule {
    code: "TD108",
    name: "embedding-never-varies",
    summary: "the time embedding barely varies over the declared range of t",
    severity: Severity::Warning,
    fixable: false,
    doc: DOC,
    check,
};

/// Reported below this share of the embedding's energy changing with t.
pub const VARYING_THRESHOLD: f64 = 0.1;

pub const DOC: &str = r#"## What it does
Computes how much a `sinusoidal(d)` time embedding changes over the range of t the spec declares
(integer steps `0..n` for `step(n)`; an ODE block's interval inside its function; [0, 1] for
continuous model time) and reports an embedding of which less than 10 % of the energy varies
with t. The number is `E‖e(t) - E e‖² / E‖e‖²` for t uniform over the range, exactly: each
sin/cos pair at frequency ω keeps `sinc²(ωL/2)` of its energy constant over a range of length L.

## Why is this bad
`sinusoidal(d)` uses frequencies from 1 down to 1/10,000 (DDPM's max period). Fed a continuous t
in [0, 1], all but the fastest pairs turn by a fraction of a radian: the embedding is nearly the
same vector for every t, so the network is nearly time-blind before any normalization sees it
(reported for DiT-style code trained with t in [0, 1]).

## Example
```tds
model flat_embedding {
    input x: image[4, 8, 8]
    time  t: continuous, shared
    embed e = sinusoidal(16) | linear(16)
    h = x | conv(16, k = 3) | relu
    h = h + inject(e, positional)
    return h | conv1(4)
}
```

## Use instead
```tds
model varying_embedding {
    input x: image[4, 8, 8]
    time  t: step(1000), per_sample
    embed e = sinusoidal(16) | linear(16)
    h = x | conv(16, k = 3) | relu
    h = h + inject(e, positional)
    return h | conv1(4)
}
```
Feed the embedding t on a scale that matches its frequencies: integer steps (as DDPM does), or
t multiplied by about 1,000 for a unit range; the message gives the share that varies then.

## Fix safety
No fix yet: the language has no scale or max-period option on `sinusoidal`; rescale t where the
model is trained and sampled, or declare step time.

## References
- J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (the
  sinusoidal embedding of integer steps).
- W. Peebles, S. Xie, "Scalable Diffusion Models with Transformers", ICCV 2023 (t in the
  embedding's range).
"#;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for e in embedding_variation(cx.model) {
        if e.varying >= VARYING_THRESHOLD {
            continue;
        }
        let range = match e.range {
            TimeRange::Continuous { low, high } => format!("t in [{low}, {high}]"),
            TimeRange::Steps { n } => format!("t in 0..{n}"),
        };
        let pct = |f: f64| format!("{:.1} %", 100.0 * f);
        let mut f = Finding::new(
            RULE.code,
            format!(
                "time embedding barely varies over {range}: {} of its energy changes with t",
                pct(e.varying)
            ),
            e.span,
            format!(
                "{} of {} frequencies turn by less than 0.1 rad over the range",
                e.slow, e.pairs
            ),
        );
        f.help = Some(match e.scale {
            Some((s, after)) => format!(
                "feed it t scaled by {s} (the range mapped onto 1,000 units): then {} varies",
                pct(after)
            ),
            None => "declare a longer range of t or fewer, faster frequencies".to_string(),
        });
        f.fraction = Some(e.varying);
        f.notes.push(format!(
            "`sinusoidal({})` with max period 10,000 has frequencies from 1 down to 1/10,000 per unit of t",
            e.dim
        ));
        f.instance = Some(e.node.clone());
        f.allow = e.allow.clone();
        out.push(f);
    }
    out
}
