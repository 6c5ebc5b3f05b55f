//! Byte-oriented JSON writing helpers: strings (with escapes; invalid UTF-8 becomes U+FFFD) and
//! numbers, appended to a `Vec<u8>` without intermediate allocation.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal (with quotes).
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut rest = s;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                write_escaped(out, valid.as_bytes());
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                write_escaped(out, valid);
                out.extend_from_slice("\u{fffd}".as_bytes());
                let skip = e.error_len().unwrap_or(after.len());
                rest = &after[skip..];
            }
        }
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
    fn millis() {
        let mut out = Vec::new();
        write_millis_as_secs(&mut out, 1_700_000_000_005);
        assert_eq!(out, b"1700000000.005");
    }
}
