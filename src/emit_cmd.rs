//! `tdspec emit SPEC --target pytorch -o DIR`: a spec file in; a generated package for another
//! framework written to DIR (model.py, train.py, README.md and the spec). Exit 1 when the spec
//! has errors, 2 on usage, IO or emitter errors.

use crate::report::{fail, spec_error};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tdspec_compiler::emit::pytorch;
use tdspec_compiler::syntax::parse;
use tdspec_runtime::spec::{self, SpecError};

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// A PyTorch nn.Module and a torchrun/DDP training script
    Pytorch,
}

#[derive(Args)]
pub struct EmitArgs {
    spec: PathBuf,
    #[arg(long, value_enum, default_value = "pytorch")]
    target: Target,
    /// Output directory
    #[arg(short = 'o', long)]
    out: PathBuf,
    /// The model to emit when the file defines several
    #[arg(long)]
    model: Option<String>,
}

pub fn run(a: &EmitArgs) -> u8 {
    let (src, models) = match spec::load(&a.spec) {
        Ok(v) => v,
        Err(e) => {
            let code = spec_error(&e);
            if let SpecError::Invalid { src, diagnostics } = &e {
                let n = diagnostics.len();
                eprintln!("{}: {n} error(s); nothing emitted", src.name);
            }
            return code;
        }
    };
    let chosen = match (&a.model, models.len()) {
        (Some(name), _) => models.iter().find(|m| &m.name == name),
        (None, 1) => models.first(),
        (None, _) => {
            let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
            return fail(format!(
                "{} defines {} models ({}); pick one with --model",
                src.name,
                names.len(),
                names.join(", ")
            ));
        }
    };
    let Some(ir) = chosen else {
        let name = a.model.as_deref().unwrap_or_default();
        return fail(format!("{} has no model `{name}`", src.name));
    };
    let Ok(file) = parse(&src.text) else {
        return fail(format!("{} no longer parses", src.name));
    };
    let emitted = match a.target {
        Target::Pytorch => pytorch::emit(&file, ir, &src.text),
    };
    let files = match emitted {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot emit model `{}` for PyTorch: {e}", ir.name)),
    };
    if let Err(e) = std::fs::create_dir_all(&a.out) {
        return fail(format!("cannot create {}: {e}", a.out.display()));
    }
    for f in &files {
        let path = a.out.join(&f.path);
        if let Err(e) = std::fs::write(&path, &f.contents) {
            return fail(format!("cannot write {}: {e}", path.display()));
        }
    }
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    println!(
        "{}: model {} -> {} ({})",
        src.name,
        ir.name,
        a.out.display(),
        names.join(", ")
    );
    0
}
