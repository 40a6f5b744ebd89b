//! Scopes: the units a class's `forward` is made of. A class's scope (the model, an ODE
//! function, a block instance) holds its own layers and the instances nested one level down; a
//! pipeline whose stages are named `P.0 .. P.n-1` becomes one `nn.Sequential` unit.

use super::graph::GraphInfo;
use super::layers::{has_module, seqable};
use super::names::py_ident;
use crate::ir::{Graph, NodeId, Op};
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Debug)]
pub(super) enum Elem {
    Node(NodeId),
    /// A block instance, rendered as a call of the class `classes[cls]` with `args`.
    Inst {
        inst: usize,
    },
}

#[derive(Clone, Debug)]
pub(super) enum UnitKind {
    Node(NodeId),
    Seq(Vec<Elem>),
    Inst(usize),
}

#[derive(Clone, Debug)]
pub(super) struct Unit {
    pub(super) kind: UnitKind,
    /// The module path (or node name) relative to the scope.
    pub(super) path: String,
    pub(super) inputs: Vec<NodeId>,
    pub(super) out: NodeId,
}

/// What a block instance became: its class and constructor arguments.
#[derive(Clone, Debug)]
pub(super) struct InstClass {
    pub(super) class: String,
    pub(super) args: Vec<String>,
}

/// The analyzed scope of a class: arguments, units, output.
pub(super) struct Scope {
    pub(super) args: Vec<(NodeId, String)>,
    pub(super) units: Vec<Unit>,
    pub(super) output: NodeId,
    pub(super) in_ch: Option<usize>,
    pub(super) out_ch: Option<usize>,
}

fn is_time_ext(g: &Graph, id: NodeId) -> bool {
    g.nodes[id].time_branch
}

/// Python name for an external value of a block: `h` for the feature input, `t` for time, the
/// embedding's name for an embedding.
pub(super) fn ext_name(g: &Graph, id: NodeId, main: &str, time: &str) -> String {
    let n = &g.nodes[id];
    if matches!(n.op, Op::Time) {
        time.to_string()
    } else if n.time_branch {
        py_ident(n.name.split('.').next().unwrap_or("emb"))
    } else {
        main.to_string()
    }
}

pub(super) fn build_scope(
    gi: &GraphInfo,
    scope: Option<usize>,
    args: Vec<(NodeId, String)>,
    output: NodeId,
) -> Scope {
    let g = gi.g;
    let prefix = match scope {
        Some(i) => gi.insts[i].prefix.clone(),
        None => gi.root.clone(),
    };
    let arg_ids: HashSet<NodeId> = args.iter().map(|a| a.0).collect();
    let mut units: Vec<Unit> = Vec::new();
    for (id, node) in g.nodes.iter().enumerate() {
        if gi.owner[id] != scope || arg_ids.contains(&id) || matches!(node.op, Op::Input | Op::Time)
        {
            continue;
        }
        units.push(Unit {
            kind: UnitKind::Node(id),
            path: gi.rel(&prefix, &node.name),
            inputs: node.inputs.clone(),
            out: id,
        });
    }
    for (i, inst) in gi.insts.iter().enumerate() {
        if inst.parent == scope {
            units.push(Unit {
                kind: UnitKind::Inst(i),
                path: gi.rel(&prefix, &inst.prefix),
                inputs: inst.externals.clone(),
                out: inst.output,
            });
        }
    }
    units.sort_by_key(|u| u.out);
    // Pipelines P.0 .. P.n-1 of single-input layers become nn.Sequential.
    let mut groups: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for (ui, u) in units.iter().enumerate() {
        if let Some((p, idx)) = u.path.rsplit_once('.') {
            if let Ok(k) = idx.parse::<usize>() {
                groups.entry(p.to_string()).or_default().push((k, ui));
            }
        } else if let Ok(k) = u.path.parse::<usize>() {
            groups.entry(String::new()).or_default().push((k, ui));
        }
    }
    let mut merged: HashMap<usize, Option<Unit>> = HashMap::new();
    for (p, mut members) in groups {
        if p.is_empty() {
            continue;
        }
        members.sort();
        if members.iter().enumerate().any(|(i, (k, _))| *k != i) {
            continue;
        }
        let pre = format!("{p}.");
        let others = units.iter().enumerate().any(|(ui, u)| {
            let inside = u.path == p || u.path.starts_with(&pre);
            let above = p.starts_with(&format!("{}.", u.path));
            (inside && !members.iter().any(|(_, m)| *m == ui)) || above
        });
        let has_layers = members.iter().any(|(_, ui)| match &units[*ui].kind {
            UnitKind::Node(id) => has_module(&g.nodes[*id].op),
            _ => true,
        });
        if others || !has_layers {
            continue;
        }
        let mut ok = true;
        let mut elems = Vec::new();
        for (i, (_, ui)) in members.iter().enumerate() {
            let u = &units[*ui];
            let single = match &u.kind {
                UnitKind::Node(id) => seqable(&g.nodes[*id].op) && u.inputs.len() == 1,
                UnitKind::Inst(_) => u.inputs.len() == 1 && !is_time_ext(g, u.inputs[0]),
                UnitKind::Seq(_) => false,
            };
            if !single {
                ok = false;
                break;
            }
            if i > 0 && u.inputs[0] != units[members[i - 1].1].out {
                ok = false;
                break;
            }
            if i + 1 < members.len() && gi.uses[u.out].len() != 1 {
                ok = false;
                break;
            }
            match &u.kind {
                UnitKind::Node(id) => elems.push(Elem::Node(*id)),
                UnitKind::Inst(i) => elems.push(Elem::Inst { inst: *i }),
                UnitKind::Seq(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let first = &units[members[0].1];
        let last = &units[members[members.len() - 1].1];
        let seq = Unit {
            kind: UnitKind::Seq(elems),
            path: p.clone(),
            inputs: first.inputs.clone(),
            out: last.out,
        };
        for (i, (_, ui)) in members.iter().enumerate() {
            merged.insert(
                *ui,
                if i + 1 == members.len() {
                    Some(seq.clone())
                } else {
                    None
                },
            );
        }
    }
    let units: Vec<Unit> = units
        .into_iter()
        .enumerate()
        .filter_map(|(ui, u)| match merged.remove(&ui) {
            Some(s) => s,
            None => Some(u),
        })
        .collect();
    let in_ch = args
        .iter()
        .find(|(id, _)| !is_time_ext(g, *id))
        .and_then(|(id, _)| g.nodes[*id].shape.channels());
    let out_ch = g.nodes.get(output).and_then(|n| n.shape.channels());
    Scope {
        args,
        units,
        output,
        in_ch,
        out_ch,
    }
}
