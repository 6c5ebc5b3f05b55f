//! The GELF scanner: one byte-oriented pass over a flat GELF object (what Quill writes) into the
//! view of the fields the index reads. Pure.

use super::*;

/// The GELF fields the index reads; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct GelfView<'a> {
    #[serde(borrow)]
    pub(super) host: LooseStr<'a>,
    #[serde(borrow)]
    pub(super) short_message: LooseStr<'a>,
    #[serde(borrow)]
    pub(super) full_message: LooseStr<'a>,
    pub(super) timestamp: LooseNum,
    pub(super) level: LooseNum,
    #[serde(borrow, rename = "_txn_id")]
    pub(super) txn_id: LooseStr<'a>,
    #[serde(borrow, rename = "_category")]
    pub(super) category: LooseStr<'a>,
    #[serde(borrow, rename = "_source")]
    pub(super) source: LooseStr<'a>,
    #[serde(rename = "_status")]
    pub(super) status: LooseNum,
    #[serde(borrow, rename = "_http_method")]
    pub(super) method: LooseStr<'a>,
    #[serde(borrow, rename = "_http_path")]
    pub(super) path: LooseStr<'a>,
    #[serde(borrow, rename = "_client_ip")]
    pub(super) client_ip: LooseStr<'a>,
}

/// Transaction-id fields of an application's own JSON line.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct JsonLineIds<'a> {
    #[serde(borrow, rename = "_txn_id")]
    pub(super) gelf_txn_id: LooseStr<'a>,
    #[serde(borrow)]
    pub(super) txn_id: LooseStr<'a>,
    #[serde(borrow, rename = "txnId")]
    pub(super) txn_id_camel: LooseStr<'a>,
    #[serde(borrow)]
    pub(super) request_id: LooseStr<'a>,
    #[serde(borrow, rename = "requestId")]
    pub(super) request_id_camel: LooseStr<'a>,
}

impl<'a> JsonLineIds<'a> {
    pub(super) fn first(self) -> Option<Cow<'a, str>> {
        [
            self.gelf_txn_id,
            self.txn_id,
            self.txn_id_camel,
            self.request_id,
            self.request_id_camel,
        ]
        .into_iter()
        .find_map(|v| v.0.filter(|s| !s.is_empty()))
    }
}
/// Which [`GelfView`] field a top-level key fills.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ViewKey {
    Host,
    ShortMessage,
    FullMessage,
    Timestamp,
    Level,
    TxnId,
    Category,
    Source,
    Status,
    Method,
    Path,
    ClientIp,
}

impl ViewKey {
    fn of(key: &[u8]) -> Option<ViewKey> {
        Some(match key {
            b"host" => ViewKey::Host,
            b"short_message" => ViewKey::ShortMessage,
            b"full_message" => ViewKey::FullMessage,
            b"timestamp" => ViewKey::Timestamp,
            b"level" => ViewKey::Level,
            b"_txn_id" => ViewKey::TxnId,
            b"_category" => ViewKey::Category,
            b"_source" => ViewKey::Source,
            b"_status" => ViewKey::Status,
            b"_http_method" => ViewKey::Method,
            b"_http_path" => ViewKey::Path,
            b"_client_ip" => ViewKey::ClientIp,
            _ => return None,
        })
    }
}

/// Reads the index fields of a *flat* JSON object, the shape Quill's GELF encoder writes: every
/// value a string, number, boolean or null. One byte-oriented pass, strings borrowed unless they
/// hold escapes. Returns `None` for anything else (a nested value, a repeated field, a non-string
/// value where a string is read, bad syntax): the caller then uses the general JSON reader, so
/// both give the same fields.
pub(super) fn scan_flat_gelf(text: &str) -> Option<GelfView<'_>> {
    let b = text.as_bytes();
    let ws = |mut i: usize| {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    };
    // The end of the string whose opening quote is at `at` (index after the closing quote), and
    // whether it holds escapes.
    let string_end = |at: usize| -> Option<(usize, bool)> {
        let mut i = at + 1;
        let mut escaped = false;
        loop {
            i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
            if b[i] == b'"' {
                return Some((i + 1, escaped));
            }
            escaped = true;
            i += 2;
        }
    };
    let mut view = GelfView::default();
    let mut seen = [false; 12];
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(i + 1);
    if b.get(i) == Some(&b'}') {
        return (ws(i + 1) == b.len()).then_some(view);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (key_end, key_escaped) = string_end(i)?;
        if key_escaped {
            return None;
        }
        let key = ViewKey::of(&b[i + 1..key_end - 1]);
        i = ws(key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        let start = i;
        // The value: a string (decoded on demand), or a scalar token.
        let string = match b.get(i)? {
            b'"' => {
                let (end, escaped) = string_end(i)?;
                i = end;
                let value = if key.is_none() {
                    None
                } else if escaped {
                    Some(Cow::Owned(
                        serde_json::from_str::<String>(&text[start..end]).ok()?,
                    ))
                } else {
                    Some(Cow::Borrowed(&text[start + 1..end - 1]))
                };
                Some(value)
            }
            b'{' | b'[' => return None,
            _ => {
                while i < b.len() && !matches!(b[i], b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
                None
            }
        };
        let token = &text[start..i];
        if string.is_none() && !valid_scalar(token) {
            return None;
        }
        if let Some(k) = key {
            if std::mem::replace(&mut seen[k as usize], true) {
                return None;
            }
            let value = string.unwrap_or_default();
            match k {
                ViewKey::Timestamp => view.timestamp = loose_num(value, token),
                ViewKey::Level => view.level = loose_num(value, token),
                ViewKey::Status => view.status = loose_num(value, token),
                ViewKey::Host => view.host = loose_str(value, token)?,
                ViewKey::ShortMessage => view.short_message = loose_str(value, token)?,
                ViewKey::FullMessage => view.full_message = loose_str(value, token)?,
                ViewKey::TxnId => view.txn_id = loose_str(value, token)?,
                ViewKey::Category => view.category = loose_str(value, token)?,
                ViewKey::Source => view.source = loose_str(value, token)?,
                ViewKey::Method => view.method = loose_str(value, token)?,
                ViewKey::Path => view.path = loose_str(value, token)?,
                ViewKey::ClientIp => view.client_ip = loose_str(value, token)?,
            }
        }
        i = ws(i);
        match b.get(i)? {
            b',' => i = ws(i + 1),
            b'}' => return (ws(i + 1) == b.len()).then_some(view),
            _ => return None,
        }
    }
}

/// A JSON literal or number (the general reader rejects anything else). Plain decimals are
/// checked here; other forms (exponents) go through the JSON reader.
fn valid_scalar(token: &str) -> bool {
    if matches!(token, "null" | "true" | "false") {
        return true;
    }
    let t = token.as_bytes();
    let digits = t.strip_prefix(b"-").unwrap_or(t);
    let (int, frac) = match memchr::memchr(b'.', digits) {
        Some(dot) => (&digits[..dot], Some(&digits[dot + 1..])),
        None => (digits, None),
    };
    let all_digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    let plain =
        all_digits(int) && (int.len() == 1 || int[0] != b'0') && frac.is_none_or(all_digits);
    plain || (!t.is_empty() && serde_json::from_str::<IgnoredAny>(token).is_ok())
}

/// A [`LooseNum`] from a scanned value: a string (`Some`) or a valid scalar token.
fn loose_num(string: Option<Cow<'_, str>>, token: &str) -> LooseNum {
    match string {
        Some(s) => LooseNum(s.trim().parse::<f64>().ok()),
        None => LooseNum(token.parse::<f64>().ok()),
    }
}

/// A [`LooseStr`] from a scanned value; `None` for a number or boolean (left to the general
/// reader, which spells them its own way).
fn loose_str<'a>(string: Option<Cow<'a, str>>, token: &str) -> Option<LooseStr<'a>> {
    match string {
        Some(s) => Some(LooseStr(Some(s))),
        None if token == "null" => Some(LooseStr(None)),
        None => None,
    }
}
