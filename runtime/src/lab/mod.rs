//! The lab: the demo and the experiment runner, on typed plans. In: a [`Plan`] (groups of
//! spec variants, seeds, budgets; read from JSON with unknown keys refused and errors naming
//! the bad field) or the demo's fixed [`DemoOptions`]. For every variant and seed the lab
//! lints the spec (the static verdict), trains it with the run driver, evaluates it, probes the
//! trained network on test digits and, where asked, measures it again under another ODE solver
//! (a variant made on the IR) or by a Fréchet distance. Out: the demo's rows (and `demo.json`);
//! an experiment's `results.json`, `summary.md` and plots. Progress goes to a
//! [`crate::run::RunObserver`].

mod demo;
mod experiment;
mod measure;
mod plan;

pub use demo::{demo_table, fresh_demo_dir, run_demo, DemoOptions, DemoRow, DEMO_VARIANTS};
pub use experiment::{run_experiment, LayerRecord, RunRecord};
pub use plan::{Group, Plan, PlanError, Variant};
