//! The bound on the accounting's work: a model whose every injection stays alive into every
//! later norm costs sites x nodes, so past a limit the accounting stops and claims nothing.

/// The most work one accounting does, in units of one (origin, node) part: a model whose every
/// injection stays alive into every later norm needs sites x nodes parts and sites x norms
/// verdicts, which grow as the square of its size while `check` grows linearly. Past the limit
/// the accounting stops (E303) and nothing of the model is claimed. The reference models and the
/// diffusers UNets need under 15,000 units; 645 sites of `group | scale_shift | silu | conv`
/// reach it.
pub const MAX_ACCOUNTING_WORK: usize = 5_000_000;

/// The work of one verdict (an origin at a norm) in parts: measured, a part costs about 6 ns to
/// carry through an op and a verdict about 120 ns to state and for the lint's rules to read.
pub const VERDICT_WORK: usize = 20;

/// Why an accounting stopped, in the words `lint` (E303) and `probe` use.
pub fn work_limit_reason(model: &str, node: &str) -> String {
    format!(
        "the time accounting of model `{model}` stops at `{node}`: its injection sites meet more \
         than {} (site, node) pairs, a norm counting {VERDICT_WORK}",
        crate::diagnostics::thousands(MAX_ACCOUNTING_WORK)
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
    /// Tests lower the limit to reach it with a small model.
    pub(crate) static TRACK_LIMIT: std::cell::Cell<usize> =
        const { std::cell::Cell::new(MAX_ACCOUNTING_WORK) };
}

pub(super) fn track_limit() -> usize {
    #[cfg(test)]
    return TRACK_LIMIT.with(|c| c.get());
    #[cfg(not(test))]
    MAX_ACCOUNTING_WORK
}
