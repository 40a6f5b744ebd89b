//! Lowering checks: a checked [`ModelIr`] and a batch size in; either a go-ahead with the
//! estimated memory, or a diagnostic (E3xx) with the span of what the runtime cannot run, found
//! before anything is allocated. Also the cost model behind `tdspec compile --summary`:
//! multiply-accumulates per forward and per ODE function evaluation, activation memory; and
//! [`run_once`], which builds the parameters on a device and runs the graph to prove it executes.

use crate::exec::{Exec, Value};
use crate::ops::Kernels;
use crate::params::Params;
use crate::RuntimeError;
use dfdx::tensor::NoneTape;
use tdspec_compiler::ast::Span;
use tdspec_compiler::diagnostics::Diagnostic;
use tdspec_compiler::ir::{Graph, ModelIr, Op, ParamInfo, Shape, TimeChannel};

/// Memory the runtime will not plan past (bytes), unless the caller raises it.
pub const DEFAULT_MEMORY_LIMIT: u64 = 16 << 30;

/// What a forward pass costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Cost {
    /// Multiply-accumulates per sample for one forward pass, counting each ODE block with the
    /// number of function evaluations of its fixed-step solver (adaptive solvers: one NFE).
    pub macs_per_sample: u64,
    /// Multiply-accumulates per sample of one ODE function evaluation (0 without ODE blocks).
    pub macs_per_nfe: u64,
    /// Function evaluations per ODE solve for fixed-step solvers; `None` when adaptive.
    pub nfe_per_solve: Option<u64>,
    /// f32 values of all activations kept for backward, per sample.
    pub activations_per_sample: u64,
}

fn node_macs(op: &Op, out: &Shape, input: Option<&Shape>) -> u64 {
    let o = out.numel() as u64;
    match *op {
        Op::Conv {
            cin,
            k,
            groups,
            time,
            ..
        } => {
            let extra = u64::from(time != TimeChannel::None);
            o * ((cin as u64 + extra) / groups.max(1) as u64) * (k * k) as u64
        }
        Op::Linear { din, .. } => o * din as u64,
        Op::Inject { din, channels, .. } => (din * channels) as u64 + o,
        Op::ScaleShift { din, channels } => (din * 2 * channels) as u64 + 2 * o,
        Op::Attention { channels, .. } => {
            let n = (out.numel() / channels.max(1)) as u64;
            let c = channels as u64;
            // qkv + proj 1x1 convs, q^T k and the weighted sum of v.
            4 * c * c * n + 2 * n * n * c
        }
        Op::Norm { .. } | Op::Act { .. } | Op::Add | Op::Dropout { .. } => o,
        Op::AvgPool { k, .. } => o * (k * k) as u64,
        Op::GlobalAvgPool => input.map(|s| s.numel() as u64).unwrap_or(o),
        _ => 0,
    }
}

fn graph_cost(g: &Graph) -> (u64, u64, u64, Option<u64>) {
    let mut macs = 0u64;
    let mut acts = 0u64;
    let mut nfe_macs = 0u64;
    let mut nfe: Option<u64> = None;
    for n in &g.nodes {
        let input = n.inputs.first().map(|&i| &g.nodes[i].shape);
        macs = macs.saturating_add(node_macs(&n.op, &n.shape, input));
        acts = acts.saturating_add(n.shape.numel() as u64);
        if let Op::Ode { func, solver, .. } = &n.op {
            let (fm, fa, _, _) = graph_cost(&func.graph);
            let evals = match solver {
                tdspec_compiler::ir::Solver::Euler { steps } => Some(*steps as u64),
                tdspec_compiler::ir::Solver::Rk4 { steps } => Some(4 * *steps as u64),
                tdspec_compiler::ir::Solver::Dopri5 { .. } => None,
            };
            let e = evals.unwrap_or(1);
            macs = macs.saturating_add(fm.saturating_mul(e));
            acts = acts.saturating_add(fa.saturating_mul(e));
            nfe_macs = nfe_macs.saturating_add(fm);
            nfe = evals;
        }
    }
    (macs, acts, nfe_macs, nfe)
}

/// The cost model of a model.
pub fn cost(m: &ModelIr) -> Cost {
    let (macs, acts, nfe_macs, nfe) = graph_cost(&m.graph);
    Cost {
        macs_per_sample: macs,
        macs_per_nfe: nfe_macs,
        nfe_per_solve: nfe,
        activations_per_sample: acts,
    }
}

/// Checks that the runtime can run `m` at `batch` within `memory_limit` bytes.
pub fn check(m: &ModelIr, batch: usize, memory_limit: u64) -> Result<Cost, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let c = cost(m);
    let params = m.param_count() as u64;
    // Activations are kept for backward; gradients and Adam moments triple the parameters.
    let bytes = 4u64.saturating_mul(
        c.activations_per_sample
            .saturating_mul(batch as u64)
            .saturating_mul(2)
            .saturating_add(params.saturating_mul(4)),
    );
    if bytes > memory_limit {
        diags.push(
            Diagnostic::error(
                "E302",
                format!(
                    "a batch of {batch} needs about {:.1} GiB, more than the {:.1} GiB limit",
                    bytes as f64 / (1u64 << 30) as f64,
                    memory_limit as f64 / (1u64 << 30) as f64
                ),
            )
            .with_primary(
                if m.span.is_empty() {
                    Span::new(0, 0)
                } else {
                    Span::new(m.span.start, m.span.start + 5)
                },
                "this model",
            )
            .with_help("use a smaller batch or raise the limit with --memory-limit"),
        );
    }
    if diags.is_empty() {
        Ok(c)
    } else {
        Err(diags)
    }
}

/// Initializes the parameters of `m` on `dev` and runs the graph once on a zero batch of 1:
/// proves it lowers and executes there. Returns the parameter descriptions and the solver's
/// function evaluations.
pub fn run_once<D: Kernels>(m: &ModelIr, dev: &D) -> Result<(Vec<ParamInfo>, usize), RuntimeError> {
    let params = Params::init(m, dev, 0);
    let x = dev.zeros_like(&(1usize, m.input.channels, m.input.height, m.input.width));
    let mut ex = Exec::new(&params, false);
    ex.run(
        &m.graph,
        &[m.output],
        Value::Image(x),
        &[m.time.range().0 as f32],
        NoneTape,
    )?;
    let nfe = ex.nfe;
    drop(ex);
    Ok((params.list.into_iter().map(|p| p.info).collect(), nfe))
}

/// The plan check of [`check`] before anything is allocated: `Err` with E302's message when a
/// batch of `batch` would not fit in [`DEFAULT_MEMORY_LIMIT`].
pub fn ensure_fits(m: &ModelIr, batch: usize) -> Result<(), crate::RuntimeError> {
    check(m, batch, DEFAULT_MEMORY_LIMIT)
        .map(|_| ())
        .map_err(|d| {
            let why: Vec<String> = d.iter().map(|d| d.message.clone()).collect();
            crate::RuntimeError::TooLarge(format!("{}: {}", m.name, why.join("; ")))
        })
}
