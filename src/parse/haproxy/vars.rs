//! The vocabulary of HAProxy log-formats: each `%var` and what it holds ([`Var`]: how it is
//! read and which field it becomes), the `%{…}` flags ([`Flags`]: `Q` quoting, `X` hex, `E`
//! backslash escaping, the 3.0 encodings `json`/`cbor`), and the field names of `%[…]` samples.
//! Pure tables, no I/O.

use super::logformat::CompileError;

/// What a variable holds, and so how it is read and which field it becomes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Var {
    Ip(&'static str),
    Int(&'static str),
    Date,
    Unix,
    /// `%ft`/`%f`: the frontend, `~` marks SSL.
    Frontend,
    Str(&'static str),
    Status,
    /// `%ts`/`%tsc`: never quoted.
    TermState,
    /// Ta (also `request_time_ms`).
    ActiveTime,
    /// Tt (also `request_time_ms` when the format has no Ta).
    TotalTime,
    Request,
    CaptureReq,
    CaptureRes,
    CaptureReqList,
    CaptureResList,
    UniqueId,
    /// `%CC` (true) / `%CS`: the captured cookie.
    Cookie(bool),
    /// `%[fetch,conv]`: field named after the fetch (index into `LogFormat::sample_names`, so
    /// that `Var` stays a plain tagged enum that matches with a jump table).
    Sample(u16),
    /// Parsed but not reported (`%ms`).
    Skip,
}

impl Var {
    pub(crate) fn lookup(name: &str) -> Option<Var> {
        Some(match name {
            "ci" => Var::Ip("client_ip"),
            "cp" => Var::Int("client_port"),
            "fi" => Var::Ip("frontend_ip"),
            "fp" => Var::Int("frontend_port"),
            "bi" => Var::Ip("backend_source_ip"),
            "bp" => Var::Int("backend_source_port"),
            "si" => Var::Ip("server_ip"),
            "sp" => Var::Int("server_port"),
            "t" | "tr" | "trg" | "trl" | "T" | "Tl" => Var::Date,
            "Ts" => Var::Unix,
            "ms" => Var::Skip,
            "ft" | "f" => Var::Frontend,
            "b" => Var::Str("backend"),
            "s" => Var::Str("server"),
            "TR" => Var::Int("time_request_ms"),
            "Tw" => Var::Int("time_queue_ms"),
            "Tc" => Var::Int("time_connect_ms"),
            "Tr" => Var::Int("time_response_ms"),
            "Ta" => Var::ActiveTime,
            "Tt" => Var::TotalTime,
            "Th" => Var::Int("time_handshake_ms"),
            "Ti" => Var::Int("time_idle_ms"),
            "Tq" => Var::Int("time_before_request_ms"),
            "Td" => Var::Int("time_data_ms"),
            "Tu" => Var::Int("time_user_ms"),
            "ST" => Var::Status,
            "B" => Var::Int("bytes_read"),
            "U" => Var::Int("bytes_uploaded"),
            "CC" => Var::Cookie(true),
            "CS" => Var::Cookie(false),
            "ts" | "tsc" => Var::TermState,
            "ac" => Var::Int("actconn"),
            "fc" => Var::Int("feconn"),
            "bc" => Var::Int("beconn"),
            "sc" => Var::Int("srvconn"),
            "rc" => Var::Int("retries"),
            "sq" => Var::Int("srv_queue"),
            "bq" => Var::Int("backend_queue"),
            "lc" => Var::Int("log_counter"),
            "rt" => Var::Int("request_counter"),
            "pid" => Var::Int("haproxy_pid"),
            "H" => Var::Str("haproxy_host"),
            "hr" => Var::CaptureReq,
            "hs" => Var::CaptureRes,
            "hrl" => Var::CaptureReqList,
            "hsl" => Var::CaptureResList,
            "r" => Var::Request,
            "HM" => Var::Str("http_method"),
            "HU" => Var::Str("http_path"),
            "HP" => Var::Str("http_path"),
            "HPO" => Var::Str("http_path_only"),
            "HQ" => Var::Str("http_query"),
            "HV" => Var::Str("http_version"),
            "ID" => Var::UniqueId,
            "sslv" => Var::Str("ssl_version"),
            "sslc" => Var::Str("ssl_cipher"),
            _ => return None,
        })
    }

    /// Whether `+Q` puts this variable in quotes (HAProxy quotes strings, not numbers or dates).
    pub(crate) fn quotable(&self) -> bool {
        matches!(
            self,
            Var::Ip(_)
                | Var::Frontend
                | Var::Str(_)
                | Var::Request
                | Var::CaptureReqList
                | Var::CaptureResList
                | Var::UniqueId
                | Var::Cookie(_)
                | Var::Sample(_)
        )
    }

    /// Whether `+X` writes this variable in hexadecimal (the manual: "IPs, Ports, %Ts, %rt,
    /// %pid"; every other number stays decimal).
    pub(crate) fn hexable(&self) -> bool {
        matches!(
            self,
            Var::Ip(_)
                | Var::Unix
                | Var::Int(
                    "client_port"
                        | "frontend_port"
                        | "backend_source_port"
                        | "server_port"
                        | "request_counter"
                        | "haproxy_pid"
                )
        )
    }
}

/// The 3.0 encodings of a whole line (`%{+json}o`, `%{+cbor}o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// A JSON object of the named (`%(name)`) variables.
    Json,
    /// The same as CBOR (a map), written as hex digits (`+bin`: raw bytes).
    Cbor,
}

/// The flags of one `%{…}` (each `None` when not mentioned, so `%o`'s can be inherited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// `Q`: strings in double quotes.
    pub quote: Option<bool>,
    /// `X`: addresses and integers in hexadecimal.
    pub hex: Option<bool>,
    /// `E`: `"`, `\` and `]` escaped with a backslash (for RFC 5424 structured data).
    pub escape: Option<bool>,
    pub encoding: Option<Encoding>,
}

impl Flags {
    /// These flags, with what they do not say taken from `base` (`%o`'s).
    pub(crate) fn over(self, base: Flags) -> Flags {
        Flags {
            quote: self.quote.or(base.quote),
            hex: self.hex.or(base.hex),
            escape: self.escape.or(base.escape),
            encoding: self.encoding.or(base.encoding),
        }
    }

    /// `+Q,+E` etc. (`M`, `bin` and the 3.0 type hints are accepted and change nothing Quill
    /// reads).
    pub(crate) fn parse(flags: &str, at: usize) -> Result<Flags, CompileError> {
        let mut out = Flags::default();
        let b = flags.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b',' => i += 1,
                s @ (b'+' | b'-') => {
                    let on = s == b'+';
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len() && b[j].is_ascii_alphabetic() {
                        j += 1;
                    }
                    match &flags[start..j] {
                        "Q" => out.quote = Some(on),
                        "X" => out.hex = Some(on),
                        "E" => out.escape = Some(on),
                        "json" if on => out.encoding = Some(Encoding::Json),
                        "cbor" if on => out.encoding = Some(Encoding::Cbor),
                        "M" | "bin" | "json" | "cbor" => {}
                        other => return Err(CompileError::BadFlag(other.to_owned(), at)),
                    }
                    i = j;
                }
                _ => return Err(CompileError::BadFlag(flags.to_owned(), at)),
            }
        }
        Ok(out)
    }
}

/// `ssl_fc_err,hex` → `ssl_fc_err`; `var(txn.tid)` → `var_txn.tid`.
pub(crate) fn sample_field_name(expr: &str) -> String {
    let fetch = expr.split(',').next().unwrap_or(expr);
    let mut out = String::with_capacity(fetch.len());
    crate::field_name::push_str(&mut out, fetch.as_bytes(), crate::field_name::Case::Keep);
    let trimmed = out.trim_end_matches('_').to_owned();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("id") {
        format!("sample_{trimmed}")
    } else {
        trimmed
    }
}
