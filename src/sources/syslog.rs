//! The `syslog` source: syslog messages over UDP, TCP and unix datagram sockets, never rate-limited.
//!
//! UDP and unix datagrams are journaled byte-exact, one record per datagram; when the journal is
//! full they are counted as dropped (they cannot wait). TCP accepts RFC 6587 octet counting
//! (`LEN SP MSG`) and LF-delimited framing, detected per message; a connection is read only as fast
//! as the journal accepts (backpressure). Messages longer than `max_message_bytes` are kept
//! truncated and flagged. A malformed frame closes only its connection, with a log line naming the
//! peer. Parsing the syslog header happens later, at the sinks.
//!
//! This module touches its sockets and the journal's append side, nothing else.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram};
use tokio::task::JoinSet;

use crate::config::SyslogSourceConfig;
use crate::journal::{AppendBatch, Appender, TryAppendError};
use crate::pipeline::{Shutdown, SourceContext};
use crate::record::{Record, RecordFlags, Timestamp};

/// Datagrams taken per journal append at most.
const DATAGRAM_BATCH: usize = 512;
/// Longest octet-count prefix accepted (digits).
const MAX_COUNT_DIGITS: usize = 10;

/// Binds the configured sockets and starts the source task.
pub fn start(
    config: SyslogSourceConfig,
    ctx: SourceContext,
    runtime: &tokio::runtime::Runtime,
) -> Result<tokio::task::JoinHandle<Result<(), String>>, String> {
    let max_message = config.max_message_bytes.as_usize().max(64);
    let udp = match &config.udp {
        Some(addr) => Some(bind_udp(
            addr,
            config.udp_receive_buffer.as_usize(),
            &ctx.name,
        )?),
        None => None,
    };
    let tcp = match &config.tcp {
        Some(addr) => {
            let std_listener = std::net::TcpListener::bind(addr)
                .map_err(|e| format!("cannot listen on tcp {addr}: {e}"))?;
            std_listener
                .set_nonblocking(true)
                .map_err(|e| format!("tcp {addr}: {e}"))?;
            Some(std_listener)
        }
        None => None,
    };
    let unix = match &config.unix {
        Some(path) => Some(bind_unix_datagram(path)?),
        None => None,
    };
    let idle_timeout = config.tcp_idle_timeout.0;
    Ok(runtime.spawn(async move {
        let mut tasks = JoinSet::new();
        if let Some(sock) = udp {
            let sock = UdpSocket::from_std(sock).map_err(|e| e.to_string())?;
            tasks.spawn(run_udp(sock, ctx.clone(), max_message));
        }
        if let Some(l) = tcp {
            let l = TcpListener::from_std(l).map_err(|e| e.to_string())?;
            tasks.spawn(run_tcp(l, ctx.clone(), max_message, idle_timeout));
        }
        if let Some(u) = unix {
            let u = UnixDatagram::from_std(u).map_err(|e| e.to_string())?;
            tasks.spawn(run_unix_datagram(u, ctx.clone(), max_message));
        }
        let mut result = Ok(());
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(format!("syslog task failed: {e}")),
            }
        }
        result
    }))
}

fn bind_udp(addr: &str, recv_buffer: usize, name: &str) -> Result<std::net::UdpSocket, String> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|e| format!("invalid udp address `{addr}`: {e}"))?;
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(|e| format!("udp socket: {e}"))?;
    if let Err(e) = sock.set_recv_buffer_size(recv_buffer) {
        tracing::warn!(source = %name, "Cannot set UDP receive buffer to {recv_buffer} bytes: {e}.");
    }
    let effective = sock.recv_buffer_size().unwrap_or(0);
    tracing::info!(source = %name, udp = %addr, requested = recv_buffer, effective, "UDP receive buffer set (the kernel doubles the request and caps it at net.core.rmem_max).");
    sock.bind(&sa.into())
        .map_err(|e| format!("cannot bind udp {addr}: {e}"))?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("udp {addr}: {e}"))?;
    Ok(sock.into())
}

fn bind_unix_datagram(path: &std::path::Path) -> Result<std::os::unix::net::UnixDatagram, String> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        // Replace a stale socket left by a crash, but never another kind of file.
        if !meta.file_type().is_socket() {
            return Err(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ));
        }
        if std::os::unix::net::UnixDatagram::unbound()
            .and_then(|s| s.connect(path))
            .is_ok()
        {
            return Err(format!("{} is in use by a running process", path.display()));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    let sock = std::os::unix::net::UnixDatagram::bind(path)
        .map_err(|e| format!("cannot bind unix socket {}: {e}", path.display()))?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("unix socket {}: {e}", path.display()))?;
    Ok(sock)
}

fn record(ctx: &SourceContext, raw: Bytes, flags: RecordFlags, now: Timestamp) -> Record {
    Record {
        origin: ctx.origin.clone(),
        received_at: now,
        position: crate::record::Position::None,
        flags,
        raw,
    }
}

/// Journals datagrams without waiting; counts those the journal could not take.
fn journal_datagrams(appender: &Appender, ctx: &SourceContext, records: Vec<Record>) {
    let count = records.len() as u64;
    let bytes: u64 = records.iter().map(|r| r.raw.len() as u64).sum();
    match appender.try_append(AppendBatch {
        records,
        checkpoints: Vec::new(),
    }) {
        Ok(_) => ctx.stats.add(count, bytes),
        Err(TryAppendError::Full(_)) => {
            ctx.stats.dropped.fetch_add(count, Ordering::Relaxed);
        }
        Err(TryAppendError::Journal(e)) => {
            ctx.stats.dropped.fetch_add(count, Ordering::Relaxed);
            tracing::error!(source = %ctx.name, "Cannot journal datagrams: {e}.");
        }
    }
}

async fn run_udp(sock: UdpSocket, ctx: SourceContext, max_message: usize) -> Result<(), String> {
    let appender = ctx.journal.appender();
    let mut shutdown = ctx.shutdown.clone();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return Ok(()),
            r = sock.readable() => r.map_err(|e| e.to_string())?,
        }
        let now = Timestamp::now();
        let mut records = Vec::new();
        while records.len() < DATAGRAM_BATCH {
            match sock.try_recv_from(&mut buf) {
                Ok((n, _peer)) => records.push(datagram_record(&ctx, &buf[..n], max_message, now)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(source = %ctx.name, "UDP receive error: {e}.");
                    break;
                }
            }
        }
        if !records.is_empty() {
            journal_datagrams(&appender, &ctx, records);
        }
    }
}

async fn run_unix_datagram(
    sock: UnixDatagram,
    ctx: SourceContext,
    max_message: usize,
) -> Result<(), String> {
    let appender = ctx.journal.appender();
    let mut shutdown = ctx.shutdown.clone();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return Ok(()),
            r = sock.readable() => r.map_err(|e| e.to_string())?,
        }
        let now = Timestamp::now();
        let mut records = Vec::new();
        while records.len() < DATAGRAM_BATCH {
            match sock.try_recv(&mut buf) {
                Ok(n) => records.push(datagram_record(&ctx, &buf[..n], max_message, now)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(source = %ctx.name, "Unix datagram receive error: {e}.");
                    break;
                }
            }
        }
        if !records.is_empty() {
            journal_datagrams(&appender, &ctx, records);
        }
    }
}

fn datagram_record(ctx: &SourceContext, data: &[u8], max_message: usize, now: Timestamp) -> Record {
    if data.len() > max_message {
        record(
            ctx,
            Bytes::copy_from_slice(&data[..max_message]),
            RecordFlags::TRUNCATED,
            now,
        )
    } else {
        record(ctx, Bytes::copy_from_slice(data), RecordFlags::empty(), now)
    }
}

async fn run_tcp(
    listener: TcpListener,
    ctx: SourceContext,
    max_message: usize,
    idle_timeout: Duration,
) -> Result<(), String> {
    let mut shutdown = ctx.shutdown.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.triggered() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ctx = ctx.clone();
                    connections.spawn(async move {
                        let name = ctx.name.clone();
                        if let Err(e) = serve_tcp(stream, peer, ctx, max_message, idle_timeout).await {
                            tracing::warn!(source = %name, %peer, "Closed syslog connection: {e}.");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(source = %ctx.name, "Accept failed: {e}.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Let connections flush what they have already read, then stop.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(2), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
    Ok(())
}

/// Splits syslog frames out of a TCP byte stream (RFC 6587), detected per message.
#[derive(Debug)]
pub struct FrameDecoder {
    max_message: usize,
    /// Bytes of an over-long frame still to discard.
    skip: usize,
    /// Discarding the rest of an over-long LF-framed message.
    skip_to_lf: bool,
}

/// A frame split out of the stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub data: Bytes,
    pub truncated: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("malformed octet count {0:?}")]
    BadOctetCount(String),
}

impl FrameDecoder {
    pub fn new(max_message: usize) -> FrameDecoder {
        FrameDecoder {
            max_message,
            skip: 0,
            skip_to_lf: false,
        }
    }

    /// Takes the next complete frame out of `buf`, if there is one.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if self.skip > 0 {
            let n = self.skip.min(buf.len());
            buf.advance(n);
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        if self.skip_to_lf {
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    buf.advance(i + 1);
                    self.skip_to_lf = false;
                }
                None => {
                    buf.clear();
                    return Ok(None);
                }
            }
        }
        // Tolerate stray line terminators between frames.
        while matches!(buf.first(), Some(b'\n' | b'\r')) {
            buf.advance(1);
        }
        match buf.first() {
            None => Ok(None),
            Some(b) if b.is_ascii_digit() => self.decode_octet_counted(buf),
            Some(_) => Ok(self.decode_lf(buf)),
        }
    }

    fn decode_octet_counted(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_COUNT_DIGITS {
            return Err(FrameError::BadOctetCount(
                String::from_utf8_lossy(&buf[..digits.min(20)]).into_owned(),
            ));
        }
        if digits == buf.len() {
            return Ok(None);
        }
        if buf[digits] != b' ' {
            return Err(FrameError::BadOctetCount(
                String::from_utf8_lossy(&buf[..(digits + 1).min(buf.len())]).into_owned(),
            ));
        }
        let len: usize = std::str::from_utf8(&buf[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                FrameError::BadOctetCount(String::from_utf8_lossy(&buf[..digits]).into_owned())
            })?;
        let keep = len.min(self.max_message);
        if buf.len() < digits + 1 + keep {
            return Ok(None);
        }
        buf.advance(digits + 1);
        let mut data = buf.split_to(keep).freeze();
        let truncated = len > keep;
        if truncated {
            self.skip = len - keep;
        } else if data.last() == Some(&b'\n') {
            data.truncate(data.len() - 1);
        }
        Ok(Some(Frame { data, truncated }))
    }

    fn decode_lf(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        let limit = buf.len().min(self.max_message + 1);
        match memchr::memchr(b'\n', &buf[..limit]) {
            Some(i) => {
                let mut data = buf.split_to(i + 1).freeze();
                data.truncate(i);
                if data.last() == Some(&b'\r') {
                    data.truncate(i - 1);
                }
                Some(Frame {
                    data,
                    truncated: false,
                })
            }
            None if buf.len() > self.max_message => {
                let data = buf.split_to(self.max_message).freeze();
                self.skip_to_lf = true;
                Some(Frame {
                    data,
                    truncated: true,
                })
            }
            None => None,
        }
    }
}

async fn serve_tcp(
    mut stream: TcpStream,
    peer: SocketAddr,
    ctx: SourceContext,
    max_message: usize,
    idle_timeout: Duration,
) -> Result<(), String> {
    let appender = ctx.journal.appender();
    let mut shutdown: Shutdown = ctx.shutdown.clone();
    let mut decoder = FrameDecoder::new(max_message);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let n = tokio::select! {
            _ = shutdown.triggered() => 0,
            r = tokio::time::timeout(idle_timeout, stream.read_buf(&mut buf)) => match r {
                Err(_) => return Err(format!("idle for {idle_timeout:?}")),
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
                        RecordFlags::TRUNCATED
                    } else {
                        RecordFlags::empty()
                    };
                    records.push(record(&ctx, frame.data, flags, now));
                }
                Ok(None) => break,
                Err(e) => {
                    ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                    failure = Some(format!("{e} from {peer}"));
                    break;
                }
            }
        }
        if n == 0 && failure.is_none() && !buf.is_empty() {
            // The peer closed mid-message: keep what it sent.
            bytes += buf.len() as u64;
            let data = buf.split().freeze();
            records.push(record(&ctx, data, RecordFlags::NO_NEWLINE, now));
        }
        if !records.is_empty() {
            let count = records.len() as u64;
            appender
                .append(AppendBatch {
                    records,
                    checkpoints: Vec::new(),
                })
                .await
                .map_err(|e| e.to_string())?;
            ctx.stats.add(count, bytes);
        }
        if let Some(f) = failure {
            return Err(f);
        }
        if n == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], max: usize) -> (Vec<(String, bool)>, Option<FrameError>) {
        let mut d = FrameDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Feed one byte at a time: framing must not depend on read boundaries.
        for &b in input {
            buf.extend_from_slice(&[b]);
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(f)) => {
                        out.push((String::from_utf8_lossy(&f.data).into_owned(), f.truncated))
                    }
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    #[test]
    fn mixed_framing() {
        let (f, e) = frames(b"<13>hello\n11 <13>world!\n<14>crlf\r\n", 1024);
        assert_eq!(e, None);
        assert_eq!(
            f,
            vec![
                ("<13>hello".into(), false),
                ("<13>world!".into(), false),
                ("<14>crlf".into(), false)
            ]
        );
    }

    #[test]
    fn oversize_is_truncated_and_flagged() {
        let (f, e) = frames(
            b"20 <13>0123456789abcdef<13>x\n<13>aaaaaaaaaaaaaaaaaaaa\n<1>ok\n",
            8,
        );
        assert_eq!(e, None);
        assert_eq!(
            f,
            vec![
                ("<13>0123".into(), true),
                ("<13>x".into(), false),
                ("<13>aaaa".into(), true),
                ("<1>ok".into(), false)
            ]
        );
    }

    #[test]
    fn huge_octet_count_is_an_error() {
        let (_, e) = frames(b"1099511627776 <13>x", 1024);
        assert!(matches!(e, Some(FrameError::BadOctetCount(_))));
        let (_, e) = frames(b"12x<13>", 1024);
        assert!(matches!(e, Some(FrameError::BadOctetCount(_))));
    }
}
