//! `tdspec emit SPEC --target pytorch -o DIR`: a spec file in; a generated package for another
//! framework written to DIR (model.py, train.py, README.md and the spec). Exit 1 when the spec
//! has errors, 2 on usage, IO or emitter errors.

use crate::files;
use crate::render;
use clap::ValueEnum;
use std::path::Path;
use tdspec_compiler::emit::pytorch;
use tdspec_compiler::sema::check_source;
use tdspec_compiler::syntax::parse;

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// A PyTorch nn.Module and a torchrun/DDP training script
    Pytorch,
}

pub fn run(spec: &Path, target: Target, out: &Path, model: Option<&str>) -> u8 {
    let src = match files::read(spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let models = match check_source(&src.text) {
        Ok(m) => m,
        Err(diags) => {
            let color = render::use_color();
            for d in &diags {
                eprint!("{}", render::render(&src, d, color));
            }
            eprintln!("{}: {} error(s); nothing emitted", src.name, diags.len());
            return 1;
        }
    };
    let chosen = match (model, models.len()) {
        (Some(name), _) => models.iter().find(|m| m.name == name),
        (None, 1) => models.first(),
        (None, _) => {
            let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
            eprintln!(
                "error: {} defines {} models ({}); pick one with --model",
                src.name,
                names.len(),
                names.join(", ")
            );
            return 2;
        }
    };
    let Some(ir) = chosen else {
        eprintln!(
            "error: {} has no model `{}`",
            src.name,
            model.unwrap_or_default()
        );
        return 2;
    };
    let file = match parse(&src.text) {
        Ok(f) => f,
        Err(_) => {
            eprintln!("error: {} no longer parses", src.name);
            return 2;
        }
    };
    let emitted = match target {
        Target::Pytorch => pytorch::emit(&file, ir, &src.text),
    };
    let files = match emitted {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot emit model `{}` for PyTorch: {e}", ir.name);
            return 2;
        }
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("error: cannot create {}: {e}", out.display());
        return 2;
    }
    for f in &files {
        let path = out.join(&f.path);
        if let Err(e) = std::fs::write(&path, &f.contents) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 2;
        }
    }
    println!(
        "{}: model {} -> {} ({})",
        src.name,
        ir.name,
        out.display(),
        files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    0
}
