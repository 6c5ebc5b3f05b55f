//! Byte-oriented JSON writing helpers: strings (with escapes; invalid UTF-8 becomes U+FFFD) and
//! numbers, appended to a `Vec<u8>` without intermediate allocation.

const HEX: &[u8; 16] = b"0123456789abcdef";

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Does any byte of `w` need attention (a control byte, `"`, `\\`, DEL, or non-ASCII)?
#[inline]
fn word_needs_care(w: u64) -> bool {
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    (control
        | has_zero(w ^ (LO * b'"' as u64))
        | has_zero(w ^ (LO * b'\\' as u64))
        | has_zero(w ^ (LO * 0x7f))
        | (w & HI))
        != 0
}

/// Length of the prefix of `s` made of printable ASCII other than `"` and `\\` (copied as is).
#[inline]
fn clean_prefix(s: &[u8]) -> usize {
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = u64::from_le_bytes([
            s[i],
            s[i + 1],
            s[i + 2],
            s[i + 3],
            s[i + 4],
            s[i + 5],
            s[i + 6],
            s[i + 7],
        ]);
        if word_needs_care(w) {
            break;
        }
        i += 8;
    }
    while i < s.len() {
        let c = s[i];
        if !(0x20..0x7f).contains(&c) || c == b'"' || c == b'\\' {
            break;
        }
        i += 1;
    }
    i
}

/// Appends `s` as a JSON string literal (with quotes).
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    // Fast path: most values are plain printable ASCII, copied 8 bytes at a time.
    let clean = clean_prefix(s);
    out.extend_from_slice(&s[..clean]);
    if clean == s.len() {
        out.push(b'"');
        return;
    }
    let mut rest = &s[clean..];
    // Slow path: handle one byte that needs care, then go back to the fast scan.
    while let Some(&c) = rest.first() {
        let used = if c < 0x80 {
            write_escaped(out, &rest[..1]);
            1
        } else {
            // One UTF-8 sequence; invalid bytes become U+FFFD as in `String::from_utf8_lossy`.
            let width = match c {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => 1,
            };
            let chunk = &rest[..width.min(rest.len())];
            match std::str::from_utf8(chunk) {
                Ok(_) => {
                    out.extend_from_slice(chunk);
                    chunk.len()
                }
                Err(e) => {
                    out.extend_from_slice("\u{fffd}".as_bytes());
                    e.error_len().unwrap_or(chunk.len()).max(1)
                }
            }
        };
        rest = &rest[used..];
        let clean = clean_prefix(rest);
        out.extend_from_slice(&rest[..clean]);
        rest = &rest[clean..];
    }
    out.push(b'"');
}

/// Escapes valid UTF-8 bytes per RFC 8259.
fn write_escaped(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

/// Appends milliseconds since the epoch as seconds with three decimals (`1700000000.123`).
pub fn write_millis_as_secs(out: &mut Vec<u8>, millis: i64) {
    let mut buf = itoa::Buffer::new();
    if millis < 0 {
        out.push(b'-');
    }
    let m = millis.unsigned_abs();
    out.extend_from_slice(buf.format(m / 1000).as_bytes());
    let frac = m % 1000;
    out.push(b'.');
    out.push(b'0' + (frac / 100) as u8);
    out.push(b'0' + (frac / 10 % 10) as u8);
    out.push(b'0' + (frac % 10) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_make_valid_json(s in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            let v: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(v, String::from_utf8_lossy(&s).into_owned());
        }
    }

    #[test]
    fn fast_path_boundaries() {
        for s in [
            "",
            "a",
            "abcdefgh",
            "abcdefgh\"",
            "abcdefghi\\j",
            "abcdefg\u{7f}",
            "abcdefgh\u{e9}x",
            "\n",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s.as_bytes());
            assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn millis() {
        let mut out = Vec::new();
        write_millis_as_secs(&mut out, 1_700_000_000_005);
        assert_eq!(out, b"1700000000.005");
    }
}
