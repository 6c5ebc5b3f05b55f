//! GELF over UDP on a dedicated thread: `recvmmsg` batches (the syslog source's receiver), chunk
//! reassembly within the configured budgets, then decompression capped at `max_message_bytes`.
//!
//! Every datagram is accounted for: a message is journaled, or counted as lost in reassembly
//! (`chunked_expired`, `chunked_evicted`, `chunked_oversized`), refused for inflating too far
//! (`inflate_refused`), or dropped because the journal was full (`dropped`); the kernel's own
//! drop counter of the socket is read every second into `kernel_dropped`. A payload that does not decompress is kept raw (its parse fails).

use std::borrow::Cow;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{GelfSourceError, GelfStats, trim_end};
use crate::component::SourceContext;
use crate::gelf::chunk::{Assembler, ChunkLimits, is_chunk};
use crate::gelf::payload::{PayloadError, decompress};
use crate::journal::{AppendBatch, TryAppendError};
use crate::record::{RecordFlags, Timestamp};
use crate::sources::syslog::datagram::{Batch, KernelDrops, set_receive_timeout, socket_inode};

/// How long a blocked receive waits before checking for shutdown and expired chunks.
const RECEIVE_TIMEOUT: Duration = Duration::from_millis(200);
/// The largest UDP datagram.
const SLOT: usize = 65536;

/// Starts the receive thread for a bound UDP socket.
pub fn spawn(
    socket: OwnedFd,
    drops: KernelDrops,
    ctx: SourceContext,
    stats: Arc<GelfStats>,
    chunks: ChunkLimits,
    max_message: usize,
) -> Result<JoinHandle<Result<(), GelfSourceError>>, GelfSourceError> {
    set_receive_timeout(&socket, RECEIVE_TIMEOUT).map_err(GelfSourceError::Receive)?;
    std::thread::Builder::new()
        .name(format!("gelf-udp-{}", ctx.name))
        .spawn(move || {
            let inode = socket_inode(&socket);
            let result = receive_loop(socket, inode, &drops, &ctx, stats, chunks, max_message);
            drops.count(inode, &ctx);
            result
        })
        .map_err(GelfSourceError::Thread)
}

fn receive_loop(
    socket: OwnedFd,
    inode: Option<u64>,
    drops: &KernelDrops,
    ctx: &SourceContext,
    stats: Arc<GelfStats>,
    chunks: ChunkLimits,
    max_message: usize,
) -> Result<(), GelfSourceError> {
    let fd = socket.as_raw_fd();
    let appender = ctx.journal.appender();
    let mut batch = Batch::new(SLOT);
    let mut assembler = Assembler::new(chunks);
    let mut last_check = Instant::now() - Duration::from_secs(2);
    loop {
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            drops.count(inode, ctx);
        }
        if ctx.shutdown.is_triggered() {
            return Ok(());
        }
        let received = batch.receive(fd);
        let instant = Instant::now();
        assembler.expire(instant);
        let n = received.map_err(GelfSourceError::Receive)?;
        let now = Timestamp::now();
        let mut records = Vec::with_capacity(n);
        let mut bytes = 0u64;
        for i in 0..n {
            let (datagram, _) = batch.datagram(i);
            let message: Cow<'_, [u8]> = if is_chunk(datagram) {
                match assembler.push(datagram, instant) {
                    Some(m) => Cow::Owned(m),
                    None => continue,
                }
            } else {
                Cow::Borrowed(datagram)
            };
            let (raw, flags) = match decompress(&message, max_message) {
                Ok(m) => (Bytes::copy_from_slice(trim_end(&m)), RecordFlags::empty()),
                Err(PayloadError::TooLarge(..)) => {
                    stats.inflate_refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(PayloadError::Corrupt(..)) => {
                    stats.inflate_corrupt.fetch_add(1, Ordering::Relaxed);
                    ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                    (Bytes::copy_from_slice(&message), RecordFlags::empty())
                }
            };
            if raw.is_empty() {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            bytes += raw.len() as u64;
            records.push(ctx.record(raw, flags, now));
        }
        stats.publish_chunks(&assembler.stats);
        if records.is_empty() {
            continue;
        }
        let count = records.len() as u64;
        match appender.try_append(AppendBatch {
            records,
            checkpoints: Vec::new(),
        }) {
            Ok(_) => ctx.stats.add(count, bytes),
            Err(TryAppendError::Full(_)) => {
                ctx.stats.dropped.fetch_add(count, Ordering::Relaxed);
                appender.note_dropped(count);
            }
            Err(TryAppendError::Journal(e)) => {
                ctx.stats.dropped.fetch_add(count, Ordering::Relaxed);
                return Err(GelfSourceError::Journal(e));
            }
        }
    }
}
