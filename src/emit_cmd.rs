//! `tdspec emit SPEC --target pytorch -o DIR`: a spec file in; a generated package for another
//! framework written to DIR (model.py, train.py, README.md and the spec). Exit 1 when the spec
//! has errors, 2 on usage, IO or emitter errors.

use crate::report::{fail, OrExit, Report};
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
    /// Write into a non-empty directory, replacing the generated files there
    #[arg(long)]
    force: bool,
}

pub fn run(a: &EmitArgs) -> Result<u8, u8> {
    let (src, models) = match spec::load(&a.spec) {
        Err(SpecError::Invalid { src, diagnostics }) => {
            let (name, n) = (&src.name, diagnostics.len());
            let note = format!("{name}: {n} error(s); nothing emitted");
            let code = SpecError::Invalid { src, diagnostics }.report();
            eprintln!("{note}");
            return Err(code);
        }
        loaded => loaded.or_exit()?,
    };
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    let ir = match (&a.model, models.len()) {
        (Some(name), _) => models.iter().find(|m| &m.name == name),
        (None, 1) => models.first(),
        (None, n) => {
            let (file, all) = (&src.name, names.join(", "));
            return Err(fail(format!(
                "{file} defines {n} models ({all}); pick one with --model"
            )));
        }
    };
    let name = a.model.as_deref().unwrap_or_default();
    let ir = ir.ok_or_else(|| fail(format!("{} has no model `{name}`", src.name)))?;
    let file = parse(&src.text).map_err(|_| fail(format!("{} no longer parses", src.name)))?;
    let files = match a.target {
        Target::Pytorch => pytorch::emit(&file, ir, &src.text),
    }
    .map_err(|e| fail(format!("cannot emit model `{}` for PyTorch: {e}", ir.name)))?;
    let out = &a.out;
    if !a.force && std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        let o = out.display();
        return Err(fail(format!(
            "{o} is not empty; pass --force to replace its generated files"
        )));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| fail(format!("cannot create {}: {e}", out.display())))?;
    for f in &files {
        let path = out.join(&f.path);
        std::fs::write(&path, &f.contents)
            .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    }
    let written: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let (file, model, out) = (&src.name, &ir.name, out.display());
    println!("{file}: model {model} -> {out} ({})", written.join(", "));
    Ok(0)
}
