//! The geometry of one convolution: the input and weight shapes and the [`Conv2dCfg`] in, a
//! validated [`ConvGeom`] (or the [`OpsError`] saying what does not fit) out, with the derived
//! sizes and the choices of lowering the CPU kernels make from it.

use crate::ops::gemm512;
use crate::ops::types::{config_err, shape_err, Conv2dCfg, OpsError, Shape4};

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
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    pub fn howo(&self) -> usize {
        self.ho * self.wo
    }
    /// 1x1, stride 1, no padding: the input image is its own im2col matrix.
    pub fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }
    /// Whether to read conv windows straight into the GEMM panels (the AVX-512 path) instead of
    /// materializing im2col.
    pub fn implicit(&self) -> bool {
        gemm512::available()
    }
    /// Short output rows: look windows up in a table rather than copying row runs.
    pub fn table_windows(&self) -> bool {
        self.wo < 16
    }
    /// Images per work chunk: enough columns for an efficient GEMM, enough chunks for the pool,
    /// and chunks that share out evenly: of the sizes down to half the largest, the one whose
    /// busiest worker gets the fewest images (the larger on a tie). 128 images of 7x7 on two
    /// workers: 16 chunks of 8, not 13 of 10 (7 chunks against 6).
    pub fn chunk(&self) -> usize {
        self.chunk_for(rayon::current_num_threads())
    }

    /// [`Self::chunk`] for a pool of `threads` workers.
    fn chunk_for(&self, threads: usize) -> usize {
        let threads = threads.max(1);
        let by_cols = (512 / self.howo().max(1)).max(1);
        let by_threads = (self.b / (2 * threads)).max(1);
        let most = by_cols.min(by_threads).min(self.b.max(1));
        let busiest = |c: usize| self.b.div_ceil(c).div_ceil(threads) * c;
        (most.div_ceil(2)..=most)
            .rev()
            .min_by_key(|&c| busiest(c))
            .unwrap_or(most)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(b: usize, hw: usize) -> ConvGeom {
        let cfg = Conv2dCfg {
            stride: 1,
            padding: 1,
            groups: 1,
        };
        ConvGeom::new((b, 8, hw, hw), (8, 8, 3, 3), None, cfg).expect("geometry")
    }

    /// Chunks share out evenly where the column target alone would not, and never get larger
    /// than it or leave the busiest worker more images.
    #[test]
    fn chunks_share_out_evenly() {
        assert_eq!(geom(128, 7).chunk_for(2), 8);
        assert_eq!(geom(64, 14).chunk_for(2), 2);
        assert_eq!(geom(64, 28).chunk_for(2), 1);
        for b in [1, 3, 17, 64, 100, 128, 250] {
            for hw in [1, 4, 7, 10, 14, 28] {
                for threads in [1, 2, 3, 8] {
                    let g = geom(b, hw);
                    let by_cols = (512 / g.howo()).max(1);
                    let most = by_cols.min((b / (2 * threads)).max(1)).min(b);
                    let c = g.chunk_for(threads);
                    let busiest = |c: usize| b.div_ceil(c).div_ceil(threads) * c;
                    assert!(
                        (1..=most).contains(&c),
                        "b {b} hw {hw} threads {threads}: {c}"
                    );
                    assert!(
                        busiest(c) <= busiest(most),
                        "b {b} hw {hw} threads {threads}"
                    );
                }
            }
        }
    }
}
