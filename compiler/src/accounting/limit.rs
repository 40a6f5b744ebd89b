//! The bound on the accounting's work: a model whose every injection stays alive into every
//! later norm costs sites x nodes, so past a limit the accounting stops and claims nothing.

/// The most work one accounting does, in units of one (origin, node) part, whatever the
/// model's size (about 1 GB of parts).
pub const MAX_ACCOUNTING_WORK: usize = 5_000_000;

/// The work one accounting may do per node of the model (ODE functions' nodes included): a
/// model whose every injection stays alive into every later norm needs sites x nodes parts and
/// sites x norms verdicts, which grow as the square of its size while `check` grows linearly;
/// a limit linear in the nodes keeps every accounting under about half a `check` of the same
/// model (a unit costs about 6 ns, `check` about 4 us a node). The reference models need at
/// most 58 units a node (`compiler/tests/lint_growth.rs` holds them under a quarter of their
/// limit); 100 sites of `conv(time = concat) | group | silu` pass it, 150 do not (E303).
pub const WORK_PER_NODE: usize = 400;

/// The work every accounting may do, however small its model (about 1 ms).
pub const MIN_ACCOUNTING_WORK: usize = 200_000;

/// The work limit of one accounting of a model of `nodes` nodes.
pub fn work_limit(nodes: usize) -> usize {
    #[cfg(test)]
    if let Some(l) = TRACK_LIMIT.with(|c| c.get()) {
        return l;
    }
    nodes
        .saturating_mul(WORK_PER_NODE)
        .clamp(MIN_ACCOUNTING_WORK, MAX_ACCOUNTING_WORK)
}

/// The work of one verdict (an origin at a norm) in parts: measured, a part costs about 6 ns to
/// carry through an op and a verdict about 120 ns to state and for the lint's rules to read.
pub const VERDICT_WORK: usize = 20;

/// [`work_limit`] of the nodes of `m`, ODE functions' included.
pub(super) fn model_limit(m: &crate::ir::ModelIr) -> usize {
    let mut nodes = 0usize;
    m.graph.walk(&mut |_, _, _| nodes += 1);
    work_limit(nodes)
}

/// Why an accounting stopped after `limit` units of work, in the words `lint` (E303) and
/// `probe` use.
pub fn work_limit_reason(model: &str, node: &str, limit: usize) -> String {
    format!(
        "the time accounting of model `{model}` stops at `{node}`: its injection sites meet more \
         than {} (site, node) pairs, a norm counting {VERDICT_WORK} ({WORK_PER_NODE} a node of \
         the model, at least {})",
        crate::diagnostics::thousands(limit),
        crate::diagnostics::thousands(MIN_ACCOUNTING_WORK)
    )
}

thread_local! {
    /// Nodes accounted and parts carried on this thread so far ([`work_done`]).
    static DONE: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// The work the accounting has done on this thread so far: nodes accounted, and (origin, node)
/// parts carried. With the bytes parsed, the work measure of the tests that keep lint linear
/// in the size of a model (counted, not timed); the parts grow as sites x nodes where every
/// site's signal stays alive into every later node, up to [`MAX_ACCOUNTING_WORK`].
pub fn work_done() -> (u64, u64) {
    DONE.with(|d| d.get())
}

pub(super) fn count_work(nodes: usize, parts: usize) {
    DONE.with(|d| {
        let (n, p) = d.get();
        d.set((
            n.saturating_add(nodes as u64),
            p.saturating_add(parts as u64),
        ))
    });
}

#[cfg(test)]
thread_local! {
    /// Tests set the limit to reach it with a small model.
    pub(crate) static TRACK_LIMIT: std::cell::Cell<Option<usize>> =
        const { std::cell::Cell::new(None) };
}
