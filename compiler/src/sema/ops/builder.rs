//! What describes a built-in layer ([`OpDef`]: its name, its signature and its builder) and
//! what every builder shares: binding a call's arguments to the op's signature, the error for
//! an input of the wrong kind, and the output size of a window sliding over an axis.

use crate::ast::{self, Expr};
use crate::diagnostics::Diagnostic;
use crate::ir::{NodeId, Shape};
use crate::sema::args;
use crate::sema::state::Sema;

/// Adds the node(s) of one call of a built-in layer: binds the call's arguments to the op's
/// signature, checks their values and the input's shape (the op's shape rule), and returns the
/// output node; `None` after reporting what does not fit.
pub(super) type Build = fn(&mut Sema, Layer) -> Option<NodeId>;

/// One call of a built-in layer, as its builder sees it.
pub(super) struct Layer<'c> {
    pub(super) def: &'static OpDef,
    /// The value the layer applies to, and its shape.
    pub(super) input: NodeId,
    pub(super) shape: Shape,
    pub(super) call: &'c ast::Call,
    /// The name of the node the layer adds.
    pub(super) name: String,
}

impl<'c> Layer<'c> {
    /// The definition, the input and its shape, the call, and the node's name.
    pub(super) fn parts(self) -> (&'static OpDef, NodeId, Shape, &'c ast::Call, String) {
        (self.def, self.input, self.shape, self.call, self.name)
    }
}

/// One built-in layer as a spec calls it.
pub(super) struct OpDef {
    /// What a spec calls it: `conv3`, `group`, `inject`.
    pub(super) name: &'static str,
    /// Its arguments in positional order (each may also be given by keyword).
    pub(super) args: &'static [&'static str],
    /// How many of `args`, from the first, must be given.
    pub(super) required: usize,
    pub(super) build: Build,
}

impl<'a> Sema<'a> {
    /// Binds `c`'s arguments to `def`'s signature: one slot per argument.
    pub(super) fn bind_op<'e>(
        &mut self,
        def: &OpDef,
        c: &'e ast::Call,
    ) -> Option<Vec<Option<&'e Expr>>> {
        args::bind(self.diags, c, def.args, def.required)
    }

    /// Reports that the layer `c` calls needs a feature map (or at least not the raw time).
    pub(super) fn needs_image(&mut self, c: &ast::Call, shape: Shape) -> Option<NodeId> {
        let help = match shape {
            Shape::Time => "embed the time first, e.g. `sinusoidal(128) | linear(512)`",
            _ => "this layer works on [B, C, H, W] feature maps",
        };
        self.err(
            Diagnostic::error(
                "E207",
                format!("`{}` needs a feature map, found {shape}", c.name.name),
            )
            .with_primary(c.span, "wrong kind of input")
            .with_help(help),
        );
        None
    }
}

/// Output size of a conv/pool along one axis, `None` when it would be empty.
pub(super) fn conv_out(n: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    let padded = n + 2 * pad;
    if padded < k || stride == 0 {
        return None;
    }
    Some((padded - k) / stride + 1)
}
