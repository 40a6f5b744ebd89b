//! `tdspec fmt` and `tdspec lsp` from the command line: `--check` prints a unified diff and
//! exits 1 without touching the file; formatting rewrites in place keeping the file's
//! permissions, refuses read-only files, reports unparsable specs; the project's own specs pass
//! `--check`; the language server answers the LSP handshake on stdio.

mod common;
use common::tdspec;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tdspec-fmt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const MESSY: &str =
    "model m{input x:image[1,4,4]\n time t:continuous,shared // shared\nreturn x|conv3(4)}\n";
const TIDY: &str = "\
model m {
    input x: image[1, 4, 4]
    time  t: continuous, shared  // shared
    return x | conv3(4)
}
";

#[test]
fn check_prints_a_diff_and_changes_nothing() {
    let dir = scratch("check");
    let f = dir.join("m.tds");
    std::fs::write(&f, MESSY).unwrap();
    let (code, out, err) = tdspec(&["fmt", "--check", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains(&format!("--- {}\toriginal\n", f.display())),
        "{out}"
    );
    assert!(
        out.contains("+    time  t: continuous, shared  // shared\n"),
        "{out}"
    );
    assert!(out.contains("@@ "), "{out}");
    assert!(
        err.contains("1 file would be reformatted, 0 files already formatted"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), MESSY);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn formatting_rewrites_in_place_keeping_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("write");
    let f = dir.join("m.tds");
    std::fs::write(&f, MESSY).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, _, err) = tdspec(&["fmt", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("1 file reformatted, 0 files unchanged"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), TIDY);
    let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // nothing left behind, and a second run changes nothing
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let (code, out, _) = tdspec(&["fmt", "--check", f.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, ""));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn read_only_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("ro");
    let f = dir.join("m.tds");
    std::fs::write(&f, MESSY).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (code, _, err) = tdspec(&["fmt", f.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!(
            "error: cannot format {}: the file is read-only",
            f.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), MESSY);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unparsable_specs_are_reported_and_skipped() {
    let dir = scratch("bad");
    std::fs::write(dir.join("a.tds"), "model m {\n").unwrap();
    std::fs::write(dir.join("b.tds"), MESSY).unwrap();
    let (code, _, err) = tdspec(&["fmt", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("E002") && err.contains("unclosed `{`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("a.tds")).unwrap(),
        "model m {\n"
    );
    assert_eq!(std::fs::read_to_string(dir.join("b.tds")).unwrap(), TIDY);
    let (code, _, err) = tdspec(&["fmt", "no/such/spec.tds"]);
    assert_eq!(code, 2);
    assert!(err.contains("no such file or directory"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_projects_specs_are_formatted() {
    let (code, out, err) = tdspec(&[
        "fmt",
        "--check",
        "specs",
        "tests/train_specs",
        "tests/diffusers",
        "experiments/specs",
        "compiler/tests/lint_fixtures",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("0 files would be reformatted"), "{err}");
}

/// Sends one framed LSP message.
fn send(w: &mut impl Write, v: serde_json::Value) {
    let body = v.to_string();
    write!(w, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    w.flush().unwrap();
}

/// Reads one framed LSP message.
fn receive(r: &mut impl BufRead) -> serde_json::Value {
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            len = n.parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn lsp_answers_on_stdio() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tdspec"))
        .arg("lsp")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run tdspec lsp");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    send(
        &mut stdin,
        serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
                            "params": { "processId": null, "rootUri": null, "capabilities": {} } }),
    );
    let init = receive(&mut stdout);
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["capabilities"]["hoverProvider"], true);
    send(
        &mut stdin,
        serde_json::json!({ "jsonrpc": "2.0", "method": "initialized", "params": {} }),
    );
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/odenet_mnist.tds"),
    )
    .unwrap();
    send(
        &mut stdin,
        serde_json::json!({ "jsonrpc": "2.0", "method": "textDocument/didOpen",
            "params": { "textDocument": { "uri": "file:///odenet_mnist.tds", "languageId": "tdspec", "version": 1, "text": text } } }),
    );
    let diags = receive(&mut stdout);
    assert_eq!(diags["method"], "textDocument/publishDiagnostics");
    let codes: Vec<&str> = diags["params"]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"TD105"), "{diags}");
    send(
        &mut stdin,
        serde_json::json!({ "jsonrpc": "2.0", "id": 2, "method": "shutdown" }),
    );
    let resp = receive(&mut stdout);
    assert_eq!(resp["id"], 2);
    send(
        &mut stdin,
        serde_json::json!({ "jsonrpc": "2.0", "method": "exit" }),
    );
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
