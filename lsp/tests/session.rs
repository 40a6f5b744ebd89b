//! A scripted editor session against the server over an in-memory connection: initialize,
//! didOpen, diagnostics, didChange (incremental, as you type), hover, formatting, code actions,
//! definitions, the outline, shutdown and exit. The spec carries non-ASCII comments before code
//! on the same line, so every column asserted is a UTF-16 column, not a byte or char count.

use lsp_server::{Message, Notification, Request, RequestId};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Duration;
use tdspec_lsp::{serve, Connection, RuleDocs};

const SPEC: &str = "\
// a small DDPM; the time channel t·P 😀
model small {
    input x: image[1, 28, 28]
    time  t: step(1000), per_sample
    norm  =   group(per_group = 4)
    bias  = { operand: zero, time: zero }

    embed temb = sinusoidal(32) | linear(128) | silu | linear(128)

    block res(out)(h) {
        a = h | norm as norm1 | silu | conv3(out) as conv1
        /* t·P 😀 */ a = a + inject(temb | silu) as temb_proj
        a = a | norm as norm2 | silu | conv3(out) as conv2
        return a + shortcut(h, out) as nin_shortcut
    }

    unet(base = 32, mult = [1, 2], blocks = 1, resblock = res)
    task  denoise(schedule = linear(1e-4, 0.02, 1000), predict = eps)
}
";

const URI: &str = "file:///work/specs/small.tds";

struct Client {
    conn: Connection,
    next_id: i32,
    notifications: VecDeque<Notification>,
}

impl Client {
    fn recv(&mut self) -> Message {
        self.conn
            .receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("the server answers")
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        let req = Request::new(id.clone(), method.to_string(), params);
        self.conn.sender.send(req.into()).unwrap();
        loop {
            match self.recv() {
                Message::Response(r) if r.id == id => match r.response_result {
                    Ok(v) => return v,
                    Err(e) => panic!("{method}: {e:?}"),
                },
                Message::Notification(n) => self.notifications.push_back(n),
                m => panic!("unexpected {m:?}"),
            }
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        let n = Notification::new(method.to_string(), params);
        self.conn.sender.send(n.into()).unwrap();
    }

    fn diagnostics(&mut self) -> Value {
        loop {
            let n = match self.notifications.pop_front() {
                Some(n) => n,
                None => match self.recv() {
                    Message::Notification(n) => n,
                    m => panic!("unexpected {m:?}"),
                },
            };
            if n.method == "textDocument/publishDiagnostics" {
                return n.params;
            }
        }
    }
}

/// The UTF-16 position of the `nth` occurrence of `needle` in `text`.
fn pos(text: &str, needle: &str, nth: usize) -> Value {
    let at = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle}"))
        .0;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..at].matches('\n').count();
    json!({ "line": line, "character": text[line_start..at].encode_utf16().count() })
}

fn at(text: &str, needle: &str, nth: usize) -> Value {
    json!({ "textDocument": { "uri": URI }, "position": pos(text, needle, nth) })
}

/// Applies LSP text edits (non-overlapping) to a text.
fn apply(text: &str, edits: &Value) -> String {
    let mut edits: Vec<&Value> = edits.as_array().unwrap().iter().collect();
    let ix = tdspec_lsp::LineIndex::new(text);
    let off = |p: &Value| {
        let p: lsp_types::Position = serde_json::from_value(p.clone()).unwrap();
        ix.offset(text, p)
    };
    edits.sort_by_key(|e| std::cmp::Reverse(off(&e["range"]["start"])));
    let mut out = text.to_string();
    for e in edits {
        let (a, b) = (off(&e["range"]["start"]), off(&e["range"]["end"]));
        out.replace_range(a..b, e["newText"].as_str().unwrap());
    }
    out
}

#[test]
fn scripted_session() {
    let docs = std::env::temp_dir().join(format!("tdspec-lsp-test-{}", std::process::id()));
    let (server, conn) = Connection::memory();
    let docs_dir = docs.clone();
    let thread = std::thread::spawn(move || serve(&server, RuleDocs::Dir(docs_dir)));
    let mut c = Client {
        conn,
        next_id: 0,
        notifications: VecDeque::new(),
    };

    // initialize
    let init = c.request(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    let caps = &init["capabilities"];
    assert_eq!(caps["positionEncoding"], "utf-16");
    assert_eq!(caps["textDocumentSync"]["change"], 2, "incremental sync");
    for p in [
        "hoverProvider",
        "definitionProvider",
        "documentFormattingProvider",
        "documentSymbolProvider",
    ] {
        assert_eq!(caps[p], true, "{p}");
    }
    assert_eq!(init["serverInfo"]["name"], "tdspec");
    c.notify("initialized", json!({}));

    // didOpen: the lint's TD102 at the injection, with the norm as a related location
    c.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "tdspec", "version": 1, "text": SPEC } }),
    );
    let published = c.diagnostics();
    assert_eq!(published["uri"], URI);
    assert_eq!(published["version"], 1);
    let diags = published["diagnostics"].as_array().unwrap();
    let td102 = diags
        .iter()
        .find(|d| d["code"] == "TD102")
        .unwrap_or_else(|| panic!("{published:#}"));
    println!(
        "diagnostic:\n{}",
        serde_json::to_string_pretty(td102).unwrap()
    );
    assert_eq!(td102["severity"], 2);
    assert_eq!(td102["source"], "tdspec");
    let inject = pos(SPEC, "inject(temb | silu)", 0);
    assert_eq!(td102["range"]["start"], inject);
    // `/* t·P 😀 */` is 16 bytes but 12 UTF-16 units (the emoji is two).
    assert_eq!(inject["character"], 8 + 12 + 9);
    assert_eq!(
        td102["range"]["end"]["character"],
        inject["character"].as_u64().unwrap() + "inject(temb | silu)".len() as u64
    );
    assert!(td102["message"]
        .as_str()
        .unwrap()
        .contains("0.75 of its energy survives"));
    assert!(td102["message"].as_str().unwrap().contains("\nhelp: "));
    let related = td102["relatedInformation"].as_array().unwrap();
    assert!(related.iter().any(|r| r["location"]["range"]["start"]
        == pos(SPEC, "norm as norm2", 0)
        && r["location"]["uri"] == URI));
    let href = td102["codeDescription"]["href"].as_str().unwrap();
    assert!(
        href.starts_with("file://") && href.ends_with("/TD102.md"),
        "{href}"
    );
    let doc = std::fs::read_to_string(docs.join("TD102.md")).unwrap();
    assert!(doc.starts_with("# TD102"), "{doc}");
    assert!(
        !diags.iter().any(|d| d["severity"] == 1),
        "no errors: {published:#}"
    );

    // didChange as you type: a typo is an error with a suggestion, then fixed again
    let silu = pos(SPEC, "silu | conv3(out) as conv2", 0);
    let silu_end =
        json!({ "line": silu["line"], "character": silu["character"].as_u64().unwrap() + 4 });
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 },
                "contentChanges": [{ "range": { "start": silu, "end": silu_end }, "text": "sulu" }] }),
    );
    let published = c.diagnostics();
    assert_eq!(published["version"], 2);
    let err = &published["diagnostics"][0];
    assert_eq!(err["severity"], 1, "{published:#}");
    assert_eq!(err["range"]["start"], silu);
    assert!(err["message"].as_str().unwrap().contains("silu"), "{err}");
    assert!(
        err.get("codeDescription").is_none(),
        "only lint rules link docs"
    );
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 3 },
                "contentChanges": [{ "range": { "start": silu, "end": silu_end }, "text": "silu" }] }),
    );
    let published = c.diagnostics();
    assert_eq!(published["version"], 3);
    assert!(published["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["code"] == "TD102"));

    // hover at a normalization inside the block: every instance, its shape and parameters,
    // and the lint's predicted survival per origin
    let hover = c.request("textDocument/hover", at(SPEC, "norm as norm2", 0));
    println!("hover:\n{}", serde_json::to_string_pretty(&hover).unwrap());
    let md = hover["contents"]["value"].as_str().unwrap();
    assert_eq!(hover["contents"]["kind"], "markdown");
    assert_eq!(hover["range"]["start"], pos(SPEC, "norm as norm2", 0));
    assert!(md.contains("8 instances, 832 parameters in all"), "{md}");
    assert!(
        md.contains("`down.0.res0.norm2`: norm group(8) → `[B, 32, 28, 28]`, 64 parameters"),
        "{md}"
    );
    assert!(md.contains("time survival (all origins): **0.75**"), "{md}");
    assert!(
        md.contains("from `down.0.res0.temb_proj`: **0.75**: a per-channel offset"),
        "{md}"
    );
    // the residual stream carries earlier blocks' signal: their origins share a line
    assert!(
        md.contains("from 3 origins (`down.0.res0.temb_proj`, …): **alive (no number)**: a change through a nonlinearity"),
        "{md}"
    );
    // hover at a layer: shape and parameter count
    let hover = c.request("textDocument/hover", at(SPEC, "linear(128) | silu", 0));
    let md = hover["contents"]["value"].as_str().unwrap();
    assert!(
        md.contains("`temb.1`: linear 32->128 → `[B, 128]`, 4,224 parameters"),
        "{md}"
    );
    // hover at a block's name and at the model's name
    let hover = c.request("textDocument/hover", at(SPEC, "res(out)", 0));
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap()
            .starts_with("block `res`(out)(h): 8 instances"),
        "{hover}"
    );
    let hover = c.request("textDocument/hover", at(SPEC, "small {", 0));
    let total = tdspec_compiler::sema::check_source(SPEC).unwrap()[0].param_count();
    let want = format!(
        "{} parameters",
        tdspec_compiler::diagnostics::thousands(total)
    );
    assert!(
        hover["contents"]["value"].as_str().unwrap().contains(&want),
        "{hover}"
    );

    // definitions: an embedding, a block, a named value (the latest assignment before)
    let def = c.request("textDocument/definition", at(SPEC, "temb | silu", 0));
    assert_eq!(def["uri"], URI);
    assert_eq!(def["range"]["start"], pos(SPEC, "temb = ", 0));
    let def = c.request("textDocument/definition", at(SPEC, "res)", 0));
    assert_eq!(def["range"]["start"], pos(SPEC, "res(out)", 0));
    let def = c.request("textDocument/definition", at(SPEC, "a + shortcut", 0));
    assert_eq!(def["range"]["start"], pos(SPEC, "a = a | norm as norm2", 0));
    let def = c.request("textDocument/definition", at(SPEC, "a + inject", 0));
    assert_eq!(def["range"]["start"], pos(SPEC, "a = h", 0));
    let def = c.request("textDocument/definition", at(SPEC, "h, out)", 0));
    assert_eq!(def["range"]["start"], pos(SPEC, "h) {", 0));
    let none = c.request(
        "textDocument/definition",
        at(SPEC, "conv3(out) as conv1", 0),
    );
    assert_eq!(
        none,
        Value::Null,
        "a built-in layer has no definition in the spec"
    );

    // formatting: edits that turn the document into `tdspec fmt`'s output
    let edits = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": URI }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    let formatted = apply(SPEC, &edits);
    assert_eq!(
        formatted,
        tdspec_compiler::fmt::format_source(SPEC).unwrap()
    );
    assert!(formatted.contains("    norm  = group(per_group = 4)\n"));
    assert!(
        formatted.contains("        /* t·P 😀 */\n        a = a + inject"),
        "{formatted}"
    );
    assert!(
        edits.as_array().unwrap().len() >= 2,
        "line edits, not one whole-file edit"
    );

    // code actions at the finding: the lint's fix (with its predicted effect) and an allow
    let actions = c.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI },
                "range": { "start": inject, "end": inject },
                "context": { "diagnostics": [] } }),
    );
    let actions = actions.as_array().unwrap();
    let fix = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("(changes the model)"))
        .unwrap_or_else(|| panic!("{actions:#?}"));
    assert_eq!(fix["kind"], "quickfix");
    assert_eq!(fix["diagnostics"][0]["code"], "TD102");
    let fixed = apply(SPEC, &fix["edit"]["changes"][URI]);
    let diags = tdspec_compiler::lint::lint_source(&fixed, &Default::default()).unwrap();
    assert!(
        diags
            .iter()
            .all(|r| r.diagnostics.iter().all(|d| d.code != "TD102")),
        "the fix removes the finding:\n{fixed}"
    );
    let allow = actions
        .iter()
        .find(|a| a["title"] == "allow TD102 on this statement")
        .unwrap_or_else(|| panic!("{actions:#?}"));
    let allowed = apply(SPEC, &allow["edit"]["changes"][URI]);
    assert!(
        allowed.contains("        #[allow(TD102)]\n        /* t·P 😀 */ a = a + inject"),
        "{allowed}"
    );
    let reports = tdspec_compiler::lint::lint_source(&allowed, &Default::default()).unwrap();
    assert!(reports[0].diagnostics.iter().all(|d| d.code != "TD102"));

    // the outline
    let syms = c.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": URI } }),
    );
    let model = &syms[0];
    assert_eq!(model["name"], "small");
    assert_eq!(model["kind"], 2);
    assert_eq!(model["detail"], want);
    let names: Vec<&str> = model["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["x", "t", "norm", "bias", "temb", "res", "unet", "denoise"]
    );
    let block = &model["children"][5];
    assert_eq!(block["kind"], 12);
    assert_eq!(block["selectionRange"]["start"], pos(SPEC, "res(out)", 0));
    let values: Vec<&str> = block["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["a", "a", "a"]);
    assert_eq!(model["children"][4]["detail"], "[B, 128]");

    // close, shutdown, exit
    c.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": URI } }),
    );
    assert_eq!(c.diagnostics()["diagnostics"], json!([]));
    assert_eq!(c.request("shutdown", Value::Null), Value::Null);
    c.notify("exit", Value::Null);
    thread.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&docs);
}

#[test]
fn unknown_requests_are_errors_and_documents_without_models_are_diagnosed() {
    let (server, conn) = Connection::memory();
    let thread = std::thread::spawn(move || {
        serve(
            &server,
            RuleDocs::Url("https://example.test/rules/{code}".into()),
        )
    });
    let mut c = Client {
        conn,
        next_id: 0,
        notifications: VecDeque::new(),
    };
    c.request(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    c.notify("initialized", json!({}));
    c.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "tdspec", "version": 7, "text": "// nothing yet\n" } }),
    );
    let published = c.diagnostics();
    assert_eq!(published["diagnostics"][0]["code"], "E005", "{published}");
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 8 },
                "contentChanges": [{ "text": "model m {\n    input x: image[1, 4, 4]\n    time  t: continuous, shared\n    return x | conv(4, k = 3) | group(4) | relu | conv1(1)\n}\n" }] }),
    );
    let published = c.diagnostics();
    let d = &published["diagnostics"][0];
    assert_eq!(d["code"], "TD107", "{published}");
    assert_eq!(
        d["codeDescription"]["href"],
        "https://example.test/rules/TD107"
    );
    // formatting an unparsable document changes nothing
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 9 }, "contentChanges": [{ "text": "model m {" }] }),
    );
    assert_eq!(c.diagnostics()["diagnostics"][0]["code"], "E002");
    let edits = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": URI }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    assert_eq!(edits, Value::Null);

    c.next_id += 1;
    let id = RequestId::from(c.next_id);
    let req = Request::new(id.clone(), "textDocument/rename".into(), json!({}));
    c.conn.sender.send(req.into()).unwrap();
    match c.recv() {
        Message::Response(r) => {
            assert_eq!(r.id, id);
            let e = r.response_result.unwrap_err();
            assert_eq!(e.code, lsp_server::ErrorCode::MethodNotFound as i32);
        }
        m => panic!("unexpected {m:?}"),
    }
    c.request("shutdown", Value::Null);
    c.notify("exit", Value::Null);
    thread.join().unwrap().unwrap();
}
