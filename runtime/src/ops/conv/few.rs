//! Convolutions with few output channels per group (under 16: a denoiser's last conv to the
//! image's channels) on AVX-512, stride 1: the images and the weights in, the NCHW output (or
//! the weight gradient) out. The register tiles of `direct` hold 32 output channels and the
//! packed GEMM 12, so one or three channels wasted most of every multiply-add. Here the vector
//! lanes run over output positions instead: over each padded image's *extended* grid (every
//! output row continued to the padded width, `p = oy * wp + ox`), where weight row `q = (c, ky,
//! kx)` reads the input at `p + c * plane + ky * wp + kx`, sixteen consecutive positions in one
//! unaligned load. The extra columns (`ox >= wo`) are computed and dropped; the weight gradient
//! gives them a zero output gradient.

use rayon::prelude::*;
use std::cell::RefCell;

use super::geom::ConvGeom;
use crate::ops::gemm512;
use crate::ops::math::fold_chunks;

/// Whether this path runs the convolution: AVX-512, stride 1, and fewer than 16 output
/// channels per group.
pub(super) fn usable(g: &ConvGeom) -> bool {
    gemm512::available() && g.stride == 1 && g.og() < 16
}

thread_local! {
    /// Per-thread scratch: one padded image, one image's extended output or gradient.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Padded plane size and width, and the extended grid's size `ho * wp`.
fn grid(g: &ConvGeom) -> (usize, usize, usize) {
    let wp = g.w + 2 * g.pad;
    ((g.h + 2 * g.pad) * wp, wp, g.ho * wp)
}

/// The largest tile's positions: extended grids are computed in whole tiles.
const TILE: usize = 16 * 24;

/// One image padded into `xpad` (`[cin, hp, wp]`), followed by zeros for the reads past the
/// last plane that the extended grid's last row makes (at most `k - 1` floats) and that its
/// last, partly filled tile makes (under [`TILE`]).
fn pad_image(g: &ConvGeom, img: &[f32], xpad: &mut Vec<f32>) {
    let (plane, wp, _) = grid(g);
    xpad.clear();
    xpad.resize(g.cin * plane + g.k + TILE, 0.0);
    for (dst, src) in xpad.chunks_exact_mut(plane).zip(img.chunks_exact(g.hw())) {
        for (y, row) in src.chunks_exact(g.w).enumerate() {
            dst[(y + g.pad) * wp + g.pad..][..g.w].copy_from_slice(row);
        }
    }
}

/// Offsets of the weight rows of group `grp` on the extended grid.
fn row_offsets(g: &ConvGeom, grp: usize) -> Vec<usize> {
    let (plane, wp, _) = grid(g);
    let kk2 = g.k * g.k;
    (0..g.kk())
        .map(|q| {
            let (c, t) = (q / kk2, q % kk2);
            (grp * g.cg() + c) * plane + (t / g.k) * wp + t % g.k
        })
        .collect()
}

/// Output channels per block and the vectors of positions each block's tile holds
/// (`channels * vectors <= 24` accumulators).
const BLOCKS: [(usize, usize); 4] = [(8, 3), (4, 6), (2, 12), (1, 24)];

/// Splits `og` channels into blocks of [`BLOCKS`] sizes, largest first.
fn channel_blocks(og: usize) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut o0 = 0;
    for &(c, v) in &BLOCKS {
        while og - o0 >= c {
            out.push((o0, c, v));
            o0 += c;
        }
    }
    out
}

/// Forward convolution: `y = (accumulate ? y : 0) + conv(x, w) + b`, NCHW.
pub(super) fn forward(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    accumulate: bool,
) {
    let (howo, og, kk) = (g.howo(), g.og(), g.kk());
    let (_, wp, ext) = grid(g);
    let offsets: Vec<Vec<usize>> = (0..g.groups).map(|grp| row_offsets(g, grp)).collect();
    let blocks = channel_blocks(og);
    y.par_chunks_mut(g.cout * howo)
        .enumerate()
        .for_each(|(img, yimg)| {
            SCRATCH.with(|cell| {
                let mut guard = cell.borrow_mut();
                let (xpad, out) = &mut *guard;
                pad_image(g, &x[img * g.cin * g.hw()..][..g.cin * g.hw()], xpad);
                // Rows of the largest block, each the grid in whole tiles of any block.
                let ld = ext.next_multiple_of(TILE);
                out.clear();
                out.resize(8 * ld, 0.0);
                for grp in 0..g.groups {
                    for &(o0, c, v) in &blocks {
                        let wrows = &w[(grp * og + o0) * kk..][..c * kk];
                        // SAFETY: AVX-512F was detected (`usable`); every offset plus every
                        // position of the extended grid (and the last vector's overhang) lies
                        // in `xpad`, which has that slack; `out` holds `c` rows of the grid
                        // rounded up to whole tiles.
                        unsafe {
                            forward_block(c, v, kk, xpad, &offsets[grp], wrows, ext, out, ld)
                        };
                        for (i, row) in out.chunks(ld).take(c).enumerate() {
                            let co = grp * og + o0 + i;
                            let bv = bias.map_or(0.0, |b| b[co]);
                            let dst = &mut yimg[co * howo..][..howo];
                            for (d, s) in dst.chunks_exact_mut(g.wo).zip(row.chunks(wp)) {
                                for (d, s) in d.iter_mut().zip(s) {
                                    *d = if accumulate { *d + s + bv } else { s + bv };
                                }
                            }
                        }
                    }
                }
            })
        });
}

/// `out[i][p] = sum_q w[i][q] * xpad[rows[q] + p]` for the `c` channels of a block over the
/// extended grid's `ext` positions, in tiles of `v` vectors; `out` has rows of `ld`.
///
/// # Safety
/// AVX-512F is available; `w` holds `c * kk` floats, `rows` `kk`; for every row and every
/// `p < ext` rounded up to a whole tile, `rows[q] + p` indexes `xpad`; `out` holds `c` rows of
/// `ld` floats, `ld` at least `ext` rounded up to whole tiles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_block(
    c: usize,
    v: usize,
    kk: usize,
    xpad: &[f32],
    rows: &[usize],
    w: &[f32],
    ext: usize,
    out: &mut [f32],
    ld: usize,
) {
    match (c, v) {
        (8, 3) => unsafe { forward_tiles::<8, 3>(kk, xpad, rows, w, ext, out, ld) },
        (4, 6) => unsafe { forward_tiles::<4, 6>(kk, xpad, rows, w, ext, out, ld) },
        (2, 12) => unsafe { forward_tiles::<2, 12>(kk, xpad, rows, w, ext, out, ld) },
        _ => unsafe { forward_tiles::<1, 24>(kk, xpad, rows, w, ext, out, ld) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_tiles<const C: usize, const V: usize>(
    kk: usize,
    xpad: &[f32],
    rows: &[usize],
    w: &[f32],
    ext: usize,
    out: &mut [f32],
    ld: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(out.len() >= C * ld && ld >= ext.next_multiple_of(16 * V));
    let (xp, wp) = (xpad.as_ptr(), w.as_ptr());
    for p0 in (0..ext).step_by(16 * V) {
        let mut acc = [[_mm512_setzero_ps(); V]; C];
        for (q, &off) in rows.iter().enumerate().take(kk) {
            // SAFETY: the caller's contract: `off + p0 + 16 V` stays inside `xpad`, `w` holds
            // C rows of kk.
            unsafe {
                let base = xp.add(off + p0);
                let xs: [__m512; V] = std::array::from_fn(|j| _mm512_loadu_ps(base.add(16 * j)));
                for (i, a) in acc.iter_mut().enumerate() {
                    let wv = _mm512_set1_ps(*wp.add(i * kk + q));
                    for j in 0..V {
                        a[j] = _mm512_fmadd_ps(wv, xs[j], a[j]);
                    }
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            for (j, v) in a.iter().enumerate() {
                // SAFETY: row i holds `ld` floats, at least the tile's end.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(i * ld + p0 + 16 * j), *v) };
            }
        }
    }
}

/// Accumulates the weight gradient `gw += go * windows(x)^T` into `gw`.
pub(super) fn backward_weight(g: &ConvGeom, x: &[f32], go: &[f32], gw: &mut [f32]) {
    let (howo, og, kk) = (g.howo(), g.og(), g.kk());
    let (_, wp, ext) = grid(g);
    let offsets: Vec<Vec<usize>> = (0..g.groups).map(|grp| row_offsets(g, grp)).collect();
    let blocks = channel_blocks(og);
    let partial = fold_chunks(go, g.cout * howo, gw.len(), |acc, img, goimg| {
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (xpad, goext) = &mut *guard;
            pad_image(g, &x[img * g.cin * g.hw()..][..g.cin * g.hw()], xpad);
            // The output gradient on the extended grid, zero in the extra columns.
            let ldg = ext.next_multiple_of(16);
            goext.clear();
            goext.resize(g.cout * ldg, 0.0);
            for (dst, src) in goext.chunks_exact_mut(ldg).zip(goimg.chunks_exact(howo)) {
                for (d, s) in dst.chunks_mut(wp).zip(src.chunks_exact(g.wo)) {
                    d[..g.wo].copy_from_slice(s);
                }
            }
            for grp in 0..g.groups {
                for &(o0, c, _) in &blocks {
                    for q0 in (0..kk).step_by(24 / c) {
                        let gorows = &goext[(grp * og + o0) * ldg..][..c * ldg];
                        let dst = &mut acc[(grp * og + o0) * kk..][..c * kk];
                        // SAFETY: AVX-512F was detected (`usable`); every offset plus
                        // every position below `ldg` lies in `xpad` (its slack covers
                        // the overhang); `gorows` holds `c` rows of `ldg`.
                        unsafe { weight_block(c, q0, kk, xpad, &offsets[grp], gorows, ldg, dst) };
                    }
                }
            }
        });
    });
    if let Some(p) = partial {
        for (d, s) in gw.iter_mut().zip(&p) {
            *d += s;
        }
    }
}

/// `gw[i][q] += sum_p go[i][p] * xpad[rows[q] + p]` for the block's `c` channels and the
/// `24 / c` rows from `q0`, summed in vector lanes over the `ld` positions and then across them.
///
/// # Safety
/// AVX-512F is available; every `rows[q] + p` with `p < ld` indexes `xpad`; `go` holds `c`
/// rows of `ld` (a multiple of 16); `gw` holds `c` rows of `kk`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_block(
    c: usize,
    q0: usize,
    kk: usize,
    xpad: &[f32],
    rows: &[usize],
    go: &[f32],
    ld: usize,
    gw: &mut [f32],
) {
    match c {
        8 => unsafe { weight_tiles::<8, 3>(q0, kk, xpad, rows, go, ld, gw) },
        4 => unsafe { weight_tiles::<4, 6>(q0, kk, xpad, rows, go, ld, gw) },
        2 => unsafe { weight_tiles::<2, 12>(q0, kk, xpad, rows, go, ld, gw) },
        _ => unsafe { weight_tiles::<1, 24>(q0, kk, xpad, rows, go, ld, gw) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weight_tiles<const C: usize, const Q: usize>(
    q0: usize,
    kk: usize,
    xpad: &[f32],
    rows: &[usize],
    go: &[f32],
    ld: usize,
    gw: &mut [f32],
) {
    use std::arch::x86_64::*;
    let nq = Q.min(kk - q0);
    let offs: [usize; Q] = std::array::from_fn(|j| rows[q0 + j.min(nq - 1)]);
    let (xp, gp) = (xpad.as_ptr(), go.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); Q]; C];
    for p in (0..ld).step_by(16) {
        // SAFETY: the caller's contract covers `rows[q] + p + 16` and the rows of `go`.
        unsafe {
            let gv: [__m512; C] = std::array::from_fn(|i| _mm512_loadu_ps(gp.add(i * ld + p)));
            for (j, &off) in offs.iter().enumerate() {
                let xv = _mm512_loadu_ps(xp.add(off + p));
                for i in 0..C {
                    acc[i][j] = _mm512_fmadd_ps(gv[i], xv, acc[i][j]);
                }
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        for (j, v) in a.iter().enumerate().take(nq) {
            gw[i * kk + q0 + j] += _mm512_reduce_add_ps(*v);
        }
    }
}

/// Never called off x86-64 ([`usable`] is false there).
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_block(
    _: usize,
    _: usize,
    _: usize,
    _: &[f32],
    _: &[usize],
    _: &[f32],
    _: usize,
    _: &mut [f32],
    _: usize,
) {
}

/// Never called off x86-64 ([`usable`] is false there).
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_block(
    _: usize,
    _: usize,
    _: usize,
    _: &[f32],
    _: &[usize],
    _: &[f32],
    _: usize,
    _: &mut [f32],
) {
}
