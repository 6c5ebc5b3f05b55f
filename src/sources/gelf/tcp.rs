//! GELF over TCP (and TLS): NUL-delimited messages, one task per connection.
//!
//! Each read is split into frames with [`NulDecoder`] and appended to the journal, waiting while
//! it is full (a fast sender is slowed by TCP flow control, never dropped). A frame longer than
//! `max_message_bytes` is kept cut and flagged `TRUNCATED` (its parse then fails: kept raw). A
//! connection silent for `tcp_idle_timeout` is closed; a read buffer never holds more than one
//! maximal frame plus one read.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use super::{GelfSourceError, GelfStats, Limits, listen, trim_end};
use crate::component::SourceContext;
use crate::gelf::frame::NulDecoder;
use crate::record::{RecordFlags, Timestamp};
use crate::sources::listen::{Handler, Stream, append_counted};

const READ_CHUNK: usize = 64 * 1024;

/// Accepts TCP (or TLS) connections until shutdown.
pub async fn accept(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: SourceContext,
    limits: Limits,
    stats: Arc<GelfStats>,
) -> Result<(), GelfSourceError> {
    let server = TcpServer {
        ctx: ctx.clone(),
        limits: limits.clone(),
        stats,
    };
    listen(listener, tls, ctx, &limits, "GELF tcp", server).await
}

#[derive(Clone)]
struct TcpServer {
    ctx: SourceContext,
    limits: Limits,
    stats: Arc<GelfStats>,
}

impl Handler for TcpServer {
    type Error = String;

    fn refused(&self) {
        self.stats
            .refused_connections
            .fetch_add(1, Ordering::Relaxed);
    }

    async fn serve<S: Stream>(self, mut stream: S, _peer: String) -> Result<(), String> {
        let (ctx, limits) = (&self.ctx, &self.limits);
        let appender = ctx.journal.appender();
        let mut shutdown = ctx.shutdown.clone();
        let mut decoder = NulDecoder::new(limits.max_message);
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(buf.capacity().clamp(4096, READ_CHUNK));
            }
            let n = tokio::select! {
                _ = shutdown.triggered() => 0,
                r = tokio::time::timeout(limits.idle_timeout, stream.read_buf(&mut buf)) => match r {
                    Err(_) => return Err(format!("idle for {:?}", limits.idle_timeout)),
                    // A TLS peer that closes without close_notify (Python's ssl) ends the stream.
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                    Ok(Err(e)) => return Err(e.to_string()),
                    Ok(Ok(n)) => n,
                },
            };
            let now = Timestamp::now();
            let mut records = Vec::new();
            let mut bytes = 0u64;
            let mut push = |data: bytes::Bytes, flags| {
                let keep = trim_end(&data).len();
                if keep > 0 {
                    bytes += keep as u64;
                    records.push(ctx.record(data.slice(..keep), flags, now));
                }
            };
            while let Some(frame) = decoder.decode(&mut buf) {
                let flags = if frame.truncated {
                    RecordFlags::TRUNCATED
                } else {
                    RecordFlags::empty()
                };
                push(frame.data, flags);
            }
            if n == 0
                && let Some(frame) = decoder.finish(&mut buf)
            {
                // The peer closed after a message without its NUL: keep it, flagged.
                push(frame.data, RecordFlags::NO_NEWLINE);
            }
            append_counted(&appender, ctx, records, bytes)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            if buf.is_empty() && buf.capacity() > 256 * 1024 {
                buf = BytesMut::with_capacity(4096);
            }
        }
    }
}
