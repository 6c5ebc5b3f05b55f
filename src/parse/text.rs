//! Byte-level helpers shared by the parsers: numbers, dates, escape decoding.
//!
//! Pure functions over byte slices; nothing here allocates except the decoders that append into a
//! caller-supplied buffer.

use super::tz::LogZone;

/// Parses an unsigned decimal number (no sign, at most 18 digits).
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 18 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

/// Parses a decimal number with an optional leading `+` or `-`.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    match b.first()? {
        b'-' => parse_u64(&b[1..]).map(|v| -(v as i64)),
        b'+' => parse_u64(&b[1..]).map(|v| v as i64),
        _ => parse_u64(b).map(|v| v as i64),
    }
}

/// `Jan`..`Dec` to 1..12.
pub fn month(b: &[u8]) -> Option<u32> {
    const M: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    if b.len() != 3 {
        return None;
    }
    M.iter().position(|m| m[..] == *b).map(|i| i as u32 + 1)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year of a millisecond timestamp (UTC).
pub fn year_of_millis(ms: i64) -> i64 {
    let days = ms.div_euclid(86_400_000);
    // civil_from_days, year only
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

fn two(b: &[u8], i: usize) -> Option<u32> {
    let a = *b.get(i)?;
    let c = *b.get(i + 1)?;
    if a.is_ascii_digit() && c.is_ascii_digit() {
        Some(u32::from(a - b'0') * 10 + u32::from(c - b'0'))
    } else {
        None
    }
}

/// Milliseconds since the epoch from civil fields, validating ranges.
pub fn civil_to_millis(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 || ms > 999
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(
        ((days * 24 + i64::from(h)) * 60 + i64::from(mi)) * 60_000
            + i64::from(s) * 1000
            + i64::from(ms),
    )
}

/// Parses fractional digits (any count) into milliseconds; returns (millis, digits consumed).
/// An optional `.fff…` at the start of `rest`: its milliseconds and what follows it; `None` for a
/// dot without digits.
fn optional_fraction(rest: &[u8]) -> Option<(u32, &[u8])> {
    match rest.strip_prefix(b".") {
        None => Some((0, rest)),
        Some(r) => {
            let (ms, n) = fraction(r);
            (n > 0).then(|| (ms, &r[n..]))
        }
    }
}

fn fraction(b: &[u8]) -> (u32, usize) {
    let mut n = 0;
    let mut ms = 0u32;
    while n < b.len() && b[n].is_ascii_digit() {
        if n < 3 {
            ms = ms * 10 + u32::from(b[n] - b'0');
        }
        n += 1;
    }
    let mut k = n;
    while k < 3 {
        ms *= 10;
        k += 1;
    }
    (ms, n)
}

/// Parses a `+hhmm`, `-hh:mm` or `Z` zone; returns offset seconds east of UTC.
fn parse_zone(b: &[u8]) -> Option<i64> {
    match b {
        b"Z" | b"z" => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let h = two(rest, 0)?;
            let m = match rest.len() {
                4 => two(rest, 2)?,
                5 if rest[2] == b':' => two(rest, 3)?,
                _ => return None,
            };
            let off = i64::from(h * 3600 + m * 60);
            Some(if *sign == b'-' { -off } else { off })
        }
        _ => None,
    }
}

/// `23/Nov/2026:01:08:50[.485][ +0000]` (HAProxy `%t`/`%tr`/`%trg`, Apache `%t` without brackets).
/// Without a zone, the time is local time in `zone`.
pub fn parse_clf_date(b: &[u8], zone: &LogZone) -> Option<i64> {
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    let d = two(b, 0)?;
    let mo = month(&b[3..6])?;
    let y = parse_u64(&b[7..11])? as i64;
    let h = two(b, 12)?;
    let mi = two(b, 15)?;
    let s = two(b, 18)?;
    if b[14] != b':' || b[17] != b':' {
        return None;
    }
    let (ms, rest) = optional_fraction(&b[20..])?;
    let wall = civil_to_millis(y, mo, d, h, mi, s, ms)?;
    if rest.is_empty() {
        zone.local_to_utc_ms(wall)
    } else if rest[0] == b' ' {
        Some(wall - parse_zone(&rest[1..])? * 1000)
    } else {
        None
    }
}

/// RFC 3339 / ISO 8601 `2026-11-23T01:08:50.486919+00:00`.
pub fn parse_rfc3339(b: &[u8]) -> Option<i64> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
    {
        return None;
    }
    let y = parse_u64(&b[0..4])? as i64;
    let mo = two(b, 5)?;
    let d = two(b, 8)?;
    let h = two(b, 11)?;
    let mi = two(b, 14)?;
    let s = two(b, 17)?;
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (ms, rest) = optional_fraction(&b[19..])?;
    let off = parse_zone(rest)?;
    Some(civil_to_millis(y, mo, d, h, mi, s, ms)? - off * 1000)
}

/// RFC 3164 `Nov 23 01:08:50` (also `Nov  3`): returns millis, guessing the year as the one that
/// puts the date nearest to `reference_ms` (the receive time), read as local time in `zone`: a
/// December line received in January is last year's, a January line received in December next
/// year's.
pub fn parse_bsd_date(b: &[u8], reference_ms: i64, zone: &LogZone) -> Option<i64> {
    if b.len() != 15 || b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let mo = month(&b[0..3])?;
    let d = match (b[4], b[5]) {
        (b' ', c) if c.is_ascii_digit() => u32::from(c - b'0'),
        _ => two(b, 4)?,
    };
    let h = two(b, 7)?;
    let mi = two(b, 10)?;
    let s = two(b, 13)?;
    let ref_local = reference_ms + zone.offset_at(reference_ms) * 1000;
    let y = year_of_millis(ref_local);
    // The reference year, unless that puts the date more than half a year away from the
    // reference (a December line received in January, or the reverse).
    const HALF_YEAR_MS: i64 = 183 * 86_400_000;
    let at = |year: i64| zone.local_to_utc_ms(civil_to_millis(year, mo, d, h, mi, s, 0)?);
    let t = at(y)?;
    if t - reference_ms > HALF_YEAR_MS {
        at(y - 1).or(Some(t))
    } else if reference_ms - t > HALF_YEAR_MS {
        at(y + 1).or(Some(t))
    } else {
        Some(t)
    }
}

/// Apache error log `Mon Nov 23 01:08:47.948531 2026` (local time).
pub fn parse_ctime_date(b: &[u8], zone: &LogZone) -> Option<i64> {
    // Www Mmm dd hh:mm:ss[.ffffff] yyyy
    if b.len() < 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' {
        return None;
    }
    let mo = month(&b[4..7])?;
    let d = match (b[8], b[9]) {
        (b' ', c) if c.is_ascii_digit() => u32::from(c - b'0'),
        _ => two(b, 8)?,
    };
    let h = two(b, 11)?;
    let mi = two(b, 14)?;
    let s = two(b, 17)?;
    let mut rest = &b[19..];
    let mut ms = 0;
    if rest.first() == Some(&b'.') {
        let (f, n) = fraction(&rest[1..]);
        ms = f;
        rest = &rest[1 + n..];
    }
    let rest = rest.strip_prefix(b" ")?;
    let y = parse_u64(rest)? as i64;
    zone.local_to_utc_ms(civil_to_millis(y, mo, d, h, mi, s, ms)?)
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// How a value's bytes are escaped in the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// Apache: `\xhh`, `\"`, `\\`, `\n`, `\t`, `\r`.
    Apache,
    /// HAProxy: `#XX` (hex).
    Hash,
    /// RFC 5424 PARAM-VALUE: `\"`, `\\`, `\]`.
    Sd,
    /// JSON string contents: `\"`, `\\`, `\/`, `\b\f\n\r\t`, `\uXXXX` (with surrogate pairs).
    Json,
    /// An IPv4 address HAProxy wrote with `+X`: eight hex digits (`7F000001` is `127.0.0.1`).
    HexIp,
    /// HAProxy `+E`: RFC 5424 backslash escapes over HAProxy's `#XX` escapes.
    HashSd,
    /// Bytes written as hex digit pairs (CBOR strings of a hex-encoded `+cbor` line).
    Hex,
}

impl Escaping {
    /// The byte that starts an escape; values without it need no decoding.
    pub fn marker(self) -> u8 {
        match self {
            Escaping::Apache | Escaping::Sd | Escaping::Json => b'\\',
            Escaping::Hash => b'#',
            Escaping::HexIp | Escaping::Hex => 0,
            Escaping::HashSd => b'\\',
        }
    }
}

/// `7F000001` → `127.0.0.1`; anything else is kept as it is.
fn hex_ipv4(src: &[u8], out: &mut Vec<u8>) {
    let octets: Option<Vec<u8>> = (src.len() == 8)
        .then(|| {
            src.chunks(2)
                .map(|p| Some(hexval(p[0])? << 4 | hexval(p[1])?))
                .collect()
        })
        .flatten();
    match octets {
        Some(o) => {
            let mut b = itoa::Buffer::new();
            for (i, v) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(b.format(*v).as_bytes());
            }
        }
        None => out.extend_from_slice(src),
    }
}

/// Appends the decoded form of `src` to `out`. Malformed escapes are kept as they are.
pub fn unescape(src: &[u8], esc: Escaping, out: &mut Vec<u8>) {
    match esc {
        Escaping::HexIp => return hex_ipv4(src, out),
        Escaping::HashSd => {
            let mut sd = Vec::with_capacity(src.len());
            unescape(src, Escaping::Sd, &mut sd);
            return unescape(&sd, Escaping::Hash, out);
        }
        Escaping::Hex => {
            for p in src.chunks(2) {
                match (
                    p.first().copied().and_then(hexval),
                    p.get(1).copied().and_then(hexval),
                ) {
                    (Some(a), Some(b)) => out.push(a << 4 | b),
                    _ => out.extend_from_slice(p),
                }
            }
            return;
        }
        _ => {}
    }
    let marker = esc.marker();
    let mut rest = src;
    while let Some(i) = memchr::memchr(marker, rest) {
        out.extend_from_slice(&rest[..i]);
        let after = &rest[i + 1..];
        let (decoded, used): (Option<u8>, usize) = match esc {
            Escaping::Hash => match (
                after.first().copied().and_then(hexval),
                after.get(1).copied().and_then(hexval),
            ) {
                (Some(a), Some(b)) => (Some(a << 4 | b), 2),
                _ => (None, 0),
            },
            Escaping::Apache => match after.first() {
                Some(b'x') => match (
                    after.get(1).copied().and_then(hexval),
                    after.get(2).copied().and_then(hexval),
                ) {
                    (Some(a), Some(b)) => (Some(a << 4 | b), 3),
                    _ => (None, 0),
                },
                Some(b'"') => (Some(b'"'), 1),
                Some(b'\\') => (Some(b'\\'), 1),
                Some(b'n') => (Some(b'\n'), 1),
                Some(b't') => (Some(b'\t'), 1),
                Some(b'r') => (Some(b'\r'), 1),
                _ => (None, 0),
            },
            Escaping::Json => {
                if after.first() == Some(&b'u') {
                    if let Some((ch, used)) = json_unicode(after) {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        rest = &after[used..];
                        continue;
                    }
                }
                match after.first() {
                    Some(c @ (b'"' | b'\\' | b'/')) => (Some(*c), 1),
                    Some(b'b') => (Some(8), 1),
                    Some(b'f') => (Some(12), 1),
                    Some(b'n') => (Some(b'\n'), 1),
                    Some(b'r') => (Some(b'\r'), 1),
                    Some(b't') => (Some(b'\t'), 1),
                    _ => (None, 0),
                }
            }
            Escaping::Sd => match after.first() {
                Some(c @ (b'"' | b'\\' | b']')) => (Some(*c), 1),
                _ => (None, 0),
            },
            Escaping::HexIp | Escaping::Hex | Escaping::HashSd => (None, 0),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[used..];
            }
            None => {
                out.push(marker);
                rest = after;
            }
        }
    }
    out.extend_from_slice(rest);
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 4 {
        return None;
    }
    let mut v = 0u32;
    for &c in &b[..4] {
        v = v << 4 | u32::from(hexval(c)?);
    }
    Some(v)
}

/// `uXXXX` (after the backslash), with a following `\uXXXX` low surrogate if needed; returns the
/// character and the bytes used after the backslash.
fn json_unicode(after: &[u8]) -> Option<(char, usize)> {
    let hi = hex4(&after[1..])?;
    if (0xD800..0xDC00).contains(&hi) {
        if after.get(5) == Some(&b'\\') && after.get(6) == Some(&b'u') {
            let lo = hex4(&after[7..])?;
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Some((char::from_u32(c)?, 11));
            }
        }
        return Some(('\u{fffd}', 5));
    }
    Some((char::from_u32(hi).unwrap_or('\u{fffd}'), 5))
}

/// Parses a time zone offset (`+hh:mm`, `-hhmm`, `+hh`, `UTC`, `Z`, `GMT`) into seconds east of
/// UTC; `None` if it is not one.
pub fn parse_tz_offset(s: &str) -> Option<i32> {
    if matches!(s, "UTC" | "utc" | "Z" | "GMT") {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return None,
    };
    let digits: Vec<u8> = rest.bytes().filter(|c| *c != b':').collect();
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |d: &[u8]| d.iter().fold(0i32, |acc, c| acc * 10 + i32::from(c - b'0'));
    let (h, m) = match digits.len() {
        2 => (num(&digits), 0),
        4 => (num(&digits[..2]), num(&digits[2..])),
        _ => return None,
    };
    (h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60))
}

/// `bytes` as text, invalid UTF-8 replaced by U+FFFD: `String::from_utf8_lossy` with the fast
/// validator first (most log text is valid, and the lossy decoder walks it chunk by chunk).
pub fn utf8_lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            parse_clf_date(b"23/Nov/2026:01:08:50.485", &LogZone::UTC),
            Some(1_795_396_130_485)
        );
        assert_eq!(
            parse_clf_date(b"23/Nov/2026:01:08:50 +0000", &LogZone::UTC),
            Some(1_795_396_130_000)
        );
        assert_eq!(
            parse_clf_date(b"23/Nov/2026:02:08:50 +0100", &LogZone::UTC),
            Some(1_795_396_130_000)
        );
        assert_eq!(
            parse_clf_date(b"23/Nov/2026:02:08:50", &LogZone::fixed(3600)),
            Some(1_795_396_130_000)
        );
        assert_eq!(
            parse_rfc3339(b"2026-11-23T01:08:50.486919+00:00"),
            Some(1_795_396_130_486)
        );
        assert_eq!(
            parse_bsd_date(b"Nov 23 01:08:50", 1_795_396_130_000, &LogZone::UTC),
            Some(1_795_396_130_000)
        );
        assert_eq!(
            parse_ctime_date(b"Mon Nov 23 01:08:50.948531 2026", &LogZone::UTC),
            Some(1_795_396_130_948)
        );
        assert_eq!(year_of_millis(1_795_396_130_000), 2026);
        assert_eq!(year_of_millis(0), 1970);
        assert_eq!(parse_clf_date(b"99/Nov/2026:01:08:50", &LogZone::UTC), None);
    }

    #[test]
    fn bsd_year_nearest_the_receive_time_across_new_year() {
        let la = LogZone::parse("America/Los_Angeles").unwrap();
        let at = |y, mo, d, h| civil_to_millis(y, mo, d, h, 0, 0, 0).unwrap();
        // A December line read in early January (UTC and local) is last year's.
        let received = at(2027, 1, 1, 9); // 01:00 PST on 2027-01-01
        assert_eq!(
            parse_bsd_date(b"Dec 31 23:59:59", received, &la),
            Some(at(2027, 1, 1, 7) + 59 * 60_000 + 59_000)
        );
        // Received at 2027-01-01 02:00Z, which is still 2026-12-31 in Los Angeles: same year.
        assert_eq!(
            parse_bsd_date(b"Dec 31 17:00:00", at(2027, 1, 1, 2), &la),
            Some(at(2027, 1, 1, 1))
        );
        // A January line read in late December (a clock running ahead) is next year's.
        assert_eq!(
            parse_bsd_date(b"Jan  1 00:00:05", at(2026, 12, 31, 23), &LogZone::UTC),
            Some(at(2027, 1, 1, 0) + 5000)
        );
        // Summer time in the zone applies to the guessed date.
        assert_eq!(
            parse_bsd_date(b"Jul  4 12:00:00", at(2026, 7, 4, 19), &la),
            Some(at(2026, 7, 4, 19))
        );
    }

    #[test]
    fn clf_and_ctime_dates_across_dst() {
        let la = LogZone::parse("America/Los_Angeles").unwrap();
        let at = |y, mo, d, h, mi| civil_to_millis(y, mo, d, h, mi, 0, 0).unwrap();
        assert_eq!(
            parse_clf_date(b"08/Mar/2026:01:59:00", &la),
            Some(at(2026, 3, 8, 9, 59))
        );
        assert_eq!(
            parse_clf_date(b"08/Mar/2026:03:00:00", &la),
            Some(at(2026, 3, 8, 10, 0))
        );
        // Explicit offsets never consult the zone.
        assert_eq!(
            parse_clf_date(b"08/Mar/2026:03:00:00 +0000", &la),
            Some(at(2026, 3, 8, 3, 0))
        );
        assert_eq!(
            parse_ctime_date(b"Sun Nov 01 00:59:00.000000 2026", &la),
            Some(at(2026, 11, 1, 7, 59))
        );
        assert_eq!(
            parse_ctime_date(b"Sun Nov 01 02:00:00.000000 2026", &la),
            Some(at(2026, 11, 1, 10, 0))
        );
    }

    #[test]
    fn escapes() {
        let mut out = Vec::new();
        unescape(br#"/a\"b\xc3\xa9\q"#, Escaping::Apache, &mut out);
        assert_eq!(out, "/a\"bé\\q".as_bytes());
        out.clear();
        unescape(b"/a#22b#zz", Escaping::Hash, &mut out);
        assert_eq!(out, b"/a\"b#zz");
        out.clear();
        unescape(br#"a\"\u00e9\ud83d\ude00\n"#, Escaping::Json, &mut out);
        assert_eq!(out, "a\"é😀\n".as_bytes());
    }
}
