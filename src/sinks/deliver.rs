//! The delivery loop of the network sinks (`gelf`, `syslog`): read the journal through the
//! sink's cursor, keep what its route takes, pass it through the byte join when `[bytes]` is
//! configured, encode it ([`Encoder`]) and hand the messages to a [`Transport`]; the cursor is
//! acknowledged only through the last message the transport reports delivered.
//!
//! Delivered means what the transport can know: an HTTP 2xx, a TCP/TLS write flushed to the
//! kernel, a UDP datagram sent. A stream transport with no application acknowledgement (GELF
//! TCP, syslog TCP/TLS) also reports how many of the bytes it wrote last may still be lost
//! ([`Transport::unconfirmed`]: its send queue and the receiver's buffers): the cursor waits for
//! the records those bytes hold. A transport error ends the attempt with what was confirmed
//! before it acknowledged: the supervisor restarts the sink from its cursor with backoff, so
//! what was sent but not confirmed is sent again (at least once across reconnects, never lost).
//! With the byte join, the acknowledgement stays below its replay floor as in the file sink, so
//! after a restart records delivered past the floor are sent again too.
//!
//! Touches the sink's journal cursor and stats; all I/O is the transport's.

use std::collections::VecDeque;
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

    /// Of the bytes `send` delivered on this connection, how many at the end the receiver may
    /// still lose; `idle`: no records are waiting to be sent. 0 (the default) when delivery is the
    /// receiver's own acknowledgement; after `send` failed, a stream answers `u64::MAX` (its
    /// queue was lost with the connection: nothing more is confirmed).
    fn unconfirmed(&mut self, _idle: bool) -> u64 {
        0
    }

    /// The attempt ends without an error: gives what was written a bounded chance to reach the
    /// receiver before [`Transport::unconfirmed`] is asked a last time.
    fn settle(&mut self) {}
}

/// Records delivered but not yet confirmed, oldest first: (bytes delivered through the record
/// in this attempt, its journal seq).
#[derive(Default)]
struct Unconfirmed {
    records: VecDeque<(u64, u64)>,
    written: u64,
}

impl Unconfirmed {
    fn push(&mut self, bytes: usize, seq: u64) {
        self.written += bytes as u64;
        self.records.push_back((self.written, seq));
    }

    /// Drops the records the transport confirms; returns the seq the cursor must stay below.
    fn confirm(&mut self, unconfirmed: u64) -> Option<u64> {
        let confirmed = self.written.saturating_sub(unconfirmed);
        while self
            .records
            .front()
            .is_some_and(|&(end, _)| end <= confirmed)
        {
            self.records.pop_front();
        }
        self.records.front().map(|&(_, seq)| seq)
    }
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
        let mut pending = Unconfirmed::default();
        // The highest seq the cursor may pass once no record before it is unconfirmed.
        let mut ackable = 0;
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
                let sizes = chunks
                    .iter()
                    .flat_map(|c| (0..c.ends.len()).map(|i| c.line_range(i).len()));
                for (size, joined) in sizes.zip(&batch).take(delivered) {
                    pending.push(size, joined.entry.seq);
                }
                encoder.recycle(chunks);
                self.stats
                    .records
                    .fetch_add(delivered as u64, Ordering::Relaxed);
                if delivered == batch.len() {
                    self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                }
                if delivered > 0 {
                    ackable = ackable.max(batch[delivered - 1].entry.seq);
                }
                if let Err(e) = sent {
                    // A stream transport confirms nothing more after a failure (see
                    // `Transport::unconfirmed`); what an HTTP receiver answered 2xx stays acked.
                    self.confirm(&mut pending, transport, false, ackable)?;
                    return Err(e);
                }
                ready = batch;
                ready.clear();
            }
            // Records read after the last one delivered were not taken: done for this sink once
            // the join holds nothing older.
            if let Some(seq) = read_through
                && written_through.is_none_or(|w| w < seq)
                && join::holds_nothing(self.join.as_ref())
            {
                ackable = ackable.max(seq);
            }
            let done = drained || stopping;
            if done {
                transport.settle();
            }
            let idle = done || read_through.is_none();
            self.confirm(&mut pending, transport, idle, ackable)?;
            if done {
                return Ok(());
            }
        }
    }

    /// Acknowledges through `ackable`, staying below the first record `transport` does not
    /// confirm yet.
    fn confirm(
        &mut self,
        pending: &mut Unconfirmed,
        transport: &mut dyn Transport,
        idle: bool,
        ackable: u64,
    ) -> Result<(), OutError> {
        let below = pending.confirm(transport.unconfirmed(idle));
        self.ack_through(below.map_or(ackable, |seq| ackable.min(seq.saturating_sub(1))))
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

#[cfg(test)]
mod tests {
    use super::Unconfirmed;

    #[test]
    fn the_cursor_waits_for_the_unconfirmed_tail() {
        let mut u = Unconfirmed::default();
        for seq in 1..=10 {
            u.push(100, seq);
        }
        // The last 250 bytes may be lost: records 8, 9, 10 wait.
        assert_eq!(u.confirm(250), Some(8));
        // Nothing confirmed after a failure.
        assert_eq!(u.confirm(u64::MAX), Some(8));
        assert_eq!(u.confirm(0), None);
        u.push(100, 11);
        assert_eq!(u.confirm(100), Some(11));
    }
}
