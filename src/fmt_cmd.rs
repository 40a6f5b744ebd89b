//! `tdspec fmt`: spec files in; each rewritten in the canonical layout (atomically, keeping its
//! permissions), or with `--check` a unified diff of what would change. Exit 1 when `--check`
//! finds an unformatted file or a spec does not parse; 2 on IO problems (a read-only file
//! among them) and internal errors.

use crate::{files, render};
use std::path::PathBuf;
use tdspec_compiler::fmt::{format_source, unified_diff, FmtError};

pub fn run(paths: &[PathBuf], check: bool) -> u8 {
    let files = match files::expand(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let color = render::use_color();
    let (mut changed, mut unchanged, mut code) = (0usize, 0usize, 0u8);
    for path in files {
        let src = match files::read(&path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                code = 2;
                continue;
            }
        };
        let out = match format_source(&src.text) {
            Ok(out) => out,
            Err(FmtError::Parse(d)) => {
                eprint!("{}", render::render(&src, &d, color));
                code = code.max(1);
                continue;
            }
            Err(e @ FmtError::Internal(_)) => {
                eprintln!("error: {}: {e}", src.name);
                code = 2;
                continue;
            }
        };
        if out == src.text {
            unchanged += 1;
            continue;
        }
        if check {
            print!("{}", unified_diff(&src.name, &src.text, &out));
            changed += 1;
            code = code.max(1);
            continue;
        }
        let readonly = std::fs::metadata(&path).is_ok_and(|m| m.permissions().readonly());
        if readonly {
            eprintln!("error: cannot format {}: the file is read-only", src.name);
            code = 2;
            continue;
        }
        match crate::lint_cmd::write_atomically(&path, &out) {
            Ok(()) => changed += 1,
            Err(e) => {
                eprintln!("error: {e}");
                code = 2;
            }
        }
    }
    let files = |n: usize| format!("{n} file{}", if n == 1 { "" } else { "s" });
    if check {
        eprintln!(
            "{} would be reformatted, {} already formatted",
            files(changed),
            files(unchanged)
        );
    } else {
        eprintln!(
            "{} reformatted, {} unchanged",
            files(changed),
            files(unchanged)
        );
    }
    code
}
