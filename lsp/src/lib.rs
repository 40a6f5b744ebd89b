//! tdspec's language server: LSP messages in (over stdio, or any [`Connection`]); diagnostics
//! from `check` and `lint` as the spec is typed (codes, related locations, a link to the rule's
//! documentation), hovers (a layer's output shape and parameters; at a normalization the lint's
//! predicted time survival per origin), definitions of blocks, embeddings and named values,
//! formatting through `tdspec fmt`, lint fixes and `#[allow(...)]` as code actions, and the
//! document's outline out. Columns are UTF-16 code units, the protocol's default. It uses the
//! compiler's public API only and never the runtime.

mod document;
mod line_index;
mod server;

pub use document::{Document, Symbol, SymbolKind};
pub use line_index::{apply_change, LineIndex};
pub use lsp_server::Connection;
pub use server::{capabilities, RuleDocs, Server};

/// Serves one client over `conn` until it shuts the server down: the initialize handshake,
/// then requests and notifications.
pub fn serve(conn: &Connection, rule_docs: RuleDocs) -> Result<(), String> {
    let caps = serde_json::to_value(capabilities()).map_err(|e| e.to_string())?;
    let (id, params) = conn.initialize_start().map_err(|e| e.to_string())?;
    let init: lsp_types::InitializeParams =
        serde_json::from_value(params).map_err(|e| format!("bad initialize params: {e}"))?;
    let result = serde_json::json!({
        "capabilities": caps,
        "serverInfo": { "name": "tdspec", "version": env!("CARGO_PKG_VERSION") },
    });
    conn.initialize_finish(id, result)
        .map_err(|e| e.to_string())?;
    Server::new(rule_docs, &init).run(conn)
}

/// Runs the server on standard input and output (what `tdspec lsp` does).
pub fn run_stdio() -> Result<(), String> {
    let (conn, io) = Connection::stdio();
    serve(&conn, RuleDocs::temp_dir())?;
    drop(conn);
    io.join().map_err(|e| format!("stdio: {e}"))
}
