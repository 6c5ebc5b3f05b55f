//! Byte accounting: the bytes each HAProxy client really received.
//!
//! Pure (no I/O). [`HeaderModel`] is built from a parsed haproxy.cfg: per frontend and backend,
//! the response headers HAProxy adds, replaces or removes (`cookie … insert`,
//! `http-response add-header|set-header|del-header|replace-header`, `option httpclose`),
//! compression and the proxy mode, with `defaults` inheritance. [`HeaderModel::correct`] turns
//! one HAProxy entry (its logged `%B`, termination state, captures) plus, when known, the
//! backend's own access-log line (Apache `%O`) into the best value of the bytes sent to the
//! client and a [`Basis`] saying how far to trust it. [`join::ByteJoin`] pairs HAProxy entries
//! with backend lines by transaction id in a bounded table.
//!
//! The rules come from HAProxy's HTX encoding (`%B = wire − 4·N + 15` for N response header
//! lines kept from the server) and from HTTP/1 framing (a header line is `name: value\r\n`);
//! every header length is computed from the configuration, never assumed.

pub mod join;
#[cfg(feature = "pipeline")]
pub mod stream;

use std::collections::HashMap;

use crate::parse::haproxy::config::{Directive, HaproxyConfig, Section, SectionKind};

/// How far `_bytes_sent` can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Basis {
    /// Equal to the bytes the client received.
    Exact,
    /// Computed with a learned or assumed quantity (header count, header presence).
    Estimate,
    /// The client received at least this much.
    LowerBound,
    /// No source knows; the value is the raw logged count.
    Unknown,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Exact => "exact",
            Basis::Estimate => "estimate",
            Basis::LowerBound => "lower_bound",
            Basis::Unknown => "unknown",
        }
    }
}

/// The result of a correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Correction {
    /// Best value of the bytes the client received (`None` if the entry logs no byte count).
    pub bytes_sent: Option<i64>,
    pub basis: Basis,
    /// Why this basis (a short fixed phrase).
    pub reason: &'static str,
}

/// The HAProxy log entry fields the correction reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HaproxyEntry {
    pub frontend: String,
    pub backend: String,
    pub server: String,
    pub status: Option<i64>,
    /// The logged `%B`.
    pub bytes_read: Option<i64>,
    /// `%tsc` (4 chars) or `%ts` (2 chars).
    pub termination_state: String,
    /// `HTTP/1.1`, `HTTP/1.0`, … (empty if not logged).
    pub http_version: String,
    pub http_method: String,
    /// Captured response headers: (name as declared, value as logged).
    pub captured_response: Vec<(String, String)>,
    /// HAProxy's unique id (`%ID`) when logged.
    pub unique_id: Option<String>,
    /// Captured request headers: (name as declared, value as logged).
    pub captured_request: Vec<(String, String)>,
    /// `%[res.bytes_out]` (HAProxy ≥ 3.3) when the log-format carries it.
    pub res_bytes_out: Option<i64>,
}

/// The backend's own access-log line for the same transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendLine {
    /// Bytes the backend sent, headers included (Apache `%O`).
    pub bytes_out: Option<i64>,
    /// Apache `%X`: `X` means the connection aborted before the response completed.
    pub aborted: bool,
    /// The `X-Request-ID` (or other unique-id header) the backend received, if logged.
    pub request_id: Option<String>,
}

/// A header value in an `http-response` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Literal(String),
    /// Contains `%[…]` or `%X` log-format expressions.
    Dynamic(String),
}

/// An `http-response` header rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    pub action: HeaderAction,
    pub name: String,
    pub value: Option<HeaderValue>,
    /// Has an `if`/`unless` condition (applied or not: unknown from the log).
    pub conditional: bool,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderAction {
    Add,
    Set,
    Del,
    Replace,
}

/// `cookie <name> insert …` of a backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieInsert {
    pub name: String,
    pub nocache: bool,
    pub indirect: bool,
    pub httponly: bool,
    pub secure: bool,
    pub postonly: bool,
    pub domains: Vec<String>,
    pub maxidle: bool,
    pub maxlife: bool,
    pub attrs: Vec<String>,
    pub line: usize,
}

/// What HAProxy does to responses in one proxy section (defaults applied).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyModel {
    pub name: String,
    pub is_frontend: bool,
    pub mode_tcp: bool,
    /// `cookie … insert` (None: no insert; other cookie modes are in `cookie_other`).
    pub cookie_insert: Option<CookieInsert>,
    /// `cookie … rewrite|prefix`: modifies server cookies, sizes unknown.
    pub cookie_other: bool,
    /// Server name → its `cookie` value.
    pub server_cookies: HashMap<String, String>,
    pub rules: Vec<HeaderRule>,
    /// `option httpclose` / `forceclose`: HAProxy adds `connection: close` to responses.
    pub httpclose: bool,
    pub compression: bool,
    /// `compression algo …` names (`identity` excluded).
    pub compression_algos: Vec<String>,
    /// `compression type …` (empty: every type).
    pub compression_types: Vec<String>,
    /// Names of the request headers the frontend captures (`capture request header X`,
    /// `http-request capture req.hdr(X)`, a declared slot filled with one), in slot order.
    pub captured_request: Vec<String>,
    pub unique_id_header: Option<String>,
    pub unique_id_format: Option<String>,
    pub captured_response: Vec<Capture>,
    pub log_format: Option<String>,
    /// `errorfile`/`errorfiles`/`http-error`/`errorloc*` present: error messages are custom.
    pub errorfile_override: bool,
}

/// Per frontend and backend, the header changes HAProxy makes; built once from a haproxy.cfg.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderModel {
    pub proxies: HashMap<String, ProxyModel>,
    /// Frontend names in configuration order.
    pub frontend_order: Vec<String>,
    /// Operator setting (default `false`): "no HTTP/1.1 client of a keep-alive frontend sends
    /// `Connection: close`". HAProxy 2.6 answers such a request with `connection: close`
    /// (19 bytes) but removes the request's `close` token before any capture, rule, variable
    /// or log-format can see it, and does not forward it to the server in keep-alive mode
    /// (measured; README.md "Byte counts you can bill on"). So nothing in the logs tells these
    /// requests apart: by default their entries are `estimate` (the keep-alive value, at most
    /// 19 bytes low). With this set, they are `exact` on the operator's word.
    pub assume_clients_keep_alive: bool,
}

/// Wire size of one HTTP/1 header line `name: value\r\n`.
pub fn header_line_len(name: &str, value_len: usize) -> i64 {
    (name.len() + 2 + value_len + 2) as i64
}

/// The `Connection: close` line a server sends and HAProxy removes (HTTP/1 framing).
const SERVER_CLOSE_NAME: &str = "Connection";
const CLOSE_VALUE: &str = "close";

/// Statuses HAProxy treats as cacheable (`http_ana.c`, RFC 7231 §6.1).
fn cacheable_status(status: i64) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// HAProxy's built-in messages for the errors its HTTP parser answers itself (`http_err_msgs`
/// in HAProxy's `src/http.c`); they are sent whole but logged as `%B=0`.
const BUILTIN_400: &str = "HTTP/1.1 400 Bad request\r\ncontent-length: 90\r\ncache-control: no-cache\r\nconnection: close\r\ncontent-type: text/html\r\n\r\n<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n";
const BUILTIN_408: &str = "HTTP/1.1 408 Request Time-out\r\ncontent-length: 110\r\ncache-control: no-cache\r\nconnection: close\r\ncontent-type: text/html\r\n\r\n<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n";

fn builtin_error_len(status: i64) -> Option<i64> {
    match status {
        400 => Some(BUILTIN_400.len() as i64),
        408 => Some(BUILTIN_408.len() as i64),
        _ => None,
    }
}

/// Number of header lines in HAProxy's built-in error/generated responses
/// (`content-length`, `cache-control`, `content-type`: HAProxy's `http_err_msgs`).
const GENERATED_RESPONSE_HEADERS: i64 = 3;

impl HeaderModel {
    /// Builds the model from a parsed configuration.
    pub fn from_config(cfg: &HaproxyConfig) -> HeaderModel {
        let mut model = HeaderModel::default();
        for (i, s) in cfg.sections.iter().enumerate() {
            if !matches!(
                s.kind,
                SectionKind::Frontend | SectionKind::Backend | SectionKind::Listen
            ) {
                continue;
            }
            let Some(name) = s.name.clone() else { continue };
            let defaults = find_defaults(cfg, i, s);
            let mut pm = proxy_model(&name, s, defaults);
            if let Some(view) = cfg.proxy(&name) {
                // Request headers captured by any mechanism (`http-request capture req.hdr(X)`
                // too): they are the request's headers as HAProxy forwards them.
                pm.captured_request = crate::parse::haproxy::captures::proxy_captures(cfg, &view)
                    .request
                    .into_iter()
                    .filter_map(|slot| match slot.content {
                        crate::parse::haproxy::captures::SlotContent::Header(h) => Some(h),
                        _ => None,
                    })
                    .collect();
            }
            if pm.is_frontend {
                model.frontend_order.push(name.clone());
            }
            model.proxies.insert(name, pm);
        }
        model
    }

    /// The backend used by a frontend by default (`default_backend`, or itself for `listen`).
    pub fn default_backend<'c>(cfg: &'c HaproxyConfig, frontend: &str) -> Vec<&'c str> {
        let mut out = Vec::new();
        for s in &cfg.sections {
            if s.name.as_deref() != Some(frontend) {
                continue;
            }
            if s.kind == SectionKind::Listen {
                out.push(frontend_name(s));
            }
            for d in &s.directives {
                if (d.starts_with(&["default_backend"]) || d.starts_with(&["use_backend"]))
                    && d.words.len() > 1
                {
                    out.push(d.words[1].as_str());
                }
            }
        }
        out
    }

    /// Corrects one HAProxy entry; `backend` is its joined backend line, `learned` the header
    /// counts learned so far (see [`LearnedCounts`]).
    pub fn correct(
        &self,
        e: &HaproxyEntry,
        backend: Option<&BackendLine>,
        learned: &mut LearnedCounts,
    ) -> Correction {
        let Some(b) = e.bytes_read else {
            return Correction {
                bytes_sent: None,
                basis: Basis::Unknown,
                reason: "no byte count logged",
            };
        };
        let raw = |basis, reason| Correction {
            bytes_sent: Some(b),
            basis,
            reason,
        };
        let fe = self.proxies.get(&e.frontend);
        let be = self.proxies.get(&e.backend);
        let ts = e.termination_state.as_bytes();
        let aborted = ts.len() >= 2
            && matches!(ts[0], b'C' | b'c' | b'S' | b's')
            && matches!(ts[1], b'D' | b'L');
        let tcp = fe.is_some_and(|f| f.mode_tcp) || (ts.len() == 2 && e.http_method.is_empty());
        if tcp {
            return if aborted {
                raw(
                    Basis::Unknown,
                    "tcp abort: %B counts bytes read from the server",
                )
            } else {
                raw(Basis::Exact, "tcp mode: %B is the relayed byte count")
            };
        }
        if e.http_method == "<BADREQ>" || (b == 0 && e.server == "<NOSRV>") {
            // Parser-level errors log 0 although HAProxy sent its built-in error message
            // (unless the client had already gone: `C` first).
            let builtin = e.status.and_then(builtin_error_len);
            let overridden = fe.is_some_and(|f| f.errorfile_override);
            return match builtin {
                Some(len) if b == 0 && !overridden && ts.first() != Some(&b'C') => Correction {
                    bytes_sent: Some(len),
                    basis: Basis::Estimate,
                    reason: "parser-level error: HAProxy's built-in error message, not logged",
                },
                _ => raw(
                    Basis::LowerBound,
                    "parser-level error: HAProxy logs 0 for the error it sent",
                ),
            };
        }
        if aborted {
            return raw(
                Basis::Unknown,
                "abort: %B counts bytes read from the server, not delivered",
            );
        }
        // Compression: HAProxy only compresses when the request's Accept-Encoding names one of
        // the configured algorithms, and never a response the server already encoded (the
        // response capture shows the server's header, before compression).
        for p in [fe, be].into_iter().flatten().filter(|p| p.compression) {
            let server_encoded =
                matches!(captured(e, fe, "content-encoding"), Some(Some(v)) if !v.is_empty());
            let accepts = match fe {
                Some(f)
                    if f.captured_request
                        .iter()
                        .any(|c| c.eq_ignore_ascii_case("accept-encoding")) =>
                {
                    let ae = e
                        .captured_request
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("accept-encoding"))
                        .map(|(_, v)| v.to_ascii_lowercase())
                        .unwrap_or_default();
                    p.compression_algos.iter().any(|a| {
                        let token = if a == "raw-deflate" {
                            "deflate"
                        } else {
                            a.as_str()
                        };
                        ae.contains(token) || ae.contains('*')
                    })
                }
                _ => true,
            };
            // Only 200-203 responses with a body and a listed content type are compressed.
            let status_ok = matches!(e.status, Some(200..=203)) && e.http_method != "HEAD";
            let type_ok = match captured(e, fe, "content-type") {
                Some(Some(ct)) if !p.compression_types.is_empty() => {
                    let ct = ct.split(';').next().unwrap_or("").trim();
                    p.compression_types
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(ct))
                }
                _ => true,
            };
            if accepts && !server_encoded && status_ok && type_ok {
                // res.bytes_out (HAProxy >= 3.3) follows compression; it keeps the HTX offset.
                if let (Some(out), Some(n)) = (
                    e.res_bytes_out,
                    learned.get(&e.backend, e.status.unwrap_or(0)),
                ) {
                    return Correction {
                        bytes_sent: Some(out + 4 * n - 15),
                        basis: Basis::Estimate,
                        reason: "compression: res.bytes_out + 4N - 15, N learned",
                    };
                }
                return raw(
                    Basis::Unknown,
                    "compression possible: %B is the uncompressed size",
                );
            }
        }
        // A client that went away before the response started got no response at all.
        if matches!(ts.first(), Some(b'C' | b'c'))
            && ts.len() >= 2
            && matches!(ts[1], b'R' | b'Q' | b'C' | b'H' | b'T')
        {
            return raw(
                Basis::Unknown,
                "client left before the response: nothing or part of an error was sent",
            );
        }
        let generated = e.server == "<NOSRV>"
            || matches!(ts.first(), Some(b'P' | b'L' | b'R' | b'I'))
            || (ts.len() >= 2 && matches!(ts[1], b'R' | b'Q' | b'C' | b'H' | b'T'));
        if generated {
            return Correction {
                bytes_sent: Some(b + 4 * GENERATED_RESPONSE_HEADERS - 15),
                basis: Basis::Estimate,
                reason: "response generated by HAProxy: header count assumed",
            };
        }
        let added = self.injected(e, fe, be);
        let status = e.status.unwrap_or(0);
        // (1) the backend's exact count.
        if let Some(BackendLine {
            bytes_out: Some(o),
            aborted: false,
            request_id,
        }) = backend
        {
            let d = o - b;
            // d = 4·N − 15 + S, S = the server's `Connection: close` line HAProxy strips.
            let strip = header_line_len(SERVER_CLOSE_NAME, CLOSE_VALUE.len());
            // A server answering an HTTP/1.0 request on a kept-alive server connection says
            // `Connection: Keep-Alive`, which HAProxy strips too (its length is ≡ 0 mod 4, so
            // it cannot be told from "no header" by the count: HTTP/1.0 is an estimate anyway).
            let keepalive_strip = header_line_len(SERVER_CLOSE_NAME, "Keep-Alive".len());
            let http10_ka = e.http_version == "HTTP/1.0"
                && !(fe.is_some_and(|f| f.httpclose) || be.is_some_and(|p| p.httpclose));
            let s = if d.rem_euclid(4) == 1 && http10_ka {
                Some(keepalive_strip)
            } else if d.rem_euclid(4) == 1 {
                Some(0)
            } else if (d - strip).rem_euclid(4) == 1 {
                Some(strip)
            } else {
                None
            };
            if let Some(s) = s {
                let n = (d - s + 15) / 4;
                if n >= 1 {
                    learned.learn(&e.backend, status, n);
                    let uid_len = request_id
                        .as_deref()
                        .or(e.unique_id.as_deref())
                        .map(str::len);
                    let added = added.with_unique_id(uid_len);
                    return Correction {
                        bytes_sent: Some(o - s + added.bytes),
                        basis: if added.exact {
                            Basis::Exact
                        } else {
                            Basis::Estimate
                        },
                        reason: if added.exact {
                            "backend %O joined, HAProxy's header changes from the cfg"
                        } else {
                            added.why
                        },
                    };
                }
            }
        }
        // (2) res.bytes_out (HAProxy >= 3.3): follows compression and injected headers, but keeps
        // the HTX offset; corrected with the learned header count.
        if let (Some(out), Some(n)) = (e.res_bytes_out, learned.get(&e.backend, status)) {
            return Correction {
                bytes_sent: Some(out + 4 * n - 15),
                basis: Basis::Estimate,
                reason: "res.bytes_out + 4N - 15 with N learned per backend and status",
            };
        }
        // (3) %B plus the header model with a learned header count.
        match learned.get(&e.backend, status) {
            Some(n) => {
                let added = added.with_unique_id(e.unique_id.as_deref().map(str::len));
                Correction {
                    bytes_sent: Some(b + 4 * n - 15 + added.bytes),
                    basis: Basis::Estimate,
                    reason: "%B + 4N - 15 with N learned per backend and status",
                }
            }
            None => raw(
                Basis::Unknown,
                "no backend line and no learned header count",
            ),
        }
    }

    /// Bytes of the headers HAProxy adds or changes for this entry.
    fn injected(
        &self,
        e: &HaproxyEntry,
        fe: Option<&ProxyModel>,
        be: Option<&ProxyModel>,
    ) -> Injected {
        let mut inj = Injected {
            bytes: 0,
            exact: true,
            why: "",
            unique_id_values: 0,
        };
        let (fe, be) = match (fe, be) {
            (Some(f), Some(b)) => (f, b),
            (Some(f), None) => (f, f),
            _ => {
                inj.inexact("proxy not in the haproxy.cfg");
                return inj;
            }
        };
        // Cookie insertion (backend), only when the 4th %tsc character says so.
        if be.cookie_other {
            inj.inexact("cookie rewrite/prefix: sizes unknown");
        }
        if let Some(ck) = &be.cookie_insert {
            match e.termination_state.as_bytes().get(3) {
                Some(b'I' | b'U') => {
                    let value = match be.server_cookies.get(&e.server) {
                        Some(v) => {
                            let mut len = ck.name.len() + 1 + v.len();
                            if ck.maxidle || ck.maxlife {
                                len += 6; // "|" + 5-char base64 date
                            }
                            if ck.maxlife {
                                len += 6;
                            }
                            len + "; path=/".len()
                        }
                        None => {
                            ck.name.len() + "=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/".len()
                        }
                    };
                    let mut len = value;
                    for d in &ck.domains {
                        len += "; domain=".len() + d.len();
                    }
                    if ck.httponly {
                        len += "; HttpOnly".len();
                    }
                    if ck.secure {
                        len += "; Secure".len();
                    }
                    for a in &ck.attrs {
                        len += "; ".len() + a.len();
                    }
                    inj.bytes += header_line_len("Set-Cookie", len);
                    // `nocache` adds `Cache-control: private` to cacheable responses. A 200 to
                    // GET/HEAD is cacheable unless the server said otherwise (its Cache-Control
                    // is checked when captured); other cacheable statuses also depend on the
                    // server's validators (measured: a 404 without them gets none).
                    if ck.nocache && matches!(e.http_method.as_str(), "GET" | "HEAD") {
                        match e.status {
                            Some(200) => {
                                // HAProxy adds it only while the response is cacheable: the
                                // server's `Cache-Control` (private, no-cache, no-store,
                                // max-age=0, s-maxage=0) or `Pragma: no-cache` makes it not.
                                // Exact only when both are captured (the server's headers, as
                                // `capture response header` sees them, before any rule).
                                match nocache_adds_private(e, fe) {
                                    Some(true) => {
                                        inj.bytes +=
                                            header_line_len("Cache-control", "private".len());
                                    }
                                    Some(false) => {}
                                    None => {
                                        inj.bytes +=
                                            header_line_len("Cache-control", "private".len());
                                        inj.inexact(NOCACHE_UNKNOWN);
                                    }
                                }
                            }
                            Some(st) if cacheable_status(st) => {
                                inj.inexact("nocache: cacheability of this status depends on server headers");
                            }
                            _ => {}
                        }
                    }
                }
                Some(b'-' | b'N' | b'P' | b'R' | b'D') => {}
                _ => inj.inexact("cookie insert without %tsc in the log"),
            }
        }
        // http-response rules: backend first, then frontend.
        let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
        let proxies: Vec<&ProxyModel> = if std::ptr::eq(fe, be) {
            vec![fe]
        } else {
            vec![be, fe]
        };
        for p in proxies {
            for r in &p.rules {
                if r.conditional {
                    inj.inexact("conditional http-response rule");
                }
                let key = r.name.to_ascii_lowercase();
                let present =
                    seen.entry(key.clone())
                        .or_insert_with(|| match captured(e, Some(fe), &key) {
                            Some(Some("")) => Vec::new(),
                            Some(Some(v)) => vec![header_line_len(&r.name, v.len())],
                            Some(None) => {
                                inj.exact = false;
                                Vec::new()
                            }
                            None => Vec::new(),
                        });
                let capture_known = captured(e, Some(fe), &key).is_some();
                let new_len = match &r.value {
                    Some(HeaderValue::Literal(v)) => Some(header_line_len(&r.name, v.len())),
                    Some(HeaderValue::Dynamic(v)) if is_unique_id_expr(v) => {
                        inj.unique_id_values += 1;
                        Some(header_line_len(&r.name, 0))
                    }
                    _ => None,
                };
                match r.action {
                    HeaderAction::Add => match new_len {
                        Some(l) => {
                            inj.bytes += l;
                            present.push(l);
                        }
                        None => inj.inexact("dynamic header value"),
                    },
                    HeaderAction::Set | HeaderAction::Del => {
                        if !capture_known {
                            inj.inexact("set/del-header of a header not captured");
                        }
                        let removed: i64 = present.drain(..).sum();
                        inj.bytes -= removed;
                        if r.action == HeaderAction::Set {
                            match new_len {
                                Some(l) => {
                                    inj.bytes += l;
                                    present.push(l);
                                }
                                None => inj.inexact("dynamic header value"),
                            }
                        }
                    }
                    HeaderAction::Replace => inj.inexact("replace-header: size unknown"),
                }
            }
        }
        // Connection handling toward the client.
        // HAProxy's H1 mux answers with `connection: close` when the client side closes:
        // always under httpclose; for an HTTP/1.0 client that did not ask for keep-alive
        // (one that did gets `connection: keep-alive`); for an HTTP/1.1 client that sent
        // `Connection: close`. The mux removes the request's `close`/`keep-alive` tokens before
        // any capture, `http-request` rule, variable or log-format sees the request (HAProxy
        // 2.6.12, measured: `capture request header Connection`, `req.hdr`/`req.fhdr` in a
        // `set-var`, `req.hdrs` all show nothing; `req.hdr` in a log-format is refused), and in
        // keep-alive mode it does not forward the wish to the server (Apache `%{Connection}i`
        // is empty; under `http-server-close` it is `close` for every request). So only
        // `option httpclose` makes the response's connection header known from the logs.
        if matches!(e.http_version.as_str(), "HTTP/2.0" | "HTTP/3.0") {
            // No connection header, but HPACK/QPACK-compressed headers in frames: the client's
            // byte count follows neither HTTP/1 framing nor HAProxy's HTX size.
            inj.inexact("HTTP/2 or HTTP/3 client: header compression and framing are not modelled");
            return inj;
        }
        let httpclose = fe.httpclose || be.httpclose;
        if httpclose || e.http_version == "HTTP/1.0" {
            inj.bytes += header_line_len("connection", CLOSE_VALUE.len());
        }
        if !httpclose {
            match e.http_version.as_str() {
                "HTTP/1.0" => inj.inexact("HTTP/1.0 client: keep-alive or close is not logged"),
                // The default must not be a wrong `exact`: the value assumes keep-alive (what
                // browsers do) and is 19 bytes low for a client that asked to close.
                "HTTP/1.1" if !self.assume_clients_keep_alive => inj.inexact(
                    "HTTP/1.1 client: a `Connection: close` request is not logged (HAProxy strips it); the value assumes keep-alive and is 19 bytes low if the client asked to close",
                ),
                "HTTP/1.1" => {}
                // Not logged (or not HTTP/1): which connection header went out is unknown.
                _ => inj.inexact("HTTP/1 version not logged: the connection header sent is unknown"),
            }
        }
        inj
    }
}

struct Injected {
    bytes: i64,
    exact: bool,
    why: &'static str,
    /// Header values that are the unique id (their length is added when known).
    unique_id_values: i64,
}

impl Injected {
    fn inexact(&mut self, why: &'static str) {
        if self.exact {
            self.why = why;
        }
        self.exact = false;
    }
    fn with_unique_id(mut self, len: Option<usize>) -> Injected {
        if self.unique_id_values > 0 {
            match len {
                Some(l) => self.bytes += self.unique_id_values * l as i64,
                None => self.inexact("unique id not logged"),
            }
        }
        self
    }
}

fn is_unique_id_expr(v: &str) -> bool {
    v == "%[unique-id]" || v == "%ID"
}

/// Why a `cookie … nocache` entry is an estimate when the server's cache headers are unknown.
pub const NOCACHE_UNKNOWN: &str = "nocache: `Cache-control: private` is added only if the server's Cache-Control and Pragma leave the response cacheable; capture both (capture response header Cache-Control / Pragma) to make it exact";

/// Whether `cookie … nocache` added `Cache-control: private` to a 200 (HAProxy's
/// `http_check_response_for_cacheability`); `None` when the server's `Cache-Control` or
/// `Pragma` is not captured (or cut at the capture length).
fn nocache_adds_private(e: &HaproxyEntry, fe: &ProxyModel) -> Option<bool> {
    let cc = captured(e, Some(fe), "cache-control")??.to_ascii_lowercase();
    let pragma = captured(e, Some(fe), "pragma")??.to_ascii_lowercase();
    let uncacheable = cc.split(',').map(str::trim).any(|d| {
        matches!(
            d,
            "private" | "no-cache" | "no-store" | "max-age=0" | "s-maxage=0"
        ) || d.starts_with("no-cache=")
            || d.starts_with("private=")
    }) || pragma.contains("no-cache");
    Some(!uncacheable)
}

/// `Some(Some(value))`: captured by the frontend (`""` when the server did not send it);
/// `Some(None)`: captured but the value may be cut at the capture length; `None`: not captured.
fn captured<'e>(
    e: &'e HaproxyEntry,
    fe: Option<&ProxyModel>,
    name: &str,
) -> Option<Option<&'e str>> {
    let fe = fe?;
    let cap = fe
        .captured_response
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))?;
    match e
        .captured_response
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        Some((_, v)) if cap.len.is_some_and(|l| v.len() >= l) => Some(None),
        Some((_, v)) => Some(Some(v.as_str())),
        None => Some(Some("")),
    }
}

/// A `capture response header <name> len <n>` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub name: String,
    pub len: Option<usize>,
}

/// Header counts (N, header lines kept from the server) learned from joined entries, per
/// backend and status. Bounded: one number per (backend, status) seen in the configuration.
#[derive(Debug, Clone, Default)]
pub struct LearnedCounts {
    by_status: HashMap<(String, i64), i64>,
    by_backend: HashMap<String, i64>,
    max_keys: usize,
}

impl LearnedCounts {
    pub fn new(max_keys: usize) -> LearnedCounts {
        LearnedCounts {
            max_keys,
            ..LearnedCounts::default()
        }
    }
    pub fn learn(&mut self, backend: &str, status: i64, n: i64) {
        let key = (backend.to_owned(), status);
        if self.by_status.len() < self.max_keys || self.by_status.contains_key(&key) {
            self.by_status.insert(key, n);
        }
        if self.by_backend.len() < self.max_keys || self.by_backend.contains_key(backend) {
            self.by_backend.insert(backend.to_owned(), n);
        }
    }
    pub fn get(&self, backend: &str, status: i64) -> Option<i64> {
        self.by_status
            .get(&(backend.to_owned(), status))
            .or_else(|| self.by_backend.get(backend))
            .copied()
    }
}

fn frontend_name(s: &Section) -> &str {
    s.name.as_deref().unwrap_or("")
}

fn find_defaults<'c>(cfg: &'c HaproxyConfig, i: usize, s: &Section) -> Option<&'c Section> {
    match &s.from {
        Some(from) => cfg.sections[..i]
            .iter()
            .rev()
            .find(|d| d.kind == SectionKind::Defaults && d.name.as_deref() == Some(from.as_str())),
        None => cfg.sections[..i]
            .iter()
            .rev()
            .find(|d| d.kind == SectionKind::Defaults),
    }
}

/// The value of the last `option X` / `no option X` in the section, then its defaults.
fn option(s: &Section, defaults: Option<&Section>, names: &[&str]) -> bool {
    let own = |sec: &Section| {
        let mut v = None;
        for d in &sec.directives {
            if d.words.first().map(String::as_str) == Some("option")
                && d.words.get(1).is_some_and(|w| names.contains(&w.as_str()))
            {
                v = Some(true);
            } else if d.starts_with(&["no", "option"])
                && d.words.get(2).is_some_and(|w| names.contains(&w.as_str()))
            {
                v = Some(false);
            }
        }
        v
    };
    own(s).or_else(|| defaults.and_then(own)).unwrap_or(false)
}

fn last<'s>(s: &'s Section, defaults: Option<&'s Section>, kw: &str) -> Option<&'s Directive> {
    let own = |sec: &'s Section| sec.directives.iter().rev().find(|d| d.starts_with(&[kw]));
    own(s).or_else(|| defaults.and_then(own))
}

fn proxy_model(name: &str, s: &Section, defaults: Option<&Section>) -> ProxyModel {
    let mut pm = ProxyModel {
        name: name.to_owned(),
        is_frontend: matches!(s.kind, SectionKind::Frontend | SectionKind::Listen),
        ..ProxyModel::default()
    };
    pm.mode_tcp = last(s, defaults, "mode")
        .and_then(|d| d.words.get(1))
        .map(String::as_str)
        == Some("tcp");
    pm.httpclose = option(s, defaults, &["httpclose", "forceclose"]);
    if let Some(d) = s
        .directives
        .iter()
        .rev()
        .chain(defaults.into_iter().flat_map(|d| d.directives.iter().rev()))
        .find(|d| d.starts_with(&["compression", "algo"]))
    {
        pm.compression_algos = d.words[2..]
            .iter()
            .filter(|a| *a != "identity")
            .cloned()
            .collect();
        pm.compression = !pm.compression_algos.is_empty();
    }
    if let Some(d) = s
        .directives
        .iter()
        .rev()
        .chain(defaults.into_iter().flat_map(|d| d.directives.iter().rev()))
        .find(|d| d.starts_with(&["compression", "type"]))
    {
        pm.compression_types = d.words[2..].to_vec();
    }
    if let Some(d) = last(s, defaults, "cookie") {
        let opts = &d.words[1.min(d.words.len())..];
        let cname = opts.first().cloned().unwrap_or_default();
        let has = |w: &str| opts.iter().any(|o| o == w);
        if has("insert") {
            let mut ck = CookieInsert {
                name: cname,
                nocache: has("nocache"),
                indirect: has("indirect"),
                httponly: has("httponly"),
                secure: has("secure"),
                postonly: has("postonly"),
                line: d.line,
                ..CookieInsert::default()
            };
            let mut it = opts.iter().skip(1);
            while let Some(w) = it.next() {
                match w.as_str() {
                    "domain" => ck.domains.extend(it.next().cloned()),
                    "maxidle" => {
                        ck.maxidle = it.next().is_some_and(|v| v != "0");
                    }
                    "maxlife" => {
                        ck.maxlife = it.next().is_some_and(|v| v != "0");
                    }
                    "attr" => ck.attrs.extend(it.next().cloned()),
                    _ => {}
                }
            }
            pm.cookie_insert = Some(ck);
        } else if has("rewrite") || has("prefix") {
            pm.cookie_other = true;
        }
    }
    for d in &s.directives {
        if d.starts_with(&["server"]) && d.words.len() > 1 {
            if let Some(p) = d.words.iter().position(|w| w == "cookie") {
                if let Some(v) = d.words.get(p + 1) {
                    pm.server_cookies.insert(d.words[1].clone(), v.clone());
                }
            }
        }
    }
    // http-response rules: the section's own (rules in an anonymous defaults section are not
    // inherited by HAProxy; a named `from` defaults section's are).
    let rule_sections: Vec<&Section> = match (defaults, &s.from) {
        (Some(d), Some(_)) => vec![d, s],
        _ => vec![s],
    };
    for sec in rule_sections {
        for d in &sec.directives {
            if let Some(r) = header_rule(d) {
                pm.rules.push(r);
            }
        }
    }
    pm.unique_id_header =
        last(s, defaults, "unique-id-header").and_then(|d| d.words.get(1).cloned());
    pm.unique_id_format = last(s, defaults, "unique-id-format").map(|d| d.words[1..].join(" "));
    for d in &s.directives {
        if d.starts_with(&["capture", "response", "header"]) {
            if let Some(n) = d.words.get(3) {
                let len = d
                    .words
                    .iter()
                    .position(|w| w == "len")
                    .and_then(|p| d.words.get(p + 1))
                    .and_then(|v| v.parse().ok());
                pm.captured_response.push(Capture {
                    name: n.clone(),
                    len,
                });
            }
        }
    }
    pm.errorfile_override = s
        .directives
        .iter()
        .chain(defaults.into_iter().flat_map(|d| d.directives.iter()))
        .any(|d| {
            matches!(
                d.words.first().map(String::as_str),
                Some(
                    "errorfile"
                        | "errorfiles"
                        | "http-error"
                        | "errorloc"
                        | "errorloc302"
                        | "errorloc303"
                )
            )
        });
    pm.log_format = last(s, defaults, "log-format").map(|d| d.words[1..].join(" "));
    pm
}

fn header_rule(d: &Directive) -> Option<HeaderRule> {
    if d.words.first().map(String::as_str) != Some("http-response") {
        return None;
    }
    let action = match d.words.get(1)?.as_str() {
        "add-header" => HeaderAction::Add,
        "set-header" => HeaderAction::Set,
        "del-header" => HeaderAction::Del,
        "replace-header" | "replace-value" => HeaderAction::Replace,
        _ => return None,
    };
    let name = d.words.get(2)?.clone();
    let cond_at = d
        .words
        .iter()
        .position(|w| w == "if" || w == "unless")
        .unwrap_or(d.words.len());
    let value = match action {
        HeaderAction::Add | HeaderAction::Set => {
            let v = d
                .words
                .get(3..cond_at)
                .map(|w| w.join(" "))
                .unwrap_or_default();
            Some(if v.contains('%') {
                HeaderValue::Dynamic(v)
            } else {
                HeaderValue::Literal(v)
            })
        }
        _ => None,
    };
    Some(HeaderRule {
        action,
        name,
        value,
        conditional: cond_at < d.words.len(),
        line: d.line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(cfg: &str) -> HeaderModel {
        HeaderModel::from_config(&HaproxyConfig::parse(cfg).unwrap())
    }

    fn entry(fe: &str, be: &str, b: i64, ts: &str) -> HaproxyEntry {
        HaproxyEntry {
            frontend: fe.into(),
            backend: be.into(),
            server: "s1".into(),
            status: Some(200),
            bytes_read: Some(b),
            termination_state: ts.into(),
            http_version: "HTTP/1.1".into(),
            http_method: "GET".into(),
            ..HaproxyEntry::default()
        }
    }

    fn joined(o: i64) -> BackendLine {
        BackendLine {
            bytes_out: Some(o),
            aborted: false,
            request_id: None,
        }
    }

    const CFG: &str = "defaults\n mode http\nfrontend f\n capture response header Server len 64\n capture response header Cache-Control len 64\n capture response header Pragma len 32\n http-response add-header X-A \"b c\"\n http-response set-header Server mine\n default_backend b\nbackend b\n cookie K insert indirect nocache httponly domain .x.test maxlife 1h\n server s1 127.0.0.1:1 cookie v1\n";

    #[test]
    fn cookie_and_rules_from_the_cfg() {
        let mut m = model(CFG);
        // HTTP/1.1 on a keep-alive frontend: exact only on the operator's word (see
        // `client_close_is_never_a_wrong_exact` for the default).
        m.assume_clients_keep_alive = true;
        let mut l = LearnedCounts::new(16);
        let mut e = entry("f", "b", 1000, "--NI");
        e.captured_response = vec![("server".into(), "Apache".into())];
        let plain = e.clone();
        // O = B + 4·7 − 15 (7 header lines, no Connection header)
        let c = m.correct(&e, Some(&joined(1013)), &mut l);
        let cookie = "K=v1|xxxxx|xxxxx; path=/; domain=.x.test; HttpOnly".len();
        let want = 1013
            + header_line_len("Set-Cookie", cookie)
            + header_line_len("Cache-control", "private".len())
            + header_line_len("X-A", 3)
            + header_line_len("Server", 4)
            - header_line_len("Server", 6);
        assert_eq!((c.bytes_sent, c.basis), (Some(want), Basis::Exact), "{c:?}");
        assert_eq!(l.get("b", 200), Some(7));
        // Valid cookie: nothing inserted; server's Connection: close stripped (≡ 0 mod 4).
        let c = m.correct(
            &entry("f", "b", 1000, "--VN"),
            Some(&joined(1013 + 19)),
            &mut l,
        );
        // Server header not captured on this entry: captured-but-absent, so set adds it.
        let want = 1013 + header_line_len("X-A", 3) + header_line_len("Server", 4);
        assert_eq!((c.bytes_sent, c.basis), (Some(want), Basis::Exact), "{c:?}");
        // No partner: the learned count gives an estimate.
        let c = m.correct(&entry("f", "b", 1000, "--VN"), None, &mut l);
        assert_eq!(c.basis, Basis::Estimate);
        assert_eq!(c.bytes_sent, Some(want));

        // The server said `Cache-Control: no-cache`: no `Cache-control: private`.
        let mut e = plain.clone();
        e.captured_response
            .push(("cache-control".into(), "public, no-cache".into()));
        let c = m.correct(&e, Some(&joined(1013)), &mut l);
        let with_private = 1013
            + header_line_len("Set-Cookie", cookie)
            + header_line_len("X-A", 3)
            + header_line_len("Server", 4)
            - header_line_len("Server", 6);
        assert_eq!((c.bytes_sent, c.basis), (Some(with_private), Basis::Exact));
        // `Pragma: no-cache` too.
        let mut e = plain.clone();
        e.captured_response
            .push(("pragma".into(), "no-cache".into()));
        let c = m.correct(&e, Some(&joined(1013)), &mut l);
        assert_eq!((c.bytes_sent, c.basis), (Some(with_private), Basis::Exact));
        // Without the captures, the server's cache headers are unknown: an estimate.
        let mut m2 = model(&CFG.replace(" capture response header Pragma len 32\n", ""));
        m2.assume_clients_keep_alive = true;
        let c = m2.correct(&plain, Some(&joined(1013)), &mut l);
        assert_eq!((c.basis, c.reason), (Basis::Estimate, NOCACHE_UNKNOWN));
        // An HTTP/2 client: framing not modelled.
        let mut e = plain;
        e.http_version = "HTTP/2.0".into();
        let c = m.correct(&e, Some(&joined(1013)), &mut l);
        assert_eq!(c.basis, Basis::Estimate, "{c:?}");
        assert!(c.reason.contains("HTTP/2"), "{c:?}");
    }

    #[test]
    fn client_close_is_never_a_wrong_exact() {
        let mut l = LearnedCounts::new(16);
        // Keep-alive frontend, default: whether the HTTP/1.1 client sent `Connection: close`
        // is not in the log, so the keep-alive value is an estimate (19 bytes low if it did).
        let m = model(CFG);
        let mut e = entry("f", "b", 1000, "--VN");
        e.captured_response = vec![("server".into(), "Apache".into())];
        let keep_alive = 1013 + header_line_len("X-A", 3) + header_line_len("Server", 4)
            - header_line_len("Server", 6);
        let c = m.correct(&e, Some(&joined(1013)), &mut l);
        assert_eq!((c.bytes_sent, c.basis), (Some(keep_alive), Basis::Estimate));
        assert!(c.reason.contains("Connection: close"), "{c:?}");
        // The header HAProxy strips from the request is not a signal either: a capture of it
        // only ever shows the other tokens.
        e.captured_request = vec![("connection".into(), "TE".into())];
        assert_eq!(
            m.correct(&e, Some(&joined(1013)), &mut l).basis,
            Basis::Estimate
        );
        // Unknown HTTP version: never exact.
        e.http_version.clear();
        let c = m.correct(&e, Some(&joined(1013)), &mut l);
        assert_eq!(c.basis, Basis::Estimate, "{c:?}");
        // The operator's setting: exact, keep-alive value.
        let mut m = model(CFG);
        m.assume_clients_keep_alive = true;
        e.http_version = "HTTP/1.1".into();
        let c = m.correct(&e, Some(&joined(1013)), &mut l);
        assert_eq!((c.bytes_sent, c.basis), (Some(keep_alive), Basis::Exact));
        // HTTP/1.0 stays an estimate whatever the setting says.
        e.http_version = "HTTP/1.0".into();
        assert_eq!(
            m.correct(&e, Some(&joined(1013)), &mut l).basis,
            Basis::Estimate
        );
        // `option httpclose`: every response carries `connection: close`, so HTTP/1.1 entries
        // are exact by default, with the 19 bytes added.
        let m = model(&CFG.replace(
            " default_backend b\n",
            " option httpclose\n default_backend b\n",
        ));
        e.http_version = "HTTP/1.1".into();
        let c = m.correct(&e, Some(&joined(1013)), &mut l);
        assert_eq!(
            (c.bytes_sent, c.basis),
            (
                Some(keep_alive + header_line_len("connection", 5)),
                Basis::Exact
            ),
            "{c:?}"
        );
    }

    #[test]
    fn never_exact_on_aborts_compression_badreq() {
        let m = model(
            "frontend f\n mode http\n compression algo gzip\n default_backend b\nbackend b\n server s1 127.0.0.1:1\nfrontend t\n mode tcp\n default_backend b\n",
        );
        let mut l = LearnedCounts::new(16);
        let c = m.correct(&entry("f", "b", 5000, "CD--"), Some(&joined(99999)), &mut l);
        assert_eq!(c.basis, Basis::Unknown);
        let c = m.correct(&entry("f", "b", 5000, "----"), Some(&joined(5013)), &mut l);
        assert_eq!(c.basis, Basis::Unknown);
        let mut bad = entry("f", "b", 0, "PR--");
        bad.http_method = "<BADREQ>".into();
        bad.status = Some(400);
        bad.server = "<NOSRV>".into();
        let c = m.correct(&bad, None, &mut l);
        assert_eq!(c.basis, Basis::Estimate);
        assert_eq!(c.bytes_sent, Some(BUILTIN_400.len() as i64));
        let mut tcp = entry("t", "b", 777, "--");
        tcp.http_method.clear();
        assert_eq!(m.correct(&tcp, None, &mut l).basis, Basis::Exact);
        tcp.termination_state = "cD".into();
        assert_eq!(m.correct(&tcp, None, &mut l).basis, Basis::Unknown);
    }

    #[test]
    fn dynamic_unique_id_and_httpclose() {
        let m = model(
            "frontend f\n mode http\n option httpclose\n http-response set-header X-Id %[unique-id]\n capture response header X-Id len 80\n default_backend b\nbackend b\n server s1 127.0.0.1:1\n",
        );
        let mut l = LearnedCounts::new(16);
        let mut e = entry("f", "b", 1000, "----");
        e.unique_id = Some("ABC123".into());
        let c = m.correct(&e, Some(&joined(1013 + 19)), &mut l);
        let want = 1013 + header_line_len("X-Id", 6) + header_line_len("connection", 5);
        assert_eq!((c.bytes_sent, c.basis), (Some(want), Basis::Exact), "{c:?}");
        e.unique_id = None;
        let c = m.correct(&e, Some(&joined(1013 + 19)), &mut l);
        assert_eq!(c.basis, Basis::Estimate);
    }
}
