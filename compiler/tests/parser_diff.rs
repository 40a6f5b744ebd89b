//! The hand-written parser against pest, the reference: on every text, both accept it and build
//! the same AST (spans included), or both reject it. The texts: every spec of the repository's
//! corpora (reference specs, lint fixtures, error cases, emitter and training specs, the
//! imported diffusers configs), each formatted, cut and with every character deleted, and
//! generated texts: random walks of the grammar with random whitespace and comments between
//! tokens (mostly valid), and those texts mutated (mostly invalid).

use proptest::prelude::*;
use std::path::Path;
use tdspec_compiler::syntax::{parse, parse_fast, parse_with_pest};

/// Both parsers agree on `src`; whether it parses.
fn agree(src: &str) -> bool {
    let fast = parse_fast(src);
    let pest = parse_with_pest(src);
    match (&fast, &pest) {
        (Some(a), Ok(b)) => assert!(
            a == b,
            "different ASTs for {src:?}\nfast: {a:#?}\npest: {b:#?}"
        ),
        (None, Err(_)) => {}
        (Some(_), Err(e)) => panic!("only the fast parser accepts {src:?} (pest: {e:?})"),
        (None, Ok(_)) => panic!("only pest accepts {src:?}"),
    }
    // What callers get is pest's answer, its error included.
    assert_eq!(parse(src), pest, "{src:?}");
    pest.is_ok()
}

fn corpus() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dirs = [
        "specs",
        "compiler/tests/lint_fixtures",
        "tests/errors",
        "tests/emit_specs",
        "tests/train_specs",
        "tests/diffusers",
        "experiments/specs",
        "runtime/specs",
        "editors/vscode/test",
    ];
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(d)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let name = p.display().to_string();
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            if name.ends_with(".tds") {
                out.push((name, text));
            } else if name.ends_with(".config.json") {
                let model = tdspec_compiler::import::diffusers::model_name("imported");
                if let Ok((imp, _)) =
                    tdspec_compiler::import::diffusers::check_config(&text, &model, &name)
                {
                    out.push((format!("{name} (imported)"), imp.spec));
                }
            }
        }
    }
    assert!(out.len() > 80, "the corpora hold {} specs", out.len());
    out
}

#[test]
fn both_parsers_agree_on_every_corpus_spec_formatted_and_cut() {
    let (mut valid, mut invalid) = (0, 0);
    for (name, text) in corpus() {
        let ok = agree(&text);
        if name.starts_with("specs/") || name.contains("/specs/") {
            assert!(ok, "{name} parses");
        }
        if let Ok(formatted) = tdspec_compiler::fmt::format_source(&text) {
            assert!(agree(&formatted), "{name} formatted parses");
        }
        // Every prefix ending at a line break or a token boundary: mostly invalid.
        for (i, c) in text.char_indices() {
            if matches!(c, '\n' | ')' | ',' | '(' | '|') {
                match agree(&text[..i]) {
                    true => valid += 1,
                    false => invalid += 1,
                }
            }
        }
    }
    assert!(
        valid > 0 && invalid > 1000,
        "{valid} valid, {invalid} invalid prefixes"
    );
}

#[test]
fn both_parsers_agree_with_any_one_character_deleted() {
    let (mut valid, mut invalid) = (0, 0);
    for name in [
        "ddpm_cifar10",
        "odenet_mnist",
        "small_ddpm_mnist_scale_shift",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../specs/{name}.tds"));
        let text = std::fs::read_to_string(path).expect("reference spec");
        for (i, c) in text.char_indices() {
            let cut = format!("{}{}", &text[..i], &text[i + c.len_utf8()..]);
            match agree(&cut) {
                true => valid += 1,
                false => invalid += 1,
            }
        }
    }
    // Deleting a space or a comment's letter keeps a spec valid; deleting a bracket does not.
    assert!(
        valid > 500 && invalid > 100,
        "{valid} valid, {invalid} invalid"
    );
}

/// A random walk of the grammar: the text of a file, with random whitespace and comments (and,
/// rarely, a reserved word as a name) between its tokens.
struct Gen {
    state: u64,
    out: String,
}

const NAMES: [&str; 16] = [
    "x", "h", "temb", "conv", "group", "a_1", "_b", "Block9", "time", "input", "task", "train",
    "asx", "modelx", "returned", "as_",
];
const RESERVED: [&str; 5] = ["model", "embed", "block", "return", "as"];
const NUMBERS: [&str; 9] = [
    "0", "12", "-1", "0.5", "2e-4", "1.5E+3", "-3.25e10", "007", "1e5",
];
const SPACES: [&str; 10] = [
    "",
    "",
    "",
    " ",
    "\n    ",
    " // note\n",
    "/* c */",
    "\t\r\n",
    "/**/",
    "//\n",
];

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            out: String::new(),
        }
    }
    fn pick(&mut self, n: usize) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % n as u64) as usize
    }
    /// A token, separated from the one before it where the two would run together.
    fn tok(&mut self, t: &str) {
        let last = self.out.chars().last();
        let joins = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
        let first = t.chars().next();
        if last.is_some_and(joins) && first.is_some_and(joins) {
            self.out.push(' ');
        }
        self.out.push_str(t);
        let s = SPACES[self.pick(SPACES.len())];
        self.out.push_str(s);
    }
    fn name(&mut self) {
        let n = if self.pick(500) == 0 {
            RESERVED[self.pick(RESERVED.len())]
        } else {
            NAMES[self.pick(NAMES.len())]
        };
        self.tok(n);
    }
    fn list(&mut self, open: &str, close: &str, depth: usize, item: fn(&mut Gen, usize)) {
        self.tok(open);
        let n = self.pick(4);
        for i in 0..n {
            if i > 0 {
                self.tok(",");
            }
            item(self, depth);
        }
        if n > 0 && self.pick(4) == 0 {
            self.tok(",");
        }
        self.tok(close);
    }
    fn expr(&mut self, depth: usize) {
        let stages = 1 + self.pick(3);
        for i in 0..stages {
            if i > 0 {
                self.tok("|");
            }
            let terms = 1 + self.pick(2);
            for j in 0..terms {
                if j > 0 {
                    self.tok("+");
                }
                self.atom(depth);
                if self.pick(6) == 0 {
                    self.tok("as");
                    self.name();
                }
            }
        }
    }
    fn atom(&mut self, depth: usize) {
        let choice = if depth >= 3 {
            1 + self.pick(2)
        } else {
            self.pick(7)
        };
        match choice {
            0 | 6 => {
                self.name();
                self.list("(", ")", depth + 1, Gen::arg);
            }
            1 => {
                let n = NUMBERS[self.pick(NUMBERS.len())];
                self.tok(n);
            }
            2 => self.name(),
            3 => self.list("[", "]", depth + 1, Gen::expr),
            4 => self.list("{", "}", depth + 1, |g, d| {
                g.name();
                g.tok(":");
                g.expr(d);
            }),
            _ => {
                self.tok("(");
                self.expr(depth + 1);
                self.tok(")");
            }
        }
    }
    fn arg(&mut self, depth: usize) {
        if self.pick(2) == 0 {
            self.name();
            self.tok("=");
        }
        self.expr(depth);
    }
    fn stmt(&mut self, depth: usize) {
        for _ in 0..self.pick(4).saturating_sub(2) {
            self.tok("#[");
            self.name();
            if self.pick(2) == 0 {
                self.tok("(");
                for i in 0..1 + self.pick(3) {
                    if i > 0 {
                        self.tok(",");
                    }
                    self.name();
                }
                self.tok(")");
            }
            self.tok("]");
        }
        match self.pick(10) {
            0 => {
                self.tok("input");
                self.name();
                self.tok(":");
                self.name();
                self.tok("[");
                for i in 0..1 + self.pick(3) {
                    if i > 0 {
                        self.tok(",");
                    }
                    let n = NUMBERS[self.pick(NUMBERS.len())];
                    self.tok(n);
                }
                self.tok("]");
            }
            1 => {
                self.tok("time");
                self.name();
                self.tok(":");
                for i in 0..1 + self.pick(3) {
                    if i > 0 {
                        self.tok(",");
                    }
                    self.expr(depth + 1);
                }
            }
            2 => {
                self.tok("embed");
                self.name();
                self.tok("=");
                self.expr(depth + 1);
            }
            3 if depth < 2 => {
                self.tok("block");
                self.name();
                let param = |g: &mut Gen, d: usize| {
                    g.name();
                    if g.pick(3) == 0 {
                        g.tok("=");
                        g.expr(d);
                    }
                };
                self.list("(", ")", depth + 1, param);
                if self.pick(2) == 0 {
                    self.list("(", ")", depth + 1, param);
                }
                self.tok("{");
                for _ in 0..self.pick(4) {
                    self.stmt(depth + 1);
                }
                self.tok("}");
            }
            4 => {
                self.tok("task");
                self.name();
                self.list("(", ")", depth + 1, Gen::arg);
            }
            5 => {
                self.tok("train");
                self.list("(", ")", depth + 1, Gen::arg);
            }
            6 => {
                self.tok("return");
                self.expr(depth + 1);
            }
            7 | 8 => {
                self.name();
                self.tok("=");
                self.expr(depth + 1);
            }
            _ => self.expr(depth + 1),
        }
        if self.pick(3) == 0 {
            self.tok(";");
        }
    }
    fn file(seed: u64) -> String {
        let mut g = Gen::new(seed);
        let s = SPACES[g.pick(SPACES.len())];
        g.out.push_str(s);
        for _ in 0..1 + g.pick(2) {
            g.tok("model");
            g.name();
            g.tok("{");
            for _ in 0..g.pick(8) {
                g.stmt(0);
            }
            g.tok("}");
        }
        g.out
    }
}

/// Pieces a mutation inserts: brackets, operators, half-tokens, unclosed comments, non-ASCII.
const PIECES: [&str; 24] = [
    "(", ")", "=", "==", ",", ";", "as", "model", "#[", "]", "/*", "//", "1.", "1e", "-", "x", " ",
    "\n", "é", "\0", "{", "}", ":", "|",
];

#[test]
fn generated_texts_are_mostly_valid_and_both_parsers_agree() {
    let valid = (0..2000u64).filter(|s| agree(&Gen::file(*s))).count();
    assert!(valid > 1000, "{valid} of 2000 generated texts parse");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn generated_texts_agree(seed in any::<u64>()) {
        agree(&Gen::file(seed));
    }

    #[test]
    fn mutated_generated_texts_agree(seed in any::<u64>(), at in 0usize..400, len in 0usize..6, piece in 0usize..24) {
        let text = Gen::file(seed);
        let mut start = at.min(text.len());
        while !text.is_char_boundary(start) { start -= 1; }
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) { end -= 1; }
        agree(&format!("{}{}{}", &text[..start], PIECES[piece], &text[end..]));
    }
}
