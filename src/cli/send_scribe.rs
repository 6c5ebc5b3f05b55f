//! `quill send --protocol scribe`: send lines to a Scribe server (Facebook Scribe, or Quill's
//! `scribe` source) the way `scribe_cat` does: every line, with its newline, is one `LogEntry` of
//! `--category` (a line over 1 MiB goes as 1 MiB pieces); lines are sent in `Log()` calls of up to 1000 entries (or 1 MiB) over the framed
//! transport and binary protocol. `TRY_LATER` is retried with backoff (the server had no room); a
//! lost connection is reconnected and the call resent, up to `--retries` failures in a row — a
//! Scribe server cannot tell a resend from new data, so a connection lost after the server took
//! the call may duplicate it (Scribe's own semantics). Exits 0 once every call was answered `OK`.
//!
//! This touches only its inputs and its socket.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;

use crate::lines::{BoundedLines, Overlong};
use crate::wire::thrift::{self, LogEntry};

/// Entries per `Log()` call at most.
const BATCH_ENTRIES: usize = 1000;
/// Bytes per call at most (before a line that does not fit).
const BATCH_BYTES: usize = 1 << 20;
/// The longest entry: a longer line goes as entries of this size (their messages joined are the
/// line again).
const MAX_ENTRY: usize = 1 << 20;

/// Sends every line of `inputs` to `to` as entries of `category`; returns the number sent.
pub fn send(
    to: &str,
    category: &str,
    inputs: Vec<(String, Box<dyn Read + Send>)>,
    retries: u32,
) -> anyhow::Result<u64> {
    let mut client = Client {
        to: to.to_string(),
        conn: None,
        seq: 0,
        retries: retries.max(1),
    };
    let cat = Bytes::copy_from_slice(category.as_bytes());
    let mut batch: Vec<LogEntry> = Vec::new();
    let mut bytes = 0;
    let mut sent = 0u64;
    for (name, input) in inputs {
        let reader = BufReader::with_capacity(256 << 10, input);
        let mut lines = BoundedLines::new(reader, MAX_ENTRY, Overlong::Split).keep_cr();
        while let Some(piece) = lines
            .next_line()
            .with_context(|| format!("cannot read {name}"))?
        {
            let mut line = Vec::with_capacity(piece.bytes.len() + 1);
            line.extend_from_slice(piece.bytes);
            if piece.newline {
                line.push(b'\n');
            }
            bytes += line.len();
            batch.push(LogEntry {
                category: cat.clone(),
                message: Bytes::from(line),
            });
            if batch.len() >= BATCH_ENTRIES || bytes >= BATCH_BYTES {
                sent += client.log(&batch)?;
                batch.clear();
                bytes = 0;
            }
        }
    }
    if !batch.is_empty() {
        sent += client.log(&batch)?;
    }
    Ok(sent)
}

struct Client {
    to: String,
    conn: Option<TcpStream>,
    seq: i32,
    retries: u32,
}

impl Client {
    /// One `Log()` call, retried until `OK`.
    fn log(&mut self, entries: &[LogEntry]) -> anyhow::Result<u64> {
        let mut failures = 0;
        let mut backoff = Duration::from_millis(50);
        loop {
            self.seq = self.seq.wrapping_add(1);
            let mut call = Vec::new();
            thrift::encode_log_call(&mut call, self.seq, entries);
            match self.call(&call) {
                Ok(code) if code == thrift::RESULT_OK => return Ok(entries.len() as u64),
                Ok(_) => {
                    // TRY_LATER: the server is full; wait and resend (not a failure).
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    self.conn = None;
                    failures += 1;
                    if failures >= self.retries {
                        bail!("{}: {e:#}", self.to);
                    }
                    eprintln!("quill send: {}: {e:#}; retrying", self.to);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn call(&mut self, frame: &[u8]) -> anyhow::Result<i32> {
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.to).context("cannot connect")?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            self.conn = Some(s);
        }
        let Some(s) = self.conn.as_mut() else {
            bail!("not connected");
        };
        s.write_all(frame)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > 1 << 20 {
            bail!("reply of {len} bytes is not a Scribe reply");
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body)?;
        Ok(thrift::decode_log_reply(&Bytes::from(body))?)
    }
}
