//! Second moments of a linear time change, exact at initialization. In: the covariance of one
//! origin's change `Δ` at a node; out: its covariance after a convolution, linear map, pooling,
//! up-sampling, concatenation or sum, and the energy a normalization's mean subtraction keeps.
//!
//! Representation: for one sample, `E[Δ Δᵀ]` over (channel, row, column) is a sum of terms
//! `diag(chan) ⊗ Rh ⊗ Rw`: a per-channel variance factor times a row covariance and a column
//! covariance. That family is closed under every op the time change passes linearly before its
//! first normalization or nonlinearity, because each weight tensor at initialization is drawn
//! independently, with zero mean and i.i.d. entries (`U(-1/√fan_in, 1/√fan_in)`, variance
//! `1/(3·fan_in)`): a convolution's output channels are then uncorrelated with equal variance,
//! and its spatial transfer factorizes over the two axes (the taps of a k x k kernel are
//! independent). Zero padding enters through the taps that fall outside the map: the transfer
//! of an all-ones covariance `J` gives `R'(q, q') = |T(q) ∩ T(q')|`, the number of kernel taps
//! valid at both output positions, which is where the border leak comes from.
//!
//! Biases cancel in a difference and never appear here. Scales are absolute (in units of the
//! origin's own injected variance), so two paths of one origin can be summed exactly.

/// `Σ v` over eight running sums, which the compiler vectorizes (one running sum is a chain of
/// dependent additions, 2,048 of them for the two factors of a 32 x 32 map). The sums of tap
/// counts (integers) are exact in any order; others differ from the sequential sum by rounding.
pub fn sum(v: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + rest
}

use std::rc::Rc;

/// A dense `n x n` matrix (row-major), small: one spatial axis. The entries are shared: a
/// matrix passes unchanged through most ops (a term's factors are copied, not recomputed), and
/// every offset of a size has the same all-ones factors.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    pub n: usize,
    pub d: Rc<[f64]>,
}

impl Mat {
    /// The all-ones matrix `J`: a change constant along the axis (one per size and thread).
    pub fn ones(n: usize) -> Mat {
        thread_local! {
            static ONES: std::cell::RefCell<Vec<Option<Rc<[f64]>>>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        if n > 64 {
            return Mat {
                n,
                d: vec![1.0; n * n].into(),
            };
        }
        let d = ONES.with(|ones| {
            let mut ones = ones.borrow_mut();
            if ones.len() <= n {
                ones.resize(n + 1, None);
            }
            ones[n]
                .get_or_insert_with(|| vec![1.0; n * n].into())
                .clone()
        });
        Mat { n, d }
    }

    /// `u vᵀ`.
    pub fn outer(u: &[f64], v: &[f64]) -> Mat {
        debug_assert_eq!(u.len(), v.len());
        let n = u.len();
        let mut d = Vec::with_capacity(n * v.len());
        for a in u {
            d.extend(v.iter().map(|b| a * b));
        }
        Mat { n, d: d.into() }
    }

    fn at(&self, i: isize, j: isize) -> f64 {
        let n = self.n as isize;
        if i < 0 || j < 0 || i >= n || j >= n {
            0.0
        } else {
            self.d[i as usize * self.n + j as usize]
        }
    }

    pub fn trace(&self) -> f64 {
        (0..self.n).map(|i| self.d[i * self.n + i]).sum()
    }

    /// `1ᵀ R 1`.
    pub fn total(&self) -> f64 {
        sum(&self.d)
    }

    /// Zero-padded convolution along one axis with `k` independent taps, stride `s`, padding
    /// `p`: `R'(q, q') = Σ_dy R(q·s + dy - p, q'·s + dy - p)`, zero outside the map.
    pub fn conv(&self, k: usize, s: usize, p: usize, n_out: usize) -> Mat {
        let mut d = vec![0.0; n_out * n_out];
        for q in 0..n_out {
            for q2 in 0..n_out {
                let mut acc = 0.0;
                for dy in 0..k {
                    let i = (q * s + dy) as isize - p as isize;
                    let j = (q2 * s + dy) as isize - p as isize;
                    acc += self.at(i, j);
                }
                d[q * n_out + q2] = acc;
            }
        }
        Mat {
            n: n_out,
            d: d.into(),
        }
    }

    /// `A R Aᵀ` for a linear map `A` given as rows of (index, weight).
    fn sandwich(&self, rows: &[Vec<(usize, f64)>]) -> Mat {
        let n_out = rows.len();
        let mut d = vec![0.0; n_out * n_out];
        for (q, ra) in rows.iter().enumerate() {
            for (q2, rb) in rows.iter().enumerate() {
                let mut acc = 0.0;
                for &(i, wa) in ra {
                    for &(j, wb) in rb {
                        acc += wa * wb * self.d[i * self.n + j];
                    }
                }
                d[q * n_out + q2] = acc;
            }
        }
        Mat {
            n: n_out,
            d: d.into(),
        }
    }

    /// Average pooling with window `k` and stride `s`, no padding.
    pub fn pool(&self, k: usize, s: usize, n_out: usize) -> Mat {
        let rows: Vec<Vec<(usize, f64)>> = (0..n_out)
            .map(|q| {
                (0..k)
                    .filter(|d| q * s + d < self.n)
                    .map(|d| (q * s + d, 1.0 / k as f64))
                    .collect()
            })
            .collect();
        self.sandwich(&rows)
    }

    /// Nearest-neighbour up-sampling by `f`.
    pub fn upsample(&self, f: usize) -> Mat {
        let rows: Vec<Vec<(usize, f64)>> = (0..self.n * f).map(|q| vec![(q / f, 1.0)]).collect();
        self.sandwich(&rows)
    }

    /// The mean over the axis: a 1 x 1 matrix `1ᵀ R 1 / n²`.
    pub fn mean(&self) -> Mat {
        let n = self.n.max(1) as f64;
        Mat {
            n: 1,
            d: vec![self.total() / (n * n)].into(),
        }
    }
}

/// One term `diag(chan) ⊗ rh ⊗ rw`.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub chan: Vec<f64>,
    pub rh: Mat,
    pub rw: Mat,
}

/// The exact second moments of one origin's linear time change at a node, per sample.
#[derive(Debug, Clone)]
pub struct Cov {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub terms: Vec<Term>,
    /// [`Cov::energy`], once asked for (a covariance is shared, and each op and norm asks it
    /// of what arrives and of what it makes). Reset by every change of `terms` made here.
    energy: std::cell::OnceCell<f64>,
}

impl PartialEq for Cov {
    fn eq(&self, o: &Cov) -> bool {
        (self.c, self.h, self.w) == (o.c, o.h, o.w) && self.terms == o.terms
    }
}

/// More terms than this and the representation is given up (the caller states no number).
pub const MAX_TERMS: usize = 256;
/// The outer products of [`Cov::positional`], each formed once: by the bits of their factors.
#[derive(Default)]
struct Products {
    /// The factors' bits, side by side (`None`: the all-ones matrix), and the index into `mats`.
    made: Vec<(Option<Vec<u64>>, usize)>,
    mats: Vec<Mat>,
    /// Whether each matrix equals itself (holds no NaN): then one index is one value.
    reflexive: Vec<bool>,
}

impl Products {
    fn add(&mut self, key: Option<Vec<u64>>, m: Mat) -> usize {
        // Folded without an early exit: the compiler vectorizes it.
        self.reflexive
            .push(!m.d.iter().fold(false, |nan, x| nan | x.is_nan()));
        self.mats.push(m);
        self.made.push((key, self.mats.len() - 1));
        self.mats.len() - 1
    }
    fn outer(&mut self, u: &[f64], v: &[f64]) -> usize {
        let same = |k: &[u64]| {
            k.len() == u.len() + v.len()
                && k.iter()
                    .zip(u.iter().chain(v))
                    .all(|(a, b)| *a == b.to_bits())
        };
        if let Some((_, i)) = self
            .made
            .iter()
            .find(|(k, _)| k.as_deref().is_some_and(same))
        {
            return *i;
        }
        let key = u.iter().chain(v).map(|f| f.to_bits()).collect();
        self.add(Some(key), Mat::outer(u, v))
    }
    fn ones(&mut self, n: usize) -> usize {
        match self.made.iter().find(|(k, _)| k.is_none()) {
            Some((_, i)) => *i,
            None => self.add(None, Mat::ones(n)),
        }
    }
    /// Whether the products `a` and `b` are equal (`==`, as [`Cov::push`] compares).
    fn equal(&self, a: usize, b: usize) -> bool {
        (a == b && self.reflexive[a]) || self.mats[a] == self.mats[b]
    }
}

/// Largest spatial side tracked exactly (the matrices are side x side).
pub const MAX_SIDE: usize = 512;

/// Where a normalization's mean subtraction averages: per sample over `m` consecutive
/// channels and all of H, W (`m = 1`: instance norm, one channel per group; `m = C`: layer norm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    pub m: usize,
}

impl Cov {
    /// An offset constant over H, W, i.i.d. over `c` channels (unit variance).
    pub fn offset(c: usize, h: usize, w: usize) -> Cov {
        Cov {
            c,
            h,
            w,
            terms: vec![Term {
                chan: vec![1.0; c],
                rh: Mat::ones(h),
                rw: Mat::ones(w),
            }],
            energy: Default::default(),
        }
    }

    /// `a_c · P_c(y, x)` with `a` i.i.d. (unit variance) and `P_c(y, x) = u_c(y) + v_c(x)`:
    /// the fixed positional patterns, periodic in the channel: `P_c = P_{c mod period}`.
    /// `pattern(c)` returns `(u_c, v_c)` and is called for `c < period` only.
    pub fn positional(
        c: usize,
        h: usize,
        w: usize,
        period: usize,
        pattern: impl Fn(usize) -> (Vec<f64>, Vec<f64>),
    ) -> Cov {
        let ones_h = vec![1.0; h];
        let ones_w = vec![1.0; w];
        let mut cov = Cov {
            c,
            h,
            w,
            terms: Vec::new(),
            energy: Default::default(),
        };
        // Channels sharing a pattern share its four spatial factors: group them first (in order
        // of first appearance, the order `push` would merge them in), so each pattern and its
        // outer products are formed once rather than once per channel.
        let period = period.clamp(1, c.max(1));
        // ((u, v), the channels carrying it)
        type Pattern = (Vec<f64>, Vec<f64>);
        let mut distinct: Vec<(Pattern, Vec<f64>)> = Vec::new();
        for class in 0..period.min(c) {
            let pat = pattern(class);
            let mut chan = vec![0.0; c];
            for ch in (class..c).step_by(period) {
                chan[ch] = 1.0;
            }
            match distinct.iter_mut().find(|(p, _)| *p == pat) {
                Some((_, seen)) => seen.iter_mut().zip(&chan).for_each(|(a, b)| *a += b),
                None => distinct.push((pat, chan)),
            }
        }
        // Each outer product is formed once, however many patterns share its factors (the row
        // and column factors recur across patterns), and two terms made of the same products
        // are known equal without comparing them; other pairs compare as `push` compares, so
        // the terms, their order and their sums are those of pushing each in turn.
        let (mut rows, mut cols) = (Products::default(), Products::default());
        let mut terms: Vec<(usize, usize, Vec<f64>)> = Vec::new();
        for ((u, v), chan) in distinct {
            // (u ⊗ 1 + 1 ⊗ v)(u ⊗ 1 + 1 ⊗ v)ᵀ: four separable terms.
            for (rh, rw) in [
                (rows.outer(&u, &u), cols.ones(w)),
                (rows.outer(&u, &ones_h), cols.outer(&ones_w, &v)),
                (rows.outer(&ones_h, &u), cols.outer(&v, &ones_w)),
                (rows.ones(h), cols.outer(&v, &v)),
            ] {
                let merged = terms
                    .iter_mut()
                    .find(|(a, b, _)| rows.equal(*a, rh) && cols.equal(*b, rw));
                match merged {
                    Some((_, _, seen)) => seen.iter_mut().zip(&chan).for_each(|(a, b)| *a += b),
                    None => terms.push((rh, rw, chan.clone())),
                }
            }
        }
        cov.energy = Default::default();
        cov.terms = terms
            .into_iter()
            .map(|(rh, rw, chan)| Term {
                chan,
                rh: rows.mats[rh].clone(),
                rw: cols.mats[rw].clone(),
            })
            .collect();
        cov
    }

    /// Adds a term, merging it into one with the same spatial factors.
    fn push(&mut self, t: Term) {
        self.energy = Default::default();
        if let Some(e) = self.terms.iter_mut().find(|e| e.rh == t.rh && e.rw == t.rw) {
            for (a, b) in e.chan.iter_mut().zip(&t.chan) {
                *a += b;
            }
        } else {
            self.terms.push(t);
        }
    }

    fn compact(mut self) -> Cov {
        self.energy = Default::default();
        let terms = std::mem::take(&mut self.terms);
        for t in terms {
            if t.chan.iter().any(|v| *v != 0.0) {
                self.push(t);
            }
        }
        self
    }

    /// Whether the representation is still within its limits.
    pub fn tractable(&self) -> bool {
        self.terms.len() <= MAX_TERMS && self.h <= MAX_SIDE && self.w <= MAX_SIDE
    }

    /// Expected energy `E‖Δ‖²` per sample.
    pub fn energy(&self) -> f64 {
        *self.energy.get_or_init(|| {
            self.terms
                .iter()
                .map(|t| sum(&t.chan) * t.rh.trace() * t.rw.trace())
                .sum()
        })
    }

    /// Expected energy the mean subtraction over `unit` removes, per sample.
    pub fn removed(&self, unit: Unit) -> f64 {
        let m = unit.m.max(1) as f64;
        let (h, w) = (self.h.max(1) as f64, self.w.max(1) as f64);
        self.terms
            .iter()
            .map(|t| {
                // tr(Q_c diag(chan)) = Σ chan / m for groups of m consecutive channels.
                sum(&t.chan) / m * (t.rh.total() / h) * (t.rw.total() / w)
            })
            .sum()
    }

    /// A convolution with i.i.d. zero-mean weights of variance `var`, `groups` channel groups.
    pub fn conv(
        &self,
        cout: usize,
        groups: usize,
        var: f64,
        (k, s, p): (usize, usize, usize),
        (h_out, w_out): (usize, usize),
    ) -> Cov {
        let groups = groups.max(1);
        let gin = (self.c / groups).max(1);
        let gout = (cout / groups).max(1);
        let mut out = Cov {
            c: cout,
            h: h_out,
            w: w_out,
            terms: Vec::new(),
            energy: Default::default(),
        };
        for t in &self.terms {
            // Each group's input variance, summed once for all of its outputs.
            let per_group: Vec<f64> = (0..groups)
                .map(|g| t.chan.iter().skip(g * gin).take(gin).sum::<f64>())
                .collect();
            let mut chan = vec![0.0; cout];
            for (o, slot) in chan.iter_mut().enumerate() {
                *slot = var * per_group[(o / gout).min(groups - 1)];
            }
            out.push(Term {
                chan,
                rh: t.rh.conv(k, s, p, h_out),
                rw: t.rw.conv(k, s, p, w_out),
            });
        }
        out.compact()
    }

    /// A fully connected map of a `[C, H, W]` change (flattened) to `dout` features.
    pub fn linear(&self, dout: usize, var: f64) -> Cov {
        let total: f64 = self
            .terms
            .iter()
            .map(|t| sum(&t.chan) * t.rh.trace() * t.rw.trace())
            .sum();
        Cov {
            c: dout,
            h: 1,
            w: 1,
            terms: vec![Term {
                chan: vec![var * total; dout],
                rh: Mat::ones(1),
                rw: Mat::ones(1),
            }],
            energy: Default::default(),
        }
        .compact()
    }

    pub fn pool(&self, k: usize, s: usize, (h_out, w_out): (usize, usize)) -> Cov {
        self.map_spatial(h_out, w_out, |m, n| m.pool(k, s, n))
    }

    pub fn upsample(&self, f: usize) -> Cov {
        self.map_spatial(self.h * f, self.w * f, |m, _| m.upsample(f))
    }

    /// Zero padding: `before` rows and columns at the top and left, `after` at the bottom and
    /// right (a one-tap, unit-weight convolution).
    pub fn pad(&self, before: usize, after: usize) -> Cov {
        let (h, w) = (self.h + before + after, self.w + before + after);
        self.map_spatial(h, w, |m, n| m.conv(1, 1, before, n))
    }

    pub fn global_pool(&self) -> Cov {
        self.map_spatial(1, 1, |m, _| m.mean())
    }

    fn map_spatial(&self, h: usize, w: usize, f: impl Fn(&Mat, usize) -> Mat) -> Cov {
        let mut out = Cov {
            c: self.c,
            h,
            w,
            terms: Vec::new(),
            energy: Default::default(),
        };
        for t in &self.terms {
            out.push(Term {
                chan: t.chan.clone(),
                rh: f(&t.rh, h),
                rw: f(&t.rw, w),
            });
        }
        out.compact()
    }

    /// The sum of two uncorrelated changes of the same shape.
    pub fn add(&self, o: &Cov) -> Cov {
        let mut out = self.clone();
        for t in &o.terms {
            out.push(t.clone());
        }
        out.compact()
    }

    /// Channel concatenation of uncorrelated changes; `None` parts are zero.
    pub fn concat(parts: &[(usize, Option<&Cov>)], h: usize, w: usize) -> Cov {
        let c: usize = parts.iter().map(|p| p.0).sum();
        let mut out = Cov {
            c,
            h,
            w,
            terms: Vec::new(),
            energy: Default::default(),
        };
        let mut at = 0;
        for (pc, cov) in parts {
            if let Some(cov) = cov {
                for t in &cov.terms {
                    let mut chan = vec![0.0; c];
                    chan[at..at + pc].copy_from_slice(&t.chan[..*pc]);
                    out.push(Term {
                        chan,
                        rh: t.rh.clone(),
                        rw: t.rw.clone(),
                    });
                }
            }
            at += pc;
        }
        out.compact()
    }

    /// The fraction of the expected energy that the mean subtraction over `unit` keeps;
    /// `None` for a change with no energy.
    pub fn kept(&self, unit: Unit) -> Option<f64> {
        let e = self.energy();
        if e <= 0.0 {
            return None;
        }
        let f = 1.0 - self.removed(unit) / e;
        // Exact cancellations come out as rounding residue of order 1e-16.
        Some(if f.abs() < 1e-9 {
            0.0
        } else {
            f.clamp(0.0, 1.0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Survival of a constant offset through one k x k conv into a norm, by brute force:
    /// `1 - Σ_{q,q'} |T(q) ∩ T(q')| / (m · HW · Σ_q |T(q)|)`.
    fn brute(h: usize, k: usize, s: usize, p: usize, m: usize) -> f64 {
        let ho = (h + 2 * p - k) / s + 1;
        let taps = |q: usize| -> Vec<(isize, isize)> {
            let mut v = Vec::new();
            for dy in 0..k {
                for dx in 0..k {
                    let y = (q / ho * s + dy) as isize - p as isize;
                    let x = (q % ho * s + dx) as isize - p as isize;
                    if y >= 0 && x >= 0 && y < h as isize && x < h as isize {
                        v.push((dy as isize, dx as isize));
                    }
                }
            }
            v
        };
        let n = ho * ho;
        let (mut pair, mut diag) = (0usize, 0usize);
        for q in 0..n {
            let tq = taps(q);
            diag += tq.len();
            for q2 in 0..n {
                let t2 = taps(q2);
                pair += tq.iter().filter(|t| t2.contains(t)).count();
            }
        }
        1.0 - pair as f64 / (m as f64 * n as f64 * diag as f64)
    }

    #[test]
    fn constant_offset_through_padded_conv_matches_tap_counting() {
        for (h, k, s, p, m) in [
            (6, 3, 1, 1, 1),
            (6, 3, 1, 1, 2),
            (8, 3, 1, 1, 1),
            (8, 3, 2, 1, 1),
            (7, 4, 2, 1, 4),
            (5, 3, 1, 0, 1),
            (9, 5, 2, 2, 3),
        ] {
            let ho = (h + 2 * p - k) / s + 1;
            let cov = Cov::offset(12, h, h).conv(12, 1, 1.0, (k, s, p), (ho, ho));
            let f = cov.kept(Unit { m }).unwrap();
            let b = brute(h, k, s, p, m);
            assert!((f - b).abs() < 1e-12, "{h} {k} {s} {p} {m}: {f} vs {b}");
        }
        // The figures quoted for the ODE-Net's 6 x 6 maps: instance 0.197, two channels per
        // group 0.599.
        let c = Cov::offset(64, 6, 6).conv(64, 1, 1.0, (3, 1, 1), (6, 6));
        assert!((c.kept(Unit { m: 1 }).unwrap() - 0.1975).abs() < 1e-3);
        assert!((c.kept(Unit { m: 2 }).unwrap() - 0.5987).abs() < 1e-3);
    }

    #[test]
    fn unpadded_ops_keep_an_offset_constant() {
        let c = Cov::offset(8, 9, 9)
            .conv(8, 1, 0.5, (3, 2, 0), (4, 4))
            .pool(2, 2, (2, 2))
            .upsample(2);
        assert_eq!(c.kept(Unit { m: 1 }), Some(0.0));
        assert!((c.kept(Unit { m: 4 }).unwrap() - 0.75).abs() < 1e-12);
    }

    #[test]
    fn zero_mean_patterns_survive_and_pool_to_nothing() {
        let pat = |h: usize| -> Vec<f64> {
            (0..h)
                .map(|i| (std::f64::consts::PI * (i as f64 + 0.5) / h as f64).cos())
                .collect()
        };
        let p = Cov::positional(6, 8, 8, 1, |_| (pat(8), pat(8)));
        assert_eq!(p.kept(Unit { m: 1 }), Some(1.0));
        let g = p.global_pool();
        assert!(g.energy().abs() < 1e-12 * p.energy());
    }
}
