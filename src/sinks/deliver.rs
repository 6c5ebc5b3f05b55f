//! The delivery loop of the network sinks (`gelf`, `syslog`): read the journal through the
//! sink's cursor, keep what its route takes, pass it through the byte join when `[bytes]` is
//! configured, encode it ([`Encoder`]) and hand the messages to a [`Transport`]; the cursor is
//! acknowledged only through the last message the transport reports delivered.
//!
//! Delivered means what the transport can know: an HTTP 2xx, a TCP/TLS write flushed to the
//! kernel, a UDP datagram sent. A transport error acknowledges what was delivered before it and
//! ends the attempt with the error: the supervisor restarts the sink from its cursor with
//! backoff, so what was sent but not acknowledged is sent again (at least once across
//! reconnects, never lost). With the byte join, the acknowledgement stays below its replay floor
//! as in the file sink, so after a restart records delivered past the floor are sent again too.
//!
//! Touches the sink's journal cursor and stats; all I/O is the transport's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::encode_pool::EncodedChunk;
use super::net_out::OutError;
use crate::accounting::stream::{JoinStage, Joined};
use crate::component::Shutdown;
use crate::journal::Cursor;
use crate::sinks::join::{self, Reading};
use crate::sinks::route::Route;
use crate::telemetry::SinkStats;

/// Records read from the journal per batch at most.
pub const BATCH: usize = 4096;
/// Longest wait for journal records.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// Turns a batch into messages: record `i` of the batch is message `i` of the chunks, in order
/// (each chunk's lines, see `EncodedChunk::line_range`).
pub trait Encoder {
    fn encode(&mut self, batch: Vec<Joined>) -> (Vec<Joined>, Vec<EncodedChunk>);
    /// Takes chunk buffers back for reuse.
    fn recycle(&mut self, chunks: Vec<EncodedChunk>);
}

/// Sends messages to the receiver.
pub trait Transport {
    /// Sends every message of `chunks` in order, counting in `delivered` how many (from the
    /// first) the receiver has, or passed over for good (counted in `stats.dropped`).
    fn send(
        &mut self,
        chunks: &[EncodedChunk],
        delivered: &mut usize,
        stats: &SinkStats,
    ) -> Result<(), OutError>;
}

/// One attempt of a network sink.
pub struct Delivery {
    pub cursor: Cursor,
    pub stats: Arc<SinkStats>,
    pub route: Route,
    pub join: Option<JoinStage>,
    pub shutdown: Shutdown,
}

impl Delivery {
    /// Delivers until the journal is closed and drained, the sink is stopped, or the transport
    /// fails.
    pub fn run(
        mut self,
        encoder: &mut dyn Encoder,
        transport: &mut dyn Transport,
    ) -> Result<(), OutError> {
        let mut ready = Vec::new();
        loop {
            let stopping = self.shutdown.is_triggered() && !self.cursor.journal_closed();
            let batch = self.cursor.next_batch_blocking(BATCH, IDLE_WAIT)?;
            let drained = batch.is_empty() && self.cursor.is_drained();
            let caught_up = batch.len() < BATCH;
            let read_through = batch.last().map(|e| e.seq);
            let reading = Reading { caught_up, drained };
            join::release(
                batch,
                &self.route,
                self.join.as_mut(),
                reading,
                &self.stats,
                &mut ready,
            );
            let written_through = ready.last().map(|j| j.entry.seq);
            if !ready.is_empty() {
                let (batch, chunks) = encoder.encode(std::mem::take(&mut ready));
                let mut delivered = 0;
                let sent = transport.send(&chunks, &mut delivered, &self.stats);
                let delivered = delivered.min(batch.len());
                let bytes: usize = chunks.iter().map(|c| c.buf.len()).sum();
                encoder.recycle(chunks);
                self.stats
                    .records
                    .fetch_add(delivered as u64, Ordering::Relaxed);
                if delivered == batch.len() {
                    self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                }
                if delivered > 0 {
                    self.ack_through(batch[delivered - 1].entry.seq)?;
                }
                sent?;
                ready = batch;
                ready.clear();
            }
            // Records read after the last one delivered were not taken: done for this sink once
            // the join holds nothing older.
            if let Some(seq) = read_through
                && written_through.is_none_or(|w| w < seq)
                && join::holds_nothing(self.join.as_ref())
            {
                self.ack_through(seq)?;
            }
            if drained || stopping {
                return Ok(());
            }
        }
    }

    /// Acknowledges through `seq`, staying below the byte join's replay floor.
    fn ack_through(&mut self, seq: u64) -> Result<(), OutError> {
        let seq = join::ack_limit(self.join.as_ref(), seq);
        if seq > self.cursor.acked() {
            self.cursor.ack(seq, None)?;
        }
        Ok(())
    }
}
