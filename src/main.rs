//! The `tdspec` command line: arguments in, printed results out. Each command's arguments and
//! its thin call into the compiler or the runtime live in its own module; [`render`] prints
//! diagnostics, [`report`] errors and progress. Exit codes: 0 clean, 1 errors or findings at
//! deny level in a spec, 2 usage, IO or internal error.

mod check_cmd;
mod compile_cmd;
mod demo_cmd;
mod device;
mod emit_cmd;
mod eval_cmd;
mod experiment_cmd;
mod fmt_cmd;
mod gpu_cmd;
mod import_cmd;
mod lint_cmd;
mod probe_cmd;
mod render;
mod report;
mod run_cmd;
mod sample_cmd;
mod train_cmd;

use clap::{Parser, Subcommand, ValueEnum};
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
    Check(check_cmd::CheckArgs),
    /// Format specs in the canonical layout (rewrites them; --check prints a diff instead)
    Fmt(fmt_cmd::FmtArgs),
    /// Run the language server on stdin/stdout (diagnostics, hover, definitions, formatting, fixes)
    Lsp,
    /// Lint specs for vanishing timestep embeddings (text, JSON or SARIF); apply fixes with --fix --unsafe-fixes
    Lint(lint_cmd::LintArgs),
    /// Print a lint rule's documentation
    Explain(lint_cmd::ExplainArgs),
    /// Lower a spec to the dfdx graph; print parameter tensors, MACs per forward and per ODE evaluation, activation memory
    Compile(compile_cmd::CompileArgs),
    /// Train what the spec's task says (neural-ODE classifier or diffusion model)
    Train(train_cmd::TrainArgs),
    /// Generate digits from a trained denoiser and write a PNG grid
    Sample(sample_cmd::SampleArgs),
    /// Evaluate a run on its test split: accuracy, or eps-MSE per timestep quarter
    Eval(eval_cmd::EvalArgs),
    /// The main job: lint, train, probe and evaluate three small diffusion variants on the embedded digits
    Demo(demo_cmd::DemoArgs),
    /// Run an experiment plan: train, evaluate, probe and lint every variant over seeds
    Experiment(experiment_cmd::ExperimentArgs),
    /// Emit a PyTorch package (model.py, train.py for torchrun/DDP, README.md) from a spec
    Emit(emit_cmd::EmitArgs),
    /// Measure at every normalization how much of the time signal survives, beside the lint's prediction
    Probe(probe_cmd::ProbeArgs),
    /// Evaluate the network once on the tensors x and t of a safetensors file; write y
    Run(run_cmd::RunArgs),
    /// Write the spec of a model you already have (a diffusers UNet2DModel config.json)
    Import(import_cmd::ImportArgs),
    /// CPU-vs-device parity of one forward + backward per spec (diagnostic; scripts/gpu-check.sh)
    #[command(hide = true)]
    GpuParity(gpu_cmd::ParityArgs),
    /// The yardstick workloads (fwd+bwd medians) on a device (diagnostic; scripts/gpu-check.sh)
    #[command(hide = true)]
    GpuBench(gpu_cmd::BenchArgs),
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`tdspec check specs | head`) instead of panicking in print!.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // Freed memory stays mapped for the next training step (see `alloc::configure`).
    tdspec_runtime::alloc::configure();
    // This thread records the tape: let it compute its share of every kernel.
    tdspec_runtime::ops::join_worker_pool();
    let code = match &cli.command {
        Command::Check(a) => check_cmd::run(a),
        Command::Fmt(a) => fmt_cmd::run(a),
        Command::Lsp => tdspec_lsp::run_stdio()
            .map(|()| 0)
            .map_err(|e| report::fail(format!("language server: {e}"))),
        Command::Lint(a) => lint_cmd::run(a),
        Command::Explain(a) => lint_cmd::explain(a),
        Command::Compile(a) => compile_cmd::run(a),
        Command::Train(a) => train_cmd::run(a),
        Command::Sample(a) => sample_cmd::run(a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Demo(a) => demo_cmd::run(a),
        Command::Experiment(a) => experiment_cmd::run(a),
        Command::Emit(a) => emit_cmd::run(a),
        Command::Probe(a) => probe_cmd::run(a),
        Command::Run(a) => run_cmd::run(a),
        Command::Import(a) => import_cmd::run(a),
        Command::GpuParity(a) => gpu_cmd::parity(a),
        Command::GpuBench(a) => gpu_cmd::bench(a),
    };
    // A command's error is already printed; its value is the exit code.
    ExitCode::from(code.unwrap_or_else(|c| c))
}
