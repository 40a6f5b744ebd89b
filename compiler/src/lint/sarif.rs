//! SARIF 2.1.0 output: lint diagnostics of several spec files in; one SARIF log (a JSON value)
//! out, with the rule metadata (code, name, summary, documentation, default level) in the
//! tool driver, one result per diagnostic with its related locations and fixes. Columns count
//! Unicode code points (`columnKind: unicodeCodePoints`).

use super::rules::RULES;
use crate::diagnostics::{Diagnostic, Severity, SourceFile};
use serde_json::{json, Value};

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn region(src: &SourceFile, start: usize, end: usize) -> Value {
    let (sl, sc) = src.line_col(start);
    let (el, ec) = src.line_col(end);
    json!({
        "startLine": sl,
        "startColumn": sc,
        "endLine": el,
        "endColumn": ec,
        "charOffset": start,
        "charLength": end.saturating_sub(start),
    })
}

/// Turns a path into a relative URI reference (forward slashes, spaces escaped).
fn uri(name: &str) -> String {
    name.replace('\\', "/").replace(' ', "%20")
}

/// The SARIF log for `files`, each with its lint diagnostics.
pub fn sarif(files: &[(&SourceFile, &[Diagnostic])], version: &str) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.code,
                "name": r.name,
                "shortDescription": { "text": r.summary },
                "fullDescription": { "text": r.summary },
                "help": { "text": r.doc, "markdown": r.doc },
                "defaultConfiguration": { "level": level(r.severity) },
                "properties": { "fixable": r.fixable, "tags": ["time-dependence"] },
            })
        })
        .collect();
    let mut results = Vec::new();
    for (src, diags) in files {
        let loc = uri(&src.name);
        for d in diags.iter() {
            let Some(span) = d.primary_span() else {
                continue;
            };
            let mut text = d.message.clone();
            if let Some(h) = &d.help {
                text.push_str(&format!("\nhelp: {h}"));
            }
            for n in &d.notes {
                text.push_str(&format!("\nnote: {n}"));
            }
            let related: Vec<Value> = d
                .labels
                .iter()
                .filter(|l| !l.primary)
                .enumerate()
                .map(|(i, l)| {
                    json!({
                        "id": i,
                        "message": { "text": l.message },
                        "physicalLocation": {
                            "artifactLocation": { "uri": loc },
                            "region": region(src, l.span.start, l.span.end),
                        },
                    })
                })
                .collect();
            let primary_msg = d
                .labels
                .iter()
                .find(|l| l.primary)
                .map(|l| l.message.clone())
                .unwrap_or_default();
            let mut r = json!({
                "ruleId": d.code,
                "level": level(d.severity),
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": loc },
                        "region": region(src, span.start, span.end),
                    },
                    "message": { "text": primary_msg },
                }],
            });
            if let Some(i) = RULES.iter().position(|x| x.code == d.code) {
                r["ruleIndex"] = json!(i);
            }
            if !related.is_empty() {
                r["relatedLocations"] = json!(related);
            }
            if let Some(f) = &d.fix {
                r["fixes"] = json!([{
                    "description": { "text": f.description },
                    "artifactChanges": [{
                        "artifactLocation": { "uri": loc },
                        "replacements": f.edits.iter().map(|e| json!({
                            "deletedRegion": region(src, e.span.start, e.span.end),
                            "insertedContent": { "text": e.replacement },
                        })).collect::<Vec<_>>(),
                    }],
                }]);
                r["properties"] = json!({ "unsafeFix": f.unsafe_ });
            }
            if let Some(x) = d.fraction {
                if !r["properties"].is_object() {
                    r["properties"] = json!({});
                }
                r["properties"]["survivingFraction"] = json!(x);
            }
            results.push(r);
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "tdspec",
                    "version": version,
                    "rules": rules,
                },
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}
