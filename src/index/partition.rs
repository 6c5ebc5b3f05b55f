//! Day partitions: naming, listing, sizes and retention.
//!
//! A partition is the directory `<index_root>/<YYYY-MM-DD>` (UTC day of the entries' timestamps).
//! Searches with a time range open only the partitions that overlap it; retention deletes whole
//! directories, the cheapest possible delete. Touches only directories under the index root.

use std::path::{Path, PathBuf};

use super::IndexError;

const MS_PER_DAY: i64 = 86_400_000;

/// A UTC day, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Day {
    pub fn of_millis(ms: i64) -> Day {
        Day(ms.div_euclid(MS_PER_DAY))
    }

    /// First millisecond of the day.
    pub fn start_ms(self) -> i64 {
        self.0.saturating_mul(MS_PER_DAY)
    }

    /// First millisecond of the next day.
    pub fn end_ms(self) -> i64 {
        (self.0 + 1).saturating_mul(MS_PER_DAY)
    }

    /// `YYYY-MM-DD`.
    pub fn name(self) -> String {
        let (y, m, d) = civil_from_days(self.0);
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Parses a partition directory name.
    pub fn parse(name: &str) -> Option<Day> {
        let b = name.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let s = name.get(r)?;
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        let day = Day(days_from_civil(y, m as u32, d as u32));
        // Rejects e.g. 2026-02-30, which would name another day.
        (day.name() == name).then_some(day)
    }
}

/// Days since the epoch to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One partition on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDir {
    pub day: Day,
    pub path: PathBuf,
}

/// The partitions under `root`, oldest first. A missing root has none.
pub fn list(root: &Path) -> Result<Vec<PartitionDir>, IndexError> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(IndexError::io(root, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| IndexError::io(root, e))?;
        let name = entry.file_name();
        let Some(day) = name.to_str().and_then(Day::parse) else {
            continue;
        };
        let path = entry.path();
        // Only complete partitions: a directory whose creation was interrupted has no meta.json.
        if path.join("meta.json").is_file() {
            out.push(PartitionDir { day, path });
        }
    }
    out.sort_by_key(|p| p.day);
    Ok(out)
}

/// Bytes of the files in a partition directory.
pub fn size_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Which partitions retention removes: older than `max_age_days` before `today`, then the oldest
/// while the total exceeds `max_total_bytes`. The newest partition is never chosen by size.
/// `sizes` are the partitions' sizes, oldest first, in the same order as `parts`.
pub fn retention_victims(
    parts: &[PartitionDir],
    sizes: &[u64],
    today: Day,
    max_age_days: u32,
    max_total_bytes: u64,
) -> Vec<usize> {
    let mut victims = Vec::new();
    let mut total: u64 = sizes.iter().sum();
    for (i, p) in parts.iter().enumerate() {
        let too_old = max_age_days > 0 && p.day.0 < today.0 - i64::from(max_age_days);
        let too_big = max_total_bytes > 0 && total > max_total_bytes && i + 1 < parts.len();
        if too_old || too_big {
            victims.push(i);
            total = total.saturating_sub(sizes[i]);
        } else {
            break;
        }
    }
    victims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names_round_trip() {
        for (ms, name) in [
            (0, "1970-01-01"),
            (1_700_000_000_000, "2023-11-14"),
            (951_782_400_000, "2000-02-29"),
            (-1, "1969-12-31"),
        ] {
            let d = Day::of_millis(ms);
            assert_eq!(d.name(), name);
            assert_eq!(Day::parse(name), Some(d));
            assert!(d.start_ms() <= ms && ms < d.end_ms());
        }
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-01",
            "abcd-ef-gh",
            "meta.json",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn retention_by_age_then_size() {
        let parts: Vec<PartitionDir> = (10..15)
            .map(|d| PartitionDir {
                day: Day(d),
                path: PathBuf::new(),
            })
            .collect();
        let sizes = [100, 100, 100, 100, 100];
        assert_eq!(retention_victims(&parts, &sizes, Day(15), 3, 0), vec![0, 1]);
        assert_eq!(
            retention_victims(&parts, &sizes, Day(15), 0, 250),
            vec![0, 1, 2]
        );
        assert_eq!(
            retention_victims(&parts, &sizes, Day(15), 0, 10),
            vec![0, 1, 2, 3]
        );
        assert!(retention_victims(&parts, &sizes, Day(15), 0, 0).is_empty());
    }
}
