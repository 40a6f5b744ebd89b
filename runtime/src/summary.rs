//! What `check` and `compile` report about a checked model, as data: a model and its source
//! in (for `compile` also the lowered parameters and the cost model's figures); out a
//! [`ModelSummary`] (the layer table, per-section parameter subtotals, the time input and the
//! injection sites with their line and column) or a [`CompileSummary`]. Both serialize as the
//! commands' `--format json` objects and display as their text reports.

use crate::lower::Cost;
use serde::Serialize;
use std::fmt::{self, Write as _};
use tdspec_compiler::diagnostics::{thousands, SourceFile};
use tdspec_compiler::ir::{Graph, LabelInfo, ModelIr, Op, ParamInfo, Sharing, TimeInfo, TimeKind};

/// One model of a checked spec.
#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub file: String,
    pub model: String,
    pub params: usize,
    /// Parameter subtotals by the first segment of the node path, in order of appearance.
    pub sections: Vec<Section>,
    pub time: TimeInfo,
    /// The class-label input of a class-conditional model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<LabelInfo>,
    /// Every node but the time input, ODE functions included.
    pub layers: Vec<Layer>,
    pub injections: Vec<Injection>,
    /// The rows of the text table: ODE functions indented under their block, without their
    /// time and state inputs.
    #[serde(skip)]
    pub table: Vec<TableRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Section {
    pub name: String,
    pub params: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Layer {
    pub name: String,
    pub op: String,
    /// The output shape without the batch.
    pub shape: Vec<usize>,
    pub params: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Injection {
    pub node: String,
    pub mode: String,
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Debug)]
pub struct TableRow {
    /// Nesting depth (ODE functions are one deeper).
    pub depth: usize,
    pub name: String,
    pub op: String,
    pub shape: String,
    pub params: usize,
}

fn table(g: &Graph, depth: usize, out: &mut Vec<TableRow>) {
    for n in &g.nodes {
        if matches!(n.op, Op::Time) || (depth > 0 && matches!(n.op, Op::Input)) {
            continue;
        }
        out.push(TableRow {
            depth,
            name: n.name.clone(),
            op: n.op.describe(),
            shape: n.shape.to_string(),
            params: n.param_count(),
        });
        if let Op::Ode { func, .. } = &n.op {
            table(&func.graph, depth + 1, out);
        }
    }
}

impl ModelSummary {
    pub fn new(src: &SourceFile, m: &ModelIr) -> Self {
        let mut sections: Vec<Section> = Vec::new();
        for n in &m.graph.nodes {
            let count = n.param_count();
            if count == 0 {
                continue;
            }
            let head = n.name.split('.').next().unwrap_or("");
            match sections.iter_mut().find(|s| s.name == head) {
                Some(s) => s.params += count,
                None => sections.push(Section {
                    name: head.to_string(),
                    params: count,
                }),
            }
        }
        let mut layers = Vec::new();
        m.graph.walk(&mut |_, _, n| {
            if !matches!(n.op, Op::Time) {
                layers.push(Layer {
                    name: n.name.clone(),
                    op: n.op.describe(),
                    shape: n.shape.dims(0).into_iter().skip(1).collect(),
                    params: n.params.iter().map(|p| p.numel()).sum(),
                });
            }
        });
        let injections = m
            .injections
            .iter()
            .map(|i| {
                let (line, column) = src.line_col(i.span.start);
                Injection {
                    node: i.node.clone(),
                    mode: i.mode.as_str().to_string(),
                    line,
                    column,
                }
            })
            .collect();
        let mut rows = Vec::new();
        table(&m.graph, 0, &mut rows);
        ModelSummary {
            file: src.name.clone(),
            model: m.name.clone(),
            params: m.param_count(),
            sections,
            time: m.time.clone(),
            label: m.label.clone(),
            layers,
            injections,
            table: rows,
        }
    }
}

/// The widest a table column is padded to (the formatter's width limit is 65,535; longer
/// names overflow their column instead).
const MAX_COLUMN: usize = 120;

impl fmt::Display for ModelSummary {
    /// The table of `tdspec check`: layers, parameter total by section, time input and
    /// injection sites.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.table;
        let width = |g: fn(&TableRow) -> usize, min: usize| r.iter().map(g).max().unwrap_or(min);
        let name_w = width(|x| x.name.len() + 2 * x.depth, 5).clamp(5, MAX_COLUMN);
        let op_w = width(|x| x.op.len(), 2).clamp(2, MAX_COLUMN);
        let shape_w = width(|x| x.shape.len(), 6).clamp(6, MAX_COLUMN);
        writeln!(f, "{}: model {}", self.file, self.model)?;
        let (layer, op, output) = ("layer", "op", "output");
        writeln!(
            f,
            "  {layer:name_w$}  {op:op_w$}  {output:shape_w$}  {:>11}",
            "params"
        )?;
        for x in r {
            let name = format!("{}{}", "  ".repeat(x.depth), x.name);
            let params = if x.params == 0 {
                "-".to_string()
            } else {
                thousands(x.params)
            };
            let (op, shape) = (&x.op, &x.shape);
            writeln!(
                f,
                "  {name:name_w$}  {op:op_w$}  {shape:shape_w$}  {params:>11}"
            )?;
        }
        let sub: Vec<String> = self
            .sections
            .iter()
            .map(|x| format!("{} {}", x.name, thousands(x.params)))
            .collect();
        let total = thousands(self.params);
        writeln!(f, "  total parameters: {total} ({})", sub.join(", "))?;
        let sharing = match self.time.sharing {
            Sharing::Shared => "shared across the batch",
            Sharing::PerSample => "per sample",
        };
        let kind = match self.time.kind {
            TimeKind::Continuous => match self.time.range {
                Some((lo, hi)) => format!("continuous in [{lo}, {hi}]"),
                None => "continuous".to_string(),
            },
            TimeKind::Steps(n) => format!("{n} integer steps"),
        };
        writeln!(f, "  time input: {} ({kind}, {sharing})", self.time.name)?;
        if let Some(lb) = &self.label {
            writeln!(f, "  class labels: {} ({} classes)", lb.name, lb.classes)?;
        }
        let inj = &self.injections;
        if inj.is_empty() {
            return writeln!(f, "  time injections: none (the network never reads t)");
        }
        writeln!(f, "  time injections ({}):", inj.len())?;
        let w = inj
            .iter()
            .map(|i| i.node.len())
            .max()
            .unwrap_or(0)
            .min(MAX_COLUMN);
        let mw = inj
            .iter()
            .map(|i| i.mode.len())
            .max()
            .unwrap_or(0)
            .min(MAX_COLUMN);
        for i in inj {
            let (node, mode, line, col) = (&i.node, &i.mode, i.line, i.column);
            writeln!(f, "    {node:w$}  {mode:mw$}  {}:{line}:{col}", self.file)?;
        }
        Ok(())
    }
}

/// A model lowered and run on a device, with its cost for a batch.
#[derive(Clone, Debug, Serialize)]
pub struct CompileSummary {
    pub file: String,
    pub model: String,
    pub params: usize,
    pub tensors: Vec<Tensor>,
    pub macs_per_sample: u64,
    pub macs_per_nfe: u64,
    pub nfe_per_solve: Option<u64>,
    pub activation_bytes_per_sample: u64,
    pub batch: usize,
    /// Activation memory kept for backward at `batch`.
    pub activation_bytes: f64,
    /// The device it ran on.
    #[serde(skip)]
    pub device: String,
    /// ODE function evaluations of the run on a zero input.
    #[serde(skip)]
    pub nfe_zero_input: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
}

impl CompileSummary {
    pub fn new(
        src: &SourceFile,
        m: &ModelIr,
        (infos, nfe): (&[ParamInfo], usize),
        cost: &Cost,
        batch: usize,
        device: &str,
    ) -> Self {
        CompileSummary {
            file: src.name.clone(),
            model: m.name.clone(),
            params: infos.iter().map(|i| i.numel()).sum(),
            tensors: infos
                .iter()
                .map(|i| Tensor {
                    name: i.name.clone(),
                    shape: i.shape.clone(),
                })
                .collect(),
            macs_per_sample: cost.macs_per_sample,
            macs_per_nfe: cost.macs_per_nfe,
            nfe_per_solve: cost.nfe_per_solve,
            activation_bytes_per_sample: cost.activations_per_sample * 4,
            batch,
            activation_bytes: cost.activations_per_sample as f64 * batch as f64 * 4.0,
            device: device.to_string(),
            nfe_zero_input: nfe,
        }
    }

    /// The report of `tdspec compile`; `tensors` lists every parameter tensor.
    pub fn text(&self, tensors: bool) -> String {
        let mut s = format!(
            "{}: model {} (compiled for {})\n",
            self.file, self.model, self.device
        );
        if tensors {
            let w = self
                .tensors
                .iter()
                .map(|i| i.name.len())
                .max()
                .unwrap_or(4)
                .min(MAX_COLUMN);
            let _ = writeln!(s, "  parameter tensors ({}):", self.tensors.len());
            for t in &self.tensors {
                let (shape, n) = (format!("{:?}", t.shape), t.shape.iter().product());
                let _ = writeln!(s, "    {:w$}  {shape:<18}  {:>11}", t.name, thousands(n));
            }
        }
        let p = self.params;
        let _ = writeln!(
            s,
            "  parameters: {} ({} as f32)",
            thousands(p),
            mib(p as f64 * 4.0)
        );
        let macs = self.macs_per_sample as f64;
        let _ = writeln!(
            s,
            "  forward: {}MAC per sample ({}FLOP)",
            si(macs),
            si(2.0 * macs)
        );
        if self.macs_per_nfe > 0 {
            let per = si(self.macs_per_nfe as f64);
            let _ = match self.nfe_per_solve {
                Some(n) => writeln!(
                    s,
                    "  ODE function: {per}MAC per sample per evaluation; {n} evaluations per solve"
                ),
                None => writeln!(
                    s,
                    "  ODE function: {per}MAC per sample per evaluation; adaptive solver ({} evaluations on a zero input; the forward figure counts one)",
                    self.nfe_zero_input
                ),
            };
        }
        let _ = writeln!(
            s,
            "  activations: {} per sample; {} for a batch of {} (kept for backward)",
            mib(self.activation_bytes_per_sample as f64),
            mib(self.activation_bytes),
            self.batch
        );
        s
    }
}

/// Bytes as MiB, or GiB from 1 GiB.
fn mib(bytes: f64) -> String {
    if bytes >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", bytes / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes / (1u64 << 20) as f64)
    }
}

/// A count with an SI prefix and a trailing space (`1.50 M`).
fn si(v: f64) -> String {
    match v {
        _ if v >= 1e9 => format!("{:.2} G", v / 1e9),
        _ if v >= 1e6 => format!("{:.2} M", v / 1e6),
        _ if v >= 1e3 => format!("{:.2} k", v / 1e3),
        _ => format!("{v:.0} "),
    }
}
