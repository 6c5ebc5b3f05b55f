//! HAProxy capture slots: what each value of `%hr`/`%hs` (`%hrl`/`%hsl`) and `%CC`/`%CS` holds,
//! per frontend, read from a haproxy.cfg; and the fields those values become.
//!
//! HAProxy keeps one list of request slots and one of response slots per frontend. Every
//! mechanism that allocates a slot appends to it as the configuration is read, so the slots
//! appear in the log in the order of the lines that allocated them, whatever the mechanism
//! (`cfgparse-listen.c`, `http_act.c`, `proxy.c`: each does `index = px->nb_req_cap++`; the
//! log walks the indexes in order):
//!
//! - `capture request header NAME len N` / `capture response header NAME len N`;
//! - `http-request capture <sample> len N` and `tcp-request content capture <sample> len N`
//!   (a request slot);
//! - `declare capture request len N` / `declare capture response len N`: a slot filled by
//!   `http-request capture <sample> id I` / `http-response capture <sample> id I` (in the
//!   frontend or in a backend it uses); `I` is the slot's 0-based index among all the request
//!   (response) slots, so it may also name a `capture … header` or `… len` slot.
//!
//! A slot holding a header (`capture … header X`, or a sample `req.hdr(X)`, `hdr(X)`,
//! `req.fhdr(X)`, `res.hdr(X)`, `shdr(X)`, `res.fhdr(X)` without converters) becomes
//! `request_header_x` / `response_header_x`; any other sample becomes `request_capture_<sample>`
//! (`var(txn.rid)` → `request_capture_var_txn.rid`); a declared slot nothing is known to fill,
//! or that different rules fill, becomes `request_capture_<index>`. `capture cookie NAME`
//! adds `request_cookie_name` / `response_cookie_name` (the value after `NAME=`) to `%CC`/`%CS`.
//! Each slot can supply `_txn_id` under the name it holds (the header name, the variable name,
//! the cookie name, `unique-id`). No I/O.

use super::config::{HaproxyConfig, ProxyView, Section, SectionKind};
use crate::parse::{Context, FieldSink, LineInfo};

/// What a capture slot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotContent {
    /// A header's value (its name as configured).
    Header(String),
    /// A sample expression's value (the expression as configured).
    Sample(String),
    /// A declared slot that nothing known fills, or that different rules fill.
    Unknown,
}

/// One capture slot: what it holds, its length limit, the config line that allocated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSlot {
    pub content: SlotContent,
    pub len: Option<usize>,
    pub line: usize,
}

/// The capture slots of one frontend (or listen section), in log order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyCaptures {
    pub request: Vec<CaptureSlot>,
    pub response: Vec<CaptureSlot>,
    /// `capture cookie NAME len N`: the cookie name (`%CC`/`%CS`).
    pub cookie: Option<String>,
}

/// The slots of proxy `p` of `cfg` (see the module doc for the rules).
pub fn proxy_captures(cfg: &HaproxyConfig, p: &ProxyView<'_>) -> ProxyCaptures {
    let mut out = ProxyCaptures::default();
    // Fills by `id`: (request?, index, sample), in the frontend, then in the backends it uses.
    let mut fills: Vec<(bool, usize, String)> = Vec::new();
    for d in &p.section.directives {
        let w: Vec<&str> = d.words.iter().map(String::as_str).collect();
        let len_arg = |at: usize| -> Option<usize> {
            let pos = w.iter().skip(at).position(|x| *x == "len")? + at;
            w.get(pos + 1)?.parse().ok()
        };
        match w.as_slice() {
            ["capture", "request", "header", name, ..] => out.request.push(CaptureSlot {
                content: SlotContent::Header((*name).to_owned()),
                len: len_arg(4),
                line: d.line,
            }),
            ["capture", "response", "header", name, ..] => out.response.push(CaptureSlot {
                content: SlotContent::Header((*name).to_owned()),
                len: len_arg(4),
                line: d.line,
            }),
            ["capture", "cookie", name, ..] => out.cookie = Some((*name).to_owned()),
            ["declare", "capture", side @ ("request" | "response"), ..] => {
                let slot = CaptureSlot {
                    content: SlotContent::Unknown,
                    len: len_arg(3),
                    line: d.line,
                };
                if *side == "request" {
                    out.request.push(slot);
                } else {
                    out.response.push(slot);
                }
            }
            ["http-request", "capture", sample, ..]
            | ["tcp-request", "content", "capture", sample, ..] => {
                let at = if w[0] == "http-request" { 3 } else { 4 };
                match capture_target(&w[at..]) {
                    Some(Target::Len(len)) => out.request.push(CaptureSlot {
                        content: sample_content(sample, true),
                        len: Some(len),
                        line: d.line,
                    }),
                    Some(Target::Id(i)) => fills.push((true, i, (*sample).to_owned())),
                    None => {}
                }
            }
            ["http-response", "capture", sample, ..] => {
                if let Some(Target::Id(i)) = capture_target(&w[3..]) {
                    fills.push((false, i, (*sample).to_owned()));
                }
            }
            _ => {}
        }
    }
    for backend in used_backends(cfg, p.section) {
        for d in &backend.directives {
            let w: Vec<&str> = d.words.iter().map(String::as_str).collect();
            let (req, sample, rest) = match w.as_slice() {
                ["http-request", "capture", s, rest @ ..] => (true, *s, rest),
                ["http-response", "capture", s, rest @ ..] => (false, *s, rest),
                _ => continue,
            };
            if let Some(Target::Id(i)) = capture_target(rest) {
                fills.push((req, i, sample.to_owned()));
            }
        }
    }
    // A slot filled by `id` holds what fills it; different fillers make it unknown.
    let mut seen: Vec<(bool, usize)> = Vec::new();
    for (req, i, sample) in fills {
        let slots = if req {
            &mut out.request
        } else {
            &mut out.response
        };
        let Some(slot) = slots.get_mut(i) else {
            continue;
        };
        let content = sample_content(&sample, req);
        let first = !seen.contains(&(req, i));
        seen.push((req, i));
        slot.content = match (&slot.content, first) {
            (SlotContent::Unknown, true) => content,
            (c, _) if *c == content => content,
            _ => SlotContent::Unknown,
        };
    }
    out
}

enum Target {
    Len(usize),
    Id(usize),
}

/// `len N` or `id N` before any `if`/`unless` condition.
fn capture_target(rest: &[&str]) -> Option<Target> {
    match rest {
        ["len", n, ..] => n.parse().ok().map(Target::Len),
        ["id", n, ..] => n.parse().ok().map(Target::Id),
        _ => None,
    }
}

/// A header name if `sample` is a header fetch of its side without converters.
fn sample_content(sample: &str, request: bool) -> SlotContent {
    let header = sample.split_once('(').and_then(|(fetch, args)| {
        let args = args.strip_suffix(')')?;
        if args.contains([')', '(']) {
            return None;
        }
        let ok = if request {
            matches!(fetch, "req.hdr" | "hdr" | "req.fhdr" | "fhdr")
        } else {
            matches!(fetch, "res.hdr" | "shdr" | "res.fhdr" | "sfhdr")
        };
        let name = args.split(',').next()?.trim();
        (ok && !name.is_empty()).then(|| name.to_owned())
    });
    match header {
        Some(h) => SlotContent::Header(h),
        None => SlotContent::Sample(sample.to_owned()),
    }
}

/// The backend sections `section` routes to (`default_backend`, `use_backend`).
fn used_backends<'c>(
    cfg: &'c HaproxyConfig,
    section: &'c Section,
) -> impl Iterator<Item = &'c Section> + 'c {
    let names: Vec<&str> = section
        .directives
        .iter()
        .filter(|d| d.starts_with(&["default_backend"]) || d.starts_with(&["use_backend"]))
        .filter_map(|d| d.words.get(1).map(String::as_str))
        .collect();
    cfg.sections.iter().filter(move |s| {
        s.kind == SectionKind::Backend && s.name.as_deref().is_some_and(|n| names.contains(&n))
    })
}

/// The field one slot's value becomes, and the name it offers for `_txn_id`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SlotField {
    prefix: &'static str,
    name: Vec<u8>,
    txn_name: Vec<u8>,
}

impl SlotField {
    fn new(slot: &CaptureSlot, index: usize, request: bool) -> SlotField {
        let (header, capture) = if request {
            ("request_header_", "request_capture_")
        } else {
            ("response_header_", "response_capture_")
        };
        match &slot.content {
            SlotContent::Header(h) => SlotField {
                prefix: header,
                name: h.as_bytes().to_vec(),
                txn_name: h.as_bytes().to_vec(),
            },
            SlotContent::Sample(s) => SlotField {
                prefix: capture,
                name: sample_field_name(s).into_bytes(),
                txn_name: sample_txn_name(s).as_bytes().to_vec(),
            },
            SlotContent::Unknown => SlotField {
                prefix: capture,
                name: index.to_string().into_bytes(),
                txn_name: Vec::new(),
            },
        }
    }
}

/// `var(txn.rid)` → `var_txn.rid`; `req.cook(sid),lower` → `req.cook_sid_lower`.
fn sample_field_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '(' | ',' => out.push('_'),
            ')' | ' ' | '"' | '\'' => {}
            c => out.push(c),
        }
    }
    out
}

/// The name a sample's value is known by for `_txn_id`: `unique-id`, a variable's name, a
/// cookie's name; the expression itself otherwise.
fn sample_txn_name(s: &str) -> &str {
    if let Some((fetch, args)) = s.split_once('(')
        && let Some(arg) = args.strip_suffix(')')
        && !arg.contains(['(', ')', ','])
        && matches!(fetch, "var" | "req.cook" | "cook" | "res.cook" | "scook")
    {
        return arg.trim();
    }
    s
}

/// The capture slots of every frontend, ready for parsing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Captures {
    frontends: Vec<FrontendCaptures>,
}

#[derive(Debug, Clone, PartialEq)]
struct FrontendCaptures {
    name: Vec<u8>,
    request: Vec<SlotField>,
    response: Vec<SlotField>,
    cookie: Option<Vec<u8>>,
}

impl Captures {
    /// The slots of every proxy of `cfg` that captures anything.
    pub fn from_config(cfg: &HaproxyConfig) -> Captures {
        let mut frontends = Vec::new();
        for p in cfg.proxies() {
            let c = proxy_captures(cfg, &p);
            if c.request.is_empty() && c.response.is_empty() && c.cookie.is_none() {
                continue;
            }
            let fields = |slots: &[CaptureSlot], req| {
                slots
                    .iter()
                    .enumerate()
                    .map(|(i, s)| SlotField::new(s, i, req))
                    .collect()
            };
            frontends.push(FrontendCaptures {
                name: p.name.as_bytes().to_vec(),
                request: fields(&c.request, true),
                response: fields(&c.response, false),
                cookie: c.cookie.map(String::into_bytes),
            });
        }
        Captures { frontends }
    }

    fn find(&self, frontend: &[u8]) -> Option<&FrontendCaptures> {
        self.frontends.iter().find(|f| f.name == frontend)
    }

    /// The slots of `frontend`'s `%hr` (`request`) or `%hs`, in log order.
    pub(crate) fn slots(&self, frontend: &[u8], request: bool) -> Option<&[SlotField]> {
        let f = self.find(frontend)?;
        Some(if request { &f.request } else { &f.response })
    }

    /// How many slots `frontend` has, if known.
    pub fn count(&self, frontend: &[u8], request: bool) -> Option<usize> {
        self.slots(frontend, request).map(<[SlotField]>::len)
    }

    /// Reports a `%CC`/`%CS` value `NAME=value` as `request_cookie_name` when `frontend`
    /// captures cookie `NAME` (HAProxy matches the name as a prefix and logs the whole cookie).
    pub(crate) fn emit_cookie<'a, S: FieldSink>(
        &self,
        frontend: &[u8],
        value: &'a [u8],
        request: bool,
        cx: &Context<'_>,
        sink: &mut S,
        info: &mut LineInfo<'a>,
    ) {
        let Some(want) = self.find(frontend).and_then(|f| f.cookie.as_deref()) else {
            return;
        };
        let Some(eq) = value.iter().position(|&c| c == b'=') else {
            return;
        };
        let (name, v) = (&value[..eq], &value[eq + 1..]);
        if !name.starts_with(want) || v.is_empty() {
            return;
        }
        let prefix = if request {
            "request_cookie_"
        } else {
            "response_cookie_"
        };
        sink.dynamic_field(prefix, name, super::logformat::esc(v));
        info.offer_txn_id(cx.txn, name, super::logformat::esc(v));
    }
}

/// Reports one slot's value (empty values are not reported).
pub(crate) fn emit_slot<'a, S: FieldSink>(
    slot: &SlotField,
    v: &'a [u8],
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) {
    if v.is_empty() {
        return;
    }
    let value = super::logformat::esc(v);
    sink.dynamic_field(slot.prefix, &slot.name, value);
    if !slot.txn_name.is_empty() {
        info.offer_txn_id(cx.txn, &slot.txn_name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(cfg: &str, fe: &str) -> ProxyCaptures {
        let cfg = HaproxyConfig::parse_with_env(cfg, &|_| None).unwrap();
        let p = cfg.proxy(fe).unwrap();
        proxy_captures(&cfg, &p)
    }

    fn contents(s: &[CaptureSlot]) -> Vec<SlotContent> {
        s.iter().map(|s| s.content.clone()).collect()
    }

    #[test]
    fn every_mechanism_in_declaration_order() {
        let c = slots(
            "frontend fe\n\
             \x20 declare capture request len 32\n\
             \x20 capture request header Host len 20\n\
             \x20 http-request capture req.hdr(X-Request-ID) len 40\n\
             \x20 declare capture response len 16\n\
             \x20 capture response header Server len 10\n\
             \x20 http-request capture var(txn.tid) id 0\n\
             \x20 http-response capture res.hdr(X-Trace) id 0\n\
             \x20 tcp-request content capture src len 15\n\
             \x20 capture cookie SRV len 32\n\
             \x20 declare capture request len 64\n\
             \x20 default_backend be\n\
             backend be\n\
             \x20 http-request capture path id 4\n\
             backend other\n\
             \x20 http-request capture url id 4\n",
            "fe",
        );
        assert_eq!(
            contents(&c.request),
            vec![
                SlotContent::Sample("var(txn.tid)".into()),
                SlotContent::Header("Host".into()),
                SlotContent::Header("X-Request-ID".into()),
                SlotContent::Sample("src".into()),
                SlotContent::Sample("path".into()),
            ]
        );
        assert_eq!(
            contents(&c.response),
            vec![
                SlotContent::Header("X-Trace".into()),
                SlotContent::Header("Server".into()),
            ]
        );
        assert_eq!(c.request[2].len, Some(40));
        assert_eq!(c.cookie.as_deref(), Some("SRV"));
    }

    #[test]
    fn a_slot_filled_by_different_rules_is_unknown() {
        let c = slots(
            "frontend fe\n  declare capture request len 32\n  declare capture request len 8\n  http-request capture req.hdr(A) id 0 if { path_beg /a }\n  http-request capture req.hdr(B) id 0 if { path_beg /b }\n  http-request capture req.hdr(C) id 9\n",
            "fe",
        );
        assert_eq!(
            contents(&c.request),
            vec![SlotContent::Unknown, SlotContent::Unknown]
        );
    }

    #[test]
    fn field_names() {
        assert_eq!(sample_field_name("var(txn.rid)"), "var_txn.rid");
        assert_eq!(
            sample_field_name("req.cook(sid),lower"),
            "req.cook_sid_lower"
        );
        assert_eq!(sample_txn_name("var(txn.rid)"), "txn.rid");
        assert_eq!(sample_txn_name("unique-id"), "unique-id");
        assert_eq!(
            sample_content("req.hdr(x-request-id,1)", true),
            SlotContent::Header("x-request-id".into())
        );
        assert_eq!(
            sample_content("req.hdr(x-request-id),lower", true),
            SlotContent::Sample("req.hdr(x-request-id),lower".into())
        );
        assert_eq!(
            sample_content("req.hdr(x)", false),
            SlotContent::Sample("req.hdr(x)".into())
        );
    }
}
