//! `ode(func, t, solver)`: an ODE block whose right-hand side is a block, with the integration
//! interval and the solver (`euler(steps)`, `rk4(steps)`, `dopri5(rtol, atol)`).

use super::builder::Layer;
use crate::ast::{self, Expr, ExprKind};
use crate::diagnostics::Diagnostic;
use crate::ir::{NodeId, OdeFunc, Op, Shape, Solver};
use crate::sema::state::{src_word, GraphCtx, Scope, Sema};
use crate::sema::values::ConfigRef;

/// `ode(func, t = [0, 1], solver = dopri5(rtol = 1e-3, atol = 1e-3))`: the function's block
/// expanded into a graph of its own (state `h` and t in, the derivative out, the state's shape).
pub(super) fn ode(s: &mut Sema, l: Layer) -> Option<NodeId> {
    let (def, input, _, c, name) = l.parts();
    let a = s.bind_op(def, c)?;
    let fexpr = a[0]?;
    let (fname, fspan, fcall) = match &fexpr.kind {
        ExprKind::Ident(n) => (n.clone(), fexpr.span, None),
        ExprKind::Call(fc) => (fc.name.name.clone(), fc.name.span, Some(fc.clone())),
        _ => (String::new(), fexpr.span, None),
    };
    let Some(def) = s.blocks.get(fname.as_str()).copied() else {
        let blocks: Vec<String> = s.blocks.keys().cloned().collect();
        s.err(
            Diagnostic::error("E108", format!("unknown block `{fname}`"))
                .with_primary(fspan, "the ODE function must be a block")
                .suggest(&fname, blocks.iter().map(String::as_str))
                .or_help("define it with `block f(h) { ... }`"),
        );
        return None;
    };
    let (t0, t1) = match a[1] {
        Some(e) => {
            let ExprKind::List(items) = &e.kind else {
                s.err(
                    Diagnostic::error("E201", "the integration interval is `[t0, t1]`")
                        .with_primary(e.span, format!("found {}", e.describe())),
                );
                return None;
            };
            if items.len() != 2 {
                s.err(
                    Diagnostic::error(
                        "E201",
                        format!("the integration interval has 2 ends, found {}", items.len()),
                    )
                    .with_primary(e.span, "expected `[t0, t1]`"),
                );
                return None;
            }
            let t0 = s.number(&items[0], "the start time")?;
            let t1 = s.number(&items[1], "the end time")?;
            if t0 == t1 {
                s.err(
                    Diagnostic::error("E202", "the integration interval is empty")
                        .with_primary(e.span, "t0 equals t1"),
                );
                return None;
            }
            (t0, t1)
        }
        None => (0.0, 1.0),
    };
    let solver = match a[2] {
        Some(e) => s.solver(e)?,
        None => Solver::Dopri5 {
            rtol: 1e-3,
            atol: 1e-3,
        },
    };
    let state = s.node_shape(input);
    if matches!(state, Shape::Time) {
        return s.needs_image(c, state);
    }
    // Build the function graph.
    let floor = s.scopes.len();
    let mut ctx = GraphCtx::new(name.clone(), floor);
    ctx.time_range = Some((t0.min(t1), t0.max(t1)));
    s.graphs.push(ctx);
    s.scopes.push(Scope::new(name.clone(), c.span));
    let h = s.push_raw(Op::Input, vec![], state, format!("{name}.h"), c.span);
    let t = s.time_node();
    let call = fcall.unwrap_or(ast::Call {
        name: ast::Ident {
            name: fname.clone(),
            span: fspan,
        },
        args: vec![],
        span: fspan,
    });
    let out = s.expand_block(def, &call, h, name.clone(), false);
    s.scopes.pop();
    let ctx = s.graphs.pop()?;
    let out = out?;
    let t = t?;
    let out_shape = ctx.graph.nodes[out].shape;
    if out_shape != state {
        s.err(
            Diagnostic::error(
                "E208",
                format!(
                    "an ODE function must keep its state's shape {state}, but returns {out_shape}"
                ),
            )
            .with_primary(fexpr.span, "changes the shape")
            .with_secondary(def.name.span, "function defined here")
            .with_help("keep the channels and resolution inside the ODE function"),
        );
        return None;
    }
    let func = OdeFunc {
        block: def.name.name.clone(),
        graph: ctx.graph,
        input: h,
        time: t,
        output: out,
    };
    let op = Op::Ode {
        func: Box::new(func),
        t0,
        t1,
        solver,
    };
    Some(s.push_raw(op, vec![input], state, name, c.span))
}

impl<'a> Sema<'a> {
    fn solver(&mut self, e: &Expr) -> Option<Solver> {
        let cfg = self.config(e)?;
        let owned;
        let call = match &cfg {
            ConfigRef::Call(c) => (*c).clone(),
            ConfigRef::Owned(Expr {
                kind: ExprKind::Call(c),
                ..
            }) => c.clone(),
            ConfigRef::Owned(other) => {
                owned = ast::Call {
                    name: ast::Ident {
                        name: src_word(other),
                        span: other.span,
                    },
                    args: vec![],
                    span: other.span,
                };
                owned
            }
            ConfigRef::Word(w, sp) => ast::Call {
                name: ast::Ident {
                    name: w.clone(),
                    span: *sp,
                },
                args: vec![],
                span: *sp,
            },
        };
        match call.name.name.as_str() {
            "euler" | "rk4" => {
                let a = self.bind_args(&call, &["steps"], 0)?;
                let steps = a[0]
                    .map(|e| self.positive(e, "the number of solver steps"))
                    .unwrap_or(Some(4))?;
                Some(if call.name.name == "euler" {
                    Solver::Euler { steps }
                } else {
                    Solver::Rk4 { steps }
                })
            }
            "dopri5" => {
                let a = self.bind_args(&call, &["rtol", "atol"], 0)?;
                let rtol = a[0].map(|e| self.float(e)).unwrap_or(Some(1e-3))?;
                let atol = a[1].map(|e| self.float(e)).unwrap_or(Some(1e-3))?;
                if rtol <= 0.0 || atol <= 0.0 {
                    self.err(
                        Diagnostic::error("E202", "solver tolerances must be positive")
                            .with_primary(call.span, "non-positive tolerance"),
                    );
                    return None;
                }
                Some(Solver::Dopri5 { rtol, atol })
            }
            other => {
                self.err(
                    Diagnostic::error("E202", format!("unknown solver `{other}`"))
                        .with_primary(call.name.span, "expected `euler`, `rk4` or `dopri5`")
                        .suggest(other, ["euler", "rk4", "dopri5"]),
                );
                None
            }
        }
    }
}
