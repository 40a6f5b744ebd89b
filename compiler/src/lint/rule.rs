//! What every lint rule is made of and shares: the [`Rule`] record (metadata, documentation
//! and check), the [`Context`] a check reads, the raw [`Finding`] it returns with its
//! [`FixPlan`], and the wording and lookups several rules use. The rules themselves are in
//! [`super::rules`], one file each; they import this module and never each other.

use crate::analysis::{Analysis, ComponentVerdict, NormVerdict, OriginKind};
use crate::ast::Span;
use crate::diagnostics::Severity;
use crate::ir::{Graph, ModelIr, Node, NodeId, NormKind, Op};
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
    /// Reads one model's IR and analysis; returns the raw per-instance findings.
    #[serde(skip)]
    pub check: fn(&Context) -> Vec<Finding>,
}

/// TD102 and TD106 report a normalization that keeps less than this fraction of the arriving
/// time signal's energy. GroupNorm keeps (m - 1)/m: m = 8 channels per group (0.875) is
/// reported, m = 16 (0.94) is not.
pub const ATTENUATION_THRESHOLD: f64 = 0.9;

/// What a lint rule sees of one model: its IR and its time-dependence analysis (not the spec's
/// text: rules decide from ops).
pub struct Context<'a> {
    pub model: &'a ModelIr,
    pub analysis: &'a Analysis,
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

/// Formats a surviving fraction compactly: 0.5, 0.75, 0.875, 0.938.
pub fn fmt_frac(f: f64) -> String {
    let s = format!("{:.3}", f);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// "4 channels per group" / "1 channel per group" / "64 channels per unit".
pub fn per_unit(v: &NormVerdict) -> String {
    let m = v.channels_per_unit;
    let unit = match v.kind {
        NormKind::Group { .. } => "group",
        _ => "unit",
    };
    format!("{m} channel{} per {unit}", if m == 1 { "" } else { "s" })
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
        OriginKind::Ode => "the ODE function reads t",
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
pub fn positional_plan(cx: &Context, c: &ComponentVerdict) -> FixPlan {
    match cx.analysis.origins.get(c.origin_index) {
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
pub fn allows(cx: &Context, c: &ComponentVerdict, v: &NormVerdict) -> Vec<String> {
    let mut a = cx
        .analysis
        .origins
        .get(c.origin_index)
        .map(|o| o.allow.clone())
        .unwrap_or_default();
    if let Some(g) = cx.analysis.graphs.iter().position(|g| g.path == v.graph) {
        let graph = graph_of(cx.model, cx.analysis, g);
        if let Some(n) = graph.and_then(|gr| gr.nodes.iter().find(|n| n.name == v.node)) {
            a.extend(n.allow.iter().cloned());
        }
    }
    a
}

/// The IR graph behind analysis graph `gi`.
pub fn graph_of<'m>(m: &'m ModelIr, a: &Analysis, gi: usize) -> Option<&'m Graph> {
    let ga = a.graphs.get(gi)?;
    match ga.parent {
        None => Some(&m.graph),
        Some((pg, node)) => {
            let parent = graph_of(m, a, pg)?;
            match &parent.nodes.get(node)?.op {
                Op::Ode { func, .. } => Some(&func.graph),
                _ => None,
            }
        }
    }
}

/// The IR node `node` of analysis graph `gi`.
pub fn node_of<'m>(cx: &Context<'m>, gi: usize, node: NodeId) -> Option<&'m Node> {
    graph_of(cx.model, cx.analysis, gi)?.nodes.get(node)
}
