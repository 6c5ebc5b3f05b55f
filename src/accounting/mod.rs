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

pub mod check;
mod correct;
pub use correct::NOCACHE_UNKNOWN;
pub mod join;
mod model;
pub mod stream;

use std::collections::HashMap;

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

#[cfg(test)]
mod tests;
