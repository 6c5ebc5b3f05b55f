//! The choice of parser per source (pipeline policy), used by every sink that turns records into
//! GELF.
//!
//! A pipeline compiles one [`Parser`] per configured source (its format, log-formats, time zone and
//! txn-id names) into a [`ParserRegistry`] and hands it (an `Arc`) to every component through its
//! context; [`ParserRegistry::encode`] then picks the parser by the record's source name, encodes with
//! [`gelf::encode_parsed`] and counts lines that failed to parse, per source. Records from sources
//! the registry does not know (forwarded from agents, backfilled files, a process that installed
//! nothing) use the default parser, which follows each record's own format hint. No I/O here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::gelf::{self, Encoded, SeenFields};
use crate::parse::{Outcome, Parser, ParserConfig};
use crate::record::Record;

struct Entry {
    parser: Parser,
    parse_errors: AtomicU64,
}

/// Parsers by source name, plus the default.
pub struct ParserRegistry {
    by_source: HashMap<String, Entry>,
    default: Entry,
}

impl ParserRegistry {
    /// A registry with `sources` and a default parser that follows each record's format hint.
    pub fn new(sources: Vec<(String, Parser)>) -> ParserRegistry {
        ParserRegistry::with_default(sources, default_parser())
    }

    /// A registry with `sources` and `default` for records of any other source (forwarded from
    /// agents, backfilled files).
    pub fn with_default(sources: Vec<(String, Parser)>, default: Parser) -> ParserRegistry {
        ParserRegistry {
            by_source: sources
                .into_iter()
                .map(|(name, parser)| {
                    (
                        name,
                        Entry {
                            parser,
                            parse_errors: AtomicU64::new(0),
                        },
                    )
                })
                .collect(),
            default: Entry {
                parser: default,
                parse_errors: AtomicU64::new(0),
            },
        }
    }

    /// The parser of `record`'s source.
    pub fn parser_for(&self, record: &Record) -> &Parser {
        &self.entry_for(record).parser
    }

    fn entry_for(&self, record: &Record) -> &Entry {
        self.by_source
            .get(&*record.origin.source)
            .unwrap_or(&self.default)
    }

    /// Writes `record` as GELF into `out` with its source's parser.
    pub fn encode(&self, record: &Record, out: &mut Vec<u8>) -> Outcome {
        self.encode_observed(record, out, None).outcome
    }

    /// [`encode`](Self::encode), keeping what the parser saw (see
    /// [`gelf::encode_parsed_observed`]).
    pub fn encode_observed<'r>(
        &self,
        record: &'r Record,
        out: &mut Vec<u8>,
        seen: Option<&mut SeenFields>,
    ) -> Encoded<'r> {
        let entry = self.entry_for(record);
        let encoded = gelf::encode_parsed_observed(&entry.parser, record, out, seen);
        if encoded.outcome.is_error() {
            entry.parse_errors.fetch_add(1, Ordering::Relaxed);
        }
        encoded
    }

    /// Lines that failed to parse, per configured source (and `"*"` for all others).
    pub fn parse_errors(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .by_source
            .iter()
            .map(|(n, e)| (n.clone(), e.parse_errors.load(Ordering::Relaxed)))
            .collect();
        v.sort();
        v.push((
            "*".into(),
            self.default.parse_errors.load(Ordering::Relaxed),
        ));
        v
    }
}

fn default_parser() -> Parser {
    // The default configuration has no user input to reject.
    ParserConfig::default()
        .compile()
        .unwrap_or_else(|e| unreachable!("the default parser configuration compiles: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Format, Origin};
    use bytes::Bytes;

    #[test]
    fn json_keys_never_duplicate_envelope_keys() {
        let reg = ParserRegistry::new(Vec::new());
        let record = Record::new(
            Origin::new("app", "web", Format::Json, "h1"),
            Bytes::from_static(
                br#"{"msg":"hi","txn_id":"t-1","_category":"x","source":"y","id":7}"#,
            ),
        );
        let mut out = Vec::new();
        assert!(!reg.encode(&record, &mut out).is_error());
        let text = String::from_utf8(out).unwrap();
        for key in ["\"_txn_id\":", "\"_category\":", "\"_source\":"] {
            assert_eq!(text.matches(key).count(), 1, "{key} in {text}");
        }
        assert!(!text.contains("\"_id\":"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["_txn_id"], "t-1");
        assert_eq!(v["_category"], "web");
        assert_eq!(v["_category_"], "x");
        assert_eq!(v["_id_"], 7);
    }

    #[test]
    fn parse_errors_are_counted_per_source() {
        let strict = ParserConfig {
            format: Format::Json,
            ..ParserConfig::default()
        }
        .compile()
        .unwrap();
        let reg = ParserRegistry::new(vec![("lb".to_string(), strict)]);
        let bad = Record::new(
            Origin::new("lb", "lb", Format::Json, "h"),
            Bytes::from_static(b"{\"msg\": \"cut"),
        );
        let mut out = Vec::new();
        assert!(reg.encode(&bad, &mut out).is_error());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["short_message"], "{\"msg\": \"cut");
        assert!(v["_parse_error"].is_string());
        assert_eq!(reg.parse_errors()[0], ("lb".to_string(), 1));
    }
}
