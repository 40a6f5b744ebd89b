//! Classes for block instances and ODE functions: the instances of one block at one nesting
//! depth are partitioned into structurally compatible groups (one may lack single-input layers
//! the other has: optional layers), and each group becomes one class; an ODE function becomes a
//! class for f(t, h) and a subclass that integrates it.

use super::body::ClassBody;
use super::emitter::{Class, Emitter};
use super::graph::GraphInfo;
use super::names::{py_float, py_ident};
use super::scope::{build_scope, ext_name, InstClass, Scope, UnitKind};
use crate::ast::BlockDef;
use crate::emit::{EmitError, EmitResult as R};
use crate::ir::{NodeId, OdeFunc, Op, Solver};
use std::collections::{HashMap, HashSet};

impl<'a> Emitter<'a> {
    /// Builds the classes of every block instance and ODE function in `gi` (innermost first);
    /// returns what each instance became and the ODE classes by node.
    #[allow(clippy::type_complexity)]
    pub(super) fn instances(
        &mut self,
        gi: &GraphInfo,
    ) -> R<(HashMap<usize, InstClass>, HashMap<NodeId, String>)> {
        let g = gi.g;
        let time_name = py_ident(&self.model.time.name);
        // ODE functions first: they are leaves from this graph's point of view.
        let mut ode: HashMap<NodeId, String> = HashMap::new();
        for (id, n) in g.nodes.iter().enumerate() {
            if let Op::Ode {
                func,
                t0,
                t1,
                solver,
            } = &n.op
            {
                let cls = self.ode_classes(func, &n.name, *t0, *t1, *solver)?;
                ode.insert(id, cls);
            }
        }
        let mut done: HashMap<usize, InstClass> = HashMap::new();
        let mut order: Vec<usize> = (0..gi.insts.len()).collect();
        let depth = |mut i: usize| {
            let mut d = 0;
            while let Some(p) = gi.insts[i].parent {
                d += 1;
                i = p;
            }
            d
        };
        order.sort_by_key(|&i| std::cmp::Reverse(depth(i)));
        // Group by (definition, depth) so that the instances of one block share classes.
        let mut groups: Vec<(&str, usize, Vec<usize>)> = Vec::new();
        for i in order {
            let (block, d) = (gi.insts[i].block.as_str(), depth(i));
            match groups
                .iter_mut()
                .find(|(gb, gdep, _)| *gb == block && *gdep == d)
            {
                Some((_, _, v)) => v.push(i),
                None => groups.push((block, d, vec![i])),
            }
        }
        for (block, _, members) in groups {
            let def_ast = self.src.def(block)?;
            let main = py_ident(
                def_ast
                    .inputs
                    .first()
                    .map(|p| p.name.name.as_str())
                    .unwrap_or("h"),
            );
            // Scope and signature per instance.
            let mut scoped = Vec::new();
            for &i in &members {
                let inst = &gi.insts[i];
                let args: Vec<(NodeId, String)> = inst
                    .externals
                    .iter()
                    .map(|&e| (e, ext_name(g, e, &main, &time_name)))
                    .collect();
                let arg_names: Vec<String> = args.iter().map(|a| a.1.clone()).collect();
                let mut dedup = HashSet::new();
                if arg_names.iter().any(|a| !dedup.insert(a.clone())) {
                    return EmitError::err(format!(
                        "block instance `{}` reads two values that both map to one argument",
                        inst.prefix
                    ));
                }
                let sc = build_scope(gi, Some(i), args, inst.output);
                scoped.push((i, sc));
            }
            // Partition into structurally compatible classes.
            let mut classes: Vec<Vec<usize>> = Vec::new(); // indexes into scoped
            let sigs: Vec<Vec<String>> = scoped
                .iter()
                .map(|(_, sc)| self.scope_sigs(gi, sc, &done, &ode))
                .collect();
            for k in 0..scoped.len() {
                let mut placed = false;
                for c in classes.iter_mut() {
                    if merge_plan(&sigs[c[0]], &sigs[k], &scoped[c[0]].1, &scoped[k].1).is_some()
                        || merge_plan(&sigs[k], &sigs[c[0]], &scoped[k].1, &scoped[c[0]].1)
                            .is_some()
                    {
                        c.push(k);
                        placed = true;
                        break;
                    }
                }
                if !placed {
                    classes.push(vec![k]);
                }
            }
            for c in classes {
                // The representative has the most units.
                let rep = *c
                    .iter()
                    .max_by_key(|&&k| scoped[k].1.units.len())
                    .unwrap_or(&c[0]);
                let members: Vec<&Scope> = c.iter().map(|&k| &scoped[k].1).collect();
                let rep_scope = &scoped[rep].1;
                let mut optional: HashSet<String> = HashSet::new();
                for &k in &c {
                    if let Some(opt) = merge_plan(&sigs[rep], &sigs[k], rep_scope, &scoped[k].1) {
                        optional.extend(opt);
                    }
                }
                let name = self.fresh_class_name(&def_ast.name.name);
                let doc = block_doc(def_ast);
                let ClassBody {
                    params,
                    init,
                    forward,
                    args: args_per,
                } = self.render_class(gi, rep_scope, &members, &optional, &done, &ode)?;
                self.classes.push(Class {
                    name: name.clone(),
                    base: "nn.Module".into(),
                    doc,
                    params,
                    init,
                    methods: vec![forward],
                });
                for (j, &k) in c.iter().enumerate() {
                    done.insert(
                        scoped[k].0,
                        InstClass {
                            class: name.clone(),
                            args: args_per[j].clone(),
                        },
                    );
                }
            }
        }
        Ok((done, ode))
    }

    fn scope_sigs(
        &self,
        gi: &GraphInfo,
        sc: &Scope,
        done: &HashMap<usize, InstClass>,
        ode: &HashMap<NodeId, String>,
    ) -> Vec<String> {
        let pos: HashMap<NodeId, String> = sc
            .units
            .iter()
            .map(|u| (u.out, u.path.clone()))
            .chain(sc.args.iter().map(|(id, n)| (*id, format!("arg:{n}"))))
            .collect();
        sc.units
            .iter()
            .map(|u| {
                let refs: Vec<String> = u
                    .inputs
                    .iter()
                    .map(|i| pos.get(i).cloned().unwrap_or_else(|| "?".into()))
                    .collect();
                self.unit_sig(gi, u, &refs, done, ode)
            })
            .collect()
    }

    /// Builds the class(es) of an ODE function and the ODE block around it; returns the ODE
    /// block's class name.
    fn ode_classes(
        &mut self,
        func: &OdeFunc,
        name: &str,
        t0: f64,
        t1: f64,
        solver: Solver,
    ) -> R<String> {
        let gi = GraphInfo::new(&func.graph, name);
        let (done, ode) = self.instances(&gi)?;
        let def = self.src.def(&func.block)?;
        let def_name = def.name.name.clone();
        let main = def
            .inputs
            .first()
            .map(|p| py_ident(&p.name.name))
            .unwrap_or_else(|| "h".into());
        let time_name = py_ident(&self.model.time.name);
        let args = vec![(func.time, time_name.clone()), (func.input, main.clone())];
        let sc = build_scope(&gi, None, args, func.output);
        let sigs = self.scope_sigs(&gi, &sc, &done, &ode);
        let ClassBody { init, forward, .. } =
            self.render_class(&gi, &sc, &[&sc], &HashSet::new(), &done, &ode)?;
        let fkey = format!("{def_name}|{}|{init:?}|{forward}", sigs.join(";"));
        let fname = match self.by_key.get(&fkey) {
            Some(n) => n.clone(),
            None => {
                let n = self.fresh_class_name(&def_name);
                let def_doc = block_doc(def);
                self.classes.push(Class {
                    name: n.clone(),
                    base: "nn.Module".into(),
                    doc: format!("{def_doc} The right-hand side f(t, h) of an ODE."),
                    params: Vec::new(),
                    init,
                    methods: vec![forward],
                });
                self.by_key.insert(fkey.clone(), n.clone());
                n
            }
        };
        let solver_py = match solver {
            Solver::Euler { steps } => format!("dict(method=\"euler\", steps={steps})"),
            Solver::Rk4 { steps } => format!("dict(method=\"rk4\", steps={steps})"),
            Solver::Dopri5 { rtol, atol } => format!(
                "dict(method=\"dopri5\", rtol={}, atol={})",
                py_float(rtol),
                py_float(atol)
            ),
        };
        let okey = format!("{fname}|{t0}|{t1}|{solver_py}");
        if let Some(n) = self.by_key.get(&okey) {
            return Ok(n.clone());
        }
        let n = self.fresh_class_name(&format!("{fname}_ODE"));
        self.by_key.insert(okey, n.clone());
        let forward = format!(
            "    def forward(self, {main}):\n        return solve_ode(super().forward, {main}, {}, {}, self.solver)\n",
            py_float(t0),
            py_float(t1)
        );
        self.classes.push(Class {
            name: n.clone(),
            base: fname.clone(),
            doc: format!(
                "`ode({def_name}, t = [{t0}, {t1}], solver = {})`: the state at\n    t = {t1} of h' = f(t, h) with h({t0}) = the input.",
                solver_desc(solver)
            ),
            params: Vec::new(),
            init: vec![format!("self.solver = {solver_py}")],
            methods: vec![forward],
        });
        Ok(n)
    }
}

/// Whether `small` is `big` with some single-input layers left out (its optional layers);
/// returns their paths.
fn merge_plan(big: &[String], small: &[String], bs: &Scope, ss: &Scope) -> Option<Vec<String>> {
    if big.len() < small.len() {
        return None;
    }
    let mut j = 0;
    let mut skipped: HashMap<String, String> = HashMap::new();
    let mut optional = Vec::new();
    for (k, sig) in big.iter().enumerate() {
        let u = &bs.units[k];
        let matches_small = j < small.len() && {
            let mut s = sig.clone();
            for (from, to) in &skipped {
                s = s.replace(&format!("({from})"), &format!("({to})"));
                s = s.replace(&format!("({from},"), &format!("({to},"));
                s = s.replace(&format!(",{from})"), &format!(",{to})"));
                s = s.replace(&format!(",{from},"), &format!(",{to},"));
            }
            s == small[j]
        };
        if matches_small {
            j += 1;
            continue;
        }
        // Skippable: a one-input layer whose path the small scope does not have.
        if u.inputs.len() != 1 || ss.units.iter().any(|x| x.path == u.path) {
            return None;
        }
        let UnitKind::Node(_) = u.kind else {
            return None;
        };
        let input_ref = bs
            .units
            .iter()
            .find(|x| x.out == u.inputs[0])
            .map(|x| x.path.clone())
            .or_else(|| {
                bs.args
                    .iter()
                    .find(|a| a.0 == u.inputs[0])
                    .map(|a| format!("arg:{}", a.1))
            })?;
        skipped.insert(u.path.clone(), input_ref);
        optional.push(u.path.clone());
    }
    if j == small.len() {
        Some(optional)
    } else {
        None
    }
}

fn solver_desc(s: Solver) -> String {
    match s {
        Solver::Euler { steps } => format!("euler(steps = {steps})"),
        Solver::Rk4 { steps } => format!("rk4(steps = {steps})"),
        Solver::Dopri5 { rtol, atol } => format!("dopri5(rtol = {rtol}, atol = {atol})"),
    }
}

fn block_doc(d: &BlockDef) -> String {
    let params: Vec<&str> = d.params.iter().map(|p| p.name.name.as_str()).collect();
    let inputs: Vec<&str> = d.inputs.iter().map(|p| p.name.name.as_str()).collect();
    if params.is_empty() {
        format!("`block {}({})`.", d.name.name, inputs.join(", "))
    } else {
        format!(
            "`block {}({})({})`.",
            d.name.name,
            params.join(", "),
            inputs.join(", ")
        )
    }
}
