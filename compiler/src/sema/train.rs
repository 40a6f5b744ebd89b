//! Task and training settings: `task classify(...)` / `task denoise(...)` with the noise
//! schedule, the task's checks on the output shape and the time input, and `train(...)` (the
//! optimizer, its warmup, the learning-rate schedule, batch, length, clipping, EMA).

use super::args;
use super::state::{src_word, Sema};
use crate::ast::{self, Arg, Expr, ExprKind, Span};
use crate::diagnostics::Diagnostic;
use crate::ir::{LrSchedule, NodeId, Optimizer, Schedule, Shape, Task, TimeKind, TrainSettings};

impl<'a> Sema<'a> {
    pub(super) fn task(&mut self, c: &ast::Call) -> Option<Task> {
        match c.name.name.as_str() {
            "classify" => {
                let a = self.bind_args(c, &["classes"], 1)?;
                Some(Task::Classify {
                    classes: self.positive(a[0]?, "the number of classes")?,
                })
            }
            "denoise" => {
                let a = self.bind_args(c, &["schedule", "predict"], 0)?;
                let schedule = match a[0] {
                    Some(e) => self.schedule(e)?,
                    None => Schedule::Linear {
                        beta_start: 1e-4,
                        beta_end: 0.02,
                        steps: 1000,
                    },
                };
                let predict = match a[1] {
                    Some(e) => self.choice(e, "prediction target", &["eps"])?,
                    None => "eps".to_string(),
                };
                Some(Task::Denoise { schedule, predict })
            }
            other => {
                self.err(
                    Diagnostic::error("E102", format!("unknown task `{other}`"))
                        .with_primary(c.name.span, "expected `classify` or `denoise`")
                        .suggest(other, ["classify", "denoise"]),
                );
                None
            }
        }
    }

    fn schedule(&mut self, e: &Expr) -> Option<Schedule> {
        let ExprKind::Call(c) = &e.kind else {
            self.err(
                Diagnostic::error(
                    "E201",
                    "a noise schedule is `linear(b0, b1, T)` or `cosine(T)`",
                )
                .with_primary(e.span, format!("found {}", e.describe())),
            );
            return None;
        };
        match c.name.name.as_str() {
            "linear" => {
                let a = self.bind_args(c, &["beta_start", "beta_end", "steps"], 3)?;
                let b0 = self.float(a[0]?)?;
                let b1 = self.float(a[1]?)?;
                let steps = self.positive(a[2]?, "the number of steps")?;
                if !(0.0 < b0 && b0 <= b1 && b1 < 1.0) {
                    self.err(
                        Diagnostic::error(
                            "E202",
                            "betas must satisfy 0 < beta_start <= beta_end < 1",
                        )
                        .with_primary(c.span, "invalid beta range"),
                    );
                    return None;
                }
                Some(Schedule::Linear {
                    beta_start: b0,
                    beta_end: b1,
                    steps,
                })
            }
            "cosine" => {
                let a = self.bind_args(c, &["steps"], 1)?;
                Some(Schedule::Cosine {
                    steps: self.positive(a[0]?, "the number of steps")?,
                })
            }
            other => {
                self.err(
                    Diagnostic::error("E202", format!("unknown noise schedule `{other}`"))
                        .with_primary(c.name.span, "expected `linear` or `cosine`")
                        .suggest(other, ["linear", "cosine"]),
                );
                None
            }
        }
    }

    pub(super) fn check_task(&mut self, task: &Task, out: NodeId) {
        let shape = self.node_shape(out);
        let span = self.node_span(out);
        match task {
            Task::Classify { classes } => {
                if shape != (Shape::Vector { d: *classes }) {
                    self.err(
                        Diagnostic::error("E209", format!("a {classes}-class classifier must output [B, {classes}], found {shape}"))
                            .with_primary(span, format!("the output is {shape}"))
                            .with_help(format!("end with `avgpool | flatten | linear({classes})`")),
                    );
                }
            }
            Task::Denoise { schedule, .. } => {
                let inp = self.input.clone();
                if let Some(inp) = inp {
                    let want = Shape::Image {
                        c: inp.channels,
                        h: inp.height,
                        w: inp.width,
                    };
                    if shape != want {
                        self.err(
                            Diagnostic::error("E209", format!("a denoiser must output its input's shape {want}, found {shape}"))
                                .with_primary(span, format!("the output is {shape}")),
                        );
                    }
                }
                let steps = match schedule {
                    Schedule::Linear { steps, .. } | Schedule::Cosine { steps } => *steps,
                };
                if let Some(t) = self.time.clone() {
                    match t.kind {
                        TimeKind::Steps(n) if n != steps => self.err(
                            Diagnostic::error(
                                "E209",
                                format!("the schedule has {steps} steps but time has {n}"),
                            )
                            .with_primary(t.span, format!("declared with {n} steps"))
                            .with_help("make `time t: step(N)` and the schedule agree"),
                        ),
                        TimeKind::Continuous => self.err(
                            Diagnostic::error("E209", "a denoiser needs integer diffusion steps")
                                .with_primary(t.span, "declared continuous")
                                .with_help(format!(
                                    "declare `time {}: step({steps}), per_sample`",
                                    t.name
                                )),
                        ),
                        _ => {}
                    }
                }
            }
        }
    }

    pub(super) fn train(&mut self, args: &[Arg], span: Span) -> TrainSettings {
        let call = ast::Call {
            name: ast::Ident {
                name: "train".into(),
                span,
            },
            args: args.to_vec(),
            span,
        };
        let mut s = TrainSettings::default();
        let names = [
            "optimizer",
            "batch",
            "epochs",
            "steps",
            "grad_clip",
            "ema",
            "schedule",
            "warmup",
        ];
        let Some(a) = args::bind(self.diags, &call, &names, 0) else {
            return s;
        };
        let a: Vec<Option<Expr>> = a.into_iter().map(|e| e.cloned()).collect();
        if let Some(e) = &a[0] {
            if let Some((opt, warm)) = self.optimizer(e) {
                s.optimizer = opt;
                s.warmup = warm;
            }
        }
        if let Some(e) = &a[1] {
            s.batch = self.positive(e, "the batch size").unwrap_or(s.batch);
        }
        if let Some(e) = &a[2] {
            s.epochs = self.positive(e, "the number of epochs");
        }
        if let Some(e) = &a[3] {
            s.steps = self.positive(e, "the number of steps");
        }
        if let Some(e) = &a[4] {
            s.grad_clip = self.float(e);
        }
        if let Some(e) = &a[5] {
            s.ema = self.float(e);
            if let Some(v) = s.ema {
                if !(0.0..1.0).contains(&v) {
                    self.err(
                        Diagnostic::error("E202", "the EMA decay must be in [0, 1)")
                            .with_primary(e.span, "out of range"),
                    );
                }
            }
        }
        if let Some(e) = &a[6] {
            if let Some(sch) = self.lr_schedule(e) {
                s.schedule = sch;
            }
        }
        if let Some(e) = &a[7] {
            s.warmup = self.integer(e, "the warmup").unwrap_or(0);
        }
        s
    }

    fn optimizer(&mut self, e: &Expr) -> Option<(Optimizer, usize)> {
        let ExprKind::Call(c) = &e.kind else {
            self.err(
                Diagnostic::error(
                    "E201",
                    "an optimizer is `adam(lr = ...)` or `sgd(lr = ..., momentum = ...)`",
                )
                .with_primary(e.span, format!("found {}", e.describe())),
            );
            return None;
        };
        match c.name.name.as_str() {
            "adam" => {
                let a =
                    self.bind_args(c, &["lr", "beta1", "beta2", "weight_decay", "warmup"], 0)?;
                let lr = a[0].map(|e| self.float(e)).unwrap_or(Some(1e-3))?;
                let beta1 = a[1].map(|e| self.float(e)).unwrap_or(Some(0.9))?;
                let beta2 = a[2].map(|e| self.float(e)).unwrap_or(Some(0.999))?;
                let weight_decay = a[3].map(|e| self.float(e)).unwrap_or(Some(0.0))?;
                let warmup = a[4]
                    .map(|e| self.integer(e, "the warmup"))
                    .unwrap_or(Some(0))?;
                Some((
                    Optimizer::Adam {
                        lr,
                        beta1,
                        beta2,
                        weight_decay,
                    },
                    warmup,
                ))
            }
            "sgd" => {
                let a = self.bind_args(c, &["lr", "momentum", "weight_decay", "warmup"], 1)?;
                let lr = self.float(a[0]?)?;
                let momentum = a[1].map(|e| self.float(e)).unwrap_or(Some(0.0))?;
                let weight_decay = a[2].map(|e| self.float(e)).unwrap_or(Some(0.0))?;
                let warmup = a[3]
                    .map(|e| self.integer(e, "the warmup"))
                    .unwrap_or(Some(0))?;
                Some((
                    Optimizer::Sgd {
                        lr,
                        momentum,
                        weight_decay,
                    },
                    warmup,
                ))
            }
            other => {
                self.err(
                    Diagnostic::error("E202", format!("unknown optimizer `{other}`"))
                        .with_primary(c.name.span, "expected `adam` or `sgd`")
                        .suggest(other, ["adam", "sgd"]),
                );
                None
            }
        }
    }

    fn lr_schedule(&mut self, e: &Expr) -> Option<LrSchedule> {
        match &e.kind {
            ExprKind::Ident(w) if w == "constant" => Some(LrSchedule::Constant),
            ExprKind::Ident(w) if w == "cosine" => Some(LrSchedule::Cosine),
            ExprKind::Call(c) if c.name.name == "step" => {
                let a = self.bind_args(c, &["milestones", "gamma"], 1)?;
                let milestones = self.int_list(a[0]?, "the milestones")?;
                let gamma = a[1].map(|e| self.float(e)).unwrap_or(Some(0.1))?;
                Some(LrSchedule::Step { milestones, gamma })
            }
            _ => {
                self.err(
                    Diagnostic::error(
                        "E202",
                        format!("unknown learning-rate schedule `{}`", src_word(e)),
                    )
                    .with_primary(
                        e.span,
                        "expected `constant`, `cosine` or `step([epochs], gamma = g)`",
                    ),
                );
                None
            }
        }
    }
}
