//! `log-format-sd`: the RFC 5424 structured data HAProxy writes with each log line. Every
//! parameter of it is a small log-format (`bytes=\"%B\"`); Quill compiles each one and, when a
//! syslog line carries that SD-ID and parameter, reports what the variable holds under the name
//! of what it holds, prefixed `sd_` (`%B` → `sd_bytes_read`, `%ID` → `sd_unique_id`, which can
//! be the `_txn_id`; the prefix keeps them apart from the same variables in the message) instead
//! of the parameter's name. A value its fragment does not match stays `sd_<param>`. Pure.

use super::Captures;
use super::logformat::LogFormat;
use crate::parse::{Context, FieldSink, LineInfo, Value};

/// Forwards every field as `sd_<name>`.
struct Prefixed<'s, S>(&'s mut S);

impl<S: FieldSink> FieldSink for Prefixed<'_, S> {
    fn field(&mut self, name: &str, value: Value<'_>) {
        self.0.dynamic_field("sd_", name.as_bytes(), value);
    }
    fn dynamic_field(&mut self, prefix: &str, name: &[u8], value: Value<'_>) {
        let mut full = Vec::with_capacity(prefix.len() + name.len());
        full.extend_from_slice(prefix.as_bytes());
        full.extend_from_slice(name);
        self.0.dynamic_field("sd_", &full, value);
    }
    fn mark(&self) -> usize {
        self.0.mark()
    }
    fn rollback(&mut self, mark: usize) {
        self.0.rollback(mark)
    }
}

/// The compiled parameters of every `log-format-sd` of a configuration.
#[derive(Debug, Default)]
pub struct SdFormats {
    params: Vec<SdParam>,
    captures: Captures,
}

#[derive(Debug)]
struct SdParam {
    id: Box<[u8]>,
    name: Box<[u8]>,
    format: LogFormat,
}

impl SdFormats {
    /// Adds the parameters of one `log-format-sd` string (as it stands after unquoting);
    /// a parameter whose value does not compile as a log-format is left to `sd_<param>`.
    pub fn add(&mut self, fmt: &str) {
        let (flags, body) = leading_flags(fmt);
        for element in elements(body) {
            let mut words = element.split(' ').filter(|w| !w.is_empty());
            let Some(id) = words.next() else { continue };
            for param in words {
                let Some((name, value)) = param.split_once('=') else {
                    continue;
                };
                let text = format!("{flags}{value}");
                let Ok(format) = LogFormat::compile(&text) else {
                    continue;
                };
                if self
                    .params
                    .iter()
                    .any(|p| &*p.id == id.as_bytes() && &*p.name == name.as_bytes())
                {
                    continue;
                }
                self.params.push(SdParam {
                    id: id.as_bytes().into(),
                    name: name.as_bytes().into(),
                    format,
                });
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Reports parameter `name` of element `id`, its value `quoted` with its double quotes as
    /// in the line, as the fields of its log-format; false (nothing reported) when no
    /// `log-format-sd` names it or the value does not match.
    pub fn emit<'a, S: FieldSink>(
        &self,
        id: &[u8],
        name: &[u8],
        quoted: &'a [u8],
        cx: &Context<'_>,
        sink: &mut S,
        info: &mut LineInfo<'a>,
    ) -> bool {
        let Some(p) = self
            .params
            .iter()
            .find(|p| &*p.id == id && &*p.name == name)
        else {
            return false;
        };
        let mark = sink.mark();
        let saved = *info;
        // Fragments written `"%B"` match the quotes; `%{+Q}r` quotes itself.
        let inner = &quoted[1..quoted.len().saturating_sub(1).max(1)];
        for v in [quoted, inner] {
            let ok = p
                .format
                .parse(v, cx, &self.captures, &mut Prefixed(sink), info)
                .is_ok();
            if ok {
                // The parameter's own name stays a `_txn_id` source (`txn_id_fields = ["tid"]`).
                let raw = if memchr::memchr(b'\\', inner).is_some() {
                    Value::Escaped(inner, crate::parse::Escaping::Sd)
                } else {
                    Value::Str(inner)
                };
                info.offer_txn_id(cx.txn, name, raw);
                return true;
            }
            sink.rollback(mark);
            *info = saved;
        }
        false
    }
}

/// `%{+Q,+E}o [id …]` → (`%{+Q,+E}o `, `[id …]`): the `%o` flags apply to every parameter.
fn leading_flags(fmt: &str) -> (String, &str) {
    let mut flags = String::new();
    let mut rest = fmt.trim_start();
    while rest.starts_with("%{") {
        let Some(end) = rest.find('}') else { break };
        if !rest[end + 1..].starts_with('o') {
            break;
        }
        flags.push_str(&rest[..end + 2]);
        flags.push(' ');
        rest = rest[end + 2..].trim_start();
    }
    (flags, rest)
}

/// The `[…]` elements of a structured-data format (brackets inside `%[…]` samples and quoted
/// values are not element ends).
fn elements(body: &str) -> Vec<&str> {
    let b = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'[' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        let mut depth = 0usize;
        let mut quoted = false;
        while j < b.len() {
            match b[j] {
                b'\\' => j += 1,
                b'"' => quoted = !quoted,
                b'[' if !quoted && j > 0 && b[j - 1] == b'%' => depth += 1,
                b'[' if !quoted && depth > 0 => depth += 1,
                b']' if !quoted && depth > 0 => depth -= 1,
                b']' if !quoted => break,
                _ => {}
            }
            j += 1;
        }
        out.push(&body[start..j.min(body.len())]);
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{FieldList, LogZone, TxnIdSources};

    #[test]
    fn manual_examples() {
        let mut sd = SdFormats::default();
        // configuration.txt (2.6) "log-format-sd": tokenized from
        // `[exampleSDID@1234\ bytes=\"%B\"\ status=\"%ST\"]`
        sd.add(r#"[exampleSDID@1234 bytes="%B" status="%ST"]"#);
        sd.add(r#"%{+Q,+E}o [id@2 header=%[capture.req.hdr(0)] uid=%ID]"#);
        let txn = TxnIdSources::default();
        let cx = Context {
            zone: &LogZone::UTC,
            received_ms: 0,
            txn: &txn,
            sd: None,
        };
        let mut f = FieldList::default();
        let mut info = LineInfo::default();
        assert!(sd.emit(
            b"exampleSDID@1234",
            b"bytes",
            b"\"379\"",
            &cx,
            &mut f,
            &mut info
        ));
        assert!(sd.emit(
            b"exampleSDID@1234",
            b"status",
            b"\"404\"",
            &cx,
            &mut f,
            &mut info
        ));
        assert!(sd.emit(b"id@2", b"uid", b"\"ab-12\"", &cx, &mut f, &mut info));
        assert!(!sd.emit(b"other@1", b"bytes", b"\"1\"", &cx, &mut f, &mut info));
        assert!(!sd.emit(
            b"exampleSDID@1234",
            b"bytes",
            b"\"x\"",
            &cx,
            &mut f,
            &mut info
        ));
        assert_eq!(f.get_int("sd_bytes_read"), Some(379));
        assert_eq!(f.get_int("sd_status"), Some(404));
        assert_eq!(f.get_str("sd_unique_id"), Some("ab-12"));
        assert!(info.txn_id.is_some());
    }
}
