//! The `multiline_start` value: an anchored, byte-oriented line-start pattern (no regex engine).
//! `\d` digit, `\w` letter/digit/`_`, `\s` space or tab, `\S` anything else, `.` any byte, `\`
//! escapes the next character, everything else matches itself. Pure; no I/O.

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    Digit,
    Word,
    Blank,
    NonBlank,
    Any,
}

/// A file source's `multiline_start`: compiled when the config is read (a bad pattern is an error
/// located at its key), matched by the file source's line joiner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPattern {
    tokens: Vec<Token>,
}

impl StartPattern {
    /// Compiles a pattern; errors name the problem.
    pub fn parse(pattern: &str) -> Result<StartPattern, String> {
        let mut tokens = Vec::new();
        let mut bytes = pattern.bytes();
        while let Some(b) = bytes.next() {
            tokens.push(match b {
                b'\\' => match bytes.next() {
                    Some(b'd') => Token::Digit,
                    Some(b'w') => Token::Word,
                    Some(b's') => Token::Blank,
                    Some(b'S') => Token::NonBlank,
                    Some(b't') => Token::Byte(b'\t'),
                    Some(other) if !other.is_ascii_alphanumeric() => Token::Byte(other),
                    Some(other) => {
                        return Err(format!(
                            "unknown escape `\\{}` in pattern `{pattern}` (use \\d \\w \\s \\S \\t, or \\ before punctuation)",
                            other as char
                        ));
                    }
                    None => return Err(format!("pattern `{pattern}` ends with a lone `\\`")),
                },
                b'.' => Token::Any,
                other => Token::Byte(other),
            });
        }
        if tokens.is_empty() {
            return Err("the pattern is empty".to_string());
        }
        Ok(StartPattern { tokens })
    }

    /// Whether `line` begins with the pattern.
    pub fn matches(&self, line: &[u8]) -> bool {
        line.len() >= self.tokens.len()
            && self.tokens.iter().zip(line).all(|(t, &b)| match *t {
                Token::Byte(x) => b == x,
                Token::Digit => b.is_ascii_digit(),
                Token::Word => b.is_ascii_alphanumeric() || b == b'_',
                Token::Blank => b == b' ' || b == b'\t',
                Token::NonBlank => b != b' ' && b != b'\t',
                Token::Any => true,
            })
    }
}

impl<'de> Deserialize<'de> for StartPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        StartPattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = StartPattern::parse(r"\d\d\d\d-\d\d-\d\d ").unwrap();
        assert!(p.matches(b"2024-01-02 ERROR boom"));
        assert!(!p.matches(b"\tat com.example.Foo(Foo.java:1)"));
        assert!(!p.matches(b"2024-01-0"));
        let p = StartPattern::parse(r"\S").unwrap();
        assert!(p.matches(b"x"));
        assert!(!p.matches(b" x"));
        let p = StartPattern::parse(r"\[.\]").unwrap();
        assert!(p.matches(b"[x] y"));
        assert!(StartPattern::parse(r"\q").is_err());
        assert!(StartPattern::parse("\\").is_err());
        assert!(StartPattern::parse("").is_err());
    }
}
