//! `tdspec check`: spec files in; per valid model a table of layers (name, op, output shape,
//! parameters), the parameter total with per-section subtotals, and the time-injection sites;
//! rendered diagnostics for invalid specs. Exit 1 when any spec has errors.

use crate::render;
use crate::report::fail;
use crate::Format;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tdspec_compiler::diagnostics::{thousands, SourceFile};
use tdspec_compiler::ir::{ModelIr, Sharing, TimeKind};
use tdspec_compiler::sema::check_source;
use tdspec_runtime::spec;
use tdspec_runtime::summary::ModelSummary;

#[derive(Args)]
pub struct CheckArgs {
    /// Spec files or directories (searched for *.tds)
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(a: &CheckArgs) -> u8 {
    let format = a.format;
    let files = match spec::expand(&a.paths) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let color = render::use_color();
    let mut failed = false;
    let mut json_out = Vec::new();
    for path in files {
        let src = match spec::read(&path) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        match check_source(&src.text) {
            Ok(models) => {
                for m in &models {
                    match format {
                        Format::Text => print!("{}", table(&src, m)),
                        Format::Json => json_out.push(json!(ModelSummary::new(&src, m))),
                    }
                }
            }
            Err(diags) => {
                failed = true;
                for d in &diags {
                    match format {
                        Format::Text => eprint!("{}", render::render(&src, d, color)),
                        Format::Json => json_out.push(render::json(&src, d)),
                    }
                }
                if format == Format::Text {
                    let n = diags.len();
                    eprintln!("{}: {n} error{}", src.name, if n == 1 { "" } else { "s" });
                }
            }
        }
    }
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_out).unwrap_or_default()
        );
    }
    u8::from(failed)
}

fn table(src: &SourceFile, m: &ModelIr) -> String {
    let sum = ModelSummary::new(src, m);
    let r = &sum.table;
    let name_w = r
        .iter()
        .map(|x| x.name.len() + 2 * x.depth)
        .max()
        .unwrap_or(5)
        .max(5);
    let op_w = r.iter().map(|x| x.op.len()).max().unwrap_or(2).max(2);
    let shape_w = r.iter().map(|x| x.shape.len()).max().unwrap_or(6).max(6);
    let mut s = format!("{}: model {}\n", src.name, m.name);
    s += &format!(
        "  {:name_w$}  {:op_w$}  {:shape_w$}  {:>11}\n",
        "layer", "op", "output", "params"
    );
    for x in r {
        let name = format!("{}{}", "  ".repeat(x.depth), x.name);
        let params = if x.params == 0 {
            "-".to_string()
        } else {
            thousands(x.params)
        };
        s += &format!(
            "  {name:name_w$}  {:op_w$}  {:shape_w$}  {params:>11}\n",
            x.op, x.shape
        );
    }
    let sub: Vec<String> = sum
        .sections
        .iter()
        .map(|x| format!("{} {}", x.name, thousands(x.params)))
        .collect();
    s += &format!(
        "  total parameters: {} ({})\n",
        thousands(sum.params),
        sub.join(", ")
    );
    let sharing = match m.time.sharing {
        Sharing::Shared => "shared across the batch",
        Sharing::PerSample => "per sample",
    };
    let kind = match m.time.kind {
        TimeKind::Continuous => "continuous".to_string(),
        TimeKind::Steps(n) => format!("{n} integer steps"),
    };
    s += &format!("  time input: {} ({kind}, {sharing})\n", m.time.name);
    let inj = &sum.injections;
    if inj.is_empty() {
        s += "  time injections: none (the network never reads t)\n";
    } else {
        s += &format!("  time injections ({}):\n", inj.len());
        let w = inj.iter().map(|i| i.node.len()).max().unwrap_or(0);
        let mw = inj.iter().map(|i| i.mode.len()).max().unwrap_or(0);
        for i in inj {
            let (node, mode, line, col) = (&i.node, &i.mode, i.line, i.column);
            s += &format!("    {node:w$}  {mode:mw$}  {}:{line}:{col}\n", src.name);
        }
    }
    s
}
