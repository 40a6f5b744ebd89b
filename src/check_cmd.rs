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
use tdspec_compiler::ir::{Graph, ModelIr, Op, Sharing, TimeKind};
use tdspec_compiler::sema::check_source;
use tdspec_runtime::spec;

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
                        Format::Json => json_out.push(model_json(&src, m)),
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

struct Row {
    depth: usize,
    name: String,
    op: String,
    shape: String,
    params: usize,
}

fn rows(g: &Graph, depth: usize, out: &mut Vec<Row>) {
    for n in &g.nodes {
        if matches!(n.op, Op::Time) || (depth > 0 && matches!(n.op, Op::Input)) {
            continue;
        }
        out.push(Row {
            depth,
            name: n.name.clone(),
            op: n.op.describe(),
            shape: n.shape.to_string(),
            params: n.param_count(),
        });
        if let Op::Ode { func, .. } = &n.op {
            rows(&func.graph, depth + 1, out);
        }
    }
}

/// Parameter subtotals by the first segment of the node path, in order of appearance.
fn sections(m: &ModelIr) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for n in &m.graph.nodes {
        let count = n.param_count();
        if count == 0 {
            continue;
        }
        let head = n.name.split('.').next().unwrap_or("").to_string();
        match out.iter_mut().find(|(k, _)| *k == head) {
            Some((_, v)) => *v += count,
            None => out.push((head, count)),
        }
    }
    out
}

fn table(src: &SourceFile, m: &ModelIr) -> String {
    let mut r = Vec::new();
    rows(&m.graph, 0, &mut r);
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
    for x in &r {
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
    let secs = sections(m);
    let sub = secs
        .iter()
        .map(|(k, v)| format!("{k} {}", thousands(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    s += &format!(
        "  total parameters: {} ({sub})\n",
        thousands(m.param_count())
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
    if m.injections.is_empty() {
        s += "  time injections: none (the network never reads t)\n";
    } else {
        s += &format!("  time injections ({}):\n", m.injections.len());
        let w = m.injections.iter().map(|i| i.node.len()).max().unwrap_or(0);
        let mw = m.injections.iter().map(|i| i.mode.len()).max().unwrap_or(0);
        for i in &m.injections {
            let (line, col) = src.line_col(i.span.start);
            s += &format!(
                "    {:w$}  {:mw$}  {}:{line}:{col}\n",
                i.node, i.mode, src.name
            );
        }
    }
    s
}

fn model_json(src: &SourceFile, m: &ModelIr) -> serde_json::Value {
    let mut layers = Vec::new();
    m.graph.walk(&mut |_, _, n| {
        if matches!(n.op, Op::Time) {
            return;
        }
        layers.push(json!({
            "name": n.name,
            "op": n.op.describe(),
            "shape": n.shape.dims(0).into_iter().skip(1).collect::<Vec<_>>(),
            "params": n.params.iter().map(|p| p.numel()).sum::<usize>(),
        }));
    });
    let injections: Vec<_> = m
        .injections
        .iter()
        .map(|i| {
            let (line, column) = src.line_col(i.span.start);
            json!({"node": i.node, "mode": i.mode, "line": line, "column": column})
        })
        .collect();
    json!({
        "file": src.name,
        "model": m.name,
        "params": m.param_count(),
        "sections": sections(m).into_iter().map(|(k, v)| json!({"name": k, "params": v})).collect::<Vec<_>>(),
        "time": m.time,
        "layers": layers,
        "injections": injections,
    })
}
