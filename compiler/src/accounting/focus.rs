//! What [`super::account_pairs`] follows: per origin path, the norms it has still to reach;
//! an origin's parts are carried until it has reached all of them, and not at all when no
//! pair names it.

pub(crate) struct Focus {
    /// (origin path, the norm paths it has still to reach)
    pending: Vec<(String, Vec<String>)>,
    /// Per origin registered so far: its entry in `pending`.
    of_origin: Vec<Option<usize>>,
}

impl Focus {
    /// The focus on `pairs` (origin path, norm path).
    pub(super) fn new(pairs: &[(String, String)]) -> Focus {
        let mut pending: Vec<(String, Vec<String>)> = Vec::new();
        for (o, n) in pairs {
            match pending.iter_mut().find(|(x, _)| x == o) {
                Some((_, norms)) => norms.push(n.clone()),
                None => pending.push((o.clone(), vec![n.clone()])),
            }
        }
        Focus {
            pending,
            of_origin: Vec::new(),
        }
    }

    /// Registers the next origin (the accounting's origins in order), made at node `path`.
    pub(super) fn origin(&mut self, path: &str) {
        let k = self.pending.iter().position(|(o, _)| o == path);
        self.of_origin.push(k);
    }

    /// Origin `o` has reached the norm `norm`.
    pub(super) fn reached(&mut self, o: usize, norm: &str) {
        if let Some(k) = self.of_origin.get(o).copied().flatten() {
            self.pending[k].1.retain(|x| x != norm);
        }
    }

    /// Whether origin `o`'s parts are still needed.
    pub(super) fn follows(&self, o: usize) -> bool {
        let entry = self.of_origin.get(o).copied().flatten();
        entry.is_some_and(|k| !self.pending[k].1.is_empty())
    }
}
