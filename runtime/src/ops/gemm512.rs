//! Single-threaded f32 GEMM for CPUs with AVX-512F (detected at run time): operands `a [m, k]` and
//! `b [k, n]` that pack themselves (the [`Operand`] trait: strided matrices in `math`, conv windows
//! read straight from images in `conv`), row-major `c [m, n]` updated in place (`c = c + a b` or
//! `c = a b`). It imports nothing from the rest of `ops`. Blocked for the caches,
//! packed into per-thread buffers, a 12x32 register-tile microkernel. The `gemm` crate (used
//! otherwise) reaches AVX-512 only on nightly Rust.

/// A GEMM operand that packs itself into panels: `dst[p * w + t] = value(outer0 + t, p0 + p)` for
/// `t < width` (zeros for `width..w`) and `p < kc`. `outer` is the row of the left operand or the
/// column of the right one; `p` runs over the shared dimension. Conv lowering implements it to
/// read image windows straight into the panels (no im2col buffer).
pub(crate) trait Operand: Sync {
    /// Fills `dst[..kc * w]` as described on the trait.
    fn pack(&self, outer0: usize, width: usize, p0: usize, kc: usize, dst: &mut [f32], w: usize);
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;
    use std::cell::RefCell;

    use super::Operand;

    const MR: usize = 12;
    const NR: usize = 32;
    const KC: usize = 256;
    const MC: usize = 144;
    const NC: usize = 1024;

    thread_local! {
        static PACK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    }

    /// Whether this CPU runs the AVX-512 path (set `TDSPEC_NO_AVX512` to force the `gemm` crate).
    pub fn available() -> bool {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::env::var_os("TDSPEC_NO_AVX512").is_none() && is_x86_feature_detected!("avx512f")
        })
    }

    /// `c[MR, NR] (row stride ldc) = (add ? c : 0) + a_panel * b_panel` over `kc` steps.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; `a` holds `kc * MR` and `b` `kc * NR` floats; `c` points to
    /// `MR` rows of `NR` writable floats with row stride `ldc`.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel(kc: usize, a: &[f32], b: &[f32], c: *mut f32, ldc: usize, add: bool) {
        debug_assert!(a.len() >= kc * MR && b.len() >= kc * NR);
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..kc {
            // SAFETY: p < kc, so the reads stay inside the panels (checked by the caller).
            let (b0, b1) = unsafe {
                (
                    _mm512_loadu_ps(bp.add(p * NR)),
                    _mm512_loadu_ps(bp.add(p * NR + 16)),
                )
            };
            for (r, cr) in acc.iter_mut().enumerate() {
                // SAFETY: as above.
                let av = _mm512_set1_ps(unsafe { *ap.add(p * MR + r) });
                cr[0] = _mm512_fmadd_ps(av, b0, cr[0]);
                cr[1] = _mm512_fmadd_ps(av, b1, cr[1]);
            }
        }
        for (r, cr) in acc.iter().enumerate() {
            // SAFETY: row r of the tile is inside `c` (caller's contract).
            unsafe {
                let row = c.add(r * ldc);
                let (mut v0, mut v1) = (cr[0], cr[1]);
                if add {
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(row));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(row.add(16)));
                }
                _mm512_storeu_ps(row, v0);
                _mm512_storeu_ps(row.add(16), v1);
            }
        }
    }

    /// `dst[m, n] (row stride ldd) = (accumulate ? dst : 0) + a * b` on one thread.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm<A: Operand, B: Operand>(
        m: usize,
        n: usize,
        k: usize,
        a: &A,
        b: &B,
        dst: &mut [f32],
        ldd: usize,
        accumulate: bool,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        assert!((m - 1) * ldd + n <= dst.len(), "gemm: dst out of bounds");
        if k == 0 {
            if !accumulate {
                for i in 0..m {
                    dst[i * ldd..i * ldd + n].fill(0.0);
                }
            }
            return;
        }
        PACK.with(|cell| {
            let mut bufs = cell.borrow_mut();
            let (apack, bpack) = &mut *bufs;
            apack.resize(MC.div_ceil(MR) * MR * KC, 0.0);
            bpack.resize(NC.div_ceil(NR) * NR * KC, 0.0);
            let mut tile = [0.0f32; MR * NR];
            for j0 in (0..n).step_by(NC) {
                let nc = NC.min(n - j0);
                for p0 in (0..k).step_by(KC) {
                    let kc = KC.min(k - p0);
                    let add = accumulate || p0 > 0;
                    for jp in 0..nc.div_ceil(NR) {
                        let jb = j0 + jp * NR;
                        let w = NR.min(n - jb);
                        b.pack(jb, w, p0, kc, &mut bpack[jp * NR * kc..][..NR * kc], NR);
                    }
                    for i0 in (0..m).step_by(MC) {
                        let mc = MC.min(m - i0);
                        for ip in 0..mc.div_ceil(MR) {
                            let ib = i0 + ip * MR;
                            let h = MR.min(m - ib);
                            a.pack(ib, h, p0, kc, &mut apack[ip * MR * kc..][..MR * kc], MR);
                        }
                        for jp in 0..nc.div_ceil(NR) {
                            let bpanel = &bpack[jp * NR * kc..][..NR * kc];
                            let jb = j0 + jp * NR;
                            let w = NR.min(n - jb);
                            for ip in 0..mc.div_ceil(MR) {
                                let apanel = &apack[ip * MR * kc..][..MR * kc];
                                let ib = i0 + ip * MR;
                                let h = MR.min(m - ib);
                                if h == MR && w == NR {
                                    let out = &mut dst[ib * ldd + jb..];
                                    assert!(out.len() >= (MR - 1) * ldd + NR);
                                    // SAFETY: AVX-512F was detected (`available`); the panels
                                    // hold kc * MR and kc * NR floats; the tile lies in `out`.
                                    unsafe {
                                        kernel(kc, apanel, bpanel, out.as_mut_ptr(), ldd, add)
                                    };
                                    continue;
                                }
                                // SAFETY: as above, into the local MR x NR tile.
                                unsafe { kernel(kc, apanel, bpanel, tile.as_mut_ptr(), NR, false) };
                                for r in 0..h {
                                    let row = &mut dst[(ib + r) * ldd + jb..][..w];
                                    let src = &tile[r * NR..][..w];
                                    if add {
                                        for (d, s) in row.iter_mut().zip(src) {
                                            *d += s;
                                        }
                                    } else {
                                        row.copy_from_slice(src);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use imp::{available, gemm};

/// No AVX-512 path off x86-64.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn available() -> bool {
    false
}

/// Never called off x86-64 ([`available`] is false).
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<A: Operand, B: Operand>(
    _m: usize,
    _n: usize,
    _k: usize,
    _a: &A,
    _b: &B,
    _dst: &mut [f32],
    _ldd: usize,
    _accumulate: bool,
) {
}
