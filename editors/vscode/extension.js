// The tdspec extension: starts `tdspec lsp` for .tds files and lets the language server do
// the rest (diagnostics, hover, go to definition, formatting, code actions, outline).
// Highlighting comes from syntaxes/tdspec.tmLanguage.json.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("tdspec");
  const command = config.get("server.path") || "tdspec";
  const ruleDocs = config.get("ruleDocs");
  const serverOptions = { command, args: ["lsp"] };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "tdspec" },
      { scheme: "untitled", language: "tdspec" },
    ],
    initializationOptions: ruleDocs ? { ruleDocs } : {},
  };
  client = new LanguageClient("tdspec", "tdspec", serverOptions, clientOptions);
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
