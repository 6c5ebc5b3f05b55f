//! The `gelf` sink: every record as the GELF 1.1 object the file sink writes (the same
//! `EncodePool` encoding, the same byte join), sent to a Graylog-compatible receiver:
//!
//! - `udp://`: one datagram per message, chunked (GELF chunking, [`crate::gelf::chunk::split`])
//!   above `chunk_size`, optionally gzip or zlib compressed. A message that needs more than 128
//!   chunks cannot be sent: it is passed over and counted in `quill_sink_dropped_total`. UDP has
//!   no acknowledgement: what the kernel or the receiver drops is the receiver's loss to count.
//! - `tcp://`, `tls://`: NUL-delimited messages on one connection. GELF has no acknowledgement:
//!   the cursor stays `resend_window` bytes (plus the kernel's send queue) behind what was
//!   written, and catches up once the stream is idle with its send queue empty. A reset or a
//!   stalled receiver (`timeout`) fails the attempt; the supervisor reconnects with backoff from
//!   the cursor: at least once across reconnects, the repeats bounded by that window.
//! - `http://`, `https://`: one `POST` per message, or `http_batch` newline-delimited messages
//!   per `POST` ([`super::gelf_http`]), acknowledged by its 2xx.
//!
//! Touches its socket and (through [`super::deliver`]) its cursor.

use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;

use super::deliver::{Delivery, Encoder, Transport};
use super::encode_pool::{EncodePool, EncodedChunk};
use super::gelf_http::HttpOut;
use super::net_out::{self, OutError, Stream, TlsClient};
use crate::accounting::stream::{JoinStage, Joined};
use crate::component::{ComponentError, SinkContext};
use crate::config::{GelfCompression, GelfSinkConfig, OutScheme, default_workers};
use crate::gelf::chunk;
use crate::gelf::payload::{self, Compression};
use crate::sinks::route::Route;
use crate::telemetry::SinkStats;

/// Starts the sink thread (it connects there, so a receiver that is down is not a start-up
/// error: the attempt fails and the supervisor retries).
pub fn spawn(
    config: GelfSinkConfig,
    ctx: SinkContext,
) -> Result<JoinHandle<Result<(), ComponentError>>, ComponentError> {
    let target = config.target().map_err(ComponentError::Setting)?;
    let tls =
        TlsClient::new(&target, &config.tls).map_err(|e| ComponentError::Setting(e.to_string()))?;
    let workers = config.workers.unwrap_or_else(default_workers);
    let pool =
        EncodePool::new(&ctx.name, workers, ctx.parsers.clone()).map_err(ComponentError::Thread)?;
    let delivery = Delivery {
        route: Route::new(&config.route),
        join: ctx
            .join
            .as_ref()
            .map(|j| JoinStage::new(j, ctx.parsers.clone())),
        cursor: ctx.cursor,
        stats: ctx.stats,
        shutdown: ctx.shutdown,
    };
    std::thread::Builder::new()
        .name(format!("sink-{}", ctx.name))
        .spawn(move || {
            let timeout = config.timeout.0;
            let failed = |e: OutError| ComponentError::Failed(format!("gelf sink: {e}"));
            let mut encoder = GelfEncoder {
                pool,
                nul: matches!(target.scheme, OutScheme::Tcp | OutScheme::Tls),
            };
            let mut transport: Box<dyn Transport> = match target.scheme {
                OutScheme::Udp => Box::new(UdpOut::new(&target.addr, &config).map_err(failed)?),
                OutScheme::Tcp | OutScheme::Tls => Box::new(StreamOut::new(
                    &target.addr,
                    net_out::connect(&target.addr, tls.as_ref(), timeout).map_err(failed)?,
                    config.resend_window.0,
                )),
                OutScheme::Http | OutScheme::Https => Box::new(HttpOut::new(
                    &target,
                    tls,
                    timeout,
                    config.window,
                    (config.http_batch, config.http_batch_bytes.as_usize()),
                    config.http_connections,
                    config.compression == GelfCompression::Gzip,
                )),
            };
            delivery
                .run(&mut encoder, transport.as_mut())
                .map_err(failed)
        })
        .map_err(ComponentError::Thread)
}

/// GELF lines from the encode pool; for TCP each line's `\n` becomes the NUL delimiter.
struct GelfEncoder {
    pool: EncodePool,
    nul: bool,
}

impl Encoder for GelfEncoder {
    fn encode(&mut self, batch: Vec<Joined>) -> (Vec<Joined>, Vec<EncodedChunk>) {
        let (batch, mut chunks) = self.pool.encode(batch);
        if self.nul {
            for c in &mut chunks {
                for &end in &c.ends {
                    c.buf[end - 1] = 0;
                }
            }
        }
        (batch, chunks)
    }

    fn recycle(&mut self, chunks: Vec<EncodedChunk>) {
        self.pool.recycle(chunks);
    }
}

/// A message: a line without its final `\n`.
pub(super) fn message(chunk: &EncodedChunk, i: usize) -> &[u8] {
    let r = chunk.line_range(i);
    &chunk.buf[r.start..r.end - 1]
}

/// Longest wait at the end of an attempt for the receiver's TCP to take what was written.
const SETTLE: Duration = Duration::from_secs(2);

/// Messages written to a stream as they are (delimiters included), flushed per batch.
///
/// No application acknowledgement: the last `window` bytes written, plus what the kernel still
/// queues, count as unconfirmed (a receiver that stalls, resets or dies may hold them unread in
/// its buffers). Once idle with an empty send queue, everything written is confirmed.
pub(super) struct StreamOut {
    addr: String,
    stream: Stream,
    window: u64,
    failed: bool,
}

impl StreamOut {
    pub(super) fn new(addr: &str, stream: Stream, window: u64) -> StreamOut {
        StreamOut {
            addr: addr.to_string(),
            stream,
            window,
            failed: false,
        }
    }

    fn write(&mut self, chunks: &[EncodedChunk]) -> std::io::Result<()> {
        for c in chunks {
            self.stream.write_all(&c.buf)?;
        }
        self.stream.flush()
    }
}

impl Transport for StreamOut {
    fn send(
        &mut self,
        chunks: &[EncodedChunk],
        delivered: &mut usize,
        _stats: &SinkStats,
    ) -> Result<(), OutError> {
        if let Err(e) = self.write(chunks) {
            self.failed = true;
            return Err(OutError::io(&self.addr, e));
        }
        *delivered = chunks.iter().map(|c| c.ends.len()).sum();
        Ok(())
    }

    fn unconfirmed(&mut self, idle: bool) -> u64 {
        match self.stream.send_queue() {
            _ if self.failed => u64::MAX,
            None => u64::MAX,
            Some(0) if idle => 0,
            Some(queued) => queued.saturating_add(self.window),
        }
    }

    fn settle(&mut self) {
        let deadline = Instant::now() + SETTLE;
        while !self.failed
            && self.stream.send_queue().is_some_and(|q| q > 0)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// GELF datagrams, chunked and compressed as configured.
struct UdpOut {
    addr: String,
    sock: UdpSocket,
    to: SocketAddr,
    chunk_size: usize,
    compression: Compression,
    /// Message ids: a per-attempt random start, then counting.
    next_id: u64,
}

impl UdpOut {
    fn new(addr: &str, config: &GelfSinkConfig) -> Result<UdpOut, OutError> {
        let (sock, to) = net_out::udp(addr)?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
        Ok(UdpOut {
            addr: addr.to_string(),
            sock,
            to,
            chunk_size: config.chunk_size,
            compression: match config.compression {
                GelfCompression::None => Compression::None,
                GelfCompression::Gzip => Compression::Gzip,
                GelfCompression::Zlib => Compression::Zlib,
            },
            next_id: seed,
        })
    }

    fn send_one(&mut self, msg: &[u8], stats: &SinkStats) -> Result<(), OutError> {
        let compressed;
        let payload = if self.compression == Compression::None {
            msg
        } else {
            compressed = payload::compress(msg, self.compression);
            &compressed[..]
        };
        if payload.len() <= self.chunk_size {
            self.sock
                .send_to(payload, self.to)
                .map_err(|e| OutError::io(&self.addr, e))?;
            return Ok(());
        }
        self.next_id = self.next_id.wrapping_add(1);
        let Some(datagrams) = chunk::split(payload, self.chunk_size, self.next_id.to_be_bytes())
        else {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                bytes = payload.len(),
                "GELF message too large for 128 UDP chunks of {} bytes: dropped (counted).",
                self.chunk_size
            );
            return Ok(());
        };
        for d in datagrams {
            self.sock
                .send_to(&d, self.to)
                .map_err(|e| OutError::io(&self.addr, e))?;
        }
        Ok(())
    }
}

impl Transport for UdpOut {
    fn send(
        &mut self,
        chunks: &[EncodedChunk],
        delivered: &mut usize,
        stats: &SinkStats,
    ) -> Result<(), OutError> {
        for c in chunks {
            for i in 0..c.ends.len() {
                self.send_one(message(c, i), stats)?;
                *delivered += 1;
            }
        }
        Ok(())
    }
}
