//! The time zone of times a log writes without one (HAProxy `%t`, Apache `%{format}t` without
//! `%z`, RFC 3164 dates, Apache error-log dates).
//!
//! A [`LogZone`] is a fixed offset (`UTC`, `+01:00`, `-0500`) or an IANA zone with its daylight
//! saving rules (`America/Los_Angeles`), taken from the system's tz database when present
//! (`TZDIR`, `/usr/share/zoneinfo`) and from the copy bundled into the binary otherwise
//! (jiff's `tzdb-bundle-always`). The default is the host's local zone: `TZ`, then
//! `/etc/localtime`, as the servers that wrote the logs used it.
//!
//! **Times at a DST transition.** A local time in a gap (02:30 on the spring-forward day, which no
//! clock showed) or in a fold (01:30 on the fall-back day, which clocks showed twice) is resolved
//! like RFC 5545 and Temporal's `compatible` disambiguation: a time in a fold takes the *earlier*
//! instant (the offset before the transition, still daylight time), a time in a gap is read with
//! the offset before the gap (so 02:30 PST-that-never-was becomes 03:30 PDT). A log that matters
//! across a fold should log its offset (`%{%d/%b/%Y:%H:%M:%S %z}t`, HAProxy `%tr` with `%T`-style
//! zones, RFC 5424 timestamps): times that carry an offset never consult the zone.
//!
//! Pure computation: no I/O after construction (the zone's rules are loaded once).

use std::fmt;

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

/// How times without an offset are placed on the time line.
#[derive(Clone, PartialEq)]
pub struct LogZone {
    repr: Repr,
}

#[derive(Clone, PartialEq)]
enum Repr {
    /// Seconds east of UTC.
    Fixed(i32),
    /// A zone with rules; `name` is what the user wrote (or `local (NAME)`).
    Rules { name: String, tz: TimeZone },
}

/// A time zone name that is neither an offset nor a zone of the tz database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown time zone `{0}` (expected an IANA zone name like \"America/Los_Angeles\", \"UTC\", an offset like \"+01:00\" or \"-0500\", or \"local\")"
)]
pub struct TzError(pub String);

impl LogZone {
    /// UTC.
    pub const UTC: LogZone = LogZone {
        repr: Repr::Fixed(0),
    };

    /// A fixed offset, seconds east of UTC.
    pub fn fixed(secs: i32) -> LogZone {
        LogZone {
            repr: Repr::Fixed(secs),
        }
    }

    /// The host's local zone: `TZ`, then `/etc/localtime` (UTC when neither names a zone).
    pub fn local() -> LogZone {
        match TimeZone::try_system() {
            Ok(tz) => Self::from_tz(
                format!("local ({})", tz.iana_name().unwrap_or("unnamed")),
                tz,
            ),
            Err(_) => LogZone::UTC,
        }
    }

    /// Parses `local`, `UTC`/`Z`/`GMT`, an offset (`+01:00`, `-0500`, `+02`) or an IANA zone name.
    pub fn parse(s: &str) -> Result<LogZone, TzError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("local") {
            return Ok(LogZone::local());
        }
        if let Some(off) = super::text::parse_tz_offset(s) {
            return Ok(LogZone::fixed(off));
        }
        match TimeZone::get(s) {
            Ok(tz) => Ok(Self::from_tz(s.to_owned(), tz)),
            Err(_) => Err(TzError(s.to_owned())),
        }
    }

    fn from_tz(name: String, tz: TimeZone) -> LogZone {
        // A zone without transitions (Etc/UTC, Etc/GMT+5) is a fixed offset: the fast path.
        if tz.following(Timestamp::MIN).next().is_none() {
            LogZone::fixed(tz.to_offset(Timestamp::UNIX_EPOCH).seconds())
        } else {
            LogZone {
                repr: Repr::Rules { name, tz },
            }
        }
    }

    /// The zone's offset east of UTC at instant `utc_ms`, in seconds.
    pub fn offset_at(&self, utc_ms: i64) -> i64 {
        match &self.repr {
            Repr::Fixed(off) => i64::from(*off),
            Repr::Rules { tz, .. } => match Timestamp::from_millisecond(utc_ms) {
                Ok(ts) => i64::from(tz.to_offset(ts).seconds()),
                Err(_) => 0,
            },
        }
    }

    /// The instant (ms since the epoch) of a local wall-clock time given as "milliseconds since
    /// the epoch as if the wall clock were UTC" (what [`super::text::civil_to_millis`] returns).
    /// Gaps and folds: see the module doc. `None` outside the representable range.
    pub fn local_to_utc_ms(&self, wall_ms: i64) -> Option<i64> {
        match &self.repr {
            Repr::Fixed(off) => Some(wall_ms - i64::from(*off) * 1000),
            Repr::Rules { tz, .. } => {
                let wall = Offset::UTC.to_datetime(Timestamp::from_millisecond(wall_ms).ok()?);
                let ts = tz.to_ambiguous_timestamp(wall).compatible().ok()?;
                Some(ts.as_millisecond())
            }
        }
    }

    /// Whether this is a fixed offset (no DST rules).
    pub fn is_fixed(&self) -> bool {
        matches!(self.repr, Repr::Fixed(_))
    }
}

impl Default for LogZone {
    /// The host's local zone.
    fn default() -> Self {
        LogZone::local()
    }
}

impl fmt::Display for LogZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Fixed(0) => f.write_str("UTC"),
            Repr::Fixed(off) => {
                let sign = if *off < 0 { '-' } else { '+' };
                let a = off.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
            }
            Repr::Rules { name, .. } => f.write_str(name),
        }
    }
}

impl fmt::Debug for LogZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogZone({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::text::civil_to_millis;

    fn wall(y: i64, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        civil_to_millis(y, mo, d, h, mi, 0, 0).unwrap()
    }

    #[test]
    fn los_angeles_across_both_transitions() {
        let z = LogZone::parse("America/Los_Angeles").unwrap();
        assert!(!z.is_fixed());
        // Winter: PST, UTC-8.
        assert_eq!(
            z.local_to_utc_ms(wall(2026, 1, 15, 12, 0)),
            Some(wall(2026, 1, 15, 20, 0))
        );
        // Summer: PDT, UTC-7.
        assert_eq!(
            z.local_to_utc_ms(wall(2026, 7, 15, 12, 0)),
            Some(wall(2026, 7, 15, 19, 0))
        );
        // 2026-03-08 02:30 does not exist: read with the offset before the gap (-8) = 10:30Z.
        assert_eq!(
            z.local_to_utc_ms(wall(2026, 3, 8, 2, 30)),
            Some(wall(2026, 3, 8, 10, 30))
        );
        // Just before and after the gap.
        assert_eq!(
            z.local_to_utc_ms(wall(2026, 3, 8, 1, 59)),
            Some(wall(2026, 3, 8, 9, 59))
        );
        assert_eq!(
            z.local_to_utc_ms(wall(2026, 3, 8, 3, 0)),
            Some(wall(2026, 3, 8, 10, 0))
        );
        // 2026-11-01 01:30 happens twice: the earlier one (PDT, -7) = 08:30Z.
        assert_eq!(
            z.local_to_utc_ms(wall(2026, 11, 1, 1, 30)),
            Some(wall(2026, 11, 1, 8, 30))
        );
        assert_eq!(
            z.local_to_utc_ms(wall(2026, 11, 1, 2, 0)),
            Some(wall(2026, 11, 1, 10, 0))
        );
        assert_eq!(z.offset_at(wall(2026, 7, 1, 0, 0)), -7 * 3600);
        assert_eq!(z.offset_at(wall(2026, 12, 1, 0, 0)), -8 * 3600);
    }

    #[test]
    fn offsets_utc_and_errors() {
        assert_eq!(LogZone::parse("UTC").unwrap(), LogZone::UTC);
        assert_eq!(LogZone::parse("Etc/UTC").unwrap(), LogZone::UTC);
        assert_eq!(LogZone::parse("+01:00").unwrap(), LogZone::fixed(3600));
        assert_eq!(LogZone::parse("-0530").unwrap(), LogZone::fixed(-19800));
        assert_eq!(LogZone::fixed(-19800).to_string(), "-05:30");
        assert_eq!(
            LogZone::parse("Europe/Berlin").unwrap().to_string(),
            "Europe/Berlin"
        );
        let e = LogZone::parse("Mars/Olympus_Mons").unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus_Mons"), "{e}");
        assert!(LogZone::parse("+25:00").is_err());
    }

    #[test]
    fn bundled_database_without_system_zoneinfo() {
        // The bundled copy answers even where /usr/share/zoneinfo is missing.
        let db = jiff::tz::TimeZoneDatabase::bundled();
        let tz = db.get("America/New_York").unwrap();
        let ts = tz
            .to_ambiguous_timestamp(jiff::civil::date(2026, 7, 4).at(12, 0, 0, 0))
            .compatible()
            .unwrap();
        assert_eq!(ts.as_millisecond(), wall(2026, 7, 4, 16, 0));
    }
}
