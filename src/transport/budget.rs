//! A receiver's memory budget and the frame reader that keeps to it.
//!
//! [`ByteBudget`] is a semaphore over bytes shared by every connection of a receiver: a frame being
//! read holds permits for the buffer it has grown so far (not for the length it declares), and a
//! batch being decompressed holds permits for its declared decompressed size. When the budget is
//! spent, a reader waits for permits at most until its own deadline, then gives up with
//! [`BudgetError::Exhausted`]: a peer that declares much and sends little holds little, and a peer
//! that stalls is cut off by [`read_frame_budgeted`]'s deadlines, returning what it held.
//!
//! This module touches only the stream it is handed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::frame::{Frame, FrameError, read_header};

/// The first step of a frame buffer's growth; it then doubles up to the frame's length.
const FIRST_CHUNK: usize = 64 << 10;

/// Bytes that frames and batches in memory may take, across all connections.
#[derive(Clone, Debug)]
pub struct ByteBudget {
    sem: Arc<Semaphore>,
    total: usize,
}

/// Bytes taken from a [`ByteBudget`]; given back when dropped.
#[derive(Debug, Default)]
pub struct Held {
    permit: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }

    fn merge(&mut self, other: Held) {
        match (&mut self.permit, other.permit) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (_, None) => {}
        }
    }
}

#[derive(Debug, Error)]
pub enum BudgetError {
    #[error("{wanted} bytes exceed the whole memory budget of {total} bytes")]
    TooLarge { wanted: usize, total: usize },
    #[error("memory budget of {total} bytes exhausted: waited {waited:?} for {wanted} bytes")]
    Exhausted {
        wanted: usize,
        total: usize,
        waited: Duration,
    },
}

impl ByteBudget {
    pub fn new(total: usize) -> ByteBudget {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        ByteBudget {
            sem: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The whole budget.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes not held by anyone now.
    pub fn available(&self) -> usize {
        self.sem.available_permits()
    }

    /// Takes `bytes`, waiting until `deadline` at most.
    pub async fn take(&self, bytes: usize, deadline: Instant) -> Result<Held, BudgetError> {
        if bytes == 0 {
            return Ok(Held::default());
        }
        if bytes > self.total || bytes > u32::MAX as usize {
            return Err(BudgetError::TooLarge {
                wanted: bytes,
                total: self.total,
            });
        }
        let start = Instant::now();
        let acquire = self.sem.clone().acquire_many_owned(bytes as u32);
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(permit)) => Ok(Held {
                permit: Some(permit),
            }),
            // The semaphore is never closed; treat it like exhaustion all the same.
            Ok(Err(_)) | Err(_) => Err(BudgetError::Exhausted {
                wanted: bytes,
                total: self.total,
                waited: start.elapsed(),
            }),
        }
    }
}

/// How long a peer may take, and how large its frames may be.
#[derive(Clone, Copy, Debug)]
pub struct FrameLimits {
    /// Largest payload accepted.
    pub max_len: usize,
    /// Time allowed between frames (until the next header is complete).
    pub idle: Duration,
    /// Time allowed for a frame's payload, from the end of its header.
    pub frame: Duration,
}

/// Why a budgeted read failed.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("idle for {0:?}: no frame")]
    Idle(Duration),
    #[error("too slow: {got} of {len} bytes of a frame in {limit:?}")]
    Slow {
        got: usize,
        len: usize,
        limit: Duration,
    },
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

/// Reads the next frame within `limits`, holding budget for its buffer as it grows. The frame's
/// payload stays accounted for as long as the returned [`Held`] lives. `Ok(None)` is a clean end
/// of stream between frames.
pub async fn read_frame_budgeted<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: FrameLimits,
    budget: &ByteBudget,
) -> Result<Option<(Frame, Held)>, ReadError> {
    let header = tokio::time::timeout(limits.idle, read_header(reader, limits.max_len))
        .await
        .map_err(|_| ReadError::Idle(limits.idle))??;
    let Some((ty, len)) = header else {
        return Ok(None);
    };
    let deadline = Instant::now() + limits.frame;
    let mut held = Held::default();
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < len {
        if buf.len() == buf.capacity() {
            let grow = (len - buf.capacity()).min(buf.capacity().max(FIRST_CHUNK));
            held.merge(budget.take(grow, deadline).await?);
            buf.reserve_exact(grow);
        }
        // Never read past the frame, nor past the capacity held for.
        let want = (len - buf.len()).min(buf.capacity() - buf.len());
        let mut limited = (&mut *reader).take(want as u64);
        let n = tokio::time::timeout_at(deadline, limited.read_buf(&mut buf))
            .await
            .map_err(|_| ReadError::Slow {
                got: buf.len(),
                len,
                limit: limits.frame,
            })?
            .map_err(FrameError::Io)?;
        if n == 0 {
            return Err(FrameError::Truncated {
                expected: super::frame::HEADER_LEN + len,
                got: super::frame::HEADER_LEN + buf.len(),
            }
            .into());
        }
    }
    let frame = Frame::decode(ty, Bytes::from(buf))?;
    Ok(Some((frame, held)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frame::BatchFrame;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    const LIMITS: FrameLimits = FrameLimits {
        max_len: 16 << 20,
        idle: Duration::from_millis(200),
        frame: Duration::from_millis(200),
    };

    #[test]
    fn a_frame_holds_its_buffer_until_dropped() {
        let rt = rt();
        let budget = ByteBudget::new(8 << 20);
        let mut out = Vec::new();
        Frame::Batch(BatchFrame {
            first_seq: 1,
            last_seq: 1,
            count: 1,
            raw_len: 10,
            compressed: Bytes::from(vec![7u8; 1 << 20]),
        })
        .encode(&mut out);
        let mut r = &out[..];
        let (frame, held) = rt
            .block_on(read_frame_budgeted(&mut r, LIMITS, &budget))
            .unwrap()
            .unwrap();
        assert!(matches!(frame, Frame::Batch(b) if b.compressed.len() == 1 << 20));
        assert!(held.bytes() >= (1 << 20) + 24 && held.bytes() < (1 << 20) + (64 << 10));
        assert_eq!(budget.available(), (8 << 20) - held.bytes());
        drop(held);
        assert_eq!(budget.available(), 8 << 20);
        assert!(
            rt.block_on(read_frame_budgeted(&mut r, LIMITS, &budget))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_stalled_frame_holds_only_what_arrived_and_is_cut_off() {
        let rt = rt();
        let budget = ByteBudget::new(4 << 20);
        rt.block_on(async {
            let (mut client, mut server) = tokio::io::duplex(1 << 20);
            // Declares 16 MiB, sends 100 bytes, then stalls.
            let mut head = vec![3u8];
            head.extend_from_slice(&(16u32 << 20).to_be_bytes());
            head.extend_from_slice(&[0u8; 100]);
            tokio::io::AsyncWriteExt::write_all(&mut client, &head)
                .await
                .unwrap();
            {
                let reading = read_frame_budgeted(&mut server, LIMITS, &budget);
                tokio::pin!(reading);
                tokio::select! {
                    _ = &mut reading => panic!("finished early"),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                assert_eq!(budget.available(), (4 << 20) - FIRST_CHUNK);
                assert!(matches!(
                    reading.await,
                    Err(ReadError::Slow { got: 100, .. })
                ));
            }
            assert_eq!(budget.available(), 4 << 20);
            // Idle between frames.
            let r = read_frame_budgeted(&mut server, LIMITS, &budget).await;
            assert!(matches!(r, Err(ReadError::Idle(_))));
            drop(client);
        });
    }

    #[test]
    fn an_exhausted_budget_fails_at_the_deadline() {
        let rt = rt();
        let budget = ByteBudget::new(1 << 20);
        rt.block_on(async {
            let all = budget
                .take(1 << 20, Instant::now() + Duration::from_secs(1))
                .await
                .unwrap();
            let r = budget
                .take(1, Instant::now() + Duration::from_millis(20))
                .await;
            assert!(matches!(r, Err(BudgetError::Exhausted { .. })));
            assert!(matches!(
                budget.take(2 << 20, Instant::now()).await,
                Err(BudgetError::TooLarge { .. })
            ));
            drop(all);
            assert!(budget.take(1, Instant::now()).await.is_ok());
        });
    }
}
