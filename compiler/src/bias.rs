//! Biases a normalization cancels: a checked [`ModelIr`] in; every operand-branch bias (of a
//! conv or linear) whose every path ends in a normalization that removes a per-channel constant
//! completely ([`BiasCancel`]) out. Such a bias has zero gradient and does not change the
//! function; TD104 reads this.

use crate::ast::Span;
use crate::ir::*;
use serde::Serialize;

/// An operand-branch bias whose every path ends in a normalization that removes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BiasCancel {
    /// Path of the graph holding the layer ("" for the model, the ODE node's path for an ODE
    /// function).
    pub graph: String,
    /// The layer owning the bias.
    #[serde(skip)]
    pub node: NodeId,
    pub path: String,
    pub span: Span,
    /// The canceling normalizations (paths and spans).
    pub norms: Vec<(String, Span)>,
    pub allow: Vec<String>,
}

/// Every canceled bias of a model, ODE functions included.
pub fn canceled_biases(m: &ModelIr) -> Vec<BiasCancel> {
    let mut out = Vec::new();
    graph(&m.graph, "", Some(m.output), &mut out);
    out
}

fn graph(g: &Graph, path: &str, output: Option<NodeId>, out: &mut Vec<BiasCancel>) {
    let mut users: Vec<Vec<NodeId>> = vec![Vec::new(); g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        for &j in &n.inputs {
            if let Some(u) = users.get_mut(j) {
                u.push(i);
            }
        }
    }
    for (i, n) in g.nodes.iter().enumerate() {
        if let Op::Ode { func, .. } = &n.op {
            graph(&func.graph, &n.name, Some(func.output), out);
        }
        let has_bias = n.params.iter().any(|p| p.role == ParamRole::OperandBias);
        if !has_bias || !matches!(n.op, Op::Conv { .. } | Op::Linear { .. }) {
            continue;
        }
        if let Some(norms) = removing_norms(g, &users, i, output) {
            out.push(BiasCancel {
                graph: path.to_string(),
                node: i,
                path: n.name.clone(),
                span: n.span,
                norms,
                allow: n.allow.clone(),
            });
        }
    }
}

/// The norms that remove a per-channel constant added at `start`, when every path from it ends
/// in one (through ops that keep a per-channel constant a per-channel constant).
fn removing_norms(
    g: &Graph,
    users: &[Vec<NodeId>],
    start: NodeId,
    output: Option<NodeId>,
) -> Option<Vec<(String, Span)>> {
    let mut norms: Vec<(String, Span)> = Vec::new();
    let mut stack = vec![start];
    let mut seen = vec![false; g.nodes.len()];
    while let Some(cur) = stack.pop() {
        if Some(cur) == output || users[cur].is_empty() {
            return None;
        }
        for &u in &users[cur] {
            if seen[u] {
                continue;
            }
            seen[u] = true;
            let un = &g.nodes[u];
            match &un.op {
                Op::Norm { kind, channels, .. } => {
                    let m = kind.channels_per_unit(*channels);
                    let removes = match kind {
                        NormKind::Instance | NormKind::Batch => true,
                        NormKind::Group { .. } | NormKind::Layer | NormKind::PerPosition => m == 1,
                    };
                    if !removes {
                        return None;
                    }
                    norms.push((un.name.clone(), un.span));
                }
                Op::Conv { pad: 0, .. }
                | Op::Linear { .. }
                | Op::Add
                | Op::Concat
                | Op::Dropout { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Upsample { .. }
                | Op::Flatten => stack.push(u),
                Op::Inject { .. } | Op::ScaleShift { .. } if un.inputs.first() == Some(&cur) => {
                    stack.push(u)
                }
                _ => return None,
            }
        }
    }
    (!norms.is_empty()).then_some(norms)
}
