//! From a GELF JSON document to the fields the index stores, and to a tantivy document.
//!
//! Pure functions, no I/O. Fields are read by their GELF names (`_txn_id`, `_status`,
//! `_http_method`, `_http_path`, `_client_ip`, `level`, `timestamp`). Values of an unexpected type
//! (a status of `"-"`, a numeric txn id) are tolerated, never an error: an entry is always indexed.
//!
//! Lines that were not parsed into GELF fields still get a transaction id when they carry one
//! themselves: a JSON message's `_txn_id`/`txn_id`/`txnId`/`request_id`/`requestId` field, or a
//! `txn_id=`/`request_id=`/`txnId=`/`requestId=` token in a plain line.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use tantivy::{DateTime, TantivyDocument};

use super::schema::IndexFields;
use crate::gelf::{Encoded, SeenField, SeenFields};
use crate::parse::Value;
use crate::record::Record;

/// Longest transaction id kept (longer values are not ids).
pub const MAX_TXN_ID_LEN: usize = 256;

/// A string field that also accepts numbers and booleans; anything else reads as absent.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LooseStr<'a>(pub Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for LooseStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(LooseStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LooseStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(LooseStr(Some(Cow::Owned(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LooseStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(LooseStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(LooseStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(LooseStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LooseStr(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LooseStr(None))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LooseStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number field that also accepts numeric strings; anything else reads as absent.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LooseNum(pub Option<f64>);

impl<'de> Deserialize<'de> for LooseNum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = LooseStr::deserialize(d)?;
        Ok(LooseNum(s.0.and_then(|v| v.trim().parse::<f64>().ok())))
    }
}

impl LooseNum {
    fn as_u64(self) -> Option<u64> {
        self.0
            .filter(|v| v.is_finite() && *v >= 0.0 && *v <= u64::MAX as f64)
            .map(|v| v as u64)
    }
}

/// The GELF fields the index reads; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GelfView<'a> {
    #[serde(borrow)]
    host: LooseStr<'a>,
    #[serde(borrow)]
    short_message: LooseStr<'a>,
    #[serde(borrow)]
    full_message: LooseStr<'a>,
    timestamp: LooseNum,
    level: LooseNum,
    #[serde(borrow, rename = "_txn_id")]
    txn_id: LooseStr<'a>,
    #[serde(borrow, rename = "_category")]
    category: LooseStr<'a>,
    #[serde(borrow, rename = "_source")]
    source: LooseStr<'a>,
    #[serde(rename = "_status")]
    status: LooseNum,
    #[serde(borrow, rename = "_http_method")]
    method: LooseStr<'a>,
    #[serde(borrow, rename = "_http_path")]
    path: LooseStr<'a>,
    #[serde(borrow, rename = "_client_ip")]
    client_ip: LooseStr<'a>,
}

/// Transaction-id fields of an application's own JSON line.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JsonLineIds<'a> {
    #[serde(borrow, rename = "_txn_id")]
    gelf_txn_id: LooseStr<'a>,
    #[serde(borrow)]
    txn_id: LooseStr<'a>,
    #[serde(borrow, rename = "txnId")]
    txn_id_camel: LooseStr<'a>,
    #[serde(borrow)]
    request_id: LooseStr<'a>,
    #[serde(borrow, rename = "requestId")]
    request_id_camel: LooseStr<'a>,
}

impl<'a> JsonLineIds<'a> {
    fn first(self) -> Option<Cow<'a, str>> {
        [
            self.gelf_txn_id,
            self.txn_id,
            self.txn_id_camel,
            self.request_id,
            self.request_id_camel,
        ]
        .into_iter()
        .find_map(|v| v.0.filter(|s| !s.is_empty()))
    }
}

/// What one entry contributes to the index, borrowed from its GELF text where possible.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EntryFields<'a> {
    pub txn_id: Option<Cow<'a, str>>,
    /// Milliseconds since the epoch (the log's own time when the parser found one).
    pub timestamp_ms: i64,
    pub host: Option<Cow<'a, str>>,
    pub category: Option<Cow<'a, str>>,
    pub source: Option<Cow<'a, str>>,
    pub level: Option<u64>,
    pub status: Option<u64>,
    pub method: Option<Cow<'a, str>>,
    pub client_ip: Option<Cow<'a, str>>,
    pub path: Option<Cow<'a, str>>,
    pub message: Option<Cow<'a, str>>,
    pub full_message: Option<Cow<'a, str>>,
}

impl<'a> EntryFields<'a> {
    /// Reads the fields of a GELF JSON object. `fallback_ms` is used when it has no valid
    /// `timestamp`. Text that is not a JSON object yields the fallback time and no fields.
    pub fn from_gelf(gelf: &'a [u8], fallback_ms: i64) -> EntryFields<'a> {
        match std::str::from_utf8(gelf) {
            Ok(text) => EntryFields::from_gelf_text(text, fallback_ms),
            Err(_) => EntryFields::from_gelf_general(gelf, fallback_ms),
        }
    }

    /// [`from_gelf`](Self::from_gelf) for text already known to be UTF-8. Quill's own GELF (a
    /// flat object) is read in one byte-oriented pass; anything else by the general JSON reader.
    pub fn from_gelf_text(gelf: &'a str, fallback_ms: i64) -> EntryFields<'a> {
        match scan_flat_gelf(gelf) {
            Some(view) => EntryFields::from_view(view, fallback_ms),
            None => EntryFields::from_gelf_general(gelf.as_bytes(), fallback_ms),
        }
    }

    /// [`from_gelf`](Self::from_gelf) with the general JSON reader only (the reference the fast
    /// scan is tested against).
    pub fn from_gelf_general(gelf: &'a [u8], fallback_ms: i64) -> EntryFields<'a> {
        EntryFields::from_view(
            serde_json::from_slice(gelf).unwrap_or_default(),
            fallback_ms,
        )
    }

    fn from_view(view: GelfView<'a>, fallback_ms: i64) -> EntryFields<'a> {
        let timestamp_ms = view
            .timestamp
            .0
            .filter(|t| t.is_finite() && t.abs() < 1e13)
            .map(|t| (t * 1000.0).round() as i64)
            .unwrap_or(fallback_ms);
        let message = view.short_message.0;
        let txn_id = view
            .txn_id
            .0
            .filter(|s| !s.is_empty())
            .or_else(|| {
                message
                    .as_deref()
                    .and_then(txn_id_in_line)
                    .map(|s| Cow::Owned(s.into_owned()))
            })
            .filter(|s| s.len() <= MAX_TXN_ID_LEN);
        EntryFields {
            txn_id,
            timestamp_ms,
            host: view.host.0,
            category: view.category.0,
            source: view.source.0,
            level: view.level.as_u64(),
            status: view.status.as_u64(),
            method: view.method.0,
            client_ip: view.client_ip.0,
            path: view.path.0,
            message,
            full_message: view.full_message.0,
        }
    }

    /// Adds these fields, the arrival sequence and the GELF text itself to a tantivy document.
    pub fn to_document(&self, fields: &IndexFields, seq: u64, gelf: &str) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        let text = |doc: &mut TantivyDocument, f, v: &Option<Cow<'_, str>>| {
            if let Some(v) = v {
                doc.add_text(f, v);
            }
        };
        text(&mut doc, fields.txn_id, &self.txn_id);
        doc.add_date(
            fields.timestamp,
            DateTime::from_timestamp_millis(self.timestamp_ms),
        );
        doc.add_u64(fields.seq, seq);
        text(&mut doc, fields.host, &self.host);
        text(&mut doc, fields.category, &self.category);
        text(&mut doc, fields.source, &self.source);
        if let Some(v) = self.level {
            doc.add_u64(fields.level, v);
        }
        if let Some(v) = self.status {
            doc.add_u64(fields.status, v);
        }
        text(&mut doc, fields.method, &self.method);
        text(&mut doc, fields.client_ip, &self.client_ip);
        text(&mut doc, fields.path, &self.path);
        text(&mut doc, fields.message, &self.message);
        text(&mut doc, fields.message, &self.full_message);
        doc.add_text(fields.gelf, gelf);
        doc
    }
}

/// Which [`GelfView`] field a top-level key fills.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ViewKey {
    Host,
    ShortMessage,
    FullMessage,
    Timestamp,
    Level,
    TxnId,
    Category,
    Source,
    Status,
    Method,
    Path,
    ClientIp,
}

impl ViewKey {
    fn of(key: &[u8]) -> Option<ViewKey> {
        Some(match key {
            b"host" => ViewKey::Host,
            b"short_message" => ViewKey::ShortMessage,
            b"full_message" => ViewKey::FullMessage,
            b"timestamp" => ViewKey::Timestamp,
            b"level" => ViewKey::Level,
            b"_txn_id" => ViewKey::TxnId,
            b"_category" => ViewKey::Category,
            b"_source" => ViewKey::Source,
            b"_status" => ViewKey::Status,
            b"_http_method" => ViewKey::Method,
            b"_http_path" => ViewKey::Path,
            b"_client_ip" => ViewKey::ClientIp,
            _ => return None,
        })
    }
}

/// Reads the index fields of a *flat* JSON object, the shape Quill's GELF encoder writes: every
/// value a string, number, boolean or null. One byte-oriented pass, strings borrowed unless they
/// hold escapes. Returns `None` for anything else (a nested value, a repeated field, a non-string
/// value where a string is read, bad syntax): the caller then uses the general JSON reader, so
/// both give the same fields.
fn scan_flat_gelf(text: &str) -> Option<GelfView<'_>> {
    let b = text.as_bytes();
    let ws = |mut i: usize| {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    };
    // The end of the string whose opening quote is at `at` (index after the closing quote), and
    // whether it holds escapes.
    let string_end = |at: usize| -> Option<(usize, bool)> {
        let mut i = at + 1;
        let mut escaped = false;
        loop {
            i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
            if b[i] == b'"' {
                return Some((i + 1, escaped));
            }
            escaped = true;
            i += 2;
        }
    };
    let mut view = GelfView::default();
    let mut seen = [false; 12];
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(i + 1);
    if b.get(i) == Some(&b'}') {
        return (ws(i + 1) == b.len()).then_some(view);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (key_end, key_escaped) = string_end(i)?;
        if key_escaped {
            return None;
        }
        let key = ViewKey::of(&b[i + 1..key_end - 1]);
        i = ws(key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        let start = i;
        // The value: a string (decoded on demand), or a scalar token.
        let string = match b.get(i)? {
            b'"' => {
                let (end, escaped) = string_end(i)?;
                i = end;
                let value = if key.is_none() {
                    None
                } else if escaped {
                    Some(Cow::Owned(
                        serde_json::from_str::<String>(&text[start..end]).ok()?,
                    ))
                } else {
                    Some(Cow::Borrowed(&text[start + 1..end - 1]))
                };
                Some(value)
            }
            b'{' | b'[' => return None,
            _ => {
                while i < b.len() && !matches!(b[i], b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
                None
            }
        };
        let token = &text[start..i];
        if string.is_none() && !valid_scalar(token) {
            return None;
        }
        if let Some(k) = key {
            if std::mem::replace(&mut seen[k as usize], true) {
                return None;
            }
            let value = string.unwrap_or_default();
            match k {
                ViewKey::Timestamp => view.timestamp = loose_num(value, token),
                ViewKey::Level => view.level = loose_num(value, token),
                ViewKey::Status => view.status = loose_num(value, token),
                ViewKey::Host => view.host = loose_str(value, token)?,
                ViewKey::ShortMessage => view.short_message = loose_str(value, token)?,
                ViewKey::FullMessage => view.full_message = loose_str(value, token)?,
                ViewKey::TxnId => view.txn_id = loose_str(value, token)?,
                ViewKey::Category => view.category = loose_str(value, token)?,
                ViewKey::Source => view.source = loose_str(value, token)?,
                ViewKey::Method => view.method = loose_str(value, token)?,
                ViewKey::Path => view.path = loose_str(value, token)?,
                ViewKey::ClientIp => view.client_ip = loose_str(value, token)?,
            }
        }
        i = ws(i);
        match b.get(i)? {
            b',' => i = ws(i + 1),
            b'}' => return (ws(i + 1) == b.len()).then_some(view),
            _ => return None,
        }
    }
}

/// A JSON literal or number (the general reader rejects anything else). Plain decimals are
/// checked here; other forms (exponents) go through the JSON reader.
fn valid_scalar(token: &str) -> bool {
    if matches!(token, "null" | "true" | "false") {
        return true;
    }
    let t = token.as_bytes();
    let digits = t.strip_prefix(b"-").unwrap_or(t);
    let (int, frac) = match memchr::memchr(b'.', digits) {
        Some(dot) => (&digits[..dot], Some(&digits[dot + 1..])),
        None => (digits, None),
    };
    let all_digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    let plain =
        all_digits(int) && (int.len() == 1 || int[0] != b'0') && frac.is_none_or(all_digits);
    plain || (!t.is_empty() && serde_json::from_str::<IgnoredAny>(token).is_ok())
}

/// A [`LooseNum`] from a scanned value: a string (`Some`) or a valid scalar token.
fn loose_num(string: Option<Cow<'_, str>>, token: &str) -> LooseNum {
    match string {
        Some(s) => LooseNum(s.trim().parse::<f64>().ok()),
        None => LooseNum(token.parse::<f64>().ok()),
    }
}

/// A [`LooseStr`] from a scanned value; `None` for a number or boolean (left to the general
/// reader, which spells them its own way).
fn loose_str<'a>(string: Option<Cow<'a, str>>, token: &str) -> Option<LooseStr<'a>> {
    match string {
        Some(s) => Some(LooseStr(Some(s))),
        None if token == "null" => Some(LooseStr(None)),
        None => None,
    }
}

/// Finds a transaction id in a line that was not parsed: a JSON object's id fields, or a
/// `key=value` token for one of the id keys.
pub fn txn_id_in_line(line: &str) -> Option<Cow<'_, str>> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(ids) = serde_json::from_str::<JsonLineIds<'_>>(trimmed) {
            return ids.first();
        }
    }
    const KEYS: [&[u8]; 4] = [b"txn_id=", b"request_id=", b"txnId=", b"requestId="];
    let bytes = line.as_bytes();
    for key in KEYS {
        let mut from = 0;
        while let Some(at) = memchr::memmem::find(&bytes[from..], key).map(|i| i + from) {
            from = at + key.len();
            let starts_token =
                at == 0 || matches!(bytes[at - 1], b' ' | b'\t' | b',' | b';' | b'"');
            if !starts_token {
                continue;
            }
            let value = &bytes[from..];
            let end = value
                .iter()
                .position(|b| matches!(b, b' ' | b'\t' | b',' | b';' | b'"' | b'\''))
                .unwrap_or(value.len());
            let id = &line[from..from + end];
            if !id.is_empty() && id != "-" {
                return Some(Cow::Borrowed(id));
            }
        }
    }
    None
}

/// Turns records into tantivy documents, reusing one GELF buffer.
pub struct DocumentBuilder {
    fields: IndexFields,
    parsers: std::sync::Arc<crate::parse::registry::ParserRegistry>,
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
        parsers: std::sync::Arc<crate::parse::registry::ParserRegistry>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_parsed_gelf_fields() {
        let g = br#"{"version":"1.1","host":"lb1","short_message":"GET /x","timestamp":1700000000.123,"level":3,"_txn_id":"abc-1","_status":503,"_http_method":"GET","_http_path":"/api/pay","_client_ip":"10.0.0.1","_category":"lb","_source":"haproxy"}"#;
        let e = EntryFields::from_gelf(g, 0);
        assert_eq!(e.txn_id.as_deref(), Some("abc-1"));
        assert_eq!(e.timestamp_ms, 1_700_000_000_123);
        assert_eq!((e.level, e.status), (Some(3), Some(503)));
        assert_eq!(e.method.as_deref(), Some("GET"));
        assert_eq!(e.path.as_deref(), Some("/api/pay"));
        assert_eq!(e.client_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(e.category.as_deref(), Some("lb"));
    }

    #[test]
    fn tolerates_odd_types_and_garbage() {
        let g = br#"{"host":5,"short_message":null,"timestamp":"x","_status":"-","_txn_id":42,"level":[1]}"#;
        let e = EntryFields::from_gelf(g, 77);
        assert_eq!(e.host.as_deref(), Some("5"));
        assert_eq!(e.txn_id.as_deref(), Some("42"));
        assert_eq!((e.status, e.level, e.timestamp_ms), (None, None, 77));
        let e = EntryFields::from_gelf(b"not json \xff", 5);
        assert_eq!((e.timestamp_ms, e.txn_id), (5, None));
    }

    #[test]
    fn fast_scan_reads_what_the_json_reader_reads() {
        let docs: [&[u8]; 12] = [
            br#"{"version":"1.1","host":"lb1","short_message":"GET /x","timestamp":1700000000.123,"level":3,"_txn_id":"abc-1","_status":503,"_http_method":"GET","_http_path":"/api/pay","_client_ip":"10.0.0.1","_category":"lb","_source":"haproxy","_bytes":-12,"_ok":true,"_n":null}"#,
            br#"{"host":5,"short_message":null,"timestamp":"x","_status":"-","_txn_id":42,"level":[1]}"#,
            br#" { "host" : "h\u00e9\"q" , "short_message":"a\\b\nc txn_id=zz","timestamp":1.5e9,"_status":" 404 "} "#,
            br#"{"host":"a","host":"b"}"#,
            br#"{"_x":{"host":"nested"},"host":"top"}"#,
            br#"{"_x":01,"host":"a"}"#,
            br#"{"_x":1e3,"timestamp":2e9,"host":"a"}"#,
            br#"{"host":"a",}"#,
            br#"{"host":"a"} trailing"#,
            br#"{}"#,
            br#"{"host":"a","short_message":"unterminated}"#,
            br#"{"level":true,"timestamp":null,"_status":false,"_http_path":null}"#,
        ];
        for d in docs {
            assert_eq!(
                EntryFields::from_gelf(d, 9),
                EntryFields::from_gelf_general(d, 9),
                "{}",
                String::from_utf8_lossy(d)
            );
        }
        // Real encoder output: access logs and JSON lines with odd values.
        use crate::record::{Format, Origin};
        let lines: [(Format, &str); 4] = [
            (
                Format::Haproxy,
                r#"<134>Nov 23 01:08:50 haproxy[8425]: 10.0.0.1:5000 [23/Nov/2026:01:08:50.123] fe be/web1 0/0/1/2/3 503 10 - - ---- 1/1/1/1/0 0/0 "GET /a?b=%22c HTTP/1.1" request_id=r-1"#,
            ),
            (
                Format::Apache,
                r#"10.0.0.2 - - [23/Nov/2026:01:08:50 +0000] "POST /p\"q HTTP/1.1" 200 5 "-" "UA \x01" request_id=r-2"#,
            ),
            (
                Format::Json,
                r#"{"msg":"h\u00e9 \"x\"","txn_id":7,"status":"500","host":"j1","nested":{"a":[1,2]}}"#,
            ),
            (Format::Auto, "not a log line txn_id=t-3"),
        ];
        for (format, line) in lines {
            let r = Record::new(
                Origin::new("s", "c", format, "h"),
                bytes::Bytes::from(line.as_bytes().to_vec()),
            );
            let mut out = Vec::new();
            crate::parse::registry::ParserRegistry::new(Vec::new()).encode(&r, &mut out);
            // The encoder's output takes the fast path, except a numeric txn id (read as text by
            // the general reader).
            let text = std::str::from_utf8(&out).unwrap();
            let numeric_id = text.contains(r#""_txn_id":7"#);
            assert_eq!(scan_flat_gelf(text).is_some(), !numeric_id, "{text}");
            let fast = EntryFields::from_gelf(&out, 1);
            assert_eq!(fast, EntryFields::from_gelf_general(&out, 1), "{line}");
            assert!(fast.host.is_some() && fast.message.is_some(), "{line}");
        }
    }

    /// The fields taken from what the parser saw equal the fields read back from the GELF
    /// text, over every fixture log in every format plus odd lines.
    #[test]
    fn fields_seen_while_encoding_equal_fields_read_back() {
        use crate::record::{Format, Origin};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for sub in ["parse", "index", "file"] {
            let mut files: Vec<_> = std::fs::read_dir(format!("{dir}/{sub}"))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for f in files {
                let data = std::fs::read(&f).unwrap();
                lines.extend(data.split(|&b| b == b'\n').take(400).map(<[u8]>::to_vec));
            }
        }
        lines.extend([
            b"".to_vec(),
            b"\xff\xfe bad utf8 txn_id=t-9".to_vec(),
            br#"{"status":503,"http_method":5,"txn_id":12,"msg":"x"}"#.to_vec(),
            br#"{"status":"404","msg":"","host":"h\u00e9","full_message":""}"#.to_vec(),
            br#"{"msg":7,"client_ip":"1.2.3.4"}"#.to_vec(),
            br#"{"time":"2026-11-23T01:02:03Z","message":"m","request_id":"r1"}"#.to_vec(),
        ]);
        let haproxy_custom = crate::parse::ParserConfig {
            haproxy_log_formats: vec![format!("{} %ID", crate::parse::haproxy::logformat::HTTPLOG)],
            ..crate::parse::ParserConfig::default()
        }
        .compile()
        .unwrap();
        let registry = crate::parse::registry::ParserRegistry::new(vec![(
            "custom".to_string(),
            haproxy_custom,
        )]);
        let (mut direct, mut fallback) = (0, 0);
        let mut seen = SeenFields::default();
        for format in Format::ALL {
            for source in ["s", "custom"] {
                for line in &lines {
                    let record = Record::new(
                        Origin::new(source, "c", format, "h"),
                        bytes::Bytes::from(line.clone()),
                    );
                    let mut out = Vec::new();
                    let encoded = registry.encode_observed(&record, &mut out, Some(&mut seen));
                    let text = std::str::from_utf8(&out).unwrap();
                    let back = EntryFields::from_gelf_text(text, record.received_at.as_millis());
                    match EntryFields::from_encoded(&record, &encoded, &seen) {
                        Some(fields) => {
                            direct += 1;
                            assert_eq!(fields, back, "{format:?} {text}");
                        }
                        None => fallback += 1,
                    }
                }
            }
        }
        assert!(
            direct > 10 * fallback.max(1),
            "{direct} direct, {fallback} read back"
        );
    }

    #[test]
    fn finds_ids_in_unparsed_lines() {
        let id = |l: &str| txn_id_in_line(l).map(|c| c.into_owned());
        assert_eq!(
            id(r#"{"level":"info","txnId":"t-9","msg":"x"}"#).as_deref(),
            Some("t-9")
        );
        assert_eq!(
            id(r#"{"request_id":"r1","txn_id":"t\u002d1"}"#).as_deref(),
            Some("t-1")
        );
        assert_eq!(
            id(r#"1.2.3.4 - - "GET / HTTP/1.1" 200 5 request_id=ab12 x"#).as_deref(),
            Some("ab12")
        );
        assert_eq!(id("xtxn_id=no request_id=-"), None);
        assert_eq!(id("{broken json txn_id=zz").as_deref(), Some("zz"));
        assert_eq!(id(r#"{"msg":"no id"}"#), None);
        assert_eq!(id("plain line"), None);
    }
}
