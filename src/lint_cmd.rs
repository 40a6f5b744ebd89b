//! `tdspec lint` and `tdspec explain`: spec paths and options in; lint diagnostics rendered as
//! text (miette), JSON or SARIF 2.1.0 on stdout, fixes applied to the files with `--fix
//! --unsafe-fixes`; a rule's documentation out of `explain`. Exit 0 when clean, 1 when a
//! finding at deny level exists or a spec has errors, 2 for usage and IO errors.

use crate::render;
use crate::report::fail;
use crate::Format;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use tdspec_compiler::diagnostics::{Diagnostic, Severity, SourceFile};
use tdspec_compiler::lint::{self, RULES};
use tdspec_runtime::spec::{self, Fixes, Linted};

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Args)]
pub struct LintArgs {
    /// Spec files or directories (searched for *.tds)
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: LintFormat,
    /// Report only these codes or prefixes (comma-separated, e.g. TD101,TD10)
    #[arg(long, value_delimiter = ',')]
    select: Vec<String>,
    /// Do not report these codes or prefixes
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
    /// Treat these codes or prefixes as errors (exit 1); `warnings` denies every warning
    #[arg(long, value_delimiter = ',')]
    deny: Vec<String>,
    /// Apply fixes to the files (all fixes change the model: needs --unsafe-fixes)
    #[arg(long)]
    fix: bool,
    /// Allow --fix to apply fixes that change the model
    #[arg(long)]
    unsafe_fixes: bool,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// A rule code such as TD101; without one, lists every rule
    code: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(args: &LintArgs) -> u8 {
    let opts = match spec::lint_options(&args.select, &args.ignore, &args.deny) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let paths = match spec::expand(&args.paths) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let plural = |n: usize| if n == 1 { "" } else { "es" };
    let mut results = Vec::new();
    let mut messages = Vec::new();
    for path in &paths {
        let r = match spec::lint_file(path, &opts, args.fix, args.unsafe_fixes) {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        match r.fixes {
            Fixes::None => {}
            Fixes::Withheld(n) => messages.push(format!(
                "{}: {n} fix{} available but not applied: every tdspec fix changes the model; add --unsafe-fixes to apply",
                r.src.name,
                plural(n)
            )),
            Fixes::Applied { applied, skipped } => {
                let mut m = format!("{}: applied {applied} fix{}", r.src.name, plural(applied));
                if skipped > 0 {
                    m += &format!("; {skipped} overlapping fix{} skipped (run again)", plural(skipped));
                }
                messages.push(m);
            }
        }
        results.push(r);
    }
    let failed = results
        .iter()
        .any(|r| r.diagnostics.iter().any(|d| d.severity == Severity::Error));
    match args.format {
        LintFormat::Text => print_text(&results, &messages, args.fix),
        LintFormat::Json => {
            let all: Vec<serde_json::Value> = results
                .iter()
                .flat_map(|r| r.diagnostics.iter().map(|d| render::json(&r.src, d)))
                .collect();
            println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
            for m in &messages {
                eprintln!("{m}");
            }
        }
        LintFormat::Sarif => {
            let files: Vec<(&SourceFile, &[Diagnostic])> = results
                .iter()
                .map(|r| (&r.src, r.diagnostics.as_slice()))
                .collect();
            let log = lint::sarif::sarif(&files, env!("CARGO_PKG_VERSION"));
            println!("{}", serde_json::to_string_pretty(&log).unwrap_or_default());
            for m in &messages {
                eprintln!("{m}");
            }
        }
    }
    u8::from(failed)
}

fn print_text(results: &[Linted], messages: &[String], fix: bool) {
    let color = render::use_color() && std::io::stdout().is_terminal();
    let (mut errors, mut warnings, mut infos, mut fixable) = (0, 0, 0, 0);
    for r in results {
        for d in &r.diagnostics {
            print!("{}", render::render(&r.src, d, color));
            print!("{}", lint::render_fix(&r.src.text, d));
            println!();
            match d.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
                Severity::Info => infos += 1,
            }
            fixable += usize::from(d.fix.is_some());
        }
    }
    for m in messages {
        println!("{m}");
    }
    let total = errors + warnings + infos;
    if total == 0 {
        println!(
            "no findings in {} spec{}",
            results.len(),
            if results.len() == 1 { "" } else { "s" }
        );
        return;
    }
    let mut line = format!(
        "{total} finding{} in {} spec{}: {errors} error{}, {warnings} warning{}, {infos} info",
        if total == 1 { "" } else { "s" },
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" },
    );
    if fixable > 0 && !fix {
        line.push_str(&format!(
            "; {fixable} with an unsafe fix (--fix --unsafe-fixes)"
        ));
    }
    println!("{line}");
}

pub fn explain(args: &ExplainArgs) -> u8 {
    let Some(code) = &args.code else {
        match args.format {
            Format::Text => {
                for r in RULES {
                    println!(
                        "{}  {:<24} {:<8} {}",
                        r.code,
                        r.name,
                        r.severity.as_str(),
                        r.summary
                    );
                }
            }
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(RULES).unwrap_or_default()
            ),
        }
        return 0;
    };
    let Some(rule) = lint::rule(code).or_else(|| RULES.iter().find(|r| r.name == code.as_str()))
    else {
        eprintln!("error: unknown rule `{code}`");
        if let Some(s) = lint::suggest_code(code) {
            eprintln!("  help: did you mean `{s}`?");
        } else {
            eprintln!("  help: `tdspec explain` lists the rules");
        }
        return 2;
    };
    match args.format {
        Format::Text => {
            println!("# {} {}: {}\n", rule.code, rule.name, rule.summary);
            println!(
                "default severity: {}; fix: {}\n",
                rule.severity.as_str(),
                if rule.fixable {
                    "unsafe (--fix --unsafe-fixes)"
                } else {
                    "none"
                }
            );
            print!("{}", rule.doc);
        }
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(rule).unwrap_or_default())
        }
    }
    0
}
