//! GELF over HTTP(S) for the `gelf` sink: one `POST` per message (or, with `http_batch` above 1,
//! up to that many newline-delimited messages and `http_batch_bytes` per `POST`: Graylog's bulk
//! body) on a keep-alive connection, up to `window` requests sent ahead of their answers
//! (HTTP/1.1 pipelining) on each of `connections` connections (requests dealt out in turn), answers
//! read in request order.
//!
//! A 2xx delivers the messages of its request (the cursor may pass them). `408`, `429` and 5xx, a reset, a stall
//! past `timeout` or a malformed answer fail the attempt: the supervisor retries from the cursor
//! with backoff, the message is sent again. Any other answer (a 4xx: the receiver will never take
//! this request) passes its messages over, counted in `quill_sink_dropped_total`. A connection the
//! receiver closes, or one that fails, ends the others too: they are reopened and every request not
//! answered yet is sent again.
//!
//! A small HTTP/1.1 client on the sink's own blocking socket: answers with `Content-Length`,
//! chunked bodies or a body up to the close; heads and bodies are capped. Touches its socket only.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::deliver::Transport;
use super::encode_pool::EncodedChunk;
use super::gelf_out::message;
use super::net_out::{self, OutError, Stream, TlsClient};
use crate::config::OutTarget;
use crate::gelf::payload::{self, Compression};
use crate::telemetry::SinkStats;

/// Longest answer head read.
const MAX_HEAD: usize = 64 << 10;
/// Longest answer body read (and discarded).
const MAX_BODY: usize = 1 << 20;

/// The HTTP transport.
pub struct HttpOut {
    addr: String,
    path: String,
    tls: Option<TlsClient>,
    timeout: Duration,
    window: usize,
    /// Messages per request at most.
    batch: usize,
    /// Body bytes of a multi-message request at most.
    batch_bytes: usize,
    gzip: bool,
    /// The connections requests are spread over (empty until the first send; all dropped
    /// together when one of them fails or is closed).
    conns: Vec<Conn>,
    connections: usize,
    request: Vec<u8>,
    body: Vec<u8>,
}

/// What an answer said.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    /// The receiver closes the connection after it.
    close: bool,
}

impl HttpOut {
    pub fn new(
        target: &OutTarget,
        tls: Option<TlsClient>,
        timeout: Duration,
        window: usize,
        (batch, batch_bytes): (usize, usize),
        connections: usize,
        gzip: bool,
    ) -> HttpOut {
        HttpOut {
            addr: target.addr.clone(),
            path: target.path.clone(),
            tls,
            timeout,
            window: window.max(1),
            batch: batch.max(1),
            batch_bytes,
            gzip,
            conns: Vec::new(),
            connections: connections.max(1),
            request: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Sends one request on connection `c` whose body is `messages`, newline-delimited.
    fn write_request<'a>(
        &mut self,
        c: usize,
        mut messages: impl Iterator<Item = &'a [u8]>,
    ) -> Result<(), OutError> {
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        if let Some(first) = messages.next() {
            body.extend_from_slice(first);
        }
        for m in messages {
            body.push(b'\n');
            body.extend_from_slice(m);
        }
        let r = self.write_body(c, &body);
        self.body = body;
        r
    }

    fn write_body(&mut self, c: usize, body: &[u8]) -> Result<(), OutError> {
        let compressed;
        let body = if self.gzip {
            compressed = payload::compress(body, Compression::Gzip);
            &compressed[..]
        } else {
            body
        };
        self.request.clear();
        self.request.extend_from_slice(b"POST ");
        self.request.extend_from_slice(self.path.as_bytes());
        self.request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        self.request.extend_from_slice(self.addr.as_bytes());
        self.request
            .extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        self.request
            .extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        if self.gzip {
            self.request
                .extend_from_slice(b"\r\nContent-Encoding: gzip");
        }
        self.request.extend_from_slice(b"\r\n\r\n");
        let addr = &self.addr;
        let Some(conn) = self.conns.get_mut(c) else {
            return Err(OutError::protocol(addr, "not connected"));
        };
        let io = |e| OutError::io(addr, e);
        if body.len() < 16 << 10 {
            self.request.extend_from_slice(body);
            conn.stream.write_all(&self.request).map_err(io)
        } else {
            conn.stream.write_all(&self.request).map_err(io)?;
            conn.stream.write_all(body).map_err(io)
        }
    }
}

impl Transport for HttpOut {
    fn send(
        &mut self,
        chunks: &[EncodedChunk],
        delivered: &mut usize,
        stats: &SinkStats,
    ) -> Result<(), OutError> {
        let messages: Vec<&[u8]> = chunks
            .iter()
            .flat_map(|chunk| (0..chunk.ends.len()).map(move |i| message(chunk, i)))
            .collect();
        let total = messages.len();
        // Requests sent and not yet answered, oldest first: their connection and their range
        // of `messages`. Each connection answers its own requests in order, so the oldest
        // request is always the next answer of its connection.
        let mut in_flight: VecDeque<(usize, std::ops::Range<usize>)> = VecDeque::new();
        let mut turn = 0;
        while *delivered < total {
            if self.conns.is_empty() {
                for _ in 0..self.connections {
                    let stream = net_out::connect(&self.addr, self.tls.as_ref(), self.timeout)?;
                    self.conns.push(Conn::new(stream));
                }
                in_flight.clear();
            }
            let mut next = in_flight.back().map_or(*delivered, |(_, r)| r.end);
            while next < total && in_flight.len() < self.window * self.connections {
                let end = request_end(&messages, next, self.batch, self.batch_bytes);
                let c = turn % self.connections;
                turn += 1;
                self.write_request(c, messages[next..end].iter().copied())?;
                in_flight.push_back((c, next..end));
                next = end;
            }
            let addr = self.addr.clone();
            let Some((c, answered)) = in_flight.pop_front() else {
                continue;
            };
            for conn in &mut self.conns {
                conn.stream.flush().map_err(|e| OutError::io(&addr, e))?;
            }
            let Some(conn) = self.conns.get_mut(c) else {
                continue;
            };
            let answer = match conn.read_answer(&addr) {
                Ok(a) => a,
                Err(e) => {
                    self.conns.clear();
                    return Err(e);
                }
            };
            match answer.status {
                200..=299 => {}
                408 | 429 | 500..=599 => {
                    self.conns.clear();
                    return Err(OutError::protocol(
                        &addr,
                        format!("answered {} (retried from the cursor)", answer.status),
                    ));
                }
                status => {
                    let n = answered.len();
                    stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
                    tracing::warn!(%addr, status, messages = n, "GELF receiver refused a request for good: its messages dropped (counted).");
                }
            }
            *delivered = answered.end;
            if answer.close {
                // Unanswered requests (on every connection) are sent again on new ones.
                self.conns.clear();
            }
        }
        Ok(())
    }
}

/// Where the request that starts at message `start` ends: at most `batch` messages and, past the
/// first, `batch_bytes` of body.
fn request_end(messages: &[&[u8]], start: usize, batch: usize, batch_bytes: usize) -> usize {
    let mut bytes = messages[start].len();
    let mut end = start + 1;
    while end < messages.len() && end - start < batch {
        bytes += 1 + messages[end].len();
        if bytes > batch_bytes {
            break;
        }
        end += 1;
    }
    end
}

/// A connection and what was read of it ahead of the current answer.
struct Conn {
    stream: Stream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more into `buf`; an end of stream is an error (an answer was expected).
    fn fill(&mut self, addr: &str) -> Result<(), OutError> {
        let mut tmp = [0u8; 8192];
        let n = self
            .stream
            .read(&mut tmp)
            .map_err(|e| OutError::io(addr, e))?;
        if n == 0 {
            return Err(OutError::protocol(
                addr,
                "connection closed before the answer",
            ));
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }

    /// Reads `n` body bytes (discarded).
    fn skip(&mut self, addr: &str, n: usize) -> Result<(), OutError> {
        while self.buf.len() < n {
            self.fill(addr)?;
        }
        self.buf.drain(..n);
        Ok(())
    }

    /// A CRLF-terminated line (without it).
    fn line(&mut self, addr: &str) -> Result<Vec<u8>, OutError> {
        loop {
            if let Some(i) = memchr::memmem::find(&self.buf, b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(OutError::protocol(addr, "answer line too long"));
            }
            self.fill(addr)?;
        }
    }

    fn read_answer(&mut self, addr: &str) -> Result<Answer, OutError> {
        let head_end = loop {
            if let Some(i) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(OutError::protocol(addr, "answer head too long"));
            }
            self.fill(addr)?;
        };
        let head: Vec<u8> = self.buf.drain(..head_end).collect();
        let (answer, body) = parse_head(&head).map_err(|m| OutError::protocol(addr, m))?;
        match body {
            Body::None => {}
            Body::Length(n) if n > MAX_BODY => {
                return Err(OutError::protocol(addr, "answer body too large"));
            }
            Body::Length(n) => self.skip(addr, n)?,
            Body::Chunked => {
                let mut total = 0;
                loop {
                    let line = self.line(addr)?;
                    let size = std::str::from_utf8(&line)
                        .ok()
                        .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
                        .ok_or_else(|| OutError::protocol(addr, "bad chunk size"))?;
                    total += size;
                    if total > MAX_BODY {
                        return Err(OutError::protocol(addr, "answer body too large"));
                    }
                    if size == 0 {
                        while !self.line(addr)?.is_empty() {}
                        break;
                    }
                    self.skip(addr, size + 2)?;
                }
            }
            Body::UntilClose => {
                return Ok(Answer {
                    status: answer.status,
                    close: true,
                });
            }
        }
        Ok(answer)
    }
}

/// How an answer's body is delimited.
#[derive(Debug, PartialEq, Eq)]
enum Body {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

fn parse_head(head: &[u8]) -> Result<(Answer, Body), String> {
    let text = std::str::from_utf8(head).map_err(|_| "answer head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 answer: `{status_line}`"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let mut close = version == "HTTP/1.0";
    let mut body = if status == 204 || status == 304 || status < 200 {
        Body::None
    } else {
        Body::UntilClose
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" if body != Body::None && body != Body::Chunked => {
                let n = value
                    .parse()
                    .map_err(|_| format!("bad content-length `{value}`"))?;
                body = if n == 0 { Body::None } else { Body::Length(n) };
            }
            "transfer-encoding" if value.to_ascii_lowercase().contains("chunked") => {
                body = Body::Chunked;
            }
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    close = true;
                } else if v.contains("keep-alive") {
                    close = false;
                }
            }
            _ => {}
        }
    }
    if status < 200 {
        return Err(format!("unexpected interim answer {status}"));
    }
    Ok((Answer { status, close }, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_hold_batch_messages_and_bytes() {
        let m: Vec<&[u8]> = vec![b"aaaa", b"bb", b"cccccccccc", b"d", b"e"];
        assert_eq!(request_end(&m, 0, 1, 1 << 20), 1);
        assert_eq!(request_end(&m, 0, 3, 1 << 20), 3);
        assert_eq!(request_end(&m, 3, 10, 1 << 20), 5);
        // 4 + 1 + 2 = 7 fits in 8; the 10-byte one would not.
        assert_eq!(request_end(&m, 0, 10, 8), 2);
        // A message longer than the cap goes alone.
        assert_eq!(request_end(&m, 2, 10, 8), 3);
    }

    #[test]
    fn heads() {
        let (a, b) = parse_head(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").unwrap();
        assert_eq!(
            (a, b),
            (
                Answer {
                    status: 202,
                    close: false
                },
                Body::None
            )
        );
        let (a, b) = parse_head(
            b"HTTP/1.1 413 Too Large\r\nContent-Length: 18\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        assert_eq!((a.status, a.close, b), (413, true, Body::Length(18)));
        let (_, b) = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(b, Body::Chunked);
        let (a, b) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert_eq!((a.close, b), (true, Body::UntilClose));
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }
}
