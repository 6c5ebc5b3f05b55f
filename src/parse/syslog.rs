//! Syslog headers: RFC 5424 (with structured data) and RFC 3164 / BSD (with rsyslog-style
//! heuristics: optional PRI, optional HOSTNAME, `prog[pid]:` tag, ISO timestamps).
//!
//! [`parse`] reads the header, reports `syslog_facility`, `program`, `pid`, `msgid` and each SD
//! parameter (`sd_<name>`) to the sink, sets host/severity/time/message in [`LineInfo`] and returns
//! the offset of the message part, which the caller may parse further (an HAProxy line inside
//! syslog). Pure byte parsing, no allocation.

use memchr::memchr;

use super::text::{Escaping, parse_bsd_date, parse_rfc3339, parse_u64};
use super::{Context, FieldSink, LineInfo, ParseError, Value};

/// Does the line start like a syslog message (`<PRI>`, a BSD date, or an ISO date)?
pub fn looks_like_syslog(line: &[u8]) -> bool {
    match line.first() {
        Some(b'<') => line.get(1).is_some_and(u8::is_ascii_digit),
        Some(c) if c.is_ascii_uppercase() => {
            line.len() > 16
                && super::text::month(&line[0..3]).is_some()
                && line[3] == b' '
                && line[9] == b':'
        }
        Some(c) if c.is_ascii_digit() => {
            line.len() > 20
                && line[4] == b'-'
                && line[7] == b'-'
                && line[10] == b'T'
                && line[..4].iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// Parses a syslog header; returns the offset where the message starts.
pub fn parse<'a, S: FieldSink>(
    line: &'a [u8],
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<usize, ParseError> {
    info.format = "syslog";
    let mut pos = 0;
    if line.first() == Some(&b'<') {
        let end = line
            .iter()
            .take(5)
            .position(|&c| c == b'>')
            .ok_or(ParseError::at("expected `>` closing PRI", 1))?;
        let pri = parse_u64(&line[1..end])
            .filter(|&p| p <= 191)
            .ok_or(ParseError::at("bad PRI", 1))?;
        sink.field("syslog_facility", Value::Int((pri / 8) as i64));
        info.severity = Some((pri % 8) as u8);
        pos = end + 1;
        if line.get(pos) == Some(&b'1') && line.get(pos + 1) == Some(&b' ') {
            return parse_5424(line, pos + 2, cx, sink, info);
        }
    }
    parse_3164(line, pos, cx, sink, info)
}

fn token(line: &[u8], pos: usize) -> (&[u8], usize) {
    let rest = &line[pos.min(line.len())..];
    match memchr(b' ', rest) {
        Some(i) => (&rest[..i], pos + i + 1),
        None => (rest, line.len()),
    }
}

fn nil(b: &[u8]) -> Option<&[u8]> {
    if b == b"-" || b.is_empty() {
        None
    } else {
        Some(b)
    }
}

fn parse_5424<'a, S: FieldSink>(
    line: &'a [u8],
    mut pos: usize,
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<usize, ParseError> {
    info.format = "syslog-rfc5424";
    let start = pos;
    let (ts, p) = token(line, pos);
    if ts != b"-" {
        info.timestamp_ms =
            Some(parse_rfc3339(ts).ok_or(ParseError::at("bad RFC 5424 timestamp", start))?);
    }
    pos = p;
    let (host, p) = token(line, pos);
    info.host = nil(host);
    pos = p;
    let (app, p) = token(line, pos);
    if let Some(app) = nil(app) {
        sink.field("program", Value::Str(app));
        info.program = Some(app);
    }
    pos = p;
    let (procid, p) = token(line, pos);
    if let Some(procid) = nil(procid) {
        sink.field(
            "pid",
            parse_u64(procid).map_or(Value::Str(procid), |v| Value::Int(v as i64)),
        );
    }
    pos = p;
    let (msgid, p) = token(line, pos);
    if let Some(msgid) = nil(msgid) {
        sink.field("msgid", Value::Str(msgid));
    }
    pos = p;
    if pos >= line.len() {
        return Err(ParseError::at("expected structured data", pos));
    }
    if line[pos] == b'-' {
        pos += 1;
    } else {
        pos = parse_sd(line, pos, cx, sink, info)?;
    }
    if pos < line.len() {
        if line[pos] != b' ' {
            return Err(ParseError::at("expected a space before MSG", pos));
        }
        pos += 1;
    }
    if line[pos..].starts_with(b"\xEF\xBB\xBF") {
        pos += 3;
    }
    info.message = Some(Value::Str(&line[pos..]));
    Ok(pos)
}

/// Parses one or more SD-ELEMENTs starting at `pos` (`[`); returns the offset after them.
fn parse_sd<'a, S: FieldSink>(
    line: &'a [u8],
    mut pos: usize,
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<usize, ParseError> {
    if line.get(pos) != Some(&b'[') {
        return Err(ParseError::at(
            "expected `[` or `-` for structured data",
            pos,
        ));
    }
    while line.get(pos) == Some(&b'[') {
        pos += 1;
        let id_at = pos;
        let id_end = line[pos..]
            .iter()
            .position(|&c| c == b' ' || c == b']')
            .ok_or(ParseError::at("unterminated SD element", pos))?;
        if id_end == 0 {
            return Err(ParseError::at("empty SD-ID", pos));
        }
        pos += id_end;
        loop {
            match line.get(pos) {
                Some(b']') => {
                    pos += 1;
                    break;
                }
                Some(b' ') => pos += 1,
                _ => return Err(ParseError::at("expected ` ` or `]` in SD element", pos)),
            }
            let eq = memchr(b'=', &line[pos..])
                .ok_or(ParseError::at("expected `=` in SD parameter", pos))?;
            let name = &line[pos..pos + eq];
            if name.is_empty()
                || name.len() > 32
                || name.iter().any(|&c| c == b' ' || c == b']' || c == b'"')
            {
                return Err(ParseError::at("bad SD parameter name", pos));
            }
            pos += eq + 1;
            if line.get(pos) != Some(&b'"') {
                return Err(ParseError::at(
                    "expected `\"` opening SD parameter value",
                    pos,
                ));
            }
            pos += 1;
            let vstart = pos;
            loop {
                match line.get(pos) {
                    None => return Err(ParseError::at("unterminated SD parameter value", vstart)),
                    Some(b'\\') => pos += 2,
                    Some(b'"') => break,
                    Some(_) => pos += 1,
                }
            }
            let value = &line[vstart..pos.min(line.len())];
            pos += 1;
            let sd_id = &line[id_at..id_at + id_end];
            if cx.sd.is_some_and(|sd| {
                sd.emit(
                    sd_id,
                    name,
                    &line[vstart - 1..pos.min(line.len())],
                    cx,
                    sink,
                    info,
                )
            }) {
                continue;
            }
            let v = if memchr(b'\\', value).is_some() {
                Value::Escaped(value, Escaping::Sd)
            } else {
                Value::number_or_str(value)
            };
            sink.dynamic_field("sd_", name, v);
            info.offer_txn_id(cx.txn, name, v);
        }
    }
    Ok(pos)
}

fn parse_3164<'a, S: FieldSink>(
    line: &'a [u8],
    mut pos: usize,
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<usize, ParseError> {
    info.format = "syslog-rfc3164";
    let rest = &line[pos..];
    if rest.len() >= 16 && rest[15] == b' ' {
        if let Some(t) = parse_bsd_date(&rest[..15], cx.received_ms, cx.zone) {
            info.timestamp_ms = Some(t);
            pos += 16;
        }
    }
    if info.timestamp_ms.is_none() && rest.first().is_some_and(u8::is_ascii_digit) {
        let (ts, p) = token(line, pos);
        if let Some(t) = parse_rfc3339(ts) {
            info.timestamp_ms = Some(t);
            pos = p;
        }
    }
    if info.timestamp_ms.is_none() {
        // `<PRI>message`: no header beyond PRI.
        info.message = Some(Value::Str(&line[pos..]));
        return Ok(pos);
    }
    // HOSTNAME is present unless the next token is the tag.
    let (first, after_first) = token(line, pos);
    let is_tag = |t: &[u8]| t.ends_with(b":") || memchr(b'[', t).is_some();
    if !is_tag(first) && after_first < line.len() {
        let (second, _) = token(line, after_first);
        if is_tag(second) {
            info.host = nil(first);
            pos = after_first;
        }
    }
    // TAG: program[pid]: or program:
    let (tag, after_tag) = token(line, pos);
    if is_tag(tag) {
        let tag = tag.strip_suffix(b":").unwrap_or(tag);
        let (program, pid) = match memchr(b'[', tag) {
            Some(i) if tag.ends_with(b"]") => (&tag[..i], Some(&tag[i + 1..tag.len() - 1])),
            _ => (tag, None),
        };
        if !program.is_empty() {
            sink.field("program", Value::Str(program));
            info.program = Some(program);
        }
        if let Some(pid) = pid.filter(|p| !p.is_empty()) {
            sink.field(
                "pid",
                parse_u64(pid).map_or(Value::Str(pid), |v| Value::Int(v as i64)),
            );
        }
        pos = after_tag;
    }
    info.message = Some(Value::Str(&line[pos..]));
    Ok(pos)
}

/// The parts of a syslog header, for callers that route on them rather than build GELF (the
/// syslog source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header<'a> {
    pub rfc5424: bool,
    pub facility: Option<u8>,
    pub severity: Option<u8>,
    pub timestamp_ms: Option<i64>,
    pub host: Option<&'a [u8]>,
    /// APP-NAME or the TAG's program.
    pub app: Option<&'a [u8]>,
    /// PROCID or the TAG's `[pid]`.
    pub procid: Option<&'a [u8]>,
    pub msgid: Option<&'a [u8]>,
    /// The structured data as it stands in the line (`[id k="v"]…`), RFC 5424 only.
    pub structured_data: Option<&'a [u8]>,
    /// Where the message starts in the line.
    pub message_offset: usize,
}

impl<'a> Header<'a> {
    /// The message part of `line` (the line this header was read from).
    pub fn message(&self, line: &'a [u8]) -> &'a [u8] {
        &line[self.message_offset.min(line.len())..]
    }
}

#[derive(Default)]
struct FacilitySink(Option<u8>);

impl FieldSink for FacilitySink {
    fn field(&mut self, name: &str, value: Value<'_>) {
        if let ("syslog_facility", Value::Int(f)) = (name, value) {
            self.0 = u8::try_from(f).ok();
        }
    }
    fn dynamic_field(&mut self, _: &str, _: &[u8], _: Value<'_>) {}
    fn mark(&self) -> usize {
        0
    }
    fn rollback(&mut self, _: usize) {}
}

fn offset_in(line: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(line.as_ptr() as usize)
}

/// Reads a syslog header (RFC 5424 or 3164) without building fields. `received_ms` picks the year
/// of RFC 3164 dates; `zone` is their zone.
pub fn header<'a>(
    line: &'a [u8],
    received_ms: i64,
    zone: &super::LogZone,
) -> Result<Header<'a>, ParseError> {
    let txn = super::TxnIdSources::new::<&str>(&[]);
    let cx = Context {
        zone,
        received_ms,
        txn: &txn,
        sd: None,
    };
    let mut sink = FacilitySink::default();
    let mut info = LineInfo::default();
    let msg_at = parse(line, &cx, &mut sink, &mut info)?;
    let mut h = Header {
        rfc5424: info.format == "syslog-rfc5424",
        facility: sink.0,
        severity: info.severity,
        timestamp_ms: info.timestamp_ms,
        host: info.host,
        app: info.program,
        message_offset: msg_at,
        ..Header::default()
    };
    if h.rfc5424 {
        // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD: the fields after the version.
        let pri_end = memchr(b'>', line).map_or(0, |i| i + 3);
        let mut pos = pri_end;
        let mut toks = [&line[..0]; 5];
        for t in &mut toks {
            let (tok, next) = token(line, pos);
            *t = tok;
            pos = next;
        }
        h.procid = nil(toks[3]);
        h.msgid = nil(toks[4]);
        let sd_end = if msg_at > pos && line.get(msg_at - 1) == Some(&b' ') {
            msg_at - 1
        } else {
            msg_at.max(pos)
        };
        let sd = &line[pos.min(sd_end)..sd_end];
        h.structured_data = nil(sd);
    } else if let Some(app) = info.program {
        let after = offset_in(line, app) + app.len();
        if line.get(after) == Some(&b'[') {
            if let Some(close) = memchr(b']', &line[after..]) {
                h.procid = nil(&line[after + 1..after + close]);
            }
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{FieldList, LogZone, TxnIdSources};

    fn run(
        line: &[u8],
    ) -> (
        Result<usize, ParseError>,
        FieldList,
        Option<i64>,
        Option<Vec<u8>>,
    ) {
        let txn = TxnIdSources::default();
        let cx = Context {
            zone: &crate::parse::LogZone::UTC,
            received_ms: 1_795_396_130_000,
            txn: &txn,
            sd: None,
        };
        let mut f = FieldList::default();
        let mut info = LineInfo::default();
        let r = parse(line, &cx, &mut f, &mut info);
        (r, f, info.timestamp_ms, info.host.map(<[u8]>::to_vec))
    }

    #[test]
    fn rfc3164_haproxy_local() {
        let line = b"<134>Nov 23 01:08:50 haproxy[8425]: 127.0.0.1:58374 [x]";
        let (r, f, ts, host) = run(line);
        assert_eq!(&line[r.unwrap()..], b"127.0.0.1:58374 [x]");
        assert_eq!(f.get_str("program"), Some("haproxy"));
        assert_eq!(f.get_int("pid"), Some(8425));
        assert_eq!(f.get_int("syslog_facility"), Some(16));
        assert_eq!(ts, Some(1_795_396_130_000));
        assert_eq!(host, None);
    }

    #[test]
    fn rfc3164_with_host() {
        let line = b"<13>Nov  3 01:08:50 web1 app: hello world";
        let (r, f, _, host) = run(line);
        assert_eq!(&line[r.unwrap()..], b"hello world");
        assert_eq!(host.as_deref(), Some(&b"web1"[..]));
        assert_eq!(f.get_str("program"), Some("app"));
    }

    #[test]
    fn rfc5424_sd() {
        let line = br#"<134>1 2026-11-23T01:08:50.486919+00:00 h1 haproxy 8425 - [exp@32473 tid="plain-0002" q="a\"b\]"] msg"#;
        let (r, f, ts, host) = run(line);
        assert_eq!(&line[r.unwrap()..], b"msg");
        assert_eq!(f.get_str("sd_tid"), Some("plain-0002"));
        assert_eq!(f.get_str("sd_q"), Some("a\"b]"));
        assert_eq!(ts, Some(1_795_396_130_486));
        assert_eq!(host.as_deref(), Some(&b"h1"[..]));
    }

    #[test]
    fn header_only() {
        let line = br#"<134>1 2026-11-23T01:08:50Z h1 haproxy 8425 ID47 [a b="c"][d] the msg"#;
        let h = header(line, 0, &LogZone::UTC).unwrap();
        assert!(h.rfc5424);
        assert_eq!((h.facility, h.severity), (Some(16), Some(6)));
        assert_eq!(h.app, Some(&b"haproxy"[..]));
        assert_eq!(h.procid, Some(&b"8425"[..]));
        assert_eq!(h.msgid, Some(&b"ID47"[..]));
        assert_eq!(h.structured_data, Some(&br#"[a b="c"][d]"#[..]));
        assert_eq!(h.message(line), b"the msg");
        let line = b"<13>Nov 23 01:08:50 web1 app[77]: hi";
        let h = header(line, 1_795_396_130_000, &LogZone::UTC).unwrap();
        assert_eq!(h.host, Some(&b"web1"[..]));
        assert_eq!(h.procid, Some(&b"77"[..]));
        assert_eq!(h.message(line), b"hi");
        assert!(header(b"<x>", 0, &LogZone::UTC).is_err());
    }

    #[test]
    fn rfc5424_errors_have_columns() {
        let (r, ..) = run(b"<134>1 2026-11-23T01:08:50Z h a p m [x a=\"unterminated");
        assert_eq!(r.unwrap_err().what, "unterminated SD parameter value");
        let (r, ..) = run(b"<999>x");
        assert_eq!(r.unwrap_err().column, 2);
    }
}
