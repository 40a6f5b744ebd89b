//! Direct convolution on AVX-512: NCHW images and `[Cout, Cin/groups, k, k]` weights in, NCHW
//! output (or the weight gradient) out, without an im2col matrix and without packing the
//! images. The forward register tile is 12 output positions x 32 output channels: for each
//! weight row `q = (c, ky, kx)` it broadcasts the 12 positions' input values, read through a
//! table of position offsets into the zero-padded images plus the row's offset `c * plane +
//! ky * wp + kx`, against 32 packed weights. The positions of a tile are any 12 of the chunk
//! (rows and images run on), so no lane is spent on padding columns and strides cost nothing.
//! The weight gradient uses the same addressing with the roles turned: 12 weight rows x 32
//! output channels per tile, summed over positions against the output gradient transposed to
//! `[positions, channels]`. Only the weights (forward) or the output gradient (weight gradient)
//! are packed, both small next to the work. [`usable`] says when this path runs.

use rayon::prelude::*;
use std::cell::RefCell;

use super::geom::ConvGeom;
use crate::ops::gemm512;
use crate::ops::math::fold_chunks;

/// Positions per register tile (forward) or weight rows per tile (weight gradient).
const MR: usize = 12;
/// Output channels per register tile: two 16-lane vectors.
const NR: usize = 32;

/// Whether the direct kernels run this convolution: AVX-512, and enough output channels per
/// group to fill most of a 32-channel tile (fewer go through the packed GEMM).
pub(super) fn usable(g: &ConvGeom) -> bool {
    gemm512::available() && g.og() >= 16
}

thread_local! {
    /// Per-thread scratch: the chunk's padded images, the position table, the transposed
    /// output gradient.
    static SCRATCH: RefCell<(Vec<f32>, Vec<usize>, Vec<f32>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// The padded-image geometry of a chunk: plane size and padded row width.
fn padded(g: &ConvGeom) -> (usize, usize) {
    let wp = g.w + 2 * g.pad;
    ((g.h + 2 * g.pad) * wp, wp)
}

/// Copies `nbc` images into `xpad` (`[nbc, cin, hp, wp]`) with zero borders.
fn pad_images(g: &ConvGeom, xs: &[f32], nbc: usize, xpad: &mut Vec<f32>) {
    let (plane, wp) = padded(g);
    xpad.clear();
    xpad.resize(nbc * g.cin * plane, 0.0);
    if g.pad == 0 {
        xpad.copy_from_slice(&xs[..nbc * g.cin * plane]);
        return;
    }
    for (dst, src) in xpad.chunks_exact_mut(plane).zip(xs.chunks_exact(g.hw())) {
        for (y, row) in src.chunks_exact(g.w).enumerate() {
            dst[(y + g.pad) * wp + g.pad..][..g.w].copy_from_slice(row);
        }
    }
}

/// Offsets into the padded chunk of the top-left input of every output position (image,
/// oy, ox in order), padded with copies of the last one to a multiple of [`MR`].
fn position_table(g: &ConvGeom, nbc: usize, tab: &mut Vec<usize>) {
    let (plane, wp) = padded(g);
    tab.clear();
    for img in 0..nbc {
        for oy in 0..g.ho {
            let row = img * g.cin * plane + oy * g.stride * wp;
            tab.extend((0..g.wo).map(|ox| row + ox * g.stride));
        }
    }
    let last = tab.last().copied().unwrap_or(0);
    tab.resize(tab.len().div_ceil(MR) * MR, last);
}

/// The offset of weight row `q = (c, ky, kx)` of group `grp` from a position's top-left input.
fn row_offsets(g: &ConvGeom, grp: usize) -> Vec<usize> {
    let (plane, wp) = padded(g);
    let kk2 = g.k * g.k;
    (0..g.kk())
        .map(|q| {
            let (c, t) = (q / kk2, q % kk2);
            (grp * g.cg() + c) * plane + (t / g.k) * wp + t % g.k
        })
        .collect()
}

/// The weights of each group as panels `[kk][NR]` of 32 output channels (zeros past `og`):
/// `panels[(grp * np + j) * kk * NR + q * NR + o] = w[grp * og + j * NR + o][q]`.
fn pack_weights(g: &ConvGeom, w: &[f32]) -> Vec<f32> {
    let (og, kk) = (g.og(), g.kk());
    let np = og.div_ceil(NR);
    let mut out = vec![0.0f32; g.groups * np * kk * NR];
    for grp in 0..g.groups {
        for o in 0..og {
            let (j, lane) = (o / NR, o % NR);
            let panel = &mut out[(grp * np + j) * kk * NR..][..kk * NR];
            let row = &w[(grp * og + o) * kk..][..kk];
            for (q, &v) in row.iter().enumerate() {
                panel[q * NR + lane] = v;
            }
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
    let np = og.div_ceil(NR);
    let panels = pack_weights(g, w);
    let offsets: Vec<Vec<usize>> = (0..g.groups).map(|grp| row_offsets(g, grp)).collect();
    let nb = g.chunk();
    y.par_chunks_mut(nb * g.cout * howo)
        .enumerate()
        .for_each(|(ci, ychunk)| {
            SCRATCH.with(|cell| {
                let mut guard = cell.borrow_mut();
                let (xpad, tab, _) = &mut *guard;
                let nbc = ychunk.len() / (g.cout * howo);
                let b0 = ci * nb;
                pad_images(g, &x[b0 * g.cin * g.hw()..], nbc, xpad);
                position_table(g, nbc, tab);
                let n = nbc * howo;
                let mut tile_buf = [0.0f32; MR * NR];
                for grp in 0..g.groups {
                    for j in 0..np {
                        let panel = &panels[(grp * np + j) * kk * NR..][..kk * NR];
                        let width = NR.min(og - j * NR);
                        for t0 in (0..n).step_by(MR) {
                            let ptrs: [*const f32; MR] =
                                std::array::from_fn(|r| xpad[tab[t0 + r]..].as_ptr());
                            // SAFETY: AVX-512F was detected (`usable`); every table entry plus
                            // every row offset lies inside `xpad` (the padded chunk), `panel`
                            // holds kk rows of NR.
                            unsafe {
                                tile(
                                    kk,
                                    &ptrs,
                                    offsets[grp].as_ptr(),
                                    panel.as_ptr(),
                                    NR,
                                    &mut tile_buf,
                                )
                            };
                            let cols = grp * og + j * NR..grp * og + j * NR + width;
                            scatter(
                                g,
                                &tile_buf,
                                t0,
                                MR.min(n - t0),
                                cols,
                                bias,
                                ychunk,
                                accumulate,
                            );
                        }
                    }
                }
            })
        });
}

/// Writes the first `count` rows of a forward tile (positions `t0..` of the chunk, output
/// channels `cols`) into the chunk's NCHW output, adding the bias: per channel, each run of
/// positions inside one image is one contiguous stretch of the output.
#[allow(clippy::too_many_arguments)]
fn scatter(
    g: &ConvGeom,
    tile: &[f32; MR * NR],
    t0: usize,
    count: usize,
    cols: std::ops::Range<usize>,
    bias: Option<&[f32]>,
    ychunk: &mut [f32],
    accumulate: bool,
) {
    let howo = g.howo();
    let (img, pos) = (t0 / howo, t0 % howo);
    #[cfg(target_arch = "x86_64")]
    if count == MR && pos + MR <= howo {
        // The whole tile lies in one image: transpose it in registers.
        let base = (img * g.cout + cols.start) * howo + pos;
        let needed = (cols.len() - 1) * howo + MR;
        let dst = &mut ychunk[base..][..needed];
        let bias = bias.map(|b| &b[cols.clone()]);
        // SAFETY: AVX-512F was detected (`usable`); `dst` holds every channel's 12 positions.
        unsafe { scatter_tile(tile, cols.len(), dst, howo, bias, accumulate) };
        return;
    }
    let mut r0 = 0;
    while r0 < count {
        let (img, pos) = ((t0 + r0) / howo, (t0 + r0) % howo);
        let len = (howo - pos).min(count - r0);
        for (o, co) in cols.clone().enumerate() {
            let bv = bias.map_or(0.0, |b| b[co]);
            let dst = &mut ychunk[(img * g.cout + co) * howo + pos..][..len];
            let src = tile[r0 * NR + o..].iter().step_by(NR);
            if accumulate {
                dst.iter_mut().zip(src).for_each(|(d, v)| *d += v + bv);
            } else {
                dst.iter_mut().zip(src).for_each(|(d, v)| *d = v + bv);
            }
        }
        r0 += len;
    }
}

/// Accumulates the weight gradient `gw += go * windows(x)^T` into `gw` (`[Cout, Cin/groups,
/// k, k]`), summing per worker over chunks of images.
pub(super) fn backward_weight(g: &ConvGeom, x: &[f32], go: &[f32], gw: &mut [f32]) {
    let (howo, og, kk) = (g.howo(), g.og(), g.kk());
    let np = og.div_ceil(NR);
    let ogp = np * NR;
    let offsets: Vec<Vec<usize>> = (0..g.groups).map(|grp| row_offsets(g, grp)).collect();
    let nb = g.chunk();
    // Per worker: [groups][kk rounded up to MR][ogp], the transpose of gw's layout.
    let kkp = kk.div_ceil(MR) * MR;
    let partial = fold_chunks(
        go,
        nb * g.cout * howo,
        g.groups * kkp * ogp,
        |acc, ci, gochunk| {
            SCRATCH.with(|cell| {
                let mut guard = cell.borrow_mut();
                let (xpad, tab, got) = &mut *guard;
                let nbc = gochunk.len() / (g.cout * howo);
                let n = nbc * howo;
                pad_images(g, &x[ci * nb * g.cin * g.hw()..], nbc, xpad);
                position_table(g, nbc, tab);
                let mut tile_buf = [0.0f32; MR * NR];
                for grp in 0..g.groups {
                    transpose_go(g, gochunk, grp, nbc, ogp, got);
                    let rows = &offsets[grp];
                    for q0 in (0..kk).step_by(MR) {
                        // Rows past kk repeat the last one; their sums are dropped.
                        let ptrs: [*const f32; MR] =
                            std::array::from_fn(|i| xpad[rows[(q0 + i).min(kk - 1)]..].as_ptr());
                        for j in 0..np {
                            // SAFETY: AVX-512F was detected (`usable`); `tab[..n]` plus
                            // every row offset indexes `xpad`; `got` holds n rows of ogp.
                            unsafe {
                                tile(
                                    n,
                                    &ptrs,
                                    tab.as_ptr(),
                                    got[j * NR..].as_ptr(),
                                    ogp,
                                    &mut tile_buf,
                                )
                            };
                            let dst = &mut acc[(grp * kkp + q0) * ogp + j * NR..];
                            assert!(dst.len() >= (MR - 1) * ogp + NR);
                            // SAFETY: AVX-512F was detected (`usable`); `dst` holds MR rows
                            // of `ogp` floats with NR from each row's start (checked above).
                            unsafe { add_tile(&tile_buf, dst.as_mut_ptr(), ogp) };
                        }
                    }
                }
            });
        },
    );
    if let Some(p) = partial {
        for grp in 0..g.groups {
            for o in 0..og {
                let row = &mut gw[(grp * og + o) * kk..][..kk];
                for (q, d) in row.iter_mut().enumerate() {
                    *d += p[(grp * kkp + q) * ogp + o];
                }
            }
        }
    }
}

/// `dst[i * ld..][..NR] += tile[i]` for the tile's MR rows (a weight-gradient tile into its
/// worker's sums).
///
/// # Safety
/// AVX-512F is available; `dst` points to MR rows `ld` floats apart with NR writable floats
/// from each row's start.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_tile(tile: &[f32; MR * NR], dst: *mut f32, ld: usize) {
    use std::arch::x86_64::*;
    for (i, row) in tile.chunks_exact(NR).enumerate() {
        for h in [0, 16] {
            // SAFETY: row `i` of `dst` holds NR floats (the caller's contract); `row` holds NR.
            unsafe {
                let d = dst.add(i * ld + h);
                let v = _mm512_add_ps(_mm512_loadu_ps(d), _mm512_loadu_ps(row.as_ptr().add(h)));
                _mm512_storeu_ps(d, v);
            }
        }
    }
}

/// Never called off x86-64 ([`usable`] is false there).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn add_tile(_: &[f32; MR * NR], _: *mut f32, _: usize) {}

/// The output gradient of group `grp` of a chunk as `[positions, ogp]` (zeros past `og`).
fn transpose_go(
    g: &ConvGeom,
    gochunk: &[f32],
    grp: usize,
    nbc: usize,
    ogp: usize,
    got: &mut Vec<f32>,
) {
    let howo = g.howo();
    got.clear();
    got.resize(nbc * howo * ogp, 0.0);
    let src = &gochunk[..nbc * g.cout * howo];
    // SAFETY: AVX-512F was detected (`usable`); the sizes are those of `src` and `got`.
    unsafe { transpose_go_blocks(g, src, grp, nbc, ogp, got) };
}

/// `out[c][r] = rows[r][c]` for a 16 x 16 block held in registers.
///
/// # Safety
/// AVX-512F is available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(r: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    // Pairs of rows interleaved by 32 bits, then by 64 bits: each 128-bit lane of `u[4i + j]`
    // holds column j (+4, +8, +12 per lane) of rows 4i..4i+4.
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let q = i / 4 * 4;
        let (a, b) = (
            _mm512_castps_pd(t[q + (i % 4) / 2]),
            _mm512_castps_pd(t[q + 2 + (i % 4) / 2]),
        );
        _mm512_castpd_ps(if i % 2 == 0 {
            _mm512_unpacklo_pd(a, b)
        } else {
            _mm512_unpackhi_pd(a, b)
        })
    });
    // Then 128-bit lanes: rows 0-7 and 8-15 gathered, then the halves joined.
    let v: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (u[(i / 8) * 8 + i % 4], u[(i / 8) * 8 + 4 + i % 4]);
        if i % 8 < 4 {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(a, b)
        }
    });
    std::array::from_fn(|c| {
        let (a, b) = (v[c % 8], v[8 + c % 8]);
        if c < 8 {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(a, b)
        }
    })
}

/// Writes a forward tile whose 12 positions are consecutive in one image: channel `o` of the
/// tile goes to `dst[o * howo..][..12]`, plus its bias, added to what is there with
/// `accumulate`.
///
/// # Safety
/// AVX-512F is available; `dst` holds `(width - 1) * howo + 12` floats, `width <= NR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scatter_tile(
    tile: &[f32; MR * NR],
    width: usize,
    dst: &mut [f32],
    howo: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    const LANES: __mmask16 = (1 << MR) - 1;
    debug_assert!(width <= NR && dst.len() >= (width - 1) * howo + MR);
    for half in 0..width.div_ceil(16) {
        // SAFETY: rows r < MR of the tile hold NR floats; the stores stay in `dst`.
        unsafe {
            let rows: [__m512; 16] = std::array::from_fn(|r| {
                if r < MR {
                    _mm512_loadu_ps(tile.as_ptr().add(r * NR + half * 16))
                } else {
                    _mm512_setzero_ps()
                }
            });
            let cols = transpose16(rows);
            for (c, col) in cols.iter().enumerate().take(width - half * 16) {
                let o = half * 16 + c;
                let p = dst.as_mut_ptr().add(o * howo);
                let mut v = _mm512_add_ps(*col, _mm512_set1_ps(bias.map_or(0.0, |b| b[o])));
                if accumulate {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(LANES, p));
                }
                _mm512_mask_storeu_ps(p, LANES, v);
            }
        }
    }
}

/// [`transpose_go`] in 16 x 16 register blocks.
///
/// # Safety
/// AVX-512F is available; `src` is the chunk's `[nbc, cout, howo]` output gradient, `got`
/// holds `nbc * howo * ogp` zeros, `ogp` is a multiple of 16 no smaller than `og`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_go_blocks(
    g: &ConvGeom,
    src: &[f32],
    grp: usize,
    nbc: usize,
    ogp: usize,
    got: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (howo, og) = (g.howo(), g.og());
    debug_assert!(src.len() >= nbc * g.cout * howo && got.len() >= nbc * howo * ogp);
    for img in 0..nbc {
        for o0 in (0..og).step_by(16) {
            for p0 in (0..howo).step_by(16) {
                let np = 16.min(howo - p0);
                let mask: __mmask16 = ((1u32 << np) - 1) as __mmask16;
                // SAFETY: rows o0 + c < og of this image, positions p0..p0 + np, are inside
                // `src`; rows p0 + p < howo of `got` have 16 channels from o0 (o0 + 16 <= ogp).
                unsafe {
                    let rows: [__m512; 16] = std::array::from_fn(|c| {
                        if o0 + c < og {
                            let at = (img * g.cout + grp * og + o0 + c) * howo + p0;
                            _mm512_maskz_loadu_ps(mask, src.as_ptr().add(at))
                        } else {
                            _mm512_setzero_ps()
                        }
                    });
                    let cols = transpose16(rows);
                    for (p, col) in cols.iter().enumerate().take(np) {
                        let at = (img * howo + p0 + p) * ogp + o0;
                        _mm512_storeu_ps(got.as_mut_ptr().add(at), *col);
                    }
                }
            }
        }
    }
}

/// The register tile: `tile[r][o] = sum_{i < n} ptrs[r][offs[i]] * vec[i * stride + o]` for
/// the [`MR`] rows and [`NR`] columns. The forward pass passes the positions' base pointers as
/// `ptrs` and the weight rows' offsets as `offs` (one packed weight row per step); the weight
/// gradient passes the weight rows' base pointers and the positions' offsets (one row of the
/// transposed output gradient per step). Written in assembly so that the 24 accumulators stay
/// in registers: the base pointers are re-read from memory each step (three loads a cycle leave
/// room for them next to the 24 multiply-adds).
///
/// # Safety
/// AVX-512F is available; `offs` holds `n` entries; for every row `r` and step `i`,
/// `ptrs[r] + offs[i]` points to a readable f32; `vec` holds `n` rows of `stride` floats with
/// [`NR`] readable from each row's start.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile(
    n: usize,
    ptrs: &[*const f32; MR],
    offs: *const usize,
    vec: *const f32,
    stride: usize,
    out: &mut [f32; MR * NR],
) {
    use std::arch::asm;
    /// One row of the tile: its base pointer, the broadcast, two multiply-adds.
    macro_rules! row {
        ($o:literal, $t:literal, $a:literal, $b:literal) => {
            concat!(
                "mov {p}, qword ptr [{ptrs} + ",
                $o,
                "]\n",
                "vbroadcastss zmm",
                $t,
                ", dword ptr [{p} + 4*{off}]\n",
                "vfmadd231ps zmm",
                $a,
                ", zmm",
                $t,
                ", zmm24\n",
                "vfmadd231ps zmm",
                $b,
                ", zmm",
                $t,
                ", zmm25\n",
            )
        };
    }
    /// Stores accumulators `a`, `b` as row `r` of the tile.
    macro_rules! store {
        ($o:literal, $a:literal, $b:literal) => {
            concat!(
                "vmovups zmmword ptr [{out} + ",
                $o,
                "], zmm",
                $a,
                "\n",
                "vmovups zmmword ptr [{out} + ",
                $o,
                " + 64], zmm",
                $b,
                "\n",
            )
        };
    }
    // SAFETY: the caller's contract covers every load; the stores write the 12 x 32 tile.
    unsafe {
        asm!(
            "vpxord zmm0, zmm0, zmm0", "vpxord zmm1, zmm1, zmm1", "vpxord zmm2, zmm2, zmm2",
            "vpxord zmm3, zmm3, zmm3", "vpxord zmm4, zmm4, zmm4", "vpxord zmm5, zmm5, zmm5",
            "vpxord zmm6, zmm6, zmm6", "vpxord zmm7, zmm7, zmm7", "vpxord zmm8, zmm8, zmm8",
            "vpxord zmm9, zmm9, zmm9", "vpxord zmm10, zmm10, zmm10", "vpxord zmm11, zmm11, zmm11",
            "vpxord zmm12, zmm12, zmm12", "vpxord zmm13, zmm13, zmm13",
            "vpxord zmm14, zmm14, zmm14", "vpxord zmm15, zmm15, zmm15",
            "vpxord zmm16, zmm16, zmm16", "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18", "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20", "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22", "vpxord zmm23, zmm23, zmm23",
            "test {n}, {n}",
            "jz 3f",
            "2:",
            "mov {off}, qword ptr [{offs}]",
            "vmovups zmm24, zmmword ptr [{vec}]",
            "vmovups zmm25, zmmword ptr [{vec} + 64]",
            row!("0", "26", "0", "1"),
            row!("8", "27", "2", "3"),
            row!("16", "26", "4", "5"),
            row!("24", "27", "6", "7"),
            row!("32", "26", "8", "9"),
            row!("40", "27", "10", "11"),
            row!("48", "26", "12", "13"),
            row!("56", "27", "14", "15"),
            row!("64", "26", "16", "17"),
            row!("72", "27", "18", "19"),
            row!("80", "26", "20", "21"),
            row!("88", "27", "22", "23"),
            "add {offs}, 8",
            "add {vec}, {stride}",
            "dec {n}",
            "jnz 2b",
            "3:",
            store!("0", "0", "1"),
            store!("128", "2", "3"),
            store!("256", "4", "5"),
            store!("384", "6", "7"),
            store!("512", "8", "9"),
            store!("640", "10", "11"),
            store!("768", "12", "13"),
            store!("896", "14", "15"),
            store!("1024", "16", "17"),
            store!("1152", "18", "19"),
            store!("1280", "20", "21"),
            store!("1408", "22", "23"),
            n = inout(reg) n => _,
            offs = inout(reg) offs => _,
            vec = inout(reg) vec => _,
            stride = in(reg) stride * 4,
            ptrs = in(reg) ptrs.as_ptr(),
            out = in(reg) out.as_mut_ptr(),
            off = out(reg) _,
            p = out(reg) _,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _,
            out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _,
            out("zmm10") _, out("zmm11") _, out("zmm12") _, out("zmm13") _, out("zmm14") _,
            out("zmm15") _, out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
            out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _, out("zmm24") _,
            out("zmm25") _, out("zmm26") _, out("zmm27") _,
            options(nostack),
        );
    }
}

/// Never called off x86-64 ([`usable`] is false there).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn transpose_go_blocks(
    _: &ConvGeom,
    _: &[f32],
    _: usize,
    _: usize,
    _: usize,
    _: &mut [f32],
) {
}

/// Never called off x86-64 ([`usable`] is false there).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile(
    _: usize,
    _: &[*const f32; MR],
    _: *const usize,
    _: *const f32,
    _: usize,
    _: &mut [f32; MR * NR],
) {
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::types::Conv2dCfg;

    #[test]
    fn transpose16_transposes() {
        if !gemm512::available() {
            return;
        }
        use std::arch::x86_64::*;
        let m: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let mut out = vec![0.0f32; 256];
        // SAFETY: AVX-512F is available; 16 rows of 16 floats in and out.
        unsafe {
            let rows: [__m512; 16] = std::array::from_fn(|r| _mm512_loadu_ps(m[r * 16..].as_ptr()));
            for (c, v) in transpose16(rows).iter().enumerate() {
                _mm512_storeu_ps(out[c * 16..].as_mut_ptr(), *v);
            }
        }
        for r in 0..16 {
            for c in 0..16 {
                assert_eq!(out[c * 16 + r], m[r * 16 + c], "row {r} column {c}");
            }
        }
    }

    /// The register tile on data hot in cache, one thread: how close to the multiply-add peak
    /// it runs (`cargo test --release -p tdspec-runtime --lib tile_peak -- --ignored
    /// --nocapture`; 115 GFLOP/s here, where a loop of nothing but multiply-adds reaches 117).
    #[test]
    #[ignore]
    fn tile_peak() {
        let x: Vec<f32> = (0..1 << 16).map(|i| (i % 13) as f32 * 0.01).collect();
        let k = 576;
        let offs: Vec<usize> = (0..k).map(|q| (q * 37) % 30_000).collect();
        let vec: Vec<f32> = (0..k * NR).map(|i| (i % 7) as f32 * 0.01).collect();
        let mut out = [0.0f32; MR * NR];
        let ptrs: [*const f32; MR] = std::array::from_fn(|r| x[r * 100..].as_ptr());
        let reps = 20_000;
        let t = std::time::Instant::now();
        for _ in 0..reps {
            // SAFETY: offsets + pointers stay inside x; vec holds k rows of NR.
            unsafe { tile(k, &ptrs, offs.as_ptr(), vec.as_ptr(), NR, &mut out) };
        }
        let flop = (reps * k * 2 * MR * NR) as f64;
        println!("{:.1} GFLOP/s", flop / t.elapsed().as_secs_f64() / 1e9);
    }

    /// Throughput probe of the direct kernels on the yardsticks' shapes, one thread:
    /// `cargo test --release -p tdspec-runtime --lib direct_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn direct_throughput() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let shapes = [
            ("ddpm 128->128 32x32 b4", (4, 128, 32, 32), 128),
            ("odenet 65->64 6x6 b128", (128, 65, 6, 6), 64),
            ("odenet 64->64 7x7 b128", (128, 64, 7, 7), 64),
            ("concat 33->32 16x16 b32", (32, 33, 16, 16), 32),
            ("mnist 32->32 28x28 b64", (64, 32, 28, 28), 32),
        ];
        for (name, (b, cin, h, w), cout) in shapes {
            let cfg = Conv2dCfg {
                stride: 1,
                padding: 1,
                groups: 1,
            };
            let g = ConvGeom::new((b, cin, h, w), (cout, cin, 3, 3), None, cfg).unwrap();
            let x: Vec<f32> = (0..b * cin * h * w).map(|i| (i % 7) as f32 * 0.1).collect();
            let wt: Vec<f32> = (0..cout * cin * 9).map(|i| (i % 5) as f32 * 0.1).collect();
            let mut y = vec![0.0f32; b * cout * g.howo()];
            let mut gw = vec![0.0f32; wt.len()];
            let flop = 2.0 * (b * cout * g.howo() * cin * 9) as f64;
            let time = |f: &mut dyn FnMut()| {
                for _ in 0..2 {
                    f();
                }
                let t = std::time::Instant::now();
                for _ in 0..5 {
                    f();
                }
                t.elapsed().as_secs_f64() / 5.0
            };
            pool.install(|| {
                let fw = time(&mut || forward(&g, &x, &wt, None, &mut y, false));
                let bw = time(&mut || backward_weight(&g, &x, &y, &mut gw));
                println!(
                    "{name}: forward {:.1} GFLOP/s, weight gradient {:.1} GFLOP/s",
                    flop / fw / 1e9,
                    flop / bw / 1e9
                );
            });
        }
    }
}
