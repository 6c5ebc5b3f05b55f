//! Syslog over byte streams: TCP, TLS (RFC 5425) and unix stream sockets.
//!
//! One async task per connection reads into a bounded buffer, splits frames with
//! [`FrameDecoder`], and appends them to the journal, waiting while the journal is full: a fast
//! sender is slowed by TCP flow control, never dropped or rate-limited. A malformed frame closes
//! only its connection, with a log line naming the peer. Idle connections are closed after
//! `tcp_idle_timeout`; accepting, `max_connections` and TLS are [`crate::sources::listen`]'s.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Semaphore;

use super::framing::FrameDecoder;
use crate::component::SourceContext;
use crate::record::{RecordFlags, Timestamp};
use crate::sources::listen::{Handler, Stream, append_counted};

/// Initial read buffer of a connection (grows up to the largest frame).
const INITIAL_BUFFER: usize = 4 * 1024;

/// Limits shared by a listener's connections.
#[derive(Clone)]
pub struct StreamLimits {
    pub max_message: usize,
    pub idle_timeout: Duration,
    /// Connection slots (`max_connections`), shared by the source's stream listeners.
    pub connections: Arc<Semaphore>,
}

/// The syslog stream protocol on one connection ([`serve`]).
#[derive(Clone)]
pub struct StreamServer {
    pub ctx: SourceContext,
    pub limits: StreamLimits,
}

impl Handler for StreamServer {
    type Error = String;

    async fn serve<S: Stream>(self, stream: S, peer: String) -> Result<(), String> {
        serve(stream, &peer, &self.ctx, &self.limits).await
    }
}

/// Serves one connection until EOF, error, idle timeout or shutdown.
pub async fn serve<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: &str,
    ctx: &SourceContext,
    limits: &StreamLimits,
) -> Result<(), String> {
    let appender = ctx.journal.appender();
    let mut shutdown = ctx.shutdown.clone();
    let mut decoder = FrameDecoder::new(limits.max_message);
    let mut buf = BytesMut::with_capacity(INITIAL_BUFFER);
    // The buffer never needs more than one maximal frame plus its count prefix and a read's worth.
    let max_buffer = limits.max_message + 64 * 1024;
    loop {
        if buf.capacity() - buf.len() < 1024 {
            let grow = buf
                .capacity()
                .max(INITIAL_BUFFER)
                .min(max_buffer.saturating_sub(buf.len()).max(1024));
            buf.reserve(grow);
        }
        let n = tokio::select! {
            _ = shutdown.triggered() => 0,
            r = tokio::time::timeout(limits.idle_timeout, stream.read_buf(&mut buf)) => match r {
                Err(_) => return Err(format!("idle for {:?}", limits.idle_timeout)),
                Ok(Err(e)) => return Err(e.to_string()),
                Ok(Ok(n)) => n,
            },
        };
        let now = Timestamp::now();
        let mut records = Vec::new();
        let mut bytes = 0u64;
        let mut failure = None;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    bytes += frame.data.len() as u64;
                    let flags = if frame.truncated {
                        ctx.stats.truncated.fetch_add(1, Ordering::Relaxed);
                        RecordFlags::TRUNCATED
                    } else {
                        RecordFlags::empty()
                    };
                    records.push(ctx.record(frame.data, flags, now));
                }
                Ok(None) => break,
                Err(e) => {
                    ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                    failure = Some(format!("{e} from {peer}"));
                    break;
                }
            }
        }
        if n == 0
            && failure.is_none()
            && let Some(data) = decoder.take_incomplete(&mut buf)
        {
            // The peer closed in the middle of a message: keep what it sent, flagged.
            bytes += data.len() as u64;
            records.push(ctx.record(data, RecordFlags::NO_NEWLINE, now));
        }
        append_counted(&appender, ctx, records, bytes)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(f) = failure {
            return Err(f);
        }
        if n == 0 {
            return Ok(());
        }
        // Give back memory a burst of large frames made us take.
        if buf.is_empty() && buf.capacity() > 256 * 1024 {
            buf = BytesMut::with_capacity(INITIAL_BUFFER);
        }
    }
}
