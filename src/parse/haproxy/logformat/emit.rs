//! One line's matching output as a small struct: [`Emitter::emit`] turns one variable's text
//! into typed fields, the line's [`LineInfo`] and the frontend later capture variables need.

use super::*;

/// Where matching one line writes to: its fields, its [`LineInfo`], and the frontend whose
/// `capture` declarations name the captured headers (learned from `%ft`).
pub(in crate::parse::haproxy) struct Emitter<'a, 'l, S> {
    pub format: &'l LogFormat,
    pub cx: &'l Context<'l>,
    pub captures: &'l Captures,
    pub frontend: &'a [u8],
    pub sink: &'l mut S,
    pub info: &'l mut LineInfo<'a>,
}

impl<'a, S: FieldSink> Emitter<'a, '_, S> {
    /// Reports variable `var` whose text is `value` (at column `at` of the line, for errors).
    pub fn emit(
        &mut self,
        var: &Var,
        value: &'a [u8],
        fl: ValueFlags,
        at: usize,
    ) -> Result<(), ParseError> {
        let (format, cx, captures) = (self.format, self.cx, self.captures);
        let frontend = &mut self.frontend;
        let sink = &mut *self.sink;
        let info = &mut *self.info;
        let int = |v: &[u8]| {
            if fl.hex { parse_hex(v) } else { parse_i64(v) }
                .ok_or(ParseError::at("expected a number", at))
        };
        let esc = |v: &'a [u8]| str_value(v, fl);
        match var {
            Var::Ip(name) => {
                if value.is_empty()
                    || !value.iter().all(|&c| {
                        c.is_ascii_alphanumeric()
                            || c == b'.'
                            || c == b':'
                            || c == b'_'
                            || c == b'-'
                    })
                {
                    return Err(ParseError::at("expected an address", at));
                }
                if value != b"-" {
                    sink.field(
                        name,
                        if fl.hex && value.len() == 8 {
                            Value::Escaped(value, Escaping::HexIp)
                        } else {
                            Value::Str(value)
                        },
                    );
                }
            }
            Var::Int(name) => {
                if value != b"-" {
                    sink.field(name, Value::Int(int(value)?));
                }
            }
            Var::Status => {
                let s = int(value)?;
                info.status = Some(s);
                sink.field("status", Value::Int(s));
            }
            Var::ActiveTime => {
                let t = int(value)?;
                sink.field("time_active_ms", Value::Int(t));
                sink.field("request_time_ms", Value::Int(t));
            }
            Var::TotalTime => {
                let t = int(value)?;
                sink.field("time_total_ms", Value::Int(t));
                if !format.has_active_time {
                    sink.field("request_time_ms", Value::Int(t));
                }
            }
            Var::Date => {
                let t = parse_clf_date(value, cx.zone).ok_or(ParseError::at("bad date", at))?;
                if info.timestamp_ms.is_none() || !info.own_time {
                    info.timestamp_ms = Some(t);
                    info.own_time = true;
                }
            }
            Var::Unix => {
                let t = int(value)?;
                if !info.own_time {
                    info.timestamp_ms = Some(t.saturating_mul(1000));
                    info.own_time = true;
                }
            }
            Var::Skip => {}
            Var::Frontend => {
                if value.is_empty() {
                    return Err(ParseError::at("expected a frontend name", at));
                }
                let (name, ssl) = match value.strip_suffix(b"~") {
                    Some(n) => (n, true),
                    None => (value, false),
                };
                *frontend = name;
                sink.field("frontend", Value::Str(name));
                if ssl {
                    sink.field("ssl", Value::Int(1));
                }
            }
            Var::TermState => {
                if value.is_empty() {
                    return Err(ParseError::at("expected a termination state", at));
                }
                sink.field("termination_state", Value::Str(value));
            }
            Var::Str(name) => {
                if !value.is_empty() && value != b"-" {
                    sink.field(name, esc(value));
                }
            }
            Var::Cookie(req) => {
                if !value.is_empty() && value != b"-" {
                    sink.field(
                        if *req {
                            "captured_request_cookie"
                        } else {
                            "captured_response_cookie"
                        },
                        esc(value),
                    );
                    captures.emit_cookie(frontend, value, *req, cx, sink, info);
                }
            }
            Var::UniqueId => {
                if !value.is_empty() && value != b"-" {
                    sink.field("unique_id", esc(value));
                    info.offer_txn_id(cx.txn, b"unique-id", esc(value));
                }
            }
            Var::Sample(idx) => {
                let name = format
                    .sample_names
                    .get(usize::from(*idx))
                    .map_or("sample", String::as_str);
                if !value.is_empty() && value != b"-" {
                    let v = if memchr(b'#', value).is_some() || memchr(b'\\', value).is_some() {
                        esc(value)
                    } else {
                        Value::number_or_str(value)
                    };
                    sink.field(name, v);
                }
            }
            Var::Request => emit_request(value, sink, |v| str_value(v, fl)),
            Var::CaptureReq | Var::CaptureRes => {
                let req = matches!(var, Var::CaptureReq);
                sink.field(
                    if req {
                        "captured_request_headers"
                    } else {
                        "captured_response_headers"
                    },
                    esc(value),
                );
                if let Some(slots) = captures.slots(frontend, req) {
                    for (slot, v) in slots.iter().zip(value.split(|&c| c == b'|')) {
                        emit_slot(slot, v, cx, sink, info);
                    }
                }
            }
            Var::CaptureReqList | Var::CaptureResList => {
                if value.is_empty() {
                    return Ok(());
                }
                let req = matches!(var, Var::CaptureReqList);
                sink.field(
                    if req {
                        "captured_request_headers"
                    } else {
                        "captured_response_headers"
                    },
                    esc(value),
                );
                if let Some(slots) = captures.slots(frontend, req) {
                    let mut rest = value;
                    for slot in slots {
                        // `"v1" "v2"`: each value quoted
                        let Some(r) = rest.strip_prefix(b"\"") else {
                            break;
                        };
                        let Some(q) = memchr(b'"', r) else { break };
                        emit_slot(slot, &r[..q], cx, sink, info);
                        rest = r[q + 1..].strip_prefix(b" ").unwrap_or(&r[q + 1..]);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{FieldList, LogZone, TxnIdSources};

    fn emit<'a>(
        var: Var,
        value: &'a [u8],
        fields: &mut FieldList,
        info: &mut LineInfo<'a>,
    ) -> Result<&'a [u8], ParseError> {
        let format = LogFormat::compile(HTTPLOG).unwrap();
        let (zone, txn) = (LogZone::UTC, TxnIdSources::default());
        let cx = Context {
            zone: &zone,
            received_ms: 0,
            txn: &txn,
            sd: None,
        };
        let captures = Captures::default();
        let mut out = Emitter {
            format: &format,
            cx: &cx,
            captures: &captures,
            frontend: b"",
            sink: fields,
            info,
        };
        out.emit(&var, value, ValueFlags::default(), 7)?;
        Ok(out.frontend)
    }

    #[test]
    fn a_frontend_is_remembered_for_the_captures_after_it() {
        let (mut fields, mut info) = (FieldList::default(), LineInfo::default());
        let frontend = emit(Var::Frontend, b"fe_web~", &mut fields, &mut info).unwrap();
        assert_eq!(frontend, b"fe_web");
        assert_eq!(fields.get_str("frontend"), Some("fe_web"));
    }

    #[test]
    fn typed_values_and_line_info() {
        let (mut fields, mut info) = (FieldList::default(), LineInfo::default());
        emit(Var::Status, b"503", &mut fields, &mut info).unwrap();
        assert_eq!(info.status, Some(503));
        emit(Var::Int("bytes_read"), b"1234", &mut fields, &mut info).unwrap();
        assert_eq!(fields.get_int("bytes_read"), Some(1234));
        emit(Var::UniqueId, b"0A01:9C40", &mut fields, &mut info).unwrap();
        assert_eq!(fields.get_str("unique_id"), Some("0A01:9C40"));
    }

    #[test]
    fn a_bad_value_is_an_error_at_its_column() {
        let (mut fields, mut info) = (FieldList::default(), LineInfo::default());
        let e = emit(Var::Int("bytes_read"), b"12x", &mut fields, &mut info).unwrap_err();
        assert_eq!(e, ParseError::at("expected a number", 7));
        let e = emit(Var::Ip("client_ip"), b"10.0.0.1/8", &mut fields, &mut info).unwrap_err();
        assert_eq!(e, ParseError::at("expected an address", 7));
    }
}
