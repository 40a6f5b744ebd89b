#!/usr/bin/env bash
# Installs the extension's npm dependencies (the language client and the grammar test tool)
# into editors/vscode/node_modules; `cargo test --test vscode_grammar` then runs the grammar's
# scope snapshot test. Needs node and npm, and the npm registry once.
set -euo pipefail
cd "$(dirname "$0")"
if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund
else
    npm install --no-audit --no-fund
fi
