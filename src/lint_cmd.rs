//! `tdspec lint` and `tdspec explain`: spec paths and options in; lint diagnostics rendered as
//! text (miette), JSON or SARIF 2.1.0 on stdout, fixes applied to the files with `--fix
//! --unsafe-fixes`; a rule's documentation out of `explain`. Exit 0 when clean, 1 when a
//! finding at deny level exists or a spec has errors, 2 for usage and IO errors.

use crate::render;
use crate::report::{fail, print_json, OrExit};
use crate::Format;
use clap::{Args, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use tdspec_compiler::diagnostics::{Diagnostic, SourceFile};
use tdspec_compiler::lint::{self, RULES};
use tdspec_runtime::spec;

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
    /// Also print, for every normalization the time signal reaches, per origin, the predicted
    /// surviving fraction and what it is made of (JSON: {"diagnostics", "survival"})
    #[arg(long)]
    survival: bool,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// A rule code such as TD101; without one, lists every rule
    code: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(args: &LintArgs) -> Result<u8, u8> {
    let mut opts = spec::lint_options(&args.select, &args.ignore, &args.deny).or_exit()?;
    opts.survival = args.survival;
    let (mut results, mut messages, mut tally) =
        (Vec::new(), Vec::new(), spec::LintTally::default());
    // A file that cannot be read is reported and the others are still linted (exit 2).
    let mut unreadable = 0;
    let paths = spec::expand(&args.paths).or_exit()?;
    let (threads, text) = (spec::lint_threads(), args.format == LintFormat::Text);
    let color = render::use_color() && std::io::stdout().is_terminal();
    // Each file's text is rendered on the thread that linted it, and written in order as
    // soon as it is ready; only what the closing line counts is kept of it.
    let render_text = |r: &spec::Linted| match text {
        true => r.text(|s, d| render::render(s, d, color), args.survival),
        false => String::new(),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let each = |linted: Result<(spec::Linted, String), String>| match linted {
        Ok((r, t)) => {
            messages.extend(r.fix_note());
            tally.add(&r);
            match text {
                true => drop(out.write_all(t.as_bytes())),
                false => results.push(r),
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            unreadable += 1;
        }
    };
    let how = (&opts, args.fix, args.unsafe_fixes);
    spec::lint_files_each(&paths, how, threads, render_text, each);
    let failed = tally.errors > 0;
    let exit = |failed: bool| match unreadable {
        0 => Ok(u8::from(failed)),
        _ => Err(2),
    };
    let json = match args.format {
        LintFormat::Text => {
            messages.push(tally.summary(args.fix));
            let _ = spec::write_messages(&mut out, &messages);
            return exit(failed);
        }
        LintFormat::Json => {
            let diagnostics = serde_json::Value::Array(
                results
                    .iter()
                    .flat_map(|r| r.diagnostics.iter().map(|d| render::json(&r.src, d)))
                    .collect(),
            );
            match args.survival {
                true => {
                    let survival: Vec<_> = results.iter().flat_map(|r| r.survival_json()).collect();
                    serde_json::json!({"diagnostics": diagnostics, "survival": survival})
                }
                false => diagnostics,
            }
        }
        LintFormat::Sarif => {
            let files: Vec<(&SourceFile, &[Diagnostic])> = results
                .iter()
                .map(|r| (&r.src, r.diagnostics.as_slice()))
                .collect();
            lint::sarif::sarif(&files, env!("CARGO_PKG_VERSION"))
        }
    };
    print_json(&json);
    messages.iter().for_each(|m| eprintln!("{m}"));
    exit(failed)
}

pub fn explain(args: &ExplainArgs) -> Result<u8, u8> {
    let rule = match &args.code {
        Some(code) => Some(lint::find_rule(code).map_err(fail)?),
        None => None,
    };
    match (args.format, rule) {
        (Format::Json, Some(r)) => print_json(r),
        (Format::Json, None) => print_json(&RULES),
        _ => print!("{}", lint::explain_text(rule)),
    }
    Ok(0)
}
