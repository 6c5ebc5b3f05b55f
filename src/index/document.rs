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

mod builder;
mod scan;
#[cfg(test)]
mod tests;

pub use builder::{BuiltDocument, DocumentBuilder};
use scan::{GelfView, JsonLineIds, scan_flat_gelf};

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
