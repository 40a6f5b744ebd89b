//! The formatter's token stream: spec text in; its tokens (words, numbers, punctuation) out, each
//! carrying the comments around it, so the formatter can move tokens without losing a comment.
//! A comment on the same line after a token trails that token; any other comment leads the next
//! token (or the end of the file). Blank lines before tokens and comments are recorded: they
//! separate paragraphs.

/// A comment as written (line comments without their line break or trailing blanks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Comment {
    pub text: String,
    /// A `//` comment, which ends its line.
    pub line: bool,
    /// A blank line comes right before it.
    pub blank_before: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// Comments on lines of their own before the token.
    pub leading: Vec<Comment>,
    /// Comments after the token on its line.
    pub trailing: Vec<Comment>,
    /// A blank line comes right before the token (after its leading comments).
    pub blank_before: bool,
}

/// The tokens of `src` and the comments after the last token.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tokens {
    pub toks: Vec<Token>,
    pub eof: Vec<Comment>,
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits `src` (which the parser accepted) into tokens with their comments.
pub(crate) fn lex(src: &str) -> Result<Tokens, String> {
    let bytes = src.as_bytes();
    let mut out = Tokens::default();
    let mut pending: Vec<Comment> = Vec::new();
    // Newlines since the last token or comment, and whether one came since the last token.
    let mut newlines = 0usize;
    let mut line_since_token = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            newlines += 1;
            line_since_token = true;
            i += 1;
            continue;
        }
        if b == b' ' || b == b'\t' || b == b'\r' {
            i += 1;
            continue;
        }
        if b == b'/' && matches!(bytes.get(i + 1), Some(b'/') | Some(b'*')) {
            let line = bytes[i + 1] == b'/';
            let end = if line {
                src[i..].find('\n').map(|n| i + n).unwrap_or(src.len())
            } else {
                src[i + 2..]
                    .find("*/")
                    .map(|n| i + 2 + n + 2)
                    .ok_or_else(|| format!("unterminated comment at byte {i}"))?
            };
            let text = if line {
                src[i..end].trim_end().to_string()
            } else {
                src[i..end].to_string()
            };
            let c = Comment {
                text,
                line,
                blank_before: newlines >= 2,
            };
            match out.toks.last_mut() {
                Some(t) if !line_since_token => t.trailing.push(c),
                _ => pending.push(c),
            }
            newlines = 0;
            i = end;
            continue;
        }
        let start = i;
        if is_word_start(b) {
            while i < bytes.len() && is_word(bytes[i]) {
                i += 1;
            }
        } else if b.is_ascii_digit()
            || (b == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i = number_end(bytes, i);
        } else if b == b'#' && bytes.get(i + 1) == Some(&b'[') {
            i += 2;
        } else if b"()[]{},:=|+;".contains(&b) {
            i += 1;
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(format!("unexpected character `{ch}` at byte {i}"));
        }
        out.toks.push(Token {
            start,
            end: i,
            text: src[start..i].to_string(),
            leading: std::mem::take(&mut pending),
            trailing: Vec::new(),
            blank_before: newlines >= 2,
        });
        newlines = 0;
        line_since_token = false;
    }
    out.eof = pending;
    Ok(out)
}

/// The end of the number starting at `i`: `-`? digits (`.` digits)? (`e` sign? digits)?.
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    let digits = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    if bytes[i] == b'-' {
        i += 1;
    }
    i = digits(i);
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = digits(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e') | Some(b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+') | Some(b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            i = digits(j);
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_trail_or_lead() {
        let t = lex("a // one\n// two\n\n/* three */ b /* four */ c\n\n").unwrap();
        let texts: Vec<&str> = t.toks.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
        assert_eq!(t.toks[0].trailing[0].text, "// one");
        assert_eq!(t.toks[1].leading.len(), 2);
        assert!(t.toks[1].leading[1].blank_before);
        assert!(!t.toks[1].blank_before);
        assert_eq!(t.toks[1].trailing[0].text, "/* four */");
        assert!(t.eof.is_empty());
    }

    #[test]
    fn numbers_are_one_token() {
        let t = lex("f(-1, 2e-4, 1.5E+3, 0.25)").unwrap();
        let texts: Vec<&str> = t.toks.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            texts,
            ["f", "(", "-1", ",", "2e-4", ",", "1.5E+3", ",", "0.25", ")"]
        );
    }
}
