//! Apache `LogFormat` strings compiled into line matchers (mod_log_config directives, with
//! Apache's `\xhh`, `\"` and `\\` escapes in logged values).
//!
//! Pure, allocation-free matching; the compiler allocates once per format.

use memchr::memchr;

use crate::parse::text::{Escaping, parse_clf_date, parse_i64};
use crate::parse::{Context, FieldSink, LineInfo, ParseError, Value};

pub const COMMON: &str = r#"%h %l %u %t "%r" %>s %b"#;
pub const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;
pub const COMBINEDIO: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %I %O"#;
/// Debian's `vhost_combined`.
pub const VHOST_COMBINED: &str = r#"%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#;

/// The format a nickname stands for.
pub fn nickname(name: &str) -> Option<&'static str> {
    Some(match name {
        "common" => COMMON,
        "combined" => COMBINED,
        "combinedio" => COMBINEDIO,
        "vhost_combined" => VHOST_COMBINED,
        _ => return None,
    })
}

const MAX_FORMAT_LEN: usize = 16 * 1024;
const MAX_ITEMS: usize = 512;

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Lit(Box<[u8]>),
    /// `dup`: an earlier directive already reports the same field (e.g. `%b` and `%B`).
    Var {
        code: u8,
        arg: Option<Box<str>>,
        dup: bool,
    },
}

/// Directives that report the same field share a key.
fn field_key(code: u8, arg: Option<&str>) -> (u8, String) {
    let code = match code {
        b'b' => b'B',
        b'a' if arg.is_none() => b'h',
        c => c,
    };
    (code, arg.unwrap_or("").to_ascii_lowercase())
}

/// A compiled LogFormat.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFormat {
    items: Vec<Item>,
}

impl LogFormat {
    /// The same format with its `%b` reported as `response_body_or_sent_bytes`: for the
    /// nicknames `combined` and `common` without the config that defines them, which upstream
    /// httpd defines with `%b` (body bytes) and Debian/Ubuntu with `%O` (bytes sent, headers
    /// included). The line does not say which; the field is named for that.
    pub(crate) fn with_ambiguous_size(mut self) -> LogFormat {
        for item in &mut self.items {
            if let Item::Var { code: c @ b'b', .. } = item {
                *c = AMBIGUOUS_SIZE;
            }
        }
        self
    }
}

/// Internal directive code of an ambiguous `%b`/`%O` (see [`LogFormat::with_ambiguous_size`]).
const AMBIGUOUS_SIZE: u8 = b'~';

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("unknown directive %{0} at byte {1}")]
    UnknownDirective(char, usize),
    #[error("unterminated %{{…}} at byte {0}")]
    Unterminated(usize),
    #[error("format too long or too many items")]
    TooLong,
    #[error("empty format")]
    Empty,
}

const CODES: &[u8] = b"aABbCDefhHiIklLmnoOpPqrRsStTuUvVXx";

impl LogFormat {
    pub fn compile(fmt: &str) -> Result<LogFormat, CompileError> {
        let s = fmt.as_bytes();
        if s.len() > MAX_FORMAT_LEN {
            return Err(CompileError::TooLong);
        }
        let mut items = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'%' if s.get(i + 1) == Some(&b'%') => {
                    lit.push(b'%');
                    i += 2;
                }
                b'%' => {
                    let at = i;
                    i += 1;
                    // modifiers: < > ! and status lists
                    while i < s.len()
                        && (matches!(s[i], b'<' | b'>' | b'!' | b',') || s[i].is_ascii_digit())
                    {
                        i += 1;
                    }
                    let mut arg = None;
                    if s.get(i) == Some(&b'{') {
                        let end = memchr(b'}', &s[i..]).ok_or(CompileError::Unterminated(at))? + i;
                        arg = Some(fmt[i + 1..end].into());
                        i = end + 1;
                    }
                    // `%^ti` / `%^to` (trailers) are two-letter codes.
                    if s.get(i) == Some(&b'^') {
                        if !matches!(s.get(i + 1..i + 3), Some(b"ti" | b"to")) {
                            return Err(CompileError::UnknownDirective('^', at));
                        }
                        i += 3;
                        if !lit.is_empty() {
                            items.push(Item::Lit(std::mem::take(&mut lit).into_boxed_slice()));
                        }
                        items.push(Item::Var {
                            code: b'^',
                            arg,
                            dup: false,
                        });
                        continue;
                    }
                    let code = *s.get(i).ok_or(CompileError::UnknownDirective('%', at))?;
                    if !CODES.contains(&code) {
                        let ch = fmt[i..].chars().next().unwrap_or('?');
                        return Err(CompileError::UnknownDirective(ch, at));
                    }
                    i += 1;
                    if !lit.is_empty() {
                        items.push(Item::Lit(std::mem::take(&mut lit).into_boxed_slice()));
                    }
                    items.push(Item::Var {
                        code,
                        arg,
                        dup: false,
                    });
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
            if items.len() > MAX_ITEMS {
                return Err(CompileError::TooLong);
            }
        }
        if !lit.is_empty() {
            items.push(Item::Lit(lit.into_boxed_slice()));
        }
        if items.is_empty() {
            return Err(CompileError::Empty);
        }
        let mut seen: Vec<(u8, String)> = Vec::new();
        for it in &mut items {
            if let Item::Var { code, arg, dup } = it {
                let key = field_key(*code, arg.as_deref());
                if seen.contains(&key) {
                    *dup = true;
                } else {
                    seen.push(key);
                }
            }
        }
        Ok(LogFormat { items })
    }

    /// Matches `line` and reports its fields.
    pub fn parse<'a, S: FieldSink>(
        &self,
        line: &'a [u8],
        cx: &Context<'_>,
        sink: &mut S,
        info: &mut LineInfo<'a>,
    ) -> Result<(), ParseError> {
        let mut pos = 0;
        let n = self.items.len();
        for k in 0..n {
            match &self.items[k] {
                Item::Lit(l) => {
                    if !crate::parse::haproxy::logformat::starts_with_short(&line[pos..], l) {
                        return Err(ParseError::at(expected_lit(l), pos));
                    }
                    pos += l.len();
                }
                Item::Var { code, arg, dup } => {
                    let prev_quote =
                        k > 0 && matches!(&self.items[k - 1], Item::Lit(l) if l.ends_with(b"\""));
                    let next_lit: Option<&[u8]> = match self.items.get(k + 1) {
                        Some(Item::Lit(l)) => Some(l),
                        _ => None,
                    };
                    let start = pos;
                    let value: &'a [u8];
                    if *code == b't' && arg.is_none() {
                        if line.get(pos) != Some(&b'[') {
                            return Err(ParseError::at("expected `[`", pos));
                        }
                        let end = memchr(b']', &line[pos..])
                            .ok_or(ParseError::at("expected `]`", pos))?
                            + pos;
                        value = &line[pos + 1..end];
                        pos = end + 1;
                    } else if prev_quote && next_lit.is_some_and(|l| l.first() == Some(&b'"')) {
                        let end = quoted_end(line, pos)
                            .ok_or(ParseError::at("unterminated quoted field", pos))?;
                        value = &line[pos..end];
                        pos = end;
                    } else if *code == b't'
                        && let Some(fmt) = arg.as_deref().filter(|a| is_strftime(a))
                    {
                        // The value holds as many spaces as its format produces.
                        let mut end = pos;
                        for _ in 0..super::strftime::spaces(strip_begin_end(fmt)) {
                            end = memchr(b' ', &line[end..]).map_or(line.len(), |i| end + i + 1);
                        }
                        let stop = next_lit.and_then(|l| l.first().copied()).unwrap_or(b' ');
                        end = memchr(stop, &line[end.min(line.len())..])
                            .map_or(line.len(), |i| end + i);
                        value = &line[pos..end];
                        pos = end;
                    } else if *code == b'r' {
                        let mut end = pos;
                        for _ in 0..2 {
                            end = memchr(b' ', &line[end..]).map_or(line.len(), |i| end + i + 1);
                        }
                        let stop = next_lit.and_then(|l| l.first().copied()).unwrap_or(b' ');
                        end = memchr(stop, &line[end.min(line.len())..])
                            .map_or(line.len(), |i| end + i);
                        value = &line[pos..end];
                        pos = end;
                    } else {
                        let stop = next_lit.and_then(|l| l.first().copied()).unwrap_or(b' ');
                        let end = if stop == b':' && matches!(code, b'h' | b'a' | b'A') {
                            // an IPv6 address holds colons: the last one before the next space
                            let sp = memchr(b' ', &line[pos..]).map_or(line.len(), |i| pos + i);
                            memchr::memrchr(b':', &line[pos..sp]).map_or(sp, |i| pos + i)
                        } else {
                            crate::parse::haproxy::logformat::find_short(stop, &line[pos..])
                                .map_or(line.len(), |i| pos + i)
                        };
                        value = &line[pos..end];
                        pos = end;
                    }
                    if *dup {
                        let mut discard = crate::parse::Discard;
                        emit(
                            *code,
                            arg.as_deref(),
                            value,
                            start,
                            cx,
                            &mut discard,
                            &mut info.clone(),
                        )?;
                    } else {
                        emit(*code, arg.as_deref(), value, start, cx, sink, info)?;
                    }
                }
            }
        }
        if pos != line.len() {
            return Err(ParseError::at("unexpected data after the last field", pos));
        }
        Ok(())
    }
}

/// `begin:`/`end:` removed (Apache: when the time is taken; Quill reads both the same way).
fn strip_begin_end(a: &str) -> &str {
    a.strip_prefix("begin:")
        .or_else(|| a.strip_prefix("end:"))
        .unwrap_or(a)
}

/// A `%{…}t` argument that is a strftime format (not `sec`, `msec`, `usec`, `*_frac`).
fn is_strftime(a: &str) -> bool {
    !matches!(
        strip_begin_end(a),
        "sec" | "msec" | "usec" | "msec_frac" | "usec_frac"
    )
}

/// The index of the closing `"` of a field starting at `pos`, skipping `\"` and `\\`.
fn quoted_end(line: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let i = pos + memchr::memchr2(b'"', b'\\', &line[pos..])?;
        if line[i] == b'"' {
            return Some(i);
        }
        pos = i + 2;
        if pos > line.len() {
            return None;
        }
    }
}

fn esc(v: &[u8]) -> Value<'_> {
    if memchr(b'\\', v).is_some() {
        Value::Escaped(v, Escaping::Apache)
    } else {
        Value::Str(v)
    }
}

fn expected_lit(l: &[u8]) -> &'static str {
    match l.first() {
        Some(b' ') => "expected a space",
        Some(b'"') => "expected `\"`",
        Some(b'[') => "expected `[`",
        Some(b':') => "expected `:`",
        _ => "expected literal text of the LogFormat",
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
    let absent = v.is_empty() || v == b"-";
    let int = |v: &[u8]| parse_i64(v).ok_or(ParseError::at("expected a number", at));
    let s = |name: &str, sink: &mut S| {
        if !absent {
            sink.field(name, esc(v));
        }
    };
    match code {
        b'h' | b'a' => {
            if v.is_empty() || memchr(b' ', v).is_some() {
                return Err(ParseError::at("expected a client address", at));
            }
            s(
                if arg == Some("c") {
                    "peer_ip"
                } else {
                    "client_ip"
                },
                sink,
            )
        }
        b'A' => s("server_ip", sink),
        b'l' => s("ident", sink),
        b'u' => s("user", sink),
        b't' => match arg {
            None => {
                let t = parse_clf_date(v, cx.zone).ok_or(ParseError::at("bad date", at + 1))?;
                info.timestamp_ms = Some(t);
                info.own_time = true;
            }
            Some(a) => {
                let unit = strip_begin_end(a);
                if let Some(frac) = match unit {
                    "msec_frac" => Some(1),
                    "usec_frac" => Some(1000),
                    _ => None,
                } {
                    // The fraction of a time logged by an earlier `%{format}t`.
                    if let (Some(t), Some(n)) = (info.timestamp_ms, parse_i64(v)) {
                        info.timestamp_ms = Some(t + n / frac);
                    }
                    return Ok(());
                }
                if is_strftime(a) {
                    s("time", sink);
                    let Some(p) = super::strftime::parse(unit, v, cx.zone) else {
                        return Err(ParseError::at("time does not match its format", at));
                    };
                    match (p.timestamp_ms, p.offset_secs, info.timestamp_ms) {
                        (Some(t), _, _) => {
                            info.timestamp_ms = Some(t);
                            info.own_time = true;
                        }
                        // `[%{%d/%b/%Y:%H:%M:%S}t.%{msec_frac}t %{%z}t]` (Apache's docs): the
                        // offset of the time read before in the configured zone.
                        (None, Some(off), Some(t)) if unit.trim() == "%z" => {
                            info.timestamp_ms = Some(t + (cx.zone.offset_at(t) - off) * 1000);
                        }
                        _ => {}
                    }
                    return Ok(());
                }
                let div = match unit {
                    "sec" => Some(0),
                    "msec" => Some(1),
                    "usec" => Some(1000),
                    _ => None,
                };
                match div {
                    Some(d) => {
                        let n = int(v)?;
                        info.timestamp_ms = Some(if d == 0 {
                            n.saturating_mul(1000)
                        } else {
                            n / d
                        });
                        info.own_time = true;
                    }
                    None => s("time", sink),
                }
            }
        },
        b'r' => {
            if !absent {
                emit_request(v, sink);
            }
        }
        b'm' => s("http_method", sink),
        b'U' => s("http_path", sink),
        b'q' => s("http_query", sink),
        b'H' => s("http_version", sink),
        b's' => {
            let st = int(v)?;
            info.status = Some(st);
            sink.field("status", Value::Int(st));
        }
        b'b' => sink.field(
            "response_body_bytes",
            Value::Int(if v == b"-" { 0 } else { int(v)? }),
        ),
        b'B' => sink.field("response_body_bytes", Value::Int(int(v)?)),
        AMBIGUOUS_SIZE => sink.field(
            "response_body_or_sent_bytes",
            Value::Int(if v == b"-" { 0 } else { int(v)? }),
        ),
        b'O' => sink.field("bytes_sent", Value::Int(int(v)?)),
        b'I' => sink.field("bytes_received", Value::Int(int(v)?)),
        b'S' => sink.field("bytes_transferred", Value::Int(int(v)?)),
        b'D' => {
            let us = int(v)?;
            sink.field("request_time_us", Value::Int(us));
            sink.field("request_time_ms", Value::Int(us / 1000));
        }
        b'T' => {
            let n = int(v)?;
            match arg {
                Some("ms") => sink.field("request_time_ms", Value::Int(n)),
                Some("us") => {
                    sink.field("request_time_us", Value::Int(n));
                    sink.field("request_time_ms", Value::Int(n / 1000));
                }
                _ => sink.field("request_time_s", Value::Int(n)),
            }
        }
        b'v' => s("vhost", sink),
        b'V' => s("server_name", sink),
        b'p' => {
            if !absent {
                let name = match arg {
                    Some("remote") => "client_port",
                    _ => "server_port",
                };
                sink.field(name, Value::Int(int(v)?));
            }
        }
        b'P' => {
            if !absent {
                let name = if arg == Some("tid") || arg == Some("hextid") {
                    "thread_id"
                } else {
                    "pid"
                };
                sink.field(name, parse_i64(v).map_or(Value::Str(v), Value::Int));
            }
        }
        b'X' => s("connection_status", sink),
        b'k' => sink.field("keepalive_requests", Value::Int(int(v)?)),
        b'L' => s("log_id", sink),
        b'f' => s("filename", sink),
        b'R' => s("handler", sink),
        // mod_ssl's `%{SSL_PROTOCOL}x` etc.: `ssl_protocol`; other variables `ssl_var_<name>`.
        b'x' => {
            if !absent {
                let name = arg.unwrap_or("");
                match name.get(..4).filter(|p| p.eq_ignore_ascii_case("ssl_")) {
                    Some(_) => sink.dynamic_field("ssl_", &name.as_bytes()[4..], esc(v)),
                    None => sink.dynamic_field("ssl_var_", name.as_bytes(), esc(v)),
                }
            }
        }
        b'i' | b'o' | b'e' | b'n' | b'C' => {
            let name = arg.unwrap_or("");
            if absent {
                return Ok(());
            }
            let fixed = match code {
                b'i' if name.eq_ignore_ascii_case("referer") => Some("referer"),
                b'i' if name.eq_ignore_ascii_case("user-agent") => Some("user_agent"),
                b'e' if name.eq_ignore_ascii_case("unique_id") => Some("unique_id"),
                _ => None,
            };
            match fixed {
                Some(f) => sink.field(f, esc(v)),
                None => {
                    let prefix = match code {
                        b'i' => "request_header_",
                        b'o' => "response_header_",
                        b'e' => "env_",
                        b'n' => "note_",
                        _ => "cookie_",
                    };
                    sink.dynamic_field(prefix, name.as_bytes(), esc(v));
                }
            }
            info.offer_txn_id(cx.txn, name.as_bytes(), esc(v));
        }
        _ => s("trailer", sink),
    }
    Ok(())
}

/// Splits an Apache-escaped request line into method, path and version.
fn emit_request<S: FieldSink>(value: &[u8], sink: &mut S) {
    let Some(sp) = memchr(b' ', value) else {
        sink.field("http_request", esc(value));
        return;
    };
    sink.field("http_method", esc(&value[..sp]));
    let rest = &value[sp + 1..];
    match memchr::memrchr(b' ', rest) {
        Some(sp2) if rest[sp2 + 1..].starts_with(b"HTTP/") => {
            sink.field("http_path", esc(&rest[..sp2]));
            sink.field("http_version", Value::Str(&rest[sp2 + 1..]));
        }
        _ => sink.field("http_path", esc(rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles() {
        for f in [COMMON, COMBINED, COMBINEDIO, VHOST_COMBINED] {
            LogFormat::compile(f).unwrap();
        }
        LogFormat::compile(r#"%{%Y}t %400,501{User-agent}i %!200{Referer}i %{c}a %^ti"#).unwrap();
        assert!(matches!(
            LogFormat::compile("%Z"),
            Err(CompileError::UnknownDirective('Z', 0))
        ));
        assert!(matches!(
            LogFormat::compile("%{abc"),
            Err(CompileError::Unterminated(0))
        ));
        assert!(LogFormat::compile("%").is_err());
    }
}
