//! Scalar and matrix building blocks of the CPU kernels: strided matrix views ([`Mat`]) and their
//! packing as [`Operand`]s of the AVX-512 GEMM, a bounds-checked strided GEMM that runs that GEMM
//! or the `gemm` crate (slices in, accumulated slice out) and branch-free `exp` / `sigmoid` / `tanh`
//! approximations that the compiler can vectorize (f32 in, f32 out, relative error ~1e-7).

use gemm::Parallelism;

use super::gemm512::{self, Operand};

/// A strided view of a matrix inside a slice: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major view with row stride `ld`.
    pub fn rows(data: &'a [f32], ld: usize) -> Self {
        Self {
            data,
            rs: ld,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with row stride `ld`.
    pub fn rows_t(data: &'a [f32], ld: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: ld,
        }
    }
}

/// Packs `value(o, p) = data[o * so + p * sp]`.
#[allow(clippy::too_many_arguments)]
fn pack_strided(
    data: &[f32],
    so: usize,
    sp: usize,
    outer0: usize,
    width: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
    w: usize,
) {
    if so == 1 {
        for (p, row) in dst[..kc * w].chunks_exact_mut(w).enumerate() {
            let base = outer0 + (p0 + p) * sp;
            row[..width].copy_from_slice(&data[base..base + width]);
            row[width..].fill(0.0);
        }
    } else {
        for t in 0..w {
            let col = dst[t..].iter_mut().step_by(w).take(kc);
            if t >= width {
                col.for_each(|d| *d = 0.0);
                continue;
            }
            let base = (outer0 + t) * so + p0 * sp;
            if sp == 1 {
                for (d, &v) in col.zip(&data[base..base + kc]) {
                    *d = v;
                }
            } else {
                for (p, d) in col.enumerate() {
                    *d = data[base + p * sp];
                }
            }
        }
    }
}

/// Left operand `[m, k]` from a strided matrix.
pub(crate) struct Lhs<'a>(pub Mat<'a>);
/// Right operand `[k, n]` from a strided matrix.
pub(crate) struct Rhs<'a>(pub Mat<'a>);

impl Operand for Lhs<'_> {
    fn pack(&self, outer0: usize, width: usize, p0: usize, kc: usize, dst: &mut [f32], w: usize) {
        let m = &self.0;
        pack_strided(m.data, m.rs, m.cs, outer0, width, p0, kc, dst, w);
    }
}

impl Operand for Rhs<'_> {
    fn pack(&self, outer0: usize, width: usize, p0: usize, kc: usize, dst: &mut [f32], w: usize) {
        let m = &self.0;
        pack_strided(m.data, m.cs, m.rs, outer0, width, p0, kc, dst, w);
    }
}

fn span(r: usize, c: usize, rs: usize, cs: usize) -> usize {
    (r - 1) * rs + (c - 1) * cs + 1
}

/// `dst[m, n] (row stride ldd) = (accumulate ? dst : 0) + a[m, k] * b[k, n]`.
///
/// Panics only on an internal bug (a view that does not fit its slice); callers pass shapes they
/// derived from validated tensor shapes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    dst: &mut [f32],
    ldd: usize,
    accumulate: bool,
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        span(m, n, ldd, 1) <= dst.len(),
        "sgemm: dst view out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * ldd..i * ldd + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        span(m, k, a.rs, a.cs) <= a.data.len(),
        "sgemm: lhs out of bounds"
    );
    assert!(
        span(k, n, b.rs, b.cs) <= b.data.len(),
        "sgemm: rhs out of bounds"
    );
    if gemm512::available() {
        gemm512::gemm(m, n, k, &Lhs(a), &Rhs(b), dst, ldd, accumulate);
        return;
    }
    // SAFETY: the three views were checked to lie inside their slices above; `dst` is borrowed
    // mutably and cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ldd as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Items `0..n` split into one contiguous run per worker thread (fewer when `n` is smaller).
pub(crate) fn runs(n: usize) -> Vec<std::ops::Range<usize>> {
    let t = rayon::current_num_threads().clamp(1, n.max(1));
    (0..t).map(|k| k * n / t..(k + 1) * n / t).collect()
}

/// The sum over the chunks of `data` (`size` elements each, the last one shorter) of what
/// `f(acc, chunk index, chunk)` adds to an accumulator of `len` zeros, computed in parallel but
/// in an order that does not depend on scheduling: the chunks are split into [`runs`], each run
/// folded in order into its own accumulator, and those added in run order. Rayon's `fold` makes
/// one accumulator per split it happens to make, so its float sums changed from run to run;
/// training must repeat exactly (a resumed run equals an uninterrupted one). `None` when there
/// are no chunks.
pub(crate) fn fold_chunks(
    data: &[f32],
    size: usize,
    len: usize,
    f: impl Fn(&mut Vec<f32>, usize, &[f32]) + Sync,
) -> Option<Vec<f32>> {
    use rayon::prelude::*;
    let n = data.len().div_ceil(size.max(1));
    let parts: Vec<Vec<f32>> = runs(n)
        .into_par_iter()
        .map(|r| {
            let mut acc = vec![0.0f32; len];
            for ci in r {
                let chunk = &data[ci * size..((ci + 1) * size).min(data.len())];
                f(&mut acc, ci, chunk);
            }
            acc
        })
        .collect();
    parts.into_iter().reduce(|mut a, b| {
        for (x, y) in a.iter_mut().zip(&b) {
            *x += y;
        }
        a
    })
}

/// Defines a function compiled twice, plainly and with AVX-512F enabled, dispatching at run time:
/// the elementwise loops of its body (and of the `#[inline(always)]` helpers it calls) then
/// vectorize 16 lanes wide instead of SSE2's 4.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) {
                    imp($($arg),*)
                }
                if $crate::ops::gemm512::available() {
                    // SAFETY: AVX-512F was detected at run time.
                    return unsafe { wide($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
pub(crate) use multiversion;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// 1.5 * 2^23: adding it rounds an f32 of magnitude < 2^22 to an integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `e^x` without branches (vectorizes inside loops); relative error below 2e-7 on [-87, 88],
/// saturating outside.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    // Degree-7 Taylor polynomial of e^r on |r| <= ln2 / 2 (truncation error < 1e-8).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.666_666_7e-1
                    + r * (4.166_666_8e-2
                        + r * (8.333_333e-3 + r * (1.388_888_9e-3 + r * 1.984_127e-4))))));
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    p * scale
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x) = 2 sigmoid(2x) - 1`, with the small-|x| range taken from a series for accuracy.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let big = 2.0 * sigmoid(2.0 * x) - 1.0;
    let x2 = x * x;
    let small = x * (1.0 - x2 * (1.0 / 3.0 - x2 * (2.0 / 15.0 - x2 * (17.0 / 315.0))));
    if x.abs() < 0.05 {
        small
    } else {
        big
    }
}

/// Sum with several accumulators (vectorizes, and is more accurate than a single running sum).
#[inline]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            acc[i] += c[i];
        }
    }
    let mut s: f32 = chunks.remainder().iter().sum();
    for a in acc {
        s += a;
    }
    s
}

/// `sum((x - mean)^2)` with several accumulators.
#[inline]
pub(crate) fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    let mut s: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for a in acc {
        s += a;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst = 0.0f32;
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = (exp(x) - x.exp()).abs() / x.exp();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp(-200.0), exp(-87.0));
        assert!(sigmoid(-200.0) >= 0.0 && sigmoid(200.0) == 1.0);
    }

    #[test]
    fn tanh_matches_std() {
        let mut x = -10.0f32;
        while x < 10.0 {
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "{x}");
            x += 0.0071;
        }
    }

    #[test]
    fn sgemm_matches_naive() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 * 0.05).collect();
        let mut c = vec![1.0f32; m * n];
        sgemm(
            m,
            n,
            k,
            Mat::rows(&a, k),
            Mat::rows(&b, n),
            &mut c,
            n,
            true,
            Parallelism::None,
        );
        for i in 0..m {
            for j in 0..n {
                let r: f32 = 1.0 + (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum::<f32>();
                assert!((c[i * n + j] - r).abs() < 1e-5);
            }
        }
        // transposed views
        let mut c2 = vec![0.0f32; n * m];
        sgemm(
            n,
            m,
            k,
            Mat::rows_t(&b, n),
            Mat::rows_t(&a, k),
            &mut c2,
            m,
            false,
            Parallelism::None,
        );
        for i in 0..m {
            for j in 0..n {
                assert!((c2[j * m + i] - (c[i * n + j] - 1.0)).abs() < 1e-5);
            }
        }
    }

    fn naive(m: usize, n: usize, k: usize, a: &Mat<'_>, b: &Mat<'_>) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs])
                    .sum();
            }
        }
        c
    }

    /// Odd sizes cross every tile and block edge; both operand layouts; accumulate and overwrite.
    #[test]
    fn matches_naive_on_edges() {
        for &(m, n, k) in &[(13, 33, 7), (150, 40, 300), (1, 1, 1), (25, 1030, 3)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
            for (av, bv) in [
                (Mat::rows(&a, k), Mat::rows(&b, n)),
                (Mat::rows_t(&a, m), Mat::rows_t(&b, k)),
            ] {
                let want = naive(m, n, k, &av, &bv);
                let mut c = vec![1.0f32; m * n];
                sgemm(m, n, k, av, bv, &mut c, n, true, gemm::Parallelism::None);
                for (x, w) in c.iter().zip(&want) {
                    assert!(
                        (x - 1.0 - w).abs() <= 1e-3 * w.abs().max(1.0),
                        "{m}x{n}x{k}"
                    );
                }
                sgemm(m, n, k, av, bv, &mut c, n, false, gemm::Parallelism::None);
                for (x, w) in c.iter().zip(&want) {
                    assert!((x - w).abs() <= 1e-3 * w.abs().max(1.0), "{m}x{n}x{k}");
                }
            }
        }
    }

    /// Throughput probe: `cargo test --release -p tdspec-runtime gemm_throughput -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn gemm_throughput() {
        let (m, n, k) = (128usize, 1024usize, 1152usize);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0.0f32; m * n];
        let run = |c: &mut [f32]| {
            sgemm(
                m,
                n,
                k,
                Mat::rows(&a, k),
                Mat::rows(&b, n),
                c,
                n,
                false,
                gemm::Parallelism::None,
            )
        };
        for _ in 0..3 {
            run(&mut c);
        }
        let t = std::time::Instant::now();
        for _ in 0..20 {
            run(&mut c);
        }
        let s = t.elapsed().as_secs_f64() / 20.0;
        println!(
            "avx512 path {}: {:.2} ms, {:.1} GFLOP/s",
            crate::ops::gemm512::available(),
            s * 1e3,
            2.0 * (m * n * k) as f64 / s / 1e9
        );
    }
}
