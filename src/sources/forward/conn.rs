//! One agent connection after its handshake: batches read within the byte budget, decompressed
//! off the reactor, deduplicated against the agent's high-water mark, appended with it, and acked
//! in order once durable.
//!
//! This module touches its connection and the journal's append side.

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use super::{Refusal, Shared, StreamState, checkpoint_key};
use crate::journal::{AppendBatch, Appender, Checkpoint};
use crate::transport::Io;
use crate::transport::batch::{self, BatchError};
use crate::transport::budget::{FrameLimits, read_frame_budgeted};
use crate::transport::frame::{BatchFrame, ErrorCode, Frame, Hello};

pub(super) enum AckJob {
    /// Ack `ack_seq` once journal sequence `journal_seq` is durable.
    Ack {
        journal_seq: u64,
        ack_seq: u64,
    },
    Error(ErrorCode, String),
}

/// Sends acks in order, each once what it covers is durable; then an ERROR, if any.
pub(super) async fn write_acks(
    mut wr: WriteHalf<Box<dyn Io>>,
    mut jobs: mpsc::Receiver<AckJob>,
    appender: Appender,
) {
    let mut out = Vec::with_capacity(64);
    while let Some(job) = jobs.recv().await {
        out.clear();
        match job {
            AckJob::Ack {
                journal_seq,
                ack_seq,
            } => {
                if appender.wait_durable(journal_seq).await.is_err() {
                    return;
                }
                Frame::Ack { last_seq: ack_seq }.encode(&mut out);
            }
            AckJob::Error(code, message) => Frame::Error { code, message }.encode(&mut out),
        }
        // Batch acks that are ready together into one write.
        if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

pub(super) async fn receive_batches(
    shared: &Shared,
    rd: &mut ReadHalf<Box<dyn Io>>,
    hello: &Hello,
    state: &tokio::sync::Mutex<StreamState>,
    acks: &mpsc::Sender<AckJob>,
) -> Result<(), Refusal> {
    let mut shutdown = shared.ctx.shutdown.clone();
    let key = checkpoint_key(&hello.agent_id);
    let limits = FrameLimits {
        max_len: shared.max_frame,
        idle: shared.idle_timeout,
        frame: shared.frame_timeout,
    };
    loop {
        let frame = tokio::select! {
            _ = shutdown.triggered() => return Ok(()),
            f = read_frame_budgeted(rd, limits, &shared.budget) => f?,
        };
        let (batch, frame_held) = match frame {
            None => return Ok(()),
            Some((Frame::Batch(b), held)) => (b, held),
            Some((other, _)) => {
                return Err(Refusal::new(
                    ErrorCode::Malformed,
                    format!("unexpected {} frame", other.name()),
                ));
            }
        };
        check_batch_header(&batch, shared.max_batch, hello.version)?;
        // The decompressed batch is budgeted at its declared size (decompression stops there).
        let deadline = tokio::time::Instant::now() + shared.frame_timeout;
        let _raw_held = shared
            .budget
            .take(batch.raw_len as usize, deadline)
            .await
            .map_err(|e| Refusal::new(ErrorCode::Unavailable, e.to_string()))?;
        // Decompression and decoding are CPU work: off the reactor. The context is made per batch
        // so that idle connections hold none.
        let max_batch = shared.max_batch;
        let decoded = tokio::task::spawn_blocking(move || {
            let mut dec = zstd::bulk::Decompressor::new().map_err(|e| BatchError::Decompress {
                declared: batch.raw_len,
                reason: e.to_string(),
            })?;
            batch::decompress(&mut dec, &batch.compressed, batch.raw_len, max_batch)
                .and_then(|raw| batch::decode_records(raw, batch.count))
                .map(|records| (batch.first_seq, batch.last_seq, records))
        })
        .await
        .map_err(|e| Refusal::new(ErrorCode::Unavailable, format!("decoder failed: {e}")))?;
        drop(frame_held);
        let (first_seq, last_seq, mut records) = decoded.map_err(|e| match e {
            BatchError::InvalidCategory(_) => {
                Refusal::new(ErrorCode::InvalidCategory, e.to_string())
            }
            BatchError::TooLarge { .. } => Refusal::new(ErrorCode::BatchTooLarge, e.to_string()),
            _ => Refusal::new(ErrorCode::Malformed, e.to_string()),
        })?;

        let mut st = state.lock().await;
        if st.stream_id != hello.stream_id {
            if !st.stream_id.is_empty() {
                tracing::info!(source = %shared.ctx.name, agent = %hello.agent_id, "Agent started a new journal stream {} (its data was reset, or another agent uses the same id); previous stream {} ended at sequence {}.", hello.stream_id, st.stream_id, st.high_water);
            }
            st.stream_id = hello.stream_id.clone();
            st.high_water = 0;
        }
        let range = last_seq - first_seq + 1;
        let gaps = records.len() as u64 != range;
        let job = if last_seq <= st.high_water {
            // A replay: ack once the append that first held it is durable.
            AckJob::Ack {
                journal_seq: st.journal_seq,
                ack_seq: last_seq,
            }
        } else if gaps && first_seq <= st.high_water {
            // Records of a routed batch carry no sequence of their own: which of them are at or
            // below the mark is not known. The agent skips what the mark covers at its HELLO, so
            // this needs the mark to have moved since (another connection of the agent): a new
            // HELLO learns the mark and resumes after it.
            return Err(Refusal::new(
                ErrorCode::Unavailable,
                format!(
                    "routed batch {first_seq}..={last_seq} straddles the high-water mark {}: reconnect",
                    st.high_water
                ),
            ));
        } else {
            let held = st.high_water.saturating_sub(first_seq - 1) as usize;
            if first_seq > st.high_water + 1 && st.high_water > 0 {
                tracing::info!(source = %shared.ctx.name, agent = %hello.agent_id, "Agent resumes at sequence {first_seq} after {}: the records between went elsewhere.", st.high_water);
            }
            records.drain(..held.min(records.len()));
            let count = records.len() as u64;
            let bytes: u64 = records.iter().map(|r| r.raw.len() as u64).sum();
            let receipt = shared
                .appender
                .append(AppendBatch {
                    records,
                    checkpoints: vec![Checkpoint {
                        key: key.clone(),
                        value: Bytes::from(format!("{} {last_seq}", hello.stream_id)),
                    }],
                })
                .await
                .map_err(|e| Refusal::new(ErrorCode::Unavailable, format!("journal: {e}")))?;
            st.high_water = last_seq;
            st.journal_seq = receipt.last_seq;
            shared.ctx.stats.add(count, bytes);
            AckJob::Ack {
                journal_seq: receipt.last_seq,
                ack_seq: last_seq,
            }
        };
        drop(st);
        if acks.send(job).await.is_err() {
            return Err(Refusal {
                code: ErrorCode::Unavailable,
                message: "connection lost while acking".into(),
                tell_peer: false,
            });
        }
    }
}

fn check_batch_header(b: &BatchFrame, max_batch: usize, version: u16) -> Result<(), Refusal> {
    if b.first_seq == 0 || b.last_seq < b.first_seq {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            format!("bad sequence range {}..={}", b.first_seq, b.last_seq),
        ));
    }
    let range = b.last_seq - b.first_seq + 1;
    let count = u64::from(b.count);
    // Version 1: contiguous ranges; version 2: the taken records of the range (at least one).
    let fits = if version >= 2 {
        (1..=range).contains(&count)
    } else {
        count == range
    };
    if !fits {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            format!(
                "sequence range {}..={} does not match {} records",
                b.first_seq, b.last_seq, b.count
            ),
        ));
    }
    if b.raw_len as usize > max_batch {
        return Err(Refusal::new(
            ErrorCode::BatchTooLarge,
            format!(
                "batch declares {} decompressed bytes, more than the maximum of {max_batch}",
                b.raw_len
            ),
        ));
    }
    Ok(())
}
