//! Apache `%{format}t` with a strftime(3) format: reading the time back from the log.
//!
//! Supported conversions: `%Y %y %m %d %e %H %I %M %S %p %j` (numbers), `%b %h %B` (month names),
//! `%a %A` (day names, skipped), `%z` (offset), `%Z` (`UTC`/`GMT`, other names skipped), `%s`
//! (epoch seconds), the composites `%T %R %D %F %c`, and `%% %n %t`. A format without a date
//! (e.g. `%{%z}t` alone, or only a time) carries no instant and is reported as text. Pure.

use crate::parse::text::civil_to_millis;
use crate::parse::tz::LogZone;

/// What a strftime value said.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Parsed {
    /// The instant, if the format has a full date and time (or `%s`).
    pub timestamp_ms: Option<i64>,
    /// `%z` seen: seconds east of UTC.
    pub offset_secs: Option<i64>,
}

/// How many spaces a value of `fmt` holds (literal spaces and those of `%c`), to find its end in
/// a line. (`%e` before day 10 adds one more; a line with it must not end the value at a space.)
pub fn spaces(fmt: &str) -> usize {
    let b = fmt.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' => n += 1,
            b'%' if b.get(i + 1) == Some(&b'c') => {
                n += 4;
                i += 1;
            }
            b'%' => i += 1,
            _ => {}
        }
        i += 1;
    }
    n
}

#[derive(Default)]
struct Fields {
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    yday: Option<u32>,
    hour: Option<u32>,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    epoch: Option<i64>,
    offset: Option<i64>,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Parses `v` as written by `fmt`; `None` if it does not match.
pub fn parse(fmt: &str, v: &[u8], zone: &LogZone) -> Option<Parsed> {
    let mut f = Fields::default();
    let rest = walk(fmt.as_bytes(), v, &mut f)?;
    if !rest.is_empty() {
        return None;
    }
    let mut out = Parsed {
        timestamp_ms: None,
        offset_secs: f.offset,
    };
    if let Some(e) = f.epoch {
        out.timestamp_ms = Some(e.saturating_mul(1000));
        return Some(out);
    }
    let (Some(y), Some(h)) = (f.year, f.hour) else {
        return Some(out);
    };
    let (mo, d) = match (f.month, f.day, f.yday) {
        (Some(mo), Some(d), _) => (mo, d),
        (_, _, Some(yd)) => {
            let jan1 = civil_to_millis(y, 1, 1, 0, 0, 0, 0)?;
            let t = jan1 + i64::from(yd.checked_sub(1)?) * 86_400_000;
            let (_, mo, d) = ymd(t);
            (mo, d)
        }
        _ => return Some(out),
    };
    let h = match f.pm {
        Some(pm) if h <= 12 => h % 12 + if pm { 12 } else { 0 },
        _ => h,
    };
    let wall = civil_to_millis(y, mo, d, h, f.minute, f.second, 0)?;
    out.timestamp_ms = match f.offset {
        Some(off) => Some(wall - off * 1000),
        None => zone.local_to_utc_ms(wall),
    };
    Some(out)
}

fn ymd(ms: i64) -> (i64, u32, u32) {
    // Civil from days (Howard Hinnant's algorithm).
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn digits(v: &[u8], min: usize, max: usize) -> Option<(i64, &[u8])> {
    let n = v
        .iter()
        .take(max)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if n < min {
        return None;
    }
    let x = v[..n]
        .iter()
        .fold(0i64, |a, c| a * 10 + i64::from(c - b'0'));
    Some((x, &v[n..]))
}

fn letters(v: &[u8]) -> (&[u8], &[u8]) {
    let n = v.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    v.split_at(n)
}

fn walk<'v>(fmt: &[u8], mut v: &'v [u8], f: &mut Fields) -> Option<&'v [u8]> {
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        if c != b'%' {
            v = v.strip_prefix(&[c][..])?;
            i += 1;
            continue;
        }
        let conv = *fmt.get(i + 1)?;
        i += 2;
        let num = |v: &'v [u8], w: usize| digits(v, 1, w);
        v = match conv {
            b'Y' => {
                let (x, r) = digits(v, 4, 4)?;
                f.year = Some(x);
                r
            }
            b'y' => {
                let (x, r) = digits(v, 2, 2)?;
                f.year = Some(if x < 69 { 2000 + x } else { 1900 + x });
                r
            }
            b'm' => {
                let (x, r) = num(v, 2)?;
                f.month = Some(u32::try_from(x).ok()?);
                r
            }
            b'd' | b'e' => {
                let v = if conv == b'e' {
                    v.strip_prefix(b" ").unwrap_or(v)
                } else {
                    v
                };
                let (x, r) = num(v, 2)?;
                f.day = Some(u32::try_from(x).ok()?);
                r
            }
            b'j' => {
                let (x, r) = digits(v, 3, 3)?;
                f.yday = Some(u32::try_from(x).ok()?);
                r
            }
            b'H' | b'I' => {
                let (x, r) = num(v, 2)?;
                f.hour = Some(u32::try_from(x).ok()?);
                r
            }
            b'M' => {
                let (x, r) = num(v, 2)?;
                f.minute = u32::try_from(x).ok()?;
                r
            }
            b'S' => {
                let (x, r) = num(v, 2)?;
                f.second = u32::try_from(x).ok()?.min(59);
                r
            }
            b'p' => {
                let (w, r) = letters(v);
                f.pm = Some(match w.to_ascii_lowercase().as_slice() {
                    b"am" => false,
                    b"pm" => true,
                    _ => return None,
                });
                r
            }
            b'b' | b'h' | b'B' => {
                let (w, r) = letters(v);
                let w = String::from_utf8_lossy(w).to_ascii_lowercase();
                let m = MONTHS.iter().position(|m| {
                    if conv == b'B' {
                        *m == w
                    } else {
                        w.len() == 3 && m.starts_with(&w)
                    }
                })?;
                f.month = Some(m as u32 + 1);
                r
            }
            b'a' | b'A' => {
                let (w, r) = letters(v);
                if w.is_empty() {
                    return None;
                }
                r
            }
            b'Z' => {
                let (w, r) = letters(v);
                if matches!(w, b"UTC" | b"GMT") {
                    f.offset = Some(0);
                }
                r
            }
            b'z' => {
                let sign = match v.first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let (hh, r) = digits(&v[1..], 2, 2)?;
                let r = r.strip_prefix(b":").unwrap_or(r);
                let (mm, r) = digits(r, 2, 2)?;
                f.offset = Some(sign * (hh * 3600 + mm * 60));
                r
            }
            b's' => {
                let (x, r) = digits(v, 1, 18)?;
                f.epoch = Some(x);
                r
            }
            b'T' => walk(b"%H:%M:%S", v, f)?,
            b'R' => walk(b"%H:%M", v, f)?,
            b'D' => walk(b"%m/%d/%y", v, f)?,
            b'F' => walk(b"%Y-%m-%d", v, f)?,
            b'c' => walk(b"%a %b %e %H:%M:%S %Y", v, f)?,
            b'%' => v.strip_prefix(b"%")?,
            b'n' | b't' => {
                let n = v.iter().take_while(|c| c.is_ascii_whitespace()).count();
                &v[n..]
            }
            _ => return None,
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        civil_to_millis(y, mo, d, h, mi, s, 0).unwrap()
    }

    #[test]
    fn formats_read_back() {
        let utc = LogZone::UTC;
        let p = |f: &str, v: &str| parse(f, v.as_bytes(), &utc).and_then(|p| p.timestamp_ms);
        assert_eq!(
            p("%d/%b/%Y:%H:%M:%S %z", "03/Dec/2026:12:03:13 -0800"),
            Some(at(2026, 12, 3, 20, 3, 13))
        );
        assert_eq!(
            p("%Y-%m-%dT%H:%M:%S", "2026-12-03T12:03:13"),
            Some(at(2026, 12, 3, 12, 3, 13))
        );
        assert_eq!(
            p("%F %T", "2026-07-04 01:02:03"),
            Some(at(2026, 7, 4, 1, 2, 3))
        );
        assert_eq!(
            p("%c", "Thu Dec  3 12:03:13 2026"),
            Some(at(2026, 12, 3, 12, 3, 13))
        );
        assert_eq!(p("%s", "1796299393"), Some(1_796_299_393_000));
        assert_eq!(
            p("%B %d, %Y %I:%M %p", "July 04, 2026 01:30 PM"),
            Some(at(2026, 7, 4, 13, 30, 0))
        );
        assert_eq!(
            p("%Y %j %T", "2026 185 00:00:00"),
            Some(at(2026, 7, 4, 0, 0, 0))
        );
        assert_eq!(p("%H:%M:%S", "12:03:13"), None, "no date: no instant");
        assert!(parse("%d/%b/%Y", b"03/Dxx/2026", &utc).is_none());
        let la = LogZone::parse("America/Los_Angeles").unwrap();
        assert_eq!(
            parse("%F %T", b"2026-07-04 01:02:03", &la)
                .unwrap()
                .timestamp_ms,
            Some(at(2026, 7, 4, 8, 2, 3))
        );
        assert_eq!(parse("%z", b"+0100", &utc).unwrap().offset_secs, Some(3600));
        assert_eq!(spaces("%d/%b/%Y:%H:%M:%S %z"), 1);
        assert_eq!(spaces("%c"), 4);
    }
}
