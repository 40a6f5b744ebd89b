//! Re-analysis of a model after a fix's edits: the fix builder's context ([`FixCx`]), the
//! budget of re-analyses per model, the patched or rewritten model accounted (whole, or at a
//! fix's pairs alone), remembered by its edits; applying edits to a text; and what an
//! accounting says at an (origin, norm) pair. The fixes (`fix.rs`) ask; nothing here knows
//! what a fix is for.

use super::patch::{self, Patch};
use super::rule::ATTENUATION_THRESHOLD;
use crate::accounting::{account, account_pairs, Accounting, NormAccount, Prediction};
use crate::ast::{self, Span};
use crate::diagnostics::{Edit, Severity};
use crate::ir::ModelIr;
use std::cell::RefCell;
use std::rc::Rc;

/// What the fix builder sees of one model.
pub(crate) struct FixCx<'a> {
    pub src: &'a str,
    pub file: &'a ast::File,
    pub model: &'a ModelIr,
    /// The model's accounting, before any edit.
    pub acc: &'a Accounting,
    /// Re-analyses made so far, by the edits that rewrote the model (and the pairs a focused
    /// one followed): the group search and the fix it picks, or two findings sharing one
    /// remedy, analyze the same edit once.
    pub seen: RefCell<Vec<Seen>>,
    /// The calls of the model the fixes point into, sorted by span (built at the first lookup):
    /// a model with a fix at every site looks each one up without walking the model again.
    pub(crate) calls: RefCell<Option<(Span, Vec<&'a ast::Call>)>>,
    /// The accounting work the re-analyses made so far have done, against
    /// [`reanalysis_work_budget`].
    spent: std::cell::Cell<usize>,
}

/// At most this many re-analyses per model (distinct rewritten texts). Each costs about one
/// `check` of the model, so linting a model costs at most this many checks more, however many
/// fixes it has; fixes past the budget keep their edits and say that they were not
/// re-analyzed. The reference specs need at most 5.
pub const MAX_REANALYSES: usize = 8;

/// The bytes of model text all re-analyses of one model may parse together: a large model gets
/// fewer of them (at least [`MIN_REANALYSES`]), so that however large the model, lint costs a
/// few `check`s of it and not [`MAX_REANALYSES`] of them. Models under 16 KiB get all 8.
pub const REANALYSIS_BYTES: usize = 128 * 1024;

/// The re-analyses even the largest model gets.
pub const MIN_REANALYSES: usize = 2;

/// The re-analyses a model of `len` bytes of text gets.
pub fn reanalysis_budget(len: usize) -> usize {
    (REANALYSIS_BYTES / len.max(1)).clamp(MIN_REANALYSES, MAX_REANALYSES)
}

/// The accounting work all re-analyses of one model may do together: twice the model's own
/// accounting, and at least [`REANALYSIS_MIN_WORK`]. A model whose accounting grows as the
/// square of its size (every site's signal alive into every later norm) then gets one or two
/// re-analyses, not eight, so lint stays a few `check`s of it; the reference models' re-analyses
/// all fit under the minimum.
pub fn reanalysis_work_budget(work: usize) -> usize {
    work.saturating_mul(2).max(REANALYSIS_MIN_WORK)
}

/// The accounting work every model's re-analyses may do (about 2 ms; eight re-analyses of the
/// largest reference UNet need 115,000).
pub const REANALYSIS_MIN_WORK: usize = 400_000;

/// A model re-analyzed after edits: every model of its text with its accounting, or `None`
/// when it no longer passes `check`.
pub(crate) type Reanalysis = Rc<Option<Vec<(ModelIr, Accounting)>>>;

impl<'a> FixCx<'a> {
    pub fn new(
        src: &'a str,
        file: &'a ast::File,
        model: &'a ModelIr,
        acc: &'a Accounting,
    ) -> FixCx<'a> {
        FixCx {
            src,
            file,
            model,
            acc,
            seen: RefCell::new(Vec::new()),
            calls: RefCell::new(None),
            spent: std::cell::Cell::new(0),
        }
    }
}

/// The model of `cx` re-analyzed after `edits` (all inside that model): only that model's text
/// is parsed, its spans counted from the file's start, so the cost of a fix does not grow with
/// the number of models in the file. Re-analyses are remembered by their edits, and the edited
/// text is built only for a new one: fixes past the budget cost nothing of the model's size.
/// `None` when the model's budget is spent ([`reanalysis_budget`] re-analyses, or
/// [`reanalysis_work_budget`] of accounting work).
///
/// With `focus`, the caller reads the verdicts at those (origin, norm) pairs alone: a patched
/// model is then accounted for them only ([`account_pairs`]), and a re-analysis made for
/// other pairs serves where it followed these.
pub(crate) fn reanalyze_model(
    cx: &FixCx,
    edits: &[Edit],
    patch: Option<Patch>,
    focus: Option<&[(String, String)]>,
) -> Option<Reanalysis> {
    let Some(m) = cx.file.models.iter().find(|m| m.name.name == cx.model.name) else {
        return Some(Rc::new(None));
    };
    let key: Vec<Edit> = kept_edits(cx.src, edits).0.into_iter().cloned().collect();
    let serves = |followed: &Option<Pairs>| match (followed, focus) {
        (None, _) => true,
        (Some(had), Some(want)) => want.iter().all(|p| had.contains(p)),
        (Some(_), None) => false,
    };
    if let Some((.., r)) = (cx.seen.borrow().iter()).find(|(k, f, _)| *k == key && serves(f)) {
        return Some(r.clone());
    }
    #[cfg(test)]
    let unlimited = ALWAYS_REANALYZE.with(|f| f.get());
    #[cfg(not(test))]
    let unlimited = false;
    let spent_all = cx.spent.get() >= reanalysis_work_budget(cx.acc.work);
    if (cx.seen.borrow().len() >= reanalysis_budget(m.span.end - m.span.start) || spent_all)
        && !unlimited
    {
        return None;
    }
    // A one-argument edit of a layer call is made on the IR (see `patch`); the rewritten
    // text's re-analysis otherwise, and in tests beside every patch, which must equal it.
    let fast = match (patch, key.as_slice()) {
        (Some(p), [e]) => patch::patched(cx.model, m, p, e),
        _ => None,
    };
    #[cfg(test)]
    if let Some(ir) = &fast {
        check_patch(cx, m, &key, ir);
    }
    let focus = focus.filter(|_| fast.is_some()).map(<[_]>::to_vec);
    let r = Rc::new(match fast {
        Some(ir) => {
            let a = match &focus {
                Some(pairs) => account_pairs(&ir, pairs),
                None => account(&ir),
            };
            #[cfg(test)]
            if let Some(pairs) = &focus {
                check_focus(&account(&ir), &a, pairs);
            }
            Some(vec![(ir, a)])
        }
        None => text_reanalysis(cx, m, &key),
    });
    let work: usize = r.iter().flatten().map(|(_, a)| a.work).sum();
    cx.spent.set(cx.spent.get().saturating_add(work));
    cx.seen.borrow_mut().push((key, focus, r.clone()));
    Some(r)
}

/// (origin path, norm path) pairs.
pub(crate) type Pairs = Vec<(String, String)>;

/// A re-analysis made: its edits, the pairs it followed (`None`: all), the result.
pub(crate) type Seen = (Vec<Edit>, Option<Pairs>, Reanalysis);

/// Asserts that an accounting of `pairs` alone states at each pair what the whole accounting
/// states there (tests only).
#[cfg(test)]
fn check_focus(whole: &Accounting, focused: &Accounting, pairs: &[(String, String)]) {
    let at = |a: &Accounting, o: &str, n: &str| {
        let oi = a.origins.iter().position(|x| x.path == o);
        let v = a.norm(n)?;
        Some(v.origins.iter().find(|ov| Some(ov.origin) == oi).cloned())
    };
    for (o, n) in pairs {
        assert_eq!(at(whole, o, n), at(focused, o, n), "the pair ({o}, {n})");
        assert_eq!(still_reported(whole, o, n), still_reported(focused, o, n));
    }
    assert_eq!(whole.origins, focused.origins);
    FOCUSES_CHECKED.with(|c| c.set(c.get() + 1));
}

/// Asserts that a patched model equals the re-analysis of its text (tests only).
#[cfg(test)]
pub(crate) fn check_patch(cx: &FixCx, m: &ast::Model, key: &[Edit], ir: &ModelIr) {
    let text = text_reanalysis(cx, m, key);
    let models: Option<Vec<&ModelIr>> = text.as_ref().map(|v| v.iter().map(|x| &x.0).collect());
    assert_eq!(
        models,
        Some(vec![ir]),
        "a patched model differs from its re-analysis"
    );
    PATCHES_CHECKED.with(|c| c.set(c.get() + 1));
}

/// The model `m` of `cx` re-analyzed from the text `key` makes of it: parsed alone, its spans
/// counted from the file's start.
pub(crate) fn text_reanalysis(
    cx: &FixCx,
    m: &ast::Model,
    key: &[Edit],
) -> Option<Vec<(ModelIr, Accounting)>> {
    let (text, _) = apply_edits(cx.src, key);
    let grown = text.len() as isize - cx.src.len() as isize;
    let end = (m.span.end as isize + grown).clamp(m.span.start as isize, text.len() as isize);
    let (start, end) = (m.span.start, end as usize);
    text.get(start..end).and_then(|piece| {
        crate::syntax::parse_at(piece, start)
            .ok()
            .and_then(|file| analyzed(&file))
    })
}

fn analyzed(file: &crate::ast::File) -> Option<Vec<(ModelIr, Accounting)>> {
    let (models, diags) = crate::sema::analyze(file);
    if diags.iter().any(|d| d.severity == Severity::Error) || models.is_empty() {
        return None;
    }
    Some(
        models
            .into_iter()
            .map(|m| {
                let a = account(&m);
                (m, a)
            })
            .collect(),
    )
}

/// Applies edits to a text. Identical edits count once; an edit overlapping an earlier one is
/// skipped. Returns the new text and the number of skipped edits.
pub fn apply_edits(text: &str, edits: &[Edit]) -> (String, usize) {
    let (kept, skipped) = kept_edits(text, edits);
    let mut out = String::with_capacity(text.len() + 64);
    let mut pos = 0;
    for e in kept {
        out.push_str(&text[pos..e.span.start]);
        out.push_str(&e.replacement);
        pos = e.span.end;
    }
    out.push_str(text.get(pos..).unwrap_or(""));
    (out, skipped)
}

/// The edits [`apply_edits`] applies, in order, and how many it skips (without the text).
pub(crate) fn kept_edits<'e>(text: &str, edits: &'e [Edit]) -> (Vec<&'e Edit>, usize) {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.span.start, e.span.end));
    let mut kept: Vec<&Edit> = Vec::with_capacity(sorted.len());
    let mut pos = 0;
    let mut skipped = 0;
    for e in sorted {
        let last = kept.last().copied();
        if last.is_some_and(|l| l == e) {
            continue;
        }
        let valid = e.span.start <= e.span.end
            && e.span.end <= text.len()
            && text.is_char_boundary(e.span.start)
            && text.is_char_boundary(e.span.end);
        // An insertion at the end of the previous edit is fine; anything earlier overlaps.
        let overlaps = e.span.start < pos
            || (e.span.start == pos
                && last.is_some_and(|l| l.span.is_empty() && e.span.is_empty()));
        if !valid || overlaps {
            skipped += 1;
            continue;
        }
        pos = e.span.end;
        kept.push(e);
    }
    (kept, skipped)
}

/// What survives at `norm` of the signal from `origin` in an accounting (`None` when the norm
/// no longer receives it).
pub(crate) fn survival(a: &Accounting, origin: &str, norm: &str) -> Option<Prediction> {
    let oi = a.origins.iter().position(|o| o.path == origin)?;
    let v = a.norm(norm)?;
    v.origins
        .iter()
        .find(|ov| ov.origin == oi)
        .map(|ov| ov.prediction)
}

/// Whether an (origin, norm) pair would still be reported by TD101/TD102/TD109 in `a`.
pub(crate) fn still_reported(a: &Accounting, origin: &str, norm: &str) -> bool {
    let Some(oi) = a.origins.iter().position(|o| o.path == origin) else {
        return false;
    };
    a.norm(norm).is_some_and(|v| reported_at(v, oi))
}

/// Whether origin `oi` would still be reported at norm `v`.
pub(crate) fn reported_at(v: &NormAccount, oi: usize) -> bool {
    v.origins.iter().any(|ov| {
        ov.origin == oi
            && match ov.prediction {
                Prediction::Zero => true,
                Prediction::Exact { fraction } => {
                    ov.constant_part == Some(0.0) && fraction > 0.0
                        || ov.constant_part.is_some_and(|c| c > 0.0)
                            && fraction < ATTENUATION_THRESHOLD
                }
                _ => false,
            }
    })
}

pub(crate) fn model_of<'a>(
    models: &'a [(ModelIr, Accounting)],
    name: &str,
) -> Option<&'a (ModelIr, Accounting)> {
    models.iter().find(|(m, _)| m.name == name)
}

#[cfg(test)]
thread_local! {
    /// Patched models checked against the re-analysis of their text so far.
    pub(crate) static PATCHES_CHECKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Re-analyses of pairs alone checked against the whole accounting (tests).
    pub(crate) static FOCUSES_CHECKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Group settings passed over without re-analysis and checked against one (tests).
    pub(crate) static PASSED_OVER_CHECKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
thread_local! {
    /// Tests turn the judgement from a norm's input (and the budget) off, to compare it with
    /// re-analysis.
    pub(crate) static ALWAYS_REANALYZE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
