//! The emitter's state while it writes `model.py`: the classes made so far, class-name and
//! structure bookkeeping, the helpers the code uses; and the per-unit facts class sharing
//! compares (field values, structural signatures).

use super::graph::GraphInfo;
use super::layers::{fields, has_module, note_uses, op_sig, Uses};
use super::names::{camel, py_ident};
use super::scope::{Elem, InstClass, Unit, UnitKind};
use super::source::Source;
use crate::ir::{ModelIr, NodeId, Op, ParamRole};
use std::collections::{HashMap, HashSet};

/// One class of `model.py`.
pub(super) struct Class {
    pub(super) name: String,
    pub(super) base: String,
    pub(super) doc: String,
    pub(super) params: Vec<String>,
    pub(super) init: Vec<String>,
    pub(super) methods: Vec<String>,
}

pub(super) struct Emitter<'a> {
    pub(super) src: Source<'a>,
    pub(super) model: &'a ModelIr,
    pub(super) classes: Vec<Class>,
    /// Class dedup: structural key -> class name.
    pub(super) by_key: HashMap<String, String>,
    pub(super) names: HashSet<String>,
    pub(super) uses: Uses,
}

impl<'a> Emitter<'a> {
    pub(super) fn fresh_class_name(&mut self, base: &str) -> String {
        let mut name = camel(base);
        let mut k = 2;
        while self.names.contains(&name) {
            name = format!("{}{k}", camel(base));
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// Field values of a unit (for class sharing): layers' numeric settings, instance args.
    pub(super) fn unit_fields(
        &self,
        gi: &GraphInfo,
        u: &Unit,
        done: &HashMap<usize, InstClass>,
    ) -> Vec<(String, String)> {
        let base = py_ident(&u.path);
        let node_fields = |id: NodeId, prefix: &str| -> Vec<(String, String)> {
            fields(&gi.g.nodes[id].op)
                .into_iter()
                .map(|(f, v)| (format!("{prefix}_{f}"), v))
                .collect()
        };
        match &u.kind {
            UnitKind::Node(id) => node_fields(*id, &base),
            UnitKind::Inst(i) => done
                .get(i)
                .map(|c| {
                    c.args
                        .iter()
                        .enumerate()
                        .map(|(k, v)| (format!("{base}_{k}"), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            UnitKind::Seq(elems) => {
                let mut v = Vec::new();
                for (k, e) in elems.iter().enumerate() {
                    match e {
                        Elem::Node(id) => v.extend(node_fields(*id, &format!("{base}_{k}"))),
                        Elem::Inst { inst } => {
                            if let Some(c) = done.get(inst) {
                                for (j, a) in c.args.iter().enumerate() {
                                    v.push((format!("{base}_{k}_{j}"), a.clone()));
                                }
                            }
                        }
                    }
                }
                v
            }
        }
    }

    /// The structural signature of a unit, with its inputs as references.
    pub(super) fn unit_sig(
        &self,
        gi: &GraphInfo,
        u: &Unit,
        refs: &[String],
        done: &HashMap<usize, InstClass>,
        ode: &HashMap<NodeId, String>,
    ) -> String {
        let node_sig = |id: NodeId| -> String {
            let op = &gi.g.nodes[id].op;
            if has_module(op) {
                let tag = if self.time_tagged(gi, id) { "+t" } else { "" };
                format!(
                    "{}{}{tag}",
                    op_sig(op),
                    ode.get(&id).cloned().unwrap_or_default()
                )
            } else {
                format!("{op:?}")
            }
        };
        let body = match &u.kind {
            UnitKind::Node(id) => node_sig(*id),
            UnitKind::Inst(i) => done.get(i).map(|c| c.class.clone()).unwrap_or_default(),
            UnitKind::Seq(elems) => elems
                .iter()
                .map(|e| match e {
                    Elem::Node(id) => node_sig(*id),
                    Elem::Inst { inst } => {
                        done.get(inst).map(|c| c.class.clone()).unwrap_or_default()
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        format!("{}={body}({})", u.path, refs.join(","))
    }

    /// Whether a layer's bias follows the time-branch policy (tagged when the policies differ).
    pub(super) fn time_tagged(&self, gi: &GraphInfo, id: NodeId) -> bool {
        let n = &gi.g.nodes[id];
        n.params.iter().any(|p| p.role == ParamRole::TimeBias)
    }

    fn policies_differ(&self) -> bool {
        self.model.bias.operand != self.model.bias.time
    }

    pub(super) fn wrap_time(&mut self, tagged: bool, s: String) -> String {
        if tagged && self.policies_differ() {
            self.uses.time_tags = true;
            format!("time_branch({s})")
        } else {
            s
        }
    }

    pub(super) fn note_uses(&mut self, op: &Op) {
        note_uses(&mut self.uses, op);
    }
}
