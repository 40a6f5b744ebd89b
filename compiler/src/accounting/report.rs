//! The accounting in words: a [`Prediction`] as people read it, and one norm's verdict as
//! lines, origins treated alike sharing a line (a residual stream carries every earlier
//! block's origin). `tdspec lint --survival` and the editor's hover print these.

use super::state::Prediction;
use super::{Accounting, NormAccount};
use std::fmt;

/// Formats a fraction with up to three decimals: 0.5, 0.75, 0.875, 0.938.
pub fn fmt_fraction(f: f64) -> String {
    let s = format!("{f:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

impl fmt::Display for Prediction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Prediction::Zero => write!(f, "0 (exact)"),
            Prediction::Exact { fraction } => write!(f, "{}", fmt_fraction(fraction)),
            Prediction::Between { low, high } => write!(
                f,
                "between {} and {}",
                fmt_fraction(low),
                fmt_fraction(high)
            ),
            Prediction::Nonzero => write!(f, "alive (no number)"),
            Prediction::Unknown => write!(f, "unknown (zero or not)"),
        }
    }
}

/// One line of a norm's verdict: the origins it covers, what survives, and of what.
#[derive(Debug, Clone, PartialEq)]
pub struct SurvivalLine {
    pub origins: Vec<String>,
    pub prediction: Prediction,
    pub arrives_as: String,
    /// For a per-channel offset: (what a per-channel constant keeps, the border's share).
    pub parts: Option<(f64, f64)>,
}

impl SurvivalLine {
    /// "`a`" or "3 origins (`a`, …)".
    pub fn from_words(&self) -> String {
        match self.origins.as_slice() {
            [one] => format!("`{one}`"),
            [first, ..] => format!("{} origins (`{first}`, …)", self.origins.len()),
            [] => String::new(),
        }
    }
    /// "0.584 = 0.5 per-channel + 0.084 border" for an offset with a border share.
    pub fn parts_words(&self) -> Option<String> {
        let (c, b) = self.parts?;
        (b > 5e-4).then(|| {
            format!(
                "{} per-channel constant + {} zero-padding border",
                fmt_fraction(c),
                fmt_fraction(b)
            )
        })
    }
}

/// A norm's verdict as lines, origins with the same prediction and make-up together.
pub fn survival_lines(acc: &Accounting, n: &NormAccount) -> Vec<SurvivalLine> {
    let mut out: Vec<SurvivalLine> = Vec::new();
    for v in &n.origins {
        let name = acc
            .origins
            .get(v.origin)
            .map_or_else(|| format!("origin {}", v.origin), |o| o.path.clone());
        let parts = v.constant_part.zip(v.border_part);
        let same = |l: &&mut SurvivalLine| {
            l.prediction == v.prediction && l.arrives_as == v.arrives_as && l.parts == parts
        };
        match out.iter_mut().find(same) {
            Some(l) => l.origins.push(name),
            None => out.push(SurvivalLine {
                origins: vec![name],
                prediction: v.prediction,
                arrives_as: v.arrives_as.to_string(),
                parts,
            }),
        }
    }
    out
}

/// One origin at one norm, for machines (`tdspec lint --survival --format json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct OriginReport {
    /// The origin's node path.
    pub site: String,
    pub origin_kind: super::OriginKind,
    /// The surviving fraction as a number; null where the accounting states none.
    pub predicted: Option<f64>,
    pub prediction: Prediction,
    pub arrives_as: String,
    /// For a per-channel offset: what a per-channel constant keeps, and the extra share the
    /// zero-padding border keeps (the two add up to `predicted`).
    pub constant_part: Option<f64>,
    pub border_part: Option<f64>,
}

/// One normalization's accounting, for machines.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NormReport {
    /// "" for the model, the ODE node's path for an ODE function.
    pub graph: String,
    pub node: String,
    pub kind: String,
    pub channels: usize,
    pub channels_per_unit: usize,
    pub in_attention: bool,
    /// Every unit holds one value: the output is β whatever arrives.
    pub constant: bool,
    /// All origins changed together: the number, and what is known.
    pub predicted: Option<f64>,
    pub total: Option<Prediction>,
    pub origins: Vec<OriginReport>,
}

/// Every normalization the time signal reaches, per origin.
pub fn survival_report(acc: &Accounting) -> Vec<NormReport> {
    acc.norms
        .iter()
        .filter(|n| n.total.is_some())
        .map(|n| NormReport {
            graph: n.graph.clone(),
            node: n.node.clone(),
            kind: n.kind.to_string(),
            channels: n.channels,
            channels_per_unit: n.channels_per_unit,
            in_attention: n.in_attention,
            constant: n.constant,
            predicted: n.total.and_then(|p| p.fraction()),
            total: n.total,
            origins: n
                .origins
                .iter()
                .filter_map(|v| {
                    let o = acc.origins.get(v.origin)?;
                    Some(OriginReport {
                        site: o.path.clone(),
                        origin_kind: o.kind,
                        predicted: v.prediction.fraction(),
                        prediction: v.prediction,
                        arrives_as: v.arrives_as.to_string(),
                        constant_part: v.constant_part,
                        border_part: v.border_part,
                    })
                })
                .collect(),
        })
        .collect()
}

/// The `--survival` table of one model: per norm the total, then each line of origins.
pub fn survival_text(acc: &Accounting) -> String {
    let mut out = String::new();
    for n in acc.norms.iter().filter(|n| n.total.is_some()) {
        let total = match n.total {
            _ if n.constant => "nothing varies: every unit holds a single value".to_string(),
            Some(p) => p.to_string(),
            None => continue,
        };
        let name = if n.in_attention {
            format!("{} (attention's inner {})", n.node, n.kind)
        } else {
            format!("{} ({} on {} channels)", n.node, n.kind, n.channels)
        };
        out.push_str(&format!("  {name}: all origins {total}\n"));
        if n.constant {
            continue;
        }
        for l in survival_lines(acc, n) {
            out.push_str(&format!(
                "    from {}: {} ({})",
                l.from_words(),
                l.prediction,
                l.arrives_as
            ));
            if let Some(p) = l.parts_words() {
                out.push_str(&format!("; {p}"));
            }
            out.push('\n');
        }
    }
    out
}
