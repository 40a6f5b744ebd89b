//! Conv windows as GEMM operands: a chunk of NCHW images in, the im2col matrix of its kernel
//! windows out, either materialized ([`im2col`], and its adjoint [`col2im`]) or read straight
//! from the images while the AVX-512 GEMM packs its panels ([`ConvView`], with a window table
//! for short output rows).

use super::geom::ConvGeom;
use crate::ops::gemm512::Operand;

/// Span of valid output positions `lo..hi` along one axis for kernel offset `kofs` with stride 1:
/// the input index is `o + kofs - pad`.
fn valid_span(kofs: usize, pad: usize, n_in: usize, n_out: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(kofs).min(n_out);
    let hi = (n_in + pad).saturating_sub(kofs).min(n_out).max(lo);
    (lo, hi)
}

/// Writes the im2col rows of channels `c0..c0 + cg` of one image into `cols` (row stride `ld`,
/// starting at column `off`): row `(c * k + ky) * k + kx`, column `oy * wo + ox`.
pub(super) fn im2col(
    g: &ConvGeom,
    img: &[f32],
    c0: usize,
    cols: &mut [f32],
    ld: usize,
    off: usize,
) {
    let (k, s, p, wo) = (g.k, g.stride, g.pad, g.wo);
    for c in 0..g.cg() {
        let xc = &img[(c0 + c) * g.hw()..][..g.hw()];
        for ky in 0..k {
            for kx in 0..k {
                let row = (c * k + ky) * k + kx;
                let dst = &mut cols[row * ld + off..][..g.howo()];
                let (xlo, xhi) = valid_span(kx, p, g.w, wo);
                for oy in 0..g.ho {
                    let drow = &mut dst[oy * wo..][..wo];
                    let iy = oy * s + ky;
                    if iy < p || iy - p >= g.h {
                        drow.fill(0.0);
                        continue;
                    }
                    let xrow = &xc[(iy - p) * g.w..][..g.w];
                    if s == 1 {
                        drow[..xlo].fill(0.0);
                        drow[xlo..xhi].copy_from_slice(&xrow[xlo + kx - p..xhi + kx - p]);
                        drow[xhi..].fill(0.0);
                    } else {
                        for (ox, d) in drow.iter_mut().enumerate() {
                            let ix = ox * s + kx;
                            *d = if ix >= p && ix - p < g.w {
                                xrow[ix - p]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Adjoint of [`im2col`]: accumulates the rows of `cols` into channels `c0..c0 + cg` of `img`.
pub(super) fn col2im(
    g: &ConvGeom,
    cols: &[f32],
    ld: usize,
    off: usize,
    c0: usize,
    img: &mut [f32],
) {
    let (k, s, p, wo) = (g.k, g.stride, g.pad, g.wo);
    let hw = g.hw();
    for c in 0..g.cg() {
        let xc = &mut img[(c0 + c) * hw..][..hw];
        for ky in 0..k {
            for kx in 0..k {
                let row = (c * k + ky) * k + kx;
                let src = &cols[row * ld + off..][..g.howo()];
                let (xlo, xhi) = valid_span(kx, p, g.w, wo);
                for oy in 0..g.ho {
                    let iy = oy * s + ky;
                    if iy < p || iy - p >= g.h {
                        continue;
                    }
                    let srow = &src[oy * wo..][..wo];
                    let xrow = &mut xc[(iy - p) * g.w..][..g.w];
                    if s == 1 {
                        let dst = &mut xrow[xlo + kx - p..xhi + kx - p];
                        for (d, v) in dst.iter_mut().zip(&srow[xlo..xhi]) {
                            *d += v;
                        }
                    } else {
                        for (ox, v) in srow.iter().enumerate() {
                            let ix = ox * s + kx;
                            if ix >= p && ix - p < g.w {
                                xrow[ix - p] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Window lookup for short output rows: the chunk's images copied with their zero padding
/// (`[nbc, cin, h + 2 pad, w + 2 pad]`) and, for kernel offset `q = ky * k + kx` and chunk
/// position `j`, `tab[q * n + j]` = the padded pixel's offset inside the chunk (image offset plus
/// `iy * wp + ix`; the channel plane is added per row).
pub(super) struct Windows {
    pub xpad: Vec<f32>,
    pub tab: Vec<usize>,
    pub plane: usize,
}

impl Windows {
    pub fn new(g: &ConvGeom, nbc: usize, xs: &[f32]) -> Self {
        let (k, howo, n) = (g.k, g.howo(), nbc * g.howo());
        let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
        let plane = hp * wp;
        let mut xpad = vec![0.0f32; nbc * g.cin * plane];
        for (dst, src) in xpad.chunks_exact_mut(plane).zip(xs.chunks_exact(g.h * g.w)) {
            for (y, row) in src.chunks_exact(g.w).enumerate() {
                dst[(y + g.pad) * wp + g.pad..][..g.w].copy_from_slice(row);
            }
        }
        let mut tab = vec![0usize; k * k * n];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut tab[(ky * k + kx) * n..][..n];
                for (j, slot) in row.iter_mut().enumerate() {
                    let (img, pos) = (j / howo, j % howo);
                    let (iy, ix) = ((pos / g.wo) * g.stride + ky, (pos % g.wo) * g.stride + kx);
                    *slot = img * g.cin * plane + iy * wp + ix;
                }
            }
        }
        Self { xpad, tab, plane }
    }
}

/// The im2col matrix of a chunk of images, read straight from the images while packing GEMM
/// panels: element `(kidx, j)` is input channel `c0 + kidx / (k * k)` at kernel offset
/// `kidx % (k * k)` for chunk position `j`.
pub(super) struct ConvView<'a> {
    pub g: &'a ConvGeom,
    /// The chunk's images, NCHW (zero-padded when `tab` is used).
    pub x: &'a [f32],
    /// [`Windows::tab`] of the chunk; empty: read the unpadded images through row runs instead
    /// (long output rows, where slice copies beat per-element lookups).
    pub tab: &'a [usize],
    /// Channel plane size of `x` in table mode.
    pub plane: usize,
    /// Positions in the chunk.
    pub n: usize,
    pub c0: usize,
    /// Role: `false` = right operand `[kk, n]` (forward), `true` = left operand `[kk, n]` read
    /// as rows (weight gradient, `cols * go^T`).
    pub lhs: bool,
}

impl ConvView<'_> {
    /// Channel-plane offset and window-table row of row `kidx`.
    #[inline(always)]
    fn row(&self, kidx: usize) -> (usize, &[usize]) {
        let kk2 = self.g.k * self.g.k;
        let (c, q) = (kidx / kk2, kidx % kk2);
        (
            (self.c0 + c) * self.plane,
            &self.tab[q * self.n..][..self.n],
        )
    }
}

#[inline(always)]
fn fetch(x: &[f32], base: usize, off: usize) -> f32 {
    x[base + off]
}

/// A run of consecutive output positions inside one output row: `len` positions starting at
/// `(img, oy, ox)`, stored at offset `o` of the packed index.
#[derive(Clone, Copy)]
struct Run {
    o: usize,
    img: usize,
    oy: usize,
    ox: usize,
    len: usize,
}

/// Copies a short slice without a `memcpy` call (8-float blocks the compiler keeps in registers).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (a, b) in (&mut d).zip(&mut s) {
        a.copy_from_slice(b);
    }
    for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a = *b;
    }
}

impl ConvView<'_> {
    /// Splits positions `j..j + len` into runs along output rows.
    fn runs(&self, mut j: usize, len: usize, out: &mut Vec<Run>) {
        let g = self.g;
        let howo = g.howo();
        out.clear();
        let end = j + len;
        let (mut img, mut pos) = (j / howo, j % howo);
        let (mut oy, mut ox) = (pos / g.wo, pos % g.wo);
        while j < end {
            let run = (g.wo - ox).min(end - j);
            out.push(Run {
                o: j + len - end,
                img,
                oy,
                ox,
                len: run,
            });
            j += run;
            pos += run;
            ox = 0;
            oy += 1;
            if pos == howo {
                pos = 0;
                oy = 0;
                img += 1;
            }
        }
    }

    /// `out[t] = cols((c, ky, kx), position t of run r)` for the positions of `r`.
    #[inline(always)]
    fn fill(&self, c: usize, ky: usize, kx: usize, r: &Run, out: &mut [f32]) {
        let g = self.g;
        let out = &mut out[..r.len];
        let iy = r.oy * g.stride + ky;
        if iy < g.pad || iy - g.pad >= g.h {
            out.fill(0.0);
            return;
        }
        let xrow = &self.x[((r.img * g.cin + self.c0 + c) * g.h + iy - g.pad) * g.w..][..g.w];
        if g.stride == 1 {
            // ix = ox + t + kx - pad must lie in 0..w
            let first = r.ox + kx;
            let lo = g.pad.saturating_sub(first).min(r.len);
            let hi = (g.w + g.pad).saturating_sub(first).min(r.len).max(lo);
            if lo == hi {
                // The whole run reads padding (a pad wider than what the run covers).
                out.fill(0.0);
                return;
            }
            out[..lo].fill(0.0);
            copy_short(
                &mut out[lo..hi],
                &xrow[first + lo - g.pad..first + hi - g.pad],
            );
            out[hi..].fill(0.0);
        } else {
            for (t, o) in out.iter_mut().enumerate() {
                let ix = (r.ox + t) * g.stride + kx;
                *o = if ix >= g.pad && ix - g.pad < g.w {
                    xrow[ix - g.pad]
                } else {
                    0.0
                };
            }
        }
    }

    /// Packing through row runs and slice copies (long output rows).
    fn pack_runs(
        &self,
        outer0: usize,
        width: usize,
        p0: usize,
        kc: usize,
        dst: &mut [f32],
        w: usize,
    ) {
        let k = self.g.k;
        let mut runs = Vec::with_capacity(8);
        if self.lhs {
            // Gather up to PIECE positions of every row contiguously, then interleave them into
            // the panel with contiguous stores.
            const PIECE: usize = 64;
            self.runs(p0, kc, &mut runs);
            let dec: Vec<(usize, usize, usize)> = (0..width)
                .map(|t| {
                    let kidx = outer0 + t;
                    (kidx / (k * k), (kidx / k) % k, kidx % k)
                })
                .collect();
            let mut tmp = vec![0.0f32; w * PIECE];
            for r in &runs {
                let mut done = 0;
                while done < r.len {
                    let piece = Run {
                        o: r.o + done,
                        ox: r.ox + done,
                        len: PIECE.min(r.len - done),
                        ..*r
                    };
                    for (t, &(c, ky, kx)) in dec.iter().enumerate() {
                        self.fill(c, ky, kx, &piece, &mut tmp[t * PIECE..]);
                    }
                    for q in 0..piece.len {
                        let d = &mut dst[(piece.o + q) * w..][..w];
                        for (t, v) in d[..width].iter_mut().enumerate() {
                            *v = tmp[t * PIECE + q];
                        }
                        d[width..].fill(0.0);
                    }
                    done += piece.len;
                }
            }
        } else {
            self.runs(outer0, width, &mut runs);
            let (mut c, mut ky, mut kx) = (p0 / (k * k), (p0 / k) % k, p0 % k);
            for p in 0..kc {
                let row = &mut dst[p * w..][..w];
                for r in &runs {
                    self.fill(c, ky, kx, r, &mut row[r.o..]);
                }
                row[width..].fill(0.0);
                kx += 1;
                if kx == k {
                    kx = 0;
                    ky += 1;
                    if ky == k {
                        ky = 0;
                        c += 1;
                    }
                }
            }
        }
    }
}

impl Operand for ConvView<'_> {
    fn pack(&self, outer0: usize, width: usize, p0: usize, kc: usize, dst: &mut [f32], w: usize) {
        if self.tab.is_empty() {
            return self.pack_runs(outer0, width, p0, kc, dst, w);
        }
        if self.lhs {
            // rows = kidx (outer), shared dim = positions
            let rows: Vec<(usize, &[usize])> = (0..width)
                .map(|t| {
                    let (base, tab) = self.row(outer0 + t);
                    (base, &tab[p0..p0 + kc])
                })
                .collect();
            for (p, d) in dst[..kc * w].chunks_exact_mut(w).enumerate() {
                for (v, &(base, tab)) in d.iter_mut().zip(&rows) {
                    *v = fetch(self.x, base, tab[p]);
                }
                d[width..].fill(0.0);
            }
        } else {
            // shared dim = kidx, columns = positions (outer)
            for (p, d) in dst[..kc * w].chunks_exact_mut(w).enumerate() {
                let (base, tab) = self.row(p0 + p);
                for (v, &off) in d.iter_mut().zip(&tab[outer0..outer0 + width]) {
                    *v = fetch(self.x, base, off);
                }
                d[width..].fill(0.0);
            }
        }
    }
}
