//! Module trees: the submodules of a class by their dotted paths, rendered as attributes,
//! `nn.ModuleDict`s, `nn.ModuleList`s and `nn.Sequential`s, and the Python expression that
//! reaches one of them from `self`.

use super::names::safe_attr;
use crate::emit::{EmitError, EmitResult as R};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A layer's constructor: one expression, or the items of an `nn.Sequential`.
pub(super) enum Ctor {
    Plain(String),
    Seq(Vec<String>),
}

pub(super) enum Tree {
    Leaf(Ctor),
    Dir(BTreeMap<String, Tree>, Vec<String>),
}

impl Tree {
    pub(super) fn new() -> Self {
        Tree::Dir(BTreeMap::new(), Vec::new())
    }

    pub(super) fn insert(&mut self, path: &[&str], ctor: Ctor) -> R<()> {
        let Tree::Dir(map, order) = self else {
            return EmitError::err("a layer's name is also used as a group of layers");
        };
        let (head, rest) = match path.split_first() {
            Some(x) => x,
            None => return EmitError::err("an empty layer name"),
        };
        if rest.is_empty() {
            if map.contains_key(*head) {
                return EmitError::err(format!("two layers are named `{head}`"));
            }
            order.push(head.to_string());
            map.insert(head.to_string(), Tree::Leaf(ctor));
            return Ok(());
        }
        if !map.contains_key(*head) {
            order.push(head.to_string());
            map.insert(head.to_string(), Tree::new());
        }
        map.get_mut(*head)
            .map(|t| t.insert(rest, ctor))
            .unwrap_or_else(|| EmitError::err("internal: lost a module group"))
    }

    fn is_list(map: &BTreeMap<String, Tree>) -> bool {
        (0..map.len()).all(|i| map.contains_key(&i.to_string()))
    }

    /// The constructor expression, indented for continuation lines at `indent`.
    pub(super) fn render(&self, indent: usize) -> String {
        match self {
            Tree::Leaf(Ctor::Plain(s)) => s.clone(),
            Tree::Leaf(Ctor::Seq(items)) => seq_ctor(items, indent),
            Tree::Dir(map, order) => {
                let pad = " ".repeat(indent + 4);
                let list = Self::is_list(map);
                let items: Vec<String> = if list {
                    (0..map.len())
                        .map(|i| map[&i.to_string()].render(indent + 4))
                        .collect()
                } else {
                    order
                        .iter()
                        .map(|k| format!("{k:?}: {}", map[k].render(indent + 4)))
                        .collect()
                };
                let (open, close) = if list {
                    ("nn.ModuleList([", "])")
                } else {
                    ("nn.ModuleDict({", "})")
                };
                let one = format!("{open}{}{close}", items.join(", "));
                if one.len() + indent < 88 && !one.contains('\n') {
                    one
                } else {
                    let mut s = open.to_string();
                    for it in items {
                        let _ = write!(s, "\n{pad}{it},");
                    }
                    let _ = write!(s, "\n{}{close}", " ".repeat(indent));
                    s
                }
            }
        }
    }

    /// Python access to the module at `path` from `self`.
    pub(super) fn access(&self, path: &[&str]) -> String {
        let mut s = "self".to_string();
        let mut cur = self;
        for (i, c) in path.iter().enumerate() {
            let Tree::Dir(map, _) = cur else { break };
            if i > 0 && Self::is_list(map) {
                let _ = write!(s, "[{c}]");
            } else if safe_attr(c) {
                let _ = write!(s, ".{c}");
            } else {
                let _ = write!(s, "[{c:?}]");
            }
            match map.get(*c) {
                Some(t) => cur = t,
                None => break,
            }
        }
        s
    }
}

fn seq_ctor(items: &[String], indent: usize) -> String {
    let one = format!("nn.Sequential({})", items.join(", "));
    if one.len() + indent < 88 {
        return one;
    }
    let pad = " ".repeat(indent + 4);
    let mut s = "nn.Sequential(".to_string();
    for it in items {
        let _ = write!(s, "\n{pad}{it},");
    }
    let _ = write!(s, "\n{})", " ".repeat(indent));
    s
}
