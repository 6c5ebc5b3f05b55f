//! HAProxy log lines: HTTP, TCP, HTTPS and CLF logs, custom `log-format`s, the legacy default
//! format ("Connect from"), connection error lines and admin messages (health checks, "Proxy …
//! stopped").
//!
//! [`HaproxyParser`] holds the compiled formats (custom ones first, then the built-in ones) and
//! the per-frontend capture slots read from a haproxy.cfg ([`captures`]). Parsing is pure and works
//! on the message part of the line (the caller strips any syslog header).

pub mod captures;
pub mod config;
pub(crate) mod encoded;
pub mod logformat;
pub mod sd;
mod values;
mod vars;

use memchr::memchr;

pub use self::captures::Captures;
use self::logformat::LogFormat;
use super::text::{parse_clf_date, parse_i64};
use super::{ConfigError, Context, FieldSink, LineInfo, ParseError, Value};

/// The compiled HAProxy formats of a source.
#[derive(Debug)]
pub struct HaproxyParser {
    formats: Vec<(&'static str, LogFormat)>,
    captures: Captures,
    sd: sd::SdFormats,
}

impl HaproxyParser {
    pub fn new(
        custom: &[String],
        cfg: Option<&config::HaproxyConfig>,
    ) -> Result<HaproxyParser, ConfigError> {
        let mut sources: Vec<(&'static str, String)> = custom
            .iter()
            .map(|f| ("haproxy-custom", f.clone()))
            .collect();
        let captures = cfg.map(Captures::from_config).unwrap_or_default();
        let mut sd = sd::SdFormats::default();
        if let Some(cfg) = cfg {
            for p in cfg.proxies() {
                // Its log-format, error-log-format and the formats of the log-profiles it
                // logs with: each a custom format (the built-in ones are tried anyway).
                let profiles = p.profile_formats();
                let texts = [p.log_format(), p.error_log_format()]
                    .into_iter()
                    .chain(profiles.iter().map(|(f, _)| f.clone()));
                for f in texts.flatten() {
                    let name = builtin_name(&f).unwrap_or("haproxy-custom");
                    if name == "haproxy-custom" && !sources.iter().any(|(_, s)| *s == f) {
                        sources.push((name, f));
                    }
                }
                for f in std::iter::once(p.log_format_sd())
                    .chain(profiles.into_iter().map(|(_, s)| s))
                    .flatten()
                {
                    sd.add(&f);
                }
            }
        }
        for (name, f) in BUILTINS {
            sources.push((name, f.to_owned()));
        }
        let mut formats = Vec::with_capacity(sources.len());
        for (name, f) in sources {
            let compiled = LogFormat::compile(&f).map_err(|e| ConfigError::HaproxyLogFormat {
                format: f.clone(),
                error: e.to_string(),
            })?;
            formats.push((name, compiled));
        }
        Ok(HaproxyParser {
            formats,
            captures,
            sd,
        })
    }

    /// The `log-format-sd` parameters of the configuration (`None` without any).
    pub fn sd_formats(&self) -> Option<&sd::SdFormats> {
        (!self.sd.is_empty()).then_some(&self.sd)
    }

    /// Parses an HAProxy message (without syslog header).
    pub fn parse<'a, S: FieldSink>(
        &self,
        msg: &'a [u8],
        cx: &Context<'_>,
        sink: &mut S,
        info: &mut LineInfo<'a>,
    ) -> Result<(), ParseError> {
        let msg = trim_end(msg);
        if let Some(rest) = msg.strip_prefix(b"Connect from ") {
            info.format = "haproxy-default";
            return parse_connect(rest, sink).map_err(|e| e.shifted(13));
        }
        match msg.first() {
            None => return Err(ParseError::at("empty HAProxy line", 0)),
            Some(c) if c.is_ascii_alphabetic() && !looks_like_address_start(msg) => {
                // A custom log-format may start with a name (`%b`, `%HM`, `%ft`): those are
                // tried first; a line none of them matches is an admin message.
                for (name, f) in self.formats.iter().filter(|(n, _)| *n == "haproxy-custom") {
                    let mark = sink.mark();
                    let saved = *info;
                    if f.parse(msg, cx, &self.captures, sink, info).is_ok() {
                        info.format = name;
                        return Ok(());
                    }
                    sink.rollback(mark);
                    *info = saved;
                }
                info.format = "haproxy-admin";
                info.message = Some(Value::Str(msg));
                parse_admin(msg, sink);
                return Ok(());
            }
            _ => {}
        }
        let mut furthest = ParseError::at("not an HAProxy log line", 0);
        for (name, f) in &self.formats {
            let mark = sink.mark();
            let saved = *info;
            match f.parse(msg, cx, &self.captures, sink, info) {
                Ok(()) => {
                    info.format = name;
                    return Ok(());
                }
                Err(e) => {
                    sink.rollback(mark);
                    *info = saved;
                    if e.column > furthest.column {
                        furthest = e;
                    }
                }
            }
        }
        let mark = sink.mark();
        if parse_error_line(msg, cx, sink, info).is_ok() {
            info.format = "haproxy-error";
            return Ok(());
        }
        sink.rollback(mark);
        Err(furthest)
    }
}

const BUILTINS: [(&str, &str); 4] = [
    ("haproxy-httplog", logformat::HTTPLOG),
    ("haproxy-tcplog", logformat::TCPLOG),
    ("haproxy-httpslog", logformat::HTTPSLOG),
    ("haproxy-clf", logformat::CLF),
];

fn builtin_name(f: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(_, b)| *b == f).map(|(n, _)| *n)
}

fn trim_end(b: &[u8]) -> &[u8] {
    let mut e = b.len();
    while e > 0 && matches!(b[e - 1], b'\n' | b'\r' | b'\0') {
        e -= 1;
    }
    &b[..e]
}

/// An IPv6 address can start with a hex letter (`fe80::…:port [`).
fn looks_like_address_start(msg: &[u8]) -> bool {
    let end = memchr(b' ', msg).unwrap_or(msg.len());
    let tok = &msg[..end];
    memchr(b':', tok).is_some()
        && tok
            .iter()
            .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        && msg.get(end + 1) == Some(&b'[')
}

/// `10.0.1.2:33312 to 10.0.3.31:8012 (www/HTTP)`
fn parse_connect<S: FieldSink>(rest: &[u8], sink: &mut S) -> Result<(), ParseError> {
    let to = memchr::memmem::find(rest, b" to ").ok_or(ParseError::at("expected ` to `", 0))?;
    addr(&rest[..to], "client_ip", "client_port", 0, sink)?;
    let after = &rest[to + 4..];
    let sp = memchr(b' ', after).ok_or(ParseError::at("expected ` (`", to + 4))?;
    addr(&after[..sp], "frontend_ip", "frontend_port", to + 4, sink)?;
    let paren = &after[sp + 1..];
    let inner = paren
        .strip_prefix(b"(")
        .and_then(|p| p.strip_suffix(b")"))
        .ok_or(ParseError::at("expected `(frontend/mode)`", to + 5 + sp))?;
    let slash = memchr::memrchr(b'/', inner).ok_or(ParseError::at("expected `/`", to + 6 + sp))?;
    sink.field("frontend", Value::Str(&inner[..slash]));
    sink.field("mode", Value::Str(&inner[slash + 1..]));
    Ok(())
}

fn addr<S: FieldSink>(
    a: &[u8],
    ip: &str,
    port: &str,
    at: usize,
    sink: &mut S,
) -> Result<(), ParseError> {
    let colon = memchr::memrchr(b':', a).ok_or(ParseError::at("expected `ip:port`", at))?;
    let p = parse_i64(&a[colon + 1..]).ok_or(ParseError::at("expected a port", at + colon + 1))?;
    if colon == 0 {
        return Err(ParseError::at("expected an address", at));
    }
    sink.field(ip, Value::Str(&a[..colon]));
    sink.field(port, Value::Int(p));
    Ok(())
}

/// `127.0.0.1:56059 [03/Dec/2012:17:35:10.380] frt/f1: Connection error during SSL handshake`
fn parse_error_line<'a, S: FieldSink>(
    msg: &'a [u8],
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<(), ParseError> {
    let sp = memchr(b' ', msg).ok_or(ParseError::at("expected a space", 0))?;
    let rest = &msg[sp + 1..];
    let rest = rest
        .strip_prefix(b"[")
        .ok_or(ParseError::at("expected `[`", sp + 1))?;
    let close = memchr(b']', rest).ok_or(ParseError::at("expected `]`", sp + 2))?;
    let t = parse_clf_date(&rest[..close], cx.zone).ok_or(ParseError::at("bad date", sp + 2))?;
    let rest = rest[close + 1..]
        .strip_prefix(b" ")
        .ok_or(ParseError::at("expected a space", sp + close + 3))?;
    let colon =
        memchr::memmem::find(rest, b": ").ok_or(ParseError::at("expected `: `", sp + close + 4))?;
    let fe_bind = &rest[..colon];
    if memchr(b' ', fe_bind).is_some() {
        return Err(ParseError::at("expected `frontend/bind:`", sp + close + 4));
    }
    addr(&msg[..sp], "client_ip", "client_port", 0, sink)?;
    info.timestamp_ms = Some(t);
    info.own_time = true;
    match memchr(b'/', fe_bind) {
        Some(s) => {
            sink.field(
                "frontend",
                Value::Str(fe_bind[..s].strip_suffix(b"~").unwrap_or(&fe_bind[..s])),
            );
            sink.field("bind", Value::Str(&fe_bind[s + 1..]));
        }
        None => sink.field("frontend", Value::Str(fe_bind)),
    }
    info.message = Some(Value::Str(&rest[colon + 2..]));
    Ok(())
}

/// Admin messages: pulls out the proxy/backend/server names of the common ones.
fn parse_admin<S: FieldSink>(msg: &[u8], sink: &mut S) {
    let word_after = |prefix: &[u8]| -> Option<&[u8]> {
        let r = msg.strip_prefix(prefix)?;
        let end = memchr(b' ', r).unwrap_or(r.len());
        Some(&r[..end])
    };
    if let Some(srv) = word_after(b"Server ").or_else(|| word_after(b"Health check for server ")) {
        if let Some(s) = memchr(b'/', srv) {
            sink.field("backend", Value::Str(&srv[..s]));
            sink.field("server", Value::Str(&srv[s + 1..]));
        }
        if memchr::memmem::find(msg, b" is DOWN").is_some() {
            sink.field("server_state", Value::Str(b"DOWN"));
        } else if memchr::memmem::find(msg, b" is UP").is_some() {
            sink.field("server_state", Value::Str(b"UP"));
        }
    } else if let Some(p) = word_after(b"Proxy ") {
        sink.field("proxy", Value::Str(p));
    } else if let Some(b) = word_after(b"backend ") {
        sink.field("backend", Value::Str(b));
    }
}
