//! Parsers: pure functions from a log line's bytes to typed fields.
//!
//! No I/O and no async here. Each parser borrows from its input, reports fields to a
//! [`FieldSink`] as it finds them (the GELF encoder writes them straight into its output buffer)
//! and never panics on any input; a line that does not parse yields a [`ParseError`] saying what
//! and where, and the caller keeps the raw line.
//!
//! A source builds one [`ParserConfig`], compiles it once into a [`Parser`]; the sinks run it
//! through `gelf::encode_parsed` for every record (a leaf: nothing here imports the rest of the
//! crate, not even the record model).

pub mod apache;
pub mod detect;
mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod gelf;
pub mod haproxy;
pub mod json;
pub mod syslog;
pub mod text;
pub mod tz;

use std::fmt;

pub use format::Format;
pub use text::Escaping;
pub use tz::LogZone;

/// Syslog severity "informational": the level of a line that states none (GELF's default level
/// for access lines).
pub const LEVEL_INFO: u8 = 6;

/// A field value, borrowed from the line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Bytes as they are (written as a JSON string; invalid UTF-8 becomes U+FFFD).
    Str(&'a [u8]),
    /// Bytes that still carry the log format's escapes; decoded when written.
    Escaped(&'a [u8], Escaping),
    Int(i64),
    Float(f64),
}

impl<'a> Value<'a> {
    /// The text of a string value, escapes decoded and invalid UTF-8 replaced by U+FFFD (`None`
    /// for a number).
    pub fn text(&self) -> Option<std::borrow::Cow<'a, str>> {
        match *self {
            Value::Str(s) => Some(text::utf8_lossy(s)),
            Value::Escaped(s, e) => {
                let mut out = Vec::new();
                text::unescape(s, e, &mut out);
                Some(std::borrow::Cow::Owned(
                    String::from_utf8_lossy(&out).into_owned(),
                ))
            }
            Value::Int(_) | Value::Float(_) => None,
        }
    }

    /// A canonical decimal integer (`0`, `297`, `-1`; not `0042` or hex) becomes a number,
    /// anything else stays a string: for values whose type the format does not say (SD
    /// parameters, sample fetches).
    pub fn number_or_str(v: &'a [u8]) -> Value<'a> {
        let digits = v.strip_prefix(b"-").unwrap_or(v);
        let canonical =
            !digits.is_empty() && digits.len() <= 18 && (digits == b"0" || digits[0] != b'0');
        match text::parse_i64(v) {
            Some(i) if canonical => Value::Int(i),
            _ => Value::Str(v),
        }
    }
}

/// Receives the fields of a parsed line, in line order.
pub trait FieldSink {
    /// A field with a fixed name (without the leading underscore), e.g. `client_ip`.
    fn field(&mut self, name: &str, value: Value<'_>);
    /// A field whose name comes from the input or the configuration (a header name, an SD
    /// parameter, a JSON key): the sink makes it a valid GELF name as `prefix` + `name`.
    fn dynamic_field(&mut self, prefix: &str, name: &[u8], value: Value<'_>);
    /// A position to return to with [`FieldSink::rollback`] (when a format attempt fails).
    fn mark(&self) -> usize;
    /// Forgets every field reported since `mark`.
    fn rollback(&mut self, mark: usize);
}

/// A sink that drops every field (validation only).
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl FieldSink for Discard {
    fn field(&mut self, _: &str, _: Value<'_>) {}
    fn dynamic_field(&mut self, _: &str, _: &[u8], _: Value<'_>) {}
    fn mark(&self) -> usize {
        0
    }
    fn rollback(&mut self, _: usize) {}
}

/// Collects fields into a vector; used by tests and tools that want the fields themselves.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldList {
    pub fields: Vec<(String, FieldValue)>,
}

/// An owned field value (see [`FieldList`]).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Str(String),
    Int(i64),
    Float(f64),
}

impl FieldValue {
    fn from_value(v: Value<'_>) -> FieldValue {
        match v {
            Value::Int(i) => FieldValue::Int(i),
            Value::Float(f) => FieldValue::Float(f),
            text => FieldValue::Str(text.text().unwrap_or_default().into_owned()),
        }
    }
}

impl FieldList {
    /// The first value of a field, by name without the underscore.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn get_int(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            FieldValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FieldSink for FieldList {
    fn field(&mut self, name: &str, value: Value<'_>) {
        self.fields
            .push((name.to_owned(), FieldValue::from_value(value)));
    }
    fn dynamic_field(&mut self, prefix: &str, name: &[u8], value: Value<'_>) {
        let mut n = String::from(prefix);
        crate::field_name::push_str(&mut n, name, crate::field_name::Case::Lower);
        if n == "id" {
            n.push('_');
        } else if n.is_empty() {
            n.push_str("empty");
        }
        self.fields.push((n, FieldValue::from_value(value)));
    }
    fn mark(&self) -> usize {
        self.fields.len()
    }
    fn rollback(&mut self, mark: usize) {
        self.fields.truncate(mark);
    }
}

/// Where and why a line did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} at column {column}")]
pub struct ParseError {
    /// What was expected or wrong.
    pub what: &'static str,
    /// 1-based byte column in the line.
    pub column: usize,
}

impl ParseError {
    /// An error at 0-based byte offset `at`.
    pub fn at(what: &'static str, at: usize) -> ParseError {
        ParseError {
            what,
            column: at + 1,
        }
    }
    /// The same error seen from a line that had `n` more bytes in front.
    pub fn shifted(self, n: usize) -> ParseError {
        ParseError {
            what: self.what,
            column: self.column + n,
        }
    }
}

/// What a parse found besides fields: the GELF envelope values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LineInfo<'a> {
    /// Which parser produced the fields, e.g. `haproxy-httplog` (the `_log_format` field).
    pub format: &'static str,
    /// The log's own time, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The log's own time as the JSON number it was sent as (GELF input): written verbatim, so
    /// no precision is lost.
    pub timestamp_text: Option<&'a [u8]>,
    /// The host named in the line (syslog HOSTNAME, JSON `host`).
    pub host: Option<&'a [u8]>,
    /// The message part when it is not the whole line (syslog MSG, error-log text, JSON message).
    pub message: Option<Value<'a>>,
    /// A GELF `full_message` given by the line (JSON input).
    pub full_message: Option<Value<'a>>,
    /// Syslog severity or a level given by the line.
    pub severity: Option<u8>,
    /// HTTP status, for the level of access lines.
    pub status: Option<i64>,
    /// The best transaction id candidate: (priority, value); lower priority wins.
    pub txn_id: Option<(usize, Value<'a>)>,
    /// The line was cut short (HAProxy `len`, a truncated request).
    pub truncated: bool,
    /// The syslog APP-NAME / TAG program, when the line was wrapped in syslog.
    pub program: Option<&'a [u8]>,
    /// `timestamp_ms` came from the log entry itself (not the syslog header).
    pub own_time: bool,
}

impl<'a> LineInfo<'a> {
    /// Offers a transaction id candidate named `name` (header, variable or key name).
    pub fn offer_txn_id(&mut self, sources: &TxnIdSources, name: &[u8], value: Value<'a>) {
        if let Some(prio) = sources.priority(name) {
            let empty = match value {
                Value::Str(s) | Value::Escaped(s, _) => s.is_empty() || s == b"-",
                _ => false,
            };
            if !empty && self.txn_id.is_none_or(|(p, _)| prio < p) {
                self.txn_id = Some((prio, value));
            }
        }
    }
}

/// The names a transaction id is taken from, in priority order (case-insensitive): header names
/// (captured or logged), Apache environment variables, JSON keys, SD parameters, and
/// `unique-id` for HAProxy's `%ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnIdSources {
    names: Vec<Vec<u8>>,
}

impl TxnIdSources {
    pub const DEFAULT: [&'static str; 9] = [
        "unique-id",
        "X-Request-ID",
        "X-Response-Id",
        "X-Unique-ID",
        "UNIQUE_ID",
        "txnId",
        "txn_id",
        "request_id",
        "txn.id",
    ];
    pub fn new<S: AsRef<str>>(names: &[S]) -> TxnIdSources {
        TxnIdSources {
            names: names
                .iter()
                .map(|n| n.as_ref().as_bytes().to_ascii_lowercase())
                .collect(),
        }
    }
    pub fn priority(&self, name: &[u8]) -> Option<usize> {
        self.names.iter().position(|n| n.eq_ignore_ascii_case(name))
    }
}

impl Default for TxnIdSources {
    fn default() -> Self {
        TxnIdSources::new(&TxnIdSources::DEFAULT)
    }
}

/// How a source's lines are parsed; built once per source and compiled into a [`Parser`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParserConfig {
    /// `Auto` detects per line; anything else is used for every line.
    pub format: Format,
    /// Custom HAProxy `log-format` strings, tried before the built-in formats.
    pub haproxy_log_formats: Vec<String>,
    /// A parsed haproxy.cfg: its log-formats are tried, and its `capture` declarations name the
    /// captured headers per frontend.
    pub haproxy_config: Option<haproxy::config::HaproxyConfig>,
    /// Apache `LogFormat` strings (or nicknames `common`, `combined`, `vhost_combined`,
    /// `combinedio`), tried in order; empty means the standard ones.
    pub apache_log_formats: Vec<String>,
    /// Apache `ErrorLogFormat` strings (error lines in the default layout parse without).
    pub apache_error_log_formats: Vec<String>,
    /// The zone of times that carry no offset. The library default is UTC (deterministic);
    /// the daemon and `quill parse` default to the host's local zone ([`LogZone::local`]).
    pub timezone: LogZone,
    /// Where `_txn_id` comes from.
    pub txn_id_sources: TxnIdSources,
    /// GELF level for responses with a 5xx status (others are 6, informational).
    pub level_5xx: u8,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            format: Format::Auto,
            haproxy_log_formats: Vec::new(),
            haproxy_config: None,
            apache_log_formats: Vec::new(),
            apache_error_log_formats: Vec::new(),
            timezone: LogZone::UTC,
            txn_id_sources: TxnIdSources::default(),
            level_5xx: 3,
        }
    }
}

/// A configuration that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("HAProxy log-format {format:?}: {error}")]
    HaproxyLogFormat { format: String, error: String },
    #[error("Apache LogFormat {format:?}: {error}")]
    ApacheLogFormat { format: String, error: String },
}

/// Whether a record parsed, for per-source counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Parsed by the named parser.
    Parsed(&'static str),
    /// Kept raw with `_parse_error`.
    Failed,
    /// `Format::Raw`: not parsed by design.
    Raw,
}

impl Outcome {
    pub fn is_error(self) -> bool {
        self == Outcome::Failed
    }
}

/// Context a parser needs besides the line.
#[derive(Debug, Clone, Copy)]
pub struct Context<'p> {
    /// The zone of times without an offset.
    pub zone: &'p LogZone,
    /// The receive time, to guess the year of RFC 3164 dates.
    pub received_ms: i64,
    pub txn: &'p TxnIdSources,
    /// The `log-format-sd` parameters SD fields are named by (HAProxy's structured data).
    pub sd: Option<&'p haproxy::sd::SdFormats>,
}

/// A compiled [`ParserConfig`]: cheap to share between threads, used for every line.
#[derive(Debug)]
pub struct Parser {
    format: Format,
    haproxy: haproxy::HaproxyParser,
    apache: apache::ApacheParser,
    zone: LogZone,
    txn: TxnIdSources,
    level_5xx: u8,
}

impl ParserConfig {
    pub fn compile(&self) -> Result<Parser, ConfigError> {
        Parser::new(self)
    }
}

impl Parser {
    pub fn new(config: &ParserConfig) -> Result<Parser, ConfigError> {
        Ok(Parser {
            format: config.format,
            haproxy: haproxy::HaproxyParser::new(
                &config.haproxy_log_formats,
                config.haproxy_config.as_ref(),
            )?,
            apache: apache::ApacheParser::new(
                &config.apache_log_formats,
                &config.apache_error_log_formats,
            )?,
            zone: config.timezone.clone(),
            txn: config.txn_id_sources.clone(),
            level_5xx: config.level_5xx,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    fn context(&self, received_ms: i64) -> Context<'_> {
        Context {
            zone: &self.zone,
            received_ms,
            txn: &self.txn,
            sd: self.haproxy.sd_formats(),
        }
    }

    /// Parses one line with the configured format (or per-line detection), reporting fields to
    /// `sink`. On error the sink may have received some fields already: the caller discards them.
    pub fn parse_line<'a, S: FieldSink>(
        &self,
        format: Format,
        line: &'a [u8],
        received_ms: i64,
        sink: &mut S,
    ) -> Result<LineInfo<'a>, ParseError> {
        let cx = self.context(received_ms);
        let mut info = LineInfo::default();
        match format {
            Format::Raw => {
                info.format = "raw";
            }
            Format::Haproxy => self.parse_wrapped(line, &cx, sink, &mut info, Inner::Haproxy)?,
            Format::Apache => self.parse_wrapped(line, &cx, sink, &mut info, Inner::Apache)?,
            Format::Syslog => {
                let msg_at = syslog::parse(line, &cx, sink, &mut info)?;
                self.parse_inner_detected(line, msg_at, &cx, sink, &mut info);
            }
            Format::Json => json::parse(line, &cx, sink, &mut info)?,
            Format::Gelf => gelf::parse(line, &cx, sink, &mut info)?,
            Format::Auto => self.parse_auto(line, &cx, sink, &mut info)?,
        }
        Ok(info)
    }

    /// An optional syslog header, then the inner format (which must parse).
    fn parse_wrapped<'a, S: FieldSink>(
        &self,
        line: &'a [u8],
        cx: &Context<'_>,
        sink: &mut S,
        info: &mut LineInfo<'a>,
        inner: Inner,
    ) -> Result<(), ParseError> {
        let msg_at = if syslog::looks_like_syslog(line) {
            syslog::parse(line, cx, sink, info)?
        } else {
            0
        };
        let msg = &line[msg_at..];
        let r = match inner {
            Inner::Haproxy => self.haproxy.parse(msg, cx, sink, info),
            Inner::Apache => self.apache.parse(msg, cx, sink, info),
        };
        r.map_err(|e| e.shifted(msg_at))
    }

    /// After a syslog header: parse the message as HAProxy/Apache/JSON when it looks like one;
    /// a message that does not is plain text (no error).
    fn parse_inner_detected<'a, S: FieldSink>(
        &self,
        line: &'a [u8],
        msg_at: usize,
        cx: &Context<'_>,
        sink: &mut S,
        info: &mut LineInfo<'a>,
    ) {
        let msg = &line[msg_at..];
        let mark = sink.mark();
        let saved = *info;
        let r = match detect::detect_message(msg, info.program) {
            Some(Format::Haproxy) => self.haproxy.parse(msg, cx, sink, info),
            Some(Format::Apache) => self.apache.parse(msg, cx, sink, info),
            Some(Format::Json) => {
                // The JSON's own short_message/message/msg is the message (README, fields);
                // without one the syslog MSG stays.
                info.message = None;
                let r = json::parse(msg, cx, sink, info);
                info.message = info.message.or(saved.message);
                r
            }
            _ => Ok(()),
        };
        if r.is_err() {
            sink.rollback(mark);
            *info = saved;
        }
    }

    fn parse_auto<'a, S: FieldSink>(
        &self,
        line: &'a [u8],
        cx: &Context<'_>,
        sink: &mut S,
        info: &mut LineInfo<'a>,
    ) -> Result<(), ParseError> {
        match detect::detect_line(line) {
            Format::Syslog => {
                let msg_at = syslog::parse(line, cx, sink, info)?;
                if info.program == Some(b"haproxy") {
                    // HAProxy's own lines must parse.
                    let msg = &line[msg_at..];
                    return self
                        .haproxy
                        .parse(msg, cx, sink, info)
                        .map_err(|e| e.shifted(msg_at));
                }
                self.parse_inner_detected(line, msg_at, cx, sink, info);
                Ok(())
            }
            Format::Json => json::parse(line, cx, sink, info),
            Format::Apache => self.try_both(line, cx, sink, info, Inner::Apache),
            Format::Haproxy => self.try_both(line, cx, sink, info, Inner::Haproxy),
            _ => Err(ParseError::at("no known log format", 0)),
        }
    }

    /// Tries `first`, then the other access-log parser; reports the error that got furthest.
    fn try_both<'a, S: FieldSink>(
        &self,
        line: &'a [u8],
        cx: &Context<'_>,
        sink: &mut S,
        info: &mut LineInfo<'a>,
        first: Inner,
    ) -> Result<(), ParseError> {
        let run = |which: Inner, sink: &mut S, info: &mut LineInfo<'a>| match which {
            Inner::Haproxy => self.haproxy.parse(line, cx, sink, info),
            Inner::Apache => self.apache.parse(line, cx, sink, info),
        };
        let mark = sink.mark();
        let saved = *info;
        let e1 = match run(first, sink, info) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        sink.rollback(mark);
        *info = saved;
        let second = match first {
            Inner::Haproxy => Inner::Apache,
            Inner::Apache => Inner::Haproxy,
        };
        match run(second, sink, info) {
            Ok(()) => Ok(()),
            Err(e2) => {
                sink.rollback(mark);
                *info = saved;
                Err(if e2.column > e1.column { e2 } else { e1 })
            }
        }
    }

    /// The format a record with the format hint `hint` is parsed in: the configured one, or the
    /// record's own hint.
    pub fn format_for(&self, hint: Format) -> Format {
        if self.format == Format::Auto {
            hint
        } else {
            self.format
        }
    }

    /// The GELF level: the severity the line or its syslog header states, made more severe
    /// (never less) by a 5xx status; informational when neither says anything. A syslog
    /// header's explicit `<PRI>` is never replaced by the status default (an access line sent
    /// at `local0.err` stays 3 even with status 200).
    pub(crate) fn level_for(&self, info: &LineInfo<'_>) -> u8 {
        let by_status = match info.status {
            Some(s) if (500..600).contains(&s) => Some(self.level_5xx),
            _ => None,
        };
        match (info.severity, by_status) {
            (Some(sev), Some(st)) => sev.min(st),
            (Some(sev), None) => sev,
            (None, Some(st)) => st,
            (None, None) => LEVEL_INFO,
        }
    }
}

#[derive(Clone, Copy)]
enum Inner {
    Haproxy,
    Apache,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Parsed(p) => write!(f, "parsed ({p})"),
            Outcome::Failed => f.write_str("parse error"),
            Outcome::Raw => f.write_str("raw"),
        }
    }
}
