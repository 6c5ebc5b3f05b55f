//! GELF over HTTP(S): `POST /gelf` with one message as the body (plain, or gzip/zlib with or
//! without a `Content-Encoding` header: the payload's magic bytes decide). With `http_bulk`, the
//! (decompressed) body is newline-delimited messages, appended as one batch; empty lines are
//! skipped.
//!
//! Answers: `202 Accepted` once the record is durable in the journal; `413` for a body (or its
//! decompressed form) above `max_message_bytes`; `400` for an empty or corrupt compressed body;
//! `404`/`405` for another path or method. An invalid GELF message is still accepted (kept raw
//! with a parse error). The append runs in its own task, so a client that hangs up before the
//! answer cannot cancel a half-done append. HTTP/1.1 with keep-alive (hyper); a connection
//! that sends no request headers for `tcp_idle_timeout` is closed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::{GelfSourceError, GelfStats, Limits, listen, trim_end};
use crate::component::SourceContext;
use crate::gelf::payload::{PayloadError, decompress};
use crate::journal::AppendBatch;
use crate::record::{RecordFlags, Timestamp};
use crate::sources::listen::{Handler, Stream};

/// Accepts HTTP (or HTTPS) connections until shutdown.
pub async fn accept(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: SourceContext,
    limits: Limits,
    stats: Arc<GelfStats>,
) -> Result<(), GelfSourceError> {
    let server = HttpServer {
        ctx: ctx.clone(),
        limits: limits.clone(),
        stats,
    };
    listen(listener, tls, ctx, &limits, "GELF http", server).await
}

#[derive(Clone)]
struct HttpServer {
    ctx: SourceContext,
    limits: Limits,
    stats: Arc<GelfStats>,
}

fn answer(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_string())));
    *r.status_mut() = status;
    r
}

impl HttpServer {
    async fn handle(
        self,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let refuse = |status, text| {
            self.stats.http_refused.fetch_add(1, Ordering::Relaxed);
            Ok(answer(status, text))
        };
        if req.uri().path() != "/gelf" {
            return refuse(StatusCode::NOT_FOUND, "POST GELF messages to /gelf\n");
        }
        if req.method() != Method::POST {
            return refuse(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
        }
        let max = self.limits.max_message;
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            // Answered before the body is read: a client that sent `Expect: 100-continue`
            // never sends it.
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "message too large\n");
        }
        let body = match Limited::new(req.into_body(), max).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, "message too large\n");
            }
            Err(e) => return refuse(StatusCode::BAD_REQUEST, &format!("{e}\n")),
        };
        let raw = match decompress(&body, max) {
            Ok(m) => m,
            Err(PayloadError::TooLarge(..)) => {
                self.stats.inflate_refused.fetch_add(1, Ordering::Relaxed);
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "message inflates too large\n",
                );
            }
            Err(e @ PayloadError::Corrupt(..)) => {
                self.stats.inflate_corrupt.fetch_add(1, Ordering::Relaxed);
                return refuse(StatusCode::BAD_REQUEST, &format!("{e}\n"));
            }
        };
        let messages = messages(&raw, self.limits.http_bulk);
        if messages.is_empty() {
            return refuse(StatusCode::BAD_REQUEST, "empty message\n");
        }
        let ctx = self.ctx.clone();
        // Its own task: hyper drops this future if the client hangs up early.
        let journaled = tokio::spawn(async move {
            let appender = ctx.journal.appender();
            let now = Timestamp::now();
            let count = messages.len() as u64;
            let len = messages.iter().map(|m| m.len() as u64).sum();
            let records = messages
                .into_iter()
                .map(|m| ctx.record(m, RecordFlags::empty(), now))
                .collect();
            let receipt = appender
                .append(AppendBatch {
                    records,
                    checkpoints: Vec::new(),
                })
                .await?;
            ctx.stats.add(count, len);
            appender.wait_durable(receipt.last_seq).await
        });
        Ok(match journaled.await {
            Ok(Ok(())) => answer(StatusCode::ACCEPTED, ""),
            Ok(Err(e)) => answer(StatusCode::SERVICE_UNAVAILABLE, &format!("journal: {e}\n")),
            Err(_) => answer(StatusCode::INTERNAL_SERVER_ERROR, "append failed\n"),
        })
    }
}

/// The messages of a (decompressed) body: the body itself, or with `bulk` each non-empty line.
fn messages(body: &[u8], bulk: bool) -> Vec<Bytes> {
    if !bulk {
        let m = trim_end(body);
        return if m.is_empty() {
            Vec::new()
        } else {
            vec![Bytes::copy_from_slice(m)]
        };
    }
    body.split(|&b| b == b'\n')
        .map(trim_end)
        .filter(|m| !m.iter().all(u8::is_ascii_whitespace))
        .map(Bytes::copy_from_slice)
        .collect()
}

impl Handler for HttpServer {
    type Error = String;

    fn refused(&self) {
        self.stats
            .refused_connections
            .fetch_add(1, Ordering::Relaxed);
    }

    async fn serve<S: Stream>(self, stream: S, _peer: String) -> Result<(), String> {
        let idle = self.limits.idle_timeout;
        let mut shutdown = self.ctx.shutdown.clone();
        let service = hyper::service::service_fn(move |req| self.clone().handle(req));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(idle)
            // pygelf and other fire-and-forget clients close right after sending the request.
            .half_close(true)
            .serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r.map_err(|e| e.to_string()),
            _ = shutdown.triggered() => {
                conn.as_mut().graceful_shutdown();
                conn.await.map_err(|e| e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::messages;

    #[test]
    fn bulk_bodies_split_on_newlines() {
        let body = b"{\"a\":1}\r\n\n  \n{\"b\":\n2}\n";
        assert_eq!(messages(body, false).len(), 1);
        let bulk = messages(body, true);
        let got: Vec<&[u8]> = bulk.iter().map(|m| &m[..]).collect();
        assert_eq!(got, vec![&b"{\"a\":1}"[..], b"{\"b\":", b"2}"]);
        assert!(messages(b"\n\r\n", true).is_empty());
        assert!(messages(b"\n", false).is_empty());
    }
}
