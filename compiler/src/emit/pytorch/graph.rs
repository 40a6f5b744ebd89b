//! One graph (the model's or an ODE function's) as the emitter sees it: the IR's block
//! instances that become classes, the instance that directly owns each node, and each node's
//! consumers.

use crate::ir::{Graph, NodeId};

pub(super) struct Inst {
    pub(super) prefix: String,
    pub(super) block: String,
    pub(super) parent: Option<usize>,
    pub(super) output: NodeId,
    /// Values from outside the instance it reads, in order of first use.
    pub(super) externals: Vec<NodeId>,
}

pub(super) struct GraphInfo<'g> {
    pub(super) g: &'g Graph,
    /// The name prefix of the graph's own scope (`""`, or the ODE node's name).
    pub(super) root: String,
    /// The instance that directly owns each node (None: the graph's own scope).
    pub(super) owner: Vec<Option<usize>>,
    pub(super) insts: Vec<Inst>,
    pub(super) uses: Vec<Vec<NodeId>>,
}

impl<'g> GraphInfo<'g> {
    /// The graph's instances that become classes: those that compute the value they return (a
    /// block that returns its input is nothing to call; its nodes, if any, stay with the
    /// enclosing scope).
    pub(super) fn new(g: &'g Graph, root: &str) -> Self {
        let n = g.nodes.len();
        let mut index: Vec<Option<usize>> = vec![None; g.instances.len()];
        let mut insts: Vec<Inst> = Vec::new();
        let mut owner = vec![None; n];
        for (k, inst) in g.instances.iter().enumerate() {
            if inst.nodes.binary_search(&inst.output).is_err() {
                continue;
            }
            let mut parent = inst.parent;
            while let Some(p) = parent.filter(|&p| index[p].is_none()) {
                parent = g.instances[p].parent;
            }
            let i = insts.len();
            index[k] = Some(i);
            // Instances come after their parents: the last one to claim a node owns it.
            for &v in &inst.nodes {
                if let Some(o) = owner.get_mut(v) {
                    *o = Some(i);
                }
            }
            insts.push(Inst {
                prefix: inst.prefix.clone(),
                block: inst.block.clone(),
                parent: parent.and_then(|p| index[p]),
                output: inst.output,
                externals: inst.inputs.clone(),
            });
        }
        let mut uses = vec![Vec::new(); n];
        for (id, node) in g.nodes.iter().enumerate() {
            for &i in &node.inputs {
                if i < n {
                    uses[i].push(id);
                }
            }
        }
        GraphInfo {
            g,
            root: root.to_string(),
            owner,
            insts,
            uses,
        }
    }

    pub(super) fn rel(&self, scope_prefix: &str, name: &str) -> String {
        if scope_prefix.is_empty() {
            name.to_string()
        } else {
            name.strip_prefix(&format!("{scope_prefix}."))
                .unwrap_or(name)
                .to_string()
        }
    }
}
