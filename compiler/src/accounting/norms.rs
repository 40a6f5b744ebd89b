//! The transfer through a normalization: what each origin's arriving parts make of the
//! norm's mean subtraction ([`Prediction`]), recorded as a [`NormAccount`], and the parts that
//! leave it. In: the norm, the arriving state; out: the account and the outgoing parts.

use super::cov::Unit;
use super::parts::{combine_predictions, total, vector_units_align};
use super::state::{Centered, NormInput, OriginVerdict, Part, Prediction, Sig};
use super::{single_value_units, spatial, Acc, Accounting, NormAccount};
use crate::ast::Span;
use crate::ir::{NodeId, NormKind, Shape};
use std::borrow::Cow;

/// Whether a change mean-free on the units of `c` is mean-free on this norm's units (each of
/// them a union of those).
pub(super) fn fits(c: Centered, kind: NormKind, m: usize) -> bool {
    match kind {
        NormKind::Batch => c.m <= 1,
        // Mean-free over whole maps says nothing of each position's mean over the channels.
        NormKind::PerPosition => false,
        _ => c.m >= 1 && m.is_multiple_of(c.m),
    }
}

impl Accounting {
    /// The account norm `i` (an index into `norms`) would have with `kind` in its place and
    /// everything before it unchanged, computed from what it received. This is the account a
    /// full re-analysis gives when the norm is the only node an edit changes: nothing upstream
    /// of a norm depends on it. `None` for attention's inner norm.
    pub fn norm_as(&self, i: usize, kind: NormKind) -> Option<NormAccount> {
        let v = self.norms.get(i)?;
        let inp = self.norm_inputs.get(i)?;
        let sig = self.graphs.get(v.graph_index)?.states.get(inp.node?)?;
        let mut acc = Acc {
            batch: self.batch,
            per_sample: self.per_sample,
            origins: Vec::new(),
            norms: Vec::new(),
            norm_inputs: Vec::new(),
            graphs: Vec::new(),
            tracked: 0,
            limit: usize::MAX,
            truncated: None,
            labeled: Vec::new(),
            concat: Vec::new(),
            focus: None,
        };
        acc.norm(
            v.graph_index,
            &v.graph,
            v.node_id,
            v.node.clone(),
            v.span,
            kind,
            v.channels,
            inp.shape,
            inp.flags,
            (sig, inp.node),
            false,
        );
        acc.norms.pop()
    }
}

impl Acc {
    /// The transfer through a normalization, recording its account.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn norm(
        &mut self,
        gi: usize,
        gpath: &str,
        id: NodeId,
        name: String,
        span: Span,
        kind: NormKind,
        channels: usize,
        shape: Shape,
        (flat_space, feat, const_in): (bool, Option<Centered>, bool),
        (input, input_node): (&Sig, Option<NodeId>),
        in_attention: bool,
    ) -> Vec<Part> {
        self.norm_inputs.push(NormInput {
            node: input_node.filter(|_| !in_attention),
            shape,
            flags: (flat_space, feat, const_in),
        });
        let vector = matches!(shape, Shape::Vector { .. });
        let m = kind.channels_per_unit(channels).max(1);
        // Units over which a change identical across samples is averaged per channel.
        let per_channel = match kind {
            NormKind::Instance => true,
            NormKind::Group { .. } | NormKind::Layer => m == 1,
            NormKind::Batch => !self.per_sample,
            NormKind::PerPosition => false,
        };
        // A unit of two values normalizes to ±1: what leaves it changes only if their order does.
        let (_, h, w) = spatial(&shape);
        let space = if flat_space { 1 } else { h * w };
        let per_position = matches!(kind, NormKind::PerPosition);
        let n_eff = match kind {
            NormKind::Batch => self.batch * space,
            NormKind::PerPosition => m,
            _ => m * space,
        };
        let degenerate = n_eff == 2;
        // Every unit holds one value: the output is β whatever arrives (exactly, at init).
        let constant = const_in || single_value_units(kind, m) && (flat_space || per_position);
        let mut verdicts = Vec::with_capacity(input.parts().len());
        let mut out = Vec::with_capacity(input.parts().len());
        let mut lin_only = true;
        for p in input.parts() {
            let (pred, arrives, constant_part, border_part) = if constant {
                (
                    Prediction::Zero,
                    "nothing: every unit of this norm holds a single value".into(),
                    None,
                    None,
                )
            } else {
                self.predict(p, kind, m, per_channel, vector, flat_space)
            };
            lin_only &= p.lin.is_some() && p.inexact.is_none() && !p.alive && p.centered.is_none();
            verdicts.push(OriginVerdict {
                origin: p.origin,
                prediction: pred,
                arrives_as: arrives,
                constant_part,
                border_part,
            });
            if !pred.is_zero() {
                out.push(Part {
                    origin: p.origin,
                    lin: None,
                    inexact: if p.lin.is_some() || p.inexact.is_some() {
                        Some(p.inexact == Some(true) && per_channel)
                    } else {
                        None
                    },
                    alive: p.alive,
                    // The output change is Δ/σ minus a multiple of the normalized features: both
                    // mean-free on finer units when Δ and the features are, on the same units.
                    centered: match p.centered {
                        Some(c) if fits(c, kind, m) && feat == Some(c) => Some(c),
                        _ => Some(Centered {
                            m: if matches!(kind, NormKind::Batch) {
                                0
                            } else {
                                m
                            },
                        }),
                    },
                    unsure: p.unsure || pred == Prediction::Unknown || degenerate,
                    flat: false,
                    input_free: false,
                    scaled_mean_free: false,
                });
            }
        }
        self.tracked += verdicts.len() * super::VERDICT_WORK;
        let total = if verdicts.is_empty() {
            None
        } else {
            Some(total(&verdicts, lin_only))
        };
        if let Some(f) = &mut self.focus {
            verdicts.iter().for_each(|v| f.reached(v.origin, &name));
        }
        self.norms.push(NormAccount {
            graph: gpath.to_string(),
            node: name,
            graph_index: gi,
            node_id: id,
            span,
            kind,
            channels,
            channels_per_unit: m,
            in_attention,
            constant,
            origins: verdicts,
            total,
        });
        out
    }

    /// One origin's prediction at a norm with `m` channels per unit.
    fn predict(
        &self,
        p: &Part,
        kind: NormKind,
        m: usize,
        per_channel: bool,
        vector: bool,
        flat_space: bool,
    ) -> (Prediction, Cow<'static, str>, Option<f64>, Option<f64>) {
        let (mut pred, mut words, cp, bp) =
            self.predict_part(p, kind, m, per_channel, vector, flat_space);
        if p.unsure && !pred.is_zero() {
            pred = Prediction::Unknown;
            words = Cow::Owned(
                words.into_owned() + " (possibly nothing: an earlier norm may have undone it)",
            );
        }
        (pred, words, cp, bp)
    }

    fn predict_part(
        &self,
        p: &Part,
        kind: NormKind,
        m: usize,
        per_channel: bool,
        vector: bool,
        flat_space: bool,
    ) -> (Prediction, Cow<'static, str>, Option<f64>, Option<f64>) {
        let batch = matches!(kind, NormKind::Batch);
        // A value constant over H, W per sample: per-channel units remove every change.
        let instance_like = matches!(kind, NormKind::Instance)
            || matches!(kind, NormKind::Group { .. } | NormKind::Layer) && m == 1;
        // So does a change constant over H, W per sample and channel (and BatchNorm, below,
        // when it is the same for every sample).
        if instance_like && (flat_space || p.flat || vector && !matches!(kind, NormKind::Layer)) {
            return (
                Prediction::Zero,
                "a change constant over each unit".into(),
                None,
                None,
            );
        }
        // A vector has no space: a change identical across samples is constant on BatchNorm's
        // units whatever else it is made of.
        if (p.flat || flat_space || vector) && p.input_free && batch {
            return if self.per_sample {
                (
                    Prediction::Between {
                        low: 0.0,
                        high: 1.0,
                    },
                    "a per-channel constant that may differ per sample".into(),
                    None,
                    None,
                )
            } else {
                (
                    Prediction::Zero,
                    "a per-channel constant shared by the batch".into(),
                    None,
                    None,
                )
            };
        }
        if let Some(c) = p.centered {
            // Mean-free on finer units already: nothing more to remove.
            if fits(c, kind, m) {
                return (
                    Prediction::Exact { fraction: 1.0 },
                    "already mean-free on this norm's units (an earlier norm)".into(),
                    None,
                    None,
                );
            }
        }
        // At most one entry each for the linear, the feature-shaped and the alive component.
        let mut preds = Three::new(Prediction::Zero);
        let mut words = Three::new("");
        let (mut constant_part, mut border_part) = (None, None);
        if let Some(l) = &p.lin {
            if matches!(kind, NormKind::PerPosition) {
                // The mean over one position's m channels: the change is uncorrelated across
                // channels at initialization, each position keeps 1 - 1/m of its energy
                // whatever its spatial shape (offset, pattern or border).
                let f = 1.0 - 1.0 / m as f64;
                preds.push(if f > 0.0 {
                    Prediction::Exact { fraction: f }
                } else {
                    Prediction::Zero
                });
                if l.from_constant {
                    constant_part = Some(f);
                    border_part = Some(0.0);
                    words.push("a per-channel offset");
                } else {
                    words.push("a spatial pattern");
                }
            } else if batch && self.per_sample {
                // The batch mean depends on how the embedding changes differ across samples:
                // anywhere from the per-sample spatial survival to everything.
                let inst = l.cov.kept(Unit { m: 1 }).unwrap_or(0.0);
                preds.push(Prediction::Between {
                    low: inst,
                    high: 1.0,
                });
                words.push("a linear change differing per sample");
            } else if !l.cov.tractable() || l.flat && !vector_units_align(l, kind, m) {
                preds.push(Prediction::Nonzero);
                words.push("a linear change too large to track exactly");
            } else {
                let unit_m = if l.flat {
                    match kind {
                        NormKind::Layer => l.cov.c,
                        NormKind::Group { groups } => l.cov.c / groups.max(1),
                        _ => 1,
                    }
                } else if per_channel || batch {
                    1
                } else {
                    m
                };
                match l.cov.kept(Unit { m: unit_m }) {
                    None | Some(0.0) => preds.push(Prediction::Zero),
                    Some(f) => preds.push(Prediction::Exact { fraction: f }),
                }
                if l.from_constant {
                    let cp = if unit_m == 1 {
                        0.0
                    } else {
                        1.0 - 1.0 / unit_m as f64
                    };
                    constant_part = Some(cp);
                    let f = preds.last().and_then(|x| x.fraction()).unwrap_or(0.0);
                    border_part = Some((f - cp).max(0.0));
                    words.push(if f - cp > 1e-12 {
                        "a per-channel offset with a zero-padding border structure"
                    } else {
                        "a per-channel offset"
                    });
                } else {
                    words.push("a spatial pattern");
                }
            }
        }
        if let Some(scale) = p.inexact {
            // BatchNorm with t per sample undoes it too when the samples' scales agree.
            if scale && (per_channel || batch) {
                preds.push(Prediction::Unknown);
                words
                    .push("a per-channel scale of the features (undone unless 1 + s changes sign)");
            } else {
                preds.push(Prediction::Nonzero);
                words.push("a linear change shaped by the features");
            }
        }
        if p.alive {
            preds.push(Prediction::Nonzero);
            words.push("a change through a nonlinearity");
        }
        let pred = combine_predictions(preds.as_slice());
        let words = match words.as_slice() {
            [one] => Cow::Borrowed(*one),
            many => Cow::Owned(many.join(" + ")),
        };
        (pred, words, constant_part, border_part)
    }
}

/// Up to three values without a heap allocation (one verdict is made per origin and norm).
struct Three<T: Copy> {
    items: [T; 3],
    len: usize,
}

impl<T: Copy> Three<T> {
    fn new(fill: T) -> Self {
        Three {
            items: [fill; 3],
            len: 0,
        }
    }
    fn push(&mut self, x: T) {
        self.items[self.len] = x;
        self.len += 1;
    }
    fn last(&self) -> Option<&T> {
        self.as_slice().last()
    }
    fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }
}
