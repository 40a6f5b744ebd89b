//! 2-D convolution on the CPU: NCHW input, `[Cout, Cin/groups, k, k]` weight and optional bias
//! in, NCHW output out, with the backward pass (input, weight and bias gradients) recorded on the
//! tape. Images are processed in chunks on the rayon pool; each chunk is lowered with im2col (or
//! read in place for 1x1 stride-1 kernels) and multiplied with the `gemm` crate.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, Merge, PutTape, Tape};
use gemm::Parallelism;
use rayon::prelude::*;

use super::cpu::{merge_tapes, output, put_grad, split, take_grad};
use super::gemm512::{self, Lhs, Operand, Rhs};
use super::math::{sgemm, Mat};
use super::{config_err, shape_err, Conv2dCfg, OpsError, Shape4, Tensor1, Tensor4};

/// Validated geometry of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub b: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    /// Checks the operand shapes against each other and the configuration.
    pub fn new(
        x: Shape4,
        w: Shape4,
        bias: Option<usize>,
        cfg: Conv2dCfg,
    ) -> Result<Self, OpsError> {
        const OP: &str = "conv2d";
        let (b, cin, h, wd) = x;
        let (cout, cg, k, k2) = w;
        if cfg.stride == 0 {
            return Err(config_err(OP, "stride must be at least 1"));
        }
        if cfg.groups == 0 {
            return Err(config_err(OP, "groups must be at least 1"));
        }
        if k != k2 || k == 0 {
            return Err(shape_err(
                OP,
                format!("kernel must be square and non-empty, got {k}x{k2}"),
            ));
        }
        if !cin.is_multiple_of(cfg.groups) || !cout.is_multiple_of(cfg.groups) {
            return Err(shape_err(
                OP,
                format!(
                    "{} groups do not divide {cin} input and {cout} output channels",
                    cfg.groups
                ),
            ));
        }
        if cg * cfg.groups != cin {
            return Err(shape_err(
                OP,
                format!(
                    "weight has {cg} input channels per group, input has {cin} channels in {} groups",
                    cfg.groups
                ),
            ));
        }
        if let Some(nb) = bias {
            if nb != cout {
                return Err(shape_err(
                    OP,
                    format!("bias has {nb} entries for {cout} output channels"),
                ));
            }
        }
        let (hp, wp) = (h + 2 * cfg.padding, wd + 2 * cfg.padding);
        if hp < k || wp < k {
            return Err(shape_err(
                OP,
                format!("padded input {hp}x{wp} is smaller than the {k}x{k} kernel"),
            ));
        }
        Ok(Self {
            b,
            cin,
            h,
            w: wd,
            cout,
            k,
            stride: cfg.stride,
            pad: cfg.padding,
            groups: cfg.groups,
            ho: (hp - k) / cfg.stride + 1,
            wo: (wp - k) / cfg.stride + 1,
        })
    }

    /// Input channels per group.
    pub fn cg(&self) -> usize {
        self.cin / self.groups
    }
    /// Output channels per group.
    pub fn og(&self) -> usize {
        self.cout / self.groups
    }
    /// Rows of the im2col matrix of one group: `cg * k * k`.
    pub fn kk(&self) -> usize {
        self.cg() * self.k * self.k
    }
    fn hw(&self) -> usize {
        self.h * self.w
    }
    fn howo(&self) -> usize {
        self.ho * self.wo
    }
    /// 1x1, stride 1, no padding: the input image is its own im2col matrix.
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }
    /// Whether to read conv windows straight into the GEMM panels (the AVX-512 path) instead of
    /// materializing im2col.
    fn implicit(&self) -> bool {
        gemm512::available()
    }
    /// Short output rows: look windows up in a table rather than copying row runs.
    fn table_windows(&self) -> bool {
        self.wo < 16
    }
    /// Images per work chunk: enough columns for an efficient GEMM, enough chunks for the pool.
    fn chunk(&self) -> usize {
        let threads = rayon::current_num_threads().max(1);
        let by_cols = (512 / self.howo().max(1)).max(1);
        let by_threads = (self.b / (2 * threads)).max(1);
        by_cols.min(by_threads).min(self.b.max(1))
    }
}

/// Span of valid output positions `lo..hi` along one axis for kernel offset `kofs` with stride 1:
/// the input index is `o + kofs - pad`.
fn valid_span(kofs: usize, pad: usize, n_in: usize, n_out: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(kofs).min(n_out);
    let hi = (n_in + pad).saturating_sub(kofs).min(n_out).max(lo);
    (lo, hi)
}

/// Writes the im2col rows of channels `c0..c0 + cg` of one image into `cols` (row stride `ld`,
/// starting at column `off`): row `(c * k + ky) * k + kx`, column `oy * wo + ox`.
fn im2col(g: &ConvGeom, img: &[f32], c0: usize, cols: &mut [f32], ld: usize, off: usize) {
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
fn col2im(g: &ConvGeom, cols: &[f32], ld: usize, off: usize, c0: usize, img: &mut [f32]) {
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
struct Windows {
    xpad: Vec<f32>,
    tab: Vec<usize>,
    plane: usize,
}

impl Windows {
    fn new(g: &ConvGeom, nbc: usize, xs: &[f32]) -> Self {
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
struct ConvView<'a> {
    g: &'a ConvGeom,
    /// The chunk's images, NCHW (zero-padded when `tab` is used).
    x: &'a [f32],
    /// [`Windows::tab`] of the chunk; empty: read the unpadded images through row runs instead
    /// (long output rows, where slice copies beat per-element lookups).
    tab: &'a [usize],
    /// Channel plane size of `x` in table mode.
    plane: usize,
    /// Positions in the chunk.
    n: usize,
    c0: usize,
    /// Role: `false` = right operand `[kk, n]` (forward), `true` = left operand `[kk, n]` read
    /// as rows (weight gradient, `cols * go^T`).
    lhs: bool,
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

/// Scratch buffers of one worker (borrowed from a per-thread pool, not zeroed).
struct Scratch<'a> {
    cols: &'a mut [f32],
    tmp: &'a mut [f32],
}

thread_local! {
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with this thread's scratch buffers sized for `nb` images (`cols` only when needed).
/// `f` must not start rayon work that could run another conv on this thread.
fn with_scratch<R>(g: &ConvGeom, nb: usize, cols: bool, f: impl FnOnce(Scratch<'_>) -> R) -> R {
    let n = nb * g.howo();
    let (nc, nt) = (if cols { g.kk() * n } else { 0 }, g.og() * n);
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let (c, t) = &mut *bufs;
            if c.len() < nc {
                c.resize(nc, 0.0);
            }
            if t.len() < nt {
                t.resize(nt, 0.0);
            }
            f(Scratch {
                cols: &mut c[..nc],
                tmp: &mut t[..nt],
            })
        }
        // Re-entered on this thread (work stealing): use fresh buffers.
        Err(_) => f(Scratch {
            cols: &mut vec![0.0; nc],
            tmp: &mut vec![0.0; nt],
        }),
    })
}

/// Writes `tmp [og, nbc * howo]` (group `grp` of a chunk) into the chunk's NCHW output rows,
/// adding the bias.
fn scatter_out(
    g: &ConvGeom,
    tmp: &[f32],
    grp: usize,
    nbc: usize,
    bias: Option<&[f32]>,
    ychunk: &mut [f32],
    accumulate: bool,
) {
    let (howo, og) = (g.howo(), g.og());
    let n = nbc * howo;
    for bi in 0..nbc {
        for o in 0..og {
            let co = grp * og + o;
            let dst = &mut ychunk[(bi * g.cout + co) * howo..][..howo];
            let src = &tmp[o * n + bi * howo..][..howo];
            let bv = bias.map_or(0.0, |b| b[co]);
            if accumulate {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s + bv;
                }
            } else {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s + bv;
                }
            }
        }
    }
}

/// Forward convolution: `y = conv(x, w) + b`, all row-major NCHW.
pub(crate) fn forward(g: &ConvGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0.0f32; g.b * g.cout * g.howo()];
    forward_into(g, x, w, bias, &mut y, false);
    y
}

/// Forward convolution into `y`: `y = (accumulate ? y : 0) + conv(x, w) + b`.
fn forward_into(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    accumulate: bool,
) {
    let (howo, hw, og, kk) = (g.howo(), g.hw(), g.og(), g.kk());
    if y.is_empty() {
        return;
    }
    let nb = g.chunk();
    let fast = g.implicit();
    y.par_chunks_mut(nb * g.cout * howo)
        .enumerate()
        .for_each(|(ci, ychunk)| {
            with_scratch(g, nb, !fast, |sc| {
                let b0 = ci * nb;
                let nbc = ychunk.len() / (g.cout * howo);
                let n = nbc * howo;
                let xs = &x[b0 * g.cin * hw..][..nbc * g.cin * hw];
                let win = (fast && g.table_windows()).then(|| Windows::new(g, nbc, xs));
                for grp in 0..g.groups {
                    let c0 = grp * g.cg();
                    let view = ConvView {
                        g,
                        x: win.as_ref().map_or(xs, |w| &w.xpad),
                        tab: win.as_ref().map_or(&[], |w| &w.tab),
                        plane: win.as_ref().map_or(0, |w| w.plane),
                        n,
                        c0,
                        lhs: false,
                    };
                    let direct = g.pointwise() && nbc == 1;
                    if !fast && !direct {
                        for bi in 0..nbc {
                            im2col(
                                g,
                                &xs[bi * g.cin * hw..][..g.cin * hw],
                                c0,
                                sc.cols,
                                n,
                                bi * howo,
                            );
                        }
                    }
                    let cols = if direct {
                        Mat::rows(&xs[c0 * hw..], hw)
                    } else {
                        Mat::rows(sc.cols, n)
                    };
                    let wg = Mat::rows(&w[grp * og * kk..], kk);
                    let run = |dst: &mut [f32], ld: usize, acc: bool| {
                        if fast {
                            gemm512::gemm(og, n, kk, &Lhs(wg), &view, dst, ld, acc);
                        } else {
                            sgemm(og, n, kk, wg, cols, dst, ld, acc, Parallelism::None);
                        }
                    };
                    if nbc == 1 {
                        let dst = &mut ychunk[grp * og * howo..][..og * howo];
                        if let (Some(bias), false) = (bias, accumulate) {
                            for (o, row) in dst.chunks_exact_mut(howo).enumerate() {
                                row.fill(bias[grp * og + o]);
                            }
                        } else if let Some(bias) = bias {
                            for (o, row) in dst.chunks_exact_mut(howo).enumerate() {
                                row.iter_mut().for_each(|v| *v += bias[grp * og + o]);
                            }
                        }
                        run(dst, howo, accumulate || bias.is_some());
                    } else {
                        run(&mut sc.tmp[..og * n], n, false);
                        scatter_out(g, sc.tmp, grp, nbc, bias, ychunk, accumulate);
                    }
                }
            })
        });
}

/// Copies the output-gradient rows of group `grp` of a chunk into `tmp` as `[og, nbc * howo]`.
fn gather_go(g: &ConvGeom, gochunk: &[f32], grp: usize, nbc: usize, tmp: &mut [f32]) {
    let (howo, og) = (g.howo(), g.og());
    let n = nbc * howo;
    for bi in 0..nbc {
        for o in 0..og {
            let co = grp * og + o;
            tmp[o * n + bi * howo..][..howo]
                .copy_from_slice(&gochunk[(bi * g.cout + co) * howo..][..howo]);
        }
    }
}

/// Accumulates the weight gradient `gw += go * im2col(x)^T` into `gw`.
pub(crate) fn backward_weight(g: &ConvGeom, x: &[f32], go: &[f32], gw: &mut [f32]) {
    let (howo, hw, og, kk) = (g.howo(), g.hw(), g.og(), g.kk());
    if go.is_empty() {
        return;
    }
    if g.implicit() {
        backward_weight_fast(g, x, go, gw);
        return;
    }
    let nb = g.chunk();
    let partial = go
        .par_chunks(nb * g.cout * howo)
        .enumerate()
        .fold(
            || vec![0.0f32; gw.len()],
            |mut acc, (ci, gochunk)| {
                with_scratch(g, nb, true, |sc| {
                    let b0 = ci * nb;
                    let nbc = gochunk.len() / (g.cout * howo);
                    let n = nbc * howo;
                    for grp in 0..g.groups {
                        let c0 = grp * g.cg();
                        let direct = g.pointwise() && nbc == 1;
                        if !direct {
                            for bi in 0..nbc {
                                let img = &x[(b0 + bi) * g.cin * hw..][..g.cin * hw];
                                im2col(g, img, c0, sc.cols, n, bi * howo);
                            }
                        }
                        let cols_t = if direct {
                            Mat::rows_t(&x[b0 * g.cin * hw + c0 * hw..], hw)
                        } else {
                            Mat::rows_t(sc.cols, n)
                        };
                        let gov = if nbc == 1 {
                            Mat::rows(&gochunk[grp * og * howo..], howo)
                        } else {
                            gather_go(g, gochunk, grp, nbc, sc.tmp);
                            Mat::rows(sc.tmp, n)
                        };
                        let dst = &mut acc[grp * og * kk..][..og * kk];
                        sgemm(og, kk, n, gov, cols_t, dst, kk, true, Parallelism::None);
                    }
                });
                acc
            },
        )
        .reduce_with(|mut a, b| {
            for (x, y) in a.iter_mut().zip(&b) {
                *x += y;
            }
            a
        });
    if let Some(p) = partial {
        for (d, s) in gw.iter_mut().zip(&p) {
            *d += s;
        }
    }
}

/// [`backward_weight`] on the AVX-512 path: `gw^T = cols * go^T` with the windows read while
/// packing, accumulated per worker in `[groups, kk, og]` and transposed once at the end.
fn backward_weight_fast(g: &ConvGeom, x: &[f32], go: &[f32], gw: &mut [f32]) {
    let (howo, hw, og, kk, cg) = (g.howo(), g.hw(), g.og(), g.kk(), g.cg());
    let nb = g.chunk();
    let partial = go
        .par_chunks(nb * g.cout * howo)
        .enumerate()
        .fold(
            || vec![0.0f32; gw.len()],
            |mut acc, (ci, gochunk)| {
                with_scratch(g, nb, false, |sc| {
                    let tmp = sc.tmp;
                    let b0 = ci * nb;
                    let nbc = gochunk.len() / (g.cout * howo);
                    let n = nbc * howo;
                    let xs = &x[b0 * g.cin * hw..][..nbc * g.cin * hw];
                    let win = g.table_windows().then(|| Windows::new(g, nbc, xs));
                    for grp in 0..g.groups {
                        let view = ConvView {
                            g,
                            x: win.as_ref().map_or(xs, |w| &w.xpad),
                            tab: win.as_ref().map_or(&[], |w| &w.tab),
                            plane: win.as_ref().map_or(0, |w| w.plane),
                            n,
                            c0: grp * cg,
                            lhs: true,
                        };
                        let got = if nbc == 1 {
                            Rhs(Mat {
                                data: &gochunk[grp * og * howo..][..og * howo],
                                rs: 1,
                                cs: howo,
                            })
                        } else {
                            gather_go(g, gochunk, grp, nbc, tmp);
                            Rhs(Mat {
                                data: &tmp[..og * n],
                                rs: 1,
                                cs: n,
                            })
                        };
                        let dst = &mut acc[grp * kk * og..][..kk * og];
                        gemm512::gemm(kk, og, n, &view, &got, dst, og, true);
                    }
                });
                acc
            },
        )
        .reduce_with(|mut a, b| {
            for (x, y) in a.iter_mut().zip(&b) {
                *x += y;
            }
            a
        });
    if let Some(p) = partial {
        for grp in 0..g.groups {
            for o in 0..og {
                let row = &mut gw[(grp * og + o) * kk..][..kk];
                for (kidx, d) in row.iter_mut().enumerate() {
                    *d += p[grp * kk * og + kidx * og + o];
                }
            }
        }
    }
}

/// Accumulates the input gradient `gx += col2im(w^T * go)` into `gx`.
pub(crate) fn backward_input(g: &ConvGeom, w: &[f32], go: &[f32], gx: &mut [f32]) {
    let (howo, hw, og, kk) = (g.howo(), g.hw(), g.og(), g.kk());
    if go.is_empty() || gx.is_empty() {
        return;
    }
    if g.stride == 1 && g.pad < g.k {
        return backward_input_transposed(g, w, go, gx);
    }
    let nb = g.chunk();
    gx.par_chunks_mut(nb * g.cin * hw)
        .zip(go.par_chunks(nb * g.cout * howo))
        .for_each(|(gxchunk, gochunk)| {
            with_scratch(g, nb, true, |sc| {
                let nbc = gochunk.len() / (g.cout * howo);
                let n = nbc * howo;
                for grp in 0..g.groups {
                    let c0 = grp * g.cg();
                    let gov = if nbc == 1 {
                        Mat::rows(&gochunk[grp * og * howo..], howo)
                    } else {
                        gather_go(g, gochunk, grp, nbc, sc.tmp);
                        Mat::rows(sc.tmp, n)
                    };
                    let wt = Mat::rows_t(&w[grp * og * kk..], kk);
                    if g.pointwise() && nbc == 1 {
                        let dst = &mut gxchunk[c0 * hw..][..g.cg() * hw];
                        sgemm(kk, n, og, wt, gov, dst, hw, true, Parallelism::None);
                        continue;
                    }
                    sgemm(kk, n, og, wt, gov, sc.cols, n, false, Parallelism::None);
                    for bi in 0..nbc {
                        let img = &mut gxchunk[bi * g.cin * hw..][..g.cin * hw];
                        col2im(g, sc.cols, n, bi * howo, c0, img);
                    }
                }
            })
        });
}

/// [`backward_input`] for stride 1: the input gradient of a stride-1 convolution is the
/// stride-1 convolution of the output gradient with the flipped, channel-transposed kernel and
/// padding `k - 1 - pad`, so it runs through the forward path (no col2im scatter).
fn backward_input_transposed(g: &ConvGeom, w: &[f32], go: &[f32], gx: &mut [f32]) {
    let (k, og, cg) = (g.k, g.og(), g.cg());
    let mut wt = vec![0.0f32; w.len()];
    for grp in 0..g.groups {
        for o in 0..og {
            for c in 0..cg {
                for ky in 0..k {
                    for kx in 0..k {
                        let src = (((grp * og + o) * cg + c) * k + ky) * k + kx;
                        let dst = (((grp * cg + c) * og + o) * k + (k - 1 - ky)) * k + (k - 1 - kx);
                        wt[dst] = w[src];
                    }
                }
            }
        }
    }
    let gt = ConvGeom {
        b: g.b,
        cin: g.cout,
        h: g.ho,
        w: g.wo,
        cout: g.cin,
        k,
        stride: 1,
        pad: k - 1 - g.pad,
        groups: g.groups,
        ho: g.h,
        wo: g.w,
    };
    forward_into(&gt, go, &wt, None, gx, true);
}

/// Accumulates the bias gradient: the sum of `go` over batch and positions per channel.
pub(crate) fn backward_bias(g: &ConvGeom, go: &[f32], gb: &mut [f32]) {
    let howo = g.howo();
    if howo == 0 {
        return;
    }
    for (i, row) in go.chunks_exact(howo).enumerate() {
        gb[i % g.cout] += super::math::sum(row);
    }
}

/// [`super::Kernels::conv2d`] for [`Cpu`].
pub(crate) fn cpu_conv2d<Tx, T>(
    x: Tensor4<Cpu, Tx>,
    w: Tensor4<Cpu, T>,
    b: Option<Tensor1<Cpu, T>>,
    cfg: Conv2dCfg,
) -> Result<Tensor4<Cpu, T>, OpsError>
where
    Tx: Tape<f32, Cpu>,
    T: Tape<f32, Cpu> + Merge<Tx>,
{
    let g = ConvGeom::new(*x.shape(), *w.shape(), b.as_ref().map(|b| b.shape().0), cfg)?;
    let (x, tx, xd) = split(x)?;
    let (w, tw, wd) = split(w)?;
    let mut tape = merge_tapes(tw, tx);
    let (b, bd) = match b {
        Some(b) => {
            let (b, tb, bd) = split(b)?;
            tape = tape.merge(tb);
            (Some(b), Some(bd))
        }
        None => (None, None),
    };
    let y = forward(&g, &xd, &wd, bd.as_deref());
    let out = output(x.device(), y, (g.b, g.cout, g.ho, g.wo))?;
    if T::OWNS_TAPE {
        let need_x = Tx::OWNS_TAPE;
        let (x_ghost, w_ghost, out_ghost) = (x.ghost(), w.ghost(), out.ghost());
        let b_ghost = b.as_ref().map(|b| b.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad!(grads, &out_ghost);
            let mut gw = take_grad!(grads, &w_ghost);
            backward_weight(&g, &xd, &go, &mut gw);
            put_grad!(grads, &w_ghost, gw);
            if let Some(b_ghost) = &b_ghost {
                let mut gb = take_grad!(grads, b_ghost);
                backward_bias(&g, &go, &mut gb);
                put_grad!(grads, b_ghost, gb);
            }
            if need_x {
                let mut gx = take_grad!(grads, &x_ghost);
                backward_input(&g, &wd, &go, &mut gx);
                put_grad!(grads, &x_ghost, gx);
            }
            put_grad!(grads, &out_ghost, go);
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}
