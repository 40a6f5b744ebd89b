//! diffusers' `UNet2DModel` configs: a `config.json` in, the spec that computes the same network
//! out (`tdspec import diffusers`), and the lint, check and fixes of a config read through that
//! spec with every span pointing back into the JSON.
//!
//! Keys the config leaves out take the defaults of diffusers' `UNet2DModel.__init__`
//! ([`DEFAULTS`]); a key or value the language cannot express is an error naming it (E401), a
//! class other than `UNet2DModel` is E402, and a value of the wrong type or malformed JSON is
//! E403, so an import is whole or not at all.

mod config;
mod spec;

pub use config::{read_config, UNetConfig, DEFAULTS};
pub use spec::model_name;

use super::json::Layout;
use crate::ast::Span;
use crate::diagnostics::{Diagnostic, Edit, Fix, Label};
use crate::ir::ModelIr;
use crate::lint::{self, LintOptions, ModelReport};

/// A config read into a spec.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The spec text.
    pub spec: String,
    /// The model's name in it.
    pub model: String,
    /// The config's parameter values as read (defaults filled in).
    pub config: UNetConfig,
    /// Spans of the spec and the config key each came from.
    regions: Vec<(Span, &'static str)>,
    layout: Layout,
}

/// Imports a config (its text; `source` names it in the spec's header, `model` names the model).
pub fn import(text: &str, model: &str, source: &str) -> Result<Imported, Vec<Diagnostic>> {
    let (config, layout) = read_config(text)?;
    let w = spec::write_spec(&config, model, source);
    Ok(Imported {
        spec: w.out,
        model: model.to_string(),
        config,
        regions: w.regions,
        layout,
    })
}

impl Imported {
    /// The config entry a span of the spec comes from.
    fn key_of(&self, span: Span) -> Option<&'static str> {
        self.regions
            .iter()
            .filter(|(r, _)| r.start <= span.start && span.start < r.end.max(r.start + 1))
            .min_by_key(|(r, _)| r.len())
            .map(|(_, k)| *k)
    }

    /// Where a config key is: its entry, or (left out) the `_class_name` entry or the `{`.
    fn place(&self, key: &str) -> (Span, Option<String>) {
        match self.layout.get(key) {
            Some(e) => (e.span(), None),
            None => {
                let at = self
                    .layout
                    .get("_class_name")
                    .map(|e| e.span())
                    .unwrap_or(self.layout.open);
                let default = config::default_text(key).unwrap_or("null");
                (
                    at,
                    Some(format!(
                        "`{key}` is not set: diffusers' default is {default}"
                    )),
                )
            }
        }
    }

    /// A diagnostic about the spec, pointing into the config instead; its fix dropped.
    pub fn map_diagnostic(&self, d: &Diagnostic) -> Diagnostic {
        let mut labels: Vec<Label> = Vec::new();
        let mut notes = Vec::new();
        for l in &d.labels {
            let key = self.key_of(l.span).unwrap_or("block_out_channels");
            let (span, note) = self.place(key);
            if let Some(n) = note {
                if !notes.contains(&n) {
                    notes.push(n);
                }
            }
            match labels.iter_mut().find(|x| x.span == span) {
                Some(x) => {
                    if !x.message.contains(&l.message) {
                        x.message = format!("{}; {}", x.message, l.message);
                    }
                }
                None => labels.push(Label {
                    span,
                    message: l.message.clone(),
                    primary: l.primary,
                }),
            }
        }
        notes.extend(d.notes.iter().cloned());
        Diagnostic {
            labels,
            notes,
            fix: None,
            ..d.clone()
        }
    }

    /// Set `key` to `value` (JSON text) in the config: the value replaced in place, or the
    /// entry added after the last one.
    pub fn set(&self, text: &str, key: &str, value: &str) -> Edit {
        match self.layout.get(key) {
            Some(e) => Edit {
                span: e.value_span,
                replacement: value.to_string(),
            },
            None => match self.layout.entries.last() {
                Some(last) => {
                    let line_start = text[..last.key_span.start].rfind('\n').map_or(0, |i| i + 1);
                    let indent = &text[line_start..last.key_span.start];
                    let indent = if indent.trim().is_empty() {
                        indent
                    } else {
                        " "
                    };
                    let sep = if indent == " " { "," } else { ",\n" };
                    Edit {
                        span: Span::new(last.value_span.end, last.value_span.end),
                        replacement: format!("{sep}{indent}\"{key}\": {value}"),
                    }
                }
                None => Edit {
                    span: Span::new(self.layout.open.end, self.layout.open.end),
                    replacement: format!("\"{key}\": {value}"),
                },
            },
        }
    }
}

/// Imports and checks a config: the spec and its model, or errors pointing into the config.
pub fn check_config(
    text: &str,
    model: &str,
    source: &str,
) -> Result<(Imported, Vec<ModelIr>), Vec<Diagnostic>> {
    let imp = import(text, model, source)?;
    match crate::sema::check_source(&imp.spec) {
        Ok(models) => Ok((imp, models)),
        Err(d) => Err(d.iter().map(|x| imp.map_diagnostic(x)).collect()),
    }
}

/// Lints a config through its spec: the findings point into the config; with fixes on, each
/// finding a config can fix carries a fix that edits the JSON (fewer `norm_num_groups`, or
/// `"resnet_time_scale_shift": "scale_shift"`), re-linted for what it leaves.
pub fn lint_config(
    text: &str,
    model: &str,
    source: &str,
    opts: &LintOptions,
) -> Result<(Imported, Vec<ModelReport>), Vec<Diagnostic>> {
    let imp = import(text, model, source)?;
    let mut reports = lint::lint_source(&imp.spec, opts)
        .map_err(|d| d.iter().map(|x| imp.map_diagnostic(x)).collect::<Vec<_>>())?;
    // What each fixed config leaves, once per fixed text (findings of one remedy share it).
    let mut relinted: Vec<(String, String)> = Vec::new();
    for r in &mut reports {
        for d in &mut r.diagnostics {
            let mut m = imp.map_diagnostic(d);
            if opts.fixes {
                match config_fix(&imp, text, d, opts, &mut relinted) {
                    // The help says the config's remedy, not the spec's.
                    Some(ConfigFix { fix, help }) => {
                        m.fix = Some(fix);
                        m.help = Some(help);
                    }
                    None => {
                        if let Some(f) = &d.fix {
                            m.notes.push(format!(
                                "no config option expresses the fix; in the spec `tdspec import \
                                 diffusers` writes: {}",
                                f.description
                            ));
                        }
                    }
                }
            }
            *d = m;
        }
    }
    Ok((imp, reports))
}

/// The findings of the time-signal rules a config fix must clear.
const TIME_RULES: &[&str] = &["TD101", "TD102", "TD109"];

/// A fix of the config, and the help that says it (and the other remedy, where there is one).
struct ConfigFix {
    fix: Fix,
    help: String,
}

/// The remedy scale-shift blocks are, in a config's words.
const SCALE_SHIFT: &str = "\"resnet_time_scale_shift\": \"scale_shift\"";

/// The JSON fix for a finding about the spec: the spec's fewer-groups fix as
/// `norm_num_groups`, or scale-shift blocks for an offset the norms remove. `relinted` keeps
/// what re-linting each fixed text found.
fn config_fix(
    imp: &Imported,
    text: &str,
    d: &Diagnostic,
    opts: &LintOptions,
    relinted: &mut Vec<(String, String)>,
) -> Option<ConfigFix> {
    let spec_fix = d.fix.as_ref();
    // The spec's fix, when it only changes the default norm's group count.
    let groups = spec_fix.and_then(|f| {
        let [e] = f.edits.as_slice() else {
            return None;
        };
        if imp.key_of(e.span) != Some("norm_num_groups") {
            return None;
        }
        // The edit replaces the count (`8`) or the whole call (`group(8, ...)`).
        let rest = match e.replacement.split_once("group(") {
            Some((_, rest)) => rest,
            None => e.replacement.as_str(),
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<usize>().ok()
    });
    let time_rule = TIME_RULES.contains(&d.code.as_str());
    let (edit, action, help) = match groups {
        Some(g) => {
            let action = format!("set \"norm_num_groups\": {g}");
            let help = match time_rule {
                true => format!(
                    "{action}, or {SCALE_SHIFT} (time then scales and shifts the features after \
                     norm2)"
                ),
                false => action.clone(),
            };
            (
                imp.set(text, "norm_num_groups", &g.to_string()),
                action,
                help,
            )
        }
        None if time_rule && !imp.config.scale_shift => {
            let action =
                format!("set {SCALE_SHIFT} (time scales and shifts the features after norm2)");
            let edit = imp.set(text, "resnet_time_scale_shift", "\"scale_shift\"");
            (edit, action.clone(), action)
        }
        None => return None,
    };
    let (fixed, _) = crate::lint::apply_edits(text, std::slice::from_ref(&edit));
    // What the fixed config leaves: the spec fix's own prediction where it is the same
    // change, else the time-signal findings that remain when the fixed config is linted.
    let tail = match (groups, spec_fix) {
        (Some(_), Some(f)) => f
            .description
            .split_once("; ")
            .map(|(_, t)| t.to_string())
            .unwrap_or_default(),
        _ => match relinted.iter().find(|(t, _)| *t == fixed) {
            Some((_, said)) => said.clone(),
            None => {
                let quiet = LintOptions {
                    fixes: false,
                    ..opts.clone()
                };
                let (_, reports) =
                    lint_config(&fixed, &imp.model, "the fixed config", &quiet).ok()?;
                let left = reports
                    .iter()
                    .flat_map(|r| &r.diagnostics)
                    .filter(|x| TIME_RULES.contains(&x.code.as_str()))
                    .count();
                let said = match left {
                    0 => "re-linted: no TD101, TD102 or TD109 finding remains".to_string(),
                    n => format!("re-linted: {n} time-signal finding(s) remain"),
                };
                relinted.push((fixed, said.clone()));
                said
            }
        },
    };
    let description = match tail.is_empty() {
        true => action,
        false => format!("{action}; {tail}"),
    };
    Some(ConfigFix {
        fix: Fix {
            description,
            edits: vec![edit],
            unsafe_: true,
        },
        help,
    })
}

/// Applies every fix in `diags` to the config `text`, as `lint::apply_fixes` does for specs;
/// fails, leaving nothing applied, when the fixed config would not import and check.
pub fn apply_config_fixes(
    text: &str,
    model: &str,
    diags: &[Diagnostic],
) -> Result<lint::FixOutcome, Vec<Diagnostic>> {
    let outcome = lint::choose_fixes(text, diags);
    check_config(&outcome.text, model, "the fixed config")?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::super::json;
    use super::*;

    const DDPM: &str = include_str!("../../../../tests/diffusers/ddpm-cifar10-32.config.json");

    #[test]
    fn an_offset_no_group_count_saves_gets_scale_shift_blocks() {
        let imp = import(DDPM, "ddpm", "ddpm.config.json").unwrap();
        assert!(!imp.config.scale_shift);
        // A time-signal finding whose spec fix is not a group count.
        let d = Diagnostic::warning("TD102", "attenuated");
        let opts = LintOptions {
            fixes: true,
            ..Default::default()
        };
        let fix = config_fix(&imp, DDPM, &d, &opts, &mut Vec::new())
            .expect("a fix")
            .fix;
        assert!(
            fix.description
                .ends_with("re-linted: no TD101, TD102 or TD109 finding remains"),
            "{}",
            fix.description
        );
        let (fixed, skipped) = crate::lint::apply_edits(DDPM, &fix.edits);
        assert_eq!(skipped, 0);
        let v: serde_json::Value = serde_json::from_str(&fixed).expect("still JSON");
        assert_eq!(v["resnet_time_scale_shift"], "scale_shift");
        let again = import(&fixed, "ddpm", "ddpm.config.json").unwrap();
        assert!(again.config.scale_shift);
        assert!(again.spec.contains("scale_shift(temb | silu) as temb_proj"));
        // Other findings have no config fix.
        let d = Diagnostic::warning("TD104", "canceled bias");
        assert!(config_fix(&imp, DDPM, &d, &opts, &mut Vec::new()).is_none());
    }

    #[test]
    fn a_key_set_in_place_or_added_after_the_last_entry() {
        let text = "{\n  \"a\": 1,\n  \"sample_size\": 8\n}\n";
        let layout = json::layout(text).unwrap();
        let imp = Imported {
            spec: String::new(),
            model: "m".into(),
            config: read_config(DDPM).unwrap().0,
            regions: Vec::new(),
            layout,
        };
        let e = imp.set(text, "sample_size", "16");
        let (t, _) = crate::lint::apply_edits(text, &[e]);
        assert_eq!(t, "{\n  \"a\": 1,\n  \"sample_size\": 16\n}\n");
        let e = imp.set(text, "norm_num_groups", "8");
        let (t, _) = crate::lint::apply_edits(text, &[e]);
        assert_eq!(
            t,
            "{\n  \"a\": 1,\n  \"sample_size\": 8,\n  \"norm_num_groups\": 8\n}\n"
        );
    }

    #[test]
    fn model_names_from_file_names() {
        assert_eq!(model_name("ddpm-cifar10-32.config.json"), "ddpm_cifar10_32");
        assert_eq!(model_name("32px.json"), "unet_32px");
        assert_eq!(model_name("google.ddpm"), "google_ddpm");
    }
}
