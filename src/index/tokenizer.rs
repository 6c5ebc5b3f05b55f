//! The `log_words` tokenizer for the full-text fields (`message`, `path`).
//!
//! Byte-oriented: a word is a run of ASCII letters and digits (non-ASCII bytes count as letters,
//! so UTF-8 text stays whole), lowercased. Not indexed as words:
//! - words made only of digits (ports, byte counts, durations, timestamp parts, IP octets);
//! - identifiers: words of [`MIN_ID_LEN`] bytes or more that contain a digit (transaction and
//!   request ids, UUID parts, hashes), and words longer than [`MAX_WORD_LEN`].
//!
//! These are most of an access line's tokens and nearly all of its *distinct* terms: every
//! distinct term costs a term-dictionary (FST) entry at every flush and merge, which is where
//! indexing time goes. The numbers and ids worth querying are typed fields (`status`,
//! `client_ip`, `txn_id`). Queries go through the same tokenizer, so a phrase such as
//! `"timed out after 150 ms"` still matches.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name the tokenizer is registered under in every partition.
pub const LOG_WORDS: &str = "log_words";

/// Longer words (base64 blobs) are not indexed.
pub const MAX_WORD_LEN: usize = 64;

/// Words this long or longer that contain a digit are identifiers, not words.
pub const MIN_ID_LEN: usize = 8;

#[derive(Clone, Default)]
pub struct LogWordsTokenizer {
    token: Token,
}

pub struct LogWordsStream<'a> {
    text: &'a str,
    pos: usize,
    next_position: usize,
    token: &'a mut Token,
}

impl Tokenizer for LogWordsTokenizer {
    type TokenStream<'a> = LogWordsStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> LogWordsStream<'a> {
        self.token.reset();
        LogWordsStream {
            text,
            pos: 0,
            next_position: 0,
            token: &mut self.token,
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

impl TokenStream for LogWordsStream<'_> {
    fn advance(&mut self) -> bool {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() {
            while self.pos < bytes.len() && !is_word_byte(bytes[self.pos]) {
                self.pos += 1;
            }
            let start = self.pos;
            let (mut all_digits, mut any_digit) = (true, false);
            while self.pos < bytes.len() && is_word_byte(bytes[self.pos]) {
                let digit = bytes[self.pos].is_ascii_digit();
                all_digits &= digit;
                any_digit |= digit;
                self.pos += 1;
            }
            let end = self.pos;
            let len = end - start;
            if len == 0 || all_digits || len > MAX_WORD_LEN || (any_digit && len >= MIN_ID_LEN) {
                continue;
            }
            // Word boundaries are ASCII bytes, so the slice is valid UTF-8.
            let word = &self.text[start..end];
            self.token.text.clear();
            self.token.text.push_str(word);
            self.token.text.make_ascii_lowercase();
            self.token.offset_from = start;
            self.token.offset_to = end;
            self.token.position = self.next_position;
            self.token.position_length = 1;
            self.next_position += 1;
            return true;
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, usize)> {
        let mut t = LogWordsTokenizer::default();
        let mut s = t.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            out.push((s.token().text.clone(), s.token().position));
        }
        out
    }

    #[test]
    fn words_without_numbers() {
        let w = words(
            r#"10.1.2.3:58374 [23/Nov/2026:01:08:50.987] GET /api/v1/Orders "Größe" req-7f3a9c2e4b1d timed out after 150 ms"#,
        );
        let texts: Vec<&str> = w.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            texts,
            [
                "nov", "get", "api", "v1", "orders", "größe", "req", "timed", "out", "after", "ms"
            ]
        );
        assert!(w.iter().enumerate().all(|(i, (_, p))| *p == i));
        assert!(words(&"x".repeat(65)).is_empty());
        assert_eq!(words("http2 x86 uuid 550e8400-e29b")[0].0, "http2");
        assert_eq!(words("550e8400-e29b").len(), 1);
        assert!(words("  --- 123 ").is_empty());
    }
}
