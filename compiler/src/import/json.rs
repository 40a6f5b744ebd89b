//! Where things are in a JSON object's text: the byte spans of each top-level entry (key,
//! value, the whole `"key": value`) and of each array item, so findings and errors about a
//! `config.json` point at the line that sets the value, and fixes edit that value in place.
//! The values themselves are read with serde_json; this scanner only follows the structure.

use crate::ast::Span;

/// One top-level `"key": value` of an object.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    /// The quoted key.
    pub key_span: Span,
    /// The value's text (a string with its quotes).
    pub value_span: Span,
    /// For an array value: each item's span.
    pub items: Vec<Span>,
}

impl Entry {
    /// `"key": value`.
    pub fn span(&self) -> Span {
        Span::new(self.key_span.start, self.value_span.end)
    }
}

/// A JSON object's layout.
#[derive(Debug, Clone)]
pub struct Layout {
    pub entries: Vec<Entry>,
    /// The opening `{`.
    pub open: Span,
    /// The closing `}`.
    pub close: Span,
}

impl Layout {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

type Fail = (Span, String);

impl Scanner<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn fail<T>(&self, what: &str) -> Result<T, Fail> {
        let at = self.i.min(self.s.len());
        let end = (at + 1).min(self.s.len()).max(at);
        Err((Span::new(at, end), what.to_string()))
    }
    fn string(&mut self) -> Result<Span, Fail> {
        let start = self.i;
        self.i += 1;
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Ok(Span::new(start, self.i));
                }
                _ => self.i += 1,
            }
        }
        self.i = start;
        self.fail("an unterminated string")
    }
    /// A value; for an array, its items' spans.
    fn value(&mut self, depth: usize) -> Result<(Span, Vec<Span>), Fail> {
        if depth > 128 {
            return self.fail("nesting deeper than 128 levels");
        }
        self.ws();
        let start = self.i;
        match self.s.get(self.i) {
            Some(b'"') => Ok((self.string()?, Vec::new())),
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok((Span::new(start, self.i), Vec::new()));
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return self.fail("a key in quotes");
                    }
                    self.string()?;
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return self.fail("`:` after the key");
                    }
                    self.i += 1;
                    self.value(depth + 1)?;
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok((Span::new(start, self.i), Vec::new()));
                        }
                        _ => return self.fail("`,` or `}`"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok((Span::new(start, self.i), items));
                }
                loop {
                    let (item, _) = self.value(depth + 1)?;
                    items.push(item);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok((Span::new(start, self.i), items));
                        }
                        _ => return self.fail("`,` or `]`"),
                    }
                }
            }
            Some(_) => {
                while self.i < self.s.len()
                    && !matches!(self.s[self.i], b',' | b'}' | b']')
                    && !self.s[self.i].is_ascii_whitespace()
                {
                    self.i += 1;
                }
                if self.i == start {
                    return self.fail("a value");
                }
                Ok((Span::new(start, self.i), Vec::new()))
            }
            None => self.fail("a value"),
        }
    }
}

/// The layout of the object `text` holds. The text must already be valid JSON (serde_json
/// says why not); this fails only where it is not an object.
pub fn layout(text: &str) -> Result<Layout, Fail> {
    let mut sc = Scanner {
        s: text.as_bytes(),
        i: 0,
    };
    sc.ws();
    if sc.s.get(sc.i) != Some(&b'{') {
        return sc.fail("a JSON object `{ ... }`");
    }
    let open = Span::new(sc.i, sc.i + 1);
    sc.i += 1;
    let mut entries = Vec::new();
    loop {
        sc.ws();
        match sc.s.get(sc.i) {
            Some(b'}') => {
                let close = Span::new(sc.i, sc.i + 1);
                return Ok(Layout {
                    entries,
                    open,
                    close,
                });
            }
            Some(b'"') => {}
            _ => return sc.fail("a key in quotes"),
        }
        let key_span = sc.string()?;
        let key: String = serde_json::from_str(&text[key_span.start..key_span.end])
            .map_err(|_| (key_span, "a valid key".to_string()))?;
        sc.ws();
        if sc.s.get(sc.i) != Some(&b':') {
            return sc.fail("`:` after the key");
        }
        sc.i += 1;
        let (value_span, items) = sc.value(0)?;
        entries.push(Entry {
            key,
            key_span,
            value_span,
            items,
        });
        sc.ws();
        match sc.s.get(sc.i) {
            Some(b',') => sc.i += 1,
            Some(b'}') => {}
            _ => return sc.fail("`,` or `}`"),
        }
    }
}

/// The byte offset of serde_json's 1-based line and column.
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    (start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_values_and_items_have_their_spans() {
        let text = "{\n  \"a\": 1,\n  \"b\": [1, \"x,]\", {\"c\": 2}],\n  \"d\": \"q\\\"\"\n}\n";
        let l = layout(text).unwrap();
        let keys: Vec<&str> = l.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "d"]);
        let at = |s: Span| &text[s.start..s.end];
        assert_eq!(at(l.get("a").unwrap().value_span), "1");
        let b = l.get("b").unwrap();
        assert_eq!(at(b.value_span), "[1, \"x,]\", {\"c\": 2}]");
        let items: Vec<&str> = b.items.iter().map(|&s| at(s)).collect();
        assert_eq!(items, ["1", "\"x,]\"", "{\"c\": 2}"]);
        assert_eq!(at(l.get("d").unwrap().span()), "\"d\": \"q\\\"\"");
        assert_eq!(at(l.close), "}");
    }

    #[test]
    fn a_non_object_is_refused() {
        assert!(layout("[1, 2]").is_err());
        assert!(layout("").is_err());
    }

    #[test]
    fn serde_positions_become_offsets() {
        assert_eq!(offset_of("ab\ncd", 2, 2), 4);
        assert_eq!(offset_of("ab", 5, 1), 2);
    }
}
