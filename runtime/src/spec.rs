//! Spec files on disk: paths in (files, or directories searched for `.tds` files in a stable
//! order); the source text and its checked models out, or a [`SpecError`] that says what is
//! wrong: an unreadable or non-UTF-8 file, the spec's own diagnostics (for the caller to
//! render), or a file with more models than a command can take. Also the atomic rewrite that
//! `lint --fix` uses, so a failure never leaves a half-written spec.

use std::path::{Path, PathBuf};
use tdspec_compiler::diagnostics::{Diagnostic, SourceFile};
use tdspec_compiler::ir::ModelIr;
use tdspec_compiler::sema::check_source;

/// Why a spec file could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpecError {
    /// The file cannot be read (or is not UTF-8 text).
    #[error("{0}")]
    Io(String),
    /// The spec has errors; each diagnostic points into `src`.
    #[error("{}: {} error(s)", .src.name, .diagnostics.len())]
    Invalid {
        src: SourceFile,
        diagnostics: Vec<Diagnostic>,
    },
    /// The file defines several models where one was expected.
    #[error("{name} defines {count} models; train one spec per file")]
    NotOne { name: String, count: usize },
}

/// Expands directories to the `.tds` files under them (sorted); files are kept as given.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)
                .map_err(|e| format!("cannot read directory {}: {e}", p.display()))?;
            found.sort();
            if found.is_empty() {
                return Err(format!("no .tds files under {}", p.display()));
            }
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("no such file or directory: {}", p.display()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "tds") {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads a spec file as UTF-8 text, named by its path as given.
pub fn read(path: &Path) -> Result<SourceFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(SourceFile::new(path.display().to_string(), text))
}

/// Checks a source text: its models, or its diagnostics.
pub fn check(src: SourceFile) -> Result<(SourceFile, Vec<ModelIr>), SpecError> {
    match check_source(&src.text) {
        Ok(models) => Ok((src, models)),
        Err(diagnostics) => Err(SpecError::Invalid { src, diagnostics }),
    }
}

/// Reads and checks a spec file.
pub fn load(path: &Path) -> Result<(SourceFile, Vec<ModelIr>), SpecError> {
    check(read(path).map_err(SpecError::Io)?)
}

/// Reads and checks a spec file that must define exactly one model.
pub fn load_one(path: &Path) -> Result<(ModelIr, SourceFile), SpecError> {
    let (src, mut models) = load(path)?;
    if models.len() != 1 {
        return Err(SpecError::NotOne {
            name: src.name,
            count: models.len(),
        });
    }
    Ok((models.remove(0), src))
}

/// Writes `text` to a temporary file beside `path` and renames it over `path`, keeping the
/// file's permissions, so a failure never leaves a half-written file.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "spec".into());
    let tmp = dir.join(format!(".{name}.tdspec-fix-{}", std::process::id()));
    if let Err(e) = std::fs::write(&tmp, text) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", tmp.display()));
    }
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", path.display())
    })
}
