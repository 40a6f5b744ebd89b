//! A class's body: from its representative scope and the scopes of all instances that share
//! it, the constructor parameters (`in_ch`, `out_ch`, values that differ, flags for optional
//! layers), the `__init__` lines, `forward`, and each instance's constructor arguments.

use super::emitter::Emitter;
use super::forward::render_forward;
use super::graph::GraphInfo;
use super::layers::{ctor, fields, has_module};
use super::names::{py_ident, safe_attr};
use super::scope::{Elem, InstClass, Scope, UnitKind};
use super::tree::{Ctor, Tree};
use crate::emit::{EmitError, EmitResult as R};
use crate::ir::NodeId;
use std::collections::{HashMap, HashSet};

/// Field expressions of one class member across the class's instances.
fn field_expr(vals: &[String], ins: &[Option<usize>], outs: &[Option<usize>]) -> Option<String> {
    if vals.windows(2).all(|w| w[0] == w[1]) {
        return vals.first().cloned();
    }
    let nums: Vec<Option<usize>> = vals.iter().map(|v| v.parse().ok()).collect();
    if nums.iter().any(Option::is_none) {
        return None;
    }
    let nums: Vec<usize> = nums.into_iter().flatten().collect();
    for (name, ch) in [("in_ch", ins), ("out_ch", outs)] {
        if ch.iter().any(Option::is_none) {
            continue;
        }
        let ch: Vec<usize> = ch.iter().flatten().copied().collect();
        if nums == ch {
            return Some(name.into());
        }
        if let (Some(&c0), Some(&n0)) = (ch.first(), nums.first()) {
            if n0 > 0 && c0 % n0 == 0 {
                let k = c0 / n0;
                if k > 1 && nums.iter().zip(&ch).all(|(n, c)| n * k == *c) {
                    return Some(format!("{name} // {k}"));
                }
            }
            if c0 > 0 && n0 % c0 == 0 {
                let k = n0 / c0;
                if k > 1 && nums.iter().zip(&ch).all(|(n, c)| c * k == *n) {
                    return Some(format!("{k} * {name}"));
                }
            }
        }
    }
    None
}

/// What [`Emitter::render_class`] makes of a class.
pub(super) struct ClassBody {
    /// Constructor parameters after `self`.
    pub(super) params: Vec<String>,
    /// The lines of `__init__` after `super().__init__()`.
    pub(super) init: Vec<String>,
    pub(super) forward: String,
    /// Per member instance, its constructor arguments.
    pub(super) args: Vec<Vec<String>>,
}

impl<'a> Emitter<'a> {
    /// Renders a class from its representative scope: constructor parameters, `__init__` body,
    /// `forward`, and the constructor arguments of each member instance.
    pub(super) fn render_class(
        &mut self,
        gi: &GraphInfo,
        rep: &Scope,
        members: &[&Scope],
        optional: &HashSet<String>,
        done: &HashMap<usize, InstClass>,
        ode: &HashMap<NodeId, String>,
    ) -> R<ClassBody> {
        let g = gi.g;
        let ins: Vec<Option<usize>> = members.iter().map(|m| m.in_ch).collect();
        let outs: Vec<Option<usize>> = members.iter().map(|m| m.out_ch).collect();
        let mut params: Vec<String> = Vec::new();
        let mut per_args: Vec<Vec<String>> = vec![Vec::new(); members.len()];
        let mut use_in = false;
        let mut use_out = false;
        let mut extra: Vec<(String, Vec<String>)> = Vec::new();
        // Field expressions per unit path.
        let mut exprs: HashMap<String, Vec<String>> = HashMap::new();
        let multi = members.len() > 1;
        for u in &rep.units {
            let fl = self.unit_fields(gi, u, done);
            let mut es = Vec::new();
            for (k, (fname, _)) in fl.iter().enumerate() {
                let mut vals = Vec::new();
                let mut mins = Vec::new();
                let mut mouts = Vec::new();
                for (mi, m) in members.iter().enumerate() {
                    if let Some(mu) = m.units.iter().find(|x| x.path == u.path) {
                        let f = self.unit_fields(gi, mu, done);
                        if let Some((_, v)) = f.get(k) {
                            vals.push(v.clone());
                            mins.push(ins[mi]);
                            mouts.push(outs[mi]);
                        }
                    }
                }
                let e = if !multi {
                    vals.first().cloned().unwrap_or_default()
                } else {
                    match field_expr(&vals, &mins, &mouts) {
                        Some(e) => e,
                        None => {
                            let pname = py_ident(fname);
                            let all: Vec<String> = members
                                .iter()
                                .map(|m| {
                                    m.units
                                        .iter()
                                        .find(|x| x.path == u.path)
                                        .and_then(|mu| {
                                            self.unit_fields(gi, mu, done)
                                                .get(k)
                                                .map(|x| x.1.clone())
                                        })
                                        .unwrap_or_else(|| "None".into())
                                })
                                .collect();
                            extra.push((pname.clone(), all));
                            pname
                        }
                    }
                };
                use_in |= e.contains("in_ch");
                use_out |= e.contains("out_ch");
                es.push(e);
            }
            exprs.insert(u.path.clone(), es);
        }
        // Optional layers: present exactly when in_ch != out_ch, or a flag.
        let mut opt_cond: HashMap<String, String> = HashMap::new();
        for p in optional {
            let present: Vec<bool> = members
                .iter()
                .map(|m| m.units.iter().any(|x| &x.path == p))
                .collect();
            let differs: Vec<bool> = members.iter().map(|m| m.in_ch != m.out_ch).collect();
            if present == differs {
                use_in = true;
                use_out = true;
                opt_cond.insert(p.clone(), "in_ch != out_ch".into());
            } else {
                let pname = py_ident(p);
                extra.push((
                    pname.clone(),
                    present
                        .iter()
                        .map(|b| if *b { "True" } else { "False" }.to_string())
                        .collect(),
                ));
                opt_cond.insert(p.clone(), pname);
            }
        }
        if multi {
            if use_in {
                params.push("in_ch".into());
                for (mi, m) in members.iter().enumerate() {
                    per_args[mi].push(m.in_ch.unwrap_or(0).to_string());
                }
            }
            if use_out {
                params.push("out_ch".into());
                for (mi, m) in members.iter().enumerate() {
                    per_args[mi].push(m.out_ch.unwrap_or(0).to_string());
                }
            }
            for (p, vals) in &extra {
                params.push(p.clone());
                for (mi, v) in vals.iter().enumerate() {
                    per_args[mi].push(v.clone());
                }
            }
        }
        // Module tree.
        let mut tree = Tree::new();
        let mut ctors: Vec<(String, Ctor)> = Vec::new();
        for u in &rep.units {
            let es = exprs.get(&u.path).cloned().unwrap_or_default();
            let c = match &u.kind {
                UnitKind::Node(id) => {
                    let op = &g.nodes[*id].op;
                    self.note_uses(op);
                    if !has_module(op) {
                        continue;
                    }
                    let s = ctor(op, &es, ode.get(id).map(String::as_str));
                    let tagged = self.time_tagged(gi, *id);
                    Ctor::Plain(self.wrap_time(tagged, s))
                }
                UnitKind::Inst(i) => {
                    let c = done.get(i).map(|c| c.class.clone()).unwrap_or_default();
                    Ctor::Plain(format!("{c}({})", es.join(", ")))
                }
                UnitKind::Seq(elems) => {
                    let mut items = Vec::new();
                    let mut k = 0;
                    for e in elems {
                        match e {
                            Elem::Node(id) => {
                                let op = &g.nodes[*id].op;
                                self.note_uses(op);
                                let nf = fields(op).len();
                                let s = ctor(op, &es[k..k + nf], ode.get(id).map(String::as_str));
                                k += nf;
                                let tagged = self.time_tagged(gi, *id);
                                items.push(self.wrap_time(tagged, s));
                            }
                            Elem::Inst { inst } => {
                                let (c, na) = done
                                    .get(inst)
                                    .map(|c| (c.class.clone(), c.args.len()))
                                    .unwrap_or_default();
                                items.push(format!("{c}({})", es[k..k + na].join(", ")));
                                k += na;
                            }
                        }
                    }
                    Ctor::Seq(items)
                }
            };
            ctors.push((u.path.clone(), c));
        }
        for (path, c) in ctors {
            let comps: Vec<&str> = path.split('.').collect();
            tree.insert(&comps, c)?;
        }
        let mut init = Vec::new();
        if let Tree::Dir(map, order) = &tree {
            for k in order {
                if !safe_attr(k) {
                    return EmitError::err(format!(
                        "the layer name `{k}` cannot be a PyTorch submodule name; rename it with `as`"
                    ));
                }
                let body = map[k].render(8);
                match opt_cond.get(k) {
                    Some(cond) => init.push(format!("self.{k} = {body} if {cond} else None")),
                    None => init.push(format!("self.{k} = {body}")),
                }
            }
        }
        for p in optional {
            if p.contains('.') {
                return EmitError::err(format!(
                    "optional layer `{p}` must be a direct member of its block"
                ));
            }
        }
        let forward = render_forward(&self.src, gi, rep, &tree, optional)?;
        let per_args = if multi {
            per_args
        } else {
            vec![Vec::new(); members.len()]
        };
        Ok(ClassBody {
            params,
            init,
            forward,
            args: per_args,
        })
    }
}
