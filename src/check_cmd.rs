//! `tdspec check`: spec files in; per valid model the table of layers, parameters and
//! time-injection sites ([`ModelSummary`]), rendered diagnostics for invalid specs. Exit 1 when
//! any spec has errors.

use crate::render;
use crate::report::{print_json, OrExit};
use crate::Format;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tdspec_runtime::spec::{self, SpecError};
use tdspec_runtime::summary::ModelSummary;

#[derive(Args)]
pub struct CheckArgs {
    /// Spec files or directories (searched for *.tds), or diffusers UNet2DModel config.json files
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(a: &CheckArgs) -> Result<u8, u8> {
    let (text, color) = (a.format == Format::Text, render::use_color());
    let (mut failed, mut json_out) = (false, Vec::new());
    for path in spec::expand(&a.paths).or_exit()? {
        match spec::load(&path) {
            Ok((src, models)) => {
                for m in &models {
                    let s = ModelSummary::new(&src, m);
                    match text {
                        true => print!("{}", &s.to_string()),
                        false => json_out.push(json!(s)),
                    }
                }
            }
            Err(SpecError::Invalid {
                src,
                diagnostics: diags,
            }) => {
                failed = true;
                for d in &diags {
                    match text {
                        true => eprint!("{}", render::render(&src, d, color)),
                        false => json_out.push(render::json(&src, d)),
                    }
                }
                if text {
                    let n = diags.len();
                    eprintln!("{}: {n} error{}", src.name, if n == 1 { "" } else { "s" });
                }
            }
            Err(e) => return Err(crate::report::fail(e.to_string())),
        }
    }
    if !text {
        print_json(&json_out);
    }
    Ok(u8::from(failed))
}
