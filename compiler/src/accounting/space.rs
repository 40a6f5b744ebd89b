//! Which positions of a feature map hold equal values, for any input, weights and t: per axis,
//! a class per row and per column, such that the value at `(y, x)` (in every channel and
//! sample) is a function of the row's class and the column's class. A map whose rows share one
//! class and whose columns share one class is constant over H, W, and so is every change of it.
//! In: a node and its inputs' classes; out: the node's classes. The accounting's "constant
//! over H, W" (`flat_space`) is [`Classes::flat`], with what the values alone show (zeros, a
//! convolution that sees only padding) made one class.
//!
//! The classes are separable because every op acts on the two axes independently: a
//! convolution's output at `(y, x)` depends on the sequences of classes its taps read along each
//! axis (zero padding is a class of its own, holding 0), an average pool's on the multisets it
//! averages, an up-sampling's on the source row and column; per-position and per-channel ops
//! (activations, norms, scale-shifts, offsets, attention, whose context is the same for every
//! position) keep them; a sum or concatenation is equal where all its inputs are.

use super::state::spatial;
use crate::ir::{InjectMode, Node, Op, TimeChannel};
use std::rc::Rc;

/// Zero padding: a class of its own (the value 0).
const PAD: u32 = u32::MAX;

/// The classes of a node's rows and columns.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Classes {
    // Shared: most ops pass their input's classes on unchanged.
    rows: Rc<Vec<u32>>,
    cols: Rc<Vec<u32>>,
}

/// Numbers keys by first appearance: equal keys, equal classes.
fn canon<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K>) -> Vec<u32> {
    let mut ids: rustc_hash::FxHashMap<K, u32> = Default::default();
    keys.map(|k| {
        let next = ids.len() as u32;
        *ids.entry(k).or_insert(next)
    })
    .collect()
}

fn at(cls: &[u32], i: isize) -> u32 {
    if i < 0 || i as usize >= cls.len() {
        PAD
    } else {
        cls[i as usize]
    }
}

/// Whether every position is its own class (numbered in order, as [`canon`] numbers them).
fn distinct(cls: &[u32]) -> bool {
    cls.iter().enumerate().all(|(i, &c)| c as usize == i)
}

/// A convolution along one axis: the ordered classes its `k` taps read.
fn conv_axis(cls: &[u32], k: usize, s: usize, p: usize, n_out: usize) -> Vec<u32> {
    if distinct(cls) {
        // Windows of distinct positions differ unless both read only padding.
        let n = cls.len();
        let (mut next, mut blind) = (0u32, None);
        return (0..n_out)
            .map(|q| {
                let lo = q * s;
                if lo + k <= p || lo >= p + n {
                    *blind.get_or_insert_with(|| {
                        next += 1;
                        next - 1
                    })
                } else {
                    next += 1;
                    next - 1
                }
            })
            .collect();
    }
    if k == 0 {
        return vec![0; n_out];
    }
    // The windows side by side in one buffer, each numbered by its slice.
    let taps: Vec<u32> = (0..n_out)
        .flat_map(|q| (0..k).map(move |d| (q * s + d) as isize - p as isize))
        .map(|i| at(cls, i))
        .collect();
    canon(taps.chunks(k))
}

/// [`conv_axis`], remembered per thread for the last few axes and geometries (`[k, s, p,
/// n_out]`): a network's convolutions mostly read maps of the same classes (a UNet level's
/// every conv, each re-analysis of a model). An entry holds its axis, so a match by pointer is
/// a match by value.
fn conv_axis_seen(cls: &Rc<Vec<u32>>, geo: [usize; 4]) -> Rc<Vec<u32>> {
    type Seen = std::cell::RefCell<Vec<(Rc<Vec<u32>>, [usize; 4], Rc<Vec<u32>>)>>;
    thread_local! {
        static SEEN: Seen = const { std::cell::RefCell::new(Vec::new()) };
    }
    SEEN.with(|seen| {
        let same = |c: &Rc<Vec<u32>>| Rc::ptr_eq(c, cls) || **c == **cls;
        if let Some((.., out)) = seen.borrow().iter().find(|(c, g, _)| *g == geo && same(c)) {
            return out.clone();
        }
        let [k, s, p, n_out] = geo;
        let out = Rc::new(conv_axis(cls, k, s, p, n_out));
        let mut seen = seen.borrow_mut();
        if seen.len() >= 16 {
            seen.remove(0);
        }
        seen.push((cls.clone(), geo, out.clone()));
        out
    })
}

/// An average pool along one axis: the multiset of classes in its window.
fn pool_axis(cls: &[u32], k: usize, s: usize, n_out: usize) -> Vec<u32> {
    if distinct(cls) && (n_out.saturating_sub(1)) * s + k <= cls.len() {
        // Windows inside the map, of distinct positions: different windows, different sets.
        return (0..n_out as u32).collect();
    }
    canon((0..n_out).map(|q| {
        let mut w: Vec<u32> = (0..k).map(|d| at(cls, (q * s + d) as isize)).collect();
        w.sort_unstable();
        w
    }))
}

impl Classes {
    /// Every position its own class (nothing is known).
    fn distinct(h: usize, w: usize) -> Self {
        Classes {
            rows: Rc::new((0..h as u32).collect()),
            cols: Rc::new((0..w as u32).collect()),
        }
    }

    /// One class (a value constant over the map).
    pub(super) fn same(h: usize, w: usize) -> Self {
        Classes {
            rows: Rc::new(vec![0; h]),
            cols: Rc::new(vec![0; w]),
        }
    }

    /// Whether the value is constant over H, W.
    pub(super) fn flat(&self) -> bool {
        let one = |v: &[u32]| v.iter().all(|&c| c == v[0]);
        one(&self.rows) && one(&self.cols)
    }

    /// The classes of node `n`, from its inputs' (`input(k)`: `None` for a non-image input).
    pub(super) fn of<'a>(n: &Node, input: impl Fn(usize) -> Option<&'a Classes>) -> Classes {
        let (_, h, w) = spatial(&n.shape);
        let fits = |c: &Classes| c.rows.len() == h && c.cols.len() == w;
        // What an op that keeps positions apart leaves (its first input's classes).
        let keep = || match input(0) {
            Some(c) if fits(c) => c.clone(),
            _ => Classes::distinct(h, w),
        };
        match &n.op {
            Op::Input | Op::Ode { .. } => Classes::distinct(h, w),
            Op::Conv {
                k,
                stride,
                pad,
                time,
                ..
            } => match input(0) {
                Some(c) if *time != TimeChannel::Positional => Classes {
                    rows: conv_axis_seen(&c.rows, [*k, *stride, *pad, h]),
                    cols: conv_axis_seen(&c.cols, [*k, *stride, *pad, w]),
                },
                _ => Classes::distinct(h, w),
            },
            Op::AvgPool { k, stride } => match input(0) {
                Some(c) => Classes {
                    rows: Rc::new(pool_axis(&c.rows, *k, *stride, h)),
                    cols: Rc::new(pool_axis(&c.cols, *k, *stride, w)),
                },
                None => Classes::distinct(h, w),
            },
            Op::Upsample { factor } => match input(0) {
                Some(c) => {
                    let up = |v: &[u32], n: usize| -> Vec<u32> {
                        (0..n)
                            .map(|q| at(v, (q / (*factor).max(1)) as isize))
                            .collect()
                    };
                    Classes {
                        rows: Rc::new(canon(up(&c.rows, h).into_iter())),
                        cols: Rc::new(canon(up(&c.cols, w).into_iter())),
                    }
                }
                None => Classes::distinct(h, w),
            },
            Op::Pad { before, .. } => match input(0) {
                Some(c) => {
                    let pad = |v: &[u32], n: usize| -> Vec<u32> {
                        canon((0..n).map(|q| at(v, q as isize - *before as isize)))
                    };
                    Classes {
                        rows: Rc::new(pad(&c.rows, h)),
                        cols: Rc::new(pad(&c.cols, w)),
                    }
                }
                None => Classes::distinct(h, w),
            },
            Op::Inject {
                mode: InjectMode::Positional,
                ..
            } => Classes::distinct(h, w),
            Op::Act { .. }
            | Op::Dropout { .. }
            | Op::Norm { .. }
            | Op::ScaleShift { .. }
            | Op::DivTime
            | Op::Inject { .. }
            | Op::Attention { .. } => keep(),
            Op::Add | Op::Concat => {
                // Equal where every image input is; a vector input is the same everywhere.
                let ins: Vec<&Classes> = (0..n.inputs.len())
                    .filter_map(&input)
                    .filter(|c| fits(c))
                    .collect();
                // Most sums add maps of the same classes (a residual): those pass on.
                let axis = |get: fn(&Classes) -> &Rc<Vec<u32>>, n: usize| -> Rc<Vec<u32>> {
                    match ins.first() {
                        None => Rc::new(vec![0; n]),
                        Some(first) if ins.iter().all(|c| get(c) == get(first)) => {
                            get(first).clone()
                        }
                        Some(_) => Rc::new(canon(
                            (0..n).map(|i| ins.iter().map(|c| get(c)[i]).collect::<Vec<_>>()),
                        )),
                    }
                };
                Classes {
                    rows: axis(|c| &c.rows, h),
                    cols: axis(|c| &c.cols, w),
                }
            }
            // Vectors and 1 x 1 maps.
            Op::Time
            | Op::Sinusoidal { .. }
            | Op::LearnedTime { .. }
            | Op::Fourier { .. }
            | Op::ClassEmbed { .. }
            | Op::Linear { .. }
            | Op::Flatten
            | Op::GlobalAvgPool => Classes::same(h, w),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcuts for maps of distinct positions number classes as the general rule does.
    #[test]
    fn shortcuts_agree_with_the_tap_sequences() {
        for n in 1..9usize {
            let cls: Vec<u32> = (0..n as u32).collect();
            for k in 1..6 {
                for s in 1..4 {
                    for p in 0..4 {
                        let n_out = (n + 2 * p).saturating_sub(k) / s + 1;
                        if n + 2 * p < k {
                            continue;
                        }
                        let slow = canon((0..n_out).map(|q| {
                            (0..k)
                                .map(|d| at(&cls, (q * s + d) as isize - p as isize))
                                .collect::<Vec<u32>>()
                        }));
                        assert_eq!(conv_axis(&cls, k, s, p, n_out), slow, "{n} {k} {s} {p}");
                    }
                    if k <= n {
                        let n_out = (n - k) / s + 1;
                        let slow = canon((0..n_out).map(|q| {
                            let mut w: Vec<u32> =
                                (0..k).map(|d| at(&cls, (q * s + d) as isize)).collect();
                            w.sort_unstable();
                            w
                        }));
                        assert_eq!(pool_axis(&cls, k, s, n_out), slow, "{n} {k} {s}");
                    }
                }
            }
        }
    }
}
