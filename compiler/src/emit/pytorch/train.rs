//! `train.py` (the template with the spec's task and training settings filled in) and the
//! package's `README.md`.

use super::names::py_float;
use crate::diagnostics::thousands;
use crate::ir::{LrSchedule, ModelIr, Optimizer, Schedule, Task};
use std::fmt::Write as _;

const TRAIN: &str = include_str!("train.py");
const README: &str = include_str!("README.md");

fn train_config(model: &ModelIr) -> String {
    let mut s = String::new();
    let t = &model.train;
    let _ = writeln!(s, "MODEL_NAME = {:?}", model.name);
    match &model.task {
        Some(Task::Classify { classes }) => {
            let _ = writeln!(
                s,
                "TASK = {{\"kind\": \"classify\", \"classes\": {classes}}}"
            );
        }
        Some(Task::Denoise { schedule, predict }) => {
            let sched = match schedule {
                Schedule::Linear {
                    beta_start,
                    beta_end,
                    steps,
                } => format!(
                    "{{\"kind\": \"linear\", \"beta_start\": {}, \"beta_end\": {}, \"steps\": {steps}}}",
                    py_float(*beta_start),
                    py_float(*beta_end)
                ),
                Schedule::Cosine { steps } => {
                    format!("{{\"kind\": \"cosine\", \"steps\": {steps}}}")
                }
            };
            let _ = writeln!(
                s,
                "TASK = {{\"kind\": \"denoise\", \"schedule\": {sched}, \"predict\": {predict:?}}}"
            );
        }
        None => {
            let _ = writeln!(s, "TASK = None");
        }
    }
    let opt = match t.optimizer {
        Optimizer::Sgd {
            lr,
            momentum,
            weight_decay,
        } => format!(
            "{{\"kind\": \"sgd\", \"lr\": {}, \"momentum\": {}, \"weight_decay\": {}}}",
            py_float(lr),
            py_float(momentum),
            py_float(weight_decay)
        ),
        Optimizer::Adam {
            lr,
            beta1,
            beta2,
            weight_decay,
        } => format!(
            "{{\"kind\": \"adam\", \"lr\": {}, \"betas\": ({}, {}), \"weight_decay\": {}}}",
            py_float(lr),
            py_float(beta1),
            py_float(beta2),
            py_float(weight_decay)
        ),
    };
    let sched = match &t.schedule {
        LrSchedule::Constant => "{\"kind\": \"constant\"}".to_string(),
        LrSchedule::Step { milestones, gamma } => format!(
            "{{\"kind\": \"step\", \"milestones\": {milestones:?}, \"gamma\": {}}}",
            py_float(*gamma)
        ),
        LrSchedule::Cosine => "{\"kind\": \"cosine\"}".to_string(),
    };
    let opt_num = |v: Option<usize>| v.map(|x| x.to_string()).unwrap_or_else(|| "None".into());
    let opt_f = |v: Option<f64>| v.map(py_float).unwrap_or_else(|| "None".into());
    let _ = writeln!(
        s,
        "TRAIN = {{\n    \"optimizer\": {opt},\n    \"warmup\": {},\n    \"batch\": {},\n    \"epochs\": {},\n    \"steps\": {},\n    \"grad_clip\": {},\n    \"ema\": {},\n    \"schedule\": {sched},\n}}",
        t.warmup,
        t.batch,
        opt_num(t.epochs),
        opt_num(t.steps),
        opt_f(t.grad_clip),
        opt_f(t.ema)
    );
    s
}

pub(super) fn train_py(model: &ModelIr) -> String {
    TRAIN
        .replace("{{MODEL_NAME}}", &model.name)
        .replace("# {{CONFIG}}\n", &train_config(model))
}

pub(super) fn readme(model: &ModelIr) -> String {
    let data = if model.input.channels == 3 {
        "cifar10:/data/cifar-10-batches-bin"
    } else {
        "mnist:/data/mnist"
    };
    let task = match &model.task {
        Some(Task::Classify { .. }) => "neural-ODE / classifier training (cross-entropy)",
        Some(Task::Denoise { .. }) => "diffusion training (DDPM epsilon prediction) and sampling",
        None => "no task (the spec declares none; train.py refuses to run)",
    };
    README
        .replace("{{MODEL_NAME}}", &model.name)
        .replace("{{PARAMS}}", &thousands(model.param_count()))
        .replace("{{TASK}}", task)
        .replace("{{DATA}}", data)
}
