//! Apache 2.4 `ErrorLogFormat` strings compiled into error-line matchers (mod_core's format:
//! `%t`, `%{u}t`, `%{cu}t`, `%l`, `%m`, `%P`, `%T`, `%{g}T`, `%a`, `%{c}a`, `%A`, `%E`, `%F`,
//! `%L`, `%{c}L`, `%{C}L`, `%k`, `%v`, `%V`, `%M`, `%{name}i`, `%{name}e`, `%{name}n`).
//!
//! Fields: Apache splits the format at spaces (which it writes) and at `% ` (which writes
//! nothing); `\ ` is a space inside a field. When an item of a field is empty Apache leaves the
//! whole field out, separator included (Debian's 2.4 writes `[pidAH00489: …` for
//! `[pid %P]\ [client\ %a] %M` at startup, when there is no client), so every field is optional
//! here; the message `%M` is a field of its own. `%-`/`%+` modifiers and a numeric `%4l` minimum
//! length are accepted. Pure.

use memchr::memchr;

use crate::parse::text::{Escaping, parse_ctime_date, parse_i64};
use crate::parse::{Context, FieldSink, LineInfo, ParseError, Value};

const MAX_FORMAT_LEN: usize = 8 * 1024;
const MAX_ITEMS: usize = 256;

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Lit(Box<[u8]>),
    Var { code: u8, arg: Option<Box<str>> },
}

/// A compiled ErrorLogFormat: fields (separated by `\ `), each a list of items.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorLogFormat {
    fields: Vec<Vec<Item>>,
}

/// Why an ErrorLogFormat did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorFormatError {
    #[error("unknown ErrorLogFormat item %{0} at byte {1}")]
    Unknown(char, usize),
    #[error("unterminated %{{…}} at byte {0}")]
    Unterminated(usize),
    #[error("format too long or too many items")]
    TooLong,
}

const CODES: &[u8] = b"aAeEFikLlmMnPtTvV";

impl ErrorLogFormat {
    pub fn compile(fmt: &str) -> Result<ErrorLogFormat, ErrorFormatError> {
        let s = fmt.as_bytes();
        if s.len() > MAX_FORMAT_LEN {
            return Err(ErrorFormatError::TooLong);
        }
        let mut fields: Vec<Vec<Item>> = vec![Vec::new()];
        let mut lit = Vec::new();
        let mut n = 0;
        let mut i = 0;
        let flush = |lit: &mut Vec<u8>, fields: &mut Vec<Vec<Item>>| {
            if !lit.is_empty() {
                let l = std::mem::take(lit).into_boxed_slice();
                if let Some(f) = fields.last_mut() {
                    f.push(Item::Lit(l));
                }
            }
        };
        while i < s.len() {
            match s[i] {
                b'%' if s.get(i + 1) == Some(&b'%') => {
                    lit.push(b'%');
                    i += 2;
                }
                b'%' if s.get(i + 1) == Some(&b' ') => {
                    // A field separator that writes nothing.
                    flush(&mut lit, &mut fields);
                    fields.push(Vec::new());
                    i += 2;
                }
                b' ' => {
                    flush(&mut lit, &mut fields);
                    fields.push(Vec::new());
                    lit.push(b' ');
                    i += 1;
                }
                b'%' => {
                    let at = i;
                    i += 1;
                    while i < s.len() && (matches!(s[i], b'-' | b'+') || s[i].is_ascii_digit()) {
                        i += 1;
                    }
                    let mut arg = None;
                    if s.get(i) == Some(&b'{') {
                        let end =
                            memchr(b'}', &s[i..]).ok_or(ErrorFormatError::Unterminated(at))? + i;
                        arg = Some(fmt[i + 1..end].into());
                        i = end + 1;
                    }
                    let code = *s.get(i).ok_or(ErrorFormatError::Unknown('%', at))?;
                    if !CODES.contains(&code) {
                        let ch = fmt[i..].chars().next().unwrap_or('?');
                        return Err(ErrorFormatError::Unknown(ch, at));
                    }
                    i += 1;
                    flush(&mut lit, &mut fields);
                    if code == b'M' {
                        fields.push(Vec::new());
                    }
                    if let Some(f) = fields.last_mut() {
                        f.push(Item::Var { code, arg });
                    }
                    if code == b'M' {
                        fields.push(Vec::new());
                    }
                    n += 1;
                }
                b'\\' if i + 1 < s.len() => {
                    lit.push(match s[i + 1] {
                        b'n' => b'\n',
                        b't' => b'\t',
                        c => c,
                    });
                    i += 2;
                }
                c => {
                    lit.push(c);
                    i += 1;
                }
            }
            if n > MAX_ITEMS {
                return Err(ErrorFormatError::TooLong);
            }
        }
        flush(&mut lit, &mut fields);
        fields.retain(|f| !f.is_empty());
        Ok(ErrorLogFormat { fields })
    }

    /// Matches an error line; every field may be absent (left out by Apache when empty).
    pub fn parse<'a, S: FieldSink>(
        &self,
        line: &'a [u8],
        cx: &Context<'_>,
        sink: &mut S,
        info: &mut LineInfo<'a>,
    ) -> Result<(), ParseError> {
        let mut pos = 0;
        let mut furthest = ParseError::at("not an error line of this ErrorLogFormat", 0);
        let mut any = false;
        for field in &self.fields {
            let mark = sink.mark();
            let saved = *info;
            match match_field(field, line, pos, cx, sink, info) {
                Ok(end) => {
                    pos = end;
                    any = true;
                }
                // The time and the level are never empty: their fields must be there.
                Err(e) if required(field) => return Err(e),
                Err(e) => {
                    sink.rollback(mark);
                    *info = saved;
                    if e.column >= furthest.column {
                        furthest = e;
                    }
                }
            }
        }
        if !any || pos != line.len() {
            return Err(if pos != line.len() && any {
                ParseError::at("unexpected data after the last field", pos)
            } else {
                furthest
            });
        }
        Ok(())
    }
}

fn required(field: &[Item]) -> bool {
    field.iter().any(|it| {
        matches!(
            it,
            Item::Var {
                code: b't' | b'l',
                ..
            }
        )
    })
}

fn match_field<'a, S: FieldSink>(
    items: &[Item],
    line: &'a [u8],
    mut pos: usize,
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<usize, ParseError> {
    for (k, item) in items.iter().enumerate() {
        match item {
            Item::Lit(l) => {
                if !line[pos..].starts_with(l) {
                    return Err(ParseError::at(
                        "expected literal text of the ErrorLogFormat",
                        pos,
                    ));
                }
                pos += l.len();
            }
            Item::Var { code, arg } => {
                let next = match items.get(k + 1) {
                    Some(Item::Lit(l)) => l.first().copied(),
                    _ => None,
                };
                let end = match (code, next) {
                    // The message runs to the end of the line (or the next field's literal).
                    (b'M', None) => line.len(),
                    // ctime dates hold spaces: up to the literal after them (`]`).
                    (b't', Some(c)) => memchr(c, &line[pos..]).map_or(line.len(), |i| pos + i),
                    (_, Some(c)) => memchr(c, &line[pos..]).map_or(line.len(), |i| pos + i),
                    (_, None) => memchr(b' ', &line[pos..]).map_or(line.len(), |i| pos + i),
                };
                let v = &line[pos..end];
                if v.is_empty() && *code != b'M' {
                    return Err(ParseError::at("empty ErrorLogFormat item", pos));
                }
                emit(*code, arg.as_deref(), v, pos, cx, sink, info)?;
                pos = end;
            }
        }
    }
    Ok(pos)
}

fn esc(v: &[u8]) -> Value<'_> {
    if memchr(b'\\', v).is_some() {
        Value::Escaped(v, Escaping::Apache)
    } else {
        Value::Str(v)
    }
}

fn emit<'a, S: FieldSink>(
    code: u8,
    arg: Option<&str>,
    v: &'a [u8],
    at: usize,
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<(), ParseError> {
    let num = |v: &'a [u8]| parse_i64(v).map_or(Value::Str(v), Value::Int);
    match code {
        b't' => {
            let t = match arg {
                Some("cu") => compact_iso(v, cx),
                _ => parse_ctime_date(v, cx.zone),
            }
            .ok_or(ParseError::at("bad date", at))?;
            info.timestamp_ms = Some(t);
            info.own_time = true;
        }
        b'l' => {
            let sev = super::error::severity(v).ok_or(ParseError::at("unknown log level", at))?;
            sink.field("apache_level", Value::Str(v));
            info.severity = Some(sev);
        }
        b'm' => sink.field("module", Value::Str(v)),
        b'P' => sink.field("pid", num(v)),
        b'T' => sink.field("thread_id", num(v)),
        b'a' | b'A' => {
            let (ip, port) = match memchr::memrchr(b':', v) {
                Some(c) if c > 0 && parse_i64(&v[c + 1..]).is_some() => {
                    (&v[..c], parse_i64(&v[c + 1..]))
                }
                _ => (v, None),
            };
            let (ipn, portn) = match (code, arg) {
                (b'A', _) => ("server_ip", "server_port"),
                (_, Some("c")) => ("peer_ip", "peer_port"),
                _ => ("client_ip", "client_port"),
            };
            sink.field(ipn, Value::Str(ip));
            if let Some(p) = port {
                sink.field(portn, Value::Int(p));
            }
        }
        b'E' => {
            // `(2)No such file or directory`
            match v
                .strip_prefix(b"(")
                .and_then(|r| memchr(b')', r).map(|c| (&r[..c], &r[c + 1..])))
            {
                Some((n, text)) if parse_i64(n).is_some() => {
                    sink.field("os_errno", num(n));
                    sink.field("os_error", Value::Str(text));
                }
                _ => sink.field("os_error", Value::Str(v)),
            }
        }
        b'F' => sink.field("source_file", Value::Str(v)),
        b'L' => sink.field(
            match arg {
                Some("c") | Some("C") => "connection_log_id",
                _ => "log_id",
            },
            Value::Str(v),
        ),
        b'k' => sink.field("keepalive_requests", num(v)),
        b'v' => sink.field("vhost", Value::Str(v)),
        b'V' => sink.field("server_name", Value::Str(v)),
        b'M' => {
            if v.len() > 9 && v.starts_with(b"AH") && v[7] == b':' {
                sink.field("error_code", Value::Str(&v[..7]));
            }
            info.message = Some(esc(v));
        }
        b'i' | b'e' | b'n' => {
            let name = arg.unwrap_or("");
            let prefix = match code {
                b'i' => "request_header_",
                b'e' => "env_",
                _ => "note_",
            };
            if v != b"-" {
                sink.dynamic_field(prefix, name.as_bytes(), esc(v));
                info.offer_txn_id(cx.txn, name.as_bytes(), esc(v));
            }
        }
        _ => {}
    }
    Ok(())
}

/// `%{cu}t`: `2026-11-23 01:08:47.948531` in the zone of the log.
fn compact_iso(v: &[u8], cx: &Context<'_>) -> Option<i64> {
    let (whole, frac) = match memchr(b'.', v) {
        Some(d) => (&v[..d], &v[d + 1..]),
        None => (v, &b""[..]),
    };
    let t = super::strftime::parse("%Y-%m-%d %H:%M:%S", whole, cx.zone)?.timestamp_ms?;
    let ms = frac
        .iter()
        .take(3)
        .chain(std::iter::repeat(&b'0'))
        .take(3)
        .try_fold(0i64, |a, c| {
            c.is_ascii_digit().then(|| a * 10 + i64::from(c - b'0'))
        })?;
    Some(t + if frac.is_empty() { 0 } else { ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{FieldList, LogZone, TxnIdSources};

    #[test]
    fn documented_formats() {
        let txn = TxnIdSources::default();
        let cx = Context {
            zone: &LogZone::UTC,
            received_ms: 0,
            txn: &txn,
            sd: None,
        };
        let f = ErrorLogFormat::compile(r"[%{cu}t] [%-m:%-l] %-a %-L %M").unwrap();
        let mut fl = FieldList::default();
        let mut info = LineInfo::default();
        f.parse(
            b"[2026-11-23 01:08:47.948531] [core:error] 10.0.0.5:4444 YWJj AH00037: gone",
            &cx,
            &mut fl,
            &mut info,
        )
        .unwrap();
        assert_eq!(info.timestamp_ms, Some(1_795_396_127_948));
        assert_eq!(info.severity, Some(3));
        assert_eq!(fl.get_str("client_ip"), Some("10.0.0.5"));
        assert_eq!(fl.get_str("log_id"), Some("YWJj"));
        assert_eq!(fl.get_str("error_code"), Some("AH00037"));
        let f = ErrorLogFormat::compile(r"[%t] [%l] [pid %P] [client\ %a] %M").unwrap();
        let mut fl = FieldList::default();
        let mut info = LineInfo::default();
        // The client field is left out (no client).
        f.parse(
            b"[Mon Nov 23 01:08:47.948531 2026] [notice] [pid 12] AH00094: Command line",
            &cx,
            &mut fl,
            &mut info,
        )
        .unwrap();
        assert_eq!(fl.get_int("pid"), Some(12));
        assert_eq!(fl.get_str("client_ip"), None);
        assert_eq!(info.message, Some(Value::Str(b"AH00094: Command line")));
        assert!(ErrorLogFormat::compile("%Z").is_err());
    }
}
