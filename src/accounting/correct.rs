//! Applying the [`HeaderModel`]: one HAProxy entry (plus, when known, the backend's line) to the
//! best value of the bytes sent and its [`Basis`]. Pure.

use super::*;

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
pub(super) const BUILTIN_400: &str = "HTTP/1.1 400 Bad request\r\ncontent-length: 90\r\ncache-control: no-cache\r\nconnection: close\r\ncontent-type: text/html\r\n\r\n<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n";
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
