//! Per-line format detection for `format = "auto"`: a few byte checks on the start of the line,
//! no parsing. The chosen parser still validates the whole line.

use memchr::memchr;

use super::{Format, apache, json, syslog};

/// The format a whole line most likely has; `Raw` when nothing fits.
pub fn detect_line(line: &[u8]) -> Format {
    if syslog::looks_like_syslog(line) {
        return Format::Syslog;
    }
    detect_message(line, None).unwrap_or(Format::Raw)
}

/// The format of a message (a whole line, or a syslog MSG sent by `program`).
pub fn detect_message(msg: &[u8], program: Option<&[u8]>) -> Option<Format> {
    if program == Some(b"haproxy") {
        return Some(Format::Haproxy);
    }
    if json::looks_like_json(msg) {
        return Some(Format::Json);
    }
    if apache::error::looks_like_error_log(msg) {
        return Some(Format::Apache);
    }
    // First token `addr:port` followed by ` [` is HAProxy; other access-log shapes are Apache
    // (the caller falls back to HAProxy for HAProxy's CLF, which looks like Apache's).
    let sp = memchr(b' ', msg)?;
    let first = &msg[..sp];
    if first.is_empty() {
        return None;
    }
    if msg.get(sp + 1) == Some(&b'[') && memchr(b':', first).is_some() {
        return Some(Format::Haproxy);
    }
    if msg.starts_with(b"Connect from ") {
        return Some(Format::Haproxy);
    }
    if first.iter().all(|&c| c.is_ascii_graphic()) && memchr::memmem::find(msg, b" [").is_some() {
        return Some(Format::Apache);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects() {
        assert_eq!(
            detect_line(b"<134>Nov 23 01:08:50 haproxy[1]: x"),
            Format::Syslog
        );
        assert_eq!(detect_line(b"127.0.0.1:5 [23/Nov/2026:01:08:50.485] fe be/s 0/0/0/0/0 200 1 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\""), Format::Haproxy);
        assert_eq!(
            detect_line(b"::1:5 [23/Nov/2026:01:08:50.485] fe"),
            Format::Haproxy
        );
        assert_eq!(
            detect_line(b"127.0.0.1 - - [23/Nov/2026:01:08:50 +0000] \"GET / HTTP/1.1\" 200 1"),
            Format::Apache
        );
        assert_eq!(detect_line(b"{\"a\":1}"), Format::Json);
        assert_eq!(
            detect_line(b"[Mon Nov 23 01:08:47.948531 2026] [core:info] x"),
            Format::Apache
        );
        assert_eq!(detect_line(b"hello"), Format::Raw);
    }
}
