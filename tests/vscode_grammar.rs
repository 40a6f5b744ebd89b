//! The VS Code extension in `editors/vscode`: its TextMate grammar knows every keyword of
//! `grammar/tdspec.pest` and every layer sema knows, the manifest wires the grammar and the
//! language configuration to `.tds` files, and the grammar's scope snapshot test
//! (`vscode-tmgrammar-snap` over `editors/vscode/test/*.tds`) passes and `extension.js` parses
//! and finds its language client. The snapshot test needs
//! node and the tool installed by `editors/vscode/setup.sh`; without them it prints why it
//! skipped (it never installs anything itself).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ext_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("editors/vscode")
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `match` and `begin` regex of the grammar, concatenated.
fn regexes(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if (k == "match" || k == "begin") && x.is_string() {
                    out.push_str(x.as_str().unwrap_or(""));
                    out.push('\n');
                } else {
                    regexes(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| regexes(x, out)),
        _ => {}
    }
}

/// The literal words of a regex (escapes such as `\b` and `\s` dropped).
fn words(re: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            chars.next();
            plain.push(' ');
        } else {
            plain.push(c);
        }
    }
    plain
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn grammar_knows_the_keywords_and_layers() {
    let grammar = json(&ext_dir().join("syntaxes/tdspec.tmLanguage.json"));
    assert_eq!(grammar["scopeName"], "source.tdspec");
    let mut all = String::new();
    regexes(&grammar, &mut all);
    let known = words(&all);

    let pest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("grammar/tdspec.pest"))
            .unwrap();
    let keywords: Vec<&str> = pest
        .lines()
        .filter(|l| l.starts_with("kw_"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(keywords.len() >= 9, "{keywords:?}");
    for k in keywords {
        assert!(
            known.iter().any(|w| w == k),
            "keyword `{k}` missing from the TextMate grammar"
        );
    }
    // The layer names sema resolves, and the model's default norm and the UNet topology.
    let layer_rule = all
        .lines()
        .find(|l| l.contains("|conv3|"))
        .expect("a layer-name rule");
    let layers = words(layer_rule);
    for name in tdspec_compiler::sema::layer_names()
        .iter()
        .chain(&["norm", "unet"])
    {
        assert!(
            layers.iter().any(|w| w == name),
            "layer `{name}` missing from the TextMate grammar"
        );
    }
}

#[test]
fn manifest_wires_grammar_and_language_configuration() {
    let pkg = json(&ext_dir().join("package.json"));
    let lang = &pkg["contributes"]["languages"][0];
    assert_eq!(lang["id"], "tdspec");
    assert_eq!(lang["extensions"][0], ".tds");
    let conf = json(&ext_dir().join(lang["configuration"].as_str().unwrap()));
    assert_eq!(conf["comments"]["lineComment"], "//");
    assert_eq!(
        conf["comments"]["blockComment"],
        serde_json::json!(["/*", "*/"])
    );
    let g = &pkg["contributes"]["grammars"][0];
    assert_eq!(g["scopeName"], "source.tdspec");
    assert!(ext_dir().join(g["path"].as_str().unwrap()).is_file());
    assert_eq!(pkg["main"], "./extension.js");
    let ext = std::fs::read_to_string(ext_dir().join("extension.js")).unwrap();
    assert!(ext.contains("args: [\"lsp\"]") && ext.contains("vscode-languageclient/node"));
}

#[test]
fn grammar_scope_snapshots() {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        println!("skipped: node is not installed");
        return;
    }
    let check = Command::new("node")
        .args(["--check", "extension.js"])
        .current_dir(ext_dir())
        .status()
        .expect("run node --check");
    assert!(check.success(), "extension.js does not parse");
    let tool = ext_dir().join("node_modules/vscode-tmgrammar-test/dist/snapshot.js");
    if !tool.is_file() {
        println!("skipped: vscode-tmgrammar-test is not installed (run editors/vscode/setup.sh)");
        return;
    }
    let out = Command::new("node")
        .arg(&tool)
        .args([
            "--scope",
            "source.tdspec",
            "--grammar",
            "syntaxes/tdspec.tmLanguage.json",
            "test/*.tds",
        ])
        .current_dir(ext_dir())
        .output()
        .expect("run vscode-tmgrammar-snap");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "grammar snapshots differ:\n{text}");
    assert!(text.contains("run successfully"), "{text}");
    // The client library the extension loads resolves from what setup.sh installed.
    let client = Command::new("node")
        .args(["-e", "require.resolve('vscode-languageclient/node')"])
        .current_dir(ext_dir())
        .status()
        .expect("run node");
    assert!(client.success(), "vscode-languageclient is not installed");
}
