//! What every lint rule is made of and shares: the [`Rule`] record (metadata, documentation
//! and check), the [`Context`] a check reads, the raw [`Finding`] it returns with its
//! [`FixPlan`], and the wording and lookups several rules use. The rules themselves are in
//! [`super::rules`], one file each; they import this module and never each other.

use crate::accounting::{Accounting, NormAccount, OriginKind};
use crate::ast::Span;
use crate::bias::BiasCancel;
use crate::diagnostics::Severity;
use crate::ir::{ModelIr, Node, NodeId, NormKind};
use serde::Serialize;

/// A lint rule: its stable identity, its documentation and its check, declared together in
/// the rule's file. Codes are never reused.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub summary: &'static str,
    pub severity: Severity,
    /// Whether findings can carry a (always unsafe) fix.
    pub fixable: bool,
    /// Markdown under the headings What it does / Why is this bad / Example / Use instead /
    /// Fix safety / References.
    pub doc: &'static str,
    /// Reads one model's IR and accounting; returns the raw per-instance findings.
    #[serde(skip)]
    pub check: fn(&Context) -> Vec<Finding>,
}

/// TD102 and TD106 report a normalization that keeps less than this fraction of the arriving
/// time signal's energy. GroupNorm keeps (m - 1)/m: m = 8 channels per group (0.875) is
/// reported, m = 16 (0.94) is not.
pub const ATTENUATION_THRESHOLD: f64 = 0.9;

/// What a lint rule sees of one model: its IR, its time-signal accounting and its canceled
/// biases (not the spec's text: rules decide from ops).
pub struct Context<'a> {
    pub model: &'a ModelIr,
    pub acc: &'a Accounting,
    pub biases: &'a [BiasCancel],
}

/// How a finding could be fixed; the engine turns plans into text edits.
#[derive(Debug, Clone, PartialEq)]
pub enum FixPlan {
    None,
    /// Make the injection at this span positional (`inject(e, positional)`,
    /// `time = concat(positional)`).
    Positional {
        span: Span,
        kind: OriginKind,
    },
    /// Use fewer groups in the GroupNorm at this node span (the call or the model's default);
    /// when no group count is enough, make the injection at `origin` positional.
    FewerGroups {
        norm_span: Span,
        origin: Option<(Span, OriginKind)>,
    },
    /// `bias = false` on the layer at this span.
    NoBias {
        span: Span,
    },
    /// Move the `scale_shift` at `span` after the norm at `norm_span` (adjacent stages).
    AfterNorm {
        span: Span,
        norm_span: Span,
    },
    /// Set `scale = s` on the `sinusoidal(...)` call at `span`.
    ScaleTime {
        span: Span,
        scale: f64,
    },
}

/// One instance of a finding, before grouping.
#[derive(Debug, Clone)]
pub struct Finding {
    pub code: &'static str,
    pub message: String,
    pub primary: (Span, String),
    pub secondary: Vec<(Span, String)>,
    pub help: Option<String>,
    pub notes: Vec<String>,
    /// The surviving fraction that distinguishes findings at the same span.
    pub fraction: Option<f64>,
    /// Instance description (the norm's or layer's path) for the "N instances" note.
    pub instance: Option<String>,
    /// Lint codes allowed on the nodes of this instance.
    pub allow: Vec<String>,
    pub plan: FixPlan,
    /// (origin path, norm path) pairs whose survival the fix prediction reports.
    pub pairs: Vec<(String, String)>,
}

impl Finding {
    pub fn new(code: &'static str, message: String, primary: Span, label: String) -> Self {
        Finding {
            code,
            message,
            primary: (primary, label),
            secondary: Vec::new(),
            help: None,
            notes: Vec::new(),
            fraction: None,
            instance: None,
            allow: Vec::new(),
            plan: FixPlan::None,
            pairs: Vec::new(),
        }
    }
}

pub use crate::accounting::report::fmt_fraction as fmt_frac;

/// "4 channels per group" / "1 channel per group" / "64 channels per unit".
pub fn per_unit(v: &NormAccount) -> String {
    let m = v.channels_per_unit;
    let unit = match v.kind {
        NormKind::Group { .. } => "group",
        NormKind::PerPosition => "position",
        _ => "unit",
    };
    format!("{m} channel{} per {unit}", if m == 1 { "" } else { "s" })
}

/// Whether an origin adds a change constant over H and W (a per-channel offset).
pub fn is_offset(kind: OriginKind) -> bool {
    matches!(
        kind,
        OriginKind::InjectOffset | OriginKind::ConcatConstant | OriginKind::Add
    )
}

/// The primary label of an injection site, by how t enters there.
pub fn origin_label(kind: OriginKind) -> &'static str {
    match kind {
        OriginKind::InjectOffset => "adds the embedding as a per-channel offset [B, C, 1, 1]",
        OriginKind::ConcatConstant => {
            "ConcatConv: the constant time channel becomes a per-channel offset"
        }
        OriginKind::Add => "adds a value computed from t alone: a per-channel offset",
        OriginKind::InjectPositional | OriginKind::ConcatPositional => "adds a positional time map",
        OriginKind::ScaleShift => "scales and shifts each channel by t",
        OriginKind::Feature => "injects an embedding that also depends on the features",
        OriginKind::DivTime => "divides each sample by its t",
    }
}

/// The help line naming the remedy at an injection site.
pub fn origin_help(kind: OriginKind) -> Option<String> {
    match kind {
        OriginKind::InjectOffset => Some(
            "inject a spatially varying time map instead: `inject(..., positional)`".to_string(),
        ),
        OriginKind::ConcatConstant => Some(
            "concatenate a positional time channel instead: `time = concat(positional)`"
                .to_string(),
        ),
        OriginKind::Add => Some(
            "inject the embedding with `inject(emb, positional)` into a feature map".to_string(),
        ),
        _ => None,
    }
}

/// The fix plan for an offset origin (positional where the language has a positional form).
pub fn positional_plan(cx: &Context, origin: usize) -> FixPlan {
    match cx.acc.origins.get(origin) {
        Some(o)
            if matches!(
                o.kind,
                OriginKind::InjectOffset | OriginKind::ConcatConstant
            ) =>
        {
            FixPlan::Positional {
                span: o.span,
                kind: o.kind,
            }
        }
        _ => FixPlan::None,
    }
}

/// The allow lists of an origin and a norm node, joined.
pub fn allows(cx: &Context, origin: usize, v: &NormAccount) -> Vec<String> {
    let mut a = cx
        .acc
        .origins
        .get(origin)
        .map(|o| o.allow.clone())
        .unwrap_or_default();
    if let Some(n) = node_of(cx, &v.graph, v.node_id) {
        a.extend(n.allow.iter().cloned());
    }
    a
}

/// Ties a finding to its (origin, norm) instance: the instance name, the allow lists of both
/// and the pair whose survival a fix predicts.
pub fn at_norm(cx: &Context, f: &mut Finding, origin: usize, v: &NormAccount) {
    f.instance = Some(v.node.clone());
    f.allow = allows(cx, origin, v);
    if let Some(o) = cx.acc.origins.get(origin) {
        f.pairs.push((o.path.clone(), v.node.clone()));
        if let Some(lb) = cx.model.label.as_ref().filter(|_| o.label) {
            f.notes.push(format!(
                "the embedding also carries the class label `{}`: a change of the label meets this norm as the change of t does",
                lb.name
            ));
        }
    }
}

/// The IR node `node` of the graph at path `graph`.
pub fn node_of<'m>(cx: &Context<'m>, graph: &str, node: NodeId) -> Option<&'m Node> {
    cx.model.graph_at(graph)?.nodes.get(node)
}

/// The norm's description in a secondary label: `group(32)`, or attention's inner norm.
pub fn norm_name(v: &NormAccount) -> String {
    if v.in_attention {
        format!("{} (attention's inner norm)", v.kind)
    } else {
        v.kind.to_string()
    }
}
