//! What `check` and `compile` report about a checked model, as data: a model and its source
//! in (for `compile` also the lowered parameters and the cost model's figures); out a
//! [`ModelSummary`] (the layer table, per-section parameter subtotals, the time input and the
//! injection sites with their line and column) or a [`CompileSummary`]. Both serialize as the
//! commands' `--format json` objects; the command line renders the text tables from them.

use crate::lower::Cost;
use serde::Serialize;
use tdspec_compiler::diagnostics::SourceFile;
use tdspec_compiler::ir::{Graph, ModelIr, Op, ParamInfo, TimeInfo};

/// One model of a checked spec.
#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub file: String,
    pub model: String,
    pub params: usize,
    /// Parameter subtotals by the first segment of the node path, in order of appearance.
    pub sections: Vec<Section>,
    pub time: TimeInfo,
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
                    mode: i.mode.clone(),
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
            layers,
            injections,
            table: rows,
        }
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
        infos: &[ParamInfo],
        cost: &Cost,
        batch: usize,
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
        }
    }
}
