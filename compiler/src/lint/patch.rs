//! A fix's rewritten model made on its IR: a checked model, the one edit of a fix that changes
//! one argument of one layer call (`bias = false` on a conv or linear, `inject(e, positional)`,
//! `time = concat(positional)`, a new count in a `group(...)` call) and the call in; the IR that
//! parsing and checking the rewritten text would give out, spans included, without parsing or
//! checking it. Such an edit changes the op of every node the call made (a block's body call
//! makes one per instance; the model's `norm = group(...)` setting, every norm sema marked as
//! its) and those nodes' parameters, nothing upstream or beside them; every span after the edit
//! moves by the edit's growth. Anything else (a call that is not a pipeline stage, a node of
//! an unexpected op, a span the edit cuts) is left to the re-analysis of the rewritten text,
//! which stays the reference: the lint tests check every patch made on the spec corpora
//! against it.

use super::rule::FixPlan;
use crate::accounting::OriginKind;
use crate::ast::{self, Expr, ExprKind, Span, StmtKind};
use crate::diagnostics::Edit;
use crate::ir::{
    Graph, InjectMode, InjectionMode, ModelIr, Node, NormKind, Op, Shape, TimeChannel,
};

/// What a fix's edit does to the call at `span`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Patch {
    /// `bias = false` on a conv or linear.
    NoBias(Span),
    /// `inject(e)` becomes `inject(e, positional)`.
    InjectPositional(Span),
    /// `time = concat` becomes `time = concat(positional)`.
    ConcatPositional(Span),
    /// The `group(...)` call at the span (a pipeline stage, or the value of the model's `norm =
    /// ...` setting) gets a new group count or channels per group.
    Groups(Span, NewGroups),
}

/// A `group(...)` call's new setting, as sema resolves it per norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewGroups {
    /// `group(groups, min_per_group = m)`: `groups`, capped at channels / m when m is given.
    Count {
        groups: usize,
        min_per_group: Option<usize>,
    },
    /// `group(per_group = q)`.
    PerGroup(usize),
}

/// A candidate group setting: a group count, or channels per group.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Setting {
    Groups(usize),
    PerGroup(usize),
}

/// A literal whole number in 1..=1e6 (a group count or channels per group as written).
pub(crate) fn whole(e: &Expr) -> Option<usize> {
    match &e.kind {
        ExprKind::Number(v, _) if v.fract() == 0.0 && *v >= 1.0 && *v <= 1e6 => Some(*v as usize),
        _ => None,
    }
}

/// `setting` written into the `group(...)` call `c`, as the IR patch takes it (`None` when the
/// call's `min_per_group` is not a whole number: the re-analysis of the text then says).
pub(crate) fn new_groups(c: &ast::Call, setting: Setting) -> Option<NewGroups> {
    // Named, or third by position (sema's argument order: groups, per_group, min_per_group).
    let min_per_group = match c.args.iter().enumerate().find(|(i, a)| match &a.name {
        Some(n) => n.name == "min_per_group",
        None => *i == 2,
    }) {
        None => None,
        Some((_, a)) => Some(whole(&a.value)?),
    };
    Some(match setting {
        Setting::Groups(groups) => NewGroups::Count {
            groups,
            min_per_group,
        },
        Setting::PerGroup(q) => NewGroups::PerGroup(q),
    })
}

impl NewGroups {
    /// The group count on `c` channels, or `None` where sema refuses it.
    pub(crate) fn on(self, c: usize) -> Option<usize> {
        let g = match self {
            NewGroups::Count {
                groups,
                min_per_group,
            } => min_per_group.map_or(groups, |m| groups.min((c / m.max(1)).max(1))),
            NewGroups::PerGroup(q) if q > 0 && c.is_multiple_of(q) => c / q,
            NewGroups::PerGroup(_) => return None,
        };
        (g > 0 && c.is_multiple_of(g)).then_some(g)
    }
}

impl Patch {
    fn span(self) -> Span {
        match self {
            Patch::NoBias(s)
            | Patch::InjectPositional(s)
            | Patch::ConcatPositional(s)
            | Patch::Groups(s, _) => s,
        }
    }
}

/// The patch that makes a plan's edit, where one does (`ungrouped`: a fewer-groups plan that
/// found no group count, whose fix is its origin's positional one).
pub(crate) fn plan_patch(plan: &FixPlan, ungrouped: bool) -> Option<Patch> {
    let positional = |span: Span, kind: OriginKind| match kind {
        OriginKind::InjectOffset => Some(Patch::InjectPositional(span)),
        OriginKind::ConcatConstant => Some(Patch::ConcatPositional(span)),
        _ => None,
    };
    match plan {
        FixPlan::NoBias { span } => Some(Patch::NoBias(*span)),
        FixPlan::Positional { span, kind } => positional(*span, *kind),
        FixPlan::FewerGroups {
            origin: Some((span, kind)),
            ..
        } if ungrouped => positional(*span, *kind),
        _ => None,
    }
}

/// `m` after `edit` made at the call `patch` names, or `None` where only a re-analysis of the
/// rewritten text can say (the caller then makes one).
pub(crate) fn patched(
    m: &ModelIr,
    model: &ast::Model,
    patch: Patch,
    edit: &Edit,
) -> Option<ModelIr> {
    let span = patch.span();
    if let Patch::Groups(_, new) = patch {
        return patched_groups(m, model, span, new, edit);
    }
    layer_call(model, patch, edit)?;
    let (a, b) = (edit.span.start, edit.span.end);
    let mut out = copy(m);
    let mut made = 0;
    let ok = each_node(&mut out.graph, &mut |n| {
        if n.span != span {
            return true;
        }
        let changed = match (patch, &mut n.op) {
            (Patch::NoBias(_), Op::Conv { bias, .. } | Op::Linear { bias, .. }) => {
                *bias = false;
                true
            }
            (Patch::ConcatPositional(_), Op::Conv { time, .. }) => {
                let was = *time == TimeChannel::Constant;
                *time = TimeChannel::Positional;
                was
            }
            (Patch::InjectPositional(_), Op::Inject { mode, .. }) => {
                // A positional map needs a feature map to add to (else sema refuses it).
                let was = *mode == InjectMode::Offset;
                *mode = InjectMode::Positional;
                was && matches!(n.shape, Shape::Image { .. })
            }
            _ => false,
        };
        n.params = n.op.params(&n.name, n.time_branch);
        made += 1;
        changed
    });
    if !ok || made == 0 {
        return None;
    }
    for site in out.injections.iter_mut().filter(|s| s.span == span) {
        site.mode = match (patch, site.mode) {
            (Patch::NoBias(_), mode) => mode,
            (Patch::ConcatPositional(_), InjectionMode::ConcatConstant) => {
                InjectionMode::ConcatPositional
            }
            (Patch::InjectPositional(_), InjectionMode::Offset) => InjectionMode::PositionalMap,
            _ => return None,
        };
    }
    shift_spans(&mut out, a, b, edit.replacement.len())?;
    Some(out)
}

/// The layer call a one-argument patch rewrites: a pipeline stage of the layer the patch is
/// for, with the edit inside its parentheses; `None` otherwise.
fn layer_call<'a>(model: &'a ast::Model, patch: Patch, edit: &Edit) -> Option<&'a ast::Call> {
    let call = stage_call(model, patch.span())?;
    let name = call.name.name.as_str();
    let fits = match patch {
        Patch::NoBias(_) => matches!(name, "conv" | "conv3" | "conv1" | "linear"),
        Patch::InjectPositional(_) => name == "inject",
        Patch::ConcatPositional(_) => matches!(name, "conv" | "conv3" | "conv1"),
        Patch::Groups(..) => false,
    };
    (fits && edit_inside(call, patch.span(), edit)).then_some(call)
}

/// Whether `edit` lies inside the parentheses of `call` (written at `span`).
fn edit_inside(call: &ast::Call, span: Span, edit: &Edit) -> bool {
    edit.span.start > call.name.span.end && edit.span.end < span.end
}

/// The parameters [`patched`] with [`Patch::NoBias`] at `span` would remove, counted on `m`'s
/// nodes without copying it: the bias of every conv or linear node the call made. `None`
/// where [`patched`] would make no model.
pub(crate) fn dropped_bias(
    m: &ModelIr,
    model: &ast::Model,
    span: Span,
    edit: &Edit,
) -> Option<usize> {
    layer_call(model, Patch::NoBias(span), edit)?;
    fn visit(g: &Graph, span: Span, fewer: &mut usize, made: &mut usize) -> bool {
        g.nodes.iter().all(|n| {
            let here = n.span != span || {
                *made += 1;
                let mut op = n.op.clone();
                match &mut op {
                    Op::Conv { bias, .. } | Op::Linear { bias, .. } => *bias = false,
                    _ => return false,
                }
                let count =
                    |ps: &[crate::ir::ParamInfo]| ps.iter().map(|p| p.numel()).sum::<usize>();
                *fewer += count(&n.params) - count(&op.params(&n.name, n.time_branch));
                true
            };
            here && match &n.op {
                Op::Ode { func, .. } => visit(&func.graph, span, fewer, made),
                _ => true,
            }
        })
    }
    let (mut fewer, mut made) = (0, 0);
    (visit(&m.graph, span, &mut fewer, &mut made) && made > 0).then_some(fewer)
}

/// `m` with the `group(...)` call at `span` rewritten to `new` by `edit`: every norm the call
/// made gets the group count sema would resolve for its channels (the model's `norm = group(...)`
/// setting made the nodes sema marked; a stage call the nodes at its span). `None` where sema
/// would refuse a count, or where the call or a node is not one this can account for.
fn patched_groups(
    m: &ModelIr,
    model: &ast::Model,
    span: Span,
    new: NewGroups,
    edit: &Edit,
) -> Option<ModelIr> {
    let setting = model.stmts.iter().find_map(|s| match &s.kind {
        StmtKind::Assign { name, value } if name.name == "norm" && value.span == span => {
            match &value.kind {
                ExprKind::Call(c) => Some(c),
                _ => None,
            }
        }
        _ => None,
    });
    let call = match setting {
        Some(c) => c,
        None => stage_call(model, span)?,
    };
    let (a, b) = (edit.span.start, edit.span.end);
    if call.name.name != "group" || !edit_inside(call, span, edit) {
        return None;
    }
    let mut out = copy(m);
    let mut made = 0;
    let ok = each_node(&mut out.graph, &mut |n| {
        let ours = match setting {
            Some(_) => n.norm_from_setting,
            None => n.span == span,
        };
        if !ours {
            return true;
        }
        made += 1;
        let (kind, c) = match &mut n.op {
            Op::Norm { kind, channels, .. } => (kind, *channels),
            Op::Attention {
                norm: Some(kind),
                channels,
                ..
            } => (kind, *channels),
            _ => return false,
        };
        match (*kind, new.on(c)) {
            (NormKind::Group { .. }, Some(groups)) => {
                *kind = NormKind::Group { groups };
                true
            }
            _ => false,
        }
    });
    if !ok || made == 0 {
        return None;
    }
    shift_spans(&mut out, a, b, edit.replacement.len())?;
    Some(out)
}

#[cfg(test)]
thread_local! {
    /// How many whole models the patches copied (a test holds it to the re-analysis budget).
    pub(crate) static MODELS_COPIED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A copy of `m` for a patch to change.
fn copy(m: &ModelIr) -> ModelIr {
    #[cfg(test)]
    MODELS_COPIED.with(|c| c.set(c.get() + 1));
    m.clone()
}

/// Visits every node, ODE functions' included, while `f` says all is well.
fn each_node(g: &mut Graph, f: &mut impl FnMut(&mut Node) -> bool) -> bool {
    g.nodes.iter_mut().all(|n| {
        f(n) && match &mut n.op {
            Op::Ode { func, .. } => each_node(&mut func.graph, f),
            _ => true,
        }
    })
}

/// The call at `span` where it is a stage of a statement's pipeline (or its whole value) in the
/// model or a block body: every node it makes is made where it is written, with its span.
fn stage_call(model: &ast::Model, span: Span) -> Option<&ast::Call> {
    fn expr(e: &Expr, span: Span) -> Option<&ast::Call> {
        if !e.span.contains(span) {
            return None;
        }
        match &e.kind {
            ExprKind::Pipe(v) | ExprKind::Sum(v) => v.iter().find_map(|x| expr(x, span)),
            ExprKind::Labeled(inner, _) => expr(inner, span),
            ExprKind::Call(c) if c.span == span => Some(c),
            _ => None,
        }
    }
    fn stmts(ss: &[ast::Stmt], span: Span) -> Option<&ast::Call> {
        ss.iter()
            .filter(|s| s.span.contains(span))
            .find_map(|s| match &s.kind {
                // `norm = ...` and `bias = ...` are settings, not values.
                StmtKind::Assign { name, value }
                    if !matches!(name.name.as_str(), "norm" | "bias") =>
                {
                    expr(value, span)
                }
                StmtKind::Embed { value, .. } => expr(value, span),
                StmtKind::Return(e) | StmtKind::Expr(e) => expr(e, span),
                StmtKind::Block(b) => stmts(&b.body, span),
                _ => None,
            })
    }
    stmts(&model.stmts, span)
}

/// Moves every span of `m` as replacing `a..b` with `len` bytes moves the text: spans after
/// the edit by its growth, spans around it at their end. `None` when a span starts or ends
/// inside the replaced text, or starts where an insertion goes.
fn shift_spans(m: &mut ModelIr, a: usize, b: usize, len: usize) -> Option<()> {
    let grown = len as isize - (b - a) as isize;
    let moved = |p: usize| (p as isize + grown) as usize;
    let shift = |s: &mut Span| -> Option<()> {
        let cut = |p: usize| p > a && p < b;
        if cut(s.start) || cut(s.end) || (a == b && s.start == a) {
            return None;
        }
        let end = if s.end > b || (s.end == b && a < b) {
            moved(s.end)
        } else {
            s.end
        };
        let start = if s.start >= b {
            moved(s.start)
        } else {
            s.start
        };
        *s = Span::new(start, end);
        Some(())
    };
    fn graph(g: &mut Graph, shift: &impl Fn(&mut Span) -> Option<()>) -> Option<()> {
        for n in &mut g.nodes {
            shift(&mut n.span)?;
            shift(&mut n.stmt_span)?;
            if let Op::Ode { func, .. } = &mut n.op {
                graph(&mut func.graph, shift)?;
            }
        }
        g.instances.iter_mut().try_for_each(|i| shift(&mut i.span))
    }
    graph(&mut m.graph, &shift)?;
    shift(&mut m.span)?;
    shift(&mut m.input.span)?;
    shift(&mut m.time.span)?;
    if let Some(l) = &mut m.label {
        shift(&mut l.span)?;
    }
    m.injections.iter_mut().try_for_each(|s| shift(&mut s.span))
}
