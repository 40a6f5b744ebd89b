//! Scopes and nodes: binding and looking up names, naming nodes (`a`, `a_2`, unique within a
//! graph), adding nodes with their parameters and injection sites, the graph's shared nodes
//! (the time input and embeddings, created on first use), and recording block instances.

use super::state::{join, GraphCtx, Sema, Val};
use crate::ast::{Expr, ExprKind, Span};
use crate::diagnostics::Diagnostic;
use crate::ir::{InjectionSite, Instance, Node, NodeId, Op, Shape};

impl<'a> Sema<'a> {
    pub(super) fn bind(&mut self, name: &str, v: Val, span: Span) {
        let scope = self.scopes.last_mut().expect("a scope");
        scope.vars.insert(name.to_string(), (v, span));
    }

    pub(super) fn lookup(&self, name: &str) -> Option<(Val, Span, usize)> {
        for (depth, s) in self.scopes.iter().enumerate().rev() {
            if let Some((v, sp)) = s.vars.get(name) {
                return Some((v.clone(), *sp, depth));
            }
        }
        None
    }

    pub(super) fn visible_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .scopes
            .iter()
            .flat_map(|s| s.vars.keys().cloned())
            .collect();
        names.extend(self.embeds.keys().cloned());
        if let Some(t) = &self.time {
            names.push(t.name.clone());
        }
        names
    }

    /// The node-name base for an assignment in the current scope: `a`, then `a_2`, ...
    pub(super) fn assign_base(&mut self, name: &str) -> String {
        let scope = self.scopes.last_mut().expect("a scope");
        // The key is allocated only for a name not seen before.
        let n = match scope.assigned.get_mut(name) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                scope.assigned.insert(name.to_string(), 1);
                1
            }
        };
        match n {
            1 => join(&scope.prefix, name),
            _ => join(&scope.prefix, &format!("{name}_{n}")),
        }
    }

    fn gctx(&mut self) -> &mut GraphCtx {
        self.graphs.last_mut().expect("a graph")
    }

    /// The values t takes in the current graph: an ODE function's interval, else the model's.
    pub(super) fn time_values(&self) -> Option<(f64, f64)> {
        let inner = self.graphs.last().and_then(|g| g.time_range);
        inner.or_else(|| self.time.as_ref().map(|t| t.range()))
    }

    /// Reports `what` at `span` unless t stays above 0 wherever the current graph sees it.
    pub(super) fn needs_positive_time(&mut self, span: Span, what: &str) -> Option<()> {
        let (lo, _) = self.time_values()?;
        if lo > 0.0 {
            return Some(());
        }
        let mut d = Diagnostic::error("E207", format!("{what} needs t > 0, but t reaches {lo}"))
            .with_primary(span, "undefined at t = 0");
        if let Some(t) = &self.time {
            d = d.with_secondary(t.span, "time declared here");
        }
        self.err(d.with_help(
            "declare a positive range, e.g. `time t: continuous(0.01, 50)` for noise levels",
        ));
        None
    }

    pub(super) fn gctx_floor(&self) -> usize {
        self.graphs.last().map(|g| g.scope_floor).unwrap_or(0)
    }

    fn unique_name(&mut self, name: String) -> String {
        let g = self.gctx();
        // The key is cloned only for a name not seen before.
        if let Some(n) = g.names.get_mut(&name) {
            *n += 1;
            return format!("{name}_{n}");
        }
        g.names.insert(name.clone(), 1);
        name
    }

    pub(super) fn node_shape(&self, id: NodeId) -> Shape {
        self.graphs.last().expect("a graph").graph.nodes[id].shape
    }

    pub(super) fn node_span(&self, id: NodeId) -> Span {
        self.graphs.last().expect("a graph").graph.nodes[id].span
    }

    /// Marks node `id` of the current graph as a norm made by the model's `norm = ...` setting.
    pub(super) fn mark_norm_from_setting(&mut self, id: NodeId) {
        self.graphs.last_mut().expect("a graph").graph.nodes[id].norm_from_setting = true;
    }

    pub(super) fn push_raw(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        shape: Shape,
        name: String,
        span: Span,
    ) -> NodeId {
        let name = self.unique_name(name);
        let scope = self.scopes.last().expect("a scope");
        let allow = self
            .scopes
            .iter()
            .flat_map(|s| s.allow.iter().cloned())
            .collect();
        let stmt_span = scope.stmt_span;
        let g = self.graphs.last_mut().expect("a graph");
        let time_branch = match op {
            Op::Time => true,
            Op::Input => false,
            _ => !inputs.is_empty() && inputs.iter().all(|&i| g.graph.nodes[i].time_branch),
        };
        let params = op.params(&name, time_branch);
        if let Some(mode) = op.injection() {
            self.injections.push(InjectionSite {
                node: name.clone(),
                mode,
                span,
            });
        }
        let id = g.graph.nodes.len();
        g.graph.nodes.push(Node {
            op,
            inputs,
            shape,
            name,
            params,
            span,
            stmt_span,
            time_branch,
            allow,
            norm_from_setting: false,
        });
        for &i in &g.open {
            g.graph.instances[i].nodes.push(id);
        }
        id
    }

    /// Runs `f` outside every open block instance: for the graph's shared nodes (the time
    /// input, embeddings), which belong to no instance although a block may create them.
    pub(super) fn shared<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let open = std::mem::take(&mut self.gctx().open);
        let out = f(self);
        self.gctx().open = open;
        out
    }

    /// Starts recording a block instance in the current graph; returns its index.
    pub(super) fn open_instance(&mut self, block: &str, prefix: &str, span: Span) -> usize {
        let g = self.gctx();
        let i = g.graph.instances.len();
        g.graph.instances.push(Instance {
            block: block.to_string(),
            prefix: prefix.to_string(),
            parent: g.open.last().copied(),
            nodes: Vec::new(),
            inputs: Vec::new(),
            output: 0,
            span,
        });
        g.open.push(i);
        i
    }

    /// Ends the innermost open instance, with the value its block returned.
    pub(super) fn close_instance(&mut self, output: Option<NodeId>) {
        let g = self.gctx();
        let Some(i) = g.open.pop() else { return };
        let nodes = &g.graph.nodes;
        let inst = &mut g.graph.instances[i];
        let mut inputs = Vec::new();
        for &v in &inst.nodes {
            for &x in &nodes[v].inputs {
                if inst.nodes.binary_search(&x).is_err() && !inputs.contains(&x) {
                    inputs.push(x);
                }
            }
        }
        inst.inputs = inputs;
        inst.output = output.unwrap_or(0);
    }

    /// The time node of the current graph, created on first use.
    pub(super) fn time_node(&mut self) -> Option<NodeId> {
        let time = self.time.clone()?;
        if let Some(id) = self.gctx().time_node {
            return Some(id);
        }
        let id = self
            .shared(|s| s.push_raw(Op::Time, vec![], Shape::Time, time.name.clone(), time.span));
        self.gctx().time_node = Some(id);
        Some(id)
    }

    /// The node of embedding `name` in the current graph, instantiated on first use.
    pub(super) fn embed_node(&mut self, name: &str) -> Option<NodeId> {
        if let Some(&id) = self.gctx().embeds.get(name) {
            return Some(id);
        }
        if self.failed_embeds.contains(name) {
            return None;
        }
        let id = self.shared(|s| s.new_embed_node(name));
        if id.is_none() {
            self.failed_embeds.insert(name.to_string());
        }
        id
    }

    fn new_embed_node(&mut self, name: &str) -> Option<NodeId> {
        let (expr, _) = *self.embeds.get(name)?;
        let t = self.time_node()?;
        let base = join(&self.gctx().prefix.clone(), name);
        let stages: Vec<&Expr> = match &expr.kind {
            ExprKind::Pipe(items) => items.iter().collect(),
            _ => vec![expr],
        };
        // An embedding pipeline starts from t; `t | sinusoidal(128)` is also accepted.
        let time_name = self
            .time
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let mut cur = t;
        let mut idx = 0;
        for (i, st) in stages.iter().enumerate() {
            if i == 0 && st.as_ident() == Some(time_name.as_str()) {
                continue;
            }
            cur = self.stage(cur, st, &base, idx)?;
            idx += 1;
        }
        self.gctx().embeds.insert(name.to_string(), cur);
        Some(cur)
    }
}
