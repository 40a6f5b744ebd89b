//! Python names and literals: identifiers for spec names and paths, class names, submodule
//! names that are safe as attributes, float literals.

pub(super) fn py_float(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

pub(super) const PY_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "self", "torch", "nn", "F", "math", "odeint",
];

/// Attributes of nn.Module / nn.ModuleDict a submodule name must not shadow.
pub(super) const MODULE_ATTRS: &[&str] = &[
    "training",
    "forward",
    "train",
    "eval",
    "to",
    "cuda",
    "cpu",
    "float",
    "double",
    "half",
    "type",
    "apply",
    "modules",
    "children",
    "parameters",
    "buffers",
    "state_dict",
    "load_state_dict",
    "named_modules",
    "named_children",
    "named_parameters",
    "named_buffers",
    "zero_grad",
    "add_module",
    "register_buffer",
    "register_parameter",
    "extra_repr",
    "keys",
    "items",
    "values",
    "update",
    "pop",
    "clear",
    "requires_grad_",
    "share_memory",
    "dump_patches",
    "call_super_init",
    "get_submodule",
    "bfloat16",
    "ipu",
    "xpu",
    "mtia",
    "compile",
];

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

pub(super) fn safe_attr(s: &str) -> bool {
    is_ident(s) && !PY_KEYWORDS.contains(&s) && !MODULE_ATTRS.contains(&s) && !s.starts_with("__")
}

/// A Python identifier for a spec name or path.
pub(super) fn py_ident(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("v_{out}");
    }
    if PY_KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

pub(super) fn camel(s: &str) -> String {
    let mut out = String::new();
    for part in s.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut ch = part.chars();
        if let Some(f) = ch.next() {
            out.extend(f.to_uppercase());
            out.push_str(ch.as_str());
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("M{out}");
    }
    out
}
