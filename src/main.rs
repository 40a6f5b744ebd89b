//! The `tdspec` command line: argument parsing and dispatch only; each command lives in its
//! own module. Exit codes: 0 clean, 1 errors or findings at deny level in a spec, 2 usage, IO
//! or internal error.

mod check_cmd;
mod compile_cmd;
mod demo_cmd;
mod device;
mod emit_cmd;
mod eval_cmd;
mod experiment_cmd;
mod files;
mod fmt_cmd;
mod gpu_cmd;
mod lint_cmd;
mod probe_cmd;
mod render;
mod run_dir;
mod sample_cmd;
mod train_cmd;

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

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum SamplerArg {
    Ancestral,
    Ddim,
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
    /// Format specs in the canonical layout (rewrites them; --check prints a diff instead)
    Fmt {
        /// Spec files or directories (searched for *.tds)
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Change nothing; print what would change and exit 1 if anything would
        #[arg(long)]
        check: bool,
    },
    /// Run the language server on stdin/stdout (diagnostics, hover, definitions, formatting, fixes)
    Lsp,
    /// Lint specs for vanishing timestep embeddings (text, JSON or SARIF); apply fixes with --fix --unsafe-fixes
    Lint(lint_cmd::LintArgs),
    /// Print a lint rule's documentation
    Explain(lint_cmd::ExplainArgs),
    /// Lower a spec to the dfdx graph; print parameter tensors, MACs per forward and per ODE evaluation, activation memory
    Compile {
        spec: PathBuf,
        /// List every parameter tensor
        #[arg(long)]
        summary: bool,
        /// Batch size for the memory estimate
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Refuse plans that need more memory than this (GiB)
        #[arg(long, default_value_t = 16.0)]
        memory_limit: f64,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Build and run the graph on this device (cuda needs a binary built with --features cuda)
        #[arg(long, value_enum, default_value = "cpu")]
        device: device::DeviceArg,
    },
    /// Train what the spec's task says (neural-ODE classifier or diffusion model)
    Train {
        /// The spec to train (omit with --resume)
        spec: Option<PathBuf>,
        /// Data: mnist:DIR or cifar10:DIR; the embedded MNIST subset when absent
        #[arg(long)]
        data: Option<String>,
        /// Train until this many optimizer steps
        #[arg(long, conflicts_with = "epochs")]
        steps: Option<usize>,
        /// Train for this many epochs
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Run directory (default runs/MODEL-seedS)
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the run in this directory
        #[arg(long, conflicts_with_all = ["spec", "out", "data", "seed"])]
        resume: Option<PathBuf>,
        /// Override the spec's batch size
        #[arg(long)]
        batch: Option<usize>,
        /// Use only the first N training samples
        #[arg(long)]
        limit_train: Option<usize>,
        /// Evaluate (and checkpoint) every K steps (default: every epoch for classifiers, 5 times per run for denoisers)
        #[arg(long)]
        eval_every: Option<usize>,
        /// Test samples per evaluation
        #[arg(long, default_value_t = 2000)]
        eval_samples: usize,
        /// Train on this device (cuda needs a binary built with --features cuda)
        #[arg(long, value_enum, default_value = "cpu")]
        device: device::DeviceArg,
    },
    /// Generate digits from a trained denoiser and write a PNG grid
    Sample {
        /// A run directory (or its checkpoint file)
        run: PathBuf,
        #[arg(long, default_value_t = 64)]
        n: usize,
        #[arg(long, value_enum, default_value = "ddim")]
        sampler: SamplerArg,
        /// Denoising steps (evenly spaced over the schedule)
        #[arg(long, default_value_t = 50)]
        steps: usize,
        #[arg(short = 'o', long, default_value = "samples.png")]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Evaluate a run on its test split: accuracy, or eps-MSE per timestep quarter
    Eval {
        run: PathBuf,
        #[arg(long, default_value_t = 2000)]
        samples: usize,
        /// Images generated for the Fréchet distance of denoisers (0 skips it)
        #[arg(long, default_value_t = 256)]
        fd_samples: usize,
        /// DDIM steps per generated image for the Fréchet distance
        #[arg(long, default_value_t = 25)]
        fd_steps: usize,
        /// Evaluate ODE blocks with another solver: dopri5:RTOL:ATOL, rk4:STEPS or euler:STEPS
        #[arg(long)]
        solver: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// The main job: lint, train, probe and evaluate three small diffusion variants on the embedded digits
    Demo {
        #[arg(long, default_value_t = 150)]
        steps: usize,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        eval_samples: usize,
    },
    /// Run an experiment plan: train, evaluate, probe and lint every variant over seeds
    Experiment {
        plan: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run only this group of the plan
        #[arg(long)]
        only: Option<String>,
    },
    /// Emit a PyTorch package (model.py, train.py for torchrun/DDP, README.md) from a spec
    Emit {
        spec: PathBuf,
        #[arg(long, value_enum, default_value = "pytorch")]
        target: emit_cmd::Target,
        /// Output directory
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// The model to emit when the file defines several
        #[arg(long)]
        model: Option<String>,
    },
    /// Measure at every normalization how much of the time signal survives, beside the lint's prediction
    Probe {
        spec: PathBuf,
        /// Load weights from a safetensors checkpoint instead of the seeded initialization
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Samples in the probe batch
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Run the probe on this device (cuda needs a binary built with --features cuda)
        #[arg(long, value_enum, default_value = "cpu")]
        device: device::DeviceArg,
    },
    /// CPU-vs-device parity of one forward + backward per spec (diagnostic; scripts/gpu-check.sh)
    #[command(hide = true)]
    GpuParity {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "cuda")]
        device: device::DeviceArg,
        #[arg(long, default_value_t = 2)]
        batch: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Largest accepted relative difference (max|a-b| / max|a| per tensor)
        #[arg(long, default_value_t = 1e-3)]
        tol: f64,
        #[arg(long)]
        json: bool,
    },
    /// The yardstick workloads (fwd+bwd medians) on a device (diagnostic; scripts/gpu-check.sh)
    #[command(hide = true)]
    GpuBench {
        #[arg(long, value_enum, default_value = "cuda")]
        device: device::DeviceArg,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`tdspec check specs | head`) instead of panicking in print!.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // Training allocates and frees the same large buffers every step; keep them mapped.
    tdspec_runtime::ops::keep_freed_memory();
    let code = match cli.command {
        Command::Check { paths, format } => check_cmd::run(&paths, format),
        Command::Fmt { paths, check } => fmt_cmd::run(&paths, check),
        Command::Lsp => match tdspec_lsp::run_stdio() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: language server: {e}");
                2
            }
        },
        Command::Lint(args) => lint_cmd::run(&args),
        Command::Explain(args) => lint_cmd::explain(&args),
        Command::Compile {
            spec,
            summary,
            batch,
            memory_limit,
            format,
            device,
        } => compile_cmd::run(
            &spec,
            &compile_cmd::Options {
                batch,
                memory_limit_gib: memory_limit,
                format,
                summary,
                device,
            },
        ),
        Command::Train {
            spec,
            data,
            steps,
            epochs,
            seed,
            out,
            resume,
            batch,
            limit_train,
            eval_every,
            eval_samples,
            device,
        } => train_cmd::run_on(
            &train_cmd::TrainArgs {
                spec,
                data,
                steps,
                epochs,
                seed,
                out,
                resume,
                batch,
                limit_train,
                eval_every,
                eval_samples,
                quiet: false,
            },
            device,
        ),
        Command::Sample {
            run,
            n,
            sampler,
            steps,
            out,
            seed,
        } => {
            let s = match sampler {
                SamplerArg::Ancestral => tdspec_runtime::sample::Sampler::Ancestral,
                SamplerArg::Ddim => tdspec_runtime::sample::Sampler::Ddim,
            };
            sample_cmd::run(&run, n, s, steps, &out, seed)
        }
        Command::Eval {
            run,
            samples,
            fd_samples,
            fd_steps,
            solver,
            format,
        } => eval_cmd::run(
            &run,
            samples,
            format == Format::Json,
            &eval_cmd::FdOptions {
                samples: fd_samples,
                steps: fd_steps,
            },
            solver.as_deref(),
        ),
        Command::Demo {
            steps,
            batch,
            seed,
            out,
            eval_samples,
        } => demo_cmd::run(&demo_cmd::DemoArgs {
            steps,
            batch,
            seed,
            out,
            eval_samples,
        }),
        Command::Experiment { plan, out, only } => experiment_cmd::run(&plan, out, only.as_deref()),
        Command::Emit {
            spec,
            target,
            out,
            model,
        } => emit_cmd::run(&spec, target, &out, model.as_deref()),
        Command::Probe {
            spec,
            checkpoint,
            batch,
            seed,
            format,
            device,
        } => probe_cmd::run(&spec, checkpoint.as_deref(), batch, seed, format, device),
        Command::GpuParity {
            specs,
            device,
            batch,
            seed,
            tol,
            json,
        } => gpu_cmd::parity(&gpu_cmd::ParityArgs {
            specs,
            device,
            batch,
            seed,
            tol,
            json,
        }),
        Command::GpuBench { device, json } => gpu_cmd::bench(device, json),
    };
    ExitCode::from(code)
}
