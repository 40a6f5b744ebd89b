//! The protocol side: LSP messages in over a [`Connection`]; responses and published
//! diagnostics out. Documents are kept in memory as the editor sends them (incremental
//! changes), and re-analyzed on every change, so diagnostics follow typing.

use crate::document::{Document, Symbol, SymbolKind as Kind};
use crate::line_index::apply_change;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types as lsp;
use lsp_types::notification::Notification as _;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use tdspec_compiler::ast::Span;
use tdspec_compiler::diagnostics::{Diagnostic, Severity};
use tdspec_compiler::fmt::format_source;
use tdspec_compiler::lint::{self, RULES};

/// How the server links diagnostics to their rule's documentation.
#[derive(Debug, Clone)]
pub enum RuleDocs {
    /// A URL template with `{code}` (the `ruleDocs` initialization option).
    Url(String),
    /// A directory the server writes `CODE.md` files into (the rules' documentation).
    Dir(PathBuf),
}

impl RuleDocs {
    /// The documentation directory under the system's temporary directory.
    pub fn temp_dir() -> Self {
        RuleDocs::Dir(
            std::env::temp_dir()
                .join(format!("tdspec-lsp-{}", env!("CARGO_PKG_VERSION")))
                .join("rules"),
        )
    }

    /// Writes the rule files (for [`RuleDocs::Dir`]); failing leaves diagnostics unlinked.
    fn prepare(&self) -> bool {
        let RuleDocs::Dir(dir) = self else {
            return true;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return false;
        }
        RULES.iter().all(|r| {
            let text = format!("# {} {}\n\n{}\n\n{}\n", r.code, r.name, r.summary, r.doc);
            let path = dir.join(format!("{}.md", r.code));
            std::fs::read_to_string(&path).is_ok_and(|t| t == text)
                || std::fs::write(&path, text).is_ok()
        })
    }

    fn href(&self, code: &str) -> Option<lsp::Uri> {
        let rule = lint::rule(code)?;
        let s = match self {
            RuleDocs::Url(t) => t.replace("{code}", rule.code),
            RuleDocs::Dir(d) => file_uri(&d.join(format!("{}.md", rule.code))),
        };
        s.parse().ok()
    }
}

/// A `file://` URI for an absolute path (bytes outside the unreserved set percent-encoded).
fn file_uri(path: &std::path::Path) -> String {
    let p = path.to_string_lossy().replace('\\', "/");
    let mut s = String::from("file://");
    if !p.starts_with('/') {
        s.push('/');
    }
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

pub fn capabilities() -> lsp::ServerCapabilities {
    lsp::ServerCapabilities {
        position_encoding: Some(lsp::PositionEncodingKind::UTF16),
        text_document_sync: Some(lsp::TextDocumentSyncCapability::Options(
            lsp::TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(lsp::TextDocumentSyncKind::INCREMENTAL),
                ..Default::default()
            },
        )),
        hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
        definition_provider: Some(lsp::OneOf::Left(true)),
        document_formatting_provider: Some(lsp::OneOf::Left(true)),
        document_symbol_provider: Some(lsp::OneOf::Left(true)),
        code_action_provider: Some(lsp::CodeActionProviderCapability::Options(
            lsp::CodeActionOptions {
                code_action_kinds: Some(vec![lsp::CodeActionKind::QUICKFIX]),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

pub struct Server {
    docs: HashMap<String, (lsp::Uri, Document)>,
    rule_docs: Option<RuleDocs>,
}

impl Server {
    /// A server whose rule links come from `rule_docs` (overridden by the client's
    /// `ruleDocs` initialization option).
    pub fn new(rule_docs: RuleDocs, init: &lsp::InitializeParams) -> Self {
        let rule_docs = match init
            .initialization_options
            .as_ref()
            .and_then(|o| o.get("ruleDocs"))
            .and_then(Value::as_str)
        {
            Some(url) => RuleDocs::Url(url.to_string()),
            None => rule_docs,
        };
        let ready = rule_docs.prepare();
        Server {
            docs: HashMap::new(),
            rule_docs: ready.then_some(rule_docs),
        }
    }

    /// Serves until `shutdown` and `exit` (or the client goes away).
    pub fn run(mut self, conn: &Connection) -> Result<(), String> {
        for msg in &conn.receiver {
            match msg {
                Message::Request(req) => {
                    if conn.handle_shutdown(&req).map_err(|e| e.to_string())? {
                        return Ok(());
                    }
                    let resp = self.request(req);
                    conn.sender.send(resp.into()).map_err(|e| e.to_string())?;
                }
                Message::Notification(n) => {
                    if n.method == lsp::notification::Exit::METHOD {
                        return Ok(());
                    }
                    for out in self.notification(n) {
                        conn.sender.send(out.into()).map_err(|e| e.to_string())?;
                    }
                }
                Message::Response(_) => {}
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ notifications

    fn notification(&mut self, n: Notification) -> Vec<Notification> {
        use lsp::notification::*;
        fn params<N: lsp::notification::Notification>(
            n: lsp_server::Notification,
        ) -> Option<N::Params> {
            n.extract(N::METHOD).ok()
        }
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let Some(p) = params::<DidOpenTextDocument>(n) else {
                    return Vec::new();
                };
                let doc = Document::new(p.text_document.text, p.text_document.version);
                self.update(p.text_document.uri, doc)
            }
            DidChangeTextDocument::METHOD => {
                let Some(p) = params::<DidChangeTextDocument>(n) else {
                    return Vec::new();
                };
                let Some((_, old)) = self.docs.get(p.text_document.uri.as_str()) else {
                    return Vec::new();
                };
                let mut text = old.text.clone();
                for c in &p.content_changes {
                    apply_change(&mut text, c.range, &c.text);
                }
                let doc = Document::new(text, p.text_document.version);
                self.update(p.text_document.uri, doc)
            }
            DidCloseTextDocument::METHOD => {
                let Some(p) = params::<DidCloseTextDocument>(n) else {
                    return Vec::new();
                };
                self.docs.remove(p.text_document.uri.as_str());
                vec![publish(p.text_document.uri, Vec::new(), None)]
            }
            _ => Vec::new(),
        }
    }

    fn update(&mut self, uri: lsp::Uri, doc: Document) -> Vec<Notification> {
        let diags = doc
            .diagnostics
            .iter()
            .map(|d| self.diagnostic(&uri, &doc, d))
            .collect();
        let version = doc.version;
        self.docs
            .insert(uri.as_str().to_string(), (uri.clone(), doc));
        vec![publish(uri, diags, Some(version))]
    }

    fn diagnostic(&self, uri: &lsp::Uri, doc: &Document, d: &Diagnostic) -> lsp::Diagnostic {
        let span = d.primary_span().unwrap_or_default();
        let mut message = d.message.clone();
        if let Some(l) = d.labels.iter().find(|l| l.primary && !l.message.is_empty()) {
            message.push_str(&format!("\n{}", l.message));
        }
        if let Some(h) = &d.help {
            message.push_str(&format!("\nhelp: {h}"));
        }
        for n in &d.notes {
            message.push_str(&format!("\nnote: {n}"));
        }
        let related: Vec<lsp::DiagnosticRelatedInformation> = d
            .labels
            .iter()
            .filter(|l| !l.primary)
            .map(|l| lsp::DiagnosticRelatedInformation {
                location: lsp::Location::new(uri.clone(), range(doc, l.span)),
                message: l.message.clone(),
            })
            .collect();
        lsp::Diagnostic {
            range: range(doc, span),
            severity: Some(match d.severity {
                Severity::Error => lsp::DiagnosticSeverity::ERROR,
                Severity::Warning => lsp::DiagnosticSeverity::WARNING,
                Severity::Info => lsp::DiagnosticSeverity::INFORMATION,
            }),
            code: Some(lsp::NumberOrString::String(d.code.clone())),
            code_description: self
                .rule_docs
                .as_ref()
                .and_then(|r| r.href(&d.code))
                .map(|href| lsp::CodeDescription { href }),
            source: Some("tdspec".into()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            tags: None,
            data: None,
        }
    }

    // ------------------------------------------------------------------ requests

    fn request(&mut self, req: Request) -> Response {
        use lsp::request::*;
        let id = req.id.clone();
        let result = match req.method.as_str() {
            HoverRequest::METHOD => self.on::<HoverRequest>(req, Self::hover),
            GotoDefinition::METHOD => self.on::<GotoDefinition>(req, Self::definition),
            Formatting::METHOD => self.on::<Formatting>(req, Self::formatting),
            CodeActionRequest::METHOD => self.on::<CodeActionRequest>(req, Self::code_actions),
            DocumentSymbolRequest::METHOD => self.on::<DocumentSymbolRequest>(req, Self::symbols),
            m => Err((ErrorCode::MethodNotFound, format!("unknown method `{m}`"))),
        };
        match result {
            Ok(v) => Response::new_ok(id, v),
            Err((code, msg)) => Response::new_err(id, code as i32, msg),
        }
    }

    fn on<R: lsp::request::Request>(
        &self,
        req: Request,
        f: fn(&Self, R::Params) -> R::Result,
    ) -> Result<Value, (ErrorCode, String)> {
        let (_, params): (RequestId, R::Params) = req
            .extract(R::METHOD)
            .map_err(|e| (ErrorCode::InvalidParams, format!("{e:?}")))?;
        Ok(serde_json::to_value(f(self, params)).unwrap_or(Value::Null))
    }

    fn doc(&self, uri: &lsp::Uri) -> Option<&Document> {
        self.docs.get(uri.as_str()).map(|(_, d)| d)
    }

    fn hover(&self, p: lsp::HoverParams) -> Option<lsp::Hover> {
        let pos = p.text_document_position_params;
        let doc = self.doc(&pos.text_document.uri)?;
        let offset = doc.index.offset(&doc.text, pos.position);
        let (markdown, span) = doc.hover(offset)?;
        Some(lsp::Hover {
            contents: lsp::HoverContents::Markup(lsp::MarkupContent {
                kind: lsp::MarkupKind::Markdown,
                value: markdown,
            }),
            range: Some(range(doc, span)),
        })
    }

    fn definition(&self, p: lsp::GotoDefinitionParams) -> Option<lsp::GotoDefinitionResponse> {
        let pos = p.text_document_position_params;
        let doc = self.doc(&pos.text_document.uri)?;
        let offset = doc.index.offset(&doc.text, pos.position);
        let span = doc.definition(offset)?;
        Some(lsp::GotoDefinitionResponse::Scalar(lsp::Location::new(
            pos.text_document.uri,
            range(doc, span),
        )))
    }

    fn formatting(&self, p: lsp::DocumentFormattingParams) -> Option<Vec<lsp::TextEdit>> {
        let doc = self.doc(&p.text_document.uri)?;
        let formatted = format_source(&doc.text).ok()?;
        Some(line_edits(doc, &formatted))
    }

    fn code_actions(&self, p: lsp::CodeActionParams) -> Option<lsp::CodeActionResponse> {
        let doc = self.doc(&p.text_document.uri)?;
        let uri = p.text_document.uri;
        let a = doc.index.offset(&doc.text, p.range.start);
        let b = doc.index.offset(&doc.text, p.range.end);
        let mut out = Vec::new();
        for d in &doc.diagnostics {
            let Some(span) = d.primary_span() else {
                continue;
            };
            if span.end < a || span.start > b {
                continue;
            }
            let diag = self.diagnostic(&uri, doc, d);
            if let Some(fix) = &d.fix {
                let edits = fix
                    .edits
                    .iter()
                    .map(|e| lsp::TextEdit::new(range(doc, e.span), e.replacement.clone()))
                    .collect();
                let title = if fix.unsafe_ {
                    format!("{} (changes the model)", fix.description)
                } else {
                    fix.description.clone()
                };
                out.push(action(title, &uri, edits, diag.clone(), !fix.unsafe_));
            }
            if lint::rule(&d.code).is_some() {
                if let Some(st) = doc.statement_around(span) {
                    let line_start = doc.text[..st.span.start].rfind('\n').map_or(0, |i| i + 1);
                    let indent: String = doc.text[line_start..]
                        .chars()
                        .take_while(|c| *c == ' ' || *c == '\t')
                        .collect();
                    let at = range(doc, Span::new(line_start, line_start));
                    let edit = lsp::TextEdit::new(at, format!("{indent}#[allow({})]\n", d.code));
                    let title = format!("allow {} on this statement", d.code);
                    out.push(action(title, &uri, vec![edit], diag, false));
                }
            }
        }
        Some(out)
    }

    fn symbols(&self, p: lsp::DocumentSymbolParams) -> Option<lsp::DocumentSymbolResponse> {
        let doc = self.doc(&p.text_document.uri)?;
        let syms = doc.symbols().iter().map(|s| symbol(doc, s)).collect();
        Some(lsp::DocumentSymbolResponse::Nested(syms))
    }
}

fn range(doc: &Document, span: Span) -> lsp::Range {
    doc.index.range(&doc.text, span.start, span.end)
}

fn publish(uri: lsp::Uri, diagnostics: Vec<lsp::Diagnostic>, version: Option<i32>) -> Notification {
    Notification::new(
        lsp::notification::PublishDiagnostics::METHOD.to_string(),
        lsp::PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        },
    )
}

fn action(
    title: String,
    uri: &lsp::Uri,
    edits: Vec<lsp::TextEdit>,
    diag: lsp::Diagnostic,
    preferred: bool,
) -> lsp::CodeActionOrCommand {
    #[allow(clippy::mutable_key_type)] // lsp_types keys workspace edits by Uri
    let changes = HashMap::from([(uri.clone(), edits)]);
    lsp::CodeActionOrCommand::CodeAction(lsp::CodeAction {
        title,
        kind: Some(lsp::CodeActionKind::QUICKFIX),
        diagnostics: Some(vec![diag]),
        edit: Some(lsp::WorkspaceEdit {
            changes: Some(changes),
            ..Default::default()
        }),
        is_preferred: Some(preferred),
        ..Default::default()
    })
}

/// The edits that turn the document into `new`, one per changed run of lines.
fn line_edits(doc: &Document, new: &str) -> Vec<lsp::TextEdit> {
    let old_lines: Vec<&str> = doc.text.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let mut starts = Vec::with_capacity(old_lines.len() + 1);
    let mut at = 0;
    for l in &old_lines {
        starts.push(at);
        at += l.len();
    }
    starts.push(at);
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, &old_lines, &new_lines);
    ops.iter()
        .filter(|op| !matches!(op, similar::DiffOp::Equal { .. }))
        .map(|op| {
            let (_, old, new) = op.as_tag_tuple();
            let span = Span::new(starts[old.start], starts[old.end]);
            lsp::TextEdit::new(range(doc, span), new_lines[new].concat())
        })
        .collect()
}

#[allow(deprecated)] // `DocumentSymbol::deprecated` is a required field of the struct
fn symbol(doc: &Document, s: &Symbol) -> lsp::DocumentSymbol {
    let kind = match s.kind {
        Kind::Model => lsp::SymbolKind::MODULE,
        Kind::Input | Kind::Time => lsp::SymbolKind::VARIABLE,
        Kind::Setting => lsp::SymbolKind::PROPERTY,
        Kind::Embedding => lsp::SymbolKind::FIELD,
        Kind::Block => lsp::SymbolKind::FUNCTION,
        Kind::Value => lsp::SymbolKind::VARIABLE,
        Kind::Call => lsp::SymbolKind::OBJECT,
        Kind::Task => lsp::SymbolKind::EVENT,
        Kind::Train => lsp::SymbolKind::OBJECT,
    };
    let children: Vec<lsp::DocumentSymbol> = s.children.iter().map(|c| symbol(doc, c)).collect();
    lsp::DocumentSymbol {
        name: s.name.clone(),
        detail: s.detail.clone(),
        kind,
        tags: None,
        deprecated: None,
        range: range(doc, s.span),
        selection_range: range(doc, s.name_span),
        children: (!children.is_empty()).then_some(children),
    }
}
