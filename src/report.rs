//! Reporting: the library's errors and the run driver's progress in; text on stderr out.
//! Errors print as `error: ...` (a spec's own errors as rendered diagnostics, exit 1; the rest
//! exit 2); long work draws a progress bar on a terminal and prints lines elsewhere.

use crate::render::{render, use_color};
use std::fmt;
use std::io::IsTerminal;
use std::path::Path;
use tdspec_compiler::diagnostics::SourceFile;
use tdspec_compiler::ir::ModelIr;
use tdspec_runtime::run::{RunError, RunObserver, RunResult, RunStart};
use tdspec_runtime::spec::{self, SpecError};
use tdspec_runtime::train::{EvalReport, StepLog};

/// Prints `error: msg`; gives exit code 2.
pub fn fail(msg: impl fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

/// Prints why a spec could not be used; gives 1 for errors in the spec, else 2.
pub fn spec_error(e: &SpecError) -> u8 {
    match e {
        SpecError::Invalid { src, diagnostics } => {
            for d in diagnostics {
                eprint!("{}", render(src, d, use_color()));
            }
            1
        }
        _ => fail(e),
    }
}

/// Prints why a run stopped; gives its exit code.
pub fn run_error(e: &RunError) -> u8 {
    match e {
        RunError::Spec(e) => spec_error(e),
        RunError::Failed(_) => fail(e),
        RunError::Stopped {
            step,
            checkpoint,
            source,
        } => {
            eprintln!("error: {source}");
            eprintln!(
                "training stopped at step {step}; the last good checkpoint is {}",
                checkpoint.display()
            );
            2
        }
    }
}

/// Reads and checks a spec file, printing why not on failure (see [`spec_error`]).
pub fn checked(path: &Path) -> Result<(SourceFile, Vec<ModelIr>), u8> {
    spec::load(path).map_err(|e| spec_error(&e))
}

/// The command line, as `command.txt` of a run keeps it.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Prints a run's progress: a bar on a terminal, a line every 50 steps and at each evaluation
/// elsewhere; the lab's news and other progress as lines.
#[derive(Default)]
pub struct Printer {
    bar: Option<indicatif::ProgressBar>,
    target: usize,
}

impl Drop for Printer {
    /// A bar of a run that stopped stays where it stopped.
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

impl RunObserver for Printer {
    fn started(&mut self, s: &RunStart) {
        self.target = s.target;
        eprintln!(
            "training {} on {}, using {} train / {} test samples, batch {}, steps {}..{}, seed {} -> {}",
            s.model, s.source, s.train_samples, s.test_samples, s.batch, s.step, s.target, s.seed,
            s.dir.display()
        );
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(s.target as u64);
            bar.set_position(s.step as u64);
            let template = "{bar:30} {pos}/{len} {msg} [{elapsed} < {eta}]";
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, log: &StepLog, eval: Option<&EvalReport>) {
        let Some(bar) = &self.bar else {
            if log.step.is_multiple_of(50) || eval.is_some() {
                let mut line = format!(
                    "step {}/{} loss {:.5} lr {:.2e}",
                    log.step, self.target, log.loss, log.lr
                );
                if let Some(a) = eval.and_then(|e| e.accuracy) {
                    line += &format!(" test accuracy {a:.4}");
                }
                if let Some(e) = eval.and_then(|e| e.eps_mse) {
                    line += &format!(" test eps-MSE {e:.5}");
                }
                eprintln!("{line}");
            }
            return;
        };
        bar.set_position(log.step as u64);
        let nfe = if log.nfe > 0 {
            format!(" nfe {}", log.nfe)
        } else {
            String::new()
        };
        bar.set_message(format!("loss {:.4}{nfe}", log.loss));
    }

    fn finished(&mut self, r: &RunResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let e = &r.final_eval;
        let summary = match (e.accuracy, e.eps_mse) {
            (Some(a), _) => format!(", test accuracy {a:.4} on {} digits", e.samples),
            (_, Some(m)) => format!(", test eps-MSE {m:.5} on {} digits", e.samples),
            _ => String::new(),
        };
        eprintln!("done: {} steps in {:.1} s{summary}", r.steps, r.seconds);
    }

    fn progress(&mut self, what: &str, i: usize, k: usize) {
        eprint!("\r{what} {i}/{k}");
        if i == k {
            eprintln!();
        }
    }

    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }
}
