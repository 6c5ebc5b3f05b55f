//! HAProxy 3.0 encoded log lines: a log-format with `%{+json}o` writes one JSON object whose
//! keys are the node names (`%(client_ip)ci`), `%{+cbor}o` the same map in CBOR, written as
//! hex digits (or raw bytes with `+bin`). Each key becomes the field of the variable it names,
//! exactly as in a text line; keys the format does not name are kept as `json_<key>` fields.
//! Pure; the CBOR reader is bounded (no recursion, lengths checked against the input).

use super::Captures;
use super::logformat::{Item, LogFormat, ValueFlags};
use super::vars::{Encoding, Var};
use crate::parse::text::Escaping;
use crate::parse::{Context, FieldSink, LineInfo, ParseError, Value};

/// Parses an encoded line with the named nodes of `f`.
pub(super) fn parse<'a, S: FieldSink>(
    f: &LogFormat,
    enc: Encoding,
    line: &'a [u8],
    cx: &Context<'_>,
    captures: &Captures,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<(), ParseError> {
    match enc {
        Encoding::Json => parse_json(f, line, cx, captures, sink, info),
        Encoding::Cbor => parse_cbor(f, line, cx, sink, info),
    }
}

fn node<'f>(f: &'f LogFormat, key: &[u8]) -> Option<(&'f Var, ValueFlags)> {
    f.items.iter().find_map(|it| match it {
        Item::Var {
            var,
            fl,
            name: Some(n),
            dup: false,
            ..
        } if n.as_bytes() == key => Some((var, *fl)),
        _ => None,
    })
}

fn parse_json<'a, S: FieldSink>(
    f: &LogFormat,
    line: &'a [u8],
    cx: &Context<'_>,
    captures: &Captures,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<(), ParseError> {
    let entries = crate::parse::json::entries(line)?;
    let mut frontend: &'a [u8] = b"";
    let mut matched = 0usize;
    for (key, raw) in &entries.0 {
        let text: &'a str = raw.get();
        let bytes = text.as_bytes();
        let (value, quoted) = match bytes.first() {
            Some(b'"') if bytes.len() >= 2 => (&bytes[1..bytes.len() - 1], true),
            _ => (bytes, false),
        };
        match node(f, key.as_bytes()) {
            Some((var, mut fl)) if value != b"null" || quoted => {
                fl.escaping = Some(Escaping::Json);
                matched += 1;
                let mut out = super::logformat::Emitter {
                    format: f,
                    cx,
                    captures,
                    frontend,
                    sink: &mut *sink,
                    info: &mut *info,
                };
                out.emit(var, value, fl, 0)?;
                frontend = out.frontend;
            }
            Some(_) => {}
            None => {
                if let Some(v) = crate::parse::json::value(raw) {
                    sink.dynamic_field("json_", key.as_bytes(), v);
                }
            }
        }
    }
    if matched == 0 {
        return Err(ParseError::at("no key of the +json log-format", 0));
    }
    Ok(())
}

/// Most CBOR items read from one line (a map of a few dozen nodes).
const MAX_CBOR_ITEMS: usize = 4096;

/// One decoded CBOR item: its major type, its argument, where its payload starts.
struct Head {
    major: u8,
    arg: u64,
    /// `arg` is the indefinite-length marker (additional info 31).
    indefinite: bool,
}

/// A CBOR byte source: raw bytes or hex digits (two per byte).
struct Reader<'a> {
    src: &'a [u8],
    hex: bool,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn len(&self) -> usize {
        if self.hex {
            self.src.len() / 2
        } else {
            self.src.len()
        }
    }

    fn byte(&mut self) -> Result<u8, ParseError> {
        let i = self.pos;
        self.pos += 1;
        let b = if self.hex {
            let hi = self.src.get(2 * i).copied().and_then(hexval);
            let lo = self.src.get(2 * i + 1).copied().and_then(hexval);
            hi.zip(lo).map(|(h, l)| h << 4 | l)
        } else {
            self.src.get(i).copied()
        };
        b.ok_or(ParseError::at("truncated or malformed CBOR", self.col(i)))
    }

    fn col(&self, i: usize) -> usize {
        if self.hex { 2 * i } else { i }
    }

    fn head(&mut self) -> Result<Head, ParseError> {
        let b = self.byte()?;
        let (major, ai) = (b >> 5, b & 31);
        let arg = match ai {
            0..=23 => u64::from(ai),
            24..=27 => {
                let mut n = 0u64;
                for _ in 0..(1u32 << (ai - 24)) {
                    n = n << 8 | u64::from(self.byte()?);
                }
                n
            }
            31 => 0,
            _ => return Err(ParseError::at("bad CBOR length", self.col(self.pos - 1))),
        };
        Ok(Head {
            major,
            arg,
            indefinite: ai == 31,
        })
    }

    /// The source bytes of a definite-length payload of `n` bytes (hex digits when `hex`).
    fn payload(&mut self, n: u64) -> Result<&'a [u8], ParseError> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > self.len().saturating_sub(self.pos) {
            return Err(ParseError::at(
                "CBOR string longer than the line",
                self.col(self.pos),
            ));
        }
        let start = self.col(self.pos);
        self.pos += n;
        Ok(&self.src[start..self.col(self.pos)])
    }
}

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// A CBOR map (definite or indefinite) of text keys to integers, strings, booleans and null.
fn parse_cbor<'a, S: FieldSink>(
    f: &LogFormat,
    line: &'a [u8],
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<(), ParseError> {
    let hex = line.iter().all(u8::is_ascii_hexdigit) && line.len().is_multiple_of(2);
    let mut r = Reader {
        src: line,
        hex,
        pos: 0,
    };
    let top = r.head()?;
    if top.major != 5 {
        return Err(ParseError::at("expected a CBOR map", 0));
    }
    let mut left = if top.indefinite { u64::MAX } else { top.arg };
    let mut matched = 0usize;
    let mut n = 0usize;
    let mut keybuf = [0u8; 128];
    while left > 0 {
        n += 1;
        if n > MAX_CBOR_ITEMS {
            return Err(ParseError::at("too many CBOR items", r.col(r.pos)));
        }
        left -= 1;
        if top.indefinite && r.pos < r.len() {
            let save = r.pos;
            if r.byte()? == 0xff {
                break;
            }
            r.pos = save;
        }
        let k = r.head()?;
        if k.major != 3 || k.indefinite {
            return Err(ParseError::at("expected a CBOR text key", r.col(r.pos)));
        }
        let kraw = r.payload(k.arg)?;
        let key = decode_small(kraw, hex, &mut keybuf)
            .ok_or(ParseError::at("CBOR key too long", r.col(r.pos)))?;
        let v = r.head()?;
        let value = match (v.major, v.indefinite) {
            (0, false) => Some(Value::Int(i64::try_from(v.arg).unwrap_or(i64::MAX))),
            (1, false) => Some(Value::Int(-1 - i64::try_from(v.arg).unwrap_or(i64::MAX))),
            (2 | 3, false) => {
                let p = r.payload(v.arg)?;
                Some(if hex {
                    Value::Escaped(p, Escaping::Hex)
                } else {
                    Value::Str(p)
                })
            }
            (7, false) => match v.arg {
                20 => Some(Value::Str(b"false")),
                21 => Some(Value::Str(b"true")),
                _ => None,
            },
            _ => return Err(ParseError::at("unsupported CBOR item", r.col(r.pos))),
        };
        let Some(value) = value else { continue };
        match node(f, key) {
            Some((Var::Date, _)) => {
                matched += 1;
                let mut buf = [0u8; 128];
                let text = match value {
                    Value::Escaped(p, _) => decode_small(p, true, &mut buf),
                    Value::Str(p) => Some(p),
                    _ => None,
                };
                let t = text.and_then(|t| crate::parse::text::parse_clf_date(t, cx.zone));
                if let Some(t) = t {
                    info.timestamp_ms = Some(t);
                    info.own_time = true;
                }
            }
            Some((var, _)) => {
                matched += 1;
                emit_value(f, var, value, cx, sink, info);
            }
            None => sink.dynamic_field("cbor_", key, value),
        }
    }
    if matched == 0 {
        return Err(ParseError::at("no key of the +cbor log-format", 0));
    }
    Ok(())
}

/// Decodes a short hex (or raw) key into `buf`.
fn decode_small<'b>(raw: &'b [u8], hex: bool, buf: &'b mut [u8; 128]) -> Option<&'b [u8]> {
    if !hex {
        return Some(raw);
    }
    let n = raw.len() / 2;
    if n > buf.len() {
        return None;
    }
    for i in 0..n {
        buf[i] = hexval(raw[2 * i])? << 4 | hexval(raw[2 * i + 1])?;
    }
    Some(&buf[..n])
}

/// A decoded CBOR value reported as the field of the variable its key names.
fn emit_value<'a, S: FieldSink>(
    f: &LogFormat,
    var: &Var,
    v: Value<'a>,
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) {
    match (var, v) {
        (Var::Int(name) | Var::Ip(name) | Var::Str(name), v) => sink.field(name, v),
        (Var::Status, Value::Int(s)) => {
            info.status = Some(s);
            sink.field("status", Value::Int(s));
        }
        (Var::ActiveTime, Value::Int(t)) => {
            sink.field("time_active_ms", Value::Int(t));
            sink.field("request_time_ms", Value::Int(t));
        }
        (Var::TotalTime, Value::Int(t)) => {
            sink.field("time_total_ms", Value::Int(t));
            if !f.has_active_time {
                sink.field("request_time_ms", Value::Int(t));
            }
        }
        (Var::Unix, Value::Int(t)) if !info.own_time => {
            info.timestamp_ms = Some(t.saturating_mul(1000));
            info.own_time = true;
        }
        (Var::Frontend, v) => sink.field("frontend", v),
        (Var::TermState, v) => sink.field("termination_state", v),
        (Var::UniqueId, v) => {
            sink.field("unique_id", v);
            info.offer_txn_id(cx.txn, b"unique-id", v);
        }
        (Var::Request, v) => sink.field("http_request", v),
        (_, v) => sink.dynamic_field("cbor_", var_key(var).as_bytes(), v),
    }
}

fn var_key(var: &Var) -> &'static str {
    match var {
        Var::Date => "date",
        Var::Cookie(true) => "captured_request_cookie",
        Var::Cookie(false) => "captured_response_cookie",
        Var::CaptureReq | Var::CaptureReqList => "captured_request_headers",
        Var::CaptureRes | Var::CaptureResList => "captured_response_headers",
        _ => "value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{FieldList, LogZone, TxnIdSources};

    /// Every truncation and every one-digit change of a valid line parses or fails, never
    /// panics, and a long declared length cannot make it read past the line.
    #[test]
    fn hostile_cbor_is_an_error() {
        let f =
            LogFormat::compile("%{+cbor}o %(client_ip)ci %(status)ST %(uid)ID %(port)cp").unwrap();
        let txn = TxnIdSources::default();
        let cx = Context {
            zone: &LogZone::UTC,
            received_ms: 0,
            txn: &txn,
            sd: None,
        };
        let good = b"BF69636C69656E745F6970693132372E302E302E316673746174757318C8637569646461622D3164706F7274193039FF";
        let run = |line: &[u8]| {
            let mut fl = FieldList::default();
            let mut info = LineInfo::default();
            f.parse(line, &cx, &Captures::default(), &mut fl, &mut info)
                .is_ok()
        };
        assert!(run(good));
        for n in 0..good.len() {
            let _ = run(&good[..n]);
            for d in [b'0', b'7', b'B', b'F'] {
                let mut m = good.to_vec();
                m[n] = d;
                let _ = run(&m);
            }
        }
        // A text string declaring 2^63 bytes.
        assert!(!run(b"A1617A7B7FFFFFFFFFFFFFFF"));
        // Raw (`+bin`) CBOR.
        assert!(!run(&[0xa1, 0x61, b'x', 0x01]));
    }
}
