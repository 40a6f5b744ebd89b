//! The formatter's layout engine: a [`Doc`] (text, separators that may break, alignment
//! columns, comments) in; lines of text out. Layout is greedy: a soft separator breaks when
//! what follows it does not fit in [`WIDTH`] columns; hard separators (line breaks the author
//! wrote) always break. Whether something fits is judged on its flat width, which does not
//! depend on the breaks inside it, so formatting a formatted spec changes nothing. Trailing
//! comments on consecutive lines share a column, two past the longest line's code (a line opening
//! or closing a block keeps its own).

use super::lex::Comment;

/// The widest a line may get before a separator breaks.
pub const WIDTH: usize = 100;

/// How an item of a [`Doc::Fill`] is separated from the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sep {
    /// Nothing (the first item).
    None,
    /// A space; a line break only after a line comment.
    Space,
    /// A space, or a line break when the item does not fit.
    Soft,
    /// A line break.
    Hard,
}

#[derive(Debug, Clone)]
pub(crate) enum Doc {
    Text(String),
    Seq(Vec<Doc>),
    /// Breaks inside align to the column where this starts, plus the offset.
    Align(usize, Box<Doc>),
    /// Breaks inside indent this many columns more than the enclosing indentation.
    Nest(usize, Box<Doc>),
    /// Items with separators that break at the enclosing indentation.
    Fill(Vec<(Sep, Doc)>),
    /// A line break at the enclosing indentation.
    Hardline,
    /// One empty line before the next line with text.
    Blank,
    /// A comment on its own line.
    Leading(Comment),
    /// A comment after code on its line.
    Trailing(Comment),
}

impl Doc {
    pub fn text(s: impl Into<String>) -> Doc {
        Doc::Text(s.into())
    }
    pub fn align(off: usize, d: Doc) -> Doc {
        Doc::Align(off, Box::new(d))
    }
    pub fn nest(n: usize, d: Doc) -> Doc {
        Doc::Nest(n, Box::new(d))
    }
}

/// Display columns of a text (code points; the grammar's tokens are ASCII).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// A width no line has: what does not fit anywhere.
const NEVER_FITS: usize = usize::MAX / 4;

/// The width of a doc laid out on one line (comments on lines of their own never fit).
fn flat_width(d: &Doc) -> usize {
    match d {
        Doc::Text(s) => width(s),
        Doc::Seq(v) => v.iter().map(flat_width).fold(0, usize::saturating_add),
        Doc::Align(_, d) | Doc::Nest(_, d) => flat_width(d),
        Doc::Fill(items) => items
            .iter()
            .map(|(s, d)| flat_width(d).saturating_add(usize::from(*s != Sep::None)))
            .fold(0, usize::saturating_add),
        Doc::Hardline | Doc::Blank => 0,
        Doc::Leading(_) => NEVER_FITS,
        Doc::Trailing(c) if c.line => 0,
        Doc::Trailing(c) => width(&c.text) + 1,
    }
}

struct Line {
    indent: usize,
    code: String,
    comment: Option<String>,
}

#[derive(Default)]
struct Printer {
    lines: Vec<Line>,
    indent: usize,
    code: String,
    comment: Option<String>,
    /// A line comment ended the line: the next text starts a new one.
    pending_break: bool,
    /// An inline block comment was just written: the next text is spaced from it.
    after_block: bool,
    want_blank: bool,
}

impl Printer {
    fn has_content(&self) -> bool {
        !self.code.trim().is_empty() || self.comment.is_some()
    }

    fn column(&self) -> usize {
        match self.code.rfind('\n') {
            Some(i) => width(&self.code[i + 1..]),
            None => self.indent + width(&self.code),
        }
    }

    fn flush(&mut self) {
        if self.has_content() {
            if self.want_blank && !self.lines.is_empty() {
                self.lines.push(Line {
                    indent: 0,
                    code: String::new(),
                    comment: None,
                });
            }
            self.want_blank = false;
            self.lines.push(Line {
                indent: self.indent,
                code: std::mem::take(&mut self.code),
                comment: self.comment.take(),
            });
        } else {
            self.code.clear();
        }
    }

    fn newline(&mut self, indent: usize) {
        self.flush();
        self.indent = indent;
        self.pending_break = false;
        self.after_block = false;
    }

    fn text(&mut self, s: &str, indent: usize) {
        if s.is_empty() {
            return;
        }
        let mut s = s;
        if self.pending_break {
            self.newline(indent);
            s = s.trim_start();
        }
        if self.after_block && !s.starts_with(' ') {
            self.code.push(' ');
        }
        self.after_block = false;
        self.code.push_str(s);
    }

    fn print(&mut self, d: &Doc, indent: usize) {
        match d {
            Doc::Text(s) => self.text(s, indent),
            Doc::Seq(v) => v.iter().for_each(|d| self.print(d, indent)),
            Doc::Align(off, d) => {
                let col = self.column() + off;
                self.print(d, col);
            }
            Doc::Nest(n, d) => self.print(d, indent + n),
            Doc::Fill(items) => {
                for (sep, d) in items {
                    match sep {
                        Sep::None => {}
                        Sep::Space => self.text(" ", indent),
                        Sep::Hard => self.newline(indent),
                        Sep::Soft => {
                            let fits = self.column() + 1 + flat_width(d) <= WIDTH;
                            if self.pending_break || !fits {
                                self.newline(indent);
                            } else {
                                self.text(" ", indent);
                            }
                        }
                    }
                    self.print(d, indent);
                }
            }
            Doc::Hardline => self.newline(indent),
            Doc::Blank => {
                self.flush();
                self.want_blank = true;
            }
            Doc::Leading(c) => {
                if self.has_content() {
                    self.newline(indent);
                }
                self.after_block = false;
                self.code.push_str(&c.text);
                self.pending_break = true;
            }
            Doc::Trailing(c) if c.line => {
                if self.code.trim().is_empty() || self.comment.is_some() {
                    // Nothing to trail on this line: the comment gets a line of its own.
                    if self.has_content() {
                        self.newline(indent);
                    }
                    self.code.push_str(&c.text);
                } else {
                    self.comment = Some(c.text.clone());
                }
                self.pending_break = true;
            }
            Doc::Trailing(c) => {
                if self.pending_break {
                    self.newline(indent);
                } else if !self.code.is_empty() {
                    self.code.push(' ');
                }
                self.code.push_str(&c.text);
                self.after_block = true;
            }
        }
    }
}

/// Lays out a doc: the formatted text, ending in one line break (empty for an empty doc).
pub(crate) fn print(d: &Doc) -> String {
    let mut p = Printer::default();
    p.print(d, 0);
    p.flush();
    let lines = p.lines;
    // Trailing comments on consecutive lines share a column.
    let mut cols = vec![0usize; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if lines[i].comment.is_none() {
            i += 1;
            continue;
        }
        // A line that opens or closes a block keeps its comment to itself.
        let alone = |l: &Line| l.code.ends_with('{') || l.code.starts_with('}');
        let mut j = i;
        let mut col = 0;
        while j < lines.len() && lines[j].comment.is_some() {
            col = col.max(code_width(&lines[j]) + 2);
            j += 1;
            if alone(&lines[j - 1]) || lines.get(j).is_some_and(alone) {
                break;
            }
        }
        cols[i..j].iter_mut().for_each(|c| *c = col);
        i = j;
    }
    let mut out = String::new();
    for (l, col) in lines.iter().zip(cols) {
        let mut s = " ".repeat(l.indent);
        s.push_str(&l.code);
        if let Some(c) = &l.comment {
            let pad = col.saturating_sub(code_width(l)).max(1);
            s.push_str(&" ".repeat(pad));
            s.push_str(c);
        }
        for (k, part) in s.split('\n').enumerate() {
            if k > 0 {
                out.push('\n');
            }
            out.push_str(part.trim_end());
        }
        out.push('\n');
    }
    if out.trim().is_empty() {
        out.clear();
    }
    out
}

fn code_width(l: &Line) -> usize {
    match l.code.rfind('\n') {
        Some(i) => width(&l.code[i + 1..]),
        None => l.indent + width(&l.code),
    }
}
