//! The Apache 2.4 error log in its default format:
//! `[Mon Nov 23 01:08:47.948531 2026] [module:level] [pid P:tid T] (errno)Text: [client ip:port] AHnnnnn: message, referer: x`.
//!
//! Every bracketed part after the level is optional, as in Apache's own output.

use memchr::memchr;

use crate::parse::text::{parse_ctime_date, parse_i64};
use crate::parse::{Context, FieldSink, LineInfo, ParseError, Value};

/// `[Www Mmm …` at the start.
pub fn looks_like_error_log(line: &[u8]) -> bool {
    line.len() > 26
        && line[0] == b'['
        && line[4] == b' '
        && line[1..4].iter().all(u8::is_ascii_alphabetic)
}

/// Syslog severity of an Apache log level.
pub(super) fn severity(level: &[u8]) -> Option<u8> {
    Some(match level {
        b"emerg" => 0,
        b"alert" => 1,
        b"crit" => 2,
        b"error" => 3,
        b"warn" => 4,
        b"notice" => 5,
        b"info" => 6,
        _ if level.starts_with(b"debug") || level.starts_with(b"trace") => 7,
        _ => return None,
    })
}

pub fn parse<'a, S: FieldSink>(
    line: &'a [u8],
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<(), ParseError> {
    let close = memchr(b']', line).ok_or(ParseError::at("expected `]` after the date", 1))?;
    let t = parse_ctime_date(&line[1..close], cx.zone).ok_or(ParseError::at("bad date", 1))?;
    info.timestamp_ms = Some(t);
    info.own_time = true;
    let mut pos = close + 1;
    // [module:level]
    if !line[pos..].starts_with(b" [") {
        return Err(ParseError::at("expected ` [module:level]`", pos));
    }
    let lv_start = pos + 2;
    let lv_end =
        memchr(b']', &line[lv_start..]).ok_or(ParseError::at("expected `]`", lv_start))? + lv_start;
    let ml = &line[lv_start..lv_end];
    let (module, level) = match memchr::memrchr(b':', ml) {
        Some(c) => (&ml[..c], &ml[c + 1..]),
        None => (&b""[..], ml),
    };
    let sev = severity(level).ok_or(ParseError::at("unknown log level", lv_start))?;
    if !module.is_empty() {
        sink.field("module", Value::Str(module));
    }
    sink.field("apache_level", Value::Str(level));
    info.severity = Some(sev);
    pos = lv_end + 1;
    // [pid P:tid T] or [pid P]
    if line[pos..].starts_with(b" [pid ") {
        let s = pos + 6;
        let e = memchr(b']', &line[s..]).ok_or(ParseError::at("expected `]`", s))? + s;
        let inner = &line[s..e];
        let (pid, tid) = match memchr::memmem::find(inner, b":tid ") {
            Some(c) => (&inner[..c], Some(&inner[c + 5..])),
            None => (inner, None),
        };
        sink.field("pid", parse_i64(pid).map_or(Value::Str(pid), Value::Int));
        if let Some(tid) = tid {
            sink.field(
                "thread_id",
                parse_i64(tid).map_or(Value::Str(tid), Value::Int),
            );
        }
        pos = e + 1;
    }
    if line.get(pos) == Some(&b' ') {
        pos += 1;
    }
    // (errno)Text:
    if line.get(pos) == Some(&b'(') {
        if let Some(cp) = memchr(b')', &line[pos..]) {
            if let Some(errno) = parse_i64(&line[pos + 1..pos + cp]) {
                let text_start = pos + cp + 1;
                let colon =
                    memchr::memmem::find(&line[text_start..], b": ").map(|c| c + text_start);
                if let Some(colon) = colon {
                    sink.field("os_errno", Value::Int(errno));
                    sink.field("os_error", Value::Str(&line[text_start..colon]));
                    pos = colon + 2;
                }
            }
        }
    }
    // [client ip:port] / [remote ip:port]
    for tag in [&b"[client "[..], b"[remote "] {
        if line[pos..].starts_with(tag) {
            let s = pos + tag.len();
            let e = memchr(b']', &line[s..]).ok_or(ParseError::at("expected `]`", s))? + s;
            let addr = &line[s..e];
            match memchr::memrchr(b':', addr)
                .filter(|&c| parse_i64(&addr[c + 1..]).is_some() && c > 0)
            {
                Some(c) => {
                    sink.field("client_ip", Value::Str(&addr[..c]));
                    sink.field(
                        "client_port",
                        Value::Int(parse_i64(&addr[c + 1..]).unwrap_or(0)),
                    );
                }
                None => sink.field("client_ip", Value::Str(addr)),
            }
            pos = e + 1;
            if line.get(pos) == Some(&b' ') {
                pos += 1;
            }
        }
    }
    let mut msg = &line[pos..];
    if msg.len() > 9
        && msg.starts_with(b"AH")
        && msg[7] == b':'
        && msg[2..7].iter().all(u8::is_ascii_digit)
    {
        sink.field("error_code", Value::Str(&msg[..7]));
    }
    if let Some(r) = memchr::memmem::rfind(msg, b", referer: ") {
        sink.field("referer", Value::Str(&msg[r + 11..]));
        msg = &msg[..r];
    }
    info.message = Some(Value::Str(msg));
    Ok(())
}
