//! The built-in layers, each described once in [`OPS`]: the name a spec calls it by, its
//! arguments, and the builder that checks them, applies the op's shape rule and adds the node.
//! The parameters a node owns follow from its IR op ([`crate::ir::Op::params`]). The builders
//! are grouped by kind: [`conv`], [`norm`], [`layers`], [`time`] (injections), [`ode`].

mod builder;
mod conv;
mod layers;
mod norm;
mod ode;
mod time;

use crate::ast;
use crate::ir::NodeId;
use crate::sema::state::Sema;
use builder::{Layer, OpDef};

/// One row of [`OPS`].
const fn op(
    name: &'static str,
    args: &'static [&'static str],
    required: usize,
    build: builder::Build,
) -> OpDef {
    OpDef {
        name,
        args,
        required,
        build,
    }
}

/// Every built-in layer (`norm`, the model's default normalization, is a setting, not a
/// layer of its own). The order is the order "did you mean" prefers among equally close names.
#[rustfmt::skip]
const OPS: &[OpDef] = &[
    op("conv", &["out", "k", "stride", "pad", "groups", "bias", "time"], 1, conv::conv),
    op("conv3", &["out", "stride", "groups", "bias", "time"], 1, conv::conv),
    op("conv1", &["out", "stride", "groups", "bias", "time"], 1, conv::conv),
    op("linear", &["out", "bias"], 1, layers::linear),
    op("relu", &[], 0, layers::activation),
    op("silu", &[], 0, layers::activation),
    op("tanh", &[], 0, layers::activation),
    op("softplus", &[], 0, layers::activation),
    op("dropout", &["p"], 1, layers::dropout),
    op("avgpool", &["k", "stride"], 0, layers::avgpool),
    op("upsample", &["factor"], 0, layers::upsample),
    op("downsample", &["mode", "pad"], 0, conv::downsample),
    op("attention", &["heads", "head_dim", "norm"], 0, layers::attention),
    op("flatten", &[], 0, layers::flatten),
    op("group", norm::GROUP_ARGS, 0, norm::norm),
    op("batch", norm::NORM_ARGS, 0, norm::norm),
    op("instance", norm::NORM_ARGS, 0, norm::norm),
    op("layer", norm::NORM_ARGS, 0, norm::norm),
    op("sinusoidal", &["dim", "scale", "flip", "shift", "max_period"], 1, layers::sinusoidal),
    op("learned", &["dim"], 1, layers::learned),
    op("fourier", &["dim", "scale", "log", "flip"], 1, layers::fourier),
    op("divide_by_time", &[], 0, time::divide_by_time),
    op("class_embed", &["label"], 1, time::class_embed),
    op("inject", &["emb", "mode"], 1, time::inject),
    op("scale_shift", &["emb"], 1, time::scale_shift),
    op("ode", &["func", "t", "solver"], 1, ode::ode),
    op("shortcut", &["out"], 1, conv::shortcut),
    op("concat", &[], 0, layers::concat),
];

/// Whether `name` is a built-in layer.
pub(super) fn is_builtin(name: &str) -> bool {
    OPS.iter().any(|o| o.name == name)
}

/// The names of the built-in layers, in table order.
pub(super) fn names() -> impl Iterator<Item = &'static str> {
    OPS.iter().map(|o| o.name)
}

impl<'a> Sema<'a> {
    /// Applies the built-in layer `c` calls to `input`; the node is named `name`.
    pub(in crate::sema) fn builtin(
        &mut self,
        input: NodeId,
        c: &ast::Call,
        name: String,
    ) -> Option<NodeId> {
        match OPS.iter().find(|o| o.name == c.name.name) {
            Some(def) => {
                let shape = self.node_shape(input);
                let layer = Layer {
                    def,
                    input,
                    shape,
                    call: c,
                    name,
                };
                (def.build)(self, layer)
            }
            None => {
                self.unknown_layer(&c.name);
                None
            }
        }
    }
}
