//! The vanishing-embedding lint: spec text and [`LintOptions`] in; per model its IR, its
//! time-signal [`Accounting`] and the lint [`Diagnostic`]s out (or the spec's errors when it
//! does not pass `check`). Rules ([`rules`], built from [`rule`]) produce per-instance findings; this engine drops
//! the ones `--select`/`--ignore` and `#[allow(...)]` exclude, groups the instances of a block
//! instantiated many times into one diagnostic per (source span, rule, surviving fraction),
//! applies severities and `--deny`, and attaches fixes whose predicted effect comes from
//! re-accounting the rewritten spec. [`sarif`] turns the result into SARIF 2.1.0.

mod fix;
mod patch;
mod reanalysis;
mod render;
pub mod rule;
pub mod rules;
pub mod sarif;
#[cfg(test)]
mod tests;

pub use reanalysis::{apply_edits, REANALYSIS_MIN_WORK};
pub use render::render_fix;
pub use rule::{Rule, ATTENUATION_THRESHOLD};
pub use rules::RULES;

use crate::accounting::{account, Accounting};
use crate::ast::{self, Span, StmtKind};
use crate::bias::{canceled_biases, BiasCancel};
use crate::diagnostics::{did_you_mean, Diagnostic, Edit, Label, Severity};
use crate::ir::ModelIr;
use rule::{Context, Finding, FixPlan};

/// What to report and how strictly.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// Codes or prefixes to report (all rules when empty; `ALL` selects all).
    pub select: Vec<String>,
    /// Codes or prefixes not to report.
    pub ignore: Vec<String>,
    /// Codes or prefixes reported as errors (exit 1).
    pub deny: Vec<String>,
    /// Report warnings as errors.
    pub deny_warnings: bool,
    /// Compute fixes (each re-analyzes the rewritten spec to predict its effect).
    pub fixes: bool,
    /// Keep each model's survival tables (`tdspec lint --survival`): every norm the time
    /// signal reaches, per origin. Off, a lint builds none of them.
    pub survival: bool,
}

/// One model's lint result.
#[derive(Debug, Clone)]
pub struct ModelReport {
    pub model: ModelIr,
    /// The time-signal accounting the rules read (at the spec's training batch).
    pub accounting: Accounting,
    pub biases: Vec<BiasCancel>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The rule with this code.
pub fn rule(code: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code.eq_ignore_ascii_case(code))
}

/// The rule with this code or name, or why there is none ("did you mean").
pub fn find_rule(code: &str) -> Result<&'static Rule, String> {
    let by_name = || RULES.iter().find(|r| r.name == code);
    rule(code).or_else(by_name).ok_or_else(|| {
        let help = match suggest_code(code) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "`tdspec explain` lists the rules".into(),
        };
        format!("unknown rule `{code}`\n  help: {help}")
    })
}

/// `tdspec explain`'s text: every rule on a line, or one rule's documentation.
pub fn explain_text(rule: Option<&Rule>) -> String {
    let Some(rule) = rule else {
        return RULES
            .iter()
            .map(|r| {
                let (sev, name) = (r.severity.as_str(), r.name);
                format!("{}  {name:<24} {sev:<8} {}\n", r.code, r.summary)
            })
            .collect();
    };
    let fix = ["none", "unsafe (--fix --unsafe-fixes)"][usize::from(rule.fixable)];
    format!(
        "# {} {}: {}\n\ndefault severity: {}; fix: {fix}\n\n{}",
        rule.code,
        rule.name,
        rule.summary,
        rule.severity.as_str(),
        rule.doc
    )
}

/// The closest rule code to a mistyped one.
pub fn suggest_code(code: &str) -> Option<&'static str> {
    let upper = code.to_ascii_uppercase();
    did_you_mean(&upper, RULES.iter().map(|r| r.code))
}

/// Whether `pattern` (a code, a code prefix such as `TD1`, or `ALL`) covers `code`.
pub fn pattern_matches(code: &str, pattern: &str) -> bool {
    let p = pattern.trim();
    !p.is_empty()
        && (p.eq_ignore_ascii_case("ALL")
            || code.len() >= p.len() && code[..p.len()].eq_ignore_ascii_case(p))
}

/// Checks a `--select`/`--ignore`/`--deny` pattern: it must cover at least one rule.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if RULES.iter().any(|r| pattern_matches(r.code, pattern)) {
        return Ok(());
    }
    let mut msg = format!("unknown rule code or prefix `{pattern}`");
    if let Some(s) = suggest_code(pattern) {
        msg.push_str(&format!(" (did you mean `{s}`?)"));
    }
    Err(msg)
}

fn selected(code: &str, opts: &LintOptions) -> bool {
    (opts.select.is_empty() || opts.select.iter().any(|p| pattern_matches(code, p)))
        && !opts.ignore.iter().any(|p| pattern_matches(code, p))
}

fn allowed(code: &str, allow: &[String]) -> bool {
    allow.iter().any(|a| pattern_matches(code, a))
}

/// Parses, checks and lints a spec. `Err` holds the parse error or the semantic errors.
pub fn lint_source(src: &str, opts: &LintOptions) -> Result<Vec<ModelReport>, Vec<Diagnostic>> {
    let file = crate::syntax::parse(src).map_err(|d| vec![d])?;
    if file.models.is_empty() {
        return crate::sema::check_source(src).map(|_| Vec::new());
    }
    let (models, diags) = crate::sema::analyze(&file);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return Err(diags);
    }
    Ok(models
        .into_iter()
        .map(|m| lint_model(&file, src, m, opts))
        .collect())
}

/// Statement spans carrying `#[allow(...)]`, with their codes (block bodies included).
fn allow_spans(file: &ast::File, model: &str) -> Vec<(Span, Vec<String>)> {
    fn walk(ss: &[ast::Stmt], out: &mut Vec<(Span, Vec<String>)>) {
        for s in ss {
            let codes: Vec<String> = s
                .attrs
                .iter()
                .filter(|a| a.name.name == "allow")
                .flat_map(|a| a.args.iter().map(|i| i.name.clone()))
                .collect();
            if !codes.is_empty() {
                out.push((s.span, codes));
            }
            if let StmtKind::Block(b) = &s.kind {
                walk(&b.body, out);
            }
        }
    }
    let mut out = Vec::new();
    for m in file.models.iter().filter(|m| m.name.name == model) {
        walk(&m.stmts, &mut out);
    }
    out
}

/// Lints one checked model of a parsed spec.
pub fn lint_model(file: &ast::File, src: &str, model: ModelIr, opts: &LintOptions) -> ModelReport {
    let accounting = account(&model);
    let biases = canceled_biases(&model);
    let cx = Context {
        model: &model,
        acc: &accounting,
        biases: &biases,
    };
    let diagnostics = match &accounting.truncated {
        // A partial accounting would let rules claim that t never reaches what lies past it.
        Some((span, node)) => vec![Diagnostic::error(
            "E303",
            crate::accounting::work_limit_reason(&model.name, node, accounting.limit),
        )
        .with_primary(*span, "the limit is reached here")
        .with_help(
            "every injection before it stays alive into the norms after it; lint a model with fewer injection sites",
        )],
        None => diagnose(file, src, &cx, opts),
    };
    ModelReport {
        model,
        accounting,
        biases,
        diagnostics,
    }
}

struct Group {
    first: Finding,
    instances: Vec<String>,
    secondary: Vec<(Span, String)>,
    notes: Vec<String>,
    pairs: Vec<(String, String)>,
}

fn diagnose(file: &ast::File, src: &str, cx: &Context, opts: &LintOptions) -> Vec<Diagnostic> {
    let model = cx.model;
    let spans = allow_spans(file, &model.name);
    let mut groups: Vec<Group> = Vec::new();
    for rule in RULES {
        if !selected(rule.code, opts) {
            continue;
        }
        for f in (rule.check)(cx) {
            let span = f.primary.0;
            if allowed(f.code, &f.allow)
                || spans
                    .iter()
                    .any(|(s, codes)| s.contains(span) && allowed(f.code, codes))
            {
                continue;
            }
            let key = |g: &Finding| {
                (
                    g.code,
                    g.primary.0,
                    g.fraction.map(|x| (x * 1e6).round() as i64),
                )
            };
            match groups.iter_mut().find(|g| key(&g.first) == key(&f)) {
                Some(g) => {
                    if let Some(i) = &f.instance {
                        if !g.instances.contains(i) {
                            g.instances.push(i.clone());
                        }
                    }
                    for s in &f.secondary {
                        if !g.secondary.iter().any(|x| x.0 == s.0) {
                            g.secondary.push(s.clone());
                        }
                    }
                    for n in &f.notes {
                        if !g.notes.contains(n) {
                            g.notes.push(n.clone());
                        }
                    }
                    g.pairs.extend(f.pairs.iter().cloned());
                }
                None => groups.push(Group {
                    instances: f.instance.iter().cloned().collect(),
                    secondary: f.secondary.clone(),
                    notes: f.notes.clone(),
                    pairs: f.pairs.clone(),
                    first: f,
                }),
            }
        }
    }
    let fcx = reanalysis::FixCx::new(src, file, model, cx.acc);
    let group_choices = if opts.fixes {
        let plans: Vec<(Span, Vec<(String, String)>)> = groups
            .iter()
            .filter_map(|g| match g.first.plan {
                FixPlan::FewerGroups { norm_span, .. } => Some((norm_span, g.pairs.clone())),
                _ => None,
            })
            .collect();
        fix::choose_groups(&fcx, &plans)
    } else {
        Vec::new()
    };
    let mut out: Vec<Diagnostic> = Vec::new();
    for g in groups {
        let f = &g.first;
        let Some(rule) = rule(f.code) else { continue };
        let mut severity = rule.severity;
        if opts.deny.iter().any(|p| pattern_matches(f.code, p))
            || (opts.deny_warnings && severity == Severity::Warning)
        {
            severity = Severity::Error;
        }
        let mut labels = vec![Label {
            span: f.primary.0,
            message: f.primary.1.clone(),
            primary: true,
        }];
        for (s, m) in &g.secondary {
            labels.push(Label {
                span: *s,
                message: m.clone(),
                primary: false,
            });
        }
        let mut notes = g.notes.clone();
        if g.instances.len() > 1 {
            let shown: Vec<&str> = g.instances.iter().take(3).map(String::as_str).collect();
            let more = g.instances.len() - shown.len();
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            notes.push(format!(
                "{} instances: {}{tail}",
                g.instances.len(),
                shown.join(", ")
            ));
        }
        let mut help = f.help.clone();
        let fix = if opts.fixes {
            let choice = match f.plan {
                FixPlan::FewerGroups { norm_span, .. } => group_choices
                    .iter()
                    .find(|(s, _)| *s == norm_span)
                    .map(|(_, c)| c),
                _ => None,
            };
            if let Some(c) = choice {
                help = Some(c.action.clone());
            }
            fix::build_fix(&fcx, f.code, &f.plan, &g.pairs, f.fraction, choice)
        } else {
            None
        };
        out.push(Diagnostic {
            code: f.code.to_string(),
            severity,
            message: f.message.clone(),
            labels,
            help,
            notes,
            fix,
            fraction: f.fraction,
        });
    }
    out.sort_by(|a, b| {
        let sa = a.primary_span().map(|s| s.start).unwrap_or(0);
        let sb = b.primary_span().map(|s| s.start).unwrap_or(0);
        (sa, &a.code).cmp(&(sb, &b.code))
    });
    out
}

/// The result of applying the fixes of a set of diagnostics to a spec.
#[derive(Debug, Clone)]
pub struct FixOutcome {
    pub text: String,
    /// Fixes applied.
    pub applied: usize,
    /// Fixes skipped because their edits overlap one applied before.
    pub skipped: usize,
}

/// Applies every fix in `diags` to `src`. Identical edits (two findings with the same remedy)
/// apply once; a fix overlapping an applied one is skipped whole. Fails, leaving nothing
/// applied, when the rewritten spec would not pass `check`.
pub fn apply_fixes(src: &str, diags: &[Diagnostic]) -> Result<FixOutcome, Vec<Diagnostic>> {
    let outcome = choose_fixes(src, diags);
    crate::sema::check_source(&outcome.text)?;
    Ok(outcome)
}

/// The text with every fix of `diags` applied that does not overlap one applied before
/// (identical edits apply once), unchecked.
pub fn choose_fixes(src: &str, diags: &[Diagnostic]) -> FixOutcome {
    let mut chosen: Vec<Edit> = Vec::new();
    let mut applied = 0;
    let mut skipped = 0;
    for d in diags {
        let Some(fix) = &d.fix else { continue };
        if fix.edits.iter().all(|e| chosen.contains(e)) {
            continue;
        }
        let mut trial = chosen.clone();
        trial.extend(fix.edits.iter().filter(|e| !chosen.contains(e)).cloned());
        let (_, sk) = apply_edits(src, &trial);
        if sk > 0 {
            skipped += 1;
            continue;
        }
        chosen = trial;
        applied += 1;
    }
    let (text, _) = apply_edits(src, &chosen);
    FixOutcome {
        text,
        applied,
        skipped,
    }
}
