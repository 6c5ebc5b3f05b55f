//! Where GELF lines go: the [`Sink`] trait and its implementations. Sinks run only on the
//! log worker thread, so they may block on I/O; the worker calls [`Sink::flush`] after each
//! batch of entries.
//!
//! - [`WriterSink`]: any `io::Write` (stderr, stdout, a buffer), one JSON line per entry.
//! - [`FileSink`]: a file, rotated by size.
//! - [`AgentSink`]: a Quill agent's syslog source over TCP or a unix socket (RFC 5424 with
//!   RFC 6587 octet counting, or plain lines).
//! - [`GelfUdpSink`]: GELF over UDP to Graylog or a Quill GELF input, compressed and chunked.

mod agent;
mod file;
mod gelf_udp;

use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex};

pub use agent::{AgentAddr, AgentSink, Framing, Payload};
pub use file::FileSink;
pub use gelf_udp::{Compression, GelfUdpSink, MAX_CHUNKS};

use super::Entry;

/// A destination for encoded entries.
pub trait Sink: Send + 'static {
    /// Writes one entry; `gelf` is its GELF JSON encoding (no trailing newline).
    fn write(&mut self, entry: &Entry, gelf: &[u8]) -> io::Result<()>;

    /// Pushes buffered output to the destination. Called after every batch.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// GELF JSON lines (newline-terminated) to any writer, buffered between flushes.
pub struct WriterSink<W: Write + Send + 'static> {
    out: BufWriter<W>,
}

impl<W: Write + Send + 'static> WriterSink<W> {
    /// Writes lines to `writer`.
    pub fn new(writer: W) -> WriterSink<W> {
        WriterSink {
            out: BufWriter::with_capacity(64 * 1024, writer),
        }
    }
}

impl WriterSink<io::Stderr> {
    /// GELF lines on standard error.
    pub fn stderr() -> WriterSink<io::Stderr> {
        WriterSink::new(io::stderr())
    }
}

impl WriterSink<io::Stdout> {
    /// GELF lines on standard output.
    pub fn stdout() -> WriterSink<io::Stdout> {
        WriterSink::new(io::stdout())
    }
}

impl<W: Write + Send + 'static> Sink for WriterSink<W> {
    fn write(&mut self, _entry: &Entry, gelf: &[u8]) -> io::Result<()> {
        self.out.write_all(gelf)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// An in-memory byte buffer shared between clones, for tests and examples
/// (`WriterSink::new(buffer.clone())`).
#[derive(Clone, Default, Debug)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// A copy of everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        match self.0.lock() {
            Ok(b) => b.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock() {
            Ok(mut b) => b.extend_from_slice(buf),
            Err(poisoned) => poisoned.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
