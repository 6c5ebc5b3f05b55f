//! The `forward` sink: the agent's output. Ships its journal cursor to aggregators with the
//! forward protocol ([`crate::transport::shipper`]) and advances the cursor only on the
//! aggregator's ack, which comes once the batch is durable there.
//!
//! The cursor's sink state holds this journal's stream id (`stream=<hex>`), made once when the
//! cursor is new: the aggregator keys its high-water mark by agent id and stream, so an agent whose
//! data directory was wiped starts a new stream instead of being taken for a replay.
//!
//! An aggregator whose WELCOME claims more of the stream than this journal holds is refused: the
//! sink stores a new stream id and forwards everything after its cursor again (counted in
//! `quill_sink_welcome_refused_total`).
//!
//! Routing (`inputs`, `categories`, `min_severity`, `hosts`, [`crate::sinks::route`]): records
//! the route does not take are not sent; a batch still carries the whole journal range it was cut
//! from (protocol version 2: gaps allowed), so the aggregator's high-water mark and this cursor
//! move past them, and a range with nothing taken is acknowledged without being sent.
//!
//! On shutdown the sink keeps forwarding what is journaled for up to `drain_timeout`, then leaves
//! the rest in the journal for the next start. It runs on its own thread with its own
//! single-threaded runtime (compression and cursor I/O never block the shared reactor), and
//! touches only its connections and its cursor.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::component::{ComponentError, SinkContext};
use crate::config::ForwardSinkConfig;
use crate::journal::{Cursor, Entry};
use crate::sinks::route::Route;
use crate::telemetry::SinkStats;
use crate::transport::shipper::{BatchSource, ClientTls, ShipStats, ShipperConfig, ship};
use crate::transport::{self, tls};

/// Journal entries read per cursor call at most.
const READ_MAX: usize = 16384;

/// Starts the sink thread. The context's host name is the default agent id.
pub fn spawn(
    config: ForwardSinkConfig,
    ctx: SinkContext,
) -> Result<JoinHandle<Result<(), ComponentError>>, ComponentError> {
    let SinkContext {
        name,
        mut cursor,
        stats,
        shutdown,
        host,
        ..
    } = ctx;
    let shipper = shipper_config(&config, &host).map_err(ComponentError::Setting)?;
    let stream_id = match cursor.sink_state().and_then(|s| parse_state(s)) {
        Some(id) => id,
        None => {
            let id = transport::new_stream_id();
            let acked = cursor.acked();
            cursor
                .ack(acked, Some(encode_state(&id)))
                .map_err(ComponentError::Journal)?;
            id
        }
    };
    let shipper = ShipperConfig {
        stream_id: stream_id.clone(),
        ..shipper
    };
    let drain_timeout = config.drain_timeout.0;
    let route = Route::new(&config.route);
    let sink_name = name.clone();
    std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ComponentError::io("cannot start the sink's runtime", e))?;
            let mut source = CursorSource {
                route,
                cursor,
                state: encode_state(&stream_id),
                stats: stats.clone(),
            };
            let ship_stats = ShipStats::default();
            let mut shutdown = shutdown;
            let result = runtime.block_on(async {
                let shipping = ship(&shipper, &mut source, &ship_stats);
                tokio::pin!(shipping);
                tokio::select! {
                    r = &mut shipping => r.map_err(|e| ComponentError::Failed(e.to_string())),
                    _ = async {
                        shutdown.triggered().await;
                        tokio::time::sleep(drain_timeout).await;
                    } => {
                        tracing::warn!(sink = %sink_name, "Shutdown: records not yet forwarded after {drain_timeout:?} stay in the journal for the next start.");
                        Ok(())
                    }
                }
            });
            let raw = ship_stats.raw_bytes.load(Ordering::Relaxed);
            let wire = ship_stats.wire_bytes.load(Ordering::Relaxed);
            tracing::info!(
                sink = %sink_name,
                records = ship_stats.records.load(Ordering::Relaxed),
                batches = ship_stats.batches.load(Ordering::Relaxed),
                raw_bytes = raw,
                wire_bytes = wire,
                skipped = ship_stats.skipped.load(Ordering::Relaxed),
                reconnects = ship_stats.reconnects.load(Ordering::Relaxed),
                "Forward sink stopped: {} raw bytes sent as {} bytes on the wire (ratio {:.2}).",
                raw,
                wire,
                if wire > 0 { raw as f64 / wire as f64 } else { 0.0 }
            );
            result
        })
        .map_err(ComponentError::Thread)
}

/// The shipper settings of a sink config (everything but the stream id).
pub fn shipper_config(config: &ForwardSinkConfig, hostname: &str) -> Result<ShipperConfig, String> {
    if let Some((key, message)) = config.check() {
        return Err(format!("{key}: {message}"));
    }
    let agent_id = config
        .agent_id
        .clone()
        .unwrap_or_else(|| transport::agent_id_from_host(hostname));
    let mut c = ShipperConfig::new(config.to.clone(), agent_id, String::new());
    c.token = transport::load_token(config.token.as_deref(), config.token_file.as_deref())?;
    if let Some(ca) = &config.tls_ca {
        let client = match (&config.tls_cert, &config.tls_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        c.tls = Some(ClientTls {
            config: tls::client_config(ca, client).map_err(|e| e.to_string())?,
            server_name: config.tls_server_name.clone(),
        });
    }
    c.window = config.window;
    c.batch_bytes = config.batch_size.as_usize();
    c.batch_delay = config.batch_delay.0;
    c.compression_level = config.compression_level;
    c.backoff_min = config.backoff_min.0;
    c.backoff_max = config.backoff_max.0;
    c.ack_timeout = config.ack_timeout.0;
    c.load_balance = config.load_balance;
    Ok(c)
}

fn encode_state(stream_id: &str) -> Bytes {
    Bytes::from(format!("stream={stream_id}"))
}

fn parse_state(state: &[u8]) -> Option<String> {
    let id = std::str::from_utf8(state).ok()?.strip_prefix("stream=")?;
    transport::is_valid_stream_id(id).then(|| id.to_string())
}

/// The journal cursor as the shipper's source.
struct CursorSource {
    route: Route,
    cursor: Cursor,
    state: Bytes,
    stats: Arc<SinkStats>,
}

impl BatchSource for CursorSource {
    async fn next_entries(&mut self, max: usize) -> Result<Vec<Entry>, String> {
        self.cursor
            .next_batch(max.min(READ_MAX))
            .await
            .map_err(|e| e.to_string())
    }

    async fn ack(&mut self, seq: u64) -> Result<(), String> {
        let before = self.cursor.acked();
        self.cursor
            .ack_async(seq, Some(self.state.clone()))
            .await
            .map_err(|e| e.to_string())?;
        self.stats
            .records
            .fetch_add(seq.saturating_sub(before), Ordering::Relaxed);
        Ok(())
    }

    fn rewind(&mut self) {
        self.cursor.rewind();
    }

    fn takes(&self, entry: &Entry) -> bool {
        self.route.takes(&entry.record)
    }

    fn takes_all(&self) -> bool {
        self.route.takes_all()
    }

    fn acked(&self) -> u64 {
        self.cursor.acked()
    }

    fn finished(&self) -> bool {
        self.cursor.is_drained()
    }

    fn newest(&self) -> u64 {
        self.cursor.journal_durable_seq()
    }

    async fn restream(&mut self, stream_id: &str) -> Result<(), String> {
        self.stats.welcome_refused.fetch_add(1, Ordering::Relaxed);
        self.state = encode_state(stream_id);
        self.cursor
            .ack_async(self.cursor.acked(), Some(self.state.clone()))
            .await
            .map_err(|e| format!("cannot store the new stream id: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip() {
        let id = transport::new_stream_id();
        assert_eq!(parse_state(&encode_state(&id)), Some(id));
        assert_eq!(parse_state(b"stream=../x"), None);
        assert_eq!(parse_state(b"garbage"), None);
    }
}
