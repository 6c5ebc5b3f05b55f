//! How values stand in an HAProxy line: short scans for the one-byte separators, HAProxy's
//! `#XX` and `+E` escapes, `+X` hex numbers, and the request line split into its parts. Pure.

use memchr::memchr;

use super::logformat::ValueFlags;
use crate::parse::text::Escaping;
use crate::parse::{FieldSink, Value};

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

/// A string value: with `+E` (or in a JSON line) its backslash escapes, else HAProxy's `#XX`.
pub(crate) fn str_value(v: &[u8], fl: ValueFlags) -> Value<'_> {
    match fl.escaping {
        Some(e) if memchr(b'\\', v).is_some() => Value::Escaped(v, e),
        _ => esc(v),
    }
}

/// `+X` numbers: upper-case hex digits (a `-` stays absent).
pub(crate) fn parse_hex(v: &[u8]) -> Option<i64> {
    if v.is_empty() || v.len() > 16 || !v.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let s = std::str::from_utf8(v).ok()?;
    u64::from_str_radix(s, 16).ok().map(|n| n as i64)
}

/// The closing `"` of a `+E` value (`\"` is an escaped quote).
pub(crate) fn unescaped_quote(v: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
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
pub(crate) fn emit_request<'v, S: FieldSink>(
    value: &'v [u8],
    sink: &mut S,
    esc: impl Fn(&'v [u8]) -> Value<'v>,
) {
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

pub(crate) fn expected_lit(l: &[u8]) -> &'static str {
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
