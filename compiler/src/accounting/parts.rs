//! How one origin's parts combine: sums and concatenations of parts (exact where the parts are
//! uncorrelated), the ops that map a part's exact covariance, and how per-part predictions
//! combine into one origin's and into a norm's total. In: parts and predictions; out: parts
//! and predictions.

use super::cov::Cov;
use super::state::{pool_tiles, Centered, Lin, OriginVerdict, Part, Prediction, Sig};
use crate::ir::{Graph, Node, NodeId, NormKind, Op};
use std::borrow::Cow;
use std::rc::Rc;

pub(super) fn vector_units_align(l: &Lin, kind: NormKind, m: usize) -> bool {
    let hw = l.cov.h * l.cov.w;
    match kind {
        NormKind::Layer | NormKind::Batch | NormKind::PerPosition => true,
        NormKind::Group { groups } => {
            let per = (l.cov.c * hw) / groups.max(1);
            per.is_multiple_of(hw.max(1)) && m > 0
        }
        NormKind::Instance => true,
    }
}

/// Channels `c` and `c + PATTERN_PERIOD` carry the same positional pattern.
pub(super) const PATTERN_PERIOD: usize = 9;

/// The positional pattern `P_c(y, x) = u_c(y) + v_c(x)` as its two factors.
pub(super) fn pattern(c: usize, h: usize, w: usize) -> (Vec<f64>, Vec<f64>) {
    let fy = 1.0 + (c % 3) as f64;
    let fx = 1.0 + ((c / 3) % 3) as f64;
    let u = (0..h)
        .map(|y| (std::f64::consts::PI * fy * (y as f64 + 0.5) / h.max(1) as f64).cos())
        .collect();
    let v = (0..w)
        .map(|x| (std::f64::consts::PI * fx * (x as f64 + 0.5) / w.max(1) as f64).cos())
        .collect();
    (u, v)
}

/// [`Cov::positional`] of the fixed patterns ([`pattern`], period [`PATTERN_PERIOD`]) on `c`
/// channels of `h x w`. Remembered per thread by its size where the maps are small (a model's
/// positional sites, and the re-analyses of its fixes, share a few sizes; forming the products
/// costs far more than copying them), at most 64 sizes at a time.
pub(super) fn positional_cov(c: usize, h: usize, w: usize) -> Rc<Cov> {
    thread_local! {
        static SEEN: Memo<Rc<Cov>> = Memo::default();
    }
    let make = || {
        Rc::new(Cov::positional(c, h, w, PATTERN_PERIOD, |k| {
            pattern(k, h, w)
        }))
    };
    match h.max(w) > 64 || c > 4096 {
        true => make(),
        false => remembered(&SEEN, (c, h, w), 64, make),
    }
}

/// [`Cov::offset`] on `c` channels of `h x w`, shared: remembered per thread by its size (a
/// model's injection sites, and its re-analyses, repeat a few sizes), at most 64 at a time.
pub(super) fn offset_cov(c: usize, h: usize, w: usize) -> Rc<Cov> {
    thread_local! {
        static SEEN: Memo<Rc<Cov>> = Memo::default();
    }
    let make = || Rc::new(Cov::offset(c, h, w));
    match h.max(w) > 64 || c > 4096 {
        true => make(),
        false => remembered(&SEEN, (c, h, w), 64, make),
    }
}

/// Values remembered per thread by a map size `(c, h, w)`.
type Memo<V> = std::cell::RefCell<rustc_hash::FxHashMap<(usize, usize, usize), V>>;

/// `make()`, or the value `seen` holds for `key` (at most `most` held: a full memo is emptied).
fn remembered<V: Clone>(
    seen: &'static std::thread::LocalKey<Memo<V>>,
    key: (usize, usize, usize),
    most: usize,
    make: impl FnOnce() -> V,
) -> V {
    seen.with(|seen| {
        if let Some(v) = seen.borrow().get(&key) {
            return v.clone();
        }
        let v = make();
        let mut seen = seen.borrow_mut();
        if seen.len() >= most {
            seen.clear();
        }
        seen.insert(key, v.clone());
        v
    })
}

pub(super) fn fresh_lin(
    origin: usize,
    cov: Rc<Cov>,
    lineage: (usize, NodeId),
    from_constant: bool,
) -> Part {
    Part {
        origin,
        lin: Some(Box::new(Lin {
            cov,
            lineage,
            scale_known: true,
            from_constant,
            flat: false,
        })),
        inexact: None,
        alive: false,
        centered: None,
        unsure: false,
        flat: from_constant,
        input_free: true,
        scaled_mean_free: false,
    }
}

/// A linear part whose covariance grew past its limits becomes inexact.
pub(super) fn fix_lin(mut p: Part) -> Part {
    if let Some(l) = &p.lin {
        if !l.cov.tractable() {
            p.lin = None;
            p.inexact = Some(false);
        }
    }
    p
}

/// Applies a linear op to a part's exact covariance. An op that leaves less than 1e-12 of the
/// arriving energy has removed it exactly (e.g. a zero-mean pattern pooled globally): the
/// residue is rounding.
pub(super) fn map_lin(p: &Part, centered: Option<Centered>, f: impl Fn(&Lin) -> Lin) -> Part {
    let mut out = Part {
        centered,
        ..p.shell()
    };
    if let Some(l) = &p.lin {
        let before = l.cov.energy();
        let next = f(l);
        out.lin = (next.cov.energy() > 1e-12 * before).then(|| Box::new(next));
    }
    fix_lin(out)
}

/// A part of `origin` that went through a nonlinearity (no number, nonzero unless `unsure`).
pub(super) fn alive_part(origin: usize, unsure: bool) -> Part {
    Part {
        origin,
        lin: None,
        inexact: None,
        alive: true,
        centered: None,
        unsure,
        flat: false,
        input_free: false,
        scaled_mean_free: false,
    }
}

pub(super) fn to_alive(p: &Part) -> Part {
    alive_part(p.origin, p.unsure)
}

/// Sum of two parts of one origin.
pub(super) fn combine_sum(a: Part, b: Part) -> Part {
    let (lin, demoted) = match (a.lin, b.lin) {
        (Some(x), Some(y)) => {
            if x.lineage != y.lineage && x.scale_known && y.scale_known && x.flat == y.flat {
                (
                    Some(Box::new(Lin {
                        cov: Rc::new(x.cov.add(&y.cov)),
                        from_constant: x.from_constant && y.from_constant,
                        ..*x
                    })),
                    false,
                )
            } else {
                (None, true)
            }
        }
        (x, y) => (x.or(y), false),
    };
    let inexact = match (a.inexact, b.inexact) {
        (Some(x), Some(y)) => Some(x && y && !demoted),
        (x, y) => x.or(y).map(|v| v && !demoted).or(demoted.then_some(false)),
    };
    let centered = match (a.centered, b.centered) {
        (Some(x), Some(y)) if x == y => Some(x),
        _ => None,
    };
    fix_lin(Part {
        origin: a.origin,
        lin,
        inexact,
        alive: a.alive || b.alive,
        centered,
        unsure: a.unsure && b.unsure,
        flat: a.flat && b.flat,
        input_free: a.input_free && b.input_free,
        scaled_mean_free: false,
    })
}

/// One origin's part arriving at input `k` of a concatenation.
pub(super) type InputPart = (usize, Option<Part>);

/// Concatenation of one origin's parts from several inputs (`k` = input index).
pub(super) fn concat_parts(
    origin: usize,
    parts: &[InputPart],
    widths: &[usize],
    (h, w): (usize, usize),
) -> Part {
    let mut lins: Vec<(usize, &Lin)> = Vec::new();
    let mut inexact: Option<bool> = None;
    let mut alive = false;
    let mut unsure = true;
    let (mut flat, mut input_free) = (true, true);
    // Per-channel mean-freeness survives placing channels side by side (absent inputs are 0).
    let mut centered: Option<Option<Centered>> = None;
    for (k, p) in parts {
        let Some(p) = p else { continue };
        if let Some(l) = &p.lin {
            lins.push((*k, l));
        }
        if let Some(scale) = p.inexact {
            // A per-channel scale stays one when channels are only placed side by side.
            inexact = Some(inexact.unwrap_or(true) && scale);
        }
        alive |= p.alive;
        unsure &= p.unsure;
        flat &= p.flat;
        input_free &= p.input_free;
        let c = p.centered.filter(|c| c.m <= 1);
        centered = Some(match centered {
            None => c,
            Some(prev) if prev == c => c,
            Some(_) => None,
        });
    }
    let distinct = lins
        .iter()
        .enumerate()
        .all(|(i, a)| lins.iter().skip(i + 1).all(|b| a.1.lineage != b.1.lineage));
    let exact = distinct
        && !lins.iter().any(|l| l.1.flat)
        && (lins.len() <= 1 || lins.iter().all(|l| l.1.scale_known));
    let lin = if lins.is_empty() {
        None
    } else if exact {
        let slots: Vec<(usize, Option<&Cov>)> = widths
            .iter()
            .enumerate()
            .map(|(k, &c)| (c, lins.iter().find(|l| l.0 == k).map(|l| &*l.1.cov)))
            .collect();
        let first = lins[0].1;
        Some(Box::new(Lin {
            from_constant: lins.iter().all(|l| l.1.from_constant),
            ..first.with_cov(Cov::concat(&slots, h, w))
        }))
    } else {
        inexact = Some(false);
        None
    };
    fix_lin(Part {
        origin,
        lin,
        inexact,
        alive,
        centered: centered.flatten(),
        unsure,
        flat,
        input_free,
        scaled_mean_free: false,
    })
}

/// Merges parts of the same origin with `f`, sorted by origin.
pub(super) fn merge(mut v: Vec<Part>, f: impl Fn(Part, Part) -> Part) -> Vec<Part> {
    // Most nodes pass on one part per origin in order: nothing to merge.
    if v.windows(2).all(|w| w[0].origin < w[1].origin) {
        return v;
    }
    v.sort_by_key(|p| p.origin);
    let mut out: Vec<Part> = Vec::with_capacity(v.len());
    for p in v {
        match out.last() {
            Some(last) if last.origin == p.origin => {
                let last = out.pop().expect("checked");
                out.push(f(last, p));
            }
            _ => out.push(p),
        }
    }
    out
}

pub(super) fn finish(v: Vec<Part>) -> Sig {
    let v: Vec<Part> = v
        .into_iter()
        .filter(|p| p.lin.is_some() || p.inexact.is_some() || p.alive)
        .collect();
    if v.is_empty() {
        Sig::Independent
    } else {
        Sig::Depends(v)
    }
}

/// One origin's prediction from its parts' (their weights are unknown, and parts of one origin
/// may be correlated, so only zero, one number, or "nonzero" combine).
pub(super) fn combine_predictions(p: &[Prediction]) -> Prediction {
    if p.contains(&Prediction::Unknown) {
        Prediction::Unknown
    } else if p.iter().all(|x| x.is_zero()) {
        Prediction::Zero
    } else if p.len() == 1 {
        p[0]
    } else {
        Prediction::Nonzero
    }
}

/// All origins changed together. Different origins' changes are uncorrelated (independent
/// weights), so where every origin arrives as an exact linear change the total is a convex
/// combination of theirs; otherwise only zero or "nonzero" is backed.
pub(super) fn total(v: &[OriginVerdict], lin_only: bool) -> Prediction {
    let preds: Vec<Prediction> = v.iter().map(|o| o.prediction).collect();
    if preds.iter().all(|p| p.is_zero()) {
        return Prediction::Zero;
    }
    if preds.contains(&Prediction::Unknown) {
        return Prediction::Unknown;
    }
    if preds.len() == 1 {
        return preds[0];
    }
    if !lin_only {
        return Prediction::Nonzero;
    }
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for p in &preds {
        match *p {
            Prediction::Zero => {
                lo = lo.min(0.0);
                hi = hi.max(0.0);
            }
            Prediction::Exact { fraction } => {
                lo = lo.min(fraction);
                hi = hi.max(fraction);
            }
            Prediction::Between { low, high } => {
                lo = lo.min(low);
                hi = hi.max(high);
            }
            _ => return Prediction::Nonzero,
        }
    }
    if hi - lo < 1e-12 {
        Prediction::Exact { fraction: hi }
    } else {
        Prediction::Between { low: lo, high: hi }
    }
}

/// Whether `n` keeps a feature-shaped change that is mean-free over H, W per sample and channel
/// so (a scale-shift scales each channel; the others move or mix values within a channel's
/// map without breaking its zero sum); every other op ends what [`Part::scaled_mean_free`]
/// claims.
pub(super) fn keeps_scaled_mean_free(n: &Node, g: &Graph) -> bool {
    match &n.op {
        Op::ScaleShift { .. }
        | Op::Dropout { .. }
        | Op::Upsample { .. }
        | Op::Pad { .. }
        // Other origins' parts pass a sum or an injection unchanged (parts of one origin
        // arriving on two inputs combine as not mean-free).
        | Op::Add
        | Op::Inject { .. } => true,
        Op::Conv { k, stride, pad, .. } => *k == 1 && *stride == 1 && *pad == 0,
        Op::AvgPool { k, stride } => pool_tiles(n, g, *k, *stride),
        _ => false,
    }
}

/// The part an average over whole maps leaves of `p`: a feature-shaped change mean-free per
/// channel averages to zero, leaving the exact linear part (the same for every sample).
/// Most parts pass as they are (borrowed: the pool's own transfer copies them).
pub(super) fn pooled_whole(p: &Part) -> Option<Cow<'_, Part>> {
    if !(p.scaled_mean_free && p.inexact.is_some() && !p.alive) {
        return Some(Cow::Borrowed(p));
    }
    p.lin.as_ref().map(|_| {
        Cow::Owned(Part {
            inexact: None,
            input_free: true,
            flat: true,
            scaled_mean_free: false,
            ..p.clone()
        })
    })
}

/// Whether every channel's positional pattern sums to zero over the `h x w` plane.
/// Remembered per thread by the size (the cosines cost more than the lookup).
pub(super) fn zero_mean_patterns(c: usize, h: usize, w: usize) -> bool {
    thread_local! {
        static SEEN: Memo<bool> = Memo::default();
    }
    let key = (c.min(PATTERN_PERIOD), h, w);
    remembered(&SEEN, key, 256, || {
        (0..key.0).all(|ch| {
            let (u, v) = pattern(ch, h, w);
            let su: f64 = u.iter().sum();
            let sv: f64 = v.iter().sum();
            (su * w as f64 + sv * h as f64).abs() < 1e-9 * (h * w) as f64
        })
    })
}

/// A part multiplied by a random factor of unknown mean square (a scale-shift's `1 + s`, a
/// division by t): its structure stays, its scale is no longer known, and it stays mean-free
/// only on the units `keep` accepts.
pub(super) fn rescaled(p: &Part, keep: impl Fn(&Centered) -> bool) -> Part {
    Part {
        lin: p.lin.clone().map(|mut l| {
            l.scale_known = false;
            l
        }),
        centered: p.centered.filter(keep),
        ..p.shell()
    }
}

/// Each node's last consumer (itself when none reads it), and whether its parts are read after
/// the graph is accounted (a norm's input, for `norm_as`; the graph's output): the parts of the
/// others can be dropped once their last consumer has read them.
pub(super) fn last_uses(g: &Graph, output: NodeId) -> (Vec<usize>, Vec<bool>) {
    let mut last_use: Vec<usize> = (0..g.nodes.len()).collect();
    let mut keep = vec![false; g.nodes.len()];
    for (id, n) in g.nodes.iter().enumerate() {
        for &i in &n.inputs {
            if let Some(l) = last_use.get_mut(i) {
                *l = (*l).max(id);
            }
        }
        if let (Op::Norm { .. }, Some(&i)) = (&n.op, n.inputs.first()) {
            keep[i] = true;
        }
    }
    if let Some(k) = keep.get_mut(output) {
        *k = true;
    }
    (last_use, keep)
}
