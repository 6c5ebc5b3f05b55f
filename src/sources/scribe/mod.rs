//! The `scribe` source: a drop-in for Facebook Scribe's Thrift service. Scribe clients
//! (`scribe_cat`, generated Thrift clients, the `facebook-scribe` package) call
//! `Log(list<LogEntry>)` over the framed transport and binary protocol; fb303 monitoring calls
//! (`getStatus`, `getCounters`, ...) are answered too.
//!
//! - Every entry becomes one record with the entry's category; the payload is the message bytes,
//!   embedded newlines and all. An entry whose category is not a safe name
//!   ([`crate::config::is_safe_category`]) is refused: counted (`received bad`), never journaled.
//! - `OK` is sent only once the call's records are durable in the journal. While the journal is
//!   full the reply is held (backpressure); after `try_later_after` nothing of the call is
//!   journaled, `TRY_LATER` is sent and counted (`denied for queue size`). Quill never sends
//!   `TRY_LATER` for its own rate.
//! - Bounded: frames above `max_frame_size` are refused from their length word, before reading;
//!   lengths inside a frame are checked before allocating ([`thrift`]); a frame that does not
//!   decode closes its connection with one warning line; a frame must complete within
//!   `frame_timeout`; at most `max_connections` are served.
//!
//! This module touches its listening socket, its connections and the journal's append side.

pub use crate::wire::thrift;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::component::{ComponentError, SourceContext};
use crate::config::{ScribeSourceConfig, is_safe_category};
use crate::journal::{AppendBatch, Appender, JournalError};
use crate::record::{Origin, Record};
use crate::sources::listen::{self, Handler, Listener, StartError, Stream, connection_limit};
use thrift::{Call, Limits, Message, ThriftError, Value};

use thrift::{RESULT_OK as OK, RESULT_TRY_LATER as TRY_LATER};
/// fb303 `fb_status` values.
const ALIVE: i32 = 2;
const STOPPING: i32 = 3;
const WARNING: i32 = 5;
/// Frames above this are decoded on a blocking thread, not on the reactor.
const BLOCKING_DECODE: usize = 256 << 10;
/// Categories whose origin a connection keeps at most.
const ORIGIN_CACHE: usize = 4096;

/// Why a connection was closed.
#[derive(Debug, Error)]
pub enum ConnError {
    #[error("frame of {len} bytes exceeds max_frame_size {max}")]
    FrameTooLarge { len: u64, max: usize },
    #[error("connection closed inside a frame ({got} of {want} bytes)")]
    Truncated { got: usize, want: usize },
    #[error("frame not complete within {0:?}")]
    SlowFrame(Duration),
    #[error("bad Thrift message: {0}")]
    Thrift(#[from] ThriftError),
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The counters fb303 `getCounters` reports (Scribe's names), per source.
#[derive(Debug, Default)]
pub struct ScribeCounters {
    /// Entries journaled.
    pub received_good: AtomicU64,
    /// Entries refused (unsafe category).
    pub received_bad: AtomicU64,
    /// `Log()` calls answered `TRY_LATER` (journal full).
    pub try_later: AtomicU64,
    /// Connections closed for a bad frame.
    pub bad_frames: AtomicU64,
    /// Connections refused over `max_connections`.
    pub refused_connections: AtomicU64,
}

impl ScribeCounters {
    fn snapshot(&self) -> Vec<(String, i64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as i64;
        vec![
            ("received good".into(), get(&self.received_good)),
            ("received bad".into(), get(&self.received_bad)),
            ("denied for queue size".into(), get(&self.try_later)),
            ("quill bad frames".into(), get(&self.bad_frames)),
            (
                "quill refused connections".into(),
                get(&self.refused_connections),
            ),
        ]
    }
}

struct Shared {
    ctx: SourceContext,
    appender: Appender,
    counters: Arc<ScribeCounters>,
    limits: Limits,
    max_frame: usize,
    idle_timeout: Duration,
    frame_timeout: Duration,
    try_later_after: Duration,
    alive_since: i64,
}

/// The source's task.
pub type SourceTask = tokio::task::JoinHandle<Result<(), ComponentError>>;

/// Binds the listener and starts the source task; returns it and the source's counters.
pub fn start(
    config: ScribeSourceConfig,
    std_listener: std::net::TcpListener,
    ctx: SourceContext,
    runtime: &tokio::runtime::Runtime,
) -> Result<(SourceTask, Arc<ScribeCounters>), StartError> {
    if let Some((key, message)) = config.check() {
        return Err(StartError::Setting { key, message });
    }
    let bind_error = |source| StartError::Bind {
        addr: config.listen.clone(),
        source,
    };
    std_listener.set_nonblocking(true).map_err(bind_error)?;
    tracing::info!(source = %ctx.name, listen = %config.listen, "Scribe source listening.");
    let counters = Arc::new(ScribeCounters::default());
    let max_frame = config.max_frame_size.as_usize();
    let shared = Arc::new(Shared {
        appender: ctx.journal.appender(),
        ctx,
        counters: counters.clone(),
        limits: Limits {
            max_entries: config.max_entries,
            max_string: max_frame,
            max_depth: 16,
        },
        max_frame,
        idle_timeout: config.idle_timeout.0,
        frame_timeout: config.frame_timeout.0,
        try_later_after: config.try_later_after.0,
        alive_since: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    });
    let listener = Listener {
        slots: connection_limit(&shared.ctx.name, "max_connections", config.max_connections),
        ctx: shared.ctx.clone(),
        protocol: "Scribe",
        tls: None,
    };
    let _guard = runtime.enter();
    let socket = TcpListener::from_std(std_listener).map_err(bind_error)?;
    let handle = runtime.spawn(async move {
        listen::serve(socket, listener, Scribe(shared)).await;
        Ok(())
    });
    Ok((handle, counters))
}

/// Reads one frame body: `Ok(None)` at a clean end of stream (or idle timeout). The length word
/// is checked before anything is read; the body buffer grows only as bytes arrive.
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    max_frame: usize,
    idle_timeout: Duration,
    frame_timeout: Duration,
) -> Result<Option<Bytes>, ConnError> {
    // Wait for the first byte of the next frame.
    if buf.is_empty() {
        buf.reserve(4096);
        match tokio::time::timeout(idle_timeout, rd.read_buf(buf)).await {
            Err(_) => return Ok(None),
            Ok(Ok(0)) => return Ok(None),
            Ok(r) => drop(r?),
        }
    }
    let complete = async {
        while buf.len() < 4 {
            if rd.read_buf(buf).await? == 0 {
                return Err(ConnError::Truncated {
                    got: buf.len(),
                    want: 4,
                });
            }
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > max_frame {
            return Err(ConnError::FrameTooLarge {
                len: len as u64,
                max: max_frame,
            });
        }
        let _ = buf.split_to(4);
        // One allocation of the declared length (at most max_frame_size): pages the peer has
        // not sent are never touched, so a peer that announces a large frame and stalls holds
        // in resident memory only what it sent.
        let have = buf.len().min(len);
        let mut body = Vec::with_capacity(len);
        body.extend_from_slice(&buf.split_to(have));
        while body.len() < len {
            // Spare capacity never exceeds what the frame still needs: no over-read.
            if rd.read_buf(&mut body).await? == 0 {
                return Err(ConnError::Truncated {
                    got: body.len(),
                    want: len,
                });
            }
        }
        Ok(Some(Bytes::from(body)))
    };
    match tokio::time::timeout(frame_timeout, complete).await {
        Ok(r) => r,
        Err(_) => Err(ConnError::SlowFrame(frame_timeout)),
    }
}

/// The Scribe protocol on one connection.
#[derive(Clone)]
struct Scribe(Arc<Shared>);

impl Handler for Scribe {
    type Error = ConnError;

    async fn serve<S: Stream>(self, stream: S, _peer: String) -> Result<(), ConnError> {
        let shared = &*self.0;
        let mut conn = Connection {
            shared,
            origins: HashMap::new(),
            warned_category: false,
        };
        let result = conn.run(stream).await;
        if let Err(e) = &result
            && matches!(
                e,
                ConnError::FrameTooLarge { .. }
                    | ConnError::Truncated { .. }
                    | ConnError::SlowFrame(_)
                    | ConnError::Thrift(_)
            )
        {
            shared.counters.bad_frames.fetch_add(1, Ordering::Relaxed);
            shared.ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn refused(&self) {
        self.0
            .counters
            .refused_connections
            .fetch_add(1, Ordering::Relaxed);
    }
}

struct Connection<'a> {
    shared: &'a Shared,
    /// Category → its records' origin.
    origins: HashMap<Bytes, Arc<Origin>>,
    warned_category: bool,
}

impl Connection<'_> {
    async fn run<S: Stream>(&mut self, stream: S) -> Result<(), ConnError> {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut buf = BytesMut::new();
        let mut out = Vec::with_capacity(256);
        let mut shutdown = self.shared.ctx.shutdown.clone();
        let s = self.shared;
        loop {
            let frame = tokio::select! {
                _ = shutdown.triggered() => return Ok(()),
                f = read_frame(&mut rd, &mut buf, s.max_frame, s.idle_timeout, s.frame_timeout) => f?,
            };
            let Some(frame) = frame else { return Ok(()) };
            let limits = s.limits;
            let message = if frame.len() > BLOCKING_DECODE {
                tokio::task::spawn_blocking(move || thrift::decode(&frame, limits))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))??
            } else {
                thrift::decode(&frame, limits)?
            };
            out.clear();
            let Some(()) = self.answer(&message, &mut out).await? else {
                return Ok(()); // shutting down while waiting for the journal
            };
            if !out.is_empty() {
                wr.write_all(&out).await?;
            }
        }
    }

    /// Answers one call into `out` (nothing for oneway calls). `None`: shutdown came first.
    async fn answer(&mut self, m: &Message, out: &mut Vec<u8>) -> Result<Option<()>, ConnError> {
        let s = self.shared;
        let value = match &m.call {
            Call::Log(entries) => {
                let Some(code) = self.log(entries).await? else {
                    return Ok(None);
                };
                Value::I32(code)
            }
            Call::GetName => Value::String(b"scribe"),
            Call::GetVersion => {
                Value::String(concat!("quill ", env!("CARGO_PKG_VERSION")).as_bytes())
            }
            Call::GetStatus => Value::I32(if s.ctx.shutdown.is_triggered() {
                STOPPING
            } else if s.ctx.journal.stats().write_blocked {
                WARNING
            } else {
                ALIVE
            }),
            Call::GetStatusDetails => Value::String(if s.ctx.journal.stats().write_blocked {
                b"journal writes failing"
            } else {
                b""
            }),
            Call::GetCounters => {
                let counters = s.counters.snapshot();
                thrift::encode_reply(out, m, Value::Counters(&counters));
                return Ok(Some(()));
            }
            Call::GetCounter(key) => {
                let counters = s.counters.snapshot();
                let v = counters
                    .iter()
                    .find(|(k, _)| k.as_bytes() == &key[..])
                    .map_or(0, |(_, v)| *v);
                Value::I64(v)
            }
            Call::GetOption(_) | Call::GetCpuProfile => Value::String(b""),
            Call::GetOptions => Value::EmptyStringMap,
            Call::SetOption => Value::Void,
            Call::AliveSince => Value::I64(s.alive_since),
            Call::Reinitialize | Call::Shutdown => {
                tracing::info!(source = %s.ctx.name, "Ignored Scribe `{}` call: Quill reloads on SIGHUP and stops on SIGTERM.", String::from_utf8_lossy(&m.name));
                Value::Void
            }
            Call::Unknown => {
                if m.wants_reply() {
                    let name = String::from_utf8_lossy(&m.name);
                    thrift::encode_exception(
                        out,
                        m,
                        thrift::UNKNOWN_METHOD,
                        &format!("Invalid method name: '{name}'"),
                    );
                }
                return Ok(Some(()));
            }
        };
        if m.wants_reply() {
            thrift::encode_reply(out, m, value);
        }
        Ok(Some(()))
    }

    /// Journals the entries; the result code once they are durable (`TRY_LATER` when the journal
    /// stayed full for `try_later_after`). `None`: shutdown came first.
    async fn log(&mut self, entries: &[thrift::LogEntry]) -> Result<Option<i32>, ConnError> {
        let s = self.shared;
        let mut records = Vec::with_capacity(entries.len());
        let mut bytes = 0u64;
        for e in entries {
            let Some(origin) = self.origin(&e.category) else {
                continue;
            };
            bytes += e.message.len() as u64;
            records.push(Record::new(origin, e.message.clone()));
        }
        if records.is_empty() {
            return Ok(Some(OK));
        }
        let count = records.len() as u64;
        let batch = AppendBatch {
            records,
            checkpoints: Vec::new(),
        };
        let mut shutdown = s.ctx.shutdown.clone();
        // `append` hands its batch to the journal whole or not at all, so a timeout journals
        // nothing of the call and the client's retry duplicates nothing.
        let appended = tokio::select! {
            _ = shutdown.triggered() => return Ok(None),
            r = tokio::time::timeout(s.try_later_after, s.appender.append(batch)) => r,
        };
        let receipt = match appended {
            Err(_) => {
                s.counters.try_later.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(source = %s.ctx.name, "Journal full for {:?}: TRY_LATER.", s.try_later_after);
                return Ok(Some(TRY_LATER));
            }
            Ok(r) => r?,
        };
        s.appender.wait_durable(receipt.last_seq).await?;
        s.ctx.stats.add(count, bytes);
        s.counters.received_good.fetch_add(count, Ordering::Relaxed);
        Ok(Some(OK))
    }

    /// The origin of records of `category`; `None` (counted) for an unsafe name.
    fn origin(&mut self, category: &Bytes) -> Option<Arc<Origin>> {
        if let Some(o) = self.origins.get(category) {
            return Some(o.clone());
        }
        let s = self.shared;
        let name = std::str::from_utf8(category)
            .ok()
            .filter(|c| is_safe_category(c));
        let Some(name) = name else {
            s.counters.received_bad.fetch_add(1, Ordering::Relaxed);
            s.ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            if !self.warned_category {
                self.warned_category = true;
                tracing::warn!(source = %s.ctx.name, category = ?String::from_utf8_lossy(category), "Refused Scribe entries with an unsafe category ({}); counted as `received bad`.", crate::config::CATEGORY_RULE);
            }
            return None;
        };
        if self.origins.len() >= ORIGIN_CACHE {
            self.origins.clear();
        }
        let base = &s.ctx.origin;
        let origin = Arc::new(Origin {
            source: base.source.clone(),
            category: name.into(),
            format: base.format,
            host: base.host.clone(),
        });
        self.origins.insert(category.clone(), origin.clone());
        Some(origin)
    }
}

impl ScribeCounters {
    /// The status line's detail (`try_later=0 bad=0`).
    pub fn summary(&self) -> String {
        format!(
            "try_later={} bad_category={} bad_frames={}",
            self.try_later.load(Ordering::Relaxed),
            self.received_bad.load(Ordering::Relaxed),
            self.bad_frames.load(Ordering::Relaxed)
        )
    }
}
