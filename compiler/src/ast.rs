//! The abstract syntax tree of a `.tds` spec: what the parser produces and semantic analysis
//! consumes. Every node carries the byte [`Span`] of the source text it came from, so later
//! stages can point diagnostics at exactly what the user wrote.

use serde::Serialize;

/// A half-open byte range `start..end` into the spec source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn contains(&self, other: Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

/// A name as written, with its span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct File {
    pub models: Vec<Model>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    pub name: Ident,
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

/// `#[allow(TD102, TD104)]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attr {
    pub name: Ident,
    pub args: Vec<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stmt {
    pub attrs: Vec<Attr>,
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum StmtKind {
    /// `input x: image[3, 32, 32]`
    Input {
        name: Ident,
        kind: Ident,
        dims: Vec<Expr>,
    },
    /// `time t: step(1000), per_sample`
    Time {
        name: Ident,
        props: Vec<Expr>,
    },
    /// `embed temb = sinusoidal(128) | linear(512)`
    Embed {
        name: Ident,
        value: Expr,
    },
    Block(BlockDef),
    /// `task denoise(...)`
    Task(Call),
    /// `train(...)`
    Train {
        args: Vec<Arg>,
        span: Span,
    },
    Return(Expr),
    Assign {
        name: Ident,
        value: Expr,
    },
    Expr(Expr),
}

/// `block res(out, drop = 0.1)(h) { ... }`; with a single parameter list, the list names the
/// block's inputs and the block has no parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockDef {
    pub name: Ident,
    pub params: Vec<Param>,
    pub inputs: Vec<Param>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExprKind {
    /// `a | b | c`: at least two elements.
    Pipe(Vec<Expr>),
    /// `a + b`: at least two terms.
    Sum(Vec<Expr>),
    /// `conv3(64) as conv1`
    Labeled(Box<Expr>, Ident),
    Call(Call),
    /// The number's value and its text as written.
    Number(f64, String),
    Ident(String),
    List(Vec<Expr>),
    Record(Vec<(Ident, Expr)>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

impl Expr {
    /// The identifier this expression is, if it is a bare identifier.
    pub fn as_ident(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Ident(s) => Some(s),
            _ => None,
        }
    }
    /// A short description of what kind of expression this is, for "expected X, found Y".
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            ExprKind::Pipe(_) => "a pipeline",
            ExprKind::Sum(_) => "a sum",
            ExprKind::Labeled(..) => "a labeled layer",
            ExprKind::Call(_) => "a call",
            ExprKind::Number(..) => "a number",
            ExprKind::Ident(_) => "a name",
            ExprKind::List(_) => "a list",
            ExprKind::Record(_) => "a record",
        }
    }
}
