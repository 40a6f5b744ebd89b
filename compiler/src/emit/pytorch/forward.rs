//! A class's `forward`: its units in graph order, each an expression over its inputs, inlined
//! into its consumer when both come from one spec statement, otherwise assigned to a variable
//! named after the statement's target where that name is free.

use super::graph::GraphInfo;
use super::layers::{atom, node_expr, PyExpr};
use super::names::py_ident;
use super::scope::{Scope, UnitKind};
use super::source::Source;
use super::tree::Tree;
use crate::ast::Span;
use crate::emit::EmitResult as R;
use crate::ir::{NodeId, Op};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

pub(super) fn render_forward(
    src: &Source,
    gi: &GraphInfo,
    sc: &Scope,
    tree: &Tree,
    optional: &HashSet<String>,
) -> R<String> {
    let g = gi.g;
    let n_units = sc.units.len();
    let unit_of: HashMap<NodeId, usize> = sc
        .units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.out, i))
        .collect();
    let arg_of: HashMap<NodeId, String> = sc.args.iter().cloned().collect();
    // Liveness from the output backwards.
    let mut live = vec![false; n_units];
    if let Some(&o) = unit_of.get(&sc.output) {
        live[o] = true;
    }
    for i in (0..n_units).rev() {
        if !live[i] {
            continue;
        }
        for inp in &sc.units[i].inputs {
            if let Some(&j) = unit_of.get(inp) {
                live[j] = true;
            }
        }
    }
    // Consumers (with multiplicity) among live units.
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n_units];
    for (i, u) in sc.units.iter().enumerate() {
        if !live[i] {
            continue;
        }
        for inp in &u.inputs {
            if let Some(&j) = unit_of.get(inp) {
                consumers[j].push(i);
            }
        }
    }
    let out_unit = unit_of.get(&sc.output).copied();
    let live_order: Vec<usize> = (0..n_units).filter(|&i| live[i]).collect();
    let next_live = |i: usize| live_order.iter().copied().find(|&j| j > i);
    let stmt_of = |i: usize| -> Span { g.nodes[sc.units[i].out].stmt_span };
    let mut inline = vec![false; n_units];
    for &i in &live_order {
        let u = &sc.units[i];
        let UnitKind::Node(id) = u.kind else { continue };
        if matches!(g.nodes[id].op, Op::Ode { .. }) {
            continue;
        }
        if Some(i) == out_unit {
            inline[i] = consumers[i].is_empty() && next_live(i).is_none();
            continue;
        }
        if consumers[i].len() != 1 {
            continue;
        }
        // Inline into the consumer when both come from one spec statement (a block call's
        // statement is its caller's: inline into it when it comes right next).
        let c = consumers[i][0];
        let c_is_inst = matches!(sc.units[c].kind, UnitKind::Inst(_));
        if stmt_of(c) == stmt_of(i) || (c_is_inst && next_live(i) == Some(c)) {
            inline[i] = true;
        }
    }
    // Where each unit's value is finally emitted.
    let mut emit_at: Vec<usize> = (0..n_units).collect();
    for &i in live_order.iter().rev() {
        if inline[i] {
            if let Some(&c) = consumers[i].first() {
                emit_at[i] = emit_at[c];
            }
        }
    }
    let last_use = |i: usize| -> usize {
        consumers[i]
            .iter()
            .map(|&c| emit_at[c])
            .max()
            .unwrap_or(usize::MAX)
    };
    let mut holder: HashMap<String, Option<usize>> = HashMap::new();
    for (_, a) in &sc.args {
        holder.insert(a.clone(), None);
    }
    let mut var: HashMap<usize, String> = HashMap::new();
    let mut exprs: HashMap<usize, PyExpr> = HashMap::new();
    let mut lines: Vec<String> = Vec::new();
    let mut returned = false;
    let arg_last_use = |id: NodeId| -> usize {
        sc.units
            .iter()
            .enumerate()
            .filter(|(i, u)| live[*i] && u.inputs.contains(&id))
            .map(|(i, _)| emit_at[i])
            .max()
            .unwrap_or(0)
    };
    for &i in &live_order {
        let u = &sc.units[i];
        let ins: Vec<PyExpr> = u
            .inputs
            .iter()
            .map(|inp| {
                if let Some(a) = arg_of.get(inp) {
                    atom(a.clone())
                } else if let Some(&j) = unit_of.get(inp) {
                    match (exprs.remove(&j), var.get(&j)) {
                        (Some(e), _) => e,
                        (None, Some(v)) => atom(v.clone()),
                        _ => atom("None".into()),
                    }
                } else {
                    atom("None".into())
                }
            })
            .collect();
        let comps: Vec<&str> = u.path.split('.').collect();
        let m = tree.access(&comps);
        let mut e = match &u.kind {
            UnitKind::Node(id) => node_expr(&g.nodes[*id], &m, &ins, g),
            UnitKind::Seq(_) | UnitKind::Inst(_) => atom(format!(
                "{m}({})",
                ins.iter()
                    .map(|x| x.text.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        if optional.contains(&u.path) {
            let x = ins.first().map(|x| x.text.clone()).unwrap_or_default();
            e = atom(format!("({x} if {m} is None else {})", e.text));
        }
        if inline[i] {
            if Some(i) == out_unit {
                lines.push(format!("return {}", e.text));
                returned = true;
            } else {
                exprs.insert(i, e);
            }
            continue;
        }
        if Some(i) == out_unit && next_live(i).is_none() && consumers[i].is_empty() {
            lines.push(format!("return {}", e.text));
            returned = true;
            continue;
        }
        // Choose a variable.
        let target = match u.kind {
            UnitKind::Node(_) | UnitKind::Seq(_) => src.target(stmt_of(i)).map(py_ident),
            UnitKind::Inst(_) => None,
        };
        let free = |name: &str, holder: &HashMap<String, Option<usize>>| -> bool {
            match holder.get(name) {
                None => true,
                Some(Some(j)) => last_use(*j) <= i,
                Some(None) => sc
                    .args
                    .iter()
                    .find(|(_, a)| a == name)
                    .map(|(id, _)| arg_last_use(*id) <= i)
                    .unwrap_or(true),
            }
        };
        let path_name = py_ident(&u.path);
        let candidates: Vec<String> = if consumers[i].len() > 1 {
            vec![path_name.clone()]
        } else {
            vec![
                target.clone().unwrap_or_else(|| "h".into()),
                path_name.clone(),
            ]
        };
        let mut chosen = None;
        for c in &candidates {
            if free(c, &holder) {
                chosen = Some(c.clone());
                break;
            }
        }
        let name = match chosen {
            Some(c) => c,
            None => {
                let mut k = 2;
                loop {
                    let c = format!("{path_name}_{k}");
                    if free(&c, &holder) {
                        break c;
                    }
                    k += 1;
                }
            }
        };
        lines.push(format!("{name} = {}", e.text));
        holder.insert(name.clone(), Some(i));
        var.insert(i, name);
    }
    if !returned {
        let r = if let Some(a) = arg_of.get(&sc.output) {
            a.clone()
        } else if let Some(o) = out_unit {
            var.get(&o).cloned().unwrap_or_else(|| "None".into())
        } else {
            "None".into()
        };
        lines.push(format!("return {r}"));
    }
    let sig: Vec<String> = sc.args.iter().map(|a| a.1.clone()).collect();
    let mut s = format!("    def forward(self, {}):\n", sig.join(", "));
    for l in lines {
        let _ = writeln!(s, "        {l}");
    }
    Ok(s)
}
