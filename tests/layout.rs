//! Layout checks of the workspace: the `.rs` files of compiler/src, runtime/src and src in, one
//! verdict per rule out, printing the offending import cycle, file or import on failure.
//!
//! Rules: no import cycle among the modules of any crate of compiler/ or runtime/; the bottom of
//! the runtime's ops layer (`tape`, `types`, `gemm512`) imports nothing else from `ops`; no file of
//! compiler/src or runtime/src over [`MAX_FILE_LINES`] lines; the binary (src/) at most
//! [`MAX_BINARY_LINES`] lines in all; no `src/*_cmd.rs` command module importing another one.
//!
//! How the module graph is built. Each crate root (`lib.rs`, `main.rs`, `bin/*.rs`) is followed
//! through its `mod name;` declarations (inline `mod name { .. }` blocks included), so a file is a
//! module and a `mod.rs` is its folder's module; a file reached by no declaration is an error, as
//! is a `#[path]` attribute, which this checker does not follow. Comments (doc links included),
//! string and char literals are blanked out first. Every path in `use` trees and in code that starts
//! with `crate::`, `$crate::`, `super::`, `self::`, or with the name of a child module of the current
//! module, is resolved against the module tree, and the file module it ends in (the deepest
//! prefix of the path that is a file module) gets an edge from the file it appears in. The
//! modules a path merely passes through are namespaces, not dependencies: `super::types::X` uses
//! `types`, not the parent. Test code counts like any other code, and a `mod x;` declaration is
//! not a use. A consequence worth spelling out: a child naming an item of its parent
//! (`super::X`, a re-export included) depends on the parent, which is fine exactly when the parent
//! does not use that child back, directly or through other modules.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::Path;

/// Most lines in one source file of the compiler or the runtime.
const MAX_FILE_LINES: usize = 900;
/// Most lines of the binary crate (src/) in all: about 75 per command (17 of them) plus the
/// shared reporting; rendering diagnostics as text is the runtime's (`render.rs`, where it is
/// tested against miette's layout).
const MAX_BINARY_LINES: usize = 1350;

/// Module path inside a crate; empty for the crate root.
type ModPath = Vec<String>;
/// Source files by their path relative to the crate's `src/`, `/`-separated.
type Files = BTreeMap<String, String>;

/// Reads every `.rs` file under `dir`.
fn read_tree(dir: &Path) -> Files {
    fn walk(dir: &Path, rel: &str, out: &mut Files) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if p.is_dir() {
                walk(&p, &r, out);
            } else if name.ends_with(".rs") {
                let text = fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
                out.insert(r, text);
            }
        }
    }
    let mut out = Files::new();
    walk(dir, "", &mut out);
    out
}

fn workspace(sub: &str) -> Files {
    read_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join(sub))
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The code of a Rust source with comments and string and char literals removed (newlines kept,
/// so line numbers stay right): what is left are the paths the compiler resolves.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    // Skips to just past the closing quote (and `hashes` `#`s), keeping newlines.
    let skip_str = |mut i: usize, hashes: usize, raw: bool, out: &mut String| -> usize {
        while i < c.len() {
            match c[i] {
                '\\' if !raw => {
                    if c.get(i + 1) == Some(&'\n') {
                        out.push('\n');
                    }
                    i += 2;
                }
                '"' if (1..=hashes).all(|h| c.get(i + h) == Some(&'#')) => return i + 1 + hashes,
                ch => {
                    if ch == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        }
        i
    };
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let prev_ident = i > 0 && is_ident_char(c[i - 1]);
        if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0usize;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
            out.push(' ');
        } else if ch == '"' {
            i = skip_str(i + 1, 0, false, &mut out);
            out.push(' ');
        } else if ch == 'r'
            && (!prev_ident || (c[i - 1] == 'b' && (i < 2 || !is_ident_char(c[i - 2]))))
            && matches!(c.get(i + 1), Some('"') | Some('#'))
        {
            let hashes = c[i + 1..].iter().take_while(|&&h| h == '#').count();
            if c.get(i + 1 + hashes) == Some(&'"') {
                i = skip_str(i + 2 + hashes, hashes, true, &mut out);
                out.push(' ');
            } else {
                // A raw identifier (`r#type`).
                out.push(ch);
                i += 1;
            }
        } else if ch == '\'' {
            if c.get(i + 1) == Some(&'\\') {
                // Escaped char literal: `'\n'`, `'\''`, `'\u{..}'`.
                let mut j = i + 3;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push(' ');
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push(' ');
            } else {
                // A lifetime or a label.
                out.push(ch);
                i += 1;
            }
        } else {
            out.push(ch);
            i += 1;
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn tokens(code: &str) -> Vec<Token> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_ascii_digit() {
            while i < c.len() && (is_ident_char(c[i]) || c[i] == '.') {
                i += 1;
            }
        } else if is_ident_char(ch) || (ch == '$' && c.get(i + 1).is_some_and(|&n| n == 'c')) {
            let start = i;
            i += 1;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            out.push(Token {
                tok: Tok::Ident(word),
                line,
            });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Token {
                tok: Tok::Sep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// A path written in a file: the module it is written in (file module plus inline modules), its
/// segments, and its line.
#[derive(Clone, Debug)]
struct PathRef {
    scope: ModPath,
    segs: Vec<String>,
    line: usize,
}

/// What one file declares and refers to.
#[derive(Debug, Default)]
struct Parsed {
    /// `mod name;` declarations: the inline modules they sit in, and the name.
    decls: Vec<(Vec<String>, String)>,
    refs: Vec<PathRef>,
    /// Line of a `#[path]` attribute, if any.
    path_attr: Option<usize>,
}

fn ident(t: &[Token], i: usize) -> Option<&str> {
    match t.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn is_punct(t: &[Token], i: usize, p: char) -> bool {
    t.get(i).map(|t| &t.tok) == Some(&Tok::Punct(p))
}

fn is_sep(t: &[Token], i: usize) -> bool {
    t.get(i).map(|t| &t.tok) == Some(&Tok::Sep)
}

/// Parses the use tree at `t[i..]` with the given prefix, appending each leaf path to `out`;
/// returns the index after the tree. `self` in a group stays a segment (dropped on resolution).
fn use_tree(t: &[Token], mut i: usize, mut path: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    if is_sep(t, i) {
        // `use ::name`: an external crate.
        path.push("::".into());
        i += 1;
    }
    loop {
        if let Some(s) = ident(t, i) {
            path.push(s.to_string());
            i += 1;
            if is_sep(t, i) {
                i += 1;
                continue;
            }
            if ident(t, i) == Some("as") {
                i += 2;
            }
            out.push(path);
            return i;
        }
        if is_punct(t, i, '{') {
            i += 1;
            while i < t.len() && !is_punct(t, i, '}') {
                let before = i;
                i = use_tree(t, i, path.clone(), out);
                if is_punct(t, i, ',') {
                    i += 1;
                }
                if i == before {
                    i += 1;
                }
            }
            return i + 1;
        }
        if is_punct(t, i, '*') {
            out.push(path);
            return i + 1;
        }
        out.push(path);
        return i;
    }
}

fn parse(src: &str, module: &ModPath) -> Parsed {
    let t = tokens(&strip(src));
    let mut p = Parsed::default();
    let mut depth = 0usize;
    // Inline modules we are in: their name and the brace depth inside them.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let scope = |inline: &[(String, usize)]| -> ModPath {
        let mut s = module.clone();
        s.extend(inline.iter().map(|(n, _)| n.clone()));
        s
    };
    let mut i = 0;
    while i < t.len() {
        let line = t[i].line;
        match &t[i].tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Punct('#') if is_punct(&t, i + 1, '[') && ident(&t, i + 2) == Some("path") => {
                p.path_attr.get_or_insert(line);
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some(name) = ident(&t, i + 1) {
                    if is_punct(&t, i + 2, ';') {
                        let within = inline.iter().map(|(n, _)| n.clone()).collect();
                        p.decls.push((within, name.to_string()));
                    } else if is_punct(&t, i + 2, '{') {
                        depth += 1;
                        inline.push((name.to_string(), depth));
                        i += 3;
                        continue;
                    }
                }
            }
            Tok::Ident(w) if w == "use" => {
                let mut leaves = Vec::new();
                let end = use_tree(&t, i + 1, Vec::new(), &mut leaves);
                let sc = scope(&inline);
                for segs in leaves {
                    p.refs.push(PathRef {
                        scope: sc.clone(),
                        segs,
                        line,
                    });
                }
                i = end.max(i + 1);
                continue;
            }
            Tok::Ident(w) if is_sep(&t, i + 1) && (i == 0 || !is_sep(&t, i - 1)) => {
                // `pub(in crate::x)` is a visibility, not a use.
                let visibility =
                    i >= 2 && ident(&t, i - 1) == Some("in") && is_punct(&t, i - 2, '(');
                if !visibility {
                    let mut segs = vec![w.clone()];
                    let mut j = i + 1;
                    while is_sep(&t, j) {
                        match ident(&t, j + 1) {
                            Some(s) => {
                                segs.push(s.to_string());
                                j += 2;
                            }
                            None => break,
                        }
                    }
                    p.refs.push(PathRef {
                        scope: scope(&inline),
                        segs,
                        line,
                    });
                    i = j;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    p
}

/// The file module a path written in `scope` ends in, if it names one of `modules`.
fn resolve(scope: &[String], segs: &[String], modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let first = segs.first()?.as_str();
    let (mut full, rest): (ModPath, &[String]) = match first {
        "::" => return None,
        "crate" | "$crate" => (Vec::new(), &segs[1..]),
        "self" => (scope.to_vec(), &segs[1..]),
        "super" => {
            let mut base = scope.to_vec();
            let mut rest = segs;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            (base, rest)
        }
        _ => {
            let mut child = scope.to_vec();
            child.push(first.to_string());
            if !modules.contains(&child) {
                // An external crate or a name in scope: its own `use` was counted.
                return None;
            }
            (scope.to_vec(), segs)
        }
    };
    full.extend(rest.iter().filter(|s| *s != "self").cloned());
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|p| modules.contains(p))
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Module graph of one crate: its file modules and, per edge, the first place that makes it.
struct Graph {
    name: String,
    modules: BTreeMap<ModPath, String>,
    edges: BTreeMap<ModPath, BTreeMap<ModPath, String>>,
}

/// Follows the `mod` declarations from `root` (a file of `files`); returns the crate's graph and
/// the files it reached.
fn crate_graph(files: &Files, root: &str, name: &str) -> Result<Graph, String> {
    let mut modules: BTreeMap<ModPath, String> = BTreeMap::new();
    let mut parsed: BTreeMap<ModPath, Parsed> = BTreeMap::new();
    let root_dir = root.rsplit_once('/').map_or("", |(d, _)| d).to_string();
    let mut queue = VecDeque::from([(root.to_string(), ModPath::new(), root_dir)]);
    while let Some((file, module, child_dir)) = queue.pop_front() {
        let src = &files[&file];
        let p = parse(src, &module);
        if let Some(line) = p.path_attr {
            return Err(format!(
                "{file}:{line}: #[path] is not followed by this checker"
            ));
        }
        for (within, child) in &p.decls {
            let mut dir = child_dir.clone();
            for w in within {
                dir = join(&dir, w);
            }
            let flat = join(&dir, &format!("{child}.rs"));
            let folder = join(&join(&dir, child), "mod.rs");
            let found = match (files.contains_key(&flat), files.contains_key(&folder)) {
                (true, false) => flat,
                (false, true) => folder,
                (true, true) => return Err(format!("both {flat} and {folder} exist")),
                (false, false) => {
                    return Err(format!(
                        "{file} declares `mod {child}` but neither {flat} nor {folder} exists"
                    ))
                }
            };
            let mut m = module.clone();
            m.extend(within.iter().cloned());
            m.push(child.clone());
            queue.push_back((found, m, join(&dir, child)));
        }
        modules.insert(module.clone(), file);
        parsed.insert(module, p);
    }
    let known: BTreeSet<ModPath> = modules.keys().cloned().collect();
    let mut edges: BTreeMap<ModPath, BTreeMap<ModPath, String>> = BTreeMap::new();
    for (module, p) in &parsed {
        for r in &p.refs {
            let Some(to) = resolve(&r.scope, &r.segs, &known) else {
                continue;
            };
            if &to != module {
                let shown: Vec<&str> = (r.segs.iter().enumerate())
                    .filter(|(i, s)| *i == 0 || *s != "self")
                    .map(|(_, s)| s.as_str())
                    .collect();
                let at = format!("{}:{} `{}`", modules[module], r.line, shown.join("::"));
                edges
                    .entry(module.clone())
                    .or_default()
                    .entry(to)
                    .or_insert(at);
            }
        }
    }
    Ok(Graph {
        name: name.to_string(),
        modules,
        edges,
    })
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The graphs of every crate whose root lies in `files` (`lib.rs`, `main.rs`, `bin/*.rs`,
/// `bin/*/main.rs`), checking that each file belongs to one of them.
fn crate_graphs(files: &Files, label: &str) -> Result<Vec<Graph>, String> {
    let mut roots: Vec<(String, String)> = Vec::new();
    for f in files.keys() {
        let parts: Vec<&str> = f.split('/').collect();
        let name = match parts.as_slice() {
            ["lib.rs"] => format!("{label} (lib)"),
            ["main.rs"] => format!("{label} (main)"),
            ["bin", b] => format!("{label} (bin {})", b.trim_end_matches(".rs")),
            ["bin", b, "main.rs"] => format!("{label} (bin {b})"),
            _ => continue,
        };
        roots.push((f.clone(), name));
    }
    let mut graphs = Vec::new();
    let mut reached = BTreeSet::new();
    for (root, name) in roots {
        let g = crate_graph(files, &root, &name)?;
        reached.extend(g.modules.values().cloned());
        graphs.push(g);
    }
    let orphans: Vec<&String> = files.keys().filter(|f| !reached.contains(*f)).collect();
    if !orphans.is_empty() {
        return Err(format!("{label}: files in no module tree: {orphans:?}"));
    }
    Ok(graphs)
}

/// One message per strongly connected group of modules: its members and a shortest cycle through
/// its first module, each edge with the place that makes it.
fn cycles(g: &Graph) -> Vec<String> {
    let nodes: Vec<&ModPath> = g.modules.keys().collect();
    let succ = |m: &ModPath| -> Vec<ModPath> {
        g.edges
            .get(m)
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default()
    };
    let reach = |from: &ModPath| -> BTreeSet<ModPath> {
        let mut seen = BTreeSet::new();
        let mut stack = succ(from);
        while let Some(m) = stack.pop() {
            if seen.insert(m.clone()) {
                stack.extend(succ(&m));
            }
        }
        seen
    };
    let reachable: BTreeMap<&ModPath, BTreeSet<ModPath>> =
        nodes.iter().map(|&m| (m, reach(m))).collect();
    let mut done: BTreeSet<ModPath> = BTreeSet::new();
    let mut out = Vec::new();
    for &m in &nodes {
        if done.contains(m) || !reachable[m].contains(m) {
            continue;
        }
        let group: Vec<ModPath> = nodes
            .iter()
            .filter(|&&o| reachable[m].contains(o) && reachable[o].contains(m))
            .map(|&o| o.clone())
            .collect();
        done.extend(group.iter().cloned());
        // Shortest path m -> .. -> m by breadth-first search.
        let mut prev: BTreeMap<ModPath, ModPath> = BTreeMap::new();
        let mut queue = VecDeque::from([m.clone()]);
        'search: while let Some(a) = queue.pop_front() {
            for b in succ(&a) {
                if b == *m {
                    prev.insert(b, a);
                    break 'search;
                }
                if !prev.contains_key(&b) {
                    prev.insert(b.clone(), a.clone());
                    queue.push_back(b);
                }
            }
        }
        let mut path = vec![m.clone()];
        let mut cur = prev[m].clone();
        while cur != *m {
            path.push(cur.clone());
            cur = prev[&cur].clone();
        }
        path.push(m.clone());
        path.reverse();
        let steps: Vec<String> = path
            .windows(2)
            .map(|w| {
                format!(
                    "  {} -> {}  ({})",
                    show(&w[0]),
                    show(&w[1]),
                    g.edges[&w[0]][&w[1]]
                )
            })
            .collect();
        let members: Vec<String> = group.iter().map(|m| show(m)).collect();
        out.push(format!(
            "{}: import cycle among {{{}}}:\n{}",
            g.name,
            members.join(", "),
            steps.join("\n")
        ));
    }
    out
}

fn assert_no_cycles(sub: &str) {
    let files = workspace(sub);
    let graphs = crate_graphs(&files, sub).unwrap_or_else(|e| panic!("{e}"));
    let found: Vec<String> = graphs.iter().flat_map(cycles).collect();
    assert!(found.is_empty(), "\n{}\n", found.join("\n"));
}

#[test]
fn runtime_has_no_import_cycle() {
    assert_no_cycles("runtime/src");
}

/// The bottom of the runtime's ops layer: the tape plumbing, the shared types and the AVX-512
/// GEMM engine import nothing else from `ops`, so every kernel can build on them.
#[test]
fn runtime_ops_bottom_imports_nothing_from_ops() {
    let files = workspace("runtime/src");
    let graphs = crate_graphs(&files, "runtime/src").unwrap_or_else(|e| panic!("{e}"));
    let lib = graphs.iter().find(|g| g.name.ends_with("(lib)")).unwrap();
    let mut bad = Vec::new();
    for bottom in ["tape", "types", "gemm512"] {
        let m: ModPath = vec!["ops".into(), bottom.into()];
        assert!(lib.modules.contains_key(&m), "no module ops::{bottom}");
        for (to, at) in lib.edges.get(&m).into_iter().flatten() {
            if to.first().is_some_and(|s| s == "ops") {
                bad.push(format!("  {} -> {}  ({at})", show(&m), show(to)));
            }
        }
    }
    assert!(bad.is_empty(), "\n{}\n", bad.join("\n"));
}

#[test]
fn compiler_has_no_import_cycle() {
    assert_no_cycles("compiler/src");
}

#[test]
fn no_source_file_is_too_long() {
    let mut long = Vec::new();
    for sub in ["compiler/src", "runtime/src"] {
        for (f, text) in workspace(sub) {
            let n = text.lines().count();
            if n > MAX_FILE_LINES {
                long.push(format!("{sub}/{f}: {n} lines (at most {MAX_FILE_LINES})"));
            }
        }
    }
    assert!(long.is_empty(), "\n{}\n", long.join("\n"));
}

#[test]
fn binary_stays_thin() {
    let files = workspace("src");
    let total: usize = files.values().map(|t| t.lines().count()).sum();
    let mut sizes: Vec<(usize, &String)> =
        files.iter().map(|(f, t)| (t.lines().count(), f)).collect();
    sizes.sort_by(|a, b| b.cmp(a));
    let list: Vec<String> = sizes
        .iter()
        .map(|(n, f)| format!("  src/{f}: {n}"))
        .collect();
    assert!(
        total <= MAX_BINARY_LINES,
        "src/ has {total} lines (at most {MAX_BINARY_LINES}):\n{}\n",
        list.join("\n")
    );
}

#[test]
fn commands_do_not_import_each_other() {
    let files = workspace("src");
    let graphs = crate_graphs(&files, "src").unwrap_or_else(|e| panic!("{e}"));
    let command = |m: &ModPath| m.first().filter(|s| s.ends_with("_cmd")).cloned();
    let mut bad = Vec::new();
    for g in &graphs {
        for (from, tos) in &g.edges {
            let Some(a) = command(from) else { continue };
            for (to, at) in tos {
                if command(to).is_some_and(|b| b != a) {
                    bad.push(format!("  {} -> {}  ({at})", show(from), show(to)));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "command modules import each other:\n{}\n",
        bad.join("\n")
    );
}

fn files_of(list: &[(&str, &str)]) -> Files {
    list.iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect()
}

fn edge_set(g: &Graph) -> BTreeSet<(String, String)> {
    g.edges
        .iter()
        .flat_map(|(a, tos)| tos.keys().map(move |b| (show(a), show(b))))
        .collect()
}

/// The checker itself: a parent re-exporting from a child that names the parent's items is a
/// cycle; comments, strings and char literals are no paths; `super` inside an inline module
/// climbs from that module; paths through a module to its child use only the child.
#[test]
fn checker_finds_planted_cycles_and_nothing_else() {
    let files = files_of(&[
        ("lib.rs", "pub mod ops;\nmod util;\npub struct E;"),
        (
            "ops/mod.rs",
            "mod a;\nmod b;\npub(crate) mod types;\npub use a::X;\npub use types::Y;",
        ),
        (
            "ops/a.rs",
            "use super::Y;\npub struct X;\nmod tests { use super::super::b::Z; }",
        ),
        (
            "ops/b.rs",
            "// use super::a::X;\n/* crate::util::f */\nconst S: &str = \"crate::util::f\";\n\
             const R: &str = r#\"super::a\"#;\nfn f() -> char { '{' }\npub struct Z;\n\
             fn g<'a>(x: &'a str) -> crate::E { super::types::Y; crate::E }",
        ),
        ("ops/types.rs", "pub struct Y;"),
        ("util.rs", "use crate::ops::a;"),
    ]);
    let graphs = crate_graphs(&files, "t").unwrap();
    assert_eq!(graphs.len(), 1);
    let g = &graphs[0];
    let want: BTreeSet<(String, String)> = [
        ("ops", "ops::a"),
        ("ops", "ops::types"),
        ("ops::a", "ops"),
        ("ops::a", "ops::b"),
        ("ops::b", "ops::types"),
        ("ops::b", "crate"),
        ("util", "ops::a"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(edge_set(g), want);
    let found = cycles(g);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("{ops, ops::a}"), "{}", found[0]);
    assert!(found[0].contains("ops/mod.rs:4 `a::X`"), "{}", found[0]);
    assert!(found[0].contains("ops/a.rs:1 `super::Y`"), "{}", found[0]);

    // Pointing the child at the defining module breaks the cycle.
    let mut fixed = files.clone();
    fixed.insert(
        "ops/a.rs".into(),
        "use super::types::Y;\npub struct X;".into(),
    );
    let graphs = crate_graphs(&fixed, "t").unwrap();
    assert!(cycles(&graphs[0]).is_empty());

    // A file that no module declares is reported.
    let mut orphan = fixed;
    orphan.insert("ops/stray.rs".into(), String::new());
    let err = crate_graphs(&orphan, "t").err().unwrap();
    assert!(err.contains("ops/stray.rs"), "{err}");
}
