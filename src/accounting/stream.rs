//! The byte join over a sink's record stream: HAProxy entries leave with their byte correction,
//! and every record leaves in journal order.
//!
//! A sink that renders GELF (file, index) reads the journal in sequence order and writes in that
//! order, because its acknowledgement means "everything up to this seq is written". A
//! [`JoinStage`] sits between the cursor and the writer: it classifies each record with its
//! source's parser ([`classify`]: an HAProxy entry, a backend access-log line carrying `%O`, or
//! anything else), offers it to a [`ByteJoin`], and hands records back in sequence order once
//! each is released: an HAProxy entry when its partner arrived or its window ended, anything
//! else at once (behind any earlier entry that still waits). Records held here are not yet
//! acknowledged by the sink, so a crash replays them: nothing is lost or written twice.
//!
//! Bounds: at most `capacity` records are held; beyond that the entry that waited longest goes
//! out with its best estimate. An entry's window runs from its receive time; windows end by the
//! newest receive time seen while the sink works through a backlog, and by the wall clock once
//! the journal has nothing more to read, so a replay after an outage joins as well as live
//! traffic does.
//!
//! No I/O; parsing through the sink's [`ParserRegistry`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::join::{ByteJoin, JoinItem, Released};
use super::{BackendLine, Correction, HaproxyEntry, HeaderModel};
use crate::journal::Entry;
use crate::parse::{FieldValue, Format, Parser, Value};
use crate::parsers::ParserRegistry;
use crate::record::Record;

/// Settings of a sink's byte join (`[bytes]` in the config).
#[derive(Debug, Clone)]
pub struct JoinSettings {
    pub model: HeaderModel,
    /// How long an HAProxy entry waits for the backend's line.
    pub window: Duration,
    /// Records held at most.
    pub capacity: usize,
}

/// A record released by the stage, with its correction when it is an HAProxy entry.
#[derive(Debug)]
pub struct Joined {
    pub entry: Entry,
    pub correction: Option<Correction>,
}

impl Joined {
    /// A record that went through no join.
    pub fn plain(entry: Entry) -> Joined {
        Joined {
            entry,
            correction: None,
        }
    }
}

struct Held {
    entry: Entry,
    released: bool,
    correction: Option<Correction>,
    /// The sequence number of the record it was paired with.
    partner_seq: Option<u64>,
}

/// The ordered byte join of one sink.
pub struct JoinStage {
    parsers: Arc<ParserRegistry>,
    fields: JoinFields,
    join: ByteJoin<u64>,
    /// Records not yet handed back, in sequence order.
    held: VecDeque<Held>,
    capacity: usize,
    /// Newest receive time seen (ms).
    stream_ms: i64,
}

impl JoinStage {
    /// A stage that parses records with `parsers`.
    pub fn new(settings: &JoinSettings, parsers: Arc<ParserRegistry>) -> JoinStage {
        let capacity = settings.capacity.max(1);
        JoinStage {
            parsers,
            fields: JoinFields::default(),
            join: ByteJoin::new(
                settings.model.clone(),
                i64::try_from(settings.window.as_millis()).unwrap_or(i64::MAX),
                capacity,
            ),
            held: VecDeque::new(),
            capacity,
            stream_ms: i64::MIN,
        }
    }

    /// Records held (waiting, or released behind one that waits).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Offers the next record of the stream (sequence numbers must increase); appends what is
    /// ready, in order, to `out`.
    pub fn push(&mut self, entry: Entry, out: &mut Vec<Joined>) {
        let received_ms = entry.record.received_at.as_millis();
        self.stream_ms = self.stream_ms.max(received_ms);
        let parser = self.parsers.parser_for(&entry.record);
        let classified = classify_with(parser, &entry.record, &mut self.fields);
        if matches!(classified.item, JoinItem::Other) && self.held.is_empty() {
            out.push(Joined::plain(entry));
            return;
        }
        let seq = entry.seq;
        self.held.push_back(Held {
            entry,
            released: false,
            correction: None,
            partner_seq: None,
        });
        let released = self
            .join
            .push(classified.key.as_deref(), classified.item, seq, received_ms);
        self.mark(released);
        self.pop_ready(out);
        while self.held.len() > self.capacity {
            let released = self.join.release_oldest();
            if released.is_empty() {
                break;
            }
            self.mark(released);
            self.pop_ready(out);
        }
    }

    /// Ends the windows that are over. `caught_up`: the journal had nothing more to read, so the
    /// wall clock (`now_ms`) counts as well as the stream's own time.
    pub fn tick(&mut self, now_ms: i64, caught_up: bool, out: &mut Vec<Joined>) {
        if self.held.is_empty() {
            return;
        }
        let now = if caught_up {
            self.stream_ms.max(now_ms)
        } else {
            self.stream_ms
        };
        let released = self.join.poll_expired(now);
        self.mark(released);
        self.pop_ready(out);
    }

    /// Releases everything (the sink is stopping).
    pub fn drain(&mut self, out: &mut Vec<Joined>) {
        let released = self.join.drain();
        self.mark(released);
        self.pop_ready(out);
    }

    /// The lowest sequence number a replay must start from so that every record still held
    /// meets its partner again: a sink acknowledges nothing at or after it (`None`: nothing is
    /// held). It never decreases: a record is held from its push, and a pair forms only with a
    /// record that is itself still held.
    pub fn replay_floor(&self) -> Option<u64> {
        self.held
            .iter()
            .map(|h| h.partner_seq.map_or(h.entry.seq, |p| p.min(h.entry.seq)))
            .min()
    }

    fn mark(&mut self, released: Vec<Released<u64>>) {
        let mut i = 0;
        while i < released.len() {
            // A completed pair is two consecutive items.
            let pair = released[i].paired && released.get(i + 1).is_some_and(|r| r.paired);
            if pair {
                let (a, b) = (&released[i], &released[i + 1]);
                self.release_held(a, Some(b.payload));
                self.release_held(b, Some(a.payload));
                i += 2;
            } else {
                self.release_held(&released[i], None);
                i += 1;
            }
        }
    }

    fn release_held(&mut self, r: &Released<u64>, partner_seq: Option<u64>) {
        if let Ok(at) = self.held.binary_search_by_key(&r.payload, |h| h.entry.seq) {
            let h = &mut self.held[at];
            h.released = true;
            h.correction = r.correction;
            h.partner_seq = partner_seq;
        }
    }

    fn pop_ready(&mut self, out: &mut Vec<Joined>) {
        while self.held.front().is_some_and(|h| h.released) {
            if let Some(h) = self.held.pop_front() {
                out.push(Joined {
                    entry: h.entry,
                    correction: h.correction,
                });
            }
        }
    }
}

/// What a record is for the byte join.
pub struct Classified {
    pub item: JoinItem,
    /// The transaction id the join pairs on.
    pub key: Option<String>,
    /// The time the line itself carries (ms), if any.
    pub log_time_ms: Option<i64>,
}

/// Parses `record` with `parser` (its source's) into its join view.
pub fn classify(parser: &Parser, record: &Record) -> Classified {
    classify_with(parser, record, &mut JoinFields::default())
}

/// [`classify`] with field storage reused from record to record.
pub fn classify_with(parser: &Parser, record: &Record, fields: &mut JoinFields) -> Classified {
    let format = parser.format_for(record.origin.format);
    let other = Classified {
        item: JoinItem::Other,
        key: None,
        log_time_ms: None,
    };
    // Only HAProxy and Apache lines take part; JSON and raw lines are never parsed here.
    if matches!(format, Format::Json | Format::Raw | Format::Gelf) {
        return other;
    }
    fields.clear();
    match parser.parse_line(format, &record.raw, record.received_at.as_millis(), fields) {
        Ok(info) => Classified {
            item: join_item(info.format, fields.fields()),
            key: info.txn_id.map(|(_, v)| value_string(v)),
            log_time_ms: info.timestamp_ms,
        },
        Err(_) => other,
    }
}

/// A field sink that keeps only the fields the byte join reads, in storage reused from line to
/// line (a line's other fields cost no allocation).
#[derive(Debug, Default)]
pub struct JoinFields {
    entries: Vec<(String, FieldValue)>,
    used: usize,
    name: String,
    scratch: Vec<u8>,
}

impl JoinFields {
    fn clear(&mut self) {
        self.used = 0;
    }

    fn fields(&self) -> &[(String, FieldValue)] {
        &self.entries[..self.used]
    }

    fn wanted(name: &str) -> bool {
        matches!(
            name,
            "frontend"
                | "backend"
                | "server"
                | "status"
                | "bytes_read"
                | "termination_state"
                | "http_version"
                | "http_method"
                | "unique_id"
                | "res.bytes_out"
                | "bytes_sent"
                | "connection_status"
        ) || name.starts_with("request_header_")
            || name.starts_with("response_header_")
    }

    fn store(&mut self, name: &str, value: Value<'_>) {
        if self.used == self.entries.len() {
            self.entries
                .push((String::new(), FieldValue::Str(String::new())));
        }
        let (slot_name, slot_value) = &mut self.entries[self.used];
        self.used += 1;
        slot_name.clear();
        slot_name.push_str(name);
        let text: &[u8] = match value {
            Value::Int(i) => {
                *slot_value = FieldValue::Int(i);
                return;
            }
            Value::Float(f) => {
                *slot_value = FieldValue::Float(f);
                return;
            }
            Value::Str(s) => s,
            Value::Escaped(s, e) => {
                self.scratch.clear();
                crate::parse::text::unescape(s, e, &mut self.scratch);
                &self.scratch
            }
        };
        match slot_value {
            FieldValue::Str(s) => {
                s.clear();
                s.push_str(&String::from_utf8_lossy(text));
            }
            other => *other = FieldValue::Str(String::from_utf8_lossy(text).into_owned()),
        }
    }
}

impl crate::parse::FieldSink for JoinFields {
    fn field(&mut self, name: &str, value: Value<'_>) {
        if JoinFields::wanted(name) {
            self.store(name, value);
        }
    }

    fn dynamic_field(&mut self, prefix: &str, name: &[u8], value: Value<'_>) {
        let mut full = std::mem::take(&mut self.name);
        full.clear();
        full.push_str(prefix);
        crate::field_name::push_str(&mut full, name, crate::field_name::Case::Lower);
        if JoinFields::wanted(&full) {
            self.store(&full, value);
        }
        self.name = full;
    }

    fn mark(&self) -> usize {
        self.used
    }

    fn rollback(&mut self, mark: usize) {
        self.used = mark.min(self.used);
    }
}

fn value_string(v: Value<'_>) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        text => text.text().unwrap_or_default().into_owned(),
    }
}

fn get<'f>(f: &'f [(String, FieldValue)], name: &str) -> Option<&'f FieldValue> {
    f.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn get_int(f: &[(String, FieldValue)], name: &str) -> Option<i64> {
    match get(f, name)? {
        FieldValue::Int(i) => Some(*i),
        _ => None,
    }
}

fn str_of(f: &[(String, FieldValue)], name: &str) -> String {
    match get(f, name) {
        Some(FieldValue::Str(s)) => s.clone(),
        Some(FieldValue::Int(i)) => i.to_string(),
        Some(FieldValue::Float(x)) => x.to_string(),
        None => String::new(),
    }
}

/// The join view of a line parsed as `format` (the parser's format name) into the fields `f`.
pub fn join_item(format: &str, f: &[(String, FieldValue)]) -> JoinItem {
    if format.starts_with("haproxy") {
        let captured = |prefix: &str| -> Vec<(String, String)> {
            f.iter()
                .filter_map(|(n, v)| {
                    let name = n.strip_prefix(prefix)?;
                    let FieldValue::Str(s) = v else { return None };
                    Some((name.to_owned(), s.clone()))
                })
                .collect()
        };
        let uid = str_of(f, "unique_id");
        JoinItem::Haproxy(Box::new(HaproxyEntry {
            frontend: str_of(f, "frontend").trim_end_matches('~').to_owned(),
            backend: str_of(f, "backend"),
            server: str_of(f, "server"),
            status: get_int(f, "status"),
            bytes_read: get_int(f, "bytes_read"),
            termination_state: str_of(f, "termination_state"),
            http_version: str_of(f, "http_version"),
            http_method: str_of(f, "http_method"),
            captured_response: captured("response_header_"),
            captured_request: captured("request_header_"),
            unique_id: (!uid.is_empty() && uid != "-").then_some(uid),
            res_bytes_out: get_int(f, "res.bytes_out"),
        }))
    } else if format.starts_with("apache") && get_int(f, "bytes_sent").is_some() {
        let rid = str_of(f, "request_header_x-request-id");
        JoinItem::Backend(BackendLine {
            bytes_out: get_int(f, "bytes_sent"),
            aborted: str_of(f, "connection_status") == "X",
            request_id: (!rid.is_empty() && rid != "-").then_some(rid),
        })
    } else {
        JoinItem::Other
    }
}

/// Adds `_bytes_sent`, `_bytes_sent_basis` and `_bytes_sent_reason` to a GELF object.
pub fn append_correction(gelf: &mut Vec<u8>, correction: Option<Correction>) {
    let Some(c) = correction else { return };
    if gelf.last() != Some(&b'}') {
        return;
    }
    gelf.pop();
    if let Some(b) = c.bytes_sent {
        gelf.extend_from_slice(b",\"_bytes_sent\":");
        gelf.extend_from_slice(itoa::Buffer::new().format(b).as_bytes());
    }
    gelf.extend_from_slice(b",\"_bytes_sent_basis\":\"");
    gelf.extend_from_slice(c.basis.as_str().as_bytes());
    gelf.extend_from_slice(b"\",\"_bytes_sent_reason\":");
    crate::gelf::json::write_str(gelf, c.reason.as_bytes());
    gelf.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::Basis;
    use crate::record::{Origin, Timestamp};
    use bytes::Bytes;

    fn entry(seq: u64, format: crate::record::Format, line: &str, at_ms: i64) -> Entry {
        Entry {
            seq,
            record: Record {
                origin: Origin::new("s", "c", format, "h"),
                received_at: Timestamp(at_ms * 1_000_000),
                position: crate::record::Position::None,
                flags: crate::record::RecordFlags::empty(),
                raw: Bytes::from(line.to_owned()),
            },
        }
    }

    fn haproxy(seq: u64, id: &str, at_ms: i64) -> Entry {
        let line = format!(
            "127.0.0.1:40000 [23/Nov/2026:01:08:50.123] f b/s 0/0/1/2/3 200 297 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\" {id}"
        );
        entry(seq, crate::record::Format::Haproxy, &line, at_ms)
    }

    fn apache(seq: u64, id: &str, at_ms: i64) -> Entry {
        let line = format!(
            "127.0.0.1 - - [23/Nov/2026:01:08:50 +0000] \"GET / HTTP/1.1\" 200 310 \"-\" \"curl\" {id}"
        );
        entry(seq, crate::record::Format::Apache, &line, at_ms)
    }

    fn seqs(out: &[Joined]) -> Vec<u64> {
        out.iter().map(|j| j.entry.seq).collect()
    }

    fn parser() -> Parser {
        crate::parse::ParserConfig {
            haproxy_log_formats: vec![format!("{} %ID", crate::parse::haproxy::logformat::HTTPLOG)],
            apache_log_formats: vec![
                r#"%h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i" %{X-Request-ID}i"#.into(),
            ],
            ..crate::parse::ParserConfig::default()
        }
        .compile()
        .unwrap()
    }

    fn stage(capacity: usize) -> JoinStage {
        let settings = JoinSettings {
            model: crate::accounting::join::tests::model(),
            window: Duration::from_millis(1000),
            capacity,
        };
        let registry = ParserRegistry::with_default(Vec::new(), parser());
        JoinStage::new(&settings, Arc::new(registry))
    }

    fn json(seq: u64, at_ms: i64) -> Entry {
        entry(
            seq,
            crate::record::Format::Json,
            r#"{"txn_id":"id-1"}"#,
            at_ms,
        )
    }

    #[test]
    fn classifies_haproxy_and_backend_lines() {
        let parser = parser();
        let h = classify(&parser, &haproxy(1, "id-1", 0).record);
        assert!(matches!(h.item, JoinItem::Haproxy(_)), "haproxy line");
        assert_eq!(h.key.as_deref(), Some("id-1"));
        let a = classify(&parser, &apache(2, "id-1", 0).record);
        assert!(matches!(
            a.item,
            JoinItem::Backend(BackendLine {
                bytes_out: Some(310),
                ..
            })
        ));
        assert_eq!(a.key.as_deref(), Some("id-1"));
        assert!(matches!(
            classify(&parser, &json(3, 0).record).item,
            JoinItem::Other
        ));
    }

    #[test]
    fn pairs_in_order() {
        let mut stage = stage(100);
        let mut out = Vec::new();
        stage.push(json(1, 0), &mut out);
        assert_eq!(
            seqs(&out),
            vec![1],
            "nothing waits: a plain record passes at once"
        );
        stage.push(haproxy(2, "id-1", 10), &mut out);
        stage.push(json(3, 20), &mut out);
        assert_eq!(seqs(&out), vec![1], "records behind a waiting entry wait");
        stage.push(apache(4, "id-1", 30), &mut out);
        assert_eq!(seqs(&out), vec![1, 2, 3, 4]);
        let c = out[1].correction.unwrap();
        assert_eq!((c.bytes_sent, c.basis), (Some(310), Basis::Exact));
        assert!(out[2].correction.is_none() && out[3].correction.is_none());
        // The backend line first, then the HAProxy entry: paired at once.
        out.clear();
        stage.push(apache(5, "id-2", 40), &mut out);
        assert!(out.is_empty());
        stage.push(haproxy(6, "id-2", 50), &mut out);
        assert_eq!(seqs(&out), vec![5, 6]);
        assert_eq!(out[1].correction.unwrap().basis, Basis::Exact);
    }

    #[test]
    fn windows_end_by_stream_time_then_wall_clock() {
        let mut stage = stage(100);
        let mut out = Vec::new();
        stage.push(haproxy(1, "lonely", 0), &mut out);
        stage.push(json(2, 500), &mut out);
        // A backlog (not caught up): the wall clock does not end windows.
        stage.tick(1_000_000, false, &mut out);
        assert!(out.is_empty());
        // The stream itself moves past the window.
        stage.push(json(3, 1000), &mut out);
        stage.tick(1_000_000, false, &mut out);
        assert_eq!(seqs(&out), vec![1, 2, 3]);
        assert_ne!(out[0].correction.unwrap().basis, Basis::Exact);
        // Caught up: the wall clock ends the window.
        out.clear();
        stage.push(haproxy(4, "late", 2000), &mut out);
        stage.tick(2500, true, &mut out);
        assert!(out.is_empty());
        stage.tick(3000, true, &mut out);
        assert_eq!(seqs(&out), vec![4]);
        // Draining releases everything.
        out.clear();
        stage.push(haproxy(5, "x", 4000), &mut out);
        stage.drain(&mut out);
        assert_eq!(seqs(&out), vec![5]);
        assert_eq!(stage.held(), 0);
    }

    #[test]
    fn holds_at_most_capacity() {
        let mut stage = stage(3);
        let mut out = Vec::new();
        for seq in 1..=50 {
            stage.push(haproxy(seq, &format!("id-{seq}"), 0), &mut out);
            assert!(stage.held() <= 3);
        }
        assert_eq!(seqs(&out), (1..=47).collect::<Vec<_>>());
        stage.drain(&mut out);
        assert_eq!(seqs(&out), (1..=50).collect::<Vec<_>>());
    }

    #[test]
    fn correction_fields_are_appended() {
        let mut g = br#"{"a":1}"#.to_vec();
        append_correction(
            &mut g,
            Some(Correction {
                bytes_sent: Some(310),
                basis: Basis::Exact,
                reason: "r \"q\"",
            }),
        );
        let v: serde_json::Value = serde_json::from_slice(&g).unwrap();
        assert_eq!(v["_bytes_sent"], 310);
        assert_eq!(v["_bytes_sent_basis"], "exact");
        assert_eq!(v["_bytes_sent_reason"], "r \"q\"");
        let mut g = b"{}".to_vec();
        append_correction(&mut g, None);
        assert_eq!(g, b"{}");
    }
}
