//! The search API an aggregator serves, and the client `quill search --server` uses.
//!
//! `GET /api/search?txn=ID&q=QUERY&since_ms=N&until_ms=N&limit=N` answers
//! `{"server":…,"hits":[{"timestamp_ms":…,"seq":…,"gelf":"<GELF JSON text>","server":…}],…}`
//! (oldest first), or `{"error":"…"}` with status 400 for a bad query ([`super::api`] has the
//! whole API; [`super::serve`] the listener). The server binds where it is told;
//! [`DEFAULT_SEARCH_ADDR`] is loopback. The client is a minimal blocking HTTP/1.1 GET over a TCP
//! stream (`http://` URLs only).

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::Router;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::api::ErrorResponse;
use super::reader::{SearchHit, SearchRequest};
use super::serve::{self, ApiOptions};

/// Where the search API listens unless configured otherwise.
pub const DEFAULT_SEARCH_ADDR: &str = "127.0.0.1:7379";

/// Largest response the client accepts.
const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// What the client reads of a search answer (the server sends more: see [`super::api`]).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RemotePage {
    /// Oldest first.
    pub hits: Vec<SearchHit>,
    /// More entries match than the server sent (the limit, or the server's `search_max_limit`).
    #[serde(default)]
    pub more: bool,
}

/// The API's routes over the index at `index_root`, with default options.
pub fn search_router(index_root: PathBuf) -> Router {
    serve::router(index_root, &ApiOptions::default())
}

/// Serves the search API (default options) on `listener` until `shutdown` completes.
pub async fn serve_search_api(
    listener: tokio::net::TcpListener,
    index_root: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_search_api_with(listener, index_root, ApiOptions::default(), shutdown).await
}

/// Serves the search API and the trace page on `listener` with `opts` until `shutdown`.
pub async fn serve_search_api_with(
    listener: tokio::net::TcpListener,
    index_root: PathBuf,
    opts: ApiOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = serve::router(index_root, &opts);
    serve::serve(listener, router, opts.tls, opts.max_connections, shutdown).await
}

#[derive(Debug, Error)]
pub enum RemoteSearchError {
    #[error("bad server URL `{0}` (expected http://HOST:PORT)")]
    BadUrl(String),
    #[error("no answer from {url} within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("cannot reach {url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} sent an invalid response: {reason}")]
    BadResponse { url: String, reason: String },
}

/// The `host:port` of a search server URL (`http://host:port`, a trailing `/` allowed).
pub fn server_authority(server: &str) -> Result<&str, RemoteSearchError> {
    server
        .strip_prefix("http://")
        .map(|s| s.trim_end_matches('/'))
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| RemoteSearchError::BadUrl(server.to_string()))
}

/// Runs `req` on the aggregator at `server` (`http://host:port`), sending `token` as
/// `Authorization: Bearer` when given. The whole exchange (connect, request, answer) takes at
/// most `timeout`.
pub fn search_remote(
    server: &str,
    req: &SearchRequest,
    token: Option<&str>,
    timeout: Duration,
) -> Result<RemotePage, RemoteSearchError> {
    let deadline = Instant::now() + timeout;
    let authority = server_authority(server)?;
    let io = |source| RemoteSearchError::Io {
        url: server.to_string(),
        source,
    };
    let mut query = String::new();
    let mut param = |k: &str, v: &str| {
        query.push(if query.is_empty() { '?' } else { '&' });
        query.push_str(k);
        query.push('=');
        percent_encode(v, &mut query);
    };
    if let Some(t) = &req.txn_id {
        param("txn", t);
    }
    if let Some(q) = &req.query {
        param("q", q);
    }
    if let Some(s) = req.since_ms {
        param("since_ms", &s.to_string());
    }
    if let Some(u) = req.until_ms {
        param("until_ms", &u.to_string());
    }
    param("limit", &req.limit.to_string());

    let addr = authority
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| RemoteSearchError::BadUrl(server.to_string()))?;
    let timed_out = || RemoteSearchError::Timeout {
        url: server.to_string(),
        after: timeout,
    };
    let left = || Some(deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero());
    let mut stream =
        TcpStream::connect_timeout(&addr, left().ok_or_else(timed_out)?).map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                timed_out()
            } else {
                io(e)
            }
        })?;
    stream.set_write_timeout(left()).map_err(io)?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /api/search{query} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\n{auth}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        // The read timeout shrinks to what is left: a peer trickling bytes cannot stretch it.
        stream
            .set_read_timeout(Some(left().ok_or_else(timed_out)?))
            .map_err(io)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if response.len() as u64 + n as u64 > MAX_RESPONSE_BYTES {
                    return Err(RemoteSearchError::BadResponse {
                        url: server.to_string(),
                        reason: format!("answer over {MAX_RESPONSE_BYTES} bytes"),
                    });
                }
                response.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) => return Err(io(e)),
        }
    }
    let bad = |reason: &str| RemoteSearchError::BadResponse {
        url: server.to_string(),
        reason: reason.to_string(),
    };
    let header_end =
        memchr::memmem::find(&response, b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&response[..header_end]).map_err(|_| bad("non-UTF-8 header"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        return Err(bad("chunked responses are not supported"));
    }
    let body = &response[header_end + 4..];
    if status != 200 {
        let message = serde_json::from_slice::<ErrorResponse>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
        return Err(RemoteSearchError::Status {
            url: server.to_string(),
            status,
            message,
        });
    }
    serde_json::from_slice::<RemotePage>(body).map_err(|e| bad(&e.to_string()))
}

fn percent_encode(v: &str, out: &mut String) {
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        let mut s = String::new();
        percent_encode("status:503 AND path:\"/a b\"&x=é", &mut s);
        assert_eq!(s, "status%3A503%20AND%20path%3A%22%2Fa%20b%22%26x%3D%C3%A9");
    }

    #[test]
    fn rejects_bad_urls() {
        for u in ["https://x:1", "x:1", "http://", "http://a:1/path"] {
            assert!(matches!(
                search_remote(
                    u,
                    &SearchRequest::default(),
                    None,
                    Duration::from_millis(50)
                ),
                Err(RemoteSearchError::BadUrl(_))
            ));
        }
    }
}
