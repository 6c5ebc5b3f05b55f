//! The document builder: records to tantivy documents, from the fields the parser saw or from
//! the GELF text. Pure.

use super::*;

/// Turns records into tantivy documents, reusing one GELF buffer.
pub struct DocumentBuilder {
    fields: IndexFields,
    parsers: std::sync::Arc<crate::parsers::ParserRegistry>,
    gelf: Vec<u8>,
    seen: SeenFields,
}

/// One record, ready for a partition.
pub struct BuiltDocument {
    pub timestamp_ms: i64,
    pub document: TantivyDocument,
}

impl DocumentBuilder {
    pub fn new(
        fields: IndexFields,
        parsers: std::sync::Arc<crate::parsers::ParserRegistry>,
    ) -> DocumentBuilder {
        DocumentBuilder {
            fields,
            parsers,
            gelf: Vec::with_capacity(1024),
            seen: SeenFields::default(),
        }
    }

    /// Encodes `record` as GELF (with the byte join's correction, if any) and builds its
    /// document. The index fields come from what the parser saw while the GELF was written;
    /// only when that is ambiguous is the GELF text read back.
    pub fn build(
        &mut self,
        record: &Record,
        seq: u64,
        correction: Option<crate::accounting::Correction>,
    ) -> BuiltDocument {
        self.gelf.clear();
        let encoded = self
            .parsers
            .encode_observed(record, &mut self.gelf, Some(&mut self.seen));
        crate::accounting::stream::append_correction(&mut self.gelf, correction);
        // The GELF writer escapes every byte sequence into valid UTF-8 JSON; the lossy path is a
        // guard that never runs.
        let text = match std::str::from_utf8(&self.gelf) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(&self.gelf),
        };
        let entry = EntryFields::from_encoded(record, &encoded, &self.seen)
            .unwrap_or_else(|| EntryFields::from_gelf_text(&text, record.received_at.as_millis()));
        BuiltDocument {
            timestamp_ms: entry.timestamp_ms,
            document: entry.to_document(&self.fields, seq, &text),
        }
    }
}

impl<'a> EntryFields<'a> {
    /// The fields of a record from what its parser saw while it was encoded: the same fields
    /// [`from_gelf`](Self::from_gelf) reads from the GELF text, without reading it. `None` when
    /// a value is one the GELF text spells differently (a number where text is read, a field
    /// given twice); the caller then reads the text.
    pub fn from_encoded(
        record: &'a Record,
        encoded: &Encoded<'a>,
        seen: &'a SeenFields,
    ) -> Option<EntryFields<'a>> {
        if seen.ambiguous {
            return None;
        }
        let raw: &'a [u8] = &record.raw;
        let received_ms = record.received_at.as_millis();
        let (host, message, full_message, timestamp_ms, txn_id) = match &encoded.info {
            Some(info) => {
                let message = match info.message {
                    Some(Value::Str(s) | Value::Escaped(s, _)) if s.is_empty() => None,
                    other => other,
                };
                let message = match message {
                    Some(m) => m.text()?,
                    None if raw.is_empty() => Cow::Borrowed("-"),
                    None => crate::parse::text::utf8_lossy(raw),
                };
                let full = match info.full_message {
                    Some(f) => Some(f.text()?),
                    None => None,
                };
                let txn = match info.txn_id {
                    Some((_, v)) => Some(v.text()?),
                    None => None,
                };
                let host = info.host.map_or(
                    Cow::Borrowed(&*record.origin.host),
                    crate::parse::text::utf8_lossy,
                );
                (
                    host,
                    message,
                    full,
                    info.timestamp_ms.unwrap_or(received_ms),
                    txn,
                )
            }
            None => (
                Cow::Borrowed(&*record.origin.host),
                if raw.is_empty() {
                    Cow::Borrowed("-")
                } else {
                    crate::parse::text::utf8_lossy(raw)
                },
                None,
                received_ms,
                None,
            ),
        };
        // Times the GELF reader would not take back are left to it.
        if timestamp_ms.unsigned_abs() >= 10_000_000_000_000_000 {
            return None;
        }
        let txn_id = txn_id
            .filter(|s| !s.is_empty())
            .or_else(|| txn_id_in_line(&message).map(|s| Cow::Owned(s.into_owned())))
            .filter(|s| s.len() <= MAX_TXN_ID_LEN);
        let text = |f: SeenField| seen.text(f).map(Cow::Borrowed);
        Some(EntryFields {
            txn_id,
            timestamp_ms,
            host: Some(host),
            category: Some(Cow::Borrowed(&*record.origin.category)),
            source: Some(Cow::Borrowed(&*record.origin.source)),
            level: Some(u64::from(encoded.level)),
            status: seen
                .number(SeenField::Status)
                .filter(|v| v.is_finite() && *v >= 0.0 && *v <= u64::MAX as f64)
                .map(|v| v as u64),
            method: text(SeenField::Method),
            client_ip: text(SeenField::ClientIp),
            path: text(SeenField::Path),
            message: Some(message),
            full_message,
        })
    }
}
