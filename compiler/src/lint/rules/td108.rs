//! TD108: a sinusoidal time embedding that barely varies over the range of t the spec declares.
//! In: the model's embeddings and their variation over t's range
//! ([`crate::accounting::embedding`]); out: one finding per embedding whose varying share of
//! energy is below [`VARYING_THRESHOLD`].

use crate::accounting::embedding::{embedding_variation, TimeRange};
use crate::diagnostics::Severity;
use crate::lint::rule::{Context, Finding, FixPlan, Rule};

pub const RULE: Rule = Rule {
    code: "TD108",
    name: "embedding-never-varies",
    summary: "the time embedding barely varies over the declared range of t",
    severity: Severity::Warning,
    fixable: true,
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
    time  t: continuous, shared
    embed e = sinusoidal(16, scale = 1000) | linear(16)
    h = x | conv(16, k = 3) | relu
    h = h + inject(e, positional)
    return h | conv1(4)
}
```
Feed the embedding t on a scale that matches its frequencies: `scale = 1000` for a unit range
(the embedding then sees `1000 · t`, as DDPM's integer steps), or integer steps (`step(1000)`).

## Fix safety
For continuous time the fix sets `scale` on the embedding so the declared range spans 1,000
units (`sinusoidal(d, scale = 1000)` for t in [0, 1]); the message gives the share that then
varies, from re-linting the rewritten spec. It is unsafe: it changes the model's function (and
trained weights no longer match it). For step time there is no fix: declare more steps or fewer,
faster frequencies.

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
            "`sinusoidal({})` has frequencies from 1 down to {} per unit of t",
            e.dim,
            reciprocal(e.lowest)
        ));
        f.instance = Some(e.node.clone());
        f.allow = e.allow.clone();
        if let Some((s, _)) = e.scale {
            f.plan = FixPlan::ScaleTime {
                span: e.span,
                scale: s,
            };
        }
        out.push(f);
    }
    out
}

/// `1/10,000` for a frequency that is the reciprocal of a whole number, else `2.37e-4`.
fn reciprocal(f: f64) -> String {
    let n = 1.0 / f;
    if n.is_finite() && n.round() >= 1.0 && (n - n.round()).abs() <= 1e-9 * n {
        let digits = format!("{}", n.round() as u64);
        let mut grouped = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        format!("1/{grouped}")
    } else {
        format!("{f:.2e}")
    }
}
