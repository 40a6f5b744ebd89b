//! The `tdspec` command line: argument parsing and dispatch only; each command lives in its
//! own module. Exit codes: 0 clean, 1 errors or findings at deny level in a spec, 2 usage, IO
//! or internal error.

mod check_cmd;
mod files;
mod render;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tdspec",
    version,
    about = "Check, lint, compile and train time-dependent neural networks from .tds specs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve and shape-check specs; print layers, parameter counts and time-injection sites
    Check {
        /// Spec files or directories (searched for *.tds)
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check { paths, format } => check_cmd::run(&paths, format),
    };
    ExitCode::from(code)
}
