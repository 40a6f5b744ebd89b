//! `tdspec fmt`: spec files in; each rewritten in the canonical layout (atomically, keeping its
//! permissions), or with `--check` a unified diff of what would change
//! ([`tdspec_runtime::spec::format_file`]). Exit 1 when `--check` finds an unformatted file or a
//! spec does not parse; 2 on IO problems (a read-only file among them) and internal errors.

use crate::render::{render, use_color};
use crate::report::{fail, OrExit};
use clap::Args;
use std::path::PathBuf;
use tdspec_runtime::spec::{self, FormatError, Formatted};

#[derive(Args)]
pub struct FmtArgs {
    /// Spec files or directories (searched for *.tds)
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Change nothing; print what would change and exit 1 if anything would
    #[arg(long)]
    check: bool,
}

pub fn run(a: &FmtArgs) -> Result<u8, u8> {
    let (mut changed, mut unchanged, mut code) = (0usize, 0usize, 0u8);
    for path in spec::expand(&a.paths).or_exit()? {
        match spec::format_file(&path, a.check) {
            Ok(Formatted::Unchanged) => unchanged += 1,
            Ok(Formatted::Reformatted) => changed += 1,
            Ok(Formatted::Diff(diff)) => {
                print!("{diff}");
                (changed, code) = (changed + 1, code.max(1));
            }
            Err(FormatError::Parse(src, d)) => {
                eprint!("{}", render(&src, &d, use_color()));
                code = code.max(1);
            }
            Err(FormatError::Other(e)) => code = fail(e),
        }
    }
    let files = |n: usize| format!("{n} file{}", if n == 1 { "" } else { "s" });
    let (changed, unchanged) = (files(changed), files(unchanged));
    match a.check {
        true => eprintln!("{changed} would be reformatted, {unchanged} already formatted"),
        false => eprintln!("{changed} reformatted, {unchanged} unchanged"),
    }
    Ok(code)
}
