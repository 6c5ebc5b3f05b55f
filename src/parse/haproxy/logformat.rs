//! HAProxy `log-format` strings compiled into line matchers.
//!
//! [`LogFormat::compile`] turns a log-format string (as it stands after haproxy.cfg unquoting)
//! into a list of literals and variables; [`LogFormat::parse`] walks a line along that list,
//! reporting each variable as a typed GELF field. The built-in formats (`option httplog`,
//! `tcplog`, `httpslog`, `httplog clf`) are such strings too. Pure, allocation-free matching.

mod emit;

use memchr::memchr;

use emit::Emitter;

use super::Captures;
use super::captures::emit_slot;
use crate::parse::text::{Escaping, parse_clf_date, parse_i64};
use crate::parse::{Context, FieldSink, LineInfo, ParseError, Value};

/// `option httplog`.
pub const HTTPLOG: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r";
/// `option tcplog`.
pub const TCPLOG: &str = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq";
/// `option httpslog`.
pub const HTTPSLOG: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r %[fc_err]/%[ssl_fc_err,hex]/%[ssl_c_err]/%[ssl_c_ca_err]/%[ssl_fc_is_resumed] %[ssl_fc_sni]/%sslv/%sslc";
/// `option httplog clf`.
pub const CLF: &str = "%{+Q}o %{-Q}ci - - [%trg] %r %ST %B \"\" \"\" %cp %ms %ft %b %s %TR %Tw %Tc %Tr %Ta %tsc %ac %fc %bc %sc %rc %sq %bq %CC %CS %hrl %hsl";

/// Longest format string and most items accepted (bounds for hostile input).
const MAX_FORMAT_LEN: usize = 16 * 1024;
const MAX_ITEMS: usize = 512;

/// What a variable holds, and so how it is read and which field it becomes.
#[derive(Debug, Clone, PartialEq)]
enum Var {
    Ip(&'static str),
    Int(&'static str),
    Date,
    Unix,
    /// `%ft`/`%f`: the frontend, `~` marks SSL.
    Frontend,
    Str(&'static str),
    Status,
    /// `%ts`/`%tsc`: never quoted.
    TermState,
    /// Ta (also `request_time_ms`).
    ActiveTime,
    /// Tt (also `request_time_ms` when the format has no Ta).
    TotalTime,
    Request,
    CaptureReq,
    CaptureRes,
    CaptureReqList,
    CaptureResList,
    UniqueId,
    /// `%CC` (true) / `%CS`: the captured cookie.
    Cookie(bool),
    /// `%[fetch,conv]`: field named after the fetch (index into `LogFormat::sample_names`, so
    /// that `Var` stays a plain tagged enum that matches with a jump table).
    Sample(u16),
    /// Parsed but not reported (`%ms`).
    Skip,
}

impl Var {
    fn lookup(name: &str) -> Option<Var> {
        Some(match name {
            "ci" => Var::Ip("client_ip"),
            "cp" => Var::Int("client_port"),
            "fi" => Var::Ip("frontend_ip"),
            "fp" => Var::Int("frontend_port"),
            "bi" => Var::Ip("backend_source_ip"),
            "bp" => Var::Int("backend_source_port"),
            "si" => Var::Ip("server_ip"),
            "sp" => Var::Int("server_port"),
            "t" | "tr" | "trg" | "trl" | "T" | "Tl" => Var::Date,
            "Ts" => Var::Unix,
            "ms" => Var::Skip,
            "ft" | "f" => Var::Frontend,
            "b" => Var::Str("backend"),
            "s" => Var::Str("server"),
            "TR" => Var::Int("time_request_ms"),
            "Tw" => Var::Int("time_queue_ms"),
            "Tc" => Var::Int("time_connect_ms"),
            "Tr" => Var::Int("time_response_ms"),
            "Ta" => Var::ActiveTime,
            "Tt" => Var::TotalTime,
            "Th" => Var::Int("time_handshake_ms"),
            "Ti" => Var::Int("time_idle_ms"),
            "Tq" => Var::Int("time_before_request_ms"),
            "Td" => Var::Int("time_data_ms"),
            "Tu" => Var::Int("time_user_ms"),
            "ST" => Var::Status,
            "B" => Var::Int("bytes_read"),
            "U" => Var::Int("bytes_uploaded"),
            "CC" => Var::Cookie(true),
            "CS" => Var::Cookie(false),
            "ts" | "tsc" => Var::TermState,
            "ac" => Var::Int("actconn"),
            "fc" => Var::Int("feconn"),
            "bc" => Var::Int("beconn"),
            "sc" => Var::Int("srvconn"),
            "rc" => Var::Int("retries"),
            "sq" => Var::Int("srv_queue"),
            "bq" => Var::Int("backend_queue"),
            "lc" => Var::Int("log_counter"),
            "rt" => Var::Int("request_counter"),
            "pid" => Var::Int("haproxy_pid"),
            "H" => Var::Str("haproxy_host"),
            "hr" => Var::CaptureReq,
            "hs" => Var::CaptureRes,
            "hrl" => Var::CaptureReqList,
            "hsl" => Var::CaptureResList,
            "r" => Var::Request,
            "HM" => Var::Str("http_method"),
            "HU" => Var::Str("http_path"),
            "HP" => Var::Str("http_path"),
            "HPO" => Var::Str("http_path_only"),
            "HQ" => Var::Str("http_query"),
            "HV" => Var::Str("http_version"),
            "ID" => Var::UniqueId,
            "sslv" => Var::Str("ssl_version"),
            "sslc" => Var::Str("ssl_cipher"),
            _ => return None,
        })
    }

    /// Whether `+Q` puts this variable in quotes (HAProxy quotes strings, not numbers or dates).
    fn quotable(&self) -> bool {
        matches!(
            self,
            Var::Ip(_)
                | Var::Frontend
                | Var::Str(_)
                | Var::Request
                | Var::CaptureReqList
                | Var::CaptureResList
                | Var::UniqueId
                | Var::Cookie(_)
                | Var::Sample(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Lit(Box<[u8]>),
    /// `dup`: the same variable appears earlier; it is matched but not reported twice.
    Var {
        var: Var,
        quoted: bool,
        dup: bool,
    },
}

/// A compiled log-format.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFormat {
    items: Vec<Item>,
    sample_names: Vec<String>,
    has_active_time: bool,
}

/// Why a log-format string did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("unknown variable %{0} at byte {1}")]
    UnknownVar(String, usize),
    #[error("unterminated {0} at byte {1}")]
    Unterminated(&'static str, usize),
    #[error("bad flag {0:?} at byte {1}")]
    BadFlag(String, usize),
    #[error("format too long or too many items")]
    TooLong,
    #[error("empty format")]
    Empty,
}

impl LogFormat {
    pub fn compile(fmt: &str) -> Result<LogFormat, CompileError> {
        let s = fmt.as_bytes();
        if s.len() > MAX_FORMAT_LEN {
            return Err(CompileError::TooLong);
        }
        let mut items = Vec::new();
        let mut lit: Vec<u8> = Vec::new();
        let mut global_quote = false;
        let mut sample_names: Vec<String> = Vec::new();
        let mut i = 0;
        let flush = |lit: &mut Vec<u8>, items: &mut Vec<Item>| {
            if !lit.is_empty() {
                items.push(Item::Lit(std::mem::take(lit).into_boxed_slice()));
            }
        };
        while i < s.len() {
            match s[i] {
                b'%' if s.get(i + 1) == Some(&b'%') => {
                    lit.push(b'%');
                    i += 2;
                }
                b'%' => {
                    let at = i;
                    i += 1;
                    let mut quote: Option<bool> = None;
                    if s.get(i) == Some(&b'{') {
                        let end = memchr(b'}', &s[i..])
                            .ok_or(CompileError::Unterminated("flags", at))?
                            + i;
                        quote = parse_flags(&fmt[i + 1..end], at)?;
                        i = end + 1;
                    }
                    let var = if s.get(i) == Some(&b'[') {
                        let mut depth = 0usize;
                        let mut j = i;
                        loop {
                            match s.get(j) {
                                None => return Err(CompileError::Unterminated("sample fetch", at)),
                                Some(b'[') => depth += 1,
                                Some(b']') => {
                                    depth -= 1;
                                    if depth == 0 {
                                        break;
                                    }
                                }
                                _ => {}
                            }
                            j += 1;
                        }
                        let expr = &fmt[i + 1..j];
                        i = j + 1;
                        let name = sample_field_name(expr);
                        let idx = match sample_names.iter().position(|n| *n == name) {
                            Some(i) => i,
                            None => {
                                sample_names.push(name);
                                sample_names.len() - 1
                            }
                        };
                        Var::Sample(u16::try_from(idx).map_err(|_| CompileError::TooLong)?)
                    } else {
                        let start = i;
                        while i < s.len() && s[i].is_ascii_alphabetic() {
                            i += 1;
                        }
                        let name = &fmt[start..i];
                        if name == "o" {
                            if let Some(q) = quote {
                                global_quote = q;
                            }
                            continue;
                        }
                        Var::lookup(name)
                            .ok_or_else(|| CompileError::UnknownVar(name.to_owned(), at))?
                    };
                    flush(&mut lit, &mut items);
                    let quoted = var.quotable() && quote.unwrap_or(global_quote);
                    let dup = items
                        .iter()
                        .any(|it| matches!(it, Item::Var { var: v, .. } if *v == var));
                    items.push(Item::Var { var, quoted, dup });
                }
                b'\\' if i + 1 < s.len() => {
                    lit.push(s[i + 1]);
                    i += 2;
                }
                b' ' => {
                    // Spaces are delimiters and are merged.
                    if lit.last() != Some(&b' ') {
                        lit.push(b' ');
                    }
                    i += 1;
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
        flush(&mut lit, &mut items);
        // Trailing spaces in the format are not matched literally (lines are trimmed).
        if let Some(Item::Lit(l)) = items.last() {
            if l.iter().all(|&c| c == b' ') {
                items.pop();
            }
        }
        // Nor leading ones (`%{+Q}o %{-Q}ci …` starts with the address).
        if let Some(Item::Lit(l)) = items.first_mut() {
            let keep = l.iter().position(|&c| c != b' ').unwrap_or(l.len());
            if keep == l.len() {
                items.remove(0);
            } else if keep > 0 {
                *l = l[keep..].to_vec().into_boxed_slice();
            }
        }
        if items.is_empty() {
            return Err(CompileError::Empty);
        }
        let has_active_time = items.iter().any(|it| {
            matches!(
                it,
                Item::Var {
                    var: Var::ActiveTime,
                    ..
                }
            )
        });
        Ok(LogFormat {
            items,
            sample_names,
            has_active_time,
        })
    }

    /// Matches `line` and reports its fields. Columns in errors are relative to `line`.
    pub fn parse<'a, S: FieldSink>(
        &self,
        line: &'a [u8],
        cx: &Context<'_>,
        captures: &Captures,
        sink: &mut S,
        info: &mut LineInfo<'a>,
    ) -> Result<(), ParseError> {
        let mut pos = 0usize;
        let mut out = Emitter {
            format: self,
            cx,
            captures,
            frontend: b"",
            sink,
            info,
        };
        let mut skip_space = false;
        let n = self.items.len();
        let mut k = 0;
        while k < n {
            let item = &self.items[k];
            k += 1;
            match item {
                Item::Lit(l) => {
                    let mut l: &[u8] = l;
                    if skip_space && l.first() == Some(&b' ') {
                        l = &l[1..];
                    }
                    skip_space = false;
                    if starts_with_short(&line[pos..], l) {
                        pos += l.len();
                    } else if pos == line.len() && l.iter().all(|&c| c == b' ') {
                        // a trailing optional part is absent
                    } else {
                        return Err(ParseError::at(expected_lit(l), pos));
                    }
                }
                Item::Var { var, quoted, dup } => {
                    skip_space = false;
                    let next_lit: Option<&[u8]> = match self.items.get(k) {
                        Some(Item::Lit(l)) => Some(l),
                        _ => None,
                    };
                    let start = pos;
                    let value: &'a [u8];
                    match var {
                        Var::CaptureReq | Var::CaptureRes if !*quoted => {
                            if line.get(pos) == Some(&b'{') {
                                let end = memchr(b'}', &line[pos..])
                                    .ok_or(ParseError::at("unterminated `{` capture", pos))?
                                    + pos;
                                value = &line[pos + 1..end];
                                pos = end + 1;
                            } else {
                                skip_space = true;
                                continue;
                            }
                        }
                        Var::CaptureReqList | Var::CaptureResList => {
                            let limit =
                                captures.count(out.frontend, matches!(var, Var::CaptureReqList));
                            let mut count = 0;
                            let mut end = pos;
                            while line.get(end) == Some(&b'"') && limit.is_none_or(|l| count < l) {
                                let close = memchr(b'"', &line[end + 1..])
                                    .ok_or(ParseError::at("unterminated quoted capture", end))?
                                    + end
                                    + 1;
                                count += 1;
                                end = close + 1;
                                if line.get(end) == Some(&b' ')
                                    && line.get(end + 1) == Some(&b'"')
                                    && limit.is_none_or(|l| count < l)
                                {
                                    end += 1;
                                }
                            }
                            value = &line[pos..end];
                            pos = end;
                            if count == 0 {
                                skip_space = true;
                            }
                        }
                        _ if *quoted => {
                            if line.get(pos) != Some(&b'"') {
                                return Err(ParseError::at("expected `\"`", pos));
                            }
                            match memchr(b'"', &line[pos + 1..]) {
                                Some(i) => {
                                    value = &line[pos + 1..pos + 1 + i];
                                    pos += i + 2;
                                }
                                None => {
                                    // Cut by HAProxy's line length: keep what is there.
                                    value = &line[pos + 1..];
                                    pos = line.len();
                                    out.info.truncated = true;
                                }
                            }
                        }
                        Var::Ip(_) if next_lit.is_some_and(|l| l.first() == Some(&b':')) => {
                            let end = memchr(b' ', &line[pos..]).map_or(line.len(), |i| pos + i);
                            let colon = memchr::memrchr(b':', &line[pos..end])
                                .ok_or(ParseError::at("expected `ip:port`", pos))?
                                + pos;
                            value = &line[pos..colon];
                            pos = colon;
                        }
                        Var::Request => {
                            // Unquoted request line: method, URI and version hold two spaces.
                            let mut end = pos;
                            for _ in 0..2 {
                                end =
                                    memchr(b' ', &line[end..]).map_or(line.len(), |i| end + i + 1);
                            }
                            let stop = next_lit.and_then(|l| l.first().copied()).unwrap_or(b' ');
                            end = memchr(stop, &line[end.min(line.len())..])
                                .map_or(line.len(), |i| end + i);
                            value = &line[pos..end];
                            pos = end;
                        }
                        _ => {
                            let stop = next_lit.and_then(|l| l.first().copied()).unwrap_or(b' ');
                            let end =
                                find_short(stop, &line[pos..]).map_or(line.len(), |i| pos + i);
                            value = &line[pos..end];
                            pos = end;
                        }
                    }
                    if *dup {
                        let mut info2 = *out.info;
                        Emitter {
                            format: self,
                            cx,
                            captures,
                            frontend: out.frontend,
                            sink: &mut crate::parse::Discard,
                            info: &mut info2,
                        }
                        .emit(var, value, start)?;
                    } else {
                        out.emit(var, value, start)?;
                    }
                    if out.info.truncated {
                        return Ok(());
                    }
                }
            }
        }
        if line[pos..].iter().any(|&c| c != b' ') {
            return Err(ParseError::at("unexpected data after the last field", pos));
        }
        Ok(())
    }
}

/// `hay.starts_with(lit)` without a `memcmp` call for the one- and two-byte literals that
/// separate most fields.
#[inline]
pub(crate) fn starts_with_short(hay: &[u8], lit: &[u8]) -> bool {
    match *lit {
        [a] => hay.first() == Some(&a),
        [a, b] => hay.len() >= 2 && hay[0] == a && hay[1] == b,
        _ => hay.starts_with(lit),
    }
}

/// `memchr` for values that are usually a few bytes long (names, numbers): a plain loop over
/// the first 16 bytes, then memchr.
#[inline]
pub(crate) fn find_short(needle: u8, hay: &[u8]) -> Option<usize> {
    let head = hay.len().min(16);
    match hay[..head].iter().position(|&c| c == needle) {
        Some(i) => Some(i),
        None if hay.len() > head => memchr(needle, &hay[head..]).map(|i| i + head),
        None => None,
    }
}

/// HAProxy `#XX` escapes only need decoding when a `#` is present.
pub(crate) fn esc(v: &[u8]) -> Value<'_> {
    if memchr(b'#', v).is_some() {
        Value::Escaped(v, Escaping::Hash)
    } else {
        Value::Str(v)
    }
}

/// Splits `METHOD URI VERSION` into fields; `<BADREQ>` and other odd requests stay whole.
pub(crate) fn emit_request<S: FieldSink>(value: &[u8], sink: &mut S) {
    if value.is_empty() || value == b"-" {
        return;
    }
    let Some(sp) = memchr(b' ', value) else {
        sink.field("http_request", esc(value));
        return;
    };
    let method = &value[..sp];
    let rest = &value[sp + 1..];
    sink.field("http_method", Value::Str(method));
    match memchr::memrchr(b' ', rest) {
        Some(sp2) if rest[sp2 + 1..].starts_with(b"HTTP/") => {
            sink.field("http_path", esc(&rest[..sp2]));
            sink.field("http_version", Value::Str(&rest[sp2 + 1..]));
        }
        _ => sink.field("http_path", esc(rest)),
    }
}

fn expected_lit(l: &[u8]) -> &'static str {
    match l.first() {
        Some(b' ') => "expected a space",
        Some(b'/') => "expected `/`",
        Some(b':') => "expected `:`",
        Some(b'[') => "expected `[`",
        Some(b']') => "expected `]`",
        Some(b'"') => "expected `\"`",
        Some(b'{') => "expected `{`",
        _ => "expected literal text of the log-format",
    }
}

fn parse_flags(flags: &str, at: usize) -> Result<Option<bool>, CompileError> {
    let mut quote = None;
    let b = flags.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b',' => i += 1,
            s @ (b'+' | b'-') => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j].is_ascii_alphabetic() {
                    j += 1;
                }
                match &flags[start..j] {
                    "Q" => quote = Some(s == b'+'),
                    "X" | "E" | "M" | "bin" => {}
                    other => return Err(CompileError::BadFlag(other.to_owned(), at)),
                }
                i = j;
            }
            _ => return Err(CompileError::BadFlag(flags.to_owned(), at)),
        }
    }
    Ok(quote)
}

/// `ssl_fc_err,hex` → `ssl_fc_err`; `var(txn.tid)` → `var_txn.tid`.
fn sample_field_name(expr: &str) -> String {
    let fetch = expr.split(',').next().unwrap_or(expr);
    let mut out = String::with_capacity(fetch.len());
    for c in fetch.chars() {
        out.push(
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            },
        );
    }
    let trimmed = out.trim_end_matches('_').to_owned();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("id") {
        format!("sample_{trimmed}")
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_builtins() {
        for f in [HTTPLOG, TCPLOG, HTTPSLOG, CLF] {
            LogFormat::compile(f).unwrap();
        }
        assert!(matches!(
            LogFormat::compile("%ci %zz"),
            Err(CompileError::UnknownVar(..))
        ));
        assert!(matches!(
            LogFormat::compile("%[abc"),
            Err(CompileError::Unterminated(..))
        ));
        assert!(matches!(
            LogFormat::compile("%{+Z}r"),
            Err(CompileError::BadFlag(..))
        ));
        assert_eq!(sample_field_name("var(txn.tid)"), "var_txn.tid");
        assert_eq!(sample_field_name("ssl_fc_err,hex"), "ssl_fc_err");
    }
}
