//! What the CLI integration tests share: running the built `tdspec` binary from the repository
//! root with colors off.

use std::process::Command;

/// Runs `tdspec args...`; gives the exit code (-1 when killed), stdout and stderr.
pub fn tdspec(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tdspec"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run tdspec");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
