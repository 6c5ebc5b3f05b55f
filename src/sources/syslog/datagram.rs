//! Datagram receiving (UDP and unix datagram sockets) on a dedicated thread with `recvmmsg(2)`:
//! up to [`BATCH`] datagrams per system call, copied into one buffer per batch and journaled
//! byte-exact, one record per datagram, without waiting. What the journal cannot take is counted
//! (`dropped`); for UDP the kernel's own drop counter for the socket (`/proc/net/udp*`) is read
//! every second (and when the thread stops) into `kernel_dropped`, so received + dropped accounts
//! for every datagram sent. What of a socket's drops is counted already is kept beside the socket
//! ([`KernelDrops`]), so a socket handed to the next instance on reload is counted on, not again.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::component::SourceContext;
use crate::journal::{AppendBatch, TryAppendError};
use crate::record::{RecordFlags, Timestamp};

/// Datagrams received per `recvmmsg` call at most.
pub const BATCH: usize = 128;
/// How long a blocked receive waits before checking for shutdown.
const RECEIVE_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a stopping receive thread keeps journaling what its socket queued.
const DRAIN_AT_STOP: Duration = Duration::from_millis(250);

/// Which kind of datagram socket, for the drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
    Udp,
    Unix,
}

/// How many of a UDP socket's kernel drops (counted since it was bound) are in the source's
/// `kernel_dropped` already; shared by every receive thread that serves the socket.
#[derive(Debug, Clone, Default)]
pub struct KernelDrops(Arc<AtomicU64>);

impl KernelDrops {
    /// Adds the socket's drops not counted yet to `ctx`'s `kernel_dropped`.
    pub(crate) fn count(&self, inode: Option<u64>, ctx: &SourceContext) {
        if let Some(drops) = inode.and_then(udp_socket_drops) {
            let before = self.0.fetch_max(drops, Ordering::Relaxed);
            ctx.stats
                .kernel_dropped
                .fetch_add(drops.saturating_sub(before), Ordering::Relaxed);
        }
    }
}

/// Starts the receive thread for a bound datagram socket; `drops` is the socket's (see
/// [`KernelDrops`]).
pub fn spawn(
    socket: OwnedFd,
    kind: DatagramKind,
    ctx: SourceContext,
    max_message: usize,
    drops: KernelDrops,
) -> Result<JoinHandle<Result<(), String>>, String> {
    set_receive_timeout(&socket, RECEIVE_TIMEOUT).map_err(|e| format!("socket timeout: {e}"))?;
    std::thread::Builder::new()
        .name(format!("dgram-{}", ctx.name))
        .spawn(move || {
            let inode = (kind == DatagramKind::Udp)
                .then(|| socket_inode(&socket))
                .flatten();
            let result = receive_loop(&socket, inode, &drops, &ctx, max_message);
            drops.count(inode, &ctx);
            result
        })
        .map_err(|e| format!("cannot start thread: {e}"))
}

pub(crate) fn set_receive_timeout(socket: &OwnedFd, timeout: Duration) -> std::io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt with a valid fd and a timeval of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The receive buffers and headers `recvmmsg` fills (shared with the `gelf` source).
pub(crate) struct Batch {
    slot: usize,
    buf: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl Batch {
    pub(crate) fn new(slot: usize) -> Batch {
        let mut b = Batch {
            slot,
            buf: vec![0u8; slot * BATCH],
            iovecs: Vec::with_capacity(BATCH),
            headers: Vec::with_capacity(BATCH),
        };
        let base = b.buf.as_mut_ptr();
        for i in 0..BATCH {
            b.iovecs.push(libc::iovec {
                // SAFETY: i * slot stays within buf, which lives as long as the iovecs.
                iov_base: unsafe { base.add(i * slot) }.cast(),
                iov_len: slot,
            });
        }
        for i in 0..BATCH {
            // SAFETY: an all-zero mmsghdr is a valid "no address, no control data" header.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = &mut b.iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
            b.headers.push(h);
        }
        b
    }

    /// Receives at least one datagram; returns how many, 0 when the socket's receive timeout
    /// passed (or a signal interrupted the wait) with nothing to read.
    pub(crate) fn receive(&mut self, fd: i32) -> std::io::Result<usize> {
        for h in &mut self.headers {
            h.msg_len = 0;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: headers point at iovecs that point into buf; all outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            }
        } else {
            Ok(n as usize)
        }
    }

    pub(crate) fn datagram(&self, i: usize) -> (&[u8], bool) {
        let len = (self.headers[i].msg_len as usize).min(self.slot);
        let truncated = self.headers[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        (&self.buf[i * self.slot..i * self.slot + len], truncated)
    }
}

fn receive_loop(
    socket: &OwnedFd,
    inode: Option<u64>,
    drops: &KernelDrops,
    ctx: &SourceContext,
    max_message: usize,
) -> Result<(), String> {
    let fd = socket.as_raw_fd();
    let appender = ctx.journal.appender();
    // A datagram longer than its slot is cut by the kernel (MSG_TRUNC): keep max_message bytes.
    let slot = max_message.clamp(1024, 65536 * 4);
    let mut batch = Batch::new(slot);
    let mut last_drop_check = Instant::now() - Duration::from_secs(2);
    let mut journal_full_since: Option<Instant> = None;
    // After shutdown, what the socket already queued is still journaled (bounded in time).
    let mut drain_until: Option<Instant> = None;
    loop {
        if last_drop_check.elapsed() >= Duration::from_secs(1) {
            last_drop_check = Instant::now();
            drops.count(inode, ctx);
        }
        if ctx.shutdown.is_triggered() {
            let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN_AT_STOP);
            if Instant::now() >= until {
                return Ok(());
            }
        }
        let n = batch
            .receive(fd)
            .map_err(|e| format!("receive failed: {e}"))?;
        if n == 0 {
            if drain_until.is_some() {
                return Ok(());
            }
            continue;
        }
        let now = Timestamp::now();
        let total: usize = (0..n).map(|i| batch.datagram(i).0.len()).sum();
        let mut data = BytesMut::with_capacity(total);
        let mut records = Vec::with_capacity(n);
        for i in 0..n {
            let (bytes, kernel_truncated) = batch.datagram(i);
            let keep = bytes.len().min(max_message);
            data.extend_from_slice(&bytes[..keep]);
            let mut flags = RecordFlags::empty();
            if kernel_truncated || keep < bytes.len() {
                ctx.stats.truncated.fetch_add(1, Ordering::Relaxed);
                flags.insert(RecordFlags::TRUNCATED);
            }
            records.push(ctx.record(data.split_to(keep).freeze(), flags, now));
        }
        let count = records.len() as u64;
        match appender.try_append(AppendBatch {
            records,
            checkpoints: Vec::new(),
        }) {
            Ok(_) => {
                ctx.stats.add(count, total as u64);
                if let Some(since) = journal_full_since.take() {
                    tracing::info!(source = %ctx.name, "Journal accepts datagrams again after {:?}.", since.elapsed());
                }
            }
            Err(TryAppendError::Full(_)) => {
                ctx.stats.dropped.fetch_add(count, Ordering::Relaxed);
                appender.note_dropped(count);
                if journal_full_since.is_none() {
                    journal_full_since = Some(Instant::now());
                    tracing::warn!(source = %ctx.name, "Journal full: counting datagrams that cannot be journaled (dropped_journal_full).");
                }
            }
            Err(TryAppendError::Journal(e)) => {
                ctx.stats.dropped.fetch_add(count, Ordering::Relaxed);
                return Err(format!("cannot journal datagrams: {e}"));
            }
        }
    }
}

pub(crate) fn socket_inode(socket: &OwnedFd) -> Option<u64> {
    // SAFETY: fstat on a valid fd into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(socket.as_raw_fd(), &mut st) };
    (rc == 0).then_some(st.st_ino)
}

/// The kernel's drop counter of the UDP socket with this inode, from /proc/net/udp and udp6.
pub fn udp_socket_drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        drops_for_inode(&text, inode)
    })
}

/// Parses a /proc/net/udp table: column 10 is the inode, the last column the drop counter.
fn drops_for_inode(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 13 || cols[9].parse::<u64>().ok()? != inode {
            return None;
        }
        cols.last()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_udp_drops() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          123: 0100007F:158A 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 424242 2 0000000000000000 17\n";
        assert_eq!(drops_for_inode(table, 424242), Some(17));
        assert_eq!(drops_for_inode(table, 1), None);
    }
}
