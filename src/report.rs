//! Reporting: the library's errors and the run driver's progress in; text on stderr out.
//! Errors print as `error: ...` (a spec's own errors as rendered diagnostics, exit 1; the rest
//! exit 2); long work draws a progress bar on a terminal and prints lines elsewhere.

use crate::render::{render, use_color};
use std::fmt::Display;
use std::io::IsTerminal;
use tdspec_runtime::run::{step_line, RunError, RunObserver, RunResult, RunStart};
use tdspec_runtime::spec::SpecError;
use tdspec_runtime::train::{EvalReport, StepLog};
use tdspec_runtime::RuntimeError;

/// Prints `error: msg`; gives exit code 2.
pub fn fail(msg: impl Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

/// Something that stops a command: printing it gives the exit code.
pub trait Report {
    fn report(self) -> u8;
}

macro_rules! plain {
    ($($t:ty),*) => { $(impl Report for $t { fn report(self) -> u8 { fail(self) } })* };
}
plain!(String, RuntimeError);

impl Report for SpecError {
    /// A spec's errors are rendered diagnostics (exit 1).
    fn report(self) -> u8 {
        let SpecError::Invalid { src, diagnostics } = &self else {
            return fail(self);
        };
        for d in diagnostics {
            eprint!("{}", render(src, d, use_color()));
        }
        1
    }
}

impl Report for RunError {
    fn report(self) -> u8 {
        match self {
            RunError::Spec(e) => e.report(),
            _ => fail(self),
        }
    }
}

/// `result.or_exit()?` in a command: the error printed, its exit code returned.
pub trait OrExit<T> {
    fn or_exit(self) -> Result<T, u8>;
}

impl<T, E: Report> OrExit<T> for Result<T, E> {
    fn or_exit(self) -> Result<T, u8> {
        self.map_err(Report::report)
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
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
        eprintln!("{s}");
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
        if let Some(bar) = &self.bar {
            bar.set_position(log.step as u64);
            let nfe = (log.nfe > 0).then(|| format!(" nfe {}", log.nfe));
            bar.set_message(format!("loss {:.4}{}", log.loss, nfe.unwrap_or_default()));
        } else if log.step.is_multiple_of(50) || eval.is_some() {
            eprintln!("{}", step_line(log, self.target, eval));
        }
    }

    fn finished(&mut self, r: &RunResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("{r}");
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
