//! Positions: byte offsets into a document (what the compiler's spans hold) to and from LSP
//! positions (a line and a column in UTF-16 code units, the protocol's default encoding), and
//! incremental edits applied to a document's text.

use lsp_types::{Position, Range};

/// Line starts of a text, for offset and position conversions.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    /// The position of a byte offset (clamped to the text, rounded down to a character).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(self.len);
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let col: usize = text[self.starts[line]..offset]
            .chars()
            .map(char::len_utf16)
            .sum();
        Position::new(line as u32, col as u32)
    }

    pub fn range(&self, text: &str, start: usize, end: usize) -> Range {
        Range::new(self.position(text, start), self.position(text, end))
    }

    /// The byte offset of a position; columns past the end of a line clamp to its end, lines
    /// past the end to the end of the text, and a column inside a surrogate pair to the
    /// character's start.
    pub fn offset(&self, text: &str, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.len;
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .map_or(self.len, |&e| e - 1);
        let mut units = 0usize;
        for (i, c) in text[start..end].char_indices() {
            if units + c.len_utf16() > pos.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }
}

/// Applies an edit (`range` replaced by `new`; the whole text when `range` is `None`).
pub fn apply_change(text: &mut String, range: Option<Range>, new: &str) {
    match range {
        None => *text = new.to_string(),
        Some(r) => {
            let index = LineIndex::new(text);
            let a = index.offset(text, r.start);
            let b = index.offset(text, r.end).max(a);
            text.replace_range(a..b, new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_utf16_units() {
        // `·` is one UTF-16 unit (two bytes), `😀` two units (four bytes).
        let text = "a·b\n😀x\n";
        let ix = LineIndex::new(text);
        assert_eq!(ix.position(text, 3), Position::new(0, 2)); // `b`
        assert_eq!(ix.position(text, 9), Position::new(1, 2)); // `x`
        assert_eq!(ix.offset(text, Position::new(1, 2)), 9);
        assert_eq!(ix.offset(text, Position::new(1, 1)), 5); // inside the pair: its start
        assert_eq!(ix.offset(text, Position::new(0, 99)), 4); // past the line: its end
        assert_eq!(ix.offset(text, Position::new(9, 0)), text.len());
        for off in [0, 1, 3, 4, 5, 9, 10, 11] {
            assert_eq!(ix.offset(text, ix.position(text, off)), off, "{off}");
        }
    }

    #[test]
    fn edits_apply_at_utf16_positions() {
        let mut t = "// t·J\nh = x\n".to_string();
        apply_change(
            &mut t,
            Some(Range::new(Position::new(0, 5), Position::new(0, 6))),
            "P",
        );
        assert_eq!(t, "// t·P\nh = x\n");
        apply_change(&mut t, None, "x");
        assert_eq!(t, "x");
    }
}
