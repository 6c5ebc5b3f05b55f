//! GELF over UDP (the Graylog wire format): each GELF JSON message compressed (zlib like
//! graypy, gzip, or none) and, if larger than the chunk size, split into chunks:
//! `0x1e 0x0f`, an 8-byte message id, the sequence number and the sequence count (one byte
//! each), then the data. At most [`MAX_CHUNKS`] chunks; a larger message is not sent and the
//! write fails (the worker counts it). Runs on the log worker thread.

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::Compression as Level;
use flate2::write::{GzEncoder, ZlibEncoder};

use super::Sink;
use crate::logging::Entry;

/// The most chunks a GELF message may have (GELF spec).
pub const MAX_CHUNKS: usize = 128;

/// Chunk header: magic (2), message id (8), sequence number (1), sequence count (1).
const CHUNK_HEADER: usize = 12;

/// Compression of each GELF UDP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// zlib (RFC 1950), what graypy sends.
    #[default]
    Zlib,
    /// gzip (RFC 1952).
    Gzip,
    /// Plain JSON.
    None,
}

/// Sends GELF messages over UDP.
///
/// ```no_run
/// use quill::logging::sinks::{Compression, GelfUdpSink};
/// let sink = GelfUdpSink::new("graylog.internal:12201")?
///     .compression(Compression::Gzip)
///     .chunk_size(8154);
/// # drop(sink);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct GelfUdpSink {
    socket: UdpSocket,
    target: SocketAddr,
    compression: Compression,
    chunk_size: usize,
    payload: Vec<u8>,
    packet: Vec<u8>,
    id_seed: u64,
    id_counter: u64,
}

impl GelfUdpSink {
    /// Default data bytes per chunk (graypy's WAN default: fits a 1500-byte MTU).
    pub const DEFAULT_CHUNK_SIZE: usize = 1420;

    /// A sink to `addr` (resolved once, first address), zlib compression, 1420-byte chunks.
    pub fn new(addr: impl ToSocketAddrs) -> io::Result<GelfUdpSink> {
        let target = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")
        })?;
        let bind: SocketAddr = if target.is_ipv4() {
            "0.0.0.0:0".parse().map_err(io::Error::other)?
        } else {
            "[::]:0".parse().map_err(io::Error::other)?
        };
        let socket = UdpSocket::bind(bind)?;
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let id_seed = splitmix64(
            nanos
                ^ (u64::from(std::process::id()) << 32)
                ^ INSTANCE.fetch_add(1, Ordering::Relaxed),
        );
        Ok(GelfUdpSink {
            socket,
            target,
            compression: Compression::default(),
            chunk_size: GelfUdpSink::DEFAULT_CHUNK_SIZE,
            payload: Vec::with_capacity(2048),
            packet: Vec::with_capacity(GelfUdpSink::DEFAULT_CHUNK_SIZE + CHUNK_HEADER),
            id_seed,
            id_counter: 0,
        })
    }

    /// Compression of each message.
    pub fn compression(mut self, compression: Compression) -> GelfUdpSink {
        self.compression = compression;
        self
    }

    /// Data bytes per chunk (at least 1; the datagram adds a 12-byte header). Graylog accepts
    /// datagrams up to 8192 bytes.
    pub fn chunk_size(mut self, bytes: usize) -> GelfUdpSink {
        self.chunk_size = bytes.max(1);
        self
    }

    /// The address messages go to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    fn next_message_id(&mut self) -> [u8; 8] {
        self.id_counter = self.id_counter.wrapping_add(1);
        splitmix64(self.id_seed ^ self.id_counter).to_be_bytes()
    }

    /// Compresses `gelf` into `self.payload`.
    fn compress(&mut self, gelf: &[u8]) -> io::Result<()> {
        self.payload.clear();
        let buffer = std::mem::take(&mut self.payload);
        self.payload = match self.compression {
            Compression::None => {
                let mut b = buffer;
                b.extend_from_slice(gelf);
                b
            }
            Compression::Zlib => {
                let mut z = ZlibEncoder::new(buffer, Level::fast());
                z.write_all(gelf)?;
                z.finish()?
            }
            Compression::Gzip => {
                let mut z = GzEncoder::new(buffer, Level::fast());
                z.write_all(gelf)?;
                z.finish()?
            }
        };
        Ok(())
    }
}

impl Sink for GelfUdpSink {
    fn write(&mut self, _entry: &Entry, gelf: &[u8]) -> io::Result<()> {
        self.compress(gelf)?;
        if self.payload.len() <= self.chunk_size {
            self.socket.send_to(&self.payload, self.target)?;
            return Ok(());
        }
        let count = self.payload.len().div_ceil(self.chunk_size);
        if count > MAX_CHUNKS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "GELF message of {} bytes needs {count} chunks of {}, more than {MAX_CHUNKS}",
                    self.payload.len(),
                    self.chunk_size
                ),
            ));
        }
        let id = self.next_message_id();
        for (seq, data) in self.payload.chunks(self.chunk_size).enumerate() {
            self.packet.clear();
            self.packet.extend_from_slice(&[0x1e, 0x0f]);
            self.packet.extend_from_slice(&id);
            self.packet.push(seq as u8);
            self.packet.push(count as u8);
            self.packet.extend_from_slice(data);
            self.socket.send_to(&self.packet, self.target)?;
        }
        Ok(())
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
