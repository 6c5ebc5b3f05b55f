//! HAProxy `log-format` strings compiled into line matchers.
//!
//! [`LogFormat::compile`] turns a log-format string (as it stands after haproxy.cfg unquoting)
//! into a list of literals and variables; [`LogFormat::parse`] walks a line along that list,
//! reporting each variable as a typed GELF field. The built-in formats (`option httplog`,
//! `tcplog`, `httpslog`, `httplog clf`) are such strings too. Pure, allocation-free matching.

mod emit;

use memchr::memchr;

pub(super) use emit::Emitter;

use super::Captures;
use super::captures::emit_slot;
pub(crate) use super::values::{emit_request, esc, find_short, starts_with_short};
use super::values::{expected_lit, parse_hex, str_value, unescaped_quote};
pub(crate) use super::vars::Var;
use super::vars::{Encoding, Flags, sample_field_name};
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

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Item {
    Lit(Box<[u8]>),
    /// `dup`: the same variable appears earlier; it is matched but not reported twice.
    /// `name`: the 3.0 node name `%(name)`, the key of an encoded (`+json`/`+cbor`) line.
    Var {
        var: Var,
        quoted: bool,
        fl: ValueFlags,
        dup: bool,
        name: Option<Box<str>>,
    },
}

/// How one variable's value is written, beyond quoting: `+X` hex, `+E` backslash escapes (or
/// the JSON escapes of a `+json` line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ValueFlags {
    pub hex: bool,
    pub escaping: Option<Escaping>,
}

/// A compiled log-format.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFormat {
    pub(super) items: Vec<Item>,
    sample_names: Vec<String>,
    pub(super) has_active_time: bool,
    /// `%{+json}o` / `%{+cbor}o`: the line is an encoded object, not text.
    pub(super) encoding: Option<Encoding>,
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
        let mut global = Flags::default();
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
                    let mut flags = Flags::default();
                    let mut name: Option<Box<str>> = None;
                    // `%(name){flags}var` (3.0) or `%{flags}(name)var`.
                    for _ in 0..2 {
                        if s.get(i) == Some(&b'{') {
                            let end = memchr(b'}', &s[i..])
                                .ok_or(CompileError::Unterminated("flags", at))?
                                + i;
                            flags = Flags::parse(&fmt[i + 1..end], at)?;
                            i = end + 1;
                        } else if s.get(i) == Some(&b'(') {
                            let end = memchr(b')', &s[i..])
                                .ok_or(CompileError::Unterminated("node name", at))?
                                + i;
                            // `%(name:type)`: the type only changes how HAProxy encodes it.
                            let n = fmt[i + 1..end].split(':').next().unwrap_or("");
                            name = Some(n.into());
                            i = end + 1;
                        }
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
                            global = flags.over(global);
                            continue;
                        }
                        Var::lookup(name)
                            .ok_or_else(|| CompileError::UnknownVar(name.to_owned(), at))?
                    };
                    flush(&mut lit, &mut items);
                    let f = flags.over(global);
                    let quoted = var.quotable() && f.quote.unwrap_or(false);
                    let fl = ValueFlags {
                        hex: var.hexable() && f.hex.unwrap_or(false),
                        escaping: f.escape.unwrap_or(false).then_some(Escaping::HashSd),
                    };
                    let dup = items
                        .iter()
                        .any(|it| matches!(it, Item::Var { var: v, .. } if *v == var));
                    items.push(Item::Var {
                        var,
                        quoted,
                        fl,
                        dup,
                        name,
                    });
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
            encoding: global.encoding,
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
        if let Some(enc) = self.encoding {
            return super::encoded::parse(self, enc, line, cx, captures, sink, info);
        }
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
                Item::Var {
                    var,
                    quoted,
                    fl,
                    dup,
                    ..
                } => {
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
                            let close = if fl.escaping.is_some() {
                                unescaped_quote(&line[pos + 1..])
                            } else {
                                memchr(b'"', &line[pos + 1..])
                            };
                            match close {
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
                        .emit(var, value, *fl, start)?;
                    } else {
                        out.emit(var, value, *fl, start)?;
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
